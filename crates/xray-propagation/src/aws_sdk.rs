//! AWS SDK for Rust: an interceptor that turns every SDK call into a Client span that the
//! translator writes as an `aws` subsegment, and sends `X-Amzn-Trace-Id` with each attempt.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::{Headers, Response};
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use aws_types::region::{Region, SigningRegion};
use opentelemetry::propagation::TextMapPropagator;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::choice::PropagatorChoice;
use crate::{HEADER_FIELD, XrayPropagator};

/// Request bodies larger than this are not searched for table names or queue URLs.
const MAX_BODY_SCAN: usize = 256 * 1024;

/// An AWS SDK interceptor: every operation becomes an INFO `tracing` span of kind Client
/// named `Service.Operation`, with `rpc.system=aws-api`, `rpc.service`, `rpc.method`,
/// `aws.region`, `aws.request_id`, `aws.dynamodb.table_names` (DynamoDB),
/// `aws.sqs.queue.url` (SQS), `http.response.status_code`, `http.request.resend_count`
/// (retries) and, on failure, `otel.status_code=ERROR` with `error.type` (the AWS error
/// code, e.g. `ThrottlingException`). Each attempt carries the headers of OpenTelemetry's
/// global propagator (so `OTEL_PROPAGATORS` applies) or of the one given to
/// [`with_propagator`](Self::with_propagator), naming the span as its parent, and always
/// `X-Amzn-Trace-Id`: AWS services read no other.
///
/// # Examples
///
/// ```
/// use xray_propagation::aws_sdk::XrayInterceptor;
///
/// // Usually `aws_sdk_dynamodb::config::Builder::from(&aws_config::load_from_env().await)`.
/// let config = aws_sdk_dynamodb::Config::builder()
///     .behavior_version_latest()
///     .region(aws_sdk_dynamodb::config::Region::new("eu-west-1"))
///     .interceptor(XrayInterceptor::new())
///     .build();
/// let client = aws_sdk_dynamodb::Client::from_conf(config);
/// ```
#[derive(Debug, Clone, Default)]
pub struct XrayInterceptor {
    propagator: PropagatorChoice,
}

impl XrayInterceptor {
    /// An interceptor with the default behaviour described on the type.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes headers with `propagator` instead of the global one (`X-Amzn-Trace-Id` is
    /// added when it writes none).
    pub fn with_propagator(
        mut self,
        propagator: impl opentelemetry::propagation::TextMapPropagator + Send + Sync + 'static,
    ) -> Self {
        self.propagator = PropagatorChoice::own(propagator);
        self
    }
}

/// What one SDK call carries between hooks.
#[derive(Debug, Clone)]
struct CallState {
    span: Arc<Mutex<Option<Span>>>,
    attempts: Arc<AtomicU32>,
}

impl Storable for CallState {
    type Storer = StoreReplace<Self>;
}

impl CallState {
    fn span(&self) -> Option<Span> {
        self.span.lock().ok().and_then(|s| s.clone())
    }
}

impl Intercept for XrayInterceptor {
    fn name(&self) -> &'static str {
        "XrayInterceptor"
    }

    // Not `read_before_execution`: for interceptors set on the client config, that hook
    // runs before the operation's configuration (service and operation names) is loaded.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_owned(), m.name().to_owned()))
            .unwrap_or_else(|| ("AWS".to_owned(), "Unknown".to_owned()));
        let region = cfg
            .load::<Region>()
            .map(|r| r.as_ref().to_owned())
            .or_else(|| cfg.load::<SigningRegion>().map(|r| r.as_ref().to_owned()));
        let span = tracing::info_span!(
            "AWS SDK call",
            otel.name = %format_args!("{service}.{operation}"),
            otel.kind = "client",
            otel.status_code = Empty,
            otel.status_description = Empty,
            rpc.system = "aws-api",
            rpc.service = %service,
            rpc.method = %operation,
            aws.region = Empty,
            aws.request_id = Empty,
            aws.sqs.queue.url = Empty,
            http.request.method = Empty,
            url.full = Empty,
            server.address = Empty,
            http.response.status_code = Empty,
            http.request.resend_count = Empty,
            error.type = Empty,
        );
        if let Some(region) = region {
            span.record("aws.region", region);
        }
        cfg.interceptor_state().store_put(CallState {
            span: Arc::new(Mutex::new(Some(span))),
            attempts: Arc::new(AtomicU32::new(0)),
        });
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(state) = cfg.load::<CallState>() {
            state.attempts.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    // The endpoint is resolved inside the attempt, so the request's target is known here,
    // after signing (SigV4 does not sign `X-Amzn-Trace-Id`).
    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(state) = cfg.load::<CallState>() else {
            return Ok(());
        };
        let Some(span) = state.span() else {
            return Ok(());
        };
        if state.attempts.load(Ordering::Relaxed) <= 1 {
            let service = cfg
                .load::<Metadata>()
                .map(|m| m.service().to_ascii_lowercase())
                .unwrap_or_default();
            record_target(&span, context.request(), &service);
        }
        let cx = span.context();
        let mut carrier = Fields::default();
        self.propagator
            .with(|p| p.inject_context(&cx, &mut carrier));
        if !carrier
            .0
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(HEADER_FIELD))
        {
            XrayPropagator::new().inject_context(&cx, &mut carrier);
        }
        let headers = context.request_mut().headers_mut();
        for (key, value) in carrier.0 {
            // Replaces what the SDK's recursion detection copied from `_X_AMZN_TRACE_ID`:
            // the span is the more precise parent. A value that is no valid header is not
            // sent rather than failing the call.
            let _ = headers.try_insert(key, value);
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(state) = cfg.load::<CallState>() else {
            return Ok(());
        };
        // Taking the span out of the shared slot ends it when this hook returns.
        let Some(span) = state.span.lock().ok().and_then(|mut s| s.take()) else {
            return Ok(());
        };
        // Recorded once: attributes recorded twice would appear twice on the span.
        let resends = state.attempts.load(Ordering::Relaxed).saturating_sub(1);
        if resends > 0 {
            span.record("http.request.resend_count", resends);
        }
        let response = context.response();
        if let Some(response) = response {
            span.record("http.response.status_code", response.status().as_u16());
            if let Some(id) = request_id(response.headers()) {
                span.record("aws.request_id", id);
            }
        }
        if let Some(Err(error)) = context.output_or_error() {
            let kind = if let Some(code) = response.and_then(error_code) {
                code
            } else if error.is_timeout_error() {
                "timeout".to_owned()
            } else if error.is_connector_error() {
                "connector".to_owned()
            } else if error.is_response_error() {
                "response".to_owned()
            } else {
                "_OTHER".to_owned()
            };
            span.record("otel.status_code", "ERROR");
            span.record("otel.status_description", error.to_string());
            span.record("error.type", kind);
        }
        Ok(())
    }
}

/// What the request says about its target: method, URL, host, and the DynamoDB tables
/// or SQS queue its body names.
fn record_target(span: &Span, request: &aws_smithy_runtime_api::http::Request, service: &str) {
    span.record("http.request.method", request.method());
    span.record("url.full", request.uri());
    if let Ok(uri) = request.uri().parse::<http::Uri>()
        && let Some(host) = uri.host()
    {
        span.record("server.address", host);
    }
    let Some(body) = request.body().bytes().filter(|b| b.len() <= MAX_BODY_SCAN) else {
        return;
    };
    if service.starts_with("dynamodb") {
        let tables = dynamodb_table_names(body);
        if !tables.is_empty() {
            span.set_attribute(
                "aws.dynamodb.table_names",
                opentelemetry::Value::Array(tables.into()),
            );
        }
    } else if service.starts_with("sqs")
        && let Some(url) = sqs_queue_url(body)
    {
        span.record("aws.sqs.queue.url", url.as_str());
    }
}

/// An injector that collects what a propagator writes.
#[derive(Default)]
struct Fields(Vec<(String, String)>);

impl opentelemetry::propagation::Injector for Fields {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_owned(), value));
    }
}

fn request_id(headers: &Headers) -> Option<&str> {
    ["x-amzn-requestid", "x-amzn-request-id", "x-amz-request-id"]
        .into_iter()
        .find_map(|name| headers.get(name))
}

/// The AWS error code of a failed response: the `x-amzn-errortype` header, a JSON
/// `__type`/`code`, or an XML `<Code>`.
fn error_code(response: &Response) -> Option<String> {
    if let Some(t) = response.headers().get("x-amzn-errortype") {
        let code = t.split(':').next().unwrap_or(t).trim();
        if !code.is_empty() {
            return Some(code.to_owned());
        }
    }
    let body = response
        .body()
        .bytes()
        .filter(|b| b.len() <= MAX_BODY_SCAN)?;
    let code = if body.first() == Some(&b'{') {
        let json: serde_json::Value = serde_json::from_slice(body).ok()?;
        json.get("__type")
            .or_else(|| json.get("code"))
            .and_then(|v| v.as_str())
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
    } else {
        let text = std::str::from_utf8(body).ok()?;
        let start = text.find("<Code>")? + "<Code>".len();
        let end = text[start..].find("</Code>")? + start;
        Some(text[start..end].trim().to_owned())
    };
    code.filter(|c| !c.is_empty())
}

/// Table names a DynamoDB request body names: `TableName`, the keys of `RequestItems`
/// (batch operations) and the tables of `TransactItems`, without repeats.
fn dynamodb_table_names(body: &[u8]) -> Vec<opentelemetry::StringValue> {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let mut names: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        if !name.is_empty() && !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    };
    if let Some(name) = json.get("TableName").and_then(|v| v.as_str()) {
        add(name);
    }
    if let Some(items) = json.get("RequestItems").and_then(|v| v.as_object()) {
        items.keys().for_each(|k| add(k));
    }
    if let Some(items) = json.get("TransactItems").and_then(|v| v.as_array()) {
        for item in items.iter().filter_map(|i| i.as_object()) {
            for action in item.values() {
                if let Some(name) = action.get("TableName").and_then(|v| v.as_str()) {
                    add(name);
                }
            }
        }
    }
    names.into_iter().map(Into::into).collect()
}

/// The `QueueUrl` of an SQS request, in the JSON protocol or the older query protocol.
fn sqs_queue_url(body: &[u8]) -> Option<String> {
    if body.first() == Some(&b'{') {
        let json: serde_json::Value = serde_json::from_slice(body).ok()?;
        return json.get("QueueUrl")?.as_str().map(str::to_owned);
    }
    form_urlencoded::parse(body)
        .find(|(key, _)| key == "QueueUrl")
        .map(|(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_from_single_batch_and_transact_requests() {
        let names = |body: &str| -> Vec<String> {
            dynamodb_table_names(body.as_bytes())
                .into_iter()
                .map(|s| s.to_string())
                .collect()
        };
        assert_eq!(names(r#"{"TableName":"users","Key":{}}"#), ["users"]);
        assert_eq!(names(r#"{"RequestItems":{"a":{},"b":{}}}"#), ["a", "b"]);
        assert_eq!(
            names(
                r#"{"TransactItems":[{"Put":{"TableName":"a"}},{"Update":{"TableName":"b"}},{"Delete":{"TableName":"a"}}]}"#
            ),
            ["a", "b"]
        );
        assert!(names("not json").is_empty());
        assert!(names(r#"{"TableName":5}"#).is_empty());
    }

    #[test]
    fn queue_url_from_json_and_query_protocols() {
        let url = "https://sqs.us-east-1.amazonaws.com/123456789012/q";
        assert_eq!(
            sqs_queue_url(format!(r#"{{"QueueUrl":"{url}"}}"#).as_bytes()).as_deref(),
            Some(url)
        );
        assert_eq!(
            sqs_queue_url(b"Action=SendMessage&QueueUrl=https%3A%2F%2Fsqs.us-east-1.amazonaws.com%2F123456789012%2Fq&MessageBody=x")
                .as_deref(),
            Some(url)
        );
        assert_eq!(sqs_queue_url(b"Action=ListQueues"), None);
        assert_eq!(sqs_queue_url(b"QueueUrl=a%2").as_deref(), Some("a%2"));
        assert_eq!(sqs_queue_url(b"QueueUrl=a%zz+b").as_deref(), Some("a%zz b"));
    }
}
