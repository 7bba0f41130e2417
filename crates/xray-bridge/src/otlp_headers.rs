//! Headers of the `otlp:URL` exports: `--otlp-header K=V` (repeatable) and the
//! OpenTelemetry variables `OTEL_EXPORTER_OTLP_HEADERS` and
//! `OTEL_EXPORTER_OTLP_TRACES_HEADERS` (`k1=v1,k2=v2`, values percent-encoded). They often
//! carry a vendor's API key: values are never logged or printed.

use percent_encoding::percent_decode_str;

/// The generic OpenTelemetry variable.
pub const HEADERS_ENV: &str = "OTEL_EXPORTER_OTLP_HEADERS";
/// The traces-only variable; its keys win over the generic one's.
pub const TRACES_HEADERS_ENV: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";

/// One `--otlp-header KEY=VALUE`: a header name (lower case) and its value, which its
/// debug form never shows.
#[derive(Clone, PartialEq, Eq)]
pub struct OtlpHeader {
    /// The header name, lower case.
    pub name: String,
    /// The value.
    pub value: String,
}

impl std::fmt::Debug for OtlpHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}=<redacted>", self.name)
    }
}

impl std::str::FromStr for OtlpHeader {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_pair(s).map(|(name, value)| OtlpHeader { name, value })
    }
}

/// One `K=V` pair, checked as an HTTP header; the error never shows the value.
pub fn parse_pair(pair: &str) -> Result<(String, String), String> {
    let (key, value) = pair
        .split_once('=')
        .ok_or_else(|| "an OTLP header must be KEY=VALUE".to_owned())?;
    let key = key.trim();
    let value = value.trim();
    if http::HeaderName::from_bytes(key.as_bytes()).is_err() || key.is_empty() {
        return Err(format!("`{key}` is not a valid HTTP header name"));
    }
    if http::HeaderValue::from_str(value).is_err() {
        return Err(format!(
            "the value of header `{key}` is not a valid HTTP header value"
        ));
    }
    Ok((key.to_ascii_lowercase(), value.to_owned()))
}

/// The pairs of an `OTEL_EXPORTER_OTLP_*HEADERS` value (`k1=v1,k2=v2`, percent-decoded).
pub fn parse_list(list: &str) -> Result<Vec<(String, String)>, String> {
    list.split(',')
        .filter(|item| !item.trim().is_empty())
        .map(|item| {
            let decoded = percent_decode_str(item).decode_utf8_lossy();
            parse_pair(&decoded)
        })
        .collect()
}

/// Merges header lists, later ones replacing earlier values of the same key.
pub fn merge(lists: impl IntoIterator<Item = Vec<(String, String)>>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (key, value) in lists.into_iter().flatten() {
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => out.push((key, value)),
        }
    }
    out
}

/// The headers of the `otlp:URL` exports: the generic variable, then the traces one,
/// then `flags` (`--otlp-header`), each replacing the values of the one before.
pub fn resolve(flags: &[OtlpHeader]) -> Result<Vec<(String, String)>, String> {
    let mut lists = Vec::new();
    for name in [HEADERS_ENV, TRACES_HEADERS_ENV] {
        if let Ok(value) = std::env::var(name) {
            lists.push(parse_list(&value).map_err(|e| format!("{name}: {e}"))?);
        }
    }
    lists.push(
        flags
            .iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect(),
    );
    Ok(merge(lists))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_lists_and_precedence() {
        assert_eq!(
            parse_list("api-key=s%3Dcret, X-Team = a b ,").unwrap(),
            vec![
                ("api-key".to_owned(), "s=cret".to_owned()),
                ("x-team".to_owned(), "a b".to_owned())
            ]
        );
        let header: OtlpHeader = "X-Key=secret-value".parse().unwrap();
        assert_eq!(header.name, "x-key");
        assert!(!format!("{header:?}").contains("secret-value"));
        let err = parse_pair("bad key=secret-value").unwrap_err();
        assert!(!err.contains("secret-value"), "{err}");
        let err = parse_pair("k=line\nbreak-secret").unwrap_err();
        assert!(!err.contains("break-secret"), "{err}");
        assert!(parse_pair("novalue").is_err());
        let merged = merge([
            vec![
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "2".to_owned()),
            ],
            vec![("a".to_owned(), "3".to_owned())],
        ]);
        assert_eq!(
            merged,
            vec![
                ("a".to_owned(), "3".to_owned()),
                ("b".to_owned(), "2".to_owned())
            ]
        );
    }
}
