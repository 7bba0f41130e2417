//! Which exporters start a Tokio runtime: none for daemon UDP, files and stdout (their
//! worker sends from its plain thread), one for a transport that needs it.
//!
//! A test binary of its own with one test: it counts the process's epoll instances (a
//! Tokio runtime with I/O enabled owns one), which tests running beside it would disturb.
#![cfg(target_os = "linux")]

mod common;

use std::time::Duration;

use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanExporter;
use xray_export::transport::SendFuture;
use xray_export::{Document, Pipeline, PipelineConfig, SendContext, Transport, XrayExporter};
use xray_testkit::{recv_all, temp_dir, udp_listener};

use common::{span, trace_id};

/// The epoll instances this process holds (`/proc/self/fd` links to `anon_inode:[eventpoll]`).
fn epoll_instances() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(Result::ok)
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().contains("eventpoll"))
        })
        .count()
}

/// A transport whose `send` needs a runtime's timer (the default `is_blocking`: false).
struct Timed;

impl Transport<Document> for Timed {
    fn name(&self) -> &'static str {
        "timed"
    }

    fn send<'a>(&'a mut self, batch: Vec<Document>, cx: &'a SendContext) -> SendFuture<'a> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            batch.iter().for_each(|d| cx.delivered(d));
        })
    }
}

fn doc() -> Document {
    Document::from_json(br#"{"name":"a","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1,"end_time":2}"#.to_vec()).unwrap()
}

#[test]
fn udp_file_and_stdout_exporters_start_no_runtime_and_others_do() {
    let before = epoll_instances();

    // Daemon UDP: the worker sends a document, with no runtime.
    let listener = udp_listener();
    let port = listener.local_addr().unwrap().port();
    let udp = XrayExporter::builder()
        .with_daemon_address(format!("127.0.0.1:{port}").parse().unwrap())
        .build()
        .unwrap();
    udp.enqueue(vec![span(trace_id(1), 1, 0, SpanKind::Server, "root")]);
    udp.force_flush().expect("sent");
    assert_eq!(recv_all(&listener, 1).len(), 1, "the datagram arrived");
    assert_eq!(udp.metrics().snapshot().spans_sent, 1);

    // A file: written by a worker with no runtime either.
    let dir = temp_dir("worker-runtime");
    let path = dir.path().join("docs.jsonl");
    let file = XrayExporter::builder().with_file(&path).build().unwrap();
    file.enqueue(vec![span(trace_id(2), 2, 0, SpanKind::Server, "root")]);
    file.force_flush().expect("written");
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);

    // Stdout (built only: the test's output stays clean).
    let stdout = XrayExporter::builder().with_stdout().build().unwrap();
    assert_eq!(
        epoll_instances(),
        before,
        "a UDP, file or stdout exporter started a Tokio runtime"
    );

    // The count does see a runtime: a transport that needs one gets one.
    let timed = Pipeline::start(Timed, PipelineConfig::default()).unwrap();
    assert!(timed.submit(doc()));
    timed
        .flush(Duration::from_secs(5))
        .expect("sent on the runtime");
    assert!(
        epoll_instances() > before,
        "the runtime's epoll instance is seen"
    );
    drop((udp, file, stdout));
    timed.shutdown(Duration::from_secs(5)).unwrap();
}
