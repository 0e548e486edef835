//! The bounded buffer: [`Producer`] publishes frames into free slots, [`Consumer`]
//! takes published frames out, each in batches of as many slots as are ready.
//!
//! - `producer.rs`: taking free slots, filling them, publishing them;
//! - `consumer.rs`: taking published frames, checking them, freeing the slots;
//! - `order.rs`: what a reader expects of each writer's frames;
//! - `spin.rs`: the reader's short, adaptive spin before it sleeps.
//!
//! # The protocol in one paragraph
//! A writer takes `k` free slots *and* the write mutex in one atomic `semop`
//! (`FREE -= k`, `WRITE_MUTEX -= 1`), fills slots `HEAD .. HEAD+k`, then publishes
//! them in one more atomic `semop` that also moves `HEAD`, adds `k` to `FILLED` and
//! releases the mutex. A reader does the mirror image with `FILLED`, `READ_MUTEX`,
//! `TAIL` and `FREE`. Because the indices live in semaphores and change in the same
//! atomic call that publishes, a process killed at any instant leaves either the old
//! state or the new one, never a mix: the kernel's SEM_UNDO gives back the mutex and
//! the slots it had taken, and no half-written slot was ever counted in `FILLED`.
//!
//! # SEM_UNDO on a counting semaphore, balanced
//! Taking slots with SEM_UNDO makes the kernel return them if we die mid-batch. But
//! undo adjustments accumulate for a process's whole life, so after publishing we
//! must cancel ours without changing the value: `{FREE, +k, SEM_UNDO}` followed by
//! `{FREE, -k, 0}` in the same call does exactly that (value unchanged, adjustment
//! back to zero). A process therefore never carries an adjustment on FREE or FILLED
//! outside its critical section.

mod consumer;
mod order;
mod producer;
mod spin;

pub use consumer::{Batch, Consumer, Delivered, Received};
pub use producer::Producer;
pub use spin::{DEFAULT_SPIN_MICROS, MAX_SPIN};

use crate::error::{Error, Result};
use crate::layout::sem;
use crate::semaphore::{Query, SemOp, Why};
use crate::session::Session;

/// Default most frames taken or published per `semop`. Measured (BENCHMARKS.md,
/// "Tunables"): 64-byte frames went from 10 M msg/s at 32 to 13-14 M at 64 and
/// 16-17 M at 128-256; 4 KiB frames gain ~8% from 64 to 128 and nothing beyond. Large
/// frames are limited by [`MAX_BATCH_BYTES`] instead, so this only matters for small ones.
pub const DEFAULT_MAX_BATCH: u32 = 256;

/// A reader's batch is also capped in bytes, so that the private copy it makes (and
/// checksums) stays in the CPU cache: beyond this, batching saves no syscalls worth
/// having and the copy starts to run at memory speed instead of cache speed.
pub const MAX_BATCH_BYTES: usize = 512 << 10;

/// The batch limit for a geometry: `max_batch` frames, but no more than
/// [`MAX_BATCH_BYTES`] of slots, and at least one.
pub(crate) fn batch_limit(s: &Session, max_batch: u32) -> u32 {
    let by_bytes = (MAX_BATCH_BYTES / s.geometry().slot_size as usize).max(1) as u32;
    max_batch.min(by_bytes).clamp(1, s.geometry().slots)
}

/// Receives one-line notes for the user (waiting, a stopped peer).
pub type Notes<'a> = &'a (dyn Fn(String) + Sync);

/// The end of one side's critical section, as one atomic `semop`: cancel the undo
/// adjustment of the `taken` units of `counter` while really consuming `consumed` of
/// them, move `index` by `index_delta`, give `given` to `other`, release `mutex`.
/// Writers: counter FREE, index HEAD, other FILLED. Readers: counter FILLED, index
/// TAIL, other FREE.
pub(crate) struct Release {
    pub counter: u16,
    pub taken: u32,
    pub consumed: u32,
    pub index: u16,
    pub index_delta: i32,
    pub other: u16,
    pub given: u32,
    pub mutex: u16,
}

impl Release {
    /// The operations, zero deltas left out (a zero `sem_op` would mean "wait for
    /// zero"). All values fit in `i16`: they are bounded by the slot count (<= 32767).
    pub fn ops(&self) -> Vec<SemOp> {
        let mut ops = Vec::with_capacity(5);
        ops.push(SemOp::undo(self.counter, self.taken as i16));
        if self.consumed > 0 {
            ops.push(SemOp::new(self.counter, -(self.consumed as i16)));
        }
        if self.index_delta != 0 {
            ops.push(SemOp::new(self.index, self.index_delta as i16));
        }
        if self.given > 0 {
            ops.push(SemOp::new(self.other, self.given as i16));
        }
        ops.push(SemOp::undo(self.mutex, 1));
        ops
    }

    /// What [`Release::ops`] does, for `--explain`, true to exactly those
    /// operations: `start` is where the index stood (HEAD or TAIL), `slots` the
    /// ring's size, `rest` what the units taken and not consumed are ("unused
    /// slots", "the FINAL frame, left for the other readers"). In particular a batch
    /// that wraps round the end of the ring moves the index *back* (`{HEAD, -1}`
    /// for 3 slots from 3 in a ring of 4), and one that is a whole lap leaves it
    /// where it was, with no operation on it at all.
    pub fn describe(&self, start: u32, slots: u32, rest: &str) -> String {
        let name = |m: u16| sem::NAMES.get(usize::from(m)).copied().unwrap_or("?");
        let (counter, index, other) = (name(self.counter), name(self.index), name(self.other));
        let plural = |n: u32, one: &str, many: &str| {
            if n == 1 {
                format!("1 {one}")
            } else {
                format!("{n} {many}")
            }
        };
        let writer = self.index == sem::HEAD;
        let c = self.consumed;
        let mut parts = Vec::new();
        let head = if c == 0 {
            if writer {
                "nothing to publish"
            } else {
                "nothing to free"
            }
            .to_string()
        } else if writer {
            format!("publish {}", plural(c, "frame", "frames"))
        } else {
            format!("free {}", plural(c, "slot", "slots"))
        };
        if c > 0 {
            let end = (start + c) % slots.max(1);
            parts.push(match self.index_delta {
                d if d > 0 => format!("{index} {start} -> {end}"),
                d if d < 0 => format!(
                    "{index} {start} -> {end}, wrapping past the last slot ({d} = +{c} - {slots} slots)"
                ),
                _ => format!(
                    "{index} stays {start} ({c} slots are a full lap of the ring: no {index} operation)"
                ),
            });
        }
        if self.given > 0 {
            parts.push(format!("{other} += {}", self.given));
        }
        if self.taken > c {
            let n = self.taken - c;
            parts.push(format!("{n} back to {counter} ({rest})"));
        }
        parts.push(format!("{} released", name(self.mutex)));
        format!(
            "{head}: {} (our SEM_UNDO on {counter} cancelled)",
            parts.join(", ")
        )
    }
}

/// Which side of the ring a batch is taken by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// A writer holding `k` slots it took from FREE (and WRITE_MUTEX).
    Writer,
    /// A reader holding `k` frames it took from FILLED (and READ_MUTEX).
    Reader,
}

/// Where a batch of `k` starts (HEAD for a writer, TAIL for a reader), read while
/// holding that side's mutex.
///
/// In a shared session the index is read with every other count in one `GETALL`,
/// and the counts must agree with it: every slot is free (FREE), held by the writer
/// (`k`, and only by the mutex holder), or published and not yet freed, and those are
/// exactly the slots from TAIL to HEAD. A writer checks that `slots - FREE - k` is
/// that distance, a reader that `FILLED + k` is: if the counts were changed from
/// outside, a writer would overwrite frames nobody read and a reader would take
/// slots nobody published (and deliver old frames twice), so both refuse
/// ([`Error::Corrupt`]). A byte-stream session needs no such look: its reader checks
/// every frame's place in the stream (`order.rs`), which catches both.
pub(crate) fn batch_start(s: &Session, side: Side, k: u32) -> Result<u32> {
    let slots = s.geometry().slots;
    let (index, why) = match side {
        Side::Writer => (
            sem::HEAD,
            "read one semaphore (HEAD/TAIL: where our batch starts)",
        ),
        Side::Reader => (
            sem::TAIL,
            "read one semaphore (HEAD/TAIL: where our batch starts)",
        ),
    };
    if !s.shared() {
        let v = s
            .semaphores()
            .query_why(index, Query::Value, Why::per_message(why))?;
        return Ok(v.max(0) as u32);
    }
    let v = s.semaphores().values_why(Why::per_message(
        "read every count at once: where our batch starts, and that the counts agree",
    ))?;
    let get = |m: u16| u32::from(v.get(usize::from(m)).copied().unwrap_or(0));
    let (head, tail) = (get(sem::HEAD), get(sem::TAIL));
    let distance = (head + slots - tail.min(slots)) % slots;
    let held = match side {
        Side::Writer => i64::from(slots) - i64::from(get(sem::FREE)) - i64::from(k),
        Side::Reader => i64::from(get(sem::FILLED)) + i64::from(k),
    };
    let agree = head < slots
        && tail < slots
        && (0..=i64::from(slots)).contains(&held)
        && held as u32 % slots == distance;
    if !agree {
        return Err(Error::Corrupt {
            key: s.key(),
            detail: format!(
                "the semaphore counts were changed from outside: HEAD {head}, TAIL {tail}, FREE {}, FILLED {} \
                 do not add up for a {} holding {k} of {slots} slots",
                get(sem::FREE),
                get(sem::FILLED),
                match side {
                    Side::Writer => "writer",
                    Side::Reader => "reader",
                }
            ),
        });
    }
    Ok(match side {
        Side::Writer => head,
        Side::Reader => tail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(head: u32, taken: u32, used: u32, slots: u32) -> Release {
        Release {
            counter: sem::FREE,
            taken,
            consumed: used,
            index: sem::HEAD,
            index_delta: ((head + used) % slots) as i32 - head as i32,
            other: sem::FILLED,
            given: used,
            mutex: sem::WRITE_MUTEX,
        }
    }

    fn has_op(r: &Release, member: u16) -> bool {
        r.ops().iter().any(|o| o.member == member && o.delta != 0)
    }

    #[test]
    fn a_batch_that_moves_head_forward_says_so() {
        let r = writer(0, 3, 3, 4);
        assert!(has_op(&r, sem::HEAD));
        let t = r.describe(0, 4, "unused slots");
        assert!(
            t.starts_with("publish 3 frames: HEAD 0 -> 3, FILLED += 3"),
            "{t}"
        );
    }

    #[test]
    fn a_batch_that_wraps_says_head_goes_back() {
        let r = writer(3, 3, 3, 4);
        assert!(r.ops().contains(&SemOp::new(sem::HEAD, -1)));
        let t = r.describe(3, 4, "unused slots");
        assert!(
            t.contains("HEAD 3 -> 2, wrapping past the last slot (-1 = +3 - 4 slots)"),
            "{t}"
        );
    }

    #[test]
    fn a_full_lap_has_no_head_operation_and_says_so() {
        let r = writer(2, 4, 4, 4);
        assert!(!has_op(&r, sem::HEAD));
        let t = r.describe(2, 4, "unused slots");
        assert!(
            t.contains("HEAD stays 2") && t.contains("no HEAD operation"),
            "{t}"
        );
    }

    #[test]
    fn nothing_published_claims_no_move() {
        let r = writer(1, 3, 0, 4);
        assert!(!has_op(&r, sem::HEAD) && !has_op(&r, sem::FILLED));
        let t = r.describe(1, 4, "unused slots");
        assert!(!t.contains("HEAD") && !t.contains("FILLED"), "{t}");
        assert!(t.contains("3 back to FREE (unused slots)"), "{t}");
    }
}
