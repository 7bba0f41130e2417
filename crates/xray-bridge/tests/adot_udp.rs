//! ADOT's real Python `OTLPUdpSpanExporter` (PyPI `aws-opentelemetry-distro`) sends
//! `T1S`/`T1U` datagrams to the binary's UDP port: forwarded byte for byte with the api
//! export, translated with the others, unsampled spans counted and not exported, and bad
//! bodies rejected with their own reasons.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::xray_stub::XrayStub;
use common::{Bridge, Options, Scratch, read_lines};
use serde_json::Value;

/// Sends one trace (a server span with two children) through ADOT's exporter, in one
/// batch; prints the trace id (X-Ray form) and the bodies sent, after the header.
const PY_ADOT: &str = r#"
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator
from amazon.opentelemetry.distro.otlp_udp_exporter import OTLPUdpSpanExporter

port, sampled = sys.argv[1], sys.argv[2] == "sampled"
exporter = OTLPUdpSpanExporter(endpoint="127.0.0.1:" + port, sampled=sampled)
sent = []
real = exporter._udp_exporter._socket
class Recording:
    def sendto(self, data, address):
        sent.append(data.decode("utf-8"))
        return real.sendto(data, address)
    def close(self):
        real.close()
exporter._udp_exporter._socket = Recording()
provider = TracerProvider(
    id_generator=AwsXRayIdGenerator(),
    resource=Resource.create({"service.name": "adot-py"}),
)
provider.add_span_processor(BatchSpanProcessor(exporter))
tracer = provider.get_tracer("adot-test")
with tracer.start_as_current_span("GET /orders", kind=trace.SpanKind.SERVER) as root:
    root.set_attribute("http.request.method", "GET")
    root.set_attribute("http.response.status_code", 200)
    for i in range(2):
        with tracer.start_as_current_span("query-%d" % i, kind=trace.SpanKind.CLIENT):
            pass
    tid = "%032x" % root.get_span_context().trace_id
provider.shutdown()
header = '{"format":"json","version":1}\n'
assert all(s.startswith(header) for s in sent)
print(json.dumps({
    "trace_id": "1-%s-%s" % (tid[:8], tid[8:]),
    "bodies": [s[len(header):] for s in sent],
}))
"#;

struct Sent {
    trace_id: String,
    bodies: Vec<String>,
}

fn adot_send(port: u16, sampled: bool) -> Sent {
    let out = xray_testkit::run_python(
        PY_ADOT,
        &[
            &port.to_string(),
            if sampled { "sampled" } else { "unsampled" },
        ],
        "",
    );
    let v: Value = serde_json::from_str(out.trim()).expect("python output");
    let bodies: Vec<String> = v["bodies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap().to_owned())
        .collect();
    let prefix = if sampled { "T1S" } else { "T1U" };
    assert!(!bodies.is_empty() && bodies.iter().all(|b| b.starts_with(prefix)));
    Sent {
        trace_id: v["trace_id"].as_str().unwrap().to_owned(),
        bodies,
    }
}

fn require_adot() {
    xray_testkit::require_python(&["amazon.opentelemetry.distro.otlp_udp_exporter"]);
}

fn api_options(stub: &XrayStub) -> Options<'static> {
    Options {
        args: vec!["--region", "us-east-1"],
        env: vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("XRAY_BRIDGE_ENDPOINT_URL", stub.url.clone()),
        ],
        ..Options::export("api")
    }
}

#[test]
fn api_export_forwards_t1s_and_t1u_bodies_byte_for_byte() {
    require_adot();
    let stub = XrayStub::start(Duration::ZERO);
    let mut bridge = Bridge::start(api_options(&stub));
    let sampled = adot_send(bridge.udp, true);
    let unsampled = adot_send(bridge.udp, false);
    let expected: Vec<String> = sampled
        .bodies
        .iter()
        .chain(&unsampled.bodies)
        .cloned()
        .collect();
    let mut received = stub.wait_for_documents(expected.len(), Duration::from_secs(15));
    received.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(received, want, "{}", bridge.logs());
    let text = bridge.metrics_text();
    assert_eq!(
        Bridge::metric(&text, "xray_bridge_udp_documents_accepted_total"),
        expected.len() as u64
    );
    assert_eq!(
        Bridge::metric(&text, "xray_bridge_udp_adot_spans_total{kind=\"T1S\"}"),
        3
    );
    assert_eq!(bridge.stop(Duration::from_secs(20)), 0, "{}", bridge.logs());
}

fn file_segments(path: &std::path::Path) -> Vec<Value> {
    let docs: Vec<Value> = read_lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    xray_testkit::all_segments(&docs)
}

#[test]
fn file_export_translates_sampled_spans_and_counts_unsampled_ones() {
    require_adot();
    let scratch = Scratch::new("adot-file");
    let out = scratch.path("docs.jsonl");
    let mut bridge = Bridge::start(Options::export(format!("file:{}", out.display())));
    let sent = adot_send(bridge.udp, true);
    bridge.wait_metrics(Duration::from_secs(15), |t| {
        Bridge::metric(t, "xray_bridge_otlp_spans_accepted_total{protocol=\"udp\"}") == 3
    });
    let unsampled = adot_send(bridge.udp, false);
    let text = bridge.wait_metrics(Duration::from_secs(15), |t| {
        Bridge::metric(t, "xray_bridge_udp_unsampled_spans_not_exported_total") == 3
    });
    assert_eq!(
        Bridge::metric(&text, "xray_bridge_udp_adot_spans_total{kind=\"T1U\"}"),
        3
    );
    assert_eq!(bridge.stop(Duration::from_secs(20)), 0, "{}", bridge.logs());
    let segments = file_segments(&out);
    assert_eq!(segments.len(), 3, "{segments:?}");
    for s in &segments {
        assert_eq!(s["trace_id"], sent.trace_id.as_str(), "{s}");
        xray_testkit::assert_schema_valid(&s.to_string());
    }
    assert!(
        segments.iter().any(|s| s["name"] == "adot-py"),
        "{segments:?}"
    );
    assert!(
        segments
            .iter()
            .all(|s| s["trace_id"] != unsampled.trace_id.as_str()),
        "unsampled spans were exported"
    );
}

#[test]
fn local_export_shows_adot_spans_on_one_trace() {
    require_adot();
    let scratch = Scratch::new("adot-local");
    let store = scratch.path("local.db").display().to_string();
    let mut bridge = Bridge::start(Options {
        args: vec!["--store", &store],
        console: true,
        ..Options::export("local")
    });
    let sent = adot_send(bridge.udp, true);
    let url = format!(
        "http://127.0.0.1:{}/api/traces/{}",
        bridge.console, sent.trace_id
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let docs = loop {
        let body: Option<Value> = rt.block_on(async {
            let r = reqwest::get(&url).await.ok()?;
            if r.status() != 200 {
                return None;
            }
            r.json().await.ok()
        });
        if let Some(body) = body {
            let docs = xray_testkit::all_segments(body["documents"].as_array().unwrap());
            if docs.len() >= 3 {
                break docs;
            }
        }
        assert!(Instant::now() < deadline, "{}", bridge.logs());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(docs.len(), 3);
    for d in &docs {
        assert_eq!(d["trace_id"], sent.trace_id.as_str());
        xray_testkit::assert_schema_valid(&d.to_string());
    }
    assert_eq!(bridge.stop(Duration::from_secs(20)), 0, "{}", bridge.logs());
}

#[test]
fn bad_adot_bodies_are_rejected_each_with_its_reason_and_good_ones_still_pass() {
    let scratch = Scratch::new("adot-bad");
    let out = scratch.path("docs.jsonl");
    let mut bridge = Bridge::start(Options::export(format!("file:{}", out.display())));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let header = "{\"format\":\"json\",\"version\":1}\n";
    // Valid base64 whose bytes are no OTLP message (a length running past the end).
    let not_protobuf = "T1SCn8B";
    for body in ["T1S%%%", "T1Unot base64!", not_protobuf, "M1AAAA", "M1AAAA"] {
        socket
            .send_to(
                format!("{header}{body}").as_bytes(),
                ("127.0.0.1", bridge.udp),
            )
            .unwrap();
    }
    let text = bridge.wait_metrics(Duration::from_secs(10), |t| {
        Bridge::metric(t, "xray_bridge_udp_datagrams_received_total") == 5
    });
    for (reason, n) in [("bad_base64", 2), ("bad_protobuf", 1), ("otlp_metrics", 2)] {
        assert_eq!(
            Bridge::metric(
                &text,
                &format!("xray_bridge_udp_datagrams_rejected_total{{reason=\"{reason}\"}}")
            ),
            n,
            "{reason}\n{text}"
        );
    }
    // M1 datagrams are not logged one by one.
    assert!(
        bridge.logs().matches("otlp_metrics").count() <= 1,
        "{}",
        bridge.logs()
    );
    require_adot();
    adot_send(bridge.udp, true);
    bridge.wait_metrics(Duration::from_secs(15), |t| {
        Bridge::metric(t, "xray_bridge_otlp_spans_accepted_total{protocol=\"udp\"}") == 3
    });
    assert_eq!(bridge.stop(Duration::from_secs(20)), 0, "{}", bridge.logs());
}
