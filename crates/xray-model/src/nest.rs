//! Putting the subsegments of one batch inside their parent's document, the way the X-Ray
//! SDKs send a finished segment: one document per tree instead of one per span.

use crate::SegmentId;
use crate::document::{Segment, TYPE_SUBSEGMENT};

/// The deepest [`nest_subsegments`] embeds: levels of `subsegments` below a top-level
/// document.
pub const MAX_NESTING_DEPTH: u32 = 32;

/// Moves every standalone subsegment of `docs` whose parent is another document of the
/// same batch (same `trace_id`, `parent_id` equal to its `id`) into that parent's
/// `subsegments`, and returns the top-level documents that remain, in their batch order.
///
/// Segments are never nested (each is its own hop); a subsegment whose parent is not in
/// the batch stays a standalone document. Children keep their batch order inside their
/// parent and lose `type`, `trace_id` and `parent_id`, which an embedded subsegment does
/// not carry. Nothing is dropped: malformed parent links (a subsegment naming itself, or a
/// cycle) leave the documents involved standalone, and a chain deeper than
/// [`MAX_NESTING_DEPTH`] is cut into several documents so no reader (or `Drop`) recurses
/// without bound. A nested tree may exceed X-Ray's 64 kB limit; pass each result through
/// [`crate::split_to_fit`], which moves the largest subsegments out again.
///
/// # Examples
///
/// ```
/// use xray_model::{Segment, SegmentId, TraceId, nest_subsegments};
/// let trace = TraceId::from_u128(7);
/// let root = Segment::new("svc", SegmentId::from_u64(1), trace, 1.0);
/// let mut child = Segment::new("db", SegmentId::from_u64(2), trace, 1.1);
/// child.detach(trace, SegmentId::from_u64(1));
/// let docs = nest_subsegments(vec![child, root]);
/// assert_eq!(docs.len(), 1);
/// assert_eq!(docs[0].subsegments[0].name, "db");
/// assert_eq!(docs[0].subsegments[0].trace_id, None);
/// assert_eq!(docs[0].span_count(), 2);
/// ```
pub fn nest_subsegments(mut docs: Vec<Segment<'_>>) -> Vec<Segment<'_>> {
    let nesting = Nesting::of(&docs);
    if nesting.is_flat() {
        return docs;
    }
    nesting
        .top_level()
        .collect::<Vec<_>>()
        .into_iter()
        .map(|root| nesting.take_tree(&mut docs, root))
        .collect()
}

/// How the documents of one batch nest, by the rules of [`nest_subsegments`], worked out
/// without moving any document: which stay top-level, and the batch documents each one
/// embeds. A top-level document can then be written with its tree straight from the
/// batch ([`Nesting::write_json`], the text of the document `nest_subsegments` makes), and
/// only a tree that must be split is moved into one document ([`Nesting::take_tree`]).
///
/// # Examples
///
/// ```
/// use xray_model::{Nesting, Segment, SegmentId, TraceId, nest_subsegments};
/// let trace = TraceId::from_u128(7);
/// let root = Segment::new("svc", SegmentId::from_u64(1), trace, 1.0);
/// let mut child = Segment::new("db", SegmentId::from_u64(2), trace, 1.1);
/// child.detach(trace, SegmentId::from_u64(1));
/// let docs = vec![child, root];
/// let nesting = Nesting::of(&docs);
/// assert_eq!(nesting.top_level().collect::<Vec<_>>(), [1]);
/// assert_eq!(nesting.span_count(&docs, 1), 2);
/// let mut text = Vec::new();
/// nesting.write_json(&docs, 1, &mut text);
/// assert_eq!(text, nest_subsegments(docs)[0].to_json().into_bytes());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Nesting {
    /// Each document's parent, when it is embedded.
    parents: Vec<Option<usize>>,
    /// The children of document `i` are `children[starts[i]..starts[i + 1]]`, in batch
    /// order.
    starts: Vec<usize>,
    children: Vec<usize>,
}

impl Nesting {
    /// Works out how `docs` nest.
    pub fn of(docs: &[Segment<'_>]) -> Self {
        let n = docs.len();
        if n < 2 {
            return Self {
                parents: vec![None; n],
                ..Self::default()
            };
        }
        let mut parents = parent_links(docs);
        if parents.iter().all(Option::is_none) {
            return Self {
                parents,
                ..Self::default()
            };
        }
        let depths = depths(&parents);
        // Every (MAX_NESTING_DEPTH + 1)th level of a deep chain starts a document of its
        // own.
        for (parent, &depth) in parents.iter_mut().zip(&depths) {
            if depth % (MAX_NESTING_DEPTH + 1) == 0 {
                *parent = None;
            }
        }
        // Children grouped by parent, each group in batch order.
        let mut starts = vec![0usize; n + 1];
        for p in parents.iter().flatten() {
            starts[p + 1] += 1;
        }
        for i in 0..n {
            starts[i + 1] += starts[i];
        }
        let mut next = starts.clone();
        let mut children = vec![0usize; starts[n]];
        for (i, parent) in parents.iter().enumerate() {
            if let Some(p) = *parent {
                children[next[p]] = i;
                next[p] += 1;
            }
        }
        Self {
            parents,
            starts,
            children,
        }
    }

    /// Whether no document embeds another.
    pub fn is_flat(&self) -> bool {
        self.children.is_empty()
    }

    /// The top-level documents, in batch order.
    pub fn top_level(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.parents.len()).filter(|&i| self.parents[i].is_none())
    }

    /// The batch documents embedded directly in document `index`, in batch order (after
    /// the `subsegments` it holds already).
    pub fn children(&self, index: usize) -> &[usize] {
        match (self.starts.get(index), self.starts.get(index + 1)) {
            (Some(&start), Some(&end)) => &self.children[start..end],
            _ => &[],
        }
    }

    /// How many (sub)segments document `index` carries with its tree: what
    /// [`Segment::span_count`] gives for the document [`Nesting::take_tree`] makes.
    pub fn span_count(&self, docs: &[Segment<'_>], index: usize) -> usize {
        docs.get(index).map_or(0, Segment::span_count)
            + self
                .children(index)
                .iter()
                .map(|&c| self.span_count(docs, c))
                .sum::<usize>()
    }

    /// Appends the JSON text of document `index` with its tree embedded: the text
    /// [`Segment::write_json`] writes for the document [`Nesting::take_tree`] makes.
    pub fn write_json(&self, docs: &[Segment<'_>], index: usize, out: &mut Vec<u8>) {
        crate::json::write_tree(out, self, docs, index);
    }

    /// Moves document `index` and the batch documents of its tree out of `docs` (leaving
    /// empty documents behind) into one document, as [`nest_subsegments`] nests it.
    pub fn take_tree<'a>(&self, docs: &mut [Segment<'a>], index: usize) -> Segment<'a> {
        let Some(slot) = docs.get_mut(index) else {
            return Segment::default();
        };
        let mut doc = std::mem::take(slot);
        let children = self.children(index);
        doc.subsegments.reserve_exact(children.len());
        for &c in children {
            let mut child = self.take_tree(docs, c);
            child.kind = None;
            child.trace_id = None;
            child.parent_id = None;
            doc.subsegments.push(child);
        }
        doc
    }
}

/// The index of each document's parent in the batch, when it is a standalone subsegment
/// whose parent is there; cycles are broken so every chain ends at a top-level document.
fn parent_links(docs: &[Segment<'_>]) -> Vec<Option<usize>> {
    // By id alone (ids are random 64-bit values; the trace is compared after the lookup),
    // sorted so each lookup is a binary search: no hashing, and no input can make it
    // slower than `n log n`. Equal ids keep batch order, so the first one is found.
    let mut index: Vec<(u64, usize)> = docs
        .iter()
        .enumerate()
        .filter(|(_, doc)| doc.trace_id.is_some())
        .map(|(i, doc)| (doc.id.to_u64(), i))
        .collect();
    index.sort_unstable();
    let find = |id: SegmentId| {
        let id = id.to_u64();
        let at = index.partition_point(|&(other, _)| other < id);
        index
            .get(at)
            .filter(|&&(other, _)| other == id)
            .map(|&(_, i)| i)
    };
    let mut parents: Vec<Option<usize>> = docs
        .iter()
        .enumerate()
        .map(|(i, doc)| {
            if doc.kind.as_deref() != Some(TYPE_SUBSEGMENT) {
                return None;
            }
            let trace = doc.trace_id?;
            let parent = find(doc.parent_id?)?;
            (parent != i && docs[parent].trace_id == Some(trace)).then_some(parent)
        })
        .collect();
    // Walk each chain once; a chain that comes back to a node of the current walk is a
    // cycle, broken by making that node top-level.
    const UNSEEN: u8 = 0;
    const ON_WALK: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![UNSEEN; docs.len()];
    let mut walk = Vec::new();
    for start in 0..docs.len() {
        let mut at = start;
        while state[at] == UNSEEN {
            state[at] = ON_WALK;
            walk.push(at);
            match parents[at] {
                Some(p) if state[p] == ON_WALK => {
                    parents[at] = None;
                    break;
                }
                Some(p) => at = p,
                None => break,
            }
        }
        for i in walk.drain(..) {
            state[i] = DONE;
        }
    }
    parents
}

/// Each document's distance from its top-level document (links must be acyclic).
fn depths(parents: &[Option<usize>]) -> Vec<u32> {
    const UNKNOWN: u32 = u32::MAX;
    let mut depths = vec![UNKNOWN; parents.len()];
    let mut chain = Vec::new();
    for start in 0..parents.len() {
        let mut at = start;
        let mut base = 0;
        while depths[at] == UNKNOWN {
            match parents[at] {
                Some(p) => {
                    chain.push(at);
                    at = p;
                }
                None => {
                    depths[at] = 0;
                    break;
                }
            }
        }
        if depths[at] != UNKNOWN {
            base = depths[at];
        }
        for (step, i) in chain.drain(..).rev().enumerate() {
            depths[i] = base + step as u32 + 1;
        }
    }
    depths
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TraceId;

    const TRACE: u128 = 0x5759e988bd862e3fe1be46a994272793;

    fn segment(id: u64) -> Segment<'static> {
        Segment::new(
            format!("s{id}"),
            SegmentId::from_u64(id),
            TraceId::from_u128(TRACE),
            1.0,
        )
    }

    fn sub(id: u64, parent: u64) -> Segment<'static> {
        let mut s = segment(id);
        s.detach(TraceId::from_u128(TRACE), SegmentId::from_u64(parent));
        s
    }

    fn shape(doc: &Segment<'_>) -> String {
        let children: Vec<String> = doc.subsegments.iter().map(shape).collect();
        if children.is_empty() {
            doc.name.to_string()
        } else {
            format!("{}[{}]", doc.name, children.join(","))
        }
    }

    fn shapes(docs: &[Segment<'_>]) -> Vec<String> {
        docs.iter().map(shape).collect()
    }

    #[test]
    fn children_in_end_order_nest_under_their_parents_at_any_depth() {
        // Spans arrive in end order: grandchildren, children, then the root.
        let docs = vec![sub(4, 2), sub(2, 1), sub(3, 1), sub(5, 3), segment(1)];
        let out = nest_subsegments(docs);
        assert_eq!(shapes(&out), ["s1[s2[s4],s3[s5]]"]);
        assert_eq!(out[0].span_count(), 5);
        let embedded = &out[0].subsegments[0];
        assert_eq!((embedded.kind.as_deref(), embedded.trace_id), (None, None));
        assert_eq!(embedded.parent_id, None);
        assert!(
            out[0].trace_id.is_some(),
            "the top-level document keeps its trace"
        );
    }

    #[test]
    fn documents_without_their_parent_in_the_batch_stay_standalone() {
        let mut other_trace = sub(6, 1);
        other_trace.trace_id = Some(TraceId::from_u128(1));
        let mut hop = segment(7);
        hop.parent_id = Some(SegmentId::from_u64(1)); // a segment: its own document
        let docs = vec![sub(2, 99), other_trace, hop, segment(1), sub(3, 2)];
        let out = nest_subsegments(docs);
        assert_eq!(shapes(&out), ["s2[s3]", "s6", "s7", "s1"]);
        assert_eq!(out[0].kind.as_deref(), Some(TYPE_SUBSEGMENT));
        assert_eq!(out[0].parent_id, Some(SegmentId::from_u64(99)));
    }

    #[test]
    fn cycles_and_self_parents_lose_nothing() {
        let docs = vec![sub(1, 1), sub(2, 3), sub(3, 4), sub(4, 2), sub(5, 4)];
        let out = nest_subsegments(docs);
        let total: usize = out.iter().map(Segment::span_count).sum();
        assert_eq!(total, 5);
        // The walk from s2 finds the cycle at s4, which becomes top-level.
        assert_eq!(shapes(&out), ["s1", "s4[s3[s2],s5]"]);
    }

    #[test]
    fn a_duplicate_id_nests_under_the_first_and_keeps_the_second() {
        let docs = vec![segment(1), segment(1), sub(2, 1)];
        let out = nest_subsegments(docs);
        assert_eq!(shapes(&out), ["s1[s2]", "s1"]);
    }

    #[test]
    fn long_chains_do_not_recurse() {
        let mut docs: Vec<Segment<'static>> = (2..20_000).rev().map(|i| sub(i, i - 1)).collect();
        docs.push(segment(1));
        let out = nest_subsegments(docs);
        let levels = MAX_NESTING_DEPTH as usize + 1;
        assert_eq!(out.len(), 19_999usize.div_ceil(levels));
        assert_eq!(out.iter().map(Segment::span_count).sum::<usize>(), 19_999);
        for doc in &out {
            let mut depth = 0;
            let mut at = doc;
            while let Some(child) = at.subsegments.first() {
                depth += 1;
                at = child;
            }
            assert!(depth <= MAX_NESTING_DEPTH, "{depth}");
        }
        let root = out.last().unwrap();
        assert_eq!((root.name.as_ref(), root.span_count()), ("s1", levels));
        assert_eq!(root.kind, None);
        assert_eq!(
            out[0].kind.as_deref(),
            Some(TYPE_SUBSEGMENT),
            "cut levels stay standalone"
        );
    }
}
