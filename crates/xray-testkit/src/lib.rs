//! Test support shared by the workspace's tests and benchmarks: the published
//! segment-document schema, free loopback ports, temporary directories, stub HTTP servers
//! ([`stub`] scripted, [`counting_api`] a fast counting `PutTraceSegments`) over one
//! HTTP/1.1 reader ([`http`]), and real peers (moto's X-Ray server, Python scripts) started
//! on loopback and stopped on drop.
#![warn(missing_docs)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod counting_api;
pub mod http;
pub mod peers;
pub mod stub;

pub use tempfile::TempDir;

/// A fresh temporary directory named after `tag` (made by `tempfile`), removed with
/// everything in it when dropped.
pub fn temp_dir(tag: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("xray-bridge-{tag}-"))
        .tempdir()
        .expect("create a temporary directory")
}

/// The segment-document JSON schema AWS published (draft-04), as shipped in `xray-model`.
pub const SEGMENT_SCHEMA: &str =
    include_str!("../../xray-model/schema/xray-segmentdocument-schema-v1.0.0.json");

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let schema: serde_json::Value = serde_json::from_str(SEGMENT_SCHEMA).expect("schema");
        jsonschema::draft4::new(&schema).expect("schema compiles")
    })
}

/// Checks a document against the published schema; the error lists every violation.
pub fn validate_document(doc: &serde_json::Value) -> Result<(), String> {
    let errors: Vec<String> = validator()
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Panics with the violations when a document (JSON text) does not match the schema.
pub fn assert_schema_valid(json: &str) {
    let value: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"));
    if let Err(e) = validate_document(&value) {
        panic!("document does not match the X-Ray schema: {e}\n{json}");
    }
}

/// Every (sub)segment of `docs`, each document followed by its embedded subsegments lifted
/// out as if sent alone (`type`, `trace_id` and `parent_id` set, in tree order). The
/// originals keep their `subsegments`, so a test can look at either form; counts and
/// lookups need not care whether an exporter nested a batch or sent one document per span.
pub fn all_segments(docs: &[serde_json::Value]) -> Vec<serde_json::Value> {
    use serde_json::Value;
    let mut out = Vec::new();
    for doc in docs {
        out.push(doc.clone());
        let trace = doc["trace_id"].clone();
        let mut stack: Vec<(Value, Value)> = Vec::new();
        let children = |parent: &Value| -> Vec<(Value, Value)> {
            let id = parent["id"].clone();
            parent["subsegments"]
                .as_array()
                .map(|c| c.iter().rev().map(|c| (c.clone(), id.clone())).collect())
                .unwrap_or_default()
        };
        stack.extend(children(doc));
        while let Some((mut sub, parent)) = stack.pop() {
            stack.extend(children(&sub));
            if let Some(fields) = sub.as_object_mut() {
                fields.insert("type".into(), "subsegment".into());
                fields.insert("trace_id".into(), trace.clone());
                fields.insert("parent_id".into(), parent);
            }
            out.push(sub);
        }
    }
    out
}

/// A free TCP port on 127.0.0.1 (the listener is closed before returning).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// A process-environment stand-in for the crates' variable-map hooks: looks `name` up in
/// `pairs`, so tests never change the real environment.
pub fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`, …), in KiB; `None` when the
/// process or the field is gone.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let value = l.strip_prefix(field)?.strip_prefix(':')?;
        value.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// A UDP socket bound to a free port on 127.0.0.1 with a read timeout.
pub fn udp_listener() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    socket
}

/// Receives datagrams until none arrives for the socket's read timeout, or `max` arrived.
pub fn recv_all(socket: &UdpSocket, max: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 70_000];
    while out.len() < max {
        match socket.recv(&mut buf) {
            Ok(n) => out.push(buf[..n].to_vec()),
            Err(_) => break,
        }
    }
    out
}

/// The workspace's root folder.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("workspace root")
        .to_path_buf()
}

/// The Python interpreter used for peers: `XRAY_BRIDGE_PYTHON`, else the peers' virtual
/// environment under `target/` when `cargo xtask test` made it, else `python3`.
pub fn python() -> String {
    if let Some(python) = std::env::var("XRAY_BRIDGE_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
    {
        return python;
    }
    let venv = peers::venv_python();
    if venv.exists() {
        return venv.to_string_lossy().into_owned();
    }
    "python3".to_owned()
}

/// Whether the Python modules can be imported. Tests that need a peer call
/// [`require_python`] instead, which fails loudly: `cargo xtask test` installs every peer.
pub fn python_has(modules: &[&str]) -> bool {
    let code = modules
        .iter()
        .map(|m| format!("import {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    Command::new(python())
        .args(["-c", &code])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Panics with one line naming the command that installs the peers, unless the Python
/// modules are importable.
pub fn require_python(modules: &[&str]) {
    assert!(
        python_has(modules),
        "Python peers {modules:?} are missing: run `{}` once (it installs them into {})",
        peers::TEST_COMMAND,
        peers::venv_dir().display()
    );
}

/// Runs a Python script with arguments and standard input, and returns its output.
/// Panics with the script's stderr when it fails.
pub fn run_python(script: &str, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().expect("python output");
    assert!(
        status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&stderr)
    );
    String::from_utf8(stdout).expect("utf-8 output")
}

/// A child process killed (and reaped) on drop.
pub struct Server {
    child: Child,
    /// The port it listens on.
    pub port: u16,
}

impl Server {
    /// Starts `command`, which must listen on `port` on 127.0.0.1 within `timeout`.
    pub fn start(mut command: Command, port: u16, timeout: Duration) -> Server {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
        let mut server = Server { child, port };
        let deadline = Instant::now() + timeout;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = server.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("{command:?} exited with {status}: {err}");
            }
            assert!(
                Instant::now() < deadline,
                "{command:?} did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Drain stderr in the background so a chatty server never blocks on a full pipe.
        if let Some(err) = server.child.stderr.take() {
            std::thread::spawn(move || for _ in BufReader::new(err).lines() {});
        }
        server
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts moto's server (`python3 -m moto.server`) on a free loopback port.
pub fn start_moto() -> Server {
    require_python(&["moto.server"]);
    let port = free_port();
    let mut cmd = Command::new(python());
    cmd.args([
        "-m",
        "moto.server",
        "-H",
        "127.0.0.1",
        "-p",
        &port.to_string(),
    ])
    .env("AWS_ACCESS_KEY_ID", "testing")
    .env("AWS_SECRET_ACCESS_KEY", "testing");
    Server::start(cmd, port, Duration::from_secs(30))
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_rejects_what_it_should() {
        let ok = r#"{"name":"a","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.0,"end_time":2.0}"#;
        assert_schema_valid(ok);
        for bad in [
            r#"{"name":"a{b}","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.0}"#,
            r#"{"name":"a","id":"70de5b6f19ff9a0","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.0}"#,
            r#"{"name":"a","id":"70de5b6f19ff9a0a","start_time":1.0}"#,
            r#"{"name":"a","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.0,"annotations":{"a.b":1}}"#,
        ] {
            let v: serde_json::Value = serde_json::from_str(bad).unwrap();
            assert!(validate_document(&v).is_err(), "{bad}");
        }
    }
}
