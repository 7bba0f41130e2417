//! A minimal traced axum service: `cargo run --example hello`.
//!
//! Listens on `HELLO_ADDR` (default `127.0.0.1:3000`). `GET /` makes one traced HTTP call
//! to `GET /leaf` on itself and answers 200; `GET /fail` answers 500; `GET /health`
//! answers 200. Tracing is `tracing_xray::layer()` with default settings, so the usual
//! variables apply: `AWS_XRAY_DAEMON_ADDRESS` (documents go there over UDP; default
//! `127.0.0.1:2000`), `OTEL_SERVICE_NAME`, `AWS_XRAY_TRACING_NAME`,
//! `OTEL_TRACES_SAMPLER`, `OTEL_PROPAGATORS`, `AWS_XRAY_SDK_ENABLED=false`, ...
//! Ctrl-C or SIGTERM stop it after sending what is left.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use xray_bridge_examples::hello;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let layer = tracing_xray::layer()?;
    let _guard = layer.flush_guard();
    let propagator = layer.propagator();
    tracing_subscriber::registry().with(layer).init();

    let listener = tokio::net::TcpListener::bind(hello::address()?).await?;
    let addr = listener.local_addr()?;
    let app = hello::router(&format!("http://{addr}"), propagator);
    println!("hello: listening on http://{addr}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown())
    .await?;
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
