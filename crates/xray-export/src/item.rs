//! What the queue holds: encoded segment documents, or encoded OTLP spans.

use std::fmt;

use xray_model::datagram::{DatagramError, summarize_document};
use xray_model::limits::MAX_DOCUMENT_BYTES;
use xray_model::{Nesting, Segment, SegmentId, TraceId, split_to_fit, trim_to_fit};

use crate::metrics::DropReason;

/// Something a [`crate::Pipeline`] can queue and a [`crate::Transport`] can send.
pub trait Item: Send + 'static {
    /// Bytes it occupies (what the queue's memory limit counts).
    fn size(&self) -> usize;
    /// Spans it carries (for the span counters).
    fn spans(&self) -> u64;
    /// A short description for log lines, such as the trace id.
    fn describe(&self) -> String;

    /// Appends the bytes the disk spool keeps for this item and returns `true`, or
    /// returns `false` when the type cannot be spooled (the default: it stays in memory).
    fn write_record(&self, out: &mut Vec<u8>) -> bool {
        let _ = out;
        false
    }

    /// Reads an item back from what [`Item::write_record`] wrote (`spans` is its span
    /// count); `None` when the bytes are not a valid item.
    fn read_record(bytes: &[u8], spans: u32) -> Option<Self>
    where
        Self: Sized,
    {
        let _ = (bytes, spans);
        None
    }
}

/// One encoded segment document: its JSON text plus the ids transports need.
#[derive(Clone, PartialEq, Eq)]
pub struct Document {
    trace_id: TraceId,
    id: SegmentId,
    spans: u32,
    json: Box<[u8]>,
    /// Not segment JSON ([`Document::opaque`]): the spool keeps its ids beside it.
    opaque: bool,
}

/// A document [`Document::encode_tree`] could not encode, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unencodable {
    /// [`DropReason::Rejected`] without a trace id, [`DropReason::TooLarge`] when even the
    /// trimmed text is over the limit.
    pub reason: DropReason,
    /// Its trace, when it has one.
    pub trace_id: Option<TraceId>,
    /// Its (sub)segment id.
    pub id: SegmentId,
    /// The spans it carries (itself and its embedded subsegments).
    pub spans: u64,
}

impl Document {
    /// Checks JSON text that arrived already encoded (e.g. from a daemon datagram, see
    /// `xray_model::parse_datagram`) and keeps it byte for byte. It counts as one span,
    /// whatever it embeds.
    ///
    /// # Errors
    ///
    /// [`DatagramError::TooLarge`] over X-Ray's 64 kB document limit,
    /// [`DatagramError::NotUtf8`], and [`DatagramError::BadDocument`] for text that
    /// `xray_model::datagram::summarize_document` refuses (not one object, a required field
    /// missing).
    ///
    /// # Examples
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
            spans: 1,
            json: json.into_boxed_slice(),
            opaque: false,
        })
    }

    /// A body `PutTraceSegments` takes as it is that is not segment JSON: ADOT's `T1S` or
    /// `T1U` followed by base64 OTLP, which the X-Ray daemon forwards untouched. The
    /// caller has decoded it: `trace_id` and `id` name its first span, `spans` counts its
    /// spans. Kept byte for byte.
    ///
    /// # Errors
    ///
    /// [`DatagramError::TooLarge`] over X-Ray's 64 kB document limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use xray_model::{SegmentId, TraceId};
    /// let doc = xray_export::Document::opaque(
    ///     b"T1SCgA=".to_vec(), TraceId::from_u128(1), SegmentId::from_u64(1), 1,
    /// ).unwrap();
    /// assert_eq!(doc.json(), b"T1SCgA=");
    /// ```
    pub fn opaque(
        body: Vec<u8>,
        trace_id: TraceId,
        id: SegmentId,
        spans: u32,
    ) -> Result<Document, DatagramError> {
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(DatagramError::TooLarge(body.len()));
        }
        Ok(Document {
            trace_id,
            id,
            spans,
            json: body.into_boxed_slice(),
            opaque: true,
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
            spans: u32::try_from(segment.span_count()).unwrap_or(u32::MAX),
            json: scratch.as_slice().into(),
            opaque: false,
        })
    }

    /// Encodes a translated document within X-Ray's size limit: when its JSON is over
    /// [`MAX_DOCUMENT_BYTES`] it is trimmed with `xray_model::trim_to_fit` (metadata,
    /// stack frames and long strings go; names, ids, times and flags stay) and encoded
    /// again. Returns the document and whether it was trimmed, or why it cannot be sent:
    /// [`DropReason::Rejected`] without a trace id, [`DropReason::TooLarge`] when even
    /// the trimmed text is over the limit.
    ///
    /// # Errors
    ///
    /// The [`DropReason`] to count the document under: [`DropReason::Rejected`] or
    /// [`DropReason::TooLarge`], as above.
    ///
    /// # Examples
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

    /// Encodes a top-level document that may embed subsegments (see
    /// `xray_model::nest_subsegments`) as documents within X-Ray's size limit, handing each
    /// to `emit`: one document when it fits; otherwise its largest subsegments move out
    /// into standalone documents (`xray_model::split_to_fit`) and a single one still too
    /// large is trimmed. No subsegment is lost on the way: what cannot be encoded comes to
    /// `emit` as an [`Unencodable`] with its reason. Returns how many documents were
    /// trimmed.
    ///
    /// # Examples
    ///
    /// ```
    /// use xray_model::{Segment, SegmentId, TraceId};
    /// let trace = TraceId::from_u128(1);
    /// let mut root = Segment::new("svc", SegmentId::from_u64(1), trace, 1.0);
    /// for i in 0..100u64 {
    ///     let mut child = Segment::new("x".repeat(190), SegmentId::from_u64(i + 2), trace, 1.0);
    ///     child.put_metadata("default", "blob", xray_model::AnyValue::Str("y".repeat(2_000).into()));
    ///     (child.trace_id, child.end_time) = (None, Some(2.0));
    ///     root.subsegments.push(child);
    /// }
    /// root.end_time = Some(2.0);
    /// let mut docs = Vec::new();
    /// let trimmed = xray_export::Document::encode_tree(root, &mut Vec::new(), |d| docs.push(d.unwrap()));
    /// assert_eq!(trimmed, 0);
    /// assert!(docs.len() > 1 && docs.iter().all(|d| d.json().len() <= 64_000));
    /// assert_eq!(docs.iter().map(|d| d.span_count()).sum::<u64>(), 101);
    /// ```
    pub fn encode_tree(
        mut segment: Segment<'_>,
        scratch: &mut Vec<u8>,
        mut emit: impl FnMut(Result<Document, Unencodable>),
    ) -> usize {
        let unencodable = |reason, doc: &Segment<'_>| Unencodable {
            reason,
            trace_id: doc.trace_id,
            id: doc.id,
            spans: doc.span_count() as u64,
        };
        if segment.subsegments.is_empty() {
            return Document::encode_leaf(&mut segment, scratch, emit);
        }
        let Some(doc) = Document::encode(&segment, scratch) else {
            emit(Err(unencodable(DropReason::Rejected, &segment)));
            return 0;
        };
        if doc.json.len() <= MAX_DOCUMENT_BYTES {
            emit(Ok(doc));
            return 0;
        }
        let (pieces, report) = split_to_fit(segment, MAX_DOCUMENT_BYTES);
        for piece in pieces {
            match Document::encode(&piece, scratch) {
                Some(doc) if doc.json.len() <= MAX_DOCUMENT_BYTES => emit(Ok(doc)),
                Some(_) => emit(Err(unencodable(DropReason::TooLarge, &piece))),
                None => emit(Err(unencodable(DropReason::Rejected, &piece))),
            }
        }
        report.trimmed
    }

    /// A document without subsegments, within the size limit (see
    /// [`Document::encode_to_fit`]); returns 1 when it was trimmed.
    fn encode_leaf(
        segment: &mut Segment<'_>,
        scratch: &mut Vec<u8>,
        mut emit: impl FnMut(Result<Document, Unencodable>),
    ) -> usize {
        match Document::encode_to_fit(segment, scratch) {
            Ok((doc, trimmed)) => {
                emit(Ok(doc));
                usize::from(trimmed)
            }
            Err(reason) => {
                emit(Err(Unencodable {
                    reason,
                    trace_id: segment.trace_id,
                    id: segment.id,
                    spans: segment.span_count() as u64,
                }));
                0
            }
        }
    }

    /// Encodes top-level document `root` of a batch that `nesting` nests
    /// (`xray_model::Nesting::of(segments)`), giving `emit` what [`Document::encode_tree`]
    /// gives for `nesting.take_tree(segments, root)`. The tree's JSON is written once,
    /// straight from the batch; only a tree over X-Ray's size limit (or without a trace
    /// id) is moved into one document, to be split or refused as `encode_tree` does.
    /// Returns how many documents were trimmed.
    ///
    /// # Examples
    ///
    /// ```
    /// use xray_model::{Nesting, Segment, SegmentId, TraceId};
    /// let trace = TraceId::from_u128(1);
    /// let mut child = Segment::new("db", SegmentId::from_u64(2), trace, 1.5);
    /// child.detach(trace, SegmentId::from_u64(1));
    /// let mut batch = vec![child, Segment::new("svc", SegmentId::from_u64(1), trace, 1.0)];
    /// let nesting = Nesting::of(&batch);
    /// let mut docs = Vec::new();
    /// for root in nesting.top_level() {
    ///     xray_export::Document::encode_nested(&mut batch, &nesting, root, &mut Vec::new(), |d| docs.push(d.unwrap()));
    /// }
    /// assert_eq!(docs.len(), 1);
    /// assert_eq!(docs[0].span_count(), 2);
    /// assert!(docs[0].as_str().contains(r#""subsegments":[{"name":"db""#));
    /// ```
    pub fn encode_nested(
        segments: &mut [Segment<'_>],
        nesting: &Nesting,
        root: usize,
        scratch: &mut Vec<u8>,
        mut emit: impl FnMut(Result<Document, Unencodable>),
    ) -> usize {
        let Some(segment) = segments.get_mut(root) else {
            return 0;
        };
        if nesting.children(root).is_empty() {
            return if segment.subsegments.is_empty() {
                Document::encode_leaf(segment, scratch, emit)
            } else {
                Document::encode_tree(std::mem::take(segment), scratch, emit)
            };
        }
        if let Some(trace_id) = segment.trace_id {
            let id = segment.id;
            scratch.clear();
            nesting.write_json(segments, root, scratch);
            if scratch.len() <= MAX_DOCUMENT_BYTES {
                let spans = nesting.span_count(segments, root);
                emit(Ok(Document {
                    trace_id,
                    id,
                    spans: u32::try_from(spans).unwrap_or(u32::MAX),
                    json: scratch.as_slice().into(),
                    opaque: false,
                }));
                return 0;
            }
        }
        Document::encode_tree(nesting.take_tree(segments, root), scratch, emit)
    }

    /// The same document counted as carrying no span (an in-progress document, whose
    /// span is counted when its complete document is sent).
    pub(crate) fn carrying_no_span(mut self) -> Document {
        self.spans = 0;
        self
    }

    /// The spans it carries: itself and its embedded subsegments.
    pub fn span_count(&self) -> u64 {
        u64::from(self.spans)
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

/// The first byte of a spool record holding an opaque document.
const OPAQUE_RECORD: u8 = 0;

impl Item for Document {
    fn size(&self) -> usize {
        self.json.len()
    }

    fn spans(&self) -> u64 {
        self.span_count()
    }

    fn describe(&self) -> String {
        format!("trace {} document {}", self.trace_id, self.id)
    }

    fn write_record(&self, out: &mut Vec<u8>) -> bool {
        if self.opaque {
            // A byte no JSON text starts with, then the ids the body does not show.
            out.push(OPAQUE_RECORD);
            out.extend_from_slice(&self.trace_id.to_bytes());
            out.extend_from_slice(&self.id.to_bytes());
        }
        out.extend_from_slice(&self.json);
        true
    }

    fn read_record(bytes: &[u8], spans: u32) -> Option<Self> {
        if let Some(rest) = bytes.strip_prefix(&[OPAQUE_RECORD]) {
            let trace: [u8; 16] = rest.get(..16)?.try_into().ok()?;
            let id: [u8; 8] = rest.get(16..24)?.try_into().ok()?;
            let body = rest.get(24..)?.to_vec();
            return Document::opaque(
                body,
                TraceId::from_bytes(trace),
                SegmentId::from_bytes(id),
                spans.max(1),
            )
            .ok();
        }
        let mut doc = Document::from_json(bytes.to_vec()).ok()?;
        doc.spans = spans.max(1);
        Some(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xray_model::{AnyValue, nest_subsegments};

    /// A random batch: ids from a small pool (repeats), parents among them or not,
    /// segments and subsegments, two traces, now and then no trace, a subsegment held
    /// already, a document too large alone, a chain deeper than nesting goes.
    fn random_batch(seed: u64) -> Vec<Segment<'static>> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let len = next(40) as usize;
        let mut batch = Vec::with_capacity(len + 40);
        for _ in 0..len {
            let trace = TraceId::from_u128(1 + u128::from(next(2)));
            let id = SegmentId::from_u64(1 + next(30));
            let mut doc = Segment::new(format!("s{}", next(1000)), id, trace, 1.5);
            doc.end_time = Some(2.0);
            if next(4) > 0 {
                doc.detach(trace, SegmentId::from_u64(1 + next(30)));
            }
            if next(20) == 0 {
                doc.trace_id = None;
            }
            if next(10) == 0 {
                doc.subsegments
                    .push(Segment::new("held", SegmentId::from_u64(99), trace, 1.6));
            }
            if next(25) == 0 {
                let blob = "x".repeat(30_000 + next(40_000) as usize);
                doc.put_metadata("default", "blob", AnyValue::Str(blob.into()));
            }
            batch.push(doc);
        }
        if next(5) == 0 {
            let trace = TraceId::from_u128(3);
            batch.push(Segment::new("top", SegmentId::from_u64(1000), trace, 1.0));
            for i in 1..40u64 {
                let mut doc = Segment::new("deep", SegmentId::from_u64(1000 + i), trace, 1.0);
                doc.detach(trace, SegmentId::from_u64(999 + i));
                batch.push(doc);
            }
        }
        batch
    }

    #[test]
    fn nested_encoding_gives_what_nesting_then_encoding_the_tree_gives() {
        for seed in 0..400 {
            let batch = random_batch(seed);
            let mut want = Vec::new();
            let mut want_trimmed = 0;
            for tree in nest_subsegments(batch.clone()) {
                want_trimmed += Document::encode_tree(tree, &mut Vec::new(), |d| want.push(d));
            }
            let mut batch = batch;
            let nesting = Nesting::of(&batch);
            let mut got = Vec::new();
            let mut got_trimmed = 0;
            let mut scratch = Vec::new();
            for root in nesting.top_level() {
                got_trimmed +=
                    Document::encode_nested(&mut batch, &nesting, root, &mut scratch, |d| {
                        got.push(d)
                    });
            }
            assert_eq!(got, want, "seed {seed}");
            assert_eq!(got_trimmed, want_trimmed, "seed {seed}");
        }
    }

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
    fn documents_round_trip_through_spool_records() {
        let doc = Document::from_json(
            br#"{"name":"a","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1,"end_time":2}"#.to_vec(),
        )
        .unwrap();
        let mut out = Vec::new();
        assert!(doc.write_record(&mut out));
        let back = Document::read_record(&out, 3).unwrap();
        assert_eq!((back.json(), back.spans()), (doc.json(), 3));
        assert!(Document::read_record(b"{", 1).is_none());
        // ADOT bodies keep their bytes and ids through the spool.
        let opaque = Document::opaque(
            b"T1SCgA=".to_vec(),
            TraceId::from_u128(5),
            SegmentId::from_u64(6),
            2,
        )
        .unwrap();
        let mut out = Vec::new();
        assert!(opaque.write_record(&mut out));
        let back = Document::read_record(&out, 2).unwrap();
        assert_eq!(back, opaque);
        assert!(Document::read_record(&out[..10], 2).is_none());
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
