//! A rule's reservoir, lock-free: the quota X-Ray assigned (valid until its TTL) is taken
//! at most `quota` times per second; with no valid quota one request per second may be
//! borrowed. One atomic word holds the current second and its two counters, so a decision
//! is one load plus, when it takes or borrows, one compare-and-swap.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// No quota has been assigned.
const NO_QUOTA: u64 = u64::MAX;
/// The largest per-second quota the packed counter holds (24 bits).
const MAX_TAKEN: u64 = (1 << 24) - 1;

/// What the reservoir allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// Taken from the assigned quota.
    Taken,
    /// Borrowed (no valid quota yet).
    Borrowed,
    /// Nothing left this second: fall back to the fixed rate.
    No,
}

/// Per-rule reservoir state, shared by every thread deciding with the rule.
#[derive(Debug)]
pub(crate) struct Reservoir {
    /// `second << 32 | taken << 8 | borrowed`.
    window: AtomicU64,
    quota: AtomicU64,
    /// Epoch second until which (inclusive) the quota holds.
    quota_until: AtomicU64,
}

impl Reservoir {
    /// A reservoir with no quota yet (centralized rules before their first target).
    pub(crate) fn new() -> Self {
        Reservoir {
            window: AtomicU64::new(0),
            quota: AtomicU64::new(NO_QUOTA),
            quota_until: AtomicU64::new(0),
        }
    }

    /// A reservoir whose quota never expires (local rules' `fixed_target`).
    pub(crate) fn fixed(per_second: u64) -> Self {
        let r = Reservoir::new();
        r.set_quota(per_second, u64::MAX);
        r
    }

    /// Loads a quota assigned by X-Ray, valid through `until_epoch_second`.
    pub(crate) fn set_quota(&self, per_second: u64, until_epoch_second: u64) {
        self.quota.store(per_second.min(MAX_TAKEN), Relaxed);
        self.quota_until.store(until_epoch_second, Relaxed);
    }

    /// Loads what a sampling target says; a missing part keeps its current value.
    pub(crate) fn load_target(&self, per_second: Option<u64>, until_epoch_second: Option<u64>) {
        if let Some(q) = per_second {
            self.quota.store(q.min(MAX_TAKEN), Relaxed);
        }
        if let Some(t) = until_epoch_second {
            self.quota_until.store(t, Relaxed);
        }
    }

    /// The assigned quota, if any, and its expiry.
    #[cfg(test)]
    pub(crate) fn quota(&self) -> Option<(u64, u64)> {
        let q = self.quota.load(Relaxed);
        (q != NO_QUOTA).then(|| (q, self.quota_until.load(Relaxed)))
    }

    /// Takes from the quota, or borrows when there is no valid quota and `can_borrow`.
    pub(crate) fn take(&self, now_second: u64, can_borrow: bool) -> Take {
        let quota = self.quota.load(Relaxed);
        let fresh = quota != NO_QUOTA && self.quota_until.load(Relaxed) >= now_second;
        if fresh && quota == 0 || !fresh && !can_borrow {
            return Take::No;
        }
        let now = now_second & 0xFFFF_FFFF;
        let mut current = self.window.load(Relaxed);
        loop {
            let (mut taken, mut borrowed) = ((current >> 8) & MAX_TAKEN, current & 0xFF);
            // A thread that read the clock just before the second turned must not move
            // the window back (that would hand out a second quota): it counts against the
            // newer window instead.
            let second = (current >> 32).max(now);
            if current >> 32 != second {
                (taken, borrowed) = (0, 0);
            }
            let outcome = if fresh {
                if taken >= quota {
                    return Take::No;
                }
                taken += 1;
                Take::Taken
            } else {
                if borrowed >= 1 {
                    return Take::No;
                }
                borrowed += 1;
                Take::Borrowed
            };
            let next = second << 32 | taken << 8 | borrowed;
            match self
                .window
                .compare_exchange_weak(current, next, Relaxed, Relaxed)
            {
                Ok(_) => return outcome,
                Err(actual) => current = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn borrows_one_per_second_without_quota() {
        let r = Reservoir::new();
        assert_eq!(r.take(100, true), Take::Borrowed);
        assert_eq!(r.take(100, true), Take::No);
        assert_eq!(r.take(101, true), Take::Borrowed);
        assert_eq!(Reservoir::new().take(100, false), Take::No);
    }

    #[test]
    fn takes_quota_while_fresh_then_borrows() {
        let r = Reservoir::new();
        r.set_quota(3, 200);
        assert_eq!(r.take(199, true), Take::Taken);
        assert_eq!(r.take(200, true), Take::Taken, "a new second, a new quota");
        assert_eq!(
            r.take(199, true),
            Take::Taken,
            "a late reader counts in the new second"
        );
        assert_eq!(r.take(200, true), Take::Taken);
        assert_eq!(r.take(200, true), Take::No);
        assert_eq!(r.take(199, true), Take::No, "and never reopens the old one");
        let r = Reservoir::new();
        r.set_quota(3, 200);
        for _ in 0..3 {
            assert_eq!(r.take(200, true), Take::Taken);
        }
        assert_eq!(r.take(200, true), Take::No);
        assert_eq!(r.take(201, true), Take::Borrowed, "expired quota borrows");
        assert_eq!(r.take(201, true), Take::No);
        r.set_quota(0, 300);
        assert_eq!(r.take(250, true), Take::No, "a zero quota never borrows");
    }

    #[test]
    fn concurrent_takes_never_exceed_quota() {
        let r = Arc::new(Reservoir::fixed(1000));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || {
                    (0..5000)
                        .filter(|_| r.take(7, false) == Take::Taken)
                        .count()
                })
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 1000);
    }
}
