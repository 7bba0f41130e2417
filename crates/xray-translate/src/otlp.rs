//! [`SpanView`] for OTLP protobuf spans (the binary's input).

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{Span, SpanFlags, span, status};
use xray_model::{SegmentId, TraceId, epoch_seconds_from_nanos};

use crate::view::{Attributes, EventTime, EventView, LinkView, SpanKind, SpanStatus, SpanView};

/// An OTLP span with its resource and instrumentation scope, seen through [`SpanView`].
#[derive(Debug, Clone, Copy)]
pub struct OtlpSpan<'a> {
    /// The span.
    pub span: &'a Span,
    /// The resource of its `ResourceSpans`, if any.
    pub resource: Option<&'a Resource>,
    /// The scope of its `ScopeSpans`, if any.
    pub scope: Option<&'a InstrumentationScope>,
}

impl<'a> OtlpSpan<'a> {
    /// Views `span` with its resource and scope.
    pub fn new(
        span: &'a Span,
        resource: Option<&'a Resource>,
        scope: Option<&'a InstrumentationScope>,
    ) -> Self {
        Self {
            span,
            resource,
            scope,
        }
    }
}

/// Reads up to `N` id bytes, right-aligned, so an id of the wrong length never panics
/// (such a span is refused by [`crate::check`] before it is translated).
pub(crate) fn id_bytes<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let take = bytes.len().min(N);
    out[N - take..].copy_from_slice(&bytes[bytes.len() - take..]);
    out
}

/// The value of `key` in a W3C `tracestate` header value, borrowed.
pub(crate) fn trace_state_get<'s>(header: &'s str, key: &str) -> Option<&'s str> {
    header.split(',').find_map(|member| {
        let (k, v) = member.trim().split_once('=')?;
        (k == key).then_some(v)
    })
}

/// How OTLP's span fields read as a [`SpanView`], written once for every decoding of
/// them ([`OtlpSpan`] over prost's types, [`crate::WireSpan`] over the request bytes).
pub(crate) struct OtlpRules<'a> {
    pub(crate) trace_id: &'a [u8],
    pub(crate) span_id: &'a [u8],
    pub(crate) parent_span_id: &'a [u8],
}

impl<'a> OtlpRules<'a> {
    /// The parent id, `None` when empty or all zeros.
    #[inline]
    pub(crate) fn parent_span_id(&self) -> Option<SegmentId> {
        let id = SegmentId::from_bytes(id_bytes(self.parent_span_id));
        (!id.is_zero()).then_some(id)
    }

    /// Ids of the lengths OTLP gives them, trace and span ids not all zeros.
    #[inline]
    pub(crate) fn ids_are_well_formed(&self) -> bool {
        self.trace_id.len() == 16
            && self.span_id.len() == 8
            && matches!(self.parent_span_id.len(), 0 | 8)
            && self.trace_id.iter().any(|b| *b != 0)
            && self.span_id.iter().any(|b| *b != 0)
    }

    /// Whether `flags` say the parent is remote (both "known" and "remote" bits set).
    #[inline]
    pub(crate) fn parent_is_remote(flags: u32) -> bool {
        let known = SpanFlags::ContextHasIsRemoteMask as u32;
        let remote = SpanFlags::ContextIsRemoteMask as u32;
        flags & known != 0 && flags & remote != 0
    }

    /// OTLP's span kind number as a [`SpanKind`] (unknown ones are internal).
    #[inline]
    pub(crate) fn kind(kind: i32) -> SpanKind {
        match span::SpanKind::try_from(kind) {
            Ok(span::SpanKind::Server) => SpanKind::Server,
            Ok(span::SpanKind::Client) => SpanKind::Client,
            Ok(span::SpanKind::Producer) => SpanKind::Producer,
            Ok(span::SpanKind::Consumer) => SpanKind::Consumer,
            _ => SpanKind::Internal,
        }
    }

    /// The end, `None` for 0 (not ended).
    #[inline]
    pub(crate) fn end_time(nanos: u64) -> Option<f64> {
        (nanos != 0).then(|| epoch_seconds_from_nanos(nanos))
    }

    /// The status of a code and message (an absent status is code 0, unset).
    #[inline]
    pub(crate) fn status(code: i32, message: &'a str) -> SpanStatus<'a> {
        if code == status::StatusCode::Error as i32 {
            SpanStatus::Error(message)
        } else if code == status::StatusCode::Ok as i32 {
            SpanStatus::Ok
        } else {
            SpanStatus::Unset
        }
    }

    /// The scope, when it has a name; an empty version is none.
    #[inline]
    pub(crate) fn scope(name: &'a str, version: &'a str) -> Option<(&'a str, Option<&'a str>)> {
        let version = (!version.is_empty()).then_some(version);
        (!name.is_empty()).then_some((name, version))
    }
}

impl<'a> OtlpSpan<'a> {
    fn rules(&self) -> OtlpRules<'a> {
        OtlpRules {
            trace_id: &self.span.trace_id,
            span_id: &self.span.span_id,
            parent_span_id: &self.span.parent_span_id,
        }
    }
}

impl<'a> SpanView<'a> for OtlpSpan<'a> {
    fn trace_id(&self) -> TraceId {
        TraceId::from_bytes(id_bytes(&self.span.trace_id))
    }

    fn span_id(&self) -> SegmentId {
        SegmentId::from_bytes(id_bytes(&self.span.span_id))
    }

    fn parent_span_id(&self) -> Option<SegmentId> {
        self.rules().parent_span_id()
    }

    fn parent_is_remote(&self) -> bool {
        OtlpRules::parent_is_remote(self.span.flags)
    }

    fn trace_state(&self, key: &str) -> Option<&'a str> {
        trace_state_get(&self.span.trace_state, key)
    }

    fn kind(&self) -> SpanKind {
        OtlpRules::kind(self.span.kind)
    }

    fn name(&self) -> &'a str {
        &self.span.name
    }

    fn start_time(&self) -> f64 {
        epoch_seconds_from_nanos(self.span.start_time_unix_nano)
    }

    fn end_time(&self) -> Option<f64> {
        OtlpRules::end_time(self.span.end_time_unix_nano)
    }

    fn status(&self) -> SpanStatus<'a> {
        match &self.span.status {
            Some(s) => OtlpRules::status(s.code, &s.message),
            None => SpanStatus::Unset,
        }
    }

    fn attributes(&self) -> Attributes<'a> {
        Attributes::otlp(&self.span.attributes)
    }

    fn resource(&self) -> Attributes<'a> {
        crate::resource::otlp_attributes(self.resource)
    }

    fn events(&self) -> impl Iterator<Item = EventView<'a>> {
        self.span.events.iter().map(|e| EventView {
            name: &e.name,
            time: EventTime::UnixNanos(e.time_unix_nano),
            attributes: Attributes::otlp(&e.attributes),
        })
    }

    fn links(&self) -> impl Iterator<Item = LinkView<'a>> {
        self.span.links.iter().map(|l| LinkView {
            trace_id: TraceId::from_bytes(id_bytes(&l.trace_id)),
            span_id: SegmentId::from_bytes(id_bytes(&l.span_id)),
            attributes: Attributes::otlp(&l.attributes),
        })
    }

    fn ids_are_well_formed(&self) -> bool {
        self.rules().ids_are_well_formed()
    }

    fn scope(&self) -> Option<(&'a str, Option<&'a str>)> {
        let scope = self.scope?;
        OtlpRules::scope(&scope.name, &scope.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_ids_do_not_panic() {
        assert_eq!(id_bytes::<8>(&[1, 2]), [0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(id_bytes::<2>(&[1, 2, 3]), [2, 3]);
        assert_eq!(id_bytes::<4>(&[]), [0; 4]);
    }

    #[test]
    fn trace_state_members_are_found_with_spaces() {
        let h = "congo=t61rcWkgMzE, xray=np;s? ,rojo=00f067aa0ba902b7";
        assert_eq!(trace_state_get(h, "xray"), Some("np;s?"));
        assert_eq!(trace_state_get(h, "rojo"), Some("00f067aa0ba902b7"));
        assert_eq!(trace_state_get(h, "nope"), None);
        assert_eq!(trace_state_get("", "xray"), None);
    }
}
