//! `--explain`: every System V call the library makes, as a student would write it
//! in C, with a reason.
//!
//! The safe wrappers (`segment/`, `semaphore.rs`, `objects.rs`) report each call as
//! a [`Call`]: the C text with its arguments spelled by name, the result, why it is
//! made, and whether it is on the per-message path. The library only reports; how
//! the calls are shown (a prefix, which ones in full, how the per-message ones are
//! summarised) is decided by the program that installs a sink with [`set_sink`]
//! (the binaries use `shm_cli::explain`). Without a sink, reporting costs one
//! relaxed atomic load per call site.

use std::sync::OnceLock;

/// One System V call, as narrated.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// Made once per message (taking and publishing slots): a long stream makes
    /// thousands, so a narrator shows the first few and counts the rest.
    pub per_message: bool,
    /// The call as C: `semop(42, [{FREE, -1, SEM_UNDO}])`.
    pub call: &'a str,
    /// What it returned: `0`, `shmid 7`, `-1 (EAGAIN: would block / timed out)`.
    pub result: &'a str,
    /// Why it is made.
    pub why: &'a str,
}

/// Where calls are reported.
pub type Sink = dyn Fn(&Call<'_>) + Send + Sync;

static SINK: OnceLock<Box<Sink>> = OnceLock::new();

/// Installs the sink that receives every call from now on. Only one can be
/// installed per process; a second is refused and handed back.
pub fn set_sink(sink: Box<Sink>) -> Result<(), Box<Sink>> {
    SINK.set(sink)
}

/// Whether calls are being reported (a sink is installed).
#[inline]
pub fn enabled() -> bool {
    SINK.get().is_some()
}

/// Reports one call to the sink, if there is one.
pub(crate) fn call(per_message: bool, call: &str, result: &str, why: &str) {
    if let Some(sink) = SINK.get() {
        sink(&Call {
            per_message,
            call,
            result,
            why,
        });
    }
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
