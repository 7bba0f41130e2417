//! AWS X-Ray sampling for OpenTelemetry: centralized sampling rules and local rule files,
//! as an [`opentelemetry_sdk::trace::ShouldSample`].
//!
//! - Centralized: rules from GetSamplingRules (all pages) every 5 minutes with jitter,
//!   targets from GetSamplingTargets every 10 seconds (or each rule's interval), through
//!   the daemon's sampling proxy (default `http://127.0.0.1:2000`, unsigned) or, with the
//!   `xray-api` feature, the X-Ray API itself (signed, aws-sdk-xray).
//! - Rules match service name, service type, host, HTTP method, URL path, resource ARN and
//!   span attributes with `*` and `?` wildcards, case-insensitively; by priority then
//!   name, `Default` last. A value the span does not have matches only `*`.
//! - Decisions: a rule's reservoir quota per second while its TTL holds, else one borrowed
//!   per second (rules with a reservoir), else its fixed rate. Statistics per rule go back
//!   with each targets call.
//! - Local rules (SDK rule file versions 1 and 2) decide before the first rules arrive,
//!   after the last good rules expire (1 hour without a refresh), or alone with
//!   [`XraySamplerBuilder::with_local_rules_only`]. The built-in default is 1 per second plus 5 %.
//! - Parent-based: a parent's decision is followed, except that a remote parent whose
//!   header said `Sampled=?` or nothing is decided here.
//! - The deciding rule is recorded as [`SAMPLING_RULE_NAME_ATTRIBUTE`].
//! - Configuration: [`XraySampler::builder`], or [`XraySampler::from_env`] with
//!   `OTEL_TRACES_SAMPLER=xray` and `OTEL_TRACES_SAMPLER_ARG=endpoint=URL,rules_file=PATH`
//!   (see [`XraySamplerBuilder::with_sampler_arg`] for every option).
//! - The poller runs on its own thread (with its own small runtime), logs a failing
//!   endpoint once, creates no spans, and stops when the last clone is dropped.
//!
//! ```
//! use opentelemetry::KeyValue;
//! use opentelemetry::trace::{SpanKind, TraceId};
//! use opentelemetry_sdk::trace::{SamplingDecision, ShouldSample};
//! use xray_sampling::{LocalRules, XraySampler};
//!
//! let rules = LocalRules::from_json(r#"{"version": 2,
//!     "rules": [{"description": "ignore-healthcheck", "host": "*", "http_method": "GET",
//!                "url_path": "/health", "fixed_target": 0, "rate": 0}],
//!     "default": {"fixed_target": 1, "rate": 0.05}}"#).unwrap();
//! let sampler = XraySampler::builder().with_local_rules_only().with_local_rules(rules).build().unwrap();
//! let health = [KeyValue::new("http.request.method", "GET"), KeyValue::new("url.path", "/health")];
//! let result = sampler.should_sample(None, TraceId::from(1), "GET /health", &SpanKind::Server, &health, &[]);
//! assert_eq!(result.decision, SamplingDecision::Drop);
//! assert_eq!(result.attributes[0].value.as_str(), "ignore-healthcheck");
//! ```
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod counter;
mod env;
mod error;
mod local;
mod poller;
mod request;
mod reservoir;
mod rule;
mod sampler;
mod shared;
mod wildcard;
mod wire;

pub use env::SAMPLER_NAME;
pub use error::Error;
pub use local::{LocalRule, LocalRules};
pub use sampler::{
    DEFAULT_ENDPOINT, SAMPLING_RULE_NAME_ATTRIBUTE, XraySampler, XraySamplerBuilder,
    parent_decision,
};
pub use wildcard::wildcard_match;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
