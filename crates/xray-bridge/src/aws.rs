//! The AWS configuration shared by the X-Ray API exporter and the sampling proxy: region,
//! credentials (with `--local-mode` keeping EC2 instance metadata out), an assumed role
//! (`--role-arn`), and the outbound HTTP client (proxy and TLS, [`crate::outbound`]) for
//! every AWS call, STS included.

use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;

use crate::config::Settings;
use crate::outbound::SdkHttpClient;

/// Loads the AWS configuration for `settings`.
pub async fn load(settings: &Settings, http: &reqwest::Client) -> SdkConfig {
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

/// The X-Ray API base URL: `--endpoint-url`, else the regional endpoint.
pub fn xray_endpoint(settings: &Settings, sdk: &SdkConfig) -> Option<String> {
    if let Some(url) = &settings.endpoint_url {
        return Some(url.clone());
    }
    let region = sdk.region()?;
    Some(format!("https://xray.{region}.amazonaws.com"))
}
