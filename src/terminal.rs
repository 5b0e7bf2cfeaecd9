//! What a person reads in the terminal: the metrics table, verdicts, and the check summary.

use std::fmt;
use std::io::Write as _;
use std::path::PathBuf;

use prsm_sim::{Metric, Metrics, Verdict};

use crate::Finished;
use crate::export::trace_hex;

/// Writes one line to stdout (`say!`) or stderr (`warn!`). A reader that went away (`prsm run |
/// head`) ends the process quietly with the "could not write output" code instead of a panic, which
/// is what `println!` does.
pub fn write_line(to_stderr: bool, args: fmt::Arguments<'_>) {
    let result = if to_stderr {
        writeln!(std::io::stderr().lock(), "{args}")
    } else {
        writeln!(std::io::stdout().lock(), "{args}")
    };
    if result.is_err() {
        std::process::exit(crate::exit::Exit::OutputFailed as i32);
    }
}

macro_rules! say {
    ($($arg:tt)*) => { $crate::terminal::write_line(false, format_args!($($arg)*)) };
}

macro_rules! warn {
    ($($arg:tt)*) => { $crate::terminal::write_line(true, format_args!($($arg)*)) };
}

pub fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        let s = format!("{value:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

pub fn print_metrics(metrics: &Metrics) {
    let width = metrics.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (name, value) in metrics.iter() {
        let shown = match value {
            Metric::Count(c) => c.to_string(),
            Metric::Real(r) => format_value(r),
        };
        say!("  {name:width$}  {shown:>14}");
    }
}

pub fn print_verdicts(verdicts: &[Verdict]) {
    if verdicts.is_empty() {
        say!("no expectations");
        return;
    }
    let failed = verdicts.iter().filter(|v| !v.pass).count();
    say!(
        "expectations: {} passed, {failed} failed",
        verdicts.len() - failed
    );
    for v in verdicts {
        let actual = v.actual.map_or("no data".to_owned(), format_value);
        say!(
            "  {} {}  (measured {actual})",
            if v.pass { "PASS" } else { "FAIL" },
            v.expectation
        );
    }
}

pub fn print_check_table(rows: &[(PathBuf, u64, Finished)]) {
    let mut lines = vec![(
        "verdict".to_owned(),
        "file".to_owned(),
        "expectation".to_owned(),
        "measured".to_owned(),
    )];
    for (file, _, finished) in rows {
        for v in &finished.verdicts {
            lines.push((
                if v.pass { "PASS" } else { "FAIL" }.to_owned(),
                file.display().to_string(),
                v.expectation.clone(),
                v.actual.map_or("no data".to_owned(), format_value),
            ));
        }
    }
    let w1 = lines.iter().map(|l| l.1.len()).max().unwrap_or(0);
    let w2 = lines.iter().map(|l| l.2.len()).max().unwrap_or(0);
    for (verdict, file, expectation, measured) in &lines {
        say!("{verdict:7}  {file:w1$}  {expectation:w2$}  {measured}");
    }
    let total: usize = rows.iter().map(|(_, _, f)| f.verdicts.len()).sum();
    let failed: usize = rows
        .iter()
        .map(|(_, _, f)| f.verdicts.iter().filter(|v| !v.pass).count())
        .sum();
    say!(
        "{} scenarios, {total} expectations, {failed} failed",
        rows.len()
    );
    for (file, seed, finished) in rows {
        if finished.verdicts.iter().any(|v| !v.pass) {
            say!(
                "reproduce: prsm run {} --seed {seed}   (trace {})",
                file.display(),
                trace_hex(finished.output.trace_hash)
            );
        }
    }
}
