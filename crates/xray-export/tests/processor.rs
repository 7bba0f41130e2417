//! `XraySpanProcessor` end to end through the OpenTelemetry SDK: trees sent when their
//! root ends, the streaming rules (threshold, in-progress, orphans), flush, shutdown and
//! the accounting of every span.

mod common;

use std::io::Write;
use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::trace::{Span, SpanKind, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanProcessor};
use serde_json::Value;
use xray_export::{DropReason, Metrics, ProcessorConfig, XrayExporter, XraySpanProcessor};
use xray_model::limits::MAX_DOCUMENT_BYTES;
use xray_testkit::{all_segments, assert_schema_valid, udp_listener};

/// A provider whose processor sends to the UDP listener `udp`.
fn udp_provider(udp: &UdpSocket, config: ProcessorConfig) -> (SdkTracerProvider, Metrics) {
    let address = format!("127.0.0.1:{}", udp.local_addr().unwrap().port());
    let exporter = XrayExporter::builder()
        .with_daemon_address(address.parse().unwrap())
        .build()
        .unwrap();
    provider(exporter, config)
}

fn provider(exporter: XrayExporter, config: ProcessorConfig) -> (SdkTracerProvider, Metrics) {
    let metrics = exporter.metrics().clone();
    let provider = SdkTracerProvider::builder()
        .with_resource(Resource::builder_empty().with_service_name("svc").build())
        .with_span_processor(XraySpanProcessor::new(exporter, config))
        .build();
    (provider, metrics)
}

/// JSON lines written by the exporter, kept in memory.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn documents(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn writer_provider(config: ProcessorConfig) -> (SdkTracerProvider, Metrics, Lines) {
    let lines = Lines::default();
    let exporter = XrayExporter::builder()
        .with_writer(lines.clone())
        .build()
        .unwrap();
    let (provider, metrics) = provider(exporter, config);
    (provider, metrics, lines)
}

/// One datagram's document, checked against the schema.
fn recv_document(udp: &UdpSocket, timeout: Duration) -> Option<Value> {
    udp.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = vec![0u8; 70_000];
    let n = udp.recv(&mut buf).ok()?;
    let text = std::str::from_utf8(&buf[..n]).unwrap();
    let (header, body) = text.split_once('\n').unwrap();
    assert_eq!(header, r#"{"format":"json","version":1}"#);
    assert_schema_valid(body);
    Some(serde_json::from_str(body).unwrap())
}

fn root(tracer: &SdkTracer, name: &'static str) -> Context {
    let span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .start(tracer);
    Context::new().with_span(span)
}

fn hex_id(cx: &Context) -> String {
    cx.span().span_context().span_id().to_string()
}

#[test]
fn a_root_open_for_3_s_is_sent_with_its_children_in_one_document_when_it_ends() {
    let udp = udp_listener();
    let (provider, metrics) = udp_provider(&udp, ProcessorConfig::default());
    let tracer = provider.tracer("test");
    let request = root(&tracer, "GET /slow");
    for i in 0..3 {
        let mut child = tracer
            .span_builder(format!("step {i}"))
            .with_kind(SpanKind::Client)
            .start_with_context(&tracer, &request);
        std::thread::sleep(Duration::from_secs(1));
        child.end();
    }
    assert!(
        recv_document(&udp, Duration::from_millis(50)).is_none(),
        "nothing may leave while the root is open"
    );
    let ended = Instant::now();
    request.span().end();
    let doc = recv_document(&udp, Duration::from_secs(2)).expect("the request's document");
    let latency = ended.elapsed();
    assert_eq!(
        doc["name"], "svc",
        "named by the resource given to the processor"
    );
    assert_eq!(doc["id"], hex_id(&request));
    let children = doc["subsegments"].as_array().expect("children nested");
    let mut names: Vec<&str> = children
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["step 0", "step 1", "step 2"]);
    assert!(latency < Duration::from_millis(500), "{latency:?}");
    assert!(
        recv_document(&udp, Duration::from_millis(300)).is_none(),
        "one document"
    );
    provider.shutdown().unwrap();
    let m = metrics.snapshot();
    assert_eq!((m.spans_in, m.spans_sent, m.documents_sent), (4, 4, 1));
}

/// Default rules: the in-progress segment goes out after 10 s, the complete one when the
/// root ends at 40 s; same id, both schema-valid (checked on receipt).
#[test]
fn a_40_s_root_is_sent_in_progress_early_then_complete_with_the_same_id() {
    let udp = udp_listener();
    let (provider, metrics) = udp_provider(&udp, ProcessorConfig::default());
    let tracer = provider.tracer("test");
    let started = Instant::now();
    let request = root(&tracer, "POST /long");
    let receiver = {
        let udp = udp.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            while got.len() < 2 && started.elapsed() < Duration::from_secs(50) {
                if let Some(doc) = recv_document(&udp, Duration::from_millis(200)) {
                    got.push((started.elapsed(), doc));
                }
            }
            got
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    tracer
        .span_builder("early child")
        .start_with_context(&tracer, &request)
        .end();
    std::thread::sleep(Duration::from_secs(39));
    request.span().end();
    let got = receiver.join().unwrap();
    assert_eq!(got.len(), 2, "{got:#?}");
    let (at, in_progress) = &got[0];
    assert_eq!(in_progress["in_progress"], true);
    assert!(in_progress.get("end_time").is_none());
    assert!(
        (Duration::from_millis(9_900)..Duration::from_secs(13)).contains(at),
        "in progress at {at:?}"
    );
    let (at, complete) = &got[1];
    assert!(*at >= Duration::from_secs(40), "{at:?}");
    assert!(complete.get("in_progress").is_none());
    assert!(complete["end_time"].as_f64().unwrap() > complete["start_time"].as_f64().unwrap());
    assert_eq!(in_progress["id"], complete["id"]);
    assert_eq!(in_progress["trace_id"], complete["trace_id"]);
    assert_eq!(complete["subsegments"][0]["name"], "early child");
    provider.shutdown().unwrap();
    let m = metrics.snapshot();
    // The in-progress document carries no span: each span is counted once.
    assert_eq!((m.spans_in, m.spans_sent, m.documents_sent), (2, 2, 2));
}

#[test]
fn a_request_with_500_children_is_streamed_within_64_kb_and_nothing_is_lost() {
    let (provider, metrics, lines) = writer_provider(ProcessorConfig::default());
    let tracer = provider.tracer("test");
    let request = root(&tracer, "GET /report");
    for i in 0..500 {
        let mut child = tracer
            .span_builder(format!("row {i}"))
            .with_kind(SpanKind::Client)
            .with_attributes([KeyValue::new("row.data", "r".repeat(400))])
            .start_with_context(&tracer, &request);
        child.end();
    }
    // The streaming rule sends while the root is still open.
    let deadline = Instant::now() + Duration::from_secs(5);
    while lines.documents().len() < 400 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let while_open = lines.documents().len();
    assert!(
        while_open >= 400,
        "{while_open} documents before the root ended"
    );
    request.span().end();
    provider.force_flush().unwrap();
    let docs: Vec<Value> = lines
        .documents()
        .iter()
        .map(|line| {
            assert!(line.len() <= MAX_DOCUMENT_BYTES, "{} bytes", line.len());
            assert_schema_valid(line);
            serde_json::from_str(line).unwrap()
        })
        .collect();
    let segments = all_segments(&docs);
    assert_eq!(segments.len(), 501);
    let mut ids: Vec<&str> = segments.iter().map(|s| s["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 501);
    let root_id = hex_id(&request);
    for doc in &docs {
        if doc["type"] == "subsegment" {
            assert_eq!(doc["parent_id"], root_id.as_str());
        }
    }
    let m = metrics.snapshot();
    assert_eq!((m.spans_in, m.spans_sent, m.dropped_total()), (501, 501, 0));
}

#[test]
fn a_hundred_thousand_traces_from_8_threads_are_all_accounted_for() {
    const THREADS: usize = 8;
    const TRACES: usize = 100_000;
    let (provider, metrics, lines) = writer_provider(ProcessorConfig::default());
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            let tracer = provider.tracer("load");
            s.spawn(move || {
                for _ in 0..TRACES / THREADS {
                    let request = root(&tracer, "GET /");
                    tracer
                        .span_builder("db")
                        .with_kind(SpanKind::Client)
                        .start_with_context(&tracer, &request)
                        .end();
                    request.span().end();
                }
            });
        }
    });
    provider
        .shutdown()
        .unwrap_or_else(|e| eprintln!("shutdown: {e}"));
    let m = metrics.snapshot();
    let created = 2 * TRACES as u64;
    assert_eq!(m.spans_in, created);
    assert_eq!(
        m.spans_sent + m.dropped_spans_total(),
        created,
        "sent {} + dropped {} ({})",
        m.spans_sent,
        m.dropped_spans_total(),
        m.drop_summary()
    );
    // What the counters call sent is what the writer received.
    let written: usize = lines
        .documents()
        .iter()
        .map(|line| line.matches(r#""id":""#).count())
        .sum();
    assert_eq!(written as u64, m.spans_sent);
    eprintln!(
        "{} spans sent, {} dropped ({})",
        m.spans_sent,
        m.dropped_spans_total(),
        m.drop_summary()
    );
}

#[test]
fn force_flush_sends_open_trees_finished_children_and_waits_for_the_transport() {
    let udp = udp_listener();
    let (provider, _metrics) = udp_provider(&udp, ProcessorConfig::default());
    let tracer = provider.tracer("test");
    let request = root(&tracer, "GET /");
    tracer
        .span_builder("done")
        .start_with_context(&tracer, &request)
        .end();
    provider.force_flush().unwrap();
    // Delivered before force_flush returned: no waiting needed.
    let doc = recv_document(&udp, Duration::from_millis(1)).expect("the finished child");
    assert_eq!(doc["type"], "subsegment");
    assert_eq!(doc["name"], "done");
    assert_eq!(doc["parent_id"], hex_id(&request));
    request.span().end();
    let doc = recv_document(&udp, Duration::from_secs(2)).unwrap();
    assert_eq!(doc["id"], hex_id(&request));
    assert!(doc.get("subsegments").is_none());
}

#[test]
fn children_of_a_root_that_never_ends_go_out_after_the_maximum_age() {
    let udp = udp_listener();
    let config = ProcessorConfig::default()
        .with_in_progress_after(None)
        .with_max_orphan_age(Duration::from_millis(300));
    let (provider, _metrics) = udp_provider(&udp, config);
    let tracer = provider.tracer("test");
    let leaked = root(&tracer, "leaked");
    let ended = Instant::now();
    tracer
        .span_builder("orphan")
        .start_with_context(&tracer, &leaked)
        .end();
    let doc = recv_document(&udp, Duration::from_secs(3)).expect("the orphan");
    let waited = ended.elapsed();
    assert_eq!(doc["name"], "orphan");
    assert_eq!(doc["parent_id"], hex_id(&leaked));
    assert!(
        (Duration::from_millis(300)..Duration::from_millis(1_500)).contains(&waited),
        "{waited:?}"
    );
    std::mem::forget(leaked);
}

#[test]
fn the_streaming_threshold_is_settable() {
    let (provider, metrics, lines) =
        writer_provider(ProcessorConfig::default().with_streaming_threshold(2));
    let tracer = provider.tracer("test");
    let request = root(&tracer, "GET /");
    for name in ["a", "b"] {
        tracer
            .span_builder(name)
            .start_with_context(&tracer, &request)
            .end();
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        lines.documents().is_empty(),
        "two finished spans are not over 2"
    );
    tracer
        .span_builder("c")
        .start_with_context(&tracer, &request)
        .end();
    let deadline = Instant::now() + Duration::from_secs(3);
    while lines.documents().len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(lines.documents().len(), 3, "three standalone subsegments");
    request.span().end();
    provider.shutdown().unwrap();
    let m = metrics.snapshot();
    assert_eq!((m.spans_in, m.spans_sent), (4, 4));
}

/// The SDK stops calling processors once its provider is shut down; a processor shared
/// with another provider (or called directly) still counts what it refuses.
#[test]
fn spans_ending_after_shutdown_are_counted_as_dropped() {
    let lines = Lines::default();
    let exporter = XrayExporter::builder()
        .with_writer(lines.clone())
        .build()
        .unwrap();
    let metrics = exporter.metrics().clone();
    let processor = XraySpanProcessor::new(exporter, ProcessorConfig::default());
    let t = common::trace_id(1);
    processor.on_end(common::span(t, 2, 1, SpanKind::Client, "before"));
    processor.shutdown().unwrap();
    assert_eq!(
        lines.documents().len(),
        1,
        "the finished child was sent at shutdown"
    );
    processor.on_end(common::span(t, 1, 0, SpanKind::Server, "after"));
    let m = metrics.snapshot();
    assert_eq!(m.spans_in, 2);
    assert_eq!(m.spans_sent, 1);
    assert_eq!(m.dropped_spans(DropReason::Shutdown), 1);
    assert!(processor.shutdown().is_err(), "a second shutdown says so");
}

/// A writer that takes 5 ms per document.
struct SlowWriter(Lines);

impl Write for SlowWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::thread::sleep(Duration::from_millis(5));
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn trees_over_the_byte_budget_are_dropped_counted_and_the_rest_delivered() {
    let lines = Lines::default();
    let exporter = XrayExporter::builder()
        .with_writer(SlowWriter(lines.clone()))
        .build()
        .unwrap();
    let (provider, metrics) = provider(
        exporter,
        ProcessorConfig::default().with_max_open_bytes(4_000),
    );
    let tracer = provider.tracer("test");
    for _ in 0..300 {
        let request = root(&tracer, "GET /");
        tracer
            .span_builder("db")
            .start_with_context(&tracer, &request)
            .end();
        request.span().end();
    }
    provider
        .shutdown()
        .unwrap_or_else(|e| eprintln!("shutdown: {e}"));
    let m = metrics.snapshot();
    assert_eq!(m.spans_in, 600);
    assert!(m.dropped_spans(DropReason::QueueFull) > 0, "{m:?}");
    assert_eq!(m.spans_sent + m.dropped_spans_total(), 600, "{m:?}");
    let written: usize = lines
        .documents()
        .iter()
        .map(|line| line.matches(r#""id":""#).count())
        .sum();
    assert_eq!(written as u64, m.spans_sent);
}
