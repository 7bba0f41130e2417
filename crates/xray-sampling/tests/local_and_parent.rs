//! Local rule files (versions 1 and 2), environment configuration, and the parent-based
//! behaviour, with no server.

mod common;

use std::time::Duration;

use common::*;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SamplingDecision, ShouldSample};
use xray_model::Sampled;
use xray_model::carry::{HopState, TRACE_STATE_KEY};
use xray_sampling::{Error, SAMPLING_RULE_NAME_ATTRIBUTE, XraySampler};

fn write_rules(text: &str) -> RulesFile {
    let dir = xray_testkit::temp_dir("sampling-rules");
    let path = dir.path().join("rules.json");
    std::fs::write(&path, text).unwrap();
    RulesFile(path, dir)
}

/// A rules file in a temporary folder, removed on drop.
struct RulesFile(
    std::path::PathBuf,
    #[allow(dead_code)] xray_testkit::TempDir,
);

const V2: &str = r#"{
  "version": 2,
  "rules": [
    {"description": "ignore-healthcheck", "host": "*", "http_method": "GET",
     "url_path": "/health", "fixed_target": 0, "rate": 0.0},
    {"description": "api", "host": "*.example.com", "http_method": "*",
     "url_path": "/api/*", "fixed_target": 0, "rate": 1.0}
  ],
  "default": {"fixed_target": 0, "rate": 0.0}
}"#;

#[test]
fn version_2_file_applies_rules_in_order_then_default() {
    let file = write_rules(V2);
    let sampler = XraySampler::builder()
        .with_local_rules_only()
        .with_rules_file(&file.0)
        .build()
        .unwrap();
    assert!(!sampler.is_polling());
    assert_eq!(
        sampler.rule_names(),
        ["ignore-healthcheck", "api", "Default"]
    );
    for _ in 0..500 {
        assert_eq!(
            decide(&sampler, &http("GET", "/health")),
            (false, "ignore-healthcheck".into())
        );
    }
    let api = [
        KeyValue::new("http.method", "POST"),
        KeyValue::new("http.target", "/API/orders?id=1"),
        KeyValue::new("server.address", "shop.EXAMPLE.com"),
    ];
    assert_eq!(decide(&sampler, &api), (true, "api".into()));
    let other_host = [
        KeyValue::new("http.method", "POST"),
        KeyValue::new("url.full", "https://example.org/api/orders"),
    ];
    assert_eq!(decide(&sampler, &other_host), (false, "Default".into()));
}

#[test]
fn version_1_file_matches_service_name_as_host() {
    let file = write_rules(
        r#"{"version": 1, "rules": [{"description": "v1", "service_name": "api.*",
            "http_method": "GET", "url_path": "/v1/*", "fixed_target": 3, "rate": 0}],
            "default": {"fixed_target": 0, "rate": 0}}"#,
    );
    let sampler = XraySampler::builder()
        .with_local_rules_only()
        .with_rules_file(&file.0)
        .build()
        .unwrap();
    let mut attrs = http("GET", "/v1/items");
    attrs.push(KeyValue::new("http.host", "api.example.com"));
    // fixed_target 3: three per second, then rate 0 (counted within one fresh second).
    let sampled = loop {
        let second = now_secs().floor() + 1.0;
        while now_secs() < second + 0.01 {
            std::thread::sleep(Duration::from_millis(2));
        }
        let n = (0..50).filter(|_| decide(&sampler, &attrs).0).count();
        if now_secs() < second + 1.0 {
            break n;
        }
    };
    assert_eq!(sampled, 3);
    assert_eq!(decide(&sampler, &attrs).1, "v1");
    assert_eq!(decide(&sampler, &http("GET", "/v1/items")).1, "Default");
}

#[test]
fn bad_rule_files_fail_the_build_not_the_app() {
    let file = write_rules(r#"{"version": 7, "default": {"fixed_target": 1, "rate": 0.1}}"#);
    let e = XraySampler::builder()
        .with_local_rules_only()
        .with_rules_file(&file.0)
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::InvalidRules(_)), "{e}");
    let e = XraySampler::builder()
        .with_rules_file("/definitely/not/here.json")
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::ReadRulesFile { .. }), "{e}");
}

#[test]
fn sampler_arg_configures_a_local_file() {
    let file = write_rules(V2);
    let arg = format!("local_only=true,rules_file={}", file.0.display());
    let sampler = XraySampler::builder()
        .with_sampler_arg(&arg)
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(
        decide(&sampler, &http("GET", "/health")).1,
        "ignore-healthcheck"
    );
}

/// Rules that never sample: every decision made here says Drop.
fn never() -> XraySampler {
    XraySampler::builder()
        .with_local_rules_only()
        .with_local_rules(
            xray_sampling::LocalRules::from_json(
                r#"{"version":2,"default":{"fixed_target":0,"rate":0}}"#,
            )
            .unwrap(),
        )
        .build()
        .unwrap()
}

fn parent(remote: bool, sampled: bool, hop: Option<HopState>) -> Context {
    let state = match hop.and_then(|h| h.encode()) {
        Some(v) => TraceState::from_key_value([(TRACE_STATE_KEY, v)]).unwrap(),
        None => TraceState::default(),
    };
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let sc = SpanContext::new(
        TraceId::from(0x5759e988bd862e3fe1be46a994272793u128),
        SpanId::from(0x53995c3f42cd8ad8u64),
        flags,
        remote,
        state,
    );
    Context::new().with_remote_span_context(sc)
}

fn sample(sampler: &XraySampler, cx: &Context) -> opentelemetry_sdk::trace::SamplingResult {
    sampler.should_sample(
        Some(cx),
        TraceId::from(0x5759e988bd862e3fe1be46a994272793u128),
        "child",
        &SpanKind::Server,
        &http("GET", "/"),
        &[],
    )
}

#[test]
fn parent_decision_is_followed_unless_it_was_deferred() {
    let sampler = never();
    // Sampled=1 from upstream: followed even though our rules would drop.
    let r = sample(&sampler, &parent(true, true, None));
    assert_eq!(r.decision, SamplingDecision::RecordAndSample);
    assert!(r.attributes.is_empty());
    // Sampled=0 from upstream: followed.
    let r = sample(&sampler, &parent(true, false, None));
    assert_eq!(r.decision, SamplingDecision::Drop);

    // Sampled=? or no Sampled: decided here, by our rules, and the trace state kept.
    for open in [Sampled::Requested, Sampled::Unknown] {
        let hop = HopState {
            no_parent: true,
            sampled: open,
            fields: vec![("Lineage".into(), "a87bd80c:0".into())],
        };
        let cx = parent(true, false, Some(hop.clone()));
        let r = sample(&sampler, &cx);
        assert_eq!(r.decision, SamplingDecision::Drop, "{open:?}");
        assert_eq!(r.attributes[0].key.as_str(), SAMPLING_RULE_NAME_ATTRIBUTE);
        assert_eq!(r.attributes[0].value.as_str(), "Default");
        assert_eq!(r.trace_state.get(TRACE_STATE_KEY), hop.encode().as_deref());

        let always = XraySampler::builder()
            .with_local_rules_only()
            .with_local_rules(
                xray_sampling::LocalRules::from_json(
                    r#"{"version":2,"default":{"fixed_target":0,"rate":1}}"#,
                )
                .unwrap(),
            )
            .build()
            .unwrap();
        // Even a sampled bit set by a careless propagator does not override "decide here".
        let r = sample(&always, &parent(true, true, Some(hop)));
        assert_eq!(r.decision, SamplingDecision::RecordAndSample);
        assert_eq!(r.attributes[0].value.as_str(), "Default");
    }

    // A local parent (our own span) is always followed, whatever its trace state says.
    let hop = HopState {
        sampled: Sampled::Requested,
        ..Default::default()
    };
    let r = sample(&sampler, &parent(false, true, Some(hop)));
    assert_eq!(r.decision, SamplingDecision::RecordAndSample);

    // A broken trace-state entry is read as "decided upstream".
    let sc = SpanContext::new(
        TraceId::from(1u128),
        SpanId::from(1u64),
        TraceFlags::SAMPLED,
        true,
        TraceState::from_key_value([(TRACE_STATE_KEY, "zz")]).unwrap(),
    );
    let r = sample(&sampler, &Context::new().with_remote_span_context(sc));
    assert_eq!(r.decision, SamplingDecision::RecordAndSample);
}

#[test]
fn works_inside_an_sdk_tracer_provider() {
    use opentelemetry::trace::{Span, Tracer, TracerProvider};
    use opentelemetry_sdk::trace::SdkTracerProvider;

    let provider = SdkTracerProvider::builder()
        .with_sampler(
            XraySampler::builder()
                .with_local_rules_only()
                .with_rules_file(write_rules(V2).0.clone())
                .build()
                .unwrap(),
        )
        .build();
    let tracer = provider.tracer("test");
    let span = tracer
        .span_builder("GET /health")
        .with_attributes(http("GET", "/health"))
        .start(&tracer);
    assert!(!span.span_context().is_sampled());
    let span = tracer
        .span_builder("GET /api/x")
        .with_attributes([
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("url.full", "https://a.example.com/api/x"),
        ])
        .start(&tracer);
    assert!(span.span_context().is_sampled());
    assert!(span.is_recording());
    let _ = provider.shutdown();
}
