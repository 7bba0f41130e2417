//! Helpers for code that holds an [`http::HeaderMap`] and may not use OpenTelemetry
//! directly: read and write the header as a [`TraceHeader`], or run any propagator over
//! the map.

use http::{HeaderMap, HeaderValue};
use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
pub use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use xray_model::TraceHeader;

use crate::HEADER_FIELD;

/// The first `X-Amzn-Trace-Id` value in `headers` that has a valid `Root`.
///
/// # Examples
///
/// ```
/// use http::HeaderMap;
/// use xray_propagation::extract_header;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793; Sampled=?".parse().unwrap());
/// let h = extract_header(&headers).unwrap();
/// assert_eq!(h.root.to_string(), "1-5759e988-bd862e3fe1be46a994272793");
/// ```
pub fn extract_header(headers: &HeaderMap) -> Option<TraceHeader> {
    headers
        .get_all(HEADER_FIELD)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| TraceHeader::parse(v).ok())
}

/// Sets `X-Amzn-Trace-Id` to `header`, replacing any value already there.
///
/// # Examples
///
/// ```
/// use http::HeaderMap;
/// use xray_model::TraceHeader;
/// use xray_propagation::inject_header;
///
/// let h = TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1").unwrap();
/// let mut headers = HeaderMap::new();
/// inject_header(&mut headers, &h);
/// assert_eq!(headers["x-amzn-trace-id"], h.to_string());
/// ```
pub fn inject_header(headers: &mut HeaderMap, header: &TraceHeader) {
    // The writer emits only tokens, hex and `;=`, and fields were checked when parsed;
    // a value that is still not a valid header value is not sent rather than panicking.
    if let Ok(value) = HeaderValue::from_str(&header.to_string()) {
        headers.insert(HEADER_FIELD, value);
    }
}

/// Runs `propagator` over `headers` and returns the context it found (the current
/// context when it found nothing).
pub fn extract_context(propagator: &dyn TextMapPropagator, headers: &HeaderMap) -> Context {
    propagator.extract_with_context(&Context::current(), &HeaderExtractor(headers))
}

/// Writes the headers `propagator` derives from `cx` into `headers`.
pub fn inject_context(propagator: &dyn TextMapPropagator, cx: &Context, headers: &mut HeaderMap) {
    propagator.inject_context(cx, &mut HeaderInjector(headers));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_first_value_does_not_hide_a_good_second_one() {
        let mut headers = HeaderMap::new();
        headers.append(HEADER_FIELD, HeaderValue::from_static("Root=garbage"));
        headers.append(
            HEADER_FIELD,
            HeaderValue::from_static("Root=1-5759e988-bd862e3fe1be46a994272793"),
        );
        assert!(extract_header(&headers).is_some());
        assert!(extract_header(&HeaderMap::new()).is_none());
    }

    #[test]
    fn non_ascii_values_are_skipped_not_panicked_on() {
        let mut headers = HeaderMap::new();
        headers.insert(
            HEADER_FIELD,
            HeaderValue::from_bytes(b"Root=1-5759e988-bd862e3fe1be46a994272793;X=\xff").unwrap(),
        );
        assert!(extract_header(&headers).is_none());
    }
}
