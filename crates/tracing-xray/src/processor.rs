//! The batch option (`with_batch_processor`): OpenTelemetry's batch processor, whose
//! `force_flush` also waits for the X-Ray exporter's own queue.

use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{BatchSpanProcessor, Span, SpanData, SpanProcessor};
use xray_export::FlushHandle;

/// `BatchSpanProcessor::force_flush` hands its spans to the exporter but does not flush
/// the exporter; the X-Ray exporter queues documents and sends them from a worker of its
/// own, so a flush (say, at the end of a Lambda invocation) must wait for that queue too.
#[derive(Debug)]
pub(crate) struct FlushingProcessor {
    batch: BatchSpanProcessor,
    exporter: FlushHandle,
}

impl FlushingProcessor {
    pub(crate) fn new(batch: BatchSpanProcessor, exporter: FlushHandle) -> Self {
        FlushingProcessor { batch, exporter }
    }
}

impl SpanProcessor for FlushingProcessor {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.batch.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.batch.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        let handed_over = self.batch.force_flush();
        let delivered = self
            .exporter
            .flush()
            .map_err(|e| OTelSdkError::InternalFailure(format!("X-Ray exporter: {e}")));
        handed_over.and(delivered)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        // Shutting the batch processor down shuts the exporter down, which drains its queue.
        self.batch.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.batch.set_resource(resource);
    }
}
