//! An adaptive limit on calls in flight: halved when the receiver throttles, raised by
//! one per success up to the configured maximum (additive increase, multiplicative
//! decrease), so throttling means fewer calls, not only later ones.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Calls in flight, and how many may be.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let limit = xray_export::transport::limit::AdaptiveLimit::new(4);
/// limit.throttled();
/// assert_eq!(limit.limit(), 2);
/// let permit = limit.acquire().await;
/// limit.succeeded();
/// assert_eq!((limit.limit(), limit.in_flight()), (3, 1));
/// drop(permit);
/// assert_eq!(limit.in_flight(), 0);
/// # });
/// ```
#[derive(Debug)]
pub struct AdaptiveLimit {
    state: Mutex<State>,
    released: Notify,
    max: usize,
}

#[derive(Debug)]
struct State {
    limit: usize,
    in_flight: usize,
}

/// One call's place in flight; gives it back on drop.
#[derive(Debug)]
pub struct Permit(Arc<AdaptiveLimit>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.lock().in_flight -= 1;
        self.0.released.notify_waiters();
    }
}

impl AdaptiveLimit {
    /// A limit starting at (and never above) `max` calls, at least one.
    pub fn new(max: usize) -> Arc<Self> {
        let max = max.max(1);
        Arc::new(AdaptiveLimit {
            state: Mutex::new(State {
                limit: max,
                in_flight: 0,
            }),
            released: Notify::new(),
            max,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a place in flight.
    pub async fn acquire(self: &Arc<Self>) -> Permit {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before the check, so a release in between is not missed.
            released.as_mut().enable();
            {
                let mut s = self.lock();
                if s.in_flight < s.limit {
                    s.in_flight += 1;
                    return Permit(self.clone());
                }
            }
            released.await;
        }
    }

    /// The receiver throttled a call: halve the limit (never below one).
    pub fn throttled(&self) {
        let mut s = self.lock();
        let before = s.limit;
        s.limit = (s.limit / 2).max(1);
        if s.limit < before {
            tracing::debug!(target: "xray_export", limit = s.limit, "throttled: fewer calls in flight");
        }
    }

    /// A call succeeded: allow one more in flight, up to the maximum.
    pub fn succeeded(&self) {
        let raised = {
            let mut s = self.lock();
            let raised = s.limit < self.max;
            s.limit = (s.limit + 1).min(self.max);
            raised
        };
        if raised {
            self.released.notify_waiters();
        }
    }

    /// Calls allowed in flight now.
    pub fn limit(&self) -> usize {
        self.lock().limit
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }
}
