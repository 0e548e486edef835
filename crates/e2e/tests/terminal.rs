//! What a person sees on a terminal, tested on one: tmux at 80x24 (and util-linux
//! `script` for a pseudo-terminal without a screen). The progress bar appears only
//! for a transfer that is long (a second) and large (a mebibyte), never for a short
//! or typed one, never where it would cut through other output, and is cleared at
//! the end; notes and the summary are whole lines.
mod support;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::tmux::{require_tmux, Tmux};
use support::*;

/// What a progress bar leaves in a recording of the terminal: its rate in binary
/// units (`MiB/s`; the summary line says `MB/s`), the ETA of a known total, or a
/// spinner glyph.
fn has_bar(bytes: &str) -> bool {
    bytes.contains("iB/s") || bytes.contains(" ETA ") || bytes.contains('⠁')
}

/// Two panes of one 80x24 window: a reader on top writing to its terminal, a
/// writer below reading what is typed. Two lines typed 1.5 s apart arrive, each as
/// it is typed; neither pane ever draws a bar or a spinner (recorded byte for byte
/// with `pipe-pane`); each pane ends with its one summary line; nothing left.
#[test]
fn a_short_typed_pair_draws_no_bar_or_spinner() {
    if !require_tmux() {
        return;
    }
    let k = TestKey::new();
    let key = k.arg();
    // Each pane's shell waits for an Enter before starting its program, so that
    // the recording is on before the program writes anything.
    let start = |prog: &str| {
        format!(
            "read _; {} --key {key}; echo EXIT=$?; exec sleep 600",
            bin(prog).display()
        )
    };
    let t = Tmux::new_session(80, 24, &start("reader"));
    let writer_pane = t.split(&start("writer"));
    let panes = t.tmux(&["list-panes", "-F", "#{pane_id}"]);
    let ids: Vec<String> = String::from_utf8_lossy(&panes.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let reader_pane = ids
        .iter()
        .find(|p| **p != writer_pane)
        .expect("the reader's pane")
        .clone();
    let (reader_log, writer_log) = (TempFile::new(b""), TempFile::new(b""));
    t.record(&reader_pane, &reader_log);
    t.record(&writer_pane, &writer_log);
    t.type_into(&reader_pane, "Enter", false);
    t.type_into(&writer_pane, "Enter", false);
    t.wait_screen_of(&writer_pane, TIMEOUT, "the writer to create the key", |s| {
        s.contains("created key")
    });
    t.type_into(&writer_pane, "first line", true);
    t.type_into(&writer_pane, "Enter", false);
    t.wait_screen_of(&reader_pane, TIMEOUT, "the first line", |s| {
        s.contains("first line")
    });
    // A pause longer than the bar's one second: typing slowly must not bring it.
    std::thread::sleep(Duration::from_millis(1500));
    t.type_into(&writer_pane, "second line", true);
    t.type_into(&writer_pane, "Enter", false);
    t.wait_screen_of(&reader_pane, TIMEOUT, "the second line", |s| {
        s.contains("second line")
    });
    t.type_into(&writer_pane, "C-d", false);
    let w = t.wait_screen_of(&writer_pane, TIMEOUT, "the writer's exit", |s| {
        s.contains("EXIT=")
    });
    let r = t.wait_screen_of(&reader_pane, TIMEOUT, "the reader's exit", |s| {
        s.contains("EXIT=")
    });
    assert!(w.contains("EXIT=0") && r.contains("EXIT=0"), "{w}\n{r}");
    assert!(
        w.contains("writer: 23 bytes, 2 messages") && r.contains("reader: 23 bytes, 2 messages"),
        "one summary line each:\n{w}\n{r}"
    );
    for (who, log) in [("writer", &writer_log), ("reader", &reader_log)] {
        let bytes = String::from_utf8_lossy(&log.read()).into_owned();
        assert!(
            !has_bar(&bytes),
            "the {who}'s pane drew a progress bar or a spinner:\n{bytes:?}"
        );
    }
    drop(t);
    k.assert_clean();
}

/// A transfer long enough (the reader slowed to 100 ms a frame: over 3 s) and large
/// enough (2 MiB) draws the bar on a terminal, clears it at the end, and a
/// redirected stderr gets none of it.
#[test]
fn a_long_transfer_draws_the_bar_on_a_terminal_only_and_clears_it() {
    if !require_script("run the writer on a pseudo-terminal") {
        return;
    }
    let data = pseudo_random(2 << 20, 11);
    let file = TempFile::new(&data);
    let k = TestKey::new();
    let mut slow = k.reader();
    slow.args(["--delay", "100"]);
    let reader = Proc::spawn(slow, Stdio::null());
    let cmd = format!(
        "{} --key {} --slots 4 --slot-size 64K {}",
        bin("writer").display(),
        k.arg(),
        file.path.display()
    );
    let mut script = Command::new("script");
    script.args(["-qefc", &cmd, "/dev/null"]);
    let tty = run(script, TIMEOUT);
    let r = reader.wait(TIMEOUT);
    assert_eq!(tty.code(), Some(0), "writer under script: {}", tty.stderr);
    assert_eq!(r.code(), Some(0), "reader: {}", r.stderr);
    assert!(r.stdout == data, "the data arrived intact");
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(
        screen.contains("ETA") && screen.contains('%'),
        "no progress bar on the terminal:\n{screen}"
    );
    // Cleared: the summary line is the last thing on the screen, after the last
    // drawing of the bar, and the bar's line was erased (ESC [ K or ESC [ 2K).
    let summary = screen
        .rfind("writer: 2097152 bytes")
        .expect("the summary line");
    assert!(screen.rfind("ETA").is_some_and(|bar| bar < summary));
    assert!(
        screen[..summary].contains("\x1b["),
        "the bar was not cleared"
    );
    k.assert_clean();
    // Not a terminal: the same transfer prints no bar.
    let k = TestKey::new();
    let mut slow = k.reader();
    slow.args(["--delay", "100"]);
    let reader = Proc::spawn(slow, Stdio::null());
    let mut w = k.writer();
    w.args(["--slots", "4", "--slot-size", "64K"])
        .arg(&file.path);
    let plain = Proc::spawn(w, Stdio::null()).wait(TIMEOUT);
    assert_eq!(plain.code(), Some(0), "writer: {}", plain.stderr);
    assert_eq!(reader.wait(TIMEOUT).code(), Some(0));
    assert!(
        !has_bar(&plain.stderr),
        "a bar on a pipe:\n{}",
        plain.stderr
    );
    k.assert_clean();
}

/// With `--explain` on a terminal the narration is all there is: no bar cuts
/// through it, however long the transfer.
#[test]
fn explain_on_a_terminal_draws_no_bar() {
    if !require_script("run the writer on a pseudo-terminal") {
        return;
    }
    let file = TempFile::new(&pseudo_random(2 << 20, 12));
    let k = TestKey::new();
    let mut slow = k.reader();
    slow.args(["--delay", "100"]);
    let reader = Proc::spawn(slow, Stdio::null());
    let cmd = format!(
        "{} --explain --key {} --slots 4 --slot-size 64K {}",
        bin("writer").display(),
        k.arg(),
        file.path.display()
    );
    let mut script = Command::new("script");
    script.args(["-qefc", &cmd, "/dev/null"]);
    let tty = run(script, TIMEOUT);
    assert_eq!(tty.code(), Some(0), "{}", tty.stderr);
    assert_eq!(reader.wait(TIMEOUT).code(), Some(0));
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(screen.contains("[writer] semget("), "narrated:\n{screen}");
    assert!(!has_bar(&screen), "a bar inside --explain:\n{screen}");
    k.assert_clean();
}
