//! Node selectors: which nodes a fault, a partition group or a link override applies to.
//!
//! A selector is an integer, a list, or a string of comma-separated terms:
//! `7`, `0-9` (inclusive), `all`, `live`, `crashed`, `region:eu-west-1`, `role:validator`,
//! `random:5` or `random:10%` (drawn from the fault stream when the fault fires, among the nodes
//! the action can apply to: live nodes for a crash, crashed nodes for a restart). Terms joined by
//! `&` intersect: `role:validator & region:eu-west-1`, and `role:validator & random:10%` draws 10 %
//! of the validators from among the validators.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

#[derive(Clone, Debug, PartialEq)]
pub enum Term {
    Index(u32),
    /// Inclusive range.
    Range(u32, u32),
    All,
    Live,
    Crashed,
    Region(String),
    Role(String),
    RandomCount(u32),
    /// A share of the candidates, in [0, 1].
    RandomShare(f64),
    /// `a & b & ...`: the nodes every part selects; a random part (at most one) draws among the
    /// nodes the other parts select, and a share is of those nodes.
    And(Vec<Term>),
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Index(i) => write!(f, "{i}"),
            Term::Range(a, b) => write!(f, "{a}-{b}"),
            Term::All => f.write_str("all"),
            Term::Live => f.write_str("live"),
            Term::Crashed => f.write_str("crashed"),
            Term::Region(name) => write!(f, "region:{name}"),
            Term::Role(name) => write!(f, "role:{name}"),
            Term::RandomCount(k) => write!(f, "random:{k}"),
            // Rounded so that `random:7%` reads back as written, not as 7.000000000000001 %.
            Term::RandomShare(p) => write!(f, "random:{}%", (p * 1e8).round() / 1e6),
            Term::And(parts) => {
                for (k, part) in parts.iter().enumerate() {
                    if k > 0 {
                        f.write_str(" & ")?;
                    }
                    write!(f, "{part}")?;
                }
                Ok(())
            }
        }
    }
}

impl Term {
    pub fn is_random(&self) -> bool {
        match self {
            Term::RandomCount(_) | Term::RandomShare(_) => true,
            Term::And(parts) => parts.iter().any(Term::is_random),
            _ => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct NodeSetSpec {
    pub terms: Vec<Term>,
}

impl NodeSetSpec {
    pub fn is_random(&self) -> bool {
        self.terms.iter().any(Term::is_random)
    }
}

const GRAMMAR: &str = "a node index (7), a range (0-9), all, live, crashed, region:NAME, role:NAME, random:K or random:P%, or terms joined by & (role:validator & random:10%)";

/// One comma-separated part of a selector: a term, or terms joined by `&` (an intersection).
pub fn parse_clause(raw: &str) -> Result<Term, String> {
    if !raw.contains('&') {
        return parse_term(raw);
    }
    let parts = raw
        .split('&')
        .map(parse_term)
        .collect::<Result<Vec<_>, _>>()?;
    if parts.iter().filter(|t| t.is_random()).count() > 1 {
        return Err(format!(
            "`{}`: an intersection takes at most one random term, e.g. `role:validator & random:10%`",
            raw.trim()
        ));
    }
    Ok(Term::And(parts))
}

pub fn parse_term(raw: &str) -> Result<Term, String> {
    let term = raw.trim();
    if term.is_empty() {
        return Err(format!("empty node selector term; use {GRAMMAR}"));
    }
    match term {
        "all" => return Ok(Term::All),
        "live" => return Ok(Term::Live),
        "crashed" => return Ok(Term::Crashed),
        _ => {}
    }
    if let Some(name) = term.strip_prefix("region:") {
        return Ok(Term::Region(name.trim().to_owned()));
    }
    if let Some(name) = term.strip_prefix("role:") {
        return Ok(Term::Role(name.trim().to_owned()));
    }
    if let Some(amount) = term.strip_prefix("random:") {
        let amount = amount.trim();
        if let Some(percent) = amount.strip_suffix('%') {
            let p: f64 = percent
                .trim()
                .parse()
                .map_err(|_| format!("`{term}`: write random:10% or random:5"))?;
            if !(0.0..=100.0).contains(&p) {
                return Err(format!("`{term}`: a share must be between 0% and 100%"));
            }
            return Ok(Term::RandomShare(p / 100.0));
        }
        return amount
            .parse()
            .map(Term::RandomCount)
            .map_err(|_| format!("`{term}`: write random:10% or random:5"));
    }
    if let Some((a, b)) = term.split_once('-') {
        let a: u32 = a
            .trim()
            .parse()
            .map_err(|_| format!("`{term}` is not a range; use {GRAMMAR}"))?;
        let b: u32 = b
            .trim()
            .parse()
            .map_err(|_| format!("`{term}` is not a range; use {GRAMMAR}"))?;
        if a > b {
            return Err(format!(
                "`{term}`: a range goes from low to high, e.g. `{b}-{a}`"
            ));
        }
        return Ok(Term::Range(a, b));
    }
    term.parse()
        .map(Term::Index)
        .map_err(|_| format!("`{term}` is not a node selector; use {GRAMMAR}"))
}

impl<'de> Deserialize<'de> for NodeSetSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NodeSetSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a node selector: {GRAMMAR}")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NodeSetSpec, E> {
                let index = u32::try_from(v)
                    .map_err(|_| E::custom(format!("node index {v} is too large")))?;
                Ok(NodeSetSpec {
                    terms: vec![Term::Index(index)],
                })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NodeSetSpec, E> {
                if v < 0 {
                    return Err(E::custom(format!(
                        "node index {v} is negative; nodes are numbered from 0"
                    )));
                }
                self.visit_u64(v as u64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeSetSpec, E> {
                let terms = v
                    .split(',')
                    .map(parse_clause)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(E::custom)?;
                Ok(NodeSetSpec { terms })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeSetSpec, A::Error> {
                let mut terms = Vec::new();
                while let Some(part) = seq.next_element::<NodeSetSpec>()? {
                    terms.extend(part.terms);
                    if terms.len() > 1_000_000 {
                        return Err(de::Error::custom("node selector has over 1,000,000 terms"));
                    }
                }
                Ok(NodeSetSpec { terms })
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Parses a selector string (for tests and the CLI); panics are not possible, bad terms are skipped.
pub fn nodeset_from_str(text: &str) -> NodeSetSpec {
    NodeSetSpec {
        terms: text
            .split(',')
            .filter_map(|t| parse_clause(t).ok())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_term() {
        assert_eq!(parse_term("7"), Ok(Term::Index(7)));
        assert_eq!(parse_term("0-9"), Ok(Term::Range(0, 9)));
        assert_eq!(
            parse_term("region:eu-west-1"),
            Ok(Term::Region("eu-west-1".into()))
        );
        assert_eq!(
            parse_term("role:validator"),
            Ok(Term::Role("validator".into()))
        );
        assert_eq!(parse_term("random:5"), Ok(Term::RandomCount(5)));
        assert_eq!(parse_term("random:10%"), Ok(Term::RandomShare(0.1)));
        assert_eq!(parse_term("crashed"), Ok(Term::Crashed));
    }

    #[test]
    fn rejects_nonsense() {
        assert!(parse_term("9-2").unwrap_err().contains("low to high"));
        assert!(parse_term("random:120%").is_err());
        assert!(parse_term("banana").is_err());
        assert!(parse_term("").is_err());
        assert!(parse_clause("role:validator &").is_err());
        assert!(
            parse_clause("random:1 & random:2%")
                .unwrap_err()
                .contains("at most one random")
        );
    }

    #[test]
    fn parses_intersections() {
        assert_eq!(
            parse_clause(" role:validator & random:10% "),
            Ok(Term::And(vec![
                Term::Role("validator".into()),
                Term::RandomShare(0.1)
            ]))
        );
        let spec = nodeset_from_str("0, region:a & role:worker");
        assert_eq!(spec.terms.len(), 2);
        assert!(!spec.is_random());
        assert!(nodeset_from_str("3, live & random:2").is_random());
        for text in [
            "role:validator & random:7%",
            "0-4 & region:a",
            "random:12.5%",
        ] {
            assert_eq!(parse_clause(text).unwrap().to_string(), text);
        }
    }
}
