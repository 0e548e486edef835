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
//! after Ctrl-C (every loop polls [`shm_common::cancel`]). Only `kill -9` can leave the
//! segment behind; it carries our magic, so `make clean` recognises and removes it.

mod tally;

pub use tally::{Tally, MAX_FRAMES};

use shm_common::cancel;
use shm_common::frame::{FrameHeader, Kind, FRAME_HEADER_SIZE};
use shm_common::layout::{self, Geometry};
use shm_common::segment::{self, Segment};
use shm_common::semaphore;
use shm_common::{
    Batch, Consumer, Error, IpcKey, OpenOptions, Producer, Received, Result, Role, Session,
};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tally::{fill_pattern, Checker};

/// Header offset of the handout's shared `count` (an i32), in the header page's
/// unused space after the peer table. Only the unsynchronized run uses it.
pub const COUNT: usize = 1024;
const _: () = assert!(COUNT >= layout::off::PEERS + layout::MAX_PEERS * layout::PEER_ENTRY_SIZE);
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
    seg.header()?.initialise(g, 0, std::process::id() as i32);
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
    let shmid = writer_seg.id();
    // The reader's own attach: a second mapping of the same pages (the writer thread
    // makes its own: a Segment is used by one thread, as by one process).
    let reader_seg = Segment::attach(key, shmid)?;

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
            let seg = &Segment::attach(key, shmid)?;
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
                    seg.header()?.frames_published.store(seq, Ordering::Relaxed);
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
                seg.header()?
                    .frames_consumed
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
