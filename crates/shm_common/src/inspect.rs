//! `shm-inspect`: look at whatever is at a key without disturbing it.
//!
//! A student runs `writer`, `reader` and `shm-inspect --watch` in three terminals and
//! sees the bounded buffer fill and drain. Everything here only *looks*:
//! - the segment: `shmctl(IPC_STAT)` (size, owner, mode, attach count, pids, times),
//!   then an attach with `SHM_RDONLY` ([`Segment::attach_read_only`]) to read our
//!   header. The kernel maps the pages without write permission, so a bug here could
//!   crash the inspector but never change what the peers see;
//! - the semaphore set: `semctl(IPC_STAT)`, `GETALL` (every value in one consistent
//!   snapshot), and per member `GETPID` (who changed it last), `GETNCNT` (how many
//!   sleep waiting for it to grow) and `GETZCNT` (waiting for it to reach zero).
//!   None of these is a `semop`, so no value, undo record or `sem_otime` changes;
//! - the ring, computed from the semaphores (HEAD, TAIL, FREE, FILLED and the two
//!   mutexes) as one cell per slot.
//!
//! Nothing at the key, a half-created session, or another program's objects are all
//! reported, never an error: the inspector is the tool you reach for when something
//! is wrong. The only side effects are the kernel's bookkeeping of our read-only
//! attach (`shm_nattch`, `shm_lpid`, `shm_atime`/`shm_dtime`); a one-shot run takes
//! the `IPC_STAT` *before* attaching so the numbers it prints are the peers'.
//!
//! Three renderings of one [`Report`]: [`Report::plain`] (a stable `name: k=v` text
//! for scripts and tests), [`Report::json`] (the same as JSON) and
//! [`Report::human`] (for a terminal, with the ring drawn in rows).

use crate::error::Error;
use crate::key::IpcKey;
use crate::layout::{self, off, sem, State};
use crate::segment::{self, Segment, SegmentStat};
use crate::semaphore::{self, SetStat};
use crate::session::{process_alive, validate_header, FLAG_SHARED};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What is at the key, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Neither a segment nor a semaphore set.
    Nothing,
    /// Our segment (valid header) and our 9-member set, initialised.
    Ours,
    /// Something another program made (wrong magic, size or member count).
    Foreign,
    /// Ours but incomplete: being created right now, or the leftover of a crash
    /// (one object without the other, a zero header, a set never operated on).
    Incomplete,
    /// The kernel would not let us look (another user's objects, narrow mode).
    Unreadable,
}

impl Verdict {
    /// The word used in every rendering.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Nothing => "nothing",
            Verdict::Ours => "ours",
            Verdict::Foreign => "foreign",
            Verdict::Incomplete => "incomplete",
            Verdict::Unreadable => "unreadable",
        }
    }
}

/// The segment as the kernel describes it.
#[derive(Debug, Clone, Copy)]
pub struct SegmentInfo {
    /// `shmid`, as `ipcs -m` shows it.
    pub shmid: i32,
    /// `shmctl(IPC_STAT)`; `None` if the kernel refused it.
    pub stat: Option<SegmentStat>,
    /// Whether this inspector itself is attached while the stat was taken (watch
    /// mode keeps one read-only attach; `nattch` then counts us too).
    pub self_attached: bool,
}

/// One entry of the peer table in our header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Index in the table.
    pub index: usize,
    /// Process id.
    pub pid: i32,
    /// 1 writer, 2 reader.
    pub role: u32,
    /// Writer id or reader join number.
    pub id: u32,
    /// Whether `kill(pid, 0)` finds the process.
    pub alive: bool,
}

/// Our header, field by field (read only when the magic and version are ours).
#[derive(Debug, Clone, Default)]
pub struct HeaderInfo {
    /// Layout version.
    pub version: u32,
    /// Header size field.
    pub header_size: u32,
    /// Slot count.
    pub slots: u32,
    /// Bytes per slot.
    pub slot_size: u32,
    /// Segment size the creator asked for.
    pub segment_size: u64,
    /// Raw state field (see [`State`]).
    pub state: u32,
    /// Raw flags field.
    pub flags: u32,
    /// Writers that ever joined.
    pub writers_joined: u32,
    /// Readers that ever joined.
    pub readers_joined: u32,
    /// Writers that sent their END frame and left.
    pub writers_finished: u32,
    /// Readers that saw FINAL and left.
    pub readers_finished: u32,
    /// Data frames published.
    pub frames_published: u64,
    /// Payload bytes published.
    pub bytes_published: u64,
    /// Data frames consumed.
    pub frames_consumed: u64,
    /// Payload bytes consumed.
    pub bytes_consumed: u64,
    /// Pid holding WRITE_MUTEX (0: free), as the holder wrote it.
    pub write_mutex_holder: i32,
    /// Pid holding READ_MUTEX (0: free).
    pub read_mutex_holder: i32,
    /// Creator's pid.
    pub creator_pid: i32,
    /// Next writer id to hand out.
    pub next_writer_id: u32,
    /// Non-empty peer-table entries.
    pub peers: Vec<Peer>,
}

impl HeaderInfo {
    /// The state's name (`open`, `ended`...), or `unknown(N)`.
    pub fn state_name(&self) -> String {
        match State::from_raw(self.state) {
            Some(State::Initialising) => "initialising".into(),
            Some(State::Open) => "open".into(),
            Some(State::Ended) => "ended".into(),
            None => format!("unknown({})", self.state),
        }
    }

    /// The flags as words joined by `|` (`persist|shared`), or `none`.
    pub fn flag_names(&self) -> String {
        let mut v = Vec::new();
        if self.flags & layout::FLAG_PERSIST != 0 {
            v.push("persist".to_string());
        }
        if self.flags & FLAG_SHARED != 0 {
            v.push("shared".to_string());
        }
        let rest = self.flags & !(layout::FLAG_PERSIST | FLAG_SHARED);
        if rest != 0 {
            v.push(format!("{rest:#x}"));
        }
        if v.is_empty() {
            "none".into()
        } else {
            v.join("|")
        }
    }
}

/// One semaphore of the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemMember {
    /// Index in the set.
    pub index: u16,
    /// Our name for it (`FREE`...), or `#N` in a foreign set.
    pub name: String,
    /// Value (from GETALL).
    pub value: i32,
    /// GETPID: the last process to change it (0: nobody yet).
    pub pid: i32,
    /// GETNCNT: processes sleeping until the value grows.
    pub ncnt: i32,
    /// GETZCNT: processes sleeping until the value is zero.
    pub zcnt: i32,
}

/// The semaphore set.
#[derive(Debug, Clone)]
pub struct SemSetInfo {
    /// `semid`, as `ipcs -s` shows it.
    pub semid: i32,
    /// `semctl(IPC_STAT)`; `None` if refused.
    pub stat: Option<SetStat>,
    /// Every member (empty if the values could not be read).
    pub members: Vec<SemMember>,
}

/// What one slot is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// Free: a writer may take it.
    Free,
    /// Published, waiting for a reader.
    Filled,
    /// Taken by a writer that has not published it yet.
    Writing,
    /// Taken by a reader that has not freed it yet.
    Reading,
}

impl Cell {
    /// The character drawn for the cell: `.` free, `#` filled, `w` being written,
    /// `r` being read.
    pub fn glyph(self) -> char {
        match self {
            Cell::Free => '.',
            Cell::Filled => '#',
            Cell::Writing => 'w',
            Cell::Reading => 'r',
        }
    }
}

/// The ring, reconstructed from one GETALL snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingInfo {
    /// Slot count.
    pub slots: u32,
    /// Next slot a writer fills.
    pub head: u32,
    /// Next slot a reader takes.
    pub tail: u32,
    /// FREE's value.
    pub free: u32,
    /// FILLED's value.
    pub filled: u32,
    /// Slots a writer holds mid-batch.
    pub writing: u32,
    /// Slots a reader holds mid-batch.
    pub reading: u32,
    /// One cell per slot, index 0 first.
    pub cells: Vec<Cell>,
}

impl RingInfo {
    /// Reconstructs the ring from the semaphore values. Every slot is in exactly one
    /// of four places: FREE, FILLED, held by a writer (taken from FREE, not yet
    /// added to FILLED) or held by a reader (taken from FILLED, TAIL not yet moved).
    /// Reading slots start at TAIL, then the FILLED ones; writing ones start at HEAD.
    /// `None` when the values cannot describe a ring of `slots` (not ours, or a
    /// torn snapshot, which GETALL rules out for our protocol).
    pub fn from_sems(slots: u32, v: &[u16]) -> Option<RingInfo> {
        let get = |m: u16| v.get(usize::from(m)).map(|&x| u32::from(x));
        let (free, filled, head, tail) = (
            get(sem::FREE)?,
            get(sem::FILLED)?,
            get(sem::HEAD)?,
            get(sem::TAIL)?,
        );
        let read_mutex = get(sem::READ_MUTEX)?;
        if slots == 0 || head >= slots || tail >= slots || free + filled > slots {
            return None;
        }
        // Published and not yet freed = distance TAIL -> HEAD; when HEAD == TAIL the
        // distance is 0 (empty) or a whole ring (full), told apart by the counts.
        let d = (head + slots - tail) % slots;
        let in_flight = slots - free - filled;
        let published = if d == 0 && filled == 0 && free == 0 {
            // Every slot is held mid-batch by one side: the held mutex says which.
            if read_mutex == 0 {
                slots
            } else {
                0
            }
        } else if d == 0 && filled > 0 {
            slots
        } else {
            d
        };
        let reading = published.checked_sub(filled)?;
        let writing = in_flight.checked_sub(reading)?;
        let mut cells = vec![Cell::Free; slots as usize];
        let mut at = tail;
        for (n, kind) in [(reading, Cell::Reading), (filled, Cell::Filled)] {
            for _ in 0..n {
                cells[at as usize] = kind;
                at = (at + 1) % slots;
            }
        }
        for j in 0..writing {
            cells[((head + j) % slots) as usize] = Cell::Writing;
        }
        Some(RingInfo {
            slots,
            head,
            tail,
            free,
            filled,
            writing,
            reading,
            cells,
        })
    }

    /// The cells as one string of glyphs.
    pub fn picture(&self) -> String {
        self.cells.iter().map(|c| c.glyph()).collect()
    }
}

/// Everything the inspector saw at one instant.
#[derive(Debug, Clone)]
pub struct Report {
    /// The key looked at.
    pub key: IpcKey,
    /// What is there, in one word.
    pub verdict: Verdict,
    /// The segment, if one is at the key.
    pub segment: Option<SegmentInfo>,
    /// Our header, if the segment carries our magic and version.
    pub header: Option<HeaderInfo>,
    /// Why the segment's contents are not (or not yet) a header of ours.
    pub header_problem: Option<String>,
    /// The first 16 bytes of the segment, when they are not our header.
    pub first_bytes: Option<Vec<u8>>,
    /// The semaphore set, if one is at the key.
    pub semset: Option<SemSetInfo>,
    /// The ring picture, when header and set are ours.
    pub ring: Option<RingInfo>,
    /// Sentences for the student: who waits on what, what is wrong.
    pub notes: Vec<String>,
}

/// Looks at a key, repeatedly if asked. Holds at most one read-only attach.
#[derive(Debug)]
pub struct Inspector {
    key: IpcKey,
    keep_attached: bool,
    attached: Option<Segment>,
}

impl Inspector {
    /// An inspector for `key`. With `keep_attached` (watch mode) one read-only attach
    /// is kept between looks instead of attaching and detaching every time, which
    /// would make `shm_lpid` always show the inspector's own pid.
    pub fn new(key: IpcKey, keep_attached: bool) -> Inspector {
        Inspector {
            key,
            keep_attached,
            attached: None,
        }
    }

    /// Looks once. Never fails: whatever goes wrong is part of the report.
    pub fn look(&mut self) -> Report {
        let key = self.key;
        let mut r = Report {
            key,
            verdict: Verdict::Nothing,
            segment: None,
            header: None,
            header_problem: None,
            first_bytes: None,
            semset: None,
            ring: None,
            notes: Vec::new(),
        };
        let mut unreadable = false;
        let mut foreign = false;
        let mut incomplete = false;

        // The segment: shmget(key, 0, 0) finds it without creating anything.
        let shmid = match segment::find(key) {
            Ok(id) => id,
            Err(e) => {
                unreadable |= matches!(e, Error::Permission { .. });
                r.notes.push(format!("shmget: {e}"));
                None
            }
        };
        if self.attached.as_ref().map(Segment::id) != shmid {
            // Gone or replaced by a new segment at the same key: let go of the old one.
            self.attached = None;
        }
        let mut geometry = None;
        if let Some(id) = shmid {
            let stat = match segment::stat(key, id) {
                Ok(st) => Some(st),
                Err(e) => {
                    unreadable |= matches!(e, Error::Permission { .. });
                    r.notes.push(format!("shmctl(IPC_STAT): {e}"));
                    None
                }
            };
            r.segment = Some(SegmentInfo {
                shmid: id,
                stat,
                self_attached: self.attached.is_some(),
            });
            if stat.is_some() {
                match self.attach(id) {
                    Ok(seg) => {
                        geometry = read_header(seg, &mut r);
                        // All zero and big enough for our header: a creator between
                        // shmget and writing the magic (or one that died there).
                        // Anything else that is not our header is someone else's.
                        let zero_header =
                            seg.len() >= layout::HEADER_SIZE && is_zero(r.first_bytes.as_deref());
                        if r.header_problem.is_some() {
                            if zero_header {
                                incomplete = true;
                            } else {
                                foreign = true;
                            }
                        }
                    }
                    Err(e) => {
                        unreadable |= matches!(e, Error::Permission { .. });
                        r.notes.push(format!("shmat(SHM_RDONLY): {e}"));
                    }
                }
                if !self.keep_attached {
                    self.attached = None;
                }
            }
        }

        // The semaphore set: semget(key, 0, 0), then only reading semctl commands.
        match semaphore::find(key) {
            Ok(Some(id)) => {
                let info = read_semset(key, id, &mut r.notes, &mut unreadable);
                if info.stat.is_some_and(|s| s.nsems != sem::COUNT as u64) {
                    foreign = true;
                    r.notes.push(format!(
                        "the semaphore set has {} members; ours has {}: it is not ours",
                        info.stat.map_or(0, |s| s.nsems),
                        sem::COUNT
                    ));
                } else if info.stat.is_some_and(|s| s.otime == 0) {
                    incomplete = true;
                    r.notes.push(
                        "no semop on the set yet (sem_otime = 0): its creator is initialising it, or died doing so"
                            .into(),
                    );
                }
                r.semset = Some(info);
            }
            Ok(None) => {}
            Err(e) => {
                unreadable |= matches!(e, Error::Permission { .. });
                r.notes.push(format!("semget: {e}"));
            }
        }

        if let (Some(g), Some(set)) = (geometry, &r.semset) {
            if set.members.len() == sem::COUNT {
                let v: Vec<u16> = set.members.iter().map(|m| m.value as u16).collect();
                r.ring = RingInfo::from_sems(g.slots, &v);
                if r.ring.is_none() {
                    r.notes.push(format!(
                        "the semaphore values do not describe a ring of {} slots",
                        g.slots
                    ));
                }
            }
        }

        let seg_present = r.segment.is_some();
        let set_present = r.semset.is_some();
        if seg_present && !set_present && !foreign {
            incomplete = true;
            r.notes.push(
                "a segment without its semaphore set: being created, a crash's leftover (make clean), or the race demo (no semaphores by design)"
                    .into(),
            );
        }
        if set_present && !seg_present && !foreign {
            incomplete = true;
            r.notes.push(
                "a semaphore set without its segment: being created, or a crash's leftover (make clean)"
                    .into(),
            );
        }
        r.verdict = if !seg_present && !set_present {
            if unreadable {
                Verdict::Unreadable
            } else {
                Verdict::Nothing
            }
        } else if foreign {
            Verdict::Foreign
        } else if unreadable {
            Verdict::Unreadable
        } else if incomplete || r.header.is_none() || r.ring.is_none() {
            Verdict::Incomplete
        } else {
            Verdict::Ours
        };
        explain_waits(&mut r);
        r
    }

    fn attach(&mut self, id: i32) -> crate::Result<&Segment> {
        if self.attached.is_none() {
            self.attached = Some(Segment::attach_read_only(self.key, id)?);
        }
        self.attached.as_ref().ok_or_else(|| Error::Corrupt {
            key: self.key,
            detail: "attach vanished".into(),
        })
    }
}

/// Looks at `key` once (stat before attach, detach after).
pub fn look(key: IpcKey) -> Report {
    Inspector::new(key, false).look()
}

fn is_zero(b: Option<&[u8]>) -> bool {
    b.is_some_and(|b| b.iter().all(|&x| x == 0))
}

/// Reads our header from a read-only attach; returns the geometry when it is ours.
/// Fields that peers change concurrently are read with atomic loads (Relaxed: the
/// inspector only displays them and draws no conclusion that needs ordering).
fn read_header(seg: &Segment, r: &mut Report) -> Option<crate::Geometry> {
    let mut first = vec![0u8; seg.len().min(16)];
    if seg.read_bytes(0, &mut first).is_err() {
        first.clear();
    }
    let geometry = match validate_header(seg) {
        Ok(g) => g,
        Err(e) => {
            let detail = match &e {
                Error::Conflict { detail, .. } | Error::Corrupt { detail, .. } => detail.clone(),
                other => other.to_string(),
            };
            r.header_problem = Some(if is_zero(Some(&first)) {
                format!("{detail} (all zero: its creator has not written the header yet, or died before)")
            } else {
                detail
            });
            r.first_bytes = Some(first);
            return None;
        }
    };
    let u32_at = |o: usize| seg.atomic_u32(o).map(|a| a.load(Ordering::Relaxed));
    let u64_at = |o: usize| seg.atomic_u64(o).map(|a| a.load(Ordering::Relaxed));
    let i32_at = |o: usize| seg.atomic_i32(o).map(|a| a.load(Ordering::Relaxed));
    let h = (|| -> crate::Result<HeaderInfo> {
        let mut peers = Vec::new();
        for index in 0..layout::MAX_PEERS {
            let base = off::PEERS + index * layout::PEER_ENTRY_SIZE;
            let pid = i32_at(base)?;
            if pid != 0 {
                peers.push(Peer {
                    index,
                    pid,
                    role: u32_at(base + 4)?,
                    id: u32_at(base + 8)?,
                    alive: pid > 0 && process_alive(pid),
                });
            }
        }
        Ok(HeaderInfo {
            version: u32_at(off::VERSION)?,
            header_size: u32_at(off::HEADER_SIZE)?,
            slots: geometry.slots,
            slot_size: geometry.slot_size,
            segment_size: u64_at(off::SEGMENT_SIZE)?,
            state: u32_at(off::STATE)?,
            flags: u32_at(off::FLAGS)?,
            writers_joined: u32_at(off::WRITERS_JOINED)?,
            readers_joined: u32_at(off::READERS_JOINED)?,
            writers_finished: u32_at(off::WRITERS_FINISHED)?,
            readers_finished: u32_at(off::READERS_FINISHED)?,
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
    })();
    match h {
        Ok(h) => {
            r.header = Some(h);
            Some(geometry)
        }
        Err(e) => {
            r.header_problem = Some(e.to_string());
            None
        }
    }
}

/// Reads the set with IPC_STAT, GETALL and the per-member queries.
fn read_semset(key: IpcKey, id: i32, notes: &mut Vec<String>, unreadable: &mut bool) -> SemSetInfo {
    let mut info = SemSetInfo {
        semid: id,
        stat: None,
        members: Vec::new(),
    };
    let st = match semaphore::stat(key, id) {
        Ok(st) => st,
        Err(e) => {
            *unreadable |= matches!(e, Error::Permission { .. });
            notes.push(format!("semctl(IPC_STAT): {e}"));
            return info;
        }
    };
    info.stat = Some(st);
    // GETALL writes exactly nsems values: the buffer is sized from the same IPC_STAT
    // (a removed-and-recreated set gets a new id, so the count cannot change under us).
    let Ok(n) = usize::try_from(st.nsems) else {
        return info;
    };
    let mut values = vec![0u16; n];
    if let Err(e) = crate::sys::sem::get_all(id, &mut values) {
        notes.push(format!("semctl(GETALL): {}", e.source));
        return info;
    }
    for (i, &value) in values.iter().enumerate() {
        let Ok(index) = u16::try_from(i) else { break };
        let q = |cmd| crate::sys::sem::query(id, index, cmd).unwrap_or(-1);
        let name = if n == sem::COUNT {
            sem::NAMES[i].to_string()
        } else {
            format!("#{i}")
        };
        info.members.push(SemMember {
            index,
            name,
            value: i32::from(value),
            pid: q(libc::GETPID),
            ncnt: q(libc::GETNCNT),
            zcnt: q(libc::GETZCNT),
        });
    }
    info
}

/// Adds the sentences a student needs to read the numbers: who sleeps on what.
fn explain_waits(r: &mut Report) {
    let Some(set) = &r.semset else { return };
    if set.members.len() != sem::COUNT {
        return;
    }
    let m = |i: u16| &set.members[usize::from(i)];
    let mut notes = Vec::new();
    if m(sem::FREE).ncnt > 0 {
        notes.push(format!(
            "writer blocked: {} process(es) sleep in semop until FREE grows (the ring is full; FREE = {})",
            m(sem::FREE).ncnt,
            m(sem::FREE).value
        ));
    }
    if m(sem::FILLED).ncnt > 0 {
        notes.push(format!(
            "reader blocked: {} process(es) sleep in semop until FILLED grows (the ring is empty)",
            m(sem::FILLED).ncnt
        ));
    }
    for mutex in [sem::WRITE_MUTEX, sem::READ_MUTEX] {
        if m(mutex).value == 0 {
            notes.push(format!(
                "{} is held by pid {} (the last to change it), mid-batch",
                sem::NAMES[usize::from(mutex)],
                m(mutex).pid
            ));
        }
    }
    r.notes.extend(notes);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn role_name(role: u32) -> String {
    match role {
        layout::ROLE_WRITER => "writer".into(),
        layout::ROLE_READER => "reader".into(),
        n => format!("unknown({n})"),
    }
}

impl Report {
    /// The stable text format: one record per line, `name: k=v k=v`, except the
    /// `sem NAME k=v...` lines. Absent objects print as `segment: none` and
    /// `semset: none`. Numbers are decimal, times seconds since the epoch (0: never).
    pub fn plain(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "key: {}", self.key);
        let _ = writeln!(o, "verdict: {}", self.verdict.name());
        match &self.segment {
            None => o.push_str("segment: none\n"),
            Some(s) => {
                let _ = write!(o, "segment: shmid={}", s.shmid);
                if let Some(st) = &s.stat {
                    let _ = write!(
                        o,
                        " size={} uid={} mode={:04o} nattch={} cpid={} lpid={} atime={} dtime={} ctime={}",
                        st.size, st.uid, st.mode, st.attached, st.creator_pid, st.last_pid,
                        st.attach_time, st.detach_time, st.change_time
                    );
                }
                let _ = writeln!(o, " self_attached={}", yes(s.self_attached));
            }
        }
        if let Some(h) = &self.header {
            let _ = writeln!(
                o,
                "header: magic=SVSHMRNG version={} header_size={} slots={} slot_size={} segment_size={} state={} flags={} creator_pid={} next_writer_id={}",
                h.version, h.header_size, h.slots, h.slot_size, h.segment_size,
                h.state_name(), h.flag_names(), h.creator_pid, h.next_writer_id
            );
            let _ = writeln!(
                o,
                "counters: writers_joined={} readers_joined={} writers_finished={} readers_finished={} frames_published={} bytes_published={} frames_consumed={} bytes_consumed={}",
                h.writers_joined, h.readers_joined, h.writers_finished, h.readers_finished,
                h.frames_published, h.bytes_published, h.frames_consumed, h.bytes_consumed
            );
            let _ = writeln!(
                o,
                "mutex: write_holder={} read_holder={}",
                h.write_mutex_holder, h.read_mutex_holder
            );
            for p in &h.peers {
                let _ = writeln!(
                    o,
                    "peer: index={} pid={} role={} id={} alive={}",
                    p.index,
                    p.pid,
                    role_name(p.role),
                    p.id,
                    yes(p.alive)
                );
            }
        } else if let Some(why) = &self.header_problem {
            let _ = writeln!(
                o,
                "header: not-ours first_bytes={} reason={why:?}",
                hex(self.first_bytes.as_deref().unwrap_or(&[]))
            );
        }
        match &self.semset {
            None => o.push_str("semset: none\n"),
            Some(s) => {
                let _ = write!(o, "semset: semid={}", s.semid);
                if let Some(st) = &s.stat {
                    let _ = write!(
                        o,
                        " nsems={} uid={} mode={:04o} otime={} ctime={}",
                        st.nsems, st.uid, st.mode, st.otime, st.ctime
                    );
                }
                o.push('\n');
                for m in &s.members {
                    let _ = writeln!(
                        o,
                        "sem {} value={} pid={} ncnt={} zcnt={}",
                        m.name, m.value, m.pid, m.ncnt, m.zcnt
                    );
                }
            }
        }
        if let Some(ring) = &self.ring {
            let _ = writeln!(
                o,
                "ring: slots={} head={} tail={} free={} filled={} writing={} reading={}",
                ring.slots,
                ring.head,
                ring.tail,
                ring.free,
                ring.filled,
                ring.writing,
                ring.reading
            );
            let _ = writeln!(o, "cells: {}", ring.picture());
        }
        for n in &self.notes {
            let _ = writeln!(o, "note: {n}");
        }
        o
    }

    /// The same content as JSON (one object; absent parts are `null`).
    pub fn json(&self) -> String {
        let mut j = Json::default();
        j.open('{');
        j.str_field("key", &self.key.to_string());
        j.str_field("verdict", self.verdict.name());
        j.key("segment");
        match &self.segment {
            None => j.null(),
            Some(s) => {
                j.open('{');
                j.num_field("shmid", s.shmid);
                if let Some(st) = &s.stat {
                    j.num_field("size", st.size);
                    j.num_field("uid", st.uid);
                    j.str_field("mode", &format!("{:04o}", st.mode));
                    j.num_field("nattch", st.attached);
                    j.num_field("cpid", st.creator_pid);
                    j.num_field("lpid", st.last_pid);
                    j.num_field("atime", st.attach_time);
                    j.num_field("dtime", st.detach_time);
                    j.num_field("ctime", st.change_time);
                }
                j.key("self_attached");
                j.raw(if s.self_attached { "true" } else { "false" });
                j.close('}');
            }
        }
        j.key("header");
        match &self.header {
            None => j.null(),
            Some(h) => {
                j.open('{');
                j.str_field("magic", "SVSHMRNG");
                j.num_field("version", h.version);
                j.num_field("header_size", h.header_size);
                j.num_field("slots", h.slots);
                j.num_field("slot_size", h.slot_size);
                j.num_field("segment_size", h.segment_size);
                j.str_field("state", &h.state_name());
                j.str_field("flags", &h.flag_names());
                j.num_field("creator_pid", h.creator_pid);
                j.num_field("next_writer_id", h.next_writer_id);
                j.num_field("writers_joined", h.writers_joined);
                j.num_field("readers_joined", h.readers_joined);
                j.num_field("writers_finished", h.writers_finished);
                j.num_field("readers_finished", h.readers_finished);
                j.num_field("frames_published", h.frames_published);
                j.num_field("bytes_published", h.bytes_published);
                j.num_field("frames_consumed", h.frames_consumed);
                j.num_field("bytes_consumed", h.bytes_consumed);
                j.num_field("write_mutex_holder", h.write_mutex_holder);
                j.num_field("read_mutex_holder", h.read_mutex_holder);
                j.key("peers");
                j.open('[');
                for p in &h.peers {
                    j.item();
                    j.open('{');
                    j.num_field("index", p.index);
                    j.num_field("pid", p.pid);
                    j.str_field("role", &role_name(p.role));
                    j.num_field("id", p.id);
                    j.key("alive");
                    j.raw(if p.alive { "true" } else { "false" });
                    j.close('}');
                }
                j.close(']');
                j.close('}');
            }
        }
        j.key("header_problem");
        match &self.header_problem {
            None => j.null(),
            Some(p) => j.string(p),
        }
        j.key("first_bytes");
        match &self.first_bytes {
            None => j.null(),
            Some(b) => j.string(&hex(b)),
        }
        j.key("semset");
        match &self.semset {
            None => j.null(),
            Some(s) => {
                j.open('{');
                j.num_field("semid", s.semid);
                if let Some(st) = &s.stat {
                    j.num_field("nsems", st.nsems);
                    j.num_field("uid", st.uid);
                    j.str_field("mode", &format!("{:04o}", st.mode));
                    j.num_field("otime", st.otime);
                    j.num_field("ctime", st.ctime);
                }
                j.key("members");
                j.open('[');
                for m in &s.members {
                    j.item();
                    j.open('{');
                    j.num_field("index", m.index);
                    j.str_field("name", &m.name);
                    j.num_field("value", m.value);
                    j.num_field("pid", m.pid);
                    j.num_field("ncnt", m.ncnt);
                    j.num_field("zcnt", m.zcnt);
                    j.close('}');
                }
                j.close(']');
                j.close('}');
            }
        }
        j.key("ring");
        match &self.ring {
            None => j.null(),
            Some(r) => {
                j.open('{');
                j.num_field("slots", r.slots);
                j.num_field("head", r.head);
                j.num_field("tail", r.tail);
                j.num_field("free", r.free);
                j.num_field("filled", r.filled);
                j.num_field("writing", r.writing);
                j.num_field("reading", r.reading);
                j.str_field("cells", &r.picture());
                j.close('}');
            }
        }
        j.key("notes");
        j.open('[');
        for n in &self.notes {
            j.item();
            j.string(n);
        }
        j.close(']');
        j.close('}');
        j.out.push('\n');
        j.out
    }

    /// For a terminal: aligned, with relative times and the ring drawn in rows of
    /// at most `width` cells, `H` and `T` marking HEAD and TAIL under each row.
    pub fn human(&self, width: usize) -> String {
        let mut o = String::new();
        let now = now_secs();
        let ago = |t: i64| {
            if t == 0 {
                "never".to_string()
            } else {
                format!("{}s ago", (now - t).max(0))
            }
        };
        let _ = writeln!(o, "key {}: {}", self.key, self.verdict.name());
        match &self.segment {
            None => o.push_str("segment   none\n"),
            Some(s) => {
                let _ = write!(o, "segment   shmid {}", s.shmid);
                if let Some(st) = &s.stat {
                    let _ = write!(
                        o,
                        ", {} bytes, uid {}, mode {:04o}, {} attached{}\n          created by pid {} ({}), last shmat/shmdt by pid {}, attached {}, detached {}",
                        st.size,
                        st.uid,
                        st.mode,
                        st.attached,
                        if s.self_attached { " (one is this inspector)" } else { "" },
                        st.creator_pid,
                        ago(st.change_time),
                        st.last_pid,
                        ago(st.attach_time),
                        ago(st.detach_time)
                    );
                }
                o.push('\n');
            }
        }
        if let Some(h) = &self.header {
            let _ = writeln!(
                o,
                "header    SVSHMRNG v{}, {} slots x {} bytes, state {}, flags {}",
                h.version,
                h.slots,
                h.slot_size,
                h.state_name(),
                h.flag_names()
            );
            let _ = writeln!(
                o,
                "          joined: {} writer(s), {} reader(s); finished: {} / {}",
                h.writers_joined, h.readers_joined, h.writers_finished, h.readers_finished
            );
            let _ = writeln!(
                o,
                "          published {} frames ({} bytes), consumed {} frames ({} bytes)",
                h.frames_published, h.bytes_published, h.frames_consumed, h.bytes_consumed
            );
            let holder = |p: i32| {
                if p == 0 {
                    "free".to_string()
                } else {
                    format!("pid {p}")
                }
            };
            let _ = writeln!(
                o,
                "          write mutex {}, read mutex {}",
                holder(h.write_mutex_holder),
                holder(h.read_mutex_holder)
            );
            for p in &h.peers {
                let _ = writeln!(
                    o,
                    "          peer {} pid {} {} {}",
                    p.index,
                    p.pid,
                    role_name(p.role),
                    if p.alive { "alive" } else { "gone" }
                );
            }
        } else if let Some(why) = &self.header_problem {
            let _ = writeln!(
                o,
                "header    not ours: {why}\n          first bytes: {}",
                hex(self.first_bytes.as_deref().unwrap_or(&[]))
            );
        }
        match &self.semset {
            None => o.push_str("semset    none\n"),
            Some(s) => {
                let _ = write!(o, "semset    semid {}", s.semid);
                if let Some(st) = &s.stat {
                    let _ = write!(
                        o,
                        ", {} members, uid {}, mode {:04o}, last semop {}",
                        st.nsems,
                        st.uid,
                        st.mode,
                        ago(st.otime)
                    );
                }
                o.push('\n');
                let _ = writeln!(
                    o,
                    "          {:<12} {:>6} {:>8} {:>6} {:>6}",
                    "member", "value", "lastpid", "ncnt", "zcnt"
                );
                for m in &s.members {
                    let _ = writeln!(
                        o,
                        "          {:<12} {:>6} {:>8} {:>6} {:>6}",
                        m.name, m.value, m.pid, m.ncnt, m.zcnt
                    );
                }
            }
        }
        if let Some(r) = &self.ring {
            let _ = writeln!(
                o,
                "ring      {} free, {} filled, {} being written, {} being read   (. free  # filled  w writing  r reading)",
                r.free, r.filled, r.writing, r.reading
            );
            let width = width.max(8);
            let pic: Vec<char> = r.picture().chars().collect();
            for (row, chunk) in pic.chunks(width).enumerate() {
                let start = row * width;
                let line: String = chunk.iter().collect();
                let _ = writeln!(o, "  {start:>5} [{line}]");
                let mut marks = vec![' '; chunk.len()];
                for (pos, ch) in [(r.tail as usize, 'T'), (r.head as usize, 'H')] {
                    if (start..start + chunk.len()).contains(&pos) {
                        let m = &mut marks[pos - start];
                        *m = if *m == ' ' { ch } else { '*' };
                    }
                }
                if marks.iter().any(|&c| c != ' ') {
                    let marks: String = marks.into_iter().collect();
                    let _ = writeln!(o, "         {}", marks.trim_end());
                }
            }
            let _ = writeln!(
                o,
                "          H = HEAD {} (next slot to write), T = TAIL {} (next slot to read), * both",
                r.head, r.tail
            );
        }
        for n in &self.notes {
            let _ = writeln!(o, "note      {n}");
        }
        o
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A minimal JSON writer: our values are numbers, booleans, null and short strings,
/// which does not justify a serialization framework in the library the lab builds.
#[derive(Default)]
struct Json {
    out: String,
    /// Whether the current container already has a member (a comma is due).
    need_comma: Vec<bool>,
}

impl Json {
    fn comma(&mut self) {
        if let Some(c) = self.need_comma.last_mut() {
            if *c {
                self.out.push(',');
            }
            *c = true;
        }
    }
    fn open(&mut self, c: char) {
        self.out.push(c);
        self.need_comma.push(false);
    }
    fn close(&mut self, c: char) {
        self.need_comma.pop();
        self.out.push(c);
    }
    /// Starts an array element.
    fn item(&mut self) {
        self.comma();
    }
    fn key(&mut self, k: &str) {
        self.comma();
        self.push_str_lit(k);
        self.out.push(':');
    }
    fn raw(&mut self, v: &str) {
        self.out.push_str(v);
    }
    fn null(&mut self) {
        self.out.push_str("null");
    }
    fn string(&mut self, s: &str) {
        self.push_str_lit(s);
    }
    fn str_field(&mut self, k: &str, v: &str) {
        self.key(k);
        self.push_str_lit(v);
    }
    fn num_field(&mut self, k: &str, v: impl std::fmt::Display) {
        self.key(k);
        let _ = write!(self.out, "{v}");
    }
    fn push_str_lit(&mut self, s: &str) {
        self.out.push('"');
        for ch in s.chars() {
            match ch {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.out, "\\u{:04x}", c as u32);
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }
}

/// `--watch`: clears the terminal and redraws [`Report::human`] every `interval`
/// until `stop()` says so (the binary wires it to Ctrl-C). Keeps one read-only
/// attach. Returns the last report.
pub fn watch(
    key: IpcKey,
    interval: Duration,
    width: usize,
    out: &mut dyn std::io::Write,
    stop: &dyn Fn() -> bool,
) -> std::io::Result<Report> {
    let mut inspector = Inspector::new(key, true);
    let step = Duration::from_millis(50).min(interval);
    loop {
        let report = inspector.look();
        // Home the cursor and clear the screen, then draw: one write per frame.
        let frame = format!(
            "\x1b[H\x1b[2J{}\n(refreshing every {:.1} s; Ctrl-C to quit)\n",
            report.human(width),
            interval.as_secs_f64()
        );
        out.write_all(frame.as_bytes())?;
        out.flush()?;
        let mut waited = Duration::ZERO;
        while waited < interval {
            if stop() {
                return Ok(report);
            }
            std::thread::sleep(step);
            waited += step;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(free: u16, filled: u16, head: u16, tail: u16, rmutex: u16) -> Vec<u16> {
        let mut v = vec![0u16; sem::COUNT];
        v[usize::from(sem::FREE)] = free;
        v[usize::from(sem::FILLED)] = filled;
        v[usize::from(sem::HEAD)] = head;
        v[usize::from(sem::TAIL)] = tail;
        v[usize::from(sem::WRITE_MUTEX)] = 1;
        v[usize::from(sem::READ_MUTEX)] = rmutex;
        v
    }

    #[test]
    fn ring_pictures() {
        let pic = |v: Vec<u16>| RingInfo::from_sems(8, &v).map(|r| r.picture());
        assert_eq!(pic(vals(8, 0, 0, 0, 1)).as_deref(), Some("........"));
        assert_eq!(pic(vals(5, 3, 5, 2, 1)).as_deref(), Some("..###..."));
        assert_eq!(pic(vals(0, 8, 3, 3, 1)).as_deref(), Some("########"));
        // Wrapped, with a writer holding two slots at HEAD and a reader one at TAIL.
        assert_eq!(pic(vals(1, 4, 1, 4, 0)).as_deref(), Some("#ww.r###"));
        // Everything held by a reader, or by a writer.
        assert_eq!(pic(vals(0, 0, 2, 2, 0)).as_deref(), Some("rrrrrrrr"));
        assert_eq!(pic(vals(0, 0, 2, 2, 1)).as_deref(), Some("wwwwwwww"));
        assert_eq!(pic(vals(9, 0, 0, 0, 1)), None);
        assert_eq!(pic(vals(8, 0, 8, 0, 1)), None);
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut j = Json::default();
        j.open('{');
        j.str_field("a", "q\"\\\n\u{1}");
        j.num_field("b", 3);
        j.close('}');
        assert_eq!(j.out, r#"{"a":"q\"\\\n\u0001","b":3}"#);
    }
}
