//! Realistic span batches: each request is a Server span with four Client children (a
//! DynamoDB call, an HTTP call, a SQL query and an HTTP call that failed with 500 and an
//! exception). Chosen so that opentelemetry-aws 0.21 translates every span too: roots are
//! Server spans, names carry no `{}`/`()`, errors have Error status, ids and times are
//! current.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

/// Spans per request (one server span, four children).
pub const SPANS_PER_REQUEST: usize = 5;

/// The resource of an ECS Fargate service.
pub fn resource() -> Resource {
    Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", "checkout"),
            KeyValue::new("service.version", "1.4.2"),
            KeyValue::new("telemetry.sdk.name", "opentelemetry"),
            KeyValue::new("telemetry.sdk.language", "rust"),
            KeyValue::new("telemetry.sdk.version", "0.33.0"),
            KeyValue::new("cloud.provider", "aws"),
            KeyValue::new("cloud.platform", "aws_ecs"),
            KeyValue::new("cloud.region", "eu-west-1"),
            KeyValue::new("aws.ecs.launchtype", "fargate"),
            KeyValue::new(
                "aws.ecs.task.arn",
                "arn:aws:ecs:eu-west-1:123456789012:task/c/abc",
            ),
            KeyValue::new("container.id", "abc123"),
        ])
        .build()
}

/// Fields `tracing-opentelemetry` puts on every span.
fn tracing_fields(attrs: &mut Vec<KeyValue>) {
    attrs.extend([
        KeyValue::new("code.filepath", "src/handlers/cart.rs"),
        KeyValue::new("code.namespace", "checkout::handlers::cart"),
        KeyValue::new("code.lineno", 42),
        KeyValue::new("thread.id", 7),
        KeyValue::new("thread.name", "tokio-runtime-worker"),
        KeyValue::new("busy_ns", 81_234),
        KeyValue::new("idle_ns", 1_234_567),
    ]);
}

struct Ids {
    trace: TraceId,
    parent: SpanId,
    start: SystemTime,
}

fn span(
    ids: &Ids,
    id: u64,
    kind: SpanKind,
    name: &'static str,
    mut attributes: Vec<KeyValue>,
) -> SpanData {
    tracing_fields(&mut attributes);
    SpanData {
        span_context: SpanContext::new(
            ids.trace,
            SpanId::from(id),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: ids.parent,
        parent_span_is_remote: kind == SpanKind::Server,
        span_kind: kind,
        name: Cow::Borrowed(name),
        start_time: ids.start,
        end_time: ids.start + Duration::from_millis(20),
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: Default::default(),
    }
}

/// The five spans of request `n`.
fn request(n: u64, start: SystemTime) -> [SpanData; SPANS_PER_REQUEST] {
    let epoch = start
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as u128;
    let trace = TraceId::from((epoch << 96) | 0xbd86_2e3f_e1be_46a9_0000_0000 | u128::from(n));
    let server_id = 0x5399_0000_0000_0000 | (n << 8);
    let root = Ids {
        trace,
        parent: SpanId::from(0x0102_0304_0506_0708),
        start,
    };
    let child = Ids {
        trace,
        parent: SpanId::from(server_id),
        start: start + Duration::from_millis(1),
    };
    let server = span(
        &root,
        server_id,
        SpanKind::Server,
        "GET /cart",
        vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("url.scheme", "https"),
            KeyValue::new("server.address", "shop.example.com"),
            KeyValue::new("url.path", "/cart/42"),
            KeyValue::new("http.route", "/cart/:id"),
            KeyValue::new("http.response.status_code", 200),
            KeyValue::new("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)"),
            KeyValue::new("client.address", "203.0.113.9"),
        ],
    );
    let dynamo = span(
        &child,
        server_id + 1,
        SpanKind::Client,
        "DynamoDB.GetItem",
        vec![
            KeyValue::new("rpc.system", "aws-api"),
            KeyValue::new("rpc.service", "DynamoDB"),
            KeyValue::new("rpc.method", "GetItem"),
            KeyValue::new("aws.region", "eu-west-1"),
            KeyValue::new(
                "aws.request_id",
                "V7A1PQ3H6B0KQ2VQ4LUN2OJ4VNVV4KQNSO5AEMVJF66Q9ASUAAJG",
            ),
            KeyValue::new(
                "aws.dynamodb.table_names",
                Value::Array(Array::String(vec![StringValue::from("carts")])),
            ),
            KeyValue::new("http.response.status_code", 200),
        ],
    );
    let http = span(
        &child,
        server_id + 2,
        SpanKind::Client,
        "GET",
        vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("url.full", "https://prices.internal:8443/v1/prices/42"),
            KeyValue::new("server.address", "prices.internal"),
            KeyValue::new("server.port", 8443),
            KeyValue::new("http.response.status_code", 200),
        ],
    );
    let sql = span(
        &child,
        server_id + 3,
        SpanKind::Client,
        "SELECT shop.carts",
        vec![
            KeyValue::new("db.system.name", "postgresql"),
            KeyValue::new("db.namespace", "shop"),
            KeyValue::new("db.query.text", "SELECT * FROM carts WHERE id = $1"),
            KeyValue::new("server.address", "db.internal"),
            KeyValue::new("server.port", 5432),
            KeyValue::new("db.user", "shop"),
        ],
    );
    let mut failed = span(
        &child,
        server_id + 4,
        SpanKind::Client,
        "POST",
        vec![
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new("url.full", "https://payments.internal/v1/charge"),
            KeyValue::new("server.address", "payments.internal"),
            KeyValue::new("http.response.status_code", 500),
        ],
    );
    failed.status = Status::error("upstream returned 500");
    failed.events.events.push(Event::new(
        "exception",
        child.start + Duration::from_millis(5),
        vec![
            KeyValue::new("exception.type", "reqwest::Error"),
            KeyValue::new("exception.message", "HTTP status server error (500)"),
            KeyValue::new(
                "exception.stacktrace",
                "   0: checkout::payments::charge\n             at src/payments.rs:88:14\n   1: checkout::handlers::cart::checkout\n             at src/handlers/cart.rs:57:9\n",
            ),
        ],
        0,
    ));
    [server, dynamo, http, sql, failed]
}

/// `len` spans: whole requests, the last one cut short when `len` is not a multiple of 5.
pub fn batch(len: usize) -> Vec<SpanData> {
    let start = SystemTime::now() - Duration::from_secs(1);
    (0..len.div_ceil(SPANS_PER_REQUEST) as u64)
        .flat_map(|n| request(n, start))
        .take(len)
        .collect()
}
