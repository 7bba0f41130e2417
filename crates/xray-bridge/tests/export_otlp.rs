//! `--export otlp`: OTLP input goes to the X-Ray OTLP endpoint as OTLP (signed, gzip,
//! invalid spans taken out), and daemon documents too, converted to OTLP spans; on a stub
//! of our own.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Uri};
use common::{Bridge, Options, otlp_span};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::Message;

type Seen = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

#[test]
fn otlp_and_daemon_documents_go_out_as_otlp() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let seen: Seen = Arc::default();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let upstream = format!("http://{}", listener.local_addr().unwrap());
    let log = seen.clone();
    let app = Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let log = log.clone();
        async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            log.lock()
                .unwrap()
                .push((uri.path().to_owned(), auth, body.to_vec()));
            if uri.path() == "/v1/traces" {
                ([("content-type", "application/x-protobuf")], Vec::new())
            } else {
                (
                    [("content-type", "application/json")],
                    br#"{"UnprocessedTraceSegments":[]}"#.to_vec(),
                )
            }
        }
    });
    rt.spawn(async move { axum::serve(listener, app).await });

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

    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|(p, _, _)| p == "/v1/traces"),
        "only OTLP requests"
    );
    let mut names = Vec::new();
    for (_, auth, body) in &seen {
        assert!(auth.contains("/us-east-1/xray/aws4_request"), "{auth}");
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
