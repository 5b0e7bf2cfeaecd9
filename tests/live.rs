//! The live adapter end to end, on loopback only: `prsm cluster` runs node processes that speak
//! signed frames over TCP; a 7-replica PBFT cluster survives two kill -9s and a restarted replica
//! catches up from its durable state; live and simulated runs decide the same; hostile frames are
//! dropped and counted while the cluster keeps working; bad input exits 2 before anything runs.
//! A partition is the nodes' drop rules. Every cluster here is bounded: at most 32 processes and
//! 30 s of wall time, all killed at the end by the cluster itself.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{prsm, scratch, text};
use prsm::live::frame::{self, FrameReader};
use prsm::live::keys::{self, Keypair};

fn summary(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

fn metric(summary: &serde_json::Value, name: &str) -> f64 {
    summary["metrics"][name]
        .as_f64()
        .unwrap_or_else(|| panic!("no metric {name}"))
}

/// The rows of a CSV file as strings, header first.
fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

fn cluster(file: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    let out = out.to_str().unwrap();
    let mut args = vec!["cluster", file, "--out", out, "--quiet", "--no-plots"];
    args.extend_from_slice(extra);
    prsm(&args)
}

#[test]
fn seven_replicas_keep_committing_with_two_killed_and_a_restarted_one_catches_up() {
    let out = scratch("live-pbft-n7");
    let run = cluster("scenarios/live/pbft-n7.yaml", &out, &["--no-compare"]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}{}",
        text(&run.stdout),
        text(&run.stderr)
    );
    let s = summary(&out);
    assert_eq!(s["mode"], "live");
    assert!(s["trace_hash"].is_null(), "a live run has no trace hash");
    assert_eq!(metric(&s, "faults.crashes"), 2.0);
    assert_eq!(metric(&s, "faults.restarts"), 1.0);
    assert_eq!(metric(&s, "pbft.safety_violations"), 0.0);
    assert!(metric(&s, "pbft.completion_rate") >= 0.99);
    assert!(metric(&s, "pbft.requests_completed") >= 400.0);
    assert!(metric(&s, "live.persists") > 0.0);
    assert_eq!(metric(&s, "live.frames_rejected"), 0.0);

    // live_nodes.csv: node, incarnations, live_at_end, ..., pbft_executed_max,
    // pbft_executed_after_restart.
    let rows = csv_rows(&out.join("live_nodes.csv"));
    let col = |name: &str| rows[0].iter().position(|c| c == name).unwrap();
    let num = |node: usize, name: &str| -> f64 { rows[node + 1][col(name)].parse().unwrap() };
    assert_eq!(
        num(3, "live_at_end"),
        0.0,
        "node 3 was killed and stays down"
    );
    assert_eq!(num(5, "incarnations"), 2.0, "node 5 was restarted");
    assert_eq!(num(5, "live_at_end"), 1.0);
    let highest = (0..7)
        .map(|i| num(i, "pbft_executed_max"))
        .fold(0.0, f64::max);
    assert!(highest >= 400.0, "{highest}");
    assert!(
        num(5, "pbft_executed_after_restart") > 0.0,
        "the restarted replica executes again"
    );
    assert!(
        num(5, "pbft_executed_max") >= highest - 2.0,
        "the restarted replica caught up: {} of {highest}",
        num(5, "pbft_executed_max")
    );
    // The restarted process read back what the killed one persisted.
    assert!(out.join("state/node-5.state").exists());
    // Same outputs as a simulated run, and the report says it was live.
    for file in [
        "timeseries.csv",
        "requests.csv",
        "decisions.csv",
        "report.md",
    ] {
        assert!(out.join(file).exists(), "{file}");
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("This run was **live**"));
    assert!(!report.contains("trace hash |"));
}

#[test]
fn pbft_live_and_simulated_decide_the_same_requests_in_the_same_order() {
    let out = scratch("live-pbft-n4");
    let run = cluster("scenarios/live/pbft-n4.yaml", &out, &[]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}{}",
        text(&run.stdout),
        text(&run.stderr)
    );
    let sim = scratch("live-pbft-n4-simulated");
    let simulated = prsm(&[
        "run",
        "scenarios/live/pbft-n4.yaml",
        "--out",
        sim.to_str().unwrap(),
        "--quiet",
        "--no-plots",
    ]);
    assert_eq!(simulated.status.code(), Some(0));
    let live_decisions = csv_rows(&out.join("decisions.csv"));
    let sim_decisions = csv_rows(&sim.join("decisions.csv"));
    assert_eq!(live_decisions.len(), 51, "a header and 50 decisions");
    assert_eq!(live_decisions, sim_decisions);
    let parity = std::fs::read_to_string(out.join("parity.md")).unwrap();
    assert!(
        parity.contains("Identical: the same 50 requests"),
        "{parity}"
    );
    assert!(parity.contains("| `pbft.client_latency_ms` |"), "{parity}");
    assert!(!parity.contains("FAIL"), "{parity}");
}

#[test]
fn discovery_and_routed_tasks_meet_their_expectations_live_and_simulated() {
    for (file, name) in [
        ("scenarios/live/discovery-32.yaml", "live-discovery-32"),
        ("scenarios/live/routing-16.yaml", "live-routing-16"),
    ] {
        let out = scratch(name);
        let run = cluster(file, &out, &[]);
        assert_eq!(
            run.status.code(),
            Some(0),
            "{file}: {}{}",
            text(&run.stdout),
            text(&run.stderr)
        );
        let parity = std::fs::read_to_string(out.join("parity.md")).unwrap();
        assert!(!parity.contains("FAIL"), "{file}: {parity}");
        assert!(parity.contains("(pass) | "), "{file}: {parity}");
    }
}

#[test]
fn a_partition_by_drop_rules_leaves_one_committing_side_and_heals() {
    let out = scratch("live-partition-7-3");
    let run = cluster("scenarios/live/partition-7-3.yaml", &out, &["--no-compare"]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}{}",
        text(&run.stdout),
        text(&run.stderr)
    );
    let s = summary(&out);
    assert!(metric(&s, "net.messages_cut") > 0.0, "the drop rules cut");
    assert_eq!(metric(&s, "pbft.committing_sides_max"), 1.0);
    assert_eq!(metric(&s, "partition.primary_components_max"), 1.0);
    assert!(
        metric(&s, "pbft.clients_suspended") >= 1.0,
        "the minority's client held"
    );
    assert_eq!(metric(&s, "pbft.completion_rate"), 1.0);
    assert_eq!(metric(&s, "faults.partitions"), 1.0);
    assert_eq!(metric(&s, "faults.heals"), 1.0);
}

/// The frame address node `id` logged, once it listens.
fn listen_address(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().find(|l| l.contains("listening"))?;
    let at = line.find("listen=")? + "listen=".len();
    Some(line[at..].split_whitespace().next()?.to_owned())
}

#[test]
#[allow(clippy::disallowed_types)] // the test is the attacker: a plain socket to a live node
fn hostile_frames_are_dropped_and_counted_and_the_cluster_keeps_working() {
    use std::net::TcpStream;
    let out = scratch("live-hostile");
    let child = Command::new(env!("CARGO_BIN_EXE_prsm"))
        .args(["cluster", "scenarios/live/pbft-n4.yaml", "--out"])
        .arg(&out)
        .args(["--quiet", "--no-plots", "--no-compare"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = out.join("nodes/node-1.log");
    let mut addr = None;
    for _ in 0..200 {
        addr = listen_address(&log);
        if addr.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let addr = addr.expect("node 1 listens");
    let roster = keys::read_roster(&out.join("keys/roster")).unwrap();
    let insider = keys::read_key_file(&out.join("keys/node-0.key")).unwrap();
    let connect = || {
        let s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    };
    let read_frame = |s: &mut TcpStream| -> Option<(u8, Vec<u8>)> {
        let mut reader = FrameReader::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(f) = reader.next_frame() {
                return f.ok();
            }
            let n = s.read(&mut buf).ok()?;
            if n == 0 {
                return None;
            }
            reader.push(&buf[..n]);
        }
    };

    // A key that is not in the roster: the handshake is refused.
    let stranger = Keypair::generate().unwrap();
    let mut s = connect();
    let (_, hello) = frame::dial(&stranger, roster[1]).unwrap();
    s.write_all(&hello).unwrap();
    assert!(read_frame(&mut s).is_none(), "no WELCOME for a stranger");

    // An insider's session: garbage, the same frame replayed, a forged frame, then a length
    // past the bound, which ends the connection.
    let mut s = connect();
    let (state, hello) = frame::dial(&insider, roster[1]).unwrap();
    s.write_all(&hello).unwrap();
    let (kind, body) = read_frame(&mut s).expect("WELCOME");
    let (mut session, proof) = state.on_frame(kind, &body).unwrap();
    s.write_all(&proof).unwrap();
    let garbage = session.seal(b"not a message of any layer");
    s.write_all(&garbage).unwrap();
    s.write_all(&garbage).unwrap();
    let mut forged = session.seal(b"another payload");
    let last = forged.len() - 70;
    forged[last] ^= 0x01;
    s.write_all(&forged).unwrap();
    let mut oversized = vec![frame::VERSION, frame::DATA];
    oversized.extend_from_slice(&u32::MAX.to_be_bytes());
    s.write_all(&oversized).unwrap();
    s.flush().unwrap();

    // A frame cut short: the connection ends in its middle.
    let mut s2 = connect();
    let mut truncated = vec![frame::VERSION, frame::HELLO];
    truncated.extend_from_slice(&100u32.to_be_bytes());
    truncated.extend_from_slice(&[7u8; 10]);
    s2.write_all(&truncated).unwrap();
    drop(s2);

    let run = child.wait_with_output().unwrap();
    drop(s);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}{}",
        text(&run.stdout),
        text(&run.stderr)
    );
    let s = summary(&out);
    for reason in [
        "unknown_key",
        "garbage",
        "replayed",
        "forged",
        "oversized",
        "truncated",
    ] {
        assert!(
            metric(&s, &format!("live.frames_rejected.{reason}")) >= 1.0,
            "{reason} not counted: {}",
            s["metrics"]
        );
    }
    assert_eq!(metric(&s, "pbft.requests_completed"), 50.0);
    assert_eq!(metric(&s, "pbft.safety_violations"), 0.0);
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn what_the_live_mode_cannot_do_is_refused_before_anything_starts() {
    let dir = scratch("live-bad-input");
    let base = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/live/pbft-n4.yaml"),
    )
    .unwrap();
    let cases = [
        (
            "churn.yaml",
            format!(
                "{base}faults:\n  - {{ at: 1s, churn: {{ rate: 1, downtime: 1s, until: 5s }} }}\n"
            ),
            "churn cannot run live",
        ),
        (
            "loss.yaml",
            base.replace(
                "latency: { constant: { one_way: 1ms } }",
                "latency: { constant: { one_way: 1ms } }\n  loss: 0.01",
            ),
            "cannot drop or duplicate",
        ),
        (
            "byzantine.yaml",
            format!("{base}adversaries:\n  - {{ nodes: [1], behavior: equivocate, from: 2s }}\n"),
            "Byzantine behaviours",
        ),
    ];
    for (name, body, says) in cases {
        let file = write(&dir, name, &body);
        let out = dir.join(format!("{name}-out"));
        let run = prsm(&["cluster", &file, "--out", out.to_str().unwrap()]);
        let err = text(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(says), "{name}: {err}");
        assert!(err.contains(&format!("{name}:")), "{name}: located: {err}");
        assert!(!out.join("keys").exists(), "{name}: nothing started");
    }
    // A protocol-only scenario, and a node count that is not the scenario's.
    let run = prsm(&["cluster", "scenarios/pbft/n7.yaml"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(text(&run.stderr).contains("layers:"));
    let run = prsm(&["cluster", "scenarios/live/pbft-n4.yaml", "--nodes", "7"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(text(&run.stderr).contains("--nodes 7 but the scenario has 5 nodes"));
}

#[test]
#[allow(clippy::disallowed_types)] // holds a port busy
fn a_node_with_bad_keys_or_a_busy_port_says_why_and_exits_2() {
    let dir = scratch("live-node-bad-input");
    let keys_dir = dir.join("keys");
    let made = prsm(&[
        "keygen",
        "--nodes",
        "5",
        "--out",
        keys_dir.to_str().unwrap(),
    ]);
    assert_eq!(made.status.code(), Some(0), "{}", text(&made.stderr));
    // Keys are never overwritten.
    let again = prsm(&[
        "keygen",
        "--nodes",
        "5",
        "--out",
        keys_dir.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2));

    let roster = keys_dir.join("roster");
    let key = keys_dir.join("node-1.key");
    let node = |key: &str, extra: &[&str]| {
        let mut args = vec![
            "node",
            "scenarios/live/pbft-n4.yaml",
            "--key",
            key,
            "--roster",
            roster.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        prsm(&args)
    };
    let missing = node(dir.join("nope.key").to_str().unwrap(), &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("nope.key"));

    let broken = write(&dir, "broken.key", "secret = 12zz\n");
    let run = node(&broken, &[]);
    assert_eq!(run.status.code(), Some(2));
    assert!(
        text(&run.stderr).contains("broken.key"),
        "{}",
        text(&run.stderr)
    );
    assert!(
        text(&run.stderr).contains(":1"),
        "located: {}",
        text(&run.stderr)
    );

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let run = node(key.to_str().unwrap(), &["--listen", &addr]);
    assert_eq!(run.status.code(), Some(2));
    let err = text(&run.stderr);
    assert!(
        err.contains("cannot bind the frame address") && err.contains(&addr),
        "{err}"
    );

    // A roster for another cluster size.
    let small = dir.join("small");
    assert_eq!(
        prsm(&["keygen", "--nodes", "3", "--out", small.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    let run = prsm(&[
        "node",
        "scenarios/live/pbft-n4.yaml",
        "--key",
        small.join("node-0.key").to_str().unwrap(),
        "--roster",
        small.join("roster").to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(2));
    assert!(text(&run.stderr).contains("3 keys but the scenario has 5 nodes"));
}

#[test]
#[allow(clippy::disallowed_types)] // scrapes the metrics endpoint
fn a_node_serves_prometheus_metrics() {
    use std::net::TcpStream;
    let dir = scratch("live-metrics");
    let keys_dir = dir.join("keys");
    assert_eq!(
        prsm(&[
            "keygen",
            "--nodes",
            "5",
            "--out",
            keys_dir.to_str().unwrap()
        ])
        .status
        .code(),
        Some(0)
    );
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics_addr = probe.local_addr().unwrap().to_string();
    drop(probe);
    let mut child = Command::new(env!("CARGO_BIN_EXE_prsm"))
        .args(["node", "scenarios/live/pbft-n4.yaml", "--key"])
        .arg(keys_dir.join("node-0.key"))
        .arg("--roster")
        .arg(keys_dir.join("roster"))
        .args(["--metrics-addr", &metrics_addr])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut body = String::new();
    for _ in 0..100 {
        if let Ok(mut s) = TcpStream::connect(&metrics_addr) {
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.read_to_string(&mut body);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(
        body.contains("# TYPE prsm_frames_sent_total counter"),
        "{body}"
    );
    assert!(body.contains("prsm_frames_rejected_total{node=\"0\",reason=\"forged\"} 0"));
    assert!(body.contains("prsm_layer_messages_sent_total{node=\"0\",layer=\"pbft\"}"));
}
