//! Reads the binary bench's 50-span OTLP/HTTP protobuf body many times, for
//! `valgrind --tool=callgrind` (instruction counts are repeatable on a loaded machine):
//! the receiver's two ways of decoding it, alone or with the translation of every span.
//! Arguments: rounds (default 100), then `wire` (default: `xray_translate::WireRequest`,
//! read in place), `prost` (`opentelemetry-proto`'s owned types), `wire-translate` or
//! `prost-translate` (decoded, then every span checked and translated under its prepared
//! resource, and the request dropped).

use std::hint::black_box;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use xray_bridge_benches::binary::workload::otlp_bodies;
use xray_translate::{OtlpSpan, Translator, WireRequest, check};

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(100, |a| a.parse().expect("rounds"));
    let side = args.next().unwrap_or_else(|| "wire".into());
    let body = otlp_bodies(1, 50).remove(0).bytes;
    let translator = Translator::default();
    for _ in 0..rounds {
        let body = black_box(&body[..]);
        match side.as_str() {
            "wire" => {
                black_box(WireRequest::parse(body).expect("wire"));
            }
            "prost" => {
                black_box(ExportTraceServiceRequest::decode(body).expect("prost"));
            }
            "wire-translate" => {
                let request = WireRequest::parse(body).expect("wire");
                for resource_spans in request.resource_spans() {
                    let resource = translator.prepare(resource_spans.resource());
                    for span in resource_spans.spans() {
                        if check(&span).is_ok() {
                            black_box(resource.translate(&span));
                        }
                    }
                }
            }
            "prost-translate" => {
                let request = ExportTraceServiceRequest::decode(body).expect("prost");
                for resource_spans in &request.resource_spans {
                    let resource = translator.prepare_otlp(resource_spans.resource.as_ref());
                    for scope_spans in &resource_spans.scope_spans {
                        for span in &scope_spans.spans {
                            let view = OtlpSpan::new(span, None, scope_spans.scope.as_ref());
                            if check(&view).is_ok() {
                                black_box(resource.translate(&view));
                            }
                        }
                    }
                }
            }
            other => panic!("unknown side {other:?}"),
        }
    }
}
