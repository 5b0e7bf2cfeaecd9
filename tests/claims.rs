//! `prsm claims` end to end: the baseline gate fails when a claim that held stops holding (by a
//! scenario override and by a doctored baseline), the report is the same bytes whatever the
//! thread count, a row's reproduce command gives the same figure, and bad input exits 2.
//! The claims used are the geography ones: a few nodes for 5 s, cheap even in a debug build.

mod common;

use std::path::{Path, PathBuf};

use common::{prsm, scratch, text};

const CLAIM: &str = "geography.same-continent";
const FILE: &str = "geo-same-continent.yaml";

/// A copy of the committed claim files, to override.
fn claims_dir(name: &str) -> PathBuf {
    let dir = scratch(name).join("claims");
    std::fs::create_dir_all(&dir).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/claims");
    for entry in std::fs::read_dir(source).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    dir
}

fn claims(dir: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "claims",
        "--quiet",
        "--no-plots",
        "--claims-dir",
        dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    prsm(&args)
}

fn report(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("claims.json")).unwrap()).unwrap()
}

fn verdict(report: &serde_json::Value, claim: &str) -> String {
    report["claims"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["claim"] == claim)
        .unwrap_or_else(|| panic!("{claim} missing"))["verdict"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The gate passes while the claim holds, and fails (exit 1, naming the claim) once the claim
/// file is changed so that it no longer holds: the same-continent nodes moved to three
/// continents.
#[test]
fn the_gate_fails_when_a_claim_that_held_stops_holding() {
    let dir = claims_dir("claims-gate");
    let root = dir.parent().unwrap().to_path_buf();
    let first = root.join("first");
    let o = claims(&dir, &first, &["--only", CLAIM]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("no baseline"),
        "{}",
        text(&o.stdout)
    );
    assert_eq!(verdict(&report(&first), CLAIM), "holds");
    let baseline = root.join("baseline.json");
    std::fs::copy(first.join("claims.json"), &baseline).unwrap();
    let base = baseline.to_str().unwrap();

    let again = root.join("again");
    let o = claims(&dir, &again, &["--only", CLAIM, "--baseline", base]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("still holds"),
        "{}",
        text(&o.stdout)
    );

    // Override the scenario: us-west-2 becomes Sydney, and the mean latency passes 45 ms.
    let file = dir.join(FILE);
    let yaml = std::fs::read_to_string(&file).unwrap();
    assert!(yaml.contains("region: us-west-2"));
    std::fs::write(
        &file,
        yaml.replace("region: us-west-2", "region: ap-southeast-2"),
    )
    .unwrap();
    let broken = root.join("broken");
    let o = claims(&dir, &broken, &["--only", CLAIM, "--baseline", base]);
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert_eq!(verdict(&report(&broken), CLAIM), "does not hold");
    assert!(
        stderr.contains(&format!("{CLAIM}: was `holds`, now `does not hold`")),
        "{stderr}"
    );
    assert!(stderr.contains("1 claim(s) held in"), "{stderr}");
    // The report is written either way.
    assert!(broken.join("claims.md").is_file());
}

/// A baseline that records a failing claim as holding (here the global mesh, 85 ms against a
/// stated 67 ms) fails the gate; claims the run did not measure are not compared.
#[test]
fn a_doctored_baseline_fails_the_gate_and_unmeasured_claims_are_skipped() {
    let dir = claims_dir("claims-doctored");
    let root = dir.parent().unwrap().to_path_buf();
    let out = root.join("out");
    let o = claims(&dir, &out, &["--only", "geography"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let measured = report(&out);
    assert_eq!(verdict(&measured, "geography.global-mesh"), "does not hold");
    assert_eq!(
        verdict(&measured, "geography.same-datacenter"),
        "not measured"
    );
    let mut doctored = measured.clone();
    for claim in doctored["claims"].as_array_mut().unwrap() {
        claim["verdict"] = "holds".into();
    }
    // A claim this run does not measure, recorded as holding: not compared.
    doctored["claims"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({ "claim": "discovery.n10000", "verdict": "holds" }));
    let baseline = root.join("doctored.json");
    std::fs::write(&baseline, serde_json::to_string(&doctored).unwrap()).unwrap();
    let o = claims(
        &dir,
        &root.join("again"),
        &[
            "--only",
            "geography",
            "--baseline",
            baseline.to_str().unwrap(),
        ],
    );
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("geography.global-mesh: was `holds`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("geography.same-datacenter: was `holds`, now `not measured`"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("geography.same-continent: was"),
        "{stderr}"
    );
    assert!(!stderr.contains("discovery.n10000"), "{stderr}");
    assert!(stderr.contains("2 claim(s) held in"), "{stderr}");
}

/// The same claims give the same bytes with one thread or two, and a row's reproduce command
/// (`prsm sweep FILE`) writes the same mean and interval into points.csv.
#[test]
fn same_bytes_whatever_the_threads_and_the_reproduce_command_gives_the_same_figure() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/claims");
    let root = scratch("claims-determinism");
    let (one, two) = (root.join("one"), root.join("two"));
    let only = ["--only", "geography", "--jobs"];
    for (out, jobs) in [(&one, "1"), (&two, "2")] {
        let mut args = only.to_vec();
        args.push(jobs);
        let o = claims(&dir, out, &args);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    }
    for file in ["claims.json", "claims.csv", "claims.md"] {
        assert_eq!(
            std::fs::read(one.join(file)).unwrap(),
            std::fs::read(two.join(file)).unwrap(),
            "{file} differs between --jobs 1 and 2"
        );
    }
    let mut reader = csv::Reader::from_path(one.join("claims.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let row = reader
        .records()
        .map(Result::unwrap)
        .find(|r| &r[col("claim")] == CLAIM)
        .unwrap();
    let command = &row[col("reproduce")];
    let file = command.strip_prefix("prsm sweep ").unwrap();
    assert!(file.ends_with(FILE), "{command}");
    assert_eq!(&row[col("seeds")], "10");
    let sweep_out = root.join("sweep");
    let o = prsm(&[
        "sweep",
        file,
        "--quiet",
        "--no-plots",
        "--out",
        sweep_out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let mut points = csv::Reader::from_path(sweep_out.join("points.csv")).unwrap();
    let p_header = points.headers().unwrap().clone();
    let pcol = |name: &str| p_header.iter().position(|h| h == name).unwrap();
    let point = points
        .records()
        .map(Result::unwrap)
        .find(|r| r[pcol("metric")] == row[col("metric")])
        .unwrap();
    for (claims_col, points_col) in [
        ("mean", "mean"),
        ("ci95_low", "ci95_low"),
        ("ci95_high", "ci95_high"),
        ("seeds", "runs"),
    ] {
        assert_eq!(
            &row[col(claims_col)],
            &point[pcol(points_col)],
            "{claims_col}"
        );
    }
}

#[test]
fn bad_input_exits_2_with_a_reason() {
    let root = scratch("claims-bad");
    std::fs::create_dir_all(&root).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/claims");
    let o = claims(&dir, &root.join("out"), &["--only", "no-such-claim"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("--only no-such-claim: no such claim or row"),
        "{}",
        text(&o.stderr)
    );
    for (name, body) in [
        ("truncated.json", "{\"claims\": ["),
        (
            "verdict.json",
            "{\"claims\": [{\"claim\": \"uptime\", \"verdict\": \"maybe\"}]}",
        ),
        ("shape.json", "[1, 2, 3]"),
    ] {
        let path = root.join(name);
        std::fs::write(&path, body).unwrap();
        let o = claims(
            &dir,
            &root.join("out"),
            &["--only", CLAIM, "--baseline", path.to_str().unwrap()],
        );
        assert_eq!(o.status.code(), Some(2), "{name}");
        assert!(
            text(&o.stderr).contains("is not a claims baseline"),
            "{name}: {}",
            text(&o.stderr)
        );
    }
    let missing = root.join("missing.json");
    let o = claims(
        &dir,
        &root.join("out"),
        &["--only", CLAIM, "--baseline", missing.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("cannot read baseline"));
}
