//! Whether anybody can still be using what is at the key: a crash's leftovers are
//! named with the command that removes them, and a finished stream kept for its
//! reader is said to be one (it is not a leftover).
//!
//! Judged from one [`Report`] only, with the same rules as the library's own
//! clean-up (`writer --remove`, `shm_common::session::remove_session`): liveness is
//! the WRITERS and READERS semaphores (the kernel lowers them when a peer dies,
//! `SEM_UNDO`), never the peer table. A creator or a joiner between two of its
//! steps must not be called abandoned, so every rule also needs what such a process
//! would show: an attach (`nattch`), a held mutex, or a set younger than
//! [`INIT_GRACE`] that was never operated on.

use shm_common::layout::{self, sem, State};
use shm_common::session::INIT_GRACE;
use shm_common::view::{Report, Verdict};
use shm_common::IpcKey;

/// What the objects at a key are, when nobody is using them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leftover {
    /// Nobody uses them and nobody will: they only take memory and a key.
    Abandoned {
        /// Why nobody can be using them, for the student.
        why: &'static str,
        /// The segment's id, if there is one.
        shmid: Option<i32>,
        /// The set's id, if there is one.
        semid: Option<i32>,
    },
    /// A persisted stream that its writer finished, kept until a reader takes it.
    WaitsForReader,
}

impl Leftover {
    /// `ipcrm -m SHMID -s SEMID`, for what is there.
    pub fn ipcrm(&self) -> Option<String> {
        let Leftover::Abandoned { shmid, semid, .. } = self else {
            return None;
        };
        let mut cmd = String::from("ipcrm");
        if let Some(id) = shmid {
            cmd += &format!(" -m {id}");
        }
        if let Some(id) = semid {
            cmd += &format!(" -s {id}");
        }
        Some(cmd)
    }

    /// The commands that remove abandoned objects: `ipcrm` with their ids, and
    /// our own `writer --remove`, which checks first that they are ours and unused.
    pub fn commands(&self, key: IpcKey) -> Vec<String> {
        self.ipcrm()
            .into_iter()
            .chain(std::iter::once(format!("writer --remove --key {key}")))
            .collect()
    }

    /// The sentence every rendering shows.
    pub fn note(&self, key: IpcKey) -> String {
        match self {
            Leftover::Abandoned { why, .. } => {
                let cmds = self.commands(key);
                format!(
                    "abandoned: nobody uses these objects ({why}); remove them with: {} (or: {})",
                    cmds[0],
                    cmds[1..].join(", ")
                )
            }
            Leftover::WaitsForReader => format!(
                "a finished stream waits for its reader: `reader --key {key}` takes it, then removes the objects"
            ),
        }
    }
}

/// Judges what is at the key (see the module's rules). `None`: in use, being
/// created or removed, nothing there, or not ours.
pub fn judge(r: &Report) -> Option<Leftover> {
    if matches!(
        r.verdict,
        Verdict::Nothing | Verdict::Foreign | Verdict::Unreadable
    ) {
        return None;
    }
    let now = now_secs();
    let older_than_grace = |t: i64| now.saturating_sub(t) >= INIT_GRACE.as_secs() as i64;
    let shmid = r.segment.as_ref().map(|s| s.shmid);
    let semid = r.semset.as_ref().map(|s| s.semid);
    let abandoned = |why| Some(Leftover::Abandoned { why, shmid, semid });
    // Attaches by others than this inspector (watch mode keeps one of its own).
    let others_attached = match &r.segment {
        Some(s) => {
            let st = s.stat?;
            st.attached.saturating_sub(u64::from(s.self_attached))
        }
        None => 0,
    };
    let set_stat = match &r.semset {
        Some(s) => Some(s.stat?),
        None => None,
    };
    match (r.segment.is_some(), set_stat) {
        (false, None) => None,
        // A creator makes the set first: without its segment it is either that
        // creator between its two steps (never operated on, and young) or a leftover.
        (false, Some(st)) => {
            (st.otime != 0 || older_than_grace(st.ctime)).then_some(())?;
            abandoned("a semaphore set without its segment")
        }
        // The set goes first when a session is removed: a segment without one is
        // on its way out while anybody is still attached.
        (true, None) => {
            (r.header.is_some() && others_attached == 0).then_some(())?;
            abandoned("a segment without its semaphore set, and nobody attached")
        }
        (true, Some(st)) => {
            if st.otime == 0 {
                (older_than_grace(st.ctime) && others_attached == 0).then_some(())?;
                return abandoned("its creator died before initialising the set");
            }
            let Some(h) = &r.header else {
                // Our set beside a segment whose header was never written.
                let zero = r.first_bytes.as_deref()?.iter().all(|&b| b == 0);
                let created = r.segment.as_ref()?.stat?.change_time;
                (zero && older_than_grace(created) && others_attached == 0).then_some(())?;
                return abandoned("its creator died before writing the header");
            };
            let m = crate::waits::members(r)?;
            let value = |i: u16| m[usize::from(i)].value;
            let live = value(sem::WRITERS) + value(sem::READERS);
            // A held mutex without a live peer: someone between joining (or
            // leaving) and counting itself.
            let mutexes_free = value(sem::WRITE_MUTEX) == 1 && value(sem::READ_MUTEX) == 1;
            if live != 0 || !mutexes_free {
                return None;
            }
            let persisted_and_finished = State::from_raw(h.state) == Some(State::Ended)
                && h.flags & layout::FLAG_PERSIST != 0
                && h.readers_joined == 0;
            if persisted_and_finished {
                return Some(Leftover::WaitsForReader);
            }
            // An attach with nobody counted: a joiner about to count itself, unless
            // nothing has happened on the set for a while (another inspector).
            (others_attached == 0 || older_than_grace(st.otime)).then_some(())?;
            abandoned("no writer or reader is left: WRITERS = READERS = 0")
        }
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{killed, now, seg_stat, session, set, set_stat};

    fn judged(r: &Report) -> Option<String> {
        judge(r).map(|l| l.note(r.key))
    }

    #[test]
    fn a_live_session_is_not_abandoned() {
        assert_eq!(judge(&session(16, 3)), None);
    }

    #[test]
    fn killed_peers_leave_objects_nobody_uses() {
        let r = killed(session(16, 3));
        assert_eq!(
            judged(&r).as_deref(),
            Some(
                "abandoned: nobody uses these objects (no writer or reader is left: WRITERS = READERS = 0); remove them with: ipcrm -m 11 -s 22 (or: writer --remove --key 0x7e2f0001)"
            )
        );
    }

    #[test]
    fn a_joiner_between_its_steps_is_not_abandoned() {
        // Attached and holding both mutexes, not counted yet.
        let mut r = killed(session(16, 3));
        set(&mut r, sem::WRITE_MUTEX, 0);
        set(&mut r, sem::READ_MUTEX, 0);
        assert_eq!(judge(&r), None);
        // Attached, mutexes free, the set operated on just now.
        let mut r = killed(session(16, 3));
        seg_stat(&mut r).attached = 1;
        set_stat(&mut r).otime = now();
        assert_eq!(judge(&r), None);
        // The inspector's own attach does not count.
        let mut r = killed(session(16, 3));
        seg_stat(&mut r).attached = 1;
        if let Some(s) = &mut r.segment {
            s.self_attached = true;
        }
        assert!(matches!(judge(&r), Some(Leftover::Abandoned { .. })));
    }

    #[test]
    fn a_persisted_finished_stream_waits_for_its_reader() {
        let mut r = killed(session(4, 2));
        if let Some(h) = &mut r.header {
            h.state = State::Ended as u32;
            h.flags = layout::FLAG_PERSIST;
            h.readers_joined = 0;
        }
        assert_eq!(judge(&r), Some(Leftover::WaitsForReader));
        assert!(judged(&r).is_some_and(|n| n.starts_with("a finished stream waits for its reader")));
        // Without PERSIST nobody will come for it.
        if let Some(h) = &mut r.header {
            h.flags = 0;
        }
        assert!(matches!(judge(&r), Some(Leftover::Abandoned { .. })));
    }

    #[test]
    fn half_made_sessions() {
        // A set without its segment, never operated on: young is being created.
        let mut r = session(16, 0);
        r.segment = None;
        r.header = None;
        r.ring = None;
        r.verdict = Verdict::Incomplete;
        set_stat(&mut r).otime = 0;
        set_stat(&mut r).ctime = now();
        assert_eq!(judge(&r), None);
        set_stat(&mut r).ctime = now() - 5;
        let lo = judge(&r).expect("abandoned");
        assert_eq!(lo.ipcrm().as_deref(), Some("ipcrm -s 22"));
        // A segment without its set: gone once nobody is attached.
        let mut r = session(16, 0);
        r.semset = None;
        r.ring = None;
        r.verdict = Verdict::Incomplete;
        assert_eq!(judge(&r), None, "two processes still attached");
        seg_stat(&mut r).attached = 0;
        assert_eq!(
            judge(&r).and_then(|l| l.ipcrm()).as_deref(),
            Some("ipcrm -m 11")
        );
        // Someone else's objects are never ours to remove.
        r.verdict = Verdict::Foreign;
        assert_eq!(judge(&r), None);
    }
}
