//! The `prsm` library: exposes the live adapter (the protocol's state machines over real sockets)
//! as a library, so that benches and other programs can use it. The CLI stays in `src/main.rs`.

pub mod live;
