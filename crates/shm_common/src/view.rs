//! A read-only look at whatever is at a key: what `shm-inspect` shows.
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
//! This module builds the [`Report`]; showing it (text, JSON, a terminal page) is
//! the inspector's business (crates/inspect).

use crate::error::Error;
use crate::header::{self, HeaderFields};
use crate::key::IpcKey;
use crate::layout::{self, sem, State};
use crate::segment::{self, Segment, SegmentStat};
use crate::semaphore::{self, Query, SetStat};
use crate::session::process_alive;

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
        if self.flags & layout::FLAG_SHARED != 0 {
            v.push("shared".to_string());
        }
        let rest = self.flags & !(layout::FLAG_PERSIST | layout::FLAG_SHARED);
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

/// Reads our header from a read-only attach (copies only); returns the geometry
/// when it is ours. The inspector only displays what it reads and draws no
/// conclusion that would need ordering.
fn read_header(seg: &Segment, r: &mut Report) -> Option<crate::Geometry> {
    let mut first = vec![0u8; seg.len().min(16)];
    if seg.read_bytes(0, &mut first).is_err() {
        first.clear();
    }
    let geometry = match header::check(seg) {
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
    match seg.header_fields() {
        Ok(h) => {
            r.header = Some(HeaderInfo::from_fields(&h, geometry));
            Some(geometry)
        }
        Err(e) => {
            r.header_problem = Some(e.to_string());
            None
        }
    }
}

impl HeaderInfo {
    fn from_fields(h: &HeaderFields, geometry: crate::Geometry) -> HeaderInfo {
        let peers = h
            .peers
            .iter()
            .enumerate()
            .filter(|(_, (pid, _, _))| *pid != 0)
            .map(|(index, &(pid, role, id))| Peer {
                index,
                pid,
                role,
                id,
                alive: pid > 0 && process_alive(pid),
            })
            .collect();
        HeaderInfo {
            version: h.version,
            header_size: h.header_size,
            slots: geometry.slots,
            slot_size: geometry.slot_size,
            segment_size: h.segment_size,
            state: h.state,
            flags: h.flags,
            writers_joined: h.counters.writers_joined,
            readers_joined: h.counters.readers_joined,
            writers_finished: h.counters.writers_finished,
            readers_finished: h.counters.readers_finished,
            frames_published: h.frames_published,
            bytes_published: h.bytes_published,
            frames_consumed: h.frames_consumed,
            bytes_consumed: h.bytes_consumed,
            write_mutex_holder: h.write_mutex_holder,
            read_mutex_holder: h.read_mutex_holder,
            creator_pid: h.creator_pid,
            next_writer_id: h.next_writer_id,
            peers,
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
    let values = match crate::sys::sem::get_all(id, n) {
        Ok(v) => v,
        Err(e) => {
            notes.push(format!("semctl(GETALL): {}", e.source));
            return info;
        }
    };
    for (i, &value) in values.iter().enumerate() {
        let Ok(index) = u16::try_from(i) else { break };
        let q = |what| crate::sys::sem::query(id, index, what).unwrap_or(-1);
        let name = if n == sem::COUNT {
            sem::NAMES[i].to_string()
        } else {
            format!("#{i}")
        };
        info.members.push(SemMember {
            index,
            name,
            value: i32::from(value),
            pid: q(Query::LastPid),
            ncnt: q(Query::WaitingToTake),
            zcnt: q(Query::WaitingForZero),
        });
    }
    info
}

/// The bytes as lowercase hex, two digits each.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `writer`, `reader`, or `unknown(N)`.
pub fn role_name(role: u32) -> String {
    match role {
        layout::ROLE_WRITER => "writer".into(),
        layout::ROLE_READER => "reader".into(),
        n => format!("unknown({n})"),
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
}
