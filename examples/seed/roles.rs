//! The seed binary runs every part of the demo as a child process of itself, chosen by
//! `SEED_ROLE`: one process per service (each with its own service name), and the bridge.

use std::process::ExitCode;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::services::{self, Faults};

/// The environment variable that names a child's role.
pub(crate) const ROLE: &str = "SEED_ROLE";

/// Runs the role named by `SEED_ROLE`, if any, and returns its exit code.
pub(crate) fn run_if_asked() -> Option<ExitCode> {
    let role = std::env::var(ROLE).ok()?;
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = if role == "bridge" {
        return Some(bridge(runtime));
    } else {
        runtime.block_on(service(&role))
    };
    Some(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seed {role}: {e}");
            ExitCode::FAILURE
        }
    })
}

fn var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

async fn service(role: &str) -> Result<(), String> {
    // OTEL_SERVICE_NAME, AWS_XRAY_DAEMON_ADDRESS and the sampler come from the environment.
    let layer = tracing_xray::layer().map_err(|e| e.to_string())?;
    let guard = layer.flush_guard();
    let propagator = layer.propagator();
    tracing_subscriber::registry().with(layer).init();
    let faults = Faults::parse(&std::env::var("SEED_FAULTS").unwrap_or_default())?;
    let app = match role {
        "frontend" => services::frontend(&var("SEED_BFF_URL")?, propagator),
        "bff" => services::bff(
            &var("SEED_BACKEND1_URL")?,
            &var("SEED_BACKEND2_URL")?,
            faults,
            propagator,
        ),
        "backend1" => services::backend(
            role,
            services::dynamodb(true).await,
            faults.slow,
            false,
            propagator,
        ),
        "backend2" => services::backend(
            role,
            services::dynamodb(true).await,
            false,
            faults.flaky,
            propagator,
        ),
        other => return Err(format!("unknown role `{other}`")),
    };
    let addr = var("SEED_ADDR")?;
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(terminated())
    .await
    .map_err(|e| e.to_string())?;
    // Sends what the batch processor still holds before the process ends.
    drop(guard);
    Ok(())
}

/// The bridge in local (or any other) mode, with the arguments this process was given.
fn bridge(runtime: tokio::runtime::Runtime) -> ExitCode {
    use clap::Parser;
    use xray_bridge::config::{Cli, Settings};
    let args = std::iter::once("xray-bridge".to_owned()).chain(std::env::args().skip(1));
    let settings = match Cli::try_parse_from(args)
        .map_err(|e| e.to_string())
        .and_then(|cli| Settings::resolve(cli).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("seed bridge: {e}");
            return ExitCode::from(xray_bridge::run::exit::CONFIG);
        }
    };
    if let Err(e) = xray_bridge::logging::init(settings.log_level, settings.log_file.as_deref()) {
        eprintln!("seed bridge: {e}");
        return ExitCode::from(xray_bridge::run::exit::CONFIG);
    }
    match runtime.block_on(xray_bridge::run::run(settings)) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(e) => {
            eprintln!("seed bridge: {e}");
            ExitCode::from(xray_bridge::run::exit::START_FAILED)
        }
    }
}

/// SIGTERM or Ctrl-C.
pub(crate) async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
