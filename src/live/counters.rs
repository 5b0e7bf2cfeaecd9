//! What a live node counts, and its Prometheus text exposition (`--metrics-addr`).
//!
//! The counters are cumulative since the process started, as Prometheus counters are; the
//! cluster sums the last report of every incarnation of every node into the run's metrics.

use std::fmt::Write;

use prsm_protocol::{DropReason, NodeStats};
use serde::{Deserialize, Serialize};

use super::frame::Reject;

/// Cumulative counters of one node process.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Data frames written to a peer's connection, and their bytes on the wire.
    pub frames_sent: u64,
    pub bytes_sent: u64,
    /// Data frames that passed every check and reached the node.
    pub frames_received: u64,
    pub bytes_received: u64,
    /// Frames dropped by reason (index: [`Reject::ALL`]).
    pub rejected: [u64; Reject::ALL.len()],
    /// Messages not sent because the peer was unreachable (no address, connection refused,
    /// handshake failed), or because its send queue was full.
    pub unreachable: u64,
    pub queue_full: u64,
    /// Messages whose encoding did not fit in one frame, dropped at the sender.
    pub too_large: u64,
    /// Messages the adapter's drop rules (a partition) stopped on the way out or on arrival.
    pub cut_out: u64,
    pub cut_in: u64,
    /// Connections accepted and dialed that completed the handshake.
    pub connections_in: u64,
    pub connections_out: u64,
    /// Durable-state writes, and the ones that failed.
    pub persists: u64,
    pub persist_errors: u64,
    /// Evidence of misbehaviour the node reported.
    pub evidence: u64,
    /// The node's own counters (the same `NodeStats` the simulator sums).
    pub steps: u64,
    pub timers_fired: u64,
    pub effects_dropped: u64,
    pub oversized_sends: u64,
    pub node_rejected: [u64; DropReason::ALL.len()],
    /// Per layer (registration order): messages and bytes sent, events emitted.
    pub layer_messages: Vec<u64>,
    pub layer_bytes: Vec<u64>,
    pub layer_events: Vec<u64>,
}

impl Counters {
    pub fn new(layers: usize) -> Self {
        Counters {
            layer_messages: vec![0; layers],
            layer_bytes: vec![0; layers],
            layer_events: vec![0; layers],
            ..Counters::default()
        }
    }

    pub fn reject(&mut self, reason: Reject) {
        self.rejected[reason as usize] += 1;
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    pub fn set_node_stats(&mut self, s: &NodeStats) {
        self.steps = s.steps;
        self.timers_fired = s.timers_fired;
        self.effects_dropped = s.effects_dropped;
        self.oversized_sends = s.oversized_sends;
        self.node_rejected = s.rejected;
    }

    /// Adds `other` (another node, or an earlier incarnation of this one).
    pub fn add(&mut self, other: &Counters) {
        let pairs = [
            (&mut self.frames_sent, other.frames_sent),
            (&mut self.bytes_sent, other.bytes_sent),
            (&mut self.frames_received, other.frames_received),
            (&mut self.bytes_received, other.bytes_received),
            (&mut self.unreachable, other.unreachable),
            (&mut self.queue_full, other.queue_full),
            (&mut self.too_large, other.too_large),
            (&mut self.cut_out, other.cut_out),
            (&mut self.cut_in, other.cut_in),
            (&mut self.connections_in, other.connections_in),
            (&mut self.connections_out, other.connections_out),
            (&mut self.persists, other.persists),
            (&mut self.persist_errors, other.persist_errors),
            (&mut self.evidence, other.evidence),
            (&mut self.steps, other.steps),
            (&mut self.timers_fired, other.timers_fired),
            (&mut self.effects_dropped, other.effects_dropped),
            (&mut self.oversized_sends, other.oversized_sends),
        ];
        for (a, b) in pairs {
            *a += b;
        }
        for (a, b) in self.rejected.iter_mut().zip(other.rejected) {
            *a += b;
        }
        for (a, b) in self.node_rejected.iter_mut().zip(other.node_rejected) {
            *a += b;
        }
        for (mine, theirs) in [
            (&mut self.layer_messages, &other.layer_messages),
            (&mut self.layer_bytes, &other.layer_bytes),
            (&mut self.layer_events, &other.layer_events),
        ] {
            if mine.len() < theirs.len() {
                mine.resize(theirs.len(), 0);
            }
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a += b;
            }
        }
    }

    /// The Prometheus text exposition format (version 0.0.4) of these counters.
    pub fn prometheus(&self, node: u32, layers: &[&str]) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, rows: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP prsm_{name} {help}");
            let _ = writeln!(out, "# TYPE prsm_{name} counter");
            for (labels, value) in rows {
                let sep = if labels.is_empty() { "" } else { "," };
                let _ = writeln!(out, "prsm_{name}{{node=\"{node}\"{sep}{labels}}} {value}");
            }
        };
        let one = |v: u64| vec![(String::new(), v)];
        counter(
            "frames_sent_total",
            "Data frames written to peers.",
            &one(self.frames_sent),
        );
        counter(
            "frame_bytes_sent_total",
            "Bytes of data frames written to peers.",
            &one(self.bytes_sent),
        );
        counter(
            "frames_received_total",
            "Data frames accepted from peers.",
            &one(self.frames_received),
        );
        counter(
            "frame_bytes_received_total",
            "Bytes of data frames accepted from peers.",
            &one(self.bytes_received),
        );
        let rejected: Vec<(String, u64)> = Reject::ALL
            .iter()
            .map(|r| {
                (
                    format!("reason=\"{}\"", r.name()),
                    self.rejected[*r as usize],
                )
            })
            .collect();
        counter(
            "frames_rejected_total",
            "Frames dropped before the node saw them, by reason.",
            &rejected,
        );
        counter(
            "sends_unreachable_total",
            "Messages not sent: peer unreachable.",
            &one(self.unreachable),
        );
        counter(
            "sends_queue_full_total",
            "Messages not sent: the peer's send queue was full.",
            &one(self.queue_full),
        );
        counter(
            "sends_too_large_total",
            "Messages whose encoding did not fit in one frame, dropped at the sender.",
            &one(self.too_large),
        );
        counter(
            "cut_total",
            "Messages stopped by the adapter's drop rules (a partition).",
            &[
                ("direction=\"out\"".to_owned(), self.cut_out),
                ("direction=\"in\"".to_owned(), self.cut_in),
            ],
        );
        counter(
            "connections_total",
            "Connections that completed the handshake.",
            &[
                ("direction=\"in\"".to_owned(), self.connections_in),
                ("direction=\"out\"".to_owned(), self.connections_out),
            ],
        );
        counter(
            "persists_total",
            "Durable-state writes.",
            &one(self.persists),
        );
        counter(
            "persist_errors_total",
            "Durable-state writes that failed.",
            &one(self.persist_errors),
        );
        counter(
            "evidence_total",
            "Evidence of misbehaviour reported.",
            &one(self.evidence),
        );
        counter(
            "steps_total",
            "Inputs the node stepped on.",
            &one(self.steps),
        );
        counter(
            "timers_fired_total",
            "Timers fired.",
            &one(self.timers_fired),
        );
        counter(
            "effects_dropped_total",
            "Effects over the per-step limit.",
            &one(self.effects_dropped),
        );
        counter(
            "oversized_sends_total",
            "Messages over the size limit, dropped at the sender.",
            &one(self.oversized_sends),
        );
        let node_rejected: Vec<(String, u64)> = DropReason::ALL
            .iter()
            .map(|r| {
                (
                    format!("reason=\"{}\"", r.name()),
                    self.node_rejected[*r as usize],
                )
            })
            .collect();
        counter(
            "messages_rejected_total",
            "Decoded messages the protocol's own checks dropped, by reason.",
            &node_rejected,
        );
        let per_layer = |values: &[u64]| -> Vec<(String, u64)> {
            layers
                .iter()
                .zip(values)
                .map(|(l, v)| (format!("layer=\"{l}\""), *v))
                .collect()
        };
        counter(
            "layer_messages_sent_total",
            "Messages sent, by layer.",
            &per_layer(&self.layer_messages),
        );
        counter(
            "layer_bytes_sent_total",
            "Encoded message bytes sent, by layer.",
            &per_layer(&self.layer_bytes),
        );
        counter(
            "layer_events_total",
            "Events emitted, by layer.",
            &per_layer(&self.layer_events),
        );
        out
    }
}
