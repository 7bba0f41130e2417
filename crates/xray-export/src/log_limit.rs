//! The one rate limit for repeated log lines (a bad datagram, a failing endpoint, a drop):
//! the first line of each kind is written at once, then at most one per interval, each
//! saying how many occurrences it stands for; nothing is lost from the counts.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one log line per kind and interval, counting what it stands for.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use xray_export::log_limit::LogLimiter;
///
/// let limit = LogLimiter::new(Duration::from_secs(60));
/// assert_eq!(limit.allow("bad_datagram"), Some(1)); // the first is logged
/// assert_eq!(limit.allow("bad_datagram"), None); // then held back, and counted
/// assert_eq!(limit.allow("bad_header"), Some(1)); // each kind on its own
/// assert_eq!(limit.take_pending(), vec![("bad_datagram", 1)]);
/// ```
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    /// Per kind: when a line was last written, and occurrences not yet logged.
    state: Mutex<Vec<(&'static str, Option<Instant>, u64)>>,
}

impl LogLimiter {
    /// At most one line per `interval` for each kind.
    pub fn new(interval: Duration) -> Self {
        LogLimiter {
            interval,
            state: Mutex::new(Vec::new()),
        }
    }

    /// One occurrence of `kind`; see [`allow_n`](Self::allow_n).
    pub fn allow(&self, kind: &'static str) -> Option<u64> {
        self.allow_n(kind, 1)
    }

    /// `n` occurrences of `kind`: `Some(total)` when a line should be written now, `total`
    /// being how many occurrences it stands for (these included); `None` when they are
    /// held back for a later line.
    pub fn allow_n(&self, kind: &'static str, n: u64) -> Option<u64> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let slot = match state.iter().position(|(k, _, _)| *k == kind) {
            Some(i) => i,
            None => {
                state.push((kind, None, 0));
                state.len() - 1
            }
        };
        let (_, last, pending) = &mut state[slot];
        *pending += n;
        match last {
            Some(at) if now.duration_since(*at) < self.interval => None,
            _ => {
                *last = Some(now);
                Some(std::mem::take(pending))
            }
        }
    }

    /// The occurrences held back so far, by kind, and forgets them (for a last line at
    /// flush or shutdown).
    pub fn take_pending(&self) -> Vec<(&'static str, u64)> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .iter_mut()
            .filter(|(_, _, n)| *n > 0)
            .map(|(k, _, n)| (*k, std::mem::take(n)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_counting_the_rest() {
        let limit = LogLimiter::new(Duration::from_millis(50));
        assert_eq!(limit.allow_n("a", 3), Some(3));
        assert_eq!(limit.allow("a"), None);
        assert_eq!(limit.allow_n("a", 2), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            limit.allow("a"),
            Some(4),
            "the held-back three and this one"
        );
        assert!(limit.take_pending().is_empty());
        let every = LogLimiter::new(Duration::ZERO);
        assert_eq!(every.allow("a"), Some(1));
        assert_eq!(every.allow("a"), Some(1));
    }
}
