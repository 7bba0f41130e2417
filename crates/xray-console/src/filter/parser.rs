//! The grammar, by recursive descent:
//!
//! ```text
//! expr    := and (OR and)*
//! and     := unary (AND unary)*
//! unary   := ('!' | NOT) unary | primary
//! primary := '(' expr ')' | flag [('=' | '!=') bool] | 'service' '(' string ')'
//!          | field op literal
//! field   := responsetime | duration | http.status | http.url | http.method
//!          | annotation.KEY | annotation '[' KEY ']'
//! ```

use super::FilterError;
use super::lexer::{Tok, Token};

/// A filter expression's syntax tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Both sides match.
    And(Box<Expr>, Box<Expr>),
    /// Either side matches.
    Or(Box<Expr>, Box<Expr>),
    /// The inner expression does not match.
    Not(Box<Expr>),
    /// A status flag is set (or, with `negate`, not set).
    Flag(Flag, bool),
    /// The trace has a segment with this name.
    Service(String),
    /// A field compared with a literal.
    Compare(Field, CmpOp, Literal),
}

/// Status keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// No error, throttle or fault anywhere in the trace.
    Ok,
    /// Some segment or subsegment has an error (4xx).
    Error,
    /// Some segment or subsegment has a fault (5xx).
    Fault,
    /// Some segment or subsegment was throttled (429).
    Throttle,
}

/// Fields a comparison can test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The root segment's duration (seconds).
    ResponseTime,
    /// The whole trace's duration (seconds).
    Duration,
    /// The root segment's HTTP status.
    HttpStatus,
    /// The root segment's request URL.
    HttpUrl,
    /// The root segment's HTTP method.
    HttpMethod,
    /// An annotation of any segment or subsegment.
    Annotation(String),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `CONTAINS`
    Contains,
    /// `BEGINSWITH`
    BeginsWith,
    /// `ENDSWITH`
    EndsWith,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A number.
    Number(f64),
    /// A quoted string.
    Str(String),
    /// `true` or `false`.
    Bool(bool),
}

pub(crate) struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

const FIELDS: &str = "`responsetime`, `duration`, `http.status`, `http.url`, `http.method`, `annotation.KEY`, `service(\"name\")`, `ok`, `error`, `fault`, `throttle`, `!` or `(`";

impl Parser {
    pub(super) fn new(tokens: Vec<Token>) -> Parser {
        Parser { tokens, at: 0 }
    }

    fn peek(&self) -> &Token {
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.at < self.tokens.len() - 1 {
            self.at += 1;
        }
        t
    }

    fn fail<T>(&self, expected: &str) -> Result<T, FilterError> {
        let t = self.peek();
        Err(FilterError {
            position: t.pos,
            message: format!("expected {expected}, found {}", t.tok.describe()),
        })
    }

    fn keyword(&self, kw: &str) -> bool {
        matches!(&self.peek().tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    pub(super) fn parse(mut self) -> Result<Expr, FilterError> {
        if self.peek().tok == Tok::Eof {
            return self.fail(&format!("an expression: {FIELDS}"));
        }
        let expr = self.or()?;
        if self.peek().tok != Tok::Eof {
            return self.fail("`AND`, `OR`, `)` or the end of the expression");
        }
        Ok(expr)
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and()?;
        while self.peek().tok == Tok::Or || self.keyword("or") {
            self.bump();
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.unary()?;
        while self.peek().tok == Tok::And || self.keyword("and") {
            self.bump();
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        if self.peek().tok == Tok::Not || self.keyword("not") {
            self.bump();
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, FilterError> {
        let token = self.peek().clone();
        match token.tok {
            Tok::LParen => {
                self.bump();
                let inner = self.or()?;
                if self.peek().tok != Tok::RParen {
                    return self.fail("`)` to close the `(`");
                }
                self.bump();
                Ok(inner)
            }
            Tok::Word(word) => {
                self.bump();
                let lower = word.to_ascii_lowercase();
                let flag = match lower.as_str() {
                    "ok" => Some(Flag::Ok),
                    "error" => Some(Flag::Error),
                    "fault" => Some(Flag::Fault),
                    "throttle" => Some(Flag::Throttle),
                    _ => None,
                };
                if let Some(flag) = flag {
                    return self.flag(flag);
                }
                if lower == "service" {
                    return self.service();
                }
                let field = match lower.as_str() {
                    "responsetime" => Field::ResponseTime,
                    "duration" => Field::Duration,
                    "http.status" => Field::HttpStatus,
                    "http.url" => Field::HttpUrl,
                    "http.method" => Field::HttpMethod,
                    "annotation" => self.bracket_key()?,
                    _ if lower.starts_with("annotation.") && word.len() > 11 => {
                        Field::Annotation(word[11..].to_owned())
                    }
                    _ => {
                        return Err(FilterError {
                            position: token.pos,
                            message: format!("unknown keyword `{word}`: expected {FIELDS}"),
                        });
                    }
                };
                self.comparison(field)
            }
            _ => self.fail(&format!("an expression: {FIELDS}")),
        }
    }

    fn flag(&mut self, flag: Flag) -> Result<Expr, FilterError> {
        let Tok::Cmp(op @ ("=" | "!=")) = self.peek().tok else {
            return Ok(Expr::Flag(flag, false));
        };
        self.bump();
        let value = match self.peek().tok.clone() {
            Tok::Word(w) if w.eq_ignore_ascii_case("true") => true,
            Tok::Word(w) if w.eq_ignore_ascii_case("false") => false,
            _ => return self.fail("`true` or `false`"),
        };
        self.bump();
        Ok(Expr::Flag(flag, value == (op == "!=")))
    }

    fn service(&mut self) -> Result<Expr, FilterError> {
        if self.peek().tok != Tok::LParen {
            return self.fail("`(` after `service`");
        }
        self.bump();
        let Tok::Str(name) = self.peek().tok.clone() else {
            return self.fail("a quoted service name");
        };
        self.bump();
        if self.peek().tok != Tok::RParen {
            return self.fail("`)` after the service name");
        }
        self.bump();
        Ok(Expr::Service(name))
    }

    fn bracket_key(&mut self) -> Result<Field, FilterError> {
        if self.peek().tok != Tok::LBracket {
            return self.fail("`.KEY` or `[KEY]` after `annotation`");
        }
        self.bump();
        let key = match self.peek().tok.clone() {
            Tok::Word(w) | Tok::Str(w) => w,
            _ => return self.fail("an annotation key"),
        };
        self.bump();
        if self.peek().tok != Tok::RBracket {
            return self.fail("`]` after the annotation key");
        }
        self.bump();
        Ok(Field::Annotation(key))
    }

    fn comparison(&mut self, field: Field) -> Result<Expr, FilterError> {
        let numeric = matches!(
            field,
            Field::ResponseTime | Field::Duration | Field::HttpStatus
        );
        let textual = matches!(field, Field::HttpUrl | Field::HttpMethod);
        let op = match self.peek().tok.clone() {
            Tok::Cmp(op) => match op {
                "=" => CmpOp::Eq,
                "!=" => CmpOp::Ne,
                "<" => CmpOp::Lt,
                "<=" => CmpOp::Le,
                ">" => CmpOp::Gt,
                _ => CmpOp::Ge,
            },
            Tok::Word(w) if !numeric && w.eq_ignore_ascii_case("contains") => CmpOp::Contains,
            Tok::Word(w) if !numeric && w.eq_ignore_ascii_case("beginswith") => CmpOp::BeginsWith,
            Tok::Word(w) if !numeric && w.eq_ignore_ascii_case("endswith") => CmpOp::EndsWith,
            _ if numeric => return self.fail("a comparison (`=`, `!=`, `<`, `<=`, `>`, `>=`)"),
            _ if textual => return self.fail("`=`, `!=`, `CONTAINS`, `BEGINSWITH` or `ENDSWITH`"),
            _ => return self.fail("a comparison (`=`, `!=`, `<`, `<=`, `>`, `>=`, `CONTAINS`, `BEGINSWITH`, `ENDSWITH`)"),
        };
        let op_token = self.bump();
        let literal = match self.peek().tok.clone() {
            Tok::Number(n) if !textual => Literal::Number(n),
            Tok::Str(s) if !numeric => Literal::Str(s),
            Tok::Word(w) if !numeric && !textual && w.eq_ignore_ascii_case("true") => {
                Literal::Bool(true)
            }
            Tok::Word(w) if !numeric && !textual && w.eq_ignore_ascii_case("false") => {
                Literal::Bool(false)
            }
            _ if numeric => {
                return self.fail(&format!("a number after {}", op_token.tok.describe()));
            }
            _ if textual => {
                return self.fail(&format!(
                    "a quoted string after {}",
                    op_token.tok.describe()
                ));
            }
            _ => {
                return self.fail(&format!(
                    "a value (number, quoted string, true or false) after {}",
                    op_token.tok.describe()
                ));
            }
        };
        let ordering = matches!(op, CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge);
        let text_op = matches!(op, CmpOp::Contains | CmpOp::BeginsWith | CmpOp::EndsWith);
        let fits = match &literal {
            Literal::Number(_) => !text_op,
            Literal::Str(_) => !ordering,
            Literal::Bool(_) => !ordering && !text_op,
        };
        if !fits {
            return Err(FilterError {
                position: op_token.pos,
                message: format!(
                    "{} cannot compare with {}",
                    op_token.tok.describe(),
                    self.peek().tok.describe()
                ),
            });
        }
        self.bump();
        Ok(Expr::Compare(field, op, literal))
    }
}
