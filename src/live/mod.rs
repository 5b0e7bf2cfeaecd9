//! The live adapter: the same sans-IO `Node` state machines as the simulator, driven over real
//! sockets instead of the simulated network. Every frame on the wire is signed with the sending
//! node's ed25519 key (see [`frame`]); a node's identity is its public key and its id is the
//! key's rank in the cluster roster (see [`keys`]). tokio is allowed only inside `src/live`.

pub mod control;
pub mod counters;
pub mod frame;
pub mod keys;
pub mod node;
