//! The reader's side of what the `reader` binary runs: join, take frames until the
//! end of the stream writing each batch out in one write, leave.

use super::output::{write_all, Output};
use super::{leave_after, pause, ReaderConfig, Summary};
use crate::error::{Error, Result};
use crate::layout::Geometry;
use crate::ring::{Batch, Consumer, Notes, Received};
use crate::session::{OpenOptions, Role, Session};
use std::time::Instant;

/// Receives the stream at `cfg.key` into `output` and leaves.
pub fn run_reader(
    cfg: &ReaderConfig,
    output: &mut dyn Output,
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
                waits_for_reader: false,
            })
        }
        Err(e) => Err(leave_after(&mut session, e, note)),
    }
}

fn drain(
    session: &Session,
    cfg: &ReaderConfig,
    output: &mut dyn Output,
    note: &(dyn Fn(String) + Sync),
    progress: &dyn Fn(u64),
) -> Result<(u64, u64, u32)> {
    let notes: Notes<'_> = note;
    // Slow motion (--delay) takes one frame per semop, so each step can be watched.
    let max_batch = if cfg.delay.is_zero() {
        cfg.max_batch
    } else {
        1
    };
    let mut consumer = Consumer::new(session, max_batch, notes);
    consumer.set_spin(cfg.spin);
    let mut batch = Batch::default();
    let mut tagged = Vec::new();
    loop {
        let received = consumer.recv(&mut batch);
        // Deliver what was taken even if a later frame of the batch failed
        // validation; one write per batch, tags and all.
        if cfg.tag {
            tagged.clear();
            for d in &batch.frames {
                tagged.extend_from_slice(format!("[writer {}] ", d.writer).as_bytes());
                tagged.extend_from_slice(&batch.data[d.start..d.end]);
            }
            write_all(output, &tagged)?;
        } else {
            write_all(output, &batch.data)?;
        }
        progress(consumer.totals().1);
        if received? == Received::EndOfStream {
            break;
        }
        if !cfg.delay.is_zero() {
            pause(cfg.delay)?;
        }
    }
    let snap = match session.locked_snapshot()? {
        Some(s) => s,
        None => session.snapshot()?,
    };
    let (frames, bytes) = consumer.totals();
    let lost = snap.lost_writers().ok_or_else(|| Error::Corrupt {
        key: session.key(),
        detail: format!(
            "the header's writer counts are impossible (joined {}, ended {}); \
             delivered {frames} frames ({bytes} bytes), each checked",
            snap.writers_joined, snap.writers_ended
        ),
    })?;
    Ok((frames, bytes, lost))
}
