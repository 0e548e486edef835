//! The race demonstration: the same ring *without* the semaphores, and what it costs.
//!
//! The classic handout solves the bounded buffer with a shared counter and two busy
//! loops (Silberschatz, *Operating System Concepts*, ch. 6):
//! ```text
//! writer:  while (count == N) ;  slot[in]  = frame;  in  = (in + 1) % N;  count++;
//! reader:  while (count == 0) ;  frame = slot[out];  out = (out + 1) % N;  count--;
//! ```
//! It looks right and is wrong: `count++` is a load, an add and a store, and when the
//! reader's `count--` lands between the writer's load and store, one of the two
//! updates is lost. From then on the counter lies. When it says more than is there,
//! the reader reads a slot the writer has not (re)written yet; when it says less, the
//! writer overwrites a frame nobody has read; and when both work on one slot at once,
//! the reader copies half of one frame and half of the next.
//!
//! [`run_unsynchronized`] runs exactly that protocol on our ring layout (header page,
//! slots with a 32-byte [`FrameHeader`] and a payload) in a System V segment, at full
//! speed, and [`Tally`] counts what the checksums and sequence numbers catch.
//! [`run_synchronized`] sends the same frames through the real [`Producer`] and
//! [`Consumer`] on the same geometry and counts the same things: zero of each.
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
//! # Cleaning up
//! Everything is created at a fresh key with `IPC_EXCL`, and a [`KeyGuard`] removes
//! whatever is at that key when the run ends: normally, on an error, on a panic, and
//! after Ctrl-C (every loop polls [`crate::cancel`]). Only `kill -9` can leave the
//! segment behind; it carries our magic, so `make clean` recognises and removes it.

use crate::cancel;
use crate::error::{Error, Result};
use crate::frame::{FrameHeader, Kind, FRAME_HEADER_SIZE};
use crate::key::IpcKey;
use crate::layout::{self, off, Geometry, State};
use crate::ring::{Batch, Consumer, Producer, Received};
use crate::segment::{self, Segment};
use crate::semaphore;
use crate::session::{OpenOptions, Role, Session};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Header offset of the handout's shared `count` (an i32), in the header page's
/// unused space after the peer table. Only the unsynchronized run uses it.
pub const COUNT: usize = 1024;
const _: () = assert!(COUNT >= off::PEERS + layout::MAX_PEERS * layout::PEER_ENTRY_SIZE);
const _: () = assert!(COUNT + 4 <= layout::HEADER_SIZE);

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
}

/// What the reader saw. In a correct ring every count but `delivered` is zero and
/// `delivered == frames_written`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Frames the writer wrote.
    pub frames_written: u64,
    /// Slot reads the reader made.
    pub reads: u64,
    /// Distinct frames delivered intact.
    pub delivered: u64,
    /// Torn frames: the checksum (or the payload pattern) failed, because the slot
    /// was being overwritten while the reader copied it.
    pub torn: u64,
    /// Lost frames: written but never delivered (overwritten before anyone read
    /// them): the gaps in the sequence numbers.
    pub lost: u64,
    /// Duplicates: a frame delivered a second time (same sequence number twice).
    pub duplicates: u64,
    /// Read-before-write: reads that found no new frame, an empty slot or the old
    /// frame the writer had not yet replaced, taken as new. (When that old frame
    /// was valid it was delivered again, so it is counted in `duplicates` too.)
    pub read_before_write: u64,
    /// Frames delivered after a later one (out of order).
    pub out_of_order: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Whether the time limit (or Ctrl-C) stopped the run before all frames went.
    pub cut_short: bool,
}

impl Tally {
    /// Torn + lost + duplicates + read-before-write + out-of-order.
    pub fn anomalies(&self) -> u64 {
        self.torn + self.lost + self.duplicates + self.read_before_write + self.out_of_order
    }

    /// One stable line: `result MODE k=v ...`, for scripts and tests.
    pub fn line(&self, mode: &str) -> String {
        format!(
            "result {mode} frames_written={} reads={} delivered={} torn={} lost={} duplicates={} read_before_write={} out_of_order={} anomalies={} elapsed_ms={} cut_short={}",
            self.frames_written,
            self.reads,
            self.delivered,
            self.torn,
            self.lost,
            self.duplicates,
            self.read_before_write,
            self.out_of_order,
            self.anomalies(),
            self.elapsed.as_millis(),
            self.cut_short
        )
    }

    /// A few lines that say what each number means.
    pub fn explained(&self) -> String {
        format!(
            "  frames written ......... {:>9}\n  \
               reads by the reader .... {:>9}\n  \
               delivered intact ....... {:>9}\n  \
               torn frames ............ {:>9}   checksum failed: copied while being overwritten\n  \
               lost frames ............ {:>9}   overwritten before anyone read them\n  \
               duplicates ............. {:>9}   the same sequence number delivered twice\n  \
               read-before-write ...... {:>9}   an empty or old slot read as if new\n  \
               out of order ........... {:>9}   a frame delivered after a later one\n",
            self.frames_written,
            self.reads,
            self.delivered,
            self.torn,
            self.lost,
            self.duplicates,
            self.read_before_write,
            self.out_of_order
        )
    }
}

/// Most frames one run may send: the reader keeps one bit per frame.
pub const MAX_FRAMES: u64 = 100_000_000;

/// The reader's bookkeeping: which sequence numbers it has delivered.
struct Checker {
    tally: Tally,
    /// One bit per sequence number: delivered already?
    seen: Vec<u64>,
    highest: Option<u64>,
}

impl Checker {
    fn new(frames: u64) -> Checker {
        let words = usize::try_from(frames.min(MAX_FRAMES).div_ceil(64)).unwrap_or(0);
        Checker {
            tally: Tally::default(),
            seen: vec![0; words],
            highest: None,
        }
    }

    /// Classifies one slot's contents (header then payload, as read).
    fn slot(&mut self, bytes: &[u8], capacity: usize) {
        self.tally.reads += 1;
        if bytes.iter().all(|&b| b == 0) {
            self.tally.read_before_write += 1;
            return;
        }
        let Some((hb, rest)) = bytes.split_first_chunk::<FRAME_HEADER_SIZE>() else {
            self.tally.torn += 1;
            return;
        };
        let h = match FrameHeader::decode(hb, capacity) {
            Ok(h) if h.kind == Kind::Data => h,
            _ => {
                self.tally.torn += 1;
                return;
            }
        };
        let payload = &rest[..h.len as usize];
        if FrameHeader::verify(hb, payload).is_err() {
            self.tally.torn += 1;
            return;
        }
        self.frame(h.seq, payload);
    }

    /// Classifies one checksum-valid frame.
    fn frame(&mut self, seq: u64, payload: &[u8]) {
        if !pattern_matches(seq, payload) {
            self.tally.torn += 1;
            return;
        }
        let bit = 1u64 << (seq % 64);
        let Some(word) = usize::try_from(seq / 64)
            .ok()
            .and_then(|i| self.seen.get_mut(i))
        else {
            self.tally.torn += 1;
            return;
        };
        if *word & bit != 0 {
            // Nothing new was in the slot: the writer had not replaced this frame yet.
            self.tally.duplicates += 1;
            self.tally.read_before_write += 1;
            return;
        }
        *word |= bit;
        self.tally.delivered += 1;
        if self.highest.is_some_and(|h| seq < h) {
            self.tally.out_of_order += 1;
        } else {
            self.highest = Some(seq);
        }
    }

    fn finish(mut self, written: u64, elapsed: Duration, cut_short: bool) -> Tally {
        self.tally.frames_written = written;
        self.tally.lost = written.saturating_sub(self.tally.delivered);
        self.tally.elapsed = elapsed;
        self.tally.cut_short = cut_short;
        self.tally
    }
}

/// Fills `out` (a multiple of 8 bytes) with the payload of frame `seq`: word `i` is
/// a mix of `seq` and `i`, so a payload stitched from two frames shows.
fn fill_pattern(seq: u64, out: &mut [u8]) {
    for (i, w) in out.chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&pattern_word(seq, i).to_le_bytes());
    }
}

fn pattern_word(seq: u64, i: usize) -> u64 {
    seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

fn pattern_matches(seq: u64, payload: &[u8]) -> bool {
    payload.len() % 8 == 0
        && payload
            .chunks_exact(8)
            .enumerate()
            .all(|(i, w)| w == pattern_word(seq, i).to_le_bytes())
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

/// A key nothing uses yet, in the `0x5ace....` range ("race"), derived from our pid.
pub fn fresh_key() -> Result<IpcKey> {
    let pid = std::process::id();
    for n in 0..512u32 {
        let raw = 0x5ace_0000u32 | (pid.wrapping_mul(2_654_435_761).wrapping_add(n) & 0xffff);
        let key = IpcKey::new(raw as libc::key_t)?;
        if segment::find(key)?.is_none() && semaphore::find(key)?.is_none() {
            return Ok(key);
        }
    }
    Err(Error::Conflict {
        key: IpcKey::new(0x5ace_0000)?,
        detail: "no free key in 0x5ace0000..0x5aceffff".into(),
        remove_hint: None,
    })
}

/// Copies `bytes` (a multiple of 8) into the segment one relaxed 8-byte store at a
/// time: what a C `memcpy` into shared memory amounts to, without a Rust data race.
fn store_words(seg: &Segment, at: usize, bytes: &[u8]) -> Result<()> {
    for (i, w) in bytes.chunks_exact(8).enumerate() {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        seg.atomic_u64(at + 8 * i)?
            .store(u64::from_le_bytes(a), Ordering::Relaxed);
    }
    Ok(())
}

/// The mirror of [`store_words`].
fn load_words(seg: &Segment, at: usize, out: &mut [u8]) -> Result<()> {
    for (i, w) in out.chunks_exact_mut(8).enumerate() {
        let v = seg.atomic_u64(at + 8 * i)?.load(Ordering::Relaxed);
        w.copy_from_slice(&v.to_le_bytes());
    }
    Ok(())
}

/// Busy-waits the handout's way, yielding now and then so that on a busy machine
/// the other side still gets a core. Returns false when told to stop.
fn spin_until(cond: impl Fn() -> bool, stop: &dyn Fn() -> bool) -> bool {
    let mut spins = 0u32;
    while !cond() {
        spins = spins.wrapping_add(1);
        if spins % 256 == 0 {
            if stop() {
                return false;
            }
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
    true
}

/// Writes our header into a fresh zeroed segment, so `shm-inspect` and `make clean`
/// recognise it (it has no semaphore set: the inspector says so).
fn write_header(seg: &Segment, g: Geometry) -> Result<()> {
    let h32 = |o: usize, v: u32| seg.atomic_u32(o).map(|a| a.store(v, Ordering::Relaxed));
    h32(off::VERSION, layout::VERSION)?;
    h32(off::HEADER_SIZE, layout::HEADER_SIZE as u32)?;
    h32(off::SLOT_COUNT, g.slots)?;
    h32(off::SLOT_SIZE, g.slot_size)?;
    seg.atomic_u64(off::SEGMENT_SIZE)?
        .store(g.segment_size(), Ordering::Relaxed);
    seg.atomic_i32(off::CREATOR_PID)?
        .store(std::process::id() as i32, Ordering::Relaxed);
    h32(off::STATE, State::Open as u32)?;
    seg.atomic_u64(off::MAGIC)?
        .store(layout::MAGIC, Ordering::Release);
    Ok(())
}

/// Runs the handout's protocol: no semaphores, a shared counter, two busy loops.
pub fn run_unsynchronized(cfg: &RaceConfig) -> Result<Tally> {
    check_frames(cfg.frames)?;
    let key = cfg.key;
    let g = cfg.geometry;
    let guard = claim(key)?;
    let size = usize::try_from(g.segment_size()).map_err(|_| Error::InvalidArgument {
        what: "--slots/--slot-size",
        reason: "segment too large".into(),
    })?;
    let writer_seg =
        Segment::create_exclusive(key, size, 0o600)?.ok_or_else(|| Error::Conflict {
            key,
            detail: "a segment appeared at the key while we created ours".into(),
            remove_hint: None,
        })?;
    write_header(&writer_seg, g)?;
    // The reader's own attach: a second mapping of the same pages.
    let reader_seg = Segment::attach(key, writer_seg.id())?;

    let start = Instant::now();
    let deadline = start + cfg.time_limit;
    let timed_out = AtomicBool::new(false);
    let stop = || {
        let late = Instant::now() > deadline;
        if late {
            timed_out.store(true, Ordering::Relaxed);
        }
        late || cancel::requested()
    };
    let writer_done = AtomicBool::new(false);
    let slots = g.slots as i32;
    let cap = g.payload_capacity();

    let (written, checker) = std::thread::scope(|sc| -> Result<(u64, Checker)> {
        let writer = sc.spawn(|| -> Result<u64> {
            let seg = &writer_seg;
            let count: &AtomicU32 = seg.atomic_u32(COUNT)?;
            let mut payload = vec![0u8; cap];
            let mut slot_in = 0u32;
            let mut seq = 0u64;
            let result = (|| {
                while seq < cfg.frames {
                    // while (count == N) ;
                    if !spin_until(|| (count.load(Ordering::Relaxed) as i32) < slots, &stop) {
                        break;
                    }
                    fill_pattern(seq, &mut payload);
                    let h = FrameHeader {
                        len: cap as u32,
                        kind: Kind::Data,
                        seq,
                        writer: 1,
                        offset: seq * cap as u64,
                    };
                    let at = g.slot_offset(slot_in);
                    store_words(seg, at + FRAME_HEADER_SIZE, &payload)?;
                    store_words(seg, at, &h.encode(&payload))?;
                    slot_in = (slot_in + 1) % g.slots;
                    // count++, as C compiles it: load, add, store. THE BUG.
                    let c = count.load(Ordering::Relaxed);
                    count.store(c.wrapping_add(1), Ordering::Relaxed);
                    seq += 1;
                    seg.atomic_u64(off::FRAMES_PUBLISHED)?
                        .store(seq, Ordering::Relaxed);
                }
                Ok(())
            })();
            // Out of band (not part of the protocol): lets the reader stop at the end.
            writer_done.store(true, Ordering::Release);
            result.map(|()| seq)
        });

        let seg = &reader_seg;
        let count: &AtomicU32 = seg.atomic_u32(COUNT)?;
        let mut checker = Checker::new(cfg.frames);
        let mut buf = vec![0u8; g.slot_size as usize];
        let mut slot_out = 0u32;
        let reader_result = (|| -> Result<()> {
            loop {
                // while (count == 0) ;
                let more = spin_until(
                    || {
                        (count.load(Ordering::Relaxed) as i32) > 0
                            || writer_done.load(Ordering::Acquire)
                    },
                    &stop,
                );
                if !more || (count.load(Ordering::Relaxed) as i32) <= 0 {
                    // Told to stop, or the writer is done and the counter says empty.
                    break;
                }
                load_words(seg, g.slot_offset(slot_out), &mut buf)?;
                slot_out = (slot_out + 1) % g.slots;
                // count--: load, subtract, store. The same bug on this side.
                let c = count.load(Ordering::Relaxed);
                count.store(c.wrapping_sub(1), Ordering::Relaxed);
                checker.slot(&buf, cap);
                seg.atomic_u64(off::FRAMES_CONSUMED)?
                    .store(checker.tally.reads, Ordering::Relaxed);
            }
            Ok(())
        })();
        let written = writer.join().map_err(|_| Error::Io {
            what: "the race writer thread".into(),
            source: std::io::Error::other("panicked"),
        })??;
        reader_result?;
        Ok((written, checker))
    })?;
    drop(reader_seg);
    writer_seg.remove()?;
    drop(guard);
    if cancel::requested() {
        return Err(Error::Interrupted {
            detail: "during the unsynchronized run; its segment was removed".into(),
        });
    }
    let cut = timed_out.load(Ordering::Relaxed) || written < cfg.frames;
    Ok(checker.finish(written, start.elapsed(), cut))
}

/// Sends the same frames through the real protocol ([`Producer`] and [`Consumer`]
/// over a [`Session`] with its semaphore set) and checks them the same way.
pub fn run_synchronized(cfg: &RaceConfig) -> Result<Tally> {
    check_frames(cfg.frames)?;
    let key = cfg.key;
    let g = cfg.geometry;
    let guard = claim(key)?;
    let quiet = |_: String| {};
    let mut opts = OpenOptions {
        key,
        role: Role::Writer,
        geometry: g,
        mode: 0o600,
        persist: false,
        shared: false,
    };
    let writer = Session::open(&opts, &quiet)?;
    opts.role = Role::Reader;
    let reader = Session::open(&opts, &quiet)?;
    let cap = g.payload_capacity() / 8 * 8;
    let start = Instant::now();
    let deadline = start + cfg.time_limit;
    let frames = cfg.frames;

    let (written, checker) = std::thread::scope(|sc| -> Result<(u64, Checker)> {
        // Each side leaves its session when done or failed, so that the other sees
        // it gone (PEER_GONE) instead of waiting forever.
        let w = sc.spawn(move || -> Result<u64> {
            let mut session = writer;
            let result = (|| -> Result<u64> {
                let mut producer = Producer::new(&session, g.slots, &quiet);
                let batch = u64::from(g.slots);
                let mut store = vec![0u8; cap * g.slots as usize];
                let mut seq = 0u64;
                while seq < frames {
                    if Instant::now() > deadline {
                        break;
                    }
                    let n = batch.min(frames - seq) as usize;
                    for (j, chunk) in store.chunks_exact_mut(cap).take(n).enumerate() {
                        fill_pattern(seq + j as u64, chunk);
                    }
                    let payloads: Vec<&[u8]> = store.chunks_exact(cap).take(n).collect();
                    producer.send(&payloads)?;
                    seq += n as u64;
                }
                producer.finish()?;
                Ok(seq)
            })();
            let _ = session.leave(result.is_ok());
            result
        });
        let mut session = reader;
        let mut checker = Checker::new(frames);
        let result = (|| -> Result<()> {
            let mut consumer = Consumer::new(&session, g.slots, &quiet);
            let mut batch = Batch::default();
            loop {
                let received = consumer.recv(&mut batch);
                for d in &batch.frames {
                    checker.tally.reads += 1;
                    checker.frame(d.seq, &batch.data[d.start..d.end]);
                }
                match received {
                    Ok(Received::EndOfStream) => return Ok(()),
                    Ok(Received::Frames) => {}
                    // The real reader refuses a corrupt frame; count it as torn.
                    Err(Error::Corrupt { .. }) => {
                        checker.tally.torn += 1;
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
            }
        })();
        let _ = session.leave(result.is_ok());
        let written = w.join().map_err(|_| Error::Io {
            what: "the synchronized writer thread".into(),
            source: std::io::Error::other("panicked"),
        })??;
        result?;
        Ok((written, checker))
    })?;
    drop(guard);
    let cut = written < frames;
    Ok(checker.finish(written, start.elapsed(), cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checker_classifies() {
        let cap = 64;
        let frame = |seq: u64| {
            let mut p = vec![0u8; cap];
            fill_pattern(seq, &mut p);
            let h = FrameHeader {
                len: cap as u32,
                kind: Kind::Data,
                seq,
                writer: 1,
                offset: 0,
            };
            let mut b = h.encode(&p).to_vec();
            b.extend_from_slice(&p);
            b
        };
        let mut c = Checker::new(5);
        c.slot(&frame(0), cap);
        c.slot(&frame(0), cap); // old slot read again
        c.slot(&vec![0u8; FRAME_HEADER_SIZE + cap], cap); // empty slot
        c.slot(&frame(2), cap); // 1 overwritten before it was read
        let mut torn = frame(3);
        torn[FRAME_HEADER_SIZE..].copy_from_slice(&frame(4)[FRAME_HEADER_SIZE..]);
        c.slot(&torn, cap);
        c.slot(&frame(1), cap); // late
        let t = c.finish(5, Duration::ZERO, false);
        assert_eq!(t.reads, 6);
        assert_eq!(t.delivered, 3);
        assert_eq!((t.torn, t.duplicates, t.read_before_write), (1, 1, 2));
        assert_eq!((t.lost, t.out_of_order), (2, 1));
    }
}
