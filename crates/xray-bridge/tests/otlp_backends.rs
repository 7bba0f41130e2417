//! From X-Ray to OpenTelemetry, through the real binary and real peers on loopback:
//! - the Python `aws-xray-sdk` sends daemon datagrams; `--export otlp:URL` delivers them
//!   as OTLP/HTTP protobuf (gzip, unsigned, with the `--otlp-header`) to a receiver built
//!   on the Python `opentelemetry-proto` classes, and `--export file:` beside it gets the
//!   documents; bad documents are counted for the OTLP export and never break the file
//!   export;
//! - the same through `rotel`, an OTLP receiver forwarding with its own OTLP exporter;
//! - `--export api --export otlp:URL --export file:` at once while the X-Ray API fails
//!   for 20 s: the OTLP and file exports keep delivering, the api export catches up.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::xray_stub::XrayStub;
use common::{Bridge, Options, Scratch, read_lines};
use serde_json::Value;
use xray_testkit::{Server, free_port, python, require_python};

/// An OTLP/HTTP receiver made of the Python `opentelemetry-proto` classes: every span of
/// every request as one JSON line, with the request's path and headers.
const RECEIVER: &str = r#"
import gzip, json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)

port, out = int(sys.argv[1]), sys.argv[2]

def value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        encoding = self.headers.get("content-encoding")
        if encoding == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        lines = []
        for rs in request.resource_spans:
            resource = {kv.key: value(kv.value) for kv in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    lines.append(json.dumps({
                        "path": self.path,
                        "api_key": self.headers.get("x-api-key"),
                        "authorization": self.headers.get("authorization"),
                        "encoding": encoding,
                        "resource": resource,
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent": s.parent_span_id.hex(),
                        "name": s.name,
                        "kind": s.kind,
                        "status": s.status.code,
                        "attributes": {kv.key: value(kv.value) for kv in s.attributes},
                        "events": [
                            {"name": e.name, "attributes": {kv.key: value(kv.value) for kv in e.attributes}}
                            for e in s.events
                        ],
                    }))
        with open(out, "a") as f:
            for line in lines:
                f.write(line + "\n")
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"#;

/// The X-Ray SDK for Python, sending through the daemon address: `n` requests, each a
/// segment with an HTTP call that fails (503, an exception), a database call and local
/// work; prints the trace ids.
const SDK: &str = r#"
import sys, traceback
from aws_xray_sdk.core import xray_recorder
xray_recorder.configure(sampling=False, context_missing="LOG_ERROR")
for i in range(int(sys.argv[1])):
    seg = xray_recorder.begin_segment("checkout")
    seg.put_http_meta("method", "GET")
    seg.put_http_meta("url", "https://shop.example.com/cart/%d" % i)
    seg.put_annotation("order", i)
    sub = xray_recorder.begin_subsegment("inventory", namespace="remote")
    sub.put_http_meta("method", "POST")
    sub.put_http_meta("url", "http://inventory:8080/reserve")
    sub.put_http_meta("status", 503)
    try:
        raise ValueError("out of stock")
    except ValueError as e:
        sub.add_exception(e, traceback.extract_stack(), remote=True)
    xray_recorder.end_subsegment()
    db = xray_recorder.begin_subsegment("orders@db.internal", namespace="remote")
    db.set_sql({"url": "postgresql://db.internal:5432/orders", "database_type": "PostgreSQL",
                "sanitized_query": "SELECT 1"})
    xray_recorder.end_subsegment()
    work = xray_recorder.begin_subsegment("render")
    xray_recorder.end_subsegment()
    seg.put_http_meta("status", 502)
    xray_recorder.end_segment()
    print(seg.trace_id)
"#;

/// Starts the Python OTLP receiver on a free port; spans land in `out`.
/// Runs the Python SDK script against the bridge's UDP port for `traces` traces; returns
/// their trace ids.
fn run_sdk(udp: u16, traces: usize) -> Vec<String> {
    let output = Command::new(python())
        .args(["-c", SDK, &traces.to_string()])
        .env("AWS_XRAY_DAEMON_ADDRESS", format!("127.0.0.1:{udp}"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn start_receiver(scratch: &Scratch, out: &Path) -> Server {
    let script = scratch.path("receiver.py");
    std::fs::write(&script, RECEIVER).unwrap();
    let port = free_port();
    let mut cmd = Command::new(python());
    cmd.arg(&script).arg(port.to_string()).arg(out);
    Server::start(cmd, port, Duration::from_secs(30))
}

/// The spans the receiver wrote so far.
fn received(out: &Path) -> Vec<Value> {
    read_lines(out)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn wait_for_spans(out: &Path, n: usize, timeout: Duration) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let spans = received(out);
        if spans.len() >= n {
            return spans;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} spans arrived",
            spans.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The W3C form of an X-Ray trace id: `1-5759e988-bd86...` -> `5759e988bd86...`.
fn w3c(xray: &str) -> String {
    xray[2..].replace('-', "")
}

fn send_datagram(port: u16, doc: &str) {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(
            format!("{}{doc}", xray_model::DAEMON_HEADER).as_bytes(),
            ("127.0.0.1", port),
        )
        .unwrap();
}

/// Checks what the SDK's requests became: spans on one W3C trace id per request, parent
/// links intact, HTTP and error attributes set.
fn check_sdk_spans(spans: &[Value], trace_ids: &[String]) {
    let mut by_trace: HashMap<&str, Vec<&Value>> = HashMap::new();
    for s in spans {
        by_trace
            .entry(s["trace_id"].as_str().unwrap())
            .or_default()
            .push(s);
    }
    for xray in trace_ids {
        let trace = by_trace
            .get(w3c(xray).as_str())
            .unwrap_or_else(|| panic!("trace {xray} not received"));
        assert_eq!(trace.len(), 4, "{trace:#?}");
        let root = trace
            .iter()
            .find(|s| s["parent"] == "")
            .expect("the segment");
        assert_eq!(root["kind"], 2, "Server");
        assert_eq!(root["resource"]["service.name"], "checkout");
        assert_eq!(root["resource"]["telemetry.sdk.language"], "Python");
        assert_eq!(root["attributes"]["http.request.method"], "GET");
        assert_eq!(root["attributes"]["http.response.status_code"], 502);
        assert_eq!(root["status"], 2, "a 5xx is an Error status");
        let ids: HashSet<&str> = trace
            .iter()
            .map(|s| s["span_id"].as_str().unwrap())
            .collect();
        for s in trace.iter().filter(|s| s["parent"] != "") {
            assert!(ids.contains(s["parent"].as_str().unwrap()), "{s}");
        }
        let inventory = trace.iter().find(|s| s["name"] == "inventory").unwrap();
        assert_eq!(inventory["kind"], 3, "Client");
        assert_eq!(inventory["parent"], root["span_id"]);
        assert_eq!(inventory["attributes"]["peer.service"], "inventory");
        assert_eq!(
            inventory["attributes"]["url.full"],
            "http://inventory:8080/reserve"
        );
        assert_eq!(inventory["attributes"]["http.response.status_code"], 503);
        assert_eq!(inventory["status"], 2);
        let exception = &inventory["events"][0];
        assert_eq!(exception["name"], "exception");
        assert_eq!(exception["attributes"]["exception.type"], "ValueError");
        assert_eq!(exception["attributes"]["exception.message"], "out of stock");
        let stack = exception["attributes"]["exception.stacktrace"]
            .as_str()
            .unwrap();
        assert!(
            stack.starts_with("Traceback (most recent call last):\n  File "),
            "{stack}"
        );
        let db = trace
            .iter()
            .find(|s| s["name"] == "orders@db.internal")
            .unwrap();
        assert_eq!(db["attributes"]["db.system.name"], "PostgreSQL");
        let render = trace.iter().find(|s| s["name"] == "render").unwrap();
        assert_eq!(render["kind"], 1, "Internal");
    }
}

#[test]
fn python_sdk_datagrams_reach_an_otlp_backend_and_a_file_at_once() {
    require_python(&["aws_xray_sdk", "opentelemetry.proto"]);
    let scratch = Scratch::new("otlp-backend");
    let out = scratch.path("otlp.jsonl");
    let receiver = start_receiver(&scratch, &out);
    let file = scratch.path("docs.jsonl");
    let otlp = format!("otlp:http://127.0.0.1:{}/v1/traces", receiver.port);
    let file_export = format!("file:{}", file.display());
    let mut bridge = Bridge::start(Options {
        args: vec![
            "--export",
            &file_export,
            "--otlp-header",
            "x-api-key=key-from-the-flag",
            "--in-progress-timeout",
            "1",
        ],
        env: vec![(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-api-key=overridden,x-team=a%20b".into(),
        )],
        ..Options::export(otlp)
    });
    let label = format!("otlp:127.0.0.1:{}", receiver.port);

    let trace_ids = run_sdk(bridge.udp, 5);
    assert_eq!(trace_ids.len(), 5);

    // Bad documents, each valid for X-Ray's receiver (the file export takes them) but not
    // convertible, and an in-progress segment that never completes.
    let trace = "1-581cf771-a006649127e371903a2de979";
    let bad = [
        format!(
            r#"{{"name":"a","id":"70de5b6f19ff9a01","trace_id":"{trace}","start_time":1.0,"end_time":2.0,"http":5}}"#
        ),
        format!(
            r#"{{"name":"b","id":"70de5b6f19ff9a02","trace_id":"{trace}","start_time":1.0,"end_time":2.0,"subsegments":[{{"name":"z","id":"0000000000000000","start_time":1.0,"end_time":2.0}}]}}"#
        ),
        format!(
            r#"{{"name":"c","id":"70de5b6f19ff9a03","trace_id":"{trace}","start_time":1.0,"end_time":-2.0}}"#
        ),
        format!(
            r#"{{"name":"d","id":"70de5b6f19ff9a04","trace_id":"{trace}","start_time":1.0,"in_progress":true}}"#
        ),
    ];
    for doc in &bad {
        send_datagram(bridge.udp, doc);
    }
    // An in-progress segment that does complete: held, then sent once, complete.
    let started = format!(
        r#"{{"name":"e","id":"70de5b6f19ff9a05","trace_id":"{trace}","start_time":1.0,"in_progress":true}}"#
    );
    let done = format!(
        r#"{{"name":"e","id":"70de5b6f19ff9a05","trace_id":"{trace}","start_time":1.0,"end_time":3.0}}"#
    );
    send_datagram(bridge.udp, &started);
    std::thread::sleep(Duration::from_millis(200));
    send_datagram(bridge.udp, &done);

    let spans = wait_for_spans(&out, 5 * 4 + 1, Duration::from_secs(30));
    check_sdk_spans(&spans, &trace_ids);
    let completed: Vec<&Value> = spans.iter().filter(|s| s["name"] == "e").collect();
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0]["trace_id"], w3c(trace));
    for s in &spans {
        assert_eq!(s["path"], "/v1/traces");
        assert_eq!(s["encoding"], "gzip");
        assert_eq!(s["authorization"], Value::Null, "unsigned");
        assert_eq!(s["api_key"], "key-from-the-flag");
    }

    let text = bridge.wait_metrics(Duration::from_secs(20), |t| {
        let m = |reason: &str| {
            Bridge::metric(
                t,
                &format!(
                    "xray_bridge_export_unconverted_total{{export=\"{label}\",reason=\"{reason}\"}}"
                ),
            )
        };
        m("bad_document") == 1
            && m("invalid_id") == 1
            && m("invalid_time") == 1
            && m("in_progress_expired") == 1
    });
    assert_eq!(
        Bridge::metric(
            &text,
            &format!("xray_bridge_export_spans_sent_total{{export=\"{label}\"}}")
        ),
        21
    );
    // The file export got every document, the bad ones included (X-Ray takes them).
    let docs = read_lines(&file);
    assert_eq!(docs.len(), 5 + bad.len() + 2, "{docs:#?}");
    assert_eq!(
        bridge.stop(Duration::from_secs(20)),
        3,
        "conversion drops are data lost"
    );
    let logs = bridge.logs();
    assert!(logs.contains("not sent to the OTLP exports"), "{logs}");
    for secret in ["key-from-the-flag", "overridden"] {
        assert!(!logs.contains(secret), "a header value was logged");
    }
    drop(receiver);
}

/// `rotel-agent` from the `rotel` Python package (see benches/benches/binary.rs).
fn rotel_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("ROTEL_BIN") {
        return bin.into();
    }
    let out = xray_testkit::run_python(
        "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))",
        &[],
        "",
    );
    PathBuf::from(out.trim())
}

#[test]
fn rotel_receives_the_spans_and_forwards_them_with_its_own_exporter() {
    require_python(&["aws_xray_sdk", "opentelemetry.proto", "rotel"]);
    let scratch = Scratch::new("otlp-rotel");
    let out = scratch.path("otlp.jsonl");
    let receiver = start_receiver(&scratch, &out);
    let (http, grpc) = (free_port(), free_port());
    let mut cmd = Command::new(rotel_bin());
    cmd.arg("start")
        .args(["--otlp-http-endpoint", &format!("127.0.0.1:{http}")])
        .args(["--otlp-grpc-endpoint", &format!("127.0.0.1:{grpc}")])
        .args(["--exporter", "otlp", "--otlp-exporter-protocol", "http"])
        .args([
            "--otlp-exporter-endpoint",
            &format!("http://127.0.0.1:{}", receiver.port),
        ])
        .arg("--pid-file")
        .arg(scratch.path("rotel.pid"))
        .arg("--log-file")
        .arg(scratch.path("rotel.log"));
    for (k, _) in std::env::vars() {
        if k.starts_with("ROTEL_") || k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    let rotel = Server::start(cmd, http, Duration::from_secs(30));
    let mut bridge = Bridge::start(Options::export(format!(
        "otlp:http://127.0.0.1:{http}/v1/traces"
    )));
    let trace_ids = run_sdk(bridge.udp, 3);
    let spans = wait_for_spans(&out, 3 * 4, Duration::from_secs(30));
    check_sdk_spans(&spans, &trace_ids);
    assert_eq!(bridge.stop(Duration::from_secs(20)), 0, "{}", bridge.logs());
    drop(rotel);
}

/// An OTLP/HTTP receiver in the test: counts spans (gzip bodies decoded with prost).
struct Counting {
    url: String,
    spans: Arc<Mutex<Vec<String>>>,
    _stub: xray_testkit::stub::Stub,
}

fn start_counting() -> Counting {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    use xray_testkit::stub::{Reply, Stub};
    let spans: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = spans.clone();
    let stub = Stub::start(move |_, request| {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(request.body.as_slice())
            .read_to_end(&mut plain)
            .unwrap();
        let request = ExportTraceServiceRequest::decode(plain.as_slice()).unwrap();
        let names = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.name.clone());
        seen.lock().unwrap().extend(names);
        Reply::Respond(
            200,
            vec![("content-type".into(), "application/x-protobuf".into())],
            Vec::new(),
        )
    });
    Counting {
        url: format!("{}/v1/traces", stub.url()),
        spans,
        _stub: stub,
    }
}

/// `--export api --export otlp:URL --export file:PATH`: every span arrives at all three;
/// with the X-Ray API failing for 20 s, the OTLP and file exports keep up with the input
/// all along, and the api export catches up after the API recovers.
#[test]
fn three_exports_at_once_and_a_failing_api_holds_up_no_other() {
    let scratch = Scratch::new("otlp-three");
    let file = scratch.path("docs.jsonl");
    let stub = XrayStub::start(Duration::ZERO);
    let otlp = start_counting();
    let otlp_export = format!("otlp:{}", otlp.url);
    let file_export = format!("file:{}", file.display());
    let mut bridge = Bridge::start(Options {
        args: vec![
            "--export",
            &otlp_export,
            "--export",
            &file_export,
            "--region",
            "us-east-1",
            "--endpoint-url",
            &stub.url,
            "--log-level",
            "info",
        ],
        env: vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ],
        ..Options::export("api")
    });
    stub.fail_for(503, Duration::from_secs(20));
    let outage_end = Instant::now() + Duration::from_secs(20);
    // 100 documents a second for 25 s, one trace each.
    let rate = 100;
    let total = 25 * rate;
    let start = Instant::now();
    let mut lag_during_outage = Vec::new();
    for i in 0..total {
        let doc = format!(
            r#"{{"name":"svc","id":"{:016x}","trace_id":"1-581cf771-{:024x}","start_time":1.0,"end_time":2.0}}"#,
            i + 1,
            i + 1
        );
        send_datagram(bridge.udp, &doc);
        let due = start + Duration::from_millis((i as u64 + 1) * 1000 / rate as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        // Every 5 s within the outage: the OTLP and file exports are at most 1 s behind,
        // and the API has taken nothing.
        if i > 0 && i % (5 * rate) == 0 && Instant::now() + Duration::from_secs(2) < outage_end {
            std::thread::sleep(Duration::from_secs(1));
            let sent = i + 1;
            let at_otlp = otlp.spans.lock().unwrap().len();
            let at_file = read_lines(&file).len();
            lag_during_outage.push((sent, at_otlp, at_file, stub.documents().len()));
        }
    }
    assert!(lag_during_outage.len() >= 3, "{lag_during_outage:?}");
    for &(sent, at_otlp, at_file, at_api) in &lag_during_outage {
        // One second of the input (100) arrived during the check's own pause: nothing of
        // it may be missing.
        assert!(at_otlp >= sent, "OTLP held up: {lag_during_outage:?}");
        assert!(at_file >= sent, "file held up: {lag_during_outage:?}");
        assert_eq!(at_api, 0, "the API is down: {lag_during_outage:?}");
    }
    let docs = stub.wait_for_documents(total, Duration::from_secs(90));
    assert_eq!(docs.len(), total, "the api export caught up");
    let text = bridge.wait_metrics(Duration::from_secs(20), |t| {
        ["api", "file"]
            .iter()
            .map(|e| format!("xray_bridge_export_spans_sent_total{{export=\"{e}\"}}"))
            .chain([format!(
                "xray_bridge_export_spans_sent_total{{export=\"{}\"}}",
                bridge_label(&otlp.url)
            )])
            .all(|m| Bridge::metric(t, &m) == total as u64)
    });
    assert!(
        Bridge::metric(&text, "xray_bridge_export_retries_total{export=\"api\"}") > 0,
        "{text}"
    );
    assert_eq!(otlp.spans.lock().unwrap().len(), total);
    assert_eq!(read_lines(&file).len(), total);
    assert!(stub.refused_documents() > 0);
    assert_eq!(bridge.stop(Duration::from_secs(20)), 0, "{}", bridge.logs());
}

fn bridge_label(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    format!("otlp:{}", rest.split('/').next().unwrap())
}

/// OTLP input with a document export and an OTLP export: translated for the one, as it
/// came for the other; invalid spans are refused once, in the answer.
#[test]
fn otlp_input_reaches_document_and_otlp_exports_alike() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    use prost::Message;
    let scratch = Scratch::new("otlp-both");
    let file = scratch.path("docs.jsonl");
    let otlp = start_counting();
    let otlp_export = format!("otlp:{}", otlp.url);
    let mut bridge = Bridge::start(Options {
        args: vec!["--export", &otlp_export],
        ..Options::export(format!("file:{}", file.display()))
    });
    let request = common::otlp_request(
        "checkout",
        vec![
            common::otlp_span(1, 1, "kept-1"),
            common::otlp_span(0, 2, "no-trace"),
            common::otlp_span(2, 3, "kept-2"),
        ],
    );
    let (status, answer) = bridge.post_otlp(&request);
    assert_eq!(status, 200);
    let answer = ExportTraceServiceResponse::decode(answer.as_slice()).unwrap();
    assert_eq!(answer.partial_success.unwrap().rejected_spans, 1);
    let text = bridge.wait_metrics(Duration::from_secs(15), |t| {
        Bridge::metric(t, "xray_bridge_export_spans_sent_total{export=\"file\"}") == 2
            && Bridge::metric(
                t,
                &format!(
                    "xray_bridge_export_spans_sent_total{{export=\"{}\"}}",
                    bridge_label(&otlp.url)
                ),
            ) == 2
    });
    assert_eq!(
        Bridge::metric(
            &text,
            "xray_bridge_otlp_spans_rejected_total{protocol=\"http\",reason=\"invalid_id\"}"
        ),
        1,
        "counted once"
    );
    let mut names = otlp.spans.lock().unwrap().clone();
    names.sort();
    assert_eq!(names, ["kept-1", "kept-2"]);
    let docs = read_lines(&file);
    assert_eq!(docs.len(), 2);
    assert!(
        docs.iter().all(|d| d.contains("\"name\":\"checkout\"")),
        "{docs:?}"
    );
    assert_eq!(bridge.stop(Duration::from_secs(20)), 0, "{}", bridge.logs());
}
