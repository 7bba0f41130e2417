//! The binary's interface: flags, environment variables, the config file, health, and
//! startup errors.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Bridge, Options, Scratch};

fn bridge() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xray-bridge"));
    for (k, _) in std::env::vars() {
        if k.starts_with("XRAY_BRIDGE_") || k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[test]
fn flags_beat_environment_which_beats_the_config_file() {
    let scratch = Scratch::new("cli");
    let file = scratch.path("bridge.toml");
    std::fs::write(
        &file,
        "udp = \"127.0.0.1:3000\"\nexport = \"stdout\"\nregion = \"eu-west-1\"\nbuffer-memory = 8\nmetrics = \"127.0.0.1:9464\"\n",
    )
    .unwrap();
    let out = bridge()
        .args(["--check-config", "-c"])
        .arg(&file)
        .args(["-n", "us-west-2"])
        .env("XRAY_BRIDGE_EXPORT", "daemon:xray.internal:2000")
        .env("XRAY_BRIDGE_REGION", "ap-south-1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("127.0.0.1:3000"), "{text}");
    assert!(text.contains("xray.internal:2000"), "{text}");
    assert!(text.contains("\"us-west-2\""), "{text}");
    assert!(text.contains("buffer-bytes = 8388608"), "{text}");
    assert!(text.contains("127.0.0.1:9464"), "{text}");
}

#[test]
fn bad_configuration_exits_with_code_2_and_says_why() {
    let out = bridge().args(["--export", "s3://bucket"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("export"));
    let scratch = Scratch::new("cli-bad");
    let file = scratch.path("bad.toml");
    std::fs::write(&file, "udp-port = 2000\n").unwrap();
    let out = bridge().arg("-c").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("udp-port"));
}

#[test]
fn a_busy_port_or_a_missing_region_fails_the_start_with_code_1() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().to_string();
    let out = bridge()
        .args([
            "--otlp-http",
            &port,
            "--otlp-grpc",
            "off",
            "--udp",
            "off",
            "--tcp",
            "off",
        ])
        .args(["--export", "stdout"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&port));
    let out = bridge()
        .args(["--otlp-http", "off", "--otlp-grpc", "off", "--tcp", "off"])
        .args(["--udp", "127.0.0.1:0", "--export", "api", "--local-mode"])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("region"));
}

#[test]
fn healthz_and_metrics_answer_and_ctrl_c_drains_too() {
    let mut bridge = Bridge::start(Options::export("stdout"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let health = rt.block_on(async {
        let r = reqwest::get(bridge.url(bridge.metrics, "/healthz"))
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    });
    assert_eq!(health.0, 200);
    assert_eq!(health.1.trim(), "ok");
    let text = bridge.metrics_text();
    for family in [
        "# TYPE xray_bridge_udp_datagrams_received_total counter",
        "# TYPE xray_bridge_otlp_spans_received_total counter",
        "# TYPE xray_bridge_export_queue_bytes gauge",
        "# TYPE xray_bridge_export_dropped_total counter",
    ] {
        assert!(text.contains(family), "{family}\n{text}");
    }
    assert_eq!(
        bridge.interrupt(Duration::from_secs(20)),
        0,
        "{}",
        bridge.logs()
    );
    assert!(bridge.logs().contains("SIGINT"), "{}", bridge.logs());
}

#[test]
fn daemon_version_flag_and_log_file() {
    let out = bridge().arg("-v").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("xray-bridge "));

    let scratch = Scratch::new("cli-log");
    let log = scratch.path("bridge.log");
    let log_arg = log.display().to_string();
    let mut bridge = Bridge::start(Options {
        args: vec!["-f", &log_arg, "-l", "info"],
        ..Options::export("stdout")
    });
    assert_eq!(bridge.stop(Duration::from_secs(20)), 0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("xray-bridge ready"), "{text}");
    assert!(text.contains("totals over the run"), "{text}");
    assert!(
        !bridge.logs().contains("xray-bridge ready"),
        "stderr stays quiet"
    );
}
