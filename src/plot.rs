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

/// How many tick labels an axis has at most; tick precision is chosen for this many.
const LABELS: usize = 10;

/// The decimals that tell adjacent tick labels apart on an axis over `range`: those of the
/// step between the labels plotters puts there (at most [`LABELS`], a round step apart), so
/// every difference shows ("0.998", "1.000", "1.002", never "1", "1") and no idle zero does
/// ("1", "2", not "1.0", "2.0").
fn tick_decimals(range: &Range<f64>) -> usize {
    use plotters::coord::ranged1d::Ranged as _;
    let ticks = plotters::coord::types::RangedCoordf64::from(range.clone()).key_points(LABELS);
    let step = ticks
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(f64::INFINITY, f64::min);
    if !(step.is_finite() && step > 0.0) {
        return 3;
    }
    // Steps are 1, 2 or 5 times a power of ten; the tolerance absorbs the float error of the
    // difference. Whole numbers at most; 12 decimals is far below any range `span` returns.
    (-step.log10() - 1e-6).ceil().clamp(0.0, 12.0) as usize
}

/// A tick label with `decimals` decimals (the same on every label of an axis).
fn tick_with(v: f64, decimals: usize) -> String {
    let text = format!("{v:.decimals$}");
    // A value a rounding error below 0 would read "-0.00".
    match text.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_owned(),
        _ => text,
    }
}

/// Where the legend goes: the corner of the plotting area with the least data under the legend
/// box, and the top of the y range, raised when every corner holds data so that the top band,
/// where the legend then sits, is empty.
#[derive(Clone, Copy, Debug, PartialEq)]
struct LegendPlan {
    corner: Corner,
    y_end: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Corner {
    UpperRight,
    UpperLeft,
    LowerRight,
    LowerLeft,
}

impl Corner {
    fn position(self) -> SeriesLabelPosition {
        match self {
            Corner::UpperRight => SeriesLabelPosition::UpperRight,
            Corner::UpperLeft => SeriesLabelPosition::UpperLeft,
            Corner::LowerRight => SeriesLabelPosition::LowerRight,
            Corner::LowerLeft => SeriesLabelPosition::LowerLeft,
        }
    }
}

/// Plans the legend of a chart whose plotting area is `area` pixels, for `data` (points of the
/// drawn lines and bands in chart coordinates, dense enough to stand for them) and a legend box
/// of `legend` pixels.
fn plan_legend(
    data: &[(f64, f64)],
    x: &Range<f64>,
    y: &Range<f64>,
    area: (f64, f64),
    legend: (f64, f64),
) -> LegendPlan {
    // The box, with the 5 px plotters leaves from the edge and 10 px to spare, as a fraction.
    let w = ((legend.0 + 15.0) / area.0.max(1.0)).min(1.0);
    let h = ((legend.1 + 15.0) / area.1.max(1.0)).min(0.9);
    let (xw, yh) = (x.end - x.start, y.end - y.start);
    let frac: Vec<(f64, f64)> = data
        .iter()
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .map(|&(px, py)| ((px - x.start) / xw, (py - y.start) / yh))
        .collect();
    let corners = [
        (Corner::UpperRight, 1.0 - w, 1.0 - h),
        (Corner::UpperLeft, 0.0, 1.0 - h),
        (Corner::LowerRight, 1.0 - w, 0.0),
        (Corner::LowerLeft, 0.0, 0.0),
    ];
    let occupancy = |left: f64, bottom: f64| {
        frac.iter()
            .filter(|&&(fx, fy)| fx >= left && fx <= left + w && fy >= bottom && fy <= bottom + h)
            .count()
    };
    let mut best = (usize::MAX, 0);
    for (i, &(_, left, bottom)) in corners.iter().enumerate() {
        let n = occupancy(left, bottom);
        if n < best.0 {
            best = (n, i);
        }
    }
    if best.0 == 0 {
        return LegendPlan {
            corner: corners[best.1].0,
            y_end: y.end,
        };
    }
    // Every corner holds data: raise the top so the data fill the lower 1 - h of the height.
    LegendPlan {
        corner: Corner::UpperRight,
        y_end: y.start + yh / (1.0 - h),
    }
}

/// The pixel size of the plotting area a chart built with this caption, margin and label areas
/// gets on `root`.
fn plotting_px<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    caption: (&str, u32),
    margin: u32,
    label_areas: (u32, u32),
) -> (f64, f64) {
    let (w, h) = root.dim_in_pixel();
    let style: TextStyle = ("sans-serif", caption.1).into();
    let text_h = root
        .estimate_text_size(caption.0, &style)
        .map_or(f64::from(caption.1) * 1.3, |(_, th)| {
            f64::from(th) + 2.0 * f64::from((th / 2).min(5))
        });
    (
        f64::from(w) - 2.0 * f64::from(margin) - f64::from(label_areas.1),
        f64::from(h) - 2.0 * f64::from(margin) - text_h - f64::from(label_areas.0),
    )
}

/// The pixel size of a legend box with these labels, as plotters draws it (a 30 px mark, 10 px
/// margins).
fn legend_px<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    labels: &[String],
    font: u32,
) -> (f64, f64) {
    let style: TextStyle = ("sans-serif", font).into();
    let mut width: f64 = 0.0;
    let mut height = 0.0;
    for label in labels {
        let (lw, lh) = root
            .estimate_text_size(label, &style)
            .unwrap_or((label.len() as u32 * font, font));
        width = width.max(f64::from(lw));
        height += f64::from(lh).max(f64::from(font)) * 1.25;
    }
    (width + 30.0 + 20.0, height + 20.0)
}

/// Points along a polyline, close enough together to stand for it when counting what a legend
/// would cover.
fn dense(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    const STEPS: usize = 40;
    let mut out: Vec<(f64, f64)> = points.first().copied().into_iter().collect();
    for pair in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        for k in 1..=STEPS {
            let t = k as f64 / STEPS as f64;
            out.push((x0 + (x1 - x0) * t, y0 + (y1 - y0) * t));
        }
    }
    out
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

/// The figures of a run folder, by file stem.
const RUN_FIGURES: [&str; 4] = ["latency_cdf", "timeseries", "tasks", "healing"];

/// The file stem of a sweep's figure of `metric`.
fn sweep_figure(metric: &str) -> String {
    format!("sweep-{}", crate::export::safe_stem(metric))
}

/// Deletes the plot files prsm draws in a run folder (`latency_cdf` and `timeseries`, PNG and
/// SVG), so that a run without plots into a used folder leaves none of an earlier run's behind.
/// Other files are left alone.
pub fn remove_run_plots(dir: &Path) -> Result<()> {
    remove_figures(dir, RUN_FIGURES.iter().map(|s| (*s).to_owned()))
}

/// Deletes the plot files prsm would draw in a sweep folder for any of `metrics` (the sweep's
/// whole catalog, so plots of metrics no longer in `plot:` go too).
pub fn remove_sweep_plots(dir: &Path, metrics: &[String]) -> Result<()> {
    remove_figures(dir, metrics.iter().map(|m| sweep_figure(m)))
}

fn remove_figures(dir: &Path, stems: impl Iterator<Item = String>) -> Result<()> {
    for stem in stems {
        for ext in ["png", "svg"] {
            let path = dir.join(format!("{stem}.{ext}"));
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("removing {}", path.display()));
                }
            }
        }
    }
    Ok(())
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
        let labels: Vec<String> = self.series.iter().map(|(n, _)| describe(n)).collect();
        let data: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|(_, pts)| dense(&pts.iter().map(|&(q, v)| (tx(v), q)).collect::<Vec<_>>()))
            .collect();
        let plan = plan_legend(
            &data,
            &x,
            &(0.0..1.0),
            plotting_px(root, ("Latency CDF", 36), 20, (60, 80)),
            legend_px(root, &labels, 22),
        );
        let y = 0f64..plan.y_end;
        let (x_decimals, y_decimals) = (tick_decimals(&x), tick_decimals(&y));
        let mut chart = ChartBuilder::on(root)
            .caption("Latency CDF", ("sans-serif", 36))
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(80)
            .build_cartesian_2d(x, y)
            .map_err(err)?;
        let x_label = move |v: &f64| {
            if log_x {
                tick(10f64.powf(*v))
            } else {
                tick_with(*v, x_decimals)
            }
        };
        chart
            .configure_mesh()
            .x_labels(LABELS)
            .y_labels(LABELS)
            .y_label_formatter(&|v| tick_with(*v, y_decimals))
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
        legend(&mut chart, plan.corner.position(), 22)?;
        Ok(())
    }
}

/// A tick label on a log axis (its labels are powers of ten and steps between them), with at
/// most three significant decimals and no trailing zeros.
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
        let mut labels: Vec<String> = Vec::new();
        if self.windows.iter().any(|w| w.kind == "crash") {
            labels.push("nodes crashed".to_owned());
        }
        if self.windows.iter().any(|w| w.kind != "crash") {
            labels.push("network partitioned".to_owned());
        }
        labels.extend(lines.iter().map(|(n, _)| (*n).to_owned()));
        let data: Vec<(f64, f64)> = lines
            .iter()
            .flat_map(|(_, values)| {
                let points: Vec<(f64, f64)> = self
                    .time
                    .iter()
                    .zip(values.iter())
                    .map(|(&t, &v)| (t, v))
                    .filter(|p| p.1.is_finite())
                    .collect();
                dense(&points)
            })
            .collect();
        let plan = plan_legend(
            &data,
            &x,
            &y,
            plotting_px(area, (title, 30), 15, (50, 90)),
            legend_px(area, &labels, 18),
        );
        let y = y.start..plan.y_end;
        let (x_decimals, y_decimals) = (tick_decimals(&x), tick_decimals(&y));
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 30))
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(90)
            .build_cartesian_2d(x.clone(), y.clone())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(LABELS)
            .y_labels(LABELS)
            .x_desc("virtual time (s)")
            .y_desc(y_desc)
            .x_label_formatter(&|v| tick_with(*v, x_decimals))
            .y_label_formatter(&|v| tick_with(*v, y_decimals))
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
        legend(&mut chart, plan.corner.position(), 18)?;
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

/// Task routing over time: workers' queue lengths and the share of tasks ending in each interval
/// that completed, fault windows shaded.
struct TaskSeries {
    base: TimeSeries,
    queue_mean: Vec<f64>,
    queue_max: Vec<f64>,
    success: Vec<f64>,
}

impl Figure for TaskSeries {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let panels = root.split_evenly((2, 1));
        self.base.panel(
            &panels[0],
            "Worker queues",
            "tasks queued",
            &[("mean", &self.queue_mean), ("max", &self.queue_max)],
        )?;
        self.base.panel(
            &panels[1],
            "Tasks ending in each interval",
            "success rate",
            &[("completed / ended", &self.success)],
        )?;
        Ok(())
    }
}

/// Partitions and healing over time: the number of distinct registry state roots among live
/// nodes (1 is converged), and the nodes that believe they are partitioned or in the primary
/// partition, fault windows shaded.
struct HealingSeries {
    base: TimeSeries,
    roots: Option<Vec<f64>>,
    detected: Option<Vec<f64>>,
    primary: Option<Vec<f64>>,
}

impl Figure for HealingSeries {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let belief: Vec<(&str, &[f64])> = [
            ("believe partitioned", self.detected.as_deref()),
            ("in the primary partition", self.primary.as_deref()),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
        .collect();
        let panels = match (&self.roots, belief.is_empty()) {
            (Some(_), false) => root.split_evenly((2, 1)),
            _ => vec![root.clone()],
        };
        let mut next = panels.iter();
        if let (Some(roots), Some(area)) = (&self.roots, next.next()) {
            self.base.panel(
                area,
                "Registry state roots",
                "distinct roots among live nodes",
                &[("distinct roots", roots)],
            )?;
        }
        if let (false, Some(area)) = (belief.is_empty(), next.next()) {
            self.base
                .panel(area, "Partition beliefs", "nodes", &belief)?;
        }
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
    figures.push(save(dir, RUN_FIGURES[0], &LatencyCdf { series })?);

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
    let has_tasks = header.iter().any(|h| h == "tasks_queue_mean");
    let figure = TimeSeries {
        delivered_per_s: rate(col("messages_delivered")?),
        sent_per_s: rate(col("messages_sent")?),
        p50: col("latency_p50_ms")?,
        p99: col("latency_p99_ms")?,
        windows: windows(&frows, &fheader, end)?,
        time: time.clone(),
    };
    // The time axis and fault windows, for figures that draw their own lines.
    let backdrop = || -> Result<TimeSeries> {
        Ok(TimeSeries {
            delivered_per_s: Vec::new(),
            sent_per_s: Vec::new(),
            p50: Vec::new(),
            p99: Vec::new(),
            windows: windows(&frows, &fheader, end)?,
            time: time.clone(),
        })
    };
    if has_tasks {
        let tasks = TaskSeries {
            queue_mean: col("tasks_queue_mean")?,
            queue_max: col("tasks_queue_max")?,
            success: col("tasks_success_rate")?,
            base: backdrop()?,
        };
        figures.push(save(dir, RUN_FIGURES[2], &tasks)?);
    }
    let optional = |name: &str| -> Result<Option<Vec<f64>>> {
        if header.iter().any(|h| h == name) {
            col(name).map(Some)
        } else {
            Ok(None)
        }
    };
    let healing = HealingSeries {
        roots: optional("registry_roots")?,
        detected: optional("partition_detected")?,
        primary: optional("partition_primary")?,
        base: backdrop()?,
    };
    if healing.roots.is_some() || healing.detected.is_some() {
        figures.push(save(dir, RUN_FIGURES[3], &healing)?);
    }
    figures.push(save(dir, RUN_FIGURES[1], &figure)?);
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
        let labels: Vec<String> = self.lines.iter().map(|(l, _)| l.clone()).collect();
        let plan = plan_legend(
            &self.covered(),
            &x,
            &y,
            plotting_px(root, (&self.title, 32), 20, (60, 100)),
            legend_px(root, &labels, 20),
        );
        let y = y.start..plan.y_end;
        let (x_decimals, y_decimals) = (tick_decimals(&x), tick_decimals(&y));
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 32))
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(100)
            .build_cartesian_2d(x, y)
            .map_err(err)?;
        let log_x = self.log_x;
        let x_label = move |v: &f64| {
            if log_x {
                tick(10f64.powf(*v))
            } else {
                tick_with(*v, x_decimals)
            }
        };
        chart
            .configure_mesh()
            .x_labels(LABELS)
            .y_labels(LABELS)
            .x_desc(self.x_desc.as_str())
            .y_desc(self.y_desc.as_str())
            .x_label_formatter(&x_label)
            .y_label_formatter(&|v| tick_with(*v, y_decimals))
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
        legend(&mut chart, plan.corner.position(), 20)?;
        Ok(())
    }
}

impl SweepCurve {
    /// Points standing for what the curves draw: the lines, and the confidence bands filled
    /// from low to high.
    fn covered(&self) -> Vec<(f64, f64)> {
        let tx = |x: f64| if self.log_x { x.log10() } else { x };
        let mut out = Vec::new();
        for (_, points) in &self.lines {
            out.extend(dense(
                &points.iter().map(|p| (tx(p.x), p.mean)).collect::<Vec<_>>(),
            ));
            let banded: Vec<&CurvePoint> = points
                .iter()
                .filter(|p| p.low.is_finite() && p.high.is_finite())
                .collect();
            for k in 0..=10 {
                let t = f64::from(k) / 10.0;
                out.extend(dense(
                    &banded
                        .iter()
                        .map(|p| (tx(p.x), p.low + (p.high - p.low) * t))
                        .collect::<Vec<_>>(),
                ));
            }
        }
        out
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
        figures.push(save(dir, &sweep_figure(metric), &curve)?);
    }
    Ok(figures)
}

// ---- Claims ----

/// A measured point of a claims figure: x, mean, and the 95 % interval's low and high.
pub type ClaimPoint = (f64, f64, f64, f64);

/// A measured curve of `prsm claims` (one line per series, with its confidence band) against the
/// figures the claims state (diamonds), on linear or log axes.
pub struct ClaimsFigure {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    pub log_x: bool,
    pub log_y: bool,
    /// Each series: label and points (x, mean, 95 % CI low, high), in x order.
    pub lines: Vec<(String, Vec<ClaimPoint>)>,
    /// The stated figures: (x, y).
    pub claimed: Vec<(f64, f64)>,
}

impl ClaimsFigure {
    fn tx(&self, x: f64) -> f64 {
        if self.log_x { x.max(1e-12).log10() } else { x }
    }

    fn ty(&self, y: f64) -> f64 {
        if self.log_y { y.max(1e-12).log10() } else { y }
    }

    /// Every point drawn, in chart coordinates (for the ranges and the legend).
    fn covered(&self) -> Vec<(f64, f64)> {
        let mut out = Vec::new();
        for (_, points) in &self.lines {
            out.extend(dense(
                &points
                    .iter()
                    .map(|p| (self.tx(p.0), self.ty(p.1)))
                    .collect::<Vec<_>>(),
            ));
            for p in points {
                for k in 0..=10 {
                    let y = p.2 + (p.3 - p.2) * f64::from(k) / 10.0;
                    out.push((self.tx(p.0), self.ty(y)));
                }
            }
        }
        out.extend(self.claimed.iter().map(|&(x, y)| (self.tx(x), self.ty(y))));
        out
    }
}

impl Figure for ClaimsFigure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let covered = self.covered();
        let x = span(covered.iter().map(|p| p.0), false);
        let y = span(covered.iter().map(|p| p.1), !self.log_y);
        let mut labels: Vec<String> = self.lines.iter().map(|(l, _)| l.clone()).collect();
        labels.push("as claimed".to_owned());
        let plan = plan_legend(
            &covered,
            &x,
            &y,
            plotting_px(root, (&self.title, 32), 20, (60, 100)),
            legend_px(root, &labels, 20),
        );
        let y = y.start..plan.y_end;
        let (x_decimals, y_decimals) = (tick_decimals(&x), tick_decimals(&y));
        // A log axis is labelled at 1, 2 and 5 times powers of ten (drawn below), when at least
        // two of them fall in its range; otherwise plotters' evenly spaced labels.
        let x_ticks = if self.log_x {
            log_ticks(&x)
        } else {
            Vec::new()
        };
        let y_ticks = if self.log_y {
            log_ticks(&y)
        } else {
            Vec::new()
        };
        let (x_range, y_range) = (x.clone(), y.clone());
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 32))
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(100)
            .build_cartesian_2d(x, y)
            .map_err(err)?;
        let (log_x, log_y) = (self.log_x, self.log_y);
        let x_label = move |v: &f64| {
            if log_x {
                tick(10f64.powf(*v))
            } else {
                tick_with(*v, x_decimals)
            }
        };
        let y_label = move |v: &f64| {
            if log_y {
                tick(10f64.powf(*v))
            } else {
                tick_with(*v, y_decimals)
            }
        };
        chart
            .configure_mesh()
            .x_labels(if x_ticks.is_empty() { LABELS } else { 0 })
            .y_labels(if y_ticks.is_empty() { LABELS } else { 0 })
            .x_desc(self.x_desc.as_str())
            .y_desc(self.y_desc.as_str())
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .label_style(("sans-serif", 20))
            .axis_desc_style(("sans-serif", 24))
            .draw()
            .map_err(err)?;
        let grid = BLACK.mix(0.25);
        let label_style = |h, v| {
            TextStyle::from(("sans-serif", 20).into_font())
                .pos(plotters::style::text_anchor::Pos::new(h, v))
        };
        use plotters::style::text_anchor::{HPos, VPos};
        for &t in &x_ticks {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(t, y_range.start), (t, y_range.end)],
                    grid,
                )))
                .map_err(err)?;
            let (px, py) = chart.backend_coord(&(t, y_range.start));
            root.draw(&Text::new(
                tick(10f64.powf(t)),
                (px, py + 10),
                label_style(HPos::Center, VPos::Top),
            ))
            .map_err(err)?;
        }
        for &t in &y_ticks {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x_range.start, t), (x_range.end, t)],
                    grid,
                )))
                .map_err(err)?;
            let (px, py) = chart.backend_coord(&(x_range.start, t));
            root.draw(&Text::new(
                tick(10f64.powf(t)),
                (px - 10, py),
                label_style(HPos::Right, VPos::Center),
            ))
            .map_err(err)?;
        }
        for (i, (label, points)) in self.lines.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let upper = points.iter().map(|p| (self.tx(p.0), self.ty(p.3)));
            let lower = points.iter().rev().map(|p| (self.tx(p.0), self.ty(p.2)));
            let band: Vec<(f64, f64)> = upper.chain(lower).collect();
            if points.len() >= 2 {
                chart
                    .draw_series(std::iter::once(Polygon::new(band, color.mix(0.2).filled())))
                    .map_err(err)?;
            }
            // Each point's interval as an error bar, so a lone point shows its interval too.
            for p in points {
                let (px, lo, hi) = (self.tx(p.0), self.ty(p.2), self.ty(p.3));
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(px, lo), (px, hi)],
                        color.stroke_width(2),
                    )))
                    .map_err(err)?;
            }
            let line: Vec<(f64, f64)> = points
                .iter()
                .map(|p| (self.tx(p.0), self.ty(p.1)))
                .collect();
            chart
                .draw_series(LineSeries::new(line.clone(), color.stroke_width(3)))
                .map_err(err)?
                .label(format!("{label} (mean, 95 % CI)"))
                .legend(line_mark(color));
            chart
                .draw_series(line.into_iter().map(|p| Circle::new(p, 5, color.filled())))
                .map_err(err)?;
        }
        let claimed = RGBColor(0, 0, 0);
        chart
            .draw_series(self.claimed.iter().map(|&(cx, cy)| {
                let p = (self.tx(cx), self.ty(cy));
                EmptyElement::at(p)
                    + Polygon::new(
                        vec![(0, -9), (9, 0), (0, 9), (-9, 0)],
                        claimed.stroke_width(2),
                    )
            }))
            .map_err(err)?
            .label("as claimed")
            .legend(move |(lx, ly)| {
                EmptyElement::at((lx + 15, ly))
                    + Polygon::new(vec![(0, -7), (7, 0), (0, 7), (-7, 0)], claimed.filled())
            });
        legend(&mut chart, plan.corner.position(), 20)?;
        Ok(())
    }
}

/// The log10 of every 1, 2 and 5 times a power of ten within `range` (a range of log10 values),
/// or of every 1 to 9 times one if that gives fewer than four: the labels of a log axis, if
/// there are at least two.
fn log_ticks(range: &Range<f64>) -> Vec<f64> {
    if !(range.start.is_finite() && range.end.is_finite()) {
        return Vec::new();
    }
    let within = |multiples: &[f64]| {
        let mut out = Vec::new();
        for k in (range.start.floor() as i32)..=(range.end.ceil() as i32) {
            for m in multiples {
                let t = (m * 10f64.powi(k)).log10();
                if t >= range.start && t <= range.end {
                    out.push(t);
                }
            }
        }
        out
    };
    let mut out = within(&[1.0, 2.0, 5.0]);
    if out.len() < 4 {
        out = within(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    }
    if out.len() < 2 { Vec::new() } else { out }
}

/// Draws a claims figure to `<stem>.png` and `.svg` in `dir`; returns the PNG's name.
pub fn plot_claims(dir: &Path, stem: &str, figure: &ClaimsFigure) -> Result<PathBuf> {
    save(dir, stem, figure)
}

/// Deletes the figures `stems` from `dir` (those a claims run did not draw this time).
pub fn remove_claims_plots(dir: &Path, stems: &[&str]) -> Result<()> {
    remove_figures(dir, stems.iter().map(|s| (*s).to_owned()))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The legend takes a free corner; when data fill every corner, the y range grows so that
    /// the band the legend sits in at the top is empty.
    #[test]
    fn the_legend_takes_a_free_corner_or_makes_room() {
        let (x, y) = (0.0..1.0, 0.0..1.0);
        let (area, legend) = ((1000.0, 600.0), (200.0, 60.0));
        let upper_right_taken = plan_legend(&[(0.95, 0.95)], &x, &y, area, legend);
        assert_eq!(
            upper_right_taken,
            LegendPlan {
                corner: Corner::UpperLeft,
                y_end: 1.0
            }
        );
        let everywhere: Vec<(f64, f64)> = (0..=50)
            .flat_map(|i| (0..=50).map(move |j| (f64::from(i) / 50.0, f64::from(j) / 50.0)))
            .collect();
        let plan = plan_legend(&everywhere, &x, &y, area, legend);
        assert_eq!(plan.corner, Corner::UpperRight);
        // The box and its 15 px spare are 75 px of 600: the data must end 12.5 % below the top.
        let box_bottom = plan.y_end * (1.0 - 75.0 / 600.0);
        assert!(
            everywhere.iter().all(|p| p.1 <= box_bottom + 1e-9),
            "{plan:?}"
        );
    }

    #[test]
    fn log_axes_are_labelled_at_1_2_5() {
        let labels: Vec<String> = log_ticks(&(1.0..3.5))
            .into_iter()
            .map(|t| tick(10f64.powf(t)))
            .collect();
        assert_eq!(
            labels,
            ["10", "20", "50", "100", "200", "500", "1000", "2000"]
        );
        // Fewer than four at 1, 2, 5: every multiple; fewer than two: plotters labels the axis.
        let labels: Vec<String> = log_ticks(&(2.4..3.5))
            .into_iter()
            .map(|t| tick(10f64.powf(t)))
            .collect();
        assert_eq!(
            labels,
            [
                "300", "400", "500", "600", "700", "800", "900", "1000", "2000", "3000"
            ]
        );
        assert!(log_ticks(&(2.4..2.5)).is_empty());
    }

    #[test]
    fn tick_labels_carry_the_decimals_their_step_needs() {
        assert_eq!(tick_decimals(&(0.0..1.0)), 1);
        assert_eq!(tick_decimals(&(0.9994..1.0001)), 4);
        assert_eq!(tick_decimals(&(0.5..6.0)), 0);
        assert_eq!(tick_decimals(&(0.0..0.4)), 2);
        assert_eq!(tick_decimals(&(0.0..5000.0)), 0);
        assert_eq!(tick_with(1.0, 3), "1.000");
        assert_eq!(tick_with(-0.0001, 2), "0.00");
        assert_eq!(tick_with(-0.5, 1), "-0.5");
    }
}
