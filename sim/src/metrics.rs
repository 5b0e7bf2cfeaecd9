//! Metrics: named counters and values, latency histograms, time series, and the catalog of every
//! metric name a scenario may put in an expectation.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::scenario::ProtocolConfig;

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Metric {
    Count(u64),
    Real(f64),
}

impl Metric {
    pub fn as_f64(self) -> f64 {
        match self {
            Metric::Count(c) => c as f64,
            Metric::Real(r) => r,
        }
    }
}

/// A run's metrics by name, in name order.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(transparent)]
pub struct Metrics {
    values: BTreeMap<String, Metric>,
}

/// The summary statistics published for every histogram, in this order.
pub const HISTOGRAM_SUFFIXES: [&str; 7] = ["count", "mean", "p50", "p90", "p99", "p999", "max"];

impl Metrics {
    pub fn count(&mut self, name: &str, value: u64) {
        self.values.insert(name.to_owned(), Metric::Count(value));
    }

    pub fn real(&mut self, name: &str, value: f64) {
        // Non-finite values (a ratio over zero samples) are left out rather than written as null.
        if value.is_finite() {
            self.values.insert(name.to_owned(), Metric::Real(value));
        }
    }

    /// Publishes `<name>.count`, and when there are samples the mean, percentiles and max.
    /// Publishes `num / den` (rounded to 6 decimals), or nothing when `den` is 0.
    pub fn ratio(&mut self, name: &str, num: u64, den: u64) {
        if den > 0 {
            self.real(name, round6(num as f64 / den as f64));
        }
    }

    pub fn histogram(&mut self, name: &str, h: &LatencyHistogram) {
        self.count(&format!("{name}.count"), h.inner.len());
        if h.inner.is_empty() {
            return;
        }
        let scale = h.unit_per_ns;
        self.real(&format!("{name}.mean"), round6(h.inner.mean() * scale));
        for (suffix, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
            self.real(
                &format!("{name}.{suffix}"),
                round6(h.inner.value_at_quantile(q) as f64 * scale),
            );
        }
        self.real(&format!("{name}.max"), round6(h.inner.max() as f64 * scale));
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.get(name).map(|m| m.as_f64())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, Metric)> {
        self.values.iter().map(|(k, v)| (k.as_str(), *v))
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Rounds to 6 decimals so reports do not carry float noise from unit conversion.
pub fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// A histogram of durations recorded in nanoseconds (3 significant digits) and published in a
/// chosen unit; other quantities (hop counts) use a unit factor of 1.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    inner: Histogram<u64>,
    unit_per_ns: f64,
}

impl LatencyHistogram {
    pub fn millis() -> Self {
        Self::with_unit(1e-6)
    }

    pub fn plain() -> Self {
        Self::with_unit(1.0)
    }

    fn with_unit(unit_per_ns: f64) -> Self {
        // 3 significant digits with auto-resize cannot fail to construct.
        #[allow(clippy::expect_used)]
        let inner = Histogram::new(3).expect("valid hdrhistogram precision");
        LatencyHistogram { inner, unit_per_ns }
    }

    pub fn record(&mut self, value: u64) {
        // `record` grows the histogram as needed (auto-resize); it fails only past the largest
        // value hdrhistogram can track, where we saturate. (`saturating_record` alone would clip
        // at the current, initially tiny, range instead of growing.)
        if self.inner.record(value).is_err() {
            self.inner.saturating_record(value);
        }
    }

    pub fn len(&self) -> u64 {
        self.inner.len()
    }

    /// The value at quantile `q`, in the published unit; None without samples.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        (!self.inner.is_empty())
            .then(|| round6(self.inner.value_at_quantile(q) as f64 * self.unit_per_ns))
    }

    /// (quantile, value) pairs for a CDF plot: 200 even steps plus the far tail.
    pub fn cdf(&self) -> Vec<(f64, f64)> {
        let mut grid: Vec<f64> = (0..=200).map(|i| f64::from(i) / 200.0).collect();
        grid.extend([0.999, 0.9999]);
        grid.sort_by(f64::total_cmp);
        grid.iter()
            .filter_map(|&q| self.quantile(q).map(|v| (q, v)))
            .collect()
    }

    pub fn clear(&mut self) {
        self.inner.reset();
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

/// A table destined for a CSV file: tidy columns, one row per observation.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<f64>>,
    /// Text columns, written after the numeric ones (names, lists, outcomes).
    pub text_columns: Vec<String>,
    /// Per row, its text cells (empty when the table has no text columns).
    pub text_rows: Vec<Vec<String>>,
    /// Rows dropped because the table reached its limit.
    pub truncated: u64,
}

impl Table {
    pub fn new(columns: &[&str]) -> Self {
        Table {
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: Vec::new(),
            text_columns: Vec::new(),
            text_rows: Vec::new(),
            truncated: 0,
        }
    }

    /// A table with numeric columns, then text columns.
    pub fn with_text(columns: &[&str], text_columns: &[&str]) -> Self {
        Table {
            text_columns: text_columns.iter().map(|c| (*c).to_owned()).collect(),
            ..Table::new(columns)
        }
    }

    pub fn push(&mut self, row: Vec<f64>, rows_max: usize) {
        debug_assert_eq!(row.len(), self.columns.len());
        if self.rows.len() >= rows_max {
            self.truncated += 1;
        } else {
            self.rows.push(row);
        }
    }

    pub fn push_with_text(&mut self, row: Vec<f64>, text: Vec<String>, rows_max: usize) {
        debug_assert_eq!(text.len(), self.text_columns.len());
        if self.rows.len() >= rows_max {
            self.truncated += 1;
        } else {
            self.rows.push(row);
            self.text_rows.push(text);
        }
    }
}

/// Metrics every run publishes, whatever the protocol.
const KERNEL_COUNTS: &[&str] = &[
    "sim.events",
    "sim.stale_wakes",
    "nodes.total",
    "nodes.live_at_end",
    "net.messages_sent",
    "net.messages_delivered",
    "net.messages_lost",
    "net.messages_cut",
    "net.messages_to_dead",
    "net.messages_duplicated",
    "net.messages_bad_address",
    "net.bytes_sent",
    "net.bytes_delivered",
    "node.rejected",
    "node.rejected.malformed",
    "node.rejected.oversized",
    "node.rejected.unauthenticated",
    "node.rejected.replayed",
    "node.rejected.unexpected",
    "node.effects_dropped",
    "node.oversized_sends",
    "node.timers_fired",
    "node.timers_refused",
    "node.evidence",
    "faults.crashes",
    "faults.restarts",
    "faults.partitions",
    "faults.heals",
    "faults.log_dropped",
];
const KERNEL_REALS: &[&str] = &[
    "sim.virtual_time_s",
    "net.delivery_ratio",
    "net.messages_per_node_per_s",
    "net.bytes_per_node_per_s",
];
const KERNEL_HISTOGRAMS: &[&str] = &[
    "net.latency_ms",
    "net.uplink_wait_ms",
    "node.processing_wait_ms",
];

const GOSSIP_COUNTS: &[&str] = &[
    "gossip.published",
    "gossip.deliveries",
    "gossip.duplicates",
    "gossip.redeliveries",
    "gossip.id_collisions",
    "gossip.queue_evictions",
];
/// Published only with anti-entropy on.
const GOSSIP_ANTI_ENTROPY_COUNTS: &[&str] = &[
    "gossip.anti_entropy.rounds",
    "gossip.anti_entropy.rumors_sent",
    "gossip.anti_entropy.rumors_repaired",
    "gossip.anti_entropy.store_evictions",
];
const GOSSIP_REALS: &[&str] = &[
    "gossip.coverage",
    "gossip.coverage_min",
    "gossip.full_coverage_rate",
    "gossip.messages_per_rumor",
];
const GOSSIP_HISTOGRAMS: &[&str] = &["gossip.latency_ms", "gossip.spread_ms", "gossip.hops"];

const RELAY_COUNTS: &[&str] = &[];

/// Shares and rates: a part over its whole, so always in [0, 1]. Every other metric (counts,
/// times, sizes, per-unit rates, `net.delivery_ratio`, which duplicates can push past 1) is only
/// known to be 0 or more.
const SHARES: &[&str] = &[
    "gossip.coverage",
    "gossip.coverage_min",
    "gossip.full_coverage_rate",
    "kad.joined_rate",
    "kad.lookup_success_rate",
    "kad.k_peers_rate",
    "kad.table_accuracy",
    "kad.adversary_contact_share",
    "kad.victim_adversary_share",
    "local.view_completeness",
    "local.view_accuracy",
    "pbft.completion_rate",
    "swim.view_accuracy",
    "tasks.success_rate",
    "tasks.wrong_share",
    "tasks.wrong_share_before",
    "tasks.wrong_share_after",
    "detection.honest_quarantined_rate",
    "detection.sprt_false_positive_rate",
    "detection.sprt_detection_rate",
];

/// The values a metric can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricRange {
    /// A share or rate, in [0, 1].
    Share,
    /// 0 or more, no upper bound.
    NonNegative,
}

impl MetricRange {
    pub fn low(self) -> f64 {
        0.0
    }

    pub fn high(self) -> f64 {
        match self {
            MetricRange::Share => 1.0,
            MetricRange::NonNegative => f64::INFINITY,
        }
    }

    /// `between 0 and 1` or `0 or more`, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            MetricRange::Share => "between 0 and 1",
            MetricRange::NonNegative => "0 or more",
        }
    }
}

/// The range of a metric in the catalog: every metric prsm publishes is 0 or more, and shares
/// and rates are at most 1.
pub fn metric_range(name: &str) -> MetricRange {
    let group_share = (name.starts_with("tasks.by_") && name.ends_with(".success_rate"))
        || (name.starts_with("detection.by_fault.") && name.ends_with(".detected_share"));
    if SHARES.contains(&name) || group_share {
        MetricRange::Share
    } else {
        MetricRange::NonNegative
    }
}

/// Every metric name a scenario with this protocol publishes (histograms expanded).
pub fn catalog(protocol: &ProtocolConfig) -> Vec<String> {
    type Family = (
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
    );
    use crate::model as m;
    let swim: Family = (m::SWIM_COUNTS, m::SWIM_REALS, m::SWIM_HISTOGRAMS);
    let mut families: Vec<Family> = Vec::new();
    let mut extra: Vec<String> = Vec::new();
    match protocol {
        ProtocolConfig::Gossip(config) => {
            families.push((GOSSIP_COUNTS, GOSSIP_REALS, GOSSIP_HISTOGRAMS));
            if config.anti_entropy.is_some() {
                families.push((GOSSIP_ANTI_ENTROPY_COUNTS, &[], &[]));
            }
        }
        ProtocolConfig::Relay { .. } => families.push((RELAY_COUNTS, &[], &[])),
        ProtocolConfig::Swim(_) => families.push(swim),
        ProtocolConfig::Pbft(_) => {
            families.push((m::PBFT_COUNTS, m::PBFT_REALS, m::PBFT_HISTOGRAMS));
        }
        ProtocolConfig::Full(full) => {
            if full.kad.is_some() {
                families.push((m::KAD_COUNTS, m::KAD_REALS, m::KAD_HISTOGRAMS));
            }
            if full.swim.is_some() {
                families.push(swim);
            }
            if full.local.is_some() {
                families.push((m::LOCAL_COUNTS, m::LOCAL_REALS, m::LOCAL_HISTOGRAMS));
            }
            if full.pbft.is_some() {
                families.push((m::PBFT_COUNTS, m::PBFT_REALS, m::PBFT_HISTOGRAMS));
            }
            if full.detection.is_some() {
                use crate::model::detection as d;
                families.push((
                    d::DETECTION_COUNTS,
                    d::DETECTION_REALS,
                    d::DETECTION_HISTOGRAMS,
                ));
                for class in d::FAULT_CLASSES {
                    for name in d::DETECTION_FAULT_COUNTS
                        .iter()
                        .chain(d::DETECTION_FAULT_REALS)
                    {
                        extra.push(format!("detection.by_fault.{class}.{name}"));
                    }
                    for h in d::DETECTION_FAULT_HISTOGRAMS {
                        for suffix in HISTOGRAM_SUFFIXES {
                            extra.push(format!("detection.by_fault.{class}.{h}.{suffix}"));
                        }
                    }
                }
            }
            if full.partition.is_some() {
                use crate::model::healing as h;
                families.push((
                    h::PARTITION_COUNTS,
                    h::PARTITION_REALS,
                    h::PARTITION_HISTOGRAMS,
                ));
            }
            if full.registry.is_some() {
                use crate::model::healing as h;
                families.push((
                    h::REGISTRY_COUNTS,
                    h::REGISTRY_REALS,
                    h::REGISTRY_HISTOGRAMS,
                ));
            }
            if let Some(r) = &full.routing {
                families.push((m::ROUTING_COUNTS, m::ROUTING_REALS, m::ROUTING_HISTOGRAMS));
                for class in &r.catalog.classes {
                    for name in m::ROUTING_GROUP_METRICS {
                        extra.push(format!("tasks.by_class.{}.{name}", class.name));
                    }
                }
                for region in &r.regions {
                    for name in m::ROUTING_GROUP_METRICS {
                        extra.push(format!("tasks.by_region.{region}.{name}"));
                    }
                }
            }
            extra.extend(
                FULL_COUNTS
                    .iter()
                    .chain(FULL_REALS)
                    .map(|s| (*s).to_owned()),
            );
            for layer in m::FULL_LAYERS {
                for name in FULL_LAYER_COUNTS.iter().chain(FULL_LAYER_REALS) {
                    extra.push(name.replace("{layer}", layer));
                }
            }
        }
    }
    let mut names: Vec<String> = KERNEL_COUNTS
        .iter()
        .chain(KERNEL_REALS)
        .chain(families.iter().flat_map(|f| f.0.iter().chain(f.1)))
        .map(|s| (*s).to_owned())
        .collect();
    names.extend(extra);
    for h in KERNEL_HISTOGRAMS
        .iter()
        .chain(families.iter().flat_map(|f| f.2.iter()))
    {
        names.extend(HISTOGRAM_SUFFIXES.iter().map(|s| format!("{h}.{s}")));
    }
    names.sort();
    names.dedup();
    names
}

/// What a composed node adds: notices between its layers and its memory.
pub const FULL_COUNTS: &[&str] = &["node.notices_delivered", "node.notices_dropped"];
pub const FULL_REALS: &[&str] = &["node.memory_bytes_per_node"];
/// Per layer (`{layer}` is kademlia, swim, local or pbft): its traffic, how many live nodes run
/// it at the end, and its state per node running it.
pub const FULL_LAYER_COUNTS: &[&str] = &[
    "net.by_layer.{layer}.messages_sent",
    "net.by_layer.{layer}.bytes_sent",
    "node.by_layer.{layer}.nodes",
];
pub const FULL_LAYER_REALS: &[&str] = &["node.by_layer.{layer}.memory_bytes_per_node"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_publishes_percentiles_in_its_unit() {
        let mut h = LatencyHistogram::millis();
        for ms in 1..=100u64 {
            h.record(ms * 1_000_000);
        }
        let mut m = Metrics::default();
        m.histogram("x_ms", &h);
        assert_eq!(m.get("x_ms.count"), Some(100.0));
        let p50 = m.get("x_ms.p50").unwrap();
        assert!((p50 - 50.0).abs() < 0.1, "{p50}");
        assert!((m.get("x_ms.max").unwrap() - 100.0).abs() < 0.1);
    }

    #[test]
    fn empty_histograms_publish_only_a_count() {
        let mut m = Metrics::default();
        m.histogram("y_ms", &LatencyHistogram::millis());
        assert_eq!(m.get("y_ms.count"), Some(0.0));
        assert_eq!(m.get("y_ms.p50"), None);
    }

    /// Every share named in the range table is a metric some protocol publishes (a renamed metric
    /// would otherwise silently lose its bounds), and every real metric whose name says share,
    /// rate, accuracy, coverage or completeness is in the table.
    #[test]
    fn shares_are_catalog_metrics_and_bounded() {
        let reals: Vec<&str> = [
            KERNEL_REALS,
            GOSSIP_REALS,
            crate::model::SWIM_REALS,
            crate::model::KAD_REALS,
            crate::model::LOCAL_REALS,
            crate::model::PBFT_REALS,
            crate::model::ROUTING_REALS,
            crate::model::detection::DETECTION_REALS,
            crate::model::healing::PARTITION_REALS,
            crate::model::healing::REGISTRY_REALS,
            FULL_REALS,
        ]
        .concat();
        for s in SHARES {
            assert!(reals.contains(s), "{s} is not a published real metric");
            assert_eq!(metric_range(s), MetricRange::Share);
        }
        for r in &reals {
            let looks_like_share = ["share", "_rate", "accuracy", "coverage", "completeness"]
                .iter()
                .any(|w| r.contains(w));
            assert_eq!(
                metric_range(r) == MetricRange::Share,
                looks_like_share,
                "{r}"
            );
        }
        assert_eq!(metric_range("net.delivery_ratio"), MetricRange::NonNegative);
        assert_eq!(metric_range("net.messages_sent").high(), f64::INFINITY);
    }

    #[test]
    fn catalog_covers_kernel_and_protocol_metrics() {
        let names = catalog(&ProtocolConfig::Gossip(Default::default()));
        assert!(names.iter().any(|n| n == "gossip.coverage"));
        assert!(names.iter().any(|n| n == "net.latency_ms.p99"));
        assert!(
            !catalog(&ProtocolConfig::Relay { tokens_per_node: 1 })
                .iter()
                .any(|n| n.starts_with("gossip"))
        );
        assert!(!names.iter().any(|n| n.starts_with("gossip.anti_entropy")));
        let repairing = prsm_protocol::gossip::GossipConfig {
            anti_entropy: Some(Default::default()),
            ..Default::default()
        };
        let names = catalog(&ProtocolConfig::Gossip(repairing));
        assert!(
            names
                .iter()
                .any(|n| n == "gossip.anti_entropy.rumors_repaired")
        );
    }
}
