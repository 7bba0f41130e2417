//! What one sampling decision costs: a root span matched against ten rules, a child that
//! follows its parent, and a remote parent that left the decision to us.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::ShouldSample;
use xray_sampling::{LocalRules, XraySampler};

fn sampler() -> XraySampler {
    let rules: Vec<String> = (0..9)
        .map(|i| {
            format!(
                r#"{{"description":"r{i}","host":"*.example.com","http_method":"POST","url_path":"/api/v{i}/*","fixed_target":1,"rate":0.1}}"#
            )
        })
        .chain([r#"{"description":"ignore-healthcheck","host":"*","http_method":"GET","url_path":"/health","fixed_target":0,"rate":0}"#.to_owned()])
        .collect();
    let text = format!(
        r#"{{"version":2,"rules":[{}],"default":{{"fixed_target":1,"rate":0.05}}}}"#,
        rules.join(",")
    );
    XraySampler::builder()
        .with_local_rules_only()
        .with_local_rules(LocalRules::from_json(&text).unwrap())
        .with_service_name("bench")
        .build()
        .unwrap()
}

fn decisions(c: &mut Criterion) {
    let sampler = sampler();
    let attrs = [
        KeyValue::new("http.request.method", "GET"),
        KeyValue::new("url.path", "/api/users/42"),
        KeyValue::new("server.address", "shop.example.com"),
        KeyValue::new("user_agent.original", "bench/1.0"),
    ];
    let trace_id = TraceId::from(0x5759e988bd862e3fe1be46a994272793u128);
    c.bench_function("root span, 10 rules, default decides", |b| {
        b.iter(|| {
            sampler.should_sample(
                None,
                black_box(trace_id),
                "GET /api/users/{id}",
                &SpanKind::Server,
                black_box(&attrs),
                &[],
            )
        })
    });

    let parent = |remote: bool, state: TraceState| {
        Context::new().with_remote_span_context(SpanContext::new(
            trace_id,
            SpanId::from(7u64),
            TraceFlags::SAMPLED,
            remote,
            state,
        ))
    };
    let local_parent = parent(false, TraceState::default());
    c.bench_function("child of a sampled local parent", |b| {
        b.iter(|| {
            sampler.should_sample(
                Some(black_box(&local_parent)),
                trace_id,
                "child",
                &SpanKind::Internal,
                &[],
                &[],
            )
        })
    });

    let deferred = parent(
        true,
        TraceState::from_key_value([(xray_model::carry::TRACE_STATE_KEY, "np;s?")]).unwrap(),
    );
    c.bench_function("remote parent with Sampled=?", |b| {
        b.iter(|| {
            sampler.should_sample(
                Some(black_box(&deferred)),
                trace_id,
                "GET /api/users/{id}",
                &SpanKind::Server,
                black_box(&attrs),
                &[],
            )
        })
    });
}

/// Two threads deciding at once with the same rules (shared reservoirs and counters):
/// the time per decision, per thread.
fn contended(c: &mut Criterion) {
    let sampler = sampler();
    c.bench_function("root span, 2 threads at once", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    let sampler = &sampler;
                    s.spawn(move || {
                        let attrs = [
                            KeyValue::new("http.request.method", "GET"),
                            KeyValue::new("url.path", "/api/users/42"),
                        ];
                        for _ in 0..iters {
                            black_box(sampler.should_sample(
                                None,
                                TraceId::from(1u128),
                                "GET",
                                &SpanKind::Server,
                                &attrs,
                                &[],
                            ));
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
}

criterion_group!(benches, decisions, contended);
criterion_main!(benches);
