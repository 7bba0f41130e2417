//! The AWS X-Ray wire format, with no OpenTelemetry in it.
//!
//! - [`TraceId`] and [`SegmentId`]: ids in their X-Ray text forms, bit-compatible with
//!   OpenTelemetry's trace and span ids.
//! - [`TraceHeader`]: the one parser and writer of the `X-Amzn-Trace-Id` header.
//! - [`Segment`] and its blocks: segment and subsegment documents, with serde impls and a
//!   direct writer ([`Segment::write_json`]) that gives serde_json's text, empty fields
//!   omitted.
//! - [`limits`]: X-Ray's limits and the sanitising rules that make any input fit them.
//! - [`nest_subsegments`]: one document per segment tree of a batch, as the SDKs send.
//! - [`split_to_fit`]: splits a segment tree into documents under the 64 kB limit.
//! - [`datagram`]: the daemon's UDP framing, both ways.
//! - [`carry`]: how header details OpenTelemetry's span context cannot hold travel in its
//!   trace state (no parent, no decision yet, extra fields).
//!
//! ```
//! use xray_model::{Segment, SegmentId, TraceHeader, limits::sanitize_name};
//!
//! let header = TraceHeader::parse("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1").unwrap();
//! let mut segment = Segment::new(
//!     sanitize_name("GET /users/{id}"),
//!     SegmentId::from_u64(0x53995c3f42cd8ad8),
//!     header.root,
//!     1_465_510_280.5,
//! );
//! segment.end_time = Some(1_465_510_280.75);
//! assert!(segment.to_json().starts_with(r#"{"name":"GET /users/id","id":"53995c3f42cd8ad8""#));
//! ```
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod carry;
pub mod datagram;
mod decimal;
pub mod document;
mod escape;
mod header;
mod id;
mod json;
pub mod limits;
mod name_chars;
mod namespace;
mod nest;
mod owned;
mod split;

pub use datagram::{DAEMON_HEADER, DatagramError, encode_datagram, parse_datagram};
pub use document::{
    AnnotationValue, AnyValue, Aws, Cause, CauseDetails, CloudWatchLogs, Ec2, Ecs, Eks,
    ElasticBeanstalk, Exception, Fields, Http, HttpRequest, HttpResponse, Lambda, Link, Metadata,
    Segment, Service, Sql, StackFrame, XraySdk, epoch_seconds, epoch_seconds_from_nanos, origin,
};
pub use header::{
    HEADER_NAME, HeaderError, LAMBDA_ENV_VAR, LAMBDA_RUNTIME_HEADER, MAX_HEADER_LEN, Sampled,
    TraceHeader,
};
pub use id::{IdError, SegmentId, TRACE_ID_LEN, TraceId};
pub use json::{write_json_int, write_json_string, write_json_value};
pub use namespace::{EncodedFields, FieldList, Namespace};
pub use nest::{MAX_NESTING_DEPTH, Nesting, nest_subsegments};
pub use split::{SplitReport, encoded_len, split_to_document_limit, split_to_fit, trim_to_fit};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
