//! The exit codes of `writer` and `reader` (README "Exit codes", PROTOCOL.md), and
//! which error gets which.

use shm_common::Error;

/// Everything was sent or received.
pub const OK: u8 = 0;
/// Any other operating-system or I/O error (an internal error too).
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

/// The documented exit code for `e`.
pub fn code(e: &Error) -> u8 {
    match e {
        Error::InvalidArgument { .. } => USAGE,
        Error::Sys { .. } | Error::Io { .. } | Error::Internal { .. } => OS_ERROR,
        Error::Permission { .. } => PERMISSION,
        Error::Conflict { .. } => CONFLICT,
        Error::Limit { .. } => LIMIT,
        Error::Corrupt { .. } => CORRUPT,
        Error::PeerGone { .. } => PEER_GONE,
        Error::Interrupted { .. } => INTERRUPTED,
    }
}

/// The exit-code table for the writer's `--help`.
pub const WRITER_HELP: &str = "\
Exit codes:
  0    success: the whole stream was sent/received
  1    other operating-system or I/O error
  2    bad command line (invalid key, size, count, mode)
  3    conflict: something at the key we must not use (not ours, or busy)
  4    the peer died, the stream was cut short, or the objects were removed
  5    permission denied by the kernel
  6    corrupt data in the segment (bad header or checksum)
  7    a kernel limit was reached (shmmax, shmmni, semmni...)
  130  interrupted by SIGINT/SIGTERM/SIGHUP (after cleaning up)";

/// The exit-code table for the reader's `--help`.
pub const READER_HELP: &str = "\
Exit codes:
  0    success: the whole stream was received
  1    other operating-system or I/O error (e.g. writing the output)
  2    bad command line (invalid key or count)
  3    conflict: something at the key we must not use (not ours, or a byte-stream
       session that already has its reader)
  4    the writer died, the stream was cut short, or the objects were removed
  5    permission denied by the kernel
  6    corrupt data in the segment (bad header or checksum)
  7    a kernel limit was reached
  130  interrupted by SIGINT/SIGTERM/SIGHUP (after cleaning up)";
