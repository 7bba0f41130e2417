//! The bridge's own logs: `tracing` to standard error, never exported as spans (no
//! OpenTelemetry layer is installed, and the export worker suppresses telemetry).

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

use crate::config::LogLevel;

/// Installs the subscriber, writing to `file` (appended) or standard error. `RUST_LOG`,
/// when set, overrides the level; otherwise the level applies to the bridge's crates and
/// libraries log warnings and errors only.
///
/// # Errors
///
/// The I/O error when the log file cannot be opened.
pub fn init(level: LogLevel, file: Option<&Path>) -> std::io::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::new(directives),
        _ => EnvFilter::new(directives(level)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    let _ = match file {
        None => builder.with_writer(std::io::stderr).try_init(),
        Some(path) => {
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            builder.with_writer(Mutex::new(file)).try_init()
        }
    };
    Ok(())
}

/// The filter for `level`.
pub fn directives(level: LogLevel) -> String {
    let l = level.as_filter();
    match level {
        LogLevel::Trace | LogLevel::Debug | LogLevel::Info => {
            format!("warn,xray_bridge={l},xray_export={l},xray_translate={l},xray_model={l}")
        }
        _ => l.to_owned(),
    }
}
