//! SigV4 for the HTTP transports (PutTraceSegments, the X-Ray OTLP endpoint): the
//! `aws-config` configuration loaded on first use, credentials from its provider chain
//! cached until five minutes before they expire, and the signed headers of one request.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_types::service_config::ServiceConfigKey;

type Load = dyn Fn() -> Pin<Box<dyn Future<Output = SdkConfig> + Send>> + Send + Sync;

/// An `aws-config` configuration that is loaded when a transport first needs it (to sign
/// its first request), once, and shared by its clones: a process that has nothing to
/// send yet never sets up the credential chain. A ready configuration converts into one
/// (`SdkConfig::into`).
///
/// # Examples
///
/// ```
/// use aws_config::{BehaviorVersion, Region, SdkConfig};
/// use xray_export::transport::LazySdkConfig;
///
/// let lazy = LazySdkConfig::new(|| async {
///     SdkConfig::builder()
///         .behavior_version(BehaviorVersion::latest())
///         .region(Region::new("eu-west-1"))
///         .build()
/// });
/// assert!(lazy.loaded().is_none());
/// let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let region = runtime.block_on(lazy.get()).region().map(|r| r.to_string());
/// assert_eq!(region.as_deref(), Some("eu-west-1"));
/// assert!(lazy.clone().loaded().is_some(), "clones share it");
/// ```
#[derive(Clone)]
pub struct LazySdkConfig {
    cell: Arc<tokio::sync::OnceCell<SdkConfig>>,
    load: Arc<Load>,
}

impl LazySdkConfig {
    /// A configuration that `load` makes on first use.
    pub fn new<F, Fut>(load: F) -> LazySdkConfig
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = SdkConfig> + Send + 'static,
    {
        LazySdkConfig {
            cell: Arc::new(tokio::sync::OnceCell::new()),
            load: Arc::new(move || Box::pin(load())),
        }
    }

    /// The configuration, loaded now if it was not yet (callers at the same time wait
    /// for the one load).
    pub async fn get(&self) -> &SdkConfig {
        self.cell.get_or_init(|| (self.load)()).await
    }

    /// The configuration if it is loaded.
    pub fn loaded(&self) -> Option<&SdkConfig> {
        self.cell.get()
    }
}

impl From<SdkConfig> for LazySdkConfig {
    fn from(sdk: SdkConfig) -> LazySdkConfig {
        LazySdkConfig {
            cell: Arc::new(tokio::sync::OnceCell::new_with(Some(sdk))),
            load: Arc::new(|| Box::pin(aws_config::defaults(BehaviorVersion::latest()).load())),
        }
    }
}

impl fmt::Debug for LazySdkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazySdkConfig")
            .field("loaded", &self.loaded().is_some())
            .finish()
    }
}

/// `given` (loaded now if it was not yet), else the configuration `aws-config` loads from
/// the environment (region, credential chain); only called when a request is about to be
/// signed.
pub(crate) async fn sdk_config(given: Option<&LazySdkConfig>) -> SdkConfig {
    match given {
        Some(sdk) => sdk.get().await.clone(),
        None => aws_config::defaults(BehaviorVersion::latest()).load().await,
    }
}

/// The X-Ray endpoint of `region`: `https://xray.<region>.amazonaws.com`, or
/// `.amazonaws.com.cn` in the China regions.
///
/// ```
/// use xray_export::transport::regional_endpoint;
/// assert_eq!(regional_endpoint("eu-west-1"), "https://xray.eu-west-1.amazonaws.com");
/// assert_eq!(regional_endpoint("cn-north-1"), "https://xray.cn-north-1.amazonaws.com.cn");
/// ```
pub fn regional_endpoint(region: &str) -> String {
    let suffix = if region.starts_with("cn-") { ".cn" } else { "" };
    format!("https://xray.{region}.amazonaws.com{suffix}")
}

/// The X-Ray endpoint the AWS configuration names, as the SDK's resolver reads it:
/// `AWS_ENDPOINT_URL_XRAY` (or the profile's `services` section for `xray`) first, then
/// `AWS_ENDPOINT_URL` (or the profile's `endpoint_url`).
pub(crate) fn configured_endpoint(sdk: &SdkConfig) -> Option<String> {
    let key = ServiceConfigKey::builder()
        .service_id("XRay")
        .env("AWS_ENDPOINT_URL_XRAY")
        .profile("endpoint_url")
        .build()
        .ok()?;
    sdk.service_config()
        .and_then(|config| config.load_config(key))
        .or_else(|| sdk.endpoint_url().map(str::to_owned))
}

/// Signs requests for one service and region; shared by the calls in flight.
pub(crate) struct Signer {
    sdk: SdkConfig,
    region: String,
    service: String,
    /// The credentials and when to read them again; one refresh at a time.
    cached: tokio::sync::Mutex<Option<(Credentials, SystemTime)>>,
}

impl Signer {
    /// A signer for `service` in `region`, with the credentials of `sdk`.
    pub(crate) fn new(sdk: SdkConfig, region: String, service: String) -> Signer {
        Signer {
            sdk,
            region,
            service,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// The region signatures are for.
    pub(crate) fn region(&self) -> &str {
        &self.region
    }

    /// The cached credentials, read again five minutes before they expire (long-lived
    /// keys hourly).
    async fn credentials(&self) -> Result<Credentials, String> {
        let mut cached = self.cached.lock().await;
        let now = SystemTime::now();
        if let Some((creds, refresh_at)) = &*cached
            && now < *refresh_at
        {
            return Ok(creds.clone());
        }
        let provider = self
            .sdk
            .credentials_provider()
            .ok_or("no AWS credentials provider configured")?;
        let creds = provider
            .provide_credentials()
            .await
            .map_err(|e| format!("AWS credentials: {e}"))?;
        let refresh_at = creds
            .expiry()
            .map(|e| e.checked_sub(Duration::from_secs(300)).unwrap_or(e))
            .unwrap_or(now + Duration::from_secs(3600));
        *cached = Some((creds.clone(), refresh_at));
        Ok(creds)
    }

    /// The headers that sign a `POST` of `body` to `url` with `headers` (which must be
    /// sent as given): `authorization`, `x-amz-date` and, with temporary credentials,
    /// `x-amz-security-token`.
    pub(crate) async fn sign_post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, String> {
        let identity = self.credentials().await?.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("SigV4 parameters: {e}"))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| format!("SigV4 request: {e}"))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| format!("SigV4 signing: {e}"))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_types::service_config::LoadServiceConfig;

    /// The environment as aws-config reads it, from a fixed list.
    #[derive(Debug)]
    struct Env(&'static [(&'static str, &'static str)]);

    impl LoadServiceConfig for Env {
        fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
            let found = self.0.iter().find(|(k, _)| *k == key.env());
            found.map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_xray_endpoint_comes_before_the_global_one() {
        let config = |env: &'static [(&'static str, &'static str)], global: Option<&str>| {
            let mut builder = SdkConfig::builder().service_config(Env(env));
            builder.set_endpoint_url(global.map(str::to_owned));
            builder.build()
        };
        let xray = &[("AWS_ENDPOINT_URL_XRAY", "http://xray.local:1")];
        let sdk = config(xray, Some("http://all.local:2"));
        assert_eq!(
            configured_endpoint(&sdk).as_deref(),
            Some("http://xray.local:1")
        );
        let sdk = config(
            &[("AWS_ENDPOINT_URL_S3", "http://s3.local:3")],
            Some("http://all.local:2"),
        );
        assert_eq!(
            configured_endpoint(&sdk).as_deref(),
            Some("http://all.local:2")
        );
        assert_eq!(configured_endpoint(&config(&[], None)), None);
    }
}
