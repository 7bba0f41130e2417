//! What both OTLP receivers share: one request's spans translated to documents
//! (`xray-translate`), each `ResourceSpans`' subsegments nested into their parent's
//! document, fitted to X-Ray's size limit and queued, with every span counted.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use xray_export::{Document, DropReason};
use xray_model::{Nesting, Segment, SegmentId};
use xray_translate::{
    Invalid, OtlpSpan, PreparedResource, SpanView, Translator, TranslatorConfig, WireRequest,
};

use crate::counters::{Counter, LogLimiter, Registry};
use crate::export::Sink;

thread_local! {
    /// The JSON buffer each receiver thread encodes into (reused between requests).
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(64 * 1024));
}

/// Why a span was not queued, with the text used in `partial_success.error_message`.
pub const SPAN_REJECT_REASONS: [(&str, &str); 5] = [
    (
        "invalid_id",
        "trace or span id of the wrong length (or all zeros)",
    ),
    (
        "too_large",
        "document over X-Ray's 64 kB limit even after trimming",
    ),
    ("translate_failed", "the span could not be translated"),
    ("export_refused", "export queue full or shutting down"),
    (
        "invalid_time",
        "start or end time before 1970 or after 2200",
    ),
];

/// Whether a freshly translated segment is the service segment the translator wraps
/// around a local-root Client or Producer span (as ADOT does): the only translation that
/// carries a subsegment, the call. That segment is no span of the request, and being a
/// segment it stays a top-level document through `nest_subsegments`.
fn is_service_wrapper(segment: &Segment<'_>) -> bool {
    !segment.subsegments.is_empty()
}

/// Index of a reason in [`SPAN_REJECT_REASONS`].
const INVALID_ID: usize = 0;
const EXPORT_REFUSED: usize = 3;
const INVALID_TIME: usize = 4;

/// Whether X-Ray can take the span, else the index of the reason it is rejected for
/// (`xray_translate::check`: ids of the wrong length, times outside 1970..2200).
fn check<'a>(span: &impl SpanView<'a>) -> Result<(), usize> {
    xray_translate::check(span).map_err(|invalid| match invalid {
        Invalid::Id => INVALID_ID,
        Invalid::Time => INVALID_TIME,
    })
}

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
        let mut translation = Translation::new(self, counters);
        for resource_spans in &request.resource_spans {
            let resource = self
                .translator
                .prepare_otlp(resource_spans.resource.as_ref());
            let spans = resource_spans.scope_spans.iter().flat_map(|scope_spans| {
                let scope = scope_spans.scope.as_ref();
                scope_spans
                    .spans
                    .iter()
                    .map(move |span| OtlpSpan::new(span, None, scope))
            });
            translation.resource_spans(&resource, spans);
        }
        translation.finish()
    }

    /// [`Ingest::ingest`] for a protobuf `ExportTraceServiceRequest` body: the one place
    /// that chooses how it is decoded. Read in place ([`WireRequest`], no allocation per
    /// attribute) when only documents are exported and the view takes the request;
    /// decoded into `opentelemetry-proto`'s owned types otherwise: for OTLP exports, which
    /// pass the owned request on, for the rare well-formed request the view leaves to
    /// prost (a singular field given twice, a group, deep nesting), and for a malformed
    /// body, so that its rejection carries prost's own error. The documents, counters and
    /// answer are the same either way.
    ///
    /// # Errors
    ///
    /// prost's error when the body is not an `ExportTraceServiceRequest`.
    pub fn ingest_protobuf(
        &self,
        body: &[u8],
        counters: &OtlpCounters,
    ) -> Result<Outcome, prost::DecodeError> {
        if !self.sink.wants_otlp()
            && let Ok(request) = WireRequest::parse(body)
        {
            return Ok(self.ingest_wire(&request, counters));
        }
        let request = <ExportTraceServiceRequest as prost::Message>::decode(body)?;
        Ok(self.ingest(&request, counters))
    }

    /// [`Ingest::ingest`] for a request read in place, for document exports only.
    fn ingest_wire(&self, request: &WireRequest<'_>, counters: &OtlpCounters) -> Outcome {
        let mut translation = Translation::new(self, counters);
        for resource_spans in request.resource_spans() {
            let resource = self.translator.prepare(resource_spans.resource());
            translation.resource_spans(&resource, resource_spans.spans());
        }
        translation.finish()
    }
}

/// One request's translation for document exports: the spans of each `ResourceSpans`
/// checked, translated, nested, encoded and queued, whatever decoded them.
struct Translation<'i> {
    ingest: &'i Ingest,
    counters: &'i OtlpCounters,
    outcome: Outcome,
    accepted: u64,
}

impl<'i> Translation<'i> {
    fn new(ingest: &'i Ingest, counters: &'i OtlpCounters) -> Self {
        Translation {
            ingest,
            counters,
            outcome: Outcome::default(),
            accepted: 0,
        }
    }

    fn reject(&mut self, i: usize, spans: u64, name: &str) {
        self.outcome.rejected[i] += spans;
        self.counters.span_rejects[i].1.add(spans);
        let (reason, why) = SPAN_REJECT_REASONS[i];
        // The pipeline logs its own refusals.
        if i != EXPORT_REFUSED
            && let Some(count) = self.ingest.limiter.allow(reason)
        {
            tracing::warn!(
                reason,
                protocol = self.counters.protocol,
                count,
                spans,
                name = %name.chars().take(100).collect::<String>(),
                "rejected OTLP span: {why}"
            );
        }
    }

    /// The spans of one `ResourceSpans`, made under `resource`.
    fn resource_spans<'a, V: SpanView<'a>>(
        &mut self,
        resource: &'a PreparedResource<'a>,
        spans: impl Iterator<Item = V>,
    ) {
        let counters = self.counters;
        let mut segments = Vec::new();
        let mut wrappers = HashSet::new();
        for span in spans {
            counters.spans_received.inc();
            if let Err(i) = check(&span) {
                self.reject(i, 1, span.name());
                continue;
            }
            match catch_unwind(AssertUnwindSafe(|| resource.translate(&span))) {
                Ok(segment) => {
                    if is_service_wrapper(&segment) {
                        wrappers.insert(segment.id);
                    }
                    segments.push(segment);
                }
                Err(_) => self.reject(2, 1, span.name()),
            }
        }
        // Each tree's JSON is written straight from the batch (the documents of
        // `nest_subsegments`, see `Document::encode_nested`).
        let nesting = Nesting::of(&segments);
        let sink = &self.ingest.sink;
        for root in nesting.top_level() {
            // Documents count (sub)segments; the request's spans are one fewer in the
            // document of a service segment the translator added (once per tree: ids
            // of a hostile request may repeat).
            let mut wrapper = Some(segments[root].id).filter(|id| wrappers.contains(id));
            let mut spans_in = |id: SegmentId, units: u64| {
                if wrapper == Some(id) {
                    wrapper = None;
                    units.saturating_sub(1)
                } else {
                    units
                }
            };
            // Whole when it fits 64 kB, else split (largest subsegments moved out, a lone
            // document too large trimmed), as the exporter does.
            let trimmed = SCRATCH.with(|scratch| {
                let scratch = &mut scratch.borrow_mut();
                Document::encode_nested(&mut segments, &nesting, root, scratch, |encoded| {
                    match encoded {
                        Ok(doc) => {
                            let spans = spans_in(doc.id(), doc.span_count());
                            if sink.submit_document(doc) {
                                self.accepted += spans;
                            } else {
                                self.reject(EXPORT_REFUSED, spans, "");
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
                            self.reject(i, spans_in(failed.id, failed.spans), &what);
                        }
                    }
                })
            });
            counters.trimmed.add(trimmed as u64);
        }
    }

    fn finish(mut self) -> Outcome {
        self.outcome.accepted = self.accepted;
        self.counters.spans_accepted.add(self.accepted);
        self.outcome
    }
}

impl Ingest {
    /// OTLP exports: spans stay OTLP, one queued item per `ResourceSpans`; spans X-Ray
    /// cannot take are taken out first, and so are the attributes the translator settings
    /// exclude (`--metadata-exclude`), which never leave the process. `count`: whether
    /// this path counts and answers for the receiver's spans (not when the translation
    /// for document exports does; each export counts its own drops).
    fn pass_through(
        &self,
        request: &ExportTraceServiceRequest,
        counters: &OtlpCounters,
        count: bool,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        let config = self.translator.config();
        for resource_spans in &request.resource_spans {
            let total: u64 = resource_spans
                .scope_spans
                .iter()
                .map(|s| s.spans.len() as u64)
                .sum();
            if count {
                counters.spans_received.add(total);
            }
            let mut bad = [0u64; SPAN_REJECT_REASONS.len()];
            for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
                if let Err(i) = check(&OtlpSpan::new(span, None, None)) {
                    bad[i] += 1;
                }
            }
            let bad_total: u64 = bad.iter().sum();
            for (i, &n) in bad.iter().enumerate().filter(|(_, n)| **n > 0 && count) {
                outcome.rejected[i] += n;
                counters.span_rejects[i].1.add(n);
                let (reason, why) = SPAN_REJECT_REASONS[i];
                if let Some(count) = self.limiter.allow(reason) {
                    tracing::warn!(reason, count, "rejected {n} OTLP span(s): {why}");
                }
            }
            let good = total - bad_total;
            if good == 0 {
                continue;
            }
            let filtered;
            let to_send = if bad_total == 0 && config.metadata_exclude().is_empty() {
                resource_spans
            } else {
                let mut copy = resource_spans.clone();
                for scope in &mut copy.scope_spans {
                    scope
                        .spans
                        .retain(|s| check(&OtlpSpan::new(s, None, None)).is_ok());
                }
                copy.scope_spans.retain(|s| !s.spans.is_empty());
                strip_excluded(&mut copy, config);
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
                outcome.rejected[EXPORT_REFUSED] += good;
                counters.span_rejects[EXPORT_REFUSED].1.add(good);
            }
        }
        outcome
    }
}

/// Removes the attributes `config` excludes from spans, events, links and the resource.
fn strip_excluded(
    resource_spans: &mut opentelemetry_proto::tonic::trace::v1::ResourceSpans,
    config: &TranslatorConfig,
) {
    if config.metadata_exclude().is_empty() {
        return;
    }
    let keep = |kv: &opentelemetry_proto::tonic::common::v1::KeyValue| !config.excludes(&kv.key);
    if let Some(resource) = &mut resource_spans.resource {
        resource.attributes.retain(keep);
    }
    for span in resource_spans
        .scope_spans
        .iter_mut()
        .flat_map(|s| &mut s.spans)
    {
        span.attributes.retain(keep);
        for event in &mut span.events {
            event.attributes.retain(keep);
        }
        for link in &mut span.links {
            link.attributes.retain(keep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::memory::MemorySink;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
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

    /// Found by the `otlp_json` fuzz target: a local-root Client or Producer span is
    /// translated into its service segment with the call inside (two (sub)segments), and
    /// was counted as two accepted or two rejected spans.
    #[test]
    fn a_local_root_client_span_counts_as_one_span_accepted_or_rejected() {
        let mut client = span(1, 1, "DynamoDB.GetItem");
        client.kind = 3;
        let mut producer = span(2, 2, "publish");
        producer.kind = 4;
        let req = request(vec![client, producer, span(3, 3, "GET /")]);

        let sink = Arc::new(MemorySink::default());
        let counters = OtlpCounters::new(&Registry::default(), "http");
        let outcome = Ingest::new(Translator::default(), sink.clone()).ingest(&req, &counters);
        // Two of the three documents are service segments wrapping the call.
        assert_eq!(
            sink.texts()
                .iter()
                .filter(|d| d.contains("\"subsegments\""))
                .count(),
            2
        );
        assert_eq!((outcome.accepted, outcome.rejected_total()), (3, 0));
        assert_eq!(counters.spans_accepted.get(), counters.spans_received.get());

        let full = Arc::new(MemorySink {
            capacity: Some(0),
            ..Default::default()
        });
        let counters = OtlpCounters::new(&Registry::default(), "http");
        let outcome = Ingest::new(Translator::default(), full).ingest(&req, &counters);
        assert_eq!((outcome.accepted, outcome.rejected[EXPORT_REFUSED]), (0, 3));
        let partial = outcome.response().partial_success.unwrap();
        assert_eq!(partial.rejected_spans, 3);
        assert_eq!(counters.spans_rejected("export_refused"), 3);
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

    /// Documents, outcome and counters of one request ingested by `run` into a fresh
    /// sink with room for `capacity` documents.
    fn ingested(
        capacity: Option<usize>,
        run: impl FnOnce(&Ingest, &OtlpCounters) -> Outcome,
    ) -> (Vec<String>, Outcome, String) {
        let sink = Arc::new(MemorySink {
            capacity,
            ..Default::default()
        });
        let registry = Registry::default();
        let counters = OtlpCounters::new(&registry, "http");
        let outcome = run(&Ingest::new(Translator::default(), sink.clone()), &counters);
        let mut metrics = String::new();
        registry.render(&mut metrics);
        (sink.texts(), outcome, metrics)
    }

    /// The protobuf path reads bodies in place for document exports, and gives what the
    /// owned decoding gives: documents, accepted and rejected counts by reason, counters.
    #[test]
    fn protobuf_bodies_read_in_place_give_what_the_owned_decoding_gives() {
        use prost::Message;
        let mut no_trace = span(0, 3, "no trace id");
        no_trace.trace_id.clear();
        let mut huge = span(4, 4, "huge");
        huge.attributes = (0..2000)
            .map(|i| kv(&format!("annotation.k{i}"), &"v".repeat(200)))
            .collect();
        let mut client = span(5, 5, "DynamoDB.GetItem");
        client.kind = 3;
        let mut child = span(1, 6, "child");
        child.parent_span_id = vec![1; 8];
        child.attributes = vec![kv("free", "x"), kv("http.request.method", "GET")];
        let mut late = span(1, 7, "year 2300");
        late.end_time_unix_nano = 10_413_792_000_000_000_000;
        let mut req = request(vec![
            span(1, 1, "GET /"),
            no_trace,
            huge,
            client,
            child,
            late,
        ]);
        req.resource_spans.push(ResourceSpans::default());
        let body = req.encode_to_vec();
        for capacity in [None, Some(2)] {
            let wire = ingested(capacity, |ingest, counters| {
                let request = WireRequest::parse(&body).unwrap();
                ingest.ingest_wire(&request, counters)
            });
            let owned = ingested(capacity, |ingest, counters| {
                ingest.ingest(
                    &ExportTraceServiceRequest::decode(&body[..]).unwrap(),
                    counters,
                )
            });
            assert_eq!(wire.0, owned.0);
            assert_eq!(
                (wire.1.accepted, wire.1.rejected),
                (owned.1.accepted, owned.1.rejected)
            );
            assert_eq!(wire.1.response(), owned.1.response());
            assert_eq!(wire.2, owned.2);
            assert!(wire.1.rejected_total() >= 2, "{:?}", wire.1.rejected);
            // The receiver's entry point takes the same way.
            let chosen = ingested(capacity, |ingest, counters| {
                ingest.ingest_protobuf(&body, counters).unwrap()
            });
            assert_eq!(chosen.0, owned.0);
            assert_eq!(chosen.2, owned.2);
        }
        // A malformed body: prost's own error, nothing counted but the request.
        let truncated = &body[..body.len() - 1];
        let (docs, _, _) = ingested(None, |ingest, counters| {
            let error = ingest.ingest_protobuf(truncated, counters).unwrap_err();
            let prost = ExportTraceServiceRequest::decode(truncated).unwrap_err();
            assert_eq!(error.to_string(), prost.to_string());
            assert_eq!(counters.spans_received.get(), 0);
            Outcome::default()
        });
        assert!(docs.is_empty());
    }

    /// With an OTLP export the owned request is passed on, so the body is decoded by prost.
    #[test]
    fn protobuf_bodies_for_otlp_exports_are_decoded_owned() {
        use prost::Message;
        let sink = Arc::new(MemorySink {
            otlp: Some(Default::default()),
            ..Default::default()
        });
        let counters = OtlpCounters::new(&Registry::default(), "http");
        let ingest = Ingest::new(Translator::default(), sink.clone());
        let body = request(vec![span(1, 1, "a"), span(0, 2, "bad")]).encode_to_vec();
        let outcome = ingest.ingest_protobuf(&body, &counters).unwrap();
        assert_eq!((outcome.accepted, outcome.rejected[INVALID_ID]), (1, 1));
        let got = sink.otlp.as_ref().unwrap().lock().unwrap();
        assert_eq!(got[0].scope_spans[0].spans[0].name, "a");
    }

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn ids_of_the_wrong_length_and_impossible_times_are_rejected_with_their_reasons() {
        let sink = Arc::new(MemorySink::default());
        let counters = OtlpCounters::new(&Registry::default(), "http");
        let ingest = Ingest::new(Translator::default(), sink.clone());
        let mut short_trace = span(1, 1, "short trace id");
        short_trace.trace_id = vec![7, 7];
        let mut long_span = span(1, 2, "long span id");
        long_span.span_id = vec![3; 9];
        let mut late = span(1, 3, "year 2300");
        late.end_time_unix_nano = 10_413_792_000_000_000_000;
        let mut backwards = span(1, 4, "ends before it starts");
        backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1_000_000;
        let outcome = ingest.ingest(
            &request(vec![short_trace, long_span, late, backwards]),
            &counters,
        );
        assert_eq!(outcome.accepted, 1);
        assert_eq!(outcome.rejected[INVALID_ID], 2);
        assert_eq!(outcome.rejected[INVALID_TIME], 1);
        assert_eq!(counters.spans_rejected("invalid_id"), 2);
        assert_eq!(counters.spans_rejected("invalid_time"), 1);
        let message = outcome.response().partial_success.unwrap().error_message;
        assert!(
            message.contains("2 invalid_id") && message.contains("1 invalid_time"),
            "{message}"
        );
        // The one accepted: its end clamped to its start, the real end kept in metadata.
        let docs = sink.texts();
        assert_eq!(docs.len(), 1);
        let doc: serde_json::Value = serde_json::from_str(&docs[0]).unwrap();
        assert_eq!(doc["end_time"], doc["start_time"]);
        assert_eq!(
            doc["metadata"]["otel"]["end_time_before_start"],
            1_699_999_999.999
        );
        xray_testkit::assert_schema_valid(&docs[0]);
    }

    #[test]
    fn otlp_export_strips_excluded_attributes_everywhere() {
        let sink = Arc::new(MemorySink {
            otlp: Some(Default::default()),
            ..Default::default()
        });
        let counters = OtlpCounters::new(&Registry::default(), "http");
        let config = TranslatorConfig::default()
            .with_metadata_exclude(["user.*", "*.email"])
            .unwrap();
        let ingest = Ingest::new(Translator::new(config), sink.clone());
        let mut a = span(1, 1, "a");
        a.attributes = vec![kv("user.name", "ada"), kv("order.id", "o-1")];
        a.events = vec![opentelemetry_proto::tonic::trace::v1::span::Event {
            name: "login".into(),
            attributes: vec![kv("contact.email", "ada@example.com"), kv("ok", "1")],
            ..Default::default()
        }];
        let mut req = request(vec![a]);
        req.resource_spans[0]
            .resource
            .as_mut()
            .unwrap()
            .attributes
            .push(kv("user.home", "/home/ada"));
        let outcome = ingest.ingest(&req, &counters);
        assert_eq!(outcome.accepted, 1);
        let got = sink.otlp.as_ref().unwrap().lock().unwrap();
        let span = &got[0].scope_spans[0].spans[0];
        let keys = |kvs: &[KeyValue]| kvs.iter().map(|k| k.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&span.attributes), ["order.id"]);
        assert_eq!(keys(&span.events[0].attributes), ["ok"]);
        assert_eq!(
            keys(&got[0].resource.as_ref().unwrap().attributes),
            ["service.name"]
        );
    }
}
