//! SigV4 for the HTTP transports (PutTraceSegments, the X-Ray OTLP endpoint): the
//! `aws-config` configuration loaded on first use, credentials from its provider chain
//! cached until five minutes before they expire, and the signed headers of one request
//! ([`Signer`], also the bridge's sampling proxy's).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
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

/// The X-Ray endpoint of `region`: `https://xray.<region>.amazonaws.com`, or the DNS
/// suffix of the region's partition (`.amazonaws.com.cn` in the China regions).
///
/// ```
/// use xray_export::transport::regional_endpoint;
/// assert_eq!(regional_endpoint("eu-west-1"), "https://xray.eu-west-1.amazonaws.com");
/// assert_eq!(regional_endpoint("cn-north-1"), "https://xray.cn-north-1.amazonaws.com.cn");
/// ```
pub fn regional_endpoint(region: &str) -> String {
    EndpointVariant::default().endpoint(region)
}

/// Which of a region's X-Ray endpoints to call: FIPS (`AWS_USE_FIPS_ENDPOINT`, the
/// profile's `use_fips_endpoint`) and dual-stack IPv4/IPv6 (`AWS_USE_DUALSTACK_ENDPOINT`,
/// `use_dualstack_endpoint`), as the AWS SDKs' endpoint rules for X-Ray build them.
///
/// ```
/// use xray_export::transport::EndpointVariant;
/// let fips = EndpointVariant { fips: true, dual_stack: false };
/// assert_eq!(fips.endpoint("us-gov-west-1"), "https://xray-fips.us-gov-west-1.amazonaws.com");
/// let both = EndpointVariant { fips: true, dual_stack: true };
/// assert_eq!(both.endpoint("us-east-1"), "https://xray-fips.us-east-1.api.aws");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointVariant {
    /// The FIPS 140 endpoint (`xray-fips.`).
    pub fips: bool,
    /// The dual-stack endpoint (the partition's dual-stack DNS suffix).
    pub dual_stack: bool,
}

impl EndpointVariant {
    /// The choices an AWS configuration holds (both off where it says nothing).
    pub fn of(sdk: &SdkConfig) -> EndpointVariant {
        EndpointVariant {
            fips: sdk.use_fips().unwrap_or(false),
            dual_stack: sdk.use_dual_stack().unwrap_or(false),
        }
    }

    /// The choices the environment holds (`env` looks a variable up): what a start
    /// that does not load the AWS configuration can know.
    ///
    /// ```
    /// use xray_export::transport::EndpointVariant;
    /// let env = |k: &str| (k == "AWS_USE_FIPS_ENDPOINT").then(|| "True".to_owned());
    /// assert!(EndpointVariant::from_env(env).fips);
    /// assert_eq!(EndpointVariant::from_env(|_| None), EndpointVariant::default());
    /// ```
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> EndpointVariant {
        let on = |k: &str| env(k).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        EndpointVariant {
            fips: on("AWS_USE_FIPS_ENDPOINT"),
            dual_stack: on("AWS_USE_DUALSTACK_ENDPOINT"),
        }
    }

    /// The endpoint of `region`: `https://xray[-fips].<region>.<suffix>`, where the
    /// suffix is the partition's DNS suffix, or its dual-stack one.
    pub fn endpoint(self, region: &str) -> String {
        // (prefix, DNS suffix, dual-stack DNS suffix) of the partitions whose regions do
        // not end in `amazonaws.com`, from the SDKs' partition table.
        const PARTITIONS: [(&str, &str, &str); 6] = [
            ("cn-", "amazonaws.com.cn", "api.amazonwebservices.com.cn"),
            ("eusc-", "amazonaws.eu", "api.amazonwebservices.eu"),
            ("us-iso-", "c2s.ic.gov", "api.aws.ic.gov"),
            ("us-isob-", "sc2s.sgov.gov", "api.aws.scloud"),
            ("eu-isoe-", "cloud.adc-e.uk", "api.cloud-aws.adc-e.uk"),
            ("us-isof-", "csp.hci.ic.gov", "api.aws.hci.ic.gov"),
        ];
        let (dns, dual) = PARTITIONS
            .iter()
            .find(|(prefix, _, _)| region.starts_with(prefix))
            .map_or(("amazonaws.com", "api.aws"), |&(_, dns, dual)| (dns, dual));
        let host = if self.fips { "xray-fips" } else { "xray" };
        let suffix = if self.dual_stack { dual } else { dns };
        format!("https://{host}.{region}.{suffix}")
    }
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

/// Why a request could not be signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignError {
    /// No credentials provider, or it gave no credentials.
    Credentials(String),
    /// The request or the signing parameters were refused by `aws-sigv4`.
    Signing(String),
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignError::Credentials(e) | SignError::Signing(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for SignError {}

/// Signs `POST` requests with SigV4 for one service and region, with credentials from a
/// provider cached until five minutes before they expire (long-lived keys are read again
/// hourly), one refresh at a time. Shared by the calls in flight: PutTraceSegments, the
/// X-Ray OTLP endpoint and the bridge's sampling proxy.
///
/// # Examples
///
/// ```
/// use aws_credential_types::Credentials;
/// use aws_credential_types::provider::SharedCredentialsProvider;
/// use xray_export::transport::Signer;
///
/// let keys = Credentials::new("AKIDEXAMPLE", "secret", None, None, "example");
/// let signer = Signer::new(Some(SharedCredentialsProvider::new(keys)), "eu-west-1", "xray");
/// let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let headers = runtime
///     .block_on(signer.sign_post("https://xray.eu-west-1.amazonaws.com/GetSamplingRules", &[], b"{}"))
///     .unwrap();
/// let authorization = &headers.iter().find(|(k, _)| k == "authorization").unwrap().1;
/// assert!(authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
/// assert!(authorization.contains("/eu-west-1/xray/aws4_request"));
/// ```
pub struct Signer {
    credentials: Option<SharedCredentialsProvider>,
    region: String,
    service: String,
    /// The credentials and when to read them again; one refresh at a time.
    cached: tokio::sync::Mutex<Option<(Credentials, SystemTime)>>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("region", &self.region)
            .field("service", &self.service)
            .field("credentials", &self.credentials.is_some())
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer for `service` in `region`, with credentials from `credentials` (`None`
    /// makes every signature fail with [`SignError::Credentials`]).
    pub fn new(
        credentials: Option<SharedCredentialsProvider>,
        region: impl Into<String>,
        service: impl Into<String>,
    ) -> Signer {
        Signer {
            credentials,
            region: region.into(),
            service: service.into(),
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// The region signatures are for.
    pub fn region(&self) -> &str {
        &self.region
    }

    async fn credentials(&self) -> Result<Credentials, SignError> {
        let mut cached = self.cached.lock().await;
        let now = SystemTime::now();
        if let Some((creds, refresh_at)) = &*cached
            && now < *refresh_at
        {
            return Ok(creds.clone());
        }
        let provider = self.credentials.as_ref().ok_or_else(|| {
            SignError::Credentials("no AWS credentials provider is configured".to_owned())
        })?;
        let creds = provider
            .provide_credentials()
            .await
            .map_err(|e| SignError::Credentials(format!("cannot load AWS credentials: {e}")))?;
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
    ///
    /// # Errors
    ///
    /// [`SignError::Credentials`] when no credentials can be had, [`SignError::Signing`]
    /// when `aws-sigv4` refuses the request (a malformed URL or header).
    pub async fn sign_post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, SignError> {
        let identity = self.credentials().await?.into();
        let signing = |e: &dyn fmt::Display, what: &str| SignError::Signing(format!("{what}: {e}"));
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| signing(&e, "SigV4 parameters"))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| signing(&e, "SigV4 request"))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| signing(&e, "SigV4 signing"))?
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
    use aws_credential_types::provider::future::ProvideCredentials as CredentialsFuture;
    use aws_types::service_config::LoadServiceConfig;
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

    /// Every region family, FIPS and dual-stack: the endpoints are the ones aws-sdk-xray's
    /// own endpoint resolver (the SDKs' rules for X-Ray) gives.
    #[tokio::test]
    async fn endpoints_match_the_sdk_resolver_in_every_partition() {
        use aws_sdk_xray::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
        let regions = [
            "us-east-1",
            "eu-west-1",
            "ap-southeast-3",
            "us-gov-west-1",
            "cn-north-1",
            "cn-northwest-1",
            "eusc-de-east-1",
            "us-iso-east-1",
            "us-isob-east-1",
            "eu-isoe-west-1",
            "us-isof-south-1",
        ];
        let resolver = DefaultResolver::new();
        for region in regions {
            for (fips, dual_stack) in [(false, false), (true, false), (false, true), (true, true)] {
                let params = Params::builder()
                    .region(region)
                    .use_fips(fips)
                    .use_dual_stack(dual_stack)
                    .build()
                    .unwrap();
                let sdk = resolver.resolve_endpoint(&params).await.unwrap();
                let ours = EndpointVariant { fips, dual_stack }.endpoint(region);
                assert_eq!(
                    ours,
                    sdk.url(),
                    "{region} fips={fips} dual_stack={dual_stack}"
                );
            }
        }
        assert_eq!(
            regional_endpoint("us-gov-east-1"),
            "https://xray.us-gov-east-1.amazonaws.com"
        );
    }

    /// The configuration's FIPS and dual-stack settings, as aws-config loads them.
    #[tokio::test]
    async fn the_variant_comes_from_the_configuration() {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_types::region::Region::new("us-east-1"))
            .use_fips(true)
            .load()
            .await;
        let variant = EndpointVariant::of(&sdk);
        assert_eq!(
            variant,
            EndpointVariant {
                fips: true,
                dual_stack: false
            }
        );
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_types::region::Region::new("us-east-1"))
            .use_dual_stack(true)
            .load()
            .await;
        assert_eq!(
            EndpointVariant::of(&sdk).endpoint("us-east-1"),
            "https://xray.us-east-1.api.aws"
        );
    }

    /// The environment as aws-config reads it, from a fixed list.
    #[derive(Debug)]
    struct Env(&'static [(&'static str, &'static str)]);

    impl LoadServiceConfig for Env {
        fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
            let found = self.0.iter().find(|(k, _)| *k == key.env());
            found.map(|(_, v)| (*v).to_owned())
        }
    }

    #[derive(Debug)]
    struct Counting {
        calls: Arc<AtomicU32>,
        lifetime: Duration,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> CredentialsFuture<'a>
        where
            Self: 'a,
        {
            self.calls.fetch_add(1, Relaxed);
            let expiry = SystemTime::now() + self.lifetime;
            CredentialsFuture::ready(Ok(Credentials::new(
                "AKID",
                "SECRET",
                None,
                Some(expiry),
                "test",
            )))
        }
    }

    #[tokio::test]
    async fn credentials_are_cached_until_shortly_before_they_expire() {
        for (lifetime, expected) in [(3600, 1), (60, 3)] {
            let calls = Arc::new(AtomicU32::new(0));
            let provider = SharedCredentialsProvider::new(Counting {
                calls: calls.clone(),
                lifetime: Duration::from_secs(lifetime),
            });
            let signer = Signer::new(Some(provider), "us-east-1", "xray");
            for _ in 0..3 {
                let signed = signer
                    .sign_post("https://x.test/a", &[], b"{}")
                    .await
                    .unwrap();
                assert!(signed.iter().any(|(k, _)| k == "authorization"));
            }
            // Within 5 minutes of expiry: fetched again each time.
            assert_eq!(calls.load(Relaxed), expected, "lifetime {lifetime} s");
        }
    }

    #[tokio::test]
    async fn no_provider_is_a_credentials_error() {
        let signer = Signer::new(None, "us-east-1", "xray");
        let err = signer
            .sign_post("https://x.test/a", &[], b"")
            .await
            .unwrap_err();
        assert!(matches!(err, SignError::Credentials(_)), "{err:?}");
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
