//! prsm-protocol: the sans-IO state machines of a prsm network and the contract that drives them.
//!
//! Protocols implement [`Protocol`] (callbacks that act only through a [`Context`]); drivers (the
//! simulator, the live adapter, the unit-test harness) own a [`Node`] and call [`Node::step`].

pub mod contract;
pub mod detection;
pub mod full;
pub mod gossip;
pub mod id;
pub mod kademlia;
pub mod layer;
pub mod local;
pub mod node;
pub mod partition;
pub mod pbft;
pub mod random;
pub mod registry;
pub mod relay;
pub mod routing;
pub mod swim;
pub mod testing;
pub mod time;
pub mod wire;

pub use contract::{Context, DropReason, Effect, Evidence, Protocol};
pub use id::NodeId;
pub use node::{Input, Limits, Node, NodeStats};
pub use time::{Duration, Time};
pub use wire::Wire;
