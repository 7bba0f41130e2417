//! What the store indexes about one document: ids, times, status flags, HTTP fields and
//! annotations, read once when the document arrives.

use serde_json::{Map, Value};
use xray_model::datagram::summarize_document;

/// Error, throttle and fault, as X-Ray derives them (flags or the HTTP status).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Status {
    pub error: bool,
    pub throttle: bool,
    pub fault: bool,
}

impl Status {
    /// The status of one segment or subsegment object.
    pub(crate) fn of(node: &Value) -> Status {
        let flag = |k: &str| node.get(k).and_then(Value::as_bool).unwrap_or(false);
        let http = http_status(node);
        Status {
            error: flag("error") || http.is_some_and(|s| (400..500).contains(&s)),
            throttle: flag("throttle") || http == Some(429),
            fault: flag("fault") || http.is_some_and(|s| s >= 500),
        }
    }

    /// Both statuses together.
    pub(crate) fn or(self, other: Status) -> Status {
        Status {
            error: self.error || other.error,
            throttle: self.throttle || other.throttle,
            fault: self.fault || other.fault,
        }
    }
}

/// `http.response.status` of a segment or subsegment object.
pub(crate) fn http_status(node: &Value) -> Option<i64> {
    node.pointer("/http/response/status")
        .and_then(Value::as_i64)
}

/// The indexed facts of one stored document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DocFacts {
    pub trace_id: String,
    pub id: String,
    pub parent_id: Option<String>,
    pub subsegment: bool,
    pub name: String,
    pub origin: Option<String>,
    pub start: f64,
    pub end: Option<f64>,
    pub status: Status,
    /// The document's status together with every nested subsegment's.
    pub any: Status,
    pub http_status: Option<i64>,
    pub http_method: Option<String>,
    pub http_url: Option<String>,
    /// Annotations of the document and its nested subsegments: `{key: [values]}`.
    pub annotations: Map<String, Value>,
}

impl DocFacts {
    /// Reads a document's JSON text; the error says why it is not a segment document.
    pub(crate) fn parse(json: &str) -> Result<DocFacts, String> {
        let summary = summarize_document(json).map_err(|e| e.to_string())?;
        let value: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let str_field =
            |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_owned);
        let mut any = Status::default();
        let mut annotations = Map::new();
        walk(&value, &mut any, &mut annotations, 0);
        Ok(DocFacts {
            trace_id: summary.trace_id.to_string(),
            id: summary.id.to_string(),
            parent_id: str_field(&value, "/parent_id"),
            subsegment: summary.subsegment,
            name: str_field(&value, "/name").unwrap_or_default(),
            origin: str_field(&value, "/origin"),
            start: value
                .get("start_time")
                .and_then(Value::as_f64)
                .unwrap_or(0.0),
            end: value.get("end_time").and_then(Value::as_f64),
            status: Status::of(&value),
            any,
            http_status: http_status(&value),
            http_method: str_field(&value, "/http/request/method"),
            http_url: str_field(&value, "/http/request/url"),
            annotations,
        })
    }
}

/// Collects statuses and annotations over a document tree (depth-bounded).
fn walk(node: &Value, any: &mut Status, annotations: &mut Map<String, Value>, depth: usize) {
    *any = any.or(Status::of(node));
    if let Some(map) = node.get("annotations").and_then(Value::as_object) {
        for (k, v) in map {
            if let Value::Array(values) = annotations
                .entry(k.clone())
                .or_insert_with(|| Value::Array(Vec::new()))
                && !values.contains(v)
            {
                values.push(v.clone());
            }
        }
    }
    if depth < 64
        && let Some(children) = node.get("subsegments").and_then(Value::as_array)
    {
        for child in children {
            walk(child, any, annotations, depth + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_cover_nested_subsegments_and_http_status() {
        let doc = r#"{"name":"api","id":"70de5b6f19ff9a0a","trace_id":"1-581cf771-a006649127e371903a2de979",
            "start_time":10.0,"end_time":10.5,"http":{"request":{"method":"GET","url":"http://x/y"},"response":{"status":429}},
            "annotations":{"user":"ann"},
            "subsegments":[{"name":"DynamoDB","id":"70de5b6f19ff9a0b","start_time":10.1,"end_time":10.2,"fault":true,
              "annotations":{"user":"bob","n":3}}]}"#;
        let f = DocFacts::parse(doc).unwrap();
        assert_eq!(f.name, "api");
        assert!(!f.subsegment);
        assert_eq!(f.http_status, Some(429));
        assert_eq!(
            f.status,
            Status {
                error: true,
                throttle: true,
                fault: false
            }
        );
        assert_eq!(
            f.any,
            Status {
                error: true,
                throttle: true,
                fault: true
            }
        );
        assert_eq!(f.annotations["user"], serde_json::json!(["ann", "bob"]));
        assert_eq!(f.http_method.as_deref(), Some("GET"));
    }

    #[test]
    fn non_documents_are_refused_with_a_reason() {
        assert!(DocFacts::parse("{}").unwrap_err().contains("name"));
        assert!(DocFacts::parse("not json").is_err());
        assert!(DocFacts::parse(r#"{"name":"a","id":"zz","trace_id":"1-581cf771-a006649127e371903a2de979","start_time":1,"end_time":2}"#).is_err());
    }
}
