//! In-progress documents (`in_progress: true`) held until their complete version arrives
//! or a deadline passes, within a bound on how many are held.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use xray_model::{Segment, SegmentId, TraceId};

type Key = (Option<TraceId>, SegmentId);

/// What [`InProgressHold::offer`] did with a document.
#[derive(Debug)]
pub enum Held {
    /// Complete: convert it now (a held in-progress version of it, if any, is released).
    Ready(Box<Segment<'static>>),
    /// In progress: held (replacing an earlier in-progress version of the same document).
    Holding,
    /// In progress, but its complete version came first (datagrams can be reordered):
    /// nothing to send, nothing lost.
    Superseded,
}

/// Holds in-progress top-level documents by trace and segment id. A complete document
/// releases the held version of itself; held documents older than the deadline, or
/// beyond the bound (oldest first), are given back by [`InProgressHold::expire`] and
/// [`InProgressHold::offer`] to be counted as never completed.
///
/// ```
/// use std::time::{Duration, Instant};
/// use xray_translate::reverse::{Held, InProgressHold};
/// let doc = |json: &str| serde_json::from_str(json).unwrap();
/// let mut hold = InProgressHold::new(Duration::from_secs(30), 1000);
/// let now = Instant::now();
/// let started = doc(r#"{"name":"a","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1,"in_progress":true}"#);
/// assert!(matches!(hold.offer(started, now).0, Held::Holding));
/// let done = doc(r#"{"name":"a","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1,"end_time":2}"#);
/// assert!(matches!(hold.offer(done, now).0, Held::Ready(_)));
/// assert_eq!(hold.len(), 0);
/// ```
#[derive(Debug)]
pub struct InProgressHold {
    held: HashMap<Key, (Instant, Segment<'static>)>,
    /// Arrival order; entries whose time no longer matches the held one are stale.
    order: VecDeque<(Instant, Key)>,
    /// Documents completed recently (as long as one is held, as many as are held), so a
    /// late in-progress version of one is recognised.
    done: HashMap<Key, Instant>,
    done_order: VecDeque<(Instant, Key)>,
    max_age: Duration,
    max_held: usize,
}

impl InProgressHold {
    /// Holds at most `max_held` documents, each at most `max_age`.
    pub fn new(max_age: Duration, max_held: usize) -> Self {
        InProgressHold {
            held: HashMap::new(),
            order: VecDeque::new(),
            done: HashMap::new(),
            done_order: VecDeque::new(),
            max_age,
            max_held: max_held.max(1),
        }
    }

    /// Documents held now.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Takes a top-level document that arrived at `now`. Returns what became of it, and
    /// the documents pushed out to stay within the bound (never completed).
    pub fn offer(&mut self, doc: Segment<'static>, now: Instant) -> (Held, Vec<Segment<'static>>) {
        let key = (doc.trace_id, doc.id);
        self.forget_done(now);
        if !doc.in_progress && doc.end_time.is_some() {
            self.held.remove(&key);
            self.done.insert(key, now);
            self.done_order.push_back((now, key));
            return (Held::Ready(Box::new(doc)), Vec::new());
        }
        if self.done.contains_key(&key) {
            return (Held::Superseded, Vec::new());
        }
        self.held.insert(key, (now, doc));
        self.order.push_back((now, key));
        let mut evicted = Vec::new();
        while self.held.len() > self.max_held {
            match self.pop_oldest() {
                Some(doc) => evicted.push(doc),
                None => break,
            }
        }
        (Held::Holding, evicted)
    }

    /// Gives back the documents held longer than the deadline at `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Segment<'static>> {
        let mut expired = Vec::new();
        while let Some(&(since, key)) = self.order.front() {
            if self.held.get(&key).is_none_or(|(t, _)| *t != since) {
                self.order.pop_front();
                continue;
            }
            if now.saturating_duration_since(since) < self.max_age {
                break;
            }
            if let Some(doc) = self.pop_oldest() {
                expired.push(doc);
            }
        }
        expired
    }

    /// Forgets completed documents older than the hold period, and the oldest beyond the
    /// bound.
    fn forget_done(&mut self, now: Instant) {
        while let Some(&(since, key)) = self.done_order.front() {
            let old = now.saturating_duration_since(since) >= self.max_age;
            if !old && self.done_order.len() <= self.max_held {
                break;
            }
            self.done_order.pop_front();
            if self.done.get(&key) == Some(&since) {
                self.done.remove(&key);
            }
        }
    }

    /// Gives back everything held (at shutdown).
    pub fn drain(&mut self) -> Vec<Segment<'static>> {
        self.order.clear();
        self.held.drain().map(|(_, (_, doc))| doc).collect()
    }

    fn pop_oldest(&mut self) -> Option<Segment<'static>> {
        while let Some((since, key)) = self.order.pop_front() {
            if self.held.get(&key).is_some_and(|(t, _)| *t == since) {
                return self.held.remove(&key).map(|(_, doc)| doc);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: u64, in_progress: bool) -> Segment<'static> {
        let mut s = Segment::new("a", SegmentId::from_u64(id), TraceId::from_u128(7), 1.0);
        s.in_progress = in_progress;
        s.end_time = (!in_progress).then_some(2.0);
        s
    }

    #[test]
    fn held_until_complete_deadline_or_bound() {
        let t0 = Instant::now();
        let mut hold = InProgressHold::new(Duration::from_secs(10), 2);
        assert!(matches!(hold.offer(doc(1, true), t0).0, Held::Holding));
        // A newer in-progress version replaces the held one.
        assert!(matches!(
            hold.offer(doc(1, true), t0 + Duration::from_secs(5)).0,
            Held::Holding
        ));
        assert_eq!(hold.len(), 1);
        assert!(hold.expire(t0 + Duration::from_secs(11)).is_empty());
        assert_eq!(hold.expire(t0 + Duration::from_secs(15)).len(), 1);
        hold.offer(doc(2, true), t0);
        hold.offer(doc(3, true), t0);
        let (_, evicted) = hold.offer(doc(4, true), t0);
        assert_eq!(evicted.len(), 1);
        assert_eq!(evicted[0].id, SegmentId::from_u64(2));
        assert!(matches!(hold.offer(doc(3, false), t0).0, Held::Ready(_)));
        assert_eq!(hold.drain().len(), 1);
        assert!(hold.is_empty());
        // The complete version first, the in-progress one late: nothing is held.
        assert!(matches!(hold.offer(doc(5, false), t0).0, Held::Ready(_)));
        assert!(matches!(hold.offer(doc(5, true), t0).0, Held::Superseded));
        assert!(hold.is_empty());
        // Once the hold period is over, the id is forgotten.
        let later = t0 + Duration::from_secs(11);
        assert!(matches!(hold.offer(doc(5, true), later).0, Held::Holding));
    }
}
