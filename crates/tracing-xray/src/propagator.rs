//! [`Propagator`]: the text-map propagator the layer installs, cloneable so the server
//! layer and client middleware can use the same one.

use std::fmt;
use std::sync::Arc;

use opentelemetry::Context;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapCompositePropagator, TextMapPropagator,
};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use xray_propagation::XrayPropagator;

use crate::env::{EnvSettings, PropagatorName};

/// A composite of the propagators `OTEL_PROPAGATORS` names (`xray`, `tracecontext`,
/// `baggage`, `none`; default `xray`), in that order; cheap to clone.
///
/// Pass it to the server layer and client middleware so they read and write the same
/// headers as the globally installed propagator:
///
/// # Examples
///
/// ```
/// let propagator = tracing_xray::Propagator::from_env();
/// # #[cfg(feature = "axum")]
/// let _server = tracing_xray::propagation::server::XrayServerLayer::new()
///     .with_propagator(propagator.clone());
/// ```
#[derive(Clone)]
pub struct Propagator {
    inner: Arc<TextMapCompositePropagator>,
    names: Arc<[String]>,
}

impl Propagator {
    /// `X-Amzn-Trace-Id` only.
    pub fn xray() -> Self {
        Self::from_names(&[PropagatorName::Xray])
    }

    /// `X-Amzn-Trace-Id` and W3C `traceparent`/`tracestate` (written both; when both are
    /// received, `X-Amzn-Trace-Id` wins).
    pub fn xray_and_tracecontext() -> Self {
        Self::from_names(&[PropagatorName::TraceContext, PropagatorName::Xray])
    }

    /// The propagators `OTEL_PROPAGATORS` names; `xray` when it is unset.
    pub fn from_env() -> Self {
        Self::from_settings(&EnvSettings::from_process())
    }

    pub(crate) fn from_settings(env: &EnvSettings) -> Self {
        match &env.propagators {
            Some(names) if !names.is_empty() => Self::from_names(names),
            _ => Self::xray(),
        }
    }

    pub(crate) fn from_names(names: &[PropagatorName]) -> Self {
        let mut list: Vec<Box<dyn TextMapPropagator + Send + Sync>> = Vec::new();
        let mut labels = Vec::new();
        if !names.contains(&PropagatorName::None) {
            for name in names {
                list.push(match name {
                    PropagatorName::TraceContext => Box::new(TraceContextPropagator::new()),
                    PropagatorName::Baggage => Box::new(BaggagePropagator::new()),
                    PropagatorName::Xray => Box::new(XrayPropagator::new()),
                    PropagatorName::None => continue,
                });
                labels.push(name.to_string());
            }
        }
        Propagator {
            inner: Arc::new(TextMapCompositePropagator::new(list)),
            names: labels.into(),
        }
    }

    /// The propagators in use, by their `OTEL_PROPAGATORS` names.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl Default for Propagator {
    fn default() -> Self {
        Self::xray()
    }
}

impl fmt::Debug for Propagator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Propagator").field(&self.names).finish()
    }
}

impl TextMapPropagator for Propagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        self.inner.inject_context(cx, injector)
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        self.inner.extract_with_context(cx, extractor)
    }

    fn fields(&self) -> FieldIter<'_> {
        self.inner.fields()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };

    fn headers(p: &Propagator) -> HashMap<String, String> {
        let cx = Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_hex("5759e988bd862e3fe1be46a994272793").unwrap(),
            SpanId::from_hex("53995c3f42cd8ad8").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ));
        let mut out = HashMap::new();
        p.inject_context(&cx, &mut out);
        out
    }

    #[test]
    fn env_names_select_propagators() {
        let env = |v: &str| {
            EnvSettings::from_vars(|n| (n == crate::env::PROPAGATORS_ENV).then(|| v.to_owned()))
        };
        let xray = headers(&Propagator::from_settings(&EnvSettings::default()));
        assert_eq!(
            xray.get("x-amzn-trace-id").map(String::as_str),
            Some("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
        );
        assert!(!xray.contains_key("traceparent"));

        let both = Propagator::from_settings(&env("tracecontext,xray"));
        assert_eq!(both.names(), ["tracecontext", "xray"]);
        let h = headers(&both);
        assert!(h.contains_key("x-amzn-trace-id"));
        assert_eq!(
            h.get("traceparent").map(String::as_str),
            Some("00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01")
        );
        let fields: Vec<&str> = both.fields().collect();
        assert!(fields.contains(&"traceparent") && fields.contains(&"x-amzn-trace-id"));

        let w3c = headers(&Propagator::from_settings(&env("tracecontext")));
        assert!(w3c.contains_key("traceparent") && !w3c.contains_key("x-amzn-trace-id"));
        assert!(headers(&Propagator::from_settings(&env("none,xray"))).is_empty());
        // Nothing known: the default rather than no propagation at all.
        assert_eq!(Propagator::from_settings(&env("jaeger")).names(), ["xray"]);
    }

    #[test]
    fn extracts_xray_headers() {
        let p = Propagator::xray_and_tracecontext();
        let carrier = HashMap::from([(
            "x-amzn-trace-id".to_owned(),
            "Root=1-5759e988-bd862e3fe1be46a994272793; Parent=53995c3f42cd8ad8; Sampled=1"
                .to_owned(),
        )]);
        let cx = p.extract(&carrier);
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(sc.span_id(), SpanId::from_hex("53995c3f42cd8ad8").unwrap());
    }
}
