//! The JSON bodies of X-Ray's `POST /GetSamplingRules` and `POST /SamplingTargets`, as the
//! daemon-style proxy serves them (timestamps are epoch seconds).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::reservoir::Reservoir;
use crate::rule::{Matchers, Rule, RuleState};

/// The request body of one GetSamplingRules page.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RulesRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<&'a str>,
}

/// One GetSamplingRules page.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RulesPage {
    #[serde(default)]
    pub sampling_rule_records: Vec<RuleRecord>,
    pub next_token: Option<String>,
}

/// A rule with its service metadata.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RuleRecord {
    pub sampling_rule: Option<WireRule>,
}

fn star() -> String {
    "*".to_owned()
}

/// A sampling rule definition.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct WireRule {
    pub rule_name: Option<String>,
    pub priority: Option<i64>,
    pub fixed_rate: Option<f64>,
    pub reservoir_size: Option<i64>,
    #[serde(default = "star")]
    pub service_name: String,
    #[serde(default = "star")]
    pub service_type: String,
    #[serde(default = "star")]
    pub host: String,
    #[serde(rename = "HTTPMethod", default = "star")]
    pub http_method: String,
    #[serde(rename = "URLPath", default = "star")]
    pub url_path: String,
    #[serde(rename = "ResourceARN", default = "star")]
    pub resource_arn: String,
    pub version: Option<i64>,
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, String>,
}

impl WireRule {
    /// The sampler's rule, or why the definition is unusable (unknown version, no name,
    /// no rate...). Rules of other versions are skipped, as the SDKs do.
    pub(crate) fn into_rule(self) -> Result<Rule, String> {
        let name = self
            .rule_name
            .filter(|n| !n.is_empty())
            .ok_or("no RuleName")?;
        if self.version != Some(1) {
            return Err(format!("{name}: version {:?} is not 1", self.version));
        }
        let rate = self
            .fixed_rate
            .filter(|r| r.is_finite() && *r >= 0.0)
            .ok_or_else(|| format!("{name}: no valid FixedRate"))?;
        let reservoir_size = self.reservoir_size.unwrap_or(0);
        Ok(Rule {
            name: name.into(),
            priority: self.priority.unwrap_or(i64::MAX),
            matchers: Matchers {
                service_name: self.service_name,
                service_type: self.service_type,
                host: self.host,
                http_method: self.http_method,
                url_path: self.url_path,
                resource_arn: self.resource_arn,
                attributes: self.attributes.into_iter().collect(),
            },
            can_borrow: reservoir_size > 0,
            state: Arc::new(RuleState::new(Reservoir::new(), rate)),
        })
    }
}

/// One rule's statistics in a SamplingTargets request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StatisticsDocument {
    pub rule_name: String,
    #[serde(rename = "ClientID")]
    pub client_id: String,
    pub timestamp: f64,
    pub request_count: u64,
    pub sampled_count: u64,
    pub borrow_count: u64,
}

/// The SamplingTargets request body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TargetsRequest<'a> {
    pub sampling_statistics_documents: &'a [StatisticsDocument],
}

/// The SamplingTargets answer.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TargetsResponse {
    #[serde(default)]
    pub sampling_target_documents: Vec<TargetDocument>,
    pub last_rule_modification: Option<f64>,
    #[serde(default)]
    pub unprocessed_statistics: Vec<UnprocessedStatistics>,
}

/// A new target for one rule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TargetDocument {
    pub rule_name: Option<String>,
    pub fixed_rate: Option<f64>,
    pub reservoir_quota: Option<i64>,
    #[serde(rename = "ReservoirQuotaTTL")]
    pub reservoir_quota_ttl: Option<f64>,
    pub interval: Option<i64>,
}

/// Statistics X-Ray could not process.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UnprocessedStatistics {
    pub rule_name: Option<String>,
    pub error_code: Option<String>,
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_service_answer() {
        let page: RulesPage = serde_json::from_str(
            r#"{"SamplingRuleRecords":[{"SamplingRule":{"RuleName":"ignore-healthcheck",
            "RuleARN":"arn:aws:xray:us-east-1:1:sampling-rule/ignore-healthcheck",
            "ResourceARN":"*","Priority":1,"FixedRate":0.0,"ReservoirSize":0,
            "ServiceName":"*","ServiceType":"*","Host":"*","HTTPMethod":"GET",
            "URLPath":"/health","Version":1,"Attributes":{}},
            "CreatedAt":1.7e9,"ModifiedAt":1.7e9}],"NextToken":"p2"}"#,
        )
        .unwrap();
        assert_eq!(page.next_token.as_deref(), Some("p2"));
        let rule = page.sampling_rule_records.into_iter().next().unwrap();
        let rule = rule.sampling_rule.unwrap().into_rule().unwrap();
        assert_eq!(&*rule.name, "ignore-healthcheck");
        assert!(!rule.can_borrow);
        assert_eq!(rule.matchers.url_path, "/health");
    }

    #[test]
    fn unusable_rules_are_refused() {
        let r: WireRule =
            serde_json::from_str(r#"{"RuleName":"a","FixedRate":0.1,"Version":2}"#).unwrap();
        assert!(r.into_rule().is_err());
        let r: WireRule = serde_json::from_str(r#"{"RuleName":"a","Version":1}"#).unwrap();
        assert!(r.into_rule().is_err());
        let r: WireRule = serde_json::from_str(r#"{"FixedRate":0.1,"Version":1}"#).unwrap();
        assert!(r.into_rule().is_err());
    }
}
