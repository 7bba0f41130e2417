//! Self-metrics: counters anyone holding a [`Metrics`] handle can read at any time.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Why a document (or a batch of OTLP spans) was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// The queue was over its byte limit (see [`crate::Overflow`]).
    QueueFull,
    /// Larger than the queue or the transport can ever take.
    TooLarge,
    /// The receiver refused it for good (a non-retryable `UnprocessedTraceSegments`
    /// entry, or a 4xx answer).
    Rejected,
    /// Every attempt the retry policy allows failed with a retryable error.
    RetriesExhausted,
    /// `shutdown` (or a flush deadline during shutdown) came before it could be sent.
    Deadline,
    /// It arrived after `shutdown`.
    Shutdown,
    /// The transport could not be set up (bad address, no credentials, no region...).
    TransportUnavailable,
    /// A transport did not report its fate: a bug, counted rather than hidden.
    Unaccounted,
    /// The disk spool was over its byte budget: its oldest records were dropped.
    SpoolFull,
    /// A spool record was damaged (torn by a crash, or bytes changed on disk) and
    /// skipped; its span count is unknown (counted as 0 spans).
    SpoolCorrupt,
}

impl DropReason {
    /// Every reason, in the order of [`MetricsSnapshot::dropped_documents`].
    pub const ALL: [DropReason; 10] = [
        DropReason::QueueFull,
        DropReason::TooLarge,
        DropReason::Rejected,
        DropReason::RetriesExhausted,
        DropReason::Deadline,
        DropReason::Shutdown,
        DropReason::TransportUnavailable,
        DropReason::Unaccounted,
        DropReason::SpoolFull,
        DropReason::SpoolCorrupt,
    ];

    /// A short snake_case name, for logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::TooLarge => "too_large",
            DropReason::Rejected => "rejected",
            DropReason::RetriesExhausted => "retries_exhausted",
            DropReason::Deadline => "deadline",
            DropReason::Shutdown => "shutdown",
            DropReason::TransportUnavailable => "transport_unavailable",
            DropReason::Unaccounted => "unaccounted",
            DropReason::SpoolFull => "spool_full",
            DropReason::SpoolCorrupt => "spool_corrupt",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const REASONS: usize = DropReason::ALL.len();

/// Upper bounds, in seconds, of the buckets of [`CallDurations`] (Prometheus' `le`); one
/// more bucket, `+Inf`, takes the rest.
pub const CALL_DURATION_BOUNDS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

const CALL_BUCKETS: usize = CALL_DURATION_BOUNDS.len() + 1;

/// How long calls to a backend took (each HTTP request, answered or failed): a histogram
/// over [`CALL_DURATION_BOUNDS`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let metrics = xray_export::Metrics::default();
/// metrics.record_call(Duration::from_millis(20));
/// let calls = metrics.snapshot().calls;
/// assert_eq!(calls.count, 1);
/// // Cumulative counts: not in the 10 ms bucket, in the 25 ms one and every later one.
/// let buckets: Vec<(f64, u64)> = calls.cumulative().collect();
/// assert_eq!(buckets[1], (0.01, 0));
/// assert_eq!(buckets[2], (0.025, 1));
/// assert_eq!(buckets.last(), Some(&(f64::INFINITY, 1)));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallDurations {
    /// Calls per bucket (not cumulative), indexed like [`CALL_DURATION_BOUNDS`], the last
    /// one over the largest bound.
    pub buckets: [u64; CALL_BUCKETS],
    /// Calls timed.
    pub count: u64,
    /// Their durations added up, in microseconds.
    pub sum_micros: u64,
}

impl CallDurations {
    /// `(upper bound in seconds, calls at most that long)` for each bucket, the last
    /// bound infinite: the `_bucket` samples of a Prometheus histogram.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let bounds = CALL_DURATION_BOUNDS.iter().copied().chain([f64::INFINITY]);
        bounds.zip(self.buckets.iter().scan(0u64, |total, n| {
            *total += n;
            Some(*total)
        }))
    }

    /// The durations added up, in seconds (the histogram's `_sum`).
    pub fn sum_seconds(&self) -> f64 {
        self.sum_micros as f64 / 1e6
    }

    fn since(&self, earlier: &CallDurations) -> CallDurations {
        CallDurations {
            buckets: std::array::from_fn(|i| self.buckets[i].saturating_sub(earlier.buckets[i])),
            count: self.count.saturating_sub(earlier.count),
            sum_micros: self.sum_micros.saturating_sub(earlier.sum_micros),
        }
    }
}

#[derive(Default)]
struct Counters {
    spans_in: AtomicU64,
    documents_in: AtomicU64,
    bytes_in: AtomicU64,
    trimmed: AtomicU64,
    documents_sent: AtomicU64,
    spans_sent: AtomicU64,
    bytes_sent: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    unprocessed: AtomicU64,
    send_errors: AtomicU64,
    queued_items: AtomicU64,
    queued_bytes: AtomicU64,
    dropped_documents: [AtomicU64; REASONS],
    dropped_spans: [AtomicU64; REASONS],
    call_buckets: [AtomicU64; CALL_BUCKETS],
    calls: AtomicU64,
    call_micros: AtomicU64,
}

/// A cheap, clonable handle on the exporter's counters.
///
/// # Examples
///
/// ```
/// let metrics = xray_export::Metrics::default();
/// metrics.record_spans_in(3);
/// assert_eq!(metrics.snapshot().spans_in, 3);
/// ```
#[derive(Clone, Default)]
pub struct Metrics(Arc<Counters>);

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.snapshot().fmt(f)
    }
}

/// The counters at one moment. All counts are totals since start, except the two
/// `queued_*` gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Spans handed to the exporter.
    pub spans_in: u64,
    /// Documents (or OTLP span batches) accepted into the queue.
    pub documents_in: u64,
    /// Bytes accepted into the queue.
    pub bytes_in: u64,
    /// Documents over 64 kB that were trimmed to fit (see `xray_model::trim_to_fit`).
    pub trimmed: u64,
    /// Documents delivered.
    pub documents_sent: u64,
    /// Spans delivered.
    pub spans_sent: u64,
    /// Bytes delivered (document bytes, without framing).
    pub bytes_sent: u64,
    /// Requests (or datagram batches) made.
    pub requests: u64,
    /// Retries: attempts after the first, per document group.
    pub retries: u64,
    /// `UnprocessedTraceSegments` entries received (retried or dropped).
    pub unprocessed: u64,
    /// Failed sends (errors and error answers), whether retried or not.
    pub send_errors: u64,
    /// Items waiting in the queue now.
    pub queued_items: u64,
    /// Bytes waiting in the queue now.
    pub queued_bytes: u64,
    /// Documents dropped, by [`DropReason`] (indexed like [`DropReason::ALL`]).
    pub dropped_documents: [u64; REASONS],
    /// Spans dropped, by [`DropReason`] (indexed like [`DropReason::ALL`]).
    pub dropped_spans: [u64; REASONS],
    /// How long the calls to the backend took (HTTP transports).
    pub calls: CallDurations,
}

impl MetricsSnapshot {
    /// Documents dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped_documents[reason.index()]
    }

    /// Spans dropped for `reason`.
    pub fn dropped_spans(&self, reason: DropReason) -> u64 {
        self.dropped_spans[reason.index()]
    }

    /// Documents dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_documents.iter().sum()
    }

    /// Spans dropped for any reason.
    pub fn dropped_spans_total(&self) -> u64 {
        self.dropped_spans.iter().sum()
    }

    /// Non-zero drop counts as `reason=count` pairs, e.g. `"deadline=3, rejected=1"`.
    pub fn drop_summary(&self) -> String {
        DropReason::ALL
            .iter()
            .filter(|r| self.dropped(**r) > 0)
            .map(|r| format!("{r}={}", self.dropped(*r)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Counts that grew from `earlier` to `self` (gauges are taken from `self`).
    pub fn since(&self, earlier: &MetricsSnapshot) -> MetricsSnapshot {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        MetricsSnapshot {
            spans_in: d(self.spans_in, earlier.spans_in),
            documents_in: d(self.documents_in, earlier.documents_in),
            bytes_in: d(self.bytes_in, earlier.bytes_in),
            trimmed: d(self.trimmed, earlier.trimmed),
            documents_sent: d(self.documents_sent, earlier.documents_sent),
            spans_sent: d(self.spans_sent, earlier.spans_sent),
            bytes_sent: d(self.bytes_sent, earlier.bytes_sent),
            requests: d(self.requests, earlier.requests),
            retries: d(self.retries, earlier.retries),
            unprocessed: d(self.unprocessed, earlier.unprocessed),
            send_errors: d(self.send_errors, earlier.send_errors),
            queued_items: self.queued_items,
            queued_bytes: self.queued_bytes,
            dropped_documents: std::array::from_fn(|i| {
                d(self.dropped_documents[i], earlier.dropped_documents[i])
            }),
            dropped_spans: std::array::from_fn(|i| {
                d(self.dropped_spans[i], earlier.dropped_spans[i])
            }),
            calls: self.calls.since(&earlier.calls),
        }
    }
}

impl Metrics {
    /// Reads every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let c = &self.0;
        MetricsSnapshot {
            spans_in: c.spans_in.load(Relaxed),
            documents_in: c.documents_in.load(Relaxed),
            bytes_in: c.bytes_in.load(Relaxed),
            trimmed: c.trimmed.load(Relaxed),
            documents_sent: c.documents_sent.load(Relaxed),
            spans_sent: c.spans_sent.load(Relaxed),
            bytes_sent: c.bytes_sent.load(Relaxed),
            requests: c.requests.load(Relaxed),
            retries: c.retries.load(Relaxed),
            unprocessed: c.unprocessed.load(Relaxed),
            send_errors: c.send_errors.load(Relaxed),
            queued_items: c.queued_items.load(Relaxed),
            queued_bytes: c.queued_bytes.load(Relaxed),
            dropped_documents: std::array::from_fn(|i| c.dropped_documents[i].load(Relaxed)),
            dropped_spans: std::array::from_fn(|i| c.dropped_spans[i].load(Relaxed)),
            calls: CallDurations {
                buckets: std::array::from_fn(|i| c.call_buckets[i].load(Relaxed)),
                count: c.calls.load(Relaxed),
                sum_micros: c.call_micros.load(Relaxed),
            },
        }
    }

    /// Times one call to the backend (see [`CallDurations`]).
    pub fn record_call(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = CALL_DURATION_BOUNDS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(CALL_DURATION_BOUNDS.len());
        self.0.call_buckets[bucket].fetch_add(1, Relaxed);
        self.0.calls.fetch_add(1, Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.0.call_micros.fetch_add(micros, Relaxed);
    }

    /// Counts spans handed to the exporter.
    pub fn record_spans_in(&self, n: u64) {
        self.0.spans_in.fetch_add(n, Relaxed);
    }

    /// Counts a document trimmed to fit the size limit.
    pub fn record_trimmed(&self) {
        self.0.trimmed.fetch_add(1, Relaxed);
    }

    /// Counts a dropped document carrying `spans` spans.
    pub fn record_dropped(&self, reason: DropReason, spans: u64) {
        self.0.dropped_documents[reason.index()].fetch_add(1, Relaxed);
        self.0.dropped_spans[reason.index()].fetch_add(spans, Relaxed);
    }

    /// Counts spans dropped inside a delivered item (e.g. OTLP `rejected_spans`).
    pub fn record_dropped_spans(&self, reason: DropReason, spans: u64) {
        self.0.dropped_spans[reason.index()].fetch_add(spans, Relaxed);
    }

    pub(crate) fn record_enqueued(&self, bytes: usize) {
        self.0.documents_in.fetch_add(1, Relaxed);
        self.0.bytes_in.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn record_sent(&self, bytes: usize, spans: u64) {
        self.0.documents_sent.fetch_add(1, Relaxed);
        self.0.spans_sent.fetch_add(spans, Relaxed);
        self.0.bytes_sent.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn record_request(&self) {
        self.0.requests.fetch_add(1, Relaxed);
    }

    pub(crate) fn record_retry(&self) {
        self.0.retries.fetch_add(1, Relaxed);
    }

    pub(crate) fn record_unprocessed(&self, n: u64) {
        self.0.unprocessed.fetch_add(n, Relaxed);
    }

    pub(crate) fn record_send_error(&self) {
        self.0.send_errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn set_queue(&self, items: usize, bytes: usize) {
        self.0.queued_items.store(items as u64, Relaxed);
        self.0.queued_bytes.store(bytes as u64, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_counted_by_reason_and_summarized() {
        let m = Metrics::default();
        let before = m.snapshot();
        m.record_dropped(DropReason::Rejected, 2);
        m.record_dropped(DropReason::Deadline, 1);
        m.record_dropped(DropReason::Deadline, 1);
        let s = m.snapshot().since(&before);
        assert_eq!(s.dropped(DropReason::Deadline), 2);
        assert_eq!(s.dropped_spans(DropReason::Rejected), 2);
        assert_eq!(s.dropped_total(), 3);
        assert_eq!(s.drop_summary(), "rejected=1, deadline=2");
    }

    #[test]
    fn reasons_index_their_own_slot() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
