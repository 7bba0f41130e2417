//! What both OTLP receivers share: one request's spans translated to documents
//! (`xray-translate`), each `ResourceSpans`' subsegments nested into their parent's
//! document, fitted to X-Ray's size limit and queued, with every span counted.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use xray_export::{Document, DropReason};
use xray_model::nest_subsegments;
use xray_translate::Translator;

use crate::counters::{Counter, LogLimiter, Registry};
use crate::export::Sink;

thread_local! {
    /// The JSON buffer each receiver thread encodes into (reused between requests).
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(64 * 1024));
}

/// Why a span was not queued, with the text used in `partial_success.error_message`.
pub const SPAN_REJECT_REASONS: [(&str, &str); 4] = [
    ("invalid_id", "empty or all-zero trace or span id"),
    (
        "too_large",
        "document over X-Ray's 64 kB limit even after trimming",
    ),
    ("translate_failed", "the span could not be translated"),
    ("export_refused", "export queue full or shutting down"),
];

/// The counters of one OTLP protocol (`http` or `grpc`).
#[derive(Debug, Clone)]
pub struct OtlpCounters {
    /// Requests received (decoded or not).
    pub requests: Counter,
    /// Spans in decoded requests.
    pub spans_received: Counter,
    /// Spans queued for export.
    pub spans_accepted: Counter,
    /// Documents trimmed to fit 64 kB (metadata or stack frames removed).
    pub trimmed: Counter,
    span_rejects: Vec<(&'static str, Counter)>,
    registry: Registry,
    protocol: &'static str,
}

impl OtlpCounters {
    /// Registers the counters of `protocol`.
    pub fn new(registry: &Registry, protocol: &'static str) -> Self {
        let p = [("protocol", protocol)];
        OtlpCounters {
            requests: registry.counter(
                "xray_bridge_otlp_requests_total",
                "OTLP export requests received.",
                &p,
            ),
            spans_received: registry.counter(
                "xray_bridge_otlp_spans_received_total",
                "Spans in decoded OTLP requests.",
                &p,
            ),
            spans_accepted: registry.counter(
                "xray_bridge_otlp_spans_accepted_total",
                "Spans translated and queued for export.",
                &p,
            ),
            trimmed: registry.counter(
                "xray_bridge_otlp_documents_trimmed_total",
                "Documents trimmed to fit X-Ray's size limit.",
                &p,
            ),
            span_rejects: SPAN_REJECT_REASONS
                .iter()
                .map(|(reason, _)| {
                    (
                        *reason,
                        registry.counter(
                            "xray_bridge_otlp_spans_rejected_total",
                            "Spans not queued, by reason (export_refused ones are also counted in the exporter's drops).",
                            &[("protocol", protocol), ("reason", reason)],
                        ),
                    )
                })
                .collect(),
            registry: registry.clone(),
            protocol,
        }
    }

    /// Counts a request refused as a whole (undecodable, too large...).
    pub fn request_rejected(&self, reason: &str) {
        self.registry
            .counter(
                "xray_bridge_otlp_requests_rejected_total",
                "OTLP requests refused as a whole, by reason.",
                &[("protocol", self.protocol), ("reason", reason)],
            )
            .inc();
    }

    /// Spans rejected for `reason`.
    pub fn spans_rejected(&self, reason: &str) -> u64 {
        self.span_rejects
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, c)| c.get())
    }
}

/// What became of one request's spans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Spans queued.
    pub accepted: u64,
    /// Spans rejected, by reason index in [`SPAN_REJECT_REASONS`].
    pub rejected: [u64; SPAN_REJECT_REASONS.len()],
}

impl Outcome {
    /// Spans rejected for any reason.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    /// The OTLP response: `partial_success` set when any span was rejected.
    pub fn response(&self) -> ExportTraceServiceResponse {
        let rejected = self.rejected_total();
        if rejected == 0 {
            return ExportTraceServiceResponse {
                partial_success: None,
            };
        }
        let mut message = format!("{rejected} span(s) rejected:");
        for (i, n) in self.rejected.iter().enumerate() {
            if *n > 0 {
                let (reason, why) = SPAN_REJECT_REASONS[i];
                let _ = write!(message, " {n} {reason} ({why});");
            }
        }
        message.pop();
        ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: rejected as i64,
                error_message: message,
            }),
        }
    }
}

/// Above this share of the export queue's byte limit in use, OTLP requests wait before
/// they are read and translated: the clients slow down to the export's pace instead of
/// the queue overflowing (and dropping) under sustained overload.
pub const BACKLOG_HIGH: f64 = 0.25;

/// The longest a request waits for the export queue; after that it is taken anyway and
/// the queue's overflow policy applies.
pub const BACKLOG_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Translates OTLP requests and queues the documents.
#[derive(Clone)]
pub struct Ingest {
    translator: Translator,
    sink: Arc<dyn Sink>,
    limiter: Arc<LogLimiter>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest").finish_non_exhaustive()
    }
}

fn is_zero(id: &[u8]) -> bool {
    id.iter().all(|b| *b == 0)
}

impl Ingest {
    /// Uses `translator` and queues into `sink`.
    pub fn new(translator: Translator, sink: Arc<dyn Sink>) -> Self {
        Ingest {
            translator,
            sink,
            limiter: Arc::new(LogLimiter::new(std::time::Duration::from_secs(10))),
        }
    }

    /// Waits (up to [`BACKLOG_MAX_WAIT`]) while the export queue is over
    /// [`BACKLOG_HIGH`] of its limit.
    pub async fn wait_for_room(&self) {
        let deadline = std::time::Instant::now() + BACKLOG_MAX_WAIT;
        while self.sink.backlog() > BACKLOG_HIGH && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    /// Translates every span of the request, nests each `ResourceSpans`' subsegments into
    /// their parent's document when the parent is there too (`xray_model::nest_subsegments`,
    /// as the X-Ray SDKs send a segment), fits each document to 64 kB and queues it. Never
    /// panics; every span ends up accepted or rejected with a reason.
    pub fn ingest(&self, request: &ExportTraceServiceRequest, counters: &OtlpCounters) -> Outcome {
        // OTLP exports take the spans as they came; document exports take them
        // translated. With both, the translation's outcome answers the client (it rejects
        // the same invalid ids) and counts the spans; each export counts its own drops.
        let documents = self.sink.wants_documents();
        if self.sink.wants_otlp() {
            let outcome = self.pass_through(request, counters, !documents);
            if !documents {
                return outcome;
            }
        }
        let mut outcome = Outcome::default();
        let mut reject = |i: usize, spans: u64, name: &str| {
            outcome.rejected[i] += spans;
            counters.span_rejects[i].1.add(spans);
            let (reason, why) = SPAN_REJECT_REASONS[i];
            // The pipeline logs its own refusals.
            if i != 3
                && let Some(count) = self.limiter.allow(reason)
            {
                tracing::warn!(
                    reason,
                    protocol = counters.protocol,
                    count,
                    spans,
                    name = %name.chars().take(100).collect::<String>(),
                    "rejected OTLP span: {why}"
                );
            }
        };
        let mut accepted = 0;
        for resource_spans in &request.resource_spans {
            let resource = self
                .translator
                .prepare_otlp(resource_spans.resource.as_ref());
            let mut segments = Vec::new();
            for scope_spans in &resource_spans.scope_spans {
                let scope = scope_spans.scope.as_ref();
                for span in &scope_spans.spans {
                    counters.spans_received.inc();
                    if is_zero(&span.trace_id) || is_zero(&span.span_id) {
                        reject(0, 1, &span.name);
                        continue;
                    }
                    match catch_unwind(AssertUnwindSafe(|| resource.translate_otlp(span, scope))) {
                        Ok(segment) => segments.push(segment),
                        Err(_) => reject(2, 1, &span.name),
                    }
                }
            }
            for tree in nest_subsegments(segments) {
                // Whole when it fits 64 kB, else split (largest subsegments moved out, a lone
                // document too large trimmed): `Document::encode_tree`, as the exporter does.
                let trimmed = SCRATCH.with(|scratch| {
                    Document::encode_tree(tree, &mut scratch.borrow_mut(), |encoded| {
                        match encoded {
                            Ok(doc) => {
                                let spans = doc.span_count();
                                if self.sink.submit_document(doc) {
                                    accepted += spans;
                                } else {
                                    reject(3, spans, "");
                                }
                            }
                            Err(failed) => {
                                let what = format!("document {}", failed.id);
                                // Without a trace id (never from the translator): not
                                // translatable into something X-Ray accepts.
                                let i = if failed.reason == DropReason::TooLarge {
                                    1
                                } else {
                                    2
                                };
                                reject(i, failed.spans, &what);
                            }
                        }
                    })
                });
                counters.trimmed.add(trimmed as u64);
            }
        }
        outcome.accepted = accepted;
        counters.spans_accepted.add(accepted);
        outcome
    }
}

impl Ingest {
    /// OTLP exports: spans stay OTLP, one queued item per `ResourceSpans`; spans with
    /// invalid ids are taken out first. `count`: whether this path counts the receiver's
    /// spans (not when the translation for document exports does).
    fn pass_through(
        &self,
        request: &ExportTraceServiceRequest,
        counters: &OtlpCounters,
        count: bool,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        let valid = |s: &Span| !is_zero(&s.trace_id) && !is_zero(&s.span_id);
        for resource_spans in &request.resource_spans {
            let total: u64 = resource_spans
                .scope_spans
                .iter()
                .map(|s| s.spans.len() as u64)
                .sum();
            if count {
                counters.spans_received.add(total);
            }
            let good: u64 = resource_spans
                .scope_spans
                .iter()
                .flat_map(|s| &s.spans)
                .filter(|s| valid(s))
                .count() as u64;
            let bad = total - good;
            if bad > 0 && count {
                outcome.rejected[0] += bad;
                counters.span_rejects[0].1.add(bad);
                if let Some(count) = self.limiter.allow("invalid_id") {
                    tracing::warn!(
                        reason = "invalid_id",
                        count,
                        "rejected {bad} OTLP span(s): {}",
                        SPAN_REJECT_REASONS[0].1
                    );
                }
            }
            if good == 0 {
                continue;
            }
            let filtered;
            let to_send = if bad == 0 {
                resource_spans
            } else {
                let mut copy = resource_spans.clone();
                for scope in &mut copy.scope_spans {
                    scope.spans.retain(valid);
                }
                copy.scope_spans.retain(|s| !s.spans.is_empty());
                filtered = copy;
                &filtered
            };
            let queued = self.sink.submit_otlp(to_send);
            if !count {
                continue;
            }
            if queued {
                outcome.accepted += good;
                counters.spans_accepted.add(good);
            } else {
                outcome.rejected[3] += good;
                counters.span_rejects[3].1.add(good);
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::memory::MemorySink;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    use xray_model::limits::MAX_DOCUMENT_BYTES;

    pub(crate) fn span(trace: u8, id: u8, name: &str) -> Span {
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            name: name.to_owned(),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_500_000_000,
            ..Default::default()
        }
    }

    pub(crate) fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("checkout".into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn good_spans_are_queued_and_bad_ones_rejected_with_reasons() {
        let sink = Arc::new(MemorySink::default());
        let counters = OtlpCounters::new(&Registry::default(), "http");
        let ingest = Ingest::new(Translator::default(), sink.clone());
        let mut no_trace = span(0, 3, "zero");
        no_trace.trace_id.clear();
        let mut huge = span(4, 4, "huge");
        huge.attributes = (0..2000)
            .map(|i| KeyValue {
                key: format!("annotation.k{i}"),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("v".repeat(200))),
                }),
                ..Default::default()
            })
            .collect();
        let req = request(vec![
            span(1, 1, "GET /users/{id}"),
            no_trace,
            span(2, 0, "zero-id"),
            huge,
        ]);
        let outcome = ingest.ingest(&req, &counters);
        assert_eq!(outcome.accepted + outcome.rejected_total(), 4);
        assert_eq!(outcome.rejected[0], 2);
        let docs = sink.texts();
        assert!(docs[0].contains("\"name\":\"checkout\""), "{}", docs[0]);
        for d in &docs {
            assert!(d.len() <= MAX_DOCUMENT_BYTES);
            xray_testkit::assert_schema_valid(d);
        }
        let response = outcome.response();
        let partial = response.partial_success.unwrap();
        assert_eq!(partial.rejected_spans, outcome.rejected_total() as i64);
        assert!(
            partial.error_message.contains("invalid_id"),
            "{}",
            partial.error_message
        );
        assert_eq!(counters.spans_received.get(), 4);
        assert_eq!(counters.spans_rejected("invalid_id"), 2);
    }

    #[test]
    fn refusals_by_the_exporter_are_reported_as_partial_success() {
        let sink = Arc::new(MemorySink {
            capacity: Some(1),
            ..Default::default()
        });
        let counters = OtlpCounters::new(&Registry::default(), "grpc");
        let ingest = Ingest::new(Translator::default(), sink);
        let outcome = ingest.ingest(&request(vec![span(1, 1, "a"), span(1, 2, "b")]), &counters);
        assert_eq!(outcome.accepted, 1);
        assert_eq!(outcome.rejected[3], 1);
        assert_eq!(counters.spans_rejected("export_refused"), 1);
        assert!(
            outcome
                .response()
                .partial_success
                .unwrap()
                .error_message
                .contains("export_refused")
        );
        assert_eq!(Outcome::default().response().partial_success, None);
    }

    #[test]
    fn otlp_export_passes_spans_through_without_the_invalid_ones() {
        let sink = Arc::new(MemorySink {
            otlp: Some(Default::default()),
            ..Default::default()
        });
        let counters = OtlpCounters::new(&Registry::default(), "http");
        let ingest = Ingest::new(Translator::default(), sink.clone());
        let outcome = ingest.ingest(
            &request(vec![span(1, 1, "a"), span(0, 2, "bad"), span(1, 3, "c")]),
            &counters,
        );
        assert_eq!(outcome.accepted, 2);
        assert_eq!(outcome.rejected[0], 1);
        let got = sink.otlp.as_ref().unwrap().lock().unwrap();
        let names: Vec<&str> = got[0].scope_spans[0]
            .spans
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["a", "c"]);
        assert!(got[0].resource.is_some());
        assert!(sink.docs.lock().unwrap().is_empty());
    }
}
