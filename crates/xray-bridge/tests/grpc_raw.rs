//! Malformed protobuf over gRPC: refused with the status tonic's generated server and
//! prost codec give (the bridge reads the message bytes itself), and the refusal is still
//! counted; a good request on the same connection afterwards is delivered.

mod common;

use std::time::Duration;

use common::{Bridge, Options, Scratch, otlp_request, otlp_span, read_lines};
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
    export_with(tonic::client::Grpc::new(channel), body).await
}

async fn export_with(
    mut grpc: tonic::client::Grpc<Channel>,
    body: Vec<u8>,
) -> Result<Vec<u8>, tonic::Status> {
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
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;

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
        let good = otlp_request("svc", vec![otlp_span(7, 7, "after-garbage")]);
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

/// The generated `TraceService` server with tonic's prost codec, answering every request
/// it decodes with an empty response: the reference for how a message is refused.
#[derive(Debug)]
struct Reference;

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService
    for Reference
{
    async fn export(
        &self,
        _: tonic::Request<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
        >,
    ) -> Result<
        tonic::Response<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse,
        >,
        tonic::Status,
    > {
        Ok(tonic::Response::new(Default::default()))
    }
}

#[test]
fn grpc_messages_are_refused_with_the_status_the_prost_codec_gives() {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;

    let scratch = Scratch::new("grpc-status");
    let out = scratch.path("docs.jsonl");
    let mut bridge = Bridge::start(Options::export(format!("file:{}", out.display())));
    let url = bridge.url(bridge.grpc, "");
    let good = otlp_request("svc", vec![otlp_span(7, 7, "ok")]).encode_to_vec();
    let mut bad_utf8 = good.clone();
    let at = bad_utf8.windows(2).position(|w| w == b"ok").unwrap();
    bad_utf8[at] = 0xff;
    let bodies = [
        vec![0x0a, 0xff, 0xff, 0xff, 0x01, 0x02],
        good[..good.len() - 3].to_vec(),
        bad_utf8,
        vec![0x08, 0x01],
        vec![0x0b],
        good.clone(),
        [good.clone(), good.clone()].concat(),
        Vec::new(),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let reference = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(
                    TraceServiceServer::new(Reference)
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
                )
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        let ours = Channel::from_shared(url).unwrap().connect().await.unwrap();
        let theirs = Channel::from_shared(reference)
            .unwrap()
            .connect()
            .await
            .unwrap();
        for body in bodies {
            for gzip in [false, true] {
                let grpc = |channel: &Channel| {
                    let grpc = tonic::client::Grpc::new(channel.clone());
                    if gzip {
                        grpc.send_compressed(tonic::codec::CompressionEncoding::Gzip)
                    } else {
                        grpc
                    }
                };
                let a = export_with(grpc(&ours), body.clone()).await;
                let b = export_with(grpc(&theirs), body.clone()).await;
                match (a, b) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "{body:?}"),
                    (Err(a), Err(b)) => {
                        assert_eq!((a.code(), a.message()), (b.code(), b.message()), "{body:?}")
                    }
                    (a, b) => panic!("{body:?}, gzip {gzip}: ours {a:?}, prost's {b:?}"),
                }
            }
        }
    });
    drop(rt);
    assert_eq!(bridge.stop(Duration::from_secs(20)), 0);
    // The good request, once and twice over, plain and compressed.
    assert_eq!(read_lines(&out).len(), 6);
}
