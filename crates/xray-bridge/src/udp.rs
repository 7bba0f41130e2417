//! The X-Ray daemon protocol on UDP: `{"format":"json","version":1}\n` plus one document
//! per datagram. Valid documents go to the export pipeline byte for byte; bad datagrams
//! are counted by reason, logged and never forwarded. ADOT's OTLP bodies (`T1S`, `T1U`,
//! `M1`) after the same header are handled by [`crate::adot`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use xray_model::datagram::{DatagramError, datagram_body, parse_datagram};
use xray_model::limits::MAX_DOCUMENT_BYTES;

use crate::adot::{self, Adot, Handled};
use crate::counters::{Counter, LogLimiter, Registry};
use crate::export::Sink;

/// Why a datagram was rejected, as a metric label.
pub fn reject_reason(e: &DatagramError) -> &'static str {
    match e {
        DatagramError::TooLarge(_) => "too_large",
        DatagramError::MissingHeader => "missing_header",
        DatagramError::BadHeader(_) => "bad_header",
        DatagramError::NotUtf8 => "not_utf8",
        DatagramError::BadDocument(_) => "bad_document",
    }
}

/// Every `reason` of `xray_bridge_udp_datagrams_rejected_total`, one per failure kind.
pub const REASONS: [&str; 10] = [
    "too_large",
    "missing_header",
    "bad_header",
    "not_utf8",
    "bad_document",
    "export_refused",
    // ADOT bodies: bad base64, base64 of something not OTLP, OTLP without spans (api
    // export), and `M1` metrics (not taken).
    "bad_base64",
    "bad_protobuf",
    "no_spans",
    "otlp_metrics",
];

/// The UDP receiver's counters.
#[derive(Debug, Clone)]
pub struct UdpCounters {
    /// Datagrams read from the socket.
    pub received: Counter,
    /// Bytes read from the socket.
    pub bytes: Counter,
    /// Documents handed to the export pipeline and queued.
    pub accepted: Counter,
    /// Socket read errors.
    pub read_errors: Counter,
    rejected: Vec<(&'static str, Counter)>,
}

impl UdpCounters {
    /// Registers the counters.
    pub fn new(registry: &Registry) -> Self {
        UdpCounters {
            received: registry.counter(
                "xray_bridge_udp_datagrams_received_total",
                "Daemon-protocol datagrams received.",
                &[],
            ),
            bytes: registry.counter(
                "xray_bridge_udp_bytes_received_total",
                "Bytes of daemon-protocol datagrams received.",
                &[],
            ),
            accepted: registry.counter(
                "xray_bridge_udp_documents_accepted_total",
                "Documents from datagrams queued for export.",
                &[],
            ),
            read_errors: registry.counter(
                "xray_bridge_udp_read_errors_total",
                "Errors reading the UDP socket.",
                &[],
            ),
            rejected: REASONS
                .iter()
                .map(|r| {
                    (
                        *r,
                        registry.counter(
                            "xray_bridge_udp_datagrams_rejected_total",
                            "Datagrams not forwarded, by reason (export_refused ones are also counted in the exporter's drops).",
                            &[("reason", r)],
                        ),
                    )
                })
                .collect(),
        }
    }

    /// The rejection counter for `reason`.
    pub fn rejected(&self, reason: &str) -> u64 {
        self.rejected
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, c)| c.get())
    }

    pub(crate) fn reject(&self, reason: &'static str) {
        if let Some((_, c)) = self.rejected.iter().find(|(r, _)| *r == reason) {
            c.inc();
        }
    }
}

/// The socket buffer asked for (the kernel caps it at `net.core.rmem_max`): bursts from
/// many SDK threads wait here instead of being dropped by the kernel.
pub const RECEIVE_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Binds the UDP socket with a large receive buffer. Needs a Tokio runtime.
///
/// # Errors
///
/// The I/O error when the socket cannot be created, configured or bound.
pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = socket.set_recv_buffer_size(RECEIVE_BUFFER_BYTES) {
        tracing::warn!(error = %e, "cannot enlarge the UDP receive buffer");
    }
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Receives daemon datagrams until `stop` turns true, then reads what is already waiting
/// in the socket buffer and returns.
pub async fn serve(
    socket: UdpSocket,
    sink: Arc<dyn Sink>,
    counters: UdpCounters,
    adot: Adot,
    mut stop: watch::Receiver<bool>,
) {
    let limiter = LogLimiter::new(Duration::from_secs(10));
    // One byte more than any IPv4/IPv6 UDP payload, so nothing is cut silently.
    let mut buf = vec![0u8; 65_536];
    loop {
        tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            read = socket.recv_from(&mut buf) => match read {
                Ok((n, from)) => handle(&buf[..n], from, sink.as_ref(), &counters, &adot, &limiter),
                Err(e) => {
                    counters.read_errors.inc();
                    if limiter.allow("read_error").is_some() {
                        tracing::warn!(error = %e, "UDP receive failed");
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    // Datagrams that arrived before the stop are still delivered.
    while let Ok((n, from)) = socket.try_recv_from(&mut buf) {
        handle(&buf[..n], from, sink.as_ref(), &counters, &adot, &limiter);
    }
}

/// Validates one datagram and queues its document, or counts and logs the rejection.
pub fn handle(
    bytes: &[u8],
    from: SocketAddr,
    sink: &dyn Sink,
    counters: &UdpCounters,
    adot: &Adot,
    limiter: &LogLimiter,
) {
    counters.received.inc();
    counters.bytes.add(bytes.len() as u64);
    if let Ok(body) = datagram_body(bytes)
        && let Some((kind, base64)) = adot::Kind::of(body)
    {
        match adot.handle(kind, body, base64, sink) {
            Handled::Forwarded => counters.accepted.inc(),
            Handled::Translated | Handled::Unsampled => {}
            // The pipeline counted and logged the drop with its reason.
            Handled::Rejected("export_refused") => counters.reject("export_refused"),
            Handled::Rejected(reason) => {
                counters.reject(reason);
                if let Some(count) = limiter.allow(reason) {
                    tracing::warn!(
                        reason,
                        from = %from,
                        bytes = bytes.len(),
                        count,
                        "rejected ADOT datagram ({kind:?})"
                    );
                }
            }
        }
        return;
    }
    match parse_datagram(bytes) {
        Ok(datagram) if datagram.document.len() > MAX_DOCUMENT_BYTES => {
            counters.reject("too_large");
            if let Some(count) = limiter.allow("too_large") {
                tracing::warn!(
                    reason = "too_large",
                    from = %from,
                    trace_id = %datagram.summary.trace_id,
                    bytes = datagram.document.len(),
                    count,
                    "rejected daemon datagram: document is larger than X-Ray's {MAX_DOCUMENT_BYTES} bytes"
                );
            }
        }
        Ok(datagram) => {
            if sink.submit(datagram.document.as_bytes().to_vec()) {
                counters.accepted.inc();
            } else {
                // The pipeline counted and logged the drop with its reason.
                counters.reject("export_refused");
            }
        }
        Err(e) => {
            let reason = reject_reason(&e);
            counters.reject(reason);
            if let Some(count) = limiter.allow(reason) {
                tracing::warn!(
                    reason,
                    from = %from,
                    bytes = bytes.len(),
                    count,
                    "rejected daemon datagram: {e}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::memory::MemorySink;
    use crate::otlp::Ingest;
    use base64::Engine as _;
    use prost::Message as _;
    use xray_translate::Translator;

    fn adot(registry: &Registry, sink: Arc<dyn Sink>, forward: bool) -> Adot {
        Adot::new(registry, Ingest::new(Translator::from_env(), sink), forward)
    }

    const DOC: &str = r#"{"name":"svc","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.0,"end_time":2.0}"#;

    fn datagram(doc: &str) -> Vec<u8> {
        format!("{}{doc}", xray_model::DAEMON_HEADER).into_bytes()
    }

    #[tokio::test]
    async fn good_datagrams_pass_untouched_and_bad_ones_are_counted() {
        let socket = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        let sink = Arc::new(MemorySink::default());
        let registry = Registry::default();
        let counters = UdpCounters::new(&registry);
        let (stop_tx, stop) = watch::channel(false);
        let adot = adot(&registry, sink.clone(), false);
        let task = tokio::spawn(serve(socket, sink.clone(), counters.clone(), adot, stop));

        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let sub = r#"{"type":"subsegment","name":"q","id":"70de5b6f19ff9a0b","parent_id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.0,"in_progress":true}"#;
        let mut truncated = datagram(DOC);
        truncated.truncate(truncated.len() - 10);
        let sends: Vec<Vec<u8>> = vec![
            datagram(DOC),
            b"garbage".to_vec(),
            truncated,
            format!("{{\"format\":\"xml\",\"version\":1}}\n{DOC}").into_bytes(),
            [xray_model::DAEMON_HEADER.as_bytes(), &[0xff, 0xfe, b'{']].concat(),
            datagram(r#"{"name":"no-ids","start_time":1}"#),
            datagram(sub),
        ];
        for s in &sends {
            sender.send_to(s, addr).unwrap();
        }
        // 65,507 bytes is the largest IPv4 UDP payload, and still too large for X-Ray.
        let big = format!(
            "{}{}",
            xray_model::DAEMON_HEADER,
            DOC.replace("\"svc\"", &format!("\"{}\"", "s".repeat(65_300)))
        );
        sender.send_to(big.as_bytes(), addr).unwrap();

        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while counters.received.get() < 8 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();

        assert_eq!(sink.texts(), vec![DOC.to_owned(), sub.to_owned()]);
        assert_eq!(counters.received.get(), 8);
        assert_eq!(counters.accepted.get(), 2);
        assert_eq!(counters.rejected("missing_header"), 1);
        assert_eq!(counters.rejected("bad_header"), 1);
        assert_eq!(counters.rejected("not_utf8"), 1);
        // Truncated JSON and missing ids.
        assert_eq!(counters.rejected("bad_document"), 2);
        // Valid JSON, but larger than a document X-Ray takes.
        assert_eq!(counters.rejected("too_large"), 1);
        let mut text = String::new();
        registry.render(&mut text);
        assert!(text.contains("xray_bridge_udp_datagrams_rejected_total{reason=\"bad_header\"} 1"));
    }

    #[test]
    fn export_refusals_are_counted() {
        let sink = Arc::new(MemorySink {
            capacity: Some(1),
            ..Default::default()
        });
        let registry = Registry::default();
        let counters = UdpCounters::new(&registry);
        let adot = adot(&registry, sink.clone(), false);
        let limiter = LogLimiter::new(Duration::from_secs(1));
        let from: SocketAddr = "127.0.0.1:1".parse().unwrap();
        handle(
            &datagram(DOC),
            from,
            sink.as_ref(),
            &counters,
            &adot,
            &limiter,
        );
        handle(
            &datagram(DOC),
            from,
            sink.as_ref(),
            &counters,
            &adot,
            &limiter,
        );
        assert_eq!(counters.accepted.get(), 1);
        assert_eq!(counters.rejected("export_refused"), 1);
    }

    #[test]
    fn every_datagram_error_has_a_registered_reason() {
        for e in [
            DatagramError::TooLarge(1),
            DatagramError::MissingHeader,
            DatagramError::BadHeader(String::new()),
            DatagramError::NotUtf8,
            DatagramError::BadDocument(String::new()),
        ] {
            assert!(REASONS.contains(&reject_reason(&e)));
        }
    }

    fn adot_body(prefix: &str, trace: u8) -> String {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let mut trace_id = vec![trace; 16];
        trace_id[..4].copy_from_slice(&(now.as_secs() as u32).to_be_bytes());
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id,
                        span_id: vec![7; 8],
                        name: "GET /".into(),
                        kind: 2,
                        start_time_unix_nano: now.as_nanos() as u64,
                        end_time_unix_nano: now.as_nanos() as u64 + 1_000_000,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let b64 = base64::engine::general_purpose::STANDARD.encode(request.encode_to_vec());
        format!("{prefix}{b64}")
    }

    #[test]
    fn adot_bodies_are_forwarded_translated_counted_or_rejected() {
        let from: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let limiter = LogLimiter::new(Duration::from_secs(1));
        let sampled = adot_body("T1S", 1);
        let unsampled = adot_body("T1U", 2);
        let junk = base64::engine::general_purpose::STANDARD.encode([0x0a, 0x7f, 0x01]);
        let bad: Vec<String> = vec![
            "T1S%%%not-base64".into(),
            format!("T1S{junk}"),
            "M1AAAA".into(),
        ];
        for forward in [true, false] {
            let sink = Arc::new(MemorySink::default());
            let registry = Registry::default();
            let counters = UdpCounters::new(&registry);
            let adot = adot(&registry, sink.clone(), forward);
            for body in [&sampled, &unsampled].into_iter().chain(&bad) {
                handle(
                    &datagram(body),
                    from,
                    sink.as_ref(),
                    &counters,
                    &adot,
                    &limiter,
                );
            }
            let texts = sink.texts();
            if forward {
                // Byte for byte, T1U too, as the daemon forwards them.
                assert_eq!(texts, vec![sampled.clone(), unsampled.clone()]);
                assert_eq!(counters.accepted.get(), 2);
            } else {
                assert_eq!(texts.len(), 1, "{texts:?}");
                let doc: serde_json::Value = serde_json::from_str(&texts[0]).unwrap();
                assert_eq!(doc["id"], "0707070707070707");
                xray_testkit::assert_schema_valid(&texts[0]);
            }
            assert_eq!(counters.rejected("bad_base64"), 1);
            assert_eq!(counters.rejected("bad_protobuf"), 1);
            assert_eq!(counters.rejected("otlp_metrics"), 1);
            let mut text = String::new();
            registry.render(&mut text);
            assert!(
                text.contains("xray_bridge_udp_adot_spans_total{kind=\"T1U\"} 1"),
                "{text}"
            );
            let skipped = if forward { 0 } else { 1 };
            assert!(
                text.contains(&format!(
                    "xray_bridge_udp_unsampled_spans_not_exported_total {skipped}"
                )),
                "{text}"
            );
        }
    }
}
