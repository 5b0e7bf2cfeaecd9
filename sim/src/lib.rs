//! prsm-sim: the deterministic discrete-event simulator that drives prsm's protocols.
//!
//! A [`scenario`] file is parsed and validated into a [`Scenario`]; [`run`] drives it through the
//! [`engine`] with a [`model`] for its protocol, over the [`network`] and fault timeline, on the
//! [`kernel`]'s seeded streams and ordered queue; [`metrics`] and [`judge`] turn the run into
//! figures and verdicts.

pub mod engine;
pub mod kernel;
pub mod metrics;
pub mod model;
pub mod network;
pub mod run;
pub mod scenario;
pub mod sweep;
pub mod topology;

pub use engine::{FaultRecord, RunError, RunOutput};
pub use metrics::{Metric, MetricRange, Metrics, Table, catalog, metric_range};
pub use model::{Violation, ViolationKind};
pub use run::{Verdict, judge, run, run_with_progress};
pub use scenario::{Diagnostic, Scenario, load_str};
