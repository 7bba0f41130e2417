//! Daemon-protocol datagrams from the Python aws-xray-sdk, with bad datagrams in between,
//! through the real binary to `--export file:`.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::{Bridge, Options, Scratch, read_lines};

const PY_SDK: &str = r#"
import json, sys
from aws_xray_sdk.core import xray_recorder
from aws_xray_sdk.core.emitters.udp_emitter import UDPEmitter

sent = []
class Recording(UDPEmitter):
    def _send_data(self, data):
        sent.append(data)
        super()._send_data(data)

xray_recorder.configure(
    emitter=Recording(),
    daemon_address="127.0.0.1:" + sys.argv[1],
    sampling=False,
    context_missing="LOG_ERROR",
    plugins=(),
)
for i in range(int(sys.argv[2])):
    segment = xray_recorder.begin_segment("py-service-%d" % i)
    segment.put_annotation("index", i)
    segment.put_http_meta("method", "GET")
    segment.put_http_meta("url", "https://example.com/users/%d" % i)
    segment.put_http_meta("status", 500 if i == 0 else 200)
    for j in range(3):
        with xray_recorder.in_subsegment("dynamodb-%d" % j) as sub:
            sub.put_metadata("attempt", j, "app")
            sub.namespace = "aws"
    xray_recorder.end_segment()
print(json.dumps(sent))
"#;

fn documents_of(datagrams: &[String]) -> Vec<String> {
    datagrams
        .iter()
        .map(|d| {
            let (header, doc) = d.split_once('\n').expect("header line");
            assert_eq!(header, r#"{"format":"json","version":1}"#);
            doc.to_owned()
        })
        .collect()
}

#[test]
fn python_sdk_segments_arrive_intact_and_bad_datagrams_are_counted() {
    xray_testkit::require_python(&["aws_xray_sdk"]);
    let scratch = Scratch::new("udp");
    let out = scratch.path("docs.jsonl");
    let mut bridge = Bridge::start(Options::export(format!("file:{}", out.display())));
    let port = bridge.udp.to_string();

    let first = xray_testkit::run_python(PY_SDK, &[&port, "3"], "");
    // Bad datagrams between the two good batches.
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = ("127.0.0.1", bridge.udp);
    let good = r#"{"name":"rust-side","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.0,"end_time":2.0}"#;
    let header = xray_model::DAEMON_HEADER;
    let mut truncated = format!("{header}{good}").into_bytes();
    truncated.truncate(truncated.len() / 2);
    let oversize = format!("{header}{}", good.replace("rust-side", &"x".repeat(65_000)));
    let bad: Vec<Vec<u8>> = vec![
        b"not a datagram".to_vec(),
        truncated,
        oversize.into_bytes(),
        format!("{{\"format\":\"json\",\"version\":2}}\n{good}").into_bytes(),
        format!("{header}{{\"name\":\"no-ids\",\"start_time\":1}}").into_bytes(),
        vec![0xff; 100],
    ];
    for b in &bad {
        sender.send_to(b, target).unwrap();
    }
    sender
        .send_to(format!("{header}{good}").as_bytes(), target)
        .unwrap();
    let sub = r#"{"type":"subsegment","name":"DynamoDB","namespace":"aws","id":"70de5b6f19ff9a0b","parent_id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.1,"end_time":1.9}"#;
    sender
        .send_to(format!("{header}{sub}").as_bytes(), target)
        .unwrap();
    let second = xray_testkit::run_python(PY_SDK, &[&port, "2"], "");

    let mut sent: Vec<String> = serde_json::from_str(first.trim()).unwrap();
    sent.extend(serde_json::from_str::<Vec<String>>(second.trim()).unwrap());
    let mut expected = documents_of(&sent);
    expected.push(good.to_owned());
    expected.push(sub.to_owned());
    assert!(expected.len() >= 7, "the SDK sent {}", expected.len());

    let total = (sent.len() + bad.len() + 2) as u64;
    let text = bridge.wait_metrics(Duration::from_secs(10), |t| {
        Bridge::metric(t, "xray_bridge_udp_datagrams_received_total") == total
            && Bridge::metric(t, "xray_bridge_export_items_sent_total{export=\"file\"}")
                == expected.len() as u64
    });
    let rejected = |reason: &str| {
        Bridge::metric(
            &text,
            &format!("xray_bridge_udp_datagrams_rejected_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(rejected("missing_header"), 2, "garbage and 0xff bytes");
    assert_eq!(rejected("bad_document"), 2, "truncated and no ids");
    assert_eq!(rejected("too_large"), 1);
    assert_eq!(rejected("bad_header"), 1);
    assert_eq!(
        Bridge::metric(&text, "xray_bridge_udp_documents_accepted_total"),
        expected.len() as u64
    );

    assert_eq!(bridge.stop(Duration::from_secs(20)), 0, "{}", bridge.logs());
    let mut got = read_lines(&out);
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "documents must arrive byte for byte");
    for doc in &got {
        xray_testkit::assert_schema_valid(doc);
    }
    assert!(
        got.iter().any(|d| d.contains("\"type\":\"subsegment\"")),
        "standalone subsegments pass too"
    );
    assert!(got.iter().any(|d| d.contains("py-service-1")));
    let logs = bridge.logs();
    assert!(logs.contains("rejected daemon datagram"), "{logs}");
}

#[test]
fn undeliverable_data_makes_the_exit_code_say_so() {
    // The X-Ray API at a closed port: every attempt fails until the shutdown deadline.
    let closed = format!("http://127.0.0.1:{}", xray_testkit::free_port());
    let mut bridge = Bridge::start(Options {
        args: vec![
            "--region",
            "us-east-1",
            "--endpoint-url",
            &closed,
            "--shutdown-timeout",
            "2",
        ],
        env: vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ],
        ..Options::export("api")
    });
    let doc = r#"{"name":"lost","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.0,"end_time":2.0}"#;
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(
            format!("{}{doc}", xray_model::DAEMON_HEADER).as_bytes(),
            ("127.0.0.1", bridge.udp),
        )
        .unwrap();
    bridge.wait_metrics(Duration::from_secs(10), |t| {
        Bridge::metric(t, "xray_bridge_udp_documents_accepted_total") == 1
    });
    assert_eq!(bridge.stop(Duration::from_secs(20)), 3, "{}", bridge.logs());
    assert!(bridge.logs().contains("data lost"), "{}", bridge.logs());
}

#[test]
fn sigterm_right_after_a_burst_still_delivers_every_datagram() {
    let scratch = Scratch::new("udp-drain");
    let out = scratch.path("docs.jsonl");
    let mut bridge = Bridge::start(Options::export(format!("file:{}", out.display())));
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sent: Vec<String> = (0..3000u64)
        .map(|i| {
            format!(
                r#"{{"name":"burst","id":"{:016x}","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1.0,"end_time":2.0}}"#,
                i + 1
            )
        })
        .collect();
    for doc in &sent {
        sender
            .send_to(
                format!("{}{doc}", xray_model::DAEMON_HEADER).as_bytes(),
                ("127.0.0.1", bridge.udp),
            )
            .unwrap();
    }
    // No waiting: what is in the (enlarged) socket buffer at SIGTERM is still read and
    // delivered.
    assert_eq!(bridge.stop(Duration::from_secs(20)), 0, "{}", bridge.logs());
    let mut got = read_lines(&out);
    got.sort();
    let mut want = sent;
    want.sort();
    assert_eq!(got, want);
}
