//! [`XrayLayer`]: the `tracing-subscriber` layer, and its [`FlushGuard`].
#![allow(unsafe_code)] // FFI or a std API that is unsafe to call; each block says why it is sound.

use std::any::TypeId;
use std::fmt;

use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::span;
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Metadata, Subscriber};
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::filter::{Filtered, LevelFilter};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;
use xray_export::Metrics;
use xray_sampling::XraySampler;

use crate::Propagator;

/// The bridge, seeing only spans and events up to the configured level.
pub(crate) type Bridge<S> = Filtered<OpenTelemetryLayer<S, SdkTracer>, LevelFilter, S>;

/// What a running layer owns besides the bridge itself.
#[derive(Clone)]
pub(crate) struct Handle {
    pub provider: SdkTracerProvider,
    pub propagator: Propagator,
    pub metrics: Metrics,
    pub xray_sampler: Option<XraySampler>,
}

/// A `tracing-subscriber` layer that sends spans to AWS X-Ray; made by [`crate::layer`] or
/// [`crate::builder`].
///
/// It sees spans and events up to INFO by default
/// ([`XrayLayerBuilder::with_max_level`](crate::XrayLayerBuilder::with_max_level)), as a
/// per-layer filter: other layers (a `fmt` layer at DEBUG, say) are not affected.
///
/// When tracing is disabled (`AWS_XRAY_SDK_ENABLED=false`) the layer holds nothing and
/// tells the subscriber it wants no spans or events (`max_level_hint` is `OFF`), so it
/// costs nothing.
pub struct XrayLayer<S> {
    pub(crate) inner: Option<Bridge<S>>,
    pub(crate) handle: Option<Handle>,
}

impl<S> fmt::Debug for XrayLayer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XrayLayer")
            .field("enabled", &self.inner.is_some())
            .field("propagator", &self.handle.as_ref().map(|h| &h.propagator))
            .finish_non_exhaustive()
    }
}

impl<S> XrayLayer<S> {
    /// A layer that does nothing (what `AWS_XRAY_SDK_ENABLED=false` gives).
    pub fn disabled() -> Self {
        XrayLayer {
            inner: None,
            handle: None,
        }
    }

    /// Whether spans are sent (false when disabled).
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// A guard that flushes the spans not yet sent and shuts the tracer provider down when
    /// dropped. Keep it alive for as long as the program traces (bind it in `main`).
    #[must_use = "dropping the guard at once shuts tracing down"]
    pub fn flush_guard(&self) -> FlushGuard {
        FlushGuard {
            handle: self.handle.clone(),
        }
    }

    /// The OpenTelemetry tracer provider behind the layer (e.g. to `force_flush` at the
    /// end of a Lambda invocation); `None` when disabled.
    pub fn provider(&self) -> Option<&SdkTracerProvider> {
        self.handle.as_ref().map(|h| &h.provider)
    }

    /// The propagator installed as the global text-map propagator (also when disabled, so
    /// headers can still be passed on).
    pub fn propagator(&self) -> Propagator {
        self.handle
            .as_ref()
            .map_or_else(Propagator::from_env, |h| h.propagator.clone())
    }

    /// The exporter's counters (spans in, documents sent, drops by reason); `None` when
    /// disabled.
    pub fn metrics(&self) -> Option<&Metrics> {
        self.handle.as_ref().map(|h| &h.metrics)
    }
}

/// Flushes and shuts down the tracer provider when dropped; see
/// [`XrayLayer::flush_guard`].
#[must_use = "dropping the guard at once shuts tracing down"]
pub struct FlushGuard {
    handle: Option<Handle>,
}

impl FlushGuard {
    /// Sends every finished span now, waiting for the exporter (at most its flush
    /// timeout). Returns whether everything was handed to the transport.
    pub fn flush(&self) -> bool {
        self.handle
            .as_ref()
            .is_none_or(|h| h.provider.force_flush().is_ok())
    }
}

impl fmt::Debug for FlushGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlushGuard")
            .field("enabled", &self.handle.is_some())
            .finish()
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = handle.provider.force_flush();
            let _ = handle.provider.shutdown();
            if let Some(sampler) = &handle.xray_sampler {
                sampler.shutdown();
            }
        }
    }
}

impl<S> Layer<S> for XrayLayer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        self.inner.on_register_dispatch(subscriber)
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber)
    }

    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.inner.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.enabled(metadata, ctx)
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_new_span(attrs, id, ctx)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.inner.max_level_hint()
    }

    fn on_record(&self, span: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        self.inner.on_record(span, values, ctx)
    }

    fn on_follows_from(&self, span: &span::Id, follows: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_follows_from(span, follows, ctx)
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.event_enabled(event, ctx)
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        self.inner.on_event(event, ctx)
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_enter(id, ctx)
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_exit(id, ctx)
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        self.inner.on_close(id, ctx)
    }

    fn on_id_change(&self, old: &span::Id, new: &span::Id, ctx: Context<'_, S>) {
        self.inner.on_id_change(old, new, ctx)
    }

    // SAFETY: returns a pointer to `self` for its own type id, and otherwise whatever the
    // inner layer (an `Option`, which also answers the "no layer" marker when disabled)
    // returns for the id; both live as long as `&self`.
    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            Some(self as *const Self as *const ())
        } else {
            // SAFETY: forwarded under the same contract.
            unsafe { self.inner.downcast_raw(id) }
        }
    }
}
