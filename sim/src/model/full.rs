//! The full node's model: the sum of its layers' models. Each layer keeps its own model (the one
//! it has when it runs alone: [`KadModel`], [`SwimModel`], [`LocalModel`], [`PbftModel`]); this
//! one builds each node from the parts its role runs, merges the layers' workloads in time order,
//! routes every event to its layer's model, and adds what only the composition has: each layer's
//! share of the traffic and of the memory, and the notices between layers.

use prsm_protocol::full::{Full, FullCommand, FullDurable, FullEvent, FullMessage, FullParts};
use prsm_protocol::{Duration, Limits, NodeId, Time};
use rand_chacha::ChaCha8Rng;

use super::detection::{ByzantinePlan, DetectionModel};
use super::healing::{PartitionModel, RegistryModel};
use super::{
    KadModel, LocalModel, Model, PbftModel, RoutingModel, SwimModel, Violation, WorkloadStep,
};
use crate::metrics::{Metrics, Table, round6};
use crate::scenario::{FullSettings, Scenario};

/// The layers in registration order, as metric names use them.
pub const FULL_LAYERS: &[&str] = Full::LAYERS;

pub struct FullModel {
    runs: Vec<u8>,
    limits: Limits,
    kad: Option<KadModel>,
    swim: Option<SwimModel>,
    local: Option<LocalModel>,
    pbft: Option<PbftModel>,
    routing: Option<RoutingModel>,
    detection: Option<DetectionModel>,
    partition: Option<PartitionModel>,
    registry: Option<RegistryModel>,
    /// When each layer's workload acts next (kademlia's lookups, PBFT's requests, tasks,
    /// registry writes).
    next: [Option<Time>; 4],
    /// Per node, its layers' memory when it last retired.
    memory: Vec<[usize; 8]>,
    node_memory: Vec<usize>,
    notices: (u64, u64),
    /// The latest instant the model heard of (samples carry no time).
    now: Time,
}

impl FullModel {
    pub fn new(scenario: &Scenario, settings: &FullSettings, rng: &mut ChaCha8Rng) -> Self {
        let n = scenario.node_count();
        let members =
            |bit: u8| -> Vec<bool> { settings.runs.iter().map(|m| m & bit != 0).collect() };
        let kad = settings
            .kad
            .as_ref()
            .map(|k| KadModel::new(scenario, k, members(FullSettings::KAD), rng));
        let pbft = settings
            .pbft
            .as_ref()
            .map(|p| PbftModel::new(scenario, p, rng));
        let mut routing = settings.routing.as_ref().map(|r| {
            RoutingModel::new(
                scenario,
                r,
                members(FullSettings::ROUTING),
                settings.kad.is_some(),
                rng,
            )
        });
        // Byzantine workers and slanderers, placed after every other adversary.
        let mut plan = ByzantinePlan::resolve(scenario, rng);
        if let Some(p) = &pbft {
            for (node, behavior, from) in p.misbehaviours() {
                let class = crate::scenario::AdversaryBehavior::Replica(behavior).detection_class();
                if let Some(class) = class {
                    plan.add(node, class, from);
                }
            }
        }
        if let Some(r) = routing.as_mut() {
            r.set_faults(plan.faults.clone(), plan.flood.clone());
        }
        let detection = settings.detection.as_ref().map(|d| {
            DetectionModel::new(
                scenario,
                d,
                members(FullSettings::DETECTION),
                plan,
                pbft.as_ref().map(PbftModel::identity),
            )
        });
        let partition = settings.partition.as_ref().map(|p| {
            let (validators, quorum) = pbft
                .as_ref()
                .map(PbftModel::validator_hosts)
                .unwrap_or_default();
            PartitionModel::new(
                scenario,
                p,
                &members(FullSettings::PARTITION),
                validators,
                quorum,
                rng,
            )
        });
        let registry = settings
            .registry
            .as_ref()
            .map(|r| RegistryModel::new(scenario, r, members(FullSettings::REGISTRY), rng));
        let next = [
            kad.as_ref().and_then(Model::first_command_at),
            pbft.as_ref().and_then(Model::first_command_at),
            routing.as_ref().and_then(Model::first_command_at),
            registry.as_ref().and_then(RegistryModel::first_command_at),
        ];
        FullModel {
            runs: settings.runs.clone(),
            limits: scenario.limits.node,
            kad,
            swim: settings
                .swim
                .map(|c| SwimModel::new(c, scenario.samples_max)),
            local: settings
                .local
                .map(|l| LocalModel::new(n, l, members(FullSettings::LOCAL))),
            pbft,
            routing,
            detection,
            partition,
            registry,
            next,
            memory: vec![[0; 8]; n as usize],
            node_memory: vec![0; n as usize],
            notices: (0, 0),
            now: Time::ZERO,
        }
    }

    fn runs(&self, id: NodeId, bit: u8) -> bool {
        self.runs.get(id.index()).is_some_and(|m| m & bit != 0)
    }
}

impl Model for FullModel {
    type P = Full;

    fn build(&self, id: NodeId, durable: Option<FullDurable>) -> Full {
        let d = durable.clone().unwrap_or_default();
        let parts = FullParts {
            kad: self
                .kad
                .as_ref()
                .filter(|_| self.runs(id, FullSettings::KAD))
                .map(|m| m.build(id, d.kad)),
            swim: self
                .swim
                .as_ref()
                .filter(|_| self.runs(id, FullSettings::SWIM))
                .map(|m| m.build(id, d.swim)),
            local: self
                .local
                .as_ref()
                .filter(|_| self.runs(id, FullSettings::LOCAL))
                .map(|m| m.build(id, d.local)),
            pbft: self
                .pbft
                .as_ref()
                .filter(|_| self.runs(id, FullSettings::PBFT))
                .map(|m| m.build(id, d.pbft.clone())),
            routing: self
                .routing
                .as_ref()
                .filter(|_| self.runs(id, FullSettings::ROUTING))
                .map(|m| m.build(id)),
            detection: self
                .detection
                .as_ref()
                .filter(|_| self.runs(id, FullSettings::DETECTION))
                .map(|m| m.build(id, None)),
            partition: self
                .partition
                .as_ref()
                .filter(|_| self.runs(id, FullSettings::PARTITION))
                .map(|m| m.build(id)),
            registry: self
                .registry
                .as_ref()
                .filter(|_| self.runs(id, FullSettings::REGISTRY))
                .map(|m| m.build(id)),
        };
        Full::new(parts, durable, self.limits)
    }

    fn first_command_at(&self) -> Option<Time> {
        self.next.iter().flatten().min().copied()
    }

    /// The layer whose workload is due first acts (discovery before PBFT at the same instant);
    /// the other, if due too, acts at the same instant next.
    fn command(&mut self, now: Time, rng: &mut ChaCha8Rng, live: &[bool]) -> WorkloadStep<Full> {
        self.now = now;
        let due = self.next.iter().position(|t| t.is_some_and(|t| t <= now));
        let mut command = None;
        match due {
            Some(0) => {
                if let Some(k) = self.kad.as_mut() {
                    let (cmd, next) = k.command(now, rng, live);
                    command = cmd.map(|(n, c)| (n, FullCommand::Kad(c)));
                    self.next[0] = next;
                }
            }
            Some(1) => {
                if let Some(p) = self.pbft.as_mut() {
                    let (cmd, next) = p.command(now, rng, live);
                    command = cmd.map(|(n, c)| (n, FullCommand::Pbft(c)));
                    self.next[1] = next;
                }
            }
            Some(2) => {
                if let Some(r) = self.routing.as_mut() {
                    let (cmd, next) = r.command(now, rng, live);
                    command = cmd.map(|(n, c)| (n, FullCommand::Routing(c)));
                    self.next[2] = next;
                }
            }
            Some(_) => {
                if let Some(r) = self.registry.as_mut() {
                    let (cmd, next) = r.command(now, rng, live);
                    command = cmd.map(|(n, c)| (n, FullCommand::Registry(c)));
                    self.next[3] = next;
                }
            }
            None => {}
        }
        // A node that does not run the layer cannot take its command.
        let command = command.filter(|(n, c)| match c {
            FullCommand::Kad(_) => self.runs(*n, FullSettings::KAD),
            FullCommand::Pbft(_) => self.runs(*n, FullSettings::PBFT),
            FullCommand::Routing(_) => self.runs(*n, FullSettings::ROUTING),
            FullCommand::Registry(_) => self.runs(*n, FullSettings::REGISTRY),
            _ => false,
        });
        (command, self.first_command_at())
    }

    fn observe(&mut self, now: Time, node: NodeId, event: FullEvent) {
        self.now = now;
        match event {
            FullEvent::Kad(e) => {
                if let Some(m) = self.kad.as_mut() {
                    m.observe(now, node, e);
                }
            }
            FullEvent::Swim(e) => {
                if let Some(m) = self.swim.as_mut() {
                    m.observe(now, node, e);
                }
            }
            FullEvent::Local(e) => {
                if let Some(m) = self.local.as_mut() {
                    m.observe(now, node, e);
                }
            }
            FullEvent::Pbft(e) => {
                if let Some(m) = self.pbft.as_mut() {
                    m.observe(now, node, e);
                }
            }
            FullEvent::Routing(e) => {
                if let Some(m) = self.routing.as_mut() {
                    m.observe(now, node, e);
                }
            }
            FullEvent::Detection(e) => {
                if let Some(m) = self.detection.as_mut() {
                    m.observe(now, node, e);
                }
            }
            FullEvent::Partition(e) => {
                if let Some(m) = self.partition.as_mut() {
                    m.observe(now, node, e);
                }
            }
            FullEvent::Registry(e) => {
                if let Some(m) = self.registry.as_mut() {
                    m.observe(now, node, e);
                }
            }
        }
    }

    fn broadcast_scope(&self, from: NodeId) -> Option<std::ops::Range<u32>> {
        Some(
            self.local
                .as_ref()
                .and_then(|l| l.broadcast_scope(from))
                .unwrap_or(0..0),
        )
    }

    fn started(&mut self, now: Time, node: NodeId) {
        if let Some(m) = self.kad.as_mut() {
            m.started(now, node);
        }
        if let Some(m) = self.swim.as_mut() {
            m.started(now, node);
        }
        if let Some(m) = self.local.as_mut() {
            m.started(now, node);
        }
        if let Some(m) = self.pbft.as_mut() {
            m.started(now, node);
        }
        if let Some(m) = self.routing.as_mut() {
            m.started(now, node);
        }
        if let Some(m) = self.partition.as_mut()
            && self
                .runs
                .get(node.index())
                .is_some_and(|r| r & FullSettings::PARTITION != 0)
        {
            m.started(node);
        }
        if let Some(m) = self.registry.as_mut() {
            m.started(now, node);
        }
    }

    fn crashed(&mut self, now: Time, node: NodeId) {
        if let Some(m) = self.kad.as_mut() {
            m.crashed(now, node);
        }
        if let Some(m) = self.swim.as_mut() {
            m.crashed(now, node);
        }
        if let Some(m) = self.local.as_mut() {
            m.crashed(now, node);
        }
        if let Some(m) = self.pbft.as_mut() {
            m.crashed(now, node);
        }
        if let Some(m) = self.routing.as_mut() {
            m.crashed(now, node);
        }
        if let Some(m) = self.partition.as_mut() {
            m.crashed(node);
        }
        if let Some(m) = self.registry.as_mut() {
            m.crashed(now, node);
        }
    }

    fn cut(&mut self, now: Time, components: Option<&[u32]>) {
        self.now = now;
        if let Some(m) = self.pbft.as_mut() {
            m.cut(now, components);
        }
        if let Some(m) = self.partition.as_mut() {
            m.cut(now, components);
        }
    }

    fn retire(&mut self, full: &Full) {
        if let (Some(m), Some(p)) = (self.kad.as_mut(), full.kad()) {
            m.retire(p);
        }
        if let (Some(m), Some(p)) = (self.swim.as_mut(), full.swim()) {
            m.retire(p);
        }
        if let (Some(m), Some(p)) = (self.local.as_mut(), full.local()) {
            m.retire(p);
        }
        if let (Some(m), Some(p)) = (self.pbft.as_mut(), full.pbft()) {
            m.retire(p);
        }
        if let (Some(m), Some(p), Some(id)) = (self.routing.as_mut(), full.routing(), full.id()) {
            m.retire_node(id, p);
        }
        if let (Some(m), Some(p)) = (self.detection.as_mut(), full.detection()) {
            m.retire(p);
        }
        if let (Some(m), Some(p)) = (self.partition.as_mut(), full.partition()) {
            m.retire(p);
        }
        if let (Some(m), Some(p)) = (self.registry.as_mut(), full.registry()) {
            m.retire(p);
        }
        let (delivered, dropped) = full.notice_counts();
        self.notices.0 += delivered;
        self.notices.1 += dropped;
        if let Some(id) = full.id() {
            let mut per = [0usize; 8];
            for (slot, bytes) in per.iter_mut().zip(full.layer_memory()) {
                *slot = bytes;
            }
            self.memory[id.index()] = per;
            self.node_memory[id.index()] = full.memory_bytes();
        }
    }

    fn series_columns(&self) -> Vec<&'static str> {
        let mut c = Vec::new();
        if let Some(m) = &self.kad {
            c.extend(m.series_columns());
        }
        if let Some(m) = &self.swim {
            c.extend(m.series_columns());
        }
        if let Some(m) = &self.local {
            c.extend(m.series_columns());
        }
        if let Some(m) = &self.pbft {
            c.extend(m.series_columns());
        }
        if let Some(m) = &self.routing {
            c.extend(m.series_columns());
        }
        if let Some(m) = &self.partition {
            c.extend(m.series_columns());
        }
        if let Some(m) = &self.registry {
            c.extend(m.series_columns());
        }
        c
    }

    fn inspects(&self) -> bool {
        self.swim.as_ref().is_some_and(Model::inspects)
            || self.routing.as_ref().is_some_and(Model::inspects)
    }

    fn inspect(&mut self, full: &Full) {
        if let (Some(m), Some(p)) = (self.swim.as_mut(), full.swim()) {
            m.inspect(p);
        }
        if let (Some(m), Some(p)) = (self.routing.as_mut(), full.routing()) {
            m.inspect(p);
        }
    }

    fn sample(&mut self, out: &mut Vec<f64>) {
        if let Some(m) = self.kad.as_mut() {
            m.sample(out);
        }
        if let Some(m) = self.swim.as_mut() {
            m.sample(out);
        }
        if let Some(m) = self.local.as_mut() {
            m.sample(out);
        }
        if let Some(m) = self.pbft.as_mut() {
            m.sample(out);
        }
        if let Some(m) = self.routing.as_mut() {
            m.sample(out);
        }
        if let Some(m) = self.partition.as_mut() {
            m.sample(self.now, out);
        }
        if let Some(m) = &self.registry {
            m.sample(out);
        }
    }

    fn finish(&mut self, end: Time, live: &[bool], metrics: &mut Metrics) {
        if let Some(m) = self.kad.as_mut() {
            m.finish(end, live, metrics);
        }
        if let Some(m) = self.swim.as_mut() {
            m.finish(end, live, metrics);
        }
        if let Some(m) = self.local.as_mut() {
            m.finish(end, live, metrics);
        }
        if let Some(m) = self.pbft.as_mut() {
            m.finish(end, live, metrics);
        }
        if let Some(m) = self.routing.as_mut() {
            m.finish(end, live, metrics);
        }
        if let Some(m) = self.detection.as_mut() {
            if let Some(r) = &self.routing {
                m.set_lies(&r.lies);
            }
            m.finish(end, live, metrics);
        }
        if let (Some(r), Some(d)) = (&self.routing, &self.detection) {
            // Wrong results among tasks submitted before and after the last Byzantine node was
            // first detected.
            let settled = d.settled_at().unwrap_or(end);
            let count = |after: bool| {
                r.outcomes
                    .iter()
                    .filter(|(t, _)| (*t >= settled) == after)
                    .fold((0u64, 0u64), |(w, all), &(_, wrong)| {
                        (w + u64::from(wrong), all + 1)
                    })
            };
            let (wb, b) = count(false);
            let (wa, a) = count(true);
            metrics.ratio("tasks.wrong_share_before", wb, b);
            metrics.ratio("tasks.wrong_share_after", wa, a);
        }
        if let Some(m) = self.partition.as_mut() {
            m.finish(metrics);
        }
        if let Some(m) = self.registry.as_mut() {
            m.finish(metrics);
        }
        metrics.count("node.notices_delivered", self.notices.0);
        metrics.count("node.notices_dropped", self.notices.1);
        let up: Vec<usize> = (0..live.len()).filter(|&i| live[i]).collect();
        if !up.is_empty() {
            let total: usize = up.iter().map(|&i| self.node_memory[i]).sum();
            metrics.real(
                "node.memory_bytes_per_node",
                round6(total as f64 / up.len() as f64),
            );
        }
        for (layer, name) in FULL_LAYERS.iter().enumerate() {
            let bit = 1u8 << layer;
            let running: Vec<usize> = up
                .iter()
                .copied()
                .filter(|&i| self.runs[i] & bit != 0)
                .collect();
            metrics.count(&format!("node.by_layer.{name}.nodes"), running.len() as u64);
            if !running.is_empty() {
                let bytes: usize = running.iter().map(|&i| self.memory[i][layer]).sum();
                metrics.real(
                    &format!("node.by_layer.{name}.memory_bytes_per_node"),
                    round6(bytes as f64 / running.len() as f64),
                );
            }
        }
    }

    fn tables(&mut self) -> Vec<(String, Table)> {
        let mut t = Vec::new();
        if let Some(m) = self.kad.as_mut() {
            t.extend(m.tables());
        }
        if let Some(m) = self.swim.as_mut() {
            t.extend(m.tables());
        }
        if let Some(m) = self.local.as_mut() {
            t.extend(m.tables());
        }
        if let Some(m) = self.pbft.as_mut() {
            t.extend(m.tables());
        }
        if let Some(m) = self.routing.as_mut() {
            t.extend(m.tables());
        }
        if let Some(m) = self.detection.as_mut() {
            t.extend(m.tables());
        }
        t
    }

    fn violation(&self) -> Option<&Violation> {
        self.pbft.as_ref().and_then(Model::violation)
    }

    fn warnings(&self) -> Vec<String> {
        self.pbft.as_ref().map(Model::warnings).unwrap_or_default()
    }

    fn processing_cost(&self, msg: &FullMessage) -> Duration {
        match (msg, &self.pbft) {
            (FullMessage::Pbft(m), Some(p)) => p.processing_cost(m),
            _ => Duration::ZERO,
        }
    }

    fn has_processing_cost(&self) -> bool {
        self.pbft.as_ref().is_some_and(Model::has_processing_cost)
    }

    fn cdfs(&self) -> Vec<(String, Vec<(f64, f64)>)> {
        let mut c = Vec::new();
        if let Some(m) = &self.kad {
            c.extend(m.cdfs());
        }
        if let Some(m) = &self.swim {
            c.extend(m.cdfs());
        }
        if let Some(m) = &self.pbft {
            c.extend(m.cdfs());
        }
        if let Some(m) = &self.routing {
            c.extend(m.cdfs());
        }
        c
    }

    fn layer_names(&self) -> &'static [&'static str] {
        FULL_LAYERS
    }

    fn layer_of(&self, msg: &FullMessage) -> usize {
        msg.layer()
    }
}
