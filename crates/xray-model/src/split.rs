//! Making every document fit X-Ray's size limit without losing any (sub)segment.

use std::borrow::Cow;
use std::cell::RefCell;

use crate::document::{AnyValue, Cause, Segment};
use crate::limits::{MAX_DOCUMENT_BYTES, truncate};

/// How many bytes of JSON the document takes: the length of the text the document writer
/// makes (the one writer, so size checks and the wire always agree). The text is written
/// into a per-thread scratch buffer that is reused, so measuring allocates nothing.
pub fn encoded_len(doc: &Segment<'_>) -> usize {
    thread_local! {
        static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            doc.write_json(&mut buf);
            let len = buf.len();
            // Keep a large document's buffer from pinning memory forever.
            if buf.capacity() > 4 * crate::limits::MAX_DOCUMENT_BYTES {
                *buf = Vec::new();
            }
            len
        }
        // Only reachable if writing re-entered `encoded_len`; measure into a fresh buffer.
        Err(_) => {
            let mut buf = Vec::new();
            doc.write_json(&mut buf);
            buf.len()
        }
    })
}

/// What [`split_to_fit`] had to do beyond splitting.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SplitReport {
    /// Subsegments moved out into standalone documents.
    pub detached: usize,
    /// Documents that were still too large alone and had data trimmed (see [`trim_to_fit`]).
    pub trimmed: usize,
}

/// Splits a segment tree into documents of at most `max_bytes` each (use
/// [`MAX_DOCUMENT_BYTES`]).
///
/// A document that fits is returned as it is. Otherwise its largest subsegments are moved
/// out, one at a time, into standalone subsegment documents (`type`, `trace_id`,
/// `parent_id` set) until the rest fits, and each moved subsegment is split the same way.
/// A single (sub)segment still too large alone is trimmed by [`trim_to_fit`]. No
/// (sub)segment is ever dropped. The first document returned is the original root.
///
/// # Examples
///
/// ```
/// use xray_model::{Segment, SegmentId, TraceId, split_to_fit};
/// let mut root = Segment::new("svc", SegmentId::from_u64(1), TraceId::from_u128(1), 0.0);
/// for i in 0..300u64 {
///     let mut child = Segment::default();
///     child.name = format!("call-{i}-{}", "x".repeat(180)).into();
///     child.id = SegmentId::from_u64(i + 2);
///     root.subsegments.push(child);
/// }
/// let (docs, report) = split_to_fit(root, 16_000);
/// assert!(docs.len() > 1 && report.detached > 0);
/// assert!(docs.iter().all(|d| xray_model::encoded_len(d) <= 16_000));
/// ```
pub fn split_to_fit(root: Segment<'_>, max_bytes: usize) -> (Vec<Segment<'_>>, SplitReport) {
    let mut report = SplitReport::default();
    let mut out = Vec::new();
    let trace_id = root.trace_id;
    let mut pending = vec![root];
    while let Some(mut doc) = pending.pop() {
        let mut size = encoded_len(&doc);
        if size > max_bytes && !doc.subsegments.is_empty() {
            let trace_id = doc.trace_id.or(trace_id).unwrap_or_default();
            // Sizes of the embedded children, largest moved out first.
            let mut sizes: Vec<(usize, usize)> = doc
                .subsegments
                .iter()
                .enumerate()
                .map(|(i, s)| (encoded_len(s) + 1, i))
                .collect();
            sizes.sort_unstable_by(|a, b| b.cmp(a));
            let mut moved = vec![false; doc.subsegments.len()];
            for &(child_size, index) in &sizes {
                if size <= max_bytes {
                    break;
                }
                moved[index] = true;
                size = size.saturating_sub(child_size);
            }
            let children = std::mem::take(&mut doc.subsegments);
            for (child, was_moved) in children.into_iter().zip(moved) {
                if was_moved {
                    let mut child = child;
                    child.detach(trace_id, doc.id);
                    report.detached += 1;
                    pending.push(child);
                } else {
                    doc.subsegments.push(child);
                }
            }
            // Removing the last child also removes the `subsegments` key: measure again.
            size = encoded_len(&doc);
        }
        if size > max_bytes && trim_to_fit(&mut doc, max_bytes) {
            report.trimmed += 1;
        }
        out.push(doc);
    }
    // Keep the root first; the order of the others follows the tree walk.
    (out, report)
}

/// Trims a document that is too large even without subsegments: metadata goes first (a
/// note under `metadata.default["xray_bridge.trimmed"]` says so), then stack frames
/// (recorded in each exception's `truncated`), then long messages and queries are cut to
/// 1,000 characters, then embedded subsegments are cut back likewise. Returns whether
/// anything was trimmed. Names, ids, times and status flags are never touched.
pub fn trim_to_fit(doc: &mut Segment<'_>, max_bytes: usize) -> bool {
    if encoded_len(doc) <= max_bytes {
        return false;
    }
    if !doc.metadata.is_empty() {
        doc.metadata = Default::default();
        doc.put_metadata(
            "default",
            "xray_bridge.trimmed",
            AnyValue::Str(Cow::Borrowed("metadata removed: document over size limit")),
        );
        if encoded_len(doc) <= max_bytes {
            return true;
        }
    }
    if let Some(Cause::Details(details)) = &mut doc.cause {
        for exception in &mut details.exceptions {
            let frames = exception.stack.len() as u32;
            if frames > 0 {
                exception.stack.clear();
                exception.truncated = Some(exception.truncated.unwrap_or(0) + frames);
            }
            if let Some(message) = exception.message.take() {
                exception.message = Some(truncate(message, 1000));
            }
        }
        details.paths.clear();
        if encoded_len(doc) <= max_bytes {
            return true;
        }
    }
    if let Some(sql) = &mut doc.sql
        && let Some(query) = sql.sanitized_query.take()
    {
        sql.sanitized_query = Some(truncate(query, 1000));
    }
    doc.links.truncate(10);
    for child in &mut doc.subsegments {
        trim_to_fit(child, max_bytes / 8);
    }
    if encoded_len(doc) > max_bytes {
        doc.annotations = Default::default();
    }
    true
}

/// [`split_to_fit`] with X-Ray's limit, [`MAX_DOCUMENT_BYTES`].
pub fn split_to_document_limit(root: Segment<'_>) -> (Vec<Segment<'_>>, SplitReport) {
    split_to_fit(root, MAX_DOCUMENT_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{CauseDetails, Exception, StackFrame};
    use crate::{SegmentId, TraceId};

    fn seg(id: u64, name: &str) -> Segment<'static> {
        let mut s = Segment::new(
            name.to_owned(),
            SegmentId::from_u64(id),
            TraceId::from_u128(9),
            1.0,
        );
        s.trace_id = None;
        s.end_time = Some(2.0);
        s
    }

    #[test]
    fn small_documents_are_untouched() {
        let mut root = seg(1, "root");
        root.trace_id = Some(TraceId::from_u128(9));
        root.subsegments.push(seg(2, "child"));
        let (docs, report) = split_to_fit(root.clone(), 64_000);
        assert_eq!(docs, vec![root]);
        assert_eq!(report, SplitReport::default());
    }

    #[test]
    fn nested_trees_split_and_keep_every_subsegment() {
        let mut root = seg(1, "root");
        root.trace_id = Some(TraceId::from_u128(9));
        let mut id = 2;
        for _ in 0..30 {
            let mut mid = seg(id, &"m".repeat(150));
            id += 1;
            for _ in 0..30 {
                mid.subsegments.push(seg(id, &"l".repeat(150)));
                id += 1;
            }
            root.subsegments.push(mid);
        }
        let (docs, report) = split_to_fit(root, 8_000);
        assert!(docs.iter().all(|d| encoded_len(d) <= 8_000));
        assert_eq!(docs[0].id, SegmentId::from_u64(1));
        assert!(report.detached > 0);
        let mut count = 0;
        fn walk(s: &Segment<'_>, count: &mut usize) {
            *count += 1;
            s.subsegments.iter().for_each(|c| walk(c, count));
        }
        for d in &docs {
            walk(d, &mut count);
            if d.id != SegmentId::from_u64(1) {
                assert!(d.is_standalone_subsegment());
                assert_eq!(d.trace_id, Some(TraceId::from_u128(9)));
                assert!(d.parent_id.is_some());
            }
        }
        assert_eq!(count, id as usize - 1);
    }

    #[test]
    fn a_lone_huge_document_is_trimmed_not_dropped() {
        let mut root = seg(1, "root");
        root.trace_id = Some(TraceId::from_u128(9));
        root.fault = true;
        root.put_metadata("default", "blob", AnyValue::Str("x".repeat(100_000).into()));
        root.cause = Some(Cause::Details(CauseDetails {
            exceptions: vec![Exception {
                id: SegmentId::from_u64(5),
                message: Some("m".repeat(70_000).into()),
                stack: vec![StackFrame::default(); 3],
                ..Default::default()
            }],
            ..Default::default()
        }));
        let (docs, report) = split_to_fit(root, 64_000);
        assert_eq!(docs.len(), 1);
        assert_eq!(report.trimmed, 1);
        assert!(encoded_len(&docs[0]) <= 64_000);
        assert!(docs[0].fault);
        let Some(Cause::Details(d)) = &docs[0].cause else {
            panic!("cause kept")
        };
        assert_eq!(d.exceptions[0].truncated, Some(3));
    }
}
