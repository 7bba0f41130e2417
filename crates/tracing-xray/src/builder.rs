//! [`XrayLayerBuilder`]: everything the layer lets you configure.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::{ResourceDetector, TelemetryResourceDetector};
use opentelemetry_sdk::trace::{BatchConfig, BatchSpanProcessor, SdkTracerProvider, ShouldSample};
use tracing::Subscriber;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use xray_export::{
    DaemonAddress, ProcessorConfig, XrayExporter, XrayExporterBuilder, XraySpanProcessor,
};
use xray_sampling::XraySampler;
use xray_translate::{Translator, TranslatorConfig};

use crate::Error;
use crate::env::{ContextMissing, EnvSettings, SamplerName};
use crate::layer::{FlushGuard, Handle, XrayLayer};
use crate::processor::FlushingProcessor;
use crate::propagator::Propagator;
use crate::resource::{self, DEFAULT_DETECTION_TIMEOUT, Evidence, Paths};
use crate::sampler::{ContextMissingSampler, LambdaSampler, XrayParentBased, otel_sampler};

type Vars = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

enum Transport {
    Default,
    Daemon(DaemonAddress),
    Exporter(Box<XrayExporterBuilder>),
}

/// Which span processor feeds the exporter.
enum Processing {
    /// Ours: each local tree sent when its root ends.
    Trees(ProcessorConfig),
    /// OpenTelemetry's batch processor (`None`: its settings from `OTEL_BSP_*`).
    Batch(Option<BatchConfig>),
}

/// Builds an [`XrayLayer`]: made by [`crate::builder`]; [`crate::layer`] is
/// `builder().build()`.
///
/// Settings given here win over the `OTEL_*` variables; the `AWS_XRAY_*` variables win
/// over settings given here, as in the X-Ray SDKs (so operators can redirect, rename and
/// disable without a rebuild): `AWS_XRAY_SDK_ENABLED=false` disables,
/// `AWS_XRAY_DAEMON_ADDRESS` replaces a daemon address (not another transport),
/// `AWS_XRAY_TRACING_NAME` names the segments, `AWS_XRAY_CONTEXT_MISSING` replaces
/// [`with_context_missing`](Self::with_context_missing).
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use tracing_subscriber::layer::SubscriberExt;
/// use tracing_subscriber::util::SubscriberInitExt;
/// use tracing_xray::{ContextMissing, Propagator};
///
/// let layer = tracing_xray::builder()
///     .with_service_name("checkout")
///     .with_daemon_address("127.0.0.1:2000".parse()?)
///     .with_annotation_keys(["customer.tier"])
///     .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn)
///     .with_propagator(Propagator::xray_and_tracecontext())
///     .with_context_missing(ContextMissing::LogError)
///     .with_detection_timeout(Duration::from_millis(500))
///     .build()?;
/// let _guard = layer.flush_guard();
/// tracing_subscriber::registry().with(layer).init();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub struct XrayLayerBuilder {
    vars: Vars,
    paths: Paths,
    enabled: bool,
    service_name: Option<String>,
    resource_attributes: Vec<KeyValue>,
    transport: Transport,
    sampler: Option<Box<dyn ShouldSample>>,
    translator: TranslatorConfig,
    metadata_exclude: Option<Vec<String>>,
    detection: bool,
    detection_timeout: Duration,
    propagator: Option<Propagator>,
    install_propagator: bool,
    install_provider: bool,
    context_missing: ContextMissing,
    processing: Processing,
    max_level: LevelFilter,
    location: bool,
    tracked_inactivity: bool,
    threads: bool,
}

impl fmt::Debug for XrayLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XrayLayerBuilder")
            .field("enabled", &self.enabled)
            .field("service_name", &self.service_name)
            .field("translator", &self.translator)
            .field("detection", &self.detection)
            .field("detection_timeout", &self.detection_timeout)
            .field("propagator", &self.propagator)
            .field("context_missing", &self.context_missing)
            .field("location", &self.location)
            .field("tracked_inactivity", &self.tracked_inactivity)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl Default for XrayLayerBuilder {
    fn default() -> Self {
        XrayLayerBuilder {
            vars: Arc::new(|name| std::env::var(name).ok()),
            paths: Paths::default(),
            enabled: true,
            service_name: None,
            resource_attributes: Vec::new(),
            transport: Transport::Default,
            sampler: None,
            translator: TranslatorConfig::default(),
            metadata_exclude: None,
            detection: true,
            detection_timeout: DEFAULT_DETECTION_TIMEOUT,
            propagator: None,
            install_propagator: false,
            install_provider: false,
            context_missing: ContextMissing::NewTrace,
            processing: Processing::Trees(ProcessorConfig::default()),
            max_level: LevelFilter::INFO,
            location: false,
            tracked_inactivity: false,
            threads: false,
        }
    }
}

impl XrayLayerBuilder {
    /// The service name (`service.name`; segments are named after it unless
    /// `AWS_XRAY_TRACING_NAME` is set). Default: `OTEL_SERVICE_NAME`, else `service.name`
    /// in `OTEL_RESOURCE_ATTRIBUTES`, else `unknown_service:<executable>`.
    pub fn with_service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Adds resource attributes (over detected ones and `OTEL_RESOURCE_ATTRIBUTES`).
    pub fn with_resource_attributes(
        mut self,
        attributes: impl IntoIterator<Item = KeyValue>,
    ) -> Self {
        self.resource_attributes.extend(attributes);
        self
    }

    /// Sends to the X-Ray daemon at `address` (default: `AWS_XRAY_DAEMON_ADDRESS`, else
    /// `127.0.0.1:2000`).
    pub fn with_daemon_address(mut self, address: DaemonAddress) -> Self {
        self.transport = Transport::Daemon(address);
        self
    }

    /// Sends with this exporter configuration instead: any transport (daemon, file,
    /// stdout, a writer, PutTraceSegments with feature `xray-api`, the OTLP endpoint with
    /// feature `otlp`), queue limits, retries. Its translator is replaced by the one
    /// configured here ([`with_translator`](Self::with_translator)).
    pub fn with_exporter(mut self, exporter: XrayExporterBuilder) -> Self {
        self.transport = Transport::Exporter(Box::new(exporter));
        self
    }

    /// The sampler (default: `OTEL_TRACES_SAMPLER`, else parent-based always-on that
    /// decides `Sampled=?` requests itself). Use an [`XraySampler`] for X-Ray's
    /// centralized sampling rules, or set `OTEL_TRACES_SAMPLER=xray`.
    pub fn with_sampler(mut self, sampler: impl ShouldSample + 'static) -> Self {
        self.sampler = Some(Box::new(sampler));
        self
    }

    /// How spans become segment documents: annotation rules, log groups, resource
    /// metadata (default [`TranslatorConfig::default`]: fields named `annotation.<key>`
    /// are annotations).
    pub fn with_translator(mut self, config: TranslatorConfig) -> Self {
        self.translator = config;
        self
    }

    /// Fields indexed as annotations under their own names (in addition to the
    /// `annotation.` prefix rule); the same as
    /// [`with_indexed_attributes`](Self::with_indexed_attributes).
    pub fn with_annotation_keys<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.translator = self.translator.with_annotation_keys(keys);
        self
    }

    /// Attributes indexed as annotations, the Collector's `indexed_attributes` (also
    /// `XRAY_BRIDGE_INDEXED_ATTRIBUTES=a,b`, which wins).
    pub fn with_indexed_attributes<I, K>(self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.with_annotation_keys(keys)
    }

    /// Indexes every scalar attribute as an annotation (up to X-Ray's 50), the
    /// Collector's `index_all_attributes` (also `XRAY_BRIDGE_INDEX_ALL_ATTRIBUTES=true`,
    /// which wins).
    pub fn with_index_all_attributes(mut self, on: bool) -> Self {
        self.translator = self.translator.index_all_attributes(on);
        self
    }

    /// CloudWatch log groups of the service for the segments' `aws.cloudwatch_logs`, the
    /// Collector's `aws_log_groups`; the resource's `aws.log.group.names`/`.arns` win
    /// (also `XRAY_BRIDGE_LOG_GROUP_NAMES=a,b`, which wins over this).
    pub fn with_log_group_names<I, K>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.translator = self.translator.with_log_groups(names);
        self
    }

    /// Glob patterns of attribute keys that never leave the process (for personal data:
    /// `["user.*", "*.email"]`), on spans, events, links and the resource (also
    /// `XRAY_BRIDGE_METADATA_EXCLUDE='user.*,*.email'`, which wins). An invalid pattern
    /// makes [`build`](Self::build) fail with [`Error::MetadataExclude`].
    pub fn with_metadata_exclude<I, K>(mut self, patterns: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.metadata_exclude = Some(patterns.into_iter().map(Into::into).collect());
        self
    }

    /// Whether to detect the AWS platform (Lambda, ECS/Fargate, EKS, Elastic Beanstalk,
    /// EC2) for the resource (default on; a detector runs only where local evidence
    /// points at its platform).
    pub fn with_resource_detection(mut self, on: bool) -> Self {
        self.detection = on;
        self
    }

    /// The longest the start waits for resource detection (default 1.5 s); what is not
    /// detected by then is left out.
    pub fn with_detection_timeout(mut self, timeout: Duration) -> Self {
        self.detection_timeout = timeout;
        self
    }

    /// The text-map propagator (default: [`Propagator::from_env`], `X-Amzn-Trace-Id`
    /// unless `OTEL_PROPAGATORS` says otherwise).
    pub fn with_propagator(mut self, propagator: Propagator) -> Self {
        self.propagator = Some(propagator);
        self
    }

    /// Whether [`build`](Self::build) installs the propagator as OpenTelemetry's global
    /// text-map propagator, which the server layer, client middleware and AWS SDK
    /// interceptor use by default (default off; [`init`](Self::init) installs it).
    pub fn with_global_propagator(mut self, on: bool) -> Self {
        self.install_propagator = on;
        self
    }

    /// Whether [`build`](Self::build) installs the tracer provider as OpenTelemetry's
    /// global provider, for code that uses `opentelemetry::global::tracer` (default off;
    /// [`init`](Self::init) installs it).
    pub fn with_global_provider(mut self, on: bool) -> Self {
        self.install_provider = on;
        self
    }

    /// What happens to downstream calls made outside any trace (overridden by
    /// `AWS_XRAY_CONTEXT_MISSING`); see [`ContextMissing`].
    pub fn with_context_missing(mut self, mode: ContextMissing) -> Self {
        self.context_missing = mode;
        self
    }

    /// The rules of the default span processor, [`XraySpanProcessor`]: the streaming
    /// threshold (default 100 finished subsegments), the in-progress segment of long
    /// roots (default after 10 s), the maximum age of spans whose root never ends
    /// (default 60 s) and the byte budget of open trees (default 16 MiB).
    pub fn with_processor_config(mut self, config: ProcessorConfig) -> Self {
        self.processing = Processing::Trees(config);
        self
    }

    /// Uses OpenTelemetry's batch span processor instead of [`XraySpanProcessor`]: spans
    /// wait up to its schedule delay (5 s) and a batch may cut a request's tree in two.
    /// Its settings come from `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_QUEUE_SIZE` and
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` (read like every other variable: through
    /// [`with_env`](Self::with_env) when given). With the default processor they have no
    /// effect.
    pub fn with_batch_processor(mut self) -> Self {
        self.processing = Processing::Batch(None);
        self
    }

    /// Uses OpenTelemetry's batch span processor with these settings (instead of
    /// [`XraySpanProcessor`] and of the `OTEL_BSP_*` variables).
    pub fn with_batch_config(mut self, config: BatchConfig) -> Self {
        self.processing = Processing::Batch(Some(config));
        self
    }

    /// The most verbose level of spans and events sent to X-Ray (default INFO: DEBUG and
    /// TRACE spans, and the DEBUG/TRACE events of libraries such as hyper, stay out of
    /// segment documents). A filter of this layer only; other layers are not affected.
    pub fn with_max_level(mut self, level: impl Into<LevelFilter>) -> Self {
        self.max_level = level.into();
        self
    }

    /// Whether spans carry where they were declared (`code.file.path`,
    /// `code.module.name`, `code.line.number`; X-Ray metadata). Default off: three more
    /// attributes per span for the request thread to build and the exporter to encode.
    pub fn with_location(mut self, on: bool) -> Self {
        self.location = on;
        self
    }

    /// Whether spans carry the time they were entered and not (`busy_ns`, `idle_ns`;
    /// X-Ray metadata). Default off: X-Ray shows start and end times, and this timing
    /// reads the clock on every enter and exit.
    pub fn with_tracked_inactivity(mut self, on: bool) -> Self {
        self.tracked_inactivity = on;
        self
    }

    /// Whether spans carry the thread that created them (`thread.id`, `thread.name`;
    /// X-Ray metadata). Default off.
    pub fn with_threads(mut self, on: bool) -> Self {
        self.threads = on;
        self
    }

    /// Turns tracing off in code (`AWS_XRAY_SDK_ENABLED=false` does the same): the layer
    /// is a no-op.
    pub fn enabled(mut self, on: bool) -> Self {
        self.enabled = on;
        self
    }

    /// Reads the environment through `var` instead of the process environment (for tests
    /// and embedding).
    pub fn with_env(
        mut self,
        var: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.vars = Arc::new(var);
        self
    }

    #[cfg(test)]
    pub(crate) fn with_paths(mut self, paths: Paths) -> Self {
        self.paths = paths;
        self
    }

    /// The resource: detected platform < `AWS_REGION` < `OTEL_RESOURCE_ATTRIBUTES` <
    /// attributes given here < service name.
    fn resource(&self, env: &EnvSettings) -> Resource {
        let mut attrs: Vec<KeyValue> = Vec::new();
        if self.detection {
            let vars = &self.vars;
            let evidence = Evidence::gather(|n| vars(n), &self.paths);
            let (detected, cut) = resource::detect(evidence, self.detection_timeout);
            if cut {
                eprintln!(
                    "tracing-xray: resource detection took over {:?}; starting without the rest",
                    self.detection_timeout
                );
            }
            attrs.extend(detected);
        }
        attrs.extend(
            TelemetryResourceDetector
                .detect()
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        );
        attrs.push(KeyValue::new("telemetry.distro.name", "tracing-xray"));
        attrs.push(KeyValue::new(
            "telemetry.distro.version",
            env!("CARGO_PKG_VERSION"),
        ));
        if let Some(region) = &env.region
            && !attrs.iter().any(|kv| kv.key.as_str() == "cloud.region")
        {
            attrs.push(KeyValue::new("cloud.provider", "aws"));
            attrs.push(KeyValue::new("cloud.region", region.clone()));
        }
        // In Lambda, the platform is known without a detector (the translator puts the
        // invocation's spans under Lambda's function segment by it); the X-Ray SDKs name
        // the service after the function.
        let lambda_function = (self.vars)("AWS_LAMBDA_FUNCTION_NAME").filter(|n| !n.is_empty());
        if let Some(function) = &lambda_function
            && !attrs.iter().any(|kv| kv.key.as_str() == "cloud.platform")
        {
            attrs.push(KeyValue::new("cloud.provider", "aws"));
            attrs.push(KeyValue::new("cloud.platform", "aws_lambda"));
            attrs.push(KeyValue::new("faas.name", function.clone()));
        }
        attrs.extend(env.resource_attributes.iter().cloned());
        attrs.extend(self.resource_attributes.iter().cloned());
        let from_attributes = attrs
            .iter()
            .rev()
            .find(|kv| kv.key.as_str() == "service.name")
            .map(|kv| kv.value.to_string());
        let name = self
            .service_name
            .clone()
            .or_else(|| env.service_name.clone())
            .or(from_attributes)
            .or_else(|| lambda_function.clone())
            .unwrap_or_else(default_service_name);
        // Later attributes override earlier ones with the same key.
        Resource::builder_empty()
            .with_attributes(attrs)
            .with_service_name(name)
            .build()
    }

    /// Builds the layer, setting nothing global: detects the resource, starts the exporter
    /// (and the sampling poller with `xray` sampling). OpenTelemetry's global propagator
    /// and provider are installed only when asked ([`with_global_propagator`],
    /// [`with_global_provider`]); [`init`](Self::init) does everything.
    ///
    /// [`with_global_propagator`]: Self::with_global_propagator
    /// [`with_global_provider`]: Self::with_global_provider
    ///
    /// # Errors
    ///
    /// A malformed `AWS_XRAY_DAEMON_ADDRESS`, sampler argument or exclusion pattern, or an
    /// exporter that cannot start; see [`Error`].
    ///
    /// # Panics
    ///
    /// Never: the one `expect` follows the match arm that took the `xray` sampler.
    pub fn build<S>(self) -> Result<XrayLayer<S>, Error>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let env = EnvSettings::from_vars(|n| (self.vars)(n));
        if !env.enabled || !self.enabled {
            return Ok(XrayLayer::disabled());
        }
        for warning in &env.warnings {
            eprintln!("tracing-xray: {warning}");
        }
        let resource = self.resource(&env);

        let mut translator = self.translator.clone();
        if let Some(patterns) = &self.metadata_exclude {
            translator = translator.with_metadata_exclude(patterns.iter().cloned())?;
        }
        translator = translator.with_settings_from(|n| (self.vars)(n))?;
        if let Some(name) = &env.tracing_name {
            translator = translator.with_service_name(name.clone());
        }
        let in_lambda = (self.vars)("AWS_LAMBDA_FUNCTION_NAME").is_some_and(|n| !n.is_empty());
        let env_daemon = env
            .daemon_address
            .as_deref()
            .map(str::parse::<DaemonAddress>)
            .transpose()
            .map_err(Error::DaemonAddress)?;
        // The environment wins over an address given in code, which wins over the default;
        // the sampler polls the same daemon the documents go to.
        let daemon = match (&env_daemon, &self.transport) {
            (Some(address), _) => address.clone(),
            (None, Transport::Daemon(address)) => address.clone(),
            (None, _) => DaemonAddress::default(),
        };
        let exporter = match self.transport {
            Transport::Default | Transport::Daemon(_) => {
                XrayExporter::builder().with_daemon_address(daemon.clone())
            }
            Transport::Exporter(builder) => *builder,
        }
        .with_translator(Translator::new(translator))
        .build()?;
        let metrics = exporter.metrics().clone();
        let exporter_flush = exporter.flush_handle();

        let mut xray_sampler = None;
        let sampler: Box<dyn ShouldSample> = match (self.sampler, &env.sampler) {
            (Some(sampler), _) => sampler,
            (None, Some(SamplerName::Xray(arg))) => {
                let mut b = XraySampler::builder().with_endpoint(format!("http://{}", daemon.tcp));
                if let Some(arg) = arg {
                    b = b.with_sampler_arg(arg)?;
                }
                let sampler = b.with_resource(&resource).build()?;
                xray_sampler = Some(sampler.clone());
                Box::new(sampler)
            }
            (None, Some(name)) => otel_sampler(name).expect("not xray"),
            (None, None) => Box::new(XrayParentBased::new(
                opentelemetry_sdk::trace::Sampler::AlwaysOn,
            )),
        };
        let mode = env.context_missing.unwrap_or(self.context_missing);
        let sampler: Box<dyn ShouldSample> = match mode {
            ContextMissing::NewTrace => sampler,
            mode => Box::new(ContextMissingSampler::new(sampler, mode)),
        };
        let sampler: Box<dyn ShouldSample> = if in_lambda {
            Box::new(LambdaSampler::new(sampler))
        } else {
            sampler
        };

        let provider = SdkTracerProvider::builder()
            .with_id_generator(opentelemetry_aws::trace::XrayIdGenerator::default())
            .with_sampler(sampler)
            .with_resource(resource);
        let provider = match self.processing {
            Processing::Trees(config) => {
                provider.with_span_processor(XraySpanProcessor::new(exporter, config))
            }
            Processing::Batch(config) => provider.with_span_processor(FlushingProcessor::new(
                BatchSpanProcessor::builder(exporter)
                    .with_batch_config(config.unwrap_or_else(|| env.batch.config()))
                    .build(),
                exporter_flush,
            )),
        }
        .build();
        let tracer = provider.tracer_with_scope(
            InstrumentationScope::builder("tracing-xray")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        );
        let propagator = self
            .propagator
            .unwrap_or_else(|| Propagator::from_settings(&env));
        if self.install_propagator {
            opentelemetry::global::set_text_map_propagator(propagator.clone());
        }
        if self.install_provider {
            opentelemetry::global::set_tracer_provider(provider.clone());
        }
        let inner = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(self.location)
            .with_tracked_inactivity(self.tracked_inactivity)
            .with_threads(self.threads)
            .with_target(false)
            .with_filter(self.max_level);
        Ok(XrayLayer {
            inner: Some(inner),
            handle: Some(Handle {
                provider,
                propagator,
                metrics,
                xray_sampler,
            }),
        })
    }

    /// Builds the layer, installs `tracing_subscriber::registry().with(layer)` as the global
    /// default subscriber, and its propagator and tracer provider as OpenTelemetry's
    /// globals (so the propagation helpers and `OTEL_PROPAGATORS` work with no further
    /// wiring). Keep the returned guard: it flushes and shuts down on drop. Nothing global
    /// is set when building fails or another subscriber is already installed.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let _guard = tracing_xray::builder().with_service_name("checkout").try_init()?;
    /// # Ok::<(), tracing_xray::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build), and [`Error::Init`] when a global subscriber is already
    /// set.
    pub fn try_init(self) -> Result<FlushGuard, Error> {
        let layer = self.build::<tracing_subscriber::Registry>()?;
        let guard = layer.flush_guard();
        let provider = layer.provider().cloned();
        let propagator = layer.propagator();
        tracing_subscriber::registry().with(layer).try_init()?;
        // A disabled layer (`AWS_XRAY_SDK_ENABLED=false`) has no provider: nothing to share.
        if let Some(provider) = provider {
            opentelemetry::global::set_text_map_propagator(propagator);
            opentelemetry::global::set_tracer_provider(provider);
        }
        Ok(guard)
    }

    /// [`try_init`](Self::try_init) for a program that cannot run without its tracing.
    ///
    /// # Panics
    ///
    /// When [`try_init`](Self::try_init) fails, with its error.
    pub fn init(self) -> FlushGuard {
        self.try_init()
            .unwrap_or_else(|e| panic!("tracing-xray: cannot start: {e}"))
    }
}

/// `unknown_service:<executable name>`, as the OpenTelemetry specification says.
fn default_service_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map_or_else(
            || "unknown_service".to_owned(),
            |exe| format!("unknown_service:{exe}"),
        )
}
