//! The stable text format, for scripts and tests: one record per line, `name: k=v
//! k=v`, except the `sem NAME k=v...` lines. Absent objects print as `segment: none`
//! and `semset: none`. Numbers are decimal, times seconds since the epoch (0: never).

use shm_common::view::{hex, role_name, Report};
use std::fmt::Write as _;

/// The stable text format: one record per line, `name: k=v k=v`, except the
/// `sem NAME k=v...` lines. Absent objects print as `segment: none` and
/// `semset: none`. Numbers are decimal, times seconds since the epoch (0: never).
pub fn plain(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "key: {}", r.key);
    let _ = writeln!(o, "verdict: {}", r.verdict.name());
    match &r.segment {
        None => o.push_str("segment: none\n"),
        Some(s) => {
            let _ = write!(o, "segment: shmid={}", s.shmid);
            if let Some(st) = &s.stat {
                let _ = write!(
                    o,
                    " size={} uid={} mode={:04o} nattch={} cpid={} lpid={} atime={} dtime={} ctime={}",
                    st.size, st.uid, st.mode, st.attached, st.creator_pid, st.last_pid,
                    st.attach_time, st.detach_time, st.change_time
                );
            }
            let _ = writeln!(o, " self_attached={}", yes(s.self_attached));
        }
    }
    if let Some(h) = &r.header {
        let _ = writeln!(
            o,
            "header: magic=SVSHMRNG version={} header_size={} slots={} slot_size={} segment_size={} state={} flags={} creator_pid={} next_writer_id={}",
            h.version, h.header_size, h.slots, h.slot_size, h.segment_size,
            h.state_name(), h.flag_names(), h.creator_pid, h.next_writer_id
        );
        let _ = writeln!(
            o,
            "counters: writers_joined={} readers_joined={} writers_finished={} readers_finished={} frames_published={} bytes_published={} frames_consumed={} bytes_consumed={}",
            h.writers_joined, h.readers_joined, h.writers_finished, h.readers_finished,
            h.frames_published, h.bytes_published, h.frames_consumed, h.bytes_consumed
        );
        let _ = writeln!(
            o,
            "mutex: write_holder={} read_holder={}",
            h.write_mutex_holder, h.read_mutex_holder
        );
        for p in &h.peers {
            let _ = writeln!(
                o,
                "peer: index={} pid={} role={} id={} alive={} state={}",
                p.index,
                p.pid,
                role_name(p.role),
                p.id,
                yes(p.alive),
                crate::peer_state(p)
            );
        }
    } else if let Some(why) = &r.header_problem {
        let _ = writeln!(
            o,
            "header: not-ours first_bytes={} reason={why:?}",
            hex(r.first_bytes.as_deref().unwrap_or(&[]))
        );
    }
    match &r.semset {
        None => o.push_str("semset: none\n"),
        Some(s) => {
            let _ = write!(o, "semset: semid={}", s.semid);
            if let Some(st) = &s.stat {
                let _ = write!(
                    o,
                    " nsems={} uid={} mode={:04o} otime={} ctime={}",
                    st.nsems, st.uid, st.mode, st.otime, st.ctime
                );
            }
            o.push('\n');
            for m in &s.members {
                let _ = writeln!(
                    o,
                    "sem {} value={} pid={} ncnt={} zcnt={}",
                    m.name, m.value, m.pid, m.ncnt, m.zcnt
                );
            }
        }
    }
    if let Some(ring) = &r.ring {
        let _ = writeln!(
            o,
            "ring: slots={} head={} tail={} free={} filled={} writing={} reading={}",
            ring.slots, ring.head, ring.tail, ring.free, ring.filled, ring.writing, ring.reading
        );
        let _ = writeln!(o, "cells: {}", ring.picture());
    }
    for n in &r.notes {
        let _ = writeln!(o, "note: {n}");
    }
    o
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
