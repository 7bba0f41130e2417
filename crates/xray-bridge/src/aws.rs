//! The AWS configuration shared by the X-Ray API exporter and the sampling proxy: region,
//! credentials (with `--local-mode` keeping EC2 instance metadata out), an assumed role
//! (`--role-arn`), and the outbound HTTP client (proxy and TLS, [`crate::outbound`]) for
//! every AWS call, STS included.

use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};

use xray_export::transport::{EndpointVariant, LazyHttpClient, LazySdkConfig};

use crate::config::Settings;
use crate::outbound::SdkHttpClient;

/// What the AWS configuration depends on, copied from the settings so that it can be
/// loaded later, on first use.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// `--profile`.
    pub profile: Option<String>,
    /// `--region`.
    pub region: Option<String>,
    /// `--local-mode`.
    pub local_mode: bool,
    /// `--role-arn`.
    pub role_arn: Option<String>,
}

impl AwsSettings {
    /// The AWS part of `settings`.
    pub fn of(settings: &Settings) -> AwsSettings {
        AwsSettings {
            profile: settings.profile.clone(),
            region: settings.region.clone(),
            local_mode: settings.local_mode,
            role_arn: settings.role_arn.clone(),
        }
    }

    /// The region, when it is certain without loading the configuration: `--region`,
    /// else `AWS_REGION`, else `AWS_DEFAULT_REGION` (`env` looks a variable up), which the
    /// chain reads, in this order, before the profile and instance metadata.
    ///
    /// ```
    /// use xray_bridge::aws::AwsSettings;
    /// let env = |k: &str| (k == "AWS_DEFAULT_REGION").then(|| "eu-west-1".to_owned());
    /// assert_eq!(AwsSettings::default().given_region(|_| None), None);
    /// assert_eq!(AwsSettings::default().given_region(env).as_deref(), Some("eu-west-1"));
    /// ```
    pub fn given_region(&self, env: impl Fn(&str) -> Option<String>) -> Option<String> {
        self.region.clone().or_else(|| {
            ["AWS_REGION", "AWS_DEFAULT_REGION"]
                .iter()
                .filter_map(|k| env(k))
                .map(|v| v.trim().to_owned())
                .find(|v| !v.is_empty())
        })
    }
}

/// The AWS configuration for `settings`, loaded when an export, the telemetry records or
/// the sampling proxy first need it: until then none of the AWS SDK's code runs, which
/// keeps an idle bridge small.
pub fn lazy(settings: AwsSettings, http: LazyHttpClient) -> LazySdkConfig {
    LazySdkConfig::new(move || {
        let (settings, http) = (settings.clone(), http.clone());
        async move { load(&settings, &http).await }
    })
}

/// Loads the AWS configuration for `settings`.
pub async fn load(settings: &AwsSettings, http: &LazyHttpClient) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(SdkHttpClient::new(http.clone()));
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    let profile_region = || {
        let mut p = aws_config::profile::ProfileFileRegionProvider::builder();
        if let Some(name) = &settings.profile {
            p = p.profile_name(name);
        }
        p.build()
    };
    let profile_credentials = || {
        let mut p = aws_config::profile::ProfileFileCredentialsProvider::builder();
        if let Some(name) = &settings.profile {
            p = p.profile_name(name);
        }
        p.build()
    };
    if settings.local_mode {
        // Like the daemon's -o: everything but EC2 instance metadata.
        let region = RegionProviderChain::first_try(settings.region.clone().map(Region::new))
            .or_else(aws_config::environment::region::EnvironmentVariableRegionProvider::new())
            .or_else(profile_region());
        let credentials = CredentialsProviderChain::first_try(
            "Environment",
            aws_config::environment::credentials::EnvironmentVariableCredentialsProvider::new(),
        )
        .or_else("Profile", profile_credentials())
        .or_else(
            "WebIdentityToken",
            aws_config::web_identity_token::WebIdentityTokenCredentialsProvider::builder().build(),
        )
        .or_else(
            "EcsContainer",
            aws_config::ecs::EcsCredentialsProvider::builder().build(),
        );
        loader = loader.region(region).credentials_provider(credentials);
    } else if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    let base = loader.load().await;
    match &settings.role_arn {
        None => base,
        Some(role) => {
            let provider = aws_config::sts::AssumeRoleProvider::builder(role)
                .session_name("xray-bridge")
                .configure(&base)
                .build()
                .await;
            base.into_builder()
                .credentials_provider(SharedCredentialsProvider::new(provider))
                .build()
        }
    }
}

/// The X-Ray API base URL: `--endpoint-url`, else the endpoint of `region`, FIPS or
/// dual-stack as `AWS_USE_FIPS_ENDPOINT` and `AWS_USE_DUALSTACK_ENDPOINT` say.
pub fn xray_endpoint(settings: &Settings, region: &str) -> String {
    settings
        .endpoint_url
        .clone()
        .unwrap_or_else(|| EndpointVariant::from_env(|k| std::env::var(k).ok()).endpoint(region))
}

/// The credentials provider of `sdk`, which it loads when credentials are first asked
/// for.
pub fn lazy_credentials(sdk: LazySdkConfig) -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(LazyCredentials(sdk))
}

#[derive(Debug)]
struct LazyCredentials(LazySdkConfig);

impl ProvideCredentials for LazyCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            match self.0.get().await.credentials_provider() {
                Some(provider) => provider.provide_credentials().await,
                None => Err(CredentialsError::not_loaded(
                    "no AWS credentials provider is configured",
                )),
            }
        })
    }
}
