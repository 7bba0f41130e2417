//! The OTLP gRPC receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export`,
//! gzip accepted, messages size-limited. The service hands the handler the request's
//! message bytes (a codec that does not decode them), which `Ingest::ingest_protobuf`
//! reads in place or decodes with prost, as for OTLP/HTTP; a body prost rejects gets the
//! `INTERNAL` status with prost's error, as tonic's prost codec answers. Requests refused
//! (undecodable, too large, unknown compression) are counted by their status code by a
//! small layer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::SERVICE_NAME;
use prost::Message;
use prost::bytes::{Buf, Bytes};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::codegen::{Body, BoxFuture, StdError};
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::counters::LogLimiter;
use crate::otlp::{Ingest, OtlpCounters};

/// The `TraceService/Export` handler.
#[derive(Debug, Clone)]
pub struct GrpcTraces {
    ingest: Ingest,
    counters: OtlpCounters,
}

impl GrpcTraces {
    /// Handles one request's message bytes.
    async fn export(&self, message: Bytes) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.ingest.wait_for_room().await;
        let (ingest, counters) = (self.ingest.clone(), self.counters.clone());
        // Decoding and translation are CPU work: keep them off the connection-handling
        // threads.
        let outcome =
            tokio::task::spawn_blocking(move || ingest.ingest_protobuf(&message, &counters))
                .await
                .map_err(|e| Status::internal(format!("translation task failed: {e}")))?
                // What tonic's prost codec answers for a message it cannot decode.
                .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(outcome.response()))
    }
}

/// The gRPC codec of `Export`: requests as their message bytes (decompressed and
/// size-checked by tonic), responses encoded by prost.
#[derive(Debug, Clone, Copy, Default)]
struct MessageBytesCodec;

impl Codec for MessageBytesCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = MessageBytesCodec;
    type Decoder = MessageBytesCodec;

    fn encoder(&mut self) -> Self::Encoder {
        *self
    }

    fn decoder(&mut self) -> Self::Decoder {
        *self
    }
}

impl Encoder for MessageBytesCodec {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(buf)
            .map_err(|e| Status::internal(format!("could not encode the answer: {e}")))
    }
}

impl Decoder for MessageBytesCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

/// The `TraceService` server: `Export` through a codec that hands over the message
/// bytes, `UNIMPLEMENTED` for any other path (as the generated server answers).
#[derive(Debug, Clone)]
pub struct TraceServer {
    traces: Arc<GrpcTraces>,
    max_bytes: usize,
}

impl tonic::server::NamedService for TraceServer {
    const NAME: &'static str = SERVICE_NAME;
}

/// `Export` as tonic's unary service.
struct ExportMethod(Arc<GrpcTraces>);

impl tonic::server::UnaryService<Bytes> for ExportMethod {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<ExportTraceServiceResponse>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let traces = self.0.clone();
        Box::pin(async move { traces.export(request.into_inner()).await })
    }
}

impl<B> tower_service::Service<http::Request<B>> for TraceServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != EXPORT_PATH {
            return Box::pin(async move {
                let mut response = http::Response::new(tonic::body::Body::default());
                let headers = response.headers_mut();
                headers.insert(
                    Status::GRPC_STATUS,
                    (tonic::Code::Unimplemented as i32).into(),
                );
                headers.insert(
                    http::header::CONTENT_TYPE,
                    tonic::metadata::GRPC_CONTENT_TYPE,
                );
                Ok(response)
            });
        }
        let (traces, max_bytes) = (self.traces.clone(), self.max_bytes);
        Box::pin(async move {
            let mut accept = EnabledCompressionEncodings::default();
            accept.enable(CompressionEncoding::Gzip);
            let mut grpc = tonic::server::Grpc::new(MessageBytesCodec)
                .apply_compression_config(accept, EnabledCompressionEncodings::default())
                .apply_max_message_size_config(Some(max_bytes), None);
            Ok(grpc.unary(ExportMethod(traces), request).await)
        })
    }
}

/// The path of `TraceService/Export`.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Serves the trace service on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    ingest: Ingest,
    counters: OtlpCounters,
    max_bytes: usize,
    mut stop: watch::Receiver<bool>,
) {
    let service = TraceServer {
        traces: Arc::new(GrpcTraces {
            ingest,
            counters: counters.clone(),
        }),
        max_bytes,
    };
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let result = tonic::transport::Server::builder()
        .layer(CountStatusLayer {
            counters,
            limiter: Arc::new(LogLimiter::new(std::time::Duration::from_secs(10))),
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_REQUESTS)),
        })
        .add_service(service)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "OTLP gRPC server failed");
    }
}

/// Most requests decoded and handled at once, over all connections; more wait. With
/// `--max-request-bytes`, bounds the receiver's memory.
pub const MAX_CONCURRENT_REQUESTS: usize = 16;

/// Counts every request and those that end with a non-OK gRPC status, and bounds how
/// many are decoded at once.
#[derive(Debug, Clone)]
pub struct CountStatusLayer {
    counters: OtlpCounters,
    limiter: Arc<LogLimiter>,
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl<S> tower_layer::Layer<S> for CountStatusLayer {
    type Service = CountStatus<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountStatus {
            inner,
            layer: self.clone(),
        }
    }
}

/// See [`CountStatusLayer`].
#[derive(Debug, Clone)]
pub struct CountStatus<S> {
    inner: S,
    layer: CountStatusLayer,
}

/// A status code as a metric label.
fn code_label(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "ok",
        Cancelled => "cancelled",
        Unknown => "unknown",
        InvalidArgument => "invalid_argument",
        DeadlineExceeded => "deadline_exceeded",
        NotFound => "not_found",
        AlreadyExists => "already_exists",
        PermissionDenied => "permission_denied",
        ResourceExhausted => "resource_exhausted",
        FailedPrecondition => "failed_precondition",
        Aborted => "aborted",
        OutOfRange => "out_of_range",
        Unimplemented => "unimplemented",
        Internal => "internal",
        Unavailable => "unavailable",
        DataLoss => "data_loss",
        Unauthenticated => "unauthenticated",
    }
}

impl<S, B, RB> tower_service::Service<http::Request<B>> for CountStatus<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.layer.counters.requests.inc();
        let future = self.inner.call(request);
        let layer = self.layer.clone();
        Box::pin(async move {
            // The body is read and decoded when `future` is polled, so holding a permit
            // first bounds the messages in memory. The semaphore is never closed.
            let _permit = layer.in_flight.clone().acquire_owned().await.ok();
            let response = future.await?;
            // Errors found before the handler runs come back as trailers-only answers,
            // with the status in the headers.
            if let Some(code) = response.headers().get("grpc-status") {
                let code = tonic::Code::from_bytes(code.as_bytes());
                if code != tonic::Code::Ok {
                    let reason = code_label(code);
                    layer.counters.request_rejected(reason);
                    if let Some(count) = layer.limiter.allow(reason) {
                        let message = response
                            .headers()
                            .get("grpc-message")
                            .and_then(|m| m.to_str().ok())
                            .map(percent_decode)
                            .unwrap_or_default();
                        tracing::warn!(reason, count, "rejected OTLP gRPC request: {message}");
                    }
                }
            }
            Ok(response)
        })
    }
}

/// Decodes the `%XX` escapes of a `grpc-message` header, lossily.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_messages_are_percent_decoded() {
        assert_eq!(percent_decode("a%20b%3A%zz%2"), "a b:%zz%2");
        assert_eq!(percent_decode("%E2%98%83"), "☃");
        assert_eq!(percent_decode("é%é%"), "é%é%");
    }
}
