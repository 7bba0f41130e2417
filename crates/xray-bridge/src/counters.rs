//! The receivers' counters, registered by name and labels and rendered as Prometheus text.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// One monotonically increasing counter.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

struct Entry {
    name: &'static str,
    help: &'static str,
    labels: Vec<(&'static str, String)>,
    value: Counter,
}

/// All counters of the process, for `/metrics`.
#[derive(Clone, Default)]
pub struct Registry(Arc<Mutex<Vec<Entry>>>);

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// The counter `name{labels}`, created on first use (the same labels give the same
    /// counter).
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Counter {
        let mut entries = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let found = entries.iter().find(|e| {
            e.name == name
                && e.labels.len() == labels.len()
                && e.labels
                    .iter()
                    .zip(labels)
                    .all(|((k, v), (k2, v2))| k == k2 && v == v2)
        });
        if let Some(e) = found {
            return e.value.clone();
        }
        let value = Counter::default();
        entries.push(Entry {
            name,
            help,
            labels: labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
            value: value.clone(),
        });
        value
    }

    /// The value of `name{labels}`, when registered.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        let entries = self.0.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .find(|e| {
                e.name == name
                    && e.labels.len() == labels.len()
                    && e.labels
                        .iter()
                        .zip(labels)
                        .all(|((k, v), (k2, v2))| k == k2 && v == v2)
            })
            .map(|e| e.value.get())
    }

    /// The sum of `name` over all its labels.
    pub fn sum(&self, name: &str) -> u64 {
        let entries = self.0.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .filter(|e| e.name == name)
            .map(|e| e.value.get())
            .sum()
    }

    /// Appends every counter in the Prometheus text format, grouped by name.
    pub fn render(&self, out: &mut String) {
        let entries = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<&'static str> = Vec::new();
        for e in entries.iter() {
            if !names.contains(&e.name) {
                names.push(e.name);
            }
        }
        for name in names {
            let mut first = true;
            for e in entries.iter().filter(|e| e.name == name) {
                if first {
                    write_family(out, name, e.help, "counter");
                    first = false;
                }
                write_sample(out, name, &e.labels, e.value.get());
            }
        }
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a metric family.
pub fn write_family(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes one sample line, escaping label values.
pub fn write_sample<K: AsRef<str>, V: AsRef<str>>(
    out: &mut String,
    name: &str,
    labels: &[(K, V)],
    value: impl std::fmt::Display,
) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k.as_ref());
            out.push_str("=\"");
            for c in v.as_ref().chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// Keeps repeated warnings (one per bad datagram or request) from flooding the log.
pub use xray_export::log_limit::LogLimiter;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_grouped_with_escaped_labels() {
        let r = Registry::default();
        let a = r.counter("x_total", "Things.", &[("reason", "bad \"one\"")]);
        let b = r.counter("x_total", "Things.", &[("reason", "ok")]);
        let again = r.counter("x_total", "Things.", &[("reason", "ok")]);
        r.counter("y_total", "Other.", &[]).add(7);
        a.inc();
        b.add(2);
        again.inc();
        let mut out = String::new();
        r.render(&mut out);
        assert_eq!(
            out,
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total{reason=\"bad \\\"one\\\"\"} 1\nx_total{reason=\"ok\"} 3\n# HELP y_total Other.\n# TYPE y_total counter\ny_total 7\n"
        );
        assert_eq!(r.value("x_total", &[("reason", "ok")]), Some(3));
        assert_eq!(r.value("x_total", &[("reason", "none")]), None);
        assert_eq!(r.sum("x_total"), 4);
        assert_eq!(r.sum("nothing_total"), 0);
    }
}
