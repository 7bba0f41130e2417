//! A bounded stand-in for an OTLP/JSON fuzz target, in the style of
//! `crates/xray-model/tests/no_panic.rs`: random and mutated JSON bodies through the
//! OTLP/HTTP receiver (decode, translation, queueing), asserting that nothing panics,
//! that every answer is a 2xx or 4xx with a body, and that every queued document is a
//! valid segment document. `XRAY_BRIDGE_FUZZ_ITERATIONS` sets the count (default 20,000).

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use tower_service::Service;
use xray_translate::Translator;

use crate::counters::Registry;
use crate::export::memory::MemorySink;
use crate::otlp::{Ingest, OtlpCounters};

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SEEDS: &[&str] = &[
    r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},"scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"GET /users/{id}","kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000500000000","attributes":[{"key":"http.request.method","value":{"stringValue":"GET"}},{"key":"http.response.status_code","value":{"intValue":"503"}}],"status":{"code":2,"message":"boom"}}]}]}]}"#,
    r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175","parentSpanId":"eee19b7ec3c1b174","name":"DynamoDB.PutItem","kind":3,"startTimeUnixNano":1700000000000000000,"endTimeUnixNano":1700000000100000000,"attributes":[{"key":"rpc.system","value":{"stringValue":"aws-api"}},{"key":"aws.dynamodb.table_names","value":{"arrayValue":{"values":[{"stringValue":"orders"}]}}},{"key":"annotation.tier","value":{"boolValue":true}},{"key":"x","value":{"kvlistValue":{"values":[{"key":"a","value":{"doubleValue":1.5}}]}}}],"events":[{"name":"exception","timeUnixNano":"1700000000050000000","attributes":[{"key":"exception.type","value":{"stringValue":"Err"}},{"key":"exception.stacktrace","value":{"stringValue":"at a (b.rs:1)"}}]}],"links":[{"traceId":"5b8efff798038103d269b633813fc60d","spanId":"eee19b7ec3c1b176"}]}]}]}]}"#,
    r#"{"resourceSpans":[]}"#,
    r#"{}"#,
];

/// Pieces JSON is made of, and values of every OTLP type.
const FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "null",
    "true",
    "-1",
    "1e400",
    "18446744073709551616",
    "\"\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"traceId\"",
    "\"spanId\"",
    "\"0000000000000000\"",
    "\"zz\"",
    "{\"intValue\":\"x\"}",
    "{\"arrayValue\":{\"values\":[{\"arrayValue\":{}}]}}",
    "\u{e9}",
    "\u{1F600}",
];

fn mutate(rng: &mut Rng, seed: &str) -> Vec<u8> {
    let mut bytes = seed.as_bytes().to_vec();
    for _ in 0..=rng.below(5) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(5) {
            0 if !bytes.is_empty() => {
                let end = (at + rng.below(12)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            1 => {
                let f = FRAGMENTS[rng.below(FRAGMENTS.len())].as_bytes();
                bytes.splice(at..at, f.iter().copied());
            }
            2 if at < bytes.len() => bytes[at] = rng.next() as u8,
            3 if !bytes.is_empty() => {
                // Repeat a slice (deep nesting, many spans).
                let start = rng.below(bytes.len());
                let end = (start + rng.below(64)).min(bytes.len());
                let piece = bytes[start..end].to_vec();
                for _ in 0..rng.below(4) {
                    bytes.splice(at..at, piece.iter().copied());
                }
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}

#[test]
fn otlp_json_bodies_never_panic_and_queue_only_valid_documents() {
    let iterations: usize = std::env::var("XRAY_BRIDGE_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sink = Arc::new(MemorySink::default());
    let ingest = Ingest::new(Translator::default(), sink.clone());
    let mut router = crate::otlp_http::router(
        ingest,
        OtlpCounters::new(&Registry::default(), "http"),
        1024 * 1024,
    );
    let mut rng = Rng(0x15_0715);
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..iterations {
        let body = if let Some(seed) = SEEDS.get(i) {
            seed.as_bytes().to_vec()
        } else {
            let seed = SEEDS[rng.below(SEEDS.len())];
            mutate(&mut rng, seed)
        };
        let request = Request::post("/v1/traces")
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
            .unwrap();
        let response = rt.block_on(router.call(request)).unwrap();
        let status = response.status().as_u16();
        *statuses.entry(status).or_insert(0u64) += 1;
        assert!(
            (200..300).contains(&status) || (400..500).contains(&status),
            "status {status} for {:?}",
            String::from_utf8_lossy(&body)
        );
        if i < 2 {
            assert_eq!(status, 200, "a seed is accepted");
        }
    }
    let docs = sink.texts();
    assert!(!docs.is_empty());
    for doc in docs.iter().step_by((docs.len() / 200).max(1)) {
        xray_testkit::assert_schema_valid(doc);
    }
    eprintln!(
        "{iterations} OTLP/JSON bodies: answers {statuses:?}, {} documents queued",
        docs.len()
    );
}
