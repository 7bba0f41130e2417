//! `error`, `throttle`, `fault` and `cause`: from the HTTP status, the span status and the
//! span's `exception` events (also when the status was left Unset).

use std::borrow::Cow;

use xray_model::{Cause, CauseDetails, Exception, SegmentId, StackFrame};

use crate::config::Exclude;
use crate::stack::{CauseEntry, Frames, ParsedStack, parse_stack};
use crate::view::{AttrValue, EventView, SpanStatus};

/// Name of the event OpenTelemetry records an exception as.
pub(crate) const EXCEPTION_EVENT: &str = "exception";

/// The event the AWS SDKs (through their OpenTelemetry instrumentation) record for each
/// failed HTTP attempt of a call, retried or not.
pub(crate) const HTTP_FAILURE_EVENT: &str = "HTTP request failure";

/// The exception type X-Ray is given for an [`HTTP_FAILURE_EVENT`] (the Collector's).
const HTTP_FAILURE_TYPE: &str = "aws.http.error.event";

/// What [`cause`] needs besides the events.
pub(crate) struct CauseContext<'a, 'c> {
    pub(crate) status: SpanStatus<'a>,
    /// `http.status_text`: the message of a failed span without a description.
    pub(crate) status_text: Option<&'a str>,
    /// Exceptions raised by a downstream service.
    pub(crate) remote: bool,
    /// `telemetry.sdk.language`, to read stack traces.
    pub(crate) language: Option<&'c str>,
    pub(crate) exclude: &'c Exclude,
}

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

/// The exception's one frame from the event's `code.*` attributes (new and old names),
/// for an error without a stack trace, as a Rust `tracing` error event usually is.
fn code_frame<'a>(
    attributes: impl Iterator<Item = (&'a str, AttrValue<'a>)>,
) -> Option<StackFrame<'a>> {
    let (mut path, mut line, mut function, mut module) = (None, None, None, None);
    for (key, value) in attributes {
        match key {
            "code.file.path" | "code.filepath" => path = non_empty(value.as_str()),
            "code.line.number" | "code.lineno" => {
                line = value.as_i64().and_then(|l| u32::try_from(l).ok())
            }
            "code.function.name" | "code.function" => function = non_empty(value.as_str()),
            "code.module.name" | "code.namespace" => module = non_empty(value.as_str()),
            _ => {}
        }
    }
    let label = function.or(module);
    (path.is_some() || label.is_some()).then(|| StackFrame {
        path: path.map(Cow::Borrowed),
        line: line.filter(|_| path.is_some()),
        label: label.map(Cow::Borrowed),
    })
}

/// An [`HTTP_FAILURE_EVENT`] as an exception message `status@time@message`, as the
/// Collector writes it; `None` without both the status and the message.
fn http_failure_message<'a>(event: &EventView<'a>, exclude: &Exclude) -> Option<String> {
    let (mut status, mut message) = (None, None);
    for (key, value) in event.attributes.iter() {
        if !exclude.is_empty() && exclude.matches(key) {
            continue;
        }
        match key {
            "http.response.status_code" | "http.status_code" => status = value.as_i64(),
            "aws.http.error_message" => message = non_empty(value.as_str()),
            _ => {}
        }
    }
    Some(format!(
        "{}@{:.6}@{}",
        status?,
        event.time.seconds(),
        message?
    ))
}

/// Builds the cause from the span's exception events and the AWS SDKs' HTTP failure
/// events, or from the status description (else `http.status_text`) when there is none.
pub(crate) fn cause<'a>(
    span_id: SegmentId,
    events: impl Iterator<Item = EventView<'a>>,
    context: CauseContext<'a, '_>,
) -> Option<Cause<'a>> {
    let CauseContext {
        status,
        status_text,
        remote,
        language,
        exclude,
    } = context;
    let mut exceptions: Vec<Exception<'a>> = Vec::new();
    for event in events {
        if event.name == HTTP_FAILURE_EVENT {
            if let Some(message) = http_failure_message(&event, exclude) {
                exceptions.push(Exception {
                    id: exception_id(span_id, exceptions.len() as u64),
                    kind: Some(Cow::Borrowed(HTTP_FAILURE_TYPE)),
                    message: Some(Cow::Owned(message)),
                    remote: true,
                    ..Exception::default()
                });
            }
            continue;
        }
        if !is_exception(&event) {
            continue;
        }
        let (mut kind, mut message, mut stacktrace) = (None, None, None);
        let attributes = || {
            event
                .attributes
                .iter()
                .filter(|(key, _)| exclude.is_empty() || !exclude.matches(key))
        };
        for (key, value) in attributes() {
            match key {
                "exception.type" => kind = non_empty(value.as_str()),
                "exception.message" => message = non_empty(value.as_str()),
                "exception.stacktrace" => stacktrace = Some(value),
                _ => {}
            }
        }
        let mut parsed = match stacktrace {
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
        if parsed.frames.frames.is_empty()
            && let Some(frame) = code_frame(attributes())
        {
            parsed.frames = Frames {
                frames: vec![frame],
                truncated: 0,
            };
        }
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
        && let Some(message) = non_empty(Some(description)).or(status_text)
    {
        exceptions.push(Exception {
            id: exception_id(span_id, 0),
            message: Some(Cow::Borrowed(message)),
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
