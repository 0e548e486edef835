//! The writer's side of what the `writer` binary runs: join or create, send the
//! input (a regular file slot by slot with `read(2)`, anything else through a
//! buffer, `--lines` line by line), end the stream, wait for a reader, leave.

use super::input::{
    bytes_left, is_regular_file, pipe_ready, readable_now, wait_readable, widen_pipe, Input,
};
use super::{leave_after, pause, Summary, WriterConfig};
use crate::error::{Error, Result};
use crate::ring::{Notes, Producer};
use crate::session::{Departure, OpenOptions, Role, Session};
use std::time::Instant;

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
    if !session.created() && cfg.persist != session.persist() {
        // PERSIST is the session's flag, set by its creator (PROTOCOL.md §11).
        note(format!(
            "the session at key {} was created {} --persist, and that is what counts: this writer {}",
            cfg.key,
            if session.persist() { "with" } else { "without" },
            if session.persist() {
                "finishes without waiting for a reader"
            } else {
                "waits for a reader at the end like its creator"
            }
        ));
    }
    let start = Instant::now();
    let result = pump_input(&session, cfg, input, note, progress);
    match result {
        Ok(Sent {
            frames,
            bytes,
            reader_came,
        }) => {
            let departure = session.leave(true)?;
            let waits_for_reader = departure == Departure::Left && !reader_came;
            if waits_for_reader {
                note(format!(
                    "the stream stays at key {} until a reader takes it (run `reader --key {}`)",
                    cfg.key, cfg.key
                ));
            }
            Ok(Summary {
                role: "writer",
                bytes,
                frames,
                elapsed: start.elapsed(),
                departure,
                waits_for_reader,
            })
        }
        Err(e) => Err(leave_after(&mut session, e, note)),
    }
}

/// What the writer's main loop sent.
struct Sent {
    frames: u64,
    bytes: u64,
    /// Whether a reader had come by the time the stream ended.
    reader_came: bool,
}

/// The writer's main loop.
fn pump_input(
    session: &Session,
    cfg: &WriterConfig,
    input: &mut dyn Input,
    note: &(dyn Fn(String) + Sync),
    progress: &dyn Fn(u64),
) -> Result<Sent> {
    let notes: Notes<'_> = note;
    // Slow motion (--delay) moves one frame per semop, so each step can be watched.
    let max_batch = if cfg.delay.is_zero() {
        cfg.max_batch
    } else {
        1
    };
    let mut producer = Producer::new(session, max_batch, notes);
    if !cfg.lines && is_regular_file(input) {
        send_file(&mut producer, input, cfg, max_batch, progress)?;
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
            send_bytes(&mut producer, &buf[..carry], cfg)?;
            progress(producer.totals().1);
            carry = 0;
        }
        wait_readable(input)?;
        // A pipe that holds whole slots' worth is read straight into the slots, as a
        // regular file is: one copy (the kernel's) instead of two. A frame begun in
        // `buf` is completed first, with a read of exactly what it lacks.
        let mut room = buf.len();
        if !cfg.lines && cfg.delay.is_zero() {
            match pipe_ready(input) {
                Some(ready) if carry == 0 && ready >= cap => {
                    let want = (ready / cap).min(max_batch as usize) as u32;
                    if producer.send_from_fd(input.as_fd(), want)? == 0 {
                        break;
                    }
                    progress(producer.totals().1);
                    continue;
                }
                Some(ready) if carry > 0 && carry + ready >= cap => room = cap,
                _ => {}
            }
        }
        let n = match input.read(&mut buf[carry..room]) {
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
                send_bytes(&mut producer, &buf[..carry], cfg)?;
            }
            break;
        }
        if !cfg.lines {
            // Byte stream: frame boundaries mean nothing (PROTOCOL.md §14), so publish
            // whole frames and keep a partial one for the next read while more input
            // is already waiting. A pipe's reads come in whatever sizes the kernel
            // likes; this way `cat f | writer` fills its slots like `writer f` does.
            let filled = carry + n;
            let whole = filled / cap * cap;
            send_bytes(&mut producer, &buf[..whole], cfg)?;
            progress(producer.totals().1);
            buf.copy_within(whole..filled, 0);
            carry = filled - whole;
            continue;
        }
        let filled = carry + n;
        let complete = match buf[..filled].iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            // No newline yet: keep accumulating; once the line fills a slot or more,
            // send its whole slot-sized pieces and keep the rest, so a long line is
            // cut every `cap` bytes from its start, whatever sizes the reads had.
            None if filled >= cap => filled / cap * cap,
            None => {
                carry = filled;
                continue;
            }
        };
        let frames: Vec<&[u8]> = buf[..complete]
            .split_inclusive(|&b| b == b'\n')
            .flat_map(|l| l.chunks(cap))
            .collect();
        send_frames(&mut producer, &frames, cfg)?;
        progress(producer.totals().1);
        buf.copy_within(complete..filled, 0);
        carry = filled - complete;
    }
    finish_stream(session, cfg, producer, note)
}

/// Publishes `frames`; in slow motion one at a time with a pause after each (taken
/// outside the critical section: the mutex is free while we sleep).
fn send_frames(producer: &mut Producer<'_>, frames: &[&[u8]], cfg: &WriterConfig) -> Result<()> {
    if cfg.delay.is_zero() {
        return producer.send(frames);
    }
    for frame in frames {
        producer.send(std::slice::from_ref(frame))?;
        pause(cfg.delay)?;
    }
    Ok(())
}

/// [`send_frames`] for a byte stream cut into slot-sized frames.
fn send_bytes(producer: &mut Producer<'_>, data: &[u8], cfg: &WriterConfig) -> Result<()> {
    let frames: Vec<&[u8]> = data.chunks(producer.capacity()).collect();
    send_frames(producer, &frames, cfg)
}

/// A regular file in byte-stream mode: each slot is filled by one `read(2)` straight
/// from the file, a batch of slots per `semop` (capped at 512 KiB, like the reader's).
fn send_file(
    producer: &mut Producer<'_>,
    input: &dyn Input,
    cfg: &WriterConfig,
    max_batch: u32,
    progress: &dyn Fn(u64),
) -> Result<()> {
    let cap = producer.capacity();
    let slot = cap + crate::frame::FRAME_HEADER_SIZE;
    // A batch: at most 512 KiB of slots (like the reader's), the batch limit, the
    // ring, and what is left of the file (its size says how many slots the rest
    // needs; a file that changes size meanwhile is read as far as it goes, like cat
    // does: a truncated one ends as a shorter stream).
    let most = (crate::ring::MAX_BATCH_BYTES / slot)
        .clamp(1, max_batch as usize)
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
        if !cfg.delay.is_zero() {
            pause(cfg.delay)?;
        }
    }
}

/// After the last data frame: END or FINAL, then (without --persist) wait until a
/// reader has joined.
fn finish_stream(
    session: &Session,
    cfg: &WriterConfig,
    mut producer: Producer<'_>,
    note: &(dyn Fn(String) + Sync),
) -> Result<Sent> {
    producer.finish()?;
    // Without --persist, a writer that finishes before any reader came waits for one,
    // so that `writer` + `reader` in either order always delivers. A reader has come
    // if one is counted, ever joined, finished, or took frames: any of them, once
    // seen (a header counter can be scribbled on; the semaphores and the sticky flag
    // keep this from waiting for a reader that has already come and gone).
    let mut said = false;
    let mut filled_after_end = None;
    let reader_came = loop {
        let snap = producer.check_peers_now()?;
        let filled = snap.sem(crate::layout::sem::FILLED);
        let took = filled_after_end.is_some_and(|f| filled < f);
        filled_after_end.get_or_insert(filled);
        let reader_came =
            snap.readers_joined > 0 || snap.readers_finished > 0 || snap.live_readers() > 0 || took;
        if reader_came {
            session.mark_reader_came();
        }
        if session.persist() || reader_came {
            break reader_came;
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
    };
    let (frames, bytes) = producer.totals();
    Ok(Sent {
        frames,
        bytes,
        reader_came,
    })
}
