//! The event queue: a radix heap keyed on virtual time, FIFO among equal times.
//!
//! A discrete-event simulator only ever schedules events at or after the current time, so its
//! keys are monotone, which is exactly what a radix heap (Ahuja, Mehlhorn, Orlin and Tarjan, 1990)
//! needs. Bucket `b` holds events whose time first differs from the last popped time in bit
//! `b - 1`; popping refills from the lowest non-empty bucket, and each event moves down at most 64
//! times over its life, usually a few. Unlike a binary heap, whose sift paths miss the cache once a
//! million events are pending, buckets are scanned sequentially.
//!
//! Ties are broken by insertion order, which makes the order total and the run deterministic, and
//! it costs nothing: every event is always in the bucket its time selects relative to the current
//! `last`, so events with equal times always share a bucket and move together, appended in the
//! order they arrived. Events at the current time sit in `front`, in that order. (The randomized
//! test below checks this against a binary heap keyed on (time, sequence).)

use std::collections::VecDeque;

struct Entry<T> {
    time: u64,
    item: T,
}

pub struct EventQueue<T> {
    last: u64,
    len: usize,
    /// Events at exactly `last`, in insertion order.
    front: VecDeque<Entry<T>>,
    buckets: Vec<Vec<Entry<T>>>,
}

impl<T> Default for EventQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> EventQueue<T> {
    pub fn new() -> Self {
        EventQueue {
            last: 0,
            len: 0,
            front: VecDeque::new(),
            buckets: (0..65).map(|_| Vec::new()).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Schedules `item` at `time`. A time before the last popped one, or before the last time
    /// `peek_time` returned (peeking moves the queue's present to the earliest event), is a
    /// driver bug; it is clamped to the present so the order stays well defined.
    pub fn push(&mut self, time: u64, item: T) {
        debug_assert!(time >= self.last, "event scheduled in the past");
        let time = time.max(self.last);
        self.len += 1;
        let entry = Entry { time, item };
        if time == self.last {
            self.front.push_back(entry);
        } else {
            self.buckets[bucket(time ^ self.last)].push(entry);
        }
    }

    /// Removes the earliest event (the first scheduled among equal times).
    pub fn pop(&mut self) -> Option<(u64, T)> {
        if self.front.is_empty() {
            self.refill();
        }
        let entry = self.front.pop_front()?;
        self.len -= 1;
        Some((entry.time, entry.item))
    }

    /// An event due soon: the `k`-th among those at the earliest pending time, or the last of them
    /// if there are fewer. A hint for cache prefetching only.
    pub fn peek_ahead(&self, k: usize) -> Option<&T> {
        self.front
            .get(k)
            .or_else(|| self.front.back())
            .map(|e| &e.item)
    }

    /// The time of the earliest event, without removing it. Later pushes must not be earlier
    /// than it (the engine peeks only to pop next).
    pub fn peek_time(&mut self) -> Option<u64> {
        if self.front.is_empty() {
            self.refill();
        }
        self.front.front().map(|e| e.time)
    }

    fn refill(&mut self) {
        let Some(b) = (1..self.buckets.len()).find(|&b| !self.buckets[b].is_empty()) else {
            return;
        };
        let mut drained = std::mem::take(&mut self.buckets[b]);
        let min = drained.iter().map(|e| e.time).min().unwrap_or(self.last);
        self.last = min;
        for entry in drained.drain(..) {
            if entry.time == min {
                self.front.push_back(entry);
            } else {
                self.buckets[bucket(entry.time ^ min)].push(entry);
            }
        }
        // Keep the drained bucket's allocation for reuse.
        self.buckets[b] = drained;
    }
}

/// The bucket for a key differing from `last` by `diff`: one past the highest differing bit.
fn bucket(diff: u64) -> usize {
    (64 - diff.leading_zeros()) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::{Rng, SeedableRng};
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    #[test]
    fn pops_in_time_then_insertion_order() {
        let mut q = EventQueue::new();
        q.push(5, 'a');
        q.push(3, 'b');
        q.push(5, 'c');
        q.push(3, 'd');
        q.push(0, 'e');
        let order: Vec<char> = std::iter::from_fn(|| q.pop().map(|(_, c)| c)).collect();
        assert_eq!(order, vec!['e', 'b', 'd', 'a', 'c']);
    }

    #[test]
    fn matches_a_binary_heap_under_random_interleaving() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut q = EventQueue::new();
        let mut reference = BinaryHeap::new();
        let mut now = 0u64;
        let mut seq = 0u64;
        for _ in 0..200_000 {
            if rng.next_u32() % 3 != 0 || reference.is_empty() {
                // Mix of zero, tiny, and huge delays, with many ties.
                let delay = match rng.next_u32() % 4 {
                    0 => 0,
                    1 => u64::from(rng.next_u32() % 8),
                    2 => u64::from(rng.next_u32() % 100_000),
                    _ => rng.next_u64() >> 20,
                };
                q.push(now + delay, seq);
                reference.push(Reverse((now + delay, seq)));
                seq += 1;
            } else {
                let Reverse((t, s)) = reference.pop().unwrap();
                assert_eq!(q.pop(), Some((t, s)));
                now = t;
            }
            assert_eq!(q.len(), reference.len());
        }
        while let Some(Reverse((t, s))) = reference.pop() {
            assert_eq!(q.pop(), Some((t, s)));
        }
        assert!(q.pop().is_none());
    }

    #[test]
    fn pushes_at_the_present_keep_fifo_order_after_a_refill() {
        let mut q = EventQueue::new();
        q.push(10, 1);
        q.push(10, 2);
        assert_eq!(q.pop(), Some((10, 1)));
        q.push(10, 3);
        q.push(11, 4);
        assert_eq!(q.pop(), Some((10, 2)));
        assert_eq!(q.pop(), Some((10, 3)));
        assert_eq!(q.peek_time(), Some(11));
        assert_eq!(q.pop(), Some((11, 4)));
    }

    mod model {
        use super::super::EventQueue;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Op {
            /// Schedule at now + delay.
            Push(u64),
            Pop,
            PeekTime,
            PeekAhead(usize),
        }

        fn delay() -> impl Strategy<Value = u64> {
            prop_oneof![
                3 => Just(0u64),
                3 => 0u64..8,
                2 => 0u64..100_000,
                1 => any::<u64>().prop_map(|x| x >> 20),
                1 => (0u32..64).prop_map(|b| 1u64 << b),
            ]
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                5 => delay().prop_map(Op::Push),
                4 => Just(Op::Pop),
                1 => Just(Op::PeekTime),
                1 => (0usize..4).prop_map(Op::PeekAhead),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

            /// The queue pops exactly what a sorted list of (time, insertion number) would,
            /// with any interleaving of pushes (never before the last popped time) and pops.
            #[test]
            fn pops_in_time_then_insertion_order_like_a_sorted_model(
                script in proptest::collection::vec(op(), 1..400),
            ) {
                let mut q = EventQueue::new();
                // (time, seq): the model, kept sorted.
                let mut model: Vec<(u64, u64)> = Vec::new();
                let (mut now, mut seq) = (0u64, 0u64);
                for op in script {
                    match op {
                        Op::Push(d) => {
                            let t = now.saturating_add(d);
                            q.push(t, seq);
                            let at = model.partition_point(|&e| e <= (t, seq));
                            model.insert(at, (t, seq));
                            seq += 1;
                        }
                        Op::Pop => {
                            let want = (!model.is_empty()).then(|| model.remove(0));
                            prop_assert_eq!(q.pop(), want);
                            if let Some((t, _)) = want {
                                now = t;
                            }
                        }
                        Op::PeekTime => {
                            let want = model.first().map(|e| e.0);
                            prop_assert_eq!(q.peek_time(), want);
                            // Peeking moves the present: later pushes come at or after it.
                            if let Some(t) = want {
                                now = t;
                                // The earliest events are now in front: the hint is the next one.
                                prop_assert_eq!(q.peek_ahead(0), model.first().map(|e| &e.1));
                            }
                        }
                        Op::PeekAhead(k) => {
                            // A hint among the events at the earliest time, if any are in front.
                            if let Some(&x) = q.peek_ahead(k) {
                                let first = model.first().map(|e| e.0);
                                prop_assert!(
                                    model.iter().any(|&(t, s)| s == x && Some(t) == first),
                                    "peek_ahead({}) = {} not among the earliest", k, x
                                );
                            }
                        }
                    }
                    prop_assert_eq!(q.len(), model.len());
                    prop_assert_eq!(q.is_empty(), model.is_empty());
                }
                for want in model {
                    prop_assert_eq!(q.pop(), Some(want));
                }
                prop_assert_eq!(q.pop(), None);
                prop_assert_eq!(q.peek_time(), None);
            }
        }
    }
}
