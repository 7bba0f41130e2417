//! Child processes under measurement: started on free loopback ports (retried on a port
//! race), measured from `/proc/PID` (CPU time, RSS), killed and reaped on drop.
#![allow(unsafe_code)] // FFI or a std API that is unsafe to call; each block says why it is sound.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// CPU time and memory of a process, read from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size now (`VmRSS`), in bytes.
    pub rss: u64,
    /// Peak resident set size (`VmHWM`), in bytes.
    pub peak_rss: u64,
}

/// Reads `/proc/PID/stat` (utime + stime) and `/proc/PID/status` (VmRSS, VmHWM).
pub fn usage(pid: u32) -> std::io::Result<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at field 3 (state);
    // utime and stime are fields 14 and 15.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Ok(Usage {
        cpu_seconds: (ticks(14) + ticks(15)) as f64 / per_second,
        rss: kb("VmRSS:"),
        peak_rss: kb("VmHWM:"),
    })
}

/// A server process; killed and reaped on drop (also when a bench panics).
pub struct Server {
    child: Child,
    name: String,
    log: PathBuf,
}

impl Server {
    /// Starts the command `make(attempt)` builds, which must accept TCP connections on
    /// the port it returns with it within `timeout`. A process that exits before that
    /// (typically a port taken between picking and binding it) is started again with a
    /// fresh command, up to three times. Its stdout and stderr go to `log`.
    pub fn start(
        name: &str,
        log: &Path,
        timeout: Duration,
        mut make: impl FnMut() -> (Command, u16),
    ) -> Result<Server, String> {
        let mut last = String::new();
        for _ in 0..3 {
            let (mut cmd, port) = make();
            let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
            let err = out.try_clone().map_err(|e| e.to_string())?;
            let child = cmd
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .map_err(|e| format!("cannot start {name} ({:?}): {e}", cmd.get_program()))?;
            let mut server = Server {
                child,
                name: name.to_owned(),
                log: log.to_owned(),
            };
            let deadline = Instant::now() + timeout;
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(server);
                }
                if let Ok(Some(status)) = server.child.try_wait() {
                    last = format!("{name} exited with {status}:\n{}", server.logs());
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "{name} did not listen on {port}:\n{}",
                        server.logs()
                    ));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Err(last)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its CPU time and memory now.
    pub fn usage(&self) -> Usage {
        usage(self.pid()).unwrap_or_default()
    }

    /// What it printed so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit code (killed after that).
    pub fn stop(mut self, timeout: Duration) -> Option<i32> {
        // SAFETY: kill has no memory-safety preconditions; the pid is our live child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} did not stop within {timeout:?}; killed", self.name);
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1 (closed before returning: [`Server::start`] retries
/// when another process takes it first).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free port")
}

/// A free UDP port on 127.0.0.1.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("bind a free UDP port")
}

/// A scratch folder (`xray_testkit::temp_dir`, made by `tempfile`) removed on drop.
#[derive(Debug)]
pub struct Scratch(xray_testkit::TempDir);

impl Scratch {
    /// A new empty folder under the system temp dir.
    pub fn new(name: &str) -> Scratch {
        Scratch(xray_testkit::temp_dir(&format!("xray-bridge-bench-{name}")))
    }

    /// A path inside it.
    pub fn path(&self, file: &str) -> PathBuf {
        self.0.path().join(file)
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").finish_non_exhaustive()
    }
}

/// The profile folder this bench binary was built into (`target/<profile>`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/binary-<hash>
    exe.parent()
        .and_then(Path::parent)
        .expect("bench binary in target/<profile>/deps")
        .to_path_buf()
}

/// Finds (and, unless `XRAY_BRIDGE_BIN` names one, builds) the xray-bridge binary: the
/// one next to the running bench's profile folder (`target/release` under `cargo bench`,
/// `target/debug` under `cargo test`), built first in that profile (a no-op when fresh).
pub fn xray_bridge_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("XRAY_BRIDGE_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "XRAY_BRIDGE_BIN={} is not a file",
            path.display()
        );
        return path;
    }
    let dir = profile_dir();
    let profile = match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        // The shipped binary: `cargo bench` builds the benches in the cheaper `bench`
        // profile, but what is measured here is what `cargo build --release` ships.
        Some("release") => "release",
        Some(other) => other,
        None => "dev",
    };
    let target = dir.parent().expect("target dir");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    eprintln!("building xray-bridge ({profile} profile) for the benchmark...");
    let status = Command::new(&cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "xray-bridge",
            "--bin",
            "xray-bridge",
        ])
        .args(["--profile", profile])
        .arg("--manifest-path")
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", target)
        .status();
    let bin = dir.join("xray-bridge");
    match status {
        Ok(s) if s.success() => {}
        other => panic!(
            "cannot build xray-bridge ({other:?}); build it with `cargo build --profile {profile} -p xray-bridge` or set XRAY_BRIDGE_BIN"
        ),
    }
    assert!(bin.is_file(), "no binary at {}", bin.display());
    bin
}
