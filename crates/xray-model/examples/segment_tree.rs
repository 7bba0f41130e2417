//! Prints the daemon datagrams for one traced request, built with the wire model alone:
//! an incoming `X-Amzn-Trace-Id` header from a load balancer (Root only), a server segment,
//! a DynamoDB call and an HTTP call that failed. Run with
//! `cargo run -p xray-model --example segment_tree`.

use std::borrow::Cow;
use std::time::SystemTime;

use xray_model::document::{NAMESPACE_AWS, NAMESPACE_REMOTE};
use xray_model::limits::sanitize_name;
use xray_model::{
    Aws, Http, HttpRequest, HttpResponse, Sampled, Segment, SegmentId, TraceHeader,
    encode_datagram, epoch_seconds, split_to_document_limit,
};

fn main() {
    let incoming = "Root=1-5759e988-bd862e3fe1be46a994272793; Sampled=?";
    let header = TraceHeader::parse(incoming).expect("a valid Root");
    println!("incoming header: {incoming}");

    let now = epoch_seconds(SystemTime::now());
    let mut segment = Segment::new(
        "checkout",
        SegmentId::from_u64(0x53995c3f42cd8ad8),
        header.root,
        now,
    );
    segment.end_time = Some(now + 0.120);
    segment.http = Some(Http {
        request: Some(HttpRequest {
            method: Some("GET".into()),
            url: Some("http://checkout.internal/users/42".into()),
            ..Default::default()
        }),
        response: Some(HttpResponse {
            status: Some(200),
            content_length: Some(512),
        }),
    });

    let dynamodb = Segment {
        name: "DynamoDB".into(),
        id: SegmentId::from_u64(0x1a2b3c4d5e6f7081),
        start_time: now + 0.010,
        end_time: Some(now + 0.030),
        namespace: Some(NAMESPACE_AWS.into()),
        aws: Some(Box::new(Aws {
            operation: Some("PutItem".into()),
            region: Some("us-east-1".into()),
            table_name: Some("last-access".into()),
            ..Default::default()
        })),
        ..Default::default()
    };
    let http_call = Segment {
        // A route template with braces: X-Ray would reject it, so it is sanitised.
        name: sanitize_name("GET /pricing/{sku}").into_owned().into(),
        id: SegmentId::from_u64(0x2b3c4d5e6f708192),
        start_time: now + 0.040,
        end_time: Some(now + 0.110),
        namespace: Some(NAMESPACE_REMOTE.into()),
        traced: true,
        fault: true,
        http: Some(Http {
            request: Some(HttpRequest {
                method: Some("GET".into()),
                url: Some(Cow::Borrowed("http://pricing.internal/pricing/sku-1")),
                traced: true,
                ..Default::default()
            }),
            response: Some(HttpResponse {
                status: Some(503),
                content_length: None,
            }),
        }),
        ..Default::default()
    };
    segment.subsegments = vec![dynamodb, http_call];

    let answer = TraceHeader::new(header.root, Some(segment.id), Sampled::Yes);
    println!("answer header:   {answer}");

    let (documents, _) = split_to_document_limit(segment);
    let mut datagram = Vec::new();
    for doc in &documents {
        datagram.clear();
        encode_datagram(doc, &mut datagram);
        println!("--- datagram ({} bytes)", datagram.len());
        println!("{}", String::from_utf8_lossy(&datagram));
    }
}
