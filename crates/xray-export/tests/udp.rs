//! Daemon UDP: what a listener receives, size limits, big traces, unreachable daemons,
//! and Python's aws-xray-sdk as a second reference for the datagram framing.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanExporter;
use xray_export::transport::daemon::UdpTransport;
use xray_export::{
    DaemonAddress, Document, DropReason, HostPort, Pipeline, PipelineConfig, RetryPolicy,
    XrayExporter,
};
use xray_model::limits::{MAX_DATAGRAM_BYTES, MAX_DOCUMENT_BYTES};
use xray_model::{
    DAEMON_HEADER, Segment, SegmentId, TraceId, parse_datagram, split_to_document_limit,
};
use xray_testkit::{assert_schema_valid, recv_all, udp_listener};

use common::{Collector, span, trace_id};

fn address(port: u16) -> DaemonAddress {
    format!("127.0.0.1:{port}").parse().unwrap()
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        request_timeout: Duration::from_secs(2),
        ..Default::default()
    }
}

/// Parses every datagram, checks size, framing and schema; returns documents by id.
fn documents(datagrams: &[Vec<u8>]) -> HashMap<String, serde_json::Value> {
    let mut out = HashMap::new();
    for d in datagrams {
        assert!(
            d.len() <= MAX_DATAGRAM_BYTES,
            "datagram of {} bytes",
            d.len()
        );
        assert!(d.starts_with(DAEMON_HEADER.as_bytes()));
        let parsed = parse_datagram(d).expect("valid datagram");
        assert!(parsed.document.len() <= MAX_DOCUMENT_BYTES);
        assert_schema_valid(parsed.document);
        let value: serde_json::Value = serde_json::from_str(parsed.document).unwrap();
        let previous = out.insert(parsed.summary.id.to_string(), value);
        assert!(
            previous.is_none(),
            "document {} received twice",
            parsed.summary.id
        );
    }
    out
}

#[test]
fn exporter_nests_a_batchs_subsegments_into_one_datagram() {
    let listener = udp_listener();
    let port = listener.local_addr().unwrap().port();
    let exporter = XrayExporter::builder()
        .with_daemon_address(address(port))
        .build()
        .unwrap();
    let t = trace_id(3);
    let mut batch: Vec<_> = (2..=20)
        .map(|i| span(t, i, 1, SpanKind::Client, &format!("call {i}")))
        .collect();
    batch.push(span(t, 1, 0, SpanKind::Server, "GET /users/{id}"));
    // A child whose parent is not in the batch stays standalone.
    batch.push(span(t, 30, 29, SpanKind::Client, "late"));
    futures_lite_block_on(exporter.export(batch)).unwrap();
    exporter.force_flush().unwrap();
    let docs = documents(&recv_all(&listener, 100));
    let ids: BTreeSet<String> = docs.keys().cloned().collect();
    assert_eq!(
        ids,
        BTreeSet::from([format!("{:016x}", 1), format!("{:016x}", 30)])
    );
    let root = &docs[&format!("{:016x}", 1)];
    let children = root["subsegments"].as_array().unwrap();
    let names: Vec<&str> = children
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (2..=20).map(|i| format!("call {i}")).collect();
    assert_eq!(names, expected);
    assert!(children.iter().all(|c| c.get("parent_id").is_none()));
    assert_eq!(
        docs[&format!("{:016x}", 30)]["parent_id"],
        format!("{:016x}", 29)
    );
    let m = exporter.metrics().snapshot();
    assert_eq!(
        (
            m.spans_in,
            m.spans_sent,
            m.documents_sent,
            m.dropped_total()
        ),
        (21, 21, 2, 0)
    );
    exporter.shutdown().unwrap();
}

#[test]
fn exporter_sends_exactly_one_datagram_per_span_without_nesting() {
    let listener = udp_listener();
    let port = listener.local_addr().unwrap().port();
    let exporter = XrayExporter::builder()
        .with_daemon_address(address(port))
        .with_nested_subsegments(false)
        .build()
        .unwrap();
    let t = trace_id(1);
    let mut batch = vec![span(t, 1, 0, SpanKind::Server, "GET /users/{id}")];
    for i in 2..=20 {
        batch.push(span(t, i, 1, SpanKind::Client, &format!("call {i}")));
    }
    futures_lite_block_on(exporter.export(batch)).unwrap();
    exporter.force_flush().unwrap();
    let docs = documents(&recv_all(&listener, 100));
    let expected: BTreeSet<String> = (1..=20u64).map(|i| format!("{i:016x}")).collect();
    assert_eq!(docs.keys().cloned().collect::<BTreeSet<_>>(), expected);
    let child = &docs[&format!("{:016x}", 2)];
    assert_eq!(child["type"], "subsegment");
    assert_eq!(child["parent_id"], format!("{:016x}", 1));
    assert_eq!(child["trace_id"], TraceId::from_u128(t).to_string());
    let m = exporter.metrics().snapshot();
    assert_eq!(
        (m.spans_in, m.documents_sent, m.dropped_total()),
        (20, 20, 0)
    );
    exporter.shutdown().unwrap();
}

#[test]
fn a_300_subsegment_trace_arrives_complete_in_several_documents() {
    // The binary's path: an SDK-built segment tree of 300 subsegments, too large for one
    // datagram, split into standalone subsegments and sent through the same pipeline.
    let collector = Collector::start();
    let port = collector.port;
    let trace = TraceId::from_u128(trace_id(2));
    let mut root = Segment::new(
        "big-service",
        SegmentId::from_u64(1),
        trace,
        1_700_000_000.0,
    );
    root.end_time = Some(1_700_000_001.0);
    for i in 0..300u64 {
        let mut child = Segment {
            name: format!("downstream-call-{i}-{}", "x".repeat(150)).into(),
            id: SegmentId::from_u64(100 + i),
            start_time: 1_700_000_000.1,
            end_time: Some(1_700_000_000.2),
            ..Default::default()
        };
        child.put_metadata(
            "default",
            "payload",
            xray_model::AnyValue::Str("y".repeat(300).into()),
        );
        root.subsegments.push(child);
    }
    assert!(xray_model::encoded_len(&root) > MAX_DOCUMENT_BYTES);
    let (parts, report) = split_to_document_limit(root);
    assert!(report.detached > 0 && parts.len() > 1);
    let pipeline = Pipeline::start(
        UdpTransport::new(address(port).udp),
        PipelineConfig::default(),
    )
    .unwrap();
    let mut scratch = Vec::new();
    for part in &parts {
        pipeline.submit(Document::encode(part, &mut scratch).unwrap());
    }
    pipeline.flush(Duration::from_secs(5)).unwrap();
    let docs = documents(&collector.wait_for(parts.len()));
    assert_eq!(docs.len(), parts.len());
    // Every subsegment is present once, embedded or standalone.
    fn ids(v: &serde_json::Value, out: &mut Vec<String>) {
        out.push(v["id"].as_str().unwrap().to_owned());
        for c in v["subsegments"].as_array().into_iter().flatten() {
            ids(c, out);
        }
    }
    let mut all = Vec::new();
    docs.values().for_each(|d| ids(d, &mut all));
    all.sort();
    let mut expected: Vec<String> = std::iter::once(1u64)
        .chain(100..400)
        .map(|i| format!("{i:016x}"))
        .collect();
    expected.sort();
    assert_eq!(all, expected);
    assert!(docs.values().all(|d| d["trace_id"] == trace.to_string()));
    pipeline.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn an_unreachable_daemon_loses_nothing_silently() {
    // Nothing listens on this port: loopback answers with ICMP port unreachable, which
    // surfaces as refused sends. Every document ends up counted as sent or dropped.
    let closed = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let metrics = xray_export::Metrics::default();
    let config = PipelineConfig {
        retry: fast_retry(),
        ..Default::default()
    };
    let pipeline = Pipeline::start_with_metrics(
        UdpTransport::new(address(closed).udp),
        config.clone(),
        metrics.clone(),
    )
    .unwrap();
    for i in 0..40u64 {
        let mut s = Segment::new(
            "svc",
            SegmentId::from_u64(i + 1),
            TraceId::from_u128(trace_id(3)),
            1.0,
        );
        s.end_time = Some(2.0);
        pipeline.submit(Document::encode(&s, &mut Vec::new()).unwrap());
        // Separate sends so the refusals show.
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = pipeline.flush(Duration::from_secs(5));
    let m = metrics.snapshot();
    assert_eq!(m.documents_sent + m.dropped_total(), 40, "{m:?}");
    assert!(m.send_errors > 0, "refusals are counted: {m:?}");
    pipeline.shutdown(Duration::from_secs(1)).ok();

    // A host name that never resolves: every document dropped with a reason.
    let metrics = xray_export::Metrics::default();
    let unresolvable = HostPort {
        host: "xray-daemon.invalid".into(),
        port: 2000,
    };
    let pipeline =
        Pipeline::start_with_metrics(UdpTransport::new(unresolvable), config, metrics.clone())
            .unwrap();
    for i in 0..5u64 {
        let mut s = Segment::new(
            "svc",
            SegmentId::from_u64(i + 1),
            TraceId::from_u128(trace_id(4)),
            1.0,
        );
        s.end_time = Some(2.0);
        pipeline.submit(Document::encode(&s, &mut Vec::new()).unwrap());
    }
    let err = pipeline.flush(Duration::from_secs(10)).unwrap_err();
    assert!(err.dropped.contains("transport_unavailable=5"), "{err}");
    let m = metrics.snapshot();
    assert_eq!(m.dropped(DropReason::TransportUnavailable), 5);
    assert_eq!(m.documents_sent, 0);
}

#[test]
fn python_aws_xray_sdk_frames_datagrams_like_we_do() {
    xray_testkit::require_python(&["aws_xray_sdk"]);
    let listener = udp_listener();
    let port = listener.local_addr().unwrap().port();
    let script = r#"
import sys
from aws_xray_sdk.core import xray_recorder
xray_recorder.configure(daemon_address="127.0.0.1:" + sys.argv[1], sampling=False, context_missing="LOG_ERROR", service="py-peer")
seg = xray_recorder.begin_segment("py-peer")
sub = xray_recorder.begin_subsegment("child")
xray_recorder.end_subsegment()
xray_recorder.end_segment()
"#;
    xray_testkit::run_python(script, &[&port.to_string()], "");
    let theirs = recv_all(&listener, 10);
    assert_eq!(theirs.len(), 1, "one segment with its subsegment embedded");
    let theirs = &theirs[0];
    // Same header line, byte for byte, and a body our parser accepts.
    let newline = theirs.iter().position(|b| *b == b'\n').unwrap();
    assert_eq!(&theirs[..=newline], DAEMON_HEADER.as_bytes());
    let parsed = parse_datagram(theirs).expect("our parser reads the SDK's datagram");
    assert_schema_valid(parsed.document);

    // The SDK's document, re-sent through our pipeline, arrives byte for byte.
    let doc = Document::from_json(parsed.document.as_bytes().to_vec()).unwrap();
    let pipeline = Pipeline::start(
        UdpTransport::new(address(port).udp),
        PipelineConfig::default(),
    )
    .unwrap();
    pipeline.submit(doc);
    pipeline.flush(Duration::from_secs(5)).unwrap();
    let ours = recv_all(&listener, 10);
    assert_eq!(ours.len(), 1);
    assert_eq!(&ours[0][..], &theirs[..newline + 1 + parsed.document.len()]);
}

/// `export` returns a ready future; poll it once.
fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = std::task::Waker::noop();
    match f.as_mut().poll(&mut std::task::Context::from_waker(waker)) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("export must not wait"),
    }
}

#[test]
fn a_300_subsegment_trace_from_the_exporter_arrives_complete() {
    let collector = Collector::start();
    let exporter = XrayExporter::builder()
        .with_daemon_address(address(collector.port))
        .build()
        .unwrap();
    let t = trace_id(5);
    let mut batch = vec![span(t, 1, 0, SpanKind::Server, "GET /fan-out")];
    for i in 2..=301u64 {
        let mut child = span(t, i, 1, SpanKind::Client, &format!("GET /items/{i}"));
        child.attributes = vec![opentelemetry::KeyValue::new("payload", "p".repeat(500))];
        batch.push(child);
    }
    futures_lite_block_on(exporter.export(batch)).unwrap();
    exporter.force_flush().unwrap();
    // Nested into the root's document, then split: several documents, none over 64 kB.
    let m = exporter.metrics().snapshot();
    assert_eq!((m.spans_sent, m.dropped_total()), (301, 0), "{m:?}");
    assert!(m.documents_sent > 2 && m.documents_sent < 301, "{m:?}");
    let docs = documents(&collector.wait_for(m.documents_sent as usize));
    assert_eq!(docs.len() as u64, m.documents_sent);
    let root = format!("{:016x}", 1);
    // Embedded or detached, every child names the root as its parent.
    let docs: Vec<serde_json::Value> = docs.into_values().collect();
    let all = xray_testkit::all_segments(&docs);
    let ids: std::collections::HashSet<&str> =
        all.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(
        (all.len(), ids.len()),
        (301, 301),
        "every span arrives once"
    );
    for doc in &all {
        assert_eq!(doc["trace_id"], TraceId::from_u128(t).to_string());
        if doc["id"] != root.as_str() {
            assert_eq!(doc["parent_id"], root);
            assert_eq!(doc["type"], "subsegment");
        }
    }
    exporter.shutdown().unwrap();
}
