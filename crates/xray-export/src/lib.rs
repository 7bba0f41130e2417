//! An OpenTelemetry [`SpanExporter`](opentelemetry_sdk::trace::SpanExporter) for AWS
//! X-Ray, and the transports behind it.
//!
//! - [`XRayExporter`]: translate each span into one segment document (trimmed to 64 kB,
//!   never dropped for size), queue it, return. A worker thread of its own sends.
//! - [`Pipeline`]: the bounded queue and worker, reusable for documents that arrive
//!   already encoded ([`Document::from_json`]) and for OTLP spans.
//! - [`transport`]: daemon UDP ([`transport::daemon`]), `PutTraceSegments`
//!   ([`transport::api`], feature `xray-api`), the X-Ray OTLP endpoint
//!   ([`transport::otlp`], feature `otlp`), JSON lines ([`transport::file`]).
//! - [`Metrics`]: counters readable from code: spans in, documents sent, bytes, retries,
//!   unprocessed entries, drops by [`DropReason`].
//!
//! The worker runs with OpenTelemetry telemetry suppressed, so the exporter's own
//! `tracing` events (and those of the HTTP and AWS libraries it drives) never become
//! exported spans, and a `tracing-opentelemetry` layer cannot make it recurse.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod exporter;
mod item;
mod metrics;
mod pipeline;
mod queue;
pub mod transport;

pub use exporter::{BuildError, FlushHandle, XRayExporter, XRayExporterBuilder};
pub use item::{Document, Item, Unencodable};
pub use metrics::{DropReason, Metrics, MetricsSnapshot};
pub use pipeline::{FlushError, Pipeline, PipelineConfig};
pub use queue::Overflow;
pub use transport::daemon::{DaemonAddress, HostPort};
pub use transport::{RetryPolicy, SendContext, Transport};
pub use xray_translate::{Translator, TranslatorConfig};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
