//! The `xray-bridge` binary. See `xray-bridge --help`; exit codes are in
//! `xray_bridge::run::exit`.

use std::process::ExitCode;

use clap::Parser;
use xray_bridge::config::{Cli, Settings};
use xray_bridge::run::{self, exit};

fn main() -> ExitCode {
    // Before any other thread starts: one malloc arena per CPU this process may run on,
    // not glibc's eight per core, each keeping what a burst freed (the peak RSS under load).
    xray_bridge::memory::limit_malloc_arenas(
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let cli = Cli::parse();
    let check_only = cli.check_config;
    let settings = match Settings::resolve(cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("xray-bridge: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    if check_only {
        print!("{}", settings.describe());
        return ExitCode::SUCCESS;
    }
    let rotate_at = settings
        .log_rotation
        .then_some(xray_bridge::logging::ROTATE_BYTES);
    if let Err(e) = xray_bridge::logging::init_with_rotation(
        settings.log_level,
        settings.log_file.as_deref(),
        rotate_at,
    ) {
        eprintln!("xray-bridge: cannot open the log file: {e}");
        return ExitCode::from(exit::CONFIG);
    }
    // Translation runs on the blocking pool, at most MAX_CONCURRENT_BODIES requests at a
    // time: a few threads keep every core busy, where tokio's default (512) would add a
    // stack and a malloc arena per extra thread to the resident memory under load.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(4)
        .thread_name("xray-bridge")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::from(exit::START_FAILED);
        }
    };
    match runtime.block_on(run::run(settings)) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(e) => {
            tracing::error!("cannot start: {e}");
            eprintln!("xray-bridge: {e}");
            ExitCode::from(exit::START_FAILED)
        }
    }
}
