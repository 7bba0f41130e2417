//! Fault tests with real processes on loopback: the `xray-bridge` binary against a stub
//! PutTraceSegments that goes down, throttles or comes back, killed with SIGKILL and
//! restarted on its spool, with a spool too small, unusable or damaged.
//!
//! The outage-and-crash test takes about 80 s and the throttling test about 45 s; they
//! run in parallel.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::{Bridge, Options, Scratch, otlp_request};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use xray_testkit::stub::{Reply, Stub};

const UP: u8 = 0;
const UNAVAILABLE: u8 = 1;
const THROTTLED: u8 = 2;

/// A PutTraceSegments stub: counts every document id it accepts.
struct Api {
    url: String,
    mode: Arc<AtomicU8>,
    arrived: Arc<Mutex<HashMap<String, u32>>>,
    _stub: Stub,
}

impl Api {
    fn start() -> Api {
        let mode = Arc::new(AtomicU8::new(UP));
        let arrived: Arc<Mutex<HashMap<String, u32>>> = Default::default();
        let (m, a) = (mode.clone(), arrived.clone());
        let stub = Stub::start(move |_, request| match m.load(Ordering::SeqCst) {
            UNAVAILABLE => Reply::json(503, r#"{"__type":"ServiceUnavailableException"}"#),
            THROTTLED => Reply::json(
                429,
                r#"{"__type":"ThrottledException","message":"Rate exceeded"}"#,
            ),
            _ => {
                // PutTelemetryRecords (on by default with --export api) is answered, not
                // counted.
                let Some(docs) = request.trace_segment_documents() else {
                    return Reply::json(200, "{}");
                };
                let mut a = a.lock().unwrap();
                for doc in docs {
                    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
                    *a.entry(doc["id"].as_str().unwrap().to_owned()).or_default() += 1;
                }
                Reply::json(200, r#"{"UnprocessedTraceSegments":[]}"#)
            }
        });
        Api {
            url: stub.url(),
            mode,
            arrived,
            _stub: stub,
        }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    fn arrived(&self) -> HashMap<String, u32> {
        self.arrived.lock().unwrap().clone()
    }
}

fn options<'a>(api: &Api, extra: Vec<&'a str>) -> Options<'a> {
    let mut args = vec!["--region", "us-east-1", "--endpoint-url"];
    args.push(Box::leak(api.url.clone().into_boxed_str()));
    args.extend(extra);
    Options {
        args,
        env: vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ],
        ..Options::export("api")
    }
}

fn id(n: u64) -> String {
    format!("{n:016x}")
}

fn trace_id(n: u64) -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!("1-{secs:08x}-{:024x}", n)
}

/// One daemon datagram carrying document `n`.
fn datagram(n: u64) -> Vec<u8> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    format!(
        "{{\"format\":\"json\",\"version\":1}}\n{{\"name\":\"udp-sender\",\"id\":\"{}\",\"trace_id\":\"{}\",\"start_time\":{now},\"end_time\":{}}}",
        id(n),
        trace_id(n),
        now + 0.01
    )
    .into_bytes()
}

/// One OTLP/HTTP body with spans `first..first + n`, each a root server span (one
/// document each, its id the span id).
fn otlp_body(first: u64, n: u64) -> Vec<u8> {
    let spans = (first..first + n)
        .map(|i| Span {
            trace_id: (u128::from(i) | (0x5f00_0000u128 << 96))
                .to_be_bytes()
                .to_vec(),
            span_id: i.to_be_bytes().to_vec(),
            name: format!("GET /orders/{i}"),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000 + i,
            end_time_unix_nano: 1_700_000_000_100_000_000 + i,
            ..Default::default()
        })
        .collect();
    otlp_request("faults", spans).encode_to_vec()
}

/// Where the sender sends: the current bridge's ports (`None` while it is down).
type Target = Arc<Mutex<Option<(u16, u16)>>>;

/// What the steady sender saw.
#[derive(Default)]
struct Sent {
    /// Span ids the bridge answered 200 for (OTLP).
    otlp_accepted: HashSet<String>,
    /// OTLP spans refused or lost with the connection (never accepted).
    otlp_failed: u64,
    /// Datagram ids and when they were sent.
    udp: Vec<(String, Instant)>,
}

/// Every 100 ms: one OTLP request of 4 spans and 2 daemon datagrams, until `stop`.
fn steady_sender(
    target: Target,
    stop: Arc<AtomicBool>,
    udp: bool,
) -> std::thread::JoinHandle<Sent> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _runtime = rt.enter();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let next = AtomicU64::new(1);
        let mut sent = Sent::default();
        while !stop.load(Ordering::SeqCst) {
            let Some((http, udp_port)) = *target.lock().unwrap() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            let first = next.fetch_add(4, Ordering::SeqCst);
            let response = rt.block_on(
                client
                    .post(format!("http://127.0.0.1:{http}/v1/traces"))
                    .header("content-type", "application/x-protobuf")
                    .body(otlp_body(first, 4))
                    .send(),
            );
            match response {
                Ok(r) if r.status() == 200 => {
                    let body = rt.block_on(r.bytes()).unwrap_or_default();
                    // No partial success: every span of the request was accepted.
                    let decoded = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::decode(body.as_ref()).unwrap_or_default();
                    assert!(
                        decoded
                            .partial_success
                            .as_ref()
                            .is_none_or(|p| p.rejected_spans == 0),
                        "{decoded:?}"
                    );
                    sent.otlp_accepted.extend((first..first + 4).map(id));
                }
                _ => sent.otlp_failed += 4,
            }
            if udp {
                for _ in 0..2 {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if socket
                        .send_to(&datagram(n), ("127.0.0.1", udp_port))
                        .is_ok()
                    {
                        sent.udp.push((id(n), Instant::now()));
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        sent
    })
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn seg_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "seg"));
    files.sort();
    files
}

fn metric(text: &str, sample: &str) -> u64 {
    Bridge::metric(text, sample)
}

#[test]
fn a_minute_outage_with_a_sigkill_in_it_loses_nothing_accepted() {
    let api = Api::start();
    let scratch = Scratch::new("crash");
    let spool = scratch.path("spool");
    let spool_arg: &str = Box::leak(spool.display().to_string().into_boxed_str());
    let args = vec![
        "--spool",
        spool_arg,
        "--retry-max-elapsed",
        "5",
        "--log-level",
        "info",
    ];
    let mut bridge = Bridge::start(options(&api, args.clone()));
    let target: Target = Arc::new(Mutex::new(Some((bridge.http, bridge.udp))));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = steady_sender(target.clone(), stop.clone(), true);
    let start = Instant::now();
    let kill_at = Duration::from_millis(6_000 + fastrand_ms(14_000));
    let (down_at, up_at, end_at) = (
        Duration::from_secs(2),
        Duration::from_secs(62),
        Duration::from_secs(66),
    );
    let mut max_rss = 0;
    let mut killed_at = None;
    let mut restarted_at = None;
    let mut degraded_seen = false;
    let mut state = 0;
    while start.elapsed() < end_at {
        let t = start.elapsed();
        if state == 0 && t >= down_at {
            api.set(UNAVAILABLE);
            state = 1;
        }
        if state == 1 && t >= kill_at {
            let kill_time = Instant::now();
            bridge.kill();
            *target.lock().unwrap() = None;
            eprintln!("SIGKILL at {:?} into the run", t);
            killed_at = Some(kill_time);
            bridge = Bridge::start(options(&api, args.clone()));
            *target.lock().unwrap() = Some((bridge.http, bridge.udp));
            restarted_at = Some(Instant::now());
            state = 2;
        }
        if state == 2 && t >= Duration::from_secs(25) && !degraded_seen {
            // After the restart the spool replays what the first run left.
            let (status, body) = bridge.get("/healthz");
            assert_eq!(status, 200);
            assert!(body.starts_with("degraded: api: spool replaying"), "{body}");
            degraded_seen = true;
        }
        if state == 2 && t >= up_at {
            api.set(UP);
            state = 3;
        }
        if let Some(rss) = xray_testkit::proc_status_kib(bridge.pid(), "VmRSS") {
            max_rss = max_rss.max(rss);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    stop.store(true, Ordering::SeqCst);
    let sent = sender.join().unwrap();
    let (killed_at, restarted_at) = (killed_at.unwrap(), restarted_at.unwrap());
    // A datagram is accepted once the bridge read it, which the sender cannot see:
    // those sent in the last second before the kill may still have been in the socket
    // buffer, and those sent while no bridge listened went nowhere.
    let uncertain = |at: Instant| at + Duration::from_secs(1) > killed_at && at < restarted_at;
    let udp_accepted: HashSet<String> = sent
        .udp
        .iter()
        .filter(|(_, at)| !uncertain(*at))
        .map(|(id, _)| id.clone())
        .collect();
    let udp_uncertain = sent.udp.len() - udp_accepted.len();
    let mut want: HashSet<String> = sent.otlp_accepted.clone();
    want.extend(udp_accepted.iter().cloned());
    wait_until(
        "every accepted span at the API",
        Duration::from_secs(90),
        || {
            let arrived = api.arrived();
            want.iter().all(|id| arrived.contains_key(id))
        },
    );
    let arrived = api.arrived();
    let duplicates: u64 = arrived.values().map(|n| u64::from(n - 1)).sum();
    let text = bridge.metrics_text();
    eprintln!(
        "outage+crash: {} OTLP spans accepted ({} refused while down), {} datagrams accepted ({} uncertain at the kill), {} arrived, {} duplicates, replayed {}, max RSS {} MiB",
        sent.otlp_accepted.len(),
        sent.otlp_failed,
        udp_accepted.len(),
        udp_uncertain,
        arrived.len(),
        duplicates,
        metric(&text, "xray_bridge_spool_replayed_total{export=\"api\"}"),
        max_rss / 1024
    );
    let missing: Vec<&String> = want
        .iter()
        .filter(|id| !arrived.contains_key(*id))
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert!(sent.otlp_accepted.len() > 1500, "a steady sender");
    // Only the batch in flight at the kill can arrive twice: one batch, at most 50
    // documents per call times the calls in flight (`--concurrency`, default 8).
    assert!(duplicates <= 50 * 8, "{duplicates} duplicates");
    // The memory queue (16 MiB), the spool read-ahead (a segment, at most 8 MiB) and the
    // rest of a debug build.
    assert!(max_rss < 128 * 1024, "RSS {max_rss} KiB");
    assert!(metric(&text, "xray_bridge_spool_replayed_total{export=\"api\"}") > 0);
    wait_until("the spool to drain", Duration::from_secs(10), || {
        let (_, body) = bridge.get("/healthz");
        body == "ok\n"
    });
    let text = bridge.metrics_text();
    assert_eq!(
        metric(&text, "xray_bridge_spool_records{export=\"api\"}"),
        0
    );
    assert_eq!(bridge.stop(Duration::from_secs(15)), 0, "{}", bridge.logs());
}

fn fastrand_ms(max: u64) -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        % max
}

#[test]
fn thirty_seconds_of_throttling_lose_nothing() {
    let api = Api::start();
    let mut bridge = Bridge::start(options(&api, vec!["--log-level", "info"]));
    let target: Target = Arc::new(Mutex::new(Some((bridge.http, bridge.udp))));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = steady_sender(target, stop.clone(), true);
    std::thread::sleep(Duration::from_secs(2));
    api.set(THROTTLED);
    std::thread::sleep(Duration::from_secs(30));
    api.set(UP);
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::SeqCst);
    let sent = sender.join().unwrap();
    let mut want = sent.otlp_accepted.clone();
    want.extend(sent.udp.iter().map(|(id, _)| id.clone()));
    wait_until("every span at the API", Duration::from_secs(60), || {
        let arrived = api.arrived();
        want.iter().all(|id| arrived.contains_key(id))
    });
    let text = bridge.metrics_text();
    let errors = metric(
        &text,
        "xray_bridge_export_send_errors_total{export=\"api\"}",
    );
    eprintln!(
        "throttling: {} spans, {} send errors, {} retries",
        want.len(),
        errors,
        metric(&text, "xray_bridge_export_retries_total{export=\"api\"}")
    );
    assert!(errors >= 10, "throttled for 30 s: {errors}");
    assert_eq!(sent.otlp_failed, 0);
    assert!(api.arrived().values().all(|n| *n == 1), "no duplicates");
    assert_eq!(bridge.stop(Duration::from_secs(15)), 0, "{}", bridge.logs());
}

#[test]
fn a_tiny_spool_budget_drops_the_oldest_counted_and_never_grows() {
    let api = Api::start();
    api.set(UNAVAILABLE);
    let scratch = Scratch::new("tiny");
    let spool = scratch.path("spool");
    let spool_arg: &str = Box::leak(spool.display().to_string().into_boxed_str());
    let mut bridge = Bridge::start(options(
        &api,
        vec![
            "--spool",
            spool_arg,
            "--spool-max-bytes",
            "65536",
            "--retry-max-elapsed",
            "1",
        ],
    ));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dir = spool.join("documents");
    for n in 1..=1500u64 {
        socket
            .send_to(&datagram(n), ("127.0.0.1", bridge.udp))
            .unwrap();
        if n % 100 == 0 {
            std::thread::sleep(Duration::from_millis(20));
            let on_disk: u64 = seg_files(&dir)
                .iter()
                .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
                .sum();
            assert!(on_disk <= 65536, "{on_disk} bytes on disk");
        }
    }
    let text = bridge.wait_metrics(Duration::from_secs(10), |t| {
        metric(t, "xray_bridge_udp_datagrams_received_total") >= 1500
    });
    let full = metric(
        &text,
        "xray_bridge_export_dropped_total{export=\"api\",reason=\"spool_full\"}",
    );
    assert!(full > 500, "{full}\n{text}");
    assert!(metric(&text, "xray_bridge_spool_bytes{export=\"api\"}") <= 65536);
    let logs = bridge.logs();
    assert!(
        logs.contains("spool over its budget") && logs.contains("spool_full"),
        "{logs}"
    );
    // Drops were counted: the exit code says data was lost.
    assert_eq!(bridge.stop(Duration::from_secs(15)), 3);
}

/// Spooled items are not in the memory queue; the spool's own fill slows OTLP clients
/// down instead: past a quarter of its budget a request waits for room (up to 5 s), as
/// with the memory queue, so a spool filling faster than it drains does not drop its
/// oldest records while the clients could have waited.
#[test]
fn a_filling_spool_slows_otlp_clients_down_instead_of_dropping() {
    let api = Api::start();
    api.set(UNAVAILABLE);
    let scratch = Scratch::new("spool-backpressure");
    let spool = scratch.path("spool");
    let spool_arg: &str = Box::leak(spool.display().to_string().into_boxed_str());
    let mut bridge = Bridge::start(options(
        &api,
        vec!["--spool", spool_arg, "--spool-max-bytes", "400000"],
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let mut took = Vec::new();
    for r in 0..6u64 {
        let started = Instant::now();
        let response = rt.block_on(
            client
                .post(format!("http://127.0.0.1:{}/v1/traces", bridge.http))
                .header("content-type", "application/x-protobuf")
                .body(otlp_body(1 + r * 100, 100))
                .send(),
        );
        assert_eq!(response.unwrap().status(), 200);
        took.push(started.elapsed());
    }
    let text = bridge.metrics_text();
    let on_disk = metric(&text, "xray_bridge_spool_bytes{export=\"api\"}");
    assert!(took[0] < Duration::from_secs(2), "{took:?}");
    assert!(
        took.iter().any(|t| *t >= Duration::from_secs(4)),
        "no request waited with {on_disk} spooled bytes: {took:?}"
    );
    assert!(on_disk > 100_000, "{on_disk}");
    api.set(UP);
    wait_until("600 spans", Duration::from_secs(30), || {
        api.arrived().len() == 600
    });
    let text = bridge.metrics_text();
    assert_eq!(
        metric(
            &text,
            "xray_bridge_export_dropped_total{export=\"api\",reason=\"spool_full\"}"
        ),
        0,
        "{text}"
    );
    assert_eq!(bridge.stop(Duration::from_secs(15)), 0, "{}", bridge.logs());
}

#[test]
fn an_unusable_spool_directory_falls_back_to_memory_and_says_so() {
    let api = Api::start();
    let scratch = Scratch::new("unusable");
    let file = scratch.path("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let spool_arg: &str = Box::leak(file.join("spool").display().to_string().into_boxed_str());
    let mut bridge = Bridge::start(options(&api, vec!["--spool", spool_arg]));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for n in 1..=20u64 {
        socket
            .send_to(&datagram(n), ("127.0.0.1", bridge.udp))
            .unwrap();
    }
    wait_until("20 documents", Duration::from_secs(20), || {
        api.arrived().len() == 20
    });
    let text = bridge.metrics_text();
    assert_eq!(
        metric(&text, "xray_bridge_spool_unwritable{export=\"api\"}"),
        1
    );
    let (status, body) = bridge.get("/healthz");
    assert_eq!(status, 200);
    assert!(body.contains("spool unwritable, memory only"), "{body}");
    let logs = bridge.logs();
    assert_eq!(logs.matches("cannot use the spool").count(), 1, "{logs}");
    assert_eq!(bridge.stop(Duration::from_secs(15)), 0);
}

#[test]
fn a_damaged_spool_still_delivers_the_good_records_around_the_damage() {
    let api = Api::start();
    api.set(UNAVAILABLE);
    let scratch = Scratch::new("damaged");
    let spool = scratch.path("spool");
    let spool_arg: &str = Box::leak(spool.display().to_string().into_boxed_str());
    let args = vec![
        "--spool",
        spool_arg,
        "--shutdown-timeout",
        "1",
        "--retry-max-elapsed",
        "1",
    ];
    let mut bridge = Bridge::start(options(&api, args.clone()));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for n in 1..=30u64 {
        socket
            .send_to(&datagram(n), ("127.0.0.1", bridge.udp))
            .unwrap();
    }
    bridge.wait_metrics(Duration::from_secs(10), |t| {
        metric(t, "xray_bridge_spool_written_total{export=\"api\"}") == 30
    });
    // Kept in the spool, not lost: a clean exit.
    assert_eq!(bridge.stop(Duration::from_secs(15)), 0, "{}", bridge.logs());

    // Flip a byte inside record 10, and cut the last record in half.
    let dir = spool.join("documents");
    let seg = seg_files(&dir)
        .into_iter()
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
        .expect("a segment with records");
    let mut bytes = std::fs::read(&seg).unwrap();
    let starts: Vec<usize> = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"XRS1")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len(), 30);
    let id_at = |bytes: &[u8], start: usize| {
        let len = u32::from_le_bytes(bytes[start + 4..start + 8].try_into().unwrap()) as usize;
        let doc: serde_json::Value =
            serde_json::from_slice(&bytes[start + 24..start + 24 + len]).unwrap();
        doc["id"].as_str().unwrap().to_owned()
    };
    let flipped = id_at(&bytes, starts[9]);
    let torn = id_at(&bytes, starts[29]);
    bytes[starts[9] + 40] ^= 0x01;
    let cut = starts[29] + (bytes.len() - starts[29]) / 2;
    bytes.truncate(cut);
    std::fs::write(&seg, &bytes).unwrap();

    api.set(UP);
    let bridge = Bridge::start(options(&api, args));
    wait_until("28 documents", Duration::from_secs(20), || {
        api.arrived().len() >= 28
    });
    std::thread::sleep(Duration::from_millis(300));
    let arrived = api.arrived();
    let want: HashSet<String> = (1..=30u64)
        .map(id)
        .filter(|i| *i != flipped && *i != torn)
        .collect();
    assert_eq!(arrived.keys().cloned().collect::<HashSet<_>>(), want);
    let text = bridge.metrics_text();
    assert_eq!(
        metric(
            &text,
            "xray_bridge_export_dropped_total{export=\"api\",reason=\"spool_corrupt\"}"
        ),
        2
    );
    assert_eq!(
        metric(
            &text,
            "xray_bridge_spool_damaged_total{export=\"api\",kind=\"torn\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &text,
            "xray_bridge_spool_damaged_total{export=\"api\",kind=\"corrupt\"}"
        ),
        1
    );
    let logs = bridge.logs();
    assert!(logs.contains("torn record"), "{logs}");
    assert!(logs.contains("damaged record"), "{logs}");
}

#[test]
fn two_bridges_never_share_a_spool_directory() {
    let api = Api::start();
    let scratch = Scratch::new("shared");
    let spool_arg: &str = Box::leak(scratch.path("spool").display().to_string().into_boxed_str());
    let mut first = Bridge::start(options(&api, vec!["--spool", spool_arg]));
    // Listening is not yet exporting: wait until the first one's spool is open.
    first.wait_metrics(Duration::from_secs(10), |t| {
        t.contains("xray_bridge_spool_bytes{export=\"api\"}")
    });
    let log = scratch.path("second.log");
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_xray-bridge"))
        .args(["--spool", spool_arg, "--export", "stdout", "--tcp", "off"])
        .args(["--udp", "127.0.0.1:0", "--otlp-http", "127.0.0.1:0"])
        .args(["--otlp-grpc", "127.0.0.1:0"])
        .env_remove("XRAY_BRIDGE_CONFIG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("run a second bridge");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "{stderr}\nfirst:\n{}",
        first.logs()
    );
    assert!(stderr.contains("in use by another process"), "{stderr}");
    assert_eq!(first.stop(Duration::from_secs(15)), 0);
}
