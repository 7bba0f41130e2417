//! End to end with a real X-Ray API (moto): OTLP from the OpenTelemetry Python SDK and
//! daemon datagrams from the Python aws-xray-sdk and from a Rust service instrumented
//! with `tracing` go through `--export api` and come back
//! with BatchGetTraces.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_xray::config::{BehaviorVersion, Credentials, Region};
use common::{Bridge, Options};

const PY_OTEL_HTTP: &str = r#"
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

provider = TracerProvider(resource=Resource.create({"service.name": "moto-otel"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=sys.argv[1] + "/v1/traces")))
tracer = provider.get_tracer("e2e")
traces = []
for i in range(2):
    with tracer.start_as_current_span("checkout", kind=trace.SpanKind.SERVER) as s:
        s.set_attribute("http.request.method", "POST")
        with tracer.start_as_current_span("charge card", kind=trace.SpanKind.CLIENT):
            pass
        traces.append(format(s.get_span_context().trace_id, "032x"))
assert provider.force_flush(10000)
provider.shutdown()
print(json.dumps(traces))
"#;

const PY_XRAY_SDK: &str = r#"
import json, sys
from aws_xray_sdk.core import xray_recorder
xray_recorder.configure(daemon_address="127.0.0.1:" + sys.argv[1], sampling=False,
                        context_missing="LOG_ERROR", plugins=())
traces = []
for i in range(2):
    segment = xray_recorder.begin_segment("moto-daemon-sdk")
    with xray_recorder.in_subsegment("work"):
        pass
    traces.append(segment.trace_id)
    xray_recorder.end_segment()
print(json.dumps(traces))
"#;

/// Spans from a Rust service instrumented with `tracing` (tracing-opentelemetry layer,
/// the `xray-export` exporter sending daemon datagrams to the bridge). Returns the X-Ray
/// trace id.
fn rust_service_spans(udp_port: u16) -> String {
    use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::layer::SubscriberExt;
    use xray_export::{DaemonAddress, XrayExporter};

    let exporter = XrayExporter::builder()
        .with_daemon_address(
            format!("127.0.0.1:{udp_port}")
                .parse::<DaemonAddress>()
                .unwrap(),
        )
        .build()
        .unwrap();
    let provider = SdkTracerProvider::builder()
        .with_resource(
            Resource::builder_empty()
                .with_service_name("moto-rust")
                .build(),
        )
        .with_batch_exporter(exporter)
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("e2e")));
    let trace_id = tracing::subscriber::with_default(subscriber, || {
        let root = tracing::info_span!("handle order", otel.kind = "server");
        let trace_id = root.context().span().span_context().trace_id();
        root.in_scope(|| {
            tracing::info_span!("load cart", otel.kind = "client").in_scope(|| {});
        });
        drop(root);
        trace_id
    });
    provider.force_flush().unwrap();
    provider.shutdown().unwrap();
    let hex = format!("{trace_id:032x}");
    format!("1-{}-{}", &hex[..8], &hex[8..])
}

#[test]
fn otlp_and_daemon_traffic_reach_the_xray_api_and_come_back() {
    xray_testkit::require_python(&[
        "aws_xray_sdk",
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    ]);
    let moto = xray_testkit::start_moto();
    let endpoint = moto.url();
    let mut bridge = Bridge::start(Options {
        args: vec!["--region", "us-east-1", "--endpoint-url", &endpoint],
        env: vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ],
        ..Options::export("api")
    });
    let otel: Vec<String> = serde_json::from_str(
        xray_testkit::run_python(PY_OTEL_HTTP, &[&bridge.url(bridge.http, "")], "").trim(),
    )
    .unwrap();
    let sdk: Vec<String> = serde_json::from_str(
        xray_testkit::run_python(PY_XRAY_SDK, &[&bridge.udp.to_string()], "").trim(),
    )
    .unwrap();
    let rust = rust_service_spans(bridge.udp);
    // 2 OTLP traces of 2 spans each, 2 SDK datagrams (subsegments embedded), 1 Rust
    // datagram (the exporter embeds the client span in its segment); a datagram counts as
    // one span.
    let text = bridge.wait_metrics(Duration::from_secs(20), |t| {
        Bridge::metric(t, "xray_bridge_export_spans_sent_total{export=\"api\"}") == 7
    });
    let requests = Bridge::metric(&text, "xray_bridge_export_requests_total{export=\"api\"}");
    assert!(requests >= 1);
    // Every PutTraceSegments call is timed in the histogram.
    let calls = "xray_bridge_export_call_duration_seconds";
    assert!(
        text.contains(&format!("# TYPE {calls} histogram")),
        "{text}"
    );
    assert_eq!(
        Bridge::metric(&text, &format!("{calls}_count{{export=\"api\"}}")),
        requests,
        "{text}"
    );
    assert_eq!(
        Bridge::metric(
            &text,
            &format!("{calls}_bucket{{export=\"api\",le=\"+Inf\"}}")
        ),
        requests,
        "{text}"
    );
    let sum: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{calls}_sum{{export=\"api\"}} ")))
        .and_then(|v| v.parse().ok())
        .expect("the _sum sample");
    assert!(sum > 0.0 && sum < 60.0, "{sum}");
    assert_eq!(bridge.stop(Duration::from_secs(20)), 0, "{}", bridge.logs());

    let ids: Vec<String> = otel
        .iter()
        .map(|t| format!("1-{}-{}", &t[..8], &t[8..]))
        .chain(sdk.iter().cloned())
        .chain([rust])
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let traces = rt.block_on(async {
        let config = aws_sdk_xray::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .build();
        aws_sdk_xray::Client::from_conf(config)
            .batch_get_traces()
            .set_trace_ids(Some(ids.clone()))
            .send()
            .await
            .expect("BatchGetTraces")
    });
    let mut found = HashSet::new();
    let mut names = Vec::new();
    for t in traces.traces() {
        found.insert(t.id().unwrap_or_default().to_owned());
        let docs: Vec<serde_json::Value> = t
            .segments()
            .iter()
            .map(|s| serde_json::from_str(s.document().unwrap_or("{}")).expect("document JSON"))
            .collect();
        if docs.iter().any(|d| d["name"] == "moto-otel") {
            // Both spans of each OTLP trace, nested or not.
            assert_eq!(xray_testkit::all_segments(&docs).len(), 2, "{docs:#?}");
        }
        for s in t.segments() {
            let doc: serde_json::Value =
                serde_json::from_str(s.document().unwrap_or("{}")).expect("document JSON");
            assert_eq!(doc["trace_id"].as_str(), t.id());
            names.push(doc["name"].as_str().unwrap_or_default().to_owned());
            if doc["name"] == "moto-rust" {
                assert_eq!(doc["subsegments"][0]["name"], "load cart", "{doc:#}");
            }
        }
    }
    let wanted: HashSet<String> = ids.into_iter().collect();
    assert_eq!(found, wanted, "every trace comes back");
    assert_eq!(
        names.iter().filter(|n| *n == "moto-otel").count(),
        2,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| *n == "moto-daemon-sdk").count(),
        2,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| *n == "moto-rust").count(),
        1,
        "{names:?}"
    );
}
