//! Thin wrappers over `shmget`, `shmat`, `shmdt` and `shmctl`.
//!
//! Nothing here knows about our layout; see `segment/` for the safe types built on it.

use super::{check, SysError};
use crate::error::ObjectKind::Segment;
use std::io;

/// `shmget(2)`: finds the segment for `key`, or creates one of `size` bytes when
/// `flags` contains `IPC_CREAT`. With `IPC_CREAT | IPC_EXCL` the call fails with
/// `EEXIST` instead of opening an existing segment: that is how exactly one process
/// wins the race to create it. The low nine bits of `flags` are the permission mode.
pub(crate) fn shmget(
    key: libc::key_t,
    size: usize,
    flags: libc::c_int,
) -> Result<libc::c_int, SysError> {
    // SAFETY: shmget takes only integers and touches no memory of ours.
    check("shmget", Segment, unsafe { libc::shmget(key, size, flags) })
}

/// `shmat(2)`: maps the segment into our address space and returns where. A null
/// address hint lets the kernel choose a suitably aligned place; the segment's
/// attach count (`shm_nattch`) goes up by one until `shmdt`.
pub(crate) fn shmat(shmid: libc::c_int, read_only: bool) -> Result<*mut u8, SysError> {
    let flags = if read_only { libc::SHM_RDONLY } else { 0 };
    // SAFETY: a null hint asks the kernel to pick the address, so no existing mapping
    // of ours can be replaced; the result is checked before use.
    let addr = unsafe { libc::shmat(shmid, std::ptr::null(), flags) };
    // shmat reports failure as `(void *) -1`, not as a null pointer.
    if addr as isize == -1 {
        return Err(SysError {
            call: "shmat",
            object: Segment,
            source: io::Error::last_os_error(),
        });
    }
    Ok(addr.cast::<u8>())
}

/// `shmdt(2)`: unmaps a segment attached at `addr`.
///
/// # Safety
/// `addr` must be an address returned by [`shmat`] that has not been detached yet, and
/// no reference or pointer into the mapping may be used after this call.
pub(crate) unsafe fn shmdt(addr: *mut u8) -> Result<(), SysError> {
    // SAFETY: the caller guarantees `addr` came from shmat and is no longer used.
    check("shmdt", Segment, unsafe { libc::shmdt(addr.cast()) }).map(drop)
}

/// `shmctl(IPC_STAT)`: the kernel's record of the segment (size, owner, mode, attach
/// count, pids of the creator and of the last attach/detach, and times).
pub(crate) fn stat(shmid: libc::c_int) -> Result<libc::shmid_ds, SysError> {
    // SAFETY: shmid_ds is plain old data (integers only): all-zero is a valid value.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT writes one shmid_ds through the pointer, which is valid and
    // writable for the duration of the call.
    check("shmctl(IPC_STAT)", Segment, unsafe {
        libc::shmctl(shmid, libc::IPC_STAT, &mut ds)
    })?;
    Ok(ds)
}

/// `shmctl(IPC_RMID)`: marks the segment for removal. The kernel destroys it only when
/// the last process has detached; until then it stays mapped for those attached, but
/// no new `shmget` can find it (its key becomes `IPC_PRIVATE` in `ipcs`).
pub(crate) fn remove(shmid: libc::c_int) -> Result<(), SysError> {
    // SAFETY: IPC_RMID takes no buffer; a null pointer is what the man page specifies.
    check("shmctl(IPC_RMID)", Segment, unsafe {
        libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut())
    })
    .map(drop)
}
