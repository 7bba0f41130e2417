//! OTLP through the real binary: the OpenTelemetry Python SDK's HTTP and gRPC exporters,
//! and malformed, oversize and oddly encoded requests next to good ones.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{Bridge, Options, Scratch, otlp_request, otlp_span, read_lines};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;

const PY_OTEL: &str = r#"
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

kind, endpoint, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if kind == "http":
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    exporter = OTLPSpanExporter(endpoint=endpoint + "/v1/traces", compression=Compression.Gzip)
else:
    from grpc import Compression
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True, compression=Compression.Gzip)
provider = TracerProvider(resource=Resource.create({"service.name": "py-" + kind}))
provider.add_span_processor(BatchSpanProcessor(exporter))
tracer = provider.get_tracer("bridge-test")
traces = []
for i in range(n):
    with tracer.start_as_current_span("GET /users/{id}", kind=trace.SpanKind.SERVER) as server:
        server.set_attribute("http.request.method", "GET")
        server.set_attribute("url.full", "https://example.com/users/%d" % i)
        server.set_attribute("http.response.status_code", 500 if i == 0 else 200)
        with tracer.start_as_current_span("SELECT shop.users", kind=trace.SpanKind.CLIENT) as client:
            client.set_attribute("db.system", "postgresql")
            client.set_attribute("db.name", "shop")
        traces.append(format(server.get_span_context().trace_id, "032x"))
assert provider.force_flush(10000)
provider.shutdown()
print(json.dumps(traces))
"#;

fn xray_trace_id(otel_hex: &str) -> String {
    format!("1-{}-{}", &otel_hex[..8], &otel_hex[8..])
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn python_sdk_http_and_grpc_exporters_reach_the_file_as_valid_documents() {
    xray_testkit::require_python(&[
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    ]);
    let scratch = Scratch::new("otlp-py");
    let out = scratch.path("docs.jsonl");
    let mut bridge = Bridge::start(Options::export(format!("file:{}", out.display())));
    let http = bridge.url(bridge.http, "");
    let grpc = bridge.url(bridge.grpc, "");
    let http_traces: Vec<String> =
        serde_json::from_str(xray_testkit::run_python(PY_OTEL, &["http", &http, "4"], "").trim())
            .unwrap();
    let grpc_traces: Vec<String> =
        serde_json::from_str(xray_testkit::run_python(PY_OTEL, &["grpc", &grpc, "3"], "").trim())
            .unwrap();
    let text = bridge.wait_metrics(Duration::from_secs(10), |t| {
        Bridge::metric(t, "xray_bridge_export_spans_sent_total{export=\"file\"}") == 14
    });
    for protocol in ["http", "grpc"] {
        let spans = if protocol == "http" { 8 } else { 6 };
        let sample = |name: &str| format!("{name}{{protocol=\"{protocol}\"}}");
        assert_eq!(
            Bridge::metric(&text, &sample("xray_bridge_otlp_spans_received_total")),
            spans
        );
        assert_eq!(
            Bridge::metric(&text, &sample("xray_bridge_otlp_spans_accepted_total")),
            spans
        );
    }
    assert_eq!(bridge.stop(Duration::from_secs(20)), 0, "{}", bridge.logs());

    let docs = read_lines(&out);
    let parsed: Vec<serde_json::Value> = docs
        .iter()
        .map(|d| {
            xray_testkit::assert_schema_valid(d);
            serde_json::from_str(d).unwrap()
        })
        .collect();
    // Every span once, whether its subsegment came nested in the segment's document or not.
    let parsed = xray_testkit::all_segments(&parsed);
    assert_eq!(parsed.len(), 14);
    for (service, traces) in [("py-http", &http_traces), ("py-grpc", &grpc_traces)] {
        for (i, t) in traces.iter().enumerate() {
            let id = xray_trace_id(t);
            let in_trace: Vec<&serde_json::Value> = parsed
                .iter()
                .filter(|d| d["trace_id"] == id.as_str())
                .collect();
            assert_eq!(in_trace.len(), 2, "trace {id}");
            let segment = in_trace
                .iter()
                .find(|d| d.get("type").is_none())
                .expect("server span is a segment");
            assert_eq!(segment["name"], service);
            assert_eq!(
                segment["fault"].as_bool().unwrap_or(false),
                i == 0,
                "HTTP 500 is a fault: {segment}"
            );
            let sub = in_trace
                .iter()
                .find(|d| d["type"] == "subsegment")
                .expect("client span is a subsegment");
            assert_eq!(sub["parent_id"], segment["id"]);
        }
    }
}

#[test]
fn a_requests_subsegments_travel_inside_their_segment() {
    let scratch = Scratch::new("otlp-nest");
    let out = scratch.path("docs.jsonl");
    let mut bridge = Bridge::start(Options::export(format!("file:{}", out.display())));
    let mut child = otlp_span(7, 2, "GET /items");
    (child.kind, child.parent_span_id) = (3, vec![1; 8]);
    let mut orphan = otlp_span(7, 3, "late child");
    (orphan.kind, orphan.parent_span_id) = (3, vec![9; 8]);
    let request = otlp_request("nest-svc", vec![child, orphan, otlp_span(7, 1, "GET /")]);
    let url = bridge.url(bridge.http, "/v1/traces");
    let status = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let r = reqwest::Client::new()
                .post(&url)
                .header("content-type", "application/x-protobuf")
                .body(request.encode_to_vec())
                .send()
                .await
                .unwrap();
            r.status()
        });
    assert_eq!(status, 200);
    let text = bridge.wait_metrics(Duration::from_secs(10), |t| {
        Bridge::metric(t, "xray_bridge_export_spans_sent_total{export=\"file\"}") == 3
    });
    assert_eq!(
        Bridge::metric(
            &text,
            "xray_bridge_export_items_sent_total{export=\"file\"}"
        ),
        2,
        "{text}"
    );
    assert_eq!(bridge.stop(Duration::from_secs(20)), 0, "{}", bridge.logs());
    let docs: Vec<serde_json::Value> = read_lines(&out)
        .iter()
        .map(|d| {
            xray_testkit::assert_schema_valid(d);
            serde_json::from_str(d).unwrap()
        })
        .collect();
    assert_eq!(docs.len(), 2);
    let orphan = docs
        .iter()
        .find(|d| d["type"] == "subsegment")
        .expect("standalone orphan");
    assert_eq!(orphan["parent_id"], "0909090909090909");
    let segment = docs
        .iter()
        .find(|d| d["name"] == "nest-svc")
        .expect("segment");
    let embedded = segment["subsegments"].as_array().expect("nested child");
    assert_eq!(embedded.len(), 1);
    assert_eq!(embedded[0]["id"], "0202020202020202");
    assert!(embedded[0].get("trace_id").is_none() && embedded[0].get("parent_id").is_none());
}

#[test]
fn bad_requests_get_otlp_errors_and_good_ones_next_to_them_are_delivered() {
    let scratch = Scratch::new("otlp-bad");
    let out = scratch.path("docs.jsonl");
    let mut bridge = Bridge::start(Options {
        args: vec!["--max-request-bytes", "65536"],
        ..Options::export(format!("file:{}", out.display()))
    });
    let url = bridge.url(bridge.http, "/v1/traces");
    let grpc_url = bridge.url(bridge.grpc, "");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let post = |body: Vec<u8>, ct: &'static str, enc: Option<&'static str>| {
            let mut r = client.post(&url).header("content-type", ct).body(body);
            if let Some(e) = enc {
                r = r.header("content-encoding", e);
            }
            r.send()
        };
        let proto = "application/x-protobuf";

        // Good protobuf, with one span that has no trace id.
        let good = otlp_request("proto-svc", vec![otlp_span(1, 1, "good-1"), otlp_span(0, 2, "no-trace")]);
        let r = post(good.encode_to_vec(), proto, None).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], proto);
        let answer = ExportTraceServiceResponse::decode(r.bytes().await.unwrap()).unwrap();
        let partial = answer.partial_success.expect("partial success");
        assert_eq!(partial.rejected_spans, 1);
        assert!(partial.error_message.contains("invalid_id"), "{}", partial.error_message);

        // Malformed protobuf.
        let r = post(vec![0x0a, 0xff, 0xff, 0xff, 0x01, 0x02], proto, None).await.unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.headers()["content-type"], proto);
        assert!(!r.bytes().await.unwrap().is_empty(), "a google.rpc.Status body");

        // Good gzip-compressed protobuf.
        let good = otlp_request("gzip-svc", vec![otlp_span(2, 1, "good-2")]);
        let r = post(gzip(&good.encode_to_vec()), proto, Some("gzip")).await.unwrap();
        assert_eq!(r.status(), 200);

        // Good OTLP/JSON (hex ids, string nanos), one span with a zero trace id.
        let json = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"json-svc"}}]},"scopeSpans":[{"scope":{"name":"t"},"spans":[
            {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"good-3","kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000500000000","attributes":[{"key":"http.request.method","value":{"stringValue":"GET"}}]},
            {"traceId":"00000000000000000000000000000000","spanId":"eee19b7ec3c1b175","name":"zero","kind":1,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000500000000"}]}]}]}"#;
        let r = post(json.as_bytes().to_vec(), "application/json", None).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        let answer: serde_json::Value = r.json().await.unwrap();
        assert_eq!(answer["partialSuccess"]["rejectedSpans"].as_i64(), Some(1), "{answer}");

        // Malformed JSON: an OTLP error in JSON.
        let r = post(b"{\"resourceSpans\": [".to_vec(), "application/json; charset=utf-8", None)
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let status: serde_json::Value = r.json().await.unwrap();
        assert_eq!(status["code"], 3);
        assert!(status["message"].as_str().unwrap().contains("OTLP/JSON"), "{status}");

        // Oversize body.
        let r = post(vec![0u8; 100_000], proto, None).await.unwrap();
        assert_eq!(r.status(), 413);
        // A gzip bomb: small on the wire, oversize once inflated.
        let r = post(gzip(&vec![0u8; 10_000_000]), proto, Some("gzip")).await.unwrap();
        assert_eq!(r.status(), 413);
        // Broken gzip, unknown encoding, unknown content type.
        let r = post(b"not gzip".to_vec(), proto, Some("gzip")).await.unwrap();
        assert_eq!(r.status(), 400);
        let r = post(good.encode_to_vec(), proto, Some("br")).await.unwrap();
        assert_eq!(r.status(), 415);
        let r = post(b"hello".to_vec(), "text/plain", None).await.unwrap();
        assert_eq!(r.status(), 415);
        // Only POST /v1/traces.
        assert_eq!(client.get(&url).send().await.unwrap().status(), 405);
        let other = url.replace("/v1/traces", "/v1/metrics");
        assert_eq!(client.post(&other).send().await.unwrap().status(), 404);

        // gRPC: a good request, then one over the message limit.
        let mut grpc = TraceServiceClient::connect(grpc_url).await.unwrap();
        let answer = grpc
            .export(otlp_request("grpc-svc", vec![otlp_span(3, 1, "good-4")]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.partial_success, None);
        let mut big = otlp_span(4, 1, "too-big");
        big.name = "x".repeat(100_000);
        let err = grpc
            .export(otlp_request("grpc-svc", vec![big]))
            .await
            .expect_err("over --max-request-bytes");
        assert!(
            matches!(err.code(), tonic::Code::OutOfRange | tonic::Code::ResourceExhausted),
            "{err:?}"
        );
    });

    let text = bridge.wait_metrics(Duration::from_secs(10), |t| {
        Bridge::metric(t, "xray_bridge_export_items_sent_total{export=\"file\"}") == 4
    });
    let rejected = |protocol: &str, reason: &str| {
        Bridge::metric(
            &text,
            &format!(
                "xray_bridge_otlp_requests_rejected_total{{protocol=\"{protocol}\",reason=\"{reason}\"}}"
            ),
        )
    };
    assert_eq!(rejected("http", "bad_protobuf"), 1);
    assert_eq!(rejected("http", "bad_json"), 1);
    assert_eq!(rejected("http", "too_large"), 2);
    assert_eq!(rejected("http", "bad_compression"), 1);
    assert_eq!(rejected("http", "unsupported_encoding"), 1);
    assert_eq!(rejected("http", "unsupported_content_type"), 1);
    assert_eq!(
        rejected("grpc", "out_of_range") + rejected("grpc", "resource_exhausted"),
        1
    );
    assert_eq!(
        Bridge::metric(
            &text,
            "xray_bridge_otlp_spans_rejected_total{protocol=\"http\",reason=\"invalid_id\"}"
        ),
        2
    );
    assert_eq!(bridge.stop(Duration::from_secs(20)), 0, "{}", bridge.logs());
    let docs = read_lines(&out);
    let mut names: Vec<String> = docs
        .iter()
        .map(|d| {
            xray_testkit::assert_schema_valid(d);
            let v: serde_json::Value = serde_json::from_str(d).unwrap();
            v["name"].as_str().unwrap().to_owned()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["grpc-svc", "gzip-svc", "json-svc", "proto-svc"]);
}
