//! The disk spool: a bounded, crash-safe queue of encoded items in a directory, so that
//! an outage or a restart loses nothing that was accepted.
//!
//! Layout of the directory (one per pipeline, never shared: it is locked):
//! - `LOCK`: held with an exclusive file lock while a process uses the spool;
//! - `{id:016x}.seg`: segment files of framed records (see [`record`]), appended to in
//!   order; the newest is the one written, older ones are only read;
//! - `CURSOR`: where the first record not yet acknowledged starts (segment id, offset,
//!   CRC-32), rewritten after each acknowledged batch.
//!
//! Writes go to the operating system before [`Spool::append`] returns, so a killed
//! process loses nothing; [`FsyncPolicy`] decides when they are forced to the disk
//! (what a power loss would otherwise take). The byte budget counts segment files:
//! when a record does not fit, whole oldest segments are dropped and their records
//! counted. Records are read back in order, one batch in flight at a time; a batch is
//! either acknowledged (removed) or rewound (sent again later).

pub mod record;

use std::collections::VecDeque;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use record::{Meta, Parsed};

/// Default spool budget: 256 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// When spool writes are forced to the disk with `fsync` (`fdatasync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every record, before it counts as accepted (slowest, survives power loss).
    Always,
    /// At most this often, when something was written (default every 1000 ms): a
    /// power loss may take the last interval; a killed process loses nothing.
    Every(Duration),
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        FsyncPolicy::Every(Duration::from_millis(1000))
    }
}

impl FromStr for FsyncPolicy {
    type Err = String;

    /// `always` (also `batch`), or an interval in milliseconds (`200` or `200ms`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("always") || s.eq_ignore_ascii_case("batch") {
            return Ok(FsyncPolicy::Always);
        }
        let ms = s.strip_suffix("ms").unwrap_or(s).trim();
        match ms.parse::<u64>() {
            Ok(ms) if ms > 0 => Ok(FsyncPolicy::Every(Duration::from_millis(ms))),
            _ => Err(format!(
                "`{s}` is not an fsync policy: `always` or an interval in milliseconds such as `1000ms`"
            )),
        }
    }
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::Every(d) => write!(f, "{}ms", d.as_millis()),
        }
    }
}

/// Where a spool lives and how big it may grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// The spool's own directory (created if missing).
    pub dir: PathBuf,
    /// Most bytes of segment files (default 256 MiB).
    pub max_bytes: u64,
    /// When writes are forced to the disk.
    pub fsync: FsyncPolicy,
}

impl SpoolConfig {
    /// A spool in `dir` with the default budget and fsync policy.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SpoolConfig {
            dir: dir.into(),
            max_bytes: DEFAULT_MAX_BYTES,
            fsync: FsyncPolicy::default(),
        }
    }

    /// Sets the byte budget.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Sets the fsync policy.
    pub fn with_fsync(mut self, fsync: FsyncPolicy) -> Self {
        self.fsync = fsync;
        self
    }
}

/// Why a spool could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Another process (or pipeline) holds the directory's lock.
    #[error("spool directory {0} is in use by another process")]
    Locked(PathBuf),
    /// The directory or its files cannot be created, read or written.
    #[error("spool directory {0}: {1}")]
    Io(PathBuf, #[source] io::Error),
}

/// Why a record was not written: the caller keeps the item in memory instead.
#[derive(Debug)]
pub enum AppendError {
    /// Larger than the whole budget.
    TooLarge,
    /// The disk failed (full, read-only, gone); the spool takes no more writes.
    Unwritable(io::Error),
}

/// Counters and gauges of a spool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Bytes of segment files now.
    pub bytes: u64,
    /// Records not yet acknowledged now (in flight included).
    pub records: u64,
    /// Age of the oldest record not yet acknowledged.
    pub oldest_age: Duration,
    /// Whether a backlog from a failure or a restart is being sent again.
    pub replaying: bool,
    /// Whether writes failed and the pipeline is back on memory.
    pub unwritable: bool,
    /// Records written since start.
    pub written: u64,
    /// Records recovered from an earlier run, or sent again after a failure, and then
    /// acknowledged.
    pub replayed: u64,
    /// Records dropped to stay within the budget.
    pub dropped_full: u64,
    /// Damaged records skipped: torn tails (a crash mid-write).
    pub torn: u64,
    /// Damaged records skipped: bad checksum or framing.
    pub corrupt: u64,
    /// Failed writes (each falls back to memory).
    pub write_errors: u64,
}

/// A position: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    segment: u64,
    offset: u64,
}

/// Records read for sending, to be acknowledged or rewound.
#[derive(Debug)]
pub struct Batch {
    /// Each record's payload and span count.
    pub records: Vec<(Vec<u8>, u32)>,
    /// Whether these records came from an earlier run or are sent again.
    pub replay: bool,
    first_ms: u64,
    start: Pos,
    end: Pos,
}

/// What a read skipped or an append evicted, for the caller to count.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Lost {
    /// Records (and their spans) dropped to stay within the budget.
    pub full: Vec<u32>,
    /// Damaged records skipped (their span counts are unknown).
    pub damaged: u64,
}

struct Segment {
    id: u64,
    bytes: u64,
    /// Records (and spans) not read yet.
    unread: u64,
    unread_spans: u64,
    /// Time of its first record (unix ms), 0 when empty.
    first_ms: u64,
    /// Written by an earlier run.
    recovered: bool,
}

struct Inner {
    segments: VecDeque<Segment>,
    /// Append handle of the newest segment; `None` once writes failed.
    writer: Option<File>,
    read: Pos,
    /// The first record not acknowledged.
    acked: Pos,
    /// The batch in flight (start, end, record count) and its first record's time.
    in_flight: Option<(Pos, Pos, u64, u64)>,
    /// Where a rewound batch ends: records before it count as replayed.
    replay_until: Option<Pos>,
    /// Time of the record at the read position when known (0: unknown), for the age
    /// gauge.
    next_ms: u64,
    cache: ReadCache,
    total_bytes: u64,
    cursor_file: File,
    dirty: bool,
    last_sync: Instant,
    stats: SpoolStats,
}

/// A disk spool (see the module documentation).
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    fsync: FsyncPolicy,
    inner: Mutex<Inner>,
    _lock: File,
}

impl fmt::Debug for Spool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.dir)
            .field("max_bytes", &self.max_bytes)
            .field("fsync", &self.fsync)
            .finish()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.seg"))
}

fn read_cursor(file: &File) -> Option<Pos> {
    let mut buf = [0u8; 20];
    file.read_exact_at(&mut buf, 0).ok()?;
    let crc = u32::from_le_bytes(buf[16..20].try_into().ok()?);
    (crc32fast::hash(&buf[..16]) == crc).then(|| Pos {
        segment: u64::from_le_bytes(buf[..8].try_into().expect("8 bytes")),
        offset: u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes")),
    })
}

fn write_cursor(file: &File, pos: Pos) -> io::Result<()> {
    let mut buf = [0u8; 20];
    buf[..8].copy_from_slice(&pos.segment.to_le_bytes());
    buf[8..16].copy_from_slice(&pos.offset.to_le_bytes());
    let crc = crc32fast::hash(&buf[..16]);
    buf[16..].copy_from_slice(&crc.to_le_bytes());
    file.write_all_at(&buf, 0)
}

/// Scans a recovered segment from `from`: counts good records, finds the torn tail.
fn scan(bytes: &[u8], from: usize) -> (u64, u64, u64) {
    let (mut records, mut spans, mut first_ms) = (0, 0, 0);
    let mut at = from;
    loop {
        match record::parse(bytes, at) {
            Parsed::Record { meta, next, .. } => {
                records += 1;
                spans += u64::from(meta.spans);
                if first_ms == 0 {
                    first_ms = meta.written_ms;
                }
                at = next;
            }
            Parsed::End => break,
            Parsed::Torn | Parsed::Corrupt => match record::resync(bytes, at) {
                Some(next) => at = next,
                None => break,
            },
        }
    }
    (records, spans, first_ms)
}

impl Spool {
    /// Opens (or creates) the spool in `config.dir`, locks it, and recovers what an
    /// earlier run left: records after the acknowledged cursor are read first.
    ///
    /// # Errors
    ///
    /// [`SpoolError::Locked`] when another process or pipeline holds the directory, and
    /// [`SpoolError::Io`] when the directory or its files cannot be created or read.
    pub fn open(config: &SpoolConfig) -> Result<Spool, SpoolError> {
        let dir = config.dir.clone();
        let io_err = |e| SpoolError::Io(dir.clone(), e);
        fs::create_dir_all(&dir).map_err(io_err)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))
            .map_err(io_err)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(SpoolError::Locked(dir)),
            Err(fs::TryLockError::Error(e)) => return Err(io_err(e)),
        }
        let cursor_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(dir.join("CURSOR"))
            .map_err(io_err)?;
        let mut ids: Vec<u64> = fs::read_dir(&dir)
            .map_err(io_err)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                u64::from_str_radix(name.strip_suffix(".seg")?, 16).ok()
            })
            .collect();
        ids.sort_unstable();
        let cursor = read_cursor(&cursor_file);
        if cursor.is_none() && !ids.is_empty() {
            tracing::warn!(
                target: "xray_export",
                dir = %dir.display(),
                "spool cursor missing or damaged: replaying every segment (records already delivered may be sent again)"
            );
        }
        let mut segments = VecDeque::new();
        let mut acked = None;
        for id in ids.iter().copied() {
            let path = segment_path(&dir, id);
            if cursor.is_some_and(|c| id < c.segment) {
                // Fully acknowledged before the crash.
                let _ = fs::remove_file(&path);
                continue;
            }
            let bytes = fs::read(&path).map_err(io_err)?;
            let from = match cursor {
                Some(c) if c.segment == id => (c.offset as usize).min(bytes.len()),
                _ => 0,
            };
            let (unread, unread_spans, first_ms) = scan(&bytes, from);
            acked.get_or_insert(Pos {
                segment: id,
                offset: from as u64,
            });
            segments.push_back(Segment {
                id,
                bytes: bytes.len() as u64,
                unread,
                unread_spans,
                first_ms,
                recovered: true,
            });
        }
        let next_id = ids.last().map_or(1, |l| l + 1);
        let writer = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(&dir, next_id))
            .map_err(io_err)?;
        segments.push_back(Segment {
            id: next_id,
            bytes: 0,
            unread: 0,
            unread_spans: 0,
            first_ms: 0,
            recovered: false,
        });
        let acked = acked.unwrap_or(Pos {
            segment: next_id,
            offset: 0,
        });
        let total_bytes = segments.iter().map(|s| s.bytes).sum();
        let recovered: u64 = segments.iter().map(|s| s.unread).sum();
        if recovered > 0 {
            tracing::info!(
                target: "xray_export",
                dir = %dir.display(),
                records = recovered,
                "spool: resuming {recovered} record(s) left by an earlier run before new data"
            );
        }
        let max_bytes = config.max_bytes.max(4096);
        let spool = Spool {
            segment_bytes: (max_bytes / 8).clamp(4096, 8 * 1024 * 1024),
            max_bytes,
            fsync: config.fsync,
            inner: Mutex::new(Inner {
                segments,
                writer: Some(writer),
                read: acked,
                acked,
                in_flight: None,
                replay_until: None,
                next_ms: 0,
                cache: ReadCache::default(),
                total_bytes,
                cursor_file,
                dirty: false,
                last_sync: Instant::now(),
                stats: SpoolStats {
                    replaying: recovered > 0,
                    ..Default::default()
                },
            }),
            dir,
            _lock: lock,
        };
        {
            let mut inner = spool.lock();
            inner.stats.records = recovered;
            spool.drop_finished(&mut inner);
        }
        Ok(spool)
    }

    /// The spool's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records not read yet (recovered, or written since).
    pub fn unread(&self) -> u64 {
        self.lock().segments.iter().map(|s| s.unread).sum()
    }

    /// Whether writes still go to disk.
    pub fn writable(&self) -> bool {
        self.lock().writer.is_some()
    }

    /// Appends one record. On success the record is in the operating system's hands
    /// (and on disk, with [`FsyncPolicy::Always`]); returns the records dropped from the
    /// oldest segments to make room (their span counts).
    ///
    /// # Errors
    ///
    /// [`AppendError::TooLarge`] for a record larger than the whole budget, and
    /// [`AppendError::Unwritable`] when the disk fails (or failed before): the spool then
    /// takes no more writes and the caller keeps the item in memory.
    ///
    /// # Panics
    ///
    /// Never: the `expect`s state what the lines above them checked (an open writer, a
    /// write segment).
    pub fn append(&self, payload: &[u8], spans: u32) -> Result<Vec<u32>, AppendError> {
        let size = (record::HEADER + payload.len()) as u64;
        if size > self.max_bytes || payload.len() > record::MAX_PAYLOAD {
            return Err(AppendError::TooLarge);
        }
        let mut buf = Vec::with_capacity(size as usize);
        let written_ms = now_ms();
        record::encode(payload, Meta { spans, written_ms }, &mut buf);
        let mut inner = self.lock();
        if inner.writer.is_none() {
            return Err(AppendError::Unwritable(io::Error::other(
                "the spool stopped taking writes after an earlier failure",
            )));
        }
        if inner
            .segments
            .back()
            .is_some_and(|s| s.bytes >= self.segment_bytes)
            && let Err(e) = self.rotate(&mut inner)
        {
            return Err(self.unwritable(&mut inner, e));
        }
        let dropped = self.make_room(&mut inner, size);
        let writer = inner.writer.as_mut().expect("checked above");
        if let Err(e) = writer.write_all(&buf) {
            // Cut a partial record off, so the file stays readable.
            let len = inner.segments.back().map_or(0, |s| s.bytes);
            if let Some(w) = &inner.writer {
                let _ = w.set_len(len);
            }
            return Err(self.unwritable(&mut inner, e));
        }
        if self.fsync == FsyncPolicy::Always {
            if let Err(e) = inner.writer.as_ref().expect("checked above").sync_data() {
                return Err(self.unwritable(&mut inner, e));
            }
        } else {
            inner.dirty = true;
        }
        let segment = inner.segments.back_mut().expect("a write segment");
        segment.bytes += size;
        segment.unread += 1;
        segment.unread_spans += u64::from(spans);
        if segment.first_ms == 0 {
            segment.first_ms = written_ms;
        }
        let first_unread = segment.unread == 1 && segment.id == inner.read.segment;
        if first_unread && inner.next_ms == 0 {
            inner.next_ms = written_ms;
        }
        inner.total_bytes += size;
        inner.stats.written += 1;
        inner.stats.records += 1;
        self.sync_if_due(&mut inner);
        Ok(dropped)
    }

    fn unwritable(&self, inner: &mut Inner, e: io::Error) -> AppendError {
        inner.stats.write_errors += 1;
        if inner.writer.take().is_some() {
            inner.stats.unwritable = true;
            tracing::warn!(
                target: "xray_export",
                dir = %self.dir.display(),
                "spool write failed ({e}): new items stay in memory only (bounded, drops counted) until restart"
            );
        }
        AppendError::Unwritable(e)
    }

    fn rotate(&self, inner: &mut Inner) -> io::Result<()> {
        let id = inner.segments.back().map_or(1, |s| s.id + 1);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(&self.dir, id))?;
        if let Some(old) = inner.writer.replace(file) {
            let _ = old.sync_data();
        }
        inner.segments.push_back(Segment {
            id,
            bytes: 0,
            unread: 0,
            unread_spans: 0,
            first_ms: 0,
            recovered: false,
        });
        Ok(())
    }

    /// Drops the oldest segments until `size` more bytes fit; returns the span counts of
    /// the unread records dropped.
    fn make_room(&self, inner: &mut Inner, size: u64) -> Vec<u32> {
        let mut dropped = Vec::new();
        while inner.total_bytes + size > self.max_bytes {
            if inner.segments.len() == 1 {
                if inner.segments[0].bytes == 0 || self.rotate(inner).is_err() {
                    break;
                }
                continue;
            }
            let old = inner.segments.pop_front().expect("two segments");
            let _ = fs::remove_file(segment_path(&self.dir, old.id));
            inner.total_bytes -= old.bytes;
            // Span counts per record are not kept; spread the segment's over its records.
            let each = old.unread_spans.checked_div(old.unread).unwrap_or(0) as u32;
            let extra = old.unread_spans.checked_rem(old.unread).unwrap_or(0) as u32;
            for i in 0..old.unread {
                dropped.push(each + u32::from(i == 0) * extra);
            }
            inner.stats.records = inner.stats.records.saturating_sub(old.unread);
            inner.stats.dropped_full += old.unread;
            let next = Pos {
                segment: inner.segments[0].id,
                offset: 0,
            };
            if inner.read.segment == old.id {
                inner.read = next;
            }
            if inner.acked.segment == old.id {
                inner.acked = next;
                let _ = write_cursor(&inner.cursor_file, next);
            }
        }
        if !dropped.is_empty() {
            tracing::warn!(
                target: "xray_export",
                dir = %self.dir.display(),
                dropped = dropped.len(),
                reason = "spool_full",
                "spool over its budget of {} bytes: dropped the {} oldest record(s)",
                self.max_bytes,
                dropped.len()
            );
        }
        dropped
    }

    /// Reads up to `max_records` records (stopping once over `max_bytes`) from one
    /// segment for sending. `None` when nothing is unread or a batch is already in
    /// flight. Damaged records on the way are skipped and reported in the [`Lost`].
    pub fn read_batch(&self, max_records: usize, max_bytes: usize) -> (Option<Batch>, Lost) {
        let mut lost = Lost::default();
        let mut guard = self.lock();
        let inner = &mut *guard;
        if inner.in_flight.is_some() {
            return (None, lost);
        }
        loop {
            let Some(index) = inner
                .segments
                .iter()
                .position(|s| s.id == inner.read.segment)
            else {
                return (None, lost);
            };
            let (id, len, recovered) = {
                let s = &inner.segments[index];
                (s.id, s.bytes, s.recovered)
            };
            if inner.read.offset >= len {
                if index + 1 == inner.segments.len() {
                    return (None, lost);
                }
                inner.read = Pos {
                    segment: inner.segments[index + 1].id,
                    offset: 0,
                };
                inner.next_ms = 0;
                continue;
            }
            let start = inner.read;
            let cache = match inner.cache.fill(&self.dir, start, len) {
                Ok(cache) => cache,
                Err(e) => {
                    tracing::warn!(target: "xray_export", dir = %self.dir.display(), "spool segment {id:016x} unreadable, its records are skipped: {e}");
                    let s = &mut inner.segments[index];
                    lost.damaged += s.unread;
                    inner.stats.corrupt += s.unread;
                    inner.stats.records = inner.stats.records.saturating_sub(s.unread);
                    (s.unread, s.unread_spans) = (0, 0);
                    inner.read.offset = len;
                    continue;
                }
            };
            let bytes = &cache.buf[..];
            let base = (start.offset - cache.base) as usize;
            let mut at = base;
            let mut records = Vec::new();
            let (mut first_ms, mut spans_read, mut size) = (0, 0u64, 0usize);
            while records.len() < max_records && size < max_bytes.max(1) {
                match record::parse(bytes, at) {
                    Parsed::Record {
                        meta,
                        payload,
                        next,
                    } => {
                        if first_ms == 0 {
                            first_ms = meta.written_ms;
                        }
                        spans_read += u64::from(meta.spans);
                        size += payload.len();
                        records.push((bytes[payload].to_vec(), meta.spans));
                        at = next;
                    }
                    Parsed::End => break,
                    damage @ (Parsed::Torn | Parsed::Corrupt) => {
                        let next = record::resync(bytes, at);
                        let offset = cache.base + at as u64;
                        lost.damaged += 1;
                        if matches!(damage, Parsed::Torn) && next.is_none() && recovered {
                            inner.stats.torn += 1;
                            tracing::warn!(target: "xray_export", dir = %self.dir.display(), segment = id, offset, "spool: torn record at the end of a segment (a crash mid-write) skipped");
                        } else {
                            inner.stats.corrupt += 1;
                            tracing::warn!(target: "xray_export", dir = %self.dir.display(), segment = id, offset, "spool: damaged record (bad checksum or framing) skipped");
                        }
                        at = next.unwrap_or(bytes.len());
                    }
                }
            }
            let end = Pos {
                segment: id,
                offset: cache.base + at as u64,
            };
            inner.next_ms = match record::parse(bytes, at) {
                Parsed::Record { meta, .. } => meta.written_ms,
                _ => 0,
            };
            inner.read = end;
            let s = &mut inner.segments[index];
            s.unread = s.unread.saturating_sub(records.len() as u64);
            s.unread_spans = s.unread_spans.saturating_sub(spans_read);
            if records.is_empty() {
                continue;
            }
            let replay = recovered || inner.replay_until.is_some_and(|r| start < r);
            inner.in_flight = Some((start, end, records.len() as u64, first_ms));
            return (
                Some(Batch {
                    records,
                    replay,
                    first_ms,
                    start,
                    end,
                }),
                lost,
            );
        }
    }

    /// The batch was delivered (or dropped for good): removes it for good.
    pub fn ack(&self, batch: Batch) {
        let mut inner = self.lock();
        let n = batch.records.len() as u64;
        inner.in_flight = None;
        inner.stats.records = inner.stats.records.saturating_sub(n);
        if batch.replay {
            inner.stats.replayed += n;
        }
        if batch.end > inner.acked {
            inner.acked = batch.end;
            if let Err(e) = write_cursor(&inner.cursor_file, batch.end) {
                tracing::warn!(target: "xray_export", dir = %self.dir.display(), "spool cursor not saved ({e}): records may be sent again after a restart");
            }
            inner.dirty = true;
        }
        if inner.replay_until.is_some_and(|r| inner.acked >= r) {
            inner.replay_until = None;
        }
        self.drop_finished(&mut inner);
        let empty = inner.stats.records == 0;
        if empty {
            inner.stats.replaying = false;
        }
        self.sync_if_due(&mut inner);
    }

    /// The batch could not be delivered now: it is read again by the next
    /// [`Spool::read_batch`]. Returns `false` when its segment was dropped for the
    /// budget meanwhile (the caller counts its records as lost).
    pub fn rewind(&self, batch: Batch) -> bool {
        let mut inner = self.lock();
        inner.in_flight = None;
        inner.stats.replaying = true;
        let Some(s) = inner
            .segments
            .iter_mut()
            .find(|s| s.id == batch.start.segment)
        else {
            let n = batch.records.len() as u64;
            inner.stats.records = inner.stats.records.saturating_sub(n);
            inner.stats.dropped_full += n;
            return false;
        };
        s.unread += batch.records.len() as u64;
        s.unread_spans += batch
            .records
            .iter()
            .map(|(_, n)| u64::from(*n))
            .sum::<u64>();
        inner.read = batch.start;
        inner.next_ms = batch.first_ms;
        inner.replay_until = Some(inner.replay_until.map_or(batch.end, |r| r.max(batch.end)));
        true
    }

    /// Deletes segments entirely before the acknowledged cursor (never the write one).
    fn drop_finished(&self, inner: &mut Inner) {
        while inner.segments.len() > 1 {
            let front = &inner.segments[0];
            let done = front.id < inner.acked.segment
                || (front.id == inner.acked.segment && inner.acked.offset >= front.bytes);
            if !done
                || inner
                    .in_flight
                    .is_some_and(|(s, _, _, _)| s.segment == front.id)
            {
                break;
            }
            let old = inner.segments.pop_front().expect("checked");
            let _ = fs::remove_file(segment_path(&self.dir, old.id));
            inner.total_bytes -= old.bytes;
            let next = Pos {
                segment: inner.segments[0].id,
                offset: 0,
            };
            if inner.acked < next {
                inner.acked = next;
                let _ = write_cursor(&inner.cursor_file, next);
            }
            if inner.read < next {
                inner.read = next;
            }
        }
    }

    fn sync_if_due(&self, inner: &mut Inner) {
        let due = match self.fsync {
            FsyncPolicy::Always => inner.dirty,
            FsyncPolicy::Every(every) => inner.dirty && inner.last_sync.elapsed() >= every,
        };
        if due {
            if let Some(w) = &inner.writer {
                let _ = w.sync_data();
            }
            let _ = inner.cursor_file.sync_data();
            inner.dirty = false;
            inner.last_sync = Instant::now();
        }
    }

    /// Forces pending writes to the disk when the fsync interval has passed (the
    /// pipeline's worker calls it on every turn).
    pub fn tick(&self) {
        let mut inner = self.lock();
        self.sync_if_due(&mut inner);
    }

    /// Forces every write to the disk now (on shutdown).
    pub fn sync(&self) {
        let mut inner = self.lock();
        inner.dirty = true;
        inner.last_sync = Instant::now() - Duration::from_secs(3600);
        self.sync_if_due(&mut inner);
    }

    /// Counters and gauges now.
    pub fn stats(&self) -> SpoolStats {
        let inner = self.lock();
        let mut stats = inner.stats.clone();
        stats.bytes = inner.total_bytes;
        let oldest_ms = inner
            .in_flight
            .map(|(_, _, _, ms)| ms)
            .or_else(|| {
                let unread = inner.segments.iter().find(|s| s.unread > 0)?;
                Some(if unread.id == inner.read.segment && inner.next_ms > 0 {
                    inner.next_ms
                } else {
                    unread.first_ms
                })
            })
            .filter(|_| stats.records > 0);
        stats.oldest_age = oldest_ms
            .map(|ms| Duration::from_millis(now_ms().saturating_sub(ms)))
            .unwrap_or_default();
        stats
    }
}

/// The unread rest of the segment being read, kept between batches so a segment is
/// read from the file once (the newest one: only what was appended since).
#[derive(Default)]
struct ReadCache {
    segment: u64,
    /// File offset of `buf[0]`.
    base: u64,
    buf: Vec<u8>,
}

impl ReadCache {
    /// Makes the cache hold `[from.offset, len)` of segment `from.segment`.
    fn fill(&mut self, dir: &Path, from: Pos, len: u64) -> io::Result<&ReadCache> {
        let end = self.base + self.buf.len() as u64;
        let reusable = self.segment == from.segment
            && self.base <= from.offset
            && from.offset <= end
            && end <= len;
        if !reusable {
            self.segment = from.segment;
            self.base = from.offset;
            self.buf.clear();
        } else if from.offset - self.base > (self.buf.len() as u64) / 2 {
            // Forget what was consumed, so the cache stays about one segment.
            self.buf.drain(..(from.offset - self.base) as usize);
            self.base = from.offset;
        }
        let have = self.base + self.buf.len() as u64;
        if have < len {
            let old = self.buf.len();
            self.buf.resize(old + (len - have) as usize, 0);
            let read = File::open(segment_path(dir, from.segment))
                .and_then(|f| f.read_exact_at(&mut self.buf[old..], have));
            if let Err(e) = read {
                self.buf.truncate(old);
                return Err(e);
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests;
