//! Task routing: AI tasks sent to the best worker by a multi-factor score, with failover.
//!
//! One layer plays two parts, either or both on a node:
//! - a **worker** hosts models (its capabilities), serves tasks in a number of concurrent slots
//!   with a bounded queue behind them, and answers every task with `Accepted`, `Rejected` (queue
//!   full, model not hosted, deadline already past) and then `Result`. Every answer carries its
//!   current load (tasks in service plus queued); workers also push `Load` reports every
//!   `report_interval` to the routers that sent them a task recently;
//! - a **router** learns candidates from the layers below: a neighbour found by discovery
//!   (`NeighborAdded`) gets a `Hello`, which a worker answers with an `Advert` (its region, models,
//!   slots, queue and load, and a few other workers it knows: a router greets those too, up to
//!   `candidates_max`, so its candidates are not limited to its routing table). Health confirms deaths (`PeerDead`) and measures round trips
//!   (`PeerRtt`). For a task the router filters the candidates (capability, data residency, not
//!   already tried) and picks by its policy: the multi-factor score (capability match, load,
//!   latency, reliability, weighted), or a baseline (random, round-robin, power-of-d choices,
//!   least latency, least loaded).
//!
//! A task needs `workers × redundancy` copies on distinct workers; with redundancy > 1 the
//! results of each group are compared and the majority wins. A copy whose worker does not accept
//! within `accept_timeout`, rejects it, or is confirmed dead moves to the next candidate while the
//! task's retry budget and deadline last. Every attempt is recorded in the task's report, emitted
//! when the task ends (`RoutingEvent::Done`). A node that can serve a task itself, with a free
//! slot, does so without the network (local first).
//!
//! Load knowledge ages: a router's estimate of a worker's load is its last report plus the tasks
//! this router sent it since; a report older than `report_max_age` is forgotten, leaving only
//! what the router sent itself. The age of the report behind each choice is in the task's report.
//!
//! Everything that grows is bounded: candidates (`candidates_max`), tasks in flight at a router
//! (`inflight_max`, over it a task is rejected at once), a worker's queue (`queue_max`) and its
//! subscribers (`subscribers_max`), attempts per task (copies plus retries).

mod router;
mod worker;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

use crate::contract::{Context, DropReason, Protocol};
use crate::detection::NodeKeys;
use crate::layer::Notice;
use crate::random::{standard_normal, unit};
use crate::{Duration, NodeId, Time, Wire};

pub use router::{Candidate, Router};
pub use worker::Worker;

/// A task's identity, unique in a run (the driver assigns it).
pub type TaskId = u64;

/// Index of a model in the catalog.
pub type ModelId = u16;

/// Index of a task class in the catalog.
pub type ClassId = u16;

/// The models and task classes every node of a network knows.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Catalog {
    pub models: Vec<ModelSpec>,
    pub classes: Vec<TaskClass>,
    /// Per model, its family's index (see [`Catalog::new`]).
    families: Vec<u16>,
}

/// A model a worker may host; models of one family can stand in for each other at partial
/// credit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub name: String,
    pub family: String,
}

/// A kind of task: the model it needs, its sizes and cost, its deadline, how many workers it
/// needs and where it may run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskClass {
    pub name: String,
    pub model: ModelId,
    pub input_bytes: u32,
    pub output_bytes: u32,
    /// Multiplies the worker's service time for the model (1: one unit of work).
    pub compute: f64,
    /// From submission; a task not done by then has expired.
    pub deadline: Duration,
    /// Distinct workers that each run a share of the task.
    pub workers: u8,
    /// Copies of each share on distinct workers, whose results are compared (1: no comparison).
    pub redundancy: u8,
    /// Only workers in this region may run it (index into the driver's region list).
    pub residency: Option<u16>,
}

impl TaskClass {
    pub fn copies(&self) -> usize {
        usize::from(self.workers.max(1)) * usize::from(self.redundancy.max(1))
    }
}

/// Credit for a worker hosting the exact model a task needs.
pub const MATCH_EXACT: f64 = 1.0;
/// Credit for a worker hosting another model of the same family.
pub const MATCH_COMPATIBLE: f64 = 0.7;

impl Catalog {
    /// A catalog; models of one family are found by comparing family ids, not names.
    pub fn new(models: Vec<ModelSpec>, classes: Vec<TaskClass>) -> Self {
        let mut names: Vec<&str> = Vec::new();
        let families = models
            .iter()
            .map(|m| match names.iter().position(|f| *f == m.family) {
                Some(i) => i as u16,
                None => {
                    names.push(&m.family);
                    (names.len() - 1) as u16
                }
            })
            .collect();
        Catalog {
            models,
            classes,
            families,
        }
    }

    fn family(&self, m: ModelId) -> Option<u16> {
        self.families.get(usize::from(m)).copied()
    }

    /// `hosted` as bit sets of models and of families (None with more than 64 of either), so a
    /// router checks a candidate's capability without touching its model list.
    pub fn masks(&self, hosted: &[ModelId]) -> Option<(u64, u64)> {
        let mut models = 0u64;
        let mut families = 0u64;
        for &m in hosted {
            let f = self.family(m)?;
            if m >= 64 || f >= 64 {
                return None;
            }
            models |= 1 << m;
            families |= 1 << f;
        }
        Some((models, families))
    }

    /// [`Catalog::credit`] from the bit sets of [`Catalog::masks`].
    pub fn credit_masked(&self, needed: ModelId, (models, families): (u64, u64)) -> f64 {
        if needed < 64 && models & (1 << needed) != 0 {
            return MATCH_EXACT;
        }
        match self.family(needed) {
            Some(f) if f < 64 && families & (1 << f) != 0 => MATCH_COMPATIBLE,
            _ => 0.0,
        }
    }

    /// How well `hosted` serves `needed`: exact 1.0, same family 0.7, otherwise 0.
    pub fn credit(&self, needed: ModelId, hosted: &[ModelId]) -> f64 {
        if hosted.contains(&needed) {
            return MATCH_EXACT;
        }
        match self.family(needed) {
            Some(f) if hosted.iter().any(|&h| self.family(h) == Some(f)) => MATCH_COMPATIBLE,
            _ => 0.0,
        }
    }

    /// The hosted model that serves `needed`: itself, else the first of its family.
    pub fn serving(&self, needed: ModelId, hosted: &[ModelId]) -> Option<ModelId> {
        if hosted.contains(&needed) {
            return Some(needed);
        }
        let f = self.family(needed)?;
        hosted.iter().copied().find(|&h| self.family(h) == Some(f))
    }
}

/// How long a worker takes for one unit of work on a model.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum ServiceTime {
    Fixed(Duration),
    Exponential {
        mean: Duration,
    },
    /// exp(N(ln median, sigma²)).
    LogNormal {
        median: Duration,
        sigma: f64,
    },
}

impl ServiceTime {
    pub fn sample(&self, rng: &mut rand_chacha::ChaCha8Rng, compute: f64) -> Duration {
        let secs = match *self {
            ServiceTime::Fixed(d) => d.as_secs_f64(),
            ServiceTime::Exponential { mean } => -(1.0 - unit(rng)).ln() * mean.as_secs_f64(),
            ServiceTime::LogNormal { median, sigma } => {
                median.as_secs_f64() * (sigma * standard_normal(rng)).exp()
            }
        };
        secs_to_duration(secs * compute)
    }

    pub fn mean(&self) -> Duration {
        match *self {
            ServiceTime::Fixed(d) => d,
            ServiceTime::Exponential { mean } => mean,
            ServiceTime::LogNormal { median, sigma } => {
                secs_to_duration(median.as_secs_f64() * (sigma * sigma / 2.0).exp())
            }
        }
    }
}

/// Seconds to a duration, saturating (and 0 for anything not a positive number).
pub fn secs_to_duration(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        Duration::ZERO
    } else if secs >= u64::MAX as f64 / 1e9 {
        Duration::from_nanos(u64::MAX)
    } else {
        Duration::from_nanos((secs * 1e9).round() as u64)
    }
}

/// What a worker hosts and how much it takes on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerConfig {
    pub models: Vec<(ModelId, ServiceTime)>,
    /// Tasks served at once.
    pub slots: u16,
    /// Tasks waiting behind the slots; one more is rejected.
    pub queue_max: u32,
    /// An honest worker's own error rate: a result wrong by accident (well formed).
    pub error_rate: f64,
    /// How this worker misbehaves, and when (empty: honest).
    pub faults: Vec<WorkerFault>,
    /// Tasks taken per sender: a token bucket per router (None: no limit).
    pub rate_limit: Option<RateLimit>,
}

/// A token bucket: `per_s` tokens a second, at most `burst` saved.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    pub per_s: f64,
    pub burst: f64,
}

/// A node that floods workers with tasks (resource exhaustion): `rate` a second, at random among
/// the first eight workers it knows, between `from` and `until`; it ignores the answers.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Flood {
    pub rate: f64,
    pub from: Time,
    pub until: Time,
}

/// A Byzantine worker's misbehaviour over a window of time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerFault {
    pub from: Time,
    pub until: Time,
    pub kind: FaultKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum FaultKind {
    /// A wrong result with `probability`, for one class or all. Workers of one `group` return
    /// the same wrong digest for a query (collusion). A share `malformed` of the wrong results
    /// fails the router's weak check (schema, length, checksum); data poisoning is
    /// `malformed: 0`, crafted to pass it.
    Wrong {
        probability: f64,
        class: Option<ClassId>,
        group: Option<u32>,
        malformed: f64,
    },
    /// A different answer every time the same query is asked (well formed).
    Inconsistent,
    /// Every result held back for `delay` (a timing attack; the slot stays busy).
    Slow { delay: Duration },
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Wrong { malformed, .. } if malformed <= 0.0 => "poison",
            FaultKind::Wrong { group: Some(_), .. } => "collude",
            FaultKind::Wrong { .. } => "wrong_result",
            FaultKind::Inconsistent => "inconsistent",
            FaultKind::Slow { .. } => "slow_result",
        }
    }
}

/// How a router picks among the candidates that can serve a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Policy {
    /// The weighted score of capability match, load, latency and reliability.
    MultiFactor,
    Random,
    RoundRobin,
    /// Power of d choices: d candidates drawn at random, the least loaded of them (JSQ(d)).
    Jsq {
        d: u8,
    },
    LeastLatency,
    LeastLoaded,
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::MultiFactor => "multi-factor",
            Policy::Random => "random",
            Policy::RoundRobin => "round-robin",
            Policy::Jsq { .. } => "jsq",
            Policy::LeastLatency => "least-latency",
            Policy::LeastLoaded => "least-loaded",
        }
    }
}

/// The multi-factor score's weights (they need not sum to 1; only their ratios matter).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Weights {
    pub capability: f64,
    pub load: f64,
    pub latency: f64,
    pub reliability: f64,
}

impl Default for Weights {
    /// 40 % capability match, 25 % load, 20 % latency, 15 % reliability.
    fn default() -> Self {
        Weights {
            capability: 0.40,
            load: 0.25,
            latency: 0.20,
            reliability: 0.15,
        }
    }
}

/// A router's settings (the same on every node of a run).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouterConfig {
    pub policy: Policy,
    pub weights: Weights,
    /// Failovers allowed per task, beyond its first copies.
    pub retries: u8,
    /// How long a worker has to accept (or reject) a task before the copy moves on.
    pub accept_timeout: Duration,
    /// Workers push their load this often to recent routers (zero: only on answers).
    pub report_interval: Duration,
    /// A load report older than this is forgotten.
    pub report_max_age: Duration,
    /// Routers a worker keeps pushing to (the most recent; each expires after ten intervals
    /// without a task).
    pub subscribers_max: usize,
    pub candidates_max: usize,
    pub inflight_max: usize,
    /// The time at which the latency and load factors are one half (a round trip; the wait
    /// before a slot frees).
    pub rtt_ref: Duration,
    pub local_first: bool,
    /// Chance that a copy sent to a worker is followed by a spot check (a task whose answer the
    /// router knows, or a query the worker answered before), for workers in good standing...
    pub spot_check: f64,
    /// ...and for workers the detection layer watches (new, or of low reputation).
    pub spot_check_watched: f64,
    /// A result whose time is not explained by the worker's own queue and service times and the
    /// round trip by more than this counts as a late answer (zero: not checked).
    pub slow_after: Duration,
    /// With the detection layer: the reputation of a worker it has no record of (the
    /// reliability factor then reads reputation instead of this router's own record).
    pub trust_prior: Option<f64>,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            policy: Policy::MultiFactor,
            weights: Weights::default(),
            retries: 3,
            accept_timeout: Duration::from_secs(1),
            report_interval: Duration::from_secs(1),
            report_max_age: Duration::from_secs(5),
            subscribers_max: 64,
            candidates_max: 512,
            inflight_max: 100_000,
            rtt_ref: Duration::from_millis(100),
            local_first: true,
            spot_check: 0.0,
            spot_check_watched: 0.0,
            slow_after: Duration::ZERO,
            trust_prior: None,
        }
    }
}

/// One node's routing layer configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoutingConfig {
    pub catalog: Arc<Catalog>,
    pub router: Arc<RouterConfig>,
    /// Present if this node serves tasks.
    pub worker: Option<WorkerConfig>,
    /// This node's region (index into the driver's region list), told to routers.
    pub region: u16,
    /// Peers greeted at start, besides those discovery finds (a network without discovery).
    pub seeds: Vec<NodeId>,
    /// Identity keys: a worker signs its results, a router checks them.
    pub keys: NodeKeys,
    /// A Byzantine node's flood of tasks (None: honest).
    pub flood: Option<Flood>,
}

/// Why a worker turned a task down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RejectReason {
    QueueFull,
    /// It hosts no model that serves the task.
    Incapable,
    /// The task's deadline passed before it could start.
    Expired,
    /// The sender is quarantined or isolated here.
    Refused,
    /// The sender is over its rate limit at this worker.
    RateLimited,
}

impl RejectReason {
    pub fn name(self) -> &'static str {
        match self {
            RejectReason::QueueFull => "queue_full",
            RejectReason::Incapable => "incapable",
            RejectReason::Expired => "expired",
            RejectReason::Refused => "refused",
            RejectReason::RateLimited => "rate_limited",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RoutingMessage {
    /// A router greets a peer: a worker answers with its advert.
    Hello,
    Advert {
        region: u16,
        models: Box<[ModelId]>,
        slots: u16,
        queue_max: u32,
        load: u32,
        /// Other workers the sender knows (at most [`ADVERT_PEERS_MAX`]).
        peers: Box<[NodeId]>,
    },
    Load {
        load: u32,
    },
    Task {
        task: TaskId,
        class: ClassId,
        copy: u8,
        /// What is asked (an honest worker's answer is a function of it).
        query: u64,
        /// Time left until the task's deadline when sent.
        ttl: Duration,
        input_bytes: u32,
    },
    Accepted {
        task: TaskId,
        copy: u8,
        load: u32,
    },
    Rejected {
        task: TaskId,
        copy: u8,
        load: u32,
        reason: RejectReason,
    },
    Result {
        task: TaskId,
        copy: u8,
        load: u32,
        digest: u64,
        /// The worker's signature over (query, digest).
        sig: u64,
        /// Whether the output passes the weak check (schema, length, checksum): the simulator
        /// does not model output contents, so a result carries the check's outcome.
        well_formed: bool,
        output_bytes: u32,
        /// When service started, on the worker's clock.
        started: Time,
        queue: Duration,
        service: Duration,
    },
}

/// How often an origin router refreshes stale candidates: a fifth of `report_max_age`.
pub fn refresh_period(config: &RouterConfig) -> Duration {
    Duration::from_nanos((config.report_max_age.as_nanos() / 5).max(1_000_000))
}

/// A greeting not answered within this long is forgotten (the peer serves no tasks, or is gone).
pub const HELLO_ANSWER_MAX: Duration = Duration::from_secs(10);

/// Other workers named in one advert.
pub const ADVERT_PEERS_MAX: usize = 16;

/// Header bytes of every routing message (type, sender key hash, lengths).
const HEADER_BYTES: usize = 24;

impl Wire for RoutingMessage {
    fn wire_size(&self) -> usize {
        HEADER_BYTES
            + match self {
                RoutingMessage::Hello => 0,
                RoutingMessage::Advert { models, peers, .. } => {
                    12 + 2 * models.len() + 4 * peers.len()
                }
                RoutingMessage::Load { .. } => 4,
                RoutingMessage::Task { input_bytes, .. } => 31 + *input_bytes as usize,
                RoutingMessage::Accepted { .. } => 13,
                RoutingMessage::Rejected { .. } => 14,
                RoutingMessage::Result { output_bytes, .. } => 110 + *output_bytes as usize,
            }
    }
}

impl RoutingMessage {
    /// The worker's load this message reports, if it is one a worker sends.
    pub fn load(&self) -> Option<u32> {
        match *self {
            RoutingMessage::Advert { load, .. }
            | RoutingMessage::Load { load }
            | RoutingMessage::Accepted { load, .. }
            | RoutingMessage::Rejected { load, .. }
            | RoutingMessage::Result { load, .. } => Some(load),
            RoutingMessage::Hello | RoutingMessage::Task { .. } => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RoutingTimer {
    /// The earliest entry of the agenda (a job finishing, an accept timeout, a deadline).
    Wake,
    /// A worker's periodic load report.
    Report,
    /// An origin router's periodic refresh of candidates whose load reports went stale.
    Refresh,
    /// A flooder's next junk task.
    Flood,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoutingCommand {
    /// A task of this class arrives at this node.
    Submit { task: TaskId, class: ClassId },
    /// A peer worth greeting (discovery found it, or it came back).
    Peer(NodeId),
    /// A peer left the neighbour set.
    Forget(NodeId),
    /// Health confirmed a peer dead.
    Dead(NodeId),
    /// Health measured a round trip to a peer.
    Rtt(NodeId, Duration),
    /// The detection layer's reputation of a peer, in thousandths.
    Trust(NodeId, u16),
    /// The detection layer watches a peer (spot checks at the raised rate), or stopped.
    Watched(NodeId, bool),
    /// The detection layer quarantined a peer (true) or released it (false).
    Quarantine(NodeId, bool),
    /// Proven Byzantine: never a candidate again; tasks on it move on.
    Isolate(NodeId),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RoutingEvent {
    /// A task ended (completed or not) at the router that took it.
    Done(Box<TaskReport>),
}

/// Everything a router knows about one task once it ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    pub task: TaskId,
    pub class: ClassId,
    pub submitted: Time,
    pub finished: Time,
    pub outcome: TaskOutcome,
    /// Served by the router's own worker, without the network.
    pub local: bool,
    pub attempts: Vec<Attempt>,
    /// Results that disagreed with their group's majority.
    pub mismatches: u8,
    /// For a completed task, the digest each share delivered (its group's majority).
    pub digests: Box<[u64]>,
    /// For a completed task, the copy that finished last: its time waiting in the worker's queue,
    /// in service, and when service started (on the worker's clock).
    pub queue: Duration,
    pub service: Duration,
    pub started: Option<Time>,
    /// Age of the load report behind the first choice (None: no report, or a baseline that
    /// ignores load).
    pub load_age: Option<Duration>,
}

impl TaskReport {
    /// Submission to the end.
    pub fn latency(&self) -> Duration {
        self.finished.saturating_since(self.submitted)
    }

    /// The part of a completed task's latency spent neither queued nor served: the network.
    pub fn network(&self) -> Duration {
        Duration::from_nanos(
            self.latency()
                .as_nanos()
                .saturating_sub(self.queue.as_nanos() + self.service.as_nanos()),
        )
    }

    /// Attempts beyond the task's first copies.
    pub fn failovers(&self, copies: usize) -> usize {
        self.attempts.len().saturating_sub(copies)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskOutcome {
    Completed,
    Failed(FailReason),
    /// The deadline passed first.
    Expired,
    /// Every worker tried turned it down for a full queue, or the router was full.
    Rejected,
}

impl TaskOutcome {
    pub fn name(self) -> &'static str {
        match self {
            TaskOutcome::Completed => "completed",
            TaskOutcome::Failed(_) => "failed",
            TaskOutcome::Expired => "expired",
            TaskOutcome::Rejected => "rejected",
        }
    }

    /// Why, for an outcome other than completed.
    pub fn reason(self) -> &'static str {
        match self {
            TaskOutcome::Completed => "",
            TaskOutcome::Failed(r) => r.name(),
            TaskOutcome::Expired => "deadline",
            TaskOutcome::Rejected => "overloaded",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailReason {
    /// No live candidate can serve it (capability, residency, all tried).
    NoCandidate,
    /// The retry budget ran out.
    RetriesExhausted,
    /// No majority among the compared results.
    Disagreement,
    /// The class is not in the catalog.
    UnknownClass,
}

impl FailReason {
    pub fn name(self) -> &'static str {
        match self {
            FailReason::NoCandidate => "no_candidate",
            FailReason::RetriesExhausted => "retries_exhausted",
            FailReason::Disagreement => "disagreement",
            FailReason::UnknownClass => "unknown_class",
        }
    }
}

/// One try of one copy of a task on one worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub worker: NodeId,
    pub copy: u8,
    pub sent: Time,
    pub ended: Time,
    pub outcome: AttemptOutcome,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttemptOutcome {
    Completed,
    Rejected(RejectReason),
    /// Not accepted within the accept timeout, or the worker fell silent after accepting.
    TimedOut,
    /// Health confirmed the worker dead.
    WorkerDead,
    /// The task ended first (another copy's failure, or its deadline).
    Abandoned,
    /// The result failed the weak check.
    Invalid,
}

impl AttemptOutcome {
    pub fn name(self) -> &'static str {
        match self {
            AttemptOutcome::Completed => "completed",
            AttemptOutcome::Rejected(r) => r.name(),
            AttemptOutcome::TimedOut => "timed_out",
            AttemptOutcome::WorkerDead => "worker_dead",
            AttemptOutcome::Abandoned => "abandoned",
            AttemptOutcome::Invalid => "invalid",
        }
    }
}

/// What the agenda holds: the moments the layer must act.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Due {
    /// A job in this worker slot finishes.
    Finish(u64),
    /// A copy's attempt has not been accepted in time.
    Accept {
        task: TaskId,
        copy: u8,
        attempt: u16,
    },
    /// The task's deadline.
    Deadline(TaskId),
    /// A spot check's deadline.
    Canary(TaskId),
}

/// Counters of one node's routing layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingStats {
    pub hellos: u64,
    pub adverts: u64,
    pub load_reports_sent: u64,
    pub load_reports_received: u64,
    pub candidates_refused: u64,
    pub tasks_served: u64,
    pub tasks_rejected_queue_full: u64,
    pub tasks_rejected_incapable: u64,
    pub tasks_expired_in_queue: u64,
    pub tasks_local: u64,
    pub late_answers: u64,
    pub unexpected: u64,
    pub spot_checks: u64,
    pub spot_checks_failed: u64,
    pub repeat_checks: u64,
    pub conflicts_proven: u64,
    pub weak_check_failed: u64,
    pub slow_answers: u64,
    pub bad_signatures: u64,
    pub refused: u64,
    pub rate_limited: u64,
    pub flood_sent: u64,
    /// Results this worker got wrong (or held back) on purpose, and got wrong by accident.
    pub lies: u64,
    pub honest_errors: u64,
}

/// The routing layer of one node.
#[derive(Debug, Serialize, Deserialize)]
pub struct Routing {
    config: RoutingConfig,
    router: Router,
    worker: Option<Worker>,
    /// (when, what), earliest first; the `Wake` timer is armed for the first.
    agenda: BTreeSet<(Time, Due)>,
    /// Notices for the detection layer, drained after each step.
    journal: Vec<Notice>,
    pub stats: RoutingStats,
}

impl Routing {
    pub fn new(config: RoutingConfig) -> Self {
        let worker = config.worker.clone().map(Worker::new);
        let router = Router::new(&config.router);
        Routing {
            config,
            router,
            worker,
            agenda: BTreeSet::new(),
            journal: Vec::new(),
            stats: RoutingStats::default(),
        }
    }

    pub fn config(&self) -> &RoutingConfig {
        &self.config
    }

    pub fn worker(&self) -> Option<&Worker> {
        self.worker.as_ref()
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Bytes of state: candidates, tasks in flight, the worker's jobs, the agenda.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.router.heap_bytes()
            + self.worker.as_ref().map_or(0, Worker::heap_bytes)
            + self.agenda.len() * std::mem::size_of::<(Time, Due)>() * 2
    }

    fn schedule(&mut self, ctx: &mut Context<'_, Self>, at: Time, due: Due) {
        self.agenda.insert((at, due));
        self.arm(ctx);
    }

    fn unschedule(&mut self, at: Time, due: Due) {
        self.agenda.remove(&(at, due));
    }

    fn arm(&mut self, ctx: &mut Context<'_, Self>) {
        match self.agenda.first() {
            Some(&(at, _)) => {
                let after = at.saturating_since(ctx.now());
                ctx.set_timer(RoutingTimer::Wake, after);
            }
            None => ctx.cancel_timer(RoutingTimer::Wake),
        }
    }

    fn wake(&mut self, ctx: &mut Context<'_, Self>) {
        let now = ctx.now();
        while let Some(&(at, due)) = self.agenda.first() {
            if at > now {
                break;
            }
            self.agenda.remove(&(at, due));
            match due {
                Due::Finish(job) => self.finish_job(ctx, job),
                Due::Accept {
                    task,
                    copy,
                    attempt,
                } => self.accept_timed_out(ctx, task, copy, attempt),
                Due::Deadline(task) => self.deadline(ctx, task),
                Due::Canary(task) => self.router.canary_expired(task),
            }
        }
        self.arm(ctx);
    }

    fn greet(&mut self, ctx: &mut Context<'_, Self>, peer: NodeId) {
        if peer != ctx.id() && !self.router.blocked(peer) {
            self.stats.hellos += 1;
            self.router
                .hello_sent(peer, ctx.now(), self.config.router.candidates_max);
            ctx.send(peer, RoutingMessage::Hello);
        }
    }

    /// Greets again the candidates whose load reports are older than half `report_max_age`,
    /// oldest first, a fifth of `candidates_max` at most: each is asked about once per
    /// `report_max_age`, so a router knows the load of workers it has not used (pull), besides the
    /// reports of those it has (push and piggyback).
    fn refresh(&mut self, ctx: &mut Context<'_, Self>) {
        let now = ctx.now();
        let config = self.config.router.clone();
        let stale_after = Duration::from_nanos(config.report_max_age.as_nanos() / 2);
        let mut stale: Vec<(Time, NodeId)> = self
            .router
            .candidates()
            .filter(|(_, c)| now.saturating_since(c.load_at) > stale_after)
            .map(|(id, c)| (c.load_at, id))
            .collect();
        stale.sort_unstable();
        let budget = (config.candidates_max / 5).max(1);
        for (_, p) in stale.into_iter().take(budget) {
            if !self.router.known_or_greeted(p) || self.router.knows(p) {
                self.greet(ctx, p);
            }
        }
    }

    /// Greets workers another worker named, while there is room for candidates.
    fn greet_more(&mut self, ctx: &mut Context<'_, Self>, peers: &[NodeId]) {
        self.router.expire_hellos(ctx.now(), HELLO_ANSWER_MAX);
        for &p in peers {
            if p != ctx.id()
                && !self.router.known_or_greeted(p)
                && self.router.has_room(&self.config.router)
            {
                self.greet(ctx, p);
            }
        }
    }
}

impl Protocol for Routing {
    type Message = RoutingMessage;
    type Timer = RoutingTimer;
    type Command = RoutingCommand;
    type Event = RoutingEvent;
    type Durable = ();

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        for peer in self.config.seeds.clone() {
            self.greet(ctx, peer);
        }
        if self.worker.is_some() && self.config.router.report_interval > Duration::ZERO {
            ctx.set_timer(RoutingTimer::Report, self.config.router.report_interval);
        }
        if let Some(f) = self.config.flood
            && f.rate > 0.0
        {
            let start = f.from.saturating_since(ctx.now());
            ctx.set_timer(RoutingTimer::Flood, start.max(flood_gap(f.rate)));
        }
    }

    fn check(&self, _from: NodeId, msg: &RoutingMessage) -> Result<(), DropReason> {
        let copies_max = 255;
        match msg {
            RoutingMessage::Advert { models, peers, .. }
                if models.is_empty()
                    || models.len() > self.config.catalog.models.len()
                    || peers.len() > ADVERT_PEERS_MAX =>
            {
                Err(DropReason::Malformed)
            }
            RoutingMessage::Task { class, copy, .. }
                if usize::from(*class) >= self.config.catalog.classes.len()
                    || usize::from(*copy) >= copies_max =>
            {
                Err(DropReason::Malformed)
            }
            _ => Ok(()),
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: RoutingMessage) {
        self.router.heard_from(from, ctx.now());
        if self.router.shunned(from) {
            // Quarantined or isolated here: no tasks taken from it, its reports ignored.
            self.stats.refused += 1;
            if let RoutingMessage::Task { task, copy, .. } = msg {
                Self::reject(ctx, from, (task, copy), 0, RejectReason::Refused);
            }
            return;
        }
        if let Some(load) = msg.load() {
            self.router.heard_load(from, load, ctx.now());
        }
        match msg {
            RoutingMessage::Hello => self.hello(ctx, from),
            RoutingMessage::Advert {
                region,
                models,
                slots,
                queue_max,
                load,
                peers,
            } => {
                self.stats.adverts += 1;
                self.router.advert_answered(from, ctx.now());
                if self.router.routed {
                    self.greet_more(ctx, &peers);
                }
                let cap = self.config.router.candidates_max;
                if !self.router.advert(
                    &self.config.catalog,
                    from,
                    Candidate::new(region, models, slots, queue_max, load, ctx.now()),
                    cap,
                ) {
                    self.stats.candidates_refused += 1;
                }
            }
            RoutingMessage::Load { .. } => self.stats.load_reports_received += 1,
            RoutingMessage::Task {
                task,
                class,
                copy,
                query,
                ttl,
                ..
            } => self.take_task(ctx, from, (task, class, copy, query), ttl),
            RoutingMessage::Accepted { task, .. } | RoutingMessage::Rejected { task, .. }
                if router::is_canary(task) =>
            {
                if matches!(msg, RoutingMessage::Rejected { .. }) {
                    self.router.canary_expired(task);
                }
            }
            RoutingMessage::Accepted { task, copy, .. } => {
                self.accepted(ctx.now(), from, task, copy)
            }
            RoutingMessage::Rejected {
                task, copy, reason, ..
            } => self.rejected(ctx, from, task, copy, reason),
            RoutingMessage::Result {
                task,
                copy,
                digest,
                sig,
                well_formed,
                started,
                queue,
                service,
                ..
            } => {
                let answer = router::Answer {
                    digest,
                    sig,
                    well_formed,
                };
                if router::is_canary(task) {
                    self.canary_result(from, task, answer);
                } else {
                    self.result(ctx, from, task, copy, answer, (started, queue, service));
                }
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: RoutingTimer) {
        match timer {
            RoutingTimer::Wake => self.wake(ctx),
            RoutingTimer::Report => {
                self.report_load(ctx);
                ctx.set_timer(RoutingTimer::Report, self.config.router.report_interval);
            }
            RoutingTimer::Flood => self.flood(ctx),
            RoutingTimer::Refresh => {
                self.refresh(ctx);
                self.check_silent(ctx);
                ctx.set_timer(RoutingTimer::Refresh, refresh_period(&self.config.router));
            }
        }
    }

    fn on_command(&mut self, ctx: &mut Context<'_, Self>, cmd: RoutingCommand) {
        match cmd {
            RoutingCommand::Submit { task, class } => self.submit(ctx, task, class),
            RoutingCommand::Peer(p) => {
                if !self.router.known_or_greeted(p) {
                    self.greet(ctx, p);
                }
            }
            RoutingCommand::Forget(p) => {
                self.router.forget(p);
            }
            RoutingCommand::Dead(p) => self.peer_dead(ctx, p),
            RoutingCommand::Rtt(p, rtt) => self.router.rtt(p, rtt),
            RoutingCommand::Trust(p, t) => self.router.trust(p, t),
            RoutingCommand::Watched(p, on) => self.router.watch(p, on),
            RoutingCommand::Quarantine(p, on) => self.router.quarantine(p, on),
            RoutingCommand::Isolate(p) => {
                self.router.isolate(p);
                self.peer_dead(ctx, p);
            }
        }
    }
}

impl crate::layer::Layer for Routing {
    const NAME: &'static str = "routing";

    fn on_notice(&self, notice: Notice) -> Option<RoutingCommand> {
        match notice {
            Notice::NeighborAdded(p) | Notice::PeerAlive(p) => Some(RoutingCommand::Peer(p)),
            Notice::NeighborRemoved(p) => Some(RoutingCommand::Forget(p)),
            Notice::PeerDead(p) => Some(RoutingCommand::Dead(p)),
            Notice::PeerRtt(p, rtt) => Some(RoutingCommand::Rtt(p, rtt)),
            Notice::Trust(p, t) => Some(RoutingCommand::Trust(p, t)),
            Notice::Watched(p, on) => Some(RoutingCommand::Watched(p, on)),
            Notice::Quarantined(p) => Some(RoutingCommand::Quarantine(p, true)),
            Notice::Released(p) => Some(RoutingCommand::Quarantine(p, false)),
            Notice::Isolated(p) => Some(RoutingCommand::Isolate(p)),
            _ => None,
        }
    }

    fn drain_notices(&mut self, out: &mut Vec<Notice>) {
        out.append(&mut self.journal);
    }

    fn memory_bytes(&self) -> usize {
        Routing::memory_bytes(self)
    }
}

/// Time between a flooder's tasks.
fn flood_gap(rate: f64) -> Duration {
    secs_to_duration(1.0 / rate).max(Duration::from_nanos(1_000))
}

impl Routing {
    /// A flooder sends one junk task to one of its targets (any class, a fresh query).
    fn flood(&mut self, ctx: &mut Context<'_, Self>) {
        let Some(f) = self.config.flood else {
            return;
        };
        let now = ctx.now();
        if now >= f.until {
            return;
        }
        let count = self.router.candidates_len().min(FLOOD_TARGETS);
        let classes = self.config.catalog.classes.len();
        if now >= f.from && count > 0 && classes > 0 {
            let pick = crate::random::below(ctx.rng(), count as u64) as usize;
            let class = crate::random::below(ctx.rng(), classes as u64) as ClassId;
            if let Some((to, _)) = self.router.candidates().nth(pick)
                && let Some(c) = self.config.catalog.classes.get(usize::from(class))
            {
                let (deadline, input_bytes) = (c.deadline, c.input_bytes);
                self.stats.flood_sent += 1;
                let task = FLOOD_BIT | self.stats.flood_sent;
                ctx.send(
                    to,
                    RoutingMessage::Task {
                        task,
                        class,
                        copy: 0,
                        query: task,
                        ttl: deadline,
                        input_bytes,
                    },
                );
            }
        }
        ctx.set_timer(RoutingTimer::Flood, flood_gap(f.rate));
    }
}

/// Workers a flooder aims at (the first it knows): a flood spread over every worker would be
/// load, not an attack on anyone.
const FLOOD_TARGETS: usize = 8;

/// Task ids of a flooder's junk (drivers number user tasks from zero).
const FLOOD_BIT: u64 = 1 << 62;

/// The digest an honest worker returns for a task (every honest copy agrees).
pub fn honest_digest(task: TaskId) -> u64 {
    let mut x = task ^ 0x9E37_79B9_7F4A_7C15;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
