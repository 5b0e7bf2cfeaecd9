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
    let scenario = prsm_sim::load_str(&text).map_err(|d| {
        Failure::new(
            Exit::BadInput,
            render(&path.display().to_string(), &text, &d),
        )
    })?;
    print_warnings(path, &text, &scenario.warnings);
    Ok(scenario)
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

/// `error: FILE:LINE:COLUMN: message`, then the line with a caret under the column.
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
        if d.line == 0 {
            let _ = write!(out, "{label}: {file}: {}", d.message);
            continue;
        }
        let _ = write!(
            out,
            "{label}: {file}:{}:{}: {}",
            d.line, d.column, d.message
        );
        if let Some(source) = text.lines().nth((d.line - 1) as usize) {
            let gutter = d.line.to_string().len();
            let caret_pad: String = source
                .chars()
                .take(d.column.saturating_sub(1) as usize)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let _ = write!(
                out,
                "\n{:gutter$} |\n{} | {source}\n{:gutter$} | {caret_pad}^",
                "", d.line, ""
            );
        }
    }
    out
}
