//! End-to-end: services built on `tracing-xray` (the `e2e-service` binary, one process
//! per service, configured through the environment only) send their documents to a UDP
//! listener standing in for the X-Ray daemon.
//!
//! - `one_trace_across_services_and_dynamodb`: client -> frontend -> backend -> DynamoDB
//!   (moto): one trace, the right segment/subsegment tree, names, namespaces, http/aws
//!   fields, errors; every document schema-valid.
//! - `python_aws_xray_sdk_peer_both_directions`: a Python service on `aws-xray-sdk` calls
//!   us and we call it back; one trace, parents linked both ways.
//! - `sdk_disabled_is_a_no_op`: `AWS_XRAY_SDK_ENABLED=false` sends nothing and answers
//!   `Sampled=?` with `Sampled=0`, where the same service enabled sends and samples.

use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use xray_testkit::{Server, free_port, python, require_python, start_moto, udp_listener};

/// Variables the services read that the test machine must not leak into them.
const CLEARED: &[&str] = &[
    "AWS_XRAY_SDK_ENABLED",
    "AWS_XRAY_DAEMON_ADDRESS",
    "AWS_XRAY_TRACING_NAME",
    "AWS_XRAY_CONTEXT_MISSING",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_PROPAGATORS",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
];

/// Starts the service binary with `env` on a free port, sending to `udp`.
fn service(name: &str, udp: &UdpSocket, env: &[(&str, String)]) -> Server {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_e2e-service"));
    for var in CLEARED {
        cmd.env_remove(var);
    }
    cmd.env("E2E_ADDR", format!("127.0.0.1:{port}"))
        .env("OTEL_SERVICE_NAME", name)
        .env(
            "AWS_XRAY_DAEMON_ADDRESS",
            format!("127.0.0.1:{}", udp.local_addr().unwrap().port()),
        )
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Server::start(cmd, port, Duration::from_secs(20))
}

/// Receives documents until `done` says so of their (sub)segments or 15 s pass; each is
/// checked against the schema as sent. Returns every (sub)segment, embedded ones (ours
/// nested by the exporter, Python's by its SDK) lifted out as well (`all_segments`).
fn documents(socket: &UdpSocket, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut docs = Vec::new();
    let mut buf = vec![0u8; 70_000];
    while !done(&xray_testkit::all_segments(&docs)) && Instant::now() < deadline {
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        let text = std::str::from_utf8(&buf[..n]).expect("utf-8 datagram");
        let (header, body) = text.split_once('\n').expect("daemon header line");
        assert_eq!(header, r#"{"format":"json","version":1}"#);
        xray_testkit::assert_schema_valid(body);
        docs.push(serde_json::from_str(body).unwrap());
    }
    xray_testkit::all_segments(&docs)
}

/// The (sub)segments received until `quiet` has passed, embedded ones counted too.
fn silence(socket: &UdpSocket, quiet: Duration) -> usize {
    let mut buf = vec![0u8; 70_000];
    let deadline = Instant::now() + quiet;
    let mut docs = Vec::new();
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]);
            let body = text.split_once('\n').map_or(&*text, |(_, body)| body);
            docs.push(serde_json::from_str::<Value>(body).expect("JSON document"));
        }
    }
    xray_testkit::all_segments(&docs).len()
}

fn find<'a>(docs: &'a [Value], what: &str, pred: impl Fn(&Value) -> bool) -> &'a Value {
    docs.iter()
        .find(|d| pred(d))
        .unwrap_or_else(|| panic!("no {what} among {docs:#?}"))
}

async fn create_table(endpoint: &str, table: &str) {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
        ScalarAttributeType,
    };
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create table");
    client
        .put_item()
        .table_name(table)
        .item("id", AttributeValue::S("k1".into()))
        .send()
        .await
        .expect("put item");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_across_services_and_dynamodb() {
    let moto = start_moto();
    create_table(&moto.url(), "orders").await;
    let udp = udp_listener();
    let backend = service(
        "backend",
        &udp,
        &[
            ("E2E_DYNAMODB_ENDPOINT", moto.url()),
            ("E2E_TABLE", "orders".into()),
        ],
    );
    let frontend = service("frontend", &udp, &[("E2E_DOWNSTREAM", backend.url())]);
    let http = reqwest::Client::new();

    let ok = http
        .get(format!("{}/work", frontend.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "{:?}", ok.text().await);
    let docs = documents(&udp, |d| d.len() >= 4);
    assert_eq!(docs.len(), 4, "{docs:#?}");

    let trace = docs[0]["trace_id"].as_str().unwrap();
    assert!(docs.iter().all(|d| d["trace_id"] == trace), "{docs:#?}");
    let front = find(&docs, "frontend segment", |d| d["name"] == "frontend");
    assert!(front.get("parent_id").is_none() && front.get("type").is_none());
    assert_eq!(front["http"]["request"]["method"], "GET");
    assert!(
        front["http"]["request"]["url"]
            .as_str()
            .unwrap()
            .ends_with("/work")
    );
    assert_eq!(front["http"]["response"]["status"], 200);

    let call = find(&docs, "HTTP subsegment", |d| d["namespace"] == "remote");
    assert_eq!(call["type"], "subsegment");
    assert_eq!(call["parent_id"], front["id"]);
    assert_eq!(call["name"], "127.0.0.1");
    assert_eq!(call["http"]["request"]["method"], "GET");
    assert_eq!(
        call["http"]["request"]["url"],
        format!("{}/work", backend.url())
    );
    assert_eq!(call["http"]["response"]["status"], 200);

    let back = find(&docs, "backend segment", |d| d["name"] == "backend");
    assert_eq!(
        back["parent_id"], call["id"],
        "the backend continues the call"
    );
    assert!(back.get("type").is_none());
    assert_eq!(back["http"]["response"]["status"], 200);

    let dynamo = find(&docs, "DynamoDB subsegment", |d| d["namespace"] == "aws");
    assert_eq!(dynamo["type"], "subsegment");
    assert_eq!(dynamo["parent_id"], back["id"]);
    assert_eq!(dynamo["name"], "DynamoDB");
    assert_eq!(dynamo["aws"]["operation"], "GetItem");
    assert_eq!(dynamo["aws"]["table_name"], "orders");
    assert_eq!(dynamo["aws"]["region"], "us-east-1");
    assert!(
        dynamo["aws"]["request_id"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    assert_eq!(dynamo["http"]["response"]["status"], 200);
    for d in [front, call, back, dynamo] {
        assert!(
            d.get("error").is_none() && d.get("fault").is_none(),
            "{d:#}"
        );
    }

    // A missing table: the AWS call is an error (4xx), which the services turn into a
    // 502 on both hops (faults).
    let bad = http
        .get(format!("{}/work?table=missing", frontend.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 502);
    let docs = documents(&udp, |d| d.len() >= 4);
    assert_eq!(docs.len(), 4, "{docs:#?}");
    let dynamo = find(&docs, "DynamoDB subsegment", |d| d["namespace"] == "aws");
    assert_eq!(dynamo["aws"]["table_name"], "missing");
    assert_eq!(dynamo["error"], true, "{dynamo:#}");
    assert_eq!(dynamo["http"]["response"]["status"], 400);
    assert_eq!(
        dynamo["cause"]["exceptions"][0]["remote"], true,
        "{dynamo:#}"
    );
    assert_eq!(
        dynamo["metadata"]["default"]["error.type"],
        "ResourceNotFoundException"
    );
    let back = find(&docs, "backend segment", |d| d["name"] == "backend");
    assert_eq!(
        (
            back["fault"].as_bool(),
            back["http"]["response"]["status"].as_u64()
        ),
        (Some(true), Some(502))
    );
    let call = find(&docs, "HTTP subsegment", |d| d["namespace"] == "remote");
    assert_eq!(call["fault"], true);
    let front = find(&docs, "frontend segment", |d| d["name"] == "frontend");
    assert_eq!(front["fault"], true);
    drop((frontend, backend, moto));
}

/// A Python service on aws-xray-sdk (`http.server`, threaded): `/start` calls
/// `RUST/call?url=PY/leaf` inside a `remote` subsegment whose header the SDK writes
/// (`inject_trace_header`: `Parent` is the subsegment); `/leaf` continues the incoming
/// header with the SDK's parser. Segments go to the UDP listener.
const PYTHON_PEER: &str = r#"
import sys, urllib.parse, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from aws_xray_sdk.core import xray_recorder
from aws_xray_sdk.core.models.trace_header import TraceHeader
from aws_xray_sdk.ext.util import inject_trace_header

port, udp, rust = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
xray_recorder.configure(service="python-peer", daemon_address="127.0.0.1:%d" % udp,
                        sampling=False, context_missing="LOG_ERROR")

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        raw = self.headers.get("X-Amzn-Trace-Id")
        h = TraceHeader.from_header_str(raw) if raw else None
        seg = xray_recorder.begin_segment(
            name="python-peer",
            traceid=h.root if h else None,
            parent_id=h.parent if h else None,
            sampling=1,
        )
        seg.put_http_meta("method", "GET")
        seg.put_http_meta("url", "http://127.0.0.1:%d%s" % (port, self.path))
        status, body = 200, b"leaf"
        if self.path.startswith("/start"):
            leaf = urllib.parse.quote("http://127.0.0.1:%d/leaf" % port, safe="")
            url = "http://127.0.0.1:%d/call?url=%s" % (rust, leaf)
            with xray_recorder.in_subsegment("rust-peer") as sub:
                sub.namespace = "remote"
                sub.put_http_meta("method", "GET")
                sub.put_http_meta("url", url)
                headers = {}
                inject_trace_header(headers, sub)
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
                    body = r.read()
                    sub.put_http_meta("status", r.status)
        seg.put_http_meta("status", status)
        xray_recorder.end_segment()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_aws_xray_sdk_peer_both_directions() {
    require_python(&["aws_xray_sdk.core"]);
    let udp = udp_listener();
    let ours = service("rust-peer", &udp, &[]);
    let py_port = free_port();
    let mut cmd = Command::new(python());
    cmd.args([
        "-c",
        PYTHON_PEER,
        &py_port.to_string(),
        &udp.local_addr().unwrap().port().to_string(),
        &ours.port.to_string(),
    ]);
    let peer = Server::start(cmd, py_port, Duration::from_secs(20));

    let r = reqwest::get(format!("{}/start", peer.url())).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "leaf");
    // Python: /start (with its remote call embedded) and /leaf segments; ours: a segment
    // and the client subsegment.
    let docs = documents(&udp, |d| d.len() >= 5);
    assert_eq!(docs.len(), 5, "{docs:#?}");
    let trace = docs[0]["trace_id"].as_str().unwrap();
    assert!(docs.iter().all(|d| d["trace_id"] == trace), "{docs:#?}");

    let url = |d: &Value| {
        d["http"]["request"]["url"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    let start = find(&docs, "Python /start segment", |d| {
        d["name"] == "python-peer" && url(d).ends_with("/start")
    });
    assert!(start.get("parent_id").is_none());
    let py_call = start["subsegments"]
        .as_array()
        .and_then(|subs| subs.iter().find(|s| s["namespace"] == "remote"))
        .unwrap_or_else(|| panic!("no remote subsegment in {start:#}"));
    assert!(
        py_call["http"]["request"]["url"]
            .as_str()
            .unwrap()
            .contains("/call")
    );

    // Python -> Rust: our segment continues Python's HTTP subsegment.
    let our_seg = find(&docs, "our segment", |d| {
        d["name"] == "rust-peer" && d.get("type").is_none()
    });
    assert_eq!(our_seg["parent_id"], py_call["id"], "{our_seg:#}");
    assert_eq!(our_seg["http"]["response"]["status"], 200);

    // Rust -> Python: the leaf segment continues our client subsegment.
    let our_call = find(&docs, "our client subsegment", |d| {
        d["type"] == "subsegment" && d["parent_id"] != start["id"]
    });
    assert_eq!(our_call["parent_id"], our_seg["id"]);
    assert_eq!(our_call["namespace"], "remote");
    let leaf = find(&docs, "Python /leaf segment", |d| {
        d["name"] == "python-peer" && url(d).ends_with("/leaf")
    });
    assert_eq!(leaf["parent_id"], our_call["id"], "{leaf:#}");
    drop((peer, ours));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_disabled_is_a_no_op() {
    let ask = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?";
    let http = reqwest::Client::new();
    for enabled in [true, false] {
        let udp = udp_listener();
        let env = [("AWS_XRAY_SDK_ENABLED", enabled.to_string())];
        let svc = service("maybe", &udp, &env);
        let r = http
            .get(format!("{}/call?url={}/health", svc.url(), svc.url()))
            .header("X-Amzn-Trace-Id", ask)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let answered = r.headers().get("x-amzn-trace-id").cloned();
        let sent = silence(&udp, Duration::from_millis(1500));
        if enabled {
            assert_eq!(
                answered.unwrap().to_str().unwrap(),
                "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
            );
            assert_eq!(sent, 3, "segment, client subsegment, segment of /health");
        } else {
            // The decision asked for is answered: not sampled.
            assert_eq!(
                answered.unwrap().to_str().unwrap(),
                "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0"
            );
            assert_eq!(sent, 0, "nothing is sent when disabled");
        }
    }
}
