//! Joining and leaving. Both happen with *both* mutexes held (taken in one atomic
//! `semop`, so two processes can never each hold one and wait for the other): no
//! join or leave is then half done, the semaphore counts agree with the header's
//! counters, and "am I the last one?" has one answer. The last to leave removes the
//! objects, the one explicit, named removal of the session ([`Session::remove_objects`]).

use super::discover::{self, Found};
use super::{Departure, Role, Session, Snapshot};
use crate::cancel;
use crate::error::{Error, Result};
use crate::key::IpcKey;
use crate::layout::{sem, State};
use crate::segment;
use crate::semaphore::{self, Applied, Patience, SemOp, Why};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long joining waits for both mutexes before it looks at who could be
/// holding them.
const JOIN_PATIENCE: Duration = Duration::from_secs(5);

/// How a join attempt ended.
enum JoinStep {
    Joined,
    /// The objects were stale and have been removed.
    Removed,
}

impl Session {
    /// Takes both mutexes in one atomic `semop`. Waits at most `patience`;
    /// `Ok(false)` if the objects disappeared meanwhile. Joining gives up on Ctrl-C;
    /// leaving does not.
    fn lock_both_for(
        &self,
        why: &'static str,
        patience: Option<Duration>,
        cancellable: bool,
    ) -> Result<bool> {
        let start = Instant::now();
        loop {
            let ops = [
                SemOp::undo(sem::WRITE_MUTEX, -1),
                SemOp::undo(sem::READ_MUTEX, -1),
            ];
            match self.sems.apply(
                &ops,
                Patience::UpTo(cancel::POLL),
                Why::once(why).retried_until("the mutexes were free"),
            ) {
                Ok(Applied::Done) => {
                    let h = self.header();
                    h.write_mutex_holder.store(self.pid, Ordering::Relaxed);
                    h.read_mutex_holder.store(self.pid, Ordering::Relaxed);
                    return Ok(true);
                }
                Ok(Applied::NotYet) => {}
                Err(Error::PeerGone { .. }) => return Ok(false),
                Err(e) => return Err(e),
            }
            if cancellable && cancel::requested() {
                return Err(Error::Interrupted {
                    detail: "while joining; nothing of ours was left".into(),
                });
            }
            if patience.is_some_and(|p| start.elapsed() > p) {
                return Err(Error::PeerGone {
                    key: self.key,
                    detail:
                        "a peer has held the session's mutexes for too long (a process stopped with Ctrl-Z or SIGSTOP?)"
                            .into(),
                });
            }
        }
    }

    /// A snapshot taken with both mutexes held, so that no join or leave is half done
    /// and the semaphore counts agree with the header's counters. Use it before
    /// declaring a peer dead: an unlocked snapshot can catch a joining peer after its
    /// `joined` counter went up but before its live count did. `Ok(None)`: the
    /// mutexes could not be had within a second (a stopped peer holds one), so
    /// nothing can be concluded yet.
    pub fn locked_snapshot(&self) -> Result<Option<Snapshot>> {
        match self.lock_both_for(
            "take both mutexes to read the counts consistently",
            Some(Duration::from_secs(1)),
            false,
        ) {
            Ok(true) => {}
            Ok(false) => {
                return Err(Error::PeerGone {
                    key: self.key,
                    detail: "the objects were removed while we waited".into(),
                })
            }
            Err(Error::PeerGone { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        let snap = self.snapshot();
        self.unlock_both(&[])?;
        snap.map(Some)
    }

    /// Releases both mutexes together with `extra` operations, atomically.
    fn unlock_both(&self, extra: &[SemOp]) -> Result<()> {
        let h = self.header();
        h.write_mutex_holder.store(0, Ordering::Relaxed);
        h.read_mutex_holder.store(0, Ordering::Relaxed);
        let mut ops = extra.to_vec();
        ops.push(SemOp::undo(sem::WRITE_MUTEX, 1));
        ops.push(SemOp::undo(sem::READ_MUTEX, 1));
        self.sems.apply_now(&ops, Why::once("release both mutexes"))
    }

    /// Joins an initialised session. `Ok(false)`: it went away (or was stale and we
    /// removed it) meanwhile; look again.
    pub(super) fn join(
        &mut self,
        opts: &super::OpenOptions,
        note: &dyn Fn(String),
    ) -> Result<bool> {
        let mut said = false;
        loop {
            match self.lock_both_for(
                "join: take both mutexes to update the peer table",
                Some(JOIN_PATIENCE),
                true,
            ) {
                Ok(true) => break,
                Ok(false) => return Ok(false),
                Err(Error::PeerGone { .. }) => {}
                Err(e) => return Err(e),
            }
            // JOIN_PATIENCE without the mutexes. A live holder gives them back (a
            // stopped one when it continues), and a dead one's SEM_UNDO gave them
            // back at its exit, so with nobody alive they can only have been closed
            // from outside: the session can never be joined.
            let snap = self.snapshot()?;
            if snap.live_writers() + snap.live_readers() == 0 {
                // Broken for good: whoever finds it removes it, if it proves ours and
                // nobody else is attached. A writer then starts afresh; a reader has
                // lost the stream it came for, and says so.
                let removable = self.sole_attach()? && self.check_ours_to_remove().is_ok();
                let ids = discover::ipcrm_hint(Some(self.segment().id()), Some(self.sems.id()))
                    .unwrap_or_default();
                if removable {
                    note(format!(
                        "recovering broken objects at key {}: both mutexes closed and nobody alive to open them; removing {ids}",
                        self.key,
                    ));
                    self.remove_objects()?;
                    if opts.role == Role::Writer {
                        return Ok(false);
                    }
                }
                return Err(Error::Corrupt {
                    key: self.key,
                    detail: format!(
                        "the session's mutexes have stayed closed for {} s and no process is alive to open them: \
                         the semaphores were changed from outside{}",
                        JOIN_PATIENCE.as_secs(),
                        if removable { "; its stream is lost" } else { "" }
                    ),
                });
            }
            if !said {
                note(format!(
                    "waiting to join key {}: a peer holds the session's mutexes (stopped with Ctrl-Z?)",
                    self.key
                ));
                said = true;
            }
        }
        let ids = discover::ipcrm_hint(Some(self.segment().id()), Some(self.sems.id()))
            .unwrap_or_default();
        match self.join_locked(opts) {
            Ok(JoinStep::Joined) => Ok(true),
            Ok(JoinStep::Removed) => {
                note(format!("recovered stale objects at key {} (every process that used them is gone): removed them ({ids})", self.key));
                Ok(false)
            }
            Err(e) => {
                let _ = self.unlock_both(&[]);
                Err(e)
            }
        }
    }

    /// The body of `join`, with both mutexes held. On error the mutexes are still
    /// held; otherwise they have been released (or the objects removed).
    fn join_locked(&mut self, opts: &super::OpenOptions) -> Result<JoinStep> {
        let key = self.key;
        let snap = self.snapshot()?;
        self.shared = discover::is_shared(self.header().flags());
        let nobody_alive = snap.live_writers() + snap.live_readers() == 0;
        let persisted = snap.state == Some(State::Ended) && snap.readers_joined == 0;
        if opts.role == Role::Writer {
            if nobody_alive && !persisted {
                // Every peer died and no complete stream waits for a reader: the
                // objects are stale. Removing the set wakes nobody (nobody is there),
                // but only what our uid owns is ours to remove.
                self.check_ours_to_remove()?;
                self.remove_objects()?;
                return Ok(JoinStep::Removed);
            }
            if snap.state == Some(State::Ended) {
                return Err(Error::Conflict {
                    key,
                    detail: if persisted {
                        format!("a finished stream is waiting there for its reader (run `reader --key {key}`)")
                    } else {
                        "the stream there has ended and its readers are draining it".into()
                    },
                    remove_hint: discover::ipcrm_hint(
                        Some(self.segment().id()),
                        Some(self.sems.id()),
                    )
                    .filter(|_| persisted),
                });
            }
            if !self.shared || !opts.shared {
                return Err(self.exclusive_conflict(opts));
            }
        } else if !self.shared && snap.readers_joined > 0 {
            if nobody_alive {
                // A byte stream whose reader and writer are both gone: nobody can
                // complete it (it was already partly read), so it is stale.
                self.check_ours_to_remove()?;
                self.remove_objects()?;
                return Ok(JoinStep::Removed);
            }
            return Err(self.exclusive_conflict(opts));
        }
        let h = self.header();
        let r = Ordering::Relaxed;
        let (id, joined) = match opts.role {
            Role::Writer => {
                let id = h.next_writer_id.load(r);
                h.next_writer_id.store(id.wrapping_add(1), r);
                (id, &h.writers_joined)
            }
            Role::Reader => (snap.readers_joined + 1, &h.readers_joined),
        };
        self.set_peer(opts.role.code(), id)?;
        joined.fetch_add(1, r);
        self.id = id;
        // Count ourselves (SEM_UNDO: the kernel un-counts us if we die) and release
        // both mutexes, in one atomic step.
        self.unlock_both(&[SemOp::undo(opts.role.count_member(), 1)])?;
        self.joined = true;
        Ok(JoinStep::Joined)
    }

    /// Whether we are the only process attached to the segment.
    fn sole_attach(&self) -> Result<bool> {
        Ok(self.segment().stat()?.attached <= 1)
    }

    /// The owner's uid, if another user owns either object and we are not root (who
    /// may remove anything).
    fn owner_if_not_us(&self) -> Result<Option<u32>> {
        let me = nix::unistd::geteuid().as_raw();
        let (seg_uid, set_uid) = (self.segment().stat()?.uid, self.sems.stat()?.uid);
        let other = [seg_uid, set_uid].into_iter().find(|&u| u != me);
        Ok(other.filter(|_| me != 0))
    }

    /// Refuses to remove stale objects that another user owns (a session shared with
    /// `--mode 666`): they are that user's to remove.
    fn check_ours_to_remove(&self) -> Result<()> {
        let me = nix::unistd::geteuid().as_raw();
        let (seg_uid, set_uid) = (self.segment().stat()?.uid, self.sems.stat()?.uid);
        if seg_uid == me && set_uid == me {
            return Ok(());
        }
        Err(Error::Conflict {
            key: self.key,
            detail: format!(
                "every process of the session there is gone, but uid {seg_uid} owns its objects: not ours to remove"
            ),
            remove_hint: discover::ipcrm_hint(Some(self.segment().id()), Some(self.sems.id())),
        })
    }

    /// The refusal of a second writer or reader, worded for who asks and why.
    fn exclusive_conflict(&self, opts: &super::OpenOptions) -> Error {
        let pids = self.peer_pids(opts.role.code());
        let who = if pids.is_empty() {
            String::new()
        } else {
            format!(
                " (pid {})",
                pids.iter()
                    .map(i32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let detail = match opts.role {
            Role::Writer if self.shared => format!(
                "a --lines session is there{who}: join it with --lines (each line one message), \
                 or pick another key"
            ),
            Role::Writer => format!(
                "a writer{who} is already sending a byte stream there, and a byte stream has one writer; \
                 writers share a key only when all of them, the first included, use --lines"
            ),
            Role::Reader => format!(
                "a reader{who} already takes the byte stream there, and a byte stream goes to one reader \
                 (a second would get every other piece); pick another key"
            ),
        };
        Error::Conflict {
            key: self.key,
            detail,
            remove_hint: None,
        }
    }

    /// Leaves the session: un-counts us and, if we are the last one, removes both
    /// objects, unless a writer leaves a finished stream for a reader still to come.
    /// `finished`: we completed our part (a writer sent END, a reader saw FINAL).
    pub fn leave(&mut self, finished: bool) -> Result<Departure> {
        if !self.joined {
            return Ok(Departure::AlreadyGone);
        }
        // Bounded: if a stopped peer holds a mutex, we exit anyway and the kernel's
        // SEM_UNDO un-counts us; the objects then stay for the last one to remove.
        match self.lock_both_for(
            "leave: take both mutexes to decide who removes",
            Some(Duration::from_secs(5)),
            false,
        ) {
            Ok(true) => {}
            Ok(false) => {
                self.joined = false;
                return Ok(Departure::AlreadyGone);
            }
            Err(e) => return Err(e),
        }
        let result = (|| {
            let snap = self.snapshot()?;
            self.clear_peer();
            if finished {
                let h = self.header();
                let field = match self.role {
                    Role::Writer => &h.writers_finished,
                    Role::Reader => &h.readers_finished,
                };
                field.fetch_add(1, Ordering::Relaxed);
            }
            let others = (snap.live_writers() + snap.live_readers()).saturating_sub(1);
            let persisted = self.role == Role::Writer
                && finished
                && snap.state == Some(State::Ended)
                && snap.readers_joined == 0
                && !self.reader_came.get();
            let mut departure = Departure::Left;
            if others == 0 && !persisted {
                // The explicit, named removal: nobody else is attached to the session
                // and nothing in it is waiting for anyone. Only the owner (or root) may
                // remove System V objects: a last one out of another user's session
                // (shared with --mode 666) leaves them for their owner, whose next
                // writer recovers them as stale.
                match self.owner_if_not_us()? {
                    None => {
                        self.remove_objects()?;
                        return Ok(Departure::Removed);
                    }
                    Some(owner) => departure = Departure::LeftToOwner(owner),
                }
            }
            let mut ops = vec![SemOp::undo(self.role.count_member(), -1)];
            if self.ended.get() {
                ops.push(SemOp::undo(sem::ENDED, -1));
            }
            self.unlock_both(&ops)?;
            self.joined = false;
            Ok(departure)
        })();
        if result.is_err() && self.joined {
            let _ = self.unlock_both(&[]);
        }
        result
    }

    /// After corruption was found: removes both objects if they are ours to remove
    /// (nobody can complete the session). Whether anything was removed.
    pub fn remove_broken(&mut self) -> Result<bool> {
        self.check_ours_to_remove()?;
        let set = semaphore::remove_id(self.key, self.sems.id())?;
        let seg = segment::remove_id(self.key, self.segment().id())?;
        self.joined = false;
        Ok(set || seg)
    }

    /// After the set was removed from outside: removes our segment too (we attached
    /// it and checked its header, so it is ours), unless the set is still there.
    pub fn remove_orphaned_segment(&mut self) -> Result<bool> {
        match self.sems.stat() {
            Err(Error::PeerGone { .. }) => {}
            Err(Error::Sys { source, .. })
                if matches!(source.raw_os_error(), Some(libc::EINVAL | libc::EIDRM)) => {}
            _ => return Ok(false),
        }
        self.joined = false;
        segment::remove_id(self.key, self.segment().id())
    }

    /// Removes the semaphore set (waking anyone still waiting, with EIDRM) and then
    /// the segment (destroyed when the last process detaches). This is the only place
    /// the session removes its objects.
    pub fn remove_objects(&mut self) -> Result<()> {
        semaphore::remove_id(self.key, self.sems.id())?;
        segment::remove_id(self.key, self.segment().id())?;
        self.joined = false;
        Ok(())
    }
}

/// What [`remove_session`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleanup {
    /// Nothing was at the key.
    Nothing,
    /// Our objects were removed; the text says which.
    Removed(String),
}

/// `make clean` / `writer --remove`: removes the session at `key` if it is ours (our
/// magic and version, our member count, our user) and no live process uses it.
/// Refuses, changing nothing, for a foreign object or a live session, and for a
/// finished stream that waits for its reader unless `force`.
pub fn remove_session(key: IpcKey, force: bool) -> Result<Cleanup> {
    let found = match discover::discover(key) {
        // Our magic and version, a damaged header: nobody can use it, and with
        // --force it is removed if nobody is attached and it is ours to remove.
        Err(Error::Corrupt { detail, .. }) if force => return remove_corrupt(key, &detail),
        other => other?,
    };
    match found {
        Found::Nothing => Ok(Cleanup::Nothing),
        Found::Initialising(_) => Err(Error::Conflict {
            key,
            detail: "a writer is creating a session there right now".into(),
            remove_hint: None,
        }),
        Found::Stale { shmid, semid, why } => {
            if let Some(id) = semid {
                semaphore::remove_id(key, id)?;
            }
            if let Some(id) = shmid {
                segment::remove_id(key, id)?;
            }
            Ok(Cleanup::Removed(format!(
                "{} ({why})",
                discover::ipcrm_hint(shmid, semid).unwrap_or_default()
            )))
        }
        Found::Ours(mem, sems) => {
            let v = sems.values()?;
            let live = v[usize::from(sem::WRITERS)] + v[usize::from(sem::READERS)];
            if live > 0 {
                return Err(Error::Conflict {
                    key,
                    detail: format!(
                        "the session there is in use by {live} live process(es); stop them first"
                    ),
                    remove_hint: None,
                });
            }
            let h = mem.header();
            let unread =
                h.state() == Some(State::Ended) && h.readers_joined.load(Ordering::Relaxed) == 0;
            if unread && !force {
                let bytes = h.bytes_published.load(Ordering::Relaxed);
                return Err(Error::Conflict {
                    key,
                    detail: format!(
                        "a finished stream of {bytes} bytes waits there for its reader; \
                         run `reader --key {key}` to take it, or remove it anyway with --force"
                    ),
                    remove_hint: None,
                });
            }
            let seg = mem.into_segment();
            let what = discover::ipcrm_hint(Some(seg.id()), Some(sems.id())).unwrap_or_default();
            sems.remove()?;
            seg.remove()?;
            Ok(Cleanup::Removed(what))
        }
    }
}

/// `remove_session(force)` of a session whose header carries our magic and version
/// but is damaged: removed only if our uid owns both objects, nothing is attached to
/// the segment, the set (if any) has our member count, and no process is counted
/// live in it.
fn remove_corrupt(key: IpcKey, why: &str) -> Result<Cleanup> {
    let me = nix::unistd::geteuid().as_raw();
    let refuse = |detail: String, shmid: Option<i32>, semid: Option<i32>| Error::Conflict {
        key,
        detail,
        remove_hint: discover::ipcrm_hint(shmid, semid),
    };
    let shmid = segment::find(key)?;
    let semid = semaphore::find(key)?;
    if let Some(id) = shmid {
        let st = segment::stat(key, id)?;
        if st.attached > 0 || (st.uid != me && me != 0) {
            return Err(refuse(
                format!(
                    "the damaged segment there (shmid {id}, uid {}) is attached by {} process(es) or not ours to remove",
                    st.uid, st.attached
                ),
                shmid,
                semid,
            ));
        }
    }
    if let Some(id) = semid {
        let st = semaphore::stat(key, id)?;
        let set = semaphore::SemaphoreSet::open(key, id, sem::NAMES)?;
        let v = set.values()?;
        let live = v[usize::from(sem::WRITERS)] + v[usize::from(sem::READERS)];
        if st.nsems != sem::COUNT as u64 || (st.uid != me && me != 0) || live > 0 {
            return Err(refuse(
                format!(
                    "the semaphore set beside the damaged segment (semid {id}) is not ours to remove or is in use"
                ),
                shmid,
                semid,
            ));
        }
        semaphore::remove_id(key, id)?;
    }
    if let Some(id) = shmid {
        segment::remove_id(key, id)?;
    }
    Ok(Cleanup::Removed(format!(
        "{} (a damaged session: {why})",
        discover::ipcrm_hint(shmid, semid).unwrap_or_default()
    )))
}
