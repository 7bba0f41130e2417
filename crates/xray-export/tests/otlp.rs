//! The X-Ray OTLP endpoint transport against a stub: SigV4 for `xray`, request limits,
//! retries, partial success.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use opentelemetry::trace::SpanKind;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use opentelemetry_sdk::trace::SpanExporter;
use prost::Message;
use xray_export::transport::otlp::{
    MAX_REQUEST_BYTES, MAX_SPANS_PER_REQUEST, OtlpConfig, OtlpSpans, OtlpTransport,
};
use xray_export::{DropReason, Metrics, Pipeline, PipelineConfig, RetryPolicy, XrayExporter};

use common::{Reply, Request, Stub, span, trace_id};

fn config(url: String) -> OtlpConfig {
    OtlpConfig {
        sdk_config: Some(
            SdkConfig::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-west-2"))
                .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                    "AKIDEXAMPLE",
                    "SECRET",
                    Some("TOKEN".into()),
                    None,
                    "test",
                )))
                .build()
                .into(),
        ),
        endpoint_url: Some(format!("{url}/v1/traces")),
        ..Default::default()
    }
}

fn retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        request_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

fn decode(request: &Request) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest::decode(request.body.as_slice()).expect("protobuf body")
}

fn span_ids(request: &ExportTraceServiceRequest) -> Vec<Vec<u8>> {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.span_id.clone())
        .collect()
}

fn ok() -> Reply {
    Reply::Respond(
        200,
        vec![("content-type".into(), "application/x-protobuf".into())],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

#[test]
fn requests_are_signed_for_xray_within_limits_and_retried() {
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let d = delivered.clone();
    let stub = Stub::start(move |n, req| {
        if n == 0 {
            return Reply::Respond(503, vec![], b"busy".to_vec());
        }
        d.lock().unwrap().extend(span_ids(&decode(req)));
        ok()
    });
    let metrics = Metrics::default();
    let pipeline = Pipeline::start_with_metrics(
        OtlpTransport::new(config(stub.url())),
        PipelineConfig {
            retry: retry(),
            ..Default::default()
        },
        metrics.clone(),
    )
    .unwrap();
    // 30 items of 500 spans: 15,000 spans, more than one request may carry.
    let mut next_id = 0u64;
    for item in 0..30u8 {
        let spans = (0..500)
            .map(|_| {
                next_id += 1;
                Span {
                    trace_id: vec![item + 1; 16],
                    span_id: next_id.to_be_bytes().to_vec(),
                    name: "work".into(),
                    ..Default::default()
                }
            })
            .collect();
        let rs = ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(pipeline.submit(OtlpSpans::from_resource_spans(&rs)));
    }
    pipeline.flush(Duration::from_secs(20)).unwrap();

    let requests = stub.requests();
    assert!(requests.len() >= 3, "a retry and at least two requests");
    for r in &requests {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/v1/traces"));
        assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
        let auth = r.header("authorization").unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{auth}"
        );
        assert!(auth.contains("/us-west-2/xray/aws4_request"), "{auth}");
        assert!(r.header("x-amz-date").is_some());
        assert_eq!(r.header("x-amz-security-token"), Some("TOKEN"));
        assert!(r.body.len() <= MAX_REQUEST_BYTES);
        assert!(span_ids(&decode(r)).len() <= MAX_SPANS_PER_REQUEST);
    }
    let delivered = delivered.lock().unwrap();
    let unique: HashSet<&Vec<u8>> = delivered.iter().collect();
    assert_eq!(
        (delivered.len(), unique.len()),
        (15_000, 15_000),
        "each span exactly once"
    );
    let m = metrics.snapshot();
    assert_eq!((m.spans_sent, m.documents_sent, m.retries), (15_000, 30, 1));
    assert_eq!(m.dropped_total(), 0);
}

#[test]
fn the_exporter_sends_sdk_spans_and_counts_partial_rejections() {
    let stub = Stub::start(|_, req| {
        assert!(!span_ids(&decode(req)).is_empty());
        Reply::Respond(
            200,
            vec![],
            ExportTraceServiceResponse {
                partial_success: Some(ExportTracePartialSuccess {
                    rejected_spans: 2,
                    error_message: "2 spans too old".into(),
                }),
            }
            .encode_to_vec(),
        )
    });
    let exporter = XrayExporter::builder()
        .with_otlp_endpoint(config(stub.url()))
        .with_retry(retry())
        .build()
        .unwrap();
    let t = trace_id(50);
    let batch: Vec<_> = (1..=10)
        .map(|i| span(t, i, if i == 1 { 0 } else { 1 }, SpanKind::Internal, "op"))
        .collect();
    let mut f = std::pin::pin!(exporter.export(batch));
    assert!(
        f.as_mut()
            .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
            .is_ready()
    );
    exporter.force_flush().unwrap();
    let requests = stub.requests();
    assert_eq!(requests.len(), 1);
    let body = decode(&requests[0]);
    assert_eq!(span_ids(&body).len(), 10);
    assert_eq!(
        body.resource_spans[0].scope_spans[0].spans[0].trace_id,
        t.to_be_bytes().to_vec()
    );
    let m = exporter.metrics().snapshot();
    assert_eq!((m.spans_in, m.spans_sent), (10, 10));
    assert_eq!(m.dropped_spans(DropReason::Rejected), 2);
    exporter.shutdown().unwrap();
}

#[test]
fn client_errors_drop_the_request_with_a_reason() {
    let stub = Stub::start(|_, _| Reply::Respond(403, vec![], b"denied".to_vec()));
    let metrics = Metrics::default();
    let pipeline = Pipeline::start_with_metrics(
        OtlpTransport::new(config(stub.url())),
        PipelineConfig {
            retry: retry(),
            ..Default::default()
        },
        metrics.clone(),
    )
    .unwrap();
    let rs = ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: vec![Span::default(); 3],
            ..Default::default()
        }],
        ..Default::default()
    };
    pipeline.submit(OtlpSpans::from_resource_spans(&rs));
    let err = pipeline.flush(Duration::from_secs(5)).unwrap_err();
    assert_eq!(err.dropped, "rejected=1");
    assert_eq!(metrics.snapshot().dropped_spans(DropReason::Rejected), 3);
    assert_eq!(stub.requests().len(), 1);
}

/// Any OTLP/HTTP backend: no signature for a host that is not AWS's (and no AWS
/// configuration needed), gzip bodies, the configured headers.
#[test]
fn other_backends_get_unsigned_gzip_requests_with_their_headers() {
    use std::io::Read as _;
    use xray_export::transport::otlp::{OtlpCompression, OtlpSigning};
    let stub = Stub::start(|_, _| Reply::Respond(200, vec![], Vec::new()));
    let metrics = Metrics::default();
    let pipeline = Pipeline::start_with_metrics(
        OtlpTransport::new(OtlpConfig {
            endpoint_url: Some(format!("{}/v1/traces", stub.url())),
            signing: OtlpSigning::Auto,
            compression: OtlpCompression::Gzip,
            headers: vec![("x-api-key".into(), "secret-key".into())],
            ..Default::default()
        }),
        PipelineConfig {
            retry: retry(),
            ..Default::default()
        },
        metrics.clone(),
    )
    .unwrap();
    let rs = ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: vec![Span {
                trace_id: vec![1; 16],
                span_id: vec![2; 8],
                name: "gzipped".into(),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    pipeline.submit(OtlpSpans::from_resource_spans(&rs));
    pipeline.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(metrics.snapshot().spans_sent, 1);
    let requests = stub.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/v1/traces");
    assert_eq!(request.header("authorization"), None);
    assert_eq!(request.header("x-api-key"), Some("secret-key"));
    assert_eq!(request.header("content-encoding"), Some("gzip"));
    let mut body = Vec::new();
    flate2::read::GzDecoder::new(request.body.as_slice())
        .read_to_end(&mut body)
        .unwrap();
    let decoded = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
    assert_eq!(decoded.resource_spans, vec![rs]);
    // The header value never shows in the configuration's debug text.
    let debug = format!(
        "{:?}",
        OtlpConfig {
            headers: vec![("x-api-key".into(), "secret-key".into())],
            ..Default::default()
        }
    );
    assert!(
        debug.contains("x-api-key") && !debug.contains("secret-key"),
        "{debug}"
    );
}

#[test]
fn otlp_spans_wait_in_the_spool_through_an_outage_and_a_restart() {
    let dir = std::env::temp_dir().join(format!("xray-export-otlp-spool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let (u, d) = (up.clone(), delivered.clone());
    let stub = Stub::start(move |_, req| {
        if !u.load(std::sync::atomic::Ordering::SeqCst) {
            return Reply::Respond(503, vec![], b"down".to_vec());
        }
        d.lock().unwrap().extend(span_ids(&decode(req)));
        ok()
    });
    let start = || {
        Pipeline::start(
            OtlpTransport::new(config(stub.url())),
            PipelineConfig {
                retry: RetryPolicy {
                    max_elapsed: Duration::from_millis(200),
                    ..retry()
                },
                spool: Some(xray_export::SpoolConfig::new(&dir)),
                ..Default::default()
            },
        )
        .unwrap()
    };
    let first = start();
    for item in 0..5u64 {
        let spans = (0..10u64)
            .map(|i| Span {
                trace_id: vec![7; 16],
                span_id: (item * 10 + i + 1).to_be_bytes().to_vec(),
                name: "work".into(),
                ..Default::default()
            })
            .collect();
        let rs = ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(first.submit(OtlpSpans::from_resource_spans(&rs)));
    }
    std::thread::sleep(Duration::from_millis(600));
    // Still down at shutdown: kept, not dropped.
    first.shutdown(Duration::from_millis(300)).unwrap();
    assert_eq!(first.snapshot().dropped_total(), 0);
    drop(first);
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    let second = start();
    second.flush(Duration::from_secs(10)).unwrap();
    let got: HashSet<Vec<u8>> = delivered.lock().unwrap().iter().cloned().collect();
    assert_eq!(got.len(), 50);
    assert_eq!(delivered.lock().unwrap().len(), 50, "each once");
    assert_eq!(second.spool_stats().unwrap().replayed, 5);
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}
