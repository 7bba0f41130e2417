//! PutTraceSegments under faults, against a scripted stub of the X-Ray API on loopback:
//! every document is delivered exactly once within the retry budget, or counted as
//! dropped with a reason.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use xray_export::transport::api::{ApiConfig, ApiTransport};
use xray_export::{Document, DropReason, Metrics, Pipeline, PipelineConfig, RetryPolicy};
use xray_model::TraceId;

use common::{Reply, Stub, document_ids, logs, trace_id};

type Accepted = Arc<Mutex<HashMap<String, u32>>>;

fn accept(accepted: &Accepted, ids: &[String]) -> Reply {
    let mut a = accepted.lock().unwrap();
    for id in ids {
        *a.entry(id.clone()).or_default() += 1;
    }
    Reply::json(200, r#"{"UnprocessedTraceSegments":[]}"#)
}

fn pipeline(url: String, retry: RetryPolicy) -> (Pipeline<Document>, Metrics) {
    let sdk = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKID", "SECRET", None, None, "test",
        )))
        .build();
    let config = ApiConfig {
        sdk_config: Some(sdk.into()),
        endpoint_url: Some(url),
        max_in_flight: Some(2),
        ..Default::default()
    };
    let metrics = Metrics::default();
    let p = Pipeline::start_with_metrics(
        ApiTransport::new(config),
        PipelineConfig {
            retry,
            ..Default::default()
        },
        metrics.clone(),
    )
    .unwrap();
    (p, metrics)
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        request_timeout: Duration::from_millis(400),
        ..Default::default()
    }
}

fn docs(trace: u32, n: u64) -> Vec<Document> {
    let trace = TraceId::from_u128(trace_id(trace));
    (1..=n)
        .map(|i| {
            Document::from_json(
                format!(r#"{{"name":"svc","id":"{i:016x}","trace_id":"{trace}","start_time":1700000000.0,"end_time":1700000001.0}}"#)
                    .into_bytes(),
            )
            .unwrap()
        })
        .collect()
}

fn submit_all(p: &Pipeline<Document>, docs: Vec<Document>) {
    for d in docs {
        assert!(p.submit(d));
    }
}

fn assert_each_once(accepted: &Accepted, n: u64) {
    let a = accepted.lock().unwrap();
    assert_eq!(a.len() as u64, n, "every document arrived");
    assert!(a.values().all(|c| *c == 1), "no duplicates: {a:?}");
}

#[test]
fn throttling_and_server_errors_are_retried_without_duplicates() {
    let accepted: Accepted = Default::default();
    let a = accepted.clone();
    let stub = Stub::start(move |n, req| match n {
        0 | 1 => Reply::Respond(
            429,
            vec![("x-amzn-errortype".into(), "ThrottledException".into())],
            br#"{"__type":"ThrottledException","message":"Rate exceeded"}"#.to_vec(),
        ),
        2 => Reply::json(500, r#"{"__type":"InternalFailure","message":"boom"}"#),
        3 => Reply::Respond(503, vec![], b"<html>unavailable</html>".to_vec()),
        _ => accept(&a, &document_ids(req)),
    });
    let (p, metrics) = pipeline(stub.url(), fast());
    submit_all(&p, docs(30, 120));
    p.flush(Duration::from_secs(10)).unwrap();
    assert_each_once(&accepted, 120);
    let m = metrics.snapshot();
    assert_eq!((m.documents_sent, m.dropped_total()), (120, 0));
    assert_eq!(m.send_errors, 4);
    assert!(m.retries >= 4, "{m:?}");
    // 120 documents need at least 3 calls of at most 50.
    let requests = stub.requests();
    assert!(requests.iter().all(|r| document_ids(r).len() <= 50));
    assert!(
        requests
            .iter()
            .all(|r| r.path == "/TraceSegments" && r.method == "POST")
    );
    let auth = requests[0].header("authorization").unwrap();
    assert!(auth.contains("/eu-west-1/xray/aws4_request"), "{auth}");
    p.shutdown(Duration::from_secs(1)).unwrap();
}

#[test]
fn a_timed_out_call_is_retried() {
    let accepted: Accepted = Default::default();
    let a = accepted.clone();
    let stub = Stub::start(move |n, req| {
        if n == 0 {
            // Answer long after the client's 400 ms timeout; not stored.
            Reply::Delay(
                Duration::from_millis(1500),
                Box::new(Reply::json(500, "{}")),
            )
        } else {
            accept(&a, &document_ids(req))
        }
    });
    let (p, metrics) = pipeline(stub.url(), fast());
    submit_all(&p, docs(31, 10));
    p.flush(Duration::from_secs(10)).unwrap();
    assert_each_once(&accepted, 10);
    let m = metrics.snapshot();
    assert_eq!((m.send_errors, m.retries, m.documents_sent), (1, 1, 10));
}

#[test]
fn partial_unprocessed_retries_only_the_retryable_ones() {
    let logs = logs();
    let accepted: Accepted = Default::default();
    let a = accepted.clone();
    let (retry, reject) = (format!("{:016x}", 2), format!("{:016x}", 3));
    let (r, j) = (retry.clone(), reject.clone());
    let retried = Arc::new(Mutex::new(false));
    let stub = Stub::start(move |_, req| {
        let ids = document_ids(req);
        let mut entries = Vec::new();
        let mut rest = Vec::new();
        for id in ids {
            let mut retried = retried.lock().unwrap();
            if id == r && !*retried {
                *retried = true;
                entries.push(format!(
                    r#"{{"Id":"{id}","ErrorCode":"ThrottledException","Message":"slow down"}}"#
                ));
            } else if id == j {
                entries.push(format!(
                    r#"{{"Id":"{id}","ErrorCode":"InvalidSegment","Message":"bad segment"}}"#
                ));
            } else {
                rest.push(id);
            }
        }
        accept(&a, &rest);
        Reply::json(
            200,
            &format!(r#"{{"UnprocessedTraceSegments":[{}]}}"#, entries.join(",")),
        )
    });
    let (p, metrics) = pipeline(stub.url(), fast());
    let batch = docs(32, 60);
    let rejected = batch[2].clone();
    submit_all(&p, batch);
    let err = p.flush(Duration::from_secs(10)).unwrap_err();
    assert_eq!(err.dropped, "rejected=1");
    // Nothing that succeeded was sent again: only the retryable one appears twice.
    let mut sends: HashMap<String, u32> = HashMap::new();
    for request in stub.requests() {
        for id in document_ids(&request) {
            *sends.entry(id).or_default() += 1;
        }
    }
    assert_eq!(sends.len(), 60);
    for (id, n) in &sends {
        assert_eq!(*n, if *id == retry { 2 } else { 1 }, "{id}");
    }
    let a = accepted.lock().unwrap().clone();
    assert_eq!(a.len(), 59);
    assert!(a.values().all(|c| *c == 1));
    assert!(!a.contains_key(&reject));
    let m = metrics.snapshot();
    assert_eq!((m.documents_sent, m.unprocessed, m.retries), (59, 2, 1));
    assert_eq!(m.dropped(DropReason::Rejected), 1);
    let log = logs.lock().unwrap().clone();
    assert!(
        log.lines()
            .any(|l| l.contains(&rejected.trace_id().to_string())
                && l.contains("InvalidSegment")
                && l.contains("rejected")),
        "{log}"
    );
}

#[test]
fn client_errors_are_not_retried() {
    let stub = Stub::start(|_, _| {
        Reply::json(
            400,
            r#"{"__type":"InvalidRequestException","message":"nope"}"#,
        )
    });
    let (p, metrics) = pipeline(stub.url(), fast());
    submit_all(&p, docs(33, 3));
    let err = p.flush(Duration::from_secs(10)).unwrap_err();
    assert_eq!(err.dropped, "rejected=3");
    assert_eq!(stub.requests().len(), 1);
    assert_eq!(metrics.snapshot().retries, 0);
}

#[test]
fn connection_refused_is_retried_then_counted() {
    let closed = xray_testkit::free_port();
    let (p, metrics) = pipeline(format!("http://127.0.0.1:{closed}"), fast());
    submit_all(&p, docs(34, 7));
    let err = p.flush(Duration::from_secs(20)).unwrap_err();
    assert_eq!(err.dropped, "retries_exhausted=7");
    let m = metrics.snapshot();
    assert_eq!((m.send_errors, m.retries, m.documents_sent), (5, 4, 0));
}

#[test]
fn shutdown_sends_everything_queued() {
    let accepted: Accepted = Default::default();
    let a = accepted.clone();
    let stub = Stub::start(move |_, req| {
        std::thread::sleep(Duration::from_millis(20));
        accept(&a, &document_ids(req))
    });
    let (p, metrics) = pipeline(stub.url(), fast());
    submit_all(&p, docs(35, 500));
    p.shutdown(Duration::from_secs(10)).unwrap();
    assert_each_once(&accepted, 500);
    assert_eq!(metrics.snapshot().documents_sent, 500);
    // After shutdown, new documents are refused and counted.
    assert!(!p.submit(docs(36, 1).remove(0)));
    assert_eq!(metrics.snapshot().dropped(DropReason::Shutdown), 1);
}

#[test]
fn shutdown_gives_up_at_its_deadline_and_reports_what_was_lost() {
    let stub = Stub::start(|_, _| Reply::json(500, r#"{"__type":"InternalFailure"}"#));
    let retry = RetryPolicy {
        max_attempts: 1000,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(40),
        request_timeout: Duration::from_millis(400),
        ..Default::default()
    };
    let (p, metrics) = pipeline(stub.url(), retry);
    submit_all(&p, docs(37, 120));
    let start = Instant::now();
    let err = p.shutdown(Duration::from_millis(600)).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let m = metrics.snapshot();
    assert_eq!(m.documents_sent, 0);
    assert_eq!(m.dropped_total(), 120, "{m:?}");
    assert_eq!(
        m.dropped(DropReason::RetriesExhausted) + m.dropped(DropReason::Deadline),
        120
    );
    assert!(err.to_string().contains("dropped"), "{err}");
}
