//! Spans X-Ray cannot take, found before translation: ids of the wrong length (or all
//! zeros) and times outside 1970..2200. The caller drops them with [`Invalid::reason`]
//! as the counted reason; nothing is made up in their place.

use opentelemetry_proto::tonic::trace::v1::Span as ProtoSpan;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;

use crate::otlp::OtlpSpan;
use crate::sdk::SdkSpan;
use crate::view::SpanView;

/// The latest start or end time X-Ray is given: 2200-01-01T00:00:00Z, in epoch seconds.
pub const LATEST_TIME: f64 = 7_258_118_400.0;

/// Why a span cannot become an X-Ray document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// A trace id not of 16 bytes, a span id not of 8, a parent id neither empty nor 8
    /// bytes, or an all-zero trace or span id.
    Id,
    /// A start or end time before 1970 or after 2200.
    Time,
}

impl Invalid {
    /// The reason label counters and logs use: `invalid_id` or `invalid_time`.
    pub fn reason(self) -> &'static str {
        match self {
            Invalid::Id => "invalid_id",
            Invalid::Time => "invalid_time",
        }
    }

    /// What is wrong, in words.
    pub fn description(self) -> &'static str {
        match self {
            Invalid::Id => "trace or span id of the wrong length, or all zeros",
            Invalid::Time => "start or end time before 1970 or after 2200",
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for Invalid {}

fn time_ok(seconds: f64) -> bool {
    (0.0..=LATEST_TIME).contains(&seconds)
}

/// Whether X-Ray can take `span`. An end time before the start is not an error: the
/// translator sets it to the start and keeps the span's own end in metadata.
///
/// # Errors
///
/// [`Invalid::Id`] for malformed or all-zero ids, [`Invalid::Time`] for a start or end
/// time before 1970 or after 2200.
///
/// # Examples
///
/// ```
/// use opentelemetry_proto::tonic::trace::v1::Span;
/// use xray_translate::{Invalid, check_otlp};
/// let mut span = Span {
///     trace_id: vec![1; 16],
///     span_id: vec![2; 8],
///     start_time_unix_nano: 1_700_000_000_000_000_000,
///     end_time_unix_nano: 1_700_000_000_250_000_000,
///     ..Default::default()
/// };
/// assert_eq!(check_otlp(&span), Ok(()));
/// span.trace_id = vec![1, 2];
/// assert_eq!(check_otlp(&span), Err(Invalid::Id));
/// ```
pub fn check<'a, V: SpanView<'a>>(span: &V) -> Result<(), Invalid> {
    if !span.ids_are_well_formed() {
        return Err(Invalid::Id);
    }
    if !time_ok(span.start_time()) || span.end_time().is_some_and(|end| !time_ok(end)) {
        return Err(Invalid::Time);
    }
    Ok(())
}

/// [`check`] for an OTLP span.
///
/// # Errors
///
/// As [`check`].
pub fn check_otlp(span: &ProtoSpan) -> Result<(), Invalid> {
    check(&OtlpSpan::new(span, None, None))
}

/// [`check`] for an SDK span.
///
/// # Errors
///
/// As [`check`].
pub fn check_sdk(span: &SpanData) -> Result<(), Invalid> {
    static EMPTY: std::sync::OnceLock<Resource> = std::sync::OnceLock::new();
    check(&SdkSpan::new(
        span,
        EMPTY.get_or_init(|| Resource::builder_empty().build()),
    ))
}
