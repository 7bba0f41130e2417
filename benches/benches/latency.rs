//! Latency from the moment a request's root span ends to its segment document at a
//! loopback UDP listener, for `tracing-xray`'s span processor and for OpenTelemetry's
//! batch processor (same layer, `with_batch_processor`), at 100 requests/s and at the
//! highest rate one thread reaches (requests back to back).
//!
//! Each request carries a trace of its own (`incoming_numbered`); the listener notes when
//! the document of each trace's root segment arrives. Requests whose root document never
//! arrives are reported as lost (the batch processor's queue drops spans at high rates).
//!
//! `cargo bench -p xray-bridge-benches --bench latency` runs 5 s per rate and side (about
//! 40 s with the batch processor's drain). Without `--bench` (`cargo test --benches`) it
//! runs a quick mode that measures nothing.
#![allow(unsafe_code)] // FFI or a std API that is unsafe to call; each block says why it is sound.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xray_bridge_benches::request::{incoming_numbered, request};
use xray_bridge_benches::sides::{self, Side};

/// Arrival times of root segment documents, by trace id.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// Asks for an 8 MiB receive buffer (forced where allowed), so the listener's own lag
/// loses as few datagrams as possible.
fn large_receive_buffer(socket: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 8 << 20;
    for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: a valid socket and a c_int option value of the size given.
        let set = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&raw const size).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if set == 0 {
            return;
        }
    }
}

fn listen(socket: UdpSocket, stop: Arc<AtomicBool>) -> Arrivals {
    large_receive_buffer(&socket);
    let arrivals = Arrivals::default();
    let out = arrivals.clone();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 70_000];
        while !stop.load(Ordering::Relaxed) {
            let Ok(n) = socket.recv(&mut buf) else {
                continue;
            };
            let at = Instant::now();
            let Ok(text) = std::str::from_utf8(&buf[..n]) else {
                continue;
            };
            // A root segment: the document is not a standalone subsegment.
            if text.contains(r#""type":"subsegment""#) {
                continue;
            }
            if let Some(i) = text.find(r#""trace_id":""#) {
                let id = &text[i + 12..(i + 12 + 35).min(text.len())];
                out.lock().unwrap().entry(id.to_owned()).or_insert(at);
            }
        }
    });
    arrivals
}

struct Run {
    side: Side,
    rate: String,
    requests: usize,
    seconds: f64,
    latencies: Vec<Duration>,
    /// The exporter's account: spans in, spans sent, drops by reason.
    account: String,
}

impl Run {
    fn percentile(&self, p: f64) -> String {
        if self.latencies.is_empty() {
            return "n/a".into();
        }
        let i = ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len());
        format!("{:.2} ms", self.latencies[i - 1].as_secs_f64() * 1e3)
    }
}

/// Runs requests at `per_second` (0: back to back) for `secs`, then waits up to `drain`
/// for their documents.
fn run(side: Side, per_second: u32, secs: f64, drain: Duration, counter: &mut u64) -> Run {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let address = socket.local_addr().expect("addr");
    let stop = Arc::new(AtomicBool::new(false));
    let arrivals = listen(socket, stop.clone());
    let running = sides::start(side, address);
    let mut ended: Vec<(String, Instant)> = Vec::new();
    let start = Instant::now();
    let length = Duration::from_secs_f64(secs);
    tracing::dispatcher::with_default(&running.dispatch, || {
        while start.elapsed() < length {
            if per_second > 0 {
                let due =
                    start + Duration::from_secs_f64(ended.len() as f64 / f64::from(per_second));
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            *counter += 1;
            let (root, incoming) = incoming_numbered(*counter);
            std::hint::black_box(request(&*running.propagator, &incoming));
            // The root span closed when `request` returned.
            ended.push((root, Instant::now()));
        }
    });
    let seconds = start.elapsed().as_secs_f64();
    let until = Instant::now() + drain;
    while Instant::now() < until && arrivals.lock().unwrap().len() < ended.len() {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let account = running.metrics.as_ref().map_or_else(String::new, |m| {
        let m = m.snapshot();
        format!(
            "{} in, {} sent, drops [{}]",
            m.spans_in,
            m.spans_sent,
            m.drop_summary()
        )
    });
    let arrived = arrivals.lock().unwrap();
    let mut latencies: Vec<Duration> = ended
        .iter()
        .filter_map(|(root, at)| arrived.get(root).map(|a| a.saturating_duration_since(*at)))
        .collect();
    latencies.sort_unstable();
    Run {
        side,
        rate: if per_second > 0 {
            format!("{per_second}/s")
        } else {
            "back to back".into()
        },
        requests: ended.len(),
        seconds,
        latencies,
        account,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // cargo bench passes --bench; cargo test runs bench targets without it.
    let quick = args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench");
    let (secs, rates): (f64, &[u32]) = if quick {
        (0.3, &[20, 0])
    } else {
        (5.0, &[100, 1_000, 5_000, 20_000, 0])
    };
    let mut counter = 0u64;
    let mut runs = Vec::new();
    for side in [Side::TracingXray, Side::TracingXrayBatch] {
        // The batch processor holds spans up to its 5-s schedule delay.
        let drain = Duration::from_secs(if side == Side::TracingXray { 2 } else { 7 });
        for &per_second in rates {
            runs.push(run(side, per_second, secs, drain, &mut counter));
        }
    }
    println!(
        "| processor | rate | requests | achieved requests/s | root documents arrived | p50 | p99 | max | exporter's spans |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---|");
    for r in &runs {
        println!(
            "| {} | {} | {} | {:.0} | {} ({:.1} %) | {} | {} | {} | {} |",
            r.side.name(),
            r.rate,
            r.requests,
            r.requests as f64 / r.seconds,
            r.latencies.len(),
            100.0 * r.latencies.len() as f64 / r.requests.max(1) as f64,
            r.percentile(0.5),
            r.percentile(0.99),
            r.percentile(1.0),
            r.account,
        );
    }
    for r in &runs {
        assert!(
            !r.latencies.is_empty(),
            "{} at {}: no document arrived",
            r.side.name(),
            r.rate
        );
    }
    if quick {
        println!(
            "quick mode: every run delivered documents (a tiny load in a debug binary: no measurement)"
        );
    }
}
