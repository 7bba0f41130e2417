//! JSON strings as `serde_json` escapes them (`"`, `\` and control characters only;
//! everything else, non-ASCII included, is copied as it is), written straight into the
//! buffer's spare capacity: clean text (nearly all) is checked and copied eight bytes at
//! a time, with no capacity check or length update per word, and the buffer's length is
//! set once at the end.
#![allow(unsafe_code)] // `Vec::set_len` over bytes just written; each block says why it is sound.

use std::mem::MaybeUninit;

/// What each byte turns into inside a JSON string, as `serde_json` writes it: 0 for
/// itself, `u` for `\u00XX`, or the letter after the backslash.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Whether any of the eight bytes of `x` needs escaping: a byte below 0x20, `"` or `\`
/// is detected without a false negative (a false positive only follows a true match in
/// the same word, which the byte loop then finds).
#[inline(always)]
fn needs_escape(x: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v;
    let control = x.wrapping_sub(ONES * 0x20) & !x;
    let special =
        control | zero(x ^ (ONES * u64::from(b'"'))) | zero(x ^ (ONES * u64::from(b'\\')));
    special & HIGHS != 0
}

/// The eight bytes at `at`.
#[inline(always)]
fn word(bytes: &[u8], at: usize) -> [u8; 8] {
    let mut w = [0; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    w
}

/// Appends `s` as a quoted, escaped JSON string (one copy of the code, called from the
/// document writer's many fields).
#[inline(never)]
pub(crate) fn string(out: &mut Vec<u8>, s: &str) {
    string_inlined(out, s);
}

/// [`string`], inlined into its caller: for the few hot call sites that write many
/// strings each (a metadata view's keys and values), where the call costs more than
/// the code it adds.
#[inline(always)]
pub(crate) fn string_inlined(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let n = bytes.len();
    if n < 8 && short(out, bytes) {
        return;
    }
    out.reserve(n + 2);
    let len = out.len();
    let spare = &mut out.spare_capacity_mut()[..n + 2];
    spare[0].write(b'"');
    let clean = copy_clean(&mut spare[1..=n], bytes);
    if clean == n {
        spare[n + 1].write(b'"');
        // SAFETY: the `n + 2` bytes after the length were written just above: the quote,
        // the `n` bytes `copy_clean` copied, and the closing quote.
        unsafe { out.set_len(len + n + 2) };
    } else {
        // SAFETY: the quote and the `clean` bytes `copy_clean` copied were written.
        unsafe { out.set_len(len + 1 + clean) };
        escaped(out, &bytes[clean..]);
        out.push(b'"');
    }
}

/// A clean string under eight bytes, gathered into one word (the bytes past its end
/// spaces, which need no escaping), checked once and written as one word; `false`
/// (nothing written) when a byte needs escaping.
#[inline(always)]
fn short(out: &mut Vec<u8>, bytes: &[u8]) -> bool {
    const SPACES: u64 = 0x2020_2020_2020_2020;
    let n = bytes.len();
    let at = |i: usize| u64::from(bytes[i]) << (8 * i);
    let text = match n {
        0 => 0,
        1..4 => at(0) | at(n / 2) | at(n - 1),
        _ => {
            let mut low = [0u8; 4];
            let mut high = [0u8; 4];
            low.copy_from_slice(&bytes[..4]);
            high.copy_from_slice(&bytes[n - 4..n]);
            u64::from(u32::from_le_bytes(low))
                | u64::from(u32::from_le_bytes(high)) << (8 * (n - 4))
        }
    };
    // Each byte sits at its own position (bytes read twice are equal), the rest spaces.
    let word = text | SPACES.checked_shl(8 * n as u32).unwrap_or(0);
    if needs_escape(word) {
        return false;
    }
    out.reserve(9);
    let len = out.len();
    let spare = &mut out.spare_capacity_mut()[..9];
    spare[0].write(b'"');
    spare[1..9].write_copy_of_slice(&word.to_le_bytes());
    spare[n + 1].write(b'"');
    // SAFETY: the nine bytes after the length were written just above (the quote, the
    // word holding the `n` bytes, the closing quote over the word's byte `n`), and
    // `n + 2 <= 9`.
    unsafe { out.set_len(len + n + 2) };
    true
}

/// Copies the clean start of `bytes` into `dst` (as long as `bytes`) and returns its
/// length: all of `bytes` for clean text; otherwise at most up to the first eight-byte
/// word that may need escaping. At least `dst[..returned]` is written.
#[inline(always)]
fn copy_clean(dst: &mut [MaybeUninit<u8>], bytes: &[u8]) -> usize {
    let n = bytes.len();
    let dst = &mut dst[..n];
    if n < 8 {
        for (i, (&b, d)) in bytes.iter().zip(dst.iter_mut()).enumerate() {
            if ESCAPE[usize::from(b)] != 0 {
                return i;
            }
            d.write(b);
        }
        return n;
    }
    #[cfg(target_arch = "x86_64")]
    if n >= 16 {
        return copy_clean_16(dst, bytes);
    }
    let mut at = 0;
    while at + 8 <= n {
        let w = word(bytes, at);
        if needs_escape(u64::from_le_bytes(w)) {
            return at;
        }
        dst[at..at + 8].write_copy_of_slice(&w);
        at += 8;
    }
    // The last partial word, as the overlapping last eight bytes (rewriting bytes
    // already copied with the same bytes).
    if at < n {
        let w = word(bytes, n - 8);
        if needs_escape(u64::from_le_bytes(w)) {
            return at;
        }
        dst[n - 8..].write_copy_of_slice(&w);
    }
    n
}

/// The sixteen bytes at the start of `chunk` (at least that long), and the mask of those
/// that need escaping (`"`, `\` and bytes below 0x20, bit `i` for byte `i`), with SSE2
/// (part of every x86-64 processor).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn chunk_specials(chunk: &[u8]) -> (std::arch::x86_64::__m128i, u32) {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_setzero_si128, _mm_subs_epu8,
    };
    let chunk = &chunk[..16];
    // SAFETY: SSE2 is part of the x86-64 baseline, so these instructions exist on every
    // processor the crate runs on; `chunk` is sixteen readable bytes and an unaligned
    // load needs nothing more.
    unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Below 0x20: nothing is left after subtracting 0x1f with unsigned saturation.
        let low = _mm_subs_epu8(v, _mm_set1_epi8(0x1f));
        let control = _mm_cmpeq_epi8(low, _mm_setzero_si128());
        let special = _mm_or_si128(_mm_or_si128(quote, backslash), control);
        (v, _mm_movemask_epi8(special) as u32)
    }
}

/// Stores the sixteen bytes of `v` at the start of `dst` (at least that long).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn store_chunk(dst: &mut [MaybeUninit<u8>], v: std::arch::x86_64::__m128i) {
    let target = &mut dst[..16];
    // SAFETY: SSE2 is part of the x86-64 baseline; `target` is sixteen writable bytes and
    // an unaligned store needs nothing more.
    unsafe { std::arch::x86_64::_mm_storeu_si128(target.as_mut_ptr().cast(), v) };
}

/// [`copy_clean`] for strings of sixteen bytes or more, sixteen bytes at a time.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn copy_clean_16(dst: &mut [MaybeUninit<u8>], bytes: &[u8]) -> usize {
    let n = bytes.len();
    let dst = &mut dst[..n];
    let mut at = 0;
    while at + 16 <= n {
        let (v, specials) = chunk_specials(&bytes[at..]);
        if specials != 0 {
            return at;
        }
        store_chunk(&mut dst[at..], v);
        at += 16;
    }
    // The last partial chunk, as the overlapping last sixteen bytes.
    if at < n {
        let (v, specials) = chunk_specials(&bytes[n - 16..]);
        if specials != 0 {
            return at;
        }
        store_chunk(&mut dst[n - 16..], v);
    }
    n
}

/// The escape sequence of a byte that needs one (`\"`, `\n`, `\u001f`...), and its length.
#[inline(always)]
fn escape_of(b: u8) -> ([u8; 6], usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match ESCAPE[usize::from(b)] {
        b'u' => (
            [
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ],
            6,
        ),
        letter => ([b'\\', letter, 0, 0, 0, 0], 2),
    }
}

/// Escapes `bytes`, text where bytes to escape may be dense (a whole JSON document
/// written as one string, as in a `PutTraceSegments` body): sixteen bytes at a time on
/// x86-64, then the rest byte by byte.
fn escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    let bytes = &bytes[escaped_16(out, bytes)..];
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if ESCAPE[usize::from(b)] == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[run..i]);
        run = i + 1;
        let (sequence, len) = escape_of(b);
        out.extend_from_slice(&sequence[..len]);
    }
    out.extend_from_slice(&bytes[run..]);
}

/// Escapes whole sixteen-byte chunks of `bytes` and returns how many bytes it consumed:
/// each chunk is stored whole after the output, which then advances to the chunk's first
/// byte to escape, writes its sequence, and goes on after it. Dense text costs one chunk
/// per escaped byte instead of a copy call per clean run.
#[cfg(target_arch = "x86_64")]
fn escaped_16(out: &mut Vec<u8>, bytes: &[u8]) -> usize {
    const ROOM: usize = 16 + 6;
    let mut at = 0;
    while at + 16 <= bytes.len() {
        out.reserve(ROOM);
        let len = out.len();
        let spare = &mut out.spare_capacity_mut()[..ROOM];
        let (v, specials) = chunk_specials(&bytes[at..]);
        store_chunk(spare, v);
        let clean = specials.trailing_zeros() as usize;
        let written = if clean == 32 {
            at += 16;
            16
        } else {
            let (sequence, n) = escape_of(bytes[at + clean]);
            spare[clean..clean + 6].write_copy_of_slice(&sequence);
            at += clean + 1;
            clean + n
        };
        // SAFETY: `written <= ROOM` bytes after the length are initialised: the chunk's
        // sixteen stored bytes, of which the first `clean` are kept, and the six bytes of
        // the escape sequence after them, of which its length is kept.
        unsafe { out.set_len(len + written) };
    }
    at
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    fn ours(s: &str) -> String {
        let mut out = Vec::new();
        super::string(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    proptest! {
        /// Bytes to escape at any density, in runs of any length around the chunk size:
        /// as serde_json writes them.
        #[test]
        fn dense_text_is_escaped_as_serde_json_escapes_it(parts in proptest::collection::vec(
            prop_oneof![
                Just("\"".to_owned()),
                Just("\\".to_owned()),
                Just("\n".to_owned()),
                Just("\u{1f}".to_owned()),
                Just("\u{7f}é🦀".to_owned()),
                "[a-z]{0,20}",
            ],
            0..80,
        )) {
            let text: String = parts.concat();
            prop_assert_eq!(ours(&text), serde_json::to_string(&text).unwrap());
        }
    }

    #[test]
    fn a_document_written_as_a_string_matches_serde_json() {
        let doc = r#"{"name":"svc \"q\" \\ é","id":"53995c3f42cd8ad8","annotations":{"k":"v\n"}}"#;
        for n in 0..doc.len() {
            let text = &doc[..doc.floor_char_boundary(n)];
            assert_eq!(ours(text), serde_json::to_string(text).unwrap());
        }
    }
}
