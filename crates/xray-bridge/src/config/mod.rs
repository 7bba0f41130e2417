//! Settings from the command line, `XRAY_BRIDGE_*` environment variables and a config
//! file (our TOML, or the X-Ray daemon's `cfg.yaml`), merged into [`Settings`].
//!
//! # Order
//!
//! Lowest to highest: built-in default < config file < environment variable < flag.
//! The file is the one named by `-c/--config` (or `XRAY_BRIDGE_CONFIG`); without it,
//! the daemon's default location [`DAEMON_CONFIG_PATH`] is read when it exists. An empty
//! string in a file means "not set", as in the daemon.
//!
//! # One declaration per setting
//!
//! Every setting is declared once, in the `settings!` block below: its doc comment (the
//! `--help` text), its flag and environment variable (`#[arg(...)]`), its type, its
//! default, its parser (which also validates, for every source alike) and its key in the
//! daemon's `cfg.yaml`. Its TOML key is its long flag name. From that one entry come the
//! flag, the environment variable, both file keys, the merged [`Settings`] field and its
//! line in `--check-config`. To add a setting, add one entry (and a line in the README's
//! table); a rule between settings (one setting's default depending on another) goes in
//! [`Settings::merge`], and a check of the merged whole in `Settings::check`.
//!
//! Daemon keys that are not settings of ours are handled in the private `daemon_yaml`
//! module: `Version` (required, 1 or 2) and the `ProxyServer.*` keys (read and checked;
//! the daemon itself replaces them with its defaults).

mod daemon_yaml;
mod declare;
mod file;
pub mod values;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use xray_export::FsyncPolicy;

use declare::settings;
pub use file::Format;
pub use values::{Compression, ExportKind, List, Listen, LogLevel, SecretUrl};

use crate::otlp_headers::OtlpHeader;
use values::{
    parse_bool, parse_globs, parse_http_url, parse_in, parse_list, parse_path, parse_secret_url,
    parse_secs, parse_text,
};
use xray_translate::{
    INDEX_ALL_ATTRIBUTES_ENV, INDEXED_ATTRIBUTES_ENV, LOG_GROUP_NAMES_ENV, METADATA_EXCLUDE_ENV,
    TranslatorConfig,
};

/// Default OTLP gRPC listen address.
pub const DEFAULT_OTLP_GRPC: &str = "127.0.0.1:4317";
/// Default OTLP/HTTP listen address.
pub const DEFAULT_OTLP_HTTP: &str = "127.0.0.1:4318";
/// Default daemon-protocol UDP listen address (the X-Ray daemon's).
pub const DEFAULT_UDP: &str = "127.0.0.1:2000";
/// Default sampling-proxy TCP listen address (the X-Ray daemon's).
pub const DEFAULT_TCP: &str = "127.0.0.1:2000";
/// Default export queue size in MiB.
pub const DEFAULT_BUFFER_MB: u64 = 16;
/// Default largest OTLP request body, compressed or not.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;
/// Default time allowed to drain on shutdown.
pub const DEFAULT_SHUTDOWN_SECS: u64 = 10;
/// Default local console address (local mode), loopback only.
pub const DEFAULT_CONSOLE: &str = "127.0.0.1:2020";
/// Default number of PutTraceSegments calls in flight (the daemon's `Concurrency`).
pub const DEFAULT_CONCURRENCY: usize = 8;
/// Default time budget for retrying one item (the Collector's `max_elapsed_time`).
pub const DEFAULT_RETRY_MAX_ELAPSED_SECS: u64 = 300;
/// Where the X-Ray daemon looks for its config file when `-c` is not given.
pub const DAEMON_CONFIG_PATH: &str = "/etc/amazon/xray/cfg.yaml";

/// The names of one setting: its Rust field (the TOML key is the field with `-` for `_`)
/// and its key in the daemon's `cfg.yaml`, if the daemon has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingKeys {
    /// The field name in [`Options`] and [`Settings`].
    pub field: &'static str,
    /// The daemon's key, nested keys joined with `.`.
    pub yaml: Option<&'static str>,
}

impl SettingKeys {
    /// The TOML key (= the long flag name).
    pub fn toml(&self) -> String {
        self.field.replace('_', "-")
    }
}

/// Export queue size in MiB; `0` means 1 % of host memory, at least 3 MiB (the daemon's).
fn parse_buffer_mb(s: &str) -> Result<u64, String> {
    let mb = parse_in(s, 0..=64 * 1024)?;
    if (1..3).contains(&mb) {
        return Err(format!(
            "{mb} MiB is too small: 3 at least, or 0 for 1 % of memory"
        ));
    }
    Ok(mb)
}

settings! {
    /// OTLP gRPC listen address, or `off`.
    #[arg(long, env = "XRAY_BRIDGE_OTLP_GRPC", value_name = "ADDR")]
    otlp_grpc: Listen = Listen::loopback(4317);

    /// OTLP/HTTP listen address (`/v1/traces`), or `off`.
    #[arg(long, env = "XRAY_BRIDGE_OTLP_HTTP", value_name = "ADDR")]
    otlp_http: Listen = Listen::loopback(4318);

    /// X-Ray daemon protocol UDP listen address, or `off` (daemon: -b/--bind).
    #[arg(long, short = 'b', visible_alias = "bind", env = "XRAY_BRIDGE_UDP", value_name = "ADDR")]
    udp: Listen = Listen::loopback(2000), yaml = "Socket.UDPAddress";

    /// Sampling proxy TCP listen address, or `off` (daemon: -t/--bind-tcp). Off by
    /// default in local mode.
    #[arg(long, short = 't', visible_alias = "bind-tcp", env = "XRAY_BRIDGE_TCP", value_name = "ADDR")]
    tcp: Listen = Listen::loopback(2000), yaml = "Socket.TCPAddress";

    /// Where documents go; repeatable (`--export api --export local`, or `api,local`),
    /// each export with its own queue: `api`, `otlp` (the X-Ray OTLP endpoint),
    /// `otlp:URL` (any OTLP/HTTP backend), `daemon:HOST:PORT`, `file:PATH`, `stdout` or
    /// `local` (kept in the local store and shown on the console page).
    #[arg(long, env = "XRAY_BRIDGE_EXPORT", value_name = "KIND", action = clap::ArgAction::Append, value_delimiter = ',')]
    export: Vec<ExportKind> = vec![ExportKind::Api], list = ExportKind;

    /// A request header of the `otlp:URL` exports, `KEY=VALUE`, repeatable; over those of
    /// `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_EXPORTER_OTLP_TRACES_HEADERS`. Values (API
    /// keys) are never logged.
    #[arg(long, value_name = "KEY=VALUE", action = clap::ArgAction::Append)]
    otlp_header: Vec<OtlpHeader> = Vec::new(), list = OtlpHeader;

    /// Compression of OTLP export requests: `gzip` or `none`.
    #[arg(long, env = "XRAY_BRIDGE_OTLP_COMPRESSION", value_name = "KIND")]
    otlp_compression: Compression = Compression::Gzip;

    /// Seconds an in-progress daemon document is held for the OTLP exports until its
    /// complete version arrives; after that it is counted as never completed.
    #[arg(long, env = "XRAY_BRIDGE_IN_PROGRESS_TIMEOUT", value_name = "SECS")]
    in_progress_timeout: Duration = Duration::from_secs(60), parse = parse_secs;

    /// AWS region (daemon: -n/--region); else the AWS chain (`AWS_REGION`, profile, IMDS).
    #[arg(long, short = 'n', env = "XRAY_BRIDGE_REGION", value_name = "R")]
    region: String, parse = parse_text, yaml = "Region";

    /// X-Ray API endpoint, e.g. a VPC endpoint or a test server (daemon: -e/--endpoint).
    #[arg(long, short = 'e', visible_alias = "endpoint", env = "XRAY_BRIDGE_ENDPOINT_URL", value_name = "URL")]
    endpoint_url: String, parse = parse_http_url, yaml = "Endpoint";

    /// Prometheus `/metrics` and `/healthz` listen address, or `off`.
    #[arg(long, env = "XRAY_BRIDGE_METRICS", value_name = "ADDR")]
    metrics: Listen = Listen::Off;

    /// Do not use EC2 instance metadata for region or credentials (daemon: -o/--local-mode).
    #[arg(long, short = 'o', env = "XRAY_BRIDGE_LOCAL_MODE", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    local_mode: bool = false, parse = parse_bool, yaml = "LocalMode";

    /// Profile of the shared AWS config and credentials files for region and
    /// credentials (daemon: Profile).
    #[arg(long, env = "XRAY_BRIDGE_PROFILE", value_name = "NAME")]
    profile: String, parse = parse_text, yaml = "Profile";

    /// IAM role to assume for every AWS call (daemon: -r/--role-arn).
    #[arg(long, short = 'r', env = "XRAY_BRIDGE_ROLE_ARN", value_name = "ARN")]
    role_arn: String, parse = parse_text, yaml = "RoleARN";

    /// Export queue size in MiB, at least 3; 0 = 1 % of host memory (daemon: -m/--buffer-memory).
    #[arg(long, short = 'm', env = "XRAY_BRIDGE_BUFFER_MEMORY", value_name = "MB")]
    buffer_memory: u64 = DEFAULT_BUFFER_MB, parse = parse_buffer_mb, yaml = "TotalBufferSizeMB";

    /// ARN of the resource running the bridge, reported in logs (daemon: -a/--resource-arn).
    #[arg(long, short = 'a', env = "XRAY_BRIDGE_RESOURCE_ARN", value_name = "ARN")]
    resource_arn: String, parse = parse_text, yaml = "ResourceARN";

    /// Log level: trace, debug, info, warn, error, off; the daemon's dev and prod too
    /// (daemon: -l/--log-level).
    #[arg(long, short = 'l', env = "XRAY_BRIDGE_LOG_LEVEL", value_name = "LEVEL")]
    log_level: LogLevel = LogLevel::Info, yaml = "Logging.LogLevel";

    /// Append logs to this file instead of standard error (daemon: -f/--log-file).
    #[arg(long, short = 'f', env = "XRAY_BRIDGE_LOG_FILE", value_name = "PATH")]
    log_file: PathBuf, parse = parse_path, yaml = "Logging.LogPath";

    /// Rotate the log file at 50 MB, keeping 5 old files (daemon: Logging.LogRotation).
    #[arg(long, env = "XRAY_BRIDGE_LOG_ROTATION", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    log_rotation: bool = true, parse = parse_bool, yaml = "Logging.LogRotation";

    /// Largest OTLP request body in bytes, compressed and decompressed.
    #[arg(long, env = "XRAY_BRIDGE_MAX_REQUEST_BYTES", value_name = "N")]
    max_request_bytes: usize = DEFAULT_MAX_REQUEST_BYTES,
        parse = |s: &str| parse_in(s, 1024..=usize::MAX);

    /// Seconds allowed on SIGTERM/Ctrl-C to deliver what is queued.
    #[arg(long, env = "XRAY_BRIDGE_SHUTDOWN_TIMEOUT", value_name = "SECS")]
    shutdown_timeout: Duration = Duration::from_secs(DEFAULT_SHUTDOWN_SECS), parse = parse_secs;

    /// Most PutTraceSegments calls in flight at once (daemon: Concurrency).
    #[arg(long, env = "XRAY_BRIDGE_CONCURRENCY", value_name = "N")]
    concurrency: usize = DEFAULT_CONCURRENCY, parse = |s: &str| parse_in(s, 1..=256), yaml = "Concurrency";

    /// Proxy for every outbound call, e.g. `http://proxy:3128` (daemon: -p/--proxy-address,
    /// ProxyAddress); else `HTTPS_PROXY`/`HTTP_PROXY`, with `NO_PROXY`.
    #[arg(long, short = 'p', env = "XRAY_BRIDGE_PROXY_ADDRESS", value_name = "URL")]
    proxy_address: SecretUrl, parse = parse_secret_url, yaml = "ProxyAddress";

    /// Do not check TLS certificates of outbound calls (daemon: NoVerifySSL); warned at start.
    #[arg(long, env = "XRAY_BRIDGE_NO_VERIFY_SSL", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    no_verify_ssl: bool = false, parse = parse_bool, yaml = "NoVerifySSL";

    /// PutTelemetryRecords, as the daemon sends them: `on` or `off` (default: on with
    /// `--export api`, off with `--local-mode` or another export).
    #[arg(long, env = "XRAY_BRIDGE_TELEMETRY", value_name = "on|off")]
    telemetry: bool = false, parse = parse_bool;

    /// Seconds between telemetry records (default 60, the daemon's).
    #[arg(long, env = "XRAY_BRIDGE_TELEMETRY_INTERVAL", value_name = "SECS")]
    telemetry_interval: Duration = Duration::from_secs(60),
        parse = |s: &str| parse_in::<u64>(s, 1..=86_400).map(Duration::from_secs);

    /// Local mode, the same as `--export local` (and it wins over `--export`).
    #[arg(long, env = "XRAY_BRIDGE_LOCAL", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    local: bool = false, parse = parse_bool;

    /// Local mode: the console page's address (default 127.0.0.1:2020).
    #[arg(long, env = "XRAY_BRIDGE_CONSOLE", value_name = "ADDR")]
    console: Listen = Listen::loopback(2020);

    /// Local mode: the SQLite store file (default `$XDG_DATA_HOME/xray-bridge/local.db`).
    #[arg(long, env = "XRAY_BRIDGE_STORE", value_name = "PATH")]
    store: PathBuf = xray_console::StoreConfig::default_path(), parse = parse_path;

    /// Disk spool directory: accepted data is written there until delivered, and
    /// survives outages and restarts; each export pipeline uses a subdirectory of its
    /// own (default: none, memory only). The `Spool.*` cfg.yaml keys are ours: the
    /// daemon has none.
    #[arg(long, env = "XRAY_BRIDGE_SPOOL", value_name = "DIR")]
    spool: PathBuf, parse = parse_dir, yaml = "Spool.Directory";

    /// Most bytes the spool may use on disk, at least 65536 (default 256 MiB); beyond,
    /// the oldest records are dropped (counted as `spool_full`).
    #[arg(long, env = "XRAY_BRIDGE_SPOOL_MAX_BYTES", value_name = "N")]
    spool_max_bytes: u64 = xray_export::spool::DEFAULT_MAX_BYTES,
        parse = |s: &str| parse_in(s, 65_536..=u64::MAX), yaml = "Spool.MaxBytes";

    /// When spool writes are forced to disk: `always` (every record) or every MS
    /// milliseconds (default `1000ms`).
    #[arg(long, env = "XRAY_BRIDGE_SPOOL_FSYNC", value_name = "always|MS")]
    spool_fsync: FsyncPolicy = FsyncPolicy::default(), yaml = "Spool.Fsync";

    /// Seconds a failed send is retried (exponential backoff with jitter) before it is
    /// dropped, or, with a spool, kept there for later (default 300).
    #[arg(long, env = "XRAY_BRIDGE_RETRY_MAX_ELAPSED", value_name = "SECS")]
    retry_max_elapsed: Duration = Duration::from_secs(DEFAULT_RETRY_MAX_ELAPSED_SECS),
        parse = parse_secs, yaml = "RetryMaxElapsedSeconds";

    // Translation of OTLP spans and ADOT's T1S datagrams (the Collector's option names;
    // daemon documents pass through untouched).

    /// Span attributes indexed as annotations, comma-separated (the Collector's
    /// `indexed_attributes`).
    #[arg(long, env = INDEXED_ATTRIBUTES_ENV, value_name = "LIST")]
    indexed_attributes: List = List::default(), parse = parse_list;

    /// Index every scalar span attribute as an annotation, up to X-Ray's 50 per
    /// document (the Collector's `index_all_attributes`).
    #[arg(long, env = INDEX_ALL_ATTRIBUTES_ENV, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    index_all_attributes: bool = false, parse = parse_bool;

    /// CloudWatch log group names for the segments' `aws.cloudwatch_logs`,
    /// comma-separated (the Collector's `aws_log_groups`); a resource's
    /// `aws.log.group.names`/`aws.log.group.arns` win.
    #[arg(long, env = LOG_GROUP_NAMES_ENV, value_name = "LIST")]
    log_group_names: List = List::default(), parse = parse_list;

    /// Glob patterns, comma-separated, of attribute keys that never leave the bridge
    /// (span, event, link and resource attributes), e.g. `user.*,*.email`.
    #[arg(long, env = METADATA_EXCLUDE_ENV, value_name = "GLOBS")]
    metadata_exclude: List = List::default(), parse = parse_globs;
}

/// A directory path, not empty.
fn parse_dir(s: &str) -> Result<PathBuf, String> {
    match s.trim() {
        "" => Err("the directory is empty".to_owned()),
        dir => Ok(PathBuf::from(dir)),
    }
}

/// The command line: every setting of [`Options`] plus the config file and the
/// one-shot actions.
#[derive(Debug, Default, Parser)]
#[command(
    name = "xray-bridge",
    version,
    // The daemon's -v prints the version; -V works too.
    disable_version_flag = true,
    // A flag given twice takes the last value (handy for wrappers that append flags).
    args_override_self = true,
    about = "Receives OTLP traces and X-Ray daemon datagrams, serves the X-Ray sampling API, and exports to AWS X-Ray.",
    long_about = None
)]
pub struct Cli {
    /// The settings given as flags or environment variables.
    #[command(flatten)]
    pub options: Options,
    /// Config file: TOML keyed by the long flag names, or the X-Ray daemon's cfg.yaml
    /// (daemon: -c/--config). Default: /etc/amazon/xray/cfg.yaml when it exists.
    #[arg(long, short = 'c', env = "XRAY_BRIDGE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the merged configuration and exit.
    #[arg(long)]
    pub check_config: bool,
    /// Print the version (daemon: -v/--version).
    #[arg(short = 'v', long = "version", visible_short_alias = 'V', action = clap::ArgAction::Version)]
    pub version: Option<bool>,
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The config file is malformed, has an unknown key or a bad value.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the key and its line.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("{0}")]
    Invalid(String),
}

impl Options {
    /// Reads a config file, TOML or the daemon's YAML (see [`Format::detect`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Read`] when the file cannot be read, [`ConfigError::Parse`] when
    /// [`Options::parse`] refuses it.
    pub fn load(path: &Path) -> Result<Options, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Options::parse(&text, Format::detect(path, &text)).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses config-file text; errors name the key and its line.
    ///
    /// # Errors
    ///
    /// A message naming the key and its line for malformed text, an unknown key or a
    /// bad value.
    pub fn parse(text: &str, format: Format) -> Result<Options, String> {
        match format {
            Format::Toml => Options::from_toml(text),
            Format::DaemonYaml => daemon_yaml::options(text),
        }
    }

    /// Parses our TOML: keys are the long flag names; unknown keys are errors.
    ///
    /// # Errors
    ///
    /// A message naming the key and its line for malformed TOML, an unknown key or a
    /// bad value.
    pub fn from_toml(text: &str) -> Result<Options, String> {
        let mut options = Options::default();
        for entry in file::read_toml(text)? {
            let setting = SETTINGS
                .iter()
                .find(|s| s.toml() == entry.key)
                .ok_or_else(|| {
                    format!(
                        "line {}: unknown key `{}` (the keys are the long flag names)",
                        entry.line, entry.key
                    )
                })?;
            options.set_entry(setting.field, &entry)?;
        }
        Ok(options)
    }

    /// Sets one setting from a file entry; an empty value leaves it unset.
    fn set_entry(&mut self, field: &str, entry: &file::Entry) -> Result<(), String> {
        if entry.text.trim().is_empty() {
            return Ok(());
        }
        self.set_text(field, &entry.text)
            .map_err(|e| format!("line {}: key `{}`: {e}", entry.line, entry.key))
    }
}

impl Settings {
    /// Merges the command line (with its environment variables) over the config file
    /// (`--config`, else [`DAEMON_CONFIG_PATH`] when it exists) over the defaults.
    ///
    /// # Errors
    ///
    /// A config file that cannot be read or parsed, or settings [`Settings::merge`]
    /// refuses.
    pub fn resolve(cli: Cli) -> Result<Settings, ConfigError> {
        Settings::resolve_with_default_file(cli, Path::new(DAEMON_CONFIG_PATH))
    }

    /// [`Settings::resolve`] with another default file location.
    ///
    /// # Errors
    ///
    /// As [`Settings::resolve`].
    pub fn resolve_with_default_file(cli: Cli, default: &Path) -> Result<Settings, ConfigError> {
        let file = match &cli.config {
            Some(path) => Options::load(path)?,
            None if default.is_file() => Options::load(default)?,
            None => Options::default(),
        };
        Settings::merge(cli.options, file)
    }

    /// Merges `flags` (flags and environment) over `file` over the defaults, then applies
    /// the rules between settings and checks the whole.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for a value out of range or settings that contradict
    /// each other.
    pub fn merge(flags: Options, file: Options) -> Result<Settings, ConfigError> {
        let mut merged = flags.or(file);
        // `--local` (or its env/file key) is a shortcut for `--export local`.
        if merged.local == Some(true) {
            merged.export = Some(vec![ExportKind::Local]);
        }
        // Local mode needs no AWS account, so the sampling proxy (which signs calls to
        // AWS) is off unless asked for.
        if merged.export.as_deref() == Some(&[ExportKind::Local]) && merged.tcp.is_none() {
            merged.tcp = Some(Listen::Off);
        }
        // Telemetry goes with the X-Ray API export, and is off in local mode (`-o`)
        // unless asked for.
        if merged.telemetry.is_none() {
            let api = merged
                .export
                .as_ref()
                .is_none_or(|e| e.contains(&ExportKind::Api));
            merged.telemetry = Some(api && merged.local_mode != Some(true));
        }
        let settings = merged.with_defaults();
        settings.check()?;
        Ok(settings)
    }

    /// The export queue limit in bytes: `buffer-memory` MiB, or for 0 1 % of the host's
    /// memory (at least 3 MiB), as the daemon does.
    pub fn buffer_bytes(&self) -> usize {
        const MIB: u64 = 1024 * 1024;
        let mb = match self.buffer_memory {
            0 => host_memory_bytes().map_or(DEFAULT_BUFFER_MB, |b| (b / 100 / MIB).max(3)),
            mb => mb,
        };
        usize::try_from(mb * MIB).unwrap_or(usize::MAX)
    }

    /// The translation settings, built once for every input that is translated (OTLP,
    /// ADOT's T1S datagrams): `AWS_XRAY_TRACING_NAME` as the X-Ray SDKs read it, then
    /// `indexed-attributes`, `index-all-attributes`, `log-group-names` and
    /// `metadata-exclude`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for a `metadata-exclude` pattern that does not parse.
    pub fn translator_config(&self) -> Result<TranslatorConfig, ConfigError> {
        TranslatorConfig::from_env()
            .with_annotation_keys(self.indexed_attributes.items().iter().cloned())
            .index_all_attributes(self.index_all_attributes)
            .with_log_groups(self.log_group_names.items().iter().cloned())
            .with_metadata_exclude(self.metadata_exclude.items().iter().cloned())
            .map_err(|e| ConfigError::Invalid(format!("metadata-exclude: {e}")))
    }

    /// Whether a translation setting is given: then ADOT's T1S datagrams are translated
    /// (so the settings apply) rather than forwarded as they came.
    pub fn has_translation_settings(&self) -> bool {
        !self.indexed_attributes.items().is_empty()
            || self.index_all_attributes
            || !self.log_group_names.items().is_empty()
            || !self.metadata_exclude.items().is_empty()
    }

    /// The merged settings as `--check-config` prints them, with derived values.
    pub fn describe(&self) -> String {
        let mut out = self.render();
        out.push_str(&format!(
            "# derived\nbuffer-bytes = {}\n",
            self.buffer_bytes()
        ));
        out
    }

    fn check(&self) -> Result<(), ConfigError> {
        let console = self
            .console
            .addr()
            .filter(|_| self.export.contains(&ExportKind::Local));
        if self.export.is_empty() {
            return Err(ConfigError::Invalid("--export: no export given".into()));
        }
        for (i, export) in self.export.iter().enumerate() {
            if self.export[..i].contains(export) {
                return Err(ConfigError::Invalid(format!(
                    "--export {export} is given twice"
                )));
            }
        }
        let tcp_listeners = [
            ("otlp-grpc", self.otlp_grpc.addr()),
            ("otlp-http", self.otlp_http.addr()),
            ("tcp", self.tcp.addr()),
            ("metrics", self.metrics.addr()),
            ("console", console),
        ];
        for (i, (a, addr_a)) in tcp_listeners.iter().enumerate() {
            for (b, addr_b) in &tcp_listeners[i + 1..] {
                if let (Some(x), Some(y)) = (addr_a, addr_b)
                    && x == y
                    && x.port() != 0
                {
                    return Err(ConfigError::Invalid(format!(
                        "{a} and {b} both listen on {x}"
                    )));
                }
            }
        }
        if self.telemetry
            && !self
                .export
                .iter()
                .any(|e| matches!(e, ExportKind::Api | ExportKind::Otlp))
        {
            return Err(ConfigError::Invalid(format!(
                "--telemetry on needs the X-Ray API: --export api (or otlp), not {:?}",
                self.export
            )));
        }
        if [&self.otlp_grpc, &self.otlp_http, &self.udp, &self.tcp]
            .iter()
            .all(|l| **l == Listen::Off)
        {
            return Err(ConfigError::Invalid(
                "every receiver is off: enable at least one of otlp-grpc, otlp-http, udp, tcp"
                    .to_owned(),
            ));
        }
        Ok(())
    }
}

/// Total memory from `/proc/meminfo` (Linux), if readable.
fn host_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let mut all = vec!["xray-bridge"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap()
    }

    #[test]
    fn exports_repeat_from_every_source_and_otlp_urls_keep_no_secret_in_sight() {
        let cli = parse(&[
            "--export",
            "api",
            "--export",
            "otlp:https://u:pw@otel.example.com:4318/v1/traces?key=k",
            "--export",
            "file:/tmp/a.jsonl,local",
            "--otlp-header",
            "x-api-key=secret-1",
        ]);
        let s = Settings::merge(cli.options, Options::default()).unwrap();
        assert_eq!(
            s.export,
            [
                ExportKind::Api,
                ExportKind::OtlpUrl("https://u:pw@otel.example.com:4318/v1/traces?key=k".into()),
                ExportKind::File("/tmp/a.jsonl".into()),
                ExportKind::Local,
            ]
        );
        assert_eq!(s.export[1].label(), "otlp:otel.example.com:4318");
        assert_eq!(s.otlp_header[0].value, "secret-1");
        let shown = s.describe();
        for secret in ["pw", "key=k", "secret-1"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        let file = Options::from_toml("export = [\"stdout\", \"otlp\"]\n").unwrap();
        let s = Settings::merge(Options::default(), file.clone()).unwrap();
        assert_eq!(s.export, [ExportKind::Stdout, ExportKind::Otlp]);
        // A higher source's list replaces a lower one's.
        let s = Settings::merge(parse(&["--export", "api"]).options, file).unwrap();
        assert_eq!(s.export, [ExportKind::Api]);
        let twice = parse(&["--export", "api", "--export", "api"]);
        assert!(Settings::merge(twice.options, Options::default()).is_err());
        for bad in ["otlp:", "otlp:ftp://x", "otlp:http://"] {
            assert!(bad.parse::<ExportKind>().is_err(), "{bad}");
        }
        assert!(Cli::try_parse_from(["xray-bridge", "--otlp-header", "no-value"]).is_err());
    }

    #[test]
    fn defaults_are_loopback() {
        let s = Settings::merge(Options::default(), Options::default()).unwrap();
        assert_eq!(s.otlp_grpc.addr(), Some("127.0.0.1:4317".parse().unwrap()));
        assert_eq!(s.otlp_http.addr(), Some("127.0.0.1:4318".parse().unwrap()));
        assert_eq!(s.udp.addr(), Some("127.0.0.1:2000".parse().unwrap()));
        assert_eq!(s.tcp.addr(), Some("127.0.0.1:2000".parse().unwrap()));
        assert_eq!(s.metrics, Listen::Off);
        assert_eq!(s.export, [ExportKind::Api]);
        assert_eq!(s.buffer_bytes(), 16 * 1024 * 1024);
        assert_eq!(s.log_level, LogLevel::Info);
        assert!(!s.local_mode);
    }

    #[test]
    fn daemon_short_flags_keep_their_meaning() {
        let cli = parse(&[
            "-b",
            "0.0.0.0:3000",
            "-t",
            "127.0.0.1:3001",
            "-n",
            "eu-west-1",
            "-o",
            "-r",
            "arn:aws:iam::123456789012:role/xray",
            "-m",
            "32",
            "-a",
            "arn:aws:ec2:x",
            "-l",
            "dev",
            "-e",
            "http://127.0.0.1:9",
            "-f",
            "/var/log/xray-bridge.log",
        ]);
        let s = Settings::merge(cli.options, Options::default()).unwrap();
        assert_eq!(s.udp.addr(), Some("0.0.0.0:3000".parse().unwrap()));
        assert_eq!(s.tcp.addr(), Some("127.0.0.1:3001".parse().unwrap()));
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
        assert!(s.local_mode);
        assert_eq!(
            s.role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/xray")
        );
        assert_eq!(s.buffer_bytes(), 32 * 1024 * 1024);
        assert_eq!(s.resource_arn.as_deref(), Some("arn:aws:ec2:x"));
        assert_eq!(s.log_level, LogLevel::Trace);
        assert_eq!(s.endpoint_url.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(s.log_file, Some(PathBuf::from("/var/log/xray-bridge.log")));
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file = Options::from_toml(
            r#"
            otlp-http = "127.0.0.1:5318"
            udp = "off"
            export = "file:/tmp/out.jsonl"
            region = "us-west-2"
            local-mode = true
            buffer-memory = 4
            log-level = "warn"
            metrics = "127.0.0.1:9464"
            shutdown-timeout = 3
            "#,
        )
        .unwrap();
        let cli = parse(&["--export", "stdout", "--otlp-grpc", "127.0.0.1:5317"]);
        let s = Settings::merge(cli.options, file).unwrap();
        assert_eq!(s.export, [ExportKind::Stdout]);
        assert_eq!(s.otlp_grpc.addr(), Some("127.0.0.1:5317".parse().unwrap()));
        assert_eq!(s.otlp_http.addr(), Some("127.0.0.1:5318".parse().unwrap()));
        assert_eq!(s.udp, Listen::Off);
        assert_eq!(s.region.as_deref(), Some("us-west-2"));
        assert!(s.local_mode);
        assert_eq!(s.buffer_bytes(), 4 * 1024 * 1024);
        assert_eq!(s.log_level, LogLevel::Warn);
        assert_eq!(s.metrics.addr(), Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(s.shutdown_timeout, Duration::from_secs(3));
    }

    #[test]
    fn export_kinds_parse_and_bad_ones_say_why() {
        assert_eq!("api".parse::<ExportKind>().unwrap(), ExportKind::Api);
        assert_eq!("otlp".parse::<ExportKind>().unwrap(), ExportKind::Otlp);
        assert_eq!("stdout".parse::<ExportKind>().unwrap(), ExportKind::Stdout);
        assert_eq!(
            "daemon:xray.local:2000".parse::<ExportKind>().unwrap(),
            ExportKind::Daemon("xray.local:2000".into())
        );
        assert_eq!(
            "file:/var/log/x.jsonl".parse::<ExportKind>().unwrap(),
            ExportKind::File("/var/log/x.jsonl".into())
        );
        for bad in [
            "",
            "udp",
            "daemon:",
            "daemon:host",
            "daemon:host:99999",
            "file:",
        ] {
            assert!(bad.parse::<ExportKind>().is_err(), "{bad}");
        }
        let round = ExportKind::Daemon("h:1".into());
        assert_eq!(round.to_string().parse::<ExportKind>().unwrap(), round);
    }

    #[test]
    fn bad_values_are_errors_not_defaults() {
        assert!(Cli::try_parse_from(["xray-bridge", "--udp", "nonsense"]).is_err());
        assert!(Cli::try_parse_from(["xray-bridge", "--export", "s3"]).is_err());
        assert!(Cli::try_parse_from(["xray-bridge", "-l", "loud"]).is_err());
        assert!(
            Options::from_toml("udp-port = 1")
                .unwrap_err()
                .contains("udp-port")
        );
        let err = Options::from_toml("\nexport = \"nowhere\"").unwrap_err();
        assert!(err.contains("line 2: key `export`"), "{err}");
        // The same parser checks flags, environment and files.
        assert!(Cli::try_parse_from(["xray-bridge", "-m", "2"]).is_err());
        let err = Options::from_toml("buffer-memory = 2").unwrap_err();
        assert!(err.contains("line 1: key `buffer-memory`: 2 MiB"), "{err}");
        assert!(Cli::try_parse_from(["xray-bridge", "--endpoint-url", "127.0.0.1:4566"]).is_err());
        assert!(Options::from_toml("endpoint-url = \"127.0.0.1:4566\"").is_err());
        let cli = parse(&["--otlp-http", "127.0.0.1:4317"]);
        let err = Settings::merge(cli.options, Options::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("otlp-grpc and otlp-http"), "{err}");
        let cli = parse(&[
            "--otlp-http",
            "off",
            "--otlp-grpc",
            "off",
            "--udp",
            "off",
            "--tcp",
            "off",
        ]);
        assert!(Settings::merge(cli.options, Options::default()).is_err());
    }

    #[test]
    fn local_mode_flags_env_file_and_defaults() {
        let s = Settings::merge(Options::default(), Options::default()).unwrap();
        assert_eq!(s.console.addr(), Some("127.0.0.1:2020".parse().unwrap()));
        assert_eq!(s.store, xray_console::StoreConfig::default_path());
        assert_eq!("local".parse::<ExportKind>().unwrap(), ExportKind::Local);

        let cli = parse(&["--local", "--export", "stdout", "--store", "/tmp/a.db"]);
        let s = Settings::merge(cli.options, Options::default()).unwrap();
        assert_eq!(s.export, [ExportKind::Local]);
        assert_eq!(s.store, PathBuf::from("/tmp/a.db"));
        assert_eq!(
            s.tcp,
            Listen::Off,
            "no sampling proxy by default in local mode"
        );

        let file = Options::from_toml(
            r#"
            local = true
            console = "127.0.0.1:3030"
            store = "/tmp/file.db"
            "#,
        )
        .unwrap();
        let cli = parse(&["--console", "127.0.0.1:4040"]);
        let s = Settings::merge(cli.options, file).unwrap();
        assert_eq!(s.export, [ExportKind::Local]);
        assert_eq!(s.console.addr(), Some("127.0.0.1:4040".parse().unwrap()));
        assert_eq!(s.store, PathBuf::from("/tmp/file.db"));

        let cli = parse(&["--local", "--console", "off"]);
        assert_eq!(
            Settings::merge(cli.options, Options::default())
                .unwrap()
                .console,
            Listen::Off
        );

        let cli = parse(&[
            "--local",
            "--console",
            "127.0.0.1:9464",
            "--metrics",
            "127.0.0.1:9464",
        ]);
        let err = Settings::merge(cli.options, Options::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("metrics and console"), "{err}");
        // Without local mode the console address is unused, so no clash.
        let cli = parse(&["--console", "127.0.0.1:9464", "--metrics", "127.0.0.1:9464"]);
        assert!(Settings::merge(cli.options, Options::default()).is_ok());
    }

    #[test]
    fn a_repeated_flag_takes_the_last_value() {
        let cli = parse(&["-l", "debug", "--log-level", "warn"]);
        assert_eq!(cli.options.log_level, Some(LogLevel::Warn));
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let cli = parse(&["--config", "/nonexistent/xray-bridge.toml"]);
        assert!(matches!(
            Settings::resolve(cli),
            Err(ConfigError::Read { .. })
        ));
    }

    #[test]
    fn each_setting_has_one_toml_key_and_its_own_daemon_key() {
        let mut toml: Vec<_> = SETTINGS.iter().map(SettingKeys::toml).collect();
        toml.sort();
        toml.dedup();
        assert_eq!(toml.len(), SETTINGS.len());
        let mut yaml: Vec<_> = SETTINGS.iter().filter_map(|s| s.yaml).collect();
        let n = yaml.len();
        yaml.sort();
        yaml.dedup();
        assert_eq!(yaml.len(), n, "two settings share a daemon key");
        // Every setting shows in --check-config.
        let text = Settings::merge(Options::default(), Options::default())
            .unwrap()
            .describe();
        for key in &toml {
            assert!(
                text.contains(&format!("\n{key} = ")) || text.starts_with(&format!("{key} = ")),
                "{key}"
            );
        }
    }

    #[test]
    fn a_daemon_file_uses_the_daemons_keys_and_rules() {
        let yaml = "Socket:\n  UDPAddress: \"127.0.0.1:3000\"\n  TCPAddress: \"\"\nRegion: eu-west-1\nLogging:\n  LogLevel: dev\n  LogPath: /var/log/x.log\nLocalMode: true\nRoleARN: \"\"\nVersion: 1\n";
        let file = Options::parse(yaml, Format::DaemonYaml).unwrap();
        let s = Settings::merge(Options::default(), file).unwrap();
        assert_eq!(s.udp, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(s.tcp, Listen::loopback(2000), "empty string = the default");
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
        assert_eq!(s.log_level, LogLevel::Trace);
        assert_eq!(s.log_file, Some(PathBuf::from("/var/log/x.log")));
        assert!(s.local_mode);
        assert_eq!(s.role_arn, None);
        assert_eq!(s.buffer_memory, 0, "the daemon's default: 1 % of memory");
        assert!(s.buffer_bytes() >= 3 * 1024 * 1024);
        // Flags still win over the file.
        let cli = parse(&["-b", "127.0.0.1:3001"]);
        let file = Options::parse(yaml, Format::DaemonYaml).unwrap();
        let s = Settings::merge(cli.options, file).unwrap();
        assert_eq!(s.udp, "127.0.0.1:3001".parse().unwrap());
    }

    #[test]
    fn daemon_file_errors_name_the_key_and_line() {
        let yaml = |t: &str| Options::parse(t, Format::DaemonYaml).unwrap_err();
        let e = yaml("Region: us-east-1\n");
        assert!(e.contains("`Version` is missing"), "{e}");
        let e = yaml("Region: us-east-1\nVersion: 3\n");
        assert!(e.contains("line 2: key `Version`"), "{e}");
        let e = yaml("Version: 2\nSocket:\n  UDPAdress: \"127.0.0.1:1\"\n");
        assert!(e.contains("line 3: unknown key `Socket.UDPAdress`"), "{e}");
        let e = yaml("Version: 2\nSocket:\n  UDPAddress: \"nowhere\"\n");
        assert!(e.contains("line 3: key `Socket.UDPAddress`"), "{e}");
        let e = yaml("Version: 2\nTotalBufferSizeMB: 2\n");
        assert!(e.contains("line 2: key `TotalBufferSizeMB`"), "{e}");
        let e = yaml("Version: 2\nProxyServer:\n  IdleConnTimeout: soon\n");
        assert!(
            e.contains("line 3: key `ProxyServer.IdleConnTimeout`"),
            "{e}"
        );
        let e = yaml("Version: 2\nRegion: [unclosed\n");
        assert!(e.contains("line"), "{e}");
    }

    #[test]
    fn without_c_the_daemons_default_file_is_read_when_it_exists() {
        let dir =
            std::env::temp_dir().join(format!("xray-bridge-default-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let default = dir.join("cfg.yaml");
        let none = Settings::resolve_with_default_file(Cli::default(), &default).unwrap();
        assert_eq!(none.region, None);
        std::fs::write(&default, "Region: ap-south-1\nVersion: 2\n").unwrap();
        let read = Settings::resolve_with_default_file(Cli::default(), &default).unwrap();
        assert_eq!(read.region.as_deref(), Some("ap-south-1"));
        // -c wins over the default location.
        let toml = dir.join("bridge.toml");
        std::fs::write(&toml, "region = \"eu-north-1\"\n").unwrap();
        let cli = parse(&["-c", toml.to_str().unwrap()]);
        let chosen = Settings::resolve_with_default_file(cli, &default).unwrap();
        assert_eq!(chosen.region.as_deref(), Some("eu-north-1"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn telemetry_defaults_follow_the_export() {
        let s = |args: &[&str]| Settings::merge(parse(args).options, Options::default());
        assert!(s(&[]).unwrap().telemetry);
        assert!(!s(&["--export", "stdout"]).unwrap().telemetry);
        assert!(!s(&["--local"]).unwrap().telemetry);
        assert!(!s(&["--telemetry", "off"]).unwrap().telemetry);
        assert!(!s(&["-o"]).unwrap().telemetry);
        assert!(s(&["-o", "--telemetry", "on"]).unwrap().telemetry);
        assert!(s(&["--export", "stdout", "--telemetry", "on"]).is_err());
        assert_eq!(
            s(&["--telemetry-interval", "5"])
                .unwrap()
                .telemetry_interval,
            Duration::from_secs(5)
        );
        assert!(Cli::try_parse_from(["xray-bridge", "--telemetry-interval", "0"]).is_err());
    }

    #[test]
    fn spool_and_retry_settings_from_flags_files_and_defaults() {
        let s = Settings::merge(Options::default(), Options::default()).unwrap();
        assert_eq!(s.spool, None);
        assert_eq!(s.spool_max_bytes, 256 * 1024 * 1024);
        assert_eq!(
            s.spool_fsync,
            FsyncPolicy::Every(Duration::from_millis(1000))
        );
        assert_eq!(s.retry_max_elapsed, Duration::from_secs(300));
        let toml = Options::from_toml(
            r#"
            spool = "/var/spool/xray-bridge"
            spool-max-bytes = 1048576
            spool-fsync = "always"
            retry-max-elapsed = 60
            "#,
        )
        .unwrap();
        let s = Settings::merge(Options::default(), toml).unwrap();
        assert_eq!(s.spool, Some(PathBuf::from("/var/spool/xray-bridge")));
        assert_eq!(s.spool_max_bytes, 1024 * 1024);
        assert_eq!(s.spool_fsync, FsyncPolicy::Always);
        assert_eq!(s.retry_max_elapsed, Duration::from_secs(60));
        let yaml = Options::parse(
            "Version: 2\nSpool:\n  Directory: /var/spool/xb\n  MaxBytes: 70000\n  Fsync: 250ms\nRetryMaxElapsedSeconds: 30\n",
            Format::DaemonYaml,
        )
        .unwrap();
        let s = Settings::merge(Options::default(), yaml).unwrap();
        assert_eq!(s.spool, Some(PathBuf::from("/var/spool/xb")));
        assert_eq!(s.spool_max_bytes, 70000);
        assert_eq!(
            s.spool_fsync,
            FsyncPolicy::Every(Duration::from_millis(250))
        );
        assert_eq!(s.retry_max_elapsed, Duration::from_secs(30));
        let cli = parse(&[
            "--spool",
            "/tmp/s",
            "--spool-max-bytes",
            "70000",
            "--spool-fsync",
            "200ms",
            "--retry-max-elapsed",
            "5",
        ]);
        let s = Settings::merge(cli.options, Options::default()).unwrap();
        assert_eq!(s.spool, Some(PathBuf::from("/tmp/s")));
        assert_eq!(
            s.spool_fsync,
            FsyncPolicy::Every(Duration::from_millis(200))
        );
        assert_eq!(s.retry_max_elapsed, Duration::from_secs(5));
        for bad in [
            &["--spool-fsync", "never"][..],
            &["--spool-max-bytes", "10"],
            &["--spool", ""],
            &["--retry-max-elapsed", "soon"],
        ] {
            let mut all = vec!["xray-bridge"];
            all.extend_from_slice(bad);
            assert!(Cli::try_parse_from(all).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_proxy_password_is_never_shown() {
        let cli = parse(&["-p", "http://me:s3cret@proxy.internal:3128"]);
        let s = Settings::merge(cli.options, Options::default()).unwrap();
        assert_eq!(
            s.proxy_address.as_ref().map(SecretUrl::expose),
            Some("http://me:s3cret@proxy.internal:3128")
        );
        let shown = s.describe();
        assert!(
            shown.contains("proxy-address = Some(\"http://me:***@proxy.internal:3128\")"),
            "{shown}"
        );
        assert!(!shown.contains("s3cret"));
        let err = Options::from_toml("proxy-address = \"me:s3cret@proxy:1\"").unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
        assert_eq!(
            values::redact_password("http://proxy:1/x@y"),
            "http://proxy:1/x@y"
        );
    }

    #[test]
    fn the_command_line_declares_no_flag_twice() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
