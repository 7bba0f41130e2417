//! The spool's record framing: a fixed header with a length and a checksum, then the
//! item's bytes. A record is valid only when its magic, its length and its CRC-32 all
//! agree, so a torn write (a crash mid-record) and flipped bytes are both detected, and
//! a reader can find the next good record after a damaged one.
//!
//! ```text
//! magic "XRS1" | payload length u32 LE | spans u32 LE | written at, unix ms u64 LE
//!              | CRC-32 of (length, spans, time, payload) u32 LE | payload
//! ```

/// Marks the start of every record.
pub const MAGIC: [u8; 4] = *b"XRS1";
/// Header bytes before the payload.
pub const HEADER: usize = 24;
/// The largest payload a record may carry (a guard against a corrupt length).
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// A record's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Spans the item carries (for drop counts without decoding it).
    pub spans: u32,
    /// When it was written, in milliseconds since the Unix epoch.
    pub written_ms: u64,
}

/// Appends one framed record to `out`.
pub fn encode(payload: &[u8], meta: Meta, out: &mut Vec<u8>) {
    let len = payload.len() as u32;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len.to_le_bytes());
    crc.update(&meta.spans.to_le_bytes());
    crc.update(&meta.written_ms.to_le_bytes());
    crc.update(payload);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&meta.spans.to_le_bytes());
    out.extend_from_slice(&meta.written_ms.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

/// What is found at an offset of a segment's bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A good record: its header, where its payload lies, and where the next one starts.
    Record {
        /// Header fields.
        meta: Meta,
        /// Payload range within the buffer.
        payload: std::ops::Range<usize>,
        /// Offset just after it.
        next: usize,
    },
    /// The bytes end inside a record whose start looks right: a torn write.
    Torn,
    /// Bad magic, an impossible length or a checksum mismatch.
    Corrupt,
    /// No bytes left.
    End,
}

/// Parses the record starting at `at` in `buf`.
///
/// # Panics
///
/// Never: the fixed-size header fields are read only after the length was checked (the
/// `expect`s convert slices of a known length to arrays).
pub fn parse(buf: &[u8], at: usize) -> Parsed {
    let rest = buf.get(at..).unwrap_or_default();
    if rest.is_empty() {
        return Parsed::End;
    }
    if rest.len() < HEADER {
        return if MAGIC.starts_with(&rest[..rest.len().min(4)]) {
            Parsed::Torn
        } else {
            Parsed::Corrupt
        };
    }
    if rest[..4] != MAGIC {
        return Parsed::Corrupt;
    }
    let u32_at = |i: usize| u32::from_le_bytes(rest[i..i + 4].try_into().expect("4 bytes"));
    let len = u32_at(4) as usize;
    let spans = u32_at(8);
    let written_ms = u64::from_le_bytes(rest[12..20].try_into().expect("8 bytes"));
    let crc = u32_at(20);
    if len > MAX_PAYLOAD {
        return Parsed::Corrupt;
    }
    if rest.len() < HEADER + len {
        return Parsed::Torn;
    }
    let payload = &rest[HEADER..HEADER + len];
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&rest[4..20]);
    hasher.update(payload);
    if hasher.finalize() != crc {
        return Parsed::Corrupt;
    }
    Parsed::Record {
        meta: Meta { spans, written_ms },
        payload: at + HEADER..at + HEADER + len,
        next: at + HEADER + len,
    }
}

/// The offset of the next good record after a damaged one at `at`, if any.
pub fn resync(buf: &[u8], at: usize) -> Option<usize> {
    let mut from = at + 1;
    while let Some(found) = buf
        .get(from..)
        .and_then(|rest| rest.windows(4).position(|w| w == MAGIC))
    {
        let candidate = from + found;
        if matches!(parse(buf, candidate), Parsed::Record { .. }) {
            return Some(candidate);
        }
        from = candidate + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> (Vec<u8>, [usize; 3]) {
        let mut buf = Vec::new();
        let mut starts = [0; 3];
        for (i, start) in starts.iter_mut().enumerate() {
            *start = buf.len();
            let meta = Meta {
                spans: i as u32 + 1,
                written_ms: 7,
            };
            encode(format!("record number {i}").as_bytes(), meta, &mut buf);
        }
        (buf, starts)
    }

    #[test]
    fn records_round_trip() {
        let (buf, starts) = three();
        let Parsed::Record {
            meta,
            payload,
            next,
        } = parse(&buf, starts[1])
        else {
            panic!("a record")
        };
        assert_eq!(&buf[payload], b"record number 1");
        assert_eq!((meta.spans, meta.written_ms, next), (2, 7, starts[2]));
        assert_eq!(parse(&buf, buf.len()), Parsed::End);
    }

    #[test]
    fn a_torn_tail_is_told_apart_from_corruption() {
        let (buf, starts) = three();
        for cut in [starts[2] + 1, starts[2] + 10, buf.len() - 1] {
            assert_eq!(parse(&buf[..cut], starts[2]), Parsed::Torn, "cut at {cut}");
        }
        let mut flipped = buf.clone();
        flipped[starts[1] + HEADER + 3] ^= 0x40;
        assert_eq!(parse(&flipped, starts[1]), Parsed::Corrupt);
        assert_eq!(resync(&flipped, starts[1]), Some(starts[2]));
        let mut bad_len = buf.clone();
        bad_len[starts[0] + 7] = 0xff;
        assert_eq!(parse(&bad_len, starts[0]), Parsed::Corrupt);
        assert_eq!(resync(&bad_len, starts[0]), Some(starts[1]));
        assert_eq!(resync(&buf, starts[2]), None);
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = fastrand::Rng::with_seed(15);
        let (good, _) = three();
        for _ in 0..2000 {
            let mut buf = good.clone();
            for _ in 0..rng.usize(1..8) {
                let i = rng.usize(..buf.len());
                buf[i] = rng.u8(..);
            }
            buf.truncate(rng.usize(..=buf.len()));
            let mut at = 0;
            while at < buf.len() {
                match parse(&buf, at) {
                    Parsed::Record { next, .. } => at = next,
                    Parsed::End => break,
                    Parsed::Torn | Parsed::Corrupt => match resync(&buf, at) {
                        Some(next) => at = next,
                        None => break,
                    },
                }
            }
        }
    }
}
