//! The X-Ray daemon's UDP protocol: one document per datagram, header line first.
#![allow(unsafe_code)] // FFI or a std API that is unsafe to call; each block says why it is sound.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::str::FromStr;
use std::time::{Duration, Instant};

use xray_model::DAEMON_HEADER;
use xray_model::limits::MAX_DATAGRAM_BYTES;

use crate::item::Document;
use crate::metrics::DropReason;
use crate::transport::{SendContext, SendFuture, Transport};

/// The environment variable naming the daemon's address.
pub const DAEMON_ADDRESS_ENV: &str = "AWS_XRAY_DAEMON_ADDRESS";
/// The daemon's default address.
pub const DEFAULT_DAEMON_ADDRESS: &str = "127.0.0.1:2000";

/// A `host:port` pair, the host a name or an IP address (IPv6 in brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Host name or address, without brackets.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Why a daemon address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid X-Ray daemon address {input:?}: {why}")]
pub struct AddressError {
    input: String,
    why: &'static str,
}

impl FromStr for HostPort {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, rest) = rest.split_once(']').ok_or("unclosed '['")?;
            (host, rest.strip_prefix(':').ok_or("missing port")?)
        } else {
            s.rsplit_once(':').ok_or("missing port")?
        };
        if host.is_empty() {
            return Err("missing host");
        }
        if host.contains(':') && !s.starts_with('[') {
            return Err("IPv6 addresses need brackets");
        }
        let port: u16 = port.parse().map_err(|_| "bad port")?;
        if port == 0 {
            return Err("port 0");
        }
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }
}

/// Where the daemon listens: UDP for segments, TCP for the sampling API.
///
/// Parsed from `AWS_XRAY_DAEMON_ADDRESS` in its two forms: `host:port` (both protocols)
/// or `tcp:host:port udp:host:port` (either order).
///
/// # Examples
///
/// ```
/// use xray_export::DaemonAddress;
/// let a: DaemonAddress = "xray-daemon.local:3000".parse().unwrap();
/// assert_eq!(a.udp.to_string(), "xray-daemon.local:3000");
/// let b: DaemonAddress = "tcp:127.0.0.1:2000 udp:127.0.0.2:2001".parse().unwrap();
/// assert_eq!((b.tcp.port, b.udp.port), (2000, 2001));
/// assert!("udp:127.0.0.1:2000".parse::<DaemonAddress>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonAddress {
    /// Where segment datagrams go.
    pub udp: HostPort,
    /// Where the sampling API is served.
    pub tcp: HostPort,
}

impl Default for DaemonAddress {
    fn default() -> Self {
        DEFAULT_DAEMON_ADDRESS.parse().expect("default address")
    }
}

impl FromStr for DaemonAddress {
    type Err = AddressError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |why| AddressError {
            input: input.to_owned(),
            why,
        };
        let text = input.trim();
        if text.is_empty() {
            return Err(err("empty"));
        }
        let parts: Vec<&str> = text.split_whitespace().collect();
        let tagged = |p: &str| p.starts_with("tcp:") || p.starts_with("udp:");
        if parts.len() == 1 && !tagged(parts[0]) {
            let hp: HostPort = parts[0].parse().map_err(err)?;
            return Ok(DaemonAddress {
                udp: hp.clone(),
                tcp: hp,
            });
        }
        let (mut udp, mut tcp) = (None, None);
        for part in parts {
            let (slot, rest) = match part.split_at_checked(4) {
                Some(("udp:", rest)) => (&mut udp, rest),
                Some(("tcp:", rest)) => (&mut tcp, rest),
                _ => return Err(err("expected tcp:host:port udp:host:port")),
            };
            if slot.is_some() {
                return Err(err("protocol given twice"));
            }
            *slot = Some(rest.parse().map_err(err)?);
        }
        match (udp, tcp) {
            (Some(udp), Some(tcp)) => Ok(DaemonAddress { udp, tcp }),
            _ => Err(err("both tcp: and udp: are required")),
        }
    }
}

impl DaemonAddress {
    /// From `AWS_XRAY_DAEMON_ADDRESS`, or the default `127.0.0.1:2000` when unset or empty.
    ///
    /// # Errors
    ///
    /// [`AddressError`] when the variable is set but is neither `host:port` nor
    /// `tcp:host:port udp:host:port`.
    pub fn from_env() -> Result<Self, AddressError> {
        match std::env::var(DAEMON_ADDRESS_ENV) {
            Ok(v) if !v.trim().is_empty() => v.parse(),
            _ => Ok(Self::default()),
        }
    }
}

/// How often a resolved daemon host name is looked up again.
const RESOLVE_EVERY: Duration = Duration::from_secs(60);
/// Most attempts per datagram, whatever the retry policy's time budget: the kernel
/// reports a refusal only on a later send, and a daemon that is not there answers
/// nothing, so long retries would only hold the queue up.
const MAX_DATAGRAM_ATTEMPTS: u32 = 5;

/// Sends documents to the daemon, one datagram each, many per system call on Linux
/// (`sendmmsg`). A datagram that fails is retried by the retry policy without the others
/// being resent; "sent" means handed to the kernel, as UDP promises no more.
pub struct UdpTransport {
    address: HostPort,
    socket: Option<(UdpSocket, Instant)>,
    frames: Vec<u8>,
}

impl UdpTransport {
    /// Sends to `address` (resolved on first use, then every minute and after errors).
    pub fn new(address: HostPort) -> Self {
        UdpTransport {
            address,
            socket: None,
            frames: Vec::with_capacity(256 * 1024),
        }
    }

    /// The address datagrams go to.
    pub fn address(&self) -> &HostPort {
        &self.address
    }

    fn connect(&mut self) -> io::Result<&UdpSocket> {
        let stale = self
            .socket
            .as_ref()
            .is_none_or(|(_, at)| at.elapsed() > RESOLVE_EVERY);
        if stale {
            let target = (self.address.host.as_str(), self.address.port)
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
            let local: SocketAddr = if target.is_ipv4() {
                "0.0.0.0:0".parse().expect("literal")
            } else {
                "[::]:0".parse().expect("literal")
            };
            let socket = UdpSocket::bind(local)?;
            socket.connect(target)?;
            self.socket = Some((socket, Instant::now()));
        }
        Ok(&self.socket.as_ref().expect("set above").0)
    }

    /// Sends the datagrams of `batch` at `indices`; returns the indices that failed, and
    /// the last error with whether it came from setting up the socket (resolving,
    /// binding) rather than from sending.
    fn send_once(
        &mut self,
        batch: &[Document],
        indices: &[usize],
    ) -> (Vec<usize>, Option<(io::Error, bool)>) {
        // Frame every datagram into one buffer: header + document.
        self.frames.clear();
        let mut spans = Vec::with_capacity(indices.len());
        for &i in indices {
            let start = self.frames.len();
            self.frames.extend_from_slice(DAEMON_HEADER.as_bytes());
            self.frames.extend_from_slice(batch[i].json());
            spans.push((start, self.frames.len()));
        }
        let frames = std::mem::take(&mut self.frames);
        let result = match self.connect() {
            Ok(socket) => {
                let datagrams: Vec<&[u8]> = spans.iter().map(|&(a, b)| &frames[a..b]).collect();
                let (failed, err) = send_all(socket, &datagrams);
                (failed, err.map(|e| (e, false)))
            }
            Err(e) => ((0..indices.len()).collect(), Some((e, true))),
        };
        self.frames = frames;
        let (failed, err) = result;
        if err.is_some() {
            // The daemon may have moved (or is not there): look it up again next time.
            self.socket = None;
        }
        (failed.into_iter().map(|k| indices[k]).collect(), err)
    }

    /// The datagrams of `batch` to send: all but those too large for UDP (dropped).
    fn begin(batch: &[Document], cx: &SendContext) -> Attempts {
        let mut pending: Vec<usize> = Vec::with_capacity(batch.len());
        for (i, doc) in batch.iter().enumerate() {
            if DAEMON_HEADER.len() + doc.json().len() > MAX_DATAGRAM_BYTES {
                cx.dropped([doc], DropReason::TooLarge, &"larger than a UDP datagram");
            } else {
                pending.push(i);
            }
        }
        Attempts {
            pending,
            attempt: 1,
            first_try: Instant::now(),
        }
    }

    /// Sends the pending datagrams once. Returns how long to wait before the next
    /// attempt at those that failed, or `None` when every datagram is reported.
    fn attempt(
        &mut self,
        batch: &[Document],
        at: &mut Attempts,
        cx: &SendContext,
    ) -> Option<Duration> {
        if at.pending.is_empty() {
            return None;
        }
        cx.request();
        let (failed, err) = self.send_once(batch, &at.pending);
        let failed_set: std::collections::HashSet<usize> = failed.iter().copied().collect();
        for &i in &at.pending {
            if !failed_set.contains(&i) {
                cx.delivered(&batch[i]);
            }
        }
        let (err, setup) = err?;
        cx.send_error();
        tracing::warn!(
            target: "xray_export",
            daemon = %self.address,
            failed = failed.len(),
            attempt = at.attempt,
            "X-Ray daemon datagrams failed: {err}"
        );
        let retry = if at.attempt < MAX_DATAGRAM_ATTEMPTS {
            cx.next_retry(at.attempt, at.first_try)
        } else {
            None
        };
        match retry {
            Some(wait) => {
                at.pending = failed;
                at.attempt += 1;
                Some(wait)
            }
            None => {
                let reason = if setup {
                    DropReason::TransportUnavailable
                } else {
                    DropReason::RetriesExhausted
                };
                let cause = format!("daemon {}: {err}", self.address);
                cx.dropped(failed.iter().map(|&i| &batch[i]), reason, &cause);
                at.pending.clear();
                None
            }
        }
    }

    async fn send_batch(&mut self, batch: Vec<Document>, cx: &SendContext) {
        let mut at = Self::begin(&batch, cx);
        while let Some(wait) = self.attempt(&batch, &mut at, cx) {
            tokio::time::sleep(wait).await;
        }
    }
}

/// A batch's datagrams still to send, and its attempts so far.
struct Attempts {
    pending: Vec<usize>,
    attempt: u32,
    first_try: Instant,
}

impl Transport<Document> for UdpTransport {
    fn name(&self) -> &'static str {
        "udp"
    }

    fn batch_limit(&self) -> usize {
        256
    }

    fn send<'a>(&'a mut self, batch: Vec<Document>, cx: &'a SendContext) -> SendFuture<'a> {
        Box::pin(self.send_batch(batch, cx))
    }

    fn is_blocking(&self) -> bool {
        true
    }

    fn send_blocking(&mut self, batch: Vec<Document>, cx: &SendContext) {
        let mut at = Self::begin(&batch, cx);
        while let Some(wait) = self.attempt(&batch, &mut at, cx) {
            std::thread::sleep(wait);
        }
    }
}

/// Sends every datagram; returns the positions that failed and the last error.
#[cfg(target_os = "linux")]
fn send_all(socket: &UdpSocket, datagrams: &[&[u8]]) -> (Vec<usize>, Option<io::Error>) {
    use std::os::fd::AsRawFd;

    let mut iovecs: Vec<libc::iovec> = datagrams
        .iter()
        .map(|d| libc::iovec {
            iov_base: d.as_ptr() as *mut libc::c_void,
            iov_len: d.len(),
        })
        .collect();
    // SAFETY: mmsghdr is plain data; all-zero is a valid value (no name, no control).
    let mut headers: Vec<libc::mmsghdr> = (0..datagrams.len())
        .map(|_| unsafe { std::mem::zeroed::<libc::mmsghdr>() })
        .collect();
    for (h, iov) in headers.iter_mut().zip(iovecs.iter_mut()) {
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
    }
    let fd = socket.as_raw_fd();
    let mut failed = Vec::new();
    let mut last_err = None;
    let mut start = 0;
    while start < headers.len() {
        let chunk = (headers.len() - start).min(1024);
        // SAFETY: `headers[start..start + chunk]` are initialised mmsghdrs whose iovecs
        // point into `datagrams`, all alive for the call; the socket fd is open.
        let sent =
            unsafe { libc::sendmmsg(fd, headers[start..].as_mut_ptr(), chunk as libc::c_uint, 0) };
        if sent < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The first datagram of the chunk failed: skip it, keep going with the rest.
            failed.push(start);
            last_err = Some(err);
            start += 1;
        } else {
            start += (sent as usize).max(1).min(chunk);
            if sent == 0 {
                failed.push(start - 1);
            }
        }
    }
    (failed, last_err)
}

/// Sends every datagram; returns the positions that failed and the last error.
#[cfg(not(target_os = "linux"))]
fn send_all(socket: &UdpSocket, datagrams: &[&[u8]]) -> (Vec<usize>, Option<io::Error>) {
    let mut failed = Vec::new();
    let mut last_err = None;
    for (i, d) in datagrams.iter().enumerate() {
        if let Err(e) = socket.send(d) {
            failed.push(i);
            last_err = Some(e);
        }
    }
    (failed, last_err)
}

impl std::fmt::Debug for UdpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpTransport").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_every_form() {
        let a: DaemonAddress = "127.0.0.1:2000".parse().unwrap();
        assert_eq!(a, DaemonAddress::default());
        let b: DaemonAddress = " udp:daemon:2001  tcp:[::1]:2002 ".parse().unwrap();
        assert_eq!(
            b.udp,
            HostPort {
                host: "daemon".into(),
                port: 2001
            }
        );
        assert_eq!(b.tcp.to_string(), "[::1]:2002");
        let c: DaemonAddress = "[fe80::1]:2000".parse().unwrap();
        assert_eq!(c.udp.host, "fe80::1");
        for bad in [
            "",
            "localhost",
            "localhost:0",
            "localhost:99999",
            ":2000",
            "::1:2000",
            "tcp:a:1",
            "udp:a:1 udp:b:2",
            "tcp:a:1 udp:b",
            "http://a:1",
            "a:1 b:2",
        ] {
            assert!(bad.parse::<DaemonAddress>().is_err(), "{bad}");
        }
    }

    #[test]
    fn one_failing_datagram_does_not_lose_the_others() {
        let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(listener.local_addr().unwrap()).unwrap();
        // The kernel refuses the oversized one (EMSGSIZE); the rest still go.
        let huge = vec![b'h'; 70_000];
        let datagrams: Vec<&[u8]> = vec![b"first", &huge, b"third", &huge, b"fifth"];
        let (failed, err) = send_all(&socket, &datagrams);
        assert_eq!(failed, vec![1, 3]);
        assert!(err.is_some());
        let mut buf = [0u8; 100];
        for expected in [&b"first"[..], b"third", b"fifth"] {
            let n = listener.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], expected);
        }
    }

    #[test]
    fn send_all_sends_every_datagram_separately() {
        let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(listener.local_addr().unwrap()).unwrap();
        let payloads: Vec<Vec<u8>> = (0..50)
            .map(|i| vec![b'a' + (i % 26) as u8; 100 + i])
            .collect();
        let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
        let (failed, err) = send_all(&socket, &refs);
        assert!(failed.is_empty() && err.is_none());
        let mut buf = [0u8; 2048];
        for p in &payloads {
            let n = listener.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], p.as_slice());
        }
    }
}
