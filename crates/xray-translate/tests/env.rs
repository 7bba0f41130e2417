//! Settings from environment variables, read through the variable-map hooks (`from_vars`,
//! `with_settings_from`): no test here changes the process environment.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use xray_testkit::vars;
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
    let doc = Translator::new(TranslatorConfig::from_vars(vars(&[]))).translate_otlp(
        &span,
        Some(&resource),
        None,
    );
    assert_eq!(doc.name, "from-resource");
    assert_eq!(TranslatorConfig::from_vars(vars(&[])).service_name(), None);

    let translator = Translator::new(TranslatorConfig::from_vars(vars(&[(
        TRACING_NAME_ENV,
        " storefront ",
    )])));
    assert_eq!(translator.config().service_name(), Some("storefront"));
    assert_eq!(
        translator.translate_otlp(&span, Some(&resource), None).name,
        "storefront"
    );

    let blank = TranslatorConfig::from_vars(vars(&[(TRACING_NAME_ENV, "  ")]));
    assert_eq!(blank.service_name(), None);
}

#[test]
fn from_env_reads_the_process_environment() {
    let process = |name: &str| std::env::var(name).ok();
    assert_eq!(
        TranslatorConfig::from_env(),
        TranslatorConfig::from_vars(process)
    );
    assert_eq!(
        TranslatorConfig::default().with_env_settings().ok(),
        TranslatorConfig::default().with_settings_from(process).ok()
    );
}

#[test]
fn settings_come_from_the_environment() {
    use xray_translate::{
        INDEX_ALL_ATTRIBUTES_ENV, INDEXED_ATTRIBUTES_ENV, LOG_GROUP_NAMES_ENV, METADATA_EXCLUDE_ENV,
    };
    let config = TranslatorConfig::default()
        .with_settings_from(vars(&[
            (INDEXED_ATTRIBUTES_ENV, "tenant, order.id,"),
            (INDEX_ALL_ATTRIBUTES_ENV, "true"),
            (LOG_GROUP_NAMES_ENV, "/ecs/a,/ecs/b"),
            (METADATA_EXCLUDE_ENV, "user.*"),
        ]))
        .unwrap();
    assert_eq!(config.annotation_keys(), ["tenant", "order.id"]);
    assert!(config.indexes_all_attributes());
    assert_eq!(config.log_groups(), ["/ecs/a", "/ecs/b"]);
    assert_eq!(config.metadata_exclude(), ["user.*"]);
    let err = TranslatorConfig::default()
        .with_settings_from(vars(&[(METADATA_EXCLUDE_ENV, "user.[")]))
        .unwrap_err();
    assert_eq!(err.pattern, "user.[");
    assert_eq!(
        TranslatorConfig::default()
            .with_settings_from(vars(&[]))
            .unwrap(),
        TranslatorConfig::default()
    );
}
