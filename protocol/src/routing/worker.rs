//! The worker part: slots, a bounded queue, service times, load reports.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

use super::{
    ClassId, Due, FaultKind, ModelId, RejectReason, Routing, RoutingMessage, TaskId, WorkerConfig,
    honest_digest,
};
use crate::contract::Context;
use crate::detection::result_content;
use crate::pbft::message::mix;
use crate::random::below;
use crate::{Duration, NodeId, Time};

/// Senders a worker keeps a rate-limit bucket for, at most.
const BUCKETS_MAX: usize = 4_096;

/// A task copy waiting for or in service.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) struct Job {
    pub task: TaskId,
    pub copy: u8,
    /// The router that sent it (this node itself for a local task).
    pub from: NodeId,
    pub class: ClassId,
    pub query: u64,
    pub model: ModelId,
    pub arrived: Time,
    pub expires: Time,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Worker {
    pub(crate) config: WorkerConfig,
    hosted: Vec<ModelId>,
    queue: VecDeque<Job>,
    /// Jobs in service by sequence number, with their start time and service time.
    running: BTreeMap<u64, (Job, Time, Duration)>,
    next_job: u64,
    /// Routers that sent a task recently, with when they last did (most recent last).
    subscribers: Vec<(NodeId, Time)>,
    /// Jobs whose result a slow worker already held back once.
    held: std::collections::BTreeSet<u64>,
    /// Per sender, its token bucket (tokens, when last filled), for the rate limit.
    buckets: BTreeMap<NodeId, (f64, Time)>,
    /// Busy slot-time over the node's life (for utilisation).
    pub busy: Duration,
    pub served: u64,
}

impl Worker {
    pub fn new(config: WorkerConfig) -> Self {
        let hosted = config.models.iter().map(|&(m, _)| m).collect();
        Worker {
            config,
            hosted,
            queue: VecDeque::new(),
            running: BTreeMap::new(),
            next_job: 0,
            subscribers: Vec::new(),
            held: std::collections::BTreeSet::new(),
            buckets: BTreeMap::new(),
            busy: Duration::ZERO,
            served: 0,
        }
    }

    pub fn hosted(&self) -> &[ModelId] {
        &self.hosted
    }

    /// Tasks in service plus queued.
    pub fn load(&self) -> u32 {
        (self.running.len() + self.queue.len()) as u32
    }

    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    pub fn in_service(&self) -> usize {
        self.running.len()
    }

    pub fn has_free_slot(&self) -> bool {
        self.running.len() < usize::from(self.config.slots)
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.queue.capacity() * std::mem::size_of::<Job>()
            + self.running.len() * (std::mem::size_of::<(u64, (Job, Time, Duration))>() + 16)
            + self.subscribers.capacity() * std::mem::size_of::<(NodeId, Time)>()
            + self.hosted.capacity() * 2
    }

    fn subscribe(&mut self, router: NodeId, now: Time, max: usize) {
        self.subscribers.retain(|&(r, _)| r != router);
        if self.subscribers.len() >= max && !self.subscribers.is_empty() {
            self.subscribers.remove(0);
        }
        if max > 0 {
            self.subscribers.push((router, now));
        }
    }

    /// Takes a token from `from`'s bucket; false if it is empty (over the rate limit).
    fn admit(&mut self, from: NodeId, now: Time) -> bool {
        let Some(limit) = self.config.rate_limit else {
            return true;
        };
        if !self.buckets.contains_key(&from) && self.buckets.len() >= BUCKETS_MAX {
            // Forget the sender idle longest (its bucket would be full again anyway).
            if let Some((&idle, _)) = self.buckets.iter().min_by_key(|(_, (_, at))| *at) {
                self.buckets.remove(&idle);
            }
        }
        let (tokens, at) = self.buckets.entry(from).or_insert((limit.burst, now));
        *tokens =
            (*tokens + now.saturating_since(*at).as_secs_f64() * limit.per_s).min(limit.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    pub(crate) fn unsubscribe(&mut self, router: NodeId) {
        self.subscribers.retain(|&(r, _)| r != router);
    }
}

impl Routing {
    /// A router greets this node: a worker answers with its advert.
    pub(super) fn hello(&mut self, ctx: &mut Context<'_, Self>, from: NodeId) {
        let Some(w) = &self.worker else {
            return;
        };
        // Up to ADVERT_PEERS_MAX of this node's own candidates, drawn uniformly.
        let count = self.router.candidates_len();
        let mut picks = crate::random::sample_indices(ctx.rng(), count, super::ADVERT_PEERS_MAX);
        picks.sort_unstable();
        let mut peers: Vec<NodeId> = Vec::with_capacity(picks.len());
        let mut next = picks.iter().peekable();
        for (i, (id, _)) in self.router.candidates().enumerate() {
            match next.peek() {
                Some(&&p) if p == i => {
                    next.next();
                    if id != from {
                        peers.push(id);
                    }
                }
                Some(_) => {}
                None => break,
            }
        }
        let msg = RoutingMessage::Advert {
            region: self.config.region,
            models: w.hosted.clone().into_boxed_slice(),
            slots: w.config.slots,
            queue_max: w.config.queue_max,
            load: w.load(),
            peers: peers.into_boxed_slice(),
        };
        ctx.send(from, msg);
    }

    /// A task copy arrives from `from` (or from this node's own router).
    pub(super) fn take_task(
        &mut self,
        ctx: &mut Context<'_, Self>,
        from: NodeId,
        (task, class, copy, query): (TaskId, ClassId, u8, u64),
        ttl: Duration,
    ) {
        let now = ctx.now();
        let local = from == ctx.id();
        let subscribers_max = self.config.router.subscribers_max;
        let catalog = self.config.catalog.clone();
        let Some(w) = self.worker.as_mut() else {
            self.stats.unexpected += 1;
            if !local {
                Self::reject(ctx, from, (task, copy), 0, RejectReason::Incapable);
            }
            return;
        };
        if !local && !w.admit(from, now) {
            // Over its rate limit: turned down, and a first-hand mark against the sender.
            self.stats.rate_limited += 1;
            let load = w.load();
            self.journal
                .push(crate::layer::Notice::Observed(from, true));
            Self::reject(ctx, from, (task, copy), load, RejectReason::RateLimited);
            return;
        }
        if !local {
            w.subscribe(from, now, subscribers_max);
        }
        let needed = catalog.classes.get(usize::from(class)).map(|c| c.model);
        let model = needed.and_then(|m| catalog.serving(m, &w.hosted));
        let reject = match model {
            None => Some(RejectReason::Incapable),
            Some(_) if ttl == Duration::ZERO => Some(RejectReason::Expired),
            Some(_) if !w.has_free_slot() && w.queue.len() >= w.config.queue_max as usize => {
                Some(RejectReason::QueueFull)
            }
            Some(_) => None,
        };
        if let (Some(reason), Some(_)) = (reject, model) {
            match reason {
                RejectReason::QueueFull => self.stats.tasks_rejected_queue_full += 1,
                RejectReason::Expired => self.stats.tasks_expired_in_queue += 1,
                RejectReason::Incapable | RejectReason::Refused | RejectReason::RateLimited => {}
            }
        }
        let Some(model) = model.filter(|_| reject.is_none()) else {
            let reason = reject.unwrap_or(RejectReason::Incapable);
            if reason == RejectReason::Incapable {
                self.stats.tasks_rejected_incapable += 1;
            }
            let load = w.load();
            if local {
                self.local_rejected(ctx, task, copy, reason);
            } else {
                Self::reject(ctx, from, (task, copy), load, reason);
            }
            return;
        };
        let job = Job {
            task,
            copy,
            from,
            class,
            query,
            model,
            arrived: now,
            expires: now + ttl,
        };
        w.queue.push_back(job);
        let load = w.load();
        if !local {
            ctx.send(from, RoutingMessage::Accepted { task, copy, load });
        }
        self.start_jobs(ctx);
    }

    /// Moves queued jobs into free slots (skipping those already past their deadline).
    fn start_jobs(&mut self, ctx: &mut Context<'_, Self>) {
        let now = ctx.now();
        let catalog = self.config.catalog.clone();
        loop {
            let Some(w) = self.worker.as_mut() else {
                return;
            };
            if !w.has_free_slot() {
                return;
            }
            let Some(job) = w.queue.pop_front() else {
                return;
            };
            if job.expires <= now {
                self.stats.tasks_expired_in_queue += 1;
                let load = w.load();
                if job.from == ctx.id() {
                    self.local_rejected(ctx, job.task, job.copy, RejectReason::Expired);
                } else {
                    Self::reject(
                        ctx,
                        job.from,
                        (job.task, job.copy),
                        load,
                        RejectReason::Expired,
                    );
                }
                continue;
            }
            let compute = catalog
                .classes
                .get(usize::from(job.class))
                .map_or(1.0, |c| c.compute);
            let dist = w
                .config
                .models
                .iter()
                .find(|&&(m, _)| m == job.model)
                .map(|&(_, d)| d);
            let service = dist.map_or(Duration::ZERO, |d| d.sample(ctx.rng(), compute));
            let seq = w.next_job;
            w.next_job += 1;
            w.running.insert(seq, (job, now, service));
            self.schedule(ctx, now + service, Due::Finish(seq));
        }
    }

    pub(super) fn finish_job(&mut self, ctx: &mut Context<'_, Self>, seq: u64) {
        let now = ctx.now();
        let Some(w) = self.worker.as_mut() else {
            return;
        };
        let slow = w.config.faults.iter().find_map(|f| match f.kind {
            FaultKind::Slow { delay } if f.from <= now && now < f.until => Some(delay),
            _ => None,
        });
        if let Some(delay) = slow
            && w.running.contains_key(&seq)
            && w.held.insert(seq)
        {
            // A timing attack: the result waits, and so does the slot.
            self.stats.lies += 1;
            self.schedule(ctx, now + delay, Due::Finish(seq));
            return;
        }
        w.held.remove(&seq);
        let Some((job, started, service)) = w.running.remove(&seq) else {
            return;
        };
        w.busy = w.busy + service;
        w.served += 1;
        self.stats.tasks_served += 1;
        let load = w.load();
        let queue = started.saturating_since(job.arrived);
        let (digest, well_formed) = self.answer(ctx, &job);
        let sig = self
            .config
            .keys
            .sign(ctx.id(), result_content(job.query, digest));
        if job.from == ctx.id() {
            let answer = super::router::Answer {
                digest,
                sig,
                well_formed,
            };
            self.result(
                ctx,
                job.from,
                job.task,
                job.copy,
                answer,
                (started, queue, service),
            );
        } else {
            let output_bytes = self
                .config
                .catalog
                .classes
                .get(usize::from(job.class))
                .map_or(0, |c| c.output_bytes);
            ctx.send(
                job.from,
                RoutingMessage::Result {
                    task: job.task,
                    copy: job.copy,
                    load,
                    digest,
                    sig,
                    well_formed,
                    output_bytes,
                    started,
                    queue,
                    service,
                },
            );
        }
        self.start_jobs(ctx);
    }

    /// This worker's answer to `job`: the honest digest of its query, or a lie while one of its
    /// faults is active, or (at its error rate) an honest mistake. Lies and mistakes are decided by
    /// a hash of (worker, query), so a worker answers one query the same way every time (an
    /// honest worker never signs two answers to one query), except an `Inconsistent` one.
    fn answer(&mut self, ctx: &mut Context<'_, Self>, job: &Job) -> (u64, bool) {
        let now = ctx.now();
        let me = u64::from(ctx.id().0);
        let honest = honest_digest(job.query);
        let roll = |salt: u64| (mix(mix(me, job.query), salt) >> 11) as f64 / (1u64 << 53) as f64;
        let Some(w) = self.worker.as_ref() else {
            return (honest, true);
        };
        let faults: Vec<FaultKind> = w
            .config
            .faults
            .iter()
            .filter(|f| f.from <= now && now < f.until)
            .map(|f| f.kind)
            .collect();
        let error_rate = w.config.error_rate;
        for kind in faults {
            match kind {
                FaultKind::Wrong {
                    probability,
                    class,
                    group,
                    malformed,
                } => {
                    if class.is_some_and(|c| c != job.class) || roll(1) >= probability {
                        continue;
                    }
                    self.stats.lies += 1;
                    let digest = match group {
                        Some(g) => mix(honest, 0xC011_0DE0 ^ u64::from(g)),
                        None => mix(honest, mix(me, 2)),
                    };
                    return (digest, roll(3) >= malformed);
                }
                FaultKind::Inconsistent => {
                    self.stats.lies += 1;
                    return (mix(honest, below(ctx.rng(), u64::MAX) | 1), true);
                }
                FaultKind::Slow { .. } => {}
            }
        }
        if error_rate > 0.0 && roll(4) < error_rate {
            self.stats.honest_errors += 1;
            return (mix(honest, mix(me, 5)), true);
        }
        (honest, true)
    }

    /// Turns down copy `copy` of `task` from `to`, telling it this worker's load.
    pub(super) fn reject(
        ctx: &mut Context<'_, Self>,
        to: NodeId,
        (task, copy): (TaskId, u8),
        load: u32,
        reason: RejectReason,
    ) {
        ctx.send(
            to,
            RoutingMessage::Rejected {
                task,
                copy,
                load,
                reason,
            },
        );
    }

    /// A worker's periodic push of its load to the routers it holds a task for or that sent it
    /// one in the last ten report intervals.
    pub(super) fn report_load(&mut self, ctx: &mut Context<'_, Self>) {
        let now = ctx.now();
        let keep = self.config.router.report_interval.saturating_mul(10);
        let Some(w) = self.worker.as_mut() else {
            return;
        };
        // A router stays subscribed while this worker holds a task of its, or for ten
        // intervals after its last task.
        let holding: Vec<NodeId> = w
            .queue
            .iter()
            .map(|j| j.from)
            .chain(w.running.values().map(|(j, _, _)| j.from))
            .collect();
        w.subscribers
            .retain(|&(r, at)| now.saturating_since(at) <= keep || holding.contains(&r));
        let load = w.load();
        let subscribers: Vec<NodeId> = w.subscribers.iter().map(|&(r, _)| r).collect();
        for r in subscribers {
            self.stats.load_reports_sent += 1;
            ctx.send(r, RoutingMessage::Load { load });
        }
    }
}
