//! Kademlia keys (256 bits, XOR metric) and the k-bucket routing table.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

use crate::pbft::mix;
use crate::{NodeId, Time};

/// A 256-bit identifier, most significant word first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key(pub [u64; 4]);

impl Key {
    /// The id a node derives from its public key (here: from its index and the run's key seed),
    /// so anyone can check that an id belongs to an address.
    pub fn of(node: NodeId, seed: u64) -> Key {
        let base = mix(seed, 0x6b61_6400_0000_0000 | u64::from(node.0));
        Key([mix(base, 1), mix(base, 2), mix(base, 3), mix(base, 4)])
    }

    pub fn random(rng: &mut ChaCha8Rng) -> Key {
        Key([
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64(),
        ])
    }

    pub fn distance(self, other: Key) -> Key {
        Key([
            self.0[0] ^ other.0[0],
            self.0[1] ^ other.0[1],
            self.0[2] ^ other.0[2],
            self.0[3] ^ other.0[3],
        ])
    }

    /// The bucket `other` falls in from `self`: the index of the highest differing bit
    /// (255 for the farthest half of the space), or None for the same key.
    pub fn bucket(self, other: Key) -> Option<u8> {
        let d = self.distance(other);
        (0..4).find(|&w| d.0[w] != 0).map(|w| {
            let bit = 63 - d.0[w].leading_zeros() as usize;
            ((3 - w) * 64 + bit) as u8
        })
    }

    /// A random key in bucket `b` of `self`: the bits above `b` equal, bit `b` flipped, the
    /// bits below random.
    pub fn random_in_bucket(self, b: u8, rng: &mut ChaCha8Rng) -> Key {
        let (w, bit) = (3 - b as usize / 64, b as usize % 64);
        let mut out = self.0;
        let below = (1u64 << bit) - 1;
        let above = if bit == 63 { 0 } else { !0u64 << (bit + 1) };
        out[w] = (self.0[w] & above) | (!self.0[w] & (1u64 << bit)) | (rng.next_u64() & below);
        for word in out.iter_mut().skip(w + 1) {
            *word = rng.next_u64();
        }
        Key(out)
    }
}

/// A peer as the routing table knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Contact {
    pub key: Key,
    pub node: NodeId,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Bucket {
    /// Least recently seen first.
    contacts: Vec<Contact>,
    /// A contact waiting for the head's liveness check: (candidate, nonce of the ping).
    pending: Option<(Contact, u64)>,
    /// When a lookup last touched this bucket's range.
    touched: Time,
}

/// What `RoutingTable::seen` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seen {
    Refreshed,
    Inserted,
    /// The bucket is full: ping its least recently seen contact, keep the newcomer waiting.
    CheckHead(Contact),
    /// The bucket is full and already checking its head: the newcomer is dropped.
    Dropped,
    Me,
}

/// k-buckets over the 256-bit space; only non-empty buckets are stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoutingTable {
    me: Key,
    k: usize,
    buckets: BTreeMap<u8, Bucket>,
    len: usize,
    /// Contacts added (true) and removed (false) since the last `take_changes`, when kept.
    journal: Option<Vec<(NodeId, bool)>>,
}

impl RoutingTable {
    pub fn new(me: Key, k: usize) -> Self {
        RoutingTable {
            me,
            k,
            buckets: BTreeMap::new(),
            len: 0,
            journal: None,
        }
    }

    /// Keeps a journal of contacts added and removed, for a layer that follows the table.
    pub fn keep_journal(&mut self) {
        self.journal = Some(Vec::new());
    }

    /// The contacts added (true) and removed (false) since the last call, in order.
    pub fn take_changes(&mut self) -> Vec<(NodeId, bool)> {
        self.drain_changes().collect()
    }

    /// As [`RoutingTable::take_changes`], draining in place: the journal keeps its buffer, so a
    /// layer that follows the table allocates nothing per step.
    pub fn drain_changes(&mut self) -> impl Iterator<Item = (NodeId, bool)> + '_ {
        self.journal.iter_mut().flat_map(|j| j.drain(..))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn buckets(&self) -> impl Iterator<Item = (u8, usize)> + '_ {
        self.buckets
            .iter()
            .map(|(&b, bucket)| (b, bucket.contacts.len()))
    }

    pub fn contains(&self, key: Key) -> bool {
        self.me
            .bucket(key)
            .and_then(|b| self.buckets.get(&b))
            .is_some_and(|bucket| bucket.contacts.iter().any(|c| c.key == key))
    }

    /// A message arrived from `c`: move it to the tail of its bucket, or insert it, or (bucket
    /// full) ask for the head's liveness check.
    pub fn seen(&mut self, c: Contact) -> Seen {
        let Some(b) = self.me.bucket(c.key) else {
            return Seen::Me;
        };
        let bucket = self.buckets.entry(b).or_default();
        if let Some(i) = bucket.contacts.iter().position(|x| x.key == c.key) {
            let contact = bucket.contacts.remove(i);
            bucket.contacts.push(contact);
            return Seen::Refreshed;
        }
        if bucket.contacts.len() < self.k {
            bucket.contacts.push(c);
            self.len += 1;
            if let Some(j) = self.journal.as_mut() {
                j.push((c.node, true));
            }
            return Seen::Inserted;
        }
        if bucket.pending.is_some() {
            return Seen::Dropped;
        }
        Seen::CheckHead(bucket.contacts[0])
    }

    /// Inserts `c` only if its bucket has room (unverified referrals never evict anyone).
    pub fn offer(&mut self, c: Contact) -> bool {
        let Some(b) = self.me.bucket(c.key) else {
            return false;
        };
        let bucket = self.buckets.entry(b).or_default();
        if bucket.contacts.len() >= self.k || bucket.contacts.iter().any(|x| x.key == c.key) {
            return false;
        }
        bucket.contacts.push(c);
        self.len += 1;
        if let Some(j) = self.journal.as_mut() {
            j.push((c.node, true));
        }
        true
    }

    /// Records that `candidate` waits for the liveness check (ping `nonce`) of its bucket's head.
    pub fn set_pending(&mut self, candidate: Contact, nonce: u64) {
        if let Some(b) = self.me.bucket(candidate.key)
            && let Some(bucket) = self.buckets.get_mut(&b)
        {
            bucket.pending = Some((candidate, nonce));
        }
    }

    /// The head answered (or the check is moot): the candidate is dropped.
    pub fn clear_pending(&mut self, head: Key) {
        if let Some(b) = self.me.bucket(head)
            && let Some(bucket) = self.buckets.get_mut(&b)
        {
            bucket.pending = None;
        }
    }

    /// The head did not answer: evict it; the waiting candidate takes its place.
    pub fn evict_for_pending(&mut self, head: Key) -> bool {
        let Some(b) = self.me.bucket(head) else {
            return false;
        };
        let Some(bucket) = self.buckets.get_mut(&b) else {
            return false;
        };
        let Some((candidate, _)) = bucket.pending.take() else {
            return false;
        };
        if let Some(i) = bucket.contacts.iter().position(|x| x.key == head) {
            let gone = bucket.contacts.remove(i);
            bucket.contacts.push(candidate);
            if let Some(j) = self.journal.as_mut() {
                j.push((gone.node, false));
                j.push((candidate.node, true));
            }
            return true;
        }
        false
    }

    /// Removes a contact that failed to answer.
    pub fn remove(&mut self, key: Key) -> bool {
        let Some(b) = self.me.bucket(key) else {
            return false;
        };
        let Some(bucket) = self.buckets.get_mut(&b) else {
            return false;
        };
        let Some(i) = bucket.contacts.iter().position(|x| x.key == key) else {
            return false;
        };
        let gone = bucket.contacts.remove(i);
        self.len -= 1;
        if let Some(j) = self.journal.as_mut() {
            j.push((gone.node, false));
        }
        if bucket.contacts.is_empty() && bucket.pending.is_none() {
            self.buckets.remove(&b);
        }
        true
    }

    /// The `count` contacts closest to `target`, closest first.
    ///
    /// XOR geometry spares a full sort: every bucket's contacts form a contiguous run of the
    /// distance order, so buckets are visited closest run first and only the bucket being
    /// taken is sorted. With `x = me ^ target` and `b` its highest bit (the bucket of `target`):
    /// bucket `b` comes first; a bucket `j < b` holds distances equal to `x` above bit `j` and
    /// opposite to it at bit `j`, so the buckets below `b` whose bit `j` of `x` is set come next,
    /// highest first, then those whose bit is clear, lowest first; then the buckets above `b`,
    /// each farther than the last. Usually bucket `b` and its neighbours already give `count`.
    pub fn closest(&self, target: Key, count: usize) -> Vec<Contact> {
        let mut out: Vec<Contact> = Vec::with_capacity(count.min(self.len));
        let x = self.me.distance(target);
        let bit = |j: u8| (x.0[3 - usize::from(j) / 64] >> (j % 64)) & 1 == 1;
        let mut scratch: Vec<Contact> = Vec::new();
        // Appends the bucket's contacts, closest first, up to `count` in all; false once full.
        let mut take = |bucket: &Bucket, out: &mut Vec<Contact>| -> bool {
            let room = count - out.len();
            if bucket.contacts.len() <= room {
                let start = out.len();
                out.extend_from_slice(&bucket.contacts);
                out[start..].sort_by_key(|c| c.key.distance(target));
            } else if room == 1 {
                // The first of the closest, as the sort below would put it first.
                out.extend(
                    bucket
                        .contacts
                        .iter()
                        .min_by_key(|c| c.key.distance(target)),
                );
            } else {
                scratch.clear();
                scratch.extend_from_slice(&bucket.contacts);
                scratch.sort_by_key(|c| c.key.distance(target));
                out.extend_from_slice(&scratch[..room]);
            }
            out.len() < count
        };
        if count == 0 {
            return out;
        }
        let split = self.me.bucket(target);
        if let Some(b) = split {
            if let Some(bucket) = self.buckets.get(&b)
                && !take(bucket, &mut out)
            {
                return out;
            }
            for (&j, bucket) in self.buckets.range(..b).rev() {
                if bit(j) && !take(bucket, &mut out) {
                    return out;
                }
            }
            for (&j, bucket) in self.buckets.range(..b) {
                if !bit(j) && !take(bucket, &mut out) {
                    return out;
                }
            }
        }
        let above = match split {
            None => self.buckets.range(..),
            Some(b) => self
                .buckets
                .range((std::ops::Bound::Excluded(b), std::ops::Bound::Unbounded)),
        };
        for (_, bucket) in above {
            if !take(bucket, &mut out) {
                break;
            }
        }
        out
    }

    /// Up to `count` contacts drawn uniformly.
    pub fn sample(&self, count: usize, rng: &mut ChaCha8Rng) -> Vec<Contact> {
        let all: Vec<Contact> = self
            .buckets
            .values()
            .flat_map(|b| b.contacts.iter().copied())
            .collect();
        if all.len() <= count {
            return all;
        }
        let picks = crate::random::sample_indices(rng, all.len(), count);
        picks.into_iter().map(|i| all[i]).collect()
    }

    pub fn touch(&mut self, b: u8, now: Time) {
        if let Some(bucket) = self.buckets.get_mut(&b) {
            bucket.touched = now;
        }
    }

    /// Non-empty buckets no lookup touched since `before`.
    pub fn stale_buckets(&self, before: Time) -> Vec<u8> {
        self.buckets
            .iter()
            .filter(|(_, b)| b.touched < before && !b.contacts.is_empty())
            .map(|(&i, _)| i)
            .collect()
    }

    /// Every contact (for metrics).
    pub fn contacts(&self) -> impl Iterator<Item = Contact> + '_ {
        self.buckets
            .values()
            .flat_map(|b| b.contacts.iter().copied())
    }

    /// Bytes this table holds (contacts, buckets), for the memory-per-node metric.
    pub fn memory_bytes(&self) -> usize {
        self.buckets
            .values()
            .map(|b| 64 + b.contacts.capacity() * std::mem::size_of::<Contact>())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn buckets_follow_the_highest_differing_bit() {
        let a = Key([0, 0, 0, 0]);
        assert_eq!(a.bucket(Key([0, 0, 0, 1])), Some(0));
        assert_eq!(a.bucket(Key([0, 0, 0, 2])), Some(1));
        assert_eq!(a.bucket(Key([0, 0, 1, 0])), Some(64));
        assert_eq!(a.bucket(Key([1 << 63, 0, 0, 0])), Some(255));
        assert_eq!(a.bucket(a), None);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let me = Key::random(&mut rng);
        for b in [0u8, 5, 63, 64, 100, 191, 200, 255] {
            for _ in 0..20 {
                assert_eq!(me.bucket(me.random_in_bucket(b, &mut rng)), Some(b));
            }
        }
    }

    #[test]
    fn a_full_bucket_checks_its_head_before_evicting() {
        let me = Key([0, 0, 0, 0]);
        let mut t = RoutingTable::new(me, 2);
        let c = |x: u64| Contact {
            key: Key([1 << 63, 0, 0, x]),
            node: NodeId(x as u32),
        };
        assert_eq!(t.seen(c(1)), Seen::Inserted);
        assert_eq!(t.seen(c(2)), Seen::Inserted);
        assert_eq!(t.seen(c(1)), Seen::Refreshed);
        // c(2) is now the least recently seen.
        assert_eq!(t.seen(c(3)), Seen::CheckHead(c(2)));
        t.set_pending(c(3), 9);
        assert_eq!(t.seen(c(4)), Seen::Dropped);
        assert!(t.evict_for_pending(c(2).key));
        assert!(t.contains(c(3).key) && !t.contains(c(2).key));
        assert_eq!(t.len(), 2);
        assert_eq!(t.closest(Key([1 << 63, 0, 0, 3]), 1), vec![c(3)]);
    }

    #[test]
    fn closest_matches_a_full_sort() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let me = Key::random(&mut rng);
        let mut t = RoutingTable::new(me, 8);
        for i in 0..2_000u32 {
            // Half near `me` (deep buckets), half anywhere.
            let key = if i % 2 == 0 {
                me.random_in_bucket((i % 40) as u8, &mut rng)
            } else {
                Key::random(&mut rng)
            };
            t.offer(Contact {
                key,
                node: NodeId(i),
            });
        }
        let all: Vec<Contact> = t.contacts().collect();
        for round in 0..300u32 {
            let target = match round % 3 {
                0 => Key::random(&mut rng),
                1 => me.random_in_bucket((round % 256) as u8, &mut rng),
                _ => me,
            };
            let mut want = all.clone();
            want.sort_by_key(|c| c.key.distance(target));
            for count in [1, 8, 20, 100] {
                let expected: Vec<Contact> = want.iter().take(count).copied().collect();
                assert_eq!(t.closest(target, count), expected);
            }
        }
    }

    #[test]
    fn stale_buckets_are_the_non_empty_ones_untouched_since_and_samples_are_distinct_members() {
        let me = Key([0, 0, 0, 0]);
        let mut t = RoutingTable::new(me, 3);
        assert_eq!(t.memory_bytes(), 0);
        let c = |b: u8, x: u64| Contact {
            key: key_with_bucket(b, x),
            node: NodeId(u32::from(b) * 100 + x as u32),
        };
        fn key_with_bucket(b: u8, x: u64) -> Key {
            let mut k = [0u64; 4];
            k[3 - usize::from(b) / 64] = 1u64 << (b % 64);
            k[3] |= if b >= 64 { x } else { x & ((1u64 << b) - 1) };
            Key(k)
        }
        for (b, x) in [(10u8, 1u64), (10, 2), (70, 1), (200, 5)] {
            assert!(t.offer(c(b, x)));
        }
        assert!(t.memory_bytes() > 0);
        t.touch(10, Time(5));
        t.touch(70, Time(9));
        // Touching a bucket that holds nothing creates nothing.
        t.touch(99, Time(9));
        assert_eq!(t.buckets().count(), 3);
        assert_eq!(t.stale_buckets(Time(5)), vec![200]);
        assert_eq!(t.stale_buckets(Time(6)), vec![10, 200]);
        assert_eq!(t.stale_buckets(Time(10)), vec![10, 70, 200]);
        assert!(t.remove(c(200, 5).key));
        assert_eq!(t.stale_buckets(Time(10)), vec![10, 70]);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let all: Vec<Contact> = t.contacts().collect();
        assert_eq!(all.len(), 3);
        assert_eq!(t.sample(3, &mut rng).len(), 3);
        assert_eq!(t.sample(10, &mut rng).len(), 3);
        for _ in 0..20 {
            let s = t.sample(2, &mut rng);
            assert_eq!(s.len(), 2);
            assert_ne!(s[0], s[1]);
            assert!(s.iter().all(|x| all.contains(x)));
        }
        assert!(t.sample(0, &mut rng).is_empty());
    }

    /// Property tests against a model: buckets as plain vectors (least recently seen first) with
    /// the pending candidate, closest() as a brute-force sort of every contact by XOR distance.
    mod model {
        use super::*;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Op {
            Seen(usize),
            Offer(usize),
            Remove(usize),
            SetPending(usize),
            ClearPending(usize),
            Evict(usize),
            Closest(usize, usize),
        }

        #[derive(Default)]
        struct Model {
            buckets: BTreeMap<u8, (Vec<Contact>, Option<Contact>)>,
            journal: Vec<(NodeId, bool)>,
        }

        /// A key in bucket `b` of `me` (bit `b` of the distance is its highest), lower bits from
        /// `low`.
        fn key_in(me: Key, b: u8, low: u64) -> Key {
            let mut d = [0u64; 4];
            let w = 3 - usize::from(b) / 64;
            let bit = u32::from(b) % 64;
            d[w] = (1u64 << bit) | (low & ((1u64 << bit) - 1));
            for (i, word) in d.iter_mut().enumerate().skip(w + 1) {
                *word = low.rotate_left(i as u32 * 17);
            }
            me.distance(Key(d))
        }

        fn ops() -> impl Strategy<Value = Op> {
            let i = 0usize..40;
            prop_oneof![
                4 => i.clone().prop_map(Op::Seen),
                3 => i.clone().prop_map(Op::Offer),
                2 => i.clone().prop_map(Op::Remove),
                1 => i.clone().prop_map(Op::SetPending),
                1 => i.clone().prop_map(Op::ClearPending),
                1 => i.clone().prop_map(Op::Evict),
                2 => (i, 0usize..12).prop_map(|(t, c)| Op::Closest(t, c)),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            #[test]
            fn the_table_behaves_like_its_model(
                me in any::<[u64; 4]>(),
                k in 1usize..5,
                // Few buckets (low, middle, high), so buckets fill and contacts compete.
                spots in proptest::collection::vec(
                    (prop_oneof![0u8..3, 62u8..66, 253u8..=255], any::<u64>()),
                    40,
                ),
                script in proptest::collection::vec(ops(), 1..200),
            ) {
                let me = Key(me);
                // Index 0 is this node itself; the rest are distinct keys.
                let mut keys = vec![me];
                for &(b, low) in &spots[1..] {
                    let key = key_in(me, b, low);
                    if !keys.contains(&key) {
                        keys.push(key);
                    }
                }
                let contact = |i: usize| {
                    let i = i % keys.len();
                    Contact { key: keys[i], node: NodeId(i as u32) }
                };
                let mut table = RoutingTable::new(me, k);
                table.keep_journal();
                let mut m = Model::default();
                for op in script {
                    match op {
                        Op::Seen(i) => {
                            let c = contact(i);
                            let want = match me.bucket(c.key) {
                                None => Seen::Me,
                                Some(b) => {
                                    let (contacts, pending) = m.buckets.entry(b).or_default();
                                    if let Some(at) = contacts.iter().position(|x| x.key == c.key) {
                                        let x = contacts.remove(at);
                                        contacts.push(x);
                                        Seen::Refreshed
                                    } else if contacts.len() < k {
                                        contacts.push(c);
                                        m.journal.push((c.node, true));
                                        Seen::Inserted
                                    } else if pending.is_some() {
                                        Seen::Dropped
                                    } else {
                                        Seen::CheckHead(contacts[0])
                                    }
                                }
                            };
                            prop_assert_eq!(table.seen(c), want);
                        }
                        Op::Offer(i) => {
                            let c = contact(i);
                            let want = match me.bucket(c.key) {
                                None => false,
                                Some(b) => {
                                    let (contacts, _) = m.buckets.entry(b).or_default();
                                    if contacts.len() >= k || contacts.iter().any(|x| x.key == c.key) {
                                        false
                                    } else {
                                        contacts.push(c);
                                        m.journal.push((c.node, true));
                                        true
                                    }
                                }
                            };
                            prop_assert_eq!(table.offer(c), want);
                        }
                        Op::Remove(i) => {
                            let c = contact(i);
                            let mut want = false;
                            if let Some(b) = me.bucket(c.key)
                                && let Some((contacts, pending)) = m.buckets.get_mut(&b)
                                && let Some(at) = contacts.iter().position(|x| x.key == c.key)
                            {
                                let gone = contacts.remove(at);
                                m.journal.push((gone.node, false));
                                if contacts.is_empty() && pending.is_none() {
                                    m.buckets.remove(&b);
                                }
                                want = true;
                            }
                            prop_assert_eq!(table.remove(c.key), want);
                        }
                        Op::SetPending(i) => {
                            let c = contact(i);
                            if let Some(b) = me.bucket(c.key)
                                && let Some((_, pending)) = m.buckets.get_mut(&b)
                            {
                                *pending = Some(c);
                            }
                            table.set_pending(c, i as u64);
                        }
                        Op::ClearPending(i) => {
                            let c = contact(i);
                            if let Some(b) = me.bucket(c.key)
                                && let Some((_, pending)) = m.buckets.get_mut(&b)
                            {
                                *pending = None;
                            }
                            table.clear_pending(c.key);
                        }
                        Op::Evict(i) => {
                            let head = contact(i);
                            let mut want = false;
                            if let Some(b) = me.bucket(head.key)
                                && let Some((contacts, pending)) = m.buckets.get_mut(&b)
                                && let Some(candidate) = pending.take()
                                && let Some(at) = contacts.iter().position(|x| x.key == head.key)
                            {
                                let gone = contacts.remove(at);
                                contacts.push(candidate);
                                m.journal.push((gone.node, false));
                                m.journal.push((candidate.node, true));
                                want = true;
                            }
                            prop_assert_eq!(table.evict_for_pending(head.key), want);
                        }
                        Op::Closest(t, count) => {
                            // Targets: the keys themselves and keys next to them.
                            let target = if t % 2 == 0 {
                                contact(t / 2).key
                            } else {
                                let base = contact(t / 2).key;
                                Key([base.0[0], base.0[1], base.0[2], base.0[3] ^ 0b101])
                            };
                            let mut all: Vec<Contact> =
                                m.buckets.values().flat_map(|(c, _)| c.iter().copied()).collect();
                            all.sort_by_key(|c| c.key.distance(target));
                            all.truncate(count);
                            prop_assert_eq!(table.closest(target, count), all);
                        }
                    }
                    // The invariants after every operation.
                    let total: usize = m.buckets.values().map(|(c, _)| c.len()).sum();
                    prop_assert_eq!(table.len(), total);
                    prop_assert_eq!(table.is_empty(), total == 0);
                    // Non-empty buckets and their sizes (a bucket emptied while a candidate
                    // waits may stay stored, empty).
                    let shape: Vec<(u8, usize)> = m
                        .buckets
                        .iter()
                        .filter(|(_, (c, _))| !c.is_empty())
                        .map(|(&b, (c, _))| (b, c.len()))
                        .collect();
                    let actual: Vec<(u8, usize)> =
                        table.buckets().filter(|&(_, len)| len > 0).collect();
                    prop_assert_eq!(actual, shape);
                    for (b, len) in table.buckets() {
                        prop_assert!(len <= k, "bucket {} holds {} > k = {}", b, len, k);
                    }
                    for i in 0..keys.len() {
                        let c = contact(i);
                        let want = me
                            .bucket(c.key)
                            .and_then(|b| m.buckets.get(&b))
                            .is_some_and(|(cs, _)| cs.iter().any(|x| x.key == c.key));
                        prop_assert_eq!(table.contains(c.key), want);
                    }
                    let mut listed: Vec<Contact> = table.contacts().collect();
                    let mut modeled: Vec<Contact> =
                        m.buckets.values().flat_map(|(c, _)| c.iter().copied()).collect();
                    listed.sort_by_key(|c| c.node);
                    modeled.sort_by_key(|c| c.node);
                    prop_assert_eq!(listed, modeled);
                    prop_assert_eq!(table.take_changes(), std::mem::take(&mut m.journal));
                }
            }
        }
    }
}
