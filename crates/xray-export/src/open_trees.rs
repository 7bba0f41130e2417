//! The spans of local trace trees whose root has not ended yet, gathered per trace.
//!
//! Sharded by trace id so that threads ending spans of different requests rarely meet on
//! a lock. Every entry counts its estimated bytes against one budget for the whole store.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::SpanData;

/// Shards of the store (a power of two).
const SHARDS: usize = 32;

/// A shard's map. Trace ids are mostly random bits, so foldhash's fast hash spreads them
/// as well as the default SipHash, for a fraction of the instructions (one hash per span
/// on the application's thread); HashDoS needs chosen keys, and the ids are the SDK's own.
type Shard = HashMap<TraceId, OpenTrace, foldhash::fast::RandomState>;

/// Finished spans waiting for their local root, and the local roots still open.
#[derive(Default)]
struct OpenTrace {
    finished: Vec<SpanData>,
    /// When the oldest span of `finished` ended (arrived here).
    oldest: Option<Instant>,
    /// Local roots that started and have not ended.
    roots: Vec<OpenRoot>,
    /// Estimated bytes of `finished` and the roots' snapshots.
    bytes: usize,
}

struct OpenRoot {
    id: SpanId,
    started: Instant,
    /// The root as it started, for its in-progress document (taken when sent).
    snapshot: Option<Box<SpanData>>,
}

/// Finished spans taken out of the store, with their estimated bytes.
pub(crate) struct Taken {
    pub spans: Vec<SpanData>,
    pub bytes: usize,
}

/// What the periodic check found due.
#[derive(Default)]
pub(crate) struct Due {
    /// Roots open longer than the in-progress threshold, as they started.
    pub in_progress: Vec<SpanData>,
    /// Per trace, finished spans older than the maximum age (orphans).
    pub orphans: Vec<Vec<SpanData>>,
}

/// The store of open trees.
pub(crate) struct OpenTrees {
    shards: Box<[Mutex<Shard>]>,
    bytes: AtomicUsize,
    max_bytes: usize,
}

/// A rough size of a span held in memory: the struct, its name, attributes and events.
pub(crate) fn estimated_bytes(span: &SpanData) -> usize {
    std::mem::size_of::<SpanData>()
        + span.name.len()
        + span.attributes.len() * 64
        + span.events.len() * 128
        + span.links.len() * 96
}

impl OpenTrees {
    pub(crate) fn new(max_bytes: usize) -> Self {
        OpenTrees {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            bytes: AtomicUsize::new(0),
            max_bytes,
        }
    }

    fn shard(&self, trace: TraceId) -> &Mutex<Shard> {
        let low = u128::from_be_bytes(trace.to_bytes()) as usize;
        // A panic while holding a shard leaves plain data behind; the lock stays usable.
        &self.shards[low & (SHARDS - 1)]
    }

    fn lock(shard: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
        shard.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Estimated bytes held now.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Relaxed)
    }

    /// Registers a local root that started (with its snapshot when in-progress documents
    /// are wanted). Returns false (and keeps nothing) when the budget is spent.
    pub(crate) fn root_started(
        &self,
        span: SpanId,
        trace: TraceId,
        snapshot: Option<SpanData>,
    ) -> bool {
        let size = snapshot.as_ref().map_or(64, estimated_bytes);
        if self.bytes() + size > self.max_bytes {
            return false;
        }
        self.bytes.fetch_add(size, Relaxed);
        let mut shard = Self::lock(self.shard(trace));
        let entry = shard.entry(trace).or_default();
        entry.bytes += size;
        entry.roots.push(OpenRoot {
            id: span,
            started: Instant::now(),
            snapshot: snapshot.map(Box::new),
        });
        true
    }

    /// A local root ended: takes its finished descendants out (the spans whose parent
    /// chain through finished spans reaches it). Descendants of spans still open stay.
    pub(crate) fn root_ended(&self, root: &SpanData) -> Taken {
        let trace = root.span_context.trace_id();
        let id = root.span_context.span_id();
        let mut shard = Self::lock(self.shard(trace));
        let Some(entry) = shard.get_mut(&trace) else {
            return Taken {
                spans: Vec::new(),
                bytes: 0,
            };
        };
        if let Some(i) = entry.roots.iter().position(|r| r.id == id) {
            let r = entry.roots.swap_remove(i);
            let size = r.snapshot.as_deref().map_or(64, estimated_bytes);
            entry.bytes -= size;
            self.bytes.fetch_sub(size, Relaxed);
        }
        let spans = take_descendants(&mut entry.finished, id);
        let freed: usize = spans.iter().map(estimated_bytes).sum();
        entry.bytes -= freed;
        self.bytes.fetch_sub(freed, Relaxed);
        if entry.finished.is_empty() {
            entry.oldest = None;
        }
        if entry.finished.is_empty() && entry.roots.is_empty() {
            shard.remove(&trace);
        }
        Taken {
            spans,
            bytes: freed,
        }
    }

    /// A span that is not a local root ended: keeps it with its trace. Returns the
    /// trace's finished spans instead when they are to be sent now: more than `stream_over`
    /// of them (the streaming rule), or the store over its budget.
    pub(crate) fn child_ended(&self, span: SpanData, stream_over: usize) -> Option<Taken> {
        let trace = span.span_context.trace_id();
        let size = estimated_bytes(&span);
        let total = self.bytes.fetch_add(size, Relaxed) + size;
        let mut shard = Self::lock(self.shard(trace));
        let entry = shard.entry(trace).or_default();
        entry.finished.push(span);
        entry.bytes += size;
        entry.oldest.get_or_insert_with(Instant::now);
        if entry.finished.len() <= stream_over && total <= self.max_bytes {
            return None;
        }
        let spans = Self::take_finished(entry, &self.bytes);
        if entry.roots.is_empty() {
            shard.remove(&trace);
        }
        Some(spans)
    }

    fn take_finished(entry: &mut OpenTrace, bytes: &AtomicUsize) -> Taken {
        let spans = std::mem::take(&mut entry.finished);
        let freed: usize = spans.iter().map(estimated_bytes).sum();
        entry.bytes -= freed;
        bytes.fetch_sub(freed, Relaxed);
        entry.oldest = None;
        Taken {
            spans,
            bytes: freed,
        }
    }

    /// Takes every finished span out, per trace (for flush and shutdown); open roots stay.
    pub(crate) fn take_all_finished(&self) -> Vec<Vec<SpanData>> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = Self::lock(shard);
            shard.retain(|_, entry| {
                if !entry.finished.is_empty() {
                    out.push(Self::take_finished(entry, &self.bytes).spans);
                }
                !entry.roots.is_empty()
            });
        }
        out
    }

    /// Local roots still open.
    pub(crate) fn open_roots(&self) -> usize {
        self.shards
            .iter()
            .map(|s| Self::lock(s).values().map(|e| e.roots.len()).sum::<usize>())
            .sum()
    }

    /// Takes what the time-based rules say is due: roots open for `in_progress_after`
    /// (each once) and finished spans older than `max_age`.
    pub(crate) fn take_due(&self, in_progress_after: Option<Duration>, max_age: Duration) -> Due {
        let now = Instant::now();
        let mut due = Due::default();
        for shard in self.shards.iter() {
            let mut shard = Self::lock(shard);
            shard.retain(|_, entry| {
                if let Some(after) = in_progress_after {
                    for root in &mut entry.roots {
                        if now.duration_since(root.started) >= after
                            && let Some(snapshot) = root.snapshot.take()
                        {
                            let size = estimated_bytes(&snapshot) - 64;
                            entry.bytes -= size;
                            self.bytes.fetch_sub(size, Relaxed);
                            due.in_progress.push(*snapshot);
                        }
                    }
                }
                if entry
                    .oldest
                    .is_some_and(|t| now.duration_since(t) >= max_age)
                {
                    due.orphans
                        .push(Self::take_finished(entry, &self.bytes).spans);
                }
                !entry.finished.is_empty() || !entry.roots.is_empty()
            });
        }
        due
    }
}

/// Moves the spans whose parent chain reaches `root` out of `spans`.
fn take_descendants(spans: &mut Vec<SpanData>, root: SpanId) -> Vec<SpanData> {
    if spans.is_empty() {
        return Vec::new();
    }
    if spans.iter().all(|s| s.parent_span_id == root) {
        // The commonest case of all: only direct children finished; no walk needed.
        return std::mem::take(spans);
    }
    let marks = reaching(spans, root);
    if marks.iter().all(|&m| m) {
        // The common case: one request, all its children finished.
        return std::mem::take(spans);
    }
    let mut taken = Vec::new();
    let mut kept = Vec::with_capacity(spans.len());
    for (span, reach) in std::mem::take(spans).into_iter().zip(marks) {
        if reach {
            taken.push(span);
        } else {
            kept.push(span);
        }
    }
    *spans = kept;
    taken
}

/// For each span, whether its parent chain (through the spans given) reaches `root`.
/// Bounded: a chain longer than the slice (a cycle) does not reach.
fn reaching(spans: &[SpanData], root: SpanId) -> Vec<bool> {
    let index: HashMap<SpanId, usize> = if spans.len() > 8 {
        spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_context.span_id(), i))
            .collect()
    } else {
        HashMap::new()
    };
    let find = |id: SpanId| -> Option<usize> {
        if spans.len() > 8 {
            index.get(&id).copied()
        } else {
            spans.iter().position(|s| s.span_context.span_id() == id)
        }
    };
    let mut memo: Vec<Option<bool>> = vec![None; spans.len()];
    let mut path = Vec::new();
    for start in 0..spans.len() {
        let mut at = start;
        let answer = loop {
            if let Some(known) = memo[at] {
                break known;
            }
            let parent = spans[at].parent_span_id;
            if parent == root {
                break true;
            }
            path.push(at);
            match find(parent) {
                Some(next) if path.len() <= spans.len() => at = next,
                _ => break false,
            }
        };
        memo[at] = Some(answer);
        for i in path.drain(..) {
            memo[i] = Some(answer);
        }
    }
    memo.into_iter().map(|m| m.unwrap_or(false)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, TraceFlags, TraceState};

    fn span(trace: u128, id: u64, parent: u64) -> SpanData {
        let mut s = crate::open_trees::tests::blank();
        s.span_context = SpanContext::new(
            TraceId::from(trace),
            SpanId::from(id),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        s.parent_span_id = SpanId::from(parent);
        s
    }

    pub(crate) fn blank() -> SpanData {
        SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: opentelemetry::trace::SpanKind::Internal,
            name: "s".into(),
            start_time: std::time::SystemTime::UNIX_EPOCH,
            end_time: std::time::SystemTime::UNIX_EPOCH,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: opentelemetry::trace::Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    #[test]
    fn a_root_takes_its_descendants_and_leaves_another_roots() {
        let trees = OpenTrees::new(1 << 20);
        assert!(trees.root_started(SpanId::from(1), TraceId::from(9), None));
        assert!(trees.root_started(SpanId::from(5), TraceId::from(9), None));
        for (id, parent) in [(3, 2), (2, 1), (6, 5), (4, 1)] {
            assert!(trees.child_ended(span(9, id, parent), 100).is_none());
        }
        let taken = trees.root_ended(&span(9, 1, 0)).spans;
        let mut ids: Vec<u64> = taken
            .iter()
            .map(|s| u64::from_be_bytes(s.span_context.span_id().to_bytes()))
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![2, 3, 4]);
        assert_eq!(trees.open_roots(), 1);
        let taken = trees.root_ended(&span(9, 5, 0)).spans;
        assert_eq!(taken.len(), 1);
        assert_eq!(trees.bytes(), 0);
        assert_eq!(trees.open_roots(), 0);
    }

    #[test]
    fn streaming_threshold_and_budget_release_finished_spans() {
        let trees = OpenTrees::new(1 << 20);
        for id in 2..=4 {
            assert!(trees.child_ended(span(1, id, 1), 3).is_none());
        }
        let streamed = trees.child_ended(span(1, 5, 1), 3).unwrap();
        assert_eq!(streamed.spans.len(), 4);
        assert_eq!(
            streamed.bytes,
            streamed.spans.iter().map(estimated_bytes).sum::<usize>()
        );
        assert_eq!(trees.bytes(), 0);

        let small = OpenTrees::new(estimated_bytes(&span(1, 2, 1)) * 2);
        assert!(small.child_ended(span(2, 2, 1), 100).is_none());
        assert!(small.child_ended(span(2, 3, 1), 100).is_none());
        assert_eq!(
            small.child_ended(span(2, 4, 1), 100).unwrap().spans.len(),
            3
        );
    }

    #[test]
    fn old_orphans_and_long_roots_come_due() {
        let trees = OpenTrees::new(1 << 20);
        let mut root = span(3, 1, 0);
        root.name = "long".into();
        assert!(trees.root_started(SpanId::from(1), TraceId::from(3), Some(root)));
        assert!(trees.child_ended(span(4, 2, 7), 100).is_none());
        let due = trees.take_due(Some(Duration::ZERO), Duration::ZERO);
        assert_eq!(due.in_progress.len(), 1);
        assert_eq!(due.orphans.len(), 1);
        // Each root's in-progress document is due once.
        let again = trees.take_due(Some(Duration::ZERO), Duration::ZERO);
        assert!(again.in_progress.is_empty() && again.orphans.is_empty());
        assert!(trees.root_ended(&span(3, 1, 0)).spans.is_empty());
        assert_eq!(trees.bytes(), 0);
    }

    #[test]
    fn cycles_do_not_reach_and_do_not_hang() {
        let spans = vec![span(1, 2, 3), span(1, 3, 2), span(1, 4, 1)];
        assert_eq!(reaching(&spans, SpanId::from(1)), vec![false, false, true]);
    }
}
