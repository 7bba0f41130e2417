//! The X-Ray daemon's successor: its config file, its `Concurrency`, and its telemetry,
//! against a stub X-Ray API on loopback.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::xray_stub::XrayStub;
use common::{Bridge, Options};

/// A daemon datagram carrying one valid segment.
fn datagram(i: u32) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let epoch = now as u64;
    format!(
        "{{\"format\":\"json\",\"version\":1}}\n{{\"name\":\"svc\",\"id\":\"{:016x}\",\"trace_id\":\"1-{epoch:08x}-{:024x}\",\"start_time\":{now},\"end_time\":{}}}",
        0x1000_0000_0000_0000u64 + u64::from(i),
        i,
        now + 0.001
    )
}

fn send_datagrams(port: u16, n: u32) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..n {
        socket
            .send_to(datagram(i).as_bytes(), ("127.0.0.1", port))
            .unwrap();
        if i % 50 == 49 {
            // Stay under the receive buffer.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

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
        send_datagrams(bridge.udp, n);
        let docs = stub.wait_for_documents(n as usize, Duration::from_secs(30));
        assert_eq!(docs.len(), n as usize, "{}", bridge.logs());
        assert_eq!(stub.peak_in_flight(), expected, "{args:?}");
        assert_eq!(bridge.stop(Duration::from_secs(20)), 0, "{}", bridge.logs());
    }
}
