//! The X-Ray daemon's successor: its config file, its `Concurrency`, and its telemetry,
//! against a stub X-Ray API on loopback.

mod common;

use std::time::Duration;

use common::forward_proxy::ForwardProxy;
use common::xray_stub::XrayStub;
use common::{Bridge, Options, send_segments};
use xray_testkit::stub::{Reply, Stub};

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
    // The fixed interface: `--export api --endpoint-url URL` (Options gives --export).
    options
        .env
        .retain(|(k, _)| *k != "XRAY_BRIDGE_ENDPOINT_URL");
    options.args.extend(["--endpoint-url", stub.url.as_str()]);
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
            && Bridge::metric(t, "xray_bridge_export_send_errors_total{export=\"api\"}") == 2
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

/// The daemon's sample `cfg.yaml` (Version 2, every key, the daemon's defaults).
const SAMPLE_CFG: &str = include_str!("data/xray-daemon-cfg.yaml");

/// Runs `xray-bridge --check-config` with `args`; the exit code, stdout and stderr.
fn check_config(args: &[&str]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_xray-bridge"));
    for (k, _) in std::env::vars() {
        if k.starts_with("XRAY_BRIDGE_") || k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.arg("--check-config").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn host_memory_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn the_daemons_sample_cfg_yaml_loads_as_it_is_with_only_the_ports_changed() {
    let scratch = common::Scratch::new("cfg-yaml");
    let (udp, tcp) = (common::free_udp_port(), xray_testkit::free_port());
    let text = SAMPLE_CFG
        .replacen("127.0.0.1:2000", &format!("127.0.0.1:{udp}"), 1)
        .replacen("127.0.0.1:2000", &format!("127.0.0.1:{tcp}"), 1);
    // No extension: told by its content.
    let file = scratch.path("cfg");
    std::fs::write(&file, &text).unwrap();
    let (code, out, err) = check_config(&["-c", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    const MIB: u64 = 1024 * 1024;
    let buffer = (host_memory_bytes() / 100 / MIB).max(3) * MIB;
    for line in [
        format!("udp = On(127.0.0.1:{udp})"),
        format!("tcp = On(127.0.0.1:{tcp})"),
        // TotalBufferSizeMB: 0 = 1 % of host memory, at least 3 MB.
        "buffer-memory = 0".into(),
        format!("buffer-bytes = {buffer}"),
        "concurrency = 8".into(),
        "region = None".into(),
        "endpoint-url = None".into(),
        // LogLevel "prod" is info.
        "log-level = Info".into(),
        "log-file = None".into(),
        "log-rotation = true".into(),
        "local-mode = false".into(),
        "resource-arn = None".into(),
        "role-arn = None".into(),
        "no-verify-ssl = false".into(),
        "proxy-address = None".into(),
        "telemetry = true".into(),
    ] {
        assert!(out.lines().any(|l| l == line), "{line}\n{out}");
    }
}

/// Every key set to something else than its default changes what the bridge does.
#[test]
fn each_daemon_key_has_its_effect() {
    let scratch = common::Scratch::new("cfg-yaml-keys");
    let stub = XrayStub::start(Duration::from_millis(200));
    let proxy = ForwardProxy::start(false);
    let log = scratch.path("daemon.log");
    let text = format!(
        "TotalBufferSizeMB: 24\nConcurrency: 3\nRegion: \"eu-west-1\"\nEndpoint: \"{endpoint}\"\n\
         Socket:\n  UDPAddress: \"127.0.0.1:{udp}\"\n  TCPAddress: \"127.0.0.1:{tcp}\"\n\
         ProxyServer:\n  IdleConnTimeout: 10\n  MaxIdleConnsPerHost: 4\n  MaxIdleConns: 1\n\
         Logging:\n  LogRotation: false\n  LogLevel: \"dev\"\n  LogPath: \"{log}\"\n\
         LocalMode: true\nResourceARN: \"arn:aws:ec2:eu-west-1:123456789012:instance/i-1\"\n\
         RoleARN: \"arn:aws:iam::123456789012:role/xray\"\nNoVerifySSL: true\n\
         ProxyAddress: \"{proxy}\"\nVersion: 2\n",
        endpoint = stub.url,
        udp = common::free_udp_port(),
        tcp = xray_testkit::free_port(),
        log = log.display(),
        proxy = proxy.url,
    );
    let file = scratch.path("cfg.yaml");
    std::fs::write(&file, &text).unwrap();
    let (code, out, err) = check_config(&["-c", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for line in [
        "buffer-bytes = 25165824".to_owned(),
        "concurrency = 3".into(),
        "region = Some(\"eu-west-1\")".into(),
        format!("endpoint-url = Some(\"{}\")", stub.url),
        "log-level = Trace".into(),
        format!("log-file = Some(\"{}\")", log.display()),
        "log-rotation = false".into(),
        "local-mode = true".into(),
        "telemetry = false".into(),
        "no-verify-ssl = true".into(),
        format!("proxy-address = Some(\"{}\")", proxy.url),
    ] {
        assert!(out.lines().any(|l| l == line), "{line}\n{out}");
    }
    // A real run with the file: the bridge's listeners are the test's (flags win), the
    // rest is the file's.
    let file_arg = file.display().to_string();
    let mut bridge = Bridge::start(Options {
        // LocalMode: true turns telemetry off by default: asked for here.
        args: vec![
            "-c",
            &file_arg,
            "--telemetry-interval",
            "1",
            "--telemetry",
            "on",
        ],
        env: vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_ENDPOINT_URL_STS", stub.url.clone()),
        ],
        ..Options::export("api")
    });
    send_segments(bridge.udp, 200);
    assert_eq!(
        stub.wait_for_documents(200, Duration::from_secs(30)).len(),
        200
    );
    // Concurrency: 3.
    assert_eq!(stub.peak_in_flight(), 3);
    // ProxyAddress, RoleARN (STS through the endpoint override), Endpoint.
    let seen = proxy.seen();
    for path in ["/TraceSegments", "/"] {
        assert!(
            seen.contains(&format!("POST {}{path}", stub.url)),
            "{path}: {seen:?}"
        );
    }
    // ResourceARN in the telemetry records.
    let telemetry = stub.wait_for_telemetry(Duration::from_secs(10), |t| !t.is_empty());
    assert_eq!(
        telemetry[0]["ResourceARN"],
        "arn:aws:ec2:eu-west-1:123456789012:instance/i-1"
    );
    bridge.stop(Duration::from_secs(20));
    // LogPath and LogLevel dev: the log went to the file (the test's --log-level debug
    // wins over the file), NoVerifySSL warned at start.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("xray-bridge ready"), "{logged}");
    assert!(logged.contains("--no-verify-ssl"), "{logged}");
}

#[test]
fn bad_daemon_files_exit_2_naming_the_key_and_line() {
    let scratch = common::Scratch::new("cfg-yaml-bad");
    for (text, expected) in [
        ("Region: \"us-east-1\"\n", "`Version` is missing"),
        ("Version: 3\n", "line 1: key `Version`"),
        (
            "Version: 2\nSocket:\n  UDPAdress: \"127.0.0.1:1\"\n",
            "line 3: unknown key `Socket.UDPAdress`",
        ),
        (
            "Version: 2\nConcurrency: many\n",
            "line 2: key `Concurrency`",
        ),
        ("Version: 2\nLogging: [\n", "line"),
        (
            "Version: 2\nLogging:\n  LogLevel: loud\n",
            "line 3: key `Logging.LogLevel`",
        ),
    ] {
        let file = scratch.path("cfg.yaml");
        std::fs::write(&file, text).unwrap();
        let (code, _, err) = check_config(&["-c", file.to_str().unwrap()]);
        assert_eq!(code, 2, "{text}: {err}");
        assert!(err.contains(expected), "{text}: {err}");
    }
}

/// A stub EC2 instance metadata service (IMDSv2) on loopback.
fn imds_stub() -> Stub {
    Stub::start(|_, request| {
        let text = |body: &str| Reply::Respond(200, Vec::new(), body.as_bytes().to_vec());
        match (request.method.as_str(), request.path.as_str()) {
            ("PUT", "/latest/api/token") => Reply::Respond(
                200,
                vec![(
                    "x-aws-ec2-metadata-token-ttl-seconds".into(),
                    "21600".into(),
                )],
                b"imds-token".to_vec(),
            ),
            ("GET", "/latest/meta-data/hostname") => text("ip-10-0-0-7.ec2.internal"),
            ("GET", "/latest/meta-data/instance-id") => text("i-0feedfacecafe0001"),
            _ => Reply::Respond(404, Vec::new(), Vec::new()),
        }
    })
}

/// Without `AWS_HOSTNAME`/`AWS_INSTANCE_ID`, the records' `Hostname` and `EC2InstanceId`
/// come from instance metadata, as the daemon fills them, and stay empty in local mode.
#[test]
fn telemetry_identity_comes_from_instance_metadata_unless_local_mode() {
    let imds = imds_stub();
    for (local_mode, hostname, instance) in [
        (false, "ip-10-0-0-7.ec2.internal", "i-0feedfacecafe0001"),
        (true, "", ""),
    ] {
        let stub = XrayStub::start(Duration::ZERO);
        // Telemetry is off by default in local mode: asked for here.
        let mut args = vec!["--telemetry-interval", "1", "--telemetry", "on"];
        if local_mode {
            args.push("--local-mode");
        }
        let mut options = api_options(&stub, &args);
        options
            .env
            .push(("AWS_EC2_METADATA_DISABLED", "false".into()));
        options
            .env
            .push(("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url()));
        let mut bridge = Bridge::start(options);
        send_segments(bridge.udp, 1);
        let records = stub.wait_for_telemetry(Duration::from_secs(15), |t| !t.is_empty());
        bridge.stop(Duration::from_secs(20));
        assert!(!records.is_empty(), "{}", bridge.logs());
        assert_eq!(records[0]["Hostname"], hostname, "{}", records[0]);
        assert_eq!(records[0]["EC2InstanceId"], instance);
    }
}

/// A daemon datagram whose segment carries `pad` bytes of metadata.
fn big_datagram(i: u32, pad: usize) -> String {
    let small = common::segment_datagram(i);
    let cut = small.rfind('}').unwrap();
    format!(
        "{},\"metadata\":{{\"default\":{{\"pad\":\"{}\"}}}}}}",
        &small[..cut],
        "x".repeat(pad)
    )
}

/// Documents dropped because the export queue was full are the records'
/// `SegmentsSpilloverCount`.
#[test]
fn telemetry_spillover_counts_queue_overflow() {
    // A slow X-Ray, one call at a time, a 3 MB queue and 6 MB of segments.
    let stub = XrayStub::start(Duration::from_millis(500));
    let mut bridge = Bridge::start(api_options(
        &stub,
        &[
            "--telemetry-interval",
            "1",
            "--concurrency",
            "1",
            "--buffer-memory",
            "3",
            "--shutdown-timeout",
            "1",
        ],
    ));
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..600 {
        socket
            .send_to(
                big_datagram(i, 10_000).as_bytes(),
                ("127.0.0.1", bridge.udp),
            )
            .unwrap();
        if i % 20 == 19 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let overflow = "xray_bridge_export_dropped_total{export=\"api\",reason=\"queue_full\"}";
    let text = bridge.wait_metrics(Duration::from_secs(20), |t| Bridge::metric(t, overflow) > 0);
    let received = Bridge::metric(&text, "xray_bridge_udp_datagrams_received_total");
    let overflowed = Bridge::metric(&text, overflow);
    // The records up to now and the last one after the stop.
    bridge.stop(Duration::from_secs(30));
    let text = std::fs::read_to_string(&bridge.log).unwrap_or_default();
    let records: Vec<serde_json::Value> = stub
        .telemetry()
        .iter()
        .flat_map(|b| b["TelemetryRecords"].as_array().unwrap().clone())
        .collect();
    let spilled = sum(&records, "SegmentsSpilloverCount");
    assert!(spilled >= overflowed && spilled > 0, "{records:?}\n{text}");
    assert!(sum(&records, "SegmentsReceivedCount") >= received);
    assert!(spilled + sum(&records, "SegmentsSentCount") <= sum(&records, "SegmentsReceivedCount"));
}
