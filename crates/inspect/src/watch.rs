//! `--watch`: redraws the page every interval until Ctrl-C.

use crate::{look, page};
use shm_common::view::{Inspector, Report};
use shm_common::IpcKey;
use std::time::Duration;

/// Clears the terminal and redraws the page every `interval` until `stop()` says
/// so (the binary wires it to Ctrl-C). Keeps one read-only attach. Returns the last
/// report.
pub fn watch(
    key: IpcKey,
    interval: Duration,
    width: usize,
    out: &mut dyn std::io::Write,
    stop: &dyn Fn() -> bool,
) -> std::io::Result<Report> {
    let mut inspector = Inspector::new(key, true);
    let step = Duration::from_millis(50).min(interval);
    loop {
        let report = look(&mut inspector);
        // Home the cursor and clear the screen, then draw: one write per frame.
        let frame = format!(
            "\x1b[H\x1b[2J{}\n(refreshing every {:.1} s; Ctrl-C to quit)\n",
            page::page(&report, width),
            interval.as_secs_f64()
        );
        out.write_all(frame.as_bytes())?;
        out.flush()?;
        let mut waited = Duration::ZERO;
        while waited < interval {
            if stop() {
                return Ok(report);
            }
            std::thread::sleep(step);
            waited += step;
        }
    }
}
