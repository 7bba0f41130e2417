//! The background poller: one thread that fetches rules (every 5 minutes with jitter,
//! early when X-Ray says they changed) and reports statistics for new targets (every
//! 10 seconds or each rule's interval). It never blocks a decision: it publishes rule sets
//! through an `ArcSwap` and targets through the rules' atomics. It logs a failing endpoint
//! once, not per call, and stops when the sampler is dropped or shut down.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry::Context;

use crate::client::SamplingApi;
use crate::rule::{Rule, RuleSet};
use crate::shared::{CentralRules, Shared, epoch_second};
use crate::wire::{StatisticsDocument, TargetsResponse};

/// At most this many statistics documents per SamplingTargets call (the API's limit).
const MAX_DOCUMENTS_PER_CALL: usize = 25;
/// A server that keeps answering with a next page gets cut off here.
const MAX_RULE_PAGES: usize = 100;
/// How long dropping the sampler waits for the thread to finish.
const STOP_WAIT: Duration = Duration::from_secs(1);

/// Timing of the poller.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PollTiming {
    pub rules_interval: Duration,
    pub targets_interval: Duration,
    pub rules_expiry: Duration,
}

/// Stops the thread when dropped.
#[derive(Debug)]
pub(crate) struct PollerHandle {
    running: Mutex<Option<Running>>,
}

/// The thread and the two channels that stop it and tell it ended.
#[derive(Debug)]
struct Running {
    stop: Sender<()>,
    done: Receiver<()>,
    thread: JoinHandle<()>,
}

impl PollerHandle {
    /// Starts the poller; `connect` builds the client on the new thread.
    pub(crate) fn spawn(
        shared: Arc<Shared>,
        connect: Box<dyn FnOnce() -> Result<Box<dyn SamplingApi>, String> + Send>,
        timing: PollTiming,
        label: String,
    ) -> std::io::Result<Self> {
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        // Log where the builder's thread logs when it has a scoped subscriber; otherwise
        // to the global one, looked up when logging (it is often installed after the
        // sampler is built, since the tracing layer needs the provider first).
        let scoped = tracing::dispatcher::get_default(|d| {
            (!d.is::<tracing::subscriber::NoSubscriber>()).then(|| d.clone())
        });
        let thread = std::thread::Builder::new()
            .name("xray-sampling".into())
            .spawn(move || {
                let _done = done_tx;
                // Nothing this thread does (HTTP, AWS SDK, logs) may become a span.
                let _suppressed = Context::enter_telemetry_suppressed_scope();
                let work = || match connect() {
                    Ok(api) => Poller::new(shared, api, timing, label).run(&stop_rx),
                    Err(e) => tracing::warn!(
                        target: "xray_sampling",
                        "X-Ray sampling poller cannot start ({e}); using local rules only"
                    ),
                };
                match scoped {
                    Some(dispatch) => tracing::dispatcher::with_default(&dispatch, work),
                    None => work(),
                }
            })?;
        Ok(PollerHandle {
            running: Mutex::new(Some(Running {
                stop: stop_tx,
                done: done_rx,
                thread,
            })),
        })
    }

    /// Tells the thread to stop and waits briefly for it.
    pub(crate) fn stop(&self) {
        let taken = self.running.lock().map(|mut g| g.take()).unwrap_or(None);
        if let Some(Running { stop, done, thread }) = taken {
            drop(stop);
            if let Err(RecvTimeoutError::Disconnected) = done.recv_timeout(STOP_WAIT) {
                let _ = thread.join();
            }
        }
    }

    /// Whether the thread has ended.
    pub(crate) fn is_finished(&self) -> bool {
        self.running
            .lock()
            .map(|g| g.as_ref().is_none_or(|r| r.thread.is_finished()))
            .unwrap_or(true)
    }
}

impl Drop for PollerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Seconds since the epoch, as a float.
fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

struct Poller {
    shared: Arc<Shared>,
    api: Box<dyn SamplingApi>,
    timing: PollTiming,
    label: String,
    next_rules: Instant,
    /// When the current rules were fetched (epoch seconds), to compare with
    /// `LastRuleModification`.
    rules_fetched_at: f64,
    /// When each rule's statistics are next due.
    due: HashMap<Arc<str>, Instant>,
    /// Each rule's reporting interval, as X-Ray last set it.
    intervals: HashMap<Arc<str>, Duration>,
    failing: bool,
    expiry_logged: bool,
}

impl Poller {
    fn new(
        shared: Arc<Shared>,
        api: Box<dyn SamplingApi>,
        timing: PollTiming,
        label: String,
    ) -> Self {
        Poller {
            shared,
            api,
            timing,
            label,
            next_rules: Instant::now(),
            rules_fetched_at: 0.0,
            due: HashMap::new(),
            intervals: HashMap::new(),
            failing: false,
            expiry_logged: false,
        }
    }

    fn run(mut self, stop: &Receiver<()>) {
        loop {
            let now = Instant::now();
            if now >= self.next_rules {
                self.refresh_rules();
            }
            self.report_due(Instant::now());
            self.check_expiry();
            let now = Instant::now();
            let wake = self
                .due
                .values()
                .copied()
                .chain([self.next_rules, now + self.timing.targets_interval])
                .min()
                .unwrap_or(now);
            let wait = wake
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            match stop.recv_timeout(wait) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
        }
    }

    fn failed(&mut self, what: &str, error: &str) {
        if self.failing {
            tracing::debug!(target: "xray_sampling", "{what} failed again: {error}");
            return;
        }
        self.failing = true;
        let fallback = if self.shared.central.load().is_some() {
            "keeping the last rules it sent until they expire, then local rules"
        } else {
            "using local rules"
        };
        tracing::warn!(
            target: "xray_sampling",
            "X-Ray sampling endpoint {} failed ({what}: {error}); {fallback} until it recovers",
            self.label
        );
    }

    fn succeeded(&mut self) {
        if self.failing {
            self.failing = false;
            tracing::info!(
                target: "xray_sampling",
                "X-Ray sampling endpoint {} answers again",
                self.label
            );
        }
    }

    fn fetch_all_rules(&mut self) -> Result<Vec<Rule>, String> {
        let mut rules = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_RULE_PAGES {
            let page = self.api.rules_page(token.as_deref())?;
            for record in page.sampling_rule_records {
                let Some(definition) = record.sampling_rule else {
                    continue;
                };
                match definition.into_rule() {
                    Ok(rule) => rules.push(rule),
                    Err(why) => {
                        tracing::debug!(target: "xray_sampling", "skipping sampling rule: {why}")
                    }
                }
            }
            token = page.next_token.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(rules);
            }
        }
        Err(format!("more than {MAX_RULE_PAGES} pages of rules"))
    }

    fn refresh_rules(&mut self) {
        let started = Instant::now();
        match self.fetch_all_rules() {
            Ok(rules) => {
                self.succeeded();
                let previous = self.shared.central.load_full();
                let set =
                    RuleSet::sorted(rules).adopt_state_from(previous.as_deref().map(|c| &c.rules));
                let fetched_at = epoch_now();
                let expires_at = (fetched_at + self.timing.rules_expiry.as_secs_f64()) as u64;
                let first_due = started + self.timing.targets_interval;
                self.due.retain(|name, _| set.get(name).is_some());
                self.intervals.retain(|name, _| set.get(name).is_some());
                for rule in set.iter() {
                    self.due.entry(rule.name.clone()).or_insert(first_due);
                }
                tracing::debug!(
                    target: "xray_sampling",
                    "loaded {} sampling rules from {}", set.len(), self.label
                );
                self.shared.central.store(Some(Arc::new(CentralRules {
                    rules: set,
                    expires_at,
                })));
                self.rules_fetched_at = fetched_at;
                self.expiry_logged = false;
                self.next_rules = started + self.timing.rules_interval + self.jitter();
            }
            Err(e) => {
                self.failed("GetSamplingRules", &e);
                self.next_rules =
                    started + self.timing.targets_interval.min(self.timing.rules_interval);
            }
        }
    }

    /// Up to 5 seconds (a tenth of the interval when that is shorter), so that a fleet
    /// started together does not poll together.
    fn jitter(&self) -> Duration {
        let max = Duration::from_secs(5).min(self.timing.rules_interval / 10);
        max.mul_f64(fastrand::f64())
    }

    fn report_due(&mut self, now: Instant) {
        let Some(central) = self.shared.central.load_full() else {
            return;
        };
        let due: Vec<&Rule> = central
            .rules
            .iter()
            .filter(|r| self.due.get(&r.name).is_none_or(|d| *d <= now))
            .collect();
        for batch in due.chunks(MAX_DOCUMENTS_PER_CALL) {
            let timestamp = epoch_now();
            let taken: Vec<_> = batch.iter().map(|r| r.state.take_statistics()).collect();
            let documents: Vec<StatisticsDocument> = batch
                .iter()
                .zip(&taken)
                .map(|(rule, s)| StatisticsDocument {
                    rule_name: rule.name.to_string(),
                    client_id: self.shared.client_id.clone(),
                    timestamp,
                    request_count: s.requests,
                    sampled_count: s.sampled,
                    borrow_count: s.borrowed,
                })
                .collect();
            match self.api.targets(&documents) {
                Ok(answer) => {
                    self.succeeded();
                    for rule in batch {
                        let interval = self
                            .intervals
                            .get(&rule.name)
                            .copied()
                            .unwrap_or(self.timing.targets_interval);
                        self.due.insert(rule.name.clone(), now + interval);
                    }
                    self.apply_targets(&central.rules, answer, now);
                }
                Err(e) => {
                    for (rule, s) in batch.iter().zip(taken) {
                        rule.state.restore_statistics(s);
                        self.due
                            .insert(rule.name.clone(), now + self.timing.targets_interval);
                    }
                    self.failed("GetSamplingTargets", &e);
                    return;
                }
            }
        }
    }

    fn apply_targets(&mut self, rules: &RuleSet, answer: TargetsResponse, now: Instant) {
        for target in answer.sampling_target_documents {
            let Some(rule) = target.rule_name.as_deref().and_then(|n| rules.get(n)) else {
                continue;
            };
            if let Some(rate) = target.fixed_rate {
                rule.state.set_rate(rate);
            }
            let quota = target.reservoir_quota.and_then(|q| u64::try_from(q).ok());
            let until = target
                .reservoir_quota_ttl
                .filter(|t| t.is_finite() && *t >= 0.0)
                .map(|t| t as u64);
            rule.state.reservoir.load_target(quota, until);
            if let Some(secs) = target.interval.filter(|i| *i > 0) {
                let interval = Duration::from_secs(secs.unsigned_abs());
                self.intervals.insert(rule.name.clone(), interval);
                self.due.insert(rule.name.clone(), now + interval);
            }
        }
        for u in answer.unprocessed_statistics {
            tracing::debug!(
                target: "xray_sampling",
                "X-Ray did not process statistics of {:?}: {:?} {:?}",
                u.rule_name, u.error_code, u.message
            );
        }
        if answer
            .last_rule_modification
            .is_some_and(|modified| modified > self.rules_fetched_at)
        {
            self.next_rules = now;
        }
    }

    fn check_expiry(&mut self) {
        if self.expiry_logged {
            return;
        }
        let Some(central) = self.shared.central.load_full() else {
            return;
        };
        if epoch_second() > central.expires_at {
            self.expiry_logged = true;
            tracing::warn!(
                target: "xray_sampling",
                "X-Ray sampling rules from {} were not refreshed for {:?}; using local rules",
                self.label,
                self.timing.rules_expiry
            );
        }
    }
}
