//! [`Producer`]: a writer's side of the ring. It takes `k` free slots *and* the
//! write mutex in one atomic `semop`, fills slots `HEAD .. HEAD+k`, then publishes
//! them in one more atomic `semop` that also moves `HEAD`, adds `k` to `FILLED` and
//! releases the mutex (PROTOCOL.md §9).

use super::{batch_start, Notes, Release, Side};
use crate::cancel;
use crate::error::{Error, Result};
use crate::frame::{FrameHeader, Kind, FRAME_HEADER_SIZE};
use crate::layout::{sem, State, ROLE_READER};
use crate::semaphore::{Applied, Patience, SemOp, Why};
use crate::session::{Session, Snapshot};
use crate::trace;
use std::borrow::Cow;
use std::sync::atomic::Ordering;

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
    /// How `--explain` counts our calls: per message, but once for the END/FINAL
    /// frame.
    kind: trace::Kind,
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
            kind: trace::Kind::PerMessage,
        }
    }

    /// Slots in the ring.
    pub fn ring_slots(&self) -> u32 {
        self.s.geometry().slots
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
    /// cannot block: a regular file, or a pipe that already holds `want` full slots'
    /// worth (`FIONREAD`); never a terminal or an empty pipe.
    pub fn send_from_fd(&mut self, fd: std::os::fd::BorrowedFd<'_>, want: u32) -> Result<u64> {
        use std::os::fd::AsRawFd;
        let (head, k) = self.acquire(want.max(1))?;
        let g = self.s.geometry();
        let cap = g.payload_capacity();
        let mem = self.s.memory();
        let (mut used, mut bytes) = (0u32, 0u64);
        let mut failure = None;
        let mut at_end = false;
        while used < k && !at_end {
            let index = (head + used) % g.slots;
            // Fill the slot: read again after a short read, until the slot is full or
            // the file ends (a regular file reads short only at its end, but that is
            // the file system's promise, not ours to rely on for the framing).
            let mut n = 0;
            while n < cap {
                let filled = mem.fill_payload(index, n, fd.as_raw_fd());
                if trace::enabled() {
                    self.narrate_read(index, n, fd.as_raw_fd(), &filled);
                }
                match filled {
                    Ok(Ok(0)) => {
                        at_end = true;
                        break;
                    }
                    Ok(Ok(got)) => n += got,
                    Ok(Err(e)) => {
                        failure = Some(Error::Io {
                            what: "reading the input".into(),
                            source: e,
                        });
                        break;
                    }
                    Err(e) => {
                        failure = Some(e);
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
            match mem.crc_payload(index, n, crc) {
                Ok(crc) => FrameHeader::seal(&mut hb, crc),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
            if let Err(e) = mem.write_frame_header(index, &hb) {
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
        // The calls for our END/FINAL frame are made once: narrated in full.
        self.kind = trace::Kind::Once;
        let (head, _) = self.acquire(1)?;
        // With WRITE_MUTEX held no writer can join, end or leave, so "am I the last
        // writer still sending?" has one answer: WRITERS - ENDED, both corrected by
        // the kernel if a writer dies. (Counting live writers alone is not enough:
        // one that already sent END stays live until it leaves.)
        let last = self.s.snapshot()?.writers_still_sending() <= 1;
        self.s
            .header()
            .writers_ended
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
        let mem = self.s.memory();
        // One sweep: the payload is copied into the slot and checksummed on the way.
        let (mut hb, crc) = h.unsealed();
        FrameHeader::seal(&mut hb, mem.write_payload_crc(index, payload, crc)?);
        mem.write_frame_header(index, &hb)?;
        if trace::enabled() {
            let off = g.slot_offset(index);
            let (call, why) = if payload.is_empty() {
                let what = match h.kind {
                    Kind::Final => "the FINAL frame (we are the last writer)",
                    Kind::End => "our END frame (other writers still send)",
                    Kind::Data => "an empty message",
                };
                (
                    format!("memcpy(base + {off}, &header, {FRAME_HEADER_SIZE})"),
                    format!(
                        "slot {index}: {what}, a {FRAME_HEADER_SIZE}-byte header and no payload \
                         (no system call: the segment is our memory)"
                    ),
                )
            } else {
                (
                    format!(
                        "memcpy(base + {}, data, {})",
                        off + FRAME_HEADER_SIZE,
                        payload.len()
                    ),
                    format!(
                        "slot {index}: copy the message in, after its {FRAME_HEADER_SIZE}-byte \
                         frame header (no system call: the segment is our memory)"
                    ),
                )
            };
            trace::copy(self.kind, &call, "", &why);
        }
        Ok(())
    }

    /// Narrates one `read(2)` straight into slot `index`, at payload offset `at`.
    fn narrate_read(&self, index: u32, at: usize, fd: i32, got: &Result<std::io::Result<usize>>) {
        let g = self.s.geometry();
        let off = g.slot_offset(index) + FRAME_HEADER_SIZE + at;
        let room = g.payload_capacity() - at;
        let (result, why) = match got {
            Ok(Ok(0)) => (
                "0".to_string(),
                format!("slot {index}: nothing more, the end of the file"),
            ),
            Ok(Ok(n)) => (
                n.to_string(),
                format!(
                    "slot {index}: the file straight into the slot, after its \
                     {FRAME_HEADER_SIZE}-byte frame header (the kernel copies; no System V call)"
                ),
            ),
            Ok(Err(e)) => (format!("-1 ({e})"), "reading the input failed".to_string()),
            Err(e) => {
                return trace::copy(self.kind, &format!("read({fd}, ...)"), "", &e.to_string())
            }
        };
        trace::copy(
            self.kind,
            &format!("read({fd}, base + {off}, {room})"),
            &result,
            &why,
        );
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
            let patience = if nowait {
                Patience::NoWait
            } else {
                Patience::UpTo(cancel::POLL)
            };
            let why = Why {
                text: why,
                kind: self.kind,
                retried_until: Some("slots were free"),
            };
            if sems.apply(&ops, patience, why)? == Applied::Done {
                break;
            }
            if cancel::requested() {
                return Err(Error::Interrupted {
                    detail: "while waiting for a free slot".into(),
                });
            }
            let snap = s.snapshot_why(Why::waiting(
                "read every count: how many slots are free now (are the readers still there?)",
                "slots were free",
            ))?;
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
        s.header()
            .write_mutex_holder
            .store(s.pid(), Ordering::Relaxed);
        let head = match self.cached_head {
            Some(h) => h,
            None => {
                let h = match batch_start(s, Side::Writer, k) {
                    Ok(h) => h,
                    Err(e) => {
                        let _ = self.release_unpublished(k);
                        return Err(e);
                    }
                };
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
        self.s.semaphores().apply_now(
            &ops,
            Why::once("give back unused slots and the write mutex"),
        )
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
        s.header()
            .frames_published
            .fetch_add(u64::from(data), Ordering::Relaxed);
        s.header()
            .bytes_published
            .fetch_add(bytes, Ordering::Relaxed);
        if let Some(st) = state {
            // Ordered by the publishing semop below (a system call), which every
            // reader of the state passes through first.
            s.header().state.store(st as u32, Ordering::Relaxed);
        }
        s.header().write_mutex_holder.store(0, Ordering::Relaxed);
        // FREE: cancel our undo of k (value unchanged); HEAD moves (back, when the
        // batch wraps round the ring; not at all when it is a whole lap); FILLED += k
        // makes the frames visible; the mutex is released. All or nothing.
        let release = Release {
            counter: sem::FREE,
            taken,
            consumed: k,
            index: sem::HEAD,
            index_delta: new_head as i32 - head as i32,
            other: sem::FILLED,
            given: k,
            mutex: sem::WRITE_MUTEX,
        };
        let mut ops = release.ops();
        ops.extend(extra);
        let text = if trace::enabled() {
            let mut text = release.describe(head, slots, "the unused slots");
            if let Some(e) = extra {
                let frame = match state {
                    Some(State::Ended) => "FINAL",
                    _ => "END",
                };
                text.push_str(&format!(
                    "; {} += {} with SEM_UNDO: our {frame} frame is out",
                    sem::NAMES.get(usize::from(e.member)).unwrap_or(&"?"),
                    e.delta
                ));
            }
            Cow::Owned(text)
        } else {
            Cow::Borrowed("publish the frames and release the write mutex")
        };
        let why = Why {
            text: &text,
            kind: self.kind,
            retried_until: None,
        };
        s.semaphores().apply_now(&ops, why)?;
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
                    self.seq, self.bytes, self.unread()
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
                    "reader pid {stopped:?} is stopped (Ctrl-Z or SIGSTOP); waiting until it continues (`fg`, or `kill -CONT PID`)"
                ));
                self.said_stopped = true;
            }
        }
        Ok(())
    }

    /// Data frames published and not (yet) consumed, by the header's counts.
    fn unread(&self) -> u64 {
        let h = self.s.header();
        h.frames_published
            .load(Ordering::Relaxed)
            .saturating_sub(h.frames_consumed.load(Ordering::Relaxed))
    }

    /// Checks, after the last frame, that the readers are not all gone, unless they
    /// took everything: every data frame freed, only the FINAL frame left (a reader
    /// that got the whole stream and then died before leaving lost nothing).
    pub fn check_peers_now(&mut self) -> Result<Snapshot> {
        let snap = self.s.snapshot_why(Why::waiting(
            "all sent: read every count (has a reader come? has it taken everything?)",
            "a reader came",
        ))?;
        let slots = self.s.geometry().slots;
        let (free, filled) = (snap.sem(sem::FREE), snap.sem(sem::FILLED));
        if filled <= 1 && free + filled == slots {
            return Ok(snap);
        }
        self.check_readers(&snap, false)?;
        Ok(snap)
    }
}
