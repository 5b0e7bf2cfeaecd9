//! The `prsm` binary: parses the command line, runs the library, maps outcomes to exit codes.

// First, so its `say!` and `warn!` macros are in scope in every module below.
#[macro_use]
mod terminal;

mod claims;
mod cli;
mod cluster;
mod exit;
mod export;
mod junit;
mod plot;
mod progress;
mod report;
mod scenario_file;
mod stats;
mod sweep;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use prsm_sim::{RunError, RunOutput, Scenario, Verdict};

use cli::{Cli, Command};
use exit::{Exit, Failure};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run {
            file,
            seed,
            point,
            out,
            quiet,
            no_plots,
        } => run(&file, seed, point, out, quiet, !no_plots),
        Command::Check {
            files,
            seed,
            junit,
            out,
            quiet,
            no_plots,
        } => check(&CheckArgs {
            files: &files,
            seed,
            junit: junit.as_deref(),
            out: out.as_deref(),
            quiet,
            plots: !no_plots,
        }),
        Command::Sweep {
            file,
            out,
            shard,
            jobs,
            quiet,
            strict,
            no_plots,
        } => sweep::sweep(sweep::SweepArgs {
            file: &file,
            out,
            shard,
            jobs,
            quiet,
            strict,
            plots: !no_plots,
        }),
        Command::Merge {
            dirs,
            out,
            no_plots,
        } => sweep::merge(&dirs, &out, !no_plots),
        Command::Plot { dir } => plot_dir(&dir),
        Command::Validate { files } => validate(&files),
        Command::Metrics { file } => metrics(file.as_deref()),
        Command::Keygen { nodes, out } => keygen(nodes, &out),
        Command::Node {
            file,
            key,
            roster,
            listen,
            peers,
            metrics_addr,
            state,
            control,
            seed,
            incarnation,
            log,
        } => live_node(&LiveNodeArgs {
            file: &file,
            key: &key,
            roster: &roster,
            listen,
            peers: peers.as_deref(),
            metrics_addr,
            state,
            control,
            seed,
            incarnation,
            log: &log,
        }),
        Command::Cluster {
            file,
            nodes,
            out,
            seed,
            quiet,
            no_plots,
            no_compare,
        } => live_cluster(&cluster::ClusterArgs {
            file: &file,
            nodes,
            out,
            seed,
            quiet,
            plots: !no_plots,
            compare: !no_compare,
        }),
        Command::Claims {
            quick,
            only,
            jobs,
            out,
            claims_dir,
            baseline,
            quiet,
            no_plots,
        } => claims::claims(&claims::ClaimsArgs {
            quick,
            only,
            jobs,
            out,
            dir: claims_dir,
            baseline,
            quiet,
            plots: !no_plots,
        }),
    };
    match outcome {
        Ok(exit) => exit.into(),
        Err(failure) => {
            warn!("{failure}");
            failure.exit.into()
        }
    }
}

/// A finished run with its verdicts and wall-clock cost (the cost is printed, never written).
struct Finished {
    output: RunOutput,
    verdicts: Vec<Verdict>,
    wall_s: f64,
}

fn execute(scenario: &Scenario, seed: u64, show_progress: bool) -> Result<Finished, Failure> {
    // Wall-clock time is measured for the timing line only; it never reaches results.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let duration_ms = scenario.duration.as_nanos() / 1_000_000;
    let progress = progress::Progress::new(
        duration_ms,
        "{bar:40} {pos}/{len} ms of virtual time  eta {eta}",
        show_progress,
    );
    let output = prsm_sim::run_with_progress(scenario, seed, &mut |now, events| {
        let ms = now.as_nanos() / 1_000_000;
        progress.set_position(ms);
        progress.line(|wall_s| {
            format!(
                "progress: {} (seed {seed}): {now} of {} virtual time ({:.0} %), {events} events, {wall_s:.0} s wall",
                scenario.name,
                scenario.duration,
                100.0 * ms as f64 / duration_ms.max(1) as f64
            )
        });
    })
    .map_err(|e| limit_failure(&scenario.name, seed, &e))?;
    progress.finish();
    export::print_run_warnings(&output, &scenario.name);
    let wall_s = started.elapsed().as_secs_f64();
    let verdicts = prsm_sim::judge(&scenario.expect, &output.metrics);
    Ok(Finished {
        output,
        verdicts,
        wall_s,
    })
}

fn limit_failure(name: &str, seed: u64, e: &RunError) -> Failure {
    Failure::new(
        Exit::LimitReached,
        format!("error: scenario `{name}` (seed {seed}): {e}"),
    )
}

fn default_out(scenario: &Scenario, seed: u64) -> PathBuf {
    let stem = export::safe_stem(&scenario.name);
    PathBuf::from("reports").join(format!("{stem}-s{seed}"))
}

/// The base scenario of a file, or point `point` of its sweep grid.
fn load_point(file: &Path, point: Option<usize>) -> Result<Scenario, Failure> {
    let Some(point) = point else {
        return scenario_file::load(file);
    };
    let mut plan = scenario_file::load_sweep(file)?;
    let points = plan.points.len();
    if point >= points {
        return Err(Failure::new(
            Exit::BadInput,
            format!(
                "error: --point {point}: {} has points 0 to {} in its sweep grid",
                file.display(),
                points.saturating_sub(1)
            ),
        ));
    }
    Ok(plan.points.swap_remove(point))
}

fn run(
    file: &Path,
    seed: Option<u64>,
    point: Option<usize>,
    out: Option<PathBuf>,
    quiet: bool,
    plots: bool,
) -> Result<Exit, Failure> {
    let scenario = load_point(file, point)?;
    let seed = seed.unwrap_or(scenario.seed);
    if !quiet {
        say!(
            "prsm run: {} ({} nodes, {} protocol, {} of virtual time)",
            scenario.name,
            scenario.node_count(),
            export::protocol_name(&scenario),
            scenario.duration
        );
    }
    if scenario.has_sweep && point.is_none() && !quiet {
        say!(
            "note: this file has a `sweep:` block; `prsm run` runs the base scenario once, `prsm sweep` runs the grid"
        );
    }
    let finished = execute(&scenario, seed, !quiet)?;
    let dir = out.unwrap_or_else(|| match point {
        Some(p) => default_out(&scenario, seed).with_file_name(format!(
            "{}-p{p}-s{seed}",
            export::safe_stem(&scenario.name)
        )),
        None => default_out(&scenario, seed),
    });
    write_outputs(&dir, file, &scenario, &finished, plots, false)?;
    say!(
        "seed {seed}  trace {}",
        export::trace_hex(finished.output.trace_hash)
    );
    if !quiet {
        terminal::print_metrics(&finished.output.metrics);
    }
    terminal::print_verdicts(&finished.verdicts);
    let events_per_s = finished.output.events as f64 / finished.wall_s.max(1e-9);
    say!(
        "wall {:.3} s, {} events, {:.2} M events/s",
        finished.wall_s,
        finished.output.events,
        events_per_s / 1e6
    );
    say!("wrote {}", dir.display());
    let mut exit = if finished.verdicts.iter().all(|v| v.pass) {
        Exit::Success
    } else {
        Exit::ExpectationFailed
    };
    if let Some((code, line)) = export::violation_line(&finished.output, &scenario.name, file) {
        warn!("{line}");
        exit = exit.worst(code);
    }
    Ok(exit)
}

/// summary.json, the CSV files, the plots and report.md of a finished run, in `dir`.
fn write_outputs(
    dir: &Path,
    file: &Path,
    scenario: &Scenario,
    finished: &Finished,
    plots: bool,
    live: bool,
) -> Result<(), Failure> {
    let output_failure = |e: String| {
        Failure::new(
            Exit::OutputFailed,
            format!("error: cannot write outputs to {}: {e}", dir.display()),
        )
    };
    export::write_run(
        dir,
        file,
        scenario,
        &finished.output,
        &finished.verdicts,
        live,
    )
    .map_err(|e| output_failure(e.to_string()))?;
    plot::remove_run_plots(dir).map_err(|e| output_failure(format!("{e:#}")))?;
    let figures = if plots {
        plot::plot_run_dir(dir).map_err(|e| output_failure(format!("{e:#}")))?
    } else {
        Vec::new()
    };
    let report = report::run_report(
        file,
        scenario,
        &finished.output,
        &finished.verdicts,
        &figures,
        live,
    );
    std::fs::write(dir.join("report.md"), report).map_err(|e| output_failure(e.to_string()))
}

struct CheckArgs<'a> {
    files: &'a [PathBuf],
    seed: Option<u64>,
    junit: Option<&'a Path>,
    out: Option<&'a Path>,
    quiet: bool,
    plots: bool,
}

fn check(args: &CheckArgs<'_>) -> Result<Exit, Failure> {
    let CheckArgs {
        files, seed, junit, ..
    } = *args;
    let mut exit = Exit::Success;
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut used_dirs: Vec<PathBuf> = Vec::new();
    for file in files {
        let scenario = match scenario_file::load(file) {
            Ok(s) => s,
            Err(failure) => {
                warn!("{failure}");
                exit = exit.worst(failure.exit);
                errors.push((file.clone(), failure.message));
                continue;
            }
        };
        let seed = seed.unwrap_or(scenario.seed);
        match execute(&scenario, seed, !args.quiet) {
            Ok(finished) => {
                if let Some(out) = args.out {
                    // One file: its outputs go to DIR itself; several: one subfolder each.
                    let dir = if files.len() == 1 {
                        out.to_path_buf()
                    } else {
                        let name = default_out(&scenario, seed);
                        let stem = name.file_name().unwrap_or_default().to_string_lossy();
                        let mut dir = out.join(&*stem);
                        let mut k = 2;
                        while used_dirs.contains(&dir) {
                            dir = out.join(format!("{stem}-{k}"));
                            k += 1;
                        }
                        dir
                    };
                    used_dirs.push(dir.clone());
                    write_outputs(&dir, file, &scenario, &finished, args.plots, false)?;
                    if !args.quiet {
                        say!("wrote {}", dir.display());
                    }
                }
                if finished.verdicts.iter().any(|v| !v.pass) {
                    exit = exit.worst(Exit::ExpectationFailed);
                }
                if let Some((code, line)) =
                    export::violation_line(&finished.output, &scenario.name, file)
                {
                    warn!("{line}");
                    exit = exit.worst(code);
                }
                if finished.verdicts.is_empty() {
                    warn!(
                        "warning: {} has no expectations; add an `expect:` list",
                        file.display()
                    );
                }
                rows.push((file.clone(), seed, finished));
            }
            Err(failure) => {
                warn!("{failure}");
                exit = exit.worst(failure.exit);
                errors.push((file.clone(), failure.message));
            }
        }
    }
    terminal::print_check_table(&rows);
    if let Some(path) = junit {
        std::fs::write(path, junit::render(&rows, &errors)).map_err(|e| {
            Failure::new(
                Exit::OutputFailed,
                format!("error: cannot write {}: {e}", path.display()),
            )
        })?;
    }
    Ok(exit)
}

fn plot_dir(dir: &Path) -> Result<Exit, Failure> {
    let drawn = if dir.join("sweep.json").is_file() {
        if !dir.join("points.csv").is_file() {
            return Err(Failure::new(
                Exit::BadInput,
                format!(
                    "error: {} is a sweep shard; merge the shards first (`prsm merge`)",
                    dir.display()
                ),
            ));
        }
        plot::plot_sweep_dir(dir)
    } else if dir.join("summary.json").is_file() {
        plot::plot_run_dir(dir)
    } else {
        return Err(Failure::new(
            Exit::BadInput,
            format!(
                "error: {} holds neither a run (summary.json) nor a sweep (sweep.json)",
                dir.display()
            ),
        ));
    };
    let drawn = drawn.map_err(|e| {
        Failure::new(
            Exit::BadInput,
            format!("error: cannot plot {}: {e:#}", dir.display()),
        )
    })?;
    for figure in drawn {
        say!("drew {}", dir.join(figure).display());
    }
    Ok(Exit::Success)
}

fn validate(files: &[PathBuf]) -> Result<Exit, Failure> {
    let mut exit = Exit::Success;
    for file in files {
        match scenario_file::load(file) {
            Ok(s) => say!(
                "ok {}: {} nodes, {} protocol, {} faults, {} expectations",
                file.display(),
                s.node_count(),
                export::protocol_name(&s),
                s.faults.len(),
                s.expect.len()
            ),
            Err(failure) => {
                warn!("{failure}");
                exit = exit.worst(failure.exit);
            }
        }
    }
    Ok(exit)
}

fn metrics(file: Option<&Path>) -> Result<Exit, Failure> {
    use prsm_sim::scenario::ProtocolConfig;
    let protocols = match file {
        Some(file) => vec![scenario_file::load(file)?.protocol],
        None => vec![
            ProtocolConfig::Gossip(Default::default()),
            ProtocolConfig::Relay { tokens_per_node: 1 },
            ProtocolConfig::Pbft(prsm_sim::scenario::PbftSettings::default()),
            ProtocolConfig::Swim(prsm_protocol::swim::SwimConfig::lan(2)),
            ProtocolConfig::Full(Box::new(prsm_sim::scenario::FullSettings {
                kad: Some(prsm_sim::scenario::KadSettings {
                    config: prsm_protocol::kademlia::KadConfig::kademlia(),
                    bootstrap: prsm_sim::scenario::nodeset_from_str("0"),
                }),
                swim: Some(prsm_protocol::swim::SwimConfig::lan(2)),
                local: Some(prsm_sim::scenario::LocalSettings {
                    config: prsm_protocol::local::LocalConfig::libp2p(),
                    site_size: 2,
                }),
                pbft: Some(prsm_sim::scenario::PbftSettings::default()),
                routing: Some(Default::default()),
                detection: Some(Default::default()),
                partition: Some(Default::default()),
                registry: Some(Default::default()),
                runs: Vec::new(),
                layered: true,
            })),
        ],
    };
    let mut names: Vec<String> = protocols.iter().flat_map(prsm_sim::catalog).collect();
    names.sort();
    names.dedup();
    for name in names {
        say!("{name}");
    }
    Ok(Exit::Success)
}

fn keygen(nodes: usize, out: &Path) -> Result<Exit, Failure> {
    if nodes == 0 {
        return Err(Failure::new(
            Exit::BadInput,
            "error: --nodes must be at least 1",
        ));
    }
    prsm::live::keys::keygen(out, nodes)
        .map_err(|e| Failure::new(Exit::BadInput, format!("error: {e}")))?;
    say!(
        "wrote {nodes} key files and the roster to {} (keep the key files secret)",
        out.display()
    );
    Ok(Exit::Success)
}

struct LiveNodeArgs<'a> {
    file: &'a Path,
    key: &'a Path,
    roster: &'a Path,
    listen: std::net::SocketAddr,
    peers: Option<&'a Path>,
    metrics_addr: Option<std::net::SocketAddr>,
    state: Option<PathBuf>,
    control: bool,
    seed: Option<u64>,
    incarnation: u32,
    log: &'a str,
}

/// `<id> <ip:port>` per line; `#` starts a comment.
fn read_peers(path: &Path, n: usize) -> Result<Vec<Option<std::net::SocketAddr>>, Failure> {
    let bad = |m: String| Failure::new(Exit::BadInput, m);
    let text = std::fs::read_to_string(path)
        .map_err(|e| bad(format!("error: cannot read {}: {e}", path.display())))?;
    let mut peers = vec![None; n];
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = format!("{}:{}", path.display(), i + 1);
        let mut parts = line.split_whitespace();
        let (Some(id), Some(addr), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad(format!(
                "error: {at}: expected `<id> <ip:port>`, found `{line}`"
            )));
        };
        let id: usize = id.parse().ok().filter(|&i| i < n).ok_or_else(|| {
            bad(format!(
                "error: {at}: `{id}` is not a node id of this roster (0 to {})",
                n.saturating_sub(1)
            ))
        })?;
        let addr = addr.parse().map_err(|e| {
            bad(format!(
                "error: {at}: `{addr}` is not an ip:port address ({e})"
            ))
        })?;
        peers[id] = Some(addr);
    }
    Ok(peers)
}

fn live_node(args: &LiveNodeArgs<'_>) -> Result<Exit, Failure> {
    use prsm::live::keys;
    use prsm_protocol::{Node, NodeId};
    use prsm_sim::kernel::{Seeds, Stream};
    use prsm_sim::model::Model;
    let bad = |m: String| Failure::new(Exit::BadInput, m);
    let level: tracing::Level = args.log.parse().map_err(|_| {
        bad(format!(
            "error: --log {}: use error, warn, info, debug or trace",
            args.log
        ))
    })?;
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let scenario = scenario_file::load(args.file)?;
    let settings = cluster::full_settings(&scenario).ok_or_else(|| {
        bad(format!(
            "error: {}: the live mode runs full nodes: describe them with `layers:`",
            args.file.display()
        ))
    })?;
    let keypair = keys::read_key_file(args.key).map_err(|e| bad(format!("error: {e}")))?;
    let roster = keys::read_roster(args.roster).map_err(|e| bad(format!("error: {e}")))?;
    let n = scenario.node_count() as usize;
    if roster.len() != n {
        return Err(bad(format!(
            "error: {}: the roster has {} keys but the scenario has {n} nodes; run `prsm keygen --nodes {n}`",
            args.roster.display(),
            roster.len()
        )));
    }
    let id = keys::roster_rank(&roster, &keypair.public()).ok_or_else(|| {
        bad(format!(
            "error: {}: this key is not in the roster {}",
            args.key.display(),
            args.roster.display()
        ))
    })?;
    let peers = match args.peers {
        Some(p) => read_peers(p, n)?,
        None => vec![None; n],
    };
    let seed = args.seed.unwrap_or(scenario.seed);
    let seeds = Seeds::new(seed);
    let model = prsm_sim::model::FullModel::new(
        &scenario,
        settings,
        &mut seeds.stream(Stream::Adversaries),
    );
    let me = NodeId(id);
    let broadcast: Vec<NodeId> = match model.broadcast_scope(me) {
        None => (0..n as u32).map(NodeId).filter(|&p| p != me).collect(),
        Some(range) => range.map(NodeId).filter(|&p| p != me).collect(),
    };
    let rng = seeds.stream(Stream::Node {
        index: id,
        incarnation: args.incarnation,
    });
    let limits = scenario.limits.node;
    let cfg = prsm::live::node::NodeConfig {
        id: me,
        keypair: std::sync::Arc::new(keypair),
        roster: std::sync::Arc::new(roster),
        listen: args.listen,
        peers,
        metrics_addr: args.metrics_addr,
        state_file: args.state.clone(),
        control: args.control,
        broadcast,
    };
    prsm::live::node::run(cfg, |durable| {
        Node::new(me, model.build(me, durable), rng, limits)
    })
    .map_err(|e| bad(format!("error: node {id}: {e}")))?;
    Ok(Exit::Success)
}

fn live_cluster(args: &cluster::ClusterArgs<'_>) -> Result<Exit, Failure> {
    let text = std::fs::read_to_string(args.file).map_err(|e| {
        Failure::new(
            Exit::BadInput,
            format!("error: cannot read {}: {e}", args.file.display()),
        )
    })?;
    let scenario = scenario_file::load(args.file)?;
    let problems = cluster::live_problems(args.file, &text, &scenario, args.nodes);
    if !problems.is_empty() {
        let lines: Vec<String> = problems.iter().map(|p| format!("error: {p}")).collect();
        return Err(Failure::new(Exit::BadInput, lines.join("\n")));
    }
    let seed = args.seed.unwrap_or(scenario.seed);
    let dir = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("reports").join(format!(
            "{}-live-s{seed}",
            export::safe_stem(&scenario.name)
        ))
    });
    if !args.quiet {
        say!(
            "prsm cluster: {} ({} node processes on loopback, {} of wall time)",
            scenario.name,
            scenario.node_count(),
            scenario.duration
        );
    }
    let run = cluster::run_cluster(args, &scenario, &dir)?;
    let verdicts = prsm_sim::judge(&scenario.expect, &run.output.metrics);
    let finished = Finished {
        output: run.output,
        verdicts,
        wall_s: run.wall_s,
    };
    write_outputs(&dir, args.file, &scenario, &finished, args.plots, true)?;
    if args.compare {
        let sim =
            prsm_sim::run(&scenario, seed).map_err(|e| limit_failure(&scenario.name, seed, &e))?;
        let sim_verdicts = prsm_sim::judge(&scenario.expect, &sim.metrics);
        let parity = cluster::parity(
            args.file,
            &scenario,
            &sim,
            &sim_verdicts,
            &finished.output,
            &finished.verdicts,
        );
        std::fs::write(dir.join("parity.md"), &parity.report).map_err(|e| {
            Failure::new(
                Exit::OutputFailed,
                format!(
                    "error: cannot write {}: {e}",
                    dir.join("parity.md").display()
                ),
            )
        })?;
        let expectations = |v: &[Verdict]| v.iter().filter(|v| v.pass).count();
        say!(
            "simulated with the same seed: {} of {} expectations hold (live: {}); PBFT decisions {}; see parity.md",
            expectations(&sim_verdicts),
            sim_verdicts.len(),
            expectations(&finished.verdicts),
            match parity.same_decisions {
                Some(true) => "identical, in the same order",
                Some(false) => "differ",
                None => "none",
            }
        );
    }
    say!("seed {seed}  live run (no trace hash)");
    if !args.quiet {
        terminal::print_metrics(&finished.output.metrics);
    }
    terminal::print_verdicts(&finished.verdicts);
    say!(
        "wall {:.3} s, {} events reported by the nodes",
        finished.wall_s,
        finished.output.events
    );
    say!("wrote {}", dir.display());
    let mut exit = if finished.verdicts.iter().all(|v| v.pass) {
        Exit::Success
    } else {
        Exit::ExpectationFailed
    };
    if let Some((code, line)) = export::violation_line(&finished.output, &scenario.name, args.file)
    {
        warn!("{line}");
        exit = exit.worst(code);
    }
    Ok(exit)
}
