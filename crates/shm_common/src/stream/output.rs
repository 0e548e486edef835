//! The reader's output: written with `poll(2)` first, so that a reader blocked on a
//! full pipe (a consumer that stopped reading) still notices Ctrl-C and SIGTERM; the
//! `ctrlc` crate's `SA_RESTART` would restart a blocked `write(2)` forever.

use crate::error::{Error, Result};
use std::io::Write;
use std::os::fd::AsFd;

/// What the reader writes to.
pub trait Output: Write + AsFd {}
impl<T: Write + AsFd> Output for T {}

/// Writes all of `data`, waiting for room with `poll` between partial writes and
/// giving up on a cancel request.
pub(super) fn write_all(out: &mut dyn Output, mut data: &[u8]) -> Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let io = |e: std::io::Error| Error::Io {
        what: "writing the output".into(),
        source: e,
    };
    while !data.is_empty() {
        if crate::cancel::requested() {
            return Err(Error::Interrupted {
                detail: "while writing the output".into(),
            });
        }
        let timeout = PollTimeout::try_from(crate::cancel::POLL).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(out.as_fd(), PollFlags::POLLOUT)];
        match poll(&mut fds, timeout) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(io(e.into())),
        }
        match out.write(data) {
            Ok(0) => return Err(io(std::io::Error::from(std::io::ErrorKind::WriteZero))),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(io(e)),
        }
    }
    Ok(())
}
