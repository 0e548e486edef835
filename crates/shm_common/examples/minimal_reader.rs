//! The smallest reader: writes the stream at KEY to standard output, then leaves
//! (removing the segment and the set if it is the last one out). See
//! `minimal_writer.rs`.
#![forbid(unsafe_code)]

use shm_common::{Batch, Consumer, IpcKey, OpenOptions, Received, Session};
use std::io::Write;

fn main() -> shm_common::Result<()> {
    let key = IpcKey::parse(&std::env::args().nth(1).unwrap_or_default())?;
    let note = |m: String| eprintln!("minimal_reader: {m}");
    // Waits for a writer if there is none yet.
    let mut session = Session::open(&OpenOptions::reader(key), &note)?;
    {
        let mut consumer = Consumer::new(&session, 64, &note);
        let mut batch = Batch::default();
        let mut out = std::io::stdout().lock();
        loop {
            // Takes what is published (sleeping while the ring is empty), checks
            // every frame's checksum and order, frees the slots.
            let step = consumer.recv(&mut batch)?;
            out.write_all(&batch.data)
                .and_then(|()| out.flush())
                .map_err(|e| shm_common::Error::Io {
                    what: "writing standard output".into(),
                    source: e,
                })?;
            if step == Received::EndOfStream {
                break;
            }
        }
    }
    session.leave(true)?;
    Ok(())
}
