//! The JSON API over HTTP on a loopback port.

mod common;

use common::Fixture;
use serde_json::Value;
use xray_console::demo::Outcome;

async fn get(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.expect("request");
    let status = r.status().as_u16();
    let body = r.json::<Value>().await.expect("JSON answer");
    (status, body)
}

fn ids(body: &Value) -> Vec<String> {
    body["traces"]
        .as_array()
        .expect("traces")
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_filters_detail_and_map() {
    let fx = Fixture::start(12).await;
    let expect = |o: Outcome| -> Vec<String> {
        let mut v: Vec<String> = fx
            .traces
            .iter()
            .filter(|t| t.outcome == o)
            .map(|t| t.id.clone())
            .rev()
            .collect();
        v.sort_by(|a, b| b.cmp(a));
        v
    };

    let (status, all) = get(&fx.url("/api/traces")).await;
    assert_eq!(status, 200);
    assert_eq!(all["total"], 12);
    assert_eq!(all["count"], 12);
    assert_eq!(all["filter"], Value::Null);
    // Newest first: the last sample started last.
    assert_eq!(all["traces"][0]["id"], fx.traces[11].id.as_str());
    let first = &all["traces"][0];
    for key in [
        "id",
        "duration",
        "responsetime",
        "http_status",
        "error",
        "fault",
        "throttle",
        "services",
        "root",
    ] {
        assert!(first.get(key).is_some(), "{key} missing in {first}");
    }
    assert_eq!(first["root"], "frontend");
    assert_eq!(
        first["services"],
        serde_json::json!(["frontend", "bff", "backend1", "backend2"])
    );

    let (status, faults) = get(&fx.url("/api/traces?filter=fault")).await;
    assert_eq!(status, 200);
    let mut got = ids(&faults);
    got.sort_by(|a, b| b.cmp(a));
    assert_eq!(got, expect(Outcome::Fault));
    assert_eq!(faults["matched"], 2);
    assert_eq!(faults["filter"], "fault");

    let (_, throttles) =
        get(&fx.url("/api/traces?filter=throttle%20AND%20http.status%20%3D%20429")).await;
    assert_eq!(ids(&throttles).len(), 2);
    let (_, not_found) = get(&fx.url("/api/traces?filter=http.status%20%3D%20404")).await;
    let mut got = ids(&not_found);
    got.sort_by(|a, b| b.cmp(a));
    assert_eq!(got, expect(Outcome::NotFound));
    let (_, ann) = get(&fx.url(
        "/api/traces?filter=annotation.user%20%3D%20%22user-0%22%20AND%20service(%22backend2%22)",
    ))
    .await;
    assert_eq!(ids(&ann).len(), 4);
    let (_, limited) = get(&fx.url("/api/traces?limit=3")).await;
    assert_eq!(
        (limited["count"].as_u64(), limited["matched"].as_u64()),
        (Some(3), Some(12))
    );

    // Bad filters: 400 with where and what.
    let (status, bad) = get(&fx.url("/api/traces?filter=responsetime%20%3E")).await;
    assert_eq!(status, 400);
    assert_eq!(bad["position"], 15);
    assert!(
        bad["error"].as_str().unwrap().contains("expected a number"),
        "{bad}"
    );
    let (status, bad) = get(&fx.url("/api/traces?filter=fault%20AND%20(error")).await;
    assert_eq!(status, 400);
    assert!(bad["error"].as_str().unwrap().contains("`)`"), "{bad}");
    let (status, bad) = get(&fx.url("/api/traces?limit=zero")).await;
    assert_eq!(status, 400);
    assert!(bad["error"].as_str().unwrap().contains("limit"));

    // One trace: its documents as received.
    let fault = &fx.traces[3];
    let raw = reqwest::get(fx.url(&format!("/api/traces/{}", fault.id)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for sent in &fault.documents {
        assert!(raw.contains(sent.as_str()), "not byte for byte: {sent}");
    }
    let (status, detail) = get(&fx.url(&format!("/api/traces/{}", fault.id))).await;
    assert_eq!(status, 200);
    assert_eq!(detail["id"], fault.id.as_str());
    let docs = detail["documents"].as_array().unwrap();
    assert_eq!(docs.len(), fault.documents.len());
    for d in docs {
        let text = d.to_string();
        assert!(
            fault
                .documents
                .iter()
                .any(|sent| serde_json::from_str::<Value>(sent).unwrap() == *d),
            "{text}"
        );
    }
    let (status, err) = get(&fx.url("/api/traces/not-a-trace")).await;
    assert_eq!(status, 400);
    assert!(err["error"].as_str().unwrap().contains("not a trace id"));
    let (status, err) = get(&fx.url("/api/traces/1-00000000-000000000000000000000000")).await;
    assert_eq!(status, 404);
    assert!(err["error"].as_str().unwrap().contains("no trace"));

    // The map.
    let (status, map) = get(&fx.url("/api/servicemap")).await;
    assert_eq!(status, 200);
    let nodes: Vec<&str> = map["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert!(
        nodes.contains(&"service:backend2") && nodes.contains(&"aws:DynamoDB"),
        "{nodes:?}"
    );
    let b2 = map["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "service:backend2")
        .unwrap();
    assert_eq!(b2["stats"]["requests"], 12);
    for key in ["avg", "p95", "ok", "error", "throttle", "fault"] {
        assert!(b2["stats"][key].is_number(), "{key}");
    }
    assert_eq!(map["edges"].as_array().unwrap().len(), 7);

    let (status, st) = get(&fx.url("/api/status")).await;
    assert_eq!(status, 200);
    assert_eq!(st["traces"], 12);
    assert_eq!(st["documents"], 60);

    let (status, _) = get(&fx.url("/api/nope")).await;
    assert_eq!(status, 404);
    let page = reqwest::get(fx.url("/")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<svg id=\"map\"")
            && !html.contains("http://cdn")
            && !html.contains("https://")
    );

    fx.console.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_transport_fills_the_store_through_the_pipeline_contract() {
    use xray_export::{Document, Metrics, RetryPolicy, SendContext, Transport};
    let fx = Fixture::start(0).await;
    let mut transport = xray_console::LocalTransport::new(fx.store.clone());
    let traces = xray_console::demo::seed_traces(2, common::now());
    let mut batch: Vec<Document> = traces
        .iter()
        .flat_map(|t| &t.documents)
        .map(|d| Document::from_json(d.clone().into_bytes()).unwrap())
        .collect();
    let cx = SendContext::standalone(Metrics::default(), RetryPolicy::default());
    batch.truncate(7);
    let sent = batch.len() as u64;
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(transport.send(batch, &cx));
        cx
    })
    .await
    .map(|cx| assert_eq!(cx.metrics().snapshot().documents_sent, sent))
    .unwrap();
    let (_, all) = get(&fx.url("/api/traces")).await;
    assert_eq!(all["total"], 2);
    fx.console.shutdown().await.unwrap();
}
