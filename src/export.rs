//! Writing a run's outputs: summary.json (scenario, seed, trace hash, metrics, verdicts) and one
//! CSV per table. Nothing here depends on the wall clock, so outputs are byte-identical per seed.

use std::fs;
use std::path::Path;

use prsm_sim::{RunOutput, Scenario, Table, Verdict};
use serde::Serialize;

#[derive(Serialize)]
struct ScenarioInfo<'a> {
    name: &'a str,
    description: &'a str,
    file: String,
    nodes: u32,
    duration_s: f64,
    protocol: &'a str,
}

#[derive(Serialize)]
struct TableInfo {
    file: String,
    rows: usize,
    rows_dropped_at_limit: u64,
}

#[derive(Serialize)]
struct Summary<'a> {
    prsm_version: &'a str,
    scenario: ScenarioInfo<'a>,
    seed: u64,
    /// `simulated`, or `live` for `prsm cluster` (real processes on the wall clock).
    mode: &'static str,
    /// None for a live run: it is not reproducible event for event.
    trace_hash: Option<String>,
    events: u64,
    passed: bool,
    expectations: &'a [Verdict],
    metrics: &'a prsm_sim::Metrics,
    tables: Vec<TableInfo>,
    /// What a checker found broken, if anything.
    violation: Option<ViolationInfo<'a>>,
    /// Settings that probably do not do what was meant (see [`warnings`]).
    warnings: Vec<String>,
}

#[derive(Serialize)]
struct ViolationInfo<'a> {
    kind: &'static str,
    time_s: f64,
    /// The number of the event that broke it (events are counted from 1).
    event: u64,
    message: &'a str,
}

/// A name made safe for a file or folder name: letters, digits, `-` and `_` kept, the rest `_`.
pub fn safe_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub fn trace_hex(hash: u64) -> String {
    format!("{hash:016x}")
}

/// What the scenario runs: its protocol, or its layers joined by `+` (`kademlia+swim+pbft`).
pub fn protocol_name(scenario: &Scenario) -> String {
    use prsm_sim::scenario::ProtocolConfig;
    match &scenario.protocol {
        ProtocolConfig::Gossip(_) => "gossip".to_owned(),
        ProtocolConfig::Relay { .. } => "relay".to_owned(),
        ProtocolConfig::Pbft(_) => "pbft".to_owned(),
        ProtocolConfig::Full(f) if !f.layered => "kademlia".to_owned(),
        ProtocolConfig::Full(f) => {
            let present = [
                f.kad.is_some(),
                f.swim.is_some(),
                f.local.is_some(),
                f.pbft.is_some(),
                f.routing.is_some(),
                f.detection.is_some(),
            ];
            prsm_sim::model::FULL_LAYERS
                .iter()
                .zip(present)
                .filter(|(_, p)| *p)
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join("+")
        }
        ProtocolConfig::Swim(_) => "swim".to_owned(),
    }
}

pub fn write_run(
    dir: &Path,
    file: &Path,
    scenario: &Scenario,
    output: &RunOutput,
    verdicts: &[Verdict],
    live: bool,
) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut tables = vec![("timeseries".to_owned(), &output.series)];
    tables.extend(output.tables.iter().map(|(name, t)| (name.clone(), t)));
    let protocol = protocol_name(scenario);
    let summary = Summary {
        prsm_version: env!("CARGO_PKG_VERSION"),
        scenario: ScenarioInfo {
            name: &scenario.name,
            description: &scenario.description,
            // The file name only: the same scenario gives the same bytes from any directory.
            file: file
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            nodes: scenario.node_count(),
            duration_s: scenario.duration.as_secs_f64(),
            protocol: &protocol,
        },
        seed: output.seed,
        mode: if live { "live" } else { "simulated" },
        trace_hash: (!live).then(|| trace_hex(output.trace_hash)),
        events: output.events,
        passed: verdicts.iter().all(|v| v.pass),
        expectations: verdicts,
        metrics: &output.metrics,
        tables: tables
            .iter()
            .map(|(name, t)| TableInfo {
                file: format!("{name}.csv"),
                rows: t.rows.len(),
                rows_dropped_at_limit: t.truncated,
            })
            .collect(),
        violation: output.violation.as_ref().map(|(v, event)| ViolationInfo {
            kind: v.kind.name(),
            time_s: v.at.as_secs_f64(),
            event: *event,
            message: &v.message,
        }),
        warnings: warnings(file, scenario, output),
    };
    let json = serde_json::to_string_pretty(&summary).map_err(std::io::Error::other)?;
    fs::write(dir.join("summary.json"), json + "\n")?;
    for (name, table) in tables {
        write_csv(&dir.join(format!("{name}.csv")), table)?;
    }
    let mut w = csv::Writer::from_path(dir.join("faults.csv")).map_err(std::io::Error::other)?;
    w.write_record(["time_s", "kind", "nodes", "sides"])
        .map_err(std::io::Error::other)?;
    for f in &output.faults {
        w.write_record([
            f.time_s.to_string(),
            f.kind.to_owned(),
            f.nodes.to_string(),
            f.sides.to_string(),
        ])
        .map_err(std::io::Error::other)?;
    }
    w.flush()?;
    let mut w =
        csv::Writer::from_path(dir.join("latency_cdf.csv")).map_err(std::io::Error::other)?;
    w.write_record(["series", "quantile", "latency_ms"])
        .map_err(std::io::Error::other)?;
    for (series, points) in &output.cdfs {
        for (q, v) in points {
            w.write_record([series.clone(), q.to_string(), v.to_string()])
                .map_err(std::io::Error::other)?;
        }
    }
    w.flush()?;
    Ok(())
}

fn write_csv(path: &Path, table: &Table) -> std::io::Result<()> {
    let mut w = csv::Writer::from_path(path).map_err(std::io::Error::other)?;
    w.write_record(table.columns.iter().chain(&table.text_columns))
        .map_err(std::io::Error::other)?;
    let mut cells = Vec::with_capacity(table.columns.len() + table.text_columns.len());
    for (i, row) in table.rows.iter().enumerate() {
        cells.clear();
        cells.extend(row.iter().map(|v| v.to_string()));
        if let Some(text) = table.text_rows.get(i) {
            cells.extend(text.iter().cloned());
        }
        w.write_record(&cells).map_err(std::io::Error::other)?;
    }
    w.flush()
}

/// The scenario's warnings (`FILE:LINE:COLUMN: message`, with the file name only, so the same
/// scenario gives the same bytes from any directory), then the run's own.
pub fn warnings(file: &Path, scenario: &Scenario, output: &RunOutput) -> Vec<String> {
    let name = file
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    scenario
        .warnings
        .iter()
        .map(|d| format!("{name}:{d}"))
        .chain(output.warnings.iter().cloned())
        .collect()
}

/// Prints a run's own warnings (the scenario's were printed when it loaded).
pub fn print_run_warnings(output: &RunOutput, name: &str) {
    for w in &output.warnings {
        warn!("warning: `{name}` (seed {}): {w}", output.seed);
    }
}

/// The exit code and the terminal line for a checker's violation.
pub fn violation_line(
    output: &RunOutput,
    name: &str,
    file: &Path,
) -> Option<(crate::exit::Exit, String)> {
    let (v, event) = output.violation.as_ref()?;
    let exit = match v.kind {
        prsm_sim::ViolationKind::Safety => crate::exit::Exit::SafetyViolation,
        prsm_sim::ViolationKind::Liveness => crate::exit::Exit::LivenessFailure,
    };
    let line = format!(
        "{} VIOLATION in `{name}` (seed {}, event {event}, at {}): {}\nreproduce: prsm run {} --seed {}",
        v.kind.name().to_uppercase(),
        output.seed,
        v.at,
        v.message,
        file.display(),
        output.seed
    );
    Some((exit, line))
}
