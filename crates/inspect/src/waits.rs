//! The sentences a student needs to read the numbers: who sleeps on what, who
//! holds a mutex, and who is stopped.

use shm_common::layout::sem;
use shm_common::view::{role_name, Report, SemMember};

/// Our 9 members, when the set at the key is ours.
pub fn members(r: &Report) -> Option<&[SemMember]> {
    let set = r.semset.as_ref()?;
    (set.members.len() == sem::COUNT).then_some(set.members.as_slice())
}

/// Who sleeps on FREE (writers: the ring is full) and on FILLED (readers: the ring
/// is empty).
pub fn sleep_notes(r: &Report) -> Vec<String> {
    let Some(m) = members(r) else {
        return Vec::new();
    };
    let (free, filled) = (&m[usize::from(sem::FREE)], &m[usize::from(sem::FILLED)]);
    let mut notes = Vec::new();
    if free.ncnt > 0 {
        notes.push(format!(
            "writer blocked: {} process(es) sleep in semop until FREE grows (the ring is full; FREE = {})",
            free.ncnt, free.value
        ));
    }
    if filled.ncnt > 0 {
        notes.push(format!(
            "reader blocked: {} process(es) sleep in semop until FILLED grows (the ring is empty)",
            filled.ncnt
        ));
    }
    notes
}

/// The pid holding `mutex` (WRITE_MUTEX or READ_MUTEX): the last process to change
/// it, while its value is 0. `None` when it is free (or the set is not ours).
pub fn mutex_holder(r: &Report, mutex: u16) -> Option<i32> {
    let m = &members(r)?[usize::from(mutex)];
    (m.value == 0).then_some(m.pid)
}

/// `WRITE_MUTEX is held by pid N ...` for each held mutex.
pub fn mutex_notes(r: &Report) -> Vec<String> {
    [sem::WRITE_MUTEX, sem::READ_MUTEX]
        .into_iter()
        .filter_map(|mutex| {
            mutex_holder(r, mutex).map(|pid| {
                format!(
                    "{} is held by pid {pid} (the last to change it), mid-batch",
                    sem::NAMES[usize::from(mutex)]
                )
            })
        })
        .collect()
}

/// The role the peer table gives `pid` (`writer`, `reader`), if it is there, and
/// whether that process is stopped.
pub fn role_of(r: &Report, pid: i32) -> Option<(String, bool)> {
    let h = r.header.as_ref()?;
    let p = h.peers.iter().find(|p| p.pid == pid)?;
    Some((role_name(p.role), p.stopped))
}

/// One sentence per stopped peer: it makes no progress, and how to resume it.
pub fn stopped_notes(r: &Report) -> Vec<String> {
    let Some(h) = &r.header else {
        return Vec::new();
    };
    h.peers
        .iter()
        .filter(|p| p.alive && p.stopped)
        .map(|p| {
            format!(
                "{} pid {} is stopped (Ctrl-Z or SIGSTOP): it makes no progress until continued (`fg` in its terminal, or `kill -CONT {}`)",
                role_name(p.role),
                p.pid,
                p.pid
            )
        })
        .collect()
}
