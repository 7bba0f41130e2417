//! `cargo xtask startup-order`: writes `crates/xray-bridge/startup-symbols.txt`, the
//! functions an idle bridge has run, which the release link places together (see the
//! crate's `build.rs`). Each listener and export configuration of the idle-RSS
//! measurement runs under valgrind's callgrind until it logs that it is ready and has idled
//! for a while; the functions of the binary it ran, in every configuration, are the list.
//! Symbol names carry hashes that change with versions and dependencies, so `dist` reports
//! how much of the list the binary still has.

use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{build_release, root, status, target_dir};

/// The list the release link reads, relative to the workspace root.
pub(crate) const LIST: &str = "crates/xray-bridge/startup-symbols.txt";

/// How long each configuration idles after it is ready, as in the idle-RSS measurement.
const IDLE: Duration = Duration::from_secs(5);

/// Fake credentials and a region, so no configuration reaches out for real ones.
const ENV: [(&str, &str); 4] = [
    ("AWS_REGION", "us-east-1"),
    ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
    ("AWS_SECRET_ACCESS_KEY", "secret"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// Builds the release binary, profiles every configuration and writes the list.
pub(crate) fn startup_order() -> Result<(), String> {
    let bin = build_release()?;
    let work = target_dir().join("startup-order");
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    // Sorted, so that a new list differs from the last by what start-up runs, not by the
    // order the threads happened to run it in (within the group, order matters little).
    let mut names = BTreeSet::new();
    for (i, args) in configurations(&work).iter().enumerate() {
        let out = work.join(format!("callgrind.{i}"));
        profile(&bin, args, &out)?;
        let ran = functions_of(&out, &bin)?;
        println!("{:>5} functions: {}", ran.len(), args.join(" "));
        names.extend(ran);
    }
    let list = root().join(LIST);
    let text: String = names.iter().map(|n| format!("{n}\n")).collect();
    std::fs::write(&list, text).map_err(|e| format!("{}: {e}", list.display()))?;
    println!("{} functions written to {LIST}", names.len());
    Ok(())
}

/// The measured configurations: only the OTLP/HTTP receiver (the binary bench's) and every
/// listener, each with every kind of export.
fn configurations(work: &Path) -> Vec<Vec<String>> {
    let file = format!("file:{}", work.join("spans.json").display());
    let exports = ["api", file.as_str(), "daemon:127.0.0.1:2000", "otlp"];
    let mut all = Vec::new();
    for every_listener in [false, true] {
        for export in exports {
            let mut args: Vec<&str> = vec!["--otlp-http", "127.0.0.1:0", "--log-level", "info"];
            if every_listener {
                args.extend([
                    "--otlp-grpc",
                    "127.0.0.1:0",
                    "--tcp",
                    "127.0.0.1:0",
                    "--udp",
                    "127.0.0.1:0",
                    "--metrics",
                    "127.0.0.1:0",
                ]);
            } else {
                args.extend(["--otlp-grpc", "off", "--tcp", "off", "--udp", "off"]);
            }
            args.extend(["--export", export]);
            if export == "api" {
                args.extend([
                    "--region",
                    "us-east-1",
                    "--endpoint-url",
                    "http://127.0.0.1:9",
                ]);
                if !every_listener {
                    args.extend(["--telemetry", "off"]);
                }
            }
            all.push(args.into_iter().map(str::to_owned).collect());
        }
    }
    all
}

/// Runs `bin args` under callgrind until it is ready and has idled, then dumps its
/// profile to `out` and stops it.
fn profile(bin: &Path, args: &[String], out: &Path) -> Result<(), String> {
    let mut child = Command::new("valgrind")
        .args([
            "--tool=callgrind",
            "--demangle=no",
            "--compress-strings=no",
            "--dump-instr=no",
            "--dump-line=no",
        ])
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(bin)
        .args(args)
        .envs(ENV)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("valgrind did not start (is it installed?): {e}"))?;
    let stderr = child.stderr.take().expect("piped");
    let ready = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("xray-bridge ready"));
    let dumped = ready && {
        std::thread::sleep(IDLE);
        let pid = child.id().to_string();
        status(
            Command::new("callgrind_control")
                .args(["--dump", &pid])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .is_ok()
    };
    let _ = child.kill();
    let _ = child.wait();
    if !dumped {
        return Err(format!(
            "{} {} did not become ready",
            bin.display(),
            args.join(" ")
        ));
    }
    Ok(())
}

/// The functions of `bin`, once each, in the callgrind dump requested for `out` (written as
/// `out.1`).
fn functions_of(out: &Path, bin: &Path) -> Result<Vec<String>, String> {
    let dump = PathBuf::from(format!("{}.1", out.display()));
    let text = std::fs::read_to_string(&dump).map_err(|e| format!("{}: {e}", dump.display()))?;
    let bin = bin.to_string_lossy();
    let mut in_bin = false;
    let mut names = Vec::new();
    let mut seen = HashSet::new();
    for line in text.lines() {
        if let Some(object) = line.strip_prefix("ob=") {
            in_bin = object == bin;
        } else if let Some(name) = line.strip_prefix("fn=").filter(|_| in_bin)
            && let Some(name) = symbol(name)
            && seen.insert(name)
        {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// The symbol behind callgrind's name for a function: without the `'N` it appends to
/// recursive calls; `None` for code without a symbol (`0x…`, `(below main)`).
fn symbol(name: &str) -> Option<&str> {
    let name = match name.rsplit_once('\'') {
        Some((symbol, depth)) if depth.bytes().all(|b| b.is_ascii_digit()) => symbol,
        _ => name,
    };
    let plain = !name.starts_with("0x") && !name.contains([' ', '(']);
    plain.then_some(name)
}

/// How many of the listed functions `bin` defines, and how many are listed; `None` when
/// there is no list or `nm` (binutils) is missing.
pub(crate) fn coverage(bin: &Path) -> Option<(usize, usize)> {
    let listed = std::fs::read_to_string(root().join(LIST)).ok()?;
    let nm = Command::new("nm")
        .arg("--defined-only")
        .arg(bin)
        .output()
        .ok()?;
    let defined: HashSet<&str> = std::str::from_utf8(&nm.stdout)
        .ok()?
        .lines()
        .filter_map(|l| l.rsplit(' ').next())
        .collect();
    let names: Vec<&str> = listed.lines().filter(|l| !l.is_empty()).collect();
    let found = names.iter().filter(|n| defined.contains(*n)).count();
    Some((found, names.len()))
}
