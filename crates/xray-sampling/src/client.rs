//! The two ways to reach X-Ray's sampling API from the poller thread: the daemon-style
//! proxy (plain JSON over HTTP, unsigned) and, with the `xray-api` feature, the X-Ray API
//! itself through aws-sdk-xray (signed). Each owns a small current-thread runtime, so the
//! application needs none.

use std::time::Duration;

use crate::wire::{RulesPage, RulesRequest, StatisticsDocument, TargetsRequest, TargetsResponse};

/// How long one call may take before the poller gives up on it.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The sampling API as the poller uses it (blocking).
pub(crate) trait SamplingApi: Send {
    /// One page of GetSamplingRules.
    fn rules_page(&mut self, next_token: Option<&str>) -> Result<RulesPage, String>;
    /// One SamplingTargets call (at most 25 documents).
    fn targets(&mut self, statistics: &[StatisticsDocument]) -> Result<TargetsResponse, String>;
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the poller's runtime: {e}"))
}

/// The daemon-style proxy: `POST {endpoint}/GetSamplingRules` and `/SamplingTargets`.
pub(crate) struct ProxyClient {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    rules_url: reqwest::Url,
    targets_url: reqwest::Url,
}

/// Checks a proxy endpoint and gives its two call URLs.
pub(crate) fn proxy_urls(endpoint: &str) -> Result<(reqwest::Url, reqwest::Url), String> {
    let base = reqwest::Url::parse(endpoint).map_err(|e| e.to_string())?;
    if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
        return Err("expected http://host:port or https://host:port".into());
    }
    let join = |path: &str| {
        let mut url = base.clone();
        let prefix = base.path().trim_end_matches('/');
        url.set_path(&format!("{prefix}/{path}"));
        url.set_query(None);
        url
    };
    Ok((join("GetSamplingRules"), join("SamplingTargets")))
}

impl ProxyClient {
    /// A client for an endpoint already checked by [`proxy_urls`].
    pub(crate) fn new(endpoint: &str) -> Result<Self, String> {
        let (rules_url, targets_url) = proxy_urls(endpoint)?;
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(ProxyClient {
            runtime: runtime()?,
            http,
            rules_url,
            targets_url,
        })
    }

    fn post<T: serde::de::DeserializeOwned>(
        &self,
        url: &reqwest::Url,
        body: Vec<u8>,
    ) -> Result<T, String> {
        let request = self
            .http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        self.runtime.block_on(async move {
            let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
            let status = response.status();
            let bytes = response.bytes().await.map_err(|e| format!("{url}: {e}"))?;
            if !status.is_success() {
                let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
                return Err(format!("{url}: HTTP {status}: {text}"));
            }
            serde_json::from_slice(&bytes).map_err(|e| format!("{url}: bad answer: {e}"))
        })
    }
}

impl SamplingApi for ProxyClient {
    fn rules_page(&mut self, next_token: Option<&str>) -> Result<RulesPage, String> {
        let body = serde_json::to_vec(&RulesRequest { next_token }).map_err(|e| e.to_string())?;
        self.post(&self.rules_url, body)
    }

    fn targets(&mut self, statistics: &[StatisticsDocument]) -> Result<TargetsResponse, String> {
        let body = serde_json::to_vec(&TargetsRequest {
            sampling_statistics_documents: statistics,
        })
        .map_err(|e| e.to_string())?;
        self.post(&self.targets_url, body)
    }
}

#[cfg(feature = "xray-api")]
pub(crate) use api::ApiClient;

#[cfg(feature = "xray-api")]
mod api {
    //! Signed calls through aws-sdk-xray.

    use std::time::Duration;

    use aws_sdk_xray::primitives::DateTime;
    use aws_sdk_xray::types::{SamplingRule, SamplingStatisticsDocument};

    use super::{SamplingApi, runtime};
    use crate::wire::{
        RuleRecord, RulesPage, StatisticsDocument, TargetDocument, TargetsResponse,
        UnprocessedStatistics, WireRule,
    };

    /// aws-sdk-xray's client with its own runtime.
    pub(crate) struct ApiClient {
        runtime: tokio::runtime::Runtime,
        client: aws_sdk_xray::Client,
    }

    impl ApiClient {
        pub(crate) fn new(config: &aws_config::SdkConfig) -> Result<Self, String> {
            let timeouts = aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(super::CALL_TIMEOUT)
                .connect_timeout(Duration::from_secs(2))
                .build();
            // The poller tries again on its own schedule: no retries inside a call.
            let conf = aws_sdk_xray::config::Builder::from(config)
                .timeout_config(timeouts)
                .retry_config(aws_config::retry::RetryConfig::disabled())
                .build();
            Ok(ApiClient {
                runtime: runtime()?,
                client: aws_sdk_xray::Client::from_conf(conf),
            })
        }
    }

    fn secs(t: Option<&DateTime>) -> Option<f64> {
        t.map(|t| t.as_secs_f64())
    }

    fn wire_rule(r: &SamplingRule) -> WireRule {
        let s = |v: &str| v.to_owned();
        WireRule {
            rule_name: r.rule_name().map(s),
            priority: Some(i64::from(r.priority())),
            fixed_rate: Some(r.fixed_rate()),
            reservoir_size: Some(i64::from(r.reservoir_size())),
            service_name: s(r.service_name()),
            service_type: s(r.service_type()),
            host: s(r.host()),
            http_method: s(r.http_method()),
            url_path: s(r.url_path()),
            resource_arn: s(r.resource_arn()),
            version: Some(i64::from(r.version())),
            attributes: r
                .attributes()
                .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
        }
    }

    impl SamplingApi for ApiClient {
        fn rules_page(&mut self, next_token: Option<&str>) -> Result<RulesPage, String> {
            let call = self
                .client
                .get_sampling_rules()
                .set_next_token(next_token.map(str::to_owned));
            let out = self.runtime.block_on(call.send()).map_err(|e| {
                format!(
                    "GetSamplingRules: {}",
                    aws_sdk_xray::error::DisplayErrorContext(e)
                )
            })?;
            Ok(RulesPage {
                sampling_rule_records: out
                    .sampling_rule_records()
                    .iter()
                    .map(|r| RuleRecord {
                        sampling_rule: r.sampling_rule().map(wire_rule),
                    })
                    .collect(),
                next_token: out.next_token().map(str::to_owned),
            })
        }

        fn targets(
            &mut self,
            statistics: &[StatisticsDocument],
        ) -> Result<TargetsResponse, String> {
            let docs = statistics
                .iter()
                .map(|d| {
                    SamplingStatisticsDocument::builder()
                        .rule_name(&d.rule_name)
                        .client_id(&d.client_id)
                        .timestamp(DateTime::from_secs_f64(d.timestamp))
                        .request_count(d.request_count.min(i32::MAX as u64) as i32)
                        .sampled_count(d.sampled_count.min(i32::MAX as u64) as i32)
                        .borrow_count(d.borrow_count.min(i32::MAX as u64) as i32)
                        .build()
                        .map_err(|e| e.to_string())
                })
                .collect::<Result<Vec<_>, String>>()?;
            let call = self
                .client
                .get_sampling_targets()
                .set_sampling_statistics_documents(Some(docs));
            let out = self.runtime.block_on(call.send()).map_err(|e| {
                format!(
                    "GetSamplingTargets: {}",
                    aws_sdk_xray::error::DisplayErrorContext(e)
                )
            })?;
            Ok(TargetsResponse {
                sampling_target_documents: out
                    .sampling_target_documents()
                    .iter()
                    .map(|t| TargetDocument {
                        rule_name: t.rule_name().map(str::to_owned),
                        fixed_rate: Some(t.fixed_rate()),
                        reservoir_quota: t.reservoir_quota().map(i64::from),
                        reservoir_quota_ttl: secs(t.reservoir_quota_ttl()),
                        interval: t.interval().map(i64::from),
                    })
                    .collect(),
                last_rule_modification: secs(out.last_rule_modification()),
                unprocessed_statistics: out
                    .unprocessed_statistics()
                    .iter()
                    .map(|u| UnprocessedStatistics {
                        rule_name: u.rule_name().map(str::to_owned),
                        error_code: u.error_code().map(str::to_owned),
                        message: u.message().map(str::to_owned),
                    })
                    .collect(),
            })
        }
    }
}
