//! [`XrayPropagator`]: `X-Amzn-Trace-Id` as an OpenTelemetry [`TextMapPropagator`], and
//! the two conversions it is built on ([`context_from_header`], [`header_from_context`]).

use opentelemetry::Context;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter,
};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use xray_model::carry::{HopState, TRACE_STATE_KEY};
use xray_model::{Sampled, SegmentId, TraceHeader};

/// The header name as carriers store it (HTTP header names are case-insensitive; the
/// `http` crate and OpenTelemetry's map carriers use lower case).
pub const HEADER_FIELD: &str = "x-amzn-trace-id";

/// Reads and writes the AWS X-Ray `X-Amzn-Trace-Id` header.
///
/// Extraction never loses a trace whose `Root` is good:
/// - `Root;Parent;Sampled=1|0` gives a remote span context with that parent and decision;
/// - a header without `Parent` (load balancers) gives a remote span context whose span id
///   is a stand-in ([`HopState::stand_in_parent`]) and whose trace state says "no parent",
///   so the translator writes a segment with no `parent_id`;
/// - `Sampled=?` or no `Sampled` gives an unsampled context whose trace state says "no
///   decision yet", so the X-Ray sampler decides locally;
/// - extra fields (`Self`, `Lineage`, custom) ride in the trace state and are sent on.
///
/// Injection writes `Root`, `Parent` (the current span), `Sampled` (its decision) and the
/// carried fields. It composes with W3C trace context through
/// [`TextMapCompositePropagator`](opentelemetry::propagation::TextMapCompositePropagator);
/// when both headers name the same trace, the other trace-state entries are kept.
///
/// # Examples
///
/// ```
/// use std::collections::HashMap;
/// use opentelemetry::propagation::TextMapPropagator;
/// use opentelemetry::trace::TraceContextExt;
/// use xray_propagation::XrayPropagator;
///
/// let propagator = XrayPropagator::new();
/// let mut carrier = HashMap::new();
/// carrier.insert(
///     "x-amzn-trace-id".to_string(),
///     "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".to_string(),
/// );
/// let cx = propagator.extract(&carrier);
/// assert!(cx.span().span_context().is_sampled());
///
/// let mut out = HashMap::new();
/// propagator.inject_context(&cx, &mut out);
/// assert_eq!(
///     out["x-amzn-trace-id"],
///     "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
/// );
/// ```
#[derive(Debug, Clone)]
pub struct XrayPropagator {
    fields: [String; 1],
}

impl XrayPropagator {
    /// A propagator for `X-Amzn-Trace-Id`.
    pub fn new() -> Self {
        Self {
            fields: [HEADER_FIELD.to_owned()],
        }
    }
}

impl Default for XrayPropagator {
    fn default() -> Self {
        Self::new()
    }
}

impl TextMapPropagator for XrayPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        if let Some(header) = header_from_context(cx) {
            injector.set(HEADER_FIELD, header.to_string());
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let Some(header) = extractor
            .get(HEADER_FIELD)
            .and_then(|v| TraceHeader::parse(v).ok())
        else {
            return cx.clone();
        };
        // Keep what another propagator (W3C `tracestate`) found for the same trace.
        let existing = cx.span().span_context().clone();
        let base = (existing.is_valid()
            && existing.trace_id().to_bytes() == header.root.to_bytes())
        .then(|| existing.trace_state().clone());
        cx.with_remote_span_context(context_from_header_with_state(&header, base))
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.fields)
    }
}

/// The remote span context an incoming header stands for (see [`XrayPropagator`]).
///
/// # Examples
///
/// ```
/// use xray_model::TraceHeader;
/// use xray_model::carry::{HopState, TRACE_STATE_KEY};
/// use xray_propagation::context_from_header;
///
/// let h = TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793").unwrap();
/// let sc = context_from_header(&h);
/// assert!(sc.is_valid() && sc.is_remote() && !sc.is_sampled());
/// let hop = HopState::decode(sc.trace_state().get(TRACE_STATE_KEY).unwrap());
/// assert!(hop.no_parent && hop.decision_deferred());
/// ```
pub fn context_from_header(header: &TraceHeader) -> SpanContext {
    context_from_header_with_state(header, None)
}

fn context_from_header_with_state(header: &TraceHeader, base: Option<TraceState>) -> SpanContext {
    let parent = header.parent.filter(|p| !p.is_zero());
    let span_id = parent.unwrap_or_else(|| HopState::stand_in_parent(header.root));
    let flags = match header.sampled.decision() {
        Some(true) => TraceFlags::SAMPLED,
        _ => TraceFlags::default(),
    };
    let hop = HopState {
        no_parent: parent.is_none(),
        sampled: header.sampled,
        fields: header.fields.clone(),
    };
    let state = base.unwrap_or_default();
    SpanContext::new(
        TraceId::from_bytes(header.root.to_bytes()),
        SpanId::from_bytes(span_id.to_bytes()),
        flags,
        true,
        with_hop(state, hop),
    )
}

/// Puts the hop state into the trace state under [`TRACE_STATE_KEY`], replacing an older
/// entry. Fields that do not fit a trace-state value are dropped before the flags are.
fn with_hop(state: TraceState, mut hop: HopState) -> TraceState {
    let state = state.delete(TRACE_STATE_KEY).unwrap_or_default();
    loop {
        let Some(value) = hop.encode() else {
            return state;
        };
        match state.insert(TRACE_STATE_KEY, value) {
            Ok(with) => return with,
            Err(_) if !hop.fields.is_empty() => hop.fields.clear(),
            Err(_) => return state,
        }
    }
}

/// What the trace state of a span context says about its hop, when anything.
pub fn hop_state(span_context: &SpanContext) -> Option<HopState> {
    span_context
        .trace_state()
        .get(TRACE_STATE_KEY)
        .map(HopState::decode)
}

/// The header to send downstream from the span in `cx`, or `None` with no valid span.
///
/// For a local span: `Parent` is the span, `Sampled` its decision. For a remote span
/// context (forwarding without a span of our own): the incoming header is rebuilt, with
/// no `Parent` when it had none and the undecided `Sampled` it came with.
///
/// # Examples
///
/// ```
/// use opentelemetry::Context;
/// use opentelemetry::trace::TraceContextExt;
/// use xray_model::{Sampled, TraceHeader};
/// use xray_propagation::{context_from_header, header_from_context};
///
/// let incoming = TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?;Lineage=a87bd80c:0").unwrap();
/// let cx = Context::new().with_remote_span_context(context_from_header(&incoming));
/// assert_eq!(header_from_context(&cx), Some(incoming));
/// ```
pub fn header_from_context(cx: &Context) -> Option<TraceHeader> {
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return None;
    }
    let root = xray_model::TraceId::from_bytes(sc.trace_id().to_bytes());
    let span_id = SegmentId::from_bytes(sc.span_id().to_bytes());
    let decided = Sampled::from_decision(sc.is_sampled());
    // No entry: the caller sent a full header, so the sampled bit is its decision.
    let hop = hop_state(sc).unwrap_or(HopState {
        sampled: decided,
        ..HopState::default()
    });
    let (parent, sampled) = if sc.is_remote() {
        let parent = (!hop.no_parent).then_some(span_id);
        let sampled = if hop.decision_deferred() && !sc.is_sampled() {
            hop.sampled
        } else {
            decided
        };
        (parent, sampled)
    } else {
        (Some(span_id), decided)
    };
    Some(TraceHeader {
        root,
        parent,
        sampled,
        fields: hop.fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";

    fn extract(header: &str) -> Context {
        let mut carrier = HashMap::new();
        carrier.insert(HEADER_FIELD.to_owned(), header.to_owned());
        XrayPropagator::new().extract(&carrier)
    }

    #[test]
    fn missing_or_garbage_header_leaves_the_context_alone() {
        let cx = XrayPropagator::new().extract(&HashMap::new());
        assert!(!cx.span().span_context().is_valid());
        assert!(
            !extract("Parent=53995c3f42cd8ad8")
                .span()
                .span_context()
                .is_valid()
        );
    }

    #[test]
    fn zero_parent_counts_as_no_parent() {
        let cx = extract(&format!("Root={ROOT};Parent=0000000000000000;Sampled=1"));
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid());
        assert!(hop_state(&sc).unwrap().no_parent);
    }

    #[test]
    fn local_child_of_a_deferred_hop_sends_its_own_decision() {
        let incoming = extract(&format!("Root={ROOT};Sampled=?"));
        let remote = incoming.span().span_context().clone();
        let local = SpanContext::new(
            remote.trace_id(),
            SpanId::from_bytes(0x1234_5678_9abc_def0u64.to_be_bytes()),
            TraceFlags::SAMPLED,
            false,
            remote.trace_state().clone(),
        );
        let cx = Context::new().with_remote_span_context(local);
        // with_remote_span_context marks nothing: the flag comes from the SpanContext.
        let h = header_from_context(&cx).unwrap();
        assert_eq!(
            h.to_string(),
            format!("Root={ROOT};Parent=123456789abcdef0;Sampled=1")
        );
    }

    #[test]
    fn oversized_fields_are_dropped_but_flags_kept() {
        let big = "v".repeat(300);
        let cx = extract(&format!("Root={ROOT};Sampled=?;Big={big}"));
        let hop = hop_state(cx.span().span_context()).unwrap();
        assert!(hop.no_parent);
        assert_eq!(hop.sampled, Sampled::Requested);
        assert!(hop.fields.is_empty());
    }
}
