//! Summary statistics over the runs of one sweep point: mean, sample standard deviation, a 95 %
//! confidence interval for the mean (Student's t), min and max. Sums run in run order, so the same
//! runs give the same bits whatever produced them (one thread, many, or a merge of shards).

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

    #[test]
    fn t_values_fall_towards_normal() {
        assert!(t95(40) < 2.042 && t95(40) > 2.000);
        assert!((t95(100_000) - 1.96).abs() < 0.001);
    }
}
