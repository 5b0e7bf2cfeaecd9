//! Scenario files: one YAML document that says everything needed to replay a run.
//!
//! Parsing happens in two passes. serde-saphyr turns the text into the `*Spec` structs below,
//! rejecting unknown keys, wrong types and malformed values with their line and column. Then
//! [`validate`] checks what types cannot (a crash of a node that does not exist, a region missing
//! from the latency matrix, a fault after the end of the run) and resolves the specs into a
//! [`Scenario`], again pointing at the offending line and column. Nothing here panics on input.

mod bandwidth;
mod detection;
mod duration;
mod expect;
mod healing;
mod nodeset;
mod probability;
mod routing;
mod validate;

pub use bandwidth::{Bandwidth, parse_bandwidth};
pub use detection::{DetectionSettings, DetectionSpec};
pub use duration::{DurationSpec, parse_duration};
pub use expect::{Expectation, Op, parse_expectation};
pub use healing::{
    PartitionSettings, PartitionSpec as PartitionLayerSpec, RegistrySettings, RegistrySpec,
};
pub use nodeset::{NodeSetSpec, Term, nodeset_from_str, parse_clause};
pub use probability::Probability;
pub use routing::{
    ClassSpec, RoutingSettings, RoutingSpec, TaskSource, TaskStream, TaskStreamSpec, WorkerSpec,
};
pub use validate::{Diagnostic, load_str, validate};

use prsm_protocol::Duration;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::network::{LatencyModel, LinkOverride};

/// Scenario files larger than this are refused before parsing.
pub const FILE_SIZE_MAX_BYTES: usize = 1 << 20;
/// The most nodes one scenario may declare.
pub const NODES_MAX: u64 = 1_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub seed: u64,
    pub duration: Spanned<DurationSpec>,
    pub nodes: Spanned<Vec<NodeGroupSpec>>,
    #[serde(default)]
    pub network: NetworkSpec,
    /// One protocol on every node (the shorthand for a single layer). Exactly one of
    /// `protocol:` and `layers:` is given.
    #[serde(default)]
    pub protocol: Option<Spanned<ProtocolSpec>>,
    /// Several protocol layers composed on each node, with their settings.
    #[serde(default)]
    pub layers: Option<Spanned<LayersSpec>>,
    /// Which layers each role runs (with `layers:`; default: every node runs every layer).
    #[serde(default)]
    pub roles: Option<Spanned<RolesSpec>>,
    #[serde(default)]
    pub workload: Option<Spanned<WorkloadSpec>>,
    #[serde(default)]
    pub faults: Vec<Spanned<FaultSpec>>,
    /// Byzantine actors: which nodes misbehave, how, and when.
    #[serde(default)]
    pub adversaries: Vec<Spanned<AdversarySpec>>,
    #[serde(default)]
    pub expect: Vec<Spanned<String>>,
    #[serde(default)]
    pub output: OutputSpec,
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Parameters and seeds for `prsm sweep`; `prsm run` ignores it.
    #[serde(default)]
    pub sweep: Option<Spanned<crate::sweep::SweepSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeGroupSpec {
    pub count: Spanned<u64>,
    #[serde(default)]
    pub region: Option<Spanned<String>>,
    /// Default `worker`.
    #[serde(default)]
    pub role: Option<Spanned<String>>,
    /// CPU time each delivered message costs the node (parsing, signature checks); messages that
    /// arrive while it is busy wait their turn.
    #[serde(default)]
    pub processing: Option<DurationSpec>,
    /// Uplink capacity: messages leave one after another, each taking size / bandwidth.
    #[serde(default)]
    pub bandwidth: Option<Bandwidth>,
}

/// Role name -> the layers nodes of that role run.
pub type RolesSpec = std::collections::BTreeMap<String, Spanned<Vec<Spanned<String>>>>;

/// A node's role: `bootstrap`, `validator`, `coordinator`, `worker` (the default) or any name
/// the scenario uses. Roles choose layers (`roles:`); PBFT's committee is drawn from the
/// validators.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Role(std::sync::Arc<str>);

impl Role {
    /// The roles prsm gives a meaning to; any other name is the scenario's own.
    pub const KNOWN: [&'static str; 4] = ["bootstrap", "coordinator", "validator", "worker"];

    pub fn new(name: &str) -> Self {
        Role(std::sync::Arc::from(name))
    }

    pub fn name(&self) -> &str {
        &self.0
    }

    pub fn is(&self, name: &str) -> bool {
        &*self.0 == name
    }

    /// Whether `name` is a valid role name: 1 to 32 of a-z, 0-9, `_` and `-`, starting with a
    /// letter.
    pub fn valid_name(name: &str) -> bool {
        (1..=32).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    }
}

impl Default for Role {
    fn default() -> Self {
        Role::new("worker")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    #[serde(default = "default_latency")]
    pub latency: Spanned<LatencySpec>,
    #[serde(default)]
    pub loss: Probability,
    #[serde(default)]
    pub duplicate: Probability,
    #[serde(default)]
    pub overrides: Vec<Spanned<LinkOverrideSpec>>,
}

/// A default value, which has no place in the file.
fn unspanned<T>(value: T) -> Spanned<T> {
    Spanned::new(
        value,
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}

fn default_latency() -> Spanned<LatencySpec> {
    unspanned(LatencySpec::Constant {
        one_way: DurationSpec(Duration::from_millis(10)),
    })
}

impl Default for NetworkSpec {
    fn default() -> Self {
        NetworkSpec {
            latency: default_latency(),
            loss: Probability(0.0),
            duplicate: Probability(0.0),
            overrides: Vec::new(),
        }
    }
}

/// One-way latency models.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LatencySpec {
    Constant {
        one_way: DurationSpec,
    },
    Uniform {
        min: DurationSpec,
        max: DurationSpec,
    },
    /// Normal, truncated at `min` (default 0).
    Normal {
        mean: DurationSpec,
        stddev: DurationSpec,
        #[serde(default)]
        min: Option<DurationSpec>,
    },
    /// Log-normal: `median` scaled by exp(sigma * N(0, 1)).
    Lognormal {
        median: DurationSpec,
        sigma: f64,
    },
    /// Half the published round-trip time between the two nodes' regions, with log-normal jitter.
    Regions {
        #[serde(default = "default_jitter")]
        jitter: f64,
        #[serde(default = "default_intra_region_rtt")]
        intra_region_rtt: DurationSpec,
    },
}

fn default_jitter() -> f64 {
    0.05
}

fn default_intra_region_rtt() -> DurationSpec {
    DurationSpec(Duration::from_millis(1))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkOverrideSpec {
    /// The two ends; the override applies in both directions.
    pub between: (Spanned<NodeSetSpec>, Spanned<NodeSetSpec>),
    #[serde(default)]
    pub latency: Option<Spanned<LatencySpec>>,
    #[serde(default)]
    pub loss: Option<Probability>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ProtocolSpec {
    Gossip(GossipSpec),
    Relay(RelaySpec),
    Pbft(Box<PbftSpec>),
    Kademlia(Box<KademliaSpec>),
    Swim(SwimSpec),
}

impl ProtocolSpec {
    pub fn name(&self) -> &'static str {
        match self {
            ProtocolSpec::Gossip(_) => "gossip",
            ProtocolSpec::Relay(_) => "relay",
            ProtocolSpec::Pbft(_) => "pbft",
            ProtocolSpec::Kademlia(_) => "kademlia",
            ProtocolSpec::Swim(_) => "swim",
        }
    }
}

/// The layers a scenario composes on its nodes, each with its settings (the keys of the protocol
/// of the same name). Registration order, which is also the order notices are delivered in:
/// kademlia, swim, local, pbft.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayersSpec {
    #[serde(default)]
    pub kademlia: Option<Spanned<KademliaSpec>>,
    #[serde(default)]
    pub swim: Option<Spanned<SwimSpec>>,
    #[serde(default)]
    pub local: Option<Spanned<LocalSpec>>,
    #[serde(default)]
    pub pbft: Option<Spanned<PbftSpec>>,
    #[serde(default)]
    pub routing: Option<Spanned<RoutingSpec>>,
    #[serde(default)]
    pub detection: Option<Spanned<DetectionSpec>>,
    #[serde(default)]
    pub partition: Option<Spanned<PartitionLayerSpec>>,
    #[serde(default)]
    pub registry: Option<Spanned<RegistrySpec>>,
}

impl LayersSpec {
    /// The layer names in registration order.
    pub const NAMES: [&'static str; 8] = [
        "kademlia",
        "swim",
        "local",
        "pbft",
        "routing",
        "detection",
        "partition",
        "registry",
    ];

    pub fn has(&self, name: &str) -> bool {
        match name {
            "kademlia" => self.kademlia.is_some(),
            "swim" => self.swim.is_some(),
            "local" => self.local.is_some(),
            "pbft" => self.pbft.is_some(),
            "routing" => self.routing.is_some(),
            "detection" => self.detection.is_some(),
            "partition" => self.partition.is_some(),
            "registry" => self.registry.is_some(),
            _ => false,
        }
    }
}

impl ScenarioSpec {
    /// Whether the scenario runs the protocol or layer `name` anywhere.
    pub fn runs(&self, name: &str) -> bool {
        match (&self.protocol, &self.layers) {
            (Some(p), _) => {
                p.value.name() == name
                    || matches!((&p.value, name), (ProtocolSpec::Kademlia(k), "swim") if k.health.is_some())
                    || matches!((&p.value, name), (ProtocolSpec::Kademlia(k), "local") if k.local.is_some())
            }
            (None, Some(l)) => l.value.has(name),
            (None, None) => false,
        }
    }

    /// What the scenario runs, for messages: `protocol `pbft`` or `layers kademlia, swim`.
    pub fn runs_what(&self) -> String {
        match (&self.protocol, &self.layers) {
            (Some(p), _) => format!("protocol `{}`", p.value.name()),
            (None, Some(l)) => {
                let names: Vec<&str> = LayersSpec::NAMES
                    .into_iter()
                    .filter(|n| l.value.has(n))
                    .collect();
                format!("layers `{}`", names.join(", "))
            }
            (None, None) => "no protocol".to_owned(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GossipSpec {
    #[serde(default = "default_gossip_interval")]
    pub interval: DurationSpec,
    #[serde(default = "default_fanout")]
    pub fanout: u32,
    #[serde(default = "default_retransmit_mult")]
    pub retransmit_mult: u32,
    #[serde(default = "default_rumors_per_message_max")]
    pub rumors_per_message_max: u32,
    #[serde(default = "default_queue_len_max")]
    pub queue_len_max: u32,
    /// Push-pull anti-entropy; absent, push gossip alone.
    #[serde(default)]
    pub anti_entropy: Option<Spanned<AntiEntropySpec>>,
}

/// Push-pull anti-entropy for gossip (`protocol.gossip.anti_entropy`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AntiEntropySpec {
    #[serde(default = "default_ae_interval")]
    pub interval: Spanned<DurationSpec>,
    #[serde(default = "default_ae_rumors_max")]
    pub rumors_max: Spanned<u32>,
    #[serde(default = "default_ae_store_max")]
    pub store_max: Spanned<u32>,
}

fn default_ae_interval() -> Spanned<DurationSpec> {
    unspanned(DurationSpec(Duration::from_secs(1)))
}
fn default_ae_rumors_max() -> Spanned<u32> {
    unspanned(64)
}
fn default_ae_store_max() -> Spanned<u32> {
    unspanned(4_096)
}

fn default_gossip_interval() -> DurationSpec {
    DurationSpec(Duration::from_millis(200))
}
fn default_fanout() -> u32 {
    3
}
fn default_retransmit_mult() -> u32 {
    4
}
fn default_rumors_per_message_max() -> u32 {
    16
}
fn default_queue_len_max() -> u32 {
    1_024
}

/// PBFT among the committee of validators; every other node is a client.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PbftSpec {
    /// How many validators form the committee, chosen evenly spaced among the nodes with role
    /// `validator` (default: all of them).
    #[serde(default)]
    pub committee: Option<Spanned<u64>>,
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: Spanned<u64>,
    /// Default: twice the checkpoint interval.
    #[serde(default)]
    pub log_window: Option<Spanned<u64>>,
    #[serde(default = "default_batch_size")]
    pub batch_size: Spanned<u32>,
    #[serde(default = "default_batch_timeout")]
    pub batch_timeout: DurationSpec,
    #[serde(default = "default_one_second")]
    pub request_timeout: DurationSpec,
    #[serde(default = "default_one_second")]
    pub view_change_timeout: DurationSpec,
    #[serde(default = "default_client_timeout")]
    pub client_timeout: DurationSpec,
    #[serde(default = "default_status_interval")]
    pub status_interval: DurationSpec,
    /// CPU time to verify one signature; a message costs this times its signatures.
    #[serde(default = "zero_duration")]
    pub signature_verify: DurationSpec,
    /// The liveness checker's bound: once faults stop (with at most f faulty replicas and the
    /// network healed), every request must commit within this.
    #[serde(default = "default_liveness_bound")]
    pub liveness_bound: DurationSpec,
    #[serde(default = "default_pending_max")]
    pub pending_max: Spanned<u64>,
}

fn default_checkpoint_interval() -> Spanned<u64> {
    unspanned(128)
}
fn default_batch_size() -> Spanned<u32> {
    unspanned(1)
}
fn default_batch_timeout() -> DurationSpec {
    DurationSpec(Duration::from_millis(5))
}
fn default_one_second() -> DurationSpec {
    DurationSpec(Duration::from_millis(1_000))
}
fn default_client_timeout() -> DurationSpec {
    DurationSpec(Duration::from_millis(2_000))
}
fn default_status_interval() -> DurationSpec {
    DurationSpec(Duration::from_millis(500))
}
fn default_liveness_bound() -> DurationSpec {
    DurationSpec(Duration::from_millis(30_000))
}
fn default_pending_max() -> Spanned<u64> {
    unspanned(4_096)
}

/// SWIM failure detection over the full membership; defaults are memberlist's LAN profile.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwimSpec {
    #[serde(default = "default_one_second")]
    pub probe_interval: DurationSpec,
    #[serde(default = "default_probe_timeout")]
    pub probe_timeout: DurationSpec,
    #[serde(default = "default_indirect")]
    pub indirect_probes: u32,
    #[serde(default = "default_suspicion_mult")]
    pub suspicion_mult: u32,
    #[serde(default = "default_gossip_interval")]
    pub gossip_interval: DurationSpec,
    #[serde(default = "default_fanout")]
    pub gossip_fanout: u32,
    #[serde(default = "default_retransmit_mult")]
    pub retransmit_mult: u32,
    #[serde(default = "default_updates_per_message")]
    pub updates_per_message: Spanned<u64>,
    #[serde(default = "default_true")]
    pub refute: bool,
    /// Members start their protocol periods at random phases (deployments); `false` aligns
    /// every member's periods to start together, as in SWIM's analysis (the published
    /// e/(e-1) = 1.58 periods to first detection assumes it).
    #[serde(default = "default_true")]
    pub random_phase: bool,
    /// Only under `kademlia: health:`: the most neighbours one node monitors.
    #[serde(default)]
    pub view_max: Option<Spanned<u64>>,
}

/// Local discovery (mDNS-style) among the nodes of a site; defaults are libp2p-mdns's.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSpec {
    /// Nodes per site: sites are consecutive blocks of node indices.
    pub site_size: Spanned<u64>,
    #[serde(default = "default_mdns_interval")]
    pub interval: DurationSpec,
    #[serde(default = "default_mdns_ttl")]
    pub ttl: DurationSpec,
}

fn default_mdns_interval() -> DurationSpec {
    DurationSpec(Duration::from_secs(300))
}
fn default_mdns_ttl() -> DurationSpec {
    DurationSpec(Duration::from_secs(360))
}

fn default_updates_per_message() -> Spanned<u64> {
    unspanned(114)
}
fn default_probe_timeout() -> DurationSpec {
    DurationSpec(Duration::from_millis(500))
}
fn default_indirect() -> u32 {
    3
}
fn default_suspicion_mult() -> u32 {
    4
}

/// Kademlia discovery with bootstrap and peer exchange. Keys left out take the profile's value.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KademliaSpec {
    #[serde(default)]
    pub profile: KadProfile,
    #[serde(default)]
    pub k: Option<Spanned<u64>>,
    #[serde(default)]
    pub alpha: Option<Spanned<u64>>,
    #[serde(default)]
    pub request_timeout: Option<DurationSpec>,
    #[serde(default)]
    pub refresh_interval: Option<DurationSpec>,
    /// DHT lookups on (join, refresh, queries); off leaves bootstrap and peer exchange.
    #[serde(default = "default_true")]
    pub dht: bool,
    #[serde(default)]
    pub pex_interval: Option<DurationSpec>,
    #[serde(default = "default_pex_max")]
    pub pex_max: Spanned<u64>,
    #[serde(default = "zero_duration")]
    pub join_spread: DurationSpec,
    /// The bootstrap nodes (a node selector); default node 0.
    #[serde(default)]
    pub bootstrap: Option<Spanned<NodeSetSpec>>,
    /// SWIM health monitoring of each node's routing-table contacts.
    #[serde(default)]
    pub health: Option<Spanned<SwimSpec>>,
    /// Local discovery within sites.
    #[serde(default)]
    pub local: Option<Spanned<LocalSpec>>,
}

fn default_true() -> bool {
    true
}
fn default_pex_max() -> Spanned<u64> {
    unspanned(16)
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KadProfile {
    /// Maymounkov and Mazieres 2002: k 20, alpha 3, refresh 1 h, 1 s requests.
    #[default]
    Kademlia,
    /// go-ethereum discv4: k 16, alpha 3, refresh 30 min, 500 ms requests.
    Ethereum,
    /// go-libp2p-kad-dht: k 20, alpha 10, refresh 10 min, 10 s requests.
    Ipfs,
}

/// One adversary entry: `nodes` show `behavior` from `from` until `until`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdversarySpec {
    pub nodes: Spanned<NodeSetSpec>,
    pub behavior: Spanned<BehaviorSpec>,
    #[serde(default)]
    pub from: Option<DurationSpec>,
    #[serde(default)]
    pub until: Option<DurationSpec>,
    /// For `slow`: how long each message is held.
    #[serde(default)]
    pub delay: Option<DurationSpec>,
    /// For `twin`: the node whose replica identity (keys) these nodes duplicate.
    #[serde(default)]
    pub twin_of: Option<Spanned<u64>>,
    /// For `sybil`: the node whose id the Sybil ids are ground near; for `eclipse`: the victim.
    #[serde(default)]
    pub target: Option<Spanned<u64>>,
    /// For `dht_liar`: what the lies contain.
    #[serde(default)]
    pub lie: Option<Spanned<LieSpec>>,
    /// For `wrong_result` and `poison`: the chance that a result is wrong (default 1).
    #[serde(default)]
    pub probability: Option<Spanned<f64>>,
    /// For `wrong_result` and `poison`: only tasks of this class (default: all).
    #[serde(default)]
    pub class: Option<Spanned<String>>,
    /// For `wrong_result` and `poison`: workers of one group return the same wrong answer.
    #[serde(default)]
    pub group: Option<Spanned<u64>>,
    /// For `wrong_result`: the share of wrong results that fail the weak check (default 0.5).
    #[serde(default)]
    pub malformed: Option<Spanned<f64>>,
    /// For `flood`: junk tasks sent per second.
    #[serde(default)]
    pub rate: Option<Spanned<f64>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LieSpec {
    /// The colluding attackers closest to the target.
    Colluders,
    /// Contacts that do not exist.
    Nonexistent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BehaviorSpec {
    Silent,
    Slow,
    Equivocate,
    WithholdVotes,
    DoubleVote,
    Replay,
    WrongDigest,
    Twin,
    DhtLiar,
    Sybil,
    Eclipse,
    WrongResult,
    Poison,
    Inconsistent,
    SlowResult,
    Slander,
    Flood,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySpec {
    pub tokens_per_node: u32,
}

/// The workload: one entry per protocol that has one; a composed node runs several at once.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Publish a rumor from a random live node every `every`, from `start` until `stop`
    /// (protocol `gossip`).
    #[serde(default)]
    pub publish: Option<Spanned<PublishSpec>>,
    /// A random live client submits a request every `every` (`pbft`).
    #[serde(default)]
    pub requests: Option<Spanned<PublishSpec>>,
    /// A random joined node looks up a random live node's id every `every` (`kademlia`).
    #[serde(default)]
    pub lookups: Option<Spanned<PublishSpec>>,
    /// Streams of AI tasks, each with its class, origins and arrival process (`routing`).
    #[serde(default)]
    pub tasks: Option<Spanned<Vec<Spanned<TaskStreamSpec>>>>,
    /// A random live node (among `targets`, default any running the registry) writes a random
    /// key every `every` (`registry`).
    #[serde(default)]
    pub writes: Option<Spanned<PublishSpec>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishSpec {
    pub every: DurationSpec,
    #[serde(default = "zero_duration")]
    pub start: DurationSpec,
    #[serde(default)]
    pub stop: Option<DurationSpec>,
    #[serde(default = "default_payload_bytes")]
    pub payload_bytes: u32,
    /// At most this many in all.
    #[serde(default)]
    pub count: Option<u64>,
    /// For `lookups`: the nodes looked up (default: any live node).
    #[serde(default)]
    pub targets: Option<Spanned<NodeSetSpec>>,
}

fn zero_duration() -> DurationSpec {
    DurationSpec(Duration::ZERO)
}
fn default_payload_bytes() -> u32 {
    256
}

/// One entry of the fault timeline: `at` plus exactly one action.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub at: DurationSpec,
    #[serde(default)]
    pub crash: Option<Spanned<NodeSetSpec>>,
    #[serde(default)]
    pub restart: Option<Spanned<NodeSetSpec>>,
    #[serde(default)]
    pub partition: Option<Spanned<PartitionSpec>>,
    #[serde(default)]
    pub heal: Option<HealSpec>,
    #[serde(default)]
    pub churn: Option<Spanned<ChurnSpec>>,
}

/// Churn: from `at` until `until`, live nodes crash at random as a Poisson process of `rate`
/// crashes per second across the network, each restarting `downtime` later.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChurnSpec {
    pub rate: f64,
    pub downtime: DurationSpec,
    #[serde(default)]
    pub until: Option<DurationSpec>,
    /// The nodes churn draws from (default: every live node), e.g. `role:worker`.
    #[serde(default)]
    pub nodes: Option<Spanned<NodeSetSpec>>,
}

/// A one-way cut: messages from `from` to `to` are lost; the other direction works.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneWaySpec {
    pub from: Spanned<NodeSetSpec>,
    pub to: Spanned<NodeSetSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionSpec {
    /// Explicit groups; nodes in no group form one more group together.
    #[serde(default)]
    pub groups: Option<Vec<Spanned<NodeSetSpec>>>,
    /// Cut these nodes off, each alone.
    #[serde(default)]
    pub isolate: Option<Spanned<NodeSetSpec>>,
    /// One group per region.
    #[serde(default)]
    pub by_region: bool,
    /// Cut one direction only.
    #[serde(default)]
    pub one_way: Option<OneWaySpec>,
    /// Cut both directions between two sets only, leaving every other link up (a partial,
    /// non-transitive partition).
    #[serde(default)]
    pub between: Option<(Spanned<NodeSetSpec>, Spanned<NodeSetSpec>)>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealSpec {
    All,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    #[serde(default = "default_sample_every")]
    pub sample_every: Spanned<DurationSpec>,
    #[serde(default = "default_samples_max")]
    pub samples_max: u64,
}

fn default_sample_every() -> Spanned<DurationSpec> {
    unspanned(DurationSpec(Duration::from_secs(1)))
}
fn default_samples_max() -> u64 {
    1_000_000
}

impl Default for OutputSpec {
    fn default() -> Self {
        OutputSpec {
            sample_every: default_sample_every(),
            samples_max: default_samples_max(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    #[serde(default = "default_events_max")]
    pub events_max: u64,
    #[serde(default = "default_pending_events_max")]
    pub pending_events_max: u64,
    #[serde(default = "default_events_per_instant_max")]
    pub events_per_instant_max: u64,
    #[serde(default = "default_message_size_max_bytes")]
    pub message_size_max_bytes: u64,
    #[serde(default = "default_effects_per_step_max")]
    pub effects_per_step_max: u64,
}

fn default_events_max() -> u64 {
    2_000_000_000
}
fn default_pending_events_max() -> u64 {
    50_000_000
}
/// Twice the default pending-events limit: a burst of simultaneous events that were all pending can
/// never reach it, while a zero-delay loop, which adds events at the same instant, does.
fn default_events_per_instant_max() -> u64 {
    100_000_000
}
fn default_message_size_max_bytes() -> u64 {
    1 << 20
}
fn default_effects_per_step_max() -> u64 {
    65_536
}

impl Default for LimitsSpec {
    fn default() -> Self {
        LimitsSpec {
            events_max: default_events_max(),
            pending_events_max: default_pending_events_max(),
            events_per_instant_max: default_events_per_instant_max(),
            message_size_max_bytes: default_message_size_max_bytes(),
            effects_per_step_max: default_effects_per_step_max(),
        }
    }
}

// ---- The validated, resolved scenario the engine runs. ----

#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// Index into `Scenario::regions`.
    pub region: Option<u16>,
    pub role: Role,
    /// CPU time per delivered message.
    pub processing: Duration,
    /// Uplink capacity, if limited.
    pub bandwidth: Option<Bandwidth>,
}

#[derive(Clone, Debug)]
pub enum ProtocolConfig {
    Gossip(prsm_protocol::gossip::GossipConfig),
    Relay {
        tokens_per_node: u32,
    },
    Pbft(PbftSettings),
    Swim(prsm_protocol::swim::SwimConfig),
    /// Layers composed on each node (`layers:`, or `protocol: kademlia` with its `health:` and
    /// `local:`).
    Full(Box<FullSettings>),
}

impl ProtocolConfig {
    /// The routing layer's task class names, in class-id order (empty without routing).
    pub fn class_names(&self) -> Vec<String> {
        match self {
            ProtocolConfig::Full(f) => f
                .routing
                .as_ref()
                .map(|r| r.catalog.classes.iter().map(|c| c.name.clone()).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

/// Kademlia as the scenario configures it (bootstrap nodes resolved at the start of a run).
#[derive(Clone, Debug)]
pub struct KadSettings {
    pub config: prsm_protocol::kademlia::KadConfig,
    pub bootstrap: NodeSetSpec,
}

/// Local discovery as the scenario configures it.
#[derive(Clone, Copy, Debug)]
pub struct LocalSettings {
    pub config: prsm_protocol::local::LocalConfig,
    /// Nodes per site (sites are consecutive blocks of indices).
    pub site_size: u32,
}

/// The layers a composed node may run, and which nodes run which.
#[derive(Clone, Debug)]
pub struct FullSettings {
    pub kad: Option<KadSettings>,
    /// Full membership without discovery; with it, a partial view following the routing table.
    pub swim: Option<prsm_protocol::swim::SwimConfig>,
    pub local: Option<LocalSettings>,
    pub pbft: Option<PbftSettings>,
    pub routing: Option<RoutingSettings>,
    pub detection: Option<DetectionSettings>,
    pub partition: Option<PartitionSettings>,
    pub registry: Option<RegistrySettings>,
    /// Per node, the layers it runs (bit i: layer i in registration order).
    pub runs: Vec<u8>,
    /// Whether the scenario was written with `layers:` (false: `protocol: kademlia`).
    pub layered: bool,
}

impl FullSettings {
    pub const KAD: u8 = 1;
    pub const SWIM: u8 = 2;
    pub const LOCAL: u8 = 4;
    pub const PBFT: u8 = 8;
    pub const ROUTING: u8 = 16;
    pub const DETECTION: u8 = 32;
    pub const PARTITION: u8 = 64;
    pub const REGISTRY: u8 = 128;

    pub fn runs(&self, node: u32, layer: u8) -> bool {
        self.runs.get(node as usize).is_some_and(|m| m & layer != 0)
    }
}

/// PBFT as the scenario configures it.
#[derive(Clone, Debug)]
pub struct PbftSettings {
    pub config: prsm_protocol::pbft::PbftConfig,
    /// Committee members, as node indices in roster order.
    pub committee: Vec<u32>,
    /// Nodes that submit requests: nodes running PBFT that host no replica (with `protocol:
    /// pbft`, every node whose role is not `validator`).
    pub clients: Vec<u32>,
    pub signature_verify: Duration,
    pub liveness_bound: Duration,
}

impl Default for PbftSettings {
    fn default() -> Self {
        PbftSettings {
            config: prsm_protocol::pbft::PbftConfig::default(),
            committee: Vec::new(),
            clients: Vec::new(),
            signature_verify: Duration::ZERO,
            liveness_bound: Duration::from_millis(30_000),
        }
    }
}

/// A Byzantine behaviour for a set of nodes during a window.
#[derive(Clone, Debug)]
pub struct Adversary {
    pub nodes: NodeSetSpec,
    pub behavior: AdversaryBehavior,
    pub from: Duration,
    pub until: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AdversaryBehavior {
    Replica(prsm_protocol::pbft::Behavior),
    /// The nodes host a second instance of this node's replica, with its keys.
    Twin {
        of: u32,
    },
    /// A discovery-layer attacker.
    Kad(KadRole),
    /// A Byzantine worker (routing).
    Worker(prsm_protocol::routing::FaultKind),
    /// Accuses honest peers (detection's opinions and forged proofs).
    Slander,
    /// Floods workers with junk tasks, `rate` a second.
    Flood {
        rate: f64,
    },
}

impl AdversaryBehavior {
    /// Whether the detection model accounts for it (a fault with a class name in its metrics).
    pub fn detection_class(&self) -> Option<&'static str> {
        match self {
            AdversaryBehavior::Worker(k) => Some(k.name()),
            AdversaryBehavior::Slander => Some("slander"),
            AdversaryBehavior::Flood { .. } => Some("flood"),
            AdversaryBehavior::Replica(b) => match b {
                prsm_protocol::pbft::Behavior::Equivocate => Some("equivocate"),
                prsm_protocol::pbft::Behavior::DoubleVote => Some("double_vote"),
                _ => None,
            },
            AdversaryBehavior::Twin { .. } | AdversaryBehavior::Kad(_) => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KadRole {
    Silent,
    Liar {
        nonexistent: bool,
    },
    /// Ids ground near `target`'s, lying with colluders.
    Sybil {
        target: u32,
    },
    /// Ids ground near the victim's, pushing into its table, lying with colluders.
    Eclipse {
        victim: u32,
    },
}

/// The workload of each protocol that has one.
#[derive(Clone, Debug, Default)]
pub struct Workloads {
    pub publish: Option<Publish>,
    pub requests: Option<Publish>,
    pub lookups: Option<Publish>,
    pub tasks: Vec<TaskStream>,
    pub writes: Option<Publish>,
}

#[derive(Clone, Debug)]
pub struct Publish {
    pub every: Duration,
    pub start: Duration,
    pub stop: Duration,
    pub payload_bytes: u32,
    pub count: u64,
    pub targets: Option<NodeSetSpec>,
}

impl Publish {
    /// When the workload first acts, if it ever does.
    pub fn first_at(&self) -> Option<prsm_protocol::Time> {
        (self.start <= self.stop && self.count > 0)
            .then_some(prsm_protocol::Time(self.start.as_nanos()))
    }

    /// The workload acted at `now` and has issued `issued` in all: when it acts next, if it does.
    pub fn next_after(&self, now: prsm_protocol::Time, issued: u64) -> Option<prsm_protocol::Time> {
        let next = now + self.every;
        (next.as_nanos() <= self.stop.as_nanos() && issued < self.count).then_some(next)
    }
}

#[derive(Clone, Debug)]
pub enum FaultAction {
    Crash(NodeSetSpec),
    Restart(NodeSetSpec),
    Partition(PartitionPlan),
    Heal,
    Churn {
        rate_per_s: f64,
        downtime: Duration,
        until: Duration,
        /// Drawn among the live nodes this selects (None: every live node).
        nodes: Option<NodeSetSpec>,
    },
}

#[derive(Clone, Debug)]
pub enum PartitionPlan {
    Groups(Vec<NodeSetSpec>),
    Isolate(NodeSetSpec),
    ByRegion,
    OneWay {
        from: NodeSetSpec,
        to: NodeSetSpec,
    },
    /// Nothing passes between `a` and `b`, either way; every other link stays up.
    Between {
        a: NodeSetSpec,
        b: NodeSetSpec,
    },
}

#[derive(Clone, Debug)]
pub struct Fault {
    pub at: Duration,
    pub action: FaultAction,
}

#[derive(Clone, Copy, Debug)]
pub struct RunLimits {
    pub events_max: u64,
    pub pending_events_max: u64,
    pub events_per_instant_max: u64,
    pub node: prsm_protocol::Limits,
}

#[derive(Clone, Debug)]
pub struct NetworkConfig {
    pub latency: LatencyModel,
    pub loss: f64,
    pub duplicate: f64,
    pub overrides: Vec<LinkOverride>,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub seed: u64,
    pub duration: Duration,
    pub nodes: Vec<NodeInfo>,
    /// Region labels, in order of first appearance in `nodes:`.
    pub regions: Vec<String>,
    pub network: NetworkConfig,
    pub protocol: ProtocolConfig,
    pub workload: Workloads,
    pub faults: Vec<Fault>,
    pub adversaries: Vec<Adversary>,
    pub expect: Vec<Expectation>,
    pub sample_every: Duration,
    pub samples_max: usize,
    pub limits: RunLimits,
    /// Whether the file has a `sweep:` block (run by `prsm sweep`, ignored by a single run).
    pub has_sweep: bool,
    /// Legal but probably unintended settings (an adversary placed where its behaviour has no
    /// effect), located like errors; the run goes ahead.
    pub warnings: Vec<Diagnostic>,
}

impl Scenario {
    pub fn node_count(&self) -> u32 {
        self.nodes.len() as u32
    }
}
