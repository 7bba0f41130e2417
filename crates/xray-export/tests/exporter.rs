//! The span exporter end to end with the JSON-lines transport: documents, the 64 kB
//! rule, bounded memory and what overflow drops.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::trace::SpanExporter;
use xray_export::transport::SendFuture;
use xray_export::{
    Document, DropReason, Metrics, Overflow, Pipeline, PipelineConfig, SendContext, Transport,
    XRayExporter,
};
use xray_model::limits::MAX_DOCUMENT_BYTES;
use xray_testkit::assert_schema_valid;

use common::{logs, span, trace_id};

fn poll_once<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("export must not wait"),
    }
}

#[test]
fn file_lines_are_schema_valid_documents_and_oversized_spans_are_trimmed_not_dropped() {
    let dir = xray_testkit::temp_dir("export-file");
    let path = dir.path().join("documents.jsonl");
    let exporter = XRayExporter::builder().with_file(&path).build().unwrap();
    let t = trace_id(60);
    let mut root = span(t, 1, 0, SpanKind::Server, "GET /big");
    root.status = Status::error("boom");
    // 200 kB of attributes: the document must be trimmed to fit, keeping the span.
    root.attributes = (0..20)
        .map(|i| KeyValue::new(format!("blob.{i}"), "z".repeat(10_000)))
        .collect();
    let mut batch = vec![root];
    batch.extend((2..=10).map(|i| span(t, i, 1, SpanKind::Client, "GET /{id}")));
    poll_once(exporter.export(batch)).unwrap();
    exporter.shutdown().unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 10);
    for line in &lines {
        assert!(line.len() <= MAX_DOCUMENT_BYTES);
        assert_schema_valid(line);
    }
    let root: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(root["id"], format!("{:016x}", 1));
    assert_eq!(root["fault"], true, "status flags survive trimming");
    let m = exporter.metrics().snapshot();
    assert_eq!((m.spans_in, m.documents_sent, m.trimmed), (10, 10, 1));
    assert_eq!(m.dropped_total(), 0);
}

/// A transport that holds every batch until opened.
struct Gate(Arc<AtomicBool>, Arc<Mutex<Vec<String>>>);

impl Transport<Document> for Gate {
    fn name(&self) -> &'static str {
        "gate"
    }

    fn batch_limit(&self) -> usize {
        1
    }

    fn send<'a>(&'a mut self, batch: Vec<Document>, cx: &'a SendContext) -> SendFuture<'a> {
        Box::pin(async move {
            while !self.0.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            for d in &batch {
                self.1.lock().unwrap().push(d.id().to_string());
                cx.delivered(d);
            }
        })
    }
}

fn doc(i: u64) -> Document {
    Document::from_json(
        format!(
            r#"{{"name":"svc","id":"{i:016x}","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1,"end_time":2}}"#
        )
        .into_bytes(),
    )
    .unwrap()
}

fn overflow(policy: Overflow) -> (Vec<String>, Metrics, String) {
    let open = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let metrics = Metrics::default();
    let size = doc(1).json().len();
    let pipeline = Pipeline::start_with_metrics(
        Gate(open.clone(), sent.clone()),
        PipelineConfig {
            max_queue_bytes: size * 5,
            overflow: policy,
            ..Default::default()
        },
        metrics.clone(),
    )
    .unwrap();
    pipeline.submit(doc(1));
    // Wait until the worker holds document 1 at the gate; the queue is then empty.
    while metrics.snapshot().queued_items > 0 {
        std::thread::sleep(Duration::from_millis(2));
    }
    for i in 2..=11 {
        pipeline.submit(doc(i));
    }
    assert!(
        metrics.snapshot().queued_bytes as usize <= size * 5,
        "memory bounded"
    );
    open.store(true, Ordering::SeqCst);
    let err = pipeline.flush(Duration::from_secs(5)).unwrap_err();
    let sent = sent.lock().unwrap().clone();
    (sent, metrics, err.to_string())
}

#[test]
fn overflow_drops_the_oldest_or_the_newest_and_counts_them() {
    let logs = logs();
    let (sent, metrics, err) = overflow(Overflow::DropOldest);
    let ids = |r: std::ops::RangeInclusive<u64>| r.map(|i| format!("{i:016x}")).collect::<Vec<_>>();
    let mut expected = ids(1..=1);
    expected.extend(ids(7..=11));
    assert_eq!(sent, expected, "the newest five were kept");
    assert_eq!(metrics.snapshot().dropped(DropReason::QueueFull), 5);
    assert!(err.contains("queue_full=5"), "{err}");

    let (sent, metrics, _) = overflow(Overflow::DropNewest);
    assert_eq!(sent, ids(1..=6), "the oldest five were kept");
    let m = metrics.snapshot();
    assert_eq!(m.dropped(DropReason::QueueFull), 5);
    assert_eq!(m.documents_sent + m.dropped_total(), 11);
    let log = logs.lock().unwrap().clone();
    // Overflow logs are rate-limited, but their counts add up to every drop.
    let logged: u64 = log
        .lines()
        .filter(|l| l.contains("(queue_full)"))
        .map(|l| {
            let after = &l[l.find("dropped ").unwrap() + 8..];
            after[..after.find(' ').unwrap()].parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(logged, 10, "{log}");
    assert!(
        log.lines().filter(|l| l.contains("(queue_full)")).count() <= 4,
        "{log}"
    );
    assert!(log.contains("1-581cf771-a006649127e371903a2de979"), "{log}");
}

struct Panics;

impl Transport<Document> for Panics {
    fn name(&self) -> &'static str {
        "panics"
    }

    fn send<'a>(&'a mut self, _: Vec<Document>, _: &'a SendContext) -> SendFuture<'a> {
        Box::pin(async { panic!("transport bug") })
    }
}

#[test]
fn a_panicking_transport_neither_hangs_nor_loses_items_silently() {
    let metrics = Metrics::default();
    let pipeline =
        Pipeline::start_with_metrics(Panics, PipelineConfig::default(), metrics.clone()).unwrap();
    for i in 1..=3 {
        pipeline.submit(doc(i));
    }
    let start = std::time::Instant::now();
    let err = pipeline.flush(Duration::from_secs(5)).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(err.dropped.contains("unaccounted="), "{err}");
    assert!(!pipeline.submit(doc(4)), "a dead worker's pipeline refuses");
    // Items pushed before the panic are unaccounted; any pushed after it were refused.
    let m = metrics.snapshot();
    assert!(m.dropped(DropReason::Unaccounted) >= 1);
    assert_eq!(
        m.dropped(DropReason::Unaccounted) + m.dropped(DropReason::Shutdown),
        4
    );
    let _ = pipeline.shutdown(Duration::from_secs(1));
}

#[test]
fn spans_x_ray_cannot_take_are_dropped_as_rejected_counted_and_logged() {
    let dir = xray_testkit::temp_dir("export-invalid");
    let path = dir.path().join("documents.jsonl");
    let logs = logs();
    let exporter = XRayExporter::builder().with_file(&path).build().unwrap();
    let t = trace_id(61);
    let good = span(t, 1, 0, SpanKind::Server, "GET /ok");
    let mut early = span(t, 2, 0, SpanKind::Server, "before-1970");
    early.start_time = std::time::UNIX_EPOCH - Duration::from_secs(60);
    let mut late = span(t, 3, 0, SpanKind::Server, "after-2200");
    late.end_time = std::time::UNIX_EPOCH + Duration::from_secs(7_300_000_000);
    // An end before the start is kept, clamped.
    let mut backwards = span(t, 4, 0, SpanKind::Server, "backwards");
    backwards.end_time = backwards.start_time - Duration::from_millis(5);
    poll_once(exporter.export(vec![good, early, late, backwards])).unwrap();
    // Shutdown reports the drops.
    let report = exporter.shutdown().unwrap_err().to_string();
    assert!(report.contains("rejected=2"), "{report}");

    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for line in &lines {
        assert_schema_valid(line);
    }
    assert!(!text.contains("before-1970") && !text.contains("after-2200"));
    let m = exporter.metrics().snapshot();
    assert_eq!(m.spans_in, 4);
    assert_eq!(m.dropped_spans(DropReason::Rejected), 2);
    let logged = logs.lock().unwrap().clone();
    assert!(
        logged.contains("start or end time before 1970 or after 2200")
            && logged.contains("before-1970"),
        "{logged}"
    );
}
