//! PutTraceSegments against a real moto X-Ray server.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanExporter;
use xray_export::transport::api::{ApiConfig, ApiTransport};
use xray_export::{
    Document, DropReason, Metrics, Pipeline, PipelineConfig, RetryPolicy, XrayExporter,
};
use xray_model::TraceId;
use xray_testkit::{assert_schema_valid, start_moto};

use common::{logs, span, trace_id};

fn sdk_config() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "test",
        )))
        .build()
}

fn api(url: String) -> ApiConfig {
    ApiConfig {
        sdk_config: Some(sdk_config().into()),
        endpoint_url: Some(url),
        ..Default::default()
    }
}

/// BatchGetTraces: trace id -> (segment id -> document).
fn get_traces(url: &str, ids: &[String]) -> BTreeMap<String, BTreeMap<String, String>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = aws_sdk_xray::config::Builder::from(&sdk_config())
            .endpoint_url(url)
            .build();
        let client = aws_sdk_xray::Client::from_conf(config);
        let out = client
            .batch_get_traces()
            .set_trace_ids(Some(ids.to_vec()))
            .send()
            .await
            .expect("BatchGetTraces");
        out.traces()
            .iter()
            .map(|t| {
                let segments = t
                    .segments()
                    .iter()
                    .map(|s| (s.id().unwrap().to_owned(), s.document().unwrap().to_owned()))
                    .collect();
                (t.id().unwrap().to_owned(), segments)
            })
            .collect()
    })
}

/// Three traces of a server span with 70 client children each, children first (end order).
fn three_traces(traces: &[u128]) -> Vec<opentelemetry_sdk::trace::SpanData> {
    let mut batch = Vec::new();
    for (n, t) in traces.iter().enumerate() {
        let base = (n as u64 + 1) * 1000;
        for i in 1..=70 {
            // 70 children: more than one PutTraceSegments call per trace.
            batch.push(span(
                *t,
                base + i,
                base,
                SpanKind::Client,
                &format!("call-{i}"),
            ));
        }
        batch.push(span(*t, base, 0, SpanKind::Server, "GET /orders/{id}"));
    }
    batch
}

#[test]
fn nested_batches_are_stored_as_one_document_per_trace() {
    let moto = start_moto();
    let exporter = XrayExporter::builder()
        .with_xray_api(api(moto.url()))
        .build()
        .unwrap();
    let traces: Vec<u128> = (30..33).map(trace_id).collect();
    block_on(exporter.export(three_traces(&traces))).unwrap();
    exporter.shutdown().unwrap();
    let m = exporter.metrics().snapshot();
    assert_eq!(
        (m.spans_sent, m.documents_sent, m.requests),
        (213, 3, 1),
        "{m:?}"
    );
    assert_eq!(m.dropped_total(), 0);
    let ids: Vec<String> = traces
        .iter()
        .map(|t| TraceId::from_u128(*t).to_string())
        .collect();
    let stored = get_traces(&moto.url(), &ids);
    for (n, id) in ids.iter().enumerate() {
        let base = format!("{:016x}", (n as u64 + 1) * 1000);
        let segments = &stored[id];
        assert_eq!(segments.keys().collect::<Vec<_>>(), [&base], "one document");
        let document = &segments[&base];
        assert_schema_valid(document);
        let v: serde_json::Value = serde_json::from_str(document).unwrap();
        let children = v["subsegments"].as_array().unwrap();
        let names: Vec<&str> = children
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        let expected: Vec<String> = (1..=70).map(|i| format!("call-{i}")).collect();
        assert_eq!(names, expected, "every child, in end order");
        assert!(
            children
                .iter()
                .all(|c| c.get("trace_id").is_none() && c.get("type").is_none())
        );
    }
}

#[test]
fn spans_come_back_through_batch_get_traces_intact_and_grouped_by_trace() {
    let moto = start_moto();
    let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    // What the exporter encodes, captured through a second exporter on the same spans.
    // One document per span here, so the 213 documents take several calls.
    let mirror = XrayExporter::builder()
        .with_writer(SharedBuf(out.clone()))
        .with_nested_subsegments(false)
        .build()
        .unwrap();
    let exporter = XrayExporter::builder()
        .with_xray_api(api(moto.url()))
        .with_nested_subsegments(false)
        .build()
        .unwrap();
    let traces: Vec<u128> = (10..13).map(trace_id).collect();
    let batch = three_traces(&traces);
    let total = batch.len();
    block_on(mirror.export(batch.clone())).unwrap();
    block_on(exporter.export(batch)).unwrap();
    mirror.shutdown().unwrap();
    exporter.shutdown().unwrap();
    let m = exporter.metrics().snapshot();
    assert_eq!(m.documents_sent as usize, total, "{m:?}");
    assert_eq!(m.dropped_total(), 0);
    assert!(m.requests >= (total / 50) as u64);

    let sent: BTreeMap<String, String> = String::from_utf8(out.lock().unwrap().clone())
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["id"].as_str().unwrap().to_owned(), l.to_owned())
        })
        .collect();
    assert_eq!(sent.len(), total);

    let ids: Vec<String> = traces
        .iter()
        .map(|t| TraceId::from_u128(*t).to_string())
        .collect();
    let stored = get_traces(&moto.url(), &ids);
    assert_eq!(
        stored.keys().cloned().collect::<BTreeSet<_>>(),
        ids.iter().cloned().collect()
    );
    for (n, id) in ids.iter().enumerate() {
        let segments = &stored[id];
        assert_eq!(
            segments.len(),
            71,
            "trace {id} has its segment and 70 subsegments"
        );
        let base = (n as u64 + 1) * 1000;
        for (seg_id, document) in segments {
            assert_schema_valid(document);
            assert_eq!(document, &sent[seg_id], "stored byte for byte");
            let v: serde_json::Value = serde_json::from_str(document).unwrap();
            assert_eq!(v["trace_id"], *id);
            if *seg_id != format!("{base:016x}") {
                assert_eq!(v["type"], "subsegment");
                assert_eq!(v["parent_id"], format!("{base:016x}"));
            }
        }
    }
}

#[test]
fn documents_moto_cannot_store_come_back_unprocessed_and_are_counted_and_logged() {
    // moto stores a segment by its start date; a start_time beyond year 9999 makes it
    // fail with an `InternalFailure` entry carrying the document's id. That code is
    // retryable for X-Ray, so the document is retried to the end of the budget, then
    // dropped with a reason, while the good documents of the same call are stored once.
    let logs = logs();
    let moto = start_moto();
    let metrics = Metrics::default();
    let config = PipelineConfig {
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(10),
            ..Default::default()
        },
        ..Default::default()
    };
    let pipeline =
        Pipeline::start_with_metrics(ApiTransport::new(api(moto.url())), config, metrics.clone())
            .unwrap();
    let good = TraceId::from_u128(trace_id(20)).to_string();
    let bad = TraceId::from_u128(trace_id(21)).to_string();
    let doc = |trace: &str, id: u64, start: f64| {
        let text = format!(
            r#"{{"name":"svc","id":"{id:016x}","trace_id":"{trace}","start_time":{start},"end_time":{}}}"#,
            start + 1.0
        );
        assert_schema_valid(&text);
        Document::from_json(text.into_bytes()).unwrap()
    };
    pipeline.submit(doc(&good, 1, 1_700_000_000.0));
    pipeline.submit(doc(&bad, 2, 1e20));
    pipeline.submit(doc(&good, 3, 1_700_000_000.5));
    let err = pipeline.flush(Duration::from_secs(10)).unwrap_err();
    assert!(err.dropped.contains("retries_exhausted=1"), "{err}");
    let m = metrics.snapshot();
    assert_eq!(m.documents_sent, 2);
    assert_eq!(m.dropped(DropReason::RetriesExhausted), 1);
    assert_eq!(m.unprocessed, 3, "one entry per attempt: {m:?}");
    assert_eq!(m.retries, 2);
    let log = logs.lock().unwrap().clone();
    let line = log
        .lines()
        .find(|l| l.contains(&bad))
        .unwrap_or_else(|| panic!("a log line names the trace: {log}"));
    assert!(
        line.contains("InternalFailure") && line.contains("retries_exhausted"),
        "{line}"
    );

    let stored = get_traces(&moto.url(), std::slice::from_ref(&good));
    assert_eq!(stored[&good].len(), 2, "good documents stored exactly once");
    pipeline.shutdown(Duration::from_secs(1)).unwrap();
}

/// The request body is written here, each document escaped once: documents with quotes,
/// backslashes, escaped control characters, raw whitespace and non-ASCII text arrive in
/// moto as the same JSON, and every call is timed.
#[test]
fn documents_with_escapes_arrive_as_sent() {
    let moto = start_moto();
    let metrics = Metrics::default();
    let pipeline = Pipeline::start_with_metrics(
        ApiTransport::new(api(moto.url())),
        PipelineConfig::default(),
        metrics.clone(),
    )
    .unwrap();
    let trace = TraceId::from_u128(trace_id(30)).to_string();
    let texts: Vec<String> = (1..=3u64)
        .map(|i| {
            format!(
                "{{\n\t\"name\":\"café {i}\",\"id\":\"{i:016x}\",\"trace_id\":\"{trace}\",\"start_time\":1700000000.{i},\"end_time\":1700000001.0,\r\n\"metadata\":{{\"default\":{{\"q\":\"say \\\"hi\\\" C:\\\\dir \\u0001 \\t ✓ 𝄞 ünï\"}}}}}}"
            )
        })
        .collect();
    for text in &texts {
        assert_schema_valid(text);
        assert!(pipeline.submit(Document::from_json(text.clone().into_bytes()).unwrap()));
    }
    pipeline.flush(Duration::from_secs(10)).unwrap();
    let stored = get_traces(&moto.url(), std::slice::from_ref(&trace));
    let segments = &stored[&trace];
    assert_eq!(segments.len(), 3);
    for (i, text) in texts.iter().enumerate() {
        let sent: serde_json::Value = serde_json::from_str(text).unwrap();
        let id = format!("{:016x}", i + 1);
        let back: serde_json::Value = serde_json::from_str(&segments[&id]).unwrap();
        assert_eq!(back, sent, "document {id} arrived as sent");
    }
    assert_eq!(
        back_string(&segments["0000000000000001"]),
        "say \"hi\" C:\\dir \u{1} \t ✓ 𝄞 ünï"
    );
    let m = metrics.snapshot();
    assert!(m.calls.count >= 1 && m.calls.count == m.requests, "{m:?}");
    pipeline.shutdown(Duration::from_secs(1)).unwrap();
}

fn back_string(doc: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(doc).unwrap();
    v["metadata"]["default"]["q"].as_str().unwrap().to_owned()
}

struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("export must not wait"),
    }
}
