//! The X-Ray API: `PutTraceSegments` through `aws-sdk-xray`, credentials from the standard
//! `aws-config` chain (environment, profile, web identity, ECS and EC2 roles).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_xray::Client;
use aws_sdk_xray::config::http::HttpResponse;
use aws_sdk_xray::config::retry::RetryConfig;
use aws_sdk_xray::config::timeout::TimeoutConfig;
use aws_sdk_xray::error::{DisplayErrorContext, SdkError};
use aws_sdk_xray::operation::put_trace_segments::PutTraceSegmentsError;
use tokio::task::JoinSet;
use xray_model::limits::MAX_DOCUMENTS_PER_PUT;

use crate::item::Document;
use crate::metrics::DropReason;
use crate::transport::limit::AdaptiveLimit;
use crate::transport::{SendContext, SendFuture, Transport};

/// Settings for [`ApiTransport`].
#[derive(Clone, Default)]
pub struct ApiConfig {
    /// A ready `aws-config` configuration; loaded from the environment when `None`.
    pub sdk_config: Option<SdkConfig>,
    /// Overrides the region (else `AWS_REGION` and the rest of the chain).
    pub region: Option<String>,
    /// A custom endpoint (VPC endpoint, test server), e.g. `http://127.0.0.1:4566`.
    pub endpoint_url: Option<String>,
    /// Most `PutTraceSegments` calls in flight at once (default 4).
    pub max_in_flight: Option<usize>,
    /// Where failed calls are counted by kind (for the daemon's telemetry records).
    pub backend_errors: Option<Arc<BackendErrors>>,
}

impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiConfig")
            .field("sdk_config", &self.sdk_config.is_some())
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("max_in_flight", &self.max_in_flight)
            .field("backend_errors", &self.backend_errors.is_some())
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
    pub fn record<E>(&self, err: &SdkError<E, HttpResponse>) {
        let counter = match err {
            SdkError::TimeoutError(_) => &self.timeout,
            SdkError::ServiceError(e) => self.by_status(e.raw().status().as_u16()),
            SdkError::ResponseError(e) => self.by_status(e.raw().status().as_u16()),
            SdkError::DispatchFailure(e) if e.is_timeout() => &self.timeout,
            SdkError::DispatchFailure(e) => {
                let mut source: Option<&(dyn std::error::Error + 'static)> =
                    e.as_connector_error().map(|c| c as _);
                let mut counter = &self.other;
                while let Some(err) = source {
                    if let Some(io) = err.downcast_ref::<std::io::Error>()
                        && io.kind() == std::io::ErrorKind::ConnectionRefused
                    {
                        counter = &self.connection_refused;
                        break;
                    }
                    let text = err.to_string().to_ascii_lowercase();
                    if text.contains("dns error") || text.contains("failed to lookup address") {
                        counter = &self.unknown_host;
                        break;
                    }
                    source = err.source();
                }
                counter
            }
            _ => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn by_status(&self, status: u16) -> &AtomicU64 {
        match status {
            400..=499 => &self.http_4xx,
            500..=599 => &self.http_5xx,
            _ => &self.other,
        }
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

/// Sends documents with `PutTraceSegments`, at most 50 per call, several calls in flight.
///
/// Throttling (429), 5xx answers, timeouts and connection errors are retried with
/// backoff, resending only the documents not yet accepted; retryable
/// `UnprocessedTraceSegments` entries likewise. The AWS SDK's own retries are off so the
/// retry policy and the counters see every attempt. Throttling halves the calls allowed in
/// flight (each success allows one more again, up to `max_in_flight`).
pub struct ApiTransport {
    config: ApiConfig,
    client: Option<Client>,
    limit: Arc<AdaptiveLimit>,
}

impl ApiTransport {
    /// A transport that builds its client on first use (in the worker, never on the
    /// caller's thread).
    pub fn new(config: ApiConfig) -> Self {
        let limit = AdaptiveLimit::new(config.max_in_flight.unwrap_or(4));
        ApiTransport {
            config,
            client: None,
            limit,
        }
    }

    async fn client(&mut self, cx: &SendContext) -> Result<Client, String> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let sdk = match &self.config.sdk_config {
            Some(sdk) => sdk.clone(),
            None => aws_config::defaults(BehaviorVersion::latest()).load().await,
        };
        let mut builder = aws_sdk_xray::config::Builder::from(&sdk)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(cx.retry_policy().request_timeout)
                    .connect_timeout(cx.retry_policy().request_timeout)
                    .build(),
            );
        if let Some(region) = &self.config.region {
            builder = builder.region(Region::new(region.clone()));
        }
        if let Some(url) = &self.config.endpoint_url {
            builder = builder.endpoint_url(url);
        }
        let config = builder.build();
        if config.region().is_none() {
            return Err("no AWS region configured (set AWS_REGION)".to_owned());
        }
        let client = Client::from_conf(config);
        self.client = Some(client.clone());
        Ok(client)
    }

    async fn send_batch(&mut self, batch: Vec<Document>, cx: &SendContext) {
        let client = match self.client(cx).await {
            Ok(client) => client,
            Err(e) => {
                cx.send_error();
                cx.dropped(&batch, DropReason::TransportUnavailable, &e);
                return;
            }
        };
        let max_in_flight = self.config.max_in_flight.unwrap_or(4).max(1);
        let mut tasks = JoinSet::new();
        let mut batch = batch;
        while !batch.is_empty() {
            let rest = batch.split_off(batch.len().min(MAX_DOCUMENTS_PER_PUT));
            let group = std::mem::replace(&mut batch, rest);
            while tasks.len() >= max_in_flight {
                tasks.join_next().await;
            }
            tasks.spawn(put_group(
                client.clone(),
                group,
                cx.clone(),
                self.limit.clone(),
                self.config.backend_errors.clone(),
            ));
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
        MAX_DOCUMENTS_PER_PUT * self.config.max_in_flight.unwrap_or(4).max(1)
    }

    fn send<'a>(&'a mut self, batch: Vec<Document>, cx: &'a SendContext) -> SendFuture<'a> {
        Box::pin(self.send_batch(batch, cx))
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

/// Whether a failed call was throttled (429 or `ThrottledException`).
fn is_throttled(err: &SdkError<PutTraceSegmentsError>) -> bool {
    match err {
        SdkError::ServiceError(e) => {
            e.err().is_throttled_exception() || e.raw().status().as_u16() == 429
        }
        _ => false,
    }
}

/// Whether an `UnprocessedTraceSegments` error code means throttling.
fn is_throttling_code(code: &str) -> bool {
    let code = code.to_ascii_lowercase();
    code.contains("throttl") || code.contains("toomanyrequests") || code == "429"
}

/// A failed call: retry it, or drop its documents for this reason.
fn classify(err: &SdkError<PutTraceSegmentsError>) -> Result<(), DropReason> {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Ok(())
        }
        SdkError::ServiceError(e) => {
            let status = e.raw().status().as_u16();
            if e.err().is_throttled_exception() || status == 429 || status >= 500 {
                Ok(())
            } else {
                Err(DropReason::Rejected)
            }
        }
        _ => Err(DropReason::TransportUnavailable),
    }
}

/// One group of at most 50 documents, through every attempt it is allowed.
async fn put_group(
    client: Client,
    docs: Vec<Document>,
    cx: SendContext,
    limit: Arc<AdaptiveLimit>,
    backend_errors: Option<Arc<BackendErrors>>,
) {
    let mut pending = docs;
    let mut attempt = 1;
    let first_try = std::time::Instant::now();
    loop {
        let texts: Vec<String> = pending.iter().map(|d| d.as_str().to_owned()).collect();
        let result = {
            let _permit = limit.acquire().await;
            cx.request();
            client
                .put_trace_segments()
                .set_trace_segment_documents(Some(texts))
                .send()
                .await
        };
        let (retry, cause): (Vec<Document>, Arc<str>) = match result {
            Ok(out) => {
                let unprocessed = out.unprocessed_trace_segments();
                if unprocessed
                    .iter()
                    .any(|u| is_throttling_code(u.error_code().unwrap_or("")))
                {
                    limit.throttled();
                } else {
                    limit.succeeded();
                }
                if unprocessed.is_empty() {
                    pending.iter().for_each(|d| cx.delivered(d));
                    return;
                }
                cx.unprocessed(unprocessed.len());
                let mut by_id: HashMap<&str, (&str, &str)> = HashMap::new();
                for u in unprocessed {
                    let entry = (
                        u.error_code().unwrap_or("unknown"),
                        u.message().unwrap_or(""),
                    );
                    match u.id() {
                        Some(id) if pending.iter().any(|d| d.id().to_string() == id) => {
                            by_id.insert(id, entry);
                        }
                        _ => tracing::warn!(
                            target: "xray_export",
                            id = u.id().unwrap_or(""),
                            error_code = entry.0,
                            "X-Ray returned an unprocessed entry that names no document of the request: {}",
                            entry.1
                        ),
                    }
                }
                let mut retry = Vec::new();
                let mut codes = Vec::new();
                for doc in std::mem::take(&mut pending) {
                    match by_id.get(doc.id().to_string().as_str()) {
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
                    return;
                }
                codes.dedup();
                (
                    retry,
                    format!("unprocessed by X-Ray: {}", codes.join(", ")).into(),
                )
            }
            Err(err) => {
                cx.send_error();
                if let Some(errors) = &backend_errors {
                    errors.record(&err);
                }
                if is_throttled(&err) {
                    limit.throttled();
                }
                let cause: Arc<str> = DisplayErrorContext(&err).to_string().into();
                if let Err(reason) = classify(&err) {
                    cx.dropped(&pending, reason, &cause);
                    return;
                }
                (std::mem::take(&mut pending), cause)
            }
        };
        match cx.next_retry(attempt, first_try) {
            Some(wait) => {
                tracing::debug!(
                    target: "xray_export",
                    documents = retry.len(),
                    attempt,
                    ?wait,
                    "retrying PutTraceSegments: {cause}"
                );
                tokio::time::sleep(wait).await;
                pending = retry;
                attempt += 1;
            }
            None => {
                cx.dropped(&retry, DropReason::RetriesExhausted, &cause);
                return;
            }
        }
    }
}

impl std::fmt::Debug for ApiTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTransport").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
