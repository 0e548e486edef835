//! Fresh System V keys: one allocator for every tool and test suite that needs a
//! key nobody else is using, each user of it in its own documented range.
//!
//! A key is only a name; two runs that pick the same one meet in the kernel and
//! ruin each other's objects. Picking at random and checking `ipcs` is not enough
//! when several suites start at once: two of them can see the same key free and
//! both take it. So a key is *claimed* before it is used: a one-byte lock on a
//! file shared by every process of this user (an open-file-description lock,
//! `F_OFD_SETLK`, which the kernel drops when the process dies, so a crashed run
//! never leaves a claim behind), and only then checked to be free in the kernel.
//! A claim lasts as long as its [`ClaimedKey`].
//!
//! | range | user |
//! |---|---|
//! | `0x7e1xxxxx` | integration tests of `writer`/`reader` (crates/e2e: pair, multi, faults, chaos, explain, hostile) |
//! | `0x7e2xxxxx` | `shm-inspect` tests |
//! | `0x7e3xxxxx` | `shm-race` tests |
//! | `0x7e4xxxxx` | `shm-bench` (every run, `make bench` and the smoke test) |
//! | `0x7e5xxxxx` | interop tests with the C peer (peers/c) |
//! | `0x7e6xxxxx` | the examples and doc tests run in CI |
//! | `0x5acexxxx` | `shm-race` without `--key` (16 bits: a person's run) |
//!
//! Everything in `0x7e......` belongs to a test or a benchmark: `make test` fails
//! if anything is left there afterwards (`scripts/check-clean.sh`).

use shm_common::{segment, semaphore, IpcKey};
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// A block of keys reserved for one user of the allocator (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// The first key of the block.
    base: u32,
    /// Number of low bits that vary (the block holds `1 << bits` keys).
    bits: u32,
    /// Short name, for lock files and messages.
    name: &'static str,
}

impl Range {
    /// Integration tests of the `writer` and `reader` binaries.
    pub const E2E: Range = Range::new(0x7e10_0000, 20, "e2e");
    /// `shm-inspect` tests.
    pub const INSPECT: Range = Range::new(0x7e20_0000, 20, "inspect");
    /// `shm-race` tests.
    pub const RACE_TESTS: Range = Range::new(0x7e30_0000, 20, "race-tests");
    /// `shm-bench`, also when the smoke test runs it.
    pub const BENCH: Range = Range::new(0x7e40_0000, 20, "bench");
    /// Interop tests with the C reference peer.
    pub const INTEROP: Range = Range::new(0x7e50_0000, 20, "interop");
    /// The examples and doc tests.
    pub const EXAMPLES: Range = Range::new(0x7e60_0000, 20, "examples");
    /// `shm-race` when no `--key` is given.
    pub const RACE: Range = Range::new(0x5ace_0000, 16, "race");

    const fn new(base: u32, bits: u32, name: &'static str) -> Range {
        Range { base, bits, name }
    }

    /// Whether `key` lies in this range.
    pub fn contains(self, key: IpcKey) -> bool {
        (key.raw() as u32) >> self.bits == self.base >> self.bits
    }

    /// The range's name (`e2e`, `bench`, ...).
    pub fn name(self) -> &'static str {
        self.name
    }

    fn size(self) -> u32 {
        1 << self.bits
    }
}

/// A key claimed for this process: nobody else who uses the allocator gets it
/// until this value is dropped (or the process dies), and nothing was at it in
/// the kernel when it was claimed. Dropping it releases the claim only; removing
/// what was created at the key is the owner's decision.
#[derive(Debug)]
pub struct ClaimedKey {
    key: IpcKey,
    /// The open file whose one-byte lock is the claim; closing it releases it.
    _lock: File,
}

impl ClaimedKey {
    /// The key.
    pub fn key(&self) -> IpcKey {
        self.key
    }
}

/// Claims a key of `range` that is free in the kernel. Fails only if the lock file
/// cannot be opened or every key of the range is taken.
pub fn claim(range: Range) -> io::Result<ClaimedKey> {
    let path = lock_path(range);
    let start = start_index(range);
    for i in 0..range.size() {
        let index = (start + i) % range.size();
        let raw = range.base | index;
        let Ok(key) = IpcKey::new(raw as libc::key_t) else {
            continue;
        };
        // A fresh open per claim: OFD locks belong to the open file description,
        // so two claims of one process conflict exactly like those of two processes.
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        if !lock_byte(&file, index)? {
            continue; // another claim holds it
        }
        if is_free(key) {
            return Ok(ClaimedKey { key, _lock: file });
        }
        // Something is there (a leftover, or a user's own object): never ours to touch.
    }
    Err(io::Error::other(format!(
        "every key of the {} range ({:#010x}, {} keys) is claimed or in use",
        range.name,
        range.base,
        range.size()
    )))
}

/// `<tmp>/shm-ipc-keys-<uid>-<range>.lock`: one file per user and range, so that a
/// file made by one user never blocks another's claims.
fn lock_path(range: Range) -> PathBuf {
    let uid = nix::unistd::geteuid().as_raw();
    std::env::temp_dir().join(format!("shm-ipc-keys-{uid}-{}.lock", range.name))
}

/// Where to start looking: spread by pid, time and a per-process counter, so that
/// concurrent claimers rarely probe the same keys first.
fn start_index(range: Range) -> u32 {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let mut x = u64::from(std::process::id()) << 32
        ^ nanos
        ^ CALLS
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // splitmix64's finaliser: every input bit moves every output bit.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x % u64::from(range.size())) as u32
}

/// Takes a write lock on byte `index` of `file` without waiting. `Ok(false)`: held.
fn lock_byte(file: &File, index: u32) -> io::Result<bool> {
    use nix::fcntl::{fcntl, FcntlArg};
    let lock = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: libc::off_t::from(index),
        l_len: 1,
        // OFD locks require l_pid = 0.
        l_pid: 0,
    };
    match fcntl(file.as_fd(), FcntlArg::F_OFD_SETLK(&lock)) {
        Ok(_) => Ok(true),
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => Ok(false),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// Nothing at the key: neither a segment nor a semaphore set (and nothing we are
/// not allowed to look at either).
fn is_free(key: IpcKey) -> bool {
    matches!(segment::find(key), Ok(None)) && matches!(semaphore::find(key), Ok(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_distinct_and_in_range() {
        let claims: Vec<ClaimedKey> = (0..64)
            .map(|_| claim(Range::EXAMPLES).expect("claim"))
            .collect();
        let mut keys: Vec<i32> = claims.iter().map(|c| c.key().raw()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 64, "two claims got the same key");
        assert!(claims.iter().all(|c| Range::EXAMPLES.contains(c.key())));
        assert!(!Range::E2E.contains(claims[0].key()));
    }

    #[test]
    fn a_held_claim_is_not_handed_out_again() {
        let first = claim(Range::EXAMPLES).expect("claim");
        let index = (first.key().raw() as u32) & (Range::EXAMPLES.size() - 1);
        let file = File::options()
            .read(true)
            .write(true)
            .open(lock_path(Range::EXAMPLES))
            .expect("open");
        assert!(!lock_byte(&file, index).expect("lock"), "claim not held");
        drop(first);
        assert!(lock_byte(&file, index).expect("lock"), "claim not released");
    }

    #[test]
    fn ranges_do_not_overlap() {
        let all = [
            Range::E2E,
            Range::INSPECT,
            Range::RACE_TESTS,
            Range::BENCH,
            Range::INTEROP,
            Range::EXAMPLES,
            Range::RACE,
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                let (lo, hi) = if a.base < b.base { (a, b) } else { (b, a) };
                assert!(
                    u64::from(lo.base) + u64::from(lo.size()) <= u64::from(hi.base),
                    "{} overlaps {}",
                    lo.name,
                    hi.name
                );
            }
        }
    }
}
