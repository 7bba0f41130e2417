//! The workspace's own tasks, run as `cargo xtask <task>` (an alias in `.cargo/config.toml`).
//!
//! - `test [ARGS]`: installs the real peers the tests talk to (the Python packages of
//!   `tests/requirements.txt` into `target/peers-venv`, once; Debian's Chromium and
//!   `openssl` when missing and this user can install them), then runs `cargo test --workspace
//!   --all-features [ARGS]` with that virtual environment.
//! - `peers`: only the installing part.
//! - `name-chars [--check]`: writes `crates/xray-model/src/name_chars.rs` from the `name`
//!   pattern of the published segment schema (`--check`: fails if the file differs).
//! - `msrv`: fails when a dependency in `Cargo.lock` needs a newer Rust than our
//!   `rust-version` (clippy's `incompatible_msrv` lint checks our own code against it).
//! - `publish-check`: `cargo publish --workspace --dry-run` (every publishable crate is
//!   packaged and built from its package, against the others' packages).
//! - `dist`: `cargo build --release -p xray-bridge`, then the binary to ship in
//!   `target/dist/`: `xray-bridge` stripped of symbols and debug info, with a
//!   `.gnu_debuglink` to `xray-bridge.debug`, which holds them (`objcopy`, binutils), so
//!   `perf report` and `addr2line` still resolve functions and lines.
//!   It also reports how many of the functions `startup-symbols.txt` lists the binary has.
//! - `startup-order`: profiles the release binary's start-up under valgrind and writes
//!   `crates/xray-bridge/startup-symbols.txt`, the functions the link places together so
//!   that an idle bridge maps little code (see `startup_order.rs`).
//! - `fuzz [--quick | --runs N] [TARGET...]`: the cargo-fuzz targets on the stable
//!   toolchain, each for a bounded number of inputs (see `fuzz.rs`).

mod fuzz;
mod startup_order;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use xray_testkit::peers;

const USAGE: &str = "usage: cargo xtask <test [ARGS]|peers|name-chars [--check]|msrv|publish-check|dist|startup-order|fuzz [--quick|--runs N] [TARGET...]>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => provision().and_then(|python| test(&python, &args[1..])),
        Some("peers") => provision().map(|_| ()),
        Some("name-chars") => name_chars(args.get(1).is_some_and(|a| a == "--check")),
        Some("msrv") => msrv(),
        Some("publish-check") => publish_check(),
        Some("dist") => dist(),
        Some("startup-order") => startup_order::startup_order(),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    xray_testkit::workspace_root()
}

/// Both kinds of peer; returns the virtual environment's interpreter.
fn provision() -> Result<PathBuf, String> {
    let python = peers::provision_python()?;
    peers::provision_debian_tools()?;
    Ok(python)
}

fn test(python: &Path, args: &[String]) -> Result<(), String> {
    let mut cmd = cargo_command();
    cmd.args(["test", "--workspace", "--all-features"])
        .args(args)
        .env("XRAY_BRIDGE_PYTHON", python);
    status(&mut cmd)
}

fn cargo_command() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Packages every publishable crate and builds each from its package. The packages'
/// builds do not read the workspace's profiles, so debug info is turned off here (it
/// would cost gigabytes of disk and minutes of linking for a build nobody runs).
fn publish_check() -> Result<(), String> {
    forget_packaged_sources();
    status(
        cargo_command()
            .args(["publish", "--workspace", "--dry-run", "--locked"])
            .env("CARGO_PROFILE_DEV_DEBUG", "false"),
    )
}

/// Removes the sources of our own crates that an earlier dry run left unpacked under
/// `$CARGO_HOME/registry/src/-<hash>/`: cargo serves the packages from a local registry
/// (whose folder name starts with `-`, its hash taken from the target path) and does not
/// unpack a crate again whose folder exists, so a second run from the same checkout path
/// would build the first run's sources.
fn forget_packaged_sources() {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let Some(src) = home.map(|h| h.join("registry/src")) else {
        return;
    };
    let Ok(registries) = std::fs::read_dir(&src) else {
        return;
    };
    for registry in registries.flatten() {
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        for unpacked in std::fs::read_dir(registry.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = unpacked.file_name().to_string_lossy().into_owned();
            if name.starts_with("xray-") || name.starts_with("tracing-xray-") {
                let _ = std::fs::remove_dir_all(unpacked.path());
            }
        }
    }
}

/// Builds the release binary and splits it into the stripped binary to ship and its debug
/// file, both in `target/dist/`.
fn dist() -> Result<(), String> {
    let built = build_release()?;
    let dir = target_dir().join("dist");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (bin, debug) = (dir.join("xray-bridge"), dir.join("xray-bridge.debug"));
    status(
        Command::new("objcopy")
            .arg("--only-keep-debug")
            .arg(&built)
            .arg(&debug),
    )?;
    // The link holds the debug file's name and CRC; debuggers, perf and addr2line look
    // for it next to the binary, in its `.debug/` folder, or under /usr/lib/debug.
    status(
        Command::new("objcopy")
            .arg("--strip-all")
            .arg(format!("--add-gnu-debuglink={}", debug.display()))
            .arg(&built)
            .arg(&bin),
    )?;
    for path in [&built, &bin, &debug] {
        let len = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        println!(
            "{:>8.1} MB ({:>10} bytes)  {}",
            len.len() as f64 / 1e6,
            len.len(),
            path.display()
        );
    }
    match startup_order::coverage(&built) {
        Some((found, listed)) if found * 10 < listed * 9 => eprintln!(
            "warning: the binary has only {found} of the {listed} functions in {}: \
             run `cargo xtask startup-order` to list them again",
            startup_order::LIST
        ),
        Some((found, listed)) => println!("start-up order: {found} of {listed} functions found"),
        None => eprintln!("warning: no start-up order checked (no list, or no `nm`)"),
    }
    Ok(())
}

/// `cargo build --release` of the binary; returns its path.
fn build_release() -> Result<PathBuf, String> {
    status(cargo_command().args([
        "build",
        "--release",
        "--locked",
        "-p",
        "xray-bridge",
        "--bin",
        "xray-bridge",
    ]))?;
    Ok(target_dir().join("release/xray-bridge"))
}

/// Cargo's target directory (`CARGO_TARGET_DIR`, else `target/` in the workspace).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn status(cmd: &mut Command) -> Result<(), String> {
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{cmd:?} failed: {s}")),
        Err(e) => Err(format!("{cmd:?} did not start: {e}")),
    }
}

const SCHEMA: &str = "crates/xray-model/schema/xray-segmentdocument-schema-v1.0.0.json";
const NAME_CHARS: &str = "crates/xray-model/src/name_chars.rs";

/// The Basic Multilingual Plane's characters the schema's `name` pattern accepts, as
/// sorted, merged, inclusive ranges (surrogates, which are no characters, end a range).
fn name_char_ranges() -> Result<Vec<(u32, u32)>, String> {
    let text = std::fs::read_to_string(root().join(SCHEMA)).map_err(|e| e.to_string())?;
    let schema: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let pattern = schema["properties"]["name"]["pattern"]
        .as_str()
        .ok_or("the schema has no properties.name.pattern")?;
    let re = regex::Regex::new(pattern).map_err(|e| format!("the name pattern: {e}"))?;
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    let mut buf = [0u8; 4];
    for c in (0..=0xFFFF).filter_map(char::from_u32) {
        if !re.is_match(c.encode_utf8(&mut buf)) {
            continue;
        }
        let cp = c as u32;
        match ranges.last_mut() {
            Some((_, hi)) if *hi + 1 == cp => *hi = cp,
            _ => ranges.push((cp, cp)),
        }
    }
    Ok(ranges)
}

fn name_chars(check: bool) -> Result<(), String> {
    let mut text = String::from(
        "//! Generated from the `name` pattern of the published segment-document schema\n\
         //! (`schema/xray-segmentdocument-schema-v1.0.0.json`) by `cargo xtask name-chars`:\n\
         //! the characters X-Ray accepts in a segment name, as sorted, merged, inclusive\n\
         //! code-point ranges. Do not edit by hand.\n\n\
         /// Inclusive code-point ranges allowed in a segment name.\n\
         pub(crate) const NAME_CHAR_RANGES: &[(u32, u32)] = &[\n",
    );
    for (lo, hi) in name_char_ranges()? {
        text.push_str(&format!("    (0x{lo:04X}, 0x{hi:04X}),\n"));
    }
    text.push_str("];\n");
    let path = root().join(NAME_CHARS);
    if check {
        let current = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        if current != text {
            return Err(format!(
                "{NAME_CHARS} is stale: run `cargo xtask name-chars`"
            ));
        }
        return Ok(());
    }
    std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

/// `1.94` or `1.94.0` as comparable numbers.
fn version(v: &str) -> Vec<u64> {
    let mut parts: Vec<u64> = v.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    parts.resize(3, 0);
    parts
}

fn msrv() -> Result<(), String> {
    let out = cargo_command()
        .args(["metadata", "--format-version", "1", "--locked"])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str())
        .collect();
    let packages = meta["packages"].as_array().ok_or("no packages")?;
    let ours = packages
        .iter()
        .find(|p| members.contains(&p["id"].as_str().unwrap_or_default()))
        .and_then(|p| p["rust_version"].as_str())
        .ok_or("the workspace sets no rust-version")?;
    let too_new: Vec<String> = packages
        .iter()
        .filter_map(|p| {
            let needs = p["rust_version"].as_str()?;
            (version(needs) > version(ours))
                .then(|| format!("{} {} needs {needs}", p["name"], p["version"]))
        })
        .collect();
    if too_new.is_empty() {
        println!("msrv: every dependency builds with Rust {ours}");
        Ok(())
    } else {
        Err(format!(
            "dependencies newer than rust-version {ours}: {}",
            too_new.join(", ")
        ))
    }
}
