//! [`SemaphoreSet`]: one System V semaphore set, with named members.
//!
//! A System V semaphore is a kernel-held counter that `semop` can add to or subtract
//! from; a subtraction that would make it negative puts the caller to sleep until it
//! can proceed. Several operations in one `semop` call happen *atomically*: all or
//! none. The protocol (`ring/`, `session/`) relies on that to take a mutex and a
//! count together, and to publish a frame and release the mutex in one step.

use crate::error::{Error, ObjectKind, Result};
use crate::key::IpcKey;
use crate::sys::sem;
use crate::trace::{self, Kind};
use std::time::Duration;

pub use crate::sys::sem::Query;

/// One operation of a `semop` call: add `delta` to `member`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemOp {
    /// Index of the member in the set.
    pub member: u16,
    /// Amount to add (negative: take, possibly waiting; zero: wait for zero).
    pub delta: i16,
    /// `SEM_UNDO`: the kernel records the opposite adjustment and applies it if this
    /// process exits before balancing it, so a dying process gives back what it held.
    pub undo: bool,
}

impl SemOp {
    /// An operation without `SEM_UNDO`.
    pub const fn new(member: u16, delta: i16) -> SemOp {
        SemOp {
            member,
            delta,
            undo: false,
        }
    }
    /// An operation with `SEM_UNDO`.
    pub const fn undo(member: u16, delta: i16) -> SemOp {
        SemOp {
            member,
            delta,
            undo: true,
        }
    }
}

/// How long a `semop` may sleep for the semaphores to allow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// Not at all (`IPC_NOWAIT`): apply now or report [`Applied::NotYet`].
    NoWait,
    /// Up to this long (`semtimedop`), then [`Applied::NotYet`]; also on a signal
    /// (`EINTR`), so that the caller can look for a dead peer or a Ctrl-C.
    UpTo(Duration),
    /// As long as it takes (`semop`).
    Forever,
}

/// The outcome of a `semop` that may give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// All operations were applied.
    Done,
    /// Nothing was applied: it would have had to wait (longer), or a signal came.
    NotYet,
}

/// Why a call is made, for `--explain` (see [`crate::trace`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Why<'a> {
    /// The reason, as the narration prints it.
    pub text: &'a str,
    /// Made once, once per message, or one try of a wait.
    pub kind: Kind,
    /// Set for a call that is retried while it has to wait: when it gives up
    /// (`EAGAIN`: a timeout, or `IPC_NOWAIT`; `EINTR`), it is narrated as one try
    /// of a wait ([`Kind::Waiting`]) for this ("a frame was published").
    pub retried_until: Option<&'static str>,
}

impl<'a> Why<'a> {
    /// A call made once or a few times in a session (setup, joining, leaving).
    pub const fn once(text: &'a str) -> Why<'a> {
        Why {
            text,
            kind: Kind::Once,
            retried_until: None,
        }
    }
    /// A call on the per-message path.
    pub const fn per_message(text: &'a str) -> Why<'a> {
        Why {
            text,
            kind: Kind::PerMessage,
            retried_until: None,
        }
    }
    /// One try of a wait for `until` (see [`Kind::Waiting`]).
    pub const fn waiting(text: &'a str, until: &'static str) -> Why<'a> {
        Why {
            text,
            kind: Kind::Waiting(until),
            retried_until: None,
        }
    }
    /// The same call, retried until `until` happens whenever it has to wait.
    pub const fn retried_until(self, until: &'static str) -> Why<'a> {
        Why {
            retried_until: Some(until),
            ..self
        }
    }
}

/// What `semctl(IPC_STAT)` says about a set.
#[derive(Debug, Clone, Copy)]
pub struct SetStat {
    /// Owner uid.
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
    /// Number of members.
    pub nsems: u64,
    /// Time of the last successful semop (0: never; see the initialisation race).
    pub otime: i64,
    /// Time of creation or last IPC_SET/SETALL.
    pub ctime: i64,
}

/// Looks up the id of the set at `key` (`semget(key, 0, 0)`); `Ok(None)` if none.
pub fn find(key: IpcKey) -> Result<Option<i32>> {
    crate::objects::lookup(
        key,
        &format!("semget({key}, 0, 0)"),
        "semaphore set",
        "semid",
        sem::semget(key.raw(), 0, 0),
    )
}

/// `semctl(IPC_STAT)` on a set id.
pub fn stat(key: IpcKey, semid: i32) -> Result<SetStat> {
    let result = sem::stat(semid);
    if trace::enabled() {
        let r = match &result {
            Ok(ds) => format!(
                "0 (nsems {}, uid {}, mode 0{:o}, otime {})",
                ds.sem_nsems,
                ds.sem_perm.uid,
                ds.sem_perm.mode & 0o777,
                ds.sem_otime
            ),
            Err(e) => trace::failure(&e.source),
        };
        let why =
            "read the set's record: member count, owner, and sem_otime (0 = not initialised yet)";
        trace::call(
            Kind::Once,
            &format!("semctl({semid}, 0, IPC_STAT, &buf)"),
            &r,
            why,
        );
    }
    let ds = result.map_err(|e| Error::sys(key, e))?;
    Ok(SetStat {
        uid: ds.sem_perm.uid,
        mode: u32::from(ds.sem_perm.mode) & 0o777,
        nsems: ds.sem_nsems,
        otime: ds.sem_otime,
        ctime: ds.sem_ctime,
    })
}

/// Removes the set `semid` (IPC_RMID). Immediate: sleepers wake with `EIDRM`.
/// Returns whether there was anything to remove.
pub fn remove_id(key: IpcKey, semid: i32) -> Result<bool> {
    crate::objects::removal(
        key,
        &format!("semctl({semid}, 0, IPC_RMID)"),
        "remove the semaphore set; anyone still waiting wakes with EIDRM",
        sem::remove(semid),
    )
}

/// A semaphore set found or created at a key. Holds no kernel resource of its own
/// (there is nothing to detach), so dropping it does nothing; removal is the named,
/// consuming [`SemaphoreSet::remove`].
#[derive(Debug)]
pub struct SemaphoreSet {
    key: IpcKey,
    id: i32,
    names: &'static [&'static str],
    /// The member count, from the set's creation or its IPC_STAT at open.
    nsems: usize,
}

impl SemaphoreSet {
    /// Creates a set with one member per entry of `names`, with `IPC_CREAT|IPC_EXCL`.
    /// Returns `Ok(None)` if a set already exists at `key`. The members are zero
    /// (Linux) and the set is *not yet initialised*: see `session.rs`.
    pub fn create_exclusive(
        key: IpcKey,
        names: &'static [&'static str],
        mode: u32,
    ) -> Result<Option<SemaphoreSet>> {
        let flags = libc::IPC_CREAT | libc::IPC_EXCL | (mode & 0o777) as i32;
        let nsems = names.len() as i32;
        let result = sem::semget(key.raw(), nsems, flags);
        if trace::enabled() {
            let r = match &result {
                Ok(id) => format!("semid {id}"),
                Err(e) => trace::failure(&e.source),
            };
            // EEXIST: someone else was first. A writer then looks at what is there,
            // and tries again while a creator is at work: one try of that wait.
            let (kind, why) = match &result {
                Err(e) if e.errno() == libc::EEXIST => (
                    Kind::Waiting("the session at our key was ready"),
                    "create the semaphore set; EXCL makes exactly one creator win: not us",
                ),
                _ => (
                    Kind::Once,
                    "create the semaphore set; EXCL makes exactly one creator win",
                ),
            };
            trace::call(
                kind,
                &format!("semget({key}, {nsems}, {})", trace::ipc_flags(flags)),
                &r,
                why,
            );
        }
        match result {
            Ok(id) => Ok(Some(SemaphoreSet {
                key,
                id,
                names,
                nsems: names.len(),
            })),
            Err(e) if e.errno() == libc::EEXIST => Ok(None),
            Err(e) if e.errno() == libc::EINVAL => Err(Error::Limit {
                call: "semget",
                object: ObjectKind::SemaphoreSet,
                key,
                detail: format!(
                    "{nsems} semaphores per set exceeds SEMMSL (sysctl kernel.sem, first field)"
                ),
            }),
            Err(e) => Err(Error::sys(key, e)),
        }
    }

    /// Wraps an existing set id after checking it has exactly `names.len()` members.
    pub fn open(key: IpcKey, id: i32, names: &'static [&'static str]) -> Result<SemaphoreSet> {
        let st = stat(key, id)?;
        if st.nsems != names.len() as u64 {
            return Err(Error::Conflict {
                key,
                detail: format!(
                    "the semaphore set there (semid {id}, owner uid {}) has {} members, ours has {}: it is not ours",
                    st.uid, st.nsems, names.len()
                ),
                remove_hint: Some(format!("ipcrm -s {id}")),
            });
        }
        Ok(SemaphoreSet {
            key,
            id,
            names,
            nsems: names.len(),
        })
    }

    /// The kernel's id (`semid`, as shown by `ipcs -s`).
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The key.
    pub fn key(&self) -> IpcKey {
        self.key
    }

    /// Member names, in index order.
    pub fn names(&self) -> &'static [&'static str] {
        self.names
    }

    fn describe(&self, ops: &[SemOp], patience: Patience) -> String {
        let nowait = patience == Patience::NoWait;
        let list: Vec<String> = ops
            .iter()
            .map(|o| {
                let mut flags = Vec::new();
                if o.undo {
                    flags.push("SEM_UNDO");
                }
                if nowait {
                    flags.push("IPC_NOWAIT");
                }
                let f = if flags.is_empty() {
                    "0".to_string()
                } else {
                    flags.join("|")
                };
                format!("{{{}, {:+}, {f}}}", self.member(o.member), o.delta)
            })
            .collect();
        match patience {
            Patience::UpTo(t) => format!(
                "semtimedop({}, [{}], {}ms)",
                self.id,
                list.join(", "),
                t.as_millis()
            ),
            _ => format!("semop({}, [{}])", self.id, list.join(", ")),
        }
    }

    /// The name of member `m` (`?` if it has none).
    fn name(&self, m: u16) -> &'static str {
        self.names.get(usize::from(m)).copied().unwrap_or("?")
    }

    /// Member `m` as C passes it: `4 /* HEAD */`.
    fn member(&self, m: u16) -> String {
        trace::member(m, self.names)
    }

    /// Applies `ops` atomically, waiting as `patience` allows. [`Applied::NotYet`]
    /// when it gave up (timeout, `IPC_NOWAIT`, or a signal); an error when the set was
    /// removed meanwhile ([`Error::PeerGone`]) or a value would pass SEMVMX
    /// ([`Error::Corrupt`]: something changed the counts).
    pub fn apply(&self, ops: &[SemOp], patience: Patience, why: Why<'_>) -> Result<Applied> {
        let mut bufs = [libc::sembuf {
            sem_num: 0,
            sem_op: 0,
            sem_flg: 0,
        }; 8];
        let bufs = bufs
            .get_mut(..ops.len())
            .ok_or_else(|| Error::internal("more than 8 operations in one semop"))?;
        let extra = if patience == Patience::NoWait {
            libc::IPC_NOWAIT
        } else {
            0
        };
        for (b, o) in bufs.iter_mut().zip(ops) {
            let undo = if o.undo { libc::SEM_UNDO } else { 0 };
            *b = libc::sembuf {
                sem_num: o.member,
                sem_op: o.delta,
                sem_flg: (undo | extra) as libc::c_short,
            };
        }
        let timeout = match patience {
            Patience::UpTo(t) => Some(t),
            Patience::NoWait | Patience::Forever => None,
        };
        let result = sem::semop(self.id, bufs, timeout);
        if trace::enabled() {
            let r = match &result {
                Ok(()) => "0".to_string(),
                Err(e) if e.errno() == libc::EAGAIN => {
                    "-1 (EAGAIN: would block / timed out)".to_string()
                }
                Err(e) if e.errno() == libc::EINTR => "-1 (EINTR: a signal came)".to_string(),
                Err(e) => trace::failure(&e.source),
            };
            let kind = match (&result, why.retried_until) {
                (Err(e), Some(until)) if matches!(e.errno(), libc::EAGAIN | libc::EINTR) => {
                    Kind::Waiting(until)
                }
                _ => why.kind,
            };
            trace::call(kind, &self.describe(ops, patience), &r, why.text);
        }
        match result {
            Ok(()) => Ok(Applied::Done),
            Err(e) if matches!(e.errno(), libc::EAGAIN | libc::EINTR) => Ok(Applied::NotYet),
            // EINVAL after a successful open means the id no longer exists.
            Err(e) if crate::objects::gone(&e) => Err(Error::PeerGone {
                key: self.key,
                detail: format!("the semaphore set was removed while we waited ({})", e.call),
            }),
            Err(e) if e.errno() == libc::ERANGE => Err(Error::Corrupt {
                key: self.key,
                detail: "a semaphore would exceed SEMVMX (32767): the counts are inconsistent"
                    .into(),
            }),
            Err(e) => Err(Error::sys(self.key, e)),
        }
    }

    /// Applies `ops` that can never have to wait in a consistent session (they only
    /// add, take back what they added in the same call, or take what this process
    /// itself holds), with `IPC_NOWAIT`: if they would have to wait after all, the
    /// counts were changed from outside, and waiting while holding a mutex would
    /// hang every peer. That is [`Error::Corrupt`].
    pub fn apply_now(&self, ops: &[SemOp], why: Why<'_>) -> Result<()> {
        match self.apply(ops, Patience::NoWait, why)? {
            Applied::Done => Ok(()),
            Applied::NotYet => Err(Error::Corrupt {
                key: self.key,
                detail: format!(
                    "the semaphore counts were changed from outside: a step that never waits would have had to ({})",
                    why.text
                ),
            }),
        }
    }

    /// All member values in one consistent snapshot (`semctl(GETALL)`).
    pub fn values(&self) -> Result<Vec<u16>> {
        self.values_why(Why::once(
            "read every count at once: how many slots are free/filled, who is alive",
        ))
    }

    /// [`SemaphoreSet::values`], narrated with `why`.
    pub(crate) fn values_why(&self, why: Why<'_>) -> Result<Vec<u16>> {
        let result = sem::get_all(self.id, self.nsems);
        if trace::enabled() {
            let r = match &result {
                Ok(v) => {
                    let list: Vec<String> = v
                        .iter()
                        .enumerate()
                        .map(|(i, v)| format!("{}={v}", self.name(i as u16)))
                        .collect();
                    format!("0, [{}]", list.join(", "))
                }
                Err(e) => trace::failure(&e.source),
            };
            trace::call(
                why.kind,
                &format!("semctl({}, 0, GETALL, values)", self.id),
                &r,
                why.text,
            );
        }
        result.map_err(|e| self.gone_or(e))
    }

    /// Sets every member (`semctl(SETALL)`); the creator's initialisation step.
    /// `values` must have one value per member (`EINVAL` otherwise).
    pub fn set_values(&self, values: &[u16]) -> Result<()> {
        self.set_values_why(values, "give every semaphore its initial value")
    }

    /// [`SemaphoreSet::set_values`], narrated with `why`.
    pub(crate) fn set_values_why(&self, values: &[u16], why: &str) -> Result<()> {
        let result = sem::set_all(self.id, self.nsems, values);
        if trace::enabled() {
            let list: Vec<String> = self
                .names
                .iter()
                .zip(values)
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            trace::call(
                Kind::Once,
                &format!("semctl({}, 0, SETALL, [{}])", self.id, list.join(", ")),
                if result.is_ok() { "0" } else { "-1" },
                why,
            );
        }
        result.map_err(|e| self.gone_or(e))
    }

    /// One member's value, last changer, or waiters (`semctl(member, GETVAL)`, ...).
    pub fn query(&self, member: u16, q: Query) -> Result<i32> {
        self.query_why(
            member,
            q,
            Why::per_message("read one semaphore (HEAD/TAIL: where our batch starts)"),
        )
    }

    /// [`SemaphoreSet::query`], narrated with `why`.
    pub(crate) fn query_why(&self, member: u16, q: Query, why: Why<'_>) -> Result<i32> {
        let result = sem::query(self.id, member, q);
        if trace::enabled() {
            let r = match &result {
                Ok(v) => v.to_string(),
                Err(e) => trace::failure(&e.source),
            };
            trace::call(
                why.kind,
                &format!("semctl({}, {}, {})", self.id, self.member(member), q.name()),
                &r,
                why.text,
            );
        }
        result.map_err(|e| self.gone_or(e))
    }

    /// Sets one member (`semctl(SETVAL)`): not part of the protocol (which changes
    /// values only by `semop`), but what a tool or a test playing a hostile process
    /// needs.
    pub fn set_value(&self, member: u16, value: u16) -> Result<()> {
        let result = sem::set_value(self.id, member, value);
        if trace::enabled() {
            trace::call(
                Kind::Once,
                &format!(
                    "semctl({}, {}, SETVAL, {value})",
                    self.id,
                    self.member(member)
                ),
                if result.is_ok() { "0" } else { "-1" },
                "set one semaphore's value",
            );
        }
        result.map_err(|e| self.gone_or(e))
    }

    /// `semctl(IPC_STAT)` for this set.
    pub fn stat(&self) -> Result<SetStat> {
        stat(self.key, self.id)
    }

    /// Removes the set (IPC_RMID). Returns whether there was anything to remove.
    pub fn remove(self) -> Result<bool> {
        remove_id(self.key, self.id)
    }

    fn gone_or(&self, e: crate::sys::SysError) -> Error {
        if crate::objects::gone(&e) {
            Error::PeerGone {
                key: self.key,
                detail: format!("the semaphore set was removed ({})", e.call),
            }
        } else {
            Error::sys(self.key, e)
        }
    }
}
