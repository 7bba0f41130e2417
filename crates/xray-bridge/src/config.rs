//! Command line, environment and TOML configuration, merged into [`Settings`].
//!
//! Precedence, highest first: command-line flag, environment variable
//! (`XRAY_BRIDGE_*`), config file (`--config`), built-in default.
//!
//! | flag | short (daemon) | environment | TOML key | default |
//! |---|---|---|---|---|
//! | `--otlp-grpc ADDR\|off` | | `XRAY_BRIDGE_OTLP_GRPC` | `otlp-grpc` | `127.0.0.1:4317` |
//! | `--otlp-http ADDR\|off` | | `XRAY_BRIDGE_OTLP_HTTP` | `otlp-http` | `127.0.0.1:4318` |
//! | `--udp ADDR\|off` | `-b` (`--bind`) | `XRAY_BRIDGE_UDP` | `udp` | `127.0.0.1:2000` |
//! | `--tcp ADDR\|off` | `-t` (`--bind-tcp`) | `XRAY_BRIDGE_TCP` | `tcp` | `127.0.0.1:2000` |
//! | `--export KIND` | | `XRAY_BRIDGE_EXPORT` | `export` | `api` |
//! | `--region R` | `-n` | `XRAY_BRIDGE_REGION` | `region` | AWS chain |
//! | `--endpoint-url URL` | `-e` (`--endpoint`) | `XRAY_BRIDGE_ENDPOINT_URL` | `endpoint-url` | regional |
//! | `--config FILE` | `-c` | `XRAY_BRIDGE_CONFIG` | | none |
//! | `--metrics ADDR\|off` | | `XRAY_BRIDGE_METRICS` | `metrics` | off |
//! | `--local-mode` | `-o` | `XRAY_BRIDGE_LOCAL_MODE` | `local-mode` | false |
//! | `--role-arn ARN` | `-r` | `XRAY_BRIDGE_ROLE_ARN` | `role-arn` | none |
//! | `--buffer-memory MB` | `-m` | `XRAY_BRIDGE_BUFFER_MEMORY` | `buffer-memory` | 16 |
//! | `--resource-arn ARN` | `-a` | `XRAY_BRIDGE_RESOURCE_ARN` | `resource-arn` | none |
//! | `--log-level LEVEL` | `-l` | `XRAY_BRIDGE_LOG_LEVEL` | `log-level` | `info` |
//! | `--log-file PATH` | `-f` | `XRAY_BRIDGE_LOG_FILE` | `log-file` | standard error |
//! | `--max-request-bytes N` | | `XRAY_BRIDGE_MAX_REQUEST_BYTES` | `max-request-bytes` | 8 MiB |
//! | `--shutdown-timeout SECS` | | `XRAY_BRIDGE_SHUTDOWN_TIMEOUT` | `shutdown-timeout` | 10 |
//! | `--local` (= `--export local`) | | `XRAY_BRIDGE_LOCAL` | `local` | false |
//! | `--console ADDR` | | `XRAY_BRIDGE_CONSOLE` | `console` | `127.0.0.1:2020` |
//! | `--store PATH` | | `XRAY_BRIDGE_STORE` | `store` | the console's default |
//!
//! `--console` and `--store` only matter with `--export local`.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

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

/// The command line. Every flag can also come from its environment variable or the
/// config file; see the module documentation for the names.
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
    /// OTLP gRPC listen address, or `off`.
    #[arg(long, env = "XRAY_BRIDGE_OTLP_GRPC", value_name = "ADDR")]
    pub otlp_grpc: Option<Listen>,
    /// OTLP/HTTP listen address (`/v1/traces`), or `off`.
    #[arg(long, env = "XRAY_BRIDGE_OTLP_HTTP", value_name = "ADDR")]
    pub otlp_http: Option<Listen>,
    /// X-Ray daemon protocol UDP listen address, or `off` (daemon: -b/--bind).
    #[arg(
        long,
        short = 'b',
        visible_alias = "bind",
        env = "XRAY_BRIDGE_UDP",
        value_name = "ADDR"
    )]
    pub udp: Option<Listen>,
    /// Sampling proxy TCP listen address, or `off` (daemon: -t/--bind-tcp).
    #[arg(
        long,
        short = 't',
        visible_alias = "bind-tcp",
        env = "XRAY_BRIDGE_TCP",
        value_name = "ADDR"
    )]
    pub tcp: Option<Listen>,
    /// Where documents go: `api`, `otlp`, `daemon:HOST:PORT`, `file:PATH`, `stdout` or
    /// `local` (kept in the local store and shown on the console page).
    #[arg(long, env = "XRAY_BRIDGE_EXPORT", value_name = "KIND")]
    pub export: Option<ExportKind>,
    /// AWS region (daemon: -n/--region); else the AWS chain (`AWS_REGION`, profile, IMDS).
    #[arg(long, short = 'n', env = "XRAY_BRIDGE_REGION", value_name = "R")]
    pub region: Option<String>,
    /// X-Ray API endpoint, e.g. a VPC endpoint or a test server (daemon: -e/--endpoint).
    #[arg(
        long,
        short = 'e',
        visible_alias = "endpoint",
        env = "XRAY_BRIDGE_ENDPOINT_URL",
        value_name = "URL"
    )]
    pub endpoint_url: Option<String>,
    /// TOML config file; its keys are the long flag names (daemon: -c/--config).
    #[arg(long, short = 'c', env = "XRAY_BRIDGE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Prometheus `/metrics` and `/healthz` listen address, or `off`.
    #[arg(long, env = "XRAY_BRIDGE_METRICS", value_name = "ADDR")]
    pub metrics: Option<Listen>,
    /// Do not use EC2 instance metadata for region or credentials (daemon: -o/--local-mode).
    #[arg(long, short = 'o', env = "XRAY_BRIDGE_LOCAL_MODE", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub local_mode: Option<bool>,
    /// IAM role to assume for every AWS call (daemon: -r/--role-arn).
    #[arg(long, short = 'r', env = "XRAY_BRIDGE_ROLE_ARN", value_name = "ARN")]
    pub role_arn: Option<String>,
    /// Export queue size in MiB (daemon: -m/--buffer-memory).
    #[arg(
        long,
        short = 'm',
        env = "XRAY_BRIDGE_BUFFER_MEMORY",
        value_name = "MB"
    )]
    pub buffer_memory: Option<u64>,
    /// ARN of the resource running the bridge, reported in logs (daemon: -a/--resource-arn).
    #[arg(
        long,
        short = 'a',
        env = "XRAY_BRIDGE_RESOURCE_ARN",
        value_name = "ARN"
    )]
    pub resource_arn: Option<String>,
    /// Log level: trace, debug, info, warn, error, off; the daemon's dev and prod too
    /// (daemon: -l/--log-level).
    #[arg(long, short = 'l', env = "XRAY_BRIDGE_LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<LogLevel>,
    /// Append logs to this file instead of standard error (daemon: -f/--log-file).
    #[arg(long, short = 'f', env = "XRAY_BRIDGE_LOG_FILE", value_name = "PATH")]
    pub log_file: Option<PathBuf>,
    /// Largest OTLP request body in bytes, compressed and decompressed.
    #[arg(long, env = "XRAY_BRIDGE_MAX_REQUEST_BYTES", value_name = "N")]
    pub max_request_bytes: Option<usize>,
    /// Seconds allowed on SIGTERM/Ctrl-C to deliver what is queued.
    #[arg(long, env = "XRAY_BRIDGE_SHUTDOWN_TIMEOUT", value_name = "SECS")]
    pub shutdown_timeout: Option<u64>,
    /// Local mode, the same as `--export local` (and it wins over `--export`).
    #[arg(long, env = "XRAY_BRIDGE_LOCAL", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub local: Option<bool>,
    /// Local mode: the console page's address (default 127.0.0.1:2020).
    #[arg(long, env = "XRAY_BRIDGE_CONSOLE", value_name = "ADDR")]
    pub console: Option<Listen>,
    /// Local mode: the SQLite store file (default `$XDG_DATA_HOME/xray-bridge/local.db`).
    #[arg(long, env = "XRAY_BRIDGE_STORE", value_name = "PATH")]
    pub store: Option<PathBuf>,
    /// Print the merged configuration and exit.
    #[arg(long)]
    pub check_config: bool,
    /// Print the version (daemon: -v/--version).
    #[arg(short = 'v', long = "version", visible_short_alias = 'V', action = clap::ArgAction::Version)]
    pub version: Option<bool>,
}

/// The config file: the same settings as the flags, keyed by their long names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    otlp_grpc: Option<String>,
    otlp_http: Option<String>,
    udp: Option<String>,
    tcp: Option<String>,
    export: Option<String>,
    region: Option<String>,
    endpoint_url: Option<String>,
    metrics: Option<String>,
    local_mode: Option<bool>,
    role_arn: Option<String>,
    buffer_memory: Option<u64>,
    resource_arn: Option<String>,
    log_level: Option<String>,
    log_file: Option<PathBuf>,
    max_request_bytes: Option<usize>,
    shutdown_timeout: Option<u64>,
    local: Option<bool>,
    console: Option<String>,
    store: Option<PathBuf>,
}

/// A listen address, or `off` to disable that listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// The listener is disabled.
    Off,
    /// Listen on this address.
    On(SocketAddr),
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") || s.eq_ignore_ascii_case("none") {
            return Ok(Listen::Off);
        }
        if let Ok(addr) = s.parse() {
            return Ok(Listen::On(addr));
        }
        // `host:port` with a host name, e.g. `localhost:2000`.
        match s.to_socket_addrs() {
            Ok(mut addrs) => addrs
                .next()
                .map(Listen::On)
                .ok_or_else(|| format!("`{s}` resolves to no address")),
            Err(e) => Err(format!("`{s}` is not HOST:PORT or `off`: {e}")),
        }
    }
}

impl Listen {
    /// The address, when enabled.
    pub fn addr(&self) -> Option<SocketAddr> {
        match self {
            Listen::Off => None,
            Listen::On(a) => Some(*a),
        }
    }
}

/// Where the bridge sends what it receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportKind {
    /// `PutTraceSegments` on the X-Ray API.
    Api,
    /// The X-Ray OTLP endpoint (`/v1/traces`, SigV4).
    Otlp,
    /// Any OTLP/HTTP backend (`otlp:URL`): protobuf, unsigned unless the host is an AWS
    /// endpoint.
    OtlpUrl(String),
    /// Another X-Ray daemon (or bridge) over UDP.
    Daemon(String),
    /// A file, one document per line (appended).
    File(PathBuf),
    /// Standard output, one document per line.
    Stdout,
    /// Local mode: the console's SQLite store, shown on the console page.
    Local,
}

impl FromStr for ExportKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let nonempty = |rest: &str, what: &str| {
            if rest.trim().is_empty() {
                Err(format!("`{s}`: {what} is empty"))
            } else {
                Ok(rest.trim().to_owned())
            }
        };
        match s {
            "api" => Ok(ExportKind::Api),
            "otlp" => Ok(ExportKind::Otlp),
            "stdout" => Ok(ExportKind::Stdout),
            "local" => Ok(ExportKind::Local),
            _ => {
                if let Some(rest) = s.strip_prefix("daemon:") {
                    let hp = nonempty(rest, "HOST:PORT")?;
                    match hp.rsplit_once(':') {
                        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                            Ok(ExportKind::Daemon(hp))
                        }
                        _ => Err(format!("`{s}`: expected daemon:HOST:PORT")),
                    }
                } else if let Some(rest) = s.strip_prefix("file:") {
                    Ok(ExportKind::File(PathBuf::from(nonempty(rest, "PATH")?)))
                } else if let Some(rest) = s.strip_prefix("otlp:") {
                    let url = nonempty(rest, "URL")?;
                    let valid = ["http://", "https://"]
                        .iter()
                        .any(|p| url.strip_prefix(p).is_some_and(|h| !h.is_empty()));
                    if valid {
                        Ok(ExportKind::OtlpUrl(url))
                    } else {
                        Err(format!(
                            "`otlp:{}`: expected otlp:http(s)://HOST[:PORT]/PATH",
                            redact_url(&url)
                        ))
                    }
                } else {
                    Err(format!(
                        "`{s}` is not an export kind: api, otlp, otlp:URL, daemon:HOST:PORT, file:PATH, stdout or local"
                    ))
                }
            }
        }
    }
}

impl fmt::Display for ExportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportKind::Api => f.write_str("api"),
            ExportKind::Otlp => f.write_str("otlp"),
            ExportKind::OtlpUrl(url) => write!(f, "otlp:{}", redact_url(url)),
            ExportKind::Daemon(a) => write!(f, "daemon:{a}"),
            ExportKind::File(p) => write!(f, "file:{}", p.display()),
            ExportKind::Stdout => f.write_str("stdout"),
            ExportKind::Local => f.write_str("local"),
        }
    }
}

impl ExportKind {
    /// The export's `export` metric label: its kind (`api`, `otlp`, `daemon`, `file`,
    /// `stdout`, `local`), or `otlp:HOST[:PORT]` for an OTLP/HTTP backend.
    pub fn label(&self) -> String {
        match self {
            ExportKind::Api => "api".into(),
            ExportKind::Otlp => "otlp".into(),
            ExportKind::OtlpUrl(url) => {
                let clean = redact_url(url);
                let rest = clean.split_once("://").map_or(clean.as_str(), |(_, r)| r);
                format!("otlp:{}", rest.split('/').next().unwrap_or(rest))
            }
            ExportKind::Daemon(_) => "daemon".into(),
            ExportKind::File(_) => "file".into(),
            ExportKind::Stdout => "stdout".into(),
            ExportKind::Local => "local".into(),
        }
    }

    /// Whether it takes OTLP spans (`otlp`, `otlp:URL`) rather than segment documents.
    pub fn is_otlp(&self) -> bool {
        matches!(self, ExportKind::Otlp | ExportKind::OtlpUrl(_))
    }
}

/// A URL without what may be secret: user info (`user:password@`) and the query.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let path = path.split(['?', '#']).next().unwrap_or("");
    if scheme.is_empty() {
        format!("{host}{path}")
    } else {
        format!("{scheme}://{host}{path}")
    }
}

/// Log verbosity; accepts the X-Ray daemon's names too (`dev` = trace, `prod` = info).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation (default).
    Info,
    /// Problems only.
    Warn,
    /// Errors only.
    Error,
    /// Nothing.
    Off,
}

impl FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "trace" | "dev" => Ok(LogLevel::Trace),
            "debug" => Ok(LogLevel::Debug),
            "info" | "prod" => Ok(LogLevel::Info),
            "warn" | "warning" => Ok(LogLevel::Warn),
            "error" => Ok(LogLevel::Error),
            "off" => Ok(LogLevel::Off),
            other => Err(format!(
                "`{other}` is not a log level: trace, debug, info, warn, error, off (or dev, prod)"
            )),
        }
    }
}

impl LogLevel {
    /// The `tracing` filter directive.
    pub fn as_filter(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Off => "off",
        }
    }
}

/// The merged configuration the bridge runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// OTLP gRPC listener.
    pub otlp_grpc: Option<SocketAddr>,
    /// OTLP/HTTP listener.
    pub otlp_http: Option<SocketAddr>,
    /// Daemon-protocol UDP listener.
    pub udp: Option<SocketAddr>,
    /// Sampling proxy TCP listener.
    pub tcp: Option<SocketAddr>,
    /// Metrics and health listener.
    pub metrics: Option<SocketAddr>,
    /// Export destination.
    pub export: ExportKind,
    /// AWS region override.
    pub region: Option<String>,
    /// X-Ray API endpoint override.
    pub endpoint_url: Option<String>,
    /// No EC2 instance metadata.
    pub local_mode: bool,
    /// Role to assume.
    pub role_arn: Option<String>,
    /// Export queue limit in bytes.
    pub buffer_bytes: usize,
    /// ARN of the resource running the bridge.
    pub resource_arn: Option<String>,
    /// Log level.
    pub log_level: LogLevel,
    /// Log file (standard error when `None`).
    pub log_file: Option<PathBuf>,
    /// Largest OTLP request body.
    pub max_request_bytes: usize,
    /// Time allowed to drain on shutdown.
    pub shutdown_timeout: Duration,
    /// Local mode: the console page's address (`None`: no page, the store only).
    pub console: Option<SocketAddr>,
    /// Local mode: the store file.
    pub store: PathBuf,
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
    /// The config file is not valid TOML for these settings.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("{0}")]
    Invalid(String),
}

impl FileConfig {
    /// Reads and parses a config file; unknown keys are errors.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        FileConfig::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses config-file text.
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim().to_owned())
    }
}

/// Takes the flag/environment value, else parses the file's value, else the default.
fn pick<T: FromStr<Err = String>>(
    cli: Option<T>,
    file: Option<&str>,
    key: &str,
    default: impl FnOnce() -> T,
) -> Result<T, ConfigError> {
    if let Some(v) = cli {
        return Ok(v);
    }
    match file {
        Some(text) => text
            .parse()
            .map_err(|e| ConfigError::Invalid(format!("config key `{key}`: {e}"))),
        None => Ok(default()),
    }
}

impl Settings {
    /// Merges the command line (with its environment variables) over the config file
    /// (the one named by `--config`, if any) over the defaults.
    pub fn resolve(cli: Cli) -> Result<Settings, ConfigError> {
        let file = match &cli.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        Settings::merge(cli, file)
    }

    /// Merges the command line over an already parsed config file.
    pub fn merge(cli: Cli, file: FileConfig) -> Result<Settings, ConfigError> {
        let listen = |cli: Option<Listen>, file: Option<&str>, key: &str, default: &str| {
            pick(cli, file, key, || default.parse().unwrap_or(Listen::Off)).map(|l| l.addr())
        };
        let otlp_grpc = listen(
            cli.otlp_grpc,
            file.otlp_grpc.as_deref(),
            "otlp-grpc",
            DEFAULT_OTLP_GRPC,
        )?;
        let otlp_http = listen(
            cli.otlp_http,
            file.otlp_http.as_deref(),
            "otlp-http",
            DEFAULT_OTLP_HTTP,
        )?;
        let udp = listen(cli.udp, file.udp.as_deref(), "udp", DEFAULT_UDP)?;
        let metrics = listen(cli.metrics, file.metrics.as_deref(), "metrics", "off")?;
        let mut export = pick(cli.export, file.export.as_deref(), "export", || {
            ExportKind::Api
        })?;
        // `--local` (or its env/TOML key) is a shortcut for `--export local`.
        if cli.local.or(file.local).unwrap_or(false) {
            export = ExportKind::Local;
        }
        let console = listen(
            cli.console,
            file.console.as_deref(),
            "console",
            DEFAULT_CONSOLE,
        )?;
        let store = cli
            .store
            .or(file.store)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(xray_console::StoreConfig::default_path);
        // Local mode needs no AWS account, so the sampling proxy (which signs calls to
        // AWS) is off unless asked for.
        let tcp_default = if export == ExportKind::Local {
            "off"
        } else {
            DEFAULT_TCP
        };
        let tcp = listen(cli.tcp, file.tcp.as_deref(), "tcp", tcp_default)?;
        let log_level = pick(
            cli.log_level,
            file.log_level.as_deref(),
            "log-level",
            || LogLevel::Info,
        )?;
        let buffer_mb = cli
            .buffer_memory
            .or(file.buffer_memory)
            .unwrap_or(DEFAULT_BUFFER_MB);
        if buffer_mb == 0 || buffer_mb > 64 * 1024 {
            return Err(ConfigError::Invalid(format!(
                "buffer-memory must be between 1 and 65536 MiB, not {buffer_mb}"
            )));
        }
        let max_request_bytes = cli
            .max_request_bytes
            .or(file.max_request_bytes)
            .unwrap_or(DEFAULT_MAX_REQUEST_BYTES);
        if max_request_bytes < 1024 {
            return Err(ConfigError::Invalid(format!(
                "max-request-bytes must be at least 1024, not {max_request_bytes}"
            )));
        }
        let shutdown_secs = cli
            .shutdown_timeout
            .or(file.shutdown_timeout)
            .unwrap_or(DEFAULT_SHUTDOWN_SECS);
        let nonempty = |s: Option<String>| s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let settings = Settings {
            otlp_grpc,
            otlp_http,
            udp,
            tcp,
            metrics,
            export,
            region: nonempty(cli.region.or(file.region)),
            endpoint_url: nonempty(cli.endpoint_url.or(file.endpoint_url)),
            local_mode: cli.local_mode.or(file.local_mode).unwrap_or(false),
            role_arn: nonempty(cli.role_arn.or(file.role_arn)),
            buffer_bytes: (buffer_mb * 1024 * 1024) as usize,
            resource_arn: nonempty(cli.resource_arn.or(file.resource_arn)),
            log_level,
            log_file: cli.log_file.or(file.log_file),
            max_request_bytes,
            shutdown_timeout: Duration::from_secs(shutdown_secs),
            console,
            store,
        };
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.endpoint_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid(format!(
                "endpoint-url must start with http:// or https://, not `{url}`"
            )));
        }
        let console = self.console.filter(|_| self.export == ExportKind::Local);
        let tcp_listeners = [
            ("otlp-grpc", self.otlp_grpc),
            ("otlp-http", self.otlp_http),
            ("tcp", self.tcp),
            ("metrics", self.metrics),
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
        if self.otlp_grpc.is_none()
            && self.otlp_http.is_none()
            && self.udp.is_none()
            && self.tcp.is_none()
        {
            return Err(ConfigError::Invalid(
                "every receiver is off: enable at least one of otlp-grpc, otlp-http, udp, tcp"
                    .to_owned(),
            ));
        }
        Ok(())
    }
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
    fn defaults_are_loopback() {
        let s = Settings::merge(Cli::default(), FileConfig::default()).unwrap();
        assert_eq!(s.otlp_grpc, Some("127.0.0.1:4317".parse().unwrap()));
        assert_eq!(s.otlp_http, Some("127.0.0.1:4318".parse().unwrap()));
        assert_eq!(s.udp, Some("127.0.0.1:2000".parse().unwrap()));
        assert_eq!(s.tcp, Some("127.0.0.1:2000".parse().unwrap()));
        assert_eq!(s.metrics, None);
        assert_eq!(s.export, ExportKind::Api);
        assert_eq!(s.buffer_bytes, 16 * 1024 * 1024);
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
        let s = Settings::merge(cli, FileConfig::default()).unwrap();
        assert_eq!(s.udp, Some("0.0.0.0:3000".parse().unwrap()));
        assert_eq!(s.tcp, Some("127.0.0.1:3001".parse().unwrap()));
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
        assert!(s.local_mode);
        assert_eq!(
            s.role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/xray")
        );
        assert_eq!(s.buffer_bytes, 32 * 1024 * 1024);
        assert_eq!(s.resource_arn.as_deref(), Some("arn:aws:ec2:x"));
        assert_eq!(s.log_level, LogLevel::Trace);
        assert_eq!(s.endpoint_url.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(s.log_file, Some(PathBuf::from("/var/log/xray-bridge.log")));
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file = FileConfig::parse(
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
        let s = Settings::merge(cli, file).unwrap();
        assert_eq!(s.export, ExportKind::Stdout);
        assert_eq!(s.otlp_grpc, Some("127.0.0.1:5317".parse().unwrap()));
        assert_eq!(s.otlp_http, Some("127.0.0.1:5318".parse().unwrap()));
        assert_eq!(s.udp, None);
        assert_eq!(s.region.as_deref(), Some("us-west-2"));
        assert!(s.local_mode);
        assert_eq!(s.buffer_bytes, 4 * 1024 * 1024);
        assert_eq!(s.log_level, LogLevel::Warn);
        assert_eq!(s.metrics, Some("127.0.0.1:9464".parse().unwrap()));
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
            FileConfig::parse("udp-port = 1")
                .unwrap_err()
                .contains("udp-port")
        );
        let file = FileConfig::parse(r#"export = "nowhere""#).unwrap();
        let err = Settings::merge(Cli::default(), file)
            .unwrap_err()
            .to_string();
        assert!(err.contains("export"), "{err}");
        let cli = parse(&["-m", "0"]);
        assert!(Settings::merge(cli, FileConfig::default()).is_err());
        let cli = parse(&["--endpoint-url", "127.0.0.1:4566"]);
        assert!(Settings::merge(cli, FileConfig::default()).is_err());
        let cli = parse(&["--otlp-http", "127.0.0.1:4317"]);
        let err = Settings::merge(cli, FileConfig::default())
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
        assert!(Settings::merge(cli, FileConfig::default()).is_err());
    }

    #[test]
    fn local_mode_flags_env_file_and_defaults() {
        let s = Settings::merge(Cli::default(), FileConfig::default()).unwrap();
        assert_eq!(s.console, Some("127.0.0.1:2020".parse().unwrap()));
        assert_eq!(s.store, xray_console::StoreConfig::default_path());
        assert_eq!("local".parse::<ExportKind>().unwrap(), ExportKind::Local);

        let cli = parse(&["--local", "--export", "stdout", "--store", "/tmp/a.db"]);
        let s = Settings::merge(cli, FileConfig::default()).unwrap();
        assert_eq!(s.export, ExportKind::Local);
        assert_eq!(s.store, PathBuf::from("/tmp/a.db"));
        assert_eq!(s.tcp, None, "no sampling proxy by default in local mode");

        let file = FileConfig::parse(
            r#"
            local = true
            console = "127.0.0.1:3030"
            store = "/tmp/file.db"
            "#,
        )
        .unwrap();
        let cli = parse(&["--console", "127.0.0.1:4040"]);
        let s = Settings::merge(cli, file).unwrap();
        assert_eq!(s.export, ExportKind::Local);
        assert_eq!(s.console, Some("127.0.0.1:4040".parse().unwrap()));
        assert_eq!(s.store, PathBuf::from("/tmp/file.db"));

        let cli = parse(&["--local", "--console", "off"]);
        assert_eq!(
            Settings::merge(cli, FileConfig::default()).unwrap().console,
            None
        );

        let cli = parse(&[
            "--local",
            "--console",
            "127.0.0.1:9464",
            "--metrics",
            "127.0.0.1:9464",
        ]);
        let err = Settings::merge(cli, FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("metrics and console"), "{err}");
        // Without local mode the console address is unused, so no clash.
        let cli = parse(&["--console", "127.0.0.1:9464", "--metrics", "127.0.0.1:9464"]);
        assert!(Settings::merge(cli, FileConfig::default()).is_ok());
    }

    #[test]
    fn a_repeated_flag_takes_the_last_value() {
        let cli = parse(&["-l", "debug", "--log-level", "warn"]);
        assert_eq!(cli.log_level, Some(LogLevel::Warn));
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let cli = parse(&["--config", "/nonexistent/xray-bridge.toml"]);
        assert!(matches!(
            Settings::resolve(cli),
            Err(ConfigError::Read { .. })
        ));
    }
}
