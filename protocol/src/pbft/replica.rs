//! The PBFT replica: normal case, checkpoints and watermarks, view change.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use super::message::Phase;
use super::{
    Behavior, Checkpoint, Digest, Env, FetchState, FetchViewChanges, NewView, PbftEvent,
    PbftMessage, PbftTimer, PrePrepare, PreparedCert, Proposal, Reply, Request, Signer, StateReply,
    TableEntry, ViewChange, ViewChangeRef, Vote, batch_digest, checkpoint_digest, mix,
};
use crate::contract::{Evidence, EvidenceKind};
use crate::detection::{PbftPhase, Proof};

/// Two conflicting signed statements of one replica: (phase, view, seq, (digest, sig) twice).
type Statements = (PbftPhase, u64, u64, (u64, u64), (u64, u64));
use crate::{Duration, NodeId, Time};

/// Distinct (view, digest) vote groups kept per sequence number and phase: an honest run has one
/// per view; more come only from equivocation.
const TALLIES_PER_SLOT_MAX: usize = 4;
/// Checkpoint sequence numbers above the stable one that are tracked at once (the lowest win).
const CHECKPOINT_SEQS_MAX: usize = 16;
/// Slots a status answer retransmits at most.
const STATUS_SLOTS_MAX: usize = 32;

/// Votes for one (view, digest): a bitmap of replicas that voted, and the votes themselves when
/// they are needed as a certificate (prepares).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Tally {
    view: u64,
    digest: Digest,
    seen: Vec<u64>,
    count: u32,
    votes: Vec<Vote>,
}

enum Added {
    Fresh,
    Duplicate,
    /// The voter already voted for another digest in this view (that vote, if it was kept).
    Conflict(Option<Vote>),
    Full,
}

/// Adds `vote`, keeping at most `keep` votes themselves (a prepared certificate needs 2f).
fn add_vote(tallies: &mut Vec<Tally>, vote: Vote, n: u32, keep: u32) -> Added {
    let (word, bit) = (vote.replica as usize / 64, 1u64 << (vote.replica % 64));
    let conflict = tallies
        .iter()
        .any(|t| t.view == vote.view && t.digest != vote.digest && t.seen[word] & bit != 0);
    let index = match tallies
        .iter()
        .position(|t| t.view == vote.view && t.digest == vote.digest)
    {
        Some(i) => i,
        None => {
            if tallies.len() >= TALLIES_PER_SLOT_MAX {
                return Added::Full;
            }
            tallies.push(Tally {
                view: vote.view,
                digest: vote.digest,
                seen: vec![0; (n as usize).div_ceil(64)],
                count: 0,
                votes: Vec::new(),
            });
            tallies.len() - 1
        }
    };
    let tally = &mut tallies[index];
    if tally.seen[word] & bit != 0 {
        return Added::Duplicate;
    }
    tally.seen[word] |= bit;
    tally.count += 1;
    if (tally.votes.len() as u32) < keep {
        tally.votes.push(vote);
    }
    if conflict {
        let earlier = tallies.iter().find_map(|t| {
            (t.view == vote.view && t.digest != vote.digest)
                .then(|| t.votes.iter().find(|v| v.replica == vote.replica).copied())
                .flatten()
        });
        Added::Conflict(earlier)
    } else {
        Added::Fresh
    }
}

fn count(tallies: &[Tally], view: u64, digest: Digest) -> u32 {
    tallies
        .iter()
        .find(|t| t.view == view && t.digest == digest)
        .map_or(0, |t| t.count)
}

/// Everything a replica knows about one sequence number.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct Slot {
    /// The accepted pre-prepare and the view it belongs to.
    pre_prepare: Option<PrePrepare>,
    /// When the pre-prepare was accepted (or, before it, when the first vote arrived).
    accepted_at: Time,
    prepares: Vec<Tally>,
    commits: Vec<Tally>,
    prepared: bool,
    sent_commit: bool,
    committed: bool,
    /// The prepared certificate of the highest view, kept across views for view changes.
    pub(super) cert: Option<PreparedCert>,
    /// (view, digest) pairs a double-voting replica has already voted for.
    double_voted: Vec<(u64, Digest)>,
}

impl Slot {
    fn accept(&mut self, pp: PrePrepare, now: Time) {
        let view = pp.view;
        self.prepares.retain(|t| t.view >= view);
        self.commits.retain(|t| t.view >= view);
        self.pre_prepare = Some(pp);
        self.accepted_at = now;
        self.prepared = false;
        self.sent_commit = false;
        self.committed = false;
    }
}

/// Checkpoint messages for one sequence number and state.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CheckpointTally {
    state: u64,
    seen: Vec<u64>,
    msgs: Vec<Checkpoint>,
}

/// What a replica keeps on stable storage: its view, its stable checkpoint with the proof, and
/// the last reply to each client.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ReplicaDurable {
    view: u64,
    low: u64,
    stable_state: u64,
    stable_proof: Vec<Checkpoint>,
    stable_running: u64,
    stable_table: Vec<TableEntry>,
}

/// A client's last executed request at this replica: (timestamp, result, view).
type LastReply = (u64, u64, u64);

type RequestKey = (NodeId, u64);

/// A NEW-VIEW whose named view changes this replica does not all hold yet.
pub(super) struct PendingNewView {
    nv: NewView,
    /// Who sent it (and so holds the view changes it names).
    from: NodeId,
    /// The named view changes received so far, by replica.
    have: BTreeMap<u32, Arc<ViewChange>>,
}

impl PendingNewView {
    pub(super) fn missing(&self) -> Vec<u32> {
        self.nv
            .view_changes
            .iter()
            .map(|r| r.replica)
            .filter(|r| !self.have.contains_key(r))
            .collect()
    }

    /// Takes `vc` if the new view names it; true if it did.
    fn offer(&mut self, vc: &Arc<ViewChange>) -> bool {
        if vc.view != self.nv.view || self.have.contains_key(&vc.replica) {
            return false;
        }
        // One digest per offer: it hashes every certificate the view change carries.
        let digest = vc.digest();
        let named = self
            .nv
            .view_changes
            .iter()
            .any(|r| r.replica == vc.replica && r.digest == digest);
        if !named {
            return false;
        }
        self.have.insert(vc.replica, vc.clone());
        true
    }

    /// The named view changes in the new view's order, once all are here.
    fn complete(&self) -> Option<Vec<Arc<ViewChange>>> {
        self.nv
            .view_changes
            .iter()
            .map(|r| self.have.get(&r.replica).cloned())
            .collect()
    }
}

pub(crate) struct Replica {
    pub index: u32,
    pub view: u64,
    /// False while changing to `view` (waiting for its new-view message).
    pub active: bool,
    /// The primary's next sequence number.
    seq_next: u64,
    /// The stable checkpoint: the low watermark.
    pub low: u64,
    /// The stable checkpoint's certified digest (running state and reply table).
    stable_state: u64,
    stable_proof: Vec<Checkpoint>,
    /// The replicated state at the stable checkpoint, served to lagging replicas; None while
    /// this replica is itself fetching it.
    stable_snapshot: Option<(u64, Vec<TableEntry>)>,
    /// This replica's own checkpoints above the stable one, until they become stable.
    snapshots: BTreeMap<u64, (u64, Vec<TableEntry>)>,
    /// A stable checkpoint (seq, digest) this replica has not executed to and is fetching.
    transfer: Option<(u64, u64)>,
    pub last_executed: u64,
    /// The state digest after `last_executed`: a function of the committed (seq, digest) prefix.
    state: u64,
    pub(super) log: BTreeMap<u64, Slot>,
    checkpoints: BTreeMap<u64, Vec<CheckpointTally>>,
    last_reply: BTreeMap<NodeId, LastReply>,
    /// The primary's requests not yet proposed.
    pending: VecDeque<Request>,
    batch_due: bool,
    /// Requests this replica knows of and has not executed (a backup's view-change timer runs
    /// while this is not empty).
    waiting: BTreeMap<RequestKey, Request>,
    /// Requests already in a pre-prepare of the log.
    proposed: BTreeSet<RequestKey>,
    /// The latest view change of each replica.
    view_changes: BTreeMap<u32, Arc<ViewChange>>,
    new_view_sent: Option<u64>,
    view_change_attempts: u32,
    view_change_started: Option<Time>,
    /// Messages for a view not installed yet.
    future: VecDeque<(NodeId, PbftMessage)>,
    restarted_as_primary: bool,
    /// The new-view message of the current view, re-sent to replicas that missed it, and the
    /// view changes it names (served to replicas that lack some).
    pub(super) last_new_view: Option<(NewView, Vec<Arc<ViewChange>>)>,
    /// A new view waiting for view changes it names.
    pub(super) pending_new_view: Option<PendingNewView>,
    /// When each replica's status was last answered (answers are rate-limited).
    status_answered: Vec<Time>,
    /// When each replica's view-change fetch was last answered (likewise).
    fetch_answered: Vec<Time>,
    /// Status ticks since this replica's view change was last re-sent, and how often it was.
    vc_ticks: u32,
    vc_resends: u32,
    /// Whether the status timer is armed (it runs only while there is unfinished work).
    status_armed: bool,
    /// Replicas the node's health layer reports dead (only in a composed node).
    down: BTreeSet<u32>,
}

impl Replica {
    pub fn new(index: u32, durable: Option<ReplicaDurable>) -> Self {
        let mut replica = Replica {
            index,
            view: 0,
            active: true,
            seq_next: 1,
            low: 0,
            stable_state: 0,
            stable_proof: Vec::new(),
            stable_snapshot: Some((0, Vec::new())),
            snapshots: BTreeMap::new(),
            transfer: None,
            last_executed: 0,
            state: 0,
            log: BTreeMap::new(),
            checkpoints: BTreeMap::new(),
            last_reply: BTreeMap::new(),
            pending: VecDeque::new(),
            batch_due: false,
            waiting: BTreeMap::new(),
            proposed: BTreeSet::new(),
            view_changes: BTreeMap::new(),
            new_view_sent: None,
            view_change_attempts: 0,
            view_change_started: None,
            future: VecDeque::new(),
            restarted_as_primary: false,
            last_new_view: None,
            pending_new_view: None,
            status_answered: Vec::new(),
            fetch_answered: Vec::new(),
            vc_ticks: 0,
            vc_resends: 0,
            status_armed: false,
            down: BTreeSet::new(),
        };
        if let Some(d) = durable {
            replica.view = d.view;
            replica.low = d.low;
            replica.stable_state = d.stable_state;
            replica.stable_proof = d.stable_proof;
            replica.last_executed = d.low;
            replica.state = d.stable_running;
            replica.seq_next = d.low + 1;
            replica.last_reply = d
                .stable_table
                .iter()
                .map(|e| (e.client, (e.timestamp, e.result, d.view)))
                .collect();
            replica.stable_snapshot = Some((d.stable_running, d.stable_table));
            replica.restarted_as_primary = true;
        }
        replica
    }

    pub fn durable(&self) -> ReplicaDurable {
        ReplicaDurable {
            view: self.view,
            low: self.low,
            stable_state: self.stable_state,
            stable_proof: self.stable_proof.clone(),
            stable_running: self.stable_snapshot.as_ref().map_or(0, |s| s.0),
            stable_table: self
                .stable_snapshot
                .as_ref()
                .map_or_else(Vec::new, |s| s.1.clone()),
        }
    }

    pub fn start(&mut self, env: &mut Env<'_, '_>) {
        self.status_answered = vec![Time::ZERO; env.roster.n() as usize];
        self.fetch_answered = vec![Time::ZERO; env.roster.n() as usize];
        env.ctx
            .set_timer(PbftTimer::Status, env.config.status_interval);
        // A restarted primary has lost its sequence counter: rather than risk reusing a number
        // in its view, it asks to move on.
        if self.restarted_as_primary && env.roster.primary(self.view) == self.index {
            self.start_view_change(env, self.view + 1);
        }
        self.watch(env);
    }

    /// Bytes the replica holds beyond its own struct, estimated from what it holds: the log with
    /// its votes and certificates, checkpoint tallies and snapshots, the reply table, queued and
    /// waiting requests, view changes and buffered future messages.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let tally = |t: &Tally| {
            size_of::<Tally>() + t.seen.capacity() * 8 + t.votes.capacity() * size_of::<Vote>()
        };
        let slots: usize = self
            .log
            .values()
            .map(|slot| {
                size_of::<Slot>()
                    + 40
                    + slot
                        .pre_prepare
                        .as_ref()
                        .map_or(0, |p| p.batch.capacity() * size_of::<Request>())
                    + slot.prepares.iter().map(tally).sum::<usize>()
                    + slot.commits.iter().map(tally).sum::<usize>()
                    + slot.cert.as_ref().map_or(0, |c| {
                        c.prepares.capacity() * size_of::<Vote>()
                            + c.pre_prepare.batch.capacity() * size_of::<Request>()
                    })
            })
            .sum();
        let checkpoints: usize = self
            .checkpoints
            .values()
            .flatten()
            .map(|c| {
                size_of::<CheckpointTally>()
                    + c.seen.capacity() * 8
                    + c.msgs.capacity() * size_of::<Checkpoint>()
            })
            .sum();
        let table = |t: &Vec<TableEntry>| t.capacity() * size_of::<TableEntry>();
        let snapshots: usize = self
            .snapshots
            .values()
            .map(|(_, t)| table(t) + 48)
            .sum::<usize>()
            + self.stable_snapshot.as_ref().map_or(0, |(_, t)| table(t));
        let view_changes: usize = self
            .view_changes
            .values()
            .map(|v| {
                size_of::<ViewChange>()
                    + v.proof.capacity() * size_of::<Checkpoint>()
                    + v.prepared
                        .iter()
                        .map(|c| {
                            size_of::<PreparedCert>() + c.prepares.capacity() * size_of::<Vote>()
                        })
                        .sum::<usize>()
            })
            .sum();
        slots
            + checkpoints
            + snapshots
            + view_changes
            + self.stable_proof.capacity() * size_of::<Checkpoint>()
            + self.last_reply.len() * (40 + size_of::<LastReply>())
            + self.pending.capacity() * size_of::<Request>()
            + self.waiting.len() * (40 + size_of::<RequestKey>() + size_of::<Request>())
            + self.proposed.len() * (40 + size_of::<RequestKey>())
            + self.future.capacity() * size_of::<(NodeId, PbftMessage)>()
            + (self.status_answered.capacity() + self.fetch_answered.capacity()) * 8
    }

    /// The health layer confirmed `replica` dead. A backup whose primary it is moves to the next
    /// view whose primary is not known dead at once, rather than wait for a request to time out.
    pub fn peer_down(&mut self, env: &mut Env<'_, '_>, replica: u32) {
        if replica == self.index || replica >= env.roster.n() || !self.down.insert(replica) {
            return;
        }
        env.ctx.emit(PbftEvent::ReplicaDown {
            replica: self.index,
            down: replica,
        });
        if self.active && env.roster.primary(self.view) == replica {
            let next = self.next_live_view(env, self.view + 1);
            self.start_view_change(env, next);
        }
        self.watch(env);
    }

    /// The health layer saw `replica` alive again.
    pub fn peer_up(&mut self, env: &mut Env<'_, '_>, replica: u32) {
        if self.down.remove(&replica) {
            env.ctx.emit(PbftEvent::ReplicaUp {
                replica: self.index,
                up: replica,
            });
        }
    }

    /// The first view from `from` on whose primary is not known dead (`from` if all are).
    fn next_live_view(&self, env: &Env<'_, '_>, from: u64) -> u64 {
        if self.down.is_empty() {
            return from;
        }
        let n = u64::from(env.roster.n());
        (from..from.saturating_add(n))
            .find(|&v| !self.down.contains(&env.roster.primary(v)))
            .unwrap_or(from)
    }

    fn is_primary(&self, env: &Env<'_, '_>) -> bool {
        env.roster.primary(self.view) == self.index
    }

    fn in_window(&self, env: &Env<'_, '_>, seq: u64) -> bool {
        seq > self.low && seq <= self.low + env.config.log_window
    }

    fn accuse(&self, env: &mut Env<'_, '_>, replica: u32, kind: EvidenceKind) {
        self.accuse_with(env, replica, kind, None);
    }

    /// Reports `replica`, with the proof when two of its signed statements conflict:
    /// `(phase, view, seq, (digest, sig), (digest, sig))`.
    fn accuse_with(
        &self,
        env: &mut Env<'_, '_>,
        replica: u32,
        kind: EvidenceKind,
        statements: Option<Statements>,
    ) {
        if let Some(&host) = env
            .roster
            .hosts
            .get(replica as usize)
            .and_then(|h| h.first())
        {
            let proof = statements.map(|(phase, view, seq, a, b)| {
                Box::new(Proof::Pbft {
                    accused: host,
                    replica,
                    phase,
                    view,
                    seq,
                    a,
                    b,
                })
            });
            env.ctx.report(Evidence {
                accused: host,
                kind,
                proof,
            });
        }
    }

    fn double_voting(env: &Env<'_, '_>) -> bool {
        matches!(
            env.behavior(),
            Some(Behavior::DoubleVote | Behavior::Equivocate)
        )
    }

    pub fn on_message(&mut self, env: &mut Env<'_, '_>, from: NodeId, msg: PbftMessage) {
        self.handle(env, from, msg);
        self.watch(env);
    }

    /// Arms the status timer if this replica has unfinished work (a slot it has not executed, a
    /// view change, a state fetch) and the timer is not running; an idle replica has none.
    fn watch(&mut self, env: &mut Env<'_, '_>) {
        if self.status_armed {
            return;
        }
        let pending = !self.active
            || self.transfer.is_some()
            || self.pending_new_view.is_some()
            || self.log.range(self.last_executed + 1..).next().is_some();
        if pending {
            self.status_armed = true;
            env.ctx
                .set_timer(PbftTimer::Status, env.config.status_interval);
        }
    }

    fn handle(&mut self, env: &mut Env<'_, '_>, from: NodeId, msg: PbftMessage) {
        let view = match &msg {
            PbftMessage::PrePrepare(p) => Some(p.view),
            PbftMessage::Prepare(v) | PbftMessage::Commit(v) => Some(v.view),
            _ => None,
        };
        if let Some(view) = view {
            if view < self.view {
                env.stats.stale += 1;
                return;
            }
            if view > self.view || !self.active {
                if self.future.len() >= env.config.future_max {
                    env.stats.future_dropped += 1;
                } else {
                    self.future.push_back((from, msg));
                }
                return;
            }
        }
        match msg {
            PbftMessage::Request(r) => self.on_request(env, r),
            PbftMessage::PrePrepare(p) => self.on_pre_prepare(env, *p),
            PbftMessage::Prepare(v) => self.on_vote(env, v, Phase::Prepare),
            PbftMessage::Commit(v) => self.on_vote(env, v, Phase::Commit),
            PbftMessage::Checkpoint(c) => self.on_checkpoint(env, c),
            PbftMessage::ViewChange(v) => self.on_view_change(env, v),
            PbftMessage::NewView(nv) => self.on_new_view(env, from, *nv),
            PbftMessage::FetchState(f) => self.on_fetch(env, f),
            PbftMessage::Status(st) => self.on_status(env, *st),
            PbftMessage::StateReply(r) => self.on_state(env, *r),
            PbftMessage::FetchViewChanges(f) => self.on_fetch_view_changes(env, from, &f),
            PbftMessage::Reply(_) => env.stats.stale += 1,
        }
    }

    pub fn on_timer(&mut self, env: &mut Env<'_, '_>, timer: PbftTimer) {
        self.fire(env, timer);
        self.watch(env);
    }

    fn fire(&mut self, env: &mut Env<'_, '_>, timer: PbftTimer) {
        match timer {
            PbftTimer::Request => {
                if self.active && !self.waiting.is_empty() && !self.is_primary(env) {
                    let next = self.next_live_view(env, self.view + 1);
                    self.start_view_change(env, next);
                }
            }
            PbftTimer::ViewChange => {
                if !self.active {
                    let next = self.next_live_view(env, self.view + 1);
                    self.start_view_change(env, next);
                }
            }
            PbftTimer::Batch => {
                self.batch_due = true;
                self.try_propose(env);
            }
            PbftTimer::Fetch => self.fetch(env),
            PbftTimer::Status => {
                // A view change is retransmitted until its new view arrives (a lost one can
                // leave a replica short of the f+1 it needs to join): directly to the replicas
                // not known to be changing to this view; those that are say in their status
                // messages which view changes they lack, and get it in the answer.
                // Backs off exponentially (every 1, 2, 4, 8, 16 status intervals): a peer that
                // never answers is partitioned away or down, and a full view change costs
                // O(P n) bytes.
                self.vc_ticks += 1;
                let due = self.vc_ticks >= 1 << self.vc_resends.min(4);
                if let Some(vc) = self
                    .view_changes
                    .get(&self.index)
                    .filter(|v| due && !self.active && v.view == self.view)
                    .cloned()
                {
                    self.vc_ticks = 0;
                    self.vc_resends += 1;
                    let msg = PbftMessage::ViewChange(vc);
                    for r in 0..env.roster.n() {
                        let changing = self
                            .view_changes
                            .get(&r)
                            .is_some_and(|c| c.view >= self.view);
                        if r != self.index && !changing {
                            env.send_to_replica(r, &msg);
                        }
                    }
                }
                self.request_missing_view_changes(env);
                self.status_armed = false;
                if self.behind(env) {
                    let mut view_changes = Vec::new();
                    if !self.active {
                        view_changes = vec![0u64; (env.roster.n() as usize).div_ceil(64)];
                        for (&r, _) in self
                            .view_changes
                            .iter()
                            .filter(|(_, c)| c.view == self.view)
                        {
                            view_changes[r as usize / 64] |= 1 << (r % 64);
                        }
                    }
                    let mut status = super::Status {
                        view: self.view,
                        active: self.active,
                        last_executed: self.last_executed,
                        view_changes,
                        replica: self.index,
                        sig: super::Sig(0),
                    };
                    status.sig = env.sign(Signer::Replica(self.index), status.content());
                    env.multicast(Some(self.index), &PbftMessage::Status(Box::new(status)));
                }
                env.ctx
                    .set_timer(PbftTimer::Status, env.config.status_interval);
            }
            PbftTimer::ClientRetry | PbftTimer::Release => {}
        }
    }

    // ---- Normal case ----

    fn on_request(&mut self, env: &mut Env<'_, '_>, request: Request) {
        if let Some(&(timestamp, result, view)) = self.last_reply.get(&request.client) {
            if request.timestamp == timestamp {
                self.reply(env, request.client, timestamp, result, view);
            }
            if request.timestamp <= timestamp {
                return;
            }
        }
        let key = (request.client, request.timestamp);
        if self.waiting.contains_key(&key) || self.proposed.contains(&key) {
            env.stats.duplicates += 1;
            return;
        }
        if self.waiting.len() >= env.config.pending_max {
            env.stats.queue_full += 1;
            return;
        }
        self.waiting.insert(key, request);
        if !self.active {
            return;
        }
        if self.is_primary(env) {
            self.pending.push_back(request);
            self.try_propose(env);
        } else {
            let primary = env.roster.primary(self.view);
            env.send_to_replica(primary, &PbftMessage::Request(request));
            if !env.ctx.timer_armed(PbftTimer::Request) {
                env.ctx
                    .set_timer(PbftTimer::Request, env.config.request_timeout);
            }
        }
    }

    fn try_propose(&mut self, env: &mut Env<'_, '_>) {
        if !self.active || !self.is_primary(env) {
            return;
        }
        let batch_max = env.config.batch_size_max.max(1) as usize;
        while !self.pending.is_empty() && self.seq_next <= self.low + env.config.log_window {
            if self.pending.len() < batch_max && !self.batch_due {
                if !env.ctx.timer_armed(PbftTimer::Batch) {
                    env.ctx
                        .set_timer(PbftTimer::Batch, env.config.batch_timeout);
                }
                return;
            }
            self.batch_due = false;
            let take = batch_max.min(self.pending.len());
            let batch: Vec<Request> = self.pending.drain(..take).collect();
            let batch: Vec<Request> = batch.into_iter().filter(|r| !self.executed(r)).collect();
            if !batch.is_empty() {
                self.propose(env, batch);
            }
        }
        if self.pending.is_empty() {
            self.batch_due = false;
            env.ctx.cancel_timer(PbftTimer::Batch);
        }
    }

    fn sign_pre_prepare(&self, env: &Env<'_, '_>, seq: u64, batch: Vec<Request>) -> PrePrepare {
        let mut pp = PrePrepare {
            view: self.view,
            seq,
            digest: batch_digest(&batch),
            batch,
            sig: super::Sig(0),
        };
        pp.sig = env.sign(Signer::Replica(self.index), pp.content());
        pp
    }

    fn propose(&mut self, env: &mut Env<'_, '_>, batch: Vec<Request>) {
        let seq = self.seq_next;
        self.seq_next += 1;
        for r in &batch {
            self.proposed.insert((r.client, r.timestamp));
        }
        let pp = self.sign_pre_prepare(env, seq, batch);
        let now = env.ctx.now();
        self.log.entry(seq).or_default().accept(pp.clone(), now);
        if env.behavior() == Some(Behavior::Equivocate) {
            // Half the backups get the real batch, the other half a null request in its place.
            let other = self.sign_pre_prepare(env, seq, Vec::new());
            for r in 0..env.roster.n() {
                if r == self.index {
                    continue;
                }
                let msg = if r % 2 == 0 {
                    PbftMessage::PrePrepare(Box::new(pp.clone()))
                } else {
                    PbftMessage::PrePrepare(Box::new(other.clone()))
                };
                env.send_to_replica(r, &msg);
            }
        } else {
            env.multicast(Some(self.index), &PbftMessage::PrePrepare(Box::new(pp)));
        }
        self.check_prepared(env, seq);
    }

    fn on_pre_prepare(&mut self, env: &mut Env<'_, '_>, pp: PrePrepare) {
        let primary = env.roster.primary(pp.view);
        if primary == self.index {
            // Our own identity's pre-prepare: a twin or a replay.
            env.stats.stale += 1;
            return;
        }
        if !self.in_window(env, pp.seq) {
            env.stats.stale += 1;
            return;
        }
        if batch_digest(&pp.batch) != pp.digest {
            env.stats.invalid += 1;
            self.accuse(env, primary, EvidenceKind::Malformed);
            return;
        }
        let (view, seq, digest) = (pp.view, pp.seq, pp.digest);
        let slot = self.log.entry(seq).or_default();
        if let Some(existing) = slot.pre_prepare.as_ref().filter(|p| p.view == view) {
            if existing.digest == digest {
                env.stats.duplicates += 1;
            } else {
                env.stats.equivocations_seen += 1;
                let statements = (
                    PbftPhase::PrePrepare,
                    view,
                    seq,
                    (existing.digest.0, existing.sig.0),
                    (digest.0, pp.sig.0),
                );
                self.accuse_with(env, primary, EvidenceKind::Equivocation, Some(statements));
                if Self::double_voting(env) {
                    self.double_vote(env, view, seq, digest);
                }
            }
            return;
        }
        let batch = pp.batch.clone();
        slot.accept(pp, env.ctx.now());
        self.await_requests(env, &batch);
        if !batch.is_empty() && !env.ctx.timer_armed(PbftTimer::Request) && !self.waiting.is_empty()
        {
            env.ctx
                .set_timer(PbftTimer::Request, env.config.request_timeout);
        }
        let Some(slot) = self.log.get_mut(&seq) else {
            return;
        };
        let vote = signed_vote(env, self.index, Phase::Prepare, view, seq, digest);
        add_vote(&mut slot.prepares, vote, env.roster.n(), 2 * env.roster.f());
        env.multicast(Some(self.index), &PbftMessage::Prepare(vote));
        if Self::double_voting(env) {
            self.double_vote(env, view, seq, digest);
        }
        self.check_prepared(env, seq);
    }

    /// A backup that accepts a pre-prepare now knows of its requests: they join `waiting`, so
    /// the request timer runs until they execute, as the paper says ("a backup is waiting for a
    /// request if it received a valid request and has not executed it"). Without this a backup
    /// that learns of requests only through pre-prepares never times out a slot that stalls
    /// after its pre-prepare (a lost vote among a bare quorum, replicas stuck in another view),
    /// and so never joins the view change that would bring every replica back. Only requests
    /// with a valid client signature are kept (a Byzantine primary cannot plant requests that a
    /// later primary would propose from `waiting`).
    fn await_requests(&mut self, env: &mut Env<'_, '_>, batch: &[Request]) {
        let keys = env.config.keys;
        for r in batch {
            let key = (r.client, r.timestamp);
            if self.executed(r)
                || self.waiting.contains_key(&key)
                || self.waiting.len() >= env.config.pending_max
                || !keys.verify(Signer::Client(r.client), r.content(), r.sig)
            {
                continue;
            }
            self.waiting.insert(key, *r);
        }
    }

    fn on_vote(&mut self, env: &mut Env<'_, '_>, vote: Vote, phase: Phase) {
        if phase == Phase::Prepare && vote.replica == env.roster.primary(vote.view) {
            // The primary's pre-prepare is its prepare; a separate one is not counted.
            env.stats.invalid += 1;
            return;
        }
        if !self.in_window(env, vote.seq) {
            env.stats.stale += 1;
            return;
        }
        let n = env.roster.n();
        let now = env.ctx.now();
        let slot = self.log.entry(vote.seq).or_insert_with(|| Slot {
            // A vote may overtake its pre-prepare (jitter): the slot counts as behind only once
            // the pre-prepare is a status interval late.
            accepted_at: now,
            ..Slot::default()
        });
        let added = match phase {
            Phase::Prepare => add_vote(&mut slot.prepares, vote, n, 2 * env.roster.f()),
            Phase::Commit => add_vote(&mut slot.commits, vote, n, 0),
        };
        match added {
            Added::Fresh => {}
            Added::Duplicate | Added::Full => {
                env.stats.duplicates += 1;
                return;
            }
            Added::Conflict(earlier) => {
                let phase = match phase {
                    Phase::Prepare => PbftPhase::Prepare,
                    Phase::Commit => PbftPhase::Commit,
                };
                let statements = earlier.map(|e| {
                    (
                        phase,
                        vote.view,
                        vote.seq,
                        (e.digest.0, e.sig.0),
                        (vote.digest.0, vote.sig.0),
                    )
                });
                self.accuse_with(env, vote.replica, EvidenceKind::Equivocation, statements);
            }
        }
        if Self::double_voting(env) {
            self.double_vote(env, vote.view, vote.seq, vote.digest);
        }
        match phase {
            Phase::Prepare => self.check_prepared(env, vote.seq),
            Phase::Commit => self.check_committed(env, vote.seq),
        }
    }

    /// A double-voting replica votes for every digest it sees, once each.
    fn double_vote(&mut self, env: &mut Env<'_, '_>, view: u64, seq: u64, digest: Digest) {
        let Some(slot) = self.log.get_mut(&seq) else {
            return;
        };
        if slot.double_voted.contains(&(view, digest))
            || slot.double_voted.len() >= TALLIES_PER_SLOT_MAX
        {
            return;
        }
        slot.double_voted.push((view, digest));
        if env.roster.primary(view) != self.index {
            let prepare = signed_vote(env, self.index, Phase::Prepare, view, seq, digest);
            env.multicast(Some(self.index), &PbftMessage::Prepare(prepare));
        }
        let commit = signed_vote(env, self.index, Phase::Commit, view, seq, digest);
        env.multicast(Some(self.index), &PbftMessage::Commit(commit));
    }

    fn check_prepared(&mut self, env: &mut Env<'_, '_>, seq: u64) {
        let needed = 2 * env.roster.f();
        let Some(slot) = self.log.get_mut(&seq) else {
            return;
        };
        let Some(pp) = slot.pre_prepare.as_ref().filter(|p| p.view == self.view) else {
            return;
        };
        if !slot.prepared {
            let prepares = if needed == 0 {
                Some(Vec::new())
            } else {
                slot.prepares
                    .iter()
                    .find(|t| t.view == pp.view && t.digest == pp.digest && t.count >= needed)
                    .map(|t| t.votes.iter().take(needed as usize).copied().collect())
            };
            let Some(prepares) = prepares else {
                return;
            };
            slot.cert = Some(PreparedCert {
                pre_prepare: pp.clone(),
                prepares,
            });
            slot.prepared = true;
        }
        self.send_commit(env, seq);
    }

    fn send_commit(&mut self, env: &mut Env<'_, '_>, seq: u64) {
        let Some(slot) = self.log.get_mut(&seq) else {
            return;
        };
        if slot.prepared && !slot.sent_commit {
            slot.sent_commit = true;
            let Some(pp) = &slot.pre_prepare else {
                return;
            };
            let vote = signed_vote(env, self.index, Phase::Commit, pp.view, seq, pp.digest);
            add_vote(&mut slot.commits, vote, env.roster.n(), 0);
            env.multicast(Some(self.index), &PbftMessage::Commit(vote));
        }
        self.check_committed(env, seq);
    }

    fn check_committed(&mut self, env: &mut Env<'_, '_>, seq: u64) {
        let quorum = env.roster.quorum();
        let Some(slot) = self.log.get_mut(&seq) else {
            return;
        };
        if !slot.prepared || slot.committed {
            return;
        }
        let Some(pp) = &slot.pre_prepare else {
            return;
        };
        if count(&slot.commits, pp.view, pp.digest) < quorum {
            return;
        }
        slot.committed = true;
        env.ctx.emit(PbftEvent::Committed {
            replica: self.index,
            view: pp.view,
            seq,
            digest: pp.digest,
            latency: env.ctx.now() - slot.accepted_at,
        });
        self.try_execute(env);
    }

    fn try_execute(&mut self, env: &mut Env<'_, '_>) {
        loop {
            let seq = self.last_executed + 1;
            let Some(slot) = self.log.get(&seq) else {
                return;
            };
            if !slot.committed {
                return;
            }
            let Some(pp) = slot.pre_prepare.clone() else {
                return;
            };
            self.execute(env, pp);
        }
    }

    fn execute(&mut self, env: &mut Env<'_, '_>, pp: PrePrepare) {
        let seq = pp.seq;
        self.state = mix(mix(self.state, seq), pp.digest.0);
        let mut done = Vec::new();
        for request in &pp.batch {
            let key = (request.client, request.timestamp);
            self.waiting.remove(&key);
            self.proposed.remove(&key);
            if self.executed(request) {
                continue;
            }
            done.push(*request);
            let result = mix(mix(self.state, request.content()), request.op);
            self.last_reply
                .insert(request.client, (request.timestamp, result, self.view));
            self.reply(env, request.client, request.timestamp, result, self.view);
        }
        self.last_executed = seq;
        let executed_any = !done.is_empty();
        env.ctx.emit(PbftEvent::Executed {
            replica: self.index,
            seq,
            digest: pp.digest,
            state: self.state,
            requests: done,
        });
        if executed_any {
            self.view_change_attempts = 0;
        }
        if !self.is_primary(env) {
            if self.waiting.is_empty() {
                env.ctx.cancel_timer(PbftTimer::Request);
            } else if executed_any {
                // Still waiting for other requests: restart the timer.
                env.ctx
                    .set_timer(PbftTimer::Request, env.config.request_timeout);
            }
        }
        if seq.is_multiple_of(env.config.checkpoint_interval) {
            let table: Vec<TableEntry> = self
                .last_reply
                .iter()
                .map(|(&client, &(timestamp, result, _))| TableEntry {
                    client,
                    timestamp,
                    result,
                })
                .collect();
            let digest = checkpoint_digest(self.state, &table);
            self.snapshots.insert(seq, (self.state, table));
            let mut c = Checkpoint {
                seq,
                state: digest,
                replica: self.index,
                sig: super::Sig(0),
            };
            c.sig = env.sign(Signer::Replica(self.index), c.content());
            env.multicast(Some(self.index), &PbftMessage::Checkpoint(c));
            self.on_checkpoint(env, c);
        }
    }

    // ---- Retransmission ----

    /// Whether this replica is stuck: changing views, fetching state, or holding a slot it has
    /// not executed for a status interval (or one whose first vote came a status interval ago
    /// and whose pre-prepare has not).
    fn behind(&self, env: &Env<'_, '_>) -> bool {
        let now = env.ctx.now();
        let interval = env.config.status_interval;
        if !self.active || self.transfer.is_some() {
            return true;
        }
        self.log
            .range(self.last_executed + 1..)
            .any(|(_, slot)| slot.accepted_at + interval <= now)
    }

    /// Answers a replica that is behind with what it lacks: the new view it missed, this
    /// replica's view change, the stable checkpoint's proof, and for its unexecuted slots the
    /// (primary-signed) pre-prepare and this replica's own prepare and commit.
    fn on_status(&mut self, env: &mut Env<'_, '_>, st: super::Status) {
        let from = st.replica;
        let now = env.ctx.now();
        if from == self.index {
            return;
        }
        let last = self.status_answered.get(from as usize).copied();
        if last.is_some_and(|t| t > Time::ZERO && now < t + env.config.status_interval) {
            env.stats.duplicates += 1;
            return;
        }
        if let Some(t) = self.status_answered.get_mut(from as usize) {
            *t = now;
        }
        if st.view > self.view {
            return;
        }
        if st.view < self.view || !st.active {
            if self.active {
                if let Some((nv, _)) = self
                    .last_new_view
                    .as_ref()
                    .filter(|(nv, _)| nv.view == self.view)
                {
                    let msg = PbftMessage::NewView(Box::new(nv.clone()));
                    env.send_to_replica(from, &msg);
                }
            } else if st.view <= self.view
                && !(st.view == self.view && st.holds_view_change(self.index))
                && let Some(vc) = self
                    .view_changes
                    .get(&self.index)
                    .filter(|v| v.view == self.view)
            {
                let msg = PbftMessage::ViewChange(Arc::clone(vc));
                env.send_to_replica(from, &msg);
            }
            return;
        }
        if !self.active {
            return;
        }
        if st.last_executed < self.low {
            for c in self.stable_proof.clone() {
                env.send_to_replica(from, &PbftMessage::Checkpoint(c));
            }
        }
        let is_primary = self.is_primary(env);
        let start = st.last_executed.max(self.low) + 1;
        let mut resend = Vec::new();
        for (&seq, slot) in self.log.range(start..).take(STATUS_SLOTS_MAX) {
            let Some(pp) = slot.pre_prepare.as_ref().filter(|p| p.view == self.view) else {
                continue;
            };
            resend.push(PbftMessage::PrePrepare(Box::new(pp.clone())));
            if !is_primary {
                let prepare =
                    signed_vote(env, self.index, Phase::Prepare, self.view, seq, pp.digest);
                resend.push(PbftMessage::Prepare(prepare));
            }
            if slot.sent_commit {
                let commit = signed_vote(env, self.index, Phase::Commit, self.view, seq, pp.digest);
                resend.push(PbftMessage::Commit(commit));
            }
        }
        for msg in resend {
            env.send_to_replica(from, &msg);
        }
    }

    // ---- Checkpoints ----

    fn on_checkpoint(&mut self, env: &mut Env<'_, '_>, c: Checkpoint) {
        if c.seq <= self.low {
            env.stats.stale += 1;
            return;
        }
        if !c.seq.is_multiple_of(env.config.checkpoint_interval) {
            env.stats.invalid += 1;
            return;
        }
        if !self.checkpoints.contains_key(&c.seq) && self.checkpoints.len() >= CHECKPOINT_SEQS_MAX {
            match self.checkpoints.last_key_value() {
                Some((&highest, _)) if highest > c.seq => {
                    self.checkpoints.remove(&highest);
                }
                _ => {
                    env.stats.stale += 1;
                    return;
                }
            }
        }
        let n = env.roster.n() as usize;
        let tallies = self.checkpoints.entry(c.seq).or_default();
        let (word, bit) = (c.replica as usize / 64, 1u64 << (c.replica % 64));
        let index = match tallies.iter().position(|t| t.state == c.state) {
            Some(i) => i,
            None => {
                if tallies.len() >= TALLIES_PER_SLOT_MAX {
                    env.stats.duplicates += 1;
                    return;
                }
                tallies.push(CheckpointTally {
                    state: c.state,
                    seen: vec![0; n.div_ceil(64)],
                    msgs: Vec::new(),
                });
                tallies.len() - 1
            }
        };
        let tally = &mut tallies[index];
        if tally.seen[word] & bit != 0 {
            env.stats.duplicates += 1;
            return;
        }
        tally.seen[word] |= bit;
        tally.msgs.push(c);
        if tally.msgs.len() >= env.roster.quorum() as usize {
            let proof = tally.msgs.clone();
            let state = tally.state;
            self.make_stable(env, c.seq, state, proof);
        }
    }

    fn make_stable(&mut self, env: &mut Env<'_, '_>, seq: u64, state: u64, proof: Vec<Checkpoint>) {
        if seq <= self.low {
            return;
        }
        let sources: Vec<u32> = proof.iter().map(|c| c.replica).collect();
        self.low = seq;
        self.stable_state = state;
        self.stable_proof = proof;
        self.stable_snapshot = self.snapshots.remove(&seq);
        self.snapshots.retain(|&s, _| s > seq);
        self.log.retain(|&s, _| s > seq);
        self.checkpoints.retain(|&s, _| s > seq);
        if self.stable_snapshot.is_none() {
            // Not executed this far (or executed differently): fetch the certified state from
            // the replicas that signed the checkpoint.
            self.transfer = Some((seq, state));
            for r in sources.into_iter().filter(|&r| r != self.index) {
                let msg = PbftMessage::FetchState(FetchState {
                    seq,
                    replica: self.index,
                });
                env.send_to_replica(r, &msg);
            }
            env.ctx
                .set_timer(PbftTimer::Fetch, env.config.request_timeout);
        } else {
            self.transfer = None;
        }
        self.seq_next = self.seq_next.max(seq + 1);
        env.ctx.emit(PbftEvent::CheckpointStable {
            replica: self.index,
            seq,
        });
        self.try_execute(env);
        self.try_propose(env);
    }

    /// Asks every replica for the state being fetched (after a first round went unanswered).
    fn fetch(&mut self, env: &mut Env<'_, '_>) {
        let Some((seq, _)) = self.transfer else {
            return;
        };
        let msg = PbftMessage::FetchState(FetchState {
            seq,
            replica: self.index,
        });
        env.multicast(Some(self.index), &msg);
        env.ctx
            .set_timer(PbftTimer::Fetch, env.config.request_timeout);
    }

    fn on_fetch(&mut self, env: &mut Env<'_, '_>, f: FetchState) {
        let snapshot = if f.seq == self.low {
            self.stable_snapshot.as_ref()
        } else {
            self.snapshots.get(&f.seq)
        };
        let Some((state, table)) = snapshot else {
            env.stats.stale += 1;
            return;
        };
        let msg = PbftMessage::StateReply(Box::new(StateReply {
            seq: f.seq,
            state: *state,
            table: table.clone(),
        }));
        env.send_to_replica(f.replica, &msg);
    }

    fn on_state(&mut self, env: &mut Env<'_, '_>, r: StateReply) {
        let Some((seq, digest)) = self.transfer else {
            env.stats.duplicates += 1;
            return;
        };
        if r.seq != seq {
            env.stats.stale += 1;
            return;
        }
        if checkpoint_digest(r.state, &r.table) != digest {
            env.stats.invalid += 1;
            return;
        }
        self.transfer = None;
        env.ctx.cancel_timer(PbftTimer::Fetch);
        if self.last_executed < seq {
            self.last_executed = seq;
            self.state = r.state;
            for e in &r.table {
                let newer = self
                    .last_reply
                    .get(&e.client)
                    .is_none_or(|&(ts, _, _)| ts < e.timestamp);
                if newer {
                    self.last_reply
                        .insert(e.client, (e.timestamp, e.result, self.view));
                }
            }
            let last_reply = &self.last_reply;
            self.waiting.retain(|&(client, ts), _| {
                last_reply
                    .get(&client)
                    .is_none_or(|&(done, _, _)| done < ts)
            });
            env.ctx.emit(PbftEvent::StateTransferred {
                replica: self.index,
                seq,
                state: r.state,
            });
        }
        self.stable_snapshot = Some((r.state, r.table));
        self.try_execute(env);
    }

    fn executed(&self, request: &Request) -> bool {
        self.last_reply
            .get(&request.client)
            .is_some_and(|&(ts, _, _)| ts >= request.timestamp)
    }

    fn reply(&self, env: &mut Env<'_, '_>, client: NodeId, timestamp: u64, result: u64, view: u64) {
        let mut reply = Reply {
            view,
            timestamp,
            client,
            replica: self.index,
            result,
            sig: super::Sig(0),
        };
        reply.sig = env.sign(Signer::Replica(self.index), reply.content());
        env.send(client, PbftMessage::Reply(reply));
    }

    // ---- View change ----

    fn start_view_change(&mut self, env: &mut Env<'_, '_>, view: u64) {
        if view <= self.view {
            return;
        }
        self.view = view;
        self.active = false;
        self.new_view_sent = None;
        self.vc_ticks = 0;
        self.vc_resends = 0;
        env.ctx.cancel_timer(PbftTimer::Request);
        env.ctx.cancel_timer(PbftTimer::Batch);
        self.pending.clear();
        self.batch_due = false;
        let prepared: Vec<PreparedCert> = self
            .log
            .range(self.low + 1..)
            .filter_map(|(_, slot)| slot.cert.clone())
            .collect();
        let mut vc = ViewChange {
            view,
            stable_seq: self.low,
            stable_state: self.stable_state,
            proof: self.stable_proof.clone(),
            prepared,
            replica: self.index,
            sig: super::Sig(0),
        };
        vc.sig = env.sign(Signer::Replica(self.index), vc.content());
        let vc = Arc::new(vc);
        env.multicast(Some(self.index), &PbftMessage::ViewChange(Arc::clone(&vc)));
        self.view_changes.insert(self.index, vc);
        env.ctx.cancel_timer(PbftTimer::ViewChange);
        self.arm_view_change_timer(env);
        if self.view_change_started.is_none() {
            self.view_change_started = Some(env.ctx.now());
        }
        env.ctx.emit(PbftEvent::ViewChangeStarted {
            replica: self.index,
            view,
        });
        self.try_new_view(env);
    }

    /// The paper's rule: the timer for a view change starts only once 2f+1 replicas (this one
    /// included) want the same view, so a replica alone never races ahead through views; each
    /// consecutive attempt doubles it.
    fn arm_view_change_timer(&mut self, env: &mut Env<'_, '_>) {
        if self.active || env.ctx.timer_armed(PbftTimer::ViewChange) {
            return;
        }
        let wanting = self
            .view_changes
            .values()
            .filter(|c| c.view == self.view)
            .count() as u32;
        if wanting < env.roster.quorum() {
            return;
        }
        let doublings = self.view_change_attempts.min(16);
        let timeout = Duration::from_nanos(env.config.view_change_timeout.as_nanos() << doublings);
        self.view_change_attempts += 1;
        env.ctx.set_timer(PbftTimer::ViewChange, timeout);
    }

    fn on_view_change(&mut self, env: &mut Env<'_, '_>, vc: Arc<ViewChange>) {
        // A view change that a pending new view names (fetched, or multicast late) completes it.
        // Validation checks every signature the view change carries: done at most once.
        let mut valid = None;
        let named = self.pending_new_view.as_ref().is_some_and(|p| {
            p.nv.view == vc.view && p.nv.view_changes.iter().any(|r| r.replica == vc.replica)
        });
        if named && *valid.get_or_insert_with(|| valid_view_change(env, &vc)) {
            if let Some(p) = self.pending_new_view.as_mut() {
                p.offer(&vc);
            }
            if self.try_pending_new_view(env) {
                return;
            }
        }
        if vc.replica == self.index || vc.view < self.view || (vc.view == self.view && self.active)
        {
            env.stats.stale += 1;
            return;
        }
        if !valid.unwrap_or_else(|| valid_view_change(env, &vc)) {
            env.stats.invalid += 1;
            self.accuse(env, vc.replica, EvidenceKind::Malformed);
            return;
        }
        if self
            .view_changes
            .get(&vc.replica)
            .is_some_and(|old| old.view >= vc.view)
        {
            env.stats.duplicates += 1;
            return;
        }
        self.view_changes.insert(vc.replica, vc);
        // Join a view change once f+1 replicas ask for a view above ours.
        let higher: Vec<u64> = self
            .view_changes
            .values()
            .filter(|c| c.view > self.view)
            .map(|c| c.view)
            .collect();
        if higher.len() as u32 > env.roster.f()
            && let Some(&lowest) = higher.iter().min()
        {
            self.start_view_change(env, lowest);
        }
        self.arm_view_change_timer(env);
        self.try_new_view(env);
    }

    fn try_new_view(&mut self, env: &mut Env<'_, '_>) {
        if self.active || !self.is_primary(env) || self.new_view_sent == Some(self.view) {
            return;
        }
        let set: Vec<Arc<ViewChange>> = self
            .view_changes
            .values()
            .filter(|c| c.view == self.view)
            .take(env.roster.quorum() as usize)
            .cloned()
            .collect();
        if (set.len() as u32) < env.roster.quorum() {
            return;
        }
        let (_, plan) = new_view_plan(env, &set);
        let proposals: Vec<Proposal> = plan
            .into_iter()
            .map(|(seq, batch)| {
                let pp = self.sign_pre_prepare(env, seq, batch);
                Proposal {
                    seq,
                    digest: pp.digest,
                    sig: pp.sig,
                }
            })
            .collect();
        let mut nv = NewView {
            view: self.view,
            view_changes: set
                .iter()
                .map(|vc| ViewChangeRef {
                    replica: vc.replica,
                    digest: vc.digest(),
                })
                .collect(),
            proposals,
            sig: super::Sig(0),
        };
        nv.sig = env.sign(Signer::Replica(self.index), nv.content());
        self.new_view_sent = Some(self.view);
        env.multicast(
            Some(self.index),
            &PbftMessage::NewView(Box::new(nv.clone())),
        );
        self.install(env, nv, set);
    }

    fn on_new_view(&mut self, env: &mut Env<'_, '_>, from: NodeId, nv: NewView) {
        let primary = env.roster.primary(nv.view);
        if primary == self.index || nv.view < self.view || (nv.view == self.view && self.active) {
            env.stats.stale += 1;
            return;
        }
        if !well_formed_new_view(env, &nv) {
            env.stats.invalid += 1;
            self.accuse(env, primary, EvidenceKind::Malformed);
            return;
        }
        if self
            .pending_new_view
            .as_ref()
            .is_some_and(|p| p.nv.view > nv.view || p.nv == nv)
        {
            env.stats.duplicates += 1;
            return;
        }
        let mut pending = PendingNewView {
            nv,
            from,
            have: BTreeMap::new(),
        };
        for vc in self.view_changes.values() {
            pending.offer(vc);
        }
        self.pending_new_view = Some(pending);
        if !self.try_pending_new_view(env) {
            self.request_missing_view_changes(env);
        }
    }

    /// Installs the pending new view if this replica now holds every view change it names and
    /// they justify it; drops it if they do not.
    fn try_pending_new_view(&mut self, env: &mut Env<'_, '_>) -> bool {
        let Some(vcs) = self
            .pending_new_view
            .as_ref()
            .and_then(PendingNewView::complete)
        else {
            return false;
        };
        let Some(pending) = self.pending_new_view.take() else {
            return false;
        };
        let nv = pending.nv;
        if nv.view < self.view || (nv.view == self.view && self.active) {
            env.stats.stale += 1;
            return false;
        }
        if !valid_new_view(env, &nv, &vcs) {
            env.stats.invalid += 1;
            self.accuse(env, env.roster.primary(nv.view), EvidenceKind::Malformed);
            return false;
        }
        self.install(env, nv, vcs);
        true
    }

    /// Asks the sender of the pending new view for the view changes it names that this replica
    /// lacks (again at every status interval until they arrive).
    fn request_missing_view_changes(&mut self, env: &mut Env<'_, '_>) {
        let Some(pending) = self.pending_new_view.as_ref() else {
            return;
        };
        let replicas = pending.missing();
        if replicas.is_empty() {
            return;
        }
        let (view, to) = (pending.nv.view, pending.from);
        let msg = FetchViewChanges {
            view,
            replicas,
            replica: self.index,
        };
        env.send(to, PbftMessage::FetchViewChanges(Box::new(msg)));
    }

    /// Serves the view changes of the installed new view that a replica asks for, at most once
    /// per status interval per replica.
    fn on_fetch_view_changes(&mut self, env: &mut Env<'_, '_>, from: NodeId, f: &FetchViewChanges) {
        let now = env.ctx.now();
        let Some((_, vcs)) = self
            .last_new_view
            .as_ref()
            .filter(|(nv, _)| nv.view == f.view)
        else {
            env.stats.stale += 1;
            return;
        };
        let Some(last) = self.fetch_answered.get_mut(f.replica as usize) else {
            return;
        };
        if *last > Time::ZERO && now < *last + env.config.status_interval {
            env.stats.duplicates += 1;
            return;
        }
        *last = now;
        let asked: Vec<Arc<ViewChange>> = vcs
            .iter()
            .filter(|vc| f.replicas.contains(&vc.replica))
            .cloned()
            .collect();
        for vc in asked {
            env.send(from, PbftMessage::ViewChange(vc));
        }
    }

    /// Installs `nv`, justified by `vcs` (the view changes it names, already checked): adopts
    /// the highest stable checkpoint they prove and accepts the new view's pre-prepares, whose
    /// batches they determine.
    fn install(&mut self, env: &mut Env<'_, '_>, nv: NewView, vcs: Vec<Arc<ViewChange>>) {
        let now = env.ctx.now();
        self.view = nv.view;
        self.active = true;
        self.pending_new_view = None;
        env.ctx.cancel_timer(PbftTimer::ViewChange);
        // Adopt the highest stable checkpoint the view changes prove.
        if let Some(best) = vcs.iter().max_by_key(|c| c.stable_seq)
            && best.stable_seq > self.low
        {
            let (seq, state, proof) = (best.stable_seq, best.stable_state, best.proof.clone());
            self.make_stable(env, seq, state, proof);
        }
        let (_, plan) = new_view_plan(env, &vcs);
        let pre_prepares: Vec<PrePrepare> = plan
            .into_iter()
            .zip(&nv.proposals)
            .map(|((seq, batch), p)| PrePrepare {
                view: nv.view,
                seq,
                digest: p.digest,
                batch,
                sig: p.sig,
            })
            .collect();
        let max_seq = pre_prepares
            .iter()
            .map(|p| p.seq)
            .max()
            .unwrap_or(self.low)
            .max(self.low);
        self.seq_next = max_seq + 1;
        // Pre-prepares of older views above the new view's range were never prepared anywhere
        // that matters: forget them (certificates stay for later view changes).
        for (_, slot) in self.log.range_mut(max_seq + 1..) {
            if slot.pre_prepare.as_ref().is_some_and(|p| p.view < nv.view) {
                slot.pre_prepare = None;
                slot.prepared = false;
                slot.sent_commit = false;
                slot.committed = false;
            }
        }
        self.proposed.clear();
        let is_primary = self.is_primary(env);
        for pp in pre_prepares {
            if pp.seq <= self.low {
                continue;
            }
            for r in &pp.batch {
                self.proposed.insert((r.client, r.timestamp));
            }
            if !is_primary {
                self.await_requests(env, &pp.batch);
            }
            let (seq, digest) = (pp.seq, pp.digest);
            let slot = self.log.entry(seq).or_default();
            slot.accept(pp, now);
            if !is_primary {
                let vote = signed_vote(env, self.index, Phase::Prepare, self.view, seq, digest);
                add_vote(&mut slot.prepares, vote, env.roster.n(), 2 * env.roster.f());
                env.multicast(Some(self.index), &PbftMessage::Prepare(vote));
            }
            self.check_prepared(env, seq);
        }
        self.view_changes.retain(|_, c| c.view > nv.view);
        self.last_new_view = Some((nv, vcs));
        let elapsed = self
            .view_change_started
            .take()
            .map_or(Duration::ZERO, |t| now - t);
        env.ctx.emit(PbftEvent::NewViewInstalled {
            replica: self.index,
            view: self.view,
            elapsed,
        });
        if is_primary {
            let waiting: Vec<Request> = self
                .waiting
                .values()
                .filter(|r| !self.proposed.contains(&(r.client, r.timestamp)) && !self.executed(r))
                .copied()
                .collect();
            self.pending.extend(waiting);
            self.try_propose(env);
        } else if !self.waiting.is_empty() {
            env.ctx
                .set_timer(PbftTimer::Request, env.config.request_timeout);
        }
        // Messages that arrived early for this view.
        let future = std::mem::take(&mut self.future);
        for (from, msg) in future {
            self.on_message(env, from, msg);
        }
        self.try_execute(env);
    }
}

/// Replica `replica`'s vote for `digest` at (`view`, `seq`) in `phase`, signed.
fn signed_vote(
    env: &Env<'_, '_>,
    replica: u32,
    phase: Phase,
    view: u64,
    seq: u64,
    digest: Digest,
) -> Vote {
    let mut vote = Vote {
        view,
        seq,
        digest,
        replica,
        sig: super::Sig(0),
    };
    vote.sig = env.sign(Signer::Replica(replica), vote.content(phase));
    vote
}

/// The shape of a new view that needs none of its view changes: at least 2f+1 distinct replicas
/// named, each in the roster.
fn well_formed_new_view(env: &Env<'_, '_>, nv: &NewView) -> bool {
    let mut seen = BTreeSet::new();
    nv.view_changes
        .iter()
        .all(|r| r.replica < env.roster.n() && seen.insert(r.replica))
        && seen.len() as u32 >= env.roster.quorum()
}

/// Checks a new view's proposals against the view changes it names (`vcs`, in its order): they
/// must be exactly the plan those view changes determine, each signed by the new primary. The
/// view changes themselves were checked when they arrived (signature in `check`,
/// `valid_view_change` in `on_view_change`) and matched to the new view's names by replica and
/// digest in [`PendingNewView::offer`]; the new view's shape in [`well_formed_new_view`].
fn valid_new_view(env: &Env<'_, '_>, nv: &NewView, vcs: &[Arc<ViewChange>]) -> bool {
    let (_, plan) = new_view_plan(env, vcs);
    let primary = Signer::Replica(env.roster.primary(nv.view));
    plan.len() == nv.proposals.len()
        && plan.iter().zip(&nv.proposals).all(|((seq, batch), p)| {
            let header = PrePrepare {
                view: nv.view,
                seq: *seq,
                digest: p.digest,
                batch: Vec::new(),
                sig: p.sig,
            };
            p.seq == *seq
                && p.digest == batch_digest(batch)
                && env.config.keys.verify(primary, header.content(), p.sig)
        })
}

/// Checks a view change's checkpoint proof and prepared certificates.
fn valid_view_change(env: &Env<'_, '_>, vc: &ViewChange) -> bool {
    let keys = env.config.keys;
    let n = env.roster.n();
    if vc.stable_seq == 0 {
        if !vc.proof.is_empty() || vc.stable_state != 0 {
            return false;
        }
    } else {
        let mut seen = BTreeSet::new();
        for c in &vc.proof {
            if c.seq != vc.stable_seq
                || c.state != vc.stable_state
                || c.replica >= n
                || !seen.insert(c.replica)
                || !keys.verify(Signer::Replica(c.replica), c.content(), c.sig)
            {
                return false;
            }
        }
        if (seen.len() as u32) < env.roster.quorum() {
            return false;
        }
    }
    let mut seqs = BTreeSet::new();
    for cert in &vc.prepared {
        let pp = &cert.pre_prepare;
        let primary = env.roster.primary(pp.view);
        if pp.view >= vc.view
            || pp.seq <= vc.stable_seq
            || pp.seq > vc.stable_seq + env.config.log_window
            || !seqs.insert(pp.seq)
            || batch_digest(&pp.batch) != pp.digest
            || !keys.verify(Signer::Replica(primary), pp.content(), pp.sig)
        {
            return false;
        }
        let mut voters = BTreeSet::new();
        for v in &cert.prepares {
            if v.view != pp.view
                || v.seq != pp.seq
                || v.digest != pp.digest
                || v.replica == primary
                || v.replica >= n
                || !voters.insert(v.replica)
                || !keys.verify(Signer::Replica(v.replica), v.content(Phase::Prepare), v.sig)
            {
                return false;
            }
        }
        if (voters.len() as u32) < 2 * env.roster.f() {
            return false;
        }
    }
    true
}

/// The new view's pre-prepares, computed from 2f+1 view changes as the paper says: from the
/// highest stable checkpoint among them to the highest prepared sequence number, the prepared
/// batch of the highest view where there is one, the null request where there is none.
fn new_view_plan(_env: &Env<'_, '_>, vcs: &[Arc<ViewChange>]) -> (u64, Vec<(u64, Vec<Request>)>) {
    let min_s = vcs.iter().map(|c| c.stable_seq).max().unwrap_or(0);
    let mut best: BTreeMap<u64, &PrePrepare> = BTreeMap::new();
    for cert in vcs.iter().flat_map(|c| &c.prepared) {
        let pp = &cert.pre_prepare;
        if pp.seq <= min_s {
            continue;
        }
        match best.get(&pp.seq) {
            Some(b) if b.view >= pp.view => {}
            _ => {
                best.insert(pp.seq, pp);
            }
        }
    }
    let max_s = best.keys().next_back().copied().unwrap_or(min_s);
    let plan = (min_s + 1..=max_s)
        .map(|seq| {
            let batch = best.get(&seq).map_or_else(Vec::new, |pp| pp.batch.clone());
            (seq, batch)
        })
        .collect();
    (min_s, plan)
}
