//! `shm-race`: broken without semaphores every time, clean with them every time,
//! readable on an 80-column terminal, and always tidy.
//!
//! No test retries until lucky: the unsynchronized run widens the window between
//! the load and the store of `count` (`--window`, default `yield`), so every single
//! run must catch the race, on all CPUs and pinned to one.
mod support;
use shm_cli::keys::Range;
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;
use support::*;

/// Runs per CPU configuration: every one must catch the race.
const RUNS: usize = 20;
/// Frames per run: the first damage comes within a few dozen frames (measured
/// over 90 runs, pinned, unpinned and under `nice -n -19`: by event 57-66, about
/// frame 8, in most; by event 203, about frame 25, at the latest), and a run
/// takes well under a second in a debug build.
const FRAMES: &str = "2000";

/// A key in the race tests' range.
fn race_key() -> TestKey {
    TestKey::in_range(Range::RACE_TESTS)
}

/// `PREFIX shm-race ARGS...` to completion (PREFIX: e.g. `taskset -c 0`).
fn race_with(prefix: &[&str], args: &[&str], limit: Duration) -> (Finished, String) {
    let exe = bin("shm-race");
    let mut c = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    c.args(args);
    let f = run(c, limit);
    let out = String::from_utf8_lossy(&f.stdout).into_owned();
    (f, out)
}

fn race(args: &[&str], limit: Duration) -> (Finished, String) {
    race_with(&[], args, limit)
}

/// `text` with every run of whitespace made one space: the output is wrapped at
/// 80 columns, so a phrase may be split across lines.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every `result MODE k=v ...` line of `stdout`, joined into one map.
fn results(stdout: &str, mode: &str) -> HashMap<String, String> {
    let prefix = format!("result {mode} ");
    let mut m = HashMap::new();
    for l in stdout.lines().filter(|l| l.starts_with(&prefix)) {
        m.extend(pairs(l));
    }
    assert!(!m.is_empty(), "no result lines for {mode} in:\n{stdout}");
    m
}

fn num(m: &HashMap<String, String>, k: &str) -> u64 {
    m.get(k)
        .unwrap_or_else(|| panic!("no {k} in {m:?}"))
        .parse()
        .expect("a number")
}

const PARTS: [&str; 5] = [
    "torn",
    "lost",
    "duplicates",
    "read_before_write",
    "out_of_order",
];

/// Checks one `--run both` run: the race caught, with an example, and explained;
/// the synchronized run clean; everything within 80 columns; nothing left behind.
/// Returns the unsynchronized run's (anomalies, reads, wrong reads, lost updates).
fn check_both(ctx: &str, guard: &TestKey, o: &Finished, out: &str) -> (u64, u64, u64, u64) {
    assert_no_crash(o, ctx);
    assert_eq!(
        o.code(),
        Some(0),
        "{ctx}: {}\n{out}\n{}",
        o.describe(),
        o.stderr
    );
    assert!(o.stderr.contains("RACE DEMONSTRATION"), "{ctx}: no banner");
    for l in out.lines().chain(o.stderr.lines()) {
        assert!(
            l.chars().count() <= 80,
            "{ctx}: wider than 80 columns: {l:?}"
        );
    }
    let u = results(out, "unsynchronized");
    let text = flat(out);
    let parts: u64 = PARTS.iter().map(|k| num(&u, k)).sum();
    assert_eq!(parts, num(&u, "anomalies"), "{ctx}");
    assert!(num(&u, "anomalies") > 0, "{ctx}: caught nothing:\n{out}");
    assert_eq!(u["caught"], "yes", "{ctx}");
    assert_eq!(u["window"], "yield", "{ctx}");
    assert_eq!(u["cut_short"], "false", "{ctx}");
    assert_eq!(num(&u, "frames_written"), 2000, "{ctx}");
    assert!(
        num(&u, "lost_updates") > 0,
        "{ctx}: damage without a lost update"
    );
    assert_eq!(
        num(&u, "lost_updates"),
        num(&u, "lost_increments") + num(&u, "lost_decrements"),
        "{ctx}"
    );
    assert!(text.contains("Run 1 CAUGHT THE RACE"), "{ctx}:\n{out}");
    assert!(
        text.contains("sched_yield()") && text.contains("the way a preemption at that instant"),
        "{ctx}: the widened window is not explained:\n{out}"
    );
    // The example: the interleaving, a lost update in it, and which frame it hurt.
    assert!(
        text.contains("What went wrong first"),
        "{ctx}: no example:\n{out}"
    );
    assert!(
        text.contains("is LOST") || text.contains("are LOST"),
        "{ctx}:\n{out}"
    );
    assert!(
        text.contains("was delivered twice")
            || text.contains("before anyone read it")
            || text.contains("torn frame")
            || text.contains("before anything had ever been written")
            || text.contains("after a later frame"),
        "{ctx}: the example names no damaged frame:\n{out}"
    );
    assert!(
        !text.contains("different bug"),
        "{ctx}: damage before any lost update"
    );
    let s = results(out, "synchronized");
    assert_eq!(num(&s, "frames_written"), 2000, "{ctx}");
    assert_eq!(num(&s, "delivered"), 2000, "{ctx}");
    for k in PARTS.iter().chain(&["anomalies"]) {
        assert_eq!(num(&s, k), 0, "{ctx}: synchronized {k}:\n{out}");
    }
    assert!(
        text.contains("every frame arrived once, whole and in order"),
        "{ctx}"
    );
    assert_eq!(segment_at(guard.key), None, "{ctx}: segment left behind");
    assert_eq!(sem_values(guard.key), None, "{ctx}: set left behind");
    let wrong = num(&u, "torn") + num(&u, "read_before_write");
    (
        num(&u, "anomalies"),
        num(&u, "reads"),
        wrong,
        num(&u, "lost_updates"),
    )
}

/// Runs [`RUNS`] times under `prefix`; every run must catch the race.
fn every_run_catches_the_race(prefix: &[&str], name: &str) {
    let guard = race_key();
    let key = guard.arg();
    let args = [
        "--i-understand-this-is-broken",
        "--key",
        &key,
        "--frames",
        FRAMES,
        "--seconds",
        "30",
    ];
    let mut seen = Vec::new();
    for run in 0..RUNS {
        let (o, out) = race_with(prefix, &args, Duration::from_secs(120));
        let ctx = format!("{name} run {run}");
        seen.push(check_both(&ctx, &guard, &o, &out));
    }
    // The measured numbers, for the README's sentence (visible with --nocapture).
    let wrong: Vec<String> = seen
        .iter()
        .map(|(_, reads, wrong, _)| format!("{:.1}%", 100.0 * *wrong as f64 / *reads as f64))
        .collect();
    eprintln!(
        "{name}: anomalies {:?}; wrong reads {wrong:?}; lost updates {:?}",
        seen.iter().map(|s| s.0).collect::<Vec<_>>(),
        seen.iter().map(|s| s.3).collect::<Vec<_>>()
    );
}

#[test]
fn refuses_without_the_flag_and_creates_nothing() {
    let guard = race_key();
    let (o, out) = race(&["--key", &guard.arg()], Duration::from_secs(20));
    assert_eq!(o.code(), Some(2));
    assert!(
        o.stderr.contains("--i-understand-this-is-broken"),
        "{}",
        o.stderr
    );
    assert!(out.is_empty());
    assert_eq!(segment_at(guard.key), None);
    assert_eq!(sem_values(guard.key), None);
}

#[test]
fn every_unpinned_run_catches_the_race_and_the_synchronized_none() {
    every_run_catches_the_race(&[], "unpinned");
}

#[test]
fn every_run_on_one_cpu_catches_the_race_and_the_synchronized_none() {
    if !require(
        "taskset",
        "util-linux",
        &["taskset", "-c", "0", "true"],
        "pins shm-race to one CPU, where the two sides meet least",
    ) {
        return;
    }
    every_run_catches_the_race(&["taskset", "-c", "0"], "pinned to CPU 0");
}

#[test]
fn a_run_that_catches_nothing_says_so_and_exits_9() {
    // One frame with the plain handout: the reader's only count-- comes after the
    // writer's only count++ (it waits for it), so nothing can be lost.
    let guard = race_key();
    let (o, out) = race(
        &[
            "--i-understand-this-is-broken",
            "--run",
            "unsynchronized",
            "--window",
            "none",
            "--frames",
            "1",
            "--key",
            &guard.arg(),
        ],
        Duration::from_secs(30),
    );
    assert_no_crash(&o, "shm-race");
    assert_eq!(o.code(), Some(9), "{}\n{out}", o.stderr);
    let text = flat(&out);
    assert!(text.contains("Run 1 CAUGHT NO RACE this time"), "{out}");
    assert!(text.contains("That is luck, not correctness"), "{out}");
    assert!(text.contains("NOT widened (--window none)"), "{out}");
    assert!(
        text.contains("or without --window none (exit status 9)"),
        "{out}"
    );
    assert!(!out.contains("What went wrong first"), "{out}");
    let u = results(&out, "unsynchronized");
    assert_eq!(u["caught"], "no");
    assert_eq!((num(&u, "anomalies"), num(&u, "delivered")), (0, 1));
    assert_eq!(num(&u, "lost_updates"), 0);
    assert_eq!(segment_at(guard.key), None, "segment left behind");
}

#[test]
fn a_bad_window_is_refused() {
    for bad in ["20", "0us", "1s", "sometimes"] {
        let (o, out) = race(
            &["--i-understand-this-is-broken", "--window", bad],
            Duration::from_secs(20),
        );
        assert_eq!(o.code(), Some(2), "--window {bad}: {}", o.stderr);
        assert!(o.stderr.contains("--window"), "{}", o.stderr);
        assert!(out.is_empty());
    }
}

#[test]
fn a_closed_or_full_stdout_is_no_reason_to_panic() {
    let guard = race_key();
    let exe = bin("shm-race");
    let run = format!(
        "{} --i-understand-this-is-broken --frames {FRAMES} --key {}",
        exe.display(),
        guard.arg()
    );
    // `| head -1`: stdout is a pipe whose reader leaves after one line, so every
    // later write fails with EPIPE (SIGPIPE is ignored by Rust programs).
    let (code, out, err) = bash(&format!(
        "{run} 2>&1 | head -1; echo \"status=${{PIPESTATUS[0]}}\""
    ));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("status=0"), "{out}");
    assert!(
        !out.contains("panicked") && !err.contains("panicked"),
        "{out}{err}"
    );
    assert_eq!(
        segment_at(guard.key),
        None,
        "segment left behind (| head -1)"
    );
    // A pipe closed before the first write, closed descriptors, a full device.
    // (With stderr closed or full, only the status can tell a panic: 101.)
    for (how, redirect) in [
        ("a pipe closed at once", "| true"),
        ("closed stdout and stderr", ">&- 2>&-"),
        ("/dev/full", ">/dev/full 2>/dev/full"),
    ] {
        let (_, out, err) = bash(&format!(
            "{run} {redirect}; echo \"status=${{PIPESTATUS[0]}}\""
        ));
        assert!(out.contains("status=0"), "{how}: {out}{err}");
        assert!(!err.contains("panicked"), "{how}: {err}");
        assert_eq!(segment_at(guard.key), None, "segment left behind ({how})");
    }
}

#[test]
fn ctrl_c_removes_the_segment() {
    let guard = race_key();
    let mut c = Command::new(bin("shm-race"));
    c.args([
        "--i-understand-this-is-broken",
        "--run",
        "unsynchronized",
        "--key",
        &guard.arg(),
        "--frames",
        "100000000",
        "--seconds",
        "60",
    ]);
    let p = Proc::spawn(c, std::process::Stdio::null());
    let seen = eventually(Duration::from_secs(20), || segment_at(guard.key));
    p.signal(Signal::SIGINT);
    let o = p.wait(Duration::from_secs(30));
    assert!(seen.is_some(), "the run never created its segment");
    assert_eq!(o.code(), Some(130), "{}", o.stderr);
    assert_no_crash(&o, "shm-race");
    assert_eq!(segment_at(guard.key), None, "segment left behind");
}
