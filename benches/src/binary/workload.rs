//! The same input for every server: OTLP protobuf `ExportTraceServiceRequest` bodies and
//! daemon-protocol datagrams, encoded once before the load starts, from the realistic
//! spans of [`crate::spans`].

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use prost::Message;
use xray_export::Document;
use xray_translate::Translator;

use crate::spans;

/// One pre-encoded OTLP/HTTP request body.
#[derive(Debug, Clone)]
pub struct OtlpBody {
    /// The protobuf bytes.
    pub bytes: Vec<u8>,
    /// Spans in it.
    pub spans: u64,
}

/// `count` request bodies of `spans_per_request` spans each (whole server requests of
/// five spans: HTTP server span, DynamoDB, HTTP, SQL and a failed HTTP client call).
/// Bodies differ in their trace and span ids.
pub fn otlp_bodies(count: usize, spans_per_request: usize) -> Vec<OtlpBody> {
    let resource = spans::resource();
    let attributes = ResourceAttributesWithSchema::from(&resource);
    let all = spans::batch(count * spans_per_request);
    all.chunks(spans_per_request)
        .map(|chunk| {
            let batch = chunk.to_vec();
            let request = ExportTraceServiceRequest {
                resource_spans: group_spans_by_resource_and_scope(batch, &attributes),
            };
            OtlpBody {
                bytes: request.encode_to_vec(),
                spans: spans_per_request as u64,
            }
        })
        .collect()
}

/// `count` daemon datagrams (`{"format":"json","version":1}\n` plus one segment or
/// subsegment document each), as our translator writes them for the same spans.
pub fn daemon_datagrams(count: usize) -> Vec<Vec<u8>> {
    let resource = spans::resource();
    let translator = Translator::default();
    let mut scratch = Vec::new();
    spans::batch(count)
        .iter()
        .filter_map(|s| Document::encode(&translator.translate_sdk(s, &resource), &mut scratch))
        .map(|d| [xray_model::DAEMON_HEADER.as_bytes(), d.json()].concat())
        .collect()
}
