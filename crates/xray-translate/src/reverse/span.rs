//! One (sub)segment document to one OTLP span: ids, parent link and times, kind,
//! status and `exception` events, the `http`, `aws` and `sql` blocks as semantic-convention
//! attributes, annotations and metadata.

use std::borrow::Cow;

use opentelemetry_proto::tonic::common::v1::{KeyValueList, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{Span, SpanFlags, Status};
use xray_model::document::{METADATA_DEFAULT, NAMESPACE_AWS, NAMESPACE_REMOTE};
use xray_model::{AnyValue, Cause, Exception, Fields, Segment, SegmentId, TraceId};

use super::ConvertError;
use super::value::{Attrs, annotation, any, key_values, string, strings};
use crate::attributes::{METADATA_ATTRIBUTE_PREFIX, OTEL_NAMESPACE, RESOURCE_NAMESPACE};
use crate::aws::AWS_API;
use crate::cause::{CauseContext, EXCEPTION_EVENT, cause};
use crate::config::Exclude;
use crate::stack::{ExceptionText, write_stack};
use crate::translate::END_BEFORE_START_KEY;
use crate::view::{Attributes, EventView, SpanStatus};

/// Attribute set on an embedded subsegment that was still in progress when its parent
/// was sent (its end is the parent's).
pub const IN_PROGRESS_ATTRIBUTE: &str = "aws.xray.in_progress";

/// Attribute listing the span attributes that were X-Ray annotations.
const ANNOTATIONS_ATTRIBUTE: &str = "aws.xray.annotations";

/// A document in the tree being flattened: where it sits and what it inherits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node<'d, 'a> {
    pub(crate) doc: &'d Segment<'a>,
    /// The enclosing (sub)segment, or the document's own `parent_id` at the top.
    pub(crate) parent: Option<SegmentId>,
    /// Inside another document's `subsegments`.
    pub(crate) embedded: bool,
    /// The enclosing document's end, for an embedded subsegment still in progress.
    pub(crate) parent_end: Option<u64>,
    /// For the call of a local-root Client or Producer span: the service segment the
    /// translator made around it, which goes back into this one span.
    pub(crate) service: Option<&'d Segment<'a>>,
}

/// A converted span and the instrumentation scope it was recorded under.
pub(crate) struct Built {
    pub(crate) span: Span,
    pub(crate) scope: Option<(String, String)>,
    /// The span's end, inherited by embedded subsegments still in progress.
    pub(crate) end: u64,
}

/// Epoch seconds as OTLP nanoseconds, to the microsecond our translator keeps (so a
/// translated time comes back exactly); `None` for times before 1970 or after 2500.
pub(crate) fn nanos(seconds: f64) -> Option<u64> {
    (seconds.is_finite() && (0.0..1.7e10).contains(&seconds))
        .then(|| (seconds * 1e6).round() as u64 * 1000)
}

/// What a span needs from the rest of the document.
pub(crate) struct Context<'r> {
    pub(crate) trace_id: TraceId,
    /// `telemetry.sdk.language` of the resource: picks the stack trace format.
    pub(crate) language: Option<&'r str>,
    /// `cloud.account.id` of the resource: a segment's own account id is only written
    /// when it differs.
    pub(crate) account: Option<&'r str>,
    /// `service.name` of the resource: a service segment named otherwise was named by
    /// Application Signals' `aws.local.service`.
    pub(crate) service_name: Option<&'r str>,
    /// The resource is a Lambda function: there a segment's parent is never remote (the
    /// translator makes a span under a remote parent a subsegment of Lambda's segment).
    pub(crate) lambda: bool,
}

pub(crate) fn build(node: Node<'_, '_>, cx: &Context<'_>) -> Result<Built, ConvertError> {
    let doc = node.doc;
    let invalid = || ConvertError::InvalidId(doc.id.to_string());
    if doc.id.is_zero() {
        return Err(invalid());
    }
    let start =
        nanos(doc.start_time).ok_or_else(|| ConvertError::InvalidTime(doc.id.to_string()))?;
    let is_segment = !node.embedded && !doc.is_standalone_subsegment() && node.service.is_none();
    let mut attrs = Attrs::default();
    let end = match doc.end_time {
        Some(end) => nanos(end).ok_or_else(|| ConvertError::InvalidTime(doc.id.to_string()))?,
        None if node.embedded => {
            attrs.set(IN_PROGRESS_ATTRIBUTE, Value::BoolValue(true));
            node.parent_end.unwrap_or(start).max(start)
        }
        None => return Err(ConvertError::InProgress(doc.id.to_string())),
    };
    let namespace = doc.namespace.as_deref();
    let aws_call = !is_segment && namespace == Some(NAMESPACE_AWS);
    let downstream = !is_segment && (aws_call || namespace == Some(NAMESPACE_REMOTE));
    let kind = match () {
        _ if is_segment => SpanKind::Server,
        _ if downstream => SpanKind::Client,
        _ => SpanKind::Internal,
    };
    // Who was called: the translator names a downstream subsegment after it. When the
    // free attributes hold another name the translator would read first, Application
    // Signals' `aws.remote.service` (read ahead of all) carries this one.
    let default = doc.metadata.get(METADATA_DEFAULT);
    let other_name = default.is_some_and(|d| {
        ["aws.remote.service", "peer.service", "rpc.service"]
            .iter()
            .any(|k| d.contains_key(k))
    });
    if aws_call {
        attrs.set("rpc.system", string(AWS_API));
    }
    if downstream && other_name {
        attrs.set("aws.remote.service", string(&doc.name));
    } else if aws_call {
        attrs.set("rpc.service", string(&doc.name));
    } else if downstream {
        attrs.set("peer.service", string(&doc.name));
    }
    // A segment named otherwise than its service was named by `aws.local.service`.
    if is_segment && cx.service_name.is_some_and(|n| n != doc.name) {
        attrs.set("aws.local.service", string(&doc.name));
    }
    http_attributes(doc, &mut attrs);
    aws_attributes(doc, is_segment, aws_call, cx.account, &mut attrs);
    sql_attributes(doc, &mut attrs);
    attrs.set_str("enduser.id", doc.user.as_deref());
    if let Some(service) = node.service {
        attrs.set_str("enduser.id", service.user.as_deref());
        if cx.service_name.is_some_and(|n| n != service.name) {
            attrs.set("aws.local.service", string(&service.name));
        }
    }
    if !doc.annotations.is_empty() {
        for (key, value) in doc.annotations.iter() {
            attrs.set(key, annotation(value));
        }
        attrs.set(
            ANNOTATIONS_ATTRIBUTE,
            strings(doc.annotations.iter().map(|(k, _)| k)),
        );
    }
    let mut otel = OtelDetails::default();
    // (read below; a span that ended before it started gets its own end back)
    for (namespace, fields) in doc.metadata.iter() {
        match namespace {
            // Unmapped span attributes; a key here holds the full value where a block
            // holds a cut copy, so it wins.
            METADATA_DEFAULT => {
                fields.for_each(|key, value| attrs.set_any(key, any(value)));
            }
            OTEL_NAMESPACE => otel.read(&fields.as_fields()),
            RESOURCE_NAMESPACE if !node.embedded => {}
            _ => namespace_attribute(namespace, &fields.as_fields(), &mut attrs),
        }
    }
    if !otel.rest.is_empty() {
        namespace_attribute(OTEL_NAMESPACE, &otel.rest, &mut attrs);
    }
    let end = otel.end_before_start.and_then(nanos).unwrap_or(end);
    // Events the translator reads exceptions from by themselves (exception attributes
    // under another name, AWS SDK HTTP failures) give those exceptions back: the cause's
    // copies are not written as events too.
    let regenerated = regenerated_exceptions(doc.id, &otel.events, cx.language);
    let (status, exception_events) = status_and_exceptions(doc, end, cx.language, &regenerated);
    let mut events = otel.events;
    events.extend(exception_events);
    let remote_parent =
        (is_segment || node.service.is_some()) && node.parent.is_some() && !cx.lambda;
    let flags = SpanFlags::ContextHasIsRemoteMask as u32
        | if remote_parent {
            SpanFlags::ContextIsRemoteMask as u32
        } else {
            0
        };
    let span = Span {
        trace_id: cx.trace_id.to_bytes().to_vec(),
        span_id: doc.id.to_bytes().to_vec(),
        parent_span_id: node
            .parent
            .map(|p| p.to_bytes().to_vec())
            .unwrap_or_default(),
        flags,
        name: otel.span_name.unwrap_or_else(|| doc.name.to_string()),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes: attrs.0,
        events,
        links: doc
            .links
            .iter()
            .map(|l| Link {
                trace_id: l.trace_id.to_bytes().to_vec(),
                span_id: l.id.to_bytes().to_vec(),
                attributes: key_values(&l.attributes),
                flags: SpanFlags::ContextHasIsRemoteMask as u32,
                ..Default::default()
            })
            .collect(),
        status,
        ..Default::default()
    };
    Ok(Built {
        span,
        scope: otel.scope,
        end,
    })
}

/// A metadata namespace of its own as one map attribute, `aws.xray.metadata.<namespace>`
/// (the translator turns it back into that namespace).
fn namespace_attribute(namespace: &str, fields: &Fields<'_, AnyValue<'_>>, attrs: &mut Attrs) {
    attrs.set(
        &format!("{METADATA_ATTRIBUTE_PREFIX}{namespace}"),
        Value::KvlistValue(KeyValueList {
            values: key_values(fields),
        }),
    );
}

/// What the translator keeps in the `otel` metadata namespace.
#[derive(Default)]
struct OtelDetails {
    span_name: Option<String>,
    scope: Option<(String, String)>,
    events: Vec<Event>,
    /// Ends the translator kept when a span ended before it started.
    end_before_start: Option<f64>,
    /// Entries not written by the translator: kept as a namespace attribute.
    rest: Fields<'static, AnyValue<'static>>,
}

impl OtelDetails {
    fn read(&mut self, fields: &Fields<'_, AnyValue<'_>>) {
        let mut scope_version = String::new();
        for (key, value) in fields.iter() {
            match (key, value) {
                ("span_name", AnyValue::Str(s)) => self.span_name = Some(s.to_string()),
                ("scope", AnyValue::Str(s)) => {
                    self.scope = Some((s.to_string(), String::new()));
                }
                ("scope_version", AnyValue::Str(s)) => scope_version = s.to_string(),
                (END_BEFORE_START_KEY, AnyValue::Float(f)) => self.end_before_start = Some(*f),
                ("events", AnyValue::Array(items)) => {
                    for item in items {
                        match event(item) {
                            Some(e) => self.events.push(e),
                            None => self.keep("events", item),
                        }
                    }
                }
                _ => self
                    .rest
                    .insert(key.to_owned(), value.clone().into_owned_value()),
            }
        }
        if let Some((_, version)) = &mut self.scope {
            *version = scope_version;
        } else if !scope_version.is_empty() {
            self.keep_str("scope_version", scope_version);
        }
    }

    fn keep(&mut self, key: &'static str, item: &AnyValue<'_>) {
        let item = item.clone().into_owned_value();
        match self.rest.get_mut(key) {
            Some(AnyValue::Array(items)) => items.push(item),
            _ => self.rest.insert(key, AnyValue::Array(vec![item])),
        }
    }

    fn keep_str(&mut self, key: &'static str, value: String) {
        self.rest.insert(key, AnyValue::Str(Cow::Owned(value)));
    }
}

/// An `otel.events` entry (`{name, timestamp, attributes}`) as a span event.
fn event(item: &AnyValue<'_>) -> Option<Event> {
    let AnyValue::Object(fields) = item else {
        return None;
    };
    let name = match fields.get("name")? {
        AnyValue::Str(s) => s.to_string(),
        _ => return None,
    };
    let time = match fields.get("timestamp")? {
        AnyValue::Float(f) => nanos(*f)?,
        AnyValue::Int(i) => nanos(*i as f64)?,
        _ => return None,
    };
    let attributes = match fields.get("attributes") {
        None => Vec::new(),
        Some(AnyValue::Object(attrs)) => key_values(attrs),
        Some(_) => return None,
    };
    Some(Event {
        time_unix_nano: time,
        name,
        attributes,
        ..Default::default()
    })
}

fn http_attributes(doc: &Segment<'_>, attrs: &mut Attrs) {
    let Some(http) = &doc.http else { return };
    if let Some(request) = &http.request {
        attrs.set_str("http.request.method", request.method.as_deref());
        attrs.set_str("url.full", request.url.as_deref());
        attrs.set_str("user_agent.original", request.user_agent.as_deref());
        // Current conventions have no key saying the address came from X-Forwarded-For;
        // the old `http.client_ip` meant exactly that.
        let client = if request.x_forwarded_for {
            "http.client_ip"
        } else {
            "client.address"
        };
        attrs.set_str(client, request.client_ip.as_deref());
    }
    if let Some(response) = &http.response {
        if let Some(status) = response.status {
            attrs.set("http.response.status_code", Value::IntValue(status.into()));
        }
        if let Some(length) = response.content_length {
            let length = i64::try_from(length).unwrap_or(i64::MAX);
            attrs.set("http.response.body.size", Value::IntValue(length));
        }
    }
}

fn aws_attributes(
    doc: &Segment<'_>,
    is_segment: bool,
    aws_call: bool,
    resource_account: Option<&str>,
    attrs: &mut Attrs,
) {
    let Some(aws) = doc.aws.as_deref() else {
        return;
    };
    // The translator reads `aws.operation` ahead of `rpc.method`: a free `rpc.method`
    // (kept in metadata) means the operation came from `aws.operation`.
    let free_rpc_method = doc
        .metadata
        .get(METADATA_DEFAULT)
        .is_some_and(|d| d.contains_key("rpc.method"));
    let operation_key = if aws_call && !free_rpc_method {
        "rpc.method"
    } else {
        "aws.operation"
    };
    attrs.set_str(operation_key, aws.operation.as_deref());
    attrs.set_str("aws.region", aws.region.as_deref());
    attrs.set_str("aws.request_id", aws.request_id.as_deref());
    attrs.set_str("aws.sqs.queue.url", aws.queue_url.as_deref());
    // A segment's account id is the resource's `cloud.account.id` unless it differs.
    if !is_segment || aws.account_id.as_deref() != resource_account {
        attrs.set_str("aws.account_id", aws.account_id.as_deref());
    }
    match (&aws.table_name, aws.table_names.is_empty()) {
        (Some(table), true) => attrs.set("aws.dynamodb.table_names", strings([table.as_ref()])),
        (table, false) => {
            attrs.set(
                "aws.dynamodb.table_names",
                strings(aws.table_names.iter().map(|t| t.as_ref())),
            );
            attrs.set_str("aws.table_name", table.as_deref());
        }
        (None, true) => {}
    }
    if let Some(retries) = aws.retries {
        attrs.set("http.request.resend_count", Value::IntValue(retries.into()));
    }
    if let Some(xray) = &aws.xray {
        attrs.set_str(
            "aws.xray.sampling_rule_name",
            xray.sampling_rule_name.as_deref(),
        );
    }
}

fn sql_attributes(doc: &Segment<'_>, attrs: &mut Attrs) {
    let Some(sql) = doc.sql.as_deref() else {
        return;
    };
    attrs.set_str("db.system.name", sql.database_type.as_deref());
    attrs.set_str("db.query.text", sql.sanitized_query.as_deref());
    attrs.set_str("db.user", sql.user.as_deref());
    match (&sql.url, &sql.connection_string) {
        (Some(url), other) => {
            attrs.set_str("db.connection_string", Some(url));
            attrs.set_str("aws.xray.sql.connection_string", other.as_deref());
        }
        (None, connection) => attrs.set_str("db.connection_string", connection.as_deref()),
    }
    attrs.set_str(
        "aws.xray.sql.database_version",
        sql.database_version.as_deref(),
    );
    attrs.set_str("aws.xray.sql.driver_version", sql.driver_version.as_deref());
    attrs.set_str("aws.xray.sql.preparation", sql.preparation.as_deref());
}

/// `(type, message)` of the first exception of each chain the translator reads from
/// `events` by itself.
fn regenerated_exceptions(
    span_id: SegmentId,
    events: &[Event],
    language: Option<&str>,
) -> Vec<(Option<String>, Option<String>)> {
    if events.is_empty() {
        return Vec::new();
    }
    let exclude = Exclude::default();
    let views = events.iter().map(|e| EventView {
        name: &e.name,
        time: crate::EventTime::UnixNanos(e.time_unix_nano),
        attributes: Attributes::otlp(&e.attributes),
    });
    let context = CauseContext {
        status: SpanStatus::Unset,
        status_text: None,
        remote: false,
        language,
        exclude: &exclude,
    };
    let Some(Cause::Details(details)) = cause(span_id, views, context) else {
        return Vec::new();
    };
    let exceptions = &details.exceptions;
    exceptions
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || exceptions[i - 1].cause != Some(exceptions[*i].id))
        .map(|(_, e)| {
            (
                e.kind.as_deref().map(str::to_owned),
                e.message.as_deref().map(str::to_owned),
            )
        })
        .collect()
}

/// The span status and one `exception` event per chain of exceptions in the cause:
/// a fault is an Error status (described by the first exception's message); exceptions on
/// a span without a fault get an Ok status when nothing else (a 4xx or 5xx) explains them,
/// so they are not read as a fault again.
fn status_and_exceptions(
    doc: &Segment<'_>,
    end: u64,
    language: Option<&str>,
    exception_like: &[(Option<String>, Option<String>)],
) -> (Option<Status>, Vec<Event>) {
    let exceptions: &[Exception<'_>] = match &doc.cause {
        Some(Cause::Details(details)) => &details.exceptions,
        _ => &[],
    };
    let first_message = exceptions
        .first()
        .and_then(|e| e.message.as_deref())
        .unwrap_or("");
    // A lone exception with only a message is how an Error status's description is
    // recorded: it goes back there, not into an event.
    let description_only = doc.fault
        && exceptions.len() == 1
        && exceptions[0].kind.is_none()
        && exceptions[0].stack.is_empty()
        && exceptions[0].cause.is_none();
    let events = if description_only {
        Vec::new()
    } else {
        exception_events(exceptions, end, language, exception_like)
    };
    let http_status = doc
        .http
        .as_ref()
        .and_then(|h| h.response.as_ref())
        .and_then(|r| r.status);
    // A 5xx fault without a cause is an Error status (as the conventions have it), but
    // with an `http.status_text` kept in metadata the translator would read that into a
    // cause the document did not have: the status was left Unset there.
    let unset_5xx = http_status.is_some_and(|s| (500..600).contains(&s))
        && exceptions.is_empty()
        && doc
            .metadata
            .get(METADATA_DEFAULT)
            .is_some_and(|d| d.contains_key("http.status_text"));
    let status = if doc.fault && unset_5xx {
        None
    } else if doc.fault {
        Some(Status {
            code: StatusCode::Error as i32,
            message: first_message.to_owned(),
        })
    } else if !events.is_empty() && !http_status.is_some_and(|s| (400..600).contains(&s)) {
        Some(Status {
            code: StatusCode::Ok as i32,
            message: String::new(),
        })
    } else {
        None
    };
    (status, events)
}

/// Exceptions as `exception` events: each exception with the chain of causes it links
/// to (`cause`) in one event, its stack trace written in the resource language's format
/// so the translator reads the same frames and causes back; a chain that format cannot
/// hold gives one event per exception.
fn exception_events(
    exceptions: &[Exception<'_>],
    end: u64,
    language: Option<&str>,
    exception_like: &[(Option<String>, Option<String>)],
) -> Vec<Event> {
    fn text<'e>(e: &'e Exception<'_>) -> ExceptionText<'e> {
        ExceptionText {
            kind: e.kind.as_deref(),
            message: e.message.as_deref(),
            frames: &e.stack,
        }
    }
    let mut events = Vec::new();
    let mut used = vec![false; exception_like.len()];
    let mut i = 0;
    while i < exceptions.len() {
        let top = &exceptions[i];
        let mut chain_end = i + 1;
        while chain_end < exceptions.len()
            && exceptions[chain_end - 1].cause == Some(exceptions[chain_end].id)
        {
            chain_end += 1;
        }
        // A chain read from an event kept in `otel.events` comes back from that event.
        let key = (
            top.kind.as_deref().map(str::to_owned),
            top.message.as_deref().map(str::to_owned),
        );
        if let Some(at) = (0..exception_like.len()).find(|&j| !used[j] && exception_like[j] == key)
        {
            used[at] = true;
            i = chain_end;
            continue;
        }
        let causes: Vec<ExceptionText<'_>> =
            exceptions[i + 1..chain_end].iter().map(text).collect();
        let (stack, next) = if top.stack.is_empty() && causes.is_empty() {
            (None, i + 1)
        } else {
            match write_stack(language, text(top), &causes) {
                Some(stack) => (Some(stack), chain_end),
                None => (write_stack(language, text(top), &[]), i + 1),
            }
        };
        let mut attributes = Attrs::default();
        attributes.set_str("exception.type", top.kind.as_deref());
        attributes.set_str("exception.message", top.message.as_deref());
        attributes.set_str("exception.stacktrace", stack.as_deref());
        events.push(Event {
            time_unix_nano: end,
            name: EXCEPTION_EVENT.to_owned(),
            attributes: attributes.0,
            ..Default::default()
        });
        i = next;
    }
    events
}

/// Owned copies of metadata values, for the entries kept aside.
trait IntoOwnedValue {
    fn into_owned_value(self) -> AnyValue<'static>;
}

impl IntoOwnedValue for AnyValue<'_> {
    fn into_owned_value(self) -> AnyValue<'static> {
        match self {
            AnyValue::Null => AnyValue::Null,
            AnyValue::Bool(b) => AnyValue::Bool(b),
            AnyValue::Int(i) => AnyValue::Int(i),
            AnyValue::Float(f) => AnyValue::Float(f),
            AnyValue::Str(s) => AnyValue::Str(Cow::Owned(s.into_owned())),
            AnyValue::Array(items) => {
                AnyValue::Array(items.into_iter().map(|v| v.into_owned_value()).collect())
            }
            AnyValue::Object(fields) => AnyValue::Object(Fields(
                fields
                    .0
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned_value()))
                    .collect(),
            )),
        }
    }
}
