//! The value types of the settings and the one parser of each, shared by the command
//! line, the environment and both config-file formats (so a value is checked the same
//! way wherever it comes from).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

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
    /// `127.0.0.1:port`.
    pub const fn loopback(port: u16) -> Listen {
        Listen::On(SocketAddr::new(
            std::net::IpAddr::V4(Ipv4Addr::LOCALHOST),
            port,
        ))
    }

    /// The address, when enabled.
    pub fn addr(&self) -> Option<SocketAddr> {
        match self {
            Listen::Off => None,
            Listen::On(a) => Some(*a),
        }
    }
}

/// Where the bridge sends what it receives (`--export`, repeatable). Its debug form is
/// its display form: an `otlp:URL` never shows user info or a query.
#[derive(Clone, PartialEq, Eq)]
pub enum ExportKind {
    /// `PutTraceSegments` on the X-Ray API.
    Api,
    /// The X-Ray OTLP endpoint (`/v1/traces`, SigV4): OTLP input as it came, daemon
    /// documents converted.
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

impl fmt::Debug for ExportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
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
///
/// ```
/// use xray_bridge::config::values::redact_url;
/// assert_eq!(redact_url("https://u:p@otel.example.com:4318/v1/traces?key=s"), "https://otel.example.com:4318/v1/traces");
/// ```
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

/// How OTLP request bodies are compressed (`--otlp-compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip (the default).
    Gzip,
    /// None.
    None,
}

impl FromStr for Compression {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "gzip" => Ok(Compression::Gzip),
            "none" | "off" => Ok(Compression::None),
            other => Err(format!("`{other}` is not a compression: gzip or none")),
        }
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

/// An `http(s)://` URL that may carry a password (`http://user:pass@proxy:3128`): shown
/// with the password replaced by `***` (in `--check-config`, logs and errors).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// The URL as given, password included (for the HTTP client only).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password hidden.
    pub fn redacted(&self) -> String {
        redact_password(&self.0)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

/// `scheme://user:***@host...` for `scheme://user:password@host...`.
///
/// # Examples
///
/// ```
/// use xray_bridge::config::values::redact_password;
/// assert_eq!(redact_password("http://me:pw@proxy:3128"), "http://me:***@proxy:3128");
/// assert_eq!(redact_password("http://proxy:3128"), "http://proxy:3128");
/// ```
pub fn redact_password(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or_default();
            format!("{scheme}{user}:***@{}", &rest[at + 1..])
        }
        None => url.to_owned(),
    }
}

/// An `http://` or `https://` URL that may carry a password.
///
/// # Errors
///
/// Text that does not start with `http://` or `https://` (the message hides the
/// password).
pub fn parse_secret_url(s: &str) -> Result<SecretUrl, String> {
    parse_http_url(s).map(SecretUrl).map_err(|_| {
        format!(
            "`{}` must start with http:// or https://",
            redact_password(s.trim())
        )
    })
}

/// Parses with the type's [`FromStr`]; the error names the value.
///
/// # Errors
///
/// The type's parse error as text, naming the value.
pub fn parse_from_str<T>(s: &str) -> Result<T, String>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    s.trim().parse().map_err(|e: T::Err| {
        let e = e.to_string();
        if e.contains(s.trim()) {
            e
        } else {
            format!("`{s}`: {e}")
        }
    })
}

/// A comma-separated list, items trimmed, empty ones left out (a TOML array is read as
/// its items joined with commas).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct List(pub Vec<String>);

impl List {
    /// The items.
    pub fn items(&self) -> &[String] {
        &self.0
    }
}

impl fmt::Debug for List {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

/// A comma-separated list.
///
/// # Errors
///
/// Never; the `Result` fits the other value parsers.
pub fn parse_list(s: &str) -> Result<List, String> {
    Ok(List(xray_translate::split_list(s)))
}

/// A comma-separated list of glob patterns, each checked.
///
/// # Errors
///
/// A message naming the first pattern that does not parse.
pub fn parse_globs(s: &str) -> Result<List, String> {
    let list = parse_list(s)?;
    xray_translate::TranslatorConfig::default()
        .with_metadata_exclude(list.items().iter().cloned())
        .map_err(|e| e.to_string())?;
    Ok(list)
}

/// A text, trimmed.
///
/// # Errors
///
/// Never; the `Result` fits the other value parsers.
pub fn parse_text(s: &str) -> Result<String, String> {
    Ok(s.trim().to_owned())
}

/// A path, as written.
///
/// # Errors
///
/// Never; the `Result` fits the other value parsers.
pub fn parse_path(s: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(s.trim()))
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
///
/// # Errors
///
/// Any other text.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("`{s}` is not true or false")),
    }
}

/// A whole number of seconds.
///
/// # Errors
///
/// Text that is not a whole non-negative number.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    parse_from_str::<u64>(s).map(Duration::from_secs)
}

/// An integer in `range` (inclusive).
///
/// # Errors
///
/// Text that is not a number, or a number outside `range`.
pub fn parse_in<T>(s: &str, range: std::ops::RangeInclusive<T>) -> Result<T, String>
where
    T: FromStr + PartialOrd + fmt::Display + Copy,
    T::Err: fmt::Display,
{
    let v: T = parse_from_str(s)?;
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "{v} is out of range: {} to {}",
            range.start(),
            range.end()
        ))
    }
}

/// An `http://` or `https://` URL (trailing `/` removed).
///
/// # Errors
///
/// Text that does not start with `http://` or `https://`.
pub fn parse_http_url(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.starts_with("http://") || s.starts_with("https://") {
        Ok(s.trim_end_matches('/').to_owned())
    } else {
        Err(format!("`{s}` must start with http:// or https://"))
    }
}
