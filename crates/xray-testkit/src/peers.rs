//! The real peers the tests talk to, and provisioning them: the Python packages of
//! `tests/requirements.txt` in a virtual environment under `target/`, and Debian's
//! Chromium for the console's browser test and `openssl` for the self-signed TLS server
//! of the `--no-verify-ssl` test.
//!
//! `cargo xtask test` provisions both, then runs the workspace tests; the seed demo
//! provisions the Python peers when moto is missing. Everything else only looks them up.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The command that installs the peers and runs the tests, named in every "missing" message.
pub const TEST_COMMAND: &str = "cargo xtask test";

/// The requirements file, relative to the workspace root.
pub const REQUIREMENTS: &str = "tests/requirements.txt";

/// The Chromium binary the browser test drives (`CHROMIUM` overrides).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The chromedriver binary the browser test starts (`CHROMEDRIVER` overrides).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The build's target folder: `CARGO_TARGET_DIR` (relative to the workspace root when
/// relative), else `target/` in the workspace root.
pub fn target_dir() -> PathBuf {
    let root = crate::workspace_root();
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// The peers' virtual environment: `target/peers-venv`.
pub fn venv_dir() -> PathBuf {
    target_dir().join("peers-venv")
}

/// The virtual environment's interpreter (whether or not it exists yet).
pub fn venv_python() -> PathBuf {
    venv_dir().join("bin").join("python")
}

/// Creates the virtual environment once and installs `tests/requirements.txt` into it
/// whenever the file changed since the last install. Returns the interpreter.
///
/// # Errors
///
/// When no Python 3 can create a virtual environment, or pip fails; the message says
/// which command failed.
pub fn provision_python() -> Result<PathBuf, String> {
    let venv = venv_dir();
    let python = venv_python();
    if !python.exists() {
        eprintln!("peers: creating {}", venv.display());
        let base = std::env::var("XRAY_BRIDGE_BASE_PYTHON").unwrap_or_else(|_| "python3".into());
        let create = || run(Command::new(&base).args(["-m", "venv"]).arg(&venv));
        if create().is_err() {
            // Debian's own python3 ships venv separately.
            install_debian_packages(&["python3-venv"])?;
            create()?;
        }
    }
    let requirements_path = crate::workspace_root().join(REQUIREMENTS);
    let requirements = std::fs::read(&requirements_path)
        .map_err(|e| format!("read {}: {e}", requirements_path.display()))?;
    let stamp = venv.join("installed-requirements.txt");
    if std::fs::read(&stamp).ok().as_deref() != Some(&requirements[..]) {
        eprintln!("peers: installing {REQUIREMENTS} into {}", venv.display());
        run(Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements_path))?;
        std::fs::write(&stamp, &requirements)
            .map_err(|e| format!("write {}: {e}", stamp.display()))?;
    }
    Ok(python)
}

/// Whether Chromium and chromedriver are where the browser test looks for them.
pub fn chromium_present() -> bool {
    let found = |var: &str, default: &str| {
        Path::new(&std::env::var(var).unwrap_or_else(|_| default.to_owned())).exists()
    };
    found("CHROMIUM", CHROMIUM) && found("CHROMEDRIVER", CHROMEDRIVER)
}

/// Installs Debian's `chromium` and `chromium-driver` unless they are present, and
/// `openssl` unless it is on the `PATH`.
///
/// # Errors
///
/// When something is missing and this user can run neither `apt-get` as root nor `sudo -n`.
pub fn provision_debian_tools() -> Result<(), String> {
    let mut missing = Vec::new();
    if !chromium_present() {
        missing.extend(["chromium", "chromium-driver"]);
    }
    let has_openssl = Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_openssl {
        missing.push("openssl");
    }
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("peers: installing Debian's {}", missing.join(", "));
    install_debian_packages(&missing)
}

/// `apt-get install` as root, directly or through password-less `sudo`.
fn install_debian_packages(packages: &[&str]) -> Result<(), String> {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let sudo = !is_root
        && Command::new("sudo")
            .args(["-n", "true"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !is_root && !sudo {
        return Err(format!(
            "{} missing and this user cannot install it: run `apt-get install {}` as root",
            packages.join(" and "),
            packages.join(" ")
        ));
    }
    let apt = |args: &[&str]| {
        let mut cmd = if sudo {
            let mut c = Command::new("sudo");
            c.args(["-n", "apt-get"]);
            c
        } else {
            Command::new("apt-get")
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut cmd)
    };
    apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install.extend_from_slice(packages);
    apt(&install)
}

/// Runs a command to completion; `Err` names it and its exit status.
fn run(cmd: &mut Command) -> Result<(), String> {
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{cmd:?} failed: {s}")),
        Err(e) => Err(format!("{cmd:?} did not start: {e}")),
    }
}
