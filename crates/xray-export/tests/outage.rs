//! A 60-second X-Ray API outage of each kind (503, 429, connection refused) with a
//! steady sender: the default retry policy outlasts it, without a spool, and nothing is
//! lost while the memory bound holds. Also: throttling lowers the calls in flight, and
//! the retry budget ends retries with counted drops.
//!
//! The outage test runs the three kinds in parallel threads, about 75 s in all.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use xray_export::transport::api::{ApiConfig, ApiTransport};
use xray_export::{Document, DropReason, Metrics, Pipeline, PipelineConfig, RetryPolicy};
use xray_model::TraceId;

use common::{Reply, Stub, document_ids, trace_id};

type Accepted = Arc<Mutex<HashMap<String, u32>>>;

const UP: u8 = 0;
const UNAVAILABLE: u8 = 1;
const THROTTLED: u8 = 2;

fn throttled() -> Reply {
    Reply::Respond(
        429,
        vec![("x-amzn-errortype".into(), "ThrottledException".into())],
        br#"{"__type":"ThrottledException","message":"Rate exceeded"}"#.to_vec(),
    )
}

/// An API stub whose answers follow `mode`: accept (counting ids), 503 or 429.
fn api_stub(port: u16, mode: Arc<AtomicU8>, accepted: Accepted) -> Stub {
    Stub::start_on(port, move |_, req| match mode.load(Ordering::SeqCst) {
        UNAVAILABLE => Reply::Respond(503, vec![], b"<html>Service Unavailable</html>".to_vec()),
        THROTTLED => throttled(),
        _ => {
            let mut a = accepted.lock().unwrap();
            for id in document_ids(req) {
                *a.entry(id).or_default() += 1;
            }
            Reply::json(200, r#"{"UnprocessedTraceSegments":[]}"#)
        }
    })
}

fn sdk() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKID", "SECRET", None, None, "test",
        )))
        .build()
}

fn pipeline(
    url: String,
    retry: RetryPolicy,
    max_in_flight: usize,
) -> (Pipeline<Document>, Metrics) {
    let metrics = Metrics::default();
    let p = Pipeline::start_with_metrics(
        ApiTransport::new(ApiConfig {
            sdk_config: Some(sdk().into()),
            endpoint_url: Some(url),
            max_in_flight: Some(max_in_flight),
            ..Default::default()
        }),
        PipelineConfig {
            retry,
            ..Default::default()
        },
        metrics.clone(),
    )
    .unwrap();
    (p, metrics)
}

fn doc(trace: TraceId, i: u64) -> Document {
    Document::from_json(
        format!(r#"{{"name":"svc","id":"{i:016x}","trace_id":"{trace}","start_time":1700000000.0,"end_time":1700000001.0}}"#)
            .into_bytes(),
    )
    .unwrap()
}

#[derive(Clone, Copy, Debug)]
enum Outage {
    Unavailable,
    Throttled,
    Refused,
}

/// 20 documents a second for 70 s; the API is out from 3 s to 63 s. The policy is the
/// default one (300 s budget), with a 2-s request timeout.
fn outage(kind: Outage, trace: u32) {
    let port = xray_testkit::free_port();
    let mode = Arc::new(AtomicU8::new(UP));
    let accepted: Accepted = Default::default();
    let mut stub = Some(api_stub(port, mode.clone(), accepted.clone()));
    let retry = RetryPolicy {
        request_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let (p, metrics) = pipeline(format!("http://127.0.0.1:{port}"), retry, 4);
    let trace = TraceId::from_u128(trace_id(trace));
    let start = Instant::now();
    let (down_at, up_at, end_at) = (
        Duration::from_secs(3),
        Duration::from_secs(63),
        Duration::from_secs(70),
    );
    let mut sent = 0u64;
    let mut down = false;
    let mut recovered = false;
    while start.elapsed() < end_at {
        let t = start.elapsed();
        if !down && t >= down_at {
            down = true;
            match kind {
                Outage::Unavailable => mode.store(UNAVAILABLE, Ordering::SeqCst),
                Outage::Throttled => mode.store(THROTTLED, Ordering::SeqCst),
                Outage::Refused => drop(stub.take()),
            }
        }
        if down && !recovered && t >= up_at {
            recovered = true;
            mode.store(UP, Ordering::SeqCst);
            if stub.is_none() {
                stub = Some(api_stub(port, mode.clone(), accepted.clone()));
            }
        }
        sent += 1;
        assert!(p.submit(doc(trace, sent)));
        std::thread::sleep(Duration::from_millis(50));
    }
    let flushed = p.flush(Duration::from_secs(30));
    let m = metrics.snapshot();
    let a = accepted.lock().unwrap().clone();
    eprintln!(
        "{kind:?}: {sent} sent, {} arrived, {} duplicates, {} requests, {} errors, {} retries, dropped: {:?}",
        a.len(),
        a.values().filter(|c| **c > 1).count(),
        m.requests,
        m.send_errors,
        m.retries,
        m.drop_summary()
    );
    flushed.unwrap();
    assert_eq!(m.dropped_total(), 0, "{m:?}");
    assert_eq!(a.len() as u64, sent, "every document arrived");
    assert!(a.values().all(|c| *c == 1), "no duplicates");
    assert_eq!(m.documents_sent, sent);
    // The outage was real: calls failed and were retried for about a minute.
    assert!(m.send_errors >= 10 && m.retries >= 10, "{m:?}");
    p.shutdown(Duration::from_secs(5)).unwrap();
}

/// The three kinds at once, each on a thread of its own (about 75 s in all).
#[test]
fn a_minute_of_503_429_or_refused_connections_loses_nothing() {
    let runs: Vec<_> = [
        (Outage::Unavailable, 60),
        (Outage::Throttled, 61),
        (Outage::Refused, 62),
    ]
    .into_iter()
    .map(|(kind, trace)| (kind, std::thread::spawn(move || outage(kind, trace))))
    .collect();
    let failed: Vec<String> = runs
        .into_iter()
        .filter_map(|(kind, run)| run.join().err().map(|_| format!("{kind:?}")))
        .collect();
    assert!(failed.is_empty(), "failed: {failed:?} (see above)");
}

#[test]
fn throttling_lowers_the_calls_in_flight() {
    // Each call takes 100 ms; the first 8 are throttled. Concurrency is measured at the
    // stub when each call arrives.
    let in_flight = Arc::new(AtomicUsize::new(0));
    let seen: Arc<Mutex<Vec<(usize, bool)>>> = Default::default();
    let accepted: Accepted = Default::default();
    let (f, s, a) = (in_flight.clone(), seen.clone(), accepted.clone());
    let stub = Stub::start(move |n, req| {
        let now = f.fetch_add(1, Ordering::SeqCst) + 1;
        let throttle = n < 8;
        s.lock().unwrap().push((now, throttle));
        std::thread::sleep(Duration::from_millis(100));
        let reply = if throttle {
            throttled()
        } else {
            let mut a = a.lock().unwrap();
            for id in document_ids(req) {
                *a.entry(id).or_default() += 1;
            }
            Reply::json(200, r#"{"UnprocessedTraceSegments":[]}"#)
        };
        f.fetch_sub(1, Ordering::SeqCst);
        reply
    });
    let retry = RetryPolicy {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(40),
        ..Default::default()
    };
    let (p, metrics) = pipeline(stub.url(), retry, 4);
    let trace = TraceId::from_u128(trace_id(63));
    // 200 documents at once: one batch of four calls of 50.
    for i in 1..=200 {
        assert!(p.submit(doc(trace, i)));
    }
    p.flush(Duration::from_secs(30)).unwrap();
    let seen = seen.lock().unwrap().clone();
    let first = seen.iter().take(4).map(|(c, _)| *c).max().unwrap();
    assert!(first >= 3, "four calls start together: {seen:?}");
    // After the first four throttles the limit is 1: the later throttled calls and the
    // retries right after them go one at a time.
    let later = seen[4..8].iter().map(|(c, _)| *c).max().unwrap();
    assert_eq!(later, 1, "{seen:?}");
    let a = accepted.lock().unwrap();
    assert_eq!(a.len(), 200);
    assert!(a.values().all(|c| *c == 1));
    assert_eq!(metrics.snapshot().dropped_total(), 0);
}

#[test]
fn the_retry_budget_ends_retries_with_counted_drops() {
    let stub = Stub::start(|_, _| Reply::Respond(503, vec![], b"down".to_vec()));
    let retry = RetryPolicy {
        max_elapsed: Duration::from_millis(1500),
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        ..Default::default()
    };
    let (p, metrics) = pipeline(stub.url(), retry, 4);
    let trace = TraceId::from_u128(trace_id(64));
    let start = Instant::now();
    for i in 1..=5 {
        assert!(p.submit(doc(trace, i)));
    }
    let err = p.flush(Duration::from_secs(20)).unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.dropped, "retries_exhausted=5");
    assert!(
        took >= Duration::from_millis(1200) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let m = metrics.snapshot();
    assert_eq!(m.dropped(DropReason::RetriesExhausted), 5);
    assert!(m.retries >= 4, "{m:?}");
}
