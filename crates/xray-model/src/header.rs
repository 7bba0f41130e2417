//! The `X-Amzn-Trace-Id` header: one parser and one writer for every hop.

use std::fmt;
use std::str::FromStr;

use crate::{SegmentId, TraceId};

/// The HTTP header name (HTTP header names are case-insensitive).
pub const HEADER_NAME: &str = "X-Amzn-Trace-Id";

/// The environment variable in which Lambda hands a function its trace header.
pub const LAMBDA_ENV_VAR: &str = "_X_AMZN_TRACE_ID";

/// The Lambda runtime API's response header carrying the invocation's trace header.
pub const LAMBDA_RUNTIME_HEADER: &str = "Lambda-Runtime-Trace-Id";

/// Longest header accepted by [`TraceHeader::parse`], in bytes.
pub const MAX_HEADER_LEN: usize = 8192;

/// The `Sampled` field of a trace header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Sampled {
    /// `Sampled=1`: the caller sampled the request.
    Yes,
    /// `Sampled=0`: the caller did not sample the request.
    No,
    /// `Sampled=?`: the caller asks the callee to decide and answer with its decision.
    Requested,
    /// The field was missing or unreadable: decide locally.
    #[default]
    Unknown,
}

impl Sampled {
    /// The decision as a bool, when the caller made one.
    pub const fn decision(self) -> Option<bool> {
        match self {
            Sampled::Yes => Some(true),
            Sampled::No => Some(false),
            Sampled::Requested | Sampled::Unknown => None,
        }
    }

    /// `Yes` or `No` from a bool.
    pub const fn from_decision(sampled: bool) -> Self {
        if sampled { Sampled::Yes } else { Sampled::No }
    }
}

/// Why a header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The header has no `Root=` field with a valid trace id.
    #[error("trace header has no valid Root field")]
    MissingRoot,
    /// The header is longer than [`MAX_HEADER_LEN`].
    #[error("trace header is {0} bytes, more than the {MAX_HEADER_LEN} accepted")]
    TooLong(usize),
}

/// A parsed `X-Amzn-Trace-Id` header.
///
/// Parsing is forgiving the way real senders need: a Root-only header (load balancers),
/// spaces around `;` and `=`, keys in any case, `Sampled=?` or no `Sampled` at all. A broken
/// `Parent` or `Sampled` field is skipped without losing a good `Root`. Fields other than
/// `Root`, `Parent` and `Sampled` (`Self`, `Lineage`, custom `Key=Value` pairs) are kept in
/// order and written back after the three known ones.
///
/// # Examples
///
/// ```
/// use xray_model::{Sampled, TraceHeader};
///
/// let h: TraceHeader = "Root=1-5759e988-bd862e3fe1be46a994272793; Sampled=?; Lineage=a87bd80c:0"
///     .parse()
///     .unwrap();
/// assert_eq!(h.parent, None);
/// assert_eq!(h.sampled, Sampled::Requested);
/// assert_eq!(h.field("lineage"), Some("a87bd80c:0"));
/// assert_eq!(
///     h.to_string(),
///     "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?;Lineage=a87bd80c:0"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceHeader {
    /// The trace id (`Root=`).
    pub root: TraceId,
    /// The caller's segment or subsegment id (`Parent=`), absent on the first hop.
    pub parent: Option<SegmentId>,
    /// The caller's sampling decision (`Sampled=`).
    pub sampled: Sampled,
    /// Every other field in the order received, e.g. `Self`, `Lineage` or custom data.
    pub fields: Vec<(String, String)>,
}

impl TraceHeader {
    /// A header for a new hop with no extra fields.
    pub fn new(root: TraceId, parent: Option<SegmentId>, sampled: Sampled) -> Self {
        Self {
            root,
            parent,
            sampled,
            fields: Vec::new(),
        }
    }

    /// Parses a header value. See the type's documentation for what is tolerated.
    ///
    /// # Errors
    ///
    /// [`HeaderError::TooLong`] over [`MAX_HEADER_LEN`] bytes, and
    /// [`HeaderError::MissingRoot`] when no `Root=` field holds a valid trace id.
    ///
    /// # Examples
    ///
    /// ```
    /// use xray_model::{Sampled, SegmentId, TraceHeader};
    ///
    /// let header = TraceHeader::parse(
    ///     "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    /// )
    /// .unwrap();
    /// assert_eq!(header.parent, Some(SegmentId::from_u64(0x53995c3f42cd8ad8)));
    /// assert_eq!(header.sampled, Sampled::Yes);
    /// assert!(TraceHeader::parse("Parent=53995c3f42cd8ad8").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, HeaderError> {
        if text.len() > MAX_HEADER_LEN {
            return Err(HeaderError::TooLong(text.len()));
        }
        let mut root = None;
        let mut parent = None;
        let mut sampled = Sampled::Unknown;
        let mut fields = Vec::new();
        for part in text.split(';') {
            let Some((key, value)) = part.split_once('=') else {
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            if key.eq_ignore_ascii_case("root") {
                if root.is_none() {
                    root = value.parse::<TraceId>().ok();
                }
            } else if key.eq_ignore_ascii_case("parent") {
                if parent.is_none() {
                    parent = value.parse::<SegmentId>().ok();
                }
            } else if key.eq_ignore_ascii_case("sampled") {
                sampled = match value {
                    "1" => Sampled::Yes,
                    "0" => Sampled::No,
                    "?" => Sampled::Requested,
                    _ => sampled,
                };
            } else if !key.is_empty() && is_token(key) && is_field_value(value) {
                fields.push((key.to_owned(), value.to_owned()));
            }
        }
        let root = root.ok_or(HeaderError::MissingRoot)?;
        Ok(Self {
            root,
            parent,
            sampled,
            fields,
        })
    }

    /// Reads the header Lambda puts in `_X_AMZN_TRACE_ID` for the current invocation.
    ///
    /// Returns `None` when the variable is unset or holds no valid Root.
    pub fn from_lambda_env() -> Option<Self> {
        std::env::var(LAMBDA_ENV_VAR)
            .ok()
            .and_then(|v| Self::parse(&v).ok())
    }

    /// The value of an extra field such as `Self` or `Lineage`, compared case-insensitively.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// The same trace and fields with a new parent and decision: what to send downstream.
    pub fn child(&self, parent: SegmentId, sampled: Sampled) -> Self {
        Self {
            root: self.root,
            parent: Some(parent),
            sampled,
            fields: self.fields.clone(),
        }
    }
}

/// Keys are kept only when they are plain tokens, so they can be written back safely.
fn is_token(key: &str) -> bool {
    key.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Values may not carry the field separator or control characters.
fn is_field_value(value: &str) -> bool {
    !value.bytes().any(|b| b == b';' || b.is_ascii_control())
}

impl FromStr for TraceHeader {
    type Err = HeaderError;

    fn from_str(text: &str) -> Result<Self, HeaderError> {
        Self::parse(text)
    }
}

impl fmt::Display for TraceHeader {
    /// Writes `Root=…;Parent=…;Sampled=…` and then the extra fields, with no spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Root={}", self.root)?;
        if let Some(parent) = self.parent {
            write!(f, ";Parent={parent}")?;
        }
        match self.sampled {
            Sampled::Yes => f.write_str(";Sampled=1")?,
            Sampled::No => f.write_str(";Sampled=0")?,
            Sampled::Requested => f.write_str(";Sampled=?")?,
            Sampled::Unknown => {}
        }
        for (key, value) in &self.fields {
            write!(f, ";{key}={value}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";

    #[test]
    fn root_only_from_a_load_balancer() {
        let h = TraceHeader::parse(&format!("Root={ROOT}")).unwrap();
        assert_eq!(h.root.to_string(), ROOT);
        assert_eq!(h.parent, None);
        assert_eq!(h.sampled, Sampled::Unknown);
    }

    #[test]
    fn broken_fields_keep_a_good_root() {
        let h = TraceHeader::parse(&format!("Root={ROOT};Parent=nothex;Sampled=maybe;=x;junk"))
            .unwrap();
        assert_eq!(h.root.to_string(), ROOT);
        assert_eq!(h.parent, None);
        assert_eq!(h.sampled, Sampled::Unknown);
        assert!(h.fields.is_empty());
    }

    #[test]
    fn keys_are_case_insensitive_and_spaces_ignored() {
        let h = TraceHeader::parse(&format!(
            " root = {ROOT} ;  PARENT=53995c3f42cd8ad8 ; sampled = 1 "
        ))
        .unwrap();
        assert_eq!(h.parent.unwrap().to_string(), "53995c3f42cd8ad8");
        assert_eq!(h.sampled, Sampled::Yes);
    }

    #[test]
    fn self_and_custom_fields_round_trip_in_order() {
        let text = format!(
            "Self=1-67891234-12456789abcdef012345678;Root={ROOT};Sampled=0;Foo=bar;Lineage=a87bd80c:0"
        );
        let h = TraceHeader::parse(&text).unwrap();
        assert_eq!(
            h.to_string(),
            format!(
                "Root={ROOT};Sampled=0;Self=1-67891234-12456789abcdef012345678;Foo=bar;Lineage=a87bd80c:0"
            )
        );
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in [
            "",
            ";;;",
            "Root=",
            "Root=1-zz",
            "Parent=53995c3f42cd8ad8",
            "\u{0}",
        ] {
            assert_eq!(
                TraceHeader::parse(bad),
                Err(HeaderError::MissingRoot),
                "{bad:?}"
            );
        }
        let long = "a".repeat(MAX_HEADER_LEN + 1);
        assert!(matches!(
            TraceHeader::parse(&long),
            Err(HeaderError::TooLong(_))
        ));
    }

    #[test]
    fn first_root_wins() {
        let other = "1-00000000-000000000000000000000001";
        let h = TraceHeader::parse(&format!("Root={ROOT};Root={other}")).unwrap();
        assert_eq!(h.root.to_string(), ROOT);
    }
}
