//! [`Session`]: finding or creating the segment and semaphore set at a key, joining
//! and leaving as a writer or reader, and the explicit decision to remove them.
//!
//! # The initialisation race, and its classic fix
//! `semget(IPC_CREAT)` and the initial `semctl(SETALL)` are two calls. A process that
//! opens the set between them would use uninitialised semaphores. We create with
//! `IPC_CREAT | IPC_EXCL`, so exactly one process is the creator; it fills the header,
//! sets every value, and only then performs its first `semop`, which sets the set's
//! `sem_otime`. Everyone else waits until `sem_otime != 0` (Stevens, UNP vol. 2, §11.2)
//! before touching the set; a set still at `sem_otime == 0` after [`INIT_GRACE`]
//! belongs to a creator that died half way, and is stale.
//!
//! # Who removes
//! Joining and leaving happen with both mutexes held, so "am I the last one?" has one
//! answer. The last to leave removes both objects, except a writer that leaves a
//! complete stream for a reader that has not come yet (`--persist`). Objects of ours
//! that nobody uses any more (every peer died) are *stale*; a writer recovers them.

use crate::cancel;
use crate::error::{Error, Result};
use crate::key::IpcKey;
use crate::layout::{self, off, sem, Geometry, State};
use crate::segment::{self, Segment};
use crate::semaphore::{self, SemOp, SemaphoreSet, Wait};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a set may stay uninitialised (`sem_otime == 0`) before it counts as the
/// leftover of a creator that died half way. A live creator needs microseconds.
pub const INIT_GRACE: Duration = Duration::from_secs(2);

/// Header flag: many writers and readers share the session (message mode).
pub const FLAG_SHARED: u32 = 2;

/// Which side of the stream a process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Publishes frames.
    Writer,
    /// Consumes frames.
    Reader,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Writer => "writer",
            Role::Reader => "reader",
        }
    }
    fn count_member(self) -> u16 {
        match self {
            Role::Writer => sem::WRITERS,
            Role::Reader => sem::READERS,
        }
    }
}

/// How to open a session.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// The key.
    pub key: IpcKey,
    /// Writer or reader.
    pub role: Role,
    /// Geometry a writer creates with (readers read it from the header).
    pub geometry: Geometry,
    /// Permission bits for new objects.
    pub mode: u32,
    /// Writer: the stream may outlive the writer until a reader comes (`--persist`).
    pub persist: bool,
    /// Many writers and readers (message mode) instead of one exclusive pair.
    pub shared: bool,
}

/// A consistent picture of the session's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// All semaphore values (GETALL), indexed by `layout::sem`.
    pub sems: [u16; sem::COUNT],
    /// Session state.
    pub state: Option<State>,
    /// Writers/readers that ever joined, and those that finished cleanly.
    pub writers_joined: u32,
    /// See `writers_joined`.
    pub readers_joined: u32,
    /// See `writers_joined`.
    pub writers_finished: u32,
    /// See `writers_joined`.
    pub readers_finished: u32,
    /// Writers that published their END or FINAL frame.
    pub writers_ended: u32,
}

impl Snapshot {
    /// Live writers (the kernel lowers the count when one dies).
    pub fn live_writers(&self) -> u32 {
        u32::from(self.sems[usize::from(sem::WRITERS)])
    }
    /// Live readers.
    pub fn live_readers(&self) -> u32 {
        u32::from(self.sems[usize::from(sem::READERS)])
    }
    /// Writers that are gone without having sent their END frame (died or were
    /// interrupted): joined, minus those that ended, minus those still sending.
    pub fn lost_writers(&self) -> u32 {
        let not_ended = self.writers_joined.saturating_sub(self.writers_ended);
        not_ended.saturating_sub(self.writers_still_sending())
    }
    /// Live writers that have not yet sent their END frame: WRITERS - ENDED, both
    /// kept by the kernel, so a writer that dies after its END leaves no trace.
    pub fn writers_still_sending(&self) -> u32 {
        self.live_writers()
            .saturating_sub(u32::from(self.sems[usize::from(sem::ENDED)]))
    }
    /// Readers that joined and left without reading to the end.
    pub fn lost_readers(&self) -> u32 {
        self.readers_joined
            .saturating_sub(self.readers_finished + self.live_readers())
    }
}

/// One process's membership in the session at a key.
#[derive(Debug)]
pub struct Session {
    key: IpcKey,
    seg: Segment,
    sems: SemaphoreSet,
    geo: Geometry,
    role: Role,
    id: u32,
    shared: bool,
    created: bool,
    joined: bool,
    /// Set once our END/FINAL is published with `{ENDED, +1, SEM_UNDO}`, so that
    /// leaving lowers ENDED again.
    ended: std::sync::atomic::AtomicBool,
    pid: i32,
}

/// How a join attempt ended.
enum JoinStep {
    Joined,
    /// The objects were stale and have been removed.
    Removed,
}

/// What is at a key, as far as we may tell without changing anything.
enum Found {
    Nothing,
    /// Ours and initialised: segment attached, set opened.
    Ours(Segment, SemaphoreSet),
    /// Being created right now by someone else.
    Initialising,
    /// Ours, but nobody can be using it: remove it before creating anew.
    Stale {
        shmid: Option<i32>,
        semid: Option<i32>,
        why: String,
    },
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// An object owned by another user is only ours to use if its mode lets everyone read
/// and write it (the owner widened it with `--mode` on purpose).
fn foreign_owner(uid: u32, mode: u32) -> bool {
    uid != euid() && mode & 0o006 != 0o006
}

fn ipcrm_hint(shmid: Option<i32>, semid: Option<i32>) -> Option<String> {
    let mut parts = vec!["ipcrm".to_string()];
    if let Some(id) = shmid {
        parts.push(format!("-m {id}"));
    }
    if let Some(id) = semid {
        parts.push(format!("-s {id}"));
    }
    (parts.len() > 1).then(|| parts.join(" "))
}

/// Reads and validates the header of an attached segment of ours, returning its
/// geometry. Every field is read once and checked before use.
pub fn validate_header(seg: &Segment) -> Result<Geometry> {
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
            remove_hint: ipcrm_hint(Some(seg.id()), None),
        }
    };
    if seg.len() < layout::HEADER_SIZE {
        return Err(foreign(format!(
            "the segment there (shmid {}) is {} bytes, smaller than our header: it is not ours",
            seg.id(),
            seg.len()
        )));
    }
    let magic = seg.read_u64(off::MAGIC)?;
    if magic != layout::MAGIC {
        return Err(foreign(format!(
            "the segment there (shmid {}) does not start with our magic: it is not ours",
            seg.id()
        )));
    }
    let version = seg.read_u32(off::VERSION)?;
    if version != layout::VERSION {
        return Err(foreign(format!("the segment there (shmid {}) has layout version {version}; this build speaks version {}", seg.id(), layout::VERSION)));
    }
    let header = seg.read_u32(off::HEADER_SIZE)? as usize;
    let slots = seg.read_u32(off::SLOT_COUNT)?;
    let slot_size = seg.read_u32(off::SLOT_SIZE)?;
    let corrupt = |detail: String| Error::Corrupt { key, detail };
    if header != layout::HEADER_SIZE {
        return Err(corrupt(format!(
            "header size field is {header}, expected {}",
            layout::HEADER_SIZE
        )));
    }
    let geo = Geometry::new(slots, slot_size)
        .map_err(|e| corrupt(format!("bad geometry in header: {e}")))?;
    if geo.segment_size() > seg.len() as u64 {
        return Err(corrupt(format!(
            "the header claims {} bytes ({slots} slots of {slot_size}) but the segment has {}",
            geo.segment_size(),
            seg.len()
        )));
    }
    Ok(geo)
}

impl Session {
    /// Finds, creates or waits for the session at `opts.key` and joins it.
    /// `note` receives one-line messages for the user (waiting, recovery).
    pub fn open(opts: &OpenOptions, note: &dyn Fn(String)) -> Result<Session> {
        let key = opts.key;
        let mut said_waiting = false;
        let mut init_since: Option<Instant> = None;
        loop {
            if cancel::requested() {
                return Err(Error::Interrupted {
                    detail: "before joining; nothing was created".into(),
                });
            }
            if opts.role == Role::Writer {
                if let Some(s) = Session::create(opts)? {
                    return Ok(s);
                }
            }
            match Session::inspect(key)? {
                Found::Ours(seg, sems) => {
                    let geo = validate_header(&seg)?;
                    let mut s = Session {
                        key,
                        seg,
                        sems,
                        geo,
                        role: opts.role,
                        id: 0,
                        shared: false,
                        created: false,
                        joined: false,
                        ended: Default::default(),
                        pid: std::process::id() as i32,
                    };
                    match s.join(opts, note)? {
                        true => return Ok(s),
                        // Removed or ended between our look and our join: look again.
                        false => continue,
                    }
                }
                Found::Nothing => {
                    // Only a reader gets here (a writer would have created).
                    if !said_waiting {
                        note(format!(
                            "waiting for a writer on key {key} (start `writer --key {key}`)"
                        ));
                        said_waiting = true;
                    }
                    std::thread::sleep(cancel::POLL);
                }
                Found::Initialising => {
                    let since = *init_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > INIT_GRACE {
                        // Inspect again next round: it reports Stale once the grace is over.
                        init_since = None;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Found::Stale { shmid, semid, why } => {
                    if opts.role == Role::Reader && shmid.is_none() {
                        // A reader never removes what it cannot read; wait for a writer
                        // to recover it.
                        std::thread::sleep(cancel::POLL);
                        continue;
                    }
                    note(format!(
                        "recovering stale objects at key {key} ({why}): removing {}",
                        ipcrm_hint(shmid, semid).unwrap_or_default()
                    ));
                    if let Some(id) = semid {
                        semaphore::remove_id(key, id)?;
                    }
                    if let Some(id) = shmid {
                        segment::remove_id(key, id)?;
                    }
                }
            }
        }
    }

    /// Tries to create a fresh session (writer only). `Ok(None)`: something exists.
    fn create(opts: &OpenOptions) -> Result<Option<Session>> {
        let key = opts.key;
        // Step 1: the semaphore set, with IPC_EXCL, so exactly one creator wins.
        let Some(sems) = SemaphoreSet::create_exclusive(key, sem::NAMES, opts.mode)? else {
            return Ok(None);
        };
        // Step 2: the segment. From here on, any failure removes what we created.
        let size = opts.geometry.segment_size() as usize;
        let seg = match Segment::create_exclusive(key, size, opts.mode) {
            Ok(Some(seg)) => seg,
            Ok(None) => {
                // A segment without a set: foreign, or the leftover of a crash. Give
                // back our set and let `inspect` classify what is there.
                sems.remove()?;
                return Ok(None);
            }
            Err(e) => {
                let _ = sems.remove();
                return Err(e);
            }
        };
        let pid = std::process::id() as i32;
        let mut s = Session {
            key,
            seg,
            sems,
            geo: opts.geometry,
            role: Role::Writer,
            id: 1,
            shared: opts.shared,
            created: true,
            joined: false,
            ended: Default::default(),
            pid,
        };
        if let Err(e) = s.initialise(opts) {
            let _ = s.remove_objects();
            return Err(e);
        }
        Ok(Some(s))
    }

    /// Step 3 of creation: header, initial values, then the first semop that opens
    /// the session to others (and sets `sem_otime`).
    fn initialise(&mut self, opts: &OpenOptions) -> Result<()> {
        let g = self.geo;
        let seg = &self.seg;
        // shmget zero-fills a new segment, so only non-zero fields need writing. The
        // set's sem_otime is still 0, so no other process reads any of this yet.
        seg.atomic_u32(off::VERSION)?
            .store(layout::VERSION, Ordering::Relaxed);
        seg.atomic_u32(off::HEADER_SIZE)?
            .store(layout::HEADER_SIZE as u32, Ordering::Relaxed);
        seg.atomic_u32(off::SLOT_COUNT)?
            .store(g.slots, Ordering::Relaxed);
        seg.atomic_u32(off::SLOT_SIZE)?
            .store(g.slot_size, Ordering::Relaxed);
        seg.atomic_u64(off::SEGMENT_SIZE)?
            .store(g.segment_size(), Ordering::Relaxed);
        let mut flags = 0;
        if opts.persist {
            flags |= layout::FLAG_PERSIST;
        }
        if opts.shared {
            flags |= FLAG_SHARED;
        }
        seg.atomic_u32(off::FLAGS)?.store(flags, Ordering::Relaxed);
        seg.atomic_i32(off::CREATOR_PID)?
            .store(self.pid, Ordering::Relaxed);
        seg.atomic_u32(off::NEXT_WRITER_ID)?
            .store(2, Ordering::Relaxed);
        seg.atomic_u32(off::WRITERS_JOINED)?
            .store(1, Ordering::Relaxed);
        self.set_peer(layout::ROLE_WRITER, 1)?;
        seg.atomic_u32(off::STATE)?
            .store(State::Open as u32, Ordering::Relaxed);
        seg.atomic_u64(off::MAGIC)?
            .store(layout::MAGIC, Ordering::Release);

        // Initial values: every slot free, nothing filled, both mutexes *closed* (0)
        // until the semop below opens them, both indices at slot 0, nobody counted.
        let mut v = [0u16; sem::COUNT];
        v[usize::from(sem::FREE)] = g.slots as u16;
        self.sems.set_values(&v)?;
        // The first semop: open both mutexes and count ourselves as a live writer
        // (SEM_UNDO: if we die, the kernel takes our count back). This is what sets
        // sem_otime, the signal for everyone else that the set is ready.
        self.sems.apply(
            &[
                SemOp::new(sem::WRITE_MUTEX, 1),
                SemOp::new(sem::READ_MUTEX, 1),
                SemOp::undo(sem::WRITERS, 1),
            ],
            None,
            false,
            "open the mutexes and count ourselves as a writer: sets sem_otime, the 'ready' signal",
            false,
        )?;
        self.joined = true;
        Ok(())
    }

    /// Looks at what is at `key` without changing anything.
    fn inspect(key: IpcKey) -> Result<Found> {
        // Look up the segment first, then the set: a creator makes them in the other
        // order, so a segment we find always had its set made before it. (The other
        // way round, a creator working between our two lookups would show us a
        // segment without a set, which we would take for a leftover and remove:
        // found by the chaos schedule.)
        let shmid = segment::find(key)?;
        let semid = semaphore::find(key)?;
        if semid.is_none() && shmid.is_none() {
            return Ok(Found::Nothing);
        }
        // The set: member count and owner decide whether it can be ours.
        let set_stat = match semid {
            Some(id) => match semaphore::stat(key, id) {
                Ok(st) => Some((id, st)),
                Err(Error::PeerGone { .. }) => return Ok(Found::Initialising),
                Err(e) => return Err(e),
            },
            None => None,
        };
        if let Some((id, st)) = set_stat {
            if st.nsems != sem::COUNT as u64 || foreign_owner(st.uid, st.mode) {
                return Err(Error::Conflict {
                    key,
                    detail: format!(
                        "a semaphore set that is not ours is there (semid {id}, owner uid {}, {} members, mode {:o})",
                        st.uid, st.nsems, st.mode
                    ),
                    remove_hint: ipcrm_hint(None, Some(id)),
                });
            }
        }
        let Some(shmid) = shmid else {
            // A set without a segment: a creator between its two steps, or a crash.
            let (id, st) = set_stat.ok_or_else(|| Error::Corrupt {
                key,
                detail: "set vanished".into(),
            })?;
            return Ok(if st.otime == 0 && age(st.ctime) < INIT_GRACE {
                Found::Initialising
            } else {
                Found::Stale {
                    shmid: None,
                    semid: Some(id),
                    why: "a semaphore set without its segment".into(),
                }
            });
        };
        let seg_stat = match segment::stat(key, shmid) {
            Ok(st) => st,
            Err(Error::PeerGone { .. }) => return Ok(Found::Initialising),
            Err(e) => return Err(e),
        };
        if foreign_owner(seg_stat.uid, seg_stat.mode) {
            return Err(Error::Conflict {
                key,
                detail: format!(
                    "the segment there (shmid {shmid}) belongs to uid {} with mode {:o}: it is not ours",
                    seg_stat.uid, seg_stat.mode
                ),
                remove_hint: ipcrm_hint(Some(shmid), semid),
            });
        }
        let seg = match Segment::attach(key, shmid) {
            Ok(s) => s,
            Err(Error::Sys { source, .. })
                if matches!(source.raw_os_error(), Some(libc::EINVAL | libc::EIDRM)) =>
            {
                return Ok(Found::Initialising)
            }
            Err(e) => return Err(e),
        };
        // A new segment is all zeros, and its creator writes the magic last (after
        // the other fields), so magic 0 means "header not complete yet", whatever the
        // other fields already say.
        let magic = seg.read_u64(off::MAGIC)?;
        if magic == 0 {
            // Our creator makes the set before the segment, so a blank segment with
            // no set beside it was never ours (e.g. what `ipcmk -M` leaves).
            if semid.is_none() {
                return Err(Error::Conflict {
                    key,
                    detail: format!(
                        "a segment that is not ours is there (shmid {shmid}, owner uid {}, {} bytes, no header)",
                        seg_stat.uid, seg_stat.size
                    ),
                    remove_hint: ipcrm_hint(Some(shmid), None),
                });
            }
            let young = age(seg_stat.change_time) < INIT_GRACE;
            return Ok(if young {
                Found::Initialising
            } else {
                Found::Stale {
                    shmid: Some(shmid),
                    semid,
                    why: "a segment whose creator died before writing the header".into(),
                }
            });
        }
        validate_header(&seg)?;
        let Some((semid, st)) = set_stat else {
            // Its set is gone: the session is being removed (the set goes first), and
            // the processes still attached are on their way out; or a remover died
            // between the two removals, and then nobody is attached.
            if seg_stat.attached > 0 {
                return Ok(Found::Initialising);
            }
            return Ok(Found::Stale {
                shmid: Some(shmid),
                semid: None,
                why: "a segment without its semaphore set, and nobody attached".into(),
            });
        };
        if st.otime == 0 {
            return Ok(if age(st.ctime) < INIT_GRACE {
                Found::Initialising
            } else {
                Found::Stale {
                    shmid: Some(shmid),
                    semid: Some(semid),
                    why: "the creator died before initialising the set".into(),
                }
            });
        }
        let sems = SemaphoreSet::open(key, semid, sem::NAMES)?;
        Ok(Found::Ours(seg, sems))
    }

    /// Joins an initialised session. `Ok(false)`: it went away (or was stale and we
    /// removed it) meanwhile; look again.
    fn join(&mut self, opts: &OpenOptions, note: &dyn Fn(String)) -> Result<bool> {
        if !self.lock_both("join: take both mutexes to update the peer table")? {
            return Ok(false);
        }
        let ids = ipcrm_hint(Some(self.seg.id()), Some(self.sems.id())).unwrap_or_default();
        match self.join_locked(opts) {
            Ok(JoinStep::Joined) => Ok(true),
            Ok(JoinStep::Removed) => {
                note(format!("recovered stale objects at key {} (every process that used them is gone): removed them ({ids})", self.key));
                Ok(false)
            }
            Err(e) => {
                let _ = self.unlock_both(&[]);
                Err(e)
            }
        }
    }

    /// The body of `join`, with both mutexes held. On error the mutexes are still
    /// held; otherwise they have been released (or the objects removed).
    fn join_locked(&mut self, opts: &OpenOptions) -> Result<JoinStep> {
        let key = self.key;
        let snap = self.snapshot()?;
        let flags = self.seg.atomic_u32(off::FLAGS)?.load(Ordering::Relaxed);
        self.shared = flags & FLAG_SHARED != 0;
        let nobody_alive = snap.live_writers() + snap.live_readers() == 0;
        let persisted = snap.state == Some(State::Ended) && snap.readers_joined == 0;
        if opts.role == Role::Writer {
            if nobody_alive && !persisted {
                // Every peer died and no complete stream waits for a reader: the
                // objects are stale. Removing the set wakes nobody (nobody is there).
                self.remove_objects()?;
                return Ok(JoinStep::Removed);
            }
            if snap.state == Some(State::Ended) {
                return Err(Error::Conflict {
                    key,
                    detail: if persisted {
                        "a finished stream is waiting there for its reader (run `reader`)".into()
                    } else {
                        "the stream there has ended and its readers are draining it".into()
                    },
                    remove_hint: ipcrm_hint(Some(self.seg.id()), Some(self.sems.id()))
                        .filter(|_| persisted),
                });
            }
            if !self.shared || !opts.shared {
                return Err(self.exclusive_conflict(opts.role));
            }
        } else if !self.shared && snap.readers_joined > 0 {
            if nobody_alive {
                // A byte stream whose reader and writer are both gone: nobody can
                // complete it (it was already partly read), so it is stale.
                self.remove_objects()?;
                return Ok(JoinStep::Removed);
            }
            return Err(self.exclusive_conflict(opts.role));
        }
        let (role_code, id, joined_field) = match opts.role {
            Role::Writer => {
                let next = self.seg.atomic_u32(off::NEXT_WRITER_ID)?;
                let id = next.load(Ordering::Relaxed);
                next.store(id.wrapping_add(1), Ordering::Relaxed);
                (layout::ROLE_WRITER, id, off::WRITERS_JOINED)
            }
            Role::Reader => (
                layout::ROLE_READER,
                snap.readers_joined + 1,
                off::READERS_JOINED,
            ),
        };
        self.id = id;
        self.set_peer(role_code, id)?;
        self.seg
            .atomic_u32(joined_field)?
            .fetch_add(1, Ordering::Relaxed);
        // Count ourselves (SEM_UNDO: the kernel un-counts us if we die) and release
        // both mutexes, in one atomic step.
        self.unlock_both(&[SemOp::undo(opts.role.count_member(), 1)])?;
        self.joined = true;
        Ok(JoinStep::Joined)
    }

    fn exclusive_conflict(&self, role: Role) -> Error {
        let pids = self.peer_pids(match role {
            Role::Writer => layout::ROLE_WRITER,
            Role::Reader => layout::ROLE_READER,
        });
        let who = if pids.is_empty() {
            String::new()
        } else {
            format!(
                " (pid {})",
                pids.iter()
                    .map(i32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let role = role.name();
        Error::Conflict {
            key: self.key,
            detail: format!(
                "a {role}{who} already uses this byte-stream session, which allows one writer and one reader; \
                 start every writer with --lines to share a session"
            ),
            remove_hint: None,
        }
    }
}

fn age(epoch_secs: i64) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Duration::from_secs(now.saturating_sub(epoch_secs).max(0) as u64)
}

/// How `leave` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// Others remain (or a finished stream waits for its reader): objects kept.
    Left,
    /// We were the last: both objects removed.
    Removed,
    /// The objects were already gone.
    AlreadyGone,
}

impl Session {
    /// The key.
    pub fn key(&self) -> IpcKey {
        self.key
    }
    /// The ring geometry.
    pub fn geometry(&self) -> Geometry {
        self.geo
    }
    /// The attached segment.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }
    /// The semaphore set.
    pub fn semaphores(&self) -> &SemaphoreSet {
        &self.sems
    }
    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// Our writer id (writers) or join number (readers).
    pub fn id(&self) -> u32 {
        self.id
    }
    /// Whether we created the objects.
    pub fn created(&self) -> bool {
        self.created
    }
    /// Whether the session is shared (message mode, many peers).
    pub fn shared(&self) -> bool {
        self.shared
    }
    /// Whether the writer may finish before any reader came.
    pub fn persist(&self) -> Result<bool> {
        Ok(self.seg.atomic_u32(off::FLAGS)?.load(Ordering::Relaxed) & layout::FLAG_PERSIST != 0)
    }

    /// Records that our END/FINAL frame was published (with `{ENDED, +1, SEM_UNDO}`).
    pub(crate) fn mark_ended(&self) {
        self.ended.store(true, Ordering::Relaxed);
    }

    /// A header `u32` counter.
    pub(crate) fn counter32(&self, offset: usize) -> Result<&AtomicU32> {
        self.seg.atomic_u32(offset)
    }
    /// A header `u64` counter.
    pub(crate) fn counter64(&self, offset: usize) -> Result<&AtomicU64> {
        self.seg.atomic_u64(offset)
    }
    /// A header pid field.
    pub(crate) fn pid_field(&self, offset: usize) -> Result<&AtomicI32> {
        self.seg.atomic_i32(offset)
    }
    /// Our pid.
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Semaphore values and header counters, read without locking: each value is
    /// exact, the combination only approximately simultaneous.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let v = self.sems.values()?;
        let mut sems_arr = [0u16; sem::COUNT];
        for (d, s) in sems_arr.iter_mut().zip(&v) {
            *d = *s;
        }
        let r = |o| self.seg.atomic_u32(o).map(|a| a.load(Ordering::Acquire));
        Ok(Snapshot {
            sems: sems_arr,
            state: State::from_raw(r(off::STATE)?),
            writers_joined: r(off::WRITERS_JOINED)?,
            readers_joined: r(off::READERS_JOINED)?,
            writers_finished: r(off::WRITERS_FINISHED)?,
            readers_finished: r(off::READERS_FINISHED)?,
            writers_ended: r(off::WRITERS_ENDED)?,
        })
    }

    /// Takes both mutexes in one atomic `semop` (so two processes can never each hold
    /// one and wait for the other). Waits at most `patience`; `Ok(false)` if the
    /// objects disappeared meanwhile. Joining gives up on Ctrl-C; leaving does not.
    fn lock_both_for(
        &self,
        why: &str,
        patience: Option<Duration>,
        cancellable: bool,
    ) -> Result<bool> {
        let start = Instant::now();
        loop {
            let ops = [
                SemOp::undo(sem::WRITE_MUTEX, -1),
                SemOp::undo(sem::READ_MUTEX, -1),
            ];
            match self.sems.apply(&ops, Some(cancel::POLL), false, why, false) {
                Ok(Wait::Done) => {
                    self.seg
                        .atomic_i32(off::WRITE_MUTEX_HOLDER)?
                        .store(self.pid, Ordering::Relaxed);
                    self.seg
                        .atomic_i32(off::READ_MUTEX_HOLDER)?
                        .store(self.pid, Ordering::Relaxed);
                    return Ok(true);
                }
                Ok(Wait::NotYet) => {}
                Err(Error::PeerGone { .. }) => return Ok(false),
                Err(e) => return Err(e),
            }
            if cancellable && cancel::requested() {
                return Err(Error::Interrupted {
                    detail: "while joining; nothing of ours was left".into(),
                });
            }
            if patience.is_some_and(|p| start.elapsed() > p) {
                return Err(Error::PeerGone {
                    key: self.key,
                    detail:
                        "a peer has held the session's mutexes for too long (stopped with SIGSTOP?)"
                            .into(),
                });
            }
        }
    }

    /// A snapshot taken with both mutexes held, so that no join or leave is half done
    /// and the semaphore counts agree with the header's counters. Use it before
    /// declaring a peer dead: an unlocked snapshot can catch a joining peer after its
    /// `joined` counter went up but before its live count did. `Ok(None)`: the
    /// mutexes could not be had within a second (a stopped peer holds one), so
    /// nothing can be concluded yet.
    pub fn locked_snapshot(&self) -> Result<Option<Snapshot>> {
        match self.lock_both_for(
            "take both mutexes to read the counts consistently",
            Some(Duration::from_secs(1)),
            false,
        ) {
            Ok(true) => {}
            Ok(false) => {
                return Err(Error::PeerGone {
                    key: self.key,
                    detail: "the objects were removed while we waited".into(),
                })
            }
            Err(Error::PeerGone { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        let snap = self.snapshot();
        self.unlock_both(&[])?;
        snap.map(Some)
    }

    fn lock_both(&self, why: &str) -> Result<bool> {
        self.lock_both_for(why, None, true)
    }

    /// Releases both mutexes together with `extra` operations, atomically.
    fn unlock_both(&self, extra: &[SemOp]) -> Result<()> {
        self.seg
            .atomic_i32(off::WRITE_MUTEX_HOLDER)?
            .store(0, Ordering::Relaxed);
        self.seg
            .atomic_i32(off::READ_MUTEX_HOLDER)?
            .store(0, Ordering::Relaxed);
        let mut ops = extra.to_vec();
        ops.push(SemOp::undo(sem::WRITE_MUTEX, 1));
        ops.push(SemOp::undo(sem::READ_MUTEX, 1));
        self.sems
            .apply(&ops, None, false, "release both mutexes", false)
            .map(drop)
    }

    /// Writes our entry into the peer table, reusing an empty entry or one whose
    /// process no longer exists. Call with both mutexes held (or as the creator).
    fn set_peer(&self, role: u32, id: u32) -> Result<()> {
        for i in 0..layout::MAX_PEERS {
            let base = off::PEERS + i * layout::PEER_ENTRY_SIZE;
            let pid = self.seg.atomic_i32(base)?;
            let p = pid.load(Ordering::Relaxed);
            if p == 0 || !process_alive(p) {
                pid.store(self.pid, Ordering::Relaxed);
                self.seg
                    .atomic_u32(base + 4)?
                    .store(role, Ordering::Relaxed);
                self.seg.atomic_u32(base + 8)?.store(id, Ordering::Relaxed);
                return Ok(());
            }
        }
        Err(Error::Conflict {
            key: self.key,
            detail: format!(
                "the session already has {} live peers, the most it can list",
                layout::MAX_PEERS
            ),
            remove_hint: None,
        })
    }

    fn clear_peer(&self) -> Result<()> {
        for i in 0..layout::MAX_PEERS {
            let base = off::PEERS + i * layout::PEER_ENTRY_SIZE;
            let pid = self.seg.atomic_i32(base)?;
            if pid.load(Ordering::Relaxed) == self.pid {
                pid.store(0, Ordering::Relaxed);
                self.seg.atomic_u32(base + 4)?.store(0, Ordering::Relaxed);
                self.seg.atomic_u32(base + 8)?.store(0, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Pids of live peers with `role` according to the peer table (the table is
    /// informational: the WRITERS/READERS semaphores are the authority on liveness).
    pub fn peer_pids(&self, role: u32) -> Vec<i32> {
        (0..layout::MAX_PEERS)
            .filter_map(|i| {
                let base = off::PEERS + i * layout::PEER_ENTRY_SIZE;
                let pid = self.seg.atomic_i32(base).ok()?.load(Ordering::Relaxed);
                let r = self.seg.atomic_u32(base + 4).ok()?.load(Ordering::Relaxed);
                (pid > 0 && pid != self.pid && r == role && process_alive(pid)).then_some(pid)
            })
            .collect()
    }

    /// Live peers with `role` that are stopped (SIGSTOP, a debugger): alive, so not
    /// dead, but not going to make progress until continued.
    pub fn stopped_peers(&self, role: u32) -> Vec<i32> {
        self.peer_pids(role)
            .into_iter()
            .filter(|&p| process_stopped(p))
            .collect()
    }

    /// Leaves the session: un-counts us and, if we are the last one, removes both
    /// objects, unless a writer leaves a finished stream for a reader still to come.
    /// `finished`: we completed our part (a writer sent END, a reader saw FINAL).
    pub fn leave(&mut self, finished: bool) -> Result<Departure> {
        if !self.joined {
            return Ok(Departure::AlreadyGone);
        }
        // Bounded: if a stopped peer holds a mutex, we exit anyway and the kernel's
        // SEM_UNDO un-counts us; the objects then stay for the last one to remove.
        match self.lock_both_for(
            "leave: take both mutexes to decide who removes",
            Some(Duration::from_secs(5)),
            false,
        ) {
            Ok(true) => {}
            Ok(false) => {
                self.joined = false;
                return Ok(Departure::AlreadyGone);
            }
            Err(e) => return Err(e),
        }
        let result = (|| {
            let snap = self.snapshot()?;
            self.clear_peer()?;
            if finished {
                let field = match self.role {
                    Role::Writer => off::WRITERS_FINISHED,
                    Role::Reader => off::READERS_FINISHED,
                };
                self.seg.atomic_u32(field)?.fetch_add(1, Ordering::Relaxed);
            }
            let others = (snap.live_writers() + snap.live_readers()).saturating_sub(1);
            let persisted = self.role == Role::Writer
                && finished
                && snap.state == Some(State::Ended)
                && snap.readers_joined == 0;
            if others == 0 && !persisted {
                // The explicit, named removal: nobody else is attached to the session
                // and nothing in it is waiting for anyone.
                self.remove_objects()?;
                return Ok(Departure::Removed);
            }
            let mut ops = vec![SemOp::undo(self.role.count_member(), -1)];
            if self.ended.load(Ordering::Relaxed) {
                ops.push(SemOp::undo(sem::ENDED, -1));
            }
            self.unlock_both(&ops)?;
            self.joined = false;
            Ok(Departure::Left)
        })();
        if result.is_err() && self.joined {
            let _ = self.unlock_both(&[]);
        }
        result
    }

    /// Removes the semaphore set (waking anyone still waiting, with EIDRM) and then
    /// the segment (destroyed when the last process detaches). This is the only place
    /// the session removes its objects.
    pub fn remove_objects(&mut self) -> Result<()> {
        semaphore::remove_id(self.key, self.sems.id())?;
        segment::remove_id(self.key, self.seg.id())?;
        self.joined = false;
        Ok(())
    }
}

/// `kill(pid, 0)`: does the process exist? (EPERM means it exists but is not ours.)
pub fn process_alive(pid: i32) -> bool {
    use nix::errno::Errno;
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(Errno::EPERM) => true,
        Err(_) => false,
    }
}

/// Whether the process is stopped (state `T` or `t` in /proc/PID/stat).
pub fn process_stopped(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may contain spaces.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        .is_some_and(|c| c == 'T' || c == 't')
}

/// What [`remove_session`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleanup {
    /// Nothing was at the key.
    Nothing,
    /// Our objects were removed; the text says which.
    Removed(String),
}

/// `make clean` / `writer --remove`: removes the session at `key` if it is ours (our
/// magic and version, our member count, our user) and no live process uses it.
/// Refuses, changing nothing, for a foreign object or a live session.
pub fn remove_session(key: IpcKey) -> Result<Cleanup> {
    match Session::inspect(key)? {
        Found::Nothing => Ok(Cleanup::Nothing),
        Found::Initialising => Err(Error::Conflict {
            key,
            detail: "a writer is creating a session there right now".into(),
            remove_hint: None,
        }),
        Found::Stale { shmid, semid, why } => {
            if let Some(id) = semid {
                semaphore::remove_id(key, id)?;
            }
            if let Some(id) = shmid {
                segment::remove_id(key, id)?;
            }
            Ok(Cleanup::Removed(format!(
                "{} ({why})",
                ipcrm_hint(shmid, semid).unwrap_or_default()
            )))
        }
        Found::Ours(seg, sems) => {
            let v = sems.values()?;
            let live = v[usize::from(sem::WRITERS)] + v[usize::from(sem::READERS)];
            if live > 0 {
                return Err(Error::Conflict {
                    key,
                    detail: format!(
                        "the session there is in use by {live} live process(es); stop them first"
                    ),
                    remove_hint: None,
                });
            }
            let what = ipcrm_hint(Some(seg.id()), Some(sems.id())).unwrap_or_default();
            sems.remove()?;
            seg.remove()?;
            Ok(Cleanup::Removed(what))
        }
    }
}
