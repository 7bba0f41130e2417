//! Waking the pipeline's worker: only when it sleeps, so that a producer handing work to
//! a busy worker pays one atomic load, not a lock and a system call.
//!
//! The rule that makes skipping safe: the worker marks itself sleeping *before* it looks
//! for work a last time, and every producer changes what the worker looks at under a lock
//! the worker's look also takes, then reads the mark. Either the worker's look comes
//! after the change (it sees the work), or the mark was set before the producer's lock
//! (the producer sees it and wakes the worker).

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// The worker's wake-up signal, for a worker on a Tokio runtime or on a plain thread.
pub(crate) struct Wake {
    /// The worker is about to wait, or waiting.
    sleeping: AtomicBool,
    /// Whether the worker waits on the condition variable (plain thread) or on `notify`
    /// (runtime); fixed when the worker starts.
    blocking: AtomicBool,
    /// A runtime worker's signal (a notification before the wait is kept as a permit).
    notify: tokio::sync::Notify,
    /// A plain thread's signal: set by a wake, cleared by the wait it ends.
    signalled: Mutex<bool>,
    cv: Condvar,
}

impl Default for Wake {
    fn default() -> Self {
        Wake {
            sleeping: AtomicBool::new(false),
            blocking: AtomicBool::new(false),
            notify: tokio::sync::Notify::new(),
            signalled: Mutex::new(false),
            cv: Condvar::new(),
        }
    }
}

impl Wake {
    /// Sets which wait the worker uses (before it starts).
    pub(crate) fn set_blocking(&self, blocking: bool) {
        self.blocking.store(blocking, SeqCst);
    }

    /// Wakes the worker if it is sleeping (or about to). Call after changing, under its
    /// lock, what the worker checks before it sleeps.
    pub(crate) fn notify(&self) {
        if self.sleeping.load(SeqCst) {
            self.signal();
        }
    }

    /// Wakes the worker whether or not it sleeps (a wake-up it does not need is only a
    /// spare turn of its loop).
    pub(crate) fn signal(&self) {
        if self.blocking.load(SeqCst) {
            *self.signalled.lock().unwrap_or_else(|e| e.into_inner()) = true;
            self.cv.notify_one();
        } else {
            self.notify.notify_one();
        }
    }

    /// Marks the worker sleeping; the worker then checks for work a last time, and
    /// either [`Wake::awake`]s or waits.
    pub(crate) fn prepare_to_sleep(&self) {
        self.sleeping.store(true, SeqCst);
    }

    /// Clears the sleeping mark.
    pub(crate) fn awake(&self) {
        self.sleeping.store(false, SeqCst);
    }

    /// A plain thread's wait: until a wake or `timeout`.
    pub(crate) fn wait_blocking(&self, timeout: Duration) {
        let mut signalled = self.signalled.lock().unwrap_or_else(|e| e.into_inner());
        if !*signalled {
            signalled = self
                .cv
                .wait_timeout_while(signalled, timeout, |s| !*s)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *signalled = false;
        drop(signalled);
        self.awake();
    }

    /// A runtime worker's wait: until a wake or `timeout`.
    pub(crate) async fn wait_async(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.notify.notified()).await;
        self.awake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn a_wake_reaches_a_sleeping_thread_and_none_is_sent_to_a_busy_one() {
        let wake = Arc::new(Wake::default());
        wake.set_blocking(true);
        // Busy: no signal is left behind.
        wake.notify();
        assert!(!*wake.signalled.lock().unwrap());
        // Sleeping: the wake ends the wait long before its timeout.
        wake.prepare_to_sleep();
        let waker = {
            let wake = wake.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                wake.notify();
            })
        };
        let start = Instant::now();
        wake.wait_blocking(Duration::from_secs(10));
        assert!(start.elapsed() < Duration::from_secs(5));
        waker.join().unwrap();
        // A wake between the mark and the wait is not lost.
        wake.prepare_to_sleep();
        wake.notify();
        let start = Instant::now();
        wake.wait_blocking(Duration::from_secs(10));
        assert!(start.elapsed() < Duration::from_secs(5));
        // And the wait without a wake lasts its timeout.
        wake.prepare_to_sleep();
        let start = Instant::now();
        wake.wait_blocking(Duration::from_millis(30));
        assert!(start.elapsed() >= Duration::from_millis(30));
    }
}
