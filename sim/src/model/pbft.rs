//! The PBFT model: a committee of replicas, clients submitting requests, Byzantine schedules, and
//! the online checkers.
//!
//! Checkers run on every event a node emits, which is the only moment a replica's committed or
//! executed log changes:
//! - agreement: no two correct replicas commit different digests at one sequence number;
//! - prefix consistency: correct replicas' state digests agree at every sequence number they
//!   executed (or adopted by state transfer), so executed logs are prefixes of one another;
//! - validity: a correct replica executes only requests a client submitted.
//!
//! The liveness checker runs at the end: if at most f replicas are faulty (Byzantine or down) and
//! the network is healed, every request submitted by a client that is up must be executed by a
//! correct replica within `liveness_bound` of max(its submission, the last fault).
//!
//! "Correct" means: hosted on a node with no adversary entry, and not a replica with a twin.

use std::collections::BTreeMap;
use std::sync::Arc;

use prsm_protocol::pbft::{
    Digest, Kind, Misbehavior, NULL_DIGEST, Pbft, PbftCommand, PbftDurable, PbftEvent, PbftMessage,
    PbftStats, Role, Roster,
};
use prsm_protocol::random::below;
use prsm_protocol::{Duration, NodeId, Time};
use rand_chacha::ChaCha8Rng;

use super::{Model, Violation, ViolationKind};
use crate::metrics::{LatencyHistogram, Metrics, Table, round6};
use crate::scenario::{
    AdversaryBehavior, FaultAction, PartitionPlan, PbftSettings, Publish, Scenario,
};
use crate::topology::Topology;

struct RequestRecord {
    op: u64,
    submitted_at: Time,
    completed_at: Option<Time>,
    /// When a correct replica first executed it, and at which sequence number.
    executed: Option<(Time, u64)>,
}

pub struct PbftModel {
    /// Adversary entries that landed where they do nothing.
    warnings: Vec<String>,
    settings: PbftSettings,
    roster: Arc<Roster>,
    roles: Vec<Role>,
    schedules: Vec<Vec<Misbehavior>>,
    /// Nodes with an adversary entry or hosting a twinned replica: not checked.
    faulty_node: Vec<bool>,
    faulty_replicas: u32,
    clients: Vec<u32>,
    workload: Option<Publish>,
    submitted: u64,
    /// When the fault timeline last changes the network or the set of live nodes.
    faults_end: Time,
    partitioned_at_end: bool,
    // Checker state.
    committed: BTreeMap<u64, (Digest, u32, u64)>,
    states: BTreeMap<u64, (u64, u32)>,
    requests: BTreeMap<(NodeId, u64), RequestRecord>,
    violation: Option<Violation>,
    // Metrics.
    stats: PbftStats,
    client_latency: LatencyHistogram,
    commit_latency: LatencyHistogram,
    view_change: LatencyHistogram,
    primary_replacement: LatencyHistogram,
    refused: u64,
    /// While a partition is in force: each node's component, and the highest sequence number
    /// executed anywhere when it began.
    cut: Option<(Vec<u32>, u64)>,
    /// Components in which a correct replica executed a new sequence number during the cut.
    committing: std::collections::BTreeSet<u32>,
    committing_sides_max: u64,
    highest_executed: u64,
    /// Clients that left / re-entered the primary partition.
    suspensions: u64,
    resumptions: u64,
    executed_twice: u64,
    null_decisions: u64,
    view_changes: u64,
    highest_view: u64,
    state_transfers: u64,
    checkpoints_stable: u64,
    safety_violations: u64,
    first_submit: Option<Time>,
    last_completion: Time,
    interval_completed: u64,
    samples: Table,
    /// Each sequence number's requests, in the order correct replicas first executed them: the
    /// decisions, compared between a simulated and a live run of one scenario.
    decisions: Table,
    samples_max: usize,
    /// When each node crashed, while it is down (for the membership metrics).
    down_since: Vec<Option<Time>>,
    /// From a replica's crash to a correct replica learning of it from the health layer.
    down_noticed: LatencyHistogram,
    down_notices: u64,
    false_down_notices: u64,
    up_notices: u64,
}

impl PbftModel {
    pub fn new(scenario: &Scenario, settings: &PbftSettings, rng: &mut ChaCha8Rng) -> Self {
        let n_nodes = scenario.nodes.len();
        let live = vec![true; n_nodes];
        let topo = Topology {
            nodes: &scenario.nodes,
            regions: &scenario.regions,
            live: &live,
        };
        let mut roster = Roster::of(settings.committee.iter().map(|&i| NodeId(i)));
        let mut roles = vec![Role::default(); n_nodes];
        for (r, &node) in settings.committee.iter().enumerate() {
            roles[node as usize].replica = Some(r as u32);
        }
        let mut schedules = vec![Vec::new(); n_nodes];
        let mut faulty_node = vec![false; n_nodes];
        let mut twinned = vec![false; settings.committee.len()];
        let mut placed = Vec::new();
        for adversary in &scenario.adversaries {
            if matches!(
                adversary.behavior,
                AdversaryBehavior::Worker(_)
                    | AdversaryBehavior::Slander
                    | AdversaryBehavior::Flood { .. }
            ) {
                // Placed by the detection model.
                placed.push(Vec::new());
                continue;
            }
            let chosen = topo.resolve(&adversary.nodes, |_| true, rng);
            placed.push(chosen.clone());
            match adversary.behavior {
                AdversaryBehavior::Replica(behavior) => {
                    for id in chosen {
                        faulty_node[id.index()] = true;
                        schedules[id.index()].push(Misbehavior {
                            behavior,
                            from: Time(adversary.from.as_nanos()),
                            until: Time(adversary.until.as_nanos()),
                        });
                    }
                }
                AdversaryBehavior::Kad(_)
                | AdversaryBehavior::Worker(_)
                | AdversaryBehavior::Slander
                | AdversaryBehavior::Flood { .. } => {}
                AdversaryBehavior::Twin { of } => {
                    let Some(r) = roles[of as usize].replica else {
                        continue;
                    };
                    for id in chosen {
                        if roles[id.index()].replica.is_some() {
                            continue;
                        }
                        roster.hosts[r as usize].push(id);
                        roles[id.index()].replica = Some(r);
                        faulty_node[id.index()] = true;
                        twinned[r as usize] = true;
                    }
                }
            }
        }
        for (r, hosts) in roster.hosts.iter().enumerate() {
            if hosts.iter().any(|h| faulty_node[h.index()]) {
                twinned[r] = true;
                for h in hosts {
                    faulty_node[h.index()] = true;
                }
            }
        }
        let mut warnings = Vec::new();
        for (k, (adversary, chosen)) in scenario.adversaries.iter().zip(&placed).enumerate() {
            let twin = matches!(adversary.behavior, AdversaryBehavior::Twin { .. });
            if matches!(
                adversary.behavior,
                AdversaryBehavior::Kad(_)
                    | AdversaryBehavior::Worker(_)
                    | AdversaryBehavior::Slander
            ) {
                continue;
            }
            // A behaviour acts on the replica a node hosts; a twin only on a node with none.
            let idle: Vec<String> = chosen
                .iter()
                .filter(|id| {
                    let hosts = settings.committee.contains(&id.0);
                    if twin {
                        hosts
                    } else {
                        roles[id.index()].replica.is_none()
                    }
                })
                .map(|id| id.0.to_string())
                .collect();
            if idle.is_empty() {
                continue;
            }
            let shown = idle.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
            let more = if idle.len() > 8 { ", ..." } else { "" };
            warnings.push(if twin {
                format!(
                    "adversaries.{k} (twin): {} of the {} selected nodes already host a replica and got no twin (nodes {shown}{more})",
                    idle.len(),
                    chosen.len()
                )
            } else {
                format!(
                    "adversaries.{k}: {} of the {} selected nodes host no replica, so the behaviour makes no faulty replica there (nodes {shown}{more}); {} replicas are faulty in all",
                    idle.len(),
                    chosen.len(),
                    twinned.iter().filter(|&&t| t).count()
                )
            });
        }
        let clients: Vec<u32> = settings
            .clients
            .iter()
            .copied()
            .filter(|&i| roles[i as usize].replica.is_none())
            .collect();
        for &c in &clients {
            roles[c as usize].client = true;
        }
        let (faults_end, partitioned_at_end) = fault_horizon(scenario);
        PbftModel {
            settings: settings.clone(),
            roster: Arc::new(roster),
            roles,
            schedules,
            faulty_replicas: twinned.iter().filter(|&&t| t).count() as u32,
            faulty_node,
            clients,
            workload: scenario.workload.requests.clone(),
            down_since: vec![None; n_nodes],
            down_noticed: LatencyHistogram::millis(),
            down_notices: 0,
            false_down_notices: 0,
            up_notices: 0,
            submitted: 0,
            faults_end,
            partitioned_at_end,
            committed: BTreeMap::new(),
            states: BTreeMap::new(),
            requests: BTreeMap::new(),
            violation: None,
            stats: PbftStats::default(),
            client_latency: LatencyHistogram::millis(),
            commit_latency: LatencyHistogram::millis(),
            view_change: LatencyHistogram::millis(),
            primary_replacement: LatencyHistogram::millis(),
            refused: 0,
            cut: None,
            committing: std::collections::BTreeSet::new(),
            committing_sides_max: 0,
            highest_executed: 0,
            suspensions: 0,
            resumptions: 0,
            executed_twice: 0,
            null_decisions: 0,
            view_changes: 0,
            highest_view: 0,
            state_transfers: 0,
            checkpoints_stable: 0,
            safety_violations: 0,
            first_submit: None,
            last_completion: Time::ZERO,
            interval_completed: 0,
            samples: Table::new(&[
                "client",
                "timestamp",
                "submitted_s",
                "completed_s",
                "latency_ms",
            ]),
            decisions: Table::new(&["seq", "client", "timestamp"]),
            samples_max: scenario.samples_max,
            warnings,
        }
    }

    fn safety(&mut self, now: Time, message: String) {
        self.safety_violations += 1;
        if self.violation.is_none() {
            self.violation = Some(Violation {
                kind: ViolationKind::Safety,
                at: now,
                message,
            });
        }
    }

    fn check_state(&mut self, now: Time, replica: u32, seq: u64, state: u64) {
        match self.states.get(&seq) {
            Some(&(other, by)) if other != state => self.safety(
                now,
                format!(
                    "prefix consistency: replica {replica} has state {state:016x} after sequence number {seq}, replica {by} has {other:016x}"
                ),
            ),
            Some(_) => {}
            None => {
                self.states.insert(seq, (state, replica));
            }
        }
    }

    fn correct_replicas_down(&self, live: &[bool]) -> u32 {
        self.roster
            .hosts
            .iter()
            .filter(|hosts| {
                !hosts.iter().any(|h| self.faulty_node[h.index()])
                    && !hosts.iter().any(|h| live[h.index()])
            })
            .count() as u32
    }

    fn check_liveness(&mut self, end: Time, live: &[bool]) -> u64 {
        let faulty = self.faulty_replicas + self.correct_replicas_down(live);
        if faulty > self.roster.f() || self.partitioned_at_end || self.violation.is_some() {
            return 0;
        }
        let bound = self.settings.liveness_bound;
        let mut missed: Vec<(Time, NodeId, u64)> = self
            .requests
            .iter()
            .filter(|((client, _), _)| live[client.index()])
            .filter_map(|(&(client, ts), r)| {
                let deadline = r.submitted_at.max(self.faults_end) + bound;
                let late = r.executed.is_none_or(|(t, _)| t > deadline);
                (deadline <= end && late).then_some((deadline, client, ts))
            })
            .collect();
        missed.sort();
        if let Some(&(deadline, client, ts)) = missed.first() {
            let submitted = self
                .requests
                .get(&(client, ts))
                .map_or(Time::ZERO, |r| r.submitted_at);
            self.violation = Some(Violation {
                kind: ViolationKind::Liveness,
                at: deadline,
                message: format!(
                    "liveness: request {ts} of client {client}, submitted at {submitted}, was not executed by any correct replica by {deadline} ({bound} after the later of its submission and the last fault, at {}); {} requests missed their bound",
                    self.faults_end,
                    missed.len()
                ),
            });
        }
        missed.len() as u64
    }
}

/// When the fault timeline stops changing the network or membership, and whether it leaves a
/// partition in place.
fn fault_horizon(scenario: &Scenario) -> (Time, bool) {
    let mut end = Duration::ZERO;
    let mut faults: Vec<_> = scenario.faults.iter().collect();
    faults.sort_by_key(|f| f.at);
    let mut partitioned = false;
    for fault in faults {
        end = end.max(fault.at);
        match &fault.action {
            FaultAction::Partition(PartitionPlan::OneWay { .. }) | FaultAction::Partition(_) => {
                partitioned = true;
            }
            FaultAction::Heal => partitioned = false,
            FaultAction::Churn { until, .. } => end = end.max(*until),
            FaultAction::Crash(_) | FaultAction::Restart(_) => {}
        }
    }
    (Time(end.as_nanos()), partitioned)
}

impl PbftModel {
    /// Ends a partition window: the sides that committed in it.
    fn close_cut(&mut self) {
        self.committing_sides_max = self.committing_sides_max.max(self.committing.len() as u64);
        self.committing.clear();
    }

    /// Every node that hosts a replica, in roster order, and the replicas a quorum needs
    /// (2f + 1 of 3f + 1).
    pub fn validator_hosts(&self) -> (Vec<NodeId>, usize) {
        let hosts = self.roster.hosts.iter().flatten().copied().collect();
        let n = self.roster.hosts.len();
        (hosts, n - self.roster.f() as usize)
    }

    /// What a node needs to check PBFT proofs: the keys and the roster.
    pub fn identity(&self) -> prsm_protocol::detection::PbftIdentity {
        prsm_protocol::detection::PbftIdentity {
            keys: self.settings.config.keys,
            roster: self.roster.clone(),
        }
    }

    /// Every scheduled misbehaviour: (node, behaviour, from).
    pub fn misbehaviours(&self) -> Vec<(NodeId, prsm_protocol::pbft::Behavior, Time)> {
        self.schedules
            .iter()
            .enumerate()
            .flat_map(|(i, list)| {
                list.iter()
                    .map(move |m| (NodeId(i as u32), m.behavior, m.from))
            })
            .collect()
    }
}

impl Model for PbftModel {
    type P = Pbft;

    fn build(&self, id: NodeId, durable: Option<PbftDurable>) -> Pbft {
        Pbft::new(
            self.settings.config,
            self.roster.clone(),
            self.roles[id.index()],
            self.schedules[id.index()].clone(),
            durable,
        )
    }

    fn first_command_at(&self) -> Option<Time> {
        self.workload.as_ref()?.first_at()
    }

    fn command(
        &mut self,
        now: Time,
        rng: &mut ChaCha8Rng,
        live: &[bool],
    ) -> (Option<(NodeId, PbftCommand)>, Option<Time>) {
        let Some(w) = &self.workload else {
            return (None, None);
        };
        let size = w.payload_bytes;
        let up: Vec<u32> = self
            .clients
            .iter()
            .copied()
            .filter(|&c| live[c as usize])
            .collect();
        let mut command = None;
        if !up.is_empty() {
            let client = up[below(rng, up.len() as u64) as usize];
            self.submitted += 1;
            command = Some((
                NodeId(client),
                PbftCommand::Submit {
                    op: self.submitted,
                    size,
                },
            ));
        }
        let next = w.next_after(now, self.submitted);
        (command, next)
    }

    fn observe(&mut self, now: Time, node: NodeId, event: PbftEvent) {
        let correct = !self.faulty_node[node.index()];
        match event {
            PbftEvent::Submitted { request } => {
                self.first_submit.get_or_insert(now);
                self.requests.insert(
                    (request.client, request.timestamp),
                    RequestRecord {
                        op: request.op,
                        submitted_at: now,
                        completed_at: None,
                        executed: None,
                    },
                );
            }
            PbftEvent::Completed {
                request, latency, ..
            } => {
                if let Some(r) = self.requests.get_mut(&(request.client, request.timestamp)) {
                    r.completed_at.get_or_insert(now);
                }
                self.client_latency.record(latency.as_nanos());
                self.interval_completed += 1;
                self.last_completion = now;
                let row = vec![
                    f64::from(request.client.0),
                    request.timestamp as f64,
                    now.as_secs_f64() - latency.as_secs_f64(),
                    now.as_secs_f64(),
                    latency.as_millis_f64(),
                ];
                self.samples.push(row, self.samples_max);
            }
            PbftEvent::Refused => self.refused += 1,
            PbftEvent::Suspended { .. } => self.suspensions += 1,
            PbftEvent::Resumed { .. } => self.resumptions += 1,
            PbftEvent::Committed {
                replica,
                view,
                seq,
                digest,
                latency,
            } if correct => {
                self.commit_latency.record(latency.as_nanos());
                match self.committed.get(&seq) {
                    Some(&(other, by, by_view)) if other != digest => self.safety(
                        now,
                        format!(
                            "agreement: replica {replica} (node {node}) committed digest {:016x} at sequence number {seq} in view {view}, but replica {by} committed {:016x} in view {by_view}",
                            digest.0, other.0
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        if digest == NULL_DIGEST {
                            self.null_decisions += 1;
                        }
                        self.committed.insert(seq, (digest, replica, view));
                    }
                }
            }
            PbftEvent::Executed {
                replica,
                seq,
                state,
                requests,
                ..
            } if correct => {
                self.check_state(now, replica, seq, state);
                if let Some((components, base)) = &self.cut
                    && seq > *base
                    && let Some(&c) = components.get(node.index())
                {
                    self.committing.insert(c);
                }
                if seq > self.highest_executed {
                    for r in requests.iter() {
                        let row = vec![seq as f64, f64::from(r.client.0), r.timestamp as f64];
                        self.decisions.push(row, self.samples_max);
                    }
                }
                self.highest_executed = self.highest_executed.max(seq);
                for request in requests {
                    let key = (request.client, request.timestamp);
                    let Some(record) = self.requests.get_mut(&key) else {
                        self.safety(
                            now,
                            format!(
                                "validity: replica {replica} (node {node}) executed request {} of client {}, which was never submitted",
                                request.timestamp, request.client
                            ),
                        );
                        continue;
                    };
                    if record.op != request.op {
                        let message = format!(
                            "validity: replica {replica} executed request {} of client {} with an operation the client never submitted",
                            request.timestamp, request.client
                        );
                        self.safety(now, message);
                        continue;
                    }
                    match record.executed {
                        None => record.executed = Some((now, seq)),
                        Some((_, s)) if s != seq => self.executed_twice += 1,
                        Some(_) => {}
                    }
                }
            }
            PbftEvent::StateTransferred {
                replica,
                seq,
                state,
            } if correct => {
                self.state_transfers += 1;
                self.check_state(now, replica, seq, state);
            }
            PbftEvent::CheckpointStable { .. } if correct => self.checkpoints_stable += 1,
            PbftEvent::ReplicaDown { down, .. } if correct => {
                self.down_notices += 1;
                // Down means every host of the replica is down; the latest crash counts.
                let crashed = self.roster.hosts[down as usize]
                    .iter()
                    .map(|h| self.down_since[h.index()])
                    .collect::<Option<Vec<Time>>>()
                    .and_then(|t| t.into_iter().max());
                match crashed {
                    Some(at) => self.down_noticed.record((now - at).as_nanos()),
                    None => self.false_down_notices += 1,
                }
            }
            PbftEvent::ReplicaUp { .. } if correct => self.up_notices += 1,
            PbftEvent::ViewChangeStarted { .. } if correct => self.view_changes += 1,
            PbftEvent::NewViewInstalled { view, elapsed, .. } if correct => {
                if view > self.highest_view {
                    // The first correct replica in a new view: clients were stuck since the
                    // oldest request still unexecuted was submitted.
                    let stuck_since = self
                        .requests
                        .values()
                        .filter(|r| r.executed.is_none())
                        .map(|r| r.submitted_at)
                        .min();
                    if let Some(t) = stuck_since {
                        self.primary_replacement.record((now - t).as_nanos());
                    }
                }
                self.highest_view = self.highest_view.max(view);
                self.view_change.record(elapsed.as_nanos());
            }
            _ => {}
        }
    }

    fn started(&mut self, _now: Time, node: NodeId) {
        self.down_since[node.index()] = None;
    }

    fn crashed(&mut self, now: Time, node: NodeId) {
        self.down_since[node.index()] = Some(now);
    }

    fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    fn processing_cost(&self, msg: &PbftMessage) -> Duration {
        Duration::from_nanos(
            self.settings
                .signature_verify
                .as_nanos()
                .saturating_mul(u64::from(msg.signatures())),
        )
    }

    fn has_processing_cost(&self) -> bool {
        self.settings.signature_verify > Duration::ZERO
    }

    fn retire(&mut self, node: &Pbft) {
        let s = node.stats();
        for (a, b) in self.stats.oversized.iter_mut().zip(s.oversized) {
            *a += b;
        }
        for (a, b) in self.stats.sent.iter_mut().zip(s.sent) {
            *a += b;
        }
        self.stats.duplicates += s.duplicates;
        self.stats.stale += s.stale;
        self.stats.future_dropped += s.future_dropped;
        self.stats.invalid += s.invalid;
        self.stats.equivocations_seen += s.equivocations_seen;
        self.stats.queue_full += s.queue_full;
        self.stats.byzantine_dropped += s.byzantine_dropped;
        self.stats.byzantine_replayed += s.byzantine_replayed;
        self.stats.client_retransmissions += s.client_retransmissions;
        self.stats.held += s.held;
    }

    fn series_columns(&self) -> Vec<&'static str> {
        vec!["pbft_completed", "pbft_view"]
    }

    fn sample(&mut self, out: &mut Vec<f64>) {
        out.push(self.interval_completed as f64);
        out.push(self.highest_view as f64);
        self.interval_completed = 0;
    }

    fn cut(&mut self, _now: Time, components: Option<&[u32]>) {
        self.close_cut();
        self.cut = components.map(|c| (c.to_vec(), self.highest_executed));
    }

    fn finish(&mut self, end: Time, live: &[bool], metrics: &mut Metrics) {
        let missed = self.check_liveness(end, live);
        self.close_cut();
        let m = metrics;
        m.count("pbft.committing_sides_max", self.committing_sides_max);
        m.count("pbft.n", u64::from(self.roster.n()));
        m.count("pbft.f", u64::from(self.roster.f()));
        m.count("pbft.byzantine_replicas", u64::from(self.faulty_replicas));
        m.count("pbft.safety_violations", self.safety_violations);
        m.count("pbft.liveness_violations", missed);
        let submitted = self.requests.len() as u64;
        let completed = self
            .requests
            .values()
            .filter(|r| r.completed_at.is_some())
            .count() as u64;
        let executed = self
            .requests
            .values()
            .filter(|r| r.executed.is_some())
            .count() as u64;
        m.count("pbft.requests_issued", self.submitted);
        m.count("pbft.requests_submitted", submitted);
        m.count("pbft.requests_completed", completed);
        m.count("pbft.requests_executed", executed);
        m.count(
            "pbft.requests_lost",
            self.submitted.saturating_sub(completed),
        );
        m.count("pbft.requests_refused", self.refused);
        m.count("pbft.clients_suspended", self.suspensions);
        m.count("pbft.clients_resumed", self.resumptions);
        m.count("pbft.requests_held", self.stats.held);
        m.count("pbft.requests_executed_twice", self.executed_twice);
        m.ratio("pbft.completion_rate", completed, self.submitted);
        let decisions = self.committed.len() as u64;
        m.count("pbft.decisions", decisions);
        m.count("pbft.null_decisions", self.null_decisions);
        m.count("pbft.view_changes", self.view_changes);
        m.count("pbft.highest_view", self.highest_view);
        m.count("pbft.state_transfers", self.state_transfers);
        m.count("pbft.checkpoints_stable", self.checkpoints_stable);
        let s = self.stats;
        let mut total = 0;
        for kind in Kind::ALL {
            let sent = s.sent[kind as usize];
            total += sent;
            m.count(&format!("pbft.messages.{}", kind.name()), sent);
            m.count(
                &format!("pbft.oversized.{}", kind.name()),
                s.oversized[kind as usize],
            );
        }
        m.count("pbft.messages", total);
        if decisions > 0 {
            m.real(
                "pbft.messages_per_decision",
                round6(total as f64 / decisions as f64),
            );
            let bytes = m.get("net.bytes_sent").unwrap_or(0.0);
            m.real("pbft.bytes_per_decision", round6(bytes / decisions as f64));
        }
        if let Some(first) = self.first_submit
            && self.last_completion > first
        {
            let span = (self.last_completion - first).as_secs_f64();
            m.real("pbft.throughput_rps", round6(completed as f64 / span));
        }
        m.count("pbft.duplicates", s.duplicates);
        m.count("pbft.stale", s.stale);
        m.count("pbft.invalid", s.invalid);
        m.count("pbft.equivocations_seen", s.equivocations_seen);
        m.count("pbft.future_dropped", s.future_dropped);
        m.count("pbft.queue_full", s.queue_full);
        m.count("pbft.byzantine_dropped", s.byzantine_dropped);
        m.count("pbft.byzantine_replayed", s.byzantine_replayed);
        m.count("pbft.client_retransmissions", s.client_retransmissions);
        m.histogram("pbft.client_latency_ms", &self.client_latency);
        m.histogram("pbft.commit_latency_ms", &self.commit_latency);
        m.histogram("pbft.view_change_ms", &self.view_change);
        m.histogram("pbft.primary_replacement_ms", &self.primary_replacement);
        if self.down_notices + self.up_notices > 0 {
            m.count("pbft.replica_down_notices", self.down_notices);
            m.count("pbft.replica_down_false", self.false_down_notices);
            m.count("pbft.replica_up_notices", self.up_notices);
            m.histogram("pbft.replica_down_detect_ms", &self.down_noticed);
        }
    }

    fn tables(&mut self) -> Vec<(String, Table)> {
        vec![
            ("requests".to_owned(), std::mem::take(&mut self.samples)),
            ("decisions".to_owned(), std::mem::take(&mut self.decisions)),
        ]
    }

    fn cdfs(&self) -> Vec<(String, Vec<(f64, f64)>)> {
        vec![
            (
                "pbft.client_latency_ms".to_owned(),
                self.client_latency.cdf(),
            ),
            (
                "pbft.commit_latency_ms".to_owned(),
                self.commit_latency.cdf(),
            ),
        ]
    }
}

/// Metric names this model publishes, for the catalog.
pub const PBFT_COUNTS: &[&str] = &[
    "pbft.n",
    "pbft.f",
    "pbft.byzantine_replicas",
    "pbft.safety_violations",
    "pbft.liveness_violations",
    "pbft.requests_issued",
    "pbft.requests_submitted",
    "pbft.requests_completed",
    "pbft.requests_executed",
    "pbft.requests_lost",
    "pbft.requests_refused",
    "pbft.committing_sides_max",
    "pbft.clients_suspended",
    "pbft.clients_resumed",
    "pbft.requests_held",
    "pbft.requests_executed_twice",
    "pbft.decisions",
    "pbft.null_decisions",
    "pbft.view_changes",
    "pbft.highest_view",
    "pbft.state_transfers",
    "pbft.checkpoints_stable",
    "pbft.messages",
    "pbft.messages.request",
    "pbft.messages.pre_prepare",
    "pbft.messages.prepare",
    "pbft.messages.commit",
    "pbft.messages.reply",
    "pbft.messages.checkpoint",
    "pbft.messages.view_change",
    "pbft.messages.new_view",
    "pbft.messages.fetch_state",
    "pbft.messages.state_reply",
    "pbft.messages.status",
    "pbft.messages.fetch_view_changes",
    "pbft.oversized.request",
    "pbft.oversized.pre_prepare",
    "pbft.oversized.prepare",
    "pbft.oversized.commit",
    "pbft.oversized.reply",
    "pbft.oversized.checkpoint",
    "pbft.oversized.view_change",
    "pbft.oversized.new_view",
    "pbft.oversized.fetch_state",
    "pbft.oversized.state_reply",
    "pbft.oversized.status",
    "pbft.oversized.fetch_view_changes",
    "pbft.duplicates",
    "pbft.stale",
    "pbft.invalid",
    "pbft.equivocations_seen",
    "pbft.future_dropped",
    "pbft.queue_full",
    "pbft.byzantine_dropped",
    "pbft.byzantine_replayed",
    "pbft.client_retransmissions",
    "pbft.replica_down_notices",
    "pbft.replica_down_false",
    "pbft.replica_up_notices",
];
pub const PBFT_REALS: &[&str] = &[
    "pbft.completion_rate",
    "pbft.messages_per_decision",
    "pbft.bytes_per_decision",
    "pbft.throughput_rps",
];
pub const PBFT_HISTOGRAMS: &[&str] = &[
    "pbft.client_latency_ms",
    "pbft.commit_latency_ms",
    "pbft.view_change_ms",
    "pbft.primary_replacement_ms",
    "pbft.replica_down_detect_ms",
];
