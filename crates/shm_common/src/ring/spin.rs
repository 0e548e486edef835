//! A bounded, adaptive spin before a reader sleeps in `semop`.
//!
//! Waking a sleeping process costs microseconds (tens across CPUs on a VM): when
//! frames arrive every few microseconds, a reader that watches the header's counters
//! for a moment before it sleeps takes the next frame without any wake-up at all.
//! Watching costs CPU, so the spin is bounded ([`Spinner::new`]'s limit per wait),
//! and adaptive: it happens only while the writer was active moments ago (frames
//! arrived within the last [`Spinner::window`]), so an idle session sleeps at once
//! and burns nothing.
//!
//! Spinning changes nothing in the protocol: the semaphores stay the only
//! synchronisation. The spin only *watches* (the header's published/consumed counts,
//! its state, and now and then the live-writer count) and then takes what it saw with
//! the same non-blocking `semop` as ever. Every iteration still notices a stop
//! request (Ctrl-C), the end of the stream (the last writer sets the state before it
//! publishes FINAL; a writer's END raises `writers_ended`) and, at least every
//! [`LIVENESS_EVERY`], a dead writer: each ends the spin, and the sleeping path,
//! which handles all three, takes over.
//!
//! When our process may only run on one CPU the peer can only run when we give the
//! CPU up, so the spin yields; otherwise it pauses (`spin_loop`, the CPU's `pause`)
//! and yields now and then, in case the peer shares our CPU after all.

use crate::cancel;
use crate::error::Result;
use crate::layout::sem;
use crate::semaphore::{Query, Why};
use crate::session::Session;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How often a spin looks at the live-writer count (one `semctl`).
pub const LIVENESS_EVERY: Duration = Duration::from_micros(200);

/// `reader --spin` when not given, in microseconds (also what `shm-bench` labels
/// "default" in its spin rows, so the two cannot drift apart).
pub const DEFAULT_SPIN_MICROS: u64 = 50;

/// Spins up to this long (`reader --spin`, in microseconds) are accepted; longer
/// ones buy nothing a wake-up would not, and would tie up a CPU.
pub const MAX_SPIN: Duration = Duration::from_secs(1);

/// The reader's spin policy and what it has seen.
#[derive(Debug)]
pub(crate) struct Spinner {
    /// The longest spin of one wait (zero: never spin).
    limit: Duration,
    /// When frames last arrived.
    last_progress: Option<Instant>,
    /// Whether this process may run on one CPU only (then spinning yields).
    one_cpu: bool,
}

/// One spin, from the moment the ring was found empty.
#[derive(Debug)]
pub(crate) struct Episode {
    until: Instant,
    next_liveness: Instant,
    state: u32,
    writers_ended: u32,
    turns: u32,
}

/// What a turn of the spin decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Look at the counters again.
    Again,
    /// Stop spinning: sleep in `semop` (which also handles whatever ended the spin).
    Sleep,
}

impl Spinner {
    /// A spinner that spins up to `limit` per wait (clamped to [`MAX_SPIN`]).
    pub(crate) fn new(limit: Duration) -> Spinner {
        Spinner {
            limit: limit.min(MAX_SPIN),
            last_progress: None,
            one_cpu: one_cpu(),
        }
    }

    /// How recent the last frames must be for the next wait to spin: the writer is
    /// "active" if it published within this window.
    pub(crate) fn window(&self) -> Duration {
        (self.limit * 20).max(Duration::from_millis(2))
    }

    /// Frames have just arrived.
    pub(crate) fn progress(&mut self) {
        if !self.limit.is_zero() {
            self.last_progress = Some(Instant::now());
        }
    }

    /// A spin for this wait, if spinning is on and the writer was active moments ago.
    pub(crate) fn start(&self, s: &Session) -> Option<Episode> {
        let now = Instant::now();
        let recent = self
            .last_progress
            .is_some_and(|t| now.duration_since(t) < self.window());
        if self.limit.is_zero() || !recent {
            return None;
        }
        let h = s.header();
        Some(Episode {
            until: now + self.limit,
            next_liveness: now + LIVENESS_EVERY,
            state: h.state.load(Ordering::Relaxed),
            writers_ended: h.writers_ended.load(Ordering::Relaxed),
            turns: 0,
        })
    }

    /// One turn of the spin (the caller has just found nothing to take).
    pub(crate) fn turn(&self, e: &mut Episode, s: &Session) -> Result<Turn> {
        let now = Instant::now();
        if now >= e.until || cancel::requested() {
            return Ok(Turn::Sleep);
        }
        // The end of the stream, or of one writer's part: FINAL and END frames are
        // not counted in the header's data-frame counts, so the sleeping path takes
        // them (at once: they are already in FILLED).
        let h = s.header();
        if h.state.load(Ordering::Relaxed) != e.state
            || h.writers_ended.load(Ordering::Relaxed) != e.writers_ended
        {
            return Ok(Turn::Sleep);
        }
        if now >= e.next_liveness {
            e.next_liveness = now + LIVENESS_EVERY;
            let why = Why::per_message("spinning: is a writer still alive?");
            let writers = s.semaphores().query_why(sem::WRITERS, Query::Value, why)?;
            if writers <= 0 {
                return Ok(Turn::Sleep);
            }
        }
        e.turns = e.turns.wrapping_add(1);
        if self.one_cpu || e.turns % 16 == 0 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
        Ok(Turn::Again)
    }
}

/// Whether this process may run on one CPU only (its affinity mask, or the machine).
fn one_cpu() -> bool {
    use nix::sched::{sched_getaffinity, CpuSet};
    let Ok(set) = sched_getaffinity(nix::unistd::Pid::from_raw(0)) else {
        return false;
    };
    let allowed = (0..CpuSet::count())
        .filter(|&i| set.is_set(i).unwrap_or(false))
        .count();
    allowed <= 1
}
