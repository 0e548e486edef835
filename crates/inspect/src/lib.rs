//! The inspector's presentation and the race demonstration, for the `shm-inspect`
//! and `shm-race` binaries. What they look at comes from the protocol library
//! (`shm_common::view`, and the real ring for the race demo's synchronised run);
//! how it is shown is here.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod board;
pub mod cells;
#[cfg(test)]
mod fixtures;
pub mod json;
pub mod leftovers;
pub mod page;
pub mod plain;
pub mod race;
pub mod terminal;
pub mod waits;
pub mod watch;

use shm_common::view::{Inspector, Peer, Report};
use shm_common::IpcKey;

/// One look, with the sentences that say who waits on what, who is stopped, and
/// whether anybody can still be using the objects.
pub fn look(inspector: &mut Inspector) -> Report {
    let mut r = inspector.look();
    annotate(&mut r);
    r
}

/// Adds the inspector's own notes to a report the library made: who sleeps on
/// what, who holds a mutex, who is stopped, and the leftover verdict (abandoned,
/// or a finished stream waiting for its reader).
pub fn annotate(r: &mut Report) {
    let mut notes = waits::sleep_notes(r);
    notes.extend(waits::mutex_notes(r));
    notes.extend(waits::stopped_notes(r));
    notes.extend(leftovers::judge(r).map(|l| l.note(r.key)));
    r.notes.extend(notes);
}

/// Looks at `key` once (stat before attach, detach after).
pub fn look_once(key: IpcKey) -> Report {
    look(&mut Inspector::new(key, false))
}

/// A peer's state in one word, as every rendering shows it: `running` (alive and
/// not stopped: it may be asleep in `semop`, which is normal), `stopped` (Ctrl-Z,
/// SIGSTOP, a debugger: no progress until continued) or `gone`.
pub fn peer_state(p: &Peer) -> &'static str {
    if !p.alive {
        "gone"
    } else if p.stopped {
        "stopped"
    } else {
        "running"
    }
}
