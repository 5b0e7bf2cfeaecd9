//! The control channel between `prsm cluster` and the node processes it starts: one JSON object
//! per line, orders on the node's stdin and reports on its stdout. JSON, not the signed wire
//! format: the channel is a local pipe between a parent and its child, and a person can type or
//! read it when running `prsm node --control` by hand.

use serde::{Deserialize, Serialize};

use super::counters::Counters;

/// The machine's wall clock in nanoseconds since the Unix epoch: the one clock every process on
/// a machine shares, used only to order reports of different processes.
pub fn wall_clock_ns() -> u64 {
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// What the cluster tells a node.
#[derive(Debug, Serialize, Deserialize)]
pub enum Order<C> {
    /// Every node's address by node id (`None`: not up). Sent once all nodes are up, and again
    /// whenever one restarts on a new port.
    Peers(Vec<Option<String>>),
    /// A workload operation for one of the node's layers.
    Command(C),
    /// The adapter's drop rules (a partition): frames to the nodes in `to` are not sent and
    /// frames from the nodes in `from` are dropped on arrival. Empty lists heal.
    Cut { to: Vec<u32>, from: Vec<u32> },
    /// Report the counters once more and exit.
    Stop,
}

/// What a node tells the cluster.
#[derive(Debug, Serialize, Deserialize)]
pub enum Report<E> {
    /// The node is listening: its node id, frame address and metrics address.
    Ready {
        id: u32,
        listen: String,
        metrics: Option<String>,
    },
    /// An event of one of its layers, as the simulator's models observe them, stamped with the
    /// machine's wall clock (nanoseconds since the Unix epoch) when the node emitted it. Every
    /// process on one machine reads the same clock, so the cluster can put the events of
    /// different nodes back in the order they happened (their pipes deliver them in any order).
    Event { at_ns: u64, event: E },
    /// The node's counters (every second, and once more on `Stop`).
    Counters(Box<Counters>),
}
