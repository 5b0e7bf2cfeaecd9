//! The discovery model: Kademlia's bootstrap resolution, adversaries, a lookup workload, and
//! discovery metrics (join times, lookup rounds, hops, latency and success, routing-table accuracy
//! and memory, what attackers achieved). It is the `kademlia` layer's part of the full node's
//! model.

use std::sync::Arc;

use rand_chacha::ChaCha8Rng;

use prsm_protocol::kademlia::{
    Attack, Contact, KadBehavior, KadCommand, KadConfig, KadEvent, Kademlia, Key, Purpose,
};
use prsm_protocol::random::below;
use prsm_protocol::{NodeId, Time};

use super::Model;
use crate::metrics::{LatencyHistogram, Metrics, Table, round6};
use crate::scenario::{AdversaryBehavior, KadRole, KadSettings, Publish, Scenario};
use crate::topology::Topology;

pub struct KadModel {
    config: KadConfig,
    n: u32,
    /// Which nodes run discovery (all of them with `protocol: kademlia`).
    members: Vec<bool>,
    /// Nodes that lookups aim at (the workload's `targets`, or every honest node).
    lookup_targets: Option<Vec<u32>>,
    adversary: Vec<bool>,
    victims: Vec<u32>,
    workload: Option<Publish>,
    issued: u64,
    join_started: Vec<Option<Time>>,
    joined: Vec<bool>,
    first_peer: LatencyHistogram,
    k_peers: LatencyHistogram,
    join: LatencyHistogram,
    lookups: u64,
    found: u64,
    rounds: LatencyHistogram,
    hops: LatencyHistogram,
    latency: LatencyHistogram,
    queries: LatencyHistogram,
    lookup_timeouts: u64,
    join_lookups: u64,
    /// Contacts of every node retired at the end of the run, by node.
    tables: Vec<(NodeId, Vec<NodeId>, usize)>,
    timeouts: u64,
    evictions: u64,
    mismatched: u64,
    forgotten: u64,
    lies: u64,
    join_retries: u64,
    dropped: u64,
    refused: u64,
    pex_added: u64,
    interval_lookups: u64,
    interval_joined: u64,
    samples: Table,
    samples_max: usize,
}

impl KadModel {
    /// The discovery part of a run; `members` says which nodes run it.
    pub fn new(
        scenario: &Scenario,
        settings: &KadSettings,
        members: Vec<bool>,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let n = scenario.node_count();
        let live = vec![true; n as usize];
        let topo = Topology {
            nodes: &scenario.nodes,
            regions: &scenario.regions,
            live: &live,
        };
        let bootstrap = topo.resolve(&settings.bootstrap, |i| members[i], rng);
        let (attack, victims) = resolve_attack(scenario, &topo, &settings.config, rng);
        let adversary: Vec<bool> = (0..n).map(|i| attack.is_adversary(NodeId(i))).collect();
        let config = KadConfig {
            bootstrap: Arc::new(bootstrap),
            attack: Arc::new(attack),
            ..settings.config.clone()
        };
        let lookup_targets = scenario
            .workload
            .lookups
            .as_ref()
            .and_then(|w| w.targets.as_ref())
            .map(|t| {
                topo.resolve(t, |_| true, rng)
                    .into_iter()
                    .map(|id| id.0)
                    .collect()
            });
        KadModel {
            config,
            n,
            members,
            lookup_targets,
            adversary,
            victims,
            workload: scenario.workload.lookups.clone(),
            issued: 0,
            join_started: vec![None; n as usize],
            joined: vec![false; n as usize],
            first_peer: LatencyHistogram::millis(),
            k_peers: LatencyHistogram::millis(),
            join: LatencyHistogram::millis(),
            lookups: 0,
            found: 0,
            rounds: LatencyHistogram::plain(),
            hops: LatencyHistogram::plain(),
            latency: LatencyHistogram::millis(),
            queries: LatencyHistogram::plain(),
            lookup_timeouts: 0,
            join_lookups: 0,
            tables: Vec::new(),
            timeouts: 0,
            evictions: 0,
            mismatched: 0,
            forgotten: 0,
            lies: 0,
            join_retries: 0,
            dropped: 0,
            refused: 0,
            pex_added: 0,
            interval_lookups: 0,
            interval_joined: 0,
            samples: Table::new(&[
                "node",
                "time_s",
                "rounds",
                "hops",
                "queries",
                "latency_ms",
                "found",
            ]),
            samples_max: scenario.samples_max,
        }
    }

    /// The index in `tables` of each node's last retired table, for nodes live at the end.
    fn last_tables(&self, live: &[bool]) -> Vec<Option<usize>> {
        let mut last: Vec<Option<usize>> = vec![None; self.n as usize];
        for (i, (id, _, _)) in self.tables.iter().enumerate() {
            last[id.index()] = Some(i);
        }
        for (i, l) in last.iter_mut().enumerate() {
            if !live[i] {
                *l = None;
            }
        }
        last
    }

    /// What the attackers achieved: their share of honest routing tables and of each eclipse
    /// victim's.
    fn finish_attack(&self, live: &[bool], m: &mut Metrics) {
        let attackers = self.adversary.iter().filter(|&&a| a).count() as u64;
        if attackers == 0 {
            return;
        }
        m.count("kad.adversaries", attackers);
        let last = self.last_tables(live);
        let share = |t: &[NodeId]| -> (u64, u64) {
            let bad = t.iter().filter(|c| self.adversary[c.index()]).count() as u64;
            (bad, t.len() as u64)
        };
        let (mut bad, mut all) = (0, 0);
        for (i, slot) in last.iter().enumerate() {
            if let Some(k) = slot.filter(|_| !self.adversary[i]) {
                let (b, a) = share(&self.tables[k].1);
                bad += b;
                all += a;
            }
        }
        m.ratio("kad.adversary_contact_share", bad, all);
        let victims: Vec<f64> = self
            .victims
            .iter()
            .filter_map(|&v| last[v as usize])
            .map(|k| share(&self.tables[k].1))
            .filter(|&(_, a)| a > 0)
            .map(|(b, a)| b as f64 / a as f64)
            .collect();
        if !victims.is_empty() {
            m.real(
                "kad.victim_adversary_share",
                round6(victims.iter().sum::<f64>() / victims.len() as f64),
            );
        }
    }

    fn since_join(&self, node: NodeId, now: Time) -> Option<u64> {
        self.join_started[node.index()].map(|t| (now - t).as_nanos())
    }
}

impl Model for KadModel {
    type P = Kademlia;

    fn build(&self, id: NodeId, _durable: Option<()>) -> Kademlia {
        Kademlia::new(self.config.clone(), id)
    }

    fn started(&mut self, _now: Time, node: NodeId) {
        self.join_started[node.index()] = None;
    }

    fn first_command_at(&self) -> Option<Time> {
        self.workload.as_ref()?.first_at()
    }

    fn command(
        &mut self,
        now: Time,
        rng: &mut ChaCha8Rng,
        live: &[bool],
    ) -> (Option<(NodeId, KadCommand)>, Option<Time>) {
        let Some(w) = &self.workload else {
            return (None, None);
        };
        // Honest nodes look up; attackers' own lookups are not the network's service.
        let origins: Vec<u32> = (0..self.n)
            .filter(|&i| live[i as usize] && self.joined[i as usize] && !self.adversary[i as usize])
            .collect();
        let targets: Vec<u32> = match &self.lookup_targets {
            Some(t) => t.iter().copied().filter(|&i| live[i as usize]).collect(),
            None => (0..self.n)
                .filter(|&i| {
                    live[i as usize] && self.members[i as usize] && !self.adversary[i as usize]
                })
                .collect(),
        };
        let mut command = None;
        if !origins.is_empty() && !targets.is_empty() {
            let mut from = origins[below(rng, origins.len() as u64) as usize];
            let owner = targets[below(rng, targets.len() as u64) as usize];
            if owner == from && origins.len() > 1 {
                from = origins
                    [(origins.iter().position(|&o| o == from).unwrap_or(0) + 1) % origins.len()];
            }
            self.issued += 1;
            let target = self.config.key_of(NodeId(owner));
            command = Some((
                NodeId(from),
                KadCommand::Lookup {
                    target,
                    node: Some(NodeId(owner)),
                },
            ));
        }
        let next = w.next_after(now, self.issued);
        (command, next)
    }

    fn observe(&mut self, now: Time, node: NodeId, event: KadEvent) {
        match event {
            // Join times count from the first attempt of this life (retries keep it).
            KadEvent::JoinStarted => {
                let i = node.index();
                if self.join_started[i].is_none() {
                    self.join_started[i] = Some(now);
                }
                self.joined[i] = false;
            }
            KadEvent::FirstPeer => {
                if let Some(d) = self.since_join(node, now) {
                    self.first_peer.record(d);
                }
            }
            KadEvent::KPeers => {
                if let Some(d) = self.since_join(node, now) {
                    self.k_peers.record(d);
                }
            }
            KadEvent::Joined { .. } => {
                self.joined[node.index()] = true;
                self.interval_joined += 1;
                if let Some(d) = self.since_join(node, now) {
                    self.join.record(d);
                }
            }
            KadEvent::LookupDone {
                purpose,
                target,
                rounds,
                hops,
                queries,
                timeouts,
                latency,
                closest,
            } => {
                if purpose != Purpose::Query {
                    self.join_lookups += 1;
                    return;
                }
                // Found: the owner's contact was learned (from the own table or an answer), which
                // is what a lookup for a node is for, even if the owner's own answer was lost.
                let owner =
                    hops.is_some() || closest.iter().any(|&c| self.config.key_of(c) == target);
                self.lookups += 1;
                self.interval_lookups += 1;
                if owner {
                    self.found += 1;
                }
                self.rounds.record(u64::from(rounds));
                if let Some(h) = hops {
                    self.hops.record(u64::from(h));
                }
                self.queries.record(u64::from(queries));
                self.latency.record(latency.as_nanos());
                self.lookup_timeouts += u64::from(timeouts);
                let row = vec![
                    f64::from(node.0),
                    now.as_secs_f64(),
                    f64::from(rounds),
                    hops.map_or(f64::NAN, f64::from),
                    f64::from(queries),
                    latency.as_millis_f64(),
                    if owner { 1.0 } else { 0.0 },
                ];
                self.samples.push(row, self.samples_max);
            }
        }
    }

    fn retire(&mut self, node: &Kademlia) {
        let s = node.stats();
        self.mismatched += s.mismatched;
        self.forgotten += s.forgotten;
        self.lies += s.lies;
        self.join_retries += s.join_retries;
        self.timeouts += s.timeouts;
        self.evictions += s.evictions;
        self.dropped += s.contacts_dropped;
        self.refused += s.lookups_refused;
        self.pex_added += s.pex_added;
        let contacts = node.table().contacts().map(|c| c.node).collect();
        self.tables.push((node.id(), contacts, node.memory_bytes()));
    }

    fn series_columns(&self) -> Vec<&'static str> {
        vec!["kad_joined", "kad_lookups"]
    }

    fn sample(&mut self, out: &mut Vec<f64>) {
        out.push(self.interval_joined as f64);
        out.push(self.interval_lookups as f64);
        self.interval_joined = 0;
        self.interval_lookups = 0;
    }

    fn finish(&mut self, _end: Time, live: &[bool], m: &mut Metrics) {
        self.finish_attack(live, m);
        // Tables retired at the end belong to live nodes; a node retired earlier (a crash) and
        // restarted later appears twice, and its last table is the one that counts.
        let last = self.last_tables(live);
        let (mut nodes, mut contacts, mut live_contacts, mut memory, mut k_full) =
            (0u64, 0u64, 0u64, 0u64, 0u64);
        for (i, slot) in last.iter().enumerate() {
            let Some(t) = slot.filter(|_| live[i]) else {
                continue;
            };
            let (_, table, bytes) = &self.tables[t];
            nodes += 1;
            contacts += table.len() as u64;
            live_contacts += table.iter().filter(|c| live[c.index()]).count() as u64;
            memory += *bytes as u64;
            if table.len() >= self.config.k.min(self.n as usize - 1) {
                k_full += 1;
            }
        }
        // Joining is the honest nodes' service; attackers are not counted.
        let live_count = (0..self.n as usize)
            .filter(|&i| live[i] && self.members[i] && !self.adversary[i])
            .count() as u64;
        let joined = (0..self.n as usize)
            .filter(|&i| live[i] && self.members[i] && self.joined[i] && !self.adversary[i])
            .count() as u64;
        m.count("kad.joined", joined);
        m.ratio("kad.joined_rate", joined, live_count);
        m.count("kad.lookups", self.lookups);
        m.count("kad.lookups_found", self.found);
        m.ratio("kad.lookup_success_rate", self.found, self.lookups);
        m.count("kad.join_lookups", self.join_lookups);
        m.count("kad.lookup_timeouts", self.lookup_timeouts);
        m.count("kad.timeouts", self.timeouts);
        m.count("kad.evictions", self.evictions);
        m.count("kad.contacts_dropped", self.dropped);
        m.count("kad.lookups_refused", self.refused);
        m.count("kad.pex_added", self.pex_added);
        m.count("kad.mismatched", self.mismatched);
        m.count("kad.forgotten", self.forgotten);
        m.count("kad.lies", self.lies);
        m.count("kad.join_retries", self.join_retries);
        m.ratio("kad.table_size_mean", contacts, nodes);
        m.ratio("kad.memory_bytes_per_node", memory, nodes);
        m.ratio("kad.k_peers_rate", k_full, nodes);
        m.ratio("kad.table_accuracy", live_contacts, contacts);
        m.histogram("kad.join_first_peer_ms", &self.first_peer);
        m.histogram("kad.join_k_peers_ms", &self.k_peers);
        m.histogram("kad.join_ms", &self.join);
        m.histogram("kad.lookup_rounds", &self.rounds);
        m.histogram("kad.lookup_hops", &self.hops);
        m.histogram("kad.lookup_latency_ms", &self.latency);
        m.histogram("kad.lookup_queries", &self.queries);
    }

    fn tables(&mut self) -> Vec<(String, Table)> {
        vec![("lookups".to_owned(), std::mem::take(&mut self.samples))]
    }

    fn cdfs(&self) -> Vec<(String, Vec<(f64, f64)>)> {
        vec![
            ("kad.lookup_latency_ms".to_owned(), self.latency.cdf()),
            ("kad.join_ms".to_owned(), self.join.cdf()),
        ]
    }
}

pub const KAD_COUNTS: &[&str] = &[
    "kad.joined",
    "kad.lookups",
    "kad.lookups_found",
    "kad.join_lookups",
    "kad.lookup_timeouts",
    "kad.timeouts",
    "kad.evictions",
    "kad.contacts_dropped",
    "kad.lookups_refused",
    "kad.pex_added",
    "kad.mismatched",
    "kad.forgotten",
    "kad.lies",
    "kad.join_retries",
    "kad.adversaries",
];
pub const KAD_REALS: &[&str] = &[
    "kad.joined_rate",
    "kad.lookup_success_rate",
    "kad.table_size_mean",
    "kad.memory_bytes_per_node",
    "kad.k_peers_rate",
    "kad.table_accuracy",
    "kad.adversary_contact_share",
    "kad.victim_adversary_share",
];
pub const KAD_HISTOGRAMS: &[&str] = &[
    "kad.join_first_peer_ms",
    "kad.join_k_peers_ms",
    "kad.join_ms",
    "kad.lookup_rounds",
    "kad.lookup_hops",
    "kad.lookup_latency_ms",
    "kad.lookup_queries",
];

/// Attackers' roles, windows and ground ids, from the scenario's `adversaries:`.
fn resolve_attack(
    scenario: &Scenario,
    topo: &Topology<'_>,
    config: &KadConfig,
    rng: &mut ChaCha8Rng,
) -> (Attack, Vec<u32>) {
    let n = u64::from(scenario.node_count()).max(2);
    // ceil(log2 n): how many leading bits an honest node's nearest neighbour shares with it.
    let bits = (64 - (n - 1).leading_zeros()) as u8;
    let honest_key = |id: u32| Key::of(NodeId(id), config.key_seed);
    let mut attack = Attack::default();
    let mut victims = Vec::new();
    for adversary in &scenario.adversaries {
        let AdversaryBehavior::Kad(role) = adversary.behavior else {
            continue;
        };
        let chosen = topo.resolve(&adversary.nodes, |_| true, rng);
        let window = (
            Time(adversary.from.as_nanos()),
            Time(adversary.until.as_nanos()),
        );
        let behavior = match role {
            KadRole::Silent => KadBehavior::Silent,
            KadRole::Liar { nonexistent: true } => KadBehavior::LieNonexistent,
            KadRole::Liar { nonexistent: false } | KadRole::Sybil { .. } => {
                KadBehavior::LieColluders
            }
            KadRole::Eclipse { victim } => {
                victims.push(victim);
                KadBehavior::Eclipse {
                    victim: NodeId(victim),
                }
            }
        };
        for (j, id) in chosen.into_iter().enumerate() {
            // The target or victim itself, if the node set names it, stays honest.
            if let KadRole::Sybil { target: t } | KadRole::Eclipse { victim: t } = role
                && t == id.0
            {
                continue;
            }
            match role {
                // Ids sharing 8 more leading bits with the target than its nearest honest
                // neighbour does: closer to it than anyone.
                KadRole::Sybil { target } => {
                    let b = 255u8.saturating_sub(bits.saturating_add(8));
                    attack
                        .keys
                        .insert(id, honest_key(target).random_in_bucket(b, rng));
                }
                // Ids spread over the victim's eight buckets around its nearest neighbours,
                // where honest contacts are few and there is room.
                KadRole::Eclipse { victim } => {
                    let b = 255u8.saturating_sub(bits.saturating_sub(3) + (j % 8) as u8);
                    attack
                        .keys
                        .insert(id, honest_key(victim).random_in_bucket(b, rng));
                }
                KadRole::Silent | KadRole::Liar { .. } => {}
            }
            attack
                .roles
                .entry(id)
                .or_default()
                .push((behavior, window.0, window.1));
        }
    }
    attack.colluders = attack
        .roles
        .keys()
        .map(|&node| Contact {
            key: attack
                .keys
                .get(&node)
                .copied()
                .unwrap_or(honest_key(node.0)),
            node,
        })
        .collect();
    (attack, victims)
}
