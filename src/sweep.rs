//! `prsm sweep` and `prsm merge`: a grid of scenario points times seeds, run in parallel.
//!
//! Runs are numbered point-major. A shard `i/n` runs the runs whose number is `i - 1` modulo `n`
//! and writes `sweep.json` and `runs.csv` only; `prsm merge` reads shards back and finishes them
//! exactly as an unsharded sweep finishes itself, through [`finish`], so the files are the same
//! bytes. Results never depend on the thread count: each run is independent and results are
//! collected in run order.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use prsm_sim::sweep::{SweepPlan, value_text};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::exit::{Exit, Failure};
use crate::progress::Progress;
use crate::stats::summarize_metric;
use crate::{plot, report, scenario_file};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AxisInfo {
    pub path: String,
    pub values: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    pub index: usize,
    pub count: usize,
}

/// `sweep.json`: what a sweep (or one shard of it) ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub prsm_version: String,
    pub scenario: String,
    pub description: String,
    pub file: String,
    pub axes: Vec<AxisInfo>,
    pub seeds: Vec<u64>,
    pub points: usize,
    pub runs: usize,
    pub metrics: Vec<String>,
    pub plot: Vec<String>,
    /// The expectations of the base scenario, as written.
    pub expect: Vec<String>,
    pub shard: Option<ShardInfo>,
}

impl Manifest {
    /// Axis values (as text) of point `p`; the first axis varies slowest.
    pub fn point_values(&self, mut p: usize) -> Vec<&str> {
        let mut out = vec![""; self.axes.len()];
        for (i, axis) in self.axes.iter().enumerate().rev() {
            let n = axis.values.len();
            out[i] = &axis.values[p % n];
            p /= n;
        }
        out
    }
}

/// One row of runs.csv.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRow {
    pub run: usize,
    pub point: usize,
    pub seed: u64,
    pub trace_hash: String,
    /// `ok`, or why the run stopped early.
    pub status: String,
    pub passed: Option<bool>,
    pub metrics: Vec<Option<f64>>,
}

pub struct SweepArgs<'a> {
    pub file: &'a Path,
    pub out: Option<PathBuf>,
    pub shard: Option<ShardInfo>,
    pub jobs: Option<usize>,
    pub quiet: bool,
    pub strict: bool,
    pub plots: bool,
}

/// Parses `i/n` with 1 <= i <= n.
pub fn parse_shard(text: &str) -> Result<ShardInfo, String> {
    let (i, n) = text
        .split_once('/')
        .ok_or("write the shard as i/n, e.g. 2/3")?;
    let index: usize = i
        .trim()
        .parse()
        .map_err(|_| format!("`{i}` is not a shard number"))?;
    let count: usize = n
        .trim()
        .parse()
        .map_err(|_| format!("`{n}` is not a shard count"))?;
    if count == 0 || index == 0 || index > count {
        return Err(format!("shard {index}/{count}: shards are numbered 1 to n"));
    }
    Ok(ShardInfo { index, count })
}

pub fn sweep(args: SweepArgs<'_>) -> Result<Exit, Failure> {
    let plan = scenario_file::load_sweep(args.file)?;
    let manifest = manifest(&plan, args.file, args.shard);
    let runs: Vec<usize> = (0..manifest.runs)
        .filter(|r| args.shard.is_none_or(|s| r % s.count == s.index - 1))
        .collect();
    let dir = args.out.unwrap_or_else(|| default_dir(&manifest));
    if !args.quiet {
        say!(
            "prsm sweep: {} ({} points x {} seeds = {} runs{})",
            manifest.scenario,
            manifest.points,
            manifest.seeds.len(),
            manifest.runs,
            args.shard.map_or(String::new(), |s| format!(
                "; shard {}/{} runs {}",
                s.index,
                s.count,
                runs.len()
            ))
        );
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.jobs.unwrap_or(0))
        .build()
        .map_err(|e| {
            Failure::new(
                Exit::BadInput,
                format!(
                    "error: cannot start {} threads: {e}",
                    args.jobs.unwrap_or(0)
                ),
            )
        })?;
    // Progress counts virtual time, of finished runs and of running ones, so a sweep of a few
    // long runs moves too.
    let run_ms = |run: usize| plan.points[plan.run(run).0].duration.as_nanos() / 1_000_000;
    let total_ms: u64 = runs.iter().map(|&r| run_ms(r)).sum();
    let progress = Progress::new(
        total_ms,
        "{bar:40} {percent:>3} % of virtual time  {msg}  eta {eta}",
        !args.quiet,
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
                runs.len(),
                100.0 * done as f64 / total_ms.max(1) as f64
            )
        });
    };
    progress.set_message(format!("0/{} runs", runs.len()));
    // Wall-clock time is measured for the timing line only; it never reaches results.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let rows: Vec<RunRow> = pool.install(|| {
        runs.par_iter()
            .map(|&run| {
                let mut reported = 0;
                let row = execute(&plan, &manifest.metrics, run, &mut |now| {
                    let ms = now.as_nanos() / 1_000_000;
                    report(ms.saturating_sub(reported));
                    reported = reported.max(ms);
                });
                let n = finished.fetch_add(1, Ordering::Relaxed) + 1;
                progress.set_message(format!("{n}/{} runs", runs.len()));
                report(run_ms(run).saturating_sub(reported));
                row
            })
            .collect()
    });
    progress.finish();
    let wall_s = started.elapsed().as_secs_f64();
    let written = match args.shard {
        Some(_) => write_partial(&dir, &manifest, &rows),
        None => finish(&dir, &manifest, &rows, args.plots),
    };
    written.map_err(|e| output_failure(&dir, &e))?;
    summarize_terminal(&rows, &manifest, args.file, wall_s, &dir);
    let failed = rows.iter().any(|r| r.passed == Some(false));
    let gate = if args.strict && failed {
        Exit::ExpectationFailed
    } else {
        Exit::Success
    };
    Ok(rows.iter().fold(gate, |exit, r| {
        exit.worst(match r.status.as_str() {
            "ok" => Exit::Success,
            "safety_violation" => Exit::SafetyViolation,
            "liveness_violation" => Exit::LivenessFailure,
            _ => Exit::LimitReached,
        })
    }))
}

fn output_failure(dir: &Path, e: &anyhow::Error) -> Failure {
    Failure::new(
        Exit::OutputFailed,
        format!("error: cannot write outputs to {}: {e:#}", dir.display()),
    )
}

fn default_dir(manifest: &Manifest) -> PathBuf {
    let stem = crate::export::safe_stem(&manifest.scenario);
    let name = match manifest.shard {
        Some(s) => format!("{stem}-sweep-shard-{}-of-{}", s.index, s.count),
        None => format!("{stem}-sweep"),
    };
    PathBuf::from("reports").join(name)
}

fn manifest(plan: &SweepPlan, file: &Path, shard: Option<ShardInfo>) -> Manifest {
    let mut metrics: Vec<String> = plan
        .points
        .iter()
        .flat_map(|p| prsm_sim::catalog(&p.protocol))
        .collect();
    metrics.sort();
    metrics.dedup();
    Manifest {
        prsm_version: env!("CARGO_PKG_VERSION").to_owned(),
        scenario: plan.base.name.clone(),
        description: plan.base.description.clone(),
        file: file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        axes: plan
            .sweep
            .axes
            .iter()
            .map(|a| AxisInfo {
                path: a.path.clone(),
                values: a.values.iter().map(value_text).collect(),
            })
            .collect(),
        seeds: plan.sweep.seeds.clone(),
        points: plan.sweep.points(),
        runs: plan.sweep.runs(),
        metrics,
        plot: plan.sweep.plot.clone(),
        expect: plan.base.expect.iter().map(|e| e.text.clone()).collect(),
        shard,
    }
}

/// Runs run number `run` of `plan`, keeping the metrics named in `columns` (shared with
/// `prsm claims`).
pub fn execute(
    plan: &SweepPlan,
    columns: &[String],
    run: usize,
    progress: &mut dyn FnMut(prsm_protocol::Time),
) -> RunRow {
    let (point, seed) = plan.run(run);
    let scenario = &plan.points[point];
    match prsm_sim::run_with_progress(scenario, seed, &mut |now, _| progress(now)) {
        Ok(output) => {
            let verdicts = prsm_sim::judge(&scenario.expect, &output.metrics);
            RunRow {
                run,
                point,
                seed,
                trace_hash: crate::export::trace_hex(output.trace_hash),
                status: output.violation.as_ref().map_or("ok".to_owned(), |(v, _)| {
                    format!("{}_violation", v.kind.name())
                }),
                passed: Some(verdicts.iter().all(|v| v.pass)),
                metrics: columns.iter().map(|c| output.metrics.get(c)).collect(),
            }
        }
        Err(e) => RunRow {
            run,
            point,
            seed,
            trace_hash: String::new(),
            status: e.to_string(),
            passed: None,
            metrics: vec![None; columns.len()],
        },
    }
}

fn number(v: f64) -> String {
    v.to_string()
}

/// sweep.json and runs.csv: all a shard writes.
fn write_partial(dir: &Path, manifest: &Manifest, rows: &[RunRow]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("sweep.json"),
        serde_json::to_string_pretty(manifest)? + "\n",
    )?;
    let mut w = csv::Writer::from_path(dir.join("runs.csv"))?;
    let mut header = vec!["run".to_owned(), "point".to_owned()];
    header.extend(manifest.axes.iter().map(|a| a.path.clone()));
    header.extend(["seed", "trace_hash", "status", "passed"].map(str::to_owned));
    header.extend(manifest.metrics.iter().cloned());
    w.write_record(&header)?;
    for row in rows {
        let mut record = vec![row.run.to_string(), row.point.to_string()];
        record.extend(
            manifest
                .point_values(row.point)
                .into_iter()
                .map(str::to_owned),
        );
        record.push(row.seed.to_string());
        record.push(row.trace_hash.clone());
        record.push(row.status.clone());
        record.push(
            row.passed
                .map_or(String::new(), |p| u8::from(p).to_string()),
        );
        record.extend(row.metrics.iter().map(|m| m.map_or(String::new(), number)));
        w.write_record(&record)?;
    }
    w.flush()?;
    Ok(())
}

/// points.csv, report.md and plots, from the complete set of runs.
pub fn finish(dir: &Path, manifest: &Manifest, rows: &[RunRow], plots: bool) -> anyhow::Result<()> {
    let mut complete = manifest.clone();
    complete.shard = None;
    write_partial(dir, &complete, rows)?;
    let mut w = csv::Writer::from_path(dir.join("points.csv"))?;
    let mut header = vec!["point".to_owned()];
    header.extend(manifest.axes.iter().map(|a| a.path.clone()));
    header.extend(
        [
            "metric",
            "runs",
            "mean",
            "sd",
            "ci95_low",
            "ci95_high",
            "min",
            "max",
            "runs_passing",
        ]
        .map(str::to_owned),
    );
    w.write_record(&header)?;
    for point in 0..manifest.points {
        let values = manifest.point_values(point);
        let passing = rows
            .iter()
            .filter(|r| r.point == point && r.passed == Some(true))
            .count();
        for (m, metric) in manifest.metrics.iter().enumerate() {
            let samples: Vec<f64> = rows
                .iter()
                .filter(|r| r.point == point)
                .filter_map(|r| r.metrics[m])
                .collect();
            let Some(s) = summarize_metric(metric, &samples) else {
                continue;
            };
            let mut record = vec![point.to_string()];
            record.extend(values.iter().map(|v| (*v).to_owned()));
            record.push(metric.clone());
            record.push(s.n.to_string());
            record.extend([s.mean, s.sd, s.ci_low, s.ci_high, s.min, s.max].map(number));
            record.push(passing.to_string());
            w.write_record(&record)?;
        }
    }
    w.flush()?;
    let mut figures = Vec::new();
    plot::remove_sweep_plots(dir, &manifest.metrics)?;
    if plots {
        figures = plot::plot_sweep_dir(dir)?;
    }
    std::fs::write(
        dir.join("report.md"),
        report::sweep_report(&complete, rows, &figures),
    )?;
    Ok(())
}

/// How many failed or stopped runs the terminal summary lists.
const LISTED_RUNS_MAX: usize = 10;

fn summarize_terminal(rows: &[RunRow], manifest: &Manifest, file: &Path, wall_s: f64, dir: &Path) {
    let stopped = rows.iter().filter(|r| r.passed.is_none()).count();
    let passed = rows.iter().filter(|r| r.passed == Some(true)).count();
    let failed = rows.len() - passed - stopped;
    say!(
        "{} runs: {passed} met every expectation, {failed} did not, {stopped} stopped by a limit",
        rows.len(),
    );
    let point_text = |p: usize| {
        let values = manifest.point_values(p);
        let axes: Vec<String> = manifest
            .axes
            .iter()
            .zip(values)
            .map(|(a, v)| format!("{}={v}", a.path))
            .collect();
        format!("point {p}: {}", axes.join(", "))
    };
    let unmet: Vec<&RunRow> = rows
        .iter()
        .filter(|r| r.passed != Some(true) || r.status != "ok")
        .collect();
    for row in unmet.iter().take(LISTED_RUNS_MAX) {
        let what = if row.status != "ok" {
            &row.status
        } else {
            "failed an expectation"
        };
        say!(
            "  run {} ({}, seed {}): {what}",
            row.run,
            point_text(row.point),
            row.seed,
        );
    }
    if unmet.len() > LISTED_RUNS_MAX {
        say!("  ... {} more in runs.csv", unmet.len() - LISTED_RUNS_MAX);
    }
    if let Some(row) = unmet.first() {
        say!(
            "reproduce: prsm run {} --point {} --seed {}",
            file.display(),
            row.point,
            row.seed
        );
    }
    say!(
        "wall {wall_s:.3} s, {:.2} runs/s",
        rows.len() as f64 / wall_s.max(1e-9)
    );
    say!("wrote {}", dir.display());
}

/// Reads one shard (or sweep) folder back.
fn read_dir(dir: &Path) -> anyhow::Result<(Manifest, Vec<RunRow>)> {
    use anyhow::Context as _;
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(dir.join("sweep.json"))
            .with_context(|| format!("reading {}/sweep.json", dir.display()))?,
    )
    .with_context(|| format!("{}/sweep.json is not a sweep manifest", dir.display()))?;
    let mut reader = csv::Reader::from_path(dir.join("runs.csv"))
        .with_context(|| format!("reading {}/runs.csv", dir.display()))?;
    let fixed = 2 + manifest.axes.len() + 4;
    let expected_width = fixed + manifest.metrics.len();
    let mut rows = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record?;
        let bad = || anyhow::anyhow!("{}/runs.csv row {}: malformed", dir.display(), line + 2);
        if record.len() != expected_width {
            return Err(bad());
        }
        let field = |i: usize| record.get(i).unwrap_or_default();
        let base = 2 + manifest.axes.len();
        let passed = match field(base + 3) {
            "" => None,
            "1" => Some(true),
            "0" => Some(false),
            _ => return Err(bad()),
        };
        let metrics = (fixed..expected_width)
            .map(|i| {
                if field(i).is_empty() {
                    Ok(None)
                } else {
                    field(i).parse().map(Some)
                }
            })
            .collect::<Result<Vec<Option<f64>>, _>>()
            .map_err(|_| bad())?;
        rows.push(RunRow {
            run: field(0).parse().map_err(|_| bad())?,
            point: field(1).parse().map_err(|_| bad())?,
            seed: field(base).parse().map_err(|_| bad())?,
            trace_hash: field(base + 1).to_owned(),
            status: field(base + 2).to_owned(),
            passed,
            metrics,
        });
    }
    Ok((manifest, rows))
}

/// `prsm merge`: combines shard folders into the files of the unsharded sweep.
pub fn merge(dirs: &[PathBuf], out: &Path, plots: bool) -> Result<Exit, Failure> {
    let bad = |message: String| Failure::new(Exit::BadInput, format!("error: {message}"));
    let mut shards = Vec::new();
    for dir in dirs {
        shards.push(read_dir(dir).map_err(|e| bad(format!("{e:#}")))?);
    }
    let Some((first, _)) = shards.first() else {
        return Err(bad("name at least one shard folder".to_owned()));
    };
    let mut reference = first.clone();
    reference.shard = None;
    let count = first.shard.map_or(1, |s| s.count);
    let mut seen_shards = vec![false; count];
    let mut rows = Vec::new();
    for ((manifest, shard_rows), dir) in shards.into_iter().zip(dirs) {
        let mut plain = manifest.clone();
        plain.shard = None;
        if plain != reference {
            return Err(bad(format!(
                "{} belongs to another sweep (different scenario, axes, seeds or version)",
                dir.display()
            )));
        }
        let index = manifest.shard.map_or(1, |s| s.index);
        if manifest.shard.map_or(1, |s| s.count) != count
            || std::mem::replace(&mut seen_shards[index - 1], true)
        {
            return Err(bad(format!(
                "{}: shard {index}/{count} is given twice or does not match the others",
                dir.display()
            )));
        }
        rows.extend(shard_rows);
    }
    if let Some(missing) = seen_shards.iter().position(|s| !s) {
        return Err(bad(format!("shard {}/{count} is missing", missing + 1)));
    }
    rows.sort_by_key(|r| r.run);
    let complete = rows.len() == reference.runs && rows.iter().enumerate().all(|(i, r)| r.run == i);
    if !complete {
        return Err(bad(format!(
            "the shards hold {} runs, not the sweep's {} runs 0..{}",
            rows.len(),
            reference.runs,
            reference.runs
        )));
    }
    finish(out, &reference, &rows, plots).map_err(|e| output_failure(out, &e))?;
    say!(
        "merged {} shards, {} runs into {}",
        count,
        rows.len(),
        out.display()
    );
    Ok(Exit::Success)
}
