//! What is at a key, as far as we may tell without changing anything: nothing, a
//! session of ours, one being created right now, the stale leftovers of a crash, or
//! something that is not ours (an error naming it, and the `ipcrm` that would
//! remove it if the user decides to).

use super::INIT_GRACE;
use crate::error::{Error, Result};
use crate::header;
use crate::key::IpcKey;
use crate::layout::{self, sem};
use crate::segment::{self, Segment, SessionMemory};
use crate::semaphore::{self, SemaphoreSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What is at a key.
pub(super) enum Found {
    Nothing,
    /// Ours and initialised: segment attached and checked, set opened.
    Ours(SessionMemory, SemaphoreSet),
    /// Being created right now by someone else, or being removed: wait and look
    /// again. The text says what is there, for a note if it lasts.
    Initialising(&'static str),
    /// Ours, but nobody can be using it: remove it before creating anew.
    Stale {
        shmid: Option<i32>,
        semid: Option<i32>,
        why: String,
    },
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// An object owned by another user is only ours to use if its mode lets everyone read
/// and write it (the owner widened it with `--mode` on purpose).
fn foreign_owner(uid: u32, mode: u32) -> bool {
    uid != euid() && mode & 0o006 != 0o006
}

/// `ipcrm -m SHMID -s SEMID`, for the ids given.
pub(crate) fn ipcrm_hint(shmid: Option<i32>, semid: Option<i32>) -> Option<String> {
    let mut parts = vec!["ipcrm".to_string()];
    if let Some(id) = shmid {
        parts.push(format!("-m {id}"));
    }
    if let Some(id) = semid {
        parts.push(format!("-s {id}"));
    }
    (parts.len() > 1).then(|| parts.join(" "))
}

/// How long ago `epoch_secs` was (kernel times have one-second resolution).
fn age(epoch_secs: i64) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Duration::from_secs(now.saturating_sub(epoch_secs).max(0) as u64)
}

/// Whether `e` says the object was removed between our lookup and this call:
/// `EIDRM` (already mapped to [`Error::PeerGone`]) or `EINVAL`, what Linux returns
/// once the id no longer exists at all.
fn vanished(e: &Error) -> bool {
    match e {
        Error::PeerGone { .. } => true,
        Error::Sys { source, .. } => {
            matches!(source.raw_os_error(), Some(libc::EINVAL | libc::EIDRM))
        }
        _ => false,
    }
}

/// Looks at what is at `key` without changing anything.
pub(super) fn discover(key: IpcKey) -> Result<Found> {
    let (shmid, semid) = lookup(key)?;
    discover_from(key, shmid, semid)
}

/// The ids at `key`: the segment's and the set's, if any.
///
/// The segment is looked up first, then the set: a creator makes them in the other
/// order, so a segment we find always had its set made before it. (The other way
/// round, a creator working between our two lookups would show us a segment
/// without a set, which we would take for a leftover and remove: found by the
/// chaos schedule.)
pub(super) fn lookup(key: IpcKey) -> Result<(Option<i32>, Option<i32>)> {
    let shmid = segment::find(key)?;
    let semid = semaphore::find(key)?;
    Ok((shmid, semid))
}

/// [`discover`], given what [`lookup`] found.
pub(super) fn discover_from(key: IpcKey, shmid: Option<i32>, semid: Option<i32>) -> Result<Found> {
    if semid.is_none() && shmid.is_none() {
        return Ok(Found::Nothing);
    }
    // The set: member count and owner decide whether it can be ours.
    let set_stat = match semid {
        Some(id) => match semaphore::stat(key, id) {
            Ok(st) => Some((id, st)),
            // Removed between our lookup and this IPC_STAT: EIDRM, or EINVAL once
            // the id is gone altogether. Look again.
            Err(e) if vanished(&e) => {
                return Ok(Found::Initialising(
                    "a semaphore set that vanished while we looked",
                ))
            }
            Err(e) => return Err(e),
        },
        None => None,
    };
    if let Some((id, st)) = set_stat {
        if st.nsems != sem::COUNT as u64 || foreign_owner(st.uid, st.mode) {
            return Err(Error::Conflict {
                key,
                detail: format!(
                    "a semaphore set that is not ours is there (semid {id}, owner uid {}, {} members, mode {:o})",
                    st.uid, st.nsems, st.mode
                ),
                remove_hint: ipcrm_hint(None, Some(id)),
            });
        }
    }
    let Some(shmid) = shmid else {
        // A set without a segment: a creator of ours between its two steps, its
        // leftover if it died there, or something else entirely.
        let Some((id, st)) = set_stat else {
            return Ok(Found::Initialising(
                "a semaphore set without a segment, just created",
            ));
        };
        // Our segment lookup came first: a creator may have made its segment (and
        // even opened the session) after it and before our set lookup. Look again:
        // only a set that still has no segment beside it is alone.
        if segment::find(key)?.is_some() {
            return Ok(Found::Initialising("a creator making its segment"));
        }
        return lone_set(key, id, &st);
    };
    let seg_stat = match segment::stat(key, shmid) {
        Ok(st) => st,
        Err(e) if vanished(&e) => {
            return Ok(Found::Initialising(
                "a segment that vanished while we looked",
            ))
        }
        Err(e) => return Err(e),
    };
    if foreign_owner(seg_stat.uid, seg_stat.mode) {
        return Err(Error::Conflict {
            key,
            detail: format!(
                "the segment there (shmid {shmid}) belongs to uid {} with mode {:o}: it is not ours",
                seg_stat.uid, seg_stat.mode
            ),
            remove_hint: ipcrm_hint(Some(shmid), semid),
        });
    }
    let seg = match Segment::attach(key, shmid) {
        Ok(s) => s,
        Err(e) if vanished(&e) => return Ok(Found::Initialising("a segment being removed")),
        Err(e) => return Err(e),
    };
    // Smaller than our header: never ours (header::check says so, naming it).
    let Ok(h) = seg.header() else {
        header::check(&seg)?;
        return Err(Error::internal(
            "a segment smaller than the header passed its check",
        ));
    };
    // A new segment is all zeros, and its creator writes the magic last, so magic 0
    // means "header not complete yet", whatever the other fields already say.
    // SYNC POINT "header published" (Acquire; the Release is in Header::initialise).
    if h.magic.load(Ordering::Acquire) == 0 {
        // Our creator makes the set before the segment, and marks the set with its
        // signature first, so a blank segment is a creator of ours at work only if
        // a fresh signed set of ours is beside it; anything else was never ours
        // (e.g. what `ipcmk -M` leaves, with or without a set of its own).
        let not_ours = || {
            Error::Conflict {
            key,
            detail: format!(
                "a segment that is not ours is there (shmid {shmid}, owner uid {}, {} bytes, no header)",
                seg_stat.uid, seg_stat.size
            ),
            remove_hint: ipcrm_hint(Some(shmid), None),
        }
        };
        let Some((id, st)) = set_stat else {
            return Err(not_ours());
        };
        // A creator of ours writes the header right after it makes the segment.
        if age(seg_stat.change_time) < INIT_GRACE {
            return Ok(Found::Initialising(
                "a new segment whose creator has not written its header yet",
            ));
        }
        if !signed_and_unused(key, id, &st)? || st.uid != euid() || seg_stat.uid != euid() {
            return Err(not_ours());
        }
        return Ok(Found::Stale {
            shmid: Some(shmid),
            semid: Some(id),
            why: "a segment whose creator died before writing the header".into(),
        });
    }
    let geometry = header::check(&seg)?;
    // From here the segment proves it is ours (our magic, version and a sound
    // header); removing it as stale also needs it to be ours to remove.
    let not_ours_to_remove = |semid: Option<i32>| {
        Error::Conflict {
        key,
        detail: format!(
            "stale objects of ours are there, but uid {} owns them (shmid {shmid}): not ours to remove",
            seg_stat.uid
        ),
        remove_hint: ipcrm_hint(Some(shmid), semid),
    }
    };
    let Some((semid, st)) = set_stat else {
        // Its set is gone: the session is being removed (the set goes first), and
        // the processes still attached are on their way out; or a remover died
        // between the two removals, and then nobody is attached.
        if seg_stat.attached > 0 {
            return Ok(Found::Initialising(
                "a segment of ours without its semaphore set, still attached by a process (one on its way out, or stopped)",
            ));
        }
        if seg_stat.uid != euid() {
            return Err(not_ours_to_remove(None));
        }
        return Ok(Found::Stale {
            shmid: Some(shmid),
            semid: None,
            why: "a segment without its semaphore set, and nobody attached".into(),
        });
    };
    if st.otime == 0 {
        if age(st.ctime) < INIT_GRACE {
            return Ok(Found::Initialising(
                "a new session whose creator has not opened its semaphore set yet",
            ));
        }
        if seg_stat.uid != euid() || st.uid != euid() || waiters(key, semid)? > 0 {
            return Err(not_ours_to_remove(Some(semid)));
        }
        return Ok(Found::Stale {
            shmid: Some(shmid),
            semid: Some(semid),
            why: "the creator died before initialising the set".into(),
        });
    }
    let sems = SemaphoreSet::open(key, semid, sem::NAMES)?;
    Ok(Found::Ours(SessionMemory::new(seg, geometry)?, sems))
}

/// A semaphore set without a segment beside it. Ours only if it carries our
/// creator's signature, was never operated on, nobody waits on it, and our uid owns
/// it: then it is a creator at work (younger than [`INIT_GRACE`]) or its leftover.
/// Anything else is not ours, and is never removed.
fn lone_set(key: IpcKey, id: i32, st: &semaphore::SetStat) -> Result<Found> {
    let foreign = |why: &str| {
        Error::Conflict {
        key,
        detail: format!(
            "a semaphore set that is not ours is there (semid {id}, owner uid {}, {} members, mode {:o}, \
             no segment beside it: {why})",
            st.uid, st.nsems, st.mode
        ),
        remove_hint: ipcrm_hint(None, Some(id)),
    }
    };
    if st.otime != 0 {
        return Err(foreign(
            "it has been used, so it is no creator of ours at work",
        ));
    }
    // A creator of ours is between its first calls (semget, then SETALL with the
    // signature, then shmget) for microseconds: a young set may still be one.
    if age(st.ctime) < INIT_GRACE {
        return Ok(Found::Initialising("a set its creator has not opened yet"));
    }
    if !signed_and_unused(key, id, st)? {
        return Err(foreign("it does not carry our creator's signature"));
    }
    if st.uid != euid() {
        return Err(foreign("another user's"));
    }
    Ok(Found::Stale {
        shmid: None,
        semid: Some(id),
        why: "a semaphore set without its segment, left by a creator that died".into(),
    })
}

/// Whether the set holds exactly our creator's signature (PROTOCOL.md §4), was
/// never operated on, and nobody sleeps on it.
fn signed_and_unused(key: IpcKey, id: i32, st: &semaphore::SetStat) -> Result<bool> {
    if st.otime != 0 || st.nsems != sem::COUNT as u64 {
        return Ok(false);
    }
    let set = SemaphoreSet::open(key, id, sem::NAMES)?;
    Ok(set.values()? == sem::SIGNATURE && waiters(key, id)? == 0)
}

/// How many processes sleep in `semop` on the set (every member's GETNCNT and
/// GETZCNT): a set someone waits on is in use, whatever else it looks like.
fn waiters(key: IpcKey, id: i32) -> Result<u32> {
    let set = SemaphoreSet::open(key, id, sem::NAMES)?;
    let mut n = 0;
    for m in 0..sem::COUNT as u16 {
        for q in [
            semaphore::Query::WaitingToTake,
            semaphore::Query::WaitingForZero,
        ] {
            let why = semaphore::Why::once("does anyone sleep on this set? (then it is in use)");
            n += set.query_why(m, q, why)?.max(0) as u32;
        }
    }
    Ok(n)
}

/// Whether `flags` (a header's) mark a shared session.
pub(super) fn is_shared(flags: u32) -> bool {
    flags & layout::FLAG_SHARED != 0
}
