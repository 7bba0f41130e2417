//! A stub X-Ray API on loopback: `PutTraceSegments` (`POST /TraceSegments`) and
//! `PutTelemetryRecords` (`POST /TelemetryRecords`). It keeps what it receives, measures
//! how many calls are in flight at once, and can answer a status for the next calls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xray_testkit::stub::{Reply, Request, Stub};

#[derive(Default)]
struct State {
    delay: Duration,
    documents: Mutex<Vec<String>>,
    telemetry: Mutex<Vec<serde_json::Value>>,
    /// `METHOD /path` of every other request (STS, sampling, OTLP).
    others: Mutex<Vec<String>>,
    /// (status, how many more PutTraceSegments calls get it).
    failing: Mutex<Option<(u16, usize)>>,
    /// (status, until when every PutTraceSegments call gets it).
    failing_until: Mutex<Option<(u16, Instant)>>,
    /// Documents of calls answered with an error status.
    refused_documents: AtomicUsize,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

/// The running stub (`xray_testkit::stub`, a thread per connection); stops when dropped.
pub(crate) struct XrayStub {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<State>,
    _stub: Stub,
}

impl XrayStub {
    /// Starts the stub; every PutTraceSegments call takes `delay`.
    pub(crate) fn start(delay: Duration) -> XrayStub {
        let state = Arc::new(State {
            delay,
            ..State::default()
        });
        let handler = state.clone();
        let stub = Stub::start(move |_, request| handler.answer(request));
        XrayStub {
            url: stub.url(),
            state,
            _stub: stub,
        }
    }

    /// The next `calls` PutTraceSegments calls are answered with `status`.
    pub(crate) fn fail_next(&self, status: u16, calls: usize) {
        *self.state.failing.lock().unwrap() = Some((status, calls));
    }

    /// Every PutTraceSegments call is answered with `status` for `duration` from now.
    pub(crate) fn fail_for(&self, status: u16, duration: Duration) {
        *self.state.failing_until.lock().unwrap() = Some((status, Instant::now() + duration));
    }

    /// The documents accepted so far.
    pub(crate) fn documents(&self) -> Vec<String> {
        self.state.documents.lock().unwrap().clone()
    }

    /// The documents of calls answered with an error status.
    pub(crate) fn refused_documents(&self) -> usize {
        self.state.refused_documents.load(Ordering::SeqCst)
    }

    /// `METHOD /path` of the requests that were neither PutTraceSegments nor
    /// PutTelemetryRecords (STS is `POST /`).
    pub(crate) fn others(&self) -> Vec<String> {
        self.state.others.lock().unwrap().clone()
    }

    /// The PutTelemetryRecords request bodies so far.
    pub(crate) fn telemetry(&self) -> Vec<serde_json::Value> {
        self.state.telemetry.lock().unwrap().clone()
    }

    /// The most PutTraceSegments calls that were in flight at once.
    pub(crate) fn peak_in_flight(&self) -> usize {
        self.state.peak.load(Ordering::SeqCst)
    }

    /// Waits until `n` documents arrived (or `timeout` passed); returns them.
    pub(crate) fn wait_for_documents(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let docs = self.documents();
            if docs.len() >= n || Instant::now() >= deadline {
                return docs;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `pred` holds for the telemetry bodies (or `timeout` passed).
    pub(crate) fn wait_for_telemetry(
        &self,
        timeout: Duration,
        pred: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.telemetry();
            if pred(&t) || Instant::now() >= deadline {
                return t;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl State {
    fn answer(&self, request: &Request) -> Reply {
        match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/TraceSegments") => self.put_trace_segments(request),
            ("POST", "/TelemetryRecords") => {
                if let Ok(v) = serde_json::from_slice(&request.body) {
                    self.telemetry.lock().unwrap().push(v);
                }
                Reply::json(200, "{}")
            }
            (method, target) => {
                let path = target.split('?').next().unwrap_or_default();
                self.others.lock().unwrap().push(format!("{method} {path}"));
                if path == "/" {
                    // STS AssumeRole (--role-arn).
                    Reply::Respond(
                        200,
                        vec![("content-type".into(), "text/xml".into())],
                        ASSUME_ROLE.as_bytes().to_vec(),
                    )
                } else {
                    Reply::json(200, "{}")
                }
            }
        }
    }

    fn put_trace_segments(&self, request: &Request) -> Reply {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let docs = request.trace_segment_documents().unwrap_or_default();
        let until = *self.failing_until.lock().unwrap();
        let failing = match until {
            Some((status, until)) if Instant::now() < until => Some(status),
            _ => None,
        };
        let failing = failing.or_else(|| {
            let mut f = self.failing.lock().unwrap();
            match *f {
                Some((status, n)) if n > 0 => {
                    *f = if n > 1 { Some((status, n - 1)) } else { None };
                    Some(status)
                }
                _ => None,
            }
        });
        match failing {
            Some(status) => {
                self.refused_documents
                    .fetch_add(docs.len(), Ordering::SeqCst);
                Reply::json(status, r#"{"message":"stub failure"}"#)
            }
            None => {
                self.documents.lock().unwrap().extend(docs);
                Reply::json(200, r#"{"UnprocessedTraceSegments":[]}"#)
            }
        }
    }
}

const ASSUME_ROLE: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>ASIAASSUMED</AccessKeyId><SecretAccessKey>assumed-secret</SecretAccessKey><SessionToken>assumed-token</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/xray/xray-bridge</Arn><AssumedRoleId>AROAEXAMPLE:xray-bridge</AssumedRoleId></AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></AssumeRoleResponse>"#;
