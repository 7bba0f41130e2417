//! Fuzzes the binary's OTLP protobuf reading: the body of `POST /v1/traces` with
//! `Content-Type: application/x-protobuf` is read in place (`xray_translate::WireRequest`,
//! what `Ingest::ingest_protobuf` does for document exports) and decoded by prost (what it
//! falls back to), and the two must agree.
//!
//! Asserts: nothing panics; the view never accepts a body prost rejects, and never calls
//! malformed a body prost accepts (it may leave an unusual one to prost); when both accept,
//! every span gets the same `check` verdict and the same document, byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use xray_translate::{OtlpSpan, Translator, WireError, WireRequest, check};

fuzz_target!(|data: &[u8]| {
    let owned = ExportTraceServiceRequest::decode(data);
    let wire = WireRequest::parse(data);
    let (owned, wire) = match (owned, wire) {
        (Ok(owned), Ok(wire)) => (owned, wire),
        (Ok(_), Err(WireError::Unusual)) | (Err(_), Err(_)) => return,
        (Ok(_), Err(WireError::Malformed)) => panic!("prost accepts what the view calls malformed"),
        (Err(e), Ok(_)) => panic!("prost rejects ({e}) what the view accepts"),
    };
    let translator = Translator::default();
    let mut by_wire = Vec::new();
    for resource_spans in wire.resource_spans() {
        let resource = translator.prepare(resource_spans.resource());
        for span in resource_spans.spans() {
            by_wire.push((check(&span), resource.translate(&span).to_json()));
        }
    }
    let mut by_prost = Vec::new();
    for resource_spans in &owned.resource_spans {
        let resource = translator.prepare_otlp(resource_spans.resource.as_ref());
        for scope_spans in &resource_spans.scope_spans {
            for span in &scope_spans.spans {
                let view = OtlpSpan::new(span, None, scope_spans.scope.as_ref());
                by_prost.push((check(&view), resource.translate(&view).to_json()));
            }
        }
    }
    assert_eq!(by_wire, by_prost);
});
