//! Sample traces in the shape of the seed demo (frontend -> BFF -> backend1 and backend2
//! -> DynamoDB, backend2 also calling an uninstrumented payments API), for tests and for
//! trying the console without a running service. Some traces end in a fault (5xx), some
//! in a throttle (429), some in a client error (404).

use serde_json::{Value, json};

/// How a sample trace ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every call succeeds (200).
    Ok,
    /// backend1 answers 404: an error on backend1, the BFF and the frontend.
    NotFound,
    /// DynamoDB throttles backend1, which answers 429 up the chain.
    Throttled,
    /// DynamoDB fails for backend2 (500), a fault up the chain (502 at the edge).
    Fault,
}

/// One sample trace.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoTrace {
    /// Its trace id.
    pub id: String,
    /// How it ends.
    pub outcome: Outcome,
    /// Its documents (JSON text): four segments, one standalone subsegment.
    pub documents: Vec<String>,
}

/// The outcome of sample trace `index`: of every six, three ok, then a fault, a
/// throttle and a 404.
pub fn outcome(index: u32) -> Outcome {
    match index % 6 {
        3 => Outcome::Fault,
        4 => Outcome::Throttled,
        5 => Outcome::NotFound,
        _ => Outcome::Ok,
    }
}

/// `count` sample traces, trace `i` starting at `start + i` seconds.
pub fn seed_traces(count: u32, start: f64) -> Vec<DemoTrace> {
    (0..count)
        .map(|i| seed_trace(i, start + f64::from(i)))
        .collect()
}

fn sid(index: u32, k: u32) -> String {
    let x = (u64::from(index) << 8 | u64::from(k)).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1 << 60;
    format!("{x:016x}")
}

fn http(method: &str, url: &str, status: u16) -> Value {
    json!({"request": {"method": method, "url": url}, "response": {"status": status, "content_length": 120}})
}

fn flags(v: &mut Value, status: u16, throttled: bool) {
    if (400..500).contains(&status) || throttled {
        v["error"] = json!(true);
    }
    if status == 429 || throttled {
        v["throttle"] = json!(true);
    }
    if status >= 500 {
        v["fault"] = json!(true);
    }
}

/// Sample trace `index` starting at `t` (epoch seconds).
pub fn seed_trace(index: u32, t: f64) -> DemoTrace {
    let outcome = outcome(index);
    let trace_id = format!(
        "1-{:08x}-{:024x}",
        t as u64,
        0x000a_11ce_0000_u64 + u64::from(index)
    );
    let (edge, bff_status, b1, b2, dynamo_b1, dynamo_b2) = match outcome {
        Outcome::Ok => (200, 200, 200, 200, 200, 200),
        Outcome::NotFound => (404, 404, 404, 200, 200, 200),
        Outcome::Throttled => (429, 429, 429, 200, 400, 200),
        Outcome::Fault => (502, 502, 200, 500, 200, 500),
    };
    let slow = f64::from(index % 4) * 0.15;
    let ids: Vec<String> = (0..12).map(|k| sid(index, k)).collect();
    let user = format!("user-{}", index % 3);
    let mut frontend = json!({
        "name": "frontend", "id": ids[0], "trace_id": trace_id, "start_time": t, "end_time": t + 0.9 + slow,
        "origin": "AWS::ECS::Container",
        "http": http("GET", &format!("https://shop.example.com/orders/{index}"), edge),
        "annotations": {"user": user, "index": index},
        "aws": {"ecs": {"container": "frontend-1"}, "xray": {"sdk": "opentelemetry for rust", "sdk_version": "0.1.0"}},
        "subsegments": [{
            "name": "bff", "id": ids[1], "namespace": "remote", "start_time": t + 0.01, "end_time": t + 0.88 + slow,
            "http": http("GET", &format!("http://bff:8080/api/orders/{index}"), bff_status),
        }]
    });
    flags(&mut frontend, edge, false);
    flags(&mut frontend["subsegments"][0], bff_status, false);
    let mut bff = json!({
        "name": "bff", "id": ids[2], "parent_id": ids[1], "trace_id": trace_id,
        "start_time": t + 0.02, "end_time": t + 0.86 + slow, "origin": "AWS::ECS::Container",
        "http": http("GET", &format!("http://bff:8080/api/orders/{index}"), bff_status),
        "metadata": {"default": {"route": "/api/orders/{id}", "attempt": 1}},
        "subsegments": [
            {"name": "backend1", "id": ids[3], "namespace": "remote", "start_time": t + 0.03, "end_time": t + 0.35,
             "http": http("GET", &format!("http://backend1:8080/items/{index}"), b1)},
            {"name": "backend2", "id": ids[4], "namespace": "remote", "start_time": t + 0.36, "end_time": t + 0.85 + slow,
             "http": http("POST", "http://backend2:8080/orders", b2)}
        ]
    });
    flags(&mut bff, bff_status, false);
    flags(&mut bff["subsegments"][0], b1, false);
    flags(&mut bff["subsegments"][1], b2, false);
    let mut backend1 = json!({
        "name": "backend1", "id": ids[5], "parent_id": ids[3], "trace_id": trace_id,
        "start_time": t + 0.04, "end_time": t + 0.34, "origin": "AWS::ECS::Container",
        "http": http("GET", &format!("http://backend1:8080/items/{index}"), b1),
        "subsegments": [{
            "name": "DynamoDB", "id": ids[6], "namespace": "aws", "start_time": t + 0.05, "end_time": t + 0.25,
            "aws": {"operation": "GetItem", "region": "eu-west-1", "table_name": "items", "request_id": format!("REQ{index}A")},
            "http": {"response": {"status": dynamo_b1}}
        }]
    });
    flags(&mut backend1, b1, false);
    flags(&mut backend1["subsegments"][0], dynamo_b1, dynamo_b1 == 400);
    let backend2_end = t + 0.84 + slow;
    let mut backend2 = json!({
        "name": "backend2", "id": ids[7], "parent_id": ids[4], "trace_id": trace_id,
        "start_time": t + 0.37, "end_time": backend2_end, "origin": "AWS::ECS::Container",
        "http": http("POST", "http://backend2:8080/orders", b2),
        "annotations": {"order_total": 20 + index % 50},
        "subsegments": [{
            "name": "payments.example.com", "id": ids[8], "namespace": "remote", "start_time": t + 0.38, "end_time": t + 0.5,
            "http": http("POST", "https://payments.example.com/charge", 200)
        }]
    });
    flags(&mut backend2, b2, false);
    let mut dynamo2 = json!({
        "type": "subsegment", "name": "DynamoDB", "id": ids[9], "parent_id": ids[7], "trace_id": trace_id,
        "namespace": "aws", "start_time": t + 0.52, "end_time": backend2_end - 0.02,
        "aws": {"operation": "PutItem", "region": "eu-west-1", "table_name": "orders", "request_id": format!("REQ{index}B")},
        "http": {"response": {"status": dynamo_b2}}
    });
    flags(&mut dynamo2, dynamo_b2, false);
    if outcome == Outcome::Fault {
        let cause = json!({"working_directory": "/app", "exceptions": [{
            "id": ids[10], "type": "InternalServerError", "message": "DynamoDB PutItem failed: internal server error",
            "remote": true, "stack": [{"path": "src/orders.rs", "line": 42, "label": "orders::save"}]}]});
        dynamo2["cause"] = cause.clone();
        backend2["cause"] = json!({"exceptions": [{"id": ids[11], "type": "OrderError", "message": "could not save the order"}]});
    }
    let documents = [frontend, bff, backend1, backend2, dynamo2]
        .iter()
        .map(Value::to_string)
        .collect();
    DemoTrace {
        id: trace_id,
        outcome,
        documents,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_documents_are_valid_segment_documents() {
        for trace in seed_traces(6, 1_700_000_000.0) {
            for doc in &trace.documents {
                xray_testkit::assert_schema_valid(doc);
                xray_model::datagram::summarize_document(doc).unwrap();
            }
        }
    }
}
