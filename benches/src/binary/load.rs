//! The load: keep-alive HTTP/1.1 connections posting pre-encoded OTLP bodies back to back
//! (closed loop: each connection sends its next request once the previous is answered),
//! and a paced sender of daemon datagrams.

use std::io::{BufReader, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message as _;

use super::workload::OtlpBody;
use xray_testkit::http::{Message, read_message};

/// What a load run did.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadResult {
    /// Requests answered.
    pub requests: u64,
    /// Spans sent in answered requests.
    pub spans_sent: u64,
    /// Spans the server accepted (200, minus `partial_success.rejected_spans`).
    pub spans_accepted: u64,
    /// Requests answered with another status, or failed on the connection.
    pub failed: u64,
    /// How long the load ran.
    pub elapsed: Duration,
}

impl LoadResult {
    fn add(&mut self, other: &LoadResult) {
        self.requests += other.requests;
        self.spans_sent += other.spans_sent;
        self.spans_accepted += other.spans_accepted;
        self.failed += other.failed;
        self.elapsed = self.elapsed.max(other.elapsed);
    }
}

/// Posts `bodies` (round robin) to `http://127.0.0.1:port/v1/traces` over `connections`
/// keep-alive connections until `duration` has passed, or each connection has sent
/// `max_requests` requests.
pub fn otlp_http(
    port: u16,
    bodies: &[OtlpBody],
    connections: usize,
    duration: Duration,
    max_requests: u64,
) -> LoadResult {
    let requests = requests(port, bodies);
    let start = Instant::now();
    let deadline = start + duration;
    let mut total = LoadResult::default();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..connections)
            .map(|c| {
                let requests = &requests;
                scope.spawn(move || connection(port, requests, c, deadline, max_requests, start))
            })
            .collect();
        for w in workers {
            total.add(&w.join().expect("load thread"));
        }
    });
    total
}

/// Posts `bodies` (round robin) to `http://127.0.0.1:port/v1/traces` over one keep-alive
/// connection, at about `spans_per_second` (open loop: a request is due at its time
/// whatever the answers before it took, and goes as soon as the previous one is answered),
/// until `duration` has passed.
pub fn otlp_http_paced(
    port: u16,
    bodies: &[OtlpBody],
    spans_per_second: u64,
    duration: Duration,
) -> LoadResult {
    let spans = bodies.first().map_or(1, |b| b.spans.max(1));
    let per_second = (spans_per_second as f64 / spans as f64).max(1e-3);
    let requests = requests(port, bodies);
    let start = Instant::now();
    let deadline = start + duration;
    let mut result = LoadResult::default();
    let mut conn = connect(port);
    let mut msg = Message::default();
    let mut i = 0u64;
    while Instant::now() < deadline {
        let due = start + Duration::from_secs_f64(i as f64 / per_second);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait.min(deadline.saturating_duration_since(Instant::now())));
            if Instant::now() >= deadline {
                break;
            }
        }
        let (bytes, spans) = &requests[i as usize % requests.len()];
        i += 1;
        send_one(&mut conn, port, bytes, *spans, &mut msg, &mut result);
    }
    result.elapsed = start.elapsed();
    result
}

/// Each body's whole HTTP request, with its span count.
fn requests(port: u16, bodies: &[OtlpBody]) -> Vec<(Vec<u8>, u64)> {
    bodies
        .iter()
        .map(|b| (request_bytes(port, b), b.spans))
        .collect()
}

fn request_bytes(port: u16, body: &OtlpBody) -> Vec<u8> {
    let mut r = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n",
        body.bytes.len()
    )
    .into_bytes();
    r.extend_from_slice(&body.bytes);
    r
}

/// Sends one request on `conn` (reconnecting when it is gone) and counts the answer.
fn send_one(
    conn: &mut Option<(TcpStream, BufReader<TcpStream>)>,
    port: u16,
    bytes: &[u8],
    spans: u64,
    msg: &mut Message,
    result: &mut LoadResult,
) {
    let Some((stream, reader)) = conn.as_mut() else {
        result.failed += 1;
        std::thread::sleep(Duration::from_millis(10));
        *conn = connect(port);
        return;
    };
    let answered = stream
        .write_all(bytes)
        .and_then(|()| read_message(reader, msg));
    match answered {
        Ok(true) if msg.status() == 200 => {
            result.requests += 1;
            result.spans_sent += spans;
            let rejected = ExportTraceServiceResponse::decode(&msg.body[..])
                .ok()
                .and_then(|r| r.partial_success)
                .map_or(0, |p| p.rejected_spans.max(0) as u64);
            result.spans_accepted += spans.saturating_sub(rejected);
        }
        Ok(true) => result.failed += 1,
        _ => {
            result.failed += 1;
            *conn = connect(port);
        }
    }
}

fn connect(port: u16) -> Option<(TcpStream, BufReader<TcpStream>)> {
    let stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_nodelay(true).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let reader = BufReader::new(stream.try_clone().ok()?);
    Some((stream, reader))
}

fn connection(
    port: u16,
    requests: &[(Vec<u8>, u64)],
    offset: usize,
    deadline: Instant,
    max_requests: u64,
    start: Instant,
) -> LoadResult {
    let mut result = LoadResult::default();
    let mut conn = connect(port);
    let mut msg = Message::default();
    let mut i = offset;
    while Instant::now() < deadline && result.requests + result.failed < max_requests {
        let (bytes, spans) = &requests[i % requests.len()];
        i += 1;
        send_one(&mut conn, port, bytes, *spans, &mut msg, &mut result);
    }
    result.elapsed = start.elapsed();
    result
}

/// Sends `datagrams` (round robin) to `127.0.0.1:port` at about `per_second` for
/// `duration` (or `max` datagrams), in bursts every millisecond. Returns how many were
/// sent and for how long.
pub fn udp_paced(
    port: u16,
    datagrams: &[Vec<u8>],
    per_second: u64,
    duration: Duration,
    max: u64,
) -> (u64, Duration) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind UDP sender");
    socket.connect(("127.0.0.1", port)).expect("connect UDP");
    let start = Instant::now();
    let (mut attempts, mut sent) = (0u64, 0u64);
    loop {
        let elapsed = start.elapsed();
        if elapsed >= duration || attempts >= max {
            break;
        }
        let due = ((elapsed.as_secs_f64() * per_second as f64) as u64 + 1).min(max);
        while attempts < due {
            let datagram = &datagrams[attempts as usize % datagrams.len()];
            attempts += 1;
            if socket.send(datagram).is_ok() {
                sent += 1;
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    (sent, start.elapsed())
}
