//! What `shm-race` prints, for an 80-column terminal: what the runs do, the two
//! runs side by side, what they mean, and the `result` lines for scripts. Each
//! function returns one message; the binary writes each with one `write(2)`.

use super::{RaceConfig, Tally, Unsynchronized, Window};
use std::fmt::Write as _;

/// The terminal width everything here fits in.
pub const WIDTH: usize = 80;

/// Fills `text` (words separated by single spaces) into lines of at most
/// `WIDTH - 1` columns, the first starting with `first`, the others with `rest`.
pub(super) fn wrap(first: &str, rest: &str, text: &str) -> String {
    let mut out = String::new();
    let mut line = first.to_string();
    let mut fresh = true;
    for word in text.split_whitespace() {
        if !fresh && line.len() + 1 + word.len() > WIDTH - 1 {
            out.push_str(line.trim_end());
            out.push('\n');
            line = rest.to_string();
            fresh = true;
        }
        if !fresh {
            line.push(' ');
        }
        line.push_str(word);
        fresh = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

/// How the window is widened, as a sentence.
fn window_sentence(w: Window) -> String {
    match w {
        Window::None => "The window between reading and writing `count` is NOT widened \
            (--window none): the load, the add and the store run back to back, and the \
            other side seldom lands between them, so this run may well catch nothing; the \
            bug is there all the same."
            .into(),
        Window::Yield => format!(
            "The window between reading and writing `count` is widened with a \
             sched_yield() (for at least {} us), the way a preemption at that instant \
             would: the CPU goes to the other side, if it is waiting for one. One update \
             in two is preempted so, at random. The bug is the handout's lost update, made \
             likely instead of rare.",
            Window::YIELD_AT_LEAST.as_micros()
        ),
        Window::Sleep(_) => format!(
            "The window between reading and writing `count` is widened with a {w} sleep, \
             the way a preemption at that instant would: the thread is off the CPU while \
             the other side runs. One update in two is preempted so, at random. The bug \
             is the handout's lost update, made likely instead of rare."
        ),
    }
}

/// What the runs are about to do.
pub fn intro(cfg: &RaceConfig, unsynchronized: bool, synchronized: bool) -> String {
    let g = cfg.geometry;
    let mut s = format!(
        "shm-race: key {}, {} slots of {} bytes, {} frames per run\n",
        cfg.key, g.slots, g.slot_size, cfg.frames
    );
    if unsynchronized {
        s.push_str(&wrap(
            "Run 1, WITHOUT semaphores: ",
            "  ",
            &format!(
                "the handout's shared `count`, its two busy loops, and `count++` and \
                 `count--` as one load and one store each. {}",
                window_sentence(cfg.window)
            ),
        ));
    }
    if synchronized {
        s.push_str(&wrap(
            "Run 2, WITH semaphores: ",
            "  ",
            "the real Producer and Consumer, on the same ring with the same frames.",
        ));
    }
    s
}

/// The runs side by side (a column per run done).
pub fn table(unsync: Option<&Unsynchronized>, sync: Option<&Tally>) -> String {
    type Row = (&'static str, fn(&Tally) -> u64, &'static str);
    const ROWS: [Row; 8] = [
        ("frames written", |t| t.frames_written, ""),
        ("reads by the reader", |t| t.reads, ""),
        ("delivered intact", |t| t.delivered, ""),
        ("torn frames", |t| t.torn, "copied while being overwritten"),
        ("lost frames", |t| t.lost, "overwritten before being read"),
        (
            "duplicates",
            |t| t.duplicates,
            "the same frame delivered twice",
        ),
        (
            "read-before-write",
            |t| t.read_before_write,
            "empty or old slot read as new",
        ),
        (
            "out of order",
            |t| t.out_of_order,
            "delivered after a later frame",
        ),
    ];
    let mut cols: Vec<(&str, &Tally)> = Vec::new();
    if let Some(u) = unsync {
        cols.push(("without", &u.tally));
    }
    if let Some(t) = sync {
        cols.push(("with", t));
    }
    let label = |name: &str| format!("  {name} {:.<w$}", "", w = 22 - name.len());
    let mut s = format!("{:25}", "");
    for (h, _) in &cols {
        let _ = write!(s, "{h:>11}");
    }
    s.push('\n');
    s.push_str(&format!("{:25}", ""));
    for _ in &cols {
        s.push_str(" semaphores");
    }
    s.push('\n');
    for (name, get, note) in ROWS {
        s.push_str(&label(name));
        for (_, t) in &cols {
            let _ = write!(s, "{:>11}", get(t));
        }
        if !note.is_empty() {
            let _ = write!(s, "  {note}");
        }
        s.push('\n');
    }
    if let Some(u) = unsync {
        s.push_str(&label("lost count updates"));
        let _ = write!(s, "{:>11}", u.updates.lost());
        if sync.is_some() {
            let _ = write!(s, "{:>11}", "-");
        }
        s.push_str("  count++/count-- overwritten\n");
    }
    s.push_str(&label("time (ms)"));
    for (_, t) in &cols {
        let _ = write!(s, "{:>11}", t.elapsed.as_millis());
    }
    s.push('\n');
    s
}

/// What run 1 shows, in words: the race caught, or plainly not.
pub fn unsynchronized_verdict(u: &Unsynchronized) -> String {
    let t = &u.tally;
    let up = &u.updates;
    let lost_updates = format!(
        "`count` lost {} of its {} updates ({} count++, {} count--).",
        up.lost(),
        up.increments + up.decrements,
        up.lost_increments(),
        up.lost_decrements(),
    );
    let mut s = if u.caught() {
        let pct = 100.0 * t.wrong_reads() as f64 / t.reads.max(1) as f64;
        wrap(
            "Run 1 CAUGHT THE RACE: ",
            "  ",
            &format!(
                "{} of {} reads ({pct:.1}%) found a torn, empty or old slot, and {} of {} \
                 frames were never delivered. {lost_updates}",
                t.wrong_reads(),
                t.reads,
                t.lost,
                t.frames_written
            ),
        )
    } else {
        let why = if up.lost() > 0 {
            format!(
                "`count` did lose {} updates, but they cancelled out before any frame \
                 was hurt.",
                up.lost()
            )
        } else {
            "the other side never landed between a load and a store of `count`.".into()
        };
        wrap(
            "Run 1 CAUGHT NO RACE this time: ",
            "  ",
            &format!(
                "no frame was torn, lost or read twice. That is luck, not correctness: \
                 the code is just as wrong, and {why} Run it again, with more --frames, \
                 or {} (exit status 9).",
                if u.window == Window::None {
                    "without --window none"
                } else {
                    "with a longer --window (such as 20us)"
                }
            ),
        )
    };
    if t.cut_short {
        s.push_str(&wrap(
            "  ",
            "  ",
            "(The run was cut short by --seconds or Ctrl-C before all frames went.)",
        ));
    }
    s
}

/// What run 2 shows.
pub fn synchronized_verdict(t: &Tally) -> String {
    if t.anomalies() == 0 && t.delivered == t.frames_written && !t.cut_short {
        wrap(
            "Run 2, with semaphores: ",
            "  ",
            "every frame arrived once, whole and in order.",
        )
    } else {
        wrap(
            "Run 2 FOUND ANOMALIES WITH SEMAPHORES: ",
            "  ",
            "that is a bug in the real protocol (exit status 8).",
        )
    }
}

/// The `result MODE key=value ...` lines for scripts: as many as it takes to stay
/// within 80 columns, each starting with `result MODE`; a script joins them.
pub fn result_lines(mode: &str, t: &Tally, unsync: Option<&Unsynchronized>) -> String {
    let mut fields = vec![
        format!("frames_written={}", t.frames_written),
        format!("reads={}", t.reads),
        format!("delivered={}", t.delivered),
        format!("torn={}", t.torn),
        format!("lost={}", t.lost),
        format!("duplicates={}", t.duplicates),
        format!("read_before_write={}", t.read_before_write),
        format!("out_of_order={}", t.out_of_order),
        format!("anomalies={}", t.anomalies()),
    ];
    if let Some(u) = unsync {
        let up = &u.updates;
        fields.extend([
            format!("lost_updates={}", up.lost()),
            format!("lost_increments={}", up.lost_increments()),
            format!("lost_decrements={}", up.lost_decrements()),
            format!("window={}", u.window),
            format!("caught={}", if u.caught() { "yes" } else { "no" }),
        ]);
    }
    fields.extend([
        format!("elapsed_ms={}", t.elapsed.as_millis()),
        format!("cut_short={}", t.cut_short),
    ]);
    let prefix = format!("result {mode}");
    let mut out = String::new();
    let mut line = prefix.clone();
    for f in fields {
        if line.len() > prefix.len() && line.len() + 1 + f.len() > WIDTH - 1 {
            out.push_str(&line);
            out.push('\n');
            line = prefix.clone();
        }
        line.push(' ');
        line.push_str(&f);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_fits() {
        let text = "word ".repeat(60);
        let w = wrap("First: ", "  ", &text);
        assert!(w.lines().all(|l| l.len() < WIDTH), "{w}");
        assert!(w.starts_with("First: word"));
        assert!(w.lines().skip(1).all(|l| l.starts_with("  word")));
    }

    #[test]
    fn result_lines_fit_even_with_the_largest_numbers() {
        let big = super::super::MAX_FRAMES * 3;
        let t = Tally {
            frames_written: big,
            reads: big,
            delivered: big,
            torn: big,
            lost: big,
            duplicates: big,
            read_before_write: big,
            out_of_order: big,
            ..Tally::default()
        };
        let out = result_lines("synchronized", &t, None);
        assert!(out.lines().all(|l| l.len() < WIDTH), "{out}");
        assert!(out.lines().all(|l| l.starts_with("result synchronized ")));
        assert!(out.contains(&format!("anomalies={}", 5 * big)));
    }
}
