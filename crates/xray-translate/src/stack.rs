//! Stack traces (`exception.stacktrace`) parsed into X-Ray stack frames and cause chains:
//! Rust backtraces (std and `anyhow` output), Java (and PHP, which writes Java's format),
//! Python, JavaScript, .NET and Go (goroutine dumps).
//! Frames borrow from the text; anything unrecognised is skipped, never an error.

use std::borrow::Cow;

use xray_model::StackFrame;

/// Most frames kept per exception; the rest are counted in `truncated`.
pub(crate) const MAX_FRAMES: usize = 100;

/// Frames of one exception, innermost first, with the count of frames left out.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Frames<'a> {
    pub(crate) frames: Vec<StackFrame<'a>>,
    pub(crate) truncated: u32,
}

impl<'a> Frames<'a> {
    fn push(&mut self, frame: StackFrame<'a>) {
        if self.frames.len() < MAX_FRAMES {
            self.frames.push(frame);
        } else {
            self.truncated += 1;
        }
    }

    fn last_mut(&mut self) -> Option<&mut StackFrame<'a>> {
        if self.truncated > 0 {
            None
        } else {
            self.frames.last_mut()
        }
    }
}

/// An exception found inside the text (a "Caused by" entry), outermost cause last.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct CauseEntry<'a> {
    pub(crate) kind: Option<&'a str>,
    pub(crate) message: Option<Cow<'a, str>>,
    pub(crate) frames: Frames<'a>,
}

/// A parsed stack trace: the frames of the recorded exception and the causes after it.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ParsedStack<'a> {
    pub(crate) frames: Frames<'a>,
    pub(crate) causes: Vec<CauseEntry<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Rust,
    Java,
    Python,
    JavaScript,
    DotNet,
    Go,
}

fn format_of(language: Option<&str>, text: &str) -> Option<Format> {
    if let Some(language) = language {
        let is = |names: &[&str]| names.iter().any(|n| n.eq_ignore_ascii_case(language));
        if is(&["rust"]) {
            return Some(Format::Rust);
        } else if is(&["java", "php", "kotlin", "scala"]) {
            return Some(Format::Java);
        } else if is(&["python"]) {
            return Some(Format::Python);
        } else if is(&["nodejs", "javascript", "webjs"]) {
            return Some(Format::JavaScript);
        } else if is(&["dotnet"]) {
            return Some(Format::DotNet);
        } else if is(&["go"]) {
            return Some(Format::Go);
        }
    }
    if text.contains("Traceback (most recent call last):") {
        return Some(Format::Python);
    }
    let mut lines = lines(text);
    lines.find_map(|line| {
        if is_goroutine_header(line) {
            Some(Format::Go)
        } else if line.starts_with("\tat ") {
            Some(Format::Java)
        } else if line.starts_with("    at ") {
            Some(Format::JavaScript)
        } else if line.starts_with("   at ") {
            Some(Format::DotNet)
        } else if rust_frame_label(trim(line)).is_some() {
            Some(Format::Rust)
        } else {
            None
        }
    })
}

/// Parses `text` written by a program in `language` (`telemetry.sdk.language`), or in a
/// format recognised from the text itself when the language is unknown.
pub(crate) fn parse_stack<'a>(language: Option<&str>, text: &'a str) -> ParsedStack<'a> {
    match format_of(language, text) {
        Some(Format::Rust) => parse_rust(text),
        Some(Format::Java) => parse_java(text),
        Some(Format::Python) => parse_python(text),
        Some(Format::JavaScript) => parse_javascript(text),
        Some(Format::DotNet) => parse_dotnet(text),
        Some(Format::Go) => parse_go(text),
        None => ParsedStack::default(),
    }
}

/// The lines of `text`, exactly as [`str::lines`] gives them (split at `\n`, a `\r`
/// before it removed, no empty line after a final `\n`), each line end found with
/// `memchr` (a stack trace's lines are long enough that a vector search beats
/// `str::lines`' character searcher several times over).
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let line = match memchr::memchr(b'\n', rest.as_bytes()) {
            Some(at) => {
                // `\n` is ASCII: `at` and `at + 1` are character boundaries.
                let (line, after) = (&rest[..at], &rest[at + 1..]);
                rest = after;
                line.strip_suffix('\r').unwrap_or(line)
            }
            None => std::mem::take(&mut rest),
        };
        Some(line)
    })
}

/// Splits at the last `:`.
fn split_last_colon(s: &str) -> Option<(&str, &str)> {
    let at = s.bytes().rposition(|b| b == b':')?;
    Some((&s[..at], &s[at + 1..]))
}

/// Splits `path:line[:column]` into the path and line.
fn path_and_line(location: &str) -> (&str, Option<u32>) {
    let Some((head, last)) = split_last_colon(location) else {
        return (location, None);
    };
    let Ok(last) = last.parse::<u32>() else {
        return (location, None);
    };
    match split_last_colon(head).map(|(path, middle)| (path, middle.parse::<u32>())) {
        // path:line:column
        Some((path, Ok(line))) => (path, Some(line)),
        // path:line (or a Windows drive letter before it)
        _ => (head, Some(last)),
    }
}

/// `str::trim`, without decoding characters when the ends are plain ASCII (the bytes
/// `trim_ascii` keeps are then exactly the characters `trim` keeps).
fn trim(line: &str) -> &str {
    let t = line.trim_ascii();
    match (t.as_bytes().first(), t.as_bytes().last()) {
        (Some(&first), Some(&last))
            if first.is_ascii() && last.is_ascii() && first != 0x0B && last != 0x0B =>
        {
            t
        }
        (None, _) => t,
        _ => line.trim(),
    }
}

fn frame<'a>(path: Option<&'a str>, line: Option<u32>, label: Option<&'a str>) -> StackFrame<'a> {
    StackFrame {
        path: path.filter(|p| !p.is_empty()).map(Cow::Borrowed),
        line,
        label: label.filter(|l| !l.is_empty()).map(Cow::Borrowed),
    }
}

/// `12: crate::module::function` (std) or `12: 0x5581 - crate::function` (older
/// `backtrace` output) gives the label.
fn rust_frame_label(trimmed: &str) -> Option<&str> {
    let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
    let rest = trimmed[digits..].strip_prefix(": ")?;
    if digits == 0 {
        return None;
    }
    let rest = rest.trim_start();
    let label = match rest.strip_prefix("0x") {
        Some(addr) => addr.split_once(" - ").map_or(rest, |(_, l)| l),
        None => rest,
    };
    (!label.is_empty()).then_some(label)
}

fn parse_rust(text: &str) -> ParsedStack<'_> {
    #[derive(PartialEq)]
    enum Section {
        Frames,
        Causes,
    }
    let mut out = ParsedStack::default();
    let mut section = Section::Frames;
    for line in lines(text) {
        let t = trim(line);
        if t.is_empty() {
            if section == Section::Causes {
                section = Section::Frames;
            }
            continue;
        }
        if t == "Caused by:" {
            section = Section::Causes;
            continue;
        }
        if t.eq_ignore_ascii_case("stack backtrace:") {
            section = Section::Frames;
            continue;
        }
        match section {
            Section::Causes => {
                let message = match t.split_once(": ") {
                    Some((n, m)) if n.bytes().all(|b| b.is_ascii_digit()) => m,
                    _ => t,
                };
                out.causes.push(CauseEntry {
                    message: Some(Cow::Borrowed(message)),
                    ..CauseEntry::default()
                });
            }
            Section::Frames => {
                if let Some(label) = rust_frame_label(t) {
                    out.frames.push(frame(None, None, Some(label)));
                } else if let Some(location) = t.strip_prefix("at ")
                    && let Some(last) = out.frames.last_mut()
                    && last.path.is_none()
                {
                    let (path, line) = path_and_line(location);
                    last.path = Some(Cow::Borrowed(path));
                    last.line = line;
                }
            }
        }
    }
    out
}

/// `at label(File.java:12)` into a frame; the module or class-loader prefix is dropped.
fn java_frame(line: &str) -> Option<StackFrame<'_>> {
    let body = line.trim_start().strip_prefix("at ")?;
    let open = body.find('(')?;
    let inner = body[open + 1..].strip_suffix(')')?;
    let label = &body[..open];
    let label = label.split_once('/').map_or(label, |(_, l)| l);
    let (path, line) = match inner.rsplit_once(':') {
        Some((p, n)) if n.parse::<u32>().is_ok() => (p, n.parse().ok()),
        _ => (inner, None),
    };
    Some(frame(Some(path), line, Some(label)))
}

fn parse_java(text: &str) -> ParsedStack<'_> {
    let mut out = ParsedStack::default();
    for line in lines(text).skip(1) {
        let depth = line.len() - line.trim_start().len();
        if let Some(cause) = line.strip_prefix("Caused by: ") {
            let (kind, message) = match cause.split_once(": ") {
                Some((k, m)) => (k, Some(Cow::Borrowed(m))),
                None => (cause, None),
            };
            out.causes.push(CauseEntry {
                kind: Some(kind),
                message,
                ..CauseEntry::default()
            });
        } else if (line.starts_with("\tat ") || (depth <= 4 && !line.starts_with('\t')))
            && let Some(f) = java_frame(line)
        {
            match out.causes.last_mut() {
                Some(cause) => cause.frames.push(f),
                None => out.frames.push(f),
            }
        }
    }
    out
}

/// `File "app.py", line 12, in handler` into a frame.
fn python_frame(line: &str) -> Option<StackFrame<'_>> {
    let rest = line.trim_start().strip_prefix("File \"")?;
    let (path, rest) = rest.split_once("\", line ")?;
    let (number, label) = match rest.split_once(", in ") {
        Some((n, l)) => (n, Some(l)),
        None => (rest, None),
    };
    Some(frame(Some(path), number.trim().parse().ok(), label))
}

fn parse_python(text: &str) -> ParsedStack<'_> {
    const SEPARATORS: [&str; 2] = [
        "During handling of the above exception, another exception occurred:",
        "The above exception was the direct cause of the following exception:",
    ];
    // Blocks in the order printed: the first cause first, the raised exception last.
    let mut blocks: Vec<(Frames<'_>, Option<&str>)> = vec![Default::default()];
    for line in lines(text) {
        let t = trim(line);
        if SEPARATORS.contains(&t) {
            blocks.push(Default::default());
            continue;
        }
        let block = blocks.last_mut().expect("never empty");
        if let Some(f) = python_frame(line) {
            block.0.push(f);
        } else if !line.starts_with(' ') && !t.is_empty() && !t.starts_with("Traceback (") {
            block.1 = Some(t);
        }
    }
    let mut out = ParsedStack::default();
    let mut blocks = blocks.into_iter().rev();
    if let Some((mut frames, _)) = blocks.next() {
        frames.frames.reverse();
        out.frames = frames;
    }
    for (mut frames, summary) in blocks {
        frames.frames.reverse();
        let (kind, message) = match summary.map(|s| s.split_once(": ").unwrap_or((s, ""))) {
            Some((k, m)) => (Some(k), (!m.is_empty()).then_some(Cow::Borrowed(m))),
            None => (None, None),
        };
        out.causes.push(CauseEntry {
            kind,
            message,
            frames,
        });
    }
    out
}

fn parse_javascript(text: &str) -> ParsedStack<'_> {
    let mut out = ParsedStack::default();
    for line in lines(text) {
        let Some(body) = line.trim_start().strip_prefix("at ") else {
            continue;
        };
        let (label, location) = match body.strip_suffix(')').and_then(|b| b.rsplit_once(" (")) {
            Some((label, location)) => (Some(label), location),
            // `label (location` cut short or followed by junk: not a frame.
            None if body.contains(" (") => continue,
            None => (None, body),
        };
        let (path, line) = path_and_line(location);
        out.frames.push(frame(Some(path), line, label));
    }
    out
}

fn parse_dotnet(text: &str) -> ParsedStack<'_> {
    let mut out = ParsedStack::default();
    for line in lines(text) {
        let Some(body) = line.trim_start().strip_prefix("at ") else {
            continue;
        };
        match body.rsplit_once(" in ") {
            Some((label, location)) => {
                let (path, line) = match location.rsplit_once(":line ") {
                    Some((p, n)) => (p, n.trim().parse().ok()),
                    None => (location, None),
                };
                out.frames.push(frame(Some(path), line, Some(label)));
            }
            // No file: the label ends at its argument list (`App.Main() + 0x1c`); a line
            // without one is not a frame.
            None => {
                if let Some(at) = body.rfind(')') {
                    out.frames.push(frame(None, None, Some(&body[..=at])));
                }
            }
        }
    }
    out
}

/// `goroutine 7 [running]:`, the header of one goroutine in a Go stack dump.
fn is_goroutine_header(line: &str) -> bool {
    let line = line.trim_end();
    line.starts_with("goroutine ") && line.ends_with("]:")
}

/// A Go frame's function line without its arguments: `main.(*Server).handle(0xc0, ...)`
/// gives `main.(*Server).handle`; `created by main.main in goroutine 1` gives `main.main`.
fn go_label(line: &str) -> &str {
    if let Some(creator) = line.strip_prefix("created by ") {
        return creator.split(" in goroutine ").next().unwrap_or(creator);
    }
    match line.strip_suffix(')').and_then(|l| l.rfind('(')) {
        Some(open) if open > 0 => &line[..open],
        _ => line,
    }
}

/// A Go stack dump (`runtime.Stack`, `debug.Stack`, a panic): the frames of the first
/// goroutine, each a function line followed by a tab-indented `path:line +0x..` line
/// (anything else, such as `go run`'s `exit status 2`, is not a frame).
fn parse_go(text: &str) -> ParsedStack<'_> {
    let mut out = ParsedStack::default();
    let mut in_goroutine = false;
    let mut label: Option<&str> = None;
    for line in lines(text) {
        if is_goroutine_header(line) {
            if in_goroutine {
                break;
            }
            in_goroutine = true;
            continue;
        }
        if !in_goroutine {
            continue;
        }
        let t = trim(line);
        if t.is_empty() {
            if label.is_some() || !out.frames.frames.is_empty() {
                break;
            }
            continue;
        }
        if line.starts_with('\t') {
            if let Some(function) = label.take() {
                let location = t.split(" +0x").next().unwrap_or(t);
                let (path, line) = path_and_line(location);
                out.frames.push(frame(Some(path), line, Some(function)));
            }
        } else {
            // Every frame has its location line; a line without one is not a frame.
            label = Some(go_label(t));
        }
    }
    out
}

/// One exception for [`write_stack`]: its type, message and frames (innermost first).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExceptionText<'s> {
    pub(crate) kind: Option<&'s str>,
    pub(crate) message: Option<&'s str>,
    pub(crate) frames: &'s [StackFrame<'s>],
}

/// The format a stack trace is written in for `language`: the one [`parse_stack`] reads
/// for it, Python's when the language is unknown (recognised from the text alone).
fn write_format(language: Option<&str>) -> Option<Format> {
    format_of(language, "")
}

/// Whether `s` fits on one line of a stack trace and reads back unchanged once trimmed.
fn one_line(s: &str) -> bool {
    !s.contains(['\n', '\r']) && s.trim() == s
}

/// Writes `top`'s frames and its chain of `causes` (direct cause first) as the stack
/// trace text [`parse_stack`] reads back into the same frames and causes for `language`:
/// the inverse of the parser, for converting X-Ray causes back to `exception` events.
/// Returns `None` when the causes cannot be written in that format (then each exception
/// needs an event of its own); frames are always written.
pub(crate) fn write_stack(
    language: Option<&str>,
    top: ExceptionText<'_>,
    causes: &[ExceptionText<'_>],
) -> Option<String> {
    match write_format(language) {
        Some(format) => write_in(format, top, causes),
        // The parser recognises the format from the text: Python's, else Rust's (whose
        // causes are messages alone, as `anyhow` writes them) when it holds the causes.
        None => write_in(Format::Python, top, causes).or_else(|| {
            let rust_frames = top.frames.iter().all(|f| f.label.is_some());
            rust_frames
                .then(|| write_in(Format::Rust, top, causes))
                .flatten()
        }),
    }
}

fn write_in(
    format: Format,
    top: ExceptionText<'_>,
    causes: &[ExceptionText<'_>],
) -> Option<String> {
    use std::fmt::Write as _;
    let mut out = String::new();
    match format {
        Format::Python => {
            let fits = |c: &ExceptionText<'_>| {
                c.kind
                    .is_some_and(|k| one_line(k) && !k.contains(": ") && !k.is_empty())
                    && c.message.is_none_or(one_line)
            };
            if !causes.iter().all(fits) {
                return None;
            }
            // Printed as Python does: the deepest cause first, the raised exception last.
            for (i, e) in causes.iter().rev().chain([&top]).enumerate() {
                if i > 0 {
                    out.push_str(
                        "\nThe above exception was the direct cause of the following exception:\n\n",
                    );
                }
                out.push_str("Traceback (most recent call last):\n");
                for f in e.frames.iter().rev() {
                    let _ = write!(out, "  File \"{}\", line ", f.path.as_deref().unwrap_or(""));
                    if let Some(line) = f.line {
                        let _ = write!(out, "{line}");
                    }
                    if let Some(label) = &f.label {
                        let _ = write!(out, ", in {label}");
                    }
                    out.push('\n');
                }
                match (
                    e.kind.filter(|k| one_line(k)),
                    e.message.filter(|m| one_line(m)),
                ) {
                    (Some(k), Some(m)) if !m.is_empty() => {
                        let _ = writeln!(out, "{k}: {m}");
                    }
                    (Some(k), _) => {
                        let _ = writeln!(out, "{k}");
                    }
                    _ => {}
                }
            }
        }
        Format::Java => {
            let fits = |c: &ExceptionText<'_>| {
                c.kind
                    .is_some_and(|k| one_line(k) && !k.contains(": ") && !k.is_empty())
                    && c.message.is_none_or(one_line)
            };
            if !causes.iter().all(fits) {
                return None;
            }
            let frames = |out: &mut String, frames: &[StackFrame<'_>]| {
                for f in frames {
                    let _ = write!(
                        out,
                        "\tat {}({}",
                        f.label.as_deref().unwrap_or(""),
                        f.path.as_deref().unwrap_or("")
                    );
                    if let Some(line) = f.line {
                        let _ = write!(out, ":{line}");
                    }
                    out.push_str(")\n");
                }
            };
            let _ = writeln!(
                out,
                "{}: {}",
                top.kind.unwrap_or("Exception"),
                top.message.unwrap_or("").replace(['\n', '\r'], " ")
            );
            frames(&mut out, top.frames);
            for c in causes {
                let _ = write!(out, "Caused by: {}", c.kind.unwrap_or(""));
                if let Some(m) = c.message.filter(|m| !m.is_empty()) {
                    let _ = write!(out, ": {m}");
                }
                out.push('\n');
                frames(&mut out, c.frames);
            }
        }
        Format::Rust => {
            let fits = |c: &ExceptionText<'_>| {
                c.kind.is_none() && c.frames.is_empty() && c.message.is_some_and(one_line)
            };
            if !causes.iter().all(fits) {
                return None;
            }
            for (i, f) in top.frames.iter().enumerate() {
                let _ = writeln!(out, "  {i:2}: {}", f.label.as_deref().unwrap_or("?"));
                if let Some(path) = &f.path {
                    let _ = write!(out, "             at {path}");
                    if let Some(line) = f.line {
                        let _ = write!(out, ":{line}");
                    }
                    out.push('\n');
                }
            }
            if !causes.is_empty() {
                out.push_str("\nCaused by:\n");
                for (i, c) in causes.iter().enumerate() {
                    let _ = writeln!(out, "    {i}: {}", c.message.unwrap_or(""));
                }
            }
        }
        Format::JavaScript | Format::DotNet | Format::Go if !causes.is_empty() => return None,
        Format::Go => {
            out.push_str("goroutine 1 [running]:\n");
            for f in top.frames {
                let _ = writeln!(out, "{}(...)", f.label.as_deref().unwrap_or("?"));
                let _ = write!(out, "\t{}", f.path.as_deref().unwrap_or("?"));
                if let Some(line) = f.line {
                    let _ = write!(out, ":{line}");
                }
                out.push_str(" +0x0\n");
            }
        }
        Format::JavaScript => {
            let _ = writeln!(
                out,
                "{}: {}",
                top.kind.unwrap_or("Error"),
                top.message.unwrap_or("").replace(['\n', '\r'], " ")
            );
            for f in top.frames {
                let mut location = f.path.as_deref().unwrap_or("").to_owned();
                if let Some(line) = f.line {
                    let _ = write!(location, ":{line}");
                }
                match &f.label {
                    Some(label) => {
                        let _ = writeln!(out, "    at {label} ({location})");
                    }
                    None => {
                        let _ = writeln!(out, "    at {location}");
                    }
                }
            }
        }
        Format::DotNet => {
            for f in top.frames {
                let label = f.label.as_deref().unwrap_or("");
                match &f.path {
                    Some(path) => {
                        let _ = write!(out, "   at {label} in {path}");
                        if let Some(line) = f.line {
                            let _ = write!(out, ":line {line}");
                        }
                        out.push('\n');
                    }
                    None => {
                        let _ = writeln!(out, "   at {label}");
                    }
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn lines_are_those_of_str_lines(text in "[a\r\n\u{e9}]{0,12}") {
            prop_assert_eq!(lines(&text).collect::<Vec<_>>(), text.lines().collect::<Vec<_>>());
        }
    }

    #[test]
    fn lines_match_str_lines_at_the_edges() {
        for text in [
            "", "\n", "\r", "\r\n", "a\r", "a\r\r\n", "\n\n", "a\nb", "a\r\nb\r", "é\n",
        ] {
            assert_eq!(
                lines(text).collect::<Vec<_>>(),
                text.lines().collect::<Vec<_>>(),
                "{text:?}"
            );
        }
    }

    fn f<'a>(path: Option<&'a str>, line: Option<u32>, label: Option<&'a str>) -> StackFrame<'a> {
        frame(path, line, label)
    }

    #[test]
    fn locations() {
        assert_eq!(
            path_and_line("./src/main.rs:10:5"),
            ("./src/main.rs", Some(10))
        );
        assert_eq!(path_and_line("C:\\x\\a.rs:7"), ("C:\\x\\a.rs", Some(7)));
        assert_eq!(path_and_line("native"), ("native", None));
        assert_eq!(path_and_line("12:34"), ("12", Some(34)));
        assert_eq!(path_and_line("a:b:7"), ("a:b", Some(7)));
        assert_eq!(path_and_line("a.rs:x"), ("a.rs:x", None));
        for line in [
            "  x y \t",
            "\u{a0} x\u{a0}",
            "\x0b x \x0b",
            " \u{85}",
            "\t ",
            "",
            "é ",
        ] {
            assert_eq!(trim(line), line.trim(), "{line:?}");
        }
        assert_eq!(path_and_line(""), ("", None));
    }

    #[test]
    fn anyhow_output_gives_causes_and_frames() {
        let text = "load failed\n\nCaused by:\n    0: open config\n    1: No such file (os error 2)\n\nStack backtrace:\n   0: app::load\n             at ./src/load.rs:3:9\n   1: 0x55d1 - app::main\n";
        let p = parse_stack(None, text);
        assert_eq!(p.causes.len(), 2);
        assert_eq!(
            p.causes[1].message.as_deref(),
            Some("No such file (os error 2)")
        );
        assert_eq!(
            p.frames.frames,
            vec![
                f(Some("./src/load.rs"), Some(3), Some("app::load")),
                f(None, None, Some("app::main"))
            ]
        );
    }

    #[test]
    fn java_suppressed_frames_are_not_mixed_in() {
        let text = "java.lang.Exception: top\n\tat a.B.c(B.java:1)\n\tSuppressed: x.Y: s\n\t\tat q.R.s(R.java:9)\nCaused by: java.io.IOException\n\tat java.base/d.E.f(Native Method)\n\t... 3 more";
        let p = parse_stack(Some("java"), text);
        assert_eq!(
            p.frames.frames,
            vec![f(Some("B.java"), Some(1), Some("a.B.c"))]
        );
        assert_eq!(p.causes[0].kind, Some("java.io.IOException"));
        assert_eq!(p.causes[0].message, None);
        assert_eq!(
            p.causes[0].frames.frames,
            vec![f(Some("Native Method"), None, Some("d.E.f"))]
        );
    }

    #[test]
    fn frames_beyond_the_limit_are_counted() {
        let text: String = (0..150)
            .map(|i| format!("    at f{i} (a.js:{i}:1)\n"))
            .collect();
        let p = parse_stack(Some("nodejs"), &text);
        assert_eq!(p.frames.frames.len(), MAX_FRAMES);
        assert_eq!(p.frames.truncated, 50);
    }

    #[test]
    fn go_goroutine_dump_gives_the_first_goroutine() {
        let text = "panic: boom\n\ngoroutine 1 [running]:\nmain.(*Server).handle(0xc000012345, {0x4b2c20, 0x1})\n\t/app/server.go:42 +0x1d\nmain.main()\n\t/app/main.go:8 +0x25\ncreated by main.start in goroutine 1\n\t/app/start.go:3 +0x4\n\ngoroutine 5 [chan receive]:\nmain.worker()\n\t/app/w.go:1 +0x1\n";
        let p = parse_stack(None, text);
        assert_eq!(
            p.frames.frames,
            vec![
                f(
                    Some("/app/server.go"),
                    Some(42),
                    Some("main.(*Server).handle")
                ),
                f(Some("/app/main.go"), Some(8), Some("main.main")),
                f(Some("/app/start.go"), Some(3), Some("main.start")),
            ]
        );
        assert_eq!(
            parse_stack(Some("go"), "no goroutine here"),
            ParsedStack::default()
        );
    }

    #[test]
    fn dotnet_and_garbage() {
        let p = parse_stack(
            Some("dotnet"),
            "System.Exception: x\n   at App.Run() in /src/App.cs:line 42\n   at App.Main() + 0x1c",
        );
        assert_eq!(
            p.frames.frames,
            vec![
                f(Some("/src/App.cs"), Some(42), Some("App.Run()")),
                f(None, None, Some("App.Main()"))
            ]
        );
        for junk in [
            "",
            "\n\n",
            "at",
            "File \"",
            "0: ",
            "Caused by: ",
            "goroutine 1 [running]:\n\t",
            "goroutine 1 [running]:\n(",
            "\tat x(",
            "  File \"a\", line x",
        ] {
            for lang in [
                None,
                Some("rust"),
                Some("java"),
                Some("python"),
                Some("nodejs"),
                Some("dotnet"),
                Some("go"),
            ] {
                let _ = parse_stack(lang, junk);
            }
        }
    }
    #[test]
    fn written_stacks_parse_back_to_the_same_frames_and_causes() {
        let frames = [
            f(Some("src/app.rs"), Some(12), Some("app::handler")),
            f(Some("/usr/lib/x.py"), Some(3), Some("main")),
            f(Some("lib.js"), None, Some("run")),
        ];
        let cause_frames = [f(Some("Deep.java"), Some(7), Some("com.x.Deep.go"))];
        let top = ExceptionText {
            kind: Some("ValueError"),
            message: Some("bad value"),
            frames: &frames,
        };
        let typed = [ExceptionText {
            kind: Some("KeyError"),
            message: Some("'k'"),
            frames: &cause_frames,
        }];
        let untyped = [ExceptionText {
            kind: None,
            message: Some("connection refused"),
            frames: &[],
        }];
        for (language, causes) in [
            (None, &typed[..]),
            (Some("python"), &typed[..]),
            (Some("java"), &typed[..]),
            (Some("rust"), &untyped[..]),
            (Some("nodejs"), &[][..]),
            (Some("dotnet"), &[][..]),
            (Some("go"), &[][..]),
        ] {
            let text = write_stack(language, top, causes).unwrap();
            let parsed = parse_stack(language, &text);
            assert_eq!(parsed.frames.frames, frames, "{language:?}\n{text}");
            assert_eq!(parsed.causes.len(), causes.len(), "{language:?}\n{text}");
            for (got, want) in parsed.causes.iter().zip(causes) {
                assert_eq!(got.kind, want.kind, "{language:?}\n{text}");
                assert_eq!(got.message.as_deref(), want.message, "{language:?}\n{text}");
                assert_eq!(got.frames.frames, want.frames, "{language:?}\n{text}");
            }
        }
        // Causes a format cannot carry are refused, so they get events of their own.
        assert!(write_stack(Some("rust"), top, &typed).is_none());
        assert!(write_stack(Some("nodejs"), top, &typed).is_none());
        assert!(write_stack(Some("python"), top, &untyped).is_none());
        // With no language, message-only causes are written as Rust's `Caused by:` list,
        // which the parser recognises.
        let text = write_stack(None, top, &untyped).unwrap();
        let parsed = parse_stack(None, &text);
        assert_eq!(parsed.frames.frames, frames, "{text}");
        assert_eq!(
            parsed.causes[0].message.as_deref(),
            Some("connection refused")
        );
    }
}
