//! The second pass over a scenario: checks what types cannot and resolves specs into a
//! [`Scenario`]. Every problem becomes a [`Diagnostic`] with the line and column it comes from.

use std::fmt;

use prsm_protocol::gossip::{AntiEntropy, GossipConfig};
use prsm_protocol::kademlia::KadConfig;
use prsm_protocol::pbft::{Behavior, PbftConfig};
use prsm_protocol::{Duration, Limits};
use serde_saphyr::{Location, Spanned};

use super::*;
use crate::metrics::catalog;
use crate::network::{LatencyModel, LinkOverride, RegionMatrix};

/// The most (rumor, node) pairs the gossip model tracks: one bit each, 1 GiB.
const COVERAGE_BITS_MAX: u64 = 8 << 30;

/// One problem in a scenario file, with where it is and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based; 0 when the problem has no single place in the file.
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}:{}: {}", self.line, self.column, self.message)
        }
    }
}

pub(crate) fn at(location: Location, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        line: location.line(),
        column: location.column(),
        message: message.into(),
    }
}

/// Parses and validates a scenario from YAML text.
pub fn load_str(text: &str) -> Result<Scenario, Vec<Diagnostic>> {
    if text.len() > FILE_SIZE_MAX_BYTES {
        return Err(vec![Diagnostic {
            line: 0,
            column: 0,
            message: format!(
                "the file is {} bytes; scenario files are limited to {FILE_SIZE_MAX_BYTES} bytes",
                text.len()
            ),
        }]);
    }
    let spec: ScenarioSpec =
        serde_saphyr::from_str(text).map_err(|e| vec![parse_diagnostic(&e, text)])?;
    validate(spec)
}

/// Turns a parse error into a diagnostic that names the field, says why and what to write;
/// `text` is the document, read to name the keys around the error's place.
fn parse_diagnostic(e: &serde_saphyr::Error, text: &str) -> Diagnostic {
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let inner = e.without_snippet();
    let message = match inner {
        serde_saphyr::Error::DuplicateMappingKey { key, .. } => {
            let key = key
                .clone()
                .or_else(|| key_at(text, line, column))
                .unwrap_or_else(|| "this key".to_owned());
            let first = first_sibling(text, line, column, &key)
                .map_or(String::new(), |l| format!(" (first on line {l})"));
            format!(
                "`{key}` is given twice in the same mapping{first}; a key may appear once: keep one `{key}:` and delete the other"
            )
        }
        serde_saphyr::Error::ExpectedMappingEndAfterEnumVariantValue { .. } => {
            let second = key_at(text, line, column).unwrap_or_else(|| "this key".to_owned());
            match parent_key(text, line, column) {
                Some(parent) => format!(
                    "`{parent}:` takes exactly one entry, and `{second}` is a second one; keep one of them"
                ),
                None => format!(
                    "only one entry is allowed here, and `{second}` is a second one; keep one of them"
                ),
            }
        }
        serde_saphyr::Error::NonFiniteFloat { value, .. } => {
            let field = field_of_value(text, line, column)
                .map_or("this value".to_owned(), |f| format!("`{f}`"));
            format!(
                "{field} is `{value}`, which is not a finite number; write a finite number (e.g. `0.5`) instead"
            )
        }
        _ => {
            let mut message = inner.to_string();
            // serde-saphyr appends the position in words; we print it as file:line:column instead.
            if let Some(cut) = message.rfind(" at line ") {
                message.truncate(cut);
            }
            for (terse, plain) in [
                ("invalid u64", "expected a whole number, 0 or more"),
                (
                    "invalid u32",
                    "expected a whole number, 0 or more (at most 4294967295)",
                ),
                ("invalid f64", "expected a number"),
                ("invalid bool", "expected true or false"),
            ] {
                if message == terse {
                    message = plain.to_owned();
                }
            }
            if message.contains("unexpected end of input") {
                message.push_str(
                    "; a scenario needs at least name, seed, duration, nodes and protocol",
                );
            }
            message
        }
    };
    Diagnostic {
        line,
        column,
        message,
    }
}

/// Line `line` (1-based) of `text`, if there is one.
fn nth_line(text: &str, line: u64) -> Option<&str> {
    text.lines()
        .nth(usize::try_from(line.checked_sub(1)?).ok()?)
}

/// The characters of `line` before 1-based `column`.
fn before_column(line: &str, column: u64) -> &str {
    let k = usize::try_from(column.saturating_sub(1)).unwrap_or(usize::MAX);
    let end = line.char_indices().nth(k).map_or(line.len(), |(i, _)| i);
    &line[..end]
}

fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-' || c == '.'
}

/// The key that starts at `column` of `line`, such as `relay` in `  relay: {}`.
fn key_at(text: &str, line: u64, column: u64) -> Option<String> {
    let source = nth_line(text, line)?;
    let rest = &source[before_column(source, column).len()..];
    let rest = rest.trim_start_matches(['"', '\'']);
    let key: String = rest
        .chars()
        .take_while(|&c| is_key_char(c))
        .take(60)
        .collect();
    (!key.is_empty()).then_some(key)
}

/// The last `key:` in `prefix`, such as `loss` in `network: { loss: `.
fn last_key(prefix: &str) -> Option<String> {
    let trimmed = prefix.trim_end();
    let colon = trimmed.rfind(':')?;
    let before = trimmed[..colon].trim_end_matches(['"', '\'']);
    let start = before
        .char_indices()
        .rev()
        .take_while(|&(_, c)| is_key_char(c))
        .last()
        .map(|(i, _)| i)?;
    let key: String = before[start..].chars().take(60).collect();
    (!key.is_empty()).then_some(key)
}

/// Leading spaces and `- ` list markers of a line.
fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches([' ', '-']).len()
}

/// The key of the block-style mapping that holds a key indented by `indent`, looking up from
/// line `line`.
fn enclosing_block_key(text: &str, line: u64, indent: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().take(usize::try_from(line).ok()?).collect();
    for source in lines.iter().rev().skip(1) {
        let content = source.trim();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        if indent_of(source) < indent {
            return last_key(source.split(" #").next().unwrap_or(source));
        }
    }
    None
}

/// The key whose mapping holds the key at (`line`, `column`): the key before an open `{` on the
/// same line, or the key of the less indented line above.
fn parent_key(text: &str, line: u64, column: u64) -> Option<String> {
    let prefix = before_column(nth_line(text, line)?, column);
    let mut depth = 0i32;
    for (i, c) in prefix.char_indices().rev() {
        match c {
            '}' | ']' => depth += 1,
            '{' | '[' if depth > 0 => depth -= 1,
            '{' => {
                return last_key(&prefix[..i])
                    .or_else(|| enclosing_block_key(text, line, indent_of(prefix)));
            }
            _ => {}
        }
    }
    enclosing_block_key(text, line, prefix.chars().count())
}

/// The key whose value starts at (`line`, `column`): the last `key:` before it on its line, or
/// on the line above for a value on a line of its own.
fn field_of_value(text: &str, line: u64, column: u64) -> Option<String> {
    let prefix = before_column(nth_line(text, line)?, column);
    last_key(prefix).or_else(|| enclosing_block_key(text, line, indent_of(prefix) + 1))
}

/// The line of the first `key:` in the block-style mapping that holds the duplicate at
/// (`line`, `column`), if it can be found by indentation.
fn first_sibling(text: &str, line: u64, column: u64, key: &str) -> Option<u64> {
    let source = nth_line(text, line)?;
    if before_column(source, column).contains('{') {
        return None;
    }
    let indent = usize::try_from(column.saturating_sub(1)).ok()?;
    let lines: Vec<&str> = text.lines().take(usize::try_from(line).ok()? - 1).collect();
    for (i, candidate) in lines.iter().enumerate().rev() {
        let content = candidate.trim();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let own = indent_of(candidate);
        if own < indent {
            return None;
        }
        if own == indent && key_at(text, i as u64 + 1, own as u64 + 1).as_deref() == Some(key) {
            return Some(i as u64 + 1);
        }
    }
    None
}

/// Checks a parsed spec and resolves it. Reports every problem found, not just the first.
pub fn validate(spec: ScenarioSpec) -> Result<Scenario, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let matrix = RegionMatrix::default_global();
    let duration = spec.duration.value.0;
    if duration == Duration::ZERO {
        errors.push(at(
            spec.duration.referenced,
            "duration must be greater than 0, e.g. `60s`",
        ));
    }

    let (nodes, regions) = resolve_nodes(&spec.nodes, &mut errors);
    let n = nodes.len() as u64;
    let ctx = SelectorContext {
        n,
        nodes: &nodes,
        regions: &regions,
    };

    let latency = resolve_latency(&spec.network.latency, &regions, &matrix, &mut errors);
    if let LatencyModel::Regions { .. } = latency {
        for group in &spec.nodes.value {
            if group.region.is_none() {
                errors.push(at(
                    group.count.referenced,
                    "the `regions` latency model needs a `region:` on every node group",
                ));
            }
        }
    }
    let mut overrides = Vec::new();
    for o in &spec.network.overrides {
        ctx.check(&o.value.between.0, &mut errors);
        ctx.check(&o.value.between.1, &mut errors);
        let latency = o
            .value
            .latency
            .as_ref()
            .map(|l| resolve_latency(l, &regions, &matrix, &mut errors));
        if latency.is_none() && o.value.loss.is_none() {
            errors.push(at(
                o.referenced,
                "an override needs `latency:`, `loss:` or both",
            ));
        }
        overrides.push(LinkOverride {
            a: o.value.between.0.value.clone(),
            b: o.value.between.1.value.clone(),
            latency,
            loss: o.value.loss.map(|p| p.0),
        });
    }

    let protocol = match (&spec.protocol, &spec.layers) {
        (Some(p), None) => {
            if let Some(r) = &spec.roles {
                errors.push(at(
                    r.referenced,
                    "`roles:` chooses among `layers:`; with `protocol:` every node runs the one protocol (write `layers:` to compose several)",
                ));
            }
            resolve_protocol(p, &nodes, &mut errors)
        }
        (None, Some(l)) => resolve_layers(&spec, l, &nodes, &ctx, &mut errors),
        (Some(p), Some(_)) => {
            errors.push(at(
                p.referenced,
                "give either `protocol:` (one protocol on every node) or `layers:` (several composed), not both",
            ));
            resolve_protocol(p, &nodes, &mut errors)
        }
        (None, None) => {
            errors.push(at(
                spec.nodes.referenced,
                "the scenario says nothing to run: add `protocol:` (e.g. `protocol: { pbft: {} }`) or `layers:` (e.g. `layers: { kademlia: {}, swim: {} }`)",
            ));
            ProtocolConfig::Relay { tokens_per_node: 0 }
        }
    };
    let workload = resolve_workloads(&spec, &protocol, duration, &ctx, &mut errors);
    let faults = resolve_faults(&spec.faults, duration, &ctx, &mut errors);
    let adversaries = resolve_adversaries(&spec, &protocol, duration, &ctx, &mut errors);
    let warnings = adversary_warnings(&spec, &protocol, &ctx);
    let kademlia = match (&spec.protocol, &spec.layers) {
        (Some(p), _) => match &p.value {
            ProtocolSpec::Kademlia(k) => Some(&**k),
            _ => None,
        },
        (None, Some(l)) => l.value.kademlia.as_ref().map(|k| &k.value),
        (None, None) => None,
    };
    if let Some(b) = kademlia.and_then(|k| k.bootstrap.as_ref()) {
        ctx.check(b, &mut errors);
    }

    let metric_names = catalog(&protocol);
    let mut expect = Vec::new();
    for e in &spec.expect {
        match parse_expectation(&e.value) {
            Ok(parsed) => {
                let range = crate::metrics::metric_range(&parsed.metric);
                if !metric_names.contains(&parsed.metric) {
                    errors.push(unknown_metric(&metric_names, &parsed.metric, e.referenced));
                } else if !parsed.op.can_hold(parsed.value, range.low(), range.high()) {
                    errors.push(at(
                        e.referenced,
                        format!(
                            "`{}` can never hold: {} is always {}; {}",
                            e.value.trim(),
                            parsed.metric,
                            range.describe(),
                            match range {
                                crate::metrics::MetricRange::Share => {
                                    "write a bound between 0 and 1, e.g. `>= 0.99`"
                                }
                                crate::metrics::MetricRange::NonNegative => {
                                    "write a bound of 0 or more, e.g. `<= 0` or `== 0`"
                                }
                            }
                        ),
                    ));
                } else {
                    expect.push(parsed);
                }
            }
            Err(message) => errors.push(at(e.referenced, message)),
        }
    }

    let sample_every = spec.output.sample_every.value.0;
    if sample_every == Duration::ZERO {
        errors.push(at(
            spec.output.sample_every.referenced,
            "sample_every must be greater than 0, e.g. `1s`",
        ));
    } else if duration.as_nanos() / sample_every.as_nanos() > 1_000_000 {
        errors.push(at(
            spec.output.sample_every.referenced,
            "sample_every gives over 1,000,000 time-series rows; sample less often",
        ));
    }
    let limits = &spec.limits;
    let node_limits = Limits {
        effects_per_step_max: limits.effects_per_step_max.clamp(1, 1 << 24) as usize,
        message_size_max_bytes: limits.message_size_max_bytes.clamp(64, 1 << 30) as usize,
        timers_armed_max: Limits::default().timers_armed_max,
    };

    if !errors.is_empty() {
        errors.sort_by_key(|d| (d.line, d.column));
        errors.dedup();
        return Err(errors);
    }
    Ok(Scenario {
        has_sweep: spec.sweep.is_some(),
        warnings,
        name: spec.name,
        description: spec.description,
        seed: spec.seed,
        duration,
        nodes,
        regions,
        network: NetworkConfig {
            latency,
            loss: spec.network.loss.0,
            duplicate: spec.network.duplicate.0,
            overrides,
        },
        protocol,
        workload,
        faults,
        adversaries,
        expect,
        sample_every,
        samples_max: spec.output.samples_max.min(100_000_000) as usize,
        limits: RunLimits {
            events_max: limits.events_max.max(1),
            pending_events_max: limits.pending_events_max.max(1),
            events_per_instant_max: limits.events_per_instant_max.max(1),
            node: node_limits,
        },
    })
}

/// `unknown metric`, with the known metrics of the same family.
fn unknown_metric(metric_names: &[String], metric: &str, location: Location) -> Diagnostic {
    let close: Vec<&str> = metric_names
        .iter()
        .filter(|m| m.split('.').next() == metric.split('.').next())
        .take(12)
        .map(String::as_str)
        .collect();
    let hint = if close.is_empty() {
        "run `prsm metrics` to list them".to_owned()
    } else {
        format!("known: {}", close.join(", "))
    };
    at(location, format!("unknown metric `{metric}`; {hint}"))
}

fn resolve_nodes(
    groups: &Spanned<Vec<NodeGroupSpec>>,
    errors: &mut Vec<Diagnostic>,
) -> (Vec<NodeInfo>, Vec<String>) {
    let mut nodes = Vec::new();
    let mut regions: Vec<String> = Vec::new();
    if groups.value.is_empty() {
        errors.push(at(
            groups.referenced,
            "nodes is empty; add a group such as `- { count: 10 }`",
        ));
    }
    let total: u64 = groups
        .value
        .iter()
        .map(|g| g.count.value)
        .fold(0, u64::saturating_add);
    if total > NODES_MAX {
        errors.push(at(
            groups.referenced,
            format!("{total} nodes; a scenario may have at most {NODES_MAX}"),
        ));
        return (nodes, regions);
    }
    for group in &groups.value {
        if group.count.value == 0 {
            errors.push(at(group.count.referenced, "count must be at least 1"));
        }
        let region = group.region.as_ref().map(|r| {
            let name = r.value.trim();
            match regions.iter().position(|x| x == name) {
                Some(i) => i as u16,
                None => {
                    regions.push(name.to_owned());
                    (regions.len() - 1) as u16
                }
            }
        });
        let processing = group.processing.map(|p| p.0).unwrap_or(Duration::ZERO);
        let role = match &group.role {
            Some(r) => {
                let name = r.value.trim();
                if !Role::valid_name(name) {
                    errors.push(at(
                        r.referenced,
                        format!(
                            "role `{name}` is not a valid name: use 1 to 32 of a-z, 0-9, `_` and `-`, starting with a letter (e.g. {})",
                            Role::KNOWN.join(", ")
                        ),
                    ));
                }
                Role::new(name)
            }
            None => Role::default(),
        };
        for _ in 0..group.count.value {
            nodes.push(NodeInfo {
                region,
                role: role.clone(),
                processing,
                bandwidth: group.bandwidth,
            });
        }
    }
    (nodes, regions)
}

fn resolve_latency(
    spec: &Spanned<LatencySpec>,
    regions: &[String],
    matrix: &RegionMatrix,
    errors: &mut Vec<Diagnostic>,
) -> LatencyModel {
    let here = spec.referenced;
    match &spec.value {
        LatencySpec::Constant { one_way } => LatencyModel::Constant(one_way.0),
        LatencySpec::Uniform { min, max } => {
            if min > max {
                errors.push(at(
                    here,
                    format!("uniform latency has min {} above max {}", min.0, max.0),
                ));
            }
            LatencyModel::Uniform {
                min: min.0,
                max: max.0.max(min.0),
            }
        }
        LatencySpec::Normal { mean, stddev, min } => LatencyModel::Normal {
            mean: mean.0,
            stddev: stddev.0,
            min: min.map(|m| m.0).unwrap_or(Duration::ZERO),
        },
        LatencySpec::Lognormal { median, sigma } => {
            if !(0.0..=5.0).contains(sigma) {
                errors.push(at(
                    here,
                    format!(
                        "lognormal sigma {sigma} is out of range; use 0 to 5 (0.5 is a wide spread)"
                    ),
                ));
            }
            LatencyModel::LogNormal {
                median: median.0,
                sigma: *sigma,
            }
        }
        LatencySpec::Regions {
            jitter,
            intra_region_rtt,
        } => {
            if !(0.0..=2.0).contains(jitter) {
                errors.push(at(
                    here,
                    format!("jitter {jitter} is out of range; use 0 to 2 (0.05 is typical)"),
                ));
            }
            let mut region_map = Vec::new();
            for name in regions {
                match matrix.index(name) {
                    Some(i) => region_map.push(i),
                    None => {
                        errors.push(at(
                            here,
                            format!(
                                "region `{name}` is not in the latency matrix; use one of {}",
                                matrix.names().join(", ")
                            ),
                        ));
                        region_map.push(0);
                    }
                }
            }
            LatencyModel::Regions {
                matrix: matrix.clone(),
                region_map,
                jitter: *jitter,
                intra_region_rtt: intra_region_rtt.0,
            }
        }
    }
}

fn resolve_protocol(
    spec: &Spanned<ProtocolSpec>,
    nodes: &[NodeInfo],
    errors: &mut Vec<Diagnostic>,
) -> ProtocolConfig {
    let here = spec.referenced;
    let n = nodes.len() as u64;
    match &spec.value {
        ProtocolSpec::Gossip(g) => {
            if g.interval.0 == Duration::ZERO {
                errors.push(at(
                    here,
                    "gossip interval must be greater than 0, e.g. `200ms`",
                ));
            }
            if g.fanout == 0 || g.fanout > 1_000 {
                errors.push(at(
                    here,
                    "gossip fanout must be between 1 and 1000 (3 is memberlist's default)",
                ));
            }
            if g.retransmit_mult == 0 || g.retransmit_mult > 1_000 {
                errors.push(at(
                    here,
                    "gossip retransmit_mult must be between 1 and 1000 (4 is memberlist's default)",
                ));
            }
            if g.rumors_per_message_max == 0 || g.queue_len_max == 0 {
                errors.push(at(
                    here,
                    "gossip rumors_per_message_max and queue_len_max must be at least 1",
                ));
            }
            let anti_entropy = g.anti_entropy.as_ref().map(|ae| {
                let ae = &ae.value;
                if ae.interval.value.0 == Duration::ZERO {
                    errors.push(at(
                        ae.interval.referenced,
                        "anti_entropy interval must be greater than 0, e.g. `1s`",
                    ));
                }
                if !(1..=ANTI_ENTROPY_RUMORS_MAX).contains(&ae.rumors_max.value) {
                    errors.push(at(
                        ae.rumors_max.referenced,
                        format!(
                            "anti_entropy rumors_max must be between 1 and {ANTI_ENTROPY_RUMORS_MAX} (rumors per reply; 64 by default)"
                        ),
                    ));
                }
                if !(1..=ANTI_ENTROPY_STORE_MAX).contains(&ae.store_max.value) {
                    errors.push(at(
                        ae.store_max.referenced,
                        format!(
                            "anti_entropy store_max must be between 1 and {ANTI_ENTROPY_STORE_MAX} (rumors kept per node for repair; 4096 by default)"
                        ),
                    ));
                }
                AntiEntropy {
                    interval: ae.interval.value.0,
                    rumors_max: ae.rumors_max.value as usize,
                    store_max: ae.store_max.value as usize,
                }
            });
            ProtocolConfig::Gossip(GossipConfig {
                interval: g.interval.0,
                fanout: g.fanout,
                retransmit_mult: g.retransmit_mult,
                rumors_per_message_max: g.rumors_per_message_max as usize,
                queue_len_max: g.queue_len_max as usize,
                anti_entropy,
                ..GossipConfig::default()
            })
        }
        ProtocolSpec::Relay(r) => {
            if n < 2 {
                errors.push(at(here, "relay needs at least 2 nodes"));
            }
            if u64::from(r.tokens_per_node).saturating_mul(n) > 100_000_000 {
                errors.push(at(
                    here,
                    "relay would keep over 100,000,000 messages in flight; lower tokens_per_node",
                ));
            }
            ProtocolConfig::Relay {
                tokens_per_node: r.tokens_per_node,
            }
        }
        ProtocolSpec::Pbft(p) => {
            let validators: Vec<u32> = (0..nodes.len() as u32)
                .filter(|&i| nodes[i as usize].role.is("validator"))
                .collect();
            let clients: Vec<u32> = (0..nodes.len() as u32)
                .filter(|&i| !nodes[i as usize].role.is("validator"))
                .collect();
            if clients.is_empty() {
                errors.push(at(
                    here,
                    "pbft needs at least one client: add a node group with `role: coordinator` (or worker)",
                ));
            }
            ProtocolConfig::Pbft(resolve_pbft(here, p, &validators, clients, errors))
        }
        ProtocolSpec::Kademlia(k) => {
            let (kad, swim, local) = resolve_kademlia(here, k, n, errors);
            let mask = FullSettings::KAD
                | swim.map_or(0, |_| FullSettings::SWIM)
                | local.map_or(0, |_| FullSettings::LOCAL);
            ProtocolConfig::Full(Box::new(FullSettings {
                routing: None,
                detection: None,
                partition: None,
                registry: None,
                kad: Some(kad),
                swim,
                local,
                pbft: None,
                runs: vec![mask; nodes.len()],
                layered: false,
            }))
        }
        ProtocolSpec::Swim(w) => {
            if !(2..=SWIM_NODES_MAX).contains(&n) {
                errors.push(at(
                    here,
                    format!(
                        "swim keeps the full membership (n^2 entries across the network): use 2 to {SWIM_NODES_MAX} nodes, or kademlia with `health:` (each node monitors its contacts)"
                    ),
                ));
            }
            if let Some(v) = &w.view_max {
                errors.push(at(
                    v.referenced,
                    "view_max applies to `kademlia: health:` (a partial view); protocol swim monitors everyone",
                ));
            }
            ProtocolConfig::Swim(resolve_swim(here, w, n, errors))
        }
    }
}

fn resolve_swim(
    here: Location,
    w: &SwimSpec,
    n: u64,
    errors: &mut Vec<Diagnostic>,
) -> prsm_protocol::swim::SwimConfig {
    {
        {
            for (name, d) in [
                ("probe_interval", w.probe_interval.0),
                ("probe_timeout", w.probe_timeout.0),
                ("gossip_interval", w.gossip_interval.0),
            ] {
                if d == Duration::ZERO {
                    errors.push(at(here, format!("swim {name} must be greater than 0")));
                }
            }
            if w.probe_timeout.0 >= w.probe_interval.0 {
                errors.push(at(
                    here,
                    "swim probe_timeout must be shorter than probe_interval (indirect probes need the rest of the period)",
                ));
            }
            if w.suspicion_mult == 0 || w.retransmit_mult == 0 || w.gossip_fanout == 0 {
                errors.push(at(
                    here,
                    "swim suspicion_mult, retransmit_mult and gossip_fanout must be at least 1",
                ));
            }
            prsm_protocol::swim::SwimConfig {
                probe_interval: w.probe_interval.0,
                probe_timeout: w.probe_timeout.0,
                indirect_probes: w.indirect_probes.min(64) as usize,
                suspicion_mult: w.suspicion_mult,
                gossip_interval: w.gossip_interval.0,
                gossip_fanout: w.gossip_fanout.min(64) as usize,
                retransmit_mult: w.retransmit_mult.min(100),
                updates_per_message: {
                    let u = &w.updates_per_message;
                    if u.value == 0 || u.value > 4_096 {
                        errors.push(at(
                            u.referenced,
                            "updates_per_message must be between 1 and 4096 (memberlist fits 114 in 1,400 bytes)",
                        ));
                    }
                    u.value.clamp(1, 4_096) as usize
                },
                refute: w.refute,
                random_phase: w.random_phase,
                ..prsm_protocol::swim::SwimConfig::lan(n.min(u64::from(u32::MAX)) as u32)
            }
        }
    }
}

/// SWIM's full membership is n^2 entries across the network (16 bytes each).
const SWIM_NODES_MAX: u64 = 5_000;
/// Rumors per anti-entropy reply: 1,024 rumors of 1 KiB fill a 1 MiB message.
const ANTI_ENTROPY_RUMORS_MAX: u32 = 1_024;
/// Rumors each node stores for anti-entropy repair.
const ANTI_ENTROPY_STORE_MAX: u32 = 1_000_000;
/// Neighbours one node's health monitor tracks, by default and at most.
const VIEW_MAX_DEFAULT: u64 = 512;
const VIEW_MAX_LIMIT: u64 = 4_096;
/// Nodes on one LAN segment at most.
const SITE_SIZE_MAX: u64 = 1_024;

/// `layers:` and `roles:`: which layers each node runs, each layer's settings.
fn resolve_layers(
    spec: &ScenarioSpec,
    layers: &Spanned<LayersSpec>,
    nodes: &[NodeInfo],
    ctx: &SelectorContext<'_>,
    errors: &mut Vec<Diagnostic>,
) -> ProtocolConfig {
    let l = &layers.value;
    let n = nodes.len() as u64;
    let bits = [
        FullSettings::KAD,
        FullSettings::SWIM,
        FullSettings::LOCAL,
        FullSettings::PBFT,
        FullSettings::ROUTING,
        FullSettings::DETECTION,
        FullSettings::PARTITION,
        FullSettings::REGISTRY,
    ];
    let configured: u8 = LayersSpec::NAMES
        .iter()
        .zip(bits)
        .filter(|(name, _)| l.has(name))
        .map(|(_, b)| b)
        .fold(0, |a, b| a | b);
    if configured == 0 {
        errors.push(at(
            layers.referenced,
            format!(
                "`layers:` is empty; configure at least one of {}",
                LayersSpec::NAMES.join(", ")
            ),
        ));
    }
    // Each role's layers; without `roles:` every node runs every configured layer.
    let mut runs = vec![configured; nodes.len()];
    if let Some(roles) = &spec.roles {
        let mut used = 0u8;
        let mut by_role: std::collections::BTreeMap<&str, u8> = std::collections::BTreeMap::new();
        for (role, list) in &roles.value {
            if nodes.iter().all(|node| !node.role.is(role)) {
                let have: std::collections::BTreeSet<&str> =
                    nodes.iter().map(|node| node.role.name()).collect();
                errors.push(at(
                    list.referenced,
                    format!(
                        "roles: no node group has role `{role}` (the roles here are {}); set `role: {role}` on a node group or remove this entry",
                        have.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            let mut mask = 0u8;
            for name in &list.value {
                let layer = name.value.trim();
                match LayersSpec::NAMES.iter().position(|&x| x == layer) {
                    Some(i) if l.has(layer) => mask |= bits[i],
                    Some(_) => errors.push(at(
                        name.referenced,
                        format!(
                            "roles.{role}: layer `{layer}` is not configured; add `{layer}: {{}}` under `layers:`"
                        ),
                    )),
                    None => errors.push(at(
                        name.referenced,
                        format!(
                            "roles.{role}: unknown layer `{layer}`; the layers are {}",
                            LayersSpec::NAMES.join(", ")
                        ),
                    )),
                }
            }
            if mask == 0 && !list.value.is_empty() {
                continue;
            }
            if mask == 0 {
                errors.push(at(
                    list.referenced,
                    format!(
                        "roles.{role} runs no layer; list at least one, e.g. `[kademlia, swim]`"
                    ),
                ));
            }
            used |= mask;
            by_role.insert(role.as_str(), mask);
        }
        let mut missing: Vec<&str> = nodes
            .iter()
            .map(|node| node.role.name())
            .filter(|r| !by_role.contains_key(r))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if let Some(first) = missing.first() {
            errors.push(at(
                roles.referenced,
                format!(
                    "roles: node groups with role {} run no layer; add e.g. `{first}: [kademlia, swim]` under `roles:`",
                    missing
                        .iter()
                        .map(|r| format!("`{r}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        for (name, bit) in LayersSpec::NAMES.iter().zip(bits) {
            if configured & bit != 0 && used & bit == 0 && errors.is_empty() {
                errors.push(at(
                    layers.referenced,
                    format!("layers.{name} is configured but no role runs it; add it to a role under `roles:` or remove it"),
                ));
            }
        }
        for (i, node) in nodes.iter().enumerate() {
            runs[i] = by_role.get(node.role.name()).copied().unwrap_or(0);
        }
    }
    let count = |bit: u8| runs.iter().filter(|&&m| m & bit != 0).count() as u64;
    let kad = l.kademlia.as_ref().map(|k| {
        for (key, present) in [
            ("health", k.value.health.is_some()),
            ("local", k.value.local.is_some()),
        ] {
            if present {
                errors.push(at(
                    k.referenced,
                    format!(
                        "layers.kademlia.{key}: under `layers:` health and local discovery are layers of their own; move it to `layers: {{ {}: ... }}`",
                        if key == "health" { "swim" } else { "local" }
                    ),
                ));
            }
        }
        if count(FullSettings::KAD) < 2 {
            errors.push(at(k.referenced, "layers.kademlia: at least 2 nodes must run discovery"));
        }
        resolve_kademlia(k.referenced, &k.value, n, errors).0
    });
    let swim = l.swim.as_ref().map(|w| {
        // A node that does not run health answers no probe, so whoever monitors it (a contact in
        // a routing table, or any member of a full view) would declare it dead.
        let unmonitorable = runs.iter().any(|&m| {
            m & FullSettings::SWIM == 0 && (kad_configured(l) == (m & FullSettings::KAD != 0))
        });
        if unmonitorable {
            errors.push(at(
                w.referenced,
                if l.kademlia.is_some() {
                    "layers.swim: every node that runs kademlia must run swim too (its contacts would probe it and find it dead); add swim to those roles"
                } else {
                    "layers.swim: without kademlia swim monitors every node, so every node must run it; add swim to every role"
                },
            ));
        }
        let mut swim = resolve_swim(w.referenced, &w.value, n, errors);
        if kad.is_some() {
            // A partial view that follows the routing table (and what other layers watch).
            swim.view_max = Some(resolve_view_max(&w.value, errors) as usize);
        } else {
            if let Some(v) = &w.value.view_max {
                errors.push(at(
                    v.referenced,
                    "layers.swim.view_max applies with a `kademlia` layer (a partial view following the routing table); without one swim monitors everyone",
                ));
            }
            if !(2..=SWIM_NODES_MAX).contains(&n) {
                errors.push(at(
                    w.referenced,
                    format!(
                        "layers.swim without kademlia keeps the full membership: use 2 to {SWIM_NODES_MAX} nodes, or add a `kademlia` layer (each node then monitors its contacts)"
                    ),
                ));
            }
        }
        swim
    });
    let local = l.local.as_ref().map(|lo| resolve_local(lo, errors));
    let pbft = l.pbft.as_ref().map(|p| {
        let runs_pbft = |i: u32| runs[i as usize] & FullSettings::PBFT != 0;
        let validators: Vec<u32> = (0..n as u32)
            .filter(|&i| runs_pbft(i) && nodes[i as usize].role.is("validator"))
            .collect();
        let mut settings = resolve_pbft(p.referenced, &p.value, &validators, Vec::new(), errors);
        let committee: std::collections::BTreeSet<u32> =
            settings.committee.iter().copied().collect();
        settings.clients = (0..n as u32)
            .filter(|&i| runs_pbft(i) && !committee.contains(&i))
            .filter(|&i| !nodes[i as usize].role.is("validator"))
            .collect();
        if settings.clients.is_empty() {
            errors.push(at(
                p.referenced,
                "layers.pbft: no client: give `pbft` to a role other than validator (e.g. `coordinator: [kademlia, swim, pbft]`), whose nodes submit the requests",
            ));
        }
        settings
    });
    let routing = l.routing.as_ref().map(|r| {
        let settings = super::routing::resolve_routing(r, ctx, errors);
        if count(FullSettings::ROUTING) == 0 {
            errors.push(at(r.referenced, "layers.routing: no node runs it"));
        }
        settings
    });
    let detection = l.detection.as_ref().map(|d| {
        let settings = super::detection::resolve_detection(d, errors);
        if count(FullSettings::DETECTION) == 0 {
            errors.push(at(d.referenced, "layers.detection: no node runs it"));
        }
        settings
    });
    let partition = l.partition.as_ref().map(|p| {
        let settings = super::healing::resolve_partition_layer(p, errors);
        if count(FullSettings::PARTITION) < 2 {
            errors.push(at(
                p.referenced,
                "layers.partition: at least 2 nodes must run it",
            ));
        }
        settings
    });
    let registry = l.registry.as_ref().map(|r| {
        let settings = super::healing::resolve_registry(r, errors);
        if count(FullSettings::REGISTRY) < 2 {
            errors.push(at(
                r.referenced,
                "layers.registry: at least 2 nodes must run it",
            ));
        }
        settings
    });
    let mut routing = routing;
    if let (Some(r), Some(d)) = (routing.as_mut(), detection.as_ref()) {
        // Routers spot-check and read reputation as their reliability factor.
        let mut router = (*r.router).clone();
        router.spot_check = d.spot_check;
        router.spot_check_watched = d.spot_check_watched;
        router.slow_after = d.slow_after;
        let (g, b) = d.config.prior;
        router.trust_prior = Some(g / (g + b));
        r.router = std::sync::Arc::new(router);
        for (_, w) in &mut r.workers {
            w.rate_limit = d.rate_limit;
        }
    }
    ProtocolConfig::Full(Box::new(FullSettings {
        kad,
        swim,
        local,
        pbft,
        routing,
        detection,
        partition,
        registry,
        runs,
        layered: true,
    }))
}

fn kad_configured(l: &LayersSpec) -> bool {
    l.kademlia.is_some()
}

fn resolve_view_max(w: &SwimSpec, errors: &mut Vec<Diagnostic>) -> u64 {
    w.view_max.as_ref().map_or(VIEW_MAX_DEFAULT, |v| {
        if v.value == 0 || v.value > VIEW_MAX_LIMIT {
            errors.push(at(
                v.referenced,
                format!("view_max must be between 1 and {VIEW_MAX_LIMIT}"),
            ));
        }
        v.value.clamp(1, VIEW_MAX_LIMIT)
    })
}

fn resolve_local(l: &Spanned<LocalSpec>, errors: &mut Vec<Diagnostic>) -> LocalSettings {
    let size = l.value.site_size.value;
    if !(2..=SITE_SIZE_MAX).contains(&size) {
        errors.push(at(
            l.value.site_size.referenced,
            format!("site_size must be between 2 and {SITE_SIZE_MAX} (a LAN segment)"),
        ));
    }
    if l.value.interval.0 == Duration::ZERO || l.value.ttl.0 == Duration::ZERO {
        errors.push(at(
            l.referenced,
            "local interval and ttl must be greater than 0",
        ));
    }
    if l.value.ttl.0 < l.value.interval.0 {
        errors.push(at(
            l.referenced,
            "local ttl must be at least the announce interval, or live peers expire between announcements",
        ));
    }
    LocalSettings {
        config: prsm_protocol::local::LocalConfig {
            interval: l.value.interval.0,
            ttl: l.value.ttl.0,
            peers_max: SITE_SIZE_MAX as usize,
        },
        site_size: size.clamp(2, SITE_SIZE_MAX) as u32,
    }
}

fn resolve_kademlia(
    here: Location,
    spec: &KademliaSpec,
    n: u64,
    errors: &mut Vec<Diagnostic>,
) -> (
    KadSettings,
    Option<prsm_protocol::swim::SwimConfig>,
    Option<LocalSettings>,
) {
    let mut config = match spec.profile {
        KadProfile::Kademlia => KadConfig::kademlia(),
        KadProfile::Ethereum => KadConfig::ethereum(),
        KadProfile::Ipfs => KadConfig::ipfs(),
    };
    if let Some(k) = &spec.k {
        if k.value == 0 || k.value > 256 {
            errors.push(at(
                k.referenced,
                "k must be between 1 and 256 (20 in the paper)",
            ));
        }
        config.k = k.value.clamp(1, 256) as usize;
    }
    if let Some(a) = &spec.alpha {
        if a.value == 0 || a.value > 64 {
            errors.push(at(
                a.referenced,
                "alpha must be between 1 and 64 (3 in the paper)",
            ));
        }
        config.alpha = a.value.clamp(1, 64) as usize;
    }
    if let Some(t) = spec.request_timeout {
        config.request_timeout = t.0;
    }
    if let Some(t) = spec.refresh_interval {
        config.refresh_interval = t.0;
    }
    for (name, d) in [
        ("request_timeout", config.request_timeout),
        ("refresh_interval", config.refresh_interval),
    ] {
        if d == Duration::ZERO {
            errors.push(at(here, format!("kademlia {name} must be greater than 0")));
        }
    }
    config.dht = spec.dht;
    config.pex_interval = spec.pex_interval.map(|d| d.0);
    if config.pex_interval == Some(Duration::ZERO) {
        errors.push(at(here, "pex_interval must be greater than 0, e.g. `10s`"));
    }
    if !spec.dht && config.pex_interval.is_none() {
        errors.push(at(
            here,
            "with `dht: false` nodes need peer exchange to discover anyone: set `pex_interval`",
        ));
    }
    if spec.pex_max.value == 0 || spec.pex_max.value > 256 {
        errors.push(at(
            spec.pex_max.referenced,
            "pex_max must be between 1 and 256",
        ));
    }
    config.pex_max = spec.pex_max.value.clamp(1, 256) as usize;
    config.join_spread = spec.join_spread.0;
    if n < 2 {
        errors.push(at(here, "kademlia needs at least 2 nodes"));
    }
    let bootstrap = spec
        .bootstrap
        .as_ref()
        .map_or_else(|| nodeset_from_str("0"), |b| b.value.clone());
    let health = spec.health.as_ref().map(|h| {
        let mut swim = resolve_swim(h.referenced, &h.value, n, errors);
        swim.view_max = Some(resolve_view_max(&h.value, errors) as usize);
        swim
    });
    let local = spec.local.as_ref().map(|l| resolve_local(l, errors));
    (KadSettings { config, bootstrap }, health, local)
}

/// The most validators in one committee: all-to-all voting is O(n^2) messages per decision.
const COMMITTEE_MAX: u64 = 2_000;

/// PBFT's settings; the committee is drawn from `validators` (the nodes with role validator that
/// run PBFT), and `clients` submit the requests.
fn resolve_pbft(
    here: Location,
    p: &PbftSpec,
    validators: &[u32],
    clients: Vec<u32>,
    errors: &mut Vec<Diagnostic>,
) -> PbftSettings {
    if validators.is_empty() {
        errors.push(at(
            here,
            "pbft needs nodes with `role: validator` (running pbft) to form the committee",
        ));
    }
    let size = match &p.committee {
        Some(c) => {
            if c.value == 0 || c.value > validators.len() as u64 {
                errors.push(at(
                    c.referenced,
                    format!(
                        "committee must be between 1 and the {} nodes with role validator",
                        validators.len()
                    ),
                ));
            }
            c.value.min(validators.len() as u64)
        }
        None => validators.len() as u64,
    };
    if size > COMMITTEE_MAX {
        errors.push(at(
            p.committee.as_ref().map_or(here, |c| c.referenced),
            format!("a committee of {size} is over the limit of {COMMITTEE_MAX} validators; choose a smaller `committee:`"),
        ));
    }
    // Evenly spaced among the validators, so a committee spans every node group (and region).
    let committee: Vec<u32> = (0..size)
        .map(|k| validators[(k * validators.len() as u64 / size.max(1)) as usize])
        .collect();
    let k = p.checkpoint_interval.value;
    if k == 0 || k > 1_000_000 {
        errors.push(at(
            p.checkpoint_interval.referenced,
            "checkpoint_interval must be between 1 and 1,000,000 (the paper uses 128)",
        ));
    }
    let window = p.log_window.as_ref().map_or(2 * k, |w| w.value);
    if let Some(w) = &p.log_window
        && (w.value < k || w.value > 10_000_000)
    {
        errors.push(at(
            w.referenced,
            "log_window must be at least checkpoint_interval (the paper uses twice it) and at most 10,000,000",
        ));
    }
    if p.batch_size.value == 0 || p.batch_size.value > 10_000 {
        errors.push(at(
            p.batch_size.referenced,
            "batch_size must be between 1 (no batching) and 10,000",
        ));
    }
    for (name, d) in [
        ("request_timeout", p.request_timeout),
        ("view_change_timeout", p.view_change_timeout),
        ("client_timeout", p.client_timeout),
        ("status_interval", p.status_interval),
        ("liveness_bound", p.liveness_bound),
    ] {
        if d.0 == Duration::ZERO {
            errors.push(at(here, format!("pbft {name} must be greater than 0")));
        }
    }
    if p.pending_max.value == 0 || p.pending_max.value > 1_000_000 {
        errors.push(at(
            p.pending_max.referenced,
            "pending_max must be between 1 and 1,000,000",
        ));
    }
    PbftSettings {
        config: PbftConfig {
            checkpoint_interval: k.max(1),
            log_window: window.max(1),
            batch_size_max: p.batch_size.value.max(1),
            batch_timeout: p.batch_timeout.0,
            request_timeout: p.request_timeout.0,
            view_change_timeout: p.view_change_timeout.0,
            client_timeout: p.client_timeout.0,
            status_interval: p.status_interval.0,
            pending_max: p.pending_max.value as usize,
            ..PbftConfig::default()
        },
        committee,
        clients,
        signature_verify: p.signature_verify.0,
        liveness_bound: p.liveness_bound.0,
    }
}

fn resolve_adversaries(
    spec: &ScenarioSpec,
    protocol: &ProtocolConfig,
    duration: Duration,
    ctx: &SelectorContext<'_>,
    errors: &mut Vec<Diagnostic>,
) -> Vec<Adversary> {
    let mut out = Vec::new();
    for a in &spec.adversaries {
        let here = a.referenced;
        let a = &a.value;
        let behavior = a.behavior.value;
        let (pbft, kademlia) = (spec.runs("pbft"), spec.runs("kademlia"));
        // `silent` silences a PBFT replica where PBFT runs, else a discovery node.
        let kad = kademlia && !pbft;
        let dht_only = matches!(
            behavior,
            BehaviorSpec::DhtLiar | BehaviorSpec::Sybil | BehaviorSpec::Eclipse
        );
        let worker = matches!(
            behavior,
            BehaviorSpec::WrongResult
                | BehaviorSpec::Poison
                | BehaviorSpec::Inconsistent
                | BehaviorSpec::SlowResult
                | BehaviorSpec::Flood
        );
        if (behavior == BehaviorSpec::Flood) != a.rate.is_some() {
            errors.push(at(
                a.behavior.referenced,
                "`rate:` goes with `behavior: flood`, and `flood` needs it: junk tasks a second, e.g. `rate: 200`",
            ));
        }
        let for_worker = matches!(behavior, BehaviorSpec::WrongResult | BehaviorSpec::Poison);
        if !for_worker
            && (a.probability.is_some()
                || a.class.is_some()
                || a.group.is_some()
                || a.malformed.is_some())
        {
            errors.push(at(
                here,
                "`probability:`, `class:`, `group:` and `malformed:` go with `behavior: wrong_result` or `poison`",
            ));
        }
        if worker && !spec.runs("routing") {
            errors.push(at(
                a.behavior.referenced,
                "wrong_result, poison, inconsistent, slow_result and flood are routing faults: they need layer `routing`",
            ));
        }
        if behavior == BehaviorSpec::Slander && !spec.runs("detection") {
            errors.push(at(
                a.behavior.referenced,
                "slander attacks the detection layer: it needs layer `detection`",
            ));
        }
        match (pbft, kademlia) {
            _ if worker || behavior == BehaviorSpec::Slander => {}
            (_, false) if dht_only => errors.push(at(
                a.behavior.referenced,
                "dht_liar, sybil and eclipse attack discovery: they need protocol or layer `kademlia`",
            )),
            (true, _) => {}
            (false, true) if dht_only || behavior == BehaviorSpec::Silent => {}
            (false, true) => errors.push(at(
                a.behavior.referenced,
                "kademlia adversaries are silent, dht_liar, sybil and eclipse",
            )),
            (false, false) => errors.push(at(
                here,
                format!(
                    "adversaries are defined for `pbft` and `kademlia`; {} has none yet",
                    spec.runs_what()
                ),
            )),
        }
        if matches!(behavior, BehaviorSpec::Sybil | BehaviorSpec::Eclipse) != a.target.is_some() {
            errors.push(at(
                a.behavior.referenced,
                "`target:` goes with `behavior: sybil` (the node whose id to crowd) and `eclipse` (the victim), and they need it",
            ));
        }
        if let Some(t) = &a.target
            && t.value >= ctx.nodes.len() as u64
        {
            errors.push(at(
                t.referenced,
                format!("target: node {} does not exist", t.value),
            ));
        }
        if a.lie.is_some() && behavior != BehaviorSpec::DhtLiar {
            errors.push(at(here, "`lie:` goes with `behavior: dht_liar`"));
        }
        ctx.check(&a.nodes, errors);
        let from = a.from.map_or(Duration::ZERO, |d| d.0);
        let until = a.until.map_or(Duration::from_nanos(u64::MAX), |d| d.0);
        if from >= until {
            errors.push(at(
                here,
                "an adversary's `from` must come before its `until`",
            ));
        }
        if from > duration {
            errors.push(at(here, "this adversary starts after the end of the run"));
        }
        let delayed = matches!(behavior, BehaviorSpec::Slow | BehaviorSpec::SlowResult);
        if delayed != a.delay.is_some() {
            errors.push(at(
                a.behavior.referenced,
                "`delay:` goes with `behavior: slow` and `slow_result`, and they need it, e.g. `delay: 300ms`",
            ));
        }
        if (behavior == BehaviorSpec::Twin) != a.twin_of.is_some() {
            errors.push(at(
                a.behavior.referenced,
                "`twin_of:` goes with `behavior: twin`, and `twin` needs it: the node whose replica to duplicate",
            ));
        }
        let resolved = match behavior {
            BehaviorSpec::Silent if kad => AdversaryBehavior::Kad(KadRole::Silent),
            BehaviorSpec::Silent => AdversaryBehavior::Replica(Behavior::Silent),
            BehaviorSpec::DhtLiar => AdversaryBehavior::Kad(KadRole::Liar {
                nonexistent: a
                    .lie
                    .as_ref()
                    .is_some_and(|l| l.value == LieSpec::Nonexistent),
            }),
            BehaviorSpec::Sybil => AdversaryBehavior::Kad(KadRole::Sybil {
                target: a.target.as_ref().map_or(0, |t| t.value as u32),
            }),
            BehaviorSpec::Eclipse => AdversaryBehavior::Kad(KadRole::Eclipse {
                victim: a.target.as_ref().map_or(0, |t| t.value as u32),
            }),
            BehaviorSpec::Slow => {
                AdversaryBehavior::Replica(Behavior::Slow(a.delay.map_or(Duration::ZERO, |d| d.0)))
            }
            BehaviorSpec::Equivocate => AdversaryBehavior::Replica(Behavior::Equivocate),
            BehaviorSpec::WithholdVotes => AdversaryBehavior::Replica(Behavior::WithholdVotes),
            BehaviorSpec::DoubleVote => AdversaryBehavior::Replica(Behavior::DoubleVote),
            BehaviorSpec::Replay => AdversaryBehavior::Replica(Behavior::Replay),
            BehaviorSpec::WrongDigest => AdversaryBehavior::Replica(Behavior::WrongDigest),
            BehaviorSpec::WrongResult | BehaviorSpec::Poison => {
                let probability = a.probability.as_ref().map_or(1.0, |p| {
                    if !(p.value > 0.0 && p.value <= 1.0) {
                        errors.push(at(
                            p.referenced,
                            "probability must be above 0 and at most 1, e.g. 0.3",
                        ));
                    }
                    p.value
                });
                let malformed = if behavior == BehaviorSpec::Poison {
                    if let Some(m) = &a.malformed {
                        errors.push(at(
                            m.referenced,
                            "poisoned results always pass the weak check; `malformed:` goes with `wrong_result`",
                        ));
                    }
                    0.0
                } else {
                    a.malformed.as_ref().map_or(0.5, |m| {
                        if !(0.0..=1.0).contains(&m.value) {
                            errors.push(at(
                                m.referenced,
                                "malformed is a share of the wrong results, from 0 to 1",
                            ));
                        }
                        m.value
                    })
                };
                let classes = protocol.class_names();
                let class = a.class.as_ref().and_then(|c| {
                    let found = classes.iter().position(|n: &String| *n == c.value);
                    if found.is_none() {
                        errors.push(at(
                            c.referenced,
                            format!(
                                "class `{}` is not a task class here (the classes are {})",
                                c.value,
                                classes.join(", ")
                            ),
                        ));
                    }
                    found.map(|i| i as u16)
                });
                let group = a.group.as_ref().map(|g| {
                    if g.value > u64::from(u32::MAX) {
                        errors.push(at(g.referenced, "group must be at most 4294967295"));
                    }
                    g.value as u32
                });
                AdversaryBehavior::Worker(prsm_protocol::routing::FaultKind::Wrong {
                    probability: probability.clamp(0.0, 1.0),
                    class,
                    group,
                    malformed: malformed.clamp(0.0, 1.0),
                })
            }
            BehaviorSpec::Inconsistent => {
                AdversaryBehavior::Worker(prsm_protocol::routing::FaultKind::Inconsistent)
            }
            BehaviorSpec::SlowResult => {
                AdversaryBehavior::Worker(prsm_protocol::routing::FaultKind::Slow {
                    delay: a.delay.map_or(Duration::ZERO, |d| d.0),
                })
            }
            BehaviorSpec::Slander => AdversaryBehavior::Slander,
            BehaviorSpec::Flood => {
                let rate = a.rate.as_ref().map_or(0.0, |r| {
                    if !(r.value > 0.0 && r.value <= 1e6) {
                        errors.push(at(
                            r.referenced,
                            "rate is junk tasks a second, above 0 and at most 1000000",
                        ));
                    }
                    r.value
                });
                AdversaryBehavior::Flood { rate }
            }
            BehaviorSpec::Twin => {
                let of = a.twin_of.as_ref().map_or(0, |t| t.value);
                if let Some(t) = &a.twin_of {
                    let is_validator = ctx
                        .nodes
                        .get(t.value as usize)
                        .is_some_and(|n| n.role.is("validator"));
                    if !is_validator {
                        errors.push(at(
                            t.referenced,
                            format!("twin_of: node {} is not a validator", t.value),
                        ));
                    }
                }
                if a.from.is_some() || a.until.is_some() {
                    errors.push(at(
                        here,
                        "a twin exists for the whole run; drop `from:` and `until:` (use partitions to time it)",
                    ));
                }
                AdversaryBehavior::Twin { of: of as u32 }
            }
        };
        out.push(Adversary {
            nodes: a.nodes.value.clone(),
            behavior: resolved,
            from,
            until,
        });
    }
    out
}

fn behavior_name(b: BehaviorSpec) -> &'static str {
    match b {
        BehaviorSpec::Silent => "silent",
        BehaviorSpec::Slow => "slow",
        BehaviorSpec::Equivocate => "equivocate",
        BehaviorSpec::WithholdVotes => "withhold_votes",
        BehaviorSpec::DoubleVote => "double_vote",
        BehaviorSpec::Replay => "replay",
        BehaviorSpec::WrongDigest => "wrong_digest",
        BehaviorSpec::Twin => "twin",
        BehaviorSpec::DhtLiar => "dht_liar",
        BehaviorSpec::Sybil => "sybil",
        BehaviorSpec::Eclipse => "eclipse",
        BehaviorSpec::WrongResult => "wrong_result",
        BehaviorSpec::Poison => "poison",
        BehaviorSpec::Inconsistent => "inconsistent",
        BehaviorSpec::SlowResult => "slow_result",
        BehaviorSpec::Slander => "slander",
        BehaviorSpec::Flood => "flood",
    }
}

/// Up to five node numbers, then how many more.
fn some_nodes(nodes: &[usize]) -> String {
    let mut text: Vec<String> = nodes.iter().take(5).map(usize::to_string).collect();
    if nodes.len() > 5 {
        text.push(format!("and {} more", nodes.len() - 5));
    }
    text.join(", ")
}

/// Adversary entries that can land where their behaviour does not do what it is for: a PBFT
/// behaviour on a node that hosts no replica (a client, or a validator outside the committee)
/// makes no faulty replica; a twin on a node that already hosts a replica is not placed. Judged as
/// the run starts, when every node is up.
fn adversary_warnings(
    spec: &ScenarioSpec,
    protocol: &ProtocolConfig,
    ctx: &SelectorContext<'_>,
) -> Vec<Diagnostic> {
    let settings = match protocol {
        ProtocolConfig::Pbft(settings) => settings,
        ProtocolConfig::Full(full) => match &full.pbft {
            Some(settings) => settings,
            None => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    let n = ctx.nodes.len();
    let mut replica = vec![false; n];
    for &member in &settings.committee {
        if let Some(r) = replica.get_mut(member as usize) {
            *r = true;
        }
    }
    let mut warnings = Vec::new();
    for a in &spec.adversaries {
        let a = &a.value;
        let behavior = a.behavior.value;
        let twin = behavior == BehaviorSpec::Twin;
        if matches!(
            behavior,
            BehaviorSpec::DhtLiar
                | BehaviorSpec::Sybil
                | BehaviorSpec::Eclipse
                | BehaviorSpec::WrongResult
                | BehaviorSpec::Poison
                | BehaviorSpec::Inconsistent
                | BehaviorSpec::SlowResult
                | BehaviorSpec::Slander
                | BehaviorSpec::Flood
        ) {
            continue;
        }
        // Where the behaviour does nothing: off the committee, or for a twin, on it.
        let idle = |i: usize| replica[i] == twin;
        let name = behavior_name(behavior);
        for term in &a.nodes.value.terms {
            let (random, pool) = ctx.random_pool(term);
            let idle_nodes: Vec<usize> = (0..n).filter(|&i| pool[i] && idle(i)).collect();
            if idle_nodes.is_empty() {
                continue;
            }
            let message = match (random, twin) {
                (None, false) => format!(
                    "`{term}` puts `{name}` on node(s) {} that host no replica (clients, or validators outside the committee): it makes no faulty replica there (on a client it only disturbs that client's own requests); select replicas, e.g. `role:validator`",
                    some_nodes(&idle_nodes)
                ),
                (None, true) => format!(
                    "`{term}` names node(s) {} that already host a replica; a twin needs a node that is not a committee member, so it is not placed there",
                    some_nodes(&idle_nodes)
                ),
                (Some(r), false) => format!(
                    "`{term}` draws from {} nodes, {} of which host no replica; `{name}` drawn there makes no faulty replica (on a client it only disturbs that client's own requests), so fewer replicas may be faulty than meant; to draw among the validators write `role:validator & {r}`",
                    pool.iter().filter(|&&p| p).count(),
                    idle_nodes.len()
                ),
                (Some(r), true) => format!(
                    "`{term}` draws from {} nodes, {} of which already host a replica and get no twin; to draw among the others write `role:worker & {r}` (or another non-validator role)",
                    pool.iter().filter(|&&p| p).count(),
                    idle_nodes.len()
                ),
            };
            warnings.push(at(a.nodes.referenced, message));
        }
    }
    warnings
}

fn resolve_workloads(
    spec: &ScenarioSpec,
    protocol: &ProtocolConfig,
    duration: Duration,
    ctx: &SelectorContext<'_>,
    errors: &mut Vec<Diagnostic>,
) -> Workloads {
    let Some(w) = spec.workload.as_ref() else {
        return Workloads::default();
    };
    let mut out = Workloads::default();
    if let Some(tasks) = &w.value.tasks {
        let routing = match protocol {
            ProtocolConfig::Full(f) => f.routing.as_ref(),
            _ => None,
        };
        if routing.is_none() {
            errors.push(at(
                tasks.referenced,
                format!(
                    "the `tasks` workload needs the `routing` layer (`layers: {{ routing: ... }}`), and this scenario runs {}",
                    spec.runs_what()
                ),
            ));
        }
        out.tasks = super::routing::resolve_tasks(tasks, routing, duration, ctx, errors);
    }
    let entries = [
        ("publish", "gossip", &w.value.publish),
        ("requests", "pbft", &w.value.requests),
        ("lookups", "kademlia", &w.value.lookups),
        ("writes", "registry", &w.value.writes),
    ];
    if entries.iter().all(|(_, _, e)| e.is_none()) && w.value.tasks.is_none() {
        errors.push(at(
            w.referenced,
            "workload is empty: give `publish:` (gossip), `requests:` (pbft), `lookups:` (kademlia), `tasks:` (routing) or `writes:` (registry)",
        ));
    }
    for (kind, needs, entry) in entries {
        let Some(entry) = entry else {
            continue;
        };
        if !spec.runs(needs) {
            errors.push(at(
                entry.referenced,
                format!(
                    "the `{kind}` workload needs `{needs}`, and this scenario runs {}",
                    spec.runs_what()
                ),
            ));
        }
        let resolved = resolve_workload(spec, kind, entry, duration, errors);
        match kind {
            "publish" => out.publish = resolved,
            "requests" => out.requests = resolved,
            "writes" => out.writes = resolved,
            _ => out.lookups = resolved,
        }
    }
    out
}

fn resolve_workload(
    spec: &ScenarioSpec,
    kind: &str,
    workload: &Spanned<PublishSpec>,
    duration: Duration,
    errors: &mut Vec<Diagnostic>,
) -> Option<Publish> {
    let p = &workload.value;
    if p.every.0 == Duration::ZERO {
        errors.push(at(
            workload.referenced,
            "publish every must be greater than 0, e.g. `1s`",
        ));
        return None;
    }
    let stop = p.stop.map(|s| s.0).unwrap_or(duration).min(duration);
    let rumors = (stop.as_nanos().saturating_sub(p.start.0.as_nanos()) / p.every.0.as_nanos() + 1)
        .min(p.count.unwrap_or(u64::MAX));
    if rumors > 1_000_000 {
        errors.push(at(
            workload.referenced,
            "publish would create over 1,000,000 rumors; publish less often",
        ));
    }
    // Coverage is tracked with one bit per rumor and node.
    let nodes: u64 = spec
        .nodes
        .value
        .iter()
        .map(|g| g.count.value)
        .fold(0, u64::saturating_add);
    if kind == "publish" && rumors.saturating_mul(nodes) > COVERAGE_BITS_MAX {
        errors.push(at(
            workload.referenced,
            format!(
                "{rumors} rumors x {nodes} nodes is too many to track coverage (limit {COVERAGE_BITS_MAX} rumor-node pairs, 1 GiB); publish less often or shorten the run"
            ),
        ));
    }
    if p.payload_bytes > 1 << 20 {
        errors.push(at(
            workload.referenced,
            "payload_bytes is over 1 MiB, the default message size limit",
        ));
    }
    if let Some(t) = &p.targets
        && kind != "lookups"
        && kind != "writes"
    {
        errors.push(at(
            t.referenced,
            "`targets:` goes with the `lookups` and `writes` workloads",
        ));
    }
    Some(Publish {
        every: p.every.0,
        start: p.start.0,
        stop,
        payload_bytes: p.payload_bytes,
        count: p.count.unwrap_or(u64::MAX),
        targets: p.targets.as_ref().map(|t| t.value.clone()),
    })
}

fn resolve_faults(
    specs: &[Spanned<FaultSpec>],
    duration: Duration,
    ctx: &SelectorContext<'_>,
    errors: &mut Vec<Diagnostic>,
) -> Vec<Fault> {
    let mut faults = Vec::new();
    for spec in specs {
        let f = &spec.value;
        if f.at.0 > duration {
            errors.push(at(
                spec.referenced,
                format!("fault at {} is after the end of the run ({duration}); move it earlier or lengthen `duration`", f.at.0),
            ));
        }
        let actions = usize::from(f.crash.is_some())
            + usize::from(f.restart.is_some())
            + usize::from(f.partition.is_some())
            + usize::from(f.heal.is_some())
            + usize::from(f.churn.is_some());
        if actions != 1 {
            errors.push(at(
                spec.referenced,
                "a fault needs exactly one of `crash:`, `restart:`, `partition:`, `heal:` or `churn:` beside `at:`",
            ));
            continue;
        }
        let action = if let Some(set) = &f.crash {
            ctx.check(set, errors);
            FaultAction::Crash(set.value.clone())
        } else if let Some(set) = &f.restart {
            ctx.check(set, errors);
            FaultAction::Restart(set.value.clone())
        } else if let Some(p) = &f.partition {
            match resolve_partition(p, ctx, errors) {
                Some(plan) => FaultAction::Partition(plan),
                None => continue,
            }
        } else if let Some(churn) = &f.churn {
            let c = &churn.value;
            let until = c.until.map(|u| u.0).unwrap_or(duration);
            if !(c.rate > 0.0 && c.rate <= 1e6) {
                errors.push(at(churn.referenced, "churn rate is crashes per second across the network; use a value above 0 and at most 1000000"));
            }
            if until <= f.at.0 || until > duration {
                errors.push(at(churn.referenced, format!("churn `until` must be after `at` ({}) and no later than the end of the run ({duration})", f.at.0)));
            }
            if let Some(n) = &c.nodes {
                ctx.check(n, errors);
            }
            FaultAction::Churn {
                rate_per_s: c.rate,
                downtime: c.downtime.0,
                until,
                nodes: c.nodes.as_ref().map(|n| n.value.clone()),
            }
        } else {
            FaultAction::Heal
        };
        faults.push(Fault { at: f.at.0, action });
    }
    // A stable sort keeps file order among faults at the same time.
    faults.sort_by_key(|f| f.at);
    check_heals(specs, errors);
    faults
}

fn resolve_partition(
    p: &Spanned<PartitionSpec>,
    ctx: &SelectorContext<'_>,
    errors: &mut Vec<Diagnostic>,
) -> Option<PartitionPlan> {
    let spec = &p.value;
    let kinds = usize::from(spec.groups.is_some())
        + usize::from(spec.isolate.is_some())
        + usize::from(spec.by_region)
        + usize::from(spec.one_way.is_some())
        + usize::from(spec.between.is_some());
    if kinds != 1 {
        errors.push(at(
            p.referenced,
            "a partition needs exactly one of `groups:`, `isolate:`, `by_region: true`, `one_way:` or `between:`",
        ));
        return None;
    }
    if let Some(groups) = &spec.groups {
        if groups.is_empty() {
            errors.push(at(
                p.referenced,
                "partition groups is empty; list at least one group",
            ));
        }
        groups.iter().for_each(|g| ctx.check(g, errors));
        for (k, g) in groups.iter().enumerate() {
            ctx.check_not_empty(g, &format!("partition group {}", k + 1), errors);
        }
        // Each group is reported once, against the earlier group that owns the first node it
        // shares; one pass over the nodes per group.
        let mut owner: Vec<Option<usize>> = vec![None; ctx.nodes.len()];
        for (k, later) in groups.iter().enumerate() {
            let certain = ctx.certain_nodes(&later.value);
            let first = (0..certain.len()).find(|&i| certain[i] && owner[i].is_some());
            if let Some(node) = first
                && let Some(j) = owner[node]
            {
                let earlier = &groups[j];
                let count = shared_count(&ctx.certain_nodes(&earlier.value), &certain);
                errors.push(at(
                    later.referenced,
                    format!(
                        "partition groups {} (`{}`) and {} (`{}`) both select node {node}{}; a node is on one side only: make the groups disjoint",
                        j + 1,
                        show_selector(&earlier.value),
                        k + 1,
                        show_selector(&later.value),
                        more_nodes(count),
                    ),
                ));
            }
            for (i, o) in owner.iter_mut().enumerate() {
                if certain[i] && o.is_none() {
                    *o = Some(k);
                }
            }
        }
        return Some(PartitionPlan::Groups(
            groups.iter().map(|g| g.value.clone()).collect(),
        ));
    }
    if let Some(set) = &spec.isolate {
        ctx.check(set, errors);
        ctx.check_not_empty(set, "`isolate`", errors);
        return Some(PartitionPlan::Isolate(set.value.clone()));
    }
    if let Some(one_way) = &spec.one_way {
        ctx.check(&one_way.from, errors);
        ctx.check(&one_way.to, errors);
        ctx.check_not_empty(&one_way.from, "`one_way` `from`", errors);
        ctx.check_not_empty(&one_way.to, "`one_way` `to`", errors);
        if let Some((node, count)) = ctx.shared_node(&one_way.from.value, &one_way.to.value) {
            errors.push(at(
                one_way.to.referenced,
                format!(
                    "`one_way` `from` (`{}`) and `to` (`{}`) both select node {node}{}; a node cannot be cut off from itself: make the two sets disjoint",
                    show_selector(&one_way.from.value),
                    show_selector(&one_way.to.value),
                    more_nodes(count),
                ),
            ));
        }
        return Some(PartitionPlan::OneWay {
            from: one_way.from.value.clone(),
            to: one_way.to.value.clone(),
        });
    }
    if let Some((a, b)) = &spec.between {
        ctx.check(a, errors);
        ctx.check(b, errors);
        ctx.check_not_empty(a, "the first set of `between`", errors);
        ctx.check_not_empty(b, "the second set of `between`", errors);
        if let Some((node, count)) = ctx.shared_node(&a.value, &b.value) {
            errors.push(at(
                b.referenced,
                format!(
                    "the two sets of `between` (`{}` and `{}`) both select node {node}{}; a node cannot be cut off from itself: make the two sets disjoint",
                    show_selector(&a.value),
                    show_selector(&b.value),
                    more_nodes(count),
                ),
            ));
        }
        return Some(PartitionPlan::Between {
            a: a.value.clone(),
            b: b.value.clone(),
        });
    }
    if ctx.regions.len() < 2 {
        errors.push(at(
            p.referenced,
            "by_region needs node groups in at least two regions",
        ));
    }
    Some(PartitionPlan::ByRegion)
}

/// A selector as it could be written: its terms joined by commas, `[]` for none.
fn show_selector(set: &NodeSetSpec) -> String {
    if set.terms.is_empty() {
        return "[]".to_owned();
    }
    set.terms
        .iter()
        .map(Term::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// How many nodes two membership lists share.
fn shared_count(a: &[bool], b: &[bool]) -> usize {
    a.iter().zip(b).filter(|&(&x, &y)| x && y).count()
}

/// " (and N more)" after the first of `count` shared nodes, or nothing for one.
fn more_nodes(count: usize) -> String {
    if count > 1 {
        format!(" (and {} more)", count - 1)
    } else {
        String::new()
    }
}

/// What a fault does to the partition in force, for the heal check.
#[derive(Clone, Copy, PartialEq)]
enum Cutting {
    Partition,
    Heal,
    Neither,
}

/// A heal needs a partition in force when it fires: one installed, in time order (faults at the
/// same time in file order), after the last heal. Decided from the entries as written, so an
/// entry with another error does not also make a later heal look misplaced.
fn check_heals(specs: &[Spanned<FaultSpec>], errors: &mut Vec<Diagnostic>) {
    let mut timeline: Vec<(Duration, Cutting, Location)> = specs
        .iter()
        .map(|spec| {
            let f = &spec.value;
            let cutting = match (f.partition.is_some(), f.heal.is_some()) {
                (true, false) => Cutting::Partition,
                (false, true) => Cutting::Heal,
                _ => Cutting::Neither,
            };
            (f.at.0, cutting, spec.referenced)
        })
        .collect();
    // The same stable sort as the fault timeline: file order among faults at the same time.
    timeline.sort_by_key(|&(t, _, _)| t);
    let (mut partition_at, mut healed_at): (Option<Duration>, Option<Duration>) = (None, None);
    for (k, &(t, cutting, here)) in timeline.iter().enumerate() {
        match cutting {
            Cutting::Partition => {
                partition_at = Some(t);
                healed_at = None;
            }
            Cutting::Heal => {
                if let (Some(p), Some(h)) = (partition_at, healed_at) {
                    errors.push(at(
                        here,
                        format!(
                            "heal at {t} but no partition is in force then: the partition at {p} was already healed at {h}; remove this heal, or add a partition before it"
                        ),
                    ));
                } else if partition_at.is_none() {
                    let next = timeline[k + 1..]
                        .iter()
                        .find(|&&(_, c, _)| c == Cutting::Partition)
                        .map(|&(next, _, _)| next);
                    let advice = match next {
                        Some(n) if n == t => format!(
                            "the partition at {n} is listed after it, and faults at the same time apply in file order; list the heal after the partition"
                        ),
                        Some(n) => format!(
                            "the first partition is at {n}; move the heal after it, or remove it"
                        ),
                        None => "the scenario has no partition; remove the heal, or add a partition before it (a crash or churn is not a partition)".to_owned(),
                    };
                    errors.push(at(
                        here,
                        format!("heal at {t} but no partition is in force then; {advice}"),
                    ));
                }
                healed_at = Some(t);
            }
            Cutting::Neither => {}
        }
    }
}

pub(crate) struct SelectorContext<'a> {
    pub n: u64,
    pub nodes: &'a [NodeInfo],
    pub regions: &'a [String],
}

impl SelectorContext<'_> {
    /// Checks that every static term of a selector names something that exists, and that every
    /// intersection can select a node.
    pub(crate) fn check(&self, set: &Spanned<NodeSetSpec>, errors: &mut Vec<Diagnostic>) {
        for term in &set.value.terms {
            if let Term::And(parts) = term {
                parts
                    .iter()
                    .for_each(|p| self.check_term(p, set.referenced, errors));
                let (random, pool) = self.random_pool(term);
                let size = pool.iter().filter(|&&p| p).count() as u64;
                let fixed = parts
                    .iter()
                    .any(|p| !p.is_random() && self.static_nodes(p).is_some());
                if fixed && size == 0 {
                    errors.push(at(
                        set.referenced,
                        format!(
                            "`{term}` selects no node: no node matches every part of the `&`; check the `role:` and `region:` of the node groups"
                        ),
                    ));
                } else if let Some(Term::RandomCount(k)) = random
                    && fixed
                    && u64::from(*k) > size
                {
                    errors.push(at(
                        set.referenced,
                        format!(
                            "`{term}`: random:{k} asks for more nodes than the other parts select ({size}); ask for at most {size}, or a share such as random:10%"
                        ),
                    ));
                }
            } else {
                self.check_term(term, set.referenced, errors);
            }
        }
    }

    fn check_term(&self, term: &Term, here: Location, errors: &mut Vec<Diagnostic>) {
        let problem = match term {
            Term::Index(i) if u64::from(*i) >= self.n => Some(format!(
                "node {i} does not exist; nodes are numbered 0 to {}",
                self.n.saturating_sub(1)
            )),
            Term::Range(_, b) if u64::from(*b) >= self.n => Some(format!(
                "range ends at node {b}, which does not exist; nodes are numbered 0 to {}",
                self.n.saturating_sub(1)
            )),
            Term::Region(name) if !self.regions.iter().any(|r| r == name) => Some(format!(
                "no node is in region `{name}`; regions in this scenario: {}",
                if self.regions.is_empty() {
                    "none".to_owned()
                } else {
                    self.regions.join(", ")
                }
            )),
            Term::Role(name) if self.nodes.iter().all(|n| n.role.name() != name) => {
                let mut have: Vec<&str> = self.nodes.iter().map(|n| n.role.name()).collect();
                have.sort_unstable();
                have.dedup();
                Some(format!(
                    "no node has role `{name}`; the roles here are {}",
                    have.join(", ")
                ))
            }
            Term::RandomCount(k) if u64::from(*k) > self.n => Some(format!(
                "random:{k} asks for more nodes than the scenario has ({})",
                self.n
            )),
            _ => None,
        };
        if let Some(message) = problem {
            errors.push(at(here, message));
        }
    }

    /// The nodes a selector selects whatever the run does: the union of its terms that draw
    /// nothing at random and do not depend on the run (`live`, `crashed`), intersections of such
    /// terms included. A random or run-dependent term may add nodes, never remove them.
    fn certain_nodes(&self, set: &NodeSetSpec) -> Vec<bool> {
        let mut certain = vec![false; self.nodes.len()];
        for term in &set.terms {
            let selected = match term {
                Term::And(parts) => parts
                    .iter()
                    .map(|p| self.static_nodes(p))
                    .collect::<Option<Vec<_>>>()
                    .map(|sets| {
                        sets.into_iter()
                            .reduce(|acc, s| acc.into_iter().zip(s).map(|(x, y)| x && y).collect())
                            .unwrap_or_default()
                    }),
                single => self.static_nodes(single),
            };
            if let Some(selected) = selected {
                certain.iter_mut().zip(selected).for_each(|(c, s)| *c |= s);
            }
        }
        certain
    }

    /// The first node two selectors both select whatever the run does, and how many they share
    /// so; `None` if only a random or run-dependent term could make them overlap.
    pub(crate) fn shared_node(&self, a: &NodeSetSpec, b: &NodeSetSpec) -> Option<(usize, usize)> {
        let (a, b) = (self.certain_nodes(a), self.certain_nodes(b));
        let first = (0..a.len()).find(|&i| a[i] && b[i])?;
        Some((first, shared_count(&a, &b)))
    }

    /// Reports a selector that can never select a node: no terms at all (`[]`), or only random
    /// draws of zero nodes (`random:0`, or a share that rounds to none). Terms that name what
    /// does not exist are reported by `check`; `live` and `crashed` depend on the run.
    pub(crate) fn check_not_empty(
        &self,
        set: &Spanned<NodeSetSpec>,
        what: &str,
        errors: &mut Vec<Diagnostic>,
    ) {
        if set.value.terms.iter().all(|t| self.draws_nothing(t)) {
            errors.push(at(
                set.referenced,
                format!(
                    "{what} (`{}`) selects no node; give it at least one node, or remove it",
                    show_selector(&set.value)
                ),
            ));
        }
    }

    /// Whether a term is a random draw of zero nodes whatever the run does.
    fn draws_nothing(&self, term: &Term) -> bool {
        let n = self.nodes.len() as f64;
        match term {
            Term::RandomCount(k) => *k == 0,
            Term::RandomShare(p) => (p * n).round() == 0.0,
            Term::And(_) => {
                // A share is of the nodes the other parts select, at most the static pool.
                let (random, pool) = self.random_pool(term);
                let size = pool.iter().filter(|&&p| p).count() as f64;
                // An empty pool is reported by `check` (the intersection selects no node).
                size > 0.0
                    && match random {
                        Some(Term::RandomCount(k)) => *k == 0,
                        Some(Term::RandomShare(p)) => (p * size).round() == 0.0,
                        _ => false,
                    }
            }
            _ => false,
        }
    }

    /// The nodes a term selects whatever the run does; `None` for terms that depend on it (live,
    /// crashed, random).
    fn static_nodes(&self, term: &Term) -> Option<Vec<bool>> {
        let n = self.nodes.len();
        let of = |f: &dyn Fn(usize) -> bool| Some((0..n).map(f).collect());
        match term {
            Term::Index(i) => of(&|k| k == *i as usize),
            Term::Range(a, b) => of(&|k| (*a as usize..=*b as usize).contains(&k)),
            Term::All => of(&|_| true),
            Term::Region(name) => {
                let region = self.regions.iter().position(|r| r == name);
                of(&|k| region.is_some() && self.nodes[k].region.map(usize::from) == region)
            }
            Term::Role(name) => of(&|k| self.nodes[k].role.name() == name),
            Term::Live | Term::Crashed | Term::RandomCount(_) | Term::RandomShare(_) => None,
            Term::And(_) => None,
        }
    }

    /// A clause's random part, if it has one, and the nodes it selects or draws from, as far as
    /// is known before the run (terms that depend on the run count as every node).
    fn random_pool<'t>(&self, term: &'t Term) -> (Option<&'t Term>, Vec<bool>) {
        let n = self.nodes.len();
        let parts = match term {
            Term::And(parts) => parts.as_slice(),
            single => std::slice::from_ref(single),
        };
        let mut pool = vec![true; n];
        let mut random = None;
        for part in parts {
            if part.is_random() {
                random = Some(part);
            } else if let Some(selected) = self.static_nodes(part) {
                pool.iter_mut().zip(selected).for_each(|(p, s)| *p &= s);
            }
        }
        (random, pool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten nodes: 0-4 validators in region a, 5-9 workers in region b.
    fn faults(entries: &str) -> Result<Scenario, Vec<Diagnostic>> {
        load_str(&format!(
            "name: t\nseed: 1\nduration: 30s\n\
             nodes:\n  - {{ count: 5, region: a, role: validator }}\n  - {{ count: 5, region: b, role: worker }}\n\
             protocol: {{ gossip: {{}} }}\nfaults:\n{entries}"
        ))
    }

    fn messages(entries: &str) -> Vec<String> {
        faults(entries)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.message)
            .collect()
    }

    #[test]
    fn disjoint_static_sets_and_random_terms_pass() {
        for plan in [
            "{ groups: [\"region:a\", \"role:worker & 5-7\"] }",
            "{ groups: [\"0-4\", \"random:3\"] }",
            "{ groups: [\"0-2\", \"live\", \"region:a & random:50%\"] }",
            "{ between: [\"role:validator\", \"region:b\"] }",
            "{ between: [\"0\", \"crashed\"] }",
            "{ one_way: { from: \"0-4\", to: \"5, random:2\" } }",
        ] {
            let entry = format!("  - {{ at: 1s, partition: {plan} }}\n");
            assert!(faults(&entry).is_ok(), "{plan}: {:?}", messages(&entry));
        }
    }

    #[test]
    fn sets_sharing_a_node_through_static_terms_are_errors() {
        for (plan, wanted) in [
            (
                "{ groups: [\"region:a & role:validator\", \"3-6\"] }",
                "partition groups 1 (`region:a & role:validator`) and 2 (`3-6`) both select node 3 (and 1 more)",
            ),
            (
                "{ groups: [\"0\", \"5\", \"all, random:1\"] }",
                "partition groups 1 (`0`) and 3 (`all, random:1`) both select node 0;",
            ),
            (
                "{ between: [\"9\", \"region:b\"] }",
                "the two sets of `between` (`9` and `region:b`) both select node 9;",
            ),
            (
                "{ groups: [\"0-4\", \"random:0\"] }",
                "partition group 2 (`random:0`) selects no node",
            ),
            (
                "{ between: [\"0\", \"region:b & random:1%\"] }",
                "the second set of `between` (`region:b & random:1%`) selects no node",
            ),
            ("{ isolate: [] }", "`isolate` (`[]`) selects no node"),
        ] {
            let got = messages(&format!("  - {{ at: 1s, partition: {plan} }}\n"));
            assert!(
                got.iter().any(|m| m.contains(wanted)),
                "{plan}: wanted `{wanted}` in {got:?}"
            );
        }
    }

    #[test]
    fn heals_need_a_partition_in_force_in_time_order() {
        // A later partition replaces the first; one heal ends both. At the same time, file order.
        let fine = "  - { at: 8s, heal: all }\n  - { at: 2s, partition: { isolate: 1 } }\n\
                    - { at: 4s, partition: { by_region: true } }\n  - { at: 10s, crash: 1 }\n\
                    - { at: 12s, partition: { between: [0, 9] } }\n  - { at: 12s, heal: all }\n";
        let fine = fine.replace("\n-", "\n  -");
        assert!(faults(&fine).is_ok(), "{:?}", messages(&fine));
        let got = messages(
            "  - { at: 2s, partition: { isolate: 1 } }\n  - { at: 3s, heal: all }\n  - { at: 5s, heal: all }\n  - { at: 1s, heal: all }\n",
        );
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            got.iter().any(|m| m.starts_with(
                "heal at 1s but no partition is in force then; the first partition is at 2s"
            )),
            "{got:?}"
        );
        assert!(
            got.iter().any(|m| m.starts_with(
                "heal at 5s but no partition is in force then: the partition at 2s was already healed at 3s"
            )),
            "{got:?}"
        );
    }
}
