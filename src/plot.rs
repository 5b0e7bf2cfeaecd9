//! Plots with plotters, as PNG and SVG, drawn from the CSV files a run or sweep wrote (so
//! `prsm plot DIR` redraws exactly what `prsm run` drew). Text is rendered with a bundled
//! DejaVu Sans through ab_glyph, so no system font library is needed.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{Context, Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::sweep::Manifest;

const FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
const SIZE: (u32, u32) = (1200, 800);
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bundled font is valid (tested by every plot test); a failure would only mean text
        // is missing from plots, never a crash.
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// A figure that can be drawn on any plotters backend.
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>;
}

type Chart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// Draws the series labels in a white box at `position`.
fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    position: SeriesLabelPosition,
    font: u32,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font(("sans-serif", font))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// The legend mark of a line series.
fn line_mark(color: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 30, y)], color.stroke_width(3))
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

/// Draws `figure` to `<stem>.png` and `<stem>.svg`; returns the PNG's file name.
fn save(dir: &Path, stem: &str, figure: &impl Figure) -> Result<PathBuf> {
    fonts();
    let png = dir.join(format!("{stem}.png"));
    {
        let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        figure.draw(&root)?;
        root.present().map_err(err)?;
    }
    let svg = dir.join(format!("{stem}.svg"));
    {
        let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        figure.draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(PathBuf::from(format!("{stem}.png")))
}

/// Reads a CSV into its header and rows of text.
fn read_csv(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let header = reader.headers()?.iter().map(str::to_owned).collect();
    let rows = reader
        .records()
        .map(|r| r.map(|r| r.iter().map(str::to_owned).collect()))
        .collect::<Result<_, _>>()?;
    Ok((header, rows))
}

fn column(header: &[String], name: &str) -> Result<usize> {
    header
        .iter()
        .position(|h| h == name)
        .ok_or_else(|| anyhow!("column `{name}` is missing"))
}

fn num(s: &str) -> f64 {
    s.parse().unwrap_or(f64::NAN)
}

/// A range that contains every finite value, with a margin; never empty.
fn span(values: impl Iterator<Item = f64>, floor_zero: bool) -> Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    if floor_zero {
        lo = lo.min(0.0);
    }
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        hi.abs().max(1.0) * 0.1
    };
    (if floor_zero && lo >= 0.0 {
        lo
    } else {
        lo - pad
    })..hi + pad
}

// ---- Runs ----

struct LatencyCdf {
    series: Vec<(String, Vec<(f64, f64)>)>,
}

impl LatencyCdf {
    /// Latencies spanning two orders of magnitude are drawn on a log axis.
    fn log_x(&self) -> bool {
        let values = || {
            self.series
                .iter()
                .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
                .filter(|v| *v > 0.0)
        };
        let (lo, hi) = (
            values().fold(f64::INFINITY, f64::min),
            values().fold(0.0, f64::max),
        );
        lo.is_finite() && hi / lo >= 100.0
    }
}

impl Figure for LatencyCdf {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let log_x = self.log_x();
        // Zero latencies have no logarithm; they are drawn at the smallest positive value.
        let floor = self
            .series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|p| p.1))
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min);
        let tx = move |v: f64| if log_x { v.max(floor).log10() } else { v };
        let x = span(
            self.series
                .iter()
                .flat_map(|(_, pts)| pts.iter().map(|p| tx(p.1))),
            !log_x,
        );
        let mut chart = ChartBuilder::on(root)
            .caption("Latency CDF", ("sans-serif", 36))
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(80)
            .build_cartesian_2d(x, 0f64..1.0)
            .map_err(err)?;
        let x_label = move |v: &f64| tick(if log_x { 10f64.powf(*v) } else { *v });
        chart
            .configure_mesh()
            .x_desc(if log_x {
                "latency (ms, log scale)"
            } else {
                "latency (ms)"
            })
            .y_desc("fraction of samples at or below")
            .x_label_formatter(&x_label)
            .label_style(("sans-serif", 20))
            .axis_desc_style(("sans-serif", 24))
            .draw()
            .map_err(err)?;
        for (i, (name, points)) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    points.iter().map(|&(q, v)| (tx(v), q)),
                    color.stroke_width(3),
                ))
                .map_err(err)?
                .label(describe(name))
                .legend(line_mark(color));
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft, 22)?;
        Ok(())
    }
}

/// A tick label with at most three significant decimals and no trailing zeros.
fn tick(v: f64) -> String {
    let magnitude = v.abs();
    let rounded = if magnitude >= 100.0 {
        v.round()
    } else if magnitude >= 1.0 {
        (v * 10.0).round() / 10.0
    } else {
        (v * 1000.0).round() / 1000.0
    };
    crate::terminal::format_value(rounded)
}

fn describe(metric: &str) -> String {
    match metric {
        "net.latency_ms" => "one-way message latency".to_owned(),
        "gossip.latency_ms" => "rumor publish-to-delivery latency".to_owned(),
        other => other.to_owned(),
    }
}

/// A shaded window of fault activity.
struct Window {
    from: f64,
    to: f64,
    kind: &'static str,
}

struct TimeSeries {
    time: Vec<f64>,
    delivered_per_s: Vec<f64>,
    sent_per_s: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    windows: Vec<Window>,
}

const CRASH_SHADE: RGBColor = RGBColor(244, 180, 180);
const PARTITION_SHADE: RGBColor = RGBColor(180, 200, 244);

impl TimeSeries {
    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        title: &str,
        y_desc: &str,
        lines: &[(&str, &[f64])],
    ) -> Result<()> {
        let x = span(self.time.iter().copied().chain([0.0]), true);
        let y = span(lines.iter().flat_map(|(_, v)| v.iter().copied()), true);
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 30))
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(90)
            .build_cartesian_2d(x.clone(), y.clone())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("virtual time (s)")
            .y_desc(y_desc)
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .label_style(("sans-serif", 18))
            .axis_desc_style(("sans-serif", 22))
            .draw()
            .map_err(err)?;
        let mut labelled = [false, false];
        for w in &self.windows {
            let (shade, slot, label) = match w.kind {
                "crash" => (CRASH_SHADE, 0, "nodes crashed"),
                _ => (PARTITION_SHADE, 1, "network partitioned"),
            };
            let rect = Rectangle::new(
                [(w.from, y.start), (w.to.min(x.end), y.end)],
                shade.mix(0.5).filled(),
            );
            let drawn = chart.draw_series(std::iter::once(rect)).map_err(err)?;
            if !labelled[slot] {
                labelled[slot] = true;
                drawn.label(label).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 8), (x + 30, y + 8)], shade.filled())
                });
            }
        }
        for (i, (name, values)) in lines.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            // Intervals without data (NaN) break the line instead of drawing through them.
            let mut segment = Vec::new();
            let mut segments = Vec::new();
            for (&t, &v) in self.time.iter().zip(values.iter()) {
                if v.is_finite() {
                    segment.push((t, v));
                } else if !segment.is_empty() {
                    segments.push(std::mem::take(&mut segment));
                }
            }
            segments.push(segment);
            for (k, seg) in segments.into_iter().enumerate() {
                let drawn = chart
                    .draw_series(LineSeries::new(seg, color.stroke_width(3)).point_size(3))
                    .map_err(err)?;
                if k == 0 {
                    drawn.label(*name).legend(line_mark(color));
                }
            }
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight, 18)?;
        Ok(())
    }
}

impl Figure for TimeSeries {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let panels = root.split_evenly((2, 1));
        self.panel(
            &panels[0],
            "Throughput over time",
            "messages per second",
            &[
                ("delivered", &self.delivered_per_s),
                ("sent", &self.sent_per_s),
            ],
        )?;
        self.panel(
            &panels[1],
            "One-way latency per interval",
            "latency (ms)",
            &[("p50", &self.p50), ("p99", &self.p99)],
        )?;
        Ok(())
    }
}

/// Fault windows from faults.csv: a crash lasts until the next restart (or the end), a partition
/// until the next heal or partition.
fn windows(rows: &[Vec<String>], header: &[String], end: f64) -> Result<Vec<Window>> {
    let (t, kind) = (column(header, "time_s")?, column(header, "kind")?);
    let mut out = Vec::new();
    let (mut crash_from, mut partition_from): (Option<f64>, Option<f64>) = (None, None);
    for row in rows {
        let at = num(&row[t]);
        match row[kind].as_str() {
            "crash" => {
                crash_from.get_or_insert(at);
            }
            "restart" => {
                if let Some(from) = crash_from.take() {
                    out.push(Window {
                        from,
                        to: at,
                        kind: "crash",
                    });
                }
            }
            "partition" => {
                if let Some(from) = partition_from.replace(at) {
                    out.push(Window {
                        from,
                        to: at,
                        kind: "partition",
                    });
                }
            }
            "heal" => {
                if let Some(from) = partition_from.take() {
                    out.push(Window {
                        from,
                        to: at,
                        kind: "partition",
                    });
                }
            }
            _ => {}
        }
    }
    if let Some(from) = crash_from {
        out.push(Window {
            from,
            to: end,
            kind: "crash",
        });
    }
    if let Some(from) = partition_from {
        out.push(Window {
            from,
            to: end,
            kind: "partition",
        });
    }
    Ok(out)
}

/// Draws a run's plots from its CSV files; returns the PNG names.
pub fn plot_run_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut figures = Vec::new();
    let (header, rows) = read_csv(&dir.join("latency_cdf.csv"))?;
    let (s, q, v) = (
        column(&header, "series")?,
        column(&header, "quantile")?,
        column(&header, "latency_ms")?,
    );
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for row in &rows {
        if series.last().is_none_or(|(name, _)| name != &row[s]) {
            series.push((row[s].clone(), Vec::new()));
        }
        if let Some((_, points)) = series.last_mut() {
            points.push((num(&row[q]), num(&row[v])));
        }
    }
    figures.push(save(dir, "latency_cdf", &LatencyCdf { series })?);

    let (header, rows) = read_csv(&dir.join("timeseries.csv"))?;
    let col = |name: &str| -> Result<Vec<f64>> {
        let c = column(&header, name)?;
        Ok(rows.iter().map(|r| num(&r[c])).collect())
    };
    let time = col("time_s")?;
    let intervals: Vec<f64> = time
        .iter()
        .enumerate()
        .map(|(i, &t)| if i == 0 { t } else { t - time[i - 1] }.max(1e-9))
        .collect();
    let rate = |v: Vec<f64>| {
        v.iter()
            .zip(&intervals)
            .map(|(x, dt)| x / dt)
            .collect::<Vec<f64>>()
    };
    let end = time.last().copied().unwrap_or(0.0);
    let (fheader, frows) = read_csv(&dir.join("faults.csv"))?;
    let figure = TimeSeries {
        delivered_per_s: rate(col("messages_delivered")?),
        sent_per_s: rate(col("messages_sent")?),
        p50: col("latency_p50_ms")?,
        p99: col("latency_p99_ms")?,
        windows: windows(&frows, &fheader, end)?,
        time,
    };
    figures.push(save(dir, "timeseries", &figure)?);
    Ok(figures)
}

// ---- Sweeps ----

/// One sweep point on a curve: x, mean, and the 95 % confidence interval.
#[derive(Clone, Copy)]
struct CurvePoint {
    x: f64,
    mean: f64,
    low: f64,
    high: f64,
}

/// A labelled line of a sweep curve.
type Curve = (String, Vec<CurvePoint>);

struct SweepCurve {
    title: String,
    x_desc: String,
    y_desc: String,
    log_x: bool,
    /// One line per value of the second axis.
    lines: Vec<Curve>,
}

impl Figure for SweepCurve {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let tx = |x: f64| if self.log_x { x.log10() } else { x };
        let all = || self.lines.iter().flat_map(|(_, p)| p.iter());
        let x = span(all().map(|p| tx(p.x)), false);
        let y = span(all().flat_map(|p| [p.mean, p.low, p.high]), false);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 32))
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(100)
            .build_cartesian_2d(x, y)
            .map_err(err)?;
        let log_x = self.log_x;
        let x_label = move |v: &f64| tick(if log_x { 10f64.powf(*v) } else { *v });
        chart
            .configure_mesh()
            .x_desc(self.x_desc.as_str())
            .y_desc(self.y_desc.as_str())
            .x_label_formatter(&x_label)
            .y_label_formatter(&|v| tick(*v))
            .label_style(("sans-serif", 20))
            .axis_desc_style(("sans-serif", 24))
            .draw()
            .map_err(err)?;
        for (i, (label, points)) in self.lines.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let banded = |p: &&CurvePoint| p.low.is_finite() && p.high.is_finite();
            let upper = points.iter().filter(banded).map(|p| (tx(p.x), p.high));
            let lower = points.iter().rev().filter(banded).map(|p| (tx(p.x), p.low));
            let band: Vec<(f64, f64)> = upper.chain(lower).collect();
            if band.len() >= 4 {
                chart
                    .draw_series(std::iter::once(Polygon::new(band, color.mix(0.2).filled())))
                    .map_err(err)?;
            }
            let line: Vec<(f64, f64)> = points.iter().map(|p| (tx(p.x), p.mean)).collect();
            chart
                .draw_series(LineSeries::new(line.clone(), color.stroke_width(3)))
                .map_err(err)?
                .label(label.as_str())
                .legend(line_mark(color));
            chart
                .draw_series(line.into_iter().map(|p| Circle::new(p, 5, color.filled())))
                .map_err(err)?;
        }
        // Rising curves leave the upper left free, falling ones the upper right.
        let rising = self.lines.iter().any(|(_, p)| {
            p.first()
                .zip(p.last())
                .is_some_and(|(a, b)| b.mean >= a.mean)
        });
        legend(
            &mut chart,
            if rising {
                SeriesLabelPosition::UpperLeft
            } else {
                SeriesLabelPosition::UpperRight
            },
            20,
        )?;
        Ok(())
    }
}

/// Draws one curve per plotted metric against the first axis, with 95 % confidence bands; a second
/// axis gives one line per value. Returns the PNG names.
pub fn plot_sweep_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(dir.join("sweep.json"))?)?;
    let Some(first) = manifest.axes.first() else {
        return Ok(Vec::new());
    };
    let (header, rows) = read_csv(&dir.join("points.csv"))?;
    let (mc, mean, lo, hi) = (
        column(&header, "metric")?,
        column(&header, "mean")?,
        column(&header, "ci95_low")?,
        column(&header, "ci95_high")?,
    );
    let first_col = column(&header, &first.path)?;
    let second_col = match manifest.axes.get(1) {
        Some(a) => Some(column(&header, &a.path)?),
        None => None,
    };
    let x_numbers: Vec<Option<f64>> = first
        .values
        .iter()
        .map(|v| {
            prsm_sim::sweep::value_number(&serde_json::Value::from(v.as_str()))
                .or_else(|| v.parse().ok())
        })
        .collect();
    let numeric = x_numbers.iter().all(Option::is_some);
    // A scaling curve is drawn against the total node count of each point (a group's count is
    // only part of it), read from the `nodes.total` metric every run publishes.
    let scaling = first.path.starts_with("nodes.") && first.path.ends_with(".count");
    let point_col = column(&header, "point")?;
    let total_nodes = |point: &str| -> Option<f64> {
        rows.iter()
            .find(|r| r[point_col] == point && r[mc] == "nodes.total")
            .map(|r| num(&r[mean]))
    };
    let x_of = |row: &[String]| -> f64 {
        if scaling && let Some(total) = total_nodes(&row[point_col]) {
            return total;
        }
        let i = first
            .values
            .iter()
            .position(|v| *v == row[first_col])
            .unwrap_or(0);
        if numeric {
            x_numbers[i].unwrap_or(0.0)
        } else {
            i as f64
        }
    };
    let positive: Vec<f64> = x_numbers
        .iter()
        .flatten()
        .copied()
        .filter(|v| *v > 0.0)
        .collect();
    let log_x = numeric
        && positive.len() == x_numbers.len()
        && positive.len() >= 3
        && positive.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            / positive.iter().copied().fold(f64::INFINITY, f64::min)
            >= 100.0;
    let (kind, x_desc) = axis_kind(&first.path, &first.values, numeric, log_x);
    let mut figures = Vec::new();
    for metric in &manifest.plot {
        let mut lines: Vec<Curve> = Vec::new();
        for row in rows.iter().filter(|r| &r[mc] == metric) {
            let label = second_col.map_or_else(
                || "mean, 95 % CI".to_owned(),
                |c| format!("{} = {}", manifest.axes[1].path, row[c]),
            );
            if !lines.iter().any(|(l, _)| *l == label) {
                lines.push((label.clone(), Vec::new()));
            }
            if let Some((_, points)) = lines.iter_mut().find(|(l, _)| *l == label) {
                points.push(CurvePoint {
                    x: x_of(row),
                    mean: num(&row[mean]),
                    low: num(&row[lo]),
                    high: num(&row[hi]),
                });
            }
        }
        if lines.is_empty() {
            continue;
        }
        let curve = SweepCurve {
            title: format!(
                "{kind}: {metric} ({} seeds per point)",
                manifest.seeds.len()
            ),
            x_desc: x_desc.clone(),
            y_desc: metric.clone(),
            log_x,
            lines,
        };
        figures.push(save(
            dir,
            &format!("sweep-{}", crate::export::safe_stem(metric)),
            &curve,
        )?);
    }
    Ok(figures)
}

fn axis_kind(path: &str, values: &[String], numeric: bool, log_x: bool) -> (String, String) {
    let scale = if log_x { " (log scale)" } else { "" };
    if path.starts_with("nodes.") && path.ends_with(".count") {
        return (
            "Scaling curve".to_owned(),
            format!("nodes in the network (varying {path}){scale}"),
        );
    }
    if path.starts_with("faults.")
        && path.ends_with(".crash")
        && values.iter().all(|v| v.contains('%'))
    {
        return (
            "Failure-fraction curve".to_owned(),
            format!("nodes crashed, % ({path})"),
        );
    }
    let desc = if numeric {
        format!("{path}{scale}")
    } else {
        format!("{path} (point index: {})", values.join(", "))
    };
    (format!("Against {path}"), desc)
}
