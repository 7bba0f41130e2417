//! The pipeline: a bounded queue plus one worker thread that feeds a transport.
//!
//! Callers never wait for the network: [`Pipeline::submit`] only takes a lock to push.
//! The worker runs a Tokio current-thread runtime on its own thread with OpenTelemetry
//! telemetry suppressed, so the `tracing` events of the exporter and of the HTTP and AWS
//! libraries it drives never turn into exported spans.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry::Context;

use crate::item::Item;
use crate::metrics::{DropReason, Metrics, MetricsSnapshot};
use crate::queue::{Overflow, Queue};
use crate::transport::{RetryPolicy, SendContext, Transport, log_drop};

/// Queue and retry settings for a [`Pipeline`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineConfig {
    /// Most bytes queued (default 16 MiB); see [`Overflow`] for what happens beyond.
    pub max_queue_bytes: usize,
    /// What to drop when the queue is full.
    pub overflow: Overflow,
    /// Retries for failed sends.
    pub retry: RetryPolicy,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            max_queue_bytes: 16 * 1024 * 1024,
            overflow: Overflow::DropOldest,
            retry: RetryPolicy::default(),
        }
    }
}

/// What a flush or shutdown could not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pending} item(s) still unsent at the deadline; dropped since the last report: {dropped}")]
pub struct FlushError {
    /// Items still queued or in flight when the deadline came.
    pub pending: u64,
    /// Drops counted since the previous flush or shutdown reported, as `reason=count`
    /// pairs (empty when none).
    pub dropped: String,
}

/// A bounded queue of items and the worker thread that sends them through a transport.
///
/// The span exporter is built on it, and so can receivers of already-encoded documents
/// (daemon datagrams) or OTLP spans.
///
/// ```
/// use xray_export::{Document, Pipeline, PipelineConfig, transport::file::WriterTransport};
/// let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
/// let pipeline = Pipeline::start(WriterTransport::shared(out.clone()), PipelineConfig::default()).unwrap();
/// let doc = Document::from_json(br#"{"name":"a","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1,"end_time":2}"#.to_vec()).unwrap();
/// pipeline.submit(doc);
/// pipeline.shutdown(std::time::Duration::from_secs(5)).unwrap();
/// assert_eq!(out.lock().unwrap().iter().filter(|b| **b == b'\n').count(), 1);
/// ```
pub struct Pipeline<I: Item> {
    queue: Arc<Queue<I>>,
    metrics: Metrics,
    worker: Mutex<Option<JoinHandle<()>>>,
    name: &'static str,
    /// The counters at the last flush or shutdown, so each reports only new drops.
    reported: Mutex<MetricsSnapshot>,
    drop_log: DropLog,
}

impl<I: Item> fmt::Debug for Pipeline<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("transport", &self.name)
            .field("metrics", &self.metrics)
            .finish()
    }
}

impl<I: Item> Pipeline<I> {
    /// Starts the worker thread for `transport`, with fresh counters.
    pub fn start(transport: impl Transport<I>, config: PipelineConfig) -> std::io::Result<Self> {
        Self::start_with_metrics(transport, config, Metrics::default())
    }

    /// Starts the worker thread, counting into `metrics` (shared with the caller).
    pub fn start_with_metrics(
        transport: impl Transport<I>,
        config: PipelineConfig,
        metrics: Metrics,
    ) -> std::io::Result<Self> {
        let queue = Arc::new(Queue::new(
            config.max_queue_bytes,
            config.overflow,
            metrics.clone(),
        ));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let name = transport.name();
        let worker = {
            let queue = queue.clone();
            let metrics = metrics.clone();
            std::thread::Builder::new()
                .name(format!("xray-export-{name}"))
                .spawn(move || {
                    // Everything this thread does (our logs, HTTP and AWS SDK spans) must
                    // never become exported telemetry.
                    let _suppressed = Context::enter_telemetry_suppressed_scope();
                    let worked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        runtime.block_on(work(
                            transport,
                            queue.clone(),
                            metrics.clone(),
                            config.retry,
                        ))
                    }));
                    if worked.is_err() {
                        // A transport bug must not hang flushes or lose items silently.
                        let lost = queue.abandon(DropReason::Unaccounted);
                        tracing::error!(
                            target: "xray_export",
                            transport = name,
                            "the X-Ray export worker panicked; {lost} item(s) dropped (unaccounted), later items are refused"
                        );
                    }
                    queue.stop();
                })?
        };
        Ok(Pipeline {
            queue,
            metrics,
            worker: Mutex::new(Some(worker)),
            name,
            reported: Mutex::new(MetricsSnapshot::default()),
            drop_log: DropLog::default(),
        })
    }

    /// Queues an item; never blocks on I/O. Returns whether it was accepted (a refusal,
    /// or an older item evicted for it, is counted and logged).
    pub fn submit(&self, item: I) -> bool {
        let pushed = self.queue.push(item);
        for (item, reason) in &pushed.dropped {
            self.metrics.record_dropped(*reason, item.spans());
        }
        self.drop_log.record(&pushed.dropped);
        pushed.accepted
    }

    /// The counters this pipeline updates.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Waits until everything queued before the call is sent or dropped, or `timeout`.
    /// Fails when items are still pending, or when items were dropped since the previous
    /// flush or shutdown (the error says how many, by reason).
    pub fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        let pending = self.queue.wait_resolved(timeout);
        self.report(pending)
    }

    /// Stops accepting items, sends what is queued until `timeout`, drops (and counts) the
    /// rest with [`DropReason::Deadline`], and stops the worker. Reports like
    /// [`Pipeline::flush`]. Calling it again is harmless.
    pub fn shutdown(&self, timeout: Duration) -> Result<(), FlushError> {
        self.queue.close(Instant::now() + timeout);
        // The worker gives up at the deadline; allow it a moment to count what it drops.
        let stopped = self
            .queue
            .wait_stopped(timeout + Duration::from_millis(500));
        if stopped
            && let Some(handle) = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take()
        {
            let _ = handle.join();
        }
        let pending = if stopped {
            0
        } else {
            self.metrics.snapshot().queued_items.max(1)
        };
        self.report(pending)
    }

    fn report(&self, pending: u64) -> Result<(), FlushError> {
        self.drop_log.flush();
        let now = self.metrics.snapshot();
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        let dropped = now.since(&reported);
        *reported = now;
        if pending == 0 && dropped.dropped_total() == 0 {
            Ok(())
        } else {
            Err(FlushError {
                pending,
                dropped: dropped.drop_summary(),
            })
        }
    }

    /// Has the worker call `run` before each batch and at least every `every` when idle,
    /// on its own thread with telemetry suppressed: the span processor translates the
    /// trees it hands over and applies its time-based rules there, so that it needs no
    /// thread of its own. Replaces an earlier tick.
    pub(crate) fn set_tick(&self, every: Duration, run: Box<dyn Fn() + Send + Sync>) {
        self.queue.set_tick(every, run);
    }

    /// Wakes the worker (to run its tick now).
    pub(crate) fn wake(&self) {
        self.queue.wake.notify_one();
    }

    /// A snapshot of the counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }
}

impl<I: Item> Drop for Pipeline<I> {
    fn drop(&mut self) {
        let open = !self.queue.is_empty_and_closed().1;
        if open {
            let _ = self.shutdown(Duration::from_secs(1));
        }
    }
}

/// Log lines for items refused or evicted by the queue, at most one per reason a
/// second: under sustained overload every drop is still counted, and each line says how
/// many drops it stands for.
#[derive(Default)]
struct DropLog {
    state: Mutex<DropLogState>,
}

#[derive(Default)]
struct DropLogState {
    /// Per reason: drops not yet logged, and when a line was last written.
    pending: [(u64, Option<Instant>); DropReason::ALL.len()],
}

impl DropLog {
    const EVERY: Duration = Duration::from_secs(1);

    fn record<I: Item>(&self, dropped: &[(I, DropReason)]) {
        if dropped.is_empty() {
            return;
        }
        let _suppressed = Context::enter_telemetry_suppressed_scope();
        for (index, reason) in DropReason::ALL.into_iter().enumerate() {
            let mut matching = dropped.iter().filter(|(_, r)| *r == reason).peekable();
            if matching.peek().is_none() {
                continue;
            }
            let items: Vec<&I> = matching.map(|(i, _)| i).collect();
            let line = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let (pending, last) = &mut state.pending[index];
                *pending += items.len() as u64;
                if last.is_none_or(|t| t.elapsed() >= Self::EVERY) {
                    *last = Some(Instant::now());
                    Some(std::mem::take(pending))
                } else {
                    None
                }
            };
            if let Some(count) = line {
                let first: Vec<String> = items.iter().rev().take(5).map(|i| i.describe()).collect();
                log_drop(count, reason, &queue_cause(reason), &first);
            }
        }
    }

    /// Logs what is still unlogged (at flush and shutdown).
    fn flush(&self) {
        let _suppressed = Context::enter_telemetry_suppressed_scope();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let counts: Vec<(DropReason, u64)> = DropReason::ALL
            .into_iter()
            .zip(state.pending.iter_mut())
            .filter(|(_, (n, _))| *n > 0)
            .map(|(r, (n, _))| (r, std::mem::take(n)))
            .collect();
        drop(state);
        for (reason, count) in counts {
            log_drop(count, reason, &queue_cause(reason), &[]);
        }
    }
}

fn queue_cause(reason: DropReason) -> &'static str {
    match reason {
        DropReason::QueueFull => "queue over its byte limit",
        DropReason::TooLarge => "larger than the queue limit",
        DropReason::Shutdown => "exporter already shut down",
        _ => "refused by the queue",
    }
}

/// The worker: takes batches and sends them until the queue is closed and empty, or the
/// shutdown deadline passes.
async fn work<I: Item>(
    mut transport: impl Transport<I>,
    queue: Arc<Queue<I>>,
    metrics: Metrics,
    retry: RetryPolicy,
) {
    loop {
        if queue.deadline_passed() {
            let left = queue.take_all();
            if !left.is_empty() {
                for item in &left {
                    metrics.record_dropped(DropReason::Deadline, item.spans());
                }
                let first: Vec<String> = left.iter().take(5).map(Item::describe).collect();
                log_drop(
                    left.len() as u64,
                    DropReason::Deadline,
                    &"shutdown deadline passed before they were sent",
                    &first,
                );
                queue.finish(left.len());
            }
            return;
        }
        let idle = queue.run_tick(Duration::from_millis(250));
        let limit = transport.batch_limit();
        let mut batch = queue.take(limit);
        let linger = transport.linger();
        if !batch.is_empty()
            && batch.len() < limit
            && !linger.is_zero()
            && !queue.is_empty_and_closed().1
        {
            tokio::time::sleep(linger).await;
            batch.extend(queue.take(limit - batch.len()));
        }
        if batch.is_empty() {
            let (_, closed) = queue.is_empty_and_closed();
            if closed {
                return;
            }
            let notified = queue.wake.notified();
            // Re-check after registering, so a push in between is not missed.
            if queue.is_empty_and_closed().0 {
                let _ = tokio::time::timeout(idle, notified).await;
            }
            continue;
        }
        let n = batch.len() as u64;
        let spans: u64 = batch.iter().map(Item::spans).sum();
        let cx = SendContext::new(metrics.clone(), retry, queue.clone());
        let timed_out = {
            // A span per send, for whoever debugs the exporter; the suppressed context
            // keeps it (and the spans of the libraries below) out of the exported data.
            let span = tracing::debug_span!(
                target: "xray_export",
                "xray_export.send",
                transport = transport.name(),
                items = n
            );
            let mut send = tracing::Instrument::instrument(transport.send(batch, &cx), span);
            loop {
                match tokio::time::timeout(Duration::from_millis(50), &mut send).await {
                    Ok(()) => break false,
                    Err(_) if queue.deadline_passed() => break true,
                    Err(_) => {}
                }
            }
        };
        let accounted = cx.accounted();
        if accounted < n {
            let missing = n - accounted;
            let reason = if timed_out {
                DropReason::Deadline
            } else {
                DropReason::Unaccounted
            };
            // Which items went unreported is unknown, so their spans are estimated as
            // the batch's average (exact for segment documents: one span each).
            for _ in 0..missing {
                metrics.record_dropped(reason, (spans / n).max(1));
            }
            log_drop(
                missing,
                reason,
                &format!("{} send did not finish", transport.name()),
                &[],
            );
        }
        queue.finish(n as usize);
    }
}
