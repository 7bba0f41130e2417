//! The one seam between the receivers and the export pipeline (`xray-export`).

use std::time::Duration;

/// Where receivers put what they accepted. Implemented over `xray-export`'s pipeline;
/// receivers never send anything themselves.
pub trait Sink: Send + Sync + 'static {
    /// Queues one segment or standalone-subsegment document (JSON text, already
    /// validated, at most 64 kB), byte for byte. Returns whether it was queued; a refusal
    /// is counted and logged by the pipeline with its reason.
    fn submit(&self, json: Vec<u8>) -> bool;

    /// Appends the exporter's counters in the Prometheus text format.
    fn render_metrics(&self, out: &mut String);

    /// Stops accepting, delivers what is queued until `timeout`, and says what was lost.
    fn shutdown(&self, timeout: Duration) -> Result<(), String>;

    /// Documents dropped (for any reason) since the start.
    fn dropped_total(&self) -> u64;
}

#[cfg(test)]
pub(crate) mod memory {
    //! A sink that keeps documents in memory, for receiver unit tests.
    use super::*;
    use std::sync::Mutex;

    /// Keeps every submitted document; refuses once `capacity` is reached.
    #[derive(Debug, Default)]
    pub struct MemorySink {
        pub docs: Mutex<Vec<Vec<u8>>>,
        pub capacity: Option<usize>,
        pub refused: std::sync::atomic::AtomicU64,
    }

    impl MemorySink {
        pub fn texts(&self) -> Vec<String> {
            self.docs
                .lock()
                .unwrap()
                .iter()
                .map(|d| String::from_utf8(d.clone()).unwrap())
                .collect()
        }
    }

    impl Sink for MemorySink {
        fn submit(&self, json: Vec<u8>) -> bool {
            let mut docs = self.docs.lock().unwrap();
            if self.capacity.is_some_and(|c| docs.len() >= c) {
                self.refused
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return false;
            }
            docs.push(json);
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
            self.refused.load(std::sync::atomic::Ordering::Relaxed)
        }
    }
}
