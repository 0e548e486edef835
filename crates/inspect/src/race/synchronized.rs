//! The same frames through the real protocol: [`Producer`] and [`Consumer`] over a
//! [`Session`] with its semaphore set, on the same geometry, checked the same way.
//! This is the control of the experiment: every count but "delivered" must be zero.

use super::tally::{fill_pattern, Checker, Tally};
use super::{check_frames, claim, panicked, RaceConfig};
use shm_common::{Batch, Consumer, Error, OpenOptions, Producer, Received, Result, Role, Session};
use std::time::Instant;

/// Sends the same frames through the real protocol ([`Producer`] and [`Consumer`]
/// over a [`Session`] with its semaphore set) and checks them the same way.
pub fn run_synchronized(cfg: &RaceConfig) -> Result<Tally> {
    check_frames(cfg.frames)?;
    let key = cfg.key;
    let g = cfg.geometry;
    let guard = claim(key)?;
    let quiet = |_: String| {};
    let mut opts = OpenOptions {
        key,
        role: Role::Writer,
        geometry: g,
        mode: 0o600,
        persist: false,
        shared: false,
    };
    let writer = Session::open(&opts, &quiet)?;
    opts.role = Role::Reader;
    let reader = Session::open(&opts, &quiet)?;
    let cap = g.payload_capacity() / 8 * 8;
    let start = Instant::now();
    let deadline = start + cfg.time_limit;
    let frames = cfg.frames;

    let (written, checker) = std::thread::scope(|sc| -> Result<(u64, Checker)> {
        // Each side leaves its session when done or failed, so that the other sees
        // it gone (PEER_GONE) instead of waiting forever.
        let w = sc.spawn(move || -> Result<u64> {
            let mut session = writer;
            let result = (|| -> Result<u64> {
                let mut producer = Producer::new(&session, g.slots, &quiet);
                let batch = u64::from(g.slots);
                let mut store = vec![0u8; cap * g.slots as usize];
                let mut seq = 0u64;
                while seq < frames {
                    if Instant::now() > deadline {
                        break;
                    }
                    let n = batch.min(frames - seq) as usize;
                    for (j, chunk) in store.chunks_exact_mut(cap).take(n).enumerate() {
                        fill_pattern(seq + j as u64, chunk);
                    }
                    let payloads: Vec<&[u8]> = store.chunks_exact(cap).take(n).collect();
                    producer.send(&payloads)?;
                    seq += n as u64;
                }
                producer.finish()?;
                Ok(seq)
            })();
            let _ = session.leave(result.is_ok());
            result
        });
        let mut session = reader;
        let mut checker = Checker::new(frames);
        let result = (|| -> Result<()> {
            let mut consumer = Consumer::new(&session, g.slots, &quiet);
            let mut batch = Batch::default();
            loop {
                let received = consumer.recv(&mut batch);
                for d in &batch.frames {
                    checker.tally.reads += 1;
                    let _ = checker.frame(d.seq, &batch.data[d.start..d.end]);
                }
                match received {
                    Ok(Received::EndOfStream) => return Ok(()),
                    Ok(Received::Frames) => {}
                    // The real reader refuses a corrupt frame; count it as torn.
                    Err(Error::Corrupt { .. }) => {
                        checker.tally.torn += 1;
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
            }
        })();
        let _ = session.leave(result.is_ok());
        let written = w.join().map_err(|_| panicked("synchronized writer"))??;
        result?;
        Ok((written, checker))
    })?;
    drop(guard);
    let cut = written < frames;
    Ok(checker.finish(written, start.elapsed(), cut))
}
