//! The deterministic kernel: the event queue, seed derivation and the trace hash.

mod prefetch;
mod queue;
mod seed;
mod trace;

pub use prefetch::prefetch_read;
pub use queue::EventQueue;
pub use seed::{Seeds, Stream};
pub use trace::{StableHasher, TraceHash, digest};
