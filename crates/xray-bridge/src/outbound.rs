//! Every outbound HTTP call goes through one client built here (one connection pool):
//! PutTraceSegments and the OTLP endpoint (signed by `xray-export`), PutTelemetryRecords
//! and STS (through the AWS SDK, see [`SdkHttpClient`]) and the sampling proxy's upstream.
//!
//! - Proxy: `-p/--proxy-address URL` (the daemon's `ProxyAddress`) for every call, else
//!   `HTTPS_PROXY` for `https://` and `HTTP_PROXY` for `http://` calls (lower-case names
//!   too). Hosts in `NO_PROXY` are reached directly, and so are the EC2 and ECS metadata
//!   addresses, which a proxy cannot reach.
//! - TLS: `--no-verify-ssl` (`NoVerifySSL`) turns certificate checks off, with a warning
//!   at start.

use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use xray_export::transport::LazyHttpClient;

use crate::config::values::redact_password;

/// Addresses always reached without a proxy: EC2 instance metadata (IPv4 and IPv6) and
/// ECS container credentials.
pub const METADATA_HOSTS: &str = "169.254.169.254,169.254.170.2,fd00:ec2::254";

/// Where outbound calls go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyPlan {
    /// Proxy for `https://` calls.
    pub https: Option<String>,
    /// Proxy for `http://` calls.
    pub http: Option<String>,
    /// Hosts reached directly (`NO_PROXY` syntax).
    pub no_proxy: String,
}

impl ProxyPlan {
    /// The plan for `--proxy-address` (`explicit`) and the environment (`env` looks a
    /// variable up).
    ///
    /// # Examples
    ///
    /// ```
    /// use xray_bridge::outbound::{METADATA_HOSTS, ProxyPlan};
    /// let env = |k: &str| (k == "HTTPS_PROXY").then(|| "http://proxy:3128".to_owned());
    /// let plan = ProxyPlan::new(None, env);
    /// assert_eq!(plan.https.as_deref(), Some("http://proxy:3128"));
    /// assert_eq!(plan.http, None);
    /// assert_eq!(plan.no_proxy, METADATA_HOSTS);
    /// ```
    pub fn new(explicit: Option<&str>, env: impl Fn(&str) -> Option<String>) -> ProxyPlan {
        let var = |upper: &str| {
            env(upper)
                .or_else(|| env(&upper.to_ascii_lowercase()))
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let (https, http) = match explicit {
            Some(url) => (Some(url.to_owned()), Some(url.to_owned())),
            None => (var("HTTPS_PROXY"), var("HTTP_PROXY")),
        };
        let no_proxy = match var("NO_PROXY") {
            Some(list) => format!("{list},{METADATA_HOSTS}"),
            None => METADATA_HOSTS.to_owned(),
        };
        ProxyPlan {
            https,
            http,
            no_proxy,
        }
    }

    /// The plan from `--proxy-address` and the process environment.
    pub fn from_env(explicit: Option<&str>) -> ProxyPlan {
        ProxyPlan::new(explicit, |k| std::env::var(k).ok())
    }
}

/// The client every outbound call uses, built when the first call needs it: a bridge
/// that exports only to files or the daemon never sets up TLS. The proxies are checked
/// now, so a bad `--proxy-address` still fails the start.
///
/// # Errors
///
/// A message when a proxy address is not a valid URL (its password hidden).
pub fn client(plan: &ProxyPlan, no_verify_ssl: bool) -> Result<LazyHttpClient, String> {
    // Proxies set here replace reqwest's own reading of the environment.
    let no_proxy = reqwest::NoProxy::from_string(&plan.no_proxy);
    let mut proxies = Vec::new();
    if let Some(url) = &plan.https {
        let proxy = reqwest::Proxy::https(url)
            .map_err(|e| format!("proxy address `{}`: {e}", redact_password(url)))?
            .no_proxy(no_proxy.clone());
        proxies.push(proxy);
    }
    if let Some(url) = &plan.http {
        let proxy = reqwest::Proxy::http(url)
            .map_err(|e| format!("proxy address `{}`: {e}", redact_password(url)))?
            .no_proxy(no_proxy);
        proxies.push(proxy);
    }
    Ok(LazyHttpClient::new(move || {
        let builder = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .tls_danger_accept_invalid_certs(no_verify_ssl);
        proxies
            .iter()
            .fold(builder, |builder, proxy| builder.proxy(proxy.clone()))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))
    }))
}

/// The AWS SDK's HTTP client over [`client`]'s `reqwest::Client`, so that AWS calls
/// take the same proxy and TLS settings as every other call.
#[derive(Debug, Clone)]
pub struct SdkHttpClient {
    client: LazyHttpClient,
}

impl SdkHttpClient {
    /// Wraps `client`.
    pub fn new(client: LazyHttpClient) -> Self {
        SdkHttpClient { client }
    }
}

impl HttpClient for SdkHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(SdkConnector {
            client: self.client.clone(),
            read_timeout: settings.read_timeout(),
        })
    }
}

#[derive(Debug, Clone)]
struct SdkConnector {
    client: LazyHttpClient,
    read_timeout: Option<Duration>,
}

impl HttpConnector for SdkConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(e.into()))?;
            let (parts, body) = request.into_parts();
            let body = body.bytes().map(|b| b.to_vec()).ok_or_else(|| {
                ConnectorError::user("streaming request bodies are not supported".into())
            })?;
            let request = reqwest::Request::try_from(http::Request::from_parts(parts, body))
                .map_err(|e| ConnectorError::user(e.into()))?;
            let mut request = request;
            if let Some(t) = read_timeout {
                *request.timeout_mut() = Some(t);
            }
            let client = client
                .get()
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            let response = client.execute(request).await.map_err(connector_error)?;
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response.bytes().await.map_err(connector_error)?;
            let mut out = http::Response::new(SdkBody::from(bytes));
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            HttpResponse::try_from(out).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// Timeouts as timeouts, failed connections as I/O errors (both retryable).
fn connector_error(e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else if e.is_connect() {
        ConnectorError::io(e.into())
    } else {
        ConnectorError::other(e.into(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_then_the_environment_and_metadata_is_never_proxied() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let vars: &[(&str, &str)] = &[
            ("HTTPS_PROXY", "http://secure:1"),
            ("http_proxy", "http://plain:2"),
            ("NO_PROXY", "internal.example"),
        ];
        let plan = ProxyPlan::new(None, env(vars));
        assert_eq!(plan.https.as_deref(), Some("http://secure:1"));
        assert_eq!(plan.http.as_deref(), Some("http://plain:2"));
        assert_eq!(plan.no_proxy, format!("internal.example,{METADATA_HOSTS}"));
        let plan = ProxyPlan::new(Some("http://p:3"), env(vars));
        assert_eq!(plan.https.as_deref(), Some("http://p:3"));
        assert_eq!(plan.http.as_deref(), Some("http://p:3"));
        let plan = ProxyPlan::new(None, env(&[]));
        assert_eq!((plan.https, plan.http), (None, None));
        assert_eq!(plan.no_proxy, METADATA_HOSTS);
        let lazy = client(&ProxyPlan::new(Some("http://p:3"), env(&[])), true).unwrap();
        assert!(lazy.built().is_none(), "built on the first call");
        assert!(lazy.get().is_ok());
        let bad = client(&ProxyPlan::new(Some("http://p:bad"), env(&[])), false);
        assert!(bad.unwrap_err().starts_with("proxy address `http://p:bad`"));
    }

    /// Failed PutTraceSegments calls through this client are told apart the way the
    /// telemetry records count them: a closed port is "connection refused".
    #[test]
    fn backend_errors_are_classified_through_the_shared_client() {
        use aws_credential_types::Credentials;
        use std::sync::Arc;
        use std::time::Duration;
        use xray_export::transport::api::{ApiConfig, ApiTransport, BackendErrors};
        use xray_export::{Document, Metrics, Pipeline, PipelineConfig, RetryPolicy};
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let http = client(&ProxyPlan::new(None, |_| None), false).unwrap();
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                    "AKID", "SECRET", None, None, "test",
                )),
            )
            .build();
        let errors = Arc::new(BackendErrors::default());
        let metrics = Metrics::default();
        let pipeline = Pipeline::start_with_metrics(
            ApiTransport::new(ApiConfig {
                sdk_config: Some(sdk.into()),
                endpoint_url: Some(format!("http://{closed}")),
                backend_errors: Some(errors.clone()),
                http_client: Some(http),
                ..Default::default()
            }),
            PipelineConfig {
                retry: RetryPolicy {
                    max_attempts: 1,
                    ..Default::default()
                },
                ..Default::default()
            },
            metrics.clone(),
        )
        .unwrap();
        let doc = Document::from_json(
            br#"{"name":"s","id":"0000000000000001","trace_id":"1-5759e988-bd862e3fe1be46a994272793","start_time":1,"end_time":2}"#
                .to_vec(),
        )
        .unwrap();
        assert!(pipeline.submit(doc));
        let _ = pipeline.shutdown(Duration::from_secs(10));
        assert_eq!(errors.counts(), [0, 0, 1, 0, 0, 0]);
        assert_eq!(
            metrics.snapshot().calls.count,
            1,
            "the failed call is timed"
        );
    }
}
