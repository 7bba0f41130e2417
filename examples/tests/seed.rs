//! The seed demo end to end: moto, the bridge writing to a file, the four services on
//! loopback, a bounded burst with every fault on. Checks one trace per request across the
//! services, DynamoDB `aws` subsegments with the table name, the injected faults, errors
//! and throttles, and no `/health` trace.
//!
//! `harness = false`: this binary is also the demo's child processes (`SEED_ROLE`).

#[allow(dead_code)]
#[path = "../seed/demo.rs"]
mod demo;
#[allow(dead_code)]
#[path = "../seed/roles.rs"]
mod roles;
#[allow(dead_code)]
#[path = "../seed/services.rs"]
mod services;

use std::collections::BTreeMap;
use std::process::ExitCode;

use serde_json::Value;

fn main() -> ExitCode {
    if let Some(code) = roles::run_if_asked() {
        return code;
    }
    if std::env::args().any(|a| a == "--list") {
        println!("seed_demo_end_to_end: test");
        return ExitCode::SUCCESS;
    }
    xray_testkit::require_python(&["moto.server", "flask"]);
    seed_demo_end_to_end();
    println!("test seed_demo_end_to_end ... ok");
    ExitCode::SUCCESS
}

/// Every document and, recursively, its subsegments.
fn walk<'a>(doc: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(doc);
    for sub in doc["subsegments"].as_array().into_iter().flatten() {
        walk(sub, out);
    }
}

fn seed_demo_end_to_end() {
    let dir = std::env::temp_dir().join(format!("seed-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("docs.jsonl");
    let options = demo::Options {
        requests: 20,
        concurrency: 4,
        export: Some(format!("file:{}", out.display())),
        console: "off".into(),
        store: dir.join("unused.db"),
        ..demo::Options::default()
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let report = runtime.block_on(demo::run(options)).expect("demo runs");
    // BFF requests 5 and 15 answer 404, 10 and 20 answer 429; of the 16 that reach the
    // backends, backend2 fails every second one (500, so the BFF and frontend say 502).
    let expected = BTreeMap::from([(200, 8), (404, 2), (429, 2), (502, 8)]);
    assert_eq!(report.statuses, expected, "{report:?}");
    assert_eq!(report.health_ok, 8);

    let text = std::fs::read_to_string(&out).unwrap();
    let docs: Vec<Value> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut traces: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for d in &docs {
        traces
            .entry(d["trace_id"].as_str().expect("trace_id").to_owned())
            .or_default()
            .push(d);
    }
    assert_eq!(traces.len(), 20, "one trace per request, none for /health");
    let mut by_front_status: BTreeMap<u64, usize> = BTreeMap::new();
    let (mut tables, mut backend2_faults, mut throttles, mut errors) = (0, 0, 0, 0);
    for (id, docs) in &traces {
        let mut all = Vec::new();
        for d in docs {
            walk(d, &mut all);
        }
        for e in &all {
            let url = e["http"]["request"]["url"].as_str().unwrap_or("");
            assert!(!url.contains("/health"), "a /health trace: {e}");
        }
        let segment = |name: &str| {
            docs.iter()
                .find(|d| d["name"] == name && d["type"] != "subsegment")
                .copied()
        };
        let front = segment("frontend").unwrap_or_else(|| panic!("{id}: no frontend segment"));
        let bff = segment("bff").unwrap_or_else(|| panic!("{id}: no bff segment"));
        // One tree: the frontend is the root, every other segment hangs under a
        // (client) subsegment of the same trace.
        let ids: Vec<&str> = all.iter().filter_map(|e| e["id"].as_str()).collect();
        assert!(front["parent_id"].is_null(), "{front}");
        let hangs = |seg: &Value| {
            let parent = seg["parent_id"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: {seg}"));
            assert!(
                ids.contains(&parent),
                "{id}: parent of {seg} not in the trace"
            );
        };
        hangs(bff);
        let status = front["http"]["response"]["status"].as_u64().unwrap();
        *by_front_status.entry(status).or_default() += 1;
        match status {
            429 => {
                assert_eq!(bff["throttle"], true, "{bff}");
                assert_eq!(bff["error"], true, "{bff}");
                throttles += 1;
            }
            404 => {
                assert_eq!(bff["error"], true, "{bff}");
                errors += 1;
            }
            200 | 502 => {
                let b1 = segment("backend1").unwrap_or_else(|| panic!("{id}: no backend1"));
                let b2 = segment("backend2").unwrap_or_else(|| panic!("{id}: no backend2"));
                hangs(b1);
                hangs(b2);
                assert!(
                    b1["end_time"].as_f64().unwrap() - b1["start_time"].as_f64().unwrap() >= 0.25,
                    "slow backend1: {b1}"
                );
                if status == 502 {
                    assert_eq!(b2["fault"], true, "{b2}");
                    assert_eq!(bff["fault"], true, "{bff}");
                    backend2_faults += 1;
                }
                let dynamo: Vec<&&Value> = all
                    .iter()
                    .filter(|e| {
                        e["namespace"] == "aws" && e["aws"]["table_name"] == services::TABLE
                    })
                    .collect();
                // backend1 always writes; backend2 only when it does not fail.
                let writes = if status == 200 { 2 } else { 1 };
                assert_eq!(
                    dynamo.len(),
                    writes,
                    "{id}: DynamoDB subsegments {dynamo:?}"
                );
                assert!(
                    dynamo.iter().all(|d| d["aws"]["operation"] == "PutItem"),
                    "{dynamo:?}"
                );
                tables += dynamo.len();
            }
            other => panic!("{id}: unexpected status {other}"),
        }
    }
    assert_eq!(
        by_front_status,
        BTreeMap::from([(200, 8), (404, 2), (429, 2), (502, 8)])
    );
    assert_eq!(
        (backend2_faults, throttles, errors, tables),
        (8, 2, 2, 8 * 2 + 8)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
