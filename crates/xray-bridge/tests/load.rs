//! Bounded loopback load over OTLP/HTTP: every span is accounted for
//! (received = rejected by the receiver + sent + dropped by the exporter, each with a
//! reason), the export queue stays under its byte limit, and the file holds exactly the
//! spans reported sent.

mod common;

use std::time::{Duration, Instant};

use common::{Bridge, Options, Scratch, otlp_request, read_lines};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

fn batch(start: u64, n: u64) -> Vec<u8> {
    let spans = (start..start + n)
        .map(|i| {
            // One span in 50 has no trace id: rejected with a reason.
            let trace = if i % 50 == 49 { 0 } else { i as u128 + 1 };
            Span {
                trace_id: trace.to_be_bytes().to_vec(),
                span_id: (i + 1).to_be_bytes().to_vec(),
                name: format!("GET /items/{{id}} {i}"),
                kind: 2,
                start_time_unix_nano: 1_700_000_000_000_000_000 + i * 1000,
                end_time_unix_nano: 1_700_000_000_000_500_000 + i * 1000,
                attributes: vec![KeyValue {
                    key: "http.request.method".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("GET".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }
        })
        .collect();
    otlp_request("load", spans).encode_to_vec()
}

/// What a run saw.
struct Report {
    sent: u64,
    export_dropped: u64,
    max_queue_bytes: u64,
    text: String,
}

/// Sends `total` spans; `slow_api` exports to a stub X-Ray API taking that long per call
/// instead of to a file.
fn run(
    total: u64,
    per_request: u64,
    buffer_mb: u64,
    slow_api: Option<Duration>,
    time_limit: Duration,
) -> Report {
    let started = Instant::now();
    let scratch = Scratch::new("load");
    let out = scratch.path("docs.jsonl");
    let buffer = buffer_mb.to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stub = slow_api.map(|delay| {
        xray_testkit::stub::Stub::start(move |_, _| {
            std::thread::sleep(delay);
            xray_testkit::stub::Reply::json(200, r#"{"UnprocessedTraceSegments":[]}"#)
        })
    });
    let stub_url = stub.as_ref().map(|s| s.url());
    let mut args = vec!["--buffer-memory", &buffer, "--log-level", "warn"];
    let options = match &stub_url {
        Some(url) => {
            // One call in flight, so the stub's delay really makes the export slow.
            args.extend(["--region", "us-east-1", "--endpoint-url", url]);
            args.extend(["--concurrency", "1"]);
            Options {
                args,
                env: vec![
                    ("AWS_ACCESS_KEY_ID", "testing".into()),
                    ("AWS_SECRET_ACCESS_KEY", "testing".into()),
                ],
                ..Options::export("api")
            }
        }
        None => Options {
            args,
            ..Options::export(format!("file:{}", out.display()))
        },
    };
    let export = if stub.is_some() { "api" } else { "file" };
    let mut bridge = Bridge::start(options);
    let url = bridge.url(bridge.http, "/v1/traces");
    let client = reqwest::Client::new();
    let mut max_queue_bytes = 0;
    // Four requests in flight at a time.
    let mut next = 0;
    while next < total {
        let mut wave = Vec::new();
        for _ in 0..4 {
            if next >= total {
                break;
            }
            let n = per_request.min(total - next);
            let body = batch(next, n);
            next += n;
            let request = client
                .post(&url)
                .header("content-type", "application/x-protobuf")
                .body(body)
                .send();
            wave.push(rt.spawn(async move { request.await.map(|r| r.status()) }));
        }
        for handle in wave {
            let status = rt.block_on(handle).unwrap().expect("request");
            assert_eq!(status, 200);
        }
        let text = bridge.metrics_text();
        max_queue_bytes = max_queue_bytes.max(Bridge::metric(
            &text,
            &format!("xray_bridge_export_queue_bytes{{export=\"{export}\"}}"),
        ));
    }
    let text = bridge.wait_metrics(Duration::from_secs(60), |t| {
        let m = |s: &str| Bridge::metric(t, s);
        m(&format!(
            "xray_bridge_export_queue_items{{export=\"{export}\"}}"
        )) == 0
            && m("xray_bridge_otlp_spans_received_total{protocol=\"http\"}") == total
            && m(&format!(
                "xray_bridge_export_items_in_total{{export=\"{export}\"}}"
            )) <= m(&format!(
                "xray_bridge_export_items_sent_total{{export=\"{export}\"}}"
            )) + dropped(t)
    });
    let m = |s: &str| Bridge::metric(&text, s);
    let received = m("xray_bridge_otlp_spans_received_total{protocol=\"http\"}");
    let invalid =
        m("xray_bridge_otlp_spans_rejected_total{protocol=\"http\",reason=\"invalid_id\"}");
    let too_large =
        m("xray_bridge_otlp_spans_rejected_total{protocol=\"http\",reason=\"too_large\"}");
    let failed =
        m("xray_bridge_otlp_spans_rejected_total{protocol=\"http\",reason=\"translate_failed\"}");
    let sent = m(&format!(
        "xray_bridge_export_spans_sent_total{{export=\"{export}\"}}"
    ));
    let export_dropped = dropped(&text);
    assert_eq!(received, total);
    assert_eq!(invalid, total / 50);
    assert_eq!(
        received,
        invalid + too_large + failed + sent + export_dropped,
        "every span accounted for:\n{text}"
    );
    assert!(
        max_queue_bytes <= buffer_mb * 1024 * 1024,
        "queue {max_queue_bytes} bytes over its {buffer_mb} MiB bound"
    );
    let hwm = xray_testkit::proc_status_kib(bridge.pid(), "VmHWM").unwrap_or(0);
    let code = bridge.stop(Duration::from_secs(30));
    assert_eq!(code, if export_dropped == 0 { 0 } else { 3 });
    if stub.is_none() {
        let lines = read_lines(&out);
        assert_eq!(
            lines.len() as u64,
            sent,
            "the file holds exactly what was reported sent"
        );
        xray_testkit::assert_schema_valid(&lines[0]);
        xray_testkit::assert_schema_valid(lines.last().unwrap());
    }
    eprintln!(
        "{total} spans in {:?}: sent {sent}, rejected invalid_id {invalid}, exporter drops {export_dropped}, queue peak {max_queue_bytes} B, peak RSS {hwm} KiB",
        started.elapsed()
    );
    assert!(
        started.elapsed() < time_limit,
        "took {:?}",
        started.elapsed()
    );
    Report {
        sent,
        export_dropped,
        max_queue_bytes,
        text,
    }
}

fn dropped(text: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with("xray_bridge_export_dropped_spans_total{export="))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// 200,000 spans to a file: nothing lost (about 7 s in a debug build).
#[test]
fn two_hundred_thousand_spans_are_all_accounted_for() {
    let report = run(200_000, 2_000, 16, None, Duration::from_secs(180));
    assert_eq!(report.export_dropped, 0);
    assert_eq!(report.sent, 196_000);
}

/// An export much slower than the input and a 3 MiB queue (the daemon's smallest): the
/// queue stays under its
/// bound, the oldest documents are dropped and counted as `queue_full`, and the sums
/// still hold.
#[test]
fn a_slow_export_drops_with_a_reason_and_memory_stays_bounded() {
    // Requests far larger than the queue's quarter at which receivers start to wait, so
    // backpressure alone cannot keep it from overflowing.
    let report = run(
        40_000,
        10_000,
        3,
        Some(Duration::from_millis(50)),
        Duration::from_secs(120),
    );
    assert!(
        report.export_dropped > 0,
        "the queue must overflow:\n{}",
        report.text
    );
    assert_eq!(
        report.export_dropped,
        Bridge::metric(
            &report.text,
            "xray_bridge_export_dropped_spans_total{export=\"api\",reason=\"queue_full\"}"
        )
    );
    assert!(report.max_queue_bytes > 0, "the queue was seen in use");
    assert!(report.sent > 0);
}
