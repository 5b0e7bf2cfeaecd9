//! Loading scenario files from disk and rendering their diagnostics with file, line and column.

use std::fmt::Write as _;
use std::path::Path;

use prsm_sim::scenario::FILE_SIZE_MAX_BYTES;
use prsm_sim::{Diagnostic, Scenario};

use crate::exit::{Exit, Failure};

/// Reads and validates a scenario; on failure the message lists every diagnostic with a snippet.
/// Warnings (legal settings that probably do not do what was meant) go to stderr.
pub fn load(path: &Path) -> Result<Scenario, Failure> {
    let text = read_text(path)?;
    let mut scenario = prsm_sim::load_str(&text).map_err(|d| {
        Failure::new(
            Exit::BadInput,
            render(&path.display().to_string(), &text, &d),
        )
    })?;
    print_warnings(path, &text, &scenario.warnings);
    attach_traces(path, &text, &mut scenario)?;
    Ok(scenario)
}

/// The largest trace file read.
const TRACE_SIZE_MAX_BYTES: usize = 64 << 20;

/// Reads every trace file a task stream names (relative to the scenario file) and checks its rows:
/// the class must exist, the origin must be a selector. Errors name the trace's file, row and
/// column.
fn attach_traces(path: &Path, text: &str, scenario: &mut Scenario) -> Result<(), Failure> {
    use prsm_sim::model::arrivals::parse_trace_with;
    use prsm_sim::scenario::TaskSource;
    let classes = scenario.protocol.class_names();
    let class_refs: Vec<&str> = classes.iter().map(String::as_str).collect();
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    for stream in &mut scenario.workload.tasks {
        let TaskSource::Trace {
            path: file,
            line,
            column,
            rows,
        } = &mut stream.source
        else {
            continue;
        };
        let trace_path = dir.join(&*file);
        let shown = trace_path.display().to_string();
        let cannot = |why: String| {
            Failure::new(
                Exit::BadInput,
                render(
                    &path.display().to_string(),
                    text,
                    &[Diagnostic {
                        line: *line,
                        column: *column,
                        message: format!("trace `{file}`: {why}"),
                    }],
                ),
            )
        };
        let bytes = read_limited(&trace_path, TRACE_SIZE_MAX_BYTES)
            .map_err(|e| cannot(format!("cannot read {shown}: {e}")))?;
        let trace_text = String::from_utf8(bytes).map_err(|e| {
            cannot(format!(
                "{shown} is not UTF-8 (byte {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        let selector = |origin: &str| prsm_sim::scenario::parse_clause(origin).map(drop);
        let parsed = parse_trace_with(&trace_text, &class_refs, &selector).map_err(|e| {
            Failure::new(
                Exit::BadInput,
                format!(
                    "error: {shown}:{}:{}: {}\n  (trace of the task stream at {}:{}:{})",
                    e.row,
                    e.column,
                    e.message,
                    path.display(),
                    line,
                    column
                ),
            )
        })?;
        *rows = Some(parsed.into());
    }
    Ok(())
}

fn read_limited(path: &Path, max: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(max as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > max {
        return Err(std::io::Error::other(format!(
            "the file is over {max} bytes"
        )));
    }
    Ok(bytes)
}

fn print_warnings(path: &Path, text: &str, warnings: &[Diagnostic]) {
    if !warnings.is_empty() {
        warn!(
            "{}",
            render_as("warning", &path.display().to_string(), text, warnings)
        );
    }
}

/// Reads a scenario with a `sweep:` block and expands every point.
pub fn load_sweep(path: &Path) -> Result<prsm_sim::sweep::SweepPlan, Failure> {
    let text = read_text(path)?;
    let plan = prsm_sim::sweep::plan(&text).map_err(|d| {
        Failure::new(
            Exit::BadInput,
            render(&path.display().to_string(), &text, &d),
        )
    })?;
    print_warnings(path, &text, &plan.base.warnings);
    let mut plan = plan;
    attach_traces(path, &text, &mut plan.base)?;
    for point in &mut plan.points {
        attach_traces(path, &text, point)?;
    }
    Ok(plan)
}

/// Reads a scenario file's text, refusing files too large or not UTF-8.
fn read_text(path: &Path) -> Result<String, Failure> {
    use std::io::Read as _;
    let shown = path.display();
    let cannot_read = |e: std::io::Error| {
        Failure::new(Exit::BadInput, format!("error: cannot read {shown}: {e}"))
    };
    // Read at most one byte past the limit: a device or pipe (`/dev/zero`) reports no size, so
    // the limit is enforced on what is read, not on what the file claims.
    let file = std::fs::File::open(path).map_err(cannot_read)?;
    let mut bytes = Vec::new();
    file.take(FILE_SIZE_MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    if bytes.len() > FILE_SIZE_MAX_BYTES {
        return Err(Failure::new(
            Exit::BadInput,
            format!(
                "error: {shown}: the file is over {FILE_SIZE_MAX_BYTES} bytes; scenario files are limited to that"
            ),
        ));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        Failure::new(
            Exit::BadInput,
            format!(
                "error: {shown}: not UTF-8 text (byte {}); save the file as UTF-8",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    Ok(text)
}

/// The most characters of a source line shown under an error; longer lines are cut around the
/// column, with `…` where text was left out.
const SNIPPET_CHARS: usize = 120;
/// Words (a quoted value, a key) longer than this are shortened in messages.
const WORD_CHARS: usize = 80;

/// `error: FILE:LINE:COLUMN: message`, then the line with a caret under the column. Long lines
/// and long words in messages are cut so one bad line cannot flood the terminal.
pub fn render(file: &str, text: &str, diagnostics: &[Diagnostic]) -> String {
    render_as("error", file, text, diagnostics)
}

/// As [`render`], with another label (`warning`).
pub fn render_as(label: &str, file: &str, text: &str, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for (k, d) in diagnostics.iter().enumerate() {
        if k > 0 {
            out.push('\n');
        }
        let message = shorten_words(&d.message);
        if d.line == 0 {
            let _ = write!(out, "{label}: {file}: {message}");
            continue;
        }
        let _ = write!(out, "{label}: {file}:{}:{}: {message}", d.line, d.column);
        let line = usize::try_from(d.line - 1).unwrap_or(usize::MAX);
        if let Some(source) = text.lines().nth(line) {
            let gutter = d.line.to_string().len();
            let column = usize::try_from(d.column.saturating_sub(1)).unwrap_or(usize::MAX);
            let (shown, caret_at) = snippet(source, column);
            let caret_pad: String = shown
                .chars()
                .take(caret_at)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let _ = write!(
                out,
                "\n{:gutter$} |\n{} | {shown}\n{:gutter$} | {caret_pad}^",
                "", d.line, ""
            );
        }
    }
    out
}

/// At most [`SNIPPET_CHARS`] characters of `source` around 0-based character `column`, and the
/// caret's position in what is shown.
fn snippet(source: &str, column: usize) -> (String, usize) {
    let chars: Vec<char> = source.chars().collect();
    if chars.len() <= SNIPPET_CHARS {
        return (source.to_owned(), column);
    }
    let column = column.min(chars.len());
    let start = column
        .saturating_sub(SNIPPET_CHARS / 2)
        .min(chars.len() - SNIPPET_CHARS);
    let end = start + SNIPPET_CHARS;
    let mut shown = String::new();
    let mut caret_at = column - start;
    if start > 0 {
        shown.push('…');
        caret_at += 1;
    }
    shown.extend(&chars[start..end]);
    if end < chars.len() {
        shown.push('…');
    }
    (shown, caret_at)
}

/// Cuts every whitespace-separated word longer than [`WORD_CHARS`] to its start and end with
/// `…` between (a 250 KB key or value would otherwise be echoed whole).
fn shorten_words(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(4096));
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let n = word.chars().count();
        if n > WORD_CHARS {
            out.extend(word.chars().take(WORD_CHARS - 20));
            out.push('…');
            out.extend(word.chars().skip(n - 10));
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in message.chars() {
        if c.is_whitespace() {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: u64, column: u64, message: &str) -> Diagnostic {
        Diagnostic {
            line,
            column,
            message: message.to_owned(),
        }
    }

    #[test]
    fn a_long_line_is_cut_around_the_column() {
        let long = format!(
            "name: {}\nseed: {}x\n",
            "a".repeat(250_000),
            "9".repeat(250_000)
        );
        let out = render(
            "f.yaml",
            &long,
            &[at(2, 200_007, "expected a whole number")],
        );
        assert!(out.len() < 400, "{} bytes: {}", out.len(), &out[..400]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "error: f.yaml:2:200007: expected a whole number");
        let shown = lines[2].trim_start_matches("2 | ");
        assert!(shown.starts_with('…') && shown.ends_with('…'), "{shown}");
        // The caret sits under the column's character.
        let caret = lines[3].trim_start_matches("  | ").chars().count() - 1;
        assert_eq!(shown.chars().nth(caret), Some('9'));
        // A line's end is shown with no trailing ellipsis.
        let out = render("f.yaml", &long, &[at(2, 250_007, "here")]);
        let shown = out.lines().nth(2).unwrap().trim_start_matches("2 | ");
        assert!(shown.ends_with('x'), "{shown}");
        let caret = out
            .lines()
            .nth(3)
            .unwrap()
            .trim_start_matches("  | ")
            .chars()
            .count()
            - 1;
        assert_eq!(shown.chars().nth(caret), Some('x'));
        // Short lines are shown whole.
        let out = render("f.yaml", "seed: -1\n", &[at(1, 7, "bad")]);
        assert!(out.ends_with("1 | seed: -1\n  |       ^"), "{out}");
    }

    #[test]
    fn long_words_in_messages_are_shortened() {
        let key = "k".repeat(250_000);
        let out = render(
            "f.yaml",
            "",
            &[at(
                0,
                0,
                &format!("unknown field `{key}`, expected one of name, seed"),
            )],
        );
        assert!(out.len() < 200, "{}", out.len());
        assert!(out.contains("kkk…kkk"), "{out}");
        assert!(out.ends_with("`, expected one of name, seed"), "{out}");
    }
}
