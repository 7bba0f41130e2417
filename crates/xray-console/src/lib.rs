//! Local mode for `xray-bridge`: keep the segment documents the bridge would send to AWS,
//! and show them the way the X-Ray console does, on a page served from loopback.
//!
//! - [`Store`]: the documents, kept in SQLite ([`StoreConfig`] says where and how much).
//! - [`LocalTransport`]: an `xray_export` transport that writes batches into a [`Store`].
//! - [`Filter`]: X-Ray filter expressions (`fault AND service("api")`, `responsetime > 1.5`).
//! - [`ServiceMap`]: nodes and edges with request counts, latencies and status shares.
//! - [`Console`]: the web page and its JSON API (default [`DEFAULT_ADDR`], `127.0.0.1:2020`).
//!
//! # Why SQLite
//!
//! SQLite (through `rusqlite` with the `bundled` feature, so no system library is needed)
//! is one file that survives restarts, needs no server, and gives indexes on the columns
//! the filters and the eviction use (trace id, start time, service, HTTP status, arrival
//! order). Writes are batched: one transaction per batch the export pipeline hands over.
//!
//! # Where the store lives
//!
//! [`StoreConfig::default_path`]: `$XDG_DATA_HOME/xray-bridge/local.db`, else
//! `$HOME/.local/share/xray-bridge/local.db`, else `./xray-bridge-local.db`. The store is
//! bounded by age ([`StoreConfig::max_age`], default 24 hours since a trace last received a
//! document) and by size ([`StoreConfig::max_bytes`], default 256 MiB of document JSON);
//! whole traces are removed, the first received first. The limits apply on open, on
//! every write, and every minute while a [`Console`] runs.
//!
//! # Wiring into the binary
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use xray_console::{Console, LocalTransport, Store, StoreConfig, DEFAULT_ADDR};
//! let store = Store::open(StoreConfig::default())?;
//! // The export pipeline writes into the store instead of sending to AWS:
//! let transport = LocalTransport::new(store.clone());
//! # let _ = transport;
//! // The page and the API:
//! let console = Console::bind(DEFAULT_ADDR, store).await?;
//! println!("local console on http://{}", console.local_addr());
//! // ... on shutdown:
//! console.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! # JSON API
//!
//! Every answer is JSON; errors are `{"error": "message"}` (bad filters add `"position"`,
//! the 1-based character where the expression is wrong).
//!
//! - `GET /api/traces?filter=EXPR&limit=N`: `{"traces": [{"id", "start_time", "duration",
//!   "responsetime", "http_status", "http_method", "http_url", "error", "fault",
//!   "throttle", "services", "root", "documents", "in_progress"}], "count", "matched",
//!   "total", "filter"}`, newest first; all traces (up to `limit`, default 500) without a
//!   filter. `400` for a bad filter.
//! - `GET /api/traces/{id}`: `{"id", "documents": [...]}`, the documents of one trace as
//!   received. `400` for a malformed id, `404` for an unknown one.
//! - `GET /api/servicemap`: `{"nodes": [{"id", "name", "type", "stats"}], "edges":
//!   [{"source", "target", "stats"}], "traces"}`; `stats` is `{"requests", "avg", "p95",
//!   "ok", "error", "throttle", "fault"}` with latencies in seconds and shares between 0
//!   and 1 (`error`: 4xx other than 429, `throttle`: 429, `fault`: 5xx).
//! - `GET /api/status`: `{"traces", "documents", "bytes", "version"}`; `version` changes
//!   whenever the store does (the page polls it to refresh itself).
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod demo;
mod facts;
pub mod filter;
pub mod servicemap;
mod store;
mod summary;
mod transport;
mod web;

pub use filter::{Filter, FilterError};
pub use servicemap::ServiceMap;
pub use store::{InsertReport, Store, StoreConfig, StoreError, StoreStats, TraceList};
pub use summary::TraceSummary;
pub use transport::LocalTransport;
pub use web::{Console, DEFAULT_ADDR, router, serve};
