//! Reports made by hand for the unit tests: what the library would see at a key.

use shm_common::layout::{self, sem, State};
use shm_common::segment::SegmentStat;
use shm_common::semaphore::SetStat;
use shm_common::view::{
    HeaderInfo, Peer, Report, RingInfo, SegmentInfo, SemMember, SemSetInfo, Verdict,
};
use shm_common::IpcKey;

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A live session of `slots` slots: `filled` of them filled from TAIL 0, one writer
/// (pid 100) and one reader (pid 200), nobody attached but them.
pub fn session(slots: u32, filled: u16) -> Report {
    let mut v = [0u16; sem::COUNT];
    v[usize::from(sem::FREE)] = slots as u16 - filled;
    v[usize::from(sem::FILLED)] = filled;
    v[usize::from(sem::HEAD)] = filled % slots as u16;
    v[usize::from(sem::WRITE_MUTEX)] = 1;
    v[usize::from(sem::READ_MUTEX)] = 1;
    v[usize::from(sem::WRITERS)] = 1;
    v[usize::from(sem::READERS)] = 1;
    let t = now() - 100;
    let members = v
        .iter()
        .enumerate()
        .map(|(i, &value)| SemMember {
            index: i as u16,
            name: sem::NAMES[i].to_string(),
            value: i32::from(value),
            pid: 100,
            ncnt: 0,
            zcnt: 0,
        })
        .collect();
    let peer = |index, pid, role| Peer {
        index,
        pid,
        role,
        id: 1,
        alive: true,
        stopped: false,
    };
    Report {
        key: IpcKey::new(0x7e2f_0001).expect("a key"),
        verdict: Verdict::Ours,
        segment: Some(SegmentInfo {
            shmid: 11,
            stat: Some(SegmentStat {
                size: 4096 + u64::from(slots) * 4096,
                uid: 0,
                mode: 0o600,
                attached: 2,
                creator_pid: 100,
                last_pid: 200,
                attach_time: t,
                detach_time: 0,
                change_time: t,
            }),
            self_attached: false,
        }),
        header: Some(HeaderInfo {
            version: 2,
            header_size: 4096,
            slots,
            slot_size: 4096,
            state: State::Open as u32,
            writers_joined: 1,
            readers_joined: 1,
            creator_pid: 100,
            peers: vec![
                peer(0, 100, layout::ROLE_WRITER),
                peer(1, 200, layout::ROLE_READER),
            ],
            ..HeaderInfo::default()
        }),
        header_problem: None,
        first_bytes: None,
        semset: Some(SemSetInfo {
            semid: 22,
            stat: Some(SetStat {
                uid: 0,
                mode: 0o600,
                nsems: sem::COUNT as u64,
                otime: t,
                ctime: t,
            }),
            members,
        }),
        ring: RingInfo::from_sems(slots, &v),
        notes: Vec::new(),
    }
}

/// Sets one semaphore's value (and the ring it describes).
pub fn set(r: &mut Report, member: u16, value: i32) {
    if let Some(s) = &mut r.semset {
        s.members[usize::from(member)].value = value;
        let v: Vec<u16> = s.members.iter().map(|m| m.value as u16).collect();
        r.ring = RingInfo::from_sems(r.header.as_ref().map_or(0, |h| h.slots), &v);
    }
}

/// Both peers killed: the kernel undid their counts and detached them.
pub fn killed(mut r: Report) -> Report {
    set(&mut r, sem::WRITERS, 0);
    set(&mut r, sem::READERS, 0);
    if let Some(s) = r.segment.as_mut().and_then(|s| s.stat.as_mut()) {
        s.attached = 0;
    }
    if let Some(h) = &mut r.header {
        for p in &mut h.peers {
            p.alive = false;
        }
    }
    r
}

/// The segment's `IPC_STAT`, to change.
pub fn seg_stat(r: &mut Report) -> &mut SegmentStat {
    r.segment
        .as_mut()
        .and_then(|s| s.stat.as_mut())
        .expect("a segment with its stat")
}

/// The set's `IPC_STAT`, to change.
pub fn set_stat(r: &mut Report) -> &mut SetStat {
    r.semset
        .as_mut()
        .and_then(|s| s.stat.as_mut())
        .expect("a set with its stat")
}
