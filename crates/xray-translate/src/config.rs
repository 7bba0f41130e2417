//! [`TranslatorConfig`]: what a deployment may change about the translation, with the
//! Collector's option names (`indexed_attributes`, `index_all_attributes`,
//! `aws_log_groups`) and the environment variables that set them.

use globset::{Glob, GlobSet, GlobSetBuilder};

/// Environment variable that overrides the service (segment) name, as in the X-Ray SDKs.
pub const TRACING_NAME_ENV: &str = "AWS_XRAY_TRACING_NAME";

/// Environment variable listing attributes to index as annotations (comma-separated), as
/// the Collector's `indexed_attributes`; the binary's `--indexed-attributes`.
pub const INDEXED_ATTRIBUTES_ENV: &str = "XRAY_BRIDGE_INDEXED_ATTRIBUTES";

/// Environment variable (`true`/`false`) indexing every scalar attribute, as the
/// Collector's `index_all_attributes`; the binary's `--index-all-attributes`.
pub const INDEX_ALL_ATTRIBUTES_ENV: &str = "XRAY_BRIDGE_INDEX_ALL_ATTRIBUTES";

/// Environment variable listing CloudWatch log group names (comma-separated), as the
/// Collector's `aws_log_groups`; the binary's `--log-group-names`.
pub const LOG_GROUP_NAMES_ENV: &str = "XRAY_BRIDGE_LOG_GROUP_NAMES";

/// Environment variable listing glob patterns (comma-separated) of attributes that never
/// leave the process; the binary's `--metadata-exclude`.
pub const METADATA_EXCLUDE_ENV: &str = "XRAY_BRIDGE_METADATA_EXCLUDE";

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
    exclude: Exclude,
}

/// A glob pattern that could not be parsed (see [`TranslatorConfig::with_metadata_exclude`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidGlob {
    /// The pattern as given.
    pub pattern: String,
    /// Why it was refused.
    pub message: String,
}

impl std::fmt::Display for InvalidGlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid glob {:?}: {}", self.pattern, self.message)
    }
}

impl std::error::Error for InvalidGlob {}

/// The attribute keys that never leave the process: glob patterns compiled into one set.
#[derive(Debug, Clone, Default)]
pub(crate) struct Exclude {
    patterns: Vec<String>,
    set: Option<GlobSet>,
}

impl PartialEq for Exclude {
    fn eq(&self, other: &Self) -> bool {
        self.patterns == other.patterns
    }
}

impl Exclude {
    fn new(patterns: Vec<String>) -> Result<Self, InvalidGlob> {
        if patterns.is_empty() {
            return Ok(Self::default());
        }
        let invalid = |pattern: &str, e: globset::Error| InvalidGlob {
            pattern: pattern.to_owned(),
            message: e.kind().to_string(),
        };
        let mut builder = GlobSetBuilder::new();
        for pattern in &patterns {
            builder.add(Glob::new(pattern).map_err(|e| invalid(pattern, e))?);
        }
        let set = builder
            .build()
            .map_err(|e| invalid(&patterns.join(","), e))?;
        Ok(Self {
            patterns,
            set: Some(set),
        })
    }

    /// Whether the attribute `key` must be left out.
    #[inline]
    pub(crate) fn matches(&self, key: &str) -> bool {
        self.set.as_ref().is_some_and(|set| set.is_match(key))
    }

    /// Whether no pattern is set (nothing to check).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.set.is_none()
    }
}

/// Items of a comma-separated list, trimmed, empty ones left out.
pub fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
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
            exclude: Exclude::default(),
        }
    }
}

impl TranslatorConfig {
    /// The defaults, with the service name taken from `AWS_XRAY_TRACING_NAME` when set.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with the variables read through `var` (a test's or an
    /// embedding program's own environment).
    ///
    /// # Examples
    ///
    /// ```
    /// use xray_translate::{TRACING_NAME_ENV, TranslatorConfig};
    /// let config = TranslatorConfig::from_vars(|n| (n == TRACING_NAME_ENV).then(|| " shop ".into()));
    /// assert_eq!(config.service_name(), Some("shop"));
    /// ```
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let config = Self::default();
        match var(TRACING_NAME_ENV) {
            Some(name) if !name.trim().is_empty() => config.with_service_name(name.trim()),
            _ => config,
        }
    }

    /// Applies the settings given in the environment, each only when its variable is set:
    /// [`INDEXED_ATTRIBUTES_ENV`], [`INDEX_ALL_ATTRIBUTES_ENV`] (`true`/`1`/`yes`/`on`),
    /// [`LOG_GROUP_NAMES_ENV`] and [`METADATA_EXCLUDE_ENV`]. An invalid pattern is an
    /// error rather than ignored: attributes meant to stay private would leak.
    ///
    /// # Errors
    ///
    /// [`InvalidGlob`] for a pattern in [`METADATA_EXCLUDE_ENV`] that does not parse.
    ///
    /// # Examples
    ///
    /// ```
    /// use xray_translate::TranslatorConfig;
    /// let config = TranslatorConfig::default().with_env_settings().unwrap();
    /// # let _ = config;
    /// ```
    pub fn with_env_settings(self) -> Result<Self, InvalidGlob> {
        self.with_settings_from(|name| std::env::var(name).ok())
    }

    /// [`with_env_settings`](Self::with_env_settings) with the variables read through
    /// `var` (a test's or an embedding program's own environment).
    ///
    /// # Errors
    ///
    /// As [`with_env_settings`](Self::with_env_settings).
    pub fn with_settings_from(
        mut self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, InvalidGlob> {
        if let Some(list) = var(INDEXED_ATTRIBUTES_ENV) {
            self = self.with_annotation_keys(split_list(&list));
        }
        if let Some(on) = var(INDEX_ALL_ATTRIBUTES_ENV) {
            let on = on.trim().to_ascii_lowercase();
            self = self.index_all_attributes(matches!(on.as_str(), "true" | "1" | "yes" | "on"));
        }
        if let Some(list) = var(LOG_GROUP_NAMES_ENV) {
            self = self.with_log_groups(split_list(&list));
        }
        if let Some(list) = var(METADATA_EXCLUDE_ENV) {
            self = self.with_metadata_exclude(split_list(&list))?;
        }
        Ok(self)
    }

    /// Names every segment `name` instead of the resource's `service.name`.
    pub fn with_service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Span attributes to index as annotations, the Collector's `indexed_attributes` (keys as written on the span, e.g.
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

    /// Attributes whose key matches one of these glob patterns (`*` any run of
    /// characters, `?` one, `[a-z]` a class, `{a,b}` alternatives; case-sensitive) never
    /// leave the process: not in metadata, annotations or any mapped field, on spans,
    /// events, links and resources alike. For personal data: `user.*,*.email`.
    ///
    /// # Errors
    ///
    /// [`InvalidGlob`] naming the first pattern that does not parse.
    ///
    /// # Examples
    ///
    /// ```
    /// use xray_translate::TranslatorConfig;
    /// let config = TranslatorConfig::default().with_metadata_exclude(["user.*", "*.email"]).unwrap();
    /// assert_eq!(config.metadata_exclude(), ["user.*", "*.email"]);
    /// assert!(TranslatorConfig::default().with_metadata_exclude(["a[b"]).is_err());
    /// ```
    pub fn with_metadata_exclude<I, S>(mut self, patterns: I) -> Result<Self, InvalidGlob>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.exclude = Exclude::new(patterns.into_iter().map(Into::into).collect())?;
        Ok(self)
    }

    /// The exclusion patterns.
    pub fn metadata_exclude(&self) -> &[String] {
        &self.exclude.patterns
    }

    /// Whether the attribute `key` matches an exclusion pattern (and so never leaves the
    /// process).
    pub fn excludes(&self, key: &str) -> bool {
        self.exclude.matches(key)
    }

    pub(crate) fn exclude(&self) -> &Exclude {
        &self.exclude
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
