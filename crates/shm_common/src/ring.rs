//! The bounded buffer: [`Producer`] publishes frames into free slots, [`Consumer`]
//! takes published frames out, each in batches of as many slots as are ready.
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

use crate::cancel;
use crate::error::{Error, Result};
use crate::frame::{FrameHeader, Kind, FRAME_HEADER_SIZE};
use crate::layout::{off, sem, State, ROLE_READER, ROLE_WRITER};
use crate::semaphore::{SemOp, Wait};
use crate::session::{Session, Snapshot};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

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
fn batch_limit(s: &Session, max_batch: u32) -> u32 {
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
struct Release {
    counter: u16,
    taken: u32,
    consumed: u32,
    index: u16,
    index_delta: i32,
    other: u16,
    given: u32,
    mutex: u16,
}

impl Release {
    /// The operations, zero deltas left out (a zero `sem_op` would mean "wait for
    /// zero"). All values fit in `i16`: they are bounded by the slot count (<= 32767).
    fn ops(&self) -> Vec<SemOp> {
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
}

/// Writes frames into the ring.
pub struct Producer<'a> {
    s: &'a Session,
    seq: u64,
    bytes: u64,
    max_batch: u32,
    /// In an exclusive session only we move HEAD, so we can remember it.
    cached_head: Option<u32>,
    said_waiting: bool,
    said_stopped: bool,
    note: Notes<'a>,
}

impl std::fmt::Debug for Producer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("seq", &self.seq)
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl<'a> Producer<'a> {
    /// A producer on a session joined as a writer.
    pub fn new(s: &'a Session, max_batch: u32, note: Notes<'a>) -> Producer<'a> {
        Producer {
            s,
            seq: 0,
            bytes: 0,
            max_batch: max_batch.clamp(1, s.geometry().slots),
            cached_head: None,
            said_waiting: false,
            said_stopped: false,
            note,
        }
    }

    /// Largest payload one frame can carry.
    pub fn capacity(&self) -> usize {
        self.s.geometry().payload_capacity()
    }

    /// Data frames and payload bytes published so far.
    pub fn totals(&self) -> (u64, u64) {
        (self.seq, self.bytes)
    }

    /// Publishes every payload in `frames` as one DATA frame each, in order, taking
    /// as many slots per `semop` as are free (up to the batch limit).
    pub fn send(&mut self, frames: &[&[u8]]) -> Result<()> {
        let cap = self.capacity();
        if let Some(big) = frames.iter().find(|f| f.len() > cap) {
            return Err(Error::InvalidArgument {
                what: "frame",
                reason: format!("{} bytes exceed the slot payload of {cap}", big.len()),
            });
        }
        let mut rest = frames;
        while !rest.is_empty() {
            let want = rest.len().min(self.max_batch as usize) as u32;
            let (head, k) = self.acquire(want)?;
            let (now, later) = rest.split_at(k as usize);
            let mut bytes = 0u64;
            let mut result = Ok(());
            for (j, payload) in now.iter().enumerate() {
                let h = FrameHeader {
                    len: payload.len() as u32,
                    kind: Kind::Data,
                    seq: self.seq + j as u64,
                    writer: self.s.id(),
                    offset: self.bytes + bytes,
                };
                result = self.write_slot(head, j as u32, &h, payload);
                if result.is_err() {
                    break;
                }
                bytes += payload.len() as u64;
            }
            if let Err(e) = result {
                // Give back the slots and the mutex: the caller may still leave, and
                // leaving takes the mutexes.
                let _ = self.release_unpublished(k);
                return Err(e);
            }
            self.publish(head, k, k, bytes, None)?;
            self.seq += u64::from(k);
            self.bytes += bytes;
            rest = later;
        }
        Ok(())
    }

    /// Splits `data` into frames of at most the slot payload and publishes them.
    pub fn send_bytes(&mut self, data: &[u8]) -> Result<()> {
        let chunks: Vec<&[u8]> = data.chunks(self.capacity()).collect();
        self.send(&chunks)
    }

    /// Fills up to `want` slots straight from `fd` with one `read(2)` each, so the
    /// input is copied once (by the kernel, into the segment) instead of through a
    /// buffer of ours, then publishes them. Returns the bytes sent; 0 means end of
    /// input. The write mutex is held across the reads, so use it only where a read
    /// cannot block for long (a regular file), never for a pipe or a terminal.
    pub fn send_from_fd(&mut self, fd: std::os::fd::BorrowedFd<'_>, want: u32) -> Result<u64> {
        use std::os::fd::AsRawFd;
        let (head, k) = self.acquire(want.max(1))?;
        let g = self.s.geometry();
        let cap = g.payload_capacity();
        let seg = self.s.segment();
        let (mut used, mut bytes) = (0u32, 0u64);
        let mut failure = None;
        let mut at_end = false;
        while used < k && !at_end {
            let at = g.slot_offset((head + used) % g.slots);
            // Fill the slot: read again after a short read, until the slot is full or
            // the file ends (a regular file reads short only at its end, but that is
            // the file system's promise, not ours to rely on for the framing).
            let mut n = 0;
            while n < cap {
                match seg.read_from_fd(at + FRAME_HEADER_SIZE + n, cap - n, fd.as_raw_fd()) {
                    Ok(0) => {
                        at_end = true;
                        break;
                    }
                    Ok(got) => n += got,
                    Err(e) => {
                        failure = Some(Error::Io {
                            what: "reading the input".into(),
                            source: e,
                        });
                        break;
                    }
                }
            }
            if n == 0 || failure.is_some() {
                break;
            }
            let h = FrameHeader {
                len: n as u32,
                kind: Kind::Data,
                seq: self.seq + u64::from(used),
                writer: self.s.id(),
                offset: self.bytes + bytes,
            };
            let (mut hb, crc) = h.unsealed();
            match seg.crc32c_append(at + FRAME_HEADER_SIZE, n, crc) {
                Ok(crc) => FrameHeader::seal(&mut hb, crc),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
            if let Err(e) = seg.write_bytes(at, &hb) {
                failure = Some(e);
                break;
            }
            used += 1;
            bytes += n as u64;
        }
        self.publish_some(head, k, used, used, bytes, None, None)?;
        self.seq += u64::from(used);
        self.bytes += bytes;
        match failure {
            Some(e) => Err(e),
            None => Ok(bytes),
        }
    }

    /// Publishes this writer's END frame, or the FINAL frame if it is the last live
    /// writer (then the session's state becomes Ended). Returns whether it was FINAL.
    pub fn finish(&mut self) -> Result<bool> {
        let (head, _) = self.acquire(1)?;
        // With WRITE_MUTEX held no writer can join, end or leave, so "am I the last
        // writer still sending?" has one answer: WRITERS - ENDED, both corrected by
        // the kernel if a writer dies. (Counting live writers alone is not enough:
        // one that already sent END stays live until it leaves.)
        let last = self.s.snapshot()?.writers_still_sending() <= 1;
        self.s
            .counter32(off::WRITERS_ENDED)?
            .fetch_add(1, Ordering::Relaxed);
        let kind = if last { Kind::Final } else { Kind::End };
        let h = FrameHeader {
            len: 0,
            kind,
            seq: self.seq,
            writer: self.s.id(),
            offset: self.bytes,
        };
        if let Err(e) = self.write_slot(head, 0, &h, &[]) {
            let _ = self.release_unpublished(1);
            return Err(e);
        }
        let state = last.then_some(State::Ended);
        // The same atomic semop counts us as ended (SEM_UNDO: undone if we die).
        self.publish_some(head, 1, 1, 0, 0, state, Some(SemOp::undo(sem::ENDED, 1)))?;
        self.s.mark_ended();
        Ok(last)
    }

    fn write_slot(&self, head: u32, j: u32, h: &FrameHeader, payload: &[u8]) -> Result<()> {
        let g = self.s.geometry();
        let index = (head + j) % g.slots;
        let at = g.slot_offset(index);
        let seg = self.s.segment();
        seg.write_bytes(at + FRAME_HEADER_SIZE, payload)?;
        seg.write_bytes(at, &h.encode(payload))
    }

    /// Takes between 1 and `want` free slots and the write mutex; returns HEAD and the
    /// count. Sleeps while the ring is full, checking for dead readers and Ctrl-C.
    fn acquire(&mut self, want: u32) -> Result<(u32, u32)> {
        let s = self.s;
        let sems = s.semaphores();
        let slots = s.geometry().slots;
        let mut k = want;
        // Fast path: the ring usually has room; one semop, no sleeping. Every later
        // attempt sleeps (with a timeout), so a busy mutex or a full ring never turns
        // into a loop of failing non-blocking calls.
        let mut nowait = true;
        loop {
            let ops = [
                SemOp::undo(sem::FREE, -(k as i16)),
                SemOp::undo(sem::WRITE_MUTEX, -1),
            ];
            let why = if nowait {
                "take free slots and the write mutex, if both are there now"
            } else {
                "sleep until enough slots are free and the write mutex is ours"
            };
            if sems.apply(&ops, Some(cancel::POLL), nowait, why, true)? == Wait::Done {
                break;
            }
            if cancel::requested() {
                return Err(Error::Interrupted {
                    detail: "while waiting for a free slot".into(),
                });
            }
            let snap = s.snapshot()?;
            if !nowait {
                // A whole poll interval went by: are the readers still there?
                self.check_readers(&snap, true)?;
            }
            let free = u32::from(snap.sems[usize::from(sem::FREE)]);
            // Take what is free now; if nothing is, wait for half the ring (or all we
            // want) so that a full ring does not hand over one slot per wake-up.
            k = if free > 0 {
                free.min(want)
            } else {
                want.min((slots / 2).max(1))
            };
            nowait = false;
        }
        s.pid_field(off::WRITE_MUTEX_HOLDER)?
            .store(s.pid(), Ordering::Relaxed);
        let head = match self.cached_head {
            Some(h) => h,
            None => {
                let h = sems.query(sem::HEAD, libc::GETVAL)? as u32;
                if h >= slots {
                    let _ = self.release_unpublished(k);
                    return Err(Error::Corrupt {
                        key: s.key(),
                        detail: format!("HEAD is {h} but the ring has {slots} slots"),
                    });
                }
                h
            }
        };
        Ok((head, k))
    }

    /// Gives back slots and the mutex without publishing (on an error mid-batch).
    fn release_unpublished(&self, k: u32) -> Result<()> {
        let ops = [
            SemOp::undo(sem::FREE, k as i16),
            SemOp::undo(sem::WRITE_MUTEX, 1),
        ];
        self.s
            .semaphores()
            .apply(
                &ops,
                None,
                false,
                "give back unused slots and the write mutex",
                false,
            )
            .map(drop)
    }

    /// Publishes `k` filled slots from `head` (of which `data` are DATA frames with
    /// `bytes` payload bytes) and releases the write mutex, in one atomic `semop`.
    fn publish(
        &mut self,
        head: u32,
        k: u32,
        data: u32,
        bytes: u64,
        state: Option<State>,
    ) -> Result<()> {
        self.publish_some(head, k, k, data, bytes, state, None)
    }

    /// Publishes the first `used` of the `taken` slots from `head` and gives the rest
    /// back (`used < taken` when the input ended inside a batch), releasing the write
    /// mutex, in one atomic `semop`.
    /// `extra` joins the same call (the END/FINAL publish raises ENDED).
    #[allow(clippy::too_many_arguments)] // each is one part of the one semop
    fn publish_some(
        &mut self,
        head: u32,
        taken: u32,
        used: u32,
        data: u32,
        bytes: u64,
        state: Option<State>,
        extra: Option<SemOp>,
    ) -> Result<()> {
        let s = self.s;
        let slots = s.geometry().slots;
        let k = used;
        let new_head = (head + k) % slots;
        s.counter64(off::FRAMES_PUBLISHED)?
            .fetch_add(u64::from(data), Ordering::Relaxed);
        s.counter64(off::BYTES_PUBLISHED)?
            .fetch_add(bytes, Ordering::Relaxed);
        if let Some(st) = state {
            s.counter32(off::STATE)?.store(st as u32, Ordering::Release);
        }
        s.pid_field(off::WRITE_MUTEX_HOLDER)?
            .store(0, Ordering::Relaxed);
        // FREE: cancel our undo of k (value unchanged); HEAD moves; FILLED += k makes
        // the frames visible; the mutex is released. All or nothing.
        let mut ops = Release {
            counter: sem::FREE,
            taken,
            consumed: k,
            index: sem::HEAD,
            index_delta: new_head as i32 - head as i32,
            other: sem::FILLED,
            given: k,
            mutex: sem::WRITE_MUTEX,
        }
        .ops();
        ops.extend(extra);
        s.semaphores().apply(
            &ops,
            None,
            false,
            "publish the frames: HEAD moves, FILLED grows, write mutex released",
            true,
        )?;
        if !s.shared() {
            self.cached_head = Some(new_head);
        }
        Ok(())
    }

    /// While blocked on a full ring: fail if every reader that came has gone.
    fn check_readers(&mut self, snap: &Snapshot, blocked: bool) -> Result<()> {
        let lost = |s: &Snapshot| s.live_readers() == 0 && s.lost_readers() > 0;
        // Suspicion from the unlocked snapshot, confirmation under both mutexes.
        let confirmed = lost(snap) && self.s.locked_snapshot()?.is_some_and(|s| lost(&s));
        if confirmed {
            return Err(Error::PeerGone {
                key: self.s.key(),
                detail: format!(
                    "the reader died or left before the end; {} frames ({} bytes) of ours were published, {} of them never read",
                    self.seq, self.bytes, snap.sems[usize::from(sem::FILLED)]
                ),
            });
        }
        if blocked && snap.readers_joined == 0 && !self.said_waiting {
            (self.note)(format!(
                "the ring is full; waiting for a reader on key {} (start `reader --key {}`)",
                self.s.key(),
                self.s.key()
            ));
            self.said_waiting = true;
        }
        if !self.said_stopped {
            let stopped = self.s.stopped_peers(ROLE_READER);
            if !stopped.is_empty() {
                (self.note)(format!(
                    "reader pid {stopped:?} is stopped (SIGSTOP?); waiting for it to continue"
                ));
                self.said_stopped = true;
            }
        }
        Ok(())
    }

    /// Checks, after the last frame, that the readers are not all gone.
    pub fn check_peers_now(&mut self) -> Result<Snapshot> {
        let snap = self.s.snapshot()?;
        self.check_readers(&snap, false)?;
        Ok(snap)
    }
}

/// Per-writer "next expected (sequence, offset)". Frames usually come from the same
/// writer as the previous one, so that writer's entry is kept out of the map: one
/// comparison per frame instead of a hash lookup and insert.
#[derive(Debug, Default)]
struct WriterOrder {
    current: Option<(u32, u64, u64)>,
    others: HashMap<u32, (u64, u64)>,
}

impl WriterOrder {
    fn expected(&mut self, writer: u32) -> (u64, u64) {
        match self.current {
            Some((w, seq, off)) if w == writer => (seq, off),
            _ => self.others.get(&writer).copied().unwrap_or((0, 0)),
        }
    }

    fn advance(&mut self, writer: u32, seq: u64, offset: u64) {
        if let Some((w, s, o)) = self.current {
            if w != writer {
                self.others.insert(w, (s, o));
                self.others.remove(&writer);
            }
        }
        self.current = Some((writer, seq, offset));
    }
}

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
    /// How long to spin before sleeping (`None`: sleep at once).
    spin: Option<std::time::Duration>,
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
            spin: None,
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

    /// Spin for up to `d` watching for new frames before going to sleep in `semop`
    /// (opt-in: it buys latency with CPU time; see BENCHMARKS.md).
    pub fn set_spin(&mut self, d: Option<std::time::Duration>) {
        self.spin = d.filter(|d| !d.is_zero());
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
        self.release(tail, k, consumed, data_frames, bytes)?;
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
        let published = s.counter64(off::FRAMES_PUBLISHED)?.load(Ordering::Relaxed);
        let consumed = s.counter64(off::FRAMES_CONSUMED)?.load(Ordering::Relaxed);
        Ok(published
            .saturating_sub(consumed)
            .min(u64::from(self.max_batch)) as u32)
    }

    fn acquire(&mut self) -> Result<(u32, u32)> {
        let s = self.s;
        let slots = s.geometry().slots;
        let spin_until = self.spin.map(|d| Instant::now() + d);
        loop {
            // Fast path: take what the header says is waiting, without a GETALL.
            let hint = self.waiting_hint()?;
            if hint > 0 && self.try_take(hint)? {
                return self.tail(hint, slots);
            }
            // Opt-in (--spin): poll the counters for a while before sleeping, which
            // trades CPU for the ~2-20 us a wake-up costs.
            if spin_until.is_some_and(|t| Instant::now() < t) {
                // Yield rather than burn: if the peer shares our CPU it gets to run
                // (and publish); if it does not, yielding is a cheap no-op.
                std::thread::yield_now();
                continue;
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
            let why = "sleep until a frame is published and the read mutex is ours";
            if s.semaphores()
                .apply(&ops, Some(cancel::POLL), false, why, true)?
                == Wait::Done
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
                let why = "holding the read mutex: take the other frames that are waiting too";
                let k = if more > 0
                    && s.semaphores().apply(&ops, None, true, why, true)? == Wait::Done
                {
                    1 + more
                } else {
                    1
                };
                return self.tail(k, slots);
            }
            // A whole poll interval without data (or a signal): look at everything.
            let snap = s.snapshot()?;
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
        let why = "take every published frame (up to the batch limit) and the read mutex";
        Ok(self.s.semaphores().apply(&ops, None, true, why, true)? == Wait::Done)
    }

    fn tail(&mut self, k: u32, slots: u32) -> Result<(u32, u32)> {
        let s = self.s;
        s.pid_field(off::READ_MUTEX_HOLDER)?
            .store(s.pid(), Ordering::Relaxed);
        let tail = match self.cached_tail {
            Some(t) => t,
            None => s.semaphores().query(sem::TAIL, libc::GETVAL)? as u32,
        };
        if tail >= slots {
            let _ = self.release(0, k, 0, 0, 0);
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
            let lost = snap.lost_writers();
            return Err(Error::PeerGone {
                key: self.s.key(),
                detail: format!(
                    "the writer died or stopped before the end of the stream ({lost} writer(s) lost); \
                     delivered {} frames, {} bytes, every one complete and in order",
                    self.frames, self.bytes
                ),
            });
        }
        if !self.said_stopped {
            let stopped = self.s.stopped_peers(ROLE_WRITER);
            if !stopped.is_empty() {
                (self.note)(format!(
                    "writer pid {stopped:?} is stopped (SIGSTOP?); waiting for it to continue"
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
        let at = g.slot_offset((tail + j) % g.slots);
        let corrupt = |detail: String| Error::Corrupt {
            key: s.key(),
            detail,
        };
        let mut hb = [0u8; FRAME_HEADER_SIZE];
        s.segment().read_bytes(at, &mut hb)?;
        let h = FrameHeader::decode(&hb, g.payload_capacity())
            .map_err(|e| corrupt(format!("slot {}: {e}", (tail + j) % g.slots)))?;
        let start = batch.data.len();
        let end = start + h.len as usize;
        // Copy the payload out, then checksum the copy: the bytes checked are the
        // bytes delivered, whatever a peer does to the slot meanwhile.
        s.segment()
            .read_append(at + FRAME_HEADER_SIZE, h.len as usize, &mut batch.data)?;
        if let Err(e) = FrameHeader::verify(&hb, &batch.data[start..end]) {
            batch.data.truncate(start);
            return Err(corrupt(format!("slot {}: {e}", (tail + j) % g.slots)));
        }
        // Order checks: a writer's frames arrive in its order. With one reader they
        // arrive without gaps, and the byte offsets add up.
        let exclusive = !s.shared();
        let (next, offset) = self.order.expected(h.writer);
        let in_order = if exclusive {
            h.seq == next && h.offset == offset
        } else {
            h.seq >= next
        };
        if !in_order {
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

    /// Frees `consumed` slots, leaves the rest published, releases the read mutex.
    fn release(
        &mut self,
        tail: u32,
        taken: u32,
        consumed: u32,
        frames: u64,
        bytes: u64,
    ) -> Result<()> {
        let s = self.s;
        let slots = s.geometry().slots;
        let new_tail = (tail + consumed) % slots;
        s.counter64(off::FRAMES_CONSUMED)?
            .fetch_add(frames, Ordering::Relaxed);
        s.counter64(off::BYTES_CONSUMED)?
            .fetch_add(bytes, Ordering::Relaxed);
        s.pid_field(off::READ_MUTEX_HOLDER)?
            .store(0, Ordering::Relaxed);
        let ops = Release {
            counter: sem::FILLED,
            taken,
            consumed,
            index: sem::TAIL,
            index_delta: new_tail as i32 - tail as i32,
            other: sem::FREE,
            given: consumed,
            mutex: sem::READ_MUTEX,
        }
        .ops();
        let why = if consumed == 0 {
            "put the FINAL frame back for the other readers and release the read mutex"
        } else if consumed < taken {
            "free the slots before FINAL (TAIL moves, FREE grows), put FINAL back, release the mutex"
        } else {
            "free the slots: TAIL moves, FREE grows, read mutex released"
        };
        s.semaphores().apply(&ops, None, false, why, true)?;
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
