//! A stub of X-Ray's sampling API (`POST /GetSamplingRules`, `POST /SamplingTargets`) on
//! loopback, recording every call, plus small helpers for the tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, TraceId};
use opentelemetry_sdk::trace::{SamplingDecision, ShouldSample};
use serde_json::{Value, json};
use xray_sampling::{SAMPLING_RULE_NAME_ATTRIBUTE, XraySampler};
use xray_testkit::stub::Reply;

/// What the stub serves and what it saw.
#[derive(Debug, Default)]
pub(crate) struct StubState {
    /// `SamplingRule` objects served by GetSamplingRules.
    pub rules: Vec<Value>,
    /// Rules per page (0: all in one page).
    pub page_size: usize,
    /// Target documents by rule name, answered when that rule is reported.
    pub targets: HashMap<String, Value>,
    /// `LastRuleModification` in targets answers.
    pub last_rule_modification: f64,
    /// Answer every call with HTTP 500.
    pub fail: bool,
    /// `NextToken` of every GetSamplingRules call, in order.
    pub rules_calls: Vec<Option<String>>,
    /// Every SamplingTargets request body, in order.
    pub targets_calls: Vec<Value>,
    /// The `Authorization` header of every call (empty when unsigned).
    pub authorization: Vec<String>,
}

/// The stub server (xray-testkit's scripted HTTP stub answering as X-Ray does); stops on
/// drop.
pub(crate) struct Stub {
    pub port: u16,
    state: Arc<Mutex<StubState>>,
    _server: xray_testkit::stub::Stub,
}

pub(crate) fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A version 1 rule as X-Ray serves it, matching everything but what `fields` set.
pub(crate) fn rule(name: &str, priority: i64, reservoir: i64, rate: f64, fields: Value) -> Value {
    let mut r = json!({
        "RuleName": name, "RuleARN": format!("arn:aws:xray:us-east-1:123456789012:sampling-rule/{name}"),
        "ResourceARN": "*", "Priority": priority, "FixedRate": rate, "ReservoirSize": reservoir,
        "ServiceName": "*", "ServiceType": "*", "Host": "*", "HTTPMethod": "*", "URLPath": "*",
        "Version": 1, "Attributes": {}
    });
    if let (Some(r), Some(f)) = (r.as_object_mut(), fields.as_object()) {
        for (k, v) in f {
            r.insert(k.clone(), v.clone());
        }
    }
    r
}

/// X-Ray's own default rule: 1 per second plus 5 %.
pub(crate) fn default_rule() -> Value {
    rule("Default", 10000, 1, 0.05, json!({}))
}

impl Stub {
    pub(crate) fn start(state: StubState) -> Stub {
        let state = Arc::new(Mutex::new(state));
        let shared = state.clone();
        let server = xray_testkit::stub::Stub::start(move |_, request| {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            let (status, answer) = {
                let mut state = shared.lock().unwrap();
                let authorization = request.header("authorization").unwrap_or_default();
                state.authorization.push(authorization.to_owned());
                answer(&request.path, body, &mut state)
            };
            Reply::json(status, &answer.to_string())
        });
        Stub {
            port: server.port,
            state,
            _server: server,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, StubState> {
        self.state.lock().unwrap()
    }

    pub(crate) fn targets_count(&self) -> usize {
        self.state().targets_calls.len()
    }

    /// Sums of reported statistics per rule: (requests, sampled, borrowed).
    pub(crate) fn reported(&self) -> HashMap<String, (u64, u64, u64)> {
        let mut out: HashMap<String, (u64, u64, u64)> = HashMap::new();
        for call in &self.state().targets_calls {
            for doc in call["SamplingStatisticsDocuments"].as_array().unwrap() {
                let e = out
                    .entry(doc["RuleName"].as_str().unwrap().to_owned())
                    .or_default();
                e.0 += doc["RequestCount"].as_u64().unwrap();
                e.1 += doc["SampledCount"].as_u64().unwrap();
                e.2 += doc["BorrowCount"].as_u64().unwrap();
            }
        }
        out
    }
}

fn answer(path: &str, body: Value, s: &mut StubState) -> (u16, Value) {
    match path {
        "/GetSamplingRules" => {
            let token = body["NextToken"].as_str().map(str::to_owned);
            s.rules_calls.push(token.clone());
            if s.fail {
                return (500, json!({"message": "down"}));
            }
            let page: usize = token
                .as_deref()
                .and_then(|t| t.strip_prefix("page-"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let size = if s.page_size == 0 {
                s.rules.len().max(1)
            } else {
                s.page_size
            };
            let records: Vec<Value> = s
                .rules
                .iter()
                .skip(page * size)
                .take(size)
                .map(|r| json!({"SamplingRule": r, "CreatedAt": 1.7e9, "ModifiedAt": 1.7e9}))
                .collect();
            let mut answer = json!({ "SamplingRuleRecords": records });
            if (page + 1) * size < s.rules.len() {
                answer["NextToken"] = json!(format!("page-{}", page + 1));
            }
            (200, answer)
        }
        "/SamplingTargets" => {
            s.targets_calls.push(body.clone());
            if s.fail {
                return (500, json!({"message": "down"}));
            }
            let docs: Vec<Value> = body["SamplingStatisticsDocuments"]
                .as_array()
                .map(|docs| {
                    docs.iter()
                        .filter_map(|d| s.targets.get(d["RuleName"].as_str()?).cloned())
                        .collect()
                })
                .unwrap_or_default();
            (
                200,
                json!({
                    "SamplingTargetDocuments": docs,
                    "LastRuleModification": s.last_rule_modification,
                    "UnprocessedStatistics": []
                }),
            )
        }
        _ => (404, json!({})),
    }
}

/// Decides a root span with these attributes: (sampled, rule name).
pub(crate) fn decide(sampler: &XraySampler, attributes: &[KeyValue]) -> (bool, String) {
    let r = sampler.should_sample(
        None,
        TraceId::from(fastrand::u128(1..)),
        "span",
        &SpanKind::Server,
        attributes,
        &[],
    );
    let rule = r
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == SAMPLING_RULE_NAME_ATTRIBUTE)
        .map(|kv| kv.value.as_str().into_owned())
        .unwrap_or_default();
    (r.decision == SamplingDecision::RecordAndSample, rule)
}

/// HTTP server span attributes (current semantic conventions).
pub(crate) fn http(method: &str, path: &str) -> Vec<KeyValue> {
    vec![
        KeyValue::new("http.request.method", method.to_owned()),
        KeyValue::new("url.path", path.to_owned()),
    ]
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes.
pub(crate) fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A log sink for a `tracing` subscriber; `lines()` gives what was logged.
#[derive(Clone, Default)]
pub(crate) struct LogSink(Arc<Mutex<Vec<u8>>>);

impl LogSink {
    pub(crate) fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub(crate) fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }

    /// Runs `f` with a subscriber writing here (the sampler's poller inherits it).
    pub(crate) fn capture<T>(&self, f: impl FnOnce() -> T) -> T {
        let sink = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f)
    }
}

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
