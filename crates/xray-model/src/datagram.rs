//! The X-Ray daemon's UDP framing: a header line, then exactly one document.

use serde::Deserialize;

use crate::limits::MAX_DATAGRAM_BYTES;
use crate::{Segment, SegmentId, TraceId};

/// The header line every daemon datagram starts with (newline included).
pub const DAEMON_HEADER: &str = "{\"format\":\"json\",\"version\":1}\n";

/// Why a datagram was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatagramError {
    /// Larger than a UDP datagram can be.
    #[error("datagram is {0} bytes, more than {MAX_DATAGRAM_BYTES}")]
    TooLarge(usize),
    /// No newline separates the header from the document.
    #[error("datagram has no header line")]
    MissingHeader,
    /// The header is not `{"format":"json","version":1}`.
    #[error("datagram header is not {{\"format\":\"json\",\"version\":1}}: {0}")]
    BadHeader(String),
    /// The body is not UTF-8.
    #[error("datagram body is not UTF-8")]
    NotUtf8,
    /// The body is not one JSON object with the fields every document needs.
    #[error("datagram body is not a valid segment document: {0}")]
    BadDocument(String),
}

/// What a receiver needs to know about a document without parsing all of it.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentSummary {
    /// The trace the document belongs to.
    pub trace_id: TraceId,
    /// The document's id.
    pub id: SegmentId,
    /// Whether it is a standalone subsegment.
    pub subsegment: bool,
    /// Whether it is still in progress (no `end_time`).
    pub in_progress: bool,
}

/// A datagram that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Datagram<'a> {
    /// The document's JSON text, exactly as received.
    pub document: &'a str,
    /// Its key fields.
    pub summary: DocumentSummary,
}

/// Appends a datagram (header and document) to `out`.
///
/// # Examples
///
/// ```
/// use xray_model::datagram::{DAEMON_HEADER, encode_datagram, parse_datagram};
/// use xray_model::{Segment, SegmentId, TraceId};
///
/// let mut segment = Segment::new("svc", SegmentId::from_u64(1), TraceId::from_u128(1), 1.0);
/// segment.end_time = Some(2.0);
/// let mut datagram = Vec::new();
/// encode_datagram(&segment, &mut datagram);
/// assert!(datagram.starts_with(DAEMON_HEADER.as_bytes()));
/// assert_eq!(parse_datagram(&datagram).unwrap().summary.id, SegmentId::from_u64(1));
/// ```
pub fn encode_datagram(doc: &Segment<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(DAEMON_HEADER.as_bytes());
    doc.write_json(out);
}

#[derive(Deserialize)]
struct Header {
    format: String,
    version: u32,
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    name: Option<std::borrow::Cow<'a, str>>,
    id: Option<SegmentId>,
    trace_id: Option<TraceId>,
    start_time: Option<f64>,
    end_time: Option<f64>,
    #[serde(default)]
    in_progress: bool,
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    parent_id: Option<SegmentId>,
}

/// Validates a document's JSON text: one object, with `name`, `id`, `trace_id`,
/// `start_time`, and `end_time` or `in_progress`; a subsegment also needs `parent_id`.
///
/// # Errors
///
/// [`DatagramError::BadDocument`] when the text is not one JSON object, an id is malformed,
/// or a required field is missing.
///
/// # Examples
///
/// ```
/// use xray_model::datagram::summarize_document;
///
/// let summary = summarize_document(
///     r#"{"name":"svc","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.0,"in_progress":true}"#,
/// )
/// .unwrap();
/// assert!(summary.in_progress && !summary.subsegment);
/// assert!(summarize_document(r#"{"name":"svc"}"#).is_err());
/// ```
pub fn summarize_document(text: &str) -> Result<DocumentSummary, DatagramError> {
    let bad = |m: &str| DatagramError::BadDocument(m.to_owned());
    let head: Head<'_> =
        serde_json::from_str(text).map_err(|e| DatagramError::BadDocument(e.to_string()))?;
    match head.name.as_deref() {
        Some(n) if !n.is_empty() => {}
        _ => return Err(bad("missing name")),
    }
    let id = head.id.ok_or_else(|| bad("missing id"))?;
    let trace_id = head.trace_id.ok_or_else(|| bad("missing trace_id"))?;
    head.start_time.ok_or_else(|| bad("missing start_time"))?;
    if head.end_time.is_none() && !head.in_progress {
        return Err(bad("neither end_time nor in_progress"));
    }
    let subsegment = head.kind.as_deref() == Some(crate::document::TYPE_SUBSEGMENT);
    if subsegment && head.parent_id.is_none() {
        return Err(bad("subsegment without parent_id"));
    }
    Ok(DocumentSummary {
        trace_id,
        id,
        subsegment,
        in_progress: head.end_time.is_none(),
    })
}

/// Parses and validates one daemon datagram: the header line, then one document that
/// [`summarize_document`] accepts.
///
/// # Errors
///
/// [`DatagramError::TooLarge`] over [`MAX_DATAGRAM_BYTES`], [`DatagramError::MissingHeader`]
/// or [`DatagramError::BadHeader`] for a missing or wrong header line,
/// [`DatagramError::NotUtf8`] for a body that is not UTF-8, and
/// [`DatagramError::BadDocument`] for a body that is not a valid document.
///
/// # Examples
///
/// ```
/// use xray_model::datagram::parse_datagram;
/// let d = br#"{"format":"json","version":1}
/// {"name":"svc","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.0,"end_time":2.0}"#;
/// let parsed = parse_datagram(d).unwrap();
/// assert_eq!(parsed.summary.id.to_string(), "70de5b6f19ff9a0a");
/// assert!(parse_datagram(b"garbage").is_err());
/// ```
pub fn parse_datagram(bytes: &[u8]) -> Result<Datagram<'_>, DatagramError> {
    let body = datagram_body(bytes)?;
    let document = std::str::from_utf8(body)
        .map_err(|_| DatagramError::NotUtf8)?
        .trim();
    let summary = summarize_document(document)?;
    Ok(Datagram { document, summary })
}

/// Checks a datagram's size and header line and returns the body after it, untouched
/// (for bodies that are not segment JSON, such as ADOT's `T1S` + base64 OTLP).
///
/// # Errors
///
/// [`DatagramError::TooLarge`] over [`MAX_DATAGRAM_BYTES`], and
/// [`DatagramError::MissingHeader`] or [`DatagramError::BadHeader`] for a missing or wrong
/// header line.
///
/// # Examples
///
/// ```
/// use xray_model::datagram::datagram_body;
/// assert_eq!(datagram_body(b"{\"format\":\"json\",\"version\":1}\nT1Sabc").unwrap(), b"T1Sabc");
/// assert!(datagram_body(b"{\"format\":\"xml\",\"version\":1}\nT1Sabc").is_err());
/// ```
pub fn datagram_body(bytes: &[u8]) -> Result<&[u8], DatagramError> {
    if bytes.len() > MAX_DATAGRAM_BYTES {
        return Err(DatagramError::TooLarge(bytes.len()));
    }
    let newline = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(DatagramError::MissingHeader)?;
    let (header, body) = (&bytes[..newline], &bytes[newline + 1..]);
    let header_text = String::from_utf8_lossy(header);
    let parsed: Header = serde_json::from_slice(header)
        .map_err(|_| DatagramError::BadHeader(header_text.chars().take(80).collect()))?;
    if parsed.format != "json" || parsed.version != 1 {
        return Err(DatagramError::BadHeader(
            header_text.chars().take(80).collect(),
        ));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"name":"svc","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.0,"end_time":2.0}"#;

    fn datagram(header: &str, body: &str) -> Vec<u8> {
        format!("{header}\n{body}").into_bytes()
    }

    #[test]
    fn round_trip_through_encode() {
        let doc: Segment<'_> = serde_json::from_str(DOC).unwrap();
        let mut out = Vec::new();
        encode_datagram(&doc, &mut out);
        let parsed = parse_datagram(&out).unwrap();
        assert_eq!(parsed.document, DOC);
        assert!(!parsed.summary.in_progress);
    }

    #[test]
    fn header_with_spaces_is_accepted() {
        let d = datagram(r#"{"format": "json", "version": 1}"#, DOC);
        assert!(parse_datagram(&d).is_ok());
    }

    #[test]
    fn rejections_say_why() {
        let h = DAEMON_HEADER.trim_end();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (DOC.as_bytes().to_vec(), "header"),
            (datagram(r#"{"format":"xml","version":1}"#, DOC), "header"),
            (datagram(r#"{"format":"json","version":2}"#, DOC), "header"),
            (datagram(h, "{"), "document"),
            (datagram(h, &format!("{DOC}{DOC}")), "document"),
            (
                datagram(
                    h,
                    r#"{"name":"x","id":"70de5b6f19ff9a0a","start_time":1,"end_time":2}"#,
                ),
                "trace_id",
            ),
            (
                datagram(
                    h,
                    r#"{"name":"x","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1}"#,
                ),
                "end_time",
            ),
            (
                datagram(
                    h,
                    r#"{"type":"subsegment","name":"x","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1,"end_time":2}"#,
                ),
                "parent_id",
            ),
            (vec![b'x'; MAX_DATAGRAM_BYTES + 1], "bytes"),
        ];
        for (bytes, why) in cases {
            let err = parse_datagram(&bytes).unwrap_err().to_string();
            assert!(err.contains(why), "{err} should mention {why}");
        }
    }
}
