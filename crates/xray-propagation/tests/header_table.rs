//! Extract and inject on a table of real-world `X-Amzn-Trace-Id` headers, through the
//! OpenTelemetry propagator API, alone and composed with W3C trace context.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::{
    Span, SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
    TracerProvider,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use xray_model::carry::{HopState, TRACE_STATE_KEY};
use xray_model::{Sampled, TraceHeader};
use xray_propagation::{HEADER_FIELD, XrayPropagator, header_from_context, hop_state};

const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";
const ROOT_HEX: &str = "5759e988bd862e3fe1be46a994272793";
const PARENT: &str = "53995c3f42cd8ad8";

fn carrier(header: &str) -> HashMap<String, String> {
    HashMap::from([(HEADER_FIELD.to_owned(), header.to_owned())])
}

fn extract(header: &str) -> SpanContext {
    XrayPropagator::new()
        .extract(&carrier(header))
        .span()
        .span_context()
        .clone()
}

fn forward(header: &str) -> Option<String> {
    let cx = XrayPropagator::new().extract(&carrier(header));
    let mut out = HashMap::new();
    XrayPropagator::new().inject_context(&cx, &mut out);
    out.remove(HEADER_FIELD)
}

struct Row {
    form: &'static str,
    header: String,
    /// `None`: the parent is the stand-in (no `Parent` in the header).
    parent: Option<&'static str>,
    sampled_bit: bool,
    /// The hop state the trace state must carry (`None`: no entry at all).
    hop: Option<HopState>,
    /// The header sent on when forwarding the extracted context unchanged.
    forwarded: String,
}

fn rows() -> Vec<Row> {
    let lineage = || vec![("Lineage".to_owned(), "a87bd80c:0".to_owned())];
    let self_field = || {
        vec![(
            "Self".to_owned(),
            "1-67891234-12456789abcdef012345678".to_owned(),
        )]
    };
    vec![
        Row {
            form: "ALB, Root only",
            header: format!("Root={ROOT}"),
            parent: None,
            sampled_bit: false,
            hop: Some(HopState {
                no_parent: true,
                sampled: Sampled::Unknown,
                fields: vec![],
            }),
            forwarded: format!("Root={ROOT}"),
        },
        Row {
            form: "ALB with Self first",
            header: format!("Self=1-67891234-12456789abcdef012345678;Root={ROOT}"),
            parent: None,
            sampled_bit: false,
            hop: Some(HopState {
                no_parent: true,
                sampled: Sampled::Unknown,
                fields: self_field(),
            }),
            forwarded: format!("Root={ROOT};Self=1-67891234-12456789abcdef012345678"),
        },
        Row {
            form: "Lambda with Lineage",
            header: format!("Root={ROOT};Parent={PARENT};Sampled=1;Lineage=a87bd80c:0"),
            parent: Some(PARENT),
            sampled_bit: true,
            hop: Some(HopState {
                no_parent: false,
                sampled: Sampled::Yes,
                fields: lineage(),
            }),
            forwarded: format!("Root={ROOT};Parent={PARENT};Sampled=1;Lineage=a87bd80c:0"),
        },
        Row {
            form: "API Gateway, sampled, no parent",
            header: format!("Root={ROOT};Sampled=1"),
            parent: None,
            sampled_bit: true,
            hop: Some(HopState {
                no_parent: true,
                sampled: Sampled::Yes,
                fields: vec![],
            }),
            forwarded: format!("Root={ROOT};Sampled=1"),
        },
        Row {
            form: "SDK, full, spaces after ;",
            header: format!("Root={ROOT}; Parent={PARENT}; Sampled=0"),
            parent: Some(PARENT),
            sampled_bit: false,
            hop: None,
            forwarded: format!("Root={ROOT};Parent={PARENT};Sampled=0"),
        },
        Row {
            form: "Sampled=? asks for a decision",
            header: format!("Root={ROOT};Parent={PARENT};Sampled=?"),
            parent: Some(PARENT),
            sampled_bit: false,
            hop: Some(HopState {
                no_parent: false,
                sampled: Sampled::Requested,
                fields: vec![],
            }),
            forwarded: format!("Root={ROOT};Parent={PARENT};Sampled=?"),
        },
        Row {
            form: "missing Sampled",
            header: format!("Root={ROOT};Parent={PARENT}"),
            parent: Some(PARENT),
            sampled_bit: false,
            hop: Some(HopState {
                no_parent: false,
                sampled: Sampled::Unknown,
                fields: vec![],
            }),
            forwarded: format!("Root={ROOT};Parent={PARENT}"),
        },
        Row {
            form: "lowercase keys",
            header: format!("root={ROOT};parent={PARENT};sampled=1"),
            parent: Some(PARENT),
            sampled_bit: true,
            hop: None,
            forwarded: format!("Root={ROOT};Parent={PARENT};Sampled=1"),
        },
        Row {
            form: "broken Parent, good Root",
            header: format!("Root={ROOT};Parent=zz-not-hex;Sampled=1"),
            parent: None,
            sampled_bit: true,
            hop: Some(HopState {
                no_parent: true,
                sampled: Sampled::Yes,
                fields: vec![],
            }),
            forwarded: format!("Root={ROOT};Sampled=1"),
        },
        Row {
            form: "custom field and trailing ;",
            header: format!("Root={ROOT};Parent={PARENT};Sampled=1;Foo=bar;"),
            parent: Some(PARENT),
            sampled_bit: true,
            hop: Some(HopState {
                no_parent: false,
                sampled: Sampled::Yes,
                fields: vec![("Foo".to_owned(), "bar".to_owned())],
            }),
            forwarded: format!("Root={ROOT};Parent={PARENT};Sampled=1;Foo=bar"),
        },
    ]
}

#[test]
fn real_world_headers_extract_and_forward() {
    for row in rows() {
        let sc = extract(&row.header);
        let form = row.form;
        assert!(sc.is_valid() && sc.is_remote(), "{form}: {sc:?}");
        assert_eq!(
            sc.trace_id(),
            TraceId::from_hex(ROOT_HEX).unwrap(),
            "{form}"
        );
        let root = TraceHeader::parse(&row.header).unwrap().root;
        let expected_span = match row.parent {
            Some(p) => SpanId::from_hex(p).unwrap(),
            None => SpanId::from_bytes(HopState::stand_in_parent(root).to_bytes()),
        };
        assert_eq!(sc.span_id(), expected_span, "{form}");
        assert_eq!(sc.is_sampled(), row.sampled_bit, "{form}");
        assert_eq!(hop_state(&sc), row.hop, "{form}");
        assert_eq!(forward(&row.header), Some(row.forwarded.clone()), "{form}");
    }
}

#[test]
fn garbage_never_yields_a_context_nor_panics() {
    let long = format!("Root={ROOT};{}", "x=y;".repeat(3000));
    for bad in [
        "",
        "garbage",
        "Root=",
        "Root=1-xyz",
        "Root=1-5759e988-bd862e3fe1be46a99427279",
        &format!("Parent={PARENT};Sampled=1"),
        ";;;==;",
        "Root=\u{1F600}",
        &long,
    ] {
        let sc = extract(bad);
        assert!(!sc.is_valid(), "{bad:?} gave {sc:?}");
        assert_eq!(forward(bad), None, "{bad:?}");
    }
}

fn provider(sampler: Sampler) -> SdkTracerProvider {
    SdkTracerProvider::builder().with_sampler(sampler).build()
}

#[test]
fn local_span_injects_itself_as_parent_with_its_decision_and_the_fields() {
    let provider = provider(Sampler::AlwaysOn);
    let tracer = provider.tracer("test");
    // The caller asked for a decision and sent Lineage: the child decided "yes".
    let parent = XrayPropagator::new().extract(&carrier(&format!(
        "Root={ROOT};Sampled=?;Lineage=a87bd80c:0"
    )));
    let span = tracer.start_with_context("child", &parent);
    let span_id = span.span_context().span_id();
    let cx = Context::new().with_span(span);
    let h = header_from_context(&cx).unwrap();
    assert_eq!(
        h.to_string(),
        format!("Root={ROOT};Parent={span_id};Sampled=1;Lineage=a87bd80c:0")
    );

    // An unsampled local span says Sampled=0, not `?`.
    let provider = self::provider(Sampler::AlwaysOff);
    let span = provider.tracer("t").start_with_context("child", &parent);
    let h = header_from_context(&Context::new().with_span(span)).unwrap();
    assert_eq!(h.sampled, Sampled::No);
    assert!(h.parent.is_some());
}

fn composite() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(XrayPropagator::new()),
    ])
}

#[test]
fn composite_with_w3c_injects_both_headers_for_one_span() {
    let provider = provider(Sampler::AlwaysOn);
    let span = provider.tracer("t").start("local");
    let sc = span.span_context().clone();
    let cx = Context::new().with_span(span);
    let mut out = HashMap::new();
    composite().inject_context(&cx, &mut out);
    let traceparent = &out["traceparent"];
    assert_eq!(
        traceparent,
        &format!("00-{}-{}-01", sc.trace_id(), sc.span_id())
    );
    let h = TraceHeader::parse(&out[HEADER_FIELD]).unwrap();
    assert_eq!(h.root.to_bytes(), sc.trace_id().to_bytes());
    assert_eq!(h.parent.unwrap().to_bytes(), sc.span_id().to_bytes());
    assert_eq!(h.sampled, Sampled::Yes);
    assert_eq!(composite().fields().count(), 3);
}

#[test]
fn composite_extract_keeps_other_vendors_trace_state_for_the_same_trace() {
    let mut c = carrier(&format!("Root={ROOT};Parent={PARENT};Sampled=?"));
    c.insert(
        "traceparent".into(),
        format!("00-{ROOT_HEX}-00f067aa0ba902b7-01"),
    );
    c.insert("tracestate".into(), "congo=t61rcWkgMzE".into());
    let cx = composite().extract(&c);
    let sc = cx.span().span_context().clone();
    // X-Ray runs last, so its parent and its (deferred) decision win.
    assert_eq!(sc.span_id(), SpanId::from_hex(PARENT).unwrap());
    assert!(!sc.is_sampled());
    assert_eq!(sc.trace_state().get("congo"), Some("t61rcWkgMzE"));
    assert_eq!(sc.trace_state().get(TRACE_STATE_KEY), Some("s?"));

    // A different trace in traceparent: its trace state is not mixed in.
    c.insert(
        "traceparent".into(),
        "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01".into(),
    );
    let cx = composite().extract(&c);
    let sc = cx.span().span_context().clone();
    assert_eq!(sc.trace_id(), TraceId::from_hex(ROOT_HEX).unwrap());
    assert_eq!(sc.trace_state().get("congo"), None);
}

#[test]
fn w3c_only_context_is_sent_on_as_an_xray_header() {
    let c = HashMap::from([(
        "traceparent".to_owned(),
        "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01".to_owned(),
    )]);
    let cx = composite().extract(&c);
    let mut out = HashMap::new();
    XrayPropagator::new().inject_context(&cx, &mut out);
    assert_eq!(
        out[HEADER_FIELD],
        "Root=1-0af76519-16cd43dd8448eb211c80319c;Parent=00f067aa0ba902b7;Sampled=1"
    );
}

#[test]
fn a_stale_xray_entry_from_upstream_is_replaced() {
    // An upstream hop's entry arrives in W3C tracestate; the X-Ray header is authoritative.
    let state = TraceState::from_key_value([(TRACE_STATE_KEY, "np;s?")]).unwrap();
    let sc = SpanContext::new(
        TraceId::from_hex(ROOT_HEX).unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        TraceFlags::SAMPLED,
        true,
        state,
    );
    let cx = Context::new().with_remote_span_context(sc);
    let cx = XrayPropagator::new().extract_with_context(
        &cx,
        &carrier(&format!("Root={ROOT};Parent={PARENT};Sampled=1")),
    );
    assert_eq!(
        cx.span().span_context().trace_state().get(TRACE_STATE_KEY),
        None
    );
}
