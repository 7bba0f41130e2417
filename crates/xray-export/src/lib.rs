//! An OpenTelemetry [`SpanExporter`](opentelemetry_sdk::trace::SpanExporter) for AWS
//! X-Ray, and the transports behind it.
//!
//! - [`XraySpanProcessor`]: the span processor for X-Ray: each local trace tree is sent
//!   as one document the moment its root ends, with the X-Ray SDKs' streaming rules for
//!   long and large requests ([`ProcessorConfig`]).
//! - [`XrayExporter`]: translate each span into one segment document (trimmed to 64 kB,
//!   never dropped for size), queue it, return. A worker thread of its own sends.
//! - [`Pipeline`]: the bounded queue and worker, reusable for documents that arrive
//!   already encoded ([`Document::from_json`]) and for OTLP spans.
//! - [`transport`]: daemon UDP ([`transport::daemon`]), `PutTraceSegments`
//!   ([`transport::api`], feature `xray-api`), the X-Ray OTLP endpoint
//!   ([`transport::otlp`], feature `otlp`), JSON lines ([`transport::file`]).
//! - [`spool`]: an optional disk spool per pipeline ([`PipelineConfig::spool`]): what
//!   was accepted survives an outage of any length (within its byte budget) and a crash.
//! - [`Metrics`]: counters readable from code: spans in, documents sent, bytes, retries,
//!   unprocessed entries, drops by [`DropReason`].
//!
//! The worker is one thread per pipeline: for daemon UDP, files and stdout it sends from
//! the plain thread (no Tokio runtime is created); for the X-Ray API and the OTLP endpoint
//! it runs a Tokio current-thread runtime. It runs with OpenTelemetry telemetry suppressed, so the exporter's own
//! `tracing` events (and those of the HTTP and AWS libraries it drives) never become
//! exported spans, and a `tracing-opentelemetry` layer cannot make it recurse.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod exporter;
mod item;
pub mod log_limit;
mod metrics;
mod open_trees;
mod pipeline;
mod processor;
mod queue;
pub mod spool;
pub mod transport;
mod wake;

pub use exporter::{BuildError, FlushHandle, XrayExporter, XrayExporterBuilder};
pub use item::{Document, Item, Unencodable};
pub use metrics::{CALL_DURATION_BOUNDS, CallDurations, DropReason, Metrics, MetricsSnapshot};
pub use pipeline::{FlushError, Pipeline, PipelineConfig};
pub use processor::{ProcessorConfig, XraySpanProcessor};
pub use queue::Overflow;
pub use spool::{FsyncPolicy, SpoolConfig, SpoolStats};
pub use transport::daemon::{DaemonAddress, HostPort};
pub use transport::{RetryPolicy, SendContext, Transport};
pub use xray_translate::{Translator, TranslatorConfig};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
