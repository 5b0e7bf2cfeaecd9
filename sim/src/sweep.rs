//! Sweeps: a grid of parameter values, each point run over a list of seeds.
//!
//! A sweep names parameters by their path in the scenario document (`nodes.0.count`,
//! `network.loss`, `protocol.gossip.fanout`, `faults.1.crash`). Each point of the grid is the base
//! document with those values set, validated exactly as a scenario file is. Runs are numbered
//! point-major (`run = point * seeds + seed_index`), which is what shards and merges rely on.
//! Nothing here runs anything: execution, in parallel, is the binary's business.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::Spanned;

use crate::scenario::{Diagnostic, Scenario, ScenarioSpec, validate};

/// The most runs (points x seeds) one sweep may have.
pub const RUNS_MAX: usize = 100_000;
/// The most values one axis may have.
pub const AXIS_VALUES_MAX: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    #[serde(default)]
    pub seeds: Option<Spanned<SeedsSpec>>,
    #[serde(default)]
    pub axes: Vec<Spanned<AxisSpec>>,
    /// Metrics to plot against the first axis (default: the metrics of the expectations).
    #[serde(default)]
    pub plot: Vec<Spanned<String>>,
}

/// `seeds: 10` (the scenario's seed and the 9 after it) or `seeds: [1, 7, 42]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SeedsSpec {
    Count(u64),
    List(Vec<u64>),
}

impl<'de> Deserialize<'de> for SeedsSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SeedsSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of seeds (10) or a list of seeds ([1, 2, 3])")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SeedsSpec, E> {
                Ok(SeedsSpec::Count(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SeedsSpec, E> {
                u64::try_from(v)
                    .map(SeedsSpec::Count)
                    .map_err(|_| E::custom("the number of seeds cannot be negative"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SeedsSpec, A::Error> {
                let mut seeds = Vec::new();
                while let Some(s) = seq.next_element::<u64>()? {
                    if seeds.len() >= RUNS_MAX {
                        return Err(de::Error::custom(format!("more than {RUNS_MAX} seeds")));
                    }
                    seeds.push(s);
                }
                Ok(SeedsSpec::List(seeds))
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AxisSpec {
    /// Dot-separated path into the scenario document; numbers index lists.
    pub path: String,
    #[serde(default)]
    pub values: Option<Vec<Value>>,
    #[serde(default)]
    pub range: Option<RangeSpec>,
}

/// `from`, `from + step`, ... up to and including `to`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeSpec {
    pub from: f64,
    pub to: f64,
    pub step: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub path: String,
    pub values: Vec<Value>,
}

/// A validated sweep: its axes, seeds and the metrics to plot.
#[derive(Clone, Debug, PartialEq)]
pub struct Sweep {
    pub axes: Vec<Axis>,
    pub seeds: Vec<u64>,
    pub plot: Vec<String>,
}

impl Sweep {
    pub fn points(&self) -> usize {
        self.axes.iter().map(|a| a.values.len()).product()
    }

    pub fn runs(&self) -> usize {
        self.points() * self.seeds.len()
    }

    /// The axis values of point `p` (the first axis varies slowest).
    pub fn point_values(&self, mut p: usize) -> Vec<&Value> {
        let mut out = vec![&Value::Null; self.axes.len()];
        for (i, axis) in self.axes.iter().enumerate().rev() {
            let n = axis.values.len();
            out[i] = &axis.values[p % n];
            p /= n;
        }
        out
    }
}

/// A scenario file with a sweep: the base document, its sweep, and every point's scenario.
#[derive(Debug)]
pub struct SweepPlan {
    pub base: Scenario,
    pub sweep: Sweep,
    pub points: Vec<Scenario>,
}

impl SweepPlan {
    /// Run `run`'s point index and seed.
    pub fn run(&self, run: usize) -> (usize, u64) {
        let seeds = self.sweep.seeds.len();
        (run / seeds, self.sweep.seeds[run % seeds])
    }
}

/// Text form of an axis value, for tables and file names.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A number for plotting an axis value: the number itself, or the first number written in a
/// string (`random:25%` gives 25).
pub fn value_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let start = s.find(|c: char| c.is_ascii_digit())?;
            let rest = &s[start..];
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        }
        _ => None,
    }
}

fn at(location: serde_saphyr::Location, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        line: location.line(),
        column: location.column(),
        message: message.into(),
    }
}

/// Loads a scenario file for a sweep and expands and validates every point of its grid.
pub fn plan(text: &str) -> Result<SweepPlan, Vec<Diagnostic>> {
    let base = crate::scenario::load_str(text)?;
    // The document parses (load_str succeeded), so these two parses cannot fail; errors are still
    // turned into diagnostics rather than trusted away.
    let mut spec: ScenarioSpec =
        serde_saphyr::from_str(text).map_err(|e| vec![plain(e.to_string())])?;
    let document: Value = serde_saphyr::from_str(text).map_err(|e| vec![plain(e.to_string())])?;
    let Some(sweep_spec) = spec.sweep.take() else {
        return Err(vec![plain(
            "this scenario has no `sweep:` block; add one with `axes:` and `seeds:` (see docs/scenarios.md)".to_owned(),
        )]);
    };
    let sweep = resolve(sweep_spec, &base)?;
    let mut points = Vec::with_capacity(sweep.points());
    let mut errors = Vec::new();
    for p in 0..sweep.points() {
        let values = sweep.point_values(p);
        let mut doc = document.clone();
        let label = point_label(&sweep, &values);
        for (axis, value) in sweep.axes.iter().zip(&values) {
            if let Err(message) = set_path(&mut doc, &axis.path, (*value).clone()) {
                errors.push(plain(format!("sweep axis `{}`: {message}", axis.path)));
            }
        }
        if !errors.is_empty() {
            break;
        }
        let point_spec = ScenarioSpec::deserialize(doc)
            .map_err(|e| vec![plain(format!("sweep point {label}: {e}"))])
            .and_then(|s| {
                validate(s).map_err(|ds| {
                    ds.into_iter()
                        .map(|d| plain(format!("sweep point {label}: {}", d.message)))
                        .collect()
                })
            });
        match point_spec {
            Ok(scenario) => points.push(scenario),
            Err(mut ds) => {
                errors.append(&mut ds);
                break;
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(SweepPlan {
        base,
        sweep,
        points,
    })
}

fn plain(message: String) -> Diagnostic {
    Diagnostic {
        line: 0,
        column: 0,
        message,
    }
}

/// `path=value, path=value` for messages and reports.
pub fn point_label(sweep: &Sweep, values: &[&Value]) -> String {
    sweep
        .axes
        .iter()
        .zip(values)
        .map(|(a, v)| format!("{}={}", a.path, value_text(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn resolve(spec: Spanned<SweepSpec>, base: &Scenario) -> Result<Sweep, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let seeds = match spec.value.seeds {
        None => vec![base.seed],
        Some(Spanned {
            value: SeedsSpec::Count(n),
            referenced,
            ..
        }) => {
            if n == 0 || n as usize > RUNS_MAX {
                errors.push(at(
                    referenced,
                    format!("seeds must be between 1 and {RUNS_MAX}"),
                ));
            }
            (0..n.min(RUNS_MAX as u64))
                .map(|i| base.seed.wrapping_add(i))
                .collect()
        }
        Some(Spanned {
            value: SeedsSpec::List(list),
            referenced,
            ..
        }) => {
            if list.is_empty() {
                errors.push(at(referenced, "the seed list is empty"));
            }
            list
        }
    };
    let mut axes = Vec::new();
    for axis in &spec.value.axes {
        let a = &axis.value;
        if a.path.trim().is_empty() {
            errors.push(at(
                axis.referenced,
                "an axis needs a `path`, e.g. `nodes.0.count`",
            ));
            continue;
        }
        let values = match (&a.values, &a.range) {
            (Some(values), None) => values.clone(),
            (None, Some(r)) => match range_values(r) {
                Ok(v) => v,
                Err(message) => {
                    errors.push(at(axis.referenced, message));
                    continue;
                }
            },
            _ => {
                errors.push(at(
                    axis.referenced,
                    "an axis needs exactly one of `values:` or `range:`",
                ));
                continue;
            }
        };
        if values.is_empty() || values.len() > AXIS_VALUES_MAX {
            errors.push(at(
                axis.referenced,
                format!("an axis needs 1 to {AXIS_VALUES_MAX} values"),
            ));
            continue;
        }
        if axes.iter().any(|x: &Axis| x.path == a.path) {
            errors.push(at(
                axis.referenced,
                format!("axis `{}` appears twice", a.path),
            ));
        }
        axes.push(Axis {
            path: a.path.trim().to_owned(),
            values,
        });
    }
    let points: usize = axes
        .iter()
        .map(|a| a.values.len())
        .fold(1, usize::saturating_mul);
    if points.saturating_mul(seeds.len()) > RUNS_MAX {
        errors.push(at(
            spec.referenced,
            format!("the sweep has over {RUNS_MAX} runs; use fewer values or seeds"),
        ));
    }
    let catalog = crate::metrics::catalog(&base.protocol);
    let mut plot = Vec::new();
    for metric in &spec.value.plot {
        if catalog.contains(&metric.value) {
            plot.push(metric.value.clone());
        } else {
            errors.push(at(
                metric.referenced,
                format!("unknown metric `{}`; run `prsm metrics FILE`", metric.value),
            ));
        }
    }
    if plot.is_empty() {
        for e in &base.expect {
            if !plot.contains(&e.metric) {
                plot.push(e.metric.clone());
            }
        }
    }
    if errors.is_empty() {
        Ok(Sweep { axes, seeds, plot })
    } else {
        Err(errors)
    }
}

fn range_values(r: &RangeSpec) -> Result<Vec<Value>, String> {
    if !(r.from.is_finite() && r.to.is_finite() && r.step.is_finite())
        || r.step <= 0.0
        || r.to < r.from
    {
        return Err("a range needs finite `from` <= `to` and a positive `step`".to_owned());
    }
    let count = ((r.to - r.from) / r.step + 1e-9).floor() as usize + 1;
    if count > AXIS_VALUES_MAX {
        return Err(format!(
            "the range has over {AXIS_VALUES_MAX} values; use a larger step"
        ));
    }
    Ok((0..count)
        .map(|i| {
            // Twelve significant digits remove the noise of repeated float addition (0.1 * 3).
            let x: f64 = format!("{:.12e}", r.from + i as f64 * r.step)
                .parse()
                .unwrap_or(0.0);
            if x.fract() == 0.0 && x.abs() < 9e15 {
                Value::from(x as i64)
            } else {
                serde_json::Number::from_f64(x)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        })
        .collect())
}

/// Sets `path` in `doc`, creating missing map keys on the way (a defaulted section such as
/// `network:` need not be written out to be swept). List indexes must exist.
pub fn set_path(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let segments: Vec<&str> = path.split('.').map(str::trim).collect();
    let mut here = doc;
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        here = match here {
            Value::Object(map) => {
                if last {
                    map.insert((*segment).to_owned(), value);
                    return Ok(());
                }
                map.entry((*segment).to_owned())
                    .or_insert_with(|| Value::Object(serde_json::Map::new()))
            }
            Value::Array(list) => {
                let index: usize = segment.parse().map_err(|_| {
                    format!(
                        "`{segment}` should be a list index at `{}`",
                        segments[..i].join(".")
                    )
                })?;
                let len = list.len();
                let slot = list.get_mut(index).ok_or_else(|| {
                    format!(
                        "index {index} is past the end of `{}` ({len} entries)",
                        segments[..i].join(".")
                    )
                })?;
                if last {
                    *slot = value;
                    return Ok(());
                }
                slot
            }
            _ => {
                return Err(format!(
                    "`{}` is a value, not a map or list",
                    segments[..i].join(".")
                ));
            }
        };
    }
    Err("empty path".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "name: s\nseed: 10\nduration: 2s\nnodes: [{ count: 5 }]\nprotocol: { gossip: {} }\n\
        workload: { publish: { every: 500ms } }\nexpect: [\"gossip.coverage >= 0.5\"]\n";

    #[test]
    fn expands_a_grid_point_major() {
        let text = format!(
            "{BASE}sweep:\n  seeds: 3\n  axes:\n    - {{ path: nodes.0.count, values: [5, 10] }}\n    - {{ path: protocol.gossip.fanout, range: {{ from: 1, to: 3, step: 1 }} }}\n"
        );
        let plan = plan(&text).unwrap();
        assert_eq!(plan.sweep.points(), 6);
        assert_eq!(plan.sweep.runs(), 18);
        assert_eq!(plan.sweep.seeds, vec![10, 11, 12]);
        assert_eq!(plan.points[0].node_count(), 5);
        assert_eq!(plan.points[3].node_count(), 10);
        assert_eq!(plan.run(4), (1, 11));
        let fanouts: Vec<u32> = plan
            .points
            .iter()
            .map(|p| match &p.protocol {
                crate::scenario::ProtocolConfig::Gossip(g) => g.fanout,
                _ => 0,
            })
            .collect();
        assert_eq!(fanouts, vec![1, 2, 3, 1, 2, 3]);
        assert_eq!(plan.sweep.plot, vec!["gossip.coverage".to_owned()]);
    }

    #[test]
    fn ranges_have_no_float_noise() {
        let v = range_values(&RangeSpec {
            from: 0.0,
            to: 0.3,
            step: 0.1,
        })
        .unwrap();
        assert_eq!(
            v.iter().map(value_text).collect::<Vec<_>>(),
            vec!["0", "0.1", "0.2", "0.3"]
        );
    }

    #[test]
    fn bad_points_are_reported_with_their_values() {
        let text =
            format!("{BASE}sweep:\n  axes:\n    - {{ path: network.loss, values: [0.1, 2.0] }}\n");
        let err = plan(&text).unwrap_err();
        assert!(err[0].message.contains("network.loss=2"), "{err:?}");
        let text = format!("{BASE}sweep:\n  axes:\n    - {{ path: nodes.3.count, values: [1] }}\n");
        assert!(plan(&text).unwrap_err()[0].message.contains("past the end"));
        let text = format!("{BASE}sweep:\n  axes:\n    - {{ path: protocol.gossip.fanout }}\n");
        assert!(
            plan(&text).unwrap_err()[0]
                .message
                .contains("exactly one of")
        );
        assert!(plan(BASE).unwrap_err()[0].message.contains("no `sweep:`"));
    }

    #[test]
    fn numbers_are_read_from_selector_strings() {
        assert_eq!(value_number(&Value::from("random:25%")), Some(25.0));
        assert_eq!(value_number(&Value::from(0.5)), Some(0.5));
        assert_eq!(value_number(&Value::from("all")), None);
    }
}
