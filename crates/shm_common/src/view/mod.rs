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
use crate::layout::{self, sem};
use crate::segment::{self, Segment};
use crate::semaphore::{self, Query};
use crate::session::{process_alive, process_stopped};

mod model;

pub use model::{Cell, HeaderInfo, Peer, RingInfo, SegmentInfo, SemMember, SemSetInfo, Verdict};

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
                stopped: pid > 0 && process_stopped(pid),
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
