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

mod parts;
mod wrap;

use crate::cells;
use crate::leftovers::{self, Leftover};
use crate::waits;
use parts::{bytes, details_of, digits, head_tail, legend, peers, ring_rows, semaphores, title};
use shm_common::view::{Report, Verdict};
use wrap::wrap;

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

/// The lines as text, one per line (what a terminal shows, without colours).
pub fn text(lines: &[Line]) -> String {
    lines.iter().map(|l| l.text() + "\n").collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{killed, session, set};
    use shm_common::layout::sem;

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
