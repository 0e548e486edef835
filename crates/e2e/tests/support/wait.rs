//! Waiting for a state: always polled, always bounded. A wait that runs out panics
//! with `HANG:` first, the tag the chaos schedule counts.

use std::time::{Duration, Instant};

/// Polls `cond` every few milliseconds until it holds (true) or `limit` passes (false).
pub fn until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// Like [`until`], but a timeout fails the test, naming `what` was awaited.
pub fn wait_until(limit: Duration, what: &str, cond: impl FnMut() -> bool) {
    assert!(
        until(limit, cond),
        "HANG: timed out after {limit:?} waiting for {what}"
    );
}

/// Fails with `HANG: <ctx>: timed out waiting for <what>` unless `ok`.
pub fn must(ok: bool, ctx: &str, what: &str) {
    assert!(ok, "HANG: {ctx}: timed out waiting for {what}");
}

/// Polls `f` until it returns `Some`, at most `limit`.
pub fn eventually<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
