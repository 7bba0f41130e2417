//! The OpenTelemetry span exporter: translate, encode, queue; the pipeline sends.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

#[cfg(feature = "otlp")]
use crate::item::Item;
use crate::item::{Document, Unencodable};
use crate::metrics::{DropReason, Metrics};
use crate::pipeline::{FlushError, Pipeline, PipelineConfig};
use crate::queue::Overflow;
use crate::transport::daemon::{AddressError, DaemonAddress, UdpTransport};
use crate::transport::file::WriterTransport;
use crate::transport::{RetryPolicy, Transport, log_drop};
use xray_model::Nesting;
use xray_translate::{Invalid, PreparedResource, Translator, check_sdk};

#[cfg(feature = "xray-api")]
use crate::transport::api::{ApiConfig, ApiTransport};
#[cfg(feature = "otlp")]
use crate::transport::otlp::{OtlpConfig, OtlpSpans, OtlpTransport};

/// Why an exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `AWS_XRAY_DAEMON_ADDRESS` (or the address given) is malformed.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// A file could not be opened, or the worker thread not started.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

enum Destination {
    Daemon(Option<DaemonAddress>),
    #[cfg(feature = "xray-api")]
    Api(ApiConfig),
    #[cfg(feature = "otlp")]
    Otlp(OtlpConfig),
    File(PathBuf),
    Stdout,
    Writer(Box<dyn Write + Send>),
}

/// Builds an [`XrayExporter`]; see [`XrayExporter::builder`].
#[must_use]
pub struct XrayExporterBuilder {
    destination: Destination,
    pipeline: PipelineConfig,
    flush_timeout: Duration,
    translator: Option<Translator>,
    nest: bool,
    metrics: Metrics,
}

impl fmt::Debug for XrayExporterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XrayExporterBuilder")
            .field("pipeline", &self.pipeline)
            .field("flush_timeout", &self.flush_timeout)
            .finish_non_exhaustive()
    }
}

impl XrayExporterBuilder {
    /// Sends to the X-Ray daemon over UDP at `AWS_XRAY_DAEMON_ADDRESS` or `127.0.0.1:2000`
    /// (the default).
    pub fn with_daemon(mut self) -> Self {
        self.destination = Destination::Daemon(None);
        self
    }

    /// Sends to the X-Ray daemon at `address`.
    pub fn with_daemon_address(mut self, address: DaemonAddress) -> Self {
        self.destination = Destination::Daemon(Some(address));
        self
    }

    /// Sends with `PutTraceSegments` through the X-Ray API.
    #[cfg(feature = "xray-api")]
    #[cfg_attr(docsrs, doc(cfg(feature = "xray-api")))]
    pub fn with_xray_api(mut self, config: ApiConfig) -> Self {
        self.destination = Destination::Api(config);
        self
    }

    /// Sends OTLP to the X-Ray OTLP endpoint (needs Transaction Search).
    #[cfg(feature = "otlp")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
    pub fn with_otlp_endpoint(mut self, config: OtlpConfig) -> Self {
        self.destination = Destination::Otlp(config);
        self
    }

    /// Appends documents as JSON lines to a file.
    pub fn with_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.destination = Destination::File(path.into());
        self
    }

    /// Writes documents as JSON lines to standard output.
    pub fn with_stdout(mut self) -> Self {
        self.destination = Destination::Stdout;
        self
    }

    /// Writes documents as JSON lines to any writer.
    pub fn with_writer(mut self, writer: impl Write + Send + 'static) -> Self {
        self.destination = Destination::Writer(Box::new(writer));
        self
    }

    /// Most bytes waiting to be sent (default 16 MiB).
    pub fn with_max_queue_bytes(mut self, bytes: usize) -> Self {
        self.pipeline.max_queue_bytes = bytes;
        self
    }

    /// What to drop when the queue is full (default [`Overflow::DropOldest`]).
    pub fn with_overflow(mut self, overflow: Overflow) -> Self {
        self.pipeline.overflow = overflow;
        self
    }

    /// How failed sends are retried.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.pipeline.retry = retry;
        self
    }

    /// Keeps what the exporter accepted in a disk spool until it is delivered, through
    /// outages and restarts (see [`crate::spool`]; the directory must be this
    /// exporter's alone: it is locked).
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("xray-doc-spool-{}", std::process::id()));
    /// let exporter = xray_export::XrayExporter::builder()
    ///     .with_writer(std::io::sink())
    ///     .with_spool(xray_export::SpoolConfig::new(&dir).with_max_bytes(64 << 20))
    ///     .build()
    ///     .unwrap();
    /// drop(exporter);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn with_spool(mut self, spool: crate::spool::SpoolConfig) -> Self {
        self.pipeline.spool = Some(spool);
        self
    }

    /// How long `force_flush` waits (default 10 s).
    pub fn with_flush_timeout(mut self, timeout: Duration) -> Self {
        self.flush_timeout = timeout;
        self
    }

    /// The translator to use (default: [`Translator::from_env`]).
    pub fn with_translator(mut self, translator: Translator) -> Self {
        self.translator = Some(translator);
        self
    }

    /// Whether the subsegments of an exported batch travel inside their parent's document
    /// (default `true`), as the X-Ray SDKs send a finished segment: one document per tree
    /// of the batch instead of one per span, split again where a tree is over 64 kB. A
    /// child whose parent ends in a later batch is still sent as a standalone subsegment.
    /// With `false` every span is its own document.
    pub fn with_nested_subsegments(mut self, nest: bool) -> Self {
        self.nest = nest;
        self
    }

    /// Counts into `metrics` (e.g. one handle shared by several exporters).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Starts the worker thread and returns the exporter.
    ///
    /// # Errors
    ///
    /// [`BuildError::Address`] when the daemon destination has no address given and
    /// `AWS_XRAY_DAEMON_ADDRESS` is malformed; [`BuildError::Io`] when the file destination
    /// cannot be opened or the worker thread cannot start.
    ///
    /// # Examples
    ///
    /// ```
    /// use xray_export::XrayExporter;
    ///
    /// // JSON lines into any writer; `with_file`, `with_stdout`, `with_daemon_address`,
    /// // `with_xray_api` and `with_otlp_endpoint` choose the other destinations.
    /// let exporter = XrayExporter::builder()
    ///     .with_writer(std::io::sink())
    ///     .with_max_queue_bytes(1 << 20)
    ///     .build()?;
    /// assert_eq!(exporter.metrics().snapshot().documents_sent, 0);
    /// # Ok::<(), xray_export::BuildError>(())
    /// ```
    pub fn build(self) -> Result<XrayExporter, BuildError> {
        let XrayExporterBuilder {
            destination,
            pipeline,
            flush_timeout,
            translator,
            nest,
            metrics,
        } = self;
        let translator = translator.unwrap_or_else(Translator::from_env);
        let documents = |transport: Box<dyn Transport<Document>>| -> std::io::Result<Backend> {
            Ok(Backend::Documents {
                pipeline: Pipeline::start_with_metrics(
                    transport,
                    pipeline.clone(),
                    metrics.clone(),
                )?,
                translator: translator.clone(),
                nest,
            })
        };
        let backend = match destination {
            Destination::Daemon(address) => {
                let address = match address {
                    Some(a) => a,
                    None => DaemonAddress::from_env()?,
                };
                documents(Box::new(UdpTransport::new(address.udp)))?
            }
            #[cfg(feature = "xray-api")]
            Destination::Api(config) => documents(Box::new(ApiTransport::new(config)))?,
            #[cfg(feature = "otlp")]
            Destination::Otlp(config) => Backend::Otlp(Pipeline::start_with_metrics(
                OtlpTransport::new(config),
                pipeline.clone(),
                metrics.clone(),
            )?),
            Destination::File(path) => documents(Box::new(WriterTransport::file(path)?))?,
            Destination::Stdout => documents(Box::new(WriterTransport::stdout()))?,
            Destination::Writer(w) => documents(Box::new(WriterTransport::new(w)))?,
        };
        Ok(XrayExporter {
            backend: Arc::new(backend),
            resource: Resource::builder_empty().build(),
            metrics,
            flush_timeout,
            scratch: Mutex::new(Vec::with_capacity(16 * 1024)),
        })
    }
}

pub(crate) enum Backend {
    Documents {
        pipeline: Pipeline<Document>,
        translator: Translator,
        nest: bool,
    },
    #[cfg(feature = "otlp")]
    Otlp(Pipeline<OtlpSpans>),
}

/// An OpenTelemetry span exporter for AWS X-Ray.
///
/// `export` translates each span into one segment document (trimmed to 64 kB when
/// needed, never dropped for size), queues it and returns; a worker thread of its own
/// sends through the chosen transport. Nothing is dropped without a counter
/// ([`XrayExporter::metrics`]) and a log line.
///
/// # Examples
///
/// ```no_run
/// use opentelemetry_sdk::trace::SdkTracerProvider;
/// use xray_export::XrayExporter;
///
/// let exporter = XrayExporter::builder().with_daemon().build()?;
/// let metrics = exporter.metrics().clone();
/// let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).build();
/// // ... later
/// provider.shutdown()?;
/// println!("sent {} documents", metrics.snapshot().documents_sent);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct XrayExporter {
    pub(crate) backend: Arc<Backend>,
    resource: Resource,
    metrics: Metrics,
    pub(crate) flush_timeout: Duration,
    scratch: Mutex<Vec<u8>>,
}

impl fmt::Debug for XrayExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XrayExporter")
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl XrayExporter {
    /// A builder; the default sends to the daemon named by `AWS_XRAY_DAEMON_ADDRESS`.
    ///
    /// # Examples
    ///
    /// ```
    /// use xray_export::{DaemonAddress, XrayExporter};
    ///
    /// let address: DaemonAddress = "127.0.0.1:2000".parse()?;
    /// let exporter = XrayExporter::builder().with_daemon_address(address).build()?;
    /// # drop(exporter);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> XrayExporterBuilder {
        XrayExporterBuilder {
            destination: Destination::Daemon(None),
            pipeline: PipelineConfig::default(),
            flush_timeout: Duration::from_secs(10),
            translator: None,
            nest: true,
            metrics: Metrics::default(),
        }
    }

    /// The exporter's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Translates, encodes and queues a batch; never waits for the network.
    pub fn enqueue(&self, batch: Vec<SpanData>) {
        let _suppressed = Context::enter_telemetry_suppressed_scope();
        self.metrics.record_spans_in(batch.len() as u64);
        let mut scratch = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        self.backend
            .submit_spans(&self.metrics, batch, &self.resource, &mut scratch);
        if scratch.capacity() > 1 << 20 {
            scratch.shrink_to(64 * 1024);
        }
    }

    /// A handle that waits for this exporter's queue to be delivered, for use after the
    /// exporter has been moved into a span processor.
    ///
    /// OpenTelemetry's `BatchSpanProcessor::force_flush` exports what it holds but does
    /// not call the exporter's `force_flush`, so documents it just handed over may still be
    /// queued here (in Lambda, the environment may freeze before they are sent). Call
    /// [`FlushHandle::flush`] after the processor's flush; `tracing-xray` does this in its
    /// processor.
    ///
    /// # Examples
    ///
    /// ```
    /// let exporter = xray_export::XrayExporter::builder().with_writer(std::io::sink()).build()?;
    /// let flush = exporter.flush_handle();
    /// // ... exporter moved into a BatchSpanProcessor; after its force_flush:
    /// assert!(flush.flush().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flush_handle(&self) -> FlushHandle {
        FlushHandle {
            backend: self.backend.clone(),
            timeout: self.flush_timeout,
        }
    }

    /// Waits until the queue is delivered (or `timeout`).
    pub(crate) fn flush_queue(&self, timeout: Duration) -> Result<(), FlushError> {
        self.backend.flush(timeout)
    }

    /// Stops the pipeline: sends what is queued until `timeout`, counts the rest.
    pub(crate) fn shutdown_pipeline(&self, timeout: Duration) -> Result<(), FlushError> {
        match &*self.backend {
            Backend::Documents { pipeline, .. } => pipeline.shutdown(timeout),
            #[cfg(feature = "otlp")]
            Backend::Otlp(pipeline) => pipeline.shutdown(timeout),
        }
    }
}

impl Backend {
    /// Translates `batch` (spans already counted in), nests each subsegment into its
    /// parent's document when the parent is in the batch, encodes within 64 kB and
    /// queues; what cannot be encoded is counted and logged.
    pub(crate) fn submit_spans(
        &self,
        metrics: &Metrics,
        batch: Vec<SpanData>,
        resource: &Resource,
        scratch: &mut Vec<u8>,
    ) {
        self.submit_batches(metrics, [batch], resource, scratch);
    }

    /// [`Backend::submit_spans`] for several batches (trees), each nested on its own,
    /// the resource prepared once for all of them.
    pub(crate) fn submit_batches(
        &self,
        metrics: &Metrics,
        batches: impl IntoIterator<Item = Vec<SpanData>>,
        resource: &Resource,
        scratch: &mut Vec<u8>,
    ) {
        match self {
            Backend::Documents {
                pipeline,
                translator,
                nest,
            } => {
                let resource = translator.prepare_sdk(resource);
                for batch in batches.into_iter().filter(|b| !b.is_empty()) {
                    submit_documents(pipeline, &resource, *nest, metrics, &batch, scratch);
                }
            }
            #[cfg(feature = "otlp")]
            Backend::Otlp(pipeline) => {
                for batch in batches.into_iter().filter(|b| !b.is_empty()) {
                    let (items, too_large) = OtlpSpans::from_sdk(batch, resource);
                    for item in items {
                        pipeline.submit(item);
                    }
                    if !too_large.is_empty() {
                        for item in &too_large {
                            metrics.record_dropped(DropReason::TooLarge, item.spans());
                        }
                        let first: Vec<String> = too_large.iter().map(Item::describe).collect();
                        log_drop(
                            too_large.len() as u64,
                            DropReason::TooLarge,
                            &"a single span is over the OTLP endpoint's 5 MB request limit",
                            &first,
                        );
                    }
                }
            }
        }
    }

    /// Whether in-progress documents can be sent (not to the OTLP endpoint).
    pub(crate) fn has_in_progress_form(&self) -> bool {
        match self {
            Backend::Documents { .. } => true,
            #[cfg(feature = "otlp")]
            Backend::Otlp(_) => false,
        }
    }

    /// Queues `span`, which has not ended, as an in-progress document (`in_progress:
    /// true`, no `end_time`, no subsegments). It carries no span in the counters: the
    /// complete document sent when the span ends does. The OTLP endpoint has no
    /// in-progress form, so nothing is sent there.
    // Without the `otlp` feature, documents are the only backend.
    #[cfg_attr(not(feature = "otlp"), allow(irrefutable_let_patterns))]
    pub(crate) fn submit_in_progress(
        &self,
        metrics: &Metrics,
        span: &SpanData,
        resource: &Resource,
        scratch: &mut Vec<u8>,
    ) {
        let (pipeline, translator) = match self {
            Backend::Documents {
                pipeline,
                translator,
                ..
            } => (pipeline, translator),
            #[cfg(feature = "otlp")]
            Backend::Otlp(_) => return,
        };
        {
            let resource = translator.prepare_sdk(resource);
            let mut segment = resource.translate_sdk(span);
            segment.end_time = None;
            segment.in_progress = true;
            match Document::encode_to_fit(&mut segment, scratch) {
                Ok((doc, trimmed)) => {
                    if trimmed {
                        metrics.record_trimmed();
                    }
                    pipeline.submit(doc.carrying_no_span());
                }
                Err(reason) => log_drop(
                    1,
                    reason,
                    &"in-progress document (the complete one follows when the span ends)",
                    &[format!("document {}", segment.id)],
                ),
            }
        }
    }

    /// Installs the worker's periodic work (see `Pipeline::set_tick`).
    pub(crate) fn set_tick(&self, every: Duration, work: Box<dyn crate::queue::TickWork>) {
        match self {
            Backend::Documents { pipeline, .. } => pipeline.set_tick(every, work),
            #[cfg(feature = "otlp")]
            Backend::Otlp(pipeline) => pipeline.set_tick(every, work),
        }
    }

    /// Wakes the worker.
    pub(crate) fn wake(&self) {
        match self {
            Backend::Documents { pipeline, .. } => pipeline.wake(),
            #[cfg(feature = "otlp")]
            Backend::Otlp(pipeline) => pipeline.wake(),
        }
    }

    fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        match self {
            Backend::Documents { pipeline, .. } => pipeline.flush(timeout),
            #[cfg(feature = "otlp")]
            Backend::Otlp(pipeline) => pipeline.flush(timeout),
        }
    }
}

/// Translates one batch under a prepared resource, nests it (when `nest`), encodes each
/// tree within 64 kB and queues the documents; spans X-Ray cannot take (a time before
/// 1970 or after 2200, a zero id) are dropped as rejected, counted and logged, never sent
/// half-made.
fn submit_documents(
    pipeline: &Pipeline<Document>,
    resource: &PreparedResource<'_>,
    nest: bool,
    metrics: &Metrics,
    batch: &[SpanData],
    scratch: &mut Vec<u8>,
) {
    let mut invalid: Vec<(Invalid, String)> = Vec::new();
    let segments = batch
        .iter()
        .filter(|span| match check_sdk(span) {
            Ok(()) => true,
            Err(why) => {
                invalid.push((why, format!("span {:?}", span.name)));
                false
            }
        })
        .map(|span| resource.translate_sdk(span));
    let mut segments: Vec<_> = segments.collect();
    for (why, span) in invalid {
        metrics.record_dropped(DropReason::Rejected, 1);
        log_drop(1, DropReason::Rejected, &why, &[span]);
    }
    let emit = |doc| match doc {
        Ok(doc) => {
            pipeline.submit(doc);
        }
        Err(failed) => unencodable(metrics, failed),
    };
    let mut trimmed = 0;
    if nest {
        // Each tree's JSON written straight from the batch (`nest_subsegments`' documents).
        let nesting = Nesting::of(&segments);
        for root in nesting.top_level() {
            trimmed += Document::encode_nested(&mut segments, &nesting, root, scratch, emit);
        }
    } else {
        for segment in segments {
            trimmed += Document::encode_tree(segment, scratch, emit);
        }
    }
    for _ in 0..trimmed {
        metrics.record_trimmed();
    }
}

/// Counts and logs a document that could not be encoded.
fn unencodable(metrics: &Metrics, failed: Unencodable) {
    metrics.record_dropped(failed.reason, failed.spans);
    let cause = match failed.reason {
        DropReason::TooLarge => "over 64 kB even after trimming",
        _ => "document without a trace id",
    };
    let who = match failed.trace_id {
        Some(trace) => format!("trace {trace} document {}", failed.id),
        None => format!("document {}", failed.id),
    };
    log_drop(1, failed.reason, &cause, &[who]);
}

/// Waits for an [`XrayExporter`]'s queue to be delivered; see
/// [`XrayExporter::flush_handle`]. Cheap to clone.
#[derive(Clone)]
pub struct FlushHandle {
    backend: Arc<Backend>,
    timeout: Duration,
}

impl FlushHandle {
    /// Waits (up to the exporter's flush timeout) until everything queued before the call
    /// is sent or dropped; says what was left or dropped, like `force_flush`.
    ///
    /// # Errors
    ///
    /// [`FlushError`] when items are still pending at the timeout, or when items were
    /// dropped since the previous flush or shutdown reported (the error says how many, by
    /// reason).
    pub fn flush(&self) -> Result<(), FlushError> {
        let _suppressed = Context::enter_telemetry_suppressed_scope();
        self.backend.flush(self.timeout)
    }
}

impl fmt::Debug for FlushHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlushHandle")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

pub(crate) fn sdk_error(e: FlushError, timeout: Duration) -> OTelSdkError {
    if e.dropped.is_empty() {
        OTelSdkError::Timeout(timeout)
    } else {
        OTelSdkError::InternalFailure(format!("X-Ray exporter: {e}"))
    }
}

impl SpanExporter for XrayExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.enqueue(batch);
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _suppressed = Context::enter_telemetry_suppressed_scope();
        self.shutdown_pipeline(timeout)
            .map_err(|e| sdk_error(e, timeout))
    }

    fn force_flush(&self) -> OTelSdkResult {
        let _suppressed = Context::enter_telemetry_suppressed_scope();
        self.flush_queue(self.flush_timeout)
            .map_err(|e| sdk_error(e, self.flush_timeout))
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.clone();
    }
}
