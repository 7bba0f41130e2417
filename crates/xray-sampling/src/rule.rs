//! Sampling rules as the sampler holds them: what they match, their order, and the
//! per-rule state (reservoir, rate, statistics) that survives rule refreshes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use opentelemetry::Value;

use crate::counter::Counter;
use crate::request::{Request, ServiceInfo};
use crate::reservoir::{Reservoir, Take};
use crate::wildcard::wildcard_match;

/// The name X-Ray gives its catch-all rule.
pub(crate) const DEFAULT_RULE_NAME: &str = "Default";

/// Counters reported to GetSamplingTargets, reset by each report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Statistics {
    pub requests: u64,
    pub sampled: u64,
    pub borrowed: u64,
}

/// What a rule carries across refreshes: its reservoir, current rate and counters.
#[derive(Debug)]
pub(crate) struct RuleState {
    pub reservoir: Reservoir,
    rate_bits: AtomicU64,
    requests: Counter,
    sampled: Counter,
    borrowed: Counter,
}

impl RuleState {
    pub(crate) fn new(reservoir: Reservoir, rate: f64) -> Self {
        RuleState {
            reservoir,
            rate_bits: AtomicU64::new(rate.to_bits()),
            requests: Counter::default(),
            sampled: Counter::default(),
            borrowed: Counter::default(),
        }
    }

    /// The fixed rate currently in force.
    pub(crate) fn rate(&self) -> f64 {
        f64::from_bits(self.rate_bits.load(Relaxed))
    }

    /// Sets the fixed rate (from a rule definition or a sampling target).
    pub(crate) fn set_rate(&self, rate: f64) {
        if rate.is_finite() && rate >= 0.0 {
            self.rate_bits.store(rate.to_bits(), Relaxed);
        }
    }

    /// Adds back counters a failed report could not deliver.
    pub(crate) fn restore_statistics(&self, s: Statistics) {
        self.requests.add(s.requests);
        self.sampled.add(s.sampled);
        self.borrowed.add(s.borrowed);
    }

    /// Takes the counters and resets them.
    pub(crate) fn take_statistics(&self) -> Statistics {
        Statistics {
            requests: self.requests.take(),
            sampled: self.sampled.take(),
            borrowed: self.borrowed.take(),
        }
    }
}

/// What a rule matches. Every pattern is an X-Ray wildcard; `*` also matches a value the
/// span does not have, any other pattern needs the value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Matchers {
    pub service_name: String,
    pub service_type: String,
    pub host: String,
    pub http_method: String,
    pub url_path: String,
    pub resource_arn: String,
    /// Span attributes that must all be present and match.
    pub attributes: Vec<(String, String)>,
}

impl Matchers {
    /// Matches everything.
    pub(crate) fn any() -> Self {
        let star = || "*".to_owned();
        Matchers {
            service_name: star(),
            service_type: star(),
            host: star(),
            http_method: star(),
            url_path: star(),
            resource_arn: star(),
            attributes: Vec::new(),
        }
    }

    fn matches(&self, request: &Request<'_>, service: &ServiceInfo) -> bool {
        field(&self.http_method, request.method)
            && field(&self.url_path, request.path)
            && field(&self.host, request.host)
            && field(&self.service_name, service.name.as_deref())
            && field(&self.service_type, service.service_type.as_deref())
            && field(
                &self.resource_arn,
                request.resource_arn.or(service.resource_arn.as_deref()),
            )
            && self
                .attributes
                .iter()
                .all(|(key, pattern)| attribute(request, key, pattern))
    }
}

fn field(pattern: &str, value: Option<&str>) -> bool {
    match value {
        Some(v) => wildcard_match(pattern, v),
        None => pattern == "*",
    }
}

fn attribute(request: &Request<'_>, key: &str, pattern: &str) -> bool {
    let Some(kv) = request.attributes.iter().find(|kv| kv.key.as_str() == key) else {
        return false;
    };
    match &kv.value {
        Value::String(s) => wildcard_match(pattern, s.as_str()),
        Value::Bool(_) | Value::I64(_) | Value::F64(_) => {
            wildcard_match(pattern, &kv.value.as_str())
        }
        _ => pattern == "*",
    }
}

/// One rule: name, order, what it matches, and its shared state.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub name: Arc<str>,
    pub priority: i64,
    pub matchers: Matchers,
    /// Whether the rule may borrow (X-Ray: its `ReservoirSize` is above zero).
    pub can_borrow: bool,
    pub state: Arc<RuleState>,
}

impl Rule {
    /// Counts the request and decides: reservoir first, then the fixed rate.
    pub(crate) fn decide(&self, now_second: u64) -> bool {
        let state = &*self.state;
        state.requests.add(1);
        let sampled = match state.reservoir.take(now_second, self.can_borrow) {
            Take::Taken => true,
            Take::Borrowed => {
                state.borrowed.add(1);
                true
            }
            Take::No => fastrand::f64() < state.rate(),
        };
        if sampled {
            state.sampled.add(1);
        }
        sampled
    }

    fn is_default(&self) -> bool {
        &*self.name == DEFAULT_RULE_NAME
    }
}

/// Rules in decision order: by priority then name, with `Default` last.
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleSet {
    rules: Vec<Rule>,
    /// The catch-all, if the set has one.
    default: Option<Rule>,
}

impl RuleSet {
    /// Orders centralized rules; the rule named `Default` becomes the catch-all.
    pub(crate) fn sorted(rules: Vec<Rule>) -> Self {
        let (mut defaults, mut rules): (Vec<Rule>, Vec<Rule>) =
            rules.into_iter().partition(Rule::is_default);
        rules.sort_by(|a, b| {
            a.priority
                .cmp(&b.priority)
                .then_with(|| a.name.cmp(&b.name))
        });
        RuleSet {
            rules,
            default: defaults.pop(),
        }
    }

    /// Keeps the given order (local rule files apply rules as written) with a catch-all.
    pub(crate) fn ordered(rules: Vec<Rule>, default: Rule) -> Self {
        RuleSet {
            rules,
            default: Some(default),
        }
    }

    /// The first rule that matches, else the catch-all.
    pub(crate) fn pick(&self, request: &Request<'_>, service: &ServiceInfo) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|r| r.matchers.matches(request, service))
            .or(self.default.as_ref())
    }

    /// Every rule, catch-all last.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().chain(self.default.as_ref())
    }

    /// The rule with this name.
    pub(crate) fn get(&self, name: &str) -> Option<&Rule> {
        self.iter().find(|r| &*r.name == name)
    }

    /// Gives refreshed rules the state of the rules they replace (same name): quota,
    /// reservoir window and unreported counters carry over; the rate is the new one.
    pub(crate) fn adopt_state_from(mut self, previous: Option<&RuleSet>) -> Self {
        let Some(previous) = previous else {
            return self;
        };
        let by_name: HashMap<&str, &Arc<RuleState>> =
            previous.iter().map(|r| (&*r.name, &r.state)).collect();
        for rule in self.rules.iter_mut().chain(self.default.as_mut()) {
            if let Some(state) = by_name.get(&*rule.name) {
                let rate = rule.state.rate();
                rule.state = Arc::clone(state);
                rule.state.set_rate(rate);
            }
        }
        self
    }

    /// How many rules, catch-all included.
    pub(crate) fn len(&self) -> usize {
        self.rules.len() + usize::from(self.default.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::KeyValue;

    fn rule(name: &str, priority: i64, m: Matchers) -> Rule {
        Rule {
            name: name.into(),
            priority,
            matchers: m,
            can_borrow: true,
            state: Arc::new(RuleState::new(Reservoir::new(), 0.05)),
        }
    }

    #[test]
    fn order_is_priority_then_name_default_last() {
        let set = RuleSet::sorted(vec![
            rule("Default", 1, Matchers::any()),
            rule("b", 5, Matchers::any()),
            rule("a", 5, Matchers::any()),
            rule("z", 2, Matchers::any()),
        ]);
        let names: Vec<&str> = set.iter().map(|r| &*r.name).collect();
        assert_eq!(names, ["z", "a", "b", "Default"]);
    }

    #[test]
    fn absent_values_match_only_star() {
        let service = ServiceInfo::default();
        let health = Matchers {
            http_method: "GET".into(),
            url_path: "/health".into(),
            ..Matchers::any()
        };
        let set = RuleSet::sorted(vec![
            rule("health", 1, health),
            rule("Default", 10000, Matchers::any()),
        ]);
        let pick = |attrs: &[KeyValue]| {
            set.pick(&Request::from_attributes(attrs), &service)
                .map(|r| r.name.to_string())
        };
        assert_eq!(pick(&[]).as_deref(), Some("Default"));
        let h = [
            KeyValue::new("http.request.method", "get"),
            KeyValue::new("url.path", "/HEALTH"),
        ];
        assert_eq!(pick(&h).as_deref(), Some("health"));
    }

    #[test]
    fn attributes_and_service_fields() {
        let m = Matchers {
            service_name: "shop-*".into(),
            service_type: "AWS::EC2::Instance".into(),
            attributes: vec![("tier".into(), "gold".into()), ("n".into(), "4?".into())],
            ..Matchers::any()
        };
        let service = ServiceInfo {
            name: Some("shop-api".into()),
            service_type: Some("AWS::EC2::Instance".into()),
            resource_arn: None,
        };
        let attrs = [KeyValue::new("tier", "GOLD"), KeyValue::new("n", 42_i64)];
        assert!(m.matches(&Request::from_attributes(&attrs), &service));
        assert!(!m.matches(&Request::from_attributes(&attrs[..1]), &service));
        let other = ServiceInfo {
            name: Some("billing".into()),
            ..service.clone()
        };
        assert!(!m.matches(&Request::from_attributes(&attrs), &other));
    }

    #[test]
    fn refresh_keeps_state_and_takes_new_rate() {
        let old = RuleSet::sorted(vec![rule("a", 1, Matchers::any())]);
        old.get("a").unwrap().state.reservoir.set_quota(7, u64::MAX);
        assert!(old.get("a").unwrap().decide(5));
        let mut fresh = rule("a", 1, Matchers::any());
        fresh.state = Arc::new(RuleState::new(Reservoir::new(), 0.5));
        let new = RuleSet::sorted(vec![fresh]).adopt_state_from(Some(&old));
        let a = new.get("a").unwrap();
        assert_eq!(a.state.reservoir.quota(), Some((7, u64::MAX)));
        assert_eq!(a.state.rate(), 0.5);
        assert_eq!(a.state.take_statistics().requests, 1);
    }
}
