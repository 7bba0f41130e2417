//! The translation settings of the binary (fixed interface): `--indexed-attributes a,b`,
//! `--index-all-attributes`, `--log-group-names a,b`, `--metadata-exclude 'glob,glob'`,
//! the same keys in the TOML config and the `XRAY_BRIDGE_*` variables, their effect seen
//! with `--export file:PATH`; ADOT's T1S datagrams get them too (translated rather than
//! forwarded with `--export api`); daemon documents pass through untouched.

mod common;

use std::time::Duration;

use common::xray_stub::XrayStub;
use common::{Bridge, Options, Scratch, otlp_request, otlp_span, read_lines};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::Event;
use serde_json::{Value, json};

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// A daemon document, sent as it is: it must come out byte for byte.
const DAEMON_DOC: &str = r#"{"name":"daemon-doc","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.0,"end_time":2.0,"metadata":{"default":{"user.name":"kept"}}}"#;

/// Sends one OTLP/HTTP request (a server span with personal data and a local-root
/// client span) and one daemon datagram; waits for the three documents to be written.
fn send(bridge: &mut Bridge) {
    let mut server = otlp_span(1, 1, "GET /orders");
    server.attributes = vec![
        kv("customer.tier", "gold"),
        kv("order.id", "o-7"),
        kv("user.name", "Ada"),
        kv("contact.email", "ada@example.com"),
        kv("cart.note", "fragile"),
    ];
    server.events = vec![Event {
        name: "login".into(),
        time_unix_nano: server.start_time_unix_nano + 1,
        attributes: vec![kv("user.id", "u-42"), kv("ok", "yes")],
        ..Default::default()
    }];
    let mut job = otlp_span(2, 2, "GET");
    job.kind = 3; // Client, no parent: a cron job calling out
    job.attributes = vec![kv("server.address", "inventory.internal")];
    let mut request = otlp_request("checkout", vec![server, job]);
    request.resource_spans[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes
        .push(kv("user.home", "/home/ada"));
    let (status, _) = bridge.post_otlp(&request);
    assert_eq!(status, 200, "{}", bridge.logs());
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(
            format!("{}{DAEMON_DOC}", xray_model::DAEMON_HEADER).as_bytes(),
            ("127.0.0.1", bridge.udp),
        )
        .unwrap();
    bridge.wait_metrics(Duration::from_secs(15), |t| {
        Bridge::metric(t, "xray_bridge_export_spans_sent_total{export=\"file\"}") >= 3
    });
    assert_eq!(bridge.stop(Duration::from_secs(20)), 0, "{}", bridge.logs());
}

/// The documents written, by name; every one schema-valid.
fn documents(out: &std::path::Path) -> (Vec<String>, Vec<Value>) {
    let lines = read_lines(out);
    let docs = lines
        .iter()
        .map(|l| {
            xray_testkit::assert_schema_valid(l);
            serde_json::from_str(l).unwrap()
        })
        .collect();
    (lines, docs)
}

/// What every way of giving the settings must produce.
fn check(out: &std::path::Path, index_all: bool) {
    let (lines, docs) = documents(out);
    assert_eq!(docs.len(), 3, "{docs:#?}");
    // Daemon documents pass through untouched, excluded keys and all.
    assert!(lines.iter().any(|l| l == DAEMON_DOC), "{lines:#?}");
    let server = docs
        .iter()
        .find(|d| d["name"] == "checkout" && d["id"] == "0101010101010101")
        .expect("the server segment");
    let annotations = if index_all {
        json!({"customer_tier": "gold", "order_id": "o-7", "cart_note": "fragile"})
    } else {
        json!({"customer_tier": "gold", "order_id": "o-7"})
    };
    assert_eq!(server["annotations"], annotations, "{server}");
    if !index_all {
        assert_eq!(
            server["metadata"]["default"],
            json!({"cart.note": "fragile"})
        );
    }
    assert_eq!(
        server["aws"]["cloudwatch_logs"],
        json!([{"log_group": "/ecs/a"}, {"log_group": "/ecs/b"}])
    );
    assert_eq!(
        server["metadata"]["otel"]["events"][0]["attributes"],
        json!({"ok": "yes"})
    );
    assert_eq!(
        server["metadata"]["otel.resource"],
        json!({"service.name": "checkout"})
    );
    // The local-root client span: a service segment holding the call.
    let job = docs
        .iter()
        .find(|d| d["trace_id"] != server["trace_id"] && d["name"] == "checkout")
        .expect("the job's service segment");
    assert_eq!(job["subsegments"][0]["name"], "inventory.internal");
    assert_eq!(job["subsegments"][0]["namespace"], "remote");
    // Nothing personal left the bridge.
    let text = lines
        .iter()
        .filter(|l| *l != DAEMON_DOC)
        .cloned()
        .collect::<String>();
    for secret in ["Ada", "ada@example.com", "u-42", "/home/ada"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[test]
fn flags_set_the_translation() {
    let scratch = Scratch::new("settings-flags");
    let out = scratch.path("docs.jsonl");
    let mut bridge = Bridge::start(Options {
        args: vec![
            "--indexed-attributes",
            "customer.tier,order.id",
            "--log-group-names",
            "/ecs/a,/ecs/b",
            "--metadata-exclude",
            "user.*,*.email",
        ],
        ..Options::export(format!("file:{}", out.display()))
    });
    send(&mut bridge);
    check(&out, false);
}

#[test]
fn toml_keys_and_variables_set_the_translation() {
    let scratch = Scratch::new("settings-toml");
    let out = scratch.path("docs.jsonl");
    let config = scratch.path("bridge.toml");
    std::fs::write(
        &config,
        "indexed-attributes = [\"customer.tier\", \"order.id\"]\nlog-group-names = \"/ecs/a,/ecs/b\"\nmetadata-exclude = [\"user.*\", \"*.email\"]\nindex-all-attributes = false\n",
    )
    .unwrap();
    let config = config.display().to_string();
    // The variable wins over the file.
    let mut bridge = Bridge::start(Options {
        args: vec!["-c", &config],
        env: vec![("XRAY_BRIDGE_INDEX_ALL_ATTRIBUTES", "true".into())],
        ..Options::export(format!("file:{}", out.display()))
    });
    send(&mut bridge);
    check(&out, true);

    // The flag form of the boolean, and every setting from variables alone.
    let out = scratch.path("docs-env.jsonl");
    let mut bridge = Bridge::start(Options {
        args: vec!["--index-all-attributes"],
        env: vec![
            (
                "XRAY_BRIDGE_INDEXED_ATTRIBUTES",
                "customer.tier,order.id".into(),
            ),
            ("XRAY_BRIDGE_LOG_GROUP_NAMES", "/ecs/a,/ecs/b".into()),
            ("XRAY_BRIDGE_METADATA_EXCLUDE", "user.*,*.email".into()),
        ],
        ..Options::export(format!("file:{}", out.display()))
    });
    send(&mut bridge);
    check(&out, true);
}

#[test]
fn a_malformed_pattern_stops_the_start_with_exit_code_2() {
    for args in [
        vec!["--metadata-exclude", "user.["],
        vec!["--check-config", "--metadata-exclude", "a,{b"],
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_xray-bridge"))
            .args(&args)
            .env_remove("XRAY_BRIDGE_METADATA_EXCLUDE")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(err.contains("metadata-exclude"), "{err}");
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_xray-bridge"))
        .args([
            "--check-config",
            "--indexed-attributes",
            "a, b",
            "--metadata-exclude",
            "user.*",
            "--index-all-attributes",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("indexed-attributes = [\"a\", \"b\"]"),
        "{text}"
    );
    assert!(text.contains("index-all-attributes = true"), "{text}");
    assert!(text.contains("metadata-exclude = [\"user.*\"]"), "{text}");
    assert!(text.contains("log-group-names = []"), "{text}");
}

/// ADOT's Python exporter: one server span with personal data, sent as `T1S`.
const PY_ADOT: &str = r#"
import sys
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator
from amazon.opentelemetry.distro.otlp_udp_exporter import OTLPUdpSpanExporter

provider = TracerProvider(
    id_generator=AwsXRayIdGenerator(),
    resource=Resource.create({"service.name": "adot-py"}),
)
provider.add_span_processor(BatchSpanProcessor(OTLPUdpSpanExporter(endpoint="127.0.0.1:" + sys.argv[1])))
tracer = provider.get_tracer("adot-test")
with tracer.start_as_current_span("GET /orders", kind=trace.SpanKind.SERVER) as root:
    root.set_attribute("customer.tier", "gold")
    root.set_attribute("user.name", "Ada")
provider.shutdown()
"#;

#[test]
fn adot_t1s_datagrams_get_the_settings_even_with_the_api_export() {
    xray_testkit::require_python(&["amazon.opentelemetry.distro.otlp_udp_exporter"]);
    let stub = XrayStub::start(Duration::ZERO);
    let mut bridge = Bridge::start(Options {
        args: vec![
            "--region",
            "us-east-1",
            "--indexed-attributes",
            "customer.tier",
            "--metadata-exclude",
            "user.*",
        ],
        env: vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("XRAY_BRIDGE_ENDPOINT_URL", stub.url.clone()),
        ],
        ..Options::export("api")
    });
    xray_testkit::run_python(PY_ADOT, &[&bridge.udp.to_string()], "");
    let received = stub.wait_for_documents(1, Duration::from_secs(15));
    assert_eq!(bridge.stop(Duration::from_secs(20)), 0, "{}", bridge.logs());
    assert_eq!(received.len(), 1, "{received:?}");
    // A translated document, not the T1S body.
    xray_testkit::assert_schema_valid(&received[0]);
    let doc: Value = serde_json::from_str(&received[0]).unwrap();
    assert_eq!(doc["name"], "adot-py");
    assert_eq!(doc["annotations"], json!({"customer_tier": "gold"}));
    assert!(!received[0].contains("Ada"), "{}", received[0]);
}
