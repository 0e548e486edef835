//! The same content as the plain format, as one JSON object (absent parts are
//! `null`): a schema of its own, built from the library's [`Report`] and written by
//! serde_json, so that escaping and syntax are the standard's, not ours.

use serde::Serialize;
use shm_common::view::{hex, role_name, Report};

#[derive(Serialize)]
struct Json<'a> {
    key: String,
    verdict: &'static str,
    segment: Option<Segment>,
    header: Option<Header>,
    header_problem: Option<&'a str>,
    first_bytes: Option<String>,
    semset: Option<SemSet<'a>>,
    ring: Option<Ring>,
    notes: &'a [String],
}

#[derive(Serialize)]
struct Segment {
    shmid: i32,
    #[serde(flatten)]
    stat: Option<SegmentStat>,
    self_attached: bool,
}

#[derive(Serialize)]
struct SegmentStat {
    size: u64,
    uid: u32,
    mode: String,
    nattch: u64,
    cpid: i32,
    lpid: i32,
    atime: i64,
    dtime: i64,
    ctime: i64,
}

#[derive(Serialize)]
struct Header {
    magic: &'static str,
    version: u32,
    header_size: u32,
    slots: u32,
    slot_size: u32,
    segment_size: u64,
    state: String,
    flags: String,
    creator_pid: i32,
    next_writer_id: u32,
    writers_joined: u32,
    readers_joined: u32,
    writers_finished: u32,
    readers_finished: u32,
    frames_published: u64,
    bytes_published: u64,
    frames_consumed: u64,
    bytes_consumed: u64,
    write_mutex_holder: i32,
    read_mutex_holder: i32,
    peers: Vec<Peer>,
}

#[derive(Serialize)]
struct Peer {
    index: usize,
    pid: i32,
    role: String,
    id: u32,
    alive: bool,
    /// `running`, `stopped` or `gone` (added after `alive`, which stays).
    state: &'static str,
}

#[derive(Serialize)]
struct SemSet<'a> {
    semid: i32,
    #[serde(flatten)]
    stat: Option<SetStat>,
    members: Vec<Member<'a>>,
}

#[derive(Serialize)]
struct SetStat {
    nsems: u64,
    uid: u32,
    mode: String,
    otime: i64,
    ctime: i64,
}

#[derive(Serialize)]
struct Member<'a> {
    index: u16,
    name: &'a str,
    value: i32,
    pid: i32,
    ncnt: i32,
    zcnt: i32,
}

#[derive(Serialize)]
struct Ring {
    slots: u32,
    head: u32,
    tail: u32,
    free: u32,
    filled: u32,
    writing: u32,
    reading: u32,
    cells: String,
}

/// The report as one line of JSON.
pub fn json(r: &Report) -> String {
    let j = Json {
        key: r.key.to_string(),
        verdict: r.verdict.name(),
        segment: r.segment.as_ref().map(|s| Segment {
            shmid: s.shmid,
            stat: s.stat.map(|st| SegmentStat {
                size: st.size,
                uid: st.uid,
                mode: format!("{:04o}", st.mode),
                nattch: st.attached,
                cpid: st.creator_pid,
                lpid: st.last_pid,
                atime: st.attach_time,
                dtime: st.detach_time,
                ctime: st.change_time,
            }),
            self_attached: s.self_attached,
        }),
        header: r.header.as_ref().map(|h| Header {
            magic: "SVSHMRNG",
            version: h.version,
            header_size: h.header_size,
            slots: h.slots,
            slot_size: h.slot_size,
            segment_size: h.segment_size,
            state: h.state_name(),
            flags: h.flag_names(),
            creator_pid: h.creator_pid,
            next_writer_id: h.next_writer_id,
            writers_joined: h.writers_joined,
            readers_joined: h.readers_joined,
            writers_finished: h.writers_finished,
            readers_finished: h.readers_finished,
            frames_published: h.frames_published,
            bytes_published: h.bytes_published,
            frames_consumed: h.frames_consumed,
            bytes_consumed: h.bytes_consumed,
            write_mutex_holder: h.write_mutex_holder,
            read_mutex_holder: h.read_mutex_holder,
            peers: h
                .peers
                .iter()
                .map(|p| Peer {
                    index: p.index,
                    pid: p.pid,
                    role: role_name(p.role),
                    id: p.id,
                    alive: p.alive,
                    state: crate::peer_state(p),
                })
                .collect(),
        }),
        header_problem: r.header_problem.as_deref(),
        first_bytes: r.first_bytes.as_deref().map(hex),
        semset: r.semset.as_ref().map(|s| SemSet {
            semid: s.semid,
            stat: s.stat.map(|st| SetStat {
                nsems: st.nsems,
                uid: st.uid,
                mode: format!("{:04o}", st.mode),
                otime: st.otime,
                ctime: st.ctime,
            }),
            members: s
                .members
                .iter()
                .map(|m| Member {
                    index: m.index,
                    name: &m.name,
                    value: m.value,
                    pid: m.pid,
                    ncnt: m.ncnt,
                    zcnt: m.zcnt,
                })
                .collect(),
        }),
        ring: r.ring.as_ref().map(|ring| Ring {
            slots: ring.slots,
            head: ring.head,
            tail: ring.tail,
            free: ring.free,
            filled: ring.filled,
            writing: ring.writing,
            reading: ring.reading,
            cells: ring.picture(),
        }),
        notes: &r.notes,
    };
    // Serialising plain integers, strings and booleans cannot fail.
    let mut text = serde_json::to_string(&j).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    text.push('\n');
    text
}
