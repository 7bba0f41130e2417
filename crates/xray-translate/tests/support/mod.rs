//! One case description -> an SDK `SpanData` + `Resource`, the equivalent OTLP span built
//! independently, and the OTLP span made by opentelemetry-proto's own converter. All three
//! must give the same document.

#![allow(dead_code)]

use std::borrow::Cow;
use std::time::{Duration, UNIX_EPOCH};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_proto::tonic::trace::v1 as pt;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use serde_json::Value as Json;
use xray_translate::{Translator, TranslatorConfig};

/// Start of every case: 2023-11-14T22:13:20.123456Z.
pub(crate) const START_NANOS: u64 = 1_700_000_000_123_456_000;
pub(crate) const START: f64 = 1_700_000_000.123_456;
pub(crate) const END: f64 = 1_700_000_000.373_456;
pub(crate) const TRACE: u128 = 0x6553_f100_bd86_2e3f_e1be_46a9_9427_2793;
pub(crate) const SPAN: u64 = 0x53995c3f42cd8ad8;
pub(crate) const PARENT: u64 = 0x0102030405060708;

/// An attribute value, written once for both sources.
#[derive(Clone, Debug)]
pub(crate) enum V {
    S(String),
    I(i64),
    F(f64),
    B(bool),
    Strs(Vec<String>),
    Ints(Vec<i64>),
}

impl From<&str> for V {
    fn from(s: &str) -> Self {
        V::S(s.to_owned())
    }
}
impl From<String> for V {
    fn from(s: String) -> Self {
        V::S(s)
    }
}
impl From<i64> for V {
    fn from(i: i64) -> Self {
        V::I(i)
    }
}
impl From<f64> for V {
    fn from(f: f64) -> Self {
        V::F(f)
    }
}
impl From<bool> for V {
    fn from(b: bool) -> Self {
        V::B(b)
    }
}
impl From<&[&str]> for V {
    fn from(v: &[&str]) -> Self {
        V::Strs(v.iter().map(|s| s.to_string()).collect())
    }
}
impl<const N: usize> From<[&str; N]> for V {
    fn from(v: [&str; N]) -> Self {
        V::Strs(v.iter().map(|s| s.to_string()).collect())
    }
}

impl V {
    fn sdk(&self) -> Value {
        match self {
            V::S(s) => Value::String(s.clone().into()),
            V::I(i) => Value::I64(*i),
            V::F(f) => Value::F64(*f),
            V::B(b) => Value::Bool(*b),
            V::Strs(v) => Value::Array(Array::String(
                v.iter().map(|s| StringValue::from(s.clone())).collect(),
            )),
            V::Ints(v) => Value::Array(Array::I64(v.clone())),
        }
    }

    fn proto(&self) -> pc::AnyValue {
        use pc::any_value::Value as P;
        let value = match self {
            V::S(s) => P::StringValue(s.clone()),
            V::I(i) => P::IntValue(*i),
            V::F(f) => P::DoubleValue(*f),
            V::B(b) => P::BoolValue(*b),
            V::Strs(v) => P::ArrayValue(pc::ArrayValue {
                values: v.iter().map(|s| V::S(s.clone()).proto()).collect(),
            }),
            V::Ints(v) => P::ArrayValue(pc::ArrayValue {
                values: v.iter().map(|i| V::I(*i).proto()).collect(),
            }),
        };
        pc::AnyValue { value: Some(value) }
    }
}

type Attrs = Vec<(String, V)>;

fn sdk_attrs(attrs: &Attrs) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.sdk()))
        .collect()
}

fn proto_kv(key: &str, value: pc::AnyValue) -> pc::KeyValue {
    pc::KeyValue {
        key: key.to_owned(),
        value: Some(value),
        ..Default::default()
    }
}

fn proto_attrs(attrs: &Attrs) -> Vec<pc::KeyValue> {
    attrs.iter().map(|(k, v)| proto_kv(k, v.proto())).collect()
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Parent {
    None,
    Local,
    Remote,
}

#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub name: String,
    pub offset_ms: u64,
    pub attrs: Attrs,
}

/// One conformance case: an input span and the exact field values expected.
#[derive(Clone)]
pub(crate) struct Case {
    pub name: &'static str,
    pub kind: SpanKind,
    pub span_name: String,
    pub trace_id: u128,
    pub parent: Parent,
    pub parent_id: u64,
    pub trace_state: Vec<(String, String)>,
    pub attrs: Attrs,
    pub resource: Attrs,
    pub status: Status,
    pub events: Vec<Event>,
    pub links: Vec<(u128, u64, Attrs)>,
    pub in_progress: bool,
    /// End in epoch nanoseconds instead of start + 250 ms.
    pub end_nanos: Option<u64>,
    pub scope: Option<(&'static str, Option<&'static str>)>,
    pub config: TranslatorConfig,
    pub expect: Vec<(String, Option<Json>)>,
}

pub(crate) fn case(name: &'static str) -> Case {
    Case {
        name,
        kind: SpanKind::Internal,
        span_name: "work".into(),
        trace_id: TRACE,
        parent: Parent::Local,
        parent_id: PARENT,
        trace_state: Vec::new(),
        attrs: Vec::new(),
        resource: vec![("service.name".into(), "checkout".into())],
        status: Status::Unset,
        events: Vec::new(),
        links: Vec::new(),
        in_progress: false,
        end_nanos: None,
        scope: None,
        config: TranslatorConfig::default(),
        expect: Vec::new(),
    }
}

impl Case {
    pub(crate) fn kind(mut self, kind: SpanKind) -> Self {
        self.kind = kind;
        self
    }
    pub(crate) fn named(mut self, name: impl Into<String>) -> Self {
        self.span_name = name.into();
        self
    }
    pub(crate) fn trace(mut self, id: u128) -> Self {
        self.trace_id = id;
        self
    }
    pub(crate) fn parent(mut self, parent: Parent) -> Self {
        self.parent = parent;
        self
    }
    pub(crate) fn parent_id(mut self, id: u64) -> Self {
        self.parent_id = id;
        self
    }
    pub(crate) fn state(mut self, key: &str, value: &str) -> Self {
        self.trace_state.push((key.into(), value.into()));
        self
    }
    pub(crate) fn attr(mut self, key: &str, value: impl Into<V>) -> Self {
        self.attrs.push((key.into(), value.into()));
        self
    }
    pub(crate) fn res(mut self, key: &str, value: impl Into<V>) -> Self {
        self.resource.push((key.into(), value.into()));
        self
    }
    pub(crate) fn no_resource(mut self) -> Self {
        self.resource.clear();
        self
    }
    pub(crate) fn status(mut self, status: Status) -> Self {
        self.status = status;
        self
    }
    pub(crate) fn error(self, description: &'static str) -> Self {
        self.status(Status::error(description))
    }
    pub(crate) fn event(mut self, name: &str, attrs: &[(&str, V)]) -> Self {
        let offset_ms = 10 + self.events.len() as u64;
        self.events.push(Event {
            name: name.into(),
            offset_ms,
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        });
        self
    }
    pub(crate) fn link(mut self, trace: u128, span: u64, attrs: &[(&str, V)]) -> Self {
        self.links.push((
            trace,
            span,
            attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        ));
        self
    }
    /// Ends the span at `nanos` (epoch nanoseconds).
    pub(crate) fn ends_at(mut self, nanos: u64) -> Self {
        self.end_nanos = Some(nanos);
        self
    }
    pub(crate) fn running(mut self) -> Self {
        self.in_progress = true;
        self
    }
    pub(crate) fn scope(mut self, name: &'static str, version: Option<&'static str>) -> Self {
        self.scope = Some((name, version));
        self
    }
    pub(crate) fn config(mut self, config: TranslatorConfig) -> Self {
        self.config = config;
        self
    }
    /// Expects the JSON value at `pointer` (RFC 6901) to be exactly `value`.
    pub(crate) fn expect(mut self, pointer: &str, value: Json) -> Self {
        self.expect.push((pointer.into(), Some(value)));
        self
    }
    /// Expects nothing at `pointer`.
    pub(crate) fn absent(mut self, pointer: &str) -> Self {
        self.expect.push((pointer.into(), None));
        self
    }

    fn parent_span(&self) -> Option<u64> {
        (self.parent != Parent::None).then_some(self.parent_id)
    }

    fn end_nanos(&self) -> u64 {
        if self.in_progress {
            0
        } else {
            self.end_nanos.unwrap_or(START_NANOS + 250_000_000)
        }
    }

    pub(crate) fn sdk(&self) -> (SpanData, Resource) {
        let mut state = TraceState::default();
        for (k, v) in self.trace_state.iter().rev() {
            state = state
                .insert(k.clone(), v.clone())
                .expect("valid trace state");
        }
        let scope = match self.scope {
            Some((name, version)) => {
                let b = InstrumentationScope::builder(name);
                match version {
                    Some(v) => b.with_version(v).build(),
                    None => b.build(),
                }
            }
            None => InstrumentationScope::default(),
        };
        let span = SpanData {
            span_context: SpanContext::new(
                TraceId::from(self.trace_id),
                SpanId::from(SPAN),
                TraceFlags::SAMPLED,
                false,
                state,
            ),
            parent_span_id: self.parent_span().map_or(SpanId::INVALID, SpanId::from),
            parent_span_is_remote: self.parent == Parent::Remote,
            span_kind: self.kind.clone(),
            name: Cow::Owned(self.span_name.clone()),
            start_time: UNIX_EPOCH + Duration::from_nanos(START_NANOS),
            end_time: UNIX_EPOCH + Duration::from_nanos(self.end_nanos()),
            attributes: sdk_attrs(&self.attrs),
            dropped_attributes_count: 0,
            events: {
                let mut events = SpanEvents::default();
                events.events = self
                    .events
                    .iter()
                    .map(|e| {
                        opentelemetry::trace::Event::new(
                            e.name.clone(),
                            UNIX_EPOCH
                                + Duration::from_nanos(START_NANOS + e.offset_ms * 1_000_000),
                            sdk_attrs(&e.attrs),
                            0,
                        )
                    })
                    .collect();
                events
            },
            links: {
                let mut links = SpanLinks::default();
                links.links = self
                    .links
                    .iter()
                    .map(|(t, s, a)| {
                        opentelemetry::trace::Link::new(
                            SpanContext::new(
                                TraceId::from(*t),
                                SpanId::from(*s),
                                TraceFlags::SAMPLED,
                                true,
                                TraceState::default(),
                            ),
                            sdk_attrs(a),
                            0,
                        )
                    })
                    .collect();
                links
            },
            status: self.status.clone(),
            instrumentation_scope: scope,
        };
        let resource = Resource::builder_empty()
            .with_attributes(sdk_attrs(&self.resource))
            .build();
        (span, resource)
    }

    /// The OTLP span, built from the case description (not from the SDK span).
    pub(crate) fn otlp(
        &self,
        sdk_resource: &Resource,
    ) -> (
        pt::Span,
        Option<ProtoResource>,
        Option<pc::InstrumentationScope>,
    ) {
        let kind = match self.kind {
            SpanKind::Internal => pt::span::SpanKind::Internal,
            SpanKind::Server => pt::span::SpanKind::Server,
            SpanKind::Client => pt::span::SpanKind::Client,
            SpanKind::Producer => pt::span::SpanKind::Producer,
            SpanKind::Consumer => pt::span::SpanKind::Consumer,
        };
        let (code, message) = match &self.status {
            Status::Unset => (pt::status::StatusCode::Unset, String::new()),
            Status::Ok => (pt::status::StatusCode::Ok, String::new()),
            Status::Error { description } => {
                (pt::status::StatusCode::Error, description.to_string())
            }
        };
        let flags = 0x100
            | 0x01
            | if self.parent == Parent::Remote {
                0x200
            } else {
                0
            };
        let span = pt::Span {
            trace_id: self.trace_id.to_be_bytes().to_vec(),
            span_id: SPAN.to_be_bytes().to_vec(),
            trace_state: self
                .trace_state
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            parent_span_id: self
                .parent_span()
                .map(|p| p.to_be_bytes().to_vec())
                .unwrap_or_default(),
            flags,
            name: self.span_name.clone(),
            kind: kind as i32,
            start_time_unix_nano: START_NANOS,
            end_time_unix_nano: self.end_nanos(),
            attributes: proto_attrs(&self.attrs),
            events: self
                .events
                .iter()
                .map(|e| pt::span::Event {
                    time_unix_nano: START_NANOS + e.offset_ms * 1_000_000,
                    name: e.name.clone(),
                    attributes: proto_attrs(&e.attrs),
                    dropped_attributes_count: 0,
                })
                .collect(),
            links: self
                .links
                .iter()
                .map(|(t, s, a)| pt::span::Link {
                    trace_id: t.to_be_bytes().to_vec(),
                    span_id: s.to_be_bytes().to_vec(),
                    attributes: proto_attrs(a),
                    flags: 0x301,
                    ..Default::default()
                })
                .collect(),
            status: Some(pt::Status {
                code: code as i32,
                message,
            }),
            ..Default::default()
        };
        // Same attribute order as the SDK resource hands out (it is a hash map).
        let resource = (!sdk_resource.is_empty()).then(|| ProtoResource {
            attributes: sdk_resource
                .iter()
                .map(|(k, v)| {
                    let (_, value) = self
                        .resource
                        .iter()
                        .rev()
                        .find(|(key, _)| key == k.as_str())
                        .expect("resource key from the case");
                    let _ = v;
                    proto_kv(k.as_str(), value.proto())
                })
                .collect(),
            ..Default::default()
        });
        let scope = self.scope.map(|(name, version)| pc::InstrumentationScope {
            name: name.into(),
            version: version.unwrap_or_default().into(),
            ..Default::default()
        });
        (span, resource, scope)
    }

    /// Runs the case through every source and checks everything; returns the JSON.
    pub(crate) fn run(&self) -> Json {
        let translator = Translator::new(self.config.clone());
        let (span, resource) = self.sdk();
        let (otlp, otlp_resource, scope) = self.otlp(&resource);
        let from_sdk = translator.translate_sdk(&span, &resource);
        let from_otlp = translator.translate_otlp(&otlp, otlp_resource.as_ref(), scope.as_ref());
        // Compared as JSON text: exact, and NaN (written as null) compares equal.
        let json = from_sdk.to_json();
        assert_eq!(
            json,
            from_otlp.to_json(),
            "case {:?}: SDK and OTLP documents differ",
            self.name
        );
        let converted = pt::Span::from(span.clone());
        let from_converted =
            translator.translate_otlp(&converted, otlp_resource.as_ref(), scope.as_ref());
        assert_eq!(
            json,
            from_converted.to_json(),
            "case {:?}: opentelemetry-proto's conversion gives another document",
            self.name
        );
        // A prepared resource gives the same documents as the per-span methods.
        let prepared_sdk = translator.prepare_sdk(&resource);
        let prepared_otlp = translator.prepare_otlp(otlp_resource.as_ref());
        for (source, doc) in [
            ("SDK", prepared_sdk.translate_sdk(&span)),
            ("OTLP", prepared_otlp.translate_otlp(&otlp, scope.as_ref())),
        ] {
            assert_eq!(
                json,
                doc.to_json(),
                "case {:?}: the prepared {source} resource gives another document",
                self.name
            );
        }
        xray_testkit::assert_schema_valid(&json);
        let value: Json = serde_json::from_str(&json).unwrap();
        for (pointer, want) in &self.expect {
            let got = value.pointer(pointer);
            assert_eq!(
                got,
                want.as_ref(),
                "case {:?}: {pointer} in {json}",
                self.name
            );
        }
        value
    }
}
