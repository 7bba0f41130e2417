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
    CONTEXT_MISSING_ENV, ContextMissing, DAEMON_ADDRESS_ENV, PROPAGATORS_ENV, REGION_ENV,
    RESOURCE_ATTRIBUTES_ENV, SAMPLER_ARG_ENV, SAMPLER_ENV, SDK_ENABLED_ENV, SERVICE_NAME_ENV,
    TRACING_NAME_ENV, UnknownContextMissing,
};
pub use layer::{FlushGuard, XrayLayer};
pub use propagator::Propagator;
pub use resource::DEFAULT_DETECTION_TIMEOUT;

pub use xray_export::{
    DaemonAddress, ProcessorConfig, XRayExporter, XRayExporterBuilder, XraySpanProcessor,
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
}

/// The layer with every setting from the environment: see the crate documentation.
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
