//! The pieces of the watch view, each a few lines: the title, the ring's rows and
//! legend, the semaphores, the peers, the details. Each fits the width it is
//! given, choosing a shorter phrase rather than being cut where it can.

use super::wrap::facts_lines;
use super::{block, Block, Layout, Line, Tone};
use crate::cells::Picture;
use crate::leftovers::Leftover;
use crate::{peer_state, waits};
use shm_common::layout::sem;
use shm_common::view::{role_name, Report, Verdict};

/// `key 0x...: ours - live, 1 writer, 1 reader`, and the help on the right.
pub(super) fn title(r: &Report, l: &Layout, leftover: Option<&Leftover>) -> Line {
    let compact = l.compact();
    let tone = match r.verdict {
        Verdict::Ours => Tone::Good,
        Verdict::Nothing => Tone::Dim,
        Verdict::Incomplete => Tone::Warn,
        Verdict::Foreign | Verdict::Unreadable => Tone::Bad,
    };
    let mut line = Line::default()
        .push(format!("key {}: ", r.key), Tone::Strong)
        .push(r.verdict.name(), tone);
    match leftover {
        Some(Leftover::Abandoned { .. }) => line = line.push(" - abandoned", Tone::Bad),
        Some(Leftover::WaitsForReader) => line = line.push(" - waits for a reader", Tone::Warn),
        None => {
            if let (Verdict::Ours, Some(m)) = (r.verdict, waits::members(r)) {
                let (w, rd) = (
                    m[usize::from(sem::WRITERS)].value,
                    m[usize::from(sem::READERS)].value,
                );
                let s = |n: i32| if n == 1 { "" } else { "s" };
                let live = match (w + rd, compact) {
                    // Between a peer's steps (joining, leaving), or about to be
                    // judged abandoned.
                    (0, _) => " - no writer or reader".to_string(),
                    (_, true) => " - live".to_string(),
                    (_, false) => format!(" - live: {w} writer{}, {rd} reader{}", s(w), s(rd)),
                };
                line = line.push(live, Tone::Plain);
            }
        }
    }
    let help = if compact {
        "q quits".to_string()
    } else {
        format!("every {}, q quits", l.interval)
    };
    let at = l.cols.saturating_sub(help.len());
    if line.width() + 2 <= at {
        line = line.pad(at).push(help, Tone::Dim);
    }
    line
}

/// The ring's rows: `   0 [....####]`, and the HEAD/TAIL marks under them.
pub(super) fn ring_rows(p: &Picture, label: usize) -> Vec<Line> {
    let mut v = Vec::new();
    for row in &p.rows {
        v.push(
            Line::default()
                .push(format!("{:>label$} ", row.first_slot), Tone::Dim)
                .push("[", Tone::Dim)
                .push(row.cells.clone(), Tone::Plain)
                .push("]", Tone::Dim),
        );
        if let Some(m) = &row.marks {
            v.push(
                Line::default()
                    .push(" ".repeat(label + 2), Tone::Plain)
                    .push(m.clone(), Tone::Strong),
            );
        }
    }
    v
}

pub(super) fn head_tail(head: u32, tail: u32, scale: u32, compact: bool, cols: usize) -> Line {
    let t = if compact {
        format!("H=HEAD {head}  T=TAIL {tail}")
    } else {
        format!("H = HEAD {head} (next to write)   T = TAIL {tail} (next to read)")
    };
    let says = if scale > 1 {
        vec![
            format!("{t}   1 cell = {scale} slots"),
            format!("{t}  {scale} slots/cell"),
            format!("{t} /{scale}"),
        ]
    } else {
        vec![t]
    };
    Line::default().push(first_fit(&says, cols), Tone::Plain)
}

pub(super) fn legend(scale: u32, compact: bool) -> Line {
    let mut t = if compact {
        ". free # filled w/r mid-batch".to_string()
    } else {
        ". free  # filled  w being written  r being read  * H and T".to_string()
    };
    if scale > 1 {
        t += if compact {
            " : both"
        } else {
            "  : both . and #"
        };
    }
    Line::default().push(t, Tone::Dim)
}

/// FREE and FILLED with who sleeps on them; the mutexes with their holders.
pub(super) fn semaphores(r: &Report, compact: bool, cols: usize) -> Vec<Block> {
    let Some(m) = waits::members(r) else {
        return Vec::new();
    };
    // Each column's width; a phrase too long for it gives way to a shorter one.
    let (left, right) = if compact {
        (cols, cols)
    } else {
        (COLUMN - 1, cols.saturating_sub(COLUMN))
    };
    let count = |i: u16, who: &str, why: &str| {
        let mm = &m[usize::from(i)];
        let l = Line::default()
            .push(format!("{:<7}", sem::NAMES[usize::from(i)]), Tone::Strong)
            .push(format!("{:>5}  ", mm.value), Tone::Plain);
        let room = left.saturating_sub(l.width());
        match mm.ncnt {
            0 => l.push("nobody asleep", Tone::Dim),
            n => {
                let s = if n == 1 { "" } else { "s" };
                let says = [
                    format!("{n} {who}{s} asleep ({why})"),
                    format!("{n} {who}{s} asleep"),
                    format!("{n} asleep"),
                ];
                l.push(first_fit(&says, room), Tone::Warn)
            }
        }
    };
    let mutex = |i: u16| {
        let mm = &m[usize::from(i)];
        let l = Line::default().push(format!("{:<12}", sem::NAMES[usize::from(i)]), Tone::Strong);
        let room = right.saturating_sub(l.width());
        let waiting = match mm.ncnt {
            0 => String::new(),
            n => format!(", {n} waiting"),
        };
        match mm.value {
            1 => l.push("free", Tone::Good).push(waiting, Tone::Warn),
            0 => {
                let pid = mm.pid;
                let says = match waits::role_of(r, pid) {
                    Some((role, true)) => vec![
                        format!("held by pid {pid} ({role}, stopped){waiting}"),
                        format!("held by {pid}, stopped {role}{waiting}"),
                        format!("held by {pid} (stopped){waiting}"),
                        format!("held by {pid} (stopped)"),
                    ],
                    Some((role, false)) => vec![
                        format!("held by pid {pid} ({role}){waiting}"),
                        format!("held by {pid} ({role}){waiting}"),
                        format!("held by {pid}{waiting}"),
                    ],
                    None => vec![format!("held by pid {pid}{waiting}")],
                };
                l.push(first_fit(&says, room), Tone::Warn)
            }
            v => l.push(format!("value {v}?"), Tone::Bad),
        }
    };
    let free = count(sem::FREE, "writer", "full");
    let filled = count(sem::FILLED, "reader", "empty");
    let (wm, rm) = (mutex(sem::WRITE_MUTEX), mutex(sem::READ_MUTEX));
    if compact {
        vec![block(2, vec![free, filled]), block(2, vec![wm, rm])]
    } else {
        let side = |a: Line, b: Line| {
            let mut l = a.fit(COLUMN - 1).pad(COLUMN);
            l.spans.extend(b.spans);
            l
        };
        vec![block(2, vec![side(free, wm), side(filled, rm)])]
    }
}

/// The first of `says` that fits `room` columns (else the last: cut when drawn).
pub(super) fn first_fit(says: &[String], room: usize) -> String {
    says.iter()
        .find(|s| s.len() <= room)
        .or(says.last())
        .cloned()
        .unwrap_or_default()
}

/// The second column of the wide view starts here.
pub(super) const COLUMN: usize = 40;

/// The peer table, one peer per column (two columns when wide).
pub(super) fn peers(r: &Report, compact: bool) -> Vec<Block> {
    let Some(h) = &r.header else {
        return Vec::new();
    };
    if h.peers.is_empty() {
        return vec![block(
            4,
            vec![Line::default().push("no peer in the table", Tone::Dim)],
        )];
    }
    let one = |p: &shm_common::view::Peer| {
        let state = peer_state(p);
        let tone = match state {
            "running" => Tone::Good,
            "stopped" => Tone::Bad,
            _ => Tone::Dim,
        };
        Line::default()
            .push(format!("{:<6} ", role_name(p.role)), Tone::Strong)
            .push(format!("pid {} id {} ", p.pid, p.id), Tone::Plain)
            .push(state, tone)
    };
    let per_line = if compact { 1 } else { 2 };
    let mut lines: Vec<Line> = h
        .peers
        .chunks(per_line)
        .map(|c| {
            let mut l = one(&c[0]);
            if let Some(p) = c.get(1) {
                l = l.fit(COLUMN - 1).pad(COLUMN);
                l.spans.extend(one(p).spans);
            }
            l
        })
        .collect();
    // The first lines with the rest, so that a long table gives way to the ring.
    let rest = lines.split_off(lines.len().min(2));
    let mut v = vec![block(2, lines)];
    if !rest.is_empty() {
        v.push(block(5, rest));
    }
    v
}

/// The details, each a group of lines shown whole; the semaphore table when there
/// is `room` for it, else its values on one line.
pub(super) fn details_of(r: &Report, compact: bool, cols: usize, room: usize) -> Vec<Vec<Line>> {
    let mut d = Vec::new();
    let now = now_secs();
    let ago = |t: i64| {
        if t == 0 {
            "never".to_string()
        } else {
            format!("{}s ago", (now - t).max(0))
        }
    };
    let label = |name: &str| Line::default().push(format!("{name:<8}"), Tone::Dim);
    // A label and its facts, wrapped (on a narrow terminal) after a comma.
    let facts = |name: &str, facts: Vec<String>| -> Vec<Line> {
        let n = facts.len();
        let words: Vec<String> = facts
            .into_iter()
            .enumerate()
            .map(|(i, f)| if i + 1 < n { f + "," } else { f })
            .collect();
        facts_lines(&label, name, &words, cols)
    };
    let seg = match &r.segment {
        None => vec!["none".to_string()],
        Some(s) => match &s.stat {
            Some(st) => vec![
                format!("shmid {}", s.shmid),
                format!("{} B", st.size),
                format!("mode {:04o}", st.mode),
                format!("uid {}", st.uid),
                format!(
                    "{} attached{}",
                    st.attached,
                    if s.self_attached { " (1 is us)" } else { "" }
                ),
            ],
            None => vec![format!("shmid {}", s.shmid)],
        },
    };
    d.push(facts("segment", seg));
    let set = match &r.semset {
        None => vec!["none".to_string()],
        Some(s) => match &s.stat {
            Some(st) => vec![
                format!("semid {}", s.semid),
                format!("{} members", st.nsems),
                format!("mode {:04o}", st.mode),
                format!("last semop {}", ago(st.otime)),
            ],
            None => vec![format!("semid {}", s.semid)],
        },
    };
    d.push(facts("semset", set));
    if let Some(h) = &r.header {
        d.push(facts(
            "header",
            vec![
                format!("v{}", h.version),
                format!("state {}", h.state_name()),
                format!("flags {}", h.flag_names()),
                format!("creator pid {}", h.creator_pid),
            ],
        ));
        d.push(facts(
            "frames",
            vec![
                format!("published {} ({} B)", h.frames_published, h.bytes_published),
                format!("consumed {} ({} B)", h.frames_consumed, h.bytes_consumed),
            ],
        ));
        d.push(facts(
            "joined",
            vec![
                format!("{} writer(s)", h.writers_joined),
                format!("{} reader(s)", h.readers_joined),
                format!("finished {} / {}", h.writers_finished, h.readers_finished),
            ],
        ));
    }
    if let Some(s) = &r.semset {
        if !s.members.is_empty() {
            let used: usize = d.iter().map(Vec::len).sum();
            let left = room.saturating_sub(used);
            let table = sem_table(&s.members, compact);
            if table.len() <= left {
                d.push(table);
            } else {
                let values: Vec<String> = s
                    .members
                    .iter()
                    .map(|m| format!("{}={}", m.name, m.value))
                    .collect();
                d.push(facts_lines(&label, "values", &values, cols));
            }
        }
    }
    d
}

/// The semaphore table: one member per row, in two columns when wide (5 rows and
/// a heading instead of 9 and a heading).
pub(super) fn sem_table(members: &[shm_common::view::SemMember], compact: bool) -> Vec<Line> {
    let cell = |a: &str, b: &str, c: &str, e: &str, f: &str| {
        format!("{a:<11} {b:>5} {c:>7} {e:>4} {f:>4}")
    };
    let heading = cell("member", "value", "lastpid", "ncnt", "zcnt");
    let rows: Vec<String> = members
        .iter()
        .map(|m| {
            cell(
                &m.name,
                &m.value.to_string(),
                &m.pid.to_string(),
                &m.ncnt.to_string(),
                &m.zcnt.to_string(),
            )
        })
        .collect();
    if compact {
        let mut t = vec![Line::default().push(heading, Tone::Dim)];
        t.extend(rows.into_iter().map(Line::plain));
        return t;
    }
    let half = rows.len().div_ceil(2);
    let mut t = vec![Line::default()
        .push(format!("{heading:<COLUMN$}"), Tone::Dim)
        .push(heading, Tone::Dim)];
    for i in 0..half {
        let right = rows.get(i + half).cloned().unwrap_or_default();
        t.push(Line::plain(format!("{:<COLUMN$}{right}", rows[i])));
    }
    t
}

/// `4 KiB`, `1 MiB`, or `N B`.
pub(super) fn bytes(n: u64) -> String {
    if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n % (1 << 10) == 0 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

pub(super) fn digits(n: u32) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

pub(super) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
