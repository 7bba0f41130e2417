//! [`WireRequest`]: an OTLP `ExportTraceServiceRequest` read in place from its protobuf
//! bytes, and [`WireSpan`], its spans seen through [`SpanView`]: keys, strings and ids
//! borrow the request body, so decoding allocates a few record vectors per request and
//! one slice per attribute list (and per array or map value), not one per attribute, id or
//! string as `opentelemetry-proto`'s owned types do.
//!
//! [`WireRequest::parse`] checks the whole request in one pass, as prost's decoding would:
//! wire types of the known fields, lengths, varints, the UTF-8 of every string field at
//! every depth (nested array and map values included, unknown fields skipped). What it
//! accepts, prost accepts with the same content; the translation of a [`WireSpan`] is the
//! translation of the [`crate::OtlpSpan`] prost would give, byte for byte.
//! Well-formed but unusual requests, whose decoding merges or replaces
//! ([`WireError::Unusual`]: a singular field given twice, a group, values nested deeper
//! than [`MAX_VALUE_DEPTH`]), are left to prost: decode them the owned way.

use crate::otlp::{OtlpRules, id_bytes};
use crate::view::{Attributes, EventTime, EventView, LinkView, SpanKind, SpanStatus, SpanView};
use xray_model::{SegmentId, TraceId, epoch_seconds_from_nanos};

/// How deep array and map attribute values may nest (an attribute's value is depth 1)
/// before [`WireRequest::parse`] leaves the request to prost, whose decoding limits
/// nesting to 100 messages.
pub const MAX_VALUE_DEPTH: u32 = 16;

/// Why [`WireRequest::parse`] gave no view; in both cases the request is decoded with
/// prost instead, which accepts or rejects it with its own error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Not a well-formed `ExportTraceServiceRequest`: prost rejects it too.
    Malformed,
    /// Well-formed protobuf that the view does not represent: a singular field given
    /// more than once (prost merges messages and keeps the last scalar), a group, or
    /// values nested deeper than [`MAX_VALUE_DEPTH`].
    Unusual,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WireError::Malformed => "not a well-formed OTLP ExportTraceServiceRequest",
            WireError::Unusual => "a protobuf structure the borrowed view does not represent",
        })
    }
}

impl std::error::Error for WireError {}

type Result<T> = std::result::Result<T, WireError>;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const FIXED32: u8 = 5;

/// Reads protobuf wire format as prost does, advancing through a borrowed slice.
#[derive(Clone, Copy)]
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// A varint of at most 10 bytes, the tenth at most 1 (prost's overflow check).
    #[inline]
    fn varint(&mut self) -> Result<u64> {
        let buf = self.buf;
        match buf.first() {
            Some(&b) if b < 0x80 => {
                self.buf = &buf[1..];
                return Ok(u64::from(b));
            }
            None => return Err(WireError::Malformed),
            Some(_) => {}
        }
        let mut value = 0u64;
        for (i, &byte) in buf.iter().take(10).enumerate() {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                if i == 9 && byte >= 2 {
                    return Err(WireError::Malformed);
                }
                self.buf = &buf[i + 1..];
                return Ok(value);
            }
        }
        Err(WireError::Malformed)
    }

    /// A field key: tag (at least 1) and wire type (0 to 5).
    #[inline]
    fn key(&mut self) -> Result<(u32, u8)> {
        let key = self.varint()?;
        if key > u64::from(u32::MAX) || key & 7 > 5 || key >> 3 == 0 {
            return Err(WireError::Malformed);
        }
        Ok(((key >> 3) as u32, (key & 7) as u8))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.buf.len() {
            return Err(WireError::Malformed);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// A length-delimited field's bytes.
    #[inline]
    fn delimited(&mut self) -> Result<&'a [u8]> {
        let len = self.varint()?;
        if len > self.buf.len() as u64 {
            return Err(WireError::Malformed);
        }
        self.take(len as usize)
    }

    fn fixed64(&mut self) -> Result<u64> {
        let bytes = self.take(8)?;
        Ok(u64::from_le_bytes(bytes.try_into().unwrap_or_default()))
    }

    fn fixed32(&mut self) -> Result<u32> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes(bytes.try_into().unwrap_or_default()))
    }

    /// Skips an unknown field. Groups (deprecated, never in OTLP) are left to prost.
    fn skip(&mut self, wire: u8) -> Result<()> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.delimited().map(drop),
            FIXED32 => self.take(4).map(drop),
            START_GROUP => Err(WireError::Unusual),
            _ => Err(WireError::Malformed),
        }
    }

    /// Calls `field(tag, wire, reader)` for each field of the message, in order.
    #[inline]
    fn fields(mut self, mut field: impl FnMut(u32, u8, &mut Self) -> Result<()>) -> Result<()> {
        while !self.is_empty() {
            let (tag, wire) = self.key()?;
            field(tag, wire, &mut self)?;
        }
        Ok(())
    }
}

/// The wire type a known field must have (prost rejects another).
#[inline]
fn expect(wire: u8, want: u8) -> Result<()> {
    if wire == want {
        Ok(())
    } else {
        Err(WireError::Malformed)
    }
}

/// The one rule for fields that may appear once: a second occurrence (which prost merges
/// or replaces) makes the request [`WireError::Unusual`].
#[inline]
fn once(seen: &mut u32, tag: u32) -> Result<()> {
    let bit = 1u32 << (tag & 31);
    if *seen & bit != 0 {
        return Err(WireError::Unusual);
    }
    *seen |= bit;
    Ok(())
}

/// The bytes as a string, when they are UTF-8 (prost's check of every string field).
#[inline]
fn string(bytes: &[u8]) -> Result<&str> {
    if is_ascii(bytes) {
        #[allow(unsafe_code)]
        // SAFETY: ASCII bytes are valid UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).map_err(|_| WireError::Malformed)
}

/// Whether every byte is below 0x80, eight at a time: most keys and values are short and
/// ASCII, where `str::from_utf8` goes byte by byte until its input is aligned.
#[inline]
fn is_ascii(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(8);
    let mut high = 0u64;
    for chunk in &mut chunks {
        high |= u64::from_le_bytes(chunk.try_into().unwrap_or_default());
    }
    for &byte in chunks.remainder() {
        high |= u64::from(byte);
    }
    high & 0x8080_8080_8080_8080 == 0
}

/// A string field (wire type checked, UTF-8 checked).
#[inline]
fn string_field<'a>(wire: u8, r: &mut Reader<'a>) -> Result<&'a str> {
    expect(wire, LEN)?;
    string(r.delimited()?)
}

/// A bytes field.
#[inline]
fn bytes_field<'a>(wire: u8, r: &mut Reader<'a>) -> Result<&'a [u8]> {
    expect(wire, LEN)?;
    r.delimited()
}

/// A message field's body.
#[inline]
fn message_field<'a>(wire: u8, r: &mut Reader<'a>) -> Result<&'a [u8]> {
    expect(wire, LEN)?;
    r.delimited()
}

#[inline]
fn varint_field(wire: u8, r: &mut Reader<'_>) -> Result<u64> {
    expect(wire, VARINT)?;
    r.varint()
}

/// One attribute value, as read from an `AnyValue`: strings and bytes borrowed from the
/// body, arrays and maps as lists of their own (one allocation each; rare in spans).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WireValue<'a> {
    Empty,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    /// An `ArrayValue`'s items.
    Array(Box<[WireValue<'a>]>),
    /// A `KeyValueList`'s entries.
    Map(WireList<'a>),
}

/// One attribute (`KeyValue`), borrowed from the request body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WireKv<'a> {
    pub(crate) key: &'a str,
    pub(crate) value: WireValue<'a>,
}

/// Reads an `AnyValue` message at nesting `depth`, checking nested values.
fn any_value(body: &[u8], depth: u32) -> Result<WireValue<'_>> {
    if depth > MAX_VALUE_DEPTH {
        return Err(WireError::Unusual);
    }
    let mut value = WireValue::Empty;
    let mut seen = 0u32;
    Reader::new(body).fields(|tag, wire, r| {
        if (1..=8).contains(&tag) {
            // A oneof: a second member replaces or merges into the first in prost.
            once(&mut seen, 1)?;
        }
        value = match tag {
            1 => WireValue::Str(string_field(wire, r)?),
            2 => WireValue::Bool(varint_field(wire, r)? != 0),
            3 => WireValue::Int(varint_field(wire, r)? as i64),
            4 => {
                expect(wire, FIXED64)?;
                WireValue::Double(f64::from_bits(r.fixed64()?))
            }
            5 => WireValue::Array(values_of(message_field(wire, r)?, |item| {
                any_value(item, depth + 1)
            })?),
            6 => WireValue::Map(values_of(message_field(wire, r)?, |item| {
                key_value(item, depth + 1)
            })?),
            7 => WireValue::Bytes(bytes_field(wire, r)?),
            // `string_value_strindex`: only meaningful for profiles (no string table).
            8 => {
                varint_field(wire, r)?;
                WireValue::Empty
            }
            _ => {
                r.skip(wire)?;
                return Ok(());
            }
        };
        Ok(())
    })?;
    Ok(value)
}

/// What `item` makes of the body of each field 1 (the repeated `values` of `ArrayValue`
/// and `KeyValueList`), other fields skipped.
fn values_of<'a, T>(
    body: &'a [u8],
    mut item: impl FnMut(&'a [u8]) -> Result<T>,
) -> Result<Box<[T]>> {
    let mut values = Vec::new();
    Reader::new(body).fields(|tag, wire, r| {
        match tag {
            1 => values.push(item(message_field(wire, r)?)?),
            _ => r.skip(wire)?,
        }
        Ok(())
    })?;
    Ok(values.into_boxed_slice())
}

/// Reads a `KeyValue` message at nesting `depth`.
#[inline]
fn key_value(body: &[u8], depth: u32) -> Result<WireKv<'_>> {
    match canonical_key_value(body) {
        Some(kv) => Ok(kv),
        None => any_key_value(body, depth),
    }
}

/// A `KeyValue` as prost and the other SDKs' encoders write it (the key, then a scalar or
/// string value, each field once, nothing else), read without the general field loop;
/// `None` for anything else, which [`any_key_value`] reads (or rejects).
#[inline]
fn canonical_key_value(body: &[u8]) -> Option<WireKv<'_>> {
    let mut r = Reader::new(body);
    if r.buf.first() != Some(&(1 << 3 | LEN)) {
        return None;
    }
    r.buf = &r.buf[1..];
    let key = string(r.delimited().ok()?).ok()?;
    if r.is_empty() {
        return Some(WireKv {
            key,
            value: WireValue::Empty,
        });
    }
    if r.buf[0] != (2 << 3 | LEN) {
        return None;
    }
    r.buf = &r.buf[1..];
    let mut v = Reader::new(r.delimited().ok()?);
    if !r.is_empty() {
        return None;
    }
    let value = match v.buf.first() {
        None => WireValue::Empty,
        Some(&key) => {
            v.buf = &v.buf[1..];
            match key {
                0x0a => WireValue::Str(string(v.delimited().ok()?).ok()?),
                0x10 => WireValue::Bool(v.varint().ok()? != 0),
                0x18 => WireValue::Int(v.varint().ok()? as i64),
                0x21 => WireValue::Double(f64::from_bits(v.fixed64().ok()?)),
                0x3a => WireValue::Bytes(v.delimited().ok()?),
                _ => return None,
            }
        }
    };
    v.is_empty().then_some(WireKv { key, value })
}

/// Reads any `KeyValue` message at nesting `depth`, field by field.
fn any_key_value(body: &[u8], depth: u32) -> Result<WireKv<'_>> {
    let mut kv = WireKv {
        key: "",
        value: WireValue::Empty,
    };
    let mut seen = 0u32;
    Reader::new(body).fields(|tag, wire, r| {
        match tag {
            1 => {
                once(&mut seen, tag)?;
                kv.key = string_field(wire, r)?;
            }
            2 => {
                once(&mut seen, tag)?;
                kv.value = any_value(message_field(wire, r)?, depth)?;
            }
            // `key_strindex` (profiles only).
            3 => {
                once(&mut seen, tag)?;
                varint_field(wire, r)?;
            }
            _ => r.skip(wire)?,
        }
        Ok(())
    })?;
    Ok(kv)
}

/// A range of records in one of the request's vectors.
#[derive(Debug, Clone, Copy, Default)]
struct Records {
    start: usize,
    end: usize,
}

impl Records {
    /// From `start` to the end of `list`.
    fn of<T>(list: &[T], start: usize) -> Self {
        Self {
            start,
            end: list.len(),
        }
    }

    fn slice<T>(self, list: &[T]) -> &[T] {
        list.get(self.start..self.end).unwrap_or_default()
    }

    fn len(self) -> usize {
        self.end - self.start
    }
}

/// An attribute list of a request: one allocation per list, not per attribute (a list
/// held in place is what a metadata namespace borrows, see [`Attributes::wire`]).
pub(crate) type WireList<'a> = Box<[WireKv<'a>]>;

#[derive(Debug, Default)]
struct ResourceRecord<'a> {
    attributes: WireList<'a>,
    scopes: Records,
}

#[derive(Debug, Default)]
struct ScopeRecord<'a> {
    name: &'a str,
    version: &'a str,
    spans: Records,
}

#[derive(Debug, Default)]
struct SpanRecord<'a> {
    trace_id: &'a [u8],
    span_id: &'a [u8],
    parent_span_id: &'a [u8],
    trace_state: &'a str,
    flags: u32,
    name: &'a str,
    kind: i32,
    start: u64,
    end: u64,
    status_code: i32,
    status_message: &'a str,
    attributes: WireList<'a>,
    events: Records,
    links: Records,
}

#[derive(Debug)]
struct EventRecord<'a> {
    time: u64,
    name: &'a str,
    attributes: WireList<'a>,
}

#[derive(Debug)]
struct LinkRecord<'a> {
    trace_id: &'a [u8],
    span_id: &'a [u8],
    attributes: WireList<'a>,
}

/// An OTLP `ExportTraceServiceRequest` read in place from its protobuf bytes: small
/// records of its resources, scopes, spans, events, links and attributes, whose strings
/// and ids borrow the body.
///
/// # Examples
///
/// ```
/// use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
/// use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
/// use prost::Message;
/// use xray_translate::{SpanView, Translator, WireRequest};
///
/// let request = ExportTraceServiceRequest {
///     resource_spans: vec![ResourceSpans {
///         scope_spans: vec![ScopeSpans {
///             spans: vec![Span {
///                 trace_id: vec![1; 16],
///                 span_id: vec![2; 8],
///                 name: "GET /".into(),
///                 kind: 2,
///                 start_time_unix_nano: 1_700_000_000_000_000_000,
///                 end_time_unix_nano: 1_700_000_000_250_000_000,
///                 ..Default::default()
///             }],
///             ..Default::default()
///         }],
///         ..Default::default()
///     }],
/// };
/// let body = request.encode_to_vec();
/// let wire = WireRequest::parse(&body).unwrap();
/// let translator = Translator::default();
/// for resource_spans in wire.resource_spans() {
///     let resource = translator.prepare(resource_spans.resource());
///     for span in resource_spans.spans() {
///         assert_eq!(span.name(), "GET /");
///         let doc = resource.translate(&span);
///         assert_eq!(doc.name, "GET /");
///     }
/// }
/// ```
#[derive(Debug, Default)]
pub struct WireRequest<'a> {
    resources: Vec<ResourceRecord<'a>>,
    scopes: Vec<ScopeRecord<'a>>,
    spans: Vec<SpanRecord<'a>>,
    events: Vec<EventRecord<'a>>,
    links: Vec<LinkRecord<'a>>,
    /// The attributes of the lists being read (a stack: an event's list is taken off
    /// before its span's continues).
    scratch: Vec<WireKv<'a>>,
}

impl<'a> WireRequest<'a> {
    /// Reads `body`, a protobuf `ExportTraceServiceRequest`, checking all of it.
    ///
    /// # Errors
    ///
    /// [`WireError::Malformed`] when prost's decoding would fail too,
    /// [`WireError::Unusual`] for well-formed requests the view does not represent; in
    /// both cases decode the request with prost instead.
    pub fn parse(body: &'a [u8]) -> Result<Self> {
        let mut request = WireRequest::default();
        Reader::new(body).fields(|tag, wire, r| match tag {
            1 => request.read_resource_spans(message_field(wire, r)?),
            _ => r.skip(wire),
        })?;
        Ok(request)
    }

    /// The request's `ResourceSpans`, in order.
    pub fn resource_spans(&self) -> impl ExactSizeIterator<Item = WireResourceSpans<'_>> {
        self.resources
            .iter()
            .map(move |resource| WireResourceSpans {
                request: self,
                resource,
            })
    }

    /// How many spans the request holds.
    pub fn span_count(&self) -> usize {
        self.spans.len()
    }

    fn read_resource_spans(&mut self, body: &'a [u8]) -> Result<()> {
        let scopes = self.scopes.len();
        let mut attributes = WireList::default();
        let mut seen = 0u32;
        Reader::new(body).fields(|tag, wire, r| match tag {
            1 => {
                once(&mut seen, tag)?;
                attributes = self.resource(message_field(wire, r)?)?;
                Ok(())
            }
            2 => self.scope_spans(message_field(wire, r)?),
            3 => {
                once(&mut seen, tag)?;
                string_field(wire, r).map(drop)
            }
            _ => r.skip(wire),
        })?;
        self.resources.push(ResourceRecord {
            attributes,
            scopes: Records::of(&self.scopes, scopes),
        });
        Ok(())
    }

    /// The attributes pushed on the scratch stack since `start`, as a list of their own.
    fn list_from(&mut self, start: usize) -> WireList<'a> {
        self.scratch.drain(start..).collect()
    }

    /// A `Resource`: its attributes; entity references checked.
    fn resource(&mut self, body: &'a [u8]) -> Result<WireList<'a>> {
        let start = self.scratch.len();
        let mut seen = 0u32;
        Reader::new(body).fields(|tag, wire, r| match tag {
            1 => {
                let kv = key_value(message_field(wire, r)?, 1)?;
                self.scratch.push(kv);
                Ok(())
            }
            2 => {
                once(&mut seen, tag)?;
                varint_field(wire, r).map(drop)
            }
            3 => entity_ref(message_field(wire, r)?),
            _ => r.skip(wire),
        })?;
        Ok(self.list_from(start))
    }

    fn scope_spans(&mut self, body: &'a [u8]) -> Result<()> {
        let spans = self.spans.len();
        let (mut name, mut version) = ("", "");
        let mut seen = 0u32;
        Reader::new(body).fields(|tag, wire, r| match tag {
            1 => {
                once(&mut seen, tag)?;
                (name, version) = scope(message_field(wire, r)?)?;
                Ok(())
            }
            2 => self.span(message_field(wire, r)?),
            3 => {
                once(&mut seen, tag)?;
                string_field(wire, r).map(drop)
            }
            _ => r.skip(wire),
        })?;
        self.scopes.push(ScopeRecord {
            name,
            version,
            spans: Records::of(&self.spans, spans),
        });
        Ok(())
    }

    fn span(&mut self, body: &'a [u8]) -> Result<()> {
        let attributes = self.scratch.len();
        let events = self.events.len();
        let links = self.links.len();
        let mut span = SpanRecord::default();
        let mut seen = 0u32;
        Reader::new(body).fields(|tag, wire, r| {
            match tag {
                9 => {
                    let kv = key_value(message_field(wire, r)?, 1)?;
                    self.scratch.push(kv);
                }
                11 => self.event(message_field(wire, r)?)?,
                13 => self.link(message_field(wire, r)?)?,
                1..=16 => {
                    once(&mut seen, tag)?;
                    match tag {
                        1 => span.trace_id = bytes_field(wire, r)?,
                        2 => span.span_id = bytes_field(wire, r)?,
                        3 => span.trace_state = string_field(wire, r)?,
                        4 => span.parent_span_id = bytes_field(wire, r)?,
                        5 => span.name = string_field(wire, r)?,
                        6 => span.kind = varint_field(wire, r)? as i32,
                        7 => {
                            expect(wire, FIXED64)?;
                            span.start = r.fixed64()?;
                        }
                        8 => {
                            expect(wire, FIXED64)?;
                            span.end = r.fixed64()?;
                        }
                        10 | 12 | 14 => {
                            varint_field(wire, r)?;
                        }
                        15 => {
                            (span.status_code, span.status_message) =
                                status(message_field(wire, r)?)?;
                        }
                        16 => {
                            expect(wire, FIXED32)?;
                            span.flags = r.fixed32()?;
                        }
                        _ => r.skip(wire)?,
                    }
                }
                _ => r.skip(wire)?,
            }
            Ok(())
        })?;
        span.attributes = self.list_from(attributes);
        span.events = Records::of(&self.events, events);
        span.links = Records::of(&self.links, links);
        self.spans.push(span);
        Ok(())
    }

    fn event(&mut self, body: &'a [u8]) -> Result<()> {
        let start = self.scratch.len();
        let (mut time, mut name) = (0, "");
        let mut seen = 0u32;
        Reader::new(body).fields(|tag, wire, r| {
            match tag {
                1 => {
                    once(&mut seen, tag)?;
                    expect(wire, FIXED64)?;
                    time = r.fixed64()?;
                }
                2 => {
                    once(&mut seen, tag)?;
                    name = string_field(wire, r)?;
                }
                3 => {
                    let kv = key_value(message_field(wire, r)?, 1)?;
                    self.scratch.push(kv);
                }
                4 => {
                    once(&mut seen, tag)?;
                    varint_field(wire, r)?;
                }
                _ => r.skip(wire)?,
            }
            Ok(())
        })?;
        let attributes = self.list_from(start);
        self.events.push(EventRecord {
            time,
            name,
            attributes,
        });
        Ok(())
    }

    fn link(&mut self, body: &'a [u8]) -> Result<()> {
        let start = self.scratch.len();
        let (mut trace_id, mut span_id): (&[u8], &[u8]) = (&[], &[]);
        let mut seen = 0u32;
        Reader::new(body).fields(|tag, wire, r| {
            match tag {
                4 => {
                    let kv = key_value(message_field(wire, r)?, 1)?;
                    self.scratch.push(kv);
                }
                1..=6 => {
                    once(&mut seen, tag)?;
                    match tag {
                        1 => trace_id = bytes_field(wire, r)?,
                        2 => span_id = bytes_field(wire, r)?,
                        3 => {
                            string_field(wire, r)?;
                        }
                        5 => {
                            varint_field(wire, r)?;
                        }
                        _ => {
                            expect(wire, FIXED32)?;
                            r.fixed32()?;
                        }
                    }
                }
                _ => r.skip(wire)?,
            }
            Ok(())
        })?;
        let attributes = self.list_from(start);
        self.links.push(LinkRecord {
            trace_id,
            span_id,
            attributes,
        });
        Ok(())
    }
}

/// An `InstrumentationScope`: name and version (attributes checked, not kept: the
/// translation does not read them).
fn scope(body: &[u8]) -> Result<(&str, &str)> {
    let (mut name, mut version) = ("", "");
    let mut seen = 0u32;
    Reader::new(body).fields(|tag, wire, r| {
        match tag {
            1 => {
                once(&mut seen, tag)?;
                name = string_field(wire, r)?;
            }
            2 => {
                once(&mut seen, tag)?;
                version = string_field(wire, r)?;
            }
            3 => {
                key_value(message_field(wire, r)?, 1)?;
            }
            4 => {
                once(&mut seen, tag)?;
                varint_field(wire, r)?;
            }
            _ => r.skip(wire)?,
        }
        Ok(())
    })?;
    Ok((name, version))
}

/// A `Status`: code and message.
fn status(body: &[u8]) -> Result<(i32, &str)> {
    let (mut code, mut message) = (0, "");
    let mut seen = 0u32;
    Reader::new(body).fields(|tag, wire, r| {
        match tag {
            2 => {
                once(&mut seen, tag)?;
                message = string_field(wire, r)?;
            }
            3 => {
                once(&mut seen, tag)?;
                code = varint_field(wire, r)? as i32;
            }
            _ => r.skip(wire)?,
        }
        Ok(())
    })?;
    Ok((code, message))
}

/// An `EntityRef` of a resource, checked only.
fn entity_ref(body: &[u8]) -> Result<()> {
    let mut seen = 0u32;
    Reader::new(body).fields(|tag, wire, r| match tag {
        1 | 2 => {
            once(&mut seen, tag)?;
            string_field(wire, r).map(drop)
        }
        3 | 4 => string_field(wire, r).map(drop),
        _ => r.skip(wire),
    })
}

/// One `ResourceSpans` of a [`WireRequest`].
#[derive(Debug, Clone, Copy)]
pub struct WireResourceSpans<'a> {
    request: &'a WireRequest<'a>,
    resource: &'a ResourceRecord<'a>,
}

impl<'a> WireResourceSpans<'a> {
    /// The resource's attributes (none when the resource is absent), for
    /// [`crate::Translator::prepare`].
    pub fn resource(&self) -> Attributes<'a> {
        Attributes::wire(&self.resource.attributes)
    }

    /// Its spans, over all its scopes, in order.
    pub fn spans(&self) -> impl Iterator<Item = WireSpan<'a>> + use<'a> {
        let request = self.request;
        let resource = self.resource;
        resource
            .scopes
            .slice(&request.scopes)
            .iter()
            .flat_map(move |scope| {
                scope
                    .spans
                    .slice(&request.spans)
                    .iter()
                    .map(move |span| WireSpan {
                        request,
                        resource,
                        scope,
                        span,
                    })
            })
    }

    /// How many spans it holds.
    pub fn span_count(&self) -> usize {
        self.resource
            .scopes
            .slice(&self.request.scopes)
            .iter()
            .map(|s| s.spans.len())
            .sum()
    }
}

/// One span of a [`WireRequest`], with its resource and scope: the same view of the
/// span as [`crate::OtlpSpan`] gives of prost's decoding of it.
#[derive(Debug, Clone, Copy)]
pub struct WireSpan<'a> {
    request: &'a WireRequest<'a>,
    resource: &'a ResourceRecord<'a>,
    scope: &'a ScopeRecord<'a>,
    span: &'a SpanRecord<'a>,
}

impl<'a> WireSpan<'a> {
    fn rules(&self) -> OtlpRules<'a> {
        let s = self.span;
        OtlpRules {
            trace_id: s.trace_id,
            span_id: s.span_id,
            parent_span_id: s.parent_span_id,
        }
    }
}

impl<'a> SpanView<'a> for WireSpan<'a> {
    fn trace_id(&self) -> TraceId {
        TraceId::from_bytes(id_bytes(self.span.trace_id))
    }

    fn span_id(&self) -> SegmentId {
        SegmentId::from_bytes(id_bytes(self.span.span_id))
    }

    fn parent_span_id(&self) -> Option<SegmentId> {
        self.rules().parent_span_id()
    }

    fn parent_is_remote(&self) -> bool {
        OtlpRules::parent_is_remote(self.span.flags)
    }

    fn trace_state(&self, key: &str) -> Option<&'a str> {
        crate::otlp::trace_state_get(self.span.trace_state, key)
    }

    fn kind(&self) -> SpanKind {
        OtlpRules::kind(self.span.kind)
    }

    fn name(&self) -> &'a str {
        self.span.name
    }

    fn start_time(&self) -> f64 {
        epoch_seconds_from_nanos(self.span.start)
    }

    fn end_time(&self) -> Option<f64> {
        OtlpRules::end_time(self.span.end)
    }

    fn status(&self) -> SpanStatus<'a> {
        OtlpRules::status(self.span.status_code, self.span.status_message)
    }

    fn attributes(&self) -> Attributes<'a> {
        Attributes::wire(&self.span.attributes)
    }

    fn resource(&self) -> Attributes<'a> {
        WireResourceSpans {
            request: self.request,
            resource: self.resource,
        }
        .resource()
    }

    fn events(&self) -> impl Iterator<Item = EventView<'a>> {
        self.span
            .events
            .slice(&self.request.events)
            .iter()
            .map(|e| EventView {
                name: e.name,
                time: EventTime::UnixNanos(e.time),
                attributes: Attributes::wire(&e.attributes),
            })
    }

    fn links(&self) -> impl Iterator<Item = LinkView<'a>> {
        self.span
            .links
            .slice(&self.request.links)
            .iter()
            .map(|l| LinkView {
                trace_id: TraceId::from_bytes(id_bytes(l.trace_id)),
                span_id: SegmentId::from_bytes(id_bytes(l.span_id)),
                attributes: Attributes::wire(&l.attributes),
            })
    }

    fn scope(&self) -> Option<(&'a str, Option<&'a str>)> {
        OtlpRules::scope(self.scope.name, self.scope.version)
    }

    fn ids_are_well_formed(&self) -> bool {
        self.rules().ids_are_well_formed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(bytes: &[u8]) -> Result<u64> {
        Reader::new(bytes).varint()
    }

    #[test]
    fn varints_follow_prosts_limits() {
        assert_eq!(varint(&[0x7f]), Ok(127));
        assert_eq!(varint(&[0x80, 0x01]), Ok(128));
        // Ten bytes, the last at most 1.
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(varint(&max), Ok(u64::MAX));
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(varint(&over), Err(WireError::Malformed));
        assert_eq!(varint(&[0x80; 11]), Err(WireError::Malformed));
        assert_eq!(varint(&[0x80]), Err(WireError::Malformed));
        assert_eq!(varint(&[]), Err(WireError::Malformed));
        // Not minimal, still accepted.
        assert_eq!(varint(&[0x80, 0x00]), Ok(0));
    }

    #[test]
    fn keys_need_a_tag_and_a_known_wire_type() {
        assert_eq!(Reader::new(&[0x08]).key(), Ok((1, 0)));
        assert_eq!(Reader::new(&[0x00]).key(), Err(WireError::Malformed));
        assert_eq!(Reader::new(&[0x0e]).key(), Err(WireError::Malformed));
        // A key over u32::MAX.
        let big = [0x80, 0x80, 0x80, 0x80, 0x10];
        assert_eq!(Reader::new(&big).key(), Err(WireError::Malformed));
    }

    #[test]
    fn a_singular_field_twice_and_groups_are_unusual() {
        // ResourceSpans { resource: {}, resource: {} }
        let body = [0x0a, 0x04, 0x0a, 0x00, 0x0a, 0x00];
        assert_eq!(WireRequest::parse(&body).err(), Some(WireError::Unusual));
        // An unknown group field at the top level.
        let body = [0x1b, 0x1c];
        assert_eq!(WireRequest::parse(&body).err(), Some(WireError::Unusual));
        // The empty request is a request.
        assert_eq!(WireRequest::parse(&[]).map(|r| r.span_count()), Ok(0));
    }
}
