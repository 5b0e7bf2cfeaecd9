//! The full node: every protocol layer of a prsm network composed on one node.
//!
//! Layers, in registration order (the order `Start` reaches them and notices are delivered in):
//! discovery (`kademlia`: bootstrap, DHT, peer exchange), health (`swim`), local discovery
//! (`local`), consensus (`pbft`), task routing (`routing`), Byzantine fault detection
//! (`detection`), partition detection (`partition`) and the replicated registry (`registry`). A node runs any subset: the driver builds the parts its role
//! runs ([`FullParts`]) and leaves the others out. The wiring is the layers' own
//! ([`crate::layer::Layer`]), so no layer names another:
//! - local discovery hears a peer (`PeerHeard`): discovery offers it to the routing table;
//! - the routing table gains or loses a contact (`NeighborAdded`, `NeighborRemoved`): health
//!   tracks or untracks it, so its view follows the table and its cost does not grow with n;
//! - a PBFT replica asks health to watch the committee (`Watch`), whatever the table holds;
//! - health confirms a peer dead (`PeerDead`): discovery forgets it, PBFT marks its replica down
//!   (a backup leaves a dead primary's view at once); a dead peer seen alive again (`PeerAlive`)
//!   is offered back to discovery and marked up in PBFT;
//! - routing greets every new neighbour (a worker answers with its models and load), takes health's
//!   round trips for its latency factor, and moves a task off a worker health confirms dead;
//! - routing reports what it verified of a worker's answers (`Observed`) and the conflicting
//!   signed results it holds (`Proof`), PBFT the equivocations it can prove: detection keeps
//!   reputations and tells the others where a peer stands. Routing reads reputation as its
//!   reliability factor (`Trust`), spot-checks watched peers more (`Watched`), routes nothing to
//!   a quarantined one (`Quarantined`, `Released`); a proven Byzantine peer (`Isolated`) leaves
//!   discovery's table and health's view for good, PBFT treats its replica as down, and the
//!   node refuses its frames;
//! - partition detection watches the neighbours and the validators and hears health's verdicts; a
//!   node outside the primary partition (`Primary(false)`) has its PBFT client hold operations
//!   until it is back; when a partition heals it names peers that came back (`Reconnected`) and
//!   the registry reconciles with them at once; PBFT's executed operations (`Agreed`) are the
//!   registry's agreed writes.
//!
//! A new layer joins by implementing `Layer` in its own module and adding one line to the list
//! below.

use crate::detection::Detection;
use crate::kademlia::Kademlia;
use crate::local::Local;
use crate::partition::Partition;
use crate::pbft::Pbft;
use crate::registry::Registry;
use crate::routing::Routing;
use crate::swim::Swim;

crate::compose! {
    /// A node running any subset of the layers.
    pub struct Full {
        message: FullMessage,
        timer: FullTimer,
        event: FullEvent,
        command: FullCommand,
        durable: FullDurable,
        parts: FullParts,
    }
    layers {
        kad: Kademlia => Kad,
        swim: Swim => Swim,
        local: Local => Local,
        pbft: Pbft => Pbft,
        routing: Routing => Routing,
        detection: Detection => Detection,
        partition: Partition => Partition,
        registry: Registry => Registry,
    }
}

impl Full {
    /// Bytes of protocol state across the layers.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.layer_memory().iter().sum::<usize>()
    }
}

#[cfg(test)]
mod tests;
