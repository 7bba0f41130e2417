//! ADOT's OTLP-over-UDP datagrams on the daemon port: after the daemon header line, `T1S`
//! (sampled spans) or `T1U` (unsampled spans) and base64 of an OTLP
//! `ExportTraceServiceRequest` in protobuf; `M1` and base64 carries metrics.
//!
//! With `--export api` the `T1S`/`T1U` bodies go to PutTraceSegments byte for byte, as
//! the X-Ray daemon forwards them (X-Ray accepts them); with every other export they are
//! decoded and translated like OTLP input, and `T1U` spans are counted, not exported.
//! Bad base64 or protobuf and `M1` datagrams are rejected, each with its own reason.

use base64::Engine as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use xray_export::Document;
use xray_model::{SegmentId, TraceId};

use crate::counters::{Counter, Registry};
use crate::export::Sink;
use crate::otlp::{Ingest, OtlpCounters};

/// The kind of an ADOT body, told by its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `T1S`: sampled spans.
    Sampled,
    /// `T1U`: unsampled spans (X-Ray derives metrics from them).
    Unsampled,
    /// `M1`: OTLP metrics.
    Metrics,
}

impl Kind {
    /// The kind of `body` and the base64 after its prefix, if it is an ADOT body.
    ///
    /// # Examples
    ///
    /// ```
    /// use xray_bridge::adot::Kind;
    /// assert_eq!(Kind::of(b"T1SCgA="), Some((Kind::Sampled, &b"CgA="[..])));
    /// assert_eq!(Kind::of(br#"{"name":"svc"}"#), None);
    /// ```
    pub fn of(body: &[u8]) -> Option<(Kind, &[u8])> {
        if let Some(rest) = body.strip_prefix(b"T1S") {
            Some((Kind::Sampled, rest))
        } else if let Some(rest) = body.strip_prefix(b"T1U") {
            Some((Kind::Unsampled, rest))
        } else {
            body.strip_prefix(b"M1").map(|rest| (Kind::Metrics, rest))
        }
    }
}

/// Why an ADOT body was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdotError {
    /// The text after the prefix is not standard, padded base64.
    #[error("ADOT datagram: bad base64 after the prefix: {0}")]
    BadBase64(String),
    /// The decoded bytes are not an OTLP `ExportTraceServiceRequest`.
    #[error("ADOT datagram: not an OTLP ExportTraceServiceRequest: {0}")]
    BadProtobuf(String),
}

impl AdotError {
    /// The `reason` label in `xray_bridge_udp_datagrams_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            AdotError::BadBase64(_) => "bad_base64",
            AdotError::BadProtobuf(_) => "bad_protobuf",
        }
    }
}

/// Decodes the base64 protobuf of a `T1S`/`T1U` body.
///
/// # Errors
///
/// [`AdotError::BadBase64`] or [`AdotError::BadProtobuf`], as the names say.
pub fn decode(base64: &[u8]) -> Result<ExportTraceServiceRequest, AdotError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64.trim_ascii())
        .map_err(|e| AdotError::BadBase64(e.to_string()))?;
    ExportTraceServiceRequest::decode(bytes.as_slice())
        .map_err(|e| AdotError::BadProtobuf(e.to_string()))
}

/// The number of spans, and the trace and span id of the first one.
fn first_span(request: &ExportTraceServiceRequest) -> (usize, Option<(TraceId, SegmentId)>) {
    let spans = || {
        request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
    };
    let first = spans().next().and_then(|s| {
        let trace: [u8; 16] = s.trace_id.as_slice().try_into().ok()?;
        let span: [u8; 8] = s.span_id.as_slice().try_into().ok()?;
        Some((TraceId::from_bytes(trace), SegmentId::from_bytes(span)))
    });
    (spans().count(), first)
}

/// What became of one ADOT datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Queued byte for byte for PutTraceSegments.
    Forwarded,
    /// Translated; the OTLP counters (`protocol="udp"`) say what became of its spans.
    Translated,
    /// Unsampled spans, counted and not exported.
    Unsampled,
    /// Rejected with this reason label.
    Rejected(&'static str),
}

/// Handles ADOT bodies for the UDP receiver.
#[derive(Debug, Clone)]
pub struct Adot {
    forward: bool,
    ingest: Ingest,
    otlp: OtlpCounters,
    spans: [Counter; 2],
    unsampled_skipped: Counter,
}

impl Adot {
    /// `forward`: bodies go to PutTraceSegments as they are (`--export api`); else they
    /// are translated by `ingest`.
    pub fn new(registry: &Registry, ingest: Ingest, forward: bool) -> Self {
        let spans = |kind| {
            registry.counter(
                "xray_bridge_udp_adot_spans_total",
                "Spans in ADOT T1S (sampled) and T1U (unsampled) datagrams that decoded.",
                &[("kind", kind)],
            )
        };
        Adot {
            forward,
            ingest,
            otlp: OtlpCounters::new(registry, "udp"),
            spans: [spans("T1S"), spans("T1U")],
            unsampled_skipped: registry.counter(
                "xray_bridge_udp_unsampled_spans_not_exported_total",
                "Spans of ADOT T1U datagrams counted and not exported (every export but api).",
                &[],
            ),
        }
    }

    /// Handles the body `body` (after the header line) of kind `kind`.
    pub fn handle(&self, kind: Kind, body: &[u8], base64: &[u8], sink: &dyn Sink) -> Handled {
        if kind == Kind::Metrics {
            return Handled::Rejected("otlp_metrics");
        }
        let request = match decode(base64) {
            Ok(r) => r,
            Err(e) => return Handled::Rejected(e.reason()),
        };
        let (spans, first) = first_span(&request);
        let sampled = kind == Kind::Sampled;
        self.spans[usize::from(!sampled)].add(spans as u64);
        if self.forward {
            let Some((trace_id, id)) = first else {
                return Handled::Rejected("no_spans");
            };
            let spans = u32::try_from(spans).unwrap_or(u32::MAX);
            return match Document::opaque(body.to_vec(), trace_id, id, spans) {
                Ok(doc) => {
                    if sink.submit_document(doc) {
                        Handled::Forwarded
                    } else {
                        Handled::Rejected("export_refused")
                    }
                }
                Err(_) => Handled::Rejected("too_large"),
            };
        }
        if !sampled {
            self.unsampled_skipped.add(spans as u64);
            return Handled::Unsampled;
        }
        self.ingest.ingest(&request, &self.otlp);
        Handled::Translated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn request() -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        name: "GET /".into(),
                        start_time_unix_nano: 1,
                        end_time_unix_nano: 2,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn prefixes_and_decoding() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(request().encode_to_vec());
        let body = format!("T1S{b64}");
        let (kind, rest) = Kind::of(body.as_bytes()).unwrap();
        assert_eq!(kind, Kind::Sampled);
        assert_eq!(decode(rest).unwrap(), request());
        assert_eq!(Kind::of(b"T1Uxx").unwrap().0, Kind::Unsampled);
        assert_eq!(Kind::of(b"M1xx").unwrap().0, Kind::Metrics);
        assert_eq!(Kind::of(b"{\"name\":1}"), None);
        assert_eq!(decode(b"not base64!").unwrap_err().reason(), "bad_base64");
        // Valid base64 of bytes that are no protobuf message (a truncated field).
        let junk = base64::engine::general_purpose::STANDARD.encode([0x0a, 0x7f, 0x01]);
        assert_eq!(
            decode(junk.as_bytes()).unwrap_err().reason(),
            "bad_protobuf"
        );
        let (n, first) = first_span(&request());
        assert_eq!(n, 1);
        assert_eq!(
            first,
            Some((TraceId::from_bytes([1; 16]), SegmentId::from_bytes([2; 8])))
        );
    }
}
