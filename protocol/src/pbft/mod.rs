//! PBFT (Castro and Liskov, OSDI 1999 / TOCS 2002) as a sans-IO state machine.
//!
//! A node hosts a replica (an index in the [`Roster`]), a client, or neither. Replicas run the
//! three-phase normal case (pre-prepare, prepare, commit) with quorums of 2f+1 out of n >= 3f+1,
//! execute in sequence order and reply; clients accept f+1 matching replies and retransmit to
//! every replica on a timeout. A checkpoint every K sequence numbers becomes stable at 2f+1
//! matching checkpoint messages, which garbage-collects the log and moves the watermarks
//! (low = stable checkpoint, high = low + L). A backup waiting too long for a request starts a
//! view change; the new primary collects 2f+1 view changes and re-proposes every prepared
//! certificate (null requests fill the gaps) in its new view, which names those view changes by
//! digest (as the BFT library of TOCS 2002 does) rather than carrying them.
//!
//! Byzantine behaviours ([`Behavior`]) wrap an honest replica: the generic ones (silent, slow,
//! vote withholding, replay, wrong digests) act on every message at the one place a replica
//! sends; equivocation and double voting act where a replica proposes and votes.
//!
//! Simplifications, each stated where it lives: signatures are simulated ([`message`]); a replica
//! that falls behind the stable checkpoint adopts its certified state (state transfer is
//! instantaneous once the checkpoint is proven); clients have one request outstanding.

mod client;
pub mod message;
mod replica;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;

pub use message::{
    CERT_VOTE_BYTES, Checkpoint, Digest, FetchState, FetchViewChanges, Keys, Kind, NULL_DIGEST,
    NewView, PbftMessage, PrePrepare, PreparedCert, Proposal, Reply, Request, Sig, Signer,
    StateReply, Status, TableEntry, ViewChange, ViewChangeRef, Vote, batch_digest,
    checkpoint_digest, mix, table_digest, view_change_size_max,
};

use crate::contract::{Context, DropReason, Protocol};
use crate::{Duration, NodeId, Time, Wire};
use client::Client;
use replica::{Replica, ReplicaDurable};

/// Protocol parameters. Defaults follow the paper's evaluation where it gives one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PbftConfig {
    /// K: a checkpoint after every K executed sequence numbers (the paper uses 128).
    pub checkpoint_interval: u64,
    /// L: how far above the stable checkpoint sequence numbers may run (the paper uses 2K).
    pub log_window: u64,
    /// Requests per pre-prepare; 1 disables batching.
    pub batch_size_max: u32,
    /// How long the primary waits to fill a batch.
    pub batch_timeout: Duration,
    /// How long a backup waits for a request it knows of before it starts a view change.
    pub request_timeout: Duration,
    /// How long a replica waits for a new view before trying the next; doubles on each attempt.
    pub view_change_timeout: Duration,
    /// How long a client waits for f+1 replies before retransmitting to every replica.
    pub client_timeout: Duration,
    /// How often a replica that is behind (a slot unexecuted this long, or a view change this
    /// long) multicasts a status message, to which peers answer with what it lacks.
    pub status_interval: Duration,
    /// The most requests a primary queues, a backup tracks as waiting, or a client queues.
    pub pending_max: usize,
    /// Messages for a future view kept until the view is installed.
    pub future_max: usize,
    pub keys: Keys,
}

impl Default for PbftConfig {
    fn default() -> Self {
        PbftConfig {
            checkpoint_interval: 128,
            log_window: 256,
            batch_size_max: 1,
            batch_timeout: Duration::from_millis(5),
            request_timeout: Duration::from_millis(1_000),
            view_change_timeout: Duration::from_millis(1_000),
            client_timeout: Duration::from_millis(2_000),
            status_interval: Duration::from_millis(500),
            pending_max: 4_096,
            future_max: 16_384,
            keys: Keys { seed: 0x7062_6674 },
        }
    }
}

/// Which nodes host each replica. Normally one node per replica; a Twins pair is two nodes
/// holding the same replica's keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    pub hosts: Vec<Vec<NodeId>>,
}

impl Roster {
    /// One replica per node, in order.
    pub fn of(nodes: impl IntoIterator<Item = NodeId>) -> Self {
        Roster {
            hosts: nodes.into_iter().map(|n| vec![n]).collect(),
        }
    }

    pub fn n(&self) -> u32 {
        self.hosts.len() as u32
    }

    /// The most faulty replicas tolerated: n >= 3f + 1.
    pub fn f(&self) -> u32 {
        self.n().saturating_sub(1) / 3
    }

    pub fn quorum(&self) -> u32 {
        2 * self.f() + 1
    }

    pub fn primary(&self, view: u64) -> u32 {
        (view % u64::from(self.n().max(1))) as u32
    }
}

/// A Byzantine behaviour a replica shows during a time window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Behavior {
    /// Sends nothing (a silent primary stalls its view until a view change).
    Silent,
    /// Holds every outgoing message for `delay` (a slow primary).
    Slow(Duration),
    /// As primary, sends conflicting pre-prepares for the same view and sequence number to the
    /// two halves of the backups, and votes for both.
    Equivocate,
    /// Never sends prepares or commits.
    WithholdVotes,
    /// Votes for every digest it sees at a view and sequence number, not just the first.
    DoubleVote,
    /// With every message, also re-sends an old one it sent earlier.
    Replay,
    /// Puts a wrong digest in its pre-prepares and votes.
    WrongDigest,
}

impl Behavior {
    pub fn name(self) -> &'static str {
        match self {
            Behavior::Silent => "silent",
            Behavior::Slow(_) => "slow",
            Behavior::Equivocate => "equivocate",
            Behavior::WithholdVotes => "withhold_votes",
            Behavior::DoubleVote => "double_vote",
            Behavior::Replay => "replay",
            Behavior::WrongDigest => "wrong_digest",
        }
    }
}

/// A behaviour and the window `[from, until)` in which it is active.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Misbehavior {
    pub behavior: Behavior,
    pub from: Time,
    pub until: Time,
}

/// What a node is in a PBFT deployment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// The replica this node hosts, by roster index.
    pub replica: Option<u32>,
    pub client: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PbftTimer {
    /// A backup has waited too long for a request: start a view change.
    Request,
    /// The view change has not produced a new view: try the next one.
    ViewChange,
    /// The primary's batch is due.
    Batch,
    /// The client's request is overdue: retransmit to every replica.
    ClientRetry,
    /// A slow replica's held messages are due.
    Release,
    /// A state fetch went unanswered: ask again.
    Fetch,
    /// Time to check whether this replica is behind and say so.
    Status,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PbftCommand {
    /// A client submits operation `op` with `size` payload bytes.
    Submit { op: u64, size: u32 },
    /// The node's health layer confirmed this node dead (in a composed node).
    PeerDown(NodeId),
    /// The node's health layer saw this node alive again.
    PeerUp(NodeId),
    /// The detection layer proved this node Byzantine: its replica is down for good (a backup
    /// leaves its view at once if it is the primary).
    Isolate(NodeId),
    /// The partition layer: the node left (`false`) or re-entered (`true`) the primary
    /// partition. A client holds its operations outside it.
    Primary(bool),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PbftEvent {
    /// A client sent a new request.
    Submitted {
        request: Request,
    },
    /// A client accepted f+1 matching replies.
    Completed {
        request: Request,
        latency: Duration,
        result: u64,
    },
    /// A client's queue was full and the operation was refused.
    Refused,
    /// A client's node left the primary partition: `queued` operations are held.
    Suspended {
        queued: u32,
    },
    /// It re-entered it: the `queued` held operations go out again.
    Resumed {
        queued: u32,
    },
    /// A replica's sequence number became committed-local.
    Committed {
        replica: u32,
        view: u64,
        seq: u64,
        digest: Digest,
        /// From accepting the pre-prepare (or sending it, at the primary) to committing.
        latency: Duration,
    },
    /// A replica executed a batch; `state` is its state digest afterwards. `requests` are the
    /// ones it executed (requests it had already executed are skipped).
    Executed {
        replica: u32,
        seq: u64,
        digest: Digest,
        state: u64,
        requests: Vec<Request>,
    },
    /// A replica adopted a certified checkpoint it had not reached by execution, fetching the
    /// state from a replica that had; `state` is the running state digest it adopted.
    StateTransferred {
        replica: u32,
        seq: u64,
        state: u64,
    },
    CheckpointStable {
        replica: u32,
        seq: u64,
    },
    ViewChangeStarted {
        replica: u32,
        view: u64,
    },
    NewViewInstalled {
        replica: u32,
        view: u64,
        /// Since this replica started changing views.
        elapsed: Duration,
    },
    /// Replica `replica` learned from the health layer that replica `down` is dead.
    ReplicaDown {
        replica: u32,
        down: u32,
    },
    /// Replica `replica` learned from the health layer that replica `up` is alive again.
    ReplicaUp {
        replica: u32,
        up: u32,
    },
}

/// Durable state: what a replica keeps on stable storage, and the client's next timestamp.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PbftDurable {
    /// Boxed so the effect buffer, sized by its largest variant, stays small.
    replica: Option<Box<ReplicaDurable>>,
    client_next_timestamp: u64,
}

/// Counters a node keeps; the simulator harvests them when the node retires.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PbftStats {
    pub sent: [u64; Kind::ALL.len()],
    /// Messages dropped at the sender for exceeding the node's message size limit, by kind.
    pub oversized: [u64; Kind::ALL.len()],
    /// Votes, checkpoints and view changes already counted.
    pub duplicates: u64,
    /// Messages for sequence numbers outside the watermarks, or old views.
    pub stale: u64,
    /// Messages for a future view dropped because the buffer was full.
    pub future_dropped: u64,
    /// Pre-prepares whose digest does not match their batch, and invalid view changes.
    pub invalid: u64,
    /// Conflicting pre-prepares seen from one primary.
    pub equivocations_seen: u64,
    /// Requests a primary or client could not queue.
    pub queue_full: u64,
    /// Messages a Byzantine behaviour dropped, held or replayed.
    pub byzantine_dropped: u64,
    pub byzantine_replayed: u64,
    pub client_retransmissions: u64,
    /// Operations a client held because its node was outside the primary partition.
    pub held: u64,
}

/// A node of a PBFT deployment.
pub struct Pbft {
    config: PbftConfig,
    roster: Arc<Roster>,
    replica: Option<Replica>,
    client: Option<Client>,
    adversary: Adversary,
    stats: PbftStats,
    /// A replica in a composed node asks the health layer to watch the committee once.
    watch_pending: bool,
    /// Hosts proven Byzantine: down for good, whatever health says.
    isolated: std::collections::BTreeSet<NodeId>,
}

impl Pbft {
    pub fn new(
        config: PbftConfig,
        roster: Arc<Roster>,
        role: Role,
        misbehavior: Vec<Misbehavior>,
        durable: Option<PbftDurable>,
    ) -> Self {
        let durable = durable.unwrap_or_default();
        Pbft {
            replica: role
                .replica
                .map(|index| Replica::new(index, durable.replica.as_deref().cloned())),
            client: role
                .client
                .then(|| Client::new(durable.client_next_timestamp)),
            adversary: Adversary {
                schedule: misbehavior,
                outbox: VecDeque::new(),
                history: VecDeque::new(),
            },
            config,
            roster,
            stats: PbftStats::default(),
            watch_pending: false,
            isolated: std::collections::BTreeSet::new(),
        }
    }

    pub fn stats(&self) -> PbftStats {
        self.stats
    }

    /// The replica's (view, last executed, stable checkpoint), if this node hosts one.
    pub fn replica_status(&self) -> Option<(u64, u64, u64)> {
        self.replica
            .as_ref()
            .map(|r| (r.view, r.last_executed, r.low))
    }

    fn durable(&self) -> PbftDurable {
        PbftDurable {
            replica: self.replica.as_ref().map(|r| Box::new(r.durable())),
            client_next_timestamp: self.client.as_ref().map_or(0, |c| c.next_timestamp),
        }
    }
}

/// What a handler needs besides its own state: the context, the parameters, and the one door
/// every outgoing message goes through.
pub(crate) struct Env<'e, 'c> {
    pub ctx: &'e mut Context<'c, Pbft>,
    pub config: &'e PbftConfig,
    pub roster: &'e Roster,
    pub adversary: &'e mut Adversary,
    pub stats: &'e mut PbftStats,
}

impl Env<'_, '_> {
    /// The behaviour active now, if any.
    pub fn behavior(&self) -> Option<Behavior> {
        self.adversary.active(self.ctx.now())
    }

    pub fn sign(&self, signer: Signer, content: u64) -> Sig {
        self.config.keys.sign(signer, content)
    }

    /// Sends `msg` to every host of replica `to`.
    pub fn send_to_replica(&mut self, to: u32, msg: &PbftMessage) {
        let me = self.ctx.id();
        for i in 0..self.roster.hosts[to as usize].len() {
            let host = self.roster.hosts[to as usize][i];
            if host != me {
                self.send(host, msg.clone());
            }
        }
    }

    /// Sends `msg` to every replica but `except`.
    pub fn multicast(&mut self, except: Option<u32>, msg: &PbftMessage) {
        for r in 0..self.roster.n() {
            if Some(r) != except {
                self.send_to_replica(r, msg);
            }
        }
    }

    /// The one door out: Byzantine behaviours act here on every message.
    pub fn send(&mut self, to: NodeId, msg: PbftMessage) {
        let now = self.ctx.now();
        match self.adversary.active(now) {
            None | Some(Behavior::Equivocate | Behavior::DoubleVote) => {}
            Some(Behavior::Silent) => {
                self.stats.byzantine_dropped += 1;
                return;
            }
            Some(Behavior::WithholdVotes) => {
                if matches!(msg, PbftMessage::Prepare(_) | PbftMessage::Commit(_)) {
                    self.stats.byzantine_dropped += 1;
                    return;
                }
            }
            Some(Behavior::Slow(delay)) => {
                if self.adversary.outbox.len() >= self.config.future_max {
                    self.stats.byzantine_dropped += 1;
                    return;
                }
                if self.adversary.outbox.is_empty() {
                    self.ctx.set_timer(PbftTimer::Release, delay);
                }
                self.adversary.outbox.push_back((now + delay, to, msg));
                return;
            }
            Some(Behavior::Replay) => {
                if !self.adversary.history.is_empty() {
                    let pick =
                        crate::random::below(self.ctx.rng(), self.adversary.history.len() as u64)
                            as usize;
                    let old = self.adversary.history[pick].clone();
                    self.stats.byzantine_replayed += 1;
                    self.emit(to, old);
                }
                if self.adversary.history.len() >= REPLAY_HISTORY_LEN {
                    self.adversary.history.pop_front();
                }
                self.adversary.history.push_back(msg.clone());
            }
            Some(Behavior::WrongDigest) => {
                let msg = self.corrupt(msg);
                self.emit(to, msg);
                return;
            }
        }
        self.emit(to, msg);
    }

    fn emit(&mut self, to: NodeId, msg: PbftMessage) {
        if msg.wire_size() > self.ctx.message_size_max_bytes() {
            self.stats.oversized[msg.kind() as usize] += 1;
        }
        self.stats.sent[msg.kind() as usize] += 1;
        self.ctx.send(to, msg);
    }

    /// A wrong digest in a pre-prepare or vote, signed with this replica's own key.
    fn corrupt(&self, msg: PbftMessage) -> PbftMessage {
        let keys = self.config.keys;
        match msg {
            PbftMessage::PrePrepare(mut p) => {
                p.digest = Digest(p.digest.0 ^ 1);
                p.sig = keys.sign(Signer::Replica(self.roster.primary(p.view)), p.content());
                PbftMessage::PrePrepare(p)
            }
            PbftMessage::Prepare(mut v) => {
                v.digest = Digest(v.digest.0 ^ 1);
                v.sig = keys.sign(
                    Signer::Replica(v.replica),
                    v.content(message::Phase::Prepare),
                );
                PbftMessage::Prepare(v)
            }
            PbftMessage::Commit(mut v) => {
                v.digest = Digest(v.digest.0 ^ 1);
                v.sig = keys.sign(
                    Signer::Replica(v.replica),
                    v.content(message::Phase::Commit),
                );
                PbftMessage::Commit(v)
            }
            other => other,
        }
    }

    /// Releases a slow replica's held messages that are due.
    fn release(&mut self) {
        let now = self.ctx.now();
        while let Some((at, _, _)) = self.adversary.outbox.front() {
            if *at > now {
                let wait = *at - now;
                self.ctx.set_timer(PbftTimer::Release, wait);
                break;
            }
            if let Some((_, to, msg)) = self.adversary.outbox.pop_front() {
                self.emit(to, msg);
            }
        }
    }
}

/// Old messages a replaying replica keeps to re-send.
const REPLAY_HISTORY_LEN: usize = 64;

/// The Byzantine wrapper's state: its schedule, a slow replica's held messages, a replaying
/// replica's history.
pub(crate) struct Adversary {
    schedule: Vec<Misbehavior>,
    outbox: VecDeque<(Time, NodeId, PbftMessage)>,
    history: VecDeque<PbftMessage>,
}

impl Adversary {
    fn active(&self, now: Time) -> Option<Behavior> {
        self.schedule
            .iter()
            .find(|m| m.from <= now && now < m.until)
            .map(|m| m.behavior)
    }
}

macro_rules! env {
    ($self:ident, $ctx:ident) => {
        Env {
            ctx: $ctx,
            config: &$self.config,
            roster: &$self.roster,
            adversary: &mut $self.adversary,
            stats: &mut $self.stats,
        }
    };
}

impl Protocol for Pbft {
    type Message = PbftMessage;
    type Timer = PbftTimer;
    type Command = PbftCommand;
    type Event = PbftEvent;
    type Durable = PbftDurable;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        if let Some(replica) = self.replica.as_mut() {
            self.watch_pending = true;
            replica.start(&mut env!(self, ctx));
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: PbftMessage) {
        let before = self.replica.as_ref().map(|r| (r.view, r.low));
        if let PbftMessage::Reply(reply) = msg {
            if let Some(client) = self.client.as_mut() {
                client.on_reply(&mut env!(self, ctx), reply);
            }
            return;
        }
        if let Some(replica) = self.replica.as_mut() {
            replica.on_message(&mut env!(self, ctx), from, msg);
        }
        if before != self.replica.as_ref().map(|r| (r.view, r.low)) {
            ctx.persist(self.durable());
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: PbftTimer) {
        let before = self.replica.as_ref().map(|r| (r.view, r.low));
        match timer {
            PbftTimer::ClientRetry => {
                if let Some(client) = self.client.as_mut() {
                    client.on_retry(&mut env!(self, ctx));
                }
            }
            PbftTimer::Release => env!(self, ctx).release(),
            PbftTimer::Request
            | PbftTimer::ViewChange
            | PbftTimer::Batch
            | PbftTimer::Fetch
            | PbftTimer::Status => {
                if let Some(replica) = self.replica.as_mut() {
                    replica.on_timer(&mut env!(self, ctx), timer);
                }
            }
        }
        if before != self.replica.as_ref().map(|r| (r.view, r.low)) {
            ctx.persist(self.durable());
        }
    }

    fn on_command(&mut self, ctx: &mut Context<'_, Self>, cmd: PbftCommand) {
        match cmd {
            PbftCommand::Submit { op, size } => {
                if let Some(client) = self.client.as_mut() {
                    client.submit(&mut env!(self, ctx), op, size);
                    let durable = self.durable();
                    ctx.persist(durable);
                }
            }
            PbftCommand::Isolate(node) => {
                if self.roster.hosts.iter().any(|h| h.contains(&node)) {
                    self.isolated.insert(node);
                    self.on_command(ctx, PbftCommand::PeerDown(node));
                }
            }
            PbftCommand::Primary(primary) => {
                if let Some(client) = self.client.as_mut() {
                    if primary {
                        client.resume(&mut env!(self, ctx));
                    } else {
                        client.suspend(&mut env!(self, ctx));
                    }
                }
            }
            PbftCommand::PeerUp(node) if self.isolated.contains(&node) => {}
            PbftCommand::PeerDown(node) | PbftCommand::PeerUp(node) => {
                let before = self.replica.as_ref().map(|r| (r.view, r.low));
                let Some(r) = self.roster.hosts.iter().position(|h| h.contains(&node)) else {
                    return;
                };
                if let Some(replica) = self.replica.as_mut() {
                    let env = &mut env!(self, ctx);
                    if matches!(cmd, PbftCommand::PeerDown(_)) {
                        replica.peer_down(env, r as u32);
                    } else {
                        replica.peer_up(env, r as u32);
                    }
                }
                if before != self.replica.as_ref().map(|r| (r.view, r.low)) {
                    ctx.persist(self.durable());
                }
            }
        }
    }

    /// Screens signatures and shapes; semantic checks (watermarks, digests, certificates) happen
    /// in the handlers, which can report evidence.
    fn check(&self, _from: NodeId, msg: &PbftMessage) -> Result<(), DropReason> {
        let keys = self.config.keys;
        let n = self.roster.n();
        let replica = |r: u32| {
            if r < n {
                Ok(Signer::Replica(r))
            } else {
                Err(DropReason::Malformed)
            }
        };
        let ok = |valid: bool| {
            if valid {
                Ok(())
            } else {
                Err(DropReason::Unauthenticated)
            }
        };
        match msg {
            PbftMessage::Request(r) => {
                ok(keys.verify(Signer::Client(r.client), r.content(), r.sig))
            }
            PbftMessage::PrePrepare(p) => {
                if p.batch.len() > self.config.batch_size_max as usize {
                    return Err(DropReason::Malformed);
                }
                let primary = Signer::Replica(self.roster.primary(p.view));
                ok(keys.verify(primary, p.content(), p.sig))
            }
            PbftMessage::Prepare(v) => ok(keys.verify(
                replica(v.replica)?,
                v.content(message::Phase::Prepare),
                v.sig,
            )),
            PbftMessage::Commit(v) => ok(keys.verify(
                replica(v.replica)?,
                v.content(message::Phase::Commit),
                v.sig,
            )),
            PbftMessage::Reply(r) => ok(keys.verify(replica(r.replica)?, r.content(), r.sig)),
            PbftMessage::Checkpoint(c) => ok(keys.verify(replica(c.replica)?, c.content(), c.sig)),
            PbftMessage::ViewChange(v) => {
                if v.proof.len() > n as usize || v.prepared.len() as u64 > self.config.log_window {
                    return Err(DropReason::Malformed);
                }
                ok(keys.verify(replica(v.replica)?, v.content(), v.sig))
            }
            PbftMessage::NewView(nv) => {
                if nv.view_changes.len() > n as usize
                    || nv.proposals.len() as u64 > self.config.log_window
                {
                    return Err(DropReason::Malformed);
                }
                let primary = Signer::Replica(self.roster.primary(nv.view));
                ok(keys.verify(primary, nv.content(), nv.sig))
            }
            PbftMessage::FetchState(f) => replica(f.replica).map(|_| ()),
            PbftMessage::FetchViewChanges(f) => {
                if f.replicas.len() > n as usize {
                    return Err(DropReason::Malformed);
                }
                replica(f.replica).map(|_| ())
            }
            PbftMessage::Status(st) => {
                if st.view_changes.len() > (n as usize).div_ceil(64) {
                    return Err(DropReason::Malformed);
                }
                ok(keys.verify(replica(st.replica)?, st.content(), st.sig))
            }
            // Checked against the certified checkpoint digest by the handler.
            PbftMessage::StateReply(_) => Ok(()),
        }
    }
}

/// PBFT as a layer: a replica asks the health layer to watch every other replica's hosts, and
/// learns from it which replicas are dead (`PeerDead`) or back (`PeerAlive`).
impl crate::layer::Layer for Pbft {
    const NAME: &'static str = "pbft";

    fn drain_notices(&mut self, out: &mut Vec<crate::layer::Notice>) {
        if !std::mem::take(&mut self.watch_pending) {
            return;
        }
        let me = self.replica.as_ref().map(|r| r.index);
        for (r, hosts) in self.roster.hosts.iter().enumerate() {
            if Some(r as u32) != me {
                out.extend(hosts.iter().map(|&h| crate::layer::Notice::Watch(h)));
            }
        }
    }

    fn notices_of(event: &PbftEvent, out: &mut Vec<crate::layer::Notice>) {
        // Executed operations are agreed writes for the registry.
        if let PbftEvent::Executed { seq, requests, .. } = event {
            out.extend(requests.iter().map(|r| crate::layer::Notice::Agreed {
                op: r.op,
                seq: *seq,
            }));
        }
    }

    fn on_notice(&self, notice: crate::layer::Notice) -> Option<PbftCommand> {
        use crate::layer::Notice;
        if let Notice::Primary(primary) = notice {
            return self.client.as_ref().map(|_| PbftCommand::Primary(primary));
        }
        self.replica.as_ref()?;
        match notice {
            Notice::PeerDead(p) => Some(PbftCommand::PeerDown(p)),
            Notice::Isolated(p) => Some(PbftCommand::Isolate(p)),
            Notice::PeerAlive(p) => Some(PbftCommand::PeerUp(p)),
            _ => None,
        }
    }

    fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.replica.as_ref().map_or(0, Replica::heap_bytes)
            + self.client.as_ref().map_or(0, Client::heap_bytes)
            + self.adversary.outbox.capacity() * std::mem::size_of::<(Time, NodeId, PbftMessage)>()
            + self.adversary.history.capacity() * std::mem::size_of::<PbftMessage>()
    }
}
