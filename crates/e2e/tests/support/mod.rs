//! The one harness of the integration tests: every suite in `crates/e2e/tests`
//! starts with `mod support; use support::*;`.
//!
//! - [`keys`]: a key per test from the one allocator (`shm_cli::keys`, range
//!   `0x7e1xxxxx`), and a guard that removes whatever the test left at it;
//! - [`process`]: the real binaries, spawned with their output streamed back, a
//!   deadline on every wait, and every write into a child's stdin done by a feeder
//!   thread with a deadline too, so a stuck child fails the test instead of hanging;
//! - [`wait`]: polling for a state, always bounded;
//! - [`data`]: reproducible test data, temporary files, prefix checks;
//! - [`ipc`]: raw looks at the kernel's objects (semaphore values, header fields);
//! - [`skip`]: a test that cannot run here says so (and fails under `CI=true`);
//! - [`scenario`]: the fault engine shared by `faults.rs` and `chaos.rs`.
//!
//! Cargo builds every suite as its own crate with its own copy of this module, and
//! no suite uses all of it.
#![allow(dead_code, unused_imports)]

pub mod data;
pub mod hostile;
pub mod ipc;
pub mod keys;
pub mod process;
pub mod redact;
pub mod scenario;
pub mod skip;
pub mod tmux;
pub mod wait;

pub use data::*;
pub use ipc::*;
pub use keys::*;
pub use process::*;
pub use skip::*;
pub use wait::*;

pub use nix::sys::signal::Signal;
use std::time::Duration;

/// Default limit for any single wait in a test (a hang check, not a speed limit).
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Waits for things that should happen "at once".
pub const SOON: Duration = Duration::from_secs(10);

/// Waits for long transfers.
pub const LONG: Duration = Duration::from_secs(180);

/// Exit codes, as documented (the binaries' own table).
pub mod code {
    pub use shm_cli::exit::*;
}
