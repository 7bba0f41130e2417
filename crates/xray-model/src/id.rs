//! Trace and segment identifiers in their X-Ray text forms.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an identifier could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The text does not have the `1-8hex-24hex` shape of an X-Ray trace id.
    #[error("trace id {0:?} is not of the form 1-<8 hex>-<24 hex>")]
    TraceId(String),
    /// The text is not 16 hexadecimal digits.
    #[error("segment id {0:?} is not 16 hexadecimal digits")]
    SegmentId(String),
}

/// An X-Ray trace id: 128 bits written as `1-{8 hex}-{24 hex}`.
///
/// The first 32 bits are by convention the start time in epoch seconds, but X-Ray has
/// accepted random (W3C-style) ids since October 2023, so any 128-bit value is valid here.
/// The bits are the same as OpenTelemetry's trace id: convert with [`TraceId::from_bytes`]
/// and [`TraceId::to_bytes`].
///
/// # Examples
///
/// ```
/// use xray_model::TraceId;
/// let id: TraceId = "1-5759e988-bd862e3fe1be46a994272793".parse().unwrap();
/// assert_eq!(id.epoch_seconds(), 0x5759e988);
/// assert_eq!(id.to_string(), "1-5759e988-bd862e3fe1be46a994272793");
/// assert_eq!(TraceId::from_bytes(id.to_bytes()), id);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId(u128);

/// An X-Ray segment (or subsegment) id: 64 bits written as 16 lowercase hex digits.
///
/// # Examples
///
/// ```
/// use xray_model::SegmentId;
/// let id: SegmentId = "53995c3f42cd8ad8".parse().unwrap();
/// assert_eq!(id.to_string(), "53995c3f42cd8ad8");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SegmentId(u64);

/// Length of a trace id in text form.
pub const TRACE_ID_LEN: usize = 35;

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn parse_hex(digits: &[u8]) -> Option<u128> {
    digits
        .iter()
        .try_fold(0u128, |acc, &b| Some(acc << 4 | u128::from(hex_value(b)?)))
}

/// The eight lowercase hex digits of `x` as ASCII bytes, most significant digit in the
/// most significant byte (so `to_be_bytes` gives the text), computed in one word: each
/// nibble spread into a byte of its own, then offset to `0`-`9` or `a`-`f`.
#[inline]
fn hex8(x: u32) -> u64 {
    let x = u64::from(x);
    let x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    let x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    let x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    // 1 in each byte whose nibble is 10 or more (adding 6 carries into bit 4).
    let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    x + 0x3030_3030_3030_3030 + letters * u64::from(b'a' - b'0' - 10)
}

/// The sixteen lowercase hex digits of `x`, most significant first.
#[inline]
fn hex16(x: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&hex8((x >> 32) as u32).to_be_bytes());
    out[8..].copy_from_slice(&hex8(x as u32).to_be_bytes());
    out
}

impl TraceId {
    /// The id from its 128-bit value.
    pub const fn from_u128(value: u128) -> Self {
        Self(value)
    }

    /// The 128-bit value.
    pub const fn to_u128(self) -> u128 {
        self.0
    }

    /// The id from OpenTelemetry's 16-byte big-endian form.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(u128::from_be_bytes(bytes))
    }

    /// OpenTelemetry's 16-byte big-endian form.
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// A time-prefixed id from a start time in epoch seconds and 96 random bits.
    pub const fn from_parts(epoch_seconds: u32, random: u128) -> Self {
        Self((epoch_seconds as u128) << 96 | (random & ((1u128 << 96) - 1)))
    }

    /// The first 32 bits: the start time in epoch seconds for ids that follow the convention.
    pub const fn epoch_seconds(self) -> u32 {
        (self.0 >> 96) as u32
    }

    /// Whether every bit is zero (OpenTelemetry's invalid id).
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Writes the text form into a stack buffer, without allocating.
    pub fn encode(self) -> [u8; TRACE_ID_LEN] {
        let mut out = [0u8; TRACE_ID_LEN];
        out[0] = b'1';
        out[1] = b'-';
        out[10] = b'-';
        out[2..10].copy_from_slice(&hex8((self.0 >> 96) as u32).to_be_bytes());
        out[11..19].copy_from_slice(&hex8((self.0 >> 64) as u32).to_be_bytes());
        out[19..35].copy_from_slice(&hex16(self.0 as u64));
        out
    }

    /// Parses the 32-hex-digit W3C/OpenTelemetry form (`traceparent`'s trace id).
    ///
    /// # Errors
    ///
    /// [`IdError::TraceId`] unless the text is exactly 32 hex digits.
    ///
    /// # Examples
    ///
    /// ```
    /// use xray_model::TraceId;
    ///
    /// let id = TraceId::from_hex32("5759e988bd862e3fe1be46a994272793").unwrap();
    /// assert_eq!(id.to_string(), "1-5759e988-bd862e3fe1be46a994272793");
    /// assert!(TraceId::from_hex32("5759e988").is_err());
    /// ```
    pub fn from_hex32(text: &str) -> Result<Self, IdError> {
        let bytes = text.as_bytes();
        if bytes.len() != 32 {
            return Err(IdError::TraceId(text.to_owned()));
        }
        parse_hex(bytes)
            .map(Self)
            .ok_or_else(|| IdError::TraceId(text.to_owned()))
    }
}

impl FromStr for TraceId {
    type Err = IdError;

    /// Parses `1-{8 hex}-{24 hex}`, hex digits in either case.
    fn from_str(text: &str) -> Result<Self, IdError> {
        let b = text.as_bytes();
        let err = || IdError::TraceId(text.chars().take(64).collect());
        if b.len() != TRACE_ID_LEN || b[0] != b'1' || b[1] != b'-' || b[10] != b'-' {
            return Err(err());
        }
        let high = parse_hex(&b[2..10]).ok_or_else(err)?;
        let low = parse_hex(&b[11..35]).ok_or_else(err)?;
        Ok(Self(high << 96 | low))
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let buf = self.encode();
        // The buffer holds ASCII only.
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl SegmentId {
    /// The id from its 64-bit value.
    pub const fn from_u64(value: u64) -> Self {
        Self(value)
    }

    /// The 64-bit value.
    pub const fn to_u64(self) -> u64 {
        self.0
    }

    /// The id from OpenTelemetry's 8-byte big-endian span id.
    pub const fn from_bytes(bytes: [u8; 8]) -> Self {
        Self(u64::from_be_bytes(bytes))
    }

    /// OpenTelemetry's 8-byte big-endian form.
    pub const fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// Whether every bit is zero (OpenTelemetry's invalid id).
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Writes the 16 hex digits into a stack buffer, without allocating.
    pub fn encode(self) -> [u8; 16] {
        hex16(self.0)
    }
}

impl FromStr for SegmentId {
    type Err = IdError;

    /// Parses exactly 16 hex digits, in either case.
    fn from_str(text: &str) -> Result<Self, IdError> {
        let b = text.as_bytes();
        if b.len() != 16 {
            return Err(IdError::SegmentId(text.chars().take(64).collect()));
        }
        parse_hex(b)
            .map(|v| Self(v as u64))
            .ok_or_else(|| IdError::SegmentId(text.to_owned()))
    }
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let buf = self.encode();
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SegmentId({self})")
    }
}

macro_rules! text_serde {
    ($ty:ty, $what:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let buf = self.encode();
                s.serialize_str(std::str::from_utf8(&buf).map_err(serde::ser::Error::custom)?)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Visit;
                impl serde::de::Visitor<'_> for Visit {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(Visit)
            }
        }
    };
}

text_serde!(TraceId, "an X-Ray trace id");
text_serde!(SegmentId, "a 16-hex-digit segment id");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_rejects_wrong_shapes() {
        for bad in [
            "",
            "1-5759e988",
            "2-5759e988-bd862e3fe1be46a994272793",
            "1-5759e98g-bd862e3fe1be46a994272793",
            "1-5759e988-bd862e3fe1be46a99427279",
            "1_5759e988-bd862e3fe1be46a994272793",
            "1-5759e988-bd862e3fe1be46a9942727931",
        ] {
            assert!(bad.parse::<TraceId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn trace_id_accepts_uppercase_and_writes_lowercase() {
        let id: TraceId = "1-5759E988-BD862E3FE1BE46A994272793".parse().unwrap();
        assert_eq!(id.to_string(), "1-5759e988-bd862e3fe1be46a994272793");
    }

    #[test]
    fn w3c_random_id_maps_bit_for_bit() {
        let id = TraceId::from_hex32("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        assert_eq!(id.to_string(), "1-4bf92f35-77b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn from_parts_keeps_time_prefix() {
        let id = TraceId::from_parts(0x5759e988, u128::MAX);
        assert_eq!(id.to_string(), "1-5759e988-ffffffffffffffffffffffff");
    }

    const HEX: &[u8; 16] = b"0123456789abcdef";

    /// The digits one at a time, as a reference for the word-at-a-time [`hex16`].
    fn hex_digits(mut value: u128, digits: usize) -> String {
        let mut out = vec![0u8; digits];
        for slot in out.iter_mut().rev() {
            *slot = HEX[(value & 0xf) as usize];
            value >>= 4;
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn ids_are_written_digit_for_digit() {
        let mut values = vec![0u128, u128::MAX, 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210];
        // Every digit value at every position.
        for position in 0..32 {
            for digit in 0..16u128 {
                values.push(digit << (4 * position));
                values.push(u128::MAX ^ (digit << (4 * position)));
            }
        }
        let mut x = 0x9E37_79B9_7F4A_7C15_u128;
        for _ in 0..10_000 {
            x = x
                .wrapping_mul(0x2545_F491_4F6C_DD1D)
                .wrapping_add(0x14057B7EF767814F);
            values.push(x ^ (x >> 67));
        }
        for v in values {
            let trace = TraceId::from_u128(v).to_string();
            let want = format!("1-{}-{}", hex_digits(v >> 96, 8), hex_digits(v, 24));
            assert_eq!(trace, want);
            assert_eq!(trace.parse::<TraceId>().unwrap().to_u128(), v);
            let segment = SegmentId::from_u64(v as u64).to_string();
            assert_eq!(segment, hex_digits(v & u128::from(u64::MAX), 16));
        }
    }

    #[test]
    fn segment_id_shapes() {
        assert!("53995c3f42cd8ad".parse::<SegmentId>().is_err());
        assert!("53995c3f42cd8adz".parse::<SegmentId>().is_err());
        assert_eq!(SegmentId::from_u64(1).to_string(), "0000000000000001");
    }
}
