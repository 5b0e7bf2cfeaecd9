//! Layers: whole sans-IO protocols composed on one node, and the notices they pass each other.
//!
//! A composed node (see [`crate::full::Full`], built by the [`compose!`](crate::compose) macro)
//! holds one inner [`Node`] per layer, so each layer keeps its own timers, RNG stream and limits
//! and stays a whole protocol that also runs alone. The composed node is itself a [`Protocol`]:
//! one input goes in, drained effects come out, as for any other protocol.
//!
//! # One input, in order
//!
//! 1. The input reaches exactly one layer: a message by its tag, a timer by its layer, a command
//!    by its variant. `Start` reaches every layer, in registration order.
//! 2. That layer steps. Its sends, broadcasts, events and evidence become the composed node's
//!    effects, in the order it recorded them. Each event it emits may imply notices
//!    ([`Layer::notices_of`]); after the step the layer may add notices from state that carries
//!    no event ([`Layer::drain_notices`]: discovery's routing-table journal).
//! 3. Notices are delivered first in, first out. Each goes to every other layer in registration
//!    order; a layer that cares turns it into one of its own commands ([`Layer::on_notice`]) and
//!    steps on it, which may publish further notices (appended to the queue).
//! 4. When the queue is empty the input is done. At most [`NOTICES_PER_INPUT_MAX`] notices are
//!    delivered per input; any more are dropped and counted.
//!
//! Everything happens inside the one step of the composed node, so a notice reaches its layers
//! at the same virtual instant, in an order fixed by the code, never by a map or a clock.

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::contract::{Context, Effect, Protocol};
use crate::node::{Input, Limits, Node};
use crate::{NodeId, Time};

/// What one layer tells the others on the same node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Notice {
    /// A peer was heard of (local discovery): worth offering to the routing table.
    PeerHeard(NodeId),
    /// The node's neighbour set (discovery's routing table) gained this peer.
    NeighborAdded(NodeId),
    /// The node's neighbour set lost this peer.
    NeighborRemoved(NodeId),
    /// A layer needs this peer monitored whatever the neighbour set does (PBFT's committee).
    Watch(NodeId),
    /// The health layer confirmed this peer dead.
    PeerDead(NodeId),
    /// The health layer saw this peer, once confirmed dead, alive again (a restart).
    PeerAlive(NodeId),
    /// The health layer measured a round trip to this peer (a direct probe's ack).
    PeerRtt(NodeId, crate::Duration),
    /// A verified first-hand outcome of this peer's work (routing): `true` if it was wrong or
    /// too late.
    Observed(NodeId, bool),
    /// Two conflicting statements signed by one peer, found by a layer (PBFT, routing).
    Proof(crate::detection::Proof),
    /// The detection layer's reputation of this peer, in thousandths.
    Trust(NodeId, u16),
    /// The detection layer watches this peer (more spot checks), or stopped.
    Watched(NodeId, bool),
    /// The detection layer quarantined this peer: route nothing to it, ignore its reports.
    Quarantined(NodeId),
    /// A quarantine ran out.
    Released(NodeId),
    /// Proven Byzantine: forget it, refuse its frames, treat its replica as down.
    Isolated(NodeId),
    /// The partition layer's belief changed: whether this node reaches a quorum of validators
    /// (the primary partition). Outside it, operations that need consensus are held.
    Primary(bool),
    /// The partition layer saw this peer, lost in a partition, reachable again: reconcile now.
    Reconnected(NodeId),
    /// PBFT executed operation `op` at sequence `seq` (an agreed write).
    Agreed { op: u64, seq: u64 },
}

impl Notice {
    /// The peer the notice is about, if any.
    pub fn peer(self) -> Option<NodeId> {
        match self {
            Notice::PeerHeard(p)
            | Notice::NeighborAdded(p)
            | Notice::NeighborRemoved(p)
            | Notice::Watch(p)
            | Notice::PeerDead(p)
            | Notice::PeerAlive(p)
            | Notice::PeerRtt(p, _)
            | Notice::Observed(p, _)
            | Notice::Trust(p, _)
            | Notice::Watched(p, _)
            | Notice::Quarantined(p)
            | Notice::Released(p)
            | Notice::Isolated(p)
            | Notice::Reconnected(p) => Some(p),
            Notice::Proof(proof) => Some(proof.accused()),
            Notice::Primary(_) | Notice::Agreed { .. } => None,
        }
    }
}

/// A protocol that can be one layer of a composed node. Every method has a default, so a layer
/// that neither publishes nor hears notices needs only its name.
pub trait Layer: Protocol {
    /// Its key in scenarios and the prefix of its metrics.
    const NAME: &'static str;

    /// Called once when the layer joins a composed node, before it starts.
    fn joined(&mut self) {}

    /// Notices implied by an event this layer emitted.
    fn notices_of(_event: &Self::Event, _out: &mut Vec<Notice>) {}

    /// Notices from state changes that carry no event, drained after every step of this layer.
    fn drain_notices(&mut self, _out: &mut Vec<Notice>) {}

    /// The command this layer takes in reaction to another layer's notice, if any.
    fn on_notice(&self, _notice: Notice) -> Option<Self::Command> {
        None
    }

    /// Bytes of protocol state, for the per-layer memory figures.
    fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

/// Peers whose frames a composed node refuses, at most (the detection layer's isolated peers).
pub const REFUSED_MAX: usize = 65_536;

/// The most notices delivered for one input of a composed node.
pub const NOTICES_PER_INPUT_MAX: usize = 4_096;

/// Notices waiting for delivery within one input, each with the index of the layer that
/// published it (never delivered back to it).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Notices {
    queue: Vec<(usize, Notice)>,
    scratch: Vec<Notice>,
    next: usize,
    /// Notices dropped over [`NOTICES_PER_INPUT_MAX`], over the node's life.
    pub dropped: u64,
    /// Notices delivered, over the node's life.
    pub delivered: u64,
}

impl Notices {
    fn publish(&mut self, from: usize) {
        for notice in self.scratch.drain(..) {
            if self.queue.len() >= NOTICES_PER_INPUT_MAX {
                self.dropped += 1;
            } else {
                self.queue.push((from, notice));
            }
        }
    }

    /// The next notice to deliver in this input, if any.
    pub fn pop(&mut self) -> Option<(usize, Notice)> {
        let next = self.queue.get(self.next).copied();
        match next {
            Some(_) => {
                self.next += 1;
                self.delivered += 1;
            }
            None => {
                self.queue.clear();
                self.next = 0;
            }
        }
        next
    }
}

/// How a composed node wraps one of its layers: the layer's tag in messages, timers and events.
pub trait Member<L: Layer>: Protocol {
    /// The layer's position in the composed node (registration order).
    const INDEX: usize;
    const TIMER: Self::Timer;
    fn message(msg: L::Message) -> Self::Message;
    fn event(event: L::Event) -> Self::Event;
}

/// One layer's place in a composed node: its inner node (if this node runs the layer), the
/// deadline its timer is armed for, and its latest durable state.
pub struct Slot<L: Layer> {
    state: State<L>,
    armed: Option<Time>,
    durable: Option<L::Durable>,
}

/// A layer before the node starts (its part), once started (its inner node), or not run here.
/// One of the three at a time, so a slot is as large as the larger of a part and a node. The node
/// stays inline (not boxed): a step then touches the composed node's own memory only.
#[allow(clippy::large_enum_variant)]
enum State<L: Layer> {
    Absent,
    Part(L),
    Running(Node<L>),
}

impl<L: Layer> Slot<L> {
    /// A slot for `part` (None: this node does not run the layer), restarted from `durable`.
    pub fn new(part: Option<L>, durable: Option<L::Durable>) -> Self {
        Slot {
            state: part.map_or(State::Absent, State::Part),
            armed: None,
            durable,
        }
    }

    pub fn runs(&self) -> bool {
        !matches!(self.state, State::Absent)
    }

    pub fn protocol(&self) -> Option<&L> {
        self.node().map(Node::protocol)
    }

    pub fn node(&self) -> Option<&Node<L>> {
        match &self.state {
            State::Running(node) => Some(node),
            State::Absent | State::Part(_) => None,
        }
    }

    pub fn durable(&self) -> Option<L::Durable> {
        self.durable.clone()
    }

    /// Builds the inner node with its own RNG stream. The seed is drawn whether or not this node
    /// runs the layer, so adding a layer to a role never shifts another layer's numbers.
    pub fn build<C: Protocol>(&mut self, ctx: &mut Context<'_, C>, limits: Limits) {
        let seed = ctx.rng().next_u64();
        if let State::Part(mut part) = std::mem::replace(&mut self.state, State::Absent) {
            part.joined();
            self.state = State::Running(Node::new(
                ctx.id(),
                part,
                ChaCha8Rng::seed_from_u64(seed),
                limits,
            ));
        }
    }

    /// The composed node's timer for this layer fired.
    pub fn fired(&mut self) {
        self.armed = None;
    }

    /// Steps the layer on `input` and carries out its effects through the composed node.
    pub fn step<C: Member<L>>(
        &mut self,
        ctx: &mut Context<'_, C>,
        input: Input<L>,
        notices: &mut Notices,
        dirty: &mut bool,
    ) {
        let Slot {
            state,
            armed,
            durable,
        } = self;
        let State::Running(node) = state else {
            return;
        };
        for effect in node.step(ctx.now(), input) {
            match effect {
                Effect::Send { to, msg } => ctx.send(to, C::message(msg)),
                Effect::Broadcast { msg } => ctx.broadcast(C::message(msg)),
                Effect::Emit(event) => {
                    L::notices_of(&event, &mut notices.scratch);
                    ctx.emit(C::event(event));
                }
                Effect::Persist(d) => {
                    *durable = Some(d);
                    *dirty = true;
                }
                Effect::Evidence(e) => {
                    if let Some(p) = &e.proof {
                        notices.scratch.push(Notice::Proof(**p));
                    }
                    ctx.report(e)
                }
            }
        }
        node.protocol_mut().drain_notices(&mut notices.scratch);
        notices.publish(C::INDEX);
        let next = node.next_deadline();
        if *armed != next {
            *armed = next;
            match next {
                Some(at) => ctx.set_timer(C::TIMER, at.saturating_since(ctx.now())),
                None => ctx.cancel_timer(C::TIMER),
            }
        }
    }

    /// Offers a notice from layer `from`; the layer steps on the command it maps it to, if any.
    pub fn notify<C: Member<L>>(
        &mut self,
        ctx: &mut Context<'_, C>,
        from: usize,
        notice: Notice,
        notices: &mut Notices,
        dirty: &mut bool,
    ) {
        if from == C::INDEX {
            return;
        }
        let Some(cmd) = self.protocol().and_then(|p| p.on_notice(notice)) else {
            return;
        };
        self.step(ctx, Input::Command(cmd), notices, dirty);
    }
}

/// Defines a composed node over a list of layers: its message, timer, event, command and
/// durable types, the parts a driver builds it from, and its [`Protocol`] impl. A new layer joins
/// by implementing [`Layer`] in its own module and adding one line here (see `full.rs`).
#[macro_export]
macro_rules! compose {
    (
        $(#[$meta:meta])*
        pub struct $Full:ident {
            message: $Msg:ident,
            timer: $Timer:ident,
            event: $Event:ident,
            command: $Cmd:ident,
            durable: $Durable:ident,
            parts: $Parts:ident,
        }
        layers {
            $( $field:ident : $ty:ty => $Var:ident, )+
        }
    ) => {
        /// A message of one layer, tagged with its layer.
        #[derive(Clone, Debug, Hash, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $Msg {
            $( $Var(<$ty as $crate::Protocol>::Message), )+
        }

        impl $Msg {
            /// The index of the layer the message belongs to (registration order).
            pub fn layer(&self) -> usize {
                match self {
                    $( $Msg::$Var(_) => $Timer::$Var as usize, )+
                }
            }
        }

        /// One byte of layer tag on top of the layer's own frame.
        impl $crate::Wire for $Msg {
            fn wire_size(&self) -> usize {
                1 + match self {
                    $( $Msg::$Var(m) => $crate::Wire::wire_size(m), )+
                }
            }
        }

        /// One timer per layer, armed at that layer's next deadline.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $Timer {
            $( $Var, )+
        }

        #[derive(Debug, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $Event {
            $( $Var(<$ty as $crate::Protocol>::Event), )+
        }

        impl $Event {
            /// The index of the layer that emitted the event (registration order).
            pub fn layer(&self) -> usize {
                match self {
                    $( $Event::$Var(_) => $Timer::$Var as usize, )+
                }
            }
        }

        #[derive(Debug, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $Cmd {
            $( $Var(<$ty as $crate::Protocol>::Command), )+
        }

        /// Each layer's latest durable state.
        #[derive(Clone, Debug, Default, ::serde::Serialize, ::serde::Deserialize)]
        pub struct $Durable {
            $( pub $field: Option<<$ty as $crate::Protocol>::Durable>, )+
        }

        /// The layer instances a driver builds a node from (None: the node does not run it).
        #[derive(Default)]
        pub struct $Parts {
            $( pub $field: Option<$ty>, )+
        }

        $(#[$meta])*
        pub struct $Full {
            id: Option<$crate::NodeId>,
            limits: $crate::Limits,
            $( $field: $crate::layer::Slot<$ty>, )+
            notices: $crate::layer::Notices,
            dirty: bool,
            /// Peers proven Byzantine (`Notice::Isolated`): their frames are refused.
            refused: std::collections::BTreeSet<$crate::NodeId>,
        }

        $(
            impl $crate::layer::Member<$ty> for $Full {
                const INDEX: usize = $Timer::$Var as usize;
                const TIMER: $Timer = $Timer::$Var;
                fn message(msg: <$ty as $crate::Protocol>::Message) -> $Msg {
                    $Msg::$Var(msg)
                }
                fn event(event: <$ty as $crate::Protocol>::Event) -> $Event {
                    $Event::$Var(event)
                }
            }
        )+

        impl $Full {
            /// The layer names, in registration order (the order notices are delivered in).
            pub const LAYERS: &'static [&'static str] =
                &[ $( <$ty as $crate::layer::Layer>::NAME, )+ ];

            /// A node running the layers in `parts`, restarted from `durable` if given. Inner
            /// nodes get `limits` (message size, effects per step, armed timers).
            pub fn new(parts: $Parts, durable: Option<$Durable>, limits: $crate::Limits) -> Self {
                let durable = durable.unwrap_or_default();
                $Full {
                    id: None,
                    limits,
                    $( $field: $crate::layer::Slot::new(parts.$field, durable.$field), )+
                    notices: $crate::layer::Notices::default(),
                    dirty: false,
                    refused: std::collections::BTreeSet::new(),
                }
            }

            /// The node's id, once started.
            pub fn id(&self) -> Option<$crate::NodeId> {
                self.id
            }

            $(
                pub fn $field(&self) -> Option<&$ty> {
                    self.$field.protocol()
                }
            )+

            /// Which layers this node runs, in registration order.
            pub fn runs(&self) -> Vec<bool> {
                vec![ $( self.$field.runs(), )+ ]
            }

            /// Bytes of protocol state per layer (0 for a layer the node does not run).
            pub fn layer_memory(&self) -> Vec<usize> {
                vec![ $( self.$field.protocol().map_or(0, $crate::layer::Layer::memory_bytes), )+ ]
            }

            /// The inner nodes' own counters (timers refused, effects dropped, oversized sends),
            /// summed over the layers.
            pub fn layer_stats(&self) -> $crate::NodeStats {
                let mut s = $crate::NodeStats::default();
                $( if let Some(n) = self.$field.node() { s.add(n.stats()); } )+
                s
            }

                /// Peers whose frames this node refuses (proven Byzantine).
            pub fn refused(&self) -> usize {
                self.refused.len()
            }

            /// Notices (delivered, dropped over the per-input limit) over this node's life.
            pub fn notice_counts(&self) -> (u64, u64) {
                (self.notices.delivered, self.notices.dropped)
            }

            fn durable(&self) -> $Durable {
                $Durable { $( $field: self.$field.durable(), )+ }
            }

            /// Delivers the queued notices, then persists if any layer did.
            fn settle(&mut self, ctx: &mut $crate::Context<'_, Self>) {
                while let Some((from, notice)) = self.notices.pop() {
                    if let $crate::layer::Notice::Isolated(p) = notice
                        && self.refused.len() < $crate::layer::REFUSED_MAX
                    {
                        self.refused.insert(p);
                    }
                    $(
                        self.$field.notify(ctx, from, notice, &mut self.notices, &mut self.dirty);
                    )+
                }
                if self.dirty {
                    self.dirty = false;
                    ctx.persist(self.durable());
                }
            }
        }

        impl $crate::Protocol for $Full {
            type Message = $Msg;
            type Timer = $Timer;
            type Command = $Cmd;
            type Event = $Event;
            type Durable = $Durable;

            fn on_start(&mut self, ctx: &mut $crate::Context<'_, Self>) {
                self.id = Some(ctx.id());
                $( self.$field.build(ctx, self.limits); )+
                $(
                    self.$field.step(ctx, $crate::Input::Start, &mut self.notices, &mut self.dirty);
                )+
                self.settle(ctx);
            }

            fn on_message(
                &mut self,
                ctx: &mut $crate::Context<'_, Self>,
                from: $crate::NodeId,
                msg: $Msg,
            ) {
                match msg {
                    $(
                        $Msg::$Var(msg) => self.$field.step(
                            ctx,
                            $crate::Input::Message { from, msg },
                            &mut self.notices,
                            &mut self.dirty,
                        ),
                    )+
                }
                self.settle(ctx);
            }

            fn on_timer(&mut self, ctx: &mut $crate::Context<'_, Self>, timer: $Timer) {
                match timer {
                    $(
                        $Timer::$Var => {
                            self.$field.fired();
                            self.$field.step(ctx, $crate::Input::Tick, &mut self.notices, &mut self.dirty);
                        }
                    )+
                }
                self.settle(ctx);
            }

            fn on_command(&mut self, ctx: &mut $crate::Context<'_, Self>, cmd: $Cmd) {
                match cmd {
                    $(
                        $Cmd::$Var(cmd) => self.$field.step(
                            ctx,
                            $crate::Input::Command(cmd),
                            &mut self.notices,
                            &mut self.dirty,
                        ),
                    )+
                }
                self.settle(ctx);
            }

            /// Each layer screens its own messages; one for a layer this node does not run is
            /// unexpected.
            fn check(
                &self,
                from: $crate::NodeId,
                msg: &$Msg,
            ) -> Result<(), $crate::DropReason> {
                if self.refused.contains(&from) {
                    return Err($crate::DropReason::Refused);
                }
                match msg {
                    $(
                        $Msg::$Var(m) => self
                            .$field
                            .protocol()
                            .map_or(Err($crate::DropReason::Unexpected), |p| {
                                $crate::Protocol::check(p, from, m)
                            }),
                    )+
                }
            }
        }
    };
}

/// Notice delivery order, source exclusion and the per-input limit, on three toy layers.
#[cfg(test)]
#[allow(dead_code)]
mod tests {
    use super::*;
    use crate::contract::DropReason;
    use crate::{Effect, Input, Limits, Node, Wire};

    #[derive(Clone, Debug, Hash, serde::Serialize, serde::Deserialize)]
    pub struct Nothing;

    impl Wire for Nothing {
        fn wire_size(&self) -> usize {
            0
        }
    }

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    pub enum Cmd {
        /// Arm the timer 5 ns from now.
        Arm,
        /// Publish these notices (after this step).
        Publish(Vec<Notice>),
        /// A notice from another layer.
        Heard(Notice),
    }

    /// Records every notice it hears as an event; on hearing `react.0` it publishes `react.1`.
    pub struct Toy {
        react: Option<(Notice, Notice)>,
        pending: Vec<Notice>,
        fired: u32,
    }

    impl Protocol for Toy {
        type Message = Nothing;
        type Timer = ();
        type Command = Cmd;
        type Event = Notice;
        type Durable = ();

        fn on_start(&mut self, _: &mut Context<'_, Self>) {}
        fn on_message(&mut self, _: &mut Context<'_, Self>, _: NodeId, _: Nothing) {}
        fn on_timer(&mut self, _: &mut Context<'_, Self>, _: ()) {}
        fn on_command(&mut self, ctx: &mut Context<'_, Self>, cmd: Cmd) {
            match cmd {
                Cmd::Arm => {}
                Cmd::Publish(notices) => self.pending.extend(notices),
                Cmd::Heard(n) => {
                    ctx.emit(n);
                    if let Some((on, then)) = self.react
                        && on == n
                    {
                        self.pending.push(then);
                    }
                }
            }
        }
        fn check(&self, _: NodeId, _: &Nothing) -> Result<(), DropReason> {
            Ok(())
        }
    }

    impl Layer for Toy {
        const NAME: &'static str = "toy";

        fn drain_notices(&mut self, out: &mut Vec<Notice>) {
            out.append(&mut self.pending);
        }

        fn on_notice(&self, notice: Notice) -> Option<Cmd> {
            Some(Cmd::Heard(notice))
        }
    }

    pub struct ToyA(Toy);
    pub struct ToyB(Toy);
    pub struct ToyC(Toy);

    macro_rules! delegate {
        ($t:ident) => {
            impl Protocol for $t {
                type Message = Nothing;
                type Timer = ();
                type Command = Cmd;
                type Event = Notice;
                type Durable = ();
                fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
                    let _ = ctx;
                }
                fn on_message(&mut self, _: &mut Context<'_, Self>, _: NodeId, _: Nothing) {}
                /// Reports each firing and re-arms for the same instant, three times in all.
                fn on_timer(&mut self, ctx: &mut Context<'_, Self>, _: ()) {
                    self.0.fired += 1;
                    ctx.emit(Notice::Watch(NodeId(self.0.fired)));
                    if self.0.fired < 3 {
                        ctx.set_timer((), crate::Duration::ZERO);
                    }
                }
                fn on_command(&mut self, ctx: &mut Context<'_, Self>, cmd: Cmd) {
                    match cmd {
                        Cmd::Arm => ctx.set_timer((), crate::Duration::from_nanos(5)),
                        Cmd::Publish(notices) => self.0.pending.extend(notices),
                        Cmd::Heard(n) => {
                            ctx.emit(n);
                            if let Some((on, then)) = self.0.react
                                && on == n
                            {
                                self.0.pending.push(then);
                            }
                        }
                    }
                }
            }
            impl Layer for $t {
                const NAME: &'static str = stringify!($t);
                fn drain_notices(&mut self, out: &mut Vec<Notice>) {
                    self.0.drain_notices(out);
                }
                fn on_notice(&self, notice: Notice) -> Option<Cmd> {
                    self.0.on_notice(notice)
                }
            }
        };
    }
    delegate!(ToyA);
    delegate!(ToyB);
    delegate!(ToyC);

    crate::compose! {
        /// Three toy layers.
        pub struct Three {
            message: ThreeMessage,
            timer: ThreeTimer,
            event: ThreeEvent,
            command: ThreeCommand,
            durable: ThreeDurable,
            parts: ThreeParts,
        }
        layers {
            a: ToyA => A,
            b: ToyB => B,
            c: ToyC => C,
        }
    }

    fn toy(react: Option<(Notice, Notice)>) -> Toy {
        Toy {
            react,
            pending: Vec::new(),
            fired: 0,
        }
    }

    /// Who heard what, in order: (layer index, notice).
    fn heard(node: &mut Node<Three>, cmd: ThreeCommand) -> Vec<(usize, Notice)> {
        node.step(crate::Time(1), Input::Command(cmd))
            .filter_map(|e| match e {
                Effect::Emit(ThreeEvent::A(n)) => Some((0, n)),
                Effect::Emit(ThreeEvent::B(n)) => Some((1, n)),
                Effect::Emit(ThreeEvent::C(n)) => Some((2, n)),
                _ => None,
            })
            .collect()
    }

    fn node(b_reacts: bool) -> Node<Three> {
        use rand_core::SeedableRng;
        let (dead1, alive1) = (Notice::PeerDead(NodeId(1)), Notice::PeerAlive(NodeId(1)));
        let parts = ThreeParts {
            a: Some(ToyA(toy(None))),
            b: Some(ToyB(toy(b_reacts.then_some((dead1, alive1))))),
            c: Some(ToyC(toy(None))),
        };
        let mut node = Node::new(
            NodeId(0),
            Three::new(parts, None, Limits::default()),
            ChaCha8Rng::seed_from_u64(1),
            Limits::default(),
        );
        let _ = node.step(crate::Time(0), Input::Start).count();
        node
    }

    #[test]
    fn notices_go_first_in_first_out_to_every_other_layer_in_registration_order() {
        let mut node = node(true);
        let (d1, d2, a1) = (
            Notice::PeerDead(NodeId(1)),
            Notice::PeerDead(NodeId(2)),
            Notice::PeerAlive(NodeId(1)),
        );
        let got = heard(&mut node, ThreeCommand::A(Cmd::Publish(vec![d1, d2])));
        // A's two notices reach B then C, in order; B's reaction to the first is queued behind
        // them and reaches A (not B itself) and C.
        assert_eq!(
            got,
            vec![(1, d1), (2, d1), (1, d2), (2, d2), (0, a1), (2, a1)]
        );
        assert_eq!(node.protocol().notice_counts(), (3, 0));
    }

    /// A layer that re-arms its timer for the very instant it fired at is woken again: the
    /// composed timer is re-armed even though the layer's deadline did not move.
    #[test]
    fn a_layer_timer_re_armed_for_the_same_instant_fires_again() {
        let mut node = node(false);
        let _ = heard(&mut node, ThreeCommand::A(Cmd::Arm));
        let mut fired = Vec::new();
        while let Some(at) = node.next_deadline() {
            fired.extend(node.step(at, Input::Tick).filter_map(|e| match e {
                Effect::Emit(ThreeEvent::A(Notice::Watch(k))) => Some((at, k.0)),
                _ => None,
            }));
            assert!(fired.len() <= 3, "{fired:?}");
        }
        let t = crate::Time(6);
        assert_eq!(fired, vec![(t, 1), (t, 2), (t, 3)]);
    }

    #[test]
    fn notices_over_the_limit_are_dropped_and_counted() {
        let mut node = node(false);
        let many: Vec<Notice> = (0..NOTICES_PER_INPUT_MAX as u32 + 10)
            .map(|i| Notice::PeerHeard(NodeId(i)))
            .collect();
        let got = heard(&mut node, ThreeCommand::C(Cmd::Publish(many)));
        assert_eq!(got.len(), 2 * NOTICES_PER_INPUT_MAX);
        assert_eq!(
            node.protocol().notice_counts(),
            (NOTICES_PER_INPUT_MAX as u64, 10)
        );
        // The next input starts with an empty queue.
        let got = heard(
            &mut node,
            ThreeCommand::C(Cmd::Publish(vec![Notice::Watch(NodeId(5))])),
        );
        assert_eq!(
            got,
            vec![(0, Notice::Watch(NodeId(5))), (1, Notice::Watch(NodeId(5)))]
        );
    }
}
