//! The one error type of the library, with a variant per situation a user can act on.
//!
//! The binaries print an error as one line plus a hint ([`Error::hint`]) and exit with
//! [`Error::exit_code`]; the codes are documented in the README and in `--help`.

use crate::key::IpcKey;
use crate::sys::SysError;
use std::io;

/// Exit codes shared by `writer` and `reader` (see the README's "Exit codes").
pub mod exit {
    /// Everything was sent or received.
    pub const OK: u8 = 0;
    /// Any other operating-system or I/O error.
    pub const OS_ERROR: u8 = 1;
    /// Bad command line (clap's own code).
    pub const USAGE: u8 = 2;
    /// Something is already at the key that we must not use or touch.
    pub const CONFLICT: u8 = 3;
    /// The peer died, the objects were removed under us, or the stream was cut short.
    pub const PEER_GONE: u8 = 4;
    /// The kernel refused access (mode bits, another user's objects).
    pub const PERMISSION: u8 = 5;
    /// The shared memory holds data that fails validation (corrupt header or frame).
    pub const CORRUPT: u8 = 6;
    /// A kernel limit was reached (too many segments/sets, segment too large).
    pub const LIMIT: u8 = 7;
    /// Stopped by SIGINT, SIGTERM or SIGHUP after cleaning up.
    pub const INTERRUPTED: u8 = 130;
}

/// Everything that can go wrong in this library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command-line value (key, size, count, mode) is out of range or malformed.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// What was being parsed ("key", "--slots", ...).
        what: &'static str,
        /// Why it is refused.
        reason: String,
    },

    /// A System V or other system call failed for a reason no other variant covers.
    #[error("{call} failed for key {key}: {source}")]
    Sys {
        /// The call that failed.
        call: &'static str,
        /// The key we were working on.
        key: IpcKey,
        /// The errno, as an io::Error.
        source: io::Error,
    },

    /// The kernel refused access (EACCES/EPERM).
    #[error("permission denied by {call} for key {key} (owner uid {owner})")]
    Permission {
        /// The call that was refused.
        call: &'static str,
        /// The key.
        key: IpcKey,
        /// Owner uid of the object, when it could be read (otherwise -1).
        owner: i64,
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
        /// The key.
        key: IpcKey,
        /// Which limit, and which sysctl raises it.
        detail: String,
    },

    /// The shared memory contains something that fails validation.
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

    /// SIGINT/SIGTERM/SIGHUP arrived; we cleaned up what was ours.
    #[error("interrupted ({detail})")]
    Interrupted {
        /// What was done on the way out.
        detail: String,
    },

    /// Reading the input or writing the output failed.
    #[error("{what}: {source}")]
    Io {
        /// "reading standard input", "writing standard output", ...
        what: String,
        /// The error.
        source: io::Error,
    },
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
                owner: -1,
            },
            libc::ENOSPC => Error::Limit {
                call: e.call,
                key,
                detail: if e.call.starts_with("shm") {
                    "the system-wide number of segments (kernel.shmmni) or of shared \
                     pages (kernel.shmall) is exhausted"
                        .into()
                } else {
                    "the system-wide number of semaphore sets or semaphores is exhausted \
                     (kernel.sem, fields SEMMNI and SEMMNS)"
                        .into()
                },
            },
            libc::ENOMEM if e.call == "shmat" || e.call == "shmget" => Error::Limit {
                call: e.call,
                key,
                detail: "not enough memory for the segment".into(),
            },
            libc::EIDRM => Error::PeerGone {
                key,
                detail: format!("the objects were removed while we used them ({})", e.call),
            },
            _ => Error::Sys {
                call: e.call,
                key,
                source: e.source,
            },
        }
    }

    /// The documented exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::InvalidArgument { .. } => exit::USAGE,
            Error::Sys { .. } | Error::Io { .. } => exit::OS_ERROR,
            Error::Permission { .. } => exit::PERMISSION,
            Error::Conflict { .. } => exit::CONFLICT,
            Error::Limit { .. } => exit::LIMIT,
            Error::Corrupt { .. } => exit::CORRUPT,
            Error::PeerGone { .. } => exit::PEER_GONE,
            Error::Interrupted { .. } => exit::INTERRUPTED,
        }
    }

    /// One line telling the user what to do next, if there is something useful to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::InvalidArgument { what, .. } => Some(format!(
                "nothing was created; see --help for the accepted {what}"
            )),
            Error::Permission { key, .. } => Some(format!(
                "the objects at key {key} belong to another user or have a narrower mode \
                 (see `ipcs -m -s -i <id>`); use your own key with --key, or ask the owner \
                 to start the writer with --mode"
            )),
            Error::Conflict {
                remove_hint: Some(cmd),
                ..
            } => Some(format!("if it is safe to discard, remove it with: {cmd}")),
            Error::Conflict { key, .. } => Some(format!(
                "pick another key with --key, or wait for the session at {key} to end"
            )),
            Error::Limit { .. } => Some(
                "see `ipcs -l` for the limits and `ipcs` for what uses them; `make clean` \
                 removes leftovers of ours"
                    .into(),
            ),
            Error::Corrupt { key, .. } => Some(format!(
                "something other than our pair wrote to the segment; `make clean KEY={key}` \
                 removes our objects at that key"
            )),
            Error::PeerGone { key, .. } => Some(format!(
                "everything delivered before the failure is intact; `ipcs` should show \
                 nothing left at {key} (otherwise `make clean KEY={key}`)"
            )),
            Error::Sys { key, .. } => Some(format!(
                "inspect with `ipcs -m -s` (key {key}); `make clean KEY={key}` removes our \
                 objects"
            )),
            Error::Interrupted { .. } | Error::Io { .. } => None,
        }
    }
}
