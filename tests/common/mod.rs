//! Helpers shared by the end-to-end tests: run the binary, read its output, make scratch folders.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn prsm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prsm"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the prsm binary runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An empty scratch folder under the target directory, named for the test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("e2e")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs a committed scenario file (path from the repository root) with its own seed; returns the
/// output and the verdicts of its expectations.
pub fn run_scenario(path: &str) -> (prsm_sim::RunOutput, Vec<prsm_sim::Verdict>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let scenario =
        prsm_sim::load_str(&text).unwrap_or_else(|d| panic!("{}: {d:?}", path.display()));
    let output = prsm_sim::run(&scenario, scenario.seed).expect("the run finishes");
    let verdicts = prsm_sim::judge(&scenario.expect, &output.metrics);
    (output, verdicts)
}

/// A metric of a run, which must exist.
pub fn metric(output: &prsm_sim::RunOutput, name: &str) -> f64 {
    output
        .metrics
        .get(name)
        .unwrap_or_else(|| panic!("no metric {name}"))
}
