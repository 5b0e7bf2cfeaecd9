//! Resolving node selectors against the nodes of a scenario.

use prsm_protocol::NodeId;
use prsm_protocol::random::below;
use rand_chacha::ChaCha8Rng;

use crate::scenario::{NodeInfo, NodeSetSpec, Term};

/// The nodes of a run and their state, as selectors see them.
pub struct Topology<'a> {
    pub nodes: &'a [NodeInfo],
    pub regions: &'a [String],
    pub live: &'a [bool],
}

impl Topology<'_> {
    /// Resolves `spec` to a sorted list of distinct nodes. Random terms draw from `rng` among the
    /// nodes for which `candidate` holds and which no earlier term picked.
    pub fn resolve(
        &self,
        spec: &NodeSetSpec,
        candidate: impl Fn(usize) -> bool,
        rng: &mut ChaCha8Rng,
    ) -> Vec<NodeId> {
        let n = self.nodes.len();
        let mut picked = vec![false; n];
        for term in &spec.terms {
            match term {
                Term::RandomCount(k) => {
                    self.pick_random(&mut picked, &candidate, Amount::Count(*k), n, rng)
                }
                Term::RandomShare(p) => {
                    self.pick_random(&mut picked, &candidate, Amount::Share(*p), n, rng)
                }
                Term::And(parts) => {
                    let mut within = vec![true; n];
                    let mut random = None;
                    for part in parts {
                        if part.is_random() {
                            random = Some(part);
                            continue;
                        }
                        let mut selected = vec![false; n];
                        self.mark_static(part, &mut selected);
                        within.iter_mut().zip(selected).for_each(|(w, s)| *w &= s);
                    }
                    let base = within.iter().filter(|&&w| w).count();
                    let among = |i: usize| within[i] && candidate(i);
                    match random {
                        Some(Term::RandomCount(k)) => {
                            self.pick_random(&mut picked, &among, Amount::Count(*k), base, rng)
                        }
                        Some(Term::RandomShare(p)) => {
                            self.pick_random(&mut picked, &among, Amount::Share(*p), base, rng)
                        }
                        _ => picked.iter_mut().zip(within).for_each(|(p, w)| *p |= w),
                    }
                }
                _ => self.mark_static(term, &mut picked),
            }
        }
        (0..n)
            .filter(|&i| picked[i])
            .map(|i| NodeId(i as u32))
            .collect()
    }

    /// Marks the nodes a term that draws nothing at random selects.
    fn mark_static(&self, term: &Term, picked: &mut [bool]) {
        let n = self.nodes.len();
        match term {
            Term::Index(i) => mark(picked, *i as usize),
            Term::Range(a, b) => (*a as usize..=*b as usize).for_each(|i| mark(picked, i)),
            Term::All => picked.iter_mut().for_each(|p| *p = true),
            Term::Live => (0..n)
                .filter(|&i| self.live[i])
                .for_each(|i| picked[i] = true),
            Term::Crashed => (0..n)
                .filter(|&i| !self.live[i])
                .for_each(|i| picked[i] = true),
            Term::Region(name) => {
                let region = self
                    .regions
                    .iter()
                    .position(|r| r == name)
                    .map(|r| r as u16);
                (0..n)
                    .filter(|&i| region.is_some() && self.nodes[i].region == region)
                    .for_each(|i| picked[i] = true);
            }
            Term::Role(name) => (0..n)
                .filter(|&i| self.nodes[i].role.name() == name)
                .for_each(|i| picked[i] = true),
            // Parsing admits neither a random term nor a nested intersection here.
            Term::RandomCount(_) | Term::RandomShare(_) | Term::And(_) => {}
        }
    }

    /// Draws `amount` of the nodes for which `candidate` holds and which are not picked yet; a
    /// share is of `base` nodes, rounded to the nearest whole node.
    fn pick_random(
        &self,
        picked: &mut [bool],
        candidate: &impl Fn(usize) -> bool,
        amount: Amount,
        base: usize,
        rng: &mut ChaCha8Rng,
    ) {
        let mut pool: Vec<usize> = (0..picked.len())
            .filter(|&i| !picked[i] && candidate(i))
            .collect();
        let k = match amount {
            Amount::Count(k) => k as usize,
            Amount::Share(p) => (p * base as f64).round() as usize,
        }
        .min(pool.len());
        // A partial Fisher-Yates shuffle: the first k entries are a uniform sample.
        for j in 0..k {
            let r = j + below(rng, (pool.len() - j) as u64) as usize;
            pool.swap(j, r);
            picked[pool[j]] = true;
        }
    }
}

enum Amount {
    Count(u32),
    Share(f64),
}

fn mark(picked: &mut [bool], i: usize) {
    // Out-of-range indexes are rejected by validation; ignoring them here keeps this total.
    if let Some(p) = picked.get_mut(i) {
        *p = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Role, nodeset_from_str};
    use rand_core::SeedableRng;

    fn nodes() -> Vec<NodeInfo> {
        (0..10)
            .map(|i| NodeInfo {
                region: Some((i % 2) as u16),
                role: Role::new(if i < 3 { "validator" } else { "worker" }),
                processing: prsm_protocol::Duration::ZERO,
                bandwidth: None,
            })
            .collect()
    }

    #[test]
    fn resolves_terms() {
        let nodes = nodes();
        let regions = ["a".to_owned(), "b".to_owned()];
        let mut live = vec![true; 10];
        live[9] = false;
        let topo = Topology {
            nodes: &nodes,
            regions: &regions,
            live: &live,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let ids = |s: &str, rng: &mut ChaCha8Rng| -> Vec<u32> {
            topo.resolve(&nodeset_from_str(s), |_| true, rng)
                .iter()
                .map(|n| n.0)
                .collect()
        };
        assert_eq!(ids("1,3-5", &mut rng), vec![1, 3, 4, 5]);
        assert_eq!(ids("region:b", &mut rng), vec![1, 3, 5, 7, 9]);
        assert_eq!(ids("role:validator", &mut rng), vec![0, 1, 2]);
        assert_eq!(ids("crashed", &mut rng), vec![9]);
        assert_eq!(ids("random:4", &mut rng).len(), 4);
        assert_eq!(ids("random:30%", &mut rng).len(), 3);
        let only_live = topo.resolve(&nodeset_from_str("random:100%"), |i| live[i], &mut rng);
        assert_eq!(only_live.len(), 9);
        assert_eq!(ids("region:b & 0-4", &mut rng), vec![1, 3]);
        assert_eq!(ids("0, region:b & 0-4", &mut rng), vec![0, 1, 3]);
        // A share within a role is of that role's nodes, drawn among them only.
        for _ in 0..20 {
            let drawn = ids("role:worker & random:50%", &mut rng);
            assert_eq!(drawn.len(), 4, "half of the 7 workers, rounded");
            assert!(drawn.iter().all(|&i| i >= 3), "{drawn:?} has a validator");
            let one = ids("role:validator & random:1", &mut rng);
            assert!(one.len() == 1 && one[0] < 3, "{one:?}");
        }
    }
}
