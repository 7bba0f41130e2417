//! The Lambda example against a stub Lambda Runtime API on loopback: three invocations,
//! each with its own `Lambda-Runtime-Trace-Id`, and a UDP socket standing in for Lambda's
//! X-Ray daemon. Checks what reaches the daemon: only subsegment documents whose parent is
//! the invocation's function segment (no segment of our own, no trace outside an
//! invocation), named after `AWS_LAMBDA_FUNCTION_NAME`, with the cold start recorded, the
//! handler's span inside, the failed invocation a fault; every document schema-valid.
//!
//! `harness = false`: this binary is also the function (the child process runs the
//! example's own `run`).

#[allow(dead_code)]
#[path = "../lambda.rs"]
mod lambda_example;

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// Set in the child process: run the function instead of the test.
const CHILD: &str = "XRAY_BRIDGE_LAMBDA_EXAMPLE_CHILD";
const FUNCTION: &str = "greeter";
const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:greeter";

/// The invocations served: request id, trace header, event.
fn invocations() -> Vec<(String, String, Value)> {
    (1..=3)
        .map(|i| {
            let header = format!(
                "Root=1-6553f100-{i:024x};Parent={:016x};Sampled=1;Lineage=a87bd80c:0",
                0xfeed_0000_u64 + i
            );
            // The third event has no `name`: the handler fails.
            let event = if i == 3 {
                json!({})
            } else {
                json!({"name": format!("n{i}")})
            };
            (format!("req-{i}"), header, event)
        })
        .collect()
}

#[derive(Default)]
struct Stub {
    /// Invocations handed out so far.
    served: usize,
    /// `(request id, "response" | "error", body)` as the function answered.
    answers: Vec<(String, &'static str, Value)>,
}

type Shared = Arc<Mutex<Stub>>;

async fn next(State(stub): State<Shared>) -> Result<(HeaderMap, String), StatusCode> {
    let invocation = {
        let mut stub = stub.lock().unwrap();
        let all = invocations();
        let i = stub.served;
        if i < all.len() {
            stub.served += 1;
            Some(all[i].clone())
        } else {
            None
        }
    };
    let Some((id, trace, event)) = invocation else {
        // No more work: the function waits here, as a real one between invocations.
        std::future::pending::<()>().await;
        unreachable!()
    };
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(60);
    let mut headers = HeaderMap::new();
    let mut set = |k: &'static str, v: String| {
        headers.insert(k, HeaderValue::from_str(&v).unwrap());
    };
    set("lambda-runtime-aws-request-id", id);
    set(
        "lambda-runtime-deadline-ms",
        deadline.as_millis().to_string(),
    );
    set("lambda-runtime-invoked-function-arn", ARN.to_owned());
    set("lambda-runtime-trace-id", trace);
    Ok((headers, event.to_string()))
}

async fn answer(
    State(stub): State<Shared>,
    Path((id, kind)): Path<(String, String)>,
    body: Bytes,
) -> StatusCode {
    let kind = if kind == "response" {
        "response"
    } else {
        "error"
    };
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    stub.lock().unwrap().answers.push((id, kind, body));
    StatusCode::ACCEPTED
}

/// Starts the stub Runtime API on a free loopback port.
fn start_stub(stub: Shared) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = Router::new()
                .route("/2018-06-01/runtime/invocation/next", get(next))
                .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(answer))
                .with_state(stub);
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    addr
}

/// Kills the function when the test ends, however it ends.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every document and, recursively, its subsegments.
fn walk<'a>(doc: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(doc);
    for sub in doc["subsegments"].as_array().into_iter().flatten() {
        walk(sub, out);
    }
}

fn main() -> ExitCode {
    if std::env::var_os(CHILD).is_some() {
        // The example's `main` is `#[tokio::main]` around `run`.
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        return match runtime.block_on(lambda_example::run()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("function failed: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if std::env::args().any(|a| a == "--list") {
        println!("lambda_example_against_a_stub_runtime_api: test");
        return ExitCode::SUCCESS;
    }
    lambda_example_against_a_stub_runtime_api();
    println!("test lambda_example_against_a_stub_runtime_api ... ok");
    ExitCode::SUCCESS
}

fn lambda_example_against_a_stub_runtime_api() {
    let daemon = UdpSocket::bind("127.0.0.1:0").unwrap();
    daemon
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let stub = Shared::default();
    let api = start_stub(stub.clone());

    let mut command = Command::new(std::env::current_exe().unwrap());
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("AWS_") || key.starts_with("OTEL_") || key.starts_with("_X_AMZN") {
            command.env_remove(key.as_ref());
        }
    }
    let child = command
        .env(CHILD, "1")
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/30/[$LATEST]abc")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/greeter")
        .env("AWS_REGION", "us-east-1")
        .env(
            "AWS_XRAY_DAEMON_ADDRESS",
            daemon.local_addr().unwrap().to_string(),
        )
        .stdout(Stdio::null())
        .spawn()
        .expect("start the function");
    let _child = KillOnDrop(child);

    // Documents arrive before each answer (the flush runs before the response is sent).
    let mut datagrams: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut answered_at = None;
    loop {
        let mut buf = vec![0u8; 65_536];
        if let Ok(n) = daemon.recv(&mut buf) {
            datagrams.push(String::from_utf8(buf[..n].to_vec()).unwrap());
        }
        let answered = stub.lock().unwrap().answers.len();
        if answered == 3 && answered_at.is_none() {
            answered_at = Some(Instant::now());
        }
        // A second after the last answer: anything sent later would be outside an
        // invocation (and would be caught below).
        if answered_at.is_some_and(|t| t.elapsed() > Duration::from_secs(1)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the function answered {answered} of 3 invocations in 60 s"
        );
    }

    // What the function answered.
    let answers = stub.lock().unwrap().answers.clone();
    assert_eq!(
        answers
            .iter()
            .map(|(id, kind, _)| (id.as_str(), *kind))
            .collect::<Vec<_>>(),
        [
            ("req-1", "response"),
            ("req-2", "response"),
            ("req-3", "error")
        ]
    );
    assert_eq!(answers[0].2, json!({"greeting": "hello n1"}));

    // What reached the daemon.
    let mut docs = Vec::new();
    for datagram in &datagrams {
        let (header, body) = datagram.split_once('\n').expect("header line");
        assert_eq!(header, r#"{"format":"json","version":1}"#);
        xray_testkit::assert_schema_valid(body);
        docs.push(serde_json::from_str::<Value>(body).unwrap());
    }
    for doc in &docs {
        assert_eq!(
            doc["type"], "subsegment",
            "a document of our own that is not a subsegment: {doc}"
        );
        assert!(doc["parent_id"].is_string(), "an orphan document: {doc}");
    }
    let traces: BTreeSet<&str> = docs.iter().filter_map(|d| d["trace_id"].as_str()).collect();
    let expected: Vec<(String, String, Value)> = invocations();
    assert_eq!(
        traces,
        expected
            .iter()
            .map(|(_, h, _)| &h[5..40])
            .collect::<BTreeSet<_>>(),
        "documents on traces other than the invocations': {docs:#?}"
    );
    for (i, (id, header, _)) in expected.iter().enumerate() {
        let trace = &header[5..40];
        let parent = &header[48..64];
        let mine: Vec<&Value> = docs.iter().filter(|d| d["trace_id"] == trace).collect();
        // One document per invocation: the invocation subsegment with its work inside.
        assert_eq!(mine.len(), 1, "invocation {id}: {mine:#?}");
        let invocation = mine[0];
        assert_eq!(invocation["name"], FUNCTION, "{invocation}");
        assert_eq!(invocation["parent_id"], parent, "{invocation}");
        assert_eq!(
            invocation["annotations"]["ColdStart"],
            i == 0,
            "{invocation}"
        );
        assert_eq!(
            invocation["metadata"]["default"]["faas.invocation_id"],
            id.as_str()
        );
        assert!(invocation.get("origin").is_none() && invocation.get("aws").is_none());
        let mut all = Vec::new();
        walk(invocation, &mut all);
        let names: Vec<&str> = all.iter().filter_map(|d| d["name"].as_str()).collect();
        if i < 2 {
            assert_eq!(names, [FUNCTION, "greet"], "invocation {id}");
            assert_eq!(all[1]["annotations"]["name"], format!("n{}", i + 1));
            assert!(invocation.get("fault").is_none(), "{invocation}");
        } else {
            // The handler failed before its span: the invocation is a fault.
            assert_eq!(names, [FUNCTION], "invocation {id}");
            assert_eq!(invocation["fault"], true, "{invocation}");
        }
    }
}
