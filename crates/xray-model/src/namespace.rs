//! Metadata namespaces: entries of their own, entries shared by many documents, or
//! entries read straight from where they live (a span's attribute list) and written to
//! JSON without being copied first.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::document::{AnyValue, Fields};

/// A list of entries that stays where it lives (for example a span's attribute list), of
/// which a namespace takes some by position ([`Namespace::picked`]): borrowed for as long
/// as the document, so the namespace needs no allocation of its own. Keys at the picked
/// positions must be unique.
///
/// # Examples
///
/// ```
/// use xray_model::{AnyValue, FieldList, Namespace, Segment};
///
/// /// A list of integers, read in place.
/// struct Ints(Vec<(&'static str, i64)>);
///
/// impl FieldList for Ints {
///     fn for_each_picked<'s>(&'s self, picked: u64, f: &mut dyn FnMut(&'s str, AnyValue<'s>)) {
///         for (i, &(k, v)) in self.0.iter().enumerate().take(64) {
///             if picked & (1 << i) != 0 {
///                 f(k, AnyValue::Int(v));
///             }
///         }
///     }
/// }
///
/// let list = Ints(vec![("a", 1), ("b", 2), ("c", 3)]);
/// let mut seg = Segment::default();
/// seg.metadata.insert("default", Namespace::picked(&list, 0b101));
/// assert!(seg.to_json().ends_with(r#""metadata":{"default":{"a":1,"c":3}}}"#));
/// ```
pub trait FieldList: Send + Sync {
    /// Calls `f` with each entry at a position whose bit is set in `picked` (bit `i` for
    /// position `i`), in order.
    fn for_each_picked<'s>(&'s self, picked: u64, f: &mut dyn FnMut(&'s str, AnyValue<'s>));

    /// Appends the picked entries as a JSON object, the text the document writer makes of
    /// the same entries held as [`Fields`]. The default reads them through
    /// [`FieldList::for_each_picked`]; a list that writes them directly (with
    /// [`crate::write_json_string`] and [`crate::write_json_value`]) must write that same
    /// text.
    fn write_json_picked(&self, picked: u64, out: &mut Vec<u8>) {
        crate::json::write_picked(out, self, picked);
    }
}

/// The entries of one metadata namespace (`metadata.<namespace>`). Compared, printed and
/// serialized by its entries, whichever way they are held.
///
/// # Examples
///
/// ```
/// use xray_model::{AnyValue, Fields, Namespace};
///
/// let mut ns = Namespace::from(Fields::new());
/// ns.fields_mut().insert("k", AnyValue::Int(1));
/// assert_eq!(ns.len(), 1);
/// assert_eq!(ns.to_fields().get("k"), Some(&AnyValue::Int(1)));
/// ```
pub struct Namespace<'a>(pub(crate) Repr<'a>);

/// How a [`Namespace`] holds its entries.
pub(crate) enum Repr<'a> {
    /// Entries of its own.
    Owned(Fields<'a, AnyValue<'a>>),
    /// Entries shared with other documents (a resource's, prepared once).
    Shared(&'a Fields<'a, AnyValue<'a>>),
    /// Entries shared with other documents, their JSON text written once.
    Encoded(&'a EncodedFields<'a>),
    /// A single entry, held without a vector.
    One(Cow<'a, str>, AnyValue<'a>),
    /// The entries of a list at the positions set in the mask, read where they live.
    Picked(&'a dyn FieldList, u64),
}

/// Entries of a metadata namespace with their JSON text written once, for entries that
/// many documents share (a resource's, prepared once): each document copies the text
/// instead of writing every entry again.
///
/// # Examples
///
/// ```
/// use xray_model::{AnyValue, EncodedFields, Fields, Namespace, Segment};
///
/// let mut fields = Fields::new();
/// fields.insert("service.name", AnyValue::Str("checkout".into()));
/// let shared = EncodedFields::new(fields);
/// assert_eq!(shared.json(), br#"{"service.name":"checkout"}"#);
/// let mut seg = Segment::default();
/// seg.metadata.insert("otel.resource", Namespace::encoded(&shared));
/// assert!(seg.to_json().ends_with(r#""metadata":{"otel.resource":{"service.name":"checkout"}}}"#));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedFields<'a> {
    fields: Fields<'a, AnyValue<'a>>,
    json: Box<[u8]>,
}

impl<'a> EncodedFields<'a> {
    /// The entries, with their JSON object text written now.
    pub fn new(fields: Fields<'a, AnyValue<'a>>) -> Self {
        let mut json = Vec::new();
        crate::json::write_fields(&mut json, &fields);
        Self {
            fields,
            json: json.into_boxed_slice(),
        }
    }

    /// The entries.
    pub fn fields(&self) -> &Fields<'a, AnyValue<'a>> {
        &self.fields
    }

    /// Their JSON object text, as the document writer writes it.
    pub fn json(&self) -> &[u8] {
        &self.json
    }
}

impl<'a> Namespace<'a> {
    /// A namespace borrowing entries that many documents share.
    pub fn shared(fields: &'a Fields<'a, AnyValue<'a>>) -> Self {
        Self(Repr::Shared(fields))
    }

    /// A namespace borrowing entries that many documents share, written as their
    /// prepared JSON text.
    pub fn encoded(fields: &'a EncodedFields<'a>) -> Self {
        Self(Repr::Encoded(fields))
    }

    /// A namespace of a single entry, held without allocating.
    ///
    /// ```
    /// use xray_model::{AnyValue, Namespace};
    /// let ns = Namespace::one("span_name", AnyValue::Str("GET /".into()));
    /// assert_eq!(ns.len(), 1);
    /// assert!(ns.contains_key("span_name"));
    /// ```
    pub fn one(key: impl Into<Cow<'a, str>>, value: AnyValue<'a>) -> Self {
        Self(Repr::One(key.into(), value))
    }

    /// A namespace of the entries of `list` at the positions whose bit is set in `picked`
    /// (bit `i` for position `i`), read from the list when the document is written.
    pub fn picked(list: &'a dyn FieldList, picked: u64) -> Self {
        Self(Repr::Picked(list, picked))
    }

    /// How many entries there are.
    #[inline]
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Picked(_, picked) => picked.count_ones() as usize,
            Repr::Owned(f) => f.len(),
            Repr::Shared(f) => f.len(),
            Repr::Encoded(e) => e.fields.len(),
            Repr::One(..) => 1,
        }
    }

    /// Whether there are no entries.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether an entry has the key `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        match &self.0 {
            Repr::Owned(f) => f.get(key).is_some(),
            Repr::Shared(f) => f.get(key).is_some(),
            Repr::Encoded(e) => e.fields.get(key).is_some(),
            Repr::One(k, _) => k == key,
            Repr::Picked(list, picked) => {
                let mut found = false;
                list.for_each_picked(*picked, &mut |k, _| found |= k == key);
                found
            }
        }
    }

    /// Calls `f` with each entry, in order.
    pub fn for_each(&self, mut f: impl FnMut(&str, &AnyValue<'a>)) {
        match &self.0 {
            Repr::Owned(fields) => fields.0.iter().for_each(|(k, v)| f(k, v)),
            Repr::Shared(fields) => fields.0.iter().for_each(|(k, v)| f(k, v)),
            Repr::Encoded(e) => e.fields.0.iter().for_each(|(k, v)| f(k, v)),
            Repr::One(k, v) => f(k, v),
            Repr::Picked(list, picked) => list.for_each_picked(*picked, &mut |k, v| f(k, &v)),
        }
    }

    /// The entries, borrowed where they are held as [`Fields`], copied otherwise.
    pub fn as_fields(&self) -> Cow<'_, Fields<'a, AnyValue<'a>>> {
        match &self.0 {
            Repr::Owned(f) => Cow::Borrowed(f),
            Repr::Shared(f) => Cow::Borrowed(*f),
            Repr::Encoded(e) => Cow::Borrowed(&e.fields),
            Repr::One(k, v) => Cow::Owned(Fields(vec![(k.clone(), v.clone())])),
            Repr::Picked(list, picked) => Cow::Owned(collect_picked(*list, *picked)),
        }
    }

    /// A copy of the entries.
    pub fn to_fields(&self) -> Fields<'a, AnyValue<'a>> {
        self.as_fields().into_owned()
    }

    /// The entries, copied only when not already held as [`Fields`] of its own.
    pub fn into_fields(self) -> Fields<'a, AnyValue<'a>> {
        match self.0 {
            Repr::Owned(f) => f,
            Repr::Shared(f) => f.clone(),
            Repr::Encoded(e) => e.fields.clone(),
            Repr::One(k, v) => Fields(vec![(k, v)]),
            Repr::Picked(list, picked) => collect_picked(list, picked),
        }
    }

    /// The entries as [`Fields`] to edit: a namespace held any other way is copied into
    /// entries of its own first.
    pub fn fields_mut(&mut self) -> &mut Fields<'a, AnyValue<'a>> {
        if !matches!(self.0, Repr::Owned(_)) {
            let fields = std::mem::take(self).into_fields();
            self.0 = Repr::Owned(fields);
        }
        match &mut self.0 {
            Repr::Owned(f) => f,
            // Made owned just above.
            Repr::Shared(_) | Repr::Encoded(_) | Repr::One(..) | Repr::Picked(..) => {
                unreachable!("made owned above")
            }
        }
    }
}

/// A list's picked entries as [`Fields`].
fn collect_picked<'a>(list: &'a dyn FieldList, picked: u64) -> Fields<'a, AnyValue<'a>> {
    let mut fields = Fields(Vec::with_capacity(picked.count_ones() as usize));
    list.for_each_picked(picked, &mut |k, v| fields.0.push((Cow::Borrowed(k), v)));
    fields
}

impl Default for Namespace<'_> {
    fn default() -> Self {
        Self(Repr::Owned(Fields::new()))
    }
}

impl<'a> From<Fields<'a, AnyValue<'a>>> for Namespace<'a> {
    fn from(fields: Fields<'a, AnyValue<'a>>) -> Self {
        Self(Repr::Owned(fields))
    }
}

impl Clone for Namespace<'_> {
    fn clone(&self) -> Self {
        Self(match &self.0 {
            Repr::Owned(f) => Repr::Owned(f.clone()),
            Repr::Shared(f) => Repr::Shared(f),
            Repr::Encoded(e) => Repr::Encoded(e),
            Repr::One(k, v) => Repr::One(k.clone(), v.clone()),
            Repr::Picked(list, picked) => Repr::Picked(*list, *picked),
        })
    }
}

impl PartialEq for Namespace<'_> {
    fn eq(&self, other: &Self) -> bool {
        *self.as_fields() == *other.as_fields()
    }
}

impl fmt::Debug for Namespace<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_fields().fmt(f)
    }
}

impl Serialize for Namespace<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_fields().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Namespace<'_> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Fields::deserialize(d).map(Namespace::from)
    }
}
