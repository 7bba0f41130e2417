//! The environment variables the layer honours, read through one lookup function so that
//! tests can give their own.

use std::fmt;
use std::str::FromStr;

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::{BatchConfig, BatchConfigBuilder};

/// `AWS_XRAY_SDK_ENABLED`: `false` turns the layer into a no-op.
pub const SDK_ENABLED_ENV: &str = "AWS_XRAY_SDK_ENABLED";
/// `AWS_XRAY_CONTEXT_MISSING`: what happens to a downstream call made outside any trace.
pub const CONTEXT_MISSING_ENV: &str = "AWS_XRAY_CONTEXT_MISSING";
/// `AWS_XRAY_DAEMON_ADDRESS`: where the daemon listens (`host:port` or
/// `tcp:host:port udp:host:port`).
pub const DAEMON_ADDRESS_ENV: &str = "AWS_XRAY_DAEMON_ADDRESS";
/// `AWS_XRAY_TRACING_NAME`: the segment name, overriding the service name.
pub const TRACING_NAME_ENV: &str = xray_translate::TRACING_NAME_ENV;
/// `OTEL_SERVICE_NAME`: the service name.
pub const SERVICE_NAME_ENV: &str = "OTEL_SERVICE_NAME";
/// `OTEL_RESOURCE_ATTRIBUTES`: `key=value,...` resource attributes (values percent-encoded).
pub const RESOURCE_ATTRIBUTES_ENV: &str = "OTEL_RESOURCE_ATTRIBUTES";
/// `OTEL_PROPAGATORS`: comma-separated propagator names.
pub const PROPAGATORS_ENV: &str = "OTEL_PROPAGATORS";
/// `OTEL_TRACES_SAMPLER`: the sampler name.
pub const SAMPLER_ENV: &str = "OTEL_TRACES_SAMPLER";
/// `OTEL_TRACES_SAMPLER_ARG`: the sampler's argument.
pub const SAMPLER_ARG_ENV: &str = "OTEL_TRACES_SAMPLER_ARG";
/// `AWS_REGION` (or `AWS_DEFAULT_REGION`): the region, recorded as `cloud.region`.
pub const REGION_ENV: &str = "AWS_REGION";
/// `OTEL_BSP_SCHEDULE_DELAY`: milliseconds between the batch processor's exports (with
/// `with_batch_processor()` only).
pub const BSP_SCHEDULE_DELAY_ENV: &str = "OTEL_BSP_SCHEDULE_DELAY";
/// `OTEL_BSP_MAX_QUEUE_SIZE`: the batch processor's queue, in spans (with
/// `with_batch_processor()` only).
pub const BSP_MAX_QUEUE_SIZE_ENV: &str = "OTEL_BSP_MAX_QUEUE_SIZE";
/// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`: the most spans per export of the batch processor
/// (with `with_batch_processor()` only).
pub const BSP_MAX_EXPORT_BATCH_SIZE_ENV: &str = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE";

/// What happens when a downstream call (a Client or Producer span: an HTTP call, an AWS
/// SDK call) starts outside any trace, so that X-Ray SDKs would have no segment to attach
/// the subsegment to (`AWS_XRAY_CONTEXT_MISSING`).
///
/// | value | behaviour |
/// | --- | --- |
/// | unset ([`ContextMissing::NewTrace`]) | the call starts a trace of its own and is sent as a segment (the OpenTelemetry rule; nothing is lost) |
/// | `LOG_ERROR` ([`ContextMissing::LogError`]) | the call is not traced, and an error is logged (at most once every 10 seconds, with a count) |
/// | `IGNORE_ERROR` ([`ContextMissing::Ignore`]) | the call is not traced, silently |
/// | `RUNTIME_ERROR` | as `LOG_ERROR`: the X-Ray SDKs throw here, but a panic inside a `tracing` subscriber would take down the request (or abort the process when it happens in a span's drop), so the span is dropped and the error logged instead |
///
/// Spans of other kinds (Server, Consumer, Internal: `tracing`'s default) always start a
/// trace when they have no parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ContextMissing {
    /// An orphan downstream call starts its own trace (default).
    #[default]
    NewTrace,
    /// An orphan downstream call is dropped and logged (`LOG_ERROR`, `RUNTIME_ERROR`).
    LogError,
    /// An orphan downstream call is dropped silently (`IGNORE_ERROR`).
    Ignore,
}

/// An `AWS_XRAY_CONTEXT_MISSING` value that is none of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown AWS_XRAY_CONTEXT_MISSING value {0:?} (expected LOG_ERROR, IGNORE_ERROR or RUNTIME_ERROR)"
)]
pub struct UnknownContextMissing(pub String);

impl FromStr for ContextMissing {
    type Err = UnknownContextMissing;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "LOG_ERROR" | "RUNTIME_ERROR" => Ok(ContextMissing::LogError),
            "IGNORE_ERROR" => Ok(ContextMissing::Ignore),
            _ => Err(UnknownContextMissing(s.to_owned())),
        }
    }
}

/// One `OTEL_PROPAGATORS` entry the layer knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PropagatorName {
    TraceContext,
    Baggage,
    Xray,
    None,
}

/// The sampler `OTEL_TRACES_SAMPLER` selects.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SamplerName {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio(f64),
    /// X-Ray sampling rules, with the `OTEL_TRACES_SAMPLER_ARG` options.
    Xray(Option<String>),
}

/// Everything the environment says, parsed; problems that do not stop the start are in
/// `warnings`.
#[derive(Debug, Clone, Default)]
pub(crate) struct EnvSettings {
    pub enabled: bool,
    pub service_name: Option<String>,
    pub resource_attributes: Vec<KeyValue>,
    pub propagators: Option<Vec<PropagatorName>>,
    pub sampler: Option<SamplerName>,
    pub daemon_address: Option<String>,
    pub tracing_name: Option<String>,
    pub context_missing: Option<ContextMissing>,
    pub region: Option<String>,
    pub batch: BatchSettings,
    pub warnings: Vec<String>,
}

/// The `OTEL_BSP_*` settings of OpenTelemetry's batch processor (each `None` when unset
/// or invalid: the specification's default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BatchSettings {
    pub schedule_delay: Option<Duration>,
    pub max_queue_size: Option<usize>,
    pub max_export_batch_size: Option<usize>,
}

impl BatchSettings {
    /// The batch processor's configuration: these settings over the specification's
    /// defaults (5 s, 2,048 spans, 512 per export; the batch never over the queue). Read
    /// through the builder's variable lookup, never the process environment directly.
    pub(crate) fn config(&self) -> BatchConfig {
        BatchConfigBuilder::default()
            .with_scheduled_delay(self.schedule_delay.unwrap_or(Duration::from_millis(5_000)))
            .with_max_queue_size(self.max_queue_size.unwrap_or(2_048))
            .with_max_export_batch_size(self.max_export_batch_size.unwrap_or(512))
            .build()
    }
}

impl EnvSettings {
    /// Reads the process environment.
    pub(crate) fn from_process() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads through `var` (name -> value).
    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut warnings = Vec::new();
        let enabled = match get(SDK_ENABLED_ENV) {
            None => true,
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => false,
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => true,
            Some(v) => {
                warnings.push(format!(
                    "{SDK_ENABLED_ENV}={v:?} is not true or false; tracing stays on"
                ));
                true
            }
        };
        let resource_attributes = get(RESOURCE_ATTRIBUTES_ENV)
            .map(|v| parse_resource_attributes(&v, &mut warnings))
            .unwrap_or_default();
        let propagators = get(PROPAGATORS_ENV).map(|v| parse_propagators(&v, &mut warnings));
        let sampler = get(SAMPLER_ENV)
            .and_then(|name| parse_sampler(&name, get(SAMPLER_ARG_ENV), &mut warnings));
        let context_missing = get(CONTEXT_MISSING_ENV).and_then(|v| match v.parse() {
            Ok(c) => Some(c),
            Err(e) => {
                warnings.push(format!("{e}; orphan calls start their own trace"));
                None
            }
        });
        let mut number = |name: &str, min: u64| {
            let v = get(name)?;
            match v.parse::<u64>() {
                Ok(n) if n >= min => Some(n),
                _ => {
                    warnings.push(format!(
                        "{name}={v:?} is not a whole number of at least {min}; using the default"
                    ));
                    None
                }
            }
        };
        let batch = BatchSettings {
            schedule_delay: number(BSP_SCHEDULE_DELAY_ENV, 0).map(Duration::from_millis),
            max_queue_size: number(BSP_MAX_QUEUE_SIZE_ENV, 1).map(saturating_usize),
            max_export_batch_size: number(BSP_MAX_EXPORT_BATCH_SIZE_ENV, 1).map(saturating_usize),
        };
        EnvSettings {
            enabled,
            service_name: get(SERVICE_NAME_ENV),
            resource_attributes,
            propagators,
            sampler,
            daemon_address: get(DAEMON_ADDRESS_ENV),
            tracing_name: get(TRACING_NAME_ENV),
            context_missing,
            region: get(REGION_ENV).or_else(|| get("AWS_DEFAULT_REGION")),
            batch,
            warnings,
        }
    }
}

fn saturating_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// `key=value,key2=value2`, values percent-decoded, as the OpenTelemetry specification
/// describes for `OTEL_RESOURCE_ATTRIBUTES`.
fn parse_resource_attributes(value: &str, warnings: &mut Vec<String>) -> Vec<KeyValue> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                out.push(KeyValue::new(k.trim().to_owned(), percent_decode(v.trim())));
            }
            _ => warnings.push(format!(
                "{RESOURCE_ATTRIBUTES_ENV}: {item:?} is not key=value; skipped"
            )),
        }
    }
    out
}

/// Decodes `%XX` escapes; anything malformed is kept as written, invalid UTF-8 replaced.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn parse_propagators(value: &str, warnings: &mut Vec<String>) -> Vec<PropagatorName> {
    let mut out = Vec::new();
    for name in value.split(',').map(|s| s.trim().to_ascii_lowercase()) {
        let p = match name.as_str() {
            "" => continue,
            "tracecontext" => PropagatorName::TraceContext,
            "baggage" => PropagatorName::Baggage,
            "xray" | "xray-lambda" => PropagatorName::Xray,
            "none" => PropagatorName::None,
            other => {
                warnings.push(format!(
                    "{PROPAGATORS_ENV}: unknown propagator {other:?} ignored"
                ));
                continue;
            }
        };
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

fn parse_sampler(
    name: &str,
    arg: Option<String>,
    warnings: &mut Vec<String>,
) -> Option<SamplerName> {
    let ratio = |warnings: &mut Vec<String>| match arg.as_deref().map(str::parse::<f64>) {
        None => 1.0,
        Some(Ok(r)) if (0.0..=1.0).contains(&r) => r,
        Some(_) => {
            warnings.push(format!(
                "{SAMPLER_ARG_ENV}={:?} is not a ratio between 0 and 1; using 1.0",
                arg.as_deref().unwrap_or("")
            ));
            1.0
        }
    };
    Some(match name.to_ascii_lowercase().as_str() {
        "always_on" => SamplerName::AlwaysOn,
        "always_off" => SamplerName::AlwaysOff,
        "traceidratio" => SamplerName::TraceIdRatio(ratio(warnings)),
        "parentbased_always_on" => SamplerName::ParentBasedAlwaysOn,
        "parentbased_always_off" => SamplerName::ParentBasedAlwaysOff,
        "parentbased_traceidratio" => SamplerName::ParentBasedTraceIdRatio(ratio(warnings)),
        "xray" => SamplerName::Xray(arg.clone()),
        other => {
            warnings.push(format!(
                "{SAMPLER_ENV}={other:?} is not supported; using parentbased_always_on"
            ));
            return None;
        }
    })
}

impl fmt::Display for PropagatorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PropagatorName::TraceContext => "tracecontext",
            PropagatorName::Baggage => "baggage",
            PropagatorName::Xray => "xray",
            PropagatorName::None => "none",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> EnvSettings {
        EnvSettings::from_vars(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn nothing_set_means_defaults() {
        let s = settings(&[]);
        assert!(s.enabled);
        assert!(s.service_name.is_none() && s.tracing_name.is_none());
        assert!(s.propagators.is_none() && s.sampler.is_none());
        assert!(s.daemon_address.is_none() && s.context_missing.is_none());
        assert!(s.resource_attributes.is_empty() && s.warnings.is_empty());
    }

    #[test]
    fn sdk_enabled_values() {
        for off in ["false", "FALSE", " False ", "0"] {
            assert!(!settings(&[(SDK_ENABLED_ENV, off)]).enabled, "{off}");
        }
        for on in ["true", "1", ""] {
            let s = settings(&[(SDK_ENABLED_ENV, on)]);
            assert!(s.enabled && s.warnings.is_empty(), "{on}");
        }
        let s = settings(&[(SDK_ENABLED_ENV, "nope")]);
        assert!(s.enabled);
        assert_eq!(s.warnings.len(), 1);
    }

    #[test]
    fn resource_attributes_are_split_and_decoded() {
        let s = settings(&[(
            RESOURCE_ATTRIBUTES_ENV,
            "service.name=checkout, deployment.environment=prod%2Ceu ,broken,team=a%3Db,odd=%zz",
        )]);
        let kv: Vec<(String, String)> = s
            .resource_attributes
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect();
        assert_eq!(
            kv,
            [
                ("service.name".into(), "checkout".into()),
                ("deployment.environment".into(), "prod,eu".into()),
                ("team".into(), "a=b".into()),
                ("odd".into(), "%zz".into()),
            ]
        );
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    }

    #[test]
    fn propagators_are_read_in_order_without_duplicates() {
        let s = settings(&[(PROPAGATORS_ENV, "tracecontext, XRAY,baggage,xray,jaeger")]);
        assert_eq!(
            s.propagators.unwrap(),
            [
                PropagatorName::TraceContext,
                PropagatorName::Xray,
                PropagatorName::Baggage
            ]
        );
        assert_eq!(s.warnings.len(), 1);
        let s = settings(&[(PROPAGATORS_ENV, "xray-lambda")]);
        assert_eq!(s.propagators.unwrap(), [PropagatorName::Xray]);
        let s = settings(&[(PROPAGATORS_ENV, "none")]);
        assert_eq!(s.propagators.unwrap(), [PropagatorName::None]);
    }

    #[test]
    fn samplers_and_arguments() {
        let read = |name: &str, arg: Option<&str>| {
            let mut pairs = vec![(SAMPLER_ENV, name)];
            if let Some(a) = arg {
                pairs.push((SAMPLER_ARG_ENV, a));
            }
            let s = settings(&pairs);
            (s.sampler, s.warnings.len())
        };
        assert_eq!(read("always_on", None), (Some(SamplerName::AlwaysOn), 0));
        assert_eq!(read("ALWAYS_OFF", None), (Some(SamplerName::AlwaysOff), 0));
        assert_eq!(
            read("traceidratio", Some("0.25")),
            (Some(SamplerName::TraceIdRatio(0.25)), 0)
        );
        assert_eq!(
            read("parentbased_traceidratio", Some("2")),
            (Some(SamplerName::ParentBasedTraceIdRatio(1.0)), 1)
        );
        assert_eq!(
            read("parentbased_always_off", None),
            (Some(SamplerName::ParentBasedAlwaysOff), 0)
        );
        assert_eq!(
            read("xray", Some("local_only=true")),
            (Some(SamplerName::Xray(Some("local_only=true".into()))), 0)
        );
        assert_eq!(read("jaeger_remote", None), (None, 1));
    }

    #[test]
    fn context_missing_values() {
        let read = |v: &str| settings(&[(CONTEXT_MISSING_ENV, v)]).context_missing;
        assert_eq!(read("LOG_ERROR"), Some(ContextMissing::LogError));
        assert_eq!(read("runtime_error"), Some(ContextMissing::LogError));
        assert_eq!(read("IGNORE_ERROR"), Some(ContextMissing::Ignore));
        let s = settings(&[(CONTEXT_MISSING_ENV, "PANIC")]);
        assert_eq!((s.context_missing, s.warnings.len()), (None, 1));
    }

    #[test]
    fn batch_processor_settings() {
        let s = settings(&[]);
        assert_eq!(s.batch, BatchSettings::default());
        let defaults = format!("{:?}", s.batch.config());
        assert!(
            defaults
                .contains("max_queue_size: 2048, scheduled_delay: 5s, max_export_batch_size: 512"),
            "{defaults}"
        );
        let s = settings(&[
            (BSP_SCHEDULE_DELAY_ENV, "250"),
            (BSP_MAX_QUEUE_SIZE_ENV, "64"),
            (BSP_MAX_EXPORT_BATCH_SIZE_ENV, "100"),
        ]);
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        assert_eq!(
            s.batch,
            BatchSettings {
                schedule_delay: Some(Duration::from_millis(250)),
                max_queue_size: Some(64),
                max_export_batch_size: Some(100),
            }
        );
        // The batch is never larger than the queue.
        let config = format!("{:?}", s.batch.config());
        assert!(
            config
                .contains("max_queue_size: 64, scheduled_delay: 250ms, max_export_batch_size: 64"),
            "{config}"
        );
        let s = settings(&[
            (BSP_SCHEDULE_DELAY_ENV, "soon"),
            (BSP_MAX_QUEUE_SIZE_ENV, "0"),
            (BSP_MAX_EXPORT_BATCH_SIZE_ENV, "-3"),
        ]);
        assert_eq!(s.batch, BatchSettings::default());
        assert_eq!(s.warnings.len(), 3, "{:?}", s.warnings);
    }

    #[test]
    fn names_addresses_and_region() {
        let s = settings(&[
            (SERVICE_NAME_ENV, " checkout "),
            (TRACING_NAME_ENV, "Checkout API"),
            (DAEMON_ADDRESS_ENV, "tcp:127.0.0.1:2000 udp:127.0.0.1:2001"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
        ]);
        assert_eq!(s.service_name.as_deref(), Some("checkout"));
        assert_eq!(s.tracing_name.as_deref(), Some("Checkout API"));
        assert_eq!(
            s.daemon_address.as_deref(),
            Some("tcp:127.0.0.1:2000 udp:127.0.0.1:2001")
        );
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
        let s = settings(&[
            (REGION_ENV, "us-east-2"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
        ]);
        assert_eq!(s.region.as_deref(), Some("us-east-2"));
    }
}
