//! The one way the bridge serves an axum router: HTTP/1.1 connections, each with a bounded
//! read buffer, until a stop signal; then requests in flight finish.

use std::pin::pin;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The most one connection's read buffer holds. hyper's default (about 400 kB) is reached
/// by every connection that sends large bodies, and each chunk of a body keeps its whole
/// buffer allocated until the body is collected: with 16 connections sending 500-span
/// requests, most of the receiver's memory. 64 kB still reads a socket's worth at a time
/// and holds any usual request head; hyper refuses a head that does not fit with `431`.
pub const MAX_READ_BUFFER: usize = 64 * 1024;

/// How long accepting waits after an error (such as too many open files) before it tries
/// again, instead of spinning.
const ACCEPT_RETRY: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` until `stop` turns true (or its sender is dropped), then
/// stops accepting, lets every connection finish the request it is serving, and returns
/// when all have closed. `what` names the server in log lines (`"OTLP/HTTP server"`, ...).
pub async fn serve(
    what: &'static str,
    listener: TcpListener,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let mut http = http1::Builder::new();
    http.max_buf_size(MAX_READ_BUFFER);
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                tracing::error!(error = %e, "{what} cannot accept a connection");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let connection = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let mut stop = stop.clone();
        connections.spawn(async move {
            let mut connection = pin!(connection);
            tokio::select! {
                // A client that goes away mid-request is its own business: not logged.
                _ = connection.as_mut() => return,
                _ = stop.wait_for(|s| *s) => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        });
        // Finished connections are reaped as new ones come, so the set stays small.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;
    use axum::routing::post;

    /// A server answering `POST /` with the length of the body it read, 200 ms after the
    /// handler starts: its URL, its stop sender, the task serving it, and a receiver told
    /// each time the handler starts.
    async fn echo_length() -> (
        String,
        watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
        tokio::sync::mpsc::Receiver<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        let (entered_tx, entered) = tokio::sync::mpsc::channel(4);
        let router = Router::new().route(
            "/",
            post(move |body: Bytes| async move {
                let _ = entered_tx.send(()).await;
                // Long enough for a stop to arrive while the request is in flight.
                tokio::time::sleep(Duration::from_millis(200)).await;
                body.len().to_string()
            }),
        );
        let (stop_tx, stop) = watch::channel(false);
        let server = tokio::spawn(serve("test server", listener, router, stop));
        (url, stop_tx, server, entered)
    }

    #[tokio::test]
    async fn a_body_many_times_the_read_buffer_arrives_whole() {
        let (url, _stop, _server, _entered) = echo_length().await;
        let body = vec![b'x'; 16 * MAX_READ_BUFFER + 7];
        let answer = reqwest::Client::new()
            .post(&url)
            .body(body.clone())
            .send()
            .await
            .expect("send");
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.text().await.expect("text"), body.len().to_string());
    }

    #[tokio::test]
    async fn a_request_head_far_larger_than_the_read_buffer_is_refused_with_431() {
        let (url, _stop, _server, _entered) = echo_length().await;
        let answer = reqwest::Client::new()
            .post(&url)
            .header("x-padding", "p".repeat(4 * MAX_READ_BUFFER))
            .body("small")
            .send()
            .await
            .expect("send");
        assert_eq!(answer.status(), 431);
    }

    #[tokio::test]
    async fn a_stop_lets_the_request_in_flight_finish_then_serve_returns() {
        let (url, stop, server, mut entered) = echo_length().await;
        let request = tokio::spawn(
            reqwest::Client::new()
                .post(url.clone())
                .body(vec![b'y'; 3 * MAX_READ_BUFFER])
                .send(),
        );
        entered.recv().await.expect("the handler ran");
        stop.send_replace(true);
        let answer = request.await.expect("join").expect("answered");
        assert_eq!(answer.status(), 200);
        assert_eq!(
            answer.text().await.expect("text"),
            (3 * MAX_READ_BUFFER).to_string()
        );
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("serve returns once its connections closed")
            .expect("join");
        assert!(
            reqwest::Client::new().post(&url).send().await.is_err(),
            "no longer accepting"
        );
    }
}
