//! The sampling proxy against a stub X-Ray API of our own: only the two sampling paths
//! are forwarded, signed with SigV4 for `xray`; everything else is 404; bodies bounded.

mod common;

use std::time::Duration;

use common::{Bridge, Options};
use xray_testkit::stub::{Reply, Request, Stub};

const NO_TARGETS: &str =
    r#"{"SamplingTargetDocuments":[],"LastRuleModification":0,"UnprocessedStatistics":[]}"#;

/// The stub X-Ray API: `rules` for GetSamplingRules, no targets for SamplingTargets, and a
/// 400 for a body that says `fail`.
fn sampling_api(rules: &'static str) -> Stub {
    Stub::start(move |_, request| {
        if request.body.windows(4).any(|w| w == b"fail") {
            Reply::json(400, r#"{"Message":"bad statistics"}"#)
        } else if request.path == "/GetSamplingRules" {
            Reply::json(200, rules)
        } else {
            Reply::json(200, NO_TARGETS)
        }
    })
}

/// The request's SigV4 `authorization` header (empty when absent).
fn authorization(request: &Request) -> &str {
    request.header("authorization").unwrap_or("")
}

#[test]
fn only_sampling_paths_are_forwarded_and_they_are_signed() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let api = sampling_api(
        r#"{"SamplingRuleRecords":[{"SamplingRule":{"RuleName":"Default","Priority":10000,"FixedRate":0.05,"ReservoirSize":1,"ServiceName":"*","ServiceType":"*","Host":"*","HTTPMethod":"*","URLPath":"*","ResourceARN":"*","Version":1}}]}"#,
    );
    let upstream = api.url();

    let mut bridge = Bridge::start(Options {
        tcp: true,
        console: false,
        args: vec!["--region", "us-east-1", "--endpoint-url", &upstream],
        env: vec![
            ("AWS_ACCESS_KEY_ID", "AKIDBRIDGETEST".into()),
            ("AWS_SECRET_ACCESS_KEY", "SECRETBRIDGETEST".into()),
        ],
        ..Options::export("stdout")
    });
    let base = bridge.url(bridge.tcp, "");
    rt.block_on(async {
        let client = reqwest::Client::new();
        let post = |path: &str, body: Vec<u8>| {
            client
                .post(format!("{base}{path}"))
                .header("content-type", "application/json")
                .body(body)
                .send()
        };
        let rules = post("/GetSamplingRules", b"{}".to_vec()).await.unwrap();
        assert_eq!(rules.status(), 200);
        let rules: serde_json::Value = rules.json().await.unwrap();
        assert_eq!(rules["SamplingRuleRecords"][0]["SamplingRule"]["RuleName"], "Default");

        let stats = br#"{"SamplingStatisticsDocuments":[{"RuleName":"Default","ClientID":"0123456789abcdef01234567","Timestamp":1700000000,"RequestCount":3,"SampledCount":1,"BorrowCount":0}]}"#;
        let targets = post("/SamplingTargets", stats.to_vec()).await.unwrap();
        assert_eq!(targets.status(), 200);

        // Upstream errors come back as they are.
        let failed = post("/SamplingTargets", br#"{"fail":1}"#.to_vec()).await.unwrap();
        assert_eq!(failed.status(), 400);

        // Everything else stays here.
        for path in ["/TraceSegments", "/PutTraceSegments", "/", "/GetSamplingRules/x"] {
            assert_eq!(post(path, b"{}".to_vec()).await.unwrap().status(), 404, "{path}");
        }
        let get = client.get(format!("{base}/GetSamplingRules")).send().await.unwrap();
        assert_eq!(get.status(), 405);
        let big = post("/SamplingTargets", vec![b' '; 200_000]).await.unwrap();
        assert_eq!(big.status(), 413);
    });

    let seen = api.requests();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/GetSamplingRules", "/SamplingTargets", "/SamplingTargets"]
    );
    for s in &seen {
        let authorization = authorization(s);
        assert!(
            authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDBRIDGETEST/")
                && authorization.contains("/us-east-1/xray/aws4_request")
                && authorization.contains("Signature="),
            "{authorization}"
        );
        assert!(s.header("x-amz-date").is_some());
    }
    assert_eq!(seen[0].body, b"{}");

    let text = bridge.metrics_text();
    let count = |path: &str, outcome: &str| {
        Bridge::metric(
            &text,
            &format!(
                "xray_bridge_sampling_requests_total{{path=\"{path}\",outcome=\"{outcome}\"}}"
            ),
        )
    };
    assert_eq!(count("/GetSamplingRules", "forwarded"), 1);
    assert_eq!(count("/SamplingTargets", "forwarded"), 1);
    assert_eq!(count("/SamplingTargets", "upstream_error"), 1);
    assert_eq!(count("/SamplingTargets", "too_large"), 1);
    assert_eq!(count("other", "not_found"), 4);
    assert_eq!(bridge.stop(Duration::from_secs(20)), 0);
    let logs = bridge.logs();
    assert!(
        !logs.contains("SECRETBRIDGETEST"),
        "credentials in logs:\n{logs}"
    );
}

#[test]
fn an_unreachable_api_is_a_502_not_a_hang() {
    let closed = format!("http://127.0.0.1:{}", xray_testkit::free_port());
    let mut bridge = Bridge::start(Options {
        tcp: true,
        console: false,
        args: vec!["--region", "us-east-1", "--endpoint-url", &closed],
        env: vec![
            ("AWS_ACCESS_KEY_ID", "AKIDBRIDGETEST".into()),
            ("AWS_SECRET_ACCESS_KEY", "SECRETBRIDGETEST".into()),
        ],
        ..Options::export("stdout")
    });
    let url = bridge.url(bridge.tcp, "/GetSamplingRules");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        reqwest::Client::new()
            .post(url)
            .body("{}")
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 502);
    let text = bridge.metrics_text();
    assert_eq!(
        Bridge::metric(
            &text,
            "xray_bridge_sampling_requests_total{path=\"/GetSamplingRules\",outcome=\"upstream_unreachable\"}"
        ),
        1
    );
    assert_eq!(bridge.stop(Duration::from_secs(20)), 0);
}

const PY_SAMPLER: &str = r#"
import json, sys, time
from aws_xray_sdk.core import xray_recorder
xray_recorder.configure(
    daemon_address="tcp:127.0.0.1:%s udp:127.0.0.1:%s" % (sys.argv[1], sys.argv[2]),
    sampling=True, context_missing="LOG_ERROR", plugins=())
sampler = xray_recorder.sampler
sampler.start()
deadline = time.time() + 15
while time.time() < deadline and not sampler._cache.rules:
    time.sleep(0.05)
ask = lambda service: bool(sampler.should_trace(
    {"service": service, "host": "example.com", "method": "GET", "path": "/x"}))
print(json.dumps({
    "rules": [r.name for r in sampler._cache.rules],
    "blocked": [ask("blocked-svc") for _ in range(5)],
    "other": [ask("other-svc") for _ in range(5)],
}))
"#;

/// The Python aws-xray-sdk's centralized sampler, pointed at the bridge like at the
/// daemon, gets its rules through the proxy (unsigned in, signed out) and applies them.
#[test]
fn the_python_sdk_sampler_gets_its_rules_through_the_proxy() {
    xray_testkit::require_python(&["aws_xray_sdk"]);
    let api = sampling_api(
        r#"{"SamplingRuleRecords":[
        {"SamplingRule":{"RuleName":"Block","Priority":1,"FixedRate":0.0,"ReservoirSize":0,"ServiceName":"blocked-svc","ServiceType":"*","Host":"*","HTTPMethod":"*","URLPath":"*","ResourceARN":"*","Version":1,"Attributes":{}}},
        {"SamplingRule":{"RuleName":"Default","Priority":10000,"FixedRate":1.0,"ReservoirSize":0,"ServiceName":"*","ServiceType":"*","Host":"*","HTTPMethod":"*","URLPath":"*","ResourceARN":"*","Version":1,"Attributes":{}}}]}"#,
    );
    let upstream = api.url();
    let mut bridge = Bridge::start(Options {
        tcp: true,
        console: false,
        args: vec!["--region", "us-east-1", "--endpoint-url", &upstream],
        env: vec![
            ("AWS_ACCESS_KEY_ID", "AKIDBRIDGETEST".into()),
            ("AWS_SECRET_ACCESS_KEY", "SECRETBRIDGETEST".into()),
        ],
        ..Options::export("stdout")
    });
    let out = xray_testkit::run_python(
        PY_SAMPLER,
        &[&bridge.tcp.to_string(), &bridge.udp.to_string()],
        "",
    );
    let out: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        out["rules"],
        serde_json::json!(["Block", "Default"]),
        "{out}"
    );
    assert_eq!(
        out["blocked"],
        serde_json::json!([false, false, false, false, false]),
        "{out}"
    );
    assert_eq!(
        out["other"],
        serde_json::json!([true, true, true, true, true]),
        "{out}"
    );
    let seen = api.requests();
    let rules_call = seen
        .iter()
        .find(|s| s.path == "/GetSamplingRules")
        .expect("rules fetched through the proxy");
    assert!(authorization(rules_call).starts_with("AWS4-HMAC-SHA256 Credential=AKIDBRIDGETEST/"));
    assert_eq!(bridge.stop(Duration::from_secs(20)), 0);
}
