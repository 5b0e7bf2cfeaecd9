//! Expectations: claims over metrics, such as `gossip.coverage >= 0.99` or
//! `net.latency_ms.p99 <= 250`, evaluated after a run.

use std::fmt;

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Op {
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = ">")]
    Gt,
}

impl Op {
    pub fn holds(self, actual: f64, expected: f64) -> bool {
        match self {
            Op::Eq => actual == expected,
            Op::Ne => actual != expected,
            Op::Le => actual <= expected,
            Op::Ge => actual >= expected,
            Op::Lt => actual < expected,
            Op::Gt => actual > expected,
        }
    }

    /// Whether some value in `[low, high]` satisfies `value <op> expected`.
    pub fn can_hold(self, expected: f64, low: f64, high: f64) -> bool {
        match self {
            Op::Eq => (low..=high).contains(&expected),
            Op::Ne => low < high || expected != low,
            Op::Le => expected >= low,
            Op::Ge => expected <= high,
            Op::Lt => expected > low,
            Op::Gt => expected < high,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Le => "<=",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Gt => ">",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Expectation {
    pub text: String,
    pub metric: String,
    pub op: Op,
    pub value: f64,
}

/// Parses `<metric> <op> <number>`.
pub fn parse_expectation(text: &str) -> Result<Expectation, String> {
    const OPS: [(&str, Op); 6] = [
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];
    let shape = "write `<metric> <op> <number>`, e.g. `gossip.coverage >= 0.99`; op is one of == != <= >= < >";
    let (at, symbol, op) = OPS
        .iter()
        .filter_map(|&(symbol, op)| text.find(symbol).map(|at| (at, symbol, op)))
        .min_by_key(|&(at, symbol, _)| (at, std::cmp::Reverse(symbol.len())))
        .ok_or_else(|| format!("`{text}` has no comparison; {shape}"))?;
    let metric = text[..at].trim();
    let number = text[at + symbol.len()..].trim();
    if metric.is_empty()
        || !metric
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return Err(format!(
            "`{text}`: `{metric}` is not a metric name; {shape}"
        ));
    }
    let value: f64 = number
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| format!("`{text}`: `{number}` is not a number; {shape}"))?;
    Ok(Expectation {
        text: text.trim().to_owned(),
        metric: metric.to_owned(),
        op,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A claim that no value in the metric's range satisfies can never hold; one on the edge of
    /// the range can.
    #[test]
    fn can_hold_knows_the_edges_of_a_range() {
        let share = |op: Op, v: f64| op.can_hold(v, 0.0, 1.0);
        assert!(!share(Op::Gt, 1.0) && !share(Op::Gt, 1.5) && share(Op::Gt, 0.99));
        assert!(share(Op::Ge, 1.0) && !share(Op::Ge, 1.01));
        assert!(!share(Op::Lt, 0.0) && share(Op::Lt, 0.01));
        assert!(share(Op::Le, 0.0) && !share(Op::Le, -0.5));
        assert!(share(Op::Eq, 1.0) && share(Op::Eq, 0.0) && !share(Op::Eq, 2.0));
        assert!(share(Op::Ne, 5.0) && share(Op::Ne, 1.0));
        let count = |op: Op, v: f64| op.can_hold(v, 0.0, f64::INFINITY);
        assert!(!count(Op::Lt, 0.0) && !count(Op::Eq, -1.0) && count(Op::Gt, 1e12));
        assert!(count(Op::Le, 0.0) && !count(Op::Le, -1.0));
    }

    #[test]
    fn parses_operators() {
        let e = parse_expectation("gossip.coverage >= 0.99").unwrap();
        assert_eq!(
            (e.metric.as_str(), e.op, e.value),
            ("gossip.coverage", Op::Ge, 0.99)
        );
        assert_eq!(parse_expectation("a<=1").unwrap().op, Op::Le);
        assert_eq!(parse_expectation("a < 1").unwrap().op, Op::Lt);
        assert_eq!(parse_expectation("a == 0").unwrap().op, Op::Eq);
        assert_eq!(parse_expectation("a != 0").unwrap().op, Op::Ne);
    }

    #[test]
    fn rejects_malformed() {
        assert!(parse_expectation("gossip.coverage").is_err());
        assert!(parse_expectation(">= 3").is_err());
        assert!(parse_expectation("a >= lots").is_err());
        assert!(parse_expectation("a >= inf").is_err());
    }
}
