//! Who is in the session: the counters' snapshots (semaphores and header together),
//! the peer table, and whether a process is alive or stopped.
//!
//! The peer table is informational (messages, the inspector): **liveness is decided
//! by the WRITERS and READERS semaphores**, which the kernel corrects when a process
//! dies (`SEM_UNDO`). A pid in the table is only a name to show.

use super::Session;
use crate::error::{Error, Result};
use crate::header::Counters;
use crate::layout::{self, sem, State};
use crate::semaphore::Why;
use std::sync::atomic::Ordering;

/// More joins than any real session sees (a writer id is a `u32`, but a million
/// writers in one session would take hours of joining): above it, a count was
/// written over.
const PLAUSIBLE_JOINS: u32 = 1 << 20;

/// A picture of the session's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// All semaphore values (GETALL), indexed by `layout::sem`.
    pub sems: [u16; sem::COUNT],
    /// Session state.
    pub state: Option<State>,
    /// Writers/readers that ever joined, and those that finished cleanly.
    pub writers_joined: u32,
    /// See `writers_joined`.
    pub readers_joined: u32,
    /// See `writers_joined`.
    pub writers_finished: u32,
    /// See `writers_joined`.
    pub readers_finished: u32,
    /// Writers that published their END or FINAL frame.
    pub writers_ended: u32,
}

impl Snapshot {
    /// Live writers (the kernel lowers the count when one dies).
    pub fn live_writers(&self) -> u32 {
        u32::from(self.sems[usize::from(sem::WRITERS)])
    }
    /// Live readers.
    pub fn live_readers(&self) -> u32 {
        u32::from(self.sems[usize::from(sem::READERS)])
    }
    /// One semaphore's value.
    pub fn sem(&self, member: u16) -> u32 {
        u32::from(self.sems[usize::from(member)])
    }
    /// Writers that are gone without having sent their END frame (died or were
    /// interrupted): joined, minus those that ended, minus those still sending.
    /// `None` when the header's counts are impossible (more writers ended than ever
    /// joined, or more joined than one session could ever hold): a peer wrote over
    /// them, and a count made of them would be a made-up number.
    pub fn lost_writers(&self) -> Option<u32> {
        if self.writers_ended > self.writers_joined || self.writers_joined > PLAUSIBLE_JOINS {
            return None;
        }
        let not_ended = self.writers_joined - self.writers_ended;
        Some(not_ended.saturating_sub(self.writers_still_sending()))
    }
    /// Live writers that have not yet sent their END frame: WRITERS - ENDED, both
    /// kept by the kernel, so a writer that dies after its END leaves no trace.
    pub fn writers_still_sending(&self) -> u32 {
        self.live_writers()
            .saturating_sub(u32::from(self.sems[usize::from(sem::ENDED)]))
    }
    /// Readers that joined and left without reading to the end.
    pub fn lost_readers(&self) -> u32 {
        self.readers_joined
            .saturating_sub(self.readers_finished + self.live_readers())
    }
}

impl Session {
    /// Semaphore values and header counters, read without locking: each value is
    /// exact, the combination only approximately simultaneous.
    pub fn snapshot(&self) -> Result<Snapshot> {
        self.snapshot_why(Why::once(
            "read every count at once: how many slots are free/filled, who is alive",
        ))
    }

    /// [`Session::snapshot`], its `GETALL` narrated with `why`.
    pub(crate) fn snapshot_why(&self, why: Why<'_>) -> Result<Snapshot> {
        let v = self.sems.values_why(why)?;
        let mut sems_arr = [0u16; sem::COUNT];
        for (d, s) in sems_arr.iter_mut().zip(&v) {
            *d = *s;
        }
        let h = self.header();
        let Counters {
            writers_joined,
            readers_joined,
            writers_finished,
            readers_finished,
            writers_ended,
        } = h.counters();
        Ok(Snapshot {
            sems: sems_arr,
            state: h.state(),
            writers_joined,
            readers_joined,
            writers_finished,
            readers_finished,
            writers_ended,
        })
    }

    /// Writes our entry into the peer table, reusing an empty entry or one whose
    /// process no longer exists. Call with both mutexes held.
    pub(super) fn set_peer(&self, role: u32, id: u32) -> Result<()> {
        let r = Ordering::Relaxed;
        for e in &self.header().peers {
            let p = e.pid.load(r);
            if p == 0 || !process_alive(p) {
                e.pid.store(self.pid, r);
                e.role.store(role, r);
                e.id.store(id, r);
                return Ok(());
            }
        }
        Err(Error::Conflict {
            key: self.key,
            detail: format!(
                "the session already has {} live peers, the most it can list",
                layout::MAX_PEERS
            ),
            remove_hint: None,
        })
    }

    /// Clears our entry of the peer table. Call with both mutexes held.
    pub(super) fn clear_peer(&self) {
        let r = Ordering::Relaxed;
        for e in &self.header().peers {
            if e.pid.load(r) == self.pid {
                e.pid.store(0, r);
                e.role.store(0, r);
                e.id.store(0, r);
            }
        }
    }

    /// Pids of live peers with `role` according to the peer table (the table is
    /// informational: the WRITERS/READERS semaphores are the authority on liveness).
    pub fn peer_pids(&self, role: u32) -> Vec<i32> {
        let r = Ordering::Relaxed;
        self.header()
            .peers
            .iter()
            .filter_map(|e| {
                let pid = e.pid.load(r);
                (pid > 0 && pid != self.pid && e.role.load(r) == role && process_alive(pid))
                    .then_some(pid)
            })
            .collect()
    }

    /// Live peers with `role` that are stopped (SIGSTOP, a debugger): alive, so not
    /// dead, but not going to make progress until continued.
    pub fn stopped_peers(&self, role: u32) -> Vec<i32> {
        self.peer_pids(role)
            .into_iter()
            .filter(|&p| process_stopped(p))
            .collect()
    }
}

/// `kill(pid, 0)`: does the process exist? (EPERM means it exists but is not ours.)
pub fn process_alive(pid: i32) -> bool {
    use nix::errno::Errno;
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(Errno::EPERM) => true,
        Err(_) => false,
    }
}

/// Whether the process is stopped (state `T` or `t` in /proc/PID/stat).
pub fn process_stopped(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may contain spaces.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        .is_some_and(|c| c == 'T' || c == 't')
}
