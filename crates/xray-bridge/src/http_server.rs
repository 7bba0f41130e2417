//! The one way the bridge serves an axum router: until a stop signal, then requests in
//! flight finish.

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serves `router` on `listener` until `stop` turns true, then finishes requests in flight.
/// `what` names the server in the error log line (`"OTLP/HTTP server"`, ...).
pub async fn serve(
    what: &'static str,
    listener: TcpListener,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "{what} failed");
    }
}
