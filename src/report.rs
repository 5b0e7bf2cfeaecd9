//! report.md for a run and for a sweep: what a person reads first, with the plots embedded.
//! Like every output file it holds nothing that depends on the wall clock or the thread count.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use prsm_sim::{Metric, RunOutput, Scenario, Verdict};

use crate::export::{protocol_name, trace_hex};
use crate::stats::{summarize, summarize_metric};
use crate::sweep::{Manifest, RunRow};
use crate::terminal::format_value;

/// How many run rows a sweep report lists before pointing at runs.csv.
const REPORT_RUN_ROWS_MAX: usize = 200;

fn figures_section(out: &mut String, figures: &[PathBuf]) {
    if figures.is_empty() {
        return;
    }
    out.push_str("\n## Plots\n\n");
    for f in figures {
        let name = f.display();
        let _ = writeln!(out, "![{name}]({name})\n");
    }
}

pub fn run_report(
    file: &Path,
    scenario: &Scenario,
    output: &RunOutput,
    verdicts: &[Verdict],
    figures: &[PathBuf],
    live: bool,
) -> String {
    let mut out = String::new();
    let file_name = file
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let _ = writeln!(out, "# Run: {}\n", scenario.name);
    if !scenario.description.is_empty() {
        let _ = writeln!(out, "{}\n", scenario.description);
    }
    let _ = writeln!(out, "| | |\n| --- | --- |");
    let _ = writeln!(out, "| scenario file | `{file_name}` |");
    let _ = writeln!(out, "| protocol | {} |", protocol_name(scenario));
    let _ = writeln!(out, "| nodes | {} |", scenario.node_count());
    let _ = writeln!(out, "| virtual time | {} |", scenario.duration);
    let _ = writeln!(out, "| seed | {} |", output.seed);
    if live {
        let _ = writeln!(
            out,
            "| mode | **live**: one `prsm node` process per node on loopback, on the wall clock |"
        );
        let _ = writeln!(out, "| events reported | {} |", output.events);
        let _ = writeln!(
            out,
            "\nThis run was **live**: real processes exchanged signed frames over TCP on loopback, \
             crashes were `kill -9` and partitions the nodes' drop rules. It has no trace hash and \
             is not reproducible event for event; the seed fixed the workload, the fault draws and \
             each node's random stream. Run it again with `prsm cluster {file_name} --nodes {} --seed {}`, \
             or simulate it with `prsm run {file_name} --seed {}`.",
            scenario.node_count(),
            output.seed,
            output.seed
        );
    } else {
        let _ = writeln!(out, "| trace hash | `{}` |", trace_hex(output.trace_hash));
        let _ = writeln!(out, "| events | {} |", output.events);
        let _ = writeln!(
            out,
            "\nReproduce with `prsm run {file_name} --seed {}`.",
            output.seed
        );
    }

    let warnings = crate::export::warnings(file, scenario, output);
    if !warnings.is_empty() {
        out.push_str("\n## Warnings\n\n");
        for w in &warnings {
            let _ = writeln!(out, "- {w}");
        }
    }

    if let Some((v, event)) = &output.violation {
        let _ = writeln!(
            out,
            "\n## {} violation\n\nFound at {} (event {event}); the run stopped there.\n\n> {}",
            v.kind.name(),
            v.at,
            v.message
        );
    }

    out.push_str("\n## Expectations\n\n");
    if verdicts.is_empty() {
        out.push_str("None stated.\n");
    } else {
        let failed = verdicts.iter().filter(|v| !v.pass).count();
        let _ = writeln!(
            out,
            "{} of {} hold.\n",
            verdicts.len() - failed,
            verdicts.len()
        );
        out.push_str("| expectation | measured | verdict |\n| --- | ---: | --- |\n");
        for v in verdicts {
            let measured = v.actual.map_or("no data".to_owned(), format_value);
            let _ = writeln!(
                out,
                "| `{}` | {measured} | {} |",
                v.expectation,
                if v.pass { "pass" } else { "**FAIL**" }
            );
        }
    }
    figures_section(&mut out, figures);

    if !output.faults.is_empty() {
        out.push_str("\n## Faults\n\n| time (s) | fault | nodes | network sides after |\n| ---: | --- | ---: | ---: |\n");
        for f in &output.faults {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                format_value(f.time_s),
                f.kind,
                f.nodes,
                f.sides
            );
        }
    }

    out.push_str("\n## Metrics\n\n| metric | value |\n| --- | ---: |\n");
    for (name, value) in output.metrics.iter() {
        let shown = match value {
            Metric::Count(c) => c.to_string(),
            Metric::Real(r) => format_value(r),
        };
        let _ = writeln!(out, "| `{name}` | {shown} |");
    }
    out.push_str("\nFiles: `summary.json`, `timeseries.csv`, `faults.csv`, `latency_cdf.csv`");
    for (name, _) in &output.tables {
        let _ = write!(out, ", `{name}.csv`");
    }
    out.push_str(".\n");
    out
}

/// Each expectation at each point: the mean measured value and how many runs met it, judged
/// from the metric values in runs.csv.
fn expectations_section(out: &mut String, manifest: &Manifest, rows: &[RunRow]) {
    let parsed: Vec<_> = manifest
        .expect
        .iter()
        .filter_map(|e| prsm_sim::scenario::parse_expectation(e).ok())
        .collect();
    if parsed.is_empty() {
        return;
    }
    out.push_str("\n## Expectations\n\n| point |");
    let mut rule = String::from("| ---: |");
    for axis in &manifest.axes {
        let _ = write!(out, " `{}` |", axis.path);
        rule.push_str(" --- |");
    }
    let _ = writeln!(
        out,
        " expectation | mean measured | runs meeting it |\n{rule} --- | ---: | ---: |"
    );
    for point in 0..manifest.points {
        let values = manifest.point_values(point);
        let in_point: Vec<&RunRow> = rows.iter().filter(|r| r.point == point).collect();
        for e in &parsed {
            let Some(m) = manifest.metrics.iter().position(|x| *x == e.metric) else {
                continue;
            };
            let measured: Vec<f64> = in_point.iter().filter_map(|r| r.metrics[m]).collect();
            let met = measured.iter().filter(|&&v| e.op.holds(v, e.value)).count();
            let mean = summarize(&measured).map_or("no data".to_owned(), |s| cell(s.mean));
            let mut line = format!("| {point} |");
            for v in &values {
                let _ = write!(line, " {v} |");
            }
            let verdict = if met == in_point.len() {
                format!("{met}/{}", in_point.len())
            } else {
                format!("**{met}/{}**", in_point.len())
            };
            let _ = writeln!(out, "{line} `{}` | {mean} | {verdict} |", e.text);
        }
    }
}

fn cell(v: f64) -> String {
    if v.is_finite() {
        format_value((v * 1e6).round() / 1e6)
    } else {
        "n/a".to_owned()
    }
}

pub fn sweep_report(manifest: &Manifest, rows: &[RunRow], figures: &[PathBuf]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Sweep: {}\n", manifest.scenario);
    if !manifest.description.is_empty() {
        let _ = writeln!(out, "{}\n", manifest.description);
    }
    let _ = writeln!(out, "| | |\n| --- | --- |");
    let _ = writeln!(out, "| scenario file | `{}` |", manifest.file);
    for axis in &manifest.axes {
        let _ = writeln!(out, "| axis `{}` | {} |", axis.path, axis.values.join(", "));
    }
    let seeds: Vec<String> = manifest.seeds.iter().map(u64::to_string).collect();
    let _ = writeln!(out, "| seeds | {} |", seeds.join(", "));
    let _ = writeln!(
        out,
        "| runs | {} ({} points x {} seeds) |",
        manifest.runs,
        manifest.points,
        manifest.seeds.len()
    );
    let stopped = rows.iter().filter(|r| r.status != "ok").count();
    let passed = rows.iter().filter(|r| r.passed == Some(true)).count();
    let _ = writeln!(out, "| runs meeting every expectation | {passed} |");
    let _ = writeln!(out, "| runs stopped by a limit | {stopped} |");

    out.push_str("\n## Results per point\n\nMean over seeds with a 95 % confidence interval (Student's t, kept within the metric's range; Wilson's when every run of a share gave 0 or 1). `runs`: runs that measured the metric; `runs passing`: runs of the point whose every expectation held, of all its runs.\n\n");
    let mut head = String::from("| point |");
    let mut rule = String::from("| ---: |");
    for axis in &manifest.axes {
        let _ = write!(head, " `{}` |", axis.path);
        rule.push_str(" --- |");
    }
    head.push_str(" metric | mean | 95 % CI | sd | min | max | runs | runs passing |");
    rule.push_str(" --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |");
    let _ = writeln!(out, "{head}\n{rule}");
    for point in 0..manifest.points {
        let values = manifest.point_values(point);
        let in_point: Vec<&RunRow> = rows.iter().filter(|r| r.point == point).collect();
        let met = in_point.iter().filter(|r| r.passed == Some(true)).count();
        for metric in &manifest.plot {
            let Some(m) = manifest.metrics.iter().position(|x| x == metric) else {
                continue;
            };
            let samples: Vec<f64> = in_point.iter().filter_map(|r| r.metrics[m]).collect();
            let Some(s) = summarize_metric(metric, &samples) else {
                continue;
            };
            let mut line = format!("| {point} |");
            for v in &values {
                let _ = write!(line, " {v} |");
            }
            let _ = write!(
                line,
                " `{metric}` | {} | {} to {} | {} | {} | {} | {} | {met}/{} |",
                cell(s.mean),
                cell(s.ci_low),
                cell(s.ci_high),
                cell(s.sd),
                cell(s.min),
                cell(s.max),
                s.n,
                in_point.len()
            );
            let _ = writeln!(out, "{line}");
        }
    }
    expectations_section(&mut out, manifest, rows);
    figures_section(&mut out, figures);

    out.push_str("\n## Runs\n\n| run | point | seed | trace hash | status | every expectation held |\n| ---: | ---: | ---: | --- | --- | --- |\n");
    for r in rows.iter().take(REPORT_RUN_ROWS_MAX) {
        let met = match r.passed {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "n/a",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | `{}` | {} | {met} |",
            r.run, r.point, r.seed, r.trace_hash, r.status
        );
    }
    if rows.len() > REPORT_RUN_ROWS_MAX {
        let _ = writeln!(
            out,
            "\n{} more runs in `runs.csv`.",
            rows.len() - REPORT_RUN_ROWS_MAX
        );
    }
    out.push_str("\nFiles: `sweep.json`, `runs.csv` (one row per run), `points.csv` (one row per point and metric).\n");
    out
}
