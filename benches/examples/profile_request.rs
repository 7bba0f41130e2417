//! Runs N requests (extract, server span, three children, inject) under the `tracing-xray`
//! layer, for `valgrind --tool=callgrind`. Arguments: requests (default 1000), then
//! `layer` (default) or `none`.

use std::collections::HashMap;
use std::hint::black_box;

use opentelemetry::propagation::TextMapPropagator;
use tracing::Dispatch;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

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
    let incoming = HashMap::from([(
        "x-amzn-trace-id".to_owned(),
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".to_owned(),
    )]);
    tracing::dispatcher::with_default(&dispatch, || {
        for _ in 0..n {
            let parent = propagator.extract(&incoming);
            let server = tracing::info_span!(
                "GET /cart",
                otel.kind = "server",
                http.request.method = "GET",
                url.path = "/cart/42",
                http.response.status_code = 200
            );
            let _ = server.set_parent(parent);
            let _server = server.enter();
            let mut outgoing = HashMap::new();
            for step in ["load cart", "price items", "render"] {
                let child = tracing::info_span!("step", step, items = 3);
                let _child = child.enter();
                if step == "price items" {
                    propagator.inject_context(&child.context(), &mut outgoing);
                }
            }
            black_box(outgoing);
        }
    });
}
