//! A counter many threads add to without sharing a cache line: each thread adds to its
//! own stripe, the poller sums and resets them all (like Java's `LongAdder`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Stripes per counter (a power of two).
const STRIPES: usize = 8;

/// One stripe per cache line (128 bytes covers adjacent-line prefetching).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe(AtomicU64);

/// A striped counter: `add` is one uncontended atomic add, `take` sums and resets.
#[derive(Debug, Default)]
pub(crate) struct Counter {
    stripes: [Stripe; STRIPES],
}

fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Relaxed) % STRIPES;
    }
    INDEX.with(|i| *i)
}

impl Counter {
    /// Adds `n` on this thread's stripe.
    pub(crate) fn add(&self, n: u64) {
        self.stripes[stripe_index()].0.fetch_add(n, Relaxed);
    }

    /// The total since the last `take`, resetting it (no count is lost or doubled, even
    /// with adds running meanwhile).
    pub(crate) fn take(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0.swap(0, Relaxed))
            .fold(0u64, u64::wrapping_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn concurrent_adds_are_all_taken_once() {
        let counter = Arc::new(Counter::default());
        let taken = Arc::new(AtomicU64::new(0));
        let adders: Vec<_> = (0..4)
            .map(|_| {
                let c = counter.clone();
                std::thread::spawn(move || (0..10_000).for_each(|_| c.add(1)))
            })
            .collect();
        let taker = {
            let (c, t) = (counter.clone(), taken.clone());
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    t.fetch_add(c.take(), Relaxed);
                }
            })
        };
        adders.into_iter().for_each(|h| h.join().unwrap());
        taker.join().unwrap();
        let total = taken.load(Relaxed) + counter.take();
        assert_eq!(total, 40_000);
        assert_eq!(counter.take(), 0);
    }
}
