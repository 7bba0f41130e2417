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

#[test]
fn settings_come_from_the_environment() {
    use xray_translate::{
        INDEX_ALL_ATTRIBUTES_ENV, INDEXED_ATTRIBUTES_ENV, LOG_GROUP_NAMES_ENV, METADATA_EXCLUDE_ENV,
    };
    // SAFETY: the variables are this test's alone (the other test reads another one).
    unsafe {
        std::env::set_var(INDEXED_ATTRIBUTES_ENV, "tenant, order.id,");
        std::env::set_var(INDEX_ALL_ATTRIBUTES_ENV, "true");
        std::env::set_var(LOG_GROUP_NAMES_ENV, "/ecs/a,/ecs/b");
        std::env::set_var(METADATA_EXCLUDE_ENV, "user.*");
    }
    let config = TranslatorConfig::default().with_env_settings().unwrap();
    assert_eq!(config.annotation_keys(), ["tenant", "order.id"]);
    assert!(config.indexes_all_attributes());
    assert_eq!(config.log_groups(), ["/ecs/a", "/ecs/b"]);
    assert_eq!(config.metadata_exclude(), ["user.*"]);
    unsafe { std::env::set_var(METADATA_EXCLUDE_ENV, "user.[") };
    let err = TranslatorConfig::default().with_env_settings().unwrap_err();
    assert_eq!(err.pattern, "user.[");
    unsafe {
        for v in [
            INDEXED_ATTRIBUTES_ENV,
            INDEX_ALL_ATTRIBUTES_ENV,
            LOG_GROUP_NAMES_ENV,
            METADATA_EXCLUDE_ENV,
        ] {
            std::env::remove_var(v);
        }
    }
    assert_eq!(
        TranslatorConfig::default().with_env_settings().unwrap(),
        TranslatorConfig::default()
    );
}
