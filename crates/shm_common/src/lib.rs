//! System V shared memory, done right: a bounded ring of slots in one segment, kept
//! correct by one semaphore set, for a `writer` and a `reader` process (or many).
//!
//! Start with `PROTOCOL.md` for the byte layout and the operations, then read the
//! modules in this order: [`sys`] (the only code that calls the kernel), [`segment`]
//! and [`semaphore`] (safe types over it), [`layout`] and [`frame`] (what lives in
//! the segment), [`session`] (create, join, leave, remove) and [`ring`] (the bounded
//! buffer), then [`stream`] (what the binaries run).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod cancel;
pub mod checksum;
pub mod cli;
pub mod error;
pub mod frame;
pub mod inspect;
pub mod key;
pub mod layout;
mod objects;
pub mod race;
pub mod ring;
pub mod segment;
pub mod semaphore;
pub mod session;
pub mod stream;
pub mod sys;
pub mod trace;

pub use error::{exit, Error, Result};
pub use key::IpcKey;
pub use layout::Geometry;
pub use session::{Role, Session};
