//! Client side: a `reqwest-middleware` [`Middleware`] that starts a Client span per request
//! and sends the trace header.

use std::fmt;

use http::Extensions;
use opentelemetry::propagation::TextMapPropagator;
use reqwest_middleware::reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next, Result};
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::choice::PropagatorChoice;
use crate::inject_context;

/// Starts an INFO `tracing` span of kind Client around every request (`http.request.method`,
/// `url.full`, `server.address`, `server.port`, `http.response.status_code`; 4xx, 5xx and
/// transport errors get `otel.status_code=ERROR` and `error.type`) and writes the span's
/// context into the request with OpenTelemetry's global propagator (so `OTEL_PROPAGATORS`
/// applies; `X-Amzn-Trace-Id` alone while none is installed) or the one given to
/// [`with_propagator`](Self::with_propagator).
///
/// # Examples
///
/// ```
/// use xray_propagation::client::XrayMiddleware;
///
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(XrayMiddleware::new())
///     .build();
/// ```
#[derive(Clone, Default)]
pub struct XrayMiddleware {
    propagator: PropagatorChoice,
}

impl XrayMiddleware {
    /// A middleware that writes headers with the global propagator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes headers with `propagator` instead of the global one, e.g. a composite of W3C
    /// trace context and [`XrayPropagator`](crate::XrayPropagator) to send both
    /// `traceparent` and `X-Amzn-Trace-Id`.
    pub fn with_propagator(
        mut self,
        propagator: impl TextMapPropagator + Send + Sync + 'static,
    ) -> Self {
        self.propagator = PropagatorChoice::own(propagator);
        self
    }
}

impl fmt::Debug for XrayMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XrayMiddleware").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Middleware for XrayMiddleware {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        let span = client_span(&req);
        self.propagator
            .with(|p| inject_context(p, &span.context(), req.headers_mut()));
        let result = next.run(req, extensions).instrument(span.clone()).await;
        match &result {
            Ok(response) => {
                let status = response.status();
                span.record("http.response.status_code", status.as_u16());
                if status.is_client_error() || status.is_server_error() {
                    span.record("otel.status_code", "ERROR");
                    span.record("error.type", status.as_str());
                }
            }
            Err(e) => {
                span.record("otel.status_code", "ERROR");
                span.record("otel.status_description", e.to_string());
                span.record("error.type", error_type(e));
            }
        }
        result
    }
}

fn client_span(req: &Request) -> tracing::Span {
    let url = req.url();
    let method = req.method().as_str();
    let span = tracing::info_span!(
        "HTTP client request",
        otel.name = %method,
        otel.kind = "client",
        otel.status_code = Empty,
        otel.status_description = Empty,
        http.request.method = %method,
        url.full = %redacted(url),
        server.address = Empty,
        server.port = Empty,
        http.response.status_code = Empty,
        error.type = Empty,
    );
    if let Some(host) = url.host_str() {
        span.record("server.address", host);
    }
    if let Some(port) = url.port_or_known_default() {
        span.record("server.port", port);
    }
    span
}

/// The URL without user name and password, which must never reach a trace.
fn redacted(url: &reqwest_middleware::reqwest::Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.to_string();
    }
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

fn error_type(e: &reqwest_middleware::Error) -> &'static str {
    match e {
        reqwest_middleware::Error::Middleware(_) => "middleware",
        reqwest_middleware::Error::Reqwest(e) if e.is_timeout() => "timeout",
        reqwest_middleware::Error::Reqwest(e) if e.is_connect() => "connect",
        reqwest_middleware::Error::Reqwest(e) if e.is_request() => "request",
        reqwest_middleware::Error::Reqwest(e) if e.is_body() => "body",
        reqwest_middleware::Error::Reqwest(_) => "_OTHER",
    }
}
