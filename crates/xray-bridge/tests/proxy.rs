//! Every outbound call goes through the proxy: a forward/CONNECT proxy on loopback,
//! started by the test, sees PutTraceSegments, the OTLP endpoint, the sampling proxy's
//! upstream and STS (`--role-arn`) with `-p/--proxy-address`, `HTTP_PROXY` or
//! `HTTPS_PROXY`; none of them for hosts in `NO_PROXY`; and a proxy that refuses makes
//! drops that are counted, not a crash.

mod common;

use std::time::{Duration, Instant};

use common::forward_proxy::ForwardProxy;
use common::xray_stub::XrayStub;
use common::{Bridge, Options, otlp_request, otlp_span, send_segments};
use prost::Message as _;

fn api_options<'a>(stub_url: &str, export: &str, args: Vec<&'a str>) -> Options<'a> {
    let mut all = vec!["--region", "us-east-1"];
    all.extend(args);
    Options {
        args: all,
        env: vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("XRAY_BRIDGE_ENDPOINT_URL", stub_url.to_owned()),
        ],
        ..Options::export(export)
    }
}

fn wait_until(timeout: Duration, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn post(url: &str, content_type: &str, body: Vec<u8>) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .post(url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST to the bridge")
            .status()
            .as_u16()
    })
}

#[test]
fn proxy_address_carries_every_outbound_call() {
    let stub = XrayStub::start(Duration::ZERO);
    let proxy = ForwardProxy::start(false);
    let mut options = api_options(
        &stub.url,
        "api",
        vec![
            "--export",
            "otlp",
            "-p",
            &proxy.url,
            "--role-arn",
            "arn:aws:iam::123456789012:role/xray",
        ],
    );
    options.tcp = true;
    options.env.push(("AWS_ENDPOINT_URL_STS", stub.url.clone()));
    let mut bridge = Bridge::start(options);
    // Daemon datagrams and OTLP spans go to PutTraceSegments (api) and to the OTLP
    // endpoint (otlp).
    send_segments(bridge.udp, 3);
    let request = otlp_request("svc", vec![otlp_span(1, 1, "GET /")]);
    let status = post(
        &bridge.url(bridge.http, "/v1/traces"),
        "application/x-protobuf",
        request.encode_to_vec(),
    );
    assert_eq!(status, 200);
    // The sampling proxy's upstream.
    let status = post(
        &bridge.url(bridge.tcp, "/GetSamplingRules"),
        "application/json",
        b"{}".to_vec(),
    );
    assert_eq!(status, 200, "{}", bridge.logs());
    // Three datagrams and the OTLP span, translated, at PutTraceSegments.
    assert_eq!(stub.wait_for_documents(4, Duration::from_secs(15)).len(), 4);
    wait_until(Duration::from_secs(15), "the OTLP export", || {
        stub.others().iter().any(|r| r == "POST /v1/traces")
    });
    let seen = proxy.seen();
    let base = format!("POST {}", stub.url);
    for path in ["/TraceSegments", "/v1/traces", "/GetSamplingRules", "/"] {
        assert!(
            seen.contains(&format!("{base}{path}")),
            "{path} not through the proxy: {seen:?}\n{}",
            bridge.logs()
        );
    }
    assert_eq!(bridge.stop(Duration::from_secs(20)), 0, "{}", bridge.logs());
}

#[test]
fn http_proxy_from_the_environment_and_no_proxy() {
    for bypass in [false, true] {
        let stub = XrayStub::start(Duration::ZERO);
        let proxy = ForwardProxy::start(false);
        let mut options = api_options(&stub.url, "api", vec![]);
        options.env.push(("HTTP_PROXY", proxy.url.clone()));
        if bypass {
            options.env.push(("NO_PROXY", "127.0.0.1".into()));
        }
        let mut bridge = Bridge::start(options);
        send_segments(bridge.udp, 5);
        assert_eq!(stub.wait_for_documents(5, Duration::from_secs(15)).len(), 5);
        let through: Vec<_> = proxy
            .seen()
            .into_iter()
            .filter(|l| l.ends_with("/TraceSegments"))
            .collect();
        if bypass {
            assert!(through.is_empty(), "NO_PROXY ignored: {through:?}");
        } else {
            assert!(!through.is_empty(), "HTTP_PROXY ignored");
        }
        assert_eq!(bridge.stop(Duration::from_secs(20)), 0, "{}", bridge.logs());
    }
}

#[test]
fn https_calls_tunnel_through_https_proxy() {
    let stub = XrayStub::start(Duration::ZERO);
    let proxy = ForwardProxy::start(false);
    let authority = stub.url.trim_start_matches("http://").to_owned();
    // An https endpoint: the proxy sees the CONNECT (the stub speaks no TLS, so the
    // calls then fail; that is counted).
    let https = format!("https://{authority}");
    let mut options = api_options(&https, "api", vec![]);
    options.env.push(("HTTPS_PROXY", proxy.url.clone()));
    let mut bridge = Bridge::start(options);
    send_segments(bridge.udp, 1);
    wait_until(Duration::from_secs(15), "a CONNECT", || {
        proxy.seen().contains(&format!("CONNECT {authority}"))
    });
    bridge.stop(Duration::from_secs(20));
}

fn dropped(text: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with("xray_bridge_export_dropped_total{export=\"api\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn a_refusing_proxy_makes_counted_drops_not_a_crash() {
    let stub = XrayStub::start(Duration::ZERO);
    let proxy = ForwardProxy::start(true);
    let mut bridge = Bridge::start(api_options(
        &stub.url,
        "api",
        vec!["--proxy-address", &proxy.url],
    ));
    send_segments(bridge.udp, 4);
    let text = bridge.wait_metrics(Duration::from_secs(30), |t| dropped(t) == 4);
    assert!(
        Bridge::metric(
            &text,
            "xray_bridge_export_send_errors_total{export=\"api\"}"
        ) > 0
    );
    assert!(stub.documents().is_empty());
    assert!(!proxy.seen().is_empty());
    // Still serving; the exit code says data was lost.
    assert!(
        bridge
            .metrics_text()
            .contains("xray_bridge_udp_datagrams_received_total 4")
    );
    assert_eq!(bridge.stop(Duration::from_secs(20)), 3, "{}", bridge.logs());
}

/// `--no-verify-ssl`: against a self-signed TLS endpoint (`openssl s_server`, which prints
/// what it receives), calls fail the certificate check without the flag and reach the
/// server with it (with a warning at start).
#[test]
fn no_verify_ssl_turns_certificate_checks_off_and_they_stay_on_without_it() {
    use std::process::{Command, Stdio};
    let scratch = common::Scratch::new("tls");
    let (key, cert, received) = (
        scratch.path("key.pem"),
        scratch.path("cert.pem"),
        scratch.path("received.txt"),
    );
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("the openssl command (Debian's openssl package)");
    assert!(made.success());
    let port = xray_testkit::free_port();
    let mut server = Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-accept",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        // Kept open: s_server stops at the end of its standard input.
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&received).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(10), "openssl s_server", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let endpoint = format!("https://127.0.0.1:{port}");
    let reached = || {
        std::fs::read_to_string(&received)
            .unwrap_or_default()
            .contains("POST /TraceSegments")
    };

    let mut checked = Bridge::start(api_options(
        &endpoint,
        "api",
        vec!["--telemetry", "off", "--shutdown-timeout", "2"],
    ));
    send_segments(checked.udp, 1);
    checked.wait_metrics(Duration::from_secs(30), |t| {
        Bridge::metric(t, "xray_bridge_export_send_errors_total{export=\"api\"}") >= 1
    });
    checked.stop(Duration::from_secs(30));
    assert!(!reached(), "a self-signed certificate was accepted");
    assert!(
        checked.logs().to_ascii_lowercase().contains("certificate"),
        "{}",
        checked.logs()
    );

    let mut unchecked = Bridge::start(api_options(
        &endpoint,
        "api",
        vec![
            "--telemetry",
            "off",
            "--no-verify-ssl",
            "--shutdown-timeout",
            "2",
        ],
    ));
    assert!(
        unchecked.logs().contains("--no-verify-ssl"),
        "{}",
        unchecked.logs()
    );
    send_segments(unchecked.udp, 1);
    wait_until(
        Duration::from_secs(20),
        "the request at the TLS server",
        reached,
    );
    unchecked.stop(Duration::from_secs(30));
    let _ = server.kill();
    let _ = server.wait();
}
