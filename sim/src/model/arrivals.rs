//! Task arrival processes for the AI workload, and the parser of trace files.
//!
//! An [`Arrivals`] stream yields the arrival times of one task stream inside a window
//! `[from, until)`, drawing all of its randomness from the caller's seeded stream. Times are integer
//! nanoseconds; each gap is drawn as a float number of seconds (an exponential `-ln(1 - u)`, `u`
//! uniform in `[0, 1)`), then rounded to the nearest nanosecond with saturation, so no time ever
//! overflows or becomes NaN.
//!
//! Degenerate settings mean "no arrivals", never a panic or an endless loop: a rate that is not a
//! positive finite number yields nothing in that state (a Bursty stream whose off rate is 0 waits
//! out its off periods), a Bursty stream whose two mean periods are both 0 yields nothing, and a
//! Diurnal stream whose peak rate `mean_rate * (1 + amplitude)` is not a positive finite number
//! yields nothing. A Diurnal amplitude outside `[0, 1]` is clamped into it (NaN counts as 0); a
//! Diurnal period of 0 means a constant rate `mean_rate` (the same stream, draw for draw, as
//! `Poisson { rate: mean_rate }`, as is amplitude 0).
//!
//! [`parse_trace`] reads a trace file with a hand-written splitter on `,` (no quoting; every field
//! is trimmed), which reports exact character columns. Columns count characters (not bytes) from 1;
//! a field's column is that of its first non-whitespace character (of its first character if it is
//! blank), and a missing field's column is just past the end of its line. A leading UTF-8 byte-order
//! mark is ignored and not counted.

use std::f64::consts::TAU;

use prsm_protocol::random::{chance, unit};
use prsm_protocol::{Duration, Time};
use rand_chacha::ChaCha8Rng;

use crate::scenario::parse_duration;

/// How tasks of one stream arrive.
#[derive(Clone, Debug, PartialEq)]
pub enum Process {
    /// Poisson arrivals at `rate` per second.
    Poisson { rate: f64 },
    /// Markov-modulated on/off (a two-state MMPP): on and off periods are exponential with these
    /// means; Poisson at `on_rate` while on, `off_rate` while off. The first state is drawn from the
    /// stationary distribution (on with probability on_mean / (on_mean + off_mean)).
    Bursty {
        on_rate: f64,
        off_rate: f64,
        on_mean: Duration,
        off_mean: Duration,
    },
    /// Inhomogeneous Poisson with rate(t) = mean_rate * (1 + amplitude * cos(2π (t - peak) / period)),
    /// 0 <= amplitude <= 1, generated exactly by thinning (Lewis and Shedler 1979) against the peak
    /// rate.
    Diurnal {
        mean_rate: f64,
        amplitude: f64,
        period: Duration,
        peak: Duration,
    },
}

/// One stream's arrivals between `from` (inclusive) and `until` (exclusive).
#[derive(Clone, Debug)]
pub struct Arrivals {
    process: Process,
    until: u64,
    /// Where the process stands, in nanoseconds: the last arrival, the last rejected candidate
    /// (Diurnal) or the last switch of state (Bursty); `from` at first.
    now: u64,
    /// Bursty only: whether the source is on.
    on: bool,
    /// Bursty only: when the current on or off period ends; `None` until the first state is drawn.
    period_end: Option<u64>,
    /// The stream is over: `next` draws nothing more.
    done: bool,
}

impl Arrivals {
    pub fn new(process: Process, from: Duration, until: Duration) -> Self {
        Arrivals {
            process,
            until: until.as_nanos(),
            now: from.as_nanos(),
            on: false,
            period_end: None,
            done: from >= until,
        }
    }

    /// The next arrival time (>= the previous one returned, >= from, < until), or None when the
    /// stream is over. All randomness comes from `rng` (the caller's seeded stream); same rng state
    /// => same times. Once it has returned None it always does, without touching `rng`.
    pub fn next(&mut self, rng: &mut ChaCha8Rng) -> Option<Time> {
        if self.done {
            return None;
        }
        let at = match self.process {
            Process::Poisson { rate } => self.next_poisson(rate, rng),
            Process::Bursty {
                on_rate,
                off_rate,
                on_mean,
                off_mean,
            } => self.next_bursty(on_rate, off_rate, on_mean, off_mean, rng),
            Process::Diurnal {
                mean_rate,
                amplitude,
                period,
                peak,
            } => self.next_diurnal(mean_rate, amplitude, period, peak, rng),
        };
        match at {
            Some(at) if at < self.until => {
                self.now = at;
                Some(Time(at))
            }
            _ => {
                self.done = true;
                None
            }
        }
    }

    /// The long-run mean rate per second (for documentation and sanity checks); 0 for a stream
    /// that never yields anything.
    pub fn mean_rate(&self) -> f64 {
        match self.process {
            Process::Poisson { rate } => usable(rate),
            Process::Bursty {
                on_rate,
                off_rate,
                on_mean,
                off_mean,
            } => {
                let (on, off) = (on_mean.as_nanos() as f64, off_mean.as_nanos() as f64);
                if on + off > 0.0 {
                    (usable(on_rate) * on + usable(off_rate) * off) / (on + off)
                } else {
                    0.0
                }
            }
            Process::Diurnal {
                mean_rate,
                amplitude,
                ..
            } => {
                if usable(mean_rate * (1.0 + clamp_amplitude(amplitude))) > 0.0 {
                    mean_rate
                } else {
                    0.0
                }
            }
        }
    }

    fn next_poisson(&mut self, rate: f64, rng: &mut ChaCha8Rng) -> Option<u64> {
        let gap = exponential_gap(rate, rng)?;
        Some(self.now.saturating_add(gap))
    }

    fn next_bursty(
        &mut self,
        on_rate: f64,
        off_rate: f64,
        on_mean: Duration,
        off_mean: Duration,
        rng: &mut ChaCha8Rng,
    ) -> Option<u64> {
        let (on_mean, off_mean) = (on_mean.as_nanos(), off_mean.as_nanos());
        if (on_mean == 0 && off_mean == 0) || (usable(on_rate) == 0.0 && usable(off_rate) == 0.0) {
            return None;
        }
        let mean_of = |on: bool| if on { on_mean } else { off_mean };
        let mut end = match self.period_end {
            Some(end) => end,
            None => {
                // The stationary state; exponential periods are memoryless, so the rest of the
                // period we start in is a fresh one.
                let p_on = on_mean as f64 / (on_mean as f64 + off_mean as f64);
                self.on = chance(rng, p_on);
                self.now
                    .saturating_add(exponential_period(mean_of(self.on), rng))
            }
        };
        loop {
            if self.now >= self.until {
                return None;
            }
            let rate = if self.on { on_rate } else { off_rate };
            if let Some(gap) = exponential_gap(rate, rng) {
                let at = self.now.saturating_add(gap);
                if at < end {
                    self.period_end = Some(end);
                    return Some(at);
                }
            }
            // The period ends before the next arrival of this state (or this state has none): the
            // candidate is dropped (memorylessness makes that exact) and the other state begins.
            self.now = end;
            self.on = !self.on;
            end = end.saturating_add(exponential_period(mean_of(self.on), rng));
            self.period_end = Some(end);
        }
    }

    fn next_diurnal(
        &mut self,
        mean_rate: f64,
        amplitude: f64,
        period: Duration,
        peak: Duration,
        rng: &mut ChaCha8Rng,
    ) -> Option<u64> {
        let period = period.as_nanos();
        let amplitude = if period == 0 {
            0.0
        } else {
            clamp_amplitude(amplitude)
        };
        let peak_rate = mean_rate * (1.0 + amplitude);
        loop {
            let gap = exponential_gap(peak_rate, rng)?;
            self.now = self.now.saturating_add(gap);
            if self.now >= self.until {
                return None;
            }
            if amplitude <= 0.0 {
                return Some(self.now);
            }
            // The phase in integer nanoseconds, so a long run loses no precision.
            let since_peak =
                (i128::from(self.now) - i128::from(peak.as_nanos())).rem_euclid(i128::from(period));
            let phase = since_peak as f64 / period as f64;
            let accept = (1.0 + amplitude * (TAU * phase).cos()) / (1.0 + amplitude);
            if chance(rng, accept) {
                return Some(self.now);
            }
        }
    }
}

/// `rate` if it is a positive finite number, else 0 (no arrivals).
fn usable(rate: f64) -> f64 {
    if rate.is_finite() && rate > 0.0 {
        rate
    } else {
        0.0
    }
}

fn clamp_amplitude(amplitude: f64) -> f64 {
    if amplitude > 1.0 {
        1.0
    } else if amplitude > 0.0 {
        amplitude
    } else {
        0.0
    }
}

/// A standard exponential deviate: finite, in [0, ~37].
fn exponential(rng: &mut ChaCha8Rng) -> f64 {
    -(1.0 - unit(rng)).ln()
}

/// A float number of nanoseconds, rounded and saturated into u64 (NaN and negatives give 0).
fn nanos(ns: f64) -> u64 {
    if ns.is_nan() || ns <= 0.0 {
        0
    } else if ns >= u64::MAX as f64 {
        u64::MAX
    } else {
        ns.round() as u64
    }
}

/// The gap to the next arrival of a Poisson stream at `rate` per second; None if it has none.
fn exponential_gap(rate: f64, rng: &mut ChaCha8Rng) -> Option<u64> {
    let rate = usable(rate);
    if rate > 0.0 {
        Some(nanos(exponential(rng) / rate * 1e9))
    } else {
        None
    }
}

/// An exponential period with mean `mean` nanoseconds.
fn exponential_period(mean: u64, rng: &mut ChaCha8Rng) -> u64 {
    if mean == 0 {
        0
    } else {
        nanos(exponential(rng) * mean as f64)
    }
}

/// One row of a trace file: when a task arrives, the node selector of its origin (text, resolved by
/// the caller, e.g. `node:17`, `role:coordinator`, `region:eu-west-1`), and its task-class name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceRow {
    pub at: Duration,
    pub origin: String,
    pub class: String,
}

/// A problem in a trace file: 1-based row (the line number in the file) and 1-based column
/// (character column where the offending field starts), and what is wrong and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceError {
    pub row: u64,
    pub column: u64,
    pub message: String,
}

/// The most rows a trace may hold.
pub const TRACE_ROWS_MAX: usize = 1_000_000;

const HEADER: [&str; 3] = ["time", "origin", "class"];

/// Parses a trace: a CSV with the header `time,origin,class` (exactly these three columns, in this
/// order), then one row per task. `time` is a duration from the start of the run in the scenario
/// syntax (`1.5s`, `250ms`, `0`) or a plain number of seconds (`1.25`). `class` must be one of
/// `classes`. `origin` must be non-empty. Rows need not be sorted: they come back sorted by time,
/// stably (equal times keep file order). Blank lines and lines whose first non-blank character is
/// `#` are skipped (before the header too). More than [`TRACE_ROWS_MAX`] rows is an error.
///
/// Returns the first error in file order; within a row, a wrong number of fields comes first, then
/// the fields from left to right. Never panics.
pub fn parse_trace(text: &str, classes: &[&str]) -> Result<Vec<TraceRow>, TraceError> {
    parse_trace_limited(text, classes, TRACE_ROWS_MAX, &|_| Ok(()))
}

/// [`parse_trace`], also checking each origin with `origin_ok` (a selector parser): its error is
/// reported at the origin's row and column.
pub fn parse_trace_with(
    text: &str,
    classes: &[&str],
    origin_ok: &dyn Fn(&str) -> Result<(), String>,
) -> Result<Vec<TraceRow>, TraceError> {
    parse_trace_limited(text, classes, TRACE_ROWS_MAX, origin_ok)
}

fn parse_trace_limited(
    text: &str,
    classes: &[&str],
    max_rows: usize,
    origin_ok: &dyn Fn(&str) -> Result<(), String>,
) -> Result<Vec<TraceRow>, TraceError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows: Vec<TraceRow> = Vec::new();
    let mut header_seen = false;
    let mut last_line: u64 = 0;
    for (index, line) in text.lines().enumerate() {
        let row = index as u64 + 1;
        last_line = row;
        let content = line.trim();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let fields = split_fields(line);
        if !header_seen {
            check_header(row, line, &fields)?;
            header_seen = true;
            continue;
        }
        if rows.len() >= max_rows {
            return Err(TraceError {
                row,
                column: 1,
                message: format!(
                    "the trace has more than {max_rows} rows; split it into several runs or thin \
                     it out"
                ),
            });
        }
        rows.push(parse_row(row, line, &fields, classes, origin_ok)?);
    }
    if !header_seen {
        return Err(TraceError {
            row: 1,
            column: 1,
            message: "the trace is empty; it needs the header `time,origin,class` and then one \
                      row per task, e.g. `1.5s,node:17,chat`"
                .to_string(),
        });
    }
    if rows.is_empty() {
        return Err(TraceError {
            row: last_line + 1,
            column: 1,
            message: "the trace has a header but no rows; add one row per task, e.g. \
                      `1.5s,node:17,chat`"
                .to_string(),
        });
    }
    rows.sort_by_key(|r| r.at);
    Ok(rows)
}

/// A field of a line: its trimmed text and its 1-based character column.
struct Field<'a> {
    text: &'a str,
    column: u64,
}

fn split_fields(line: &str) -> Vec<Field<'_>> {
    let mut fields = Vec::new();
    let mut start: u64 = 1;
    for raw in line.split(',') {
        let text = raw.trim();
        let column = if text.is_empty() {
            start
        } else {
            let leading = raw.chars().count() - raw.trim_start().chars().count();
            start + leading as u64
        };
        fields.push(Field { text, column });
        start += raw.chars().count() as u64 + 1;
    }
    fields
}

/// The column just past the end of `line`, where a missing field would start.
fn end_column(line: &str) -> u64 {
    line.chars().count() as u64 + 1
}

fn check_header(row: u64, line: &str, fields: &[Field<'_>]) -> Result<(), TraceError> {
    const WANT: &str = "the first line must be exactly `time,origin,class`";
    if fields
        .first()
        .is_some_and(|f| f.text != HEADER[0] && parse_time(f.text).is_ok())
    {
        return Err(TraceError {
            row,
            column: 1,
            message: format!("the trace has no header; {WANT}, before the first row"),
        });
    }
    for (i, name) in HEADER.iter().enumerate() {
        match fields.get(i) {
            Some(f) if f.text == *name => {}
            Some(f) => {
                return Err(TraceError {
                    row,
                    column: f.column,
                    message: format!(
                        "header column {} is `{}`, expected `{name}`; {WANT}",
                        i + 1,
                        f.text
                    ),
                });
            }
            None => {
                return Err(TraceError {
                    row,
                    column: end_column(line),
                    message: format!(
                        "the header has {} columns, the column `{name}` is missing; {WANT}",
                        fields.len()
                    ),
                });
            }
        }
    }
    if let Some(extra) = fields.get(HEADER.len()) {
        return Err(TraceError {
            row,
            column: extra.column,
            message: format!(
                "the header has {} columns, expected 3 (`{}` is one too many); {WANT}",
                fields.len(),
                extra.text
            ),
        });
    }
    Ok(())
}

fn parse_row(
    row: u64,
    line: &str,
    fields: &[Field<'_>],
    classes: &[&str],
    origin_ok: &dyn Fn(&str) -> Result<(), String>,
) -> Result<TraceRow, TraceError> {
    let error = |column: u64, message: String| TraceError {
        row,
        column,
        message,
    };
    let [time, origin, class] = fields else {
        let column = match fields.get(HEADER.len()) {
            Some(extra) => extra.column,
            None => end_column(line),
        };
        return Err(error(
            column,
            format!(
                "the row has {} fields, expected 3 (time,origin,class); fields are separated by \
                 `,` and cannot contain one",
                fields.len()
            ),
        ));
    };
    let at = parse_time(time.text).map_err(|e| error(time.column, e))?;
    if origin.text.is_empty() {
        return Err(error(
            origin.column,
            "the origin is empty; write a node selector such as `17`, `role:coordinator` \
             or `region:eu-west-1`"
                .to_string(),
        ));
    }
    origin_ok(origin.text).map_err(|e| error(origin.column, format!("the origin: {e}")))?;
    if !classes.contains(&class.text) {
        let message = if class.text.is_empty() {
            "the class is empty".to_string()
        } else {
            format!("unknown task class `{}`", class.text)
        };
        let known = if classes.is_empty() {
            "no task classes are defined; define them in the workload first".to_string()
        } else {
            format!("the known classes are: {}", classes.join(", "))
        };
        return Err(error(class.column, format!("{message}; {known}")));
    }
    Ok(TraceRow {
        at,
        origin: origin.text.to_string(),
        class: class.text.to_string(),
    })
}

/// A time as a duration (`1.5s`, `250ms`, `0`) or a plain number of seconds (`1.25`), exactly.
fn parse_time(text: &str) -> Result<Duration, String> {
    const HINT: &str =
        "write a duration such as `1.5s` or `250ms`, or a plain number of seconds such as `1.25`";
    if text.is_empty() {
        return Err(format!("the time is empty; {HINT}"));
    }
    let plain = text.chars().all(|c| c.is_ascii_digit() || c == '.')
        && text.chars().any(|c| c.is_ascii_digit());
    let parsed = if plain {
        parse_duration(&format!("{text}s"))
    } else {
        parse_duration(text)
    };
    parsed.map_err(|e| format!("bad time: {e}; {HINT}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::{Rng, SeedableRng};

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn collect(process: Process, from: Duration, until: Duration, seed: u64) -> Vec<Time> {
        let mut stream = Arrivals::new(process, from, until);
        let mut r = rng(seed);
        let mut out = Vec::new();
        while let Some(t) = stream.next(&mut r) {
            out.push(t);
        }
        out
    }

    /// Counts per window of `width` over `[0, end)`.
    fn counts(times: &[Time], width: Duration, end: Duration) -> Vec<f64> {
        let n = (end.as_nanos() / width.as_nanos()) as usize;
        let mut c = vec![0.0; n];
        for t in times {
            c[(t.as_nanos() / width.as_nanos()) as usize] += 1.0;
        }
        c
    }

    fn mean_var(xs: &[f64]) -> (f64, f64) {
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len() as f64 - 1.0);
        (mean, var)
    }

    fn bursty() -> Process {
        Process::Bursty {
            on_rate: 100.0,
            off_rate: 5.0,
            on_mean: secs(1),
            off_mean: secs(4),
        }
    }

    fn diurnal(amplitude: f64) -> Process {
        Process::Diurnal {
            mean_rate: 20.0,
            amplitude,
            period: secs(10),
            peak: Duration::from_millis(2_500),
        }
    }

    #[test]
    fn poisson_count_matches_rate_times_window() {
        let times = collect(Process::Poisson { rate: 100.0 }, secs(0), secs(1_000), 7);
        let expected = 100.0 * 1_000.0;
        let sd = f64::sqrt(expected);
        let n = times.len() as f64;
        assert!(
            (n - expected).abs() < 4.0 * sd,
            "{n} arrivals, expected {expected}"
        );
        // And it is Poisson: counts per second have variance ≈ mean.
        let (mean, var) = mean_var(&counts(&times, secs(1), secs(1_000)));
        assert!(
            (0.8..1.2).contains(&(var / mean)),
            "dispersion {}",
            var / mean
        );
        assert_eq!(
            Arrivals::new(Process::Poisson { rate: 100.0 }, secs(0), secs(1)).mean_rate(),
            100.0
        );
    }

    #[test]
    fn same_seed_same_sequence_other_seed_other_sequence() {
        for process in [Process::Poisson { rate: 50.0 }, bursty(), diurnal(0.7)] {
            let a = collect(process.clone(), secs(1), secs(60), 7);
            let b = collect(process.clone(), secs(1), secs(60), 7);
            let c = collect(process.clone(), secs(1), secs(60), 8);
            assert!(a.len() > 100, "{process:?}: {}", a.len());
            assert_eq!(a, b, "{process:?}");
            assert_ne!(a, c, "{process:?}");
        }
    }

    #[test]
    fn times_stay_in_window_and_never_decrease() {
        let from = Duration::from_millis(2_500);
        let until = Duration::from_millis(7_250);
        for process in [Process::Poisson { rate: 500.0 }, bursty(), diurnal(1.0)] {
            for seed in 0..20 {
                let mut stream = Arrivals::new(process.clone(), from, until);
                let mut r = rng(seed);
                let mut previous = Time(from.as_nanos());
                let mut n = 0;
                while let Some(t) = stream.next(&mut r) {
                    assert!(t >= previous, "{process:?}: {t:?} after {previous:?}");
                    assert!(t.as_nanos() < until.as_nanos(), "{process:?}: {t:?}");
                    previous = t;
                    n += 1;
                }
                assert!(n > 0, "{process:?}");
                // Over is over, and the rng is left alone.
                let before = r.clone().next_u64();
                assert_eq!(stream.next(&mut r), None);
                assert_eq!(r.next_u64(), before);
            }
            // An empty or reversed window yields nothing.
            assert_eq!(collect(process.clone(), secs(5), secs(5), 1), vec![]);
            assert_eq!(collect(process.clone(), secs(6), secs(5), 1), vec![]);
        }
    }

    #[test]
    fn arrivals_start_after_from() {
        // With a late `from`, the first arrival comes about one mean gap after it, not at 0.
        let times = collect(Process::Poisson { rate: 10.0 }, secs(100), secs(200), 3);
        assert!(times[0] >= Time(secs(100).as_nanos()));
        assert!(times[0] < Time(secs(102).as_nanos()), "{:?}", times[0]);
        let n = times.len() as f64;
        assert!((n - 1_000.0).abs() < 4.0 * 1_000f64.sqrt(), "{n}");
    }

    #[test]
    fn bursty_long_run_rate_is_the_weighted_mean() {
        let expected = (100.0 * 1.0 + 5.0 * 4.0) / (1.0 + 4.0);
        let process = bursty();
        assert!(
            (Arrivals::new(process.clone(), secs(0), secs(1)).mean_rate() - expected).abs() < 1e-9
        );
        let times = collect(process, secs(0), secs(50_000), 7);
        let rate = times.len() as f64 / 50_000.0;
        assert!(
            (rate - expected).abs() < 0.05 * expected,
            "{rate} vs {expected}"
        );
    }

    #[test]
    fn bursty_counts_are_over_dispersed() {
        let times = collect(bursty(), secs(0), secs(5_000), 11);
        let (mean, var) = mean_var(&counts(&times, secs(1), secs(5_000)));
        assert!(var / mean > 5.0, "dispersion {}", var / mean);
    }

    #[test]
    fn bursty_with_off_rate_zero_waits_out_the_off_periods() {
        let process = Process::Bursty {
            on_rate: 100.0,
            off_rate: 0.0,
            on_mean: secs(1),
            off_mean: secs(9),
        };
        assert!((Arrivals::new(process.clone(), secs(0), secs(1)).mean_rate() - 10.0).abs() < 1e-9);
        let times = collect(process, secs(0), secs(50_000), 5);
        let rate = times.len() as f64 / 50_000.0;
        assert!((rate - 10.0).abs() < 1.0, "{rate}");
        // Silences of several seconds (off periods) happen; Poisson at 10/s would never have one.
        let long_gaps = times.windows(2).filter(|w| w[1] - w[0] > secs(5)).count();
        assert!(long_gaps > 100, "{long_gaps}");
    }

    #[test]
    fn bursty_starts_in_the_stationary_state() {
        // On 20% of the time: over many short streams, about 20% have an arrival in the first
        // 10 ms (on at 1000/s: almost surely; off at 0: never).
        let process = Process::Bursty {
            on_rate: 1_000.0,
            off_rate: 0.0,
            on_mean: secs(1),
            off_mean: secs(4),
        };
        let mut r = rng(9);
        let mut early = 0;
        for _ in 0..2_000 {
            let mut stream = Arrivals::new(process.clone(), secs(0), Duration::from_millis(10));
            if stream.next(&mut r).is_some() {
                early += 1;
            }
        }
        let share = f64::from(early) / 2_000.0;
        assert!((0.16..0.24).contains(&share), "{share}");
    }

    #[test]
    fn degenerate_settings_give_no_arrivals() {
        let none = [
            Process::Poisson { rate: 0.0 },
            Process::Poisson { rate: -3.0 },
            Process::Poisson { rate: f64::NAN },
            Process::Poisson {
                rate: f64::INFINITY,
            },
            Process::Bursty {
                on_rate: 10.0,
                off_rate: 10.0,
                on_mean: Duration::ZERO,
                off_mean: Duration::ZERO,
            },
            Process::Bursty {
                on_rate: 0.0,
                off_rate: f64::NAN,
                on_mean: secs(1),
                off_mean: secs(1),
            },
            Process::Diurnal {
                mean_rate: 0.0,
                amplitude: 0.5,
                period: secs(10),
                peak: secs(0),
            },
            Process::Diurnal {
                mean_rate: f64::MAX,
                amplitude: 1.0,
                period: secs(10),
                peak: secs(0),
            },
        ];
        for process in none {
            assert_eq!(
                collect(process.clone(), secs(0), secs(100), 1),
                vec![],
                "{process:?}"
            );
            assert_eq!(
                Arrivals::new(process.clone(), secs(0), secs(1)).mean_rate(),
                0.0
            );
        }
        // A tiny rate saturates instead of overflowing.
        assert_eq!(
            collect(
                Process::Poisson { rate: 1e-300 },
                secs(0),
                Duration(u64::MAX),
                1
            ),
            vec![]
        );
    }

    #[test]
    fn diurnal_peak_window_beats_trough_window_and_mean_holds() {
        let times = collect(diurnal(0.8), secs(0), secs(10_000), 7);
        let rate = times.len() as f64 / 10_000.0;
        assert!((rate - 20.0).abs() < 0.02 * 20.0, "{rate}");
        // Within ±1 s of the peak (2.5 s into each 10 s period) and of the trough (7.5 s).
        let near = |t: &Time, centre: u64| {
            let phase = t.as_nanos() % secs(10).as_nanos();
            phase.abs_diff(centre) <= secs(1).as_nanos()
        };
        let at_peak = times.iter().filter(|t| near(t, 2_500_000_000)).count() as f64;
        let at_trough = times.iter().filter(|t| near(t, 7_500_000_000)).count() as f64;
        // Expected: rate ≈ 20 * (1 ± 0.8 * ~0.94) over 2 s × 1000 periods.
        assert!(at_peak > 3.0 * at_trough, "{at_peak} vs {at_trough}");
    }

    #[test]
    fn diurnal_thinning_follows_the_cosine_exactly() {
        // Per tenth of a period, the count matches the integral of the rate within 5 sd.
        let (mean_rate, amplitude, periods) = (20.0, 0.6, 1_000.0);
        let times = collect(diurnal(amplitude), secs(0), secs(10_000), 21);
        let mut bins = [0.0f64; 10];
        for t in &times {
            let since_peak =
                (t.as_nanos() + secs(10).as_nanos() - 2_500_000_000) % secs(10).as_nanos();
            bins[(since_peak / 1_000_000_000) as usize] += 1.0;
        }
        for (i, &count) in bins.iter().enumerate() {
            // ∫ over [i, i+1) seconds of mean_rate (1 + a cos(2π x / 10)) dx, per period.
            let (a, b) = (i as f64 / 10.0 * TAU, (i + 1) as f64 / 10.0 * TAU);
            let per_period = mean_rate * (1.0 + amplitude * (b.sin() - a.sin()) * 10.0 / TAU);
            let expected = per_period * periods;
            assert!(
                (count - expected).abs() < 5.0 * expected.sqrt(),
                "bin {i}: {count} vs {expected}"
            );
        }
    }

    #[test]
    fn diurnal_amplitude_zero_or_period_zero_is_plain_poisson() {
        let poisson = collect(Process::Poisson { rate: 20.0 }, secs(0), secs(100), 7);
        assert_eq!(collect(diurnal(0.0), secs(0), secs(100), 7), poisson);
        let flat = Process::Diurnal {
            mean_rate: 20.0,
            amplitude: 0.9,
            period: Duration::ZERO,
            peak: secs(3),
        };
        assert_eq!(collect(flat, secs(0), secs(100), 7), poisson);
        assert_eq!(
            Arrivals::new(diurnal(0.8), secs(0), secs(1)).mean_rate(),
            20.0
        );
    }

    #[test]
    fn diurnal_amplitude_is_clamped() {
        assert_eq!(
            collect(diurnal(3.0), secs(0), secs(100), 4),
            collect(diurnal(1.0), secs(0), secs(100), 4)
        );
        assert_eq!(
            collect(diurnal(-1.0), secs(0), secs(100), 4),
            collect(diurnal(0.0), secs(0), secs(100), 4)
        );
        assert_eq!(
            collect(diurnal(f64::NAN), secs(0), secs(100), 4),
            collect(diurnal(0.0), secs(0), secs(100), 4)
        );
    }

    // ---- parse_trace ----

    const CLASSES: &[&str] = &["chat", "embed", "batch"];

    fn row(at: Duration, origin: &str, class: &str) -> TraceRow {
        TraceRow {
            at,
            origin: origin.to_string(),
            class: class.to_string(),
        }
    }

    fn err(text: &str) -> TraceError {
        match parse_trace(text, CLASSES) {
            Err(e) => e,
            Ok(rows) => panic!("expected an error, got {rows:?}"),
        }
    }

    fn at(e: &TraceError) -> (u64, u64) {
        (e.row, e.column)
    }

    #[test]
    fn good_trace_parses_and_sorts_stably() {
        let text = "\u{feff}# a comment\n\ntime,origin,class\n\
                    2s, node:17 ,chat\n\
                    0,role:coordinator,embed\n\
                    1.5s,region:eu-west-1,batch\n\
                    \n   # an indented comment\n\
                    1500ms,node:3,chat\r\n\
                    0.5,node:4,embed\n";
        let rows = parse_trace(text, CLASSES).unwrap();
        assert_eq!(
            rows,
            vec![
                row(Duration::ZERO, "role:coordinator", "embed"),
                row(Duration::from_millis(500), "node:4", "embed"),
                row(Duration::from_millis(1_500), "region:eu-west-1", "batch"),
                row(Duration::from_millis(1_500), "node:3", "chat"),
                row(secs(2), "node:17", "chat"),
            ]
        );
    }

    #[test]
    fn equal_times_keep_file_order() {
        let mut text = String::from("time,origin,class\n");
        for i in 0..50 {
            // Descending groups of equal times, each group in file order node:0, node:1, ...
            text.push_str(&format!("{}s,node:{i},chat\n", 4 - i % 5));
        }
        let rows = parse_trace(&text, CLASSES).unwrap();
        for w in rows.windows(2) {
            assert!(w[0].at <= w[1].at);
            if w[0].at == w[1].at {
                let n = |r: &TraceRow| r.origin[5..].parse::<u32>().unwrap();
                assert!(n(&w[0]) < n(&w[1]), "{:?} {:?}", w[0], w[1]);
            }
        }
        assert_eq!(rows[0].origin, "node:4");
    }

    #[test]
    fn unsorted_input_comes_back_sorted() {
        let text = "time,origin,class\n3s,a,chat\n1s,b,chat\n2s,c,chat\n";
        let origins: Vec<_> = parse_trace(text, CLASSES)
            .unwrap()
            .into_iter()
            .map(|r| r.origin)
            .collect();
        assert_eq!(origins, ["b", "c", "a"]);
    }

    #[test]
    fn plain_seconds_equal_durations() {
        let text =
            "time,origin,class\n1.25,a,chat\n1250ms,b,chat\n1.25s,c,chat\n0,d,chat\n0.0,e,chat\n";
        let rows = parse_trace(text, CLASSES).unwrap();
        assert_eq!(rows[0].at, Duration::ZERO);
        assert_eq!(rows[1].at, Duration::ZERO);
        assert_eq!(rows[2].at, Duration::from_millis(1_250));
        assert_eq!(rows[3].at, Duration::from_millis(1_250));
        assert_eq!(rows[4].at, Duration::from_millis(1_250));
        assert_eq!(parse_time("1.25"), parse_time("1250ms"));
        assert_eq!(parse_time("3"), Ok(secs(3)));
    }

    #[test]
    fn header_errors_point_at_the_header_field() {
        // Missing header: the first line is a row.
        let e = err("1s,node:1,chat\n");
        assert_eq!(at(&e), (1, 1));
        assert!(e.message.contains("no header"), "{}", e.message);
        // Wrong name, after comments and blank lines.
        let e = err("# c\n\ntime, orig,class\n1s,a,chat\n");
        assert_eq!(at(&e), (3, 7));
        assert!(e.message.contains("`orig`"), "{}", e.message);
        // Wrong order.
        let e = err("time,class,origin\n1s,a,chat\n");
        assert_eq!(at(&e), (1, 6));
        // Missing column.
        let e = err("time,origin\n1s,a,chat\n");
        assert_eq!(at(&e), (1, 12));
        assert!(e.message.contains("`class` is missing"), "{}", e.message);
        // One too many.
        let e = err("time,origin,class,size\n1s,a,chat,3\n");
        assert_eq!(at(&e), (1, 19));
        // Case matters.
        let e = err("Time,origin,class\n1s,a,chat\n");
        assert_eq!(at(&e), (1, 1));
        assert!(e.message.contains("`Time`"), "{}", e.message);
    }

    #[test]
    fn row_errors_point_at_the_field() {
        const H: &str = "time,origin,class\n";
        let cases: &[(&str, (u64, u64), &str)] = &[
            // Too few fields: just past the end of the line.
            ("1s,node:1\n", (2, 10), "2 fields"),
            // Too many: the first extra field.
            ("1s,node:1,chat,9\n", (2, 16), "4 fields"),
            // Bad times.
            ("abc,node:1,chat\n", (2, 1), "bad time"),
            ("  5 parsecs,node:1,chat\n", (2, 3), "bad time"),
            ("-1s,node:1,chat\n", (2, 1), "negative"),
            ("1.2.3,node:1,chat\n", (2, 1), "bad time"),
            (",node:1,chat\n", (2, 1), "time is empty"),
            ("99999999999999h,node:1,chat\n", (2, 1), "too long"),
            // Empty origin.
            ("1s,  ,chat\n", (2, 4), "origin is empty"),
            ("1s,,chat\n", (2, 4), "origin is empty"),
            // Unknown class, and which are known.
            ("1s,node:1, chatt\n", (2, 12), "unknown task class `chatt`"),
            ("1s,node:1,\n", (2, 11), "class is empty"),
        ];
        for (rows, (r, c), needle) in cases {
            let e = err(&format!("{H}{rows}"));
            assert_eq!(at(&e), (*r, *c), "{rows:?}: {e:?}");
            assert!(e.message.contains(needle), "{rows:?}: {}", e.message);
        }
        let e = err(&format!("{H}1s,a,nope\n"));
        assert!(e.message.contains("chat, embed, batch"), "{}", e.message);
        let e = parse_trace(&format!("{H}1s,a,chat\n"), &[]).unwrap_err();
        assert!(e.message.contains("no task classes"), "{}", e.message);
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        // `é` is two bytes but one column.
        let e = err("time,origin,class\n1s,nœud:é,chaî\n");
        assert_eq!(at(&e), (2, 11));
    }

    #[test]
    fn the_first_error_wins() {
        let text = "time,origin,class\n1s,a,chat\n\n# skip\nbad,,nope\n2s,,chat\n";
        // Row 5 has three problems; the time (leftmost) is reported, not row 6's.
        assert_eq!(at(&err(text)), (5, 1));
        // Field count before the fields themselves.
        assert_eq!(at(&err("time,origin,class\nbad,,nope,extra\n")), (2, 11));
        // Origin before class.
        assert_eq!(at(&err("time,origin,class\n1s,,nope\n")), (2, 4));
    }

    #[test]
    fn empty_traces_are_errors() {
        for text in ["", "\n\n", "# only a comment\n", "\u{feff}"] {
            let e = err(text);
            assert_eq!(at(&e), (1, 1), "{text:?}");
            assert!(e.message.contains("empty"), "{}", e.message);
        }
        let e = err("time,origin,class\n");
        assert_eq!(at(&e), (2, 1));
        assert!(e.message.contains("no rows"), "{}", e.message);
        let e = err("time,origin,class\n# none\n\n");
        assert_eq!(at(&e), (4, 1));
    }

    #[test]
    fn row_limit_is_exact() {
        let text = "time,origin,class\n1s,a,chat\n2s,b,chat\n\n3s,c,chat\n";
        assert_eq!(
            parse_trace_limited(text, CLASSES, 3, &|_| Ok(()))
                .unwrap()
                .len(),
            3
        );
        let e = parse_trace_limited(text, CLASSES, 2, &|_| Ok(())).unwrap_err();
        assert_eq!(at(&e), (5, 1));
        assert!(e.message.contains("more than 2 rows"), "{}", e.message);
    }

    #[test]
    fn parse_trace_enforces_trace_rows_max() {
        let mut text = String::with_capacity(8 * (TRACE_ROWS_MAX + 2));
        text.push_str("time,origin,class\n");
        for _ in 0..=TRACE_ROWS_MAX {
            text.push_str("0,a,chat\n");
        }
        let e = parse_trace(&text, CLASSES).unwrap_err();
        assert_eq!(at(&e), (TRACE_ROWS_MAX as u64 + 2, 1));
    }

    #[test]
    fn mangled_inputs_never_panic() {
        let good = "# trace\ntime,origin,class\n1.5s,node:17,chat\n0,role:coordinator,embed\n\
                    250ms,region:eu-west-1,batch\n1.25,node:2,chat\n";
        let alphabet: Vec<char> = ",\n\r #.0123456789smhnuéœ\u{feff}-:abcehilmnortz\t\u{0}"
            .chars()
            .collect();
        let mut r = rng(42);
        for _ in 0..5_000 {
            let mut chars: Vec<char> = good.chars().collect();
            let edits = 1 + prsm_protocol::random::below(&mut r, 6);
            for _ in 0..edits {
                let len = chars.len() as u64;
                let pos = prsm_protocol::random::below(&mut r, len + 1) as usize;
                let c =
                    alphabet[prsm_protocol::random::below(&mut r, alphabet.len() as u64) as usize];
                match prsm_protocol::random::below(&mut r, 4) {
                    0 => chars.insert(pos, c),
                    1 if pos < chars.len() => {
                        chars.remove(pos);
                    }
                    2 if pos < chars.len() => chars[pos] = c,
                    _ => chars.truncate(pos),
                }
            }
            let text: String = chars.into_iter().collect();
            let lines = text.lines().count() as u64;
            match parse_trace(&text, CLASSES) {
                Ok(rows) => {
                    assert!(!rows.is_empty());
                    assert!(rows.windows(2).all(|w| w[0].at <= w[1].at), "{text:?}");
                    assert!(rows.iter().all(|r| CLASSES.contains(&r.class.as_str())));
                    assert!(rows.iter().all(|r| !r.origin.is_empty()));
                }
                Err(e) => {
                    assert!(e.row >= 1 && e.row <= lines + 1, "{text:?}: {e:?}");
                    assert!(e.column >= 1, "{text:?}: {e:?}");
                    assert!(!e.message.is_empty());
                }
            }
        }
    }
}
