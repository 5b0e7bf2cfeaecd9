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
//! The dissemination queue ([`Dissemination`]) is a reusable component: later protocols (health
//! monitoring, Byzantine evidence) piggyback their updates on it.

mod dissemination;
mod peers;

pub use dissemination::{Dissemination, DisseminationStats};
pub use peers::PeerSet;

use crate::{Context, DropReason, Duration, NodeId, Protocol, Wire};

/// Who published a rumor and its sequence number at that publisher: globally unique as long as the
/// publisher persists its counter across restarts (it does: see [`GossipDurable`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RumorId {
    pub origin: NodeId,
    pub seq: u32,
}

/// One rumor on the wire, with the number of hops it has travelled.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rumor<T> {
    pub id: RumorId,
    pub hops: u16,
    pub payload: T,
}

/// A gossip packet: the rumors pushed to one peer in one round.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GossipMsg<T> {
    pub rumors: Vec<Rumor<T>>,
}

/// Bytes of framing per packet and per rumor (ids, hop count, lengths).
const PACKET_HEADER_BYTES: usize = 8;
const RUMOR_HEADER_BYTES: usize = 12;

impl<T: Wire> Wire for GossipMsg<T> {
    fn wire_size(&self) -> usize {
        PACKET_HEADER_BYTES
            + self
                .rumors
                .iter()
                .map(|r| RUMOR_HEADER_BYTES + r.payload.wire_size())
                .sum::<usize>()
    }
}

/// A simulated payload: a size and a tag, without carrying the bytes themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GossipConfig {
    pub interval: Duration,
    pub fanout: u32,
    pub retransmit_mult: u32,
    pub rumors_per_message_max: usize,
    pub queue_len_max: usize,
    pub seen_len_max: usize,
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
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GossipTimer {
    Round,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GossipCommand<T> {
    Publish(T),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GossipEvent {
    Published {
        id: RumorId,
    },
    /// A rumor reached this node for the first time.
    Delivered {
        id: RumorId,
        hops: u16,
    },
}

/// What survives a restart: the publish counter, so rumor ids never repeat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GossipDurable {
    pub next_seq: u32,
}

/// A node that disseminates rumors by push gossip.
#[derive(Debug)]
pub struct Gossip<T> {
    config: GossipConfig,
    peers: PeerSet,
    queue: Dissemination<T>,
    next_seq: u32,
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
        }
    }

    pub fn dissemination(&self) -> &Dissemination<T> {
        &self.queue
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
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, _from: NodeId, msg: GossipMsg<T>) {
        for rumor in msg.rumors {
            let hops = rumor.hops.saturating_add(1);
            if self.queue.ingest(rumor.id, hops, rumor.payload) {
                ctx.emit(GossipEvent::Delivered { id: rumor.id, hops });
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: GossipTimer) {
        match timer {
            GossipTimer::Round => {
                self.round(ctx);
                ctx.set_timer(GossipTimer::Round, self.config.interval);
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
                self.queue.ingest(id, 0, payload);
                ctx.emit(GossipEvent::Published { id });
            }
        }
    }

    fn check(&self, _from: NodeId, msg: &GossipMsg<T>) -> Result<(), DropReason> {
        if msg.rumors.is_empty() || msg.rumors.len() > self.config.rumors_per_message_max {
            return Err(DropReason::Malformed);
        }
        Ok(())
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
            ctx.send(to, GossipMsg { rumors });
        }
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
        let too_many = GossipMsg {
            rumors: (0..100)
                .map(|i| Rumor {
                    id: RumorId {
                        origin: NodeId(1),
                        seq: i,
                    },
                    hops: 0,
                    payload: blob(0),
                })
                .collect(),
        };
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
        let empty = GossipMsg::<Blob> { rumors: vec![] };
        let _ = node.step(
            Time::ZERO,
            crate::Input::Message {
                from: NodeId(1),
                msg: empty,
            },
        );
        assert_eq!(node.stats().rejected_total(), 2);
    }
}
