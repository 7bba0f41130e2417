//! A traced axum service for the end-to-end tests, configured by the environment like any
//! service using `tracing-xray` (plus the `E2E_*` variables below).
//!
//! - `E2E_ADDR`: where to listen (`127.0.0.1:PORT`).
//! - `GET /work[?table=T]`: calls `E2E_DOWNSTREAM` + `/work[?table=T]` through the
//!   traced reqwest client when set, and DynamoDB `GetItem` on table `T` (default `E2E_TABLE`)
//!   at `E2E_DYNAMODB_ENDPOINT` through the instrumented AWS SDK when set; 200 when all
//!   went well, else 502.
//! - `GET /call?url=U`: calls `U` through the traced client; 200 or 502.
//! - `GET /health`: 200.
//!
//! Resource detection is off (the tests must not depend on the machine they run on);
//! everything else comes from the environment. SIGTERM stops it after a flush.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use reqwest_middleware::ClientWithMiddleware;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_xray::propagation::aws_sdk::XrayInterceptor;
use tracing_xray::propagation::client::XrayMiddleware;
use tracing_xray::propagation::server::XrayServerLayer;

struct App {
    http: ClientWithMiddleware,
    downstream: Option<String>,
    dynamodb: Option<aws_sdk_dynamodb::Client>,
    table: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let layer = tracing_xray::builder()
        .with_resource_detection(false)
        .build()?;
    let _guard = layer.flush_guard();
    let propagator = layer.propagator();
    tracing_subscriber::registry().with(layer).init();

    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let dynamodb = match var("E2E_DYNAMODB_ENDPOINT") {
        Some(endpoint) => {
            let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .endpoint_url(endpoint)
                .load()
                .await;
            let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
                .interceptor(XrayInterceptor::new())
                .build();
            Some(aws_sdk_dynamodb::Client::from_conf(config))
        }
        None => None,
    };
    let app = Arc::new(App {
        http: reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(XrayMiddleware::new().with_propagator(propagator.clone()))
            .build(),
        downstream: var("E2E_DOWNSTREAM"),
        dynamodb,
        table: var("E2E_TABLE").unwrap_or_else(|| "e2e".to_owned()),
    });
    let router = Router::new()
        .route("/work", get(work))
        .route("/call", get(call))
        .route("/health", get(|| async { "ok" }))
        .with_state(app)
        .layer(XrayServerLayer::new().with_propagator(propagator));
    let addr: SocketAddr = var("E2E_ADDR").ok_or("E2E_ADDR is not set")?.parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            term.recv().await;
        }
    })
    .await?;
    Ok(())
}

async fn work(
    State(app): State<Arc<App>>,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    let asked = query.get("table");
    if let Some(downstream) = &app.downstream {
        let url = match asked {
            Some(table) => format!("{downstream}/work?table={table}"),
            None => format!("{downstream}/work"),
        };
        match app.http.get(&url).send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                return (
                    StatusCode::BAD_GATEWAY,
                    format!("downstream: {status}: {body}"),
                );
            }
            Err(e) => return (StatusCode::BAD_GATEWAY, format!("downstream: {e}")),
        }
    }
    if let Some(dynamodb) = &app.dynamodb {
        let table = asked.unwrap_or(&app.table);
        let key = aws_sdk_dynamodb::types::AttributeValue::S("k1".to_owned());
        if let Err(e) = dynamodb
            .get_item()
            .table_name(table)
            .key("id", key)
            .send()
            .await
        {
            return (
                StatusCode::BAD_GATEWAY,
                format!(
                    "dynamodb: {}",
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                ),
            );
        }
    }
    (StatusCode::OK, "done".to_owned())
}

async fn call(
    State(app): State<Arc<App>>,
    Query(query): Query<HashMap<String, String>>,
) -> (StatusCode, String) {
    let Some(url) = query.get("url") else {
        return (StatusCode::BAD_REQUEST, "url missing".to_owned());
    };
    match app.http.get(url).send().await {
        Ok(r) if r.status().is_success() => (StatusCode::OK, r.text().await.unwrap_or_default()),
        Ok(r) => (StatusCode::BAD_GATEWAY, format!("{}", r.status())),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()),
    }
}
