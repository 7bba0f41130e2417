//! From X-Ray to OpenTelemetry: segment documents to OTLP spans, the inverse of
//! [`crate::Translator`].
//!
//! [`to_otlp`] turns one top-level document (a segment, or a subsegment sent on its own)
//! and every subsegment nested in it into one OTLP `ResourceSpans`: one span per
//! (sub)segment, flattened, with
//! - the X-Ray trace id as the W3C trace id bit for bit, the segment ids as span ids, the
//!   enclosing (sub)segment (or `parent_id`) as the parent, times to the microsecond;
//! - span kind Server for segments, Client for `aws` and `remote` subsegments, Internal
//!   for the others;
//! - an Error status for a fault, `exception` events with the stack for the cause;
//! - the `http`, `aws` and `sql` blocks as semantic-convention attributes, annotations as
//!   attributes listed in `aws.xray.annotations`, metadata as attributes (`default`), the
//!   span name, scope and events our translator keeps in `otel`, and other namespaces as
//!   `aws.xray.metadata.<namespace>` maps;
//! - the resource from `otel.resource`, completed with `service.name`, `cloud.*` from the
//!   origin and the `ec2`/`ecs`/`eks`/`elastic_beanstalk`/`lambda`/`xray` details.
//!
//! A span translated by [`crate::Translator`] and converted back comes back equal in
//! everything X-Ray carries. In-progress documents are held by [`InProgressHold`] until
//! the complete one arrives or a deadline passes.
//!
//! ```
//! use xray_model::Segment;
//! let doc: Segment = serde_json::from_str(r#"{"name":"checkout","id":"70de5b6f19ff9a0a",
//!     "trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.5,"end_time":2.5,
//!     "http":{"response":{"status":503}},"fault":true,
//!     "subsegments":[{"name":"db","id":"70de5b6f19ff9a0b","start_time":1.6,"end_time":2.4,"namespace":"remote"}]}"#).unwrap();
//! let spans = xray_translate::reverse::to_otlp(&doc).unwrap();
//! let all = &spans.scope_spans[0].spans;
//! assert_eq!(all.len(), 2);
//! assert_eq!(hex(&all[0].trace_id), "581cf771a006649127e371903a2de979");
//! assert_eq!(all[1].parent_span_id, all[0].span_id);
//! # fn hex(b: &[u8]) -> String { b.iter().map(|b| format!("{b:02x}")).collect() }
//! ```

mod hold;
mod resource;
mod span;
mod value;

use std::fmt;

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use xray_model::Segment;

pub use hold::{Held, InProgressHold};
pub use span::IN_PROGRESS_ATTRIBUTE;

/// Why a document could not be converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConvertError {
    /// A top-level document without a trace id.
    NoTraceId,
    /// An all-zero trace or segment id (the id is given).
    InvalidId(String),
    /// A start or end time that is not an epoch time in seconds.
    InvalidTime(String),
    /// A top-level document still in progress (hold it: [`InProgressHold`]).
    InProgress(String),
}

impl ConvertError {
    /// A short reason, for metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            ConvertError::NoTraceId | ConvertError::InvalidId(_) => "invalid_id",
            ConvertError::InvalidTime(_) => "invalid_time",
            ConvertError::InProgress(_) => "in_progress",
        }
    }
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConvertError::NoTraceId => f.write_str("a top-level document without a trace id"),
            ConvertError::InvalidId(id) => write!(f, "an all-zero id in document {id}"),
            ConvertError::InvalidTime(id) => write!(f, "a time out of range in document {id}"),
            ConvertError::InProgress(id) => write!(f, "document {id} is still in progress"),
        }
    }
}

impl std::error::Error for ConvertError {}

/// One top-level document and its nested subsegments as one `ResourceSpans`, the spans in
/// document order (each parent before its subsegments), grouped by instrumentation scope.
pub fn to_otlp(doc: &Segment<'_>) -> Result<ResourceSpans, ConvertError> {
    let trace_id = doc.trace_id.ok_or(ConvertError::NoTraceId)?;
    if trace_id.is_zero() {
        return Err(ConvertError::InvalidId(doc.id.to_string()));
    }
    let resource = resource::resource(doc);
    let cx = span::Context {
        trace_id,
        language: resource.get_str("telemetry.sdk.language"),
        account: resource.get_str("cloud.account.id"),
        service_name: resource.get_str("service.name"),
        lambda: resource.get_str("cloud.platform") == Some("aws_lambda")
            && resource
                .get_str("cloud.provider")
                .is_none_or(|p| p == "aws"),
    };
    let mut scopes: Vec<ScopeSpans> = Vec::new();
    // A segment the translator made around the call of a local-root Client or Producer
    // span (its id derived from the call's) goes back into that one span.
    let call = match doc.subsegments.as_slice() {
        [call]
            if !doc.is_standalone_subsegment()
                && doc.id == crate::translate::service_segment_id(call.id) =>
        {
            Some(call)
        }
        _ => None,
    };
    let mut stack = vec![match call {
        Some(call) => span::Node {
            doc: call,
            parent: doc.parent_id,
            embedded: false,
            parent_end: None,
            service: Some(doc),
        },
        None => span::Node {
            doc,
            parent: doc.parent_id,
            embedded: false,
            parent_end: None,
            service: None,
        },
    }];
    while let Some(node) = stack.pop() {
        let built = span::build(node, &cx)?;
        // Pushed in reverse, so subsegments come out in their order.
        stack.extend(node.doc.subsegments.iter().rev().map(|child| span::Node {
            doc: child,
            parent: Some(node.doc.id),
            embedded: true,
            parent_end: Some(built.end),
            service: None,
        }));
        let scope = built.scope.map(|(name, version)| InstrumentationScope {
            name,
            version,
            ..Default::default()
        });
        match scopes.iter_mut().find(|s| s.scope == scope) {
            Some(group) => group.spans.push(built.span),
            None => scopes.push(ScopeSpans {
                scope,
                spans: vec![built.span],
                ..Default::default()
            }),
        }
    }
    Ok(ResourceSpans {
        resource: Some(Resource {
            attributes: resource.0,
            ..Default::default()
        }),
        scope_spans: scopes,
        ..Default::default()
    })
}
