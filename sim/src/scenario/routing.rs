//! The routing layer's keys (`layers: routing:`: models, task classes, workers, the router) and
//! the task workload (`workload: tasks:`), and their validation.

use std::collections::BTreeMap;
use std::sync::Arc;

use prsm_protocol::Duration;
use prsm_protocol::routing::{
    Catalog, ClassId, ModelSpec, Policy, RouterConfig, ServiceTime, TaskClass, Weights,
    WorkerConfig,
};
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use super::validate::{Diagnostic, SelectorContext, at};
use super::{DurationSpec, NodeSetSpec};
use crate::model::arrivals::{Process, TraceRow};

// ---- Spec: what the YAML says. ----

/// `layers: routing:`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingSpec {
    /// The policy: multi-factor (default), random, round-robin, jsq, least-latency, least-loaded.
    #[serde(default)]
    pub router: Option<Spanned<String>>,
    /// Choices per task for `jsq` (power of d choices).
    #[serde(default)]
    pub d: Option<Spanned<u64>>,
    #[serde(default)]
    pub weights: Option<Spanned<WeightsSpec>>,
    #[serde(default)]
    pub retries: Option<Spanned<u64>>,
    #[serde(default)]
    pub accept_timeout: Option<DurationSpec>,
    #[serde(default)]
    pub reports: Option<Spanned<ReportsSpec>>,
    #[serde(default)]
    pub candidates_max: Option<Spanned<u64>>,
    #[serde(default)]
    pub inflight_max: Option<Spanned<u64>>,
    #[serde(default)]
    pub rtt_ref: Option<DurationSpec>,
    #[serde(default)]
    pub local_first: Option<bool>,
    /// Model name -> family.
    pub models: Spanned<BTreeMap<String, Spanned<String>>>,
    pub classes: Spanned<BTreeMap<String, Spanned<ClassSpec>>>,
    pub workers: Spanned<Vec<Spanned<WorkerSpec>>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsSpec {
    pub capability: f64,
    pub load: f64,
    pub latency: f64,
    pub reliability: f64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportsSpec {
    #[serde(default)]
    pub interval: Option<DurationSpec>,
    #[serde(default)]
    pub max_age: Option<DurationSpec>,
    #[serde(default)]
    pub subscribers_max: Option<u64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassSpec {
    pub model: Spanned<String>,
    #[serde(default = "default_bytes")]
    pub input_bytes: u32,
    #[serde(default = "default_bytes")]
    pub output_bytes: u32,
    #[serde(default)]
    pub compute: Option<Spanned<f64>>,
    pub deadline: Spanned<DurationSpec>,
    #[serde(default)]
    pub workers: Option<Spanned<u64>>,
    #[serde(default)]
    pub redundancy: Option<Spanned<u64>>,
    #[serde(default)]
    pub residency: Option<Spanned<String>>,
}

fn default_bytes() -> u32 {
    1_024
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSpec {
    pub nodes: Spanned<NodeSetSpec>,
    /// Model name -> service time for one unit of compute.
    pub models: Spanned<BTreeMap<String, Spanned<ServiceSpec>>>,
    #[serde(default)]
    pub slots: Option<Spanned<u64>>,
    #[serde(default)]
    pub queue: Option<Spanned<u64>>,
    /// An honest worker's own error rate (a wrong but well-formed result by accident).
    #[serde(default)]
    pub error_rate: Option<Spanned<f64>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ServiceSpec {
    Fixed(DurationSpec),
    Exponential(DurationSpec),
    Lognormal { median: DurationSpec, sigma: f64 },
}

/// One stream of tasks under `workload: tasks:`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskStreamSpec {
    #[serde(default)]
    pub class: Option<Spanned<String>>,
    /// Where tasks arrive (default: any node that runs routing).
    #[serde(default)]
    pub origins: Option<Spanned<NodeSetSpec>>,
    #[serde(default)]
    pub poisson: Option<Spanned<PoissonSpec>>,
    #[serde(default)]
    pub bursty: Option<Spanned<BurstySpec>>,
    #[serde(default)]
    pub diurnal: Option<Spanned<DiurnalSpec>>,
    /// A CSV file (`time,origin,class`), relative to the scenario file.
    #[serde(default)]
    pub trace: Option<Spanned<String>>,
    #[serde(default)]
    pub start: Option<DurationSpec>,
    #[serde(default)]
    pub stop: Option<DurationSpec>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoissonSpec {
    /// Tasks per second.
    pub rate: f64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstySpec {
    pub on_rate: f64,
    #[serde(default)]
    pub off_rate: f64,
    /// Mean length of a burst and of a quiet period (exponential).
    pub on: DurationSpec,
    pub off: DurationSpec,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiurnalSpec {
    /// Mean tasks per second.
    pub rate: f64,
    pub amplitude: f64,
    pub period: DurationSpec,
    /// When each region peaks (one stream per region listed); without it one stream peaking at 0.
    #[serde(default)]
    pub peaks: Option<BTreeMap<String, DurationSpec>>,
}

// ---- Resolved. ----

/// The routing layer as a scenario configures it.
#[derive(Clone, Debug, Default)]
pub struct RoutingSettings {
    pub catalog: Arc<Catalog>,
    pub router: Arc<RouterConfig>,
    /// Worker groups, in file order; a node in several takes the first.
    pub workers: Vec<(NodeSetSpec, WorkerConfig)>,
    /// The scenario's regions (names for the per-region metrics).
    pub regions: Vec<String>,
}

/// One stream of task arrivals.
#[derive(Clone, Debug)]
pub struct TaskStream {
    /// None for a trace, whose rows name their class.
    pub class: Option<ClassId>,
    pub origins: Option<NodeSetSpec>,
    /// Only origins in this region (a diurnal stream's region).
    pub region: Option<u16>,
    pub source: TaskSource,
}

#[derive(Clone, Debug)]
pub enum TaskSource {
    Process {
        process: Process,
        from: Duration,
        until: Duration,
    },
    /// A trace file; the CLI reads it (relative to the scenario file) into `rows` before the run.
    Trace {
        path: String,
        line: u64,
        column: u64,
        rows: Option<Arc<[TraceRow]>>,
    },
}

/// The most tasks a scenario may generate (expected count over all streams).
pub const TASKS_MAX: f64 = 20_000_000.0;

fn policy(name: &str, d: u8) -> Option<Policy> {
    Some(match name {
        "multi-factor" => Policy::MultiFactor,
        "random" => Policy::Random,
        "round-robin" => Policy::RoundRobin,
        "jsq" => Policy::Jsq { d },
        "least-latency" => Policy::LeastLatency,
        "least-loaded" => Policy::LeastLoaded,
        _ => return None,
    })
}

/// The router names `router:` accepts.
pub const ROUTERS: [&str; 6] = [
    "multi-factor",
    "random",
    "round-robin",
    "jsq",
    "least-latency",
    "least-loaded",
];

fn bounded(
    v: &Option<Spanned<u64>>,
    default: u64,
    lo: u64,
    hi: u64,
    what: &str,
    errors: &mut Vec<Diagnostic>,
) -> u64 {
    match v {
        None => default,
        Some(s) if s.value < lo || s.value > hi => {
            errors.push(at(
                s.referenced,
                format!("{what} is {}; use {lo} to {hi}", s.value),
            ));
            default
        }
        Some(s) => s.value,
    }
}

pub(crate) fn resolve_routing(
    spec: &Spanned<RoutingSpec>,
    ctx: &SelectorContext<'_>,
    errors: &mut Vec<Diagnostic>,
) -> RoutingSettings {
    let r = &spec.value;
    let d = bounded(&r.d, 2, 1, 16, "layers.routing.d", errors) as u8;
    let policy = match &r.router {
        None => Policy::MultiFactor,
        Some(name) => policy(&name.value, d).unwrap_or_else(|| {
            errors.push(at(
                name.referenced,
                format!(
                    "unknown router `{}`; use one of {}",
                    name.value,
                    ROUTERS.join(", ")
                ),
            ));
            Policy::MultiFactor
        }),
    };
    let weights = match &r.weights {
        None => Weights::default(),
        Some(w) => {
            let v = &w.value;
            let all = [v.capability, v.load, v.latency, v.reliability];
            if all.iter().any(|x| !x.is_finite() || *x < 0.0) {
                errors.push(at(
                    w.referenced,
                    "layers.routing.weights must be 0 or more (e.g. capability 0.40, load 0.25, latency 0.20, reliability 0.15)",
                ));
            } else if all.iter().all(|x| *x == 0.0) {
                errors.push(at(
                    w.referenced,
                    "layers.routing.weights are all 0, so every candidate scores the same; give at least one a positive weight",
                ));
            }
            Weights {
                capability: v.capability,
                load: v.load,
                latency: v.latency,
                reliability: v.reliability,
            }
        }
    };
    let defaults = RouterConfig::default();
    let reports = r.reports.as_ref().map(|s| &s.value);
    let report_interval = reports
        .and_then(|s| s.interval)
        .map_or(defaults.report_interval, |d| d.0);
    let report_max_age = reports
        .and_then(|s| s.max_age)
        .map_or(defaults.report_max_age, |d| d.0);
    let accept_timeout = r.accept_timeout.map_or(defaults.accept_timeout, |d| d.0);
    if accept_timeout == Duration::ZERO {
        errors.push(at(
            spec.referenced,
            "layers.routing.accept_timeout must be greater than 0, e.g. `1s`",
        ));
    }
    let rtt_ref = r.rtt_ref.map_or(defaults.rtt_ref, |d| d.0);
    if rtt_ref == Duration::ZERO {
        errors.push(at(
            spec.referenced,
            "layers.routing.rtt_ref must be greater than 0, e.g. `100ms`",
        ));
    }
    let router = RouterConfig {
        spot_check: defaults.spot_check,
        spot_check_watched: defaults.spot_check_watched,
        slow_after: defaults.slow_after,
        trust_prior: defaults.trust_prior,
        policy,
        weights,
        retries: bounded(&r.retries, 3, 0, 100, "layers.routing.retries", errors) as u8,
        accept_timeout,
        report_interval,
        report_max_age,
        subscribers_max: reports
            .and_then(|s| s.subscribers_max)
            .unwrap_or(defaults.subscribers_max as u64)
            .min(4_096) as usize,
        candidates_max: bounded(
            &r.candidates_max,
            512,
            1,
            65_536,
            "layers.routing.candidates_max",
            errors,
        ) as usize,
        inflight_max: bounded(
            &r.inflight_max,
            100_000,
            1,
            10_000_000,
            "layers.routing.inflight_max",
            errors,
        ) as usize,
        rtt_ref,
        local_first: r.local_first.unwrap_or(true),
    };

    // Models, by name order.
    let model_names: Vec<&String> = r.models.value.keys().collect();
    if model_names.is_empty() {
        errors.push(at(
            r.models.referenced,
            "layers.routing.models is empty; name each model with its family, e.g. `{ llama-70b: llm, clip: vision }`",
        ));
    }
    if model_names.len() > usize::from(u16::MAX) {
        errors.push(at(r.models.referenced, "too many models (at most 65,535)"));
    }
    let models: Vec<ModelSpec> = r
        .models
        .value
        .iter()
        .map(|(name, family)| ModelSpec {
            name: name.clone(),
            family: family.value.clone(),
        })
        .collect();
    let model_id = |name: &str| {
        model_names
            .iter()
            .position(|m| *m == name)
            .map(|i| i as u16)
    };

    // Workers.
    let mut workers = Vec::new();
    let mut hosted: Vec<u16> = Vec::new();
    for w in &r.workers.value {
        ctx.check(&w.value.nodes, errors);
        let mut list = Vec::new();
        for (name, service) in &w.value.models.value {
            let Some(m) = model_id(name) else {
                errors.push(at(
                    service.referenced,
                    format!(
                        "unknown model `{name}`; add it to layers.routing.models (known: {})",
                        known(&model_names)
                    ),
                ));
                continue;
            };
            let time = match &service.value {
                ServiceSpec::Fixed(d) => ServiceTime::Fixed(d.0),
                ServiceSpec::Exponential(d) => ServiceTime::Exponential { mean: d.0 },
                ServiceSpec::Lognormal { median, sigma } => {
                    if !sigma.is_finite() || *sigma < 0.0 || *sigma > 10.0 {
                        errors.push(at(
                            service.referenced,
                            "lognormal sigma must be between 0 and 10",
                        ));
                    }
                    ServiceTime::LogNormal {
                        median: median.0,
                        sigma: *sigma,
                    }
                }
            };
            hosted.push(m);
            list.push((m, time));
        }
        if w.value.models.value.is_empty() {
            errors.push(at(
                w.value.models.referenced,
                "a worker group hosts no model; list at least one with its service time, e.g. `{ llama-70b: { exponential: 200ms } }`",
            ));
        }
        let slots = bounded(&w.value.slots, 1, 1, 4_096, "slots", errors) as u16;
        let queue = bounded(&w.value.queue, 64, 0, 1_000_000, "queue", errors) as u32;
        workers.push((
            w.value.nodes.value.clone(),
            WorkerConfig {
                models: list,
                slots,
                queue_max: queue,
                error_rate: w.value.error_rate.as_ref().map_or(0.0, |e| {
                    if !(0.0..1.0).contains(&e.value) {
                        errors.push(at(
                            e.referenced,
                            "error_rate is a probability from 0 up to (not including) 1, e.g. 0.01",
                        ));
                    }
                    e.value.clamp(0.0, 1.0)
                }),
                faults: Vec::new(),
                rate_limit: None,
            },
        ));
    }
    if r.workers.value.is_empty() {
        errors.push(at(
            r.workers.referenced,
            "layers.routing.workers is empty; declare at least one group, e.g. `- { nodes: \"role:worker\", models: { llama-70b: { exponential: 200ms } }, slots: 4, queue: 32 }`",
        ));
    }

    // Classes, by name order.
    let mut classes = Vec::new();
    let mut class_places = Vec::new();
    let probe = Catalog::new(models.clone(), Vec::new());
    for (name, c) in &r.classes.value {
        let v = &c.value;
        let model = match model_id(&v.model.value) {
            Some(m) => m,
            None => {
                errors.push(at(
                    v.model.referenced,
                    format!(
                        "class `{name}` needs unknown model `{}`; add it to layers.routing.models (known: {})",
                        v.model.value,
                        known(&model_names)
                    ),
                ));
                0
            }
        };
        if model_id(&v.model.value).is_some() && probe.credit(model, &hosted) == 0.0 {
            errors.push(at(
                v.model.referenced,
                format!(
                    "no worker offers `{}` or a model of its family `{}`, so no task of class `{name}` could run; host it in a group under layers.routing.workers",
                    v.model.value,
                    models[usize::from(model)].family
                ),
            ));
        }
        if v.deadline.value.0 == Duration::ZERO {
            errors.push(at(
                v.deadline.referenced,
                format!("class `{name}`: the deadline must be greater than 0, e.g. `5s`"),
            ));
        }
        let compute = v.compute.as_ref().map_or(1.0, |c| c.value);
        if let Some(c) = &v.compute
            && !(c.value.is_finite() && c.value > 0.0 && c.value <= 1e6)
        {
            errors.push(at(
                c.referenced,
                "compute must be greater than 0 (1: one unit of the worker's service time)",
            ));
        }
        let n_workers = bounded(&v.workers, 1, 1, 16, "workers", errors) as u8;
        let redundancy = bounded(&v.redundancy, 1, 1, 15, "redundancy", errors) as u8;
        if usize::from(n_workers) * usize::from(redundancy) > 64 {
            errors.push(at(
                c.referenced,
                "workers x redundancy is over 64 copies of one task",
            ));
        }
        let residency = v.residency.as_ref().and_then(|res| {
            let i = ctx.regions.iter().position(|r| *r == res.value);
            if i.is_none() {
                errors.push(at(
                    res.referenced,
                    format!(
                        "residency `{}` names a region with no nodes; use one of the node groups' regions ({})",
                        res.value,
                        if ctx.regions.is_empty() {
                            "none: give node groups a `region:`".to_owned()
                        } else {
                            ctx.regions.join(", ")
                        }
                    ),
                ));
            }
            i.map(|i| i as u16)
        });
        class_places.push(c.referenced);
        classes.push(TaskClass {
            name: name.clone(),
            model,
            input_bytes: v.input_bytes,
            output_bytes: v.output_bytes,
            compute,
            deadline: v.deadline.value.0,
            workers: n_workers,
            redundancy,
            residency,
        });
    }
    if classes.is_empty() {
        errors.push(at(
            r.classes.referenced,
            "layers.routing.classes is empty; define at least one, e.g. `chat: { model: llama-70b, deadline: 5s }`",
        ));
    }
    let catalog = Catalog::new(models, classes);
    check_copies(&catalog, &workers, &class_places, ctx, errors);
    RoutingSettings {
        catalog: Arc::new(catalog),
        router: Arc::new(router),
        workers,
        regions: ctx.regions.to_vec(),
    }
}

/// A class whose copies (workers x redundancy, each on a distinct worker) outnumber the worker
/// nodes that can serve it (capability, and residency if any) could never run: a located error.
/// Random selectors are drawn with a fixed stream here; only their sizes matter.
fn check_copies(
    catalog: &Catalog,
    workers: &[(NodeSetSpec, WorkerConfig)],
    places: &[Location],
    ctx: &SelectorContext<'_>,
    errors: &mut Vec<Diagnostic>,
) {
    use rand_core::SeedableRng;
    let live = vec![true; ctx.nodes.len()];
    let topo = crate::topology::Topology {
        nodes: ctx.nodes,
        regions: ctx.regions,
        live: &live,
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    // Each node's group: the first that selects it.
    let mut group_of: Vec<Option<usize>> = vec![None; ctx.nodes.len()];
    for (g, (set, _)) in workers.iter().enumerate() {
        for id in topo.resolve(set, |_| true, &mut rng) {
            if let Some(slot) = group_of.get_mut(id.index())
                && slot.is_none()
            {
                *slot = Some(g);
            }
        }
    }
    for (class, here) in catalog.classes.iter().zip(places) {
        let able = group_of
            .iter()
            .enumerate()
            .filter(|&(i, g)| {
                g.is_some_and(|g| {
                    let hosted: Vec<_> = workers[g].1.models.iter().map(|&(m, _)| m).collect();
                    catalog.credit(class.model, &hosted) > 0.0
                }) && class
                    .residency
                    .is_none_or(|r| ctx.nodes[i].region == Some(r))
            })
            .count();
        let copies = class.copies();
        if able > 0 && copies > able {
            errors.push(at(
                *here,
                format!(
                    "class `{}` runs {copies} copies on distinct workers (workers x redundancy), but only {able} worker nodes can serve it; lower `redundancy` or `workers`, or add workers",
                    class.name
                ),
            ));
        }
    }
}

fn known(names: &[&String]) -> String {
    names
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resolves `workload: tasks:` against the routing settings (None: the scenario has no routing
/// layer, already reported).
pub(crate) fn resolve_tasks(
    streams: &Spanned<Vec<Spanned<TaskStreamSpec>>>,
    routing: Option<&RoutingSettings>,
    duration: Duration,
    ctx: &SelectorContext<'_>,
    errors: &mut Vec<Diagnostic>,
) -> Vec<TaskStream> {
    let mut out = Vec::new();
    let mut expected = 0.0;
    if streams.value.is_empty() {
        errors.push(at(
            streams.referenced,
            "workload.tasks is empty; add a stream, e.g. `- { class: chat, poisson: { rate: 100 } }`",
        ));
    }
    let class_names: Vec<&str> = routing
        .map(|r| r.catalog.classes.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    for s in &streams.value {
        let v = &s.value;
        let here = s.referenced;
        if let Some(o) = &v.origins {
            ctx.check(o, errors);
        }
        let from = v.start.map_or(Duration::ZERO, |d| d.0);
        let until = v.stop.map_or(duration, |d| d.0).min(duration);
        let kinds = [
            v.poisson.is_some(),
            v.bursty.is_some(),
            v.diurnal.is_some(),
            v.trace.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            errors.push(at(
                here,
                "a task stream takes exactly one arrival process: `poisson:`, `bursty:`, `diurnal:` or `trace:`",
            ));
            continue;
        }
        let class = match (&v.class, &v.trace) {
            (Some(c), None) => match class_names.iter().position(|n| *n == c.value) {
                Some(i) => Some(i as ClassId),
                None => {
                    if routing.is_some() {
                        errors.push(at(
                            c.referenced,
                            format!(
                                "unknown task class `{}`; define it under layers.routing.classes (known: {})",
                                c.value,
                                class_names.join(", ")
                            ),
                        ));
                    }
                    None
                }
            },
            (None, None) => {
                errors.push(at(
                    here,
                    format!(
                        "a task stream needs `class:` (one of {})",
                        class_names.join(", ")
                    ),
                ));
                None
            }
            (Some(c), Some(_)) => {
                errors.push(at(
                    c.referenced,
                    "a trace names each task's class in its rows; remove `class:`",
                ));
                None
            }
            (None, Some(_)) => None,
        };
        let rate_ok = |rate: f64, loc: Location, errors: &mut Vec<Diagnostic>| {
            if !(rate.is_finite() && (0.0..=1e7).contains(&rate)) {
                errors.push(at(
                    loc,
                    format!(
                        "rate {rate} is not a number of tasks per second between 0 and 10,000,000"
                    ),
                ));
                false
            } else {
                true
            }
        };
        let window = until.as_nanos().saturating_sub(from.as_nanos()) as f64 / 1e9;
        let push = |process: Process, region: Option<u16>, out: &mut Vec<TaskStream>| {
            out.push(TaskStream {
                class,
                origins: v.origins.as_ref().map(|o| o.value.clone()),
                region,
                source: TaskSource::Process {
                    process,
                    from,
                    until,
                },
            });
        };
        if let Some(p) = &v.poisson {
            if rate_ok(p.value.rate, p.referenced, errors) {
                expected += p.value.rate * window;
                push(Process::Poisson { rate: p.value.rate }, None, &mut out);
            }
        } else if let Some(b) = &v.bursty {
            let bv = &b.value;
            if rate_ok(bv.on_rate, b.referenced, errors)
                && rate_ok(bv.off_rate, b.referenced, errors)
            {
                if bv.on.0 == Duration::ZERO || bv.off.0 == Duration::ZERO {
                    errors.push(at(
                        b.referenced,
                        "bursty `on:` and `off:` are mean period lengths and must be greater than 0",
                    ));
                } else {
                    let (on, off) = (bv.on.0.as_secs_f64(), bv.off.0.as_secs_f64());
                    expected += (bv.on_rate * on + bv.off_rate * off) / (on + off) * window;
                    push(
                        Process::Bursty {
                            on_rate: bv.on_rate,
                            off_rate: bv.off_rate,
                            on_mean: bv.on.0,
                            off_mean: bv.off.0,
                        },
                        None,
                        &mut out,
                    );
                }
            }
        } else if let Some(d) = &v.diurnal {
            let dv = &d.value;
            if !(0.0..=1.0).contains(&dv.amplitude) {
                errors.push(at(
                    d.referenced,
                    "diurnal amplitude must be between 0 and 1",
                ));
            } else if dv.period.0 == Duration::ZERO {
                errors.push(at(
                    d.referenced,
                    "diurnal period must be greater than 0, e.g. `24h`",
                ));
            } else if rate_ok(dv.rate, d.referenced, errors) {
                let process = |peak: Duration| Process::Diurnal {
                    mean_rate: dv.rate,
                    amplitude: dv.amplitude,
                    period: dv.period.0,
                    peak,
                };
                match &dv.peaks {
                    None => {
                        expected += dv.rate * window;
                        push(process(Duration::ZERO), None, &mut out);
                    }
                    Some(peaks) => {
                        for (region, peak) in peaks {
                            match ctx.regions.iter().position(|r| r == region) {
                                Some(i) => {
                                    expected += dv.rate * window;
                                    push(process(peak.0), Some(i as u16), &mut out);
                                }
                                None => errors.push(at(
                                    d.referenced,
                                    format!(
                                        "diurnal peaks: `{region}` is not a region of the node groups ({})",
                                        ctx.regions.join(", ")
                                    ),
                                )),
                            }
                        }
                    }
                }
            }
        } else if let Some(t) = &v.trace {
            out.push(TaskStream {
                class: None,
                origins: v.origins.as_ref().map(|o| o.value.clone()),
                region: None,
                source: TaskSource::Trace {
                    path: t.value.clone(),
                    line: t.referenced.line(),
                    column: t.referenced.column(),
                    rows: None,
                },
            });
        }
    }
    if expected > TASKS_MAX {
        errors.push(at(
            streams.referenced,
            format!(
                "the task streams would submit about {expected:.0} tasks; the limit is {TASKS_MAX:.0}: lower the rates or shorten the run"
            ),
        ));
    }
    out
}
