//! The page for a terminal: aligned, with relative times and the ring drawn in rows
//! of cells, `H` and `T` marking HEAD and TAIL under each row.

use shm_common::view::{hex, role_name, Report};
use std::fmt::Write as _;

/// For a terminal: aligned, with relative times and the ring drawn in rows of
/// at most `width` cells, `H` and `T` marking HEAD and TAIL under each row.
pub fn page(r: &Report, width: usize) -> String {
    let mut o = String::new();
    let now = now_secs();
    let ago = |t: i64| {
        if t == 0 {
            "never".to_string()
        } else {
            format!("{}s ago", (now - t).max(0))
        }
    };
    let _ = writeln!(o, "key {}: {}", r.key, r.verdict.name());
    match &r.segment {
        None => o.push_str("segment   none\n"),
        Some(s) => {
            let _ = write!(o, "segment   shmid {}", s.shmid);
            if let Some(st) = &s.stat {
                let _ = write!(
                    o,
                    ", {} bytes, uid {}, mode {:04o}, {} attached{}\n          created by pid {} ({}), last shmat/shmdt by pid {}, attached {}, detached {}",
                    st.size,
                    st.uid,
                    st.mode,
                    st.attached,
                    if s.self_attached { " (one is this inspector)" } else { "" },
                    st.creator_pid,
                    ago(st.change_time),
                    st.last_pid,
                    ago(st.attach_time),
                    ago(st.detach_time)
                );
            }
            o.push('\n');
        }
    }
    if let Some(h) = &r.header {
        let _ = writeln!(
            o,
            "header    SVSHMRNG v{}, {} slots x {} bytes, state {}, flags {}",
            h.version,
            h.slots,
            h.slot_size,
            h.state_name(),
            h.flag_names()
        );
        let _ = writeln!(
            o,
            "          joined: {} writer(s), {} reader(s); finished: {} / {}",
            h.writers_joined, h.readers_joined, h.writers_finished, h.readers_finished
        );
        let _ = writeln!(
            o,
            "          published {} frames ({} bytes), consumed {} frames ({} bytes)",
            h.frames_published, h.bytes_published, h.frames_consumed, h.bytes_consumed
        );
        let holder = |p: i32| {
            if p == 0 {
                "free".to_string()
            } else {
                format!("pid {p}")
            }
        };
        let _ = writeln!(
            o,
            "          write mutex {}, read mutex {}",
            holder(h.write_mutex_holder),
            holder(h.read_mutex_holder)
        );
        for p in &h.peers {
            let _ = writeln!(
                o,
                "          peer {} pid {} {} {}",
                p.index,
                p.pid,
                role_name(p.role),
                crate::peer_state(p)
            );
        }
    } else if let Some(why) = &r.header_problem {
        let _ = writeln!(
            o,
            "header    not ours: {why}\n          first bytes: {}",
            hex(r.first_bytes.as_deref().unwrap_or(&[]))
        );
    }
    match &r.semset {
        None => o.push_str("semset    none\n"),
        Some(s) => {
            let _ = write!(o, "semset    semid {}", s.semid);
            if let Some(st) = &s.stat {
                let _ = write!(
                    o,
                    ", {} members, uid {}, mode {:04o}, last semop {}",
                    st.nsems,
                    st.uid,
                    st.mode,
                    ago(st.otime)
                );
            }
            o.push('\n');
            let _ = writeln!(
                o,
                "          {:<12} {:>6} {:>8} {:>6} {:>6}",
                "member", "value", "lastpid", "ncnt", "zcnt"
            );
            for m in &s.members {
                let _ = writeln!(
                    o,
                    "          {:<12} {:>6} {:>8} {:>6} {:>6}",
                    m.name, m.value, m.pid, m.ncnt, m.zcnt
                );
            }
        }
    }
    if let Some(r) = &r.ring {
        let _ = writeln!(
            o,
            "ring      {} free, {} filled, {} being written, {} being read   (. free  # filled  w writing  r reading)",
            r.free, r.filled, r.writing, r.reading
        );
        let width = width.max(8);
        let pic: Vec<char> = r.picture().chars().collect();
        for (row, chunk) in pic.chunks(width).enumerate() {
            let start = row * width;
            let line: String = chunk.iter().collect();
            let _ = writeln!(o, "  {start:>5} [{line}]");
            let mut marks = vec![' '; chunk.len()];
            for (pos, ch) in [(r.tail as usize, 'T'), (r.head as usize, 'H')] {
                if (start..start + chunk.len()).contains(&pos) {
                    let m = &mut marks[pos - start];
                    *m = if *m == ' ' { ch } else { '*' };
                }
            }
            if marks.iter().any(|&c| c != ' ') {
                let marks: String = marks.into_iter().collect();
                let _ = writeln!(o, "         {}", marks.trim_end());
            }
        }
        let _ = writeln!(
            o,
            "          H = HEAD {} (next slot to write), T = TAIL {} (next slot to read), * both",
            r.head, r.tail
        );
    }
    for n in &r.notes {
        let _ = writeln!(o, "note      {n}");
    }
    o
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
