//! Config files: our TOML (keys = long flag names) and the X-Ray daemon's `cfg.yaml`,
//! read into `key, line, text` entries so that every error names the key and its line.

use std::path::Path;

/// The two config-file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// xray-bridge's TOML, keyed by the long flag names.
    Toml,
    /// The X-Ray daemon's `cfg.yaml` (Version 1 or 2).
    DaemonYaml,
}

impl Format {
    /// The format by extension (`.yaml`/`.yml`, `.toml`), else by content: a file whose
    /// first setting line is `Key: value` is YAML, `key = value` is TOML.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::path::Path;
    /// use xray_bridge::config::Format;
    /// assert_eq!(Format::detect(Path::new("cfg"), "Version: 2\n"), Format::DaemonYaml);
    /// assert_eq!(Format::detect(Path::new("bridge.conf"), "udp = \"off\"\n"), Format::Toml);
    /// ```
    pub fn detect(path: &Path, text: &str) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => return Format::DaemonYaml,
            Some("toml") => return Format::Toml,
            _ => {}
        }
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#') && l != &"---");
        match first {
            Some(line) if line == "---" || yaml_key_line(line) => Format::DaemonYaml,
            _ => Format::Toml,
        }
    }
}

/// `Key:` or `Key: value` (a YAML mapping entry), not `key = value`.
fn yaml_key_line(line: &str) -> bool {
    match (line.find(':'), line.find('=')) {
        (Some(colon), None) => line[..colon]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'),
        (Some(colon), Some(eq)) => colon < eq && !line[..colon].contains(' '),
        _ => false,
    }
}

/// One value from a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    /// The key as written (`Socket.UDPAddress` for a nested daemon key).
    pub key: String,
    /// The 1-based line of the key.
    pub line: usize,
    /// The value as text (lists joined with `,`); empty for an empty string.
    pub text: String,
}

fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// Reads TOML: one entry per top-level key.
pub(super) fn read_toml(text: &str) -> Result<Vec<Entry>, String> {
    let table: std::collections::BTreeMap<String, toml::Spanned<toml::Value>> =
        toml::from_str(text).map_err(|e| e.to_string().trim().to_owned())?;
    let mut entries = Vec::with_capacity(table.len());
    for (key, value) in table {
        let line = line_at(text, value.span().start);
        let text =
            toml_text(value.get_ref()).map_err(|e| format!("line {line}: key `{key}`: {e}"))?;
        entries.push(Entry { key, line, text });
    }
    entries.sort_by_key(|e| e.line);
    Ok(entries)
}

fn toml_text(value: &toml::Value) -> Result<String, String> {
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(toml_text)
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
        toml::Value::Table(_) => return Err("a table is not a setting value".to_owned()),
    })
}

/// Reads the daemon's YAML: one entry per key, nested keys joined with `.`.
pub(super) fn read_yaml(text: &str) -> Result<Vec<Entry>, String> {
    use serde_yaml_ng::Value;
    let root: Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    let map = match root {
        Value::Mapping(m) => m,
        Value::Null => return Ok(Vec::new()),
        _ => return Err("line 1: the file is not a mapping of keys".to_owned()),
    };
    let mut entries = Vec::new();
    for (key, value) in map {
        let key = yaml_key(&key)?;
        match value {
            Value::Mapping(inner) => {
                for (sub, value) in inner {
                    let path = format!("{key}.{}", yaml_key(&sub)?);
                    let line = find_line(text, &path);
                    let text =
                        yaml_text(&value).map_err(|e| format!("line {line}: key `{path}`: {e}"))?;
                    entries.push(Entry {
                        key: path,
                        line,
                        text,
                    });
                }
            }
            value => {
                let line = find_line(text, &key);
                let text =
                    yaml_text(&value).map_err(|e| format!("line {line}: key `{key}`: {e}"))?;
                entries.push(Entry { key, line, text });
            }
        }
    }
    entries.sort_by_key(|e| e.line);
    Ok(entries)
}

fn yaml_key(key: &serde_yaml_ng::Value) -> Result<String, String> {
    match key {
        serde_yaml_ng::Value::String(s) => Ok(s.clone()),
        other => Err(format!("`{other:?}` is not a key name")),
    }
}

fn yaml_text(value: &serde_yaml_ng::Value) -> Result<String, String> {
    use serde_yaml_ng::Value;
    Ok(match value {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Sequence(items) => items
            .iter()
            .map(yaml_text)
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
        Value::Mapping(_) => return Err("a nested mapping is not a setting value".to_owned()),
        Value::Tagged(t) => yaml_text(&t.value)?,
    })
}

/// The line of `Parent.Key` (or `Key`) in block-style YAML; the parent's line (or 1)
/// when it cannot be told.
fn find_line(text: &str, path: &str) -> usize {
    let (parent, key) = match path.split_once('.') {
        Some((p, k)) => (Some(p), k),
        None => (None, path),
    };
    let is_key = |line: &str, name: &str| {
        line.strip_prefix(name)
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    };
    let mut in_parent = false;
    let mut parent_line = 1;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let top = trimmed.len() == raw.len();
        match parent {
            None if top && is_key(trimmed, key) => return i + 1,
            None => {}
            Some(p) if top => {
                in_parent = is_key(trimmed, p);
                if in_parent {
                    parent_line = i + 1;
                }
            }
            Some(_) if in_parent && is_key(trimmed, key) => return i + 1,
            Some(_) => {}
        }
    }
    parent_line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_by_extension_then_content() {
        let p = Path::new;
        assert_eq!(Format::detect(p("a.yaml"), "x = 1"), Format::DaemonYaml);
        assert_eq!(Format::detect(p("a.toml"), "A: 1"), Format::Toml);
        assert_eq!(
            Format::detect(p("cfg"), "# c\nVersion: 2\n"),
            Format::DaemonYaml
        );
        assert_eq!(Format::detect(p("cfg"), "udp = \"a:1\"\n"), Format::Toml);
        assert_eq!(
            Format::detect(p("cfg"), "endpoint-url = \"http://a:1\"\n"),
            Format::Toml
        );
        assert_eq!(
            Format::detect(p("cfg"), "Endpoint: \"http://a:1\"\n"),
            Format::DaemonYaml
        );
    }

    #[test]
    fn entries_carry_their_lines() {
        let toml =
            read_toml("# c\nudp = \"off\"\n\nbuffer-memory = 4\nlist = [\"a\", \"b\"]\n").unwrap();
        assert_eq!(
            toml,
            vec![
                Entry {
                    key: "udp".into(),
                    line: 2,
                    text: "off".into()
                },
                Entry {
                    key: "buffer-memory".into(),
                    line: 4,
                    text: "4".into()
                },
                Entry {
                    key: "list".into(),
                    line: 5,
                    text: "a,b".into()
                },
            ]
        );
        let yaml =
            read_yaml("Region: \"\"\nSocket:\n  # x\n  UDPAddress: \"127.0.0.1:1\"\nVersion: 2\n")
                .unwrap();
        let lines: Vec<_> = yaml.iter().map(|e| (e.key.as_str(), e.line)).collect();
        assert_eq!(
            lines,
            [("Region", 1), ("Socket.UDPAddress", 4), ("Version", 5)]
        );
        let err = read_yaml("Region: [\n").unwrap_err();
        assert!(err.contains("line"), "{err}");
    }
}
