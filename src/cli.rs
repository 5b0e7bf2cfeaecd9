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
        /// Output folder [default: reports/<scenario name>-s<seed>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print only the seed, trace hash and verdicts.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Run scenarios and fail (exit 1) if any expectation fails.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Override every scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Check scenario files without running them.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the metrics a scenario publishes (usable in `expect:`), or every metric.
    Metrics { file: Option<PathBuf> },
}
