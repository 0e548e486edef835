//! A real terminal emulator for the tests of what a person sees: tmux, with a
//! server of the test's own (`tmux -L <name>`, its own socket, so no other tmux is
//! touched), panes of an exact size, the screen read with `capture-pane`, keys
//! typed with `send-keys`, and every byte a pane's program writes recorded with
//! `pipe-pane` (a progress bar drawn and then cleared leaves no trace on the final
//! screen, but it does in the recording).
//!
//! `capture-pane -J` joins the lines the terminal wrapped, so a line wider than the
//! pane shows up as one longer line: every captured line is at most as wide as the
//! pane only if nothing wrapped.
use super::*;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A tmux server of this test's own, killed (with what runs in it) on drop.
pub struct Tmux {
    socket: String,
    /// Where the server's socket is (tmux leaves the file behind when killed).
    socket_path: String,
    /// The shell's `stty -g` before and after the program (see [`Tmux::run_program`]).
    pub stty_before: TempFile,
    /// See `stty_before`.
    pub stty_after: TempFile,
}

impl Tmux {
    /// A detached session of `cols` x `rows` running `sh -c SCRIPT` in its one pane.
    pub fn new_session(cols: u16, rows: u16, script: &str) -> Tmux {
        let mut t = Tmux {
            socket: Self::fresh_socket(),
            socket_path: String::new(),
            stty_before: TempFile::new(b""),
            stty_after: TempFile::new(b""),
        };
        let (c, r) = (cols.to_string(), rows.to_string());
        let o = t.tmux(&["new-session", "-d", "-x", &c, "-y", &r, "sh", "-c", script]);
        assert!(
            o.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        t.socket_path = t.var("socket_path");
        t
    }

    /// The server on socket `socket` that something else (a script under test)
    /// starts; it is killed on drop like ours.
    pub fn on_socket(socket: &str) -> Tmux {
        Tmux {
            socket: socket.to_string(),
            socket_path: String::new(),
            stty_before: TempFile::new(b""),
            stty_after: TempFile::new(b""),
        }
    }

    /// A fresh socket name for a server of this test's own.
    pub fn fresh_socket() -> String {
        // Short: a socket's path has room for about 100 bytes.
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("shm-e2e-{}-{n}", std::process::id())
    }

    /// A pane whose shell prints a marker, records `stty -g`, runs `COMMAND`, then
    /// prints `EXIT=<its exit code>`, records `stty -g` again and stays (a `sleep`),
    /// so that the pane can still be read after the program is gone.
    pub fn run_program(cols: u16, rows: u16, command: &str) -> Tmux {
        let before = TempFile::new(b"");
        let after = TempFile::new(b"");
        let script = format!(
            "echo BEFORE-THE-VIEW; stty -g > {b}; {command}; echo EXIT=$?; stty -g > {a}; exec sleep 600",
            b = before.path.display(),
            a = after.path.display(),
        );
        let mut t = Tmux::new_session(cols, rows, &script);
        t.stty_before = before;
        t.stty_after = after;
        t
    }

    /// Runs `tmux ARGS` against this server.
    pub fn tmux(&self, args: &[&str]) -> std::process::Output {
        // -f /dev/null: no user configuration changes what is drawn.
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .env("TERM", "xterm-256color")
            // Run from inside tmux, the test's server is still its own.
            .env_remove("TMUX")
            .stdin(Stdio::null());
        let f = run(c, SOON);
        std::process::Output {
            status: f.status,
            stdout: f.stdout,
            stderr: f.stderr.into_bytes(),
        }
    }

    /// Splits the window: a new pane below running `sh -c SCRIPT`; returns its id
    /// (`%1`) for the `_of` methods.
    pub fn split(&self, script: &str) -> String {
        let o = self.tmux(&[
            "split-window",
            "-v",
            "-P",
            "-F",
            "#{pane_id}",
            "sh",
            "-c",
            script,
        ]);
        assert!(o.status.success(), "tmux split-window");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// What the (first) pane shows now, wrapped lines joined, trailing blank lines cut.
    pub fn screen(&self) -> String {
        self.screen_of("")
    }

    /// What pane `pane` shows now (`""`: the current pane).
    pub fn screen_of(&self, pane: &str) -> String {
        let mut args = vec!["capture-pane", "-p", "-J"];
        if !pane.is_empty() {
            args.extend(["-t", pane]);
        }
        let o = self.tmux(&args);
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        text.trim_end_matches('\n').to_string() + "\n"
    }

    /// Records every byte pane `pane` (`""`: the current one) writes from now on
    /// into `file`.
    pub fn record(&self, pane: &str, file: &TempFile) {
        let cmd = format!("cat >> {}", file.path.display());
        let mut args = vec!["pipe-pane", "-o"];
        if !pane.is_empty() {
            args.extend(["-t", pane]);
        }
        args.push(&cmd);
        assert!(self.tmux(&args).status.success(), "tmux pipe-pane");
    }

    /// A format variable of the pane (`alternate_on`, `pane_pid`...).
    pub fn var(&self, name: &str) -> String {
        let o = self.tmux(&["display-message", "-p", &format!("#{{{name}}}")]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// Types `key` (a tmux key name: `q`, `C-c`, `Enter`) into the current pane.
    pub fn key(&self, key: &str) {
        assert!(self.tmux(&["send-keys", key]).status.success());
    }

    /// Types `keys` into pane `pane`; `literal` sends the text as it is (`-l`).
    pub fn type_into(&self, pane: &str, keys: &str, literal: bool) {
        let mut args = vec!["send-keys", "-t", pane];
        if literal {
            args.push("-l");
        }
        args.push(keys);
        assert!(self.tmux(&args).status.success(), "tmux send-keys");
    }

    /// Polls the screen until `pred` holds, at most `limit`; returns that screen.
    pub fn wait_screen(&self, limit: Duration, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_screen_of("", limit, what, pred)
    }

    /// [`Tmux::wait_screen`] for pane `pane`.
    pub fn wait_screen_of(
        &self,
        pane: &str,
        limit: Duration,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let mut last = String::new();
        let found = eventually(limit, || {
            last = self.screen_of(pane);
            pred(&last).then(|| last.clone())
        });
        found.unwrap_or_else(|| panic!("HANG: timed out waiting for {what}; the screen:\n{last}"))
    }

    /// The pid of the program called `comm` running in the first pane's shell.
    pub fn child_named(&self, comm: &str) -> i32 {
        let shell: i32 = self.var("pane_pid").parse().expect("pane_pid");
        let children = || {
            std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
                .unwrap_or_default()
        };
        eventually(SOON, || {
            children()
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
                .find(|&p| {
                    std::fs::read_to_string(format!("/proc/{p}/comm"))
                        .is_ok_and(|c| c.trim() == comm)
                })
        })
        .unwrap_or_else(|| panic!("{comm} in the pane"))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        if self.socket_path.is_empty() {
            self.socket_path = self.var("socket_path");
        }
        // SIGHUP to the panes' shells and what they run, then the server exits.
        let _ = self.tmux(&["kill-server"]);
        if !self.socket_path.is_empty() {
            let _ = std::fs::remove_file(&self.socket_path);
        }
    }
}

/// tmux is there (Debian package `tmux`), or the test is skipped (fails under
/// CI=true).
pub fn require_tmux() -> bool {
    require(
        "tmux",
        "tmux",
        &["tmux", "-V"],
        "run the programs on a terminal emulator and read its screen",
    )
}
