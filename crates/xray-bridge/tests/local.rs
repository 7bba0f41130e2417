//! Local mode through the real binary: OTLP (Python OpenTelemetry SDK, HTTP and gRPC) and
//! daemon datagrams (Python aws-xray-sdk) land in the console's store, the console's JSON
//! API shows them (list, filters, one trace, service map), and a restart keeps them.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Bridge, Options, Scratch};
use serde_json::Value;

const PY_OTEL: &str = r#"
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

kind, endpoint, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if kind == "http":
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    exporter = OTLPSpanExporter(endpoint=endpoint + "/v1/traces")
else:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True)
provider = TracerProvider(resource=Resource.create({"service.name": "py-" + kind}))
provider.add_span_processor(BatchSpanProcessor(exporter))
tracer = provider.get_tracer("local-test")
traces = []
for i in range(n):
    with tracer.start_as_current_span("GET /users/{id}", kind=trace.SpanKind.SERVER) as server:
        server.set_attribute("http.request.method", "GET")
        server.set_attribute("url.full", "http://shop.local/users/%d" % i)
        server.set_attribute("http.response.status_code", 500 if i == 0 else 200)
        with tracer.start_as_current_span("SELECT shop.users", kind=trace.SpanKind.CLIENT) as client:
            client.set_attribute("db.system", "postgresql")
            client.set_attribute("db.name", "shop")
        t = format(server.get_span_context().trace_id, "032x")
        traces.append("1-%s-%s" % (t[:8], t[8:]))
assert provider.force_flush(10000)
provider.shutdown()
print(json.dumps(traces))
"#;

const PY_SDK: &str = r#"
import json, sys
from aws_xray_sdk.core import xray_recorder

xray_recorder.configure(
    daemon_address="127.0.0.1:" + sys.argv[1],
    sampling=False,
    context_missing="LOG_ERROR",
    plugins=(),
)
traces = []
for i in range(int(sys.argv[2])):
    segment = xray_recorder.begin_segment("py-daemon")
    segment.put_http_meta("method", "GET")
    segment.put_http_meta("url", "http://shop.local/orders/%d" % i)
    segment.put_http_meta("status", 503 if i == 0 else 200)
    with xray_recorder.in_subsegment("DynamoDB") as sub:
        sub.namespace = "aws"
        sub.put_http_meta("status", 200)
    traces.append(segment.trace_id)
    xray_recorder.end_segment()
print(json.dumps(traces))
"#;

/// `GET` on the console; the status and the JSON body.
fn get(port: u16, path_and_query: &str) -> (u16, Value) {
    let url = format!("http://127.0.0.1:{port}{path_and_query}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let response = reqwest::get(&url).await.expect("GET console");
        let status = response.status().as_u16();
        let body = response.text().await.expect("body");
        let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"));
        (status, json)
    })
}

fn ids(list: &Value) -> BTreeSet<String> {
    list["traces"]
        .as_array()
        .expect("traces array")
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Local mode with the console on a free port (`bridge.console`).
fn start_local(store: &Path) -> Bridge {
    let store = store.display().to_string();
    Bridge::start(Options {
        export: "local".into(),
        args: vec!["--store", &store],
        env: Vec::new(),
        tcp: false,
        console: true,
    })
}

/// Polls the console until it lists `n` traces.
fn wait_traces(console: u16, n: usize, bridge: &Bridge) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, list) = get(console, "/api/traces");
        assert_eq!(status, 200, "{list}");
        if list["traces"].as_array().map_or(0, Vec::len) >= n {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "console lists {list} instead of {n} traces:\n{}",
            bridge.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn otlp_and_daemon_traffic_show_on_the_console_and_survive_a_restart() {
    xray_testkit::require_python(&[
        "aws_xray_sdk",
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    ]);
    let scratch = Scratch::new("local");
    let store = scratch.path("nested/local.db");
    let mut bridge = start_local(&store);
    let console = bridge.console;

    let run = |args: &[&str], script: &str| -> Vec<String> {
        serde_json::from_str(xray_testkit::run_python(script, args, "").trim()).unwrap()
    };
    let http = run(&["http", &bridge.url(bridge.http, ""), "4"], PY_OTEL);
    let grpc = run(&["grpc", &bridge.url(bridge.grpc, ""), "3"], PY_OTEL);
    let udp = run(&[&bridge.udp.to_string(), "3"], PY_SDK);
    let all: BTreeSet<String> = http.iter().chain(&grpc).chain(&udp).cloned().collect();
    assert_eq!(all.len(), 10);

    // Every span delivered into the store (none dropped; a datagram counts as one), then
    // listed by the console.
    let metrics = bridge.wait_metrics(Duration::from_secs(15), |t| {
        Bridge::metric(t, "xray_bridge_export_spans_sent_total{export=\"local\"}")
            >= 4 * 2 + 3 * 2 + 3
    });
    assert_eq!(
        Bridge::metric(
            &metrics,
            "xray_bridge_export_spans_sent_total{export=\"local\"}"
        ),
        4 * 2 + 3 * 2 + 3,
        "{metrics}"
    );
    let list = wait_traces(console, 10, &bridge);
    assert_eq!(ids(&list), all, "{list}");

    // Exactly the faulty ones (the first of each sender), and their complement.
    let (status, faults) = get(console, "/api/traces?filter=fault");
    assert_eq!(status, 200, "{faults}");
    let expected: BTreeSet<String> = [&http[0], &grpc[0], &udp[0]].into_iter().cloned().collect();
    assert_eq!(ids(&faults), expected);
    let (_, ok) = get(console, "/api/traces?filter=!fault");
    assert_eq!(ids(&ok), &all - &expected);
    let (_, by_service) = get(
        console,
        "/api/traces?filter=service(%22py-daemon%22)%20AND%20http.status%20%3D%20503",
    );
    assert_eq!(ids(&by_service), BTreeSet::from([udp[0].clone()]));

    // A bad filter is a 400 with a message.
    let (status, bad) = get(console, "/api/traces?filter=http.status%20%3D");
    assert_eq!(status, 400, "{bad}");
    assert!(
        bad["error"].as_str().is_some_and(|m| !m.is_empty()),
        "{bad}"
    );

    // One trace: the documents as received.
    let (status, one) = get(console, &format!("/api/traces/{}", grpc[1]));
    assert_eq!(status, 200, "{one}");
    // Its two spans, whether nested in one document or sent as two.
    let docs = xray_testkit::all_segments(one["documents"].as_array().expect("documents"));
    assert_eq!(docs.len(), 2, "{one}");
    assert!(
        docs.iter().all(|d| d["trace_id"] == grpc[1].as_str()),
        "{one}"
    );
    assert!(docs.iter().any(|d| d["name"] == "py-grpc"), "{one}");
    let (status, daemon) = get(console, &format!("/api/traces/{}", udp[0]));
    assert_eq!(status, 200);
    assert_eq!(daemon["documents"][0]["name"], "py-daemon");
    assert_eq!(daemon["documents"][0]["fault"], true);

    // The service map: one node per service with its request counts.
    let (status, map) = get(console, "/api/servicemap");
    assert_eq!(status, 200, "{map}");
    let nodes = map["nodes"].as_array().expect("nodes");
    let node = |name: &str| {
        nodes
            .iter()
            .find(|n| n["name"] == name)
            .unwrap_or_else(|| panic!("no node {name} in {map}"))
    };
    assert_eq!(node("py-http")["stats"]["requests"], 4, "{map}");
    assert_eq!(node("py-grpc")["stats"]["requests"], 3, "{map}");
    assert_eq!(node("py-daemon")["stats"]["requests"], 3, "{map}");
    let fault_share = node("py-daemon")["stats"]["fault"].as_f64().unwrap();
    assert!((fault_share - 1.0 / 3.0).abs() < 1e-6, "{map}");
    assert!(!map["edges"].as_array().expect("edges").is_empty(), "{map}");

    assert_eq!(bridge.stop(Duration::from_secs(20)), 0, "{}", bridge.logs());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", console)).is_err(),
        "the console stops with the bridge"
    );

    // A restart on the same store keeps every trace.
    let mut again = start_local(&store);
    let console = again.console;
    let (_, list) = get(console, "/api/traces");
    assert_eq!(ids(&list), all, "{list}");
    let (_, faults) = get(console, "/api/traces?filter=fault");
    assert_eq!(ids(&faults), expected);
    assert_eq!(again.stop(Duration::from_secs(20)), 0, "{}", again.logs());
}

#[test]
fn local_mode_needs_no_aws_and_a_busy_console_port_fails_the_start() {
    let scratch = Scratch::new("local-busy");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_xray-bridge"))
        .args(["--local", "--udp", "127.0.0.1:0", "--otlp-grpc", "off"])
        .args([
            "--otlp-http",
            "off",
            "--console",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--store")
        .arg(scratch.path("s.db"))
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("local console cannot listen"), "{err}");
}
