//! The router part: candidates, the choice by policy, tasks in flight and their failover.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use rand_chacha::ChaCha8Rng;

use super::{
    Attempt, AttemptOutcome, Catalog, ClassId, Due, FailReason, ModelId, Policy, RejectReason,
    RouterConfig, Routing, RoutingEvent, RoutingMessage, TaskClass, TaskId, TaskOutcome,
    TaskReport,
};
use crate::contract::Context;
use crate::detection::{Proof, result_content};
use crate::layer::Notice;
use crate::random::{below, chance, sample_indices};
use crate::{Duration, NodeId, Time};

/// What a router knows of one worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub region: u16,
    pub models: Box<[ModelId]>,
    pub slots: u16,
    pub queue_max: u32,
    /// The last load the worker reported, and when it arrived.
    pub load: u32,
    pub load_at: Time,
    /// Tasks this router sent it since that report.
    pub sent_since: u32,
    /// Smoothed round trip from the health layer's probes.
    pub rtt: Option<Duration>,
    /// Outcomes of this router's attempts on it: completed, and timed out or lost to its death.
    pub ok: u32,
    pub bad: u32,
    /// When this router last heard anything from it.
    pub heard: Time,
    /// The detection layer's reputation of it (None: no record there, or no detection layer).
    pub trust: Option<f64>,
    /// Its latest signed result here: (query, digest, signature), for a repeat check.
    pub last: Option<(u64, u64, u64)>,
    /// `models` as bit sets of models and families (see [`Catalog::masks`]).
    masks: Option<(u64, u64)>,
}

impl Candidate {
    pub fn new(
        region: u16,
        models: Box<[ModelId]>,
        slots: u16,
        queue_max: u32,
        load: u32,
        now: Time,
    ) -> Self {
        Candidate {
            region,
            models,
            slots: slots.max(1),
            queue_max,
            load,
            load_at: now,
            sent_since: 0,
            rtt: None,
            ok: 0,
            bad: 0,
            heard: now,
            trust: None,
            last: None,
            masks: None,
        }
    }

    /// Computes its capability bit sets from the catalog.
    pub fn set_masks(&mut self, catalog: &Catalog) {
        self.masks = catalog.masks(&self.models);
    }

    /// How well it serves `needed` (see [`Catalog::credit`]).
    pub fn credit(&self, catalog: &Catalog, needed: ModelId) -> f64 {
        match self.masks {
            Some(m) => catalog.credit_masked(needed, m),
            None => catalog.credit(needed, &self.models),
        }
    }

    /// Whether the last report is still fresh.
    pub fn fresh(&self, now: Time, max_age: Duration) -> bool {
        now.saturating_since(self.load_at) <= max_age
    }

    /// Tasks it holds as far as this router knows: the fresh report plus what it sent since, or
    /// only what it sent once the report is stale.
    pub fn estimated_load(&self, now: Time, max_age: Duration) -> u32 {
        if self.fresh(now, max_age) {
            self.load.saturating_add(self.sent_since)
        } else {
            self.sent_since
        }
    }

    /// Load per slot.
    fn utilisation(&self, now: Time, max_age: Duration) -> f64 {
        f64::from(self.estimated_load(now, max_age)) / f64::from(self.slots)
    }

    /// The four factors of the multi-factor score, each in [0, 1]. `prior` is the router's
    /// success rate over all its workers: a peer's own record is shrunk toward it (a Beta prior
    /// worth two outcomes), so a new peer scores as the average peer does, neither favoured nor
    /// shunned, and a long clean record does not crowd out peers not yet tried.
    ///
    /// Load and latency are scored in one currency, time, on the same scale: a factor is
    /// 1 / (1 + t / rtt_ref), with t the round trip for latency and, for load, the wait the task
    /// would have before a slot frees: the tasks ahead of it beyond the free slots, times the
    /// service time `service` (the router's estimate for the class), per slot. A worker with a
    /// free slot scores 1 on load; a worker without a fresh load report, and an unknown round
    /// trip, score 0.5.
    pub fn factors(
        &self,
        credit: f64,
        now: Time,
        config: &RouterConfig,
        prior: f64,
        service: Duration,
    ) -> [f64; 4] {
        let scale = config.rtt_ref.as_secs_f64().max(1e-9);
        let ahead = (self.estimated_load(now, config.report_max_age) + 1)
            .saturating_sub(u32::from(self.slots));
        let wait = f64::from(ahead) * service.as_secs_f64() / f64::from(self.slots);
        let mut load = 1.0 / (1.0 + wait / scale);
        if !self.fresh(now, config.report_max_age) {
            // No fresh report: its load is unknown, so neutral, or less if this router alone
            // already sent it enough to make it wait.
            load = load.min(0.5);
        }
        let latency = self
            .rtt
            .map_or(0.5, |r| 1.0 / (1.0 + r.as_secs_f64() / scale));
        // With the detection layer, reliability is its reputation (a new identity starts at its
        // prior); without, this router's own record shrunk toward its average.
        let reliability = match config.trust_prior {
            Some(fresh) => self.trust.unwrap_or(fresh),
            None => {
                (f64::from(self.ok) + 2.0 * prior)
                    / (f64::from(self.ok) + f64::from(self.bad) + 2.0)
            }
        };
        [credit, load, latency, reliability]
    }
}

/// One copy of a task in flight.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct CopyState {
    worker: Option<NodeId>,
    /// Its current attempt (index into the task's attempts).
    attempt: Option<u16>,
    accepted: bool,
    done: Option<CopyDone>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct CopyDone {
    digest: u64,
    at: Time,
    started: Time,
    queue: Duration,
    service: Duration,
}

#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    class: ClassId,
    submitted: Time,
    deadline: Time,
    copies: Vec<CopyState>,
    attempts: Vec<Attempt>,
    retries_left: u8,
    local: bool,
    load_age: Option<Duration>,
    /// The latest failed attempt was a full queue.
    last_reject: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Router {
    candidates: BTreeMap<NodeId, Candidate>,
    tasks: BTreeMap<TaskId, Pending>,
    round_robin: usize,
    round_robin_started: bool,
    accept_timeout: Duration,
    /// Outcomes over every worker this router ever used (the reliability prior).
    ok: u64,
    bad: u64,
    /// Greetings not yet answered, with when they were sent (a round-trip sample when answered).
    hellos: BTreeMap<NodeId, Time>,
    /// Per class, the smoothed service time workers reported (the load factor's time scale).
    service: Vec<Option<Duration>>,
    /// Whether this node has routed a task: only then does it widen its candidates beyond its
    /// neighbours through the workers adverts name.
    pub(crate) routed: bool,
    /// Spot checks in flight, by their task id.
    canaries: BTreeMap<TaskId, Canary>,
    next_canary: u64,
    /// Where the detection layer put peers: quarantined (no tasks), watched (more spot checks),
    /// isolated (never again).
    quarantined: BTreeSet<NodeId>,
    watched: BTreeSet<NodeId>,
    blocked: BTreeSet<NodeId>,
}

/// A result as it arrives: its digest, the worker's signature, and whether it passed the weak
/// check.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) struct Answer {
    pub digest: u64,
    pub sig: u64,
    pub well_formed: bool,
}

/// A spot check in flight: a task whose answer the router knows, or a query the worker
/// answered before (its earlier signed answer kept).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Canary {
    worker: NodeId,
    query: u64,
    deadline: Time,
    check: Check,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
enum Check {
    Known(u64),
    Repeat { digest: u64, sig: u64 },
}

/// Task ids of spot checks have the top bit set (drivers number user tasks from zero).
const CANARY_BIT: u64 = 1 << 63;

/// Spot checks in flight at one router, at most.
const CANARIES_MAX: usize = 4_096;

/// Peers remembered as quarantined, watched or isolated, at most each.
const SHUNNED_MAX: usize = 65_536;

pub(crate) fn is_canary(task: TaskId) -> bool {
    task & CANARY_BIT != 0
}

impl Router {
    pub fn new(config: &RouterConfig) -> Self {
        Router {
            candidates: BTreeMap::new(),
            tasks: BTreeMap::new(),
            round_robin: 0,
            round_robin_started: false,
            accept_timeout: config.accept_timeout,
            ok: 0,
            bad: 0,
            hellos: BTreeMap::new(),
            service: Vec::new(),
            routed: false,
            canaries: BTreeMap::new(),
            next_canary: 0,
            quarantined: BTreeSet::new(),
            watched: BTreeSet::new(),
            blocked: BTreeSet::new(),
        }
    }

    /// Quarantined or isolated here.
    pub(crate) fn shunned(&self, peer: NodeId) -> bool {
        (!self.quarantined.is_empty() && self.quarantined.contains(&peer))
            || (!self.blocked.is_empty() && self.blocked.contains(&peer))
    }

    pub(crate) fn blocked(&self, peer: NodeId) -> bool {
        !self.blocked.is_empty() && self.blocked.contains(&peer)
    }

    pub(crate) fn trust(&mut self, peer: NodeId, thousandths: u16) {
        if let Some(c) = self.candidates.get_mut(&peer) {
            c.trust = Some(f64::from(thousandths) / 1000.0);
        }
    }

    pub(crate) fn watch(&mut self, peer: NodeId, on: bool) {
        if on {
            if self.watched.len() < SHUNNED_MAX {
                self.watched.insert(peer);
            }
        } else {
            self.watched.remove(&peer);
        }
    }

    pub(crate) fn quarantine(&mut self, peer: NodeId, on: bool) {
        if on {
            if self.quarantined.len() < SHUNNED_MAX {
                self.quarantined.insert(peer);
            }
        } else {
            self.quarantined.remove(&peer);
        }
    }

    pub(crate) fn isolate(&mut self, peer: NodeId) {
        if self.blocked.len() < SHUNNED_MAX {
            self.blocked.insert(peer);
        }
        self.quarantined.remove(&peer);
        self.watched.remove(&peer);
    }

    /// Whether a copy sent to `peer` is followed by a spot check.
    fn spot_rate(&self, config: &RouterConfig, peer: NodeId) -> f64 {
        let watched = self.watched.contains(&peer)
            || (config.trust_prior.is_some()
                && self
                    .candidates
                    .get(&peer)
                    .is_some_and(|c| c.trust.is_none()));
        if watched {
            config.spot_check_watched
        } else {
            config.spot_check
        }
    }

    pub(crate) fn canary_expired(&mut self, task: TaskId) {
        self.canaries.remove(&task);
    }

    /// The service time to expect for `class`: the smoothed reports, or `fallback` before any.
    pub fn service_estimate(&self, class: ClassId, fallback: Duration) -> Duration {
        self.service
            .get(usize::from(class))
            .copied()
            .flatten()
            .unwrap_or(fallback)
    }

    fn service_sample(&mut self, class: ClassId, sample: Duration) {
        let i = usize::from(class);
        if self.service.len() <= i {
            self.service.resize(i + 1, None);
        }
        self.service[i] = Some(match self.service[i] {
            None => sample,
            Some(old) => Duration::from_nanos((old.as_nanos() / 8) * 7 + sample.as_nanos() / 8),
        });
    }

    pub fn candidates(&self) -> impl Iterator<Item = (NodeId, &Candidate)> {
        self.candidates.iter().map(|(&id, c)| (id, c))
    }

    pub fn candidates_len(&self) -> usize {
        self.candidates.len()
    }

    pub fn in_flight(&self) -> usize {
        self.tasks.len()
    }

    /// The success rate over all this router's attempts, Laplace-smoothed (0.5 before any).
    pub fn prior(&self) -> f64 {
        (self.ok as f64 + 1.0) / ((self.ok + self.bad) as f64 + 2.0)
    }

    fn outcome(&mut self, peer: NodeId, good: bool) {
        if good {
            self.ok += 1;
        } else {
            self.bad += 1;
        }
        if let Some(c) = self.candidates.get_mut(&peer) {
            if good {
                c.ok = c.ok.saturating_add(1);
            } else {
                c.bad = c.bad.saturating_add(1);
            }
        }
    }

    /// Room for another candidate, counting greetings not yet answered.
    pub(crate) fn has_room(&self, config: &RouterConfig) -> bool {
        self.candidates.len() + self.hellos.len() < config.candidates_max
    }

    /// A candidate already, or greeted and not yet answered.
    pub(crate) fn known_or_greeted(&self, peer: NodeId) -> bool {
        self.candidates.contains_key(&peer) || self.hellos.contains_key(&peer)
    }

    /// Forgets greetings older than `age` (a peer that is no worker never answers).
    pub(crate) fn expire_hellos(&mut self, now: Time, age: Duration) {
        self.hellos
            .retain(|_, &mut sent| now.saturating_since(sent) <= age);
    }

    /// A greeting sent; at most `max` are remembered (the oldest forgotten).
    pub(crate) fn hello_sent(&mut self, peer: NodeId, now: Time, max: usize) {
        if self.hellos.len() >= max.max(1)
            && let Some((&oldest, _)) = self.hellos.iter().min_by_key(|&(_, t)| *t)
        {
            self.hellos.remove(&oldest);
        }
        self.hellos.insert(peer, now);
    }

    /// An advert answered a greeting: the exchange timed one round trip.
    pub(crate) fn advert_answered(&mut self, peer: NodeId, now: Time) {
        if let Some(sent) = self.hellos.remove(&peer) {
            self.rtt(peer, now.saturating_since(sent));
        }
    }

    pub fn knows(&self, peer: NodeId) -> bool {
        self.candidates.contains_key(&peer)
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.candidates.len() * (std::mem::size_of::<(NodeId, Candidate)>() + 24)
            + self
                .tasks
                .values()
                .map(|p| {
                    std::mem::size_of::<(TaskId, Pending)>()
                        + 16
                        + p.copies.capacity() * std::mem::size_of::<CopyState>()
                        + p.attempts.capacity() * std::mem::size_of::<Attempt>()
                })
                .sum::<usize>()
    }

    /// A worker's advert; false if the table is full.
    pub(crate) fn advert(
        &mut self,
        catalog: &Catalog,
        peer: NodeId,
        mut c: Candidate,
        max: usize,
    ) -> bool {
        c.set_masks(catalog);
        if let Some(old) = self.candidates.get(&peer) {
            c.rtt = old.rtt;
            c.ok = old.ok;
            c.bad = old.bad;
        } else if self.candidates.len() >= max {
            return false;
        }
        self.candidates.insert(peer, c);
        true
    }

    pub(crate) fn heard_from(&mut self, peer: NodeId, now: Time) {
        if let Some(c) = self.candidates.get_mut(&peer) {
            c.heard = now;
        }
    }

    pub(crate) fn heard_load(&mut self, peer: NodeId, load: u32, now: Time) {
        if let Some(c) = self.candidates.get_mut(&peer) {
            c.load = load;
            c.load_at = now;
            c.sent_since = 0;
        }
    }

    pub(crate) fn forget(&mut self, peer: NodeId) {
        self.candidates.remove(&peer);
    }

    /// A round-trip sample, smoothed (weight 1/4 to the new one, as TCP's SRTT uses 1/8).
    pub(crate) fn rtt(&mut self, peer: NodeId, rtt: Duration) {
        if let Some(c) = self.candidates.get_mut(&peer) {
            c.rtt = Some(match c.rtt {
                None => rtt,
                Some(old) => Duration::from_nanos((old.as_nanos() / 4) * 3 + rtt.as_nanos() / 4),
            });
        }
    }

    /// Up to `k` distinct candidates for `class` by `policy`, none in `exclude`, each with the age
    /// of the load report that weighed in its choice.
    #[allow(clippy::too_many_arguments)]
    fn choose(
        &mut self,
        rng: &mut ChaCha8Rng,
        now: Time,
        catalog: &Catalog,
        config: &RouterConfig,
        (class_id, class): (ClassId, &TaskClass),
        exclude: &[NodeId],
        k: usize,
    ) -> Vec<(NodeId, Option<Duration>)> {
        if k == 0 {
            return Vec::new();
        }
        let eligible = || {
            self.candidates
                .iter()
                .filter(|(id, c)| {
                    !exclude.contains(id)
                        && class.residency.is_none_or(|r| r == c.region)
                        && (self.quarantined.is_empty() || !self.quarantined.contains(id))
                })
                .filter_map(|(&id, c)| {
                    let credit = c.credit(catalog, class.model);
                    (credit > 0.0).then_some((id, c, credit))
                })
        };
        let max_age = config.report_max_age;
        let age = |c: &Candidate| {
            c.fresh(now, max_age)
                .then(|| now.saturating_since(c.load_at))
        };
        let uses_load = matches!(
            config.policy,
            Policy::MultiFactor | Policy::Jsq { .. } | Policy::LeastLoaded
        );
        // The policies that rank every candidate by a key (highest first).
        let prior = self.prior();
        let service = self.service_estimate(class_id, config.rtt_ref);
        let w = config.weights;
        let key = |(_, c, credit): &(NodeId, &Candidate, f64)| -> f64 {
            match config.policy {
                Policy::MultiFactor => {
                    let f = c.factors(*credit, now, config, prior, service);
                    w.capability * f[0] + w.load * f[1] + w.latency * f[2] + w.reliability * f[3]
                }
                Policy::LeastLoaded => -c.utilisation(now, max_age),
                Policy::LeastLatency => -(c.rtt.map_or(f64::MAX, |r| r.as_secs_f64())),
                Policy::Random | Policy::RoundRobin | Policy::Jsq { .. } => 0.0,
            }
        };
        let ranked = matches!(
            config.policy,
            Policy::MultiFactor | Policy::LeastLoaded | Policy::LeastLatency
        );
        // One choice by a key: one pass, no list (the common case, and the hot one).
        if k == 1 && ranked {
            return best_one(rng, eligible(), key)
                .map(|(id, c, _)| (id, if uses_load { age(c) } else { None }))
                .into_iter()
                .collect();
        }
        let eligible: Vec<(NodeId, &Candidate, f64)> = eligible().collect();
        if eligible.is_empty() {
            return Vec::new();
        }
        let picked: Vec<usize> = match config.policy {
            Policy::Random => sample_indices(rng, eligible.len(), k),
            Policy::RoundRobin => {
                // Each router starts its cycle at a random place, so routers sharing candidates
                // do not walk them in lockstep.
                if !self.round_robin_started {
                    self.round_robin_started = true;
                    self.round_robin = below(rng, 1 << 32) as usize;
                }
                let start = self.round_robin % eligible.len();
                self.round_robin = self.round_robin.wrapping_add(k);
                (0..k.min(eligible.len()))
                    .map(|i| (start + i) % eligible.len())
                    .collect()
            }
            Policy::Jsq { d } => {
                let mut left: Vec<usize> = (0..eligible.len()).collect();
                let mut out = Vec::with_capacity(k);
                while out.len() < k && !left.is_empty() {
                    let drawn = sample_indices(rng, left.len(), usize::from(d.max(1)));
                    let best = drawn
                        .iter()
                        .copied()
                        .min_by(|&a, &b| {
                            let (ca, cb) = (eligible[left[a]].1, eligible[left[b]].1);
                            ca.utilisation(now, max_age)
                                .total_cmp(&cb.utilisation(now, max_age))
                        })
                        .unwrap_or(0);
                    out.push(left.swap_remove(best));
                }
                out
            }
            Policy::LeastLatency | Policy::LeastLoaded | Policy::MultiFactor => {
                best_k(rng, &eligible, k, key)
            }
        };
        picked
            .into_iter()
            .map(|i| {
                let (id, c, _) = eligible[i];
                (id, if uses_load { age(c) } else { None })
            })
            .collect()
    }
}

/// The best item by `key` (highest), ties broken uniformly at random (reservoir sampling: one
/// draw per tie met, in iteration order).
fn best_one<T>(
    rng: &mut ChaCha8Rng,
    items: impl Iterator<Item = T>,
    key: impl Fn(&T) -> f64,
) -> Option<T> {
    let mut best: Option<(T, f64)> = None;
    let mut ties = 0u64;
    for item in items {
        let v = key(&item);
        match &best {
            Some((_, b)) if v < *b => {}
            Some((_, b)) if v == *b => {
                ties += 1;
                if below(rng, ties + 1) == 0 {
                    best = Some((item, v));
                }
            }
            _ => {
                best = Some((item, v));
                ties = 0;
            }
        }
    }
    best.map(|(item, _)| item)
}

/// The indices of the `k` best entries by `key` (highest first), ties broken uniformly at random.
pub(crate) fn best_k<T>(
    rng: &mut ChaCha8Rng,
    items: &[T],
    k: usize,
    key: impl Fn(&T) -> f64,
) -> Vec<usize> {
    if k == 1 {
        return best_one(rng, items.iter().enumerate(), |(_, x)| key(x))
            .map(|(i, _)| vec![i])
            .unwrap_or_default();
    }
    let mut order: Vec<usize> = (0..items.len()).collect();
    for i in (1..order.len()).rev() {
        let j = below(rng, i as u64 + 1) as usize;
        order.swap(i, j);
    }
    let keys: Vec<f64> = items.iter().map(&key).collect();
    order.sort_by(|&a, &b| keys[b].total_cmp(&keys[a]));
    order.truncate(k);
    order
}

impl Routing {
    pub(super) fn submit(&mut self, ctx: &mut Context<'_, Self>, task: TaskId, class_id: ClassId) {
        let now = ctx.now();
        let catalog = self.config.catalog.clone();
        let config = self.config.router.clone();
        let Some(class) = catalog.classes.get(usize::from(class_id)) else {
            self.emit_now(
                ctx,
                task,
                class_id,
                TaskOutcome::Failed(FailReason::UnknownClass),
            );
            return;
        };
        if self.router.tasks.len() >= config.inflight_max || self.router.tasks.contains_key(&task) {
            self.emit_now(ctx, task, class_id, TaskOutcome::Rejected);
            return;
        }
        let copies = class.copies();
        let deadline = now + class.deadline;
        self.router.tasks.insert(
            task,
            Pending {
                class: class_id,
                submitted: now,
                deadline,
                copies: vec![CopyState::default(); copies],
                attempts: Vec::with_capacity(copies),
                retries_left: config.retries,
                local: false,
                load_age: None,
                last_reject: false,
            },
        );
        self.schedule(ctx, deadline, Due::Deadline(task));
        let own = ctx.id();
        let local = config.local_first
            && copies == 1
            && class.residency.is_none_or(|r| r == self.config.region)
            && self.worker.as_ref().is_some_and(|w| {
                w.has_free_slot() && catalog.credit(class.model, w.hosted()) >= super::MATCH_EXACT
            });
        if local {
            self.stats.tasks_local += 1;
            if let Some(p) = self.router.tasks.get_mut(&task) {
                p.local = true;
            }
            self.dispatch(ctx, task, 0, own, class);
            return;
        }
        if !self.router.routed {
            // The first task here: widen the candidates through the adverts of a few workers
            // already known (each names others), up to `candidates_max`.
            self.router.routed = true;
            ctx.set_timer(
                super::RoutingTimer::Refresh,
                super::refresh_period(&self.config.router),
            );
            let some: Vec<NodeId> = self
                .router
                .candidates()
                .map(|(id, _)| id)
                .take(super::ADVERT_PEERS_MAX)
                .collect();
            for p in some {
                self.greet(ctx, p);
            }
        }
        let picks = self.router.choose(
            ctx.rng(),
            now,
            &catalog,
            &config,
            (class_id, class),
            &[own],
            copies,
        );
        if picks.len() < copies {
            self.end(ctx, task, TaskOutcome::Failed(FailReason::NoCandidate));
            return;
        }
        if let Some(p) = self.router.tasks.get_mut(&task) {
            p.load_age = picks.first().and_then(|&(_, age)| age);
        }
        for (copy, (worker, _)) in picks.into_iter().enumerate() {
            self.dispatch(ctx, task, copy as u8, worker, class);
        }
    }

    /// A task that ends at its submission (unknown class, router full).
    fn emit_now(
        &mut self,
        ctx: &mut Context<'_, Self>,
        task: TaskId,
        class: ClassId,
        outcome: TaskOutcome,
    ) {
        let now = ctx.now();
        ctx.emit(RoutingEvent::Done(Box::new(TaskReport {
            task,
            class,
            submitted: now,
            finished: now,
            outcome,
            local: false,
            attempts: Vec::new(),
            mismatches: 0,
            digests: Box::new([]),
            queue: Duration::ZERO,
            service: Duration::ZERO,
            started: None,
            load_age: None,
        })));
    }

    /// Sends copy `copy` of `task` to `worker` (or takes it locally) as a new attempt.
    fn dispatch(
        &mut self,
        ctx: &mut Context<'_, Self>,
        task: TaskId,
        copy: u8,
        worker: NodeId,
        class: &TaskClass,
    ) {
        let now = ctx.now();
        let own = ctx.id();
        let Some(p) = self.router.tasks.get_mut(&task) else {
            return;
        };
        let index = p.attempts.len() as u16;
        p.attempts.push(Attempt {
            worker,
            copy,
            sent: now,
            ended: now,
            outcome: AttemptOutcome::Abandoned,
        });
        let ttl = p.deadline.saturating_since(now);
        let class_id = p.class;
        if let Some(c) = p.copies.get_mut(usize::from(copy)) {
            *c = CopyState {
                worker: Some(worker),
                attempt: Some(index),
                accepted: worker == own,
                done: None,
            };
        }
        if worker == own {
            self.take_task(ctx, own, (task, class_id, copy, task), ttl);
            return;
        }
        if let Some(c) = self.router.candidates.get_mut(&worker) {
            c.sent_since = c.sent_since.saturating_add(1);
        }
        ctx.send(
            worker,
            RoutingMessage::Task {
                task,
                class: class_id,
                copy,
                query: task,
                ttl,
                input_bytes: class.input_bytes,
            },
        );
        self.maybe_spot_check(ctx, worker, class_id, class, ttl);
        let at = now + self.router.accept_timeout;
        self.schedule(
            ctx,
            at,
            Due::Accept {
                task,
                copy,
                attempt: index,
            },
        );
    }

    /// The copy's current attempt, if it is still open and on `worker`.
    fn open_attempt(&self, task: TaskId, copy: u8, worker: NodeId) -> Option<u16> {
        let p = self.router.tasks.get(&task)?;
        let c = p.copies.get(usize::from(copy))?;
        (c.worker == Some(worker) && c.done.is_none())
            .then_some(c.attempt)
            .flatten()
    }

    fn close_attempt(&mut self, now: Time, task: TaskId, index: u16, outcome: AttemptOutcome) {
        if let Some(a) = self
            .router
            .tasks
            .get_mut(&task)
            .and_then(|p| p.attempts.get_mut(usize::from(index)))
        {
            a.ended = now;
            a.outcome = outcome;
        }
    }

    pub(super) fn accepted(&mut self, now: Time, from: NodeId, task: TaskId, copy: u8) {
        let Some(index) = self.open_attempt(task, copy, from) else {
            self.stats.late_answers += 1;
            return;
        };
        let Some(p) = self.router.tasks.get_mut(&task) else {
            return;
        };
        let sent = p.attempts.get(usize::from(index)).map(|a| a.sent);
        if let Some(c) = p.copies.get_mut(usize::from(copy)) {
            c.accepted = true;
        }
        if let Some(sent) = sent {
            // Task out, acceptance back: one more round trip to this worker.
            self.router.rtt(from, now.saturating_since(sent));
            let at = sent + self.router.accept_timeout;
            self.unschedule(
                at,
                Due::Accept {
                    task,
                    copy,
                    attempt: index,
                },
            );
        }
    }

    pub(super) fn rejected(
        &mut self,
        ctx: &mut Context<'_, Self>,
        from: NodeId,
        task: TaskId,
        copy: u8,
        reason: RejectReason,
    ) {
        let Some(index) = self.open_attempt(task, copy, from) else {
            self.stats.late_answers += 1;
            return;
        };
        self.close_attempt(ctx.now(), task, index, AttemptOutcome::Rejected(reason));
        if let Some(p) = self.router.tasks.get_mut(&task) {
            p.last_reject = reason == RejectReason::QueueFull;
        }
        self.failover(ctx, task, copy);
    }

    /// This node's own worker turned down a task it took locally.
    pub(super) fn local_rejected(
        &mut self,
        ctx: &mut Context<'_, Self>,
        task: TaskId,
        copy: u8,
        reason: RejectReason,
    ) {
        let own = ctx.id();
        self.rejected(ctx, own, task, copy, reason);
    }

    pub(super) fn result(
        &mut self,
        ctx: &mut Context<'_, Self>,
        from: NodeId,
        task: TaskId,
        copy: u8,
        answer: Answer,
        (started, queue, service): (Time, Duration, Duration),
    ) {
        let now = ctx.now();
        let own = ctx.id();
        if from != own
            && !self
                .config
                .keys
                .verify(from, result_content(task, answer.digest), answer.sig)
        {
            self.stats.bad_signatures += 1;
            return;
        }
        let Some(p) = self.router.tasks.get_mut(&task) else {
            self.stats.late_answers += 1;
            return;
        };
        let Some(c) = p.copies.get(usize::from(copy)).copied() else {
            self.stats.unexpected += 1;
            return;
        };
        // A late result from a worker this copy left still counts; one from a stranger does not.
        let Some(mine) = p
            .attempts
            .iter()
            .rposition(|a| a.copy == copy && a.worker == from)
        else {
            self.stats.unexpected += 1;
            return;
        };
        if c.done.is_some() {
            self.stats.late_answers += 1;
            return;
        }
        let sent = p.attempts.get(mine).map_or(now, |a| a.sent);
        if from != own {
            if let Some(cand) = self.router.candidates.get_mut(&from) {
                cand.last = Some((task, answer.digest, answer.sig));
            }
            let slow_after = self.config.router.slow_after;
            let rtt = self
                .router
                .candidates
                .get(&from)
                .and_then(|c| c.rtt)
                .unwrap_or(Duration::ZERO);
            let explained = queue + service + rtt + slow_after;
            if slow_after > Duration::ZERO && now.saturating_since(sent) > explained {
                // Time the worker's own report does not account for: a held-back answer.
                self.stats.slow_answers += 1;
                self.journal.push(Notice::Observed(from, true));
            }
            if !answer.well_formed {
                self.stats.weak_check_failed += 1;
                self.journal.push(Notice::Observed(from, true));
                self.router.outcome(from, false);
                if c.attempt == Some(mine as u16) {
                    self.close_attempt(now, task, mine as u16, AttemptOutcome::Invalid);
                    if let Some(p) = self.router.tasks.get_mut(&task) {
                        p.last_reject = false;
                    }
                    self.failover(ctx, task, copy);
                } else {
                    self.close_attempt(now, task, mine as u16, AttemptOutcome::Invalid);
                }
                return;
            }
        }
        let Some(p) = self.router.tasks.get_mut(&task) else {
            return;
        };
        if let Some(a) = p.attempts.get_mut(mine) {
            a.ended = now;
            a.outcome = AttemptOutcome::Completed;
        }
        if let Some(current) = c.attempt
            && usize::from(current) != mine
            && let Some(a) = p.attempts.get_mut(usize::from(current))
        {
            a.ended = now;
            a.outcome = AttemptOutcome::Abandoned;
        }
        if let Some(cs) = p.copies.get_mut(usize::from(copy)) {
            cs.worker = Some(from);
            cs.done = Some(CopyDone {
                digest: answer.digest,
                at: now,
                started,
                queue,
                service,
            });
        }
        let all_done = p.copies.iter().all(|c| c.done.is_some());
        let class = p.class;
        self.router.outcome(from, true);
        self.router.service_sample(class, service);
        if all_done {
            let (outcome, mismatches, digests) = self.compare(task);
            self.end_with(ctx, task, outcome, mismatches, digests);
        }
    }

    /// After a copy goes to `worker`, perhaps a spot check follows it: at the raised rate for a
    /// watched worker. Half of the checks (when the router holds an earlier signed answer of the
    /// worker) repeat that query: an honest worker answers a query the same way twice, so two
    /// different signed answers are a proof. The others ask a query whose answer the router
    /// knows.
    fn maybe_spot_check(
        &mut self,
        ctx: &mut Context<'_, Self>,
        worker: NodeId,
        class_id: ClassId,
        class: &TaskClass,
        ttl: Duration,
    ) {
        let config = &self.config.router;
        if config.spot_check <= 0.0 && config.spot_check_watched <= 0.0 {
            // No detection: nothing to look up per copy.
            return;
        }
        let rate = self.router.spot_rate(config, worker);
        if rate <= 0.0 || self.router.canaries.len() >= CANARIES_MAX || !chance(ctx.rng(), rate) {
            return;
        }
        let last = self.router.candidates.get(&worker).and_then(|c| c.last);
        let repeat = last.filter(|_| chance(ctx.rng(), 0.5));
        let (query, check) = match repeat {
            Some((query, digest, sig)) => {
                self.stats.repeat_checks += 1;
                (query, Check::Repeat { digest, sig })
            }
            None => {
                let query = CANARY_BIT | below(ctx.rng(), CANARY_BIT);
                (query, Check::Known(super::honest_digest(query)))
            }
        };
        self.stats.spot_checks += 1;
        let id = CANARY_BIT | self.router.next_canary;
        self.router.next_canary = (self.router.next_canary + 1) & !CANARY_BIT;
        let deadline = ctx.now() + ttl;
        self.router.canaries.insert(
            id,
            Canary {
                worker,
                query,
                deadline,
                check,
            },
        );
        ctx.send(
            worker,
            RoutingMessage::Task {
                task: id,
                class: class_id,
                copy: 0,
                query,
                ttl,
                input_bytes: class.input_bytes,
            },
        );
        self.schedule(ctx, deadline, Due::Canary(id));
    }

    /// A spot check's answer: wrong against the known answer, or different from the worker's
    /// earlier signed answer to the same query (then a proof).
    pub(super) fn canary_result(&mut self, from: NodeId, task: TaskId, answer: Answer) {
        let Some(canary) = self.router.canaries.get(&task).copied() else {
            self.stats.late_answers += 1;
            return;
        };
        if canary.worker != from {
            self.stats.unexpected += 1;
            return;
        }
        if !self.config.keys.verify(
            from,
            result_content(canary.query, answer.digest),
            answer.sig,
        ) {
            self.stats.bad_signatures += 1;
            return;
        }
        self.router.canaries.remove(&task);
        self.unschedule(canary.deadline, Due::Canary(task));
        let wrong = match canary.check {
            Check::Known(expected) => answer.digest != expected,
            Check::Repeat { digest, sig } => {
                if answer.digest != digest {
                    self.stats.conflicts_proven += 1;
                    self.journal.push(Notice::Proof(Proof::Results {
                        accused: from,
                        query: canary.query,
                        a: (digest, sig),
                        b: (answer.digest, answer.sig),
                    }));
                }
                answer.digest != digest
            }
        };
        let bad = wrong || !answer.well_formed;
        if bad {
            self.stats.spot_checks_failed += 1;
        }
        self.journal.push(Notice::Observed(from, bad));
    }

    /// Compares the results of each share's redundant copies: a majority must agree. Workers in
    /// a group's majority and minority are reported to the detection layer (a tie tells
    /// nothing about who lied).
    fn compare(&mut self, task: TaskId) -> (TaskOutcome, u8, Box<[u64]>) {
        let catalog = self.config.catalog.clone();
        let Some(p) = self.router.tasks.get(&task) else {
            return (TaskOutcome::Completed, 0, Box::new([]));
        };
        let r = catalog
            .classes
            .get(usize::from(p.class))
            .map_or(1, |c| usize::from(c.redundancy.max(1)));
        let mut agreed = true;
        let mut mismatches = 0usize;
        let mut minority: Vec<NodeId> = Vec::new();
        let mut majority: Vec<NodeId> = Vec::new();
        let mut winners: Vec<u64> = Vec::with_capacity(p.copies.len() / r);
        for group in p.copies.chunks(r) {
            let digests: Vec<u64> = group
                .iter()
                .filter_map(|c| c.done.map(|d| d.digest))
                .collect();
            let (top, count) = digests
                .iter()
                .map(|d| (*d, digests.iter().filter(|x| *x == d).count()))
                .max_by_key(|&(_, n)| n)
                .unwrap_or((0, 0));
            winners.push(top);
            let decided = count * 2 > digests.len();
            if !decided {
                agreed = false;
            }
            for c in group {
                if c.done.is_some_and(|d| d.digest != top) {
                    mismatches += 1;
                    if let Some(w) = c.worker {
                        minority.push(w);
                    }
                } else if decided
                    && r > 1
                    && let Some(w) = c.worker
                {
                    majority.push(w);
                }
            }
        }
        for w in minority {
            self.router.outcome(w, false);
            if r > 1 && agreed {
                self.journal.push(Notice::Observed(w, true));
            }
        }
        for w in majority {
            self.journal.push(Notice::Observed(w, false));
        }
        let outcome = if agreed {
            TaskOutcome::Completed
        } else {
            TaskOutcome::Failed(FailReason::Disagreement)
        };
        (
            outcome,
            mismatches.min(255) as u8,
            winners.into_boxed_slice(),
        )
    }

    pub(super) fn accept_timed_out(
        &mut self,
        ctx: &mut Context<'_, Self>,
        task: TaskId,
        copy: u8,
        attempt: u16,
    ) {
        let Some(p) = self.router.tasks.get(&task) else {
            return;
        };
        let Some(c) = p.copies.get(usize::from(copy)) else {
            return;
        };
        if c.attempt != Some(attempt) || c.accepted || c.done.is_some() {
            return;
        }
        if let Some(w) = c.worker {
            // Unanswered: counted against it, and it leaves the candidates (its adverts bring it
            // back if it is alive); health may know nothing of a worker outside the table.
            self.router.outcome(w, false);
            self.router.forget(w);
        }
        self.close_attempt(ctx.now(), task, attempt, AttemptOutcome::TimedOut);
        if let Some(p) = self.router.tasks.get_mut(&task) {
            p.last_reject = false;
        }
        self.failover(ctx, task, copy);
    }

    pub(super) fn deadline(&mut self, ctx: &mut Context<'_, Self>, task: TaskId) {
        if self.router.tasks.contains_key(&task) {
            self.end(ctx, task, TaskOutcome::Expired);
        }
    }

    /// Health confirmed `peer` dead: it is no candidate, and every copy on it moves on.
    pub(super) fn peer_dead(&mut self, ctx: &mut Context<'_, Self>, peer: NodeId) {
        self.router.candidates.remove(&peer);
        if let Some(w) = self.worker.as_mut() {
            w.unsubscribe(peer);
        }
        let hit: Vec<(TaskId, u8, u16)> = self
            .router
            .tasks
            .iter()
            .flat_map(|(&t, p)| {
                p.copies.iter().enumerate().filter_map(move |(i, c)| {
                    (c.worker == Some(peer) && c.done.is_none())
                        .then_some(c.attempt.map(|a| (t, i as u8, a)))
                        .flatten()
                })
            })
            .collect();
        for (task, copy, attempt) in hit {
            self.router.outcome(peer, false);
            self.close_attempt(ctx.now(), task, attempt, AttemptOutcome::WorkerDead);
            if let Some(p) = self.router.tasks.get_mut(&task) {
                p.last_reject = false;
            }
            self.failover(ctx, task, copy);
        }
    }

    /// Copies accepted by a worker this router has not heard from (no load report, no answer)
    /// for three report intervals plus the accept timeout are taken back: the worker has probably
    /// crashed, and health may not monitor it (a worker outside the routing table). Workers push
    /// their load every interval to the routers they hold tasks for, so a live one is heard.
    pub(super) fn check_silent(&mut self, ctx: &mut Context<'_, Self>) {
        let config = self.config.router.clone();
        if config.report_interval == Duration::ZERO {
            return;
        }
        let now = ctx.now();
        let own = ctx.id();
        let limit = config.report_interval.saturating_mul(3) + config.accept_timeout;
        let silent: Vec<(TaskId, u8, u16, NodeId)> = self
            .router
            .tasks
            .iter()
            .flat_map(|(&t, p)| {
                let router = &self.router;
                p.copies.iter().enumerate().filter_map(move |(i, c)| {
                    let (w, a) = (c.worker?, c.attempt?);
                    if !c.accepted || c.done.is_some() || w == own {
                        return None;
                    }
                    let sent = p.attempts.get(usize::from(a))?.sent;
                    let heard = router
                        .candidates
                        .get(&w)
                        .map_or(sent, |cand| cand.heard.max(sent));
                    (now.saturating_since(heard) > limit).then_some((t, i as u8, a, w))
                })
            })
            .collect();
        for (task, copy, attempt, worker) in silent {
            self.router.outcome(worker, false);
            self.router.forget(worker);
            self.close_attempt(now, task, attempt, AttemptOutcome::TimedOut);
            if let Some(p) = self.router.tasks.get_mut(&task) {
                p.last_reject = false;
            }
            self.failover(ctx, task, copy);
        }
    }

    /// Moves a copy to the next candidate within the task's retry budget and deadline.
    fn failover(&mut self, ctx: &mut Context<'_, Self>, task: TaskId, copy: u8) {
        let now = ctx.now();
        let catalog = self.config.catalog.clone();
        let config = self.config.router.clone();
        let own = ctx.id();
        let Some(p) = self.router.tasks.get_mut(&task) else {
            return;
        };
        if let Some(c) = p.copies.get_mut(usize::from(copy)) {
            c.worker = None;
            c.attempt = None;
            c.accepted = false;
        }
        let last_reject = p.last_reject;
        let give_up = if last_reject {
            TaskOutcome::Rejected
        } else {
            TaskOutcome::Failed(FailReason::RetriesExhausted)
        };
        if now >= p.deadline {
            self.end(ctx, task, TaskOutcome::Expired);
            return;
        }
        if p.retries_left == 0 {
            self.end(ctx, task, give_up);
            return;
        }
        let p_class = p.class;
        let Some(class) = catalog.classes.get(usize::from(p_class)) else {
            return;
        };
        let mut exclude: Vec<NodeId> = p.attempts.iter().map(|a| a.worker).collect();
        exclude.push(own);
        let picks = self.router.choose(
            ctx.rng(),
            now,
            &catalog,
            &config,
            (p_class, class),
            &exclude,
            1,
        );
        let Some(&(worker, _)) = picks.first() else {
            let outcome = if last_reject {
                TaskOutcome::Rejected
            } else {
                TaskOutcome::Failed(FailReason::NoCandidate)
            };
            self.end(ctx, task, outcome);
            return;
        };
        if let Some(p) = self.router.tasks.get_mut(&task) {
            p.retries_left -= 1;
        }
        self.dispatch(ctx, task, copy, worker, class);
    }

    /// Ends a task: open attempts are abandoned, its report emitted.
    fn end(&mut self, ctx: &mut Context<'_, Self>, task: TaskId, outcome: TaskOutcome) {
        self.end_with(ctx, task, outcome, 0, Box::new([]));
    }

    fn end_with(
        &mut self,
        ctx: &mut Context<'_, Self>,
        task: TaskId,
        outcome: TaskOutcome,
        mismatches: u8,
        digests: Box<[u64]>,
    ) {
        let now = ctx.now();
        let Some(mut p) = self.router.tasks.remove(&task) else {
            return;
        };
        self.unschedule(p.deadline, Due::Deadline(task));
        for c in &p.copies {
            if c.done.is_none()
                && let Some(i) = c.attempt
                && let Some(a) = p.attempts.get_mut(usize::from(i))
            {
                a.ended = now;
                a.outcome = AttemptOutcome::Abandoned;
                let at = a.sent + self.router.accept_timeout;
                self.agenda.remove(&(
                    at,
                    Due::Accept {
                        task,
                        copy: a.copy,
                        attempt: i,
                    },
                ));
            }
        }
        let last = p.copies.iter().filter_map(|c| c.done).max_by_key(|d| d.at);
        let completed = outcome == TaskOutcome::Completed;
        ctx.emit(RoutingEvent::Done(Box::new(TaskReport {
            task,
            class: p.class,
            submitted: p.submitted,
            finished: now,
            outcome,
            local: p.local,
            attempts: p.attempts,
            mismatches,
            digests: if completed { digests } else { Box::new([]) },
            queue: last
                .filter(|_| completed)
                .map_or(Duration::ZERO, |d| d.queue),
            service: last
                .filter(|_| completed)
                .map_or(Duration::ZERO, |d| d.service),
            started: last.filter(|_| completed).map(|d| d.started),
            load_age: p.load_age,
        })));
    }
}
