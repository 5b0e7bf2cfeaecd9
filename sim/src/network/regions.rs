//! The default global latency matrix: published average round-trip times between cloud regions,
//! embedded from `sim/data/region-rtt-ms.csv` (its header comment names the source).

use std::sync::Arc;

const DEFAULT_MATRIX_CSV: &str = include_str!("../../data/region-rtt-ms.csv");

#[derive(Clone, Debug)]
pub struct RegionMatrix {
    names: Arc<[String]>,
    rtt_ms: Arc<[f64]>,
}

impl RegionMatrix {
    /// The embedded matrix. It is our own data, checked by a unit test, so a parse failure here
    /// is a build defect rather than user input.
    pub fn default_global() -> Self {
        #[allow(clippy::expect_used)]
        Self::parse(DEFAULT_MATRIX_CSV).expect("embedded region matrix parses (tested)")
    }

    /// Parses `from,<region>...` then one row per region; `#` lines are comments.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let header = lines.next().ok_or("empty matrix")?;
        let names: Vec<String> = header
            .split(',')
            .skip(1)
            .map(|s| s.trim().to_owned())
            .collect();
        let n = names.len();
        let mut rtt_ms = vec![0.0; n * n];
        let mut rows = 0;
        for (i, line) in lines.enumerate() {
            let mut cells = line.split(',');
            let from = cells.next().unwrap_or_default().trim();
            if names.get(i).map(String::as_str) != Some(from) {
                return Err(format!(
                    "row {i} is `{from}`, expected the regions in header order"
                ));
            }
            for j in 0..n {
                let cell = cells
                    .next()
                    .ok_or_else(|| format!("row `{from}` is short"))?;
                let v: f64 = cell
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad cell `{cell}` in `{from}`"))?;
                if !(v.is_finite() && v >= 0.0) {
                    return Err(format!("negative or non-finite cell in `{from}`"));
                }
                rtt_ms[i * n + j] = v;
            }
            rows += 1;
        }
        if rows != n {
            return Err(format!("{rows} rows for {n} regions"));
        }
        Ok(RegionMatrix {
            names: names.into(),
            rtt_ms: rtt_ms.into(),
        })
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    pub fn rtt_ms(&self, from: usize, to: usize) -> f64 {
        self.rtt_ms[from * self.names.len() + to]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_matrix_is_complete() {
        let m = RegionMatrix::default_global();
        assert_eq!(m.names().len(), 10);
        let (us, eu, sg) = (
            m.index("us-east-1").unwrap(),
            m.index("eu-west-1").unwrap(),
            m.index("ap-southeast-1").unwrap(),
        );
        assert_eq!(m.rtt_ms(us, eu), 80.6);
        assert_eq!(m.rtt_ms(sg, sg), 0.0);
        for i in 0..10 {
            for j in 0..10 {
                let (a, b) = (m.rtt_ms(i, j), m.rtt_ms(j, i));
                assert!((a - b).abs() <= 3.0, "asymmetric {i} {j}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn rejects_broken_matrices() {
        assert!(RegionMatrix::parse("").is_err());
        assert!(RegionMatrix::parse("from,a,b\na,0,1\n").is_err());
        assert!(RegionMatrix::parse("from,a\na,-1\n").is_err());
    }
}
