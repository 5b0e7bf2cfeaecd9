//! Byzantine fault detection: evidence, reputation, and a mitigation ladder up to isolation.
//!
//! The layer keeps a record of every peer it has evidence about and acts on it:
//! - **Proofs** ([`Proof`]): two conflicting statements signed by one peer (a PBFT equivocation,
//!   two different results for one query). A proof that verifies isolates the accused at once and
//!   is forwarded to every neighbour (each node forwards a proof once), so every honest node
//!   isolates it. A proof that does not verify is dropped and counted, and counts as a wrong
//!   answer from its sender (honest nodes forward only proofs they verified).
//! - **First-hand observations** from the layers that see a peer's work (routing: a result that
//!   agreed or disagreed with its redundant copies, a spot check with a known answer, a result
//!   that failed the weak check, an answer too late). Each feeds a Beta reputation (decayed with
//!   a half-life) and a sequential probability ratio test (Wald's SPRT) between the honest error
//!   rate `p0` and the faulty rate `p1`, with error rates `alpha` (an honest peer quarantined)
//!   and `beta` (a faulty one cleared). A test that accepts "honest" starts over.
//! - **Second-hand opinions** (optional): neighbours exchange their worst first-hand ratings.
//!   An opinion counts only from a peer that may vouch (known for `vouch_age`, reputation at least
//!   `vouch_min`, not quarantined), weighted by the reporter's reputation, at most `opinion_weight`
//!   observations per reporter and `second_hand_max` per peer. Opinions move reputation (a
//!   penalty, more spot checks) but never quarantine: slander cannot take an honest peer out, and
//!   fresh identities (Sybils) cannot vouch for each other.
//!
//! The ladder, published to the other layers as notices:
//! 1. **Penalty**: reputation (published as [`Notice::Trust`]) is the router's reliability factor.
//!    A new identity starts at the prior mean (`prior`, low by default).
//! 2. **Monitoring**: reputation under `watch_below`, or fewer than `probation` first-hand
//!    observations, makes routers spot-check the peer at the raised rate ([`Notice::Watched`]).
//!    Way back: reputation recovers.
//! 3. **Quarantine**: the SPRT accepts "faulty" on first-hand evidence: no tasks are routed to the
//!    peer and its reports are ignored ([`Notice::Quarantined`]). Way back: after
//!    `quarantine_for` (doubled on each repeat) it is released on probation, its test restarted.
//! 4. **Isolation** (proof only, permanent): dropped from routing tables and health views, its
//!    frames refused, and PBFT treats its replica as down (a view change away from a primary)
//!    ([`Notice::Isolated`]).
//!
//! Everything that grows is bounded: peer records (`peers_max`, the least suspicious forgotten
//! first; isolated peers are kept apart, up to `isolated_max`), proofs remembered (`proofs_max`),
//! opinions per message and reporters per peer.

mod proof;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::contract::{Context, DropReason, Protocol};
use crate::layer::Notice;
use crate::random::below;
use crate::{Duration, NodeId, Time, Wire};

pub use proof::{NodeKeys, PROOF_BYTES, PbftIdentity, PbftPhase, Proof, result_content};

/// Wald's sequential probability ratio test between an honest error rate `p0` and a faulty one
/// `p1`, with error probabilities `alpha` (accept "faulty" for an honest peer) and `beta` (accept
/// "honest" for a faulty one).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sprt {
    pub p0: f64,
    pub p1: f64,
    pub alpha: f64,
    pub beta: f64,
}

impl Default for Sprt {
    fn default() -> Self {
        Sprt {
            p0: 0.02,
            p1: 0.3,
            alpha: 0.01,
            beta: 0.01,
        }
    }
}

impl Sprt {
    /// ln A = ln((1 − β) / α): the log-likelihood ratio at which "faulty" is accepted.
    pub fn upper(&self) -> f64 {
        ((1.0 - self.beta) / self.alpha).ln()
    }

    /// ln B = ln(β / (1 − α)): the log-likelihood ratio at which "honest" is accepted.
    pub fn lower(&self) -> f64 {
        (self.beta / (1.0 - self.alpha)).ln()
    }

    /// The log-likelihood ratio step of one observation.
    pub fn step(&self, bad: bool) -> f64 {
        if bad {
            (self.p1 / self.p0).ln()
        } else {
            ((1.0 - self.p1) / (1.0 - self.p0)).ln()
        }
    }

    /// Wald's approximation of the expected number of observations to a decision when the true
    /// error rate is `p1` (faulty) or `p0` (honest): E[N] = (P(accept H1)·ln A + P(accept H0)·ln B)
    /// / E[step], overshoot ignored (Wald 1945, eq. 4.6; Siegmund, *Sequential Analysis*, 2.2).
    pub fn expected_observations(&self, faulty: bool) -> f64 {
        let (p, accept_h1) = if faulty {
            (self.p1, 1.0 - self.beta)
        } else {
            (self.p0, self.alpha)
        };
        let drift = p * self.step(true) + (1.0 - p) * self.step(false);
        (accept_h1 * self.upper() + (1.0 - accept_h1) * self.lower()) / drift
    }
}

/// Second-hand opinions: who may vouch, and how much an opinion weighs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Opinions {
    /// How often a node sends its worst ratings to its neighbours.
    pub every: Duration,
    /// Ratings per message.
    pub ratings_max: usize,
    /// Observations one reporter's opinion of a peer is worth at most.
    pub weight: f64,
    /// Second-hand observations counted per peer at most, over all reporters.
    pub second_hand_max: f64,
    /// A reporter vouches only with at least this reputation...
    pub vouch_min: f64,
    /// ...and once known for this long.
    pub vouch_age: Duration,
}

impl Default for Opinions {
    fn default() -> Self {
        Opinions {
            every: Duration::from_secs(5),
            ratings_max: 8,
            weight: 2.0,
            second_hand_max: 8.0,
            vouch_min: 0.6,
            vouch_age: Duration::from_secs(30),
        }
    }
}

/// How a node misbehaves in the detection layer itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Slander {
    /// Honest.
    None,
    /// Between `from` and `until`, rates honest neighbours as faulty in its opinions and sends
    /// forged proofs against them.
    Active { from: Time, until: Time },
}

/// The detection layer's settings (the same on every node of a run but `slander`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DetectionConfig {
    pub sprt: Sprt,
    /// Beta prior (good, bad) of a peer with no record: a new identity starts at its mean.
    pub prior: (f64, f64),
    /// Evidence weighs half as much after this long (zero: never decays).
    pub half_life: Duration,
    /// Reputation under which a peer is watched (spot-checked at the raised rate).
    pub watch_below: f64,
    /// First-hand observations before a peer leaves probation (watched until then).
    pub probation: u32,
    /// The first quarantine's length; each repeat doubles it.
    pub quarantine_for: Duration,
    pub opinions: Option<Opinions>,
    pub peers_max: usize,
    pub isolated_max: usize,
    pub proofs_max: usize,
    pub keys: NodeKeys,
    pub pbft: Option<PbftIdentity>,
    /// Peers to send proofs and opinions to at start, besides the neighbours other layers find.
    pub seeds: Vec<NodeId>,
    pub slander: Slander,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        DetectionConfig {
            sprt: Sprt::default(),
            prior: (1.0, 2.0),
            half_life: Duration::from_secs(300),
            watch_below: 0.5,
            probation: 5,
            quarantine_for: Duration::from_secs(60),
            opinions: None,
            peers_max: 4_096,
            isolated_max: 4_096,
            proofs_max: 4_096,
            keys: NodeKeys { seed: 0 },
            pbft: None,
            seeds: Vec::new(),
            slander: Slander::None,
        }
    }
}

/// Where a peer stands on the ladder, as this node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    Normal,
    Watched,
    Quarantined,
    Isolated,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Normal => "normal",
            Level::Watched => "watched",
            Level::Quarantined => "quarantined",
            Level::Isolated => "isolated",
        }
    }
}

/// Why a peer moved on the ladder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Cause {
    /// A verified proof, with its kind.
    Proof(&'static str),
    /// The SPRT accepted "faulty" after this many observations.
    Sprt(u32),
    /// Reputation fell under (or rose over) `watch_below`, or probation began or ended.
    Reputation,
    /// A quarantine ran out.
    Expired,
}

/// [`Cause`] as it is read back (drivers that carry events across processes serialize them): a
/// proof kind is one of the kinds [`Proof::kind`] names.
#[derive(Deserialize)]
enum CauseWire {
    Proof(String),
    Sprt(u32),
    Reputation,
    Expired,
}

impl<'de> Deserialize<'de> for Cause {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cause, D::Error> {
        Ok(match CauseWire::deserialize(d)? {
            CauseWire::Proof(kind) => Cause::Proof(
                Proof::KINDS
                    .iter()
                    .copied()
                    .find(|k| *k == kind)
                    .ok_or_else(|| {
                        serde::de::Error::custom(format!("unknown proof kind `{kind}`"))
                    })?,
            ),
            CauseWire::Sprt(n) => Cause::Sprt(n),
            CauseWire::Reputation => Cause::Reputation,
            CauseWire::Expired => Cause::Expired,
        })
    }
}

impl Cause {
    pub fn name(self) -> &'static str {
        match self {
            Cause::Proof(kind) => kind,
            Cause::Sprt(_) => "sprt",
            Cause::Reputation => "reputation",
            Cause::Expired => "expired",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DetectionEvent {
    /// This node moved `peer` to `level`.
    Action {
        peer: NodeId,
        level: Level,
        cause: Cause,
    },
    /// A sequential test on `peer` ended: `faulty` accepted or not, after `observations`.
    Test {
        peer: NodeId,
        faulty: bool,
        observations: u32,
    },
}

/// One rating in an opinion: first-hand observations of a peer, decayed and rounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rating {
    pub peer: NodeId,
    pub good: u16,
    pub bad: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DetectionMessage {
    Proof(Proof),
    Opinion(Box<[Rating]>),
}

/// Ratings in one opinion message at most (a longer one is malformed).
pub const RATINGS_MAX: usize = 64;

impl Wire for DetectionMessage {
    fn wire_size(&self) -> usize {
        // Type, sender, and the sender's signature over the message.
        16 + 64
            + match self {
                DetectionMessage::Proof(_) => PROOF_BYTES,
                DetectionMessage::Opinion(r) => 2 + 8 * r.len(),
            }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DetectionTimer {
    /// Quarantines running out, opinions to send.
    Tick,
}

/// A first-hand observation of a peer's work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DetectionCommand {
    /// A verified outcome: `bad` if the peer's answer was wrong or too late.
    Observe {
        peer: NodeId,
        bad: bool,
    },
    /// A proof found on this node (by another layer).
    Proof(Proof),
    Neighbor(NodeId),
    Gone(NodeId),
}

/// Counters of one node's detection layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectionStats {
    pub observations: u64,
    pub observations_bad: u64,
    pub proofs_found: u64,
    pub proofs_received: u64,
    pub proofs_valid: u64,
    pub proofs_invalid: u64,
    pub proofs_duplicate: u64,
    pub proofs_sent: u64,
    pub opinions_sent: u64,
    pub opinions_received: u64,
    pub opinions_ignored: u64,
    pub tests_honest: u64,
    pub tests_faulty: u64,
    pub quarantines: u64,
    pub releases: u64,
    pub isolations: u64,
    pub records_evicted: u64,
    pub slanders_sent: u64,
}

/// What this node knows of one peer.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Record {
    first_seen: Time,
    /// First-hand evidence, decayed to `at`.
    good: f64,
    bad: f64,
    at: Time,
    /// First-hand observations ever (for probation).
    seen: u32,
    /// The running SPRT: log-likelihood ratio and observations in this test.
    llr: f64,
    n: u32,
    level: Level,
    quarantined_until: Time,
    quarantines: u8,
    /// Second-hand evidence by reporter: (good, bad), already weighted.
    heard: Vec<(NodeId, f64, f64)>,
    /// The trust last published, in thousandths (to publish changes only).
    published: u16,
}

/// Reporters remembered per peer.
const REPORTERS_MAX: usize = 16;

/// The detection layer of one node.
#[derive(Debug, Serialize, Deserialize)]
pub struct Detection {
    config: DetectionConfig,
    peers: BTreeMap<NodeId, Record>,
    isolated: BTreeSet<NodeId>,
    proofs: BTreeSet<Proof>,
    neighbors: BTreeSet<NodeId>,
    /// Notices for the other layers, drained after each step.
    journal: Vec<Notice>,
    next_opinion: Time,
    pub stats: DetectionStats,
}

/// How often the layer's tick runs.
const TICK: Duration = Duration::from_secs(1);

/// Neighbours remembered for gossip.
const NEIGHBORS_MAX: usize = 1_024;

impl Detection {
    pub fn new(config: DetectionConfig) -> Self {
        Detection {
            config,
            peers: BTreeMap::new(),
            isolated: BTreeSet::new(),
            proofs: BTreeSet::new(),
            neighbors: BTreeSet::new(),
            journal: Vec::new(),
            next_opinion: Time::ZERO,
            stats: DetectionStats::default(),
        }
    }

    pub fn config(&self) -> &DetectionConfig {
        &self.config
    }

    /// Where `peer` stands, as this node sees it.
    pub fn level(&self, peer: NodeId) -> Level {
        if self.isolated.contains(&peer) {
            return Level::Isolated;
        }
        self.peers.get(&peer).map_or(Level::Normal, |r| r.level)
    }

    /// `peer`'s reputation in [0, 1]: first-hand and admitted second-hand evidence over the prior.
    pub fn reputation(&self, peer: NodeId, now: Time) -> f64 {
        let (pg, pb) = self.config.prior;
        match self.peers.get(&peer) {
            None => pg / (pg + pb),
            Some(r) => {
                let k = self.decay(r.at, now);
                let (hg, hb) = second_hand(r);
                let g = r.good * k + hg + pg;
                let b = r.bad * k + hb + pb;
                g / (g + b)
            }
        }
    }

    /// First-hand reputation only.
    fn first_hand(&self, r: &Record, now: Time) -> f64 {
        let (pg, pb) = self.config.prior;
        let k = self.decay(r.at, now);
        (r.good * k + pg) / ((r.good + r.bad) * k + pg + pb)
    }

    fn decay(&self, since: Time, now: Time) -> f64 {
        let h = self.config.half_life.as_secs_f64();
        if h <= 0.0 {
            return 1.0;
        }
        (-(now.saturating_since(since).as_secs_f64()) / h * std::f64::consts::LN_2).exp()
    }

    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.peers.len() * (std::mem::size_of::<(NodeId, Record)>() + 24)
            + self
                .peers
                .values()
                .map(|r| r.heard.capacity() * std::mem::size_of::<(NodeId, f64, f64)>())
                .sum::<usize>()
            + (self.isolated.len() + self.neighbors.len()) * 16
            + self.proofs.len() * (std::mem::size_of::<Proof>() + 16)
    }

    /// The record of `peer`, made if need be (the least suspicious one forgotten when full).
    fn record(&mut self, peer: NodeId, now: Time) -> &mut Record {
        if !self.peers.contains_key(&peer) && self.peers.len() >= self.config.peers_max.max(1) {
            let victim = self
                .peers
                .iter()
                .filter(|(_, r)| r.level != Level::Quarantined)
                .min_by(|a, b| {
                    (a.1.bad, a.1.at)
                        .partial_cmp(&(b.1.bad, b.1.at))
                        .unwrap_or(std::cmp::Ordering::Equal)
                })
                .map(|(&p, _)| p);
            if let Some(v) = victim {
                self.peers.remove(&v);
                self.stats.records_evicted += 1;
            }
        }
        let (pg, pb) = self.config.prior;
        self.peers.entry(peer).or_insert_with(|| Record {
            first_seen: now,
            good: 0.0,
            bad: 0.0,
            at: now,
            seen: 0,
            llr: 0.0,
            n: 0,
            level: Level::Normal,
            quarantined_until: Time::ZERO,
            quarantines: 0,
            heard: Vec::new(),
            published: (pg / (pg + pb) * 1000.0).round() as u16,
        })
    }

    fn observe(&mut self, ctx: &mut Context<'_, Self>, peer: NodeId, bad: bool) {
        if peer == ctx.id() || self.isolated.contains(&peer) {
            return;
        }
        let now = ctx.now();
        self.stats.observations += 1;
        if bad {
            self.stats.observations_bad += 1;
        }
        let k = {
            let at = self.peers.get(&peer).map_or(now, |r| r.at);
            self.decay(at, now)
        };
        let sprt = self.config.sprt;
        let r = self.record(peer, now);
        r.good *= k;
        r.bad *= k;
        r.at = now;
        if bad {
            r.bad += 1.0;
        } else {
            r.good += 1.0;
        }
        r.seen = r.seen.saturating_add(1);
        if r.level == Level::Quarantined {
            // Its tasks stopped; late answers still count toward its reputation.
            self.update_level(ctx, peer);
            return;
        }
        r.llr += sprt.step(bad);
        r.n += 1;
        let (llr, n) = (r.llr, r.n);
        if llr >= sprt.upper() {
            self.stats.tests_faulty += 1;
            ctx.emit(DetectionEvent::Test {
                peer,
                faulty: true,
                observations: n,
            });
            self.quarantine(ctx, peer, n);
        } else if llr <= sprt.lower() {
            self.stats.tests_honest += 1;
            ctx.emit(DetectionEvent::Test {
                peer,
                faulty: false,
                observations: n,
            });
            if let Some(r) = self.peers.get_mut(&peer) {
                r.llr = 0.0;
                r.n = 0;
            }
        }
        self.update_level(ctx, peer);
    }

    fn quarantine(&mut self, ctx: &mut Context<'_, Self>, peer: NodeId, n: u32) {
        let now = ctx.now();
        let base = self.config.quarantine_for;
        let Some(r) = self.peers.get_mut(&peer) else {
            return;
        };
        let factor = 1u64 << u32::from(r.quarantines.min(16));
        r.quarantines = r.quarantines.saturating_add(1);
        r.level = Level::Quarantined;
        r.quarantined_until = now + base.saturating_mul(factor);
        r.llr = 0.0;
        r.n = 0;
        self.stats.quarantines += 1;
        self.journal.push(Notice::Quarantined(peer));
        ctx.emit(DetectionEvent::Action {
            peer,
            level: Level::Quarantined,
            cause: Cause::Sprt(n),
        });
    }

    /// Publishes the peer's trust if it moved, and moves it between normal and watched.
    fn update_level(&mut self, ctx: &mut Context<'_, Self>, peer: NodeId) {
        let now = ctx.now();
        let rep = self.reputation(peer, now);
        let watch_below = self.config.watch_below;
        let probation = self.config.probation;
        let Some(r) = self.peers.get_mut(&peer) else {
            return;
        };
        let trust = (rep * 1000.0).round() as u16;
        if trust != r.published {
            r.published = trust;
            self.journal.push(Notice::Trust(peer, trust));
        }
        let watched = rep < watch_below || r.seen < probation;
        let next = match r.level {
            Level::Normal | Level::Watched if watched => Level::Watched,
            Level::Normal | Level::Watched => Level::Normal,
            other => other,
        };
        if next != r.level {
            r.level = next;
            self.journal
                .push(Notice::Watched(peer, next == Level::Watched));
            ctx.emit(DetectionEvent::Action {
                peer,
                level: next,
                cause: Cause::Reputation,
            });
        }
    }

    /// A proof found here or received from `from` (None: found here).
    fn proof(&mut self, ctx: &mut Context<'_, Self>, proof: Proof, from: Option<NodeId>) {
        let proof = proof.canonical();
        if from.is_some() {
            self.stats.proofs_received += 1;
        } else {
            self.stats.proofs_found += 1;
        }
        if self.proofs.contains(&proof) || self.isolated.contains(&proof.accused()) {
            // Known, or its accused already isolated here: one proof per peer is enough.
            self.stats.proofs_duplicate += 1;
            return;
        }
        if !proof.verify(self.config.keys, self.config.pbft.as_ref()) {
            self.stats.proofs_invalid += 1;
            if let Some(sender) = from {
                // Honest nodes forward only proofs they verified: the sender lied.
                self.observe(ctx, sender, true);
            }
            return;
        }
        self.stats.proofs_valid += 1;
        if self.proofs.len() < self.config.proofs_max {
            self.proofs.insert(proof);
        }
        let accused = proof.accused();
        if accused != ctx.id() {
            self.isolate(ctx, accused, proof.kind());
        }
        for &n in &self.neighbors {
            if Some(n) != from && n != accused {
                self.stats.proofs_sent += 1;
                ctx.send(n, DetectionMessage::Proof(proof));
            }
        }
    }

    fn isolate(&mut self, ctx: &mut Context<'_, Self>, peer: NodeId, kind: &'static str) {
        if self.isolated.contains(&peer) || self.isolated.len() >= self.config.isolated_max {
            return;
        }
        self.isolated.insert(peer);
        self.peers.remove(&peer);
        self.neighbors.remove(&peer);
        self.stats.isolations += 1;
        self.journal.push(Notice::Isolated(peer));
        ctx.emit(DetectionEvent::Action {
            peer,
            level: Level::Isolated,
            cause: Cause::Proof(kind),
        });
    }

    fn tick(&mut self, ctx: &mut Context<'_, Self>) {
        let now = ctx.now();
        let expired: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, r)| r.level == Level::Quarantined && r.quarantined_until <= now)
            .map(|(&p, _)| p)
            .collect();
        for p in expired {
            if let Some(r) = self.peers.get_mut(&p) {
                // Released on probation: watched until it has shown `probation` more answers.
                r.level = Level::Watched;
                r.seen = 0;
                r.llr = 0.0;
                r.n = 0;
            }
            self.stats.releases += 1;
            self.journal.push(Notice::Released(p));
            self.journal.push(Notice::Watched(p, true));
            ctx.emit(DetectionEvent::Action {
                peer: p,
                level: Level::Watched,
                cause: Cause::Expired,
            });
        }
        if let Some(o) = self.config.opinions
            && now >= self.next_opinion
        {
            self.next_opinion = now + o.every;
            self.send_opinion(ctx, o);
        }
        ctx.set_timer(DetectionTimer::Tick, TICK);
    }

    fn slandering(&self, now: Time) -> bool {
        match self.config.slander {
            Slander::None => false,
            Slander::Active { from, until } => from <= now && now < until,
        }
    }

    /// Sends this node's worst first-hand ratings (a slanderer: lies about honest neighbours,
    /// and a forged proof against one of them).
    fn send_opinion(&mut self, ctx: &mut Context<'_, Self>, o: Opinions) {
        if self.neighbors.is_empty() {
            return;
        }
        let now = ctx.now();
        let max = o.ratings_max.min(RATINGS_MAX);
        let ratings: Vec<Rating> = if self.slandering(now) {
            let pool: Vec<NodeId> = self.neighbors.iter().copied().collect();
            let picks = crate::random::sample_indices(ctx.rng(), pool.len(), max);
            let forged = pool[below(ctx.rng(), pool.len() as u64) as usize];
            let query = below(ctx.rng(), u64::MAX);
            let (a, b) = (below(ctx.rng(), u64::MAX), below(ctx.rng(), u64::MAX));
            let lie = Proof::Results {
                accused: forged,
                query,
                a: (a, below(ctx.rng(), u64::MAX)),
                b: (b, below(ctx.rng(), u64::MAX)),
            };
            for &n in &self.neighbors {
                if n != forged {
                    self.stats.slanders_sent += 1;
                    ctx.send(n, DetectionMessage::Proof(lie));
                }
            }
            picks
                .into_iter()
                .map(|i| Rating {
                    peer: pool[i],
                    good: 0,
                    bad: u16::MAX,
                })
                .collect()
        } else {
            let mut worst: Vec<(f64, NodeId, Rating)> = self
                .peers
                .iter()
                .filter(|(_, r)| r.seen >= 3)
                .map(|(&p, r)| {
                    let k = self.decay(r.at, now);
                    let rating = Rating {
                        peer: p,
                        good: (r.good * k).round().min(f64::from(u16::MAX)) as u16,
                        bad: (r.bad * k).round().min(f64::from(u16::MAX)) as u16,
                    };
                    (self.first_hand(r, now), p, rating)
                })
                .filter(|(rep, _, rating)| *rep < self.config.watch_below && rating.bad > 0)
                .collect();
            worst.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            worst.into_iter().take(max).map(|(_, _, r)| r).collect()
        };
        if ratings.is_empty() {
            return;
        }
        let msg = DetectionMessage::Opinion(ratings.into_boxed_slice());
        for &n in &self.neighbors {
            self.stats.opinions_sent += 1;
            ctx.send(n, msg.clone());
        }
    }

    /// An opinion from `from`: admitted only if `from` may vouch.
    fn opinion(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, ratings: &[Rating]) {
        self.stats.opinions_received += 1;
        let Some(o) = self.config.opinions else {
            self.stats.opinions_ignored += 1;
            return;
        };
        let now = ctx.now();
        let vouches = self.peers.get(&from).is_some_and(|r| {
            r.level != Level::Quarantined && now.saturating_since(r.first_seen) >= o.vouch_age
        }) && self.reputation(from, now) >= o.vouch_min;
        if !vouches {
            self.stats.opinions_ignored += 1;
            return;
        }
        let weight = self.reputation(from, now);
        for rating in ratings {
            if rating.peer == ctx.id()
                || rating.peer == from
                || self.isolated.contains(&rating.peer)
            {
                continue;
            }
            let (g, b) = (f64::from(rating.good), f64::from(rating.bad));
            let total = g + b;
            if total <= 0.0 {
                continue;
            }
            let scale = weight * o.weight.min(total) / total;
            let r = self.record(rating.peer, now);
            r.heard.retain(|&(rep, _, _)| rep != from);
            if r.heard.len() >= REPORTERS_MAX {
                r.heard.remove(0);
            }
            r.heard.push((from, g * scale, b * scale));
            cap_second_hand(r, o.second_hand_max);
            self.update_level(ctx, rating.peer);
        }
    }
}

/// Second-hand (good, bad) of a record.
fn second_hand(r: &Record) -> (f64, f64) {
    r.heard
        .iter()
        .fold((0.0, 0.0), |(g, b), &(_, hg, hb)| (g + hg, b + hb))
}

/// Scales a record's second-hand evidence down to at most `max` observations in all.
fn cap_second_hand(r: &mut Record, max: f64) {
    let (g, b) = second_hand(r);
    if g + b > max && g + b > 0.0 {
        let k = max / (g + b);
        for h in &mut r.heard {
            h.1 *= k;
            h.2 *= k;
        }
    }
}

impl Protocol for Detection {
    type Message = DetectionMessage;
    type Timer = DetectionTimer;
    type Command = DetectionCommand;
    type Event = DetectionEvent;
    type Durable = ();

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        for p in self.config.seeds.clone() {
            if p != ctx.id() && self.neighbors.len() < NEIGHBORS_MAX {
                self.neighbors.insert(p);
            }
        }
        if let Some(o) = self.config.opinions {
            // Spread the first opinions over one period, so nodes do not send in lockstep.
            let offset = below(ctx.rng(), o.every.as_nanos().max(1));
            self.next_opinion = ctx.now() + o.every + Duration::from_nanos(offset);
        }
        ctx.set_timer(DetectionTimer::Tick, TICK);
    }

    fn check(&self, _from: NodeId, msg: &DetectionMessage) -> Result<(), DropReason> {
        match msg {
            DetectionMessage::Opinion(r) if r.is_empty() || r.len() > RATINGS_MAX => {
                Err(DropReason::Malformed)
            }
            _ => Ok(()),
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: DetectionMessage) {
        match msg {
            DetectionMessage::Proof(p) => self.proof(ctx, p, Some(from)),
            DetectionMessage::Opinion(r) => self.opinion(ctx, from, &r),
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: DetectionTimer) {
        match timer {
            DetectionTimer::Tick => self.tick(ctx),
        }
    }

    fn on_command(&mut self, ctx: &mut Context<'_, Self>, cmd: DetectionCommand) {
        match cmd {
            DetectionCommand::Observe { peer, bad } => self.observe(ctx, peer, bad),
            DetectionCommand::Proof(p) => self.proof(ctx, p, None),
            DetectionCommand::Neighbor(p) => {
                if p != ctx.id()
                    && !self.isolated.contains(&p)
                    && self.neighbors.len() < NEIGHBORS_MAX
                {
                    self.neighbors.insert(p);
                }
            }
            DetectionCommand::Gone(p) => {
                self.neighbors.remove(&p);
            }
        }
    }
}

impl crate::layer::Layer for Detection {
    const NAME: &'static str = "detection";

    fn drain_notices(&mut self, out: &mut Vec<Notice>) {
        out.append(&mut self.journal);
    }

    fn on_notice(&self, notice: Notice) -> Option<DetectionCommand> {
        match notice {
            Notice::Observed(peer, bad) => Some(DetectionCommand::Observe { peer, bad }),
            Notice::Proof(p) => Some(DetectionCommand::Proof(p)),
            Notice::NeighborAdded(p) | Notice::Watch(p) => Some(DetectionCommand::Neighbor(p)),
            Notice::NeighborRemoved(p) | Notice::PeerDead(p) => Some(DetectionCommand::Gone(p)),
            _ => None,
        }
    }

    fn memory_bytes(&self) -> usize {
        Detection::memory_bytes(self)
    }
}
