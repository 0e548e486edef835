//! The pieces of a [`Report`](super::Report): the segment, our header, the
//! semaphore set, and the ring reconstructed from the semaphores.

use crate::layout::{self, sem, State};
use crate::segment::SegmentStat;
use crate::semaphore::SetStat;

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
    /// Whether it is stopped (Ctrl-Z, SIGSTOP, a debugger: state `T` or `t` in
    /// /proc/PID/stat): alive, but making no progress until continued.
    pub stopped: bool,
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
