//! One-way latency models. Every sample is drawn from the network's own seeded stream and turned
//! into integer nanoseconds at once, so floats never decide the order of events.

use prsm_protocol::Duration;
use prsm_protocol::random::{below, standard_normal};
use rand_chacha::ChaCha8Rng;

use super::regions::RegionMatrix;

#[derive(Clone, Debug)]
pub enum LatencyModel {
    Constant(Duration),
    Uniform {
        min: Duration,
        max: Duration,
    },
    /// Normal, truncated below at `min`.
    Normal {
        mean: Duration,
        stddev: Duration,
        min: Duration,
    },
    /// `median * exp(sigma * N(0, 1))`.
    LogNormal {
        median: Duration,
        sigma: f64,
    },
    /// Half the round-trip time between the regions of the two ends, times log-normal jitter.
    /// `region_map[label]` is the matrix index of each scenario region label.
    Regions {
        matrix: RegionMatrix,
        region_map: Vec<usize>,
        jitter: f64,
        intra_region_rtt: Duration,
    },
}

/// The longest one-way latency any model will produce (an hour), so that a heavy tail can never
/// push an event past the end of virtual time.
const LATENCY_MAX_NS: f64 = 3.6e12;

impl LatencyModel {
    /// Samples one one-way delay for a message between nodes in regions `a` and `b`.
    pub fn sample(&self, rng: &mut ChaCha8Rng, a: Option<u16>, b: Option<u16>) -> Duration {
        match self {
            LatencyModel::Constant(d) => *d,
            LatencyModel::Uniform { min, max } => {
                let span = max.as_nanos() - min.as_nanos();
                Duration::from_nanos(min.as_nanos() + below(rng, span + 1))
            }
            LatencyModel::Normal { mean, stddev, min } => {
                let x = mean.as_nanos() as f64 + stddev.as_nanos() as f64 * standard_normal(rng);
                Duration::from_nanos(clamp_ns(x).max(min.as_nanos()))
            }
            LatencyModel::LogNormal { median, sigma } => {
                let x = median.as_nanos() as f64 * (sigma * standard_normal(rng)).exp();
                Duration::from_nanos(clamp_ns(x))
            }
            LatencyModel::Regions {
                matrix,
                region_map,
                jitter,
                intra_region_rtt,
            } => {
                let rtt_ns = match (a, b) {
                    (Some(a), Some(b)) if a != b => {
                        matrix.rtt_ms(region_map[a as usize], region_map[b as usize]) * 1e6
                    }
                    _ => intra_region_rtt.as_nanos() as f64,
                };
                let factor = if *jitter > 0.0 {
                    (jitter * standard_normal(rng)).exp()
                } else {
                    1.0
                };
                Duration::from_nanos(clamp_ns(rtt_ns / 2.0 * factor))
            }
        }
    }
}

fn clamp_ns(x: f64) -> u64 {
    if x.is_nan() || x <= 0.0 {
        0
    } else {
        x.min(LATENCY_MAX_NS).round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    fn samples(model: &LatencyModel, a: Option<u16>, b: Option<u16>) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        (0..20_000)
            .map(|_| model.sample(&mut rng, a, b).as_millis_f64())
            .collect()
    }

    fn mean(xs: &[f64]) -> f64 {
        xs.iter().sum::<f64>() / xs.len() as f64
    }

    fn median(mut xs: Vec<f64>) -> f64 {
        xs.sort_by(f64::total_cmp);
        xs[xs.len() / 2]
    }

    #[test]
    fn constant_is_constant() {
        let xs = samples(
            &LatencyModel::Constant(Duration::from_millis(20)),
            None,
            None,
        );
        assert!(xs.iter().all(|&x| x == 20.0));
    }

    #[test]
    fn uniform_stays_in_bounds_and_centres() {
        let m = LatencyModel::Uniform {
            min: Duration::from_millis(10),
            max: Duration::from_millis(30),
        };
        let xs = samples(&m, None, None);
        assert!(xs.iter().all(|&x| (10.0..=30.0).contains(&x)));
        assert!((mean(&xs) - 20.0).abs() < 0.3, "{}", mean(&xs));
    }

    #[test]
    fn normal_has_its_mean_and_respects_the_floor() {
        let m = LatencyModel::Normal {
            mean: Duration::from_millis(50),
            stddev: Duration::from_millis(10),
            min: Duration::from_millis(35),
        };
        let xs = samples(&m, None, None);
        assert!(xs.iter().all(|&x| x >= 35.0));
        assert!((median(xs) - 50.0).abs() < 0.5);
    }

    #[test]
    fn lognormal_has_its_median_and_a_right_tail() {
        let m = LatencyModel::LogNormal {
            median: Duration::from_millis(40),
            sigma: 0.5,
        };
        let xs = samples(&m, None, None);
        assert!((median(xs.clone()) - 40.0).abs() < 1.0);
        assert!(
            mean(&xs) > 40.0 * 1.1,
            "mean exceeds median by exp(sigma^2/2)"
        );
    }

    #[test]
    fn regions_use_half_the_round_trip() {
        let matrix = RegionMatrix::default_global();
        let us = matrix.index("us-east-1").unwrap();
        let eu = matrix.index("eu-west-1").unwrap();
        let m = LatencyModel::Regions {
            matrix,
            region_map: vec![us, eu],
            jitter: 0.0,
            intra_region_rtt: Duration::from_millis(1),
        };
        let cross = samples(&m, Some(0), Some(1));
        assert!(
            cross.iter().all(|&x| (x - 80.6 / 2.0).abs() < 0.01),
            "{}",
            cross[0]
        );
        let local = samples(&m, Some(1), Some(1));
        assert!(local.iter().all(|&x| x == 0.5));
    }
}
