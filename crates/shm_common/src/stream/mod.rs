//! What the `writer` and `reader` binaries run: input to ring, ring to output.
//!
//! The binaries only parse arguments and print; everything here is testable
//! in-process. `writer.rs` and `reader.rs` are the two sides, `input.rs` and
//! `output.rs` how they wait for their file descriptors.

mod input;
mod output;
mod reader;
mod writer;

pub use input::Input;
pub use output::Output;
pub use reader::run_reader;
pub use writer::run_writer;

use crate::error::{Error, Result};
use crate::key::IpcKey;
use crate::layout::Geometry;
use crate::session::{Departure, Session};
use std::time::Duration;

/// What a finished run did, for the one-line summary.
#[derive(Debug, Clone)]
pub struct Summary {
    /// "writer" or "reader".
    pub role: &'static str,
    /// Payload bytes moved.
    pub bytes: u64,
    /// Data frames moved.
    pub frames: u64,
    /// Wall-clock time from joining to leaving.
    pub elapsed: Duration,
    /// Whether we removed the objects on the way out.
    pub departure: Departure,
    /// A writer that finished before any reader came (`--persist`): the stream
    /// stays in the segment for one.
    pub waits_for_reader: bool,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.bytes as f64 / secs / 1e6
        } else {
            0.0
        };
        let messages = if self.frames == 1 {
            "message"
        } else {
            "messages"
        };
        write!(
            f,
            "{}: {} bytes, {} {messages} in {:.3} s ({:.1} MB/s)",
            self.role, self.bytes, self.frames, secs, rate
        )?;
        match self.departure {
            Departure::Removed => write!(f, "; removed the segment and semaphore set"),
            Departure::Left if self.waits_for_reader => {
                write!(f, "; the stream waits in the kernel for a reader")
            }
            Departure::Left => write!(f, "; left the objects to the peer that remains"),
            Departure::LeftToOwner(uid) => write!(
                f,
                "; left the objects to their owner (uid {uid}), who alone may remove them"
            ),
            Departure::AlreadyGone => Ok(()),
        }
    }
}

/// Writer settings (from the command line).
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// The key.
    pub key: IpcKey,
    /// Geometry if we create the session.
    pub geometry: Geometry,
    /// Mode bits for new objects.
    pub mode: u32,
    /// Finish without waiting for a reader to come.
    pub persist: bool,
    /// One frame per line; shareable with other `--lines` writers.
    pub lines: bool,
    /// Most frames per semop.
    pub max_batch: u32,
    /// Slow motion: one frame per semop and this pause after each (zero: none).
    pub delay: Duration,
}

/// Reader settings.
#[derive(Debug, Clone)]
pub struct ReaderConfig {
    /// The key.
    pub key: IpcKey,
    /// Prefix each message with `[writer N] `.
    pub tag: bool,
    /// Most frames per semop.
    pub max_batch: u32,
    /// Spin this long watching for data before sleeping (`None`: never).
    pub spin: Option<Duration>,
    /// Slow motion: one frame per semop and this pause after each (zero: none).
    pub delay: Duration,
}

/// Leaves after a failure, keeping the original error (a failure to leave is only
/// worth a note: the kernel's SEM_UNDO un-counts us at exit anyway).
///
/// A session found corrupt is removed by whoever finds it (nobody can complete it,
/// and the objects prove they are ours: our magic, our attach); a session whose set
/// was removed from outside loses its segment too, so nothing is left at the key.
fn leave_after(session: &mut Session, err: Error, note: &dyn Fn(String)) -> Error {
    let key = session.key();
    if matches!(err, Error::Corrupt { .. }) {
        match session.remove_broken() {
            Ok(true) => note(format!(
                "removed the corrupt session's segment and semaphore set at key {key}"
            )),
            Ok(false) => {}
            Err(e) => note(format!("could not remove the corrupt session: {e}")),
        }
        return err;
    }
    match session.leave(false) {
        Ok(Departure::Removed) => note(format!(
            "removed the segment and semaphore set at key {key}"
        )),
        Ok(Departure::AlreadyGone) => {
            if let Ok(true) = session.remove_orphaned_segment() {
                note(format!(
                    "the semaphore set at key {key} was removed from outside; removed its segment too"
                ));
            }
        }
        Ok(Departure::Left) => {}
        Ok(Departure::LeftToOwner(uid)) => note(format!(
            "left the objects at key {key} to their owner (uid {uid}), who alone may remove them"
        )),
        Err(e) => note(format!("could not leave cleanly: {e}")),
    }
    err
}

/// Sleeps `d` (slow motion, `--delay`), in steps short enough to notice Ctrl-C.
pub(crate) fn pause(d: Duration) -> Result<()> {
    let until = std::time::Instant::now() + d;
    loop {
        if crate::cancel::requested() {
            return Err(Error::Interrupted {
                detail: "during a --delay pause".into(),
            });
        }
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(crate::cancel::POLL));
    }
}
