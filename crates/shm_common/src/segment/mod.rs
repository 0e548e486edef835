//! [`Segment`]: one attached System V shared-memory segment, and
//! [`SessionMemory`]: a segment of ours, its header and its ring.
//!
//! # Memory another process writes
//! Every process that maps the segment may change any of its bytes at any time, so
//! this module never hands out `&`/`&mut` to plain bytes of the mapping (that would
//! promise Rust they cannot change). It hands out two things only:
//! - references to *atomics* ([`Segment::header`], [`Segment::atomic_u32`], ...),
//!   which are made for memory that changes under them, and only from a read-write
//!   attach (an atomic store to a read-only mapping would fault);
//! - *copies*: [`Segment::read_bytes`] and [`Segment::write_bytes`] copy through raw
//!   pointers, `read(2)` fills slot bytes straight from a file descriptor, and the
//!   checksum reads slot bytes through a private buffer. A scribbling process can
//!   make a copy see any byte values, which is harmless (every bit pattern is a valid
//!   `u8`, and the frame checksum then rejects them), never undefined behaviour.
//!
//! The header is accessed only as atomics, the slots only by copies: one discipline
//! per byte. A [`Segment`] is `Send` but not `Sync`, so every access through one
//! attach comes from one thread at a time; two threads that share a segment attach
//! it twice (the race demo does), which gives each its own mapping.
#![allow(unsafe_code)]

mod memory;

pub use memory::SessionMemory;

use crate::checksum;
use crate::error::{Error, ObjectKind, Result};
use crate::header::{Header, HeaderFields};
use crate::key::IpcKey;
use crate::layout;
use crate::sys::shm;
use crate::trace::{self, Kind};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64};

/// What `shmctl(IPC_STAT)` says about a segment, in our own types.
#[derive(Debug, Clone, Copy)]
pub struct SegmentStat {
    /// Size requested at creation (`shm_segsz`).
    pub size: u64,
    /// Owner's uid and mode bits.
    pub uid: u32,
    /// Permission bits (`0600`...).
    pub mode: u32,
    /// Number of current attaches (`shm_nattch`).
    pub attached: u64,
    /// Creator's pid (`shm_cpid`).
    pub creator_pid: i32,
    /// Pid of the last `shmat`/`shmdt` (`shm_lpid`).
    pub last_pid: i32,
    /// Last attach/detach/change times (seconds since the epoch).
    pub attach_time: i64,
    /// Time of the last detach.
    pub detach_time: i64,
    /// Time of the last change (creation or IPC_SET).
    pub change_time: i64,
}

/// Looks up the id of the segment at `key` without attaching (`shmget(key, 0, 0)`).
/// Returns `Ok(None)` when there is none.
pub fn find(key: IpcKey) -> Result<Option<i32>> {
    crate::objects::lookup(
        key,
        &format!("shmget({key}, 0, 0)"),
        "segment",
        "shmid",
        shm::shmget(key.raw(), 0, 0),
    )
}

/// `shmctl(IPC_STAT)` on a segment id.
pub fn stat(key: IpcKey, shmid: i32) -> Result<SegmentStat> {
    let result = shm::stat(shmid);
    if trace::enabled() {
        let r = match &result {
            Ok(ds) => format!(
                "0 (size {}, uid {}, mode 0{:o}, nattch {})",
                ds.shm_segsz,
                ds.shm_perm.uid,
                ds.shm_perm.mode & 0o777,
                ds.shm_nattch
            ),
            Err(e) => trace::failure(&e.source),
        };
        trace::call(
            Kind::Once,
            &format!("shmctl({shmid}, IPC_STAT, &buf)"),
            &r,
            "read the kernel's record of the segment: size, owner, mode, attach count",
        );
    }
    let ds = result.map_err(|e| Error::sys(key, e))?;
    Ok(SegmentStat {
        size: ds.shm_segsz as u64,
        uid: ds.shm_perm.uid,
        mode: u32::from(ds.shm_perm.mode) & 0o777,
        attached: ds.shm_nattch,
        creator_pid: ds.shm_cpid,
        last_pid: ds.shm_lpid,
        attach_time: ds.shm_atime,
        detach_time: ds.shm_dtime,
        change_time: ds.shm_ctime,
    })
}

/// Marks the segment `shmid` for removal (IPC_RMID). Used by the session's explicit
/// removal step and by stale-object recovery; see [`Segment::remove`].
pub fn remove_id(key: IpcKey, shmid: i32) -> Result<bool> {
    crate::objects::removal(
        key,
        &format!("shmctl({shmid}, IPC_RMID, NULL)"),
        "remove the segment (freed when the last process detaches)",
        shm::remove(shmid),
    )
}

/// An attached segment. Detaches (`shmdt`) on drop; never removes on drop.
#[derive(Debug)]
pub struct Segment {
    key: IpcKey,
    id: i32,
    base: *mut u8,
    len: usize,
    /// Attached with `SHM_RDONLY` ([`Segment::attach_read_only`]): the write methods
    /// refuse, and a store through an atomic would fault, so callers only load.
    read_only: bool,
}

// SAFETY: a mapping belongs to the process, not to a thread: moving the one handle
// to another thread moves every access made through it along with it. (Segment is
// deliberately not Sync: see the module documentation.)
unsafe impl Send for Segment {}

impl Segment {
    /// Creates a new segment of `size` bytes at `key` with `IPC_CREAT | IPC_EXCL`, so
    /// that exactly one process creates it, and attaches it. Returns `Ok(None)` when a
    /// segment already exists at the key (`EEXIST`).
    pub fn create_exclusive(key: IpcKey, size: usize, mode: u32) -> Result<Option<Segment>> {
        let flags = libc::IPC_CREAT | libc::IPC_EXCL | (mode & 0o777) as i32;
        let result = shm::shmget(key.raw(), size, flags);
        if trace::enabled() {
            let r = match &result {
                Ok(id) => format!("shmid {id}"),
                Err(e) => trace::failure(&e.source),
            };
            trace::call(
                Kind::Once,
                &format!("shmget({key}, {size}, {})", trace::ipc_flags(flags)),
                &r,
                "create the segment; EXCL makes exactly one creator win",
            );
        }
        let id = match result {
            Ok(id) => id,
            Err(e) if e.errno() == libc::EEXIST => return Ok(None),
            Err(e) if e.errno() == libc::EINVAL => {
                return Err(Error::Limit {
                    call: "shmget",
                    object: ObjectKind::Segment,
                    key,
                    detail: format!(
                        "a segment of {size} bytes is outside the kernel's SHMMIN..SHMMAX \
                         (sysctl kernel.shmmax)"
                    ),
                })
            }
            Err(e) => return Err(Error::sys(key, e)),
        };
        match Segment::attach(key, id) {
            Ok(seg) => Ok(Some(seg)),
            Err(err) => {
                // Never leave a half-made object behind: we created it, nobody else
                // can have attached yet, so removing it is ours to do.
                let _ = remove_id(key, id);
                Err(err)
            }
        }
    }

    /// Attaches the existing segment `id` for reading and writing.
    pub fn attach(key: IpcKey, id: i32) -> Result<Segment> {
        Segment::attach_with(key, id, false)
    }

    /// Attaches the existing segment `id` for reading only (`shmat(id, NULL,
    /// SHM_RDONLY)`), as `shm-inspect` does: the kernel maps the pages without write
    /// permission, so not even a bug of ours can change what the peers see. Such an
    /// attach offers copies only ([`Segment::read_bytes`],
    /// [`Segment::header_fields`]): the writing methods and the atomics refuse.
    pub fn attach_read_only(key: IpcKey, id: i32) -> Result<Segment> {
        Segment::attach_with(key, id, true)
    }

    fn attach_with(key: IpcKey, id: i32, read_only: bool) -> Result<Segment> {
        // The mapping's length is the segment's size, from the kernel's own record.
        let st = stat(key, id)?;
        let len = usize::try_from(st.size).map_err(|_| Error::Corrupt {
            key,
            detail: "segment size does not fit in memory".into(),
        })?;
        let result = shm::shmat(id, read_only);
        if trace::enabled() {
            let r = match &result {
                Ok(p) => format!("{:p}", *p),
                Err(e) => format!("(void*){}", trace::failure(&e.source)),
            };
            let (flags, why) = if read_only {
                ("SHM_RDONLY", "map the segment read-only: look, never touch")
            } else {
                (
                    "0",
                    "map the segment into our address space: `base` in the copies below",
                )
            };
            trace::call(Kind::Once, &format!("shmat({id}, NULL, {flags})"), &r, why);
        }
        let base = result.map_err(|e| match e.errno() {
            libc::EACCES => Error::Permission {
                call: "shmat",
                key,
                owner: Some(st.uid),
            },
            _ => Error::sys(key, e),
        })?;
        Ok(Segment {
            key,
            id,
            base,
            len,
            read_only,
        })
    }

    /// Whether this attach is read-only ([`Segment::attach_read_only`]).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The key this segment was found at.
    pub fn key(&self) -> IpcKey {
        self.key
    }

    /// The kernel's id (`shmid`, as shown by `ipcs -m`).
    pub fn id(&self) -> i32 {
        self.id
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never, for a valid segment).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `shmctl(IPC_STAT)` for this segment.
    pub fn stat(&self) -> Result<SegmentStat> {
        stat(self.key, self.id)
    }

    /// Removes the segment: IPC_RMID now (no new process can find it), and our own
    /// detach when `self` drops here. Returns whether there was anything to remove.
    pub fn remove(self) -> Result<bool> {
        remove_id(self.key, self.id)
    }

    /// Checks that `[offset, offset + len)` lies inside the mapping and returns the
    /// pointer to its start.
    #[inline]
    fn span(&self, offset: usize, len: usize) -> Result<*mut u8> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => {
                // SAFETY: offset + len <= self.len, so the result stays inside the
                // mapping (or one past its end when len == 0).
                Ok(unsafe { self.base.add(offset) })
            }
            _ => Err(Error::Corrupt {
                key: self.key,
                detail: format!(
                    "access of {len} bytes at offset {offset} is outside the {}-byte segment",
                    self.len
                ),
            }),
        }
    }

    /// Our header, as the atomics it is made of. Fails for a segment smaller than
    /// the header, and for a read-only attach (use [`Segment::header_fields`]).
    pub fn header(&self) -> Result<&Header> {
        self.check_writable()?;
        let p = self.span(0, layout::HEADER_SIZE)?;
        // SAFETY: the mapping has at least HEADER_SIZE bytes (checked by `span`) and
        // is page-aligned (shmat returns an SHMLBA-aligned address), so `p` is valid
        // and aligned for a Header, which is nothing but atomic integers: a shared
        // reference to atomics is sound however other threads or processes change
        // them, and this attach is writable, so their stores cannot fault. The
        // reference borrows `self`, so it cannot outlive the mapping.
        Ok(unsafe { &*p.cast::<Header>() })
    }

    /// Every header field, read once: by atomic loads on a read-write attach, by
    /// one copy of the header page on a read-only one. Fails only for a segment
    /// smaller than the header.
    pub fn header_fields(&self) -> Result<HeaderFields> {
        if !self.read_only {
            return Ok(self.header()?.fields());
        }
        let mut page = vec![0u8; layout::HEADER_SIZE];
        self.read_bytes(0, &mut page)?;
        HeaderFields::from_bytes(&page).ok_or_else(|| Error::internal("header page too short"))
    }

    /// The `u32` at `offset` as an atomic (4-aligned; read-write attaches only): for
    /// programs that use a segment their own way, like the race demo's counter.
    pub fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32> {
        self.check_writable()?;
        if offset % 4 != 0 {
            return Err(Error::Corrupt {
                key: self.key,
                detail: format!("unaligned u32 at {offset}"),
            });
        }
        let p = self.span(offset, 4)?;
        // SAFETY: in bounds and 4-aligned (the mapping is page-aligned); AtomicU32 has
        // the size and alignment of u32 and permits concurrent access from anywhere;
        // the attach is writable. The reference's lifetime is tied to &self, so it
        // cannot outlive the mapping.
        Ok(unsafe { AtomicU32::from_ptr(p.cast::<u32>()) })
    }

    /// The `i32` at `offset` as an atomic; see [`Segment::atomic_u32`].
    pub fn atomic_i32(&self, offset: usize) -> Result<&AtomicI32> {
        let a = self.atomic_u32(offset)?;
        // SAFETY: AtomicI32 and AtomicU32 have the same size, alignment and
        // representation; the pointer is the checked one behind `a`.
        Ok(unsafe { AtomicI32::from_ptr(a.as_ptr().cast::<i32>()) })
    }

    /// The `u64` at `offset` as an atomic (8-aligned); see [`Segment::atomic_u32`].
    pub fn atomic_u64(&self, offset: usize) -> Result<&AtomicU64> {
        self.check_writable()?;
        if offset % 8 != 0 {
            return Err(Error::Corrupt {
                key: self.key,
                detail: format!("unaligned u64 at {offset}"),
            });
        }
        let p = self.span(offset, 8)?;
        // SAFETY: as for atomic_u32, with 8-byte alignment checked above.
        Ok(unsafe { AtomicU64::from_ptr(p.cast::<u64>()) })
    }

    /// Copies `out.len()` bytes at `offset` out of the segment.
    pub fn read_bytes(&self, offset: usize, out: &mut [u8]) -> Result<()> {
        let p = self.span(offset, out.len())?;
        // SAFETY: the source span is in bounds (checked); the destination is our own
        // buffer, so the two cannot overlap. Raw-pointer copy: no reference to shared
        // bytes is formed, and any byte value is a valid u8.
        unsafe { std::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Refuses writes (and atomics) through a read-only attach: they would fault
    /// with SIGSEGV.
    fn check_writable(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::internal(format!(
                "shmid {} is attached read-only (SHM_RDONLY); it cannot be written",
                self.id
            )));
        }
        Ok(())
    }

    /// Appends `len` bytes at `offset` to `out` and continues the CRC-32C `crc` over
    /// them, in one sweep: each byte is loaded from the segment once, stored into
    /// `out`'s spare capacity (no zero-filling first) and folded into the checksum
    /// from the same register, so the checksum is exactly that of the bytes
    /// delivered, whatever a peer does to the slot meanwhile, and shared memory is
    /// read once, never borrowed as a slice.
    pub(crate) fn read_append_crc(
        &self,
        offset: usize,
        len: usize,
        out: &mut Vec<u8>,
        crc: u32,
    ) -> Result<u32> {
        let p = self.span(offset, len)?;
        out.reserve(len);
        let old = out.len();
        // SAFETY: the source span is in bounds (checked), and other processes may
        // write it meanwhile, which copy_crc32c allows (raw loads, any value); the
        // destination is `len` bytes of our own Vec's spare capacity (`reserve`),
        // private to us and disjoint from the mapping. Afterwards those bytes are
        // initialised (any byte value is a valid u8), so extending the length over
        // them is sound.
        let crc = unsafe {
            let crc = checksum::copy_crc32c(crc, p, out.as_mut_ptr().add(old), len);
            out.set_len(old + len);
            crc
        };
        Ok(crc)
    }

    /// Copies `data` into the segment at `offset`: for slots (whose bytes the
    /// semaphore protocol gives to one process at a time) and for programs that use a
    /// segment as bytes, such as a test playing a hostile process. Refused on a
    /// read-only attach.
    pub fn write_bytes(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check_writable()?;
        let p = self.span(offset, data.len())?;
        // SAFETY: the destination span is in bounds (checked) and the source is our
        // own buffer, so they cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
        Ok(())
    }

    /// Copies `data` into the segment at `offset` and continues the CRC-32C `crc`
    /// over it in the same sweep (each byte loaded once, stored and folded from one
    /// register): the writer's copy into a slot, one pass instead of a checksum pass
    /// and a copy pass. The checksum is of `data`, our own bytes, so what a peer does
    /// to the slot meanwhile cannot change it. Refused on a read-only attach.
    pub(crate) fn write_bytes_crc(&self, offset: usize, data: &[u8], crc: u32) -> Result<u32> {
        self.check_writable()?;
        let p = self.span(offset, data.len())?;
        // SAFETY: the destination span is in bounds (checked) and writable (not a
        // read-only attach); the source is our own buffer, disjoint from the mapping;
        // copy_crc32c stores through raw pointers, which other processes writing the
        // same bytes cannot make undefined.
        Ok(unsafe { checksum::copy_crc32c(crc, data.as_ptr(), p, data.len()) })
    }

    /// Reads the little-endian `u32` at `offset` once, by copy (for programs that
    /// look at a segment as bytes; the protocol's own code uses [`Segment::header`]).
    pub fn read_u32(&self, offset: usize) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read_bytes(offset, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads the little-endian `u64` at `offset` once, by copy.
    pub fn read_u64(&self, offset: usize) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read_bytes(offset, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Continues the CRC-32C `crc` over `len` bytes at `offset`, read in place with raw
    /// loads (never a slice): the writer's checksum of a slot it has just filled with
    /// `read(2)`, while the bytes are still in the cache.
    pub(crate) fn crc32c_append(&self, offset: usize, len: usize, crc: u32) -> Result<u32> {
        let p = self.span(offset, len)?;
        // SAFETY: the span is in bounds (checked) and stays mapped for the call (it
        // borrows `self`); crc32c_append_raw only loads through the pointer, and
        // allows other processes to write the bytes meanwhile.
        Ok(unsafe { checksum::crc32c_append_raw(crc, p, len) })
    }

    /// Fills up to `len` bytes at `offset` from a file descriptor with one `read(2)`,
    /// straight into the segment (no intermediate buffer), retrying on `EINTR`.
    /// Returns the byte count (0 at the end of the input).
    pub(crate) fn read_from_fd(
        &self,
        offset: usize,
        len: usize,
        fd: i32,
    ) -> std::io::Result<usize> {
        self.check_writable()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let p = self
            .span(offset, len)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        loop {
            // SAFETY: `p..p+len` is inside our writable mapping (checked above); the
            // kernel writes at most `len` bytes there.
            let n = unsafe { libc::read(fd, p.cast(), len) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: `base` came from shmat in `attach` and is detached only here; no
        // reference into the mapping outlives `self` (they all borrow `self`).
        let result = unsafe { shm::shmdt(self.base) };
        if trace::enabled() {
            trace::call(
                Kind::Once,
                &format!("shmdt({:p})", self.base),
                if result.is_ok() { "0" } else { "-1" },
                "unmap the segment (it stays in the kernel until removed)",
            );
        }
        // A failed detach can only mean the address is not attached, which cannot
        // happen here; there is nothing useful to do about it in a destructor.
        let _ = result;
    }
}
