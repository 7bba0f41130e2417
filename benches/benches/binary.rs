//! The xray-bridge binary under sustained load, side by side with rotel (PyPI `rotel`,
//! a Rust OpenTelemetry collector with an X-Ray exporter), on the same workload:
//!
//! - OTLP/HTTP protobuf ingest (keep-alive connections posting pre-encoded 500-span
//!   requests) exported to a file (`--export file:PATH`; rotel has no file exporter);
//! - the same ingest exported to a stub `PutTraceSegments` API on loopback (ours with
//!   `--export api --endpoint-url`, rotel with `--exporter aws-xray
//!   --xray-exporter-custom-endpoint`), counting what arrives at the stub;
//! - daemon-protocol UDP ingest (paced datagrams of real segment documents) to a file;
//! - the spool's cost (`spool_api`): ours against the stub API with the spool off, on
//!   with its default fsync (every 1000 ms) and on with an fsync after every record.
//! - the X-Ray daemon reference (`daemon_reference`): datagrams paced at the daemon's
//!   published 4,000 segments/s, exported to the stub API as the daemon does, reported as
//!   CPU % of one core and RSS beside the daemon's figures.
//!
//! Per run: spans/s sent, accepted and delivered (counted at the file or the stub), CPU
//! seconds of the server per 100k delivered spans (utime + stime from `/proc/PID/stat`),
//! idle RSS (before the load), peak RSS (`VmHWM`) and RSS after the load.
//!
//! Under `cargo bench`, when `taskset` (util-linux) is installed and two CPUs are allowed,
//! the bench pins itself (the load generator and the stub) to the first CPU and starts
//! every server under `taskset` on the second, so that the server is the bottleneck and
//! servers are compared on one core each; the output says whether it pinned
//! (`BINARY_BENCH_PIN=0` turns it off).
//!
//! `cargo bench -p xray-bridge-benches --bench binary` runs the full load (about two
//! minutes). Without `--bench` (`cargo test -p xray-bridge-benches --benches`, or
//! `cargo bench ... -- --test`) it runs a quick mode: a few small requests per run,
//! unpinned, asserting only that spans arrive, nothing about speed.
//!
//! The binary: `XRAY_BRIDGE_BIN`, else `xray-bridge` built first in `target/release` with
//! `cargo build --release -p xray-bridge` under `cargo bench` (the shipped binary, not the
//! cheaper `bench` profile the benches themselves use), or in `target/debug` under
//! `cargo test` (a no-op when it is fresh). rotel:
//! `ROTEL_BIN`, else the `rotel-agent` executable of the `rotel` Python package; when
//! neither is found the rotel column is skipped with a message.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use xray_bridge_benches::binary::load::{self, LoadResult};
use xray_bridge_benches::binary::pin::Pinning;
use xray_bridge_benches::binary::process::{
    Scratch, Server, Usage, free_port, free_udp_port, xray_bridge_bin,
};
use xray_bridge_benches::binary::workload::{self, OtlpBody};
use xray_testkit::counting_api::{self as stub, StubApi};

/// How hard and how long each run pushes.
#[derive(Debug, Clone, Copy)]
struct Load {
    duration: Duration,
    connections: usize,
    /// Requests per connection at most.
    max_requests: u64,
    bodies: usize,
    spans_per_request: usize,
    udp_per_second: u64,
    udp_max: u64,
    /// The rate of the X-Ray daemon reference run (its published 4,000 segments/s).
    daemon_per_second: u64,
    /// How long idle RSS is left to settle after the start.
    settle: Duration,
}

const FULL: Load = Load {
    duration: Duration::from_secs(10),
    connections: 4,
    max_requests: u64::MAX,
    bodies: 8,
    spans_per_request: 500,
    udp_per_second: 100_000,
    udp_max: u64::MAX,
    daemon_per_second: 4_000,
    settle: Duration::from_secs(1),
};

const QUICK: Load = Load {
    duration: Duration::from_secs(2),
    connections: 2,
    max_requests: 3,
    bodies: 2,
    spans_per_request: 100,
    udp_per_second: 5_000,
    udp_max: 500,
    daemon_per_second: 4_000,
    settle: Duration::from_millis(100),
};

const FAKE_AWS: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", "AKIDBENCHMARK"),
    ("AWS_SECRET_ACCESS_KEY", "bench-secret"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// One measured run.
#[derive(Debug, Default)]
struct Run {
    scenario: String,
    server: &'static str,
    sent: u64,
    accepted: u64,
    delivered: u64,
    load_secs: f64,
    /// From the start of the load to the last delivery.
    deliver_secs: f64,
    cpu_secs: f64,
    idle_rss: u64,
    peak_rss: u64,
    after_rss: u64,
    exit: Option<i32>,
}

impl Run {
    fn per_second(&self, n: u64, secs: f64) -> f64 {
        if secs > 0.0 { n as f64 / secs } else { 0.0 }
    }
    fn delivered_per_second(&self) -> f64 {
        self.per_second(self.delivered, self.deliver_secs)
    }
    /// The server's CPU time over the load's wall time, in % of one core.
    fn cpu_percent(&self) -> f64 {
        if self.load_secs > 0.0 {
            self.cpu_secs / self.load_secs * 100.0
        } else {
            f64::NAN
        }
    }
    fn cpu_per_100k(&self) -> f64 {
        if self.delivered == 0 {
            f64::NAN
        } else {
            self.cpu_secs / self.delivered as f64 * 100_000.0
        }
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// `ROTEL_BIN`, else `rotel-agent` from the `rotel` Python package (in the peers' virtual
/// environment that `cargo xtask test` makes).
fn rotel_bin() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ROTEL_BIN") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let out = Command::new(xray_testkit::python())
        .args([
            "-c",
            "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))",
        ])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    (out.status.success() && path.is_file()).then_some(path)
}

/// Where the harness and the servers run; set once in `main` before any thread starts.
static PINNING: OnceLock<Pinning> = OnceLock::new();

/// A command for a server under test: on its own CPU when the bench pinned the harness.
fn server_command(program: &Path) -> Command {
    match PINNING.get() {
        Some(pinning) => pinning.command(program),
        None => Command::new(program),
    }
}

/// Where a run's output goes.
enum Export<'a> {
    File(PathBuf),
    Api(&'a StubApi),
}

/// Our binary with `export`, a UDP listener when `udp` is set, and `extra` flags.
fn start_ours(
    bin: &Path,
    scratch: &Scratch,
    export: &Export<'_>,
    udp: Option<u16>,
    extra: &[String],
) -> (Server, u16, Option<u16>) {
    let mut ports = (0, None);
    let server = Server::start(
        "xray-bridge",
        &scratch.path("xray-bridge.log"),
        Duration::from_secs(30),
        || {
            let http = free_port();
            let udp_port = udp.map(|_| free_udp_port());
            ports = (http, udp_port);
            let mut cmd = server_command(bin);
            cmd.args(["--otlp-http", &format!("127.0.0.1:{http}")])
                .args(["--otlp-grpc", "off", "--tcp", "off", "--log-level", "warn"]);
            match udp_port {
                Some(p) => cmd.args(["--udp", &format!("127.0.0.1:{p}")]),
                None => cmd.args(["--udp", "off"]),
            };
            match export {
                Export::File(path) => {
                    cmd.arg("--export").arg(format!("file:{}", path.display()));
                }
                Export::Api(stub) => {
                    // No PutTelemetryRecords (on by default with the api export): rotel
                    // sends none, and the stub counts only PutTraceSegments.
                    cmd.args([
                        "--export",
                        "api",
                        "--region",
                        "us-east-1",
                        "--telemetry",
                        "off",
                    ])
                    .arg("--endpoint-url")
                    .arg(stub.url());
                }
            }
            cmd.args(extra);
            for (k, _) in std::env::vars() {
                if k.starts_with("XRAY_BRIDGE_") || k.starts_with("AWS_") || k == "RUST_LOG" {
                    cmd.env_remove(k);
                }
            }
            cmd.envs(FAKE_AWS);
            (cmd, http)
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (server, ports.0, ports.1)
}

fn start_rotel(bin: &Path, scratch: &Scratch, stub: &StubApi) -> (Server, u16) {
    let mut port = 0;
    let server = Server::start(
        "rotel",
        &scratch.path("rotel.out"),
        Duration::from_secs(30),
        || {
            let (http, grpc) = (free_port(), free_port());
            port = http;
            let mut cmd = server_command(bin);
            cmd.arg("start")
                .args(["--otlp-http-endpoint", &format!("127.0.0.1:{http}")])
                .args(["--otlp-grpc-endpoint", &format!("127.0.0.1:{grpc}")])
                .args([
                    "--exporter",
                    "aws-xray",
                    "--xray-exporter-region",
                    "us-east-1",
                ])
                .args(["--xray-exporter-custom-endpoint", &stub.url()])
                .arg("--pid-file")
                .arg(scratch.path("rotel.pid"))
                .arg("--log-file")
                .arg(scratch.path("rotel.log"));
            for (k, _) in std::env::vars() {
                if k.starts_with("ROTEL_") || k.starts_with("AWS_") {
                    cmd.env_remove(k);
                }
            }
            cmd.envs(FAKE_AWS);
            (cmd, http)
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (server, port)
}

/// Spans in a JSON-lines file of documents: each line's segment or subsegment plus its
/// nested subsegments (read line by line, after the run).
fn count_spans(path: &Path) -> u64 {
    use std::io::BufRead;
    let Ok(f) = std::fs::File::open(path) else {
        return 0;
    };
    std::io::BufReader::with_capacity(1 << 20, f)
        .lines()
        .map_while(Result::ok)
        .filter(|l| !l.is_empty())
        .map(|l| stub::spans_in(&l))
        .sum()
}

/// Waits until deliveries stop (nothing new for `quiet`) or `expected` arrived, and
/// returns the instant of the last observed progress.
fn wait_delivered(mut progress: impl FnMut() -> u64, expected: u64, quiet: Duration) -> Instant {
    let mut last = progress();
    let mut last_at = Instant::now();
    let hard = Instant::now() + Duration::from_secs(60);
    while last < expected && last_at.elapsed() < quiet && Instant::now() < hard {
        std::thread::sleep(Duration::from_millis(20));
        let now = progress();
        if now != last {
            last = now;
            last_at = Instant::now();
        }
    }
    last_at
}

fn idle(server: &Server, settle: Duration) -> Usage {
    std::thread::sleep(settle);
    server.usage()
}

/// OTLP/HTTP load against a started server; fills the measurements of `run`.
#[allow(clippy::too_many_arguments)]
fn otlp_run(
    run: &mut Run,
    server: &Server,
    port: u16,
    bodies: &[OtlpBody],
    load: &Load,
    mut delivered: impl FnMut() -> u64,
    delivered_at: impl Fn() -> Option<Instant>,
    counts_spans: bool,
) {
    let before = idle(server, load.settle);
    run.idle_rss = before.rss;
    let start = Instant::now();
    let result: LoadResult = load::otlp_http(
        port,
        bodies,
        load.connections,
        load.duration,
        load.max_requests,
    );
    run.sent = result.spans_sent;
    run.accepted = result.spans_accepted;
    run.load_secs = result.elapsed.as_secs_f64();
    // A file's size is no span count: there, wait until it stops growing.
    let expected = if counts_spans {
        result.spans_accepted
    } else {
        u64::MAX
    };
    let progress_at = wait_delivered(&mut delivered, expected, Duration::from_secs(2));
    run.delivered = delivered();
    let last = delivered_at().unwrap_or(progress_at);
    run.deliver_secs = last
        .saturating_duration_since(start)
        .as_secs_f64()
        .max(run.load_secs.min(1e-3));
    let after = server.usage();
    run.cpu_secs = after.cpu_seconds - before.cpu_seconds;
    run.peak_rss = after.peak_rss;
    run.after_rss = after.rss;
    if result.failed > 0 {
        eprintln!(
            "{} / {}: {} request(s) failed",
            run.scenario, run.server, result.failed
        );
    }
}

fn ours_otlp_file(bin: &Path, bodies: &[OtlpBody], load: &Load, scenario: String) -> Run {
    let scratch = Scratch::new("otlp-file");
    let out = scratch.path("out.jsonl");
    let (server, port, _) = start_ours(bin, &scratch, &Export::File(out.clone()), None, &[]);
    let mut run = Run {
        scenario,
        server: "xray-bridge",
        ..Default::default()
    };
    // The file only grows: its size is the cheap progress signal, spans are counted once
    // at the end (the file transport flushes after every batch).
    let last_change: Cell<(u64, Option<Instant>)> = Cell::new((0, None));
    let size = || {
        let s = std::fs::metadata(&out).map_or(0, |m| m.len());
        if s != last_change.get().0 {
            last_change.set((s, Some(Instant::now())));
        }
        s
    };
    otlp_run(
        &mut run,
        &server,
        port,
        bodies,
        load,
        size,
        || last_change.get().1,
        false,
    );
    run.delivered = count_spans(&out);
    run.exit = server.stop(Duration::from_secs(30));
    run
}

fn ours_otlp_api(bin: &Path, bodies: &[OtlpBody], load: &Load, scenario: String) -> Run {
    ours_otlp_api_with(bin, bodies, load, scenario, None)
}

/// Our binary against the stub API, with a disk spool when `spool_fsync` is set (`--spool`
/// in the run's scratch folder, `--spool-fsync` that value): every accepted document is
/// written there and removed once delivered.
fn ours_otlp_api_with(
    bin: &Path,
    bodies: &[OtlpBody],
    load: &Load,
    scenario: String,
    spool_fsync: Option<&str>,
) -> Run {
    otlp_api_run("xray-bridge", bodies, load, scenario, |scratch, stub| {
        let extra: Vec<String> = match spool_fsync {
            Some(fsync) => vec![
                "--spool".into(),
                scratch.path("spool").display().to_string(),
                "--spool-fsync".into(),
                fsync.into(),
            ],
            None => Vec::new(),
        };
        let (server, port, _) = start_ours(bin, scratch, &Export::Api(stub), None, &extra);
        (server, port)
    })
}

fn rotel_otlp_api(bin: &Path, bodies: &[OtlpBody], load: &Load, scenario: String) -> Run {
    otlp_api_run("rotel", bodies, load, scenario, |scratch, stub| {
        start_rotel(bin, scratch, stub)
    })
}

/// One server, started by `start`, under the OTLP load, exporting to a fresh stub API.
fn otlp_api_run(
    name: &'static str,
    bodies: &[OtlpBody],
    load: &Load,
    scenario: String,
    start: impl FnOnce(&Scratch, &StubApi) -> (Server, u16),
) -> Run {
    let scratch = Scratch::new(&format!("{name}-api"));
    let stub = StubApi::start().expect("stub API");
    let (server, port) = start(&scratch, &stub);
    let mut run = Run {
        scenario,
        server: name,
        ..Default::default()
    };
    let received = stub.received.clone();
    otlp_run(
        &mut run,
        &server,
        port,
        bodies,
        load,
        || received.spans.load(Relaxed),
        || *received.last_at.lock().unwrap(),
        true,
    );
    run.exit = server.stop(Duration::from_secs(30));
    check_stub(&stub, &run);
    run
}

fn check_stub(stub: &StubApi, run: &Run) {
    let r = &stub.received;
    println!(
        "{} / {}: the stub received {} call(s), {} document(s), {} span(s)",
        run.scenario,
        run.server,
        r.calls.load(Relaxed),
        r.documents.load(Relaxed),
        r.spans.load(Relaxed)
    );
    if std::env::var_os("BENCH_SHOW_DOCUMENT").is_some() {
        println!("first document: {:?}", r.first.lock().unwrap());
    }
    let bad = stub.received.bad.load(Relaxed);
    if bad > 0 {
        eprintln!(
            "{} / {}: the stub could not read {bad} request(s)",
            run.scenario, run.server
        );
    }
    if let Some(first) = stub.received.first.lock().unwrap().as_deref() {
        let doc: serde_json::Value = serde_json::from_str(first)
            .unwrap_or_else(|e| panic!("{}: not a JSON document ({e}): {first}", run.server));
        assert!(
            doc["trace_id"].is_string(),
            "{}: no trace_id in {first}",
            run.server
        );
    }
}

/// Paced daemon datagrams at `per_second` into our UDP listener, exported to a file or,
/// as the X-Ray daemon does, to the (stub) `PutTraceSegments` API.
fn ours_udp(
    bin: &Path,
    datagrams: &[Vec<u8>],
    per_second: u64,
    load: &Load,
    scenario: String,
    to_api: bool,
) -> Run {
    let scratch = Scratch::new(if to_api { "udp-api" } else { "udp-file" });
    let out = scratch.path("out.jsonl");
    let stub = to_api.then(|| StubApi::start().expect("stub API"));
    let export = match &stub {
        Some(stub) => Export::Api(stub),
        None => Export::File(out.clone()),
    };
    let (server, _, udp) = start_ours(bin, &scratch, &export, Some(0), &[]);
    let udp = udp.expect("udp port");
    let mut run = Run {
        scenario,
        server: "xray-bridge",
        ..Default::default()
    };
    let before = idle(&server, load.settle);
    run.idle_rss = before.rss;
    let start = Instant::now();
    let (sent, elapsed) = load::udp_paced(udp, datagrams, per_second, load.duration, load.udp_max);
    run.sent = sent;
    run.load_secs = elapsed.as_secs_f64();
    let last = match &stub {
        Some(stub) => {
            let spans = || stub.received.spans.load(Relaxed);
            wait_delivered(spans, sent, Duration::from_secs(2));
            stub.received.last_at.lock().unwrap().unwrap_or(start)
        }
        None => {
            let size = || std::fs::metadata(&out).map_or(0, |m| m.len());
            wait_delivered(size, u64::MAX, Duration::from_secs(1))
        }
    };
    let after = server.usage();
    run.delivered = match &stub {
        Some(stub) => stub.received.spans.load(Relaxed),
        None => count_spans(&out),
    };
    // Datagrams the server read are not reported back; what arrived is what counts.
    run.accepted = run.delivered;
    run.deliver_secs = last
        .saturating_duration_since(start)
        .as_secs_f64()
        .max(run.load_secs);
    run.cpu_secs = after.cpu_seconds - before.cpu_seconds;
    run.peak_rss = after.peak_rss;
    run.after_rss = after.rss;
    run.exit = server.stop(Duration::from_secs(30));
    if let Some(stub) = &stub {
        check_stub(stub, &run);
    }
    run
}

/// The X-Ray daemon's published figures (its README, "Performance"), beside ours at the
/// same rate.
fn print_daemon_reference(run: &Run) {
    println!();
    println!(
        "| X-Ray daemon reference | segments/s | CPU | idle RSS | RSS under load (peak) | machine |"
    );
    println!("|---|---:|---:|---:|---:|---|");
    println!(
        "| X-Ray daemon (published) | 4,000 | 38 % of a t2.micro | 17 MB | 29.5 MB | t2.micro (1 vCPU) |"
    );
    println!(
        "| xray-bridge, {} | {:.0} sent/s for {:.1} s, {} of {} delivered | **{:.1} %** of one core | {:.1} MB | **{:.1} MB** | this machine |",
        run.scenario,
        run.per_second(run.sent, run.load_secs),
        run.load_secs,
        run.delivered,
        run.sent,
        run.cpu_percent(),
        mb(run.idle_rss),
        mb(run.peak_rss),
    );
}

fn print(runs: &[Run], load: &Load) {
    println!();
    println!(
        "OTLP load: {} connections, {}-span requests, {:?} per run; UDP: {} datagrams/s paced, {:?}",
        load.connections, load.spans_per_request, load.duration, load.udp_per_second, load.duration
    );
    println!();
    println!(
        "| scenario | server | sent spans/s | accepted spans/s | delivered spans/s | delivered / accepted | server CPU | CPU s per 100k spans | idle RSS | peak RSS | RSS after | exit |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in runs {
        println!(
            "| {} | {} | {:.0} | {:.0} | **{:.0}** | {:.3} | {:.0} % | {} | {:.1} MB | {:.1} MB | {:.1} MB | {} |",
            r.scenario,
            r.server,
            r.per_second(r.sent, r.load_secs),
            r.per_second(r.accepted, r.load_secs),
            r.delivered_per_second(),
            if r.accepted > 0 {
                r.delivered as f64 / r.accepted as f64
            } else {
                0.0
            },
            r.cpu_percent(),
            match r.cpu_per_100k() {
                cpu if cpu.is_finite() => format!("{cpu:.2}"),
                _ => "n/a".to_owned(),
            },
            mb(r.idle_rss),
            mb(r.peak_rss),
            mb(r.after_rss),
            r.exit.map_or("-".to_owned(), |c| c.to_string()),
        );
    }
    println!();
    println!(
        "server CPU: its utime + stime over the load's duration, in % of one core (pinned to one core, near 100 % means the server set the rate; well below, something else did)"
    );
    print_spool_cost(runs);
    let scenarios: Vec<&String> = runs
        .iter()
        .filter(|r| r.server == "rotel")
        .map(|r| &r.scenario)
        .collect();
    let find = |scenario: &str, server: &str| {
        runs.iter()
            .find(|r| r.scenario == scenario && r.server == server)
    };
    let mut header = false;
    for scenario in scenarios {
        let (Some(ours), Some(theirs)) = (find(scenario, "xray-bridge"), find(scenario, "rotel"))
        else {
            continue;
        };
        if !header {
            println!();
            println!(
                "| xray-bridge vs rotel | delivered spans/s (ours / rotel) | CPU per span (rotel / ours) | peak RSS (ours / rotel) | idle RSS (ours / rotel) |"
            );
            println!("|---|---:|---:|---:|---:|");
            header = true;
        }
        // A side that delivered nothing has no throughput ratio and no CPU per span.
        let ratio = |a: f64, b: f64| {
            if a.is_finite() && b.is_finite() && a > 0.0 && b > 0.0 {
                format!("**{:.2}x**", a / b)
            } else {
                "n/a (nothing delivered)".to_owned()
            }
        };
        println!(
            "| {scenario} | {} | {} | **{:.2}x** | **{:.2}x** |",
            ratio(ours.delivered_per_second(), theirs.delivered_per_second()),
            ratio(theirs.cpu_per_100k(), ours.cpu_per_100k()),
            ours.peak_rss as f64 / theirs.peak_rss as f64,
            ours.idle_rss as f64 / theirs.idle_rss as f64,
        );
    }
}

/// The `spool_api` runs side by side: each against the run without a spool.
fn print_spool_cost(runs: &[Run]) {
    let spool: Vec<&Run> = runs
        .iter()
        .filter(|r| r.scenario.contains(", spool"))
        .collect();
    let Some(off) = spool.iter().find(|r| r.scenario.ends_with("spool off")) else {
        return;
    };
    println!();
    println!(
        "| spool | delivered spans/s | delivered spans/s vs spool off | CPU per span vs spool off |"
    );
    println!("|---|---:|---:|---:|");
    for r in &spool {
        let label = r.scenario.rsplit(", ").next().unwrap_or_default();
        println!(
            "| {label} | {:.0} | **{:.2}x** | {:.2}x |",
            r.delivered_per_second(),
            r.delivered_per_second() / off.delivered_per_second(),
            r.cpu_per_100k() / off.cpu_per_100k(),
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // cargo bench passes --bench; cargo test runs bench targets without it.
    let quick = args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench");
    let filter: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let mut load = if quick { QUICK } else { FULL };
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = env("BINARY_BENCH_SPANS") {
        load.spans_per_request = n as usize;
    }
    if let Some(n) = env("BINARY_BENCH_SECS") {
        load.duration = Duration::from_secs(n);
    }
    if let Some(n) = env("BINARY_BENCH_CONNECTIONS") {
        load.connections = n as usize;
    }
    if let Some(n) = env("BINARY_BENCH_UDP_RATE") {
        load.udp_per_second = n;
    }
    if let Some(n) = env("BINARY_BENCH_DAEMON_RATE") {
        load.daemon_per_second = n;
    }
    let bin = xray_bridge_bin();
    println!("xray-bridge: {}", bin.display());
    let rotel = rotel_bin();
    match &rotel {
        Some(path) => println!("rotel: {}", path.display()),
        None => println!(
            "rotel not found (`cargo xtask peers` installs it, or set ROTEL_BIN): the rotel column is skipped"
        ),
    }
    // Pinned after the build above (which uses every CPU) and before any load.
    let pinning = if quick {
        Pinning::Unpinned("quick mode".to_owned())
    } else if env("BINARY_BENCH_PIN") == Some(0) {
        Pinning::Unpinned("BINARY_BENCH_PIN=0".to_owned())
    } else {
        Pinning::harness_and_server()
    };
    println!("{}", pinning.describe());
    PINNING.set(pinning).expect("pinning is set once");
    let bodies = workload::otlp_bodies(load.bodies, load.spans_per_request);
    // rotel's X-Ray exporter sends at most 50 documents per call and drops what a
    // request splits into beyond its limit (it logs "Too many batch items split"), so
    // the like-for-like comparison uses 50-span requests; the large-request rows show
    // what each side does with them.
    let small = workload::otlp_bodies(load.bodies, 50);
    let datagrams = workload::daemon_datagrams(500);
    println!(
        "request body: {} bytes for {} spans; datagram: {} bytes on average",
        bodies[0].bytes.len(),
        bodies[0].spans,
        datagrams.iter().map(Vec::len).sum::<usize>() / datagrams.len()
    );
    let big = load.spans_per_request;

    let mut runs = Vec::new();
    if wanted("otlp_file") {
        runs.push(ours_otlp_file(
            &bin,
            &bodies,
            &load,
            format!("OTLP/HTTP {big}-span requests -> file"),
        ));
    }
    if wanted("otlp_api") {
        let scenario = format!("OTLP/HTTP {big}-span requests -> stub API");
        runs.push(ours_otlp_api(&bin, &bodies, &load, scenario.clone()));
        if let Some(rotel) = &rotel {
            runs.push(rotel_otlp_api(rotel, &bodies, &load, scenario));
        }
    }
    if wanted("otlp_small_api") {
        let scenario = "OTLP/HTTP 50-span requests -> stub API".to_owned();
        runs.push(ours_otlp_api(&bin, &small, &load, scenario.clone()));
        if let Some(rotel) = &rotel {
            runs.push(rotel_otlp_api(rotel, &small, &load, scenario));
        }
    }
    if wanted("spool_api") {
        // The spool's cost: the same load and stub, spool off, on with the default fsync
        // (every 1000 ms) and on with an fsync after every record.
        for (label, fsync) in [
            ("spool off", None),
            ("spool, fsync every 1000 ms", Some("1000ms")),
            ("spool, fsync always", Some("always")),
        ] {
            let scenario = format!("OTLP/HTTP {big}-span requests -> stub API, {label}");
            runs.push(ours_otlp_api_with(&bin, &bodies, &load, scenario, fsync));
        }
    }
    if wanted("udp_file") {
        let scenario = format!("daemon UDP at {}/s -> file", load.udp_per_second);
        let rate = load.udp_per_second;
        runs.push(ours_udp(&bin, &datagrams, rate, &load, scenario, false));
    }
    if wanted("daemon_reference") {
        let rate = load.daemon_per_second;
        let scenario = format!("daemon UDP at {rate}/s -> stub API");
        runs.push(ours_udp(&bin, &datagrams, rate, &load, scenario, true));
    }
    print(&runs, &load);
    if let Some(run) = runs
        .iter()
        .find(|r| r.scenario == format!("daemon UDP at {}/s -> stub API", load.daemon_per_second))
    {
        print_daemon_reference(run);
    }

    if quick {
        for r in &runs {
            assert!(
                r.delivered > 0,
                "{} / {}: nothing arrived",
                r.scenario,
                r.server
            );
            if r.server == "xray-bridge" {
                assert_eq!(
                    r.exit,
                    Some(0),
                    "{} / xray-bridge did not exit cleanly",
                    r.scenario
                );
                if r.scenario.starts_with("OTLP") {
                    assert_eq!(
                        r.delivered, r.accepted,
                        "{}: accepted spans went missing",
                        r.scenario
                    );
                } else {
                    assert_eq!(
                        r.delivered, r.sent,
                        "{}: datagrams went missing",
                        r.scenario
                    );
                }
            }
        }
        println!(
            "quick mode: every run delivered spans (nothing about speed is checked; with a tiny load, and a debug binary under cargo test, these numbers are no measurement)"
        );
    }
}
