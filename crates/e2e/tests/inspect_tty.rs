//! `shm-inspect --watch` as a student sees it: on a real terminal emulator (tmux),
//! at 80x24 and at half width, against live, stopped and abandoned sessions.
//!
//! Each test runs its own tmux server (`tmux -L <name>`, a socket of its own, so
//! no other tmux is touched) with one pane of the size under test, runs the
//! inspector from a shell there, reads the screen with `capture-pane` and types
//! with `send-keys`. `capture-pane -J` joins the lines the terminal wrapped, so a
//! line wider than the pane shows up as one longer line: every captured line is at
//! most as wide as the pane only if nothing wrapped. The shell records `stty -g`
//! before and after the inspector, so a terminal left in raw mode is seen too.
mod support;
use shm_cli::keys::Range;
use shm_common::layout::sem;
use shm_common::{segment, semaphore};
use std::process::{Command, Stdio};
use support::tmux::{require_tmux, Tmux};
use support::*;

/// A pane of `cols` x `rows` whose shell prints a marker, runs `shm-inspect
/// ARGS`, then prints `EXIT=<its exit code>` and stays, so that the pane can still
/// be read after the inspector is gone.
fn run_inspector(cols: u16, rows: u16, args: &str) -> Tmux {
    Tmux::run_program(
        cols,
        rows,
        &format!("{} {args}", bin("shm-inspect").display()),
    )
}

/// The pid of the inspector running in the pane's shell.
fn inspector_pid(t: &Tmux) -> i32 {
    t.child_named("shm-inspect")
}

/// After the inspector quit: back on the normal screen, which shows what it
/// showed before (and nothing of the view), exit code 0, and the terminal's
/// settings as they were (no raw mode left behind).
fn assert_restored(t: &Tmux, key: &str) {
    let screen = t.wait_screen(SOON, "the exit code", |s| s.contains("EXIT="));
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        screen.contains("BEFORE-THE-VIEW"),
        "the normal screen is not back:\n{screen}"
    );
    assert!(
        !screen.contains(&format!("key {key}:")),
        "the view is still shown:\n{screen}"
    );
    assert_eq!(t.var("alternate_on"), "0", "still on the alternate screen");
    let after = || String::from_utf8_lossy(&t.stty_after.read()).into_owned();
    wait_until(SOON, "the shell's stty record", || !after().is_empty());
    assert_eq!(
        String::from_utf8_lossy(&t.stty_before.read()),
        after(),
        "the terminal's settings changed (raw mode left on?)"
    );
}

/// A live session at `k` with a ring of `slots` slots of 4 KiB: a reader stopped
/// (SIGSTOP) before it took anything, and a writer that has sent `bytes` bytes and
/// has more to send: its input stays open, and when `bytes` is more than the ring
/// holds, it sleeps on FREE (the ring is full). Both are killed when dropped.
fn stopped_reader_session(k: &TestKey, slots: u32, bytes: usize) -> (Proc, Proc) {
    let reader = Proc::spawn(k.reader(), Stdio::null());
    let mut w = k.writer();
    w.args(["--slots", &slots.to_string(), "--slot-size", "4K"]);
    let mut writer = Proc::spawn(w, Stdio::piped());
    wait_until(SOON, "writer and reader to join", || {
        sem_value(k.key, sem::READERS) == Some(1) && sem_value(k.key, sem::WRITERS) == Some(1)
    });
    reader.signal(Signal::SIGSTOP);
    wait_until(SOON, "the reader to stop", || {
        proc_state(reader.pid()) == Some('T')
    });
    let data = pseudo_random(bytes, 7);
    // A frame carries a little less than a slot (its header), so `bytes` need
    // more than `bytes / 4096` frames.
    let frames = (bytes / 4096).min(slots as usize) as u16;
    if bytes / 4096 < slots as usize {
        // All of it fits: written at once, and the pipe stays open.
        writer.feed(&data);
    } else {
        // The writer blocks when the ring is full: the rest waits in the pipe
        // (and the pipe never closes: no end of input).
        let mut rest = data;
        rest.extend(pseudo_random(1 << 20, 8));
        writer.feed_in_background(rest);
    }
    wait_until(TIMEOUT, "the ring to fill", || {
        sem_value(k.key, sem::FILLED).is_some_and(|f| f >= frames)
    });
    (writer, reader)
}

/// The screen is the watch view of `key`: the key and the verdict first, the ring
/// with HEAD and TAIL, at most `rows` lines of at most `cols` columns (nothing
/// wrapped).
fn assert_fits(screen: &str, key: &str, verdict: &str, cols: usize, rows: usize) {
    let lines: Vec<&str> = screen.lines().collect();
    assert!(lines.len() <= rows, "{} lines:\n{screen}", lines.len());
    for l in &lines {
        assert!(
            l.chars().count() <= cols,
            "a line wider than {cols} columns (the terminal wrapped it): {l:?}\n{screen}"
        );
    }
    assert!(
        lines[0].starts_with(&format!("key {key}: {verdict}")),
        "the key and the verdict are not on the first line:\n{screen}"
    );
    assert!(
        lines.iter().any(|l| l.trim_start().starts_with("0 [")),
        "no ring:\n{screen}"
    );
    assert!(
        screen.contains("HEAD") && screen.contains("TAIL"),
        "{screen}"
    );
}

#[test]
fn at_80x24_a_ring_of_1024_slots_fits_a_stopped_reader_shows_and_q_restores_the_terminal() {
    if !require_tmux() {
        return;
    }
    let k = TestKey::in_range(Range::INSPECT);
    // More than the ring holds: full, and the writer asleep on FREE.
    let (_writer, reader) = stopped_reader_session(&k, 1024, 5 << 20);
    let key = k.arg();
    let t = run_inspector(80, 24, &format!("--key {key} --watch 0.25"));
    let pid = reader.pid();
    let screen = t.wait_screen(SOON, "the watch view", |s| {
        s.contains(&format!("reader pid {pid} id 1 stopped")) && s.contains("1 writer asleep")
    });
    eprintln!("80x24:\n{screen}");
    assert_fits(&screen, &key, "ours", 80, 24);
    assert_eq!(
        t.var("alternate_on"),
        "1",
        "not drawn on the alternate screen"
    );
    assert!(
        screen.contains("ring  1024 slots x 4 KiB: 0 free, 1024 filled"),
        "{screen}"
    );
    assert!(screen.contains("live: 1 writer, 1 reader"), "{screen}");
    assert!(
        screen.contains("FREE       0  1 writer asleep (full)"),
        "{screen}"
    );
    assert!(screen.contains("1 cell = 4 slots"), "{screen}");
    assert!(screen.contains(&format!("kill -CONT {pid}")), "{screen}");
    assert!(screen.contains("every 0.25 s, q quits"), "{screen}");
    assert!(screen.contains("WRITE_MUTEX") && screen.contains("READ_MUTEX"));
    t.key("q");
    assert_restored(&t, &key);
}

#[test]
fn a_half_width_pane_gets_the_compact_view_and_ctrl_c_quits_with_0() {
    if !require_tmux() {
        return;
    }
    let k = TestKey::in_range(Range::INSPECT);
    let (_writer, reader) = stopped_reader_session(&k, 1024, 256 << 10);
    let key = k.arg();
    let t = run_inspector(40, 24, &format!("--key {key} --watch"));
    let pid = reader.pid();
    let screen = t.wait_screen(SOON, "the compact view", |s| {
        s.contains(&format!("reader pid {pid} id 1 stopped"))
    });
    eprintln!("40x24:\n{screen}");
    assert_fits(&screen, &key, "ours", 40, 24);
    // One column: the mutexes on lines of their own.
    assert!(screen.contains("\nWRITE_MUTEX free\n"), "{screen}");
    assert!(screen.contains("\nREAD_MUTEX  free\n"), "{screen}");
    t.key("C-c");
    assert_restored(&t, &key);
}

#[test]
fn killed_peers_leave_an_abandoned_session_named_with_its_removal_command() {
    if !require_tmux() {
        return;
    }
    let k = TestKey::in_range(Range::INSPECT);
    let (mut writer, mut reader) = stopped_reader_session(&k, 1024, 64 << 10);
    writer.kill9(SOON);
    reader.kill9(SOON);
    wait_until(SOON, "the kernel to undo the peers' counts", || {
        sem_value(k.key, sem::WRITERS) == Some(0) && sem_value(k.key, sem::READERS) == Some(0)
    });
    let shmid = segment::find(k.key).expect("shmget").expect("a segment");
    let semid = semaphore::find(k.key).expect("semget").expect("a set");
    let key = k.arg();
    let ipcrm = format!("ipcrm -m {shmid} -s {semid}");
    let t = run_inspector(80, 24, &format!("--key {key} --watch 0.5"));
    let screen = t.wait_screen(SOON, "the abandoned note", |s| s.contains(&ipcrm));
    eprintln!("abandoned:\n{screen}");
    assert_fits(&screen, &key, "ours - abandoned", 80, 24);
    assert!(
        screen.contains("abandoned: nobody uses these objects"),
        "{screen}"
    );
    assert!(screen.contains(&format!("\n  {ipcrm}\n")), "{screen}");
    assert!(
        screen.contains(&format!("or: writer --remove --key {key}")),
        "{screen}"
    );
    assert!(screen.contains(" gone"), "{screen}");
    // SIGTERM from elsewhere (the pane closing, `kill`) restores the terminal too.
    send_sig(inspector_pid(&t), Signal::SIGTERM);
    assert_restored(&t, &key);
    // Still there: the inspector only looks. The command it named removes them.
    assert_eq!(k.in_ipcs(), (true, true));
    let (code, _, err) = bash(&ipcrm);
    assert_eq!(code, Some(0), "{ipcrm}: {err}");
    k.assert_clean();
}

/// The bytes on the terminal (a pseudo-terminal from util-linux `script`, sized
/// 80x24 with `stty`): the view enters the alternate screen, clears it once, then
/// redraws in place, never clearing the screen again (the old watch sent
/// `ESC[H ESC[2J` every refresh, a copy per refresh in the scrollback), and `q`
/// leaves the alternate screen and shows the cursor again, exit 0.
#[test]
fn redraws_in_place_on_the_alternate_screen() {
    if !require_script("run shm-inspect --watch on a pseudo-terminal") {
        return;
    }
    let k = TestKey::in_range(Range::INSPECT);
    let cmd = format!(
        "stty rows 24 cols 80; {} --key {} --watch 0.05; echo EXIT=$?",
        bin("shm-inspect").display(),
        k.arg()
    );
    let mut c = Command::new("script");
    c.args(["-qfec", &cmd, "/dev/null"]);
    let mut p = Proc::spawn(c, Stdio::piped());
    // A few looks: every redraw is framed by a synchronized update.
    let frames = |o: &[u8]| String::from_utf8_lossy(o).matches("\x1b[?2026h").count();
    p.wait_stdout(SOON, "the first frame", |o| frames(o) >= 1);
    // Something changes on the screen (the segment appears), so it is redrawn.
    let ws = shm_common::segment::Segment::create_exclusive(k.key, 8192, 0o600)
        .expect("shmget")
        .expect("a free key");
    p.wait_stdout(SOON, "a redraw", |o| frames(o) >= 2);
    drop(ws);
    p.feed(b"q");
    let f = p.wait(SOON);
    assert_ok(&f, "script");
    let out = String::from_utf8_lossy(&f.stdout);
    assert!(out.contains("EXIT=0"), "{out:?}");
    let enter = out
        .find("\x1b[?1049h")
        .expect("entered the alternate screen");
    let leave = out.rfind("\x1b[?1049l").expect("left the alternate screen");
    assert!(enter < leave, "{out:?}");
    assert_eq!(
        out.matches("\x1b[2J").count(),
        1,
        "cleared more than once: {out:?}"
    );
    assert!(!out.contains("\x1b[H\x1b[2J"), "{out:?}");
    let view = &out[enter..leave];
    assert!(view.contains(&format!("key {}: ", k.arg())), "{view:?}");
    assert!(
        view.contains("foreign") || view.contains("incomplete"),
        "{view:?}"
    );
    // The cursor, hidden while the view was drawn, is shown again.
    assert!(out.rfind("\x1b[?25h") > out.rfind("\x1b[?25l"), "{out:?}");
}
