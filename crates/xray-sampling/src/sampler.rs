//! [`XraySampler`]: the OpenTelemetry sampler, and its builder.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId};
use opentelemetry::{Context, Key, KeyValue, StringValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SamplingDecision, SamplingResult, ShouldSample};
use xray_model::carry::{HopState, TRACE_STATE_KEY};

use crate::Error;
use crate::client::{ProxyClient, SamplingApi, proxy_urls};
use crate::local::LocalRules;
use crate::poller::{PollTiming, PollerHandle};
use crate::request::{Request, ServiceInfo};
use crate::shared::{Shared, epoch_second};

/// The span attribute naming the rule that made the decision; the translator writes it
/// to the segment's `aws.xray.sampling_rule_name`.
pub const SAMPLING_RULE_NAME_ATTRIBUTE: &str = "aws.xray.sampling_rule_name";

/// The daemon's sampling proxy on its default address.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:2000";

struct Inner {
    shared: Arc<Shared>,
    poller: Option<PollerHandle>,
    source: String,
}

/// An OpenTelemetry sampler that decides like the X-Ray SDKs: centralized sampling
/// rules (GetSamplingRules / GetSamplingTargets through the daemon's proxy or the X-Ray
/// API), local rule files, and the built-in default of one trace per second plus 5 %.
///
/// It is parent-based: a parent's sampled flag is followed, except for a remote parent
/// whose `X-Amzn-Trace-Id` left the decision open (`Sampled=?` or no `Sampled`), which is
/// decided here. Install it as the provider's sampler itself, not inside
/// `Sampler::ParentBased`, which would follow the unsampled flag of such a parent.
/// Decisions take no lock: rules are read through an `ArcSwap`, reservoirs
/// and counters are atomics. A background thread (no async runtime needed from the
/// application) polls X-Ray and stops when the last clone is dropped or on
/// [`shutdown`](XraySampler::shutdown).
///
/// # Examples
///
/// ```
/// use opentelemetry_sdk::trace::SdkTracerProvider;
/// use xray_sampling::XraySampler;
///
/// let sampler = XraySampler::builder()
///     .with_local_rules_only()
///     .with_service_name("checkout")
///     .build()
///     .unwrap();
/// let provider = SdkTracerProvider::builder().with_sampler(sampler).build();
/// # drop(provider);
/// ```
#[derive(Clone)]
pub struct XraySampler {
    inner: Arc<Inner>,
}

impl fmt::Debug for XraySampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XraySampler")
            .field("source", &self.inner.source)
            .field("client_id", &self.inner.shared.client_id)
            .field("service", &self.inner.shared.service)
            .finish_non_exhaustive()
    }
}

impl XraySampler {
    /// A builder with the defaults: the daemon's proxy at [`DEFAULT_ENDPOINT`], the
    /// built-in local rules as fallback.
    ///
    /// # Examples
    ///
    /// ```
    /// use xray_sampling::XraySampler;
    ///
    /// // Local rules only: no polling, the built-in default (1 per second plus 5 %).
    /// let sampler = XraySampler::builder().with_local_rules_only().build()?;
    /// assert!(!sampler.is_polling() && !sampler.has_central_rules());
    /// # Ok::<(), xray_sampling::Error>(())
    /// ```
    pub fn builder() -> XraySamplerBuilder {
        XraySamplerBuilder::default()
    }

    /// The `ClientID` (24 hex digits) this sampler reports statistics under.
    pub fn client_id(&self) -> &str {
        &self.inner.shared.client_id
    }

    /// The names of the rules decisions use right now, in the order they are tried.
    pub fn rule_names(&self) -> Vec<String> {
        let central = self.inner.shared.central.load();
        let rules = match central.as_deref() {
            Some(c) if epoch_second() <= c.expires_at => &c.rules,
            _ => &self.inner.shared.local,
        };
        rules.iter().map(|r| r.name.to_string()).collect()
    }

    /// Whether the rules in use came from X-Ray (not expired) rather than local rules.
    pub fn has_central_rules(&self) -> bool {
        self.inner
            .shared
            .central
            .load()
            .as_deref()
            .is_some_and(|c| epoch_second() <= c.expires_at)
    }

    /// Stops the background poller (decisions go on with the rules already loaded).
    /// Dropping the last clone does the same.
    pub fn shutdown(&self) {
        if let Some(poller) = &self.inner.poller {
            poller.stop();
        }
    }

    /// Whether the background poller is running.
    pub fn is_polling(&self) -> bool {
        self.inner.poller.as_ref().is_some_and(|p| !p.is_finished())
    }

    /// Decides by the rules: returns the decision and the deciding rule's name.
    fn decide_by_rules(&self, attributes: &[KeyValue]) -> (bool, StringValue) {
        let shared = &*self.inner.shared;
        let now = epoch_second();
        let request = Request::from_attributes(attributes);
        let central = shared.central.load();
        if let Some(c) = central.as_deref()
            && now <= c.expires_at
            && let Some(rule) = c.rules.pick(&request, &shared.service)
        {
            return (rule.decide(now), StringValue::from(Arc::clone(&rule.name)));
        }
        match shared.local.pick(&request, &shared.service) {
            Some(rule) => (rule.decide(now), StringValue::from(Arc::clone(&rule.name))),
            None => (false, StringValue::from("")),
        }
    }
}

impl ShouldSample for XraySampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        _trace_id: TraceId,
        _name: &str,
        _span_kind: &SpanKind,
        attributes: &[KeyValue],
        _links: &[Link],
    ) -> SamplingResult {
        if let Some(followed) = parent_decision(parent_context) {
            return followed;
        }
        let (sampled, rule) = self.decide_by_rules(attributes);
        SamplingResult {
            decision: if sampled {
                SamplingDecision::RecordAndSample
            } else {
                SamplingDecision::Drop
            },
            attributes: vec![KeyValue::new(
                Key::from_static_str(SAMPLING_RULE_NAME_ATTRIBUTE),
                Value::String(rule),
            )],
            trace_state: parent_context
                .filter(|cx| cx.has_active_span())
                .map(|cx| cx.span().span_context().trace_state().clone())
                .unwrap_or_default(),
        }
    }
}

/// Where rules come from.
#[derive(Clone)]
enum Source {
    /// The daemon-style proxy (unsigned).
    Proxy(String),
    /// The X-Ray API, signed with this configuration.
    #[cfg(feature = "xray-api")]
    Api(Box<aws_config::SdkConfig>),
    /// No polling: local rules only.
    LocalOnly,
}

/// Builds an [`XraySampler`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use xray_sampling::XraySampler;
///
/// let sampler = XraySampler::builder()
///     .with_endpoint("http://127.0.0.1:2000")
///     .with_service_name("checkout")
///     .with_service_type("AWS::ECS::Container")
///     .with_targets_interval(Duration::from_secs(10))
///     .build()
///     .unwrap();
/// assert_eq!(sampler.client_id().len(), 24);
/// ```
#[derive(Clone)]
pub struct XraySamplerBuilder {
    source: Source,
    rules_file: Option<PathBuf>,
    local_rules: Option<LocalRules>,
    service: ServiceInfo,
    timing: PollTiming,
}

impl fmt::Debug for XraySamplerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XraySamplerBuilder")
            .field("source", &self.source_label())
            .field("rules_file", &self.rules_file)
            .field("service", &self.service)
            .field("timing", &self.timing)
            .finish_non_exhaustive()
    }
}

impl Default for XraySamplerBuilder {
    fn default() -> Self {
        XraySamplerBuilder {
            source: Source::Proxy(DEFAULT_ENDPOINT.to_owned()),
            rules_file: None,
            local_rules: None,
            service: ServiceInfo::default(),
            timing: PollTiming {
                rules_interval: Duration::from_secs(300),
                targets_interval: Duration::from_secs(10),
                rules_expiry: Duration::from_secs(3600),
            },
        }
    }
}

impl XraySamplerBuilder {
    /// Polls a daemon-style sampling proxy (the X-Ray daemon, the CloudWatch agent, the
    /// collector's `awsproxy`, our binary): `http://host:port`, unsigned.
    pub fn with_endpoint(mut self, url: impl Into<String>) -> Self {
        self.source = Source::Proxy(url.into());
        self
    }

    /// Polls the X-Ray API directly, signed with this AWS configuration.
    #[cfg(feature = "xray-api")]
    #[cfg_attr(docsrs, doc(cfg(feature = "xray-api")))]
    pub fn with_xray_api(mut self, config: &aws_config::SdkConfig) -> Self {
        self.source = Source::Api(Box::new(config.clone()));
        self
    }

    /// Does not poll: decides by the local rules only.
    pub fn with_local_rules_only(mut self) -> Self {
        self.source = Source::LocalOnly;
        self
    }

    /// Local rules from an SDK rule file (read by [`build`](Self::build)): the only
    /// rules with [`with_local_rules_only`](Self::with_local_rules_only), else the fallback.
    pub fn with_rules_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.rules_file = Some(path.into());
        self
    }

    /// Local rules already parsed (overrides [`with_rules_file`](Self::with_rules_file)).
    pub fn with_local_rules(mut self, rules: LocalRules) -> Self {
        self.local_rules = Some(rules);
        self
    }

    /// The service name `ServiceName` rules match.
    pub fn with_service_name(mut self, name: impl Into<String>) -> Self {
        self.service.name = Some(name.into());
        self
    }

    /// The service type `ServiceType` rules match (an origin such as
    /// `AWS::EC2::Instance`).
    pub fn with_service_type(mut self, service_type: impl Into<String>) -> Self {
        self.service.service_type = Some(service_type.into());
        self
    }

    /// The ARN `ResourceARN` rules match when a span names none (`cloud.resource_id`).
    pub fn with_resource_arn(mut self, arn: impl Into<String>) -> Self {
        self.service.resource_arn = Some(arn.into());
        self
    }

    /// Takes the service name (`service.name`), service type (`cloud.platform`, with
    /// `aws.ecs.launchtype`) and resource ARN (`cloud.resource_id`,
    /// `aws.ecs.container.arn`, `faas.id`) from an OpenTelemetry resource; values set
    /// explicitly are kept.
    pub fn with_resource(mut self, resource: &Resource) -> Self {
        let get = |key: &'static str| match resource.get_ref(&Key::from_static_str(key)) {
            Some(Value::String(s)) => Some(s.as_str().to_owned()),
            _ => None,
        };
        if self.service.name.is_none() {
            self.service.name = get("service.name");
        }
        if self.service.service_type.is_none()
            && let Some(platform) = get("cloud.platform")
        {
            let launch_type = get("aws.ecs.launchtype");
            self.service.service_type =
                xray_model::origin::from_cloud_platform(&platform, launch_type.as_deref())
                    .map(str::to_owned);
        }
        if self.service.resource_arn.is_none() {
            self.service.resource_arn = get("cloud.resource_id")
                .or_else(|| get("aws.ecs.container.arn"))
                .or_else(|| get("faas.id"));
        }
        self
    }

    /// How often rules are fetched (default 5 minutes; up to 5 s jitter is added).
    pub fn with_rules_interval(mut self, interval: Duration) -> Self {
        self.timing.rules_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// How often statistics are reported for new targets when X-Ray sets no interval of
    /// its own (default 10 seconds).
    pub fn with_targets_interval(mut self, interval: Duration) -> Self {
        self.timing.targets_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// How long the last rules fetched stay in use while the endpoint fails (default
    /// 1 hour); then the local rules decide.
    pub fn with_rules_expiry(mut self, expiry: Duration) -> Self {
        self.timing.rules_expiry = expiry;
        self
    }

    /// Applies `OTEL_TRACES_SAMPLER_ARG`-style options: comma-separated `key=value`
    /// pairs among `endpoint=URL`, `rules_file=PATH`, `local_only=true|false`,
    /// `polling_interval=SECONDS` (rules), `targets_interval=SECONDS`, `service_name=NAME`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSamplerArg`] for an item that is not `key=value`, an unknown key,
    /// or a value of the wrong kind.
    ///
    /// # Examples
    ///
    /// ```
    /// use xray_sampling::XraySampler;
    /// let builder = XraySampler::builder()
    ///     .with_sampler_arg("endpoint=http://localhost:2000, polling_interval=60")
    ///     .unwrap();
    /// assert!(XraySampler::builder().with_sampler_arg("colour=blue").is_err());
    /// # drop(builder);
    /// ```
    pub fn with_sampler_arg(mut self, arg: &str) -> Result<Self, Error> {
        let bad = |m: String| Error::InvalidSamplerArg(m);
        for item in arg.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| bad(format!("{item:?} is not key=value")))?;
            let seconds = || {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| bad(format!("{key}={value:?} is not a number of seconds")))
            };
            self = match key {
                "endpoint" => self.with_endpoint(value),
                "rules_file" => self.with_rules_file(value),
                "local_only" | "local" => match value {
                    "true" | "1" => self.with_local_rules_only(),
                    "false" | "0" => self,
                    _ => return Err(bad(format!("{key}={value:?} is not true or false"))),
                },
                "polling_interval" => self.with_rules_interval(seconds()?),
                "targets_interval" => self.with_targets_interval(seconds()?),
                "service_name" => self.with_service_name(value),
                _ => return Err(bad(format!("unknown option {key:?}"))),
            };
        }
        Ok(self)
    }

    fn source_label(&self) -> String {
        match &self.source {
            Source::Proxy(url) => url.clone(),
            #[cfg(feature = "xray-api")]
            Source::Api(config) => format!(
                "X-Ray API ({})",
                config.region().map_or("no region", |r| r.as_ref())
            ),
            Source::LocalOnly => "local rules".to_owned(),
        }
    }

    /// Reads the rules file, checks the endpoint and starts the poller.
    ///
    /// # Errors
    ///
    /// [`Error::ReadRulesFile`] or [`Error::InvalidRules`] for the rules file,
    /// [`Error::InvalidEndpoint`] for an endpoint that is not an `http(s)://host:port` URL,
    /// and [`Error::Spawn`] when the poller thread cannot start.
    ///
    /// # Examples
    ///
    /// ```
    /// use xray_sampling::XraySampler;
    ///
    /// // Without `with_local_rules_only`, the poller would fetch rules from the endpoint
    /// // (default http://127.0.0.1:2000, the daemon's or xray-bridge's sampling proxy).
    /// let sampler = XraySampler::builder()
    ///     .with_service_name("checkout")
    ///     .with_local_rules_only()
    ///     .build()?;
    /// assert_eq!(sampler.rule_names(), ["Default"]);
    ///
    /// assert!(XraySampler::builder().with_endpoint("not a url").build().is_err());
    /// # Ok::<(), xray_sampling::Error>(())
    /// ```
    pub fn build(self) -> Result<XraySampler, Error> {
        let local = match (self.local_rules.clone(), &self.rules_file) {
            (Some(rules), _) => rules,
            (None, Some(path)) => LocalRules::from_file(path)?,
            (None, None) => LocalRules::default(),
        };
        let label = self.source_label();
        let shared = Arc::new(Shared {
            central: ArcSwapOption::empty(),
            local: local.to_rule_set(),
            service: self.service,
            client_id: new_client_id(),
        });
        type Connect = Box<dyn FnOnce() -> Result<Box<dyn SamplingApi>, String> + Send>;
        let connect: Option<Connect> = match self.source {
            Source::LocalOnly => None,
            Source::Proxy(url) => {
                proxy_urls(&url).map_err(|e| Error::InvalidEndpoint(url.clone(), e))?;
                Some(Box::new(move || {
                    ProxyClient::new(&url).map(|c| Box::new(c) as Box<dyn SamplingApi>)
                }))
            }
            #[cfg(feature = "xray-api")]
            Source::Api(config) => Some(Box::new(move || {
                crate::client::ApiClient::new(&config).map(|c| Box::new(c) as Box<dyn SamplingApi>)
            })),
        };
        let poller = match connect {
            Some(connect) => Some(
                PollerHandle::spawn(Arc::clone(&shared), connect, self.timing, label.clone())
                    .map_err(Error::Spawn)?,
            ),
            None => None,
        };
        Ok(XraySampler {
            inner: Arc::new(Inner {
                shared,
                poller,
                source: label,
            }),
        })
    }
}

/// 24 random hex digits.
fn new_client_id() -> String {
    let (a, b) = (fastrand::u64(..), fastrand::u32(..));
    format!("{a:016x}{b:08x}")
}

/// X-Ray's parent-based rule, shared by every sampler that honours `X-Amzn-Trace-Id`: the
/// decision of a valid parent, or `None` (decide locally) when there is no parent or the
/// parent is remote and its header left the decision open (`Sampled=?`, no `Sampled`, or
/// `Root=` alone, as carried in the trace state by the propagator).
pub fn parent_decision(parent_context: Option<&Context>) -> Option<SamplingResult> {
    let cx = parent_context.filter(|cx| cx.has_active_span())?;
    let span = cx.span();
    let sc = span.span_context();
    let deferred = sc.is_remote()
        && sc
            .trace_state()
            .get(TRACE_STATE_KEY)
            .is_some_and(|v| HopState::decode(v).decision_deferred());
    (sc.is_valid() && !deferred).then(|| SamplingResult {
        decision: if sc.is_sampled() {
            SamplingDecision::RecordAndSample
        } else {
            SamplingDecision::Drop
        },
        attributes: Vec::new(),
        trace_state: sc.trace_state().clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_is_clone_send_sync_debug() {
        fn check<T: Clone + Send + Sync + fmt::Debug + ShouldSample + 'static>() {}
        check::<XraySampler>();
        let sampler = XraySampler::builder()
            .with_local_rules_only()
            .build()
            .unwrap();
        assert!(format!("{sampler:?}").contains("local rules"));
    }

    #[test]
    fn client_ids_are_24_hex_and_differ() {
        let a = new_client_id();
        assert_eq!(a.len(), 24);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, new_client_id());
    }

    #[test]
    fn resource_gives_service_fields() {
        let resource = Resource::builder_empty()
            .with_service_name("orders")
            .with_attributes([
                KeyValue::new("cloud.platform", "aws_ecs"),
                KeyValue::new("aws.ecs.launchtype", "fargate"),
                KeyValue::new("aws.ecs.container.arn", "arn:aws:ecs:x"),
            ])
            .build();
        let b = XraySampler::builder()
            .with_service_name("explicit")
            .with_resource(&resource);
        assert_eq!(b.service.name.as_deref(), Some("explicit"));
        assert_eq!(b.service.service_type.as_deref(), Some("AWS::ECS::Fargate"));
        assert_eq!(b.service.resource_arn.as_deref(), Some("arn:aws:ecs:x"));
    }

    #[test]
    fn sampler_arg_options() {
        let b = XraySampler::builder()
            .with_sampler_arg(" endpoint = http://h:2000 ,rules_file=/r.json,polling_interval=60,targets_interval=0.5,,")
            .unwrap();
        assert!(matches!(&b.source, Source::Proxy(u) if u == "http://h:2000"));
        assert_eq!(b.rules_file, Some(PathBuf::from("/r.json")));
        assert_eq!(b.timing.rules_interval, Duration::from_secs(60));
        assert_eq!(b.timing.targets_interval, Duration::from_millis(500));
        let b = XraySampler::builder()
            .with_sampler_arg("local_only=true")
            .unwrap();
        assert!(matches!(b.source, Source::LocalOnly));
        for bad in [
            "endpoint",
            "polling_interval=-1",
            "polling_interval=x",
            "local_only=maybe",
            "x=y",
        ] {
            assert!(
                matches!(
                    XraySampler::builder().with_sampler_arg(bad),
                    Err(Error::InvalidSamplerArg(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_endpoints_are_refused() {
        for bad in ["", "localhost:2000", "ftp://h:1", "http://"] {
            let e = XraySampler::builder()
                .with_endpoint(bad)
                .build()
                .unwrap_err();
            assert!(matches!(e, Error::InvalidEndpoint(..)), "{bad}: {e}");
        }
    }
}
