//! The only code in the library that calls the kernel's System V interface.
//!
//! Every System V call goes through one of two small modules, [`shm`] and [`sem`],
//! so that the `unsafe` of the calls lives in a few hundred lines that can be read
//! in one sitting. Each wrapper turns the C convention (`-1` and `errno`) into a
//! [`SysError`] *immediately after the call*, before anything else can overwrite
//! `errno`, and keeps the name of the call and the kind of object it was made on,
//! so that an error message can say which step failed.
//!
//! This module is private: its functions take raw ids and are safe because each
//! validates what the kernel will do with its arguments (a buffer for `GETALL` is
//! sized from `IPC_STAT`, a `semctl` command is one of an enum's variants), but the
//! safe types built on them ([`Segment`](crate::segment::Segment),
//! [`SemaphoreSet`](crate::semaphore::SemaphoreSet)) are what the rest of the
//! crate, and the world, uses.
#![allow(unsafe_code)]

pub(crate) mod sem;
pub(crate) mod shm;

use crate::error::ObjectKind;
use std::io;

/// A failed system call: its name, what it was made on, and the `errno` it returned.
#[derive(Debug)]
pub(crate) struct SysError {
    /// The C name of the call (`"semop"`, `"shmctl(IPC_STAT)"`, ...).
    pub call: &'static str,
    /// The kind of object the call was made on.
    pub object: ObjectKind,
    /// The error the kernel reported.
    pub source: io::Error,
}

impl SysError {
    /// The raw `errno` value.
    pub fn errno(&self) -> i32 {
        self.source.raw_os_error().unwrap_or(0)
    }
}

/// Turns a C return value into a `Result`, reading `errno` at once on `-1`.
pub(crate) fn check(
    call: &'static str,
    object: ObjectKind,
    ret: libc::c_int,
) -> Result<libc::c_int, SysError> {
    if ret == -1 {
        Err(SysError {
            call,
            object,
            source: io::Error::last_os_error(),
        })
    } else {
        Ok(ret)
    }
}

/// `ioctl(fd, FIONREAD)`: how many bytes a pipe, socket or terminal holds right
/// now, ready to be read without blocking (not System V, but the one other call the
/// ring needs: it lets the writer read a pipe straight into slots while it holds the
/// write mutex, because a read of at most what is there returns at once).
pub(crate) fn bytes_readable(fd: std::os::fd::BorrowedFd<'_>) -> Result<usize, io::Error> {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one `int` through its third argument, which points at
    // `n`, a live local of that type; `fd` is a descriptor borrowed for the call.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n as *mut libc::c_int) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    usize::try_from(n).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `ftok(3)`: derives a key from an existing file's inode and device numbers and a
/// one-byte project id. Two paths that name the same file give the same key; the key
/// changes if the file is deleted and re-created. Only the low 16 bits of the inode
/// and the low 8 of the device number go in, so unrelated files can share a key.
pub(crate) fn ftok(path: &std::path::Path, project: u8) -> Result<libc::key_t, io::Error> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call; ftok
    // only reads it (it calls stat(2) on the path).
    let key = unsafe { libc::ftok(c_path.as_ptr(), libc::c_int::from(project)) };
    if key == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(key)
}
