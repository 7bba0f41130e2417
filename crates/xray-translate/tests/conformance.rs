//! The conformance table: every case is an input span and the exact values expected in
//! the document. Each case runs through the SDK source, an OTLP span built from the same
//! description, and opentelemetry-proto's own SDK->OTLP conversion; the documents must be
//! identical and valid against AWS's published schema.

mod support;

use opentelemetry::trace::{SpanKind, Status};
use serde_json::json;
use support::{END, Parent, START, V, case};
use xray_translate::TranslatorConfig;

const ID: &str = "53995c3f42cd8ad8";
const PARENT_ID: &str = "0102030405060708";
const TRACE_ID: &str = "1-6553f100-bd862e3fe1be46a994272793";
/// The id of the service segment made for a local-root Client or Producer span with id
/// [`ID`] (derived from it, so stable).
const SERVICE_ID: &str = "cf28e469cea5282e";

fn rust_backtrace() -> &'static str {
    "   0: checkout::db::load_cart\n             at ./src/db.rs:42:9\n   1: checkout::handler\n             at ./src/handler.rs:17:5\n   2: std::rt::lang_start\n"
}

fn stand_in_hex() -> String {
    xray_model::carry::HopState::stand_in_parent(xray_model::TraceId::from_u128(support::TRACE))
        .to_string()
}

fn cases() -> Vec<support::Case> {
    let long_url = format!("https://api.example.com/search?q={}", "x".repeat(300));
    let many: Vec<(String, i64)> = (0..55).map(|i| (format!("annotation.k{i}"), i)).collect();
    let mut too_many = case("more than 50 annotations: the rest stay in metadata");
    for (k, v) in &many {
        too_many = too_many.attr(k, *v);
    }
    let too_many = too_many
        .expect("/annotations/k0", json!(0))
        .expect("/annotations/k49", json!(49))
        .absent("/annotations/k50")
        .expect("/metadata/default/annotation.k50", json!(50))
        .expect("/metadata/default/annotation.k54", json!(54));

    vec![
        // ---- segment or subsegment -------------------------------------------------
        case("tracing's default Internal root span gives a segment")
            .parent(Parent::None)
            .named("handle_request")
            .expect("/name", json!("checkout"))
            .expect("/id", json!(ID))
            .expect("/trace_id", json!(TRACE_ID))
            .expect("/start_time", json!(START))
            .expect("/end_time", json!(END))
            .absent("/type")
            .absent("/parent_id")
            .absent("/namespace")
            .expect("/metadata/otel/span_name", json!("handle_request")),
        case("Internal child of a local parent gives a standalone subsegment")
            .named("load_cart")
            .expect("/name", json!("load_cart"))
            .expect("/type", json!("subsegment"))
            .expect("/trace_id", json!(TRACE_ID))
            .expect("/parent_id", json!(PARENT_ID))
            .absent("/namespace")
            .absent("/metadata/otel")
            .absent("/metadata/otel.resource"),
        case("Server span under a local parent is a segment with its parent")
            .kind(SpanKind::Server)
            .expect("/name", json!("checkout"))
            .absent("/type")
            .expect("/parent_id", json!(PARENT_ID)),
        case("Consumer span is a segment")
            .kind(SpanKind::Consumer)
            .named("orders process")
            .absent("/type")
            .expect("/name", json!("checkout"))
            .expect("/parent_id", json!(PARENT_ID)),
        case("remote parent gives a segment with the caller as parent")
            .parent(Parent::Remote)
            .absent("/type")
            .expect("/parent_id", json!(PARENT_ID)),
        case("Root-only header: the stand-in parent is dropped")
            .kind(SpanKind::Server)
            .parent(Parent::Remote)
            .state("xray", "np")
            .absent("/type")
            .absent("/parent_id")
            .expect("/trace_id", json!(TRACE_ID)),
        case("Root-only header with a deferred decision and other vendors' state")
            .kind(SpanKind::Server)
            .parent(Parent::Remote)
            .state("congo", "t61rcWkgMzE")
            .state("xray", "np;s?")
            .absent("/parent_id"),
        case("Root-only header recognised by the stand-in id alone")
            .kind(SpanKind::Server)
            .parent(Parent::Remote)
            .parent_id(xray_model::carry::HopState::stand_in_parent(
                xray_model::TraceId::from_u128(support::TRACE),
            ).to_u64())
            .absent("/parent_id"),
        case("the stand-in id under a local parent is kept")
            .parent_id(xray_model::carry::HopState::stand_in_parent(
                xray_model::TraceId::from_u128(support::TRACE),
            ).to_u64())
            .expect("/type", json!("subsegment"))
            .expect("/parent_id", json!(stand_in_hex())),
        case("remote parent with a real Parent keeps it even with other xray state")
            .kind(SpanKind::Server)
            .parent(Parent::Remote)
            .state("xray", "s?;f:Lineage:a87bd80c%3A0")
            .expect("/parent_id", json!(PARENT_ID)),
        case("no_parent on a local parent is ignored (only remote parents are stand-ins)")
            .state("xray", "np")
            .expect("/type", json!("subsegment"))
            .expect("/parent_id", json!(PARENT_ID)),
        case("Client span with no parent: a service segment holding the call, never dropped")
            .kind(SpanKind::Client)
            .parent(Parent::None)
            .attr("url.full", "https://api.example.com/x")
            .absent("/type")
            .absent("/namespace")
            .absent("/http")
            .expect("/name", json!("checkout"))
            .expect("/subsegments/0/http/request/url", json!("https://api.example.com/x")),
        case("in-progress span has no end_time")
            .running()
            .expect("/in_progress", json!(true))
            .absent("/end_time"),
        // ---- local-root dependency spans (the Collector's rule) -----------------------
        case("local-root Client span: service segment plus a remote subsegment for the call")
            .kind(SpanKind::Client)
            .parent(Parent::None)
            .named("GET")
            .attr("http.request.method", "GET")
            .attr("url.full", "https://inventory.internal/stock/7")
            .attr("http.response.status_code", 503i64)
            .attr("job.id", "nightly-7")
            .expect("/name", json!("checkout"))
            .expect("/id", json!(SERVICE_ID))
            .expect("/trace_id", json!(TRACE_ID))
            .expect("/start_time", json!(START))
            .expect("/end_time", json!(END))
            .absent("/type")
            .absent("/parent_id")
            .absent("/http")
            .absent("/fault")
            .absent("/annotations")
            .expect("/metadata", json!({"otel.resource": {"service.name": "checkout"}}))
            .expect("/subsegments/0/id", json!(ID))
            .expect("/subsegments/0/name", json!("inventory.internal"))
            .expect("/subsegments/0/namespace", json!("remote"))
            .expect("/subsegments/0/http/request/method", json!("GET"))
            .expect("/subsegments/0/http/response/status", json!(503))
            .expect("/subsegments/0/fault", json!(true))
            .expect("/subsegments/0/metadata/default", json!({"job.id": "nightly-7"}))
            .expect("/subsegments/0/metadata/otel/span_name", json!("GET"))
            .absent("/subsegments/0/type")
            .absent("/subsegments/0/trace_id")
            .absent("/subsegments/0/parent_id")
            .absent("/subsegments/1"),
        case("local-root Producer under a remote parent: the caller parents the service segment")
            .kind(SpanKind::Producer)
            .parent(Parent::Remote)
            .attr("rpc.system", "aws-api")
            .attr("rpc.service", "SQS")
            .attr("rpc.method", "SendMessage")
            .attr("aws.queue.url", "https://sqs.eu-west-1.amazonaws.com/123456789012/orders")
            .attr("http.response.status_code", 429i64)
            .expect("/parent_id", json!(PARENT_ID))
            .expect("/name", json!("checkout"))
            .absent("/error")
            .absent("/throttle")
            .absent("/aws")
            .expect("/subsegments/0/name", json!("SQS"))
            .expect("/subsegments/0/namespace", json!("aws"))
            .expect("/subsegments/0/aws", json!({"operation": "SendMessage", "queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/orders"}))
            .expect("/subsegments/0/error", json!(true))
            .expect("/subsegments/0/throttle", json!(true))
            .absent("/subsegments/0/parent_id"),
        case("local-root database call: the sql block and cause sit on the subsegment")
            .kind(SpanKind::Client)
            .parent(Parent::None)
            .attr("db.system", "postgresql")
            .attr("db.name", "shop")
            .attr("server.address", "db.internal")
            .attr("db.statement", "DELETE FROM carts WHERE age > 30")
            .error("deadlock detected")
            .expect("/subsegments/0/name", json!("shop@db.internal"))
            .expect("/subsegments/0/sql/sanitized_query", json!("DELETE FROM carts WHERE age > 30"))
            .expect("/subsegments/0/fault", json!(true))
            .expect("/subsegments/0/cause/exceptions/0/message", json!("deadlock detected"))
            .expect("/subsegments/0/cause/exceptions/0/remote", json!(true))
            .absent("/sql")
            .absent("/cause")
            .absent("/fault"),
        case("local-root Client span: the resource's origin and blocks go on the service segment")
            .kind(SpanKind::Client)
            .parent(Parent::None)
            .res("cloud.provider", "aws")
            .res("cloud.platform", "aws_ec2")
            .res("host.id", "i-0123")
            .res("cloud.account.id", "123456789012")
            .attr("server.address", "partner.example.com")
            .attr("enduser.id", "u-1")
            .attr("aws.region", "eu-west-1")
            .expect("/origin", json!("AWS::EC2::Instance"))
            .expect("/aws", json!({"account_id": "123456789012", "ec2": {"instance_id": "i-0123"}}))
            .expect("/user", json!("u-1"))
            .expect("/subsegments/0/aws", json!({"region": "eu-west-1"}))
            .absent("/subsegments/0/origin")
            .absent("/subsegments/0/user")
            .absent("/subsegments/0/metadata/otel.resource"),
        case("local-root Client span with a Root-only header: the service segment has no parent")
            .kind(SpanKind::Client)
            .parent(Parent::Remote)
            .state("xray", "np")
            .attr("server.address", "partner.example.com")
            .absent("/parent_id")
            .expect("/subsegments/0/name", json!("partner.example.com")),
        case("local-root Client span: links stay with the call")
            .kind(SpanKind::Client)
            .parent(Parent::None)
            .attr("server.address", "partner.example.com")
            .link(0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, &[])
            .absent("/links")
            .expect("/subsegments/0/links/0/id", json!("00f067aa0ba902b7")),
        case("local-root Consumer span stays one segment")
            .kind(SpanKind::Consumer)
            .parent(Parent::None)
            .attr("messaging.system", "aws_sqs")
            .expect("/name", json!("checkout"))
            .expect("/id", json!(ID))
            .absent("/subsegments"),
        case("in-progress local-root Client span: both documents in progress")
            .kind(SpanKind::Client)
            .parent(Parent::None)
            .running()
            .expect("/in_progress", json!(true))
            .expect("/subsegments/0/in_progress", json!(true))
            .absent("/end_time"),
        // ---- Application Signals ---------------------------------------------------
        case("aws.local.service names the segment ahead of service.name")
            .kind(SpanKind::Server)
            .attr("aws.local.service", "orders-api")
            .attr("aws.local.operation", "GET /orders")
            .expect("/name", json!("orders-api"))
            .expect("/metadata/default", json!({"aws.local.operation": "GET /orders"})),
        case("the configured service name wins over aws.local.service")
            .kind(SpanKind::Server)
            .config(TranslatorConfig::default().with_service_name("storefront"))
            .attr("aws.local.service", "orders-api")
            .expect("/name", json!("storefront"))
            .expect("/metadata/default/aws.local.service", json!("orders-api")),
        case("aws.local.service on a subsegment stays metadata")
            .attr("aws.local.service", "orders-api")
            .expect("/name", json!("work"))
            .expect("/metadata/default/aws.local.service", json!("orders-api")),
        case("aws.remote.service names the callee ahead of peer.service and server.address")
            .kind(SpanKind::Client)
            .attr("peer.service", "payments-legacy")
            .attr("server.address", "10.0.3.4")
            .attr("aws.remote.service", "payments")
            .attr("aws.remote.operation", "POST /charge")
            .expect("/name", json!("payments"))
            .expect("/metadata/default", json!({"peer.service": "payments-legacy", "server.address": "10.0.3.4", "aws.remote.operation": "POST /charge"})),
        case("aws.span.kind LOCAL_ROOT under a local parent makes a segment")
            .attr("aws.span.kind", "LOCAL_ROOT")
            .attr("aws.local.service", "batch")
            .expect("/name", json!("batch"))
            .absent("/type")
            .expect("/parent_id", json!(PARENT_ID))
            .expect("/metadata/default", json!({"aws.span.kind": "LOCAL_ROOT"})),
        case("aws.span.kind LOCAL_ROOT on a Client span: service segment and call, both named by Application Signals")
            .kind(SpanKind::Client)
            .attr("aws.span.kind", "LOCAL_ROOT")
            .attr("aws.local.service", "poller")
            .attr("aws.remote.service", "inventory")
            .attr("aws.remote.operation", "GET /stock")
            .expect("/name", json!("poller"))
            .expect("/parent_id", json!(PARENT_ID))
            .absent("/type")
            .expect("/subsegments/0/name", json!("inventory"))
            .expect("/subsegments/0/namespace", json!("remote"))
            .expect("/subsegments/0/metadata/default", json!({"aws.span.kind": "LOCAL_ROOT", "aws.remote.operation": "GET /stock"})),
        case("aws.span.kind CONSUMER under a local parent is a remote subsegment")
            .kind(SpanKind::Consumer)
            .attr("aws.span.kind", "CONSUMER")
            .attr("aws.remote.service", "orders-queue")
            .expect("/type", json!("subsegment"))
            .expect("/name", json!("orders-queue"))
            .expect("/namespace", json!("remote")),
        case("aws.span.kind SERVER makes a segment of an Internal span")
            .attr("aws.span.kind", "SERVER")
            .absent("/type")
            .expect("/name", json!("checkout")),
        case("aws.span.kind CLIENT on a root span: still the service segment and its call")
            .kind(SpanKind::Client)
            .parent(Parent::None)
            .attr("aws.span.kind", "CLIENT")
            .attr("server.address", "partner.example.com")
            .expect("/name", json!("checkout"))
            .expect("/subsegments/0/name", json!("partner.example.com")),
        // ---- Lambda ----------------------------------------------------------------
        case("Lambda: a span under the function segment is a standalone subsegment of it")
            .parent(Parent::Remote)
            .named("greeter")
            .res("cloud.provider", "aws")
            .res("cloud.platform", "aws_lambda")
            .res("faas.name", "greeter")
            .attr("faas.invocation_id", "req-1")
            .expect("/type", json!("subsegment"))
            .expect("/parent_id", json!(PARENT_ID))
            .expect("/trace_id", json!(TRACE_ID))
            .expect("/name", json!("greeter"))
            .absent("/origin")
            .absent("/aws")
            .expect("/metadata", json!({"default": {"faas.invocation_id": "req-1"}})),
        case("Lambda: a Server span under the function segment is a subsegment too")
            .kind(SpanKind::Server)
            .parent(Parent::Remote)
            .named("GET /items")
            .res("cloud.platform", "aws_lambda")
            .expect("/type", json!("subsegment"))
            .expect("/name", json!("GET /items")),
        case("Lambda: a local-root Client span is a remote subsegment of the function segment")
            .kind(SpanKind::Client)
            .parent(Parent::Remote)
            .res("cloud.platform", "aws_lambda")
            .attr("server.address", "partner.example.com")
            .expect("/type", json!("subsegment"))
            .expect("/parent_id", json!(PARENT_ID))
            .expect("/namespace", json!("remote"))
            .expect("/name", json!("partner.example.com")),
        case("Lambda: a Root-only header gives a segment (no function segment to join)")
            .parent(Parent::Remote)
            .state("xray", "np")
            .res("cloud.platform", "aws_lambda")
            .absent("/type")
            .absent("/parent_id")
            .expect("/origin", json!("AWS::Lambda::Function")),
        case("faas.coldstart is the ColdStart annotation")
            .attr("faas.coldstart", true)
            .expect("/annotations", json!({"ColdStart": true}))
            .absent("/metadata/default"),
        // ---- settings: excluded attributes, log groups -------------------------------
        case("metadata_exclude: matching attributes never leave, wherever they are")
            .kind(SpanKind::Server)
            .config(
                TranslatorConfig::default()
                    .with_metadata_exclude(["user.*", "*.email", "enduser.id", "annotation.secret", "exception.message"])
                    .unwrap(),
            )
            .attr("user.name", "Ada")
            .attr("contact.email", "ada@example.com")
            .attr("enduser.id", "u-42")
            .attr("annotation.secret", "s")
            .attr("annotation.tier", "gold")
            .attr("order.id", "o-1")
            .res("user.home", "/home/ada")
            .event("cache miss", &[("user.id", "u-42".into()), ("key", "k".into())])
            .event("exception", &[("exception.type", "E".into()), ("exception.message", "ada@example.com".into())])
            .link(0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, &[("user.role", "admin".into())])
            .absent("/user")
            .expect("/annotations", json!({"tier": "gold"}))
            .expect("/metadata/default", json!({"order.id": "o-1"}))
            .expect("/metadata/otel.resource", json!({"service.name": "checkout"}))
            .expect("/metadata/otel/events/0/attributes", json!({"key": "k"}))
            .expect("/cause/exceptions/0", json!({"id": "bf2eca5ba633b927", "type": "E"}))
            .absent("/links/0/attributes"),
        case("metadata_exclude also hides the attributes the rules read")
            .kind(SpanKind::Client)
            .config(TranslatorConfig::default().with_metadata_exclude(["url.*", "server.*"]).unwrap())
            .attr("url.full", "https://api.example.com/users/ada")
            .attr("server.address", "api.example.com")
            .attr("http.request.method", "GET")
            .expect("/name", json!("work"))
            .expect("/http", json!({"request": {"method": "GET", "traced": true}}))
            .absent("/metadata/default"),
        case("the resource's log group names win over configured ones, as in the Collector")
            .kind(SpanKind::Server)
            .config(TranslatorConfig::default().with_log_groups(["/configured"]))
            .res("aws.log.group.names", ["/from/resource"])
            .expect("/aws/cloudwatch_logs", json!([{"log_group": "/from/resource"}])),
        case("indexed attributes that are missing or not indexable are skipped")
            .config(TranslatorConfig::default().with_annotation_keys(["tenant", "absent", "tags"]))
            .attr("tenant", "t-9")
            .attr("tags", ["a", "b"])
            .expect("/annotations", json!({"tenant": "t-9"}))
            .expect("/metadata/default", json!({"tags": ["a", "b"]})),
        // ---- times -------------------------------------------------------------------
        case("an end time before the start is set to the start and kept in metadata")
            .ends_at(support::START_NANOS - 5_000_000)
            .expect("/start_time", json!(START))
            .expect("/end_time", json!(START))
            .expect("/metadata/otel/end_time_before_start", json!(1_700_000_000.118_456)),
        // ---- the behaviours the Collector's translator tests check (segment_test.go,
        // cause_test.go, aws_test.go, http_test.go, sql_test.go), in our own cases; where we
        // decide differently the case says so and crates/xray-translate/README.md says why.
        case("Collector: legacy aws.service marks an AWS call, aws.operation beats rpc.method")
            .kind(SpanKind::Client)
            .named("AmazonDynamoDB.getItem")
            .attr("aws.service", "DynamoDB")
            .attr("rpc.method", "NotTheOperation")
            .attr("aws.operation", "GetItem")
            .attr("aws.table_name", "otel-dev-Testing")
            .expect("/name", json!("DynamoDB"))
            .expect("/namespace", json!("aws"))
            .expect("/aws/operation", json!("GetItem"))
            .expect("/aws/table_name", json!("otel-dev-Testing"))
            .expect("/metadata/default/rpc.method", json!("NotTheOperation")),
        case("Collector: peer.service names an AWS call over its service")
            .kind(SpanKind::Client)
            .attr("rpc.system", "aws-api")
            .attr("rpc.service", "DynamoDB")
            .attr("peer.service", "cats-table")
            .expect("/name", json!("cats-table"))
            .expect("/namespace", json!("aws")),
        case("Collector: server 500 with an Error status: fault, the description is the cause")
            .kind(SpanKind::Server)
            .attr("http.method", "POST")
            .attr("http.url", "https://api.example.org/api/locations")
            .attr("http.status_code", 500i64)
            .attr("http.status_text", "java.lang.NullPointerException")
            .error("internal error")
            .expect("/fault", json!(true))
            .absent("/error")
            .expect("/cause/exceptions/0/message", json!("internal error"))
            .expect("/metadata/default/http.status_text", json!("java.lang.NullPointerException")),
        case("Collector: 499 with an Error status is an error, not a fault")
            .kind(SpanKind::Server)
            .attr("http.status_code", 499i64)
            .attr("http.status_text", "client went away")
            .error("")
            .expect("/error", json!(true))
            .absent("/fault")
            .expect("/cause/exceptions/0/message", json!("client went away")),
        case("Collector differs: HTTP 500 with an Unset status is still a fault here")
            .kind(SpanKind::Server)
            .attr("http.status_code", 500i64)
            .attr("http.status_text", "boom")
            .expect("/fault", json!(true))
            .absent("/cause")
            .expect("/metadata/default/http.status_text", json!("boom")),
        case("Collector: MySQL client span: db@host name, sql block, no http, other attributes kept")
            .kind(SpanKind::Client)
            .named("call update_user_preference( ?, ?, ? )")
            .attr("db.system", "mysql")
            .attr("db.name", "customers")
            .attr("db.statement", "call update_user_preference( ?, ?, ? )")
            .attr("db.user", "userprefsvc")
            .attr("db.connection_string", "mysql://db.dev.example.com:3306")
            .attr("net.peer.name", "db.dev.example.com")
            .attr("net.peer.port", "3306")
            .attr("enterprise.app.id", "25F2E73B")
            .expect("/name", json!("customers@db.dev.example.com"))
            .expect("/namespace", json!("remote"))
            .expect(
                "/sql",
                json!({"url": "mysql://db.dev.example.com:3306", "sanitized_query": "call update_user_preference( ?, ?, ? )", "database_type": "mysql", "user": "userprefsvc"}),
            )
            .absent("/http")
            .absent("/cause")
            .absent("/annotations")
            .expect("/metadata/default", json!({"net.peer.port": "3306", "enterprise.app.id": "25F2E73B"})),
        case("Collector differs: the network peer names an HTTP call ahead of http.host")
            .kind(SpanKind::Client)
            .attr("http.method", "GET")
            .attr("http.scheme", "https")
            .attr("http.host", "foo.com")
            .attr("net.peer.name", "bar.com")
            .attr("http.target", "/")
            .expect("/name", json!("bar.com")),
        case("Collector differs: the network peer names a gRPC call ahead of rpc.service")
            .kind(SpanKind::Client)
            .attr("rpc.system", "grpc")
            .attr("rpc.service", "com.foo.AnimalService")
            .attr("net.peer.name", "bar.com")
            .expect("/name", json!("bar.com"))
            .expect("/metadata/default/rpc.service", json!("com.foo.AnimalService")),
        case("Collector: invalid characters leave the name; none left gives a fallback")
            .kind(SpanKind::Client)
            .attr("peer.service", "<subDomain>.example.com")
            .expect("/name", json!("subDomain.example.com")),
        case("Collector: indexed attributes with invalid key characters; missing ones ignored")
            .kind(SpanKind::Server)
            .config(TranslatorConfig::default().with_annotation_keys(["attr1@1", "not_exist"]))
            .attr("attr1@1", "val1")
            .attr("attr2@2", "val2")
            .expect("/annotations", json!({"attr1_1": "val1"}))
            .expect("/metadata/default", json!({"attr2@2": "val2"})),
        case("Collector: index_all_attributes with indexed attributes too")
            .kind(SpanKind::Server)
            .config(TranslatorConfig::default().with_annotation_keys(["attr1@1"]).index_all_attributes(true))
            .attr("attr1@1", "val1")
            .attr("attr2@2", "val2")
            .expect("/annotations", json!({"attr1_1": "val1", "attr2_2": "val2"}))
            .absent("/metadata/default"),
        case("Collector differs: resource attributes stay in otel.resource, not indexable")
            .kind(SpanKind::Server)
            .config(TranslatorConfig::default().with_annotation_keys(["string.key", "otel.resource.string.key"]))
            .res("string.key", "string")
            .absent("/annotations")
            .expect("/metadata/otel.resource/string.key", json!("string")),
        case("Collector: ECS on EC2 with a host: both the ecs and the ec2 blocks")
            .kind(SpanKind::Server)
            .res("cloud.provider", "aws")
            .res("cloud.platform", "aws_ecs")
            .res("host.id", "i-00f7c0bcb26da2a99")
            .res("container.name", "signup_aggregator-x82ufje83")
            .expect("/origin", json!("AWS::ECS::Container"))
            .expect("/aws/ec2/instance_id", json!("i-00f7c0bcb26da2a99"))
            .expect("/aws/ecs/container", json!("signup_aggregator-x82ufje83")),
        case("Collector: App Runner origin")
            .kind(SpanKind::Server)
            .res("cloud.provider", "aws")
            .res("cloud.platform", "aws_app_runner")
            .expect("/origin", json!("AWS::AppRunner::Service")),
        case("Collector: a cloud provider alone gives no origin")
            .kind(SpanKind::Server)
            .res("cloud.provider", "aws")
            .absent("/origin"),
        case("Collector: the infrastructure's platform wins for the origin (EC2 with a k8s cluster name)")
            .kind(SpanKind::Server)
            .res("cloud.provider", "aws")
            .res("cloud.platform", "aws_ec2")
            .res("k8s.cluster.name", "cluster-123")
            .res("host.id", "instance-123")
            .expect("/origin", json!("AWS::EC2::Instance")),
        case("Collector: SDK name and auto-instrumentation from the resource")
            .kind(SpanKind::Server)
            .res("telemetry.sdk.name", "opentelemetry")
            .res("telemetry.sdk.language", "java")
            .res("telemetry.sdk.version", "1.2.3")
            .res("telemetry.auto.version", "3.4.5")
            .expect("/aws/xray", json!({"sdk": "opentelemetry for java", "sdk_version": "1.2.3", "auto_instrumentation": true})),
        case("Collector: SQS queue URL from aws.queue_url, region and account of the call")
            .kind(SpanKind::Client)
            .attr("aws.operation", "SendMessage")
            .attr("aws.account_id", "987654321")
            .attr("aws.region", "us-east-2")
            .attr("aws.queue_url", "https://sqs.use1.amazonaws.com/Meltdown-Alerts")
            .attr("employee.id", "XB477")
            .expect("/aws", json!({"operation": "SendMessage", "region": "us-east-2", "account_id": "987654321", "queue_url": "https://sqs.use1.amazonaws.com/Meltdown-Alerts"}))
            .expect("/metadata/default", json!({"employee.id": "XB477"})),
        case("Collector differs: rpc.method is the operation only of AWS calls")
            .kind(SpanKind::Client)
            .attr("rpc.method", "ListBuckets")
            .absent("/aws")
            .expect("/metadata/default/rpc.method", json!("ListBuckets")),
        case("Collector: two exception events, the first with a Java cause chain")
            .kind(SpanKind::Server)
            .res("telemetry.sdk.language", "java")
            .error("this is a test")
            .event(
                "exception",
                &[
                    ("exception.type", "java.lang.IllegalStateException".into()),
                    ("exception.message", "bad state".into()),
                    (
                        "exception.stacktrace",
                        "java.lang.IllegalStateException: state is not legal\n\tat io.opentelemetry.sdk.trace.RecordEventsReadableSpanTest.recordException(RecordEventsReadableSpanTest.java:626)\n\tat java.base/jdk.internal.reflect.NativeMethodAccessorImpl.invoke0(Native Method)\n\tat java.base/jdk.internal.reflect.NativeMethodAccessorImpl.invoke(NativeMethodAccessorImpl.java:62)\nCaused by: java.lang.IllegalArgumentException: bad argument".into(),
                    ),
                ],
            )
            .event("exception", &[("exception.type", "EmptyError".into())])
            .expect("/fault", json!(true))
            .expect("/cause/exceptions/0/type", json!("java.lang.IllegalStateException"))
            .expect("/cause/exceptions/0/message", json!("bad state"))
            .expect("/cause/exceptions/0/cause", json!("fe24699a191fa2bb"))
            .expect("/cause/exceptions/0/stack/1", json!({"path": "Native Method", "label": "jdk.internal.reflect.NativeMethodAccessorImpl.invoke0"}))
            .expect("/cause/exceptions/1", json!({"id": "fe24699a191fa2bb", "type": "java.lang.IllegalArgumentException", "message": "bad argument"}))
            .expect("/cause/exceptions/2/type", json!("EmptyError"))
            .absent("/cause/exceptions/2/message")
            .absent("/cause/exceptions/3"),
        case("Collector: .NET stack with tab indentation, async markers and malformed lines")
            .res("telemetry.sdk.language", "dotnet")
            .event(
                "exception",
                &[(
                    "exception.stacktrace",
                    "System.FormatException: Input string was not in a correct format.\n\tat System.Number.ThrowOverflowOrFormatException(ParsingStatus status, TypeCode type)\n\tat MyNamespace.IntParser.Parse(String s) in C:\\apps\\MyNamespace\\IntParser.cs:line 11\n\t--- End of stack trace from previous location where exception was thrown ---\n\tat Microsoft.AspNetCore.Diagnostics.DeveloperExceptionPageMiddleware.Invoke(HttpContext context malformed\n\tat System.Net.Http.HttpConnectionPool.ConnectAsync(HttpRequestMessage request) non-malformed".into(),
                )],
            )
            .expect(
                "/cause/exceptions/0/stack",
                json!([
                    {"label": "System.Number.ThrowOverflowOrFormatException(ParsingStatus status, TypeCode type)"},
                    {"path": "C:\\apps\\MyNamespace\\IntParser.cs", "line": 11, "label": "MyNamespace.IntParser.Parse(String s)"},
                    {"label": "System.Net.Http.HttpConnectionPool.ConnectAsync(HttpRequestMessage request)"}
                ]),
            ),
        case("Collector: malformed JavaScript frames are left out")
            .res("telemetry.sdk.language", "nodejs")
            .event(
                "exception",
                &[(
                    "exception.stacktrace",
                    "TypeError: Cannot read property 'value' of null\n    at speedy (/home/gbusey/file.js)\n    at makeFaster (/home/gbusey/file.js:5:3)malformed123\n    at Object.<anonymous> (/home/gbusey/file.js:10".into(),
                )],
            )
            .expect("/cause/exceptions/0/stack", json!([{"path": "/home/gbusey/file.js", "label": "speedy"}])),
        case("Collector: PHP stack with two causes, malformed frames left out")
            .res("telemetry.sdk.language", "php")
            .event(
                "exception",
                &[
                    ("exception.type", "Exception".into()),
                    ("exception.message", "Thrown from class C".into()),
                    (
                        "exception.stacktrace",
                        "Exception: Thrown from class C\n\tat C.exc(test.php:74)\n\tat fail(test.php:81 malformed\n\tat main(test.php:89)\nCaused by: Exception: Thrown from class B\n\tat B.exc(test.php:59)\n\t... 3 more\nCaused by: Exception: Thrown from class A\n\tat A.exc(test.php:48)\n\t... 4 more".into(),
                    ),
                ],
            )
            .expect(
                "/cause/exceptions/0/stack",
                json!([{"path": "test.php", "line": 74, "label": "C.exc"}, {"path": "test.php", "line": 89, "label": "main"}]),
            )
            .expect("/cause/exceptions/1/message", json!("Thrown from class B"))
            .expect("/cause/exceptions/2/message", json!("Thrown from class A"))
            .expect("/cause/exceptions/2/stack", json!([{"path": "test.php", "line": 48, "label": "A.exc"}])),
        case("Collector: HTTP client URL from a peer IP and port")
            .kind(SpanKind::Client)
            .attr("http.method", "GET")
            .attr("http.scheme", "http")
            .attr("net.peer.ip", "10.8.17.36")
            .attr("net.peer.port", "8080")
            .attr("http.target", "/users/junit")
            .expect("/http/request/url", json!("http://10.8.17.36:8080/users/junit"))
            .absent("/http/request/client_ip"),
        case("Collector differs: an IPv6 peer is bracketed in the URL")
            .kind(SpanKind::Client)
            .attr("http.method", "GET")
            .attr("http.scheme", "https")
            .attr("net.peer.ip", "2001:db8:85a3::8a2e:370:7334")
            .attr("net.peer.port", "443")
            .attr("http.target", "/users/junit")
            .expect("/http/request/url", json!("https://[2001:db8:85a3::8a2e:370:7334]/users/junit")),
        case("Collector: server URL from scheme, server name, port and target")
            .kind(SpanKind::Server)
            .attr("http.method", "GET")
            .attr("http.scheme", "https")
            .attr("http.server_name", "api.example.com")
            .attr("net.host.port", 443i64)
            .attr("http.target", "/users/junit")
            .attr("http.client_ip", "192.168.15.32")
            .expect("/http/request/url", json!("https://api.example.com/users/junit"))
            .expect("/http/request/client_ip", json!("192.168.15.32")),
        case("Collector: SQL without a connection string: no made-up URL")
            .kind(SpanKind::Client)
            .attr("db.system", "postgresql")
            .attr("db.name", "customers")
            .attr("db.statement", "SELECT * FROM user WHERE user_id = ?")
            .attr("db.connection_string", "")
            .attr("net.peer.name", "db.example.com")
            .expect("/sql", json!({"sanitized_query": "SELECT * FROM user WHERE user_id = ?", "database_type": "postgresql"}))
            .expect("/name", json!("customers@db.example.com")),
        // ---- names -----------------------------------------------------------------
        case("GET /users/{id} is sanitised, never rejected")
            .named("GET /users/{id}")
            .expect("/name", json!("GET /users/id"))
            .expect("/metadata/otel/span_name", json!("GET /users/{id}")),
        case("names over 200 characters are cut to 200")
            .named("n".repeat(260))
            .expect("/name", json!("n".repeat(200))),
        case("a name with no valid character falls back")
            .named("{}()")
            .expect("/name", json!("unknown")),
        case("AWS_XRAY_TRACING_NAME-style override names segments")
            .kind(SpanKind::Server)
            .config(TranslatorConfig::default().with_service_name("storefront"))
            .expect("/name", json!("storefront")),
        case("the override does not rename subsegments")
            .config(TranslatorConfig::default().with_service_name("storefront"))
            .named("child")
            .expect("/name", json!("child")),
        case("segment without service.name is named after the span")
            .kind(SpanKind::Server)
            .no_resource()
            .named("GET /health")
            .expect("/name", json!("GET /health"))
            .absent("/metadata"),
        case("random W3C trace id is kept as it is")
            .trace(0x4bf92f3577b34da6a3ce929d0e0e4736)
            .parent(Parent::None)
            .expect("/trace_id", json!("1-4bf92f35-77b34da6a3ce929d0e0e4736")),
        // ---- HTTP ------------------------------------------------------------------
        case("old HTTP server conventions, URL rebuilt from host and target")
            .kind(SpanKind::Server)
            .parent(Parent::None)
            .attr("http.method", "POST")
            .attr("http.scheme", "https")
            .attr("http.host", "shop.example.com:8443")
            .attr("http.target", "/cart?x=1")
            .attr("http.status_code", 201i64)
            .attr("http.user_agent", "curl/8.5")
            .attr("http.client_ip", "203.0.113.9")
            .expect(
                "/http",
                json!({
                    "request": {
                        "method": "POST",
                        "url": "https://shop.example.com:8443/cart?x=1",
                        "user_agent": "curl/8.5",
                        "client_ip": "203.0.113.9",
                        "x_forwarded_for": true
                    },
                    "response": {"status": 201}
                }),
            )
            .absent("/metadata/default")
            .absent("/fault")
            .absent("/error"),
        case("new HTTP server conventions, URL rebuilt, default port dropped")
            .kind(SpanKind::Server)
            .attr("http.request.method", "GET")
            .attr("url.scheme", "https")
            .attr("server.address", "api.example.com")
            .attr("server.port", 443i64)
            .attr("url.path", "/items")
            .attr("url.query", "page=2")
            .attr("http.response.status_code", 200i64)
            .attr("user_agent.original", "Mozilla/5.0")
            .attr("client.address", "198.51.100.7")
            .attr("network.peer.address", "10.0.0.12")
            .attr("http.route", "/items")
            .expect(
                "/http/request",
                json!({
                    "method": "GET",
                    "url": "https://api.example.com/items?page=2",
                    "user_agent": "Mozilla/5.0",
                    "client_ip": "198.51.100.7",
                    "x_forwarded_for": true
                }),
            )
            .expect("/metadata/default", json!({"http.route": "/items", "network.peer.address": "10.0.0.12"})),
        case("new HTTP conventions with a non-default port and no forwarding")
            .kind(SpanKind::Server)
            .attr("http.request.method", "GET")
            .attr("server.address", "backend")
            .attr("server.port", 8080i64)
            .attr("url.path", "/api")
            .attr("client.address", "10.1.1.1")
            .expect("/http/request/url", json!("http://backend:8080/api"))
            .expect("/http/request/client_ip", json!("10.1.1.1"))
            .absent("/http/request/x_forwarded_for"),
        case("server span with a path only")
            .kind(SpanKind::Server)
            .attr("http.request.method", "GET")
            .attr("url.path", "/health")
            .expect("/http/request/url", json!("/health")),
        case("socket peer address is the client ip of a server span")
            .kind(SpanKind::Server)
            .attr("http.request.method", "GET")
            .attr("network.peer.address", "10.0.0.12")
            .expect("/http/request/client_ip", json!("10.0.0.12"))
            .absent("/http/request/x_forwarded_for"),
        case("URL over 250 characters is cut, the full URL kept in metadata")
            .kind(SpanKind::Server)
            .attr("http.request.method", "GET")
            .attr("url.full", long_url.as_str())
            .expect("/http/request/url", json!(long_url[..250]))
            .expect("/metadata/default/url.full", json!(long_url)),
        case("credentials in a URL are removed")
            .kind(SpanKind::Client)
            .attr("http.request.method", "GET")
            .attr("url.full", "https://bob:hunter2@files.example.com/a")
            .expect("/http/request/url", json!("https://bob@files.example.com/a"))
            .absent("/metadata/default/url.full"),
        case("HTTP client span: remote, traced, named after the host, no sql block")
            .kind(SpanKind::Client)
            .named("GET")
            .attr("http.request.method", "GET")
            .attr("url.full", "https://inventory.internal/stock/7")
            .attr("server.address", "inventory.internal")
            .attr("http.response.status_code", 200i64)
            .expect("/name", json!("inventory.internal"))
            .expect("/namespace", json!("remote"))
            .expect("/http/request/traced", json!(true))
            .expect("/http/request/url", json!("https://inventory.internal/stock/7"))
            .expect("/type", json!("subsegment"))
            .absent("/sql")
            .absent("/aws")
            .absent("/metadata/default"),
        case("HTTP client with peer.service is named after it")
            .kind(SpanKind::Client)
            .attr("peer.service", "payments")
            .attr("server.address", "10.0.3.4")
            .attr("http.request.method", "POST")
            .expect("/name", json!("payments"))
            .expect("/http/request/url", json!("http://10.0.3.4/"))
            .absent("/metadata/default"),
        case("HTTP client with only a URL is named after its host")
            .kind(SpanKind::Client)
            .attr("http.method", "GET")
            .attr("http.url", "http://[::1]:9000/ping")
            .expect("/name", json!("::1"))
            .expect("/http/request/url", json!("http://[::1]:9000/ping")),
        case("old HTTP client conventions: net.peer.name names it, URL rebuilt")
            .kind(SpanKind::Client)
            .attr("http.method", "GET")
            .attr("net.peer.name", "legacy.internal")
            .attr("net.peer.port", 8081i64)
            .attr("http.target", "/v1/x")
            .attr("http.status_code", 204i64)
            .expect("/name", json!("legacy.internal"))
            .expect("/http/request/url", json!("http://legacy.internal:8081/v1/x"))
            .expect("/http/response/status", json!(204)),
        case("response size from either convention")
            .kind(SpanKind::Server)
            .attr("http.request.method", "GET")
            .attr("http.response.body.size", 1234i64)
            .expect("/http/response/content_length", json!(1234)),
        case("status code written as a string still counts")
            .kind(SpanKind::Server)
            .attr("http.status_code", "503")
            .expect("/http/response/status", json!(503))
            .expect("/fault", json!(true)),
        case("impossible status code stays in metadata, no flags")
            .kind(SpanKind::Server)
            .attr("http.response.status_code", 99_999i64)
            .absent("/http/response")
            .absent("/fault")
            .expect("/metadata/default/http.response.status_code", json!(99_999)),
        // ---- errors, faults, throttles, causes -------------------------------------
        case("HTTP 500 with Unset status is a fault")
            .kind(SpanKind::Server)
            .attr("http.response.status_code", 500i64)
            .expect("/fault", json!(true))
            .absent("/error")
            .absent("/cause"),
        case("HTTP 429 is a throttle and an error")
            .kind(SpanKind::Client)
            .attr("http.response.status_code", 429i64)
            .expect("/error", json!(true))
            .expect("/throttle", json!(true))
            .absent("/fault"),
        case("HTTP 404 is an error")
            .kind(SpanKind::Server)
            .attr("http.status_code", 404i64)
            .expect("/error", json!(true))
            .absent("/fault")
            .absent("/throttle"),
        case("HTTP 4xx with Error status is an error, not a fault")
            .kind(SpanKind::Server)
            .attr("http.response.status_code", 403i64)
            .error("forbidden")
            .expect("/error", json!(true))
            .absent("/fault")
            .expect("/cause/exceptions/0/message", json!("forbidden")),
        case("Error status with a 2xx code is a fault, its message the cause")
            .attr("http.response.status_code", 200i64)
            .error("boom")
            .expect("/fault", json!(true))
            .expect("/cause/exceptions/0/message", json!("boom"))
            .absent("/cause/exceptions/0/remote"),
        case("Error status without description: fault, no cause")
            .error("")
            .expect("/fault", json!(true))
            .absent("/cause"),
        case("exception event with Unset status is a fault with a cause")
            .event(
                "exception",
                &[
                    ("exception.type", "std::io::Error".into()),
                    ("exception.message", "connection reset".into()),
                ],
            )
            .expect("/fault", json!(true))
            .expect("/cause/exceptions/0/type", json!("std::io::Error"))
            .expect("/cause/exceptions/0/message", json!("connection reset"))
            .expect("/cause/exceptions/0/id", json!("bf2eca5ba633b927"))
            .absent("/metadata/otel"),
        case("exception with Ok status keeps the cause without a fault")
            .status(Status::Ok)
            .event("exception", &[("exception.message", "retried".into())])
            .absent("/fault")
            .expect("/cause/exceptions/0/message", json!("retried")),
        case("exception on a client span is remote")
            .kind(SpanKind::Client)
            .attr("server.address", "db")
            .event("exception", &[("exception.type", "Timeout".into())])
            .expect("/cause/exceptions/0/remote", json!(true))
            .expect("/fault", json!(true)),
        case("Rust backtrace is parsed into frames")
            .res("telemetry.sdk.language", "rust")
            .event(
                "exception",
                &[
                    ("exception.type", "sqlx::Error".into()),
                    ("exception.message", "pool timed out".into()),
                    ("exception.stacktrace", rust_backtrace().into()),
                ],
            )
            .expect(
                "/cause/exceptions/0/stack",
                json!([
                    {"path": "./src/db.rs", "line": 42, "label": "checkout::db::load_cart"},
                    {"path": "./src/handler.rs", "line": 17, "label": "checkout::handler"},
                    {"label": "std::rt::lang_start"}
                ]),
            ),
        case("anyhow error chain gives linked causes")
            .event(
                "exception",
                &[
                    ("exception.message", "load failed".into()),
                    (
                        "exception.stacktrace",
                        "load failed\n\nCaused by:\n    0: open config\n    1: permission denied\n".into(),
                    ),
                ],
            )
            .expect("/cause/exceptions/1/message", json!("open config"))
            .expect("/cause/exceptions/2/message", json!("permission denied"))
            .expect("/cause/exceptions/0/cause", json!("fe24699a191fa2bb"))
            .expect("/cause/exceptions/1/id", json!("fe24699a191fa2bb")),
        case("tracing-opentelemetry error event: exception attributes under another name")
            .event(
                "call failed",
                &[
                    ("exception.message", "GetItem failed".into()),
                    ("exception.stacktrace", V::Strs(vec!["timed out".into()])),
                ],
            )
            .expect("/fault", json!(true))
            .expect("/cause/exceptions/0/message", json!("GetItem failed"))
            .expect("/cause/exceptions/1/message", json!("timed out"))
            .expect("/metadata/otel/events/0/name", json!("call failed")),
        case("Java stack with a cause")
            .res("telemetry.sdk.language", "java")
            .event(
                "exception",
                &[
                    ("exception.type", "java.lang.IllegalStateException".into()),
                    ("exception.message", "bad".into()),
                    (
                        "exception.stacktrace",
                        "java.lang.IllegalStateException: bad\n\tat com.shop.Cart.add(Cart.java:31)\n\tat java.base/java.lang.Thread.run(Thread.java:833)\nCaused by: java.io.IOException: disk full\n\tat com.shop.Store.write(Store.java:9)\n\t... 2 more\n".into(),
                    ),
                ],
            )
            .expect(
                "/cause/exceptions/0/stack",
                json!([
                    {"path": "Cart.java", "line": 31, "label": "com.shop.Cart.add"},
                    {"path": "Thread.java", "line": 833, "label": "java.lang.Thread.run"}
                ]),
            )
            .expect("/cause/exceptions/1/type", json!("java.io.IOException"))
            .expect("/cause/exceptions/1/message", json!("disk full"))
            .expect(
                "/cause/exceptions/1/stack",
                json!([{"path": "Store.java", "line": 9, "label": "com.shop.Store.write"}]),
            ),
        case("Python traceback, innermost frame first, chained cause")
            .res("telemetry.sdk.language", "python")
            .event(
                "exception",
                &[
                    ("exception.type", "RuntimeError".into()),
                    ("exception.message", "wrapped".into()),
                    (
                        "exception.stacktrace",
                        "Traceback (most recent call last):\n  File \"/app/db.py\", line 5, in fetch\n    raise KeyError('id')\nKeyError: 'id'\n\nThe above exception was the direct cause of the following exception:\n\nTraceback (most recent call last):\n  File \"/app/main.py\", line 20, in handler\n    fetch()\n  File \"/app/api.py\", line 8, in fetch_wrapped\n    raise RuntimeError('wrapped') from e\nRuntimeError: wrapped\n".into(),
                    ),
                ],
            )
            .expect(
                "/cause/exceptions/0/stack",
                json!([
                    {"path": "/app/api.py", "line": 8, "label": "fetch_wrapped"},
                    {"path": "/app/main.py", "line": 20, "label": "handler"}
                ]),
            )
            .expect("/cause/exceptions/1/type", json!("KeyError"))
            .expect("/cause/exceptions/1/message", json!("'id'"))
            .expect(
                "/cause/exceptions/1/stack",
                json!([{"path": "/app/db.py", "line": 5, "label": "fetch"}]),
            ),
        case("JavaScript stack recognised without a declared language")
            .event(
                "exception",
                &[(
                    "exception.stacktrace",
                    "TypeError: x is undefined\n    at handler (/app/index.js:12:7)\n    at /app/node_modules/lib.js:3:1\n".into(),
                )],
            )
            .expect(
                "/cause/exceptions/0/stack",
                json!([
                    {"path": "/app/index.js", "line": 12, "label": "handler"},
                    {"path": "/app/node_modules/lib.js", "line": 3}
                ]),
            ),
        case("Go goroutine dump from a Go service calling through OTLP")
            .res("telemetry.sdk.language", "go")
            .event(
                "exception",
                &[
                    ("exception.type", "*errors.errorString".into()),
                    ("exception.message", "db down".into()),
                    (
                        "exception.stacktrace",
                        "goroutine 21 [running]:\ngo.opentelemetry.io/otel/sdk/trace.recordStackTrace(...)\n\t/go/pkg/mod/go.opentelemetry.io/otel/sdk@v1.24.0/trace/span.go:512 +0x4a\nmain.(*Store).Load(0xc0001a2000, {0x9a1f40, 0xc00012e000})\n\t/src/store.go:88 +0x1b3\nmain.handler({0x9a3b80, 0xc000194000}, 0xc0001b6000)\n\t/src/main.go:41 +0x85\n".into(),
                    ),
                ],
            )
            .expect(
                "/cause/exceptions/0/stack",
                json!([
                    {"path": "/go/pkg/mod/go.opentelemetry.io/otel/sdk@v1.24.0/trace/span.go", "line": 512, "label": "go.opentelemetry.io/otel/sdk/trace.recordStackTrace"},
                    {"path": "/src/store.go", "line": 88, "label": "main.(*Store).Load"},
                    {"path": "/src/main.go", "line": 41, "label": "main.handler"}
                ]),
            ),
        case("Go panic dump recognised without a declared language")
            .event(
                "exception",
                &[(
                    "exception.stacktrace",
                    "panic: runtime error: index out of range [3] with length 3\n\ngoroutine 1 [running]:\nmain.pick(...)\n\t/src/pick.go:9\nmain.main()\n\t/src/main.go:5 +0x1d\nexit status 2\n".into(),
                )],
            )
            .expect(
                "/cause/exceptions/0/stack",
                json!([
                    {"path": "/src/pick.go", "line": 9, "label": "main.pick"},
                    {"path": "/src/main.go", "line": 5, "label": "main.main"}
                ]),
            ),
        case(".NET stack with and without file locations")
            .res("telemetry.sdk.language", "dotnet")
            .event(
                "exception",
                &[(
                    "exception.stacktrace",
                    "System.InvalidOperationException: cart is empty\n   at Shop.Cart.Checkout(Int32 id) in /src/Cart.cs:line 57\n   at Shop.Api.<>c.<Map>b__0_0(HttpContext ctx) in /src/Api.cs:line 12\n   at System.Threading.ExecutionContext.RunInternal(ExecutionContext ctx, ContextCallback cb, Object state) + 0x40\n".into(),
                )],
            )
            .expect(
                "/cause/exceptions/0/stack",
                json!([
                    {"path": "/src/Cart.cs", "line": 57, "label": "Shop.Cart.Checkout(Int32 id)"},
                    {"path": "/src/Api.cs", "line": 12, "label": "Shop.Api.<>c.<Map>b__0_0(HttpContext ctx)"},
                    {"label": "System.Threading.ExecutionContext.RunInternal(ExecutionContext ctx, ContextCallback cb, Object state)"}
                ]),
            ),
        case("PHP stack (Java's format, as the PHP SDK writes it) with a cause")
            .res("telemetry.sdk.language", "php")
            .event(
                "exception",
                &[
                    ("exception.type", "RuntimeException".into()),
                    (
                        "exception.stacktrace",
                        "RuntimeException: checkout failed\n\tat App.Http.CartController.checkout(CartController.php:31)\n\tat {main}(index.php:7)\nCaused by: PDOException: SQLSTATE[HY000] gone away\n\tat App.Db.query(Db.php:12)\n\t... 1 more\n".into(),
                    ),
                ],
            )
            .expect(
                "/cause/exceptions/0/stack",
                json!([
                    {"path": "CartController.php", "line": 31, "label": "App.Http.CartController.checkout"},
                    {"path": "index.php", "line": 7, "label": "{main}"}
                ]),
            )
            .expect("/cause/exceptions/1/type", json!("PDOException"))
            .expect("/cause/exceptions/1/message", json!("SQLSTATE[HY000] gone away"))
            .expect("/cause/exceptions/1/stack", json!([{"path": "Db.php", "line": 12, "label": "App.Db.query"}])),
        case("an error event without a stack trace: its code.* attributes are its one frame")
            .event(
                "exception",
                &[
                    ("exception.message", "payment declined".into()),
                    ("code.file.path", "src/pay.rs".into()),
                    ("code.line.number", 88i64.into()),
                    ("code.function.name", "shop::pay::charge".into()),
                ],
            )
            .expect(
                "/cause/exceptions/0/stack",
                json!([{"path": "src/pay.rs", "line": 88, "label": "shop::pay::charge"}]),
            ),
        case("tracing's error event with the old code.* names: module as the label")
            .event(
                "charge failed",
                &[
                    ("exception.message", "card expired".into()),
                    ("code.filepath", "src/pay.rs".into()),
                    ("code.lineno", 12i64.into()),
                    ("code.namespace", "shop::pay".into()),
                ],
            )
            .expect(
                "/cause/exceptions/0/stack",
                json!([{"path": "src/pay.rs", "line": 12, "label": "shop::pay"}]),
            ),
        case("a parsed stack trace wins over code.* attributes")
            .event(
                "exception",
                &[
                    ("exception.stacktrace", rust_backtrace().into()),
                    ("code.file.path", "src/other.rs".into()),
                ],
            )
            .expect("/cause/exceptions/0/stack/0/path", json!("./src/db.rs"))
            .expect("/cause/exceptions/0/stack/2", json!({"label": "std::rt::lang_start"})),
        // ---- AWS SDK calls ---------------------------------------------------------
        case("AWS SDK DynamoDB call: namespace aws, named after the service")
            .kind(SpanKind::Client)
            .named("DynamoDB.GetItem")
            .attr("rpc.system", "aws-api")
            .attr("rpc.service", "DynamoDB")
            .attr("rpc.method", "GetItem")
            .attr("aws.region", "eu-west-1")
            .attr("aws.request_id", "V7A1PQ3H6")
            .attr("aws.dynamodb.table_names", ["carts"])
            .attr("http.response.status_code", 200i64)
            .expect("/name", json!("DynamoDB"))
            .expect("/namespace", json!("aws"))
            .expect(
                "/aws",
                json!({
                    "operation": "GetItem",
                    "region": "eu-west-1",
                    "request_id": "V7A1PQ3H6",
                    "table_name": "carts"
                }),
            )
            .absent("/http/request/traced")
            .absent("/metadata/default")
            .expect("/metadata/otel/span_name", json!("DynamoDB.GetItem")),
        case("AWS SDK SQS call: queue URL and camel-case request id")
            .kind(SpanKind::Client)
            .attr("rpc.system", "aws-api")
            .attr("rpc.service", "SQS")
            .attr("rpc.method", "SendMessage")
            .attr("aws.requestId", "c9f1-22")
            .attr("messaging.url", "https://sqs.eu-west-1.amazonaws.com/123456789012/orders")
            .expect("/name", json!("SQS"))
            .expect("/aws/request_id", json!("c9f1-22"))
            .expect("/aws/queue_url", json!("https://sqs.eu-west-1.amazonaws.com/123456789012/orders")),
        case("DynamoDB call on several tables lists them")
            .kind(SpanKind::Client)
            .attr("rpc.system", "aws-api")
            .attr("rpc.service", "DynamoDB")
            .attr("rpc.method", "BatchGetItem")
            .attr("aws.dynamodb.table_names", ["carts", "users"])
            .expect("/aws/table_names", json!(["carts", "users"]))
            .absent("/aws/table_name"),
        case("aws.remote.service prefixes are trimmed on AWS calls")
            .kind(SpanKind::Client)
            .attr("rpc.system", "aws-api")
            .attr("aws.remote.service", "AWS::S3")
            .attr("aws.operation", "PutObject")
            .expect("/name", json!("S3"))
            .expect("/aws/operation", json!("PutObject")),
        case("aws.remote.service on another client is used as it is")
            .kind(SpanKind::Client)
            .attr("aws.remote.service", "pricing-api")
            .expect("/name", json!("pricing-api"))
            .expect("/namespace", json!("remote")),
        case("aws-sdk-rust's Internal invoke span is an AWS call too")
            .attr("rpc.system", "aws-api")
            .attr("rpc.service", "S3")
            .attr("rpc.method", "GetObject")
            .expect("/namespace", json!("aws"))
            .expect("/name", json!("S3"))
            .expect("/aws/operation", json!("GetObject")),
        case("gRPC client: rpc.service names it, rpc.method stays in metadata")
            .kind(SpanKind::Client)
            .attr("rpc.system", "grpc")
            .attr("rpc.service", "shop.Inventory")
            .attr("rpc.method", "Reserve")
            .expect("/name", json!("shop.Inventory"))
            .expect("/namespace", json!("remote"))
            .absent("/aws")
            .expect("/metadata/default", json!({"rpc.system": "grpc", "rpc.method": "Reserve"})),
        case("Producer span is a remote subsegment")
            .kind(SpanKind::Producer)
            .attr("server.address", "kafka-1")
            .attr("messaging.system", "kafka")
            .expect("/namespace", json!("remote"))
            .expect("/name", json!("kafka-1"))
            .expect("/metadata/default/messaging.system", json!("kafka")),
        case("aws.table.name and the legacy aws.table_name give the table")
            .kind(SpanKind::Client)
            .attr("rpc.system", "aws-api")
            .attr("rpc.service", "DynamoDB")
            .attr("aws.table.name", "carts")
            .attr("aws.table_name", "carts")
            .expect("/aws/table_name", json!("carts"))
            .absent("/metadata/default"),
        case("legacy aws.table_name alone")
            .kind(SpanKind::Client)
            .attr("rpc.system", "aws-api")
            .attr("rpc.service", "DynamoDB")
            .attr("aws.table_name", "users")
            .expect("/aws/table_name", json!("users")),
        case("aws.queue.url gives the queue URL")
            .kind(SpanKind::Producer)
            .attr("aws.queue.url", "https://sqs.us-east-1.amazonaws.com/1/q")
            .expect("/aws/queue_url", json!("https://sqs.us-east-1.amazonaws.com/1/q"))
            .absent("/metadata/default"),
        case("http.request.resend_count is aws.retries")
            .kind(SpanKind::Client)
            .attr("rpc.system", "aws-api")
            .attr("rpc.service", "S3")
            .attr("http.request.resend_count", 2i64)
            .expect("/aws/retries", json!(2))
            .absent("/metadata/default"),
        case("a negative resend count stays in metadata")
            .kind(SpanKind::Client)
            .attr("http.request.resend_count", -1i64)
            .absent("/aws")
            .expect("/metadata/default/http.request.resend_count", json!(-1)),
        case("AWS SDK HTTP request failure events: remote exceptions, no fault on a call that succeeded")
            .kind(SpanKind::Client)
            .attr("rpc.system", "aws-api")
            .attr("rpc.service", "DynamoDB")
            .attr("http.response.status_code", 200i64)
            .event("HTTP request failure", &[("http.response.status_code", 503i64.into()), ("aws.http.error_message", "Service Unavailable".into())])
            .event("HTTP request failure", &[("http.response.status_code", 500i64.into())])
            .absent("/fault")
            .expect(
                "/cause/exceptions",
                json!([{"id": "bf2eca5ba633b927", "type": "aws.http.error.event", "message": "503@1700000000.133456@Service Unavailable", "remote": true}]),
            ),
        case("http.status_text explains a failed span without a description")
            .kind(SpanKind::Client)
            .attr("http.status_text", "Gateway Timeout")
            .error("")
            .expect("/fault", json!(true))
            .expect("/cause/exceptions/0/message", json!("Gateway Timeout"))
            .absent("/metadata/default"),
        case("an HTTP failure event explains a failed span: http.status_text stays in metadata")
            .kind(SpanKind::Client)
            .attr("http.status_text", "Gateway Timeout")
            .error("")
            .event("HTTP request failure", &[("http.response.status_code", 504i64.into()), ("aws.http.error_message", "timed out".into())])
            .expect("/fault", json!(true))
            .expect("/cause/exceptions/0/type", json!("aws.http.error.event"))
            .absent("/cause/exceptions/1")
            .expect("/metadata/default/http.status_text", json!("Gateway Timeout")),
        case("the status description wins over http.status_text, which stays in metadata")
            .attr("http.status_text", "Gateway Timeout")
            .error("upstream slow")
            .expect("/cause/exceptions/0/message", json!("upstream slow"))
            .expect("/metadata/default/http.status_text", json!("Gateway Timeout")),
        // ---- databases -------------------------------------------------------------
        case("Postgres with a password in the connection URL: stripped")
            .kind(SpanKind::Client)
            .attr("db.system", "postgresql")
            .attr("db.name", "shop")
            .attr("db.statement", "SELECT * FROM carts WHERE id = $1")
            .attr("db.user", "app")
            .attr("db.connection_string", "postgresql://app:s3cret@db.internal:5432/shop")
            .expect("/name", json!("shop@db.internal"))
            .expect("/namespace", json!("remote"))
            .expect(
                "/sql",
                json!({
                    "url": "postgresql://app@db.internal:5432/shop",
                    "sanitized_query": "SELECT * FROM carts WHERE id = $1",
                    "database_type": "postgresql",
                    "user": "app"
                }),
            )
            .absent("/metadata/default")
            .absent("/http"),
        case("SQL Server connection string: password pair removed")
            .kind(SpanKind::Client)
            .attr("db.system", "mssql")
            .attr("db.connection_string", "Server=sql1;Database=shop;User Id=app;Password=p@ss;")
            .expect("/sql/connection_string", json!("Server=sql1;Database=shop;User Id=app;"))
            .expect("/sql/database_type", json!("mssql")),
        case("new database conventions: db.system.name, db.namespace, db.query.text")
            .kind(SpanKind::Client)
            .attr("db.system.name", "mysql")
            .attr("db.namespace", "orders")
            .attr("db.query.text", "UPDATE orders SET state = ?")
            .attr("server.address", "mysql.internal")
            .attr("server.port", 3306i64)
            .expect("/name", json!("orders@mysql.internal"))
            .expect("/sql/database_type", json!("mysql"))
            .expect("/sql/sanitized_query", json!("UPDATE orders SET state = ?"))
            .expect("/metadata/default", json!({"server.port": 3306})),
        case("sqlx-style Internal span on Postgres is a remote call with sql")
            .attr("db.system", "postgresql")
            .attr("db.statement", "SELECT 1")
            .named("sqlx.query")
            .expect("/namespace", json!("remote"))
            .expect("/name", json!("sqlx.query"))
            .expect("/sql/sanitized_query", json!("SELECT 1")),
        case("Redis is not SQL: no sql block, password stripped in metadata")
            .kind(SpanKind::Client)
            .attr("db.system", "redis")
            .attr("server.address", "cache.internal")
            .attr("db.connection_string", "redis://:hunter2@cache.internal:6379")
            .expect("/name", json!("cache.internal"))
            .absent("/sql")
            .expect("/metadata/default/db.connection_string", json!("redis://cache.internal:6379"))
            .expect("/metadata/default/db.system", json!("redis")),
        // ---- annotations and metadata ----------------------------------------------
        case("configured annotation keys are indexed with valid keys")
            .config(TranslatorConfig::default().with_annotation_keys(["customer.tier", "http.route"]))
            .kind(SpanKind::Server)
            .attr("customer.tier", "gold")
            .attr("http.route", "/cart")
            .attr("order.count", 3i64)
            .expect("/annotations", json!({"customer_tier": "gold", "http_route": "/cart"}))
            .expect("/metadata/default", json!({"order.count": 3})),
        case("annotation. prefix marks annotations")
            .attr("annotation.tier", "gold")
            .attr("annotation.vip", true)
            .attr("annotation.score", 0.75)
            .expect("/annotations", json!({"tier": "gold", "vip": true, "score": 0.75}))
            .absent("/metadata/default"),
        case("annotation prefix can be turned off")
            .config(TranslatorConfig::default().with_annotation_prefix(None::<String>))
            .attr("annotation.tier", "gold")
            .absent("/annotations")
            .expect("/metadata/default/annotation.tier", json!("gold")),
        case("aws.xray.annotations list attribute marks annotations")
            .attr("aws.xray.annotations", ["user.plan", "cart.size"])
            .attr("user.plan", "pro")
            .attr("cart.size", 4i64)
            .attr("other", "x")
            .expect("/annotations", json!({"user_plan": "pro", "cart_size": 4}))
            .expect("/metadata/default", json!({"other": "x"})),
        case("index_all_attributes indexes scalars, arrays stay metadata")
            .config(TranslatorConfig::default().index_all_attributes(true))
            .attr("a.b", "x")
            .attr("n", 1i64)
            .attr("list", ["p", "q"])
            .expect("/annotations", json!({"a_b": "x", "n": 1}))
            .expect("/metadata/default", json!({"list": ["p", "q"]})),
        case("annotation strings over 1000 characters stay in metadata")
            .attr("annotation.blob", "b".repeat(1001))
            .absent("/annotations")
            .expect("/metadata/default/annotation.blob", json!("b".repeat(1001))),
        too_many,
        case("an attribute set twice appears once, with its last value")
            .attr("cart.id", "old")
            .attr("cart.id", "new")
            .expect("/metadata/default", json!({"cart.id": "new"})),
        case("NaN and array values survive in metadata")
            .attr("ratio", f64::NAN)
            .attr("ids", V::Ints(vec![1, 2]))
            .expect("/metadata/default", json!({"ratio": null, "ids": [1, 2]})),
        case("enduser.id becomes the segment's user")
            .kind(SpanKind::Server)
            .attr("enduser.id", "user-42")
            .expect("/user", json!("user-42"))
            .absent("/metadata/default"),
        case("sampling rule name is written like the X-Ray SDKs, not repeated")
            .kind(SpanKind::Server)
            .attr("aws.xray.sampling_rule_name", "checkout-rule")
            .expect("/aws/xray/sampling_rule_name", json!("checkout-rule"))
            .absent("/metadata/default"),
        case("span events other than exceptions are kept")
            .event("cache miss", &[("key", "cart:7".into())])
            .event("exception", &[("exception.message", "x".into())])
            .expect(
                "/metadata/otel/events",
                json!([{"name": "cache miss", "timestamp": 1_700_000_000.133_456, "attributes": {"key": "cart:7"}}]),
            ),
        case("span links are kept with their attributes")
            .link(0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, &[("kind", "batch".into())])
            .expect(
                "/links",
                json!([{"trace_id": "1-4bf92f35-77b34da6a3ce929d0e0e4736", "id": "00f067aa0ba902b7", "attributes": {"kind": "batch"}}]),
            ),
        case("instrumentation scope is kept")
            .scope("checkout-http", Some("1.2.0"))
            .expect("/metadata/otel", json!({"scope": "checkout-http", "scope_version": "1.2.0"})),
        // ---- resource: origin and blocks -------------------------------------------
        case("resource attributes on segments, under otel.resource")
            .kind(SpanKind::Server)
            .res("deployment.environment", "prod")
            .expect("/metadata/otel.resource", json!({"service.name": "checkout", "deployment.environment": "prod"})),
        case("subsegments carry no resource data")
            .res("cloud.provider", "aws")
            .res("cloud.platform", "aws_ecs")
            .absent("/origin")
            .absent("/aws")
            .absent("/metadata"),
        case("Lambda origin from cloud.platform=aws_lambda")
            .kind(SpanKind::Server)
            .res("cloud.provider", "aws")
            .res("cloud.platform", "aws_lambda")
            .res("faas.name", "checkout-fn")
            .res("faas.version", "$LATEST")
            .res("cloud.resource_id", "arn:aws:lambda:eu-west-1:123456789012:function:checkout-fn")
            .res("cloud.account.id", "123456789012")
            .expect("/origin", json!("AWS::Lambda::Function"))
            .expect("/resource_arn", json!("arn:aws:lambda:eu-west-1:123456789012:function:checkout-fn"))
            .expect("/aws/lambda", json!({"function_name": "checkout-fn", "function_version": "$LATEST"}))
            .expect("/aws/account_id", json!("123456789012")),
        case("ECS on Fargate")
            .kind(SpanKind::Server)
            .res("cloud.provider", "aws")
            .res("cloud.platform", "aws_ecs")
            .res("aws.ecs.launchtype", "fargate")
            .res("aws.ecs.task.arn", "arn:aws:ecs:eu-west-1:1:task/c/abc")
            .res("aws.ecs.task.family", "checkout")
            .res("aws.ecs.cluster.arn", "arn:aws:ecs:eu-west-1:1:cluster/c")
            .res("container.name", "app")
            .res("container.id", "abc123")
            .expect("/origin", json!("AWS::ECS::Fargate"))
            .expect(
                "/aws/ecs",
                json!({
                    "container": "app",
                    "container_id": "abc123",
                    "task_arn": "arn:aws:ecs:eu-west-1:1:task/c/abc",
                    "task_family": "checkout",
                    "cluster_arn": "arn:aws:ecs:eu-west-1:1:cluster/c",
                    "launch_type": "fargate"
                }),
            )
            .absent("/aws/ec2"),
        case("ECS on EC2 also gives the instance")
            .kind(SpanKind::Server)
            .res("cloud.provider", "aws")
            .res("cloud.platform", "aws_ecs")
            .res("aws.ecs.launchtype", "EC2")
            .res("host.id", "i-0abc")
            .expect("/origin", json!("AWS::ECS::EC2"))
            .expect("/aws/ec2/instance_id", json!("i-0abc")),
        case("ECS without a launch type")
            .kind(SpanKind::Server)
            .res("cloud.platform", "aws_ecs")
            .expect("/origin", json!("AWS::ECS::Container")),
        case("EKS")
            .kind(SpanKind::Server)
            .res("cloud.provider", "aws")
            .res("cloud.platform", "aws_eks")
            .res("k8s.cluster.name", "prod")
            .res("k8s.pod.name", "checkout-7d9f")
            .res("container.id", "c0ffee")
            .expect("/origin", json!("AWS::EKS::Container"))
            .expect("/aws/eks", json!({"cluster_name": "prod", "pod": "checkout-7d9f", "container_id": "c0ffee"})),
        case("EC2")
            .kind(SpanKind::Server)
            .res("cloud.provider", "aws")
            .res("cloud.platform", "aws_ec2")
            .res("host.id", "i-0123")
            .res("host.type", "m7g.large")
            .res("host.image.id", "ami-1")
            .res("cloud.availability_zone", "eu-west-1a")
            .expect("/origin", json!("AWS::EC2::Instance"))
            .expect(
                "/aws/ec2",
                json!({"instance_id": "i-0123", "availability_zone": "eu-west-1a", "instance_size": "m7g.large", "ami_id": "ami-1"}),
            ),
        case("Elastic Beanstalk")
            .kind(SpanKind::Server)
            .res("cloud.provider", "aws")
            .res("cloud.platform", "aws_elastic_beanstalk")
            .res("service.namespace", "checkout-prod")
            .res("service.version", "v42")
            .res("service.instance.id", "17")
            .expect("/origin", json!("AWS::ElasticBeanstalk::Environment"))
            .expect(
                "/aws/elastic_beanstalk",
                json!({"environment_name": "checkout-prod", "version_label": "v42", "deployment_id": 17}),
            )
            .expect("/service", json!({"version": "v42"})),
        case("another cloud gives no AWS origin or blocks")
            .kind(SpanKind::Server)
            .res("cloud.provider", "gcp")
            .res("cloud.platform", "gcp_compute_engine")
            .res("host.id", "1234")
            .absent("/origin")
            .absent("/aws"),
        case("SDK name, language and version; runtime in the service block")
            .kind(SpanKind::Server)
            .res("telemetry.sdk.name", "opentelemetry")
            .res("telemetry.sdk.language", "rust")
            .res("telemetry.sdk.version", "0.33.0")
            .res("process.runtime.name", "rustc")
            .res("process.runtime.version", "1.95.0")
            .expect("/aws/xray", json!({"sdk": "opentelemetry for rust", "sdk_version": "0.33.0"}))
            .expect("/service", json!({"runtime": "rustc", "runtime_version": "1.95.0"})),
        case("CloudWatch log groups from ARNs")
            .kind(SpanKind::Server)
            .res(
                "aws.log.group.arns",
                ["arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/checkout:*"],
            )
            .expect(
                "/aws/cloudwatch_logs",
                json!([{"log_group": "/ecs/checkout", "arn": "arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/checkout:*"}]),
            ),
        case("CloudWatch log groups from an &-separated name list")
            .kind(SpanKind::Server)
            .res("aws.log.group.names", "/a&/b")
            .expect("/aws/cloudwatch_logs", json!([{"log_group": "/a"}, {"log_group": "/b"}])),
        case("CloudWatch log groups from the configuration")
            .kind(SpanKind::Server)
            .config(TranslatorConfig::default().with_log_groups(["/ecs/configured"]))
            .expect("/aws/cloudwatch_logs", json!([{"log_group": "/ecs/configured"}])),
        case("resource metadata can be turned off")
            .kind(SpanKind::Server)
            .config(TranslatorConfig::default().resource_metadata(false))
            .absent("/metadata/otel.resource")
            .expect("/metadata", json!({"otel": {"span_name": "work"}})),
    ]
}

#[test]
fn conformance_table() {
    let cases = cases();
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    let mut names = std::collections::HashSet::new();
    let mut failed = Vec::new();
    for case in &cases {
        assert!(
            names.insert(case.name),
            "duplicate case name {:?}",
            case.name
        );
        assert!(
            !case.expect.is_empty(),
            "case {:?} checks nothing",
            case.name
        );
        if std::panic::catch_unwind(|| case.run()).is_err() {
            failed.push(case.name);
        }
    }
    assert!(failed.is_empty(), "failed cases: {failed:#?}");
}

#[test]
fn metadata_keys_are_never_written_twice() {
    // The JSON text itself, not a parsed map (a map would hide duplicates).
    let case = case("dup")
        .kind(SpanKind::Server)
        .attr("k", "1")
        .attr("k", "2")
        .attr("http.method", "GET")
        .attr("http.method", "POST")
        .expect("/metadata/default/k", json!("2"));
    let (span, resource) = case.sdk();
    let json = xray_translate::Translator::default()
        .translate_sdk(&span, &resource)
        .to_json();
    assert_eq!(json.matches("\"k\":").count(), 1, "{json}");
    assert_eq!(json.matches("\"method\":").count(), 1, "{json}");
    assert!(json.contains("\"method\":\"POST\""), "{json}");
}

/// The other way round: every document of the table, converted back to OTLP
/// (`xray_translate::reverse`) and translated again, is the same document, byte for byte.
#[test]
fn every_document_converts_back_to_the_same_document() {
    let mut failed = Vec::new();
    for case in cases() {
        // A configured service name is not in the document: converted back, the segment's
        // name comes as `aws.local.service`, which a translator with that setting keeps
        // in metadata.
        if case.config.service_name().is_some() {
            continue;
        }
        let translator = xray_translate::Translator::new(case.config.clone());
        let (sdk_span, sdk_resource) = case.sdk();
        let json = translator.translate_sdk(&sdk_span, &sdk_resource).to_json();
        // Through the wire form, as the binary receives it.
        let doc: xray_model::Segment<'_> = serde_json::from_str(&json).unwrap();
        let back = match xray_translate::reverse::to_otlp(&doc) {
            Ok(back) => back,
            Err(e) => {
                if !case.in_progress {
                    failed.push(format!("{}: {e}", case.name));
                }
                continue;
            }
        };
        // One span per (sub)segment: a Client root span gives a segment holding the call,
        // which comes back as two spans and is nested again.
        let resource = translator.prepare_otlp(back.resource.as_ref());
        let docs: Vec<xray_model::Segment<'_>> = back
            .scope_spans
            .iter()
            .flat_map(|s| s.spans.iter().map(move |span| (span, s.scope.as_ref())))
            .map(|(span, scope)| resource.translate_otlp(span, scope))
            .collect();
        let nested = xray_model::nest_subsegments(docs);
        assert_eq!(
            nested.len(),
            1,
            "case {:?}: {json}\n{:#?}",
            case.name,
            nested.iter().map(|d| d.to_json()).collect::<Vec<_>>()
        );
        let again = nested[0].to_json();
        // The one thing added: a segment whose resource was empty gets its name as
        // `service.name`, which the translator then keeps in `otel.resource`. Otherwise
        // the text is the same, byte for byte.
        let same = if json.contains("\"otel.resource\"") || !again.contains("\"otel.resource\"") {
            again == json
        } else {
            let mut value: serde_json::Value = serde_json::from_str(&again).unwrap();
            let metadata = value["metadata"].as_object_mut().unwrap();
            let added = metadata.remove("otel.resource");
            if metadata.is_empty() {
                value.as_object_mut().unwrap().remove("metadata");
            }
            added == Some(json!({"service.name": doc.name}))
                && value == serde_json::from_str::<serde_json::Value>(&json).unwrap()
        };
        if !same {
            failed.push(format!("{}:\n  was   {json}\n  again {again}", case.name));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn spans_x_ray_cannot_take_are_refused_on_both_paths() {
    use std::time::{Duration, UNIX_EPOCH};
    use xray_translate::{Invalid, check_otlp, check_sdk};

    let good = case("good").kind(SpanKind::Server);
    let (span, resource) = good.sdk();
    let (otlp, _, _) = good.otlp(&resource);
    assert_eq!(check_sdk(&span), Ok(()));
    assert_eq!(check_otlp(&otlp), Ok(()));
    // A root span (no parent id) and an end before the start are fine.
    let mut root = otlp.clone();
    root.parent_span_id.clear();
    root.end_time_unix_nano = root.start_time_unix_nano - 1;
    assert_eq!(check_otlp(&root), Ok(()));

    // OTLP: ids of the wrong length are refused, not padded into made-up X-Ray ids.
    for (what, edit) in [
        (
            "2-byte trace id",
            (|s: &mut _| set(s, |s| s.trace_id = vec![1, 2])) as fn(&mut _),
        ),
        ("17-byte trace id", |s| set(s, |s| s.trace_id = vec![1; 17])),
        ("9-byte span id", |s| set(s, |s| s.span_id = vec![1; 9])),
        ("3-byte parent id", |s| {
            set(s, |s| s.parent_span_id = vec![1; 3])
        }),
        ("all-zero span id", |s| set(s, |s| s.span_id = vec![0; 8])),
        ("all-zero trace id", |s| {
            set(s, |s| s.trace_id = vec![0; 16])
        }),
    ] {
        let mut bad = otlp.clone();
        edit(&mut bad);
        assert_eq!(check_otlp(&bad), Err(Invalid::Id), "{what}");
    }
    fn set(
        span: &mut opentelemetry_proto::tonic::trace::v1::Span,
        f: impl Fn(&mut opentelemetry_proto::tonic::trace::v1::Span),
    ) {
        f(span)
    }
    let year_2201 = (xray_translate::LATEST_TIME as u64 + 366 * 86_400) * 1_000_000_000;
    let mut late = otlp.clone();
    late.end_time_unix_nano = year_2201;
    assert_eq!(check_otlp(&late), Err(Invalid::Time));
    late.start_time_unix_nano = year_2201;
    assert_eq!(check_otlp(&late), Err(Invalid::Time));
    assert_eq!(Invalid::Time.reason(), "invalid_time");
    assert_eq!(Invalid::Id.reason(), "invalid_id");

    // SDK: a zero id, a start before 1970, an end after 2200.
    let mut zero = span.clone();
    zero.span_context = opentelemetry::trace::SpanContext::new(
        zero.span_context.trace_id(),
        opentelemetry::trace::SpanId::INVALID,
        zero.span_context.trace_flags(),
        false,
        Default::default(),
    );
    assert_eq!(check_sdk(&zero), Err(Invalid::Id));
    let mut early = span.clone();
    early.start_time = UNIX_EPOCH - Duration::from_secs(1);
    assert_eq!(check_sdk(&early), Err(Invalid::Time));
    let mut late = span.clone();
    late.end_time = UNIX_EPOCH + Duration::from_nanos(year_2201);
    assert_eq!(check_sdk(&late), Err(Invalid::Time));
}
