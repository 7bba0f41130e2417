//! `--export otlp`: OTLP input goes to the X-Ray OTLP endpoint as OTLP (signed, gzip,
//! invalid spans taken out), and daemon documents too, converted to OTLP spans; on a stub
//! of our own.

mod common;

use std::time::Duration;

use common::{Bridge, Options, otlp_span};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;
use xray_testkit::stub::{Reply, Stub};

#[test]
fn otlp_and_daemon_documents_go_out_as_otlp() {
    let stub = Stub::start(|_, request| {
        if request.path == "/v1/traces" {
            Reply::Respond(
                200,
                vec![("content-type".into(), "application/x-protobuf".into())],
                Vec::new(),
            )
        } else {
            Reply::json(200, r#"{"UnprocessedTraceSegments":[]}"#)
        }
    });
    let upstream = stub.url();

    let mut bridge = Bridge::start(Options {
        args: vec!["--region", "us-east-1", "--endpoint-url", &upstream],
        env: vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ],
        ..Options::export("otlp")
    });
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![
                    otlp_span(1, 1, "kept-1"),
                    otlp_span(0, 2, "no-trace"),
                    otlp_span(1, 3, "kept-2"),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let (status, _) = bridge.post_otlp(&request);
    assert_eq!(status, 200);
    let doc = r#"{"name":"daemon-doc","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.0,"end_time":2.0}"#;
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(
            format!("{}{doc}", xray_model::DAEMON_HEADER).as_bytes(),
            ("127.0.0.1", bridge.udp),
        )
        .unwrap();
    bridge.wait_metrics(Duration::from_secs(15), |t| {
        Bridge::metric(t, "xray_bridge_export_spans_sent_total{export=\"otlp\"}") == 3
    });
    assert_eq!(bridge.stop(Duration::from_secs(20)), 0, "{}", bridge.logs());

    let seen = stub.requests();
    assert!(
        seen.iter().all(|r| r.path == "/v1/traces"),
        "only OTLP requests"
    );
    let mut names = Vec::new();
    for request in &seen {
        let auth = request.header("authorization").unwrap_or("");
        assert!(auth.contains("/us-east-1/xray/aws4_request"), "{auth}");
        let body = &request.body;
        let mut plain = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(body.as_slice()),
            &mut plain,
        )
        .expect("gzip body");
        let forwarded = ExportTraceServiceRequest::decode(plain.as_slice()).unwrap();
        names.extend(
            forwarded
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .map(|s| s.name.clone()),
        );
    }
    names.sort();
    assert_eq!(names, ["daemon-doc", "kept-1", "kept-2"]);
}
