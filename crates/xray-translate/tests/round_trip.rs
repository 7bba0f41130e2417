//! Round trips between OpenTelemetry and X-Ray through the translator and its inverse
//! (`xray_translate::reverse`):
//! - an arbitrary OTLP span tree, translated to documents (nested as the SDKs send them,
//!   written and read back as JSON) and converted back, gives the same spans in every
//!   field X-Ray can carry;
//! - the documents of the real X-Ray SDK for Python, converted to OTLP and translated
//!   again, give the same documents, up to the differences listed in
//!   [`normalize_sdk_document`].
//!
//! (`conformance.rs` also converts every document of its table back and checks it comes
//! back byte for byte.)

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span, Status};
use proptest::prelude::*;
use serde_json::Value as Json;
use xray_model::{Segment, nest_subsegments};
use xray_translate::reverse::to_otlp;
use xray_translate::{Translator, TranslatorConfig};

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

/// Translates OTLP spans of one resource and scope into documents, nests them, and sends
/// them through their JSON text, as a receiver of daemon datagrams sees them.
fn translate(
    translator: &Translator,
    resource: &Resource,
    scope: &InstrumentationScope,
    spans: &[Span],
) -> Vec<Segment<'static>> {
    let prepared = translator.prepare_otlp(Some(resource));
    let docs: Vec<Segment<'_>> = spans
        .iter()
        .map(|span| prepared.translate_otlp(span, Some(scope)))
        .collect();
    nest_subsegments(docs)
        .iter()
        .map(|doc| serde_json::from_str(&doc.to_json()).expect("our documents parse"))
        .collect()
}

// ---------------------------------------------------------------------------------------
// OTLP -> documents -> OTLP

/// A value X-Ray metadata can hold (finite numbers; arrays and maps of scalars).
fn metadata_value() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        "[ -~]{0,20}".prop_map(Value::StringValue),
        any::<i64>().prop_map(Value::IntValue),
        (-1e9f64..1e9).prop_map(Value::DoubleValue),
        any::<bool>().prop_map(Value::BoolValue),
    ];
    prop_oneof![
        3 => scalar.clone(),
        1 => proptest::collection::vec("[a-z]{0,6}", 0..3).prop_map(|items| {
            Value::ArrayValue(ArrayValue {
                values: items.iter().map(|i| AnyValue { value: Some(s(i)) }).collect(),
            })
        }),
        1 => proptest::collection::btree_map("[a-z]{1,5}", scalar, 0..3).prop_map(|m| {
            Value::KvlistValue(KeyValueList {
                values: m.into_iter().map(|(k, v)| kv(&k, v)).collect(),
            })
        }),
    ]
}

/// An annotation value (finite numbers).
fn annotation_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[a-zA-Z0-9 ]{0,20}".prop_map(Value::StringValue),
        any::<i64>().prop_map(Value::IntValue),
        (-1e6f64..1e6).prop_map(Value::DoubleValue),
        any::<bool>().prop_map(Value::BoolValue),
    ]
}

/// Free attributes (kept in `metadata.default`) and annotations (listed in
/// `aws.xray.annotations`).
fn free_attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    (
        proptest::collection::btree_map("app\\.[a-z]{1,8}", metadata_value(), 0..4),
        proptest::collection::btree_map("[a-z][a-z0-9_]{0,8}", annotation_value(), 0..4),
        proptest::option::of(proptest::collection::btree_map(
            "[a-z]{1,5}",
            metadata_value(),
            1..3,
        )),
    )
        .prop_map(|(free, annotations, namespace)| {
            let mut attrs: Vec<KeyValue> = free.into_iter().map(|(k, v)| kv(&k, v)).collect();
            if !annotations.is_empty() {
                let keys: Vec<String> = annotations.keys().cloned().collect();
                attrs.extend(annotations.into_iter().map(|(k, v)| kv(&k, v)));
                attrs.push(kv(
                    "aws.xray.annotations",
                    Value::ArrayValue(ArrayValue {
                        values: keys
                            .iter()
                            .map(|k| AnyValue { value: Some(s(k)) })
                            .collect(),
                    }),
                ));
            }
            if let Some(ns) = namespace {
                attrs.push(kv(
                    "aws.xray.metadata.custom",
                    Value::KvlistValue(KeyValueList {
                        values: ns.into_iter().map(|(k, v)| kv(&k, v)).collect(),
                    }),
                ));
            }
            attrs
        })
}

/// HTTP attributes with the status they imply: a 5xx (or an explicit failure) is an
/// Error status, a 4xx leaves it Unset.
#[derive(Debug, Clone)]
struct Http {
    attrs: Vec<KeyValue>,
    status: Option<i64>,
}

fn http(server: bool) -> impl Strategy<Value = Option<Http>> {
    proptest::option::of(
        (
            prop::sample::select(vec!["GET", "POST", "DELETE"]),
            "[a-z]{1,8}(/[a-z0-9]{1,6}){0,3}",
            proptest::option::of("[a-zA-Z/.0-9]{1,20}"),
            proptest::option::of((
                any::<bool>(),
                "(10|192)\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
            )),
            proptest::option::of(prop::sample::select(vec![
                200i64, 201, 302, 404, 429, 500, 503,
            ])),
            proptest::option::of(0i64..1_000_000),
        )
            .prop_map(move |(method, path, agent, client, status, size)| {
                let mut attrs = vec![
                    kv("http.request.method", s(method)),
                    kv("url.full", s(&format!("https://svc.example.com/{path}"))),
                ];
                if let Some(agent) = agent {
                    attrs.push(kv("user_agent.original", s(&agent)));
                }
                if server && let Some((forwarded, ip)) = client {
                    let key = if forwarded {
                        "http.client_ip"
                    } else {
                        "client.address"
                    };
                    attrs.push(kv(key, s(&ip)));
                }
                if let Some(status) = status {
                    attrs.push(kv("http.response.status_code", Value::IntValue(status)));
                }
                if let Some(size) = size {
                    attrs.push(kv("http.response.body.size", Value::IntValue(size)));
                }
                Http { attrs, status }
            }),
    )
}

/// Exception events: type, message and a Python stack trace of frames, written as the
/// converter writes them (the text is compared exactly).
/// An exception: type, message and frames (path, line, label), innermost first.
type GenException = (String, String, Vec<(String, u32, String)>);

fn exceptions() -> impl Strategy<Value = Vec<GenException>> {
    proptest::collection::vec(
        (
            "[A-Z][a-zA-Z]{0,10}Error",
            "[a-z][a-z ]{0,20}[a-z]",
            proptest::collection::vec(("[a-z/]{1,12}\\.py", 1u32..5000, "[a-z_]{1,10}"), 0..4),
        ),
        0..3,
    )
}

fn python_stack(kind: &str, message: &str, frames: &[(String, u32, String)]) -> String {
    let mut text = String::from("Traceback (most recent call last):\n");
    for (path, line, label) in frames.iter().rev() {
        text.push_str(&format!("  File \"{path}\", line {line}, in {label}\n"));
    }
    text.push_str(&format!("{kind}: {message}\n"));
    text
}

/// How a span ended: its status and exception events, consistent with its HTTP status
/// (the parts of a status X-Ray can carry).
fn outcome(
    http_status: Option<i64>,
    failed: bool,
    description: String,
    exceptions: Vec<GenException>,
    end: u64,
) -> (Option<Status>, Vec<Event>) {
    let events: Vec<Event> = exceptions
        .iter()
        .map(|(kind, message, frames)| {
            let mut attributes = vec![
                kv("exception.type", s(kind)),
                kv("exception.message", s(message)),
            ];
            if !frames.is_empty() {
                attributes.push(kv(
                    "exception.stacktrace",
                    s(&python_stack(kind, message, frames)),
                ));
            }
            Event {
                time_unix_nano: end,
                name: "exception".into(),
                attributes,
                ..Default::default()
            }
        })
        .collect();
    let error = |message: String| Status {
        code: StatusCode::Error as i32,
        message,
    };
    let first_message = exceptions.first().map(|e| e.1.clone());
    let status = match http_status {
        Some(500..=599) => Some(error(first_message.unwrap_or_default())),
        Some(400..=499) => None,
        _ if failed => Some(error(first_message.unwrap_or(description))),
        _ if !events.is_empty() => Some(Status {
            code: StatusCode::Ok as i32,
            message: String::new(),
        }),
        _ => None,
    };
    (status, events)
}

/// Other events, with their own times and attributes.
fn events(start: u64) -> impl Strategy<Value = Vec<Event>> {
    proptest::collection::vec(
        (
            "[a-z ]{1,10}",
            0u64..1_000_000,
            proptest::collection::btree_map("[a-z]{1,5}", metadata_value(), 0..3),
        ),
        0..3,
    )
    .prop_map(move |events| {
        events
            .into_iter()
            .map(|(name, micros, attrs)| Event {
                time_unix_nano: start + micros * 1000,
                name,
                attributes: attrs.into_iter().map(|(k, v)| kv(&k, v)).collect(),
                ..Default::default()
            })
            .collect()
    })
}

fn links() -> impl Strategy<Value = Vec<Link>> {
    proptest::collection::vec(
        (
            1u128..,
            1u64..,
            proptest::collection::btree_map("[a-z]{1,5}", metadata_value(), 0..2),
        ),
        0..2,
    )
    .prop_map(|links| {
        links
            .into_iter()
            .map(|(trace, span, attrs)| Link {
                trace_id: trace.to_be_bytes().to_vec(),
                span_id: span.to_be_bytes().to_vec(),
                attributes: attrs.into_iter().map(|(k, v)| kv(&k, v)).collect(),
                flags: 0x100,
                ..Default::default()
            })
            .collect()
    })
}

/// What a child span calls, if anything.
#[derive(Debug, Clone)]
enum Call {
    Internal,
    Http(String),
    Aws {
        service: String,
        operation: String,
        region: String,
        request_id: String,
        table: Option<String>,
    },
    Sql {
        host: String,
        query: String,
        user: String,
    },
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        Just(Call::Internal),
        "[a-z]{1,8}\\.internal".prop_map(Call::Http),
        (
            prop::sample::select(vec!["DynamoDB", "S3", "SQS"]),
            "[A-Z][a-zA-Z]{1,10}",
            prop::sample::select(vec!["us-east-1", "eu-west-1"]),
            "[A-Z0-9]{8,20}",
            proptest::option::of("[a-z][a-z-]{0,10}"),
        )
            .prop_map(
                |(service, operation, region, request_id, table)| Call::Aws {
                    service: service.into(),
                    operation,
                    region: region.into(),
                    request_id,
                    table,
                }
            ),
        (
            "[a-z]{1,8}",
            "SELECT [a-z*]{1,10} FROM [a-z]{1,8}",
            "[a-z]{1,8}"
        )
            .prop_map(|(host, query, user)| Call::Sql { host, query, user }),
    ]
}

/// A span tree: one segment span (remote parent or none) and children under it.
#[derive(Debug, Clone)]
struct Tree {
    resource: Resource,
    scope: InstrumentationScope,
    spans: Vec<Span>,
}

prop_compose! {
    fn child(trace: u128, parent: u64, root_start: u64)(
        id in 1u64..,
        name in "[ -~]{1,30}",
        call in call(),
        http in http(false),
        free in free_attributes(),
        start_micros in 0u64..1_000_000,
        length_micros in 0u64..5_000_000,
        failed in any::<bool>(),
        description in "[a-z ]{0,12}",
        exceptions in exceptions(),
        events in events(root_start),
    ) -> Span {
        let start = root_start + start_micros * 1000;
        let end = start + length_micros * 1000;
        let mut attrs = Vec::new();
        let mut http_status = None;
        let kind = match &call {
            Call::Internal => SpanKind::Internal,
            Call::Http(host) => {
                attrs.push(kv("peer.service", s(host)));
                if let Some(h) = &http {
                    attrs.extend(h.attrs.clone());
                    http_status = h.status;
                }
                SpanKind::Client
            }
            Call::Aws { service, operation, region, request_id, table } => {
                attrs.push(kv("rpc.system", s("aws-api")));
                attrs.push(kv("rpc.service", s(service)));
                attrs.push(kv("rpc.method", s(operation)));
                attrs.push(kv("aws.region", s(region)));
                attrs.push(kv("aws.request_id", s(request_id)));
                if let Some(table) = table {
                    attrs.push(kv("aws.dynamodb.table_names", Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue { value: Some(s(table)) }],
                    })));
                }
                SpanKind::Client
            }
            Call::Sql { host, query, user } => {
                attrs.push(kv("peer.service", s(&format!("shop@{host}"))));
                attrs.push(kv("db.system.name", s("postgresql")));
                attrs.push(kv("db.query.text", s(query)));
                attrs.push(kv("db.user", s(user)));
                attrs.push(kv("db.connection_string", s(&format!("postgresql://{host}:5432/shop"))));
                SpanKind::Client
            }
        };
        attrs.extend(free);
        let (status, exception_events) = outcome(http_status, failed, description, exceptions, end);
        Span {
            trace_id: trace.to_be_bytes().to_vec(),
            span_id: id.to_be_bytes().to_vec(),
            parent_span_id: parent.to_be_bytes().to_vec(),
            flags: 0x100,
            name,
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes: attrs,
            events: events.into_iter().chain(exception_events).collect(),
            status,
            ..Default::default()
        }
    }
}

fn tree() -> impl Strategy<Value = Tree> {
    (
        (
            1u128..,
            1u64..,
            proptest::option::of(1u64..),
            "[a-z][a-z0-9-]{0,15}",
            "[ -~]{1,30}",
            1_600_000_000_000_000u64..1_900_000_000_000_000,
            0u64..10_000_000,
        ),
        (
            http(true),
            proptest::option::of("[a-z0-9-]{1,12}"),
            free_attributes(),
            (any::<bool>(), "[a-z ]{0,12}", exceptions()),
            links(),
            ("[a-z.]{1,12}", proptest::option::of("[0-9.]{1,6}")),
            proptest::option::of(prop::sample::select(vec![
                "aws_ec2",
                "aws_ecs",
                "aws_eks",
                "aws_lambda",
            ])),
        ),
    )
        .prop_flat_map(
            |(
                (trace, id, remote_parent, service, name, start_micros, length),
                (http, user, free, (failed, description, exceptions), links, scope, platform),
            )| {
                // Under a remote parent in Lambda, a span belongs to Lambda's own function
                // segment (a subsegment, without the resource): the roots here are local.
                let remote_parent = remote_parent.filter(|_| platform != Some("aws_lambda"));
                let start = start_micros * 1000;
                let end = start + length * 1000;
                let mut attrs = Vec::new();
                let http_status = http.as_ref().and_then(|h| h.status);
                if let Some(h) = &http {
                    attrs.extend(h.attrs.clone());
                }
                if let Some(user) = user {
                    attrs.push(kv("enduser.id", s(&user)));
                }
                attrs.extend(free);
                let (status, exception_events) =
                    outcome(http_status, failed, description, exceptions, end);
                let root = Span {
                    trace_id: trace.to_be_bytes().to_vec(),
                    span_id: id.to_be_bytes().to_vec(),
                    parent_span_id: remote_parent
                        .map(|p| p.to_be_bytes().to_vec())
                        .unwrap_or_default(),
                    flags: 0x100 | if remote_parent.is_some() { 0x200 } else { 0 },
                    name,
                    kind: SpanKind::Server as i32,
                    start_time_unix_nano: start,
                    end_time_unix_nano: end,
                    attributes: attrs,
                    events: exception_events,
                    links,
                    status,
                    ..Default::default()
                };
                let mut resource = vec![
                    kv("service.name", s(&service)),
                    kv("telemetry.sdk.name", s("opentelemetry")),
                    kv("telemetry.sdk.language", s("python")),
                    kv("telemetry.sdk.version", s("1.30.0")),
                ];
                if let Some(platform) = platform {
                    resource.push(kv("cloud.provider", s("aws")));
                    resource.push(kv("cloud.platform", s(platform)));
                    resource.push(kv("cloud.account.id", s("123456789012")));
                    resource.push(kv("host.id", s("i-0abc")));
                }
                let resource = Resource {
                    attributes: resource,
                    ..Default::default()
                };
                let scope = InstrumentationScope {
                    name: scope.0,
                    version: scope.1.unwrap_or_default(),
                    ..Default::default()
                };
                (
                    Just((root, resource, scope)),
                    proptest::collection::vec(child(trace, id, start), 0..4),
                    events(start),
                )
            },
        )
        .prop_map(|((mut root, resource, scope), children, events)| {
            // Other events first: the converter writes them before the exceptions.
            root.events.splice(0..0, events);
            let mut spans = vec![root];
            spans.extend(children);
            Tree {
                resource,
                scope,
                spans,
            }
        })
}

/// A span with its attributes in key order (the translator keeps values, not their order
/// among different blocks).
fn sorted(mut span: Span) -> Span {
    span.attributes.sort_by(|a, b| a.key.cmp(&b.key));
    span
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Every field X-Ray carries comes back: ids (the W3C trace id bit for bit), parent
    /// links, times, kind, status, exceptions with their stacks, HTTP, AWS and SQL
    /// attributes, annotations, metadata (free attributes, other namespaces), events,
    /// links, the span name, the scope and the resource.
    #[test]
    fn translated_spans_convert_back_to_the_same_spans(tree in tree()) {
        let translator = Translator::default();
        let docs = translate(&translator, &tree.resource, &tree.scope, &tree.spans);
        let ids: std::collections::HashSet<_> = tree.spans.iter().map(|s| s.span_id.clone()).collect();
        prop_assume!(ids.len() == tree.spans.len());
        prop_assert_eq!(docs.len(), 1, "one tree");
        let back: ResourceSpans = to_otlp(&docs[0]).unwrap();
        prop_assert_eq!(back.resource.as_ref(), Some(&tree.resource));
        prop_assert_eq!(back.scope_spans.len(), 1);
        prop_assert_eq!(back.scope_spans[0].scope.as_ref(), Some(&tree.scope));
        let mut got: Vec<Span> = back.scope_spans[0].spans.iter().cloned().map(sorted).collect();
        let mut want: Vec<Span> = tree.spans.iter().cloned().map(sorted).collect();
        got.sort_by(|a, b| a.span_id.cmp(&b.span_id));
        want.sort_by(|a, b| a.span_id.cmp(&b.span_id));
        for (g, w) in got.iter().zip(&want) {
            prop_assert_eq!(g, w);
        }
        prop_assert_eq!(got.len(), want.len());
    }
}

// ---------------------------------------------------------------------------------------
// X-Ray SDK for Python documents -> OTLP -> documents

const SDK_SCRIPT: &str = r#"
import sys, traceback
from aws_xray_sdk.core import xray_recorder
from aws_xray_sdk.core.emitters.udp_emitter import UDPEmitter

class Capture(UDPEmitter):
    def __init__(self):
        super().__init__()
        self.docs = []
    def send_entity(self, entity):
        self.docs.append(entity.serialize())

capture = Capture()
xray_recorder.configure(emitter=capture, sampling=False, context_missing="LOG_ERROR", streaming_threshold=1000)

def request(status, fail):
    seg = xray_recorder.begin_segment("checkout")
    seg.put_http_meta("method", "GET")
    seg.put_http_meta("url", "https://shop.example.com/cart?id=7")
    seg.put_http_meta("user_agent", "curl/8.5")
    seg.put_http_meta("client_ip", "203.0.113.9")
    seg.put_http_meta("x_forwarded_for", True)
    seg.put_annotation("tier", "gold")
    seg.put_annotation("cart_size", 3)
    seg.put_annotation("vip", True)
    seg.put_annotation("ratio", 0.25)
    seg.put_metadata("order", {"id": 7, "items": ["a", "b"], "note": None})
    seg.put_metadata("debug", "x", "custom")
    seg.set_user("u-42")

    sub = xray_recorder.begin_subsegment("inventory", namespace="remote")
    sub.put_http_meta("method", "POST")
    sub.put_http_meta("url", "http://inventory:8080/reserve")
    sub.put_http_meta("status", 503 if fail else 200)
    if fail:
        try:
            raise ValueError("out of stock")
        except ValueError as e:
            sub.add_exception(e, traceback.extract_stack(), remote=True)
    xray_recorder.end_subsegment()

    db = xray_recorder.begin_subsegment("orders@db.internal", namespace="remote")
    db.set_sql({"url": "postgresql://db.internal:5432/orders", "database_type": "PostgreSQL",
                "sanitized_query": "SELECT * FROM orders WHERE id = ?", "user": "app"})
    xray_recorder.end_subsegment()

    work = xray_recorder.begin_subsegment("render")
    inner = xray_recorder.begin_subsegment("template")
    inner.put_annotation("template", "cart.html")
    inner.put_metadata("size", 1024)
    xray_recorder.end_subsegment()
    xray_recorder.end_subsegment()

    pay = xray_recorder.begin_subsegment("payments", namespace="remote")
    pay.put_http_meta("method", "POST")
    pay.put_http_meta("url", "https://payments.example.com/charge")
    pay.put_http_meta("status", 429)
    xray_recorder.end_subsegment()

    seg.put_http_meta("status", status)
    seg.put_http_meta("content_length", 512)
    xray_recorder.end_segment()

request(200, False)
request(500, True)
request(404, False)
for d in capture.docs:
    print(d)
"#;

/// Rounds a time to the microsecond (the SDK writes more digits than X-Ray keeps; OTLP
/// spans and our documents carry microseconds).
fn micros(t: &Json) -> Json {
    let t = t.as_f64().unwrap();
    serde_json::json!((t * 1e6).round() / 1e6)
}

/// What differs, by design, between an SDK document and the same document converted to
/// OTLP and translated back:
/// - times are kept to the microsecond;
/// - embedded subsegments do not repeat `trace_id`, `type` and `parent_id`, and
///   `in_progress: false` (the default) is not written;
/// - `namespace: "local"` (not an X-Ray namespace) becomes no namespace (an Internal span);
/// - a cause's `working_directory` is not carried (OpenTelemetry has no place for it), and
///   exception ids are derived from the span id (as the translator makes them);
/// - the translator marks HTTP calls of remote subsegments as `traced` (the callee gets
///   the trace header).
fn normalize_sdk_document(doc: &mut Json, embedded: bool) {
    let o = doc.as_object_mut().unwrap();
    for key in ["start_time", "end_time"] {
        if let Some(t) = o.get(key) {
            let t = micros(t);
            o.insert(key.into(), t);
        }
    }
    if embedded {
        for key in ["trace_id", "type", "parent_id"] {
            o.remove(key);
        }
    }
    if o.get("in_progress") == Some(&Json::Bool(false)) {
        o.remove("in_progress");
    }
    if o.get("namespace").and_then(Json::as_str) == Some("local") {
        o.remove("namespace");
    }
    if let Some(cause) = o.get_mut("cause").and_then(Json::as_object_mut) {
        cause.remove("working_directory");
        for e in cause
            .get_mut("exceptions")
            .and_then(Json::as_array_mut)
            .into_iter()
            .flatten()
        {
            e.as_object_mut().unwrap().remove("id");
        }
    }
    if let Some(request) = o
        .get_mut("http")
        .and_then(|h| h.get_mut("request"))
        .and_then(Json::as_object_mut)
    {
        request.remove("traced");
    }
    for sub in o
        .get_mut("subsegments")
        .and_then(Json::as_array_mut)
        .into_iter()
        .flatten()
    {
        normalize_sdk_document(sub, true);
    }
}

#[test]
fn python_sdk_documents_convert_to_otlp_and_back() {
    xray_testkit::require_python(&["aws_xray_sdk"]);
    let output = xray_testkit::run_python(SDK_SCRIPT, &[], "");
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 3, "{output}");
    // The SDK's documents carry no `otel.resource`: the resource comes from the document.
    let translator = Translator::new(TranslatorConfig::default().resource_metadata(false));
    for line in lines {
        let original: Segment<'static> = serde_json::from_str(line).unwrap();
        let otlp = to_otlp(&original).unwrap();
        let spans: Vec<Span> = otlp
            .scope_spans
            .iter()
            .flat_map(|s| s.spans.clone())
            .collect();
        assert_eq!(spans.len(), original.span_count());
        // One trace id, the W3C form of the X-Ray id, and every parent link intact.
        let trace = original.trace_id.unwrap().to_bytes().to_vec();
        assert!(spans.iter().all(|s| s.trace_id == trace));
        assert!(spans[0].parent_span_id.is_empty());
        for span in &spans[1..] {
            assert!(
                spans.iter().any(|p| p.span_id == span.parent_span_id),
                "{span:?}"
            );
        }
        let resource = otlp.resource.clone().unwrap();
        let scope = InstrumentationScope::default();
        let again = translate(&translator, &resource, &scope, &spans);
        assert_eq!(again.len(), 1);
        let mut want: Json = serde_json::from_str(line).unwrap();
        let mut got: Json = serde_json::from_str(&again[0].to_json()).unwrap();
        normalize_sdk_document(&mut want, false);
        normalize_sdk_document(&mut got, false);
        assert_eq!(got, want, "\nsdk:   {line}\nagain: {}", again[0].to_json());
        xray_testkit::assert_schema_valid(&again[0].to_json());
    }
}
