//! An overload soak of the xray-bridge binary: for `SOAK_SECS` (10 minutes under
//! `cargo bench`), senders offer more than the export can deliver, and the binary's RSS is
//! sampled every second and must stay under its bound.
//!
//! The export is `--export api` to a stub `PutTraceSegments` on loopback that takes at
//! most `SOAK_API_CALLS` calls per second and answers the others `429
//! ThrottlingException` (X-Ray over its quota). The senders: OTLP/HTTP protobuf requests
//! of 500 spans at `SOAK_OTLP_RATE` spans/s (open loop, on two connections) and daemon
//! datagrams at `SOAK_UDP_RATE` per second. Two modes, run side by side (filters `memory`
//! and `spool`): memory only, and with `--spool` (budget `SOAK_SPOOL_MB`, 32 MiB by
//! default, so that it fills and drops its oldest records within the run).
//!
//! Reported per mode: RSS (max, average, last), spans sent, accepted (the binary's
//! receiver counters), delivered (counted at the stub), dropped by reason (the export's
//! `xray_bridge_export_dropped_spans_total`, the receivers' rejections), the spool at the
//! end, and calls throttled. Asserted: max RSS under `SOAK_RSS_LIMIT_MB` (128 by default),
//! something delivered, nothing delivered that was not accepted.
//!
//! `cargo bench -p xray-bridge-benches --bench soak` runs the full soak; without `--bench`
//! (`cargo test -p xray-bridge-benches --benches`) it runs 5 seconds per mode.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use xray_bridge_benches::binary::load;
use xray_bridge_benches::binary::process::{
    Scratch, Server, free_port, free_udp_port, xray_bridge_bin,
};
use xray_bridge_benches::binary::workload;
use xray_testkit::counting_api::StubApi;

/// The soak's settings, from the environment.
#[derive(Debug, Clone, Copy)]
struct Soak {
    duration: Duration,
    otlp_spans_per_second: u64,
    udp_per_second: u64,
    api_calls_per_second: u64,
    spool_bytes: u64,
    rss_limit: u64,
}

impl Soak {
    fn from_env(quick: bool) -> Soak {
        let env = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(default)
        };
        Soak {
            duration: Duration::from_secs(env("SOAK_SECS", if quick { 5 } else { 600 })),
            otlp_spans_per_second: env("SOAK_OTLP_RATE", 5_000),
            udp_per_second: env("SOAK_UDP_RATE", 2_000),
            api_calls_per_second: env("SOAK_API_CALLS", 5),
            spool_bytes: env("SOAK_SPOOL_MB", 32) << 20,
            rss_limit: env("SOAK_RSS_LIMIT_MB", 128) << 20,
        }
    }
}

/// What one mode's soak measured.
#[derive(Debug, Default)]
struct Report {
    mode: &'static str,
    samples: u64,
    max_rss: u64,
    sum_rss: u64,
    last_rss: u64,
    otlp_sent: u64,
    otlp_accepted_by_answer: u64,
    otlp_failed_requests: u64,
    udp_sent: u64,
    delivered: u64,
    throttled: u64,
    metrics: BTreeMap<String, f64>,
}

impl Report {
    fn metric(&self, name: &str) -> f64 {
        self.metrics.get(name).copied().unwrap_or(0.0)
    }

    fn accepted(&self) -> f64 {
        self.metric("xray_bridge_otlp_spans_accepted_total")
            + self.metric("xray_bridge_udp_documents_accepted_total")
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// `GET /metrics`, summed per metric name and `reason` label (other labels merged).
fn scrape(port: u16) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return out;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        let reason = series
            .split_once("reason=\"")
            .and_then(|(_, r)| r.split('"').next());
        let key = match reason {
            Some(r) => format!("{name}{{reason=\"{r}\"}}"),
            None => name.to_owned(),
        };
        *out.entry(key).or_default() += value;
    }
    out
}

fn soak(bin: &std::path::Path, mode: &'static str, spool: bool, s: Soak) -> Report {
    let scratch = Scratch::new(&format!("soak-{mode}"));
    let stub = StubApi::start_throttled(s.api_calls_per_second).expect("stub API");
    let (mut http, mut udp, mut metrics) = (0, 0, 0);
    let server = Server::start(
        "xray-bridge",
        &scratch.path("xray-bridge.log"),
        Duration::from_secs(30),
        || {
            (http, udp, metrics) = (free_port(), free_udp_port(), free_port());
            let mut cmd = Command::new(bin);
            cmd.args(["--otlp-http", &format!("127.0.0.1:{http}")])
                .args(["--udp", &format!("127.0.0.1:{udp}")])
                .args(["--metrics", &format!("127.0.0.1:{metrics}")])
                .args(["--otlp-grpc", "off", "--tcp", "off", "--log-level", "warn"])
                .args([
                    "--export",
                    "api",
                    "--region",
                    "us-east-1",
                    "--telemetry",
                    "off",
                ])
                .args(["--shutdown-timeout", "2", "--endpoint-url", &stub.url()]);
            if spool {
                cmd.arg("--spool")
                    .arg(scratch.path("spool"))
                    .args(["--spool-max-bytes", &s.spool_bytes.to_string()]);
            }
            for (k, _) in std::env::vars() {
                if k.starts_with("XRAY_BRIDGE_") || k.starts_with("AWS_") || k == "RUST_LOG" {
                    cmd.env_remove(k);
                }
            }
            cmd.envs([
                ("AWS_ACCESS_KEY_ID", "AKIDSOAK"),
                ("AWS_SECRET_ACCESS_KEY", "soak-secret"),
                ("AWS_EC2_METADATA_DISABLED", "true"),
            ]);
            (cmd, http)
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let bodies = workload::otlp_bodies(8, 500);
    let datagrams = workload::daemon_datagrams(500);
    let mut report = Report {
        mode,
        ..Default::default()
    };
    let start = Instant::now();
    std::thread::scope(|scope| {
        let otlp: Vec<_> = (0..2)
            .map(|_| {
                let bodies = &bodies;
                scope.spawn(move || {
                    load::otlp_http_paced(http, bodies, s.otlp_spans_per_second / 2, s.duration)
                })
            })
            .collect();
        let datagrams = &datagrams;
        let udp_sender = scope
            .spawn(move || load::udp_paced(udp, datagrams, s.udp_per_second, s.duration, u64::MAX));
        // RSS once a second while the senders run.
        let mut next = start;
        while start.elapsed() < s.duration {
            next += Duration::from_secs(1);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            let rss = server.usage().rss;
            report.samples += 1;
            report.max_rss = report.max_rss.max(rss);
            report.sum_rss += rss;
            report.last_rss = rss;
            if report.samples.is_multiple_of(60) {
                eprintln!(
                    "soak {mode}: {} s, RSS {:.1} MB (max {:.1} MB), delivered {}",
                    report.samples,
                    mb(rss),
                    mb(report.max_rss),
                    stub.received.spans.load(Relaxed)
                );
            }
        }
        for o in otlp {
            let r = o.join().expect("OTLP sender");
            report.otlp_sent += r.spans_sent;
            report.otlp_accepted_by_answer += r.spans_accepted;
            report.otlp_failed_requests += r.failed;
        }
        report.udp_sent = udp_sender.join().expect("UDP sender").0;
    });
    // What the receivers took and the export did by the end of the load.
    std::thread::sleep(Duration::from_secs(1));
    report.metrics = scrape(metrics);
    report.delivered = stub.received.spans.load(Relaxed);
    report.throttled = stub.received.throttled.load(Relaxed);
    let _ = server.stop(Duration::from_secs(20));
    report
}

fn print(reports: &[Report], s: &Soak) {
    println!();
    println!(
        "soak: {:?} per mode; OTLP {} spans/s (500-span requests, 2 connections), UDP {} datagrams/s; stub API takes {} calls/s, throttles the rest; spool budget {:.0} MiB; RSS bound {:.0} MiB",
        s.duration,
        s.otlp_spans_per_second,
        s.udp_per_second,
        s.api_calls_per_second,
        mb(s.spool_bytes),
        mb(s.rss_limit)
    );
    println!();
    println!(
        "| mode | RSS max | RSS avg | RSS last | spans sent (OTLP + UDP) | accepted | delivered | export drops by reason | receiver rejections | spool at the end | calls throttled |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|---|---|---:|");
    for r in reports {
        let by_reason = |prefix: &str| {
            let parts: Vec<String> = r
                .metrics
                .iter()
                .filter(|(k, v)| k.starts_with(prefix) && **v > 0.0)
                .map(|(k, v)| {
                    let reason = k.split('"').nth(1).unwrap_or("?");
                    format!("{reason} {v:.0}")
                })
                .collect();
            if parts.is_empty() {
                "none".to_owned()
            } else {
                parts.join(", ")
            }
        };
        println!(
            "| {} | {:.1} MB | {:.1} MB | {:.1} MB | {} + {} | {:.0} | {} | {} | {} | {} | {} |",
            r.mode,
            mb(r.max_rss),
            mb(r.sum_rss / r.samples.max(1)),
            mb(r.last_rss),
            r.otlp_sent,
            r.udp_sent,
            r.accepted(),
            r.delivered,
            by_reason("xray_bridge_export_dropped_spans_total{"),
            by_reason("xray_bridge_otlp_spans_rejected_total{"),
            if r.metrics.contains_key("xray_bridge_spool_bytes") {
                format!(
                    "{:.1} MB, {:.0} records",
                    r.metric("xray_bridge_spool_bytes") / 1048576.0,
                    r.metric("xray_bridge_spool_records")
                )
            } else {
                "-".to_owned()
            },
            r.throttled,
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench");
    let filter: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let settings = Soak::from_env(quick);
    let bin = xray_bridge_bin();
    println!("xray-bridge: {}", bin.display());
    let modes: Vec<(&'static str, bool)> = [("memory", false), ("spool", true)]
        .into_iter()
        .filter(|(name, _)| wanted(name))
        .collect();
    // Side by side: both modes see the same machine load.
    let reports: Vec<Report> = std::thread::scope(|scope| {
        let runs: Vec<_> = modes
            .iter()
            .map(|&(mode, spool)| {
                let bin = &bin;
                scope.spawn(move || soak(bin, mode, spool, settings))
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("soak run"))
            .collect()
    });
    print(&reports, &settings);
    for r in &reports {
        assert!(r.samples > 0, "{}: no RSS sample", r.mode);
        assert!(
            r.max_rss < settings.rss_limit,
            "{}: RSS reached {:.1} MB, over the {:.0} MB bound",
            r.mode,
            mb(r.max_rss),
            mb(settings.rss_limit)
        );
        assert!(r.delivered > 0, "{}: nothing delivered", r.mode);
        assert!(
            r.delivered as f64 <= r.accepted(),
            "{}: {} spans delivered but {} accepted",
            r.mode,
            r.delivered,
            r.accepted()
        );
    }
}
