//! A stub X-Ray `PutTraceSegments` API on loopback: answers every `POST /TraceSegments`
//! with `{"UnprocessedTraceSegments":[]}` and counts the documents and spans received.
//!
//! Bodies are JSON; a `Content-Encoding: gzip` header is honoured when the body really is
//! gzip (magic bytes) and ignored on a plain body (rotel's X-Ray exporter sends the
//! header on uncompressed bodies).

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use serde::Deserialize;

use crate::http::{Message, read_message};

const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 31\r\n\r\n{\"UnprocessedTraceSegments\":[]}";

/// What the stub has received so far.
#[derive(Debug, Default)]
pub struct Received {
    /// `PutTraceSegments` calls.
    pub calls: AtomicU64,
    /// Documents in them.
    pub documents: AtomicU64,
    /// Spans in them: each document's segment or subsegment plus its nested subsegments.
    pub spans: AtomicU64,
    /// Requests that were not a readable `PutTraceSegments` call.
    pub bad: AtomicU64,
    /// The first document received, as a sample of what was sent.
    pub first: Mutex<Option<String>>,
    /// When the last document arrived.
    pub last_at: Mutex<Option<Instant>>,
}

/// The stub server; stops accepting on drop.
pub struct StubApi {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its counters.
    pub received: Arc<Received>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

#[derive(Deserialize)]
struct Put<'a> {
    #[serde(rename = "TraceSegmentDocuments", borrow)]
    documents: Vec<std::borrow::Cow<'a, str>>,
}

/// Spans in one document: 1 plus its nested subsegments (the document is only parsed
/// when it has any, to keep the stub's own CPU use small).
pub fn spans_in(doc: &str) -> u64 {
    if !doc.contains("\"subsegments\"") {
        return u64::from(serde_json::from_str::<serde::de::IgnoredAny>(doc).is_ok());
    }
    fn count(v: &serde_json::Value) -> u64 {
        1 + v
            .get("subsegments")
            .and_then(|s| s.as_array())
            .map_or(0, |subs| subs.iter().map(count).sum())
    }
    match serde_json::from_str::<serde_json::Value>(doc) {
        Ok(v) => count(&v),
        Err(_) => 0,
    }
}

impl StubApi {
    /// Starts listening on a free loopback port.
    pub fn start() -> std::io::Result<StubApi> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let received = Arc::new(Received::default());
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (received, stop) = (received.clone(), stop.clone());
            std::thread::Builder::new()
                .name("stub-api".into())
                .spawn(move || {
                    for stream in listener.incoming() {
                        if stop.load(Relaxed) {
                            break;
                        }
                        let Ok(stream) = stream else { continue };
                        let received = received.clone();
                        let _ = std::thread::Builder::new()
                            .name("stub-api-conn".into())
                            .spawn(move || serve(stream, &received));
                    }
                })?
        };
        Ok(StubApi {
            port,
            received,
            stop,
            accept: Some(accept),
        })
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for StubApi {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, received: &Received) {
    let _ = stream.set_nodelay(true);
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(256 * 1024, stream);
    let mut msg = Message::default();
    let mut inflated = Vec::new();
    while let Ok(true) = read_message(&mut reader, &mut msg) {
        let gzip = msg
            .header("content-encoding")
            .is_some_and(|v| v.contains("gzip"))
            && msg.body.starts_with(&[0x1f, 0x8b]);
        let body: &[u8] = if gzip {
            inflated.clear();
            match flate2::read::MultiGzDecoder::new(&msg.body[..]).read_to_end(&mut inflated) {
                Ok(_) => &inflated,
                Err(_) => &[],
            }
        } else {
            &msg.body
        };
        match serde_json::from_slice::<Put<'_>>(body) {
            Ok(put) if msg.start.starts_with("POST /TraceSegments") => {
                let spans: u64 = put.documents.iter().map(|d| spans_in(d)).sum();
                if let Some(first) = put.documents.first() {
                    let mut sample = received.first.lock().unwrap();
                    if sample.is_none() {
                        *sample = Some(first.to_string());
                    }
                }
                received.calls.fetch_add(1, Relaxed);
                received
                    .documents
                    .fetch_add(put.documents.len() as u64, Relaxed);
                received.spans.fetch_add(spans, Relaxed);
                *received.last_at.lock().unwrap() = Some(Instant::now());
            }
            _ => {
                received.bad.fetch_add(1, Relaxed);
            }
        }
        if out.write_all(ANSWER).is_err() {
            return;
        }
    }
}

impl std::fmt::Debug for StubApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StubApi").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_count_nested_subsegments() {
        assert_eq!(
            spans_in(
                r#"{"id":"a","subsegments":[{"id":"b","subsegments":[{"id":"c"}]},{"id":"d"}]}"#
            ),
            4
        );
        assert_eq!(
            spans_in(r#"{"id":"a","cause":{"exceptions":[{"id":"e"}]}}"#),
            1
        );
        assert_eq!(spans_in("not json"), 0);
    }
}
