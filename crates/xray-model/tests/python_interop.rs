//! Header interop with a real peer: Python's `aws-xray-sdk` (`TraceHeader.from_header_str`)
//! and our parser read the same real-world header strings.
//!
//! Where the two agree, the expected Root, Parent and Sampled are asserted for both. Where
//! the Python SDK is stricter or looser (it compares keys case-sensitively, does not trim
//! spaces after `;`, and does not validate ids), the row names the difference and the test
//! asserts what each side really returns, so a change on either side is noticed.

use xray_model::{Sampled, TraceHeader};
use xray_testkit::{require_python, run_python};

const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";
const PARENT: &str = "53995c3f42cd8ad8";

/// What a parser read: (Root, Parent, Sampled) as text, `None` where absent.
type Reading = (Option<String>, Option<String>, Option<String>);

struct Row {
    form: &'static str,
    header: String,
    ours: Reading,
    /// `None`: Python reads the same as ours. `Some(r)`: Python's known, different reading.
    python_differs: Option<Reading>,
}

fn r(root: Option<&str>, parent: Option<&str>, sampled: Option<&str>) -> Reading {
    (
        root.map(str::to_owned),
        parent.map(str::to_owned),
        sampled.map(str::to_owned),
    )
}

fn rows() -> Vec<Row> {
    let row = |form, header: String, ours, python_differs| Row {
        form,
        header,
        ours,
        python_differs,
    };
    let full = r(Some(ROOT), Some(PARENT), Some("1"));
    vec![
        row(
            "ALB, Root only",
            format!("Root={ROOT}"),
            r(Some(ROOT), None, None),
            None,
        ),
        row(
            "ALB with Self",
            format!("Self=1-67891234-12456789abcdef012345678;Root={ROOT}"),
            r(Some(ROOT), None, None),
            None,
        ),
        row(
            "ALB with Self and Sampled",
            format!("Self=1-67891234-12456789abcdef012345678;Root={ROOT};Sampled=1"),
            r(Some(ROOT), None, Some("1")),
            None,
        ),
        row(
            "Lambda with Lineage",
            format!("Root={ROOT};Parent={PARENT};Sampled=1;Lineage=a87bd80c:0"),
            full.clone(),
            None,
        ),
        row(
            "Lambda, not sampled",
            format!("Root={ROOT};Parent={PARENT};Sampled=0;Lineage=10:1234abcd:3"),
            r(Some(ROOT), Some(PARENT), Some("0")),
            None,
        ),
        row(
            "API Gateway, sampled",
            format!("Root={ROOT};Sampled=1"),
            r(Some(ROOT), None, Some("1")),
            None,
        ),
        row(
            "API Gateway, not sampled",
            format!("Root={ROOT};Sampled=0"),
            r(Some(ROOT), None, Some("0")),
            None,
        ),
        row(
            "SDK, full",
            format!("Root={ROOT};Parent={PARENT};Sampled=1"),
            full.clone(),
            None,
        ),
        row(
            "SDK asks for a decision",
            format!("Root={ROOT};Parent={PARENT};Sampled=?"),
            r(Some(ROOT), Some(PARENT), Some("?")),
            None,
        ),
        row(
            "Root only with Sampled=?",
            format!("Root={ROOT};Sampled=?"),
            r(Some(ROOT), None, Some("?")),
            None,
        ),
        row(
            "no Sampled field",
            format!("Root={ROOT};Parent={PARENT}"),
            r(Some(ROOT), Some(PARENT), None),
            None,
        ),
        row(
            "fields in another order",
            format!("Sampled=1;Parent={PARENT};Root={ROOT}"),
            full.clone(),
            None,
        ),
        row(
            "custom fields",
            format!("Root={ROOT};Parent={PARENT};Sampled=1;Foo=bar;Team=checkout"),
            full.clone(),
            None,
        ),
        row(
            "trailing semicolon",
            format!("Root={ROOT};Parent={PARENT};Sampled=1;"),
            full.clone(),
            Some(r(None, None, None)),
        ),
        row(
            "W3C random trace id",
            "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1".into(),
            r(
                Some("1-4bf92f35-77b34da6a3ce929d0e0e4736"),
                Some("00f067aa0ba902b7"),
                Some("1"),
            ),
            None,
        ),
        row(
            "surrounding white space",
            format!("  Root={ROOT};Parent={PARENT};Sampled=1 \t"),
            full.clone(),
            None,
        ),
        row(
            "Self after the known fields",
            format!(
                "Root={ROOT};Parent={PARENT};Sampled=1;Self=1-67891234-12456789abcdef012345678"
            ),
            full.clone(),
            None,
        ),
        row(
            "custom value holding '='",
            format!("Root={ROOT};Parent={PARENT};Sampled=1;Foo=a=b"),
            full.clone(),
            None,
        ),
        row(
            "SDK, not sampled",
            format!("Root={ROOT};Parent={PARENT};Sampled=0"),
            r(Some(ROOT), Some(PARENT), Some("0")),
            None,
        ),
        row(
            "decision asked, Parent first",
            format!("Parent={PARENT};Root={ROOT};Sampled=?;Lineage=a87bd80c:0"),
            r(Some(ROOT), Some(PARENT), Some("?")),
            None,
        ),
        row("empty", String::new(), r(None, None, None), None),
        row("garbage", "garbage".into(), r(None, None, None), None),
        row(
            "no Root at all",
            format!("Parent={PARENT};Sampled=1"),
            r(None, None, None),
            Some(r(None, Some(PARENT), Some("1"))),
        ),
        // Where the Python SDK loses information and we keep it:
        row(
            "space after ';' (seen from proxies)",
            format!("Root={ROOT}; Parent={PARENT}; Sampled=1"),
            full.clone(),
            Some(r(Some(ROOT), None, None)),
        ),
        row(
            "lower-case keys",
            format!("root={ROOT};parent={PARENT};sampled=1"),
            full.clone(),
            Some(r(None, None, None)),
        ),
        row(
            "broken Parent, good Root",
            format!("Root={ROOT};Parent=not-a-span;Sampled=1"),
            r(Some(ROOT), None, Some("1")),
            Some(r(Some(ROOT), Some("not-a-span"), Some("1"))),
        ),
    ]
}

fn ours(header: &str) -> Reading {
    match TraceHeader::parse(header) {
        Err(_) => (None, None, None),
        Ok(h) => (
            Some(h.root.to_string()),
            h.parent.map(|p| p.to_string()),
            match h.sampled {
                Sampled::Yes => Some("1".into()),
                Sampled::No => Some("0".into()),
                Sampled::Requested => Some("?".into()),
                Sampled::Unknown => None,
            },
        ),
    }
}

const PY: &str = r#"
import json, sys
from aws_xray_sdk.core.models.trace_header import TraceHeader
out = []
for line in sys.stdin.read().split("\n\x1e\n"):
    h = TraceHeader.from_header_str(line)
    s = h.sampled
    out.append([h.root, h.parent, None if s is None else str(s)])
print(json.dumps(out))
"#;

#[test]
fn python_aws_xray_sdk_reads_the_same_headers() {
    require_python(&["aws_xray_sdk"]);
    let rows = rows();
    assert!(rows.len() >= 20);
    let input = rows
        .iter()
        .map(|r| r.header.as_str())
        .collect::<Vec<_>>()
        .join("\n\x1e\n");
    let python: Vec<Reading> = serde_json::from_str(&run_python(PY, &[], &input)).unwrap();
    assert_eq!(python.len(), rows.len());
    let mut agree = 0;
    for (row, py) in rows.iter().zip(python) {
        assert_eq!(
            ours(&row.header),
            row.ours,
            "ours, {}: {:?}",
            row.form,
            row.header
        );
        let expected_py = row
            .python_differs
            .clone()
            .unwrap_or_else(|| row.ours.clone());
        assert_eq!(py, expected_py, "python, {}: {:?}", row.form, row.header);
        agree += usize::from(row.python_differs.is_none());
    }
    assert!(agree >= 20, "only {agree} forms where both agree");
}

#[test]
fn python_reads_headers_we_write() {
    require_python(&["aws_xray_sdk"]);
    let headers: Vec<String> = rows()
        .iter()
        .filter_map(|r| TraceHeader::parse(&r.header).ok())
        .map(|h| h.to_string())
        .collect();
    let python: Vec<Reading> =
        serde_json::from_str(&run_python(PY, &[], &headers.join("\n\x1e\n"))).unwrap();
    for (text, py) in headers.iter().zip(python) {
        assert_eq!(py, ours(text), "python reads our {text:?} differently");
    }
}
