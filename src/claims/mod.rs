//! `prsm claims`: runs the scenario file behind every claim about the network (or the CI-sized
//! subset, `--quick`), judges each claim on the 95 % confidence interval of its metric over the
//! file's seeds, writes claims.md, claims.csv, claims.json and the figures, and, against a
//! committed baseline, fails when a claim that held no longer holds.
//!
//! Every claim file is a sweep without axes: its runs are its seeds. Runs of every file needed go
//! to one rayon pool and come back in order, and each claim's figure is computed exactly as
//! `prsm sweep FILE` computes it in points.csv (`stats::summarize_metric` over the runs in seed
//! order), so the reproduce command prints the same number, bit for bit.

pub mod registry;
pub mod verdict;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use prsm_sim::sweep::SweepPlan;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::exit::{Exit, Failure};
use crate::progress::Progress;
use crate::stats::summarize_metric;
use crate::sweep::RunRow;
use registry::{CLAIMS, Claim, Kind, Measure, PLOTS};
use verdict::{Verdict, number, short};

/// The signature cost the consensus files charge (50 us), used in the arithmetic of the claim that
/// cannot hold.
const SIGNATURE_US: f64 = 50.0;

pub struct ClaimsArgs {
    pub quick: bool,
    pub only: Vec<String>,
    pub jobs: Option<usize>,
    pub out: PathBuf,
    /// The folder holding the claim files.
    pub dir: PathBuf,
    /// The baseline; `None`: `<out>/claims-baseline.json` if it exists.
    pub baseline: Option<PathBuf>,
    pub quiet: bool,
    pub plots: bool,
}

/// One claim's line in the report (claims.json, and the same fields in claims.csv).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimResult {
    pub claim: String,
    pub row: String,
    pub stated: String,
    pub metric: Option<String>,
    /// `<=` or `>=`, and the stated figure in the metric's unit.
    pub comparison: Option<String>,
    pub figure: Option<f64>,
    pub unit: Option<String>,
    /// Runs (one per seed) that measured the metric, and their seeds.
    pub seeds: Option<usize>,
    pub seed_list: Option<String>,
    pub mean: Option<f64>,
    pub ci95_low: Option<f64>,
    pub ci95_high: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub verdict: Verdict,
    pub note: String,
    pub assumptions: String,
    pub reproduce: Option<String>,
}

/// claims.json.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClaimsReport {
    pub prsm_version: String,
    /// `full`, `quick`, and the `--only` names if any.
    pub subset: String,
    pub rows: Vec<RowInfo>,
    pub claims: Vec<ClaimResult>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RowInfo {
    pub row: String,
    pub as_stated: String,
}

/// What the gate reads from a baseline: each claim's verdict (other fields are ignored).
#[derive(Debug, Deserialize)]
struct Baseline {
    claims: Vec<BaselineClaim>,
}

#[derive(Debug, Deserialize)]
struct BaselineClaim {
    claim: String,
    verdict: Verdict,
}

fn bad(message: String) -> Failure {
    Failure::new(Exit::BadInput, format!("error: {message}"))
}

/// The claims `--quick` and `--only` select, in report order. Claims that run nothing (not
/// measured, cannot hold) are always in, so every row appears.
pub fn select(quick: bool, only: &[String]) -> Result<Vec<&'static Claim>, Failure> {
    let matches = |claim: &Claim, name: &str| {
        claim.name == name
            || claim.row.id() == name
            || claim
                .name
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('.'))
    };
    for name in only {
        if !CLAIMS.iter().any(|c| matches(c, name)) {
            let names: Vec<&str> = CLAIMS.iter().map(|c| c.name).collect();
            return Err(bad(format!(
                "--only {name}: no such claim or row; rows: {}; claims: {}",
                registry::Row::ALL.map(registry::Row::id).join(", "),
                names.join(", ")
            )));
        }
    }
    Ok(CLAIMS
        .iter()
        .filter(|c| only.is_empty() || only.iter().any(|n| matches(c, n)))
        .filter(|c| match c.kind {
            Kind::Measured(m) => !quick || m.quick,
            _ => only.is_empty() || only.iter().any(|n| matches(c, n)),
        })
        .collect())
}

/// The header comment of a claim file, as one paragraph: its stated assumptions.
pub fn header_text(text: &str) -> String {
    let mut words = Vec::new();
    for line in text.lines() {
        let Some(comment) = line.strip_prefix('#') else {
            break;
        };
        words.extend(comment.split_whitespace());
    }
    words.join(" ")
}

/// Seeds as text: `1-10` when consecutive, else a comma list.
fn seed_text(seeds: &[u64]) -> String {
    match (seeds.first(), seeds.last()) {
        (Some(&a), Some(&b)) if seeds.len() > 1 && seeds.windows(2).all(|w| w[1] == w[0] + 1) => {
            format!("{a}-{b}")
        }
        _ => seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// A loaded claim file.
struct ClaimFile {
    name: &'static str,
    path: PathBuf,
    plan: SweepPlan,
    assumptions: String,
    /// The metrics the file's claims read.
    columns: Vec<String>,
}

fn load_files(dir: &Path, selected: &[&'static Claim]) -> Result<Vec<ClaimFile>, Failure> {
    let mut files: Vec<ClaimFile> = Vec::new();
    for claim in selected {
        let Kind::Measured(m) = claim.kind else {
            continue;
        };
        if let Some(f) = files.iter_mut().find(|f| f.name == m.file) {
            if !f.columns.iter().any(|c| c == m.metric) {
                f.columns.push(m.metric.to_owned());
            }
            continue;
        }
        let path = dir.join(m.file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| bad(format!("cannot read claim file {}: {e}", path.display())))?;
        let plan = crate::scenario_file::load_sweep(&path)?;
        if !plan.sweep.axes.is_empty() {
            return Err(bad(format!(
                "{}: a claim file varies only the seed; remove the sweep's axes",
                path.display()
            )));
        }
        files.push(ClaimFile {
            name: m.file,
            path,
            plan,
            assumptions: header_text(&text),
            columns: vec![m.metric.to_owned()],
        });
    }
    Ok(files)
}

/// Runs every run of every file, in parallel; rows come back per file in run order.
fn run_files(
    files: &[ClaimFile],
    jobs: Option<usize>,
    quiet: bool,
) -> Result<Vec<Vec<RunRow>>, Failure> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.unwrap_or(0))
        .build()
        .map_err(|e| bad(format!("cannot start {} threads: {e}", jobs.unwrap_or(0))))?;
    let work: Vec<(usize, usize)> = files
        .iter()
        .enumerate()
        .flat_map(|(f, file)| (0..file.plan.sweep.runs()).map(move |r| (f, r)))
        .collect();
    let run_ms = |(f, r): (usize, usize)| {
        let plan = &files[f].plan;
        plan.points[plan.run(r).0].duration.as_nanos() / 1_000_000
    };
    let total_ms: u64 = work.iter().map(|&w| run_ms(w)).sum();
    let progress = Progress::new(
        total_ms,
        "{bar:40} {percent:>3} % of virtual time  {msg}  eta {eta}",
        !quiet,
    );
    let done_ms = AtomicU64::new(0);
    let finished = AtomicUsize::new(0);
    let report = |ms: u64| {
        let done = done_ms.fetch_add(ms, Ordering::Relaxed) + ms;
        progress.set_position(done);
        progress.line(|wall_s| {
            format!(
                "progress: {} of {} runs finished, {:.0} % of virtual time, {wall_s:.0} s wall",
                finished.load(Ordering::Relaxed),
                work.len(),
                100.0 * done as f64 / total_ms.max(1) as f64
            )
        });
    };
    progress.set_message(format!("0/{} runs", work.len()));
    let rows: Vec<(usize, RunRow)> = pool.install(|| {
        work.par_iter()
            .map(|&(f, r)| {
                let mut reported = 0;
                let row = crate::sweep::execute(&files[f].plan, &files[f].columns, r, &mut |now| {
                    let ms = now.as_nanos() / 1_000_000;
                    report(ms.saturating_sub(reported));
                    reported = reported.max(ms);
                });
                let n = finished.fetch_add(1, Ordering::Relaxed) + 1;
                progress.set_message(format!("{n}/{} runs", work.len()));
                report(run_ms((f, r)).saturating_sub(reported));
                (f, row)
            })
            .collect()
    });
    progress.finish();
    let mut per_file: Vec<Vec<RunRow>> = files.iter().map(|_| Vec::new()).collect();
    for (f, row) in rows {
        per_file[f].push(row);
    }
    Ok(per_file)
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// The result of a measured claim from its file's runs.
fn judge_measured(claim: &Claim, m: &Measure, file: &ClaimFile, rows: &[RunRow]) -> ClaimResult {
    let column = file.columns.iter().position(|c| c == m.metric).unwrap_or(0);
    let stopped: Vec<&RunRow> = rows.iter().filter(|r| r.status != "ok").collect();
    let samples: Vec<f64> = rows.iter().filter_map(|r| r.metrics[column]).collect();
    let summary = summarize_metric(m.metric, &samples);
    let range = prsm_sim::metric_range(m.metric);
    let (mut verdict, mut note) = verdict::judge(
        m.cmp,
        m.figure,
        summary.as_ref(),
        (range.low(), range.high()),
        m.qualified.is_some(),
    );
    if let Some(first) = stopped.first() {
        verdict = Verdict::NotMeasured;
        note = format!(
            "{} of {} runs did not finish (seed {}: {}); reproduce with prsm run {} --seed {}",
            stopped.len(),
            rows.len(),
            first.seed,
            first.status,
            file.path.display(),
            first.seed
        );
    } else if let Some(assumption) = m.qualified {
        let prefix = format!("assumes {assumption}");
        note = if note.is_empty() {
            prefix
        } else {
            format!("{prefix}; {note}")
        };
    }
    let seeds: Vec<u64> = rows
        .iter()
        .filter(|r| r.metrics[column].is_some())
        .map(|r| r.seed)
        .collect();
    ClaimResult {
        claim: claim.name.to_owned(),
        row: claim.row.id().to_owned(),
        stated: claim.stated.to_owned(),
        metric: Some(m.metric.to_owned()),
        comparison: Some(format!("{} {}", m.cmp.symbol(), number(m.figure))),
        figure: Some(m.figure),
        unit: Some(m.unit.to_owned()),
        seeds: Some(seeds.len()),
        seed_list: Some(seed_text(&seeds)),
        mean: summary.and_then(|s| finite(s.mean)),
        ci95_low: summary.and_then(|s| finite(s.ci_low)),
        ci95_high: summary.and_then(|s| finite(s.ci_high)),
        min: summary.and_then(|s| finite(s.min)),
        max: summary.and_then(|s| finite(s.max)),
        verdict,
        note,
        assumptions: file.assumptions.clone(),
        reproduce: Some(format!("prsm sweep {}", file.path.display())),
    }
}

fn unmeasured(claim: &Claim, verdict: Verdict, note: String) -> ClaimResult {
    ClaimResult {
        claim: claim.name.to_owned(),
        row: claim.row.id().to_owned(),
        stated: claim.stated.to_owned(),
        metric: None,
        comparison: None,
        figure: None,
        unit: None,
        seeds: None,
        seed_list: None,
        mean: None,
        ci95_low: None,
        ci95_high: None,
        min: None,
        max: None,
        verdict,
        note,
        assumptions: String::new(),
        reproduce: None,
    }
}

/// `prsm claims`.
pub fn claims(args: &ClaimsArgs) -> Result<Exit, Failure> {
    let selected = select(args.quick, &args.only)?;
    // The baseline is read first: a malformed one is bad input, before anything runs.
    let baseline_path = args
        .baseline
        .clone()
        .or_else(|| Some(args.out.join("claims-baseline.json")).filter(|p| p.is_file()));
    let baseline = match &baseline_path {
        Some(path) => Some(read_baseline(path)?),
        None => None,
    };
    let files = load_files(&args.dir, &selected)?;
    let runs: usize = files.iter().map(|f| f.plan.sweep.runs()).sum();
    if !args.quiet {
        say!(
            "prsm claims: {} claims ({}), {} files, {runs} runs",
            selected.len(),
            subset_text(args),
            files.len()
        );
    }
    // Wall-clock time is measured for the timing line only; it never reaches results.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let rows = run_files(&files, args.jobs, args.quiet)?;
    let wall_s = started.elapsed().as_secs_f64();
    let mut results = Vec::new();
    for claim in &selected {
        results.push(match claim.kind {
            Kind::Measured(m) => {
                let f = files.iter().position(|f| f.name == m.file).unwrap_or(0);
                judge_measured(claim, &m, &files[f], &rows[f])
            }
            Kind::CannotHold { validators } => unmeasured(
                claim,
                Verdict::CannotHold,
                verdict::cannot_hold_reason(validators, 3.2, SIGNATURE_US),
            ),
            Kind::NotMeasured(reason) => unmeasured(claim, Verdict::NotMeasured, reason.to_owned()),
        });
    }
    let report = ClaimsReport {
        prsm_version: env!("CARGO_PKG_VERSION").to_owned(),
        subset: subset_text(args),
        rows: registry::Row::ALL
            .iter()
            .map(|r| RowInfo {
                row: r.id().to_owned(),
                as_stated: r.as_stated().to_owned(),
            })
            .collect(),
        claims: results,
    };
    write_outputs(&args.out, &report, args.plots).map_err(|e| {
        Failure::new(
            Exit::OutputFailed,
            format!(
                "error: cannot write outputs to {}: {e:#}",
                args.out.display()
            ),
        )
    })?;
    print_table(&report.claims);
    say!("wall {wall_s:.1} s, {runs} runs");
    say!("wrote {}", args.out.join("claims.md").display());
    let mut exit = Exit::Success;
    if rows.iter().flatten().any(|r| r.status != "ok") {
        exit = exit.worst(Exit::LimitReached);
    }
    match (&baseline, &baseline_path) {
        (Some(baseline), Some(path)) => {
            let regressions = gate(baseline, &report.claims);
            if regressions.is_empty() {
                say!(
                    "claims gate: every claim {} records as holding still holds",
                    path.display()
                );
            } else {
                warn!(
                    "claims gate: {} claim(s) held in {} and no longer hold:",
                    regressions.len(),
                    path.display()
                );
                for line in &regressions {
                    warn!("  {line}");
                }
                exit = exit.worst(Exit::ExpectationFailed);
            }
        }
        _ => say!(
            "claims gate: no baseline ({} not found); nothing compared",
            args.out.join("claims-baseline.json").display()
        ),
    }
    Ok(exit)
}

fn subset_text(args: &ClaimsArgs) -> String {
    let mut text = if args.quick { "quick" } else { "full" }.to_owned();
    if !args.only.is_empty() {
        text.push_str(&format!(" (only {})", args.only.join(", ")));
    }
    text
}

fn read_baseline(path: &Path) -> Result<Baseline, Failure> {
    let bytes = std::fs::read(path)
        .map_err(|e| bad(format!("cannot read baseline {}: {e}", path.display())))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        bad(format!(
            "{} is not a claims baseline (a claims.json with a `claims` list of `claim` and \
             `verdict`): {e}",
            path.display()
        ))
    })
}

/// The claims the baseline records as holding that this run measured and found not holding, one
/// line each. Claims this run did not select are not compared.
pub fn gate_lines(baseline: &[(String, Verdict)], current: &[ClaimResult]) -> Vec<String> {
    let mut out = Vec::new();
    for (name, was) in baseline {
        if !was.held() {
            continue;
        }
        let Some(now) = current.iter().find(|c| &c.claim == name) else {
            continue;
        };
        if !now.verdict.held() {
            let measured = match (now.mean, now.ci95_low, now.ci95_high) {
                (Some(m), Some(lo), Some(hi)) => format!(
                    "measured {} [{}, {}], stated {}",
                    number(m),
                    number(lo),
                    number(hi),
                    now.comparison.as_deref().unwrap_or("")
                ),
                _ => now.note.clone(),
            };
            out.push(format!(
                "{name}: was `{was}`, now `{}` ({measured}); reproduce: {}",
                now.verdict,
                now.reproduce.as_deref().unwrap_or("-")
            ));
        }
    }
    out
}

fn gate(baseline: &Baseline, current: &[ClaimResult]) -> Vec<String> {
    let pairs: Vec<(String, Verdict)> = baseline
        .claims
        .iter()
        .map(|c| (c.claim.clone(), c.verdict))
        .collect();
    gate_lines(&pairs, current)
}

fn opt(v: Option<f64>) -> String {
    v.map_or(String::new(), number)
}

fn write_outputs(dir: &Path, report: &ClaimsReport, plots: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("claims.json"),
        serde_json::to_string_pretty(report)? + "\n",
    )?;
    let mut w = csv::Writer::from_path(dir.join("claims.csv"))?;
    w.write_record([
        "row",
        "claim",
        "stated",
        "metric",
        "comparison",
        "unit",
        "seeds",
        "seed_list",
        "mean",
        "ci95_low",
        "ci95_high",
        "min",
        "max",
        "verdict",
        "note",
        "reproduce",
        "assumptions",
    ])?;
    for c in &report.claims {
        w.write_record([
            c.row.clone(),
            c.claim.clone(),
            c.stated.clone(),
            c.metric.clone().unwrap_or_default(),
            c.comparison.clone().unwrap_or_default(),
            c.unit.clone().unwrap_or_default(),
            c.seeds.map_or(String::new(), |n| n.to_string()),
            c.seed_list.clone().unwrap_or_default(),
            opt(c.mean),
            opt(c.ci95_low),
            opt(c.ci95_high),
            opt(c.min),
            opt(c.max),
            c.verdict.text().to_owned(),
            c.note.clone(),
            c.reproduce.clone().unwrap_or_default(),
            c.assumptions.clone(),
        ])?;
    }
    w.flush()?;
    let stems: Vec<&str> = PLOTS.iter().map(|p| p.stem).collect();
    crate::plot::remove_claims_plots(dir, &stems)?;
    let mut figures = Vec::new();
    if plots {
        for spec in &PLOTS {
            if let Some(figure) = figure(spec, &report.claims) {
                figures.push(crate::plot::plot_claims(dir, spec.stem, &figure)?);
            }
        }
    }
    std::fs::write(dir.join("claims.md"), markdown(report, &figures))?;
    Ok(())
}

/// The figure `spec` from the measured claims drawn in it; `None` if none was measured.
fn figure(spec: &registry::PlotSpec, results: &[ClaimResult]) -> Option<crate::plot::ClaimsFigure> {
    let mut lines: Vec<(String, Vec<crate::plot::ClaimPoint>)> = Vec::new();
    let mut claimed: Vec<(f64, f64)> = Vec::new();
    for claim in CLAIMS {
        let Kind::Measured(m) = claim.kind else {
            continue;
        };
        let Some((plot, series, x)) = m.plot else {
            continue;
        };
        if plot != spec.plot {
            continue;
        }
        if !claimed.contains(&(x, m.figure)) {
            claimed.push((x, m.figure));
        }
        let Some(r) = results.iter().find(|r| r.claim == claim.name) else {
            continue;
        };
        let (Some(mean), Some(lo), Some(hi)) = (r.mean, r.ci95_low, r.ci95_high) else {
            continue;
        };
        match lines.iter_mut().find(|(l, _)| l == series) {
            Some((_, points)) => points.push((x, mean, lo, hi)),
            None => lines.push((series.to_owned(), vec![(x, mean, lo, hi)])),
        }
    }
    if lines.is_empty() {
        return None;
    }
    let seeds: Vec<usize> = results
        .iter()
        .filter(|r| {
            CLAIMS.iter().any(|c| {
                c.name == r.claim
                    && matches!(c.kind, Kind::Measured(m) if m.plot.is_some_and(|p| p.0 == spec.plot))
            })
        })
        .filter_map(|r| r.seeds)
        .collect();
    let (lo, hi) = (
        seeds.iter().min().copied().unwrap_or(0),
        seeds.iter().max().copied().unwrap_or(0),
    );
    let seeds = if lo == hi {
        format!("{lo} seeds per point")
    } else {
        format!("{lo} to {hi} seeds per point")
    };
    Some(crate::plot::ClaimsFigure {
        title: format!("{} ({seeds})", spec.title),
        x_desc: spec.x_desc.to_owned(),
        y_desc: spec.y_desc.to_owned(),
        log_x: spec.log_x,
        log_y: spec.log_y,
        lines,
        claimed,
    })
}

fn measured_text(c: &ClaimResult) -> String {
    match (c.mean, c.ci95_low, c.ci95_high) {
        (Some(m), Some(lo), Some(hi)) => format!(
            "{} [{}, {}] {}",
            short(m),
            short(lo),
            short(hi),
            c.unit.as_deref().unwrap_or("")
        ),
        (Some(m), _, _) => format!("{} {}", short(m), c.unit.as_deref().unwrap_or("")),
        _ => "-".to_owned(),
    }
}

/// Text for a markdown table cell: a `|` would end the cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn markdown(report: &ClaimsReport, figures: &[PathBuf]) -> String {
    let mut md = String::new();
    md.push_str("# Claims report\n\n");
    md.push_str(&format!(
        "Written by `prsm claims` (prsm {}, subset: {}). Each measured figure is the mean over the \
         runs of its scenario file, one run per seed, with a 95 % confidence interval for that \
         mean (Student's t cut to the metric's range; Wilson's for yes/no runs of a share). A \
         claim holds when the whole interval is on the claimed side of the stated figure; \
         docs/claims.md gives the full rule and the definitions.\n\n",
        report.prsm_version, report.subset
    ));
    let mut by_row: BTreeMap<usize, Vec<&ClaimResult>> = BTreeMap::new();
    for c in &report.claims {
        let i = report.rows.iter().position(|r| r.row == c.row).unwrap_or(0);
        by_row.entry(i).or_default().push(c);
    }
    md.push_str("| row | claim | stated | measured: mean [95 % CI] | seeds | verdict |\n");
    md.push_str("| --- | --- | --- | --- | --- | --- |\n");
    for claims in by_row.values() {
        for c in claims {
            md.push_str(&format!(
                "| {} | `{}` | {}{} | {} | {} | **{}** |\n",
                c.row,
                c.claim,
                cell(&c.stated),
                c.comparison.as_ref().map_or(String::new(), |cmp| format!(
                    " (`{} {cmp}`)",
                    c.metric.as_deref().unwrap_or("")
                )),
                measured_text(c),
                c.seeds.map_or("-".to_owned(), |n| n.to_string()),
                c.verdict
            ));
        }
    }
    md.push_str("\n## The rows as stated\n\n| row | as stated |\n| --- | --- |\n");
    for r in &report.rows {
        md.push_str(&format!("| {} | {} |\n", r.row, cell(&r.as_stated)));
    }
    md.push_str("\n## Notes\n\n");
    for c in report.claims.iter().filter(|c| !c.note.is_empty()) {
        md.push_str(&format!("- `{}` ({}): {}\n", c.claim, c.verdict, c.note));
    }
    md.push_str(
        "\n## Reproduce\n\nEach command writes `points.csv`; the row of the claim's metric holds \
         the same mean and interval.\n\n| claim | command | metric | seeds |\n| --- | --- | --- | --- |\n",
    );
    for c in report.claims.iter().filter(|c| c.reproduce.is_some()) {
        md.push_str(&format!(
            "| `{}` | `{}` | `{}` | {} |\n",
            c.claim,
            c.reproduce.as_deref().unwrap_or(""),
            c.metric.as_deref().unwrap_or(""),
            c.seed_list.as_deref().unwrap_or("")
        ));
    }
    if !figures.is_empty() {
        md.push_str("\n## Figures\n\nMeasured means with their 95 % intervals (band and bars) against the stated figures (diamonds).\n\n");
        for f in figures {
            let name = f.display();
            md.push_str(&format!("![{name}]({name})\n\n"));
        }
    }
    md.push_str("\n## Assumptions\n\nFrom the header comment of each claim file.\n");
    let mut seen: Vec<&str> = Vec::new();
    for c in &report.claims {
        let Some(cmd) = c.reproduce.as_deref() else {
            continue;
        };
        if seen.contains(&cmd) {
            continue;
        }
        seen.push(cmd);
        let file = cmd.trim_start_matches("prsm sweep ");
        md.push_str(&format!("\n### {file}\n\n{}\n", c.assumptions));
    }
    md
}

fn print_table(results: &[ClaimResult]) {
    let width = results.iter().map(|c| c.claim.len()).max().unwrap_or(5);
    for c in results {
        say!(
            "  {:width$}  {:>34}  {}",
            c.claim,
            measured_text(c),
            c.verdict
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, verdict: Verdict) -> ClaimResult {
        ClaimResult {
            verdict,
            mean: Some(2.0),
            ci95_low: Some(1.5),
            ci95_high: Some(2.5),
            comparison: Some("<= 1".to_owned()),
            reproduce: Some(format!("prsm sweep {name}.yaml")),
            ..unmeasured(&CLAIMS[0], verdict, String::new())
        }
        .named(name)
    }

    impl ClaimResult {
        fn named(mut self, name: &str) -> Self {
            self.claim = name.to_owned();
            self
        }
    }

    #[test]
    fn the_gate_flags_only_claims_that_held_and_were_measured_again() {
        let baseline = vec![
            ("a".to_owned(), Verdict::Holds),
            ("b".to_owned(), Verdict::HoldsUnderAssumptions),
            ("c".to_owned(), Verdict::DoesNotHold),
            ("d".to_owned(), Verdict::Holds),
            ("e".to_owned(), Verdict::Holds),
        ];
        let current = vec![
            result("a", Verdict::DoesNotHold),
            result("b", Verdict::NotMeasured),
            result("c", Verdict::DoesNotHold),
            result("e", Verdict::Holds),
            // d was not run (a quick subset): not compared.
        ];
        let lines = gate_lines(&baseline, &current);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with("a: was `holds`, now `does not hold`"),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].contains("measured 2 [1.5, 2.5], stated <= 1"),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains("prsm sweep a.yaml"), "{}", lines[0]);
        assert!(
            lines[1].starts_with("b: was `holds under stated assumptions`"),
            "{}",
            lines[1]
        );
        // A claim that holds under its assumptions still counts as held.
        let now_qualified = vec![result("a", Verdict::HoldsUnderAssumptions)];
        assert!(gate_lines(&baseline, &now_qualified).is_empty());
    }

    #[test]
    fn selection_by_name_row_and_prefix_and_quick() {
        let names = |quick, only: &[&str]| -> Vec<&str> {
            let only: Vec<String> = only.iter().map(|s| (*s).to_owned()).collect();
            select(quick, &only)
                .unwrap()
                .iter()
                .map(|c| c.name)
                .collect()
        };
        assert_eq!(names(false, &["discovery.n10"]), ["discovery.n10"]);
        assert_eq!(
            names(false, &["discovery"]),
            [
                "discovery.n10",
                "discovery.n100",
                "discovery.n1000",
                "discovery.n10000"
            ]
        );
        assert_eq!(
            names(true, &["discovery"]),
            ["discovery.n10", "discovery.n100"]
        );
        let scale = names(false, &["scale"]);
        assert!(scale.contains(&"scale.linear") && scale.contains(&"consensus.n10000"));
        // The quick subset keeps every row: unmeasured claims are always reported.
        let quick = names(true, &[]);
        assert!(
            quick.contains(&"consensus.n10000") && quick.contains(&"geography.same-datacenter")
        );
        assert!(!quick.contains(&"discovery.n10000"));
        assert_eq!(names(false, &[]).len(), CLAIMS.len());
        let err = select(false, &["nope".to_owned()]).unwrap_err();
        assert_eq!(err.exit, Exit::BadInput);
        assert!(err.message.contains("discovery.n10"), "{}", err.message);
    }

    #[test]
    fn headers_seeds_and_short_numbers() {
        let text = "# Claim: one.\n#   two  three\n# four\nname: x\n# not header\n";
        assert_eq!(header_text(text), "Claim: one. two three four");
        assert_eq!(seed_text(&[1, 2, 3]), "1-3");
        assert_eq!(seed_text(&[1, 7, 42]), "1,7,42");
        assert_eq!(seed_text(&[5]), "5");
        assert_eq!(short(2036.8913), "2036.9");
        assert_eq!(short(0.999_984), "0.99998");
        assert_eq!(short(0.008_866_13), "0.0088661");
        assert_eq!(short(29.6391), "29.639");
        assert_eq!(short(45_000.0), "45000");
    }
}
