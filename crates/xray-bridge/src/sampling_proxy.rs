//! The X-Ray daemon's sampling proxy on TCP: SDKs post `GetSamplingRules` and
//! `SamplingTargets` here unsigned; the bridge signs them with SigV4 (service `xray`) and
//! forwards them to the X-Ray API. Every other path gets 404; bodies are bounded both
//! ways; credentials never appear in logs.

use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::provider::SharedCredentialsProvider;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use xray_export::transport::{LazyHttpClient, SignError, Signer};

use crate::counters::{LogLimiter, Registry};

/// The paths forwarded; everything else is 404.
pub const FORWARDED_PATHS: [&str; 2] = ["/GetSamplingRules", "/SamplingTargets"];
/// Largest request body taken from an SDK (a `SamplingTargets` call carries at most 25
/// statistics documents).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Largest answer taken from the X-Ray API.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Where and how requests are forwarded.
#[derive(Clone)]
pub struct Upstream {
    /// The X-Ray API base URL, e.g. `https://xray.us-east-1.amazonaws.com`.
    pub endpoint: String,
    /// The signing region.
    pub region: String,
    /// Credentials to sign with.
    pub credentials: Option<SharedCredentialsProvider>,
    /// The outbound client (proxy and TLS settings, see [`crate::outbound`]).
    pub client: LazyHttpClient,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("credentials", &self.credentials.is_some())
            .finish()
    }
}

struct ProxyState {
    upstream: Upstream,
    registry: Registry,
    limiter: LogLimiter,
    /// Signs each forwarded request (credentials cached: a role or container credentials
    /// would otherwise mean a network call per proxied request).
    signer: Signer,
}

impl ProxyState {
    fn count(&self, path: &str, outcome: &str) {
        self.registry
            .counter(
                "xray_bridge_sampling_requests_total",
                "Sampling proxy requests, by path and outcome (forwarded, or why not).",
                &[("path", path), ("outcome", outcome)],
            )
            .inc();
    }

    fn fail(
        &self,
        path: &str,
        outcome: &'static str,
        status: StatusCode,
        message: String,
    ) -> Response {
        self.count(path, outcome);
        if let Some(count) = self.limiter.allow(outcome) {
            tracing::warn!(path, outcome, count, "sampling proxy: {message}");
        }
        let body = serde_json::json!({ "Message": message }).to_string();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// The router: the two forwarded paths, 404 for the rest.
pub fn router(upstream: Upstream, registry: Registry) -> Router {
    let (upstream_credentials, upstream_region) =
        (upstream.credentials.clone(), upstream.region.clone());
    let state = Arc::new(ProxyState {
        upstream,
        registry,
        limiter: LogLimiter::new(Duration::from_secs(10)),
        signer: Signer::new(upstream_credentials, upstream_region, "xray"),
    });
    let mut router = Router::new();
    for path in FORWARDED_PATHS {
        router = router.route(path, post(forward));
    }
    router
        .fallback(not_found)
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn not_found(State(state): State<Arc<ProxyState>>) -> Response {
    state.count("other", "not_found");
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let body = match axum::body::to_bytes(Body::new(request.into_body()), MAX_REQUEST_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return state.fail(
                &path,
                "too_large",
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over {MAX_REQUEST_BYTES} bytes (or unreadable)"),
            );
        }
    };
    let url = format!("{}{path}", state.upstream.endpoint.trim_end_matches('/'));
    let headers = [("content-type", "application/json")];
    let signed = match state.signer.sign_post(&url, &headers, &body).await {
        Ok(signed) => signed,
        Err(SignError::Credentials(message)) => {
            return state.fail(
                &path,
                "no_credentials",
                StatusCode::INTERNAL_SERVER_ERROR,
                message,
            );
        }
        Err(SignError::Signing(e)) => {
            return state.fail(
                &path,
                "signing_failed",
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot sign the request: {e}"),
            );
        }
    };
    let client = match state.upstream.client.get() {
        Ok(client) => client,
        Err(message) => {
            return state.fail(
                &path,
                "upstream_unreachable",
                StatusCode::BAD_GATEWAY,
                message,
            );
        }
    };
    let mut outgoing = client
        .post(&url)
        .timeout(Duration::from_secs(10))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.to_vec());
    for (name, value) in signed {
        outgoing = outgoing.header(name, value);
    }
    let mut answer = match outgoing.send().await {
        Ok(a) => a,
        Err(e) => {
            return state.fail(
                &path,
                "upstream_unreachable",
                StatusCode::BAD_GATEWAY,
                format!(
                    "X-Ray API at {} did not answer: {e}",
                    state.upstream.endpoint
                ),
            );
        }
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
        .unwrap_or(HeaderValue::from_static("application/json"));
    let mut bytes = Vec::new();
    loop {
        match answer.chunk().await {
            Ok(Some(chunk)) => {
                if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return state.fail(
                        &path,
                        "upstream_too_large",
                        StatusCode::BAD_GATEWAY,
                        format!("X-Ray API answer over {MAX_RESPONSE_BYTES} bytes"),
                    );
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return state.fail(
                    &path,
                    "upstream_unreachable",
                    StatusCode::BAD_GATEWAY,
                    format!("X-Ray API answer broke off: {e}"),
                );
            }
        }
    }
    if status.is_success() {
        state.count(&path, "forwarded");
    } else {
        state.count(&path, "upstream_error");
        if let Some(count) = state.limiter.allow("upstream_error") {
            tracing::warn!(
                path,
                status = status.as_u16(),
                count,
                "sampling proxy: X-Ray API answered with an error"
            );
        }
    }
    let mut response = (status, Bytes::from(bytes)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    response
}
