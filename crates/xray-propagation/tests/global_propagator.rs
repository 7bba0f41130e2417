//! With no propagator given, the server layer and the client middleware use OpenTelemetry's
//! global propagator, so what the application installed (or `OTEL_PROPAGATORS` through
//! tracing-xray) applies without extra wiring; the AWS SDK interceptor adds X-Amzn-Trace-Id,
//! which AWS services need. Its own process: it sets global state.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::Sampler;
use support::Telemetry;
use xray_propagation::HEADER_FIELD;
use xray_propagation::aws_sdk::XrayInterceptor;
use xray_propagation::client::XrayMiddleware;
use xray_propagation::server::XrayServerLayer;

async fn echo(headers: HeaderMap) -> String {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    format!("{}|{}", get(HEADER_FIELD), get("traceparent"))
}

/// Serves one route and returns what each request's trace headers were.
async fn echo_server() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = Router::new()
        .route("/echo", get(echo))
        .fallback(move |headers: HeaderMap| {
            let record = record.clone();
            async move {
                let sent = echo(headers).await;
                record.lock().unwrap().push(sent);
                (
                    [("content-type", "application/x-amz-json-1.0")],
                    "{\"TableNames\":[]}",
                )
            }
        })
        .layer(XrayServerLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app).await.unwrap();
    });
    (addr, seen)
}

#[tokio::test]
async fn defaults_follow_the_global_propagator() {
    let telemetry = Telemetry::new(Sampler::AlwaysOn);
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let (addr, seen) = echo_server().await;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(XrayMiddleware::new())
        .build();
    let body = client
        .get(format!("http://{addr}/echo"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let client_span = telemetry.one(SpanKind::Client).await;
    let server_span = telemetry.one(SpanKind::Server).await;
    let sc = &client_span.span_context;
    // W3C only, as installed: no X-Amzn-Trace-Id was written.
    assert_eq!(body, format!("|00-{}-{}-01", sc.trace_id(), sc.span_id()));
    // The server layer read it with the same global propagator.
    assert_eq!(server_span.span_context.trace_id(), sc.trace_id());
    assert_eq!(server_span.parent_span_id, sc.span_id());

    // The AWS SDK interceptor writes the global propagator's headers and, because AWS
    // services read no other, X-Amzn-Trace-Id as well.
    telemetry.exporter.reset();
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .endpoint_url(format!("http://{addr}"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .interceptor(XrayInterceptor::new())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
        .list_tables()
        .send()
        .await
        .unwrap();
    let call = telemetry.one(SpanKind::Client).await;
    let sc = &call.span_context;
    let sent = seen.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (xray, w3c) = sent[0].split_once('|').unwrap();
    assert_eq!(w3c, format!("00-{}-{}-01", sc.trace_id(), sc.span_id()));
    assert!(
        xray.contains(&format!("Parent={}", sc.span_id())),
        "X-Amzn-Trace-Id names the call: {xray}"
    );
}
