//! Runs N requests (extract, server span, three children, inject) under the `tracing-xray`
//! layer, for `valgrind --tool=callgrind`. Arguments: requests (default 1000), then
//! `layer` (default) or `none`.

use std::hint::black_box;

use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;
use xray_bridge_benches::request::{incoming, request};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(1000, |a| a.parse().expect("requests"));
    let with_layer = args.next().is_none_or(|a| a == "layer");
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let layer = tracing_xray::builder()
        .with_service_name("bench")
        .with_resource_detection(false)
        .install_global_provider(false)
        .install_global_propagator(false)
        .with_daemon_address(
            sink.local_addr()
                .expect("addr")
                .to_string()
                .parse()
                .expect("address"),
        )
        .build()
        .expect("layer");
    let propagator = layer.propagator();
    let dispatch = if with_layer {
        Dispatch::new(tracing_subscriber::registry().with(layer))
    } else {
        Dispatch::new(tracing_subscriber::registry())
    };
    let incoming = incoming();
    tracing::dispatcher::with_default(&dispatch, || {
        for _ in 0..n {
            black_box(request(&propagator, &incoming));
        }
    });
}
