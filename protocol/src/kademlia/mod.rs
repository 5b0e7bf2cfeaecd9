//! Kademlia (Maymounkov and Mazieres, IPTPS 2002) with bootstrap and peer exchange, sans-IO.
//!
//! - Ids are 256-bit keys derived from the node's key; distance is XOR; the routing table keeps
//!   up to k contacts per bucket, least recently seen first. A full bucket pings its head before
//!   evicting it for a newcomer (long-lived contacts are preferred).
//! - Lookups are iterative FIND_NODE with alpha requests in flight, each with a timeout; a
//!   lookup ends when the k closest contacts it knows have all answered. A contact that times out
//!   is removed from the routing table.
//! - Joining: insert the bootstrap contacts, look up the own key, then refresh every bucket
//!   farther than the closest neighbour (a lookup of a random key in its range). Buckets no
//!   lookup touched for `refresh_interval` are refreshed the same way.
//! - Peer exchange: every `pex_interval` a node asks a random contact for a bounded list of
//!   referrals and keeps those that fit in non-full buckets, so discovery also works without
//!   DHT lookups (`dht: false`).
//! - Adversaries ([`Attack`]): silent nodes, liars that answer with colluders or with contacts
//!   that do not exist, Sybil identities ground near a target's id, and eclipse attackers that
//!   push themselves into a victim's table. A node's id is checked against the key it proves
//!   (`check`), and an answer counts only from the contact that was asked.

mod table;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

pub use table::{Contact, Key, RoutingTable, Seen};

use crate::contract::{Context, DropReason, Protocol};
use crate::{Duration, NodeId, Time, Wire};

/// Parameters; `profile` names sets that match published deployments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KadConfig {
    pub k: usize,
    pub alpha: usize,
    pub request_timeout: Duration,
    pub refresh_interval: Duration,
    /// Whether nodes run DHT lookups (join, refresh); without, only bootstrap and peer exchange.
    pub dht: bool,
    pub pex_interval: Option<Duration>,
    /// Referrals per peer-exchange answer.
    pub pex_max: usize,
    /// Nodes start joining at a random moment within this window (bootstrap nodes at once).
    pub join_spread: Duration,
    pub bootstrap: Arc<Vec<NodeId>>,
    pub key_seed: u64,
    /// Lookups a node runs at once; more are refused and counted.
    pub lookups_max: usize,
    /// A contact leaves the routing table after this many requests in a row went unanswered
    /// (any message from it resets the count). Not from the paper, which evicts only a full
    /// bucket's unresponsive head; 1 evicts on the first timeout.
    pub stale_after: u8,
    /// Byzantine nodes, their ground ids and what they do (empty: everyone honest).
    pub attack: Arc<Attack>,
}

impl KadConfig {
    /// The id `node` proves: derived from its key, or the one an attacker ground.
    pub fn key_of(&self, node: NodeId) -> Key {
        match self.attack.keys.get(&node) {
            Some(&k) => k,
            None => Key::of(node, self.key_seed),
        }
    }
}

/// A Byzantine behaviour of this layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KadBehavior {
    /// Receives everything and answers nothing (a silent bootstrap node, a black hole).
    Silent,
    /// Answers FIND_NODE and peer exchange with the colluders closest to the target.
    LieColluders,
    /// Answers with contacts that do not exist: ids closer to the target than any real node,
    /// at addresses nobody holds.
    LieNonexistent,
    /// Pings `victim` every `request_timeout` so it enters the victim's table, and answers
    /// everyone with colluders.
    Eclipse { victim: NodeId },
}

impl KadBehavior {
    pub fn name(self) -> &'static str {
        match self {
            KadBehavior::Silent => "silent",
            KadBehavior::LieColluders => "dht_liar",
            KadBehavior::LieNonexistent => "dht_liar_nonexistent",
            KadBehavior::Eclipse { .. } => "eclipse",
        }
    }
}

/// Who misbehaves, how and when, and the ids attackers ground.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attack {
    /// Ids chosen by the attacker instead of derived from a fresh key (Sybils, eclipsers).
    pub keys: BTreeMap<NodeId, Key>,
    /// Per node: behaviours and their windows `[from, until)`.
    pub roles: BTreeMap<NodeId, Vec<(KadBehavior, Time, Time)>>,
    /// Every attacker's contact, for liars to hand out.
    pub colluders: Vec<Contact>,
}

impl Attack {
    pub fn is_adversary(&self, node: NodeId) -> bool {
        self.roles.contains_key(&node) || self.keys.contains_key(&node)
    }
}

impl KadConfig {
    /// Maymounkov and Mazieres (2002): k = 20, alpha = 3, buckets refreshed hourly.
    pub fn kademlia() -> Self {
        KadConfig {
            k: 20,
            alpha: 3,
            request_timeout: Duration::from_millis(1_000),
            refresh_interval: Duration::from_secs(3_600),
            dht: true,
            pex_interval: None,
            pex_max: 16,
            join_spread: Duration::ZERO,
            bootstrap: Arc::new(Vec::new()),
            key_seed: 0x6b61_646d,
            lookups_max: 64,
            stale_after: 3,
            attack: Arc::new(Attack::default()),
        }
    }

    /// go-ethereum's discv4 table: buckets of 16, alpha 3, 500 ms replies, refresh every 30 min.
    pub fn ethereum() -> Self {
        KadConfig {
            k: 16,
            request_timeout: Duration::from_millis(500),
            refresh_interval: Duration::from_secs(1_800),
            ..Self::kademlia()
        }
    }

    /// go-libp2p-kad-dht (IPFS): k = 20, alpha = 10, refresh every 10 min.
    pub fn ipfs() -> Self {
        KadConfig {
            alpha: 10,
            request_timeout: Duration::from_millis(10_000),
            refresh_interval: Duration::from_secs(600),
            ..Self::kademlia()
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KadMessage {
    Ping {
        nonce: u64,
        key: Key,
    },
    Pong {
        nonce: u64,
        key: Key,
    },
    FindNode {
        nonce: u64,
        key: Key,
        target: Key,
    },
    Nodes {
        nonce: u64,
        key: Key,
        contacts: Vec<Contact>,
    },
    PexRequest {
        nonce: u64,
        key: Key,
    },
    PexReply {
        nonce: u64,
        key: Key,
        contacts: Vec<Contact>,
    },
}

impl KadMessage {
    fn sender(&self) -> Key {
        match self {
            KadMessage::Ping { key, .. }
            | KadMessage::Pong { key, .. }
            | KadMessage::FindNode { key, .. }
            | KadMessage::Nodes { key, .. }
            | KadMessage::PexRequest { key, .. }
            | KadMessage::PexReply { key, .. } => *key,
        }
    }
}

/// Header (type, nonce, sender id) and 36 bytes per contact (id and address).
impl Wire for KadMessage {
    fn wire_size(&self) -> usize {
        let contacts = match self {
            KadMessage::Nodes { contacts, .. } | KadMessage::PexReply { contacts, .. } => {
                contacts.len()
            }
            KadMessage::FindNode { .. } => 1,
            _ => 0,
        };
        48 + contacts * 36
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KadTimer {
    Join,
    /// An eclipse attacker's next push at its victim.
    Attack,
    /// The earliest outstanding request is due.
    Requests,
    Refresh,
    Pex,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub enum KadCommand {
    /// Look up `target`; `node` is the node that owns it, if any (for the hop count).
    Lookup { target: Key, node: Option<NodeId> },
    /// Another layer saw this node (e.g. local discovery): insert it if its bucket has room.
    Offer(NodeId),
    /// Another layer found this node dead (e.g. failure detection): drop it from the table.
    Forget(NodeId),
    /// Forget this node for good (proven Byzantine).
    Ban(NodeId),
}

/// Why a lookup ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Purpose {
    Join,
    Refresh,
    Query,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KadEvent {
    /// The node starts joining (at once for bootstrap nodes, else within `join_spread`).
    JoinStarted,
    /// The first answer from any peer.
    FirstPeer,
    /// The routing table reached k contacts.
    KPeers,
    /// The join lookups (own key, then every farther bucket) are done.
    Joined { contacts: usize },
    LookupDone {
        purpose: Purpose,
        target: Key,
        /// Longest chain of queries (each answer's contacts are queried one round deeper).
        rounds: u32,
        /// The round that first learned the owner of the target, if it was found.
        hops: Option<u32>,
        queries: u32,
        timeouts: u32,
        latency: Duration,
        /// The k closest contacts that answered, closest first.
        closest: Vec<NodeId>,
    },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KadStats {
    pub requests_sent: u64,
    pub timeouts: u64,
    pub evictions: u64,
    pub contacts_dropped: u64,
    pub lookups_refused: u64,
    pub unsolicited: u64,
    pub pex_added: u64,
    /// Answers from a node other than the contact asked (its proven id differs).
    pub mismatched: u64,
    /// Contacts dropped because another layer found them dead.
    pub forgotten: u64,
    /// Lies told (answers with made-up contacts) and pushes at a victim, by attackers.
    pub lies: u64,
    /// Join attempts that reached nobody and were retried.
    pub join_retries: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum CandState {
    Fresh,
    InFlight,
    Answered,
    Failed,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Candidate {
    contact: Contact,
    state: CandState,
    /// The round in which this candidate is (or would be) queried.
    depth: u32,
    /// Queried whatever its distance (a join asks its bootstrap nodes).
    must: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Lookup {
    purpose: Purpose,
    target: Key,
    owner: Option<NodeId>,
    started: Time,
    candidates: Vec<Candidate>,
    in_flight: usize,
    rounds: u32,
    hops: Option<u32>,
    queries: u32,
    timeouts: u32,
    /// Whether some candidate is marked `must` (a join's bootstrap nodes). They are all sent
    /// at the lookup's first step and never become fresh again, so later steps skip the scan.
    musts: bool,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
enum Pending {
    Find {
        lookup: u64,
        key: Key,
    },
    /// A liveness check of a bucket's head.
    Ping {
        head: Key,
    },
    Pex,
}

/// Candidates a lookup keeps (the closest win).
const CANDIDATES_MAX_FACTOR: usize = 4;
/// How long a node whose join found nobody waits before it tries its bootstrap nodes again.
const JOIN_RETRY: Duration = Duration::from_secs(5);
/// Timed-out find requests whose late answers are still accepted.
const LATE_MAX: usize = 256;

pub struct Kademlia {
    config: KadConfig,
    id: NodeId,
    me: Key,
    table: RoutingTable,
    /// nonce -> (deadline, destination, what it was for).
    requests: BTreeMap<u64, (Time, NodeId, Pending)>,
    /// Find requests that timed out, still welcome if their answer arrives late (the paper:
    /// "removed from consideration until and unless they do respond"); the newest are kept.
    late: BTreeMap<u64, (NodeId, u64, Key)>,
    /// Unanswered requests in a row, by contact.
    failures: BTreeMap<Key, u8>,
    /// Nodes proven Byzantine (the detection layer): never in the table again.
    banned: std::collections::BTreeSet<NodeId>,
    lookups: BTreeMap<u64, Lookup>,
    next_nonce: u64,
    joining: usize,
    joined: bool,
    had_first_peer: bool,
    had_k_peers: bool,
    stats: KadStats,
}

impl Kademlia {
    pub fn new(config: KadConfig, id: NodeId) -> Self {
        let me = config.key_of(id);
        let k = config.k;
        Kademlia {
            config,
            id,
            me,
            table: RoutingTable::new(me, k),
            requests: BTreeMap::new(),
            late: BTreeMap::new(),
            failures: BTreeMap::new(),
            banned: std::collections::BTreeSet::new(),
            lookups: BTreeMap::new(),
            next_nonce: 1,
            joining: 0,
            joined: false,
            had_first_peer: false,
            had_k_peers: false,
            stats: KadStats::default(),
        }
    }

    pub fn key(&self) -> Key {
        self.me
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Whether the join lookups are done.
    pub fn joined(&self) -> bool {
        self.joined
    }

    pub fn table(&self) -> &RoutingTable {
        &self.table
    }

    pub fn stats(&self) -> KadStats {
        self.stats
    }

    /// Bytes of protocol state (routing table, outstanding requests and lookups).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.table.memory_bytes()
            + self.requests.len() * 64
            + self
                .lookups
                .values()
                .map(|l| 128 + l.candidates.capacity() * std::mem::size_of::<Candidate>())
                .sum::<usize>()
    }

    fn contact(&self, node: NodeId) -> Contact {
        Contact {
            key: self.config.key_of(node),
            node,
        }
    }

    /// Keeps a journal of routing-table changes for [`Kademlia::take_changes`].
    pub fn keep_journal(&mut self) {
        self.table.keep_journal();
    }

    /// Contacts added (true) and removed (false) since the last call.
    pub fn take_changes(&mut self) -> Vec<(NodeId, bool)> {
        self.table.take_changes()
    }

    /// The behaviour this node shows at `now`, if it is an attacker.
    fn behavior(&self, now: Time) -> Option<KadBehavior> {
        let roles = self.config.attack.roles.get(&self.id)?;
        roles
            .iter()
            .find(|(_, from, until)| *from <= now && now < *until)
            .map(|(b, _, _)| *b)
    }

    /// The made-up answer an attacker gives for `target`, or `None` to answer honestly.
    fn lie(
        &mut self,
        ctx: &mut Context<'_, Self>,
        target: Key,
        asker: NodeId,
    ) -> Option<Vec<Contact>> {
        let k = self.config.k;
        let contacts = match self.behavior(ctx.now())? {
            KadBehavior::Silent => return None,
            KadBehavior::LieColluders | KadBehavior::Eclipse { .. } => {
                let mut c: Vec<Contact> = self
                    .config
                    .attack
                    .colluders
                    .iter()
                    .copied()
                    .filter(|c| c.node != asker)
                    .collect();
                c.sort_by_key(|c| c.key.distance(target));
                c.truncate(k);
                c
            }
            KadBehavior::LieNonexistent => (0..k)
                .map(|_| {
                    // Within 2^32 of the target: closer than any real node in practice.
                    let key = target.random_in_bucket(31, ctx.rng());
                    let node = NodeId(u32::MAX - (crate::random::below(ctx.rng(), 1 << 20) as u32));
                    Contact { key, node }
                })
                .collect(),
        };
        self.stats.lies += 1;
        Some(contacts)
    }

    fn nonce(&mut self) -> u64 {
        self.next_nonce += 1;
        self.next_nonce
    }

    fn request(&mut self, ctx: &mut Context<'_, Self>, to: NodeId, msg: KadMessage, p: Pending) {
        let nonce = match &msg {
            KadMessage::Ping { nonce, .. }
            | KadMessage::FindNode { nonce, .. }
            | KadMessage::PexRequest { nonce, .. } => *nonce,
            _ => return,
        };
        let deadline = ctx.now() + self.config.request_timeout;
        let was_idle = self.requests.is_empty();
        self.requests.insert(nonce, (deadline, to, p));
        self.stats.requests_sent += 1;
        // A silent node sends nothing; its own requests simply time out.
        if self.behavior(ctx.now()) != Some(KadBehavior::Silent) {
            ctx.send(to, msg);
        }
        // Deadlines grow with the nonce (one timeout for all), so the first request is the
        // earliest; a later one never needs the timer moved.
        if was_idle {
            self.arm_requests(ctx);
        }
    }

    fn arm_requests(&self, ctx: &mut Context<'_, Self>) {
        if let Some((_, &(earliest, _, _))) = self.requests.first_key_value() {
            let now = ctx.now();
            let wait = if earliest > now {
                earliest - now
            } else {
                Duration::ZERO
            };
            ctx.set_timer(KadTimer::Requests, wait);
        }
    }

    /// Any message from `c` refreshes it in the routing table (or inserts it, or starts the
    /// liveness check of its full bucket's head).
    fn heard(&mut self, ctx: &mut Context<'_, Self>, c: Contact) {
        if !self.failures.is_empty() {
            self.failures.remove(&c.key);
        }
        match self.table.seen(c) {
            Seen::CheckHead(head) => {
                let nonce = self.nonce();
                self.table.set_pending(c, nonce);
                let msg = KadMessage::Ping {
                    nonce,
                    key: self.me,
                };
                self.request(ctx, head.node, msg, Pending::Ping { head: head.key });
            }
            Seen::Dropped => self.stats.contacts_dropped += 1,
            Seen::Inserted | Seen::Refreshed | Seen::Me => {}
        }
        self.progress(ctx);
    }

    fn progress(&mut self, ctx: &mut Context<'_, Self>) {
        if !self.had_k_peers && self.table.len() >= self.config.k {
            self.had_k_peers = true;
            ctx.emit(KadEvent::KPeers);
        }
    }

    fn join(&mut self, ctx: &mut Context<'_, Self>) {
        ctx.emit(KadEvent::JoinStarted);
        let me = ctx.id();
        for &b in self.config.bootstrap.clone().iter() {
            if b != me {
                let c = self.contact(b);
                self.table.offer(c);
            }
        }
        if self.config.dht {
            self.joining = 1;
            self.start_lookup(ctx, self.me, None, Purpose::Join);
        } else {
            // Without lookups, a node has joined once it knows its bootstrap contacts.
            self.check_joined(ctx);
        }
        if let Some(every) = self.config.pex_interval {
            self.exchange(ctx);
            ctx.set_timer(KadTimer::Pex, every);
        }
        if self.config.dht {
            ctx.set_timer(KadTimer::Refresh, self.config.refresh_interval);
        }
    }

    fn start_lookup(
        &mut self,
        ctx: &mut Context<'_, Self>,
        target: Key,
        owner: Option<NodeId>,
        purpose: Purpose,
    ) {
        if self.lookups.len() >= self.config.lookups_max {
            self.stats.lookups_refused += 1;
            return;
        }
        let seeds = self.table.closest(target, self.config.k);
        let id = self.nonce();
        // The owner already in the own table is found in zero hops.
        let hops = owner
            .filter(|o| seeds.iter().any(|c| c.node == *o))
            .map(|_| 0);
        let lookup = Lookup {
            purpose,
            target,
            owner,
            started: ctx.now(),
            candidates: seeds
                .into_iter()
                .map(|contact| Candidate {
                    contact,
                    state: CandState::Fresh,
                    depth: 1,
                    must: false,
                })
                .collect(),
            in_flight: 0,
            rounds: 0,
            hops,
            queries: 0,
            timeouts: 0,
            musts: false,
        };
        if let Some(b) = self.me.bucket(target) {
            self.table.touch(b, ctx.now());
        }
        let mut lookup = lookup;
        if purpose == Purpose::Join {
            // A join always asks its bootstrap nodes: the contacts it has may be as new as it is
            // (local peers found at the same moment), an island that a lookup among them alone
            // would never leave.
            for &b in self.config.bootstrap.iter().filter(|&&b| b != self.id) {
                let key = self.config.key_of(b);
                lookup.musts = true;
                match lookup.candidates.iter_mut().find(|c| c.contact.key == key) {
                    Some(c) => c.must = true,
                    None => lookup.candidates.push(Candidate {
                        contact: Contact { key, node: b },
                        state: CandState::Fresh,
                        depth: 1,
                        must: true,
                    }),
                }
            }
            lookup
                .candidates
                .sort_by_key(|c| c.contact.key.distance(target));
        }
        self.lookups.insert(id, lookup);
        self.step_lookup(ctx, id);
    }

    /// Keeps alpha queries in flight among the k closest candidates; finishes when those have
    /// all answered (or failed) and nothing is in flight.
    fn step_lookup(&mut self, ctx: &mut Context<'_, Self>, id: u64) {
        let (k, alpha) = (self.config.k, self.config.alpha);
        let mut to_send = Vec::new();
        let done = {
            let Some(l) = self.lookups.get_mut(&id) else {
                return;
            };
            if std::mem::take(&mut l.musts) {
                for c in l
                    .candidates
                    .iter_mut()
                    .filter(|c| c.must && c.state == CandState::Fresh)
                {
                    c.state = CandState::InFlight;
                    l.in_flight += 1;
                    l.queries += 1;
                    l.rounds = l.rounds.max(c.depth);
                    to_send.push((c.contact, c.depth));
                }
            }
            let mut considered = 0;
            for c in l.candidates.iter_mut() {
                if considered >= k || l.in_flight >= alpha {
                    break;
                }
                match c.state {
                    CandState::Failed => continue,
                    CandState::Fresh => {
                        c.state = CandState::InFlight;
                        l.in_flight += 1;
                        l.queries += 1;
                        l.rounds = l.rounds.max(c.depth);
                        to_send.push((c.contact, c.depth));
                    }
                    CandState::InFlight | CandState::Answered => {}
                }
                considered += 1;
            }
            let pending_in_top = l
                .candidates
                .iter()
                .filter(|c| c.state != CandState::Failed)
                .take(k)
                .any(|c| c.state != CandState::Answered);
            l.in_flight == 0 && !pending_in_top
        };
        for (contact, _) in to_send {
            let nonce = self.nonce();
            let target = self.lookups.get(&id).map_or(self.me, |l| l.target);
            let msg = KadMessage::FindNode {
                nonce,
                key: self.me,
                target,
            };
            let pending = Pending::Find {
                lookup: id,
                key: contact.key,
            };
            self.request(ctx, contact.node, msg, pending);
        }
        if done {
            self.finish_lookup(ctx, id);
        }
    }

    fn finish_lookup(&mut self, ctx: &mut Context<'_, Self>, id: u64) {
        let Some(l) = self.lookups.remove(&id) else {
            return;
        };
        let closest: Vec<NodeId> = l
            .candidates
            .iter()
            .filter(|c| c.state == CandState::Answered)
            .take(self.config.k)
            .map(|c| c.contact.node)
            .collect();
        ctx.emit(KadEvent::LookupDone {
            purpose: l.purpose,
            target: l.target,
            rounds: l.rounds,
            hops: l.hops,
            queries: l.queries,
            timeouts: l.timeouts,
            latency: ctx.now() - l.started,
            closest,
        });
        match l.purpose {
            // Nobody of those it knew answered the join (a dead or silent bootstrap): try
            // again later. A first bootstrap node, knowing nobody, has simply joined.
            Purpose::Join
                if !l.candidates.is_empty()
                    && !l.candidates.iter().any(|c| c.state == CandState::Answered) =>
            {
                self.joining = 0;
                self.stats.join_retries += 1;
                ctx.set_timer(KadTimer::Join, JOIN_RETRY);
            }
            Purpose::Join => {
                // Refresh every bucket farther than the closest neighbour.
                let nearest = self
                    .table
                    .closest(self.me, 1)
                    .first()
                    .and_then(|c| self.me.bucket(c.key));
                self.joining -= 1;
                if let Some(nearest) = nearest {
                    for b in nearest.saturating_add(1)..=255 {
                        let target = self.me.random_in_bucket(b, ctx.rng());
                        self.joining += 1;
                        let before = self.lookups.len();
                        self.start_lookup(ctx, target, None, Purpose::Refresh);
                        if self.lookups.len() == before {
                            self.joining -= 1;
                        }
                        if b == 255 {
                            break;
                        }
                    }
                }
                self.check_joined(ctx);
            }
            Purpose::Refresh if !self.joined => {
                self.joining = self.joining.saturating_sub(1);
                self.check_joined(ctx);
            }
            Purpose::Refresh | Purpose::Query => {}
        }
    }

    fn check_joined(&mut self, ctx: &mut Context<'_, Self>) {
        if !self.joined && self.joining == 0 {
            self.joined = true;
            ctx.emit(KadEvent::Joined {
                contacts: self.table.len(),
            });
        }
    }

    fn on_nodes(
        &mut self,
        ctx: &mut Context<'_, Self>,
        lookup: u64,
        from: Key,
        contacts: Vec<Contact>,
    ) {
        let k = self.config.k;
        let me = self.me;
        let Some(l) = self.lookups.get_mut(&lookup) else {
            return;
        };
        let target = l.target;
        let Some(i) = l.candidates.iter().position(|c| c.contact.key == from) else {
            return;
        };
        let depth = l.candidates[i].depth;
        match l.candidates[i].state {
            CandState::InFlight => l.in_flight -= 1,
            CandState::Failed => {}
            // A duplicate answer.
            CandState::Answered | CandState::Fresh => return,
        }
        l.candidates[i].state = CandState::Answered;
        // The candidates are sorted by distance to the target (a lookup keeps them so). The new
        // contacts are sorted too (the first of equal keys kept), those already candidates are
        // dropped in one pass, and the rest merged in: the list a sort of all of them gives.
        let mut fresh = contacts;
        fresh.retain(|c| c.key != me);
        if let Some(owner) = l.owner
            && l.hops.is_none()
            && fresh.iter().any(|c| c.node == owner)
        {
            l.hops = Some(depth);
        }
        fresh.sort_by_key(|c| c.key.distance(target));
        fresh.dedup_by_key(|c| c.key);
        let old = l.candidates.len();
        let mut at = 0;
        fresh.retain(|c| {
            let d = c.key.distance(target);
            while at < old && l.candidates[at].contact.key.distance(target) < d {
                at += 1;
            }
            !(at < old && l.candidates[at].contact.key == c.key)
        });
        let candidate = |contact: Contact| Candidate {
            contact,
            state: CandState::Fresh,
            depth: depth + 1,
            must: false,
        };
        for &c in &fresh {
            l.candidates.push(candidate(c));
        }
        // Merge from the back: the farther of the two runs' tails goes last.
        let (mut a, mut b) = (old, fresh.len());
        let mut at = l.candidates.len();
        while b > 0 {
            at -= 1;
            if a > 0
                && l.candidates[a - 1].contact.key.distance(target)
                    > fresh[b - 1].key.distance(target)
            {
                a -= 1;
                l.candidates[at] = l.candidates[a];
            } else {
                b -= 1;
                l.candidates[at] = candidate(fresh[b]);
            }
        }
        // Bound the candidate list; what is in flight stays.
        let max = k * CANDIDATES_MAX_FACTOR;
        if l.candidates.len() > max {
            let mut kept = 0;
            l.candidates.retain(|c| {
                kept += 1;
                kept <= max || c.state == CandState::InFlight
            });
        }
        self.step_lookup(ctx, lookup);
    }

    /// Counts a failure of `key`; removes it from the table at `stale_after` in a row.
    fn failed(&mut self, key: Key) {
        let count = self.failures.entry(key).or_insert(0);
        *count = count.saturating_add(1);
        if *count >= self.config.stale_after {
            self.failures.remove(&key);
            if self.table.remove(key) {
                self.stats.evictions += 1;
            }
        }
    }

    fn on_timeout(&mut self, ctx: &mut Context<'_, Self>, to: NodeId, nonce: u64, p: Pending) {
        self.stats.timeouts += 1;
        match p {
            Pending::Find { lookup, key } => {
                self.failed(key);
                if self.late.len() >= LATE_MAX {
                    self.late.pop_first();
                }
                self.late.insert(nonce, (to, lookup, key));
                if let Some(l) = self.lookups.get_mut(&lookup) {
                    if let Some(c) = l.candidates.iter_mut().find(|c| c.contact.key == key)
                        && c.state == CandState::InFlight
                    {
                        c.state = CandState::Failed;
                        l.in_flight -= 1;
                    }
                    l.timeouts += 1;
                }
                self.step_lookup(ctx, lookup);
            }
            Pending::Ping { head } => {
                if self.table.evict_for_pending(head) {
                    self.stats.evictions += 1;
                }
            }
            Pending::Pex => self.failed(self.config.key_of(to)),
        }
    }

    fn exchange(&mut self, ctx: &mut Context<'_, Self>) {
        let pick = self.table.sample(1, ctx.rng());
        if let Some(peer) = pick.first() {
            let nonce = self.nonce();
            let msg = KadMessage::PexRequest {
                nonce,
                key: self.me,
            };
            self.request(ctx, peer.node, msg, Pending::Pex);
        }
    }
}

impl Protocol for Kademlia {
    type Message = KadMessage;
    type Timer = KadTimer;
    type Command = KadCommand;
    type Event = KadEvent;
    type Durable = ();

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        if let Some(roles) = self.config.attack.roles.get(&self.id)
            && roles
                .iter()
                .any(|(b, _, _)| matches!(b, KadBehavior::Eclipse { .. }))
        {
            ctx.set_timer(KadTimer::Attack, self.config.request_timeout);
        }
        let me = ctx.id();
        let spread = self.config.join_spread.as_nanos();
        if self.config.bootstrap.contains(&me) || spread == 0 {
            self.join(ctx);
        } else {
            let at = crate::random::below(ctx.rng(), spread);
            ctx.set_timer(KadTimer::Join, Duration::from_nanos(at));
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: KadMessage) {
        if self.behavior(ctx.now()) == Some(KadBehavior::Silent) {
            return;
        }
        let sender = Contact {
            key: msg.sender(),
            node: from,
        };
        if !self.had_first_peer
            && matches!(
                msg,
                KadMessage::Pong { .. } | KadMessage::Nodes { .. } | KadMessage::PexReply { .. }
            )
        {
            self.had_first_peer = true;
            ctx.emit(KadEvent::FirstPeer);
        }
        match msg {
            KadMessage::Ping { nonce, .. } => {
                ctx.send(
                    from,
                    KadMessage::Pong {
                        nonce,
                        key: self.me,
                    },
                );
            }
            KadMessage::FindNode { nonce, target, .. } => {
                if let Some(contacts) = self.lie(ctx, target, from) {
                    let msg = KadMessage::Nodes {
                        nonce,
                        key: self.me,
                        contacts,
                    };
                    ctx.send(from, msg);
                    return;
                }
                let contacts: Vec<Contact> = self
                    .table
                    .closest(target, self.config.k + 1)
                    .into_iter()
                    .filter(|c| c.key != sender.key)
                    .take(self.config.k)
                    .collect();
                ctx.send(
                    from,
                    KadMessage::Nodes {
                        nonce,
                        key: self.me,
                        contacts,
                    },
                );
            }
            KadMessage::PexRequest { nonce, .. } => {
                let contacts = match self.lie(ctx, sender.key, from) {
                    Some(mut lies) => {
                        lies.truncate(self.config.pex_max);
                        lies
                    }
                    None => self.table.sample(self.config.pex_max, ctx.rng()),
                };
                ctx.send(
                    from,
                    KadMessage::PexReply {
                        nonce,
                        key: self.me,
                        contacts,
                    },
                );
            }
            KadMessage::Pong { nonce, .. } => match self.requests.remove(&nonce) {
                Some((_, _, Pending::Ping { head })) => self.table.clear_pending(head),
                Some(_) | None => self.stats.unsolicited += 1,
            },
            KadMessage::Nodes {
                nonce, contacts, ..
            } => match self.requests.remove(&nonce) {
                Some((_, to, Pending::Find { lookup, key })) if to == from => {
                    if key != sender.key {
                        // Someone else answers at that address: the contact was made up.
                        self.stats.mismatched += 1;
                        self.on_timeout(ctx, to, nonce, Pending::Find { lookup, key });
                        return;
                    }
                    self.heard(ctx, sender);
                    self.on_nodes(ctx, lookup, key, contacts);
                    return;
                }
                _ => match self.late.remove(&nonce) {
                    Some((to, lookup, key)) if to == from && key == sender.key => {
                        self.heard(ctx, sender);
                        self.on_nodes(ctx, lookup, key, contacts);
                        return;
                    }
                    _ => self.stats.unsolicited += 1,
                },
            },
            KadMessage::PexReply {
                nonce, contacts, ..
            } => match self.requests.remove(&nonce) {
                Some((_, to, Pending::Pex)) if to == from => {
                    for c in contacts {
                        if !self.banned.contains(&c.node) && self.table.offer(c) {
                            self.stats.pex_added += 1;
                        }
                    }
                }
                _ => self.stats.unsolicited += 1,
            },
        }
        self.heard(ctx, sender);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: KadTimer) {
        match timer {
            KadTimer::Join => self.join(ctx),
            KadTimer::Attack => {
                if let Some(KadBehavior::Eclipse { victim }) = self.behavior(ctx.now()) {
                    self.stats.lies += 1;
                    let nonce = self.nonce();
                    ctx.send(
                        victim,
                        KadMessage::Ping {
                            nonce,
                            key: self.me,
                        },
                    );
                }
                ctx.set_timer(KadTimer::Attack, self.config.request_timeout);
            }
            KadTimer::Requests => {
                let now = ctx.now();
                let due: Vec<u64> = self
                    .requests
                    .iter()
                    .take_while(|(_, r)| r.0 <= now)
                    .map(|(&n, _)| n)
                    .collect();
                for nonce in due {
                    if let Some((_, to, p)) = self.requests.remove(&nonce) {
                        self.on_timeout(ctx, to, nonce, p);
                    }
                }
                self.arm_requests(ctx);
            }
            KadTimer::Refresh => {
                let before = ctx.now().saturating_since(Time::ZERO);
                let cutoff = Time(
                    before
                        .as_nanos()
                        .saturating_sub(self.config.refresh_interval.as_nanos()),
                );
                for b in self.table.stale_buckets(cutoff) {
                    let target = self.me.random_in_bucket(b, ctx.rng());
                    self.start_lookup(ctx, target, None, Purpose::Refresh);
                }
                ctx.set_timer(KadTimer::Refresh, self.config.refresh_interval);
            }
            KadTimer::Pex => {
                self.exchange(ctx);
                if let Some(every) = self.config.pex_interval {
                    ctx.set_timer(KadTimer::Pex, every);
                }
            }
        }
    }

    fn on_command(&mut self, ctx: &mut Context<'_, Self>, cmd: KadCommand) {
        match cmd {
            KadCommand::Lookup { target, node } => {
                self.start_lookup(ctx, target, node, Purpose::Query);
            }
            KadCommand::Offer(node) => {
                if node != self.id && !self.banned.contains(&node) {
                    let c = self.contact(node);
                    self.table.offer(c);
                    self.progress(ctx);
                }
            }
            KadCommand::Ban(node) => {
                if self.banned.len() < crate::layer::REFUSED_MAX {
                    self.banned.insert(node);
                }
                self.on_command(ctx, KadCommand::Forget(node));
            }
            KadCommand::Forget(node) => {
                let key = self.config.key_of(node);
                if self.table.remove(key) {
                    self.stats.forgotten += 1;
                }
                self.failures.remove(&key);
            }
        }
    }

    /// Contact lists are bounded; a node may claim only the id its address derives from.
    fn check(&self, from: NodeId, msg: &KadMessage) -> Result<(), DropReason> {
        let limit = self.config.k.max(self.config.pex_max);
        let too_long = match msg {
            KadMessage::Nodes { contacts, .. } | KadMessage::PexReply { contacts, .. } => {
                contacts.len() > limit
            }
            _ => false,
        };
        if too_long {
            return Err(DropReason::Malformed);
        }
        if msg.sender() != self.config.key_of(from) {
            return Err(DropReason::Unauthenticated);
        }
        Ok(())
    }
}

/// Discovery as a layer: its routing table is the node's neighbour set (changes become
/// `NeighborAdded` / `NeighborRemoved`); it offers peers other layers hear of to the table and
/// forgets peers the health layer confirms dead.
impl crate::layer::Layer for Kademlia {
    const NAME: &'static str = "kademlia";

    fn joined(&mut self) {
        self.keep_journal();
    }

    fn drain_notices(&mut self, out: &mut Vec<crate::layer::Notice>) {
        use crate::layer::Notice;
        out.extend(self.table.drain_changes().map(|(node, added)| {
            if added {
                Notice::NeighborAdded(node)
            } else {
                Notice::NeighborRemoved(node)
            }
        }));
    }

    fn on_notice(&self, notice: crate::layer::Notice) -> Option<KadCommand> {
        use crate::layer::Notice;
        match notice {
            Notice::PeerHeard(p) | Notice::PeerAlive(p) => Some(KadCommand::Offer(p)),
            Notice::PeerDead(p) => Some(KadCommand::Forget(p)),
            Notice::Isolated(p) => Some(KadCommand::Ban(p)),
            _ => None,
        }
    }

    fn memory_bytes(&self) -> usize {
        Kademlia::memory_bytes(self)
    }
}

#[cfg(test)]
mod tests;
