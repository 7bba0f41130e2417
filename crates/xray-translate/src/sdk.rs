//! [`SpanView`] for in-process `opentelemetry_sdk` span data.

use std::time::UNIX_EPOCH;

use opentelemetry::trace::{SpanId, Status};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;
use xray_model::{SegmentId, TraceId, epoch_seconds};

use crate::view::{Attributes, EventTime, EventView, LinkView, SpanKind, SpanStatus, SpanView};

/// An SDK span with its resource, seen through [`SpanView`].
#[derive(Debug, Clone, Copy)]
pub struct SdkSpan<'a> {
    /// The span.
    pub span: &'a SpanData,
    /// The resource of the tracer provider that made it.
    pub resource: &'a Resource,
}

impl<'a> SdkSpan<'a> {
    /// Views `span` made under `resource`.
    pub fn new(span: &'a SpanData, resource: &'a Resource) -> Self {
        Self { span, resource }
    }
}

impl<'a> SpanView<'a> for SdkSpan<'a> {
    fn trace_id(&self) -> TraceId {
        TraceId::from_bytes(self.span.span_context.trace_id().to_bytes())
    }

    fn span_id(&self) -> SegmentId {
        SegmentId::from_bytes(self.span.span_context.span_id().to_bytes())
    }

    fn parent_span_id(&self) -> Option<SegmentId> {
        let parent = self.span.parent_span_id;
        (parent != SpanId::INVALID).then(|| SegmentId::from_bytes(parent.to_bytes()))
    }

    fn parent_is_remote(&self) -> bool {
        self.span.parent_span_is_remote
    }

    fn trace_state(&self, key: &str) -> Option<&'a str> {
        self.span.span_context.trace_state().get(key)
    }

    fn kind(&self) -> SpanKind {
        match self.span.span_kind {
            opentelemetry::trace::SpanKind::Server => SpanKind::Server,
            opentelemetry::trace::SpanKind::Client => SpanKind::Client,
            opentelemetry::trace::SpanKind::Producer => SpanKind::Producer,
            opentelemetry::trace::SpanKind::Consumer => SpanKind::Consumer,
            opentelemetry::trace::SpanKind::Internal => SpanKind::Internal,
        }
    }

    fn name(&self) -> &'a str {
        &self.span.name
    }

    fn start_time(&self) -> f64 {
        epoch_seconds(self.span.start_time)
    }

    fn end_time(&self) -> Option<f64> {
        (self.span.end_time != UNIX_EPOCH).then(|| epoch_seconds(self.span.end_time))
    }

    fn status(&self) -> SpanStatus<'a> {
        match &self.span.status {
            Status::Unset => SpanStatus::Unset,
            Status::Ok => SpanStatus::Ok,
            Status::Error { description } => SpanStatus::Error(description),
        }
    }

    fn attributes(&self) -> Attributes<'a> {
        Attributes::sdk(&self.span.attributes)
    }

    fn resource(&self) -> Attributes<'a> {
        Attributes::sdk_resource(self.resource)
    }

    fn events(&self) -> impl Iterator<Item = EventView<'a>> {
        self.span.events.iter().map(|e| EventView {
            name: &e.name,
            time: EventTime::System(e.timestamp),
            attributes: Attributes::sdk(&e.attributes),
        })
    }

    fn links(&self) -> impl Iterator<Item = LinkView<'a>> {
        self.span.links.iter().map(|l| LinkView {
            trace_id: TraceId::from_bytes(l.span_context.trace_id().to_bytes()),
            span_id: SegmentId::from_bytes(l.span_context.span_id().to_bytes()),
            attributes: Attributes::sdk(&l.attributes),
        })
    }

    fn scope(&self) -> Option<(&'a str, Option<&'a str>)> {
        let scope = &self.span.instrumentation_scope;
        let name = scope.name();
        (!name.is_empty()).then(|| (name, scope.version().filter(|v| !v.is_empty())))
    }
}
