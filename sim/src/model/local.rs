//! The local-discovery model: who found whom on each site, and how fast. It is the `local`
//! layer's part of the full node's model, and scopes broadcasts to a node's site.

use prsm_protocol::local::{Local, LocalConfig, LocalEvent};
use prsm_protocol::{NodeId, Time};

use super::Model;
use crate::metrics::{LatencyHistogram, Metrics, Table};
use crate::scenario::LocalSettings;

/// Local discovery: who found whom on each site, and how fast.
pub struct LocalModel {
    config: LocalConfig,
    n: u32,
    /// Which nodes run local discovery (a site's other nodes are not there to be found).
    members: Vec<bool>,
    site_size: u32,
    started: Vec<Option<Time>>,
    known: Vec<u32>,
    completed: Vec<bool>,
    complete: LatencyHistogram,
    discovered: u64,
    expired: u64,
    interval_discovered: u64,
    /// Per node, the peers it knew when last retired.
    views: Vec<Option<Vec<NodeId>>>,
}

impl LocalModel {
    pub fn new(n: u32, settings: LocalSettings, members: Vec<bool>) -> Self {
        let len = n as usize;
        let site_size = settings.site_size;
        LocalModel {
            config: settings.config,
            n,
            members,
            site_size: site_size.max(1),
            started: vec![None; len],
            known: vec![0; len],
            completed: vec![false; len],
            complete: LatencyHistogram::millis(),
            discovered: 0,
            expired: 0,
            interval_discovered: 0,
            views: vec![None; len],
        }
    }

    /// The site of `node`: its block of `site_size` consecutive indices.
    fn site(&self, node: NodeId) -> std::ops::Range<u32> {
        let start = node.0 / self.site_size * self.site_size;
        start..(start + self.site_size).min(self.n)
    }

    fn started_at(&mut self, now: Time, node: NodeId) {
        let i = node.index();
        self.started[i] = Some(now);
        self.known[i] = 0;
        self.completed[i] = false;
    }

    fn crashed_now(&mut self, node: NodeId) {
        self.started[node.index()] = None;
    }

    fn observe_event(&mut self, now: Time, node: NodeId, event: LocalEvent) {
        let i = node.index();
        match event {
            LocalEvent::Discovered { .. } => {
                self.discovered += 1;
                self.interval_discovered += 1;
                self.known[i] += 1;
                let others = self
                    .site(node)
                    .filter(|&j| j != node.0 && self.members[j as usize])
                    .count() as u32;
                if self.known[i] >= others && !self.completed[i] {
                    self.completed[i] = true;
                    if let Some(t) = self.started[i] {
                        self.complete.record((now - t).as_nanos());
                    }
                }
            }
            LocalEvent::Expired { .. } => {
                self.expired += 1;
                self.known[i] = self.known[i].saturating_sub(1);
            }
        }
    }

    fn retire_view(&mut self, node: &Local) {
        self.views[node.id().index()] = Some(node.peers().collect());
    }

    fn publish(&mut self, live: &[bool], m: &mut Metrics) {
        let (mut should, mut found, mut known) = (0u64, 0u64, 0u64);
        for (i, view) in self.views.iter().enumerate() {
            let Some(view) = view.as_ref().filter(|_| live[i]) else {
                continue;
            };
            let me = NodeId(i as u32);
            should += self
                .site(me)
                .filter(|&j| j != me.0 && live[j as usize] && self.members[j as usize])
                .count() as u64;
            found += view.iter().filter(|p| live[p.index()]).count() as u64;
            known += view.len() as u64;
        }
        m.count("local.discovered", self.discovered);
        m.count("local.expired", self.expired);
        m.ratio("local.view_completeness", found, should);
        m.ratio("local.view_accuracy", found, known);
        m.histogram("local.complete_ms", &self.complete);
    }
}

impl Model for LocalModel {
    type P = Local;

    fn build(&self, id: NodeId, _durable: Option<()>) -> Local {
        Local::new(self.config, id)
    }

    fn broadcast_scope(&self, from: NodeId) -> Option<std::ops::Range<u32>> {
        Some(self.site(from))
    }

    fn started(&mut self, now: Time, node: NodeId) {
        self.started_at(now, node);
    }

    fn crashed(&mut self, _now: Time, node: NodeId) {
        self.crashed_now(node);
    }

    fn observe(&mut self, now: Time, node: NodeId, event: LocalEvent) {
        self.observe_event(now, node, event);
    }

    fn retire(&mut self, node: &Local) {
        self.retire_view(node);
    }

    fn series_columns(&self) -> Vec<&'static str> {
        vec!["local_discovered"]
    }

    fn sample(&mut self, out: &mut Vec<f64>) {
        out.push(std::mem::take(&mut self.interval_discovered) as f64);
    }

    fn finish(&mut self, _end: Time, live: &[bool], m: &mut Metrics) {
        self.publish(live, m);
    }

    fn tables(&mut self) -> Vec<(String, Table)> {
        Vec::new()
    }
}

pub const LOCAL_COUNTS: &[&str] = &["local.discovered", "local.expired"];
pub const LOCAL_REALS: &[&str] = &["local.view_completeness", "local.view_accuracy"];
pub const LOCAL_HISTOGRAMS: &[&str] = &["local.complete_ms"];
