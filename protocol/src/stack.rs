//! The discovery stack: Kademlia (bootstrap, DHT, peer exchange), and optionally SWIM health
//! monitoring and local (mDNS-style) discovery, composed statically on one node.
//!
//! Each layer is a whole protocol driven through its own [`Node`] (its timers, RNG stream and
//! limits); the stack multiplexes their messages (an enum), gives each one timer at its layer's
//! next deadline, and wires them together:
//! - a peer local discovery hears is offered to the routing table;
//! - SWIM monitors the routing table's contacts (a partial view that follows the table, so its
//!   cost per node does not grow with the network);
//! - a member SWIM confirms dead leaves the routing table.

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use crate::contract::{Context, DropReason, Effect, Protocol};
use crate::kademlia::{KadCommand, KadConfig, KadEvent, KadMessage, Kademlia};
use crate::local::{Local, LocalConfig, LocalEvent, LocalMessage};
use crate::node::{Input, Limits, Node};
use crate::swim::{Swim, SwimCommand, SwimConfig, SwimEvent, SwimMessage};
use crate::{NodeId, Time, Wire};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackConfig {
    pub kad: KadConfig,
    /// Health monitoring of the routing table's contacts (`view_max` bounds the view).
    pub swim: Option<SwimConfig>,
    pub local: Option<LocalConfig>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StackMessage {
    Kad(KadMessage),
    Swim(SwimMessage),
    Local(LocalMessage),
}

/// One byte of layer tag on top of the layer's own frame.
impl Wire for StackMessage {
    fn wire_size(&self) -> usize {
        1 + match self {
            StackMessage::Kad(m) => m.wire_size(),
            StackMessage::Swim(m) => m.wire_size(),
            StackMessage::Local(m) => m.wire_size(),
        }
    }
}

/// One timer per layer, armed at that layer's next deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StackTimer {
    Kad,
    Swim,
    Local,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StackEvent {
    Kad(KadEvent),
    Swim(SwimEvent),
    Local(LocalEvent),
}

/// What one layer asks of another.
#[derive(Clone, Copy, Debug)]
enum Follow {
    Kad(KadCommand),
    Swim(SwimCommand),
}

/// Cross-layer commands handled per input at most (each layer's reaction is bounded anyway).
const FOLLOW_MAX: usize = 4_096;

struct Layers {
    kad: Node<Kademlia>,
    swim: Option<Node<Swim>>,
    local: Option<Node<Local>>,
    /// The deadline each layer's timer is armed for (Kad, Swim, Local).
    armed: [Option<Time>; 3],
}

pub struct Stack {
    config: StackConfig,
    id: NodeId,
    /// SWIM's incarnation from the previous life, if this node restarts.
    durable: Option<u32>,
    layers: Option<Layers>,
}

impl Stack {
    pub fn new(config: StackConfig, id: NodeId, durable: Option<u32>) -> Self {
        Stack {
            config,
            id,
            durable,
            layers: None,
        }
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn kad(&self) -> Option<&Kademlia> {
        self.layers.as_ref().map(|l| l.kad.protocol())
    }

    pub fn swim(&self) -> Option<&Swim> {
        self.layers
            .as_ref()
            .and_then(|l| l.swim.as_ref().map(|s| s.protocol()))
    }

    pub fn local(&self) -> Option<&Local> {
        self.layers
            .as_ref()
            .and_then(|l| l.local.as_ref().map(|s| s.protocol()))
    }

    /// Bytes of protocol state across the layers.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.kad().map_or(0, Kademlia::memory_bytes)
            + self.swim().map_or(0, Swim::memory_bytes)
            + self.local().map_or(0, Local::memory_bytes)
    }

    fn rearm(
        ctx: &mut Context<'_, Self>,
        armed: &mut Option<Time>,
        timer: StackTimer,
        next: Option<Time>,
    ) {
        if *armed == next {
            return;
        }
        *armed = next;
        match next {
            Some(at) => ctx.set_timer(timer, at.saturating_since(ctx.now())),
            None => ctx.cancel_timer(timer),
        }
    }

    fn step_kad(
        &mut self,
        ctx: &mut Context<'_, Self>,
        input: Input<Kademlia>,
        follow: &mut Vec<Follow>,
    ) {
        let Some(l) = self.layers.as_mut() else {
            return;
        };
        for effect in l.kad.step(ctx.now(), input) {
            match effect {
                Effect::Send { to, msg } => ctx.send(to, StackMessage::Kad(msg)),
                Effect::Broadcast { msg } => ctx.broadcast(StackMessage::Kad(msg)),
                Effect::Emit(event) => ctx.emit(StackEvent::Kad(event)),
                Effect::Persist(()) => {}
                Effect::Evidence(e) => ctx.report(e),
            }
        }
        if l.swim.is_some() {
            for (node, added) in l.kad.protocol_mut().take_changes() {
                follow.push(Follow::Swim(if added {
                    SwimCommand::Track(node)
                } else {
                    SwimCommand::Untrack(node)
                }));
            }
        }
        let next = l.kad.next_deadline();
        Self::rearm(ctx, &mut l.armed[0], StackTimer::Kad, next);
    }

    fn step_swim(
        &mut self,
        ctx: &mut Context<'_, Self>,
        input: Input<Swim>,
        follow: &mut Vec<Follow>,
    ) {
        let Some(l) = self.layers.as_mut() else {
            return;
        };
        let Some(swim) = l.swim.as_mut() else {
            return;
        };
        for effect in swim.step(ctx.now(), input) {
            match effect {
                Effect::Send { to, msg } => ctx.send(to, StackMessage::Swim(msg)),
                Effect::Broadcast { msg } => ctx.broadcast(StackMessage::Swim(msg)),
                Effect::Emit(event) => {
                    if let SwimEvent::Confirmed { member } = event {
                        follow.push(Follow::Kad(KadCommand::Forget(member)));
                    }
                    ctx.emit(StackEvent::Swim(event));
                }
                Effect::Persist(incarnation) => ctx.persist(incarnation),
                Effect::Evidence(e) => ctx.report(e),
            }
        }
        let next = swim.next_deadline();
        Self::rearm(ctx, &mut l.armed[1], StackTimer::Swim, next);
    }

    fn step_local(
        &mut self,
        ctx: &mut Context<'_, Self>,
        input: Input<Local>,
        follow: &mut Vec<Follow>,
    ) {
        let Some(l) = self.layers.as_mut() else {
            return;
        };
        let Some(local) = l.local.as_mut() else {
            return;
        };
        for effect in local.step(ctx.now(), input) {
            match effect {
                Effect::Send { to, msg } => ctx.send(to, StackMessage::Local(msg)),
                Effect::Broadcast { msg } => ctx.broadcast(StackMessage::Local(msg)),
                Effect::Emit(event) => {
                    if let LocalEvent::Discovered { peer } = event {
                        follow.push(Follow::Kad(KadCommand::Offer(peer)));
                    }
                    ctx.emit(StackEvent::Local(event));
                }
                Effect::Persist(()) => {}
                Effect::Evidence(e) => ctx.report(e),
            }
        }
        let next = local.next_deadline();
        Self::rearm(ctx, &mut l.armed[2], StackTimer::Local, next);
    }

    /// Carries out what the layers asked of each other, in order.
    fn settle(&mut self, ctx: &mut Context<'_, Self>, mut follow: Vec<Follow>) {
        let mut i = 0;
        while i < follow.len() && i < FOLLOW_MAX {
            let f = follow[i];
            i += 1;
            match f {
                Follow::Kad(cmd) => self.step_kad(ctx, Input::Command(cmd), &mut follow),
                Follow::Swim(cmd) => self.step_swim(ctx, Input::Command(cmd), &mut follow),
            }
        }
    }
}

impl Protocol for Stack {
    type Message = StackMessage;
    type Timer = StackTimer;
    type Command = KadCommand;
    type Event = StackEvent;
    type Durable = u32;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        let id = self.id;
        let mut seed = || ChaCha8Rng::seed_from_u64(ctx.rng().next_u64());
        let (r1, r2, r3) = (seed(), seed(), seed());
        let limits = Limits::default();
        let mut kad = Kademlia::new(self.config.kad.clone(), id);
        if self.config.swim.is_some() {
            kad.keep_journal();
        }
        self.layers = Some(Layers {
            kad: Node::new(id, kad, r1, limits),
            swim: self
                .config
                .swim
                .map(|c| Node::new(id, Swim::new(c, id, self.durable), r2, limits)),
            local: self
                .config
                .local
                .map(|c| Node::new(id, Local::new(c, id), r3, limits)),
            armed: [None; 3],
        });
        let mut follow = Vec::new();
        self.step_local(ctx, Input::Start, &mut follow);
        self.step_swim(ctx, Input::Start, &mut follow);
        self.step_kad(ctx, Input::Start, &mut follow);
        self.settle(ctx, follow);
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: StackMessage) {
        let mut follow = Vec::new();
        match msg {
            StackMessage::Kad(msg) => self.step_kad(ctx, Input::Message { from, msg }, &mut follow),
            StackMessage::Swim(msg) => {
                self.step_swim(ctx, Input::Message { from, msg }, &mut follow)
            }
            StackMessage::Local(msg) => {
                self.step_local(ctx, Input::Message { from, msg }, &mut follow)
            }
        }
        self.settle(ctx, follow);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, timer: StackTimer) {
        let mut follow = Vec::new();
        if let Some(l) = self.layers.as_mut() {
            l.armed[timer as usize] = None;
        }
        match timer {
            StackTimer::Kad => self.step_kad(ctx, Input::Tick, &mut follow),
            StackTimer::Swim => self.step_swim(ctx, Input::Tick, &mut follow),
            StackTimer::Local => self.step_local(ctx, Input::Tick, &mut follow),
        }
        self.settle(ctx, follow);
    }

    fn on_command(&mut self, ctx: &mut Context<'_, Self>, cmd: KadCommand) {
        let mut follow = Vec::new();
        self.step_kad(ctx, Input::Command(cmd), &mut follow);
        self.settle(ctx, follow);
    }

    /// Each layer screens its own messages; a message for a layer this node does not run is
    /// unexpected.
    fn check(&self, from: NodeId, msg: &StackMessage) -> Result<(), DropReason> {
        let Some(l) = self.layers.as_ref() else {
            return Err(DropReason::Unexpected);
        };
        match msg {
            StackMessage::Kad(m) => l.kad.protocol().check(from, m),
            StackMessage::Swim(m) => l
                .swim
                .as_ref()
                .map_or(Err(DropReason::Unexpected), |s| s.protocol().check(from, m)),
            StackMessage::Local(m) => l
                .local
                .as_ref()
                .map_or(Err(DropReason::Unexpected), |s| s.protocol().check(from, m)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::Duration;
    use crate::testing::Harness;

    fn config(n: u32) -> StackConfig {
        StackConfig {
            kad: KadConfig {
                bootstrap: Arc::new(vec![NodeId(0)]),
                join_spread: Duration::from_secs(2),
                ..KadConfig::kademlia()
            },
            swim: Some(SwimConfig {
                view_max: Some(64),
                ..SwimConfig::lan(n)
            }),
            local: None,
        }
    }

    #[test]
    fn health_follows_the_routing_table_and_prunes_the_dead_from_it() {
        let n = 60;
        let c = config(n);
        let mut h = Harness::new(n, Duration::from_millis(10), 5, move |id| {
            Stack::new(c.clone(), id, None)
        });
        h.start_all();
        h.run_until(Time(15_000_000_000));
        let contacts = |h: &Harness<Stack>, i: u32| -> Vec<NodeId> {
            let mut c: Vec<NodeId> = h
                .node(NodeId(i))
                .and_then(Stack::kad)
                .map(|k| k.table().contacts().map(|c| c.node).collect())
                .unwrap_or_default();
            c.sort();
            c
        };
        let view = |h: &Harness<Stack>, i: u32| -> Vec<NodeId> {
            let mut v: Vec<NodeId> = h
                .node(NodeId(i))
                .and_then(Stack::swim)
                .map(|s| s.view().map(|(m, _)| m).collect())
                .unwrap_or_default();
            v.sort();
            v
        };
        for i in 0..n {
            assert!(contacts(&h, i).len() >= 20, "node {i} joined");
            assert_eq!(
                view(&h, i),
                contacts(&h, i),
                "node {i} monitors its contacts"
            );
        }
        let victim = NodeId(7);
        let trackers: Vec<u32> = (0..n)
            .filter(|&i| contacts(&h, i).contains(&victim))
            .collect();
        assert!(trackers.len() > 10);
        h.crash(victim);
        // Suspicion timeout: 4 x log10(60) x 1 s = 7.1 s, after a few periods of detection.
        h.run_until(Time(35_000_000_000));
        for i in (0..n).filter(|&i| NodeId(i) != victim) {
            assert!(
                !contacts(&h, i).contains(&victim),
                "node {i} dropped the dead"
            );
            assert!(
                !view(&h, i).contains(&victim),
                "node {i} stopped monitoring it"
            );
        }
        let confirmed = h
            .events
            .iter()
            .filter(|(_, _, e)| *e == StackEvent::Swim(SwimEvent::Confirmed { member: victim }))
            .count();
        assert!(
            confirmed >= trackers.len() / 2,
            "{confirmed} of {}",
            trackers.len()
        );
        let false_deaths = h
            .events
            .iter()
            .filter(|(_, _, e)| {
                matches!(e, StackEvent::Swim(SwimEvent::Confirmed { member }) if *member != victim)
            })
            .count();
        assert_eq!(false_deaths, 0);
    }
}
