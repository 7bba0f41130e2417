//! Lambda: continue Lambda's own trace in every invocation, so the spans a function makes
//! hang under Lambda's function segment as subsegments, and flush before returning.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};

use lambda_runtime::LambdaEvent;
use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use xray_model::{LAMBDA_ENV_VAR, TraceHeader};

use crate::context_from_header;

/// The invocation's trace header: lambda_runtime's `Context::xray_trace_id` (the runtime
/// API's `Lambda-Runtime-Trace-Id`) when given and valid, else `_X_AMZN_TRACE_ID`.
///
/// # Examples
///
/// ```
/// use xray_propagation::lambda::invocation_header;
///
/// let h = invocation_header(Some("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:0"))
///     .unwrap();
/// assert_eq!(h.parent.unwrap().to_string(), "53995c3f42cd8ad8");
/// ```
pub fn invocation_header(xray_trace_id: Option<&str>) -> Option<TraceHeader> {
    invocation_header_from(xray_trace_id, |name| std::env::var(name).ok())
}

/// [`invocation_header`] with the environment read through `var` (a test's or an
/// embedding program's own variables).
///
/// # Examples
///
/// ```
/// use xray_model::LAMBDA_ENV_VAR;
/// use xray_propagation::lambda::invocation_header_from;
///
/// let env = |name: &str| {
///     (name == LAMBDA_ENV_VAR).then(|| "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".to_owned())
/// };
/// assert!(invocation_header_from(None, env).is_some());
/// ```
pub fn invocation_header_from(
    xray_trace_id: Option<&str>,
    var: impl Fn(&str) -> Option<String>,
) -> Option<TraceHeader> {
    xray_trace_id
        .and_then(|v| TraceHeader::parse(v).ok())
        .or_else(|| var(LAMBDA_ENV_VAR).and_then(|v| TraceHeader::parse(&v).ok()))
}

/// The OpenTelemetry context whose (remote) span is Lambda's function segment: spans
/// started under it are children of that segment. Pass it to
/// `OpenTelemetrySpanExt::set_parent`, or use [`XrayLambdaLayer`].
pub fn invocation_context(header: &TraceHeader) -> Context {
    Context::new().with_remote_span_context(context_from_header(header))
}

type Flush = Arc<dyn Fn() + Send + Sync>;

/// Set by the process's first invocation: every later one is warm.
static WARM: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A tower layer for `lambda_runtime` services (`Service<LambdaEvent<T>>`): each
/// invocation runs inside an INFO span of kind Internal named after the function, whose
/// parent is Lambda's function segment (the trace header's `Parent`), with
/// `faas.invocation_id`, `faas.name`, `cloud.resource_id` and `faas.coldstart` (true for
/// the process's first invocation; the translator makes it the `ColdStart` annotation). When the invocation ends the
/// span is closed and the flush hook runs before the response goes back to Lambda (Lambda
/// may freeze the process right after).
///
/// # Examples
///
/// ```
/// use lambda_runtime::{LambdaEvent, service_fn};
/// use tower_layer::Layer;
/// use xray_propagation::lambda::XrayLambdaLayer;
///
/// async fn handler(event: LambdaEvent<serde_json::Value>) -> Result<serde_json::Value, lambda_runtime::Error> {
///     Ok(event.payload)
/// }
///
/// // With an SDK provider: `.with_flush(move || { let _ = provider.force_flush(); })`.
/// let service = XrayLambdaLayer::new()
///     .with_flush(|| {})
///     .layer(service_fn(handler));
/// // lambda_runtime::run(service).await
/// # let _ = service;
/// ```
#[derive(Clone, Default)]
pub struct XrayLambdaLayer {
    flush: Option<Flush>,
}

impl XrayLambdaLayer {
    /// A layer with no flush hook.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `flush` after each invocation, before its response is returned, e.g. the
    /// tracer provider's `force_flush`. It may block; Lambda runs one invocation at a time.
    pub fn with_flush(mut self, flush: impl Fn() + Send + Sync + 'static) -> Self {
        self.flush = Some(Arc::new(flush));
        self
    }
}

impl fmt::Debug for XrayLambdaLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XrayLambdaLayer")
            .field("flush", &self.flush.is_some())
            .finish()
    }
}

impl<S> Layer<S> for XrayLambdaLayer {
    type Service = XrayLambdaService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        XrayLambdaService {
            inner,
            flush: self.flush.clone(),
        }
    }
}

/// The service made by [`XrayLambdaLayer`].
#[derive(Clone)]
pub struct XrayLambdaService<S> {
    inner: S,
    flush: Option<Flush>,
}

impl<S: fmt::Debug> fmt::Debug for XrayLambdaService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XrayLambdaService")
            .field("inner", &self.inner)
            .field("flush", &self.flush.is_some())
            .finish()
    }
}

impl<S, T> Service<LambdaEvent<T>> for XrayLambdaService<S>
where
    S: Service<LambdaEvent<T>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = InvocationFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, event: LambdaEvent<T>) -> Self::Future {
        let ctx = &event.context;
        let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| ctx.env_config.function_name.clone());
        let span = tracing::info_span!(
            "Lambda invocation",
            otel.name = %if function.is_empty() { "invocation" } else { function.as_str() },
            otel.kind = "internal",
            otel.status_code = Empty,
            faas.invocation_id = %ctx.request_id,
            faas.name = Empty,
            cloud.provider = "aws",
            cloud.resource_id = Empty,
            faas.coldstart = !WARM.swap(true, std::sync::atomic::Ordering::Relaxed),
            error.type = Empty,
        );
        if !function.is_empty() {
            span.record("faas.name", function.as_str());
        }
        if !ctx.invoked_function_arn.is_empty() {
            span.record("cloud.resource_id", ctx.invoked_function_arn.as_str());
        }
        if let Some(header) = invocation_header(ctx.xray_trace_id.as_deref()) {
            // Fails only when no OpenTelemetry layer sees the span: nothing to parent then.
            let _ = span.set_parent(invocation_context(&header));
        }
        let inner = {
            let _entered = span.enter();
            self.inner.call(event)
        };
        InvocationFuture {
            inner,
            span: Some(span),
            flush: self.flush.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of one invocation under [`XrayLambdaService`].
    pub struct InvocationFuture<F> {
        #[pin]
        inner: F,
        span: Option<Span>,
        flush: Option<Flush>,
    }
}

impl<F, R, E> Future for InvocationFuture<F>
where
    F: Future<Output = Result<R, E>>,
{
    type Output = Result<R, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.span.as_ref().map(Span::enter);
            ready!(this.inner.poll(cx))
        };
        if let Some(span) = this.span.take() {
            if result.is_err() {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", std::any::type_name::<E>());
            }
            // Closing the span hands it to the span processor before the flush.
            drop(span);
        }
        if let Some(flush) = this.flush.take() {
            flush();
        }
        Poll::Ready(result)
    }
}
