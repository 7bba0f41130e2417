//! Release builds for x86-64 Linux, linked by the toolchain's `rust-lld` (the default
//! since Rust 1.90), place the functions that start-up runs next to each other, in the
//! order of `startup-symbols.txt` (lld's `--symbol-ordering-file`). The kernel maps code
//! around each first touch 64 kB at a time, so start-up code spread over the whole
//! `.text` made most of it resident in an idle bridge; packed together it takes a few
//! windows. `cargo xtask startup-order` regenerates the list (see BENCHMARKS.md, "Idle
//! RSS"). A stale list only costs memory: names no longer in the binary are skipped.

use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=startup-symbols.txt");
    println!("cargo:rerun-if-env-changed=XRAY_BRIDGE_SYMBOL_ORDER");
    if ordering_applies() {
        let list = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap()).join("startup-symbols.txt");
        for arg in [
            format!("-Wl,--symbol-ordering-file={}", list.display()),
            "-Wl,--no-warn-symbol-ordering".to_owned(),
        ] {
            println!("cargo:rustc-link-arg-bin=xray-bridge={arg}");
        }
    }
}

/// Whether the binary is linked by `rust-lld` for a release: the target's default linker,
/// not replaced by a configured linker or `-C linker-features`, and not switched off with
/// `XRAY_BRIDGE_SYMBOL_ORDER=0`.
fn ordering_applies() -> bool {
    let var = |name: &str| env::var(name).unwrap_or_default();
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    var("TARGET") == "x86_64-unknown-linux-gnu"
        && var("PROFILE") == "release"
        && var("XRAY_BRIDGE_SYMBOL_ORDER") != "0"
        && env::var_os("RUSTC_LINKER").is_none()
        && !["linker", "fuse-ld"].iter().any(|f| flags.contains(f))
}
