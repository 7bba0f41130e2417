//! The service map: one node per service (segment name) and per downstream (AWS services
//! from `aws` subsegments, databases from `sql` subsegments, remote HTTP from `remote` or
//! HTTP subsegments), one `client` node for the callers of root segments, and edges from
//! the trace tree. A remote call answered by an instrumented service (its segment's
//! `parent_id` is the call's subsegment) becomes an edge to that service, not a node.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use crate::facts::Status;

/// Nodes and edges with their statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceMap {
    /// Services and downstreams, sorted by id.
    pub nodes: Vec<Node>,
    /// Calls between nodes, sorted by source then target.
    pub edges: Vec<Edge>,
    /// How many traces it was built from.
    pub traces: usize,
}

/// A service or downstream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    /// `client`, `service:NAME`, `aws:NAME`, `database:NAME` or `remote:NAME`.
    pub id: String,
    /// The name shown.
    pub name: String,
    /// `client`, the segment's `origin` (or `service`), `AWS::NAME`, `Database::SQL` or
    /// `remote`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Requests it served.
    pub stats: Stats,
}

/// Calls from one node to another.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Edge {
    /// The caller's node id.
    pub source: String,
    /// The callee's node id.
    pub target: String,
    /// The calls, as the callee answered them.
    pub stats: Stats,
}

/// Request statistics: count, latency in seconds, and the share of each outcome (`ok`,
/// `error` = 4xx but 429, `throttle` = 429, `fault` = 5xx; they add up to 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Requests.
    pub requests: u64,
    /// Average latency (seconds).
    pub avg: f64,
    /// 95th percentile latency (seconds, nearest rank).
    pub p95: f64,
    /// Share without error, throttle or fault.
    pub ok: f64,
    /// Share with an error other than a throttle.
    pub error: f64,
    /// Share throttled.
    pub throttle: f64,
    /// Share with a fault.
    pub fault: f64,
}

#[derive(Default)]
struct Acc {
    latencies: Vec<f64>,
    error: u64,
    throttle: u64,
    fault: u64,
}

impl Acc {
    fn add(&mut self, latency: f64, status: Status) {
        self.latencies.push(latency.max(0.0));
        if status.fault {
            self.fault += 1;
        } else if status.throttle {
            self.throttle += 1;
        } else if status.error {
            self.error += 1;
        }
    }

    fn stats(mut self) -> Stats {
        let n = self.latencies.len();
        if n == 0 {
            return Stats::default();
        }
        self.latencies.sort_by(f64::total_cmp);
        let rank = (0.95 * n as f64).ceil() as usize;
        let share = |c: u64| c as f64 / n as f64;
        Stats {
            requests: n as u64,
            avg: self.latencies.iter().sum::<f64>() / n as f64,
            p95: self.latencies[rank.clamp(1, n) - 1],
            ok: share(n as u64 - self.error - self.throttle - self.fault),
            error: share(self.error),
            throttle: share(self.throttle),
            fault: share(self.fault),
        }
    }
}

/// Builds a [`ServiceMap`] trace by trace.
#[derive(Default)]
pub struct Builder {
    nodes: BTreeMap<String, (String, String, Acc)>,
    edges: BTreeMap<(String, String), Acc>,
    traces: usize,
}

/// One segment or subsegment, flattened out of its document.
struct Span<'a> {
    id: &'a str,
    parent: Option<&'a str>,
    segment: bool,
    node: &'a Value,
    /// Inside a downstream call of its service (its own calls are not separate nodes).
    inside_call: bool,
}

fn flatten<'a>(
    node: &'a Value,
    parent: Option<&'a str>,
    segment: bool,
    inside: bool,
    out: &mut Vec<Span<'a>>,
    depth: usize,
) {
    let id = node.get("id").and_then(Value::as_str).unwrap_or("");
    let parent = node.get("parent_id").and_then(Value::as_str).or(parent);
    out.push(Span {
        id,
        parent,
        segment,
        node,
        inside_call: inside,
    });
    let call = !segment && downstream(node).is_some();
    if depth < 64 {
        for child in node
            .get("subsegments")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            flatten(child, Some(id), false, inside || call, out, depth + 1);
        }
    }
}

/// The downstream node a subsegment calls (id, name, type), if it is a call.
fn downstream(node: &Value) -> Option<(String, String, String)> {
    let name = node
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let namespace = node.get("namespace").and_then(Value::as_str);
    if namespace == Some("aws")
        || node
            .get("aws")
            .is_some_and(|a| a.get("operation").is_some())
    {
        return Some((
            format!("aws:{name}"),
            name.to_owned(),
            format!("AWS::{name}"),
        ));
    }
    if node.get("sql").is_some() {
        return Some((
            format!("database:{name}"),
            name.to_owned(),
            "Database::SQL".into(),
        ));
    }
    if namespace == Some("remote") || node.pointer("/http/request/url").is_some() {
        return Some((format!("remote:{name}"), name.to_owned(), "remote".into()));
    }
    None
}

fn latency(node: &Value) -> f64 {
    let start = node
        .get("start_time")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    node.get("end_time")
        .and_then(Value::as_f64)
        .map_or(0.0, |e| e - start)
}

fn name(node: &Value) -> &str {
    node.get("name")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
}

impl Builder {
    fn node(&mut self, id: &str, name: &str, kind: &str) -> &mut Acc {
        &mut self
            .nodes
            .entry(id.to_owned())
            .or_insert_with(|| (name.to_owned(), kind.to_owned(), Acc::default()))
            .2
    }

    fn edge(&mut self, from: &str, to: &str) -> &mut Acc {
        self.edges
            .entry((from.to_owned(), to.to_owned()))
            .or_default()
    }

    /// Adds one trace: its documents (segments and standalone subsegments) as JSON.
    pub fn add_trace(&mut self, documents: &[Value]) {
        if documents.is_empty() {
            return;
        }
        self.traces += 1;
        let mut spans = Vec::new();
        for doc in documents {
            let segment = doc.get("type").and_then(Value::as_str) != Some("subsegment");
            flatten(doc, None, segment, false, &mut spans, 0);
        }
        let by_id: HashMap<&str, usize> =
            spans.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
        // The service (segment index) each span belongs to, following parent links.
        let owner = |mut i: usize| -> Option<usize> {
            for _ in 0..256 {
                if spans[i].segment {
                    return Some(i);
                }
                i = *by_id.get(spans[i].parent?)?;
            }
            None
        };
        let service_id = |i: usize| format!("service:{}", name(spans[i].node));
        let mut answered: HashSet<usize> = HashSet::new();
        for (i, span) in spans.iter().enumerate().filter(|(_, s)| s.segment) {
            let node = span.node;
            let id = service_id(i);
            let kind = node
                .get("origin")
                .and_then(Value::as_str)
                .unwrap_or("service");
            let status = Status::of(node);
            let lat = latency(node);
            self.node(&id, name(node), kind).add(lat, status);
            let caller = span.parent.and_then(|p| by_id.get(p).copied());
            let from = match caller.and_then(|c| owner(c).map(|o| (c, o))) {
                Some((c, o)) if o != i => {
                    answered.insert(c);
                    service_id(o)
                }
                _ => {
                    self.node("client", "Client", "client");
                    "client".to_owned()
                }
            };
            self.edge(&from, &id).add(lat, status);
        }
        for (i, span) in spans.iter().enumerate() {
            if span.segment || span.inside_call || answered.contains(&i) {
                continue;
            }
            let Some((id, name, kind)) = downstream(span.node) else {
                continue;
            };
            let Some(o) = owner(i) else { continue };
            let status = Status::of(span.node);
            let lat = latency(span.node);
            self.node(&id, &name, &kind).add(lat, status);
            self.edge(&service_id(o), &id).add(lat, status);
        }
    }

    /// The map.
    pub fn build(self) -> ServiceMap {
        ServiceMap {
            nodes: self
                .nodes
                .into_iter()
                .map(|(id, (name, kind, acc))| Node {
                    id,
                    name,
                    kind,
                    stats: acc.stats(),
                })
                .collect(),
            edges: self
                .edges
                .into_iter()
                .map(|((source, target), acc)| Edge {
                    source,
                    target,
                    stats: acc.stats(),
                })
                .collect(),
            traces: self.traces,
        }
    }
}

impl ServiceMap {
    /// An empty builder.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Builds the map of some traces, each given as its documents.
    pub fn from_traces<'a>(traces: impl IntoIterator<Item = &'a [Value]>) -> ServiceMap {
        let mut b = Builder::default();
        for t in traces {
            b.add_trace(t);
        }
        b.build()
    }

    /// A node by id.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// An edge by its ends.
    pub fn edge(&self, source: &str, target: &str) -> Option<&Edge> {
        self.edges
            .iter()
            .find(|e| e.source == source && e.target == target)
    }
}

#[cfg(test)]
#[path = "servicemap_tests.rs"]
mod tests;

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder").finish_non_exhaustive()
    }
}
