//! What the queue holds: encoded segment documents, or encoded OTLP spans.

use std::fmt;

use xray_model::datagram::{DatagramError, summarize_document};
use xray_model::limits::MAX_DOCUMENT_BYTES;
use xray_model::{Segment, SegmentId, TraceId, trim_to_fit};

use crate::metrics::DropReason;

/// Something a [`crate::Pipeline`] can queue and a [`crate::Transport`] can send.
pub trait Item: Send + 'static {
    /// Bytes it occupies (what the queue's memory limit counts).
    fn size(&self) -> usize;
    /// Spans it carries (for the span counters).
    fn spans(&self) -> u64;
    /// A short description for log lines, such as the trace id.
    fn describe(&self) -> String;
}

/// One encoded segment document: its JSON text plus the ids transports need.
#[derive(Clone, PartialEq, Eq)]
pub struct Document {
    trace_id: TraceId,
    id: SegmentId,
    json: Box<[u8]>,
}

impl Document {
    /// Checks JSON text that arrived already encoded (e.g. from a daemon datagram, see
    /// `xray_model::parse_datagram`) and keeps it byte for byte.
    ///
    /// ```
    /// let doc = xray_export::Document::from_json(
    ///     br#"{"name":"svc","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.0,"end_time":2.0}"#.to_vec(),
    /// ).unwrap();
    /// assert_eq!(doc.id().to_string(), "70de5b6f19ff9a0a");
    /// ```
    pub fn from_json(json: Vec<u8>) -> Result<Document, DatagramError> {
        if json.len() > MAX_DOCUMENT_BYTES {
            return Err(DatagramError::TooLarge(json.len()));
        }
        let text = std::str::from_utf8(&json).map_err(|_| DatagramError::NotUtf8)?;
        let summary = summarize_document(text)?;
        Ok(Document {
            trace_id: summary.trace_id,
            id: summary.id,
            json: json.into_boxed_slice(),
        })
    }

    /// Encodes a top-level document (segment or standalone subsegment) into `scratch`
    /// (cleared first, reused between calls) and copies the result out. Returns `None` for
    /// a document without a trace id, which no receiver would accept.
    pub fn encode(segment: &Segment<'_>, scratch: &mut Vec<u8>) -> Option<Document> {
        let trace_id = segment.trace_id?;
        scratch.clear();
        segment.write_json(scratch);
        Some(Document {
            trace_id,
            id: segment.id,
            json: scratch.as_slice().into(),
        })
    }

    /// Encodes a translated document within X-Ray's size limit: when its JSON is over
    /// [`MAX_DOCUMENT_BYTES`] it is trimmed with `xray_model::trim_to_fit` (metadata,
    /// stack frames and long strings go; names, ids, times and flags stay) and encoded
    /// again. Returns the document and whether it was trimmed, or why it cannot be sent:
    /// [`DropReason::Rejected`] without a trace id, [`DropReason::TooLarge`] when even
    /// the trimmed text is over the limit.
    ///
    /// ```
    /// use xray_model::{AnyValue, Segment, SegmentId, TraceId};
    /// let mut seg = Segment::new("svc", SegmentId::from_u64(1), TraceId::from_u128(1), 1.0);
    /// seg.end_time = Some(2.0);
    /// seg.put_metadata("default", "blob", AnyValue::Str("x".repeat(100_000).into()));
    /// let (doc, trimmed) = xray_export::Document::encode_to_fit(&mut seg, &mut Vec::new()).unwrap();
    /// assert!(trimmed && doc.json().len() <= 64_000);
    /// ```
    pub fn encode_to_fit(
        segment: &mut Segment<'_>,
        scratch: &mut Vec<u8>,
    ) -> Result<(Document, bool), DropReason> {
        let doc = Document::encode(segment, scratch).ok_or(DropReason::Rejected)?;
        if doc.json.len() <= MAX_DOCUMENT_BYTES {
            return Ok((doc, false));
        }
        trim_to_fit(segment, MAX_DOCUMENT_BYTES);
        let doc = Document::encode(segment, scratch).ok_or(DropReason::Rejected)?;
        if doc.json.len() <= MAX_DOCUMENT_BYTES {
            Ok((doc, true))
        } else {
            Err(DropReason::TooLarge)
        }
    }

    /// The trace it belongs to.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// Its segment or subsegment id.
    pub fn id(&self) -> SegmentId {
        self.id
    }

    /// Its JSON text.
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    /// Its JSON text as a string (documents are always UTF-8).
    pub fn as_str(&self) -> &str {
        // Built from `write_json` output or checked in `from_json`.
        std::str::from_utf8(&self.json).unwrap_or_default()
    }
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Document")
            .field("trace_id", &self.trace_id.to_string())
            .field("id", &self.id.to_string())
            .field("bytes", &self.json.len())
            .finish()
    }
}

impl Item for Document {
    fn size(&self) -> usize {
        self.json.len()
    }

    fn spans(&self) -> u64 {
        1
    }

    fn describe(&self) -> String {
        format!("trace {} document {}", self.trace_id, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_documents_keep_their_ids_and_text() {
        let mut seg = Segment::new("svc", SegmentId::from_u64(7), TraceId::from_u128(9), 1.0);
        seg.end_time = Some(2.0);
        let mut scratch = Vec::with_capacity(1024);
        let doc = Document::encode(&seg, &mut scratch).unwrap();
        assert_eq!(doc.as_str(), seg.to_json());
        assert_eq!(doc.trace_id(), TraceId::from_u128(9));
        let again = Document::from_json(doc.json().to_vec()).unwrap();
        assert_eq!(again, doc);
        seg.trace_id = None;
        assert!(Document::encode(&seg, &mut scratch).is_none());
    }

    #[test]
    fn bad_json_is_refused_with_a_reason() {
        assert!(Document::from_json(b"{}".to_vec()).is_err());
        assert!(Document::from_json(vec![0xff, 0xfe]).is_err());
        assert!(matches!(
            Document::from_json(vec![b' '; MAX_DOCUMENT_BYTES + 1]),
            Err(DatagramError::TooLarge(_))
        ));
    }
}
