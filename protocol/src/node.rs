//! The shared `Node`: one protocol instance with its timer table, RNG stream and effect buffer.
//!
//! # Driver contract
//!
//! 1. Build a node with [`Node::new`] and call `step(now, Input::Start)` once.
//! 2. Feed one input at a time with [`Node::step`]; `now` never goes backwards.
//!    Drain every returned effect before the next input (the returned iterator borrows the node).
//! 3. After every step, read [`Node::next_deadline`] and call `step(deadline, Input::Tick)` when
//!    virtual (or real) time reaches it. A tick fires every timer due at that time, in the order
//!    they were armed; timers re-armed or cancelled since are stale and are dropped by generation.
//! 4. Keep the latest `Effect::Persist` value. A crash is dropping the node; a restart is a new node
//!    built from that durable state.
//!
//! Limits (effects per step, message size, armed timers) are enforced here, so no protocol can make
//! a driver's queues grow without bound; everything dropped is counted in [`NodeStats`].

use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use rand_chacha::ChaCha8Rng;

use crate::contract::{Context, DropReason, Effect, Protocol};
use crate::{NodeId, Time, Wire};

/// Per-node bounds. Everything that grows with input has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub effects_per_step_max: usize,
    pub message_size_max_bytes: usize,
    pub timers_armed_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            effects_per_step_max: 65_536,
            message_size_max_bytes: 1 << 20,
            timers_armed_max: 4_096,
        }
    }
}

/// What a node dropped or did, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStats {
    pub steps: u64,
    pub timers_fired: u64,
    pub timers_stale: u64,
    pub timers_refused: u64,
    pub effects_dropped: u64,
    pub oversized_sends: u64,
    pub rejected: [u64; DropReason::ALL.len()],
}

impl NodeStats {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    pub fn add(&mut self, other: &NodeStats) {
        self.steps += other.steps;
        self.timers_fired += other.timers_fired;
        self.timers_stale += other.timers_stale;
        self.timers_refused += other.timers_refused;
        self.effects_dropped += other.effects_dropped;
        self.oversized_sends += other.oversized_sends;
        for (a, b) in self.rejected.iter_mut().zip(other.rejected) {
            *a += b;
        }
    }
}

/// One input to a node.
#[derive(Debug, Serialize, Deserialize)]
pub enum Input<P: Protocol> {
    Start,
    Message {
        from: NodeId,
        msg: P::Message,
    },
    Command(P::Command),
    /// Time has reached (at least) the node's next deadline: fire due timers.
    Tick,
}

/// Armed timers. The heap may hold stale entries (re-armed or cancelled keys); the `armed` map is
/// the truth, and an entry fires only if its generation matches.
pub(crate) struct TimerTable<K: Ord + Copy> {
    armed: BTreeMap<K, (Time, u64)>,
    heap: BinaryHeap<Reverse<(Time, u64, K)>>,
    next_generation: u64,
}

impl<K: Ord + Copy> TimerTable<K> {
    fn new() -> Self {
        TimerTable {
            armed: BTreeMap::new(),
            heap: BinaryHeap::new(),
            next_generation: 0,
        }
    }

    pub(crate) fn cancel(&mut self, key: &K) {
        self.armed.remove(key);
    }

    pub(crate) fn is_armed(&self, key: &K) -> bool {
        self.armed.contains_key(key)
    }

    /// Pops the next timer due at `now` that was armed before `generation_limit`.
    fn pop_due(&mut self, now: Time, generation_limit: u64, stats: &mut NodeStats) -> Option<K> {
        while let Some(&Reverse((at, generation, key))) = self.heap.peek() {
            if at > now || generation >= generation_limit {
                return None;
            }
            self.heap.pop();
            if self.armed.get(&key) == Some(&(at, generation)) {
                self.armed.remove(&key);
                return Some(key);
            }
            stats.timers_stale += 1;
        }
        None
    }

    /// Drops stale entries from the top of the heap and rebuilds it when stale entries dominate,
    /// so that `next_deadline` is exact and the heap stays bounded by the armed count.
    fn tidy(&mut self, stats: &mut NodeStats) {
        while let Some(&Reverse((at, generation, key))) = self.heap.peek() {
            if self.armed.get(&key) == Some(&(at, generation)) {
                break;
            }
            self.heap.pop();
            stats.timers_stale += 1;
        }
        if self.heap.len() > 2 * self.armed.len() + 64 {
            stats.timers_stale += (self.heap.len() - self.armed.len()) as u64;
            self.heap = self
                .armed
                .iter()
                .map(|(&key, &(at, generation))| Reverse((at, generation, key)))
                .collect();
        }
    }

    fn next_deadline(&self) -> Option<Time> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }
}

/// Everything of a node except the protocol itself, so a context can borrow it beside the protocol.
pub(crate) struct Core<P: Protocol> {
    pub(crate) id: NodeId,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) timers: TimerTable<P::Timer>,
    pub(crate) limits: Limits,
    pub(crate) stats: NodeStats,
    /// The buffer effects are recorded into during a step (the driver's, swapped in).
    effects: Vec<Effect<P>>,
    /// Effects already in the buffer when the step began (not this step's).
    effects_base: usize,
}

impl<P: Protocol> Core<P> {
    pub(crate) fn record(&mut self, effect: Effect<P>) {
        if self.effects.len() - self.effects_base >= self.limits.effects_per_step_max {
            self.stats.effects_dropped += 1;
            return;
        }
        self.effects.push(effect);
    }

    pub(crate) fn set_timer(&mut self, key: P::Timer, at: Time) {
        let timers = &mut self.timers;
        if !timers.armed.contains_key(&key) && timers.armed.len() >= self.limits.timers_armed_max {
            self.stats.timers_refused += 1;
            return;
        }
        let generation = timers.next_generation;
        timers.next_generation += 1;
        timers.armed.insert(key, (at, generation));
        timers.heap.push(Reverse((at, generation, key)));
    }
}

/// A protocol instance driven through one step function.
pub struct Node<P: Protocol> {
    protocol: P,
    core: Core<P>,
    last_now: Time,
}

impl<P: Protocol> Node<P> {
    pub fn new(id: NodeId, protocol: P, rng: ChaCha8Rng, limits: Limits) -> Self {
        Node {
            protocol,
            core: Core {
                id,
                rng,
                timers: TimerTable::new(),
                limits,
                stats: NodeStats::default(),
                effects: Vec::new(),
                effects_base: 0,
            },
            last_now: Time::ZERO,
        }
    }

    pub fn id(&self) -> NodeId {
        self.core.id
    }

    pub fn protocol(&self) -> &P {
        &self.protocol
    }

    /// For a protocol that composes this node as one of its layers (never for a driver: effects
    /// come only from `step`).
    pub fn protocol_mut(&mut self) -> &mut P {
        &mut self.protocol
    }

    pub fn stats(&self) -> &NodeStats {
        &self.core.stats
    }

    /// Feeds one input and returns the effects it caused, in the order the protocol recorded them.
    pub fn step(&mut self, now: Time, input: Input<P>) -> std::vec::Drain<'_, Effect<P>> {
        let mut effects = std::mem::take(&mut self.core.effects);
        effects.clear();
        self.step_into(now, input, &mut effects);
        self.core.effects = effects;
        self.core.effects.drain(..)
    }

    /// As [`Node::step`], appending the effects to the driver's own buffer (which it must drain
    /// before the next input). Drivers on a hot path use this to avoid a second copy.
    pub fn step_into(&mut self, now: Time, input: Input<P>, effects: &mut Vec<Effect<P>>) {
        debug_assert!(now >= self.last_now, "driver moved time backwards");
        let now = now.max(self.last_now);
        self.last_now = now;
        // The effect limit counts this step's effects only.
        let before = effects.len();
        std::mem::swap(&mut self.core.effects, effects);
        self.core.effects_base = before;
        self.core.stats.steps += 1;
        match input {
            Input::Start => {
                let mut ctx = Context {
                    now,
                    core: &mut self.core,
                };
                self.protocol.on_start(&mut ctx);
            }
            Input::Message { from, msg } => self.deliver(now, from, msg),
            Input::Command(cmd) => {
                let mut ctx = Context {
                    now,
                    core: &mut self.core,
                };
                self.protocol.on_command(&mut ctx, cmd);
            }
            Input::Tick => self.fire_due(now),
        }
        self.core.timers.tidy(&mut self.core.stats);
        std::mem::swap(&mut self.core.effects, effects);
    }

    /// The earliest armed timer, if any: when the driver must call `step(_, Input::Tick)`.
    pub fn next_deadline(&self) -> Option<Time> {
        self.core.timers.next_deadline()
    }

    fn deliver(&mut self, now: Time, from: NodeId, msg: P::Message) {
        let verdict = if msg.wire_size() > self.core.limits.message_size_max_bytes {
            Err(DropReason::Oversized)
        } else {
            self.protocol.check(from, &msg)
        };
        if let Err(reason) = verdict {
            self.core.stats.rejected[reason as usize] += 1;
            return;
        }
        let mut ctx = Context {
            now,
            core: &mut self.core,
        };
        self.protocol.on_message(&mut ctx, from, msg);
    }

    /// Fires the timers due at `now` that were armed before this tick began; a timer armed by a
    /// handler for `now` itself waits for the next tick, so a protocol cannot spin a tick forever.
    fn fire_due(&mut self, now: Time) {
        let generation_limit = self.core.timers.next_generation;
        while let Some(key) = self
            .core
            .timers
            .pop_due(now, generation_limit, &mut self.core.stats)
        {
            self.core.stats.timers_fired += 1;
            let mut ctx = Context {
                now,
                core: &mut self.core,
            };
            self.protocol.on_timer(&mut ctx, key);
        }
    }
}

/// Timers (set, re-armed, cancelled, fired) against a model: a map from key to deadline, fired
/// in (deadline, arming order) order.
#[cfg(test)]
mod timer_model {
    use super::*;
    use crate::Duration;
    use proptest::prelude::*;
    use rand_core::SeedableRng;

    #[derive(Clone, Debug, Hash, Serialize, Deserialize)]
    struct Nothing;

    impl Wire for Nothing {
        fn wire_size(&self) -> usize {
            0
        }
    }

    #[derive(Clone, Copy, Debug, Serialize, Deserialize)]
    enum Cmd {
        Set(u8, u64),
        Cancel(u8),
    }

    /// Arms and cancels timers on command; reports each firing.
    struct Timers;

    impl Protocol for Timers {
        type Message = Nothing;
        type Timer = u8;
        type Command = Cmd;
        type Event = u8;
        type Durable = ();

        fn on_start(&mut self, _: &mut Context<'_, Self>) {}
        fn on_message(&mut self, _: &mut Context<'_, Self>, _: NodeId, _: Nothing) {}
        fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: u8) {
            ctx.emit(timer);
        }
        fn on_command(&mut self, ctx: &mut Context<'_, Self>, cmd: Cmd) {
            match cmd {
                Cmd::Set(key, after) => ctx.set_timer(key, Duration::from_nanos(after)),
                Cmd::Cancel(key) => ctx.cancel_timer(key),
            }
        }
    }

    #[derive(Clone, Debug, Serialize, Deserialize)]
    enum Op {
        Cmd(Cmd),
        /// Advance time by this much and fire what is due.
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => (0u8..6, 0u64..50).prop_map(|(k, d)| Op::Cmd(Cmd::Set(k, d))),
            2 => (0u8..6).prop_map(|k| Op::Cmd(Cmd::Cancel(k))),
            3 => (0u64..40).prop_map(Op::Advance),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn timers_fire_once_in_deadline_order_and_cancelled_ones_never(
            script in proptest::collection::vec(op(), 1..300),
        ) {
            let mut node = Node::new(
                NodeId(0),
                Timers,
                ChaCha8Rng::seed_from_u64(0),
                Limits::default(),
            );
            // key -> (deadline, arming order)
            let mut armed: BTreeMap<u8, (u64, u64)> = BTreeMap::new();
            let (mut now, mut order) = (0u64, 0u64);
            for op in script {
                match op {
                    Op::Cmd(cmd) => {
                        match cmd {
                            Cmd::Set(k, d) => {
                                armed.insert(k, (now + d, order));
                                order += 1;
                            }
                            Cmd::Cancel(k) => {
                                armed.remove(&k);
                            }
                        }
                        let _ = node.step(Time(now), Input::Command(cmd)).count();
                    }
                    Op::Advance(d) => {
                        now += d;
                        let mut due: Vec<(u64, u64, u8)> = armed
                            .iter()
                            .filter(|&(_, &(at, _))| at <= now)
                            .map(|(&k, &(at, o))| (at, o, k))
                            .collect();
                        due.sort();
                        for &(_, _, k) in &due {
                            armed.remove(&k);
                        }
                        let want: Vec<u8> = due.into_iter().map(|(_, _, k)| k).collect();
                        let fired: Vec<u8> = node
                            .step(Time(now), Input::Tick)
                            .filter_map(|e| match e {
                                Effect::Emit(k) => Some(k),
                                _ => None,
                            })
                            .collect();
                        prop_assert_eq!(fired, want);
                    }
                }
                let next = armed.values().map(|&(at, _)| Time(at)).min();
                prop_assert_eq!(node.next_deadline(), next);
            }
        }
    }
}
