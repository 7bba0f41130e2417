//! Side by side in one run, on identical input: our translator vs opentelemetry-aws 0.21's
//! `SegmentTranslator`; translate + UDP send to a local listener, ours (`UdpTransport`,
//! sendmmsg) vs its `XrayDaemonClient`; and our sampler's decision with 1 and 100 rules.
//! Before measuring, prints allocations per span of each side.

use std::hint::black_box;
use std::net::UdpSocket;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, TraceId};
use opentelemetry_aws::xray_exporter::daemon_client::XrayDaemonClient;
use opentelemetry_aws::xray_exporter::{SegmentDocumentExporter, SegmentTranslator};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{ShouldSample, SpanData};
use xray_bridge_benches::{alloc, run_ready, spans};
use xray_export::transport::daemon::UdpTransport;
use xray_export::{Document, HostPort, Metrics, RetryPolicy, SendContext, Translator, Transport};
use xray_model::Nesting;
use xray_sampling::{LocalRules, XraySampler};
use xray_translate::PreparedResource;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

const SIZES: [usize; 3] = [10, 100, 512];

/// Ours on a resource prepared once, as opentelemetry-aws's `set_resource` is done once.
fn ours_translate<'a>(r: &'a PreparedResource<'a>, batch: &'a [SpanData]) -> usize {
    for span in batch {
        black_box(r.translate_sdk(span));
    }
    batch.len()
}

/// What `XrayExporter` does with a batch: prepare the resource, translate, nest each
/// subsegment into its parent's document when the parent is in the batch, encode within
/// 64 kB.
fn ours_json(
    t: &Translator,
    batch: &[SpanData],
    r: &Resource,
    scratch: &mut Vec<u8>,
) -> Vec<Document> {
    let resource = t.prepare_sdk(r);
    let mut segments: Vec<_> = batch.iter().map(|s| resource.translate_sdk(s)).collect();
    let nesting = Nesting::of(&segments);
    let mut docs = Vec::with_capacity(segments.len());
    for root in nesting.top_level() {
        Document::encode_nested(&mut segments, &nesting, root, scratch, |d| {
            docs.extend(d.ok())
        });
    }
    docs
}

/// A listener that drains datagrams on its own thread until the process ends.
fn listener() -> std::net::SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while socket.recv(&mut buf).is_ok() {}
    });
    addr
}

fn translation(c: &mut Criterion) {
    let resource = spans::resource();
    let ours = Translator::default();
    let prepared = ours.prepare_sdk(&resource);
    let mut theirs = SegmentTranslator::new();
    theirs.set_resource(&resource);
    let mut group = c.benchmark_group("translate");
    for n in SIZES {
        let batch = spans::batch(n);
        // Fairness: both sides must translate every span, or the comparison is void.
        assert_eq!(ours_translate(&prepared, &batch), n);
        assert_eq!(
            theirs.translate_spans(&batch).len(),
            n,
            "opentelemetry-aws dropped spans"
        );
        let (_, a) = alloc::count(|| ours_translate(&prepared, &batch));
        let (_, b) = alloc::count(|| black_box(theirs.translate_spans(&batch)).len());
        println!(
            "allocations per span, translate {n}: ours {:.1}, opentelemetry-aws {:.1}",
            a as f64 / n as f64,
            b as f64 / n as f64
        );
        let mut scratch = Vec::with_capacity(64 * 1024);
        let (_, a) = alloc::count(|| ours_json(&ours, &batch, &resource, &mut scratch).len());
        let (_, b) = alloc::count(|| {
            theirs
                .translate_spans(&batch)
                .iter()
                .map(|d| black_box(d.to_string()).len())
                .sum::<usize>()
        });
        println!(
            "allocations per span, translate+JSON {n}: ours {:.1}, opentelemetry-aws {:.1}",
            a as f64 / n as f64,
            b as f64 / n as f64
        );
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("ours", n), &batch, |b, batch| {
            b.iter(|| ours_translate(&prepared, batch))
        });
        group.bench_with_input(
            BenchmarkId::new("opentelemetry-aws", n),
            &batch,
            |b, batch| b.iter(|| black_box(theirs.translate_spans(batch)).len()),
        );
    }
    group.finish();
}

fn udp_export(c: &mut Criterion) {
    let resource = spans::resource();
    let addr = listener();
    let ours = Translator::default();
    let mut transport = UdpTransport::new(HostPort {
        host: addr.ip().to_string(),
        port: addr.port(),
    });
    let cx = SendContext::standalone(Metrics::default(), RetryPolicy::default());
    let mut theirs = SegmentTranslator::new();
    theirs.set_resource(&resource);
    let client = XrayDaemonClient::new(addr).expect("client");
    let mut scratch = Vec::with_capacity(64 * 1024);
    let mut group = c.benchmark_group("translate+udp");
    for n in SIZES {
        let batch = spans::batch(n);
        let docs = ours_json(&ours, &batch, &resource, &mut scratch);
        let carried: u64 = docs.iter().map(Document::span_count).sum();
        assert_eq!(carried, n as u64, "every span is in a document");
        println!(
            "translate+udp/{n}: ours sends {} documents, opentelemetry-aws {}",
            docs.len(),
            theirs.translate_spans(&batch).len()
        );
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("ours", n), &batch, |b, batch| {
            b.iter(|| {
                let docs = ours_json(&ours, batch, &resource, &mut scratch);
                run_ready(transport.send(docs, &cx));
            })
        });
        group.bench_with_input(
            BenchmarkId::new("opentelemetry-aws", n),
            &batch,
            |b, batch| {
                b.iter(|| {
                    let docs = theirs.translate_spans(batch);
                    run_ready(client.export_segment_documents(docs)).expect("sent");
                })
            },
        );
    }
    group.finish();
    let sent = cx.metrics().snapshot();
    assert_eq!(sent.dropped_total(), 0, "our UDP sends failed");
    assert!(sent.spans_sent > 0, "nothing was sent: {sent:?}");
}

/// A sampler with `rules` local rules of which none matches, so every rule is tried.
fn sampler(rules: usize) -> XraySampler {
    let rules: Vec<String> = (0..rules)
        .map(|i| format!(r#"{{"description":"r{i}","host":"*.example.com","http_method":"POST","url_path":"/api/v{i}/*","fixed_target":1,"rate":0.1}}"#))
        .collect();
    let text = format!(
        r#"{{"version":2,"rules":[{}],"default":{{"fixed_target":1,"rate":0.05}}}}"#,
        rules.join(",")
    );
    XraySampler::builder()
        .with_local_rules_only()
        .with_local_rules(LocalRules::from_json(&text).expect("rules"))
        .with_service_name("bench")
        .build()
        .expect("sampler")
}

fn sampling(c: &mut Criterion) {
    let attrs = [
        KeyValue::new("http.request.method", "GET"),
        KeyValue::new("url.path", "/api/users/42"),
        KeyValue::new("server.address", "shop.example.com"),
        KeyValue::new("user_agent.original", "bench/1.0"),
    ];
    let trace_id = TraceId::from(0x5759e988bd862e3fe1be46a994272793u128);
    let mut group = c.benchmark_group("sampler decision");
    for rules in [1, 100] {
        let sampler = sampler(rules);
        group.bench_function(BenchmarkId::new("root span, rules", rules), |b| {
            b.iter(|| {
                sampler.should_sample(
                    None,
                    black_box(trace_id),
                    "GET /api/users",
                    &SpanKind::Server,
                    black_box(&attrs),
                    &[],
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, translation, udp_export, sampling);
criterion_main!(benches);
