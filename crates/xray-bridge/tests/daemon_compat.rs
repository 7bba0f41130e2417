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
