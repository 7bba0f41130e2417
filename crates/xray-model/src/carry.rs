//! How the parts of an `X-Amzn-Trace-Id` header that OpenTelemetry's span context cannot
//! hold travel inside its W3C trace state, so that they reach every child span, the
//! sampler, the translator and every outgoing request.
//!
//! An OpenTelemetry span context has a trace id, a span id, one sampled bit and a trace
//! state. An X-Ray header can also say "no parent" (load balancers send `Root=` alone),
//! "no decision yet" (`Sampled=?` or no `Sampled`), and carry extra fields (`Lineage`,
//! custom `Key=Value`). The propagator writes those into one trace-state entry under
//! [`TRACE_STATE_KEY`]; the sampler reads the decision flag, the translator reads the
//! no-parent flag, and the propagator writes the fields back on the next hop.
//!
//! ```
//! use xray_model::{Sampled, carry::HopState};
//! let hop = HopState {
//!     no_parent: true,
//!     sampled: Sampled::Requested,
//!     fields: vec![("Lineage".into(), "a87bd80c:0".into())],
//! };
//! let value = hop.encode().unwrap();
//! assert_eq!(value, "np;s?;f:Lineage:a87bd80c%3A0");
//! assert_eq!(HopState::decode(&value), hop);
//! ```

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use crate::{Sampled, SegmentId, TraceId};

/// The trace-state key of the entry (a valid W3C `tracestate` key).
pub const TRACE_STATE_KEY: &str = "xray";

/// What an incoming header said that a span context cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HopState {
    /// The header had no `Parent`: the span context's span id is a stand-in and the
    /// segment built from the server span must have no `parent_id`.
    pub no_parent: bool,
    /// [`Sampled::Requested`] or [`Sampled::Unknown`] when the caller made no decision
    /// (the sampler decides locally); `Yes`/`No` are carried by the sampled bit instead.
    pub sampled: Sampled,
    /// Extra header fields to send on, in order.
    pub fields: Vec<(String, String)>,
}

impl HopState {
    /// Whether there is nothing to carry (a full `Root;Parent;Sampled=0|1` header).
    pub fn is_empty(&self) -> bool {
        !self.no_parent && self.sampled.decision().is_some() && self.fields.is_empty()
    }

    /// Whether the caller left the sampling decision to us.
    pub fn decision_deferred(&self) -> bool {
        self.sampled.decision().is_none()
    }

    /// The span id a propagator puts in a remote span context when the header had no
    /// `Parent` (OpenTelemetry needs a non-zero one). Derived from the trace id alone, so
    /// every hop and the translator can recognise it; never zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use xray_model::{TraceId, carry::HopState};
    /// let root: TraceId = "1-5759e988-bd862e3fe1be46a994272793".parse().unwrap();
    /// assert_eq!(HopState::stand_in_parent(root), HopState::stand_in_parent(root));
    /// assert!(!HopState::stand_in_parent(root).is_zero());
    /// ```
    pub fn stand_in_parent(root: TraceId) -> SegmentId {
        // "XRAY-NOP" mixed with both halves of the id, so ids differing only in their
        // time prefix still get different stand-ins.
        let bits = root.to_u128();
        let mixed = (bits as u64) ^ ((bits >> 64) as u64).rotate_left(32) ^ 0x5852_4159_2d4e_4f50;
        SegmentId::from_u64(if mixed == 0 { 1 } else { mixed })
    }

    /// The trace-state value, or `None` when there is nothing to carry.
    pub fn encode(&self) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        let mut items: Vec<String> = Vec::new();
        if self.no_parent {
            items.push("np".into());
        }
        match self.sampled {
            Sampled::Requested => items.push("s?".into()),
            Sampled::Unknown => items.push("s-".into()),
            Sampled::Yes | Sampled::No => {}
        }
        for (k, v) in &self.fields {
            items.push(format!("f:{}:{}", escape(k), escape(v)));
        }
        Some(items.join(";"))
    }

    /// Reads a trace-state value written by [`HopState::encode`]; unknown items are
    /// ignored. A value with no decision flag means the caller decided (`Yes`/`No` are
    /// then read from the sampled bit, reported here as [`Sampled::Yes`]).
    pub fn decode(value: &str) -> Self {
        let mut hop = HopState {
            sampled: Sampled::Yes,
            ..Default::default()
        };
        for item in value.split(';') {
            match item {
                "np" => hop.no_parent = true,
                "s?" => hop.sampled = Sampled::Requested,
                "s-" => hop.sampled = Sampled::Unknown,
                _ => {
                    if let Some(rest) = item.strip_prefix("f:")
                        && let Some((k, v)) = rest.split_once(':')
                    {
                        hop.fields.push((unescape(k), unescape(v)));
                    }
                }
            }
        }
        hop
    }
}

/// What a trace-state value (and this format's `;`/`:` separators) cannot hold: controls,
/// space, non-ASCII, and `, = ; : %`.
const ESCAPED: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b',')
    .add(b'=')
    .add(b';')
    .add(b':')
    .add(b'%');

fn escape(s: &str) -> String {
    utf8_percent_encode(s, ESCAPED).to_string()
}

fn unescape(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_header_carries_nothing() {
        let hop = HopState {
            sampled: Sampled::No,
            ..Default::default()
        };
        assert_eq!(hop.encode(), None);
    }

    #[test]
    fn awkward_field_values_round_trip() {
        let hop = HopState {
            no_parent: false,
            sampled: Sampled::Unknown,
            fields: vec![("Foo".into(), "a=b,c;d:e%f g".into())],
        };
        let v = hop.encode().unwrap();
        assert!(!v.contains(',') && !v.contains('=') && !v.contains(' '));
        assert_eq!(HopState::decode(&v), hop);
    }

    #[test]
    fn stand_in_parent_is_stable_non_zero_and_distinct() {
        let a = TraceId::from_u128(0x5759e988_bd862e3fe1be46a994272793);
        let b = TraceId::from_u128(0x5759e989_bd862e3fe1be46a994272793);
        assert_eq!(HopState::stand_in_parent(a), HopState::stand_in_parent(a));
        assert_ne!(HopState::stand_in_parent(a), HopState::stand_in_parent(b));
        // An id whose mix is zero still gets a usable span id.
        let zero_mix = TraceId::from_u128(0x5852_4159_2d4e_4f50);
        assert!(!HopState::stand_in_parent(zero_mix).is_zero());
        assert!(!HopState::stand_in_parent(TraceId::from_u128(0)).is_zero());
    }

    #[test]
    fn garbage_decodes_to_something_harmless() {
        let hop = HopState::decode("zz;f:;f:a;%%%;f:k:%G1");
        assert!(!hop.no_parent);
        assert_eq!(hop.fields, vec![("k".to_string(), "%G1".to_string())]);
    }
}
