//! The progress bar of long transfers, on stderr, only where it helps: stderr is a
//! terminal, the transfer has run for a second and moved a mebibyte (a short or
//! typed transfer never draws one), nothing else writes to that terminal as it goes
//! (`--explain`, typed input, data written to the same terminal), and it is cleared
//! at the end. Notes printed meanwhile lift the bar out of the way and put it back.

use indicatif::{ProgressBar, ProgressDrawTarget};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A transfer this short in time draws nothing.
pub const SHOW_AFTER: Duration = Duration::from_secs(1);
/// Nor one this small (an interactive session typing lines for minutes).
pub const SHOW_FROM_BYTES: u64 = 1 << 20;

/// When the bar may appear at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet {
    /// `-q`: no notes, no summary, no bar.
    pub asked: bool,
    /// `--explain` narrates on stderr; a bar would cut through its lines.
    pub explaining: bool,
    /// The terminal is in use by the data itself: typed input (the writer's stdin
    /// is a terminal) or output (the reader's stdout is one).
    pub terminal_busy: bool,
}

/// A progress bar that shows itself only once a transfer is long and large.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    start: Instant,
    shown: AtomicBool,
}

impl Progress {
    /// A bar for a transfer of `total` bytes if known (a file argument: percent and
    /// ETA), or of unknown length (bytes and rate); hidden until [`SHOW_AFTER`] and
    /// [`SHOW_FROM_BYTES`], and never drawn when `quiet` says so or stderr is not a
    /// terminal.
    pub fn new(total: Option<u64>, quiet: Quiet) -> Progress {
        use std::io::IsTerminal;
        let wanted = !(quiet.asked || quiet.explaining || quiet.terminal_busy)
            && std::io::stderr().is_terminal();
        let bar = wanted.then(|| {
            let (bar, template) = match total {
                Some(n) => (
                    ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::hidden()),
                    "{bar:30} {percent:>3}% {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                ),
                None => (
                    ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden()),
                    "{bytes} {bytes_per_sec}",
                ),
            };
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar
        });
        Progress {
            bar,
            start: Instant::now(),
            shown: AtomicBool::new(false),
        }
    }

    /// `bytes` moved so far.
    pub fn update(&self, bytes: u64) {
        let Some(bar) = &self.bar else { return };
        bar.set_position(bytes);
        if !self.shown.load(Ordering::Relaxed)
            && bytes >= SHOW_FROM_BYTES
            && self.start.elapsed() >= SHOW_AFTER
        {
            self.shown.store(true, Ordering::Relaxed);
            bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
        }
    }

    /// Prints a note with the bar lifted out of its way (one write either way).
    pub fn note(&self, name: &str, message: &str) {
        match &self.bar {
            Some(bar) if self.shown.load(Ordering::Relaxed) => {
                bar.suspend(|| crate::report::note(name, message));
            }
            _ => crate::report::note(name, message),
        }
    }

    /// Clears the bar (the summary line follows in its place).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
