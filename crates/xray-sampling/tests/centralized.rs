//! Centralized sampling against a stub of X-Ray's sampling API on loopback.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use opentelemetry::KeyValue;
use serde_json::json;
use xray_sampling::{LocalRules, XraySampler};

const WAIT: Duration = Duration::from_secs(5);

fn fast(stub: &Stub) -> xray_sampling::XraySamplerBuilder {
    XraySampler::builder()
        .with_endpoint(stub.url())
        .with_targets_interval(Duration::from_millis(100))
}

#[test]
fn rules_are_fetched_across_pages_and_ordered() {
    let stub = Stub::start(StubState {
        rules: vec![
            default_rule(),
            rule("zeta", 5, 1, 0.1, json!({})),
            rule("alpha", 5, 1, 0.1, json!({})),
            rule("first", 1, 1, 0.1, json!({})),
            rule("future", 2, 1, 0.1, json!({"Version": 2})),
            rule("late", 9000, 1, 0.1, json!({})),
        ],
        page_size: 2,
        ..Default::default()
    });
    let sampler = fast(&stub).build().unwrap();
    assert!(wait_until(WAIT, || sampler.has_central_rules()));
    assert_eq!(
        sampler.rule_names(),
        ["first", "alpha", "zeta", "late", "Default"],
        "priority then name, Default last, version 2 skipped"
    );
    let calls = stub.state().rules_calls.clone();
    assert_eq!(
        calls[..3],
        [None, Some("page-1".to_owned()), Some("page-2".to_owned())]
    );
}

#[test]
fn healthcheck_rule_samples_nothing_on_health_and_default_takes_the_rest() {
    let stub = Stub::start(StubState {
        rules: vec![
            rule(
                "ignore-healthcheck",
                1,
                0,
                0.0,
                json!({"HTTPMethod": "GET", "URLPath": "/health"}),
            ),
            rule("Default", 10000, 1, 1.0, json!({})),
        ],
        ..Default::default()
    });
    let sampler = fast(&stub).build().unwrap();
    assert!(wait_until(WAIT, || sampler.has_central_rules()));
    for _ in 0..2000 {
        assert_eq!(
            decide(&sampler, &http("GET", "/health")),
            (false, "ignore-healthcheck".into())
        );
    }
    let others: [Vec<KeyValue>; 4] = [
        http("GET", "/api/users"),
        http("POST", "/health"),
        http("GET", "/healthz"),
        vec![KeyValue::new("job", "nightly")],
    ];
    for attrs in &others {
        assert_eq!(
            decide(&sampler, attrs),
            (true, "Default".into()),
            "{attrs:?}"
        );
    }
}

#[test]
fn targets_set_quota_and_rate_and_modified_rules_refresh_early() {
    let stub = Stub::start(StubState {
        rules: vec![
            rule("quota", 1, 1, 0.0, json!({"URLPath": "/quota"})),
            rule("rated", 2, 0, 0.0, json!({"URLPath": "/rated"})),
            default_rule(),
        ],
        ..Default::default()
    });
    {
        let mut s = stub.state();
        let ttl = now_secs() + 60.0;
        s.targets.insert(
            "quota".into(),
            json!({"RuleName": "quota", "FixedRate": 0.0, "ReservoirQuota": 7, "ReservoirQuotaTTL": ttl}),
        );
        s.targets.insert(
            "rated".into(),
            json!({"RuleName": "rated", "FixedRate": 1.0}),
        );
    }
    let sampler = fast(&stub)
        .with_rules_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    assert!(wait_until(WAIT, || sampler.has_central_rules()));
    assert!(wait_until(WAIT, || stub.targets_count() >= 1));
    assert!(
        wait_until(WAIT, || decide(&sampler, &http("GET", "/rated")).0),
        "target rate 1.0 applies"
    );
    // Quota 7 per second: count within one fresh epoch second.
    let per_second = loop {
        let second = now_secs().floor() + 1.0;
        while now_secs() < second + 0.01 {
            std::thread::sleep(Duration::from_millis(2));
        }
        let n = (0..200)
            .filter(|_| decide(&sampler, &http("GET", "/quota")).0)
            .count();
        if now_secs() < second + 1.0 {
            break n;
        }
    };
    assert_eq!(per_second, 7, "quota 7 per second");
    // A rule changed on the service: the next targets answer says so and rules refresh
    // long before the hour.
    {
        let mut s = stub.state();
        s.rules.push(rule("added", 3, 1, 0.0, json!({})));
        s.last_rule_modification = now_secs() + 1.0;
    }
    assert!(wait_until(WAIT, || sampler
        .rule_names()
        .contains(&"added".to_owned())));
}

#[test]
fn statistics_reported_match_decisions_taken() {
    let stub = Stub::start(StubState {
        rules: vec![
            rule("half", 1, 0, 0.5, json!({"URLPath": "/half"})),
            default_rule(),
        ],
        ..Default::default()
    });
    let sampler = fast(&stub).build().unwrap();
    assert!(wait_until(WAIT, || sampler.has_central_rules()));
    let mut taken: HashMap<String, (u64, u64)> = HashMap::new();
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut i = 0u64;
    while Instant::now() < deadline {
        let path = if i.is_multiple_of(3) {
            "/other"
        } else {
            "/half"
        };
        let (sampled, rule) = decide(&sampler, &http("GET", path));
        let e = taken.entry(rule).or_default();
        e.0 += 1;
        e.1 += u64::from(sampled);
        i += 1;
        if i.is_multiple_of(64) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // Two more reports after the last decision flush every counter.
    let seen = stub.targets_count();
    assert!(wait_until(WAIT, || stub.targets_count() >= seen + 2));
    sampler.shutdown();
    let reported = stub.reported();
    for (rule, (requests, sampled)) in &taken {
        let (r_requests, r_sampled, r_borrowed) = reported[rule];
        assert_eq!((r_requests, r_sampled), (*requests, *sampled), "{rule}");
        if rule == "Default" {
            // No quota was ever assigned: one borrowed per second, the rest by 5 %.
            assert!((1..=3).contains(&r_borrowed), "{r_borrowed}");
        } else {
            assert_eq!(r_borrowed, 0, "a rule without reservoir never borrows");
        }
    }
    assert!(taken["half"].0 > 1000, "enough decisions: {taken:?}");
    let calls = stub.state().targets_calls.clone();
    for call in &calls {
        for doc in call["SamplingStatisticsDocuments"].as_array().unwrap() {
            let id = doc["ClientID"].as_str().unwrap();
            assert_eq!(id, sampler.client_id());
            assert!(id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()));
            assert!((doc["Timestamp"].as_f64().unwrap() - now_secs()).abs() < 60.0);
        }
    }
}

#[test]
fn reservoir_holds_its_quota_per_second() {
    const QUOTA: usize = 25;
    let stub = Stub::start(StubState {
        rules: vec![rule("r", 1, 50, 0.0, json!({})), default_rule()],
        ..Default::default()
    });
    stub.state().targets.insert(
        "r".into(),
        json!({"RuleName": "r", "FixedRate": 0.0, "ReservoirQuota": QUOTA, "ReservoirQuotaTTL": now_secs() + 60.0}),
    );
    let sampler = fast(&stub).build().unwrap();
    assert!(wait_until(WAIT, || stub.targets_count() >= 1));
    std::thread::sleep(Duration::from_millis(50));
    // Three threads ask as fast as they can for ~3 seconds; count samples per second.
    let start = now_secs().ceil();
    while now_secs() < start {
        std::thread::sleep(Duration::from_millis(1));
    }
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let sampler = sampler.clone();
            std::thread::spawn(move || {
                let mut per_second: HashMap<u64, usize> = HashMap::new();
                let mut decisions = 0usize;
                while now_secs() < start + 3.0 {
                    let second = now_secs() as u64;
                    if decide(&sampler, &[]).0 {
                        *per_second.entry(second).or_default() += 1;
                    }
                    decisions += 1;
                }
                (per_second, decisions)
            })
        })
        .collect();
    let mut per_second: HashMap<u64, usize> = HashMap::new();
    let mut decisions = 0;
    for h in handles {
        let (counts, n) = h.join().unwrap();
        decisions += n;
        for (s, c) in counts {
            *per_second.entry(s).or_default() += c;
        }
    }
    assert!(decisions > 3000, "enough pressure: {decisions}");
    // A thread reads the second, then decides: at each second's edge each of the 3
    // threads may count one decision in the neighbouring second. Allow 3.
    let first = start as u64;
    let mut total = 0;
    for second in first..first + 3 {
        let count = per_second.get(&second).copied().unwrap_or(0);
        assert!(
            count.abs_diff(QUOTA) <= 3,
            "second {second}: {count} sampled, quota {QUOTA}: {per_second:?}"
        );
        total += count;
    }
    assert!(
        total.abs_diff(3 * QUOTA) <= 3,
        "{total} in 3 s: {per_second:?}"
    );
}

#[test]
fn fixed_rate_holds_statistically() {
    // 10,000 decisions at 5 %: mean 500, standard deviation 21.8. The bound of
    // 500 ± 110 (5 sigma) fails by chance less than once in a million runs.
    let stub = Stub::start(StubState {
        rules: vec![rule("five", 1, 0, 0.05, json!({})), default_rule()],
        ..Default::default()
    });
    let sampler = fast(&stub).build().unwrap();
    assert!(wait_until(WAIT, || sampler.has_central_rules()));
    let sampled = (0..10_000).filter(|_| decide(&sampler, &[]).0).count();
    assert!((390..=610).contains(&sampled), "{sampled} of 10000 at 5 %");

    let local = XraySampler::builder()
        .with_local_rules_only()
        .with_local_rules(
            LocalRules::from_json(r#"{"version":2,"default":{"fixed_target":0,"rate":0.05}}"#)
                .unwrap(),
        )
        .build()
        .unwrap();
    let sampled = (0..10_000).filter(|_| decide(&local, &[]).0).count();
    assert!(
        (390..=610).contains(&sampled),
        "{sampled} of 10000 at 5 % (local)"
    );
}

#[test]
fn unreachable_endpoint_falls_back_to_local_rules_and_logs_once() {
    let port = xray_testkit::free_port();
    let logs = LogSink::default();
    let sampler = logs.capture(|| {
        XraySampler::builder()
            .with_endpoint(format!("http://127.0.0.1:{port}"))
            .with_rules_interval(Duration::from_millis(20))
            .with_targets_interval(Duration::from_millis(20))
            .build()
            .unwrap()
    });
    let start = Instant::now();
    let mut sampled = 0;
    while start.elapsed() < Duration::from_millis(1200) {
        let (s, rule) = decide(&sampler, &http("GET", "/"));
        assert_eq!(rule, "Default");
        sampled += usize::from(s);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(!sampler.has_central_rules());
    assert_eq!(sampler.rule_names(), ["Default"]);
    // Built-in default: 1 per second plus 5 % of ~1000 decisions.
    assert!((1..200).contains(&sampled), "{sampled}");
    assert_eq!(logs.count("failed"), 1, "{:#?}", logs.lines());
    assert!(logs.count("WARN") == 1, "{:#?}", logs.lines());
}

#[test]
fn last_good_rules_last_until_they_expire_then_local_rules_then_recovery() {
    let stub = Stub::start(StubState {
        rules: vec![rule("central", 1, 0, 1.0, json!({})), default_rule()],
        ..Default::default()
    });
    let logs = LogSink::default();
    let local = LocalRules::from_json(
        r#"{"version":2,"rules":[{"description":"local-all","host":"*","http_method":"*",
        "url_path":"*","fixed_target":0,"rate":0}],"default":{"fixed_target":0,"rate":0}}"#,
    )
    .unwrap();
    let sampler = logs.capture(|| {
        fast(&stub)
            .with_rules_interval(Duration::from_millis(100))
            .with_rules_expiry(Duration::from_secs(1))
            .with_local_rules(local)
            .build()
            .unwrap()
    });
    assert!(wait_until(WAIT, || sampler.has_central_rules()));
    assert_eq!(
        decide(&sampler, &http("GET", "/")),
        (true, "central".into())
    );
    stub.state().fail = true;
    let failed_at = Instant::now();
    assert!(wait_until(WAIT, || logs.count("failed") == 1));
    // Within the expiry the last good rules still decide.
    if failed_at.elapsed() < Duration::from_millis(500) {
        assert_eq!(
            decide(&sampler, &http("GET", "/")),
            (true, "central".into())
        );
    }
    assert!(wait_until(WAIT, || !sampler.has_central_rules()));
    assert!(
        failed_at.elapsed() >= Duration::from_millis(900),
        "{:?}",
        failed_at.elapsed()
    );
    assert_eq!(
        decide(&sampler, &http("GET", "/")),
        (false, "local-all".into())
    );
    assert!(wait_until(WAIT, || logs.count("were not refreshed") == 1));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(logs.count("failed"), 1, "logged once: {:#?}", logs.lines());
    assert_eq!(logs.count("were not refreshed"), 1, "{:#?}", logs.lines());

    stub.state().fail = false;
    assert!(wait_until(WAIT, || sampler.has_central_rules()));
    assert_eq!(
        decide(&sampler, &http("GET", "/")),
        (true, "central".into())
    );
    assert!(
        wait_until(WAIT, || logs.count("answers again") == 1),
        "{:#?}",
        logs.lines()
    );
}

#[test]
fn shutdown_and_drop_stop_the_poller() {
    let stub = Stub::start(StubState {
        rules: vec![default_rule()],
        ..Default::default()
    });
    let sampler = fast(&stub).build().unwrap();
    assert!(sampler.is_polling());
    assert!(wait_until(WAIT, || stub.targets_count() >= 1));
    sampler.shutdown();
    assert!(!sampler.is_polling());
    let calls = stub.targets_count();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(stub.targets_count(), calls, "no calls after shutdown");
    // Decisions go on with the rules already loaded.
    assert_eq!(decide(&sampler, &[]).1, "Default");

    let sampler = fast(&stub).build().unwrap();
    let clone = sampler.clone();
    assert!(wait_until(WAIT, || stub.targets_count() > calls));
    drop(sampler);
    assert!(clone.is_polling(), "a clone keeps it alive");
    drop(clone);
    let calls = stub.targets_count();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        stub.targets_count(),
        calls,
        "no calls after the last clone is dropped"
    );
}
