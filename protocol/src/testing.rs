//! A tiny deterministic harness for protocol unit tests: n nodes, a constant one-way delay, an
//! optional message filter, one ordered queue. It drives `Node` exactly as the simulator does, so a
//! protocol test exercises the real driver contract without pulling in the simulator crate.

use std::collections::BTreeMap;

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use crate::{Duration, Effect, Input, Limits, Node, NodeId, Protocol, Time};

enum Pending<P: Protocol> {
    Deliver {
        from: NodeId,
        to: NodeId,
        msg: P::Message,
    },
    Tick(NodeId),
}

/// A filter deciding whether a message (from, to, sequence number) is delivered.
pub type LinkFilter = Box<dyn FnMut(NodeId, NodeId, u64) -> bool>;

pub struct Harness<P: Protocol> {
    pub nodes: Vec<Option<Node<P>>>,
    pub now: Time,
    pub delay: Duration,
    pub events: Vec<(Time, NodeId, P::Event)>,
    pub messages_sent: u64,
    pub durable: Vec<Option<P::Durable>>,
    queue: BTreeMap<(Time, u64), Pending<P>>,
    seq: u64,
    filter: Option<LinkFilter>,
}

impl<P: Protocol> Harness<P> {
    pub fn new(n: u32, delay: Duration, seed: u64, mut make: impl FnMut(NodeId) -> P) -> Self {
        let nodes = (0..n)
            .map(|i| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream(u64::from(i));
                Some(Node::new(
                    NodeId(i),
                    make(NodeId(i)),
                    rng,
                    Limits::default(),
                ))
            })
            .collect();
        Harness {
            nodes,
            now: Time::ZERO,
            delay,
            events: Vec::new(),
            messages_sent: 0,
            durable: (0..n).map(|_| None).collect(),
            queue: BTreeMap::new(),
            seq: 0,
            filter: None,
        }
    }

    /// Drops every message for which `filter(from, to, seq)` is false.
    pub fn with_filter(
        mut self,
        filter: impl FnMut(NodeId, NodeId, u64) -> bool + 'static,
    ) -> Self {
        self.filter = Some(Box::new(filter));
        self
    }

    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.input(NodeId(i as u32), Input::Start);
        }
    }

    pub fn command(&mut self, node: NodeId, cmd: P::Command) {
        self.input(node, Input::Command(cmd));
    }

    pub fn crash(&mut self, node: NodeId) {
        self.nodes[node.index()] = None;
    }

    /// Restarts a crashed node as `protocol` (built from its durable state by the caller), with
    /// a fresh RNG stream, and starts it.
    pub fn restart(&mut self, id: NodeId, protocol: P, seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(u64::from(id.0) + (1 << 32));
        self.nodes[id.index()] = Some(Node::new(id, protocol, rng, Limits::default()));
        self.input(id, Input::Start);
    }

    pub fn node(&self, id: NodeId) -> Option<&P> {
        self.nodes[id.index()].as_ref().map(Node::protocol)
    }

    /// Runs every queued input up to and including `until`.
    pub fn run_until(&mut self, until: Time) {
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > until {
                break;
            }
            let ((at, _), pending) = entry.remove_entry();
            self.now = at;
            match pending {
                Pending::Deliver { from, to, msg } => self.input(to, Input::Message { from, msg }),
                Pending::Tick(node) => {
                    let due = self.nodes[node.index()]
                        .as_ref()
                        .and_then(Node::next_deadline)
                        .is_some_and(|d| d <= at);
                    if due {
                        self.input(node, Input::Tick);
                    }
                }
            }
        }
        self.now = self.now.max(until);
    }

    fn push(&mut self, at: Time, pending: Pending<P>) {
        self.seq += 1;
        self.queue.insert((at, self.seq), pending);
    }

    fn input(&mut self, id: NodeId, input: Input<P>) {
        let now = self.now;
        let Some(node) = self.nodes[id.index()].as_mut() else {
            return;
        };
        let effects: Vec<Effect<P>> = node.step(now, input).collect();
        let deadline = node.next_deadline();
        let n = self.nodes.len() as u32;
        for effect in effects {
            match effect {
                Effect::Send { to, msg } => self.transmit(id, to, msg),
                Effect::Broadcast { msg } => {
                    for to in (0..n).map(NodeId).filter(|&to| to != id) {
                        self.transmit(id, to, msg.clone());
                    }
                }
                Effect::Emit(event) => self.events.push((now, id, event)),
                Effect::Persist(durable) => self.durable[id.index()] = Some(durable),
                Effect::Evidence(_) => {}
            }
        }
        if let Some(at) = deadline {
            self.push(at, Pending::Tick(id));
        }
    }

    fn transmit(&mut self, from: NodeId, to: NodeId, msg: P::Message) {
        self.messages_sent += 1;
        let keep = match self.filter.as_mut() {
            Some(filter) => filter(from, to, self.messages_sent),
            None => true,
        };
        if keep {
            let at = self.now + self.delay;
            self.push(at, Pending::Deliver { from, to, msg });
        }
    }
}
