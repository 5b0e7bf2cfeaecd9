//! Progress while runs work: a bar on a terminal, a plain line every few seconds of wall time
//! elsewhere (CI logs). Wall time decides only what reaches stderr, never an output file or result.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain progress line is printed when stderr is not a terminal, unless the
/// environment variable `PRSM_PROGRESS_EVERY_MS` says otherwise (the tests use it).
const LINE_EVERY: Duration = Duration::from_secs(10);

pub struct Progress {
    bar: ProgressBar,
    /// When the last line was printed (`None`: lines are off).
    lines: Option<Lines>,
}

struct Lines {
    every: Duration,
    started: Instant,
    last: Mutex<Instant>,
}

impl Progress {
    /// A bar of `len` steps in `template` on a terminal, plain lines elsewhere; neither when
    /// `show` is false.
    pub fn new(len: u64, template: &str, show: bool) -> Progress {
        if !show {
            return Progress {
                bar: ProgressBar::hidden(),
                lines: None,
            };
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(len);
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            return Progress { bar, lines: None };
        }
        let every = std::env::var("PRSM_PROGRESS_EVERY_MS")
            .ok()
            .and_then(|ms| ms.trim().parse().ok())
            .map_or(LINE_EVERY, Duration::from_millis);
        // Wall-clock time paces the progress lines on stderr only.
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        Progress {
            bar: ProgressBar::hidden(),
            lines: Some(Lines {
                every,
                started: now,
                last: Mutex::new(now),
            }),
        }
    }

    pub fn set_position(&self, position: u64) {
        self.bar.set_position(position);
    }

    pub fn set_message(&self, message: String) {
        self.bar.set_message(message);
    }

    /// Prints the line `text` makes from the wall seconds so far, if a line is due.
    pub fn line(&self, text: impl FnOnce(f64) -> String) {
        let Some(lines) = &self.lines else {
            return;
        };
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        {
            let Ok(mut last) = lines.last.lock() else {
                return;
            };
            if now.duration_since(*last) < lines.every {
                return;
            }
            *last = now;
        }
        warn!("{}", text(now.duration_since(lines.started).as_secs_f64()));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
