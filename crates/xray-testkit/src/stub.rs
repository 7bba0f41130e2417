//! A small scripted HTTP/1.1 stub server on loopback, for tests of clients (exporters,
//! proxies): a handler decides each answer from the request and its sequence number, and
//! every request is kept for the test to inspect. Std only, one thread per connection, so a
//! handler that blocks holds only its own connection (calls in flight can be measured).

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::http::{Message, read_message};

/// One request the stub received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// The request target in origin form, e.g. `/TraceSegments` (an absolute-form target,
    /// as a proxy sends it, is reduced to its path and query).
    pub path: String,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body (by `content-length`, or de-chunked).
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The documents of a `PutTraceSegments` body (`{"TraceSegmentDocuments": [...]}`),
    /// each still a JSON string; `None` when the body is not one.
    pub fn trace_segment_documents(&self) -> Option<Vec<String>> {
        let body: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        body["TraceSegmentDocuments"]
            .as_array()?
            .iter()
            .map(|d| d.as_str().map(str::to_owned))
            .collect()
    }
}

/// What the stub does with a request.
pub enum Reply {
    /// Answer with this status, extra headers and body.
    Respond(u16, Vec<(String, String)>, Vec<u8>),
    /// Wait, then answer (the client should have given up by then).
    Delay(Duration, Box<Reply>),
    /// Close the connection without answering.
    Close,
}

impl Reply {
    /// A JSON answer with `status`.
    pub fn json(status: u16, body: &str) -> Reply {
        Reply::Respond(
            status,
            vec![("content-type".into(), "application/json".into())],
            body.as_bytes().to_vec(),
        )
    }
}

type Handler = dyn Fn(usize, &Request) -> Reply + Send + Sync;

/// A scripted HTTP server; the handler gets the request's sequence number (0-based).
pub struct Stub {
    /// The loopback port it listens on.
    pub port: u16,
    /// Every request received, in order.
    pub requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl Stub {
    /// Starts on a free loopback port; see [`start_on`](Self::start_on).
    pub fn start(handler: impl Fn(usize, &Request) -> Reply + Send + Sync + 'static) -> Stub {
        Self::start_on(0, handler)
    }

    /// Starts on a given loopback port (0: any free one). Once the stub is dropped, its
    /// open connections close at their next request without an answer and new ones are
    /// refused, like a server that went away; starting again on the same port brings
    /// it back.
    pub fn start_on(
        port: u16,
        handler: impl Fn(usize, &Request) -> Reply + Send + Sync + 'static,
    ) -> Stub {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        {
            let requests = requests.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let requests = requests.clone();
                    let handler = handler.clone();
                    let stop = stop.clone();
                    std::thread::spawn(move || serve(stream, requests, handler, stop));
                }
            });
        }
        Stub {
            port,
            requests,
            stop,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A copy of every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(
    stream: TcpStream,
    requests: Arc<Mutex<Vec<Request>>>,
    handler: Arc<Handler>,
    stop: Arc<AtomicBool>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(300)));
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut msg = Message::default();
    while let Ok(true) = read_message(&mut reader, &mut msg) {
        if stop.load(Ordering::SeqCst) {
            // Gone: close without answering.
            return;
        }
        let close = msg
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let mut start = msg.start.split_whitespace();
        let request = Request {
            method: start.next().unwrap_or("").to_owned(),
            path: origin_form(start.next().unwrap_or("")).to_owned(),
            headers: std::mem::take(&mut msg.headers),
            body: std::mem::take(&mut msg.body),
        };
        let n = {
            let mut all = requests.lock().unwrap();
            all.push(request.clone());
            all.len() - 1
        };
        let mut reply = handler(n, &request);
        loop {
            match reply {
                Reply::Delay(d, next) => {
                    std::thread::sleep(d);
                    reply = *next;
                }
                Reply::Close => return,
                Reply::Respond(status, extra, body) => {
                    let mut out =
                        format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
                    for (k, v) in extra {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    if close {
                        out.push_str("connection: close\r\n");
                    }
                    out.push_str("\r\n");
                    let mut bytes = out.into_bytes();
                    bytes.extend_from_slice(&body);
                    if writer.write_all(&bytes).is_err() || close {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

/// The path of a request target: a proxy sends the absolute form
/// (`http://host:port/path`), which a server must accept too (RFC 9112, 3.2.2).
fn origin_form(target: &str) -> &str {
    match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    }
}

impl std::fmt::Debug for Stub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stub")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Respond(status, _, body) => write!(f, "Respond({status}, {} bytes)", body.len()),
            Reply::Delay(d, next) => write!(f, "Delay({d:?}, {next:?})"),
            Reply::Close => f.write_str("Close"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_origin_absolute_and_chunked_requests_on_one_connection_until_close() {
        let stub = Stub::start(|n, req| Reply::json(200 + n as u16, &req.path));
        let mut conn = TcpStream::connect(("127.0.0.1", stub.port)).unwrap();
        let url = stub.url();
        let wire = format!(
            "POST /a?x=1 HTTP/1.1\r\ncontent-length: 2\r\n\r\nhi\
             POST {url}/b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n\
             GET /c HTTP/1.1\r\nConnection: close\r\n\r\n"
        );
        conn.write_all(wire.as_bytes()).unwrap();
        let mut reader = BufReader::new(conn);
        let mut msg = Message::default();
        for (status, body) in [(200, "/a?x=1"), (201, "/b"), (202, "/c")] {
            assert!(read_message(&mut reader, &mut msg).unwrap());
            assert_eq!(
                (msg.status(), msg.body.as_slice()),
                (status, body.as_bytes())
            );
        }
        assert_eq!(msg.header("connection"), Some("close"));
        assert!(
            !read_message(&mut reader, &mut msg).unwrap(),
            "closed after the answer"
        );
        let seen = stub.requests();
        assert_eq!(seen[0].body, b"hi");
        assert_eq!(seen[1].body, b"xy");
        assert_eq!(seen[1].header("TRANSFER-ENCODING"), Some("chunked"));
    }
}
