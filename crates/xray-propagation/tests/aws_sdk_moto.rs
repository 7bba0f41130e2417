//! AWS SDK calls through the interceptor: against moto's DynamoDB (real SDK, real
//! protocol) and against a small stub that fails on purpose (retries, throttles).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::{ConfigBag, Credentials, Intercept, Region, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use axum::http::{HeaderMap, StatusCode};
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::trace::{Sampler, SpanData};
use support::{Telemetry, attr};
use tracing::Instrument;
use xray_model::{Sampled, TraceHeader};
use xray_propagation::HEADER_FIELD;
use xray_propagation::aws_sdk::XrayInterceptor;

/// Records the trace header of every request as it leaves (after our interceptor).
#[derive(Debug, Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

impl Intercept for Capture {
    fn name(&self) -> &'static str {
        "Capture"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let header = context.request().headers().get(HEADER_FIELD);
        self.0
            .lock()
            .unwrap()
            .push(header.unwrap_or("<none>").to_owned());
        Ok(())
    }
}

fn client(endpoint: &str, capture: &Capture) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(5))
                .with_max_backoff(Duration::from_millis(20)),
        )
        .interceptor(XrayInterceptor::new())
        .interceptor(capture.clone())
        .build();
    Client::from_conf(config)
}

fn client_spans(telemetry: &Telemetry) -> Vec<SpanData> {
    telemetry
        .spans()
        .into_iter()
        .filter(|s| s.span_kind == SpanKind::Client)
        .collect()
}

fn by_name<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name} in {spans:#?}"))
}

/// The header `span` must have sent: its trace, itself as parent, its decision.
fn assert_header_names(header: &str, span: &SpanData) {
    let h = TraceHeader::parse(header).unwrap_or_else(|e| panic!("{header:?}: {e}"));
    assert_eq!(h.root.to_bytes(), span.span_context.trace_id().to_bytes());
    assert_eq!(
        h.parent.unwrap().to_bytes(),
        span.span_context.span_id().to_bytes()
    );
    assert_eq!(h.sampled, Sampled::Yes);
}

#[tokio::test]
async fn dynamodb_calls_on_moto_become_aws_client_spans_with_the_header_sent() {
    let moto = xray_testkit::start_moto();
    let telemetry = Telemetry::new(Sampler::AlwaysOn);
    let capture = Capture::default();
    let client = client(&moto.url(), &capture);

    let handler = tracing::info_span!("handler");
    async {
        client
            .create_table()
            .table_name("users")
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
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .unwrap();
        client
            .put_item()
            .table_name("users")
            .item("id", AttributeValue::S("42".into()))
            .send()
            .await
            .unwrap();
        let got = client
            .get_item()
            .table_name("users")
            .key("id", AttributeValue::S("42".into()))
            .send()
            .await
            .unwrap();
        assert!(got.item().is_some());
        let missing = client.describe_table().table_name("nope").send().await;
        assert!(missing.is_err());
    }
    .instrument(handler.clone())
    .await;
    drop(handler);

    let spans = client_spans(&telemetry);
    assert_eq!(spans.len(), 4, "{spans:#?}");
    let handler = telemetry
        .spans()
        .into_iter()
        .find(|s| s.name == "handler")
        .unwrap();
    for span in &spans {
        assert_eq!(
            span.span_context.trace_id(),
            handler.span_context.trace_id()
        );
        assert_eq!(attr(span, "rpc.system").as_deref(), Some("aws-api"));
        assert_eq!(attr(span, "rpc.service").as_deref(), Some("DynamoDB"));
        assert_eq!(attr(span, "aws.region").as_deref(), Some("us-east-1"));
        assert!(
            attr(span, "aws.request_id").is_some_and(|id| !id.is_empty()),
            "{span:#?}"
        );
        assert_eq!(attr(span, "server.address").as_deref(), Some("127.0.0.1"));
        assert_eq!(attr(span, "http.request.method").as_deref(), Some("POST"));
        assert_eq!(attr(span, "http.request.resend_count"), None);
    }
    let put = by_name(&spans, "DynamoDB.PutItem");
    assert_eq!(attr(put, "rpc.method").as_deref(), Some("PutItem"));
    assert_eq!(
        attr(put, "aws.dynamodb.table_names").as_deref(),
        Some("[\"users\"]")
    );
    assert_eq!(
        attr(put, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(put.status, Status::Unset);

    let missing = by_name(&spans, "DynamoDB.DescribeTable");
    assert!(matches!(missing.status, Status::Error { .. }));
    assert_eq!(
        attr(missing, "error.type").as_deref(),
        Some("ResourceNotFoundException")
    );
    assert_eq!(
        attr(missing, "http.response.status_code").as_deref(),
        Some("400")
    );

    // Every request carried the header naming its own span; moto accepted all of them.
    let sent = capture.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 4);
    let order = [
        "DynamoDB.CreateTable",
        "DynamoDB.PutItem",
        "DynamoDB.GetItem",
        "DynamoDB.DescribeTable",
    ];
    for (header, name) in sent.iter().zip(order) {
        assert_header_names(header, by_name(&spans, name));
    }
}

/// A DynamoDB stand-in: `ListTables` fails once with 500 then answers; `DescribeTable`
/// is always throttled. Returns its URL and every trace header it received.
async fn flaky_dynamodb() -> (String, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let calls = Arc::new(Mutex::new(0u32));
    let app = {
        let seen = seen.clone();
        axum::Router::new().fallback(move |headers: HeaderMap| {
            let seen = seen.clone();
            let calls = calls.clone();
            async move {
                let get = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                seen.lock().unwrap().push(get(HEADER_FIELD));
                let target = get("x-amz-target");
                let json = [("content-type", "application/x-amz-json-1.0")];
                if target.ends_with("ListTables") {
                    let n = {
                        let mut c = calls.lock().unwrap();
                        *c += 1;
                        *c
                    };
                    if n == 1 {
                        return (StatusCode::INTERNAL_SERVER_ERROR, json, "{\"__type\":\"InternalServerError\",\"message\":\"x\"}".to_owned());
                    }
                    return (StatusCode::OK, json, "{\"TableNames\":[\"a\"]}".to_owned());
                }
                (
                    StatusCode::BAD_REQUEST,
                    json,
                    "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ThrottlingException\",\"message\":\"slow down\"}".to_owned(),
                )
            }
        })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, seen, server)
}

#[tokio::test]
async fn retries_and_throttles_are_recorded_on_one_span() {
    let telemetry = Telemetry::new(Sampler::AlwaysOn);
    let (url, seen, server) = flaky_dynamodb().await;
    let capture = Capture::default();
    let client = client(&url, &capture);

    let tables = client.list_tables().send().await.unwrap();
    assert_eq!(tables.table_names(), ["a"]);
    let spans = client_spans(&telemetry);
    assert_eq!(spans.len(), 1, "one span for the call, not one per attempt");
    let list = &spans[0];
    assert_eq!(
        attr(list, "http.request.resend_count").as_deref(),
        Some("1")
    );
    assert_eq!(
        attr(list, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(list.status, Status::Unset);
    let headers = seen.lock().unwrap().clone();
    assert_eq!(headers.len(), 2);
    for h in &headers {
        assert_header_names(h, list);
    }
    telemetry.exporter.reset();
    seen.lock().unwrap().clear();

    let throttled = client
        .describe_table()
        .table_name("t")
        .send()
        .await
        .unwrap_err();
    assert!(format!("{throttled:?}").contains("ThrottlingException"));
    let spans = client_spans(&telemetry);
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert!(matches!(span.status, Status::Error { .. }));
    assert_eq!(
        attr(span, "error.type").as_deref(),
        Some("ThrottlingException")
    );
    assert_eq!(
        attr(span, "http.response.status_code").as_deref(),
        Some("400")
    );
    // One more attempt than resends, each with the header naming the one span.
    let headers = seen.lock().unwrap().clone();
    assert!(headers.len() >= 2, "the SDK retries throttles: {headers:?}");
    assert_eq!(
        attr(span, "http.request.resend_count"),
        Some((headers.len() - 1).to_string())
    );
    for h in &headers {
        assert_header_names(h, span);
    }
    assert_eq!(
        attr(span, "aws.dynamodb.table_names").as_deref(),
        Some("[\"t\"]")
    );
    server.abort();
}
