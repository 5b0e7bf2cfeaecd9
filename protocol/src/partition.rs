//! Partition detection and the primary partition, sans-IO.
//!
//! A node watches a bounded set of peers: the validators (the PBFT committee's hosts, whose
//! reachability decides the primary partition), discovery's neighbours and its seeds. It probes
//! them round-robin, `probes` per `interval`; a peer that leaves `misses` probes in a row
//! unanswered is unreachable until it answers again. The health layer's verdicts count too: a
//! peer confirmed dead is unreachable at once, one seen alive again is reachable.
//!
//! **Detection.** A crash takes peers away one at a time and plain loss takes one now and then;
//! a partition takes many at once, and often a whole region. The node believes it is partitioned
//! when, within `window`, at least `threshold` of the peers it watches became unreachable
//! (a burst), or at least `group_share` of the watched peers of one group (region) did, or it
//! lost the quorum of validators in that window. It believes the partition healed when at least
//! half of the peers lost in it answer again; it then names up to `burst` of them
//! (`Notice::Reconnected`) so that state is reconciled with the other side at once.
//!
//! **Primary partition.** The node is in the primary partition while it reaches a quorum
//! (2f + 1) of validators, itself included. Two disjoint sides cannot both hold 2f + 1 of 3f + 1
//! validators, so at most one side of a split is primary, and an equal split has none. Outside
//! the primary partition the node holds the operations that need consensus (`Notice::Primary`,
//! which the PBFT client obeys) and keeps serving what is safe locally. The belief is advisory:
//! PBFT's own quorums are what make two conflicting commits impossible, also in partial and
//! one-way partitions where reachability is not symmetric or not transitive.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::contract::{Context, DropReason, Protocol};
use crate::{Duration, NodeId, Time, Wire};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionConfig {
    /// Probe round period.
    pub interval: Duration,
    /// Peers probed per round.
    pub probes: usize,
    /// Unanswered probes in a row that make a peer unreachable.
    pub misses: u32,
    /// Share of watched peers lost within `window` that signals a partition.
    pub threshold: f64,
    pub window: Duration,
    /// Share of one group's watched peers lost that signals a partition...
    pub group_share: f64,
    /// ...in a group of at least this many watched peers.
    pub group_min: usize,
    /// Watched peers other than validators, at most.
    pub peers_max: usize,
    /// Hosts of the validators (empty without consensus).
    pub validators: Arc<[NodeId]>,
    /// Validators needed for a quorum (2f + 1); 0 without consensus.
    pub quorum: usize,
    /// Each node's group (its region), by node index; nodes beyond it have none.
    pub groups: Arc<[u16]>,
    /// Peers watched from the start.
    pub seeds: Arc<[NodeId]>,
    /// Peers named for reconciliation when a partition heals.
    pub burst: usize,
}

impl Default for PartitionConfig {
    fn default() -> Self {
        PartitionConfig {
            interval: Duration::from_millis(500),
            probes: 8,
            misses: 2,
            threshold: 0.3,
            window: Duration::from_secs(10),
            group_share: 0.8,
            group_min: 4,
            peers_max: 32,
            validators: Arc::from(Vec::new()),
            quorum: 0,
            groups: Arc::from(Vec::new()),
            seeds: Arc::from(Vec::new()),
            burst: 4,
        }
    }
}

/// Validators watched at most (a committee larger than this is partly watched).
pub const VALIDATORS_MAX: usize = 1_024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PartitionMessage {
    Probe { nonce: u32 },
    Ack { nonce: u32 },
}

impl Wire for PartitionMessage {
    fn wire_size(&self) -> usize {
        // Kind and nonce in a UDP-sized datagram header.
        8
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PartitionTimer {
    Round,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartitionCommand {
    /// Watch this peer (a neighbour).
    Watch(NodeId),
    /// Discovery dropped this neighbour: stop watching it, unless it is unreachable (a peer lost
    /// in a partition stays watched, so the node sees it come back).
    Unwatch(NodeId),
    /// Proven Byzantine: stop watching it for good.
    Forget(NodeId),
    /// The health layer confirmed this peer dead.
    Down(NodeId),
    /// The health layer saw this peer alive again.
    Up(NodeId),
}

/// What made the node believe it is partitioned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Cause {
    /// Many watched peers lost within the window.
    Burst,
    /// Most of one group's peers lost.
    Group,
    /// The quorum of validators lost within the window.
    Quorum,
}

impl Cause {
    pub fn name(self) -> &'static str {
        match self {
            Cause::Burst => "burst",
            Cause::Group => "group",
            Cause::Quorum => "quorum",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartitionEvent {
    Detected {
        cause: Cause,
        unreachable: u32,
        watched: u32,
    },
    /// Half the peers lost in the partition answer again; `back` are named for reconciliation.
    Healed { back: Vec<NodeId>, lasted: Duration },
    /// The node entered or left the primary partition.
    Primary { primary: bool, validators: u32 },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionStats {
    pub probes: u64,
    pub acks: u64,
    pub detected: u64,
    pub healed: u64,
    pub primary_lost: u64,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct Peer {
    /// Probes sent since the last answer.
    pending: u32,
    /// Since when it is unreachable.
    lost: Option<Time>,
    validator: bool,
    /// Watched for itself (a seed or neighbour), not only as a validator.
    member: bool,
}

pub struct Partition {
    config: PartitionConfig,
    id: NodeId,
    peers: BTreeMap<NodeId, Peer>,
    /// Round-robin position: the next peer probed is the first after this one.
    cursor: Option<NodeId>,
    nonce: u32,
    /// Since when, and which peers were lost when the partition was detected.
    partitioned: Option<(Time, Vec<NodeId>)>,
    primary: bool,
    members: usize,
    /// When the last partition healed: losses from before it start no new one.
    healed_at: Option<Time>,
    stats: PartitionStats,
}

impl Partition {
    pub fn new(config: PartitionConfig, id: NodeId) -> Self {
        let mut peers = BTreeMap::new();
        for &v in config.validators.iter().take(VALIDATORS_MAX) {
            if v != id {
                peers.insert(
                    v,
                    Peer {
                        validator: true,
                        ..Peer::default()
                    },
                );
            }
        }
        let mut p = Partition {
            id,
            peers,
            cursor: None,
            nonce: 0,
            partitioned: None,
            primary: true,
            members: 0,
            healed_at: None,
            stats: PartitionStats::default(),
            config,
        };
        let seeds = p.config.seeds.clone();
        for &s in seeds.iter() {
            p.watch(s);
        }
        p
    }

    pub fn stats(&self) -> PartitionStats {
        self.stats
    }

    pub fn is_partitioned(&self) -> bool {
        self.partitioned.is_some()
    }

    pub fn is_primary(&self) -> bool {
        self.primary
    }

    /// Peers watched, and how many of them are unreachable.
    pub fn reachability(&self) -> (usize, usize) {
        let lost = self.peers.values().filter(|p| p.lost.is_some()).count();
        (self.peers.len(), lost)
    }

    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.peers.len() * (std::mem::size_of::<(NodeId, Peer)>() + 16)
            + self
                .partitioned
                .as_ref()
                .map_or(0, |(_, l)| l.capacity() * 4)
    }

    fn watch(&mut self, peer: NodeId) {
        if peer == self.id {
            return;
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            if !p.member && self.members < self.config.peers_max {
                p.member = true;
                self.members += 1;
            }
            return;
        }
        if self.members < self.config.peers_max {
            self.members += 1;
            self.peers.insert(
                peer,
                Peer {
                    member: true,
                    ..Peer::default()
                },
            );
        }
    }

    fn unwatch(&mut self, peer: NodeId, even_lost: bool) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.lost.is_some() && !even_lost {
            return;
        }
        if p.member {
            self.members -= 1;
            p.member = false;
        }
        if !p.validator {
            self.peers.remove(&peer);
        }
    }

    fn group(&self, peer: NodeId) -> Option<u16> {
        self.config.groups.get(peer.index()).copied()
    }

    /// Validators reachable, this node included if it is one.
    fn validators_reachable(&self) -> usize {
        let me = usize::from(self.config.validators.contains(&self.id));
        me + self
            .peers
            .values()
            .filter(|p| p.validator && p.lost.is_none())
            .count()
    }

    fn set_lost(&mut self, ctx: &mut Context<'_, Self>, peer: NodeId, lost: bool) {
        let now = ctx.now();
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if lost == p.lost.is_some() {
            return;
        }
        p.lost = lost.then_some(now);
        if !lost {
            p.pending = 0;
        }
        self.evaluate(ctx);
    }

    /// Re-decides the partition and primary beliefs after a peer's reachability changed.
    fn evaluate(&mut self, ctx: &mut Context<'_, Self>) {
        let now = ctx.now();
        let healed_at = self.healed_at;
        let recent = |p: &Peer| {
            p.lost.is_some_and(|t| {
                now.saturating_since(t) <= self.config.window && healed_at.is_none_or(|h| t > h)
            })
        };
        let had_quorum_lately = self.config.quorum > 0 && {
            let lost_lately = self
                .peers
                .values()
                .filter(|p| p.validator && recent(p))
                .count();
            self.validators_reachable() < self.config.quorum
                && self.validators_reachable() + lost_lately >= self.config.quorum
        };
        if self.config.quorum > 0 {
            let reach = self.validators_reachable();
            let primary = reach >= self.config.quorum;
            if primary != self.primary {
                self.primary = primary;
                if !primary {
                    self.stats.primary_lost += 1;
                }
                ctx.emit(PartitionEvent::Primary {
                    primary,
                    validators: reach as u32,
                });
            }
        }
        let watched = self.peers.len();
        let unreachable = self.peers.values().filter(|p| p.lost.is_some()).count();
        match &self.partitioned {
            None => {
                let burst = self.peers.values().filter(|p| recent(p)).count();
                let need = ((self.config.threshold * watched as f64).ceil() as usize).max(2);
                let cause = if watched > 0 && burst >= need {
                    Some(Cause::Burst)
                } else if self.group_lost(now, healed_at) {
                    Some(Cause::Group)
                } else if had_quorum_lately {
                    Some(Cause::Quorum)
                } else {
                    None
                };
                if let Some(cause) = cause {
                    let lost: Vec<NodeId> = self
                        .peers
                        .iter()
                        .filter(|(_, p)| p.lost.is_some())
                        .map(|(&id, _)| id)
                        .collect();
                    self.partitioned = Some((now, lost));
                    self.stats.detected += 1;
                    ctx.emit(PartitionEvent::Detected {
                        cause,
                        unreachable: unreachable as u32,
                        watched: watched as u32,
                    });
                }
            }
            Some((since, lost)) => {
                let back: Vec<NodeId> = lost
                    .iter()
                    .copied()
                    .filter(|id| self.peers.get(id).is_some_and(|p| p.lost.is_none()))
                    .collect();
                let gone = lost
                    .iter()
                    .filter(|id| !self.peers.contains_key(id))
                    .count();
                if !back.is_empty() && 2 * back.len() >= lost.len() - gone {
                    let lasted = now.saturating_since(*since);
                    let mut named = back;
                    // The first `burst` of a seeded shuffle: every node names different peers.
                    for i in 0..named.len() {
                        let j =
                            i + crate::random::below(ctx.rng(), (named.len() - i) as u64) as usize;
                        named.swap(i, j);
                    }
                    named.truncate(self.config.burst);
                    self.partitioned = None;
                    self.healed_at = Some(now);
                    self.stats.healed += 1;
                    ctx.emit(PartitionEvent::Healed {
                        back: named,
                        lasted,
                    });
                }
            }
        }
    }

    /// Whether most of one group's watched peers are unreachable, some of them lost recently.
    fn group_lost(&self, now: Time, healed_at: Option<Time>) -> bool {
        let mut by_group: BTreeMap<u16, (usize, usize, bool)> = BTreeMap::new();
        for (&id, p) in &self.peers {
            if let Some(g) = self.group(id) {
                let e = by_group.entry(g).or_default();
                e.0 += 1;
                if let Some(t) = p.lost {
                    e.1 += 1;
                    e.2 |= now.saturating_since(t) <= self.config.window
                        && healed_at.is_none_or(|h| t > h);
                }
            }
        }
        by_group.values().any(|&(n, lost, recent)| {
            n >= self.config.group_min
                && recent
                && lost as f64 >= self.config.group_share * n as f64
        })
    }

    fn round(&mut self, ctx: &mut Context<'_, Self>) {
        let n = self.peers.len().min(self.config.probes);
        let mut chosen = Vec::with_capacity(n);
        let after = self.cursor;
        let tail = self
            .peers
            .keys()
            .copied()
            .filter(|&p| after.is_none_or(|c| p > c));
        let head = self.peers.keys().copied();
        for p in tail.chain(head).take(n) {
            if chosen.contains(&p) {
                break;
            }
            chosen.push(p);
        }
        self.cursor = chosen.last().copied();
        for peer in chosen {
            let missed = {
                let p = self.peers.get_mut(&peer).expect("chosen from the map");
                let missed = p.pending >= self.config.misses && p.lost.is_none();
                p.pending = p.pending.saturating_add(1);
                missed
            };
            if missed {
                self.set_lost(ctx, peer, true);
            }
            self.nonce = self.nonce.wrapping_add(1);
            self.stats.probes += 1;
            ctx.send(peer, PartitionMessage::Probe { nonce: self.nonce });
        }
        // Windows slide: a burst can form from losses already counted.
        if self.partitioned.is_none() {
            self.evaluate(ctx);
        }
    }
}

impl Protocol for Partition {
    type Message = PartitionMessage;
    type Timer = PartitionTimer;
    type Command = PartitionCommand;
    type Event = PartitionEvent;
    type Durable = ();

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        let spread = self.config.interval.as_nanos().max(1);
        let first = Duration::from_nanos(crate::random::below(ctx.rng(), spread));
        ctx.set_timer(PartitionTimer::Round, first);
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: PartitionMessage) {
        match msg {
            PartitionMessage::Probe { nonce } => ctx.send(from, PartitionMessage::Ack { nonce }),
            PartitionMessage::Ack { .. } => {
                self.stats.acks += 1;
                if let Some(p) = self.peers.get_mut(&from) {
                    p.pending = 0;
                }
                self.set_lost(ctx, from, false);
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, _timer: PartitionTimer) {
        self.round(ctx);
        ctx.set_timer(PartitionTimer::Round, self.config.interval);
    }

    fn on_command(&mut self, ctx: &mut Context<'_, Self>, cmd: PartitionCommand) {
        match cmd {
            PartitionCommand::Watch(p) => self.watch(p),
            PartitionCommand::Unwatch(p) => {
                self.unwatch(p, false);
                self.evaluate(ctx);
            }
            PartitionCommand::Forget(p) => {
                if let Some(v) = self.peers.get_mut(&p) {
                    v.validator = false;
                }
                self.unwatch(p, true);
                self.peers.remove(&p);
                self.evaluate(ctx);
            }
            PartitionCommand::Down(p) => self.set_lost(ctx, p, true),
            PartitionCommand::Up(p) => self.set_lost(ctx, p, false),
        }
    }

    fn check(&self, from: NodeId, msg: &PartitionMessage) -> Result<(), DropReason> {
        if from == self.id {
            return Err(DropReason::Unexpected);
        }
        // An answer from a peer never asked is not evidence of anything.
        if matches!(msg, PartitionMessage::Ack { .. }) && !self.peers.contains_key(&from) {
            return Err(DropReason::Unexpected);
        }
        Ok(())
    }
}

/// The partition layer: watches discovery's neighbours, takes health's verdicts, tells PBFT when
/// the node leaves or re-enters the primary partition and the registry whom to reconcile with.
impl crate::layer::Layer for Partition {
    const NAME: &'static str = "partition";

    fn notices_of(event: &PartitionEvent, out: &mut Vec<crate::layer::Notice>) {
        use crate::layer::Notice;
        match event {
            PartitionEvent::Primary { primary, .. } => out.push(Notice::Primary(*primary)),
            PartitionEvent::Healed { back, .. } => {
                out.extend(back.iter().map(|&p| Notice::Reconnected(p)));
            }
            PartitionEvent::Detected { .. } => {}
        }
    }

    fn on_notice(&self, notice: crate::layer::Notice) -> Option<PartitionCommand> {
        use crate::layer::Notice;
        match notice {
            Notice::NeighborAdded(p) => Some(PartitionCommand::Watch(p)),
            Notice::NeighborRemoved(p) => Some(PartitionCommand::Unwatch(p)),
            Notice::Isolated(p) => Some(PartitionCommand::Forget(p)),
            Notice::PeerDead(p) => Some(PartitionCommand::Down(p)),
            Notice::PeerAlive(p) => Some(PartitionCommand::Up(p)),
            _ => None,
        }
    }

    fn memory_bytes(&self) -> usize {
        Partition::memory_bytes(self)
    }
}

#[cfg(test)]
mod tests;
