//! The sans-IO contract between protocol authors and drivers.
//!
//! A protocol is a plain state machine. It never reads a clock, opens a socket, spawns a thread or
//! touches a global RNG: every callback receives a [`Context`] first, and that context is its only
//! window on the world. Through it a protocol reads `now()`, its `id()` and its own seeded RNG, and
//! records effects (send, broadcast, set or cancel a typed timer, emit an event, persist durable
//! state, report Byzantine evidence). Drivers collect those effects from [`crate::Node::step`] and
//! carry them out: the simulator turns sends into scheduled deliveries, the live adapter into frames.

use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::hash::Hash;

use rand_chacha::ChaCha8Rng;

use crate::node::Core;
use crate::{Duration, NodeId, Time, Wire};

/// A sans-IO protocol state machine. Drivers never call these handlers directly: they go through
/// [`crate::Node::step`], which owns the timer table, the RNG stream and the effect buffer.
pub trait Protocol: Sized {
    /// What travels between nodes. `Hash` feeds the simulator's trace hash.
    type Message: Clone + Debug + Hash + Wire;
    /// A typed timer key: setting a key that is already armed re-arms it.
    type Timer: Copy + Debug + Ord;
    /// What a local user or workload asks of the node.
    type Command: Debug;
    /// What the node reports to observers (delivered, suspected, decided, ...).
    type Event: Debug;
    /// State that survives a crash and restart; everything else is volatile.
    type Durable: Clone + Debug;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>);
    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: Self::Message);
    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: Self::Timer);
    fn on_command(&mut self, ctx: &mut Context<'_, Self>, cmd: Self::Command);

    /// Screens a message from the network before `on_message` sees it. A rejected message is
    /// dropped and counted by reason; it is data, never a panic.
    fn check(&self, _from: NodeId, _msg: &Self::Message) -> Result<(), DropReason> {
        Ok(())
    }
}

/// Why a message from the network was dropped before its handler ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DropReason {
    Malformed,
    Oversized,
    Unauthenticated,
    Replayed,
    Unexpected,
    /// From a peer proven Byzantine (isolated by the detection layer).
    Refused,
}

impl DropReason {
    pub const ALL: [DropReason; 6] = [
        DropReason::Malformed,
        DropReason::Oversized,
        DropReason::Unauthenticated,
        DropReason::Replayed,
        DropReason::Unexpected,
        DropReason::Refused,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::Oversized => "oversized",
            DropReason::Unauthenticated => "unauthenticated",
            DropReason::Replayed => "replayed",
            DropReason::Unexpected => "unexpected",
            DropReason::Refused => "refused",
        }
    }
}

/// Misbehaviour by a peer, reported for the Byzantine fault detector.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Evidence {
    pub accused: NodeId,
    pub kind: EvidenceKind,
    /// The two signed statements that prove it, when the reporter holds both.
    pub proof: Option<Box<crate::detection::Proof>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EvidenceKind {
    /// A message that cannot be valid from an honest sender.
    Malformed,
    /// Two conflicting signed statements for the same slot.
    Equivocation,
    /// A result that contradicts what was asked.
    WrongResult,
}

/// One recorded effect of a step, carried out by the driver.
#[derive(Debug, Serialize, Deserialize)]
pub enum Effect<P: Protocol> {
    Send {
        to: NodeId,
        msg: P::Message,
    },
    /// Send to every peer the driver knows for this node (its neighbours in the topology).
    Broadcast {
        msg: P::Message,
    },
    Emit(P::Event),
    Persist(P::Durable),
    Evidence(Evidence),
}

/// A protocol's window on the world during one callback.
pub struct Context<'a, P: Protocol> {
    pub(crate) now: Time,
    pub(crate) core: &'a mut Core<P>,
}

impl<P: Protocol> Context<'_, P> {
    pub fn now(&self) -> Time {
        self.now
    }

    pub fn id(&self) -> NodeId {
        self.core.id
    }

    /// This node's own random stream, seeded by the driver.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.core.rng
    }

    /// The largest message this node may send; a larger one is dropped at [`Context::send`].
    pub fn message_size_max_bytes(&self) -> usize {
        self.core.limits.message_size_max_bytes
    }

    /// Sends `msg` to `to`. A message over the node's size limit is dropped here and counted.
    pub fn send(&mut self, to: NodeId, msg: P::Message) {
        if msg.wire_size() > self.core.limits.message_size_max_bytes {
            self.core.stats.oversized_sends += 1;
            return;
        }
        self.core.record(Effect::Send { to, msg });
    }

    pub fn broadcast(&mut self, msg: P::Message) {
        if msg.wire_size() > self.core.limits.message_size_max_bytes {
            self.core.stats.oversized_sends += 1;
            return;
        }
        self.core.record(Effect::Broadcast { msg });
    }

    /// Arms `timer` to fire `after` from now, replacing any earlier arming of the same key.
    pub fn set_timer(&mut self, timer: P::Timer, after: Duration) {
        let at = self.now + after;
        self.core.set_timer(timer, at);
    }

    pub fn cancel_timer(&mut self, timer: P::Timer) {
        self.core.timers.cancel(&timer);
    }

    pub fn timer_armed(&self, timer: P::Timer) -> bool {
        self.core.timers.is_armed(&timer)
    }

    pub fn emit(&mut self, event: P::Event) {
        self.core.record(Effect::Emit(event));
    }

    /// Records state that must survive a crash; the driver keeps the latest value.
    pub fn persist(&mut self, durable: P::Durable) {
        self.core.record(Effect::Persist(durable));
    }

    pub fn report(&mut self, evidence: Evidence) {
        self.core.record(Effect::Evidence(evidence));
    }
}
