//! [`Consumer`]: a reader's side of the ring. It takes published frames and the
//! read mutex in one atomic `semop`, copies each frame out and checks it, then frees
//! the slots in one more `semop` that moves `TAIL`, gives the slots to `FREE` and
//! releases the mutex (PROTOCOL.md §10).

use super::order::WriterOrder;
use super::spin::{Spinner, Turn};
use super::{batch_limit, batch_start, Notes, Release, Side};
use crate::cancel;
use crate::error::{Error, Result};
use crate::frame::{FrameHeader, Kind, FRAME_HEADER_SIZE};
use crate::layout::{sem, ROLE_WRITER};
use crate::semaphore::{Applied, Patience, SemOp, Why};
use crate::session::{Session, Snapshot};
use crate::trace;
use std::borrow::Cow;
use std::sync::atomic::Ordering;

/// One delivered frame: who sent it, its number, and where its payload is in the
/// batch buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Writer id.
    pub writer: u32,
    /// Writer's sequence number.
    pub seq: u64,
    /// Range in [`Batch::data`].
    pub start: usize,
    /// End of the range.
    pub end: usize,
}

/// Frames taken out of the ring in one step, copied into private memory.
#[derive(Debug, Default)]
pub struct Batch {
    /// The frames, in ring order.
    pub frames: Vec<Delivered>,
    /// Their payloads, back to back.
    pub data: Vec<u8>,
}

/// What [`Consumer::recv`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Some frames were taken (possibly zero data frames, e.g. only an END).
    Frames,
    /// The FINAL frame: the stream is complete.
    EndOfStream,
}

/// Takes frames out of the ring.
pub struct Consumer<'a> {
    s: &'a Session,
    max_batch: u32,
    cached_tail: Option<u32>,
    /// The spin before sleeping (spin.rs).
    spinner: Spinner,
    /// Next expected sequence number and offset per writer.
    order: WriterOrder,
    frames: u64,
    bytes: u64,
    ended_writers: u32,
    said_stopped: bool,
    note: Notes<'a>,
}

impl std::fmt::Debug for Consumer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("frames", &self.frames)
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl<'a> Consumer<'a> {
    /// A consumer on a session joined as a reader.
    pub fn new(s: &'a Session, max_batch: u32, note: Notes<'a>) -> Consumer<'a> {
        Consumer {
            s,
            max_batch: batch_limit(s, max_batch),
            cached_tail: None,
            spinner: Spinner::new(std::time::Duration::ZERO),
            order: WriterOrder::default(),
            frames: 0,
            bytes: 0,
            ended_writers: 0,
            said_stopped: false,
            note,
        }
    }

    /// Data frames and payload bytes received so far.
    pub fn totals(&self) -> (u64, u64) {
        (self.frames, self.bytes)
    }

    /// Spin for up to `d` watching for new frames before going to sleep in `semop`,
    /// while the writer is active (spin.rs); `None` or zero: sleep at once.
    pub fn set_spin(&mut self, d: Option<std::time::Duration>) {
        self.spinner = Spinner::new(d.unwrap_or_default());
    }

    /// Waits for published frames, copies up to the batch limit into `batch`
    /// (replacing its contents), validates every one, and frees their slots.
    pub fn recv(&mut self, batch: &mut Batch) -> Result<Received> {
        batch.frames.clear();
        batch.data.clear();
        let (tail, k) = self.acquire()?;
        let mut consumed = 0;
        let mut outcome = Received::Frames;
        let mut failure = None;
        let mut bytes = 0u64;
        for j in 0..k {
            match self.take_slot(tail, j, batch) {
                Ok(Kind::Data) => {
                    bytes += batch.frames.last().map_or(0, |d| (d.end - d.start) as u64);
                    consumed += 1;
                }
                Ok(Kind::End) => {
                    self.ended_writers += 1;
                    consumed += 1;
                }
                Ok(Kind::Final) => {
                    // Left in place (not consumed) so every other reader sees it too.
                    self.ended_writers += 1;
                    outcome = Received::EndOfStream;
                    break;
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let data_frames = batch.frames.len() as u64;
        let rest = if outcome == Received::EndOfStream {
            "the FINAL frame, left in the ring for the other readers"
        } else {
            "frames left in the ring (a bad frame stopped the batch)"
        };
        self.release(tail, k, consumed, data_frames, bytes, rest)?;
        self.frames += data_frames;
        self.bytes += bytes;
        match failure {
            Some(e) => Err(e),
            None => Ok(outcome),
        }
    }

    /// Frames waiting, according to the header's counters: a hint (it may be stale
    /// and does not count END/FINAL frames); the `semop` that follows is the
    /// authority. Reading it costs no system call.
    fn waiting_hint(&self) -> Result<u32> {
        let s = self.s;
        let h = s.header();
        let published = h.frames_published.load(Ordering::Relaxed);
        let consumed = h.frames_consumed.load(Ordering::Relaxed);
        Ok(published
            .saturating_sub(consumed)
            .min(u64::from(self.max_batch)) as u32)
    }

    fn acquire(&mut self) -> Result<(u32, u32)> {
        let taken = self.take_waiting();
        if taken.is_ok() {
            self.spinner.progress();
        }
        taken
    }

    fn take_waiting(&mut self) -> Result<(u32, u32)> {
        let s = self.s;
        let slots = s.geometry().slots;
        let mut spin = self.spinner.start(s);
        loop {
            // Fast path: take what the header says is waiting, without a GETALL.
            let hint = self.waiting_hint()?;
            if hint > 0 && self.try_take(hint)? {
                return self.tail(hint, slots);
            }
            // While the writer is active: watch the counters a moment before
            // sleeping, which saves the microseconds of a wake-up (spin.rs).
            if let Some(e) = spin.as_mut() {
                if self.spinner.turn(e, s)? == Turn::Again {
                    continue;
                }
                spin = None;
            }
            if cancel::requested() {
                return Err(Error::Interrupted {
                    detail: "while waiting for data".into(),
                });
            }
            // Sleep until at least one frame is published (returns at once if one is).
            let ops = [
                SemOp::undo(sem::FILLED, -1),
                SemOp::undo(sem::READ_MUTEX, -1),
            ];
            let why =
                Why::per_message("sleep until a frame is published and the read mutex is ours")
                    .retried_until("a frame was published");
            if s.semaphores()
                .apply(&ops, Patience::UpTo(cancel::POLL), why)?
                == Applied::Done
            {
                // We hold the mutex and one frame. If more are waiting, take them too
                // (one more non-blocking semop): with several readers contending, the
                // sleeping path is the common one, and one frame per wake-up would
                // throw batching away.
                let more = self
                    .waiting_hint()?
                    .saturating_sub(1)
                    .min(self.max_batch - 1);
                let ops = [SemOp::undo(sem::FILLED, -(more as i16))];
                let why = Why::per_message(
                    "holding the read mutex: take the other frames that are waiting too",
                );
                let k = if more > 0
                    && s.semaphores().apply(&ops, Patience::NoWait, why)? == Applied::Done
                {
                    1 + more
                } else {
                    1
                };
                return self.tail(k, slots);
            }
            // A whole poll interval without data (or a signal): look at everything.
            let snap = s.snapshot_why(Why::waiting(
                "nothing for 100 ms: read every count (is a writer still there?)",
                "a frame was published",
            ))?;
            let filled = u32::from(snap.sems[usize::from(sem::FILLED)]);
            if filled > 0 {
                let k = filled.min(self.max_batch);
                if self.try_take(k)? {
                    return self.tail(k, slots);
                }
            } else {
                self.check_writers(&snap)?;
            }
        }
    }

    /// Takes `k` published frames and the read mutex if both are there now.
    fn try_take(&self, k: u32) -> Result<bool> {
        let ops = [
            SemOp::undo(sem::FILLED, -(k as i16)),
            SemOp::undo(sem::READ_MUTEX, -1),
        ];
        let why = Why::per_message(
            "take every published frame (up to the batch limit) and the read mutex",
        )
        .retried_until("a frame was published");
        Ok(self.s.semaphores().apply(&ops, Patience::NoWait, why)? == Applied::Done)
    }

    fn tail(&mut self, k: u32, slots: u32) -> Result<(u32, u32)> {
        let s = self.s;
        s.header()
            .read_mutex_holder
            .store(s.pid(), Ordering::Relaxed);
        let tail = match self.cached_tail {
            Some(t) => t,
            None => match batch_start(s, Side::Reader, k) {
                Ok(t) => t,
                Err(e) => {
                    // Give the frames and the mutex back: nothing was delivered.
                    let _ = self.release(0, k, 0, 0, 0, "nothing was delivered");
                    return Err(e);
                }
            },
        };
        if tail >= slots {
            let _ = self.release(0, k, 0, 0, 0, "nothing was delivered");
            return Err(Error::Corrupt {
                key: s.key(),
                detail: format!("TAIL is {tail} but the ring has {slots} slots"),
            });
        }
        Ok((tail, k))
    }

    /// While the ring is empty: fail if every writer is gone without finishing.
    fn check_writers(&mut self, snap: &Snapshot) -> Result<()> {
        // Gone for good only if nothing is left to deliver either: a writer may have
        // published its last frames just before it died.
        // (FILLED == 0 also means no FINAL, which is never consumed. The header's
        // state is no evidence: a writer can die after setting it and before
        // publishing FINAL, found by the model check, model/README.md.)
        let gone = |s: &Snapshot| s.live_writers() == 0 && s.sems[usize::from(sem::FILLED)] == 0;
        let confirmed = if gone(snap) {
            self.s.locked_snapshot()?.filter(gone)
        } else {
            None
        };
        if let Some(snap) = confirmed {
            let lost = snap
                .lost_writers()
                .map_or_else(String::new, |n| format!(" ({n} writer(s) lost)"));
            return Err(Error::PeerGone {
                key: self.s.key(),
                detail: format!(
                    "the writer left before the end of its stream (interrupted, killed or crashed){lost}; \
                     delivered {} frames, {} bytes, every one complete and in order",
                    self.frames, self.bytes
                ),
            });
        }
        if !self.said_stopped {
            let stopped = self.s.stopped_peers(ROLE_WRITER);
            if !stopped.is_empty() {
                (self.note)(format!(
                    "writer pid {stopped:?} is stopped (Ctrl-Z or SIGSTOP); waiting until it continues (`fg`, or `kill -CONT PID`)"
                ));
                self.said_stopped = true;
            }
        }
        Ok(())
    }

    /// Copies slot `tail + j` into `batch`, validating it. Reads every field once.
    fn take_slot(&mut self, tail: u32, j: u32, batch: &mut Batch) -> Result<Kind> {
        let s = self.s;
        let g = s.geometry();
        let index = (tail + j) % g.slots;
        let corrupt = |detail: String| Error::Corrupt {
            key: s.key(),
            detail,
        };
        let mem = s.memory();
        let hb = mem.read_frame_header(index)?;
        let h = FrameHeader::decode(&hb, g.payload_capacity())
            .map_err(|e| corrupt(format!("slot {index}: {e}")))?;
        // END and FINAL frames carry no payload (PROTOCOL.md §5): bytes there are not
        // the stream's, and are never delivered.
        if h.kind != Kind::Data && h.len != 0 {
            return Err(corrupt(format!(
                "slot {index}: an END/FINAL frame with {} payload bytes (it carries none)",
                h.len
            )));
        }
        let start = batch.data.len();
        let end = start + h.len as usize;
        // Copy the payload out and checksum it in the same sweep: the bytes checked
        // are the bytes delivered, whatever a peer does to the slot meanwhile.
        let crc = mem.append_payload(
            index,
            h.len as usize,
            &mut batch.data,
            FrameHeader::header_crc(&hb),
        )?;
        if trace::enabled() {
            let off = g.slot_offset(index);
            let (kind, call, why) = match h.kind {
                Kind::Data => (
                    trace::Kind::PerMessage,
                    format!(
                        "memcpy(out + {start}, base + {}, {})",
                        off + FRAME_HEADER_SIZE,
                        h.len
                    ),
                    format!(
                        "slot {index}: copy the message out after its {FRAME_HEADER_SIZE}-byte \
                         frame header, checking its CRC-32C on the way (no system call: the \
                         segment is our memory)"
                    ),
                ),
                Kind::End | Kind::Final => (
                    trace::Kind::Once,
                    format!("memcpy(&header, base + {off}, {FRAME_HEADER_SIZE})"),
                    format!(
                        "slot {index}: {}, a header with no payload (no system call: the segment \
                         is our memory)",
                        if h.kind == Kind::Final {
                            "the FINAL frame (the stream is complete)"
                        } else {
                            "a writer's END frame (it has sent everything)"
                        }
                    ),
                ),
            };
            trace::copy(kind, &call, "", &why);
        }
        if let Err(e) = FrameHeader::check_crc(&hb, crc) {
            batch.data.truncate(start);
            return Err(corrupt(format!("slot {index}: {e}")));
        }
        // Order checks: a writer's frames arrive in its order (order.rs).
        if let Err((next, offset)) = self.order.check(&h, !s.shared()) {
            batch.data.truncate(start);
            return Err(corrupt(format!(
                "writer {} frame {} (offset {}) arrived when {next} (offset {offset}) was due",
                h.writer, h.seq, h.offset
            )));
        }
        if h.kind == Kind::Data {
            self.order
                .advance(h.writer, h.seq + 1, h.offset + u64::from(h.len));
            batch.frames.push(Delivered {
                writer: h.writer,
                seq: h.seq,
                start,
                end,
            });
        }
        Ok(h.kind)
    }

    /// Frees `consumed` slots, leaves the rest published (`rest` says what they
    /// are, for `--explain`), releases the read mutex.
    fn release(
        &mut self,
        tail: u32,
        taken: u32,
        consumed: u32,
        frames: u64,
        bytes: u64,
        rest: &str,
    ) -> Result<()> {
        let s = self.s;
        let slots = s.geometry().slots;
        let new_tail = (tail + consumed) % slots;
        s.header()
            .frames_consumed
            .fetch_add(frames, Ordering::Relaxed);
        s.header()
            .bytes_consumed
            .fetch_add(bytes, Ordering::Relaxed);
        s.header().read_mutex_holder.store(0, Ordering::Relaxed);
        let release = Release {
            counter: sem::FILLED,
            taken,
            consumed,
            index: sem::TAIL,
            index_delta: new_tail as i32 - tail as i32,
            other: sem::FREE,
            given: consumed,
            mutex: sem::READ_MUTEX,
        };
        let ops = release.ops();
        // Putting frames back happens once, at the end of the stream (or on an
        // error): narrated in full.
        let (text, kind) = if trace::enabled() {
            let kind = if consumed < taken {
                trace::Kind::Once
            } else {
                trace::Kind::PerMessage
            };
            (Cow::Owned(release.describe(tail, slots, rest)), kind)
        } else {
            (
                Cow::Borrowed("free the slots and release the read mutex"),
                trace::Kind::PerMessage,
            )
        };
        let why = Why {
            text: &text,
            kind,
            retried_until: None,
        };
        s.semaphores().apply_now(&ops, why)?;
        if !s.shared() {
            self.cached_tail = Some(new_tail);
        }
        Ok(())
    }

    /// How many writers' END or FINAL frames this reader has seen.
    pub fn ended_writers(&self) -> u32 {
        self.ended_writers
    }
}
