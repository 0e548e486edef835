//! The `--watch` view: one report laid out for a terminal of a given size, most
//! important facts first. Pure (a report and a size in, lines out), so that what a
//! student sees can be tested without a terminal; [`crate::terminal`] draws it.
//!
//! Every line is at most `cols` wide and there are at most `rows` lines, whatever
//! the ring size: the ring picture is scaled ([`crate::cells`]) and the blocks that
//! matter least are left out first. In order of importance:
//! 1. the key and the verdict (and `abandoned`, `live`...);
//! 2. the ring cells with HEAD and TAIL, and a command that removes abandoned objects;
//! 3. FREE and FILLED and who sleeps on them, the mutexes and their holders, the
//!    peers with role and state (`running`, `stopped`, `gone`);
//! 4. the other notes (a stopped peer, what an incomplete key means);
//! 5. details as room allows: segment, set, header, counters, the semaphore table.
//!
//! Below [`COMPACT_BELOW`] columns (a half-width pane) the same content is set in
//! one column. Only ASCII is drawn: a lab's terminal may not be in a UTF-8 locale.

use crate::cells::{self, Picture};
use crate::leftovers::{self, Leftover};
use crate::{peer_state, waits};
use shm_common::layout::sem;
use shm_common::view::{role_name, Report, Verdict};

/// Narrower than this, the view is compact (one column).
pub const COMPACT_BELOW: usize = 60;

/// How a piece of text is shown; [`crate::terminal`] maps it to colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Ordinary text.
    Plain,
    /// Bold: names, the key, HEAD/TAIL marks.
    Strong,
    /// All is well (ours, free, running).
    Good,
    /// Worth a look (incomplete, held, waiting).
    Warn,
    /// Something is wrong (abandoned, stopped, foreign).
    Bad,
    /// Secondary (legend, help).
    Dim,
}

/// A run of text in one tone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The text (ASCII, no control characters).
    pub text: String,
    /// How it is shown.
    pub tone: Tone,
}

/// One screen line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Line {
    /// Its runs, left to right.
    pub spans: Vec<Span>,
}

impl Line {
    fn push(mut self, text: impl Into<String>, tone: Tone) -> Line {
        self.spans.push(Span {
            text: text.into(),
            tone,
        });
        self
    }

    fn plain(text: impl Into<String>) -> Line {
        Line::default().push(text, Tone::Plain)
    }

    /// Width in columns (every character drawn is one column wide).
    pub fn width(&self) -> usize {
        self.spans.iter().map(|s| s.text.chars().count()).sum()
    }

    /// The text without tones.
    pub fn text(&self) -> String {
        self.spans.iter().map(|s| s.text.as_str()).collect()
    }

    /// Spaces up to column `col` (nothing if already there).
    fn pad(self, col: usize) -> Line {
        let w = self.width();
        self.push(" ".repeat(col.saturating_sub(w)), Tone::Plain)
    }

    /// Cut to `cols` columns; a cut line ends in `~`.
    fn fit(mut self, cols: usize) -> Line {
        if self.width() <= cols {
            return self;
        }
        let mut left = cols.saturating_sub(1);
        for s in &mut self.spans {
            let n = s.text.chars().count();
            if n > left {
                s.text = s.text.chars().take(left).collect();
            }
            left = left.saturating_sub(n.min(left));
        }
        self.spans.retain(|s| !s.text.is_empty());
        if cols > 0 {
            self = self.push("~", Tone::Dim);
        }
        self
    }
}

/// The terminal and what the user asked for.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Terminal width.
    pub cols: usize,
    /// Terminal height.
    pub rows: usize,
    /// One column even on a wide terminal (`--compact`).
    pub compact: bool,
    /// At most this many ring cells per row (`--width`).
    pub max_cells: usize,
    /// The refresh interval as the user gave it (`0.25 s`).
    pub interval: String,
}

impl Layout {
    fn compact(&self) -> bool {
        self.compact || self.cols < COMPACT_BELOW
    }
}

/// A block of lines shown together or not at all; `prio` 0 matters most.
struct Block {
    prio: u8,
    kind: Kind,
    lines: Vec<Line>,
}

/// The blocks whose lines are only known once the ring's room is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    /// The ring's rows (as many as fit).
    Ring,
    /// HEAD and TAIL, and the scale (one line).
    HeadTail,
    /// What the glyphs mean (one line).
    Legend,
}

fn block(prio: u8, lines: Vec<Line>) -> Block {
    Block {
        prio,
        kind: Kind::Text,
        lines,
    }
}

/// Ring rows at most on a 24-line terminal, when there is room: enough to see it
/// fill, few enough to leave room for the rest (a taller terminal gets more).
const RING_ROWS: usize = 6;
const RING_ROWS_COMPACT: usize = 4;

/// The view of `r` for a terminal of `l.cols` x `l.rows`: at most `l.rows` lines,
/// each at most `l.cols` columns wide. `r` is the library's report (without the
/// inspector's notes: this view says the same in its own lines).
pub fn board(r: &Report, l: &Layout) -> Vec<Line> {
    let cols = l.cols;
    let compact = l.compact();
    let leftover = leftovers::judge(r);

    // Everything but the details, in display order; the ring's rows, HEAD/TAIL and
    // the legend are placeholders until the ring's room is known.
    let mut blocks = vec![block(0, vec![title(r, l, leftover.as_ref())])];
    if let (Some(ring), Some(h)) = (&r.ring, &r.header) {
        let size = bytes(u64::from(h.slot_size));
        let head = if compact {
            format!(
                "ring {} x {size}: {} free, {} filled",
                ring.slots, ring.free, ring.filled
            )
        } else {
            format!(
                "ring  {} slots x {size}: {} free, {} filled, {} being written, {} being read",
                ring.slots, ring.free, ring.filled, ring.writing, ring.reading
            )
        };
        blocks.push(block(1, vec![Line::default().push(head, Tone::Strong)]));
        for (prio, kind, n) in [
            (1, Kind::Ring, 0),
            (1, Kind::HeadTail, 1),
            (7, Kind::Legend, 1),
        ] {
            blocks.push(Block {
                prio,
                kind,
                lines: vec![Line::default(); n],
            });
        }
    }
    blocks.extend(semaphores(r, compact, cols));
    blocks.extend(peers(r, compact));
    match &leftover {
        Some(lo @ Leftover::Abandoned { why, .. }) => {
            // The commands on lines of their own, to be copied whole.
            let text = format!("abandoned: nobody uses these objects ({why}); remove them with:");
            let mut lines = wrap(&text, cols, Tone::Bad);
            for (i, c) in lo.commands(r.key).into_iter().enumerate() {
                let or = if i == 0 { "" } else { "or: " };
                lines.push(Line::default().push(format!("  {or}{c}"), Tone::Strong));
            }
            blocks.push(block(1, lines));
        }
        Some(lo @ Leftover::WaitsForReader) => {
            blocks.push(block(1, wrap(&lo.note(r.key), cols, Tone::Warn)));
        }
        None => {}
    }
    for n in waits::stopped_notes(r) {
        blocks.push(block(3, wrap(&n, cols, Tone::Bad)));
    }
    if let Some(why) = &r.header_problem {
        blocks.push(block(
            3,
            wrap(&format!("header not ours: {why}"), cols, Tone::Warn),
        ));
    }
    for n in &r.notes {
        blocks.push(block(3, wrap(n, cols, Tone::Warn)));
    }
    if r.verdict == Verdict::Nothing {
        let hint = format!(
            "nothing at this key yet: start `writer --key {}`; this view follows it",
            r.key
        );
        blocks.push(block(3, wrap(&hint, cols, Tone::Dim)));
    }

    // Room for the ring: drop the least important blocks until at least its
    // smallest picture fits, then give it as many rows as are left (up to a cap).
    let label = r
        .ring
        .as_ref()
        .map_or(1, |g| digits(g.slots.saturating_sub(1)));
    let max_cells = cols
        .saturating_sub(label + 3)
        .min(l.max_cells.max(8))
        .max(1);
    let ring_min = r
        .ring
        .as_ref()
        .map_or(0, |g| cells::height(&cells::fit(g, max_cells, 1)));
    let used = |b: &[Block]| b.iter().map(|b| b.lines.len()).sum::<usize>();
    while used(&blocks) + ring_min > l.rows && blocks.len() > 1 {
        drop_least(&mut blocks);
    }
    let room = l.rows.saturating_sub(used(&blocks));
    if let Some(g) = &r.ring {
        let cap = if compact {
            RING_ROWS_COMPACT.max(l.rows / 6)
        } else {
            RING_ROWS.max(l.rows / 4)
        };
        let picture = (1..=cap)
            .rev()
            .map(|n| cells::fit(g, max_cells, n))
            .find(|p| cells::height(p) <= room);
        for b in &mut blocks {
            match (b.kind, &picture) {
                (Kind::Ring, Some(p)) => b.lines = ring_rows(p, label),
                (Kind::HeadTail, Some(p)) => {
                    b.lines = vec![head_tail(g.head, g.tail, p.scale, compact, cols)]
                }
                (Kind::Legend, Some(p)) => b.lines = vec![legend(p.scale, compact)],
                _ => {}
            }
        }
    }

    // Details, in order, as long as they fit.
    let mut room = l.rows.saturating_sub(used(&blocks));
    let mut out: Vec<Line> = blocks.into_iter().flat_map(|b| b.lines).collect();
    for d in details_of(r, compact, cols, room) {
        if d.len() <= room {
            room -= d.len();
            out.extend(d);
        }
    }
    out.truncate(l.rows);
    out.into_iter().map(|line| line.fit(cols)).collect()
}

/// Removes the last of the least important blocks (never the title, nor the ring's
/// rows: those shrink instead).
fn drop_least(blocks: &mut Vec<Block>) {
    let droppable = |b: &Block| b.prio > 0 && b.kind != Kind::Ring;
    let worst = blocks.iter().filter(|b| droppable(b)).map(|b| b.prio).max();
    match worst.and_then(|w| blocks.iter().rposition(|b| droppable(b) && b.prio == w)) {
        Some(i) => {
            blocks.remove(i);
        }
        None => blocks.truncate(1),
    }
}

/// `key 0x...: ours - live, 1 writer, 1 reader`, and the help on the right.
fn title(r: &Report, l: &Layout, leftover: Option<&Leftover>) -> Line {
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
fn ring_rows(p: &Picture, label: usize) -> Vec<Line> {
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

fn head_tail(head: u32, tail: u32, scale: u32, compact: bool, cols: usize) -> Line {
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

fn legend(scale: u32, compact: bool) -> Line {
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
fn semaphores(r: &Report, compact: bool, cols: usize) -> Vec<Block> {
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
fn first_fit(says: &[String], room: usize) -> String {
    says.iter()
        .find(|s| s.len() <= room)
        .or(says.last())
        .cloned()
        .unwrap_or_default()
}

/// The second column of the wide view starts here.
const COLUMN: usize = 40;

/// The peer table, one peer per column (two columns when wide).
fn peers(r: &Report, compact: bool) -> Vec<Block> {
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
fn details_of(r: &Report, compact: bool, cols: usize, room: usize) -> Vec<Vec<Line>> {
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
fn sem_table(members: &[shm_common::view::SemMember], compact: bool) -> Vec<Line> {
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

/// `label` and `words`, wrapped, continuation lines under the first word.
fn facts_lines(
    label: &dyn Fn(&str) -> Line,
    name: &str,
    words: &[String],
    cols: usize,
) -> Vec<Line> {
    wrap_words(words, cols, 8)
        .into_iter()
        .enumerate()
        .map(|(i, t)| label(if i == 0 { name } else { "" }).push(t, Tone::Plain))
        .collect()
}

/// Words joined by spaces into lines of at most `cols - indent` columns.
fn wrap_words(words: &[String], cols: usize, indent: usize) -> Vec<String> {
    let width = cols.saturating_sub(indent).max(8);
    let mut lines: Vec<String> = vec![String::new()];
    for w in words {
        let Some(cur) = lines.last_mut() else { break };
        if !cur.is_empty() && cur.len() + 1 + w.len() > width {
            lines.push(w.clone());
        } else {
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(w);
        }
    }
    lines
}

/// Word-wraps `text` to `cols`, continuation lines indented by two.
fn wrap(text: &str, cols: usize, tone: Tone) -> Vec<Line> {
    let cols = cols.max(8);
    let mut lines = Vec::new();
    let mut cur = String::from("! ");
    for word in unbreakable(text) {
        let mut word = word;
        loop {
            let sep = usize::from(cur.len() > 2);
            if cur.len() + sep + word.len() <= cols {
                if sep == 1 {
                    cur.push(' ');
                }
                cur += &word;
                break;
            }
            if cur.trim().len() > 1 {
                lines.push(std::mem::replace(&mut cur, "  ".to_string()));
                continue;
            }
            // A word longer than a line: split it.
            let take = cols.saturating_sub(cur.len()).max(1);
            cur.extend(word.chars().take(take));
            word = word.chars().skip(take).collect();
            lines.push(std::mem::replace(&mut cur, "  ".to_string()));
        }
    }
    if cur.trim().len() > 1 || lines.is_empty() {
        lines.push(cur);
    }
    lines
        .into_iter()
        .map(|t| Line::default().push(t, tone))
        .collect()
}

/// The words of `text`, a `command in backquotes` counting as one word.
fn unbreakable(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let mut open = false;
    for w in text.split_whitespace() {
        match words.last_mut() {
            Some(last) if open => {
                last.push(' ');
                last.push_str(w);
            }
            _ => words.push(w.to_string()),
        }
        if w.matches('`').count() % 2 == 1 {
            open = !open;
        }
    }
    words
}

/// `4 KiB`, `1 MiB`, or `N B`.
fn bytes(n: u64) -> String {
    if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n % (1 << 10) == 0 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

fn digits(n: u32) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The lines as text, one per line (what a terminal shows, without colours).
pub fn text(lines: &[Line]) -> String {
    lines.iter().map(|l| l.text() + "\n").collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{killed, session, set};

    fn layout(cols: usize, rows: usize) -> Layout {
        Layout {
            cols,
            rows,
            compact: false,
            max_cells: 64,
            interval: "0.25 s".into(),
        }
    }

    fn fits(lines: &[Line], l: &Layout) {
        assert!(
            lines.len() <= l.rows,
            "{} lines:\n{}",
            lines.len(),
            text(lines)
        );
        for line in lines {
            assert!(
                line.width() <= l.cols,
                "{} columns: {:?}",
                line.width(),
                line.text()
            );
            assert!(line.text().is_ascii(), "{:?}", line.text());
        }
    }

    #[test]
    fn every_ring_fits_every_pane() {
        for slots in [1, 2, 16, 100, 1024, 4096, 65535] {
            let r = session(slots, (slots / 3) as u16);
            for (cols, rows) in [(80, 24), (40, 24), (120, 50), (80, 10), (40, 12), (30, 5)] {
                let l = layout(cols, rows);
                let lines = board(&r, &l);
                fits(&lines, &l);
                let t = text(&lines);
                assert!(t.starts_with("key 0x7e2f0001: ours"), "{t}");
                if rows >= 10 {
                    assert!(
                        t.contains(" [") && t.contains("HEAD"),
                        "{cols}x{rows}, {slots} slots:\n{t}"
                    );
                }
            }
        }
    }

    #[test]
    fn tiny_terminals_get_what_fits_and_no_panic() {
        for r in [session(1024, 5), killed(session(16, 16))] {
            for (cols, rows) in [(0, 0), (1, 1), (10, 3), (80, 1), (5, 40)] {
                let l = layout(cols, rows);
                fits(&board(&r, &l), &l);
            }
        }
        let t = text(&board(&session(16, 5), &layout(80, 1)));
        assert!(t.starts_with("key 0x7e2f0001: ours"), "{t}");
    }

    #[test]
    fn the_important_lines_come_first() {
        let mut r = session(1024, 1024);
        set(&mut r, sem::READ_MUTEX, 0);
        if let Some(s) = &mut r.semset {
            s.members[usize::from(sem::FREE)].ncnt = 1;
            s.members[usize::from(sem::READ_MUTEX)].pid = 200;
        }
        if let Some(h) = &mut r.header {
            h.peers[1].stopped = true;
        }
        let l = layout(80, 24);
        let t = text(&board(&r, &l));
        let at = |needle: &str| {
            t.find(needle)
                .unwrap_or_else(|| panic!("no {needle:?} in\n{t}"))
        };
        assert!(at("key ") < at("ring  1024 slots"));
        assert!(at("ring  1024") < at("   0 ["));
        assert!(at("   0 [") < at("H = HEAD"));
        assert!(at("FREE       0  1 writer asleep (full)") < at("writer pid 100"));
        assert!(t.contains("READ_MUTEX  held by 200, stopped reader"), "{t}");
        assert!(t.contains("reader pid 200 id 1 stopped"), "{t}");
        assert!(at("reader pid 200 id 1 stopped") < at("segment "));
        assert!(t.contains("1 cell = 4 slots"), "{t}");
    }

    #[test]
    fn the_compact_view_is_one_column() {
        let r = session(1024, 10);
        let mut l = layout(80, 24);
        l.compact = true;
        let lines = board(&r, &l);
        fits(&lines, &l);
        let t = text(&lines);
        assert!(t.contains("\nWRITE_MUTEX free\nREAD_MUTEX  free\n"), "{t}");
        let lines = board(&r, &layout(40, 24));
        fits(&lines, &layout(40, 24));
        assert_eq!(
            text(&lines).lines().nth(1),
            t.lines().nth(1),
            "chosen below 60 columns"
        );
    }

    #[test]
    fn abandoned_objects_show_their_removal_commands_even_when_short_of_room() {
        let r = killed(session(1024, 10));
        for (cols, rows) in [(80, 24), (40, 24), (80, 12), (40, 14)] {
            let l = layout(cols, rows);
            let lines = board(&r, &l);
            fits(&lines, &l);
            let t = text(&lines);
            assert!(t.contains("abandoned: nobody uses these objects"), "{t}");
            assert!(t.contains("\n  ipcrm -m 11 -s 22\n"), "{cols}x{rows}:\n{t}");
            assert!(t.contains("or: writer --remove --key 0x7e2f0001"), "{t}");
        }
    }

    #[test]
    fn wrapping_keeps_commands_whole() {
        let lines = wrap(
            "resume it with `kill -CONT 12345` or `fg` now",
            24,
            Tone::Plain,
        );
        let t = text(&lines);
        assert!(t.contains("`kill -CONT 12345`"), "{t}");
        assert!(lines.iter().all(|l| l.width() <= 24), "{t}");
    }
}
