//! Test helpers: spans, log capture, a UDP collector; the scripted HTTP stub server is
//! xray-testkit's.
#![allow(dead_code)]
#![allow(unsafe_code)] // FFI or a std API that is unsafe to call; each block says why it is sound.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use opentelemetry::InstrumentationScope;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

#[allow(unused_imports)] // not every test binary talks HTTP
pub(crate) use xray_testkit::stub::{Reply, Request, Stub};

/// A finished SDK span.
pub(crate) fn span(trace: u128, id: u64, parent: u64, kind: SpanKind, name: &str) -> SpanData {
    let now = SystemTime::now();
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(trace),
            SpanId::from(id),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::from(parent),
        parent_span_is_remote: false,
        span_kind: kind,
        name: name.to_owned().into(),
        start_time: now - Duration::from_millis(20),
        end_time: now,
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::builder("test").build(),
    }
}

/// The ids of a PutTraceSegments call's documents, each checked against the schema.
pub(crate) fn document_ids(request: &Request) -> Vec<String> {
    let docs = request
        .trace_segment_documents()
        .expect("a PutTraceSegments body");
    docs.iter()
        .map(|text| {
            xray_testkit::assert_schema_valid(text);
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            v["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// A time-prefixed trace id, as X-Ray's own ids are.
pub(crate) fn trace_id(n: u32) -> u128 {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u128;
    (secs << 96) | (0xabc0_0000 + n as u128)
}

/// Log lines written by `tracing` in this test binary (any thread).
pub(crate) fn logs() -> &'static Mutex<String> {
    static LOGS: OnceLock<Mutex<String>> = OnceLock::new();
    static INSTALLED: OnceLock<()> = OnceLock::new();
    let logs = LOGS.get_or_init(|| Mutex::new(String::new()));
    INSTALLED.get_or_init(|| {
        struct W;
        impl Write for W {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                LOGS.get()
                    .unwrap()
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(buf));
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let subscriber = tracing_subscriber::fmt()
            .with_writer(|| W)
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
    logs
}

/// A UDP listener with a large receive buffer, read by a thread of its own so bursts of
/// datagrams are not lost in the kernel before the test reads them.
pub(crate) struct Collector {
    pub port: u16,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Collector {
    pub(crate) fn start() -> Collector {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        set_big_receive_buffer(&socket);
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let port = socket.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::downgrade(&received);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 70_000];
            loop {
                match socket.recv(&mut buf) {
                    Ok(n) => match sink.upgrade() {
                        Some(s) => s.lock().unwrap().push(buf[..n].to_vec()),
                        None => return,
                    },
                    Err(_) if sink.strong_count() == 0 => return,
                    Err(_) => {}
                }
            }
        });
        Collector { port, received }
    }

    /// Waits until `n` datagrams arrived (or 5 s), then a little longer for extras.
    pub(crate) fn wait_for(&self, n: usize) -> Vec<Vec<u8>> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.received.lock().unwrap().len() < n && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(200));
        self.received.lock().unwrap().clone()
    }
}

fn set_big_receive_buffer(socket: &std::net::UdpSocket) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 8 << 20;
    for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: a valid fd and a c_int option value of the right length.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                &size as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}
