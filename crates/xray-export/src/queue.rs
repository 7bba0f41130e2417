//! The bounded queue between the application's threads and the sending worker.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::item::Item;
use crate::metrics::{DropReason, Metrics};
use crate::wake::Wake;

/// What to drop when the queue is over its byte limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Drop the oldest queued items to make room for the new one (keeps recent traces).
    #[default]
    DropOldest,
    /// Refuse the new item (keeps what is already queued).
    DropNewest,
}

/// The result of one push: items to count and log as dropped, outside the lock.
pub(crate) struct Pushed<I> {
    /// Whether the new item was queued.
    pub accepted: bool,
    pub dropped: Vec<(I, DropReason)>,
}

pub(crate) struct State<I> {
    items: VecDeque<I>,
    bytes: usize,
    /// Items accepted so far.
    pushed: u64,
    /// Items resolved so far (sent, or dropped after being accepted).
    done: u64,
    /// No more items accepted; the worker drains and stops.
    pub closed: bool,
    /// When the worker must give up on what is left (set by shutdown).
    pub deadline: Option<Instant>,
    /// The worker has stopped.
    pub stopped: bool,
}

/// Work the worker thread runs before each batch and at least every so often (the span
/// processor's hand-overs and time-based rules).
pub(crate) trait TickWork: Send + Sync {
    /// Does the work.
    fn run(&self);
    /// Whether work is waiting (checked before the worker sleeps; what it reads must be
    /// changed under a lock, then the worker woken with [`Wake::notify`]).
    fn pending(&self) -> bool;
}

/// Work for the worker thread: before each batch, and at least every `every`.
struct Tick {
    every: Duration,
    work: Box<dyn TickWork>,
}

pub(crate) struct Queue<I> {
    state: Mutex<State<I>>,
    progress: Condvar,
    /// Wakes the worker when items arrive or the queue closes.
    pub wake: Wake,
    /// Work the worker runs between batches (see [`crate::Pipeline`]'s tick).
    tick: Mutex<Option<Tick>>,
    max_bytes: usize,
    overflow: Overflow,
    metrics: Metrics,
}

impl<I: Item> Queue<I> {
    pub(crate) fn new(max_bytes: usize, overflow: Overflow, metrics: Metrics) -> Self {
        Queue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                bytes: 0,
                pushed: 0,
                done: 0,
                closed: false,
                deadline: None,
                stopped: false,
            }),
            progress: Condvar::new(),
            wake: Wake::default(),
            tick: Mutex::new(None),
            max_bytes,
            overflow,
            metrics,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State<I>> {
        // A panic while holding the lock cannot leave the state inconsistent (every
        // update is a few plain assignments), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an item, dropping by the overflow policy when over the byte limit.
    pub(crate) fn push(&self, item: I) -> Pushed<I> {
        let size = item.size();
        let mut dropped = Vec::new();
        let mut accepted = false;
        {
            let mut s = self.lock();
            if s.closed {
                dropped.push((item, DropReason::Shutdown));
            } else if size > self.max_bytes {
                dropped.push((item, DropReason::TooLarge));
            } else {
                let mut accept = true;
                while s.bytes + size > self.max_bytes {
                    match self.overflow {
                        Overflow::DropNewest => {
                            accept = false;
                            break;
                        }
                        Overflow::DropOldest => match s.items.pop_front() {
                            Some(old) => {
                                s.bytes -= old.size();
                                s.done += 1;
                                dropped.push((old, DropReason::QueueFull));
                            }
                            None => break,
                        },
                    }
                }
                if accept {
                    accepted = true;
                    s.bytes += size;
                    s.pushed += 1;
                    s.items.push_back(item);
                    self.metrics.record_enqueued(size);
                } else {
                    dropped.push((item, DropReason::QueueFull));
                }
            }
            self.metrics.set_queue(s.items.len(), s.bytes);
        }
        if !dropped.is_empty() {
            // Evictions resolve items; flush waiters may be done.
            self.progress.notify_all();
        }
        self.wake.notify();
        Pushed { accepted, dropped }
    }

    /// Counts `n` items accepted outside the memory queue (written to the spool), so
    /// flushes wait for them, and wakes the worker.
    pub(crate) fn count_external(&self, n: u64) {
        self.lock().pushed += n;
        self.wake.notify();
    }

    /// Takes up to `max` items from the front.
    pub(crate) fn take(&self, max: usize) -> Vec<I> {
        let mut s = self.lock();
        let n = max.max(1).min(s.items.len());
        let batch: Vec<I> = s.items.drain(..n).collect();
        s.bytes -= batch.iter().map(Item::size).sum::<usize>();
        self.metrics.set_queue(s.items.len(), s.bytes);
        batch
    }

    /// Takes everything (used when the deadline has passed).
    pub(crate) fn take_all(&self) -> Vec<I> {
        self.take(usize::MAX)
    }

    /// Marks `n` taken items as resolved.
    pub(crate) fn finish(&self, n: usize) {
        self.lock().done += n as u64;
        self.progress.notify_all();
    }

    /// After a worker failure: closes the queue, counts every accepted item never
    /// resolved (queued or in flight) as dropped for `reason`, marks them resolved and
    /// returns how many there were.
    pub(crate) fn abandon(&self, reason: DropReason) -> u64 {
        let lost = {
            let mut s = self.lock();
            s.closed = true;
            let queued: Vec<I> = s.items.drain(..).collect();
            s.bytes = 0;
            let lost = s.pushed - s.done;
            for item in &queued {
                self.metrics.record_dropped(reason, item.spans());
            }
            // Items in flight: their span counts are gone with the worker; one each.
            for _ in queued.len() as u64..lost {
                self.metrics.record_dropped(reason, 1);
            }
            s.done = s.pushed;
            self.metrics.set_queue(0, 0);
            lost
        };
        self.progress.notify_all();
        lost
    }

    /// Marks the worker as stopped.
    pub(crate) fn stop(&self) {
        self.lock().stopped = true;
        self.progress.notify_all();
    }

    /// Closes the queue: later pushes are refused, the worker drains until `deadline`.
    pub(crate) fn close(&self, deadline: Instant) {
        {
            let mut s = self.lock();
            s.closed = true;
            s.deadline = Some(s.deadline.map_or(deadline, |d| d.min(deadline)));
        }
        self.wake.signal();
    }

    pub(crate) fn deadline_passed(&self) -> bool {
        self.lock().deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Waits until every item accepted before the call is resolved, or `timeout`.
    /// Returns how many are still unresolved.
    pub(crate) fn wait_resolved(&self, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        let target = s.pushed;
        loop {
            if s.done >= target {
                return 0;
            }
            if s.stopped {
                return target - s.done;
            }
            let now = Instant::now();
            if now >= deadline {
                return target - s.done;
            }
            s = self
                .progress
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits until the worker has stopped, or `timeout`. Returns whether it stopped.
    pub(crate) fn wait_stopped(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        while !s.stopped {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            s = self
                .progress
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Installs the work the worker runs before each batch and at least every `every`
    /// when idle (replacing any).
    pub(crate) fn set_tick(&self, every: Duration, work: Box<dyn TickWork>) {
        *self.tick.lock().unwrap_or_else(|e| e.into_inner()) = Some(Tick { every, work });
        self.wake.signal();
    }

    /// Runs the tick, if any; returns how long the worker may sleep when idle (at most
    /// `idle`).
    pub(crate) fn run_tick(&self, idle: Duration) -> Duration {
        let tick = self.tick.lock().unwrap_or_else(|e| e.into_inner());
        match tick.as_ref() {
            Some(tick) => {
                tick.work.run();
                tick.every.min(idle)
            }
            None => idle,
        }
    }

    /// Whether the worker has anything to do now: queued items, the queue closed, or
    /// work waiting for the tick.
    pub(crate) fn has_work(&self) -> bool {
        {
            let s = self.lock();
            if !s.items.is_empty() || s.closed {
                return true;
            }
        }
        let tick = self.tick.lock().unwrap_or_else(|e| e.into_inner());
        tick.as_ref().is_some_and(|t| t.work.pending())
    }

    /// Items waiting, and whether the queue is closed.
    pub(crate) fn is_empty_and_closed(&self) -> (bool, bool) {
        let s = self.lock();
        (s.items.is_empty(), s.closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Blob(usize, u32);
    impl Item for Blob {
        fn size(&self) -> usize {
            self.0
        }
        fn spans(&self) -> u64 {
            1
        }
        fn describe(&self) -> String {
            format!("blob {}", self.1)
        }
    }

    #[test]
    fn drop_oldest_keeps_the_newest_within_the_limit() {
        let q = Queue::new(100, Overflow::DropOldest, Metrics::default());
        for i in 0..5 {
            assert!(q.push(Blob(30, i)).dropped.is_empty() || i >= 3);
        }
        let kept: Vec<u32> = q.take_all().iter().map(|b| b.1).collect();
        assert_eq!(kept, vec![2, 3, 4]);
    }

    #[test]
    fn drop_newest_refuses_what_does_not_fit_and_too_large_is_refused_always() {
        let q = Queue::new(100, Overflow::DropNewest, Metrics::default());
        for i in 0..5 {
            q.push(Blob(30, i));
        }
        let big = q.push(Blob(101, 9));
        assert_eq!(big.dropped[0].1, DropReason::TooLarge);
        let kept: Vec<u32> = q.take_all().iter().map(|b| b.1).collect();
        assert_eq!(kept, vec![0, 1, 2]);
    }

    #[test]
    fn wait_resolved_counts_evictions_and_finishes() {
        let q = Queue::new(100, Overflow::DropOldest, Metrics::default());
        q.push(Blob(60, 0));
        q.push(Blob(60, 1)); // evicts 0
        assert_eq!(q.wait_resolved(Duration::from_millis(10)), 1);
        let batch = q.take(10);
        q.finish(batch.len());
        assert_eq!(q.wait_resolved(Duration::from_millis(10)), 0);
        q.close(Instant::now());
        assert_eq!(q.push(Blob(1, 2)).dropped[0].1, DropReason::Shutdown);
    }
}
