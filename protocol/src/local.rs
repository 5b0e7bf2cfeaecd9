//! Local discovery, sans-IO, in the manner of mDNS (RFC 6762) as libp2p uses it: a node that
//! starts multicasts a query on its LAN segment (its site); every node that hears a query
//! answers with an announcement, and every node re-announces itself each `interval`. An
//! announcement is cached for `ttl`; a peer not heard again within it expires.
//!
//! Multicast is [`Context::broadcast`]: the driver delivers it to the members of the sender's
//! site (the simulator) or to the link-local multicast group (a live deployment).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::contract::{Context, DropReason, Protocol};
use crate::{Duration, NodeId, Time, Wire};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalConfig {
    /// Re-announcement period.
    pub interval: Duration,
    /// How long an announcement stays valid.
    pub ttl: Duration,
    /// Peers cached at most (a site larger than this is only partly known).
    pub peers_max: usize,
}

impl LocalConfig {
    /// libp2p-mdns: announce every 5 min, records valid 6 min.
    pub fn libp2p() -> Self {
        LocalConfig {
            interval: Duration::from_secs(300),
            ttl: Duration::from_secs(360),
            peers_max: 1_024,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LocalMessage {
    /// "Who is here?" (multicast).
    Query,
    /// "I am here, for `ttl`" (multicast, or unicast in answer to a query).
    Announce { ttl: Duration },
}

/// A DNS-SD query (header and one question) or a response (one PTR, SRV and TXT record).
impl Wire for LocalMessage {
    fn wire_size(&self) -> usize {
        match self {
            LocalMessage::Query => 46,
            LocalMessage::Announce { .. } => 180,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LocalTimer {
    Announce,
    Expire,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LocalEvent {
    /// A peer on the site was heard for the first time (or again after it expired).
    Discovered { peer: NodeId },
    /// A peer's announcement expired.
    Expired { peer: NodeId },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalStats {
    pub queries: u64,
    pub announcements: u64,
    pub discovered: u64,
    pub expired: u64,
    /// Announcements ignored because the cache was full.
    pub cache_full: u64,
}

pub struct Local {
    config: LocalConfig,
    id: NodeId,
    /// Peer -> when its announcement expires.
    cache: BTreeMap<NodeId, Time>,
    stats: LocalStats,
}

impl Local {
    pub fn new(config: LocalConfig, id: NodeId) -> Self {
        Local {
            config,
            id,
            cache: BTreeMap::new(),
            stats: LocalStats::default(),
        }
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn stats(&self) -> LocalStats {
        self.stats
    }

    /// The peers whose announcements are valid.
    pub fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.cache.keys().copied()
    }

    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.cache.len() * 48
    }

    fn announce(&mut self, ctx: &mut Context<'_, Self>, to: Option<NodeId>) {
        self.stats.announcements += 1;
        let msg = LocalMessage::Announce {
            ttl: self.config.ttl,
        };
        match to {
            Some(peer) => ctx.send(peer, msg),
            None => ctx.broadcast(msg),
        }
    }
}

impl Protocol for Local {
    type Message = LocalMessage;
    type Timer = LocalTimer;
    type Command = ();
    type Event = LocalEvent;
    type Durable = ();

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        self.stats.queries += 1;
        ctx.broadcast(LocalMessage::Query);
        self.announce(ctx, None);
        ctx.set_timer(LocalTimer::Announce, self.config.interval);
        ctx.set_timer(LocalTimer::Expire, self.config.ttl);
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: LocalMessage) {
        match msg {
            LocalMessage::Query => self.announce(ctx, Some(from)),
            LocalMessage::Announce { ttl } => {
                let until = ctx.now() + ttl.min(self.config.ttl);
                if let Some(t) = self.cache.get_mut(&from) {
                    *t = (*t).max(until);
                    return;
                }
                if self.cache.len() >= self.config.peers_max {
                    self.stats.cache_full += 1;
                    return;
                }
                self.cache.insert(from, until);
                self.stats.discovered += 1;
                ctx.emit(LocalEvent::Discovered { peer: from });
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: LocalTimer) {
        match timer {
            LocalTimer::Announce => {
                self.announce(ctx, None);
                ctx.set_timer(LocalTimer::Announce, self.config.interval);
            }
            LocalTimer::Expire => {
                let now = ctx.now();
                let gone: Vec<NodeId> = self
                    .cache
                    .iter()
                    .filter(|(_, until)| **until <= now)
                    .map(|(&p, _)| p)
                    .collect();
                for peer in gone {
                    self.cache.remove(&peer);
                    self.stats.expired += 1;
                    ctx.emit(LocalEvent::Expired { peer });
                }
                // Check again when the earliest record expires (or a ttl from now).
                let next = self
                    .cache
                    .values()
                    .min()
                    .map_or(self.config.ttl, |&t| t - now);
                ctx.set_timer(LocalTimer::Expire, next.max(Duration::from_millis(1)));
            }
        }
    }

    fn on_command(&mut self, _ctx: &mut Context<'_, Self>, _cmd: ()) {}

    fn check(&self, from: NodeId, _msg: &LocalMessage) -> Result<(), DropReason> {
        if from == self.id {
            return Err(DropReason::Unexpected);
        }
        Ok(())
    }
}

/// Local discovery as a layer: every peer it discovers is heard of (`PeerHeard`), which discovery
/// offers to its routing table.
impl crate::layer::Layer for Local {
    const NAME: &'static str = "local";

    fn notices_of(event: &LocalEvent, out: &mut Vec<crate::layer::Notice>) {
        if let LocalEvent::Discovered { peer } = event {
            out.push(crate::layer::Notice::PeerHeard(*peer));
        }
    }

    fn memory_bytes(&self) -> usize {
        Local::memory_bytes(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Harness;

    fn config() -> LocalConfig {
        LocalConfig {
            interval: Duration::from_secs(5),
            ttl: Duration::from_secs(12),
            peers_max: 64,
        }
    }

    #[test]
    fn a_site_finds_itself_and_forgets_the_silent() {
        let mut h = Harness::new(8, Duration::from_millis(1), 3, |id| {
            Local::new(config(), id)
        });
        h.start_all();
        h.run_until(Time(1_000_000_000));
        for i in 0..8 {
            let peers: Vec<NodeId> = h.node(NodeId(i)).expect("live").peers().collect();
            assert_eq!(peers.len(), 7, "node {i} knows every other member");
        }
        h.crash(NodeId(5));
        h.run_until(Time(30_000_000_000));
        for i in (0..8).filter(|&i| i != 5) {
            let p = h.node(NodeId(i)).expect("live");
            assert!(
                !p.peers().any(|x| x == NodeId(5)),
                "the crashed peer expired"
            );
            assert_eq!(p.peers().count(), 6, "the live peers stay, re-announced");
        }
    }
}
