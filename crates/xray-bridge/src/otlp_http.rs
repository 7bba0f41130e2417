//! The OTLP/HTTP receiver: `POST /v1/traces` with protobuf or JSON bodies, optionally
//! gzip- or deflate-compressed, size-limited before and after decompression.
//!
//! Answers follow the OTLP specification: `200` with an `ExportTraceServiceResponse`
//! (with `partial_success` when spans were rejected) in the request's encoding; `400`,
//! `413` or `415` with a `google.rpc.Status` body otherwise. At most
//! [`MAX_CONCURRENT_BODIES`] bodies are held at once, so memory stays bounded.

use std::io::Read;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use crate::counters::LogLimiter;
use crate::otlp::{Ingest, OtlpCounters};

/// `google.rpc.Status`, the body of OTLP/HTTP error answers.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
pub struct RpcStatus {
    /// A `google.rpc.Code`.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// What went wrong.
    #[prost(string, tag = "2")]
    pub message: String,
}

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

struct HttpState {
    ingest: Ingest,
    counters: OtlpCounters,
    max_bytes: usize,
    limiter: LogLimiter,
    /// Bodies read and decoded at once: with `max_bytes`, bounds the receiver's memory.
    bodies: tokio::sync::Semaphore,
}

/// Most requests whose bodies are read and decoded at the same time; more wait.
pub const MAX_CONCURRENT_BODIES: usize = 16;

/// The router: `POST /v1/traces`; anything else is 404 (405 for other methods).
pub fn router(ingest: Ingest, counters: OtlpCounters, max_bytes: usize) -> Router {
    let state = Arc::new(HttpState {
        ingest,
        counters,
        max_bytes,
        limiter: LogLimiter::new(std::time::Duration::from_secs(10)),
        bodies: tokio::sync::Semaphore::new(MAX_CONCURRENT_BODIES),
    });
    Router::new()
        .route("/v1/traces", post(traces))
        // The handler reads the body with its own limit, to answer in the OTLP format.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// An error answer in the request's encoding (protobuf when unknown).
fn error(encoding: Encoding, status: StatusCode, grpc_code: i32, message: String) -> Response {
    let body = RpcStatus {
        code: grpc_code,
        message,
    };
    encode(encoding, status, body.encode_to_vec(), || {
        serde_json::to_vec(&body).unwrap_or_default()
    })
}

fn encode(
    encoding: Encoding,
    status: StatusCode,
    protobuf: Vec<u8>,
    json: impl FnOnce() -> Vec<u8>,
) -> Response {
    let (ct, body) = match encoding {
        Encoding::Protobuf => (PROTOBUF, protobuf),
        Encoding::Json => (JSON, json()),
    };
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    response
}

impl HttpState {
    fn reject(
        &self,
        reason: &'static str,
        encoding: Encoding,
        status: StatusCode,
        message: String,
    ) -> Response {
        self.counters.request_rejected(reason);
        if let Some(count) = self.limiter.allow(reason) {
            tracing::warn!(
                reason,
                count,
                status = status.as_u16(),
                "rejected OTLP/HTTP request: {message}"
            );
        }
        // google.rpc.Code: 3 INVALID_ARGUMENT, 8 RESOURCE_EXHAUSTED.
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            8
        } else {
            3
        };
        error(encoding, status, code, message)
    }
}

/// Reads at most `max + 1` bytes of the decompressed body, so an oversize body is seen
/// without inflating all of it.
fn decompress(body: &[u8], coding: &str, max: usize) -> Result<Vec<u8>, std::io::Error> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(max + 1));
    let limit = max as u64 + 1;
    match coding {
        "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(body)
            .take(limit)
            .read_to_end(&mut out)?,
        "deflate" => flate2::read::ZlibDecoder::new(body)
            .take(limit)
            .read_to_end(&mut out)?,
        other => {
            return Err(std::io::Error::other(format!(
                "unsupported content encoding {other:?}"
            )));
        }
    };
    Ok(out)
}

async fn traces(State(state): State<Arc<HttpState>>, request: Request) -> Response {
    state.counters.requests.inc();
    let (parts, body) = request.into_parts();
    let encoding = match media_type(&parts.headers).as_deref() {
        Some(PROTOBUF) | Some("application/protobuf") => Encoding::Protobuf,
        Some(JSON) => Encoding::Json,
        other => {
            return state.reject(
                "unsupported_content_type",
                Encoding::Protobuf,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "content type {:?} is not {PROTOBUF} or {JSON}",
                    other.unwrap_or("(none)")
                ),
            );
        }
    };
    let coding = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if !matches!(
        coding.as_str(),
        "" | "identity" | "gzip" | "x-gzip" | "deflate"
    ) {
        return state.reject(
            "unsupported_encoding",
            encoding,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content encoding {coding:?} is not gzip, deflate or identity"),
        );
    }
    let too_large = |what: &str| {
        format!(
            "{what} is larger than {} bytes (--max-request-bytes)",
            state.max_bytes
        )
    };
    // Never fails: the semaphore is never closed.
    let _permit = state.bodies.acquire().await.ok();
    // The body stays in the socket (TCP flow control) while the export catches up.
    state.ingest.wait_for_room().await;
    let raw: Bytes = match axum::body::to_bytes(Body::new(body), state.max_bytes).await {
        Ok(b) => b,
        Err(e) => {
            // A length-limit error, or the client went away mid-body.
            let over = std::error::Error::source(&e)
                .is_some_and(|s| s.to_string().contains("length limit"))
                || e.to_string().contains("length limit");
            return if over {
                state.reject(
                    "too_large",
                    encoding,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    too_large("request body"),
                )
            } else {
                state.reject(
                    "read_failed",
                    encoding,
                    StatusCode::BAD_REQUEST,
                    format!("could not read the body: {e}"),
                )
            };
        }
    };
    let decoded: Bytes = match coding.as_str() {
        "" | "identity" => raw,
        c => match decompress(&raw, c, state.max_bytes) {
            Ok(d) if d.len() > state.max_bytes => {
                return state.reject(
                    "too_large",
                    encoding,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    too_large("decompressed request body"),
                );
            }
            Ok(d) => Bytes::from(d),
            Err(e) => {
                return state.reject(
                    "bad_compression",
                    encoding,
                    StatusCode::BAD_REQUEST,
                    format!("body is not valid {c}: {e}"),
                );
            }
        },
    };
    // Decoding and translation are CPU work: keep them off the connection-handling
    // threads. A protobuf body is decoded there too (`Ingest::ingest_protobuf` chooses
    // how); a JSON body here, as before.
    let work = state.clone();
    let task = match encoding {
        Encoding::Protobuf => tokio::task::spawn_blocking(move || {
            work.ingest
                .ingest_protobuf(&decoded, &work.counters)
                .map_err(|e| {
                    (
                        "bad_protobuf",
                        format!("body is not an OTLP ExportTraceServiceRequest: {e}"),
                    )
                })
        }),
        Encoding::Json => {
            let request = match serde_json::from_slice::<ExportTraceServiceRequest>(&decoded) {
                Ok(r) => r,
                Err(e) => {
                    return state.reject(
                        "bad_json",
                        encoding,
                        StatusCode::BAD_REQUEST,
                        format!("body is not OTLP/JSON ExportTraceServiceRequest: {e}"),
                    );
                }
            };
            tokio::task::spawn_blocking(move || Ok(work.ingest.ingest(&request, &work.counters)))
        }
    };
    let outcome = match task.await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err((reason, message))) => {
            return state.reject(reason, encoding, StatusCode::BAD_REQUEST, message);
        }
        Err(e) => {
            return state.reject(
                "internal_error",
                encoding,
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("translation task failed: {e}"),
            );
        }
    };
    let response = outcome.response();
    encode(encoding, StatusCode::OK, response.encode_to_vec(), || {
        serde_json::to_vec(&response).unwrap_or_default()
    })
}
