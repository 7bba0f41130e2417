//! [`SpanView`] for OTLP protobuf spans (the binary's input).

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{Span, SpanFlags, span, status};
use xray_model::{SegmentId, TraceId, epoch_seconds_from_nanos};

use crate::view::{Attributes, EventView, LinkView, SpanKind, SpanStatus, SpanView};

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
fn id_bytes<const N: usize>(bytes: &[u8]) -> [u8; N] {
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

impl<'a> SpanView<'a> for OtlpSpan<'a> {
    fn trace_id(&self) -> TraceId {
        TraceId::from_bytes(id_bytes(&self.span.trace_id))
    }

    fn span_id(&self) -> SegmentId {
        SegmentId::from_bytes(id_bytes(&self.span.span_id))
    }

    fn parent_span_id(&self) -> Option<SegmentId> {
        let id = SegmentId::from_bytes(id_bytes(&self.span.parent_span_id));
        (!id.is_zero()).then_some(id)
    }

    fn parent_is_remote(&self) -> bool {
        let known = SpanFlags::ContextHasIsRemoteMask as u32;
        let remote = SpanFlags::ContextIsRemoteMask as u32;
        self.span.flags & known != 0 && self.span.flags & remote != 0
    }

    fn trace_state(&self, key: &str) -> Option<&'a str> {
        trace_state_get(&self.span.trace_state, key)
    }

    fn kind(&self) -> SpanKind {
        match span::SpanKind::try_from(self.span.kind) {
            Ok(span::SpanKind::Server) => SpanKind::Server,
            Ok(span::SpanKind::Client) => SpanKind::Client,
            Ok(span::SpanKind::Producer) => SpanKind::Producer,
            Ok(span::SpanKind::Consumer) => SpanKind::Consumer,
            _ => SpanKind::Internal,
        }
    }

    fn name(&self) -> &'a str {
        &self.span.name
    }

    fn start_time(&self) -> f64 {
        epoch_seconds_from_nanos(self.span.start_time_unix_nano)
    }

    fn end_time(&self) -> Option<f64> {
        (self.span.end_time_unix_nano != 0)
            .then(|| epoch_seconds_from_nanos(self.span.end_time_unix_nano))
    }

    fn status(&self) -> SpanStatus<'a> {
        match &self.span.status {
            Some(s) if s.code == status::StatusCode::Error as i32 => SpanStatus::Error(&s.message),
            Some(s) if s.code == status::StatusCode::Ok as i32 => SpanStatus::Ok,
            _ => SpanStatus::Unset,
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
            time: epoch_seconds_from_nanos(e.time_unix_nano),
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
        let s = self.span;
        s.trace_id.len() == 16
            && s.span_id.len() == 8
            && matches!(s.parent_span_id.len(), 0 | 8)
            && s.trace_id.iter().any(|b| *b != 0)
            && s.span_id.iter().any(|b| *b != 0)
    }

    fn scope(&self) -> Option<(&'a str, Option<&'a str>)> {
        let scope = self.scope?;
        let version = (!scope.version.is_empty()).then_some(scope.version.as_str());
        (!scope.name.is_empty()).then_some((scope.name.as_str(), version))
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
