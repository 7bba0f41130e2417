//! The four seed services: frontend -> BFF -> backend1, backend2 (each backend writes its
//! last-access time to DynamoDB through the instrumented AWS SDK).
//!
//! Fault switches (`SEED_FAULTS`, comma-separated; `none` or empty for none):
//! - `slow`: backend1 sleeps 250 ms per request;
//! - `flaky`: backend2 answers 500 to every second request (half of them);
//! - `client-errors`: the BFF answers 404 to requests 5, 15, 25... and 429 to 10, 20, 30...
//!
//! These counts are per process, so a burst of N requests gives known totals whatever the
//! concurrency. `GET /health` answers 200 on every service.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use reqwest_middleware::ClientWithMiddleware;
use serde_json::{Value, json};
use tracing_xray::Propagator;
use tracing_xray::propagation::client::XrayMiddleware;
use tracing_xray::propagation::server::XrayServerLayer;
use xray_propagation::aws_sdk::XrayInterceptor;

/// The DynamoDB table the backends write to (key `service`, string).
pub(crate) const TABLE: &str = "seed-last-access";

/// Which faults are on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Faults {
    /// backend1 is slow.
    pub slow: bool,
    /// backend2 fails half of the time with 500.
    pub flaky: bool,
    /// The BFF answers some 404 and 429.
    pub client_errors: bool,
}

impl Faults {
    /// Every fault on.
    pub(crate) const ALL: Faults = Faults {
        slow: true,
        flaky: true,
        client_errors: true,
    };

    /// Parses `slow,flaky,client-errors` (or `all`, `none`).
    pub(crate) fn parse(text: &str) -> Result<Faults, String> {
        let mut f = Faults::default();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "slow" => f.slow = true,
                "flaky" => f.flaky = true,
                "client-errors" => f.client_errors = true,
                "all" => f = Faults::ALL,
                "none" => {}
                other => {
                    return Err(format!(
                        "unknown fault `{other}`: slow, flaky, client-errors, all, none"
                    ));
                }
            }
        }
        Ok(f)
    }

    /// The `SEED_FAULTS` form.
    pub(crate) fn to_env(self) -> String {
        let mut on = Vec::new();
        if self.slow {
            on.push("slow");
        }
        if self.flaky {
            on.push("flaky");
        }
        if self.client_errors {
            on.push("client-errors");
        }
        if on.is_empty() {
            "none".into()
        } else {
            on.join(",")
        }
    }
}

fn traced_client(propagator: &Propagator) -> ClientWithMiddleware {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client");
    reqwest_middleware::ClientBuilder::new(client)
        .with(XrayMiddleware::new().with_propagator(propagator.clone()))
        .build()
}

fn with_health(router: Router, propagator: Propagator) -> Router {
    router
        .route("/health", get(|| async { "ok\n" }))
        .layer(XrayServerLayer::new().with_propagator(propagator))
}

struct Front {
    client: ClientWithMiddleware,
    bff: String,
}

/// The frontend: `GET /` calls the BFF and answers with its status and JSON.
pub(crate) fn frontend(bff_url: &str, propagator: Propagator) -> Router {
    let state = Arc::new(Front {
        client: traced_client(&propagator),
        bff: format!("{}/api/combined", bff_url.trim_end_matches('/')),
    });
    let router = Router::new().route("/", get(front)).with_state(state);
    with_health(router, propagator)
}

async fn front(State(app): State<Arc<Front>>) -> (StatusCode, String) {
    match app.client.get(&app.bff).send().await {
        Ok(r) => {
            let status = StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::OK);
            (status, r.text().await.unwrap_or_default())
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("bff: {e}\n")),
    }
}

struct Bff {
    client: ClientWithMiddleware,
    backends: [String; 2],
    faults: Faults,
    count: AtomicU64,
}

/// The BFF: `GET /api/combined` calls backend1 then backend2 and answers both JSONs.
pub(crate) fn bff(
    backend1: &str,
    backend2: &str,
    faults: Faults,
    propagator: Propagator,
) -> Router {
    let url = |b: &str| format!("{}/work", b.trim_end_matches('/'));
    let state = Arc::new(Bff {
        client: traced_client(&propagator),
        backends: [url(backend1), url(backend2)],
        faults,
        count: AtomicU64::new(0),
    });
    let router = Router::new()
        .route("/api/combined", get(combined))
        .with_state(state);
    with_health(router, propagator)
}

async fn combined(State(app): State<Arc<Bff>>) -> (StatusCode, String) {
    let n = app.count.fetch_add(1, Ordering::Relaxed) + 1;
    if app.faults.client_errors && n % 10 == 0 {
        return (StatusCode::TOO_MANY_REQUESTS, "slow down\n".into());
    }
    if app.faults.client_errors && n % 10 == 5 {
        return (StatusCode::NOT_FOUND, "no such item\n".into());
    }
    let mut parts = Vec::with_capacity(2);
    for url in &app.backends {
        let answer = match app.client.get(url).send().await {
            Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
            Ok(r) => {
                tracing::warn!(status = r.status().as_u16(), url, "backend failed");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, url, "backend unreachable");
                None
            }
        };
        match answer {
            Some(v) => parts.push(v),
            None => return (StatusCode::BAD_GATEWAY, format!("{url} failed\n")),
        }
    }
    let body = json!({ "backend1": parts[0], "backend2": parts[1] });
    (StatusCode::OK, body.to_string())
}

struct Backend {
    name: String,
    dynamodb: aws_sdk_dynamodb::Client,
    slow: bool,
    flaky: bool,
    count: AtomicU64,
}

/// A DynamoDB client with the X-Ray interceptor, from the standard AWS configuration
/// (`AWS_ENDPOINT_URL_DYNAMODB` points it at moto in the demo).
pub(crate) async fn dynamodb(traced: bool) -> aws_sdk_dynamodb::Client {
    let shared = aws_config::load_from_env().await;
    let mut config = aws_sdk_dynamodb::config::Builder::from(&shared);
    if traced {
        config = config.interceptor(XrayInterceptor::new());
    }
    aws_sdk_dynamodb::Client::from_conf(config.build())
}

/// A backend: `GET /work` writes its last-access time to DynamoDB and answers it.
pub(crate) fn backend(
    name: &str,
    dynamodb: aws_sdk_dynamodb::Client,
    slow: bool,
    flaky: bool,
    propagator: Propagator,
) -> Router {
    let state = Arc::new(Backend {
        name: name.to_owned(),
        dynamodb,
        slow,
        flaky,
        count: AtomicU64::new(0),
    });
    let router = Router::new().route("/work", get(work)).with_state(state);
    with_health(router, propagator)
}

async fn work(State(app): State<Arc<Backend>>) -> (StatusCode, String) {
    let n = app.count.fetch_add(1, Ordering::Relaxed) + 1;
    if app.slow {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if app.flaky && n % 2 == 0 {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "flaky on purpose\n".into(),
        );
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let put = app
        .dynamodb
        .put_item()
        .table_name(TABLE)
        .item("service", AttributeValue::S(app.name.clone()))
        .item("last_access", AttributeValue::N(format!("{now:.3}")))
        .send()
        .await;
    match put {
        Ok(_) => {
            let body = json!({ "service": app.name, "last_access": now });
            (StatusCode::OK, body.to_string())
        }
        Err(e) => {
            let e = aws_sdk_dynamodb::error::DisplayErrorContext(e);
            tracing::error!(error = %e, "DynamoDB PutItem failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("dynamodb: {e}\n"),
            )
        }
    }
}
