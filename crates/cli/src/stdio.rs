//! Standard input and output as the binaries need them: a descriptor that was
//! closed when the program started is an error, not an empty stream; a FIFO is
//! opened without blocking, so that Ctrl-C still works while nobody has opened its
//! other end.

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use shm_common::{Error, Result};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

/// Whether `fd` is the `/dev/null` that Rust's runtime opens, read-write, in place
/// of a standard descriptor that was closed when the program started (`reader >&-`):
/// writing there would report the stream delivered while it went nowhere. (A shell's
/// `> /dev/null` opens it write-only and `< /dev/null` read-only, so those stay
/// allowed.)
pub fn was_closed(fd: BorrowedFd<'_>) -> bool {
    let Ok(st) = nix::sys::stat::fstat(fd) else {
        return true;
    };
    let is_char = st.st_mode & libc::S_IFMT == libc::S_IFCHR;
    let dev_null =
        is_char && nix::sys::stat::major(st.st_rdev) == 1 && nix::sys::stat::minor(st.st_rdev) == 3;
    let read_write = fcntl(fd, FcntlArg::F_GETFL)
        .map(OFlag::from_bits_truncate)
        .is_ok_and(|f| f & OFlag::O_ACCMODE == OFlag::O_RDWR);
    dev_null && read_write
}

/// Refuses a standard descriptor that was closed at start (see [`was_closed`]).
pub fn require_open(fd: BorrowedFd<'_>, what: &str) -> Result<()> {
    if was_closed(fd) {
        return Err(Error::Io {
            what: format!("{what} is closed (nothing was read or sent)"),
            source: std::io::Error::from_raw_os_error(libc::EBADF),
        });
    }
    Ok(())
}

/// Standard output, refusing it if it was closed at start.
pub fn stdout_open() -> Result<()> {
    require_open(std::io::stdout().as_fd(), "standard output")
}

/// Standard output as a plain, unbuffered `File` on a duplicate of fd 1, refused if
/// closed at start (it would swallow the stream). The reader writes each batch in one
/// `write(2)` after `poll(2)` says there is room, which a buffered `Stdout` would
/// hide; and a write blocked on a full pipe must stay interruptible.
pub fn stdout_file() -> Result<std::fs::File> {
    stdout_open()?;
    let fd = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| Error::Io {
            what: "duplicating standard output".into(),
            source: e,
        })?;
    Ok(std::fs::File::from(fd))
}

/// Opens the writer's input file. A FIFO is opened with `O_NONBLOCK`, which returns
/// at once even while nobody has the other end open (a plain open would block in
/// the kernel, deaf to Ctrl-C), then made blocking again: the writer waits for its
/// first bytes with `poll`, which on Linux blocks until a writer has come.
pub fn open_input(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let io = |e: std::io::Error| Error::Io {
        what: format!("opening {}", path.display()),
        source: e,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        // open(2) of a directory succeeds and read(2) fails: refuse before the
        // writer creates anything at the key.
        return Err(io(std::io::Error::from_raw_os_error(libc::EISDIR)));
    }
    let fifo = meta.file_type().is_fifo();
    if !fifo {
        return std::fs::File::open(path).map_err(io);
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let flags = fcntl(f.as_fd(), FcntlArg::F_GETFL).map_err(|e| io(e.into()))?;
    let blocking = OFlag::from_bits_truncate(flags) & !OFlag::O_NONBLOCK;
    fcntl(f.as_fd(), FcntlArg::F_SETFL(blocking)).map_err(|e| io(e.into()))?;
    Ok(f)
}
