//! OTLP/HTTP protobuf exports: the X-Ray OTLP endpoint
//! (`https://xray.<region>.amazonaws.com/v1/traces`, signed with SigV4 for service `xray`,
//! for accounts with Transaction Search) and any other OTLP/HTTP backend (unsigned unless
//! it is an AWS endpoint, with extra headers such as a vendor's API key, gzip bodies).

use std::fmt;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

use crate::item::Item;
use crate::metrics::DropReason;
use crate::transport::http_client::client_or_default;
use crate::transport::sigv4::{LazySdkConfig, Signer, regional_endpoint, sdk_config};
use crate::transport::{LazyHttpClient, SendContext, SendFuture, Transport};

/// Most spans the endpoint takes in one request.
pub const MAX_SPANS_PER_REQUEST: usize = 10_000;
/// Most bytes the endpoint takes in one request.
pub const MAX_REQUEST_BYTES: usize = 5 * 1024 * 1024;
/// Spans per queued item when exporting SDK spans (small items keep drops fine-grained).
const SPANS_PER_ITEM: usize = 512;

/// Encoded OTLP spans: one `ResourceSpans` message, ready to be framed into an
/// `ExportTraceServiceRequest`.
#[derive(Clone, PartialEq, Eq)]
pub struct OtlpSpans {
    bytes: Vec<u8>,
    spans: u32,
    first_trace: Option<[u8; 16]>,
}

impl fmt::Debug for OtlpSpans {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpSpans")
            .field("spans", &self.spans)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl OtlpSpans {
    /// Encodes one `ResourceSpans` (e.g. received by an OTLP receiver).
    pub fn from_resource_spans(resource_spans: &ResourceSpans) -> OtlpSpans {
        let spans = resource_spans
            .scope_spans
            .iter()
            .map(|s| s.spans.len() as u32)
            .sum();
        let first_trace = resource_spans
            .scope_spans
            .iter()
            .flat_map(|s| s.spans.first())
            .next()
            .and_then(|s| s.trace_id.as_slice().try_into().ok());
        OtlpSpans {
            bytes: resource_spans.encode_to_vec(),
            spans,
            first_trace,
        }
    }

    /// Converts SDK spans to OTLP, in items of at most 512 spans that each fit a
    /// request. Spans too large for a request on their own come back in the second list,
    /// to be counted as dropped.
    pub fn from_sdk(
        mut batch: Vec<SpanData>,
        resource: &Resource,
    ) -> (Vec<OtlpSpans>, Vec<OtlpSpans>) {
        let resource = ResourceAttributesWithSchema::from(resource);
        let (mut items, mut too_large) = (Vec::new(), Vec::new());
        while !batch.is_empty() {
            let rest = batch.split_off(batch.len().min(SPANS_PER_ITEM));
            let chunk = std::mem::replace(&mut batch, rest);
            for rs in group_spans_by_resource_and_scope(chunk, &resource) {
                let (fit, over) = Self::split_to_fit(rs);
                items.extend(fit);
                too_large.extend(over);
            }
        }
        (items, too_large)
    }

    /// Encodes `ResourceSpans`, halving its spans (keeping resource and scope) until each
    /// part fits one request. Returns the parts that fit, and single spans that do not.
    pub fn split_to_fit(resource_spans: ResourceSpans) -> (Vec<OtlpSpans>, Vec<OtlpSpans>) {
        let (mut fit, mut over) = (Vec::new(), Vec::new());
        let mut pending = vec![resource_spans];
        while let Some(mut rs) = pending.pop() {
            let len = rs.encoded_len();
            let spans: usize = rs.scope_spans.iter().map(|s| s.spans.len()).sum();
            if 1 + encoded_len_varint(len as u64) + len <= MAX_REQUEST_BYTES
                && spans <= MAX_SPANS_PER_REQUEST
            {
                fit.push(OtlpSpans::from_resource_spans(&rs));
            } else if spans <= 1 {
                over.push(OtlpSpans::from_resource_spans(&rs));
            } else {
                // Move the second half of the spans (by scope) into a copy.
                let mut second = ResourceSpans {
                    resource: rs.resource.clone(),
                    scope_spans: Vec::new(),
                    schema_url: rs.schema_url.clone(),
                };
                let mut keep = spans / 2;
                for scope in &mut rs.scope_spans {
                    let moved = scope.spans.split_off(keep.min(scope.spans.len()));
                    keep = keep.saturating_sub(scope.spans.len());
                    if !moved.is_empty() {
                        second.scope_spans.push(ScopeSpans {
                            scope: scope.scope.clone(),
                            spans: moved,
                            schema_url: scope.schema_url.clone(),
                        });
                    }
                }
                rs.scope_spans.retain(|s| !s.spans.is_empty());
                pending.push(second);
                pending.push(rs);
            }
        }
        (fit, over)
    }

    /// Spans inside.
    pub fn span_count(&self) -> u32 {
        self.spans
    }

    /// The encoded `ResourceSpans` message.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Bytes this item adds to a request body (field key, length, message).
    fn framed_len(&self) -> usize {
        1 + encoded_len_varint(self.bytes.len() as u64) + self.bytes.len()
    }
}

impl Item for OtlpSpans {
    fn size(&self) -> usize {
        self.bytes.len()
    }

    fn spans(&self) -> u64 {
        u64::from(self.spans)
    }

    fn write_record(&self, out: &mut Vec<u8>) -> bool {
        match self.first_trace {
            Some(t) => {
                out.push(1);
                out.extend_from_slice(&t);
            }
            None => out.push(0),
        }
        out.extend_from_slice(&self.bytes);
        true
    }

    fn read_record(bytes: &[u8], spans: u32) -> Option<Self> {
        let (first_trace, rest) = match bytes.split_first()? {
            (1, rest) if rest.len() >= 16 => (Some(rest[..16].try_into().ok()?), &rest[16..]),
            (0, rest) => (None, rest),
            _ => return None,
        };
        // Only well-formed messages come back (a damaged record would be refused by
        // the endpoint as a whole request).
        ResourceSpans::decode(rest).ok()?;
        Some(OtlpSpans {
            bytes: rest.to_vec(),
            spans,
            first_trace,
        })
    }

    fn describe(&self) -> String {
        match self.first_trace {
            Some(t) => format!(
                "{} span(s), first trace {}",
                self.spans,
                xray_model::TraceId::from_bytes(t)
            ),
            None => format!("{} span(s)", self.spans),
        }
    }
}

/// Frames items as the repeated `resource_spans` field (number 1) of an
/// `ExportTraceServiceRequest`: concatenated fields are a valid message.
fn request_body(items: &[OtlpSpans]) -> Vec<u8> {
    let mut body = Vec::with_capacity(items.iter().map(OtlpSpans::framed_len).sum());
    for item in items {
        encode_key(1, WireType::LengthDelimited, &mut body);
        encode_varint(item.bytes.len() as u64, &mut body);
        body.extend_from_slice(&item.bytes);
    }
    body
}

/// Whether requests are signed with SigV4.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OtlpSigning {
    /// Always, for service `xray` (the X-Ray OTLP endpoint, also behind a custom URL).
    #[default]
    SigV4,
    /// Only when the URL's host is an AWS endpoint (`*.amazonaws.com`,
    /// `*.amazonaws.com.cn`), for the service its host names; never for other hosts.
    Auto,
}

impl OtlpSigning {
    /// Whether requests to `url` (`None`: the X-Ray OTLP endpoint of the region) are
    /// signed.
    ///
    /// ```
    /// use xray_export::transport::otlp::OtlpSigning;
    /// assert!(OtlpSigning::Auto.signs(Some("https://xray.us-east-1.amazonaws.com/v1/traces")));
    /// assert!(!OtlpSigning::Auto.signs(Some("http://127.0.0.1:4318/v1/traces")));
    /// assert!(!OtlpSigning::Auto.signs(Some("https://api.honeycomb.io/v1/traces")));
    /// assert!(OtlpSigning::SigV4.signs(Some("http://127.0.0.1:4318/v1/traces")));
    /// assert!(OtlpSigning::Auto.signs(None));
    /// ```
    pub fn signs(self, url: Option<&str>) -> bool {
        match self {
            OtlpSigning::SigV4 => true,
            OtlpSigning::Auto => url.is_none_or(|u| aws_endpoint(u).is_some()),
        }
    }
}

/// How request bodies are compressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OtlpCompression {
    /// Sent as they are.
    #[default]
    None,
    /// gzip, with `content-encoding: gzip`.
    Gzip,
}

/// Settings for [`OtlpTransport`].
#[derive(Clone, Default)]
pub struct OtlpConfig {
    /// The `aws-config` configuration (ready, or loaded on first use: `SdkConfig::into`);
    /// loaded from the environment when `None` (only when requests are signed).
    pub sdk_config: Option<LazySdkConfig>,
    /// Overrides the region used for the endpoint and the signature.
    pub region: Option<String>,
    /// Overrides the endpoint (default `https://xray.<region>.amazonaws.com/v1/traces`).
    pub endpoint_url: Option<String>,
    /// Whether requests are signed (default: always, for the X-Ray OTLP endpoint).
    pub signing: OtlpSigning,
    /// Body compression (default none).
    pub compression: OtlpCompression,
    /// Extra request headers (e.g. a vendor's API key). Their values are never logged.
    pub headers: Vec<(String, String)>,
    /// The HTTP client (e.g. with a proxy), built on the first call; a plain one when
    /// `None`.
    pub http_client: Option<LazyHttpClient>,
}

impl fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values carry API keys: only their names are shown.
        let headers: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("OtlpConfig")
            .field("sdk_config", &self.sdk_config.is_some())
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("signing", &self.signing)
            .field("compression", &self.compression)
            .field("headers", &headers)
            .field("http_client", &self.http_client.is_some())
            .finish()
    }
}

/// The SigV4 service and region of an AWS endpoint URL
/// (`https://xray.us-west-2.amazonaws.com/v1/traces` -> `("xray", Some("us-west-2"))`),
/// or `None` for any other host.
///
/// ```
/// use xray_export::transport::otlp::aws_endpoint;
/// assert_eq!(aws_endpoint("https://xray.eu-west-1.amazonaws.com/v1/traces"), Some(("xray".into(), Some("eu-west-1".into()))));
/// assert_eq!(aws_endpoint("https://xray-fips.us-gov-west-1.amazonaws.com/v1/traces"), Some(("xray".into(), Some("us-gov-west-1".into()))));
/// assert_eq!(aws_endpoint("http://127.0.0.1:4318/v1/traces"), None);
/// assert_eq!(aws_endpoint("https://amazonaws.com.example.org/v1/traces"), None);
/// ```
pub fn aws_endpoint(url: &str) -> Option<(String, Option<String>)> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    let base = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    let mut labels = base.split('.');
    // A FIPS endpoint (`xray-fips.`) signs for its service (`xray`).
    let service = labels.next().filter(|s| !s.is_empty())?;
    let service = service.strip_suffix("-fips").unwrap_or(service).to_owned();
    let region = labels
        .find(|l| l.matches('-').count() >= 2)
        .map(str::to_owned);
    Some((service, region))
}

struct Ready {
    http: reqwest::Client,
    url: String,
    signer: Option<Signer>,
    compression: OtlpCompression,
    headers: Vec<(String, String)>,
}

/// Posts OTLP spans to the X-Ray OTLP endpoint, signed with SigV4 (`xray`), at most
/// 10,000 spans and 5 MB per request; 429 and 5xx answers, timeouts and connection
/// errors are retried with backoff, other answers drop the request's spans as rejected.
pub struct OtlpTransport {
    config: OtlpConfig,
    ready: Option<Ready>,
}

impl OtlpTransport {
    /// A transport that loads its configuration on first use, in the worker.
    pub fn new(config: OtlpConfig) -> Self {
        OtlpTransport {
            config,
            ready: None,
        }
    }

    async fn ready(&mut self) -> Result<&mut Ready, String> {
        if self.ready.is_none() {
            let configured = self.config.endpoint_url.clone();
            let endpoint = configured.as_deref().and_then(aws_endpoint);
            let sign = self.config.signing.signs(configured.as_deref());
            let signer = if sign {
                let sdk = sdk_config(self.config.sdk_config.as_ref()).await;
                let host_region = endpoint.as_ref().and_then(|(_, r)| r.clone());
                let region = self
                    .config
                    .region
                    .clone()
                    .or(host_region)
                    .or_else(|| sdk.region().map(|r| r.to_string()))
                    .ok_or("no AWS region configured (set AWS_REGION)")?;
                let service = match (self.config.signing, &endpoint) {
                    (OtlpSigning::Auto, Some((service, _))) => service.clone(),
                    _ => "xray".to_owned(),
                };
                Some(Signer::new(sdk.credentials_provider(), region, service))
            } else {
                None
            };
            let url = match (configured, &signer) {
                (Some(url), _) => url,
                (None, Some(signer)) => {
                    format!("{}/v1/traces", regional_endpoint(signer.region()))
                }
                (None, None) => return Err("no OTLP endpoint configured".to_owned()),
            };
            let http = client_or_default(self.config.http_client.as_ref())?;
            self.ready = Some(Ready {
                http,
                url,
                signer,
                compression: self.config.compression,
                headers: self.config.headers.clone(),
            });
        }
        Ok(self.ready.as_mut().expect("set above"))
    }

    async fn send_batch(&mut self, batch: Vec<OtlpSpans>, cx: &SendContext) {
        let ready = match self.ready().await {
            Ok(ready) => ready,
            Err(e) => {
                cx.send_error();
                cx.dropped(&batch, DropReason::TransportUnavailable, &e);
                return;
            }
        };
        let mut request: Vec<OtlpSpans> = Vec::new();
        let (mut spans, mut bytes) = (0usize, 0usize);
        for item in batch {
            let (s, b) = (item.spans as usize, item.framed_len());
            if s > MAX_SPANS_PER_REQUEST || b > MAX_REQUEST_BYTES {
                cx.dropped(
                    [&item],
                    DropReason::TooLarge,
                    &"over the OTLP endpoint's request limits",
                );
                continue;
            }
            if !request.is_empty()
                && (spans + s > MAX_SPANS_PER_REQUEST || bytes + b > MAX_REQUEST_BYTES)
            {
                post(ready, std::mem::take(&mut request), cx).await;
                (spans, bytes) = (0, 0);
            }
            spans += s;
            bytes += b;
            request.push(item);
        }
        if !request.is_empty() {
            post(ready, request, cx).await;
        }
    }
}

impl Transport<OtlpSpans> for OtlpTransport {
    fn name(&self) -> &'static str {
        match self.config.signing {
            OtlpSigning::SigV4 => "xray-otlp",
            OtlpSigning::Auto => "otlp",
        }
    }

    fn linger(&self) -> Duration {
        Duration::from_millis(20)
    }

    fn batch_limit(&self) -> usize {
        64
    }

    fn send<'a>(&'a mut self, batch: Vec<OtlpSpans>, cx: &'a SendContext) -> SendFuture<'a> {
        Box::pin(self.send_batch(batch, cx))
    }
}

/// The body as sent: compressed when configured.
fn encode_body(body: Vec<u8>, compression: OtlpCompression) -> Result<Vec<u8>, String> {
    match compression {
        OtlpCompression::None => Ok(body),
        OtlpCompression::Gzip => {
            use std::io::Write as _;
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 4 + 64),
                flate2::Compression::fast(),
            );
            encoder
                .write_all(&body)
                .and_then(|()| encoder.finish())
                .map_err(|e| format!("gzip: {e}"))
        }
    }
}

/// One request's items, through every attempt allowed.
async fn post(ready: &mut Ready, items: Vec<OtlpSpans>, cx: &SendContext) {
    let body = match encode_body(request_body(&items), ready.compression) {
        Ok(body) => body,
        Err(e) => {
            cx.dropped(&items, DropReason::Rejected, &e);
            return;
        }
    };
    let mut attempt = 1;
    let first_try = Instant::now();
    loop {
        let cause = match attempt_post(ready, &body, cx).await {
            Ok(rejected) => {
                items.iter().for_each(|i| cx.delivered(i));
                if let Some((n, message)) = rejected {
                    cx.metrics().record_dropped_spans(DropReason::Rejected, n);
                    tracing::warn!(
                        target: "xray_export",
                        rejected_spans = n,
                        "X-Ray OTLP endpoint rejected {n} span(s): {message}"
                    );
                }
                return;
            }
            Err(Failure::Fatal(reason, cause)) => {
                cx.dropped(&items, reason, &cause);
                return;
            }
            Err(Failure::Retryable(cause)) => cause,
        };
        match cx.next_retry(attempt, first_try) {
            Some(wait) => {
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            None => {
                cx.dropped(&items, DropReason::RetriesExhausted, &cause);
                return;
            }
        }
    }
}

enum Failure {
    Retryable(String),
    Fatal(DropReason, String),
}

/// Returns the partial-success rejection, if any.
async fn attempt_post(
    ready: &mut Ready,
    body: &[u8],
    cx: &SendContext,
) -> Result<Option<(u64, String)>, Failure> {
    let mut headers = vec![("content-type", "application/x-protobuf")];
    if ready.compression == OtlpCompression::Gzip {
        headers.push(("content-encoding", "gzip"));
    }
    let signed = match &ready.signer {
        Some(signer) => signer
            .sign_post(&ready.url, &headers, body)
            .await
            .map_err(|e| Failure::Fatal(DropReason::TransportUnavailable, e.to_string()))?,
        None => Vec::new(),
    };
    let mut request = ready
        .http
        .post(&ready.url)
        .timeout(cx.retry_policy().request_timeout)
        .body(body.to_vec());
    for (k, v) in headers {
        request = request.header(k, v);
    }
    for (k, v) in &ready.headers {
        request = request.header(k.as_str(), v.as_str());
    }
    for (k, v) in signed {
        request = request.header(k, v);
    }
    cx.request();
    let started = Instant::now();
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            cx.metrics().record_call(started.elapsed());
            cx.send_error();
            return Err(Failure::Retryable(format!("{}: {e}", ready.url)));
        }
    };
    let status = response.status();
    let bytes = response.bytes().await.unwrap_or_default();
    cx.metrics().record_call(started.elapsed());
    if status.is_success() {
        let rejected = ExportTraceServiceResponse::decode(bytes.as_ref())
            .ok()
            .and_then(|r| r.partial_success)
            .filter(|p| p.rejected_spans > 0)
            .map(|p| (p.rejected_spans as u64, p.error_message));
        return Ok(rejected);
    }
    cx.send_error();
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
    let cause = format!("{} answered {status}: {text}", ready.url);
    if status.as_u16() == 429 || status.is_server_error() || status.as_u16() == 408 {
        Err(Failure::Retryable(cause))
    } else {
        Err(Failure::Fatal(DropReason::Rejected, cause))
    }
}

impl std::fmt::Debug for OtlpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpTransport").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::Span;

    fn resource_spans(n: usize, trace: u8) -> ResourceSpans {
        ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: (0..n)
                    .map(|i| Span {
                        trace_id: vec![trace; 16],
                        span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                        name: format!("span {i}"),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn oversized_resource_spans_are_halved_until_they_fit() {
        let mut rs = resource_spans(12, 3);
        for span in &mut rs.scope_spans[0].spans {
            span.name = "n".repeat(1024 * 1024);
        }
        let mut huge = resource_spans(1, 4);
        huge.scope_spans[0].spans[0].name = "n".repeat(6 * 1024 * 1024);
        rs.scope_spans.push(huge.scope_spans.remove(0));
        let (fit, over) = OtlpSpans::split_to_fit(rs);
        assert_eq!(over.len(), 1, "the 6 MB span cannot fit");
        assert_eq!(fit.iter().map(|f| f.span_count()).sum::<u32>(), 12);
        assert!(fit.len() >= 3);
        assert!(fit.iter().all(|f| f.framed_len() <= MAX_REQUEST_BYTES));
    }

    #[test]
    fn concatenated_items_decode_as_one_request() {
        let a = OtlpSpans::from_resource_spans(&resource_spans(3, 1));
        let b = OtlpSpans::from_resource_spans(&resource_spans(400, 2));
        let body = request_body(&[a.clone(), b.clone()]);
        assert_eq!(body.len(), a.framed_len() + b.framed_len());
        let decoded = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        assert_eq!(
            decoded.resource_spans,
            vec![resource_spans(3, 1), resource_spans(400, 2)]
        );
        assert!(
            a.describe().contains("1-01010101-010101010101010101010101"),
            "{}",
            a.describe()
        );
    }
}
