//! Creating a session: the set first, then the segment, both with `IPC_EXCL` so
//! that exactly one process is the creator; the header; the initial values; and the
//! first `semop`, which opens the session to everyone else.

use super::{Role, Session};
use crate::error::Result;
use crate::layout::{self, sem};
use crate::segment::{Segment, SessionMemory};
use crate::semaphore::{SemOp, SemaphoreSet, Why};
use std::cell::Cell;

impl Session {
    /// Tries to create a fresh session (writer only). `Ok(None)`: something exists.
    pub(super) fn create(opts: &super::OpenOptions) -> Result<Option<Session>> {
        let key = opts.key;
        // Step 1: the semaphore set, with IPC_EXCL, so exactly one creator wins.
        let Some(sems) = SemaphoreSet::create_exclusive(key, sem::NAMES, opts.mode)? else {
            return Ok(None);
        };
        // Step 1b: mark it ours at once. If we die before the segment exists, this
        // signature is what lets the next writer recognise the leftover as ours (and
        // nothing else: a set without it is never removed, see discover.rs).
        if let Err(e) = sems.set_values_why(
            &sem::SIGNATURE,
            "mark the new set as ours (\"SVSHMRNG\", version): if we die before making the segment, the next writer knows the leftover",
        ) {
            let _ = sems.remove();
            return Err(e);
        }
        // Step 2: the segment. From here on, any failure removes what we created.
        let size = opts.geometry.segment_size() as usize;
        let seg = match Segment::create_exclusive(key, size, opts.mode) {
            Ok(Some(seg)) => seg,
            Ok(None) => {
                // A segment without a set: foreign, or the leftover of a crash. Give
                // back our set and let `discover` classify what is there.
                sems.remove()?;
                return Ok(None);
            }
            Err(e) => {
                let _ = sems.remove();
                return Err(e);
            }
        };
        let (seg_id, sem_id) = (seg.id(), sems.id());
        let mem = match SessionMemory::new(seg, opts.geometry) {
            Ok(mem) => mem,
            Err(e) => {
                let _ = crate::semaphore::remove_id(key, sem_id);
                let _ = crate::segment::remove_id(key, seg_id);
                return Err(e);
            }
        };
        let mut s = Session {
            key,
            mem,
            sems,
            role: Role::Writer,
            id: 1,
            shared: opts.shared,
            created: true,
            joined: false,
            ended: Cell::new(false),
            reader_came: Cell::new(false),
            pid: std::process::id() as i32,
        };
        if let Err(e) = s.initialise(opts) {
            let _ = s.remove_objects();
            return Err(e);
        }
        Ok(Some(s))
    }

    /// Step 3 of creation: header, initial values, then the first semop that opens
    /// the session to others (and sets `sem_otime`).
    fn initialise(&mut self, opts: &super::OpenOptions) -> Result<()> {
        let g = self.geometry();
        let mut flags = 0;
        if opts.persist {
            flags |= layout::FLAG_PERSIST;
        }
        if opts.shared {
            flags |= layout::FLAG_SHARED;
        }
        // The set's sem_otime is still 0, so no other process reads any of this yet;
        // the magic goes last (SYNC POINT "header published", header.rs).
        self.header().initialise(g, flags, self.pid);

        // Initial values: every slot free, nothing filled, both mutexes *closed* (0)
        // until the semop below opens them, both indices at slot 0, nobody counted.
        let mut v = [0u16; sem::COUNT];
        v[usize::from(sem::FREE)] = g.slots as u16;
        self.sems.set_values(&v)?;
        // The first semop: open both mutexes and count ourselves as a live writer
        // (SEM_UNDO: if we die, the kernel takes our count back). This is what sets
        // sem_otime, the signal for everyone else that the set is ready.
        self.sems.apply_now(
            &[
                SemOp::new(sem::WRITE_MUTEX, 1),
                SemOp::new(sem::READ_MUTEX, 1),
                SemOp::undo(sem::WRITERS, 1),
            ],
            Why::once(
                "open the mutexes and count ourselves as a writer: sets sem_otime, the 'ready' signal",
            ),
        )?;
        self.joined = true;
        Ok(())
    }
}
