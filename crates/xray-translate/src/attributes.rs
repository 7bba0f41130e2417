//! Annotations and metadata: every span attribute not represented elsewhere in the
//! document lands here exactly once (marked ones as annotations, the rest in
//! `metadata.default`), so nothing is lost and no key is written twice.

use std::borrow::Cow;

use xray_model::limits::{
    MAX_ANNOTATION_VALUE_CHARS, MAX_ANNOTATIONS, annotation_key, strip_password,
};
use xray_model::{AnnotationValue, AnyValue, Fields, Segment};

use crate::config::{Exclude, TranslatorConfig};
use crate::keys::{K, Known};
use crate::view::{AttrValue, Attributes};

/// Metadata namespace of the resource attributes on segments.
pub const RESOURCE_NAMESPACE: &str = "otel.resource";
/// Metadata namespace of OpenTelemetry details with no X-Ray field (span name, scope,
/// events other than exceptions).
pub const OTEL_NAMESPACE: &str = "otel";
/// Prefix of a span attribute holding a whole metadata namespace as a map:
/// `aws.xray.metadata.<namespace>` becomes that namespace (how
/// [`crate::reverse::to_otlp`] carries namespaces other than `default` and `otel`).
pub const METADATA_ATTRIBUTE_PREFIX: &str = "aws.xray.metadata.";

/// Moves the `aws.xray.metadata.<namespace>` maps out of the `default` namespace into
/// namespaces of their own (not `default`, `otel` or `otel.resource`, which the
/// translator writes itself).
pub(crate) fn split_namespaces<'a>(
    default: &mut Fields<'a, AnyValue<'a>>,
) -> Vec<(Cow<'a, str>, Fields<'a, AnyValue<'a>>)> {
    let first = METADATA_ATTRIBUTE_PREFIX.as_bytes()[0];
    if !default
        .0
        .iter()
        .any(|(k, _)| k.as_bytes().first() == Some(&first))
    {
        return Vec::new();
    }
    let mut namespaces = Vec::new();
    let mut kept = Vec::with_capacity(default.0.len());
    for (key, value) in std::mem::take(&mut default.0) {
        let namespace = key
            .strip_prefix(METADATA_ATTRIBUTE_PREFIX)
            .filter(|ns| {
                !ns.is_empty()
                    && ![
                        xray_model::document::METADATA_DEFAULT,
                        OTEL_NAMESPACE,
                        RESOURCE_NAMESPACE,
                    ]
                    .contains(ns)
            })
            .map(|ns| match &key {
                Cow::Borrowed(k) => Cow::Borrowed(&k[METADATA_ATTRIBUTE_PREFIX.len()..]),
                Cow::Owned(_) => Cow::Owned(ns.to_owned()),
            });
        match (namespace, value) {
            (Some(ns), AnyValue::Object(fields)) => namespaces.push((ns, fields)),
            (_, value) => kept.push((key, value)),
        }
    }
    default.0 = kept;
    namespaces
}

/// Metadata fields being built: keys stay unique, and the scan for an earlier equal key
/// is skipped when a small fingerprint of the key (length, first and last byte) is new,
/// which is nearly always.
struct UniqueFields<'a> {
    fields: Fields<'a, AnyValue<'a>>,
    seen: u64,
}

impl<'a> UniqueFields<'a> {
    fn new() -> Self {
        Self {
            fields: Fields::new(),
            seen: 0,
        }
    }

    #[inline]
    fn insert(&mut self, key: &'a str, value: AnyValue<'a>) {
        let b = key.as_bytes();
        let print = (b.len() as u64)
            .wrapping_mul(31)
            .wrapping_add(u64::from(b.first().copied().unwrap_or(0)))
            .wrapping_mul(31)
            .wrapping_add(u64::from(b.last().copied().unwrap_or(0)));
        let bit = 1u64 << (print % 64);
        if self.seen & bit == 0 {
            self.seen |= bit;
            self.fields.0.push((Cow::Borrowed(key), value));
        } else {
            self.fields.insert(key, value);
        }
    }
}

/// Any attribute value as a metadata value, borrowing strings.
#[inline]
pub(crate) fn to_any(value: AttrValue<'_>) -> AnyValue<'_> {
    match value {
        AttrValue::Empty => AnyValue::Null,
        AttrValue::Bool(b) => AnyValue::Bool(b),
        AttrValue::Int(i) => AnyValue::Int(i),
        AttrValue::Float(f) => AnyValue::Float(f),
        AttrValue::Str(s) => AnyValue::Str(Cow::Borrowed(s)),
        AttrValue::Bytes(bytes) => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            AnyValue::Str(Cow::Owned(hex))
        }
        AttrValue::Array(items) => AnyValue::Array(items.iter().map(to_any).collect()),
        AttrValue::Map(attrs) => AnyValue::Object(to_fields(attrs, &Exclude::default())),
        AttrValue::Text(t) => AnyValue::Str(Cow::Owned(t)),
    }
}

/// Attributes as a JSON object (a later duplicate key replaces an earlier one), leaving
/// out the keys matching `exclude`.
pub(crate) fn to_fields<'a>(attrs: Attributes<'a>, exclude: &Exclude) -> Fields<'a, AnyValue<'a>> {
    if !exclude.is_empty() {
        let mut fields = UniqueFields::new();
        attrs.for_each(|_, key, value| {
            if !exclude.matches(key) {
                fields.insert(key, to_any(value));
            }
        });
        return fields.fields;
    }
    if attrs.keys_are_unique() {
        let mut fields = Fields(Vec::with_capacity(attrs.len()));
        attrs.for_each(|_, k, v| fields.0.push((Cow::Borrowed(k), to_any(v))));
        return fields;
    }
    let mut fields = UniqueFields::new();
    fields.fields.0.reserve(attrs.len());
    attrs.for_each(|_, key, value| fields.insert(key, to_any(value)));
    fields.fields
}

/// The value as an annotation, when X-Ray can index it.
fn to_annotation<'a>(value: &AttrValue<'a>) -> Option<AnnotationValue<'a>> {
    match *value {
        AttrValue::Bool(b) => Some(AnnotationValue::Bool(b)),
        AttrValue::Int(i) => Some(AnnotationValue::Int(i)),
        AttrValue::Float(f) if f.is_finite() => Some(AnnotationValue::Float(f)),
        AttrValue::Str(s)
            if s.len() <= MAX_ANNOTATION_VALUE_CHARS
                || s.chars().count() <= MAX_ANNOTATION_VALUE_CHARS =>
        {
            Some(AnnotationValue::Str(Cow::Borrowed(s)))
        }
        _ => None,
    }
}

/// Adds an annotation unless the key is taken, the limit reached or the value not
/// indexable; says whether it did.
fn annotate<'a>(seg: &mut Segment<'a>, key: &'a str, value: &AttrValue<'a>) -> bool {
    if key.is_empty() || seg.annotations.len() >= MAX_ANNOTATIONS {
        return false;
    }
    let Some(value) = to_annotation(value) else {
        return false;
    };
    let key = annotation_key(key);
    if seg.annotations.get(&key).is_some() {
        return false;
    }
    seg.annotations.0.push((key, value));
    true
}

/// Whether the `aws.xray.annotations` list names `key`.
fn listed(list: Option<&AttrValue<'_>>, key: &str) -> bool {
    match list {
        Some(AttrValue::Array(items)) => items.iter().any(|k| k.as_str() == Some(key)),
        Some(AttrValue::Str(s)) => s.split(',').any(|k| k.trim() == key),
        _ => false,
    }
}

/// Writes the span attributes not represented elsewhere as annotations, and returns the
/// rest: the `metadata.default` namespace (empty when nothing is left).
pub(crate) fn annotations_and_metadata<'a>(
    config: &TranslatorConfig,
    seg: &mut Segment<'a>,
    attrs: Attributes<'a>,
    known: &Known<'a>,
) -> Fields<'a, AnyValue<'a>> {
    let list = known.peek(K::XrayAnnotations);
    let any_explicit = list.is_some() || !config.annotation_keys().is_empty();
    let mut metadata = UniqueFields::new();
    // Sized once for the worst case (every attribute in metadata): no regrowth per key.
    metadata.fields.0.reserve_exact(attrs.len());
    let exclude = config.exclude();
    attrs.for_each(|index, key, value| {
        if !exclude.is_empty() && exclude.matches(key) {
            return;
        }
        let kind = known.kind_at(index, key);
        let consumed = kind.is_some_and(|k| known.is_used(k));
        let explicit = any_explicit
            && (config.annotation_keys().iter().any(|k| k == key) || listed(list.as_ref(), key));
        if explicit && annotate(seg, key, &value) {
            return;
        }
        if consumed {
            return;
        }
        if !explicit {
            // The first byte rejects nearly every key without a string comparison.
            if let Some(prefix) = config.annotation_prefix()
                && key.as_bytes().first() == prefix.as_bytes().first()
                && let Some(rest) = key.strip_prefix(prefix)
                && annotate(seg, rest, &value)
            {
                return;
            }
            if config.indexes_all_attributes() && annotate(seg, key, &value) {
                return;
            }
        }
        let value = match (kind, value) {
            // A password must never reach X-Ray, whichever database the span is about.
            (Some(K::DbConnectionString), AttrValue::Str(conn)) => {
                AnyValue::Str(strip_password(conn))
            }
            (_, value) => to_any(value),
        };
        metadata.insert(key, value);
    });
    metadata.fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_fields_keep_distinct_keys_with_the_same_fingerprint() {
        let mut f = UniqueFields::new();
        f.insert("axb", AnyValue::Int(1));
        f.insert("ayb", AnyValue::Int(2));
        f.insert("axb", AnyValue::Int(3));
        assert_eq!(f.fields.len(), 2);
        assert_eq!(f.fields.get("axb"), Some(&AnyValue::Int(3)));
        assert_eq!(f.fields.get("ayb"), Some(&AnyValue::Int(2)));
        f.insert("", AnyValue::Null);
        f.insert("", AnyValue::Bool(true));
        assert_eq!(f.fields.get(""), Some(&AnyValue::Bool(true)));
        assert_eq!(f.fields.len(), 3);
    }
}
