//! An axum service behind the tower layer, called through the reqwest middleware: one
//! trace across the hop, the server span's parent is the client span, HTTP attributes and
//! statuses are recorded, and `Sampled=?` requests get the decision back.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceContextExt, TraceId};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::Sampler;
use support::{Telemetry, attr};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use xray_model::carry::HopState;
use xray_model::{Sampled, TraceHeader};
use xray_propagation::client::XrayMiddleware;
use xray_propagation::server::XrayServerLayer;
use xray_propagation::{HEADER_FIELD, XrayPropagator, hop_state};

const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";

/// Echoes the trace headers it received, so tests can see what the client sent.
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

async fn serve(layer: XrayServerLayer) -> (String, tokio::task::JoinHandle<()>) {
    let app = Router::new()
        .route("/users/{id}", get(echo))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    (format!("http://{addr}"), server)
}

fn client(middleware: XrayMiddleware) -> reqwest_middleware::ClientWithMiddleware {
    let inner = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    reqwest_middleware::ClientBuilder::new(inner)
        .with(middleware)
        .build()
}

#[tokio::test]
async fn server_span_is_child_of_client_span_in_one_trace() {
    let telemetry = Telemetry::new(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
    let (base, server) = serve(XrayServerLayer::new()).await;
    let client = client(XrayMiddleware::new());

    let caller = tracing::info_span!("caller");
    let body = async {
        client
            .get(format!("{base}/users/42?x=1"))
            .header("user-agent", "xray-test/1.0")
            .header("x-forwarded-for", "203.0.113.7, 10.0.0.1")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
    .instrument(caller.clone())
    .await;
    let caller_id = caller.context().span().span_context().span_id();
    drop(caller);

    let server_span = telemetry.one(SpanKind::Server).await;
    let client_span = telemetry.one(SpanKind::Client).await;
    let trace_id = client_span.span_context.trace_id();
    assert_eq!(server_span.span_context.trace_id(), trace_id);
    assert_eq!(
        server_span.parent_span_id,
        client_span.span_context.span_id()
    );
    assert!(server_span.parent_span_is_remote);
    assert_eq!(client_span.parent_span_id, caller_id);
    assert!(server_span.span_context.is_sampled());

    // What went over the wire.
    let sent = TraceHeader::parse(body.split('|').next().unwrap()).unwrap();
    assert_eq!(sent.root.to_bytes(), trace_id.to_bytes());
    assert_eq!(
        sent.parent.unwrap().to_bytes(),
        client_span.span_context.span_id().to_bytes()
    );
    assert_eq!(sent.sampled, Sampled::Yes);
    assert_eq!(
        body.split('|').nth(1),
        Some(""),
        "no traceparent by default"
    );

    // Server attributes.
    assert_eq!(server_span.name, "GET /users/{id}");
    let s = |k| attr(&server_span, k);
    assert_eq!(s("http.request.method").as_deref(), Some("GET"));
    assert_eq!(s("http.route").as_deref(), Some("/users/{id}"));
    assert_eq!(s("url.path").as_deref(), Some("/users/42"));
    assert_eq!(s("url.query").as_deref(), Some("x=1"));
    assert_eq!(s("url.full"), Some(format!("{base}/users/42?x=1")));
    assert_eq!(s("server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(s("user_agent.original").as_deref(), Some("xray-test/1.0"));
    assert_eq!(s("client.address").as_deref(), Some("203.0.113.7"));
    assert_eq!(s("network.peer.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(s("http.response.status_code").as_deref(), Some("200"));
    assert_eq!(server_span.status, Status::Unset);

    // Client attributes.
    let c = |k| attr(&client_span, k);
    assert_eq!(client_span.name, "GET");
    assert_eq!(c("http.request.method").as_deref(), Some("GET"));
    assert_eq!(c("url.full"), Some(format!("{base}/users/42?x=1")));
    assert_eq!(c("server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(c("http.response.status_code").as_deref(), Some("200"));
    server.abort();
}

#[tokio::test]
async fn errors_are_marked_on_both_sides() {
    let telemetry = Telemetry::new(Sampler::AlwaysOn);
    let (base, server) = serve(XrayServerLayer::new()).await;
    let client = client(XrayMiddleware::new());

    let r = client.get(format!("{base}/fail")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    let server_span = telemetry.one(SpanKind::Server).await;
    let client_span = telemetry.one(SpanKind::Client).await;
    assert!(matches!(server_span.status, Status::Error { .. }));
    assert!(matches!(client_span.status, Status::Error { .. }));
    assert_eq!(
        attr(&server_span, "http.response.status_code").as_deref(),
        Some("500")
    );
    assert_eq!(attr(&server_span, "error.type").as_deref(), Some("500"));
    telemetry.exporter.reset();

    // 4xx: an error for the client, not for the server (HTTP semantic conventions).
    let r = client.get(format!("{base}/missing")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let server_span = telemetry.one(SpanKind::Server).await;
    let client_span = telemetry.one(SpanKind::Client).await;
    assert_eq!(server_span.status, Status::Unset);
    assert!(matches!(client_span.status, Status::Error { .. }));
    assert_eq!(
        attr(&server_span, "http.response.status_code").as_deref(),
        Some("404")
    );
    telemetry.exporter.reset();

    // A connection that fails: the client span says so.
    let closed = format!("http://127.0.0.1:{}/", xray_testkit::free_port());
    assert!(client.get(closed).send().await.is_err());
    let client_span = telemetry.one(SpanKind::Client).await;
    assert!(matches!(client_span.status, Status::Error { .. }));
    assert_eq!(attr(&client_span, "error.type").as_deref(), Some("connect"));
    server.abort();
}

async fn ask_for_decision(sampler: Sampler) -> (Option<String>, Telemetry) {
    let telemetry = Telemetry::new(sampler);
    let (base, server) = serve(XrayServerLayer::new()).await;
    let r = reqwest::Client::new()
        .get(format!("{base}/users/1"))
        .header(
            HEADER_FIELD,
            format!("Root={ROOT}; Sampled=?; Lineage=a87bd80c:0"),
        )
        .send()
        .await
        .unwrap();
    let answer = r
        .headers()
        .get(HEADER_FIELD)
        .map(|v| v.to_str().unwrap().to_owned());
    server.abort();
    (answer, telemetry)
}

#[tokio::test]
async fn sampled_question_gets_the_decision_back() {
    let (answer, telemetry) = ask_for_decision(Sampler::AlwaysOn).await;
    assert_eq!(answer, Some(format!("Root={ROOT};Sampled=1")));
    let server_span = telemetry.one(SpanKind::Server).await;
    // The trace continues from the Root-only header with the stand-in parent and its flags.
    let root: xray_model::TraceId = ROOT.parse().unwrap();
    assert_eq!(
        server_span.span_context.trace_id(),
        TraceId::from_bytes(root.to_bytes())
    );
    assert_eq!(
        server_span.parent_span_id,
        SpanId::from_bytes(HopState::stand_in_parent(root).to_bytes())
    );
    let hop = hop_state(&server_span.span_context).unwrap();
    assert!(hop.no_parent);
    assert_eq!(hop.fields, vec![("Lineage".into(), "a87bd80c:0".into())]);

    let (answer, _telemetry) = ask_for_decision(Sampler::AlwaysOff).await;
    assert_eq!(answer, Some(format!("Root={ROOT};Sampled=0")));
}

#[tokio::test]
async fn no_question_no_answer_header() {
    let _telemetry = Telemetry::new(Sampler::AlwaysOn);
    let (base, server) = serve(XrayServerLayer::new()).await;
    let r = reqwest::Client::new()
        .get(format!("{base}/users/1"))
        .header(
            HEADER_FIELD,
            format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1"),
        )
        .send()
        .await
        .unwrap();
    assert!(r.headers().get(HEADER_FIELD).is_none());
    server.abort();
}

fn composite() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(XrayPropagator::new()),
    ])
}

#[tokio::test]
async fn composite_propagator_sends_and_reads_traceparent_too() {
    let telemetry = Telemetry::new(Sampler::AlwaysOn);
    let (base, server) = serve(XrayServerLayer::new().with_propagator(composite())).await;
    let client = client(XrayMiddleware::new().with_propagator(composite()));
    let body = client
        .get(format!("{base}/users/7"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let client_span = telemetry.one(SpanKind::Client).await;
    let server_span = telemetry.one(SpanKind::Server).await;
    let sc = &client_span.span_context;
    assert_eq!(
        body.split('|').nth(1),
        Some(format!("00-{}-{}-01", sc.trace_id(), sc.span_id()).as_str())
    );
    assert!(body.split('|').next().unwrap().starts_with("Root=1-"));
    assert_eq!(server_span.parent_span_id, sc.span_id());
    assert_eq!(server_span.span_context.trace_id(), sc.trace_id());

    // A W3C-only caller is continued by the composite server layer.
    telemetry.exporter.reset();
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01";
    reqwest::Client::new()
        .get(format!("{base}/users/8"))
        .header("traceparent", traceparent)
        .send()
        .await
        .unwrap();
    let server_span = telemetry.one(SpanKind::Server).await;
    assert_eq!(
        server_span.span_context.trace_id(),
        TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap()
    );
    assert_eq!(
        server_span.parent_span_id,
        SpanId::from_hex("00f067aa0ba902b7").unwrap()
    );
    server.abort();
}
