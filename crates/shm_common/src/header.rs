//! The first page of the segment: [`Header`], field by field, as PROTOCOL.md §3
//! lists it, and the two moments that need ordering: the creator publishing a
//! complete header, and an opener reading it.
//!
//! # Layout
//! `#[repr(C)]`, 4096 bytes, 8-aligned; every field is an atomic integer of the
//! width PROTOCOL.md gives it, at the offset it gives (checked below at compile
//! time, every field). All integers are little-endian: the library builds only for
//! little-endian targets (`layout.rs`), where an atomic's bytes are the protocol's.
//!
//! # One access discipline
//! Every process that maps the segment may change these bytes at any time, so the
//! header is never read or written through a plain reference or a copy: each field
//! is an atomic, and a `&Header` (obtained from
//! [`Segment::header`](crate::segment::Segment::header), which checks the mapping
//! is large enough) is a reference to atomics only, which is what atomics are for.
//! Which process may change a field, and under which semaphore, is in its doc; the
//! semaphore operations (system calls, so full barriers) order everything except
//! the one case below, where no semaphore is involved.
//!
//! # The one Release/Acquire pair
//! SYNC POINT "header published": the creator stores every other field first and
//! [`magic`](Header::magic) last, with `Release` ([`Header::initialise`]); an opener
//! loads `magic` with `Acquire` and reads the other fields only if it is ours
//! ([`Header::fields`], and `session/discover.rs`). A new segment is all zeros, so
//! magic 0 means "not yet".

use crate::error::{Error, Result};
use crate::key::IpcKey;
use crate::layout::{self, Geometry, State};
use crate::segment::Segment;
use std::mem::{offset_of, size_of};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

/// One entry of the peer table (16 bytes). Written with both mutexes held; read by
/// anyone (informational: liveness is decided by the WRITERS/READERS semaphores).
#[repr(C)]
#[derive(Debug)]
pub struct PeerEntry {
    /// Process id; 0 marks an empty entry.
    pub pid: AtomicI32,
    /// 1 writer, 2 reader ([`layout::ROLE_WRITER`], [`layout::ROLE_READER`]).
    pub role: AtomicU32,
    /// The writer's id, or the reader's join number.
    pub id: AtomicU32,
    /// Zero.
    pub reserved: AtomicU32,
}

/// The header page of a segment of ours (PROTOCOL.md §3).
#[repr(C)]
#[derive(Debug)]
pub struct Header {
    /// `b"SVSHMRNG"` as a little-endian u64 ([`layout::MAGIC`]), stored last by the
    /// creator. SYNC POINT "header published": Release store, Acquire load.
    pub magic: AtomicU64,
    /// Layout version ([`layout::VERSION`]). Creator.
    pub version: AtomicU32,
    /// 4096 ([`layout::HEADER_SIZE`]). Creator.
    pub header_size: AtomicU32,
    /// Slot count. Creator.
    pub slot_count: AtomicU32,
    /// Bytes per slot, frame header included. Creator.
    pub slot_size: AtomicU32,
    /// Segment size the creator asked for. Creator.
    pub segment_size: AtomicU64,
    /// [`State`]. Creator (→ open); the last writer (→ ended), under WRITE_MUTEX,
    /// before it publishes FINAL.
    pub state: AtomicU32,
    /// [`layout::FLAG_PERSIST`] | [`layout::FLAG_SHARED`]. Creator.
    pub flags: AtomicU32,
    /// Writers that ever joined. Under both mutexes.
    pub writers_joined: AtomicU32,
    /// Readers that ever joined. Under both mutexes.
    pub readers_joined: AtomicU32,
    /// Writers that left after sending their END/FINAL frame. Under both mutexes.
    pub writers_finished: AtomicU32,
    /// Readers that left after seeing the FINAL frame. Under both mutexes.
    pub readers_finished: AtomicU32,
    /// DATA frames published. Under WRITE_MUTEX.
    pub frames_published: AtomicU64,
    /// Payload bytes published. Under WRITE_MUTEX.
    pub bytes_published: AtomicU64,
    /// DATA frames consumed. Under READ_MUTEX.
    pub frames_consumed: AtomicU64,
    /// Payload bytes consumed. Under READ_MUTEX.
    pub bytes_consumed: AtomicU64,
    /// Pid holding WRITE_MUTEX, 0 when free (informational). Its holder.
    pub write_mutex_holder: AtomicI32,
    /// Pid holding READ_MUTEX, 0 when free (informational). Its holder.
    pub read_mutex_holder: AtomicI32,
    /// The creator's pid. Creator.
    pub creator_pid: AtomicI32,
    /// The next writer id to hand out (the creator is 1). Under both mutexes.
    pub next_writer_id: AtomicU32,
    /// Writers that published their END or FINAL frame. Under WRITE_MUTEX, before
    /// that publish.
    pub writers_ended: AtomicU32,
    reserved: [AtomicU32; 5],
    /// The peer table: [`layout::MAX_PEERS`] entries.
    pub peers: [PeerEntry; layout::MAX_PEERS],
    /// Zero, up to the end of the page (the race demo keeps its shared counter at
    /// byte 1024 of its own segment, which is not a session).
    rest: [AtomicU64; (layout::HEADER_SIZE - 640) / 8],
}

// PROTOCOL.md §3, field by field.
const _: () = {
    assert!(size_of::<Header>() == layout::HEADER_SIZE);
    assert!(std::mem::align_of::<Header>() == 8);
    assert!(size_of::<PeerEntry>() == layout::PEER_ENTRY_SIZE);
    assert!(offset_of!(Header, magic) == 0);
    assert!(offset_of!(Header, version) == 8);
    assert!(offset_of!(Header, header_size) == 12);
    assert!(offset_of!(Header, slot_count) == 16);
    assert!(offset_of!(Header, slot_size) == 20);
    assert!(offset_of!(Header, segment_size) == 24);
    assert!(offset_of!(Header, state) == 32);
    assert!(offset_of!(Header, flags) == 36);
    assert!(offset_of!(Header, writers_joined) == 40);
    assert!(offset_of!(Header, readers_joined) == 44);
    assert!(offset_of!(Header, writers_finished) == 48);
    assert!(offset_of!(Header, readers_finished) == 52);
    assert!(offset_of!(Header, frames_published) == 56);
    assert!(offset_of!(Header, bytes_published) == 64);
    assert!(offset_of!(Header, frames_consumed) == 72);
    assert!(offset_of!(Header, bytes_consumed) == 80);
    assert!(offset_of!(Header, write_mutex_holder) == 88);
    assert!(offset_of!(Header, read_mutex_holder) == 92);
    assert!(offset_of!(Header, creator_pid) == 96);
    assert!(offset_of!(Header, next_writer_id) == 100);
    assert!(offset_of!(Header, writers_ended) == 104);
    assert!(offset_of!(Header, reserved) == 108);
    assert!(offset_of!(Header, peers) == 128);
    assert!(offset_of!(Header, rest) == 640);
    assert!(offset_of!(PeerEntry, pid) == 0);
    assert!(offset_of!(PeerEntry, role) == 4);
    assert!(offset_of!(PeerEntry, id) == 8);
    assert!(offset_of!(PeerEntry, reserved) == 12);
};

/// Every field of a header, read once into plain integers: what a program that
/// only looks (the inspector) works with, and what validation checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderFields {
    /// See [`Header::magic`].
    pub magic: u64,
    /// See [`Header::version`].
    pub version: u32,
    /// See [`Header::header_size`].
    pub header_size: u32,
    /// See [`Header::slot_count`].
    pub slot_count: u32,
    /// See [`Header::slot_size`].
    pub slot_size: u32,
    /// See [`Header::segment_size`].
    pub segment_size: u64,
    /// See [`Header::state`].
    pub state: u32,
    /// See [`Header::flags`].
    pub flags: u32,
    /// The membership counters.
    pub counters: Counters,
    /// See [`Header::frames_published`].
    pub frames_published: u64,
    /// See [`Header::bytes_published`].
    pub bytes_published: u64,
    /// See [`Header::frames_consumed`].
    pub frames_consumed: u64,
    /// See [`Header::bytes_consumed`].
    pub bytes_consumed: u64,
    /// See [`Header::write_mutex_holder`].
    pub write_mutex_holder: i32,
    /// See [`Header::read_mutex_holder`].
    pub read_mutex_holder: i32,
    /// See [`Header::creator_pid`].
    pub creator_pid: i32,
    /// See [`Header::next_writer_id`].
    pub next_writer_id: u32,
    /// The peer table: (pid, role, id) of each entry, empty ones included.
    pub peers: Vec<(i32, u32, u32)>,
}

impl HeaderFields {
    /// Decodes the little-endian bytes of a header page (a copy, from a read-only
    /// attach), `page` being at least [`layout::HEADER_SIZE`] bytes.
    pub(crate) fn from_bytes(page: &[u8]) -> Option<HeaderFields> {
        let u32_at = |o: usize| -> Option<u32> {
            Some(u32::from_le_bytes(page.get(o..o + 4)?.try_into().ok()?))
        };
        let u64_at = |o: usize| -> Option<u64> {
            Some(u64::from_le_bytes(page.get(o..o + 8)?.try_into().ok()?))
        };
        let i32_at = |o: usize| u32_at(o).map(|v| v as i32);
        use layout::off;
        let mut peers = Vec::with_capacity(layout::MAX_PEERS);
        for i in 0..layout::MAX_PEERS {
            let base = off::PEERS + i * layout::PEER_ENTRY_SIZE;
            peers.push((i32_at(base)?, u32_at(base + 4)?, u32_at(base + 8)?));
        }
        Some(HeaderFields {
            magic: u64_at(off::MAGIC)?,
            version: u32_at(off::VERSION)?,
            header_size: u32_at(off::HEADER_SIZE)?,
            slot_count: u32_at(off::SLOT_COUNT)?,
            slot_size: u32_at(off::SLOT_SIZE)?,
            segment_size: u64_at(off::SEGMENT_SIZE)?,
            state: u32_at(off::STATE)?,
            flags: u32_at(off::FLAGS)?,
            counters: Counters {
                writers_joined: u32_at(off::WRITERS_JOINED)?,
                readers_joined: u32_at(off::READERS_JOINED)?,
                writers_finished: u32_at(off::WRITERS_FINISHED)?,
                readers_finished: u32_at(off::READERS_FINISHED)?,
                writers_ended: u32_at(off::WRITERS_ENDED)?,
            },
            frames_published: u64_at(off::FRAMES_PUBLISHED)?,
            bytes_published: u64_at(off::BYTES_PUBLISHED)?,
            frames_consumed: u64_at(off::FRAMES_CONSUMED)?,
            bytes_consumed: u64_at(off::BYTES_CONSUMED)?,
            write_mutex_holder: i32_at(off::WRITE_MUTEX_HOLDER)?,
            read_mutex_holder: i32_at(off::READ_MUTEX_HOLDER)?,
            creator_pid: i32_at(off::CREATOR_PID)?,
            next_writer_id: u32_at(off::NEXT_WRITER_ID)?,
            peers,
        })
    }

    /// Checks the fields of a segment whose magic is ours, returning its geometry
    /// ([`Error::Corrupt`] for a damaged header).
    pub fn geometry(&self, key: IpcKey, segment_len: usize) -> Result<Geometry> {
        let corrupt = |detail: String| Error::Corrupt { key, detail };
        let (slots, slot_size) = (self.slot_count, self.slot_size);
        if self.header_size as usize != layout::HEADER_SIZE {
            return Err(corrupt(format!(
                "header size field is {}, expected {}",
                self.header_size,
                layout::HEADER_SIZE
            )));
        }
        let geo = Geometry::new(slots, slot_size)
            .map_err(|e| corrupt(format!("bad geometry in header: {e}")))?;
        if geo.segment_size() > segment_len as u64 {
            return Err(corrupt(format!(
                "the header claims {} bytes ({slots} slots of {slot_size}) but the segment has {segment_len}",
                geo.segment_size(),
            )));
        }
        Ok(geo)
    }
}

/// Checks that the segment is a session of ours and of this layout version, and its
/// header sound; returns the geometry. Every field is read once, then checked.
/// [`Error::Conflict`]: not ours (too small, another magic, another version);
/// [`Error::Corrupt`]: ours but damaged.
pub fn check(seg: &Segment) -> Result<Geometry> {
    let key = seg.key();
    // The owner is looked up only when there is something to refuse.
    let foreign = |detail: String| {
        let owner = seg.stat().map_or_else(
            |_| "owner unknown".to_string(),
            |st| format!("owner uid {}", st.uid),
        );
        Error::Conflict {
            key,
            detail: format!("{detail} ({owner})"),
            remove_hint: Some(format!("ipcrm -m {}", seg.id())),
        }
    };
    if seg.len() < layout::HEADER_SIZE {
        return Err(foreign(format!(
            "the segment there (shmid {}) is {} bytes, smaller than our header: it is not ours",
            seg.id(),
            seg.len()
        )));
    }
    let h = seg.header_fields()?;
    if h.magic != layout::MAGIC {
        return Err(foreign(format!(
            "the segment there (shmid {}) does not start with our magic: it is not ours",
            seg.id()
        )));
    }
    if h.version != layout::VERSION {
        return Err(foreign(format!(
            "the segment there (shmid {}) has layout version {}; this build speaks version {}",
            seg.id(),
            h.version,
            layout::VERSION
        )));
    }
    h.geometry(key, seg.len())
}

/// The header's counters at one moment (each exact, the set only approximately
/// simultaneous unless read with both mutexes held).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Writers that ever joined.
    pub writers_joined: u32,
    /// Readers that ever joined.
    pub readers_joined: u32,
    /// Writers that left after their END frame.
    pub writers_finished: u32,
    /// Readers that left after FINAL.
    pub readers_finished: u32,
    /// Writers that published END or FINAL.
    pub writers_ended: u32,
}

impl Header {
    /// Writes a new header into a zero-filled segment: every field first, the magic
    /// last. SYNC POINT "header published" (Release): whoever sees the magic with
    /// the Acquire in [`Header::fields`] sees every field stored before it.
    pub fn initialise(&self, geometry: Geometry, flags: u32, creator_pid: i32) {
        // shmget zero-fills a new segment, so only non-zero fields need writing.
        let r = Ordering::Relaxed;
        self.version.store(layout::VERSION, r);
        self.header_size.store(layout::HEADER_SIZE as u32, r);
        self.slot_count.store(geometry.slots, r);
        self.slot_size.store(geometry.slot_size, r);
        self.segment_size.store(geometry.segment_size(), r);
        self.flags.store(flags, r);
        self.creator_pid.store(creator_pid, r);
        self.next_writer_id.store(2, r);
        self.writers_joined.store(1, r);
        let me = &self.peers[0];
        me.pid.store(creator_pid, r);
        me.role.store(layout::ROLE_WRITER, r);
        me.id.store(1, r);
        self.state.store(State::Open as u32, r);
        self.magic.store(layout::MAGIC, Ordering::Release);
    }

    /// Every field, read once: the magic first, with Acquire (SYNC POINT "header
    /// published": if it is ours, everything the creator wrote before it is seen by
    /// the loads that follow), the rest Relaxed.
    pub fn fields(&self) -> HeaderFields {
        let magic = self.magic.load(Ordering::Acquire);
        let r = Ordering::Relaxed;
        HeaderFields {
            magic,
            version: self.version.load(r),
            header_size: self.header_size.load(r),
            slot_count: self.slot_count.load(r),
            slot_size: self.slot_size.load(r),
            segment_size: self.segment_size.load(r),
            state: self.state.load(r),
            flags: self.flags.load(r),
            counters: self.counters(),
            frames_published: self.frames_published.load(r),
            bytes_published: self.bytes_published.load(r),
            frames_consumed: self.frames_consumed.load(r),
            bytes_consumed: self.bytes_consumed.load(r),
            write_mutex_holder: self.write_mutex_holder.load(r),
            read_mutex_holder: self.read_mutex_holder.load(r),
            creator_pid: self.creator_pid.load(r),
            next_writer_id: self.next_writer_id.load(r),
            peers: self
                .peers
                .iter()
                .map(|p| (p.pid.load(r), p.role.load(r), p.id.load(r)))
                .collect(),
        }
    }

    /// The session's state (`None` for a value no peer of this version writes).
    pub fn state(&self) -> Option<State> {
        State::from_raw(self.state.load(Ordering::Relaxed))
    }

    /// The flags field.
    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Relaxed)
    }

    /// The membership counters.
    pub fn counters(&self) -> Counters {
        let r = Ordering::Relaxed;
        Counters {
            writers_joined: self.writers_joined.load(r),
            readers_joined: self.readers_joined.load(r),
            writers_finished: self.writers_finished.load(r),
            readers_finished: self.readers_finished.load(r),
            writers_ended: self.writers_ended.load(r),
        }
    }
}
