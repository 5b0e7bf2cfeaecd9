//! The partition and registry models: each node's partition detector and replicated registry,
//! the `writes` workload, and what healing costs and how long it takes.
//!
//! Ground truth is the scenario's `faults:`: a cut window runs from a `partition` to the next
//! `heal` (or the end; a later partition replaces an earlier one and continues the window).
//! A node's first detection inside a window counts toward the detection delay; a detection
//! outside every window and more than the detector's `window` after a heal is a false
//! detection. Convergence is measured from the last heal, once writes have stopped: the first
//! instant at which every live node running the registry holds the same state root.

use std::collections::BTreeMap;
use std::sync::Arc;

use prsm_protocol::partition::{Partition, PartitionConfig, PartitionEvent, PartitionStats};
use prsm_protocol::random::{below, sample_indices};
use prsm_protocol::registry::{
    Registry, RegistryCommand, RegistryConfig, RegistryEvent, RegistryStats,
};
use prsm_protocol::{NodeId, Time};
use rand_chacha::ChaCha8Rng;

use crate::metrics::{LatencyHistogram, Metrics, round6};
use crate::scenario::{FaultAction, PartitionSettings, Publish, RegistrySettings, Scenario};
use crate::topology::Topology;

pub const PARTITION_COUNTS: &[&str] = &[
    "partition.detections",
    "partition.false_detections",
    "partition.heals_seen",
    "partition.primary_lost",
    "partition.probes",
];
pub const PARTITION_REALS: &[&str] = &[
    "partition.detected_nodes_per_cut",
    "partition.primary_components_max",
];
pub const PARTITION_HISTOGRAMS: &[&str] = &["partition.detect_ms", "partition.heal_ms"];

pub const REGISTRY_COUNTS: &[&str] = &[
    "registry.writes",
    "registry.writes_refused",
    "registry.agreed",
    "registry.sessions",
    "registry.sessions_in_sync",
    "registry.comparisons",
    "registry.hashes_sent",
    "registry.entries_sent",
    "registry.keys_repaired",
    "registry.truncated",
    "registry.roots_end",
];
pub const REGISTRY_REALS: &[&str] = &[
    "registry.converged",
    "registry.converge_ms",
    "registry.round_trips_per_session",
];
pub const REGISTRY_HISTOGRAMS: &[&str] = &[];

/// Cut windows from the scenario's faults: (start, end), the end `None` while unhealed.
fn cut_windows(scenario: &Scenario) -> Vec<(Time, Option<Time>)> {
    let mut out: Vec<(Time, Option<Time>)> = Vec::new();
    for f in &scenario.faults {
        let t = Time(f.at.as_nanos());
        let open = out.last().is_some_and(|w| w.1.is_none());
        match f.action {
            FaultAction::Partition(_) if !open => out.push((t, None)),
            FaultAction::Heal if open => {
                if let Some(w) = out.last_mut() {
                    w.1 = Some(t);
                }
            }
            _ => {}
        }
    }
    out
}

/// For each node running the layer (`members`), `k` random other members; nothing for the rest.
/// Each draw is O(k), not O(members), so building 10,000 nodes stays linear.
fn seeds_per_node(members: &[bool], k: usize, rng: &mut ChaCha8Rng) -> Vec<Arc<[NodeId]>> {
    let list: Vec<u32> = (0..members.len() as u32)
        .filter(|&i| members[i as usize])
        .collect();
    (0..members.len() as u32)
        .map(|me| {
            if !members[me as usize] {
                return Arc::from(Vec::new());
            }
            if list.len() <= k + 1 {
                // Everyone else: no draw needed.
                return list
                    .iter()
                    .filter(|&&m| m != me)
                    .map(|&m| NodeId(m))
                    .collect();
            }
            let want = k;
            let mut picked: Vec<NodeId> = sample_indices(rng, list.len(), want + 1)
                .into_iter()
                .map(|i| list[i])
                .filter(|&m| m != me)
                .take(want)
                .map(NodeId)
                .collect();
            picked.sort_unstable();
            picked.into()
        })
        .collect()
}

pub struct PartitionModel {
    config: PartitionConfig,
    seeds: Vec<Arc<[NodeId]>>,
    windows: Vec<(Time, Option<Time>)>,
    /// Per node, the last window it detected in / healed after.
    detected_in: Vec<Option<usize>>,
    healed_after: Vec<Option<usize>>,
    partitioned: Vec<bool>,
    primary: Vec<bool>,
    live: Vec<bool>,
    member: Vec<bool>,
    cut_at: Time,
    detect_ms: LatencyHistogram,
    heal_ms: LatencyHistogram,
    detections: u64,
    false_detections: u64,
    heals_seen: u64,
    primary_lost: u64,
    /// Under a cut, each node's component (nodes that reach each other both ways).
    components: Option<Vec<u32>>,
    /// The most components that held a node believing it is in the primary partition at once.
    primary_components_max: u64,
    stats: PartitionStats,
}

impl PartitionModel {
    pub fn new(
        scenario: &Scenario,
        settings: &PartitionSettings,
        members: &[bool],
        validators: Vec<NodeId>,
        quorum: usize,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let n = scenario.nodes.len();
        let groups: Arc<[u16]> = if scenario.regions.len() >= 2 {
            scenario
                .nodes
                .iter()
                .map(|node| node.region.unwrap_or(u16::MAX))
                .collect()
        } else {
            Arc::from(Vec::new())
        };
        let seeds = seeds_per_node(members, settings.seeds, rng);
        PartitionModel {
            config: PartitionConfig {
                validators: validators.into(),
                quorum,
                groups,
                ..settings.config.clone()
            },
            seeds,
            windows: cut_windows(scenario),
            detected_in: vec![None; n],
            healed_after: vec![None; n],
            partitioned: vec![false; n],
            primary: vec![true; n],
            live: vec![false; n],
            member: members.to_vec(),
            cut_at: Time::ZERO,
            detect_ms: LatencyHistogram::millis(),
            heal_ms: LatencyHistogram::millis(),
            detections: 0,
            false_detections: 0,
            heals_seen: 0,
            primary_lost: 0,
            components: None,
            primary_components_max: 0,
            stats: PartitionStats::default(),
        }
    }

    pub fn build(&self, id: NodeId) -> Partition {
        Partition::new(
            PartitionConfig {
                seeds: self.seeds[id.index()].clone(),
                ..self.config.clone()
            },
            id,
        )
    }

    /// The window `now` falls in, if any.
    fn window_at(&self, now: Time) -> Option<usize> {
        self.windows
            .iter()
            .position(|&(from, to)| now >= from && to.is_none_or(|t| now < t))
    }

    pub fn observe(&mut self, now: Time, node: NodeId, event: PartitionEvent) {
        let i = node.index();
        match event {
            PartitionEvent::Detected { .. } => {
                self.detections += 1;
                self.partitioned[i] = true;
                match self.window_at(now) {
                    Some(w) => {
                        if self.detected_in[i] != Some(w) {
                            self.detected_in[i] = Some(w);
                            self.detect_ms
                                .record(now.saturating_since(self.windows[w].0).as_nanos());
                        }
                    }
                    None => {
                        // Late but explained: a window healed less than the detector's window ago.
                        let explained = self.windows.iter().any(|&(_, to)| {
                            to.is_some_and(|t| {
                                now >= t && now.saturating_since(t) <= self.config.window
                            })
                        });
                        if !explained {
                            self.false_detections += 1;
                        }
                    }
                }
            }
            PartitionEvent::Healed { .. } => {
                self.partitioned[i] = false;
                // The latest window that healed at or before now.
                let w = self
                    .windows
                    .iter()
                    .rposition(|&(_, to)| to.is_some_and(|t| t <= now));
                if let Some(w) = w
                    && self.healed_after[i] != Some(w)
                    && self.window_at(now).is_none()
                {
                    self.healed_after[i] = Some(w);
                    self.heals_seen += 1;
                    let to = self.windows[w].1.unwrap_or(now);
                    self.heal_ms.record(now.saturating_since(to).as_nanos());
                }
            }
            PartitionEvent::Primary { primary, .. } => {
                self.primary[i] = primary;
                if !primary {
                    self.primary_lost += 1;
                }
            }
        }
    }

    /// The components that hold a live node believing it is primary: two would be two
    /// primary partitions. Counted once beliefs have settled: at every sample from the
    /// detector's `window` after the cut on, and when the cut ends.
    fn count_primaries(&mut self) {
        let Some(components) = &self.components else {
            return;
        };
        let mut seen: Vec<u32> = (0..self.live.len())
            .filter(|&i| self.live[i] && self.primary[i] && self.member[i])
            .filter_map(|i| components.get(i).copied())
            .collect();
        seen.sort_unstable();
        seen.dedup();
        self.primary_components_max = self.primary_components_max.max(seen.len() as u64);
    }

    pub fn cut(&mut self, now: Time, components: Option<&[u32]>) {
        self.count_primaries();
        self.components = components.map(<[u32]>::to_vec);
        self.cut_at = now;
    }

    pub fn started(&mut self, node: NodeId) {
        let i = node.index();
        self.live[i] = true;
        self.partitioned[i] = false;
        self.primary[i] = true;
    }

    pub fn crashed(&mut self, node: NodeId) {
        self.live[node.index()] = false;
    }

    pub fn retire(&mut self, p: &Partition) {
        let s = p.stats();
        self.stats.probes += s.probes;
        self.stats.acks += s.acks;
    }

    pub fn series_columns(&self) -> Vec<&'static str> {
        vec!["partition_detected", "partition_primary"]
    }

    pub fn sample(&mut self, now: Time, out: &mut Vec<f64>) {
        if now.saturating_since(self.cut_at) >= self.config.window {
            self.count_primaries();
        }
        let count = |flags: &[bool]| {
            flags
                .iter()
                .zip(&self.live)
                .filter(|&(&f, &l)| f && l)
                .count() as f64
        };
        out.push(count(&self.partitioned));
        out.push(count(&self.primary));
    }

    pub fn finish(&mut self, metrics: &mut Metrics) {
        self.count_primaries();
        metrics.count("partition.detections", self.detections);
        metrics.count("partition.false_detections", self.false_detections);
        metrics.count("partition.heals_seen", self.heals_seen);
        metrics.count("partition.primary_lost", self.primary_lost);
        metrics.count("partition.probes", self.stats.probes);
        if !self.windows.is_empty() {
            // Without validators every node is primary: the figure would say nothing.
            if self.config.quorum > 0 {
                metrics.real(
                    "partition.primary_components_max",
                    self.primary_components_max as f64,
                );
            }
            metrics.real(
                "partition.detected_nodes_per_cut",
                round6(self.detect_ms.len() as f64 / self.windows.len() as f64),
            );
        }
        metrics.histogram("partition.detect_ms", &self.detect_ms);
        metrics.histogram("partition.heal_ms", &self.heal_ms);
    }
}

pub struct RegistryModel {
    config: RegistryConfig,
    seeds: Vec<Arc<[NodeId]>>,
    members: Vec<bool>,
    writers: Vec<u32>,
    workload: Option<Publish>,
    keys: u64,
    writes_issued: u64,
    next_write: Option<Time>,
    /// Per node, its state root while live.
    root: Vec<Option<u64>>,
    roots: BTreeMap<u64, u32>,
    last_heal: Option<Time>,
    writes_end: Time,
    converged_at: Option<Time>,
    stats: RegistryStats,
    sessions_ended: u64,
    session_messages: u64,
    in_sync: u64,
    refused: u64,
}

impl RegistryModel {
    pub fn new(
        scenario: &Scenario,
        settings: &RegistrySettings,
        members: Vec<bool>,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let n = scenario.nodes.len();
        let seeds = seeds_per_node(&members, settings.seeds, rng);
        let list: Vec<u32> = (0..n as u32).filter(|&i| members[i as usize]).collect();
        let workload = scenario.workload.writes.clone();
        let writers = match workload.as_ref().and_then(|w| w.targets.as_ref()) {
            Some(t) => {
                let live = vec![true; n];
                let topo = Topology {
                    nodes: &scenario.nodes,
                    regions: &scenario.regions,
                    live: &live,
                };
                topo.resolve(t, |i| members[i], rng)
                    .into_iter()
                    .map(|id| id.0)
                    .collect()
            }
            None => list,
        };
        let last_heal = cut_windows(scenario).iter().rev().find_map(|w| w.1);
        let writes_end = workload
            .as_ref()
            .map_or(Time::ZERO, |w| Time(w.stop.as_nanos()));
        RegistryModel {
            config: settings.config.clone(),
            seeds,
            members,
            writers,
            next_write: workload.as_ref().and_then(Publish::first_at),
            workload,
            keys: settings.keys,
            writes_issued: 0,
            root: vec![None; n],
            roots: BTreeMap::new(),
            last_heal,
            writes_end,
            converged_at: None,
            stats: RegistryStats::default(),
            sessions_ended: 0,
            session_messages: 0,
            in_sync: 0,
            refused: 0,
        }
    }

    pub fn build(&self, id: NodeId) -> Registry {
        Registry::new(
            RegistryConfig {
                seeds: self.seeds[id.index()].clone(),
                ..self.config.clone()
            },
            id,
        )
    }

    pub fn first_command_at(&self) -> Option<Time> {
        self.next_write
    }

    /// The next write: a random live writer, a random key, a random value.
    pub fn command(
        &mut self,
        now: Time,
        rng: &mut ChaCha8Rng,
        live: &[bool],
    ) -> (Option<(NodeId, RegistryCommand)>, Option<Time>) {
        let Some(w) = &self.workload else {
            return (None, None);
        };
        let up: Vec<u32> = self
            .writers
            .iter()
            .copied()
            .filter(|&i| live[i as usize])
            .collect();
        let mut cmd = None;
        if !up.is_empty() {
            let node = NodeId(up[below(rng, up.len() as u64) as usize]);
            let key = below(rng, self.keys);
            let value = below(rng, u64::MAX);
            cmd = Some((node, RegistryCommand::Write { key, value }));
        }
        self.writes_issued += 1;
        let next = now + w.every;
        self.next_write =
            (self.writes_issued < w.count && next.as_nanos() <= w.stop.as_nanos()).then_some(next);
        (cmd, self.next_write)
    }

    fn set_root(&mut self, now: Time, node: NodeId, root: Option<u64>) {
        let i = node.index();
        if let Some(old) = self.root[i].take()
            && let Some(c) = self.roots.get_mut(&old)
        {
            *c -= 1;
            if *c == 0 {
                self.roots.remove(&old);
            }
        }
        if let Some(r) = root {
            *self.roots.entry(r).or_default() += 1;
            self.root[i] = Some(r);
        }
        let settled_from = self.last_heal.map(|h| h.max(self.writes_end));
        if self.converged_at.is_none()
            && self.roots.len() == 1
            && settled_from.is_some_and(|s| now >= s)
        {
            self.converged_at = Some(now);
        }
    }

    pub fn observe(&mut self, now: Time, node: NodeId, event: RegistryEvent) {
        match event {
            RegistryEvent::Root(r) => self.set_root(now, node, Some(r)),
            RegistryEvent::Full => self.refused += 1,
            RegistryEvent::SessionEnded { messages, in_sync } => {
                self.sessions_ended += 1;
                self.in_sync += u64::from(in_sync);
                self.session_messages += u64::from(messages);
            }
        }
    }

    pub fn started(&mut self, now: Time, node: NodeId) {
        if self.members[node.index()] {
            // The registry is volatile: a node (re)starts empty.
            self.set_root(now, node, Some(0));
        }
    }

    pub fn crashed(&mut self, now: Time, node: NodeId) {
        self.set_root(now, node, None);
    }

    pub fn retire(&mut self, r: &Registry) {
        let s = r.stats();
        let t = &mut self.stats;
        t.writes += s.writes;
        t.agreed += s.agreed;
        t.sessions += s.sessions;
        t.comparisons += s.comparisons;
        t.hashes_sent += s.hashes_sent;
        t.entries_sent += s.entries_sent;
        t.repaired += s.repaired;
        t.truncated += s.truncated;
    }

    pub fn series_columns(&self) -> Vec<&'static str> {
        vec!["registry_roots"]
    }

    pub fn sample(&self, out: &mut Vec<f64>) {
        out.push(self.roots.len() as f64);
    }

    pub fn finish(&mut self, metrics: &mut Metrics) {
        let s = self.stats;
        metrics.count("registry.writes", s.writes);
        metrics.count("registry.writes_refused", self.refused);
        metrics.count("registry.agreed", s.agreed);
        metrics.count("registry.sessions", s.sessions);
        metrics.count("registry.sessions_in_sync", self.in_sync);
        metrics.count("registry.comparisons", s.comparisons);
        metrics.count("registry.hashes_sent", s.hashes_sent);
        metrics.count("registry.entries_sent", s.entries_sent);
        metrics.count("registry.keys_repaired", s.repaired);
        metrics.count("registry.truncated", s.truncated);
        metrics.count("registry.roots_end", self.roots.len() as u64);
        metrics.real(
            "registry.converged",
            if self.roots.len() <= 1 { 1.0 } else { 0.0 },
        );
        if let (Some(at), Some(h)) = (self.converged_at, self.last_heal) {
            let from = h.max(self.writes_end);
            metrics.real(
                "registry.converge_ms",
                round6(at.saturating_since(from).as_millis_f64()),
            );
        }
        let differing = self.sessions_ended.saturating_sub(self.in_sync);
        if differing > 0 {
            let messages = self.session_messages.saturating_sub(self.in_sync);
            metrics.real(
                "registry.round_trips_per_session",
                round6(messages as f64 / 2.0 / differing as f64),
            );
        }
    }
}
