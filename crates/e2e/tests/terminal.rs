//! What a person sees on a terminal, tested on a pseudo-terminal (util-linux
//! `script`): the progress bar is drawn there and nowhere else.
mod support;
use std::process::{Command, Stdio};
use support::*;

/// The progress bar: drawn (percent, bytes, rate, ETA) when stderr is a terminal, and
/// nothing of it when stderr is not. The terminal comes from util-linux `script`.
#[test]
fn progress_bar_only_on_a_terminal() {
    if !require_script("run the writer on a pseudo-terminal") {
        return;
    }
    let data = pseudo_random(24 << 20, 11);
    let file = TempFile::new(&data);
    // On a terminal (a pty made by `script`); a tiny ring keeps the transfer long
    // enough for the bar to be drawn.
    let k = TestKey::new();
    let reader = Proc::spawn(k.reader(), Stdio::null());
    let cmd = format!(
        "{} --key {} --slots 4 --slot-size 4K {}",
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
    k.assert_clean();
    // Not a terminal: the same transfer prints no bar.
    let k = TestKey::new();
    let reader = Proc::spawn(k.reader(), Stdio::null());
    let mut w = k.writer();
    w.args(["--slots", "4", "--slot-size", "4K"])
        .arg(&file.path);
    let plain = Proc::spawn(w, Stdio::null()).wait(TIMEOUT);
    assert_eq!(plain.code(), Some(0), "writer: {}", plain.stderr);
    assert_eq!(reader.wait(TIMEOUT).code(), Some(0));
    assert!(
        !plain.stderr.contains("ETA"),
        "a bar on a pipe:\n{}",
        plain.stderr
    );
    k.assert_clean();
}
