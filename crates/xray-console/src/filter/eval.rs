//! Evaluates a parsed expression against a trace summary.

use serde_json::Value;

use super::parser::{CmpOp, Expr, Field, Flag, Literal};
use crate::summary::TraceSummary;

/// Whether `trace` matches `expr`. A missing field (no HTTP status, an annotation the
/// trace does not have, a value of another type) never matches, not even with `!=`.
pub(crate) fn eval(expr: &Expr, trace: &TraceSummary) -> bool {
    match expr {
        Expr::And(a, b) => eval(a, trace) && eval(b, trace),
        Expr::Or(a, b) => eval(a, trace) || eval(b, trace),
        Expr::Not(a) => !eval(a, trace),
        Expr::Flag(flag, negate) => {
            let set = match flag {
                Flag::Ok => !(trace.error || trace.fault || trace.throttle),
                Flag::Error => trace.error,
                Flag::Fault => trace.fault,
                Flag::Throttle => trace.throttle,
            };
            set != *negate
        }
        Expr::Service(name) => trace.services.iter().any(|s| s == name),
        Expr::Compare(field, op, literal) => match field {
            Field::ResponseTime => number(trace.responsetime, *op, literal),
            Field::Duration => number(Some(trace.duration), *op, literal),
            Field::HttpStatus => number(trace.http_status.map(|s| s as f64), *op, literal),
            Field::HttpUrl => text(trace.http_url.as_deref(), *op, literal, false),
            Field::HttpMethod => text(trace.http_method.as_deref(), *op, literal, true),
            Field::Annotation(key) => trace
                .annotations
                .get(key)
                .is_some_and(|values| values.iter().any(|v| annotation(v, *op, literal))),
        },
    }
}

fn number(value: Option<f64>, op: CmpOp, literal: &Literal) -> bool {
    let (Some(v), Literal::Number(n)) = (value, literal) else {
        return false;
    };
    let n = *n;
    match op {
        // Times are microsecond floats: compare equal within half a microsecond.
        CmpOp::Eq => (v - n).abs() < 5e-7,
        CmpOp::Ne => (v - n).abs() >= 5e-7,
        CmpOp::Lt => v < n,
        CmpOp::Le => v <= n,
        CmpOp::Gt => v > n,
        CmpOp::Ge => v >= n,
        CmpOp::Contains | CmpOp::BeginsWith | CmpOp::EndsWith => false,
    }
}

fn text(value: Option<&str>, op: CmpOp, literal: &Literal, ignore_case: bool) -> bool {
    let (Some(v), Literal::Str(s)) = (value, literal) else {
        return false;
    };
    let (v, s) = if ignore_case {
        (v.to_ascii_uppercase(), s.to_ascii_uppercase())
    } else {
        (v.to_owned(), s.clone())
    };
    match op {
        CmpOp::Eq => v == s,
        CmpOp::Ne => v != s,
        CmpOp::Contains => v.contains(&s),
        CmpOp::BeginsWith => v.starts_with(&s),
        CmpOp::EndsWith => v.ends_with(&s),
        CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => false,
    }
}

fn annotation(value: &Value, op: CmpOp, literal: &Literal) -> bool {
    match (value, literal) {
        (Value::Number(n), Literal::Number(_)) => number(n.as_f64(), op, literal),
        (Value::String(s), Literal::Str(_)) => text(Some(s), op, literal, false),
        (Value::Bool(b), Literal::Bool(l)) => match op {
            CmpOp::Eq => b == l,
            CmpOp::Ne => b != l,
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use crate::filter::{Expr, Field, Filter, Flag};
    use crate::summary::TraceSummary;

    fn trace() -> TraceSummary {
        TraceSummary {
            id: "1-581cf771-a006649127e371903a2de979".into(),
            start_time: 100.0,
            duration: 2.5,
            responsetime: Some(1.75),
            http_status: Some(500),
            http_method: Some("GET".into()),
            http_url: Some("https://shop.example/api/orders/42".into()),
            error: false,
            fault: true,
            throttle: false,
            services: vec!["frontend".into(), "bff".into()],
            root: "frontend".into(),
            documents: 2,
            in_progress: false,
            annotations: BTreeMap::from([
                ("user".into(), vec![json!("alice")]),
                ("retries".into(), vec![json!(3)]),
                ("cached".into(), vec![json!(false)]),
            ]),
        }
    }

    fn matches(expr: &str) -> bool {
        Filter::parse(expr)
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
            .matches(&trace())
    }

    #[test]
    fn valid_expressions_match_what_they_say() {
        let yes = [
            "responsetime > 1.5",
            "duration >= 2",
            "duration >= 2.5",
            "http.status = 500",
            "http.status != 200",
            "fault",
            "FAULT",
            "!error",
            "not throttle",
            "!ok",
            "fault = true",
            "error = false",
            "error != true",
            r#"service("bff")"#,
            r#"SERVICE("frontend") and fault"#,
            r#"annotation.user = "alice""#,
            r#"annotation[user] = "alice""#,
            r#"annotation["user"] CONTAINS "lic""#,
            "annotation.retries >= 3",
            "annotation.cached = false",
            r#"http.url CONTAINS "/orders""#,
            r#"http.url BeginsWith "https://""#,
            r#"http.url endswith "42""#,
            r#"http.method = "get""#,
            r#"http.method = 'GET'"#,
            "error OR fault",
            "error || fault",
            "fault && responsetime < 2",
            "(error OR throttle) OR (fault AND duration > 1)",
            "!(error AND fault)",
            "error AND fault OR throttle OR responsetime > 1",
        ];
        for expr in yes {
            assert!(matches(expr), "{expr} should match");
        }
        let no = [
            "responsetime > 2",
            "duration < 2",
            "http.status = 200",
            "error",
            "throttle",
            "ok",
            "!fault",
            "fault = false",
            r#"service("backend1")"#,
            r#"annotation.user = "bob""#,
            r#"annotation.missing = "x""#,
            r#"annotation.missing != "x""#,
            r#"annotation.retries = "3""#,
            "annotation.user = 3",
            r#"http.url CONTAINS "/users""#,
            r#"http.method = "POST""#,
            "error AND fault",
            "error AND (fault OR throttle)",
            "fault AND !(responsetime > 1)",
        ];
        for expr in no {
            assert!(!matches(expr), "{expr} should not match");
        }
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let f = Filter::parse("error OR fault AND throttle").unwrap();
        let Expr::Or(left, _) = f.expr() else {
            panic!("{:?}", f.expr())
        };
        assert_eq!(**left, Expr::Flag(Flag::Error, false));
        let g = Filter::parse("annotation.a.b = 1").unwrap();
        assert!(matches!(g.expr(), Expr::Compare(Field::Annotation(k), _, _) if k == "a.b"));
    }

    #[test]
    fn a_missing_field_never_matches() {
        let mut t = trace();
        t.http_status = None;
        t.responsetime = None;
        for expr in [
            "http.status != 200",
            "http.status = 500",
            "responsetime >= 0",
        ] {
            assert!(!Filter::parse(expr).unwrap().matches(&t), "{expr}");
        }
    }

    #[test]
    fn invalid_expressions_say_where_and_what_was_expected() {
        let cases: [(&str, usize, &str); 18] = [
            ("", 1, "expected an expression"),
            ("   ", 4, "expected an expression"),
            ("responsetime >", 15, "expected a number after `>`"),
            ("responsetime > \"x\"", 16, "expected a number"),
            ("responsetime CONTAINS 1", 14, "expected a comparison"),
            ("responsetime", 13, "expected a comparison"),
            ("http.url > \"a\"", 10, "cannot compare"),
            ("http.url = 5", 12, "expected a quoted string"),
            ("annotation.x > true", 14, "cannot compare"),
            ("annotation.x CONTAINS 3", 14, "cannot compare"),
            ("fault AND", 10, "expected an expression"),
            ("(fault", 7, "expected `)` to close"),
            ("fault)", 6, "expected `AND`, `OR`"),
            ("fault error", 7, "expected `AND`, `OR`"),
            ("respnsetime > 1", 1, "unknown keyword `respnsetime`"),
            ("service(bff)", 9, "expected a quoted service name"),
            ("service(\"bff\"", 14, "expected `)` after the service name"),
            ("fault = maybe", 9, "expected `true` or `false`"),
        ];
        for (expr, position, message) in cases {
            let err = Filter::parse(expr).expect_err(expr);
            assert_eq!(err.position, position, "{expr}: {err}");
            assert!(err.message.contains(message), "{expr}: {err}");
            assert!(
                err.to_string()
                    .ends_with(&format!("at position {position}"))
            );
        }
        assert!(
            Filter::parse("annotation = 1")
                .unwrap_err()
                .message
                .contains("`.KEY` or `[KEY]`")
        );
        assert!(
            Filter::parse("!")
                .unwrap_err()
                .message
                .contains("expected an expression")
        );
    }
}
