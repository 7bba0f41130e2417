//! [`Translator`]: the rules that turn one span into one X-Ray document, written once
//! against [`SpanView`].

use std::borrow::Cow;
use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_proto::tonic::trace::v1::Span as ProtoSpan;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;
use xray_model::carry::{HopState, TRACE_STATE_KEY};
use xray_model::document::{METADATA_DEFAULT, NAMESPACE_AWS, NAMESPACE_REMOTE, TYPE_SUBSEGMENT};
use xray_model::limits::{MAX_STRING_CHARS, limit_string, sanitize_name_cow};
use xray_model::{AnnotationValue, AnyValue, Aws, Fields, Link, Namespace, Segment, SegmentId};

use crate::attributes::{
    AttributeMetadata, OTEL_NAMESPACE, RESOURCE_NAMESPACE, annotations_and_metadata, to_fields,
};
use crate::aws::{AWS_API, ResourceInfo, fill_call};
use crate::cause::{CauseContext, EXCEPTION_EVENT, HTTP_FAILURE_EVENT, cause, flags, is_exception};
use crate::config::TranslatorConfig;
use crate::http::http_block;
use crate::keys::{K, Known};
use crate::otlp::OtlpSpan;
use crate::resource::{
    PreparedResource, empty_sdk_resource, otlp_attributes, resource_metadata, sdk_language,
    segment_name,
};
use crate::sdk::SdkSpan;
use crate::sql::{connection_host, sql_block, sql_system};
use crate::view::{Attributes, SpanKind, SpanStatus, SpanView};

/// Turns OpenTelemetry spans into X-Ray segment documents. Cheap to clone and share.
///
/// # Examples
///
/// ```
/// use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
/// use opentelemetry::KeyValue;
/// use opentelemetry_sdk::{Resource, trace::{SpanData, SpanEvents, SpanLinks}};
/// use std::time::{Duration, UNIX_EPOCH};
/// use xray_translate::{Translator, TranslatorConfig};
///
/// let span = SpanData {
///     span_context: SpanContext::new(
///         TraceId::from(0x5759e988_bd862e3fe1be46a994272793),
///         SpanId::from(0x53995c3f42cd8ad8),
///         TraceFlags::SAMPLED, false, TraceState::default()),
///     parent_span_id: SpanId::INVALID,
///     parent_span_is_remote: false,
///     span_kind: SpanKind::Server,
///     name: "GET /users/{id}".into(),
///     start_time: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
///     end_time: UNIX_EPOCH + Duration::from_millis(1_700_000_000_250),
///     attributes: vec![
///         KeyValue::new("http.request.method", "GET"),
///         KeyValue::new("url.full", "https://api.example.com/users/7"),
///         KeyValue::new("http.response.status_code", 404),
///     ],
///     dropped_attributes_count: 0,
///     events: SpanEvents::default(),
///     links: SpanLinks::default(),
///     status: Status::Unset,
///     instrumentation_scope: Default::default(),
/// };
/// let resource = Resource::builder_empty().with_service_name("users").build();
/// let doc = Translator::new(TranslatorConfig::default()).translate_sdk(&span, &resource);
/// assert_eq!(doc.name, "users");
/// assert!(doc.error && !doc.fault);
/// assert_eq!(doc.to_json().len(), xray_model::encoded_len(&doc));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Translator {
    config: Arc<TranslatorConfig>,
}

impl Translator {
    /// A translator with `config`.
    pub fn new(config: TranslatorConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }

    /// A translator with the defaults and the `AWS_XRAY_TRACING_NAME` override.
    pub fn from_env() -> Self {
        Self::new(TranslatorConfig::from_env())
    }

    /// The configuration.
    pub fn config(&self) -> &TranslatorConfig {
        &self.config
    }

    /// Prepares an SDK resource for translating many of its spans
    /// ([`PreparedResource::translate_sdk`]); the same documents as
    /// [`Translator::translate_sdk`], with the resource's part derived once.
    pub fn prepare_sdk<'a>(&self, resource: &'a Resource) -> PreparedResource<'a> {
        self.prepare(Attributes::sdk_resource(resource))
    }

    /// Prepares the resource of one OTLP `ResourceSpans` (absent: an empty resource) for
    /// translating its spans ([`PreparedResource::translate_otlp`]).
    pub fn prepare_otlp<'a>(&self, resource: Option<&'a ProtoResource>) -> PreparedResource<'a> {
        self.prepare(otlp_attributes(resource))
    }

    /// Prepares a resource given by its attributes, for spans of any source
    /// ([`PreparedResource::translate`]).
    pub fn prepare<'a>(&self, resource: Attributes<'a>) -> PreparedResource<'a> {
        PreparedResource::new(self.config.clone(), resource)
    }

    /// One SDK span -> one document (a segment, or a standalone subsegment with `type`,
    /// `trace_id` and `parent_id`).
    pub fn translate_sdk<'a>(&self, span: &'a SpanData, resource: &'a Resource) -> Segment<'a> {
        self.translate(&SdkSpan::new(span, resource))
    }

    /// One OTLP protobuf span -> one document.
    pub fn translate_otlp<'a>(
        &self,
        span: &'a ProtoSpan,
        resource: Option<&'a ProtoResource>,
        scope: Option<&'a InstrumentationScope>,
    ) -> Segment<'a> {
        self.translate(&OtlpSpan::new(span, resource, scope))
    }

    /// One span of any source -> one document. Strings are borrowed from the span where
    /// they are used unchanged. The document is not size-checked here: serialize it and
    /// apply `xray_model::trim_to_fit` / `split_to_fit` as the transport needs.
    pub fn translate<'a, V: SpanView<'a>>(&self, span: &V) -> Segment<'a> {
        translate(&self.config, span, Res::Raw)
    }
}

/// Whether the span has an AWS SDK HTTP failure event (`any_events`: it has events).
fn has_http_failure<'a, V: SpanView<'a>>(span: &V, any_events: bool) -> bool {
    any_events && span.events().any(|e| e.name == HTTP_FAILURE_EVENT)
}

/// `Aws::default()`, compared against without building and dropping one per span.
static EMPTY_AWS: Aws<'static> = Aws {
    account_id: None,
    operation: None,
    region: None,
    request_id: None,
    queue_url: None,
    table_name: None,
    table_names: Vec::new(),
    retries: None,
    ec2: None,
    ecs: None,
    eks: None,
    elastic_beanstalk: None,
    lambda: None,
    xray: None,
    cloudwatch_logs: Vec::new(),
};

/// Trims the `AWS.SDK.` / `AWS::` prefixes some instrumentations put on service names.
fn trim_aws_prefix(name: &str) -> &str {
    name.strip_prefix("AWS.SDK.")
        .or_else(|| name.strip_prefix("AWS::"))
        .unwrap_or(name)
}

/// The host of a URL, borrowed.
fn url_host(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host_port.split(':').next().unwrap_or(host_port),
    };
    (!host.is_empty()).then_some(host)
}

/// The name of a downstream call: who was called.
fn downstream_name<'a>(known: &mut Known<'a>, aws_call: bool) -> Option<Cow<'a, str>> {
    // Application Signals' name for the callee goes ahead of `peer.service`.
    if let Some(remote) = known.first_str(&[K::AwsRemoteService]) {
        return Some(Cow::Borrowed(if aws_call {
            trim_aws_prefix(remote)
        } else {
            remote
        }));
    }
    if let Some(peer) = known.first_str(&[K::PeerService]) {
        return Some(Cow::Borrowed(peer));
    }
    if aws_call && let Some(service) = known.first_str(&[K::RpcService, K::AwsService]) {
        return Some(Cow::Borrowed(trim_aws_prefix(service)));
    }
    let host_keys = [K::ServerAddress, K::NetPeerName];
    if let Some(db) = known.first_str(&[K::DbNamespace, K::DbName]) {
        let host = known.first_str(&host_keys).or_else(|| {
            known
                .peek_str(K::DbConnectionString)
                .and_then(connection_host)
        });
        return Some(match host {
            Some(host) => {
                let mut name = String::with_capacity(db.len() + 1 + host.len());
                name.push_str(db);
                name.push('@');
                name.push_str(host);
                Cow::Owned(name)
            }
            None => Cow::Borrowed(db),
        });
    }
    if let Some(host) = known.first_str(&[K::ServerAddress, K::NetPeerName, K::HttpHost]) {
        return Some(Cow::Borrowed(host));
    }
    if let Some(host) = [K::UrlFull, K::HttpUrl]
        .iter()
        .find_map(|&k| known.peek_str(k).and_then(url_host))
    {
        return Some(Cow::Borrowed(host));
    }
    known.first_str(&[K::RpcService]).map(Cow::Borrowed)
}

/// Where the resource's part of a document comes from.
#[derive(Clone, Copy)]
pub(crate) enum Res<'a> {
    /// Derived once, borrowed by every document.
    Prepared(&'a PreparedResource<'a>),
    /// Derived for this span from the view's [`SpanView::resource`].
    Raw,
}

impl<'a> PreparedResource<'a> {
    /// One SDK span made under this resource -> one document (see
    /// [`crate::Translator::translate_sdk`]).
    pub fn translate_sdk(&'a self, span: &'a SpanData) -> Segment<'a> {
        self.translate(&SdkSpan::new(span, empty_sdk_resource()))
    }

    /// One OTLP span of this resource's `ResourceSpans` -> one document (see
    /// [`crate::Translator::translate_otlp`]).
    pub fn translate_otlp(
        &'a self,
        span: &'a ProtoSpan,
        scope: Option<&'a InstrumentationScope>,
    ) -> Segment<'a> {
        self.translate(&OtlpSpan::new(span, None, scope))
    }

    /// One span of any source, made under this resource, -> one document. The view's own
    /// [`SpanView::resource`] is not read: this resource takes its place.
    pub fn translate<V: SpanView<'a>>(&'a self, span: &V) -> Segment<'a> {
        translate(&self.config, span, Res::Prepared(self))
    }
}

/// The resource's part of a segment.
struct SegmentResource<'r, 'a> {
    info: &'r ResourceInfo<'a>,
    name: Option<Cow<'a, str>>,
    origin: Option<&'static str>,
    sdk: Option<Cow<'a, str>>,
    log_groups: LogGroups<'r, 'a>,
    metadata: Option<Namespace<'a>>,
}

/// The configured log group names: borrowed for the documents' lifetime, or copied.
enum LogGroups<'r, 'a> {
    Borrowed(&'a [String]),
    Owned(&'r [String]),
}

/// `aws.span.kind` of a span that starts the service's part of a trace (Application
/// Signals).
const LOCAL_ROOT: &str = "LOCAL_ROOT";

/// Metadata key (namespace `otel`) keeping a span's own end time when it was before its
/// start and the document's end time was set to the start.
pub(crate) const END_BEFORE_START_KEY: &str = "end_time_before_start";

/// The id of the service segment made for a local-root Client or Producer span (the span
/// keeps its own id on the call's subsegment, where its children attach): derived from the
/// span id, so a document is reproducible.
pub(crate) fn service_segment_id(span: SegmentId) -> SegmentId {
    crate::cause::exception_id(span, u64::MAX - 1)
}

/// What one span becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A segment: the service handling work.
    Segment,
    /// A standalone subsegment under its parent.
    Subsegment,
    /// A local-root Client or Producer span: a segment for the service holding a `remote`
    /// (or `aws`) subsegment for the call it made, so the callee shows on the map.
    SegmentWithCall,
}

/// Decides the shape of a span: Application Signals' `aws.span.kind` where given, the
/// span kind and whether its parent is local, remote or absent otherwise. In Lambda, the
/// function segment is Lambda's: a span under the invocation's (remote) parent is a
/// subsegment of it.
fn shape(
    kind: SpanKind,
    parent: Option<SegmentId>,
    remote_parent: bool,
    app_kind: Option<&str>,
    lambda_child: bool,
) -> Shape {
    let local_parent = parent.is_some() && !remote_parent;
    let local_root = !local_parent || app_kind == Some(LOCAL_ROOT);
    let is_segment = match app_kind {
        _ if lambda_child => false,
        Some(LOCAL_ROOT | "SERVER") => true,
        Some("CLIENT" | "PRODUCER" | "CONSUMER") if local_parent => false,
        _ => local_root || matches!(kind, SpanKind::Server | SpanKind::Consumer),
    };
    match is_segment {
        true if local_root && matches!(kind, SpanKind::Client | SpanKind::Producer) => {
            Shape::SegmentWithCall
        }
        true => Shape::Segment,
        false => Shape::Subsegment,
    }
}

/// The segment-only fields the resource gives, set on the span's own document, or on the
/// service segment of a [`Shape::SegmentWithCall`].
#[derive(Default)]
struct SegmentFields<'a> {
    origin: Option<Cow<'a, str>>,
    service: Option<xray_model::Service<'a>>,
    resource_arn: Option<Cow<'a, str>>,
    user: Option<Cow<'a, str>>,
    /// Only for a [`Shape::SegmentWithCall`] (a span's own segment fills its own block):
    /// `None` otherwise, so that most spans drop no `Aws` here.
    aws: Option<Aws<'a>>,
}

pub(crate) fn translate<'a, V: SpanView<'a>>(
    config: &TranslatorConfig,
    span: &V,
    res: Res<'a>,
) -> Segment<'a> {
    let attrs = span.attributes();
    let exclude = config.exclude();
    let mut known = Known::collect(attrs, config);
    let kind = span.kind();
    let span_id = span.span_id();
    let parent = span.parent_span_id();
    let remote_parent = parent.is_some() && span.parent_is_remote();
    // A Root-only header: the parent id is our propagator's stand-in, not a real segment.
    // The trace state says so; the stand-in id itself is recognised too, in case a hop
    // lost the trace state.
    let trace_id = span.trace_id();
    let stand_in = remote_parent
        && (span
            .trace_state(TRACE_STATE_KEY)
            .is_some_and(|v| HopState::decode(v).no_parent)
            || parent == Some(HopState::stand_in_parent(trace_id)));
    let app_kind = known.peek_str(K::AwsSpanKind);
    // Read from the resource only for a span that may be a segment (or a Lambda
    // invocation's child): an ordinary subsegment needs nothing from it.
    let raw_info;
    let info = match res {
        Res::Prepared(p) => &p.info,
        Res::Raw => {
            let may_be_segment = parent.is_none()
                || remote_parent
                || app_kind.is_some()
                || matches!(kind, SpanKind::Server | SpanKind::Consumer);
            raw_info = if may_be_segment {
                ResourceInfo::collect(span.resource(), exclude)
            } else {
                ResourceInfo::default()
            };
            &raw_info
        }
    };
    let lambda_child = remote_parent && !stand_in && info.is_lambda();
    let shape = shape(kind, parent, remote_parent, app_kind, lambda_child);
    let is_segment = shape != Shape::Subsegment;
    // The span's own document is a segment (else a subsegment, standalone or, for
    // SegmentWithCall, inside the service segment).
    let own_segment = shape == Shape::Segment;
    // An AWS SDK call: `rpc.system = aws-api`, or the legacy `aws.service` attribute.
    let aws_call = known.peek_str(K::RpcSystem) == Some(AWS_API) || known.has(K::AwsService);
    let sql = sql_system(&known);
    let db_call = known.has(K::DbSystem) || known.has(K::DbSystemName);
    // Subsegments need the resource only to read a stack trace's language.
    let mut resource = match res {
        _ if !is_segment => None,
        Res::Prepared(p) => Some(SegmentResource {
            info,
            name: p.segment_name.as_deref().map(Cow::Borrowed),
            origin: p.origin,
            sdk: p.sdk.as_deref().map(Cow::Borrowed),
            log_groups: LogGroups::Borrowed(p.config.log_groups()),
            metadata: p.metadata.as_ref().map(Namespace::encoded),
        }),
        Res::Raw => Some(SegmentResource {
            name: segment_name(config, info),
            origin: info.origin(),
            sdk: info.sdk(),
            log_groups: LogGroups::Owned(config.log_groups()),
            metadata: resource_metadata(config, span.resource()).map(Namespace::from),
            info,
        }),
    };
    let downstream = !own_segment
        && (matches!(kind, SpanKind::Client | SpanKind::Producer)
            || aws_call
            || db_call
            || (kind == SpanKind::Consumer && known.has(K::AwsRemoteService)));
    let span_name = span.name();

    // The service's name: the configured override, else Application Signals'
    // `aws.local.service`, else `service.name`, else the span name.
    let service_name = |known: &mut Known<'a>, r: &SegmentResource<'_, 'a>| {
        if config.service_name().is_none()
            && let Some(local) = known.first_str(&[K::AwsLocalService])
        {
            return sanitize_name_cow(Cow::Borrowed(local));
        }
        r.name
            .clone()
            .unwrap_or_else(|| sanitize_name_cow(Cow::Borrowed(span_name)))
    };
    let outer_name = match (&resource, shape) {
        (Some(r), Shape::SegmentWithCall) => Some(service_name(&mut known, r)),
        _ => None,
    };
    let name = match &resource {
        Some(r) if own_segment => service_name(&mut known, r),
        _ if downstream => sanitize_name_cow(
            downstream_name(&mut known, aws_call).unwrap_or(Cow::Borrowed(span_name)),
        ),
        _ => sanitize_name_cow(Cow::Borrowed(span_name)),
    };
    let start_time = span.start_time();
    // An end before the start cannot be drawn: the start, with the span's own end kept.
    let own_end = span.end_time();
    let end_time = own_end.map(|end| end.max(start_time));
    let mut seg = Segment {
        name,
        id: span_id,
        trace_id: Some(trace_id),
        parent_id: if stand_in { None } else { parent },
        start_time,
        end_time,
        in_progress: end_time.is_none(),
        ..Segment::default()
    };
    if !is_segment {
        seg.kind = Some(Cow::Borrowed(TYPE_SUBSEGMENT));
    }
    if downstream {
        seg.namespace = Some(Cow::Borrowed(if aws_call {
            known.mark(K::RpcSystem);
            NAMESPACE_AWS
        } else {
            NAMESPACE_REMOTE
        }));
    }
    let traced = downstream && !aws_call && kind == SpanKind::Client;
    seg.http = http_block(&mut known, kind, own_segment, traced);

    // Boxed into the segment only when something was filled in.
    let mut aws_block = Aws::default();
    fill_call(&mut known, &mut aws_block, aws_call);
    let mut fields = SegmentFields::default();
    if let Some(resource) = &mut resource {
        let info = resource.info;
        let sdk = resource.sdk.take();
        let aws = if own_segment {
            &mut aws_block
        } else {
            fields.aws.insert(Aws::default())
        };
        match resource.log_groups {
            LogGroups::Borrowed(l) => {
                info.fill_segment(aws, sdk, l.iter().map(|s| Cow::Borrowed(s.as_str())))
            }
            LogGroups::Owned(l) => {
                info.fill_segment(aws, sdk, l.iter().map(|s| Cow::Owned(s.clone())))
            }
        }
        fields.origin = resource.origin.map(Cow::Borrowed);
        fields.service = info.service();
        fields.resource_arn = info.resource_arn();
        if let Some(user) = known.peek_str(K::EnduserId).filter(|u| !u.is_empty())
            && user.chars().count() <= MAX_STRING_CHARS
        {
            known.mark(K::EnduserId);
            fields.user = Some(limit_string(Cow::Borrowed(user)));
        }
    }
    if own_segment {
        seg.origin = fields.origin.take();
        seg.service = fields.service.take();
        seg.resource_arn = fields.resource_arn.take();
        seg.user = fields.user.take();
    }
    if aws_block != EMPTY_AWS {
        // Allocated before the block is moved: `Box::new(block)` copies it twice.
        let slot = Box::new_uninit();
        seg.aws = Some(Box::write(slot, aws_block));
    }
    if let Some(system) = sql {
        let slot = Box::new_uninit();
        seg.sql = Some(Box::write(slot, sql_block(&mut known, system)));
    }

    let status = span.status();
    let http_status = seg
        .http
        .as_ref()
        .and_then(|h| h.response.as_ref())
        .and_then(|r| r.status);
    // Most spans have no events (nor links): the rules reading them are then skipped
    // without walking or collecting an empty list.
    let any_events = span.events().next().is_some();
    let has_exception = any_events && span.events().any(|e| is_exception(&e));
    let f = flags(http_status, status, has_exception);
    (seg.error, seg.throttle, seg.fault) = (f.error, f.throttle, f.fault);
    let language = match (&resource, &res) {
        _ if !has_exception => None,
        (Some(r), _) => r.info.sdk_language,
        (None, Res::Prepared(p)) => p.subsegment_language,
        (None, Res::Raw) => sdk_language(span.resource(), exclude),
    };
    // `http.status_text` explains a failure that has no description and no exception.
    let status_text = match status {
        SpanStatus::Error("") if !has_exception && !has_http_failure(span, any_events) => {
            known.first_str(&[K::HttpStatusText])
        }
        _ => None,
    };
    // Set only when there is one: most spans have none, and nothing is moved for them.
    if let Some(cause) = cause(
        span_id,
        span.events(),
        CauseContext {
            status,
            status_text,
            remote: downstream,
            language,
            exclude,
        },
    ) {
        seg.cause = Some(cause);
    }
    // `faas.coldstart` is searchable as the annotation `ColdStart`, as AWS Lambda
    // Powertools writes it.
    if let Some(cold) = known.peek(K::FaasColdstart).and_then(|v| v.as_bool()) {
        known.mark(K::FaasColdstart);
        seg.annotations.0.push((
            Cow::Borrowed(COLD_START_ANNOTATION),
            AnnotationValue::Bool(cold),
        ));
    }
    if known.has(K::XrayAnnotations) {
        known.mark(K::XrayAnnotations);
    }
    let AttributeMetadata {
        default,
        own: own_namespaces,
    } = annotations_and_metadata(config, &mut seg, attrs, &known);

    // `otel` and the metadata namespaces are written in this order, each key once, into
    // vectors of their final size.
    let name_differs = seg.name != span_name;
    let scope = span.scope();
    let events: Vec<AnyValue<'a>> = match any_events {
        false => Vec::new(),
        true => span
            .events()
            .filter(|e| e.name != EXCEPTION_EVENT)
            .map(|e| {
                let mut event = Fields::new();
                event.insert("name", AnyValue::Str(Cow::Borrowed(e.name)));
                event.insert("timestamp", AnyValue::Float(e.time.seconds()));
                let attributes = to_fields(e.attributes, exclude);
                if !attributes.is_empty() {
                    event.insert("attributes", AnyValue::Object(attributes));
                }
                AnyValue::Object(event)
            })
            .collect(),
    };
    let end_clamped = own_end.filter(|&end| end < start_time);
    let otel_len = usize::from(name_differs)
        + scope.map_or(0, |(_, version)| 1 + usize::from(version.is_some()))
        + usize::from(!events.is_empty())
        + usize::from(end_clamped.is_some());
    let mut otel = OtelEntries::new(otel_len);
    if name_differs {
        otel.push("span_name", AnyValue::Str(Cow::Borrowed(span_name)));
    }
    if let Some((scope, version)) = scope {
        otel.push("scope", AnyValue::Str(Cow::Borrowed(scope)));
        if let Some(version) = version {
            otel.push("scope_version", AnyValue::Str(Cow::Borrowed(version)));
        }
    }
    if !events.is_empty() {
        otel.push("events", AnyValue::Array(events));
    }
    if let Some(end) = end_clamped {
        otel.push(END_BEFORE_START_KEY, AnyValue::Float(end));
    }
    let otel = otel.into_namespace();
    let resource_metadata = resource.and_then(|r| r.metadata);
    let (own_resource_metadata, outer_metadata) = if own_segment {
        (resource_metadata, None)
    } else {
        (None, resource_metadata)
    };
    let namespaces = usize::from(!default.is_empty())
        + usize::from(!otel.is_empty())
        + usize::from(own_resource_metadata.is_some());
    if namespaces > 0 {
        // One allocation of the final size (`metadata` is still empty here).
        if seg.metadata.is_empty() {
            seg.metadata = Fields(Vec::with_capacity(namespaces));
        } else {
            seg.metadata.0.reserve_exact(namespaces);
        }
        let metadata = &mut seg.metadata.0;
        if !default.is_empty() {
            metadata.push((Cow::Borrowed(METADATA_DEFAULT), default));
        }
        if !otel.is_empty() {
            metadata.push((Cow::Borrowed(OTEL_NAMESPACE), otel));
        }
        if let Some(resource) = own_resource_metadata.filter(|m| !m.is_empty()) {
            metadata.push((Cow::Borrowed(RESOURCE_NAMESPACE), resource));
        }
    }
    seg.metadata.0.extend(own_namespaces);

    if span.links().next().is_some() {
        seg.links = span
            .links()
            .map(|l| Link {
                trace_id: l.trace_id,
                id: l.span_id,
                attributes: to_fields(l.attributes, exclude),
            })
            .collect();
    }
    if let Some(name) = outer_name {
        return with_service_segment(seg, name, fields, outer_metadata);
    }
    seg
}

/// The `otel` namespace being filled, each key once, in order: a single entry (usually
/// the span name) is held without a vector; more go into one of their final size.
enum OtelEntries<'a> {
    One(Option<(&'static str, AnyValue<'a>)>),
    Many(Fields<'a, AnyValue<'a>>),
}

impl<'a> OtelEntries<'a> {
    /// Room for `len` entries.
    fn new(len: usize) -> Self {
        match len {
            0 | 1 => OtelEntries::One(None),
            _ => OtelEntries::Many(Fields(Vec::with_capacity(len))),
        }
    }

    fn push(&mut self, key: &'static str, value: AnyValue<'a>) {
        match self {
            OtelEntries::One(slot) => match slot.take() {
                None => *slot = Some((key, value)),
                // More entries than counted: all are kept the same.
                Some((first, first_value)) => {
                    *self = OtelEntries::Many(Fields(vec![
                        (Cow::Borrowed(first), first_value),
                        (Cow::Borrowed(key), value),
                    ]));
                }
            },
            OtelEntries::Many(fields) => fields.0.push((Cow::Borrowed(key), value)),
        }
    }

    fn into_namespace(self) -> Namespace<'a> {
        match self {
            OtelEntries::One(None) => Namespace::default(),
            OtelEntries::One(Some((key, value))) => Namespace::one(key, value),
            OtelEntries::Many(fields) => Namespace::from(fields),
        }
    }
}

/// Annotation recording whether an invocation was a Lambda cold start (`faas.coldstart`).
pub(crate) const COLD_START_ANNOTATION: &str = "ColdStart";

/// Wraps the call document `call` of a local-root Client or Producer span into the
/// service segment it came from: same trace, parent and times, the resource's fields;
/// the call keeps the span's id, blocks, flags, cause, annotations and metadata.
fn with_service_segment<'a>(
    mut call: Segment<'a>,
    name: Cow<'a, str>,
    fields: SegmentFields<'a>,
    resource_metadata: Option<Namespace<'a>>,
) -> Segment<'a> {
    let mut service = Segment {
        name,
        id: service_segment_id(call.id),
        trace_id: call.trace_id.take(),
        parent_id: call.parent_id.take(),
        start_time: call.start_time,
        end_time: call.end_time,
        in_progress: call.in_progress,
        origin: fields.origin,
        service: fields.service,
        resource_arn: fields.resource_arn,
        user: fields.user,
        ..Segment::default()
    };
    call.kind = None;
    if let Some(aws) = fields.aws.filter(|aws| *aws != EMPTY_AWS) {
        service.aws = Some(Box::new(aws));
    }
    if let Some(resource) = resource_metadata.filter(|m| !m.is_empty()) {
        service
            .metadata
            .0
            .push((Cow::Borrowed(RESOURCE_NAMESPACE), resource));
    }
    service.subsegments.push(call);
    service
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_aws_is_the_default_block() {
        assert_eq!(EMPTY_AWS, Aws::default());
    }
}
