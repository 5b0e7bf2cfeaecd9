//! The simulated network: latency, loss, duplication, per-link overrides and partitions.
//!
//! The network decides the fate of each message when it is sent, drawing from its own seeded
//! stream. A partition cuts links both when a message is sent and when it would arrive, so a
//! message in flight across a new cut is lost, as on a real link that goes down.

mod latency;
mod regions;

pub use latency::LatencyModel;
pub use regions::RegionMatrix;

use prsm_protocol::random::chance;
use prsm_protocol::{Duration, NodeId};
use rand_chacha::ChaCha8Rng;

use crate::scenario::{NetworkConfig, NodeSetSpec};

/// A per-link override as written: applies to messages between any node of `a` and any of `b`,
/// in both directions.
#[derive(Clone, Debug)]
pub struct LinkOverride {
    pub a: NodeSetSpec,
    pub b: NodeSetSpec,
    pub latency: Option<LatencyModel>,
    pub loss: Option<f64>,
}

/// An override with its node sets resolved to membership flags.
#[derive(Clone, Debug)]
struct ResolvedOverride {
    a: Vec<bool>,
    b: Vec<bool>,
    latency: Option<LatencyModel>,
    loss: Option<f64>,
}

/// What the network does with one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Lost,
    Cut,
    Deliver {
        delay: Duration,
        duplicate: Option<Duration>,
    },
}

pub struct Network {
    latency: LatencyModel,
    loss: f64,
    duplicate: f64,
    overrides: Vec<ResolvedOverride>,
    region_of: Vec<Option<u16>>,
    cut: Cut,
    rng: ChaCha8Rng,
}

/// The partition in force.
#[derive(Clone, Debug)]
enum Cut {
    None,
    /// `side[i]` names node i's side; messages between sides are dropped.
    Sides(Vec<u32>),
    /// Messages from a node in `from` to a node in `to` are dropped; the reverse direction works.
    OneWay {
        from: Vec<bool>,
        to: Vec<bool>,
    },
    /// Messages between a node in `a` and a node in `b` are dropped, in both directions; every
    /// other link works, so the cut need not be transitive (a third node still reaches both).
    Between {
        a: Vec<bool>,
        b: Vec<bool>,
    },
}

impl Network {
    /// `override_sets` holds, for each configured override, the resolved members of its two ends.
    pub fn new(
        config: &NetworkConfig,
        region_of: Vec<Option<u16>>,
        override_sets: Vec<(Vec<NodeId>, Vec<NodeId>)>,
        rng: ChaCha8Rng,
    ) -> Self {
        let n = region_of.len();
        let flags = |ids: &[NodeId]| {
            let mut f = vec![false; n];
            for id in ids {
                f[id.index()] = true;
            }
            f
        };
        let overrides = config
            .overrides
            .iter()
            .zip(override_sets)
            .map(|(o, (a, b))| ResolvedOverride {
                a: flags(&a),
                b: flags(&b),
                latency: o.latency.clone(),
                loss: o.loss,
            })
            .collect();
        Network {
            latency: config.latency.clone(),
            loss: config.loss,
            duplicate: config.duplicate,
            overrides,
            region_of,
            cut: Cut::None,
            rng,
        }
    }

    /// Decides the fate of a message sent now from `from` to `to`.
    pub fn route(&mut self, from: NodeId, to: NodeId) -> Route {
        if self.is_cut(from, to) {
            return Route::Cut;
        }
        let (f, t) = (from.index(), to.index());
        let special = self
            .overrides
            .iter()
            .rev()
            .find(|o| (o.a[f] && o.b[t]) || (o.b[f] && o.a[t]));
        let (model, loss) = match special {
            Some(o) => (
                o.latency.as_ref().unwrap_or(&self.latency),
                o.loss.unwrap_or(self.loss),
            ),
            None => (&self.latency, self.loss),
        };
        if chance(&mut self.rng, loss) {
            return Route::Lost;
        }
        let (ra, rb) = (self.region_of[f], self.region_of[t]);
        let delay = model.sample(&mut self.rng, ra, rb);
        let duplicate = if chance(&mut self.rng, self.duplicate) {
            Some(model.sample(&mut self.rng, ra, rb))
        } else {
            None
        };
        Route::Deliver { delay, duplicate }
    }

    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        match &self.cut {
            Cut::None => false,
            Cut::Sides(side) => side[from.index()] != side[to.index()],
            Cut::OneWay { from: f, to: t } => f[from.index()] && t[to.index()],
            Cut::Between { a, b } => {
                let (f, t) = (from.index(), to.index());
                (a[f] && b[t]) || (b[f] && a[t])
            }
        }
    }

    /// Installs a partition, replacing any other: `side[i]` names node i's side.
    pub fn partition(&mut self, side: Vec<u32>) {
        debug_assert_eq!(side.len(), self.region_of.len());
        self.cut = Cut::Sides(side);
    }

    /// Installs a one-way cut, replacing any other partition: nothing from `from` reaches `to`.
    pub fn partition_one_way(&mut self, from: &[NodeId], to: &[NodeId]) {
        self.cut = Cut::OneWay {
            from: self.flags(from),
            to: self.flags(to),
        };
    }

    /// Installs a partial cut, replacing any other partition: nothing passes between `a` and `b`
    /// in either direction, and every other link (within each set, and to any node in neither)
    /// stays up.
    pub fn partition_between(&mut self, a: &[NodeId], b: &[NodeId]) {
        self.cut = Cut::Between {
            a: self.flags(a),
            b: self.flags(b),
        };
    }

    /// Membership flags over every node; ids out of range are ignored (validation rejects them).
    fn flags(&self, ids: &[NodeId]) -> Vec<bool> {
        let mut f = vec![false; self.region_of.len()];
        for id in ids {
            if let Some(x) = f.get_mut(id.index()) {
                *x = true;
            }
        }
        f
    }

    pub fn heal(&mut self) {
        self.cut = Cut::None;
    }

    /// How many sides the network is split into: 1 when whole; under `groups`, `isolate` or
    /// `by_region` the number of distinct sides; 2 under a one-way cut or a cut between two sets
    /// (the two sets it separates, although nodes outside both may still reach each of them).
    /// Under a cut, each node's component: nodes in one component reach each other both ways,
    /// directly or through other nodes; `None` when the network is whole. Nodes are grouped by
    /// what the cut knows of them (their side, or their membership of the cut's two sets), and
    /// groups joined while a member of one reaches a member of the other both ways.
    pub fn components(&self) -> Option<Vec<u32>> {
        let n = self.region_of.len();
        let class: Vec<u32> = match &self.cut {
            Cut::None => return None,
            Cut::Sides(side) => return Some(side.clone()),
            Cut::OneWay { from: x, to: y } | Cut::Between { a: x, b: y } => (0..n)
                .map(|i| u32::from(x[i]) | (u32::from(y[i]) << 1))
                .collect(),
        };
        // One representative per class, then union-find over the (at most four) classes.
        let mut rep: [Option<usize>; 4] = [None; 4];
        for (i, &c) in class.iter().enumerate() {
            rep[c as usize].get_or_insert(i);
        }
        let mut root = [0u32, 1, 2, 3];
        fn find(root: &mut [u32; 4], c: u32) -> u32 {
            let mut c = c;
            while root[c as usize] != c {
                c = root[c as usize];
            }
            c
        }
        for a in 0..4u32 {
            for b in (a + 1)..4u32 {
                if let (Some(x), Some(y)) = (rep[a as usize], rep[b as usize]) {
                    let (x, y) = (NodeId(x as u32), NodeId(y as u32));
                    if !self.is_cut(x, y) && !self.is_cut(y, x) {
                        let (ra, rb) = (find(&mut root, a), find(&mut root, b));
                        root[ra.max(rb) as usize] = ra.min(rb);
                    }
                }
            }
        }
        Some(class.into_iter().map(|c| find(&mut root, c)).collect())
    }

    pub fn sides(&self) -> usize {
        match &self.cut {
            Cut::None => 1,
            Cut::OneWay { .. } | Cut::Between { .. } => 2,
            Cut::Sides(side) => {
                let mut groups = side.clone();
                groups.sort_unstable();
                groups.dedup();
                groups.len()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    fn config(loss: f64, duplicate: f64) -> NetworkConfig {
        NetworkConfig {
            latency: LatencyModel::Constant(Duration::from_millis(10)),
            loss,
            duplicate,
            overrides: vec![],
        }
    }

    fn delivers(n: &mut Network, from: NodeId, to: NodeId) -> bool {
        matches!(n.route(from, to), Route::Deliver { .. })
    }

    fn net(config: &NetworkConfig, sets: Vec<(Vec<NodeId>, Vec<NodeId>)>) -> Network {
        Network::new(config, vec![None; 4], sets, ChaCha8Rng::seed_from_u64(3))
    }

    #[test]
    fn loss_rate_is_respected() {
        let mut n = net(&config(0.2, 0.0), vec![]);
        let lost = (0..10_000)
            .filter(|_| n.route(NodeId(0), NodeId(1)) == Route::Lost)
            .count();
        assert!((1_850..2_150).contains(&lost), "{lost}");
    }

    #[test]
    fn duplication_rate_is_respected() {
        let mut n = net(&config(0.0, 0.1), vec![]);
        let dups = (0..10_000)
            .filter(|_| {
                matches!(
                    n.route(NodeId(0), NodeId(1)),
                    Route::Deliver {
                        duplicate: Some(_),
                        ..
                    }
                )
            })
            .count();
        assert!((900..1_100).contains(&dups), "{dups}");
    }

    #[test]
    fn components_join_what_reaches_both_ways() {
        let mut n = Network::new(
            &config(0.0, 0.0),
            vec![None; 5],
            vec![],
            ChaCha8Rng::seed_from_u64(3),
        );
        assert_eq!(n.components(), None);
        n.partition(vec![0, 0, 1, 1, 2]);
        assert_eq!(n.components(), Some(vec![0, 0, 1, 1, 2]));
        // A one-way cut with nodes outside both sets: they reach both, so one component.
        n.partition_one_way(&[NodeId(0)], &[NodeId(1)]);
        assert_eq!(n.components(), Some(vec![0; 5]));
        // A one-way cut of everyone: two components.
        n.partition_one_way(&[NodeId(0), NodeId(1)], &[NodeId(2), NodeId(3), NodeId(4)]);
        assert_eq!(n.components(), Some(vec![1, 1, 2, 2, 2]));
        // A partial cut: A reaches B and C, B and C do not reach each other: one component.
        n.partition_between(&[NodeId(1)], &[NodeId(2)]);
        assert_eq!(n.components(), Some(vec![0; 5]));
        n.heal();
        assert_eq!(n.components(), None);
    }

    #[test]
    fn partitions_cut_across_groups_until_healed() {
        let mut n = net(&config(0.0, 0.0), vec![]);
        n.partition(vec![0, 0, 1, 1]);
        assert_eq!(n.route(NodeId(0), NodeId(2)), Route::Cut);
        assert_eq!(n.route(NodeId(3), NodeId(1)), Route::Cut);
        assert!(delivers(&mut n, NodeId(0), NodeId(1)));
        assert_eq!(n.sides(), 2);
        n.heal();
        assert!(delivers(&mut n, NodeId(0), NodeId(2)));
        assert_eq!(n.sides(), 1);
    }

    #[test]
    fn one_way_cuts_drop_one_direction_only() {
        let mut n = net(&config(0.0, 0.0), vec![]);
        n.partition_one_way(&[NodeId(0), NodeId(1)], &[NodeId(2)]);
        assert_eq!(n.route(NodeId(0), NodeId(2)), Route::Cut);
        assert_eq!(n.route(NodeId(1), NodeId(2)), Route::Cut);
        assert!(delivers(&mut n, NodeId(2), NodeId(0)));
        assert!(delivers(&mut n, NodeId(0), NodeId(3)));
        assert_eq!(n.sides(), 2);
        n.heal();
        assert!(delivers(&mut n, NodeId(0), NodeId(2)));
    }

    #[test]
    fn cuts_between_two_sets_drop_both_directions_and_nothing_else() {
        let mut n = net(&config(0.0, 0.0), vec![]);
        // A-B up, A-C up, B-C down: node 0 is A, node 1 is B, nodes 2 and 3 are C.
        n.partition_between(&[NodeId(1)], &[NodeId(2), NodeId(3)]);
        assert_eq!(n.route(NodeId(1), NodeId(2)), Route::Cut);
        assert_eq!(n.route(NodeId(2), NodeId(1)), Route::Cut);
        assert_eq!(n.route(NodeId(3), NodeId(1)), Route::Cut);
        assert!(n.is_cut(NodeId(1), NodeId(3)));
        assert!(delivers(&mut n, NodeId(0), NodeId(1)));
        assert!(delivers(&mut n, NodeId(1), NodeId(0)));
        assert!(delivers(&mut n, NodeId(0), NodeId(2)));
        assert!(delivers(&mut n, NodeId(2), NodeId(0)));
        assert!(delivers(&mut n, NodeId(2), NodeId(3)));
        assert!(!n.is_cut(NodeId(1), NodeId(1)));
        assert_eq!(n.sides(), 2);
        n.heal();
        assert!(delivers(&mut n, NodeId(1), NodeId(2)));
        assert_eq!(n.sides(), 1);
    }

    #[test]
    fn a_later_partition_replaces_a_cut_between_two_sets() {
        let mut n = net(&config(0.0, 0.0), vec![]);
        n.partition_between(&[NodeId(0)], &[NodeId(1)]);
        n.partition(vec![0, 0, 1, 1]);
        assert!(delivers(&mut n, NodeId(0), NodeId(1)));
        assert_eq!(n.route(NodeId(0), NodeId(2)), Route::Cut);
        n.partition_between(&[NodeId(0)], &[NodeId(1)]);
        assert!(delivers(&mut n, NodeId(0), NodeId(2)));
        assert_eq!(n.route(NodeId(1), NodeId(0)), Route::Cut);
        n.partition_one_way(&[NodeId(2)], &[NodeId(3)]);
        assert!(delivers(&mut n, NodeId(1), NodeId(0)));
        assert_eq!(n.sides(), 2);
    }

    #[test]
    fn overrides_apply_both_ways_and_only_between_their_ends() {
        let mut c = config(0.0, 0.0);
        let spec = NodeSetSpec { terms: vec![] };
        c.overrides.push(LinkOverride {
            a: spec.clone(),
            b: spec,
            latency: Some(LatencyModel::Constant(Duration::from_millis(1))),
            loss: Some(1.0),
        });
        let mut n = net(&c, vec![(vec![NodeId(0)], vec![NodeId(1)])]);
        assert_eq!(n.route(NodeId(0), NodeId(1)), Route::Lost);
        assert_eq!(n.route(NodeId(1), NodeId(0)), Route::Lost);
        assert_eq!(
            n.route(NodeId(0), NodeId(2)),
            Route::Deliver {
                delay: Duration::from_millis(10),
                duplicate: None
            }
        );
    }
}
