//! A tracing subscriber bridged to an in-memory OpenTelemetry exporter, for one thread.
#![allow(dead_code)]

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, TracerProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;

/// Spans end up in `exporter` while `_guard` is alive (this thread only: run tests on a
/// current-thread runtime).
pub(crate) struct Telemetry {
    pub exporter: InMemorySpanExporter,
    pub provider: SdkTracerProvider,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Telemetry {
    pub(crate) fn new(sampler: Sampler) -> Self {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_sampler(sampler)
            .with_simple_exporter(exporter.clone())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        let subscriber = tracing_subscriber::registry().with(layer);
        let guard = tracing::subscriber::set_default(subscriber);
        Telemetry {
            exporter,
            provider,
            _guard: guard,
        }
    }

    pub(crate) fn spans(&self) -> Vec<SpanData> {
        let _ = self.provider.force_flush();
        self.exporter.get_finished_spans().expect("spans")
    }

    /// The one finished span of `kind`, waiting up to 5 s for it (a server task may end
    /// its span just after the client has the response).
    pub(crate) async fn one(&self, kind: SpanKind) -> SpanData {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let spans: Vec<SpanData> = self
                .spans()
                .into_iter()
                .filter(|s| s.span_kind == kind)
                .collect();
            if !spans.is_empty() || std::time::Instant::now() > deadline {
                assert_eq!(spans.len(), 1, "one {kind:?} span expected: {spans:#?}");
                return spans.into_iter().next().unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

/// The value of attribute `key` as a string.
pub(crate) fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv: &&KeyValue| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}
