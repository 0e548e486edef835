//! `--explain`'s narrator: the sink for the library's reports of System V calls
//! ([`shm_common::trace`]), printing each as `[who] CALL = RESULT    // why` on
//! stderr, so that a session reads like an annotated listing of the C it would be,
//! on a terminal as much as in a file.
//!
//! # What is shown in full, and what is counted
//! - Calls made once ([`Kind::Once`]: creating, joining, leaving, the END/FINAL
//!   frame) are always shown, and each begins a new *phase*.
//! - Per-message calls ([`Kind::PerMessage`]: taking and publishing slots) and the
//!   copies into and out of the slots ([`Step::Copy`], no System V call) are shown
//!   for the first [`PER_PHASE_IN_FULL`] lines of every phase, then counted. Of a
//!   run of copies (one per slot of a batch) the first [`COPIES_IN_A_ROW`] are
//!   shown and one line says how many more there were.
//! - A wait ([`Kind::Waiting`]: lookups that find nothing yet, a `semtimedop` that
//!   timed out, the counts read between two tries) is shown once in full, its
//!   first round; its repeats are collapsed into one line printed when it ends:
//!   `... waiting: shmget, semget repeated about every 100 ms (ENOENT): 36 more
//!   calls in 3.6 s, until a writer created them`. While the budget of a phase is
//!   spent, even the first round of a wait is counted, and only a wait that lasted
//!   [`IDLE`] or more gets its line.
//! - A new phase also begins after [`IDLE`] without any call (a writer waiting for
//!   its input) and when a wait of [`IDLE`] or more ends: the first messages after a
//!   pause are shown in full again.
//! - Nothing is printed while nothing happens. What was counted is summarised in
//!   one line (`... not shown: 1234 more calls (...) and 617 memcpy, in 2.1 s`)
//!   when the phase ends, and when the narration ends ([`Narration`] dropped), so
//!   that every call is shown or counted, in order.
//!
//! # Styles
//! [`Style::Full`] is one line per call, however long; [`Style::Compact`] puts the
//! reason on its own line (`    // why`) and wraps every line at [`WIDTH`] columns,
//! for an 80-column terminal.
//!
//! Each entry (a call and, in the compact style, its continuation and comment
//! lines) is written with one `write(2)` ([`report::stderr`]): a line is never
//! split between writes, and two processes sharing a terminal never interleave
//! inside an entry.

use crate::report;
use shm_common::trace::{Call, Kind, Step};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How many lines of per-message calls and copies each phase shows in full before
/// counting them.
pub const PER_PHASE_IN_FULL: u32 = 12;

/// How many copies in a row (one per slot of a batch) are shown in full.
pub const COPIES_IN_A_ROW: u32 = 2;

/// A pause this long (no call at all, or a wait) begins a new phase.
pub const IDLE: Duration = Duration::from_secs(1);

/// The width the compact style keeps every line within.
pub const WIDTH: usize = 80;

/// At most this many different tries of one wait are shown in full (a wait whose
/// results keep changing is counted after that).
const WAIT_SHOWN_MAX: u32 = 24;

/// How the narration is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Style {
    /// One line per call: `[who] CALL = RESULT    // why`.
    #[default]
    Full,
    /// The reason on its own line, every line within 80 columns.
    Compact,
}

/// The narration of this process; dropping it prints what is still counted and not
/// yet said (the repeats of a wait that was interrupted, the last summary).
#[derive(Debug)]
#[must_use = "the last counts are printed when the narration is dropped"]
pub struct Narration {
    narrator: Option<Arc<Narrator>>,
}

impl Drop for Narration {
    fn drop(&mut self) {
        if let Some(n) = &self.narrator {
            n.finish();
        }
    }
}

/// Turns narration on for this process; `prefix` starts each line (`writer`).
/// Keep the returned [`Narration`] until the end of the program.
pub fn enable(prefix: &str, style: Style) -> Narration {
    let n = Arc::new(Narrator {
        prefix: format!("[{prefix}]"),
        style,
        state: Mutex::new(State::new()),
    });
    let sink = Arc::clone(&n);
    // A second `enable` in one process changes nothing: the first narrator stays.
    let installed =
        shm_common::trace::set_sink(Box::new(move |c: &Call<'_>| sink.narrate(c))).is_ok();
    Narration {
        narrator: installed.then_some(n),
    }
}

#[derive(Debug)]
struct Narrator {
    /// `[writer]`.
    prefix: String,
    style: Style,
    state: Mutex<State>,
}

/// What the narrator remembers between calls.
#[derive(Debug)]
struct State {
    /// Lines of per-message calls and copies this phase may still show.
    budget: u32,
    /// Whether this phase has said that it counts from now on.
    said_steady: bool,
    /// When the last call was reported.
    last: Option<Instant>,
    /// Per-message steps counted since the last summary.
    hidden: Counted,
    /// The copies in a row (one per slot of a batch) since the last other call.
    copies: CopyRun,
    /// The wait under way, if the last calls were tries of one.
    wait: Option<WaitRun>,
}

impl State {
    fn new() -> State {
        State {
            budget: PER_PHASE_IN_FULL,
            said_steady: false,
            last: None,
            hidden: Counted::default(),
            copies: CopyRun::default(),
            wait: None,
        }
    }
}

/// Calls and copies counted and not shown: how many of each, and over what time.
#[derive(Debug, Default)]
struct Counted {
    /// System V calls, by label (`semop`, `semctl GETVAL`), in first-seen order.
    calls: Vec<(String, u64)>,
    /// Copies, by function (`memcpy`, `read`).
    copies: Vec<(String, u64)>,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Counted {
    fn add(&mut self, step: Step, label: String, n: u64, at: Instant) {
        if n == 0 {
            return;
        }
        let list = match step {
            Step::SystemV => &mut self.calls,
            Step::Copy => &mut self.copies,
        };
        match list.iter_mut().find(|(l, _)| *l == label) {
            Some((_, count)) => *count += n,
            None => list.push((label, n)),
        }
        self.first.get_or_insert(at);
        self.last = Some(at);
    }

    fn is_empty(&self) -> bool {
        self.calls.is_empty() && self.copies.is_empty()
    }

    fn total_calls(&self) -> u64 {
        self.calls.iter().map(|(_, n)| n).sum()
    }
}

/// Copies in a row: how many were shown, how many more there were.
#[derive(Debug, Default)]
struct CopyRun {
    shown: u32,
    more: u64,
    /// The function (`memcpy`, `read`).
    name: String,
}

/// One wait: its tries shown in full, and the repeats counted since.
///
/// A wait goes in rounds (the lookups of a search, or a `semtimedop` and the
/// counts read after it): a call is a repeat when the same call with the same
/// result came at the same place of an earlier round. A round begins when the
/// wait's first call comes again, or a call that failed in this round fails
/// again.
#[derive(Debug)]
struct WaitRun {
    start: Instant,
    /// What the wait is for ("a frame was published").
    until: &'static str,
    /// The call the wait began with.
    first_call: String,
    /// Calls of the current round, and how often each (call, result) came in it.
    in_round: u32,
    failed_in_round: HashSet<String>,
    occurrences: HashMap<(String, String), u32>,
    /// (call, result, occurrence in its round) of every try shown in full.
    seen: HashSet<(String, String, u32)>,
    shown: u32,
    /// Repeats counted since the first try or the last collapsed line.
    repeats: u64,
    since: Instant,
    /// Labels of the repeated calls, in order.
    labels: Vec<String>,
    /// How often the most frequent call was repeated, and when first and last.
    rounds: Vec<(String, u64)>,
    first_repeat: Option<Instant>,
    last_repeat: Option<Instant>,
    /// The errors the repeats failed with (`ENOENT`).
    errors: Vec<String>,
    /// The texts of the calls that failed: the same call succeeding ends the wait.
    failing: HashSet<String>,
}

impl WaitRun {
    fn new(now: Instant, until: &'static str, first_call: &str) -> WaitRun {
        WaitRun {
            start: now,
            until,
            first_call: first_call.to_string(),
            in_round: 0,
            failed_in_round: HashSet::new(),
            occurrences: HashMap::new(),
            seen: HashSet::new(),
            shown: 0,
            repeats: 0,
            since: now,
            labels: Vec::new(),
            rounds: Vec::new(),
            first_repeat: None,
            last_repeat: None,
            errors: Vec::new(),
            failing: HashSet::new(),
        }
    }

    /// Places `c` in its round; returns whether it repeats an earlier round's try
    /// (the caller counts it, or shows it and calls [`WaitRun::shown`]).
    fn place(&mut self, c: &Call<'_>) -> (bool, (String, String, u32)) {
        let failed = errno_name(c.result).is_some();
        let again = c.call == self.first_call || (failed && self.failed_in_round.contains(c.call));
        if self.in_round > 0 && again {
            self.in_round = 0;
            self.failed_in_round.clear();
            self.occurrences.clear();
        }
        self.in_round += 1;
        if failed {
            self.failed_in_round.insert(c.call.to_string());
        }
        let n = self
            .occurrences
            .entry((c.call.to_string(), c.result.to_string()))
            .or_insert(0);
        *n += 1;
        let key = (c.call.to_string(), c.result.to_string(), *n);
        (self.seen.contains(&key), key)
    }

    fn repeat(&mut self, c: &Call<'_>, now: Instant) {
        let label = label(c.call);
        if !self.labels.contains(&label) {
            self.labels.push(label.clone());
        }
        match self.rounds.iter_mut().find(|(l, _)| *l == label) {
            Some((_, n)) => *n += 1,
            None => self.rounds.push((label, 1)),
        }
        if let Some(e) = errno_name(c.result) {
            if !self.errors.iter().any(|x| x == e) {
                self.errors.push(e.to_string());
            }
            self.failing.insert(c.call.to_string());
        }
        self.first_repeat.get_or_insert(now);
        self.last_repeat = Some(now);
        self.repeats += 1;
    }

    /// The collapsed line for the repeats counted so far (then forgets them).
    /// `next` is the call that ends them, if one does.
    fn collapse(&mut self, next: Option<&Call<'_>>, now: Instant) -> String {
        let rounds = self.rounds.iter().map(|(_, n)| *n).max().unwrap_or(0);
        let every = match (self.first_repeat, self.last_repeat) {
            (Some(a), Some(b)) if rounds >= 2 => {
                let ms = b.duration_since(a).as_secs_f64() * 1000.0 / (rounds - 1) as f64;
                let ms = if ms >= 20.0 {
                    (ms / 10.0).round() * 10.0
                } else {
                    ms.round()
                };
                format!(" about every {ms:.0} ms")
            }
            _ => String::new(),
        };
        let errors = if self.errors.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.errors.join(", "))
        };
        // Say what ended the wait only when the call that failed now succeeds.
        let until = match next {
            Some(c) if self.failing.contains(c.call) && errno_name(c.result).is_none() => {
                format!(", until {}", self.until)
            }
            _ => String::new(),
        };
        let line = format!(
            "waiting: {} repeated{every}{errors}: {} more calls in {:.1} s{until}",
            self.labels.join(", "),
            self.repeats,
            now.duration_since(self.since).as_secs_f64(),
        );
        self.repeats = 0;
        self.since = now;
        self.labels.clear();
        self.rounds.clear();
        self.first_repeat = None;
        self.last_repeat = None;
        self.errors.clear();
        self.failing.clear();
        line
    }
}

/// A call's short name for counts: `semop`, `semctl GETALL`, `memcpy`.
fn label(call: &str) -> String {
    let (name, args) = call.split_once('(').unwrap_or((call, ""));
    let args: Vec<&str> = args.split(", ").collect();
    let command = match name {
        "semctl" => args.get(2),
        "shmctl" => args.get(1),
        _ => None,
    };
    match command {
        Some(cmd) => {
            let cmd = cmd.trim_end_matches(')');
            format!("{name} {cmd}")
        }
        None => name.to_string(),
    }
}

/// `ENOENT` from `-1 (ENOENT)` or `-1 (EAGAIN: timed out)`; `None` if not a failure.
fn errno_name(result: &str) -> Option<&str> {
    let rest = result
        .strip_prefix("-1 (")
        .or(result.strip_prefix("(void*)-1 ("))?;
    let end = rest.find([':', ')']).unwrap_or(rest.len());
    Some(&rest[..end])
}

impl Narrator {
    fn narrate(&self, c: &Call<'_>) {
        for entry in self.step(c, Instant::now()) {
            report::stderr(&entry);
        }
    }

    /// What to print for `c`, reported at `now`: entries, each for one write.
    fn step(&self, c: &Call<'_>, now: Instant) -> Vec<String> {
        let Ok(mut s) = self.state.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        // A pause without any call (a writer waiting for its input): a new phase.
        if s.last.is_some_and(|t| now.duration_since(t) >= IDLE) {
            self.end_wait(&mut s, None, now, &mut out);
            self.new_phase(&mut s, now, &mut out);
        }
        s.last = Some(now);
        match c.kind {
            Kind::Waiting(until) => self.waiting(&mut s, c, until, now, &mut out),
            Kind::Once => {
                self.end_wait(&mut s, Some(c), now, &mut out);
                self.new_phase(&mut s, now, &mut out);
                out.push(self.entry(c));
            }
            Kind::PerMessage => {
                self.end_wait(&mut s, Some(c), now, &mut out);
                self.per_message(&mut s, c, now, &mut out);
            }
        }
        out
    }

    /// At the end of the narration: whatever is still counted.
    fn finish(&self) {
        for entry in self.last_words(Instant::now()) {
            report::stderr(&entry);
        }
    }

    /// What [`Narrator::finish`] prints.
    fn last_words(&self, now: Instant) -> Vec<String> {
        let Ok(mut s) = self.state.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        self.end_wait(&mut s, None, now, &mut out);
        self.new_phase(&mut s, now, &mut out);
        out
    }

    fn per_message(&self, s: &mut State, c: &Call<'_>, now: Instant, out: &mut Vec<String>) {
        if c.step == Step::Copy {
            let name = label(c.call);
            if s.copies.name != name {
                self.end_copies(s, now, out);
                s.copies.name = name.clone();
            }
            if s.budget > 0 && s.copies.shown < COPIES_IN_A_ROW {
                s.budget -= 1;
                s.copies.shown += 1;
                out.push(self.entry(c));
            } else if s.budget > 0 {
                s.copies.more += 1;
            } else {
                self.steady(s, out);
                s.hidden.add(Step::Copy, name, 1, now);
            }
            return;
        }
        self.end_copies(s, now, out);
        if s.budget > 0 {
            s.budget -= 1;
            out.push(self.entry(c));
        } else {
            self.steady(s, out);
            s.hidden.add(Step::SystemV, label(c.call), 1, now);
        }
    }

    fn waiting(
        &self,
        s: &mut State,
        c: &Call<'_>,
        until: &'static str,
        now: Instant,
        out: &mut Vec<String>,
    ) {
        self.end_copies(s, now, out);
        let budget = s.budget;
        let w = s
            .wait
            .get_or_insert_with(|| WaitRun::new(now, until, c.call));
        let (repeat, key) = w.place(c);
        let show = budget > 0 && w.shown < WAIT_SHOWN_MAX && !repeat;
        if !show {
            w.repeat(c, now);
            return;
        }
        let collapsed = (w.repeats > 0).then(|| w.collapse(Some(c), now));
        w.seen.insert(key);
        w.shown += 1;
        self.summary(s, out);
        if let Some(line) = collapsed {
            out.push(self.note(&line));
        }
        out.push(self.entry(c));
    }

    /// The wait under way ends (`next` is the call that ends it, if one does). A
    /// wait of [`IDLE`] or more begins a new phase.
    fn end_wait(
        &self,
        s: &mut State,
        next: Option<&Call<'_>>,
        now: Instant,
        out: &mut Vec<String>,
    ) {
        let Some(mut w) = s.wait.take() else { return };
        let long = now.duration_since(w.start) >= IDLE;
        if w.repeats > 0 {
            if w.shown > 0 || long || next.is_none() {
                self.end_copies(s, now, out);
                self.summary(s, out);
                let line = w.collapse(next, now);
                out.push(self.note(&line));
            } else {
                // A short wait in the middle of a stream, none of it shown: counted
                // with the other per-message calls.
                for (l, n) in &w.rounds {
                    s.hidden.add(Step::SystemV, l.clone(), *n, now);
                }
            }
        }
        if long {
            self.new_phase(s, now, out);
        }
    }

    /// The copies in a row end: one line for those not shown.
    fn end_copies(&self, s: &mut State, now: Instant, out: &mut Vec<String>) {
        let run = std::mem::take(&mut s.copies);
        if run.more == 0 {
            return;
        }
        if s.budget > 0 {
            s.budget -= 1;
            out.push(self.note(&format!(
                "and {} more {} like these, not shown",
                run.more, run.name
            )));
        } else {
            s.hidden.add(Step::Copy, run.name, run.more, now);
        }
    }

    /// A new phase: what was counted is summarised, and the next per-message calls
    /// are shown in full again.
    fn new_phase(&self, s: &mut State, now: Instant, out: &mut Vec<String>) {
        self.end_copies(s, now, out);
        self.summary(s, out);
        s.budget = PER_PHASE_IN_FULL;
        s.said_steady = false;
    }

    /// Says once per phase that per-message calls are counted from now on.
    fn steady(&self, s: &mut State, out: &mut Vec<String>) {
        if !s.said_steady {
            s.said_steady = true;
            out.push(self.note(
                "steady state: the next per-message calls are counted, not shown, \
                 until something else happens",
            ));
        }
    }

    /// One line for what was counted since the last one.
    fn summary(&self, s: &mut State, out: &mut Vec<String>) {
        if s.hidden.is_empty() {
            return;
        }
        let h = std::mem::take(&mut s.hidden);
        let list = |v: &[(String, u64)]| {
            v.iter()
                .map(|(l, n)| format!("{n} {l}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !h.calls.is_empty() {
            parts.push(format!(
                "{} more calls ({})",
                h.total_calls(),
                list(&h.calls)
            ));
        }
        if !h.copies.is_empty() {
            parts.push(list(&h.copies));
        }
        let secs = match (h.first, h.last) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        out.push(self.note(&format!(
            "not shown: {}, in {secs:.1} s",
            parts.join(" and ")
        )));
    }

    /// A call or a copy, shown in full.
    fn entry(&self, c: &Call<'_>) -> String {
        let head = if c.result.is_empty() {
            format!("{} {}", self.prefix, c.call)
        } else {
            format!("{} {} = {}", self.prefix, c.call, c.result)
        };
        match self.style {
            Style::Full => format!("{head}    // {}\n", c.why),
            Style::Compact => {
                let mut text = wrap(&head, "", CONTINUATION, WIDTH, true);
                text.push_str(&wrap(c.why, "    // ", "    // ", WIDTH, false));
                text
            }
        }
    }

    /// One of the narrator's own lines: `[who] ... text`.
    fn note(&self, text: &str) -> String {
        let line = format!("{} ... {text}", self.prefix);
        match self.style {
            Style::Full => format!("{line}\n"),
            Style::Compact => wrap(&line, "", CONTINUATION, WIDTH, false),
        }
    }
}

/// How the compact style indents the continuation of a call.
const CONTINUATION: &str = "        ";

/// `text` in lines of at most `width` columns, each ending in a newline: the first
/// starts with `first`, the others with `rest`. A call (`code`) breaks between two
/// operations of a `semop` (`}, {`) or after a comma where that does not leave the
/// line too short; prose, and a call that has no such place, at the last space;
/// a word wider than a line anywhere.
fn wrap(text: &str, first: &str, rest: &str, width: usize, code: bool) -> String {
    let mut out = String::new();
    let mut prefix = first;
    let mut left: &str = text;
    loop {
        let room = width.saturating_sub(prefix.chars().count()).max(1);
        if left.chars().count() <= room {
            out.push_str(prefix);
            out.push_str(left);
            out.push('\n');
            return out;
        }
        // The byte index just past `room` characters.
        let limit = left.char_indices().nth(room).map_or(left.len(), |(i, _)| i);
        let window = &left[..limit];
        let code_cut = || {
            window
                .rfind("}, {")
                .map(|i| i + 2)
                .filter(|&i| i >= limit / 4)
                .or_else(|| {
                    window
                        .rfind(", ")
                        .map(|i| i + 1)
                        .filter(|&i| i >= limit / 2)
                })
        };
        let cut = code
            .then(code_cut)
            .flatten()
            .or_else(|| window.rfind(' ').filter(|&i| i > 0))
            .unwrap_or(limit);
        out.push_str(prefix);
        out.push_str(left[..cut].trim_end());
        out.push('\n');
        left = left[cut..].trim_start();
        prefix = rest;
        if left.is_empty() {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn narrator(style: Style) -> Narrator {
        Narrator {
            prefix: "[reader]".into(),
            style,
            state: Mutex::new(State::new()),
        }
    }

    fn call<'a>(kind: Kind, call: &'a str, result: &'a str) -> Call<'a> {
        Call {
            kind,
            step: Step::SystemV,
            call,
            result,
            why: "why",
        }
    }

    const TAKE: &str = "semop(5, [{1 /* FILLED */, -1, SEM_UNDO|IPC_NOWAIT}])";
    const FREE: &str = "semop(5, [{5 /* TAIL */, +1, IPC_NOWAIT}])";
    const SLEEP: &str = "semtimedop(5, [{1 /* FILLED */, -1, SEM_UNDO}], 100ms)";
    const GETALL: &str = "semctl(5, 0, GETALL, values)";
    const TIMED_OUT: &str = "-1 (EAGAIN: would block / timed out)";

    /// One message: take, copy, free (three lines while the budget lasts).
    fn message(n: &Narrator, at: Instant, out: &mut Vec<String>) {
        out.extend(n.step(&call(Kind::PerMessage, TAKE, "0"), at));
        let copy = Call {
            step: Step::Copy,
            ..call(Kind::PerMessage, "memcpy(out + 0, base + 4128, 6)", "")
        };
        out.extend(n.step(&copy, at));
        out.extend(n.step(&call(Kind::PerMessage, FREE, "0"), at));
    }

    /// The System V calls an output accounts for: shown in full, or counted.
    fn accounted(out: &[String]) -> u64 {
        out.iter()
            .flat_map(|e| e.lines())
            .map(|l| {
                if let Some((n, _)) = l.split_once(" more calls") {
                    n.rsplit(' ')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0)
                } else {
                    u64::from(l.starts_with("[reader] sem") || l.starts_with("[reader] shm"))
                }
            })
            .sum()
    }

    #[test]
    fn a_wait_is_its_first_round_and_one_line_when_it_ends() {
        let n = narrator(Style::Full);
        let t0 = Instant::now();
        let mut out = Vec::new();
        let lookup = "shmget(0x7e100001, 0, 0)";
        let wait = Kind::Waiting("a writer created them");
        for i in 0..30 {
            let at = t0 + Duration::from_millis(100 * i);
            out.extend(n.step(&call(wait, lookup, "-1 (ENOENT)"), at));
            out.extend(n.step(&call(wait, "semget(0x7e100001, 0, 0)", "-1 (ENOENT)"), at));
        }
        assert_eq!(out.len(), 2, "only the first round while waiting: {out:#?}");
        let at = t0 + Duration::from_millis(3000);
        out.extend(n.step(&call(wait, lookup, "shmid 7"), at));
        assert_eq!(out.len(), 4, "{out:#?}");
        assert_eq!(
            out[2],
            "[reader] ... waiting: shmget, semget repeated about every 100 ms (ENOENT): \
             58 more calls in 3.0 s, until a writer created them\n"
        );
        assert!(out[3].starts_with("[reader] shmget(0x7e100001, 0, 0) = shmid 7"));
        assert_eq!(accounted(&out), 61);
    }

    #[test]
    fn every_phase_shows_its_first_messages_and_nothing_is_printed_while_idle() {
        let n = narrator(Style::Full);
        let t0 = Instant::now();
        let mut out = Vec::new();
        out.extend(n.step(
            &call(
                Kind::Once,
                "semop(5, [{7 /* READERS */, +1, SEM_UNDO}])",
                "0",
            ),
            t0,
        ));
        for _ in 0..50 {
            message(&n, t0, &mut out);
        }
        let shown = out.len();
        assert!(shown < 20, "the budget stops a flood: {out:#?}");
        assert!(out.iter().any(|l| l.contains("steady state")));
        // Idle: the reader's semtimedop times out every 100 ms, nothing is printed.
        let wait = Kind::Waiting("a frame was published");
        for i in 1..=20 {
            let at = t0 + Duration::from_millis(100 * i);
            out.extend(n.step(&call(wait, SLEEP, TIMED_OUT), at));
            out.extend(n.step(&call(wait, GETALL, "0, [FREE=4]"), at));
        }
        assert_eq!(out.len(), shown, "printed while idle: {:#?}", &out[shown..]);
        // The next message ends the wait: the summary, the wait's line, and the
        // message in full again.
        let at = t0 + Duration::from_millis(2100);
        out.extend(n.step(&call(Kind::PerMessage, SLEEP, "0"), at));
        let after = &out[shown..];
        assert!(
            after[0].contains("not shown: 92 more calls (92 semop) and 46 memcpy"),
            "{after:#?}"
        );
        assert!(
            after[1].contains("waiting: semtimedop, semctl GETALL repeated about every 100 ms (EAGAIN): 40 more calls")
                && after[1].ends_with(", until a frame was published\n"),
            "{after:#?}"
        );
        assert!(
            after[2].starts_with(&format!("[reader] {SLEEP} = 0")),
            "{after:#?}"
        );
        let before = out.len();
        message(&n, at, &mut out);
        assert_eq!(out.len(), before + 3, "the message after the pause in full");
        out.extend(n.last_words(at));
        assert_eq!(accounted(&out), 1 + 100 + 40 + 1 + 2);
    }

    #[test]
    fn a_pause_without_calls_begins_a_phase_too() {
        let n = narrator(Style::Full);
        let t0 = Instant::now();
        let mut out = Vec::new();
        for _ in 0..50 {
            message(&n, t0, &mut out);
        }
        let shown = out.len();
        let at = t0 + IDLE;
        message(&n, at, &mut out);
        assert!(out[shown].contains("not shown:"), "{:#?}", &out[shown..]);
        assert_eq!(out.len(), shown + 4, "summary, then the message in full");
    }

    #[test]
    fn short_waits_in_a_stream_are_counted_not_shown() {
        let n = narrator(Style::Full);
        let t0 = Instant::now();
        let mut out = Vec::new();
        for _ in 0..20 {
            message(&n, t0, &mut out);
        }
        let shown = out.len();
        let wait = Kind::Waiting("a frame was published");
        for _ in 0..100 {
            out.extend(n.step(&call(wait, SLEEP, TIMED_OUT), t0));
            message(&n, t0, &mut out);
        }
        assert_eq!(out.len(), shown, "{:#?}", &out[shown..]);
        out.extend(n.last_words(t0));
        assert_eq!(accounted(&out), 120 * 2 + 100);
    }

    #[test]
    fn a_run_of_copies_shows_two_and_counts_the_rest() {
        let n = narrator(Style::Full);
        let t0 = Instant::now();
        let mut out = Vec::new();
        for i in 0..10 {
            let text = format!("memcpy(out + 0, base + {}, 6)", 4128 + 4096 * i);
            let copy = Call {
                step: Step::Copy,
                ..call(Kind::PerMessage, &text, "")
            };
            out.extend(n.step(&copy, t0));
        }
        out.extend(n.step(&call(Kind::PerMessage, FREE, "0"), t0));
        assert_eq!(out.len(), 4, "{out:#?}");
        assert_eq!(
            out[2],
            "[reader] ... and 8 more memcpy like these, not shown\n"
        );
    }

    #[test]
    fn compact_lines_fit_80_columns() {
        let n = narrator(Style::Compact);
        let long = "semop(6520894, [{1 /* FILLED */, +128, SEM_UNDO|IPC_NOWAIT}, {1 /* FILLED */, \
                    -128, IPC_NOWAIT}, {5 /* TAIL */, +128, IPC_NOWAIT}, {0 /* FREE */, +128, \
                    IPC_NOWAIT}, {3 /* READ_MUTEX */, +1, SEM_UNDO|IPC_NOWAIT}])";
        let c = Call {
            why: "free 128 slots: TAIL 896 -> 0, wrapping past the last slot (-896 = +128 - \
                  1024 slots), FREE += 128, READ_MUTEX released (our SEM_UNDO on FILLED cancelled)",
            ..call(Kind::Once, long, "0")
        };
        let out = n.step(&c, Instant::now());
        assert_eq!(out.len(), 1, "one entry, one write");
        for l in out[0].lines() {
            assert!(l.chars().count() <= WIDTH, "{l:?}");
        }
        assert!(out[0]
            .lines()
            .any(|l| l.starts_with("    // free 128 slots")));
    }

    #[test]
    fn wrapping_keeps_every_line_within_the_width() {
        let call = "[writer] semop(2818105, [{0 /* FREE */, -1, SEM_UNDO|IPC_NOWAIT}, \
                    {2 /* WRITE_MUTEX */, -1, SEM_UNDO|IPC_NOWAIT}]) = 0";
        let text = wrap(call, "", CONTINUATION, 80, true);
        for l in text.lines() {
            assert!(l.chars().count() <= 80, "{l:?}");
        }
        assert_eq!(
            text,
            "[writer] semop(2818105, [{0 /* FREE */, -1, SEM_UNDO|IPC_NOWAIT},\n        \
             {2 /* WRITE_MUTEX */, -1, SEM_UNDO|IPC_NOWAIT}]) = 0\n"
        );
        let long = "x".repeat(200);
        let text = wrap(&long, "    // ", "    // ", 80, false);
        assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
        assert_eq!(
            text.replace("\n    // ", "")
                .trim_start_matches("    // ")
                .trim(),
            long
        );
    }

    #[test]
    fn labels_name_the_command() {
        assert_eq!(label("semctl(5, 0, GETALL, values)"), "semctl GETALL");
        assert_eq!(label("semctl(5, 4 /* HEAD */, GETVAL)"), "semctl GETVAL");
        assert_eq!(label("shmctl(7, IPC_STAT, &buf)"), "shmctl IPC_STAT");
        assert_eq!(label("semop(5, [{0 /* FREE */, -1, 0}])"), "semop");
        assert_eq!(label("memcpy(base + 4128, data, 6)"), "memcpy");
    }

    #[test]
    fn errno_names_come_from_failures_only() {
        assert_eq!(errno_name("-1 (ENOENT)"), Some("ENOENT"));
        assert_eq!(
            errno_name("-1 (EAGAIN: would block / timed out)"),
            Some("EAGAIN")
        );
        assert_eq!(errno_name("0"), None);
        assert_eq!(errno_name("shmid 5"), None);
    }
}
