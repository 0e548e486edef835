//! The handout's protocol, run for real: no semaphores, a shared `count`, two busy
//! loops, on our ring layout in a System V segment.
//!
//! ```text
//! writer:  while (count == N) ;  slot[in]  = frame;  in  = (in + 1) % N;  count++;
//! reader:  while (count == 0) ;  frame = slot[out]; out = (out + 1) % N;  count--;
//! ```
//! `count++` and `count--` are each one load and one store of the `count` word,
//! with the [`Window`] between them and nothing else: that is where a preemption
//! loses an update, and the only place this program widens. The busy loops, the
//! slot copies and the order of the steps are the handout's.

use super::events::{self, Clock, Count, Event, Log, Side, What};
use super::tally::{fill_pattern, Checker, Tally};
use super::{check_frames, claim, panicked, RaceConfig, Window};
use shm_common::cancel;
use shm_common::frame::{FrameHeader, Kind, FRAME_HEADER_SIZE};
use shm_common::layout::{self, Geometry};
use shm_common::segment::Segment;
use shm_common::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Header offset of the handout's shared `count` word, in the header page's
/// unused space after the peer table: a 64-bit word whose low half is the
/// handout's `int count` and whose high half counts the updates the value
/// includes (bookkeeping the protocol never reads; `events.rs` has the layout).
/// Only the unsynchronized run uses it.
pub const COUNT: usize = 1024;
const _: () = assert!(COUNT >= layout::off::PEERS + layout::MAX_PEERS * layout::PEER_ENTRY_SIZE);
const _: () = assert!(COUNT % 8 == 0 && COUNT + 8 <= layout::HEADER_SIZE);

/// The updates of `count`: how many were made, and how many the final value holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Updates {
    /// `count++` done (one per frame written).
    pub increments: u64,
    /// `count--` done (one per slot read).
    pub decrements: u64,
    /// `count` at the end.
    pub final_value: i32,
    /// Updates the final value includes (the upper half of the word).
    pub included: u64,
}

impl Updates {
    /// Updates overwritten by the other side's store: made, but not in the result.
    pub fn lost(&self) -> u64 {
        (self.increments + self.decrements).saturating_sub(self.included)
    }

    /// Lost `count++`: the final value includes `(included + final) / 2` of them.
    pub fn lost_increments(&self) -> u64 {
        let kept = (self.included as i64 + i64::from(self.final_value)) / 2;
        (self.increments as i64 - kept).max(0) as u64
    }

    /// Lost `count--`: the final value includes `(included - final) / 2` of them.
    pub fn lost_decrements(&self) -> u64 {
        let kept = (self.included as i64 - i64::from(self.final_value)) / 2;
        (self.decrements as i64 - kept).max(0) as u64
    }

    /// What `count` should be: increments minus decrements.
    pub fn should_be(&self) -> i64 {
        self.increments as i64 - self.decrements as i64
    }
}

/// The result of the unsynchronized run.
#[derive(Debug, Clone)]
pub struct Unsynchronized {
    /// What the reader's checks caught.
    pub tally: Tally,
    /// What happened to `count`.
    pub updates: Updates,
    /// The window used.
    pub window: Window,
    /// The geometry used.
    pub geometry: Geometry,
    /// Both sides' events, merged (the first ones of the run).
    pub(super) events: Vec<Event>,
}

impl Unsynchronized {
    /// Whether the run caught the race: some read or frame went wrong.
    pub fn caught(&self) -> bool {
        self.tally.anomalies() > 0
    }

    /// The first damage and the interleaving that caused it, as text for an
    /// 80-column terminal; `None` when there was no damage in the logged events.
    pub fn story(&self) -> Option<String> {
        if let Some(s) = super::story::tell(&self.events, self.geometry.slots) {
            return Some(s);
        }
        if !self.caught() {
            return None;
        }
        let (t, up) = (&self.tally, &self.updates);
        let text = if t.wrong_reads() == 0 && i64::from(up.final_value) < up.should_be() {
            format!(
                "No read went wrong, but {} frames were never delivered: at the end \
                 `count` said {} frames were waiting where {} were, so the reader stopped \
                 early ({} updates of `count` had been lost).",
                t.lost,
                up.final_value,
                up.should_be(),
                up.lost()
            )
        } else {
            format!(
                "The first damage came after the {} events each side keeps in its log, \
                 so no example of it was kept.",
                super::events::LOG_EVENTS
            )
        };
        Some(super::report::wrap("", "", &text))
    }

    /// The first `n` events of both sides, merged, every lost update marked.
    pub fn timeline(&self, n: usize) -> String {
        super::story::timeline(&self.events, n)
    }
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

/// Busy-waits the handout's way until `probe` gives a value, yielding now and then
/// so that on a busy machine the other side still gets a core. `None` when told to
/// stop.
fn spin<T>(mut probe: impl FnMut() -> Option<T>, stop: &dyn Fn() -> bool) -> Option<T> {
    let mut spins = 0u32;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        spins = spins.wrapping_add(1);
        if spins % 256 == 0 {
            if stop() {
                return None;
            }
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Which updates are preempted: one in two, at random, so that the two sides do
/// not fall into a lockstep. (Preempting every update makes them alternate on one
/// CPU, each store overwriting the other side's, and the lost `count++` and
/// `count--` cancel out: the count stays within a frame or two of the truth and
/// runs go by with no damage, or with a few frames lost at the very end.) The seed
/// is fixed per side: the same schedule every run; only the timing varies.
#[derive(Debug)]
struct Preemptions {
    /// xorshift64 state (never 0).
    state: u64,
    window: Window,
}

impl Preemptions {
    fn new(side: Side, window: Window) -> Preemptions {
        let state = match side {
            Side::Writer => 0x9e37_79b9_7f4a_7c15,
            Side::Reader => 0xbf58_476d_1ce4_e5b9,
        };
        Preemptions { state, window }
    }

    /// The window for the next update, if it is preempted.
    fn next(&mut self) -> Option<Window> {
        if self.window == Window::None {
            return None;
        }
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        ((x >> 32) & 1 == 0).then_some(self.window)
    }
}

/// `count++` (writer) or `count--` (reader): one load, the window (if this update
/// is preempted), one store. The stamps are taken before the load and after the
/// store, never inside. Returns the value stored.
fn update(
    count: &AtomicU64,
    side: Side,
    window: Option<Window>,
    log: &mut Log,
    clock: &Clock,
) -> Count {
    let at = log.stamp(clock);
    let loaded = Count::from_word(count.load(Ordering::Relaxed));
    let stored = loaded.updated(side);
    if let Some(w) = window {
        w.widen();
    }
    count.store(stored.word(), Ordering::Relaxed);
    log.push(at, What::Load(loaded));
    log.note(clock, What::Store(stored));
    stored
}

/// Runs the handout's protocol: no semaphores, a shared counter, two busy loops.
pub fn run_unsynchronized(cfg: &RaceConfig) -> Result<Unsynchronized> {
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
    // Our header, so `shm-inspect` and `make clean` recognise the segment (it has no
    // semaphore set: the inspector says so).
    writer_seg
        .header()?
        .initialise(g, 0, std::process::id() as i32);
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
    let clock = Clock::default();
    let slots = g.slots as i32;
    let cap = g.payload_capacity();

    let (written, wlog, checker, rlog, decrements) = std::thread::scope(|sc| {
        let writer = sc.spawn(|| -> Result<(u64, Log)> {
            let seg = &Segment::attach(key, shmid)?;
            let count = seg.atomic_u64(COUNT)?;
            let mut log = Log::new(Side::Writer);
            let mut payload = vec![0u8; cap];
            let mut slot_in = 0u32;
            let mut preempt = Preemptions::new(Side::Writer, cfg.window);
            let mut seq = 0u64;
            let result = (|| {
                while seq < cfg.frames {
                    // while (count == N) ;
                    let probe = || {
                        let c = Count::from_word(count.load(Ordering::Relaxed));
                        (c.value != slots).then_some(c.value)
                    };
                    let Some(seen) = spin(probe, &stop) else {
                        break;
                    };
                    log.note(&clock, What::Pass { count: seen });
                    // slot[in] = frame;
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
                    log.note(&clock, What::Wrote { seq, slot: slot_in });
                    // in = (in + 1) % N;
                    slot_in = (slot_in + 1) % g.slots;
                    // count++: load, add, store. THE BUG.
                    update(count, Side::Writer, preempt.next(), &mut log, &clock);
                    seq += 1;
                    seg.header()?.frames_published.store(seq, Ordering::Relaxed);
                }
                Ok(())
            })();
            // Out of band (not part of the protocol): lets the reader stop at the end.
            // Release/Acquire: the reader's last look at `count` comes after it.
            writer_done.store(true, Ordering::Release);
            result.map(|()| (seq, log))
        });

        let seg = &reader_seg;
        let mut log = Log::new(Side::Reader);
        let mut checker = Checker::new(cfg.frames);
        let mut decrements = 0u64;
        let reader_result = (|| -> Result<()> {
            let count = seg.atomic_u64(COUNT)?;
            let mut buf = vec![0u8; g.slot_size as usize];
            let mut slot_out = 0u32;
            let mut preempt = Preemptions::new(Side::Reader, cfg.window);
            loop {
                // while (count == 0) ; -- or, out of band, the writer is done and
                // the counter says empty.
                let probe = || {
                    let done = writer_done.load(Ordering::Acquire);
                    let c = Count::from_word(count.load(Ordering::Relaxed));
                    match (c.value > 0, done) {
                        (true, _) => Some(Some(c.value)),
                        (false, true) => Some(None),
                        (false, false) => None,
                    }
                };
                let Some(Some(seen)) = spin(probe, &stop) else {
                    break;
                };
                log.note(&clock, What::Pass { count: seen });
                // frame = slot[out];
                load_words(seg, g.slot_offset(slot_out), &mut buf)?;
                let read_at = log.stamp(&clock);
                let slot = slot_out;
                // out = (out + 1) % N;
                slot_out = (slot_out + 1) % g.slots;
                // count--: load, subtract, store. The same bug on this side.
                update(count, Side::Reader, preempt.next(), &mut log, &clock);
                decrements += 1;
                // What the copy held (checked after count--, as a consumer would).
                let outcome = checker.slot(&buf, cap);
                log.push(read_at, What::Read { slot, outcome });
                seg.header()?
                    .frames_consumed
                    .store(checker.tally.reads, Ordering::Relaxed);
            }
            Ok(())
        })();
        let (written, wlog) = writer.join().map_err(|_| panicked("race writer"))??;
        reader_result?;
        Ok::<_, Error>((written, wlog, checker, log, decrements))
    })?;
    let last = Count::from_word(reader_seg.atomic_u64(COUNT)?.load(Ordering::Relaxed));
    drop(reader_seg);
    writer_seg.remove()?;
    drop(guard);
    if cancel::requested() {
        return Err(Error::Interrupted {
            detail: "during the unsynchronized run; its segment was removed".into(),
        });
    }
    let cut = timed_out.load(Ordering::Relaxed) || written < cfg.frames;
    Ok(Unsynchronized {
        tally: checker.finish(written, start.elapsed(), cut),
        updates: Updates {
            increments: written,
            decrements,
            final_value: last.value,
            included: u64::from(last.updates),
        },
        window: cfg.window,
        geometry: g,
        events: events::merge(wlog, rlog),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_updates_add_up() {
        // 10 `count++` and 8 `count--`; the final value 3 includes 13 updates:
        // 8 increments and 5 decrements, so 2 `++` and 3 `--` were lost.
        let u = Updates {
            increments: 10,
            decrements: 8,
            final_value: 3,
            included: 13,
        };
        assert_eq!(u.lost(), 5);
        assert_eq!((u.lost_increments(), u.lost_decrements()), (2, 3));
        assert_eq!(u.should_be(), 2);
    }
}
