//! System V shared memory, done right: a bounded ring of slots in one segment, kept
//! correct by one semaphore set, for a `writer` and a `reader` process (or many).
//!
//! The protocol is specified byte by byte in `PROTOCOL.md`; this crate is its
//! reference implementation, and nothing else (the command-line tools keep their
//! presentation in their own crates).
//!
//! # The main path
//! A writer opens a [`Session`] (creating the segment and the set if nobody has),
//! sends frames with a [`Producer`], ends its stream, and leaves; a reader opens the
//! same key, takes frames with a [`Consumer`] until the end of the stream, and
//! leaves. The last one out removes both objects.
//!
//! ```
//! use shm_common::{Batch, Consumer, IpcKey, OpenOptions, Producer, Received, Session};
//!
//! # fn main() -> shm_common::Result<()> {
//! // Any key nobody else uses (the doc examples take 0x7e6 + their pid).
//! let key = IpcKey::new(0x7e60_0000 | (std::process::id() & 0xf_ffff) as i32)?;
//! let quiet = |_: String| {};
//!
//! // The writer creates the session, sends two messages and ends its stream.
//! let mut writer = Session::open(&OpenOptions::writer(key), &quiet)?;
//! let mut producer = Producer::new(&writer, 64, &quiet);
//! producer.send(&[b"hello, ".as_slice(), b"reader\n"])?;
//! producer.finish()?;
//!
//! // The reader joins (in a real program: another process) and takes everything.
//! let mut reader = Session::open(&OpenOptions::reader(key), &quiet)?;
//! let mut consumer = Consumer::new(&reader, 64, &quiet);
//! let mut batch = Batch::default();
//! let mut received = Vec::new();
//! loop {
//!     let step = consumer.recv(&mut batch)?;
//!     received.extend_from_slice(&batch.data);
//!     if step == Received::EndOfStream {
//!         break;
//!     }
//! }
//! assert_eq!(received, b"hello, reader\n");
//!
//! // Both leave; the last one out removes the segment and the set.
//! writer.leave(true)?;
//! reader.leave(true)?;
//! # Ok(())
//! # }
//! ```
//!
//! # Reading order
//! The modules, bottom up: `sys` (private: the only code that calls the kernel's
//! System V interface), [`segment`] and [`semaphore`] (safe types over it),
//! [`layout`], [`header`] and [`frame`] (what lives in the segment, and where),
//! [`checksum`], [`session`] (create, join, leave, remove), [`ring`] (the bounded
//! buffer), [`stream`] (what the `writer` and `reader` binaries run). Then
//! [`view`] (a read-only look at whatever is at a key, for the inspector),
//! [`trace`] (`--explain`'s reports) and [`cancel`] (stopping every wait).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod cancel;
pub mod checksum;
pub mod error;
pub mod frame;
pub mod header;
pub mod key;
pub mod layout;
mod objects;
pub mod ring;
pub mod segment;
pub mod semaphore;
pub mod session;
pub mod stream;
mod sys;
mod sysvipc;
pub mod trace;
pub mod view;

pub use error::{Error, ObjectKind, Result};
pub use key::IpcKey;
pub use layout::Geometry;
pub use ring::{Batch, Consumer, Delivered, Producer, Received};
pub use session::{Departure, OpenOptions, Role, Session};
