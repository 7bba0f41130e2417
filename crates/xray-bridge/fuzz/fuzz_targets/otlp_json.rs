//! Fuzzes the binary's OTLP/JSON path: the body of `POST /v1/traces` with
//! `Content-Type: application/json` is decoded as `otlp_http` does
//! (`serde_json::from_slice::<ExportTraceServiceRequest>`), and what decodes goes through the
//! steps of `otlp::Ingest::ingest`: the X-Ray check of each span, its translation, the
//! nesting of each `ResourceSpans`' subsegments and the encoding within 64 kB
//! (`Document::encode_tree`).
//!
//! Asserts: nothing panics (the binary catches a translation panic and counts the span as
//! `translate_failed`; here it is a finding); every (sub)segment translated comes out
//! exactly once, in a document or counted as unencodable, and so does every span once the
//! service segments the translator wraps around local-root Client and Producer spans are
//! taken off (the rule `Ingest::ingest` counts spans by: the only translations that carry
//! a subsegment); every document is at most 64 kB and is read back by the same check the
//! daemon path applies to documents it receives (`Document::from_json`), with the trace
//! and id it was encoded with.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use xray_export::Document;
use xray_model::limits::MAX_DOCUMENT_BYTES;
use xray_model::{SegmentId, nest_subsegments};
use xray_translate::Translator;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<ExportTraceServiceRequest>(data) else {
        return;
    };
    let translator = Translator::default();
    let mut scratch = Vec::new();
    for resource_spans in &request.resource_spans {
        let resource = translator.prepare_otlp(resource_spans.resource.as_ref());
        let mut segments = Vec::new();
        let mut wrappers = HashSet::new();
        for scope_spans in &resource_spans.scope_spans {
            let scope = scope_spans.scope.as_ref();
            for span in &scope_spans.spans {
                if xray_translate::check_otlp(span).is_ok() {
                    let segment = resource.translate_otlp(span, scope);
                    if !segment.subsegments.is_empty() {
                        assert_eq!(segment.span_count(), 2, "a translation with subsegments");
                        wrappers.insert(segment.id);
                    }
                    segments.push(segment);
                }
            }
        }
        let spans = segments.len() as u64;
        let units: u64 = segments.iter().map(|s| s.span_count() as u64).sum();
        let (mut units_out, mut spans_out) = (0u64, 0u64);
        for tree in nest_subsegments(segments) {
            let mut wrapper = Some(tree.id).filter(|id| wrappers.contains(id));
            let mut count = |id: SegmentId, n: u64| {
                units_out += n;
                spans_out += if wrapper == Some(id) {
                    wrapper = None;
                    n - 1
                } else {
                    n
                };
            };
            Document::encode_tree(tree, &mut scratch, |encoded| match encoded {
                Ok(doc) => {
                    count(doc.id(), doc.span_count());
                    assert!(doc.json().len() <= MAX_DOCUMENT_BYTES);
                    let back = Document::from_json(doc.json().to_vec()).unwrap_or_else(|e| {
                        panic!("{e}: {}", doc.as_str());
                    });
                    assert_eq!((back.trace_id(), back.id()), (doc.trace_id(), doc.id()));
                }
                Err(unencodable) => count(unencodable.id, unencodable.spans),
            });
        }
        assert_eq!(units_out, units, "(sub)segments in != out");
        assert_eq!(spans_out, spans, "spans in != out");
    }
});
