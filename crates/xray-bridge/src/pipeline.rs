//! [`Sink`] over `xray-export`: one pipeline for documents (API, daemon, file or stdout)
//! and, with `--export otlp`, a second one for OTLP spans to the X-Ray OTLP endpoint
//! (daemon documents still go to `PutTraceSegments` then: the OTLP endpoint takes none).

use std::time::Duration;

use aws_config::SdkConfig;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use xray_console::{LocalTransport, Store};
use xray_export::transport::api::{ApiConfig, ApiTransport};
use xray_export::transport::daemon::UdpTransport;
use xray_export::transport::file::WriterTransport;
use xray_export::transport::otlp::{OtlpConfig, OtlpSpans, OtlpTransport};
use xray_export::{Document, DropReason, HostPort, MetricsSnapshot, Pipeline, PipelineConfig};

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
        ..Default::default()
    };
    let api = || {
        ApiTransport::new(ApiConfig {
            sdk_config: sdk.clone(),
            region: settings.region.clone(),
            endpoint_url: settings.endpoint_url.clone(),
            max_in_flight: Some(settings.concurrency),
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
        });
        Some(
            Pipeline::start(transport, config.clone())
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
