//! The real binaries as child processes. One type, [`Proc`], for every test: its
//! stdout and stderr are read by background threads and arrive as they are written
//! (so a test can wait for a line while the process runs), every wait has a
//! deadline, and every write into its stdin is done by a feeder thread whose
//! completion is awaited with a deadline: a child that stops reading fails the test
//! (`HANG: ...`) instead of blocking it forever in `write(2)`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use super::TIMEOUT;

/// Path of a workspace binary (`writer`, `reader`, `shm-inspect`, ...): beside the
/// test executable's `deps` directory, where `cargo build --workspace --bins` put
/// it (`make test` builds them first).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` (make test does)",
        path.display()
    );
    path
}

/// What a finished process produced.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Finished {
    /// The exit code (`None` when a signal ended it).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// `exit N` or `signal N`.
    pub fn describe(&self) -> String {
        use std::os::unix::process::ExitStatusExt;
        match (self.status.code(), self.status.signal()) {
            (Some(c), _) => format!("exit {c}"),
            (None, Some(s)) => format!("signal {s}"),
            _ => "unknown".into(),
        }
    }
}

/// A write into a child's stdin, running on its own thread.
struct Feeder {
    /// The pipe comes back when the write is done, unless it was to be closed.
    done: Receiver<std::io::Result<Option<ChildStdin>>>,
    bytes: usize,
}

/// Writes `data` into `stdin` on a thread; then hands the pipe back (`keep`) or
/// closes it (end of input).
fn feeder(mut stdin: ChildStdin, data: Vec<u8>, keep: bool) -> Feeder {
    let (tx, done) = mpsc::channel();
    let bytes = data.len();
    std::thread::spawn(move || {
        let r = stdin
            .write_all(&data)
            .map(|()| if keep { Some(stdin) } else { None });
        let _ = tx.send(r);
    });
    Feeder { done, bytes }
}

/// Output of one stream, read by a thread and handed over in chunks.
fn stream_chunks<R: Read + Send + 'static>(r: Option<R>) -> Option<Receiver<Vec<u8>>> {
    let mut r = r?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    Some(rx)
}

/// A spawned binary, killed on drop so a failing test never leaves a process behind.
pub struct Proc {
    pub child: Child,
    stdin: Option<ChildStdin>,
    out_rx: Option<Receiver<Vec<u8>>>,
    err_rx: Option<Receiver<Vec<u8>>>,
    /// Everything received on stdout so far ([`Proc::pump`] updates it).
    pub out: Vec<u8>,
    /// Everything received on stderr so far.
    pub err: Vec<u8>,
    background: Vec<Feeder>,
}

impl Proc {
    /// Spawns `cmd` with `stdin` as given (`Stdio::piped()` to feed it) and its
    /// stdout and stderr streamed back.
    pub fn spawn(mut cmd: Command, stdin: Stdio) -> Proc {
        cmd.stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Proc::start(cmd)
    }

    /// Spawns `cmd` with its stdout written to `out` (a file: large outputs never
    /// sit in memory); [`Finished::stdout`] is then empty.
    pub fn spawn_to_file(mut cmd: Command, stdin: Stdio, out: std::fs::File) -> Proc {
        cmd.stdin(stdin)
            .stdout(Stdio::from(out))
            .stderr(Stdio::piped());
        Proc::start(cmd)
    }

    /// Spawns `cmd` and feeds it `data` in the background; its stdin closes when
    /// everything is written (end of input).
    pub fn spawn_fed(cmd: Command, data: Vec<u8>) -> Proc {
        let mut p = Proc::spawn(cmd, Stdio::piped());
        p.feed_in_background(data);
        p
    }

    fn start(mut cmd: Command) -> Proc {
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {:?}: {e}", cmd.get_program()));
        let stdin = child.stdin.take();
        let out_rx = stream_chunks(child.stdout.take());
        let err_rx = stream_chunks(child.stderr.take());
        Proc {
            child,
            stdin,
            out_rx,
            err_rx,
            out: Vec::new(),
            err: Vec::new(),
            background: Vec::new(),
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Writes `data` into the child's stdin and returns once it is all in the pipe;
    /// fails the test if that takes longer than [`TIMEOUT`] (the child stopped
    /// reading) or the child closed its end.
    pub fn feed(&mut self, data: &[u8]) {
        let stdin = self.stdin.take().expect("piped stdin, still open");
        let f = feeder(stdin, data.to_vec(), true);
        match f.done.recv_timeout(TIMEOUT) {
            Ok(Ok(stdin)) => self.stdin = stdin,
            Ok(Err(e)) => panic!(
                "writing {} bytes into pid {}'s stdin failed: {e}; stderr so far: {}",
                f.bytes,
                self.pid(),
                self.stderr_text()
            ),
            Err(_) => panic!(
                "HANG: pid {} took more than {TIMEOUT:?} to read {} bytes of input; stderr so far: {}",
                self.pid(),
                f.bytes,
                self.stderr_text()
            ),
        }
    }

    /// Writes `data` into the child's stdin from a thread and closes it after the
    /// last byte. [`Proc::wait`] awaits the write, with the same deadline as the exit.
    pub fn feed_in_background(&mut self, data: Vec<u8>) {
        let stdin = self.stdin.take().expect("piped stdin, still open");
        self.background.push(feeder(stdin, data, false));
    }

    /// Closes stdin: end of input.
    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// Keeps stdin open but out of the way (a signalled writer must not see an end
    /// of input); dropping the returned pipe closes it.
    pub fn hold_stdin(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends a signal.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        super::send_sig(self.pid(), sig);
    }

    /// Moves whatever output has arrived into [`Proc::out`] and [`Proc::err`].
    pub fn pump(&mut self) {
        for (rx, buf) in [(&self.out_rx, &mut self.out), (&self.err_rx, &mut self.err)] {
            if let Some(rx) = rx {
                while let Ok(c) = rx.try_recv() {
                    buf.extend_from_slice(&c);
                }
            }
        }
    }

    /// Stderr so far, as text.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.err).into_owned()
    }

    /// Waits up to `limit` until stdout satisfies `pred`.
    pub fn wait_stdout(&mut self, limit: Duration, what: &str, pred: impl Fn(&[u8]) -> bool) {
        let start = Instant::now();
        loop {
            self.pump();
            if pred(&self.out) {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "HANG: timed out after {limit:?} waiting for {what} on stdout; got {:?}; stderr: {}",
                String::from_utf8_lossy(&self.out[self.out.len().saturating_sub(400)..]),
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits up to `limit` until stderr contains `needle`.
    pub fn wait_stderr(&mut self, limit: Duration, needle: &str) {
        let start = Instant::now();
        loop {
            self.pump();
            if self.stderr_text().contains(needle) {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "HANG: timed out after {limit:?} waiting for {needle:?} on stderr; got: {}",
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Closes stdin (unless a background feeder still writes), waits up to `limit`
    /// for the exit (killing it and failing the test otherwise), then collects the
    /// rest of its output.
    pub fn wait(self, limit: Duration) -> Finished {
        self.wait_ctx(limit, "")
    }

    /// [`Proc::wait`] with a context for the failure message.
    pub fn wait_ctx(mut self, limit: Duration, ctx: &str) -> Finished {
        let start = Instant::now();
        drop(self.stdin.take());
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if start.elapsed() > limit {
                // Where it is stuck, before it is gone: each thread's state and the
                // kernel function it sleeps in.
                let where_ = threads_of(self.pid());
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.pump();
                panic!(
                    "HANG: {ctx}{}process {} did not exit within {limit:?} (threads: {where_}); stderr:\n{}",
                    if ctx.is_empty() { "" } else { ": " },
                    self.child.id(),
                    self.stderr_text()
                );
            }
            self.pump();
            std::thread::sleep(Duration::from_millis(2));
        };
        // The feeders end when the child does: their pipe's reader is gone.
        for f in self.background.drain(..) {
            let _ = f.done.recv_timeout(TIMEOUT);
        }
        // The pipes close at exit (unless a grandchild holds them: none here).
        let deadline = Instant::now() + Duration::from_secs(5);
        for (rx, buf) in [(&self.out_rx, &mut self.out), (&self.err_rx, &mut self.err)] {
            if let Some(rx) = rx {
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(left) {
                        Ok(c) => buf.extend_from_slice(&c),
                        Err(_) => break,
                    }
                }
            }
        }
        Finished {
            status,
            stdout: std::mem::take(&mut self.out),
            stderr: String::from_utf8_lossy(&self.err).into_owned(),
        }
    }

    /// `kill -9`, then reaps it (within `limit`).
    pub fn kill9(&mut self, limit: Duration) -> ExitStatus {
        let _ = self.child.kill();
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            assert!(
                start.elapsed() < limit,
                "process {} survived SIGKILL",
                self.child.id()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `cmd` to completion with `input` on stdin (fed by a thread), within `limit`.
/// The child may exit before reading all of it (a refused start, a FILE argument).
pub fn run_with_input(cmd: Command, input: &[u8], limit: Duration) -> Finished {
    Proc::spawn_fed(cmd, input.to_vec()).wait(limit)
}

/// Runs `cmd` with stdin from /dev/null, within `limit`.
pub fn run(cmd: Command, limit: Duration) -> Finished {
    Proc::spawn(cmd, Stdio::null()).wait(limit)
}

/// Sends `sig` to `pid` (errors ignored: it may have exited already).
pub fn send_sig(pid: i32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

/// Runs a bash script; returns (exit code, stdout, stderr).
pub fn bash(script: &str) -> (Option<i32>, String, String) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .expect("bash");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts a finished binary neither panicked nor died by a signal.
pub fn assert_no_crash(f: &Finished, who: &str) {
    use std::os::unix::process::ExitStatusExt;
    assert!(
        f.status.signal().is_none(),
        "{who} died by signal {:?}; stderr:\n{}",
        f.status.signal(),
        f.stderr
    );
    assert!(
        !f.stderr.contains("panicked"),
        "{who} panicked:\n{}",
        f.stderr
    );
}

/// Asserts exit 0, showing stderr otherwise.
pub fn assert_ok(f: &Finished, who: &str) {
    assert_eq!(
        f.code(),
        Some(0),
        "{who}: {}; stderr:\n{}",
        f.describe(),
        f.stderr
    );
}

/// Each thread of `pid` as `tid:STATE:wchan`, from /proc (for hang reports).
pub fn threads_of(pid: i32) -> String {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return "gone".into();
    };
    let mut out = Vec::new();
    for t in dir.flatten() {
        let tid = t.file_name().to_string_lossy().into_owned();
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.trim_start().chars().next())
            .unwrap_or('?');
        let wchan = std::fs::read_to_string(t.path().join("wchan")).unwrap_or_default();
        out.push(format!("{tid}:{state}:{wchan}"));
    }
    out.join(", ")
}
