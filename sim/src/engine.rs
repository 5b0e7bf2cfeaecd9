//! The engine: runs one scenario with one seed, driving every node through the shared `Node` step
//! function, the network model and the fault timeline, in (time, insertion) order.
//!
//! The loop follows the sans-IO run-loop rule: pop one event, feed one input, carry out every
//! effect it produced, then schedule the node's next timer wake-up. Each node has at most one live
//! wake-up in the queue; earlier ones are superseded by a generation number, so re-arming timers
//! never floods the queue.

use prsm_protocol::{Effect, Input, Node, NodeId, NodeStats, Protocol, Time, Wire};
use rand_chacha::ChaCha8Rng;
use thiserror::Error;

use crate::kernel::{EventQueue, Seeds, Stream, TraceHash, digest};
use crate::metrics::{LatencyHistogram, Metrics, Table, round6};
use crate::model::{Model, Violation};
use crate::network::{Network, Route};
use crate::scenario::{FaultAction, PartitionPlan, Scenario};
use crate::topology::Topology;

/// Why a run stopped before its end.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RunError {
    #[error(
        "the run processed {limit} events by {at} of virtual time and was stopped; raise limits.events_max or shorten the run"
    )]
    EventLimit { limit: u64, at: Time },
    #[error(
        "over {limit} events were pending at {at} of virtual time; raise limits.pending_events_max or lower the load"
    )]
    PendingLimit { limit: u64, at: Time },
    #[error(
        "virtual time stopped advancing: {limit} events at {at} (a zero-delay message or timer loop?); raise limits.events_per_instant_max if this is intended"
    )]
    Stalled { limit: u64, at: Time },
}

/// The engine's own columns of the time series, before the model's (a live cluster writes the
/// same ones).
pub const SERIES_COLUMNS: [&str; 9] = [
    "time_s",
    "live_nodes",
    "partition_sides",
    "messages_sent",
    "messages_delivered",
    "messages_dropped",
    "bytes_sent",
    "latency_p50_ms",
    "latency_p99_ms",
];

/// Everything a run produced.
#[derive(Debug)]
pub struct RunOutput {
    pub seed: u64,
    pub trace_hash: u64,
    pub events: u64,
    pub metrics: Metrics,
    pub series: Table,
    pub tables: Vec<(String, Table)>,
    /// Every fault as it fired.
    pub faults: Vec<FaultRecord>,
    /// Latency distributions as (quantile, milliseconds), by metric name.
    pub cdfs: Vec<(String, Vec<(f64, f64)>)>,
    /// What a checker found broken, and the number of the event that broke it; the run
    /// stopped there (safety) or at its end (liveness).
    pub violation: Option<(Violation, u64)>,
    /// What the run did that the scenario probably did not mean (an adversary drawn onto a node
    /// where its behaviour has no effect); deterministic, like everything else here.
    pub warnings: Vec<String>,
}

/// A fault as applied: when, what, and how many nodes it touched.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRecord {
    pub time_s: f64,
    /// `crash`, `restart`, `partition` (any kind: groups, isolate, by_region, one_way, between)
    /// or `heal`.
    pub kind: &'static str,
    pub nodes: u32,
    /// Network sides after the fault (see `Network::sides`): 1 when whole, the number of distinct
    /// sides under `groups`, `isolate` or `by_region`, 2 under `one_way` or `between`.
    pub sides: u32,
}

enum Event<P: Protocol> {
    /// `to` has spent its processing time on a message (see `accept`); its handler runs now.
    Process {
        from: NodeId,
        to: NodeId,
        msg: Box<P::Message>,
    },
    /// A message arrives at `to`'s network interface.
    Deliver {
        from: NodeId,
        to: NodeId,
        sent_at: Time,
        msg: Box<P::Message>,
    },
    Wake {
        node: NodeId,
        generation: u32,
    },
    Fault(u32),
    /// The next crash of churn fault `index`.
    Churn(u32),
    /// A churned node comes back.
    Revive(NodeId),
    Workload,
    Sample,
}

/// The most faults kept in the fault log (churn can fire many); the rest are counted.
const FAULT_LOG_LEN_MAX: usize = 100_000;

/// How often `run_with_progress` reports.
pub const PROGRESS_EVERY_EVENTS: u64 = 1 << 16;

/// Trace-hash kinds.
const TRACE_DELIVER: u8 = 0;
const TRACE_WAKE: u8 = 1;
const TRACE_FAULT: u8 = 2;
const TRACE_COMMAND: u8 = 3;
const TRACE_PROCESS: u8 = 4;

#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    sent: u64,
    delivered: u64,
    lost: u64,
    cut: u64,
    to_dead: u64,
    duplicated: u64,
    bad_address: u64,
    bytes_sent: u64,
    bytes_delivered: u64,
    evidence: u64,
    crashes: u64,
    restarts: u64,
    partitions: u64,
    heals: u64,
    stale_wakes: u64,
}

pub struct Engine<'s, M: Model> {
    scenario: &'s Scenario,
    model: M,
    seeds: Seeds,
    nodes: Vec<Option<Node<M::P>>>,
    live: Vec<bool>,
    durable: Vec<Option<<M::P as Protocol>::Durable>>,
    incarnation: Vec<u32>,
    wake_at: Vec<Option<Time>>,
    wake_generation: Vec<u32>,
    queue: EventQueue<Event<M::P>>,
    network: Network,
    fault_rng: ChaCha8Rng,
    workload_rng: ChaCha8Rng,
    now: Time,
    trace: TraceHash,
    counters: Counters,
    /// Messages and bytes sent per layer of a composed node (empty for one protocol).
    by_layer: Vec<(u64, u64)>,
    at_last_sample: Counters,
    latency: LatencyHistogram,
    interval_latency: LatencyHistogram,
    /// When each node's CPU is next free, and how long messages waited for it.
    busy_until: Vec<Time>,
    processing_wait: LatencyHistogram,
    /// Whether any node has a processing cost (most scenarios have none: skip the lookup).
    any_processing: bool,
    /// When each node's uplink is next free, and how long messages queued for it.
    uplink_free: Vec<Time>,
    uplink_wait: LatencyHistogram,
    any_bandwidth: bool,
    fault_log: Vec<FaultRecord>,
    fault_log_dropped: u64,
    retired: NodeStats,
    series: Table,
    scratch: Vec<Effect<M::P>>,
    pending_overflow: bool,
    /// A checker found a violation: stop after this event.
    halted: bool,
    any_model_cost: bool,
}

impl<'s, M: Model> Engine<'s, M> {
    pub fn new(scenario: &'s Scenario, seed: u64, model: M) -> Self {
        let n = scenario.nodes.len();
        let seeds = Seeds::new(seed);
        let mut fault_rng = seeds.stream(Stream::Faults);
        let live = vec![false; n];
        // Overrides are resolved once, at the start, against the initial membership.
        let override_sets = {
            let topo = Topology {
                nodes: &scenario.nodes,
                regions: &scenario.regions,
                live: &live,
            };
            scenario
                .network
                .overrides
                .iter()
                .map(|o| {
                    (
                        topo.resolve(&o.a, |_| true, &mut fault_rng),
                        topo.resolve(&o.b, |_| true, &mut fault_rng),
                    )
                })
                .collect()
        };
        let region_of = scenario.nodes.iter().map(|n| n.region).collect();
        let network = Network::new(
            &scenario.network,
            region_of,
            override_sets,
            seeds.stream(Stream::Network),
        );
        let mut columns = SERIES_COLUMNS.to_vec();
        columns.extend(model.series_columns());
        let any_model_cost = model.has_processing_cost();
        let layers = model.layer_names().len();
        Engine {
            scenario,
            model,
            seeds,
            nodes: (0..n).map(|_| None).collect(),
            live,
            durable: (0..n).map(|_| None).collect(),
            incarnation: vec![0; n],
            wake_at: vec![None; n],
            wake_generation: vec![0; n],
            queue: EventQueue::new(),
            network,
            fault_rng,
            workload_rng: seeds.stream(Stream::Workload),
            now: Time::ZERO,
            trace: TraceHash::default(),
            counters: Counters::default(),
            by_layer: vec![(0, 0); layers],
            at_last_sample: Counters::default(),
            latency: LatencyHistogram::millis(),
            interval_latency: LatencyHistogram::millis(),
            busy_until: vec![Time::ZERO; n],
            uplink_free: vec![Time::ZERO; n],
            uplink_wait: LatencyHistogram::millis(),
            any_bandwidth: scenario.nodes.iter().any(|n| n.bandwidth.is_some()),
            any_processing: scenario
                .nodes
                .iter()
                .any(|n| n.processing > prsm_protocol::Duration::ZERO),
            processing_wait: LatencyHistogram::millis(),
            fault_log: Vec::new(),
            fault_log_dropped: 0,
            retired: NodeStats::default(),
            series: Table::new(&columns),
            scratch: Vec::new(),
            pending_overflow: false,
            halted: false,
            any_model_cost,
        }
    }

    pub fn run(self) -> Result<RunOutput, RunError> {
        self.run_with_progress(&mut |_, _| {})
    }

    /// As [`Engine::run`], calling `progress(virtual time, events so far)` every
    /// [`PROGRESS_EVERY_EVENTS`] events. The callback cannot affect the run.
    pub fn run_with_progress(
        mut self,
        progress: &mut dyn FnMut(Time, u64),
    ) -> Result<RunOutput, RunError> {
        let end = Time(self.scenario.duration.as_nanos());
        let limits = self.scenario.limits;
        for (i, fault) in self.scenario.faults.iter().enumerate() {
            self.queue.push(fault.at.as_nanos(), Event::Fault(i as u32));
        }
        if let Some(at) = self.model.first_command_at() {
            self.queue.push(at.as_nanos(), Event::Workload);
        }
        self.queue
            .push(self.scenario.sample_every.as_nanos(), Event::Sample);
        for i in 0..self.nodes.len() {
            self.start_node(i);
        }
        let mut popped = 0u64;
        let (mut instant, mut at_instant) = (0u64, 0u64);
        while let Some(t) = self.queue.peek_time() {
            if t > end.as_nanos() {
                break;
            }
            let Some((t, event)) = self.queue.pop() else {
                break;
            };
            self.now = Time(t);
            popped += 1;
            if popped.is_multiple_of(PROGRESS_EVERY_EVENTS) {
                progress(self.now, popped);
            }
            if popped > limits.events_max {
                return Err(RunError::EventLimit {
                    limit: limits.events_max,
                    at: self.now,
                });
            }
            if t == instant {
                at_instant += 1;
                if at_instant > limits.events_per_instant_max {
                    return Err(RunError::Stalled {
                        limit: limits.events_per_instant_max,
                        at: self.now,
                    });
                }
            } else {
                (instant, at_instant) = (t, 1);
            }
            self.prefetch_ahead();
            self.dispatch(event);
            if self.pending_overflow {
                return Err(RunError::PendingLimit {
                    limit: limits.pending_events_max,
                    at: self.now,
                });
            }
            if self.halted {
                return Ok(self.finish());
            }
        }
        self.now = end;
        let last_sample_s = self.series.rows.last().map(|r| r[0]).unwrap_or(0.0);
        if end.as_secs_f64() > last_sample_s {
            self.sample();
        }
        Ok(self.finish())
    }

    /// Starts loading the state of the node an event a few places ahead will touch. With
    /// thousands of nodes the first access to a node is a cache miss and the largest cost of an
    /// event; prefetching lets several of those misses overlap.
    #[inline]
    fn prefetch_ahead(&self) {
        const LOOKAHEAD: usize = 32;
        let target = match self.queue.peek_ahead(LOOKAHEAD) {
            Some(Event::Deliver { to, msg, .. } | Event::Process { to, msg, .. }) => {
                // The boxed message too: its digest and handler read it first.
                crate::kernel::prefetch_read(&**msg);
                *to
            }
            Some(Event::Wake { node, .. }) => *node,
            _ => return,
        };
        if let Some(node) = self.nodes.get(target.index()) {
            crate::kernel::prefetch_read(node);
        }
    }

    fn dispatch(&mut self, event: Event<M::P>) {
        let t = self.now.as_nanos();
        match event {
            Event::Deliver {
                from,
                to,
                sent_at,
                msg,
            } => {
                self.trace
                    .record(t, TRACE_DELIVER, from.0, to.0, digest(&*msg));
                if !self.live[to.index()] {
                    self.counters.to_dead += 1;
                } else if self.network.is_cut(from, to) {
                    self.counters.cut += 1;
                } else {
                    self.counters.delivered += 1;
                    self.counters.bytes_delivered += msg.wire_size() as u64;
                    let latency = (self.now - sent_at).as_nanos();
                    self.latency.record(latency);
                    self.interval_latency.record(latency);
                    self.accept(from, to, msg);
                }
            }
            Event::Process { from, to, msg } => {
                self.trace.record(t, TRACE_PROCESS, from.0, to.0, 0);
                if self.live[to.index()] {
                    self.step(to, Input::Message { from, msg: *msg });
                } else {
                    self.counters.to_dead += 1;
                }
            }
            Event::Wake { node, generation } => {
                let i = node.index();
                if generation != self.wake_generation[i] || !self.live[i] {
                    self.counters.stale_wakes += 1;
                    return;
                }
                self.wake_at[i] = None;
                self.trace.record(t, TRACE_WAKE, node.0, 0, 0);
                self.step(node, Input::Tick);
            }
            Event::Fault(index) => self.apply_fault(index),
            Event::Churn(index) => self.churn(index),
            Event::Revive(node) => {
                self.trace.record(t, TRACE_FAULT, u32::MAX, node.0, 2);
                if self.restart_node(node.index()) {
                    self.log_fault("restart", 1);
                }
            }
            Event::Workload => {
                let (command, next) =
                    self.model
                        .command(self.now, &mut self.workload_rng, &self.live);
                if let Some((node, cmd)) = command {
                    self.trace.record(t, TRACE_COMMAND, node.0, 0, 0);
                    self.step(node, Input::Command(cmd));
                }
                if let Some(next) = next {
                    self.queue.push(next.as_nanos().max(t), Event::Workload);
                }
            }
            Event::Sample => {
                self.sample();
                let next = self.now + self.scenario.sample_every;
                if next.as_nanos() <= self.scenario.duration.as_nanos() {
                    self.queue.push(next.as_nanos(), Event::Sample);
                }
            }
        }
    }

    /// A message reached a live node: with no processing cost its handler runs now; otherwise it
    /// waits for the node's CPU, and the handler runs when the processing is done.
    fn accept(&mut self, from: NodeId, to: NodeId, msg: Box<<M::P as Protocol>::Message>) {
        let i = to.index();
        let mut cost = if self.any_processing {
            self.scenario.nodes[i].processing
        } else {
            prsm_protocol::Duration::ZERO
        };
        if self.any_model_cost {
            cost = cost + self.model.processing_cost(&msg);
        }
        if cost == prsm_protocol::Duration::ZERO {
            self.step(to, Input::Message { from, msg: *msg });
            return;
        }
        let start = self.busy_until[i].max(self.now);
        self.processing_wait.record((start - self.now).as_nanos());
        let done = start + cost;
        self.busy_until[i] = done;
        self.queue
            .push(done.as_nanos(), Event::Process { from, to, msg });
    }

    /// Feeds one input to a node and carries out its effects.
    fn step(&mut self, id: NodeId, input: Input<M::P>) {
        let Some(node) = self.nodes[id.index()].as_mut() else {
            return;
        };
        let mut effects = std::mem::take(&mut self.scratch);
        node.step_into(self.now, input, &mut effects);
        let deadline = node.next_deadline();
        for effect in effects.drain(..) {
            self.apply(id, effect);
        }
        self.scratch = effects;
        if let Some(deadline) = deadline {
            self.schedule_wake(id, deadline);
        }
    }

    fn apply(&mut self, from: NodeId, effect: Effect<M::P>) {
        match effect {
            Effect::Send { to, msg } => self.transmit(from, to, msg),
            Effect::Broadcast { msg } => {
                let scope = self
                    .model
                    .broadcast_scope(from)
                    .unwrap_or(0..self.nodes.len() as u32);
                for j in scope {
                    if j != from.0 {
                        self.transmit(from, NodeId(j), msg.clone());
                    }
                }
            }
            Effect::Emit(event) => {
                self.model.observe(self.now, from, event);
                if self.model.violation().is_some() {
                    self.halted = true;
                }
            }
            Effect::Persist(durable) => self.durable[from.index()] = Some(durable),
            Effect::Evidence(_) => self.counters.evidence += 1,
        }
    }

    fn transmit(&mut self, from: NodeId, to: NodeId, msg: <M::P as Protocol>::Message) {
        self.counters.sent += 1;
        let size = msg.wire_size() as u64;
        self.counters.bytes_sent += size;
        if !self.by_layer.is_empty() {
            let layer = self.model.layer_of(&msg);
            if let Some(c) = self.by_layer.get_mut(layer) {
                c.0 += 1;
                c.1 += size;
            }
        }
        if to.index() >= self.nodes.len() || to == from {
            self.counters.bad_address += 1;
            return;
        }
        let depart = self.uplink(from, msg.wire_size() as u64);
        match self.network.route(from, to) {
            Route::Lost => self.counters.lost += 1,
            Route::Cut => self.counters.cut += 1,
            Route::Deliver { delay, duplicate } => {
                let sent_at = self.now;
                if let Some(extra) = duplicate {
                    self.counters.duplicated += 1;
                    let copy = Event::Deliver {
                        from,
                        to,
                        sent_at,
                        msg: Box::new(msg.clone()),
                    };
                    self.queue.push((depart + extra).as_nanos(), copy);
                }
                self.queue.push(
                    (depart + delay).as_nanos(),
                    Event::Deliver {
                        from,
                        to,
                        sent_at,
                        msg: Box::new(msg),
                    },
                );
                if self.queue.len() as u64 > self.scenario.limits.pending_events_max {
                    self.pending_overflow = true;
                }
            }
        }
    }

    /// When a message of `bytes` sent now by `from` has left its uplink: after the messages queued
    /// before it and its own serialization time. Unlimited uplinks send at once.
    fn uplink(&mut self, from: NodeId, bytes: u64) -> Time {
        if !self.any_bandwidth {
            return self.now;
        }
        let i = from.index();
        let Some(bandwidth) = self.scenario.nodes[i].bandwidth else {
            return self.now;
        };
        let start = self.uplink_free[i].max(self.now);
        self.uplink_wait.record((start - self.now).as_nanos());
        let depart = start + prsm_protocol::Duration::from_nanos(bandwidth.serialization_ns(bytes));
        self.uplink_free[i] = depart;
        depart
    }

    fn schedule_wake(&mut self, id: NodeId, deadline: Time) {
        let i = id.index();
        if self.wake_at[i].is_none_or(|w| deadline < w) {
            self.wake_generation[i] = self.wake_generation[i].wrapping_add(1);
            self.wake_at[i] = Some(deadline);
            let event = Event::Wake {
                node: id,
                generation: self.wake_generation[i],
            };
            self.queue
                .push(deadline.as_nanos().max(self.now.as_nanos()), event);
        }
    }

    fn start_node(&mut self, i: usize) {
        let id = NodeId(i as u32);
        let rng = self.seeds.stream(Stream::Node {
            index: id.0,
            incarnation: self.incarnation[i],
        });
        self.model.started(self.now, id);
        let protocol = self.model.build(id, self.durable[i].clone());
        self.nodes[i] = Some(Node::new(id, protocol, rng, self.scenario.limits.node));
        self.live[i] = true;
        // A restarted node starts with an idle CPU and an empty uplink.
        self.busy_until[i] = self.now;
        self.uplink_free[i] = self.now;
        self.step(id, Input::Start);
    }

    fn crash_node(&mut self, i: usize) {
        let Some(node) = self.nodes[i].take() else {
            return;
        };
        self.model.crashed(self.now, NodeId(i as u32));
        self.model.retire(node.protocol());
        self.retired.add(node.stats());
        self.live[i] = false;
        self.wake_at[i] = None;
        self.wake_generation[i] = self.wake_generation[i].wrapping_add(1);
        self.counters.crashes += 1;
    }

    fn apply_fault(&mut self, index: u32) {
        let scenario = self.scenario;
        let fault = &scenario.faults[index as usize];
        let t = self.now.as_nanos();
        match &fault.action {
            FaultAction::Crash(set) => {
                let live = &self.live;
                let topo = Topology {
                    nodes: &scenario.nodes,
                    regions: &scenario.regions,
                    live,
                };
                let chosen = topo.resolve(set, |i| live[i], &mut self.fault_rng);
                self.trace
                    .record(t, TRACE_FAULT, index, chosen.len() as u32, digest(&chosen));
                let crashed = chosen.iter().filter(|id| self.live[id.index()]).count();
                chosen.iter().for_each(|id| self.crash_node(id.index()));
                self.log_fault("crash", crashed);
            }
            FaultAction::Restart(set) => {
                let live = &self.live;
                let topo = Topology {
                    nodes: &scenario.nodes,
                    regions: &scenario.regions,
                    live,
                };
                let chosen = topo.resolve(set, |i| !live[i], &mut self.fault_rng);
                self.trace
                    .record(t, TRACE_FAULT, index, chosen.len() as u32, digest(&chosen));
                let restarted = chosen
                    .iter()
                    .filter(|id| self.restart_node(id.index()))
                    .count();
                self.log_fault("restart", restarted);
            }
            FaultAction::Partition(plan) => {
                self.install_partition(plan);
                let components = self.network.components();
                self.model.cut(self.now, components.as_deref());
                self.trace
                    .record(t, TRACE_FAULT, index, self.network.sides() as u32, 0);
                self.counters.partitions += 1;
                self.log_fault("partition", self.nodes.len());
            }
            FaultAction::Heal => {
                self.network.heal();
                self.model.cut(self.now, None);
                self.trace.record(t, TRACE_FAULT, index, 1, 0);
                self.counters.heals += 1;
                self.log_fault("heal", self.nodes.len());
            }
            FaultAction::Churn { .. } => {
                self.trace.record(t, TRACE_FAULT, index, 0, 0);
                self.schedule_churn(index);
            }
        }
    }

    /// Schedules churn fault `index`'s next crash, an exponential gap from now, if before its end.
    fn schedule_churn(&mut self, index: u32) {
        let FaultAction::Churn {
            rate_per_s, until, ..
        } = self.scenario.faults[index as usize].action
        else {
            return;
        };
        // 1 - unit() lies in (0, 1], so the logarithm is finite.
        let u = 1.0 - prsm_protocol::random::unit(&mut self.fault_rng);
        let gap_ns = ((-u.ln() / rate_per_s) * 1e9).clamp(1.0, 1e18) as u64;
        let at = self.now.as_nanos().saturating_add(gap_ns);
        if at <= until.as_nanos() {
            self.queue.push(at, Event::Churn(index));
        }
    }

    /// One churn crash: a live node drawn uniformly goes down and comes back after the downtime.
    fn churn(&mut self, index: u32) {
        let scenario = self.scenario;
        let FaultAction::Churn {
            downtime,
            ref nodes,
            ..
        } = scenario.faults[index as usize].action
        else {
            return;
        };
        let live: Vec<usize> = match nodes {
            None => (0..self.live.len()).filter(|&i| self.live[i]).collect(),
            Some(set) => {
                let live = &self.live;
                let topo = Topology {
                    nodes: &scenario.nodes,
                    regions: &scenario.regions,
                    live,
                };
                topo.resolve(set, |i| live[i], &mut self.fault_rng)
                    .into_iter()
                    .map(NodeId::index)
                    .filter(|&i| live[i])
                    .collect()
            }
        };
        if !live.is_empty() {
            let i =
                live[prsm_protocol::random::below(&mut self.fault_rng, live.len() as u64) as usize];
            self.trace
                .record(self.now.as_nanos(), TRACE_FAULT, index, i as u32, 1);
            self.crash_node(i);
            self.log_fault("crash", 1);
            self.queue.push(
                (self.now + downtime).as_nanos(),
                Event::Revive(NodeId(i as u32)),
            );
        }
        self.schedule_churn(index);
    }

    /// Restarts a crashed node from its durable state; false if it was live.
    fn restart_node(&mut self, i: usize) -> bool {
        if self.live[i] {
            return false;
        }
        self.incarnation[i] += 1;
        self.counters.restarts += 1;
        self.start_node(i);
        true
    }

    fn log_fault(&mut self, kind: &'static str, nodes: usize) {
        if self.fault_log.len() >= FAULT_LOG_LEN_MAX {
            self.fault_log_dropped += 1;
            return;
        }
        self.fault_log.push(FaultRecord {
            time_s: self.now.as_secs_f64(),
            kind,
            nodes: nodes as u32,
            sides: self.network.sides() as u32,
        });
    }

    fn install_partition(&mut self, plan: &PartitionPlan) {
        install_partition(
            self.scenario,
            plan,
            &self.live,
            &mut self.fault_rng,
            &mut self.network,
        );
    }

    fn sample(&mut self) {
        let (c, p) = (self.counters, self.at_last_sample);
        let dropped = |c: &Counters| c.lost + c.cut + c.to_dead + c.bad_address;
        let mut row = vec![
            self.now.as_secs_f64(),
            self.live.iter().filter(|&&l| l).count() as f64,
            self.network.sides() as f64,
            (c.sent - p.sent) as f64,
            (c.delivered - p.delivered) as f64,
            (dropped(&c) - dropped(&p)) as f64,
            (c.bytes_sent - p.bytes_sent) as f64,
            self.interval_latency.quantile(0.5).unwrap_or(f64::NAN),
            self.interval_latency.quantile(0.99).unwrap_or(f64::NAN),
        ];
        self.interval_latency.clear();
        if self.model.inspects() {
            for node in self.nodes.iter().flatten() {
                self.model.inspect(node.protocol());
            }
        }
        self.model.sample(&mut row);
        self.series.push(row, usize::MAX);
        self.at_last_sample = c;
    }

    fn finish(mut self) -> RunOutput {
        for node in self.nodes.iter().flatten() {
            self.model.retire(node.protocol());
            self.retired.add(node.stats());
        }
        let s = self.retired;
        let c = self.counters;
        let n = self.nodes.len() as u64;
        let seconds = self.scenario.duration.as_secs_f64();
        let mut m = Metrics::default();
        m.count("sim.events", self.trace.events());
        m.count("sim.stale_wakes", c.stale_wakes);
        m.real("sim.virtual_time_s", round6(seconds));
        m.count("nodes.total", n);
        m.count(
            "nodes.live_at_end",
            self.live.iter().filter(|&&l| l).count() as u64,
        );
        m.count("net.messages_sent", c.sent);
        m.count("net.messages_delivered", c.delivered);
        m.count("net.messages_lost", c.lost);
        m.count("net.messages_cut", c.cut);
        m.count("net.messages_to_dead", c.to_dead);
        m.count("net.messages_duplicated", c.duplicated);
        m.count("net.messages_bad_address", c.bad_address);
        m.count("net.bytes_sent", c.bytes_sent);
        m.count("net.bytes_delivered", c.bytes_delivered);
        for (name, &(messages, bytes)) in self.model.layer_names().iter().zip(&self.by_layer) {
            m.count(&format!("net.by_layer.{name}.messages_sent"), messages);
            m.count(&format!("net.by_layer.{name}.bytes_sent"), bytes);
        }
        m.ratio("net.delivery_ratio", c.delivered, c.sent);
        let per_node_s = (n as f64) * seconds;
        m.real(
            "net.messages_per_node_per_s",
            round6(c.sent as f64 / per_node_s),
        );
        m.real(
            "net.bytes_per_node_per_s",
            round6(c.bytes_sent as f64 / per_node_s),
        );
        m.histogram("net.latency_ms", &self.latency);
        m.histogram("node.processing_wait_ms", &self.processing_wait);
        m.histogram("net.uplink_wait_ms", &self.uplink_wait);
        m.count("node.rejected", s.rejected_total());
        for reason in prsm_protocol::DropReason::ALL {
            m.count(
                &format!("node.rejected.{}", reason.name()),
                s.rejected[reason as usize],
            );
        }
        m.count("node.effects_dropped", s.effects_dropped);
        m.count("node.oversized_sends", s.oversized_sends);
        m.count("node.timers_fired", s.timers_fired);
        m.count("node.timers_refused", s.timers_refused);
        m.count("node.evidence", c.evidence);
        m.count("faults.crashes", c.crashes);
        m.count("faults.restarts", c.restarts);
        m.count("faults.partitions", c.partitions);
        m.count("faults.heals", c.heals);
        m.count("faults.log_dropped", self.fault_log_dropped);
        self.model.finish(self.now, &self.live, &mut m);
        let violation = self
            .model
            .violation()
            .cloned()
            .map(|v| (v, self.trace.events()));
        let warnings = self
            .model
            .warnings()
            .into_iter()
            .chain(oversized_warning(&m))
            .collect();
        let mut cdfs = vec![("net.latency_ms".to_owned(), self.latency.cdf())];
        cdfs.extend(self.model.cdfs());
        RunOutput {
            faults: self.fault_log,
            cdfs,
            seed: self.seeds.master(),
            trace_hash: self.trace.value(),
            events: self.trace.events(),
            metrics: m,
            series: self.series,
            tables: self.model.tables(),
            violation,
            warnings,
        }
    }
}

/// A message dropped at the sender for its size can stall a protocol with no other sign: any
/// such drop is a warning, with the per-type counts the protocol keeps (`<layer>.oversized.*`).
fn oversized_warning(m: &Metrics) -> Option<String> {
    let oversized = m.get("node.oversized_sends").unwrap_or(0.0);
    if oversized <= 0.0 {
        return None;
    }
    let kinds: Vec<String> = m
        .iter()
        .filter(|(name, value)| name.contains(".oversized.") && value.as_f64() > 0.0)
        .map(|(name, value)| format!("{name} = {}", value.as_f64()))
        .collect();
    let detail = if kinds.is_empty() {
        String::new()
    } else {
        format!(" ({})", kinds.join(", "))
    };
    Some(format!(
        "{oversized} messages were dropped at the sender for exceeding the message size limit{detail}; \
         raise `limits: {{ message_size_max_bytes: ... }}` or make the protocol's messages smaller"
    ))
}

/// Installs the cut of a partition fault in `network`, resolving its node sets with `rng`. The
/// engine and the live cluster (which turns the cut into each node's drop rules) share it.
pub fn install_partition(
    scenario: &Scenario,
    plan: &PartitionPlan,
    live: &[bool],
    rng: &mut ChaCha8Rng,
    network: &mut Network,
) {
    let topo = Topology {
        nodes: &scenario.nodes,
        regions: &scenario.regions,
        live,
    };
    match plan {
        PartitionPlan::OneWay { from, to } => {
            let from = topo.resolve(from, |_| true, rng);
            let to = topo.resolve(to, |_| true, rng);
            network.partition_one_way(&from, &to);
        }
        PartitionPlan::Between { a, b } => {
            let a = topo.resolve(a, |_| true, rng);
            let b = topo.resolve(b, |_| true, rng);
            network.partition_between(&a, &b);
        }
        _ => {
            let side = partition_groups(scenario, plan, live, rng);
            network.partition(side);
        }
    }
}

/// The side of each node under a partition plan. In `groups`, unlisted nodes form one more
/// side together; validation rejects groups that share a node through their static terms,
/// so only a node drawn at run time (`random:`, `live`, `crashed`) into two groups can be
/// listed twice, and it belongs to the first group naming it.
fn partition_groups(
    scenario: &Scenario,
    plan: &PartitionPlan,
    live: &[bool],
    rng: &mut ChaCha8Rng,
) -> Vec<u32> {
    let n = scenario.nodes.len();
    let topo = Topology {
        nodes: &scenario.nodes,
        regions: &scenario.regions,
        live,
    };
    match plan {
        PartitionPlan::Groups(groups) => {
            let rest = groups.len() as u32;
            let mut side = vec![rest; n];
            for (g, set) in groups.iter().enumerate() {
                for id in topo.resolve(set, |_| true, rng) {
                    if side[id.index()] == rest {
                        side[id.index()] = g as u32;
                    }
                }
            }
            side
        }
        PartitionPlan::Isolate(set) => {
            let mut side = vec![0; n];
            for (k, id) in topo.resolve(set, |_| true, rng).into_iter().enumerate() {
                side[id.index()] = k as u32 + 1;
            }
            side
        }
        // Cuts between sets are installed by `install_partition`; as sides they are one network.
        PartitionPlan::OneWay { .. } | PartitionPlan::Between { .. } => vec![0; n],
        PartitionPlan::ByRegion => scenario
            .nodes
            .iter()
            .map(|node| node.region.map_or(0, |r| u32::from(r) + 1))
            .collect(),
    }
}
