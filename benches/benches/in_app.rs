//! In-app overhead of one request under the `tracing-xray` layer vs the same code with no
//! layer (a bare `tracing-subscriber` registry): a header extracted, one server span, three
//! child spans, a header injected for the downstream call. With the layer, the batch span
//! processor and the exporter run and send to a local UDP listener.

use std::hint::black_box;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

use xray_bridge_benches::request::{incoming, request};

/// A listener that drains (and counts) datagrams on its own thread until the process ends.
fn listener() -> (String, Arc<AtomicU64>) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().expect("addr").to_string();
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
    let layer = tracing_xray::builder()
        .with_service_name("bench")
        .with_resource_detection(false)
        .install_global_provider(false)
        .install_global_propagator(false)
        .with_daemon_address(address.parse().expect("address"))
        .build()
        .expect("layer");
    let propagator = layer.propagator();
    let metrics = layer.metrics().expect("enabled").clone();
    let guard = layer.flush_guard();
    let with_layer = Dispatch::new(tracing_subscriber::registry().with(layer));
    let without = Dispatch::new(tracing_subscriber::registry());
    let incoming = incoming();

    // The layer must really trace: the injected header carries our trace id.
    let out = tracing::dispatcher::with_default(&with_layer, || request(&propagator, &incoming));
    assert!(
        out.get("x-amzn-trace-id")
            .is_some_and(|h| h.contains("bd862e3fe1be46a994272793")),
        "no header injected under the layer: {out:?}"
    );

    let mut group = c.benchmark_group("request");
    group.bench_function("no layer", |b| {
        tracing::dispatcher::with_default(&without, || {
            b.iter(|| black_box(request(&propagator, black_box(&incoming))))
        })
    });
    let mut requests = 1u64; // the check above
    group.bench_function("tracing-xray layer", |b| {
        tracing::dispatcher::with_default(&with_layer, || {
            b.iter(|| {
                requests += 1;
                black_box(request(&propagator, black_box(&incoming)))
            })
        })
    });
    group.finish();

    // The spans were really exported: flush, then compare what the batch processor handed
    // to the exporter with what the exporter sent and what the listener received.
    assert!(guard.flush(), "flush failed");
    let m = metrics.snapshot();
    let mut got = received.load(Ordering::Relaxed);
    for _ in 0..100 {
        if got >= m.documents_sent {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        got = received.load(Ordering::Relaxed);
    }
    println!(
        "exported: {} spans created, {} handed to the exporter (the rest dropped by the batch \
         processor's full queue), {} documents sent, {} datagrams received, drops: [{}]",
        requests * 4,
        m.spans_in,
        m.documents_sent,
        got,
        m.drop_summary()
    );
    assert!(m.documents_sent > 0, "nothing exported");
    assert_eq!(
        m.dropped_total(),
        m.dropped(xray_export::DropReason::QueueFull),
        "documents dropped for a reason other than a full queue: {}",
        m.drop_summary()
    );
    assert_eq!(
        m.spans_in,
        m.spans_sent + m.dropped_spans(xray_export::DropReason::QueueFull),
        "spans handed over but neither sent nor dropped for a full queue"
    );
}

criterion_group!(benches, overhead);
criterion_main!(benches);
