//! Carries the AWS X-Ray `X-Amzn-Trace-Id` header on every hop.
//!
//! - [`XrayPropagator`]: an OpenTelemetry [`TextMapPropagator`] built on
//!   [`xray_model::TraceHeader`] (Root-only headers, spaces, `Sampled=?`, missing
//!   `Sampled`, `Self`/`Lineage`/custom fields kept and re-sent). Composes with W3C
//!   `traceparent` through [`TextMapCompositePropagator`].
//! - [`extract_header`] / [`inject_header`]: the same header on an [`http::HeaderMap`],
//!   for code that does not use OpenTelemetry directly.
//! - `server` (feature `tower`, plus `axum` for routes and peer addresses): a tower layer
//!   that starts a Server span per request and answers `Sampled=?` requests.
//! - `client` (feature `reqwest`): a `reqwest-middleware` middleware that starts Client
//!   spans and sends the header.
//! - `aws_sdk` (feature `aws-sdk`): an AWS SDK for Rust interceptor that turns each call
//!   into a Client span with `rpc.*`/`aws.*` attributes and sends the header.
//! - `lambda` (feature `lambda`): continues Lambda's trace per invocation and flushes
//!   before the invocation returns.
//!
//! The integrations start `tracing` spans and bridge them to OpenTelemetry with
//! `tracing-opentelemetry`, so they need its layer in the subscriber.
//!
//! What the spans tell the translator: a Server span whose parent is remote and whose
//! trace state carries `no_parent` ([`xray_model::carry`]) is a segment without
//! `parent_id` (its parent span id is [`HopState::stand_in_parent`]); AWS SDK spans carry
//! `rpc.system=aws-api` (an `aws` subsegment); Lambda invocation spans are Internal with
//! Lambda's function segment as remote parent (a subsegment of it, not a new segment).
//!
//! [`HopState::stand_in_parent`]: xray_model::carry::HopState::stand_in_parent
//!
//! ```
//! use opentelemetry::propagation::TextMapCompositePropagator;
//! use opentelemetry_sdk::propagation::TraceContextPropagator;
//! use xray_propagation::XrayPropagator;
//!
//! let propagator = TextMapCompositePropagator::new(vec![
//!     Box::new(TraceContextPropagator::new()),
//!     Box::new(XrayPropagator::new()),
//! ]);
//! opentelemetry::global::set_text_map_propagator(propagator);
//! ```
//!
//! [`TextMapPropagator`]: opentelemetry::propagation::TextMapPropagator
//! [`TextMapCompositePropagator`]: opentelemetry::propagation::TextMapCompositePropagator
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "spans")]
mod choice;
mod headers;
mod propagator;

pub use headers::{
    HeaderExtractor, HeaderInjector, extract_context, extract_header, inject_context, inject_header,
};
pub use propagator::{
    HEADER_FIELD, XrayPropagator, context_from_header, header_from_context, hop_state,
};
pub use xray_model::{Sampled, TraceHeader};

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod server;

#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub mod client;

#[cfg(feature = "aws-sdk")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws-sdk")))]
pub mod aws_sdk;

#[cfg(feature = "lambda")]
#[cfg_attr(docsrs, doc(cfg(feature = "lambda")))]
pub mod lambda;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
