//! The only code in the library that calls the kernel.
//!
//! Every System V call goes through one of two small modules, [`shm`] and [`sem`], so
//! that all `unsafe` lives in a few hundred lines that can be read in one sitting. Each
//! wrapper turns the C convention (`-1` and `errno`) into a [`SysError`] *immediately
//! after the call*, before anything else can overwrite `errno`, and keeps the name of
//! the call so that an error message can say which step failed.
#![allow(unsafe_code)]

pub mod sem;
pub mod shm;

use std::io;

/// A failed system call: its name and the `errno` it returned.
#[derive(Debug)]
pub struct SysError {
    /// The C name of the call (`"semop"`, `"shmget"`, ...).
    pub call: &'static str,
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
pub(crate) fn check(call: &'static str, ret: libc::c_int) -> Result<libc::c_int, SysError> {
    if ret == -1 {
        Err(SysError {
            call,
            source: io::Error::last_os_error(),
        })
    } else {
        Ok(ret)
    }
}

/// `ftok(3)`: derives a key from an existing file's inode and device numbers and a
/// one-byte project id. Two paths that name the same file give the same key; the key
/// changes if the file is deleted and re-created, which is why we recommend a stable
/// directory (the home directory) rather than a temporary file.
pub fn ftok(path: &std::path::Path, project: u8) -> Result<libc::key_t, SysError> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| SysError {
        call: "ftok",
        source: io::Error::from_raw_os_error(libc::EINVAL),
    })?;
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call; ftok
    // only reads it (it calls stat(2) on the path).
    let key = unsafe { libc::ftok(c_path.as_ptr(), libc::c_int::from(project)) };
    check("ftok", key)
}
