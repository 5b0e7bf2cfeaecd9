//! Push gossip: epidemic dissemination with a fanout, rounds and bounded retransmission.
//!
//! Every `interval` a node picks `fanout` random peers and pushes to each of them the rumors it
//! has retransmitted least, as SWIM (Das, Gupta and Motivala, 2002) piggybacks membership updates
//! and as HashiCorp's memberlist does with its transmit-limited queue. A rumor is retransmitted at
//! most `retransmit_mult * ceil(log10(n + 1))` times by each node that holds it: in push gossip the
//! number of rounds needed to reach every node grows as log n (Pittel, 1987), so a bound that grows
//! with log n keeps the probability that a rumor dies out early small while sending nothing
//! forever. The price is that a node cut off for longer than a rumor's lifetime never receives it:
//! push gossip alone is not anti-entropy, and the metrics say so honestly.
//!
//! Optional push-pull anti-entropy ([`AntiEntropy`], off by default) closes that gap: every
//! `interval` a node sends one random peer a Scuttlebutt-style digest of what it has seen per
//! origin (van Renesse, Dumitriu, Gough and Thomas, 2008, "Efficient reconciliation and flow
//! control for anti-entropy protocols"); the peer answers with the stored rumors the digest lacks
//! and with what it lacks itself, which the initiator sends back. Rumors repaired this way are
//! delivered as pushed ones and queued for push gossip with a fresh retransmission budget, so they
//! spread fast from there. See [`anti_entropy`] for the bounds. With anti-entropy off a node draws
//! no extra random numbers and sends nothing new.
//!
//! The dissemination queue ([`Dissemination`]) is a reusable component: later protocols (health
//! monitoring, Byzantine evidence) piggyback their updates on it.

pub mod anti_entropy;
mod dissemination;
mod peers;

pub use anti_entropy::{
    AntiEntropy, AntiEntropyStats, DIGEST_ORIGINS_MAX, DIGEST_SEQS_MAX, Digest, DigestEntry,
    Reconciler,
};
pub use dissemination::{Dissemination, DisseminationStats};
pub use peers::PeerSet;

use crate::{Context, DropReason, Duration, NodeId, Protocol, Wire};
use serde::{Deserialize, Serialize};

/// Who published a rumor and its sequence number at that publisher: globally unique as long as the
/// publisher persists its counter across restarts (it does: see [`GossipDurable`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RumorId {
    pub origin: NodeId,
    pub seq: u32,
}

/// One rumor on the wire, with the number of hops it has travelled.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rumor<T> {
    pub id: RumorId,
    pub hops: u16,
    pub payload: T,
}

/// A gossip packet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GossipMsg<T> {
    /// The rumors pushed to one peer in one round.
    Push(Vec<Rumor<T>>),
    /// Anti-entropy, initiator to peer: what the initiator has seen.
    Digest(Digest),
    /// Anti-entropy, peer to initiator: the stored rumors the digest lacked (at most
    /// `rumors_max`), and the peer's own entries for the origins where the digest showed something
    /// it lacks.
    Reply {
        rumors: Vec<Rumor<T>>,
        wants: Vec<DigestEntry>,
    },
    /// Anti-entropy, initiator to peer: the rumors the reply's `wants` lacked (at most
    /// `rumors_max`).
    Repair(Vec<Rumor<T>>),
}

/// A push hashes as the one-field struct it used to be, so the trace hashes of runs without
/// anti-entropy did not move when the other variants were added.
impl<T: std::hash::Hash> std::hash::Hash for GossipMsg<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            GossipMsg::Push(rumors) => rumors.hash(state),
            GossipMsg::Digest(d) => {
                state.write_usize(usize::MAX);
                d.hash(state);
            }
            GossipMsg::Reply { rumors, wants } => {
                state.write_usize(usize::MAX - 1);
                rumors.hash(state);
                wants.hash(state);
            }
            GossipMsg::Repair(rumors) => {
                state.write_usize(usize::MAX - 2);
                rumors.hash(state);
            }
        }
    }
}

/// Bytes of framing per packet (with its kind) and per rumor (ids, hop count, lengths), and the
/// count of a reply's wants.
const PACKET_HEADER_BYTES: usize = 8;
const RUMOR_HEADER_BYTES: usize = 12;
const WANTS_COUNT_BYTES: usize = 2;

fn rumors_wire_size<T: Wire>(rumors: &[Rumor<T>]) -> usize {
    rumors
        .iter()
        .map(|r| RUMOR_HEADER_BYTES + r.payload.wire_size())
        .sum::<usize>()
}

impl<T: Wire> Wire for GossipMsg<T> {
    fn wire_size(&self) -> usize {
        PACKET_HEADER_BYTES
            + match self {
                GossipMsg::Push(rumors) | GossipMsg::Repair(rumors) => rumors_wire_size(rumors),
                GossipMsg::Digest(d) => d.wire_size(),
                GossipMsg::Reply { rumors, wants } => {
                    rumors_wire_size(rumors)
                        + WANTS_COUNT_BYTES
                        + anti_entropy::entries_wire_size(wants)
                }
            }
    }
}

/// A simulated payload: a size and a tag, without carrying the bytes themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Blob {
    pub len: u32,
    pub tag: u64,
}

impl Wire for Blob {
    fn wire_size(&self) -> usize {
        self.len as usize
    }
}

/// Parameters; the defaults are memberlist's LAN profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GossipConfig {
    pub interval: Duration,
    pub fanout: u32,
    pub retransmit_mult: u32,
    pub rumors_per_message_max: usize,
    pub queue_len_max: usize,
    pub seen_len_max: usize,
    /// Push-pull anti-entropy; `None` (the default) is push gossip alone.
    pub anti_entropy: Option<AntiEntropy>,
}

impl Default for GossipConfig {
    fn default() -> Self {
        GossipConfig {
            interval: Duration::from_millis(200),
            fanout: 3,
            retransmit_mult: 4,
            rumors_per_message_max: 16,
            queue_len_max: 1_024,
            seen_len_max: 65_536,
            anti_entropy: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum GossipTimer {
    Round,
    AntiEntropy,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GossipCommand<T> {
    Publish(T),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GossipEvent {
    Published {
        id: RumorId,
    },
    /// A rumor reached this node for the first time; `repaired` if through anti-entropy.
    Delivered {
        id: RumorId,
        hops: u16,
        repaired: bool,
    },
}

/// What survives a restart: the publish counter, so rumor ids never repeat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GossipDurable {
    pub next_seq: u32,
}

/// A node that disseminates rumors by push gossip.
#[derive(Debug, Serialize, Deserialize)]
pub struct Gossip<T> {
    config: GossipConfig,
    peers: PeerSet,
    queue: Dissemination<T>,
    next_seq: u32,
    anti_entropy: Option<Reconciler<T>>,
}

impl<T: Clone> Gossip<T> {
    pub fn new(config: GossipConfig, peers: PeerSet, durable: Option<GossipDurable>) -> Self {
        let cluster_size = peers.len() as u32 + 1;
        Gossip {
            config,
            peers,
            queue: Dissemination::new(
                config.retransmit_mult,
                cluster_size,
                config.queue_len_max,
                config.seen_len_max,
            ),
            next_seq: durable.unwrap_or_default().next_seq,
            anti_entropy: config.anti_entropy.map(Reconciler::new),
        }
    }

    pub fn dissemination(&self) -> &Dissemination<T> {
        &self.queue
    }

    /// The anti-entropy state, if it is on.
    pub fn anti_entropy(&self) -> Option<&Reconciler<T>> {
        self.anti_entropy.as_ref()
    }
}

impl<T: Clone + std::fmt::Debug + std::hash::Hash + Wire> Protocol for Gossip<T> {
    type Message = GossipMsg<T>;
    type Timer = GossipTimer;
    type Command = GossipCommand<T>;
    type Event = GossipEvent;
    type Durable = GossipDurable;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        // A random phase keeps nodes started together from gossiping in lockstep.
        let phase = crate::random::below(ctx.rng(), self.config.interval.as_nanos().max(1));
        ctx.set_timer(GossipTimer::Round, Duration::from_nanos(phase));
        if let Some(ae) = self.config.anti_entropy {
            let phase = crate::random::below(ctx.rng(), ae.interval.as_nanos().max(1));
            ctx.set_timer(GossipTimer::AntiEntropy, Duration::from_nanos(phase));
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: GossipMsg<T>) {
        match msg {
            GossipMsg::Push(rumors) => {
                for rumor in rumors {
                    self.receive(ctx, rumor, false);
                }
            }
            GossipMsg::Digest(digest) => {
                let Some(ae) = &mut self.anti_entropy else {
                    return;
                };
                let rumors = ae.missing(
                    &digest.entries,
                    anti_entropy::Origins::Window(digest.lo, digest.hi),
                );
                let wants = ae.wants(&digest);
                if !rumors.is_empty() || !wants.is_empty() {
                    ae.stats_mut().rumors_sent += rumors.len() as u64;
                    ctx.send(from, GossipMsg::Reply { rumors, wants });
                }
            }
            GossipMsg::Reply { rumors, wants } => {
                for rumor in rumors {
                    self.receive(ctx, rumor, true);
                }
                let Some(ae) = &mut self.anti_entropy else {
                    return;
                };
                let back = ae.missing(&wants, anti_entropy::Origins::Listed);
                if !back.is_empty() {
                    ae.stats_mut().rumors_sent += back.len() as u64;
                    ctx.send(from, GossipMsg::Repair(back));
                }
            }
            GossipMsg::Repair(rumors) => {
                for rumor in rumors {
                    self.receive(ctx, rumor, true);
                }
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: GossipTimer) {
        match timer {
            GossipTimer::Round => {
                self.round(ctx);
                ctx.set_timer(GossipTimer::Round, self.config.interval);
            }
            GossipTimer::AntiEntropy => {
                let Some(ae) = self.config.anti_entropy else {
                    return;
                };
                self.anti_entropy_round(ctx);
                // 0.5 to 1.5 intervals, so rounds drift apart instead of colliding.
                let interval = ae.interval.as_nanos().max(1);
                let next = interval / 2 + crate::random::below(ctx.rng(), interval);
                ctx.set_timer(GossipTimer::AntiEntropy, Duration::from_nanos(next));
            }
        }
    }

    fn on_command(&mut self, ctx: &mut Context<'_, Self>, cmd: GossipCommand<T>) {
        match cmd {
            GossipCommand::Publish(payload) => {
                let id = RumorId {
                    origin: ctx.id(),
                    seq: self.next_seq,
                };
                self.next_seq = self.next_seq.wrapping_add(1);
                ctx.persist(GossipDurable {
                    next_seq: self.next_seq,
                });
                if let Some(ae) = &mut self.anti_entropy {
                    ae.learn(id, 0, &payload);
                }
                self.queue.ingest(id, 0, payload);
                ctx.emit(GossipEvent::Published { id });
            }
        }
    }

    fn check(&self, _from: NodeId, msg: &GossipMsg<T>) -> Result<(), DropReason> {
        let bounded = |shape: Result<(), bool>| {
            shape.map_err(|oversized| {
                if oversized {
                    DropReason::Oversized
                } else {
                    DropReason::Malformed
                }
            })
        };
        let ae = match (msg, &self.config.anti_entropy) {
            (GossipMsg::Push(rumors), _) => {
                if rumors.is_empty() || rumors.len() > self.config.rumors_per_message_max {
                    return Err(DropReason::Malformed);
                }
                return Ok(());
            }
            // Anti-entropy traffic to a node that runs none.
            (_, None) => return Err(DropReason::Unexpected),
            (_, Some(ae)) => ae,
        };
        match msg {
            GossipMsg::Push(_) => Ok(()),
            GossipMsg::Digest(digest) => bounded(anti_entropy::check_digest(digest)),
            GossipMsg::Reply { rumors, wants } => {
                if rumors.len() > ae.rumors_max {
                    return Err(DropReason::Oversized);
                }
                bounded(anti_entropy::check_entries(wants))?;
                if rumors.is_empty() && wants.is_empty() {
                    return Err(DropReason::Malformed);
                }
                Ok(())
            }
            GossipMsg::Repair(rumors) => {
                if rumors.len() > ae.rumors_max {
                    return Err(DropReason::Oversized);
                }
                if rumors.is_empty() {
                    return Err(DropReason::Malformed);
                }
                Ok(())
            }
        }
    }
}

impl<T: Clone + std::fmt::Debug + std::hash::Hash + Wire> Gossip<T> {
    fn round(&mut self, ctx: &mut Context<'_, Self>) {
        if self.queue.is_empty() {
            return;
        }
        let me = ctx.id();
        let targets = self
            .peers
            .sample(ctx.rng(), self.config.fanout as usize, me);
        for to in targets {
            let rumors = self.queue.select(self.config.rumors_per_message_max);
            if rumors.is_empty() {
                break;
            }
            ctx.send(to, GossipMsg::Push(rumors));
        }
    }

    /// Takes in one rumor, pushed or through anti-entropy; delivers it if it is new.
    fn receive(&mut self, ctx: &mut Context<'_, Self>, rumor: Rumor<T>, repaired: bool) {
        let id = rumor.id;
        let hops = rumor.hops.saturating_add(1);
        let fresh = match &mut self.anti_entropy {
            None => self.queue.ingest(id, hops, rumor.payload),
            Some(ae) => {
                if ae.learn(id, hops, &rumor.payload) {
                    // A fresh retransmission budget: repaired rumors spread by push from here.
                    self.queue.ingest(id, hops, rumor.payload)
                } else {
                    self.queue.note_duplicate();
                    false
                }
            }
        };
        if fresh {
            if repaired && let Some(ae) = &mut self.anti_entropy {
                ae.stats_mut().repaired += 1;
            }
            ctx.emit(GossipEvent::Delivered { id, hops, repaired });
        }
    }

    /// One anti-entropy round: a digest to one random peer.
    fn anti_entropy_round(&mut self, ctx: &mut Context<'_, Self>) {
        let me = ctx.id();
        let Some(to) = self.peers.sample(ctx.rng(), 1, me).first().copied() else {
            return;
        };
        let Some(ae) = &mut self.anti_entropy else {
            return;
        };
        let digest = ae.digest();
        ae.stats_mut().rounds += 1;
        ctx.send(to, GossipMsg::Digest(digest));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Harness;
    use crate::{Duration, Time};

    fn blob(tag: u64) -> Blob {
        Blob { len: 64, tag }
    }

    fn cluster(n: u32, seed: u64) -> Harness<Gossip<Blob>> {
        Harness::new(n, Duration::from_millis(5), seed, |_| {
            Gossip::new(GossipConfig::default(), PeerSet::All { n }, None)
        })
    }

    fn delivered(h: &Harness<Gossip<Blob>>, id: RumorId) -> usize {
        h.events
            .iter()
            .filter(|(_, _, e)| matches!(e, GossipEvent::Delivered { id: d, .. } if *d == id))
            .count()
    }

    #[test]
    fn a_rumor_reaches_every_node() {
        let mut h = cluster(64, 3);
        h.start_all();
        h.command(NodeId(5), GossipCommand::Publish(blob(1)));
        h.run_until(Time(Duration::from_secs(10).as_nanos()));
        assert_eq!(
            delivered(
                &h,
                RumorId {
                    origin: NodeId(5),
                    seq: 0
                }
            ),
            63
        );
    }

    #[test]
    fn retransmission_is_bounded() {
        let n = 64;
        let mut h = cluster(n, 4);
        h.start_all();
        h.command(NodeId(0), GossipCommand::Publish(blob(1)));
        h.run_until(Time(Duration::from_secs(30).as_nanos()));
        // Each node pushes a rumor at most retransmit_mult * ceil(log10(n+1)) times.
        let limit = 4 * 2;
        assert!(
            h.messages_sent <= u64::from(n) * limit,
            "{}",
            h.messages_sent
        );
        // ... and then goes quiet: no message after the rumor has died out everywhere.
        let sent = h.messages_sent;
        h.run_until(Time(Duration::from_secs(60).as_nanos()));
        assert_eq!(h.messages_sent, sent);
    }

    #[test]
    fn duplicates_are_delivered_once() {
        let mut h = cluster(16, 5);
        h.start_all();
        h.command(NodeId(2), GossipCommand::Publish(blob(9)));
        h.run_until(Time(Duration::from_secs(10).as_nanos()));
        let mut per_node = [0u32; 16];
        for (_, node, e) in &h.events {
            if matches!(e, GossipEvent::Delivered { .. }) {
                per_node[node.index()] += 1;
            }
        }
        assert!(per_node.iter().all(|&c| c <= 1), "{per_node:?}");
    }

    #[test]
    fn publish_counter_is_durable() {
        let mut h = cluster(4, 6);
        h.start_all();
        h.command(NodeId(1), GossipCommand::Publish(blob(1)));
        h.command(NodeId(1), GossipCommand::Publish(blob(2)));
        assert_eq!(h.durable[1], Some(GossipDurable { next_seq: 2 }));
        let restarted =
            Gossip::<Blob>::new(GossipConfig::default(), PeerSet::All { n: 4 }, h.durable[1]);
        assert_eq!(restarted.next_seq, 2);
    }

    #[test]
    fn survives_moderate_loss() {
        let mut h = cluster(100, 8).with_filter(|from, to, seq| {
            // 10 % loss, deterministic in the message sequence.
            (u64::from(from.0) * 31 + u64::from(to.0) * 17 + seq) % 10 != 0
        });
        h.start_all();
        h.command(NodeId(0), GossipCommand::Publish(blob(1)));
        h.run_until(Time(Duration::from_secs(10).as_nanos()));
        assert!(
            delivered(
                &h,
                RumorId {
                    origin: NodeId(0),
                    seq: 0
                }
            ) >= 98
        );
    }

    #[test]
    fn malformed_packets_are_dropped_and_counted() {
        let mut h = cluster(2, 1);
        h.start_all();
        let node = h.nodes[0].as_mut().unwrap();
        let too_many = GossipMsg::Push(
            (0..100)
                .map(|i| Rumor {
                    id: RumorId {
                        origin: NodeId(1),
                        seq: i,
                    },
                    hops: 0,
                    payload: blob(0),
                })
                .collect(),
        );
        let effects = node
            .step(
                Time::ZERO,
                crate::Input::Message {
                    from: NodeId(1),
                    msg: too_many,
                },
            )
            .count();
        assert_eq!(effects, 0);
        assert_eq!(node.stats().rejected[DropReason::Malformed as usize], 1);
        let empty = GossipMsg::<Blob>::Push(vec![]);
        let _ = node.step(
            Time::ZERO,
            crate::Input::Message {
                from: NodeId(1),
                msg: empty,
            },
        );
        assert_eq!(node.stats().rejected_total(), 2);
    }

    fn repairing() -> GossipConfig {
        GossipConfig {
            anti_entropy: Some(AntiEntropy::default()),
            ..GossipConfig::default()
        }
    }

    /// 16 nodes; node 7 hears nothing and says nothing while `cut` is set. Node 0 publishes while
    /// node 7 is cut off, long enough for the rumor to die out; then the cut lifts. Returns the
    /// deliveries of the rumor to node 7 (with their `repaired` flags).
    fn cut_off_then_healed(config: GossipConfig) -> Vec<bool> {
        use std::cell::Cell;
        use std::rc::Rc;
        let n = 16;
        let cut = Rc::new(Cell::new(true));
        let flag = Rc::clone(&cut);
        let mut h = Harness::new(n, Duration::from_millis(5), 11, |_| {
            Gossip::new(config, PeerSet::All { n }, None)
        })
        .with_filter(move |from, to, _| !flag.get() || (from != NodeId(7) && to != NodeId(7)));
        h.start_all();
        h.command(NodeId(0), GossipCommand::Publish(blob(1)));
        h.run_until(Time(Duration::from_secs(20).as_nanos()));
        let id = RumorId {
            origin: NodeId(0),
            seq: 0,
        };
        assert_eq!(delivered(&h, id), 14, "everyone but node 7 during the cut");
        cut.set(false);
        h.run_until(Time(Duration::from_secs(40).as_nanos()));
        h.events
            .iter()
            .filter_map(|(_, node, e)| match e {
                GossipEvent::Delivered {
                    id: d, repaired, ..
                } if *d == id && *node == NodeId(7) => Some(*repaired),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn anti_entropy_repairs_a_node_cut_off_while_a_rumor_spread() {
        let plain = cut_off_then_healed(GossipConfig::default());
        assert!(plain.is_empty(), "push gossip alone never repairs it");
        let repaired = cut_off_then_healed(repairing());
        assert_eq!(repaired, vec![true], "delivered once, through anti-entropy");
    }

    /// A node that has seen `origins` origins, one rumor each, by push.
    fn node_with_origins(config: GossipConfig, origins: u32) -> crate::Node<Gossip<Blob>> {
        use rand_core::SeedableRng;
        let n = origins + 1;
        let mut node = crate::Node::new(
            NodeId(0),
            Gossip::new(config, PeerSet::All { n }, None),
            rand_chacha::ChaCha8Rng::seed_from_u64(1),
            crate::Limits::default(),
        );
        let _ = node.step(Time::ZERO, crate::Input::Start);
        for o in 1..n {
            let push = GossipMsg::Push(vec![Rumor {
                id: RumorId {
                    origin: NodeId(o),
                    seq: 0,
                },
                hops: 0,
                payload: blob(u64::from(o)),
            }]);
            let effects = node.step(
                Time::ZERO,
                crate::Input::Message {
                    from: NodeId(o),
                    msg: push,
                },
            );
            assert_eq!(effects.count(), 1, "delivered");
        }
        node
    }

    #[test]
    fn digests_never_exceed_their_origin_bound_and_cover_every_origin_over_rounds() {
        let origins = DIGEST_ORIGINS_MAX as u32 * 2 + 7;
        let mut node = node_with_origins(repairing(), origins);
        let mut covered = std::collections::BTreeSet::new();
        let mut digests = 0;
        let mut now = Time::ZERO;
        while digests < 3 {
            now = node.next_deadline().expect("timers armed");
            for effect in node.step(now, crate::Input::Tick) {
                if let crate::Effect::Send {
                    msg: GossipMsg::Digest(d),
                    ..
                } = effect
                {
                    assert!(d.entries.len() <= DIGEST_ORIGINS_MAX, "{}", d.entries.len());
                    covered.extend(d.entries.iter().map(|e| e.origin));
                    digests += 1;
                }
            }
        }
        assert!(now > Time::ZERO);
        assert_eq!(
            covered.len(),
            origins as usize,
            "every origin, over 3 rounds"
        );
        assert_eq!(node.protocol().anti_entropy().unwrap().stats().rounds, 3);
    }

    #[test]
    fn a_reply_never_exceeds_rumors_max() {
        let config = GossipConfig {
            anti_entropy: Some(AntiEntropy {
                rumors_max: 5,
                ..AntiEntropy::default()
            }),
            ..GossipConfig::default()
        };
        let mut node = node_with_origins(config, 40);
        let empty = Digest {
            lo: NodeId(0),
            hi: NodeId(u32::MAX),
            entries: vec![],
        };
        let replies: Vec<usize> = node
            .step(
                Time::ZERO,
                crate::Input::Message {
                    from: NodeId(1),
                    msg: GossipMsg::Digest(empty),
                },
            )
            .filter_map(|e| match e {
                crate::Effect::Send {
                    msg: GossipMsg::Reply { rumors, wants },
                    ..
                } => {
                    assert!(wants.is_empty(), "the digest showed nothing new");
                    Some(rumors.len())
                }
                _ => None,
            })
            .collect();
        assert_eq!(replies, vec![5], "40 missing, 5 sent");
    }

    #[test]
    fn the_initiator_sends_back_what_the_reply_wants() {
        let mut node = node_with_origins(repairing(), 3);
        // The peer lacks origin 2's rumor 0 and has origin 3's.
        let wants = vec![
            DigestEntry {
                origin: NodeId(2),
                contiguous: 0,
                above: vec![],
                more: false,
            },
            DigestEntry {
                origin: NodeId(3),
                contiguous: 1,
                above: vec![],
                more: false,
            },
        ];
        let sent: Vec<Vec<RumorId>> = node
            .step(
                Time::ZERO,
                crate::Input::Message {
                    from: NodeId(1),
                    msg: GossipMsg::Reply {
                        rumors: vec![],
                        wants,
                    },
                },
            )
            .filter_map(|e| match e {
                crate::Effect::Send {
                    to: NodeId(1),
                    msg: GossipMsg::Repair(rumors),
                } => Some(rumors.iter().map(|r| r.id).collect()),
                _ => None,
            })
            .collect();
        let want = RumorId {
            origin: NodeId(2),
            seq: 0,
        };
        assert_eq!(sent, vec![vec![want]]);
    }

    #[test]
    fn malformed_anti_entropy_messages_are_dropped_and_counted() {
        let config = GossipConfig {
            anti_entropy: Some(AntiEntropy {
                rumors_max: 4,
                ..AntiEntropy::default()
            }),
            ..GossipConfig::default()
        };
        let mut node = node_with_origins(config, 3);
        let entry = |origin: u32, contiguous: u32, above: Vec<u32>| DigestEntry {
            origin: NodeId(origin),
            contiguous,
            above,
            more: false,
        };
        let window = |entries| Digest {
            lo: NodeId(0),
            hi: NodeId(u32::MAX),
            entries,
        };
        let rumors = |k: u32| -> Vec<Rumor<Blob>> {
            (0..k)
                .map(|seq| Rumor {
                    id: RumorId {
                        origin: NodeId(9),
                        seq,
                    },
                    hops: 0,
                    payload: blob(0),
                })
                .collect()
        };
        let cases: Vec<(GossipMsg<Blob>, DropReason)> = vec![
            // Origins out of order.
            (
                GossipMsg::Digest(window(vec![entry(2, 0, vec![]), entry(1, 0, vec![])])),
                DropReason::Malformed,
            ),
            // A listed number inside the contiguous prefix.
            (
                GossipMsg::Digest(window(vec![entry(1, 5, vec![3])])),
                DropReason::Malformed,
            ),
            // Listed numbers not increasing.
            (
                GossipMsg::Digest(window(vec![entry(1, 0, vec![4, 2])])),
                DropReason::Malformed,
            ),
            // `more` without a full list.
            (
                GossipMsg::Digest(window(vec![DigestEntry {
                    more: true,
                    ..entry(1, 0, vec![2])
                }])),
                DropReason::Malformed,
            ),
            // An entry outside the window, and a reversed window.
            (
                GossipMsg::Digest(Digest {
                    lo: NodeId(5),
                    hi: NodeId(10),
                    entries: vec![entry(1, 1, vec![])],
                }),
                DropReason::Malformed,
            ),
            (
                GossipMsg::Digest(Digest {
                    lo: NodeId(10),
                    hi: NodeId(5),
                    entries: vec![],
                }),
                DropReason::Malformed,
            ),
            // Too many origins, too many sequence numbers.
            (
                GossipMsg::Digest(window(
                    (0..=DIGEST_ORIGINS_MAX as u32)
                        .map(|o| entry(o, 1, vec![]))
                        .collect(),
                )),
                DropReason::Oversized,
            ),
            (
                GossipMsg::Digest(window(vec![entry(
                    1,
                    0,
                    (1..=DIGEST_SEQS_MAX as u32 + 1).collect(),
                )])),
                DropReason::Oversized,
            ),
            // Replies and repairs: too many rumors, or nothing at all.
            (
                GossipMsg::Reply {
                    rumors: rumors(5),
                    wants: vec![],
                },
                DropReason::Oversized,
            ),
            (
                GossipMsg::Reply {
                    rumors: vec![],
                    wants: vec![],
                },
                DropReason::Malformed,
            ),
            (
                GossipMsg::Reply {
                    rumors: rumors(1),
                    wants: vec![entry(3, 0, vec![]), entry(3, 0, vec![])],
                },
                DropReason::Malformed,
            ),
            (GossipMsg::Repair(rumors(5)), DropReason::Oversized),
            (GossipMsg::Repair(vec![]), DropReason::Malformed),
        ];
        let mut expected = [0u64; DropReason::ALL.len()];
        for (msg, reason) in cases {
            let shown = format!("{msg:?}");
            let effects = node
                .step(
                    Time::ZERO,
                    crate::Input::Message {
                        from: NodeId(1),
                        msg,
                    },
                )
                .count();
            assert_eq!(effects, 0, "{shown}");
            expected[reason as usize] += 1;
            assert_eq!(node.stats().rejected, expected, "{shown}");
        }
        // Within bounds, the same shapes pass.
        let fine = node
            .step(
                Time::ZERO,
                crate::Input::Message {
                    from: NodeId(1),
                    msg: GossipMsg::Repair(rumors(4)),
                },
            )
            .count();
        assert_eq!(fine, 4, "four deliveries");
        assert_eq!(node.stats().rejected, expected);

        // A node without anti-entropy refuses its messages as unexpected.
        let mut plain = node_with_origins(GossipConfig::default(), 2);
        let _ = plain.step(
            Time::ZERO,
            crate::Input::Message {
                from: NodeId(1),
                msg: GossipMsg::Digest(window(vec![])),
            },
        );
        assert_eq!(plain.stats().rejected[DropReason::Unexpected as usize], 1);
    }

    #[test]
    fn without_anti_entropy_only_pushes_are_sent() {
        for (config, digests_wanted) in [(GossipConfig::default(), false), (repairing(), true)] {
            let mut node = node_with_origins(config, 3);
            let mut digests = 0;
            let end = Time(Duration::from_secs(30).as_nanos());
            while let Some(at) = node.next_deadline().filter(|&at| at <= end) {
                for effect in node.step(at, crate::Input::Tick) {
                    match effect {
                        crate::Effect::Send {
                            msg: GossipMsg::Push(_),
                            ..
                        } => {}
                        crate::Effect::Send {
                            msg: GossipMsg::Digest(_),
                            ..
                        } => digests += 1,
                        other => panic!("unexpected {other:?}"),
                    }
                }
            }
            assert_eq!(digests > 0, digests_wanted, "{digests}");
            if digests_wanted {
                // One every 0.5 to 1.5 s.
                assert!((20..=60).contains(&digests), "{digests}");
            }
        }
    }
}
