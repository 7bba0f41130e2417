//! The bridge's own logs: `tracing` to standard error, never exported as spans (no
//! OpenTelemetry layer is installed, and the export worker suppresses telemetry).

use tracing_subscriber::EnvFilter;

use crate::config::LogLevel;

/// Installs the subscriber. `RUST_LOG`, when set, overrides the level; otherwise the
/// level applies to the bridge's crates and libraries log warnings and errors only.
pub fn init(level: LogLevel) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::new(directives),
        _ => EnvFilter::new(directives(level)),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
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
