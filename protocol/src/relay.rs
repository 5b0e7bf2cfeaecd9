//! Relay: the kernel's benchmark workload. Each node starts `tokens` messages towards random peers
//! and forwards every token it receives to another random peer, so the number of messages in flight
//! stays constant at n * tokens. It exercises the whole driver path (step, effects, network, queue)
//! with the least protocol work, which makes it the measure of the simulator's own cost.

use crate::random::below;
use crate::{Context, NodeId, Protocol, Wire};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Token {
    pub id: u32,
    pub hops: u32,
}

impl Wire for Token {
    fn wire_size(&self) -> usize {
        8
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Relay {
    cluster_size: u32,
    tokens: u32,
}

impl Relay {
    pub fn new(cluster_size: u32, tokens: u32) -> Self {
        Relay {
            cluster_size,
            tokens,
        }
    }

    fn random_peer(&self, ctx: &mut Context<'_, Self>) -> NodeId {
        // Draw among the other n-1 nodes and skip over ourselves.
        let me = ctx.id().0;
        let pick = below(ctx.rng(), u64::from(self.cluster_size.max(2) - 1)) as u32;
        NodeId(if pick >= me { pick + 1 } else { pick })
    }
}

/// Relay has no timers, commands or durable state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NoTimer {}

impl Protocol for Relay {
    type Message = Token;
    type Timer = NoTimer;
    type Command = ();
    /// A token arrived, with the hops it has made.
    type Event = u32;
    type Durable = ();

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        if self.cluster_size < 2 {
            return;
        }
        for i in 0..self.tokens {
            let to = self.random_peer(ctx);
            let id = ctx.id().0.wrapping_mul(self.tokens).wrapping_add(i);
            ctx.send(to, Token { id, hops: 0 });
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, _from: NodeId, msg: Token) {
        let to = self.random_peer(ctx);
        ctx.send(
            to,
            Token {
                id: msg.id,
                hops: msg.hops.saturating_add(1),
            },
        );
    }

    fn on_timer(&mut self, _ctx: &mut Context<'_, Self>, timer: NoTimer) {
        match timer {}
    }

    fn on_command(&mut self, _ctx: &mut Context<'_, Self>, _cmd: ()) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Harness;
    use crate::{Duration, Time};

    #[test]
    fn tokens_in_flight_stay_constant() {
        let mut h = Harness::new(10, Duration::from_millis(1), 7, |_| Relay::new(10, 3));
        h.start_all();
        h.run_until(Time(Duration::from_millis(50).as_nanos()));
        // 30 initial sends, then every delivery (at 1, 2, ... 50 ms) forwards one token.
        assert_eq!(h.messages_sent, 30 + 30 * 50);
    }

    #[test]
    fn never_sends_to_itself() {
        let mut h = Harness::new(3, Duration::from_millis(1), 1, |_| Relay::new(3, 4)).with_filter(
            |from, to, _| {
                assert_ne!(from, to);
                true
            },
        );
        h.start_all();
        h.run_until(Time(Duration::from_millis(20).as_nanos()));
    }
}
