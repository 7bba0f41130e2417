//! Runs N requests (extract, server span, three children, inject) under the `tracing-xray`
//! layer, for `valgrind --tool=callgrind`. Arguments: requests (default 1000), then the
//! side: `layer` (default, `tracing-xray`), `batch` (`tracing-xray` with the batch
//! processor), `standard` (`tracing-opentelemetry` + opentelemetry-aws) or `none`.

use std::hint::black_box;

use xray_bridge_benches::request::{incoming, request};
use xray_bridge_benches::sides::{self, Side};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(1000, |a| a.parse().expect("requests"));
    let side = args
        .next()
        .map_or(Some(Side::TracingXray), |a| Side::from_arg(&a))
        .expect("side: none, layer, batch or standard");
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let running = sides::start(side, sink.local_addr().expect("addr"));
    let incoming = incoming();
    tracing::dispatcher::with_default(&running.dispatch, || {
        for _ in 0..n {
            black_box(request(&*running.propagator, &incoming));
        }
    });
    running.flush();
}
