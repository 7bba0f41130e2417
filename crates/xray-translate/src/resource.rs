//! [`PreparedResource`]: what the rules derive from a resource, worked out once for all the
//! spans made under it instead of once per segment.

use std::borrow::Cow;
use std::sync::Arc;

use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_sdk::Resource;
use xray_model::limits::sanitize_name_cow;
use xray_model::{AnyValue, EncodedFields, Fields};

use crate::attributes::to_fields;
use crate::aws::ResourceInfo;
use crate::config::Exclude;
use crate::config::TranslatorConfig;
use crate::view::Attributes;

/// A resource prepared for one [`crate::Translator`]: its service name, origin, `aws`
/// details, SDK and `otel.resource` metadata are derived once and shared by every span
/// translated with it. Made by [`crate::Translator::prepare_sdk`],
/// [`crate::Translator::prepare_otlp`] or [`crate::Translator::prepare`]; the documents
/// are the same as the per-span methods give for spans of that resource.
///
/// # Examples
///
/// ```
/// # use opentelemetry_sdk::{Resource, trace::SpanData};
/// # use xray_translate::Translator;
/// fn translate_batch(translator: &Translator, batch: &[SpanData], resource: &Resource) -> Vec<String> {
///     let resource = translator.prepare_sdk(resource);
///     batch.iter().map(|span| resource.translate_sdk(span).to_json()).collect()
/// }
/// # let resource = Resource::builder_empty().with_service_name("svc").build();
/// # assert!(translate_batch(&Translator::default(), &[], &resource).is_empty());
/// ```
#[derive(Debug)]
pub struct PreparedResource<'a> {
    pub(crate) config: Arc<TranslatorConfig>,
    pub(crate) attrs: Attributes<'a>,
    pub(crate) info: ResourceInfo<'a>,
    /// The segment name (configured or `service.name`), sanitised; `None` uses the span name.
    pub(crate) segment_name: Option<Cow<'a, str>>,
    pub(crate) origin: Option<&'static str>,
    pub(crate) sdk: Option<Cow<'a, str>>,
    /// The language a subsegment's stack trace is read in.
    pub(crate) subsegment_language: Option<&'a str>,
    /// `otel.resource` metadata of segments, when configured and not empty, with its JSON
    /// text written once.
    pub(crate) metadata: Option<EncodedFields<'a>>,
}

/// The segment name a resource gives under `config` (before the span name fallback).
pub(crate) fn segment_name<'a>(
    config: &TranslatorConfig,
    info: &ResourceInfo<'a>,
) -> Option<Cow<'a, str>> {
    match config.service_name() {
        Some(name) => Some(sanitize_name_cow(Cow::Owned(name.to_owned()))),
        None => info
            .service_name
            .map(|n| sanitize_name_cow(Cow::Borrowed(n))),
    }
}

/// The `otel.resource` metadata of segments under `config`, if any.
pub(crate) fn resource_metadata<'a>(
    config: &TranslatorConfig,
    attrs: Attributes<'a>,
) -> Option<Fields<'a, AnyValue<'a>>> {
    (config.has_resource_metadata() && !attrs.is_empty())
        .then(|| to_fields(attrs, config.exclude()))
        .filter(|f| !f.is_empty())
}

/// `telemetry.sdk.language` of a subsegment's resource (segments read it with the rest).
pub(crate) fn sdk_language<'a>(resource: Attributes<'a>, exclude: &Exclude) -> Option<&'a str> {
    resource
        .iter()
        .find(|(k, _)| *k == "telemetry.sdk.language" && !exclude.matches(k))
        .and_then(|(_, v)| v.as_str())
}

impl<'a> PreparedResource<'a> {
    pub(crate) fn new(config: Arc<TranslatorConfig>, attrs: Attributes<'a>) -> Self {
        let info = ResourceInfo::collect(attrs, config.exclude());
        Self {
            segment_name: segment_name(&config, &info),
            origin: info.origin(),
            sdk: info.sdk(),
            subsegment_language: sdk_language(attrs, config.exclude()),
            metadata: resource_metadata(&config, attrs).map(EncodedFields::new),
            config,
            attrs,
            info,
        }
    }

    /// The resource's attributes.
    pub fn attributes(&self) -> Attributes<'a> {
        self.attrs
    }
}

/// An empty SDK resource, for views whose resource is not read.
pub(crate) fn empty_sdk_resource() -> &'static Resource {
    static EMPTY: std::sync::OnceLock<Resource> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Resource::builder_empty().build())
}

/// A prepared OTLP resource: an absent resource is an empty one.
pub(crate) fn otlp_attributes(resource: Option<&ProtoResource>) -> Attributes<'_> {
    resource
        .map(|r| Attributes::otlp(&r.attributes))
        .unwrap_or_default()
}
