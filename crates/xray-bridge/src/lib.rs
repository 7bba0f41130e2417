//! `xray-bridge`: a standalone bridge to AWS X-Ray and a drop-in successor of the X-Ray
//! daemon.
//!
//! - [`udp`]: the daemon protocol on UDP (SDK segments, passed through after validation);
//!   [`adot`]: ADOT's OTLP bodies (`T1S`/`T1U`/`M1`) on the same port.
//! - [`otlp_http`] and [`otlp_grpc`]: OTLP receivers, translated by [`otlp`].
//! - [`sampling_proxy`]: `GetSamplingRules` and `SamplingTargets`, signed and forwarded.
//! - [`admin`]: `/metrics` and `/healthz`.
//! - [`config`]: flags, `XRAY_BRIDGE_*` environment variables, our TOML file and the X-Ray
//!   daemon's `cfg.yaml`, each setting declared once.
//! - [`outbound`]: the one HTTP client of every outbound call (proxy, TLS), also under
//!   the AWS SDK; [`aws`]: region, credentials and role.
//! - [`telemetry`]: `PutTelemetryRecords`, as the daemon sends them.
//! - [`export`]: the seam to the export pipelines; [`pipeline`] implements it over
//!   `xray-export`, one pipeline per `--export`; [`convert`] turns daemon documents into
//!   OTLP spans for the OTLP exports; [`otlp_headers`] reads their headers.
//! - [`local`]: local mode, the `xray-console` store and page instead of AWS.
//! - [`run`]: binds everything, serves, and drains on SIGTERM/Ctrl-C.
//! - [`counters`]: counters by reason, rendered as Prometheus text.
//! - [`memory`]: the C allocator's arenas capped at the CPUs the process may use.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod admin;
pub mod adot;
pub mod aws;
pub mod config;
pub mod convert;
pub mod counters;
pub mod export;
pub mod http_server;
pub mod local;
pub mod logging;
pub mod memory;
pub mod otlp;
pub mod otlp_grpc;
pub mod otlp_headers;
pub mod otlp_http;
pub mod outbound;
pub mod pipeline;
pub mod run;
pub mod sampling_proxy;
pub mod telemetry;
pub mod udp;

#[cfg(test)]
mod no_panic_tests;
