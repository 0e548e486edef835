//! `--explain`: every System V call the library makes, as a student would write it
//! in C, with a reason.
//!
//! The safe wrappers (`segment/`, `semaphore.rs`, `objects.rs`) report each call as
//! a [`Call`]: the C text with its arguments spelled by name, the result, why it is
//! made, and what [`Kind`] of call it is (made once, once per message, or one try
//! of a wait). The ring (`ring/`) also reports the steps beside the calls that
//! move the data: each copy into or out of a slot ([`Step::Copy`]), which is no
//! System V call at all. The library only reports; how the calls are shown (a
//! prefix, which ones in full, how the others are counted) is decided by the
//! program that installs a sink with [`set_sink`] (the binaries use
//! `shm_cli::explain`). Without a sink, reporting costs one relaxed atomic load per
//! call site.

use std::cell::Cell;
use std::sync::OnceLock;

/// How often a call is made, so that a narrator can decide what to show in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Made once or a few times in a session: creating, joining, leaving, removing,
    /// the END/FINAL frame. Each one marks a step of the session worth reading.
    Once,
    /// Made once per message or batch (taking and publishing slots, the copies): a
    /// long stream makes thousands, so a narrator shows the first few and counts
    /// the rest.
    PerMessage,
    /// One try of a wait that is retried until something happens: a lookup that
    /// found nothing yet, a `semtimedop` (or `IPC_NOWAIT` `semop`) that had to give
    /// up, the counts read between two tries, and the later rounds of the search
    /// for a session at a key (`Session::open`: their lookups, and the rest of a
    /// round that found the same ids again). The text completes "retried until
    /// ...": `a writer created them`. The call that ends the wait (the same call
    /// succeeding, or the next step) comes as [`Kind::Once`] or
    /// [`Kind::PerMessage`], or as a try with a new result.
    Waiting(&'static str),
}

/// What a reported step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A System V call (`shmget`, `shmat`, `shmdt`, `shmctl`, `semget`, `semop`,
    /// `semtimedop`, `semctl`): what `strace -e trace=ipc` records.
    SystemV,
    /// A copy into or out of a slot: a `memcpy` in our own memory (the segment is
    /// mapped, so no system call is involved), or the `read(2)` that fills a slot
    /// straight from a file. Never a System V call.
    Copy,
}

/// One narrated step.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// Once, per message, or one try of a wait.
    pub kind: Kind,
    /// A System V call, or a copy beside them.
    pub step: Step,
    /// The call as C: `semop(42, [{0 /* FREE */, -1, SEM_UNDO}])`, or
    /// `memcpy(base + 4128, data, 6)`.
    pub call: &'a str,
    /// What it returned: `0`, `shmid 7`, `-1 (EAGAIN: would block / timed out)`;
    /// empty for a `memcpy` (whose result, its first argument, says nothing).
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

thread_local! {
    /// Set while this thread retries a search ([`retrying`]): what it waits for.
    static RETRYING: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// Runs `f` as a retry of a wait for `until` when `retry` is set: every call it
/// reports is then [`Kind::Waiting`] (unless it already is, with its own text).
/// For a loop that repeats a whole search (`Session::open` looking at a key every
/// few milliseconds while a creator works), so that its second and later rounds
/// are recognisable as repeats of the first.
pub(crate) fn retrying<T>(retry: bool, until: &'static str, f: impl FnOnce() -> T) -> T {
    if !retry || !enabled() {
        return f();
    }
    let before = RETRYING.with(|r| r.replace(Some(until)));
    let out = f();
    RETRYING.with(|r| r.set(before));
    out
}

/// Reports one System V call to the sink, if there is one.
pub(crate) fn call(kind: Kind, call: &str, result: &str, why: &str) {
    report(kind, Step::SystemV, call, result, why);
}

/// Reports one copy into or out of a slot (no System V call) to the sink.
pub(crate) fn copy(kind: Kind, call: &str, result: &str, why: &str) {
    report(kind, Step::Copy, call, result, why);
}

fn report(kind: Kind, step: Step, call: &str, result: &str, why: &str) {
    if let Some(sink) = SINK.get() {
        let kind = match (kind, RETRYING.with(Cell::get)) {
            (Kind::Waiting(_), _) | (_, None) => kind,
            (_, Some(until)) => Kind::Waiting(until),
        };
        sink(&Call {
            kind,
            step,
            call,
            result,
            why,
        });
    }
}

/// A semaphore member as C code written with an enum would pass it: its number,
/// and its name in a comment (`4 /* HEAD */`), so that it reads like the source and
/// matches what `strace` prints (`sem_num=4`).
pub fn member(index: u16, names: &[&str]) -> String {
    match names.get(usize::from(index)) {
        Some(name) => format!("{index} /* {name} */"),
        None => index.to_string(),
    }
}

/// A failed call's result as C reports it: `-1 (EEXIST: File exists)`.
pub(crate) fn failure(e: &std::io::Error) -> String {
    format!("-1 ({})", errno_text(e))
}

/// `EEXIST: File exists`: the errno's name (where it is one the System V calls
/// return) and its description.
pub(crate) fn errno_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    let name = match e.raw_os_error() {
        Some(libc::ENOENT) => "ENOENT",
        Some(libc::EEXIST) => "EEXIST",
        Some(libc::EACCES) => "EACCES",
        Some(libc::EPERM) => "EPERM",
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::EIDRM) => "EIDRM",
        Some(libc::EAGAIN) => "EAGAIN",
        Some(libc::EINTR) => "EINTR",
        Some(libc::ENOMEM) => "ENOMEM",
        Some(libc::ENOSPC) => "ENOSPC",
        Some(libc::ERANGE) => "ERANGE",
        Some(libc::EFBIG) => "EFBIG",
        Some(libc::E2BIG) => "E2BIG",
        Some(libc::EFAULT) => "EFAULT",
        Some(libc::EBADF) => "EBADF",
        _ => return text,
    };
    format!("{name}: {text}")
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

    #[test]
    fn failures_name_their_errno() {
        let e = std::io::Error::from_raw_os_error(libc::EEXIST);
        assert_eq!(super::failure(&e), "-1 (EEXIST: File exists)");
    }

    #[test]
    fn members_are_numbers_named_in_a_comment() {
        let names = crate::layout::sem::NAMES;
        assert_eq!(super::member(0, names), "0 /* FREE */");
        assert_eq!(super::member(4, names), "4 /* HEAD */");
        assert_eq!(super::member(42, names), "42");
    }
}
