//! A Merkle tree over a fixed number of buckets, for anti-entropy (as Dynamo and Cassandra use
//! it): two replicas compare their trees level by level from the root and descend only into the
//! subtrees whose hashes differ, so they find the buckets that differ without sending the state.
//!
//! The tree is complete and binary, stored in heap order: node 1 is the root, node `i` has
//! children `2i` and `2i + 1`, and the `2^depth` leaves are nodes `2^depth .. 2^(depth+1)`. A
//! leaf's hash is the XOR of its entries' hashes, so an entry is added or replaced in O(1) at the
//! leaf and O(depth) up the path; an inner node hashes its two children in order. An empty
//! subtree hashes to 0 at every level, so empty parts of two trees compare equal for free.
//!
//! Level-by-level comparison of two trees whose leaves differ in `d` of `N = 2^depth` buckets
//! compares the two roots, then both children of every differing node above the leaves: level
//! `l` has at most `min(2^l, 2d)` comparisons, so the total is at most
//! `1 + sum_{l=1..depth} min(2^l, 2d)`, about `2d * (log2(N/d) + 1)`: logarithmic in N for a
//! few differences, and never more than the `2N - 1` nodes of the tree.

use crate::pbft::message::mix;
use serde::{Deserialize, Serialize};

/// The deepest tree a node keeps: 2^24 buckets (256 MiB of hashes) is far past any sensible
/// setting; configurations are validated against it.
pub const DEPTH_MAX: u8 = 24;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merkle {
    depth: u8,
    /// Heap-ordered node hashes; index 0 is unused.
    nodes: Vec<u64>,
}

/// The hash of an inner node: 0 for two empty children, so empty subtrees stay 0.
pub fn inner(left: u64, right: u64) -> u64 {
    if left == 0 && right == 0 {
        0
    } else {
        // Never 0 for a non-empty pair in practice; the domain constant separates inner nodes
        // from leaves.
        mix(mix(0x9e6c_63d0_676a_9a99, left), right) | 1
    }
}

impl Merkle {
    /// An empty tree of `2^depth` buckets; `depth` is clamped to 1..=[`DEPTH_MAX`].
    pub fn new(depth: u8) -> Self {
        let depth = depth.clamp(1, DEPTH_MAX);
        Merkle {
            depth,
            nodes: vec![0; 2usize << depth],
        }
    }

    pub fn depth(&self) -> u8 {
        self.depth
    }

    pub fn buckets(&self) -> u32 {
        1u32 << self.depth
    }

    pub fn root(&self) -> u64 {
        self.nodes[1]
    }

    /// The hash of heap node `index`, or `None` if the tree has no such node.
    pub fn hash(&self, index: u32) -> Option<u64> {
        (index >= 1).then(|| self.nodes.get(index as usize).copied())?
    }

    /// Whether heap node `index` is a leaf (a bucket).
    pub fn is_leaf(&self, index: u32) -> bool {
        index >= self.buckets() && (index as usize) < self.nodes.len()
    }

    /// The level of heap node `index` (the root is level 0), if it exists.
    pub fn level(&self, index: u32) -> Option<u8> {
        (index >= 1 && (index as usize) < self.nodes.len())
            .then(|| (31 - index.leading_zeros()) as u8)
    }

    /// The bucket a leaf node holds.
    pub fn bucket_of_leaf(&self, index: u32) -> u32 {
        index - self.buckets()
    }

    /// The leaf node of a bucket.
    pub fn leaf_of_bucket(&self, bucket: u32) -> u32 {
        bucket + self.buckets()
    }

    /// The bucket a key falls in: the top `depth` bits of its hash.
    pub fn bucket_of_key(&self, key: u64) -> u32 {
        (mix(0x2545_f491_4f6c_dd1d, key) >> (64 - u32::from(self.depth))) as u32
    }

    /// XORs `item` into a bucket's leaf (adding an item, or removing the same item again) and
    /// rehashes the path to the root.
    pub fn toggle(&mut self, bucket: u32, item: u64) {
        let mut i = self.leaf_of_bucket(bucket) as usize;
        self.nodes[i] ^= item;
        while i > 1 {
            i /= 2;
            self.nodes[i] = inner(self.nodes[2 * i], self.nodes[2 * i + 1]);
        }
    }

    /// The nodes among `theirs` (heap index, hash) whose hash differs from this tree's, in the
    /// order given. Indices the tree does not have are skipped (the caller screens them).
    pub fn differing(&self, theirs: &[(u32, u64)]) -> Vec<u32> {
        theirs
            .iter()
            .filter(|&&(i, h)| self.hash(i).is_some_and(|mine| mine != h))
            .map(|&(i, _)| i)
            .collect()
    }

    /// This tree's (index, hash) for both children of each of `parents`.
    pub fn children(&self, parents: &[u32]) -> Vec<(u32, u64)> {
        parents
            .iter()
            .flat_map(|&p| [2 * p, 2 * p + 1])
            .filter_map(|c| self.hash(c).map(|h| (c, h)))
            .collect()
    }

    /// Bytes of hashes held.
    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<u64>()
    }
}

/// What a level-by-level comparison of two trees found and what it cost.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diff {
    /// The buckets whose leaves differ, ascending.
    pub buckets: Vec<u32>,
    /// Hash comparisons made.
    pub comparisons: u64,
    /// Levels visited (the root's included): one message each way per level in a session.
    pub levels: u32,
}

/// Compares two trees of the same depth level by level, as two replicas do over the network
/// (without message bounds): the roots first, then the children of every differing node.
pub fn diff(a: &Merkle, b: &Merkle) -> Diff {
    assert_eq!(a.depth, b.depth, "trees of different depths do not compare");
    let mut out = Diff {
        comparisons: 1,
        levels: 1,
        ..Diff::default()
    };
    if a.root() == b.root() {
        return out;
    }
    let mut frontier = vec![1u32];
    while !frontier.is_empty() && !a.is_leaf(frontier[0]) {
        let theirs = b.children(&frontier);
        out.comparisons += theirs.len() as u64;
        out.levels += 1;
        frontier = a.differing(&theirs);
    }
    out.buckets = frontier.into_iter().map(|i| a.bucket_of_leaf(i)).collect();
    out
}

/// The textbook bound on comparisons for `d` differing buckets of a depth-`depth` tree:
/// `1 + sum_{l=1..depth} min(2^l, 2d)` (0 differing buckets: just the roots).
pub fn comparisons_bound(depth: u8, d: u64) -> u64 {
    if d == 0 {
        return 1;
    }
    1 + (1..=u32::from(depth))
        .map(|l| (1u64 << l).min(2 * d))
        .sum::<u64>()
}
