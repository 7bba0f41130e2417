//! `AWS_XRAY_TRACING_NAME` names segments (its own test binary: it sets the environment).

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use xray_translate::{TRACING_NAME_ENV, Translator, TranslatorConfig};

fn assert_send_sync_clone<T: Send + Sync + Clone>() {}

#[test]
fn tracing_name_overrides_service_name() {
    assert_send_sync_clone::<Translator>();
    let resource = Resource {
        attributes: vec![KeyValue {
            key: "service.name".into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue("from-resource".into())),
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let span = Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "root".into(),
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        ..Default::default()
    };
    // SAFETY: this binary has this one test; nothing else reads the environment meanwhile.
    unsafe { std::env::remove_var(TRACING_NAME_ENV) };
    let doc = Translator::from_env().translate_otlp(&span, Some(&resource), None);
    assert_eq!(doc.name, "from-resource");
    assert_eq!(TranslatorConfig::from_env().service_name(), None);

    unsafe { std::env::set_var(TRACING_NAME_ENV, " storefront ") };
    let translator = Translator::from_env();
    assert_eq!(translator.config().service_name(), Some("storefront"));
    assert_eq!(
        translator.translate_otlp(&span, Some(&resource), None).name,
        "storefront"
    );

    unsafe { std::env::set_var(TRACING_NAME_ENV, "  ") };
    assert_eq!(TranslatorConfig::from_env().service_name(), None);
    unsafe { std::env::remove_var(TRACING_NAME_ENV) };
}
