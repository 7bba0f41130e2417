//! OpenTelemetry spans to AWS X-Ray segment documents: one translator for in-process SDK
//! span data ([`Translator::translate_sdk`]) and OTLP protobuf spans
//! ([`Translator::translate_otlp`]), with the rules written once against [`SpanView`].
//! For many spans of one resource, [`Translator::prepare_sdk`] / [`Translator::prepare_otlp`]
//! derive the resource's part of the documents once ([`PreparedResource`]). OTLP protobuf
//! request bytes can also be read in place, without decoding them into owned types
//! ([`WireRequest`], whose [`WireSpan`]s are one more [`SpanView`]).
//!
//! The rules, in short:
//! - Server and Consumer spans, and spans with a remote or no parent, become segments
//!   named after the service; other spans become standalone subsegments. A remote parent
//!   that our propagator made up for a `Root=`-only header gives no `parent_id`.
//! - A local-root Client or Producer span becomes a segment for the service holding a
//!   subsegment for the call, so the callee shows on the map. Application Signals'
//!   `aws.span.kind`, `aws.local.service` and `aws.remote.service` are honoured.
//! - In Lambda (`cloud.platform = aws_lambda`), spans under the invocation's remote parent
//!   are subsegments of Lambda's function segment, never segments of our own.
//! - Downstream calls (Client/Producer, AWS SDK calls, database calls) get namespace `aws`
//!   (`rpc.system = aws-api`) or `remote`, and the callee's name.
//! - `http`, `aws`, `sql`, `error`/`throttle`/`fault` and `cause` come from old and new
//!   semantic conventions; exceptions give causes with parsed stack traces.
//! - Everything else is kept: marked attributes as annotations, the rest in metadata
//!   (`default`; `otel` for span name, scope and events; `otel.resource` on segments).
//!
//! - [`TranslatorConfig`] has the Collector's settings (`indexed_attributes`,
//!   `index_all_attributes`, log groups) and glob exclusions of attributes that must never
//!   leave the process; [`check`] refuses spans X-Ray cannot take (bad ids, impossible
//!   times) before translation.
//!
//! The other way, [`reverse::to_otlp`] turns segment documents back into OTLP spans.
//!
//! Documents borrow from the span; serialize them and apply `xray_model::trim_to_fit`
//! before sending.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod attributes;
mod aws;
mod cause;
mod check;
mod config;
mod http;
mod keys;
mod otlp;
mod otlp_wire;
mod resource;
pub mod reverse;
mod sdk;
mod sql;
mod stack;
mod translate;
mod view;

pub use attributes::{METADATA_ATTRIBUTE_PREFIX, OTEL_NAMESPACE, RESOURCE_NAMESPACE};
pub use check::{Invalid, LATEST_TIME, check, check_otlp, check_sdk};
pub use config::{
    DEFAULT_ANNOTATION_PREFIX, INDEX_ALL_ATTRIBUTES_ENV, INDEXED_ATTRIBUTES_ENV, InvalidGlob,
    LOG_GROUP_NAMES_ENV, METADATA_EXCLUDE_ENV, TRACING_NAME_ENV, TranslatorConfig, split_list,
};
pub use otlp::OtlpSpan;
pub use otlp_wire::{MAX_VALUE_DEPTH, WireError, WireRequest, WireResourceSpans, WireSpan};
pub use resource::PreparedResource;
pub use sdk::SdkSpan;
pub use translate::Translator;
pub use view::{
    AttrArray, AttrValue, Attributes, AttributesIter, EventTime, EventView, LinkView, SpanKind,
    SpanStatus, SpanView,
};
