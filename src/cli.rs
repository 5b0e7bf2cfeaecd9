//! The command line, as clap derives it. Parsing only: validation happens when scenarios load.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "prsm",
    version,
    about = "Deterministic discrete-event simulator for peer-to-peer AI networks",
    after_help = "Exit codes: 0 success, 1 an expectation failed, 2 bad input or usage, \
3 safety violation, 4 liveness failure, 5 a run limit stopped the run, 6 could not write output."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one scenario and write summary.json and CSV files.
    Run {
        /// The scenario file (YAML).
        file: PathBuf,
        /// Override the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Run point N of the file's `sweep:` grid instead of the base scenario (as numbered in
        /// the sweep's runs.csv).
        #[arg(long, value_name = "N")]
        point: Option<usize>,
        /// Output folder [default: reports/<scenario name>-s<seed>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print only the seed, trace hash and verdicts; no progress.
        #[arg(long, short)]
        quiet: bool,
        /// Do not draw plots.
        #[arg(long)]
        no_plots: bool,
    },
    /// Run scenarios and fail (exit 1) if any expectation fails.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Override every scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Also write the results as JUnit XML to this file.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Write each run's outputs (as `prsm run` does) here; with several files, into one
        /// subfolder per scenario, <scenario name>-s<seed>.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// No progress; print only the verdict table and failures.
        #[arg(long, short)]
        quiet: bool,
        /// With --out: do not draw plots.
        #[arg(long)]
        no_plots: bool,
    },
    /// Run a scenario's `sweep:` grid over its seeds, in parallel; write runs.csv, points.csv,
    /// plots and report.md.
    Sweep {
        file: PathBuf,
        /// Output folder [default: reports/<scenario name>-sweep].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Run only shard i of n (runs whose number is i-1 modulo n); combine with `prsm merge`.
        #[arg(long, value_name = "i/n", value_parser = crate::sweep::parse_shard)]
        shard: Option<crate::sweep::ShardInfo>,
        /// Worker threads [default: one per core]. Results do not depend on it.
        #[arg(long, short)]
        jobs: Option<usize>,
        /// No progress bar or header.
        #[arg(long, short)]
        quiet: bool,
        /// Exit 1 if any run fails an expectation (a gate for CI); without it a sweep that
        /// finished exits 0 whatever its runs measured.
        #[arg(long)]
        strict: bool,
        /// Do not draw plots.
        #[arg(long)]
        no_plots: bool,
    },
    /// Combine the folders of every shard of a sweep into the files the unsharded sweep writes.
    Merge {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Output folder.
        #[arg(long, required = true)]
        out: PathBuf,
        /// Do not draw plots.
        #[arg(long)]
        no_plots: bool,
    },
    /// Redraw the plots of a run or sweep folder from its CSV files.
    Plot { dir: PathBuf },
    /// Check scenario files without running them.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the metrics a scenario publishes (usable in `expect:`), or every metric.
    Metrics { file: Option<PathBuf> },
    /// Write ed25519 key files for N live nodes (node-<id>.key) and their roster; a node's id
    /// is its public key's rank in the roster.
    Keygen {
        /// How many keys.
        #[arg(long)]
        nodes: usize,
        /// The folder to write (must not hold keys already).
        #[arg(long)]
        out: PathBuf,
    },
    /// Run one node of a scenario live on a real socket (its role's layers, from the file).
    Node {
        /// The scenario file (YAML, with `layers:`); the node plays the node whose id is its
        /// key's rank in the roster.
        file: PathBuf,
        /// This node's key file (from `prsm keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The roster of every node's public key (from `prsm keygen`).
        #[arg(long)]
        roster: PathBuf,
        /// The address to accept frames on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// A file of peer addresses, one `<id> <ip:port>` per line.
        #[arg(long, value_name = "FILE")]
        peers: Option<PathBuf>,
        /// Serve Prometheus text metrics over HTTP on this address.
        #[arg(long, value_name = "ADDR")]
        metrics_addr: Option<std::net::SocketAddr>,
        /// The durable-state file: written on every persist, read back on start.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// Take orders on stdin and report events on stdout, as JSON lines (how `prsm cluster`
        /// drives its nodes); the protocol starts at the first `Peers` order.
        #[arg(long)]
        control: bool,
        /// The master seed the node's random stream derives from [default: the scenario's].
        #[arg(long)]
        seed: Option<u64>,
        /// How many times this node has restarted (a new random stream for each).
        #[arg(long, default_value_t = 0)]
        incarnation: u32,
        /// Log level on stderr: error, warn, info, debug or trace.
        #[arg(long, default_value = "info")]
        log: String,
    },
    /// Run a scenario live: N `prsm node` processes on loopback, with the scenario's workload
    /// and faults (crash = kill -9, restart from durable state, partitions by drop rules), and
    /// write the same outputs as `prsm run`.
    Cluster {
        /// The scenario file (YAML, with `layers:`).
        file: PathBuf,
        /// How many node processes: must be the scenario's node count (validators and clients
        /// alike) [default: the scenario's node count].
        #[arg(long)]
        nodes: Option<u32>,
        /// Output folder [default: reports/<scenario name>-live-s<seed>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override the scenario's seed (workload, fault draws, node random streams).
        #[arg(long)]
        seed: Option<u64>,
        /// Print only the verdicts; no progress lines.
        #[arg(long, short)]
        quiet: bool,
        /// Do not draw plots.
        #[arg(long)]
        no_plots: bool,
        /// Do not also simulate the scenario and write parity.md (live against simulated:
        /// expectations, PBFT decisions, latency distributions).
        #[arg(long)]
        no_compare: bool,
    },
    /// Measure every claim about the network (scenarios/claims/) and judge each on its 95 %
    /// confidence interval; write claims.md, claims.csv, claims.json and plots; exit 1 if a claim
    /// the baseline records as holding no longer holds.
    Claims {
        /// Only the CI-sized subset (small networks; about two minutes of CPU).
        #[arg(long)]
        quick: bool,
        /// Only this claim, row (e.g. `scale`) or prefix (e.g. `discovery`); repeatable.
        #[arg(long, value_name = "NAME")]
        only: Vec<String>,
        /// Worker threads [default: one per core]. Results do not depend on it.
        #[arg(long, short)]
        jobs: Option<usize>,
        /// Output folder.
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        /// The folder of claim files.
        #[arg(long, value_name = "DIR", default_value = "scenarios/claims")]
        claims_dir: PathBuf,
        /// The baseline to gate against [default: <out>/claims-baseline.json, if present].
        #[arg(long, value_name = "FILE")]
        baseline: Option<PathBuf>,
        /// No progress bar or header.
        #[arg(long, short)]
        quiet: bool,
        /// Do not draw plots.
        #[arg(long)]
        no_plots: bool,
    },
}
