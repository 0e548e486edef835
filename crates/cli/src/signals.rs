//! Ctrl-C and friends: SIGINT, SIGTERM and SIGHUP (the `ctrlc` crate's
//! `termination` feature) ask every wait in the library to give up
//! ([`shm_common::cancel`]), so the process leaves its session cleanly within
//! [`shm_common::cancel::POLL`] instead of dying mid-step.

use shm_common::{Error, Result};

/// Installs the handler (once per process).
pub fn install() -> Result<()> {
    ctrlc::set_handler(shm_common::cancel::request).map_err(|e| Error::Io {
        what: "installing the signal handler".into(),
        source: std::io::Error::other(e.to_string()),
    })
}
