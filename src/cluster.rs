//! `prsm cluster`: a scenario run live. It starts one `prsm node` process per node of the
//! scenario on loopback, drives the scenario's workload and faults against them in real time,
//! and writes the same output folder a simulated run writes.
//!
//! The cluster plays the simulator's engine, with the wall clock for virtual time: the same
//! model ([`FullModel`]) decides the workload (which node gets which command, when), hears
//! every event the nodes report on their control channels, checks safety and liveness, and
//! computes the metrics under the same names. Faults become what they are on a real machine: a
//! crash is `kill -9`, a restart is a new process that reads back the durable state the old one
//! persisted, and a partition is each node's drop rules, resolved from the scenario exactly as
//! the simulator resolves them ([`prsm_sim::engine::install_partition`]).
//!
//! What the simulator models and loopback cannot (latency and loss models, bandwidth, CPU cost
//! per message, Byzantine behaviours, churn) is refused before anything starts, or, for the
//! latency model, reported as not applied.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration as WallDuration, Instant};

use prsm::live::control::{Order, Report};
use prsm::live::counters::Counters;
use prsm::live::frame::Reject;
use prsm_protocol::full::{FullCommand, FullEvent};
use prsm_protocol::pbft::PbftEvent;
use prsm_protocol::{DropReason, NodeId, Time};
use prsm_sim::engine::{FaultRecord, RunOutput};
use prsm_sim::kernel::{Seeds, Stream};
use prsm_sim::metrics::{Metrics, Table, round6};
use prsm_sim::model::{FullModel, Model};
use prsm_sim::network::Network;
use prsm_sim::scenario::{FaultAction, FullSettings, ProtocolConfig, Scenario};
use prsm_sim::topology::Topology;
use rand_chacha::ChaCha8Rng;

use crate::exit::{Exit, Failure};

/// How long a node process may take to report that it listens.
const READY_TIMEOUT: WallDuration = WallDuration::from_secs(20);
/// How long stopped nodes get to report their last counters before they are killed.
const STOP_TIMEOUT: WallDuration = WallDuration::from_secs(5);
/// Reports buffered from all nodes at most; a node that floods waits on its pipe.
const REPORTS_QUEUE_MAX: usize = 65_536;
/// Events wait this long before the model observes them, so that an event that happened earlier
/// on another node, still in that node's pipe, is observed first (a reply after its request).
const REORDER_WINDOW: WallDuration = WallDuration::from_millis(200);

/// What the model hears, in the order it happened: the nodes' events and the cluster's own
/// faults go through one timeline, so that a fault is observed after the events that preceded
/// it (still in the nodes' pipes when it was applied) and before those that followed.
enum Observed {
    Event(usize, FullEvent),
    Crashed(usize),
    Started(usize),
    Cut(Option<Vec<u32>>),
}

/// The model's timeline: what happened, by (wall-clock time, arrival order), held for the
/// reorder window, then observed.
struct Timeline {
    wall_at_start: u64,
    pending: std::collections::BTreeMap<(u64, u64), Observed>,
    arrivals: u64,
    /// Per node, whether the model believes it is up (at the time observed so far).
    up: Vec<bool>,
    events: u64,
    /// Per node: the highest sequence number it executed, and how many it executed after its
    /// last restart (a restarted replica that catches up executes again).
    executed_max: Vec<u64>,
    executed_after_restart: Vec<u64>,
    restarted: Vec<bool>,
    /// The model's time never goes back, even for events stamped a hair apart by two clocks.
    observed_until: Time,
}

impl Timeline {
    fn new(wall_at_start: u64, n: usize) -> Timeline {
        Timeline {
            wall_at_start,
            pending: std::collections::BTreeMap::new(),
            arrivals: 0,
            up: vec![true; n],
            events: 0,
            executed_max: vec![0; n],
            executed_after_restart: vec![0; n],
            restarted: vec![false; n],
            observed_until: Time::ZERO,
        }
    }

    /// Something that happened at `at_ns` on the machine's wall clock.
    fn push(&mut self, at_ns: u64, what: Observed) {
        self.pending.insert((at_ns, self.arrivals), what);
        self.arrivals += 1;
    }

    /// Something the cluster did at `t` of its run.
    fn push_at(&mut self, t: Time, what: Observed) {
        self.push(self.wall_at_start + t.0, what);
    }

    /// Hands the model, in time order, everything that happened by `horizon` (run time).
    fn release(&mut self, horizon: Time, model: &mut FullModel) {
        let limit = self.wall_at_start + horizon.0;
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > limit {
                break;
            }
            let ((at_ns, _), what) = entry.remove_entry();
            let at = Time(at_ns.saturating_sub(self.wall_at_start)).max(self.observed_until);
            self.observed_until = at;
            match what {
                Observed::Event(i, event) => {
                    if !self.up[i] {
                        continue;
                    }
                    self.events += 1;
                    if let FullEvent::Pbft(PbftEvent::Executed { seq, .. }) = &event {
                        self.executed_max[i] = self.executed_max[i].max(*seq);
                        if self.restarted[i] {
                            self.executed_after_restart[i] += 1;
                        }
                    }
                    model.observe(at, NodeId(i as u32), event);
                }
                Observed::Crashed(i) => {
                    self.up[i] = false;
                    model.crashed(at, NodeId(i as u32));
                }
                Observed::Started(i) => {
                    self.up[i] = true;
                    self.restarted[i] = true;
                    self.executed_after_restart[i] = 0;
                    model.started(at, NodeId(i as u32));
                }
                Observed::Cut(components) => model.cut(at, components.as_deref()),
            }
        }
    }
}

pub struct ClusterArgs<'a> {
    pub file: &'a Path,
    pub nodes: Option<u32>,
    pub out: Option<PathBuf>,
    pub seed: Option<u64>,
    pub quiet: bool,
    pub plots: bool,
    /// Also simulate the scenario with the same seed and write parity.md.
    pub compare: bool,
}

/// Why the scenario cannot run live, located in its file.
pub fn live_problems(
    file: &Path,
    text: &str,
    scenario: &Scenario,
    nodes: Option<u32>,
) -> Vec<String> {
    // The key's line: first where a line starts with it (a key), else anywhere (a flow mapping).
    let at = |needle: &str| -> String {
        let name = file.display();
        let lines = || text.lines().enumerate();
        let key = lines().find_map(|(i, l)| {
            let col = l.len() - l.trim_start().len();
            l.trim_start()
                .trim_start_matches("- ")
                .starts_with(needle)
                .then_some((i, col))
        });
        let any = || lines().find_map(|(i, l)| l.find(needle).map(|c| (i, c)));
        match key.or_else(any) {
            Some((i, col)) => format!("{name}:{}:{}", i + 1, col + 1),
            None => name.to_string(),
        }
    };
    let mut problems = Vec::new();
    match &scenario.protocol {
        ProtocolConfig::Full(f) if f.layered => {}
        _ => problems.push(format!(
            "{}: the live mode runs full nodes: describe them with `layers:` (and `roles:`), e.g. `layers: {{ pbft: {{}} }}` instead of `protocol: pbft`",
            at("protocol:")
        )),
    }
    if let Some(nodes) = nodes.filter(|&k| k != scenario.node_count()) {
        problems.push(format!(
            "{}: --nodes {nodes} but the scenario has {} nodes (one process each, validators and clients alike); pass --nodes {} or change `nodes:`",
            at("nodes:"),
            scenario.node_count(),
            scenario.node_count()
        ));
    }
    if scenario.network.loss > 0.0 || scenario.network.duplicate > 0.0 {
        problems.push(format!(
            "{}: the live mode cannot drop or duplicate a share of frames on loopback; set `loss` and `duplicate` to 0 or run the scenario in the simulator",
            at(if scenario.network.loss > 0.0 { "loss:" } else { "duplicate:" })
        ));
    }
    if !scenario.network.overrides.is_empty() {
        problems.push(format!(
            "{}: per-link overrides are a simulator model; remove them to run live",
            at("overrides:")
        ));
    }
    if !scenario.adversaries.is_empty() {
        problems.push(format!(
            "{}: Byzantine behaviours are simulator wrappers and cannot run live yet; remove `adversaries:` to run live",
            at("adversaries:")
        ));
    }
    for fault in &scenario.faults {
        if let FaultAction::Churn { .. } = fault.action {
            problems.push(format!(
                "{}: churn cannot run live yet; write its crashes and restarts as `crash:` and `restart:` faults",
                at("churn:")
            ));
        }
    }
    if scenario
        .nodes
        .iter()
        .any(|n| n.bandwidth.is_some() || n.processing > prsm_protocol::Duration::ZERO)
    {
        problems.push(format!(
            "{}: `bandwidth` and `processing` model a machine; a live node uses the real one. Remove them to run live",
            at(if text.contains("bandwidth:") {
                "bandwidth:"
            } else {
                "processing:"
            })
        ));
    }
    problems
}

/// One node process and what the cluster knows of it.
struct Proc {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    incarnation: u32,
    addr: Option<String>,
    metrics: Option<String>,
    /// The last counters of each incarnation.
    counters: Vec<Counters>,
}

enum Line {
    Report(Report<FullEvent>),
    Exited,
}

struct Spawner<'a> {
    exe: PathBuf,
    file: &'a Path,
    dir: &'a Path,
    seed: u64,
    tx: mpsc::SyncSender<(usize, u32, Line)>,
}

impl Spawner<'_> {
    fn spawn(&self, i: usize, incarnation: u32) -> Result<(Child, ChildStdin), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("nodes").join(format!("node-{i}.log")))
            .map_err(|e| format!("cannot open the node log: {e}"))?;
        let mut child = Command::new(&self.exe)
            .arg("node")
            .arg(self.file)
            .arg("--key")
            .arg(self.dir.join("keys").join(format!("node-{i}.key")))
            .arg("--roster")
            .arg(self.dir.join("keys").join("roster"))
            .args(["--listen", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
            .arg("--state")
            .arg(self.dir.join("state").join(format!("node-{i}.state")))
            .arg("--control")
            .args(["--seed", &self.seed.to_string()])
            .args(["--incarnation", &incarnation.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.exe.display()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err("the node process has no pipes".to_owned());
        };
        let tx = self.tx.clone();
        // One reader per process: a pipe read blocks. Threads never touch results but through
        // the channel, and the cluster is not deterministic anyway (it runs on the wall clock).
        #[allow(clippy::disallowed_methods)]
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Report<FullEvent>>(&line) {
                    Ok(r) => {
                        if tx.send((i, incarnation, Line::Report(r))).is_err() {
                            return;
                        }
                    }
                    Err(e) => eprintln!("node {i}: ignored a report line: {e}"),
                }
            }
            let _ = tx.send((i, incarnation, Line::Exited));
        });
        Ok((child, stdin))
    }
}

fn order(stdin: &mut Option<ChildStdin>, order: &Order<FullCommand>) {
    let Some(pipe) = stdin.as_mut() else { return };
    let Ok(line) = serde_json::to_string(order) else {
        return;
    };
    if writeln!(pipe, "{line}")
        .and_then(|()| pipe.flush())
        .is_err()
    {
        *stdin = None;
    }
}

fn bad(message: String) -> Failure {
    Failure::new(Exit::BadInput, message)
}

/// The live run's result, handed back to the binary to write like a simulated run.
pub struct LiveRun {
    pub output: RunOutput,
    pub wall_s: f64,
}

pub fn run_cluster(
    args: &ClusterArgs<'_>,
    scenario: &Scenario,
    dir: &Path,
) -> Result<LiveRun, Failure> {
    let ProtocolConfig::Full(settings) = &scenario.protocol else {
        return Err(bad("the live mode runs full nodes (`layers:`)".to_owned()));
    };
    let n = scenario.node_count() as usize;
    let seed = args.seed.unwrap_or(scenario.seed);
    let output_failure = |e: String| {
        Failure::new(
            Exit::OutputFailed,
            format!("error: cannot write to {}: {e}", dir.display()),
        )
    };
    for sub in ["keys", "state", "nodes"] {
        let path = dir.join(sub);
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| output_failure(e.to_string()))?;
        }
    }
    std::fs::create_dir_all(dir.join("state")).map_err(|e| output_failure(e.to_string()))?;
    std::fs::create_dir_all(dir.join("nodes")).map_err(|e| output_failure(e.to_string()))?;
    prsm::live::keys::keygen(&dir.join("keys"), n).map_err(|e| output_failure(e.to_string()))?;

    let exe = std::env::current_exe().map_err(|e| bad(format!("cannot find prsm itself: {e}")))?;
    let (tx, rx) = mpsc::sync_channel(REPORTS_QUEUE_MAX);
    let spawner = Spawner {
        exe,
        file: args.file,
        dir,
        seed,
        tx,
    };
    let mut procs: Vec<Proc> = Vec::with_capacity(n);
    let kill_all = |procs: &mut Vec<Proc>| {
        for p in procs.iter_mut() {
            if let Some(mut c) = p.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    };
    for i in 0..n {
        match spawner.spawn(i, 0) {
            Ok((child, stdin)) => procs.push(Proc {
                child: Some(child),
                stdin: Some(stdin),
                incarnation: 0,
                addr: None,
                metrics: None,
                counters: vec![Counters::default()],
            }),
            Err(e) => {
                kill_all(&mut procs);
                return Err(bad(format!("error: node {i}: {e}")));
            }
        }
    }
    // Every node listens before any starts its protocol.
    #[allow(clippy::disallowed_methods)]
    let waiting_since = Instant::now();
    while procs.iter().any(|p| p.addr.is_none()) {
        let left = READY_TIMEOUT.saturating_sub(waiting_since.elapsed());
        match rx.recv_timeout(left) {
            Ok((
                i,
                _,
                Line::Report(Report::Ready {
                    listen, metrics, ..
                }),
            )) => {
                procs[i].addr = Some(listen);
                procs[i].metrics = metrics;
            }
            Ok((i, _, Line::Exited)) => {
                kill_all(&mut procs);
                let log = std::fs::read_to_string(dir.join("nodes").join(format!("node-{i}.log")))
                    .unwrap_or_default();
                let last = log.lines().last().unwrap_or("(no log)").to_owned();
                return Err(bad(format!(
                    "error: node {i} exited before it listened: {last} (log: {})",
                    dir.join("nodes").join(format!("node-{i}.log")).display()
                )));
            }
            Ok(_) => {}
            Err(_) => {
                kill_all(&mut procs);
                return Err(bad(format!(
                    "error: the nodes did not all listen within {} s",
                    READY_TIMEOUT.as_secs()
                )));
            }
        }
    }

    let mut model = FullModel::new(
        scenario,
        settings,
        &mut Seeds::new(seed).stream(Stream::Adversaries),
    );
    let seeds = Seeds::new(seed);
    let mut workload_rng = seeds.stream(Stream::Workload);
    let mut fault_rng: ChaCha8Rng = seeds.stream(Stream::Faults);
    let mut network = Network::new(
        &scenario.network,
        scenario.nodes.iter().map(|n| n.region).collect(),
        Vec::new(),
        seeds.stream(Stream::Network),
    );
    let mut live = vec![true; n];
    let peers = |procs: &[Proc]| Order::Peers(procs.iter().map(|p| p.addr.clone()).collect());
    let all = peers(&procs);
    for p in procs.iter_mut() {
        order(&mut p.stdin, &all);
    }
    #[allow(clippy::disallowed_methods)]
    let started = Instant::now();
    let wall_at_start = prsm::live::control::wall_clock_ns();
    let mut timeline = Timeline::new(wall_at_start, n);
    let now = || Time(started.elapsed().as_nanos() as u64);
    for i in 0..n {
        model.started(Time::ZERO, NodeId(i as u32));
    }

    let end = Time(scenario.duration.as_nanos());
    let mut next_command = model.first_command_at();
    let mut next_fault = 0usize;
    let mut next_sample = Time(scenario.sample_every.as_nanos());
    let mut columns = prsm_sim::engine::SERIES_COLUMNS.to_vec();
    columns.extend(model.series_columns());
    let mut series = Table::new(&columns);
    let mut last_totals = Counters::default();
    let mut faults: Vec<FaultRecord> = Vec::new();
    let mut cut_in_force = false;
    let show = !args.quiet;
    let mut last_progress = 0u64;

    loop {
        let t = now();
        // Events old enough that no earlier one can still be in a pipe, in the order they
        // happened.
        timeline.release(
            Time(t.0.saturating_sub(REORDER_WINDOW.as_nanos() as u64)),
            &mut model,
        );
        if t >= end {
            break;
        }
        // Faults due.
        while next_fault < scenario.faults.len() && scenario.faults[next_fault].at.as_nanos() <= t.0
        {
            let fault = &scenario.faults[next_fault];
            next_fault += 1;
            let topo = Topology {
                nodes: &scenario.nodes,
                regions: &scenario.regions,
                live: &live,
            };
            let time_s = round6(t.as_secs_f64());
            let (what, nodes): (&'static str, u32) = match &fault.action {
                FaultAction::Crash(set) => {
                    let chosen = topo.resolve(set, |i| live[i], &mut fault_rng);
                    let mut count = 0;
                    for id in chosen {
                        let p = &mut procs[id.index()];
                        if let Some(mut c) = p.child.take() {
                            // SIGKILL: the process gets no chance to tidy up, as in a crash.
                            let _ = c.kill();
                            let _ = c.wait();
                        }
                        p.stdin = None;
                        p.addr = None;
                        if live[id.index()] {
                            live[id.index()] = false;
                            timeline.push_at(t, Observed::Crashed(id.index()));
                            count += 1;
                        }
                    }
                    ("crash (kill -9)", count)
                }
                FaultAction::Restart(set) => {
                    let chosen = topo.resolve(set, |i| !live[i], &mut fault_rng);
                    let mut count = 0;
                    for id in chosen {
                        let i = id.index();
                        if live[i] {
                            continue;
                        }
                        let incarnation = procs[i].incarnation + 1;
                        match spawner.spawn(i, incarnation) {
                            Ok((child, stdin)) => {
                                let p = &mut procs[i];
                                p.child = Some(child);
                                p.stdin = Some(stdin);
                                p.incarnation = incarnation;
                                p.counters.push(Counters::default());
                                count += 1;
                            }
                            Err(e) => warn!("warning: node {i} could not restart: {e}"),
                        }
                    }
                    ("restart from durable state", count)
                }
                FaultAction::Partition(plan) => {
                    prsm_sim::engine::install_partition(
                        scenario,
                        plan,
                        &live,
                        &mut fault_rng,
                        &mut network,
                    );
                    for (i, p) in procs.iter_mut().enumerate() {
                        order(&mut p.stdin, &cut_order(&network, i, n));
                    }
                    cut_in_force = true;
                    let components = network.components();
                    timeline.push_at(t, Observed::Cut(components));
                    ("partition (drop rules)", n as u32)
                }
                FaultAction::Heal => {
                    network.heal();
                    for p in procs.iter_mut() {
                        order(
                            &mut p.stdin,
                            &Order::Cut {
                                to: Vec::new(),
                                from: Vec::new(),
                            },
                        );
                    }
                    cut_in_force = false;
                    timeline.push_at(t, Observed::Cut(None));
                    ("heal", n as u32)
                }
                // Refused before the run (`live_problems`).
                FaultAction::Churn { .. } => continue,
            };
            let kind = what.split(' ').next().unwrap_or(what);
            faults.push(FaultRecord {
                time_s,
                kind,
                nodes,
                sides: network.sides() as u32,
            });
            if show {
                say!(
                    "{:>8.3} s  {what}: {nodes} node(s), {} side(s)",
                    t.as_secs_f64(),
                    network.sides()
                );
            }
        }
        // Workload due: each command at its scheduled time (a late wake-up delays it, it does
        // not stretch the schedule).
        while let Some(at) = next_command.filter(|at| *at <= t) {
            let (command, next) = model.command(at, &mut workload_rng, &live);
            if let Some((node, cmd)) = command {
                order(&mut procs[node.index()].stdin, &Order::Command(cmd));
            }
            next_command = next;
        }
        // Samples due.
        while next_sample <= t && next_sample <= end {
            let totals = sum(&procs);
            let mut row = vec![
                next_sample.as_secs_f64(),
                live.iter().filter(|&&l| l).count() as f64,
                network.sides() as f64,
                (totals.frames_sent - last_totals.frames_sent.min(totals.frames_sent)) as f64,
                (totals.frames_received - last_totals.frames_received.min(totals.frames_received))
                    as f64,
                (dropped(&totals) - dropped(&last_totals).min(dropped(&totals))) as f64,
                (totals.bytes_sent - last_totals.bytes_sent.min(totals.bytes_sent)) as f64,
                f64::NAN,
                f64::NAN,
            ];
            model.sample(&mut row);
            series.push(row, usize::MAX);
            last_totals = totals;
            next_sample += scenario.sample_every;
        }
        if show {
            let s = t.as_secs_f64() as u64;
            if s >= last_progress + 5 {
                last_progress = s;
                say!(
                    "{:>8.3} s  {} events from {} live node(s)",
                    t.as_secs_f64(),
                    timeline.events,
                    live.iter().filter(|&&l| l).count()
                );
            }
        }
        // Wait for reports until the next thing is due.
        let mut wake = end.min(next_sample);
        if let Some(at) = next_command {
            wake = wake.min(at);
        }
        if let Some(f) = scenario.faults.get(next_fault) {
            wake = wake.min(Time(f.at.as_nanos()));
        }
        let wait = WallDuration::from_nanos(wake.0.saturating_sub(now().0));
        let mut first = true;
        loop {
            let got = if first {
                first = false;
                rx.recv_timeout(wait)
            } else {
                rx.try_recv().map_err(|_| mpsc::RecvTimeoutError::Timeout)
            };
            let Ok((i, incarnation, line)) = got else {
                break;
            };
            let current = procs[i].incarnation == incarnation;
            match line {
                Line::Report(Report::Event { at_ns, event }) => {
                    // A killed incarnation's last events still count: they happened before
                    // the kill, and the timeline puts them there.
                    if current {
                        timeline.push(at_ns, Observed::Event(i, event));
                    }
                }
                Line::Report(Report::Counters(c)) => {
                    if let Some(slot) = procs[i].counters.get_mut(incarnation as usize) {
                        *slot = *c;
                    }
                }
                Line::Report(Report::Ready {
                    listen, metrics, ..
                }) => {
                    if !current {
                        continue;
                    }
                    // A restarted node: everyone learns its new address, it starts. It is up
                    // for the model from before its first order, so no event of it precedes.
                    timeline.push_at(now(), Observed::Started(i));
                    procs[i].addr = Some(listen);
                    procs[i].metrics = metrics;
                    let all = peers(&procs);
                    for p in procs.iter_mut() {
                        order(&mut p.stdin, &all);
                    }
                    if cut_in_force {
                        order(&mut procs[i].stdin, &cut_order(&network, i, n));
                    }
                    live[i] = true;
                }
                Line::Exited => {
                    if current && live[i] && procs[i].child.is_some() {
                        warn!(
                            "warning: node {i} exited on its own; see its log in {}/nodes",
                            dir.display()
                        );
                        live[i] = false;
                        timeline.push_at(now(), Observed::Crashed(i));
                        procs[i].child = None;
                        procs[i].stdin = None;
                    }
                }
            }
        }
    }

    // Whatever arrived of the events emitted before the end.
    while let Ok((i, incarnation, line)) = rx.try_recv() {
        if let Line::Report(Report::Event { at_ns, event }) = line
            && procs[i].incarnation == incarnation
        {
            timeline.push(at_ns, Observed::Event(i, event));
        }
    }
    timeline.release(end, &mut model);

    // Stop: every node reports its last counters and exits.
    let end_at = now();
    for p in procs.iter_mut() {
        order(&mut p.stdin, &Order::Stop);
    }
    #[allow(clippy::disallowed_methods)]
    let stopping = Instant::now();
    let mut running: Vec<bool> = procs.iter().map(|p| p.child.is_some()).collect();
    while running.iter().any(|&r| r) {
        let left = STOP_TIMEOUT.saturating_sub(stopping.elapsed());
        match rx.recv_timeout(left) {
            Ok((i, incarnation, Line::Report(Report::Counters(c)))) => {
                if let Some(slot) = procs[i].counters.get_mut(incarnation as usize) {
                    *slot = *c;
                }
            }
            Ok((i, incarnation, Line::Exited)) => {
                if procs[i].incarnation == incarnation {
                    running[i] = false;
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    kill_all(&mut procs);
    let wall_s = stopping.duration_since(started).as_secs_f64();

    let totals = sum(&procs);
    let mut m = Metrics::default();
    let seconds = end.as_secs_f64();
    m.count("sim.events", timeline.events);
    m.real("sim.virtual_time_s", round6(seconds));
    m.count("nodes.total", n as u64);
    m.count(
        "nodes.live_at_end",
        live.iter().filter(|&&l| l).count() as u64,
    );
    m.count("net.messages_sent", totals.frames_sent);
    m.count("net.messages_delivered", totals.frames_received);
    m.count("net.messages_cut", totals.cut_out + totals.cut_in);
    m.count("net.messages_to_dead", totals.unreachable);
    m.count("net.bytes_sent", totals.bytes_sent);
    m.count("net.bytes_delivered", totals.bytes_received);
    for (l, name) in prsm_sim::model::FULL_LAYERS.iter().enumerate() {
        m.count(
            &format!("net.by_layer.{name}.messages_sent"),
            totals.layer_messages.get(l).copied().unwrap_or(0),
        );
        m.count(
            &format!("net.by_layer.{name}.bytes_sent"),
            totals.layer_bytes.get(l).copied().unwrap_or(0),
        );
    }
    m.ratio(
        "net.delivery_ratio",
        totals.frames_received,
        totals.frames_sent,
    );
    let per_node_s = n as f64 * seconds;
    m.real(
        "net.messages_per_node_per_s",
        round6(totals.frames_sent as f64 / per_node_s),
    );
    m.real(
        "net.bytes_per_node_per_s",
        round6(totals.bytes_sent as f64 / per_node_s),
    );
    let node_rejected: u64 = totals.node_rejected.iter().sum();
    m.count("node.rejected", node_rejected);
    for reason in DropReason::ALL {
        m.count(
            &format!("node.rejected.{}", reason.name()),
            totals.node_rejected[reason as usize],
        );
    }
    m.count("node.effects_dropped", totals.effects_dropped);
    m.count("node.oversized_sends", totals.oversized_sends);
    m.count("node.timers_fired", totals.timers_fired);
    m.count("node.evidence", totals.evidence);
    let fault_count = |kind: &str, nodes: bool| -> u64 {
        faults
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| if nodes { u64::from(f.nodes) } else { 1 })
            .sum()
    };
    m.count("faults.crashes", fault_count("crash", true));
    m.count("faults.restarts", fault_count("restart", true));
    m.count("faults.partitions", fault_count("partition", false));
    m.count("faults.heals", fault_count("heal", false));
    m.count("live.frames_rejected", totals.rejected_total());
    for reason in Reject::ALL {
        m.count(
            &format!("live.frames_rejected.{}", reason.name()),
            totals.rejected[reason as usize],
        );
    }
    m.count("live.sends_unreachable", totals.unreachable);
    m.count("live.sends_queue_full", totals.queue_full);
    m.count("live.sends_too_large", totals.too_large);
    m.count(
        "live.connections",
        totals.connections_in + totals.connections_out,
    );
    m.count("live.persists", totals.persists);
    m.count("live.persist_errors", totals.persist_errors);
    let _ = end_at;
    model.finish(end, &live, &mut m);
    let violation = model.violation().cloned().map(|v| (v, timeline.events));
    let mut nodes_table = Table::new(&[
        "node",
        "incarnations",
        "live_at_end",
        "frames_sent",
        "frames_received",
        "frames_rejected",
        "persists",
        "pbft_executed_max",
        "pbft_executed_after_restart",
    ]);
    for (i, p) in procs.iter().enumerate() {
        let mut c = Counters::default();
        for k in &p.counters {
            c.add(k);
        }
        nodes_table.push(
            vec![
                i as f64,
                f64::from(p.incarnation + 1),
                f64::from(u8::from(live[i])),
                c.frames_sent as f64,
                c.frames_received as f64,
                c.rejected_total() as f64,
                c.persists as f64,
                timeline.executed_max[i] as f64,
                timeline.executed_after_restart[i] as f64,
            ],
            usize::MAX,
        );
    }
    let mut tables = model.tables();
    tables.push(("live_nodes".to_owned(), nodes_table));
    let mut warnings = model.warnings();
    warnings.push(
        "live run on loopback: the scenario's latency model is not applied (frames take loopback's own delay) and results vary from run to run".to_owned(),
    );
    Ok(LiveRun {
        output: RunOutput {
            seed,
            trace_hash: 0,
            events: timeline.events,
            metrics: m,
            series,
            tables,
            faults,
            cdfs: model.cdfs(),
            violation,
            warnings,
        },
        wall_s,
    })
}

fn sum(procs: &[Proc]) -> Counters {
    let mut total = Counters::new(prsm_sim::model::FULL_LAYERS.len());
    for p in procs {
        for c in &p.counters {
            total.add(c);
        }
    }
    total
}

fn dropped(c: &Counters) -> u64 {
    c.unreachable + c.queue_full + c.cut_out + c.cut_in + c.rejected_total()
}

/// Node `i`'s drop rules under the cut in force in `network`.
fn cut_order(network: &Network, i: usize, n: usize) -> Order<FullCommand> {
    let me = NodeId(i as u32);
    let ids = |f: &dyn Fn(NodeId) -> bool| -> Vec<u32> {
        (0..n as u32)
            .filter(|&j| j as usize != i && f(NodeId(j)))
            .collect()
    };
    Order::Cut {
        to: ids(&|j| network.is_cut(me, j)),
        from: ids(&|j| network.is_cut(j, me)),
    }
}

/// Settings of the scenario a node of the cluster runs; used by `prsm node` to build its part.
pub fn full_settings(scenario: &Scenario) -> Option<&FullSettings> {
    match &scenario.protocol {
        ProtocolConfig::Full(s) => Some(s),
        _ => None,
    }
}

/// How a live run compares with the simulator's run of the same scenario and seed.
pub struct Parity {
    pub report: String,
    /// Both runs decided the same requests in the same order (None: no PBFT decisions).
    pub same_decisions: Option<bool>,
}

fn table<'a>(output: &'a RunOutput, name: &str) -> Option<&'a Table> {
    output
        .tables
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t)
}

/// Side by side: expectations, PBFT decisions (order and content), and every latency
/// distribution both runs measured.
pub fn parity(
    file: &Path,
    scenario: &Scenario,
    sim: &RunOutput,
    sim_verdicts: &[prsm_sim::Verdict],
    live: &RunOutput,
    live_verdicts: &[prsm_sim::Verdict],
) -> Parity {
    use std::fmt::Write as _;
    let mut out = String::new();
    let name = file
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let _ = writeln!(out, "# Live and simulated: {}\n", scenario.name);
    let _ = writeln!(
        out,
        "The same scenario and seed ({}) run live on loopback (`prsm cluster {name}`) and in the simulator (`prsm run {name} --seed {}`, trace `{:016x}`). The simulator applies the scenario's latency model; live frames take loopback's own delay.\n",
        live.seed, sim.seed, sim.trace_hash
    );
    out.push_str("## Expectations\n\n| expectation | simulated | live |\n| --- | ---: | ---: |\n");
    let show = |v: &prsm_sim::Verdict| match v.actual {
        Some(a) => format!("{a} ({})", if v.pass { "pass" } else { "FAIL" }),
        None => "no value (FAIL)".to_owned(),
    };
    for (s, l) in sim_verdicts.iter().zip(live_verdicts) {
        let _ = writeln!(out, "| `{}` | {} | {} |", s.expectation, show(s), show(l));
    }
    let same_decisions = match (table(sim, "decisions"), table(live, "decisions")) {
        (Some(s), Some(l)) if !s.rows.is_empty() || !l.rows.is_empty() => {
            out.push_str("\n## PBFT decisions\n\n");
            let first_difference = s.rows.iter().zip(&l.rows).position(|(a, b)| a != b);
            let same = first_difference.is_none() && s.rows.len() == l.rows.len();
            if same {
                let _ = writeln!(
                    out,
                    "Identical: the same {} requests decided at the same sequence numbers, in the same order.",
                    s.rows.len()
                );
            } else {
                let _ = writeln!(
                    out,
                    "Different: {} decided requests simulated, {} live; first difference at row {} (`decisions.csv` of each run lists them as seq, client, timestamp).",
                    s.rows.len(),
                    l.rows.len(),
                    first_difference.unwrap_or(s.rows.len().min(l.rows.len()))
                );
            }
            Some(same)
        }
        _ => None,
    };
    out.push_str("\n## Latency distributions (ms)\n\n| metric | simulated p50 | live p50 | simulated p90 | live p90 | simulated p99 | live p99 | samples (sim / live) |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    let fmt = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.3}"));
    for (metric, _) in sim.metrics.iter() {
        let Some(base) = metric.strip_suffix(".p50") else {
            continue;
        };
        if !base.ends_with("_ms") {
            continue;
        }
        let get = |o: &RunOutput, q: &str| o.metrics.get(&format!("{base}.{q}"));
        if get(live, "p50").is_none() && get(sim, "p50").is_none() {
            continue;
        }
        let _ = writeln!(
            out,
            "| `{base}` | {} | {} | {} | {} | {} | {} | {} / {} |",
            fmt(get(sim, "p50")),
            fmt(get(live, "p50")),
            fmt(get(sim, "p90")),
            fmt(get(live, "p90")),
            fmt(get(sim, "p99")),
            fmt(get(live, "p99")),
            get(sim, "count").unwrap_or(0.0),
            get(live, "count").unwrap_or(0.0)
        );
    }
    Parity {
        report: out,
        same_decisions,
    }
}
