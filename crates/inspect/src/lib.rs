//! The inspector's presentation and the race demonstration, for the `shm-inspect`
//! and `shm-race` binaries. What they look at comes from the protocol library
//! (`shm_common::view`, and the real ring for the race demo's synchronised run);
//! how it is shown is here.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod json;
pub mod page;
pub mod plain;
pub mod race;
pub mod waits;
pub mod watch;

use shm_common::view::{Inspector, Report};
use shm_common::IpcKey;

/// One look, with the sentences that say who waits on what.
pub fn look(inspector: &mut Inspector) -> Report {
    let mut r = inspector.look();
    waits::explain_waits(&mut r);
    r
}

/// Looks at `key` once (stat before attach, detach after).
pub fn look_once(key: IpcKey) -> Report {
    look(&mut Inspector::new(key, false))
}
