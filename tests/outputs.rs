//! Output tests: sweeps are independent of the thread count, shards merge into the unsharded
//! files, CSV headers are pinned by snapshot, every plot kind renders a real image, `prsm plot`
//! redraws the same bytes, and `prsm check --junit` writes a JUnit report.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{prsm, scratch, text};

fn ok(args: &[&str]) -> Output {
    let o = prsm(args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "prsm {args:?}\n{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    o
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A small two-axis sweep: 3 node counts x 2 fanouts x 3 seeds = 18 runs.
const SWEEP: &str = "name: tiny-sweep\nseed: 5\nduration: 3s\nnodes: [{ count: 10 }]\n\
    network: { loss: 0.05 }\nprotocol: { gossip: {} }\nworkload: { publish: { every: 250ms } }\n\
    expect: [\"gossip.coverage >= 0.9\"]\n\
    sweep:\n  seeds: 3\n  axes:\n    - { path: nodes.0.count, values: [5, 10, 20] }\n    - { path: protocol.gossip.fanout, values: [2, 3] }\n  plot: [gossip.latency_ms.p50, gossip.coverage]\n";

fn sweep_file(name: &str, yaml: &str) -> PathBuf {
    let dir = scratch(name);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sweep.yaml");
    std::fs::write(&file, yaml).unwrap();
    file
}

/// Every file of `a` exists in `b` with the same bytes, and vice versa.
fn assert_same_files(a: &Path, b: &Path) {
    let names = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(a),
        names(b),
        "different files in {} and {}",
        a.display(),
        b.display()
    );
    for name in names(a) {
        let (x, y) = (
            std::fs::read(a.join(&name)).unwrap(),
            std::fs::read(b.join(&name)).unwrap(),
        );
        assert!(
            x == y,
            "{name} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

#[test]
fn sweep_results_do_not_depend_on_the_thread_count() {
    let file = sweep_file("threads", SWEEP);
    let (one, three) = (scratch("threads-1"), scratch("threads-3"));
    ok(&[
        "sweep",
        s(&file),
        "--jobs",
        "1",
        "--quiet",
        "--out",
        s(&one),
    ]);
    ok(&[
        "sweep",
        s(&file),
        "--jobs",
        "3",
        "--quiet",
        "--out",
        s(&three),
    ]);
    assert_same_files(&one, &three);
    let runs = std::fs::read_to_string(one.join("runs.csv")).unwrap();
    assert_eq!(runs.lines().count(), 1 + 18);
}

#[test]
fn three_shards_merge_into_the_unsharded_files() {
    let file = sweep_file("shards", SWEEP);
    let whole = scratch("shards-whole");
    ok(&["sweep", s(&file), "--quiet", "--out", s(&whole)]);
    let shards: Vec<PathBuf> = (1..=3).map(|i| scratch(&format!("shard-{i}"))).collect();
    for (i, dir) in shards.iter().enumerate() {
        ok(&[
            "sweep",
            s(&file),
            "--quiet",
            "--shard",
            &format!("{}/3", i + 1),
            "--out",
            s(dir),
        ]);
        assert!(
            !dir.join("points.csv").exists(),
            "a shard writes only its runs"
        );
    }
    let merged = scratch("shards-merged");
    // Shards may be given in any order.
    ok(&[
        "merge",
        s(&shards[2]),
        s(&shards[0]),
        s(&shards[1]),
        "--out",
        s(&merged),
    ]);
    assert_same_files(&whole, &merged);
}

#[test]
fn merge_refuses_incomplete_or_mixed_shards() {
    let file = sweep_file("bad-merge", SWEEP);
    let (a, b) = (scratch("bad-merge-1"), scratch("bad-merge-2"));
    ok(&[
        "sweep",
        s(&file),
        "--quiet",
        "--shard",
        "1/2",
        "--out",
        s(&a),
    ]);
    ok(&[
        "sweep",
        s(&file),
        "--quiet",
        "--shard",
        "2/2",
        "--out",
        s(&b),
    ]);
    let out = scratch("bad-merge-out");
    let o = prsm(&["merge", s(&a), "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("shard 2/2 is missing"),
        "{}",
        text(&o.stderr)
    );
    let o = prsm(&["merge", s(&a), s(&a), "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    let other = sweep_file("other-sweep", &SWEEP.replace("seed: 5", "seed: 6"));
    let c = scratch("bad-merge-3");
    ok(&[
        "sweep",
        s(&other),
        "--quiet",
        "--shard",
        "2/2",
        "--out",
        s(&c),
    ]);
    let o = prsm(&["merge", s(&a), s(&c), "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("another sweep"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        prsm(&["sweep", s(&file), "--shard", "4/3"]).status.code(),
        Some(2)
    );
    assert_eq!(
        prsm(&["sweep", s(&file), "--shard", "x"]).status.code(),
        Some(2)
    );
}

#[test]
fn a_sweep_with_a_bad_axis_is_rejected_before_running() {
    let file = sweep_file(
        "bad-axis",
        &SWEEP.replace(
            "protocol.gossip.fanout, values: [2, 3]",
            "protocol.gossip.fanot, values: [2, 3]",
        ),
    );
    let o = prsm(&[
        "sweep",
        s(&file),
        "--quiet",
        "--out",
        s(&scratch("bad-axis-out")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("fanot"), "{}", text(&o.stderr));
    let no_sweep = prsm(&["sweep", "scenarios/quickstart.yaml", "--quiet"]);
    assert_eq!(no_sweep.status.code(), Some(2));
    assert!(text(&no_sweep.stderr).contains("no `sweep:` block"));
}

/// Compares (or with UPDATE_SNAPSHOTS=1 rewrites) a snapshot under tests/snapshots.
fn snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "snapshot {name} changed (rerun with UPDATE_SNAPSHOTS=1 if intended):\n--- expected\n{expected}\n--- actual\n{actual}"
    );
}

fn header(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn csv_headers_and_column_order_are_pinned() {
    let run = scratch("headers-run");
    ok(&[
        "run",
        "scenarios/quickstart.yaml",
        "--quiet",
        "--no-plots",
        "--out",
        s(&run),
    ]);
    let pbft = scratch("headers-pbft");
    ok(&[
        "run",
        "scenarios/pbft/n4.yaml",
        "--quiet",
        "--no-plots",
        "--out",
        s(&pbft),
    ]);
    let file = sweep_file("headers", SWEEP);
    let sweep = scratch("headers-sweep");
    ok(&[
        "sweep",
        s(&file),
        "--quiet",
        "--no-plots",
        "--out",
        s(&sweep),
    ]);
    let mut lines = String::new();
    for (dir, name) in [
        (&run, "timeseries.csv"),
        (&run, "deliveries.csv"),
        (&run, "faults.csv"),
        (&run, "latency_cdf.csv"),
        (&pbft, "timeseries.csv"),
        (&pbft, "requests.csv"),
        (&sweep, "runs.csv"),
        (&sweep, "points.csv"),
    ] {
        let label = if dir == &pbft {
            format!("pbft {name}")
        } else {
            name.to_owned()
        };
        lines.push_str(&format!("{label}: {}\n", header(&dir.join(name))));
    }
    snapshot("csv_headers.txt", &lines);
}

/// A PNG of the expected size with real content: not blank, several colours.
fn assert_real_png(path: &Path) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    assert_eq!(img.dimensions(), (1200, 800), "{}", path.display());
    let non_white = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    assert!(
        non_white > 1200 * 800 / 50,
        "{} is nearly blank ({non_white} inked pixels)",
        path.display()
    );
    let mut colours: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(
        colours.len() > 10,
        "{} has only {} colours",
        path.display(),
        colours.len()
    );
}

fn assert_real_svg(path: &Path, must_mention: &[&str]) {
    let svg = std::fs::read_to_string(path).unwrap();
    assert!(
        svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
        "{}",
        path.display()
    );
    for word in must_mention {
        assert!(
            svg.contains(word),
            "{} does not mention `{word}`",
            path.display()
        );
    }
}

#[test]
fn every_plot_kind_renders_a_real_image() {
    // Latency CDF and time series with fault windows, from a run.
    let run = scratch("plots-run");
    ok(&[
        "run",
        "scenarios/quickstart.yaml",
        "--quiet",
        "--out",
        s(&run),
    ]);
    assert_real_png(&run.join("latency_cdf.png"));
    assert_real_png(&run.join("timeseries.png"));
    assert_real_svg(
        &run.join("latency_cdf.svg"),
        &["Latency CDF", "latency (ms"],
    );
    assert_real_svg(
        &run.join("timeseries.svg"),
        &[
            "Throughput over time",
            "virtual time (s)",
            "network partitioned",
        ],
    );
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("![timeseries.png](timeseries.png)")
            && report.contains("| `gossip.coverage >= 0.85` |")
    );

    // A metric against two swept parameters (one line per fanout) with confidence bands.
    let file = sweep_file("plots-sweep", SWEEP);
    let sweep = scratch("plots-sweep-out");
    ok(&["sweep", s(&file), "--quiet", "--out", s(&sweep)]);
    assert_real_png(&sweep.join("sweep-gossip_latency_ms_p50.png"));
    assert_real_svg(
        &sweep.join("sweep-gossip_latency_ms_p50.svg"),
        &[
            "Scaling curve",
            "protocol.gossip.fanout = 2",
            "protocol.gossip.fanout = 3",
        ],
    );
    let report = std::fs::read_to_string(sweep.join("report.md")).unwrap();
    assert!(report.contains("![sweep-gossip_coverage.png](sweep-gossip_coverage.png)"));

    // A failure-fraction curve.
    let crash = sweep_file(
        "plots-crash",
        "name: crash\nseed: 1\nduration: 4s\nnodes: [{ count: 30 }]\nprotocol: { gossip: {} }\n\
         workload: { publish: { every: 250ms, start: 1500ms } }\nfaults: [{ at: 1s, crash: \"random:10%\" }]\n\
         sweep:\n  seeds: 2\n  axes: [{ path: faults.0.crash, values: [\"random:10%\", \"random:30%\", \"random:50%\"] }]\n  plot: [gossip.coverage]\n",
    );
    let crash_out = scratch("plots-crash-out");
    ok(&["sweep", s(&crash), "--quiet", "--out", s(&crash_out)]);
    assert_real_png(&crash_out.join("sweep-gossip_coverage.png"));
    assert_real_svg(
        &crash_out.join("sweep-gossip_coverage.svg"),
        &["Failure-fraction curve", "nodes crashed, %"],
    );
}

#[test]
fn plot_redraws_the_same_images_from_the_csvs() {
    let run = scratch("redraw");
    ok(&[
        "run",
        "scenarios/quickstart.yaml",
        "--quiet",
        "--out",
        s(&run),
    ]);
    let original = std::fs::read(run.join("timeseries.png")).unwrap();
    std::fs::remove_file(run.join("timeseries.png")).unwrap();
    let o = ok(&["plot", s(&run)]);
    assert!(text(&o.stdout).contains("timeseries.png"));
    assert!(std::fs::read(run.join("timeseries.png")).unwrap() == original);
    let o = prsm(&["plot", s(&scratch("nothing-here"))]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn run_without_plots_writes_no_images() {
    let run = scratch("no-plots");
    ok(&[
        "run",
        "scenarios/quickstart.yaml",
        "--quiet",
        "--no-plots",
        "--out",
        s(&run),
    ]);
    assert!(!run.join("timeseries.png").exists());
    assert!(run.join("report.md").exists());
}

#[test]
fn check_writes_junit_xml() {
    let dir = scratch("junit");
    std::fs::create_dir_all(&dir).unwrap();
    let failing = dir.join("failing.yaml");
    std::fs::write(
        &failing,
        "name: failing\nseed: 9\nduration: 2s\nnodes: [{ count: 5 }]\nprotocol: { gossip: {} }\n\
         workload: { publish: { every: 500ms } }\nexpect: [\"gossip.published > 1000\", \"gossip.published >= 1\"]\n",
    )
    .unwrap();
    let xml_path = dir.join("results.xml");
    let o = prsm(&[
        "check",
        "scenarios/quickstart.yaml",
        s(&failing),
        "tests/data/bad/unknown-key.yaml",
        "--junit",
        s(&xml_path),
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "bad input outranks a failed expectation"
    );
    let xml = std::fs::read_to_string(&xml_path).unwrap();
    assert!(xml.starts_with("<?xml"));
    assert!(
        xml.contains("<testsuites name=\"prsm check\" tests=\"10\" failures=\"1\" errors=\"1\">"),
        "{xml}"
    );
    assert!(xml.contains("name=\"gossip.published &gt; 1000\""), "{xml}");
    assert!(xml.contains("reproduce: prsm run"), "{xml}");
    assert!(xml.contains("--seed 9"), "{xml}");
    assert!(xml.contains("<error message="), "{xml}");
    assert_eq!(
        xml.matches("<testsuite ").count(),
        xml.matches("</testsuite>").count()
    );
}

/// Two node counts x 2 seeds; the 20-node point fails `nodes.total <= 10` on every seed.
const HALF_FAILING: &str = "name: half-failing\nseed: 5\nduration: 2s\nnodes: [{ count: 10 }]\n\
    protocol: { gossip: {} }\nworkload: { publish: { every: 250ms } }\n\
    expect: [\"nodes.total <= 10\", \"gossip.published >= 1\"]\n\
    sweep:\n  seeds: 2\n  axes:\n    - { path: nodes.0.count, values: [5, 20] }\n";

#[test]
fn sweep_strict_exits_1_when_a_run_fails_and_names_the_runs_and_a_command_to_reproduce() {
    let file = sweep_file("strict", HALF_FAILING);
    let out = scratch("strict-out");
    // Without --strict the sweep explores: exit 0, yet it says which runs failed.
    let lax = ok(&["sweep", s(&file), "--no-plots", "--out", s(&out)]);
    let strict = prsm(&[
        "sweep",
        s(&file),
        "--no-plots",
        "--strict",
        "--out",
        s(&out),
    ]);
    assert_eq!(strict.status.code(), Some(1), "{}", text(&strict.stderr));
    for o in [&lax, &strict] {
        let stdout = text(&o.stdout);
        assert!(
            stdout.contains("4 runs: 2 met every expectation, 2 did not"),
            "{stdout}"
        );
        assert!(
            stdout.contains("  run 2 (point 1: nodes.0.count=20, seed 5): failed an expectation")
                && stdout
                    .contains("  run 3 (point 1: nodes.0.count=20, seed 6): failed an expectation"),
            "{stdout}"
        );
        assert!(!stdout.contains("run 0 ("), "{stdout}");
        assert!(
            stdout.contains(&format!(
                "reproduce: prsm run {} --point 1 --seed 5",
                s(&file)
            )),
            "{stdout}"
        );
    }
    // The command reproduces run 2: the same trace, and the same failure.
    let runs = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    let run2: Vec<&str> = runs.lines().nth(3).unwrap().split(',').collect();
    assert_eq!(&run2[..3], ["2", "1", "20"], "{runs}");
    let again = scratch("strict-again");
    let o = prsm(&[
        "run",
        s(&file),
        "--point",
        "1",
        "--seed",
        "5",
        "--quiet",
        "--no-plots",
        "--out",
        s(&again),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains(&format!("trace {}", run2[4])),
        "{}\n{runs}",
        text(&o.stdout)
    );
    let o = prsm(&["run", s(&file), "--point", "2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("has points 0 to 1"),
        "{}",
        text(&o.stderr)
    );

    // A sweep whose runs all pass is not held back by --strict.
    let passing = sweep_file(
        "strict-pass",
        &HALF_FAILING.replace("values: [5, 20]", "values: [5, 10]"),
    );
    ok(&[
        "sweep",
        s(&passing),
        "--no-plots",
        "--strict",
        "--quiet",
        "--out",
        s(&scratch("strict-pass-out")),
    ]);
}

#[test]
fn points_csv_and_the_report_count_the_runs_passing_every_expectation() {
    let file = sweep_file("passing-column", HALF_FAILING);
    let out = scratch("passing-column-out");
    ok(&["sweep", s(&file), "--no-plots", "--quiet", "--out", s(&out)]);
    let points = std::fs::read_to_string(out.join("points.csv")).unwrap();
    let header: Vec<&str> = points.lines().next().unwrap().split(',').collect();
    let at = header
        .iter()
        .position(|h| *h == "runs_passing")
        .expect("a runs_passing column");
    for line in points.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let expected = if cells[1] == "5" { "2" } else { "0" };
        assert_eq!(cells[at], expected, "{line}");
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("| runs | runs passing |"), "{report}");
    assert!(
        report.contains(
            "`runs passing`: runs of the point whose every expectation held, of all its runs"
        ),
        "{report}"
    );
    assert!(
        report.contains("| 2/2 |") && report.contains("| 0/2 |"),
        "{report}"
    );
}

/// `prsm` with an environment variable set.
fn prsm_env(args: &[&str], key: &str, value: &str) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_prsm"))
        .args(args)
        .env(key, value)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn check_keeps_its_outputs_with_out_one_folder_per_scenario() {
    let out = scratch("check-out");
    let o = ok(&[
        "check",
        "scenarios/quickstart.yaml",
        "scenarios/pbft/n4.yaml",
        "--no-plots",
        "--out",
        s(&out),
    ]);
    let stdout = text(&o.stdout);
    for dir in ["quickstart-s42", "pbft-n4-s1"] {
        let dir = out.join(dir);
        for file in ["summary.json", "timeseries.csv", "report.md"] {
            assert!(
                dir.join(file).is_file(),
                "{}/{file} missing; {stdout}",
                dir.display()
            );
        }
        assert!(
            stdout.contains(&format!("wrote {}", dir.display())),
            "{stdout}"
        );
    }
    // The same bytes as `prsm run` writes.
    let single = scratch("check-out-single");
    let run = scratch("check-out-run");
    ok(&[
        "check",
        "scenarios/pbft/n4.yaml",
        "--quiet",
        "--no-plots",
        "--out",
        s(&single),
    ]);
    ok(&[
        "run",
        "scenarios/pbft/n4.yaml",
        "--quiet",
        "--no-plots",
        "--out",
        s(&run),
    ]);
    assert_same_files(&single, &run);
    // The same scenario twice gets two folders.
    let twice = scratch("check-out-twice");
    ok(&[
        "check",
        "scenarios/pbft/n4.yaml",
        "scenarios/pbft/n4.yaml",
        "--quiet",
        "--no-plots",
        "--out",
        s(&twice),
    ]);
    assert!(twice.join("pbft-n4-s1/summary.json").is_file());
    assert!(twice.join("pbft-n4-s1-2/summary.json").is_file());
}

#[test]
fn progress_lines_go_to_a_non_terminal_stderr_unless_quiet_and_change_no_output() {
    // The quickstart processes several times the 65,536 events between progress reports; with
    // lines due every 0 ms, each report prints one.
    let (a, b) = (scratch("progress-a"), scratch("progress-b"));
    let every = "PRSM_PROGRESS_EVERY_MS";
    let loud = prsm_env(
        &[
            "run",
            "scenarios/quickstart.yaml",
            "--no-plots",
            "--out",
            s(&a),
        ],
        every,
        "0",
    );
    let stderr = text(&loud.stderr);
    assert_eq!(loud.status.code(), Some(0), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("progress: quickstart (seed 42): ")
                && l.contains(" of 60s virtual time (")
                && l.contains(" events, ")),
        "{stderr}"
    );
    let quiet = prsm_env(
        &[
            "run",
            "scenarios/quickstart.yaml",
            "--no-plots",
            "--quiet",
            "--out",
            s(&b),
        ],
        every,
        "0",
    );
    assert!(
        !text(&quiet.stderr).contains("progress:"),
        "{}",
        text(&quiet.stderr)
    );
    assert_same_files(&a, &b);
    // A check prints them too, and --quiet silences it.
    let check = prsm_env(&["check", "scenarios/quickstart.yaml"], every, "0");
    assert!(
        text(&check.stderr).contains("progress: quickstart"),
        "{}",
        text(&check.stderr)
    );
    let check = prsm_env(
        &["check", "scenarios/quickstart.yaml", "--quiet"],
        every,
        "0",
    );
    assert!(
        !text(&check.stderr).contains("progress:"),
        "{}",
        text(&check.stderr)
    );
    // A sweep counts runs and virtual time, including that of runs still going.
    let quickstart = std::fs::read_to_string("scenarios/quickstart.yaml").unwrap();
    let file = sweep_file(
        "progress-sweep",
        &format!("{quickstart}\nsweep:\n  seeds: 2\n"),
    );
    let o = prsm_env(
        &[
            "sweep",
            s(&file),
            "--no-plots",
            "--jobs",
            "1",
            "--out",
            s(&scratch("progress-sweep-out")),
        ],
        every,
        "0",
    );
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("progress: 0 of 2 runs finished, ")),
        "no line from inside a run: {stderr}"
    );
    assert!(stderr.contains("% of virtual time, "), "{stderr}");
}

/// A finished sweep folder written by hand (as `prsm merge` reads one back): one axis, four
/// seeds, `gossip.coverage` (a share) and `net.messages_lost` (a count) per run.
fn hand_made_sweep(name: &str, axis: &[&str], coverage: &[[f64; 4]]) -> PathBuf {
    let dir = scratch(name);
    std::fs::create_dir_all(&dir).unwrap();
    let values: Vec<String> = axis.iter().map(|v| format!("\"{v}\"")).collect();
    let manifest = format!(
        "{{\"prsm_version\":\"0\",\"scenario\":\"hand\",\"description\":\"\",\"file\":\"hand.yaml\",\
         \"axes\":[{{\"path\":\"protocol.gossip.fanout\",\"values\":[{}]}}],\"seeds\":[1,2,3,4],\
         \"points\":{},\"runs\":{},\"metrics\":[\"gossip.coverage\",\"net.messages_lost\"],\
         \"plot\":[\"gossip.coverage\"],\"expect\":[],\"shard\":null}}",
        values.join(","),
        axis.len(),
        axis.len() * 4
    );
    std::fs::write(dir.join("sweep.json"), manifest).unwrap();
    let mut runs = String::from(
        "run,point,protocol.gossip.fanout,seed,trace_hash,status,passed,gossip.coverage,net.messages_lost\n",
    );
    for (point, seeds) in coverage.iter().enumerate() {
        for (k, c) in seeds.iter().enumerate() {
            let lost = if k == 3 { 9 } else { 0 };
            runs.push_str(&format!(
                "{},{point},{},{},0000000000000000,ok,1,{c},{lost}\n",
                point * 4 + k,
                axis[point],
                k + 1
            ));
        }
    }
    std::fs::write(dir.join("runs.csv"), runs).unwrap();
    dir
}

/// `(label, x, y)` of every `<text>` in an SVG plotters wrote.
fn svg_texts(svg: &str) -> Vec<(String, String, f64)> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let (attrs, rest) = t.split_once('>')?;
            let attr = |name: &str| {
                attrs
                    .split(&format!(" {name}=\""))
                    .nth(1)
                    .and_then(|a| a.split('"').next())
                    .map(str::to_owned)
            };
            let label = rest.split("</text>").next()?.trim().to_owned();
            Some((label, attr("text-anchor")?, attr("y")?.parse().ok()?))
        })
        .collect()
}

/// Shares near 1: Student's t interval would pass 1 (and a count's would pass below 0); in
/// points.csv every interval stays within the metric's range, and runs that all gave 1 get
/// Wilson's interval rather than the single point 1.
#[test]
fn sweep_intervals_of_shares_stay_within_0_and_1() {
    let dir = hand_made_sweep(
        "bounded-ci",
        &["2", "3"],
        &[[0.99, 1.0, 0.97, 1.0], [1.0, 1.0, 1.0, 1.0]],
    );
    let out = scratch("bounded-ci-out");
    ok(&["merge", s(&dir), "--no-plots", "--out", s(&out)]);
    let points = std::fs::read_to_string(out.join("points.csv")).unwrap();
    let mut checked = 0;
    for line in points.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (metric, mean, sd, low, high) = (
            f[2],
            f[4].parse::<f64>().unwrap(),
            f[5].parse::<f64>().unwrap(),
            f[6].parse::<f64>().unwrap(),
            f[7].parse::<f64>().unwrap(),
        );
        let t_half = 3.182 * sd / 2.0;
        match metric {
            "gossip.coverage" => {
                assert!(
                    (0.0..=1.0).contains(&low) && (0.0..=1.0).contains(&high),
                    "{line}"
                );
                if sd > 0.0 {
                    assert!(
                        mean + t_half > 1.0,
                        "the case needs a t interval past 1: {line}"
                    );
                    assert_eq!(high, 1.0, "{line}");
                } else {
                    assert!(low < 0.8 && high == 1.0, "Wilson for 4 of 4: {line}");
                }
                checked += 1;
            }
            "net.messages_lost" => {
                assert!(
                    mean - t_half < 0.0,
                    "the case needs a t interval below 0: {line}"
                );
                assert_eq!(low, 0.0, "{line}");
                checked += 1;
            }
            _ => {}
        }
    }
    assert_eq!(checked, 4, "{points}");
}

/// A share swept within 0.9994 to 1: the y tick labels need four decimals; with fewer, two
/// neighbours read the same ("1", "1").
#[test]
fn adjacent_tick_labels_differ() {
    let dir = hand_made_sweep(
        "ticks",
        &["2", "3", "4"],
        &[
            [0.9996, 0.9998, 0.9997, 0.9999],
            [0.9997, 0.9998, 0.9998, 0.9999],
            [0.9998, 0.9999, 0.9998, 0.9999],
        ],
    );
    let out = scratch("ticks-out");
    ok(&["merge", s(&dir), "--out", s(&out)]);
    let svg = std::fs::read_to_string(out.join("sweep-gossip_coverage.svg")).unwrap();
    // The y axis labels are right-aligned; the x axis labels centred.
    let mut y_labels: Vec<(f64, String)> = svg_texts(&svg)
        .into_iter()
        .filter(|(l, anchor, _)| anchor == "end" && l.parse::<f64>().is_ok())
        .map(|(l, _, y)| (y, l))
        .collect();
    y_labels.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(y_labels.len() >= 3, "{y_labels:?}");
    for pair in y_labels.windows(2) {
        assert_ne!(pair[0].1, pair[1].1, "{y_labels:?}");
    }
}

/// Points of the data lines and markers of a sweep SVG, and the legend's box.
fn svg_data_and_legend(svg: &str) -> (Vec<(f64, f64)>, [f64; 4]) {
    let attr = |tag: &str, name: &str| -> f64 {
        tag.split(&format!(" {name}=\""))
            .nth(1)
            .and_then(|a| a.split('"').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let legend = svg
        .split("<rect")
        .skip(1)
        .find(|r| r.contains("opacity=\"0.9\""))
        .map(|r| {
            let (x, y) = (attr(r, "x"), attr(r, "y"));
            [x, y, x + attr(r, "width"), y + attr(r, "height")]
        })
        .expect("a legend box");
    let mut data = Vec::new();
    for c in svg.split("<circle").skip(1) {
        data.push((attr(c, "cx"), attr(c, "cy")));
    }
    for p in svg.split("<polyline").skip(1) {
        let tag = p.split('>').next().unwrap_or_default();
        // Data lines are 3 px wide; the legend's marks are two-point lines inside its box.
        if !tag.contains("stroke-width=\"3\"") {
            continue;
        }
        let points: Vec<(f64, f64)> = tag
            .split("points=\"")
            .nth(1)
            .unwrap_or_default()
            .split('"')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|xy| xy.split_once(','))
            .map(|(x, y)| (x.parse().unwrap(), y.parse().unwrap()))
            .collect();
        if points.len() < 3 {
            continue;
        }
        for w in points.windows(2) {
            for k in 0..=50 {
                let t = f64::from(k) / 50.0;
                data.push((
                    w[0].0 + (w[1].0 - w[0].0) * t,
                    w[0].1 + (w[1].1 - w[0].1) * t,
                ));
            }
        }
    }
    (data, legend)
}

/// A curve that starts and ends high (so it counts as rising) fills both upper corners; the
/// legend goes where no line or marker is.
#[test]
fn the_legend_covers_no_data() {
    let dir = hand_made_sweep(
        "legend",
        &["1", "2", "3", "4", "5", "6"],
        &[
            [0.99, 0.99, 0.98, 0.99],
            [0.5, 0.51, 0.5, 0.5],
            [0.5, 0.5, 0.5, 0.5],
            [0.5, 0.5, 0.5, 0.5],
            [0.5, 0.5, 0.5, 0.5],
            [0.99, 0.99, 0.99, 0.98],
        ],
    );
    let out = scratch("legend-out");
    ok(&["merge", s(&dir), "--out", s(&out)]);
    let svg = std::fs::read_to_string(out.join("sweep-gossip_coverage.svg")).unwrap();
    let (data, [x0, y0, x1, y1]) = svg_data_and_legend(&svg);
    assert!(data.len() > 100, "{}", data.len());
    let covered: Vec<&(f64, f64)> = data
        .iter()
        .filter(|(x, y)| *x >= x0 && *x <= x1 && *y >= y0 && *y <= y1)
        .collect();
    assert!(
        covered.is_empty(),
        "the legend [{x0}, {y0}, {x1}, {y1}] covers {} data points, e.g. {:?}",
        covered.len(),
        covered.first()
    );
}

/// `--no-plots` into a folder an earlier run or sweep drew plots in: prsm's plot files are gone
/// (they would show another run's results); other files stay.
#[test]
fn no_plots_removes_the_plots_of_an_earlier_run() {
    let run = scratch("stale-run");
    ok(&[
        "run",
        "scenarios/quickstart.yaml",
        "--quiet",
        "--out",
        s(&run),
    ]);
    assert!(run.join("timeseries.png").exists());
    std::fs::write(run.join("notes.png"), "mine").unwrap();
    ok(&[
        "run",
        "scenarios/quickstart.yaml",
        "--quiet",
        "--no-plots",
        "--out",
        s(&run),
    ]);
    for stem in ["timeseries", "latency_cdf"] {
        for ext in ["png", "svg"] {
            assert!(!run.join(format!("{stem}.{ext}")).exists(), "{stem}.{ext}");
        }
    }
    assert!(run.join("notes.png").exists());

    let file = sweep_file("stale-sweep", SWEEP);
    let out = scratch("stale-sweep-out");
    ok(&["sweep", s(&file), "--quiet", "--out", s(&out)]);
    assert!(out.join("sweep-gossip_coverage.svg").exists());
    std::fs::write(out.join("sweep-mine.png"), "mine").unwrap();
    ok(&["sweep", s(&file), "--quiet", "--no-plots", "--out", s(&out)]);
    let left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".png") || n.ends_with(".svg"))
        .collect();
    assert_eq!(left, vec!["sweep-mine.png".to_owned()]);
}
