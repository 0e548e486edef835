//! The sentences a student needs to read the numbers: who sleeps on what, and
//! who holds a mutex.

use shm_common::layout::sem;
use shm_common::view::Report;

/// Adds the sentences a student needs to read the numbers: who sleeps on what.
pub fn explain_waits(r: &mut Report) {
    let Some(set) = &r.semset else { return };
    if set.members.len() != sem::COUNT {
        return;
    }
    let m = |i: u16| &set.members[usize::from(i)];
    let mut notes = Vec::new();
    if m(sem::FREE).ncnt > 0 {
        notes.push(format!(
            "writer blocked: {} process(es) sleep in semop until FREE grows (the ring is full; FREE = {})",
            m(sem::FREE).ncnt,
            m(sem::FREE).value
        ));
    }
    if m(sem::FILLED).ncnt > 0 {
        notes.push(format!(
            "reader blocked: {} process(es) sleep in semop until FILLED grows (the ring is empty)",
            m(sem::FILLED).ncnt
        ));
    }
    for mutex in [sem::WRITE_MUTEX, sem::READ_MUTEX] {
        if m(mutex).value == 0 {
            notes.push(format!(
                "{} is held by pid {} (the last to change it), mid-batch",
                sem::NAMES[usize::from(mutex)],
                m(mutex).pid
            ));
        }
    }
    r.notes.extend(notes);
}
