//! A process-wide "stop now" flag, set from a signal handler (the binaries use the
//! `ctrlc` crate) and polled by every wait in the library. Waits never block longer
//! than [`POLL`] at a time, so a Ctrl-C is noticed within that time even when the
//! signal arrives between two checks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// How long any wait sleeps before re-checking for cancellation and dead peers.
pub const POLL: Duration = Duration::from_millis(100);

/// Asks every wait in this process to give up (async-signal-safe: one atomic store).
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Whether a stop was requested.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
