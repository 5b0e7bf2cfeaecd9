//! Verdicts: how a measured mean and its 95 % confidence interval over seeds are judged against
//! a stated figure, and the arithmetic behind `cannot hold as stated`. docs/claims.md states the
//! same rule in words.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::registry::Cmp;
use crate::stats::Summary;

/// The five verdicts a claim can get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    #[serde(rename = "holds")]
    Holds,
    #[serde(rename = "holds under stated assumptions")]
    HoldsUnderAssumptions,
    #[serde(rename = "does not hold")]
    DoesNotHold,
    #[serde(rename = "cannot hold as stated")]
    CannotHold,
    #[serde(rename = "not measured")]
    NotMeasured,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::HoldsUnderAssumptions => "holds under stated assumptions",
            Verdict::DoesNotHold => "does not hold",
            Verdict::CannotHold => "cannot hold as stated",
            Verdict::NotMeasured => "not measured",
        }
    }

    /// `holds` or `holds under stated assumptions`: what the CI gate protects.
    pub fn held(self) -> bool {
        matches!(self, Verdict::Holds | Verdict::HoldsUnderAssumptions)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// Judges a claim `mean cmp figure` on the summary of its runs (one per seed); `bound` is the
/// metric's range `(low, high)`. Returns the verdict and a note saying why when it is not plain.
///
/// - holds: the whole interval is on the claimed side of the figure (`high <= figure` for an
///   upper bound, `low >= figure` for a lower one);
/// - does not hold: the whole interval is on the other side;
/// - a figure at the end of the metric's range (100 % of a share) can only be met by every run
///   measuring exactly that, so there the claim holds when every run did (the interval cannot lie
///   past the bound);
/// - otherwise the interval contains the figure: the runs neither show that the claim holds nor
///   that it fails. The verdict is the conservative one, `does not hold`, with a note saying the
///   result is inconclusive at this number of seeds.
///
/// With `qualified`, a claim that holds holds under the stated assumptions.
pub fn judge(
    cmp: Cmp,
    figure: f64,
    summary: Option<&Summary>,
    bound: (f64, f64),
    qualified: bool,
) -> (Verdict, String) {
    let Some(s) = summary else {
        return (
            Verdict::NotMeasured,
            "no run published the metric".to_owned(),
        );
    };
    if s.n < 2 || !s.ci_low.is_finite() || !s.ci_high.is_finite() {
        return (
            Verdict::NotMeasured,
            format!(
                "{} run(s) give no confidence interval; the file needs at least 2 seeds",
                s.n
            ),
        );
    }
    let (low, high) = (s.ci_low, s.ci_high);
    let (holds, fails, at_bound) = match cmp {
        Cmp::AtMost => (
            high <= figure,
            low > figure,
            figure <= bound.0 && s.max <= figure,
        ),
        Cmp::AtLeast => (
            low >= figure,
            high < figure,
            figure >= bound.1 && s.min >= figure,
        ),
    };
    let held = if qualified {
        Verdict::HoldsUnderAssumptions
    } else {
        Verdict::Holds
    };
    if holds {
        (held, String::new())
    } else if fails {
        (Verdict::DoesNotHold, String::new())
    } else if at_bound {
        (
            held,
            format!(
                "every one of the {} runs measured exactly {}, the end of the metric's range",
                s.n,
                number(figure)
            ),
        )
    } else {
        (
            Verdict::DoesNotHold,
            format!(
                "inconclusive: the 95 % interval [{}, {}] contains the stated {} (runs ranged \
                 from {} to {}); not shown to hold at {} seeds, so reported as does not hold",
                short(low),
                short(high),
                number(figure),
                short(s.min),
                short(s.max),
                s.n
            ),
        )
    }
}

/// Messages one PBFT request costs among `n` replicas without batching: a request to the
/// primary, n - 1 pre-prepares, (n - 1)^2 prepares (each backup to every other replica), n(n - 1)
/// commits and n replies: 2n^2 - n + 1.
pub fn pbft_messages(n: u64) -> u64 {
    2 * n * n - n + 1
}

/// Signed votes each replica receives and checks per decision: n - 1 prepares (the primary's
/// pre-prepare among them) and n - 1 commits.
pub fn pbft_votes_per_replica(n: u64) -> u64 {
    2 * (n - 1)
}

/// Why PBFT over all `n` nodes cannot decide in `seconds`, with the arithmetic.
pub fn cannot_hold_reason(n: u64, seconds: f64, signature_us: f64) -> String {
    let messages = pbft_messages(n);
    let votes = pbft_votes_per_replica(n);
    let cpu_s = votes as f64 * signature_us / 1e6;
    format!(
        "PBFT among all n = {} nodes costs 2n^2 - n + 1 = {} messages per request (about {:.1e}); \
         deciding one request in {seconds} s means the network carries {:.1e} messages a second \
         for a single request, and each replica receives and verifies 2(n - 1) = {} signed votes \
         per decision ({:.1} s of CPU at {signature_us} us a signature) before any other work. \
         prsm also bounds a PBFT committee at 2,000 replicas. A version holds with a committee \
         of k validators (k = 100: {} messages per request) and batching: see \
         consensus.committee-n10000",
        group(n),
        group(messages),
        messages as f64,
        messages as f64 / seconds,
        group(votes),
        cpu_s,
        group(pbft_messages(100)),
    )
}

/// A number as the report prints it: the shortest text that reads back the same `f64`.
pub fn number(v: f64) -> String {
    v.to_string()
}

/// A figure for reading (claims.md and the terminal): five significant digits at most. The
/// exact values are in claims.csv and claims.json.
pub fn short(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return number(v);
    }
    let digits = 5 - (v.abs().log10().floor() as i32 + 1);
    let decimals = digits.clamp(0, 8) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// An integer with thousands separators (199,990,001).
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{summarize, summarize_in};

    const UNBOUNDED: (f64, f64) = (0.0, f64::INFINITY);
    const SHARE: (f64, f64) = (0.0, 1.0);

    fn judged(cmp: Cmp, figure: f64, values: &[f64], bound: (f64, f64)) -> Verdict {
        let s = summarize_in(values, bound.0, bound.1);
        judge(cmp, figure, s.as_ref(), bound, false).0
    }

    #[test]
    fn an_interval_wholly_on_the_claimed_side_holds_and_wholly_on_the_other_fails() {
        // Mean 100, interval about [96.8, 103.2].
        let runs = [98.0, 100.0, 102.0, 99.0, 101.0];
        assert_eq!(judged(Cmp::AtMost, 110.0, &runs, UNBOUNDED), Verdict::Holds);
        assert_eq!(
            judged(Cmp::AtMost, 90.0, &runs, UNBOUNDED),
            Verdict::DoesNotHold
        );
        assert_eq!(judged(Cmp::AtLeast, 90.0, &runs, UNBOUNDED), Verdict::Holds);
        assert_eq!(
            judged(Cmp::AtLeast, 110.0, &runs, UNBOUNDED),
            Verdict::DoesNotHold
        );
    }

    /// The stated figure inside the interval: the mean alone would say "holds", but the runs do
    /// not show it; the verdict is the conservative one and the note says so.
    #[test]
    fn an_interval_containing_the_figure_is_conservatively_does_not_hold() {
        let runs = [98.0, 100.0, 102.0, 99.0, 101.0];
        let s = summarize(&runs).unwrap();
        let (v, note) = judge(Cmp::AtMost, 101.0, Some(&s), UNBOUNDED, false);
        assert_eq!(v, Verdict::DoesNotHold);
        assert!(note.starts_with("inconclusive"), "{note}");
        assert!(note.contains("(runs ranged from 98 to 102)"), "{note}");
        let (v, note) = judge(Cmp::AtLeast, 99.5, Some(&s), UNBOUNDED, false);
        assert_eq!(v, Verdict::DoesNotHold);
        assert!(note.contains("5 seeds"), "{note}");
        // Exactly at the edge of the interval counts as on the claimed side.
        let (v, _) = judge(Cmp::AtMost, s.ci_high, Some(&s), UNBOUNDED, false);
        assert_eq!(v, Verdict::Holds);
    }

    /// 100 % of a share: Wilson's interval over ten runs at 1 is [0.72, 1], never wholly at 1;
    /// every run at exactly 1 holds, one run below does not.
    #[test]
    fn a_figure_at_the_end_of_the_range_holds_only_when_every_run_reached_it() {
        let all = [1.0; 10];
        assert_eq!(judged(Cmp::AtLeast, 1.0, &all, SHARE), Verdict::Holds);
        let mut one_short = [1.0; 10];
        one_short[3] = 0.9999;
        assert_eq!(
            judged(Cmp::AtLeast, 1.0, &one_short, SHARE),
            Verdict::DoesNotHold
        );
        // A lower figure is judged by the interval as usual: [0.72, 1] does not clear 0.98.
        assert_eq!(
            judged(Cmp::AtLeast, 0.98, &all, SHARE),
            Verdict::DoesNotHold
        );
        // Nine of ten yes/no runs: the interval reaches 1 but not every run did.
        let mut nine = [1.0; 10];
        nine[0] = 0.0;
        assert_eq!(
            judged(Cmp::AtLeast, 1.0, &nine, SHARE),
            Verdict::DoesNotHold
        );
        // An upper bound at 0 the same way.
        assert_eq!(judged(Cmp::AtMost, 0.0, &[0.0; 4], SHARE), Verdict::Holds);
        assert_eq!(
            judged(Cmp::AtMost, 0.0, &[0.0, 0.0, 0.1, 0.0], SHARE),
            Verdict::DoesNotHold
        );
    }

    #[test]
    fn too_few_runs_or_none_are_not_measured() {
        assert_eq!(
            judge(Cmp::AtMost, 1.0, None, UNBOUNDED, false).0,
            Verdict::NotMeasured
        );
        let one = summarize(&[0.5]).unwrap();
        assert_eq!(
            judge(Cmp::AtMost, 1.0, Some(&one), UNBOUNDED, false).0,
            Verdict::NotMeasured
        );
    }

    #[test]
    fn a_qualified_claim_holds_only_under_its_assumptions() {
        let s = summarize(&[300.0, 310.0, 305.0]).unwrap();
        let (v, _) = judge(Cmp::AtMost, 3200.0, Some(&s), UNBOUNDED, true);
        assert_eq!(v, Verdict::HoldsUnderAssumptions);
        assert!(v.held());
        // Failing is failing, qualified or not.
        let (v, _) = judge(Cmp::AtMost, 100.0, Some(&s), UNBOUNDED, true);
        assert_eq!(v, Verdict::DoesNotHold);
        assert!(!v.held());
    }

    #[test]
    fn pbft_arithmetic() {
        // n = 4: 1 request + 3 pre-prepares + 9 prepares + 12 commits + 4 replies = 29.
        assert_eq!(pbft_messages(4), 1 + 3 + 9 + 12 + 4);
        assert_eq!(pbft_messages(4), 29);
        assert_eq!(pbft_messages(100), 19_901);
        assert_eq!(pbft_messages(10_000), 199_990_001);
        assert_eq!(pbft_votes_per_replica(10_000), 19_998);
        let reason = cannot_hold_reason(10_000, 3.2, 50.0);
        assert!(reason.contains("199,990,001"), "{reason}");
        assert!(reason.contains("19,998"), "{reason}");
        assert!(reason.contains("6.2e7"), "{reason}");
        assert!(reason.contains("1.0 s of CPU"), "{reason}");
        assert!(reason.contains("19,901"), "{reason}");
        assert_eq!(group(1_000), "1,000");
        assert_eq!(group(999), "999");
    }

    #[test]
    fn verdict_text_round_trips_through_json() {
        for v in [
            Verdict::Holds,
            Verdict::HoldsUnderAssumptions,
            Verdict::DoesNotHold,
            Verdict::CannotHold,
            Verdict::NotMeasured,
        ] {
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(json, format!("\"{}\"", v.text()));
            assert_eq!(serde_json::from_str::<Verdict>(&json).unwrap(), v);
        }
        assert!(serde_json::from_str::<Verdict>("\"inconclusive\"").is_err());
    }
}
