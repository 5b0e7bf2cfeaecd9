//! Models bind a protocol to the simulator: how nodes are built, what the workload asks of them,
//! and how their events become metrics. The engine is generic over a model, so adding a protocol
//! never touches the kernel.

pub mod arrivals;
pub mod detection;
mod full;
mod gossip;
pub mod healing;
mod kademlia;
mod local;
mod pbft;
mod relay;
mod routing;
mod swim;

pub use full::{FULL_LAYERS, FullModel};
pub use gossip::GossipModel;
pub use kademlia::{KAD_COUNTS, KAD_HISTOGRAMS, KAD_REALS, KadModel};
pub use local::{LOCAL_COUNTS, LOCAL_HISTOGRAMS, LOCAL_REALS, LocalModel};
pub use pbft::{PBFT_COUNTS, PBFT_HISTOGRAMS, PBFT_REALS, PbftModel};
pub use relay::RelayModel;
pub use routing::{
    ROUTING_COUNTS, ROUTING_GROUP_METRICS, ROUTING_HISTOGRAMS, ROUTING_REALS, RoutingModel,
};
pub use swim::{SWIM_COUNTS, SWIM_HISTOGRAMS, SWIM_REALS, SwimModel};

use prsm_protocol::{Duration, NodeId, Protocol, Time};
use rand_chacha::ChaCha8Rng;

use crate::metrics::{Metrics, Table};

/// What the workload does at one moment: a command for one node (if any), and when it acts next.
pub type WorkloadStep<P> = (Option<(NodeId, <P as Protocol>::Command)>, Option<Time>);

pub trait Model {
    type P: Protocol;

    /// A fresh protocol instance for node `id`, from its durable state after a restart.
    fn build(&self, id: NodeId, durable: Option<<Self::P as Protocol>::Durable>) -> Self::P;

    /// When the workload first acts, if it ever does (default: a model without a workload).
    fn first_command_at(&self) -> Option<Time> {
        None
    }

    /// The workload acts at `now`: which node gets which command, and when it acts next.
    fn command(
        &mut self,
        _now: Time,
        _rng: &mut ChaCha8Rng,
        _live: &[bool],
    ) -> WorkloadStep<Self::P> {
        (None, None)
    }

    /// A node emitted an event.
    fn observe(&mut self, now: Time, node: NodeId, event: <Self::P as Protocol>::Event);

    /// Who hears `from`'s broadcasts (its LAN segment, say); `None`: every other node.
    fn broadcast_scope(&self, _from: NodeId) -> Option<std::ops::Range<u32>> {
        None
    }

    /// A node (re)starts at `now` (the start of the run, or a restart).
    fn started(&mut self, _now: Time, _node: NodeId) {}

    /// A node crashes at `now`.
    fn crashed(&mut self, _now: Time, _node: NodeId) {}

    /// A partition was installed (`Some`: each node's component, nodes of one component reach
    /// each other both ways) or healed (`None`).
    fn cut(&mut self, _now: Time, _components: Option<&[u32]>) {}

    /// A node leaves the run (crash, or the end of the run): harvest its internal counters.
    fn retire(&mut self, node: &Self::P);

    /// This model's time-series columns.
    fn series_columns(&self) -> Vec<&'static str>;

    /// Whether the model looks at every live node's state at each sample ([`Model::inspect`]).
    fn inspects(&self) -> bool {
        false
    }

    /// A live node's state, just before [`Model::sample`] (only if [`Model::inspects`]).
    fn inspect(&mut self, _node: &Self::P) {}

    /// Appends one value per column for the interval since the previous sample.
    fn sample(&mut self, out: &mut Vec<f64>);

    /// Publishes the model's metrics at the end of the run.
    fn finish(&mut self, end: Time, live: &[bool], metrics: &mut Metrics);

    /// Per-event sample tables, by file stem.
    fn tables(&mut self) -> Vec<(String, Table)>;

    /// A checker's verdict that stops the run: the engine polls it after every emitted event
    /// (the only moment a checked property can change) and once more after `finish`.
    fn violation(&self) -> Option<&Violation> {
        None
    }

    /// Settings that turned out to do nothing in this run (see [`crate::RunOutput::warnings`]).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }

    /// Extra CPU time a node spends on `msg` before handling it (signature checks).
    fn processing_cost(&self, _msg: &<Self::P as Protocol>::Message) -> Duration {
        Duration::ZERO
    }

    /// Whether `processing_cost` is ever non-zero (lets the engine skip it).
    fn has_processing_cost(&self) -> bool {
        false
    }

    /// The layers of a composed node, for per-layer traffic (`net.by_layer.*`); none for one
    /// protocol.
    fn layer_names(&self) -> &'static [&'static str] {
        &[]
    }

    /// The index in [`Model::layer_names`] of the layer `msg` belongs to.
    fn layer_of(&self, _msg: &<Self::P as Protocol>::Message) -> usize {
        0
    }

    /// Latency distributions worth a CDF plot, by metric name.
    fn cdfs(&self) -> Vec<(String, Vec<(f64, f64)>)> {
        Vec::new()
    }
}

/// A property a checker found broken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub kind: ViolationKind,
    /// When it was found (for liveness: the missed deadline).
    pub at: Time,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViolationKind {
    Safety,
    Liveness,
}

impl ViolationKind {
    pub fn name(self) -> &'static str {
        match self {
            ViolationKind::Safety => "safety",
            ViolationKind::Liveness => "liveness",
        }
    }
}
