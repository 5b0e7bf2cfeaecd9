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
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
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
