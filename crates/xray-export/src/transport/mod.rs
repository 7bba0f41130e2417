//! Transports: where queued items go, and the contract every transport keeps.
//!
//! A transport receives a batch and must report every item in it exactly once through
//! [`SendContext::delivered`] or [`SendContext::dropped`]. The [`crate::Pipeline`] counts
//! anything left unreported as [`DropReason::Unaccounted`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::item::Item;
use crate::metrics::{DropReason, Metrics};
use crate::queue::Queue;

#[cfg(feature = "xray-api")]
#[cfg_attr(docsrs, doc(cfg(feature = "xray-api")))]
pub mod api;
pub mod daemon;
pub mod file;
#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub mod otlp;

/// A boxed future returned by [`Transport::send`].
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Sends batches of queued items somewhere. Runs on the pipeline's own worker thread,
/// inside a Tokio current-thread runtime with telemetry suppressed.
pub trait Transport<I: Item>: Send + 'static {
    /// A short name for logs (`"udp"`, `"xray-api"`, ...).
    fn name(&self) -> &'static str;

    /// The most items handed to one [`Transport::send`] call.
    fn batch_limit(&self) -> usize {
        500
    }

    /// How long the worker waits for more items when a batch is not full (default 0:
    /// send at once). Transports that pay per request use a few milliseconds.
    fn linger(&self) -> Duration {
        Duration::ZERO
    }

    /// Sends `batch`, reporting each item's fate through `cx`.
    fn send<'a>(&'a mut self, batch: Vec<I>, cx: &'a SendContext) -> SendFuture<'a>;
}

impl<I: Item> Transport<I> for Box<dyn Transport<I>> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn batch_limit(&self) -> usize {
        (**self).batch_limit()
    }

    fn linger(&self) -> Duration {
        (**self).linger()
    }

    fn send<'a>(&'a mut self, batch: Vec<I>, cx: &'a SendContext) -> SendFuture<'a> {
        (**self).send(batch, cx)
    }
}

/// How failed sends are retried: exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per item, the first included (1 means no retry).
    pub max_attempts: u32,
    /// The first backoff's upper bound.
    pub initial_backoff: Duration,
    /// The largest backoff.
    pub max_backoff: Duration,
    /// How long one request may take before it counts as a (retryable) timeout.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (after `attempt` failures, 1-based): a
    /// random duration between half and all of `initial_backoff * 2^(attempt-1)`, capped
    /// by `max_backoff` ("equal jitter": spread out, never near zero).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let cap = self
            .initial_backoff
            .saturating_mul(1 << exp)
            .min(self.max_backoff);
        let nanos = cap.as_nanos().min(u64::MAX as u128) as u64;
        Duration::from_nanos(fastrand::u64(nanos / 2..=nanos.max(1)))
    }
}

/// What a transport reports through; shared by the tasks of one batch.
#[derive(Clone)]
pub struct SendContext {
    inner: Arc<ContextInner>,
}

struct ContextInner {
    metrics: Metrics,
    retry: RetryPolicy,
    deadline: Box<dyn Fn() -> Option<Instant> + Send + Sync>,
    accounted: AtomicU64,
}

impl fmt::Debug for SendContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendContext")
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

impl SendContext {
    pub(crate) fn new<I: Item>(metrics: Metrics, retry: RetryPolicy, queue: Arc<Queue<I>>) -> Self {
        SendContext {
            inner: Arc::new(ContextInner {
                metrics,
                retry,
                deadline: Box::new(move || queue.lock().deadline),
                accounted: AtomicU64::new(0),
            }),
        }
    }

    /// A context for driving a transport directly (tests, tools): no deadline.
    pub fn standalone(metrics: Metrics, retry: RetryPolicy) -> Self {
        SendContext {
            inner: Arc::new(ContextInner {
                metrics,
                retry,
                deadline: Box::new(|| None),
                accounted: AtomicU64::new(0),
            }),
        }
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The shutdown deadline, once shutdown has begun.
    pub fn deadline(&self) -> Option<Instant> {
        (self.inner.deadline)()
    }

    /// Whether another attempt may follow failure number `attempt` (1-based), and after
    /// how long: within `max_attempts` and before the shutdown deadline. Counts the retry.
    pub fn next_retry(&self, attempt: u32) -> Option<Duration> {
        if attempt >= self.inner.retry.max_attempts {
            return None;
        }
        let wait = self.inner.retry.backoff(attempt);
        if self.deadline().is_some_and(|d| Instant::now() + wait >= d) {
            return None;
        }
        self.inner.metrics.record_retry();
        Some(wait)
    }

    /// Counts a request (or datagram batch) made.
    pub fn request(&self) {
        self.inner.metrics.record_request();
    }

    /// Counts a failed send (an error or an error answer).
    pub fn send_error(&self) {
        self.inner.metrics.record_send_error();
    }

    /// Counts `UnprocessedTraceSegments` entries.
    pub fn unprocessed(&self, n: usize) {
        self.inner.metrics.record_unprocessed(n as u64);
    }

    /// Reports an item delivered.
    pub fn delivered<I: Item>(&self, item: &I) {
        self.inner.metrics.record_sent(item.size(), item.spans());
        self.inner.accounted.fetch_add(1, Relaxed);
    }

    /// Reports items dropped, logging one line with the reason, the cause and the first
    /// items' descriptions (trace ids).
    pub fn dropped<'i, I: Item>(
        &self,
        items: impl IntoIterator<Item = &'i I>,
        reason: DropReason,
        cause: &dyn fmt::Display,
    ) {
        let mut count = 0u64;
        let mut first = Vec::new();
        for item in items {
            self.inner.metrics.record_dropped(reason, item.spans());
            if first.len() < 5 {
                first.push(item.describe());
            }
            count += 1;
        }
        if count > 0 {
            self.inner.accounted.fetch_add(count, Relaxed);
            log_drop(count, reason, cause, &first);
        }
    }

    pub(crate) fn accounted(&self) -> u64 {
        self.inner.accounted.load(Relaxed)
    }
}

/// The one log line for dropped items.
pub(crate) fn log_drop(count: u64, reason: DropReason, cause: &dyn fmt::Display, first: &[String]) {
    tracing::warn!(
        target: "xray_export",
        dropped = count,
        reason = reason.as_str(),
        "dropped {count} X-Ray item(s) ({reason}): {cause}; {}",
        first.join(", ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            ..Default::default()
        };
        for _ in 0..50 {
            assert!(p.backoff(1) <= Duration::from_millis(100));
            assert!(p.backoff(1) >= Duration::from_millis(50));
            assert!(p.backoff(3) <= Duration::from_millis(400));
            assert!(p.backoff(30) <= Duration::from_millis(1000));
        }
        let spread: std::collections::HashSet<_> = (0..20).map(|_| p.backoff(4)).collect();
        assert!(spread.len() > 1, "jitter");
    }

    #[test]
    fn retries_stop_at_the_budget() {
        let cx = SendContext::standalone(
            Metrics::default(),
            RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_millis(1),
                ..Default::default()
            },
        );
        assert!(cx.next_retry(1).is_some());
        assert!(cx.next_retry(2).is_some());
        assert!(cx.next_retry(3).is_none());
        assert_eq!(cx.metrics().snapshot().retries, 2);
    }
}
