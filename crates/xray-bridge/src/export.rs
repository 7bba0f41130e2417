//! The one seam between the receivers and the export pipeline (`xray-export`).

use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use xray_export::Document;

/// Where receivers put what they accepted. Implemented over `xray-export`'s pipelines
/// ([`crate::pipeline::PipelineSink`]); receivers never send anything themselves.
pub trait Sink: Send + Sync + 'static {
    /// Queues one segment or standalone-subsegment document (JSON text, already
    /// validated, at most 64 kB), byte for byte. Returns whether it was queued; a refusal
    /// is counted and logged by the pipeline with its reason.
    fn submit(&self, json: Vec<u8>) -> bool;

    /// Queues a document encoded from a translated segment (see
    /// `xray_export::Document::encode_tree`, which keeps it within 64 kB). Returns whether
    /// it was queued, like [`Sink::submit`].
    fn submit_document(&self, doc: Document) -> bool {
        self.submit(doc.json().to_vec())
    }

    /// Whether some export takes segment documents (OTLP spans are then translated).
    fn wants_documents(&self) -> bool {
        true
    }

    /// Whether some export takes OTLP spans as they are (`otlp`, `otlp:URL`).
    fn wants_otlp(&self) -> bool {
        false
    }

    /// Queues OTLP spans as they are on the exports that take them (only called when
    /// [`Sink::wants_otlp`]). Returns whether they were queued.
    fn submit_otlp(&self, spans: &ResourceSpans) -> bool {
        let _ = spans;
        false
    }

    /// The counters of the pipeline that sends documents, when there is one (for the
    /// telemetry records).
    fn documents_snapshot(&self) -> Option<xray_export::MetricsSnapshot> {
        None
    }

    /// How full the export is, 0 to 1: queued bytes over the queue's byte limit, or the
    /// spool's bytes over its budget when that is more (0 when unknown). Receivers that
    /// can slow their clients down wait while it is high.
    fn backlog(&self) -> f64 {
        0.0
    }

    /// Appends the exporter's counters in the Prometheus text format.
    fn render_metrics(&self, out: &mut String);

    /// Why the export is degraded (a spool replaying a backlog, or unwritable), if it
    /// is; `/healthz` says so.
    fn degraded(&self) -> Option<String> {
        None
    }

    /// Stops accepting, delivers what is queued until `timeout`, and says what was lost.
    ///
    /// # Errors
    ///
    /// A message with what was still pending at `timeout` or dropped.
    fn shutdown(&self, timeout: Duration) -> Result<(), String>;

    /// Items dropped (for any reason) since the start.
    fn dropped_total(&self) -> u64;
}

#[cfg(test)]
pub(crate) mod memory {
    //! A sink that keeps documents in memory, for receiver unit tests.
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    /// Keeps every submitted document; refuses once `capacity` is reached.
    #[derive(Debug, Default)]
    pub(crate) struct MemorySink {
        pub docs: Mutex<Vec<Vec<u8>>>,
        pub otlp: Option<Mutex<Vec<ResourceSpans>>>,
        pub capacity: Option<usize>,
        pub refused: AtomicU64,
    }

    impl MemorySink {
        pub(crate) fn texts(&self) -> Vec<String> {
            self.docs
                .lock()
                .unwrap()
                .iter()
                .map(|d| String::from_utf8(d.clone()).unwrap())
                .collect()
        }

        fn room(&self, used: usize) -> bool {
            if self.capacity.is_some_and(|c| used >= c) {
                self.refused.fetch_add(1, Relaxed);
                return false;
            }
            true
        }
    }

    impl Sink for MemorySink {
        fn submit(&self, json: Vec<u8>) -> bool {
            let mut docs = self.docs.lock().unwrap();
            if !self.room(docs.len()) {
                return false;
            }
            docs.push(json);
            true
        }

        fn wants_documents(&self) -> bool {
            self.otlp.is_none()
        }

        fn wants_otlp(&self) -> bool {
            self.otlp.is_some()
        }

        fn submit_otlp(&self, spans: &ResourceSpans) -> bool {
            let Some(otlp) = &self.otlp else { return false };
            let mut otlp = otlp.lock().unwrap();
            if !self.room(otlp.len()) {
                return false;
            }
            otlp.push(spans.clone());
            true
        }

        fn render_metrics(&self, out: &mut String) {
            out.push_str("memory_sink_documents ");
            out.push_str(&self.docs.lock().unwrap().len().to_string());
            out.push('\n');
        }

        fn shutdown(&self, _: Duration) -> Result<(), String> {
            Ok(())
        }

        fn dropped_total(&self) -> u64 {
            self.refused.load(Relaxed)
        }
    }
}
