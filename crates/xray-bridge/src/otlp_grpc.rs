//! The OTLP gRPC receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export`,
//! gzip accepted, messages size-limited. Requests tonic refuses before they reach the
//! handler (undecodable, too large, unknown compression) are counted by their status
//! code by a small layer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::counters::LogLimiter;
use crate::otlp::{Ingest, OtlpCounters};

/// The `TraceService` implementation.
#[derive(Debug, Clone)]
pub struct GrpcTraces {
    ingest: Ingest,
    counters: OtlpCounters,
}

#[tonic::async_trait]
impl TraceService for GrpcTraces {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let request = request.into_inner();
        self.ingest.wait_for_room().await;
        let (ingest, counters) = (self.ingest.clone(), self.counters.clone());
        // Translation is CPU work: keep it off the connection-handling threads.
        let outcome = tokio::task::spawn_blocking(move || ingest.ingest(&request, &counters))
            .await
            .map_err(|e| Status::internal(format!("translation task failed: {e}")))?;
        Ok(Response::new(outcome.response()))
    }
}

/// Serves the trace service on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    ingest: Ingest,
    counters: OtlpCounters,
    max_bytes: usize,
    mut stop: watch::Receiver<bool>,
) {
    let service = TraceServiceServer::new(GrpcTraces {
        ingest,
        counters: counters.clone(),
    })
    .accept_compressed(CompressionEncoding::Gzip)
    .max_decoding_message_size(max_bytes);
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
