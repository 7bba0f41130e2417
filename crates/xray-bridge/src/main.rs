//! The `xray-bridge` binary. See `xray-bridge --help` and the `config` module.

use std::process::ExitCode;

use clap::Parser;
use xray_bridge::config::{Cli, Settings};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let check_only = cli.check_config;
    let settings = match Settings::resolve(cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("xray-bridge: {e}");
            return ExitCode::from(2);
        }
    };
    if check_only {
        println!("{settings:#?}");
        return ExitCode::SUCCESS;
    }
    eprintln!("xray-bridge: the export pipeline is not wired in this build yet");
    ExitCode::from(1)
}
