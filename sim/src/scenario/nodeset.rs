//! Node selectors: which nodes a fault, a partition group or a link override applies to.
//!
//! A selector is an integer, a list, or a string of comma-separated terms:
//! `7`, `0-9` (inclusive), `all`, `live`, `crashed`, `region:eu-west-1`, `role:validator`,
//! `random:5` or `random:10%` (drawn from the fault stream when the fault fires, among the nodes
//! the action can apply to: live nodes for a crash, crashed nodes for a restart).

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
}

#[derive(Clone, Debug, PartialEq)]
pub struct NodeSetSpec {
    pub terms: Vec<Term>,
}

impl NodeSetSpec {
    pub fn is_random(&self) -> bool {
        self.terms
            .iter()
            .any(|t| matches!(t, Term::RandomCount(_) | Term::RandomShare(_)))
    }
}

const GRAMMAR: &str = "a node index (7), a range (0-9), all, live, crashed, region:NAME, role:NAME, random:K or random:P%";

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
                    .map(parse_term)
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
        terms: text.split(',').filter_map(|t| parse_term(t).ok()).collect(),
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
    }
}
