//! X-Ray filter expressions: a hand-written recursive-descent parser and an evaluator
//! over [`TraceSummary`].
//!
//! Supported (keywords case-insensitive):
//!
//! - flags: `ok`, `error`, `fault`, `throttle`, optionally compared: `fault = false`;
//! - numbers (seconds, status): `responsetime`, `duration`, `http.status` with
//!   `= != < <= > >=`;
//! - strings: `http.url`, `http.method` with `= !=`, `CONTAINS`, `BEGINSWITH`, `ENDSWITH`;
//! - `service("name")`: the trace has a segment with that name;
//! - `annotation.key` or `annotation[key]` compared with a string, number or `true`/`false`;
//! - `!` (or `NOT`), `AND` (or `&&`), `OR` (or `||`), parentheses; `AND` binds tighter.
//!
//! ```
//! use xray_console::Filter;
//! let f = Filter::parse(r#"fault AND (http.url CONTAINS "/orders" OR responsetime > 1.5)"#).unwrap();
//! # let _ = f;
//! let err = Filter::parse("responsetime >").unwrap_err();
//! assert_eq!(err.position, 15);
//! assert!(err.to_string().contains("expected a number"));
//! ```

mod eval;
mod lexer;
mod parser;

pub use parser::{CmpOp, Expr, Field, Flag, Literal};

use crate::summary::TraceSummary;

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    expr: Expr,
}

/// Why an expression does not parse: where (1-based character position) and what was
/// expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at position {position}")]
pub struct FilterError {
    /// The 1-based character position where the expression is wrong.
    pub position: usize,
    /// What was expected and what was found.
    pub message: String,
}

impl Filter {
    /// Parses an expression.
    ///
    /// # Errors
    ///
    /// [`FilterError`] with the 1-based character position where the expression is wrong
    /// and what was expected there.
    ///
    /// # Examples
    ///
    /// ```
    /// use xray_console::Filter;
    ///
    /// assert!(Filter::parse(r#"service("api") AND (fault OR responsetime > 1.5)"#).is_ok());
    /// let error = Filter::parse("http.status = ").unwrap_err();
    /// assert_eq!(error.position, 15);
    /// ```
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let tokens = lexer::tokenize(text)?;
        let expr = parser::Parser::new(tokens).parse()?;
        Ok(Filter { expr })
    }

    /// The syntax tree.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Whether a trace matches.
    pub fn matches(&self, trace: &TraceSummary) -> bool {
        eval::eval(&self.expr, trace)
    }
}
