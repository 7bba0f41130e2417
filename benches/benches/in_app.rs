//! In-app overhead of one request (a header extracted, one server span, three child spans,
//! a header injected for the downstream call), side by side in one run:
//! - no layer (a bare `tracing-subscriber` registry);
//! - `tracing-xray` (its span processor and exporter, sending to a local UDP listener);
//! - the standard path: `tracing-opentelemetry` + opentelemetry-aws `XrayExporter` under
//!   OpenTelemetry's batch span processor, to the same listener.
//!
//! Afterwards it checks that no span went uncounted under `tracing-xray`: spans created =
//! spans sent + drops counted by reason.

use std::hint::black_box;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

use xray_bridge_benches::request::{TRACE_RANDOM, incoming, request};
use xray_bridge_benches::sides::{self, Side};

/// A listener that drains (and counts) datagrams on its own thread until the process ends.
fn listener() -> (SocketAddr, Arc<AtomicU64>) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().expect("addr");
    let received = Arc::new(AtomicU64::new(0));
    let count = received.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while socket.recv(&mut buf).is_ok() {
            count.fetch_add(1, Ordering::Relaxed);
        }
    });
    (addr, received)
}

fn overhead(c: &mut Criterion) {
    let (address, received) = listener();
    let incoming = incoming();
    let mut group = c.benchmark_group("request");
    let mut xray_requests = 0u64;
    let mut xray = None;
    for side in [Side::NoLayer, Side::TracingXray, Side::Standard] {
        let running = sides::start(side, address);
        // Every traced side must really trace: the injected header carries our trace id.
        let out = tracing::dispatcher::with_default(&running.dispatch, || {
            request(&*running.propagator, &incoming)
        });
        assert!(
            side == Side::NoLayer
                || out
                    .get("x-amzn-trace-id")
                    .is_some_and(|h| h.contains(TRACE_RANDOM)),
            "{}: no header injected: {out:?}",
            side.name()
        );
        let mut requests = 1u64; // the check above
        group.bench_function(side.name(), |b| {
            tracing::dispatcher::with_default(&running.dispatch, || {
                b.iter(|| {
                    requests += 1;
                    black_box(request(&*running.propagator, black_box(&incoming)))
                })
            })
        });
        // A flush reports counted drops as a failure: at this rate tracing-xray's worker
        // falls behind and drops (counted, checked below); the batch processor drops
        // without telling.
        if !running.flush() {
            println!("{}: the flush reported drops", side.name());
        }
        if side == Side::TracingXray {
            xray_requests = requests;
            xray = Some(running);
        }
    }
    group.finish();

    // The spans were really exported, and every one is accounted for.
    let running = xray.expect("tracing-xray ran");
    let m = running.metrics.as_ref().expect("metrics").snapshot();
    let created = xray_requests * 4;
    println!(
        "tracing-xray: {created} spans created, {} counted in, {} sent in {} documents, \
         drops: [{}]; {} datagrams received from all sides",
        m.spans_in,
        m.spans_sent,
        m.documents_sent,
        m.drop_summary(),
        received.load(Ordering::Relaxed)
    );
    assert!(m.documents_sent > 0, "nothing exported");
    assert_eq!(m.spans_in, created, "spans that never reached the counters");
    assert_eq!(
        m.spans_sent + m.dropped_spans_total(),
        created,
        "spans neither sent nor counted as dropped"
    );
    drop(running);
    std::thread::sleep(Duration::from_millis(50));
}

criterion_group!(benches, overhead);
criterion_main!(benches);
