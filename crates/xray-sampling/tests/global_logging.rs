//! The poller under an application's global subscriber installed after the sampler was
//! built (the usual order: the tracing layer needs the provider, which needs the
//! sampler): its failure is logged there once, and nothing it does (HTTP calls, AWS SDK
//! calls, logs) becomes a span, although a tracing-opentelemetry layer is listening.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::LogSink;
use opentelemetry::trace::TracerProvider;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use xray_sampling::XraySampler;

/// Collects the names of exported spans.
#[derive(Debug, Clone, Default)]
struct Collect(Arc<Mutex<Vec<String>>>);

impl SpanExporter for Collect {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut names = self.0.lock().unwrap();
        names.extend(batch.into_iter().map(|s| s.name.into_owned()));
        Ok(())
    }
}

#[test]
fn poller_logs_once_to_the_global_subscriber_and_creates_no_spans() {
    let unreachable = || format!("http://127.0.0.1:{}", xray_testkit::free_port());
    #[cfg_attr(not(feature = "xray-api"), allow(unused_mut))]
    let mut samplers = vec![
        XraySampler::builder()
            .with_endpoint(unreachable())
            .with_rules_interval(Duration::from_millis(20))
            .with_targets_interval(Duration::from_millis(20))
            .build()
            .unwrap(),
    ];
    #[cfg(feature = "xray-api")]
    samplers.push({
        use aws_sdk_xray::config::{Credentials, SharedCredentialsProvider};
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "AKIDEXAMPLE",
                "secret",
                None,
                None,
                "test",
            )))
            .endpoint_url(unreachable())
            .build();
        XraySampler::builder()
            .with_xray_api(&config)
            .with_rules_interval(Duration::from_millis(20))
            .with_targets_interval(Duration::from_millis(20))
            .build()
            .unwrap()
    });

    let spans = Collect::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    let logs = LogSink::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || sink.clone())
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        )
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    std::thread::sleep(Duration::from_millis(1500));
    tracing::info_span!("control").in_scope(|| tracing::info!("inside"));
    let failures = logs
        .lines()
        .iter()
        .filter(|l| l.contains("WARN") && l.contains("failed"))
        .count();
    assert_eq!(failures, samplers.len(), "{:#?}", logs.lines());
    drop(samplers);
    assert_eq!(
        *spans.0.lock().unwrap(),
        ["control"],
        "only the test's own span"
    );
    let _ = provider.shutdown();
}
