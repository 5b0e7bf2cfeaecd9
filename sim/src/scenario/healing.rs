//! The partition and registry layers' keys (`layers: partition:`, `layers: registry:`) and their
//! validation.

use prsm_protocol::Duration;
use prsm_protocol::partition::PartitionConfig;
use prsm_protocol::registry::merkle::DEPTH_MAX;
use prsm_protocol::registry::{MergeRule, RegistryConfig};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::DurationSpec;
use super::validate::{Diagnostic, at};

/// `layers: partition:`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionSpec {
    #[serde(default)]
    pub interval: Option<Spanned<DurationSpec>>,
    #[serde(default)]
    pub probes: Option<Spanned<u64>>,
    #[serde(default)]
    pub misses: Option<Spanned<u64>>,
    #[serde(default)]
    pub threshold: Option<Spanned<f64>>,
    #[serde(default)]
    pub window: Option<Spanned<DurationSpec>>,
    #[serde(default)]
    pub group_share: Option<Spanned<f64>>,
    #[serde(default)]
    pub group_min: Option<Spanned<u64>>,
    #[serde(default)]
    pub peers_max: Option<Spanned<u64>>,
    #[serde(default)]
    pub burst: Option<Spanned<u64>>,
    /// Random peers each node watches from the start (besides validators and neighbours).
    #[serde(default)]
    pub seeds: Option<Spanned<u64>>,
}

/// `layers: registry:`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySpec {
    /// Merkle tree buckets: a power of two.
    #[serde(default)]
    pub buckets: Option<Spanned<u64>>,
    /// `lww` (last writer wins) or `max`.
    #[serde(default)]
    pub merge: Option<Spanned<String>>,
    #[serde(default)]
    pub interval: Option<Spanned<DurationSpec>>,
    #[serde(default)]
    pub hashes_max: Option<Spanned<u64>>,
    #[serde(default)]
    pub entries_max: Option<Spanned<u64>>,
    #[serde(default)]
    pub keys_max: Option<Spanned<u64>>,
    /// The `writes` workload's key space: keys 0 to keys - 1.
    #[serde(default)]
    pub keys: Option<Spanned<u64>>,
    /// Random peers each node reconciles with from the start (besides discovery's neighbours).
    #[serde(default)]
    pub seeds: Option<Spanned<u64>>,
}

/// The partition layer as the scenario configures it; validators, groups and seeds are filled
/// per node by the model.
#[derive(Clone, Debug, Default)]
pub struct PartitionSettings {
    pub config: PartitionConfig,
    pub seeds: usize,
}

#[derive(Clone, Debug, Default)]
pub struct RegistrySettings {
    pub config: RegistryConfig,
    pub keys: u64,
    pub seeds: usize,
}

/// Seeds per node, at most.
const SEEDS_MAX: u64 = 1_024;

fn positive(v: &Spanned<DurationSpec>, what: &str, errors: &mut Vec<Diagnostic>) -> Duration {
    if v.value.0 == Duration::ZERO {
        errors.push(at(
            v.referenced,
            format!("{what} must be greater than 0, e.g. `1s`"),
        ));
    }
    v.value.0.max(Duration::from_nanos(1))
}

fn count(v: &Spanned<u64>, what: &str, low: u64, high: u64, errors: &mut Vec<Diagnostic>) -> u64 {
    if !(low..=high).contains(&v.value) {
        errors.push(at(
            v.referenced,
            format!("{what} must be from {low} to {high}"),
        ));
    }
    v.value.clamp(low, high)
}

fn share(v: &Spanned<f64>, what: &str, errors: &mut Vec<Diagnostic>) -> f64 {
    if !(v.value > 0.0 && v.value <= 1.0) {
        errors.push(at(
            v.referenced,
            format!("{what} is a share of peers: above 0 and at most 1, e.g. 0.3"),
        ));
    }
    v.value.clamp(1e-9, 1.0)
}

pub fn resolve_partition_layer(
    spec: &Spanned<PartitionSpec>,
    errors: &mut Vec<Diagnostic>,
) -> PartitionSettings {
    let p = &spec.value;
    let d = PartitionConfig::default();
    let key = |k: &str| format!("layers.partition.{k}");
    let config = PartitionConfig {
        interval: p
            .interval
            .as_ref()
            .map_or(d.interval, |v| positive(v, &key("interval"), errors)),
        probes: p.probes.as_ref().map_or(d.probes, |v| {
            count(v, &key("probes"), 1, 1_024, errors) as usize
        }),
        misses: p.misses.as_ref().map_or(d.misses, |v| {
            count(v, &key("misses"), 1, 100, errors) as u32
        }),
        threshold: p
            .threshold
            .as_ref()
            .map_or(d.threshold, |v| share(v, &key("threshold"), errors)),
        window: p
            .window
            .as_ref()
            .map_or(d.window, |v| positive(v, &key("window"), errors)),
        group_share: p
            .group_share
            .as_ref()
            .map_or(d.group_share, |v| share(v, &key("group_share"), errors)),
        group_min: p.group_min.as_ref().map_or(d.group_min, |v| {
            count(v, &key("group_min"), 1, 1_024, errors) as usize
        }),
        peers_max: p.peers_max.as_ref().map_or(d.peers_max, |v| {
            count(v, &key("peers_max"), 1, 4_096, errors) as usize
        }),
        burst: p
            .burst
            .as_ref()
            .map_or(d.burst, |v| count(v, &key("burst"), 0, 64, errors) as usize),
        ..d
    };
    let seeds = p.seeds.as_ref().map_or(config.peers_max as u64, |v| {
        count(v, &key("seeds"), 0, SEEDS_MAX, errors)
    }) as usize;
    PartitionSettings { config, seeds }
}

pub fn resolve_registry(
    spec: &Spanned<RegistrySpec>,
    errors: &mut Vec<Diagnostic>,
) -> RegistrySettings {
    let r = &spec.value;
    let d = RegistryConfig::default();
    let key = |k: &str| format!("layers.registry.{k}");
    let depth = r.buckets.as_ref().map_or(d.depth, |b| {
        let max = 1u64 << DEPTH_MAX;
        if !(b.value.is_power_of_two() && (2..=max).contains(&b.value)) {
            errors.push(at(
                b.referenced,
                format!(
                    "layers.registry.buckets must be a power of two from 2 to {max}, e.g. 1024"
                ),
            ));
            return d.depth;
        }
        b.value.trailing_zeros() as u8
    });
    let merge = r.merge.as_ref().map_or(d.merge, |m| {
        let name = m.value.trim();
        MergeRule::ALL
            .into_iter()
            .find(|rule| rule.name() == name)
            .unwrap_or_else(|| {
                errors.push(at(
                    m.referenced,
                    format!(
                        "unknown merge rule `{name}`; use {}",
                        MergeRule::ALL
                            .map(|r| format!("`{}`", r.name()))
                            .join(" or ")
                    ),
                ));
                d.merge
            })
    });
    let config = RegistryConfig {
        depth,
        merge,
        interval: r
            .interval
            .as_ref()
            .map_or(d.interval, |v| positive(v, &key("interval"), errors)),
        hashes_max: r.hashes_max.as_ref().map_or(d.hashes_max, |v| {
            count(v, &key("hashes_max"), 2, 65_536, errors) as usize
        }),
        entries_max: r.entries_max.as_ref().map_or(d.entries_max, |v| {
            count(v, &key("entries_max"), 1, 32_768, errors) as usize
        }),
        keys_max: r.keys_max.as_ref().map_or(d.keys_max, |v| {
            count(v, &key("keys_max"), 1, 1 << 24, errors) as usize
        }),
        ..d
    };
    let keys = r
        .keys
        .as_ref()
        .map_or(10_000, |v| count(v, &key("keys"), 1, 1 << 40, errors));
    let seeds = r
        .seeds
        .as_ref()
        .map_or(8, |v| count(v, &key("seeds"), 0, SEEDS_MAX, errors)) as usize;
    RegistrySettings {
        config,
        keys,
        seeds,
    }
}
