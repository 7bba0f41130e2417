//! [`TranslatorConfig`]: what a deployment may change about the translation.

/// Environment variable that overrides the service (segment) name, as in the X-Ray SDKs.
pub const TRACING_NAME_ENV: &str = "AWS_XRAY_TRACING_NAME";

/// The default prefix marking an attribute as an annotation (`annotation.tier` is indexed
/// as the annotation `tier`).
pub const DEFAULT_ANNOTATION_PREFIX: &str = "annotation.";

/// Settings of a [`crate::Translator`]. `Default` gives the recommended behaviour.
///
/// # Examples
///
/// ```
/// use xray_translate::TranslatorConfig;
/// let config = TranslatorConfig::default()
///     .with_service_name("checkout")
///     .with_annotation_keys(["customer.tier", "order.id"])
///     .with_log_groups(["/ecs/checkout"]);
/// assert_eq!(config.service_name(), Some("checkout"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TranslatorConfig {
    service_name: Option<String>,
    annotation_keys: Vec<String>,
    annotation_prefix: Option<String>,
    index_all_attributes: bool,
    resource_metadata: bool,
    log_groups: Vec<String>,
}

impl Default for TranslatorConfig {
    fn default() -> Self {
        Self {
            service_name: None,
            annotation_keys: Vec::new(),
            annotation_prefix: Some(DEFAULT_ANNOTATION_PREFIX.to_owned()),
            index_all_attributes: false,
            resource_metadata: true,
            log_groups: Vec::new(),
        }
    }
}

impl TranslatorConfig {
    /// The defaults, with the service name taken from `AWS_XRAY_TRACING_NAME` when set.
    pub fn from_env() -> Self {
        let config = Self::default();
        match std::env::var(TRACING_NAME_ENV) {
            Ok(name) if !name.trim().is_empty() => config.with_service_name(name.trim()),
            _ => config,
        }
    }

    /// Names every segment `name` instead of the resource's `service.name`.
    pub fn with_service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Span attributes to index as annotations (keys as written on the span, e.g.
    /// `customer.tier`; the annotation key has invalid characters replaced by `_`).
    pub fn with_annotation_keys<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.annotation_keys = keys.into_iter().map(Into::into).collect();
        self
    }

    /// The prefix that marks an attribute as an annotation (default `annotation.`), or
    /// `None` to turn the rule off.
    pub fn with_annotation_prefix(mut self, prefix: Option<impl Into<String>>) -> Self {
        self.annotation_prefix = prefix.map(Into::into).filter(|p: &String| !p.is_empty());
        self
    }

    /// Indexes every unmapped scalar span attribute as an annotation (up to X-Ray's limit;
    /// the rest stay in metadata).
    pub fn index_all_attributes(mut self, on: bool) -> Self {
        self.index_all_attributes = on;
        self
    }

    /// Whether segments carry the resource attributes in the `otel.resource` metadata
    /// namespace (default on).
    pub fn resource_metadata(mut self, on: bool) -> Self {
        self.resource_metadata = on;
        self
    }

    /// CloudWatch log groups of the service, used when the resource names none
    /// (`aws.log.group.names` / `aws.log.group.arns`).
    pub fn with_log_groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.log_groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// The service name override.
    pub fn service_name(&self) -> Option<&str> {
        self.service_name.as_deref()
    }

    /// The configured annotation keys.
    pub fn annotation_keys(&self) -> &[String] {
        &self.annotation_keys
    }

    /// The annotation prefix, if the rule is on.
    pub fn annotation_prefix(&self) -> Option<&str> {
        self.annotation_prefix.as_deref()
    }

    /// Whether every unmapped scalar attribute is indexed.
    pub fn indexes_all_attributes(&self) -> bool {
        self.index_all_attributes
    }

    /// Whether segments carry resource attributes as metadata.
    pub fn has_resource_metadata(&self) -> bool {
        self.resource_metadata
    }

    /// The configured log groups.
    pub fn log_groups(&self) -> &[String] {
        &self.log_groups
    }
}
