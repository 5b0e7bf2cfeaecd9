//! A transmit-limited queue of rumors, as memberlist's `TransmitLimitedQueue`: rumors retransmitted
//! least go first (newest first among equals), each is sent at most `retransmit_mult *
//! ceil(log10(n + 1))` times, and a bounded set of seen ids suppresses duplicates.

use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{Rumor, RumorId};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisseminationStats {
    pub duplicates: u64,
    pub queue_evictions: u64,
    pub retired: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Pending<T> {
    id: RumorId,
    hops: u16,
    payload: T,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Dissemination<T> {
    /// Keyed by (transmissions so far, newest first).
    queue: BTreeMap<(u32, Reverse<u64>), Pending<T>>,
    seen: BTreeSet<RumorId>,
    seen_order: VecDeque<RumorId>,
    arrivals: u64,
    transmit_limit: u32,
    queue_len_max: usize,
    seen_len_max: usize,
    stats: DisseminationStats,
}

impl<T: Clone> Dissemination<T> {
    pub fn new(
        retransmit_mult: u32,
        cluster_size: u32,
        queue_len_max: usize,
        seen_len_max: usize,
    ) -> Self {
        Dissemination {
            queue: BTreeMap::new(),
            seen: BTreeSet::new(),
            seen_order: VecDeque::new(),
            arrivals: 0,
            transmit_limit: transmit_limit(retransmit_mult, cluster_size),
            queue_len_max: queue_len_max.max(1),
            seen_len_max: seen_len_max.max(1),
            stats: DisseminationStats::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn stats(&self) -> DisseminationStats {
        self.stats
    }

    pub fn transmit_limit(&self) -> u32 {
        self.transmit_limit
    }

    /// Takes in a rumor; returns whether it was new to this node.
    pub fn ingest(&mut self, id: RumorId, hops: u16, payload: T) -> bool {
        if self.seen.contains(&id) {
            self.stats.duplicates += 1;
            return false;
        }
        if self.seen_order.len() >= self.seen_len_max
            && let Some(old) = self.seen_order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.seen.insert(id);
        self.seen_order.push_back(id);
        self.push_fresh(id, hops, payload);
        true
    }

    /// Counts a copy the caller recognised as a duplicate by its own record.
    pub fn note_duplicate(&mut self) {
        self.stats.duplicates += 1;
    }

    /// Queues a rumor the caller already knows to be new (it keeps its own, cheaper record of
    /// what it has seen); the seen set is not consulted or grown.
    pub fn push_fresh(&mut self, id: RumorId, hops: u16, payload: T) {
        if self.queue.len() >= self.queue_len_max {
            // Make room by dropping the rumor that has been retransmitted most.
            self.queue.pop_last();
            self.stats.queue_evictions += 1;
        }
        self.arrivals += 1;
        self.queue
            .insert((0, Reverse(self.arrivals)), Pending { id, hops, payload });
    }

    /// Picks up to `max` rumors for one packet and charges each one transmission.
    pub fn select(&mut self, max: usize) -> Vec<Rumor<T>> {
        let mut picked = Vec::with_capacity(max.min(self.queue.len()));
        let mut keep = Vec::new();
        while picked.len() < max {
            let Some(((transmits, order), pending)) = self.queue.pop_first() else {
                break;
            };
            picked.push(Rumor {
                id: pending.id,
                hops: pending.hops,
                payload: pending.payload.clone(),
            });
            if transmits + 1 < self.transmit_limit {
                keep.push(((transmits + 1, order), pending));
            } else {
                self.stats.retired += 1;
            }
        }
        self.queue.extend(keep);
        picked
    }
}

/// memberlist's `retransmitLimit`: mult * ceil(log10(n + 1)).
pub fn transmit_limit(retransmit_mult: u32, cluster_size: u32) -> u32 {
    // The smallest c with 10^c >= n + 1, in integers.
    let target = u64::from(cluster_size) + 1;
    let (mut ceil, mut power) = (0u32, 1u64);
    while power < target {
        power = power.saturating_mul(10);
        ceil += 1;
    }
    retransmit_mult.saturating_mul(ceil.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeId;

    fn id(seq: u32) -> RumorId {
        RumorId {
            origin: NodeId(0),
            seq,
        }
    }

    #[test]
    fn limit_follows_memberlist() {
        assert_eq!(transmit_limit(4, 9), 4); // ceil(log10 10) = 1
        assert_eq!(transmit_limit(4, 10), 8); // ceil(log10 11) = 2
        assert_eq!(transmit_limit(4, 99), 8);
        assert_eq!(transmit_limit(4, 100), 12);
        assert_eq!(transmit_limit(3, 10_000), 15);
    }

    #[test]
    fn least_transmitted_first_and_retired_at_limit() {
        let mut q = Dissemination::new(1, 9, 16, 16); // limit 1
        q.ingest(id(1), 0, ());
        q.ingest(id(2), 0, ());
        let first = q.select(1);
        assert_eq!(first[0].id, id(2), "newest first among equals");
        assert_eq!(q.len(), 1);
        assert_eq!(q.select(5).len(), 1);
        assert!(q.is_empty());
        assert_eq!(q.stats().retired, 2);
    }

    #[test]
    fn queue_and_seen_are_bounded() {
        let mut q = Dissemination::new(4, 100, 3, 5);
        for s in 0..10 {
            assert!(q.ingest(id(s), 0, ()));
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.stats().queue_evictions, 7);
        assert!(!q.ingest(id(9), 0, ()));
        assert!(q.ingest(id(0), 0, ()), "forgotten after the seen window");
    }
}
