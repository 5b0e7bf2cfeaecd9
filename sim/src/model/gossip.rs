//! The gossip model: a publish workload and dissemination metrics (coverage, latency, hops).
//!
//! Coverage of a rumor is the share of the nodes live at the end of the run that ever delivered
//! it (its publisher counts). A node that crashes and restarts keeps the deliveries of its earlier
//! life: the application saw them.
//!
//! With anti-entropy on, the model also counts its rounds, the rumors it sent, the rumors its
//! stores evicted, and the deliveries it made first (`gossip.anti_entropy.*`); with it off those
//! metrics are not published at all, so earlier scenarios' outputs stay as they were.

use std::collections::BTreeMap;

use prsm_protocol::gossip::{
    Blob, Gossip, GossipCommand, GossipConfig, GossipDurable, GossipEvent, PeerSet, RumorId,
};
use prsm_protocol::random::below;
use prsm_protocol::{NodeId, Time};
use rand_chacha::ChaCha8Rng;

use super::Model;
use crate::metrics::{LatencyHistogram, Metrics, Table};
use crate::scenario::Publish;

struct RumorRecord {
    published_at: Time,
    delivered: Vec<u64>,
    last_delivery: Time,
}

pub struct GossipModel {
    n: u32,
    config: GossipConfig,
    publish: Option<Publish>,
    rumors: Vec<RumorRecord>,
    index: BTreeMap<RumorId, usize>,
    latency: LatencyHistogram,
    hops: LatencyHistogram,
    deliveries: u64,
    redeliveries: u64,
    id_collisions: u64,
    duplicates: u64,
    queue_evictions: u64,
    ae_rounds: u64,
    ae_rumors_sent: u64,
    ae_store_evictions: u64,
    ae_repaired: u64,
    interval_published: u64,
    interval_deliveries: u64,
    samples: Table,
    samples_max: usize,
}

impl GossipModel {
    pub fn new(n: u32, config: GossipConfig, publish: Option<Publish>, samples_max: usize) -> Self {
        GossipModel {
            n,
            config,
            publish,
            rumors: Vec::new(),
            index: BTreeMap::new(),
            latency: LatencyHistogram::millis(),
            hops: LatencyHistogram::plain(),
            deliveries: 0,
            redeliveries: 0,
            id_collisions: 0,
            duplicates: 0,
            queue_evictions: 0,
            ae_rounds: 0,
            ae_rumors_sent: 0,
            ae_store_evictions: 0,
            ae_repaired: 0,
            interval_published: 0,
            interval_deliveries: 0,
            samples: Table::new(&[
                "origin",
                "seq",
                "node",
                "published_s",
                "delivered_s",
                "latency_ms",
                "hops",
            ]),
            samples_max,
        }
    }

    fn words(&self) -> usize {
        (self.n as usize).div_ceil(64)
    }
}

fn set_bit(bits: &mut [u64], i: usize) -> bool {
    let (word, mask) = (i / 64, 1u64 << (i % 64));
    let fresh = bits[word] & mask == 0;
    bits[word] |= mask;
    fresh
}

impl Model for GossipModel {
    type P = Gossip<Blob>;

    fn build(&self, _id: NodeId, durable: Option<GossipDurable>) -> Gossip<Blob> {
        Gossip::new(self.config, PeerSet::All { n: self.n }, durable)
    }

    fn first_command_at(&self) -> Option<Time> {
        self.publish.as_ref()?.first_at()
    }

    fn command(
        &mut self,
        now: Time,
        rng: &mut ChaCha8Rng,
        live: &[bool],
    ) -> (Option<(NodeId, GossipCommand<Blob>)>, Option<Time>) {
        let Some(publish) = &self.publish else {
            return (None, None);
        };
        let next = publish.next_after(now, self.rumors.len() as u64 + 1);
        let live_count = live.iter().filter(|&&l| l).count() as u64;
        if live_count == 0 {
            return (None, next);
        }
        // The k-th live node, uniformly.
        let k = below(rng, live_count) as usize;
        let origin = live
            .iter()
            .enumerate()
            .filter(|(_, l)| **l)
            .nth(k)
            .map(|(i, _)| i)
            .unwrap_or(0);
        let blob = Blob {
            len: publish.payload_bytes,
            tag: self.rumors.len() as u64,
        };
        (
            Some((NodeId(origin as u32), GossipCommand::Publish(blob))),
            next,
        )
    }

    fn observe(&mut self, now: Time, node: NodeId, event: GossipEvent) {
        match event {
            GossipEvent::Published { id } => {
                if self.index.contains_key(&id) {
                    // Only possible if a restarted publisher lost its durable counter.
                    self.id_collisions += 1;
                    return;
                }
                let mut delivered = vec![0u64; self.words()];
                set_bit(&mut delivered, node.index());
                self.index.insert(id, self.rumors.len());
                self.rumors.push(RumorRecord {
                    published_at: now,
                    delivered,
                    last_delivery: now,
                });
                self.interval_published += 1;
            }
            GossipEvent::Delivered { id, hops, repaired } => {
                let Some(&r) = self.index.get(&id) else {
                    return;
                };
                let rumor = &mut self.rumors[r];
                if !set_bit(&mut rumor.delivered, node.index()) {
                    // A restarted node forgot it had the rumor; the application already saw it.
                    self.redeliveries += 1;
                    return;
                }
                rumor.last_delivery = now;
                if repaired {
                    self.ae_repaired += 1;
                }
                let latency = now - rumor.published_at;
                self.latency.record(latency.as_nanos());
                self.hops.record(u64::from(hops));
                self.deliveries += 1;
                self.interval_deliveries += 1;
                let row = vec![
                    f64::from(id.origin.0),
                    f64::from(id.seq),
                    f64::from(node.0),
                    rumor.published_at.as_secs_f64(),
                    now.as_secs_f64(),
                    latency.as_millis_f64(),
                    f64::from(hops),
                ];
                self.samples.push(row, self.samples_max);
            }
        }
    }

    fn retire(&mut self, node: &Gossip<Blob>) {
        let stats = node.dissemination().stats();
        self.duplicates += stats.duplicates;
        self.queue_evictions += stats.queue_evictions;
        if let Some(ae) = node.anti_entropy() {
            let stats = ae.stats();
            self.ae_rounds += stats.rounds;
            self.ae_rumors_sent += stats.rumors_sent;
            self.ae_store_evictions += stats.evictions;
        }
    }

    fn series_columns(&self) -> Vec<&'static str> {
        vec!["gossip_published", "gossip_deliveries"]
    }

    fn sample(&mut self, out: &mut Vec<f64>) {
        out.push(self.interval_published as f64);
        out.push(self.interval_deliveries as f64);
        self.interval_published = 0;
        self.interval_deliveries = 0;
    }

    fn finish(&mut self, _end: Time, live: &[bool], metrics: &mut Metrics) {
        let mut live_bits = vec![0u64; self.words()];
        for (i, _) in live.iter().enumerate().filter(|(_, l)| **l) {
            set_bit(&mut live_bits, i);
        }
        let live_count = live.iter().filter(|&&l| l).count() as f64;
        let mut spread = LatencyHistogram::millis();
        let (mut sum, mut min, mut full) = (0.0, f64::INFINITY, 0u64);
        for rumor in &self.rumors {
            let reached: u32 = rumor
                .delivered
                .iter()
                .zip(&live_bits)
                .map(|(d, l)| (d & l).count_ones())
                .sum();
            let coverage = if live_count > 0.0 {
                f64::from(reached) / live_count
            } else {
                0.0
            };
            sum += coverage;
            min = min.min(coverage);
            if f64::from(reached) == live_count {
                full += 1;
                spread.record((rumor.last_delivery - rumor.published_at).as_nanos());
            }
        }
        let published = self.rumors.len() as u64;
        metrics.count("gossip.published", published);
        metrics.count("gossip.deliveries", self.deliveries);
        metrics.count("gossip.duplicates", self.duplicates);
        metrics.count("gossip.id_collisions", self.id_collisions);
        metrics.count("gossip.redeliveries", self.redeliveries);
        metrics.count("gossip.queue_evictions", self.queue_evictions);
        if self.config.anti_entropy.is_some() {
            metrics.count("gossip.anti_entropy.rounds", self.ae_rounds);
            metrics.count("gossip.anti_entropy.rumors_sent", self.ae_rumors_sent);
            metrics.count("gossip.anti_entropy.rumors_repaired", self.ae_repaired);
            metrics.count(
                "gossip.anti_entropy.store_evictions",
                self.ae_store_evictions,
            );
        }
        if published > 0 {
            metrics.real(
                "gossip.coverage",
                crate::metrics::round6(sum / published as f64),
            );
            metrics.real("gossip.coverage_min", crate::metrics::round6(min));
            metrics.real(
                "gossip.full_coverage_rate",
                crate::metrics::round6(full as f64 / published as f64),
            );
            let sent = metrics.get("net.messages_sent").unwrap_or(0.0);
            metrics.real(
                "gossip.messages_per_rumor",
                crate::metrics::round6(sent / published as f64),
            );
        }
        metrics.histogram("gossip.latency_ms", &self.latency);
        metrics.histogram("gossip.spread_ms", &spread);
        metrics.histogram("gossip.hops", &self.hops);
    }

    fn cdfs(&self) -> Vec<(String, Vec<(f64, f64)>)> {
        vec![("gossip.latency_ms".to_owned(), self.latency.cdf())]
    }

    fn tables(&mut self) -> Vec<(String, Table)> {
        vec![("deliveries".to_owned(), std::mem::take(&mut self.samples))]
    }
}
