//! The exporter under a real `tracing-opentelemetry` layer: its own logs, and the spans
//! of the AWS SDK and HTTP client it drives, never become exported spans, and nothing
//! deadlocks, with the batch and the simple span processors.
//!
//! One test per binary: the subscriber is global, as it is in applications (the worker
//! thread logs through it).

mod common;

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use opentelemetry::trace::TracerProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use xray_export::transport::api::ApiConfig;
use xray_export::{DaemonAddress, RetryPolicy, XrayExporter};

use common::{Reply, Stub};

/// Document names by distinct document id (the first call failed and was resent).
fn names(stub: &Stub) -> BTreeMap<String, usize> {
    let mut by_id = BTreeMap::new();
    for r in stub.requests() {
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        for d in body["TraceSegmentDocuments"].as_array().unwrap() {
            let v: serde_json::Value = serde_json::from_str(d.as_str().unwrap()).unwrap();
            let mut stack = vec![v];
            while let Some(v) = stack.pop() {
                by_id.insert(
                    v["id"].as_str().unwrap().to_owned(),
                    v["name"].as_str().unwrap().to_owned(),
                );
                if let Some(embedded) = v["subsegments"].as_array() {
                    stack.extend(embedded.iter().cloned());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    for name in by_id.into_values() {
        *out.entry(name).or_default() += 1;
    }
    out
}

#[test]
fn exporter_logs_and_sdk_spans_are_never_exported_and_nothing_deadlocks() {
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        run();
        done_tx.send(()).unwrap();
    });
    match done_rx.recv_timeout(Duration::from_secs(60)) {
        Ok(()) => {}
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("deadlock: the test did not finish"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the test body failed (see above)"),
    }
}

fn run() {
    // The API stub fails the first call so the worker retries and logs; every call goes
    // through the AWS SDK, which opens `tracing` spans of its own on the worker thread.
    let first = Arc::new(Mutex::new(true));
    let stub = Stub::start(move |_, _| {
        if std::mem::take(&mut *first.lock().unwrap()) {
            Reply::json(500, r#"{"__type":"InternalFailure"}"#)
        } else {
            Reply::json(200, r#"{"UnprocessedTraceSegments":[]}"#)
        }
    });
    let retry = RetryPolicy {
        initial_backoff: Duration::from_millis(10),
        ..Default::default()
    };
    let api = XrayExporter::builder()
        .with_xray_api(ApiConfig {
            sdk_config: Some(
                SdkConfig::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .region(Region::new("us-east-1"))
                    .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                        "AKID", "SECRET", None, None, "test",
                    )))
                    .build()
                    .into(),
            ),
            endpoint_url: Some(stub.url()),
            ..Default::default()
        })
        .with_retry(retry)
        .build()
        .unwrap();
    let api_metrics = api.metrics().clone();

    // A daemon nobody listens on (refusals, when the kernel reports them, are logged).
    let closed = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let udp = XrayExporter::builder()
        .with_daemon_address(
            format!("127.0.0.1:{closed}")
                .parse::<DaemonAddress>()
                .unwrap(),
        )
        .with_retry(retry)
        .build()
        .unwrap();
    let udp_metrics = udp.metrics().clone();

    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(api)
        .with_simple_exporter(udp)
        .build();
    // Every span and event at every level reaches the OpenTelemetry layer, and a fmt
    // layer prints them (so logging itself is exercised on every thread).
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("app")))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(|| LogWriter),
        );
    tracing::subscriber::set_global_default(subscriber).unwrap();

    // A pipeline started now, under the subscriber, whose transport opens a span of its
    // own: inside the worker, telemetry is suppressed, so that span is not sampled (and
    // would otherwise be exported through the batch processor below).
    let probe = xray_export::Pipeline::start(Probe, Default::default()).unwrap();
    probe.submit(
        xray_export::Document::from_json(
            br#"{"name":"a","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1,"end_time":2}"#
                .to_vec(),
        )
        .unwrap(),
    );
    probe.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(
        *PROBE.lock().unwrap(),
        vec!["suppressed=true sampled=false in=xray_export.send".to_owned()]
    );
    for i in 0..3 {
        let request = tracing::info_span!("request", i);
        let _g = request.enter();
        let child = tracing::info_span!("child");
        child.in_scope(|| tracing::warn!("work inside a span"));
    }
    provider.force_flush().unwrap();
    provider.shutdown().unwrap();

    let logs = LOGS.lock().unwrap().clone();
    assert!(
        logs.contains("xray_export.send{transport=\"xray-api\""),
        "the worker's own span and logs reach the subscriber: {logs}"
    );
    // Only the application's six spans were exported, through each processor.
    let api = api_metrics.snapshot();
    assert_eq!(api.spans_in, 6, "{api:?}");
    assert_eq!(api.spans_sent, 6, "{api:?}");
    assert!(
        api.retries >= 1,
        "the first call failed and was retried: {api:?}"
    );
    let udp = udp_metrics.snapshot();
    assert_eq!(udp.spans_in, 6, "{udp:?}");
    assert_eq!(udp.spans_sent + udp.dropped_spans_total(), 6, "{udp:?}");
    let names = names(&stub);
    assert_eq!(names.values().sum::<usize>(), 6, "{names:?}");
    assert_eq!(names.get("child"), Some(&3), "{names:?}");
}

static LOGS: Mutex<String> = Mutex::new(String::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().push_str(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static PROBE: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Probe;

impl xray_export::Transport<xray_export::Document> for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }
    fn send<'a>(
        &'a mut self,
        batch: Vec<xray_export::Document>,
        cx: &'a xray_export::SendContext,
    ) -> xray_export::transport::SendFuture<'a> {
        Box::pin(async move {
            use opentelemetry::trace::TraceContextExt;
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            let span = tracing::info_span!("probe-inner");
            let sampled = span.context().span().span_context().is_sampled();
            let current = tracing::Span::current();
            PROBE.lock().unwrap().push(format!(
                "suppressed={} sampled={sampled} in={}",
                opentelemetry::Context::is_current_telemetry_suppressed(),
                current.metadata().map_or("none", |m| m.name())
            ));
            batch.iter().for_each(|d| cx.delivered(d));
        })
    }
}
