//! The one place for X-Ray's limits and the rules that make any input fit them.
//!
//! Everything here sanitises instead of rejecting: a span is never lost for its name.

use std::borrow::Cow;

use crate::name_chars::NAME_CHAR_RANGES;

/// Most characters in a segment or subsegment name.
pub const MAX_NAME_CHARS: usize = 200;
/// Most characters in other strings (URLs, user agents, users, …).
pub const MAX_STRING_CHARS: usize = 250;
/// Most characters in an annotation key.
pub const MAX_ANNOTATION_KEY_CHARS: usize = 500;
/// Most characters in a string annotation value.
pub const MAX_ANNOTATION_VALUE_CHARS: usize = 1000;
/// Most annotations kept on one document (X-Ray indexes at most 50 per trace).
pub const MAX_ANNOTATIONS: usize = 50;
/// Largest document we emit, in bytes of JSON. Below X-Ray's 64 kB with room for the
/// daemon header, so the same document fits a UDP datagram and a PutTraceSegments entry.
pub const MAX_DOCUMENT_BYTES: usize = 64_000;
/// Largest UDP payload on IPv4, and so the largest daemon datagram.
pub const MAX_DATAGRAM_BYTES: usize = 65_507;
/// Most documents in one PutTraceSegments call.
pub const MAX_DOCUMENTS_PER_PUT: usize = 50;
/// Name used when sanitising leaves nothing.
pub const FALLBACK_NAME: &str = "unknown";

/// Whether X-Ray accepts `c` in a segment name (Unicode letters, numbers, spaces and
/// `_ . : / % & # = + - @`, exactly as the published schema's pattern says; the docs also
/// list `\`, which the schema rejects, so it is left out).
pub fn is_name_char(c: char) -> bool {
    if c.is_ascii() {
        return ASCII_NAME_CHARS[c as usize];
    }
    let cp = c as u32;
    NAME_CHAR_RANGES
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// [`is_name_char`] for each ASCII character, by code.
const ASCII_NAME_CHARS: [bool; 128] = {
    let mut table = [false; 128];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b' ' | b'_' | b'.' | b':' | b'/' | b'%' | b'&' | b'#' | b'=' | b'+' | b'-' | b'@'
            );
        b += 1;
    }
    table
};

/// [`ASCII_NAME_CHARS`] for every byte value (`false` from 128 on, where UTF-8 sequences
/// start), so a byte needs no ASCII check of its own.
const NAME_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 128 {
        table[b] = ASCII_NAME_CHARS[b];
        b += 1;
    }
    table
};

/// Whether every byte is an ASCII name character: no early exit, so that the loop is
/// unrolled to a few instructions a byte (names are short and nearly always valid).
#[inline]
fn all_ascii_name_bytes(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .fold(true, |ok, &b| ok & NAME_BYTES[usize::from(b)])
}

/// Makes a valid segment name: removes characters X-Ray rejects (so `GET /users/{id}`
/// becomes `GET /users/id`), keeps at most [`MAX_NAME_CHARS`], and falls back to
/// [`FALLBACK_NAME`] when nothing is left. Borrows when the name is already valid.
///
/// # Examples
///
/// ```
/// use xray_model::limits::sanitize_name;
/// assert_eq!(sanitize_name("GET /users/{id}"), "GET /users/id");
/// assert_eq!(sanitize_name("checkout"), "checkout");
/// assert_eq!(sanitize_name("()"), "unknown");
/// ```
#[inline]
pub fn sanitize_name(name: &str) -> Cow<'_, str> {
    // Fast path: a short ASCII name of valid characters (nearly every name) is kept as is.
    if !name.is_empty() && name.len() <= MAX_NAME_CHARS && all_ascii_name_bytes(name.as_bytes()) {
        return Cow::Borrowed(name);
    }
    sanitize_other_name(name)
}

/// [`sanitize_name`] for a name that is not short valid ASCII (rare): out of line, so the
/// fast path needs no stack frame.
#[cold]
#[inline(never)]
fn sanitize_other_name(name: &str) -> Cow<'_, str> {
    let mut count = 0;
    let valid = name.chars().all(|c| {
        count += 1;
        is_name_char(c)
    });
    if valid && count <= MAX_NAME_CHARS && count > 0 {
        return Cow::Borrowed(name);
    }
    let cleaned: String = name
        .chars()
        .filter(|&c| is_name_char(c))
        .take(MAX_NAME_CHARS)
        .collect();
    if cleaned.is_empty() {
        Cow::Borrowed(FALLBACK_NAME)
    } else {
        Cow::Owned(cleaned)
    }
}

/// [`sanitize_name`] for a name that may already be owned, reusing its allocation.
#[inline]
pub fn sanitize_name_cow(name: Cow<'_, str>) -> Cow<'_, str> {
    match name {
        Cow::Borrowed(b) => sanitize_name(b),
        Cow::Owned(o) => match sanitize_name(&o) {
            Cow::Borrowed(b) if b.len() == o.len() => Cow::Owned(o),
            other => Cow::Owned(other.into_owned()),
        },
    }
}

/// The byte index at which `s` must be cut to keep at most `max_chars` characters.
#[inline]
fn cut_index(s: &str, max_chars: usize) -> Option<usize> {
    if s.len() <= max_chars {
        return None;
    }
    s.char_indices().nth(max_chars).map(|(i, _)| i)
}

/// Keeps at most `max_chars` characters, cutting on a character boundary.
///
/// # Examples
///
/// ```
/// use xray_model::limits::truncate;
/// assert_eq!(truncate("héllo".into(), 2), "hé");
/// ```
#[inline]
pub fn truncate(s: Cow<'_, str>, max_chars: usize) -> Cow<'_, str> {
    match cut_index(&s, max_chars) {
        None => s,
        Some(at) => match s {
            Cow::Borrowed(b) => Cow::Borrowed(&b[..at]),
            Cow::Owned(mut o) => {
                o.truncate(at);
                Cow::Owned(o)
            }
        },
    }
}

/// [`truncate`] to [`MAX_STRING_CHARS`], the limit on most document strings.
#[inline]
pub fn limit_string(s: Cow<'_, str>) -> Cow<'_, str> {
    truncate(s, MAX_STRING_CHARS)
}

/// Makes a valid annotation key: every character outside `[A-Za-z0-9_]` becomes `_`
/// (so `http.route` becomes `http_route`), at most [`MAX_ANNOTATION_KEY_CHARS`], never empty.
///
/// # Examples
///
/// ```
/// use xray_model::limits::annotation_key;
/// assert_eq!(annotation_key("user.tier-name"), "user_tier_name");
/// ```
pub fn annotation_key(key: &str) -> Cow<'_, str> {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    if !key.is_empty() && key.len() <= MAX_ANNOTATION_KEY_CHARS && key.bytes().all(ok) {
        return Cow::Borrowed(key);
    }
    let mapped: String = key
        .chars()
        .take(MAX_ANNOTATION_KEY_CHARS)
        .map(|c| if c.is_ascii() && ok(c as u8) { c } else { '_' })
        .collect();
    if mapped.is_empty() {
        Cow::Borrowed("_")
    } else {
        Cow::Owned(mapped)
    }
}

/// Removes a password from a connection string or URL (`user:secret@host` and
/// `password=secret` / `pwd=secret` pairs), leaving the rest as it was.
///
/// # Examples
///
/// ```
/// use xray_model::limits::strip_password;
/// assert_eq!(strip_password("postgres://app:s3cret@db:5432/shop"), "postgres://app@db:5432/shop");
/// assert_eq!(strip_password("Server=db;User Id=app;Password=x;"), "Server=db;User Id=app;");
/// ```
pub fn strip_password(conn: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(conn);
    // URL userinfo: scheme://user:password@host
    if let Some(scheme_end) = out.find("://") {
        let rest = &out[scheme_end + 3..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@')
            && let Some(colon) = rest[..at].find(':')
        {
            // With no user name left (`redis://:secret@host`), the `@` goes too.
            let end = if colon == 0 { at + 1 } else { at };
            let (start, end) = (scheme_end + 3 + colon, scheme_end + 3 + end);
            out = Cow::Owned(format!("{}{}", &out[..start], &out[end..]));
        }
    }
    // key=value pairs: Password=...; Pwd=...
    if contains_ignore_ascii_case(&out, "password=") || contains_ignore_ascii_case(&out, "pwd=") {
        let kept: Vec<&str> = out
            .split(';')
            .filter(|pair| {
                let key = pair.split('=').next().unwrap_or("").trim();
                !(key.eq_ignore_ascii_case("password") || key.eq_ignore_ascii_case("pwd"))
            })
            .collect();
        out = Cow::Owned(kept.join(";"));
    }
    out
}

/// Whether `haystack` contains `needle`, ignoring ASCII case, without allocating.
fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_table_is_the_ascii_rule() {
        for b in 0..=255u8 {
            let expected = b.is_ascii() && is_name_char(char::from(b));
            assert_eq!(NAME_BYTES[usize::from(b)], expected, "{b}");
            // A valid name with the byte in it at each position of a word-sized run.
            for at in 0..17 {
                let mut name = vec![b'a'; 17];
                name[at] = b;
                assert_eq!(all_ascii_name_bytes(&name), expected, "{b} at {at}");
            }
        }
        assert!(all_ascii_name_bytes(b""));
    }

    #[test]
    fn names_lose_only_invalid_characters() {
        assert_eq!(sanitize_name("GET /users/{id}"), "GET /users/id");
        assert_eq!(sanitize_name("fn(x)"), "fnx");
        assert_eq!(sanitize_name("tab\there"), "tabhere");
        assert_eq!(sanitize_name("Zürich ☃ 東京"), "Zürich  東京");
        assert_eq!(sanitize_name(""), FALLBACK_NAME);
        // The docs list `\`, but the published schema's pattern does not accept it.
        assert_eq!(sanitize_name("a\\b-c@d"), "ab-c@d");
    }

    #[test]
    fn long_names_are_cut_to_200_characters() {
        let long = "é".repeat(300);
        let s = sanitize_name(&long);
        assert_eq!(s.chars().count(), MAX_NAME_CHARS);
    }

    #[test]
    fn valid_names_are_borrowed() {
        assert!(matches!(sanitize_name("frontend"), Cow::Borrowed(_)));
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        let s = "a".repeat(249) + "€€";
        let t = limit_string(Cow::Owned(s));
        assert_eq!(t.chars().count(), MAX_STRING_CHARS);
        assert!(t.ends_with('€'));
    }

    #[test]
    fn annotation_keys() {
        assert_eq!(annotation_key("ok_key1"), "ok_key1");
        assert_eq!(annotation_key("é"), "_");
        assert_eq!(annotation_key(""), "_");
    }

    #[test]
    fn passwords_are_removed() {
        assert_eq!(strip_password("mysql://u:p@h/db?x=1"), "mysql://u@h/db?x=1");
        assert_eq!(strip_password("mysql://h/db"), "mysql://h/db");
        assert_eq!(strip_password("host=h;PWD=1;db=d"), "host=h;db=d");
        assert_eq!(strip_password("Host=h;PassWord=1"), "Host=h");
        assert_eq!(
            strip_password("redis://:pw@cache:6379"),
            "redis://cache:6379"
        );
        assert!(matches!(
            strip_password("https://example.com/a?b=c"),
            Cow::Borrowed(_)
        ));
    }
}
