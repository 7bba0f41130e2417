//! `cargo xtask fuzz [--quick | --runs N] [TARGET...]`: the cargo-fuzz targets, bounded.
//!
//! cargo-fuzz is installed (a pinned version, `--locked`) into `target/tools` on first use
//! and reused after. The targets are built with `--sanitizer none`: that needs only the
//! coverage instrumentation (`-Cpasses=sancov-module` and `-Cllvm-args`, stable codegen
//! options) and no `-Z` flag, so it works on the stable toolchain CI has. Rust code is
//! memory safe without AddressSanitizer; what this finds is panics (and so failed
//! assertions of the targets' invariants), hangs and runaway memory.
//!
//! Both fuzz packages build into one target directory (`target/fuzz`), so their shared
//! dependencies, libFuzzer itself included, are compiled once; each starts from the
//! workspace's `Cargo.lock`, so the fuzzed crates are the versions the binary ships. Each
//! target runs on a fresh working corpus (`target/fuzz/corpus/TARGET`) seeded from its
//! committed `seeds/TARGET` folder, for a fixed number of inputs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::{cargo_command, root, status};

/// The cargo-fuzz release installed and used.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Inputs per target in `--quick` mode (CI): seconds per target on a loaded 2-core
/// machine, after a build of about a minute.
const QUICK_RUNS: u64 = 100_000;

/// Inputs per target without `--quick` or `--runs`.
const DEFAULT_RUNS: u64 = 1_000_000;

/// A fuzz target: its name and the fuzz package (a folder holding `fuzz_targets/` and
/// `seeds/`) it belongs to.
struct Target {
    name: &'static str,
    package: &'static str,
}

const TARGETS: &[Target] = &[
    Target {
        name: "header",
        package: "crates/xray-model/fuzz",
    },
    Target {
        name: "datagram",
        package: "crates/xray-model/fuzz",
    },
    Target {
        name: "otlp_json",
        package: "crates/xray-bridge/fuzz",
    },
    Target {
        name: "otlp_protobuf",
        package: "crates/xray-bridge/fuzz",
    },
];

/// What one target's run did, from libFuzzer's last lines.
struct Outcome {
    name: &'static str,
    runs: String,
    seconds: f64,
    coverage: String,
}

/// Parses `[--quick | --runs N] [TARGET...]` and runs each target (all by default).
pub(crate) fn fuzz(args: &[String]) -> Result<(), String> {
    let mut runs = DEFAULT_RUNS;
    let mut names = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => runs = QUICK_RUNS,
            "--runs" => {
                runs = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--runs takes a number of inputs")?;
            }
            name => names.push(name.to_owned()),
        }
    }
    let targets: Vec<&Target> = TARGETS
        .iter()
        .filter(|t| names.is_empty() || names.iter().any(|n| n == t.name))
        .collect();
    if let Some(unknown) = names
        .iter()
        .find(|n| !TARGETS.iter().any(|t| t.name == n.as_str()))
    {
        let known: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
        return Err(format!(
            "no fuzz target {unknown} (targets: {})",
            known.join(", ")
        ));
    }
    let started = Instant::now();
    let cargo_fuzz = install_cargo_fuzz()?;
    let installed = started.elapsed().as_secs_f64();
    let mut packages: Vec<&str> = targets.iter().map(|t| t.package).collect();
    packages.dedup();
    let started = Instant::now();
    for package in packages {
        build(&cargo_fuzz, package)?;
    }
    let built = started.elapsed().as_secs_f64();
    let mut outcomes = Vec::new();
    for target in targets {
        outcomes.push(run(&cargo_fuzz, target, runs)?);
    }
    println!(
        "fuzz: cargo-fuzz ready in {installed:.1} s, targets built in {built:.1} s; {runs} inputs per target, no crash:"
    );
    for o in &outcomes {
        println!(
            "  {:<10} {} runs in {:.1} s, {}",
            o.name, o.runs, o.seconds, o.coverage
        );
    }
    Ok(())
}

fn tools_dir() -> PathBuf {
    root().join("target/tools")
}

/// `target/tools/bin/cargo-fuzz`, installed there unless it is the pinned version.
fn install_cargo_fuzz() -> Result<PathBuf, String> {
    let bin = tools_dir().join("bin/cargo-fuzz");
    let installed = Command::new(&bin)
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_FUZZ_VERSION));
    if !installed {
        println!("fuzz: installing cargo-fuzz {CARGO_FUZZ_VERSION} into target/tools");
        status(
            cargo_command()
                .args(["install", "--locked", "--quiet", "cargo-fuzz"])
                .args(["--version", CARGO_FUZZ_VERSION, "--root"])
                .arg(tools_dir())
                // Its own build: none of the workspace's settings.
                .env_remove("CARGO_TARGET_DIR")
                .env("CARGO_PROFILE_RELEASE_DEBUG", "false"),
        )?;
    }
    Ok(bin)
}

/// The arguments every cargo-fuzz build and run takes: no sanitizer (stable toolchain),
/// release code with debug assertions and overflow checks, one target directory.
fn fuzz_command(cargo_fuzz: &Path, package: &str, task: &str) -> Command {
    let mut cmd = Command::new(cargo_fuzz);
    cmd.current_dir(root().join(package))
        .args(["fuzz", task, "--sanitizer", "none", "--debug-assertions"])
        .arg("--target-dir")
        .arg(root().join("target/fuzz"))
        .env("CARGO_INCREMENTAL", "0");
    cmd
}

/// Builds every target of a fuzz package, starting from the workspace's `Cargo.lock`.
fn build(cargo_fuzz: &Path, package: &str) -> Result<(), String> {
    let dir = root().join(package);
    // The workspace's versions of every dependency the package shares with it.
    std::fs::copy(root().join("Cargo.lock"), dir.join("Cargo.lock"))
        .map_err(|e| format!("copy Cargo.lock into {package}: {e}"))?;
    println!("fuzz: building {package}");
    status(&mut fuzz_command(cargo_fuzz, package, "build"))
}

/// Runs one (built) target for `runs` inputs; fails on a crash (cargo-fuzz prints the
/// input and writes it to the package's `artifacts/TARGET/`).
fn run(cargo_fuzz: &Path, target: &Target, runs: u64) -> Result<Outcome, String> {
    let package = root().join(target.package);
    let corpus = root().join("target/fuzz/corpus").join(target.name);
    // A fresh working corpus each time: the runs do not depend on earlier ones.
    let _ = std::fs::remove_dir_all(&corpus);
    std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
    let seeds = package.join("seeds").join(target.name);
    println!("fuzz: {} ({}), {runs} inputs", target.name, target.package);
    let started = Instant::now();
    let out = fuzz_command(cargo_fuzz, target.package, "run")
        .arg(target.name)
        .arg(&corpus)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-runs={runs}"))
        // A hang is a finding too.
        .arg("-timeout=10")
        .output()
        .map_err(|e| format!("cargo-fuzz did not start: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "fuzz target {} failed ({}):\n{}",
            target.name,
            out.status,
            tail.join("\n")
        ));
    }
    // libFuzzer ends with `Done N runs in S second(s)`; the last status line has the
    // coverage (`cov: N ft: N corp: N/Nb`).
    let done = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("Done "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("?")
        .to_owned();
    let coverage = stderr
        .lines()
        .rev()
        .find(|l| l.contains(" cov: "))
        .and_then(|l| l.find("cov: ").map(|i| l[i..].to_owned()))
        .unwrap_or_default();
    Ok(Outcome {
        name: target.name,
        runs: done,
        seconds,
        coverage,
    })
}
