//! The X-Ray daemon's successor: its config file, its `Concurrency`, and its telemetry,
//! against a stub X-Ray API on loopback.

mod common;

use std::time::Duration;

use common::xray_stub::XrayStub;
use common::{Bridge, Options, send_segments};

fn api_options<'a>(stub: &XrayStub, args: &[&'a str]) -> Options<'a> {
    let mut all = vec!["--region", "us-east-1"];
    all.extend_from_slice(args);
    Options {
        args: all,
        env: vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("XRAY_BRIDGE_ENDPOINT_URL", stub.url.clone()),
        ],
        ..Options::export("api")
    }
}

/// `--concurrency N` (and the default 8) bounds the PutTraceSegments calls in flight,
/// and the bound is reached when there is enough to send.
#[test]
fn concurrency_bounds_the_calls_in_flight() {
    for (args, expected) in [(vec!["--concurrency", "3"], 3), (vec![], 8)] {
        let stub = XrayStub::start(Duration::from_millis(300));
        let mut bridge = Bridge::start(api_options(&stub, &args));
        let n = 1000;
        send_segments(bridge.udp, n);
        let docs = stub.wait_for_documents(n as usize, Duration::from_secs(30));
        assert_eq!(docs.len(), n as usize, "{}", bridge.logs());
        assert_eq!(stub.peak_in_flight(), expected, "{args:?}");
        assert_eq!(bridge.stop(Duration::from_secs(20)), 0, "{}", bridge.logs());
    }
}

fn sum(records: &[serde_json::Value], field: &str) -> u64 {
    records
        .iter()
        .map(|r| {
            field
                .split('.')
                .fold(r, |v, k| &v[k])
                .as_u64()
                .unwrap_or_else(|| panic!("{field} in {r}"))
        })
        .sum()
}

/// PutTelemetryRecords reaches `--endpoint-url` with counts equal to what the test sent,
/// what was rejected and what failed upstream, and the daemon's identity fields.
#[test]
fn telemetry_records_count_what_happened() {
    let stub = XrayStub::start(Duration::ZERO);
    let mut options = api_options(
        &stub,
        &[
            "--telemetry-interval",
            "1",
            "--resource-arn",
            "arn:aws:ecs:us-east-1:123456789012:task/abc",
        ],
    );
    options.env.push(("AWS_HOSTNAME", "bridge-host".into()));
    options
        .env
        .push(("AWS_INSTANCE_ID", "i-0123456789abcdef0".into()));
    let mut bridge = Bridge::start(options);
    // One PutTraceSegments call answered 500 (retried, then delivered).
    stub.fail_next(500, 1);
    send_segments(bridge.udp, 5);
    assert_eq!(stub.wait_for_documents(5, Duration::from_secs(15)).len(), 5);
    // One answered 400 (its documents rejected for good).
    stub.fail_next(400, 1);
    send_segments(bridge.udp, 2);
    // Three datagrams the receiver rejects.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for bad in [
        "garbage",
        "{\"format\":\"xml\",\"version\":1}\n{}",
        "{\"format\":\"json\",\"version\":1}\nT1S%%",
    ] {
        socket
            .send_to(bad.as_bytes(), ("127.0.0.1", bridge.udp))
            .unwrap();
    }
    bridge.wait_metrics(Duration::from_secs(15), |t| {
        Bridge::metric(t, "xray_bridge_udp_datagrams_received_total") == 10
            && Bridge::metric(
                t,
                "xray_bridge_export_send_errors_total{pipeline=\"documents\"}",
            ) == 2
    });
    // At least one periodic record before the stop.
    stub.wait_for_telemetry(Duration::from_secs(10), |t| !t.is_empty());
    // Lost documents (the 400) make exit code 3; the last record goes out on the way.
    assert_eq!(bridge.stop(Duration::from_secs(30)), 3, "{}", bridge.logs());
    let delivered = stub.documents().len() as u64;
    let bodies = stub.telemetry();
    for body in &bodies {
        assert_eq!(body["Hostname"], "bridge-host", "{body}");
        assert_eq!(body["EC2InstanceId"], "i-0123456789abcdef0");
        assert_eq!(
            body["ResourceARN"],
            "arn:aws:ecs:us-east-1:123456789012:task/abc"
        );
    }
    let records: Vec<serde_json::Value> = bodies
        .iter()
        .flat_map(|b| b["TelemetryRecords"].as_array().unwrap().clone())
        .collect();
    assert!(records.len() >= 2, "{records:?}");
    assert_eq!(sum(&records, "SegmentsReceivedCount"), 10, "{records:?}");
    assert_eq!(sum(&records, "SegmentsSentCount"), delivered);
    assert_eq!(sum(&records, "SegmentsRejectedCount"), 3 + (7 - delivered));
    assert!(delivered < 7, "the 400 rejected some documents");
    assert_eq!(sum(&records, "SegmentsSpilloverCount"), 0);
    assert_eq!(sum(&records, "BackendConnectionErrors.HTTPCode5XXCount"), 1);
    assert_eq!(sum(&records, "BackendConnectionErrors.HTTPCode4XXCount"), 1);
    for other in [
        "ConnectionRefusedCount",
        "TimeoutCount",
        "UnknownHostCount",
        "OtherCount",
    ] {
        assert_eq!(
            sum(&records, &format!("BackendConnectionErrors.{other}")),
            0
        );
    }
}

/// `--telemetry off` sends none; a failing telemetry endpoint is counted and logged
/// once, and segments still flow.
#[test]
fn telemetry_off_sends_nothing_and_failures_are_counted() {
    let stub = XrayStub::start(Duration::ZERO);
    let mut bridge = Bridge::start(api_options(&stub, &["--telemetry", "off"]));
    send_segments(bridge.udp, 2);
    assert_eq!(stub.wait_for_documents(2, Duration::from_secs(15)).len(), 2);
    assert_eq!(bridge.stop(Duration::from_secs(20)), 0);
    assert!(stub.telemetry().is_empty());

    // An endpoint whose port is closed: every call is refused.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut options = api_options(&stub, &["--telemetry-interval", "1"]);
    options
        .env
        .retain(|(k, _)| *k != "XRAY_BRIDGE_ENDPOINT_URL");
    options.env.push((
        "XRAY_BRIDGE_ENDPOINT_URL",
        format!("http://127.0.0.1:{closed}"),
    ));
    let mut bridge = Bridge::start(options);
    send_segments(bridge.udp, 1);
    bridge.wait_metrics(Duration::from_secs(30), |t| {
        Bridge::metric(t, "xray_bridge_telemetry_failures_total") >= 2
    });
    bridge.stop(Duration::from_secs(30));
    assert_eq!(
        bridge.logs().matches("PutTelemetryRecords failed").count(),
        1,
        "rate-limited: {}",
        bridge.logs()
    );
}
