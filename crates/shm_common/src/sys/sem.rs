//! Thin wrappers over `semget`, `semop`, `semtimedop` and `semctl`.
//!
//! Two quirks of the Rust `libc` crate are handled here: it has no wrapper for
//! `semtimedop` (we issue the raw system call), and on Linux it has no `union semun`
//! (the C library's `semctl` is variadic and reads its fourth argument as whatever the
//! command needs: an `int` for `SETVAL`, a pointer for `GETALL`/`SETALL`/`IPC_STAT`).

use super::{check, SysError};
use std::time::Duration;

/// `semget(2)`: finds or creates (with `IPC_CREAT`) a set of `nsems` semaphores.
/// A newly created set's values are *unspecified* by POSIX (Linux zeroes them) and it
/// is not usable until someone initialises it: see the `sem_otime` discussion in
/// `session.rs`.
pub fn semget(key: libc::key_t, nsems: i32, flags: libc::c_int) -> Result<libc::c_int, SysError> {
    // SAFETY: semget takes only integers and touches no memory of ours.
    check("semget", unsafe { libc::semget(key, nsems, flags) })
}

/// `semop(2)` or `semtimedop(2)`: applies all of `ops` atomically: either every
/// operation is performed, or (when one would make a value negative) the process
/// sleeps until all can be, or the timeout passes (`EAGAIN`), or a signal arrives
/// (`EINTR`), or the set is removed (`EIDRM`).
pub fn semop(
    semid: libc::c_int,
    ops: &mut [libc::sembuf],
    timeout: Option<Duration>,
) -> Result<(), SysError> {
    match timeout {
        None => {
            // SAFETY: `ops` is a valid, writable array of `ops.len()` sembufs (the
            // kernel may read it only, but the C prototype is non-const).
            check("semop", unsafe {
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
            check("semtimedop", ret as libc::c_int).map(drop)
        }
    }
}

/// `semctl(GETALL)`: every value of the set, in one call and one consistent snapshot.
pub fn get_all(semid: libc::c_int, values: &mut [u16]) -> Result<(), SysError> {
    // SAFETY: GETALL writes `nsems` unsigned shorts through the pointer; the caller's
    // slice has exactly the set's member count (checked by SemaphoreSet::open).
    check("semctl(GETALL)", unsafe {
        libc::semctl(semid, 0, libc::GETALL, values.as_mut_ptr())
    })
    .map(drop)
}

/// `semctl(SETALL)`: sets every value at once. Used only by the creator, before the
/// set is published (see `session.rs`). It resets every process's undo adjustment.
pub fn set_all(semid: libc::c_int, values: &[u16]) -> Result<(), SysError> {
    // SAFETY: SETALL reads `nsems` unsigned shorts from the pointer; the slice has the
    // set's member count and lives across the call. The kernel does not write to it.
    check("semctl(SETALL)", unsafe {
        libc::semctl(semid, 0, libc::SETALL, values.as_ptr())
    })
    .map(drop)
}

/// `semctl(cmd)` for the per-member queries `GETVAL`, `GETPID`, `GETNCNT`, `GETZCNT`,
/// which take no fourth argument and return their answer.
pub fn query(semid: libc::c_int, member: u16, cmd: libc::c_int) -> Result<i32, SysError> {
    let name = match cmd {
        libc::GETVAL => "semctl(GETVAL)",
        libc::GETPID => "semctl(GETPID)",
        libc::GETNCNT => "semctl(GETNCNT)",
        libc::GETZCNT => "semctl(GETZCNT)",
        _ => "semctl",
    };
    // SAFETY: these four commands take only integers and ignore the variadic argument.
    check(name, unsafe {
        libc::semctl(semid, libc::c_int::from(member), cmd)
    })
}

/// `semctl(IPC_STAT)`: owner, mode, member count and the two times. `sem_otime` (the
/// time of the last successful `semop`) is 0 until someone has operated on the set,
/// which is what the classic initialisation handshake waits for.
pub fn stat(semid: libc::c_int) -> Result<libc::semid_ds, SysError> {
    // SAFETY: semid_ds is plain old data: all-zero is a valid value.
    let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT writes one semid_ds through the pointer, which is valid and
    // writable for the duration of the call.
    check("semctl(IPC_STAT)", unsafe {
        libc::semctl(semid, 0, libc::IPC_STAT, &mut ds as *mut libc::semid_ds)
    })?;
    Ok(ds)
}

/// `semctl(IPC_RMID)`: removes the set *immediately*; every process sleeping in
/// `semop` on it wakes with `EIDRM`. (Unlike a segment, which lingers until the last
/// detach.)
pub fn remove(semid: libc::c_int) -> Result<(), SysError> {
    // SAFETY: IPC_RMID takes no fourth argument.
    check("semctl(IPC_RMID)", unsafe {
        libc::semctl(semid, 0, libc::IPC_RMID)
    })
    .map(drop)
}
