//! The pipeline with a disk spool, against a scripted PutTraceSegments stub on
//! loopback: an outage longer than the retry budget loses nothing, a restart resumes
//! from the spool before new data, and the budget, a locked or an unusable directory
//! each behave as documented (counted drops, one warning, a clear error).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use xray_export::transport::api::{ApiConfig, ApiTransport};
use xray_export::{
    Document, DropReason, Metrics, Pipeline, PipelineConfig, RetryPolicy, SpoolConfig,
};
use xray_model::TraceId;

use common::{Reply, Stub, document_ids, logs, trace_id};

/// Document ids in the order they arrived.
type Arrived = Arc<Mutex<Vec<String>>>;

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        Dir(std::env::temp_dir().join(format!(
            "xray-export-spool-{name}-{}-{}",
            std::process::id(),
            fastrand_u64()
        )))
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fastrand_u64() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Answers 503 while `down`, else accepts and records the ids.
fn stub(down: Arc<AtomicBool>, arrived: Arrived) -> Stub {
    Stub::start(move |_, req| {
        if down.load(Ordering::SeqCst) {
            Reply::Respond(503, vec![], b"down".to_vec())
        } else {
            arrived.lock().unwrap().extend(document_ids(req));
            Reply::json(200, r#"{"UnprocessedTraceSegments":[]}"#)
        }
    })
}

fn start(url: &str, spool: SpoolConfig, metrics: Metrics) -> std::io::Result<Pipeline<Document>> {
    let sdk = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKID", "SECRET", None, None, "test",
        )))
        .build();
    Pipeline::start_with_metrics(
        ApiTransport::new(ApiConfig {
            sdk_config: Some(sdk.into()),
            endpoint_url: Some(url.to_owned()),
            ..Default::default()
        }),
        PipelineConfig {
            // A short retry budget: the spool, not the retries, must carry the outage.
            retry: RetryPolicy {
                max_elapsed: Duration::from_millis(300),
                initial_backoff: Duration::from_millis(20),
                max_backoff: Duration::from_millis(100),
                request_timeout: Duration::from_secs(2),
                ..Default::default()
            },
            spool: Some(spool),
            ..Default::default()
        },
        metrics,
    )
}

fn doc(trace: TraceId, i: u64) -> Document {
    Document::from_json(
        format!(r#"{{"name":"svc","id":"{i:016x}","trace_id":"{trace}","start_time":1700000000.0,"end_time":1700000001.0}}"#)
            .into_bytes(),
    )
    .unwrap()
}

fn id(i: u64) -> String {
    format!("{i:016x}")
}

fn wait_for(what: &str, timeout: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_outage_past_the_retry_budget_and_a_restart_lose_nothing() {
    let dir = Dir::new("restart");
    let down = Arc::new(AtomicBool::new(true));
    let arrived: Arrived = Default::default();
    let api = stub(down.clone(), arrived.clone());
    let trace = TraceId::from_u128(trace_id(70));
    let metrics = Metrics::default();
    let p = start(&api.url(), SpoolConfig::new(&dir.0), metrics.clone()).unwrap();
    for i in 1..=120 {
        assert!(p.submit(doc(trace, i)));
    }
    // Several retry budgets pass: the batch is kept and tried again, never dropped.
    std::thread::sleep(Duration::from_millis(1500));
    let m = metrics.snapshot();
    assert_eq!(m.dropped_total(), 0, "{m:?}");
    assert!(m.send_errors >= 4, "{m:?}");
    let stats = p.spool_stats().unwrap();
    assert_eq!(stats.records, 120);
    assert!(stats.replaying && stats.bytes > 0, "{stats:?}");
    assert!(stats.oldest_age >= Duration::from_secs(1), "{stats:?}");
    // Shutdown during the outage: nothing is lost, the spool keeps it all.
    p.shutdown(Duration::from_millis(500)).unwrap();
    assert_eq!(metrics.snapshot().dropped_total(), 0);
    drop(p);

    // The next run: the destination is back; the spool goes out before new data.
    down.store(false, Ordering::SeqCst);
    let metrics = Metrics::default();
    let p = start(&api.url(), SpoolConfig::new(&dir.0), metrics.clone()).unwrap();
    for i in 121..=130 {
        assert!(p.submit(doc(trace, i)));
    }
    p.flush(Duration::from_secs(20)).unwrap();
    let got = arrived.lock().unwrap().clone();
    assert_eq!(got.len(), 130, "each once");
    // Calls of one batch run in parallel, so order holds between batches only.
    let sorted = |ids: &[String]| {
        let mut ids = ids.to_vec();
        ids.sort();
        ids
    };
    let old: Vec<String> = (1..=120).map(id).collect();
    let new: Vec<String> = (121..=130).map(id).collect();
    assert_eq!(sorted(&got[..120]), old, "the spool's first");
    assert_eq!(sorted(&got[120..]), new);
    let stats = p.spool_stats().unwrap();
    assert_eq!((stats.records, stats.replayed), (0, 120), "{stats:?}");
    assert!(!stats.replaying);
    assert_eq!(metrics.snapshot().dropped_total(), 0);
    p.shutdown(Duration::from_secs(2)).unwrap();
}

#[test]
fn a_tiny_budget_drops_the_oldest_with_a_count_and_a_log_line() {
    let logs = logs();
    let dir = Dir::new("tiny");
    let down = Arc::new(AtomicBool::new(true));
    let arrived: Arrived = Default::default();
    let api = stub(down.clone(), arrived.clone());
    let trace = TraceId::from_u128(trace_id(71));
    let metrics = Metrics::default();
    let p = start(
        &api.url(),
        SpoolConfig::new(&dir.0).with_max_bytes(16 * 1024),
        metrics.clone(),
    )
    .unwrap();
    for i in 1..=400 {
        assert!(p.submit(doc(trace, i)));
        let bytes = p.spool_stats().unwrap().bytes;
        assert!(bytes <= 16 * 1024, "{bytes}");
    }
    let full = metrics.snapshot().dropped(DropReason::SpoolFull);
    assert!(full > 200, "{full}");
    down.store(false, Ordering::SeqCst);
    wait_for("the rest to arrive", Duration::from_secs(20), || {
        arrived.lock().unwrap().len() as u64 + metrics.snapshot().dropped_total() >= 400
    });
    let got = arrived.lock().unwrap().clone();
    let m = metrics.snapshot();
    assert_eq!(got.len() as u64 + m.dropped_total(), 400, "{m:?}");
    assert_eq!(m.dropped_total(), m.dropped(DropReason::SpoolFull));
    assert_eq!(got.last(), Some(&id(400)), "the newest are kept");
    let log = logs.lock().unwrap().clone();
    assert!(
        log.contains("spool over its budget") && log.contains("spool_full"),
        "{log}"
    );
}

#[test]
fn an_unusable_directory_falls_back_to_memory_with_one_warning() {
    let logs = logs();
    let dir = Dir::new("unusable");
    std::fs::create_dir_all(&dir.0).unwrap();
    let file = dir.0.join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let down = Arc::new(AtomicBool::new(false));
    let arrived: Arrived = Default::default();
    let api = stub(down, arrived.clone());
    let metrics = Metrics::default();
    let p = start(
        &api.url(),
        SpoolConfig::new(file.join("spool")),
        metrics.clone(),
    )
    .unwrap();
    let trace = TraceId::from_u128(trace_id(72));
    for i in 1..=20 {
        assert!(p.submit(doc(trace, i)));
    }
    p.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(arrived.lock().unwrap().len(), 20);
    assert!(p.spool_stats().unwrap().unwritable);
    let log = logs.lock().unwrap().clone();
    assert_eq!(
        log.matches("cannot use the spool").count(),
        1,
        "one warning: {log}"
    );
}

#[test]
fn a_spool_directory_in_use_fails_the_start() {
    let dir = Dir::new("busy");
    let api = stub(Default::default(), Default::default());
    let first = start(&api.url(), SpoolConfig::new(&dir.0), Metrics::default()).unwrap();
    let err = start(&api.url(), SpoolConfig::new(&dir.0), Metrics::default()).unwrap_err();
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
    drop(first);
}

#[test]
fn delivered_documents_leave_the_spool() {
    let dir = Dir::new("steady");
    let arrived: Arrived = Default::default();
    let api = stub(Default::default(), arrived.clone());
    let trace = TraceId::from_u128(trace_id(73));
    let p = start(&api.url(), SpoolConfig::new(&dir.0), Metrics::default()).unwrap();
    for i in 1..=300 {
        assert!(p.submit(doc(trace, i)));
    }
    p.flush(Duration::from_secs(20)).unwrap();
    let counts = arrived
        .lock()
        .unwrap()
        .iter()
        .fold(HashMap::<String, u32>::new(), |mut m, id| {
            *m.entry(id.clone()).or_default() += 1;
            m
        });
    assert_eq!(counts.len(), 300);
    assert!(counts.values().all(|c| *c == 1));
    let stats = p.spool_stats().unwrap();
    assert_eq!((stats.records, stats.written, stats.replayed), (0, 300, 0));
    assert!(!stats.replaying);
}

#[test]
fn a_partly_delivered_batch_sends_only_the_rest_again() {
    let dir = Dir::new("partial");
    let arrived: Arrived = Default::default();
    let healed = Arc::new(AtomicBool::new(false));
    let (a, h) = (arrived.clone(), healed.clone());
    // Calls carrying document 1 (the first group of 50) succeed; the others fail until
    // the stub heals, long after the retry budget.
    let api = Stub::start(move |_, req| {
        let ids = document_ids(req);
        if h.load(Ordering::SeqCst) || ids.contains(&id(1)) {
            a.lock().unwrap().extend(ids);
            Reply::json(200, r#"{"UnprocessedTraceSegments":[]}"#)
        } else {
            Reply::Respond(503, vec![], b"down".to_vec())
        }
    });
    let trace = TraceId::from_u128(trace_id(74));
    let metrics = Metrics::default();
    let p = start(&api.url(), SpoolConfig::new(&dir.0), metrics.clone()).unwrap();
    let docs: Vec<Document> = (1..=100).map(|i| doc(trace, i)).collect();
    for d in docs {
        assert!(p.submit(d));
    }
    wait_for("the first group", Duration::from_secs(10), || {
        arrived.lock().unwrap().len() >= 50
    });
    std::thread::sleep(Duration::from_millis(800));
    healed.store(true, Ordering::SeqCst);
    p.flush(Duration::from_secs(20)).unwrap();
    let got = arrived.lock().unwrap().clone();
    let unique: std::collections::HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), 100);
    assert_eq!(got.len(), 100, "nothing delivered is sent twice");
    assert_eq!(metrics.snapshot().dropped_total(), 0);
    let stats = p.spool_stats().unwrap();
    assert_eq!((stats.records, stats.written), (0, 150), "{stats:?}");
}
