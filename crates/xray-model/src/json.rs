//! The JSON writer of segment documents: the same text `serde_json` makes from the
//! `Serialize` impls (field order, omitted empty fields, escapes, number forms), written
//! straight into a byte buffer. Keys are known, so each is one copy; strings that need no
//! escaping (nearly all) are one copy too.
//!
//! Every struct is destructured without `..`: a new field fails to compile here until it
//! is written.

use std::borrow::Cow;

use crate::document::{
    AnnotationValue, AnyValue, Aws, Cause, CauseDetails, CloudWatchLogs, Ec2, Ecs, Eks,
    ElasticBeanstalk, Exception, Fields, Http, HttpRequest, HttpResponse, Lambda, Link, Segment,
    Service, Sql, StackFrame, XraySdk,
};
use crate::namespace::{Namespace, Repr};
use crate::{SegmentId, TraceId};

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
    o.str("name", name);
    o.segment_id("id", *id);
    if let Some(t) = *trace_id_ {
        o.key("trace_id");
        trace_id(o.out, t);
    }
    o.opt_str("type", kind);
    if let Some(p) = *parent_id {
        o.segment_id("parent_id", p);
    }
    o.key("start_time");
    float(o.out, *start_time);
    if let Some(end) = *end_time {
        o.key("end_time");
        float(o.out, end);
    }
    o.flag("in_progress", *in_progress);
    o.opt_str("namespace", namespace);
    o.opt_str("origin", origin);
    o.opt_str("user", user);
    o.opt_str("resource_arn", resource_arn);
    o.flag("traced", *traced);
    if let Some(s) = service_ {
        o.key("service");
        service(o.out, s);
    }
    if let Some(h) = http_ {
        o.key("http");
        http(o.out, h);
    }
    if let Some(a) = aws_ {
        o.key("aws");
        aws(o.out, a);
    }
    if let Some(s) = sql_ {
        o.key("sql");
        sql(o.out, s);
    }
    o.flag("error", *error);
    o.flag("throttle", *throttle);
    o.flag("fault", *fault);
    if let Some(c) = cause_ {
        o.key("cause");
        cause(o.out, c);
    }
    if !annotations.is_empty() {
        o.key("annotations");
        fields(o.out, annotations, annotation);
    }
    if !metadata.is_empty() {
        o.key("metadata");
        fields(o.out, metadata, metadata_namespace);
    }
    if !subsegments.is_empty() {
        o.key("subsegments");
        array(o.out, subsegments, write_segment);
    }
    if !precursor_ids.is_empty() {
        o.key("precursor_ids");
        array(o.out, precursor_ids, |out, id| segment_id(out, *id));
    }
    if !links.is_empty() {
        o.key("links");
        array(o.out, links, link);
    }
    o.close();
}

/// An object being written: commas between fields, `{` and `}` around them.
struct Obj<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Obj<'o> {
    fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }

    /// `"key":` (keys here are plain ASCII and need no escaping), with a comma before
    /// every field but the first.
    #[inline(always)]
    fn key(&mut self, key: &str) {
        self.out.reserve(key.len() + 4);
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    #[inline(always)]
    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        string(self.out, value);
    }

    #[inline(always)]
    fn opt_str(&mut self, key: &str, value: &Option<Cow<'_, str>>) {
        if let Some(v) = value {
            self.str(key, v);
        }
    }

    #[inline(always)]
    fn segment_id(&mut self, key: &str, id: SegmentId) {
        self.key(key);
        segment_id(self.out, id);
    }

    /// Written only when set, as serde's `skip_serializing_if = "is_false"`.
    #[inline(always)]
    fn flag(&mut self, key: &str, value: bool) {
        if value {
            self.key(key);
            self.out.extend_from_slice(b"true");
        }
    }

    #[inline(always)]
    fn opt_int(&mut self, key: &str, value: Option<impl itoa::Integer>) {
        if let Some(v) = value {
            self.key(key);
            int(self.out, v);
        }
    }

    fn opt_strs(&mut self, key: &str, values: &[Cow<'_, str>]) {
        if !values.is_empty() {
            self.key(key);
            array(self.out, values, |out, s| string(out, s));
        }
    }

    fn close(self) {
        self.out.push(b'}');
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

fn int(out: &mut Vec<u8>, v: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// As `serde_json`: the shortest round-trip form (`zmij`, as serde_json), `null` when not finite.
fn float(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
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

/// What each byte turns into inside a JSON string, as `serde_json` writes it: 0 for
/// itself, `u` for `\u00XX`, or the letter after the backslash.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Whether any of the eight bytes of `x` needs escaping: a byte below 0x20, `"` or `\`
/// is detected without a false negative (a false positive only follows a true match in
/// the same word, which the byte loop then finds).
#[inline(always)]
fn needs_escape(x: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v;
    let control = x.wrapping_sub(ONES * 0x20) & !x;
    let special =
        control | zero(x ^ (ONES * u64::from(b'"'))) | zero(x ^ (ONES * u64::from(b'\\')));
    special & HIGHS != 0
}

/// The eight bytes at `at`.
#[inline(always)]
fn word(bytes: &[u8], at: usize) -> [u8; 8] {
    let mut w = [0; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    w
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
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    string(out, s);
}

/// A quoted, escaped JSON string. Clean text (nearly all) is checked and copied eight
/// bytes at a time, the last partial word as an overlapping word that rewrites bytes
/// already copied with the same bytes; only strings with a byte to escape, and strings
/// under eight bytes, go byte by byte.
fn string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let n = bytes.len();
    out.reserve(n + 2);
    out.push(b'"');
    let mut at = 0;
    if n >= 8 {
        while at + 8 <= n {
            let w = word(bytes, at);
            if needs_escape(u64::from_le_bytes(w)) {
                break;
            }
            out.extend_from_slice(&w);
            at += 8;
        }
        if at < n && at + 8 > n {
            let last = word(bytes, n - 8);
            if !needs_escape(u64::from_le_bytes(last)) {
                out.truncate(out.len() - (8 - (n - at)));
                out.extend_from_slice(&last);
                at = n;
            }
        }
    }
    if at < n {
        escaped(out, &bytes[at..]);
    }
    out.push(b'"');
}

/// The bytes of a string from its first word that may need escaping, byte by byte.
fn escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        match ESCAPE[b as usize] {
            0 => out.push(b),
            b'u' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 0xf) as usize],
                ]);
            }
            letter => out.extend_from_slice(&[b'\\', letter]),
        }
    }
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
        Repr::Source(source) => {
            out.push(b'{');
            let mut first = true;
            source.for_each(&mut |k, v| {
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
    }
}

fn service(out: &mut Vec<u8>, s: &Service<'_>) {
    let Service {
        version,
        runtime,
        runtime_version,
    } = s;
    let mut o = Obj::open(out);
    o.opt_str("version", version);
    o.opt_str("runtime", runtime);
    o.opt_str("runtime_version", runtime_version);
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
        o.key("request");
        let mut r_o = Obj::open(o.out);
        r_o.opt_str("method", method);
        r_o.opt_str("url", url);
        r_o.opt_str("user_agent", user_agent);
        r_o.opt_str("client_ip", client_ip);
        r_o.flag("x_forwarded_for", *x_forwarded_for);
        r_o.flag("traced", *traced);
        r_o.close();
    }
    if let Some(HttpResponse {
        status,
        content_length,
    }) = response
    {
        o.key("response");
        let mut r_o = Obj::open(o.out);
        r_o.opt_int("status", *status);
        r_o.opt_int("content_length", *content_length);
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
    o.opt_str("account_id", account_id);
    o.opt_str("operation", operation);
    o.opt_str("region", region);
    o.opt_str("request_id", request_id);
    o.opt_str("queue_url", queue_url);
    o.opt_str("table_name", table_name);
    o.opt_strs("table_names", table_names);
    o.opt_int("retries", *retries);
    if let Some(v) = ec2_ {
        o.key("ec2");
        ec2(o.out, v);
    }
    if let Some(v) = ecs_ {
        o.key("ecs");
        ecs(o.out, v);
    }
    if let Some(v) = eks_ {
        o.key("eks");
        eks(o.out, v);
    }
    if let Some(v) = elastic_beanstalk {
        o.key("elastic_beanstalk");
        beanstalk(o.out, v);
    }
    if let Some(v) = lambda_ {
        o.key("lambda");
        lambda(o.out, v);
    }
    if let Some(v) = xray_ {
        o.key("xray");
        xray(o.out, v);
    }
    if !cloudwatch_logs.is_empty() {
        o.key("cloudwatch_logs");
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
    o.opt_str("instance_id", instance_id);
    o.opt_str("availability_zone", availability_zone);
    o.opt_str("instance_size", instance_size);
    o.opt_str("ami_id", ami_id);
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
    o.opt_str("container", container);
    o.opt_str("container_id", container_id);
    o.opt_str("task_arn", task_arn);
    o.opt_str("task_family", task_family);
    o.opt_str("cluster_arn", cluster_arn);
    o.opt_str("launch_type", launch_type);
    o.close();
}

fn eks(out: &mut Vec<u8>, v: &Eks<'_>) {
    let Eks {
        cluster_name,
        pod,
        container_id,
    } = v;
    let mut o = Obj::open(out);
    o.opt_str("cluster_name", cluster_name);
    o.opt_str("pod", pod);
    o.opt_str("container_id", container_id);
    o.close();
}

fn beanstalk(out: &mut Vec<u8>, v: &ElasticBeanstalk<'_>) {
    let ElasticBeanstalk {
        environment_name,
        version_label,
        deployment_id,
    } = v;
    let mut o = Obj::open(out);
    o.opt_str("environment_name", environment_name);
    o.opt_str("version_label", version_label);
    o.opt_int("deployment_id", *deployment_id);
    o.close();
}

fn lambda(out: &mut Vec<u8>, v: &Lambda<'_>) {
    let Lambda {
        function_name,
        function_version,
    } = v;
    let mut o = Obj::open(out);
    o.opt_str("function_name", function_name);
    o.opt_str("function_version", function_version);
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
    o.opt_str("sdk", sdk);
    o.opt_str("sdk_version", sdk_version);
    o.flag("auto_instrumentation", *auto_instrumentation);
    o.opt_str("sampling_rule_name", sampling_rule_name);
    o.close();
}

fn log_group(out: &mut Vec<u8>, v: &CloudWatchLogs<'_>) {
    let CloudWatchLogs {
        log_group: log_group_,
        arn,
    } = v;
    let mut o = Obj::open(out);
    o.opt_str("log_group", log_group_);
    o.opt_str("arn", arn);
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
    o.opt_str("url", url);
    o.opt_str("connection_string", connection_string);
    o.opt_str("sanitized_query", sanitized_query);
    o.opt_str("database_type", database_type);
    o.opt_str("database_version", database_version);
    o.opt_str("driver_version", driver_version);
    o.opt_str("user", user);
    o.opt_str("preparation", preparation);
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
            o.opt_str("working_directory", working_directory);
            o.opt_strs("paths", paths);
            if !exceptions.is_empty() {
                o.key("exceptions");
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
    o.segment_id("id", *id);
    o.opt_str("message", message);
    o.opt_str("type", kind);
    o.flag("remote", *remote);
    o.opt_int("truncated", *truncated);
    o.opt_int("skipped", *skipped);
    if let Some(c) = *cause_ {
        o.segment_id("cause", c);
    }
    if !stack.is_empty() {
        o.key("stack");
        array(o.out, stack, frame);
    }
    o.close();
}

fn frame(out: &mut Vec<u8>, f: &StackFrame<'_>) {
    let StackFrame { path, line, label } = f;
    let mut o = Obj::open(out);
    o.opt_str("path", path);
    o.opt_int("line", *line);
    o.opt_str("label", label);
    o.close();
}

fn link(out: &mut Vec<u8>, l: &Link<'_>) {
    let Link {
        trace_id: trace_id_,
        id,
        attributes,
    } = l;
    let mut o = Obj::open(out);
    o.key("trace_id");
    trace_id(o.out, *trace_id_);
    o.segment_id("id", *id);
    if !attributes.is_empty() {
        o.key("attributes");
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
        // word size (whole words, a partial last word, shorter than a word), among clean
        // ASCII or multi-byte characters.
        for filler in ["a", "\u{e9}", "\u{1f600}"] {
            for len in 0..26 {
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
