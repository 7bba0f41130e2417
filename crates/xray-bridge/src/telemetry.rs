//! The X-Ray daemon's health records: `PutTelemetryRecords` every `--telemetry-interval`
//! (60 s) with what changed since the last record: segments received, sent, spilled over
//! (export queue full) and rejected, and the failed PutTraceSegments calls by kind
//! (`BackendConnectionErrors`). `Hostname` and `EC2InstanceId` are filled as the daemon
//! fills them (`AWS_HOSTNAME` / `AWS_INSTANCE_ID`, else EC2 instance metadata unless
//! `--local-mode`), `ResourceARN` from `--resource-arn`.
//!
//! Like the daemon, records start with the first segment received, at most 30 wait
//! (oldest out) and a call carries at most 10. A failed call is counted
//! (`xray_bridge_telemetry_failures_total`), logged with a rate limit and retried with
//! the next record; it runs on its own task and never delays segments.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_xray::Client;
use aws_sdk_xray::types::{BackendConnectionErrors, TelemetryRecord};
use tokio::sync::watch;
use xray_export::DropReason;
use xray_export::transport::LazySdkConfig;
use xray_export::transport::api::BackendErrors;

use crate::counters::{Counter, LogLimiter, Registry};
use crate::export::Sink;

/// Records kept while calls fail (the daemon's buffer).
const MAX_QUEUED: usize = 30;
/// Records per call (the daemon's request size).
const PER_CALL: usize = 10;

/// What a record reports about its sender.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// `Hostname`.
    pub hostname: String,
    /// `EC2InstanceId`.
    pub instance_id: String,
    /// `ResourceARN`.
    pub resource_arn: String,
}

/// Running totals since start; a record is the difference of two.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Segments (daemon datagrams and OTLP spans) received.
    pub received: u64,
    /// Documents delivered to X-Ray.
    pub sent: u64,
    /// Documents dropped because the export queue was full.
    pub spillover: u64,
    /// Datagrams and spans refused by the receivers, documents X-Ray refused.
    pub rejected: u64,
    /// Failed calls: 4xx, 5xx, connection refused, timeout, unknown host, other.
    pub backend: [u64; 6],
}

impl Totals {
    /// The totals now.
    pub fn now(registry: &Registry, sink: &dyn Sink, backend: &BackendErrors) -> Totals {
        let export = sink.documents_snapshot().unwrap_or_default();
        // `export_refused` rejections are the exporter's drops, counted there.
        let refused = registry
            .value(
                "xray_bridge_udp_datagrams_rejected_total",
                &[("reason", "export_refused")],
            )
            .unwrap_or(0)
            + ["http", "grpc", "udp"]
                .iter()
                .filter_map(|p| {
                    registry.value(
                        "xray_bridge_otlp_spans_rejected_total",
                        &[("protocol", p), ("reason", "export_refused")],
                    )
                })
                .sum::<u64>();
        let receivers_rejected = (registry.sum("xray_bridge_udp_datagrams_rejected_total")
            + registry.sum("xray_bridge_otlp_spans_rejected_total"))
        .saturating_sub(refused);
        Totals {
            received: registry.sum("xray_bridge_udp_datagrams_received_total")
                + registry.sum("xray_bridge_otlp_spans_received_total"),
            sent: export.documents_sent,
            spillover: export.dropped(DropReason::QueueFull),
            rejected: receivers_rejected
                + export.dropped(DropReason::Rejected)
                + export.dropped(DropReason::TooLarge),
            backend: backend.counts(),
        }
    }

    fn since(&self, earlier: &Totals) -> Totals {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        Totals {
            received: d(self.received, earlier.received),
            sent: d(self.sent, earlier.sent),
            spillover: d(self.spillover, earlier.spillover),
            rejected: d(self.rejected, earlier.rejected),
            backend: std::array::from_fn(|i| d(self.backend[i], earlier.backend[i])),
        }
    }

    fn record(&self) -> Option<TelemetryRecord> {
        let n = |v: u64| i32::try_from(v).unwrap_or(i32::MAX);
        let b = &self.backend;
        let errors = BackendConnectionErrors::builder()
            .http_code4_xx_count(n(b[0]))
            .http_code5_xx_count(n(b[1]))
            .connection_refused_count(n(b[2]))
            .timeout_count(n(b[3]))
            .unknown_host_count(n(b[4]))
            .other_count(n(b[5]))
            .build();
        TelemetryRecord::builder()
            .timestamp(SystemTime::now().into())
            .segments_received_count(n(self.received))
            .segments_sent_count(n(self.sent))
            .segments_spillover_count(n(self.spillover))
            .segments_rejected_count(n(self.rejected))
            .backend_connection_errors(errors)
            .build()
            .ok()
    }
}

/// Where the records go: set up when the first one is due (after the first segment), so
/// that an idle bridge loads neither the AWS configuration nor an X-Ray client, nor asks
/// instance metadata for its identity.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The AWS configuration, loaded on first use.
    pub sdk: LazySdkConfig,
    /// `--region`.
    pub region: Option<String>,
    /// `--endpoint-url`.
    pub endpoint: Option<String>,
    /// `--local-mode`: no instance metadata for the identity.
    pub local_mode: bool,
    /// `--resource-arn`.
    pub resource_arn: Option<String>,
}

impl Destination {
    /// The client and the identity, once.
    async fn connect(&self) -> (Client, Identity) {
        let sdk = self.sdk.get().await;
        let client = client(sdk, self.region.as_deref(), self.endpoint.as_deref());
        let identity = identity(self.local_mode, self.resource_arn.as_deref()).await;
        (client, identity)
    }
}

/// Sends the records; see the module documentation.
pub struct Telemetry {
    destination: Destination,
    connected: Option<(Client, Identity)>,
    registry: Registry,
    sink: Arc<dyn Sink>,
    backend: Arc<BackendErrors>,
    interval: Duration,
    failures: Counter,
    records_sent: Counter,
    limiter: LogLimiter,
}

impl Telemetry {
    /// Records from `registry`, `sink` and `backend`, sent to `destination`.
    pub fn new(
        destination: Destination,
        registry: &Registry,
        sink: Arc<dyn Sink>,
        backend: Arc<BackendErrors>,
        interval: Duration,
    ) -> Telemetry {
        Telemetry {
            destination,
            connected: None,
            registry: registry.clone(),
            sink,
            backend,
            interval,
            failures: registry.counter(
                "xray_bridge_telemetry_failures_total",
                "PutTelemetryRecords calls that failed (their records are sent with the next).",
                &[],
            ),
            records_sent: registry.counter(
                "xray_bridge_telemetry_records_sent_total",
                "Telemetry records delivered with PutTelemetryRecords.",
                &[],
            ),
            limiter: LogLimiter::new(Duration::from_secs(300)),
        }
    }

    /// Sends a record every interval until `stop` turns true, then a last one.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut last = Totals::default();
        let mut queue = VecDeque::new();
        let mut started = false;
        loop {
            let stopping = tokio::select! {
                () = tokio::time::sleep(self.interval) => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            let now = Totals::now(&self.registry, self.sink.as_ref(), &self.backend);
            let delta = now.since(&last);
            last = now;
            // As the daemon: nothing until the first segment.
            started |= now.received > 0;
            if started {
                if queue.len() == MAX_QUEUED {
                    queue.pop_front();
                }
                queue.extend(delta.record());
                self.send(&mut queue).await;
            }
            if stopping {
                return;
            }
        }
    }

    async fn send(&mut self, queue: &mut VecDeque<TelemetryRecord>) {
        if self.connected.is_none() {
            self.connected = Some(self.destination.connect().await);
        }
        let Some((client, identity)) = &self.connected else {
            return;
        };
        while !queue.is_empty() {
            let batch: Vec<_> = queue.iter().take(PER_CALL).cloned().collect();
            let result = client
                .put_telemetry_records()
                .set_telemetry_records(Some(batch.clone()))
                .hostname(&identity.hostname)
                .ec2_instance_id(&identity.instance_id)
                .resource_arn(&identity.resource_arn)
                .send()
                .await;
            match result {
                Ok(_) => {
                    queue.drain(..batch.len());
                    self.records_sent.add(batch.len() as u64);
                }
                Err(e) => {
                    self.failures.inc();
                    if let Some(count) = self.limiter.allow("telemetry") {
                        tracing::warn!(
                            count,
                            records = queue.len(),
                            "PutTelemetryRecords failed; the records go with the next call: {}",
                            aws_sdk_xray::error::DisplayErrorContext(&e)
                        );
                    }
                    return;
                }
            }
        }
    }
}

/// The X-Ray client for the records: the same region and endpoint (`--endpoint-url`) as
/// PutTraceSegments, the SDK's retries off (a failed record goes with the next call).
pub fn client(sdk: &aws_config::SdkConfig, region: Option<&str>, endpoint: Option<&str>) -> Client {
    let mut builder = aws_sdk_xray::config::Builder::from(sdk)
        .retry_config(aws_sdk_xray::config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_sdk_xray::config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_secs(10))
                .build(),
        );
    if let Some(region) = region {
        builder = builder.region(aws_config::Region::new(region.to_owned()));
    }
    if let Some(url) = endpoint {
        builder = builder.endpoint_url(url);
    }
    Client::from_conf(builder.build())
}

/// `AWS_HOSTNAME` and `AWS_INSTANCE_ID`, else (unless `local_mode`) EC2 instance
/// metadata, each at most 2 s; empty when unknown, as the daemon sends them.
pub async fn identity(local_mode: bool, resource_arn: Option<&str>) -> Identity {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let metadata_off = local_mode
        || env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    // Instance metadata is never proxied: the SDK's own client, not the outbound one.
    let imds = (!metadata_off).then(|| aws_config::imds::Client::builder().build());
    let lookup = async |var: &str, path: &str| {
        if let Some(v) = env(var) {
            return v;
        }
        let Some(client) = &imds else {
            return String::new();
        };
        match tokio::time::timeout(Duration::from_secs(2), client.get(path)).await {
            Ok(Ok(v)) => v.as_ref().to_owned(),
            Ok(Err(e)) => {
                tracing::debug!(path, "no instance metadata for the telemetry records: {e}");
                String::new()
            }
            Err(_) => {
                tracing::debug!(
                    path,
                    "no instance metadata for the telemetry records: timed out"
                );
                String::new()
            }
        }
    };
    Identity {
        hostname: lookup("AWS_HOSTNAME", "/latest/meta-data/hostname").await,
        instance_id: lookup("AWS_INSTANCE_ID", "/latest/meta-data/instance-id").await,
        resource_arn: resource_arn.unwrap_or_default().to_owned(),
    }
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}
