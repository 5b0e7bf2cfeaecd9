//! The relay model: the kernel benchmark workload. Its metrics are the kernel's own.

use prsm_protocol::relay::Relay;
use prsm_protocol::{NodeId, Time};

use super::Model;
use crate::metrics::{Metrics, Table};

pub struct RelayModel {
    n: u32,
    tokens_per_node: u32,
}

impl RelayModel {
    pub fn new(n: u32, tokens_per_node: u32) -> Self {
        RelayModel { n, tokens_per_node }
    }
}

impl Model for RelayModel {
    type P = Relay;

    fn build(&self, _id: NodeId, _durable: Option<()>) -> Relay {
        Relay::new(self.n, self.tokens_per_node)
    }
    fn observe(&mut self, _now: Time, _node: NodeId, _event: u32) {}
    fn retire(&mut self, _node: &Relay) {}
    fn series_columns(&self) -> Vec<&'static str> {
        vec![]
    }
    fn sample(&mut self, _out: &mut Vec<f64>) {}
    fn finish(&mut self, _end: Time, _live: &[bool], _metrics: &mut Metrics) {}
    fn tables(&mut self) -> Vec<(String, Table)> {
        Vec::new()
    }
}
