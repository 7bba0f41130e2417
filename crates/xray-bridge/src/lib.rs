//! `xray-bridge`: a standalone bridge to AWS X-Ray and a drop-in successor of the X-Ray
//! daemon.
//!
//! - [`udp`]: the daemon protocol on UDP (SDK segments, passed through after validation).
//! - [`config`]: flags, `XRAY_BRIDGE_*` environment variables and the TOML file.
//! - [`export`]: the seam to the export pipeline (`xray-export`).
//! - [`counters`]: counters by reason, rendered as Prometheus text.
#![warn(missing_docs)]

pub mod config;
pub mod counters;
pub mod export;
pub mod udp;
