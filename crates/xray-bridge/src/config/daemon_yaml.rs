//! The X-Ray daemon's `cfg.yaml` (Version 1 and 2), read with the daemon's rules:
//! `Version` is required and must be 1 or 2; an empty string (and a `Concurrency` of 0)
//! means the default; a missing `TotalBufferSizeMB` is 0 (1 % of host memory); the
//! `ProxyServer.*` keys are read and checked but, as in the daemon (which replaces them
//! with its defaults), change nothing. Every other key is a setting's `yaml` key; any
//! other key is an error naming it and its line.

use super::file::{self, Entry};
use super::{Options, SETTINGS};

/// The versions of the file format the daemon accepts.
const VERSIONS: [u32; 2] = [1, 2];

/// Keys the daemon reads and then overrides with its own defaults.
const IGNORED_BY_THE_DAEMON: [&str; 3] = [
    "ProxyServer.IdleConnTimeout",
    "ProxyServer.MaxIdleConnsPerHost",
    "ProxyServer.MaxIdleConns",
];

/// Keys where 0 means "the default", as the daemon's `getIntValue` does.
const ZERO_IS_DEFAULT: [&str; 1] = ["Concurrency"];

/// The daemon's defaults where they differ from ours (key, value).
const DAEMON_DEFAULTS: [(&str, &str); 1] = [("TotalBufferSizeMB", "0")];

/// Reads a daemon config file into the options it sets.
pub(super) fn options(text: &str) -> Result<Options, String> {
    let entries = file::read_yaml(text)?;
    check_version(&entries)?;
    let mut options = Options::default();
    for (key, value) in DAEMON_DEFAULTS {
        if let Some(field) = setting_for(key) {
            options.set_text(field, value)?;
        }
    }
    for entry in entries.iter().filter(|e| e.key != "Version") {
        if IGNORED_BY_THE_DAEMON.contains(&entry.key.as_str()) {
            entry
                .text
                .trim()
                .parse::<u64>()
                .map_err(|_| at(entry, "is not a whole number"))?;
            continue;
        }
        if ZERO_IS_DEFAULT.contains(&entry.key.as_str()) && entry.text.trim() == "0" {
            continue;
        }
        let field = setting_for(&entry.key).ok_or_else(|| {
            format!(
                "line {}: unknown key `{}` (not a key of the X-Ray daemon's cfg.yaml)",
                entry.line, entry.key
            )
        })?;
        options.set_entry(field, entry)?;
    }
    Ok(options)
}

fn setting_for(key: &str) -> Option<&'static str> {
    SETTINGS
        .iter()
        .find(|s| s.yaml == Some(key))
        .map(|s| s.field)
}

fn at(entry: &Entry, what: &str) -> String {
    format!(
        "line {}: key `{}`: `{}` {what}",
        entry.line, entry.key, entry.text
    )
}

fn check_version(entries: &[Entry]) -> Result<(), String> {
    let version = entries.iter().find(|e| e.key == "Version").ok_or(
        "key `Version` is missing: a daemon cfg.yaml needs `Version: 2` (or 1), as the daemon requires",
    )?;
    match version.text.trim().parse::<u32>() {
        Ok(v) if VERSIONS.contains(&v) => Ok(()),
        _ => Err(at(version, "is not a supported version (1 or 2)")),
    }
}
