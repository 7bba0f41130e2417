//! [`XraySpanProcessor`]: sends each local trace tree the moment its root ends, with the
//! X-Ray SDKs' streaming rules for long and large requests.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry::trace::{Span as _, TraceContextExt};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};

use crate::exporter::{XrayExporter, sdk_error};
use crate::metrics::DropReason;
use crate::open_trees::{OpenTrees, Taken, estimated_bytes};
use crate::queue::TickWork;
use crate::transport::log_drop;

/// The rules of an [`XraySpanProcessor`]: when parts of a tree go out before its root
/// ends, and how much memory open trees may hold.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let rules = xray_export::ProcessorConfig::default()
///     .with_streaming_threshold(50)
///     .with_in_progress_after(Some(Duration::from_secs(2)))
///     .with_max_orphan_age(Duration::from_secs(30))
///     .with_max_open_bytes(8 << 20);
/// assert_eq!(rules.streaming_threshold(), 50);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct ProcessorConfig {
    streaming_threshold: usize,
    in_progress_after: Option<Duration>,
    max_orphan_age: Duration,
    max_open_bytes: usize,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            streaming_threshold: 100,
            in_progress_after: Some(Duration::from_secs(10)),
            max_orphan_age: Duration::from_secs(60),
            max_open_bytes: 16 * 1024 * 1024,
        }
    }
}

impl ProcessorConfig {
    /// When a tree whose root is still open holds more than this many finished spans,
    /// they are sent at once as standalone subsegments (nested among themselves where
    /// their parents are among them). Default 100, the X-Ray SDKs' streaming threshold.
    pub fn with_streaming_threshold(mut self, spans: usize) -> Self {
        self.streaming_threshold = spans;
        self
    }

    /// A local root open this long is sent once as an in-progress segment
    /// (`in_progress: true`, no `end_time`), and again complete when it ends; `None`
    /// turns this off (and saves the copy of each root taken when it starts). Default
    /// 10 s. Only for document transports (the OTLP endpoint has no in-progress form).
    pub fn with_in_progress_after(mut self, after: Option<Duration>) -> Self {
        self.in_progress_after = after;
        self
    }

    /// Finished spans still waiting for their root after this long (a leaked or
    /// never-ending root) are sent as standalone subsegments. Default 60 s.
    pub fn with_max_orphan_age(mut self, age: Duration) -> Self {
        self.max_orphan_age = age;
        self
    }

    /// Most bytes (estimated) that open trees and finished trees waiting for the worker
    /// may hold together. Beyond it, an open tree's finished spans are handed over at once
    /// as standalone subsegments instead of waiting for their root, new roots are not
    /// copied for in-progress documents, and a finished tree that finds the worker that
    /// far behind is dropped, counted as [`DropReason::QueueFull`] in the exporter's
    /// metrics and logged. Default 16 MiB.
    pub fn with_max_open_bytes(mut self, bytes: usize) -> Self {
        self.max_open_bytes = bytes;
        self
    }

    /// The streaming threshold (finished spans of an open tree).
    pub fn streaming_threshold(&self) -> usize {
        self.streaming_threshold
    }

    /// How long a root is open before its in-progress segment is sent.
    pub fn in_progress_after(&self) -> Option<Duration> {
        self.in_progress_after
    }

    /// How long finished spans wait for their root at most.
    pub fn max_orphan_age(&self) -> Duration {
        self.max_orphan_age
    }

    /// The byte budget of open trees.
    pub fn max_open_bytes(&self) -> usize {
        self.max_open_bytes
    }

    /// How often the time-based rules are checked.
    fn check_every(&self) -> Duration {
        let shortest = self
            .in_progress_after
            .map_or(self.max_orphan_age, |a| a.min(self.max_orphan_age));
        (shortest / 4).clamp(Duration::from_millis(20), Duration::from_millis(500))
    }
}

/// An OpenTelemetry span processor for X-Ray: the spans of each local trace tree are
/// gathered as they end, and when the tree's local root (a span without a parent, or
/// with a remote one) ends, the whole tree is handed to the exporter's worker thread at
/// once, which translates it, nests it into one document (split when over 64 kB) and
/// sends it. No batching delay, no batch boundary cutting a request in two, and the
/// application's thread only files spans and wakes the worker.
///
/// The X-Ray SDKs' rules for long requests apply ([`ProcessorConfig`]): more than 100
/// finished spans in an open tree are streamed as standalone subsegments; a root open
/// over 10 s is sent once in progress; spans whose root never ends go out after 60 s.
/// Open trees count against a byte budget. Every span ended is counted in the
/// exporter's [`crate::Metrics`] (`spans_in`) and ends as sent or as a drop with a
/// reason.
///
/// `force_flush` sends every finished span (open trees' finished children included) and
/// waits for the transport; `shutdown` does the same within its deadline, then stops the
/// exporter and reports what it could not send. Translation and the time-based rules run
/// on the exporter's worker thread; the processor has no thread or queue of its own
/// besides the trees it holds, under one byte budget.
///
/// # Examples
///
/// ```
/// use opentelemetry::trace::{Tracer, TracerProvider};
/// use opentelemetry_sdk::trace::SdkTracerProvider;
/// use xray_export::{ProcessorConfig, XrayExporter, XraySpanProcessor};
///
/// let exporter = XrayExporter::builder().with_writer(std::io::sink()).build()?;
/// let metrics = exporter.metrics().clone();
/// let processor = XraySpanProcessor::new(exporter, ProcessorConfig::default());
/// let provider = SdkTracerProvider::builder().with_span_processor(processor).build();
/// provider.tracer("app").in_span("request", |_cx| {});
/// provider.force_flush()?;
/// assert_eq!(metrics.snapshot().spans_sent, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct XraySpanProcessor {
    inner: Arc<Inner>,
}

struct Inner {
    exporter: XrayExporter,
    trees: OpenTrees,
    config: ProcessorConfig,
    /// Whether roots are copied for in-progress documents: the rule is on and the
    /// transport has an in-progress form.
    in_progress: bool,
    resource: RwLock<Resource>,
    shut_down: AtomicBool,
    /// Spans that ended after shutdown.
    late: AtomicU64,
    /// Trees (and streamed spans) handed over, waiting for the worker to translate them.
    ready: Mutex<Ready>,
    /// Hand-overs the worker took and has not queued yet.
    in_flight: AtomicUsize,
    /// Trees dropped because the byte budget was spent.
    over_budget: AtomicU64,
    /// When the time-based rules last ran.
    last_check: Mutex<Instant>,
}

/// Spans handed over to the worker, with their estimated bytes.
#[derive(Default)]
struct Ready {
    batches: VecDeque<Vec<SpanData>>,
    bytes: usize,
}

impl fmt::Debug for XraySpanProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XraySpanProcessor")
            .field("config", &self.inner.config)
            .field("open_bytes", &self.inner.trees.bytes())
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// Each application thread encodes its requests' documents in a buffer of its own.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl XraySpanProcessor {
    /// A processor sending through `exporter` under `config`.
    pub fn new(exporter: XrayExporter, config: ProcessorConfig) -> Self {
        let every = config.check_every();
        let in_progress =
            config.in_progress_after.is_some() && exporter.backend.has_in_progress_form();
        let inner = Arc::new(Inner {
            trees: OpenTrees::new(config.max_open_bytes),
            in_progress,
            config,
            resource: RwLock::new(Resource::builder_empty().build()),
            shut_down: AtomicBool::new(false),
            late: AtomicU64::new(0),
            ready: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            over_budget: AtomicU64::new(0),
            last_check: Mutex::new(Instant::now()),
            exporter,
        });
        let turn = WorkerTurn(Arc::downgrade(&inner));
        inner.exporter.backend.set_tick(every, Box::new(turn));
        XraySpanProcessor { inner }
    }

    /// The exporter's counters.
    pub fn metrics(&self) -> &crate::Metrics {
        self.inner.exporter.metrics()
    }
}

/// The processor's share of the exporter's worker: translating what was handed over, and
/// the time-based rules.
struct WorkerTurn(Weak<Inner>);

impl TickWork for WorkerTurn {
    fn run(&self) {
        if let Some(inner) = self.0.upgrade() {
            inner.work();
        }
    }

    fn pending(&self) -> bool {
        self.0.upgrade().is_some_and(|inner| {
            !inner
                .ready
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .batches
                .is_empty()
        })
    }
}

/// A local root: no parent, or a parent in another process.
fn is_local_root(span: &SpanData) -> bool {
    span.parent_span_id == opentelemetry::trace::SpanId::INVALID || span.parent_span_is_remote
}

impl Inner {
    /// Hands `taken` to the worker (it translates and queues it), or drops it, counted,
    /// when open trees and waiting batches are over the byte budget (nothing waiting is
    /// never refused, so one large tree still goes). Wakes the worker only if it sleeps.
    fn hand_over(&self, taken: Taken) {
        let Taken {
            spans: batch,
            bytes,
        } = taken;
        let refused = {
            let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
            if !ready.batches.is_empty()
                && ready.bytes + self.trees.bytes() + bytes > self.config.max_open_bytes
            {
                Some(batch)
            } else {
                ready.bytes += bytes;
                ready.batches.push_back(batch);
                None
            }
        };
        match refused {
            None => self.exporter.backend.wake(),
            Some(batch) => {
                // The application's thread logs here: keep the line out of its spans.
                let _suppressed = Context::enter_telemetry_suppressed_scope();
                let spans = batch.len() as u64;
                self.exporter
                    .metrics()
                    .record_dropped(DropReason::QueueFull, spans);
                let n = self.over_budget.fetch_add(1, Relaxed) + 1;
                if n.is_power_of_two() {
                    log_drop(
                        1,
                        DropReason::QueueFull,
                        &format!(
                            "span trees waiting for the exporter are over the processor's {} byte budget ({n} trees so far)",
                            self.config.max_open_bytes
                        ),
                        &[format!("trace {}", batch[0].span_context.trace_id())],
                    );
                }
            }
        }
    }

    /// Takes what was handed over and translates it on this thread; returns whether
    /// there was any.
    fn drain_ready(&self) -> bool {
        let batches = {
            let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
            if ready.batches.is_empty() {
                return false;
            }
            ready.bytes = 0;
            self.in_flight.fetch_add(1, Relaxed);
            std::mem::take(&mut ready.batches)
        };
        // One resource preparation for everything this wake-up took.
        self.send_all(batches);
        self.in_flight.fetch_sub(1, Relaxed);
        true
    }

    /// The worker's turn: translate what was handed over, and apply the time-based rules
    /// when they are due.
    fn work(&self) {
        self.drain_ready();
        let due = {
            let mut last = self.last_check.lock().unwrap_or_else(|e| e.into_inner());
            let due = last.elapsed() >= self.config.check_every();
            if due {
                *last = Instant::now();
            }
            due
        };
        if due {
            self.send_due();
        }
    }

    /// Sends everything held now from the calling thread, and waits (until `deadline`)
    /// for what the worker took to be queued.
    fn send_everything(&self, deadline: Instant) {
        self.drain_ready();
        self.send_finished();
        while self.in_flight.load(Relaxed) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Translates, encodes and queues `batches` on the calling thread (the worker, or a
    /// flush), the resource prepared once for all of them.
    fn send_all(&self, batches: impl IntoIterator<Item = Vec<SpanData>>) {
        let resource = self.resource.read().unwrap_or_else(|e| e.into_inner());
        let metrics = self.exporter.metrics();
        let submit = |scratch: &mut Vec<u8>| {
            self.exporter
                .backend
                .submit_batches(metrics, batches, &resource, scratch);
            if scratch.capacity() > 1 << 20 {
                scratch.shrink_to(64 * 1024);
            }
        };
        let mut submit = Some(submit);
        let _ = SCRATCH.try_with(|scratch| {
            if let Ok(mut scratch) = scratch.try_borrow_mut()
                && let Some(submit) = submit.take()
            {
                submit(&mut scratch);
            }
        });
        if let Some(submit) = submit.take() {
            submit(&mut Vec::new());
        }
    }

    /// The time-based rules (on the exporter's worker thread).
    fn send_due(&self) {
        if self.shut_down.load(Relaxed) {
            return;
        }
        let due = self
            .trees
            .take_due(self.config.in_progress_after, self.config.max_orphan_age);
        if !due.in_progress.is_empty() {
            let resource = self.resource.read().unwrap_or_else(|e| e.into_inner());
            let mut scratch = Vec::new();
            for root in &due.in_progress {
                self.exporter.backend.submit_in_progress(
                    self.exporter.metrics(),
                    root,
                    &resource,
                    &mut scratch,
                );
            }
        }
        self.send_all(due.orphans);
    }

    /// Sends every finished span the open trees hold.
    fn send_finished(&self) {
        self.send_all(self.trees.take_all_finished());
    }

    fn late(&self) {
        // The application's thread logs here: keep the line out of its spans.
        let _suppressed = Context::enter_telemetry_suppressed_scope();
        let metrics = self.exporter.metrics();
        metrics.record_dropped(DropReason::Shutdown, 1);
        let n = self.late.fetch_add(1, Relaxed) + 1;
        if n.is_power_of_two() {
            log_drop(
                1,
                DropReason::Shutdown,
                &format!("span ended after the X-Ray span processor shut down ({n} so far)"),
                &[],
            );
        }
    }
}

impl SpanProcessor for XraySpanProcessor {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        // The copy of a root is only for its in-progress document: none is taken when
        // the rule is off, or when the transport has no in-progress form (OTLP).
        if !self.inner.in_progress || !span.span_context().is_sampled() {
            return;
        }
        let parent = cx.span();
        let parent = parent.span_context();
        if parent.is_valid() && !parent.is_remote() {
            return;
        }
        let context = span.span_context().clone();
        let snapshot = span.exported_data();
        self.inner
            .trees
            .root_started(context.span_id(), context.trace_id(), snapshot);
    }

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        // Nothing here logs but the two drop paths, which enter the telemetry-suppressed
        // scope themselves: the common path stays free of the context switch.
        let inner = &self.inner;
        inner.exporter.metrics().record_spans_in(1);
        if inner.shut_down.load(Relaxed) {
            inner.late();
            return;
        }
        if is_local_root(&span) {
            let mut tree = inner.trees.root_ended(&span);
            tree.bytes += estimated_bytes(&span);
            tree.spans.push(span);
            inner.hand_over(tree);
        } else if let Some(taken) = inner
            .trees
            .child_ended(span, inner.config.streaming_threshold)
        {
            inner.hand_over(taken);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        let _suppressed = Context::enter_telemetry_suppressed_scope();
        let timeout = self.inner.exporter.flush_timeout;
        self.inner.send_everything(Instant::now() + timeout);
        self.inner
            .exporter
            .flush_queue(timeout)
            .map_err(|e| sdk_error(e, timeout))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _suppressed = Context::enter_telemetry_suppressed_scope();
        let start = Instant::now();
        if self.inner.shut_down.swap(true, Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        self.inner.send_everything(start + timeout);
        let open = self.inner.trees.open_roots();
        if open > 0 {
            tracing::warn!(
                target: "xray_export",
                open,
                "{open} local root span(s) had not ended at shutdown; never ended, they are not sent"
            );
        }
        let left = timeout.saturating_sub(start.elapsed());
        self.inner
            .exporter
            .shutdown_pipeline(left)
            .map_err(|e| sdk_error(e, timeout))
    }

    fn set_resource(&mut self, resource: &Resource) {
        *self
            .inner
            .resource
            .write()
            .unwrap_or_else(|e| e.into_inner()) = resource.clone();
    }
}
