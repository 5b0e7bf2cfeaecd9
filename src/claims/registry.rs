//! The claims about the network, as data: each row of the claims table, each figure inside a row,
//! the scenario file that measures it, the metric, the comparison and whether `--quick` runs it.
//! What each claim assumes is written in its scenario file's header comment (and docs/claims.md),
//! not here; this table only binds a claim to its file and metric.

/// A row of the claims table, in the order docs/claims.md gives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Row {
    Uptime,
    Latency,
    Byzantine,
    Scale,
    Failures,
    Partitions,
    Geography,
}

impl Row {
    pub const ALL: [Row; 7] = [
        Row::Uptime,
        Row::Latency,
        Row::Byzantine,
        Row::Scale,
        Row::Failures,
        Row::Partitions,
        Row::Geography,
    ];

    /// The row's short name (usable with `--only`).
    pub fn id(self) -> &'static str {
        match self {
            Row::Uptime => "uptime",
            Row::Latency => "latency",
            Row::Byzantine => "byzantine",
            Row::Scale => "scale",
            Row::Failures => "failures",
            Row::Partitions => "partitions",
            Row::Geography => "geography",
        }
    }

    /// The row as the network's description states it.
    pub fn as_stated(self) -> &'static str {
        match self {
            Row::Uptime => "99.9 % with automatic failover",
            Row::Latency => {
                "< 50 ms average; 42 / 48 / 52 / 61 ms at 100 / 1k / 10k / 100k concurrent tasks"
            }
            Row::Byzantine => {
                "up to 33 % malicious nodes; Byzantine nodes detected and isolated in 2.3 s"
            }
            Row::Scale => {
                "linear from 10 to 10,000+ nodes; discovery 0.8 / 1.4 / 2.1 / 2.9 s and consensus \
                 1.2 / 1.8 / 2.4 / 3.2 s at 10 / 100 / 1k / 10k nodes"
            }
            Row::Failures => "10 % and 25 % -> 100 % operational, 33 % -> 98 %, 50 % -> 85 %",
            Row::Partitions => {
                "automatic detection; full convergence 45 s after healing; Merkle reconciliation"
            }
            Row::Geography => {
                "12 ms same datacenter, 45 ms same continent, 120 ms cross-continental, 67 ms \
                 global mesh"
            }
        }
    }
}

/// Which side of the stated figure the measured mean must be on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    /// A time or latency: the claim holds if the figure is this or less (faster is fine).
    AtMost,
    /// A share or count: the claim holds if the figure is this or more.
    AtLeast,
}

impl Cmp {
    pub fn symbol(self) -> &'static str {
        match self {
            Cmp::AtMost => "<=",
            Cmp::AtLeast => ">=",
        }
    }
}

/// A figure measured by a scenario file.
#[derive(Clone, Copy, Debug)]
pub struct Measure {
    /// The file under the claims folder (scenarios/claims/).
    pub file: &'static str,
    pub metric: &'static str,
    pub cmp: Cmp,
    /// The stated figure, in the metric's unit.
    pub figure: f64,
    pub unit: &'static str,
    /// Part of the CI-sized subset (`--quick`).
    pub quick: bool,
    /// The setting is not the one stated (a committee instead of every node): holding is
    /// reported as `holds under stated assumptions`, with this as the assumption.
    pub qualified: Option<&'static str>,
    /// The figure it is drawn in, and its x there.
    pub plot: Option<(Plot, &'static str, f64)>,
}

/// How a claim is judged.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Measured(Measure),
    /// Cannot hold as stated; the reason is computed (see `verdict::cannot_hold_reason`).
    CannotHold {
        validators: u64,
    },
    /// Not measured, with the reason.
    NotMeasured(&'static str),
}

#[derive(Clone, Copy, Debug)]
pub struct Claim {
    /// Unique, usable with `--only`.
    pub name: &'static str,
    pub row: Row,
    /// The figure as stated.
    pub stated: &'static str,
    pub kind: Kind,
}

/// The figures drawn next to the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plot {
    Discovery,
    Consensus,
    Latency,
    Failures,
    Byzantine,
    Convergence,
}

/// How a figure is drawn: file stem, title, axes.
pub struct PlotSpec {
    pub plot: Plot,
    pub stem: &'static str,
    pub title: &'static str,
    pub x_desc: &'static str,
    pub y_desc: &'static str,
    pub log_x: bool,
    pub log_y: bool,
}

pub const PLOTS: [PlotSpec; 6] = [
    PlotSpec {
        plot: Plot::Discovery,
        stem: "claims-discovery",
        title: "Discovery time against nodes",
        x_desc: "nodes in the network (log scale)",
        y_desc: "mean join time, ms (log scale)",
        log_x: true,
        log_y: true,
    },
    PlotSpec {
        plot: Plot::Consensus,
        stem: "claims-consensus",
        title: "Consensus time against nodes",
        x_desc: "nodes in the network (log scale)",
        y_desc: "mean client latency, ms (log scale)",
        log_x: true,
        log_y: true,
    },
    PlotSpec {
        plot: Plot::Latency,
        stem: "claims-latency",
        title: "Message latency against concurrent tasks",
        x_desc: "tasks in service at once (log scale)",
        y_desc: "mean one-way message latency, ms",
        log_x: true,
        log_y: false,
    },
    PlotSpec {
        plot: Plot::Failures,
        stem: "claims-failures",
        title: "Operational fraction against random failures",
        x_desc: "nodes crashed at once, %",
        y_desc: "tasks completed within deadline (share)",
        log_x: false,
        log_y: false,
    },
    PlotSpec {
        plot: Plot::Byzantine,
        stem: "claims-byzantine",
        title: "Time to detect Byzantine workers against their share",
        x_desc: "Byzantine workers, %",
        y_desc: "mean time to first quarantine, ms",
        log_x: false,
        log_y: false,
    },
    PlotSpec {
        plot: Plot::Convergence,
        stem: "claims-convergence",
        title: "Convergence after healing against partition length",
        x_desc: "partition length, s",
        y_desc: "time to one state root after the heal, ms",
        log_x: false,
        log_y: false,
    },
];

/// The series of a measured curve (one label per line in a figure).
const ALL_VALIDATORS: &str = "every node a validator";
const COMMITTEE: &str = "committee of 100 validators";
const MEASURED: &str = "measured";

const fn at_most(
    file: &'static str,
    metric: &'static str,
    figure: f64,
    unit: &'static str,
) -> Measure {
    Measure {
        file,
        metric,
        cmp: Cmp::AtMost,
        figure,
        unit,
        quick: false,
        qualified: None,
        plot: None,
    }
}

const fn at_least(
    file: &'static str,
    metric: &'static str,
    figure: f64,
    unit: &'static str,
) -> Measure {
    Measure {
        cmp: Cmp::AtLeast,
        ..at_most(file, metric, figure, unit)
    }
}

const fn quick(m: Measure) -> Measure {
    Measure { quick: true, ..m }
}

const fn drawn(m: Measure, plot: Plot, series: &'static str, x: f64) -> Measure {
    Measure {
        plot: Some((plot, series, x)),
        ..m
    }
}

const fn measured(name: &'static str, row: Row, stated: &'static str, m: Measure) -> Claim {
    Claim {
        name,
        row,
        stated,
        kind: Kind::Measured(m),
    }
}

const LATENCY: &str = "net.latency_ms.mean";
const JOIN: &str = "kad.join_ms.mean";
const CLIENT: &str = "pbft.client_latency_ms.mean";
const SUCCESS: &str = "tasks.success_rate";
const DETECT: &str = "detection.by_fault.wrong_result.detect_ms.mean";
const CONVERGE: &str = "registry.converge_ms";

/// Every claim, in report order.
pub const CLAIMS: &[Claim] = &[
    measured(
        "uptime",
        Row::Uptime,
        "99.9 % uptime with automatic failover",
        quick(at_least("uptime.yaml", SUCCESS, 0.999, "share")),
    ),
    measured(
        "latency.average",
        Row::Latency,
        "< 50 ms average (judged at 1k concurrent tasks)",
        at_most("latency-c1000.yaml", LATENCY, 50.0, "ms"),
    ),
    measured(
        "latency.c100",
        Row::Latency,
        "42 ms at 100 concurrent tasks",
        quick(drawn(
            at_most("latency-c100.yaml", LATENCY, 42.0, "ms"),
            Plot::Latency,
            MEASURED,
            100.0,
        )),
    ),
    measured(
        "latency.c1000",
        Row::Latency,
        "48 ms at 1k concurrent tasks",
        drawn(
            at_most("latency-c1000.yaml", LATENCY, 48.0, "ms"),
            Plot::Latency,
            MEASURED,
            1000.0,
        ),
    ),
    measured(
        "latency.c10000",
        Row::Latency,
        "52 ms at 10k concurrent tasks",
        drawn(
            at_most("latency-c10000.yaml", LATENCY, 52.0, "ms"),
            Plot::Latency,
            MEASURED,
            10_000.0,
        ),
    ),
    measured(
        "latency.c100000",
        Row::Latency,
        "61 ms at 100k concurrent tasks",
        drawn(
            at_most("latency-c100000.yaml", LATENCY, 61.0, "ms"),
            Plot::Latency,
            MEASURED,
            100_000.0,
        ),
    ),
    measured(
        "byzantine.tolerate-33",
        Row::Byzantine,
        "up to 33 % malicious nodes (33 % of the workers lying: at most 1 % wrong results once detected)",
        quick(at_most(
            "byzantine-33.yaml",
            "tasks.wrong_share_after",
            0.01,
            "share",
        )),
    ),
    measured(
        "byzantine.detect-10",
        Row::Byzantine,
        "detected in 2.3 s (10 % malicious workers)",
        drawn(
            at_most("byzantine-10.yaml", DETECT, 2300.0, "ms"),
            Plot::Byzantine,
            MEASURED,
            10.0,
        ),
    ),
    measured(
        "byzantine.detect-20",
        Row::Byzantine,
        "detected in 2.3 s (20 % malicious workers)",
        drawn(
            at_most("byzantine-20.yaml", DETECT, 2300.0, "ms"),
            Plot::Byzantine,
            MEASURED,
            20.0,
        ),
    ),
    measured(
        "byzantine.detect-33",
        Row::Byzantine,
        "detected in 2.3 s (33 % malicious workers)",
        quick(drawn(
            at_most("byzantine-33.yaml", DETECT, 2300.0, "ms"),
            Plot::Byzantine,
            MEASURED,
            33.0,
        )),
    ),
    measured(
        "byzantine.isolate",
        Row::Byzantine,
        "isolated in 2.3 s (an equivocating PBFT primary, isolated by every honest node)",
        quick(at_most(
            "byzantine-isolate.yaml",
            "detection.by_fault.equivocate.isolate_all_ms.mean",
            2300.0,
            "ms",
        )),
    ),
    Claim {
        name: "scale.linear",
        row: Row::Scale,
        stated: "linear from 10 to 10,000+ nodes",
        kind: Kind::NotMeasured(
            "the statement names no quantity that grows linearly (cost per node, throughput, \
             time?), so there is nothing to compare; the discovery and consensus figures below \
             are its measurable content",
        ),
    },
    measured(
        "discovery.n10",
        Row::Scale,
        "discovery 0.8 s at 10 nodes",
        quick(drawn(
            at_most("discovery-n10.yaml", JOIN, 800.0, "ms"),
            Plot::Discovery,
            MEASURED,
            10.0,
        )),
    ),
    measured(
        "discovery.n100",
        Row::Scale,
        "discovery 1.4 s at 100 nodes",
        quick(drawn(
            at_most("discovery-n100.yaml", JOIN, 1400.0, "ms"),
            Plot::Discovery,
            MEASURED,
            100.0,
        )),
    ),
    measured(
        "discovery.n1000",
        Row::Scale,
        "discovery 2.1 s at 1k nodes",
        drawn(
            at_most("discovery-n1000.yaml", JOIN, 2100.0, "ms"),
            Plot::Discovery,
            MEASURED,
            1000.0,
        ),
    ),
    measured(
        "discovery.n10000",
        Row::Scale,
        "discovery 2.9 s at 10k nodes",
        drawn(
            at_most("discovery-n10000.yaml", JOIN, 2900.0, "ms"),
            Plot::Discovery,
            MEASURED,
            10_000.0,
        ),
    ),
    measured(
        "consensus.n10",
        Row::Scale,
        "consensus 1.2 s at 10 nodes",
        quick(drawn(
            at_most("consensus-n10.yaml", CLIENT, 1200.0, "ms"),
            Plot::Consensus,
            ALL_VALIDATORS,
            10.0,
        )),
    ),
    measured(
        "consensus.n100",
        Row::Scale,
        "consensus 1.8 s at 100 nodes",
        quick(drawn(
            at_most("consensus-n100.yaml", CLIENT, 1800.0, "ms"),
            Plot::Consensus,
            ALL_VALIDATORS,
            100.0,
        )),
    ),
    measured(
        "consensus.n1000",
        Row::Scale,
        "consensus 2.4 s at 1k nodes",
        drawn(
            at_most("consensus-n1000.yaml", CLIENT, 2400.0, "ms"),
            Plot::Consensus,
            ALL_VALIDATORS,
            1000.0,
        ),
    ),
    Claim {
        name: "consensus.n10000",
        row: Row::Scale,
        stated: "consensus 3.2 s at 10k nodes (PBFT over all 10,000 nodes)",
        kind: Kind::CannotHold { validators: 10_000 },
    },
    measured(
        "consensus.committee-n10000",
        Row::Scale,
        "consensus 3.2 s at 10k nodes, by a committee of 100 validators",
        Measure {
            qualified: Some(
                "consensus by a committee of k = 100 validators (f = 33) inside the 10,000-node \
                 network, not by every node",
            ),
            ..drawn(
                at_most("consensus-committee-n10000.yaml", CLIENT, 3200.0, "ms"),
                Plot::Consensus,
                COMMITTEE,
                10_000.0,
            )
        },
    ),
    measured(
        "failures.10",
        Row::Failures,
        "10 % random failures -> 100 % operational",
        quick(drawn(
            at_least("failures-10.yaml", SUCCESS, 1.0, "share"),
            Plot::Failures,
            MEASURED,
            10.0,
        )),
    ),
    measured(
        "failures.25",
        Row::Failures,
        "25 % random failures -> 100 % operational",
        quick(drawn(
            at_least("failures-25.yaml", SUCCESS, 1.0, "share"),
            Plot::Failures,
            MEASURED,
            25.0,
        )),
    ),
    measured(
        "failures.33",
        Row::Failures,
        "33 % random failures -> 98 % operational",
        quick(drawn(
            at_least("failures-33.yaml", SUCCESS, 0.98, "share"),
            Plot::Failures,
            MEASURED,
            33.0,
        )),
    ),
    measured(
        "failures.50",
        Row::Failures,
        "50 % random failures -> 85 % operational",
        quick(drawn(
            at_least("failures-50.yaml", SUCCESS, 0.85, "share"),
            Plot::Failures,
            MEASURED,
            50.0,
        )),
    ),
    measured(
        "partitions.detection",
        Row::Partitions,
        "automatic detection (every one of 200 nodes detects a split of two regions against two)",
        quick(at_least(
            "partition-30.yaml",
            "partition.detected_nodes_per_cut",
            200.0,
            "nodes",
        )),
    ),
    measured(
        "partitions.converge-30",
        Row::Partitions,
        "full convergence 45 s after healing (30 s partition)",
        quick(drawn(
            at_most("partition-30.yaml", CONVERGE, 45_000.0, "ms"),
            Plot::Convergence,
            MEASURED,
            30.0,
        )),
    ),
    measured(
        "partitions.converge-60",
        Row::Partitions,
        "full convergence 45 s after healing (60 s partition)",
        drawn(
            at_most("partition-60.yaml", CONVERGE, 45_000.0, "ms"),
            Plot::Convergence,
            MEASURED,
            60.0,
        ),
    ),
    measured(
        "partitions.converge-120",
        Row::Partitions,
        "full convergence 45 s after healing (120 s partition)",
        drawn(
            at_most("partition-120.yaml", CONVERGE, 45_000.0, "ms"),
            Plot::Convergence,
            MEASURED,
            120.0,
        ),
    ),
    measured(
        "partitions.merkle",
        Row::Partitions,
        "Merkle reconciliation (every node ends on one state root)",
        quick(at_least(
            "partition-30.yaml",
            "registry.converged",
            1.0,
            "share of runs",
        )),
    ),
    Claim {
        name: "geography.same-datacenter",
        row: Row::Geography,
        stated: "12 ms same datacenter",
        kind: Kind::NotMeasured(
            "latency within a datacenter is an input of the simulator (`intra_region_rtt` of the \
             `regions` model, 1 ms by default), not something it can measure; the published \
             matrix has no intra-datacenter figures",
        ),
    },
    measured(
        "geography.same-continent",
        Row::Geography,
        "45 ms same continent",
        quick(at_most("geo-same-continent.yaml", LATENCY, 45.0, "ms")),
    ),
    measured(
        "geography.cross-continent",
        Row::Geography,
        "120 ms cross-continental",
        quick(at_most("geo-cross-continent.yaml", LATENCY, 120.0, "ms")),
    ),
    measured(
        "geography.global-mesh",
        Row::Geography,
        "67 ms global mesh",
        quick(at_most("geo-global-mesh.yaml", LATENCY, 67.0, "ms")),
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_row_has_a_claim() {
        let mut names: Vec<&str> = CLAIMS.iter().map(|c| c.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "duplicate claim names");
        for row in Row::ALL {
            assert!(CLAIMS.iter().any(|c| c.row == row), "{row:?} has no claim");
        }
        // Report order follows the rows.
        assert!(CLAIMS.windows(2).all(|w| w[0].row <= w[1].row));
    }

    #[test]
    fn every_claim_file_exists_and_every_row_has_a_quick_claim_or_none_measured() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/claims");
        for claim in CLAIMS {
            if let Kind::Measured(m) = claim.kind {
                assert!(dir.join(m.file).is_file(), "{}: {}", claim.name, m.file);
                assert!(m.figure.is_finite());
            }
        }
        for row in Row::ALL {
            let measured = CLAIMS
                .iter()
                .filter(|c| c.row == row)
                .any(|c| matches!(c.kind, Kind::Measured(_)));
            let quick = CLAIMS
                .iter()
                .filter(|c| c.row == row)
                .any(|c| matches!(c.kind, Kind::Measured(m) if m.quick));
            assert_eq!(
                measured, quick,
                "{row:?}: the quick subset covers every measured row"
            );
        }
    }
}
