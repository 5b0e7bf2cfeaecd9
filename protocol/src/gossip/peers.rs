//! The peers a gossiping node may pick from.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::NodeId;
use crate::random::sample_indices;

/// The peers known to a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerSet {
    /// Every node id in `0..n` (a full view, without storing it).
    All { n: u32 },
    /// An explicit, bounded list.
    List(Vec<NodeId>),
}

impl PeerSet {
    /// How many peers other than the node itself.
    pub fn len(&self) -> usize {
        match self {
            PeerSet::All { n } => n.saturating_sub(1) as usize,
            PeerSet::List(list) => list.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `k` distinct peers other than `me`, uniformly at random (Floyd's algorithm over
    /// positions, so the cost is O(k^2) however many peers there are).
    pub fn sample(&self, rng: &mut ChaCha8Rng, k: usize, me: NodeId) -> Vec<NodeId> {
        let (pool, at) = match self {
            PeerSet::All { n } => {
                let me = me.0;
                let pool = n.saturating_sub(1) as usize;
                let at = move |i: usize| {
                    let i = i as u32;
                    NodeId(if i >= me { i + 1 } else { i })
                };
                return floyd(rng, pool, k, at);
            }
            PeerSet::List(list) => (list.len(), list),
        };
        let picked = floyd(rng, pool, k, |i| at[i]);
        picked.into_iter().filter(|&p| p != me).collect()
    }
}

fn floyd(rng: &mut ChaCha8Rng, pool: usize, k: usize, at: impl Fn(usize) -> NodeId) -> Vec<NodeId> {
    sample_indices(rng, pool, k).into_iter().map(at).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn samples_are_distinct_and_exclude_self() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let peers = PeerSet::All { n: 10 };
        for _ in 0..1000 {
            let mut s = peers.sample(&mut rng, 3, NodeId(4));
            assert_eq!(s.len(), 3);
            assert!(!s.contains(&NodeId(4)));
            s.sort();
            s.dedup();
            assert_eq!(s.len(), 3);
        }
        assert_eq!(peers.sample(&mut rng, 50, NodeId(0)).len(), 9);
    }

    #[test]
    fn list_sampling_uses_only_listed_peers() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let peers = PeerSet::List(vec![NodeId(7), NodeId(9), NodeId(11)]);
        let s = peers.sample(&mut rng, 2, NodeId(0));
        assert!(s.iter().all(|p| [7, 9, 11].contains(&p.0)));
    }
}
