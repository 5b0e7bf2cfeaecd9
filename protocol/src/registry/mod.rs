//! The replicated registry: the state a prsm network keeps on every node (task results, worker
//! capabilities, reputation records) as a versioned key-value map, and its healing by Merkle
//! anti-entropy.
//!
//! **Writes.** A local write (`RegistryCommand::Write`) is applied at once on the node that takes
//! it, on whatever side of a partition it is: it stamps the entry with a Lamport version (one more
//! than the largest version the node has seen) and its own id. A write that needed agreement is
//! applied when PBFT executes it (`Agreed`, from the consensus layer's notice): its version is the
//! PBFT sequence number and its writer the committee, so every replica applies the same entry, in
//! a key space of its own. Only the primary partition can produce those.
//!
//! **Merge rule.** Two versions of one key are merged by a total order, so merging is
//! commutative, associative and idempotent, and replicas that have seen the same writes hold the
//! same map whatever the order they saw them in: `lww` (last writer wins) keeps the larger
//! (version, writer, value); `max` keeps the larger (value, version, writer), a register that
//! only grows (counters, high-water marks).
//!
//! **Anti-entropy.** Every `interval` a node opens a session with one random peer; on
//! reconnection after a partition (the partition layer's `Reconnected` notice) it opens one at
//! once with each peer that came back. A session compares Merkle trees ([`merkle`]) level by level:
//! each message carries one level's hashes; the receiver compares them with its own and answers
//! with the children of the nodes that differ, so the two sides take turns descending. At the
//! leaves, the side that found the differing buckets sends its entries of those buckets; the other
//! merges them and sends back only the entries the first lacks (push-pull), and both hold the
//! union. Sessions keep no state at either end: every message says everything its receiver needs,
//! so a lost message just ends the session and the next round starts over. Messages are bounded
//! (`hashes_max` hashes, `entries_max` entries); what does not fit waits for the next session.

pub mod merkle;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::contract::{Context, DropReason, Protocol};
use crate::pbft::message::mix;
use crate::{Duration, NodeId, Wire};
use merkle::Merkle;

/// The writer of entries agreed through PBFT.
pub const COMMITTEE: NodeId = NodeId(u32::MAX);
/// Keys of agreed writes carry this bit; local writes never do.
pub const AGREED_KEY_BIT: u64 = 1 << 63;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MergeRule {
    /// Last writer wins: the larger (version, writer, value).
    LastWriterWins,
    /// The larger value wins (then version, writer): a register that only grows.
    Max,
}

impl MergeRule {
    pub const ALL: [MergeRule; 2] = [MergeRule::LastWriterWins, MergeRule::Max];

    pub fn name(self) -> &'static str {
        match self {
            MergeRule::LastWriterWins => "lww",
            MergeRule::Max => "max",
        }
    }

    /// Whether `new` replaces `old` under this rule.
    pub fn wins(self, new: &Entry, old: &Entry) -> bool {
        match self {
            MergeRule::LastWriterWins => {
                (new.version, new.writer, new.value) > (old.version, old.writer, old.value)
            }
            MergeRule::Max => {
                (new.value, new.version, new.writer) > (old.value, old.version, old.writer)
            }
        }
    }
}

/// One key's value with its version and writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    pub version: u64,
    pub writer: NodeId,
    pub value: u64,
}

impl Entry {
    /// The entry's contribution to its bucket's leaf hash.
    fn digest(&self, key: u64) -> u64 {
        mix(
            mix(
                mix(mix(0x51af_d7ed_558c_cd01, key), self.version),
                u64::from(self.writer.0),
            ),
            self.value,
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegistryConfig {
    /// The tree has `2^depth` buckets.
    pub depth: u8,
    pub merge: MergeRule,
    /// Anti-entropy period (jittered by up to a tenth).
    pub interval: Duration,
    /// Hashes (and buckets) per message, at most.
    pub hashes_max: usize,
    /// Entries per message, at most.
    pub entries_max: usize,
    /// Keys held at most; writes to new keys beyond it are refused and counted.
    pub keys_max: usize,
    /// Peers to reconcile with, at most.
    pub peers_max: usize,
    /// Peers known from the start (a node without discovery); neighbours join as heard.
    pub seeds: Arc<[NodeId]>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            depth: 10,
            merge: MergeRule::LastWriterWins,
            interval: Duration::from_secs(1),
            hashes_max: 512,
            entries_max: 1_024,
            keys_max: 65_536,
            peers_max: 1_024,
            seeds: Arc::from(Vec::new()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RegistryMessage {
    /// Hashes of tree nodes at one level, for the receiver to compare. `hop` counts the
    /// session's messages so far (the opening root is hop 0).
    Nodes { hop: u16, nodes: Vec<(u32, u64)> },
    /// The sender's entries of the listed buckets. With `reply`, the receiver sends back the
    /// entries of those buckets that the sender lacks.
    Entries {
        hop: u16,
        reply: bool,
        buckets: Vec<u32>,
        entries: Vec<(u64, Entry)>,
    },
}

impl Wire for RegistryMessage {
    fn wire_size(&self) -> usize {
        // A header (kind, hop, counts), 12 bytes per (index, hash), 4 per bucket and 28 per
        // entry (key, version, writer, value).
        match self {
            RegistryMessage::Nodes { nodes, .. } => 8 + 12 * nodes.len(),
            RegistryMessage::Entries {
                buckets, entries, ..
            } => 8 + 4 * buckets.len() + 28 * entries.len(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RegistryTimer {
    AntiEntropy,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistryCommand {
    /// A local write: applied now, reconciled later.
    Write {
        key: u64,
        value: u64,
    },
    /// A write PBFT executed at sequence `seq` (from the consensus layer).
    Agreed {
        key: u64,
        value: u64,
        seq: u64,
    },
    /// Open a session with this peer now (it came back after a partition).
    Reconcile(NodeId),
    AddPeer(NodeId),
    RemovePeer(NodeId),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistryEvent {
    /// The state root changed (a write or a merge).
    Root(u64),
    /// A local write was refused: the registry holds `keys_max` keys.
    Full,
    /// A session ended at this node: it found the trees equal at the root, or merged the
    /// entries that ended it.
    SessionEnded {
        /// Messages exchanged in the session (both directions).
        messages: u16,
        /// Whether the trees were equal at the root.
        in_sync: bool,
    },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryStats {
    pub writes: u64,
    pub agreed: u64,
    pub sessions: u64,
    pub comparisons: u64,
    pub hashes_sent: u64,
    pub entries_sent: u64,
    /// Entries that changed this node's map when merged from a peer.
    pub repaired: u64,
    /// Differing nodes left for a later session because a message was full.
    pub truncated: u64,
    pub full: u64,
}

pub struct Registry {
    config: RegistryConfig,
    id: NodeId,
    /// Entries by (bucket, key), so a bucket's entries are one range.
    entries: BTreeMap<(u32, u64), Entry>,
    tree: Merkle,
    /// The largest version seen (the Lamport clock of local writes).
    clock: u64,
    peers: Vec<NodeId>,
    stats: RegistryStats,
}

impl Registry {
    pub fn new(config: RegistryConfig, id: NodeId) -> Self {
        let mut peers: Vec<NodeId> = config
            .seeds
            .iter()
            .copied()
            .filter(|&p| p != id)
            .take(config.peers_max)
            .collect();
        peers.sort_unstable();
        peers.dedup();
        Registry {
            tree: Merkle::new(config.depth),
            config,
            id,
            entries: BTreeMap::new(),
            clock: 0,
            peers,
            stats: RegistryStats::default(),
        }
    }

    pub fn root(&self) -> u64 {
        self.tree.root()
    }

    pub fn stats(&self) -> RegistryStats {
        self.stats
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: u64) -> Option<&Entry> {
        self.entries.get(&(self.tree.bucket_of_key(key), key))
    }

    /// Every entry, by (bucket, key).
    pub fn entries(&self) -> impl Iterator<Item = (u64, &Entry)> {
        self.entries.iter().map(|(&(_, k), e)| (k, e))
    }

    pub fn tree(&self) -> &Merkle {
        &self.tree
    }

    pub fn peers(&self) -> &[NodeId] {
        &self.peers
    }

    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.tree.heap_bytes()
            + self.entries.len() * (8 + std::mem::size_of::<Entry>() + 16)
            + self.peers.capacity() * std::mem::size_of::<NodeId>()
    }

    /// Merges one entry; returns whether the map changed.
    fn merge(&mut self, key: u64, entry: Entry) -> bool {
        self.clock = self.clock.max(entry.version);
        let bucket = self.tree.bucket_of_key(key);
        match self.entries.get_mut(&(bucket, key)) {
            Some(old) => {
                if !self.config.merge.wins(&entry, old) {
                    return false;
                }
                self.tree.toggle(bucket, old.digest(key));
                *old = entry;
            }
            None => {
                if self.entries.len() >= self.config.keys_max {
                    self.stats.full += 1;
                    return false;
                }
                self.entries.insert((bucket, key), entry);
            }
        }
        self.tree.toggle(bucket, entry.digest(key));
        true
    }

    /// A local write: one version past everything seen.
    pub fn write(&mut self, key: u64, value: u64) -> bool {
        let key = key & !AGREED_KEY_BIT;
        let version = self.clock.max(self.get(key).map_or(0, |e| e.version)) + 1;
        self.merge(
            key,
            Entry {
                version,
                writer: self.id,
                value,
            },
        )
    }

    fn open(&mut self, ctx: &mut Context<'_, Self>, peer: NodeId) {
        self.stats.sessions += 1;
        self.stats.hashes_sent += 1;
        ctx.send(
            peer,
            RegistryMessage::Nodes {
                hop: 0,
                nodes: vec![(1, self.tree.root())],
            },
        );
    }

    /// This node's entries in `buckets` that `skip` does not rule out, at most `entries_max`.
    fn entries_of(&self, buckets: &[u32], skip: impl Fn(u64, &Entry) -> bool) -> Vec<(u64, Entry)> {
        buckets
            .iter()
            .flat_map(|&b| self.entries.range((b, 0)..=(b, u64::MAX)))
            .filter(|((_, k), e)| !skip(*k, e))
            .take(self.config.entries_max)
            .map(|(&(_, k), &e)| (k, e))
            .collect()
    }

    fn on_nodes(
        &mut self,
        ctx: &mut Context<'_, Self>,
        from: NodeId,
        hop: u16,
        nodes: Vec<(u32, u64)>,
    ) {
        self.stats.comparisons += nodes.len() as u64;
        let mut differing = self.tree.differing(&nodes);
        let messages = hop.saturating_add(1);
        if differing.is_empty() {
            ctx.emit(RegistryEvent::SessionEnded {
                messages,
                in_sync: hop == 0,
            });
            return;
        }
        if self.tree.is_leaf(differing[0]) {
            if differing.len() > self.config.hashes_max {
                self.stats.truncated += (differing.len() - self.config.hashes_max) as u64;
                differing.truncate(self.config.hashes_max);
            }
            let buckets: Vec<u32> = differing
                .iter()
                .map(|&i| self.tree.bucket_of_leaf(i))
                .collect();
            let entries = self.entries_of(&buckets, |_, _| false);
            self.stats.entries_sent += entries.len() as u64;
            ctx.send(
                from,
                RegistryMessage::Entries {
                    hop: messages,
                    reply: true,
                    buckets,
                    entries,
                },
            );
            return;
        }
        let keep = self.config.hashes_max / 2;
        if differing.len() > keep {
            self.stats.truncated += (differing.len() - keep) as u64;
            differing.truncate(keep.max(1));
        }
        let children = self.tree.children(&differing);
        self.stats.hashes_sent += children.len() as u64;
        ctx.send(
            from,
            RegistryMessage::Nodes {
                hop: messages,
                nodes: children,
            },
        );
    }

    fn on_entries(
        &mut self,
        ctx: &mut Context<'_, Self>,
        from: NodeId,
        hop: u16,
        reply: bool,
        buckets: Vec<u32>,
        entries: Vec<(u64, Entry)>,
    ) {
        let before = self.tree.root();
        let mut changed = 0;
        for &(key, entry) in &entries {
            if self.merge(key, entry) {
                changed += 1;
            }
        }
        self.stats.repaired += changed;
        if self.tree.root() != before {
            ctx.emit(RegistryEvent::Root(self.tree.root()));
        }
        if reply {
            // Send back what the peer lacks: every entry of ours it did not send as it is.
            let theirs: BTreeMap<u64, Entry> = entries.into_iter().collect();
            let back = self.entries_of(&buckets, |k, e| theirs.get(&k) == Some(e));
            if !back.is_empty() {
                self.stats.entries_sent += back.len() as u64;
                ctx.send(
                    from,
                    RegistryMessage::Entries {
                        hop: hop.saturating_add(1),
                        reply: false,
                        buckets,
                        entries: back,
                    },
                );
                return;
            }
        }
        ctx.emit(RegistryEvent::SessionEnded {
            messages: hop.saturating_add(1),
            in_sync: false,
        });
    }

    fn jittered(&self, ctx: &mut Context<'_, Self>) -> Duration {
        let base = self.config.interval.as_nanos();
        let spread = (base / 10).max(1);
        Duration::from_nanos(base - spread / 2 + crate::random::below(ctx.rng(), spread))
    }
}

impl Protocol for Registry {
    type Message = RegistryMessage;
    type Timer = RegistryTimer;
    type Command = RegistryCommand;
    type Event = RegistryEvent;
    type Durable = ();

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        let first = self.jittered(ctx);
        ctx.set_timer(RegistryTimer::AntiEntropy, first);
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: RegistryMessage) {
        match msg {
            RegistryMessage::Nodes { hop, nodes } => self.on_nodes(ctx, from, hop, nodes),
            RegistryMessage::Entries {
                hop,
                reply,
                buckets,
                entries,
            } => self.on_entries(ctx, from, hop, reply, buckets, entries),
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, _timer: RegistryTimer) {
        if !self.peers.is_empty() {
            let i = crate::random::below(ctx.rng(), self.peers.len() as u64) as usize;
            let peer = self.peers[i];
            self.open(ctx, peer);
        }
        let next = self.jittered(ctx);
        ctx.set_timer(RegistryTimer::AntiEntropy, next);
    }

    fn on_command(&mut self, ctx: &mut Context<'_, Self>, cmd: RegistryCommand) {
        match cmd {
            RegistryCommand::Write { key, value } => {
                self.stats.writes += 1;
                if self.write(key, value) {
                    ctx.emit(RegistryEvent::Root(self.tree.root()));
                } else {
                    ctx.emit(RegistryEvent::Full);
                }
            }
            RegistryCommand::Agreed { key, value, seq } => {
                self.stats.agreed += 1;
                let entry = Entry {
                    version: seq,
                    writer: COMMITTEE,
                    value,
                };
                if self.merge(key | AGREED_KEY_BIT, entry) {
                    ctx.emit(RegistryEvent::Root(self.tree.root()));
                }
            }
            RegistryCommand::Reconcile(peer) if peer != self.id => self.open(ctx, peer),
            RegistryCommand::Reconcile(_) => {}
            RegistryCommand::AddPeer(peer) => {
                if peer != self.id
                    && self.peers.len() < self.config.peers_max
                    && let Err(at) = self.peers.binary_search(&peer)
                {
                    self.peers.insert(at, peer);
                }
            }
            RegistryCommand::RemovePeer(peer) => {
                // Seeds stay: they are the only peers a node without discovery has.
                if !self.config.seeds.contains(&peer)
                    && let Ok(at) = self.peers.binary_search(&peer)
                {
                    self.peers.remove(at);
                }
            }
        }
    }

    fn check(&self, from: NodeId, msg: &RegistryMessage) -> Result<(), DropReason> {
        if from == self.id {
            return Err(DropReason::Unexpected);
        }
        match msg {
            RegistryMessage::Nodes { nodes, .. } => {
                if nodes.is_empty() {
                    return Err(DropReason::Malformed);
                }
                if nodes.len() > self.config.hashes_max.max(1) {
                    return Err(DropReason::Oversized);
                }
                // Every node exists and all are on one level.
                let level = self.tree.level(nodes[0].0).ok_or(DropReason::Malformed)?;
                if nodes
                    .iter()
                    .any(|&(i, _)| self.tree.level(i) != Some(level))
                {
                    return Err(DropReason::Malformed);
                }
            }
            RegistryMessage::Entries {
                buckets, entries, ..
            } => {
                if buckets.len() > self.config.hashes_max.max(1)
                    || entries.len() > self.config.entries_max
                {
                    return Err(DropReason::Oversized);
                }
                if buckets.iter().any(|&b| b >= self.tree.buckets())
                    || buckets.windows(2).any(|w| w[0] >= w[1])
                {
                    return Err(DropReason::Malformed);
                }
                // Every entry belongs to a listed bucket, and only the committee writes agreed keys.
                let listed = |k: u64| buckets.contains(&self.tree.bucket_of_key(k));
                if entries.iter().any(|(k, e)| {
                    !listed(*k) || ((k & AGREED_KEY_BIT != 0) != (e.writer == COMMITTEE))
                }) {
                    return Err(DropReason::Malformed);
                }
            }
        }
        Ok(())
    }
}

/// The registry as a layer: it reconciles with discovery's neighbours, applies the writes PBFT
/// executed, and opens a session at once with each peer the partition layer saw come back.
impl crate::layer::Layer for Registry {
    const NAME: &'static str = "registry";

    fn on_notice(&self, notice: crate::layer::Notice) -> Option<RegistryCommand> {
        use crate::layer::Notice;
        match notice {
            Notice::NeighborAdded(p) => Some(RegistryCommand::AddPeer(p)),
            Notice::NeighborRemoved(p) => Some(RegistryCommand::RemovePeer(p)),
            Notice::Reconnected(p) => Some(RegistryCommand::Reconcile(p)),
            Notice::Agreed { op, seq } => Some(RegistryCommand::Agreed {
                key: op,
                value: op,
                seq,
            }),
            _ => None,
        }
    }

    fn memory_bytes(&self) -> usize {
        Registry::memory_bytes(self)
    }
}
