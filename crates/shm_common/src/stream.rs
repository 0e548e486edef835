//! What the `writer` and `reader` binaries run: input to ring, ring to output.
//!
//! The binaries only parse arguments and print; everything here is testable
//! in-process.

use crate::error::{Error, Result};
use crate::key::IpcKey;
use crate::layout::Geometry;
use crate::ring::{Batch, Consumer, Notes, Producer, Received};
use crate::session::{Departure, OpenOptions, Role, Session};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// What a finished run did, for the one-line summary.
#[derive(Debug, Clone)]
pub struct Summary {
    /// "writer" or "reader".
    pub role: &'static str,
    /// Payload bytes moved.
    pub bytes: u64,
    /// Data frames moved.
    pub frames: u64,
    /// Wall-clock time from joining to leaving.
    pub elapsed: Duration,
    /// Whether we removed the objects on the way out.
    pub departure: Departure,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.bytes as f64 / secs / 1e6
        } else {
            0.0
        };
        write!(
            f,
            "{}: {} bytes, {} messages in {:.3} s ({:.1} MB/s)",
            self.role, self.bytes, self.frames, secs, rate
        )?;
        match self.departure {
            Departure::Removed => write!(f, "; removed the segment and semaphore set"),
            Departure::Left => write!(f, "; left the objects to the peer that remains"),
            Departure::AlreadyGone => Ok(()),
        }
    }
}

/// What the writer reads: anything readable with a file descriptor, so that it can
/// wait for input with `poll(2)` and still notice a Ctrl-C. (A plain blocking
/// `read(2)` would not: the `ctrlc` crate installs its handlers with `SA_RESTART`,
/// so the kernel restarts the read and the flag would never be looked at.)
pub trait Input: Read + AsFd {}
impl<T: Read + AsFd> Input for T {}

/// Waits until `input` has data or end of file, giving up on a cancel request.
fn wait_readable(input: &dyn Input) -> Result<()> {
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
fn readable_now(input: &dyn Input) -> Result<bool> {
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

/// Writer settings (from the command line).
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// The key.
    pub key: IpcKey,
    /// Geometry if we create the session.
    pub geometry: Geometry,
    /// Mode bits for new objects.
    pub mode: u32,
    /// Finish without waiting for a reader to come.
    pub persist: bool,
    /// One frame per line; shareable with other `--lines` writers.
    pub lines: bool,
    /// Most frames per semop.
    pub max_batch: u32,
}

/// Reader settings.
#[derive(Debug, Clone)]
pub struct ReaderConfig {
    /// The key.
    pub key: IpcKey,
    /// Prefix each message with `[writer N] `.
    pub tag: bool,
    /// Most frames per semop.
    pub max_batch: u32,
    /// Spin this long watching for data before sleeping (opt-in; `None`: never).
    pub spin: Option<Duration>,
}

/// Leaves after a failure, keeping the original error (a failure to leave is only
/// worth a note: the kernel's SEM_UNDO un-counts us at exit anyway).
///
/// A session found corrupt is removed by whoever finds it (nobody can complete it,
/// and the objects prove they are ours: our magic, our attach); a session whose set
/// was removed from outside loses its segment too, so nothing is left at the key.
fn leave_after(session: &mut Session, err: Error, note: &dyn Fn(String)) -> Error {
    let key = session.key();
    if matches!(err, Error::Corrupt { .. }) {
        match session.remove_broken() {
            Ok(true) => note(format!(
                "removed the corrupt session's segment and semaphore set at key {key}"
            )),
            Ok(false) => {}
            Err(e) => note(format!("could not remove the corrupt session: {e}")),
        }
        return err;
    }
    match session.leave(false) {
        Ok(Departure::Removed) => note(format!(
            "removed the segment and semaphore set at key {key}"
        )),
        Ok(Departure::AlreadyGone) => {
            if let Ok(true) = session.remove_orphaned_segment() {
                note(format!(
                    "the semaphore set at key {key} was removed from outside; removed its segment too"
                ));
            }
        }
        Ok(Departure::Left) => {}
        Err(e) => note(format!("could not leave cleanly: {e}")),
    }
    err
}

/// Sends `input` to the ring at `cfg.key` and leaves. `note` gets user notes.
pub fn run_writer(
    cfg: &WriterConfig,
    input: &mut dyn Input,
    note: &(dyn Fn(String) + Sync),
    progress: &dyn Fn(u64),
) -> Result<Summary> {
    let opts = OpenOptions {
        key: cfg.key,
        role: Role::Writer,
        geometry: cfg.geometry,
        mode: cfg.mode,
        persist: cfg.persist,
        shared: cfg.lines,
    };
    let mut session = Session::open(&opts, note)?;
    let g = session.geometry();
    if session.created() {
        note(format!(
            "created key {} (shmid {}, semid {}): {} slots of {} bytes",
            cfg.key,
            session.segment().id(),
            session.semaphores().id(),
            g.slots,
            g.slot_size
        ));
    } else {
        note(format!(
            "joined key {} as writer {} (shmid {}, semid {})",
            cfg.key,
            session.id(),
            session.segment().id(),
            session.semaphores().id()
        ));
    }
    let start = Instant::now();
    let result = pump_input(&session, cfg, input, note, progress);
    match result {
        Ok((frames, bytes)) => {
            let departure = session.leave(true)?;
            if departure == Departure::Left && session.persist() {
                note(format!(
                    "the stream stays at key {} until a reader takes it (`reader --key {}`)",
                    cfg.key, cfg.key
                ));
            }
            Ok(Summary {
                role: "writer",
                bytes,
                frames,
                elapsed: start.elapsed(),
                departure,
            })
        }
        Err(e) => Err(leave_after(&mut session, e, note)),
    }
}

/// The writer's main loop; returns (frames, bytes) sent.
fn pump_input(
    session: &Session,
    cfg: &WriterConfig,
    input: &mut dyn Input,
    note: &(dyn Fn(String) + Sync),
    progress: &dyn Fn(u64),
) -> Result<(u64, u64)> {
    let notes: Notes<'_> = note;
    let mut producer = Producer::new(session, cfg.max_batch, notes);
    if !cfg.lines && is_regular_file(input) {
        send_file(&mut producer, input, cfg, progress)?;
        return finish_stream(session, cfg, producer, note);
    }
    let cap = producer.capacity();
    widen_pipe(input);
    // One read fills up to a batch of slots; more gains nothing, less costs syscalls.
    let chunk = (cap * cfg.max_batch as usize).min(256 << 10).max(cap);
    let mut buf = vec![0u8; chunk];
    // Bytes kept at the front of buf for the next round: with --lines an unfinished
    // line; in a byte stream the tail of a frame that more input is about to fill.
    let mut carry = 0usize;
    loop {
        if crate::cancel::requested() {
            return Err(Error::Interrupted {
                detail: format!("after sending {} bytes", producer.totals().1),
            });
        }
        if !cfg.lines && carry > 0 && !readable_now(input)? {
            // No more input right now: the partial frame goes as it is, before we
            // sleep in poll (an interactive line must not wait for the next one).
            producer.send_bytes(&buf[..carry])?;
            progress(producer.totals().1);
            carry = 0;
        }
        wait_readable(input)?;
        let n = match input.read(&mut buf[carry..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Io {
                    what: "reading the input".into(),
                    source: e,
                })
            }
        };
        if n == 0 {
            // A signal that arrived while the input ended must not be lost.
            if crate::cancel::requested() {
                return Err(Error::Interrupted {
                    detail: format!("after sending {} bytes", producer.totals().1),
                });
            }
            if carry > 0 {
                producer.send_bytes(&buf[..carry])?;
            }
            break;
        }
        if !cfg.lines {
            // Byte stream: frame boundaries mean nothing (PROTOCOL.md §5), so publish
            // whole frames and keep a partial one for the next read while more input
            // is already waiting. A pipe's reads come in whatever sizes the kernel
            // likes; this way `cat f | writer` fills its slots like `writer f` does.
            let filled = carry + n;
            let whole = filled / cap * cap;
            producer.send_bytes(&buf[..whole])?;
            progress(producer.totals().1);
            buf.copy_within(whole..filled, 0);
            carry = filled - whole;
            continue;
        }
        let filled = carry + n;
        let complete = match buf[..filled].iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            // No newline yet: keep accumulating, unless the line already fills a slot.
            None if filled >= cap || filled == buf.len() => filled,
            None => {
                carry = filled;
                continue;
            }
        };
        let frames: Vec<&[u8]> = buf[..complete]
            .split_inclusive(|&b| b == b'\n')
            .flat_map(|l| l.chunks(cap))
            .collect();
        producer.send(&frames)?;
        progress(producer.totals().1);
        buf.copy_within(complete..filled, 0);
        carry = filled - complete;
    }
    finish_stream(session, cfg, producer, note)
}

/// A pipe holds 64 KiB by default: one frame. Asking for 1 MiB (the unprivileged
/// maximum, `/proc/sys/fs/pipe-max-size`) lets the process feeding us run ahead, so
/// that a read finds whole frames waiting instead of one page. A refusal changes
/// nothing but speed.
fn widen_pipe(input: &dyn Input) {
    use nix::fcntl::{fcntl, FcntlArg};
    let is_fifo = nix::sys::stat::fstat(input.as_fd())
        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO);
    if is_fifo {
        let _ = fcntl(input.as_fd(), FcntlArg::F_SETPIPE_SZ(1 << 20));
    }
}

/// Whether the input is a regular file, whose reads never block for long: only then
/// may the writer read straight into slots while holding the write mutex.
fn is_regular_file(input: &dyn Input) -> bool {
    nix::sys::stat::fstat(input.as_fd()).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG)
}

/// A regular file in byte-stream mode: each slot is filled by one `read(2)` straight
/// from the file, a batch of slots per `semop` (capped at 512 KiB, like the reader's).
fn send_file(
    producer: &mut Producer<'_>,
    input: &dyn Input,
    cfg: &WriterConfig,
    progress: &dyn Fn(u64),
) -> Result<()> {
    let cap = producer.capacity();
    let slot = cap + crate::frame::FRAME_HEADER_SIZE;
    // A batch: at most 512 KiB of slots (like the reader's), the batch limit, the
    // ring, and what is left of the file (its size says how many slots the rest
    // needs; a file that changes size meanwhile is read as far as it goes, like cat
    // does: a truncated one ends as a shorter stream).
    let most = (crate::ring::MAX_BATCH_BYTES / slot)
        .clamp(1, cfg.max_batch as usize)
        .min(producer.ring_slots() as usize) as u64;
    loop {
        if crate::cancel::requested() {
            return Err(Error::Interrupted {
                detail: format!("after sending {} bytes", producer.totals().1),
            });
        }
        let want = match bytes_left(input) {
            Some(0) => return Ok(()),
            Some(left) => left.div_ceil(cap as u64).clamp(1, most),
            None => most,
        };
        if producer.send_from_fd(input.as_fd(), want as u32)? == 0 {
            return Ok(());
        }
        progress(producer.totals().1);
    }
}

/// Bytes between the file's current position and its end, if it can tell.
fn bytes_left(input: &dyn Input) -> Option<u64> {
    use nix::unistd::{lseek, Whence};
    let size = nix::sys::stat::fstat(input.as_fd()).ok()?.st_size;
    let pos = lseek(input.as_fd(), 0, Whence::SeekCur).ok()?;
    u64::try_from(size.saturating_sub(pos)).ok()
}

/// After the last data frame: END or FINAL, then (without --persist) wait until a
/// reader has joined. Returns (frames, bytes) sent.
fn finish_stream(
    session: &Session,
    cfg: &WriterConfig,
    mut producer: Producer<'_>,
    note: &(dyn Fn(String) + Sync),
) -> Result<(u64, u64)> {
    producer.finish()?;
    // Without --persist, a writer that finishes before any reader came waits for one,
    // so that `writer` + `reader` in either order always delivers. A reader has come
    // if one is counted, ever joined, finished, or took frames: any of them, once
    // seen (a header counter can be scribbled on; the semaphores and the sticky flag
    // keep this from waiting for a reader that has already come and gone).
    let mut said = false;
    let mut filled_after_end = None;
    loop {
        let snap = producer.check_peers_now()?;
        let filled = snap.sem(crate::layout::sem::FILLED);
        let took = filled_after_end.is_some_and(|f| filled < f);
        filled_after_end.get_or_insert(filled);
        let reader_came =
            snap.readers_joined > 0 || snap.readers_finished > 0 || snap.live_readers() > 0 || took;
        if session.persist() || reader_came {
            break;
        }
        if !said {
            note(format!(
                "all sent; waiting for a reader on key {} to take it (or use --persist)",
                cfg.key
            ));
            said = true;
        }
        if crate::cancel::requested() {
            return Err(Error::Interrupted {
                detail: "while waiting for a reader; the stream was never read".into(),
            });
        }
        std::thread::sleep(crate::cancel::POLL);
    }
    Ok(producer.totals())
}

/// Receives the stream at `cfg.key` into `output` and leaves.
pub fn run_reader(
    cfg: &ReaderConfig,
    output: &mut dyn Write,
    note: &(dyn Fn(String) + Sync),
    progress: &dyn Fn(u64),
) -> Result<Summary> {
    let opts = OpenOptions {
        key: cfg.key,
        role: Role::Reader,
        geometry: Geometry {
            slots: 1,
            slot_size: 64,
        },
        mode: 0o600,
        persist: false,
        shared: false,
    };
    let mut session = Session::open(&opts, note)?;
    note(format!(
        "joined key {} as reader (shmid {}, semid {})",
        cfg.key,
        session.segment().id(),
        session.semaphores().id()
    ));
    let start = Instant::now();
    let result = drain(&session, cfg, output, note, progress);
    match result {
        Ok((frames, bytes, lost_writers)) => {
            let departure = session.leave(true)?;
            if lost_writers > 0 {
                return Err(Error::PeerGone {
                    key: cfg.key,
                    detail: format!("{lost_writers} writer(s) died before finishing; delivered {frames} frames ({bytes} bytes) that they had published, each complete"),
                });
            }
            Ok(Summary {
                role: "reader",
                bytes,
                frames,
                elapsed: start.elapsed(),
                departure,
            })
        }
        Err(e) => Err(leave_after(&mut session, e, note)),
    }
}

fn drain(
    session: &Session,
    cfg: &ReaderConfig,
    output: &mut dyn Write,
    note: &(dyn Fn(String) + Sync),
    progress: &dyn Fn(u64),
) -> Result<(u64, u64, u32)> {
    let notes: Notes<'_> = note;
    let mut consumer = Consumer::new(session, cfg.max_batch, notes);
    consumer.set_spin(cfg.spin);
    let mut batch = Batch::default();
    let io_err = |e: std::io::Error| Error::Io {
        what: "writing the output".into(),
        source: e,
    };
    loop {
        let received = consumer.recv(&mut batch);
        // Deliver what was taken even if a later frame of the batch failed validation.
        if cfg.tag {
            for d in &batch.frames {
                write!(output, "[writer {}] ", d.writer).map_err(io_err)?;
                output
                    .write_all(&batch.data[d.start..d.end])
                    .map_err(io_err)?;
            }
        } else {
            output.write_all(&batch.data).map_err(io_err)?;
        }
        output.flush().map_err(io_err)?;
        progress(consumer.totals().1);
        if received? == Received::EndOfStream {
            break;
        }
    }
    let snap = match session.locked_snapshot()? {
        Some(s) => s,
        None => session.snapshot()?,
    };
    let (frames, bytes) = consumer.totals();
    Ok((frames, bytes, snap.lost_writers()))
}
