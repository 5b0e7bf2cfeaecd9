//! Node identities. In the simulator a node id is a dense index (0..n), which lets drivers keep
//! per-node state in vectors instead of maps.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The address of a node: a dense index assigned by the driver.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct NodeId(pub u32);

impl NodeId {
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}
