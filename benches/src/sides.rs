//! The ways an application can send its `tracing` spans to X-Ray, each ready to run the
//! in-app request ([`crate::request::request`]) under its own `Dispatch`:
//!
//! - no layer: a bare `tracing-subscriber` registry (extract and inject still run);
//! - `tracing-xray` with its span processor (each request's tree sent when it ends);
//! - `tracing-xray` with OpenTelemetry's batch span processor (`with_batch_processor`);
//! - the standard path a user would pick instead: `tracing-opentelemetry` over an SDK
//!   provider with opentelemetry-aws's `XrayExporter` (daemon client) under the batch
//!   span processor, and opentelemetry-aws's `XrayPropagator`.
//!
//! Every side sends to the UDP address given. `tracing-opentelemetry`'s location, thread
//! and busy/idle attributes are off on every side (`tracing-xray`'s default), so the sides
//! differ only in the pipeline behind the spans.

use std::net::SocketAddr;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_aws::trace::{XrayIdGenerator, XrayPropagator};
use opentelemetry_aws::xray_exporter::XrayExporter;
use opentelemetry_aws::xray_exporter::daemon_client::XrayDaemonClient;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;
use tracing_xray::FlushGuard;

/// Which pipeline runs behind the request's spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A bare registry.
    NoLayer,
    /// `tracing-xray`, its span processor.
    TracingXray,
    /// `tracing-xray` with OpenTelemetry's batch span processor.
    TracingXrayBatch,
    /// `tracing-opentelemetry` + opentelemetry-aws `XrayExporter`, batch processor.
    Standard,
}

impl Side {
    /// A short name for tables and arguments.
    pub fn name(self) -> &'static str {
        match self {
            Side::NoLayer => "no layer",
            Side::TracingXray => "tracing-xray",
            Side::TracingXrayBatch => "tracing-xray, batch processor",
            Side::Standard => "tracing-opentelemetry + opentelemetry-aws, batch processor",
        }
    }

    /// The side named by a command-line word: `none`, `layer`, `batch`, `standard`.
    pub fn from_arg(arg: &str) -> Option<Side> {
        match arg {
            "none" => Some(Side::NoLayer),
            "layer" => Some(Side::TracingXray),
            "batch" => Some(Side::TracingXrayBatch),
            "standard" => Some(Side::Standard),
            _ => None,
        }
    }
}

/// A side set up and ready: run requests under `dispatch` with `propagator`.
pub struct Running {
    /// The subscriber to run requests under.
    pub dispatch: Dispatch,
    /// The side's propagator.
    pub propagator: Box<dyn TextMapPropagator + Send + Sync>,
    /// The exporter's counters (`tracing-xray` sides).
    pub metrics: Option<xray_export::Metrics>,
    guard: Option<FlushGuard>,
    provider: Option<SdkTracerProvider>,
}

impl Running {
    /// Sends what is held now and waits for the transport; true when all went out.
    pub fn flush(&self) -> bool {
        match (&self.guard, &self.provider) {
            (Some(guard), _) => guard.flush(),
            (None, Some(provider)) => provider
                .force_flush()
                .inspect_err(|e| eprintln!("flush: {e}"))
                .is_ok(),
            (None, None) => true,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(provider) = &self.provider {
            let _ = provider.shutdown();
        }
    }
}

/// Sets `side` up, sending to `address` (a loopback UDP listener).
pub fn start(side: Side, address: SocketAddr) -> Running {
    match side {
        Side::NoLayer => Running {
            dispatch: Dispatch::new(tracing_subscriber::registry()),
            propagator: Box::new(tracing_xray::Propagator::xray()),
            metrics: None,
            guard: None,
            provider: None,
        },
        Side::TracingXray | Side::TracingXrayBatch => {
            let mut builder = tracing_xray::builder()
                .with_service_name("bench")
                .with_resource_detection(false)
                .with_global_provider(false)
                .with_global_propagator(false)
                .with_daemon_address(address.to_string().parse().expect("address"));
            if side == Side::TracingXrayBatch {
                builder = builder.with_batch_processor();
            }
            let layer = builder.build().expect("layer");
            Running {
                propagator: Box::new(layer.propagator()),
                metrics: layer.metrics().cloned(),
                guard: Some(layer.flush_guard()),
                dispatch: Dispatch::new(tracing_subscriber::registry().with(layer)),
                provider: None,
            }
        }
        Side::Standard => {
            let client = XrayDaemonClient::new(address).expect("daemon client");
            let provider = SdkTracerProvider::builder()
                .with_id_generator(XrayIdGenerator::default())
                .with_resource(
                    opentelemetry_sdk::Resource::builder_empty()
                        .with_service_name("bench")
                        .build(),
                )
                .with_batch_exporter(XrayExporter::new(client))
                .build();
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("bench"))
                .with_location(false)
                .with_threads(false)
                .with_tracked_inactivity(false);
            Running {
                dispatch: Dispatch::new(tracing_subscriber::registry().with(layer)),
                propagator: Box::new(XrayPropagator::new()),
                metrics: None,
                guard: None,
                provider: Some(provider),
            }
        }
    }
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").finish_non_exhaustive()
    }
}
