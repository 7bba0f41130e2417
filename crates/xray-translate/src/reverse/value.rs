//! Document values as OTLP attribute values, and the attribute list being built.

use opentelemetry_proto::tonic::common::v1::{
    AnyValue as ProtoValue, ArrayValue, KeyValue, KeyValueList, any_value::Value,
};
use xray_model::{AnnotationValue, AnyValue, Fields};

/// A string value.
pub(crate) fn string(s: &str) -> Value {
    Value::StringValue(s.to_owned())
}

/// An array of strings.
pub(crate) fn strings<'s>(items: impl IntoIterator<Item = &'s str>) -> Value {
    Value::ArrayValue(ArrayValue {
        values: items
            .into_iter()
            .map(|s| ProtoValue {
                value: Some(string(s)),
            })
            .collect(),
    })
}

/// A metadata (or link attribute) value as an OTLP value; `null` is an empty value.
pub(crate) fn any(value: &AnyValue<'_>) -> ProtoValue {
    let value = match value {
        AnyValue::Null => None,
        AnyValue::Bool(b) => Some(Value::BoolValue(*b)),
        AnyValue::Int(i) => Some(Value::IntValue(*i)),
        AnyValue::Float(f) => Some(Value::DoubleValue(*f)),
        AnyValue::Str(s) => Some(string(s)),
        AnyValue::Array(items) => Some(Value::ArrayValue(ArrayValue {
            values: items.iter().map(any).collect(),
        })),
        AnyValue::Object(fields) => Some(Value::KvlistValue(KeyValueList {
            values: key_values(fields),
        })),
    };
    ProtoValue { value }
}

/// An annotation value as an OTLP value.
pub(crate) fn annotation(value: &AnnotationValue<'_>) -> Value {
    match value {
        AnnotationValue::Bool(b) => Value::BoolValue(*b),
        AnnotationValue::Int(i) => Value::IntValue(*i),
        AnnotationValue::Float(f) => Value::DoubleValue(*f),
        AnnotationValue::Str(s) => string(s),
    }
}

/// A JSON object's fields as OTLP key-values, in order.
pub(crate) fn key_values(fields: &Fields<'_, AnyValue<'_>>) -> Vec<KeyValue> {
    fields
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.to_owned(),
            value: Some(any(v)),
            ..Default::default()
        })
        .collect()
}

/// Attributes being built: each key once, a later value replacing an earlier one in
/// place.
#[derive(Debug, Default)]
pub(crate) struct Attrs(pub(crate) Vec<KeyValue>);

impl Attrs {
    /// Sets `key` to `value`.
    pub(crate) fn set(&mut self, key: &str, value: Value) {
        self.set_any(key, ProtoValue { value: Some(value) });
    }

    /// Sets `key` to `value` (possibly empty).
    pub(crate) fn set_any(&mut self, key: &str, value: ProtoValue) {
        match self.0.iter_mut().find(|kv| kv.key == key) {
            Some(kv) => kv.value = Some(value),
            None => self.0.push(KeyValue {
                key: key.to_owned(),
                value: Some(value),
                ..Default::default()
            }),
        }
    }

    /// Sets `key` to the string, when there is one and it is not empty.
    pub(crate) fn set_str(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            self.set(key, string(v));
        }
    }

    /// Sets `key` only when it is not set yet.
    pub(crate) fn set_default_str(&mut self, key: &str, value: Option<&str>) {
        if !self.has(key) {
            self.set_str(key, value);
        }
    }

    /// Whether `key` is set.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.0.iter().any(|kv| kv.key == key)
    }

    /// The string value of `key`.
    pub(crate) fn get_str(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
            .and_then(|v| match v {
                Value::StringValue(s) => Some(s.as_str()),
                _ => None,
            })
    }
}
