//! The Kademlia model: bootstrap resolution, a lookup workload, and discovery metrics (join
//! times, lookup rounds, hops, latency and success, routing-table accuracy and memory).

use rand_chacha::ChaCha8Rng;

use prsm_protocol::kademlia::{KadCommand, KadConfig, KadEvent, Kademlia, Key, Purpose};
use prsm_protocol::random::below;
use prsm_protocol::{NodeId, Time};

use super::Model;
use crate::metrics::{LatencyHistogram, Metrics, Table, round6};
use crate::scenario::{KadSettings, Publish, Scenario};
use crate::topology::Topology;

pub struct KadModel {
    config: KadConfig,
    n: u32,
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
    dropped: u64,
    refused: u64,
    pex_added: u64,
    interval_lookups: u64,
    interval_joined: u64,
    samples: Table,
    samples_max: usize,
}

impl KadModel {
    pub fn new(scenario: &Scenario, settings: &KadSettings, rng: &mut ChaCha8Rng) -> Self {
        let n = scenario.node_count();
        let live = vec![true; n as usize];
        let topo = Topology {
            nodes: &scenario.nodes,
            regions: &scenario.regions,
            live: &live,
        };
        let bootstrap = topo.resolve(&settings.bootstrap, |_| true, rng);
        let config = KadConfig {
            bootstrap: std::sync::Arc::new(bootstrap),
            ..settings.config.clone()
        };
        KadModel {
            config,
            n,
            workload: scenario.workload.clone(),
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

    fn since_join(&self, node: NodeId, now: Time) -> Option<u64> {
        self.join_started[node.index()].map(|t| (now - t).as_nanos())
    }
}

impl Model for KadModel {
    type P = Kademlia;

    fn build(&self, id: NodeId, _durable: Option<()>) -> Kademlia {
        Kademlia::new(self.config.clone(), id)
    }

    fn first_command_at(&self) -> Option<Time> {
        let w = self.workload.as_ref()?;
        (w.start <= w.stop && w.count > 0).then_some(Time(w.start.as_nanos()))
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
        let (every, stop, count) = (w.every, w.stop, w.count);
        let origins: Vec<u32> = (0..self.n)
            .filter(|&i| live[i as usize] && self.joined[i as usize])
            .collect();
        let targets: Vec<u32> = (0..self.n).filter(|&i| live[i as usize]).collect();
        let mut command = None;
        if !origins.is_empty() && targets.len() > 1 {
            let from = origins[below(rng, origins.len() as u64) as usize];
            let mut owner = targets[below(rng, targets.len() as u64) as usize];
            if owner == from {
                owner = targets
                    [(targets.iter().position(|&t| t == from).unwrap_or(0) + 1) % targets.len()];
            }
            self.issued += 1;
            let target = Key::of(NodeId(owner), self.config.key_seed);
            command = Some((
                NodeId(from),
                KadCommand::Lookup {
                    target,
                    node: Some(NodeId(owner)),
                },
            ));
        }
        let next = now + every;
        let more = next.as_nanos() <= stop.as_nanos() && self.issued < count;
        (command, more.then_some(next))
    }

    fn observe(&mut self, now: Time, node: NodeId, event: KadEvent) {
        match event {
            KadEvent::JoinStarted => {
                self.join_started[node.index()] = Some(now);
                self.joined[node.index()] = false;
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
                let owner = hops.is_some()
                    || closest
                        .iter()
                        .any(|&c| Key::of(c, self.config.key_seed) == target);
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
        self.timeouts += s.timeouts;
        self.evictions += s.evictions;
        self.dropped += s.contacts_dropped;
        self.refused += s.lookups_refused;
        self.pex_added += s.pex_added;
        let contacts = node.table().contacts().map(|c| c.node).collect();
        self.tables.push((node.id(), contacts, node.memory_bytes()));
    }

    fn series_columns(&self) -> &'static [&'static str] {
        &["kad_joined", "kad_lookups"]
    }

    fn sample(&mut self, out: &mut Vec<f64>) {
        out.push(self.interval_joined as f64);
        out.push(self.interval_lookups as f64);
        self.interval_joined = 0;
        self.interval_lookups = 0;
    }

    fn finish(&mut self, _end: Time, live: &[bool], m: &mut Metrics) {
        // Tables retired at the end belong to live nodes; a node retired earlier (a crash) and
        // restarted later appears twice, and its last table is the one that counts.
        let mut last: Vec<Option<usize>> = vec![None; self.n as usize];
        for (i, (id, _, _)) in self.tables.iter().enumerate() {
            last[id.index()] = Some(i);
        }
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
        let live_count = live.iter().filter(|&&l| l).count() as u64;
        let joined = (0..self.n as usize)
            .filter(|&i| live[i] && self.joined[i])
            .count() as u64;
        m.count("kad.joined", joined);
        if live_count > 0 {
            m.real("kad.joined_rate", round6(joined as f64 / live_count as f64));
        }
        m.count("kad.lookups", self.lookups);
        m.count("kad.lookups_found", self.found);
        if self.lookups > 0 {
            m.real(
                "kad.lookup_success_rate",
                round6(self.found as f64 / self.lookups as f64),
            );
        }
        m.count("kad.join_lookups", self.join_lookups);
        m.count("kad.lookup_timeouts", self.lookup_timeouts);
        m.count("kad.timeouts", self.timeouts);
        m.count("kad.evictions", self.evictions);
        m.count("kad.contacts_dropped", self.dropped);
        m.count("kad.lookups_refused", self.refused);
        m.count("kad.pex_added", self.pex_added);
        if nodes > 0 {
            m.real(
                "kad.table_size_mean",
                round6(contacts as f64 / nodes as f64),
            );
            m.real(
                "kad.memory_bytes_per_node",
                round6(memory as f64 / nodes as f64),
            );
            m.real("kad.k_peers_rate", round6(k_full as f64 / nodes as f64));
        }
        if contacts > 0 {
            m.real(
                "kad.table_accuracy",
                round6(live_contacts as f64 / contacts as f64),
            );
        }
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
];
pub const KAD_REALS: &[&str] = &[
    "kad.joined_rate",
    "kad.lookup_success_rate",
    "kad.table_size_mean",
    "kad.memory_bytes_per_node",
    "kad.k_peers_rate",
    "kad.table_accuracy",
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
