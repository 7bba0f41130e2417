use std::path::PathBuf;

use super::*;
use crate::demo::{Outcome, seed_traces};

fn test_now() -> f64 {
    // Real time: opening the store applies the age limit against the clock.
    (now_secs() - 60.0).floor()
}

/// A fresh temporary folder (removed on drop) and a store path inside a folder of it that
/// does not exist yet.
struct TempDir(xray_testkit::TempDir);

impl TempDir {
    fn new() -> TempDir {
        TempDir(xray_testkit::temp_dir("console-store"))
    }

    fn path(&self) -> &std::path::Path {
        self.0.path()
    }

    fn db(&self) -> PathBuf {
        self.path().join("nested/local.db")
    }
}

fn insert_traces(store: &Store, traces: &[crate::demo::DemoTrace], now: f64) {
    for t in traces {
        let report = store
            .insert_at(t.documents.iter().map(String::as_str), now)
            .unwrap();
        assert_eq!(report.stored, t.documents.len());
        assert!(report.rejected.is_empty());
    }
}

#[test]
fn a_restart_keeps_the_traces() {
    let dir = TempDir::new();
    let traces = seed_traces(6, test_now());
    {
        let store = Store::open(StoreConfig::at(dir.db())).unwrap();
        insert_traces(&store, &traces, test_now());
    }
    let store = Store::open(StoreConfig::at(dir.db())).unwrap();
    let stats = store.stats().unwrap();
    assert_eq!((stats.traces, stats.documents), (6, 30));
    let bytes: usize = traces
        .iter()
        .flat_map(|t| &t.documents)
        .map(String::len)
        .sum();
    assert_eq!(stats.bytes, bytes as u64);
    let list = store.traces(None, 100).unwrap();
    assert_eq!(list.total, 6);
    // Newest first.
    assert_eq!(list.traces[0].id, traces[5].id);
    let docs = store.trace_documents(&traces[2].id).unwrap();
    assert_eq!(docs.len(), 5);
    // Stored as received, byte for byte.
    assert!(traces[2].documents.contains(&docs[0]));
    assert!(
        store
            .trace_documents("1-00000000-000000000000000000000000")
            .unwrap()
            .is_empty()
    );
    let faulty = Filter::parse("fault").unwrap();
    let list = store.traces(Some(&faulty), 100).unwrap();
    assert_eq!(list.matched, 1);
    assert_eq!(list.traces[0].id, traces[3].id);
}

#[test]
fn a_full_store_evicts_the_oldest_traces_first() {
    let dir = TempDir::new();
    let traces = seed_traces(10, test_now());
    let per_trace: u64 = traces[0].documents.iter().map(|d| d.len() as u64).sum();
    let mut config = StoreConfig::at(dir.db());
    // Room for a little over four traces.
    config.max_bytes = per_trace * 4 + per_trace / 2;
    let store = Store::open(config).unwrap();
    let mut evicted = 0;
    for t in &traces {
        evicted += store
            .insert_at(t.documents.iter().map(String::as_str), test_now())
            .unwrap()
            .evicted_traces;
        assert!(store.stats().unwrap().bytes <= store.config().max_bytes);
    }
    let kept: Vec<String> = store
        .traces(None, 100)
        .unwrap()
        .traces
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(kept.len(), 4, "{kept:?}");
    assert_eq!(evicted, 6);
    // The last four received stay; every earlier one went.
    for (i, t) in traces.iter().enumerate() {
        assert_eq!(kept.contains(&t.id), i >= 6, "trace {i}");
    }
    // The byte count survives a restart and matches what is stored.
    let bytes = store.stats().unwrap().bytes;
    drop(store);
    let again = Store::open(StoreConfig::at(dir.db())).unwrap();
    assert_eq!(again.stats().unwrap().bytes, bytes);
}

#[test]
fn old_traces_expire_by_age() {
    let dir = TempDir::new();
    let mut config = StoreConfig::at(dir.db());
    config.max_age = Duration::from_secs(3600);
    let store = Store::open(config).unwrap();
    let traces = seed_traces(3, test_now());
    let insert = |t: &crate::demo::DemoTrace, at: f64| {
        store
            .insert_at(t.documents.iter().map(String::as_str), at)
            .unwrap()
            .evicted_traces
    };
    assert_eq!(insert(&traces[0], test_now() - 7200.0), 0);
    // Writing applies the limits: the trace last written two hours ago goes.
    assert_eq!(insert(&traces[1], test_now() - 3000.0), 1);
    assert_eq!(insert(&traces[2], test_now()), 0);
    let kept: Vec<String> = store
        .traces(None, 10)
        .unwrap()
        .traces
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(kept, [traces[2].id.clone(), traces[1].id.clone()]);
}

#[test]
fn a_document_sent_again_replaces_the_first_and_bad_ones_are_refused() {
    let dir = TempDir::new();
    let store = Store::open(StoreConfig::at(dir.db())).unwrap();
    let t = "1-581cf771-a006649127e371903a2de979";
    let partial = format!(
        r#"{{"name":"api","id":"0000000000000001","trace_id":"{t}","start_time":10.0,"in_progress":true}}"#
    );
    let done = format!(
        r#"{{"name":"api","id":"0000000000000001","trace_id":"{t}","start_time":10.0,"end_time":11.5,"fault":true}}"#
    );
    let v0 = store.stats().unwrap().version;
    let report = store.insert([partial.as_str(), "{}", "not json"]).unwrap();
    assert_eq!(report.stored, 1);
    assert_eq!(
        report.rejected.iter().map(|r| r.0).collect::<Vec<_>>(),
        [1, 2]
    );
    assert!(
        report.rejected[0].1.contains("missing name"),
        "{:?}",
        report.rejected
    );
    assert!(store.traces(None, 10).unwrap().traces[0].in_progress);
    store.insert([done.as_str()]).unwrap();
    let stats = store.stats().unwrap();
    assert_eq!(
        (stats.traces, stats.documents, stats.bytes),
        (1, 1, done.len() as u64)
    );
    assert!(stats.version > v0);
    let summary = &store.traces(None, 10).unwrap().traces[0];
    assert!(!summary.in_progress && summary.fault);
    assert_eq!(summary.responsetime, Some(1.5));
    // Nothing stored, nothing changed.
    let v1 = store.stats().unwrap().version;
    store.insert(["{}"]).unwrap();
    assert_eq!(store.stats().unwrap().version, v1);
}

#[test]
fn errors_are_reported_not_panicked() {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path()).unwrap();
    // A folder where the database file should be.
    let err = Store::open(StoreConfig::at(dir.path())).unwrap_err();
    assert!(err.to_string().starts_with("local store"), "{err}");
    // A file that is not a database.
    let not_db = dir.path().join("not.db");
    std::fs::write(&not_db, vec![b'x'; 4096]).unwrap();
    assert!(Store::open(StoreConfig::at(&not_db)).is_err());
    // A newer schema.
    let db = dir.path().join("newer.db");
    Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    assert!(matches!(
        Store::open(StoreConfig::at(&db)),
        Err(StoreError::NewerSchema(_, 99))
    ));
}

#[test]
fn the_map_comes_from_the_stored_documents() {
    let dir = TempDir::new();
    let store = Store::open(StoreConfig::at(dir.db())).unwrap();
    let traces = seed_traces(12, test_now());
    insert_traces(&store, &traces, test_now());
    let map = store.service_map(1000).unwrap();
    assert_eq!(map.traces, 12);
    assert_eq!(map.nodes.len(), 7);
    assert_eq!(map.edges.len(), 7);
    assert_eq!(store.service_map(3).unwrap().traces, 3);
    let faults = traces
        .iter()
        .filter(|t| t.outcome == Outcome::Fault)
        .count();
    let s = map.node("service:backend2").unwrap().stats;
    assert!((s.fault - faults as f64 / 12.0).abs() < 1e-9);
}

#[test]
fn default_path_follows_xdg() {
    let p = StoreConfig::default_path();
    assert!(
        p.ends_with("xray-bridge/local.db") || p.ends_with("xray-bridge-local.db"),
        "{p:?}"
    );
}

#[test]
fn replaced_and_evicted_documents_leave_no_bodies_behind() {
    let dir = TempDir::new();
    let mut config = StoreConfig::at(dir.db());
    let traces = seed_traces(4, test_now());
    let size =
        |t: &crate::demo::DemoTrace| -> u64 { t.documents.iter().map(|d| d.len() as u64).sum() };
    // Room for the last two traces.
    config.max_bytes = size(&traces[2]) + size(&traces[3]);
    let store = Store::open(config).unwrap();
    insert_traces(&store, &traces, test_now());
    // Sending a trace's documents again replaces them.
    insert_traces(&store, &traces[3..], test_now());
    let guard = store.lock();
    let count = |sql: &str| -> i64 { guard.conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT COUNT(*) FROM documents"), 10);
    assert_eq!(count("SELECT COUNT(*) FROM bodies"), 10);
    assert_eq!(
        count("SELECT COUNT(*) FROM documents d JOIN bodies b ON b.seq = d.seq"),
        10
    );
    assert_eq!(
        count("SELECT SUM(bytes) FROM traces") as u64,
        guard.total_bytes
    );
}
