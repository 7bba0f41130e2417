//! The layer end to end in one process: `tracing` spans through the layer, the SDK and
//! the exporter into JSON lines, read back as segment documents.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tracing::field::Empty;
use tracing_subscriber::layer::SubscriberExt;

use crate::resource::Paths;
use crate::{ContextMissing, Error, XrayExporter, XrayLayerBuilder};
use xray_testkit::vars;

/// A writer the test can read back.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    /// Every (sub)segment written, embedded ones lifted out (see `all_segments`).
    fn documents(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        let docs: Vec<Value> = text
            .lines()
            .map(|line| {
                xray_testkit::assert_schema_valid(line);
                serde_json::from_str(line).unwrap()
            })
            .collect();
        xray_testkit::all_segments(&docs)
    }
}

/// A builder reading only `env`, writing into a buffer, with nothing installed globally
/// and detection looking at an empty folder.
fn builder(env: &[(&str, &str)], out: &Buffer) -> XrayLayerBuilder {
    let nowhere = std::env::temp_dir().join("tracing-xray-no-such-dir");
    crate::builder()
        .with_env(vars(env))
        .with_paths(Paths {
            k8s_namespace: nowhere.join("a"),
            k8s_token: nowhere.join("b"),
            beanstalk_conf: nowhere.join("c"),
            dmi_dir: nowhere.join("d"),
            hypervisor_uuid: nowhere.join("e"),
        })
        .with_exporter(XrayExporter::builder().with_writer(out.clone()))
        .with_global_propagator(false)
        .with_global_provider(false)
}

/// Runs `body` under a subscriber with the layer `builder` makes, then flushes through
/// the guard and returns the documents.
fn run(builder: XrayLayerBuilder, out: &Buffer, body: impl FnOnce()) -> Vec<Value> {
    let layer = builder.build().expect("layer");
    let guard = layer.flush_guard();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, body);
    drop(guard);
    out.documents()
}

fn by_name<'a>(docs: &'a [Value], name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no document named {name}: {docs:#?}"))
}

#[test]
fn field_naming_rule_end_to_end() {
    let out = Buffer::default();
    let b = builder(&[("OTEL_SERVICE_NAME", "orders")], &out).with_annotation_keys(["order.id"]);
    let docs = run(b, &out, || {
        let root = tracing::info_span!(
            "handle",
            otel.kind = "server",
            annotation.customer_tier = "gold",
            annotation.retries = 3,
            order.id = "o-7",
            cart.items = 4,
            enduser.id = "u-42",
            http.request.method = "GET",
            url.full = "http://shop.local/orders/7",
            http.response.status_code = Empty,
        );
        let _e = root.enter();
        root.record("http.response.status_code", 404);
        for (status, name) in [(429, "throttled"), (503, "broken")] {
            let s = tracing::info_span!(
                "call",
                otel.name = name,
                otel.kind = "client",
                http.request.method = "GET",
                url.full = "http://backend.local/x",
                server.address = "backend.local",
                http.response.status_code = status,
            );
            let _e = s.enter();
        }
        let failing = tracing::info_span!(
            "work",
            otel.status_code = Empty,
            otel.status_description = Empty
        );
        failing.record("otel.status_code", "ERROR");
        failing.record("otel.status_description", "disk full");
        let io = std::io::Error::other("connection reset");
        let _e = tracing::info_span!("io").entered();
        tracing::error!(error = &io as &dyn std::error::Error, "write failed");
    });
    assert_eq!(docs.len(), 5, "{docs:#?}");
    let seg = by_name(&docs, "orders");
    assert_eq!(seg["annotations"]["customer_tier"], "gold");
    assert_eq!(seg["annotations"]["retries"], 3);
    assert!(seg["annotations"]["order.id"].is_null());
    assert_eq!(seg["annotations"]["order_id"], "o-7");
    assert_eq!(seg["metadata"]["default"]["cart.items"], 4);
    assert_eq!(seg["user"], "u-42");
    assert_eq!(seg["http"]["response"]["status"], 404);
    assert_eq!(
        (seg["error"].as_bool(), seg["fault"].as_bool()),
        (Some(true), None)
    );
    assert!(seg["trace_id"].as_str().unwrap().starts_with("1-"));

    let throttled = docs
        .iter()
        .find(|d| d["http"]["response"]["status"] == 429)
        .unwrap();
    assert_eq!(throttled["namespace"], "remote");
    assert_eq!(throttled["throttle"], true);
    assert_eq!(throttled["error"], true);
    assert_eq!(throttled["parent_id"], seg["id"]);
    let broken = docs
        .iter()
        .find(|d| d["http"]["response"]["status"] == 503)
        .unwrap();
    assert_eq!(broken["fault"], true);

    // Status from code: the subsegment is a fault, with the description as its cause.
    let failed = by_name(&docs, "work");
    assert_eq!(failed["fault"], true, "{failed:#}");
    assert_eq!(failed["parent_id"], seg["id"]);
    assert!(
        failed["cause"].to_string().contains("disk full"),
        "{failed:#}"
    );

    // An ERROR event with an `error` field: a fault with the error as an exception.
    let io = by_name(&docs, "io");
    assert_eq!(io["fault"], true, "{io:#}");
    assert!(
        io["cause"]["exceptions"]
            .to_string()
            .contains("connection reset"),
        "{io:#}"
    );
}

#[test]
fn names_and_resource_from_the_environment() {
    let out = Buffer::default();
    let env = [
        ("OTEL_SERVICE_NAME", "svc-from-env"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.version=1.2.3,deployment.environment=prod",
        ),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_XRAY_TRACING_NAME", "Tracing Name"),
    ];
    let docs = run(builder(&env, &out), &out, || {
        let _e = tracing::info_span!("root").entered();
    });
    assert_eq!(docs.len(), 1);
    let seg = &docs[0];
    assert_eq!(seg["name"], "Tracing Name");
    assert_eq!(seg["service"]["version"], "1.2.3");
    let resource = &seg["metadata"]["otel.resource"];
    assert_eq!(resource["service.name"], "svc-from-env", "{seg:#}");
    assert_eq!(resource["cloud.region"], "eu-west-1");
    assert_eq!(resource["deployment.environment"], "prod");
    assert_eq!(resource["telemetry.distro.name"], "tracing-xray");

    // Code wins over OTEL_SERVICE_NAME; OTEL_RESOURCE_ATTRIBUTES names the service when
    // nothing else does.
    let out = Buffer::default();
    let b = builder(&env[..3], &out).with_service_name("from-code");
    let docs = run(b, &out, || {
        let _e = tracing::info_span!("root").entered();
    });
    assert_eq!(docs[0]["name"], "from-code");
    let out = Buffer::default();
    let b = builder(
        &[("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs")],
        &out,
    );
    let docs = run(b, &out, || {
        let _e = tracing::info_span!("root").entered();
    });
    assert_eq!(docs[0]["name"], "from-attrs");
    let out = Buffer::default();
    let docs = run(builder(&[], &out), &out, || {
        let _e = tracing::info_span!("root").entered();
    });
    assert!(
        docs[0]["name"]
            .as_str()
            .unwrap()
            .starts_with("unknown_service:"),
        "{:#}",
        docs[0]
    );
}

#[test]
fn levels_above_the_maximum_stay_out() {
    let out = Buffer::default();
    let docs = run(builder(&[], &out), &out, || {
        let root = tracing::info_span!("root");
        let _e = root.enter();
        tracing::info!("kept");
        tracing::debug!("library chatter");
        let _d = tracing::debug_span!("detail").entered();
    });
    assert_eq!(docs.len(), 1, "{docs:#?}");
    let events = docs[0]["metadata"]["otel"].to_string();
    assert!(
        events.contains("kept") && !events.contains("library chatter"),
        "{events}"
    );

    let out = Buffer::default();
    let b = builder(&[], &out).with_max_level(tracing::Level::TRACE);
    let docs = run(b, &out, || {
        let _e = tracing::info_span!("root").entered();
        let _d = tracing::debug_span!("detail").entered();
    });
    assert_eq!(docs.len(), 2, "{docs:#?}");
}

#[test]
fn disabled_layer_is_a_no_op() {
    let out = Buffer::default();
    let layer = builder(&[("AWS_XRAY_SDK_ENABLED", "false")], &out)
        .build::<tracing_subscriber::Registry>()
        .unwrap();
    assert!(!layer.is_enabled());
    assert!(layer.provider().is_none() && layer.metrics().is_none());
    use tracing_subscriber::Layer;
    assert_eq!(
        layer.max_level_hint(),
        Some(tracing_subscriber::filter::LevelFilter::OFF)
    );
    let guard = layer.flush_guard();
    assert!(guard.flush());
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        // Nothing is interested: the span is disabled at its call site.
        let span = tracing::info_span!("root", otel.kind = "server");
        assert!(span.is_disabled());
    });
    drop(guard);
    assert!(out.documents().is_empty());

    // Code can disable too.
    let out = Buffer::default();
    let layer = builder(&[], &out)
        .enabled(false)
        .build::<tracing_subscriber::Registry>()
        .unwrap();
    assert!(!layer.is_enabled());
}

#[test]
fn context_missing_drops_orphan_downstream_calls() {
    let orphan = || {
        let _e = tracing::info_span!("GET", otel.kind = "client", url.full = "http://a.local/")
            .entered();
        let _job = tracing::info_span!("job").entered();
    };
    // Default: the call starts its own trace (a service segment holding the call, and the
    // work done inside the call).
    let out = Buffer::default();
    let docs = run(builder(&[], &out), &out, orphan);
    assert_eq!(docs.len(), 3, "{docs:#?}");
    for env in [
        ("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR"),
        ("AWS_XRAY_CONTEXT_MISSING", "IGNORE_ERROR"),
        ("AWS_XRAY_CONTEXT_MISSING", "RUNTIME_ERROR"),
    ] {
        let out = Buffer::default();
        let docs = run(builder(&[env], &out), &out, orphan);
        // The call and the work done inside it (its child, unsampled with it) are gone.
        assert!(docs.is_empty(), "{env:?}: {docs:#?}");
    }
    // The environment wins over code, code decides when the environment is silent.
    let out = Buffer::default();
    let b = builder(&[], &out).with_context_missing(ContextMissing::Ignore);
    assert!(run(b, &out, orphan).is_empty());
    // A call inside a trace is kept.
    let out = Buffer::default();
    let docs = run(
        builder(&[("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR")], &out),
        &out,
        || {
            let _root = tracing::info_span!("request", otel.kind = "server").entered();
            orphan();
        },
    );
    assert_eq!(docs.len(), 3, "{docs:#?}");
}

#[test]
fn samplers_from_the_environment() {
    let one = || {
        let _e = tracing::info_span!("root").entered();
    };
    let out = Buffer::default();
    assert!(
        run(
            builder(&[("OTEL_TRACES_SAMPLER", "always_off")], &out),
            &out,
            one
        )
        .is_empty()
    );
    let out = Buffer::default();
    let env = [
        ("OTEL_TRACES_SAMPLER", "traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0"),
    ];
    assert!(run(builder(&env, &out), &out, one).is_empty());
    // X-Ray rules, local only: the built-in default samples the first trace of a second.
    let out = Buffer::default();
    let env = [
        ("OTEL_TRACES_SAMPLER", "xray"),
        ("OTEL_TRACES_SAMPLER_ARG", "local_only=true"),
    ];
    let docs = run(builder(&env, &out), &out, one);
    assert_eq!(docs.len(), 1);
    assert_eq!(
        docs[0]["aws"]["xray"]["sampling_rule_name"], "Default",
        "{:#}",
        docs[0]
    );
    let env = [
        ("OTEL_TRACES_SAMPLER", "xray"),
        ("OTEL_TRACES_SAMPLER_ARG", "colour=blue"),
    ];
    let err = builder(&env, &out)
        .build::<tracing_subscriber::Registry>()
        .unwrap_err();
    assert!(matches!(err, Error::Sampler(_)), "{err}");
}

#[test]
fn bad_daemon_address_is_an_error() {
    let out = Buffer::default();
    let err = crate::builder()
        .with_env(vars(&[("AWS_XRAY_DAEMON_ADDRESS", "udp:nowhere")]))
        .with_resource_detection(false)
        .with_global_propagator(false)
        .with_global_provider(false)
        .build::<tracing_subscriber::Registry>()
        .unwrap_err();
    assert!(matches!(err, Error::DaemonAddress(_)), "{err}");
    drop(out);
}

#[test]
fn daemon_address_from_the_environment_receives_datagrams() {
    let socket = xray_testkit::udp_listener();
    let port = socket.local_addr().unwrap().port();
    let address = format!("127.0.0.1:{port}");
    let layer = crate::builder()
        .with_env(vars(&[
            ("AWS_XRAY_DAEMON_ADDRESS", &address),
            ("OTEL_SERVICE_NAME", "udp"),
        ]))
        // The environment wins over a daemon address given in code.
        .with_daemon_address("127.0.0.1:9".parse().unwrap())
        .with_resource_detection(false)
        .with_global_propagator(false)
        .with_global_provider(false)
        .build()
        .unwrap();
    let metrics = layer.metrics().unwrap().clone();
    let guard = layer.flush_guard();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let _e = tracing::info_span!("root").entered();
    });
    drop(guard);
    let datagrams = xray_testkit::recv_all(&socket, 10);
    assert_eq!(datagrams.len(), 1);
    let text = String::from_utf8(datagrams[0].clone()).unwrap();
    let (header, body) = text.split_once('\n').unwrap();
    assert_eq!(header, r#"{"format":"json","version":1}"#);
    xray_testkit::assert_schema_valid(body);
    assert!(body.contains(r#""name":"udp""#), "{body}");
    assert_eq!(metrics.snapshot().documents_sent, 1);
}

#[test]
fn xray_sampler_polls_the_daemon_address_given_in_code() {
    // The daemon's sampling API stand-in: the test only needs to see it asked.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let layer = crate::builder()
        .with_env(vars(&[
            ("OTEL_TRACES_SAMPLER", "xray"),
            ("OTEL_SERVICE_NAME", "sampled"),
        ]))
        .with_daemon_address(address.parse().unwrap())
        .with_resource_detection(false)
        .build::<tracing_subscriber::Registry>()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let request = loop {
        match listener.accept() {
            Ok((mut stream, _)) => {
                use std::io::Read;
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                    .unwrap();
                let mut buf = [0u8; 512];
                let n = stream.read(&mut buf).unwrap_or(0);
                break String::from_utf8_lossy(&buf[..n]).into_owned();
            }
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("the sampler never called {address}: {e}"),
        }
    };
    assert!(request.starts_with("POST /GetSamplingRules"), "{request}");
    drop(layer);
}

#[test]
fn beanstalk_detected_from_its_file() {
    let temp = xray_testkit::temp_dir("tracing-xray-eb");
    let dir = temp.path();
    let conf = dir.join("environment.conf");
    std::fs::write(
        &conf,
        r#"{"deployment_id":7,"version_label":"v7","environment_name":"shop-prod"}"#,
    )
    .unwrap();
    let out = Buffer::default();
    let b = builder(&[("OTEL_SERVICE_NAME", "shop")], &out).with_paths(Paths {
        beanstalk_conf: conf,
        ..Paths {
            k8s_namespace: dir.join("x"),
            k8s_token: dir.join("y"),
            beanstalk_conf: dir.join("z"),
            dmi_dir: dir.join("dmi"),
            hypervisor_uuid: dir.join("uuid"),
        }
    });
    let docs = run(b, &out, || {
        let _e = tracing::info_span!("root", otel.kind = "server").entered();
    });
    let seg = &docs[0];
    assert_eq!(
        seg["origin"], "AWS::ElasticBeanstalk::Environment",
        "{seg:#}"
    );
    let eb = &seg["aws"]["elastic_beanstalk"];
    assert_eq!(eb["environment_name"], "shop-prod");
    assert_eq!(eb["version_label"], "v7");
    assert_eq!(eb["deployment_id"], 7);
}

#[test]
fn location_timing_and_thread_attributes_only_when_asked() {
    let keys = ["code.file.path", "code.line.number", "busy_ns", "thread.id"];
    let body = || {
        let span = tracing::info_span!("GET /x", otel.kind = "server");
        let _entered = span.enter();
    };
    let metadata = |docs: &[Value]| {
        assert_eq!(docs.len(), 1, "{docs:#?}");
        docs[0]["metadata"]["default"].clone()
    };

    let out = Buffer::default();
    let docs = run(builder(&[], &out), &out, body);
    let default = metadata(&docs);
    for key in keys {
        assert!(
            default.get(key).is_none(),
            "{key} present by default: {default}"
        );
    }

    let out = Buffer::default();
    let on = builder(&[], &out)
        .with_location(true)
        .with_tracked_inactivity(true)
        .with_threads(true);
    let docs = run(on, &out, body);
    let default = metadata(&docs);
    for key in keys {
        assert!(
            default.get(key).is_some(),
            "{key} missing when asked: {default}"
        );
    }
}

/// A writer that takes its time, as a slow network would.
#[derive(Clone, Default)]
struct Slow(Buffer);

impl Write for Slow {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::thread::sleep(std::time::Duration::from_millis(300));
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn provider_force_flush_returns_only_once_the_documents_are_delivered() {
    // What a Lambda flush hook does: `provider.force_flush()` while the function still
    // runs. OpenTelemetry's batch processor alone would return once the exporter had
    // queued the documents, before its worker wrote them; both processors wait.
    for batch in [false, true] {
        let out = Buffer::default();
        let mut b = builder(&[("OTEL_SERVICE_NAME", "lambda-fn")], &out)
            .with_exporter(XrayExporter::builder().with_writer(Slow(out.clone())));
        if batch {
            b = b.with_batch_processor();
        }
        let layer = b.build().expect("layer");
        let provider = layer.provider().cloned().expect("enabled");
        let metrics = layer.metrics().cloned().expect("enabled");
        let guard = layer.flush_guard();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let _root = tracing::info_span!("invoke", otel.kind = "server").entered();
            tracing::info_span!("work").in_scope(|| {});
        });
        provider.force_flush().expect("flush");
        let m = metrics.snapshot();
        assert_eq!((m.spans_in, m.spans_sent), (2, 2), "batch {batch}: {m:?}");
        let docs = out.documents();
        assert_eq!(
            docs.len(),
            2,
            "batch {batch}: written before force_flush returned: {docs:#?}"
        );
        drop(guard);
    }
}

#[test]
fn translation_settings_from_the_builder_and_the_environment() {
    let out = Buffer::default();
    let b = builder(
        &[
            ("OTEL_SERVICE_NAME", "orders"),
            ("XRAY_BRIDGE_LOG_GROUP_NAMES", "/env/a,/env/b"),
        ],
        &out,
    )
    .with_indexed_attributes(["order.id"])
    .with_log_group_names(["/code"])
    .with_metadata_exclude(["user.*", "*.email"]);
    let docs = run(b, &out, || {
        let _root = tracing::info_span!(
            "handle",
            otel.kind = "server",
            order.id = "o-7",
            user.name = "ada",
            contact.email = "ada@example.com",
            cart.items = 4,
        )
        .entered();
    });
    let doc = by_name(&docs, "orders");
    assert_eq!(doc["annotations"], serde_json::json!({"order_id": "o-7"}));
    assert_eq!(
        doc["metadata"]["default"],
        serde_json::json!({"cart.items": 4})
    );
    // The variable wins over the builder.
    assert_eq!(
        doc["aws"]["cloudwatch_logs"],
        serde_json::json!([{"log_group": "/env/a"}, {"log_group": "/env/b"}])
    );
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert!(
        !text.contains("\"ada\"") && !text.contains("ada@"),
        "{text}"
    );

    // Every scalar indexed, from the builder or the environment.
    for (env, code) in [
        (None, true),
        (Some(("XRAY_BRIDGE_INDEX_ALL_ATTRIBUTES", "true")), false),
    ] {
        let out = Buffer::default();
        let env: Vec<(&str, &str)> = env.into_iter().collect();
        let b = builder(&env, &out).with_index_all_attributes(code);
        let docs = run(b, &out, || {
            let _root = tracing::info_span!("job", tenant = "t-1", items = 3).entered();
        });
        assert_eq!(
            docs[0]["annotations"],
            serde_json::json!({"tenant": "t-1", "items": 3}),
            "{env:?}"
        );
    }

    // A malformed pattern is an error, never a silent leak.
    let out = Buffer::default();
    let Err(err) = builder(&[("XRAY_BRIDGE_METADATA_EXCLUDE", "user.[")], &out)
        .build::<tracing_subscriber::Registry>()
    else {
        panic!("an invalid pattern was accepted");
    };
    assert!(matches!(err, Error::MetadataExclude(_)), "{err}");
}

#[test]
fn in_lambda_only_the_invocation_leaves_under_the_function_segment() {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let context = |header: &xray_model::TraceHeader| {
        opentelemetry::Context::new()
            .with_remote_span_context(xray_propagation::context_from_header(header))
    };
    let header: xray_model::TraceHeader =
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
            .parse()
            .unwrap();
    let out = Buffer::default();
    let b = builder(&[("AWS_LAMBDA_FUNCTION_NAME", "greeter")], &out);
    let docs = run(b, &out, || {
        // The runtime's own span: no parent, outside any invocation.
        let runtime = tracing::info_span!("Lambda runtime invoke");
        let _r = runtime.enter();
        let invocation = tracing::info_span!("greeter", faas.coldstart = true);
        invocation.set_parent(context(&header)).unwrap();
        let _i = invocation.enter();
        let _work = tracing::info_span!("greet").entered();
    });
    assert_eq!(docs.len(), 2, "{docs:#?}");
    let invocation = by_name(&docs, "greeter");
    assert_eq!(invocation["type"], "subsegment");
    assert_eq!(invocation["parent_id"], "53995c3f42cd8ad8");
    assert_eq!(
        invocation["trace_id"],
        "1-5759e988-bd862e3fe1be46a994272793"
    );
    assert_eq!(invocation["annotations"]["ColdStart"], true);
    assert!(invocation.get("origin").is_none());
    let work = by_name(&docs, "greet");
    assert_eq!(work["parent_id"], invocation["id"]);

    // A Root-only header has no function segment to join: a segment named after the
    // function, as the X-Ray SDKs name it.
    let root_only: xray_model::TraceHeader =
        "Root=1-5759e988-bd862e3fe1be46a994272793".parse().unwrap();
    let out = Buffer::default();
    let b = builder(&[("AWS_LAMBDA_FUNCTION_NAME", "greeter")], &out);
    let docs = run(b, &out, || {
        let invocation = tracing::info_span!("handler");
        invocation.set_parent(context(&root_only)).unwrap();
        let _i = invocation.enter();
    });
    assert_eq!(docs.len(), 1, "{docs:#?}");
    assert_eq!(docs[0]["name"], "greeter");
    assert_eq!(docs[0]["origin"], "AWS::Lambda::Function");
    assert!(docs[0].get("type").is_none());
}

/// Polls `out` until it holds `n` documents or `within` passes; returns how many it holds.
fn wait_for_documents(out: &Buffer, n: usize, within: std::time::Duration) -> usize {
    let deadline = std::time::Instant::now() + within;
    loop {
        let have = out.documents().len();
        if have >= n || std::time::Instant::now() >= deadline {
            return have;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Ends `n` root spans as fast as one thread can, under the layer `builder` makes; then
/// flushes and returns how many spans reached the exporter.
fn spans_reaching_the_exporter(builder: XrayLayerBuilder, n: u64) -> u64 {
    let layer = builder.build().expect("layer");
    let metrics = layer.metrics().cloned().expect("enabled");
    let guard = layer.flush_guard();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..n {
            tracing::info_span!("burst").in_scope(|| {});
        }
    });
    drop(guard);
    metrics.snapshot().spans_in
}

#[test]
fn otel_bsp_variables_apply_to_the_batch_processor_only() {
    use std::time::Duration;
    // Given through the builder's variable lookup, not the process environment.
    let bsp = |delay: &str, queue: &str, batch: &str| {
        vec![
            ("OTEL_SERVICE_NAME", "bsp".to_owned()),
            ("OTEL_BSP_SCHEDULE_DELAY", delay.to_owned()),
            ("OTEL_BSP_MAX_QUEUE_SIZE", queue.to_owned()),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", batch.to_owned()),
        ]
    };
    let make = |env: &[(&str, String)], out: &Buffer| {
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        builder(&pairs, out)
    };

    // OTEL_BSP_SCHEDULE_DELAY=100: a lone span is exported without a flush, long before
    // the default delay of 5 s.
    let out = Buffer::default();
    let layer = make(&bsp("100", "2048", "512"), &out)
        .with_batch_processor()
        .build()
        .expect("layer");
    let guard = layer.flush_guard();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info_span!("lone").in_scope(|| {});
        assert_eq!(wait_for_documents(&out, 1, Duration::from_secs(3)), 1);
    });
    drop(guard);

    // OTEL_BSP_MAX_EXPORT_BATCH_SIZE=3 under a 60-s delay: two spans wait, the third
    // completes a batch and all three go at once.
    let out = Buffer::default();
    let layer = make(&bsp("60000", "2048", "3"), &out)
        .with_batch_processor()
        .build()
        .expect("layer");
    let guard = layer.flush_guard();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info_span!("one").in_scope(|| {});
        tracing::info_span!("two").in_scope(|| {});
        assert_eq!(wait_for_documents(&out, 1, Duration::from_millis(400)), 0);
        tracing::info_span!("three").in_scope(|| {});
        assert_eq!(wait_for_documents(&out, 3, Duration::from_secs(3)), 3);
    });
    drop(guard);

    // OTEL_BSP_MAX_QUEUE_SIZE=1: a burst overflows the batch processor's queue (those
    // spans never reach the exporter); with the default queue of 2,048 the same burst
    // fits whole.
    let burst = 2_000;
    let fits = spans_reaching_the_exporter(
        make(&bsp("60000", "2048", "512"), &Buffer::default()).with_batch_processor(),
        burst,
    );
    assert_eq!(fits, burst);
    let overflowed = spans_reaching_the_exporter(
        make(&bsp("60000", "1", "1"), &Buffer::default()).with_batch_processor(),
        burst,
    );
    assert!(
        (1..burst).contains(&overflowed),
        "a queue of one span keeps up with a burst? {overflowed} of {burst}"
    );

    // Our processor ignores them: under the same variables the lone span goes at once,
    // and the burst reaches the exporter whole.
    let out = Buffer::default();
    let layer = make(&bsp("60000", "1", "3"), &out).build().expect("layer");
    let guard = layer.flush_guard();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info_span!("lone").in_scope(|| {});
        assert_eq!(wait_for_documents(&out, 1, Duration::from_secs(3)), 1);
    });
    drop(guard);
    let ours =
        spans_reaching_the_exporter(make(&bsp("60000", "1", "1"), &Buffer::default()), burst);
    assert_eq!(ours, burst);
}
