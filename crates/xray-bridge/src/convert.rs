//! Daemon-protocol documents for the OTLP exports: parsed, in-progress ones held
//! (`xray_translate::reverse::InProgressHold`) until their complete version arrives or a
//! deadline passes, then converted to OTLP spans (`xray_translate::reverse::to_otlp`).
//! Every document that cannot go out is counted, per OTLP export and reason
//! (`xray_bridge_export_unconverted_total`), and logged.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use xray_export::transport::otlp::OtlpSpans;
use xray_model::Segment;
use xray_translate::reverse::{ConvertError, Held, InProgressHold, to_otlp};

use crate::counters::{Counter, LogLimiter, Registry};

/// Why a document did not reach the OTLP exports, as a metric label.
pub const REASONS: [&str; 6] = [
    "bad_document",
    "invalid_id",
    "invalid_time",
    "in_progress_expired",
    "in_progress_overflow",
    "in_progress_unfinished",
];

/// Most in-progress documents held at once; beyond it the oldest is given up.
pub const MAX_HELD: usize = 10_000;

/// What became of one document.
#[derive(Debug)]
pub enum Converted {
    /// Spans to queue on every OTLP export.
    Spans(Vec<OtlpSpans>),
    /// In progress: held until its complete version (or the deadline).
    Held,
    /// Not convertible: counted and logged.
    Dropped,
}

/// Converts daemon documents for the OTLP exports.
#[derive(Debug)]
pub struct Converter {
    hold: Mutex<InProgressHold>,
    /// Per OTLP export, one counter per reason of [`REASONS`].
    dropped: Vec<Vec<Counter>>,
    limiter: LogLimiter,
}

impl Converter {
    /// Counters for the OTLP exports labelled `exports`; in-progress documents are held
    /// at most `max_age`.
    pub fn new(exports: &[String], registry: &Registry, max_age: Duration) -> Self {
        let dropped = exports
            .iter()
            .map(|export| {
                REASONS
                    .iter()
                    .map(|reason| {
                        registry.counter(
                            "xray_bridge_export_unconverted_total",
                            "Daemon documents an OTLP export did not get, by reason: not a segment document, ids or times that do not convert, in-progress documents never completed.",
                            &[("export", export), ("reason", reason)],
                        )
                    })
                    .collect()
            })
            .collect();
        Converter {
            hold: Mutex::new(InProgressHold::new(max_age, MAX_HELD)),
            dropped,
            limiter: LogLimiter::new(Duration::from_secs(10)),
        }
    }

    /// Parses one daemon document (already validated for X-Ray) and converts it, or holds
    /// it while it is in progress.
    pub fn convert(&self, json: &[u8]) -> Converted {
        let doc: Segment<'static> = match serde_json::from_slice(json) {
            Ok(doc) => doc,
            Err(e) => {
                self.drop_docs("bad_document", 1, &format!("not a segment document: {e}"));
                return Converted::Dropped;
            }
        };
        let now = Instant::now();
        let (held, evicted) = self.lock().offer(doc, now);
        self.given_up(
            "in_progress_overflow",
            evicted,
            "more in-progress documents than",
        );
        match held {
            Held::Holding => Converted::Held,
            // Its complete version already went out.
            Held::Superseded => Converted::Held,
            Held::Ready(doc) => match to_otlp(&doc) {
                Ok(spans) => {
                    let (fit, over) = OtlpSpans::split_to_fit(spans);
                    if !over.is_empty() {
                        // A document of at most 64 kB is never over a request's 5 MB.
                        self.drop_docs("bad_document", 1, "larger than an OTLP request");
                    }
                    Converted::Spans(fit)
                }
                Err(e) => {
                    let reason = match e {
                        ConvertError::InvalidTime(_) => "invalid_time",
                        _ => "invalid_id",
                    };
                    let what = format!("trace {:?}: {e}", doc.trace_id.map(|t| t.to_string()));
                    self.drop_docs(reason, 1, &what);
                    Converted::Dropped
                }
            },
        }
    }

    /// Gives up the in-progress documents held past the deadline at `now`.
    pub fn expire(&self, now: Instant) {
        let expired = self.lock().expire(now);
        self.given_up("in_progress_expired", expired, "held past the deadline");
    }

    /// Gives up everything still held (at shutdown).
    pub fn drain(&self) {
        let left = self.lock().drain();
        self.given_up(
            "in_progress_unfinished",
            left,
            "still in progress at shutdown",
        );
    }

    /// In-progress documents held now.
    pub fn held(&self) -> usize {
        self.lock().len()
    }

    /// Documents dropped, summed over the OTLP exports and reasons.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().flatten().map(Counter::get).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InProgressHold> {
        self.hold.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn given_up(&self, reason: &'static str, docs: Vec<Segment<'static>>, why: &str) {
        if let Some(first) = docs.first() {
            let what = format!(
                "{why} (first: trace {}, segment {})",
                first.trace_id.map(|t| t.to_string()).unwrap_or_default(),
                first.id
            );
            self.drop_docs(reason, docs.len() as u64, &what);
        }
    }

    fn drop_docs(&self, reason: &'static str, n: u64, what: &str) {
        let index = REASONS.iter().position(|r| *r == reason).unwrap_or(0);
        for export in &self.dropped {
            export[index].add(n);
        }
        if let Some(count) = self.limiter.allow(reason) {
            tracing::warn!(
                reason,
                documents = n,
                count,
                "daemon document(s) not sent to the OTLP exports: {what}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "1-581cf771-a006649127e371903a2de979";

    fn doc(id: &str, end: &str) -> Vec<u8> {
        format!(r#"{{"name":"svc","id":"{id}","trace_id":"{TRACE}","start_time":1.5,{end}}}"#)
            .into_bytes()
    }

    #[test]
    fn documents_are_converted_held_or_counted() {
        let registry = Registry::default();
        let c = Converter::new(&["otlp".into(), "otlp:b".into()], &registry, Duration::ZERO);
        let Converted::Spans(spans) = c.convert(&doc("70de5b6f19ff9a0a", r#""end_time":2.5"#))
        else {
            panic!("complete documents convert");
        };
        assert_eq!(spans.iter().map(|s| s.span_count()).sum::<u32>(), 1);
        assert!(matches!(c.convert(b"[1,2]"), Converted::Dropped));
        assert!(matches!(
            c.convert(&doc("0000000000000000", r#""end_time":2.5"#)),
            Converted::Dropped
        ));
        assert!(matches!(
            c.convert(&doc("70de5b6f19ff9a0b", r#""end_time":-2.5"#)),
            Converted::Dropped
        ));
        assert!(matches!(
            c.convert(&doc("70de5b6f19ff9a0c", r#""in_progress":true"#)),
            Converted::Held
        ));
        assert_eq!(c.held(), 1);
        c.expire(Instant::now());
        assert_eq!(c.held(), 0);
        for export in ["otlp", "otlp:b"] {
            for (reason, n) in [
                ("bad_document", 1),
                ("invalid_id", 1),
                ("invalid_time", 1),
                ("in_progress_expired", 1),
            ] {
                let labels = [("export", export), ("reason", reason)];
                assert_eq!(
                    registry.value("xray_bridge_export_unconverted_total", &labels),
                    Some(n),
                    "{export} {reason}"
                );
            }
        }
        assert_eq!(c.dropped_total(), 8);
    }
}
