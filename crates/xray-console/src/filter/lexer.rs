//! Splits an expression into tokens, each with its 1-based character position.

use super::FilterError;

/// A token's kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A word: a keyword or a field such as `http.status`, `annotation.key`.
    Word(String),
    Number(f64),
    Str(String),
    /// `=`, `!=`, `<`, `<=`, `>`, `>=`.
    Cmp(&'static str),
    Not,
    And,
    Or,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Eof,
}

impl Tok {
    /// How the token is named in messages.
    pub(super) fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("`{w}`"),
            Tok::Number(n) => format!("number {n}"),
            Tok::Str(s) => format!("string \"{s}\""),
            Tok::Cmp(op) => format!("`{op}`"),
            Tok::Not => "`!`".into(),
            Tok::And => "`&&`".into(),
            Tok::Or => "`||`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::Eof => "the end of the expression".into(),
        }
    }
}

/// A token and where it starts (1-based character position).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: usize,
}

fn err(pos: usize, message: impl Into<String>) -> FilterError {
    FilterError {
        position: pos,
        message: message.into(),
    }
}

/// Tokenizes `text`; the last token is always [`Tok::Eof`].
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let pos = i + 1;
        let next = chars.get(i + 1).copied();
        let (tok, len) = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '[' => (Tok::LBracket, 1),
            ']' => (Tok::RBracket, 1),
            '=' if next == Some('=') => (Tok::Cmp("="), 2),
            '=' => (Tok::Cmp("="), 1),
            '!' if next == Some('=') => (Tok::Cmp("!="), 2),
            '!' => (Tok::Not, 1),
            '<' if next == Some('=') => (Tok::Cmp("<="), 2),
            '<' => (Tok::Cmp("<"), 1),
            '>' if next == Some('=') => (Tok::Cmp(">="), 2),
            '>' => (Tok::Cmp(">"), 1),
            '&' if next == Some('&') => (Tok::And, 2),
            '|' if next == Some('|') => (Tok::Or, 2),
            '"' | '\'' => {
                let (s, len) = string(&chars[i..], pos)?;
                (Tok::Str(s), len)
            }
            c if c.is_ascii_digit()
                || (c == '-' || c == '.') && next.is_some_and(|n| n.is_ascii_digit()) =>
            {
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '.') {
                    j += 1;
                }
                let literal: String = chars[i..j].iter().collect();
                let n: f64 = literal
                    .parse()
                    .map_err(|_| err(pos, format!("`{literal}` is not a number")))?;
                (Tok::Number(n), j - i)
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut j = i + 1;
                while j < chars.len()
                    && (chars[j].is_alphanumeric() || matches!(chars[j], '_' | '.' | '-' | ':'))
                {
                    j += 1;
                }
                (Tok::Word(chars[i..j].iter().collect()), j - i)
            }
            other => {
                return Err(err(pos, format!("unexpected character `{other}`")));
            }
        };
        out.push(Token { tok, pos });
        i += len;
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: chars.len() + 1,
    });
    Ok(out)
}

/// Reads a quoted string starting at `chars[0]` (the quote); returns it and its length.
fn string(chars: &[char], pos: usize) -> Result<(String, usize), FilterError> {
    let quote = chars[0];
    let mut s = String::new();
    let mut j = 1;
    while j < chars.len() {
        match chars[j] {
            '\\' if j + 1 < chars.len() => {
                s.push(chars[j + 1]);
                j += 2;
            }
            c if c == quote => return Ok((s, j + 1)),
            c => {
                s.push(c);
                j += 1;
            }
        }
    }
    Err(err(
        pos,
        format!("string starting here has no closing {quote}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Tok> {
        tokenize(text).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn tokens_and_positions() {
        assert_eq!(
            kinds(r#"http.status>=500 && !x "a\"b""#),
            [
                Tok::Word("http.status".into()),
                Tok::Cmp(">="),
                Tok::Number(500.0),
                Tok::And,
                Tok::Not,
                Tok::Word("x".into()),
                Tok::Str("a\"b".into()),
                Tok::Eof
            ]
        );
        let t = tokenize("  fault").unwrap();
        assert_eq!(t[0].pos, 3);
        assert_eq!(t[1].pos, 8);
        assert_eq!(
            kinds("-1.5 .5"),
            [Tok::Number(-1.5), Tok::Number(0.5), Tok::Eof]
        );
    }

    #[test]
    fn bad_tokens_say_where() {
        assert_eq!(tokenize("a $ b").unwrap_err().position, 3);
        let e = tokenize(r#"x = "open"#).unwrap_err();
        assert_eq!(e.position, 5);
        assert!(e.message.contains("no closing"));
        assert_eq!(tokenize("x = 1.2.3").unwrap_err().position, 5);
    }
}
