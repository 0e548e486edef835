//! Thin wrappers over `semget`, `semop`, `semtimedop` and `semctl`.
//!
//! Two quirks of the Rust `libc` crate are handled here: it has no wrapper for
//! `semtimedop` (we issue the raw system call), and on Linux it has no `union semun`
//! (the C library's `semctl` is variadic and reads its fourth argument as whatever the
//! command needs: an `int` for `SETVAL`, a pointer for `GETALL`/`SETALL`/`IPC_STAT`).
//! Every command that makes the kernel read or write through a pointer is its own
//! function here, with a buffer it sizes itself; the commands that take no pointer
//! are the variants of [`Query`].

use super::{check, SysError};
use crate::error::ObjectKind::SemaphoreSet;
use std::time::Duration;

/// `semget(2)`: finds or creates (with `IPC_CREAT`) a set of `nsems` semaphores.
/// A newly created set's values are *unspecified* by POSIX (Linux zeroes them) and it
/// is not usable until someone initialises it: see `session/create.rs`.
pub(crate) fn semget(
    key: libc::key_t,
    nsems: i32,
    flags: libc::c_int,
) -> Result<libc::c_int, SysError> {
    // SAFETY: semget takes only integers and touches no memory of ours.
    check("semget", SemaphoreSet, unsafe {
        libc::semget(key, nsems, flags)
    })
}

/// `semop(2)` or, with a timeout, `semtimedop(2)`: applies all of `ops` atomically:
/// either every operation is performed, or (when one would make a value negative)
/// the process sleeps until all can be, or the timeout passes (`EAGAIN`), or a signal
/// arrives (`EINTR`), or the set is removed (`EIDRM`).
pub(crate) fn semop(
    semid: libc::c_int,
    ops: &mut [libc::sembuf],
    timeout: Option<Duration>,
) -> Result<(), SysError> {
    match timeout {
        None => {
            // SAFETY: `ops` is a valid, writable array of `ops.len()` sembufs (the
            // kernel only reads it, but the C prototype is non-const).
            check("semop", SemaphoreSet, unsafe {
                libc::semop(semid, ops.as_mut_ptr(), ops.len())
            })
            .map(drop)
        }
        Some(t) => {
            let ts = libc::timespec {
                tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
            };
            // SAFETY: `ops` points to `ops.len()` valid sembufs and `ts` to a valid
            // timespec; both outlive the call. The raw syscall returns -1/errno like
            // the libc wrappers do.
            let ret = unsafe {
                libc::syscall(
                    libc::SYS_semtimedop,
                    semid,
                    ops.as_mut_ptr(),
                    ops.len(),
                    &ts as *const libc::timespec,
                )
            };
            check("semtimedop", SemaphoreSet, ret as libc::c_int).map(drop)
        }
    }
}

/// `semctl(GETALL)`: every value of a set of `nsems` members (as an `IPC_STAT` of
/// this id said), in one call and one consistent snapshot.
///
/// The kernel writes as many values as the set has members, so the buffer must be
/// sized from the set's own record. An id keeps naming the same set for the set's
/// whole life, and a removed set's id is not handed out again before the namespace
/// has created 65,536 more sets (the sequence number in the id), so a count read
/// from `IPC_STAT` stays right for as long as the id answers at all. The buffer is
/// also never smaller than `nsems` says, whatever the caller passes.
pub(crate) fn get_all(semid: libc::c_int, nsems: usize) -> Result<Vec<u16>, SysError> {
    let mut values = vec![0u16; nsems.max(1)];
    // SAFETY: GETALL writes the set's member count of unsigned shorts through the
    // pointer; the buffer holds `nsems` of them, the count IPC_STAT gave for this id
    // (see above); it is writable and lives across the call.
    check("semctl(GETALL)", SemaphoreSet, unsafe {
        libc::semctl(semid, 0, libc::GETALL, values.as_mut_ptr())
    })?;
    values.truncate(nsems);
    Ok(values)
}

/// `semctl(SETALL)`: sets every value at once. It resets every process's undo
/// adjustment for the set. The kernel reads as many values as the set has members
/// (`nsems`, from its `IPC_STAT`, see [`get_all`]), so `values` must have exactly
/// that many (`EINVAL` otherwise, and nothing is read).
pub(crate) fn set_all(semid: libc::c_int, nsems: usize, values: &[u16]) -> Result<(), SysError> {
    if nsems != values.len() {
        return Err(SysError {
            call: "semctl(SETALL)",
            object: SemaphoreSet,
            source: std::io::Error::from_raw_os_error(libc::EINVAL),
        });
    }
    // SAFETY: SETALL reads the set's member count (`nsems`, see get_all) of unsigned
    // shorts from the pointer and the slice has exactly that many (checked above);
    // the kernel does not write to it.
    check("semctl(SETALL)", SemaphoreSet, unsafe {
        libc::semctl(semid, 0, libc::SETALL, values.as_ptr())
    })
    .map(drop)
}

/// `semctl(SETVAL)`: sets one member's value (and clears every process's undo
/// adjustment for it).
pub(crate) fn set_value(semid: libc::c_int, member: u16, value: u16) -> Result<(), SysError> {
    // SAFETY: SETVAL reads its fourth argument as an `int` (the `val` of `union
    // semun`), passed by value; no memory of ours is touched.
    check("semctl(SETVAL)", SemaphoreSet, unsafe {
        libc::semctl(
            semid,
            libc::c_int::from(member),
            libc::SETVAL,
            libc::c_int::from(value),
        )
    })
    .map(drop)
}

/// The `semctl` commands that ask about one member and take no fourth argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// `GETVAL`: the value.
    Value,
    /// `GETPID`: the pid of the last process to change it (0: nobody yet).
    LastPid,
    /// `GETNCNT`: how many processes sleep in `semop` until it grows.
    WaitingToTake,
    /// `GETZCNT`: how many processes sleep until it is zero.
    WaitingForZero,
}

impl Query {
    /// The C name of the command.
    pub fn name(self) -> &'static str {
        match self {
            Query::Value => "GETVAL",
            Query::LastPid => "GETPID",
            Query::WaitingToTake => "GETNCNT",
            Query::WaitingForZero => "GETZCNT",
        }
    }

    fn call(self) -> &'static str {
        match self {
            Query::Value => "semctl(GETVAL)",
            Query::LastPid => "semctl(GETPID)",
            Query::WaitingToTake => "semctl(GETNCNT)",
            Query::WaitingForZero => "semctl(GETZCNT)",
        }
    }

    fn cmd(self) -> libc::c_int {
        match self {
            Query::Value => libc::GETVAL,
            Query::LastPid => libc::GETPID,
            Query::WaitingToTake => libc::GETNCNT,
            Query::WaitingForZero => libc::GETZCNT,
        }
    }
}

/// `semctl(member, GETVAL | GETPID | GETNCNT | GETZCNT)`: the answer is the return
/// value.
pub(crate) fn query(semid: libc::c_int, member: u16, q: Query) -> Result<i32, SysError> {
    // SAFETY: these four commands take only integers and ignore the variadic argument.
    check(q.call(), SemaphoreSet, unsafe {
        libc::semctl(semid, libc::c_int::from(member), q.cmd())
    })
}

/// `semctl(IPC_STAT)`: owner, mode, member count and the two times. `sem_otime` (the
/// time of the last successful `semop`) is 0 until someone has operated on the set,
/// which is what the classic initialisation handshake waits for.
pub(crate) fn stat(semid: libc::c_int) -> Result<libc::semid_ds, SysError> {
    // SAFETY: semid_ds is plain old data: all-zero is a valid value.
    let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT writes one semid_ds through the pointer, which is valid and
    // writable for the duration of the call.
    check("semctl(IPC_STAT)", SemaphoreSet, unsafe {
        libc::semctl(semid, 0, libc::IPC_STAT, &mut ds as *mut libc::semid_ds)
    })?;
    Ok(ds)
}

/// `semctl(IPC_RMID)`: removes the set *immediately*; every process sleeping in
/// `semop` on it wakes with `EIDRM`. (Unlike a segment, which lingers until the last
/// detach.)
pub(crate) fn remove(semid: libc::c_int) -> Result<(), SysError> {
    // SAFETY: IPC_RMID takes no fourth argument.
    check("semctl(IPC_RMID)", SemaphoreSet, unsafe {
        libc::semctl(semid, 0, libc::IPC_RMID)
    })
    .map(drop)
}
