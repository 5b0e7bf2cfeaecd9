//! The detection layer's keys (`layers: detection:`) and their validation.

use prsm_protocol::Duration;
use prsm_protocol::detection::{DetectionConfig, Opinions, Sprt};
use prsm_protocol::routing::RateLimit;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::DurationSpec;
use super::validate::{Diagnostic, at};

/// `layers: detection:`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionSpec {
    /// The sequential test: honest and faulty error rates, and its own error rates.
    #[serde(default)]
    pub sprt: Option<Spanned<SprtSpec>>,
    /// The Beta prior of a peer with no record (a new identity starts at its mean).
    #[serde(default)]
    pub prior: Option<Spanned<PriorSpec>>,
    #[serde(default)]
    pub half_life: Option<DurationSpec>,
    #[serde(default)]
    pub watch_below: Option<Spanned<f64>>,
    #[serde(default)]
    pub probation: Option<Spanned<u64>>,
    #[serde(default)]
    pub quarantine: Option<Spanned<DurationSpec>>,
    /// Spot-check rates, per copy sent: for peers in good standing, and for watched peers.
    #[serde(default)]
    pub spot_check: Option<Spanned<f64>>,
    #[serde(default)]
    pub spot_check_watched: Option<Spanned<f64>>,
    /// Unexplained delay after which an answer counts as late.
    #[serde(default)]
    pub slow_after: Option<DurationSpec>,
    /// Second-hand opinions (off without this key).
    #[serde(default)]
    pub opinions: Option<Spanned<OpinionsSpec>>,
    /// Tasks a worker takes from one sender (off without this key).
    #[serde(default)]
    pub rate_limit: Option<Spanned<RateLimitSpec>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    pub per_s: f64,
    #[serde(default)]
    pub burst: Option<f64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SprtSpec {
    pub p0: Spanned<f64>,
    pub p1: Spanned<f64>,
    pub alpha: Spanned<f64>,
    pub beta: Spanned<f64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorSpec {
    pub good: f64,
    pub bad: f64,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpinionsSpec {
    #[serde(default)]
    pub every: Option<DurationSpec>,
    #[serde(default)]
    pub weight: Option<f64>,
    #[serde(default)]
    pub second_hand_max: Option<f64>,
    #[serde(default)]
    pub vouch_min: Option<Spanned<f64>>,
    #[serde(default)]
    pub vouch_age: Option<DurationSpec>,
}

/// The detection layer as the scenario configures it: the layer's settings (keys, PBFT
/// identity, seeds and slander are filled per node by the model) and the router's side.
#[derive(Clone, Debug)]
pub struct DetectionSettings {
    pub config: DetectionConfig,
    pub spot_check: f64,
    pub spot_check_watched: f64,
    pub slow_after: Duration,
    pub rate_limit: Option<RateLimit>,
}

/// A probability strictly between 0 and 1.
fn open_unit(v: &Spanned<f64>, what: &str, errors: &mut Vec<Diagnostic>) -> f64 {
    if !(v.value > 0.0 && v.value < 1.0) {
        errors.push(at(
            v.referenced,
            format!("{what} must be between 0 and 1 (both excluded), e.g. 0.01"),
        ));
    }
    v.value
}

/// A rate from 0 to 1.
fn closed_unit(v: &Spanned<f64>, what: &str, errors: &mut Vec<Diagnostic>) -> f64 {
    if !(0.0..=1.0).contains(&v.value) {
        errors.push(at(
            v.referenced,
            format!("{what} must be between 0 and 1, e.g. 0.05"),
        ));
    }
    v.value.clamp(0.0, 1.0)
}

pub fn resolve_detection(
    spec: &Spanned<DetectionSpec>,
    errors: &mut Vec<Diagnostic>,
) -> DetectionSettings {
    let d = &spec.value;
    let defaults = DetectionConfig::default();
    let sprt = match &d.sprt {
        None => defaults.sprt,
        Some(s) => {
            let p0 = open_unit(&s.value.p0, "layers.detection.sprt.p0", errors);
            let p1 = open_unit(&s.value.p1, "layers.detection.sprt.p1", errors);
            let alpha = open_unit(&s.value.alpha, "layers.detection.sprt.alpha", errors);
            let beta = open_unit(&s.value.beta, "layers.detection.sprt.beta", errors);
            if p0 >= p1 {
                errors.push(at(
                    s.value.p1.referenced,
                    "layers.detection.sprt.p1 (a faulty peer's error rate) must be above p0 (an honest peer's)",
                ));
            }
            if alpha + beta >= 1.0 {
                errors.push(at(
                    s.referenced,
                    "layers.detection.sprt: alpha + beta must be below 1",
                ));
            }
            Sprt {
                p0,
                p1,
                alpha,
                beta,
            }
        }
    };
    let prior = match &d.prior {
        None => defaults.prior,
        Some(p) => {
            if !(p.value.good > 0.0 && p.value.bad > 0.0 && p.value.good + p.value.bad <= 1e6) {
                errors.push(at(
                    p.referenced,
                    "layers.detection.prior: good and bad are pseudo-counts above 0, e.g. `{ good: 1, bad: 2 }`",
                ));
            }
            (p.value.good.max(1e-9), p.value.bad.max(1e-9))
        }
    };
    let watch_below = d.watch_below.as_ref().map_or(defaults.watch_below, |w| {
        open_unit(w, "layers.detection.watch_below", errors)
    });
    let probation = d.probation.as_ref().map_or(defaults.probation, |p| {
        if p.value > 1_000_000 {
            errors.push(at(
                p.referenced,
                "layers.detection.probation must be at most 1000000",
            ));
        }
        p.value.min(1_000_000) as u32
    });
    let quarantine_for = d.quarantine.as_ref().map_or(defaults.quarantine_for, |q| {
        if q.value.0 == Duration::ZERO {
            errors.push(at(
                q.referenced,
                "layers.detection.quarantine must be greater than 0, e.g. `60s`",
            ));
        }
        q.value.0
    });
    let spot_check = d.spot_check.as_ref().map_or(0.05, |v| {
        closed_unit(v, "layers.detection.spot_check", errors)
    });
    let spot_check_watched = d.spot_check_watched.as_ref().map_or(0.5, |v| {
        closed_unit(v, "layers.detection.spot_check_watched", errors)
    });
    let opinions = d.opinions.as_ref().map(|o| {
        let base = Opinions::default();
        let v = &o.value;
        let weight = v.weight.unwrap_or(base.weight);
        let second_hand_max = v.second_hand_max.unwrap_or(base.second_hand_max);
        if !(weight >= 0.0 && second_hand_max >= 0.0 && weight <= 1e6 && second_hand_max <= 1e6) {
            errors.push(at(
                o.referenced,
                "layers.detection.opinions: weight and second_hand_max are observations, from 0 up",
            ));
        }
        let every = v.every.map_or(base.every, |e| e.0);
        if every == Duration::ZERO {
            errors.push(at(
                o.referenced,
                "layers.detection.opinions.every must be greater than 0, e.g. `5s`",
            ));
        }
        Opinions {
            every,
            ratings_max: base.ratings_max,
            weight,
            second_hand_max,
            vouch_min: v.vouch_min.as_ref().map_or(base.vouch_min, |m| {
                closed_unit(m, "layers.detection.opinions.vouch_min", errors)
            }),
            vouch_age: v.vouch_age.map_or(base.vouch_age, |a| a.0),
        }
    });
    let rate_limit = d.rate_limit.as_ref().map(|r| {
        let burst = r.value.burst.unwrap_or(2.0 * r.value.per_s);
        if !(r.value.per_s > 0.0 && r.value.per_s <= 1e6 && (1.0..=1e7).contains(&burst)) {
            errors.push(at(
                r.referenced,
                "layers.detection.rate_limit: per_s above 0 (tasks a second from one sender), burst at least 1, e.g. `{ per_s: 50, burst: 100 }`",
            ));
        }
        RateLimit {
            per_s: r.value.per_s,
            burst,
        }
    });
    DetectionSettings {
        rate_limit,
        config: DetectionConfig {
            sprt,
            prior,
            half_life: d.half_life.map_or(defaults.half_life, |h| h.0),
            watch_below,
            probation,
            quarantine_for,
            opinions,
            ..defaults
        },
        spot_check,
        spot_check_watched,
        slow_after: d.slow_after.map_or(Duration::from_secs(1), |s| s.0),
    }
}

impl Default for DetectionSettings {
    fn default() -> Self {
        DetectionSettings {
            config: DetectionConfig::default(),
            spot_check: 0.05,
            spot_check_watched: 0.5,
            slow_after: Duration::from_secs(1),
            rate_limit: None,
        }
    }
}
