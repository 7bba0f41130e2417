//! `error`, `throttle`, `fault` and `cause`: from the HTTP status, the span status and the
//! span's `exception` events (also when the status was left Unset).

use std::borrow::Cow;

use xray_model::{Cause, CauseDetails, Exception, SegmentId};

use crate::stack::{CauseEntry, ParsedStack, parse_stack};
use crate::view::{AttrValue, EventView, SpanStatus};

/// Name of the event OpenTelemetry records an exception as.
pub(crate) const EXCEPTION_EVENT: &str = "exception";

/// What went wrong, as X-Ray colours it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flags {
    pub(crate) error: bool,
    pub(crate) throttle: bool,
    pub(crate) fault: bool,
}

/// 4xx is an error (429 also a throttle), 5xx a fault; without a 4xx or 5xx status an
/// Error status, or an exception not overruled by an Ok status, is a fault.
pub(crate) fn flags(
    http_status: Option<u16>,
    status: SpanStatus<'_>,
    has_exception: bool,
) -> Flags {
    match http_status {
        Some(429) => Flags {
            error: true,
            throttle: true,
            fault: false,
        },
        Some(400..=499) => Flags {
            error: true,
            ..Flags::default()
        },
        Some(500..=599) => Flags {
            fault: true,
            ..Flags::default()
        },
        _ => Flags {
            fault: matches!(status, SpanStatus::Error(_))
                || (has_exception && status != SpanStatus::Ok),
            ..Flags::default()
        },
    }
}

/// A stable exception id: the same span always gives the same ids, so a document can be
/// rebuilt or compared, and ids differ between exceptions and spans.
pub(crate) fn exception_id(span: SegmentId, n: u64) -> SegmentId {
    // splitmix64 finaliser over the span id and the exception's position.
    let mut z = span
        .to_u64()
        .wrapping_add(n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    SegmentId::from_u64(if z == 0 { 1 } else { z })
}

/// Whether an event records an exception: named `exception` (the convention), or carrying
/// `exception.*` attributes under another name (tracing-opentelemetry names an event with
/// an `error` field after its message).
pub(crate) fn is_exception(event: &EventView<'_>) -> bool {
    event.name == EXCEPTION_EVENT
        || event
            .attributes
            .iter()
            .any(|(k, _)| k == "exception.message" || k == "exception.type")
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// Builds the cause from the span's exception events, or from the status description when
/// there is none. `remote` marks exceptions raised by a downstream service.
pub(crate) fn cause<'a>(
    span_id: SegmentId,
    events: impl Iterator<Item = EventView<'a>>,
    status: SpanStatus<'a>,
    remote: bool,
    language: Option<&str>,
) -> Option<Cause<'a>> {
    let mut exceptions: Vec<Exception<'a>> = Vec::new();
    for event in events.filter(is_exception) {
        let (mut kind, mut message, mut stacktrace) = (None, None, None);
        for (key, value) in event.attributes.iter() {
            match key {
                "exception.type" => kind = non_empty(value.as_str()),
                "exception.message" => message = non_empty(value.as_str()),
                "exception.stacktrace" => stacktrace = Some(value),
                _ => {}
            }
        }
        let parsed = match stacktrace {
            Some(AttrValue::Str(text)) if !text.is_empty() => parse_stack(language, text),
            // tracing-opentelemetry records an error's `source()` chain as a string array.
            Some(AttrValue::Array(chain)) => ParsedStack {
                causes: chain
                    .iter()
                    .filter_map(|item| non_empty(item.as_str()))
                    .map(|m| CauseEntry {
                        message: Some(Cow::Borrowed(m)),
                        ..CauseEntry::default()
                    })
                    .collect(),
                ..ParsedStack::default()
            },
            _ => ParsedStack::default(),
        };
        let top = exceptions.len();
        exceptions.push(Exception {
            id: exception_id(span_id, top as u64),
            kind: kind.map(Cow::Borrowed),
            message: message.map(Cow::Borrowed),
            remote,
            truncated: (parsed.frames.truncated > 0).then_some(parsed.frames.truncated),
            stack: parsed.frames.frames,
            ..Exception::default()
        });
        for CauseEntry {
            kind,
            message,
            frames,
        } in parsed.causes
        {
            let id = exception_id(span_id, exceptions.len() as u64);
            if let Some(previous) = exceptions.last_mut() {
                previous.cause = Some(id);
            }
            exceptions.push(Exception {
                id,
                kind: kind.map(Cow::Borrowed),
                message,
                remote,
                truncated: (frames.truncated > 0).then_some(frames.truncated),
                stack: frames.frames,
                ..Exception::default()
            });
        }
    }
    if exceptions.is_empty()
        && let SpanStatus::Error(description) = status
        && !description.is_empty()
    {
        exceptions.push(Exception {
            id: exception_id(span_id, 0),
            message: Some(Cow::Borrowed(description)),
            remote,
            ..Exception::default()
        });
    }
    (!exceptions.is_empty()).then(|| {
        Cause::Details(CauseDetails {
            exceptions,
            ..CauseDetails::default()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_table() {
        let err = SpanStatus::Error("");
        assert_eq!(
            flags(Some(429), err, false),
            Flags {
                error: true,
                throttle: true,
                fault: false
            }
        );
        assert_eq!(
            flags(Some(404), err, true),
            Flags {
                error: true,
                ..Flags::default()
            }
        );
        assert_eq!(
            flags(Some(500), SpanStatus::Unset, false),
            Flags {
                fault: true,
                ..Flags::default()
            }
        );
        assert_eq!(
            flags(Some(200), err, false),
            Flags {
                fault: true,
                ..Flags::default()
            }
        );
        assert_eq!(
            flags(None, SpanStatus::Unset, true),
            Flags {
                fault: true,
                ..Flags::default()
            }
        );
        assert_eq!(flags(None, SpanStatus::Ok, true), Flags::default());
        assert_eq!(flags(Some(302), SpanStatus::Unset, false), Flags::default());
    }

    #[test]
    fn exception_ids_are_stable_and_distinct() {
        let s = SegmentId::from_u64(42);
        assert_eq!(exception_id(s, 0), exception_id(s, 0));
        assert_ne!(exception_id(s, 0), exception_id(s, 1));
        assert_ne!(exception_id(s, 0), exception_id(SegmentId::from_u64(43), 0));
        assert!(!exception_id(SegmentId::from_u64(0), 0).is_zero());
    }
}
