//! End-to-end tests of the `prsm` binary: exit codes, error messages, outputs, determinism.

mod common;

use std::path::{Path, PathBuf};

use common::{prsm, scratch, text};

fn write_scenario(name: &str, yaml: &str) -> PathBuf {
    let dir = scratch(name);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("scenario.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

const SMALL: &str = "name: small\nseed: 3\nduration: 5s\nnodes: [{ count: 20 }]\n\
protocol: { gossip: {} }\nworkload: { publish: { every: 1s } }\n";

#[test]
fn run_prints_seed_trace_and_rate_and_writes_outputs() {
    let out = scratch("run-outputs");
    let o = prsm(&[
        "run",
        "scenarios/quickstart.yaml",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}{}", text(&o.stderr));
    assert!(stdout.contains("seed 42  trace "), "{stdout}");
    assert!(stdout.contains("events/s"), "{stdout}");
    assert!(stdout.contains("gossip.coverage"), "{stdout}");
    for file in ["summary.json", "timeseries.csv", "deliveries.csv"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["seed"], 42);
    assert_eq!(summary["passed"], true);
    assert!(summary["metrics"]["gossip.coverage"].as_f64().unwrap() > 0.8);
    assert_eq!(summary["trace_hash"].as_str().unwrap().len(), 16);
}

#[test]
fn same_seed_gives_identical_bytes_and_another_seed_another_trace() {
    let (a, b, c) = (scratch("det-a"), scratch("det-b"), scratch("det-c"));
    for dir in [&a, &b] {
        let o = prsm(&[
            "run",
            "scenarios/quickstart.yaml",
            "--quiet",
            "--out",
            dir.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0));
    }
    for file in ["summary.json", "timeseries.csv", "deliveries.csv"] {
        let (x, y) = (
            std::fs::read(a.join(file)).unwrap(),
            std::fs::read(b.join(file)).unwrap(),
        );
        assert!(x == y, "{file} differs between two runs with the same seed");
    }
    let o = prsm(&[
        "run",
        "scenarios/quickstart.yaml",
        "--quiet",
        "--seed",
        "43",
        "--out",
        c.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let trace = |dir: &Path| {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
        v["trace_hash"].as_str().unwrap().to_owned()
    };
    assert_ne!(trace(&a), trace(&c));
    assert!(text(&o.stdout).contains("seed 43"));
}

#[test]
fn check_fails_with_exit_1_and_says_how_to_reproduce() {
    let path = write_scenario(
        "check-fail",
        &format!("{SMALL}expect:\n  - \"gossip.coverage < 0.5\"\n  - \"gossip.published >= 1\"\n"),
    );
    let o = prsm(&["check", path.to_str().unwrap()]);
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.contains("PASS"), "{stdout}");
    assert!(stdout.contains("reproduce: prsm run"), "{stdout}");
    assert!(stdout.contains("--seed 3"), "{stdout}");
}

#[test]
fn check_passes_with_exit_0() {
    let o = prsm(&["check", "scenarios/quickstart.yaml"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains("0 failed"));
}

#[test]
fn run_with_a_failed_expectation_exits_1() {
    let path = write_scenario(
        "run-fail",
        &format!("{SMALL}expect: [\"net.messages_sent == 0\"]\n"),
    );
    let out = scratch("run-fail-out");
    let o = prsm(&[
        "run",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        out.join("summary.json").is_file(),
        "outputs are written even when an expectation fails"
    );
}

/// Every file in tests/data/bad names, on its first line, the error it must produce.
#[test]
fn every_malformed_file_is_rejected_with_location_and_exit_2() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bad");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 30, "the corpus shrank");
    for file in files {
        let source = std::fs::read_to_string(&file).unwrap();
        let wanted = source
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("# error:")
            .trim()
            .to_owned();
        let shown = format!(
            "tests/data/bad/{}",
            file.file_name().unwrap().to_string_lossy()
        );
        for command in ["validate", "run", "check"] {
            let o = prsm(&[command, &shown]);
            let stderr = text(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{command} {shown}: {stderr}");
            assert!(!stderr.contains("panicked"), "{shown}: {stderr}");
            let located = format!("error: {shown}:");
            assert!(
                stderr.starts_with(&located),
                "{shown} has no file:line:column: {stderr}"
            );
            let position = stderr[located.len()..]
                .split(':')
                .take(2)
                .collect::<Vec<_>>();
            assert!(
                position
                    .iter()
                    .all(|p| p.parse::<u32>().is_ok_and(|x| x > 0)),
                "{shown}: {stderr}"
            );
            assert!(
                stderr.contains(&wanted),
                "{shown}: wanted `{wanted}` in: {stderr}"
            );
        }
    }
}

/// One very long line (250 KB) is echoed as a window of about 120 characters around the column,
/// not whole.
#[test]
fn a_long_offending_line_is_cut_around_the_column() {
    let path = write_scenario(
        "long-line",
        &format!(
            "name: bad\nseed: 1\nduration: 10s\nnodes: [{}{{ count: -1 }}, {}]\nprotocol: {{ gossip: {{}} }}\n",
            "{ count: 1 }, ".repeat(12_000),
            "{ count: 1 }, ".repeat(6_000),
        ),
    );
    let o = prsm(&["validate", path.to_str().unwrap()]);
    let stderr = text(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        stderr.chars().take(500).collect::<String>()
    );
    assert!(stderr.len() < 600, "{} bytes of error", stderr.len());
    let shown = stderr.lines().nth(2).unwrap();
    assert!(shown.contains("{ count: -1 }"), "{shown}");
    assert!(shown.contains('…'), "{shown}");
    // The caret sits under the `-`.
    let caret = stderr
        .lines()
        .nth(3)
        .unwrap()
        .chars()
        .position(|c| c == '^');
    assert_eq!(
        caret.and_then(|k| shown.chars().nth(k)),
        Some('-'),
        "{stderr}"
    );
}

#[test]
fn usage_errors_and_missing_files_exit_2() {
    let o = prsm(&["run", "no/such/file.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("cannot read no/such/file.yaml"));
    assert_eq!(
        prsm(&["run", "scenarios/quickstart.yaml", "--seed", "many"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(prsm(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(prsm(&["validate"]).status.code(), Some(2));
    let binary = write_scenario("binary", "");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x41]).unwrap();
    let o = prsm(&["validate", binary.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("UTF-8"));
    // An endless device must not hang the reader.
    if Path::new("/dev/zero").exists() {
        let o = prsm(&["validate", "/dev/zero"]);
        assert_eq!(o.status.code(), Some(2));
        assert!(text(&o.stderr).contains("limited"));
    }
    assert_eq!(prsm(&["validate", "scenarios"]).status.code(), Some(2));
}

#[test]
fn a_run_stopped_by_a_limit_exits_5() {
    let path = write_scenario(
        "stall",
        "name: stall\nseed: 1\nduration: 1s\nnodes: [{ count: 4 }]\n\
         network: { latency: { constant: { one_way: 0 } } }\n\
         protocol: { relay: { tokens_per_node: 1 } }\nlimits: { events_per_instant_max: 1000 }\n",
    );
    let o = prsm(&[
        "run",
        path.to_str().unwrap(),
        "--out",
        scratch("stall-out").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(5));
    assert!(text(&o.stderr).contains("virtual time stopped advancing"));
    let path = write_scenario(
        "event-limit",
        "name: limit\nseed: 1\nduration: 10s\nnodes: [{ count: 4 }]\n\
         protocol: { relay: { tokens_per_node: 1 } }\nlimits: { events_max: 100 }\n",
    );
    let o = prsm(&[
        "run",
        path.to_str().unwrap(),
        "--out",
        scratch("limit-out").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(5));
    assert!(text(&o.stderr).contains("events_max"));
}

#[test]
fn validate_accepts_every_committed_scenario() {
    let mut files = Vec::new();
    for dir in ["scenarios", "scenarios/bench", "scenarios/sweeps"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        for entry in std::fs::read_dir(&dir).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path.to_string_lossy().into_owned());
            }
        }
    }
    assert!(!files.is_empty());
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let o = prsm(&args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
}

#[test]
fn metrics_lists_the_catalog() {
    let o = prsm(&["metrics", "scenarios/quickstart.yaml"]);
    assert_eq!(o.status.code(), Some(0));
    let stdout = text(&o.stdout);
    assert!(stdout.lines().any(|l| l == "gossip.coverage"));
    assert!(stdout.lines().any(|l| l == "net.latency_ms.p99"));
}

#[test]
fn a_closed_stdout_is_not_a_panic() {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_prsm"))
        .args(["run", "scenarios/quickstart.yaml", "--no-plots", "--out"])
        .arg(scratch("closed-stdout"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before the run prints, as `prsm run ... | head -1` would.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );
    assert!(matches!(out.status.code(), Some(0 | 6)), "{:?}", out.status);
}
