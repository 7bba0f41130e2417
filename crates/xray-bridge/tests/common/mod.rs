//! Starts the real `xray-bridge` binary on free loopback ports, and stops it with SIGTERM.
#![allow(dead_code)]

use std::net::{TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use xray_testkit::free_port;

pub(crate) mod forward_proxy;
pub(crate) mod xray_stub;

/// A free UDP port on 127.0.0.1.
pub(crate) fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind udp")
        .port()
}

/// A scratch folder removed on drop.
pub(crate) struct Scratch(xray_testkit::TempDir);

impl Scratch {
    pub(crate) fn new(name: &str) -> Scratch {
        Scratch(xray_testkit::temp_dir(name))
    }

    pub(crate) fn path(&self, file: &str) -> PathBuf {
        self.0.path().join(file)
    }
}

/// A running bridge.
pub(crate) struct Bridge {
    child: Option<Child>,
    pub udp: u16,
    pub http: u16,
    pub grpc: u16,
    pub tcp: u16,
    pub metrics: u16,
    /// The local console's port (when started with [`Options::console`]).
    pub console: u16,
    pub log: PathBuf,
    _scratch: Scratch,
}

/// Options for [`Bridge::start`].
#[derive(Clone)]
pub(crate) struct Options<'a> {
    pub export: String,
    pub args: Vec<&'a str>,
    pub env: Vec<(&'a str, String)>,
    pub tcp: bool,
    /// Also serve the local console (`--console`) on a free port.
    pub console: bool,
}

impl<'a> Options<'a> {
    pub(crate) fn export(export: impl Into<String>) -> Self {
        Options {
            export: export.into(),
            args: Vec::new(),
            env: Vec::new(),
            tcp: false,
            console: false,
        }
    }
}

impl Bridge {
    /// Starts the binary with every listener on a free port and waits until it listens.
    ///
    /// A port picked free can be taken by another process before the binary binds it
    /// (tests run in parallel, and outgoing connections use the same port range): when
    /// the binary exits at start because an address is in use, it is started again on
    /// fresh ports. Any other early exit fails the test.
    pub(crate) fn start(options: Options<'_>) -> Bridge {
        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            match Self::try_start(&options) {
                Ok(bridge) => return bridge,
                Err(Started::PortTaken(logs)) if attempt < ATTEMPTS => {
                    eprintln!("xray-bridge start {attempt}: a port was taken, retrying:\n{logs}");
                }
                Err(Started::PortTaken(logs) | Started::Failed(logs)) => panic!("{logs}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn try_start(options: &Options<'_>) -> Result<Bridge, Started> {
        let scratch = Scratch::new("run");
        let log = scratch.path("bridge.log");
        // Five distinct TCP ports (a port just released can be handed out again).
        let mut tcp_ports: Vec<u16> = Vec::new();
        while tcp_ports.len() < 5 {
            let p = free_port();
            if !tcp_ports.contains(&p) {
                tcp_ports.push(p);
            }
        }
        let (udp, http, grpc, tcp, metrics, console) = (
            free_udp_port(),
            tcp_ports[0],
            tcp_ports[1],
            tcp_ports[2],
            tcp_ports[3],
            tcp_ports[4],
        );
        let addr = |p: u16| format!("127.0.0.1:{p}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xray-bridge"));
        cmd.args(["--udp", &addr(udp)])
            .args(["--otlp-http", &addr(http)])
            .args(["--otlp-grpc", &addr(grpc)])
            .args(["--metrics", &addr(metrics)])
            .args(["--export", &options.export])
            .args(["--log-level", "debug"]);
        if options.tcp {
            cmd.args(["--tcp", &addr(tcp)]);
        } else {
            cmd.args(["--tcp", "off"]);
        }
        if options.console {
            cmd.args(["--console", &addr(console)]);
        }
        cmd.args(&options.args);
        // Hermetic: nothing from the developer's environment, no instance metadata.
        for (k, _) in std::env::vars() {
            let proxy_var = k.to_ascii_uppercase().ends_with("_PROXY");
            if k.starts_with("XRAY_BRIDGE_")
                || k.starts_with("AWS_")
                || k == "RUST_LOG"
                || proxy_var
            {
                cmd.env_remove(k);
            }
        }
        cmd.env("AWS_EC2_METADATA_DISABLED", "true");
        for (k, v) in &options.env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start xray-bridge");
        let mut bridge = Bridge {
            child: Some(child),
            udp,
            http,
            grpc,
            tcp,
            metrics,
            console,
            log,
            _scratch: scratch,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        // Every listener is bound before any is served, so the metrics port answering
        // means all of them are ready (the console is bound before them).
        while TcpStream::connect(("127.0.0.1", metrics)).is_err() {
            if let Some(status) = bridge
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let logs = bridge.logs();
                let message = format!("xray-bridge exited with {status}:\n{logs}");
                // Exit code 1 is a failed start; the OS names a taken port this way.
                return Err(
                    if status.code() == Some(1) && logs.contains("Address already in use") {
                        Started::PortTaken(message)
                    } else {
                        Started::Failed(message)
                    },
                );
            }
            if Instant::now() >= deadline {
                return Err(Started::Failed(format!(
                    "xray-bridge did not start:\n{}",
                    bridge.logs()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(bridge)
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The bridge's log so far.
    pub(crate) fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn url(&self, port: u16, path: &str) -> String {
        format!("http://127.0.0.1:{port}{path}")
    }

    /// `/metrics` text.
    pub(crate) fn metrics_text(&self) -> String {
        let url = self.url(self.metrics, "/metrics");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            reqwest::get(&url)
                .await
                .expect("GET /metrics")
                .text()
                .await
                .expect("metrics body")
        })
    }

    /// One sample's value (0 when absent), e.g. `metric(&text, "x_total{reason=\"a\"}")`.
    pub(crate) fn metric(text: &str, sample: &str) -> u64 {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(sample)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    }

    /// Polls `/metrics` until `done` holds, or panics after `timeout`.
    pub(crate) fn wait_metrics(&self, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.metrics_text();
            if done(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "metrics never settled:\n{text}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process with SIGKILL (no drain, no cleanup) and waits for it.
    pub(crate) fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }

    /// `GET path` on the metrics port: the status and the body.
    pub(crate) fn get(&self, path: &str) -> (u16, String) {
        let url = self.url(self.metrics, path);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let response = reqwest::get(&url).await.expect("GET");
            let status = response.status().as_u16();
            (status, response.text().await.expect("body"))
        })
    }

    /// `POST /v1/traces` on the OTLP/HTTP port with `request` as protobuf: the status and
    /// the body.
    pub(crate) fn post_otlp(&self, request: &ExportTraceServiceRequest) -> (u16, Vec<u8>) {
        use prost::Message as _;
        let url = self.url(self.http, "/v1/traces");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let response = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/x-protobuf")
                .body(request.encode_to_vec())
                .send()
                .await
                .expect("POST /v1/traces");
            let status = response.status().as_u16();
            (status, response.bytes().await.expect("body").to_vec())
        })
    }

    /// Sends SIGTERM and waits for the exit code.
    pub(crate) fn stop(&mut self, timeout: Duration) -> i32 {
        self.signal("-TERM", timeout)
    }

    /// Sends SIGINT (Ctrl-C) and waits for the exit code.
    pub(crate) fn interrupt(&mut self, timeout: Duration) -> i32 {
        self.signal("-INT", timeout)
    }

    fn signal(&mut self, signal: &str, timeout: Duration) -> i32 {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "xray-bridge did not stop within {timeout:?}:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Why [`Bridge::try_start`] gave up, with the bridge's log.
enum Started {
    /// A listen address was in use: worth another try on fresh ports.
    PortTaken(String),
    /// Anything else.
    Failed(String),
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads a JSON-lines export file.
pub(crate) fn read_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A server span of 250 ms with ids filled from `trace` and `id` (0 gives an empty id).
pub(crate) fn otlp_span(trace: u8, id: u8, name: &str) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        name: name.to_owned(),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_250_000_000,
        ..Default::default()
    }
}

/// One OTLP export request: `spans` of one scope, from a resource named `service`.
pub(crate) fn otlp_request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(service.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A daemon datagram carrying one valid segment (id `1000...` + `i`).
pub(crate) fn segment_datagram(i: u32) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
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

/// Sends `n` segment datagrams to `port` on loopback.
pub(crate) fn send_segments(port: u16, n: u32) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..n {
        socket
            .send_to(segment_datagram(i).as_bytes(), ("127.0.0.1", port))
            .unwrap();
        if i % 50 == 49 {
            // Stay under the receive buffer.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}
