//! The bridge's own logs: `tracing` to standard error, never exported as spans (no
//! OpenTelemetry layer is installed, and the export worker suppresses telemetry).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogLevel;

/// Installs the subscriber, writing to `file` (appended) or standard error. `RUST_LOG`,
/// when set, overrides the level with `target=level` directives (`warn,xray_export=debug`,
/// tracing-subscriber's [`Targets`] syntax: no regular expressions, no span or field
/// filters, so filtering stays cheap and its code is never loaded); otherwise the level
/// applies to the bridge's crates and libraries log warnings and errors only. A `RUST_LOG`
/// that does not parse is reported and `level` applies.
///
/// # Errors
///
/// The I/O error when the log file cannot be opened.
pub fn init(level: LogLevel, file: Option<&Path>) -> std::io::Result<()> {
    init_with_rotation(level, file, None)
}

/// Where the log file rotates (the X-Ray daemon's `LogRotation`): at 50 MB.
pub const ROTATE_BYTES: u64 = 50 * 1000 * 1000;
/// Old log files kept (`FILE.1` newest to `FILE.5` oldest).
pub const ROTATED_FILES: u32 = 5;

/// [`init`], rotating the file at `rotate_at` bytes when given.
///
/// # Errors
///
/// The I/O error when the log file cannot be opened.
pub fn init_with_rotation(
    level: LogLevel,
    file: Option<&Path>,
    rotate_at: Option<u64>,
) -> std::io::Result<()> {
    let (filter, bad_rust_log) = filter(level, std::env::var("RUST_LOG").ok().as_deref());
    let fmt = tracing_subscriber::fmt::layer().with_ansi(false);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match file {
        None => registry.with(fmt.with_writer(std::io::stderr)).try_init(),
        Some(path) => {
            let file = RotatingFile::open(path, rotate_at.unwrap_or(u64::MAX))?;
            registry.with(fmt.with_writer(Mutex::new(file))).try_init()
        }
    };
    if let Some(error) = bad_rust_log {
        tracing::warn!("RUST_LOG ignored ({error}); logging at --log-level");
    }
    Ok(())
}

/// The filter for `RUST_LOG` (when set and not blank) or else `level`, with the parse
/// error of a `RUST_LOG` that was not taken.
fn filter(level: LogLevel, rust_log: Option<&str>) -> (Targets, Option<String>) {
    let from_level = || {
        directives(level)
            .parse()
            .expect("the level's directives parse")
    };
    match rust_log.map(str::trim).filter(|d| !d.is_empty()) {
        None => (from_level(), None),
        Some(directives) => match directives.parse::<Targets>() {
            Ok(targets) => (targets, None),
            Err(e) => (from_level(), Some(format!("`{directives}`: {e}"))),
        },
    }
}

/// A log file appended to, moved to `FILE.1` (and older ones one step on, up to
/// [`ROTATED_FILES`]) when it would grow past its limit.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    limit: u64,
}

impl RotatingFile {
    /// Opens (appends to) `path`, rotating at `limit` bytes.
    ///
    /// # Errors
    ///
    /// The I/O error when the file cannot be opened for appending or created.
    pub fn open(path: &Path, limit: u64) -> std::io::Result<RotatingFile> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_owned(),
            file,
            size,
            limit,
        })
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        for n in (1..ROTATED_FILES).rev() {
            let from = self.rotated(n);
            if from.exists() {
                std::fs::rename(&from, self.rotated(n + 1))?;
            }
        }
        std::fs::rename(&self.path, self.rotated(1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.size > 0 && self.size + buf.len() as u64 > self.limit {
            // A failed rotation keeps logging into the current file.
            let _ = self.rotate();
        }
        let n = self.file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn rust_log_directives_override_the_level_and_bad_ones_are_reported() {
        let (targets, bad) = filter(LogLevel::Info, None);
        assert!(bad.is_none());
        assert!(targets.would_enable("xray_export::worker", &Level::INFO));
        assert!(!targets.would_enable("hyper::proto", &Level::INFO));
        assert!(targets.would_enable("hyper::proto", &Level::WARN));

        let (targets, bad) = filter(LogLevel::Info, Some(" error,hyper=debug "));
        assert!(bad.is_none());
        assert!(targets.would_enable("hyper::proto", &Level::DEBUG));
        assert!(!targets.would_enable("xray_export::worker", &Level::WARN));

        let (targets, bad) = filter(LogLevel::Warn, Some("xray_export=loud"));
        assert!(bad.unwrap().contains("`xray_export=loud`"));
        assert!(targets.would_enable("xray_export", &Level::WARN));
        assert!(!targets.would_enable("xray_export", &Level::INFO));

        let (_, bad) = filter(LogLevel::Off, Some("   "));
        assert!(bad.is_none(), "a blank RUST_LOG is no RUST_LOG");
    }

    #[test]
    fn the_file_rotates_at_its_limit_and_keeps_five() {
        let dir = std::env::temp_dir().join(format!("xray-bridge-rotate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bridge.log");
        let mut file = RotatingFile::open(&path, 100).unwrap();
        let line = [b'x'; 60];
        for _ in 0..10 {
            file.write_all(&line).unwrap();
        }
        // 10 lines of 60 bytes, at most one per 100-byte file: the current one and 5 old.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 60);
        for n in 1..=ROTATED_FILES {
            assert_eq!(std::fs::metadata(file.rotated(n)).unwrap().len(), 60, "{n}");
        }
        assert!(!file.rotated(ROTATED_FILES + 1).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
