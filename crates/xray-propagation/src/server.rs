//! Server side: a tower [`Layer`] that continues the caller's trace and starts a Server
//! span per request, with HTTP semantic-convention attributes.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use http::{HeaderMap, HeaderValue, Request, Response};
use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use xray_model::{Sampled, TraceHeader, TraceId};

use crate::choice::PropagatorChoice;
use crate::{HeaderExtractor, extract_header, inject_header};

/// A tower layer that, for every request: extracts the trace context with OpenTelemetry's
/// global propagator (so `OTEL_PROPAGATORS` applies; `X-Amzn-Trace-Id` alone while none is
/// installed) or the one given to [`with_propagator`](Self::with_propagator), starts an INFO `tracing`
/// span of kind Server parented to it, records HTTP attributes (`http.request.method`,
/// `url.full`, `url.path`, `http.route`, `user_agent.original`, `client.address`,
/// `http.response.status_code`), marks 5xx and service errors with
/// `otel.status_code=ERROR`, and, when the caller sent `Sampled=?`, answers with an
/// `X-Amzn-Trace-Id` response header carrying `Root` and the decision.
///
/// With feature `axum`, `http.route` comes from axum's `MatchedPath` (add the layer with
/// `Router::layer` so routing has run) and the peer address from `ConnectInfo`.
///
/// # Examples
///
/// ```
/// use axum::{Router, routing::get};
/// use xray_propagation::server::XrayServerLayer;
///
/// let app: Router = Router::new()
///     .route("/users/{id}", get(|| async { "hi" }))
///     .layer(XrayServerLayer::new());
/// ```
#[derive(Clone, Debug, Default)]
pub struct XrayServerLayer {
    propagator: PropagatorChoice,
}

impl XrayServerLayer {
    /// A layer that reads the incoming context with the global propagator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads incoming context with `propagator` instead of the global one, e.g. a
    /// [`TextMapCompositePropagator`](opentelemetry::propagation::TextMapCompositePropagator)
    /// of W3C trace context and [`XrayPropagator`](crate::XrayPropagator).
    pub fn with_propagator(
        mut self,
        propagator: impl TextMapPropagator + Send + Sync + 'static,
    ) -> Self {
        self.propagator = PropagatorChoice::own(propagator);
        self
    }
}

impl<S> Layer<S> for XrayServerLayer {
    type Service = XrayServerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        XrayServerService {
            inner,
            propagator: self.propagator.clone(),
        }
    }
}

/// The service made by [`XrayServerLayer`].
#[derive(Clone)]
pub struct XrayServerService<S> {
    inner: S,
    propagator: PropagatorChoice,
}

impl<S: fmt::Debug> fmt::Debug for XrayServerService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XrayServerService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResB> Service<Request<B>> for XrayServerService<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: fmt::Display,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let incoming = extract_header(req.headers());
        let parent = self
            .propagator
            .with(|p| p.extract_with_context(&Context::new(), &HeaderExtractor(req.headers())));
        let span = server_span(&req);
        if parent.span().span_context().is_valid() {
            // Fails only when no OpenTelemetry layer sees the span: nothing to parent then.
            let _ = span.set_parent(parent);
        }
        let answer = incoming
            .filter(|h| h.sampled == Sampled::Requested)
            .map(|h| h.root);
        let inner = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        ResponseFuture {
            inner,
            span,
            answer,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`XrayServerService`]: records the outcome on the span.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        answer: Option<TraceId>,
    }
}

impl<F, ResB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    E: fmt::Display,
{
    type Output = Result<Response<ResB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let result = ready!(this.inner.poll(cx));
        match &result {
            Ok(_) => {}
            Err(e) => {
                this.span.record("otel.status_code", "ERROR");
                this.span.record("otel.status_description", e.to_string());
                this.span.record("error.type", std::any::type_name::<E>());
            }
        }
        Poll::Ready(result.map(|mut response| {
            let status = response.status();
            this.span
                .record("http.response.status_code", status.as_u16());
            if status.is_server_error() {
                this.span.record("otel.status_code", "ERROR");
                this.span.record("error.type", status.as_str());
            }
            if let Some(root) = this.answer.take() {
                answer_decision(this.span, root, response.headers_mut());
            }
            response
        }))
    }
}

/// Writes `Root=…;Sampled=1|0` with the span's own decision into the response headers.
fn answer_decision(span: &Span, root: TraceId, headers: &mut HeaderMap) {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    // A span no OpenTelemetry layer records is, in effect, not sampled.
    let sampled = sc.is_valid() && sc.trace_id().to_bytes() == root.to_bytes() && sc.is_sampled();
    inject_header(
        headers,
        &TraceHeader::new(root, None, Sampled::from_decision(sampled)),
    );
}

fn server_span<B>(req: &Request<B>) -> Span {
    let method = req.method().as_str();
    let uri = req.uri();
    let headers = req.headers();
    let route = route(req);
    let name = match &route {
        Some(route) => format!("{method} {route}"),
        None => method.to_owned(),
    };
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| header_str(headers, http::header::HOST));
    let scheme = uri
        .scheme_str()
        .or_else(|| header_str(headers, "x-forwarded-proto"))
        .unwrap_or("http");
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let full = host.map(|host| format!("{scheme}://{host}{path_and_query}"));
    let peer = peer_address(req);
    let forwarded_for = header_str(headers, "x-forwarded-for")
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let client = forwarded_for.map(str::to_owned).or_else(|| peer.clone());
    let span = tracing::info_span!(
        "HTTP request",
        otel.name = %name,
        otel.kind = "server",
        otel.status_code = Empty,
        otel.status_description = Empty,
        http.request.method = %method,
        url.path = %uri.path(),
        url.query = Empty,
        url.scheme = %scheme,
        url.full = Empty,
        server.address = Empty,
        http.route = Empty,
        user_agent.original = Empty,
        client.address = Empty,
        network.peer.address = Empty,
        http.request.header.x_forwarded_for = Empty,
        http.response.status_code = Empty,
        error.type = Empty,
    );
    if let Some(q) = uri.query() {
        span.record("url.query", q);
    }
    if let Some(full) = &full {
        span.record("url.full", full.as_str());
    }
    if let Some(host) = host {
        let name = host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        span.record("server.address", name);
    }
    if let Some(route) = &route {
        span.record("http.route", route.as_str());
    }
    if let Some(ua) = header_str(headers, http::header::USER_AGENT) {
        span.record("user_agent.original", ua);
    }
    if let Some(client) = &client {
        span.record("client.address", client.as_str());
    }
    if let Some(peer) = &peer {
        span.record("network.peer.address", peer.as_str());
    }
    if let Some(xff) = header_str(headers, "x-forwarded-for") {
        span.record("http.request.header.x_forwarded_for", xff);
    }
    span
}

fn header_str(headers: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<&str> {
    headers
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
}

#[cfg(feature = "axum")]
fn route<B>(req: &Request<B>) -> Option<String> {
    req.extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
}

#[cfg(not(feature = "axum"))]
fn route<B>(_req: &Request<B>) -> Option<String> {
    None
}

#[cfg(feature = "axum")]
fn peer_address<B>(req: &Request<B>) -> Option<String> {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

#[cfg(not(feature = "axum"))]
fn peer_address<B>(_req: &Request<B>) -> Option<String> {
    None
}
