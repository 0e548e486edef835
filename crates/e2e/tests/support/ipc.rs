//! Looks at the kernel's objects from the test: semaphore values, header fields,
//! who created what. Read-only, except where a test plays a hostile process.

use shm_common::layout::sem;
use shm_common::{segment, semaphore, IpcKey};

/// Semaphore values at `key` (GETALL), if one of our 9-member sets is there.
pub fn sem_values(key: IpcKey) -> Option<Vec<u16>> {
    let id = semaphore::find(key).ok()??;
    let set = semaphore::SemaphoreSet::open(key, id, sem::NAMES).ok()?;
    set.values().ok()
}

/// One semaphore of the set at `key`.
pub fn sem_value(key: IpcKey, member: u16) -> Option<u16> {
    sem_values(key).and_then(|v| v.get(usize::from(member)).copied())
}

/// A u64 header field of the segment at `key` (attach, read, detach).
pub fn header_u64(key: IpcKey, offset: usize) -> Option<u64> {
    let id = segment::find(key).ok()??;
    let seg = segment::Segment::attach(key, id).ok()?;
    seg.read_u64(offset).ok()
}

/// A u32 header field of the segment at `key`.
pub fn header_u32(key: IpcKey, offset: usize) -> Option<u32> {
    let id = segment::find(key).ok()??;
    let seg = segment::Segment::attach(key, id).ok()?;
    seg.read_u32(offset).ok()
}

/// Payload bytes the readers have consumed (header field), 0 if none yet.
pub fn bytes_consumed(key: IpcKey) -> u64 {
    header_u64(key, shm_common::layout::off::BYTES_CONSUMED).unwrap_or(0)
}

/// The one-letter state of a process (`R`, `S`, `T`...) from /proc.
pub fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Segments (from /proc/sysvipc/shm) whose creator pid is `pid`: (key, shmid).
pub fn segments_created_by(pid: i32) -> Vec<(i64, i64)> {
    let text = std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(ck), Some(ci), Some(cp)) = (col("key"), col("shmid"), col("cpid")) else {
        return Vec::new();
    };
    lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let p: i32 = f.get(cp)?.parse().ok()?;
            (p == pid).then(|| Some((f.get(ck)?.parse().ok()?, f.get(ci)?.parse().ok()?)))?
        })
        .collect()
}

/// Objects whose key is 0 (IPC_PRIVATE) in /proc/sysvipc/{shm,sem}: what a key that
/// wrongly became IPC_PRIVATE would create.
pub fn private_objects() -> (usize, usize) {
    let count = |path: &str| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter(|l| l.split_whitespace().next() == Some("0"))
            .count()
    };
    (count("/proc/sysvipc/shm"), count("/proc/sysvipc/sem"))
}

/// The segment at `key`: (shmid, bytes), if one is there.
pub fn segment_at(key: IpcKey) -> Option<(i64, u64)> {
    let id = segment::find(key).ok()??;
    let st = segment::stat(key, id).ok()?;
    Some((i64::from(id), st.size))
}
