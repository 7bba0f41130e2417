//! The same rules and request stream through Python aws-xray-sdk's rule matching and
//! ours: both must pick the same rule for every request.
//!
//! Centralized rules go through the SDK's `SamplingRule.match` and `RuleCache` (priority
//! then name, `Default` last); local rule files through `LocalSampler`'s rules
//! (`SamplingRule.applies`, in file order). Every request carries host, method and path:
//! the SDK treats a missing value as matching any pattern, we match it only to `*` (a
//! span that is not an HTTP request is no `GET /health`), so missing values are left out
//! of the comparison on purpose.

mod common;

use std::time::Duration;

use common::*;
use opentelemetry::KeyValue;
use serde_json::{Value, json};
use xray_sampling::{LocalRules, XraySampler};

const HOSTS: &[&str] = &[
    "api.example.com",
    "WWW.Example.com",
    "example.org",
    "a.b.c",
    "api.example.co",
];
const METHODS: &[&str] = &["GET", "POST", "get", "DELETE", "PUT", "Patch"];
const PATHS: &[&str] = &[
    "/health",
    "/HEALTH",
    "/healthz",
    "/api/users/1",
    "/api/move/x",
    "/api/move/xy",
    "/static/a.css",
    "/",
    "/api",
    "/Ünïcode/é",
];

/// A deterministic stream of requests covering every combination above.
fn requests() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for h in HOSTS {
        for m in METHODS {
            for p in PATHS {
                out.push((h.to_string(), m.to_string(), p.to_string()));
            }
        }
    }
    out
}

/// Span attributes for a request, alternating old and new HTTP conventions.
fn attributes(i: usize, (host, method, path): &(String, String, String)) -> Vec<KeyValue> {
    match i % 3 {
        0 => vec![
            KeyValue::new("http.request.method", method.clone()),
            KeyValue::new("url.path", path.clone()),
            KeyValue::new("server.address", host.clone()),
        ],
        1 => vec![
            KeyValue::new("http.method", method.clone()),
            KeyValue::new("http.target", format!("{path}?q=1")),
            KeyValue::new("http.host", host.clone()),
        ],
        _ => vec![
            KeyValue::new("http.request.method", method.clone()),
            KeyValue::new("url.full", format!("https://{host}:8443{path}#frag")),
        ],
    }
}

const CENTRAL_SCRIPT: &str = r#"
import json, sys, time
from aws_xray_sdk.core.sampling.sampling_rule import SamplingRule
from aws_xray_sdk.core.sampling.rule_cache import RuleCache
data = json.load(sys.stdin)
out = {}
for svc in data["services"]:
    rules = [SamplingRule(name=r["RuleName"], priority=r["Priority"], rate=r["FixedRate"],
                          reservoir_size=r["ReservoirSize"], host=r["Host"],
                          service=r["ServiceName"], method=r["HTTPMethod"],
                          path=r["URLPath"], service_type=r["ServiceType"])
             for r in data["rules"]]
    cache = RuleCache()
    now = int(time.time())
    cache.load_rules(rules)
    cache.last_updated = now
    picks = []
    for host, method, path in data["requests"]:
        req = {"host": host, "method": method, "path": path,
               "service": svc["name"], "service_type": svc["type"]}
        rule = cache.get_matched_rule(req, now)
        picks.append(rule.name if rule else None)
    out[svc["name"]] = picks
print(json.dumps(out))
"#;

#[test]
fn centralized_rules_pick_the_same_rule_as_aws_xray_sdk() {
    xray_testkit::require_python(&["aws_xray_sdk.core.sampling.rule_cache"]);
    let rules = vec![
        rule(
            "ignore-healthcheck",
            1,
            0,
            0.0,
            json!({"HTTPMethod": "GET", "URLPath": "/health"}),
        ),
        rule("api-hosts", 10, 1, 0.1, json!({"Host": "api.example.*"})),
        rule("moves", 10, 1, 0.1, json!({"URLPath": "/api/move/?"})),
        rule("posts", 20, 1, 0.1, json!({"HTTPMethod": "P*"})),
        rule(
            "shop-only",
            5,
            1,
            0.1,
            json!({"ServiceName": "shop-*", "URLPath": "/api/*"}),
        ),
        rule(
            "ec2-static",
            5,
            1,
            0.1,
            json!({"ServiceType": "AWS::EC2::Instance", "URLPath": "*.css"}),
        ),
        rule("three-letters", 30, 1, 0.1, json!({"HTTPMethod": "??T"})),
        rule("unicode", 3, 1, 0.1, json!({"URLPath": "/ünïcode/?"})),
        rule("a-tie", 20, 1, 0.1, json!({"Host": "*.org"})),
        default_rule(),
    ];
    let services = [
        ("shop-web", "AWS::EC2::Instance"),
        ("billing", "AWS::ECS::Container"),
    ];
    let requests = requests();
    let input = json!({
        "rules": rules,
        "requests": requests,
        "services": services.iter().map(|(n, t)| json!({"name": n, "type": t})).collect::<Vec<_>>(),
    });
    let python: Value = serde_json::from_str(&xray_testkit::run_python(
        CENTRAL_SCRIPT,
        &[],
        &input.to_string(),
    ))
    .unwrap();

    let stub = Stub::start(StubState {
        rules,
        page_size: 3,
        ..Default::default()
    });
    let mut compared = 0;
    let mut distinct = std::collections::BTreeSet::new();
    for (name, service_type) in services {
        let sampler = XraySampler::builder()
            .with_endpoint(stub.url())
            .with_service_name(name)
            .with_service_type(service_type)
            .build()
            .unwrap();
        assert!(wait_until(Duration::from_secs(5), || sampler.has_central_rules()));
        let theirs = python[name].as_array().unwrap();
        for (i, request) in requests.iter().enumerate() {
            let ours = decide(&sampler, &attributes(i, request)).1;
            assert_eq!(
                Some(ours.as_str()),
                theirs[i].as_str(),
                "service {name}, request {request:?}"
            );
            distinct.insert(ours);
            compared += 1;
        }
    }
    assert_eq!(compared, 2 * requests.len());
    assert!(
        distinct.len() >= 9,
        "the stream exercises most rules: {distinct:?}"
    );
}

const LOCAL_SCRIPT: &str = r#"
import json, sys
from aws_xray_sdk.core.sampling.local.sampler import LocalSampler
data = json.load(sys.stdin)
out = []
for rules in data["files"]:
    sampler = LocalSampler(rules)
    picks = []
    for host, method, path in data["requests"]:
        pick = "Default"
        for rule, raw in zip(sampler._rules, rules["rules"]):
            if rule.applies(host, method, path):
                pick = raw["description"]
                break
        picks.append(pick)
    out.append(picks)
print(json.dumps(out))
"#;

#[test]
fn local_rule_files_pick_the_same_rule_as_aws_xray_sdk() {
    xray_testkit::require_python(&["aws_xray_sdk.core.sampling.local.sampler"]);
    let v2 = json!({
        "version": 2,
        "rules": [
            {"description": "health", "host": "*", "http_method": "GET", "url_path": "/health", "fixed_target": 0, "rate": 0},
            {"description": "moves", "host": "api.*", "http_method": "*", "url_path": "/api/move/*", "fixed_target": 0, "rate": 0.05},
            {"description": "org", "host": "*.org", "http_method": "p?st", "url_path": "*", "fixed_target": 1, "rate": 0.1},
            {"description": "catch-api", "host": "*", "http_method": "*", "url_path": "/api*", "fixed_target": 1, "rate": 0.1}
        ],
        "default": {"fixed_target": 1, "rate": 0.1}
    });
    let v1 = json!({
        "version": 1,
        "rules": [
            {"description": "v1-www", "service_name": "www.*", "http_method": "*", "url_path": "/*", "fixed_target": 0, "rate": 0},
            {"description": "v1-deletes", "service_name": "*", "http_method": "DELETE", "url_path": "/api/*", "fixed_target": 0, "rate": 1}
        ],
        "default": {"fixed_target": 1, "rate": 0.05}
    });
    let requests = requests();
    let input = json!({"files": [v2, v1], "requests": requests});
    let python: Value = serde_json::from_str(&xray_testkit::run_python(
        LOCAL_SCRIPT,
        &[],
        &input.to_string(),
    ))
    .unwrap();
    for (f, file) in [v2, v1].iter().enumerate() {
        let sampler = XraySampler::builder()
            .with_local_rules_only()
            .with_local_rules(LocalRules::from_json(&file.to_string()).unwrap())
            .build()
            .unwrap();
        let theirs = python[f].as_array().unwrap();
        let mut distinct = std::collections::BTreeSet::new();
        for (i, request) in requests.iter().enumerate() {
            let ours = decide(&sampler, &attributes(i, request)).1;
            assert_eq!(
                Some(ours.as_str()),
                theirs[i].as_str(),
                "file {f}, {request:?}"
            );
            distinct.insert(ours);
        }
        let rules = file["rules"].as_array().unwrap().len();
        assert_eq!(
            distinct.len(),
            rules + 1,
            "every rule and the default picked"
        );
    }
}
