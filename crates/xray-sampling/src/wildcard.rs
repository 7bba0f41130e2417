//! X-Ray's rule patterns: `*` matches any run of characters (also none), `?` exactly one,
//! everything else itself, case-insensitively.

/// Whether `text` matches the X-Ray wildcard `pattern`, ignoring case.
///
/// # Examples
///
/// ```
/// use xray_sampling::wildcard_match;
/// assert!(wildcard_match("/api/*/items?", "/API/v1/items/"));
/// assert!(wildcard_match("*", ""));
/// assert!(!wildcard_match("GET", "POST"));
/// ```
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if pattern.is_ascii() && text.is_ascii() {
        return match_units(pattern.as_bytes(), text.as_bytes(), |p, t| {
            p.eq_ignore_ascii_case(t)
        });
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    match_units(&p, &t, |&a, &b| {
        a == b || a.to_lowercase().eq(b.to_lowercase())
    })
}

/// Marker units for the two alphabets the matcher runs on.
trait Unit: Copy {
    fn is_star(self) -> bool;
    fn is_question(self) -> bool;
}

impl Unit for u8 {
    fn is_star(self) -> bool {
        self == b'*'
    }
    fn is_question(self) -> bool {
        self == b'?'
    }
}

impl Unit for char {
    fn is_star(self) -> bool {
        self == '*'
    }
    fn is_question(self) -> bool {
        self == '?'
    }
}

/// Linear-space greedy matcher with single-star backtracking (no recursion, no
/// allocation): worst case O(pattern × text).
fn match_units<U: Unit>(pattern: &[U], text: &[U], eq: impl Fn(&U, &U) -> bool) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p].is_star() {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && (pattern[p].is_question() || eq(&pattern[p], &text[t])) {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|u| u.is_star())
}

#[cfg(test)]
mod tests {
    use super::wildcard_match as m;

    #[test]
    fn literals_ignore_case() {
        assert!(m("GET", "get"));
        assert!(m("/Health", "/health"));
        assert!(!m("/health", "/healthz"));
        assert!(!m("/healthz", "/health"));
        assert!(m("", ""));
        assert!(!m("", "a"));
    }

    #[test]
    fn stars_and_questions() {
        assert!(m("*", "anything at all"));
        assert!(m("/api/*", "/api/"));
        assert!(m("/api/*", "/api/users/1"));
        assert!(!m("/api/*", "/apx/users"));
        assert!(m("*.example.com", "a.b.example.com"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("?", "x"));
        assert!(!m("?", ""));
        assert!(!m("?", "xy"));
        assert!(m("**", ""));
        assert!(m("*?", "x"));
        assert!(!m("*?", ""));
        assert!(m("a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaab"));
        assert!(!m("a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaa"));
    }

    /// The definition, by recursion (exponential, fine for short inputs).
    fn reference(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, _) => t.is_empty(),
            (Some('*'), _) => reference(&p[1..], t) || (!t.is_empty() && reference(p, &t[1..])),
            (Some(_), None) => false,
            (Some('?'), Some(_)) => reference(&p[1..], &t[1..]),
            (Some(a), Some(b)) => {
                a.to_lowercase().eq(b.to_lowercase()) && reference(&p[1..], &t[1..])
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_the_definition(p in "[aAbé*?]{0,8}", t in "[aAbBÉé]{0,10}") {
            let (pc, tc): (Vec<char>, Vec<char>) = (p.chars().collect(), t.chars().collect());
            proptest::prop_assert_eq!(m(&p, &t), reference(&pc, &tc), "{:?} {:?}", p, t);
        }

        #[test]
        fn any_input_is_safe(p in "\\PC{0,40}", t in "\\PC{0,80}") {
            let _ = m(&p, &t);
        }
    }

    #[test]
    fn unicode_counts_characters() {
        assert!(m("caf?", "café"));
        assert!(m("ÉCOLE*", "école-1"));
        assert!(!m("caf?", "cafés"));
    }
}
