//! `--explain`: a narration of every System V call, as a student would write it in C.
//!
//! The safe wrappers (`segment.rs`, `semaphore.rs`) report each call here with its
//! arguments spelled by name and a short reason. Calls on the per-message path are
//! marked *hot*: the first few are printed in full, then one summary line per second
//! says how many were made, so that a long stream does not flood the terminal.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many hot calls are narrated in full before summarising.
const HOT_LINES_IN_FULL: u64 = 12;

static ENABLED: AtomicBool = AtomicBool::new(false);
static STATE: Mutex<HotState> = Mutex::new(HotState {
    prefix: String::new(),
    hot_seen: 0,
    since_summary: 0,
    last_summary: None,
});

struct HotState {
    prefix: String,
    hot_seen: u64,
    since_summary: u64,
    last_summary: Option<Instant>,
}

/// Turns narration on for this process; `prefix` starts each line (e.g. `"writer"`).
pub fn enable(prefix: &str) {
    if let Ok(mut s) = STATE.lock() {
        s.prefix = prefix.to_string();
    }
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether narration is on (one relaxed load: free when off).
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Narrates one call: `call` is the C-like text, `result` what it returned, `why` the
/// reason. `hot` calls are summarised after the first few.
pub fn call(hot: bool, call: &str, result: &str, why: &str) {
    if !enabled() {
        return;
    }
    let Ok(mut s) = STATE.lock() else { return };
    let mut err = std::io::stderr().lock();
    let now = Instant::now();
    if hot {
        s.hot_seen += 1;
        if s.hot_seen > HOT_LINES_IN_FULL {
            // This call is counted in the next summary line.
            s.since_summary += 1;
            if s.hot_seen == HOT_LINES_IN_FULL + 1 {
                let _ = writeln!(
                    err,
                    "[{}] ... steady state: further per-message calls are summarised once a second",
                    s.prefix
                );
                s.last_summary = Some(now);
            } else if s
                .last_summary
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
            {
                summarise(&mut s, &mut err, now, call, result);
            }
            return;
        }
    }
    // Before a call narrated in full, account for the hot calls not yet summarised,
    // so the narration stays in order and every call is counted (also at the end).
    if s.since_summary > 0 {
        summarise(&mut s, &mut err, now, "", "");
    }
    let _ = writeln!(err, "[{}] {call} = {result}    // {why}", s.prefix);
}

/// Writes one summary line for the hot calls counted since the last one.
fn summarise(s: &mut HotState, err: &mut impl Write, now: Instant, call: &str, result: &str) {
    let secs = s
        .last_summary
        .map_or(0.0, |t| now.duration_since(t).as_secs_f64());
    let last = if call.is_empty() {
        String::new()
    } else {
        format!(" (last: {call} = {result})")
    };
    let _ = writeln!(
        err,
        "[{}] ... {} more per-message calls in the last {secs:.1} s{last}",
        s.prefix, s.since_summary
    );
    s.since_summary = 0;
    s.last_summary = Some(now);
}

/// Formats `IPC_CREAT|IPC_EXCL|0600`-style flags for shmget/semget.
pub fn ipc_flags(flags: i32) -> String {
    let mut parts = Vec::new();
    if flags & libc::IPC_CREAT != 0 {
        parts.push("IPC_CREAT".to_string());
    }
    if flags & libc::IPC_EXCL != 0 {
        parts.push("IPC_EXCL".to_string());
    }
    let mode = flags & 0o777;
    parts.push(if mode == 0 {
        "0".to_string()
    } else {
        format!("0{mode:o}")
    });
    parts.join("|")
}

#[cfg(test)]
mod tests {
    #[test]
    fn flags_are_spelled_like_c() {
        let f = libc::IPC_CREAT | libc::IPC_EXCL | 0o600;
        assert_eq!(super::ipc_flags(f), "IPC_CREAT|IPC_EXCL|0600");
        assert_eq!(super::ipc_flags(0), "0");
    }
}
