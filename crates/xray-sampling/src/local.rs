//! Local sampling rules in the X-Ray SDKs' file format, versions 1 and 2.
//!
//! ```json
//! { "version": 2,
//!   "rules": [{ "description": "Player moves.", "host": "*", "http_method": "*",
//!               "url_path": "/api/move/*", "fixed_target": 0, "rate": 0.05 }],
//!   "default": { "fixed_target": 1, "rate": 0.1 } }
//! ```
//!
//! Version 1 names the host field `service_name`. Rules apply in the order written; the
//! `default` rule catches the rest.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::Error;
use crate::reservoir::Reservoir;
use crate::rule::{DEFAULT_RULE_NAME, Matchers, Rule, RuleSet, RuleState};

/// One local rule: requests matching `host`, `http_method` and `url_path` get up to
/// `fixed_target` traces per second, then `rate` of the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalRule {
    /// The rule's description (also the rule name the sampler records).
    pub description: Option<String>,
    /// Host pattern (`service_name` in version 1 files).
    pub host: String,
    /// HTTP method pattern.
    pub http_method: String,
    /// URL path pattern.
    pub url_path: String,
    /// Traces per second taken before the rate applies.
    pub fixed_target: u64,
    /// Fraction of further requests sampled.
    pub rate: f64,
}

/// A local rule set: rules in order plus a default. `LocalRules::default()` is the SDKs'
/// built-in default, one trace per second plus 5 % of the rest.
///
/// # Examples
///
/// ```
/// use xray_sampling::LocalRules;
/// let rules = LocalRules::from_json(r#"{"version": 2,
///     "rules": [{"host": "*", "http_method": "GET", "url_path": "/health",
///                "fixed_target": 0, "rate": 0}],
///     "default": {"fixed_target": 1, "rate": 0.05}}"#).unwrap();
/// assert_eq!(rules.rules().len(), 1);
/// assert_eq!(rules.default_target(), (1, 0.05));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LocalRules {
    rules: Vec<LocalRule>,
    default_fixed_target: u64,
    default_rate: f64,
}

impl Default for LocalRules {
    fn default() -> Self {
        LocalRules {
            rules: Vec::new(),
            default_fixed_target: 1,
            default_rate: 0.05,
        }
    }
}

#[derive(Deserialize)]
struct FileDoc {
    version: Option<serde_json::Value>,
    #[serde(default)]
    rules: Vec<RawRule>,
    default: Option<RawRule>,
}

#[derive(Deserialize)]
struct RawRule {
    description: Option<String>,
    host: Option<String>,
    service_name: Option<String>,
    http_method: Option<String>,
    url_path: Option<String>,
    fixed_target: Option<serde_json::Value>,
    rate: Option<serde_json::Value>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidRules(message.into())
}

impl LocalRules {
    /// Parses a rule file's text; a file the SDKs would reject is an error here too.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRules`] for text that is not a version 1 or 2 rule file, a missing
    /// or over-specified default rule, a rule without its host (`service_name` in version
    /// 1), `http_method` or `url_path`, or a bad `fixed_target` or `rate`.
    ///
    /// # Examples
    ///
    /// ```
    /// use xray_sampling::LocalRules;
    ///
    /// let rules = LocalRules::from_json(
    ///     r#"{"version": 2, "rules": [], "default": {"fixed_target": 1, "rate": 0.1}}"#,
    /// )
    /// .unwrap();
    /// # drop(rules);
    /// assert!(LocalRules::from_json(r#"{"version": 2, "rules": []}"#).is_err());
    /// ```
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let doc: FileDoc =
            serde_json::from_str(text).map_err(|e| invalid(format!("not a rule file: {e}")))?;
        let version = doc.version.as_ref().and_then(serde_json::Value::as_u64);
        let v1 = match version {
            Some(1) => true,
            Some(2) => false,
            _ => return Err(invalid(format!("version {:?} is not 1 or 2", doc.version))),
        };
        let default = doc
            .default
            .ok_or_else(|| invalid("a default rule is required"))?;
        let host_of = |r: &RawRule| {
            if v1 {
                r.service_name.clone()
            } else {
                r.host.clone()
            }
        };
        if host_of(&default).is_some()
            || default.http_method.is_some()
            || default.url_path.is_some()
        {
            return Err(invalid(
                "the default rule must not set host, service_name, http_method or url_path",
            ));
        }
        let (default_fixed_target, default_rate) = targets(&default, "default")?;
        let rules = doc
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let label = format!("rule {}", i + 1);
                let (fixed_target, rate) = targets(r, &label)?;
                let need = |v: Option<String>, what: &str| {
                    v.ok_or_else(|| invalid(format!("{label} has no {what}")))
                };
                Ok(LocalRule {
                    description: r.description.clone(),
                    host: need(host_of(r), if v1 { "service_name" } else { "host" })?,
                    http_method: need(r.http_method.clone(), "http_method")?,
                    url_path: need(r.url_path.clone(), "url_path")?,
                    fixed_target,
                    rate,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(LocalRules {
            rules,
            default_fixed_target,
            default_rate,
        })
    }

    /// Reads and parses a rule file.
    ///
    /// # Errors
    ///
    /// [`Error::ReadRulesFile`] when the file cannot be read, and [`Error::InvalidRules`]
    /// (naming the file) as for [`LocalRules::from_json`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadRulesFile {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text).map_err(|e| match e {
            Error::InvalidRules(m) => Error::InvalidRules(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// The rules, in the order they apply.
    pub fn rules(&self) -> &[LocalRule] {
        &self.rules
    }

    /// The default rule's `(fixed_target, rate)`.
    pub fn default_target(&self) -> (u64, f64) {
        (self.default_fixed_target, self.default_rate)
    }

    /// The sampler's form: fresh reservoirs with a permanent per-second quota, no borrowing.
    pub(crate) fn to_rule_set(&self) -> RuleSet {
        let make = |name: Arc<str>, matchers: Matchers, fixed_target: u64, rate: f64| Rule {
            name,
            priority: 0,
            matchers,
            can_borrow: false,
            state: Arc::new(RuleState::new(Reservoir::fixed(fixed_target), rate)),
        };
        let rules = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let name = r
                    .description
                    .clone()
                    .unwrap_or_else(|| format!("local rule {}", i + 1));
                let matchers = Matchers {
                    host: r.host.clone(),
                    http_method: r.http_method.clone(),
                    url_path: r.url_path.clone(),
                    ..Matchers::any()
                };
                make(name.into(), matchers, r.fixed_target, r.rate)
            })
            .collect();
        let default = make(
            DEFAULT_RULE_NAME.into(),
            Matchers::any(),
            self.default_fixed_target,
            self.default_rate,
        );
        RuleSet::ordered(rules, default)
    }
}

fn targets(rule: &RawRule, label: &str) -> Result<(u64, f64), Error> {
    let fixed_target = rule
        .fixed_target
        .as_ref()
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| invalid(format!("{label} needs a non-negative integer fixed_target")))?;
    let rate = rule
        .rate
        .as_ref()
        .and_then(serde_json::Value::as_f64)
        .filter(|r| *r >= 0.0)
        .ok_or_else(|| invalid(format!("{label} needs a non-negative rate")))?;
    Ok((fixed_target, rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1_reads_service_name_as_host() {
        let rules = LocalRules::from_json(
            r#"{"version":1,"rules":[{"description":"a","service_name":"*.example.com",
            "http_method":"GET","url_path":"/x/*","fixed_target":2,"rate":0.5}],
            "default":{"fixed_target":0,"rate":0.1}}"#,
        )
        .unwrap();
        assert_eq!(rules.rules()[0].host, "*.example.com");
        assert_eq!(rules.rules()[0].fixed_target, 2);
        assert_eq!(rules.default_target(), (0, 0.1));
    }

    #[test]
    fn rejects_what_the_sdks_reject() {
        for bad in [
            "",
            "[]",
            r#"{"version":3,"default":{"fixed_target":1,"rate":0.1}}"#,
            r#"{"version":2}"#,
            r#"{"version":2,"default":{"fixed_target":1,"rate":0.1,"url_path":"/"}}"#,
            r#"{"version":2,"default":{"fixed_target":-1,"rate":0.1}}"#,
            r#"{"version":2,"default":{"fixed_target":1,"rate":-0.1}}"#,
            r#"{"version":2,"default":{"fixed_target":1.5,"rate":0.1}}"#,
            r#"{"version":2,"default":{"fixed_target":1,"rate":"x"}}"#,
            r#"{"version":2,"rules":[{"host":"*","http_method":"*","fixed_target":1,"rate":0}],"default":{"fixed_target":1,"rate":0.1}}"#,
            r#"{"version":1,"rules":[{"host":"*","http_method":"*","url_path":"*","fixed_target":1,"rate":0}],"default":{"fixed_target":1,"rate":0.1}}"#,
        ] {
            assert!(
                matches!(LocalRules::from_json(bad), Err(Error::InvalidRules(_))),
                "{bad}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_refused_or_read_without_panic(text in "\\PC{0,200}") {
            let _ = LocalRules::from_json(&text);
        }

        #[test]
        fn json_shaped_garbage_is_safe(
            version in proptest::prelude::any::<i64>(),
            ft in "-?[0-9]{1,25}(\\.[0-9])?",
            rate in "-?[0-9]{1,5}(\\.[0-9]{0,3})?(e[0-9]{1,3})?",
        ) {
            let text = format!(r#"{{"version":{version},"rules":[{{"host":"*","http_method":"*","url_path":"*","fixed_target":{ft},"rate":{rate}}}],"default":{{"fixed_target":{ft},"rate":{rate}}}}}"#);
            if let Ok(rules) = LocalRules::from_json(&text) {
                let _ = rules.to_rule_set();
            }
        }
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let e = LocalRules::from_file("/nonexistent/rules.json").unwrap_err();
        assert!(matches!(e, Error::ReadRulesFile { .. }), "{e}");
    }
}
