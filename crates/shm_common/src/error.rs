//! The one error type of the library, with a variant per situation a user (or a
//! program using the library) can act on. Each keeps what is needed to say what
//! happened: the system call and its `errno`, the key, the object. How an error is
//! shown to a person (the one-line message, a hint, an exit code) is the business
//! of the program that shows it: `shm_cli::report` for the binaries of this project.

use crate::key::IpcKey;
use crate::sys::SysError;
use std::io;

/// The two kinds of System V object a session is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// The shared-memory segment (`shmget`, `shmat`, `shmctl`).
    Segment,
    /// The semaphore set (`semget`, `semop`, `semctl`).
    SemaphoreSet,
}

impl ObjectKind {
    /// `segment` or `semaphore set`.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Segment => "segment",
            ObjectKind::SemaphoreSet => "semaphore set",
        }
    }
}

/// Everything that can go wrong in this library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value given to the library (a key, a size, a count, a frame) is out of
    /// range or malformed. Nothing was created.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// What was being checked ("key", "--slots", ...).
        what: &'static str,
        /// Why it is refused.
        reason: String,
    },

    /// A system call failed for a reason no other variant covers.
    #[error("{call} failed for key {key}: {source}")]
    Sys {
        /// The call that failed.
        call: &'static str,
        /// What it was made on.
        object: ObjectKind,
        /// The key we were working on.
        key: IpcKey,
        /// The errno, as an io::Error.
        source: io::Error,
    },

    /// The kernel refused access (EACCES/EPERM).
    #[error("permission denied by {call} for key {key}{}", owner_text(.owner))]
    Permission {
        /// The call that was refused.
        call: &'static str,
        /// The key.
        key: IpcKey,
        /// Owner uid of the object, when it could be found out.
        owner: Option<u32>,
    },

    /// An object at the key is not one of ours, or is ours but not in a state we may
    /// join. Nothing was modified.
    #[error("key {key}: {detail}")]
    Conflict {
        /// The key.
        key: IpcKey,
        /// What is there and why we refuse it.
        detail: String,
        /// The command that would remove what is there, when removal is the fix.
        remove_hint: Option<String>,
    },

    /// A kernel limit stopped the creation; nothing was left behind.
    #[error("{call} hit a kernel limit for key {key}: {detail}")]
    Limit {
        /// The call.
        call: &'static str,
        /// What it was creating.
        object: ObjectKind,
        /// The key.
        key: IpcKey,
        /// Which limit, and which sysctl raises it.
        detail: String,
    },

    /// The shared memory holds something that fails validation.
    #[error("corrupt shared memory at key {key}: {detail}")]
    Corrupt {
        /// The key.
        key: IpcKey,
        /// What failed.
        detail: String,
    },

    /// The peer is gone (died, or removed the objects) before the stream ended.
    #[error("key {key}: {detail}")]
    PeerGone {
        /// The key.
        key: IpcKey,
        /// What happened and how far the stream got.
        detail: String,
    },

    /// A stop was requested (SIGINT/SIGTERM/SIGHUP, see [`crate::cancel`]); what was
    /// ours has been cleaned up.
    #[error("interrupted ({detail})")]
    Interrupted {
        /// What was done on the way out.
        detail: String,
    },

    /// Reading the input or writing the output failed.
    #[error("{what}: {source}")]
    Io {
        /// "reading the input", "writing the output", ...
        what: String,
        /// The error.
        source: io::Error,
    },

    /// Something the library's own logic rules out happened: a bug, not a condition
    /// of the machine or of the peers.
    #[error("internal error: {detail}")]
    Internal {
        /// What was found.
        detail: String,
    },
}

/// ` (owner uid N)` when the owner is known, nothing otherwise.
fn owner_text(owner: &Option<u32>) -> String {
    owner.map_or_else(String::new, |uid| format!(" (owner uid {uid})"))
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a failed system call, picking the variant a user can act on.
    pub(crate) fn sys(key: IpcKey, e: SysError) -> Error {
        match e.errno() {
            libc::EACCES | libc::EPERM => Error::Permission {
                call: e.call,
                key,
                owner: crate::sysvipc::owner(key),
            },
            libc::ENOSPC => Error::Limit {
                call: e.call,
                object: e.object,
                key,
                detail: match e.object {
                    ObjectKind::Segment => {
                        "the system-wide number of segments (kernel.shmmni) or of shared \
                         pages (kernel.shmall) is exhausted"
                            .into()
                    }
                    ObjectKind::SemaphoreSet => {
                        "the system-wide number of semaphore sets or semaphores is exhausted \
                         (kernel.sem, fields SEMMNI and SEMMNS)"
                            .into()
                    }
                },
            },
            libc::ENOMEM if matches!(e.call, "shmat" | "shmget") => Error::Limit {
                call: e.call,
                object: e.object,
                key,
                detail: "not enough memory for the segment".into(),
            },
            libc::EIDRM => Error::PeerGone {
                key,
                detail: format!("the objects were removed while we used them ({})", e.call),
            },
            _ => Error::Sys {
                call: e.call,
                object: e.object,
                key,
                source: e.source,
            },
        }
    }

    /// An invariant of the library's own logic does not hold.
    pub(crate) fn internal(detail: impl Into<String>) -> Error {
        Error::Internal {
            detail: detail.into(),
        }
    }
}
