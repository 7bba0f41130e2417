//! The seed demo: frontend -> BFF -> backend1, backend2 (each writing to DynamoDB), traced
//! with tracing-xray, into xray-bridge's local mode. No AWS account needed:
//!
//! ```sh
//! cargo run -p xray-bridge-examples --example seed            # moto + local console, summary, exit
//! cargo run -p xray-bridge-examples --example seed -- --serve # ...and keep the console up
//! AWS_REGION=eu-west-1 cargo run -p xray-bridge-examples --example seed -- --aws   # real AWS
//! ```
//!
//! Flags: `--requests N` (40), `--concurrency N` (4), `--faults LIST` (`all`; or
//! `slow,flaky,client-errors`, `none`), `--serve`, `--aws`, `--console ADDR`
//! (127.0.0.1:2020), `--store PATH`, `--export KIND` (the bridge's, e.g. `file:PATH`).
//! Needs `python3 -m moto.server` (`pip install 'moto[server]'`) unless `--aws`.
//! `GET /health` is left out of sampling by `examples/sampling-rules.json`.

use std::process::ExitCode;

mod demo;
mod roles;
mod services;

fn parse(mut args: impl Iterator<Item = String>) -> Result<demo::Options, String> {
    let mut o = demo::Options::default();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--requests" => {
                o.requests = value()?.parse().map_err(|e| format!("--requests: {e}"))?
            }
            "--concurrency" => {
                o.concurrency = value()?
                    .parse()
                    .map_err(|e| format!("--concurrency: {e}"))?
            }
            "--faults" => o.faults = services::Faults::parse(&value()?)?,
            "--serve" => o.serve = true,
            "--aws" => o.aws = true,
            "--console" => o.console = value()?,
            "--store" => o.store = value()?.into(),
            "--export" => o.export = Some(value()?),
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown flag `{other}`")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    if let Some(code) = roles::run_if_asked() {
        return code;
    }
    let options = match parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "{e}\nusage: seed [--requests N] [--concurrency N] [--faults all|none|slow,flaky,client-errors] [--serve] [--aws] [--console ADDR] [--store PATH] [--export KIND]"
            );
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let (aws, serve) = (options.aws, options.serve);
    let store = options.store.clone();
    match runtime.block_on(demo::run(options)) {
        Ok(report) => {
            if !serve {
                // With --serve it was printed before waiting.
                demo::print_summary(&report);
            }
            if let Some(url) = &report.console_url {
                println!("local console: {url}");
                println!(
                    "it stopped with the demo; see these traces again with: cargo run -p xray-bridge -- --export local --store {}",
                    store.display()
                );
            }
            if aws {
                let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
                println!(
                    "X-Ray (may take a minute): https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#xray:service-map/map"
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("seed: {e}");
            ExitCode::FAILURE
        }
    }
}
