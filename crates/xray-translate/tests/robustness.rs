//! Bad input never panics and never loses good data: arbitrary OTLP spans (ids of any
//! length, any attribute value types, garbage stack traces) always give a schema-valid
//! document, and OTLP-only value kinds land in metadata.

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{Span, Status, span};
use proptest::prelude::*;
use serde_json::json;
use xray_translate::{Translator, TranslatorConfig};

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// Keys the rules read, plus free ones, so generated spans hit every rule.
const KEYS: &[&str] = &[
    "http.method",
    "http.request.method",
    "http.url",
    "url.full",
    "http.scheme",
    "url.scheme",
    "http.host",
    "http.target",
    "url.path",
    "url.query",
    "server.address",
    "server.port",
    "net.peer.name",
    "net.peer.port",
    "client.address",
    "network.peer.address",
    "http.client_ip",
    "http.status_code",
    "http.response.status_code",
    "http.response.body.size",
    "peer.service",
    "aws.remote.service",
    "rpc.system",
    "rpc.service",
    "rpc.method",
    "aws.region",
    "aws.request_id",
    "aws.dynamodb.table_names",
    "messaging.url",
    "db.system",
    "db.system.name",
    "db.name",
    "db.statement",
    "db.user",
    "db.connection_string",
    "aws.xray.annotations",
    "aws.xray.sampling_rule_name",
    "enduser.id",
    "annotation.x",
    "annotation.",
    "free.key",
    "",
];

fn value_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<String>().prop_map(Value::StringValue),
        prop_oneof![
            Just("aws-api".to_string()),
            Just("postgresql".to_string()),
            Just("https://u:p@h:1/x?y".to_string()),
            Just("GET".to_string()),
            Just("429".to_string()),
        ]
        .prop_map(Value::StringValue),
        any::<i64>().prop_map(Value::IntValue),
        (100i64..600).prop_map(Value::IntValue),
        any::<f64>().prop_map(Value::DoubleValue),
        any::<bool>().prop_map(Value::BoolValue),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::BytesValue),
        any::<i32>().prop_map(Value::StringValueStrindex),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|v| {
                Value::ArrayValue(ArrayValue {
                    values: v.into_iter().map(|v| AnyValue { value: Some(v) }).collect(),
                })
            }),
            proptest::collection::vec(("[a-z.]{0,6}", inner), 0..4).prop_map(|v| {
                Value::KvlistValue(KeyValueList {
                    values: v.into_iter().map(|(k, v)| kv(&k, v)).collect(),
                })
            }),
        ]
    })
}

fn attrs_strategy() -> impl Strategy<Value = Vec<KeyValue>> {
    proptest::collection::vec(
        (prop::sample::select(KEYS), value_strategy()).prop_map(|(k, v)| kv(k, v)),
        0..12,
    )
}

fn stack_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(
            prop_oneof![
                Just("   0: a::b".to_string()),
                Just("             at ./x.rs:1:2".to_string()),
                Just("\tat a.B(C.java:3)".to_string()),
                Just("Caused by: x".to_string()),
                Just("  File \"a.py\", line 2, in f".to_string()),
                Just(
                    "During handling of the above exception, another exception occurred:"
                        .to_string()
                ),
                Just("    at f (a.js:1:1)".to_string()),
                Just("Traceback (most recent call last):".to_string()),
                any::<String>(),
            ],
            0..10
        )
        .prop_map(|lines| lines.join("\n")),
    ]
}

prop_compose! {
    fn span_strategy()(
        trace_id in proptest::collection::vec(any::<u8>(), 0..20),
        span_id in proptest::collection::vec(any::<u8>(), 0..10),
        parent in proptest::collection::vec(any::<u8>(), 0..10),
        flags in any::<u32>(),
        trace_state in prop_oneof![Just(String::new()), Just("xray=np".to_string()), any::<String>()],
        name in any::<String>(),
        kind in -1i32..7,
        start in any::<u64>(),
        end in any::<u64>(),
        attributes in attrs_strategy(),
        stack in stack_strategy(),
        event_attrs in attrs_strategy(),
        code in -1i32..4,
        message in any::<String>(),
        link_id in proptest::collection::vec(any::<u8>(), 0..20),
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
            events: vec![
                span::Event {
                    name: "exception".into(),
                    attributes: vec![
                        kv("exception.stacktrace", Value::StringValue(stack)),
                        kv("exception.type", Value::IntValue(3)),
                    ],
                    ..Default::default()
                },
                span::Event { name: "other".into(), attributes: event_attrs, ..Default::default() },
            ],
            links: vec![span::Link { trace_id: link_id, ..Default::default() }],
            status: Some(Status { code, message }),
            ..Default::default()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn any_otlp_span_gives_a_valid_document(
        span in span_strategy(),
        resource in attrs_strategy(),
        language in prop::sample::select(vec!["rust", "java", "python", "nodejs", "dotnet", "go", ""]),
        index_all in any::<bool>(),
    ) {
        let mut resource = Resource { attributes: resource, ..Default::default() };
        resource.attributes.push(kv("telemetry.sdk.language", Value::StringValue(language.into())));
        let translator = Translator::new(
            TranslatorConfig::default()
                .index_all_attributes(index_all)
                .with_annotation_keys(["free.key", ""]),
        );
        let doc = translator.translate_otlp(&span, Some(&resource), None);
        let json = doc.to_json();
        // The direct writer and serde_json (through the Serialize impls) agree byte for byte.
        prop_assert_eq!(&json, &serde_json::to_string(&doc).unwrap());
        if let Err(e) = xray_testkit::validate_document(&serde_json::from_str(&json).unwrap()) {
            prop_assert!(false, "{e}\n{json}");
        }
        prop_assert!(doc.annotations.len() <= xray_model::limits::MAX_ANNOTATIONS);
        let url = doc.http.as_ref().and_then(|h| h.request.as_ref()).and_then(|r| r.url.as_deref());
        let sql_url = doc.sql.as_ref().and_then(|s| s.url.as_deref());
        let default = doc.metadata.get("default").map(|d| d.to_fields());
        let conn = default
            .as_ref()
            .and_then(|d| d.get("db.connection_string"))
            .and_then(|v| match v { xray_model::AnyValue::Str(s) => Some(s.as_ref()), _ => None });
        for field in [url, sql_url, conn].into_iter().flatten() {
            prop_assert!(!field.contains(":p@"), "password leaked: {json}");
        }
    }
}

#[test]
fn otlp_only_value_kinds_are_kept_in_metadata() {
    let span = Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        parent_span_id: vec![3; 8],
        name: "work".into(),
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        attributes: vec![
            kv("bytes", Value::BytesValue(vec![0xde, 0xad])),
            kv(
                "map",
                Value::KvlistValue(KeyValueList {
                    values: vec![kv("inner", Value::IntValue(1))],
                }),
            ),
            KeyValue {
                key: "empty".into(),
                value: None,
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let scope = InstrumentationScope {
        name: "lib".into(),
        ..Default::default()
    };
    let doc = Translator::default().translate_otlp(&span, None, Some(&scope));
    let json: serde_json::Value = serde_json::from_str(&doc.to_json()).unwrap();
    assert_eq!(
        json["metadata"]["default"],
        json!({"bytes": "dead", "map": {"inner": 1}, "empty": null})
    );
    assert_eq!(json["metadata"]["otel"], json!({"scope": "lib"}));
    assert_eq!(json["type"], "subsegment");
}

#[test]
fn ids_of_the_wrong_length_and_missing_status_do_not_panic() {
    let span = Span {
        trace_id: vec![0xab; 3],
        span_id: vec![],
        parent_span_id: vec![0; 8],
        status: None,
        kind: 99,
        ..Default::default()
    };
    let doc = Translator::default().translate_otlp(&span, None, None);
    assert_eq!(
        doc.trace_id.unwrap().to_string(),
        "1-00000000-000000000000000000ababab"
    );
    assert_eq!(doc.id.to_string(), "0000000000000000");
    assert!(doc.parent_id.is_none(), "an all-zero parent is no parent");
    assert!(doc.in_progress);
    xray_testkit::assert_schema_valid(&doc.to_json());
}

#[test]
fn an_oversize_span_is_trimmed_by_the_model_rules_not_dropped() {
    let attributes = (0..2_000)
        .map(|i| kv(&format!("attr.{i}"), Value::StringValue("v".repeat(100))))
        .chain([kv("http.response.status_code", Value::IntValue(503))])
        .collect();
    let span = Span {
        trace_id: vec![7; 16],
        span_id: vec![8; 8],
        parent_span_id: vec![9; 8],
        kind: span::SpanKind::Client as i32,
        name: "GET".into(),
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_001_000_000_000,
        attributes,
        ..Default::default()
    };
    let mut doc = Translator::default().translate_otlp(&span, None, None);
    assert!(xray_model::encoded_len(&doc) > xray_model::limits::MAX_DOCUMENT_BYTES);
    assert!(xray_model::trim_to_fit(
        &mut doc,
        xray_model::limits::MAX_DOCUMENT_BYTES
    ));
    assert!(xray_model::encoded_len(&doc) <= xray_model::limits::MAX_DOCUMENT_BYTES);
    assert!(doc.fault, "status flags survive trimming");
    assert_eq!(doc.id.to_string(), "0808080808080808");
    xray_testkit::assert_schema_valid(&doc.to_json());
}
