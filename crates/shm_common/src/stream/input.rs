//! The writer's input: anything readable with a file descriptor, waited for with
//! `poll(2)` so that a Ctrl-C is noticed (a plain blocking `read(2)` would not: the
//! `ctrlc` crate installs its handlers with `SA_RESTART`, so the kernel restarts the
//! read and the flag would never be looked at).

use crate::error::{Error, Result};
use std::io::Read;
use std::os::fd::AsFd;

/// What the writer reads.
pub trait Input: Read + AsFd {}
impl<T: Read + AsFd> Input for T {}

/// Waits until `input` has data or end of file, giving up on a cancel request.
pub(super) fn wait_readable(input: &dyn Input) -> Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    loop {
        if crate::cancel::requested() {
            return Err(Error::Interrupted {
                detail: "while waiting for input".into(),
            });
        }
        let mut fds = [PollFd::new(input.as_fd(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(crate::cancel::POLL).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => return Ok(()),
            Err(e) => {
                return Err(Error::Io {
                    what: "waiting for input (poll)".into(),
                    source: e.into(),
                })
            }
        }
    }
}

/// Whether `input` can be read right now without blocking (`poll` with a zero
/// timeout: data is waiting, or the end of input is).
pub(super) fn readable_now(input: &dyn Input) -> Result<bool> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(input.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(n) => Ok(n > 0),
        Err(nix::errno::Errno::EINTR) => Ok(false),
        Err(e) => Err(Error::Io {
            what: "waiting for input (poll)".into(),
            source: e.into(),
        }),
    }
}

/// A pipe holds 64 KiB by default: one frame. Asking for 1 MiB (the unprivileged
/// maximum, `/proc/sys/fs/pipe-max-size`) lets the process feeding us run ahead, so
/// that a read finds whole frames waiting instead of one page. A refusal changes
/// nothing but speed.
pub(super) fn widen_pipe(input: &dyn Input) {
    use nix::fcntl::{fcntl, FcntlArg};
    let is_fifo = nix::sys::stat::fstat(input.as_fd())
        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO);
    if is_fifo {
        let _ = fcntl(input.as_fd(), FcntlArg::F_SETPIPE_SZ(1 << 20));
    }
}

/// Whether the input is a regular file, whose reads never block for long: only then
/// may the writer read straight into slots while holding the write mutex.
pub(super) fn is_regular_file(input: &dyn Input) -> bool {
    nix::sys::stat::fstat(input.as_fd()).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG)
}

/// Bytes between the file's current position and its end, if it can tell. A size
/// of 0 tells nothing: files in /proc and /sys say 0 and have content, so they are
/// read until read(2) says the end (an empty file ends at once that way too).
pub(super) fn bytes_left(input: &dyn Input) -> Option<u64> {
    use nix::unistd::{lseek, Whence};
    let size = nix::sys::stat::fstat(input.as_fd()).ok()?.st_size;
    if size == 0 {
        return None;
    }
    let pos = lseek(input.as_fd(), 0, Whence::SeekCur).ok()?;
    u64::try_from(size.saturating_sub(pos)).ok()
}

/// Bytes a pipe (or FIFO) holds right now, if the input is one and can tell.
pub(super) fn pipe_ready(input: &dyn Input) -> Option<usize> {
    let is_fifo = nix::sys::stat::fstat(input.as_fd())
        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO);
    if !is_fifo {
        return None;
    }
    crate::sys::bytes_readable(input.as_fd()).ok()
}
