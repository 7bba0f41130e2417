//! Every document shape the model writes validates against the published schema.

use std::borrow::Cow;

use xray_model::limits::{annotation_key, limit_string, sanitize_name};
use xray_model::*;
use xray_testkit::assert_schema_valid;

fn s(v: &str) -> Option<Cow<'_, str>> {
    Some(Cow::Borrowed(v))
}

fn full_segment() -> Segment<'static> {
    let trace: TraceId = "1-5759e988-bd862e3fe1be46a994272793".parse().unwrap();
    let mut seg = Segment::new(
        sanitize_name("GET /users/{id}").into_owned(),
        SegmentId::from_u64(0x53995c3f42cd8ad8),
        trace,
        1_465_510_280.123_456,
    );
    seg.end_time = Some(1_465_510_280.654_321);
    seg.origin = s(origin::ECS_FARGATE);
    seg.user = s("alice");
    seg.resource_arn = s("arn:aws:ecs:us-east-1:123456789012:task/abc");
    seg.service = Some(Service {
        version: s("1.2.3"),
        runtime: s("rust"),
        runtime_version: s("1.95"),
    });
    seg.http = Some(Http {
        request: Some(HttpRequest {
            method: s("GET"),
            url: Some(limit_string(Cow::Owned(format!(
                "https://example.com/{}",
                "a".repeat(400)
            )))),
            user_agent: s("curl/8"),
            client_ip: s("203.0.113.9"),
            x_forwarded_for: true,
            traced: false,
        }),
        response: Some(HttpResponse {
            status: Some(500),
            content_length: Some(42),
        }),
    });
    seg.aws = Some(Box::new(Aws {
        account_id: s("123456789012"),
        ecs: Some(Ecs {
            container: s("web-1"),
            container_id: s("abc"),
            task_arn: s("arn:task"),
            task_family: s("web"),
            cluster_arn: s("arn:cluster"),
            launch_type: s("fargate"),
        }),
        ec2: Some(Ec2 {
            instance_id: s("i-0123"),
            availability_zone: s("us-east-1a"),
            instance_size: s("t3.micro"),
            ami_id: s("ami-1"),
        }),
        eks: Some(Eks {
            cluster_name: s("prod"),
            pod: s("web-abc"),
            container_id: s("c1"),
        }),
        elastic_beanstalk: Some(ElasticBeanstalk {
            environment_name: s("prod-env"),
            version_label: s("v7"),
            deployment_id: Some(7),
        }),
        lambda: Some(Lambda {
            function_name: s("fn"),
            function_version: s("$LATEST"),
        }),
        xray: Some(XraySdk {
            sdk: s("xray-bridge"),
            sdk_version: s("0.1.0"),
            ..Default::default()
        }),
        cloudwatch_logs: vec![CloudWatchLogs {
            log_group: s("/ecs/web"),
            arn: s("arn:aws:logs:us-east-1:123456789012:log-group:/ecs/web:*"),
        }],
        ..Default::default()
    }));
    seg.fault = true;
    seg.cause = Some(Cause::Details(CauseDetails {
        working_directory: s("/app"),
        paths: vec![Cow::Borrowed("/app/src")],
        exceptions: vec![Exception {
            id: SegmentId::from_u64(1),
            message: s("boom"),
            kind: s("std::io::Error"),
            remote: false,
            truncated: Some(2),
            skipped: None,
            cause: Some(SegmentId::from_u64(2)),
            stack: vec![StackFrame {
                path: s("src/main.rs"),
                line: Some(12),
                label: s("main"),
            }],
        }],
    }));
    seg.annotations.insert(
        annotation_key("tenant.id").into_owned(),
        AnnotationValue::Str("acme".into()),
    );
    seg.annotations.insert("retries", AnnotationValue::Int(3));
    seg.annotations.insert("ratio", AnnotationValue::Float(0.5));
    seg.annotations.insert("vip", AnnotationValue::Bool(true));
    seg.put_metadata("default", "note", AnyValue::Str("hello".into()));
    seg.put_metadata(
        "app",
        "nested",
        AnyValue::Object({
            let mut f = Fields::new();
            f.insert(
                "list",
                AnyValue::Array(vec![AnyValue::Int(1), AnyValue::Null]),
            );
            f
        }),
    );
    seg.links.push(Link {
        trace_id: trace,
        id: SegmentId::from_u64(9),
        attributes: Fields::new(),
    });

    let mut aws_call = Segment {
        name: "DynamoDB".into(),
        id: SegmentId::from_u64(3),
        start_time: 1_465_510_280.2,
        end_time: Some(1_465_510_280.3),
        namespace: s(document::NAMESPACE_AWS),
        aws: Some(Box::new(Aws {
            operation: s("PutItem"),
            region: s("us-east-1"),
            request_id: s("RID"),
            table_name: s("last-access"),
            retries: Some(1),
            ..Default::default()
        })),
        error: true,
        throttle: true,
        http: Some(Http {
            request: None,
            response: Some(HttpResponse {
                status: Some(429),
                content_length: None,
            }),
        }),
        ..Default::default()
    };
    aws_call.precursor_ids.push(SegmentId::from_u64(4));
    let sql = Segment {
        name: "orders@db.internal".into(),
        id: SegmentId::from_u64(4),
        start_time: 1_465_510_280.1,
        end_time: Some(1_465_510_280.15),
        namespace: s(document::NAMESPACE_REMOTE),
        sql: Some(Box::new(Sql {
            url: s("postgres://app@db.internal:5432/orders"),
            sanitized_query: s("SELECT * FROM orders WHERE id = $1"),
            database_type: s("PostgreSQL"),
            database_version: s("16"),
            driver_version: s("sqlx 0.8"),
            user: s("app"),
            preparation: s("statement"),
            connection_string: None,
        })),
        ..Default::default()
    };
    seg.subsegments = vec![sql, aws_call];
    seg
}

#[test]
fn a_document_with_every_block_is_schema_valid() {
    let seg = full_segment();
    assert_schema_valid(&seg.to_json());
    // And it reads back to the same value.
    let back: Segment<'_> = serde_json::from_str(&seg.to_json()).unwrap();
    assert_eq!(back, seg);
    assert_eq!(seg.clone().into_owned(), seg);
}

#[test]
fn in_progress_and_standalone_subsegments_are_schema_valid() {
    let mut seg = full_segment();
    seg.end_time = None;
    seg.in_progress = true;
    assert_schema_valid(&seg.to_json());
    let mut sub = seg.subsegments.remove(0);
    sub.detach(seg.trace_id.unwrap(), seg.id);
    assert_schema_valid(&sub.to_json());
}

#[test]
fn every_split_document_is_schema_valid() {
    let mut seg = full_segment();
    let template = seg.subsegments[1].clone();
    for i in 0..300u64 {
        let mut child = template.clone();
        child.id = SegmentId::from_u64(1000 + i);
        child.name = Cow::Owned(format!("DynamoDB {i} {}", "x".repeat(150)));
        seg.subsegments.push(child);
    }
    let (docs, report) = split_to_document_limit(seg);
    assert!(
        docs.len() > 1,
        "a 300-subsegment tree needs several documents"
    );
    assert!(report.detached > 0);
    for doc in &docs {
        let json = doc.to_json();
        assert!(json.len() <= limits::MAX_DOCUMENT_BYTES);
        assert_schema_valid(&json);
    }
}

#[test]
fn sanitised_names_always_pass_the_schema_pattern() {
    for name in [
        "GET /users/{id}",
        "fn(x) -> y",
        "emoji 🚀 rocket",
        "tab\tand\nnewline",
        "",
        "ʰmodifier ǅ titlecase Ⅻ roman ½ ² ߊ",
        &"x".repeat(500),
    ] {
        let mut seg = full_segment();
        seg.subsegments.clear();
        seg.name = sanitize_name(name).into_owned().into();
        assert_schema_valid(&seg.to_json());
    }
}
