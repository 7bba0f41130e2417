//! Startup, serving and the drain on SIGTERM/Ctrl-C.
//!
//! Every listener is bound before anything is served, so a bad address fails the start
//! with a clear message. On a signal the receivers stop first (datagrams already in the
//! socket buffer and requests in flight are still taken), then the export queue is
//! delivered until the shutdown deadline; the metrics listener stays up until the end.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;
use xray_console::Console;
use xray_translate::Translator;

use xray_export::transport::api::BackendErrors;

use crate::adot::Adot;
use crate::config::{Compression, ExportKind, SecretUrl, Settings};
use crate::counters::Registry;
use crate::export::Sink;
use crate::otlp::{Ingest, OtlpCounters};
use crate::outbound::{self, ProxyPlan};
use crate::pipeline::OtlpOptions;
use crate::sampling_proxy::Upstream;
use crate::telemetry::{self, Telemetry};
use crate::udp::UdpCounters;
use crate::{admin, aws, http_server, local, otlp_grpc, otlp_http, pipeline, sampling_proxy, udp};
use xray_export::transport::otlp::OtlpCompression;

/// Process exit codes.
pub mod exit {
    /// Drained cleanly: everything accepted was delivered.
    pub const CLEAN: u8 = 0;
    /// Could not start (bind failure, export destination unusable...).
    pub const START_FAILED: u8 = 1;
    /// Bad command line or configuration.
    pub const CONFIG: u8 = 2;
    /// Stopped, but the exporter dropped data during the run or the drain.
    pub const DATA_LOST: u8 = 3;
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Everything accepted was delivered.
    Clean,
    /// Something was dropped; the text says what.
    Lost(String),
}

impl Outcome {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Clean => exit::CLEAN,
            Outcome::Lost(_) => exit::DATA_LOST,
        }
    }
}

struct Listeners {
    udp: Option<UdpSocket>,
    otlp_grpc: Option<TcpListener>,
    otlp_http: Option<TcpListener>,
    tcp: Option<TcpListener>,
    metrics: Option<TcpListener>,
}

async fn bind_tcp(what: &str, addr: Option<SocketAddr>) -> Result<Option<TcpListener>, String> {
    match addr {
        None => Ok(None),
        Some(a) => TcpListener::bind(a)
            .await
            .map(Some)
            .map_err(|e| format!("cannot listen for {what} on {a}: {e}")),
    }
}

async fn bind(settings: &Settings) -> Result<Listeners, String> {
    let udp = match settings.udp.addr() {
        None => None,
        Some(a) => Some(
            udp::bind(a)
                .map_err(|e| format!("cannot listen for daemon datagrams on UDP {a}: {e}"))?,
        ),
    };
    Ok(Listeners {
        udp,
        otlp_grpc: bind_tcp("OTLP gRPC", settings.otlp_grpc.addr()).await?,
        otlp_http: bind_tcp("OTLP/HTTP", settings.otlp_http.addr()).await?,
        tcp: bind_tcp("the sampling proxy", settings.tcp.addr()).await?,
        metrics: bind_tcp("metrics", settings.metrics.addr()).await?,
    })
}

fn local(l: &Option<TcpListener>) -> String {
    l.as_ref()
        .and_then(|l| l.local_addr().ok())
        .map_or("off".to_owned(), |a| a.to_string())
}

/// Runs until SIGTERM or Ctrl-C, then drains. `Err` means it could not start.
///
/// # Errors
///
/// A message saying why the bridge could not start: a listener that cannot bind, a
/// store or an export destination that cannot be opened, missing AWS settings.
pub async fn run(settings: Settings) -> Result<Outcome, String> {
    let signals = Signals::install();
    // Local mode: the store and its page come first, so that once the other listeners
    // answer the console does too.
    let exports = settings.export.clone();
    let otlp_options = OtlpOptions {
        headers: crate::otlp_headers::resolve(&settings.otlp_header)?,
        compression: match settings.otlp_compression {
            Compression::Gzip => OtlpCompression::Gzip,
            Compression::None => OtlpCompression::None,
        },
        in_progress_hold: settings.in_progress_timeout,
    };
    let store = if exports.contains(&ExportKind::Local) {
        Some(local::open_store(&settings).await?)
    } else {
        None
    };
    let console = match (&store, settings.console.addr()) {
        (Some(store), Some(addr)) => Some(
            Console::bind(addr, store.clone())
                .await
                .map_err(|e| e.to_string())?,
        ),
        _ => None,
    };
    let listeners = bind(&settings).await?;
    let proxy = ProxyPlan::from_env(settings.proxy_address.as_ref().map(SecretUrl::expose));
    let http = outbound::client(&proxy, settings.no_verify_ssl)?;
    if settings.no_verify_ssl {
        tracing::warn!(
            "--no-verify-ssl: TLS certificates of AWS and every other outbound call are NOT checked"
        );
    }
    let to_aws = |e: &ExportKind| match e {
        ExportKind::Api | ExportKind::Otlp => true,
        ExportKind::OtlpUrl(url) => xray_export::transport::otlp::aws_endpoint(url).is_some(),
        _ => false,
    };
    let needs_region = exports
        .iter()
        .find(|e| matches!(e, ExportKind::Api | ExportKind::Otlp));
    let needs_aws = exports.iter().any(to_aws) || listeners.tcp.is_some();
    let aws_settings = aws::AwsSettings::of(&settings);
    // Loaded on first use, unless the start needs it to find a region that neither
    // `--region` nor the environment gives.
    let sdk = needs_aws.then(|| aws::lazy(aws_settings.clone(), http.clone()));
    let given_region = aws_settings.given_region(|k| std::env::var(k).ok());
    if let Some(sdk) = &sdk
        && let Some(export) = needs_region
        && given_region.is_none()
        && sdk.get().await.region().is_none()
    {
        return Err(format!(
            "--export {export} needs an AWS region: pass --region (or set AWS_REGION)"
        ));
    }
    let registry = Registry::default();
    let upstream = match (&listeners.tcp, &sdk) {
        (Some(_), Some(sdk)) => {
            let region = match &given_region {
                Some(region) => Some(region.clone()),
                None => sdk.get().await.region().map(|r| r.to_string()),
            }
            .ok_or(
                "the sampling proxy needs an AWS region: pass --region (or AWS_REGION), or --tcp off",
            )?;
            Some(Upstream {
                endpoint: aws::xray_endpoint(&settings, &region),
                region,
                credentials: Some(aws::lazy_credentials(sdk.clone())),
                client: http.clone(),
            })
        }
        _ => None,
    };
    let backend_errors = Arc::new(BackendErrors::default());
    let sink: Arc<dyn Sink> = Arc::new(pipeline::start(
        &settings,
        &exports,
        &otlp_options,
        &pipeline::Outbound {
            sdk: sdk.clone(),
            http: http.clone(),
            backend_errors: backend_errors.clone(),
        },
        store,
        &registry,
    )?);
    let (telemetry_stop_tx, telemetry_stop) = watch::channel(false);
    let telemetry_task = match (&sdk, settings.telemetry) {
        (Some(sdk), true) => {
            let telemetry = Telemetry::new(
                telemetry::Destination {
                    sdk: sdk.clone(),
                    region: settings.region.clone(),
                    endpoint: settings.endpoint_url.clone(),
                    local_mode: settings.local_mode,
                    resource_arn: settings.resource_arn.clone(),
                },
                &registry,
                sink.clone(),
                backend_errors.clone(),
                settings.telemetry_interval,
            );
            Some(tokio::spawn(telemetry.run(telemetry_stop)))
        }
        _ => None,
    };

    let (stop_tx, stop) = watch::channel(false);
    let mut receivers = JoinSet::new();
    let udp_addr = listeners
        .udp
        .as_ref()
        .and_then(|s| s.local_addr().ok())
        .map_or("off".to_owned(), |a| a.to_string());
    let (grpc_addr, http_addr, tcp_addr, metrics_addr) = (
        local(&listeners.otlp_grpc),
        local(&listeners.otlp_http),
        local(&listeners.tcp),
        local(&listeners.metrics),
    );
    // One translator for every translated input (OTLP, ADOT's T1S), built once.
    let translator = Translator::new(settings.translator_config().map_err(|e| e.to_string())?);
    let ingest = Ingest::new(translator, sink.clone());
    if let Some(socket) = listeners.udp {
        // ADOT's T1S/T1U bodies go to PutTraceSegments untouched with the api export, as
        // the daemon does, unless a translation setting must apply to them or other
        // exports need them too; otherwise they are translated like OTLP input.
        let adot = Adot::new(
            &registry,
            ingest.clone(),
            exports == [ExportKind::Api] && !settings.has_translation_settings(),
        );
        receivers.spawn(udp::serve(
            socket,
            sink.clone(),
            UdpCounters::new(&registry),
            adot,
            stop.clone(),
        ));
    }
    if let Some(listener) = listeners.otlp_http {
        let router = otlp_http::router(
            ingest.clone(),
            OtlpCounters::new(&registry, "http"),
            settings.max_request_bytes,
        );
        receivers.spawn(http_server::serve(
            "OTLP/HTTP server",
            listener,
            router,
            stop.clone(),
        ));
    }
    if let Some(listener) = listeners.otlp_grpc {
        receivers.spawn(otlp_grpc::serve(
            listener,
            ingest.clone(),
            OtlpCounters::new(&registry, "grpc"),
            settings.max_request_bytes,
            stop.clone(),
        ));
    }
    if let (Some(listener), Some(upstream)) = (listeners.tcp, upstream) {
        let router = sampling_proxy::router(upstream, registry.clone());
        receivers.spawn(http_server::serve(
            "sampling proxy",
            listener,
            router,
            stop.clone(),
        ));
    }
    let (admin_stop_tx, admin_stop) = watch::channel(false);
    let admin_task = listeners.metrics.map(|listener| {
        let router = admin::router(registry.clone(), sink.clone());
        tokio::spawn(http_server::serve(
            "metrics server",
            listener,
            router,
            admin_stop,
        ))
    });
    tracing::info!(
        otlp_grpc = %grpc_addr,
        otlp_http = %http_addr,
        udp = %udp_addr,
        tcp = %tcp_addr,
        metrics = %metrics_addr,
        export = %exports.iter().map(ExportKind::label).collect::<Vec<_>>().join(" "),
        resource_arn = settings.resource_arn.as_deref().unwrap_or(""),
        "xray-bridge ready"
    );
    if let Some(console) = &console {
        tracing::info!(
            store = %settings.store.display(),
            "local console on http://{}/",
            console.local_addr()
        );
    }

    let signal = signals.wait().await;
    let deadline = Instant::now() + settings.shutdown_timeout;
    tracing::info!(
        signal,
        timeout_secs = settings.shutdown_timeout.as_secs(),
        "stopping: receivers first, then delivering what is queued"
    );
    let _ = stop_tx.send(true);
    // Receivers finish requests in flight, but get at most half of the deadline.
    let receiver_budget = settings.shutdown_timeout / 2;
    let drained = tokio::time::timeout(receiver_budget, async {
        while receivers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = receivers.len(),
            "receivers still busy after {receiver_budget:?}; closing them"
        );
        receivers.abort_all();
    }
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(100));
    let draining = sink.clone();
    let result = tokio::task::spawn_blocking(move || draining.shutdown(left))
        .await
        .unwrap_or_else(|e| Err(format!("export shutdown panicked: {e}")));
    // A last telemetry record with what the drain delivered, within what is left of
    // the shutdown time (at least a second).
    if let Some(task) = telemetry_task {
        let _ = telemetry_stop_tx.send(true);
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        let _ = tokio::time::timeout(left, task).await;
    }
    let dropped = sink.dropped_total();
    let outcome = match result {
        Ok(()) if dropped == 0 => Outcome::Clean,
        Ok(()) => Outcome::Lost(format!(
            "the exporter dropped {dropped} item(s) during the run (see xray_bridge_export_dropped_total)"
        )),
        Err(e) => Outcome::Lost(format!(
            "drain incomplete: {e}; dropped over the run: {dropped}"
        )),
    };
    tracing::info!(
        udp_datagrams = registry.sum("xray_bridge_udp_datagrams_received_total"),
        udp_rejected = registry.sum("xray_bridge_udp_datagrams_rejected_total"),
        otlp_spans = registry.sum("xray_bridge_otlp_spans_received_total"),
        otlp_spans_rejected = registry.sum("xray_bridge_otlp_spans_rejected_total"),
        otlp_requests_rejected = registry.sum("xray_bridge_otlp_requests_rejected_total"),
        sampling_requests = registry.sum("xray_bridge_sampling_requests_total"),
        export_dropped = dropped,
        "totals over the run"
    );
    match &outcome {
        Outcome::Clean => tracing::info!("stopped; everything accepted was delivered"),
        Outcome::Lost(why) => tracing::error!("stopped with data lost: {why}"),
    }
    if let Some(console) = console
        && let Err(e) = console.shutdown().await
    {
        tracing::warn!("local console: {e}");
    }
    let _ = admin_stop_tx.send(true);
    if let Some(task) = admin_task {
        let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
    }
    Ok(outcome)
}

/// Waits for SIGTERM or Ctrl-C (SIGINT) and names it.
/// SIGTERM and SIGINT, watched from the start of [`run`]: a signal that arrives while
/// the bridge is still starting is not lost (nor does it kill the process unhandled).
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let watch = |kind, name| match signal(kind) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch {name}");
                    None
                }
            };
            Signals {
                term: watch(SignalKind::terminate(), "SIGTERM"),
                int: watch(SignalKind::interrupt(), "SIGINT"),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn wait(self) -> &'static str {
        #[cfg(unix)]
        {
            async fn next(s: Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = next(self.term) => "SIGTERM",
                () = next(self.int) => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}
