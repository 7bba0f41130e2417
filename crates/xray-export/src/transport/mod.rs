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
#[cfg(any(feature = "xray-api", feature = "otlp"))]
mod http_client;
pub mod limit;
#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub mod otlp;
#[cfg(any(feature = "xray-api", feature = "otlp"))]
mod sigv4;

#[cfg(any(feature = "xray-api", feature = "otlp"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "xray-api", feature = "otlp"))))]
pub use http_client::LazyHttpClient;
#[cfg(any(feature = "xray-api", feature = "otlp"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "xray-api", feature = "otlp"))))]
pub use sigv4::{EndpointVariant, LazySdkConfig, SignError, Signer, regional_endpoint};

/// A boxed future returned by [`Transport::send`].
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Sends batches of queued items somewhere. Runs on the pipeline's own worker thread with
/// telemetry suppressed: inside a Tokio current-thread runtime ([`Transport::send`]), or,
/// for a transport that needs none ([`Transport::is_blocking`]: daemon UDP, files,
/// stdout), on the plain thread ([`Transport::send_blocking`]).
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

    /// Whether this transport sends without a Tokio runtime (default `false`). When it
    /// does, the pipeline's worker creates no runtime and calls
    /// [`Transport::send_blocking`] instead of [`Transport::send`].
    fn is_blocking(&self) -> bool {
        false
    }

    /// Sends `batch` on the calling thread, reporting like [`Transport::send`]; waits
    /// between retries by sleeping the thread. The pipeline calls it instead of
    /// [`Transport::send`] when [`Transport::is_blocking`] is true. The default drives
    /// [`Transport::send`] to completion on this thread (enough for a future that needs
    /// no runtime's timers or sockets).
    fn send_blocking(&mut self, batch: Vec<I>, cx: &SendContext) {
        block_on(self.send(batch, cx));
    }
}

/// Runs `future` to completion on this thread, parking it while the future waits.
///
/// Hand-written rather than `futures::executor::block_on`, which refuses to run inside
/// another of its calls: the pipeline's plain-thread worker drives its loop this way, and
/// a transport's default [`Transport::send_blocking`] drives `send` this way inside it.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};

    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
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

    fn is_blocking(&self) -> bool {
        (**self).is_blocking()
    }

    fn send_blocking(&mut self, batch: Vec<I>, cx: &SendContext) {
        (**self).send_blocking(batch, cx)
    }
}

/// How failed sends are retried: exponential backoff with jitter, within a time budget
/// (the Collector's `retry_on_failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per item, the first included (1 means no retry; default unlimited: the
    /// time budget decides).
    pub max_attempts: u32,
    /// How long an item may be retried, from its first attempt (default 300 s, the
    /// binary's `--retry-max-elapsed`).
    pub max_elapsed: Duration,
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
            max_attempts: u32::MAX,
            max_elapsed: Duration::from_secs(300),
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
    /// With a spool: items that ran out of retries (or time) are kept to be sent again,
    /// not dropped.
    defer: bool,
    deferred: AtomicU64,
    /// The deferred items' spool records and span counts.
    kept: std::sync::Mutex<Vec<(Vec<u8>, u32)>>,
}

impl fmt::Debug for SendContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendContext")
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

impl SendContext {
    pub(crate) fn new<I: Item>(
        metrics: Metrics,
        retry: RetryPolicy,
        queue: Arc<Queue<I>>,
        defer: bool,
    ) -> Self {
        SendContext {
            inner: Arc::new(ContextInner {
                metrics,
                retry,
                deadline: Box::new(move || queue.lock().deadline),
                accounted: AtomicU64::new(0),
                defer,
                deferred: AtomicU64::new(0),
                kept: Default::default(),
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
                defer: false,
                deferred: AtomicU64::new(0),
                kept: Default::default(),
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

    /// Whether another attempt may follow failure number `attempt` (1-based) of an item
    /// first tried at `first_try`, and after how long: within `max_attempts`, within
    /// `max_elapsed` of `first_try`, and before the shutdown deadline. Counts the retry.
    pub fn next_retry(&self, attempt: u32, first_try: Instant) -> Option<Duration> {
        let policy = &self.inner.retry;
        if attempt >= policy.max_attempts {
            return None;
        }
        let wait = policy.backoff(attempt);
        let now = Instant::now();
        if now + wait > first_try + policy.max_elapsed {
            return None;
        }
        if self.deadline().is_some_and(|d| now + wait >= d) {
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
    /// items' descriptions (trace ids). With a spool, items out of retries or time are
    /// kept there to be sent again instead (see [`crate::spool`]).
    pub fn dropped<'i, I: Item>(
        &self,
        items: impl IntoIterator<Item = &'i I>,
        reason: DropReason,
        cause: &dyn fmt::Display,
    ) {
        if self.inner.defer && matches!(reason, DropReason::RetriesExhausted | DropReason::Deadline)
        {
            let mut count = 0u64;
            let mut kept = self.inner.kept.lock().unwrap_or_else(|e| e.into_inner());
            for item in items {
                let mut record = Vec::with_capacity(item.size() + 17);
                if item.write_record(&mut record) {
                    kept.push((record, u32::try_from(item.spans()).unwrap_or(u32::MAX)));
                }
                count += 1;
            }
            drop(kept);
            self.inner.accounted.fetch_add(count, Relaxed);
            self.inner.deferred.fetch_add(count, Relaxed);
            tracing::info!(
                target: "xray_export",
                items = count,
                "not delivered yet ({cause}); kept in the spool to be sent again"
            );
            return;
        }
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

    /// Items kept for another try (with a spool).
    pub(crate) fn deferred(&self) -> u64 {
        self.inner.deferred.load(Relaxed)
    }

    /// The kept items' spool records and span counts.
    pub(crate) fn take_kept(&self) -> Vec<(Vec<u8>, u32)> {
        std::mem::take(&mut *self.inner.kept.lock().unwrap_or_else(|e| e.into_inner()))
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
        let start = Instant::now();
        assert!(cx.next_retry(1, start).is_some());
        assert!(cx.next_retry(2, start).is_some());
        assert!(cx.next_retry(3, start).is_none());
        assert_eq!(cx.metrics().snapshot().retries, 2);
    }

    #[test]
    fn retries_stop_at_the_time_budget() {
        let cx = SendContext::standalone(
            Metrics::default(),
            RetryPolicy {
                max_elapsed: Duration::from_millis(500),
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(10),
                ..Default::default()
            },
        );
        assert_eq!(RetryPolicy::default().max_elapsed, Duration::from_secs(300));
        assert!(cx.next_retry(1, Instant::now()).is_some());
        assert!(
            cx.next_retry(40, Instant::now()).is_some(),
            "attempts unlimited"
        );
        let long_ago = Instant::now() - Duration::from_millis(495);
        assert!(cx.next_retry(2, long_ago).is_none());
    }
}
