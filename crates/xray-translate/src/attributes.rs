//! Annotations and metadata: every span attribute not represented elsewhere in the
//! document lands here exactly once (marked ones as annotations, the rest in
//! `metadata.default`), so nothing is lost and no key is written twice.

use std::borrow::Cow;

use xray_model::limits::{
    MAX_ANNOTATION_VALUE_CHARS, MAX_ANNOTATIONS, annotation_key, strip_password,
};
use xray_model::{AnnotationValue, AnyValue, Fields, Namespace, Segment};

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
        let bit = fingerprint(key);
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

/// The metadata a span's attributes give: the `default` namespace, and the namespaces of
/// their own from `aws.xray.metadata.<namespace>` maps.
pub(crate) struct AttributeMetadata<'a> {
    /// `metadata.default` (empty when nothing is left).
    pub(crate) default: Namespace<'a>,
    /// `aws.xray.metadata.<namespace>` maps, in order.
    pub(crate) own: Vec<(Cow<'a, str>, Namespace<'a>)>,
}

/// Writes the span attributes not represented elsewhere as annotations, and returns the
/// rest as metadata. When no rule would change or drop an unmapped attribute, the
/// `default` namespace is a view of the span's own list ([`AttributeView`]) instead of a
/// copy of its entries.
pub(crate) fn annotations_and_metadata<'a>(
    config: &TranslatorConfig,
    seg: &mut Segment<'a>,
    attrs: Attributes<'a>,
    known: &Known<'a>,
) -> AttributeMetadata<'a> {
    if let Some(view) = AttributeView::of(config, known) {
        return AttributeMetadata {
            default: match attrs.as_field_list() {
                Some(list) if view.mask != 0 => Namespace::picked(list, view.mask),
                _ => Namespace::default(),
            },
            own: Vec::new(),
        };
    }
    let mut default = copied_metadata(config, seg, attrs, known);
    let own = split_namespaces(&mut default)
        .into_iter()
        .map(|(ns, fields)| (ns, Namespace::from(fields)))
        .collect();
    AttributeMetadata {
        default: Namespace::from(default),
        own,
    }
}

/// `metadata.default` as a view of a span's attributes: the positions (a bit each) of the
/// attributes that land there, read in place and written to JSON when the document is
/// written ([`Namespace::picked`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttributeView {
    mask: u64,
}

impl AttributeView {
    /// The view, when [`copied_metadata`] would give exactly the unmapped attributes, in
    /// order, with their values as [`to_any`] makes them: no exclusion, no annotation
    /// keys or list and no indexing of all attributes configured, at most 64 attributes,
    /// and among the unmapped ones no key repeated, no key with the annotation prefix, no
    /// connection string (its password is stripped) and no
    /// `aws.xray.metadata.<namespace>` map. `None` otherwise. Decided from what
    /// [`Known::collect`] saw of the keys ([`crate::keys::KeyFacts`]), without reading
    /// them again.
    pub(crate) fn of(config: &TranslatorConfig, known: &Known<'_>) -> Option<Self> {
        if !config.exclude().is_empty()
            || known.has(K::XrayAnnotations)
            || !config.annotation_keys().is_empty()
            || config.indexes_all_attributes()
        {
            return None;
        }
        let facts = known.key_facts()?;
        let (mask, repeated) = known.unused()?;
        // A connection string left for metadata has its password stripped: a copy.
        let connection_string_left =
            known.has(K::DbConnectionString) && !known.is_used(K::DbConnectionString);
        let plain = !repeated
            && !facts.namespace_prefixed
            && facts.annotation_prefixed & mask == 0
            && !connection_string_left;
        plain.then_some(Self { mask })
    }
}

/// A bit picked by a small fingerprint of a key (length, first and last byte): a key
/// whose bit is new cannot equal an earlier key, which is nearly always the case.
#[inline]
fn fingerprint(key: &str) -> u64 {
    let b = key.as_bytes();
    let print = (b.len() as u64)
        .wrapping_mul(31)
        .wrapping_add(u64::from(b.first().copied().unwrap_or(0)))
        .wrapping_mul(31)
        .wrapping_add(u64::from(b.last().copied().unwrap_or(0)));
    1u64 << (print % 64)
}

/// The general rules: annotations written into `seg`, and the rest of the attributes
/// copied into the `metadata.default` entries (empty when nothing is left).
pub(crate) fn copied_metadata<'a>(
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
    use opentelemetry::{Array, KeyValue, StringValue, Value};
    use proptest::prelude::*;

    /// The document's JSON with `default` as its only metadata namespace.
    fn json_of(default: Namespace<'_>) -> String {
        let mut seg = Segment::default();
        if !default.is_empty() {
            seg.metadata.insert("default", default);
        }
        seg.to_json()
    }

    /// Runs both ways on the same span: the result (view or copy) and the general rules'
    /// copy alone; says whether the view was taken.
    fn both_ways(config: &TranslatorConfig, attrs: &[KeyValue], marks: &[K]) -> bool {
        let attrs = attrs.to_vec();
        let attrs = Attributes::sdk(&attrs);
        let mut known = Known::collect(attrs, config);
        for &k in marks {
            known.mark(k);
        }
        let (mut seg, mut copied_seg) = (Segment::default(), Segment::default());
        let got = annotations_and_metadata(config, &mut seg, attrs, &known);
        let mut copied = copied_metadata(config, &mut copied_seg, attrs, &known);
        let own = split_namespaces(&mut copied);
        let viewed = AttributeView::of(config, &known).is_some();
        // Compared as printed: NaN is not equal to itself.
        assert_eq!(
            format!("{:?}", got.default.to_fields()),
            format!("{copied:?}")
        );
        assert_eq!(
            json_of(got.default.clone()),
            json_of(Namespace::from(copied))
        );
        assert_eq!(
            serde_json::to_string(&got.default).unwrap(),
            serde_json::to_string(&got.default.to_fields()).unwrap()
        );
        assert_eq!(seg.annotations, copied_seg.annotations);
        let own: Vec<_> = own
            .into_iter()
            .map(|(k, v)| (k, Namespace::from(v)))
            .collect();
        assert_eq!(format!("{:?}", got.own), format!("{own:?}"));
        viewed
    }

    #[test]
    fn unmapped_attributes_are_viewed_in_order_with_every_byte_escaped() {
        let attrs = vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.route", "/cart/:id"),
            KeyValue::new("quote\"back\\slash", "line\nbreak\ttab\u{1}\u{7f}é😀"),
            KeyValue::new("code.lineno", 42),
            KeyValue::new("ratio", f64::NAN),
            KeyValue::new("ok", true),
            KeyValue::new(
                "tags",
                Value::Array(Array::String(vec![StringValue::from("a\"b")])),
            ),
            KeyValue::new("", "empty key"),
        ];
        let config = TranslatorConfig::default();
        assert!(both_ways(&config, &attrs, &[K::HttpRequestMethod]));
        let got = annotations_and_metadata(
            &config,
            &mut Segment::default(),
            Attributes::sdk(&attrs),
            &{
                let mut k = Known::collect(Attributes::sdk(&attrs), &config);
                k.mark(K::HttpRequestMethod);
                k
            },
        );
        assert_eq!(
            json_of(got.default),
            concat!(
                r#"{"name":"","id":"0000000000000000","start_time":0.0,"metadata":{"default":{"#,
                r#""http.route":"/cart/:id","quote\"back\\slash":"line\nbreak\ttab\u0001"#,
                "\u{7f}é😀\",",
                r#""code.lineno":42,"ratio":null,"ok":true,"tags":["a\"b"],"":"empty key"}}}"#
            )
        );
        // The method, used by the `http` block, is not repeated; nothing else is lost.
        assert!(both_ways(&config, &attrs[1..], &[]));
    }

    #[test]
    fn the_copy_is_kept_where_a_rule_changes_or_drops_an_unmapped_attribute() {
        let config = TranslatorConfig::default();
        let plain = KeyValue::new("http.route", "/cart");
        for odd in [
            KeyValue::new("http.route", "/again"),
            KeyValue::new("db.connection_string", "Server=db;Password=p;"),
            KeyValue::new("aws.xray.metadata.custom", "not a map"),
            KeyValue::new("annotation.tier", "gold"),
            KeyValue::new("aws.xray.annotations", "http.route"),
        ] {
            let attrs = [plain.clone(), odd.clone()];
            assert!(!both_ways(&config, &attrs, &[]), "{odd:?}");
        }
        // A repeated key that the document used is not in metadata at all.
        let method = KeyValue::new("http.request.method", "GET");
        assert!(both_ways(
            &config,
            &[method.clone(), plain.clone(), method],
            &[K::HttpRequestMethod]
        ));
        let many: Vec<_> = (0..65).map(|i| KeyValue::new(format!("k{i}"), i)).collect();
        assert!(!both_ways(&config, &many, &[]));
        assert!(both_ways(&config, &many[..64], &[]));
        for config in [
            TranslatorConfig::default().with_annotation_keys(["http.route"]),
            TranslatorConfig::default().index_all_attributes(true),
            TranslatorConfig::default()
                .with_metadata_exclude(["x.*"])
                .unwrap(),
        ] {
            assert!(!both_ways(&config, std::slice::from_ref(&plain), &[]));
        }
        let no_prefix = TranslatorConfig::default().with_annotation_prefix(None::<String>);
        assert!(both_ways(
            &no_prefix,
            &[KeyValue::new("annotation.tier", "gold")],
            &[]
        ));
    }

    #[test]
    fn repeats_are_told_apart_from_keys_that_hash_alike() {
        use crate::keys::{hash, lookup};
        let config = TranslatorConfig::default();
        // Two different unknown keys with the same hash are no repeat: still a view.
        let keys: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
        let (a, b) = keys
            .iter()
            .enumerate()
            .find_map(|(i, a)| {
                keys[i + 1..]
                    .iter()
                    .find(|b| hash(a.as_bytes()) == hash(b.as_bytes()))
                    .map(|b| (a.clone(), b.clone()))
            })
            .expect("two keys hashed alike");
        assert!(lookup(&a).is_none() && lookup(&b).is_none());
        let pair = [KeyValue::new(a.clone(), 1), KeyValue::new(b.clone(), 2)];
        assert!(both_ways(&config, &pair, &[]));
        // The same key again is a repeat, wherever it comes.
        for at in 0..=2 {
            let mut attrs = pair.to_vec();
            attrs.insert(at, KeyValue::new(b.clone(), 3));
            assert!(!both_ways(&config, &attrs, &[]), "{at}");
        }
        // A known key given twice: a repeat in metadata unless the document used it.
        let url = [
            KeyValue::new("url.full", "https://a/"),
            KeyValue::new(a, 1),
            KeyValue::new("url.full", "https://b/"),
        ];
        assert!(!both_ways(&config, &url, &[]));
        assert!(both_ways(&config, &url, &[K::UrlFull]));
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "http.route",
                "http.request.method",
                "url.full",
                "db.connection_string",
                "aws.xray.metadata.ns",
                "aws.xray.annotations",
                "annotation.k",
                "code.lineno",
                "q\"k\\",
                "",
            ])
            .prop_map(String::from),
            "[a-z.\"\\\n\u{e9}]{0,6}",
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<String>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            prop::collection::vec(any::<String>(), 0..3).prop_map(|v| Value::Array(Array::String(
                v.into_iter().map(StringValue::from).collect()
            ))),
            Just(Value::from("http.route,annotation.k")),
        ]
    }

    proptest! {
        #[test]
        fn the_view_is_exactly_what_the_copy_would_be(
            attrs in prop::collection::vec((key(), value()), 0..12),
            marks in prop::collection::vec(any::<bool>(), 3),
            prefix in any::<bool>(),
        ) {
            let attrs: Vec<KeyValue> =
                attrs.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect();
            let marks: Vec<K> = [K::HttpRequestMethod, K::UrlFull, K::DbConnectionString]
                .into_iter()
                .zip(marks)
                .filter_map(|(k, on)| on.then_some(k))
                .collect();
            let config = match prefix {
                true => TranslatorConfig::default(),
                false => TranslatorConfig::default().with_annotation_prefix(None::<String>),
            };
            both_ways(&config, &attrs, &marks);
        }
    }

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
