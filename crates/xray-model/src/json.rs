//! The JSON writer of segment documents: the same text `serde_json` makes from the
//! `Serialize` impls (field order, omitted empty fields, escapes, number forms), written
//! straight into a byte buffer. Keys are known, so each is one copy; strings that need no
//! escaping (nearly all) are one copy too.
//!
//! Every struct is destructured without `..`: a new field fails to compile here until it
//! is written.

use std::borrow::Cow;

use crate::decimal::{Int, float};
use crate::document::{
    AnnotationValue, AnyValue, Aws, Cause, CauseDetails, CloudWatchLogs, Ec2, Ecs, Eks,
    ElasticBeanstalk, Exception, Fields, Http, HttpRequest, HttpResponse, Lambda, Link, Segment,
    Service, Sql, StackFrame, XraySdk,
};
use crate::escape::string;
use crate::namespace::{FieldList, Namespace, Repr};
use crate::nest::Nesting;
use crate::{SegmentId, TraceId};

/// The text written before a field's value: `,"key":` (keys here are plain ASCII and need
/// no escaping), one constant copy. [`Obj::close`] turns the first field's comma into the
/// object's `{`.
macro_rules! k {
    ($key:literal) => {
        concat!(",\"", $key, "\":").as_bytes()
    };
}

impl Segment<'_> {
    /// The JSON text of the document.
    ///
    /// # Panics
    ///
    /// Never in practice: the writer emits UTF-8 only, and the conversion checks that.
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(1024);
        self.write_json(&mut out);
        String::from_utf8(out).expect("the writer writes UTF-8")
    }

    /// Appends the JSON text of the document to `out`: the text `serde_json` makes of its
    /// `Serialize` impl, written directly (no serializer in between).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        write_segment(out, self);
    }
}

/// Appends the document's JSON text to `out`.
fn write_segment(out: &mut Vec<u8>, seg: &Segment<'_>) {
    write_document(out, seg, None);
}

/// A document of a batch nested by a [`Nesting`], being written with its tree.
#[derive(Clone, Copy)]
struct Batch<'t, 'a> {
    nesting: &'t Nesting,
    docs: &'t [Segment<'a>],
    index: usize,
    /// Embedded in its parent's document: written without `type`, `trace_id` and
    /// `parent_id`, as `Nesting::take_tree` clears them.
    in_parent: bool,
}

/// Appends the JSON text of top-level document `index` of `docs` with the batch
/// documents `nesting` embeds in it.
pub(crate) fn write_tree(out: &mut Vec<u8>, nesting: &Nesting, docs: &[Segment<'_>], index: usize) {
    if let Some(doc) = docs.get(index) {
        let batch = Batch {
            nesting,
            docs,
            index,
            in_parent: false,
        };
        write_document(out, doc, Some(batch));
    }
}

/// Appends a document's JSON text: as it is, or as part of a nested batch (its batch
/// children after its own `subsegments`).
fn write_document(out: &mut Vec<u8>, seg: &Segment<'_>, batch: Option<Batch<'_, '_>>) {
    let Segment {
        name,
        id,
        trace_id: trace_id_,
        kind,
        parent_id,
        start_time,
        end_time,
        in_progress,
        namespace,
        origin,
        user,
        resource_arn,
        traced,
        service: service_,
        http: http_,
        aws: aws_,
        sql: sql_,
        error,
        throttle,
        fault,
        cause: cause_,
        annotations,
        metadata,
        subsegments,
        precursor_ids,
        links,
    } = seg;
    let mut o = Obj::open(out);
    o.str(k!("name"), name);
    o.segment_id(k!("id"), *id);
    let in_parent = batch.is_some_and(|b| b.in_parent);
    if let Some(t) = trace_id_.filter(|_| !in_parent) {
        o.key(k!("trace_id"));
        trace_id(o.out, t);
    }
    if !in_parent {
        o.opt_str(k!("type"), kind);
    }
    if let Some(p) = parent_id.filter(|_| !in_parent) {
        o.segment_id(k!("parent_id"), p);
    }
    o.key(k!("start_time"));
    float(o.out, *start_time);
    if let Some(end) = *end_time {
        o.key(k!("end_time"));
        float(o.out, end);
    }
    o.flag(k!("in_progress"), *in_progress);
    o.opt_str(k!("namespace"), namespace);
    o.opt_str(k!("origin"), origin);
    o.opt_str(k!("user"), user);
    o.opt_str(k!("resource_arn"), resource_arn);
    o.flag(k!("traced"), *traced);
    if let Some(s) = service_ {
        o.key(k!("service"));
        service(o.out, s);
    }
    if let Some(h) = http_ {
        o.key(k!("http"));
        http(o.out, h);
    }
    if let Some(a) = aws_ {
        o.key(k!("aws"));
        aws(o.out, a);
    }
    if let Some(s) = sql_ {
        o.key(k!("sql"));
        sql(o.out, s);
    }
    o.flag(k!("error"), *error);
    o.flag(k!("throttle"), *throttle);
    o.flag(k!("fault"), *fault);
    if let Some(c) = cause_ {
        o.key(k!("cause"));
        cause(o.out, c);
    }
    if !annotations.is_empty() {
        o.key(k!("annotations"));
        fields(o.out, annotations, annotation);
    }
    if !metadata.is_empty() {
        o.key(k!("metadata"));
        fields(o.out, metadata, metadata_namespace);
    }
    let batch_children = batch.map_or(&[][..], |b| b.nesting.children(b.index));
    if !subsegments.is_empty() || !batch_children.is_empty() {
        o.key(k!("subsegments"));
        o.out.push(b'[');
        for (i, sub) in subsegments.iter().enumerate() {
            if i > 0 {
                o.out.push(b',');
            }
            write_segment(o.out, sub);
        }
        if let Some(b) = batch {
            let mut first = subsegments.is_empty();
            for &c in batch_children {
                let Some(doc) = b.docs.get(c) else {
                    continue;
                };
                if !first {
                    o.out.push(b',');
                }
                first = false;
                let child = Batch {
                    index: c,
                    in_parent: true,
                    ..b
                };
                write_document(o.out, doc, Some(child));
            }
        }
        o.out.push(b']');
    }
    if !precursor_ids.is_empty() {
        o.key(k!("precursor_ids"));
        array(o.out, precursor_ids, |out, id| segment_id(out, *id));
    }
    if !links.is_empty() {
        o.key(k!("links"));
        array(o.out, links, link);
    }
    o.close();
}

/// An object being written: each field as `,"key":value`, the first comma replaced by `{`
/// when the object is closed (so no field asks whether it is the first).
struct Obj<'o> {
    out: &'o mut Vec<u8>,
    start: usize,
}

impl<'o> Obj<'o> {
    fn open(out: &'o mut Vec<u8>) -> Self {
        let start = out.len();
        Obj { out, start }
    }

    /// `,"key":`, made by [`k!`].
    #[inline(always)]
    fn key(&mut self, key: &'static [u8]) {
        self.out.extend_from_slice(key);
    }

    #[inline(always)]
    fn str(&mut self, key: &'static [u8], value: &str) {
        self.key(key);
        string(self.out, value);
    }

    #[inline(always)]
    fn opt_str(&mut self, key: &'static [u8], value: &Option<Cow<'_, str>>) {
        if let Some(v) = value {
            self.str(key, v);
        }
    }

    #[inline(always)]
    fn segment_id(&mut self, key: &'static [u8], id: SegmentId) {
        self.key(key);
        segment_id(self.out, id);
    }

    /// Written only when set, as serde's `skip_serializing_if = "is_false"`.
    #[inline(always)]
    fn flag(&mut self, key: &'static [u8], value: bool) {
        if value {
            self.key(key);
            self.out.extend_from_slice(b"true");
        }
    }

    #[inline(always)]
    fn opt_int(&mut self, key: &'static [u8], value: Option<impl Int>) {
        if let Some(v) = value {
            self.key(key);
            int(self.out, v);
        }
    }

    fn opt_strs(&mut self, key: &'static [u8], values: &[Cow<'_, str>]) {
        if !values.is_empty() {
            self.key(key);
            array(self.out, values, |out, s| string(out, s));
        }
    }

    /// `}` after the fields, the first field's comma made the `{`; `{}` when no field
    /// was written.
    fn close(self) {
        match self.out.get_mut(self.start) {
            Some(comma) => {
                *comma = b'{';
                self.out.push(b'}');
            }
            None => self.out.extend_from_slice(b"{}"),
        }
    }
}

fn array<T>(out: &mut Vec<u8>, items: &[T], mut write: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, item);
    }
    out.push(b']');
}

fn fields<V>(out: &mut Vec<u8>, f: &Fields<'_, V>, mut write: impl FnMut(&mut Vec<u8>, &V)) {
    out.push(b'{');
    for (i, (k, v)) in f.0.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, k);
        out.push(b':');
        write(out, v);
    }
    out.push(b'}');
}

fn int(out: &mut Vec<u8>, v: impl Int) {
    v.write_decimal(out);
}

fn segment_id(out: &mut Vec<u8>, id: SegmentId) {
    out.push(b'"');
    out.extend_from_slice(&id.encode());
    out.push(b'"');
}

fn trace_id(out: &mut Vec<u8>, id: TraceId) {
    out.push(b'"');
    out.extend_from_slice(&id.encode());
    out.push(b'"');
}

/// Appends `s` as a quoted JSON string, escaped as `serde_json` escapes it: `"`, `\` and
/// control characters only; everything else, non-ASCII included, is copied as it is.
///
/// # Examples
///
/// ```
/// let mut out = Vec::new();
/// xray_model::write_json_string(&mut out, "a\"b\\c\u{1}é");
/// assert_eq!(String::from_utf8(out).unwrap(), r#""a\"b\\c\u0001é""#);
/// ```
///
/// Inlined into its caller (it is called from a few hot loops, such as a metadata view
/// writing every key and value).
#[inline(always)]
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    crate::escape::string_inlined(out, s);
}

fn annotation(out: &mut Vec<u8>, v: &AnnotationValue<'_>) {
    match v {
        AnnotationValue::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        AnnotationValue::Int(i) => int(out, *i),
        AnnotationValue::Float(f) => float(out, *f),
        AnnotationValue::Str(s) => string(out, s),
    }
}

fn any(out: &mut Vec<u8>, v: &AnyValue<'_>) {
    match v {
        AnyValue::Null => out.extend_from_slice(b"null"),
        AnyValue::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        AnyValue::Int(i) => int(out, *i),
        AnyValue::Float(f) => float(out, *f),
        AnyValue::Str(s) => string(out, s),
        AnyValue::Array(items) => array(out, items, any),
        AnyValue::Object(f) => fields(out, f, any),
    }
}

/// A metadata namespace, whichever way it holds its entries.
fn metadata_namespace(out: &mut Vec<u8>, ns: &Namespace<'_>) {
    match &ns.0 {
        Repr::Owned(f) => fields(out, f, any),
        Repr::Shared(f) => fields(out, f, any),
        Repr::Encoded(e) => out.extend_from_slice(e.json()),
        Repr::One(k, v) => {
            out.push(b'{');
            string(out, k);
            out.push(b':');
            any(out, v);
            out.push(b'}');
        }
        Repr::Picked(list, picked) => list.write_json_picked(*picked, out),
    }
}

/// Metadata entries as a JSON object.
pub(crate) fn write_fields(out: &mut Vec<u8>, f: &Fields<'_, AnyValue<'_>>) {
    fields(out, f, any);
}

/// A list's picked entries as a JSON object, read through [`FieldList::for_each_picked`].
pub(crate) fn write_picked<L: FieldList + ?Sized>(out: &mut Vec<u8>, list: &L, picked: u64) {
    out.push(b'{');
    let mut first = true;
    list.for_each_picked(picked, &mut |k, v| {
        if !first {
            out.push(b',');
        }
        first = false;
        string(out, k);
        out.push(b':');
        any(out, &v);
    });
    out.push(b'}');
}

/// Appends an integer as JSON, as `serde_json` writes it.
///
/// # Examples
///
/// ```
/// let mut out = Vec::new();
/// xray_model::write_json_int(&mut out, -42);
/// assert_eq!(out, b"-42");
/// ```
pub fn write_json_int(out: &mut Vec<u8>, value: i64) {
    int(out, value);
}

/// Appends any value as JSON, as `serde_json` writes it (non-finite numbers as `null`).
///
/// # Examples
///
/// ```
/// use xray_model::AnyValue;
/// let mut out = Vec::new();
/// xray_model::write_json_value(&mut out, &AnyValue::Array(vec![AnyValue::Int(1), AnyValue::Float(0.5)]));
/// assert_eq!(out, b"[1,0.5]");
/// ```
pub fn write_json_value(out: &mut Vec<u8>, value: &AnyValue<'_>) {
    any(out, value);
}

fn service(out: &mut Vec<u8>, s: &Service<'_>) {
    let Service {
        version,
        runtime,
        runtime_version,
    } = s;
    let mut o = Obj::open(out);
    o.opt_str(k!("version"), version);
    o.opt_str(k!("runtime"), runtime);
    o.opt_str(k!("runtime_version"), runtime_version);
    o.close();
}

fn http(out: &mut Vec<u8>, h: &Http<'_>) {
    let Http { request, response } = h;
    let mut o = Obj::open(out);
    if let Some(HttpRequest {
        method,
        url,
        user_agent,
        client_ip,
        x_forwarded_for,
        traced,
    }) = request
    {
        o.key(k!("request"));
        let mut r_o = Obj::open(o.out);
        r_o.opt_str(k!("method"), method);
        r_o.opt_str(k!("url"), url);
        r_o.opt_str(k!("user_agent"), user_agent);
        r_o.opt_str(k!("client_ip"), client_ip);
        r_o.flag(k!("x_forwarded_for"), *x_forwarded_for);
        r_o.flag(k!("traced"), *traced);
        r_o.close();
    }
    if let Some(HttpResponse {
        status,
        content_length,
    }) = response
    {
        o.key(k!("response"));
        let mut r_o = Obj::open(o.out);
        r_o.opt_int(k!("status"), *status);
        r_o.opt_int(k!("content_length"), *content_length);
        r_o.close();
    }
    o.close();
}

fn aws(out: &mut Vec<u8>, a: &Aws<'_>) {
    let Aws {
        account_id,
        operation,
        region,
        request_id,
        queue_url,
        table_name,
        table_names,
        retries,
        ec2: ec2_,
        ecs: ecs_,
        eks: eks_,
        elastic_beanstalk,
        lambda: lambda_,
        xray: xray_,
        cloudwatch_logs,
    } = a;
    let mut o = Obj::open(out);
    o.opt_str(k!("account_id"), account_id);
    o.opt_str(k!("operation"), operation);
    o.opt_str(k!("region"), region);
    o.opt_str(k!("request_id"), request_id);
    o.opt_str(k!("queue_url"), queue_url);
    o.opt_str(k!("table_name"), table_name);
    o.opt_strs(k!("table_names"), table_names);
    o.opt_int(k!("retries"), *retries);
    if let Some(v) = ec2_ {
        o.key(k!("ec2"));
        ec2(o.out, v);
    }
    if let Some(v) = ecs_ {
        o.key(k!("ecs"));
        ecs(o.out, v);
    }
    if let Some(v) = eks_ {
        o.key(k!("eks"));
        eks(o.out, v);
    }
    if let Some(v) = elastic_beanstalk {
        o.key(k!("elastic_beanstalk"));
        beanstalk(o.out, v);
    }
    if let Some(v) = lambda_ {
        o.key(k!("lambda"));
        lambda(o.out, v);
    }
    if let Some(v) = xray_ {
        o.key(k!("xray"));
        xray(o.out, v);
    }
    if !cloudwatch_logs.is_empty() {
        o.key(k!("cloudwatch_logs"));
        array(o.out, cloudwatch_logs, log_group);
    }
    o.close();
}

fn ec2(out: &mut Vec<u8>, v: &Ec2<'_>) {
    let Ec2 {
        instance_id,
        availability_zone,
        instance_size,
        ami_id,
    } = v;
    let mut o = Obj::open(out);
    o.opt_str(k!("instance_id"), instance_id);
    o.opt_str(k!("availability_zone"), availability_zone);
    o.opt_str(k!("instance_size"), instance_size);
    o.opt_str(k!("ami_id"), ami_id);
    o.close();
}

fn ecs(out: &mut Vec<u8>, v: &Ecs<'_>) {
    let Ecs {
        container,
        container_id,
        task_arn,
        task_family,
        cluster_arn,
        launch_type,
    } = v;
    let mut o = Obj::open(out);
    o.opt_str(k!("container"), container);
    o.opt_str(k!("container_id"), container_id);
    o.opt_str(k!("task_arn"), task_arn);
    o.opt_str(k!("task_family"), task_family);
    o.opt_str(k!("cluster_arn"), cluster_arn);
    o.opt_str(k!("launch_type"), launch_type);
    o.close();
}

fn eks(out: &mut Vec<u8>, v: &Eks<'_>) {
    let Eks {
        cluster_name,
        pod,
        container_id,
    } = v;
    let mut o = Obj::open(out);
    o.opt_str(k!("cluster_name"), cluster_name);
    o.opt_str(k!("pod"), pod);
    o.opt_str(k!("container_id"), container_id);
    o.close();
}

fn beanstalk(out: &mut Vec<u8>, v: &ElasticBeanstalk<'_>) {
    let ElasticBeanstalk {
        environment_name,
        version_label,
        deployment_id,
    } = v;
    let mut o = Obj::open(out);
    o.opt_str(k!("environment_name"), environment_name);
    o.opt_str(k!("version_label"), version_label);
    o.opt_int(k!("deployment_id"), *deployment_id);
    o.close();
}

fn lambda(out: &mut Vec<u8>, v: &Lambda<'_>) {
    let Lambda {
        function_name,
        function_version,
    } = v;
    let mut o = Obj::open(out);
    o.opt_str(k!("function_name"), function_name);
    o.opt_str(k!("function_version"), function_version);
    o.close();
}

fn xray(out: &mut Vec<u8>, v: &XraySdk<'_>) {
    let XraySdk {
        sdk,
        sdk_version,
        auto_instrumentation,
        sampling_rule_name,
    } = v;
    let mut o = Obj::open(out);
    o.opt_str(k!("sdk"), sdk);
    o.opt_str(k!("sdk_version"), sdk_version);
    o.flag(k!("auto_instrumentation"), *auto_instrumentation);
    o.opt_str(k!("sampling_rule_name"), sampling_rule_name);
    o.close();
}

fn log_group(out: &mut Vec<u8>, v: &CloudWatchLogs<'_>) {
    let CloudWatchLogs {
        log_group: log_group_,
        arn,
    } = v;
    let mut o = Obj::open(out);
    o.opt_str(k!("log_group"), log_group_);
    o.opt_str(k!("arn"), arn);
    o.close();
}

fn sql(out: &mut Vec<u8>, v: &Sql<'_>) {
    let Sql {
        url,
        connection_string,
        sanitized_query,
        database_type,
        database_version,
        driver_version,
        user,
        preparation,
    } = v;
    let mut o = Obj::open(out);
    o.opt_str(k!("url"), url);
    o.opt_str(k!("connection_string"), connection_string);
    o.opt_str(k!("sanitized_query"), sanitized_query);
    o.opt_str(k!("database_type"), database_type);
    o.opt_str(k!("database_version"), database_version);
    o.opt_str(k!("driver_version"), driver_version);
    o.opt_str(k!("user"), user);
    o.opt_str(k!("preparation"), preparation);
    o.close();
}

fn cause(out: &mut Vec<u8>, c: &Cause<'_>) {
    match c {
        Cause::ExceptionId(id) => segment_id(out, *id),
        Cause::Details(CauseDetails {
            working_directory,
            paths,
            exceptions,
        }) => {
            let mut o = Obj::open(out);
            o.opt_str(k!("working_directory"), working_directory);
            o.opt_strs(k!("paths"), paths);
            if !exceptions.is_empty() {
                o.key(k!("exceptions"));
                array(o.out, exceptions, exception);
            }
            o.close();
        }
    }
}

fn exception(out: &mut Vec<u8>, e: &Exception<'_>) {
    let Exception {
        id,
        message,
        kind,
        remote,
        truncated,
        skipped,
        cause: cause_,
        stack,
    } = e;
    let mut o = Obj::open(out);
    o.segment_id(k!("id"), *id);
    o.opt_str(k!("message"), message);
    o.opt_str(k!("type"), kind);
    o.flag(k!("remote"), *remote);
    o.opt_int(k!("truncated"), *truncated);
    o.opt_int(k!("skipped"), *skipped);
    if let Some(c) = *cause_ {
        o.segment_id(k!("cause"), c);
    }
    if !stack.is_empty() {
        o.key(k!("stack"));
        array(o.out, stack, frame);
    }
    o.close();
}

fn frame(out: &mut Vec<u8>, f: &StackFrame<'_>) {
    let StackFrame { path, line, label } = f;
    let mut o = Obj::open(out);
    o.opt_str(k!("path"), path);
    o.opt_int(k!("line"), *line);
    o.opt_str(k!("label"), label);
    o.close();
}

fn link(out: &mut Vec<u8>, l: &Link<'_>) {
    let Link {
        trace_id: trace_id_,
        id,
        attributes,
    } = l;
    let mut o = Obj::open(out);
    o.key(k!("trace_id"));
    trace_id(o.out, *trace_id_);
    o.segment_id(k!("id"), *id);
    if !attributes.is_empty() {
        o.key(k!("attributes"));
        fields(o.out, attributes, any);
    }
    o.close();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{CauseDetails, HttpRequest, HttpResponse};

    fn serde_text(seg: &Segment<'_>) -> String {
        serde_json::to_string(seg).unwrap()
    }

    fn ours(seg: &Segment<'_>) -> String {
        let mut out = Vec::new();
        write_segment(&mut out, seg);
        String::from_utf8(out).unwrap()
    }

    /// A document with every block and field set, strings full of characters to escape.
    fn everything() -> Segment<'static> {
        let s = |t: &str| {
            Some(Cow::Owned(format!(
                "{t} \"q\" \\ \n\t\r\u{8}\u{c}\u{1}\u{1f}\u{7f} é 🦀"
            )))
        };
        let mut seg = Segment::new(
            "svc \u{0} \"x\"",
            SegmentId::from_u64(0xabc),
            TraceId::from_u128(7),
            1_700_000_000.123456,
        );
        seg.kind = Some("subsegment".into());
        seg.parent_id = Some(SegmentId::from_u64(1));
        seg.end_time = Some(f64::NAN);
        seg.in_progress = true;
        (seg.namespace, seg.origin, seg.user, seg.resource_arn) =
            (s("ns"), s("o"), s("u"), s("arn"));
        seg.traced = true;
        seg.service = Some(Service {
            version: s("1"),
            runtime: s("rust"),
            runtime_version: s("1.95"),
        });
        seg.http = Some(Http {
            request: Some(HttpRequest {
                method: s("GET"),
                url: s("https://x/y?z"),
                user_agent: s("ua"),
                client_ip: s("::1"),
                x_forwarded_for: true,
                traced: true,
            }),
            response: Some(HttpResponse {
                status: Some(503),
                content_length: Some(u64::MAX),
            }),
        });
        seg.aws = Some(Box::new(Aws {
            account_id: s("1"),
            operation: s("op"),
            region: s("r"),
            request_id: s("id"),
            queue_url: s("q"),
            table_name: s("t"),
            table_names: vec!["a".into(), "b\"".into()],
            retries: Some(3),
            ec2: Some(Ec2 {
                instance_id: s("i"),
                availability_zone: s("az"),
                instance_size: s("m5"),
                ami_id: s("ami"),
            }),
            ecs: Some(Ecs {
                container: s("c"),
                container_id: s("ci"),
                task_arn: s("ta"),
                task_family: s("tf"),
                cluster_arn: s("ca"),
                launch_type: s("fargate"),
            }),
            eks: Some(Eks {
                cluster_name: s("cn"),
                pod: s("p"),
                container_id: s("ci"),
            }),
            elastic_beanstalk: Some(ElasticBeanstalk {
                environment_name: s("e"),
                version_label: s("v"),
                deployment_id: Some(-4),
            }),
            lambda: Some(Lambda {
                function_name: s("f"),
                function_version: s("$LATEST"),
            }),
            xray: Some(XraySdk {
                sdk: s("sdk"),
                sdk_version: s("0"),
                auto_instrumentation: true,
                sampling_rule_name: s("rule"),
            }),
            cloudwatch_logs: vec![
                CloudWatchLogs {
                    log_group: s("lg"),
                    arn: s("arn"),
                },
                CloudWatchLogs::default(),
            ],
        }));
        seg.sql = Some(Box::new(Sql {
            url: s("u"),
            connection_string: s("c"),
            sanitized_query: s("select"),
            database_type: s("pg"),
            database_version: s("16"),
            driver_version: s("d"),
            user: s("u"),
            preparation: s("statement"),
        }));
        (seg.error, seg.throttle, seg.fault) = (true, true, true);
        seg.cause = Some(Cause::Details(CauseDetails {
            working_directory: s("/"),
            paths: vec!["p1".into()],
            exceptions: vec![Exception {
                id: SegmentId::from_u64(5),
                message: s("boom"),
                kind: s("E"),
                remote: true,
                truncated: Some(2),
                skipped: Some(1),
                cause: Some(SegmentId::from_u64(6)),
                stack: vec![
                    StackFrame {
                        path: s("a.rs"),
                        line: Some(10),
                        label: s("f"),
                    },
                    StackFrame::default(),
                ],
            }],
        }));
        seg.annotations.insert("b", AnnotationValue::Bool(false));
        seg.annotations.insert("i", AnnotationValue::Int(i64::MIN));
        seg.annotations.insert("f", AnnotationValue::Float(0.1));
        seg.annotations
            .insert("inf", AnnotationValue::Float(f64::INFINITY));
        seg.annotations
            .insert("s\"", AnnotationValue::Str("v\n".into()));
        seg.put_metadata("default", "null", AnyValue::Null);
        seg.put_metadata(
            "default",
            "nested",
            AnyValue::Array(vec![
                AnyValue::Bool(true),
                AnyValue::Float(1e300),
                AnyValue::Float(-0.0),
                AnyValue::Float(1.0),
                AnyValue::Object(Fields(vec![("k\u{1}".into(), AnyValue::Str("".into()))])),
                AnyValue::Array(vec![]),
                AnyValue::Object(Fields::new()),
            ]),
        );
        seg.put_metadata("other ns", "x", AnyValue::Int(1));
        seg.metadata.insert(
            "one",
            Namespace::one("k\"\u{1}", AnyValue::Str("v\n".into())),
        );
        let child = Segment {
            name: "child".into(),
            end_time: Some(2.5),
            ..Segment::default()
        };
        seg.subsegments = vec![child.clone(), child];
        seg.precursor_ids = vec![SegmentId::from_u64(9), SegmentId::from_u64(10)];
        seg.links = vec![
            Link {
                trace_id: TraceId::from_u128(1),
                id: SegmentId::from_u64(2),
                attributes: Fields::new(),
            },
            Link {
                trace_id: TraceId::from_u128(3),
                id: SegmentId::from_u64(4),
                attributes: Fields(vec![("a".into(), AnyValue::Int(1))]),
            },
        ];
        seg
    }

    #[test]
    fn every_field_is_written_exactly_as_serde_json_writes_it() {
        let seg = everything();
        assert_eq!(ours(&seg), serde_text(&seg));
        let mut exception_id = seg.clone();
        exception_id.cause = Some(Cause::ExceptionId(SegmentId::from_u64(77)));
        assert_eq!(ours(&exception_id), serde_text(&exception_id));
    }

    #[test]
    fn encoded_len_is_the_written_length() {
        let seg = everything();
        assert_eq!(crate::encoded_len(&seg), ours(&seg).len());
        assert_eq!(
            crate::encoded_len(&Segment::default()),
            ours(&Segment::default()).len()
        );
    }

    #[test]
    fn empty_blocks_and_defaults_are_written_as_serde_json_writes_them() {
        let mut seg = Segment::default();
        assert_eq!(ours(&seg), serde_text(&seg));
        seg.http = Some(Http::default());
        seg.aws = Some(Box::default());
        seg.sql = Some(Box::default());
        seg.service = Some(Service::default());
        seg.cause = Some(Cause::Details(CauseDetails::default()));
        assert_eq!(ours(&seg), serde_text(&seg));
    }

    #[test]
    fn every_byte_and_number_form_matches() {
        // Each escaped byte at every position of strings of every length around the
        // word and chunk sizes (8 and 16 bytes: whole ones, a partial last one, shorter
        // than one), among clean ASCII or multi-byte characters.
        for filler in ["a", "\u{e9}", "\u{1f600}"] {
            for len in 0..36 {
                let clean = filler.repeat(len);
                let seg = Segment::new(
                    clean.as_str(),
                    SegmentId::from_u64(1),
                    TraceId::from_u128(2),
                    1.0,
                );
                assert_eq!(ours(&seg), serde_text(&seg));
                for special in (0u8..0x20).chain([b'"', b'\\', 0x7f]) {
                    for at in 0..len {
                        let mut text = filler.repeat(len).into_bytes();
                        text[at * filler.len()] = special;
                        text.drain(at * filler.len() + 1..(at + 1) * filler.len());
                        let text = String::from_utf8(text).unwrap();
                        let seg =
                            Segment::new(text, SegmentId::from_u64(1), TraceId::from_u128(2), 1.0);
                        assert_eq!(ours(&seg), serde_text(&seg));
                    }
                }
            }
        }
        let all: String = (0u32..0x800).filter_map(char::from_u32).collect();
        for f in [
            0.0,
            1.5,
            1e21,
            1e-7,
            123456789.000001,
            f64::MIN_POSITIVE,
            f64::MAX,
        ] {
            let mut seg = Segment::new(
                all.clone(),
                SegmentId::from_u64(1),
                TraceId::from_u128(2),
                f,
            );
            seg.annotations
                .insert(all.clone(), AnnotationValue::Float(-f));
            assert_eq!(ours(&seg), serde_text(&seg));
        }
    }
}
