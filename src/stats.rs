//! Summary statistics over the runs of one sweep point: mean, sample standard deviation, a 95 %
//! confidence interval for the mean, min and max. Sums run in run order, so the same runs give the
//! same bits whatever produced them (one thread, many, or a merge of shards).
//!
//! The interval respects the metric's range ([`summarize_in`]): every metric is 0 or more and
//! shares and rates are at most 1, so the mean lies in that range and Student's t interval is cut
//! to it (cutting away values the mean cannot take keeps the interval's 95 % coverage). When every
//! run of a share gave exactly 0 or 1, the runs are yes/no outcomes and the interval is Wilson's
//! score interval instead, which, unlike t, is not a single point when all runs agree. Wilson is
//! not used for shares in between: a run's share of many nodes is not one yes/no trial, and
//! treating it as one would make the interval far wider than the spread between seeds warrants.

/// Two-sided 95 % critical values of Student's t for 1 to 30 degrees of freedom.
const T95: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

fn t95(df: usize) -> f64 {
    match df {
        0 => f64::NAN,
        1..=30 => T95[df - 1],
        // Interpolate 1/df between the tabulated 30, 60, 120 and infinity (2.042, 2.000, 1.980, 1.960).
        _ => {
            let x = 1.0 / df as f64;
            let points = [
                (1.0 / 30.0, 2.042),
                (1.0 / 60.0, 2.000),
                (1.0 / 120.0, 1.980),
                (0.0, 1.960),
            ];
            let i = points
                .iter()
                .position(|&(px, _)| x >= px)
                .unwrap_or(3)
                .max(1);
            let ((x0, y0), (x1, y1)) = (points[i - 1], points[i]);
            y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    pub sd: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub min: f64,
    pub max: f64,
}

/// [`summarize_in`] over the range of metric `metric` (see `prsm_sim::metric_range`).
pub fn summarize_metric(metric: &str, values: &[f64]) -> Option<Summary> {
    let range = prsm_sim::metric_range(metric);
    summarize_in(values, range.low(), range.high())
}

/// The normal quantile for a two-sided 95 % interval.
const Z95: f64 = 1.959_963_984_540_054;

/// [`summarize`], with the confidence interval kept inside `[low, high]`, the values the metric can
/// take; Wilson's score interval when the range is [0, 1] and every value is 0 or 1.
pub fn summarize_in(values: &[f64], low: f64, high: f64) -> Option<Summary> {
    let mut s = summarize(values)?;
    let yes_no = values.iter().all(|&v| v == 0.0 || v == 1.0);
    if low == 0.0 && high == 1.0 && yes_no {
        let (lo, hi) = wilson(s.mean, s.n);
        s.ci_low = lo;
        s.ci_high = hi;
    } else if s.ci_low.is_finite() && s.ci_high.is_finite() {
        s.ci_low = s.ci_low.clamp(low, high);
        s.ci_high = s.ci_high.clamp(low, high);
    }
    Some(s)
}

/// Wilson's 95 % score interval for a proportion `p` of `n` trials, within [0, 1].
fn wilson(p: f64, n: usize) -> (f64, f64) {
    let n = n as f64;
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // At p = 0 or 1 one end is exactly the bound; computed, it would miss by a rounding error.
    let low = if p <= 0.0 { 0.0 } else { centre - half };
    let high = if p >= 1.0 { 1.0 } else { centre + half };
    (low.clamp(0.0, 1.0), high.clamp(0.0, 1.0))
}

pub fn summarize(values: &[f64]) -> Option<Summary> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let (sd, half) = if n > 1 {
        let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64;
        let sd = var.sqrt();
        (sd, t95(n - 1) * sd / (n as f64).sqrt())
    } else {
        (f64::NAN, f64::NAN)
    };
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some(Summary {
        n,
        mean,
        sd,
        ci_low: mean - half,
        ci_high: mean + half,
        min,
        max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_hand_computation() {
        let s = summarize(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(s.mean, 2.5);
        assert!((s.sd - 1.290_994).abs() < 1e-6);
        // t(3) = 3.182; half-width = 3.182 * 1.290994 / 2
        assert!((s.ci_high - (2.5 + 3.182 * 1.290_994 / 2.0)).abs() < 1e-6);
        assert_eq!((s.min, s.max), (1.0, 4.0));
    }

    #[test]
    fn one_value_has_no_spread() {
        let s = summarize(&[7.0]).unwrap();
        assert_eq!(s.mean, 7.0);
        assert!(s.sd.is_nan() && s.ci_low.is_nan());
        assert!(summarize(&[]).is_none());
    }

    /// Shares close to a bound: the t interval would reach past 1 (or below 0); it is cut to
    /// the range, and runs that all gave 1 get Wilson's interval, not a single point.
    #[test]
    fn share_intervals_stay_within_0_and_1() {
        let near_one = [0.99, 1.0, 0.97, 1.0];
        let plain = summarize(&near_one).unwrap();
        assert!(plain.ci_high > 1.0, "the case needs a t interval past 1");
        let s = summarize_in(&near_one, 0.0, 1.0).unwrap();
        assert_eq!(s.ci_high, 1.0);
        assert_eq!(s.ci_low, plain.ci_low);
        assert_eq!((s.mean, s.sd), (plain.mean, plain.sd));
        let near_zero = summarize_in(&[0.0, 0.02, 0.0, 0.01], 0.0, 1.0).unwrap();
        assert_eq!(near_zero.ci_low, 0.0);
        // Yes/no runs: 10 of 10 give Wilson's [0.722, 1]; 0 of 10 its mirror; 3 of 10 [0.108, 0.603].
        let all = summarize_in(&[1.0; 10], 0.0, 1.0).unwrap();
        assert!(
            (all.ci_low - 0.7225).abs() < 1e-3 && all.ci_high == 1.0,
            "{all:?}"
        );
        let none = summarize_in(&[0.0; 10], 0.0, 1.0).unwrap();
        assert!(
            none.ci_low == 0.0 && (none.ci_high - 0.2775).abs() < 1e-3,
            "{none:?}"
        );
        let mut three = [0.0; 10];
        three[..3].fill(1.0);
        let w = summarize_in(&three, 0.0, 1.0).unwrap();
        assert!(
            (w.ci_low - 0.1078).abs() < 1e-3 && (w.ci_high - 0.6032).abs() < 1e-3,
            "{w:?}"
        );
        // A single yes/no run still has an interval.
        let one = summarize_in(&[1.0], 0.0, 1.0).unwrap();
        assert!(one.ci_low > 0.0 && one.ci_low < 0.5 && one.ci_high == 1.0);
        // Counts are cut at 0 and unbounded above.
        let counts = summarize_in(&[0.0, 0.0, 9.0], 0.0, f64::INFINITY).unwrap();
        assert_eq!(counts.ci_low, 0.0);
        assert_eq!(counts.ci_high, summarize(&[0.0, 0.0, 9.0]).unwrap().ci_high);
    }

    #[test]
    fn t_values_fall_towards_normal() {
        assert!(t95(40) < 2.042 && t95(40) > 2.000);
        assert!((t95(100_000) - 1.96).abs() < 0.001);
    }
}
