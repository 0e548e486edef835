//! The smallest writer: sends standard input through the ring at KEY and ends the
//! stream, which then waits in the kernel for a reader (the handout's exercise,
//! done right).
//!
//! ```text
//! cargo run -p shm_common --example minimal_writer -- 0x1234 < notes.txt
//! cargo run -p shm_common --example minimal_reader -- 0x1234 > copy.txt
//! ```
#![forbid(unsafe_code)]

use shm_common::{IpcKey, OpenOptions, Producer, Session};
use std::io::Read;

fn main() -> shm_common::Result<()> {
    let key = IpcKey::parse(&std::env::args().nth(1).unwrap_or_default())?;
    let note = |m: String| eprintln!("minimal_writer: {m}");
    // Create the segment and the semaphore set (or join them); `persist` lets the
    // stream outlive us until a reader comes.
    let options = OpenOptions {
        persist: true,
        ..OpenOptions::writer(key)
    };
    let mut session = Session::open(&options, &note)?;
    {
        let mut producer = Producer::new(&session, 64, &note);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = std::io::stdin()
                .read(&mut buf)
                .map_err(|e| shm_common::Error::Io {
                    what: "reading standard input".into(),
                    source: e,
                })?;
            if n == 0 {
                break;
            }
            // Waits for free slots when the ring is full (a reader frees them).
            producer.send_bytes(&buf[..n])?;
        }
        // The end of our stream: an END frame, or FINAL if we are the last writer.
        producer.finish()?;
    }
    session.leave(true)?;
    Ok(())
}
