//! One trace as the trace list shows it and the filters see it, assembled from the
//! indexed facts of its documents (segments and standalone subsegments).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::facts::{DocFacts, Status};

/// A trace's summary: the root segment's timing and HTTP fields, the trace's status, the
/// services it went through.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceSummary {
    /// The trace id (`1-...`).
    pub id: String,
    /// The earliest start time (epoch seconds).
    pub start_time: f64,
    /// From the earliest start to the latest end, in seconds.
    pub duration: f64,
    /// The root segment's end minus its start, in seconds (`None` while in progress).
    pub responsetime: Option<f64>,
    /// The root segment's HTTP response status.
    pub http_status: Option<i64>,
    /// The root segment's HTTP method.
    pub http_method: Option<String>,
    /// The root segment's request URL.
    pub http_url: Option<String>,
    /// Whether any segment or subsegment has an error (4xx).
    pub error: bool,
    /// Whether any segment or subsegment has a fault (5xx).
    pub fault: bool,
    /// Whether any segment or subsegment was throttled (429).
    pub throttle: bool,
    /// Names of the trace's segments (services), earliest first, each once.
    pub services: Vec<String>,
    /// The root segment's name.
    pub root: String,
    /// How many documents the trace has.
    pub documents: usize,
    /// Whether some document is still in progress.
    pub in_progress: bool,
    /// Annotations over the whole trace: key to the distinct values seen.
    #[serde(skip)]
    pub annotations: BTreeMap<String, Vec<Value>>,
}

impl TraceSummary {
    /// Assembles the summary of one trace from its documents' facts (not empty).
    pub(crate) fn assemble(docs: &[DocFacts]) -> Option<TraceSummary> {
        let first = docs.first()?;
        let mut by_start: Vec<&DocFacts> = docs.iter().collect();
        by_start.sort_by(|a, b| a.start.total_cmp(&b.start));
        let root = by_start
            .iter()
            .find(|d| !d.subsegment && d.parent_id.is_none())
            .or_else(|| by_start.iter().find(|d| !d.subsegment))
            .unwrap_or(&by_start[0]);
        let start = by_start[0].start;
        let end = docs
            .iter()
            .map(|d| d.end.unwrap_or(d.start))
            .fold(start, f64::max);
        let status = docs.iter().fold(Status::default(), |s, d| s.or(d.any));
        let mut services: Vec<String> = Vec::new();
        for d in by_start.iter().filter(|d| !d.subsegment) {
            if !services.contains(&d.name) {
                services.push(d.name.clone());
            }
        }
        let mut annotations: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for d in docs {
            for (k, v) in &d.annotations {
                let list = annotations.entry(k.clone()).or_default();
                for value in v.as_array().into_iter().flatten() {
                    if !list.contains(value) {
                        list.push(value.clone());
                    }
                }
            }
        }
        Some(TraceSummary {
            id: first.trace_id.clone(),
            start_time: start,
            duration: end - start,
            responsetime: root.end.map(|e| e - root.start),
            http_status: root.http_status,
            http_method: root.http_method.clone(),
            http_url: root.http_url.clone(),
            error: status.error,
            fault: status.fault,
            throttle: status.throttle,
            services,
            root: root.name.clone(),
            documents: docs.len(),
            in_progress: docs.iter().any(|d| d.end.is_none()),
            annotations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(json: &str) -> DocFacts {
        DocFacts::parse(json).unwrap()
    }

    #[test]
    fn the_root_segment_gives_responsetime_and_http_fields() {
        let t = "1-581cf771-a006649127e371903a2de979";
        let docs = [
            doc(&format!(
                r#"{{"name":"backend","id":"0000000000000002","parent_id":"0000000000000009","trace_id":"{t}","start_time":10.2,"end_time":12.5,"fault":true}}"#
            )),
            doc(&format!(
                r#"{{"name":"frontend","id":"0000000000000001","trace_id":"{t}","start_time":10.0,"end_time":11.0,"http":{{"request":{{"method":"GET","url":"http://f/"}},"response":{{"status":200}}}}}}"#
            )),
            doc(&format!(
                r#"{{"type":"subsegment","name":"late","id":"0000000000000003","parent_id":"0000000000000001","trace_id":"{t}","start_time":10.5,"in_progress":true}}"#
            )),
        ];
        let s = TraceSummary::assemble(&docs).unwrap();
        assert_eq!(s.root, "frontend");
        assert_eq!(s.responsetime, Some(1.0));
        assert!((s.duration - 2.5).abs() < 1e-9);
        assert_eq!(s.http_status, Some(200));
        assert!(s.fault && !s.error && !s.throttle);
        assert_eq!(s.services, ["frontend", "backend"]);
        assert!(s.in_progress);
        assert_eq!(s.documents, 3);
        assert!(TraceSummary::assemble(&[]).is_none());
    }
}
