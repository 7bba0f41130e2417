//! Building a layer sets nothing global; `try_init` installs the subscriber and
//! OpenTelemetry's propagator and provider. Its own process: it sets global state.

use std::collections::HashMap;

fn global_propagator_fields() -> Vec<String> {
    opentelemetry::global::get_text_map_propagator(|p| p.fields().map(str::to_owned).collect())
}

#[test]
fn build_sets_nothing_global_and_init_sets_everything() {
    let socket = xray_testkit::udp_listener();
    let address = socket.local_addr().unwrap().to_string();
    let vars: HashMap<&str, String> = HashMap::from([
        ("AWS_XRAY_DAEMON_ADDRESS", address),
        ("OTEL_SERVICE_NAME", "init".to_owned()),
    ]);
    let env = move |name: &str| vars.get(name).cloned();

    let layer = tracing_xray::builder()
        .with_env(env.clone())
        .with_resource_detection(false)
        .build::<tracing_subscriber::Registry>()
        .unwrap();
    assert!(layer.is_enabled());
    assert!(
        global_propagator_fields().is_empty(),
        "build installed a propagator"
    );
    drop(layer);

    let guard = tracing_xray::builder()
        .with_env(env.clone())
        .with_resource_detection(false)
        .try_init()
        .unwrap();
    assert_eq!(global_propagator_fields(), ["x-amzn-trace-id"]);
    tracing::info_span!("root").in_scope(|| {});
    drop(guard);
    let datagrams = xray_testkit::recv_all(&socket, 10);
    assert_eq!(datagrams.len(), 1, "the global subscriber traced the span");
    assert!(String::from_utf8_lossy(&datagrams[0]).contains(r#""name":"init""#));

    let again = tracing_xray::builder()
        .with_env(env)
        .with_resource_detection(false)
        .try_init();
    assert!(
        matches!(again, Err(tracing_xray::Error::Init(_))),
        "a second global subscriber is refused"
    );
}
