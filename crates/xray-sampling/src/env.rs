//! Configuration from the environment: `OTEL_TRACES_SAMPLER=xray` and
//! `OTEL_TRACES_SAMPLER_ARG`, the convention of OpenTelemetry's contrib X-Ray samplers.

use opentelemetry_sdk::Resource;

use crate::{Error, XraySampler, XraySamplerBuilder};

/// The `OTEL_TRACES_SAMPLER` value that selects this sampler.
pub const SAMPLER_NAME: &str = "xray";

impl XraySampler {
    /// Builds the sampler when `OTEL_TRACES_SAMPLER=xray`, with the options of
    /// `OTEL_TRACES_SAMPLER_ARG` (see [`XraySamplerBuilder::with_sampler_arg`]) and the service
    /// name and platform of the environment's resource (`OTEL_SERVICE_NAME`,
    /// `OTEL_RESOURCE_ATTRIBUTES`). `Ok(None)` when another sampler is selected.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSamplerArg`] for an unreadable `OTEL_TRACES_SAMPLER_ARG`, and every
    /// error of [`XraySamplerBuilder::build`] (rules file, endpoint, poller thread).
    pub fn from_env() -> Result<Option<XraySampler>, Error> {
        match builder_from_vars(|name| std::env::var(name).ok())? {
            Some(builder) => builder
                .with_resource(&Resource::builder().build())
                .build()
                .map(Some),
            None => Ok(None),
        }
    }
}

/// The builder the variables describe, or `None` when they select another sampler.
fn builder_from_vars(
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<XraySamplerBuilder>, Error> {
    let selected =
        var("OTEL_TRACES_SAMPLER").is_some_and(|s| s.trim().eq_ignore_ascii_case(SAMPLER_NAME));
    if !selected {
        return Ok(None);
    }
    let builder = XraySampler::builder();
    match var("OTEL_TRACES_SAMPLER_ARG") {
        Some(arg) => builder.with_sampler_arg(&arg).map(Some),
        None => Ok(Some(builder)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xray_testkit::vars;

    #[test]
    fn selected_only_by_xray() {
        assert!(builder_from_vars(vars(&[])).unwrap().is_none());
        let other = [("OTEL_TRACES_SAMPLER", "parentbased_always_on")];
        assert!(builder_from_vars(vars(&other)).unwrap().is_none());
        let on = [("OTEL_TRACES_SAMPLER", "xray")];
        assert!(builder_from_vars(vars(&on)).unwrap().is_some());
    }

    #[test]
    fn arg_is_applied_and_checked() {
        let ok = [
            ("OTEL_TRACES_SAMPLER", "xray"),
            (
                "OTEL_TRACES_SAMPLER_ARG",
                "endpoint=http://127.0.0.1:1,local_only=true",
            ),
        ];
        let sampler = builder_from_vars(vars(&ok))
            .unwrap()
            .unwrap()
            .build()
            .unwrap();
        assert!(!sampler.is_polling());
        let bad = [
            ("OTEL_TRACES_SAMPLER", "xray"),
            ("OTEL_TRACES_SAMPLER_ARG", "endpoint"),
        ];
        assert!(builder_from_vars(vars(&bad)).is_err());
    }
}
