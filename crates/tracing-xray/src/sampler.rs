//! The samplers the layer installs: parent-based with X-Ray's deferred decisions, the
//! `AWS_XRAY_CONTEXT_MISSING` rule for downstream calls outside any trace, and, in Lambda,
//! no trace outside an invocation.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, SamplingResult, ShouldSample};

use xray_export::log_limit::LogLimiter;

use crate::env::{ContextMissing, SamplerName};

/// Like OpenTelemetry's `ParentBased`, except that a remote parent whose
/// `X-Amzn-Trace-Id` left the decision open (`Sampled=?`, no `Sampled`, `Root=` only) is
/// decided by `root` here instead of being followed as "not sampled".
#[derive(Debug, Clone)]
pub(crate) struct XrayParentBased {
    root: Sampler,
}

impl XrayParentBased {
    pub(crate) fn new(root: Sampler) -> Self {
        XrayParentBased { root }
    }
}

impl ShouldSample for XrayParentBased {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        if let Some(followed) = xray_sampling::parent_decision(parent_context) {
            return followed;
        }
        self.root
            .should_sample(parent_context, trace_id, name, span_kind, attributes, links)
    }
}

/// The sampler an `OTEL_TRACES_SAMPLER` name other than `xray` selects.
pub(crate) fn otel_sampler(name: &SamplerName) -> Option<Box<dyn ShouldSample>> {
    Some(match *name {
        SamplerName::AlwaysOn => Box::new(Sampler::AlwaysOn),
        SamplerName::AlwaysOff => Box::new(Sampler::AlwaysOff),
        SamplerName::TraceIdRatio(r) => Box::new(Sampler::TraceIdRatioBased(r)),
        SamplerName::ParentBasedAlwaysOn => Box::new(XrayParentBased::new(Sampler::AlwaysOn)),
        SamplerName::ParentBasedAlwaysOff => Box::new(XrayParentBased::new(Sampler::AlwaysOff)),
        SamplerName::ParentBasedTraceIdRatio(r) => {
            Box::new(XrayParentBased::new(Sampler::TraceIdRatioBased(r)))
        }
        SamplerName::Xray(_) => return None,
    })
}

/// In Lambda, only the invocations' spans leave the process: a span with no parent (the
/// runtime's own spans, work at start-up) would start a trace of its own, an orphan that
/// costs money and clutters the map, so it is not sampled. Spans under an invocation have
/// Lambda's function segment (or a span under it) as parent and are decided by `inner`.
#[derive(Debug)]
pub(crate) struct LambdaSampler {
    inner: Box<dyn ShouldSample>,
    logged: std::sync::atomic::AtomicBool,
}

impl Clone for LambdaSampler {
    fn clone(&self) -> Self {
        LambdaSampler {
            inner: self.inner.clone(),
            logged: std::sync::atomic::AtomicBool::new(self.logged.load(Ordering::Relaxed)),
        }
    }
}

impl LambdaSampler {
    pub(crate) fn new(inner: Box<dyn ShouldSample>) -> Self {
        LambdaSampler {
            inner,
            logged: Default::default(),
        }
    }
}

impl ShouldSample for LambdaSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let orphan = !parent_context.is_some_and(|cx| cx.span().span_context().is_valid());
        if orphan {
            if !self.logged.swap(true, Ordering::Relaxed) {
                tracing::info!(
                    target: "tracing_xray",
                    span = name,
                    "in Lambda, spans outside an invocation are not traced (this and later ones)"
                );
            }
            return SamplingResult {
                decision: SamplingDecision::Drop,
                attributes: Vec::new(),
                trace_state: Default::default(),
            };
        }
        self.inner
            .should_sample(parent_context, trace_id, name, span_kind, attributes, links)
    }
}

/// Time between two "context missing" log lines.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Applies [`ContextMissing`] before `inner` decides.
#[derive(Debug, Clone)]
pub(crate) struct ContextMissingSampler {
    inner: Box<dyn ShouldSample>,
    mode: ContextMissing,
    log: Arc<LogLimiter>,
}

impl ContextMissingSampler {
    pub(crate) fn new(inner: Box<dyn ShouldSample>, mode: ContextMissing) -> Self {
        ContextMissingSampler {
            inner,
            mode,
            log: Arc::new(LogLimiter::new(LOG_EVERY)),
        }
    }

    fn report(&self, name: &str) {
        if let Some(count) = self.log.allow("context_missing") {
            // Safe under a tracing-opentelemetry layer: it samples outside extension locks
            // and ignores events raised while it starts a span.
            tracing::error!(
                target: "tracing_xray",
                span = name,
                count,
                "AWS_XRAY_CONTEXT_MISSING: a downstream call started outside any trace was not traced"
            );
        }
    }
}

impl ShouldSample for ContextMissingSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let orphan = !parent_context.is_some_and(|cx| cx.span().span_context().is_valid());
        let downstream = matches!(span_kind, SpanKind::Client | SpanKind::Producer);
        if orphan && downstream && self.mode != ContextMissing::NewTrace {
            if self.mode == ContextMissing::LogError {
                self.report(name);
            }
            return SamplingResult {
                decision: SamplingDecision::Drop,
                attributes: Vec::new(),
                trace_state: Default::default(),
            };
        }
        self.inner
            .should_sample(parent_context, trace_id, name, span_kind, attributes, links)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceState};

    fn remote(sampled: bool, state: TraceState) -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(7),
            SpanId::from(9),
            if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            true,
            state,
        ))
    }

    fn decide(s: &dyn ShouldSample, cx: Option<&Context>, kind: SpanKind) -> SamplingDecision {
        s.should_sample(cx, TraceId::from(7), "span", &kind, &[], &[])
            .decision
    }

    #[test]
    fn parent_based_follows_parents_but_decides_deferred_ones() {
        let on = XrayParentBased::new(Sampler::AlwaysOn);
        let off = XrayParentBased::new(Sampler::AlwaysOff);
        let sampled = remote(true, TraceState::default());
        let unsampled = remote(false, TraceState::default());
        assert_eq!(
            decide(&off, Some(&sampled), SpanKind::Server),
            SamplingDecision::RecordAndSample
        );
        assert_eq!(
            decide(&on, Some(&unsampled), SpanKind::Server),
            SamplingDecision::Drop
        );
        assert_eq!(
            decide(&on, None, SpanKind::Server),
            SamplingDecision::RecordAndSample
        );
        assert_eq!(decide(&off, None, SpanKind::Server), SamplingDecision::Drop);
        // `Root=...;Sampled=?` as our propagator reads it: decided here.
        let header: xray_model::TraceHeader = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?"
            .parse()
            .unwrap();
        let sc = xray_propagation::context_from_header(&header);
        assert!(!sc.is_sampled());
        let deferred = Context::new().with_remote_span_context(sc);
        assert_eq!(
            decide(&on, Some(&deferred), SpanKind::Server),
            SamplingDecision::RecordAndSample
        );
        assert_eq!(
            decide(&off, Some(&deferred), SpanKind::Server),
            SamplingDecision::Drop
        );
    }

    #[test]
    fn context_missing_drops_only_orphan_downstream_calls() {
        let keep =
            ContextMissingSampler::new(Box::new(Sampler::AlwaysOn), ContextMissing::NewTrace);
        let log = ContextMissingSampler::new(Box::new(Sampler::AlwaysOn), ContextMissing::LogError);
        let ignore =
            ContextMissingSampler::new(Box::new(Sampler::AlwaysOn), ContextMissing::Ignore);
        let parent = remote(true, TraceState::default());
        for kind in [SpanKind::Client, SpanKind::Producer] {
            assert_eq!(
                decide(&keep, None, kind.clone()),
                SamplingDecision::RecordAndSample
            );
            assert_eq!(decide(&log, None, kind.clone()), SamplingDecision::Drop);
            assert_eq!(
                decide(&ignore, Some(&Context::new()), kind.clone()),
                SamplingDecision::Drop
            );
            assert_eq!(
                decide(&log, Some(&parent), kind.clone()),
                SamplingDecision::RecordAndSample
            );
        }
        for kind in [SpanKind::Server, SpanKind::Internal, SpanKind::Consumer] {
            assert_eq!(
                decide(&log, None, kind.clone()),
                SamplingDecision::RecordAndSample
            );
            assert_eq!(
                decide(&ignore, None, kind),
                SamplingDecision::RecordAndSample
            );
        }
        // Logged once, then counted until the next line is due.
        assert_eq!(log.log.take_pending(), [("context_missing", 1)]);
        assert_eq!(
            log.log.allow("context_missing"),
            None,
            "a line was written just now"
        );
        assert_eq!(
            ignore.log.allow("context_missing"),
            Some(1),
            "IGNORE_ERROR never logs"
        );
    }

    #[test]
    fn lambda_drops_only_spans_outside_an_invocation() {
        let lambda = LambdaSampler::new(Box::new(XrayParentBased::new(Sampler::AlwaysOn)));
        let invocation = remote(true, TraceState::default());
        for kind in [SpanKind::Internal, SpanKind::Server, SpanKind::Client] {
            assert_eq!(decide(&lambda, None, kind.clone()), SamplingDecision::Drop);
            assert_eq!(
                decide(&lambda, Some(&Context::new()), kind.clone()),
                SamplingDecision::Drop
            );
            assert_eq!(
                decide(&lambda, Some(&invocation), kind.clone()),
                SamplingDecision::RecordAndSample
            );
        }
        // Lambda's own decision is followed.
        let unsampled = remote(false, TraceState::default());
        assert_eq!(
            decide(&lambda, Some(&unsampled), SpanKind::Internal),
            SamplingDecision::Drop
        );
    }
}
