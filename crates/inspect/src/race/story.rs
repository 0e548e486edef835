//! One concrete example of what went wrong: the first damage the reader caught, the
//! lost update of `count` that caused it, and the interleaving of the two threads in
//! between, from the merged event logs (`events.rs`), for an 80-column terminal.
//!
//! The causes, as the handout's analysis has them:
//! - the reader read a slot again or before it was written (`Again`, `Empty`):
//!   `count` said more than was there, because a `count--` was overwritten by the
//!   writer's store;
//! - the reader found a later frame than the next one (`Ahead`): the writer had
//!   overwritten an unread frame, because `count` said less than was there, a
//!   `count++` having been overwritten by the reader's store;
//! - a torn copy: both sides were at one slot at once (either loss can do it).

use super::events::{Count, Event, Side, What};
use super::tally::Outcome;
use std::fmt::Write as _;

/// Width of the stamp column, then of the writer's column; the reader's column
/// takes the rest of 80.
const STAMP: usize = 8;
const WRITER: usize = 34;
const READER: usize = super::report::WIDTH - STAMP - 2 - WRITER;
/// Show every event from the cause to the damage when there are at most this many.
const WHOLE: usize = 18;
/// Show a loss's whole window (or a damage's approach) when it is this short.
const WINDOW: usize = 14;

/// A store that overwrote the other side's update(s).
#[derive(Debug, Clone)]
struct Loss {
    /// Index of the overwriting side's load.
    load: usize,
    /// Index of its store.
    store: usize,
    /// Indices of the other side's stores it overwrote.
    overwritten: Vec<usize>,
}

/// What the scan found.
struct Scan {
    losses: Vec<Loss>,
    /// For each event, `count++` minus `count--` stored so far: what `count` should
    /// be at that instant.
    should_be: Vec<i64>,
    /// For each event, frames written minus slots read so far: what was really
    /// waiting in the ring.
    waiting: Vec<i64>,
    /// For each store, the store whose value its load read (`None`: the initial
    /// zero, or not found in the log); other events: `None`.
    parent: Vec<Option<usize>>,
}

/// How far back a load's store is looked for (it is normally a few events back).
const PARENT_SEARCH: usize = 4096;

impl Scan {
    /// The stores whose updates the value current just before `upto` includes:
    /// the chain of parents from the last store before it. An overwritten update
    /// can come back: a store computed from it, landing later, restores it.
    fn chain(&self, events: &[Event], upto: usize) -> Vec<bool> {
        let mut kept = vec![false; events.len()];
        let last = events[..upto]
            .iter()
            .rposition(|e| matches!(e.what, What::Store(_)));
        let mut at = last;
        while let Some(i) = at {
            kept[i] = true;
            at = self.parent[i];
        }
        kept
    }

    /// Updates lost just before `upto`, exactly: the stores made, minus the
    /// updates the value current then includes.
    fn lost_before(&self, events: &[Event], upto: usize) -> u64 {
        let mut made = 0u64;
        let mut included = 0u64;
        for e in &events[..upto] {
            if let What::Store(c) = e.what {
                made += 1;
                included = u64::from(c.updates);
            }
        }
        made.saturating_sub(included)
    }

    /// The losses before `upto` that still hold at `upto`: each with only the
    /// overwritten stores the value current then does not include.
    fn lasting(&self, events: &[Event], upto: usize) -> Vec<Loss> {
        let kept = self.chain(events, upto);
        self.losses
            .iter()
            .filter(|l| l.store < upto)
            .filter_map(|l| {
                let overwritten: Vec<usize> = l
                    .overwritten
                    .iter()
                    .copied()
                    .filter(|&j| !kept[j])
                    .collect();
                (!overwritten.is_empty()).then(|| Loss {
                    overwritten,
                    ..l.clone()
                })
            })
            .collect()
    }
}

fn scan(events: &[Event]) -> Scan {
    let mut losses = Vec::new();
    let mut should_be = Vec::with_capacity(events.len());
    let mut waiting = Vec::with_capacity(events.len());
    let mut parent = vec![None; events.len()];
    let (mut made, mut held) = (0i64, 0i64);
    // Per side: its last load, and the other side's stores since.
    let mut pending: [Option<(usize, Count)>; 2] = [None, None];
    let mut since: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
    let idx = |s: Side| usize::from(s == Side::Reader);
    for (i, e) in events.iter().enumerate() {
        match e.what {
            What::Load(c) => {
                pending[idx(e.side)] = Some((i, c));
                since[idx(e.side)].clear();
            }
            What::Store(_) => {
                made += if e.side == Side::Writer { 1 } else { -1 };
                since[idx(e.side.other())].push(i);
                if let Some((load, loaded)) = pending[idx(e.side)].take() {
                    // The store this one was computed from: the latest one that
                    // wrote the value its load read.
                    let read = |j: &usize| {
                        matches!(events[*j].what, What::Store(s)
                            if s.updates == loaded.updates && s.by == loaded.by)
                    };
                    if loaded.updates > 0 {
                        parent[i] = (i.saturating_sub(PARENT_SEARCH)..i).rev().find(read);
                    }
                    // The other side's stores stamped inside this side's window, but
                    // not the one its load read (stamped late, stored in time).
                    let overwritten: Vec<usize> = since[idx(e.side)]
                        .drain(..)
                        .filter(|&j| {
                            !matches!(events[j].what, What::Store(s)
                                if s.updates == loaded.updates && s.by == loaded.by)
                        })
                        .collect();
                    if !overwritten.is_empty() {
                        losses.push(Loss {
                            load,
                            store: i,
                            overwritten,
                        });
                    }
                }
            }
            What::Wrote { .. } => held += 1,
            What::Read { .. } => held -= 1,
            _ => {}
        }
        should_be.push(made);
        waiting.push(held);
    }
    Scan {
        losses,
        should_be,
        waiting,
        parent,
    }
}

/// The first damage, its cause, and the events that show it; `None` when the
/// logged events hold no damage.
pub(super) fn tell(events: &[Event], slots: u32) -> Option<String> {
    let damage = events
        .iter()
        .position(|e| matches!(e.what, What::Read { outcome, .. } if outcome.is_anomaly()))?;
    let What::Read { slot, outcome } = events[damage].what else {
        return None;
    };
    let sc = scan(events);
    let mut out = String::from(
        "What went wrong first: both threads' events in the order of one shared\n\
         event counter (\"should be\" = count++ minus count-- done so far):\n",
    );
    // The writer's overwrite of the frame the reader expected, if that is the damage.
    let overwrite = match outcome {
        Outcome::Ahead { expected, .. } => events[..damage].iter().position(
            |e| matches!(e.what, What::Wrote { seq, .. } if seq == expected + u64::from(slots)),
        ),
        _ => None,
    };
    let pass_before = |side: Side, upto: usize| {
        events[..upto]
            .iter()
            .rposition(|e| e.side == side && matches!(e.what, What::Pass { .. }))
            .unwrap_or(upto)
    };
    // The side that went on when it should not have, and the pass that let it.
    let went_on = match overwrite {
        Some(w) => pass_before(Side::Writer, w),
        None => pass_before(Side::Reader, damage),
    };
    // Where the lie began: the first lost update. And the one behind this damage:
    // if `count` said too much, the last lost `count--` before it; if too little,
    // the last lost `count++`.
    let victim = match events.get(went_on).map(|e| e.what) {
        Some(What::Pass { count }) if i64::from(count) > sc.should_be[went_on] => {
            Some(Side::Reader)
        }
        Some(What::Pass { count }) if i64::from(count) < sc.should_be[went_on] => {
            Some(Side::Writer)
        }
        _ => None,
    };
    let lasting = sc.lasting(events, damage);
    let before: Vec<&Loss> = lasting.iter().collect();
    let first = before.first().copied();
    let cause = before
        .iter()
        .rev()
        .find(|l| victim.is_none_or(|s| events[l.overwritten[0]].side == s))
        .or(before.last())
        .copied();
    // The stretches shown: each loss from its load to its store (or only the
    // accesses, if the window is long), and each damage from the pass before it.
    let mut shown: Vec<usize> = Vec::new();
    let mut stretch = |from: usize, to: usize, keys: &[usize]| {
        if to - from < WINDOW {
            shown.extend(from..=to);
        } else {
            shown.extend(keys);
        }
    };
    for l in [first, cause].into_iter().flatten() {
        let from = l.overwritten.iter().copied().fold(l.load, usize::min);
        let mut keys = vec![l.load, l.store];
        keys.extend(&l.overwritten);
        stretch(from, l.store, &keys);
    }
    if let Some(w) = overwrite {
        stretch(pass_before(Side::Writer, w), w, &[w]);
    }
    stretch(pass_before(Side::Reader, damage), damage, &[damage]);
    shown.sort_unstable();
    shown.dedup();
    if shown.last().copied().unwrap_or(0) - shown[0] < WHOLE {
        shown = (shown[0]..=damage).collect();
    }
    let noted = [first, cause]
        .into_iter()
        .flatten()
        .map(|l| l.store)
        .collect();
    let marks = Marks {
        losses: lasting.clone(),
        noted: Some(noted),
        overwrite: overwrite.zip(match outcome {
            Outcome::Ahead { expected, .. } => Some(expected),
            _ => None,
        }),
    };
    out.push_str(&render(events, &shown, &sc, &marks));
    out.push_str(&verdict(
        events,
        (damage, went_on),
        (slot, outcome),
        (first, overwrite),
        &sc,
    ));
    Some(out)
}

/// Which events get a note under them.
struct Marks {
    /// The losses that hold (see [`Scan::lasting`]).
    losses: Vec<Loss>,
    /// The stores among them to note (`None`: every one).
    noted: Option<Vec<usize>>,
    /// The writer's write over an unread frame, and that frame.
    overwrite: Option<(usize, u64)>,
}

/// The events at `shown` (ascending indices) in two columns, with "(N events)"
/// where some are left out and a note under each marked event.
fn render(events: &[Event], shown: &[usize], sc: &Scan, marks: &Marks) -> String {
    let mut out = format!("{:>STAMP$}  {:<WRITER$}reader\n", "#", "writer");
    let mut prev: Option<usize> = None;
    for &i in shown {
        if let Some(p) = prev {
            if i > p + 1 {
                let lost: usize = marks
                    .losses
                    .iter()
                    .filter(|l| l.store > p && l.store < i)
                    .map(|l| l.overwritten.len())
                    .sum();
                let more = match lost {
                    0 => String::new(),
                    1 => ", 1 more update lost".into(),
                    n => format!(", {n} more updates lost"),
                };
                let n = i - p - 1;
                let s = if n == 1 { "" } else { "s" };
                let _ = writeln!(out, "{:>STAMP$}  ({n} event{s}{more})", "...");
            }
        }
        prev = Some(i);
        let e = &events[i];
        let mut lines = vec![describe(e, sc.should_be[i])];
        let noted = marks.noted.as_ref().is_none_or(|m| m.contains(&i));
        if let Some(l) = marks.losses.iter().find(|l| l.store == i).filter(|_| noted) {
            lines.extend(lost_note(events, l));
        }
        if let Some((_, old)) = marks.overwrite.filter(|&(w, _)| w == i) {
            lines.push(format!("^ over frame {old}, never read"));
        }
        if e.side == Side::Reader {
            lines = lines.iter().flat_map(|l| fit(l, READER)).collect();
        }
        for (n, t) in lines.iter().enumerate() {
            let stamp = if n == 0 {
                e.at.to_string()
            } else {
                String::new()
            };
            let row = match e.side {
                Side::Writer => format!("{stamp:>STAMP$}  {t}"),
                Side::Reader => format!("{stamp:>STAMP$}  {:<WRITER$}{t}", ""),
            };
            let _ = writeln!(out, "{}", row.trim_end());
        }
    }
    out
}

/// `text` in lines of at most `width` columns, broken after a `: ` or `, ` (the
/// continuation indented by two), or hard if there is none.
fn fit(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text.to_string();
    while rest.len() > width {
        let cut = rest[..width]
            .rfind(": ")
            .or_else(|| rest[..width].rfind(", "))
            .map_or(width, |i| i + 1);
        let tail = format!("  {}", rest[cut..].trim_start());
        rest.truncate(cut);
        out.push(rest);
        rest = tail;
    }
    out.push(rest);
    out
}

/// The first `n` events of the run, every lost update marked.
pub(super) fn timeline(events: &[Event], n: usize) -> String {
    let sc = scan(events);
    let n = n.min(events.len());
    let shown: Vec<usize> = (0..n).collect();
    let marks = Marks {
        losses: sc.lasting(events, n),
        noted: None,
        overwrite: None,
    };
    render(events, &shown, &sc, &marks)
}

/// One event, as a short line (at most 35 characters for the reader's column).
fn describe(e: &Event, should_be: i64) -> String {
    let op = e.side.update();
    match e.what {
        What::Pass { count } => {
            let lie = if i64::from(count) != should_be {
                format!(" (should be {should_be})")
            } else {
                String::new()
            };
            let ok = if e.side == Side::Writer {
                "not full"
            } else {
                "not empty"
            };
            if lie.is_empty() {
                format!("sees count = {count}: {ok}")
            } else {
                format!("sees count = {count}{lie}")
            }
        }
        What::Wrote { seq, slot } => format!("writes frame {seq} into slot {slot}"),
        What::Read { slot, outcome } => {
            let got = match outcome {
                Outcome::Next(s) => format!("frame {s}"),
                Outcome::Ahead { seq, expected } => format!("frame {seq}, not {expected}!"),
                Outcome::Late(s) => format!("frame {s}, late!"),
                Outcome::Again(s) => format!("frame {s} AGAIN!"),
                Outcome::Empty => "EMPTY, never written!".into(),
                Outcome::Torn => "TORN (checksum fails)!".into(),
            };
            format!("copies slot {slot}: {got}")
        }
        What::Load(c) => format!("{op}: loads count = {}", c.value),
        What::Store(c) => format!("{op}: stores count = {}", c.value),
    }
}

/// The lines under a store that overwrote the other side's update(s).
fn lost_note(events: &[Event], l: &Loss) -> Vec<String> {
    let victim = events[l.overwritten[0]].side;
    let mut values: Vec<String> = l
        .overwritten
        .iter()
        .filter_map(|&j| match events[j].what {
            What::Store(c) => Some(c.value.to_string()),
            _ => None,
        })
        .collect();
    let n = values.len();
    if n > 3 {
        values.drain(1..n - 1);
        values.insert(1, "...".into());
    }
    let lost = if n == 1 {
        format!("  its {} is LOST", victim.update())
    } else {
        format!("  {n} {} are LOST", victim.update())
    };
    vec![
        format!(
            "^ overwrites the {}'s {}:",
            victim.name(),
            values.join(", ")
        ),
        lost,
    ]
}

/// The closing sentences: which frame, and why.
fn verdict(
    events: &[Event],
    (damage, went_on): (usize, usize),
    (slot, outcome): (u32, Outcome),
    (first, overwrite): (Option<&Loss>, Option<usize>),
    sc: &Scan,
) -> String {
    // What `count` said at the pass that let a side go on, and what was really in
    // the ring (the pass's own stamp comes after its load: count what came before).
    let said = match events.get(went_on).map(|e| e.what) {
        Some(What::Pass { count }) => {
            let real = went_on.checked_sub(1).map_or(0, |p| sc.waiting[p]);
            (i64::from(count) != real).then_some((count, real))
        }
        _ => None,
    };
    let mut s = match outcome {
        Outcome::Again(seq) => format!(
            "So frame {seq} was delivered twice: the reader copied slot {slot} again before              the writer had put a new frame there."
        ),
        Outcome::Empty => format!(
            "So the reader copied slot {slot} before anything had ever been written there."
        ),
        Outcome::Ahead { seq, expected } => match overwrite {
            Some(w) => format!(
                "So frame {expected} was overwritten by frame {seq} (at #{}) before anyone                  read it: it is lost.",
                events[w].at
            ),
            None => format!(
                "So the reader found frame {seq} where frame {expected} should have been:                  frame {expected} was overwritten before anyone read it."
            ),
        },
        Outcome::Late(seq) => format!("So frame {seq} was delivered after a later frame."),
        Outcome::Torn => format!(
            "So the reader copied slot {slot} while the writer was rewriting it: a torn              frame."
        ),
        Outcome::Next(_) => String::new(),
    };
    if let Some((count, real)) = said {
        let (who, unit, state) = match overwrite {
            Some(_) => ("writer", "slot", "full"),
            None => ("reader", "frame", "waiting"),
        };
        let n = |k: i64| match k {
            0 => "none".to_string(),
            _ => k.to_string(),
        };
        let _ = write!(
            s,
            " The {who} went on because `count` said {count} {unit}{} {} {state}, where {} {}.",
            if count == 1 { "" } else { "s" },
            if count == 1 { "was" } else { "were" },
            n(real),
            if real == 1 { "was" } else { "were" }
        );
    }
    match first {
        Some(l) => {
            let lost = sc.lost_before(events, damage);
            let victim = events[l.overwritten[0]].side;
            let _ = write!(
                s,
                " By then {lost} update{} of `count` had been lost, the first at #{}: the                  {}'s {}, overwritten by the {}'s store at #{}.",
                if lost == 1 { "" } else { "s" },
                events[l.overwritten[0]].at,
                victim.name(),
                victim.update(),
                victim.other().name(),
                events[l.store].at
            );
        }
        None => s.push_str(
            " No lost update of `count` comes before it in the log: that would be a              different bug; please report it.",
        ),
    }
    super::report::wrap("", "", &s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(at: u64, side: Side, what: What) -> Event {
        Event { at, side, what }
    }

    fn count(value: i32, updates: u32, by: Side) -> Count {
        Count { value, updates, by }
    }

    /// The textbook interleaving on a 2-slot ring: the writer's `count++` store
    /// lands after the reader's `count--` store, built on the same value, so the
    /// decrement is lost; `count` then says 1 frame waits where none does, and the
    /// reader copies slot 0 a second time.
    fn textbook() -> Vec<Event> {
        use Side::{Reader as R, Writer as W};
        vec![
            ev(1, W, What::Pass { count: 0 }),
            ev(2, W, What::Wrote { seq: 0, slot: 0 }),
            ev(3, W, What::Load(count(0, 0, W))),
            ev(4, W, What::Store(count(1, 1, W))),
            ev(5, R, What::Pass { count: 1 }),
            ev(
                6,
                R,
                What::Read {
                    slot: 0,
                    outcome: Outcome::Next(0),
                },
            ),
            ev(7, R, What::Load(count(1, 1, W))),
            ev(8, W, What::Pass { count: 1 }),
            ev(9, W, What::Wrote { seq: 1, slot: 1 }),
            ev(10, W, What::Load(count(1, 1, W))),
            ev(11, R, What::Store(count(0, 2, R))),
            ev(12, W, What::Store(count(2, 2, W))),
            ev(13, R, What::Pass { count: 2 }),
            ev(
                14,
                R,
                What::Read {
                    slot: 1,
                    outcome: Outcome::Next(1),
                },
            ),
            ev(15, R, What::Load(count(2, 2, W))),
            ev(16, R, What::Store(count(1, 3, R))),
            ev(17, R, What::Pass { count: 1 }),
            ev(
                18,
                R,
                What::Read {
                    slot: 0,
                    outcome: Outcome::Again(0),
                },
            ),
        ]
    }

    #[test]
    fn the_lost_decrement_is_found_and_named() {
        let events = textbook();
        let sc = scan(&events);
        assert_eq!(sc.losses.len(), 1);
        let l = &sc.losses[0];
        assert_eq!((l.load, l.store, l.overwritten.clone()), (9, 11, vec![10]));
        assert_eq!(sc.should_be[16], 0, "2 count++ and 2 count-- done");
        let story = tell(&events, 2).expect("a story");
        let flat = story.split_whitespace().collect::<Vec<_>>().join(" ");
        for needle in [
            "overwrites the reader's 0: its count-- is LOST",
            "sees count = 1 (should be 0)",
            "copies slot 0: frame 0 AGAIN!",
            "So frame 0 was delivered twice",
            "`count` said 1 frame was waiting, where none were",
            "the first at #11: the reader's count--, overwritten by the writer's store at #12",
        ] {
            assert!(flat.contains(needle), "{needle:?} not in:\n{story}");
        }
        assert!(story.lines().all(|l| l.len() <= 80), "{story}");
    }

    #[test]
    fn an_overwritten_update_that_comes_back_is_not_lost() {
        use Side::{Reader as R, Writer as W};
        // The reader's store overwrites the writer's count++ (S1); the writer's
        // next store was computed from S1, so it brings S1's update back and
        // overwrites the reader's count-- instead: only that one is lost.
        let events = vec![
            ev(1, R, What::Load(count(0, 0, W))),
            ev(2, W, What::Load(count(0, 0, W))),
            ev(3, W, What::Store(count(1, 1, W))),  // S1
            ev(4, W, What::Load(count(1, 1, W))),   // reads S1
            ev(5, R, What::Store(count(-1, 1, R))), // over S1, from the zero
            ev(6, W, What::Store(count(2, 2, W))),  // from S1, over the reader's
        ];
        let sc = scan(&events);
        assert_eq!(sc.losses.len(), 2, "two stores overwrote something");
        assert_eq!(sc.parent[5], Some(2));
        let lasting = sc.lasting(&events, events.len());
        assert_eq!(lasting.len(), 1);
        assert_eq!(
            (lasting[0].store, lasting[0].overwritten.clone()),
            (5, vec![4])
        );
        assert_eq!(sc.lost_before(&events, events.len()), 1);
        let t = timeline(&events, 6);
        assert_eq!(t.matches("LOST").count(), 1, "{t}");
        assert!(t.contains("overwrites the reader's -1"), "{t}");
    }

    #[test]
    fn no_damage_no_story() {
        let mut events = textbook();
        events.truncate(16);
        assert_eq!(tell(&events, 2), None);
    }

    #[test]
    fn long_lines_are_fitted() {
        let lines = fit("copies slot 32767: frame 123456, not 123448!", 30);
        assert_eq!(lines, ["copies slot 32767:", "  frame 123456, not 123448!"]);
        assert!(fit("short", 30) == ["short"]);
    }
}
