//! The pipeline: a bounded queue plus one worker thread that feeds a transport.
//!
//! Callers never wait for the network: [`Pipeline::submit`] only takes a lock to push,
//! and wakes the worker only when it sleeps. The worker is a thread of its own with
//! OpenTelemetry telemetry suppressed, so the `tracing` events of the exporter and of the
//! HTTP and AWS libraries it drives never turn into exported spans. For a transport that
//! needs a Tokio runtime (the X-Ray API, the OTLP endpoint) it runs a current-thread
//! runtime; for the others (daemon UDP, files, stdout: [`Transport::is_blocking`]) it
//! creates none, sends from the plain thread and sleeps on a condition variable.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry::Context;

use crate::item::Item;
use crate::log_limit::LogLimiter;
use crate::metrics::{DropReason, Metrics, MetricsSnapshot};
use crate::queue::{Overflow, Queue, TickWork};
use crate::spool::{AppendError, Spool, SpoolConfig, SpoolError, SpoolStats};
use crate::transport::{RetryPolicy, SendContext, Transport, block_on, log_drop};
use crate::wake::Wake;

/// Queue and retry settings for a [`Pipeline`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineConfig {
    /// Most bytes queued in memory (default 16 MiB); see [`Overflow`] for what happens
    /// beyond.
    pub max_queue_bytes: usize,
    /// What to drop when the queue is full.
    pub overflow: Overflow,
    /// Retries for failed sends.
    pub retry: RetryPolicy,
    /// A disk spool (default none). With one, every accepted item is written to it
    /// before [`Pipeline::submit`] returns and is removed once delivered; items that run
    /// out of retries stay there and are sent again later, after a restart too. When
    /// the disk fails, items go to the memory queue (one warning, drops counted).
    pub spool: Option<SpoolConfig>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            max_queue_bytes: 16 * 1024 * 1024,
            overflow: Overflow::DropOldest,
            retry: RetryPolicy::default(),
            spool: None,
        }
    }
}

/// A pipeline's spool, or why it has none.
enum SpoolState {
    None,
    Open(Arc<Spool>),
    /// The directory could not be used: memory only (the warning was logged).
    Unusable,
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
/// # Examples
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
    driver: Driver,
    metrics: Metrics,
    worker: Mutex<Option<JoinHandle<()>>>,
    name: &'static str,
    /// The counters at the last flush or shutdown, so each reports only new drops.
    reported: Mutex<MetricsSnapshot>,
    drop_log: DropLog,
    spool: SpoolState,
}

impl<I: Item> fmt::Debug for Pipeline<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("transport", &self.name)
            .field("runtime", &(self.driver == Driver::Runtime))
            .field("metrics", &self.metrics)
            .finish()
    }
}

impl<I: Item> Pipeline<I> {
    /// Starts the worker thread for `transport`, with fresh counters.
    ///
    /// # Errors
    ///
    /// As [`Pipeline::start_with_metrics`].
    pub fn start(transport: impl Transport<I>, config: PipelineConfig) -> std::io::Result<Self> {
        Self::start_with_metrics(transport, config, Metrics::default())
    }

    /// Starts the worker thread, counting into `metrics` (shared with the caller).
    ///
    /// With a spool, what an earlier run left in it is sent first. A spool directory
    /// held by another process fails the start; one that cannot be created or written
    /// is warned about once and the pipeline runs on memory only.
    ///
    /// # Errors
    ///
    /// The I/O error when the worker's thread (or the runtime of a transport that needs
    /// one) cannot be created, or when the spool directory is held by another process.
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
        let spool = match &config.spool {
            None => SpoolState::None,
            Some(spool) => match Spool::open(spool) {
                Ok(spool) => {
                    queue.count_external(spool.unread());
                    SpoolState::Open(Arc::new(spool))
                }
                Err(e @ SpoolError::Locked(_)) => {
                    return Err(std::io::Error::new(std::io::ErrorKind::ResourceBusy, e));
                }
                Err(e) => {
                    tracing::warn!(
                        target: "xray_export",
                        transport = transport.name(),
                        "cannot use the spool ({e}); items stay in memory only (bounded, drops counted)"
                    );
                    SpoolState::Unusable
                }
            },
        };
        let worker_spool = match &spool {
            SpoolState::Open(s) => Some(s.clone()),
            _ => None,
        };
        let driver = if transport.is_blocking() {
            Driver::Thread
        } else {
            Driver::Runtime
        };
        queue.wake.set_blocking(driver == Driver::Thread);
        let runtime = match driver {
            Driver::Thread => None,
            Driver::Runtime => Some(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?,
            ),
        };
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
                        let run = work(
                            transport,
                            queue.clone(),
                            metrics.clone(),
                            config.retry,
                            worker_spool.clone(),
                            driver,
                        );
                        match &runtime {
                            Some(runtime) => runtime.block_on(run),
                            // Every wait of the thread driver blocks the thread: the loop
                            // is done on its first poll, no runtime needed.
                            None => block_on(run),
                        }
                    }));
                    if let Some(spool) = &worker_spool {
                        spool.sync();
                    }
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
            driver,
            metrics,
            worker: Mutex::new(Some(worker)),
            name,
            reported: Mutex::new(MetricsSnapshot::default()),
            drop_log: DropLog::default(),
            spool,
        })
    }

    /// Queues an item; never waits for the network. Returns whether it was accepted (a
    /// refusal, or an older item evicted for it, is counted and logged). With a spool,
    /// the item is written to it first (a file write; an fsync too with
    /// [`crate::FsyncPolicy::Always`]).
    pub fn submit(&self, item: I) -> bool {
        if let SpoolState::Open(spool) = &self.spool
            && !self.queue.is_empty_and_closed().1
        {
            let mut record = Vec::with_capacity(item.size() + 17);
            if item.write_record(&mut record) {
                let spans = u32::try_from(item.spans()).unwrap_or(u32::MAX);
                match spool.append(&record, spans) {
                    Ok(evicted) => {
                        self.metrics.record_enqueued(item.size());
                        for spans in &evicted {
                            self.metrics
                                .record_dropped(DropReason::SpoolFull, u64::from(*spans));
                        }
                        // Evicted records were pending; they are resolved now.
                        self.queue.count_external(1);
                        self.queue.finish(evicted.len());
                        return true;
                    }
                    // Too large for the spool, or the disk failed (warned once): the
                    // memory queue takes it.
                    Err(AppendError::TooLarge | AppendError::Unwritable(_)) => {}
                }
            }
        }
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
    ///
    /// # Errors
    ///
    /// [`FlushError`] with the items still pending and the drops since the last report.
    pub fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        let pending = self.queue.wait_resolved(timeout);
        self.report(pending)
    }

    /// Stops accepting items, sends what is queued until `timeout`, drops (and counts) the
    /// rest with [`DropReason::Deadline`], and stops the worker. Reports like
    /// [`Pipeline::flush`]. Calling it again is harmless.
    ///
    /// # Errors
    ///
    /// [`FlushError`] when the worker did not stop by the deadline, or when items were
    /// dropped since the last report (those left at the deadline included).
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
        if let SpoolState::Open(spool) = &self.spool {
            let kept = spool.stats().records;
            if kept > 0 {
                tracing::info!(
                    target: "xray_export",
                    transport = self.name,
                    records = kept,
                    dir = %spool.dir().display(),
                    "{kept} record(s) not delivered yet are kept in the spool for the next start"
                );
            }
        }
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

    /// Has the worker run `work` before each batch and at least every `every` when idle,
    /// on its own thread with telemetry suppressed: the span processor translates the
    /// trees it hands over and applies its time-based rules there, so that it needs no
    /// thread of its own. Replaces an earlier tick.
    pub(crate) fn set_tick(&self, every: Duration, work: Box<dyn TickWork>) {
        self.queue.set_tick(every, work);
    }

    /// Wakes the worker to run its tick now, if it sleeps (call after changing, under a
    /// lock, what the tick's `pending` reads).
    pub(crate) fn wake(&self) {
        self.queue.wake.notify();
    }

    /// Whether the worker runs a Tokio runtime (for a transport that needs one) rather
    /// than sending from its plain thread ([`Transport::is_blocking`]).
    pub fn uses_runtime(&self) -> bool {
        self.driver == Driver::Runtime
    }

    /// A snapshot of the counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// The spool's counters and gauges, when a spool was configured (a spool that could
    /// not be opened reports itself unwritable).
    pub fn spool_stats(&self) -> Option<SpoolStats> {
        match &self.spool {
            SpoolState::None => None,
            SpoolState::Open(spool) => Some(spool.stats()),
            SpoolState::Unusable => Some(SpoolStats {
                unwritable: true,
                ..Default::default()
            }),
        }
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
struct DropLog(LogLimiter);

impl Default for DropLog {
    fn default() -> Self {
        DropLog(LogLimiter::new(Duration::from_secs(1)))
    }
}

impl DropLog {
    fn record<I: Item>(&self, dropped: &[(I, DropReason)]) {
        if dropped.is_empty() {
            return;
        }
        let _suppressed = Context::enter_telemetry_suppressed_scope();
        for reason in DropReason::ALL {
            let items: Vec<&I> = dropped
                .iter()
                .filter(|(_, r)| *r == reason)
                .map(|(i, _)| i)
                .collect();
            if items.is_empty() {
                continue;
            }
            if let Some(count) = self.0.allow_n(reason.as_str(), items.len() as u64) {
                let first: Vec<String> = items.iter().rev().take(5).map(|i| i.describe()).collect();
                log_drop(count, reason, &queue_cause(reason), &first);
            }
        }
    }

    /// Logs what is still unlogged (at flush and shutdown).
    fn flush(&self) {
        let _suppressed = Context::enter_telemetry_suppressed_scope();
        for (kind, count) in self.0.take_pending() {
            if let Some(reason) = DropReason::ALL.into_iter().find(|r| r.as_str() == kind) {
                log_drop(count, reason, &queue_cause(reason), &[]);
            }
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

/// How the worker waits and sends: on a Tokio runtime, or on its plain thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driver {
    /// [`Transport::send_blocking`]; waits block the thread.
    Thread,
    /// [`Transport::send`] inside a current-thread runtime; waits are the runtime's.
    Runtime,
}

impl Driver {
    async fn sleep(self, time: Duration) {
        match self {
            Driver::Thread => std::thread::sleep(time),
            Driver::Runtime => tokio::time::sleep(time).await,
        }
    }

    /// Waits for a wake (or `idle`); the caller marked the worker sleeping and found no
    /// work after that.
    async fn wait(self, wake: &Wake, idle: Duration) {
        match self {
            Driver::Thread => wake.wait_blocking(idle),
            Driver::Runtime => wake.wait_async(idle).await,
        }
    }
}

/// The worker: takes batches (from the spool first, then from memory) and sends them
/// until the queue is closed and everything is sent, or the shutdown deadline passes.
/// What is left in the spool at the deadline stays there for the next start.
async fn work<I: Item>(
    mut transport: impl Transport<I>,
    queue: Arc<Queue<I>>,
    metrics: Metrics,
    retry: RetryPolicy,
    spool: Option<Arc<Spool>>,
    driver: Driver,
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
        if let Some(spool) = &spool {
            spool.tick();
            if send_from_spool(
                &mut transport,
                spool,
                &queue,
                &metrics,
                retry,
                limit,
                driver,
            )
            .await
            {
                continue;
            }
        }
        let mut batch = queue.take(limit);
        let linger = transport.linger();
        if !batch.is_empty()
            && batch.len() < limit
            && !linger.is_zero()
            && !queue.is_empty_and_closed().1
        {
            driver.sleep(linger).await;
            batch.extend(queue.take(limit - batch.len()));
        }
        if batch.is_empty() {
            let (_, closed) = queue.is_empty_and_closed();
            let spooled = spool.as_ref().is_some_and(|s| s.unread() > 0);
            if closed && !spooled {
                return;
            }
            // Marked sleeping first, then a last look: a push in between is seen here, or
            // its producer sees the mark and wakes us.
            queue.wake.prepare_to_sleep();
            if spooled || queue.has_work() {
                queue.wake.awake();
            } else {
                driver.wait(&queue.wake, idle).await;
            }
            continue;
        }
        let n = batch.len() as u64;
        let sent = send(
            &mut transport,
            batch,
            &queue,
            &metrics,
            retry,
            false,
            driver,
        )
        .await;
        sent.count_missing(&metrics, transport.name());
        queue.finish(n as usize);
    }
}

/// Sends one batch read from the spool; returns whether there was one. Delivered
/// batches are acknowledged; a batch that ran out of retries (or time) is rewound, to be
/// sent again after a pause.
async fn send_from_spool<I: Item>(
    transport: &mut impl Transport<I>,
    spool: &Spool,
    queue: &Arc<Queue<I>>,
    metrics: &Metrics,
    retry: RetryPolicy,
    limit: usize,
    driver: Driver,
) -> bool {
    const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
    let unread = spool.unread() as usize;
    if unread == 0 {
        return false;
    }
    let linger = transport.linger();
    if unread < limit && !linger.is_zero() && !queue.is_empty_and_closed().1 {
        // Like the memory path: a moment for a fuller batch (fewer calls).
        driver.sleep(linger).await;
    }
    let (batch, lost) = spool.read_batch(limit, MAX_BATCH_BYTES);
    for _ in 0..lost.damaged {
        metrics.record_dropped(DropReason::SpoolCorrupt, 0);
    }
    let Some(batch) = batch else {
        return false;
    };
    let mut items = Vec::with_capacity(batch.records.len());
    let mut undecodable = 0;
    for (bytes, spans) in &batch.records {
        match I::read_record(bytes, *spans) {
            Some(item) => items.push(item),
            None => {
                undecodable += 1;
                metrics.record_dropped(DropReason::SpoolCorrupt, u64::from(*spans));
            }
        }
    }
    if undecodable > 0 {
        log_drop(
            undecodable,
            DropReason::SpoolCorrupt,
            &"spool records that are not valid items",
            &[],
        );
    }
    let n = batch.records.len();
    let decoded = items.len() as u64;
    let sent = send(transport, items, queue, metrics, retry, true, driver).await;
    if sent.deferred == 0 {
        spool.ack(batch);
        queue.finish(n);
        return true;
    }
    let progress = sent.deferred < decoded && sent.unreported == 0;
    if progress && spool.writable() {
        // Part of the batch went through: only the rest is kept, at the spool's end, so
        // nothing delivered is sent twice.
        for (record, spans) in &sent.kept {
            match spool.append(record, *spans) {
                Ok(evicted) => {
                    for s in &evicted {
                        metrics.record_dropped(DropReason::SpoolFull, u64::from(*s));
                    }
                    queue.count_external(1);
                    queue.finish(evicted.len());
                }
                Err(_) => {
                    metrics.record_dropped(DropReason::SpoolFull, u64::from(*spans));
                    log_drop(
                        1,
                        DropReason::SpoolFull,
                        &"the spool took no more writes for an item to retry",
                        &[],
                    );
                }
            }
        }
        spool.ack(batch);
        queue.finish(n);
    } else {
        let spans: Vec<u32> = batch.records.iter().map(|(_, s)| *s).collect();
        if !spool.rewind(batch) {
            // Dropped for the budget while it was in flight.
            for s in &spans {
                metrics.record_dropped(DropReason::SpoolFull, u64::from(*s));
            }
            log_drop(
                spans.len() as u64,
                DropReason::SpoolFull,
                &"the spool dropped them for its budget while they were retried",
                &[],
            );
            queue.finish(n);
            return true;
        }
    }
    // Wait before the next round of retries, unless shutting down.
    let pause = retry.max_backoff.max(Duration::from_millis(100));
    let until = Instant::now() + pause;
    while Instant::now() < until && queue.lock().deadline.is_none() {
        driver.sleep(Duration::from_millis(50)).await;
    }
    true
}

/// How a batch's send went.
struct Sent {
    /// Items the transport never reported.
    missing: u64,
    /// Whether the send was cut by the shutdown deadline.
    timed_out: bool,
    /// The batch's spans over its items (to estimate missing spans).
    spans_each: u64,
    /// Items kept for another try (spool only; unreported ones included).
    deferred: u64,
    /// With a spool: items the transport never reported (which ones is unknown).
    unreported: u64,
    /// The spool records of the items kept for another try (reported ones only).
    kept: Vec<(Vec<u8>, u32)>,
}

impl Sent {
    /// Counts and logs items the transport never reported (without a spool).
    fn count_missing(&self, metrics: &Metrics, transport: &str) {
        if self.missing == 0 {
            return;
        }
        let reason = if self.timed_out {
            DropReason::Deadline
        } else {
            DropReason::Unaccounted
        };
        // Which items went unreported is unknown, so their spans are estimated as the
        // batch's average (exact for segment documents: one span each).
        for _ in 0..self.missing {
            metrics.record_dropped(reason, self.spans_each);
        }
        log_drop(
            self.missing,
            reason,
            &format!("{transport} send did not finish"),
            &[],
        );
    }
}

/// Sends one batch through the transport, giving up at the shutdown deadline (a
/// blocking transport stops retrying by it: [`SendContext::next_retry`]).
async fn send<I: Item>(
    transport: &mut impl Transport<I>,
    batch: Vec<I>,
    queue: &Arc<Queue<I>>,
    metrics: &Metrics,
    retry: RetryPolicy,
    defer: bool,
    driver: Driver,
) -> Sent {
    let n = batch.len() as u64;
    let spans: u64 = batch.iter().map(Item::spans).sum();
    let cx = SendContext::new(metrics.clone(), retry, queue.clone(), defer);
    let timed_out = {
        // A span per send, for whoever debugs the exporter; the suppressed context
        // keeps it (and the spans of the libraries below) out of the exported data.
        let span = tracing::debug_span!(
            target: "xray_export",
            "xray_export.send",
            transport = transport.name(),
            items = n
        );
        match driver {
            Driver::Thread => {
                span.in_scope(|| transport.send_blocking(batch, &cx));
                queue.deadline_passed()
            }
            Driver::Runtime => {
                let mut send = tracing::Instrument::instrument(transport.send(batch, &cx), span);
                loop {
                    match tokio::time::timeout(Duration::from_millis(50), &mut send).await {
                        Ok(()) => break false,
                        Err(_) if queue.deadline_passed() => break true,
                        Err(_) => {}
                    }
                }
            }
        }
    };
    let missing = n.saturating_sub(cx.accounted());
    // With a spool, an unfinished send is tried again later, not lost.
    let (missing, deferred, unreported) = if defer {
        (0, cx.deferred() + missing, missing)
    } else {
        (missing, 0, 0)
    };
    Sent {
        missing,
        timed_out,
        spans_each: (spans / n.max(1)).max(1),
        deferred,
        unreported,
        kept: cx.take_kept(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::Document;
    use crate::transport::SendFuture;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

    /// Reports whether its sends ran inside a Tokio runtime.
    struct Probe {
        blocking: bool,
        saw_runtime: Arc<AtomicBool>,
    }

    impl Transport<Document> for Probe {
        fn name(&self) -> &'static str {
            "probe"
        }

        fn is_blocking(&self) -> bool {
            self.blocking
        }

        // Only `send`: a blocking transport left with the default `send_blocking` still
        // works (driven on the worker's thread, inside the worker's own loop).
        fn send<'a>(&'a mut self, batch: Vec<Document>, cx: &'a SendContext) -> SendFuture<'a> {
            Box::pin(async move {
                let inside = tokio::runtime::Handle::try_current().is_ok();
                self.saw_runtime.store(inside, SeqCst);
                batch.iter().for_each(|d| cx.delivered(d));
            })
        }
    }

    fn doc() -> Document {
        Document::from_json(br#"{"name":"a","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1,"end_time":2}"#.to_vec()).unwrap()
    }

    #[test]
    fn blocking_transports_send_outside_any_runtime_and_others_inside_one() {
        for blocking in [true, false] {
            let saw_runtime = Arc::new(AtomicBool::new(blocking));
            let probe = Probe {
                blocking,
                saw_runtime: saw_runtime.clone(),
            };
            let pipeline = Pipeline::start(probe, PipelineConfig::default()).unwrap();
            assert_eq!(pipeline.uses_runtime(), !blocking);
            for _ in 0..3 {
                assert!(pipeline.submit(doc()));
                pipeline.flush(Duration::from_secs(5)).unwrap();
                assert_eq!(saw_runtime.load(SeqCst), !blocking, "blocking {blocking}");
            }
            pipeline.shutdown(Duration::from_secs(5)).unwrap();
            assert_eq!(pipeline.snapshot().documents_sent, 3);
        }
    }

    #[test]
    fn udp_file_and_stdout_pipelines_have_no_runtime() {
        use crate::transport::daemon::UdpTransport;
        use crate::transport::file::WriterTransport;
        let udp = UdpTransport::new("127.0.0.1:9".parse().unwrap());
        assert!(
            !Pipeline::start(udp, PipelineConfig::default())
                .unwrap()
                .uses_runtime()
        );
        let file = WriterTransport::new(std::io::sink());
        assert!(
            !Pipeline::start(file, PipelineConfig::default())
                .unwrap()
                .uses_runtime()
        );
        let stdout = WriterTransport::stdout();
        assert!(
            !Pipeline::start(stdout, PipelineConfig::default())
                .unwrap()
                .uses_runtime()
        );
    }
}
