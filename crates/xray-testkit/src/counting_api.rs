//! A stub X-Ray `PutTraceSegments` API on loopback: answers every `POST /TraceSegments`
//! with `{"UnprocessedTraceSegments":[]}` and counts the documents and spans received.
//! Throttled ([`StubApi::start_throttled`]), it takes at most a number of calls per
//! second and answers the others `429 ThrottlingException`, as X-Ray does over its quota.
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

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::http::{Message, read_message};

const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 31\r\n\r\n{\"UnprocessedTraceSegments\":[]}";

const THROTTLED: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-ErrorType: ThrottlingException\r\nContent-Length: 58\r\n\r\n{\"__type\":\"ThrottlingException\",\"message\":\"Rate exceeded\"}";

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
    /// Calls answered `429 ThrottlingException` (throttled stub only).
    pub throttled: AtomicU64,
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

/// Spans in one document: 1 plus its nested subsegments; 0 when it is not a JSON object.
/// Counted in one streaming pass that allocates nothing, so that the stub's own CPU use
/// stays well below the servers' it measures.
pub fn spans_in(doc: &str) -> u64 {
    serde_json::from_str::<SpanCount>(doc).map_or(0, |c| c.0)
}

/// A segment or subsegment: 1 plus the spans of its `subsegments` array; every other
/// value is skipped unparsed ([`IgnoredAny`]).
struct SpanCount(u64);

impl<'de> de::Deserialize<'de> for SpanCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = SpanCount;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a segment document")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SpanCount, A::Error> {
                let mut spans = 1;
                while let Some(key) = map.next_key::<IsSubsegments>()? {
                    if key.0 {
                        spans += map.next_value::<Subsegments>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(SpanCount(spans))
            }
        }
        d.deserialize_map(Object)
    }
}

/// Whether a key is `subsegments` (read without allocating).
struct IsSubsegments(bool);

impl<'de> de::Deserialize<'de> for IsSubsegments {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Key;
        impl Visitor<'_> for Key {
            type Value = IsSubsegments;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<IsSubsegments, E> {
                Ok(IsSubsegments(key == "subsegments"))
            }
        }
        d.deserialize_str(Key)
    }
}

/// The spans of a `subsegments` array.
struct Subsegments(u64);

impl<'de> de::Deserialize<'de> for Subsegments {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Array;
        impl<'de> Visitor<'de> for Array {
            type Value = Subsegments;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of subsegments")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Subsegments, A::Error> {
                let mut spans = 0;
                while let Some(c) = seq.next_element::<SpanCount>()? {
                    spans += c.0;
                }
                Ok(Subsegments(spans))
            }
        }
        d.deserialize_seq(Array)
    }
}

/// A `PutTraceSegments` body: its documents and their spans, each document unescaped into
/// serde_json's scratch buffer and counted there (no copy per document); the first one is
/// kept as a sample when `keep_first`.
struct Put {
    documents: u64,
    spans: u64,
    first: Option<String>,
}

impl Put {
    fn read(body: &[u8], keep_first: bool) -> serde_json::Result<Put> {
        let mut put = Put {
            documents: 0,
            spans: 0,
            first: None,
        };
        let mut d = serde_json::Deserializer::from_slice(body);
        d.deserialize_map(PutBody {
            put: &mut put,
            keep_first,
        })?;
        d.end()?;
        Ok(put)
    }
}

struct PutBody<'p> {
    put: &'p mut Put,
    keep_first: bool,
}

impl<'de> Visitor<'de> for PutBody<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a PutTraceSegments body")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut found = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "TraceSegmentDocuments" {
                found = true;
                map.next_value_seed(Documents {
                    put: &mut *self.put,
                    keep_first: self.keep_first,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if found {
            Ok(())
        } else {
            Err(de::Error::missing_field("TraceSegmentDocuments"))
        }
    }
}

struct Documents<'p> {
    put: &'p mut Put,
    keep_first: bool,
}

impl<'de> de::DeserializeSeed<'de> for Documents<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Documents<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of document strings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Document {
                put: &mut *self.put,
                keep_first: self.keep_first,
            })?
            .is_some()
        {}
        Ok(())
    }
}

struct Document<'p> {
    put: &'p mut Put,
    keep_first: bool,
}

impl<'de> de::DeserializeSeed<'de> for Document<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for Document<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a document string")
    }
    fn visit_str<E: de::Error>(self, doc: &str) -> Result<(), E> {
        if self.keep_first && self.put.first.is_none() {
            self.put.first = Some(doc.to_owned());
        }
        self.put.documents += 1;
        self.put.spans += spans_in(doc);
        Ok(())
    }
}

/// At most `per_second` calls taken in each wall-clock second.
#[derive(Debug)]
struct Quota {
    per_second: u64,
    start: Instant,
    /// The current second (since `start`) and the calls taken in it.
    window: Mutex<(u64, u64)>,
}

impl Quota {
    fn take(&self) -> bool {
        let second = self.start.elapsed().as_secs();
        let mut window = self.window.lock().unwrap();
        if window.0 != second {
            *window = (second, 0);
        }
        window.1 += 1;
        window.1 <= self.per_second
    }
}

impl StubApi {
    /// Starts listening on a free loopback port.
    pub fn start() -> std::io::Result<StubApi> {
        Self::start_with(None)
    }

    /// Starts listening on a free loopback port, taking at most `calls_per_second`
    /// `PutTraceSegments` calls each second and throttling the others.
    pub fn start_throttled(calls_per_second: u64) -> std::io::Result<StubApi> {
        Self::start_with(Some(Arc::new(Quota {
            per_second: calls_per_second,
            start: Instant::now(),
            window: Mutex::new((0, 0)),
        })))
    }

    fn start_with(quota: Option<Arc<Quota>>) -> std::io::Result<StubApi> {
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
                        let (received, quota) = (received.clone(), quota.clone());
                        let _ = std::thread::Builder::new()
                            .name("stub-api-conn".into())
                            .spawn(move || serve(stream, &received, quota.as_deref()));
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

fn serve(stream: TcpStream, received: &Received, quota: Option<&Quota>) {
    let _ = stream.set_nodelay(true);
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(256 * 1024, stream);
    let mut msg = Message::default();
    let mut inflated = Vec::new();
    while let Ok(true) = read_message(&mut reader, &mut msg) {
        if quota.is_some_and(|q| !q.take()) {
            received.throttled.fetch_add(1, Relaxed);
            if out.write_all(THROTTLED).is_err() {
                return;
            }
            continue;
        }
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
        let keep_first = received.first.lock().unwrap().is_none();
        match Put::read(body, keep_first) {
            Ok(put) if msg.start.starts_with("POST /TraceSegments") => {
                if let Some(first) = put.first {
                    received.first.lock().unwrap().get_or_insert(first);
                }
                received.calls.fetch_add(1, Relaxed);
                received.documents.fetch_add(put.documents, Relaxed);
                received.spans.fetch_add(put.spans, Relaxed);
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
        assert_eq!(spans_in(r#"{"id":"a","subsegments":[{"id":"b"},"#), 0);
        assert_eq!(spans_in(r#"{"id":"a","a\u0062c":{"subsegments":[{}]}}"#), 1);
    }

    #[test]
    fn put_bodies_are_counted_per_document() {
        let doc = r#"{"id":"a","subsegments":[{"id":"b","subsegments":[{"id":"c"}]}]}"#;
        let body = serde_json::json!({"TraceSegmentDocuments": [doc, r#"{"id":"d"}"#]});
        let put = Put::read(body.to_string().as_bytes(), true).unwrap();
        assert_eq!((put.documents, put.spans), (2, 4));
        assert_eq!(put.first.as_deref(), Some(doc));
        let put = Put::read(body.to_string().as_bytes(), false).unwrap();
        assert_eq!(put.first, None);
        assert!(Put::read(br#"{"Other":[]}"#, true).is_err());
        assert!(Put::read(br#"{"TraceSegmentDocuments":["{}"]} x"#, true).is_err());
    }
}
