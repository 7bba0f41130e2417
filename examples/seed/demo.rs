//! The orchestrator: moto (DynamoDB), the bridge and the four services as child processes
//! on free loopback ports, a bounded burst, a summary from the local console, then a clean
//! stop of everything it started.
#![allow(unsafe_code)] // FFI or a std API that is unsafe to call; each block says why it is sound.

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::roles::ROLE;
use crate::services::{Faults, TABLE};

/// What the demo does.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Requests in the burst.
    pub requests: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Faults injected.
    pub faults: Faults,
    /// Keep the bridge (and its console) running after the burst, until Ctrl-C.
    pub serve: bool,
    /// Real AWS: DynamoDB and X-Ray in `AWS_REGION` with the standard credentials.
    pub aws: bool,
    /// The console address (local mode).
    pub console: String,
    /// The local store; removed at the start (it is the demo's own).
    pub store: PathBuf,
    /// Overrides the bridge's export (`file:PATH` in tests); `None`: local (or `api`).
    pub export: Option<String>,
    /// The sampling rule file given to every service.
    pub rules: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            requests: 40,
            concurrency: 4,
            faults: Faults::ALL,
            serve: false,
            aws: false,
            console: "127.0.0.1:2020".into(),
            store: std::env::temp_dir().join("xray-bridge-seed/local.db"),
            export: None,
            rules: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/sampling-rules.json")),
        }
    }
}

/// What happened.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Burst answers by HTTP status (0: no answer).
    pub statuses: BTreeMap<u16, usize>,
    /// Health checks answered 200.
    pub health_ok: usize,
    /// The console's `/api/servicemap` (local mode).
    pub service_map: Option<Value>,
    /// The console URL (local mode).
    pub console_url: Option<String>,
}

/// Child processes, killed on drop if still running.
#[derive(Default)]
struct Children(Vec<(String, Child)>);

impl Children {
    fn spawn(&mut self, name: &str, mut cmd: Command) -> Result<u32, String> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let pid = child.id();
        self.0.push((name.to_owned(), child));
        Ok(pid)
    }

    fn alive(&mut self, name: &str) -> Result<(), String> {
        for (n, child) in &mut self.0 {
            if n == name
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("{name} exited with {status}"));
            }
        }
        Ok(())
    }

    /// SIGTERM, then waits up to `timeout` (then SIGKILL). Returns the exit code.
    fn stop(&mut self, name: &str, timeout: Duration) -> Option<i32> {
        let i = self.0.iter().position(|(n, _)| n == name)?;
        let (_, mut child) = self.0.remove(i);
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_tcp() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn free_udp() -> Result<u16, String> {
    let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(s.local_addr().map_err(|e| e.to_string())?.port())
}

fn wait_listening(children: &mut Children, name: &str, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        children.alive(name)?;
        if Instant::now() > deadline {
            return Err(format!(
                "{name} did not listen on 127.0.0.1:{port} within 30 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The Python that runs moto: `PYTHON`, else the test peers' interpreter when it has moto,
/// else the peers' virtual environment, made on first use (`target/peers-venv`).
fn python() -> Result<String, String> {
    if let Ok(python) = std::env::var("PYTHON") {
        return Ok(python);
    }
    if xray_testkit::python_has(&["moto.server", "flask"]) {
        return Ok(xray_testkit::python());
    }
    eprintln!(
        "seed: moto is not installed; installing the Python peers into {} (once, about a minute)",
        xray_testkit::peers::venv_dir().display()
    );
    xray_testkit::peers::provision_python().map(|p| p.to_string_lossy().into_owned())
}

/// Runs the demo; `Err` says what could not start.
pub(crate) async fn run(options: Options) -> Result<Report, String> {
    let mut children = Children::default();
    let result = run_with(&options, &mut children).await;
    // Whatever happened, nothing started here outlives the demo.
    for name in ["frontend", "bff", "backend1", "backend2", "bridge", "moto"] {
        children.stop(name, Duration::from_secs(15));
    }
    result
}

async fn run_with(options: &Options, children: &mut Children) -> Result<Report, String> {
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    // 1. DynamoDB: moto on a free loopback port, or the real one.
    let mut aws_env: Vec<(&str, String)> = Vec::new();
    if !options.aws {
        let port = free_tcp()?;
        let mut cmd = Command::new(python()?);
        cmd.args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stderr(Stdio::null());
        children
            .spawn("moto", cmd)
            .map_err(|e| format!("{e} (`cargo xtask peers` installs moto)"))?;
        wait_listening(children, "moto", port)
            .map_err(|e| format!("{e} (`cargo xtask peers` installs moto)"))?;
        let endpoint = format!("http://127.0.0.1:{port}");
        aws_env = vec![
            ("AWS_ENDPOINT_URL_DYNAMODB", endpoint),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", region.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ];
        for (k, v) in &aws_env {
            // SAFETY: set before any other thread of this process reads the environment
            // for AWS settings (the demo's own untraced client below).
            unsafe { std::env::set_var(k, v) };
        }
    }
    create_table().await?;

    // 2. The bridge: UDP for the services, metrics to know when everything arrived.
    let (udp, metrics) = (free_udp()?, free_tcp()?);
    let local = options.export.is_none() && !options.aws;
    let export = match (&options.export, options.aws) {
        (Some(e), _) => e.clone(),
        (None, true) => "api".into(),
        (None, false) => "local".into(),
    };
    if local {
        let _ = std::fs::remove_file(&options.store);
    }
    // A port 0 console gets a concrete free port, so the demo knows where to ask.
    let mut console = options.console.clone();
    if let Ok(addr) = console.parse::<std::net::SocketAddr>()
        && addr.port() == 0
    {
        let l = TcpListener::bind(addr).map_err(|e| format!("console {addr}: {e}"))?;
        console = l.local_addr().map_err(|e| e.to_string())?.to_string();
    }
    let mut cmd = Command::new(&me);
    cmd.env(ROLE, "bridge")
        .args(["--udp", &format!("127.0.0.1:{udp}")])
        .args(["--otlp-grpc", "off", "--otlp-http", "off", "--tcp", "off"])
        .args(["--metrics", &format!("127.0.0.1:{metrics}")])
        .args(["--export", &export, "--log-level", "warn"])
        .args(["--console", &console])
        .arg("--store")
        .arg(&options.store);
    if options.aws {
        cmd.args(["--region", &region]);
    }
    children.spawn("bridge", cmd)?;
    wait_listening(children, "bridge", metrics)?;

    // 3. The services, each its own process and service name.
    let ports = [free_tcp()?, free_tcp()?, free_tcp()?, free_tcp()?];
    let url = |p: u16| format!("http://127.0.0.1:{p}");
    let roles = ["frontend", "bff", "backend1", "backend2"];
    for (role, port) in roles.iter().zip(ports) {
        let mut cmd = Command::new(&me);
        cmd.env(ROLE, role)
            .env("SEED_ADDR", format!("127.0.0.1:{port}"))
            .env("SEED_BFF_URL", url(ports[1]))
            .env("SEED_BACKEND1_URL", url(ports[2]))
            .env("SEED_BACKEND2_URL", url(ports[3]))
            .env("SEED_FAULTS", options.faults.to_env())
            .env("OTEL_SERVICE_NAME", role)
            .env("AWS_XRAY_DAEMON_ADDRESS", format!("127.0.0.1:{udp}"))
            .env("OTEL_TRACES_SAMPLER", "xray")
            .env(
                "OTEL_TRACES_SAMPLER_ARG",
                format!("local_only=true,rules_file={}", options.rules.display()),
            )
            .env_remove("AWS_XRAY_SDK_ENABLED")
            .env_remove("OTEL_PROPAGATORS");
        for (k, v) in &aws_env {
            cmd.env(k, v);
        }
        children.spawn(role, cmd)?;
    }
    for (role, port) in roles.iter().zip(ports) {
        wait_listening(children, role, port)?;
    }

    // 4. The burst, and health checks that sampling must leave out.
    let mut report = Report {
        statuses: burst(&url(ports[0]), options.requests, options.concurrency).await,
        ..Report::default()
    };
    let client = reqwest::Client::new();
    for port in ports {
        for _ in 0..2 {
            let ok = client
                .get(format!("{}/health", url(port)))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            report.health_ok += usize::from(ok);
        }
    }

    // 5. Services flush what they hold when stopped; then wait for the bridge to settle.
    for role in roles {
        children.stop(role, Duration::from_secs(15));
    }
    settle(metrics).await;
    if local {
        let console = format!("http://{console}");
        let answer = client
            .get(format!("{console}/api/servicemap"))
            .send()
            .await
            .ok()
            .and_then(|r| r.error_for_status().ok());
        match answer {
            Some(answer) => report.service_map = answer.json::<Value>().await.ok(),
            None => eprintln!("seed: the console at {console} did not answer /api/servicemap"),
        }
        report.console_url = Some(format!("{console}/"));
    }
    if options.serve {
        match &report.console_url {
            Some(u) => println!("local console: {u} (Ctrl-C to stop)"),
            None => println!("bridge running (Ctrl-C to stop)"),
        }
        print_summary(&report);
        crate::roles::terminated().await;
    }
    let code = children.stop("bridge", Duration::from_secs(20));
    if code != Some(0) {
        return Err(format!(
            "the bridge stopped with {code:?} (data lost or killed)"
        ));
    }
    Ok(report)
}

/// Creates the table when missing and waits until it is active.
async fn create_table() -> Result<(), String> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        TableStatus,
    };
    let client = crate::services::dynamodb(false).await;
    let key = |k| {
        KeySchemaElement::builder()
            .attribute_name("service")
            .key_type(k)
            .build()
    };
    let created = client
        .create_table()
        .table_name(TABLE)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("service")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| e.to_string())?,
        )
        .key_schema(key(KeyType::Hash).map_err(|e| e.to_string())?)
        .send()
        .await;
    if let Err(e) = created {
        let in_use = e
            .as_service_error()
            .is_some_and(|s| s.is_resource_in_use_exception());
        if !in_use {
            return Err(format!(
                "cannot create table {TABLE}: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(e)
            ));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = client
            .describe_table()
            .table_name(TABLE)
            .send()
            .await
            .ok()
            .and_then(|d| d.table().and_then(|t| t.table_status().cloned()));
        if status == Some(TableStatus::Active) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("table {TABLE} is not active after 60 s"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `requests` GETs on `url` with `concurrency` in flight; answers by status.
async fn burst(url: &str, requests: usize, concurrency: usize) -> BTreeMap<u16, usize> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client");
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (client, next, url) = (client.clone(), next.clone(), url.to_owned());
        workers.spawn(async move {
            let mut seen = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                let status = match client.get(&url).send().await {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
                seen.push(status);
            }
            seen
        });
    }
    let mut statuses = BTreeMap::new();
    while let Some(Ok(seen)) = workers.join_next().await {
        for s in seen {
            *statuses.entry(s).or_default() += 1;
        }
    }
    statuses
}

fn metric(text: &str, sample: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits (at most 20 s) until the bridge has exported everything it received and no new
/// datagram came for half a second.
async fn settle(metrics_port: u16) {
    let url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = (u64::MAX, u64::MAX);
    let mut stable_since = Instant::now();
    while Instant::now() < deadline {
        let text = match reqwest::get(&url).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let received = metric(&text, "xray_bridge_udp_datagrams_received_total ");
        // The one export's documents sent (whichever export it is).
        let sent: u64 = text
            .lines()
            .filter(|l| l.starts_with("xray_bridge_export_items_sent_total{export="))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        let done = sent + metric(&text, "xray_bridge_udp_datagrams_rejected_total ");
        if (received, done) != last {
            last = (received, done);
            stable_since = Instant::now();
        } else if received > 0
            && done >= received
            && stable_since.elapsed() > Duration::from_millis(500)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Prints the burst's answers and the service map's nodes.
pub(crate) fn print_summary(report: &Report) {
    let answers: Vec<String> = report
        .statuses
        .iter()
        .map(|(s, n)| format!("{n} x {s}"))
        .collect();
    println!("burst answers: {}", answers.join(", "));
    println!(
        "health checks answered: {} (not traced: sampling rule ignore-healthcheck)",
        report.health_ok
    );
    let Some(map) = &report.service_map else {
        return;
    };
    println!("traces: {}", map["traces"]);
    println!(
        "{:<28} {:<16} {:>8} {:>9} {:>9} {:>7} {:>9} {:>7}",
        "node", "type", "requests", "avg ms", "p95 ms", "errors", "throttles", "faults"
    );
    for node in map["nodes"].as_array().into_iter().flatten() {
        let stats = &node["stats"];
        let requests = stats["requests"].as_f64().unwrap_or(0.0);
        let count = |k: &str| (stats[k].as_f64().unwrap_or(0.0) * requests).round();
        let ms = |k: &str| stats[k].as_f64().unwrap_or(0.0) * 1000.0;
        println!(
            "{:<28} {:<16} {:>8} {:>9.1} {:>9.1} {:>7} {:>9} {:>7}",
            node["name"].as_str().unwrap_or("?"),
            node["type"].as_str().unwrap_or("?"),
            requests,
            ms("avg"),
            ms("p95"),
            count("error"),
            count("throttle"),
            count("fault"),
        );
    }
}
