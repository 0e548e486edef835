//! [`Session`]: one process's membership in the session at a key: finding or
//! creating the segment and the semaphore set there, joining as a writer or a
//! reader, leaving, and the explicit decision to remove them.
//!
//! - `create.rs`: the creation race and its classic fix (below);
//! - `discover.rs`: what is at a key: ours, foreign, half-made, stale;
//! - `membership.rs`: joining and leaving with both mutexes held, and who removes;
//! - `peers.rs`: the peer table, the counters' snapshots, and who is alive.
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

mod create;
mod discover;
mod membership;
mod peers;

pub use membership::{remove_session, Cleanup};
pub use peers::{process_alive, process_stopped, Snapshot};

use crate::cancel;
use crate::error::{Error, Result};
use crate::header::Header;
use crate::key::IpcKey;
use crate::layout::{self, sem, Geometry};
use crate::segment::{self, Segment, SessionMemory};
use crate::semaphore::{self, SemaphoreSet};
use crate::trace;
use discover::Found;
use std::cell::Cell;
use std::time::{Duration, Instant};

/// How long a set may stay uninitialised (`sem_otime == 0`) before it counts as the
/// leftover of a creator that died half way. A live creator needs microseconds.
pub const INIT_GRACE: Duration = Duration::from_secs(2);

/// Which side of the stream a process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Publishes frames.
    Writer,
    /// Consumes frames.
    Reader,
}

impl Role {
    fn count_member(self) -> u16 {
        match self {
            Role::Writer => sem::WRITERS,
            Role::Reader => sem::READERS,
        }
    }
    fn code(self) -> u32 {
        match self {
            Role::Writer => layout::ROLE_WRITER,
            Role::Reader => layout::ROLE_READER,
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

impl OpenOptions {
    /// A byte-stream writer with the default geometry and mode 0600.
    pub fn writer(key: IpcKey) -> OpenOptions {
        OpenOptions {
            key,
            role: Role::Writer,
            geometry: Geometry {
                slots: layout::DEFAULT_SLOTS,
                slot_size: layout::DEFAULT_SLOT_SIZE,
            },
            mode: 0o600,
            persist: false,
            shared: false,
        }
    }

    /// A reader (it takes the geometry from the header).
    pub fn reader(key: IpcKey) -> OpenOptions {
        OpenOptions {
            role: Role::Reader,
            ..OpenOptions::writer(key)
        }
    }
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
    /// We were the last, but another user (this uid) owns the objects, and only the
    /// owner may remove them: they stay for the owner's next writer to recover.
    LeftToOwner(u32),
}

/// One process's membership in the session at a key. Dropping it without
/// [`Session::leave`] detaches; the kernel's `SEM_UNDO` then un-counts us.
#[derive(Debug)]
pub struct Session {
    key: IpcKey,
    mem: SessionMemory,
    sems: SemaphoreSet,
    role: Role,
    id: u32,
    shared: bool,
    created: bool,
    joined: bool,
    /// Set once our END/FINAL is published with `{ENDED, +1, SEM_UNDO}`, so that
    /// leaving lowers ENDED again.
    ended: Cell<bool>,
    /// A writer's own memory that a reader has come (the header's reader counts can
    /// be scribbled on; what we saw cannot): once set, leaving never keeps the
    /// objects for a reader that has already taken the stream.
    reader_came: Cell<bool>,
    pid: i32,
}

impl Session {
    /// Finds, creates or waits for the session at `opts.key` and joins it.
    /// `note` receives one-line messages for the user (waiting, recovery).
    ///
    /// A writer creates the segment and the set if nothing is at the key (and
    /// recovers stale leftovers of ours); a reader waits for a writer. Anything at
    /// the key that is not ours is refused ([`Error::Conflict`]), never touched.
    ///
    /// ```
    /// use shm_common::{IpcKey, OpenOptions, Session};
    /// # let key = IpcKey::new(0x7e60_0000 | (std::process::id() & 0xf_ffff) as i32)?;
    /// let mut s = Session::open(&OpenOptions::writer(key), &|note| eprintln!("{note}"))?;
    /// assert!(s.created());
    /// assert_eq!(s.id(), 1, "the creator is writer 1");
    /// s.leave(false)?; // the only member: this removes both objects
    /// # Ok::<(), shm_common::Error>(())
    /// ```
    pub fn open(opts: &OpenOptions, note: &dyn Fn(String)) -> Result<Session> {
        let key = opts.key;
        let mut said_waiting = false;
        let mut said_busy = false;
        let mut init_since: Option<Instant> = None;
        // Why the last round made us look again (for `--explain`, which shows the
        // first round of a wait and counts its repeats): the next round's lookups
        // are tries of that wait, and so is the rest of the round if the lookups
        // found the same ids as last time.
        let mut retry: Option<&'static str> = None;
        let mut last_ids = None;
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
            let until = retry.unwrap_or("");
            let ids = trace::retrying(retry.is_some(), until, || discover::lookup(key))?;
            let same = retry.is_some() && last_ids == Some(ids);
            last_ids = Some(ids);
            let found =
                trace::retrying(same, until, || discover::discover_from(key, ids.0, ids.1))?;
            retry = match &found {
                Found::Ours(..) => None,
                Found::Nothing => Some("a writer created them"),
                Found::Initialising(_) => Some("the session at our key was ready"),
                // A reader waits for a writer to recover what it cannot read; a
                // writer recovers it now, and its next round is no repeat.
                Found::Stale { shmid: None, .. } if opts.role == Role::Reader => {
                    Some("a writer recovered the stale objects")
                }
                Found::Stale { .. } => None,
            };
            match found {
                Found::Ours(mem, sems) => {
                    let mut s = Session::member(key, mem, sems, opts.role);
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
                Found::Initialising(what) => {
                    let since = *init_since.get_or_insert_with(Instant::now);
                    // Creators and removers take microseconds; a state that lasts
                    // longer than the grace is worth saying once (it may be a
                    // stopped process, or a leftover only its owner can clear).
                    if since.elapsed() > INIT_GRACE && !said_busy {
                        note(format!("waiting at key {key}: {what}"));
                        said_busy = true;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Found::Stale { shmid, semid, why } => {
                    if opts.role == Role::Reader && shmid.is_none() {
                        // A reader never removes what it cannot read; wait for a writer
                        // to recover it, and say so once.
                        if !said_busy {
                            note(format!(
                                "waiting at key {key}: {why}; the next writer recovers it"
                            ));
                            said_busy = true;
                        }
                        std::thread::sleep(cancel::POLL);
                        continue;
                    }
                    note(format!(
                        "recovering stale objects at key {key} ({why}): removing {}",
                        discover::ipcrm_hint(shmid, semid).unwrap_or_default()
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

    /// A session value for objects that exist; `join` makes it a member.
    fn member(key: IpcKey, mem: SessionMemory, sems: SemaphoreSet, role: Role) -> Session {
        Session {
            key,
            mem,
            sems,
            role,
            id: 0,
            shared: false,
            created: false,
            joined: false,
            ended: Cell::new(false),
            reader_came: Cell::new(false),
            pid: std::process::id() as i32,
        }
    }

    /// The key.
    pub fn key(&self) -> IpcKey {
        self.key
    }
    /// The ring geometry.
    pub fn geometry(&self) -> Geometry {
        self.mem.geometry()
    }
    /// The attached segment.
    pub fn segment(&self) -> &Segment {
        self.mem.segment()
    }
    /// The segment's header.
    pub fn header(&self) -> &Header {
        self.mem.header()
    }
    /// The header and the slots.
    pub(crate) fn memory(&self) -> &SessionMemory {
        &self.mem
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
    /// Whether the writer may finish before any reader came (the PERSIST flag).
    pub fn persist(&self) -> bool {
        self.header().flags() & layout::FLAG_PERSIST != 0
    }
    /// Records that our END/FINAL frame was published (with `{ENDED, +1, SEM_UNDO}`).
    pub(crate) fn mark_ended(&self) {
        self.ended.set(true);
    }

    /// Records that a reader has come to this session (seen by the writer while it
    /// waited at the end of its stream).
    pub(crate) fn mark_reader_came(&self) {
        self.reader_came.set(true);
    }
    /// Our pid.
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }
}
