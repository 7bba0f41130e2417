//! [`Sink`] over `xray-export`: one pipeline per export (`--export`, repeatable), each
//! with its own queue (an equal share of the memory bound), retries and counters (label
//! `export`). A slow or failing export fills only its own queue; the others go on.
//!
//! Document exports (`api`, `daemon:`, `file:`, `stdout`, `local`) take segment
//! documents: daemon documents byte for byte, OTLP spans translated. OTLP exports (`otlp`,
//! the X-Ray OTLP endpoint, and `otlp:URL`, any OTLP/HTTP backend) take OTLP spans as
//! they came, and daemon documents converted ([`crate::convert`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use xray_console::{LocalTransport, Store};

use xray_export::transport::api::{ApiConfig, ApiTransport, BackendErrors};
use xray_export::transport::daemon::UdpTransport;
use xray_export::transport::file::WriterTransport;
use xray_export::transport::otlp::{
    OtlpCompression, OtlpConfig, OtlpSigning, OtlpSpans, OtlpTransport,
};
use xray_export::transport::{LazyHttpClient, LazySdkConfig};
use xray_export::{
    CallDurations, Document, DropReason, HostPort, MetricsSnapshot, Pipeline, PipelineConfig,
    RetryPolicy, SpoolConfig, SpoolStats,
};

use crate::config::{ExportKind, Settings};
use crate::convert::{Converted, Converter};
use crate::counters::{Counter, LogLimiter, Registry, write_family, write_sample};
use crate::export::Sink;

/// How long an in-progress daemon document is held for the OTLP exports by default.
pub const DEFAULT_IN_PROGRESS_HOLD: Duration = Duration::from_secs(60);

/// What the OTLP exports need besides their kinds.
#[derive(Clone)]
pub struct OtlpOptions {
    /// Headers of `otlp:URL` requests (API keys: never logged).
    pub headers: Vec<(String, String)>,
    /// Body compression.
    pub compression: OtlpCompression,
    /// How long in-progress daemon documents are held.
    pub in_progress_hold: Duration,
}

impl Default for OtlpOptions {
    fn default() -> Self {
        OtlpOptions {
            headers: Vec::new(),
            compression: OtlpCompression::Gzip,
            in_progress_hold: DEFAULT_IN_PROGRESS_HOLD,
        }
    }
}

impl std::fmt::Debug for OtlpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("OtlpOptions")
            .field("headers", &names)
            .field("compression", &self.compression)
            .field("in_progress_hold", &self.in_progress_hold)
            .finish()
    }
}

/// One export and its pipeline.
struct Export {
    /// The `export` label: the export as given, without credentials.
    label: String,
    channel: Channel,
    /// Whether it makes HTTP calls (`api`, `otlp`, `otlp:URL`), timed in
    /// `xray_bridge_export_call_duration_seconds`.
    calls: bool,
    /// Its spool's byte budget (with `--spool`).
    spool_budget: Option<u64>,
}

impl Export {
    /// How full it is, 0 to 1: its memory queue against `share_bytes`, or, when its spool
    /// is fuller, the spool against its budget. Items written to the spool are not in the
    /// memory queue, so without the spool's share a spool filling faster than it drains
    /// would never slow the clients down, and would drop its oldest records instead.
    fn backlog(&self, share_bytes: usize) -> f64 {
        let memory = self.channel.snapshot().queued_bytes as f64 / share_bytes.max(1) as f64;
        let spool = match (self.spool_budget, self.channel.spool_stats()) {
            (Some(budget), Some(stats)) if !stats.unwritable => {
                stats.bytes as f64 / budget.max(1) as f64
            }
            _ => 0.0,
        };
        memory.max(spool)
    }
}

enum Channel {
    Documents(Pipeline<Document>),
    Otlp(Pipeline<OtlpSpans>),
}

/// A spool directory name for an export label (`otlp:host:4318` -> `otlp_host_4318`).
fn spool_dir_name(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Channel {
    /// What it carries: `documents` or `otlp`.
    fn kind(&self) -> &'static str {
        match self {
            Channel::Documents(_) => "documents",
            Channel::Otlp(_) => "otlp",
        }
    }

    fn spool_stats(&self) -> Option<SpoolStats> {
        match self {
            Channel::Documents(p) => p.spool_stats(),
            Channel::Otlp(p) => p.spool_stats(),
        }
    }

    fn snapshot(&self) -> MetricsSnapshot {
        match self {
            Channel::Documents(p) => p.snapshot(),
            Channel::Otlp(p) => p.snapshot(),
        }
    }

    fn shutdown(&self, timeout: Duration) -> Result<(), String> {
        match self {
            Channel::Documents(p) => p.shutdown(timeout),
            Channel::Otlp(p) => p.shutdown(timeout),
        }
        .map_err(|e| e.to_string())
    }
}

/// The export pipelines behind the receivers.
pub struct PipelineSink {
    exports: Vec<Export>,
    /// Each export's queue byte limit.
    share_bytes: usize,
    /// Daemon documents for the OTLP exports, when there are any.
    converter: Option<Arc<Converter>>,
    /// Gives up held in-progress documents at their deadline.
    expiry: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
    invalid: Counter,
    limiter: LogLimiter,
}

impl std::fmt::Debug for PipelineSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let labels: Vec<&str> = self.exports.iter().map(|e| e.label.as_str()).collect();
        f.debug_struct("PipelineSink")
            .field("exports", &labels)
            .finish_non_exhaustive()
    }
}

/// Starts one pipeline per export of `exports`. `outbound` has the AWS configuration
/// (needed by `api` and `otlp`) and the HTTP client; `store` the local store (needed by
/// `local`).
///
/// # Errors
///
/// A message when a destination cannot be set up (bad daemon address, export file
/// that cannot be opened, `local` without a store) or a worker cannot start.
pub fn start(
    settings: &Settings,
    exports: &[ExportKind],
    otlp: &OtlpOptions,
    outbound: &Outbound,
    store: Option<Store>,
    registry: &Registry,
) -> Result<PipelineSink, String> {
    let count = exports.len().max(1);
    let config = PipelineConfig {
        // The memory bound is shared equally between the exports.
        max_queue_bytes: (settings.buffer_bytes() / count).max(64 * 1024),
        retry: RetryPolicy {
            max_elapsed: settings.retry_max_elapsed,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut started: Vec<Export> = Vec::with_capacity(exports.len());
    for kind in exports {
        // A second export of the same kind is told apart by its position (`file#2`).
        let base = kind.label();
        let same = started
            .iter()
            .filter(|e| e.label.split('#').next() == Some(base.as_str()))
            .count();
        let label = if same == 0 {
            base
        } else {
            format!("{base}#{}", same + 1)
        };
        // Each export has a spool directory of its own under `--spool` (`documents` and
        // `otlp` for the first of each kind of item, then named after the label) and,
        // like the memory bound, its share of the budget.
        let channel_kind = if kind.is_otlp() { "otlp" } else { "documents" };
        let first_of_kind = !started.iter().any(|e| e.channel.kind() == channel_kind);
        let dir_name = if first_of_kind {
            channel_kind.to_owned()
        } else {
            format!("{channel_kind}-{}", spool_dir_name(&label))
        };
        let spool_budget = settings
            .spool
            .is_some()
            .then(|| settings.spool_max_bytes / count as u64);
        let config = PipelineConfig {
            spool: settings
                .spool
                .as_ref()
                .zip(spool_budget)
                .map(|(dir, budget)| {
                    SpoolConfig::new(dir.join(&dir_name))
                        .with_max_bytes(budget)
                        .with_fsync(settings.spool_fsync)
                }),
            ..config.clone()
        };
        let channel = start_one(kind, settings, otlp, outbound, &store, &config)?;
        let calls = matches!(
            kind,
            ExportKind::Api | ExportKind::Otlp | ExportKind::OtlpUrl(_)
        );
        started.push(Export {
            label,
            channel,
            calls,
            spool_budget,
        });
    }
    let otlp_labels: Vec<String> = started
        .iter()
        .filter(|e| matches!(e.channel, Channel::Otlp(_)))
        .map(|e| e.label.clone())
        .collect();
    let converter = (!otlp_labels.is_empty()).then(|| {
        Arc::new(Converter::new(
            &otlp_labels,
            registry,
            otlp.in_progress_hold,
        ))
    });
    let expiry = match &converter {
        Some(converter) => Some(spawn_expiry(converter.clone(), otlp.in_progress_hold)?),
        None => None,
    };
    Ok(PipelineSink {
        exports: started,
        share_bytes: config.max_queue_bytes,
        converter,
        expiry,
        invalid: registry.counter(
            "xray_bridge_export_invalid_documents_total",
            "Documents the export pipeline refused as invalid (a receiver bug if ever non-zero).",
            &[],
        ),
        limiter: LogLimiter::new(Duration::from_secs(10)),
    })
}

/// What the exports to AWS and OTLP backends share.
#[derive(Clone)]
pub struct Outbound {
    /// The AWS configuration (needed by `api` and `otlp`), loaded on first use.
    pub sdk: Option<LazySdkConfig>,
    /// The one outbound HTTP client (proxy, TLS), built on the first call.
    pub http: LazyHttpClient,
    /// PutTraceSegments' backend errors, for the telemetry records.
    pub backend_errors: Arc<BackendErrors>,
}

fn start_one(
    kind: &ExportKind,
    settings: &Settings,
    otlp: &OtlpOptions,
    outbound: &Outbound,
    store: &Option<Store>,
    config: &PipelineConfig,
) -> Result<Channel, String> {
    let sdk = &outbound.sdk;
    let failed = |e: std::io::Error| format!("cannot start the {kind} export worker: {e}");
    let documents = |started: std::io::Result<Pipeline<Document>>| {
        started.map(Channel::Documents).map_err(failed)
    };
    let otlp_channel = |transport: OtlpTransport| {
        Pipeline::start(transport, config.clone())
            .map(Channel::Otlp)
            .map_err(failed)
    };
    match kind {
        ExportKind::Api => documents(Pipeline::start(
            ApiTransport::new(ApiConfig {
                sdk_config: sdk.clone(),
                region: settings.region.clone(),
                endpoint_url: settings.endpoint_url.clone(),
                max_in_flight: Some(settings.concurrency),
                backend_errors: Some(outbound.backend_errors.clone()),
                http_client: Some(outbound.http.clone()),
            }),
            config.clone(),
        )),
        ExportKind::Otlp => otlp_channel(OtlpTransport::new(OtlpConfig {
            sdk_config: sdk.clone(),
            region: settings.region.clone(),
            endpoint_url: settings
                .endpoint_url
                .as_ref()
                .map(|u| format!("{}/v1/traces", u.trim_end_matches('/'))),
            signing: OtlpSigning::SigV4,
            compression: otlp.compression,
            headers: Vec::new(),
            http_client: Some(outbound.http.clone()),
        })),
        ExportKind::OtlpUrl(url) => otlp_channel(OtlpTransport::new(OtlpConfig {
            sdk_config: sdk.clone(),
            region: settings.region.clone(),
            endpoint_url: Some(url.clone()),
            signing: OtlpSigning::Auto,
            compression: otlp.compression,
            headers: otlp.headers.clone(),
            http_client: Some(outbound.http.clone()),
        })),
        ExportKind::Daemon(address) => {
            let address: HostPort = address
                .parse()
                .map_err(|e| format!("export daemon address {address:?}: {e}"))?;
            documents(Pipeline::start(UdpTransport::new(address), config.clone()))
        }
        ExportKind::File(path) => {
            let transport = WriterTransport::file(path)
                .map_err(|e| format!("cannot open export file {}: {e}", path.display()))?;
            documents(Pipeline::start(transport, config.clone()))
        }
        ExportKind::Stdout => documents(Pipeline::start(WriterTransport::stdout(), config.clone())),
        ExportKind::Local => {
            let store = store
                .clone()
                .ok_or("--export local needs the local store")?;
            documents(Pipeline::start(LocalTransport::new(store), config.clone()))
        }
    }
}

/// A thread that gives up held in-progress documents at their deadline (checked ten
/// times per hold period, at most every second).
fn spawn_expiry(
    converter: Arc<Converter>,
    hold: Duration,
) -> Result<(Arc<AtomicBool>, JoinHandle<()>), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let every = (hold / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let flag = stop.clone();
    let handle = std::thread::Builder::new()
        .name("xray-bridge-hold".into())
        .spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::park_timeout(every);
                converter.expire(Instant::now());
            }
        })
        .map_err(|e| format!("cannot start the in-progress hold: {e}"))?;
    Ok((stop, handle))
}

impl PipelineSink {
    /// Each export's spool counters (none without `--spool`).
    fn spools(&self) -> Vec<(&str, SpoolStats)> {
        self.exports
            .iter()
            .filter_map(|e| Some((e.label.as_str(), e.channel.spool_stats()?)))
            .collect()
    }

    fn documents(&self) -> impl Iterator<Item = &Pipeline<Document>> {
        self.exports.iter().filter_map(|e| match &e.channel {
            Channel::Documents(p) => Some(p),
            Channel::Otlp(_) => None,
        })
    }

    fn otlp(&self) -> impl Iterator<Item = &Pipeline<OtlpSpans>> {
        self.exports.iter().filter_map(|e| match &e.channel {
            Channel::Otlp(p) => Some(p),
            Channel::Documents(_) => None,
        })
    }

    /// Queues a copy of each item on every OTLP export; says whether any took them all.
    fn submit_otlp_items(&self, items: Vec<OtlpSpans>) -> bool {
        let mut accepted = false;
        for pipeline in self.otlp() {
            let mut all = true;
            for item in &items {
                all &= pipeline.submit(item.clone());
            }
            accepted |= all;
        }
        accepted
    }
}

impl Sink for PipelineSink {
    fn submit(&self, json: Vec<u8>) -> bool {
        let mut accepted = false;
        if let Some(converter) = &self.converter {
            accepted |= match converter.convert(&json) {
                Converted::Spans(items) => self.submit_otlp_items(items),
                Converted::Held => true,
                Converted::Dropped => false,
            };
        }
        if self.documents().next().is_none() {
            return accepted;
        }
        match Document::from_json(json) {
            Ok(doc) => accepted | self.submit_document(doc),
            Err(e) => {
                self.invalid.inc();
                if let Some(count) = self.limiter.allow("invalid") {
                    tracing::error!(count, "export refused a document as invalid: {e}");
                }
                accepted
            }
        }
    }

    fn submit_document(&self, doc: Document) -> bool {
        // Encoded once, straight into the queued document: no re-parsing. The last export
        // takes the document itself; only the others get copies.
        let mut exports = self.documents().peekable();
        let mut accepted = false;
        while let Some(pipeline) = exports.next() {
            if exports.peek().is_none() {
                return accepted | pipeline.submit(doc);
            }
            accepted |= pipeline.submit(doc.clone());
        }
        accepted
    }

    fn documents_snapshot(&self) -> Option<MetricsSnapshot> {
        // The telemetry records describe PutTraceSegments: the api export, else the first
        // document export.
        let api = self
            .exports
            .iter()
            .find(|e| e.label == "api")
            .map(|e| e.channel.snapshot());
        api.or_else(|| {
            self.exports.iter().find_map(|e| match &e.channel {
                Channel::Documents(p) => Some(p.snapshot()),
                Channel::Otlp(_) => None,
            })
        })
    }

    fn wants_documents(&self) -> bool {
        self.documents().next().is_some()
    }

    fn wants_otlp(&self) -> bool {
        self.otlp().next().is_some()
    }

    fn backlog(&self) -> f64 {
        // The emptiest export: a slow or failing export fills (and drops from) its own
        // queue and spool, but never slows the clients, and so the other exports, down.
        self.exports
            .iter()
            .map(|e| e.backlog(self.share_bytes))
            .reduce(f64::min)
            .unwrap_or(0.0)
    }

    fn submit_otlp(&self, spans: &ResourceSpans) -> bool {
        self.submit_otlp_items(vec![OtlpSpans::from_resource_spans(spans)])
    }

    fn render_metrics(&self, out: &mut String) {
        let exports: Vec<(&str, MetricsSnapshot)> = self
            .exports
            .iter()
            .map(|e| (e.label.as_str(), e.channel.snapshot()))
            .collect();
        render(&exports, out);
        let calls: Vec<(&str, CallDurations)> = self
            .exports
            .iter()
            .filter(|e| e.calls)
            .map(|e| (e.label.as_str(), e.channel.snapshot().calls))
            .collect();
        render_calls(&calls, out);
        render_spools(&self.spools(), out);
        if let Some(converter) = &self.converter {
            write_family(
                out,
                "xray_bridge_export_in_progress_held",
                "In-progress daemon documents held for the OTLP exports until they complete.",
                "gauge",
            );
            let none: [(&str, &str); 0] = [];
            write_sample(
                out,
                "xray_bridge_export_in_progress_held",
                &none,
                converter.held() as u64,
            );
        }
    }

    fn degraded(&self) -> Option<String> {
        let replaying: Vec<String> = self
            .spools()
            .into_iter()
            .filter(|(_, s)| s.replaying || s.unwritable)
            .map(|(name, s)| {
                if s.unwritable {
                    format!("{name}: spool unwritable, memory only")
                } else {
                    format!(
                        "{name}: spool replaying {} record(s), oldest {} s",
                        s.records,
                        s.oldest_age.as_secs()
                    )
                }
            })
            .collect();
        (!replaying.is_empty()).then(|| replaying.join("; "))
    }

    fn shutdown(&self, timeout: Duration) -> Result<(), String> {
        if let Some(converter) = &self.converter {
            converter.drain();
        }
        if let Some((stop, handle)) = &self.expiry {
            stop.store(true, Ordering::Relaxed);
            handle.thread().unpark();
        }
        // Every export drains at once, each within the same deadline.
        std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .exports
                .iter()
                .map(|e| {
                    (
                        e.label.as_str(),
                        scope.spawn(move || e.channel.shutdown(timeout)),
                    )
                })
                .collect();
            let mut problems = Vec::new();
            for (label, handle) in handles {
                match handle.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => problems.push(format!("{label}: {e}")),
                    Err(_) => problems.push(format!("{label}: shutdown panicked")),
                }
            }
            if problems.is_empty() {
                Ok(())
            } else {
                Err(problems.join("; "))
            }
        })
    }

    fn dropped_total(&self) -> u64 {
        let exporters: u64 = self
            .exports
            .iter()
            .map(|e| e.channel.snapshot().dropped_total())
            .sum();
        exporters + self.converter.as_ref().map_or(0, |c| c.dropped_total())
    }
}

/// Writes the exporters' counters, one `export` label per export.
fn render(exports: &[(&str, MetricsSnapshot)], out: &mut String) {
    type Field = fn(&MetricsSnapshot) -> u64;
    let simple: [(&str, &str, &str, Field); 13] = [
        (
            "xray_bridge_export_spans_in_total",
            "Spans handed to the exporter.",
            "counter",
            |s| s.spans_in,
        ),
        (
            "xray_bridge_export_items_in_total",
            "Documents (or OTLP span groups) accepted into the queue.",
            "counter",
            |s| s.documents_in,
        ),
        (
            "xray_bridge_export_bytes_in_total",
            "Bytes accepted into the queue.",
            "counter",
            |s| s.bytes_in,
        ),
        (
            "xray_bridge_export_trimmed_total",
            "Documents trimmed to fit 64 kB.",
            "counter",
            |s| s.trimmed,
        ),
        (
            "xray_bridge_export_items_sent_total",
            "Documents (or OTLP span groups) delivered.",
            "counter",
            |s| s.documents_sent,
        ),
        (
            "xray_bridge_export_spans_sent_total",
            "Spans delivered.",
            "counter",
            |s| s.spans_sent,
        ),
        (
            "xray_bridge_export_bytes_sent_total",
            "Bytes delivered.",
            "counter",
            |s| s.bytes_sent,
        ),
        (
            "xray_bridge_export_requests_total",
            "Requests (or datagram batches) made.",
            "counter",
            |s| s.requests,
        ),
        (
            "xray_bridge_export_retries_total",
            "Retried attempts.",
            "counter",
            |s| s.retries,
        ),
        (
            "xray_bridge_export_unprocessed_total",
            "UnprocessedTraceSegments entries received.",
            "counter",
            |s| s.unprocessed,
        ),
        (
            "xray_bridge_export_send_errors_total",
            "Failed sends, retried or not.",
            "counter",
            |s| s.send_errors,
        ),
        (
            "xray_bridge_export_queue_items",
            "Items waiting in the queue.",
            "gauge",
            |s| s.queued_items,
        ),
        (
            "xray_bridge_export_queue_bytes",
            "Bytes waiting in the queue.",
            "gauge",
            |s| s.queued_bytes,
        ),
    ];
    for (name, help, kind, field) in simple {
        write_family(out, name, help, kind);
        for (export, snap) in exports {
            write_sample(out, name, &[("export", *export)], field(snap));
        }
    }
    write_family(
        out,
        "xray_bridge_export_dropped_total",
        "Items dropped by the exporter, by reason.",
        "counter",
    );
    for (export, snap) in exports {
        for reason in DropReason::ALL {
            write_sample(
                out,
                "xray_bridge_export_dropped_total",
                &[("export", *export), ("reason", reason.as_str())],
                snap.dropped(reason),
            );
        }
    }
    write_family(
        out,
        "xray_bridge_export_dropped_spans_total",
        "Spans dropped by the exporter, by reason.",
        "counter",
    );
    for (export, snap) in exports {
        for reason in DropReason::ALL {
            write_sample(
                out,
                "xray_bridge_export_dropped_spans_total",
                &[("export", *export), ("reason", reason.as_str())],
                snap.dropped_spans(reason),
            );
        }
    }
}

/// Writes how long each HTTP export's calls took, as one Prometheus histogram.
fn render_calls(exports: &[(&str, CallDurations)], out: &mut String) {
    let name = "xray_bridge_export_call_duration_seconds";
    if exports.is_empty() {
        return;
    }
    write_family(
        out,
        name,
        "How long calls to the backend took (each HTTP request, answered or failed).",
        "histogram",
    );
    for (export, calls) in exports {
        for (bound, count) in calls.cumulative() {
            let le = if bound.is_infinite() {
                "+Inf".to_owned()
            } else {
                bound.to_string()
            };
            write_sample(
                out,
                &format!("{name}_bucket"),
                &[("export", *export), ("le", le.as_str())],
                count,
            );
        }
        let labels = [("export", *export)];
        write_sample(out, &format!("{name}_sum"), &labels, calls.sum_seconds());
        write_sample(out, &format!("{name}_count"), &labels, calls.count);
    }
}

/// Writes the spools' gauges and counters, one `export` label per export. Their
/// drops are in `xray_bridge_export_dropped_total` (`spool_full`, `spool_corrupt`).
fn render_spools(spools: &[(&str, SpoolStats)], out: &mut String) {
    if spools.is_empty() {
        return;
    }
    type Field = fn(&SpoolStats) -> u64;
    let families: [(&str, &str, &str, Field); 9] = [
        (
            "xray_bridge_spool_bytes",
            "Bytes of spool files on disk.",
            "gauge",
            |s| s.bytes,
        ),
        (
            "xray_bridge_spool_records",
            "Records in the spool not yet delivered.",
            "gauge",
            |s| s.records,
        ),
        (
            "xray_bridge_spool_oldest_age_seconds",
            "Age of the oldest record not yet delivered.",
            "gauge",
            |s| s.oldest_age.as_secs(),
        ),
        (
            "xray_bridge_spool_replaying",
            "1 while a backlog from a failure or a restart is sent again.",
            "gauge",
            |s| u64::from(s.replaying),
        ),
        (
            "xray_bridge_spool_unwritable",
            "1 when the spool cannot be written and the export runs on memory only.",
            "gauge",
            |s| u64::from(s.unwritable),
        ),
        (
            "xray_bridge_spool_written_total",
            "Records written to the spool.",
            "counter",
            |s| s.written,
        ),
        (
            "xray_bridge_spool_replayed_total",
            "Records delivered from a backlog (an earlier run, or sent again after a failure).",
            "counter",
            |s| s.replayed,
        ),
        (
            "xray_bridge_spool_write_errors_total",
            "Failed spool writes (the item went to memory instead).",
            "counter",
            |s| s.write_errors,
        ),
        (
            "xray_bridge_spool_dropped_full_total",
            "Records dropped from the spool to stay within --spool-max-bytes.",
            "counter",
            |s| s.dropped_full,
        ),
    ];
    for (name, help, kind, field) in families {
        write_family(out, name, help, kind);
        for (export, stats) in spools {
            write_sample(out, name, &[("export", *export)], field(stats));
        }
    }
    let name = "xray_bridge_spool_damaged_total";
    write_family(
        out,
        name,
        "Damaged spool records skipped: torn by a crash mid-write, or corrupt.",
        "counter",
    );
    for (export, stats) in spools {
        write_sample(
            out,
            name,
            &[("export", *export), ("kind", "torn")],
            stats.torn,
        );
        write_sample(
            out,
            name,
            &[("export", *export), ("kind", "corrupt")],
            stats.corrupt,
        );
    }
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound").finish_non_exhaustive()
    }
}
