//! [`Sink`] over `xray-export`: one pipeline for documents (API, daemon, file or stdout)
//! and, with `--export otlp`, a second one for OTLP spans to the X-Ray OTLP endpoint
//! (daemon documents still go to `PutTraceSegments` then: the OTLP endpoint takes none).

use std::time::Duration;

use aws_config::SdkConfig;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use std::sync::Arc;
use xray_console::{LocalTransport, Store};

use xray_export::transport::api::{ApiConfig, ApiTransport, BackendErrors};
use xray_export::transport::daemon::UdpTransport;
use xray_export::transport::file::WriterTransport;
use xray_export::transport::otlp::{OtlpConfig, OtlpSpans, OtlpTransport};
use xray_export::{
    Document, DropReason, HostPort, MetricsSnapshot, Pipeline, PipelineConfig, RetryPolicy,
    SpoolConfig, SpoolStats,
};

use crate::config::{ExportKind, Settings};
use crate::counters::{Counter, LogLimiter, Registry, write_family, write_sample};
use crate::export::Sink;

/// The export pipelines behind the receivers.
pub struct PipelineSink {
    documents: Pipeline<Document>,
    /// The documents queue's byte limit.
    max_queue_bytes: usize,
    otlp: Option<Pipeline<OtlpSpans>>,
    invalid: Counter,
    limiter: LogLimiter,
}

impl std::fmt::Debug for PipelineSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineSink")
            .field("documents", &self.documents)
            .field("otlp", &self.otlp)
            .finish()
    }
}

/// Starts the pipelines for `settings.export`. `sdk` is the AWS configuration (needed by
/// `api` and `otlp`); `store` the local store (needed by `local`).
///
/// # Errors
///
/// A message when a destination cannot be set up (bad daemon address, export file
/// that cannot be opened, `local` without a store) or a worker cannot start.
pub fn start(
    settings: &Settings,
    sdk: Option<SdkConfig>,
    http: reqwest::Client,
    backend_errors: Arc<BackendErrors>,
    store: Option<Store>,
    registry: &Registry,
) -> Result<PipelineSink, String> {
    let both = settings.export == ExportKind::Otlp;
    let config = PipelineConfig {
        // With two pipelines the memory bound is shared between them.
        max_queue_bytes: if both {
            settings.buffer_bytes() / 2
        } else {
            settings.buffer_bytes()
        },
        retry: RetryPolicy {
            max_elapsed: settings.retry_max_elapsed,
            ..Default::default()
        },
        ..Default::default()
    };
    // Each pipeline has a spool directory of its own under `--spool` (and, like the
    // memory bound, its share of the budget).
    let spool = |name: &str| {
        settings.spool.as_ref().map(|dir| {
            SpoolConfig::new(dir.join(name))
                .with_max_bytes(if both {
                    settings.spool_max_bytes / 2
                } else {
                    settings.spool_max_bytes
                })
                .with_fsync(settings.spool_fsync)
        })
    };
    let documents_config = PipelineConfig {
        spool: spool("documents"),
        ..config.clone()
    };
    let otlp_config = PipelineConfig {
        spool: spool("otlp"),
        ..config.clone()
    };
    let config = documents_config;
    let api = || {
        ApiTransport::new(ApiConfig {
            sdk_config: sdk.clone(),
            region: settings.region.clone(),
            endpoint_url: settings.endpoint_url.clone(),
            max_in_flight: Some(settings.concurrency),
            backend_errors: Some(backend_errors.clone()),
        })
    };
    let started = match &settings.export {
        ExportKind::Api | ExportKind::Otlp => Pipeline::start(api(), config.clone()),
        ExportKind::Daemon(address) => {
            let address: HostPort = address
                .parse()
                .map_err(|e| format!("export daemon address {address:?}: {e}"))?;
            Pipeline::start(UdpTransport::new(address), config.clone())
        }
        ExportKind::File(path) => {
            let transport = WriterTransport::file(path)
                .map_err(|e| format!("cannot open export file {}: {e}", path.display()))?;
            Pipeline::start(transport, config.clone())
        }
        ExportKind::Stdout => Pipeline::start(WriterTransport::stdout(), config.clone()),
        ExportKind::Local => {
            let store = store.ok_or("--export local needs the local store")?;
            Pipeline::start(LocalTransport::new(store), config.clone())
        }
    };
    let documents = started.map_err(|e| format!("cannot start the export worker: {e}"))?;
    let otlp = if both {
        let transport = OtlpTransport::new(OtlpConfig {
            sdk_config: sdk,
            region: settings.region.clone(),
            endpoint_url: settings
                .endpoint_url
                .as_ref()
                .map(|u| format!("{}/v1/traces", u.trim_end_matches('/'))),
            http_client: Some(http),
        });
        Some(
            Pipeline::start(transport, otlp_config)
                .map_err(|e| format!("cannot start the OTLP export worker: {e}"))?,
        )
    } else {
        None
    };
    let max_queue_bytes = config.max_queue_bytes;
    Ok(PipelineSink {
        documents,
        max_queue_bytes,
        otlp,
        invalid: registry.counter(
            "xray_bridge_export_invalid_documents_total",
            "Documents the export pipeline refused as invalid (a receiver bug if ever non-zero).",
            &[],
        ),
        limiter: LogLimiter::new(Duration::from_secs(10)),
    })
}

impl PipelineSink {
    /// Each pipeline's spool counters (none without `--spool`).
    fn spools(&self) -> Vec<(&'static str, SpoolStats)> {
        let mut spools = Vec::new();
        if let Some(s) = self.documents.spool_stats() {
            spools.push(("documents", s));
        }
        if let Some(s) = self.otlp.as_ref().and_then(|p| p.spool_stats()) {
            spools.push(("otlp", s));
        }
        spools
    }
}

impl Sink for PipelineSink {
    fn submit(&self, json: Vec<u8>) -> bool {
        match Document::from_json(json) {
            Ok(doc) => self.documents.submit(doc),
            Err(e) => {
                self.invalid.inc();
                if let Some(count) = self.limiter.allow("invalid") {
                    tracing::error!(count, "export refused a document as invalid: {e}");
                }
                false
            }
        }
    }

    fn submit_document(&self, doc: Document) -> bool {
        // Encoded once, straight into the queued document: no re-parsing.
        self.documents.submit(doc)
    }

    fn wants_otlp(&self) -> bool {
        self.otlp.is_some()
    }

    fn documents_snapshot(&self) -> Option<MetricsSnapshot> {
        Some(self.documents.snapshot())
    }

    fn backlog(&self) -> f64 {
        let queued = |p: &Pipeline<_>| p.metrics().snapshot().queued_bytes;
        let mut bytes = queued(&self.documents);
        if let Some(p) = &self.otlp {
            bytes = bytes.max(p.metrics().snapshot().queued_bytes);
        }
        bytes as f64 / self.max_queue_bytes.max(1) as f64
    }

    fn submit_otlp(&self, spans: &ResourceSpans) -> bool {
        match &self.otlp {
            Some(p) => p.submit(OtlpSpans::from_resource_spans(spans)),
            None => false,
        }
    }

    fn render_metrics(&self, out: &mut String) {
        let mut pipelines = vec![("documents", self.documents.snapshot())];
        if let Some(p) = &self.otlp {
            pipelines.push(("otlp", p.snapshot()));
        }
        render(&pipelines, out);
        render_spools(&self.spools(), out);
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
        std::thread::scope(|scope| {
            let otlp = self
                .otlp
                .as_ref()
                .map(|p| scope.spawn(move || p.shutdown(timeout)));
            let mut problems = Vec::new();
            if let Err(e) = self.documents.shutdown(timeout) {
                problems.push(format!("documents: {e}"));
            }
            if let Some(handle) = otlp {
                match handle.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => problems.push(format!("otlp: {e}")),
                    Err(_) => problems.push("otlp: shutdown panicked".to_owned()),
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
        self.documents.snapshot().dropped_total()
            + self
                .otlp
                .as_ref()
                .map_or(0, |p| p.snapshot().dropped_total())
    }
}

/// Writes the exporter's counters, one `pipeline` label per pipeline.
fn render(pipelines: &[(&str, MetricsSnapshot)], out: &mut String) {
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
        for (pipeline, snap) in pipelines {
            write_sample(out, name, &[("pipeline", *pipeline)], field(snap));
        }
    }
    write_family(
        out,
        "xray_bridge_export_dropped_total",
        "Items dropped by the exporter, by reason.",
        "counter",
    );
    for (pipeline, snap) in pipelines {
        for reason in DropReason::ALL {
            write_sample(
                out,
                "xray_bridge_export_dropped_total",
                &[("pipeline", *pipeline), ("reason", reason.as_str())],
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
    for (pipeline, snap) in pipelines {
        for reason in DropReason::ALL {
            write_sample(
                out,
                "xray_bridge_export_dropped_spans_total",
                &[("pipeline", *pipeline), ("reason", reason.as_str())],
                snap.dropped_spans(reason),
            );
        }
    }
}

/// Writes the spools' gauges and counters, one `pipeline` label per pipeline. Their
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
        for (pipeline, stats) in spools {
            write_sample(out, name, &[("pipeline", *pipeline)], field(stats));
        }
    }
    let name = "xray_bridge_spool_damaged_total";
    write_family(
        out,
        name,
        "Damaged spool records skipped: torn by a crash mid-write, or corrupt.",
        "counter",
    );
    for (pipeline, stats) in spools {
        write_sample(
            out,
            name,
            &[("pipeline", *pipeline), ("kind", "torn")],
            stats.torn,
        );
        write_sample(
            out,
            name,
            &[("pipeline", *pipeline), ("kind", "corrupt")],
            stats.corrupt,
        );
    }
}
