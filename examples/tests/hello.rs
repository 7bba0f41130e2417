//! The hello service under the default `tracing-xray` layer: each request's documents
//! reach a UDP listener (standing in for the X-Ray daemon) within 100 ms of the response,
//! because the layer's span processor sends a tree the moment its root ends (the batch
//! processor it replaced waited up to 5 s).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use xray_bridge_examples::hello;

/// Every datagram that arrives, with the moment it arrived.
fn receive(udp: UdpSocket, stop: Arc<AtomicBool>) -> std::sync::mpsc::Receiver<(Instant, Value)> {
    let (tx, rx) = std::sync::mpsc::channel();
    udp.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 70_000];
        while !stop.load(Ordering::Relaxed) {
            if let Ok(n) = udp.recv(&mut buf) {
                let at = Instant::now();
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let (_, body) = text.split_once('\n').expect("daemon header");
                let _ = tx.send((at, serde_json::from_str(body).expect("JSON document")));
            }
        }
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_requests_documents_reach_the_daemon_within_100_ms_of_the_response() {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let daemon = format!("127.0.0.1:{}", udp.local_addr().unwrap().port());
    // As `examples/hello.rs` builds it (`tracing_xray::layer()`), with the daemon address
    // given in code instead of `AWS_XRAY_DAEMON_ADDRESS`.
    let layer = tracing_xray::builder()
        .with_service_name("hello")
        .with_daemon_address(daemon.parse().unwrap())
        .build()
        .unwrap();
    let _guard = layer.flush_guard();
    let propagator = layer.propagator();
    tracing_subscriber::registry().with(layer).init();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = hello::router(&format!("http://{addr}"), propagator);
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    let stop = Arc::new(AtomicBool::new(false));
    let docs = receive(udp, stop.clone());
    let client = reqwest::Client::new();
    for i in 0..5u32 {
        let root = format!(
            "1-{:08x}-{:024x}",
            0x6000_0000u32 + i,
            0xfeed_0000u64 + u64::from(i)
        );
        let response = client
            .get(format!("http://{addr}/"))
            .header("X-Amzn-Trace-Id", format!("Root={root};Sampled=1"))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        response.text().await.unwrap();
        let answered = Instant::now();
        // `GET /` and the `GET /leaf` it calls: two segments of this trace.
        let mut urls = Vec::new();
        let mut last = answered;
        while urls.len() < 2 {
            let (at, doc) = docs
                .recv_timeout(Duration::from_secs(10))
                .expect("the request's documents");
            if doc["trace_id"] != root.as_str() {
                continue;
            }
            urls.push(
                doc["http"]["request"]["url"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            );
            last = last.max(at);
        }
        let after = last.saturating_duration_since(answered);
        assert!(
            after <= Duration::from_millis(100),
            "request {i}: documents {after:?} after the response"
        );
        urls.sort();
        assert!(
            urls[0].ends_with('/') && urls[1].ends_with("/leaf"),
            "{urls:?}"
        );
        eprintln!("request {i}: last document {after:?} after the response");
    }
    stop.store(true, Ordering::Relaxed);
}
