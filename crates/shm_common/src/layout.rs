//! The shared segment's layout and the semaphore set's members: the numbers both
//! processes must agree on. PROTOCOL.md documents the same numbers; the compile-time
//! assertions below keep the two honest.
//!
//! # Layout
//! ```text
//! offset 0            HEADER_SIZE (4096)                   + slot_size * slot_count
//! | header (4096 B)   | slot 0 | slot 1 | ... | slot N-1 |
//! ```
//! Every multi-byte field is little-endian (see the `compile_error!` guard below: the
//! library builds only for little-endian targets, where the atomics' own order is
//! the same).

use crate::error::{Error, Result};

// PROTOCOL.md §2: every integer in the segment is little-endian, and the atomics
// store theirs in the CPU's order, so the two agree only on little-endian targets.
#[cfg(target_endian = "big")]
compile_error!(
    "shm_common's segment layout is little-endian; big-endian targets are not supported"
);

/// `b"SVSHMRNG"` read as a little-endian u64: the first eight bytes of the segment.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SVSHMRNG");
/// Bumped whenever the layout or the protocol changes incompatibly. Version 3: the
/// creator marks its new set with [`sem::SIGNATURE`], readers check what they take
/// in shared sessions (PROTOCOL.md §10.2), the default key is per user.
pub const VERSION: u32 = 3;
/// The header occupies the first page, so the ring starts page-aligned.
pub const HEADER_SIZE: usize = 4096;
/// Slot sizes are multiples of this (a cache line), which keeps every slot's frame
/// header 8-byte aligned and stops two slots from sharing a cache line.
pub const SLOT_ALIGN: u32 = 64;
/// Upper bound on the slot count: the free/filled counts live in semaphores, whose
/// values may not exceed SEMVMX (32767 on Linux).
pub const MAX_SLOTS: u32 = 32767;
/// Largest slot we accept (1 GiB): lengths are u32 and one slot must fit in memory.
pub const MAX_SLOT_SIZE: u32 = 1 << 30;
/// Default geometry, chosen from the benchmarks (BENCHMARKS.md, "Tunables"): 64 slots
/// of 64 KiB = 4 MiB. Deep enough that neither side sleeps in the steady state (the
/// writer waits for half the ring, 2 MiB, when it is full), small enough to stay in
/// the cache: 64 KiB frames moved 12.5 GB/s with 64 slots, 11.0 with 32 and with 255,
/// 5.1 with 16; end to end, 1 GiB file to /dev/null, 64 slots was as fast as 256.
pub const DEFAULT_SLOTS: u32 = default_slots(DEFAULT_SLOT_SIZE);
/// See [`DEFAULT_SLOTS`].
pub const DEFAULT_SLOT_SIZE: u32 = 64 * 1024;
/// Default slot size of a `--lines` (message) session. Every line is its own frame,
/// so what counts is the ring's depth in frames (see [`default_slots`]): 8 KiB slots
/// give 512 of them in 4 MiB. Two million 31-byte lines, one writer to one reader,
/// took 0.27-0.31 s with 8 KiB slots and 2.0 s with 64 slots of 64 KiB. Lines up to
/// 8160 bytes still travel as one frame, like the 8192-byte default message of POSIX
/// message queues.
pub const DEFAULT_LINES_SLOT_SIZE: u32 = 8 * 1024;
/// The ring size [`default_slots`] aims at.
pub const DEFAULT_RING_BYTES: u32 = 4 << 20;

/// The slot count for a ring of `slot_size`-byte slots when none is given: as many
/// as fit in [`DEFAULT_RING_BYTES`], between 16 and 4096.
///
/// Why a floor on the count and not just on the bytes: half the ring must take the
/// reader longer to drain than it takes to wake the sleeping writer (20-60 µs on a
/// VM), or both end up asleep. 64-byte frames moved 19 M msg/s with 1024 slots and
/// 31-32 M with 2048 or 4096 (BENCHMARKS.md); beyond 4096 nothing changed.
pub const fn default_slots(slot_size: u32) -> u32 {
    let n = DEFAULT_RING_BYTES / if slot_size == 0 { 1 } else { slot_size };
    if n < 16 {
        16
    } else if n > 4096 {
        4096
    } else {
        n
    }
}
/// How many peers (writers + readers) the peer table can list at once.
pub const MAX_PEERS: usize = 32;

/// Header field offsets (bytes from the start of the segment), for programs that
/// look at the segment as bytes (tests, the inspector's raw view). They are the
/// offsets of the fields of [`Header`](crate::header::Header), whose layout is
/// checked against PROTOCOL.md at compile time.
pub mod off {
    use crate::header::Header;
    use std::mem::offset_of;
    /// u64 magic, [`super::MAGIC`].
    pub const MAGIC: usize = offset_of!(Header, magic);
    /// u32 layout version.
    pub const VERSION: usize = offset_of!(Header, version);
    /// u32 header size ([`super::HEADER_SIZE`]).
    pub const HEADER_SIZE: usize = offset_of!(Header, header_size);
    /// u32 slot count.
    pub const SLOT_COUNT: usize = offset_of!(Header, slot_count);
    /// u32 slot size in bytes (frame header included).
    pub const SLOT_SIZE: usize = offset_of!(Header, slot_size);
    /// u64 total segment size the creator asked for.
    pub const SEGMENT_SIZE: usize = offset_of!(Header, segment_size);
    /// u32 session state, see [`super::State`].
    pub const STATE: usize = offset_of!(Header, state);
    /// u32 flags: [`super::FLAG_PERSIST`], [`super::FLAG_SHARED`].
    pub const FLAGS: usize = offset_of!(Header, flags);
    /// u32 writers that ever joined.
    pub const WRITERS_JOINED: usize = offset_of!(Header, writers_joined);
    /// u32 readers that ever joined.
    pub const READERS_JOINED: usize = offset_of!(Header, readers_joined);
    /// u32 writers that left after sending their END frame.
    pub const WRITERS_FINISHED: usize = offset_of!(Header, writers_finished);
    /// u32 readers that left after seeing the FINAL frame.
    pub const READERS_FINISHED: usize = offset_of!(Header, readers_finished);
    /// u64 data frames published.
    pub const FRAMES_PUBLISHED: usize = offset_of!(Header, frames_published);
    /// u64 payload bytes published.
    pub const BYTES_PUBLISHED: usize = offset_of!(Header, bytes_published);
    /// u64 data frames consumed.
    pub const FRAMES_CONSUMED: usize = offset_of!(Header, frames_consumed);
    /// u64 payload bytes consumed.
    pub const BYTES_CONSUMED: usize = offset_of!(Header, bytes_consumed);
    /// i32 pid holding WRITE_MUTEX (informational).
    pub const WRITE_MUTEX_HOLDER: usize = offset_of!(Header, write_mutex_holder);
    /// i32 pid holding READ_MUTEX (informational).
    pub const READ_MUTEX_HOLDER: usize = offset_of!(Header, read_mutex_holder);
    /// i32 pid of the creator.
    pub const CREATOR_PID: usize = offset_of!(Header, creator_pid);
    /// u32 next writer id to hand out.
    pub const NEXT_WRITER_ID: usize = offset_of!(Header, next_writer_id);
    /// u32 writers that published their END or FINAL frame.
    pub const WRITERS_ENDED: usize = offset_of!(Header, writers_ended);
    /// The peer table: [`super::MAX_PEERS`] entries of [`super::PEER_ENTRY_SIZE`] bytes.
    pub const PEERS: usize = offset_of!(Header, peers);
}

/// Size of one peer-table entry: i32 pid, u32 role (1 writer, 2 reader), u32 id, u32 0.
pub const PEER_ENTRY_SIZE: usize = 16;

/// Roles in the peer table.
pub const ROLE_WRITER: u32 = 1;
/// See [`ROLE_WRITER`].
pub const ROLE_READER: u32 = 2;

/// Header flag: the writer may finish before a reader exists (the handout exercise).
pub const FLAG_PERSIST: u32 = 1;

/// Header flag: many writers and readers share the session (message mode).
pub const FLAG_SHARED: u32 = 2;

/// The session's life cycle, stored at [`off::STATE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum State {
    /// Created, header not yet complete.
    Initialising = 0,
    /// Writers and readers may join.
    Open = 1,
    /// The last writer published the FINAL frame; no writer may join any more.
    Ended = 2,
}

impl State {
    /// Decodes the raw field; `None` for a value no version-1 peer writes.
    pub fn from_raw(v: u32) -> Option<State> {
        match v {
            0 => Some(State::Initialising),
            1 => Some(State::Open),
            2 => Some(State::Ended),
            _ => None,
        }
    }
}

/// The semaphore set's members, in index order. One set per session, same key.
pub mod sem {
    /// Free slots (counting; starts at slot_count). Writers take, readers give back.
    pub const FREE: u16 = 0;
    /// Published frames (counting; starts at 0). Readers take, writers give.
    pub const FILLED: u16 = 1;
    /// Mutex among writers (1 = free). Always taken with SEM_UNDO.
    pub const WRITE_MUTEX: u16 = 2;
    /// Mutex among readers (1 = free). Always taken with SEM_UNDO.
    pub const READ_MUTEX: u16 = 3;
    /// Index of the next slot to write (0..slot_count). Changed only under WRITE_MUTEX.
    pub const HEAD: u16 = 4;
    /// Index of the next slot to read (0..slot_count). Changed only under READ_MUTEX.
    pub const TAIL: u16 = 5;
    /// Live writers: each raises it by one with SEM_UNDO, so death lowers it.
    pub const WRITERS: u16 = 6;
    /// Live readers, likewise.
    pub const READERS: u16 = 7;
    /// Live writers that have already published their END or FINAL frame: raised
    /// with SEM_UNDO in that publishing semop, lowered when the writer leaves (or by
    /// the kernel when it dies). WRITERS - ENDED = writers still sending.
    pub const ENDED: u16 = 8;
    /// Member names for messages and `--explain`, in index order.
    pub const NAMES: &[&str] = &[
        "FREE",
        "FILLED",
        "WRITE_MUTEX",
        "READ_MUTEX",
        "HEAD",
        "TAIL",
        "WRITERS",
        "READERS",
        "ENDED",
    ];
    /// Number of members.
    pub const COUNT: usize = 9;
    const _: () = assert!(NAMES.len() == COUNT);

    /// The values a creator gives its new set first, before it makes the segment
    /// (PROTOCOL.md §4): "SVSHMRNG" in four 16-bit halves, then the layout version.
    /// A set without a segment is the leftover of a creator of ours only if it still
    /// holds exactly these values and was never operated on; any other set is not
    /// ours, and is never removed.
    pub const SIGNATURE: [u16; COUNT] = [
        u16::from_be_bytes(*b"SV"),
        u16::from_be_bytes(*b"SH"),
        u16::from_be_bytes(*b"MR"),
        u16::from_be_bytes(*b"NG"),
        super::VERSION as u16,
        0,
        0,
        0,
        0,
    ];
    // Semaphore values stop at SEMVMX (32767).
    const _: () = {
        let mut i = 0;
        while i < COUNT {
            assert!(SIGNATURE[i] <= 32767);
            i += 1;
        }
    };
}

/// A validated ring geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Number of slots.
    pub slots: u32,
    /// Bytes per slot, frame header included.
    pub slot_size: u32,
}

impl Geometry {
    /// Checks a requested geometry; see the error texts for the rules.
    ///
    /// ```
    /// use shm_common::Geometry;
    /// let g = Geometry::new(16, 4096)?;
    /// assert_eq!(g.segment_size(), 4096 + 16 * 4096); // the header page, then the slots
    /// assert_eq!(g.payload_capacity(), 4096 - 32); // each slot starts with a frame header
    /// assert!(Geometry::new(16, 100).is_err(), "slot sizes are multiples of 64");
    /// # Ok::<(), shm_common::Error>(())
    /// ```
    pub fn new(slots: u32, slot_size: u32) -> Result<Geometry> {
        let bad = |what, reason: String| Error::InvalidArgument { what, reason };
        if slots == 0 || slots > MAX_SLOTS {
            return Err(bad(
                "--slots",
                format!(
                    "{slots} is outside 1..={MAX_SLOTS} (semaphore values stop at SEMVMX = 32767)"
                ),
            ));
        }
        // Room for the frame header and at least one cache line of payload; as a
        // multiple of SLOT_ALIGN that makes the smallest slot 128 bytes, which is the
        // bound the message names (96 is no multiple of 64).
        let min = crate::frame::FRAME_HEADER_SIZE as u32 + SLOT_ALIGN;
        if slot_size < min || slot_size > MAX_SLOT_SIZE || slot_size % SLOT_ALIGN != 0 {
            let smallest = min.next_multiple_of(SLOT_ALIGN);
            return Err(bad(
                "--slot-size",
                format!(
                "{slot_size} must be a multiple of {SLOT_ALIGN} between {smallest} and {MAX_SLOT_SIZE} \
                 (each slot holds a {}-byte frame header and its payload)",
                crate::frame::FRAME_HEADER_SIZE
            ),
            ));
        }
        let g = Geometry { slots, slot_size };
        let total = g.segment_size();
        let shmmax = read_limit("/proc/sys/kernel/shmmax").unwrap_or(u64::MAX);
        if total > shmmax || usize::try_from(total).is_err() {
            return Err(bad("--slots/--slot-size", format!(
                "the segment would be {total} bytes, above the kernel's SHMMAX of {shmmax} (sysctl kernel.shmmax)"
            )));
        }
        Ok(g)
    }

    /// Total segment size: header plus ring.
    pub fn segment_size(&self) -> u64 {
        HEADER_SIZE as u64 + u64::from(self.slots) * u64::from(self.slot_size)
    }

    /// Payload bytes one frame can carry.
    pub fn payload_capacity(&self) -> usize {
        self.slot_size as usize - crate::frame::FRAME_HEADER_SIZE
    }

    /// Byte offset of slot `index` (must be < slots).
    pub fn slot_offset(&self, index: u32) -> usize {
        HEADER_SIZE + index as usize * self.slot_size as usize
    }
}

fn read_limit(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_limits() {
        assert!(Geometry::new(0, 4096).is_err());
        assert!(Geometry::new(MAX_SLOTS + 1, 4096).is_err());
        assert_eq!(DEFAULT_SLOTS, 64);
        assert_eq!(default_slots(128), 4096);
        assert_eq!(default_slots(4160), 1008);
        assert_eq!(default_slots(1 << 20), 16);
        assert!(Geometry::new(4, 100).is_err());
        assert!(Geometry::new(4, 64).is_err(), "no room for payload");
        assert!(Geometry::new(4, 96).is_err(), "96 is no multiple of 64");
        let msg = Geometry::new(4, 96).err().map(|e| e.to_string());
        assert!(
            msg.as_deref()
                .is_some_and(|m| m.contains("multiple of 64 between 128 and 1073741824")),
            "the message names the smallest valid slot: {msg:?}"
        );
        assert!(Geometry::new(4, 128).is_ok(), "128 is the smallest slot");
        assert!(Geometry::new(4, MAX_SLOT_SIZE + 64).is_err());
        let g = Geometry::new(4, 128).ok();
        assert_eq!(g.map(|g| g.segment_size()), Some(4096 + 512));
        assert_eq!(g.map(|g| g.payload_capacity()), Some(96));
        assert_eq!(g.map(|g| g.slot_offset(1)), Some(4096 + 128));
    }

    #[test]
    fn magic_spells_the_name() {
        assert_eq!(&MAGIC.to_le_bytes(), b"SVSHMRNG");
    }
}
