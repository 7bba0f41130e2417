//! Malformed protobuf over gRPC: tonic refuses it before our handler, and the refusal is
//! still counted; a good request on the same connection afterwards is delivered.

mod common;

use std::time::Duration;

use common::{Bridge, Options, Scratch, read_lines};
use prost::Message;
use prost::bytes::{Buf, BufMut};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

/// Sends and receives raw message bytes.
#[derive(Debug, Clone, Default)]
struct RawCodec;

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

async fn export(channel: Channel, body: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        .parse()
        .unwrap();
    grpc.unary(tonic::Request::new(body), path, RawCodec)
        .await
        .map(|r| r.into_inner())
}

#[test]
fn malformed_grpc_messages_are_refused_and_counted() {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    let scratch = Scratch::new("grpc-raw");
    let out = scratch.path("docs.jsonl");
    let mut bridge = Bridge::start(Options::export(format!("file:{}", out.display())));
    let url = bridge.url(bridge.grpc, "");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let channel = Channel::from_shared(url).unwrap().connect().await.unwrap();
        let err = export(channel.clone(), vec![0x0a, 0xff, 0xff, 0xff, 0x01, 0x02])
            .await
            .expect_err("malformed protobuf");
        assert_ne!(err.code(), tonic::Code::Ok);
        let good = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![7; 16],
                        span_id: vec![7; 8],
                        name: "after-garbage".into(),
                        kind: 2,
                        start_time_unix_nano: 1_700_000_000_000_000_000,
                        end_time_unix_nano: 1_700_000_001_000_000_000,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let answer = export(channel, good.encode_to_vec())
            .await
            .expect("good request");
        let answer = ExportTraceServiceResponse::decode(answer.as_slice()).unwrap();
        assert_eq!(answer.partial_success, None);
    });
    // Close the client's connection, so the drain does not wait for it.
    drop(rt);
    let text = bridge.wait_metrics(Duration::from_secs(10), |t| {
        Bridge::metric(t, "xray_bridge_export_items_sent_total{export=\"file\"}") == 1
    });
    let rejected: u64 = text
        .lines()
        .filter(|l| l.starts_with("xray_bridge_otlp_requests_rejected_total{protocol=\"grpc\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(rejected, 1, "{text}");
    assert_eq!(
        Bridge::metric(&text, "xray_bridge_otlp_requests_total{protocol=\"grpc\"}"),
        2
    );
    assert!(
        bridge.logs().contains("rejected OTLP gRPC request"),
        "{}",
        bridge.logs()
    );
    assert_eq!(bridge.stop(Duration::from_secs(20)), 0);
    let docs = read_lines(&out);
    assert_eq!(docs.len(), 1);
    assert!(docs[0].contains("after-garbage"), "{}", docs[0]);
}
