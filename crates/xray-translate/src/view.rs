//! [`SpanView`]: the one read-only view of a span that every source implements, and the
//! borrowed attribute types it hands out. The translation rules are written once, against
//! this trait; nothing is copied into an intermediate owned span.

use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue as ProtoValue, KeyValue as ProtoKeyValue, any_value,
};
use opentelemetry_sdk::Resource;
use ref_cast::RefCast;
use xray_model::{
    AnyValue, FieldList, SegmentId, TraceId, write_json_int, write_json_string, write_json_value,
};

use crate::attributes::to_any;
use crate::otlp_wire::{WireKv, WireList, WireValue};

/// The span kinds of OpenTelemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpanKind {
    /// Work inside the service (also OTLP's `UNSPECIFIED`).
    #[default]
    Internal,
    /// The service handling an incoming request.
    Server,
    /// An outgoing request.
    Client,
    /// Sending a message.
    Producer,
    /// Receiving a message.
    Consumer,
}

/// A span's status, borrowing its description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpanStatus<'a> {
    /// No status was set.
    #[default]
    Unset,
    /// Explicitly successful.
    Ok,
    /// Failed, with a description (possibly empty).
    Error(&'a str),
}

/// One attribute value, borrowed from its span.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue<'a> {
    /// No value (OTLP allows an empty value).
    Empty,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating point number.
    Float(f64),
    /// A string.
    Str(&'a str),
    /// Raw bytes (OTLP only).
    Bytes(&'a [u8]),
    /// An array.
    Array(AttrArray<'a>),
    /// A nested list of key-value pairs (OTLP only).
    Map(Attributes<'a>),
    /// A value of a kind this crate does not know yet, as text.
    Text(String),
}

impl<'a> AttrValue<'a> {
    /// The string, when the value is one.
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            AttrValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, also from a float with no fraction or a decimal string.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            AttrValue::Int(i) => Some(i),
            AttrValue::Float(f) if f.fract() == 0.0 && f.is_finite() => Some(f as i64),
            AttrValue::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The boolean, when the value is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            AttrValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    fn from_sdk(value: &'a Value) -> Self {
        match value {
            Value::Bool(b) => AttrValue::Bool(*b),
            Value::I64(i) => AttrValue::Int(*i),
            Value::F64(f) => AttrValue::Float(*f),
            Value::String(s) => AttrValue::Str(s.as_str()),
            Value::Array(a) => match a {
                Array::Bool(v) => AttrValue::Array(AttrArray(ArrayInner::Bools(v))),
                Array::I64(v) => AttrValue::Array(AttrArray(ArrayInner::Ints(v))),
                Array::F64(v) => AttrValue::Array(AttrArray(ArrayInner::Floats(v))),
                Array::String(v) => AttrValue::Array(AttrArray(ArrayInner::Strs(v))),
                other => AttrValue::Text(other.to_string()),
            },
            other => AttrValue::Text(other.to_string()),
        }
    }

    fn from_proto(value: Option<&'a ProtoValue>) -> Self {
        match value.and_then(|v| v.value.as_ref()) {
            None => AttrValue::Empty,
            Some(any_value::Value::StringValue(s)) => AttrValue::Str(s),
            Some(any_value::Value::BoolValue(b)) => AttrValue::Bool(*b),
            Some(any_value::Value::IntValue(i)) => AttrValue::Int(*i),
            Some(any_value::Value::DoubleValue(f)) => AttrValue::Float(*f),
            Some(any_value::Value::BytesValue(b)) => AttrValue::Bytes(b),
            Some(any_value::Value::ArrayValue(a)) => {
                AttrValue::Array(AttrArray(ArrayInner::Proto(&a.values)))
            }
            Some(any_value::Value::KvlistValue(kv)) => AttrValue::Map(Attributes::otlp(&kv.values)),
            // Only meaningful for profiles: no string table here.
            Some(any_value::Value::StringValueStrindex(_)) => AttrValue::Empty,
        }
    }

    /// The value of an attribute read in place ([`crate::WireRequest`]): the same value
    /// as [`AttrValue::from_proto`] gives of prost's decoding of it.
    #[inline]
    fn from_wire(value: &'a WireValue<'a>) -> Self {
        match value {
            WireValue::Empty => AttrValue::Empty,
            WireValue::Str(s) => AttrValue::Str(s),
            WireValue::Bool(b) => AttrValue::Bool(*b),
            WireValue::Int(i) => AttrValue::Int(*i),
            WireValue::Double(f) => AttrValue::Float(*f),
            WireValue::Bytes(b) => AttrValue::Bytes(b),
            WireValue::Array(items) => AttrValue::Array(AttrArray(ArrayInner::Wire(items))),
            WireValue::Map(list) => AttrValue::Map(Attributes::wire(list)),
        }
    }
}

/// An array attribute value, borrowed from its span.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttrArray<'a>(ArrayInner<'a>);

#[derive(Debug, Clone, Copy, PartialEq)]
enum ArrayInner<'a> {
    Bools(&'a [bool]),
    Ints(&'a [i64]),
    Floats(&'a [f64]),
    Strs(&'a [StringValue]),
    Proto(&'a [ProtoValue]),
    /// An array read in place.
    Wire(&'a [WireValue<'a>]),
}

impl<'a> AttrArray<'a> {
    /// How many items there are.
    #[inline]
    pub fn len(&self) -> usize {
        match self.0 {
            ArrayInner::Bools(v) => v.len(),
            ArrayInner::Ints(v) => v.len(),
            ArrayInner::Floats(v) => v.len(),
            ArrayInner::Strs(v) => v.len(),
            ArrayInner::Proto(v) => v.len(),
            ArrayInner::Wire(v) => v.len(),
        }
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The item at `index`.
    #[inline]
    pub fn get(&self, index: usize) -> Option<AttrValue<'a>> {
        Some(match self.0 {
            ArrayInner::Bools(v) => AttrValue::Bool(*v.get(index)?),
            ArrayInner::Ints(v) => AttrValue::Int(*v.get(index)?),
            ArrayInner::Floats(v) => AttrValue::Float(*v.get(index)?),
            ArrayInner::Strs(v) => AttrValue::Str(v.get(index)?.as_str()),
            ArrayInner::Proto(v) => AttrValue::from_proto(Some(v.get(index)?)),
            ArrayInner::Wire(v) => AttrValue::from_wire(v.get(index)?),
        })
    }

    /// The items in order.
    pub fn iter(&self) -> impl Iterator<Item = AttrValue<'a>> + 'a {
        let array = *self;
        (0..array.len()).filter_map(move |i| array.get(i))
    }
}

/// A list of attributes (of a span, event, link or resource), borrowed from its source.
#[derive(Clone, Copy)]
pub struct Attributes<'a>(AttrsInner<'a>);

#[derive(Clone, Copy)]
enum AttrsInner<'a> {
    Empty,
    Sdk(&'a Vec<KeyValue>),
    SdkResource(&'a Resource),
    Proto(&'a Vec<ProtoKeyValue>),
    /// Attributes read in place from a request's bytes ([`crate::WireRequest`]).
    Wire(&'a WireList<'a>),
}

impl std::fmt::Debug for Attributes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl PartialEq for Attributes<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl Default for Attributes<'_> {
    fn default() -> Self {
        Self(AttrsInner::Empty)
    }
}

impl<'a> Attributes<'a> {
    /// SDK attributes (span, event or link). Taken as the vector they are held in, so that
    /// a metadata namespace can borrow it ([`Attributes::as_field_list`]).
    #[allow(
        clippy::ptr_arg,
        reason = "the vector itself is borrowed as a `FieldList`"
    )]
    pub fn sdk(list: &'a Vec<KeyValue>) -> Self {
        Self(AttrsInner::Sdk(list))
    }

    /// The attributes of an SDK resource.
    pub fn sdk_resource(resource: &'a Resource) -> Self {
        Self(AttrsInner::SdkResource(resource))
    }

    /// OTLP attributes, taken as the vector they are held in (see [`Attributes::sdk`]).
    #[allow(
        clippy::ptr_arg,
        reason = "the vector itself is borrowed as a `FieldList`"
    )]
    pub fn otlp(list: &'a Vec<ProtoKeyValue>) -> Self {
        Self(AttrsInner::Proto(list))
    }

    /// Attributes read in place ([`crate::WireRequest`]), taken as the list they are held
    /// in (see [`Attributes::sdk`]).
    #[allow(
        clippy::borrowed_box,
        reason = "the list itself is borrowed as a `FieldList`"
    )]
    pub(crate) fn wire(list: &'a WireList<'a>) -> Self {
        Self(AttrsInner::Wire(list))
    }

    /// How many attributes there are (duplicates included).
    pub fn len(&self) -> usize {
        match self.0 {
            AttrsInner::Empty => 0,
            AttrsInner::Sdk(l) => l.len(),
            AttrsInner::SdkResource(r) => r.len(),
            AttrsInner::Proto(l) => l.len(),
            AttrsInner::Wire(l) => l.len(),
        }
    }

    /// Whether there are no attributes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the source guarantees each key appears once (an SDK resource is a map).
    pub fn keys_are_unique(&self) -> bool {
        matches!(self.0, AttrsInner::Empty | AttrsInner::SdkResource(_))
    }

    /// The attributes in order, as `(key, value)`.
    pub fn iter(&self) -> AttributesIter<'a> {
        AttributesIter(match self.0 {
            AttrsInner::Empty => IterInner::Empty,
            AttrsInner::Sdk(l) => IterInner::Sdk(l.iter()),
            AttrsInner::SdkResource(r) => IterInner::SdkResource(r.iter()),
            AttrsInner::Proto(l) => IterInner::Proto(l.iter()),
            AttrsInner::Wire(l) => IterInner::Wire(l.iter()),
        })
    }

    /// The attribute at `index`, in the order of [`Attributes::iter`].
    pub fn get_index(&self, index: usize) -> Option<(&'a str, AttrValue<'a>)> {
        match self.0 {
            AttrsInner::Empty => None,
            AttrsInner::Sdk(l) => l
                .get(index)
                .map(|kv| (kv.key.as_str(), AttrValue::from_sdk(&kv.value))),
            AttrsInner::Proto(l) => l
                .get(index)
                .map(|kv| (kv.key.as_str(), AttrValue::from_proto(kv.value.as_ref()))),
            AttrsInner::Wire(l) => l
                .get(index)
                .map(|kv| (kv.key, AttrValue::from_wire(&kv.value))),
            AttrsInner::SdkResource(_) => self.iter().nth(index),
        }
    }

    /// Calls `f` with the index and key of each attribute, in order, without reading
    /// values. `f` is called from one place, so that it is inlined into the loop.
    #[inline]
    pub(crate) fn for_each_key(&self, mut f: impl FnMut(usize, &'a str)) {
        let mut resource = match self.0 {
            AttrsInner::SdkResource(r) => Some(r.iter()),
            // Every source named: a new one fails to compile until it says below how its
            // keys are read.
            AttrsInner::Empty | AttrsInner::Sdk(_) | AttrsInner::Proto(_) | AttrsInner::Wire(_) => {
                None
            }
        };
        for index in 0..self.len() {
            let key = match (self.0, &mut resource) {
                (AttrsInner::Sdk(l), _) => l.get(index).map(|kv| kv.key.as_str()),
                (AttrsInner::Proto(l), _) => l.get(index).map(|kv| kv.key.as_str()),
                (AttrsInner::Wire(l), _) => l.get(index).map(|kv| kv.key),
                (_, Some(it)) => it.next().map(|(k, _)| k.as_str()),
                _ => None,
            };
            match key {
                Some(key) => f(index, key),
                None => return,
            }
        }
    }

    /// Calls `f` with the index, key and value of each attribute, in order (the same as
    /// [`Attributes::iter`], without an iterator's per-item dispatch).
    #[inline]
    pub(crate) fn for_each(&self, mut f: impl FnMut(usize, &'a str, AttrValue<'a>)) {
        match self.0 {
            AttrsInner::Empty => {}
            AttrsInner::Sdk(l) => l
                .iter()
                .enumerate()
                .for_each(|(i, kv)| f(i, kv.key.as_str(), AttrValue::from_sdk(&kv.value))),
            AttrsInner::SdkResource(r) => r
                .iter()
                .enumerate()
                .for_each(|(i, (k, v))| f(i, k.as_str(), AttrValue::from_sdk(v))),
            AttrsInner::Proto(l) => l.iter().enumerate().for_each(|(i, kv)| {
                f(i, kv.key.as_str(), AttrValue::from_proto(kv.value.as_ref()))
            }),
            AttrsInner::Wire(l) => l
                .iter()
                .enumerate()
                .for_each(|(i, kv)| f(i, kv.key, AttrValue::from_wire(&kv.value))),
        }
    }

    /// The list as a [`FieldList`] borrowed for `'a` (a metadata namespace of some of its
    /// entries, [`xray_model::Namespace::picked`]), `None` for the empty list.
    pub fn as_field_list(&self) -> Option<&'a dyn FieldList> {
        match self.0 {
            AttrsInner::Empty => None,
            AttrsInner::Sdk(l) => Some(InPlace::ref_cast(l)),
            AttrsInner::SdkResource(r) => Some(InPlace::ref_cast(r)),
            AttrsInner::Proto(l) => Some(InPlace::ref_cast(l)),
            AttrsInner::Wire(l) => Some(InPlace::ref_cast(l)),
        }
    }

    /// Calls `f` with the key and value (as [`to_any`] makes it) of each attribute at a
    /// position set in `mask`, in order.
    fn for_each_masked(&self, mask: u64, f: &mut dyn FnMut(&'a str, AnyValue<'a>)) {
        for_each_bit(mask, |i| {
            if let Some((key, value)) = self.get_index(i) {
                f(key, to_any(value));
            }
        });
    }

    /// Appends the attributes at the positions set in `mask` as a JSON object, each value
    /// as [`to_any`] makes it (the text the document writer makes of those entries):
    /// strings and integers straight from the source, other values through [`to_any`].
    pub(crate) fn write_json_masked(&self, mask: u64, out: &mut Vec<u8>) {
        out.push(b'{');
        let mut first = true;
        let mut key = |out: &mut Vec<u8>, key: &str| {
            if !first {
                out.push(b',');
            }
            first = false;
            write_json_string(out, key);
            out.push(b':');
        };
        match self.0 {
            AttrsInner::Sdk(list) => for_each_bit(mask, |i| {
                if let Some(kv) = list.get(i) {
                    key(out, kv.key.as_str());
                    match &kv.value {
                        Value::String(s) => write_json_string(out, s.as_str()),
                        Value::I64(v) => write_json_int(out, *v),
                        value => write_json_value(out, &to_any(AttrValue::from_sdk(value))),
                    }
                }
            }),
            AttrsInner::Proto(list) => for_each_bit(mask, |i| {
                if let Some(kv) = list.get(i) {
                    key(out, &kv.key);
                    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(any_value::Value::StringValue(s)) => write_json_string(out, s),
                        Some(any_value::Value::IntValue(v)) => write_json_int(out, *v),
                        _ => {
                            write_json_value(out, &to_any(AttrValue::from_proto(kv.value.as_ref())))
                        }
                    }
                }
            }),
            AttrsInner::Wire(list) => for_each_bit(mask, |i| {
                if let Some(kv) = list.get(i) {
                    key(out, kv.key);
                    match &kv.value {
                        WireValue::Str(s) => write_json_string(out, s),
                        WireValue::Int(v) => write_json_int(out, *v),
                        value => write_json_value(out, &to_any(AttrValue::from_wire(value))),
                    }
                }
            }),
            AttrsInner::Empty | AttrsInner::SdkResource(_) => for_each_bit(mask, |i| {
                if let Some((k, v)) = self.get_index(i) {
                    key(out, k);
                    write_json_value(out, &to_any(v));
                }
            }),
        }
        out.push(b'}');
    }

    /// The string value of the attribute at `index`, if it is a string; the same as
    /// `get_index(index)` then [`AttrValue::as_str`], without building the value.
    #[inline]
    pub(crate) fn str_at(&self, index: usize) -> Option<&'a str> {
        match self.0 {
            AttrsInner::Sdk(l) => match &l.get(index)?.value {
                Value::String(s) => Some(s.as_str()),
                _ => None,
            },
            AttrsInner::Proto(l) => match l.get(index)?.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => Some(s),
                _ => None,
            },
            AttrsInner::Wire(l) => match &l.get(index)?.value {
                WireValue::Str(s) => Some(s),
                _ => None,
            },
            AttrsInner::Empty | AttrsInner::SdkResource(_) => {
                self.get_index(index).and_then(|(_, v)| v.as_str())
            }
        }
    }

    /// The value of the attribute at `index` as an integer; the same as
    /// `get_index(index)` then [`AttrValue::as_i64`], an integer read without building
    /// the value.
    #[inline]
    pub(crate) fn i64_at(&self, index: usize) -> Option<i64> {
        match self.0 {
            AttrsInner::Sdk(l) => match &l.get(index)?.value {
                Value::I64(i) => Some(*i),
                value => AttrValue::from_sdk(value).as_i64(),
            },
            _ => self.get_index(index).and_then(|(_, v)| v.as_i64()),
        }
    }

    /// The last value given for `key` (a later value replaces an earlier one).
    pub fn get(&self, key: &str) -> Option<AttrValue<'a>> {
        self.iter()
            .filter(|(k, _)| *k == key)
            .last()
            .map(|(_, v)| v)
    }
}

/// An attribute list borrowed where it is held (a span's vector, a resource), as a
/// [`FieldList`]: the entries of a metadata namespace read in place.
#[derive(RefCast)]
#[repr(transparent)]
struct InPlace<T>(T);

/// The attribute lists [`InPlace`] borrows.
trait AttributeList: Send + Sync {
    fn attributes(&self) -> Attributes<'_>;
}

impl AttributeList for Vec<KeyValue> {
    fn attributes(&self) -> Attributes<'_> {
        Attributes::sdk(self)
    }
}

impl AttributeList for Resource {
    fn attributes(&self) -> Attributes<'_> {
        Attributes::sdk_resource(self)
    }
}

impl AttributeList for Vec<ProtoKeyValue> {
    fn attributes(&self) -> Attributes<'_> {
        Attributes::otlp(self)
    }
}

impl AttributeList for WireList<'_> {
    fn attributes(&self) -> Attributes<'_> {
        Attributes::wire(self)
    }
}

impl<T: AttributeList> FieldList for InPlace<T> {
    fn for_each_picked<'s>(&'s self, picked: u64, f: &mut dyn FnMut(&'s str, AnyValue<'s>)) {
        self.0.attributes().for_each_masked(picked, f);
    }

    /// The entries straight from the list's values (see
    /// [`Attributes::write_json_masked`]).
    fn write_json_picked(&self, picked: u64, out: &mut Vec<u8>) {
        self.0.attributes().write_json_masked(picked, out);
    }
}

/// Calls `f` with the position of each bit set in `mask`, lowest first.
#[inline(always)]
fn for_each_bit(mut mask: u64, mut f: impl FnMut(usize)) {
    while mask != 0 {
        f(mask.trailing_zeros() as usize);
        mask &= mask - 1;
    }
}

/// Iterator over [`Attributes`].
pub struct AttributesIter<'a>(IterInner<'a>);

enum IterInner<'a> {
    Empty,
    Sdk(std::slice::Iter<'a, KeyValue>),
    SdkResource(opentelemetry_sdk::resource::Iter<'a>),
    Proto(std::slice::Iter<'a, ProtoKeyValue>),
    Wire(std::slice::Iter<'a, WireKv<'a>>),
}

impl<'a> Iterator for AttributesIter<'a> {
    type Item = (&'a str, AttrValue<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterInner::Empty => None,
            IterInner::Sdk(it) => it
                .next()
                .map(|kv| (kv.key.as_str(), AttrValue::from_sdk(&kv.value))),
            IterInner::SdkResource(it) => {
                it.next().map(|(k, v)| (k.as_str(), AttrValue::from_sdk(v)))
            }
            IterInner::Proto(it) => it
                .next()
                .map(|kv| (kv.key.as_str(), AttrValue::from_proto(kv.value.as_ref()))),
            IterInner::Wire(it) => it
                .next()
                .map(|kv| (kv.key, AttrValue::from_wire(&kv.value))),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            IterInner::Empty => (0, Some(0)),
            IterInner::Sdk(it) => it.size_hint(),
            IterInner::SdkResource(it) => it.size_hint(),
            IterInner::Proto(it) => it.size_hint(),
            IterInner::Wire(it) => it.size_hint(),
        }
    }
}

/// One span event.
#[derive(Debug, Clone, Copy)]
pub struct EventView<'a> {
    /// The event's name (`exception` for recorded errors).
    pub name: &'a str,
    /// When it happened ([`EventTime::seconds`] converts it).
    pub time: EventTime,
    /// Its attributes.
    pub attributes: Attributes<'a>,
}

/// When an event happened, as its source gives it: converted to epoch seconds only where
/// a rule reads it, since most rules look at an event's name and attributes only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EventTime {
    /// An in-process SDK timestamp.
    System(std::time::SystemTime),
    /// Nanoseconds since the Unix epoch, as OTLP gives them.
    UnixNanos(u64),
}

impl EventTime {
    /// The time in epoch seconds, to the microsecond.
    ///
    /// ```
    /// use xray_translate::EventTime;
    /// assert_eq!(EventTime::UnixNanos(1_700_000_000_250_000_000).seconds(), 1_700_000_000.25);
    /// ```
    pub fn seconds(self) -> f64 {
        match self {
            EventTime::System(t) => xray_model::epoch_seconds(t),
            EventTime::UnixNanos(n) => xray_model::epoch_seconds_from_nanos(n),
        }
    }
}

/// One span link.
#[derive(Debug, Clone, Copy)]
pub struct LinkView<'a> {
    /// The linked trace.
    pub trace_id: TraceId,
    /// The linked span.
    pub span_id: SegmentId,
    /// Its attributes.
    pub attributes: Attributes<'a>,
}

/// Read-only access to one span, its resource and scope, borrowing for `'a`.
///
/// Implemented by [`crate::SdkSpan`] (in-process `SpanData`) and [`crate::OtlpSpan`]
/// (OTLP protobuf); [`crate::Translator::translate`] accepts any implementation.
pub trait SpanView<'a> {
    /// The trace id (any 128-bit value, W3C random ids included).
    fn trace_id(&self) -> TraceId;
    /// The span id.
    fn span_id(&self) -> SegmentId;
    /// The parent span id, `None` for a root span.
    fn parent_span_id(&self) -> Option<SegmentId>;
    /// Whether the parent came from another process.
    fn parent_is_remote(&self) -> bool;
    /// The value of `key` in the span's W3C trace state.
    fn trace_state(&self, key: &str) -> Option<&'a str>;
    /// The span kind.
    fn kind(&self) -> SpanKind;
    /// The span name.
    fn name(&self) -> &'a str;
    /// Start, in epoch seconds.
    fn start_time(&self) -> f64;
    /// End, in epoch seconds; `None` while the span is still running.
    fn end_time(&self) -> Option<f64>;
    /// The status.
    fn status(&self) -> SpanStatus<'a>;
    /// The span's attributes.
    fn attributes(&self) -> Attributes<'a>;
    /// The resource's attributes.
    fn resource(&self) -> Attributes<'a>;
    /// The span's events, in order.
    fn events(&self) -> impl Iterator<Item = EventView<'a>>;
    /// The span's links, in order.
    fn links(&self) -> impl Iterator<Item = LinkView<'a>>;
    /// The instrumentation scope's name and version, when it has a name.
    fn scope(&self) -> Option<(&'a str, Option<&'a str>)>;
    /// Whether the ids are ones X-Ray can take (see [`crate::check`]): by default, a
    /// non-zero trace and span id; sources whose ids have a length check it too.
    fn ids_are_well_formed(&self) -> bool {
        !self.trace_id().is_zero() && !self.span_id().is_zero()
    }
}

impl<'a> std::fmt::Debug for AttributesIter<'a> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttributesIter").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use xray_model::{AnyValue, Fields, write_json_value};

    /// What the document writer makes of the entries at `mask`, read one by one.
    fn by_entries(attrs: Attributes<'_>, mask: u64) -> Vec<u8> {
        let mut fields = Fields::new();
        for_each_bit(mask, |i| {
            let (k, v) = attrs.get_index(i).unwrap();
            fields.0.push((k.into(), to_any(v)));
        });
        let mut out = Vec::new();
        write_json_value(&mut out, &AnyValue::Object(fields));
        out
    }

    fn proto(key: &str, value: Option<any_value::Value>) -> ProtoKeyValue {
        ProtoKeyValue {
            key: key.into(),
            value: value.map(|v| ProtoValue { value: Some(v) }),
            ..ProtoKeyValue::default()
        }
    }

    #[test]
    fn typed_reads_agree_with_the_built_values() {
        use any_value::Value as V;
        let sdk = vec![
            KeyValue::new("i", -7),
            KeyValue::new("f", 42.0),
            KeyValue::new("half", 0.5),
            KeyValue::new("nan", f64::NAN),
            KeyValue::new("s", " 12 "),
            KeyValue::new("word", "twelve"),
            KeyValue::new("b", true),
            KeyValue::new("arr", Value::Array(Array::I64(vec![1]))),
        ];
        let otlp = vec![
            proto("i", Some(V::IntValue(i64::MIN))),
            proto("f", Some(V::DoubleValue(3.0))),
            proto("s", Some(V::StringValue("5".into()))),
            proto("b", Some(V::BoolValue(true))),
            proto("empty", None),
        ];
        let wire: WireList<'_> = [
            ("i", WireValue::Int(-3)),
            ("f", WireValue::Double(2.0)),
            ("s", WireValue::Str("7")),
            ("b", WireValue::Bool(true)),
            ("empty", WireValue::Empty),
        ]
        .into_iter()
        .map(|(key, value)| WireKv { key, value })
        .collect();
        for attrs in [
            Attributes::sdk(&sdk),
            Attributes::otlp(&otlp),
            Attributes::wire(&wire),
        ] {
            for i in 0..=attrs.len() {
                let built = attrs.get_index(i).map(|(_, v)| v);
                assert_eq!(
                    attrs.i64_at(i),
                    built.as_ref().and_then(AttrValue::as_i64),
                    "{i}"
                );
                assert_eq!(attrs.str_at(i), built.and_then(|v| v.as_str()), "{i}");
            }
        }
        // The key pass sees the keys `iter` gives, in order, from every source.
        let resource = Resource::builder_empty()
            .with_attributes([KeyValue::new("service.name", "a"), KeyValue::new("k", 1)])
            .build();
        for attrs in [
            Attributes::sdk(&sdk),
            Attributes::otlp(&otlp),
            Attributes::sdk_resource(&resource),
            Attributes::wire(&wire),
            Attributes::default(),
        ] {
            let mut keys = Vec::new();
            attrs.for_each_key(|i, k| keys.push((i, k)));
            let expected: Vec<_> = attrs.iter().map(|(k, _)| k).enumerate().collect();
            assert_eq!(keys, expected);
        }
        assert_eq!(Attributes::sdk(&sdk).i64_at(1), Some(42));
        assert_eq!(Attributes::sdk(&sdk).i64_at(4), Some(12));
    }

    #[test]
    fn masked_entries_are_written_as_the_document_writer_writes_them() {
        use any_value::Value as V;
        let sdk = vec![
            KeyValue::new("s", "a\"b\n"),
            KeyValue::new("i", -7),
            KeyValue::new("f", 0.5),
            KeyValue::new("nan", f64::NAN),
            KeyValue::new("b", true),
            KeyValue::new("arr", Value::Array(Array::I64(vec![1, 2]))),
            KeyValue::new("k\u{1}", "clean text of sixteen bytes or more"),
        ];
        let otlp = vec![
            proto("s", Some(V::StringValue("x\\y".into()))),
            proto("i", Some(V::IntValue(i64::MIN))),
            proto("f", Some(V::DoubleValue(1e300))),
            proto("b", Some(V::BoolValue(false))),
            proto("bytes", Some(V::BytesValue(vec![0, 255]))),
            proto(
                "arr",
                Some(V::ArrayValue(ArrayValue {
                    values: vec![ProtoValue {
                        value: Some(V::StringValue("q".into())),
                    }],
                })),
            ),
            proto(
                "map",
                Some(V::KvlistValue(KeyValueList {
                    values: vec![proto("inner", Some(V::IntValue(1)))],
                })),
            ),
            proto("empty", None),
        ];
        for attrs in [Attributes::sdk(&sdk), Attributes::otlp(&otlp)] {
            let all = (1u64 << attrs.len()) - 1;
            for mask in [0, all, all & 0b1010_1010, 1, 1 << (attrs.len() - 1)] {
                let mut out = Vec::new();
                attrs.write_json_masked(mask, &mut out);
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    String::from_utf8(by_entries(attrs, mask)).unwrap(),
                    "{mask:b}"
                );
            }
        }
    }
}
