//! Push-pull anti-entropy for gossip: Scuttlebutt-style digests (van Renesse, Dumitriu, Gough and
//! Thomas, 2008, "Efficient reconciliation and flow control for anti-entropy protocols").
//!
//! Each node summarises what it has seen per origin as a [`Known`]: every sequence number below
//! `contiguous`, plus a bounded sparse set above it. Publishers number their rumors 0, 1, 2, ...,
//! so the summary of a node that missed nothing is one number per origin, as Scuttlebutt's
//! per-origin version. A [`Digest`] carries those summaries for a window of origins; the peer that
//! receives it answers with the rumors it stores that the digest lacks and with its own summaries
//! of the origins where the digest shows something it lacks (the pull), and the initiator sends
//! those rumors back (the push). Both sides end with the union of what they store.
//!
//! Everything is bounded: a digest names at most [`DIGEST_ORIGINS_MAX`] origins (more are covered
//! over rounds by a rotating window of origin ids) and at most [`DIGEST_SEQS_MAX`] sparse sequence
//! numbers per origin; a reply carries at most `rumors_max` rumors; the store keeps the newest
//! `store_max` rumors. A rumor evicted from every store that held it can no longer be repaired, and
//! a hole more than [`SPARSE_MAX`] rumors of the same origin behind is given up (counted as seen,
//! so it is never asked for again).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{Rumor, RumorId};
use crate::{Duration, NodeId};

/// The most origins one digest names.
pub const DIGEST_ORIGINS_MAX: usize = 256;
/// The most sparse sequence numbers one digest entry lists.
pub const DIGEST_SEQS_MAX: usize = 64;
/// The most sequence numbers above the contiguous prefix a node remembers per origin.
pub const SPARSE_MAX: usize = 1_024;
/// The most origins a node summarises; rumors of further origins are still delivered (the push
/// queue's seen set suppresses their duplicates) but not reconciled.
pub const ORIGINS_MAX: usize = 1 << 20;

/// Anti-entropy settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AntiEntropy {
    /// Mean time between a node's anti-entropy rounds (each is jittered to 0.5 to 1.5 times it).
    pub interval: Duration,
    /// The most rumors in one reply or repair message.
    pub rumors_max: usize,
    /// The most rumors a node stores for repair; the oldest is evicted first.
    pub store_max: usize,
}

impl Default for AntiEntropy {
    fn default() -> Self {
        AntiEntropy {
            interval: Duration::from_secs(1),
            rumors_max: 64,
            store_max: 4_096,
        }
    }
}

/// One origin in a digest: the sender has seen every sequence number below `contiguous` and those
/// in `above` (strictly increasing, each above `contiguous`). `more` says it has seen further
/// numbers above the last one listed, which it left out: the receiver then assumes nothing about
/// numbers past the last listed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DigestEntry {
    pub origin: NodeId,
    pub contiguous: u32,
    pub above: Vec<u32>,
    pub more: bool,
}

impl DigestEntry {
    /// Whether the sender of this entry has seen `seq`, or said nothing about it.
    fn covers(&self, seq: u32) -> bool {
        if seq < self.contiguous {
            return true;
        }
        match self.above.last() {
            Some(&last) if self.more && seq > last => true,
            _ => self.above.binary_search(&seq).is_ok(),
        }
    }

    fn is_consistent(&self) -> bool {
        self.above.len() <= DIGEST_SEQS_MAX
            && self.above.first().is_none_or(|&s| s > self.contiguous)
            && self.above.windows(2).all(|w| w[0] < w[1])
            && (!self.more || self.above.len() == DIGEST_SEQS_MAX)
    }

    fn is_empty(&self) -> bool {
        self.contiguous == 0 && self.above.is_empty()
    }
}

/// What a node has seen of the origins in `lo..=hi` (every origin it knows in that window is
/// listed; an origin of the window it does not list, it has seen nothing of).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Digest {
    pub lo: NodeId,
    pub hi: NodeId,
    pub entries: Vec<DigestEntry>,
}

/// Bytes on the wire: the window, and per entry the origin, the prefix, a count (with the `more`
/// flag in its top bit) and 4 bytes per listed sequence number.
const DIGEST_HEADER_BYTES: usize = 8;
const ENTRY_HEADER_BYTES: usize = 10;
const SEQ_BYTES: usize = 4;

pub(super) fn entries_wire_size(entries: &[DigestEntry]) -> usize {
    entries
        .iter()
        .map(|e| ENTRY_HEADER_BYTES + SEQ_BYTES * e.above.len())
        .sum()
}

impl Digest {
    pub(super) fn wire_size(&self) -> usize {
        DIGEST_HEADER_BYTES + entries_wire_size(&self.entries)
    }
}

/// Entries are well formed: at most [`DIGEST_ORIGINS_MAX`], each listing at most
/// [`DIGEST_SEQS_MAX`] numbers (else `Err(true)`, oversized), origins strictly increasing and each
/// entry consistent (else `Err(false)`, malformed).
pub(super) fn check_entries(entries: &[DigestEntry]) -> Result<(), bool> {
    if entries.len() > DIGEST_ORIGINS_MAX || entries.iter().any(|e| e.above.len() > DIGEST_SEQS_MAX)
    {
        return Err(true);
    }
    let ordered = entries.windows(2).all(|w| w[0].origin < w[1].origin);
    if !ordered || !entries.iter().all(DigestEntry::is_consistent) {
        return Err(false);
    }
    Ok(())
}

/// As [`check_entries`], and every entry inside the window.
pub(super) fn check_digest(d: &Digest) -> Result<(), bool> {
    check_entries(&d.entries)?;
    let inside = d.lo <= d.hi && d.entries.iter().all(|e| (d.lo..=d.hi).contains(&e.origin));
    if inside { Ok(()) } else { Err(false) }
}

/// What a node has seen of one origin.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Known {
    /// Every sequence number below this one has been seen; this one has not.
    contiguous: u32,
    /// Seen numbers above `contiguous`, at most [`SPARSE_MAX`].
    sparse: BTreeSet<u32>,
}

impl Known {
    fn knows(&self, seq: u32) -> bool {
        seq < self.contiguous || self.sparse.contains(&seq)
    }

    /// Records `seq`; returns whether it was new.
    fn learn(&mut self, seq: u32) -> bool {
        if self.knows(seq) {
            return false;
        }
        if seq == self.contiguous {
            self.contiguous += 1;
        } else {
            self.sparse.insert(seq);
            if self.sparse.len() > SPARSE_MAX {
                // Give up the oldest hole: jump past the lowest number seen above it.
                if let Some(low) = self.sparse.pop_first() {
                    self.contiguous = low.saturating_add(1);
                }
            }
        }
        while self.sparse.first() == Some(&self.contiguous) {
            self.sparse.pop_first();
            self.contiguous = self.contiguous.saturating_add(1);
        }
        true
    }

    fn entry(&self, origin: NodeId) -> DigestEntry {
        let above: Vec<u32> = self.sparse.iter().take(DIGEST_SEQS_MAX).copied().collect();
        DigestEntry {
            origin,
            contiguous: self.contiguous,
            more: self.sparse.len() > above.len(),
            above,
        }
    }

    /// Whether the sender of `entry` has seen a number this node has not.
    fn lacks_from(&self, entry: &DigestEntry) -> bool {
        // `contiguous` itself is unseen here, so a longer prefix there holds it.
        entry.contiguous > self.contiguous || entry.above.iter().any(|&s| !self.knows(s))
    }
}

/// Counters for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AntiEntropyStats {
    /// Digests sent (rounds started).
    pub rounds: u64,
    /// Rumors sent in replies and repairs.
    pub rumors_sent: u64,
    /// Rumors first received through anti-entropy.
    pub repaired: u64,
    /// Rumors evicted from the store.
    pub evictions: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Stored<T> {
    hops: u16,
    payload: T,
}

/// Which origins to reconcile.
pub(super) enum Origins {
    /// Every origin in a window (a digest).
    Window(NodeId, NodeId),
    /// Only the entries' origins (a reply's wants).
    Listed,
}

/// The anti-entropy state of one node: per-origin summaries, the rumors kept for repair, and the
/// rotating digest window.
#[derive(Debug, Serialize, Deserialize)]
pub struct Reconciler<T> {
    config: AntiEntropy,
    known: BTreeMap<NodeId, Known>,
    store: BTreeMap<RumorId, Stored<T>>,
    order: VecDeque<RumorId>,
    cursor: u32,
    stats: AntiEntropyStats,
}

impl<T: Clone> Reconciler<T> {
    pub fn new(config: AntiEntropy) -> Self {
        Reconciler {
            config,
            known: BTreeMap::new(),
            store: BTreeMap::new(),
            order: VecDeque::new(),
            cursor: 0,
            stats: AntiEntropyStats::default(),
        }
    }

    pub fn config(&self) -> AntiEntropy {
        self.config
    }

    pub fn stats(&self) -> AntiEntropyStats {
        self.stats
    }

    pub(super) fn stats_mut(&mut self) -> &mut AntiEntropyStats {
        &mut self.stats
    }

    /// Rumors stored for repair.
    pub fn stored(&self) -> usize {
        self.store.len()
    }

    /// Whether this node has seen `id`.
    pub fn knows(&self, id: RumorId) -> bool {
        self.known.get(&id.origin).is_some_and(|k| k.knows(id.seq))
    }

    /// Records a rumor seen for the first time (as far as the caller knows) and stores it;
    /// returns false if the summary already held it.
    pub fn learn(&mut self, id: RumorId, hops: u16, payload: &T) -> bool {
        let tracked = self.known.len();
        let fresh = match self.known.entry(id.origin) {
            std::collections::btree_map::Entry::Occupied(mut k) => k.get_mut().learn(id.seq),
            std::collections::btree_map::Entry::Vacant(slot) => {
                if tracked < ORIGINS_MAX {
                    slot.insert(Known::default()).learn(id.seq);
                }
                true
            }
        };
        if fresh && self.config.store_max > 0 {
            if self.order.len() >= self.config.store_max
                && let Some(old) = self.order.pop_front()
            {
                self.store.remove(&old);
                self.stats.evictions += 1;
            }
            self.store.insert(
                id,
                Stored {
                    hops,
                    payload: payload.clone(),
                },
            );
            self.order.push_back(id);
        }
        fresh
    }

    /// The digest of the next window of at most [`DIGEST_ORIGINS_MAX`] known origins; the window
    /// moves on, so every origin id is covered over rounds.
    pub fn digest(&mut self) -> Digest {
        let lo = NodeId(self.cursor);
        let entries: Vec<DigestEntry> = self
            .known
            .range(lo..)
            .take(DIGEST_ORIGINS_MAX)
            .map(|(&o, k)| k.entry(o))
            .collect();
        let last = entries.last().map(|e| e.origin);
        let rest = last.is_some_and(|l| {
            entries.len() == DIGEST_ORIGINS_MAX && self.known.range(l..).nth(1).is_some()
        });
        let hi = match last {
            Some(l) if rest => l,
            _ => NodeId(u32::MAX),
        };
        self.cursor = if rest { hi.0 + 1 } else { 0 };
        Digest { lo, hi, entries }
    }

    /// The stored rumors the sender of `entries` lacks, at most `rumors_max`, by origin then
    /// sequence number.
    pub(super) fn missing(&self, entries: &[DigestEntry], origins: Origins) -> Vec<Rumor<T>> {
        let max = self.config.rumors_max;
        let mut out = Vec::new();
        let entry_of = |o: NodeId| {
            entries
                .binary_search_by_key(&o, |e| e.origin)
                .ok()
                .map(|i| &entries[i])
        };
        let take = |origin: NodeId, entry: Option<&DigestEntry>, out: &mut Vec<Rumor<T>>| {
            let from = RumorId {
                origin,
                seq: entry.map_or(0, |e| e.contiguous),
            };
            let to = RumorId {
                origin,
                seq: u32::MAX,
            };
            for (id, s) in self.store.range(from..=to) {
                if out.len() >= max {
                    return;
                }
                if entry.is_some_and(|e| e.covers(id.seq)) {
                    continue;
                }
                out.push(Rumor {
                    id: *id,
                    hops: s.hops,
                    payload: s.payload.clone(),
                });
            }
        };
        match origins {
            Origins::Listed => {
                for e in entries {
                    if out.len() >= max {
                        break;
                    }
                    take(e.origin, Some(e), &mut out);
                }
            }
            Origins::Window(lo, hi) => {
                let mut next = Some(lo);
                while let Some(at) = next {
                    if out.len() >= max || at > hi {
                        break;
                    }
                    let from = RumorId { origin: at, seq: 0 };
                    let to = RumorId {
                        origin: hi,
                        seq: u32::MAX,
                    };
                    let Some((id, _)) = self.store.range(from..=to).next() else {
                        break;
                    };
                    let origin = id.origin;
                    take(origin, entry_of(origin), &mut out);
                    next = origin.0.checked_add(1).map(NodeId);
                }
            }
        }
        out
    }

    /// This node's entries for the digest's origins where the digest shows something it has not
    /// seen: what it asks the digest's sender for.
    pub(super) fn wants(&self, digest: &Digest) -> Vec<DigestEntry> {
        digest
            .entries
            .iter()
            .filter_map(|e| match self.known.get(&e.origin) {
                Some(k) if k.lacks_from(e) => Some(k.entry(e.origin)),
                Some(_) => None,
                None if !e.is_empty() && self.known.len() < ORIGINS_MAX => {
                    Some(Known::default().entry(e.origin))
                }
                None => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(origin: u32, seq: u32) -> RumorId {
        RumorId {
            origin: NodeId(origin),
            seq,
        }
    }

    #[test]
    fn summaries_compact_and_bound_holes() {
        let mut k = Known::default();
        assert!(k.learn(1));
        assert!(!k.learn(1));
        assert_eq!(k.contiguous, 0);
        assert!(k.learn(0));
        assert_eq!((k.contiguous, k.sparse.len()), (2, 0));
        // A hole at 2 with SPARSE_MAX + 1 numbers above it: the hole is given up.
        for s in 3..(3 + SPARSE_MAX as u32 + 1) {
            k.learn(s);
        }
        assert!(k.sparse.len() <= SPARSE_MAX);
        assert!(k.knows(2), "the hole is given up, never asked for again");
    }

    #[test]
    fn entries_cover_what_they_list_and_nothing_past_an_honest_end() {
        let e = DigestEntry {
            origin: NodeId(0),
            contiguous: 3,
            above: vec![5, 7],
            more: false,
        };
        assert!(e.covers(0) && e.covers(2) && e.covers(5) && e.covers(7));
        assert!(!e.covers(3) && !e.covers(6) && !e.covers(8));
        let truncated = DigestEntry {
            above: (4..4 + DIGEST_SEQS_MAX as u32).collect(),
            more: true,
            ..e
        };
        assert!(
            truncated.covers(10_000),
            "past a truncated list: assume held"
        );
        assert!(!truncated.covers(3));
    }

    #[test]
    fn the_store_is_bounded_and_evicts_the_oldest() {
        let mut r = Reconciler::new(AntiEntropy {
            store_max: 3,
            ..AntiEntropy::default()
        });
        for s in 0..5 {
            assert!(r.learn(id(1, s), 0, &()));
        }
        assert_eq!(r.stored(), 3);
        assert_eq!(r.stats().evictions, 2);
        assert!(r.knows(id(1, 0)), "evicted, but still known");
        let all = r.missing(&[], Origins::Window(NodeId(0), NodeId(u32::MAX)));
        let seqs: Vec<u32> = all.iter().map(|r| r.id.seq).collect();
        assert_eq!(seqs, vec![2, 3, 4]);
    }

    #[test]
    fn the_digest_window_rotates_over_every_origin() {
        let mut r = Reconciler::new(AntiEntropy::default());
        let origins = DIGEST_ORIGINS_MAX as u32 * 2 + 10;
        for o in 0..origins {
            r.learn(id(o * 3, 0), 0, &());
        }
        let mut seen = BTreeSet::new();
        let mut windows = Vec::new();
        for _ in 0..3 {
            let d = r.digest();
            assert!(d.entries.len() <= DIGEST_ORIGINS_MAX);
            assert_eq!(check_digest(&d), Ok(()));
            seen.extend(d.entries.iter().map(|e| e.origin));
            windows.push((d.lo, d.hi));
        }
        assert_eq!(seen.len(), origins as usize);
        assert_eq!(windows[0].0, NodeId(0));
        assert_eq!(windows[1].0.0, windows[0].1.0 + 1, "windows tile the ids");
        assert_eq!(windows[2].1, NodeId(u32::MAX));
        assert_eq!(r.digest().lo, NodeId(0), "and wrap around");
    }

    #[test]
    fn missing_and_wants_are_the_two_halves_of_the_difference() {
        let mut a = Reconciler::new(AntiEntropy::default());
        let mut b = Reconciler::new(AntiEntropy::default());
        for s in 0..4 {
            a.learn(id(1, s), 0, &());
        }
        b.learn(id(1, 0), 0, &());
        b.learn(id(1, 5), 0, &());
        b.learn(id(2, 0), 0, &());
        let d = a.digest();
        // b holds 1:5 and 2:0 that a lacks; a holds 1:1..=3 that b lacks.
        let to_a: Vec<RumorId> = b
            .missing(&d.entries, Origins::Window(d.lo, d.hi))
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(to_a, vec![id(1, 5), id(2, 0)]);
        let wants = b.wants(&d);
        assert_eq!(wants.len(), 1);
        let to_b: Vec<RumorId> = a
            .missing(&wants, Origins::Listed)
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(to_b, vec![id(1, 1), id(1, 2), id(1, 3)]);
    }
}
