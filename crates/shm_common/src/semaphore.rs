//! [`SemaphoreSet`]: one System V semaphore set, with named members.
//!
//! A System V semaphore is a kernel-held counter that `semop` can add to or subtract
//! from; a subtraction that would make it negative puts the caller to sleep until it
//! can proceed. Several operations in one `semop` call happen *atomically*: all or
//! none. The protocol (`ring.rs`, `session.rs`) relies on that to take a mutex and a
//! count together, and to publish a frame and release the mutex in one step.
#![allow(unsafe_code)]

use crate::error::{Error, Result};
use crate::key::IpcKey;
use crate::sys::sem;
use crate::trace;
use std::time::Duration;

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

/// The outcome of a blocking `semop` that may give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// All operations were applied.
    Done,
    /// The timeout passed or a signal interrupted the wait; nothing was applied.
    NotYet,
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
            Err(e) => format!("-1 ({})", e.source),
        };
        let why =
            "read the set's record: member count, owner, and sem_otime (0 = not initialised yet)";
        trace::call(
            false,
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
                Err(e) => format!("-1 ({})", e.source),
            };
            trace::call(
                false,
                &format!("semget({key}, {nsems}, {})", trace::ipc_flags(flags)),
                &r,
                "create the semaphore set; EXCL makes exactly one creator win",
            );
        }
        match result {
            Ok(id) => Ok(Some(SemaphoreSet { key, id, names })),
            Err(e) if e.errno() == libc::EEXIST => Ok(None),
            Err(e) if e.errno() == libc::EINVAL => Err(Error::Limit {
                call: "semget",
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
        Ok(SemaphoreSet { key, id, names })
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

    fn describe(&self, ops: &[SemOp], timeout: Option<Duration>, nowait: bool) -> String {
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
                let name = self
                    .names
                    .get(usize::from(o.member))
                    .copied()
                    .unwrap_or("?");
                format!("{{{name}, {:+}, {f}}}", o.delta)
            })
            .collect();
        match timeout {
            Some(t) if !nowait => format!(
                "semtimedop({}, [{}], {}ms)",
                self.id,
                list.join(", "),
                t.as_millis()
            ),
            _ => format!("semop({}, [{}])", self.id, list.join(", ")),
        }
    }

    /// Applies `ops` atomically. With a `timeout`, gives up after it (`Wait::NotYet`),
    /// as it also does on `EINTR`, so the caller can check for a dead peer or a
    /// Ctrl-C and call again. With `nowait`, never sleeps (`IPC_NOWAIT`).
    pub fn apply(
        &self,
        ops: &[SemOp],
        timeout: Option<Duration>,
        nowait: bool,
        why: &str,
        hot: bool,
    ) -> Result<Wait> {
        let mut bufs = [libc::sembuf {
            sem_num: 0,
            sem_op: 0,
            sem_flg: 0,
        }; 8];
        let bufs = bufs
            .get_mut(..ops.len())
            .ok_or_else(|| Error::InvalidArgument {
                what: "semop",
                reason: "more than 8 operations in one call".into(),
            })?;
        for (b, o) in bufs.iter_mut().zip(ops) {
            let mut flg = 0;
            if o.undo {
                flg |= libc::SEM_UNDO;
            }
            if nowait {
                flg |= libc::IPC_NOWAIT;
            }
            *b = libc::sembuf {
                sem_num: o.member,
                sem_op: o.delta,
                sem_flg: flg as libc::c_short,
            };
        }
        let result = sem::semop(self.id, bufs, if nowait { None } else { timeout });
        if trace::enabled() {
            let r = match &result {
                Ok(()) => "0".to_string(),
                Err(e) if e.errno() == libc::EAGAIN => {
                    "-1 (EAGAIN: would block / timed out)".to_string()
                }
                Err(e) => format!("-1 ({})", e.source),
            };
            trace::call(hot, &self.describe(ops, timeout, nowait), &r, why);
        }
        match result {
            Ok(()) => Ok(Wait::Done),
            Err(e) if matches!(e.errno(), libc::EAGAIN | libc::EINTR) => Ok(Wait::NotYet),
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

    /// All member values in one consistent snapshot (`semctl(GETALL)`).
    pub fn values(&self) -> Result<Vec<u16>> {
        let mut v = vec![0u16; self.names.len()];
        let result = sem::get_all(self.id, &mut v);
        if trace::enabled() {
            let list: Vec<String> = self
                .names
                .iter()
                .zip(&v)
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            let r = if result.is_ok() {
                format!("0, [{}]", list.join(", "))
            } else {
                "-1".into()
            };
            trace::call(
                true,
                &format!("semctl({}, 0, GETALL, values)", self.id),
                &r,
                "read every count at once: how many slots are free/filled, who is alive",
            );
        }
        result.map_err(|e| self.gone_or(e))?;
        Ok(v)
    }

    /// Sets every member (`semctl(SETALL)`); the creator's initialisation step.
    pub fn set_values(&self, values: &[u16]) -> Result<()> {
        let result = sem::set_all(self.id, values);
        if trace::enabled() {
            let list: Vec<String> = self
                .names
                .iter()
                .zip(values)
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            trace::call(
                false,
                &format!("semctl({}, 0, SETALL, [{}])", self.id, list.join(", ")),
                if result.is_ok() { "0" } else { "-1" },
                "give every semaphore its initial value",
            );
        }
        result.map_err(|e| self.gone_or(e))
    }

    /// `semctl(member, cmd)` for `GETVAL`/`GETPID`/`GETNCNT`/`GETZCNT`.
    pub fn query(&self, member: u16, cmd: i32) -> Result<i32> {
        let result = sem::query(self.id, member, cmd);
        if trace::enabled() {
            let name = self.names.get(usize::from(member)).copied().unwrap_or("?");
            let c = match cmd {
                libc::GETVAL => "GETVAL",
                libc::GETPID => "GETPID",
                libc::GETNCNT => "GETNCNT",
                libc::GETZCNT => "GETZCNT",
                _ => "?",
            };
            let r = match &result {
                Ok(v) => v.to_string(),
                Err(e) => format!("-1 ({})", e.source),
            };
            trace::call(
                true,
                &format!("semctl({}, {name}, {c})", self.id),
                &r,
                "read one semaphore (HEAD/TAIL: where our batch starts)",
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
