use serde_json::{Value, json};

use super::*;
use crate::demo::{Outcome, seed_traces};

fn parse(docs: &[String]) -> Vec<Value> {
    docs.iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[test]
fn the_seed_shape_gives_its_nodes_and_edges() {
    let traces: Vec<Vec<Value>> = seed_traces(12, 1_700_000_000.0)
        .iter()
        .map(|t| parse(&t.documents))
        .collect();
    let map = ServiceMap::from_traces(traces.iter().map(Vec::as_slice));
    let ids: Vec<&str> = map.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "aws:DynamoDB",
            "client",
            "remote:payments.example.com",
            "service:backend1",
            "service:backend2",
            "service:bff",
            "service:frontend"
        ]
    );
    let edges: Vec<(&str, &str)> = map
        .edges
        .iter()
        .map(|e| (e.source.as_str(), e.target.as_str()))
        .collect();
    assert_eq!(
        edges,
        [
            ("client", "service:frontend"),
            ("service:backend1", "aws:DynamoDB"),
            ("service:backend2", "aws:DynamoDB"),
            ("service:backend2", "remote:payments.example.com"),
            ("service:bff", "service:backend1"),
            ("service:bff", "service:backend2"),
            ("service:frontend", "service:bff"),
        ]
    );
    assert_eq!(map.traces, 12);
    let frontend = map.node("service:frontend").unwrap();
    assert_eq!(frontend.kind, "AWS::ECS::Container");
    assert_eq!(frontend.stats.requests, 12);
    // Of 12: 2 faults (502), 2 throttles (429), 2 not found (404), 6 ok.
    let s = frontend.stats;
    assert!((s.fault - 2.0 / 12.0).abs() < 1e-9, "{s:?}");
    assert!((s.throttle - 2.0 / 12.0).abs() < 1e-9, "{s:?}");
    assert!((s.error - 2.0 / 12.0).abs() < 1e-9, "{s:?}");
    assert!((s.ok - 0.5).abs() < 1e-9, "{s:?}");
    // DynamoDB: 12 GetItem (2 throttled) + 12 PutItem (2 faults).
    let dynamo = map.node("aws:DynamoDB").unwrap();
    assert_eq!(dynamo.kind, "AWS::DynamoDB");
    assert_eq!(dynamo.stats.requests, 24);
    assert!((dynamo.stats.throttle - 2.0 / 24.0).abs() < 1e-9);
    assert!((dynamo.stats.fault - 2.0 / 24.0).abs() < 1e-9);
    let b1_dynamo = map.edge("service:backend1", "aws:DynamoDB").unwrap();
    assert_eq!(b1_dynamo.stats.requests, 12);
    assert_eq!(b1_dynamo.stats.fault, 0.0);
    // The BFF's remote subsegments are answered by instrumented services: no remote nodes.
    assert!(map.node("remote:backend1").is_none() && map.node("remote:bff").is_none());
    assert!(
        seed_traces(12, 0.0)
            .iter()
            .filter(|t| t.outcome == Outcome::Fault)
            .count()
            == 2
    );
}

#[test]
fn latency_average_and_p95() {
    let t = "1-581cf771-a006649127e371903a2de979";
    let traces: Vec<Vec<Value>> = (1..=20)
        .map(|i| {
            vec![
                json!({"name": "svc", "id": format!("{i:016x}"), "trace_id": t,
                "start_time": 0.0, "end_time": f64::from(i) / 10.0,
                "http": {"response": {"status": if i == 20 { 503 } else { 200 }}}}),
            ]
        })
        .collect();
    let map = ServiceMap::from_traces(traces.iter().map(Vec::as_slice));
    let s = map.node("service:svc").unwrap().stats;
    assert_eq!(s.requests, 20);
    assert!((s.avg - 1.05).abs() < 1e-9, "{s:?}");
    assert!((s.p95 - 1.9).abs() < 1e-9, "{s:?}");
    assert!((s.fault - 0.05).abs() < 1e-9);
    assert_eq!(s.ok + s.fault, 1.0);
    assert_eq!(map.node("service:svc").unwrap().kind, "service");
}

#[test]
fn sql_remote_and_nested_calls() {
    let t = "1-581cf771-a006649127e371903a2de979";
    let doc = json!({"name": "api", "id": "0000000000000001", "trace_id": t, "start_time": 0.0, "end_time": 1.0,
    "subsegments": [
        {"name": "orders@db", "id": "0000000000000002", "start_time": 0.1, "end_time": 0.2,
         "sql": {"url": "postgresql://db/orders", "database_type": "PostgreSQL"}},
        {"name": "api.github.com", "id": "0000000000000003", "namespace": "remote", "start_time": 0.2, "end_time": 0.4,
         "http": {"request": {"url": "https://api.github.com/x"}, "response": {"status": 429}},
         "subsegments": [{"name": "retry", "id": "0000000000000004", "namespace": "remote", "start_time": 0.3, "end_time": 0.4}]},
        {"name": "local work", "id": "0000000000000005", "start_time": 0.5, "end_time": 0.6}
    ]});
    let docs = [doc];
    let map = ServiceMap::from_traces([&docs[..]]);
    let ids: Vec<&str> = map.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "client",
            "database:orders@db",
            "remote:api.github.com",
            "service:api"
        ]
    );
    assert_eq!(
        map.node("database:orders@db").unwrap().kind,
        "Database::SQL"
    );
    let gh = map.node("remote:api.github.com").unwrap().stats;
    assert_eq!((gh.requests, gh.throttle), (1, 1.0));
    assert_eq!(map.edges.len(), 3);
    assert!(map.edge("service:api", "database:orders@db").is_some());
    assert!(ServiceMap::from_traces([&[][..]]).nodes.is_empty());
}

#[test]
fn a_segment_whose_parent_is_missing_is_called_by_the_client_and_loops_end() {
    let t = "1-581cf771-a006649127e371903a2de979";
    // Two standalone subsegments pointing at each other: no owner, no node, no hang.
    let docs = [
        json!({"name": "orphan", "id": "0000000000000001", "parent_id": "00000000000000ff", "trace_id": t, "start_time": 0.0, "end_time": 1.0}),
        json!({"type": "subsegment", "name": "x", "namespace": "aws", "id": "0000000000000002", "parent_id": "0000000000000003", "trace_id": t, "start_time": 0.0, "end_time": 1.0}),
        json!({"type": "subsegment", "name": "y", "namespace": "aws", "id": "0000000000000003", "parent_id": "0000000000000002", "trace_id": t, "start_time": 0.0, "end_time": 1.0}),
    ];
    let map = ServiceMap::from_traces([&docs[..]]);
    assert!(map.edge("client", "service:orphan").is_some());
    assert_eq!(map.nodes.len(), 2);
}
