//! Signed polling straight to the X-Ray API (aws-sdk-xray), against the stub: the same
//! rules, paging and targets as through the daemon's proxy, and every call signed.
#![cfg(feature = "xray-api")]

mod common;

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_xray::config::{Credentials, SharedCredentialsProvider};
use common::*;
use serde_json::json;
use xray_sampling::XraySampler;

fn sdk_config(endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            None,
            "test",
        )))
        .endpoint_url(endpoint)
        .build()
}

#[test]
fn polls_the_x_ray_api_signed() {
    let stub = Stub::start(StubState {
        rules: vec![
            rule(
                "ignore-healthcheck",
                1,
                0,
                0.0,
                json!({"HTTPMethod": "GET", "URLPath": "/health"}),
            ),
            rule(
                "api",
                5,
                0,
                0.0,
                json!({"URLPath": "/api/*", "Attributes": {"tier": "gold"}}),
            ),
            default_rule(),
        ],
        page_size: 1,
        ..Default::default()
    });
    stub.state().targets.insert(
        "api".into(),
        json!({"RuleName": "api", "FixedRate": 1.0, "ReservoirQuota": 0, "ReservoirQuotaTTL": now_secs() + 60.0, "Interval": 1}),
    );
    let sampler = XraySampler::builder()
        .with_xray_api(&sdk_config(&stub.url()))
        .with_targets_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || sampler.has_central_rules()));
    assert_eq!(
        sampler.rule_names(),
        ["ignore-healthcheck", "api", "Default"]
    );
    assert_eq!(
        decide(&sampler, &http("GET", "/health")),
        (false, "ignore-healthcheck".into())
    );
    let mut gold = http("GET", "/api/x");
    gold.push(opentelemetry::KeyValue::new("tier", "gold"));
    assert!(
        wait_until(Duration::from_secs(10), || decide(&sampler, &gold).0),
        "target rate 1.0 applies"
    );
    assert_eq!(decide(&sampler, &gold).1, "api");
    assert_eq!(
        decide(&sampler, &http("GET", "/api/x")).1,
        "Default",
        "attribute required"
    );
    sampler.shutdown();

    let state = stub.state();
    assert_eq!(
        state.rules_calls[..3],
        [None, Some("page-1".into()), Some("page-2".into())]
    );
    assert!(!state.targets_calls.is_empty(), "{state:#?}");
    let doc = &state.targets_calls[0]["SamplingStatisticsDocuments"][0];
    assert_eq!(doc["ClientID"].as_str(), Some(sampler.client_id()));
    assert!(
        state.authorization.iter().all(|a| a
            .starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
            && a.contains("/us-east-1/xray/aws4_request")),
        "{:?}",
        state.authorization
    );
}
