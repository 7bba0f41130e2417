//! Numbers as `serde_json` writes them: integers in decimal (written straight into the
//! buffer's spare capacity, the digit count known first), floats as the shortest text
//! that reads back as the same value (by `zmij`), with a fixed-point fast path for the
//! values documents hold most: epoch times to the microsecond.
//!
//! Why the fast path gives the same text: take `v` in `[1, 2^33)` that is the nearest
//! `f64` to `d = m / 10^6` for an integer `m` (checked exactly: `m as f64 / 1e6 == v`,
//! a correctly rounded division of exact operands). Then `d` reads back as `v`, so the
//! shortest form has at most the digits of `d` with its trailing zeros dropped. Any
//! other candidate as short or shorter is a different multiple of `10^-6`, so at least
//! `10^-6` from `d` and more than half a unit in the last place from `v` (below `2^33` a
//! unit in the last place is at most `2^-20`, under `10^-6 / 2` from both sides), so it
//! does not read back as `v`. Hence the shortest form is `d` without trailing zeros, and
//! `zmij` writes it in plain notation in this range (`1.0`, `1796043180.155397`); the
//! property test in this module compares both writers.

#![allow(unsafe_code)] // `Vec::set_len` over digits just written; the block says why it is sound.

/// Values at or above this take the general path: from `2^33` on, a unit in the last
/// place of an `f64` reaches a microsecond.
const FIXED_LIMIT: f64 = 8_589_934_592.0;

/// Appends `v` as `serde_json` writes an `f64`: the shortest round-trip form, `null` when
/// not finite.
#[inline]
pub(crate) fn float(out: &mut Vec<u8>, v: f64) {
    match exact_micros(v) {
        Some(micros) => fixed(out, micros),
        None if v.is_finite() => {
            out.extend_from_slice(zmij::Buffer::new().format_finite(v).as_bytes())
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// `v` as a whole number of microseconds, when `v` is in `[1, 2^33)` and is the nearest
/// `f64` to that number divided by `10^6`.
#[inline]
fn exact_micros(v: f64) -> Option<u64> {
    // NaN fails the range check too.
    if !(1.0..FIXED_LIMIT).contains(&v) {
        return None;
    }
    // A candidate (the nearest integer, off by one only far from today's times); the
    // check below is exact, and a wrong candidate just takes the general path.
    let micros = (v * 1e6 + 0.5) as u64;
    (micros as f64 / 1e6 == v).then_some(micros)
}

/// An integer written in decimal.
pub(crate) trait Int: Copy {
    /// Appends the number in decimal, as `itoa` (and `serde_json`) writes it.
    fn write_decimal(self, out: &mut Vec<u8>);
}

impl Int for u64 {
    #[inline]
    fn write_decimal(self, out: &mut Vec<u8>) {
        unsigned(out, self);
    }
}

impl Int for u32 {
    #[inline]
    fn write_decimal(self, out: &mut Vec<u8>) {
        unsigned(out, u64::from(self));
    }
}

impl Int for u16 {
    #[inline]
    fn write_decimal(self, out: &mut Vec<u8>) {
        unsigned(out, u64::from(self));
    }
}

impl Int for i64 {
    #[inline]
    fn write_decimal(self, out: &mut Vec<u8>) {
        if self < 0 {
            out.push(b'-');
        }
        unsigned(out, self.unsigned_abs());
    }
}

/// `10^i`.
const POWERS_OF_TEN: [u64; 20] = {
    let mut table = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// "00" to "99".
const PAIRS: [u8; 200] = {
    let mut table = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        table[2 * i] = b'0' + (i / 10) as u8;
        table[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    table
};

/// How many decimal digits `v` has: from its bit length (`log10(2) ~ 1233 / 4096`), then
/// one comparison.
#[inline]
fn digit_count(v: u64) -> usize {
    let bits = 64 - v.leading_zeros();
    let estimate = ((bits * 1233) >> 12) as usize;
    (estimate + usize::from(v >= POWERS_OF_TEN[estimate])).max(1)
}

/// Appends `v` in decimal, two digits at a time from the end.
#[inline]
fn unsigned(out: &mut Vec<u8>, mut v: u64) {
    let digits = digit_count(v);
    out.reserve(digits);
    let len = out.len();
    let spare = &mut out.spare_capacity_mut()[..digits];
    let mut at = digits;
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        at -= 2;
        spare[at].write(PAIRS[pair]);
        spare[at + 1].write(PAIRS[pair + 1]);
    }
    if v >= 10 {
        let pair = v as usize * 2;
        spare[0].write(PAIRS[pair]);
        spare[1].write(PAIRS[pair + 1]);
    } else {
        spare[0].write(b'0' + v as u8);
    }
    // SAFETY: `digits` is the digit count of `v`, so the loop and the last step wrote
    // every byte of `spare[..digits]` (from the end down to index 0).
    unsafe { out.set_len(len + digits) };
}

/// Appends `micros / 10^6` with the fraction's trailing zeros dropped (`.0` when whole).
#[inline]
fn fixed(out: &mut Vec<u8>, micros: u64) {
    let seconds = micros / 1_000_000;
    let mut fraction = (micros % 1_000_000) as u32;
    unsigned(out, seconds);
    if fraction == 0 {
        out.extend_from_slice(b".0");
        return;
    }
    let mut digits = *b".000000";
    for digit in digits[1..].iter_mut().rev() {
        *digit = b'0' + (fraction % 10) as u8;
        fraction /= 10;
    }
    // At least one digit is not zero: the fraction is not.
    let zeros = digits.iter().rev().take_while(|&&d| d == b'0').count();
    out.extend_from_slice(&digits);
    out.truncate(out.len() - zeros);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ours(v: f64) -> String {
        let mut out = Vec::new();
        float(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    fn serde(v: f64) -> String {
        serde_json::to_string(&v).unwrap()
    }

    #[test]
    fn edges_of_the_fixed_range_match_serde_json() {
        let below = FIXED_LIMIT - FIXED_LIMIT * f64::EPSILON;
        for v in [
            1.0,
            1.5,
            1.000001,
            1.0000001,
            0.999999,
            9.999999,
            10.0,
            1e9,
            1_796_043_180.155397,
            1_796_043_180.1,
            1_796_043_180.000001,
            1_796_043_180.999999,
            4_294_967_295.999999,
            4_294_967_296.0,
            below,
            FIXED_LIMIT,
            FIXED_LIMIT + 0.5,
            f64::MIN_POSITIVE,
            -1_796_043_180.155397,
            0.0,
            -0.0,
            1e21,
            f64::MAX,
        ] {
            assert_eq!(ours(v), serde(v), "{v:?}");
        }
        assert_eq!(ours(f64::NAN), "null");
        assert_eq!(ours(f64::INFINITY), "null");
        assert_eq!(
            exact_micros(1_796_043_180.155397),
            Some(1_796_043_180_155_397)
        );
        assert_eq!(exact_micros(1_796_043_180.1553971), None);
    }

    #[test]
    fn every_microsecond_of_a_second_matches_serde_json() {
        for (base, step) in [(1u64, 7), (1_796_043_180, 1), (8_589_934_591, 7)] {
            for micros in (0..1_000_000).step_by(step) {
                let v = (base * 1_000_000 + micros) as f64 / 1e6;
                assert_eq!(ours(v), serde(v), "{base} {micros}");
            }
        }
    }

    fn decimal(v: impl Int) -> String {
        let mut out = Vec::new();
        v.write_decimal(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn integers_are_written_as_itoa_writes_them() {
        let mut values: Vec<u64> = (0..100_000).collect();
        for p in POWERS_OF_TEN {
            values.extend([
                p - 1,
                p,
                p + 1,
                p.saturating_mul(9),
                p.saturating_mul(9).saturating_add(9),
            ]);
        }
        values.extend([u64::MAX, u64::MAX - 1, 1 << 63, (1 << 63) - 1]);
        for v in values {
            assert_eq!(decimal(v), itoa::Buffer::new().format(v), "{v}");
            let signed = v as i64;
            assert_eq!(
                decimal(signed),
                itoa::Buffer::new().format(signed),
                "{signed}"
            );
        }
        for v in [0u32, 9, 10, u32::MAX] {
            assert_eq!(decimal(v), v.to_string());
        }
        for v in [0u16, 99, 100, u16::MAX] {
            assert_eq!(decimal(v), v.to_string());
        }
        assert_eq!(decimal(i64::MIN), i64::MIN.to_string());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn any_integer_is_written_as_itoa_writes_it(v in any::<u64>(), shift in 0u32..64) {
            let v = v >> shift;
            prop_assert_eq!(decimal(v), itoa::Buffer::new().format(v).to_owned());
            prop_assert_eq!(decimal(v as i64), itoa::Buffer::new().format(v as i64).to_owned());
        }

        /// Times as `epoch_seconds` makes them, across the whole fixed range and beyond.
        #[test]
        fn epoch_times_match_serde_json(micros in 0u64..20_000_000_000_000_000) {
            let v = micros as f64 / 1e6;
            prop_assert_eq!(ours(v), serde(v));
        }

        /// Any bit pattern, most of them between 1 and 2^34.
        #[test]
        fn any_float_matches_serde_json(
            bits in prop_oneof![
                any::<u64>(),
                (1.0f64.to_bits()..(2.0 * FIXED_LIMIT).to_bits()),
            ]
        ) {
            let v = f64::from_bits(bits);
            prop_assert_eq!(ours(v), serde(v));
        }
    }
}
