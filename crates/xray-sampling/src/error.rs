//! Why a sampler could not be built.

use std::path::PathBuf;

/// Why a sampler could not be built. Nothing at decision time is an error: a failing
/// endpoint only makes the sampler fall back to other rules.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The rules file could not be read.
    #[error("cannot read sampling rules file {path}: {source}")]
    ReadRulesFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A rule file the X-Ray SDKs would reject.
    #[error("invalid sampling rules: {0}")]
    InvalidRules(String),
    /// The sampling endpoint is not an `http(s)://host:port` URL.
    #[error("invalid sampling endpoint {0:?}: {1}")]
    InvalidEndpoint(String, String),
    /// `OTEL_TRACES_SAMPLER_ARG` (or the same options) could not be read.
    #[error("invalid OTEL_TRACES_SAMPLER_ARG: {0}")]
    InvalidSamplerArg(String),
    /// The poller thread could not be started.
    #[error("cannot start the sampling poller thread: {0}")]
    Spawn(#[source] std::io::Error),
}
