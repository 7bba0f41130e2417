//! The borrowed protobuf reading ([`WireRequest`]) against prost's owned decoding
//! (`opentelemetry-proto`), on the same bytes: random `ExportTraceServiceRequest`s encoded
//! by prost, then rewritten as other encoders may write them (fields of every message in
//! another order, unknown fields of every wire type, singular fields given twice) and
//! mutated (bytes flipped, inserted, removed, truncated).
//!
//! Asserts: whatever prost accepts, the view accepts (or leaves to prost as unusual, never
//! as malformed) and then gives byte-identical documents, the same `check` verdicts and the
//! same spans in the same order under several translator settings; whatever prost rejects,
//! the view rejects; nothing panics.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use proptest::prelude::*;
use prost::Message;
use xray_translate::{
    OtlpSpan, SpanView, Translator, TranslatorConfig, WireError, WireRequest, check,
};

fn kv(key: &str, value: Option<Value>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.map(|value| AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// Keys the rules read, plus free ones, so generated spans hit every rule.
const KEYS: &[&str] = &[
    "http.method",
    "http.request.method",
    "url.full",
    "http.url",
    "http.target",
    "server.address",
    "http.status_code",
    "http.response.status_code",
    "peer.service",
    "aws.remote.service",
    "rpc.system",
    "rpc.service",
    "rpc.method",
    "aws.region",
    "aws.dynamodb.table_names",
    "db.system",
    "db.name",
    "db.statement",
    "db.connection_string",
    "aws.xray.annotations",
    "aws.xray.metadata.ns",
    "exception.type",
    "exception.message",
    "exception.stacktrace",
    "service.name",
    "telemetry.sdk.language",
    "cloud.platform",
    "annotation.x",
    "free.key",
    "secret.token",
    "",
];

fn value_strategy() -> impl Strategy<Value = Option<Value>> {
    let leaf = prop_oneof![
        any::<String>().prop_map(Value::StringValue),
        prop_oneof![
            Just("aws-api".to_string()),
            Just("GET".to_string()),
            Just("https://u:p@h:1/x?y".to_string()),
            Just("429".to_string()),
            Just(String::new()),
            Just("   at f (a.js:1:1)\n  File \"a.py\", line 2, in f".to_string()),
        ]
        .prop_map(Value::StringValue),
        any::<i64>().prop_map(Value::IntValue),
        (100i64..600).prop_map(Value::IntValue),
        any::<f64>().prop_map(Value::DoubleValue),
        any::<bool>().prop_map(Value::BoolValue),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::BytesValue),
        any::<i32>().prop_map(Value::StringValueStrindex),
    ];
    let value = leaf.prop_recursive(3, 16, 4, |inner| {
        let item = proptest::option::weighted(0.9, inner);
        prop_oneof![
            proptest::collection::vec(item.clone(), 0..4).prop_map(|v| {
                Value::ArrayValue(ArrayValue {
                    values: v.into_iter().map(|value| AnyValue { value }).collect(),
                })
            }),
            proptest::collection::vec(("[a-z.]{0,6}", item), 0..4).prop_map(|v| {
                Value::KvlistValue(KeyValueList {
                    values: v.into_iter().map(|(k, v)| kv(&k, v)).collect(),
                })
            }),
        ]
    });
    proptest::option::weighted(0.95, value)
}

fn attrs_strategy(max: usize) -> impl Strategy<Value = Vec<KeyValue>> {
    proptest::collection::vec(
        (prop::sample::select(KEYS), value_strategy()).prop_map(|(k, v)| kv(k, v)),
        0..max,
    )
}

/// Ids of every length around the right one, all-zero ones included.
fn id_strategy(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), len),
        1 => Just(vec![0; len]),
        1 => proptest::collection::vec(any::<u8>(), 0..len + 3),
    ]
}

fn time_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        1_600_000_000_000_000_000u64..1_800_000_000_000_000_000,
        Just(0u64),
        any::<u64>(),
    ]
}

prop_compose! {
    fn event_strategy()(
        name in prop_oneof![Just("exception".to_string()), Just("http.failure".to_string()), any::<String>()],
        time in time_strategy(),
        attributes in attrs_strategy(6),
        dropped in any::<u32>(),
    ) -> span::Event {
        span::Event { name, time_unix_nano: time, attributes, dropped_attributes_count: dropped }
    }
}

prop_compose! {
    fn link_strategy()(
        trace_id in id_strategy(16),
        span_id in id_strategy(8),
        trace_state in any::<String>(),
        attributes in attrs_strategy(4),
        flags in any::<u32>(),
    ) -> span::Link {
        span::Link { trace_id, span_id, trace_state, attributes, flags, ..Default::default() }
    }
}

prop_compose! {
    fn span_strategy()(
        trace_id in id_strategy(16),
        span_id in id_strategy(8),
        parent in prop_oneof![Just(Vec::new()), id_strategy(8)],
        flags in prop_oneof![Just(0u32), Just(0x300), Just(0x100), any::<u32>()],
        trace_state in prop_oneof![Just(String::new()), Just("xray=np;s?".to_string()), any::<String>()],
        name in any::<String>(),
        kind in prop_oneof![0i32..6, any::<i32>()],
        start in time_strategy(),
        end in time_strategy(),
        attributes in attrs_strategy(20),
        events in proptest::collection::vec(event_strategy(), 0..3),
        links in proptest::collection::vec(link_strategy(), 0..2),
        status in proptest::option::of((prop_oneof![0i32..3, any::<i32>()], any::<String>())),
        dropped in any::<u32>(),
    ) -> Span {
        Span {
            trace_id,
            span_id,
            parent_span_id: parent,
            flags,
            trace_state,
            name,
            kind,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            dropped_attributes_count: dropped,
            events,
            links,
            status: status.map(|(code, message)| Status { code, message }),
            ..Default::default()
        }
    }
}

fn scope_spans_strategy() -> impl Strategy<Value = ScopeSpans> {
    (
        proptest::option::of((any::<String>(), any::<String>(), attrs_strategy(3))),
        proptest::collection::vec(span_strategy(), 0..5),
        any::<String>(),
    )
        .prop_map(|(scope, spans, schema_url)| ScopeSpans {
            scope: scope.map(|(name, version, attributes)| InstrumentationScope {
                name,
                version,
                attributes,
                ..Default::default()
            }),
            spans,
            schema_url,
        })
}

fn request_strategy() -> impl Strategy<Value = ExportTraceServiceRequest> {
    proptest::collection::vec(
        (
            proptest::option::of((
                attrs_strategy(8),
                proptest::collection::vec(
                    (
                        any::<String>(),
                        proptest::collection::vec(any::<String>(), 0..2),
                    ),
                    0..2,
                ),
            )),
            proptest::collection::vec(scope_spans_strategy(), 0..3),
        )
            .prop_map(|(resource, scope_spans)| ResourceSpans {
                resource: resource.map(|(attributes, entities)| Resource {
                    attributes,
                    entity_refs: entities
                        .into_iter()
                        .map(|(r#type, id_keys)| EntityRef {
                            r#type,
                            id_keys,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }),
                scope_spans,
                ..Default::default()
            }),
        0..3,
    )
    .prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
}

/// The translator settings compared: the defaults (metadata views), and settings that
/// take the rules' other paths (indexing, annotation keys, exclusions, a service name).
fn translators() -> Vec<Translator> {
    vec![
        Translator::default(),
        Translator::new(
            TranslatorConfig::default()
                .index_all_attributes(true)
                .with_annotation_keys(["free.key", ""])
                .with_log_groups(["/ecs/a"]),
        ),
        Translator::new(
            TranslatorConfig::default()
                .with_service_name("svc")
                .with_metadata_exclude(["secret.*", "*.token"])
                .unwrap(),
        ),
    ]
}

/// Every document (JSON) and `check` verdict of the request, decoded by prost.
fn by_prost(translator: &Translator, request: &ExportTraceServiceRequest) -> Vec<String> {
    let mut out = Vec::new();
    for resource_spans in &request.resource_spans {
        let resource = translator.prepare_otlp(resource_spans.resource.as_ref());
        for scope_spans in &resource_spans.scope_spans {
            for span in &scope_spans.spans {
                let view = OtlpSpan::new(span, None, scope_spans.scope.as_ref());
                out.push(format!("{:?}", check(&view)));
                out.push(resource.translate(&view).to_json());
            }
        }
        out.push("--".into());
    }
    out
}

/// The same, read in place.
fn by_wire(translator: &Translator, request: &WireRequest<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for resource_spans in request.resource_spans() {
        let resource = translator.prepare(resource_spans.resource());
        for span in resource_spans.spans() {
            out.push(format!("{:?}", check(&span)));
            out.push(resource.translate(&span).to_json());
        }
        out.push("--".into());
    }
    out
}

/// Asserts the view agrees with prost on `body`: see the file's documentation.
fn agree(body: &[u8]) -> Result<(), TestCaseError> {
    let owned = ExportTraceServiceRequest::decode(body);
    let wire = WireRequest::parse(body);
    match (&owned, &wire) {
        (Ok(owned), Ok(wire)) => {
            let spans: usize = owned
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            prop_assert_eq!(wire.span_count(), spans);
            for translator in translators() {
                prop_assert_eq!(by_wire(&translator, wire), by_prost(&translator, owned));
            }
            // Translating without a prepared resource reads the span's own.
            let translator = &Translator::default();
            let direct: Vec<String> = wire
                .resource_spans()
                .flat_map(|r| r.spans().map(|s| translator.translate(&s).to_json()))
                .collect();
            let owned_direct: Vec<String> = owned
                .resource_spans
                .iter()
                .flat_map(|r| {
                    r.scope_spans.iter().flat_map(move |s| {
                        s.spans.iter().map(move |span| {
                            translator
                                .translate_otlp(span, r.resource.as_ref(), s.scope.as_ref())
                                .to_json()
                        })
                    })
                })
                .collect();
            prop_assert_eq!(direct, owned_direct);
        }
        (Ok(_), Err(WireError::Unusual)) | (Err(_), Err(_)) => {}
        (Ok(_), Err(WireError::Malformed)) => {
            prop_assert!(
                false,
                "prost accepts what the view calls malformed: {body:?}"
            )
        }
        (Err(e), Ok(_)) => {
            prop_assert!(false, "prost rejects ({e}) what the view accepts: {body:?}")
        }
    }
    Ok(())
}

/// What each field number of each message is, for rewriting encoded messages: the
/// message type of a nested message field, `None` for other fields.
fn child(message: &str, tag: u64) -> Option<&'static str> {
    Some(match (message, tag) {
        ("request", 1) => "resource_spans",
        ("resource_spans", 1) => "resource",
        ("resource_spans", 2) => "scope_spans",
        ("resource", 1) | ("scope", 3) | ("span", 9) | ("event", 3) | ("link", 4) => "kv",
        ("resource", 3) => "entity_ref",
        ("scope_spans", 1) => "scope",
        ("scope_spans", 2) => "span",
        ("span", 11) => "event",
        ("span", 13) => "link",
        ("span", 15) => "status",
        ("kv", 2) | ("array", 1) => "any",
        ("any", 5) => "array",
        ("any", 6) => "kvlist",
        ("kvlist", 1) => "kv",
        _ => return None,
    })
}

/// Tags of singular fields (given twice, prost merges or keeps the last).
fn singular(message: &str, tag: u64) -> bool {
    match message {
        "request" | "array" | "kvlist" => false,
        "resource_spans" | "scope_spans" => tag != 2,
        "resource" => tag == 2,
        "scope" | "event" => tag != 3,
        "span" => ![9, 11, 13].contains(&tag),
        "link" => tag != 4,
        "entity_ref" => tag <= 2,
        _ => true,
    }
}

fn read_varint(buf: &[u8], pos: &mut usize) -> u64 {
    let mut value = 0;
    for i in 0..10 {
        let b = buf[*pos];
        *pos += 1;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            break;
        }
    }
    value
}

fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// One field as encoded: key and payload bytes.
struct Field {
    tag: u64,
    bytes: Vec<u8>,
}

/// Splits a well-formed encoded message (prost's output) into its fields, rewriting
/// nested messages the same way.
fn fields(message: &str, buf: &[u8], rewrite: &mut Rewrite) -> Vec<Field> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = read_varint(buf, &mut pos);
        let (tag, wire) = (key >> 3, key & 7);
        let mut bytes = Vec::new();
        match wire {
            0 => {
                let start = pos;
                read_varint(buf, &mut pos);
                write_varint(&mut bytes, key);
                bytes.extend_from_slice(&buf[start..pos]);
            }
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                write_varint(&mut bytes, key);
                bytes.extend_from_slice(&buf[pos..pos + n]);
                pos += n;
            }
            _ => {
                let len = read_varint(buf, &mut pos) as usize;
                let body = &buf[pos..pos + len];
                pos += len;
                let body = match child(message, tag) {
                    Some(inner) => rewrite.message(inner, body),
                    None => body.to_vec(),
                };
                write_varint(&mut bytes, key);
                write_varint(&mut bytes, body.len() as u64);
                bytes.extend_from_slice(&body);
            }
        }
        out.push(Field { tag, bytes });
    }
    out
}

/// Rewrites encoded messages as another encoder may: a random order of fields, unknown
/// fields, and (when `duplicates`) a singular field given twice.
struct Rewrite {
    rng: u64,
    duplicates: bool,
}

impl Rewrite {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn message(&mut self, message: &str, body: &[u8]) -> Vec<u8> {
        let mut fields = fields(message, body, self);
        // Fisher-Yates.
        for i in (1..fields.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            fields.swap(i, j);
        }
        if self.next().is_multiple_of(4) {
            let mut unknown = Vec::new();
            let tag = 100 + self.next() % 50;
            match self.next() % 4 {
                0 => {
                    write_varint(&mut unknown, tag << 3);
                    write_varint(&mut unknown, self.next());
                }
                1 => {
                    write_varint(&mut unknown, tag << 3 | 1);
                    unknown.extend_from_slice(&self.next().to_le_bytes());
                }
                2 => {
                    write_varint(&mut unknown, tag << 3 | 2);
                    unknown.extend_from_slice(&[3, 0xff, 0xfe, 0x00]);
                }
                _ => {
                    write_varint(&mut unknown, tag << 3 | 5);
                    unknown.extend_from_slice(&[1, 2, 3, 4]);
                }
            }
            let at = (self.next() % (fields.len() as u64 + 1)) as usize;
            fields.insert(
                at,
                Field {
                    tag,
                    bytes: unknown,
                },
            );
        }
        if self.duplicates && self.next().is_multiple_of(8) {
            let singles: Vec<usize> = (0..fields.len())
                .filter(|&i| fields[i].tag < 100 && singular(message, fields[i].tag))
                .collect();
            if !singles.is_empty() {
                let i = singles[(self.next() % singles.len() as u64) as usize];
                let copy = fields[i].bytes.clone();
                fields.push(Field {
                    tag: fields[i].tag,
                    bytes: copy,
                });
            }
        }
        fields.into_iter().flat_map(|f| f.bytes).collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// prost's own encoding: always read in place, with the same documents.
    #[test]
    fn prost_encoded_requests_translate_byte_identically(request in request_strategy()) {
        let body = request.encode_to_vec();
        prop_assert!(WireRequest::parse(&body).is_ok());
        agree(&body)?;
    }

    /// Fields in any order, unknown fields, singular fields given twice.
    #[test]
    fn rewritten_requests_agree_with_prost(
        request in request_strategy(),
        seed in 1u64..,
        duplicates in any::<bool>(),
    ) {
        let body = request.encode_to_vec();
        let rewritten = Rewrite { rng: seed, duplicates }.message("request", &body);
        if !duplicates {
            prop_assert!(WireRequest::parse(&rewritten).is_ok());
        }
        agree(&rewritten)?;
    }

    /// Mutated and truncated bodies: accepted and rejected exactly as prost does.
    #[test]
    fn mutated_requests_agree_with_prost(
        request in request_strategy(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..5, any::<u8>()), 1..4),
    ) {
        let mut body = request.encode_to_vec();
        for (at, op, byte) in edits {
            if body.is_empty() {
                body.push(byte);
                continue;
            }
            let i = at.index(body.len());
            match op {
                0 => body[i] = byte,
                1 => body[i] ^= 1 << (byte % 8),
                2 => body.insert(i, byte),
                3 => {
                    body.remove(i);
                }
                _ => body.truncate(i),
            }
        }
        agree(&body)?;
    }

    /// Garbage: never a panic, never accepted where prost rejects.
    #[test]
    fn garbage_agrees_with_prost(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        agree(&body)?;
    }
}

/// The view's corner cases, one by one, against prost.
#[test]
fn corner_cases_agree_with_prost() {
    let span = Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "s".into(),
        attributes: vec![kv("k", Some(Value::StringValue("v".into())))],
        ..Default::default()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let body = request.encode_to_vec();
    // Every prefix: truncation anywhere.
    for end in 0..body.len() {
        agree(&body[..end]).unwrap();
    }
    // Invalid UTF-8 in the attribute's value, at the deepest string field.
    let mut bad = body.clone();
    let v = bad.iter().rposition(|&b| b == b'v').unwrap();
    bad[v] = 0xff;
    assert_eq!(WireRequest::parse(&bad).err(), Some(WireError::Malformed));
    assert!(ExportTraceServiceRequest::decode(&bad[..]).is_err());
    // Values nested deeper than the view reads: left to prost, which takes them.
    let mut value = Value::IntValue(1);
    for _ in 0..xray_translate::MAX_VALUE_DEPTH + 2 {
        value = Value::ArrayValue(ArrayValue {
            values: vec![AnyValue { value: Some(value) }],
        });
    }
    let mut deep = request.clone();
    deep.resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .push(kv("deep", Some(value)));
    let body = deep.encode_to_vec();
    assert_eq!(WireRequest::parse(&body).err(), Some(WireError::Unusual));
    assert!(ExportTraceServiceRequest::decode(&body[..]).is_ok());
    // A span's name given twice: prost keeps the last.
    let mut twice = request.encode_to_vec();
    twice.extend_from_slice(&twice.clone());
    agree(&twice).unwrap();
    // A wrong wire type for a known field.
    let wrong = [0x08, 0x01];
    assert_eq!(WireRequest::parse(&wrong).err(), Some(WireError::Malformed));
    assert!(ExportTraceServiceRequest::decode(&wrong[..]).is_err());
}

/// Many spans, many attributes: records in order, attributes with their own span.
#[test]
fn attributes_stay_with_their_span_events_and_links() {
    let spans: Vec<Span> = (0..50u8)
        .map(|i| Span {
            trace_id: vec![i + 1; 16],
            span_id: vec![i + 1; 8],
            name: format!("span {i}"),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_100_000_000,
            attributes: (0..(i % 7))
                .map(|a| kv(&format!("a{i}.{a}"), Some(Value::IntValue(a.into()))))
                .collect(),
            events: vec![span::Event {
                name: format!("e{i}"),
                attributes: vec![kv("ev", Some(Value::IntValue(i.into())))],
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let body = request.encode_to_vec();
    let wire = WireRequest::parse(&body).unwrap();
    let names: Vec<&str> = wire
        .resource_spans()
        .flat_map(|r| r.spans().map(|s| s.name()))
        .collect();
    assert_eq!(names.len(), 50);
    assert_eq!(names[49], "span 49");
    for span in wire.resource_spans().flat_map(|r| r.spans()) {
        let i: u8 = span.name()[5..].parse().unwrap();
        assert_eq!(span.attributes().len(), usize::from(i % 7));
        assert!(
            span.attributes()
                .iter()
                .all(|(k, _)| k.starts_with(&format!("a{i}.")))
        );
        let event = span.events().next().unwrap();
        assert_eq!(event.name, format!("e{i}"));
    }
    agree(&body).unwrap();
}

/// A real peer's encoding: the OpenTelemetry Python SDK's OTLP exporter (the fuzz seed
/// `crates/xray-bridge/fuzz/make_seeds.py` writes): server, client and producer spans with
/// attributes of every type, an exception event, a link and an error status.
#[test]
fn the_python_sdks_request_is_read_in_place_like_prost_reads_it() {
    let body = include_bytes!("../../xray-bridge/fuzz/seeds/otlp_protobuf/python-sdk.pb");
    let wire = WireRequest::parse(body).unwrap();
    assert_eq!(wire.span_count(), 4);
    let names: Vec<&str> = wire
        .resource_spans()
        .flat_map(|r| r.spans().map(|s| s.name()))
        .collect();
    assert!(names.contains(&"GET /orders/{id}"), "{names:?}");
    agree(body).unwrap();
}
