//! The X-Ray API: `PutTraceSegments`, written and signed here.
//!
//! The body, `{"TraceSegmentDocuments":[...]}`, is written straight from the queued
//! documents, each escaped once as a JSON string (through the AWS SDK every document
//! would be copied and escaped again by its serializer). It is signed with SigV4 (service
//! `xray`) with credentials from the standard `aws-config` chain (environment, profile,
//! web identity, ECS and EC2 roles; cached until shortly before they expire) and posted over one
//! pooled `reqwest` client, so connections are reused between calls.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tracing::Instrument as _;
use xray_model::limits::MAX_DOCUMENTS_PER_PUT;

use crate::item::Document;
use crate::metrics::DropReason;
use crate::transport::http_client::client_or_default;
use crate::transport::limit::AdaptiveLimit;
use crate::transport::sigv4::{
    EndpointVariant, LazySdkConfig, Signer, configured_endpoint, sdk_config,
};
use crate::transport::{LazyHttpClient, SendContext, SendFuture, Transport};

/// Most bytes in one `PutTraceSegments` request body.
///
/// X-Ray publishes no request-size quota for `PutTraceSegments` (its API reference
/// limits nothing but the document list; the service quotas page limits a segment
/// document to 64 kB). The X-Ray daemon sends calls of up to 50 such documents, 3.2 MB
/// before escaping. 4 MiB keeps a full call of large documents in one request and bounds
/// the memory and the time of a call; calls over it are split, never refused.
pub const MAX_PUT_BODY_BYTES: usize = 4 * 1024 * 1024;

/// `PutTraceSegments` calls in flight by default (the daemon's `Concurrency`).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 8;

/// Settings for [`ApiTransport`].
#[derive(Clone, Default)]
pub struct ApiConfig {
    /// The `aws-config` configuration (ready, or loaded on first use: `SdkConfig::into`);
    /// loaded from the environment on first use when `None`.
    pub sdk_config: Option<LazySdkConfig>,
    /// Overrides the region (else `AWS_REGION` and the rest of the chain).
    pub region: Option<String>,
    /// A custom endpoint (VPC endpoint, test server), e.g. `http://127.0.0.1:4566`; else
    /// the configuration's endpoint URL (`AWS_ENDPOINT_URL_XRAY`, else `AWS_ENDPOINT_URL`),
    /// else the region's, FIPS or dual-stack as the configuration says
    /// ([`EndpointVariant`]).
    pub endpoint_url: Option<String>,
    /// Most `PutTraceSegments` calls in flight at once (default
    /// [`DEFAULT_MAX_IN_FLIGHT`]).
    pub max_in_flight: Option<usize>,
    /// Where failed calls are counted by kind (for the daemon's telemetry records).
    pub backend_errors: Option<Arc<BackendErrors>>,
    /// The HTTP client (proxy, TLS settings, connection pool), built on the first call; a
    /// plain one when `None`.
    pub http_client: Option<LazyHttpClient>,
}

impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiConfig")
            .field("sdk_config", &self.sdk_config.is_some())
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("max_in_flight", &self.max_in_flight)
            .field("backend_errors", &self.backend_errors.is_some())
            .field("http_client", &self.http_client.is_some())
            .finish()
    }
}

/// Failed X-Ray API calls by kind: the six counters of the daemon's
/// `BackendConnectionErrors` telemetry.
#[derive(Debug, Default)]
pub struct BackendErrors {
    /// Answers with a 4xx status.
    pub http_4xx: AtomicU64,
    /// Answers with a 5xx status.
    pub http_5xx: AtomicU64,
    /// Connections refused.
    pub connection_refused: AtomicU64,
    /// Calls that timed out.
    pub timeout: AtomicU64,
    /// Host names that did not resolve.
    pub unknown_host: AtomicU64,
    /// Every other failure.
    pub other: AtomicU64,
}

impl BackendErrors {
    /// Counts one failed call by its kind.
    fn record(&self, failure: &CallFailure) {
        let counter = match failure {
            CallFailure::Answer { status, .. } | CallFailure::Unreadable { status, .. } => {
                match status {
                    400..=499 => &self.http_4xx,
                    500..=599 => &self.http_5xx,
                    _ => &self.other,
                }
            }
            CallFailure::NoAnswer { kind, .. } => match kind {
                NoAnswer::Timeout => &self.timeout,
                NoAnswer::Refused => &self.connection_refused,
                NoAnswer::UnknownHost => &self.unknown_host,
                NoAnswer::Other => &self.other,
            },
            CallFailure::Signing(_) => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The six counts: 4xx, 5xx, connection refused, timeout, unknown host, other.
    pub fn counts(&self) -> [u64; 6] {
        [
            &self.http_4xx,
            &self.http_5xx,
            &self.connection_refused,
            &self.timeout,
            &self.unknown_host,
            &self.other,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    }
}

/// Sends documents with `PutTraceSegments`: at most 50 documents and
/// [`MAX_PUT_BODY_BYTES`] per call, several calls in flight.
///
/// Throttling (429, `ThrottledException`), 5xx answers, timeouts and connection errors are
/// retried with backoff, resending only the documents not yet accepted; retryable
/// `UnprocessedTraceSegments` entries likewise; other answers drop the call's documents as
/// rejected. Throttling halves the calls allowed in flight (each success allows one more
/// again, up to `max_in_flight`). Every call is timed in
/// [`crate::MetricsSnapshot::calls`].
pub struct ApiTransport {
    config: ApiConfig,
    ready: Option<Arc<Ready>>,
    limit: Arc<AdaptiveLimit>,
}

/// What every call shares, set up on first use.
struct Ready {
    http: reqwest::Client,
    url: String,
    signer: Signer,
    limit: Arc<AdaptiveLimit>,
    backend_errors: Option<Arc<BackendErrors>>,
}

impl ApiTransport {
    /// A transport that loads its AWS configuration and credentials on first use (in the
    /// worker, never on the caller's thread).
    pub fn new(config: ApiConfig) -> Self {
        let limit = AdaptiveLimit::new(Self::max_in_flight(&config));
        ApiTransport {
            config,
            ready: None,
            limit,
        }
    }

    fn max_in_flight(config: &ApiConfig) -> usize {
        config.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT).max(1)
    }

    async fn ready(&mut self) -> Result<Arc<Ready>, String> {
        if let Some(ready) = &self.ready {
            return Ok(ready.clone());
        }
        let sdk = sdk_config(self.config.sdk_config.as_ref()).await;
        let region = self
            .config
            .region
            .clone()
            .or_else(|| sdk.region().map(ToString::to_string))
            .ok_or("no AWS region configured (set AWS_REGION)")?;
        let base = self
            .config
            .endpoint_url
            .clone()
            .or_else(|| configured_endpoint(&sdk))
            .unwrap_or_else(|| EndpointVariant::of(&sdk).endpoint(&region));
        let http = client_or_default(self.config.http_client.as_ref())?;
        let ready = Arc::new(Ready {
            http,
            url: format!("{}/TraceSegments", base.trim_end_matches('/')),
            signer: Signer::new(sdk.credentials_provider(), region, "xray"),
            limit: self.limit.clone(),
            backend_errors: self.config.backend_errors.clone(),
        });
        self.ready = Some(ready.clone());
        Ok(ready)
    }

    async fn send_batch(&mut self, batch: Vec<Document>, cx: &SendContext) {
        let ready = match self.ready().await {
            Ok(ready) => ready,
            Err(e) => {
                cx.send_error();
                cx.dropped(&batch, DropReason::TransportUnavailable, &e);
                return;
            }
        };
        let max_in_flight = Self::max_in_flight(&self.config);
        let mut tasks = JoinSet::new();
        for call in Call::split(batch, cx) {
            while tasks.len() >= max_in_flight {
                tasks.join_next().await;
            }
            // The calls log inside the worker's `xray_export.send` span.
            tasks.spawn(put(ready.clone(), call, cx.clone()).in_current_span());
        }
        while tasks.join_next().await.is_some() {}
    }
}

impl Transport<Document> for ApiTransport {
    fn name(&self) -> &'static str {
        "xray-api"
    }

    fn linger(&self) -> Duration {
        Duration::from_millis(20)
    }

    fn batch_limit(&self) -> usize {
        MAX_DOCUMENTS_PER_PUT * Self::max_in_flight(&self.config)
    }

    fn send<'a>(&'a mut self, batch: Vec<Document>, cx: &'a SendContext) -> SendFuture<'a> {
        Box::pin(self.send_batch(batch, cx))
    }
}

const BODY_START: &[u8] = b"{\"TraceSegmentDocuments\":[";
const BODY_END: &[u8] = b"]}";

/// One `PutTraceSegments` request: its documents and its body.
struct Call {
    docs: Vec<Document>,
    body: Vec<u8>,
}

impl Call {
    fn new() -> Call {
        let mut body = Vec::with_capacity(16 * 1024);
        body.extend_from_slice(BODY_START);
        Call {
            docs: Vec::new(),
            body,
        }
    }

    /// Adds `doc` when the call has room for it (by count and by bytes); gives it back
    /// when not.
    fn push(&mut self, doc: Document) -> Result<(), Document> {
        if self.docs.len() >= MAX_DOCUMENTS_PER_PUT {
            return Err(doc);
        }
        let mark = self.body.len();
        self.write(&doc);
        if self.body.len() + BODY_END.len() > MAX_PUT_BODY_BYTES {
            self.body.truncate(mark);
            return Err(doc);
        }
        self.docs.push(doc);
        Ok(())
    }

    /// Appends `doc` to the body, escaped once, after a comma unless it is the first.
    fn write(&mut self, doc: &Document) {
        if self.body.len() > BODY_START.len() {
            self.body.push(b',');
        }
        xray_model::write_json_string(&mut self.body, doc.as_str());
    }

    fn finish(mut self) -> Call {
        self.body.extend_from_slice(BODY_END);
        self
    }

    /// The calls for `docs`, in order, each as full as the limits allow. A document too
    /// large for a call of its own is dropped as [`DropReason::TooLarge`].
    fn split(docs: Vec<Document>, cx: &SendContext) -> Vec<Call> {
        let mut calls = Vec::new();
        let mut call = Call::new();
        for doc in docs {
            let Err(doc) = call.push(doc) else { continue };
            if !call.docs.is_empty() {
                calls.push(std::mem::replace(&mut call, Call::new()).finish());
            }
            if let Err(doc) = call.push(doc) {
                cx.dropped(
                    [&doc],
                    DropReason::TooLarge,
                    &format_args!("over {MAX_PUT_BODY_BYTES} bytes in a PutTraceSegments body"),
                );
            }
        }
        if !call.docs.is_empty() {
            calls.push(call.finish());
        }
        calls
    }

    /// A call with `docs`, some of the documents of an earlier call (so within its
    /// limits): a retry.
    fn part(docs: Vec<Document>) -> Call {
        let mut call = Call::new();
        for doc in &docs {
            call.write(doc);
        }
        call.docs = docs;
        call.finish()
    }
}

/// Why a call did not deliver its documents.
#[derive(Debug)]
enum CallFailure {
    /// An answer with an error status; `error_type` from `x-amzn-ErrorType` or `__type`.
    Answer {
        status: u16,
        error_type: String,
        message: String,
    },
    /// An answer that could not be read (cut short, or a success that is not JSON).
    Unreadable { status: u16, cause: String },
    /// No answer.
    NoAnswer { kind: NoAnswer, cause: String },
    /// The request could not be signed (credentials could not be had).
    Signing(String),
}

/// Why a call got no answer, as the telemetry records count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoAnswer {
    Timeout,
    Refused,
    UnknownHost,
    Other,
}

impl NoAnswer {
    fn of(err: &reqwest::Error) -> NoAnswer {
        if err.is_timeout() {
            return NoAnswer::Timeout;
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => return NoAnswer::Refused,
                    std::io::ErrorKind::TimedOut => return NoAnswer::Timeout,
                    _ => {}
                }
            }
            let text = e.to_string().to_ascii_lowercase();
            if text.contains("dns error") || text.contains("failed to lookup address") {
                return NoAnswer::UnknownHost;
            }
            source = e.source();
        }
        NoAnswer::Other
    }
}

impl CallFailure {
    /// Whether X-Ray asked to slow down (429 or `ThrottledException`).
    fn throttled(&self) -> bool {
        match self {
            CallFailure::Answer {
                status, error_type, ..
            } => *status == 429 || is_throttling_code(error_type),
            _ => false,
        }
    }

    /// Retry the call, or drop its documents for this reason.
    fn classify(&self) -> Result<(), DropReason> {
        match self {
            CallFailure::Answer { status, .. } if *status < 500 && !self.throttled() => {
                Err(DropReason::Rejected)
            }
            _ => Ok(()),
        }
    }

    fn describe(&self, url: &str) -> String {
        match self {
            CallFailure::Answer {
                status,
                error_type,
                message,
            } => format!("{url} answered {status} {error_type}: {message}"),
            CallFailure::Unreadable { status, cause } => {
                format!("{url} answered {status} unreadably: {cause}")
            }
            CallFailure::NoAnswer { cause, .. } => format!("{url}: {cause}"),
            CallFailure::Signing(cause) => cause.clone(),
        }
    }
}

/// One entry of `UnprocessedTraceSegments`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Unprocessed {
    id: Option<String>,
    error_code: Option<String>,
    message: Option<String>,
}

/// The `UnprocessedTraceSegments` of a successful answer (an empty body has none).
fn parse_answer(body: &[u8]) -> Result<Vec<Unprocessed>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let answer: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let text = |v: &serde_json::Value, key: &str| v.get(key)?.as_str().map(str::to_owned);
    Ok(answer
        .get("UnprocessedTraceSegments")
        .and_then(serde_json::Value::as_array)
        .map(|list| {
            list.iter()
                .map(|u| Unprocessed {
                    id: text(u, "Id"),
                    error_code: text(u, "ErrorCode"),
                    message: text(u, "Message"),
                })
                .collect()
        })
        .unwrap_or_default())
}

/// An error answer: its type (`x-amzn-ErrorType`, else the body's `__type` or `code`,
/// without namespace or URL) and message.
fn error_answer(status: u16, header: Option<&str>, body: &[u8]) -> CallFailure {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| json.as_ref()?.get(*k)?.as_str().map(str::to_owned))
    };
    let error_type = header
        .map(|h| h.split(':').next().unwrap_or(h).to_owned())
        .or_else(|| field(&["__type", "code"]))
        .map(|t| t.rsplit('#').next().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let message = field(&["message", "Message"])
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned());
    CallFailure::Answer {
        status,
        error_type,
        message,
    }
}

/// One signed `PutTraceSegments` request and its answer.
async fn attempt(
    ready: &Ready,
    body: &[u8],
    cx: &SendContext,
) -> Result<Vec<Unprocessed>, CallFailure> {
    const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
    let headers = [("content-type", CONTENT_TYPE)];
    let signed = ready
        .signer
        .sign_post(&ready.url, &headers, body)
        .await
        .map_err(|e| CallFailure::Signing(e.to_string()))?;
    let mut request = ready
        .http
        .post(&ready.url)
        .timeout(cx.retry_policy().request_timeout)
        .header("content-type", CONTENT_TYPE)
        .body(body.to_vec());
    for (k, v) in signed {
        request = request.header(k, v);
    }
    cx.request();
    let started = Instant::now();
    let answer = async {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response.bytes().await;
        Ok::<_, reqwest::Error>((status, error_type, bytes))
    }
    .await;
    cx.metrics().record_call(started.elapsed());
    let (status, error_type, bytes) = answer.map_err(|e| CallFailure::NoAnswer {
        kind: NoAnswer::of(&e),
        cause: DisplayChain(&e).to_string(),
    })?;
    let bytes = bytes.map_err(|e| CallFailure::Unreadable {
        status,
        cause: DisplayChain(&e).to_string(),
    })?;
    if (200..300).contains(&status) {
        parse_answer(&bytes).map_err(|cause| CallFailure::Unreadable { status, cause })
    } else {
        Err(error_answer(status, error_type.as_deref(), &bytes))
    }
}

/// An error with its sources, `: `-separated.
struct DisplayChain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

/// Whether an `UnprocessedTraceSegments` error code is worth another try.
pub fn is_retryable_code(code: &str) -> bool {
    let code = code.to_ascii_lowercase();
    [
        "throttl",
        "internal",
        "unavailable",
        "timeout",
        "toomanyrequests",
        "limitexceeded",
    ]
    .iter()
    .any(|k| code.contains(k))
        || code.parse::<u16>().is_ok_and(|n| n == 429 || n >= 500)
}

/// Whether an error type or `UnprocessedTraceSegments` error code means throttling.
fn is_throttling_code(code: &str) -> bool {
    let code = code.to_ascii_lowercase();
    code.contains("throttl") || code.contains("toomanyrequests") || code == "429"
}

/// One call's documents, through every attempt they are allowed.
async fn put(ready: Arc<Ready>, call: Call, cx: SendContext) {
    let Call { docs, body } = call;
    let (mut pending, mut body) = (docs, body);
    let mut attempt_no = 1;
    let first_try = Instant::now();
    loop {
        let result = {
            let _permit = ready.limit.acquire().await;
            attempt(&ready, &body, &cx).await
        };
        let (retry, cause): (Vec<Document>, String) = match result {
            Ok(unprocessed) => {
                if unprocessed
                    .iter()
                    .any(|u| is_throttling_code(u.error_code.as_deref().unwrap_or("")))
                {
                    ready.limit.throttled();
                } else {
                    ready.limit.succeeded();
                }
                if unprocessed.is_empty() {
                    pending.iter().for_each(|d| cx.delivered(d));
                    return;
                }
                match sort_unprocessed(std::mem::take(&mut pending), &unprocessed, &cx) {
                    Some(retry) => retry,
                    None => return,
                }
            }
            Err(failure) => {
                cx.send_error();
                if let Some(errors) = &ready.backend_errors {
                    errors.record(&failure);
                }
                if failure.throttled() {
                    ready.limit.throttled();
                }
                let cause = failure.describe(&ready.url);
                if let Err(reason) = failure.classify() {
                    cx.dropped(&pending, reason, &cause);
                    return;
                }
                (std::mem::take(&mut pending), cause)
            }
        };
        match cx.next_retry(attempt_no, first_try) {
            Some(wait) => {
                tracing::debug!(
                    target: "xray_export",
                    documents = retry.len(),
                    attempt = attempt_no,
                    ?wait,
                    "retrying PutTraceSegments: {cause}"
                );
                tokio::time::sleep(wait).await;
                let call = Call::part(retry);
                (pending, body) = (call.docs, call.body);
                attempt_no += 1;
            }
            None => {
                cx.dropped(&retry, DropReason::RetriesExhausted, &cause);
                return;
            }
        }
    }
}

/// Sorts a call's documents by its `UnprocessedTraceSegments`: the others are delivered,
/// the non-retryable ones dropped as rejected. Returns the retryable ones and why, or
/// `None` when there are none.
fn sort_unprocessed(
    pending: Vec<Document>,
    unprocessed: &[Unprocessed],
    cx: &SendContext,
) -> Option<(Vec<Document>, String)> {
    cx.unprocessed(unprocessed.len());
    let ids: Vec<String> = pending.iter().map(|d| d.id().to_string()).collect();
    let mut by_id: HashMap<&str, (&str, &str)> = HashMap::new();
    for u in unprocessed {
        let entry = (
            u.error_code.as_deref().unwrap_or("unknown"),
            u.message.as_deref().unwrap_or(""),
        );
        match u.id.as_deref() {
            Some(id) if ids.iter().any(|d| d == id) => {
                by_id.insert(id, entry);
            }
            _ => tracing::warn!(
                target: "xray_export",
                id = u.id.as_deref().unwrap_or(""),
                error_code = entry.0,
                "X-Ray returned an unprocessed entry that names no document of the request: {}",
                entry.1
            ),
        }
    }
    let mut retry = Vec::new();
    let mut codes = Vec::new();
    for (doc, id) in pending.into_iter().zip(&ids) {
        match by_id.get(id.as_str()) {
            None => cx.delivered(&doc),
            Some((code, _)) if is_retryable_code(code) => {
                codes.push(*code);
                retry.push(doc);
            }
            Some((code, message)) => {
                let cause = format!("unprocessed by X-Ray: {code}: {message}");
                cx.dropped([&doc], DropReason::Rejected, &cause);
            }
        }
    }
    if retry.is_empty() {
        return None;
    }
    codes.dedup();
    Some((retry, format!("unprocessed by X-Ray: {}", codes.join(", "))))
}

impl std::fmt::Debug for ApiTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTransport").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metrics;
    use crate::transport::RetryPolicy;
    use xray_model::{SegmentId, TraceId};

    #[test]
    fn retryable_codes() {
        for code in [
            "ThrottledException",
            "InternalFailure",
            "ServiceUnavailable",
            "500",
            "429",
        ] {
            assert!(is_retryable_code(code), "{code}");
        }
        for code in [
            "MissingParam",
            "InvalidTraceId",
            "JSONFormatError",
            "400",
            "unknown",
        ] {
            assert!(!is_retryable_code(code), "{code}");
        }
    }

    fn cx() -> SendContext {
        SendContext::standalone(Metrics::default(), RetryPolicy::default())
    }

    fn doc(id: u64, name: &str) -> Document {
        let trace = TraceId::from_u128(0x5759e988_bd862e3fe1be46a994272793);
        let json = format!(
            "{{\"name\":\"{name}\",\"id\":\"{id:016x}\",\"trace_id\":\"{trace}\",\"start_time\":1.5,\"end_time\":2.5}}"
        );
        Document::from_json(json.into_bytes()).unwrap()
    }

    /// Quotes, backslashes, control characters (escaped in the document, and raw in
    /// whitespace and in an opaque body) and non-ASCII text are escaped exactly once:
    /// the body is the expected text byte for byte, and parsing it gives back each
    /// document's bytes.
    #[test]
    fn the_body_escapes_each_document_once() {
        let name = r#"q\"uo\\te \u0001 tab\t é ✓ 𝄞"#;
        let json = doc(1, name);
        let spaced = Document::from_json(
            b"{\n\t\"name\":\"s\",\"id\":\"0000000000000002\",\"trace_id\":\"1-5759e988-bd862e3fe1be46a994272793\",\"start_time\":1,\"end_time\":2}\r\n"
                .to_vec(),
        )
        .unwrap();
        let opaque = Document::opaque(
            b"T1S\x01\x1f\"\\/\x7f".to_vec(),
            TraceId::from_u128(1),
            SegmentId::from_u64(3),
            1,
        )
        .unwrap();
        let docs = vec![json.clone(), spaced.clone(), opaque.clone()];
        let calls = Call::split(docs, &cx());
        assert_eq!(calls.len(), 1);
        let body = String::from_utf8(calls[0].body.clone()).unwrap();
        let expected = concat!(
            r#"{"TraceSegmentDocuments":["#,
            r#""{\"name\":\"q\\\"uo\\\\te \\u0001 tab\\t é ✓ 𝄞\",\"id\":\"0000000000000001\",\"trace_id\":\"1-5759e988-bd862e3fe1be46a994272793\",\"start_time\":1.5,\"end_time\":2.5}","#,
            r#""{\n\t\"name\":\"s\",\"id\":\"0000000000000002\",\"trace_id\":\"1-5759e988-bd862e3fe1be46a994272793\",\"start_time\":1,\"end_time\":2}\r\n","#,
            r#""T1S\u0001\u001f\"\\/"#,
            "\u{7f}",
            r#"""#,
            "]}"
        );
        assert_eq!(body, expected);
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        let texts: Vec<&str> = parsed["TraceSegmentDocuments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        assert_eq!(
            texts,
            [json.as_str(), spaced.as_str(), opaque.as_str()],
            "one escaping: the documents come back byte for byte"
        );
    }

    #[test]
    fn calls_are_cut_at_50_documents_and_at_the_byte_limit() {
        let docs: Vec<Document> = (1..=120).map(|i| doc(i, "svc")).collect();
        let counts: Vec<usize> = Call::split(docs, &cx())
            .iter()
            .map(|c| c.docs.len())
            .collect();
        assert_eq!(counts, [50, 50, 20]);

        // Documents of 60 kB that double when escaped (each `\"` becomes `\\\"`): 120 kB
        // each in the body, so a call of 4 MiB takes 34 of them, not 50.
        let big = "\\\"".repeat(30_000);
        let docs: Vec<Document> = (1..=100).map(|i| doc(i, &big)).collect();
        let cx = cx();
        let calls = Call::split(docs, &cx);
        let counts: Vec<usize> = calls.iter().map(|c| c.docs.len()).collect();
        assert_eq!(counts, [34, 34, 32]);
        assert!(calls.iter().all(|c| c.docs.len() <= MAX_DOCUMENTS_PER_PUT));
        assert!(calls.iter().all(|c| c.body.len() <= MAX_PUT_BODY_BYTES));
        assert_eq!(calls.iter().map(|c| c.docs.len()).sum::<usize>(), 100);
        let ids: Vec<u64> = calls
            .iter()
            .flat_map(|c| {
                c.docs
                    .iter()
                    .map(|d| u64::from_str_radix(&d.id().to_string(), 16).unwrap())
            })
            .collect();
        assert_eq!(ids, (1..=100).collect::<Vec<_>>(), "in order");
        for call in &calls {
            let parsed: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
            assert_eq!(
                parsed["TraceSegmentDocuments"].as_array().unwrap().len(),
                call.docs.len()
            );
        }
        assert_eq!(cx.metrics().snapshot().dropped_total(), 0);
    }

    #[test]
    fn answers_are_read_as_the_sdk_reads_them() {
        let u = parse_answer(
            br#"{"UnprocessedTraceSegments":[{"Id":"a","ErrorCode":"ThrottledException","Message":"slow"}]}"#,
        )
        .unwrap();
        assert_eq!(
            u,
            [Unprocessed {
                id: Some("a".into()),
                error_code: Some("ThrottledException".into()),
                message: Some("slow".into()),
            }]
        );
        assert_eq!(parse_answer(b"").unwrap(), []);
        assert_eq!(parse_answer(b"{}").unwrap(), []);
        assert!(parse_answer(b"<html>").is_err());

        let throttled = error_answer(
            400,
            Some("ThrottledException:http://internal.amazon.com/coral/"),
            br#"{"message":"Rate exceeded"}"#,
        );
        assert!(throttled.throttled());
        assert_eq!(throttled.classify(), Ok(()));
        let typed = error_answer(
            400,
            None,
            br#"{"__type":"com.amazonaws.xray#InvalidRequestException","Message":"bad"}"#,
        );
        assert!(
            matches!(&typed, CallFailure::Answer { error_type, message, .. }
            if error_type == "InvalidRequestException" && message == "bad")
        );
        assert_eq!(typed.classify(), Err(DropReason::Rejected));
        assert_eq!(error_answer(503, None, b"<html>").classify(), Ok(()));
        assert!(error_answer(429, None, b"").throttled());
    }
}
