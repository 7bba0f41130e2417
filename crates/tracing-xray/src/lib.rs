#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod env;
mod layer;
mod processor;
mod propagator;
mod resource;
mod sampler;

use tracing::Subscriber;
use tracing_subscriber::registry::LookupSpan;

pub use builder::XrayLayerBuilder;
pub use env::{
    BSP_MAX_EXPORT_BATCH_SIZE_ENV, BSP_MAX_QUEUE_SIZE_ENV, BSP_SCHEDULE_DELAY_ENV,
    CONTEXT_MISSING_ENV, ContextMissing, DAEMON_ADDRESS_ENV, PROPAGATORS_ENV, REGION_ENV,
    RESOURCE_ATTRIBUTES_ENV, SAMPLER_ARG_ENV, SAMPLER_ENV, SDK_ENABLED_ENV, SERVICE_NAME_ENV,
    TRACING_NAME_ENV, UnknownContextMissing,
};
pub use layer::{FlushGuard, XrayLayer};
pub use propagator::Propagator;
pub use resource::DEFAULT_DETECTION_TIMEOUT;

pub use xray_export::{
    DaemonAddress, ProcessorConfig, XrayExporter, XrayExporterBuilder, XraySpanProcessor,
};
/// The header-propagation helpers (server layer, client middleware, AWS SDK interceptor,
/// Lambda), by features `axum`/`reqwest`/`aws-sdk`/`lambda` of this crate.
pub use xray_propagation as propagation;
pub use xray_sampling::XraySampler;
pub use xray_translate::TranslatorConfig;

/// Why the layer could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `AWS_XRAY_DAEMON_ADDRESS` is malformed.
    #[error(transparent)]
    DaemonAddress(xray_export::transport::daemon::AddressError),
    /// The exporter could not start (its worker thread, a file).
    #[error("cannot start the X-Ray exporter: {0}")]
    Exporter(#[from] xray_export::BuildError),
    /// The X-Ray sampler could not be built (`OTEL_TRACES_SAMPLER_ARG`, a rules file).
    #[error("cannot build the X-Ray sampler: {0}")]
    Sampler(#[from] xray_sampling::Error),
    /// A `with_metadata_exclude` / `XRAY_BRIDGE_METADATA_EXCLUDE` pattern is malformed.
    #[error("metadata exclusion: {0}")]
    MetadataExclude(#[from] xray_translate::InvalidGlob),
    /// `init`/`try_init`: a global default subscriber is already installed.
    #[error("cannot install the global subscriber: {0}")]
    Init(#[from] tracing_subscriber::util::TryInitError),
}

/// Everything from the environment, installed globally: the layer as the global default
/// subscriber, its propagator and tracer provider as OpenTelemetry's globals. The one-line
/// setup; keep the guard, it flushes on drop. See [`XrayLayerBuilder::init`].
///
/// # Examples
///
/// ```no_run
/// let _guard = tracing_xray::init();
/// tracing::info_span!("checkout").in_scope(|| { /* ... */ });
/// ```
///
/// # Panics
///
/// When the layer cannot be built or a global subscriber is already set; use
/// [`try_init`] to handle those.
pub fn init() -> FlushGuard {
    builder().init()
}

/// [`init`], returning the error instead of panicking.
///
/// # Errors
///
/// See [`XrayLayerBuilder::try_init`].
pub fn try_init() -> Result<FlushGuard, Error> {
    builder().try_init()
}

/// The layer with every setting from the environment, for composing with other layers;
/// nothing global is installed (see [`init`] for that).
///
/// # Examples
///
/// ```no_run
/// use tracing_subscriber::layer::SubscriberExt;
/// use tracing_subscriber::util::SubscriberInitExt;
///
/// let layer = tracing_xray::layer()?;
/// let _guard = layer.flush_guard();
/// tracing_subscriber::registry().with(layer).init();
/// # Ok::<(), tracing_xray::Error>(())
/// ```
///
/// # Errors
///
/// See [`XrayLayerBuilder::build`].
pub fn layer<S>() -> Result<XrayLayer<S>, Error>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    builder().build()
}

/// A builder for a layer configured in code (settings not given come from the
/// environment).
pub fn builder() -> XrayLayerBuilder {
    XrayLayerBuilder::default()
}

#[cfg(test)]
mod tests;
