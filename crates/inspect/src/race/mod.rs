//! The race demonstration: the same ring *without* the semaphores, and what it costs.
//!
//! The classic handout solves the bounded buffer with a shared counter and two busy
//! loops (Silberschatz, *Operating System Concepts*, ch. 6):
//! ```text
//! writer:  while (count == N) ;  slot[in]  = frame;  in  = (in + 1) % N;  count++;
//! reader:  while (count == 0) ;  frame = slot[out]; out = (out + 1) % N;  count--;
//! ```
//! It looks right and is wrong: `count++` is a load, an add and a store, and when the
//! reader's `count--` lands between the writer's load and store, one of the two
//! updates is lost. From then on the counter lies. When it says more than is there,
//! the reader reads a slot the writer has not (re)written yet; when it says less, the
//! writer overwrites a frame nobody has read; and when both work on one slot at once,
//! the reader copies half of one frame and half of the next.
//!
//! [`run_unsynchronized`] (in `handout.rs`) runs exactly that protocol on our ring
//! layout (header page, slots with a 32-byte frame header and a payload) in a System
//! V segment, and [`Tally`] counts what the checksums and sequence numbers catch.
//! [`run_synchronized`] sends the same frames through the real `Producer` and
//! `Consumer` on the same geometry and counts the same things: zero of each.
//!
//! # Making the two sides meet
//! Run as written, the two sides rarely meet: the window between the load and the
//! store of `count` is a nanosecond, and on one CPU a thread is almost never
//! preempted exactly there. A demonstration that "shows nothing" teaches the
//! opposite of what it is for, so [`Window`] widens that window (a `sched_yield` or a
//! short sleep between the load and the store), the way a preemption at that instant
//! would. Nothing else changes: the bug shown is the handout's lost update, made
//! likely instead of rare. [`Window::None`] runs the handout as compiled.
//!
//! # Two threads, one segment
//! The writer and the reader are two threads, each with its own attach of the one
//! segment (two mappings of the same pages, as two processes would have). Every
//! shared access is a word-sized *relaxed atomic* load or store: on x86-64 and
//! AArch64 that is the same plain `mov`/`ldr` the C handout compiles to, so the
//! protocol races exactly as the handout does, while the Rust program itself has no
//! data race (which would be undefined behaviour, and would let the compiler "prove"
//! the race away). `count++` is written as a separate load and store, as C does it.
//!
//! # Seeing the race, not only its damage
//! Each thread keeps its own log of what it did (`events.rs`), stamped by one shared
//! atomic counter, and the logs are merged after both threads have ended: the
//! interleaving that did the damage is printed (`story.rs`). The logs are plain
//! per-thread vectors, so recording is race-free too.
//!
//! # Cleaning up
//! Everything is created at a fresh key with `IPC_EXCL`, and a [`KeyGuard`] removes
//! whatever is at that key when the run ends: normally, on an error, on a panic, and
//! after Ctrl-C (every loop polls [`shm_common::cancel`]). Only `kill -9` can leave the
//! segment behind; it carries our magic, so `make clean` recognises and removes it.

mod events;
mod handout;
pub mod report;
mod story;
mod synchronized;
mod tally;

pub use handout::{run_unsynchronized, Unsynchronized, Updates, COUNT};
pub use synchronized::run_synchronized;
pub use tally::{Tally, MAX_FRAMES};

use shm_common::layout::Geometry;
use shm_common::segment;
use shm_common::semaphore;
use shm_common::{Error, IpcKey, Result};
use std::fmt;
use std::time::Duration;

/// How the demonstration runs.
#[derive(Debug, Clone, Copy)]
pub struct RaceConfig {
    /// Where to create the segment (and, for the synchronized run, the set).
    pub key: IpcKey,
    /// Ring geometry; a small ring makes the two sides meet often.
    pub geometry: Geometry,
    /// Frames the writer sends.
    pub frames: u64,
    /// Hard limit on one run's duration.
    pub time_limit: Duration,
    /// What the unsynchronized run does between the load and the store of `count`.
    pub window: Window,
}

/// What happens between the load and the store of `count++` and `count--` in the
/// unsynchronized run: the instant at which a preemption loses an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Nothing: the handout as compiled (load, add, store, back to back). The two
    /// sides seldom meet there, so a run may well catch nothing.
    None,
    /// `sched_yield()`, repeated until at least [`Window::YIELD_AT_LEAST`] has
    /// passed: hands the CPU to the other side if it is waiting for one (always, on
    /// one CPU), as a preemption at that instant would; on an idle CPU, where a
    /// yield returns at once, the window still outlasts a turn of the other side's
    /// loop on its own CPU.
    Yield,
    /// A sleep (at least this long; the kernel's timer slack adds to it): the thread
    /// is off the CPU for a while, as a preempted one is.
    Sleep(Duration),
}

impl Window {
    /// The default: a `sched_yield()` (see README section 4 for the measurements).
    pub const DEFAULT: Window = Window::Yield;

    /// The shortest [`Window::Yield`]: a few turns of the other side's loop in a
    /// release build (about a microsecond each), and far below the milliseconds a
    /// real preemption lasts.
    pub const YIELD_AT_LEAST: Duration = Duration::from_micros(5);

    /// `none`, `yield`, or a sleep such as `20us` or `1ms` (at most 100 ms).
    pub fn parse(text: &str) -> Result<Window> {
        let bad = |reason: String| Error::InvalidArgument {
            what: "--window",
            reason,
        };
        let t = text.trim();
        match t {
            "none" => return Ok(Window::None),
            "yield" => return Ok(Window::Yield),
            _ => {}
        }
        let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
        let n: u64 = digits.parse().map_err(|_| {
            bad(format!(
                "{text:?} is not `none`, `yield` or a sleep like `20us`"
            ))
        })?;
        let d = match unit {
            "us" => Duration::from_micros(n),
            "ms" => Duration::from_millis(n),
            _ => {
                return Err(bad(format!(
                    "{text:?}: a sleep needs the unit `us` or `ms`"
                )))
            }
        };
        if d.is_zero() || d > Duration::from_millis(100) {
            return Err(bad(format!(
                "{text:?}: a sleep must be between 1us and 100ms"
            )));
        }
        Ok(Window::Sleep(d))
    }

    /// Spends the window: called between the load and the store of `count`.
    pub(crate) fn widen(self) {
        match self {
            Window::None => {}
            Window::Yield => {
                let start = std::time::Instant::now();
                loop {
                    std::thread::yield_now();
                    if start.elapsed() >= Window::YIELD_AT_LEAST {
                        break;
                    }
                }
            }
            Window::Sleep(d) => std::thread::sleep(d),
        }
    }
}

impl fmt::Display for Window {
    /// As `--window` spells it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::None => f.write_str("none"),
            Window::Yield => f.write_str("yield"),
            Window::Sleep(d) if d.subsec_nanos() % 1_000_000 == 0 => {
                write!(f, "{}ms", d.as_millis())
            }
            Window::Sleep(d) => write!(f, "{}us", d.as_micros()),
        }
    }
}

/// Removes whatever is at its key when dropped. Armed only on a key where this run
/// created everything itself (with `IPC_EXCL`), so it can never remove a stranger's
/// objects; that is what makes a removal in `Drop` acceptable here.
#[derive(Debug)]
pub struct KeyGuard {
    key: IpcKey,
}

impl KeyGuard {
    /// Removes the set, then the segment, at the key. Returns whether anything was
    /// there. Errors are ignored on purpose: this is the last line of defence.
    pub fn sweep(&self) -> bool {
        let mut any = false;
        if let Ok(Some(id)) = semaphore::find(self.key) {
            any |= semaphore::remove_id(self.key, id).unwrap_or(false);
        }
        if let Ok(Some(id)) = segment::find(self.key) {
            any |= segment::remove_id(self.key, id).unwrap_or(false);
        }
        any
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        self.sweep();
    }
}

fn check_frames(frames: u64) -> Result<()> {
    if frames == 0 || frames > MAX_FRAMES {
        return Err(Error::InvalidArgument {
            what: "--frames",
            reason: format!("{frames} is outside 1..={MAX_FRAMES}"),
        });
    }
    Ok(())
}

/// Refuses a key where anything exists; returns the guard for it.
fn claim(key: IpcKey) -> Result<KeyGuard> {
    if segment::find(key)?.is_some() || semaphore::find(key)?.is_some() {
        return Err(Error::Conflict {
            key,
            detail: "something already exists at this key; the race demo needs a fresh one".into(),
            remove_hint: None,
        });
    }
    Ok(KeyGuard { key })
}

/// A key nothing uses yet, in the `0x5ace....` range ("race"), claimed from the
/// one allocator (`shm_cli::keys`) until the claim is dropped.
pub fn fresh_key() -> Result<shm_cli::keys::ClaimedKey> {
    shm_cli::keys::claim(shm_cli::keys::Range::RACE).map_err(|e| Error::Io {
        what: "finding a fresh key".into(),
        source: e,
    })
}

/// A thread of a run panicked (a bug in this program).
fn panicked(which: &str) -> Error {
    Error::Io {
        what: format!("the {which} thread"),
        source: std::io::Error::other("panicked"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_parses_and_prints() {
        for (text, w) in [
            ("none", Window::None),
            ("yield", Window::Yield),
            ("20us", Window::Sleep(Duration::from_micros(20))),
            ("2ms", Window::Sleep(Duration::from_millis(2))),
        ] {
            assert_eq!(Window::parse(text).ok(), Some(w), "{text}");
            assert_eq!(w.to_string(), text);
        }
        for bad in ["", "0us", "20", "20s", "101ms", "fast", "us"] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }
}
