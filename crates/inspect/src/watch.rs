//! `--watch`: looks again every interval until `q`, Ctrl-C or a signal.
//!
//! On a terminal the view ([`crate::board`]) is drawn on the alternate screen
//! ([`crate::terminal`]), fitted to the terminal's size at every redraw (and at
//! once when it changes). When standard output is not a terminal there is nothing
//! to draw on: the stable plain format is printed once per interval instead, each
//! look followed by an empty line, so `shm-inspect --watch > log` records a
//! session that scripts can read.

use crate::board::{self, Layout};
use crate::terminal::{Input, Screen};
use crate::{annotate, plain};
use shm_common::view::{Inspector, Report};
use shm_common::IpcKey;
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// What `--watch` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Time between looks.
    pub interval: Duration,
    /// The interval as the user gave it, in seconds (shown as given: `0.25 s`).
    pub interval_secs: f64,
    /// One column even on a wide terminal.
    pub compact: bool,
    /// At most this many ring cells per row.
    pub max_cells: usize,
}

/// `0.25 s`, `0.5 s`, `2 s`: the interval as given, not rounded.
pub fn interval_text(secs: f64) -> String {
    // f64's Display is the shortest text that reads back as the same number.
    format!("{secs} s")
}

/// How often the terminal view checks for resizes and `stop()` while it waits for
/// the next look (keys are answered at once).
const TICK: Duration = Duration::from_millis(50);

/// The view on a terminal, until `q`, Ctrl-C or `stop()` (the binary wires it to
/// SIGINT, SIGTERM and SIGHUP). Keeps one read-only attach. The terminal is
/// restored however this returns.
pub fn on_terminal(key: IpcKey, opts: &Options, stop: &dyn Fn() -> bool) -> io::Result<()> {
    let mut inspector = Inspector::new(key, true);
    let mut screen = Screen::open()?;
    let interval = interval_text(opts.interval_secs);
    let mut report = inspector.look();
    let mut next = Instant::now() + opts.interval;
    let mut full = true;
    let mut size = screen.size()?;
    loop {
        let (cols, rows) = size;
        let layout = Layout {
            cols,
            rows,
            compact: opts.compact,
            max_cells: opts.max_cells,
            interval: interval.clone(),
        };
        screen.draw(&board::board(&report, &layout), cols, rows, full)?;
        full = false;
        // Wait for the next look, answering keys and resizes meanwhile.
        loop {
            if stop() {
                return Ok(());
            }
            let now = Instant::now();
            if now >= next {
                report = inspector.look();
                next = (next + opts.interval).max(now);
                break;
            }
            if screen.wait(TICK.min(next - now))? == Input::Quit {
                return Ok(());
            }
            // A resize (a pane split, zoomed, the window dragged): redraw at once.
            let now_size = screen.size()?;
            if now_size != size {
                size = now_size;
                full = true;
                break;
            }
        }
    }
}

/// Not a terminal: the plain format once per interval, then an empty line, until
/// `stop()`. A reader that goes away (`| head`) ends it quietly. Returns the last
/// report.
pub fn plain_lines(
    key: IpcKey,
    opts: &Options,
    out: &mut dyn Write,
    stop: &dyn Fn() -> bool,
) -> io::Result<Option<Report>> {
    let mut inspector = Inspector::new(key, true);
    let mut last = None;
    loop {
        let mut report = inspector.look();
        annotate(&mut report);
        let written = out
            .write_all(format!("{}\n", plain::plain(&report)).as_bytes())
            .and_then(|()| out.flush());
        match written {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(last),
            other => other?,
        }
        last = Some(report);
        let until = Instant::now() + opts.interval;
        while Instant::now() < until {
            if stop() {
                return Ok(last);
            }
            std::thread::sleep(TICK.min(until.saturating_duration_since(Instant::now())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_shown_as_given() {
        assert_eq!(interval_text(0.25), "0.25 s");
        assert_eq!(interval_text(0.5), "0.5 s");
        assert_eq!(interval_text(2.0), "2 s");
        assert_eq!(interval_text(0.05), "0.05 s");
        assert_eq!(interval_text(1.125), "1.125 s");
    }
}
