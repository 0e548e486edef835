//! The one harness every integration test uses: finds the built binaries, hands out
//! a unique key per test, wraps every wait in a timeout, and removes the test's
//! objects in a guard's `Drop`, also when the test fails.
#![allow(dead_code)]

use shm_common::IpcKey;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Default limit for any single wait in a test.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Path of a workspace binary (`writer`, `reader`): beside the test executable's
/// `deps` directory, where `cargo build` put it (`make test` builds them first).
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

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A key for this test only, removed (with everything at it) when dropped.
/// Test keys are 0x7e______ so `scripts/check-clean.sh` can find leaks.
pub struct TestKey {
    pub key: IpcKey,
}

impl TestKey {
    pub fn new() -> TestKey {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed) & 0xfff;
        let pid = std::process::id() & 0xfff;
        let raw = 0x7e00_0000u32 | (pid << 12) | n;
        let key = IpcKey::new(raw as i32).expect("non-zero key");
        let k = TestKey { key };
        k.force_remove();
        k
    }

    /// The key as the command-line text `0x7e......`.
    pub fn arg(&self) -> String {
        self.key.to_string()
    }

    /// Removes whatever is at the key, ours or not (the key belongs to this test).
    pub fn force_remove(&self) {
        let k = self.arg();
        let _ = Command::new("ipcrm")
            .args(["-M", &k])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ipcrm")
            .args(["-S", &k])
            .stderr(Stdio::null())
            .status();
    }

    /// Whether `ipcs` lists a segment or a semaphore set at the key.
    pub fn in_ipcs(&self) -> (bool, bool) {
        let k = self.arg();
        let has = |flag: &str| {
            let out = Command::new("ipcs").arg(flag).output().expect("ipcs");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.split_whitespace().next() == Some(k.as_str()))
        };
        (has("-m"), has("-s"))
    }

    /// Asserts nothing is left at the key.
    pub fn assert_clean(&self) {
        assert_eq!(
            self.in_ipcs(),
            (false, false),
            "objects left at key {}",
            self.arg()
        );
    }

    pub fn writer(&self) -> Command {
        let mut c = Command::new(bin("writer"));
        c.arg("--key").arg(self.arg());
        c
    }

    pub fn reader(&self) -> Command {
        let mut c = Command::new(bin("reader"));
        c.arg("--key").arg(self.arg());
        c
    }
}

impl Drop for TestKey {
    fn drop(&mut self) {
        self.force_remove();
    }
}

/// A spawned binary whose stdout and stderr are collected in the background, killed
/// on drop so a failing test never leaves a process behind.
pub struct Proc {
    pub child: Child,
    out: Option<std::thread::JoinHandle<Vec<u8>>>,
    err: Option<std::thread::JoinHandle<Vec<u8>>>,
}

/// What a finished process produced.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

fn collect<R: Read + Send + 'static>(r: Option<R>) -> Option<std::thread::JoinHandle<Vec<u8>>> {
    r.map(|mut r| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    })
}

impl Proc {
    /// Spawns with piped stdout/stderr; stdin as given (default: piped).
    pub fn spawn(mut cmd: Command, stdin: Stdio) -> Proc {
        cmd.stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        let out = collect(child.stdout.take());
        let err = collect(child.stderr.take());
        Proc { child, out, err }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Writes to the child's stdin (if piped).
    pub fn send(&mut self, data: &[u8]) {
        self.child
            .stdin
            .as_mut()
            .expect("piped stdin")
            .write_all(data)
            .expect("write stdin");
    }

    /// Closes stdin (end of input).
    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Waits up to `limit`; panics (after killing it) if it does not exit in time.
    pub fn wait(mut self, limit: Duration) -> Finished {
        let start = Instant::now();
        drop(self.child.stdin.take());
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let err = self
                    .err
                    .take()
                    .and_then(|h| h.join().ok())
                    .unwrap_or_default();
                panic!(
                    "process {} did not exit within {limit:?}; stderr:\n{}",
                    self.child.id(),
                    String::from_utf8_lossy(&err)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let stdout = self
            .out
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let stderr = String::from_utf8_lossy(
            &self
                .err
                .take()
                .and_then(|h| h.join().ok())
                .unwrap_or_default(),
        )
        .into_owned();
        Finished {
            status,
            stdout,
            stderr,
        }
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends a signal.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig);
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

/// Runs a command to completion with `input` on stdin, within `limit`.
pub fn run_with_input(cmd: Command, input: &[u8], limit: Duration) -> Finished {
    let mut p = Proc::spawn(cmd, Stdio::piped());
    let mut stdin = p.child.stdin.take().expect("stdin");
    let data = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let f = p.wait(limit);
    let _ = feeder.join();
    f
}

/// Polls `cond` every 10 ms until it holds or `limit` passes (then panics with `what`).
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A temporary file with `data`, removed on drop.
pub struct TempFile {
    pub path: PathBuf,
}

impl TempFile {
    pub fn new(data: &[u8]) -> TempFile {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("shm-e2e-{}-{n}", std::process::id()));
        std::fs::write(&path, data).expect("write temp file");
        TempFile { path }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Exit codes, as documented (mirrors shm_common::exit).
pub mod code {
    // Not every test file uses every code; the module is shared.
    #[allow(unused_imports)]
    pub use shm_common::exit::*;
}

// ---------------------------------------------------------------------------
// Added helpers (pair.rs / multi.rs): streaming output, big files, raw IPC peeks.
// ---------------------------------------------------------------------------

/// A spawned binary whose stdout and stderr arrive incrementally (reader threads
/// send chunks over channels), so a test can wait for output *while* the process
/// still runs. Killed on drop.
pub struct Live {
    pub child: Child,
    out_rx: std::sync::mpsc::Receiver<Vec<u8>>,
    err_rx: std::sync::mpsc::Receiver<Vec<u8>>,
    /// Everything received on stdout so far (call [`Live::pump`] to update).
    pub out: Vec<u8>,
    /// Everything received on stderr so far.
    pub err: Vec<u8>,
}

fn stream_chunks<R: Read + Send + 'static>(r: Option<R>) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(mut r) = r {
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
    }
    rx
}

impl Live {
    /// Spawns with streamed stdout/stderr; stdin as given.
    pub fn spawn(mut cmd: Command, stdin: Stdio) -> Live {
        cmd.stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        let out_rx = stream_chunks(child.stdout.take());
        let err_rx = stream_chunks(child.stderr.take());
        Live {
            child,
            out_rx,
            err_rx,
            out: Vec::new(),
            err: Vec::new(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Moves whatever has arrived into `out` / `err`.
    pub fn pump(&mut self) {
        while let Ok(c) = self.out_rx.try_recv() {
            self.out.extend_from_slice(&c);
        }
        while let Ok(c) = self.err_rx.try_recv() {
            self.err.extend_from_slice(&c);
        }
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.err).into_owned()
    }

    /// Writes to the child's stdin (if piped).
    pub fn send(&mut self, data: &[u8]) {
        self.child
            .stdin
            .as_mut()
            .expect("piped stdin")
            .write_all(data)
            .expect("write stdin");
    }

    /// Takes the stdin pipe (e.g. to feed it from another thread).
    pub fn take_stdin(&mut self) -> std::process::ChildStdin {
        self.child.stdin.take().expect("piped stdin")
    }

    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `limit` until stdout satisfies `pred` (panics with `what` and the
    /// output so far otherwise).
    pub fn wait_stdout(&mut self, limit: Duration, what: &str, pred: impl Fn(&[u8]) -> bool) {
        let start = Instant::now();
        loop {
            self.pump();
            if pred(&self.out) {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for {what} on stdout; got {:?}; stderr: {}",
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
                "timed out after {limit:?} waiting for {needle:?} on stderr; got: {}",
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits up to `limit` for exit (killing it and panicking otherwise), then
    /// collects the rest of its output.
    pub fn wait(mut self, limit: Duration) -> Finished {
        let start = Instant::now();
        drop(self.child.stdin.take());
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.pump();
                panic!(
                    "process {} did not exit within {limit:?}; stderr:\n{}",
                    self.child.id(),
                    self.stderr_text()
                );
            }
            self.pump();
            std::thread::sleep(Duration::from_millis(5));
        };
        // The pipes close at exit (unless a grandchild holds them: none here).
        let deadline = Instant::now() + Duration::from_secs(5);
        for (rx, buf) in [(&self.out_rx, &mut self.out), (&self.err_rx, &mut self.err)] {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(c) => buf.extend_from_slice(&c),
                    Err(_) => break,
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
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Spawns `cmd` with stdout redirected into `out` (a file: large outputs never sit in
/// memory); stderr is collected as usual. `Finished::stdout` will be empty.
pub fn spawn_stdout_to(mut cmd: Command, stdin: Stdio, out: std::fs::File) -> Proc {
    cmd.stdin(stdin)
        .stdout(Stdio::from(out))
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let err = collect(child.stderr.take());
    Proc {
        child,
        out: None,
        err,
    }
}

/// A temporary file path (removed on drop), created empty.
pub fn temp_path() -> TempFile {
    TempFile::new(&[])
}

/// A temporary file of `len` pseudo-random bytes (xorshift from `seed`, the same
/// stream as [`pseudo_random`]), written in 1 MiB pieces so memory stays small.
pub fn big_temp_file(len: u64, seed: u64) -> TempFile {
    let t = TempFile::new(&[]);
    let f = std::fs::File::create(&t.path).expect("create temp file");
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let mut x = seed | 1;
    let mut left = len;
    let mut chunk = vec![0u8; 1 << 20];
    while left > 0 {
        let n = chunk.len().min(left as usize);
        let fill = n.next_multiple_of(8).min(chunk.len());
        for word in chunk[..fill].chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            word.copy_from_slice(&b[..word.len()]);
        }
        w.write_all(&chunk[..n]).expect("write temp file");
        left -= n as u64;
    }
    w.flush().expect("flush temp file");
    t
}

/// Compares two files piece by piece; `Err` names the first differing offset or
/// the length mismatch.
pub fn files_equal(a: &std::path::Path, b: &std::path::Path) -> Result<u64, String> {
    let la = std::fs::metadata(a).map_err(|e| e.to_string())?.len();
    let lb = std::fs::metadata(b).map_err(|e| e.to_string())?.len();
    if la != lb {
        return Err(format!(
            "lengths differ: {} has {la} bytes, {} has {lb}",
            a.display(),
            b.display()
        ));
    }
    let mut fa = std::io::BufReader::new(std::fs::File::open(a).map_err(|e| e.to_string())?);
    let mut fb = std::io::BufReader::new(std::fs::File::open(b).map_err(|e| e.to_string())?);
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    let mut off = 0u64;
    loop {
        let n = fa.read(&mut ba).map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(off);
        }
        fb.read_exact(&mut bb[..n]).map_err(|e| e.to_string())?;
        if ba[..n] != bb[..n] {
            let i = ba[..n]
                .iter()
                .zip(&bb[..n])
                .position(|(x, y)| x != y)
                .unwrap_or(0);
            return Err(format!("first difference at byte {}", off + i as u64));
        }
        off += n as u64;
    }
}

/// Segments (from /proc/sysvipc/shm) whose creator pid is `pid`: (key, shmid).
pub fn segments_created_by(pid: i32) -> Vec<(i64, i64)> {
    let text = std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(ck), Some(ci), Some(cp)) = (col("key"), col("shmid"), col("cpid")) else {
        return Vec::new();
    };
    lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let p: i32 = f.get(cp)?.parse().ok()?;
            (p == pid).then(|| Some((f.get(ck)?.parse().ok()?, f.get(ci)?.parse().ok()?)))?
        })
        .collect()
}

/// `ipcs -m` row at the test key: (shmid, bytes), if a segment is there.
pub fn segment_at(k: &TestKey) -> Option<(i64, u64)> {
    let out = Command::new("ipcs").arg("-m").output().expect("ipcs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.first() == Some(&k.arg().as_str()) {
            Some((f.get(1)?.parse().ok()?, f.get(4)?.parse().ok()?))
        } else {
            None
        }
    })
}

// ---------------------------------------------------------------------------
// Helpers for the fault-injection suites (faults.rs, chaos.rs). Added, not changed.
// ---------------------------------------------------------------------------

/// Whether `got` is a byte-exact prefix of `sent`.
pub fn is_prefix(got: &[u8], sent: &[u8]) -> bool {
    got.len() <= sent.len() && got == &sent[..got.len()]
}

/// Index of the first byte where `got` departs from `sent` (None if a prefix).
pub fn first_mismatch(got: &[u8], sent: &[u8]) -> Option<usize> {
    if is_prefix(got, sent) {
        return None;
    }
    Some(
        got.iter()
            .zip(sent)
            .position(|(a, b)| a != b)
            .unwrap_or(sent.len()),
    )
}

/// Asserts `got` is a byte-exact prefix of `sent` (no torn, missing or repeated bytes).
pub fn assert_prefix(got: &[u8], sent: &[u8], ctx: &str) {
    if let Some(at) = first_mismatch(got, sent) {
        panic!(
            "{ctx}: delivered {} bytes that are not a prefix of the {} sent: first difference at byte {at}",
            got.len(),
            sent.len()
        );
    }
}

/// Semaphore values at `key` (GETALL), if one of our 9-member sets is there.
pub fn sem_values(key: IpcKey) -> Option<Vec<u16>> {
    let id = shm_common::semaphore::find(key).ok()??;
    let set =
        shm_common::semaphore::SemaphoreSet::open(key, id, shm_common::layout::sem::NAMES).ok()?;
    set.values().ok()
}

/// One semaphore member at `key`.
pub fn sem_value(key: IpcKey, member: u16) -> Option<u16> {
    sem_values(key).and_then(|v| v.get(usize::from(member)).copied())
}

/// Reads a u64 header field of the segment at `key` (attach, read, detach).
pub fn header_u64(key: IpcKey, offset: usize) -> Option<u64> {
    let id = shm_common::segment::find(key).ok()??;
    let seg = shm_common::segment::Segment::attach(key, id).ok()?;
    seg.read_u64(offset).ok()
}

/// Reads a u32 header field of the segment at `key`.
pub fn header_u32(key: IpcKey, offset: usize) -> Option<u32> {
    let id = shm_common::segment::find(key).ok()??;
    let seg = shm_common::segment::Segment::attach(key, id).ok()?;
    seg.read_u32(offset).ok()
}

/// The one-letter state of a process (`R`, `S`, `T`...) from /proc.
pub fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Spawns `cmd` and feeds `data` to its stdin from a thread (which gives up quietly
/// if the process dies); the pipe is closed when everything is written.
pub fn spawn_fed(cmd: Command, data: Vec<u8>) -> (Proc, std::thread::JoinHandle<()>) {
    let mut p = Proc::spawn(cmd, Stdio::piped());
    let mut stdin = p.child.stdin.take().expect("stdin");
    let t = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    (p, t)
}

/// Waits like [`Proc::wait`] and also returns how long the wait took.
pub fn wait_timed(p: Proc, limit: Duration) -> (Finished, Duration) {
    let t = Instant::now();
    let f = p.wait(limit);
    (f, t.elapsed())
}

/// Runs a bash script; returns (exit code, stdout, stderr).
pub fn bash(script: &str) -> (Option<i32>, String, String) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .output()
        .expect("bash");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether `unshare --ipc` works here (root, or user namespaces allowed).
pub fn unshare_ipc_works() -> bool {
    matches!(bash("unshare --ipc true 2>/dev/null").0, Some(0))
}

/// A fresh writer+reader pair on the key: must deliver `len` bytes exactly, both exit
/// 0, and leave nothing. This is how a test proves a key left by a dead pair recovers.
pub fn assert_pair_recovers(k: &TestKey, len: usize, seed: u64) {
    let data = pseudo_random(len, seed);
    let reader = Proc::spawn(k.reader(), Stdio::null());
    let w = run_with_input(k.writer(), &data, TIMEOUT);
    let r = reader.wait(TIMEOUT);
    assert_eq!(w.code(), Some(0), "recovery writer: {}", w.stderr);
    assert_eq!(r.code(), Some(0), "recovery reader: {}", r.stderr);
    assert!(
        r.stdout == data,
        "recovery pair delivered {} of {} bytes",
        r.stdout.len(),
        data.len()
    );
    k.assert_clean();
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

// ----- The fault scenario engine shared by faults.rs (fixed plans) and chaos.rs
// (random plans). Every violation panics with a tag (HANG/LEAK/TORN/CODE/SLOW) so
// chaos can count them.

pub use nix::sys::signal::Signal;

/// Bound on "the survivor notices the fault and exits": a hang check, not a benchmark.
pub const DETECT: Duration = Duration::from_secs(5);

/// Which process a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Writer,
    Reader,
}

/// Where in the stream's life a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// Before the victim has attached (reader waiting for a writer; writer just spawned).
    BeforeAttach,
    /// While data flows.
    MidStream,
    /// Writer blocked on a full ring (reader stopped, or not started: `variant`).
    FullRing,
    /// Reader blocked on an empty ring (writer waiting for input).
    EmptyRing,
    /// Around the FINAL frame.
    EndOfStream,
}

/// A fault and the stream it hits.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub side: Side,
    pub point: Point,
    pub sig: Signal,
    pub slots: u32,
    pub slot_size: u32,
    pub len: usize,
    pub seed: u64,
    /// Extra delay before the signal at racy points (microseconds).
    pub delay_us: u64,
    /// FullRing: the reader has not started (instead of being stopped).
    pub variant: bool,
}

/// What a scenario observed.
#[derive(Debug, Default)]
pub struct Report {
    /// How the victim ended ("signal 9", "exit 130", "exit 0").
    pub victim: String,
    /// The survivor's exit code, when one had to notice the fault.
    pub survivor: Option<i32>,
    /// Time from the fault to the survivor's exit.
    pub detect: Option<Duration>,
    /// Bytes the reader(s) delivered for the faulted stream.
    pub delivered: usize,
    /// Objects were left (nobody survived) and a new pair recovered the key.
    pub recovered: bool,
    /// The fault arrived too late (the stream had already completed).
    pub missed: bool,
}

fn geo_args(slots: u32, slot_size: u32) -> Vec<String> {
    vec![
        "--slots".into(),
        slots.to_string(),
        "--slot-size".into(),
        slot_size.to_string(),
    ]
}

pub fn send_sig(pid: i32, sig: Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

fn describe(f: &Finished) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (f.status.code(), f.status.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "unknown".into(),
    }
}

/// Checks the victim ended the way the signal says (or, at racy points, finished).
fn check_victim(f: &Finished, sig: Signal, racy_start: bool, ctx: &str) -> bool {
    use std::os::unix::process::ExitStatusExt;
    assert!(
        !f.stderr.contains("panicked"),
        "CODE: {ctx}: victim panicked:\n{}",
        f.stderr
    );
    let by_signal = f.status.signal() == Some(sig as i32);
    let ok = match sig {
        Signal::SIGKILL => by_signal,
        // Before the handler is installed (the first milliseconds) the default
        // action still kills.
        _ => f.code() == Some(130) || (racy_start && by_signal),
    };
    if ok {
        return false;
    }
    assert_eq!(
        f.code(),
        Some(0),
        "CODE: {ctx}: victim ended with {}; stderr:\n{}",
        describe(f),
        f.stderr
    );
    true // it had finished: the fault missed
}

/// Checks a survivor: 0 with everything, or 4 (peer gone) with a prefix.
fn check_survivor(f: &Finished, data: &[u8], is_reader: bool, ctx: &str) {
    use std::os::unix::process::ExitStatusExt;
    assert!(
        f.status.signal().is_none(),
        "CODE: {ctx}: survivor died by signal {:?}",
        f.status.signal()
    );
    assert!(
        !f.stderr.contains("panicked"),
        "CODE: {ctx}: survivor panicked:\n{}",
        f.stderr
    );
    if is_reader {
        if let Some(at) = first_mismatch(&f.stdout, data) {
            panic!(
                "TORN: {ctx}: reader delivered {} bytes that are not a prefix of the {} sent (first difference at {at:?})",
                f.stdout.len(),
                data.len()
            );
        }
    }
    match f.code() {
        Some(4) => assert!(
            f.stderr.contains("error:") && f.stderr.contains("hint:"),
            "CODE: {ctx}: exit 4 without an error line and a hint:\n{}",
            f.stderr
        ),
        Some(0) if is_reader => assert!(f.stdout == data, "TORN: {ctx}: reader exit 0 with {} of {} bytes", f.stdout.len(), data.len()),
        Some(0) => {}
        other => panic!("CODE: {ctx}: survivor exit {other:?} (expected 4, or 0 after a complete stream); stderr:\n{}", f.stderr),
    }
}

/// Waits for `p`, tagging a timeout as a hang.
pub fn wait_tagged(p: Proc, limit: Duration, ctx: &str) -> Finished {
    let t = Instant::now();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.wait(limit))) {
        Ok(f) => f,
        Err(e) => {
            let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
            panic!("HANG: {ctx}: no exit within {:?}: {msg}", t.elapsed());
        }
    }
}

fn survivor_wait(p: Proc, since: Instant, ctx: &str) -> (Finished, Duration) {
    let f = wait_tagged(p, DETECT + Duration::from_secs(10), ctx);
    let took = since.elapsed();
    assert!(
        took <= DETECT,
        "SLOW: {ctx}: survivor took {took:?} to exit (bound {DETECT:?}); stderr:\n{}",
        f.stderr
    );
    (f, took)
}

fn until(limit: Duration, _what: &str, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

fn must(ok: bool, ctx: &str, what: &str) {
    assert!(ok, "HANG: {ctx}: timed out waiting for {what}");
}

/// After everyone exited: nothing may be left, except after a SIGKILL that left
/// nobody alive to clean up; then a new pair must recover the key and leave nothing.
fn check_leftovers(k: &TestKey, plan: &Plan, report: &mut Report, ctx: &str) {
    if k.in_ipcs() == (false, false) {
        return;
    }
    assert!(
        plan.sig == Signal::SIGKILL,
        "LEAK: {ctx}: objects left at {} after a clean {:?} exit: {:?}",
        k.arg(),
        plan.sig,
        k.in_ipcs()
    );
    let r = std::panic::catch_unwind(|| assert_pair_recovers(k, 50_000, plan.seed ^ 0x5eed));
    if let Err(e) = r {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        panic!("LEAK: {ctx}: a new pair did not recover the key left by the dead pair: {msg}");
    }
    report.recovered = true;
}

/// Runs one fault scenario with the real binaries and checks every promise.
pub fn run_fault(k: &TestKey, plan: &Plan) -> Report {
    let ctx = format!("{plan:?} key {}", k.arg());
    let ctx = ctx.as_str();
    let data = pseudo_random(plan.len.max(1), plan.seed);
    let mut rep = Report::default();
    let geo = geo_args(plan.slots, plan.slot_size);
    let writer = || {
        let mut c = k.writer();
        c.args(&geo);
        c
    };
    let consumed = || header_u64(k.key, shm_common::layout::off::BYTES_CONSUMED).unwrap_or(0);
    let state = || header_u32(k.key, shm_common::layout::off::STATE);
    use shm_common::layout::sem;
    match (plan.point, plan.side) {
        (Point::BeforeAttach, Side::Reader) => {
            let r = Proc::spawn(k.reader(), Stdio::null());
            std::thread::sleep(Duration::from_micros(plan.delay_us));
            send_sig(r.pid(), plan.sig);
            let f = wait_tagged(r, DETECT, ctx);
            rep.victim = describe(&f);
            check_victim(&f, plan.sig, true, ctx);
            assert!(
                f.stdout.is_empty(),
                "TORN: {ctx}: a reader with no writer printed data"
            );
            assert_eq!(
                k.in_ipcs(),
                (false, false),
                "LEAK: {ctx}: a waiting reader left objects"
            );
            let r = Proc::spawn(k.reader(), Stdio::null());
            let w = run_with_input(writer(), &data, TIMEOUT);
            let rf = wait_tagged(r, TIMEOUT, ctx);
            assert_eq!(w.code(), Some(0), "CODE: {ctx}: next writer: {}", w.stderr);
            check_survivor(&rf, &data, true, ctx);
            assert_eq!(
                rf.code(),
                Some(0),
                "CODE: {ctx}: next reader: {}",
                rf.stderr
            );
            rep.delivered = rf.stdout.len();
        }
        (Point::BeforeAttach, Side::Writer) => {
            let mut r = Proc::spawn(k.reader(), Stdio::null());
            std::thread::sleep(Duration::from_millis(100));
            let mut w = Proc::spawn(writer(), Stdio::piped());
            // Its input stays open: an interrupted writer must not see an end of input.
            let hold = w.child.stdin.take();
            std::thread::sleep(Duration::from_micros(plan.delay_us));
            send_sig(w.pid(), plan.sig);
            let t0 = Instant::now();
            let f = wait_tagged(w, DETECT, ctx);
            drop(hold);
            rep.victim = describe(&f);
            check_victim(&f, plan.sig, true, ctx);
            // Let the waiting reader look again (it polls every 100 ms); if it joined
            // the dead writer's session it must say so and exit 4.
            std::thread::sleep(Duration::from_millis(300));
            let mut first = None;
            if !r.running() || sem_value(k.key, sem::READERS).unwrap_or(0) > 0 {
                let (rf, took) = survivor_wait(r, t0, ctx);
                check_survivor(&rf, &data, true, ctx);
                assert_eq!(
                    rf.code(),
                    Some(4),
                    "CODE: {ctx}: reader of a dead writer: {}",
                    rf.stderr
                );
                rep.survivor = rf.code();
                rep.detect = Some(took);
                r = Proc::spawn(k.reader(), Stdio::null());
                first = Some(rf);
            }
            // A new writer must get through (recovering a half-made session if needed).
            let w2 = run_with_input(writer(), &data, TIMEOUT);
            let rf = wait_tagged(r, TIMEOUT, ctx);
            assert_eq!(
                w2.code(),
                Some(0),
                "CODE: {ctx}: next writer: {}",
                w2.stderr
            );
            assert_eq!(
                rf.code(),
                Some(0),
                "CODE: {ctx}: reader after recovery: {}",
                rf.stderr
            );
            assert!(
                rf.stdout == data,
                "TORN: {ctx}: reader after recovery got {} of {} bytes",
                rf.stdout.len(),
                data.len()
            );
            rep.delivered = first.map_or(rf.stdout.len(), |f| f.stdout.len());
        }
        (Point::MidStream, victim) => {
            let (w, _feed) = spawn_fed(writer(), data.clone());
            let r = Proc::spawn(k.reader(), Stdio::null());
            let target = (data.len() as u64 / 4).max(1);
            let mut w = Some(w);
            let mut r = Some(r);
            let flowing = until(TIMEOUT, "data to flow", || {
                consumed() >= target
                    || !w.as_mut().is_some_and(|p| p.running())
                    || !r.as_mut().is_some_and(|p| p.running())
            });
            must(flowing, ctx, "the stream to start flowing");
            let (vp, sp) = match victim {
                Side::Writer => (w.take(), r.take()),
                Side::Reader => (r.take(), w.take()),
            };
            let (vp, sp) = (vp.expect("victim"), sp.expect("survivor"));
            send_sig(vp.pid(), plan.sig);
            let t0 = Instant::now();
            let vf = wait_tagged(vp, DETECT, ctx);
            rep.victim = describe(&vf);
            rep.missed = check_victim(&vf, plan.sig, false, ctx);
            let (sf, took) = survivor_wait(sp, t0, ctx);
            let (rf, _wf) = match victim {
                Side::Writer => (&sf, &vf),
                Side::Reader => (&vf, &sf),
            };
            check_survivor(&sf, &data, victim == Side::Writer, ctx);
            if victim == Side::Reader {
                check_survivor_output(&vf, &data, ctx);
            }
            rep.survivor = sf.code();
            rep.detect = Some(took);
            rep.delivered = rf.stdout.len();
        }
        (Point::FullRing, Side::Writer) if plan.variant => {
            let (w, _feed) = spawn_fed(writer(), data.clone());
            must(
                until(TIMEOUT, "full ring", || {
                    sem_value(k.key, sem::FREE) == Some(0) && proc_state(w.pid()) == Some('S')
                }),
                ctx,
                "the writer to block on the full ring",
            );
            std::thread::sleep(Duration::from_millis(50));
            send_sig(w.pid(), plan.sig);
            let wf = wait_tagged(w, DETECT, ctx);
            rep.victim = describe(&wf);
            check_victim(&wf, plan.sig, false, ctx);
            if plan.sig == Signal::SIGKILL {
                // The frames it published are still there: a reader takes them, then
                // finds the writer dead.
                let t0 = Instant::now();
                let r = Proc::spawn(k.reader(), Stdio::null());
                let (rf, took) = survivor_wait(r, t0, ctx);
                check_survivor(&rf, &data, true, ctx);
                assert_eq!(
                    rf.code(),
                    Some(4),
                    "CODE: {ctx}: reader after a dead writer: {}",
                    rf.stderr
                );
                rep.survivor = rf.code();
                rep.detect = Some(took);
                rep.delivered = rf.stdout.len();
            }
        }
        (Point::FullRing, victim) => {
            // The writer waits for input; the reader joins and blocks on the empty
            // ring; it is stopped; only then does the input flow, and fill the ring.
            let mut w = Proc::spawn(writer(), Stdio::piped());
            let mut stdin = w.child.stdin.take().expect("stdin");
            let r = Proc::spawn(k.reader(), Stdio::null());
            let joined = until(TIMEOUT, "reader joined", || {
                sem_value(k.key, sem::READERS) == Some(1) && proc_state(r.pid()) == Some('S')
            });
            if !joined {
                // Seen once in 300 chaos runs and not reproduced since: say everything.
                let sems = sem_values(k.key);
                let (rs, ws) = (proc_state(r.pid()), proc_state(w.pid()));
                r.signal(Signal::SIGKILL);
                let rf = r.wait(TIMEOUT);
                panic!(
                    "HANG: {ctx}: timed out waiting for the reader to join and block \
                     (semaphores {sems:?}, reader state {rs:?}, writer state {ws:?}, \
                     reader stderr: {:?})",
                    rf.stderr
                );
            }
            r.signal(Signal::SIGSTOP);
            must(
                until(TIMEOUT, "stopped", || proc_state(r.pid()) == Some('T')),
                ctx,
                "the reader to stop",
            );
            let feed = data.clone();
            let _feed = std::thread::spawn(move || {
                let _ = stdin.write_all(&feed);
            });
            must(
                until(TIMEOUT, "full ring", || {
                    sem_value(k.key, sem::FREE) == Some(0) && proc_state(w.pid()) == Some('S')
                }),
                ctx,
                "the writer to block on the full ring",
            );
            std::thread::sleep(Duration::from_millis(50));
            let t0;
            let (vf, sf) = match victim {
                Side::Writer => {
                    send_sig(w.pid(), plan.sig);
                    t0 = Instant::now();
                    let wf = wait_tagged(w, DETECT, ctx);
                    r.signal(Signal::SIGCONT);
                    (wf, survivor_wait(r, t0, ctx))
                }
                Side::Reader => {
                    send_sig(r.pid(), plan.sig);
                    r.signal(Signal::SIGCONT);
                    t0 = Instant::now();
                    let rf = wait_tagged(r, DETECT, ctx);
                    (rf, survivor_wait(w, t0, ctx))
                }
            };
            rep.victim = describe(&vf);
            check_victim(&vf, plan.sig, false, ctx);
            let (sf, took) = sf;
            check_survivor(&sf, &data, victim == Side::Writer, ctx);
            // A stopped reader sent SIGINT/SIGTERM acts on it only after SIGCONT, and
            // may legitimately drain the rest of the stream first.
            if plan.sig == Signal::SIGKILL || victim == Side::Writer {
                assert_eq!(
                    sf.code(),
                    Some(4),
                    "CODE: {ctx}: survivor of a blocked pair: {}",
                    sf.stderr
                );
            }
            if victim == Side::Reader {
                check_survivor_output(&vf, &data, ctx);
            }
            rep.survivor = sf.code();
            rep.detect = Some(took);
            rep.delivered = if victim == Side::Writer {
                sf.stdout.len()
            } else {
                vf.stdout.len()
            };
        }
        (Point::EmptyRing, victim) => {
            let mut w = Proc::spawn(writer(), Stdio::piped());
            let r = Proc::spawn(k.reader(), Stdio::null());
            let chunk = (data.len() / 2).max(1);
            w.send(&data[..chunk]);
            must(
                until(TIMEOUT, "drained", || {
                    consumed() == chunk as u64
                        && sem_value(k.key, sem::FILLED) == Some(0)
                        && proc_state(r.pid()) == Some('S')
                }),
                ctx,
                "the reader to drain the first chunk and block on the empty ring",
            );
            std::thread::sleep(Duration::from_millis(20));
            match victim {
                Side::Writer => {
                    // Input stays open (not at its end) while the writer is signalled.
                    let hold = w.child.stdin.take();
                    send_sig(w.pid(), plan.sig);
                    let t0 = Instant::now();
                    let wf = wait_tagged(w, DETECT, ctx);
                    drop(hold);
                    rep.victim = describe(&wf);
                    check_victim(&wf, plan.sig, false, ctx);
                    let (rf, took) = survivor_wait(r, t0, ctx);
                    check_survivor(&rf, &data, true, ctx);
                    assert_eq!(
                        rf.code(),
                        Some(4),
                        "CODE: {ctx}: reader of a dead writer: {}",
                        rf.stderr
                    );
                    assert_eq!(
                        rf.stdout.len(),
                        chunk,
                        "TORN: {ctx}: the reader had taken {chunk} bytes but delivered {}",
                        rf.stdout.len()
                    );
                    rep.survivor = rf.code();
                    rep.detect = Some(took);
                    rep.delivered = rf.stdout.len();
                }
                Side::Reader => {
                    send_sig(r.pid(), plan.sig);
                    let rf = wait_tagged(r, DETECT, ctx);
                    rep.victim = describe(&rf);
                    check_victim(&rf, plan.sig, false, ctx);
                    check_survivor_output(&rf, &data, ctx);
                    assert_eq!(
                        rf.stdout.len(),
                        chunk,
                        "TORN: {ctx}: the reader had taken {chunk} bytes but delivered {}",
                        rf.stdout.len()
                    );
                    // The writer notices when it next needs the reader: at end of input.
                    let feed = data[chunk..].to_vec();
                    let mut stdin = w.child.stdin.take().expect("stdin");
                    let t0 = Instant::now();
                    let feeder = std::thread::spawn(move || {
                        let _ = stdin.write_all(&feed);
                    });
                    let (wf, took) = survivor_wait(w, t0, ctx);
                    let _ = feeder.join();
                    check_survivor(&wf, &data, false, ctx);
                    assert_eq!(
                        wf.code(),
                        Some(4),
                        "CODE: {ctx}: writer after its reader died: {}",
                        wf.stderr
                    );
                    rep.survivor = wf.code();
                    rep.detect = Some(took);
                    rep.delivered = rf.stdout.len();
                }
            }
        }
        (Point::EndOfStream, Side::Writer) => {
            // The whole stream fits in the ring; the writer waits for a reader after
            // publishing FINAL.
            let w = Proc::spawn(writer(), Stdio::piped());
            let mut w = w;
            w.send(&data);
            w.close_stdin();
            must(
                until(TIMEOUT, "ended", || state() == Some(2)),
                ctx,
                "the writer to publish FINAL",
            );
            std::thread::sleep(Duration::from_micros(plan.delay_us));
            send_sig(w.pid(), plan.sig);
            let wf = wait_tagged(w, DETECT, ctx);
            rep.victim = describe(&wf);
            check_victim(&wf, plan.sig, false, ctx);
            if plan.sig == Signal::SIGKILL {
                // A complete stream is in the ring: a reader gets all of it.
                let t0 = Instant::now();
                let r = Proc::spawn(k.reader(), Stdio::null());
                let (rf, took) = survivor_wait(r, t0, ctx);
                check_survivor(&rf, &data, true, ctx);
                assert!(
                    rf.stdout == data,
                    "TORN: {ctx}: a complete stream was in the ring; reader got {} of {} bytes",
                    rf.stdout.len(),
                    data.len()
                );
                rep.survivor = rf.code();
                rep.detect = Some(took);
                rep.delivered = rf.stdout.len();
            } else {
                assert!(
                    wf.stderr.contains("interrupted"),
                    "CODE: {ctx}: {}",
                    wf.stderr
                );
            }
        }
        (Point::EndOfStream, Side::Reader) => {
            let (w, _feed) = spawn_fed(writer(), data.clone());
            let mut r = Proc::spawn(k.reader(), Stdio::null());
            must(
                until(TIMEOUT, "reader joined", || {
                    sem_value(k.key, sem::READERS) == Some(1) || !r.running()
                }),
                ctx,
                "the reader to join",
            );
            std::thread::sleep(Duration::from_micros(plan.delay_us));
            send_sig(r.pid(), plan.sig);
            let t0 = Instant::now();
            let rf = wait_tagged(r, DETECT, ctx);
            rep.victim = describe(&rf);
            rep.missed = check_victim(&rf, plan.sig, false, ctx);
            check_survivor_output(&rf, &data, ctx);
            if rep.missed {
                assert!(
                    rf.stdout == data,
                    "TORN: {ctx}: reader exit 0 with {} of {} bytes",
                    rf.stdout.len(),
                    data.len()
                );
            }
            let (wf, took) = survivor_wait(w, t0, ctx);
            check_survivor(&wf, &data, false, ctx);
            rep.survivor = wf.code();
            rep.detect = Some(took);
            rep.delivered = rf.stdout.len();
        }
    }
    check_leftovers(k, plan, &mut rep, ctx);
    rep
}

/// What a victim reader delivered before it died must be a prefix too.
fn check_survivor_output(f: &Finished, data: &[u8], ctx: &str) {
    if let Some(at) = first_mismatch(&f.stdout, data) {
        panic!(
            "TORN: {ctx}: the reader delivered {} bytes, not a prefix (first difference at {at})",
            f.stdout.len()
        );
    }
}

/// SIGSTOP one side mid-stream for `pause`, then SIGCONT: the other side must wait
/// (saying so when it is the one blocked), never declare it dead, and the stream must
/// complete exactly. Returns the stderr of the side that waited.
pub fn run_stop(
    k: &TestKey,
    side: Side,
    slots: u32,
    slot_size: u32,
    len: usize,
    seed: u64,
    pause: Duration,
) -> String {
    let ctx = format!(
        "SIGSTOP {side:?} slots {slots} slot_size {slot_size} len {len} seed {seed} key {}",
        k.arg()
    );
    let ctx = ctx.as_str();
    let data = pseudo_random(len.max(1), seed);
    let mut w = {
        let mut c = k.writer();
        c.args(geo_args(slots, slot_size));
        Proc::spawn(c, Stdio::piped())
    };
    let mut r = Proc::spawn(k.reader(), Stdio::null());
    let consumed = || header_u64(k.key, shm_common::layout::off::BYTES_CONSUMED).unwrap_or(0);
    let half = data.len() / 2;
    w.send(&data[..half]);
    must(
        until(TIMEOUT, "half", || {
            consumed() == half as u64 || !w.running() || !r.running()
        }),
        ctx,
        "the first half to arrive",
    );
    let victim_pid = match side {
        Side::Writer => w.pid(),
        Side::Reader => r.pid(),
    };
    send_sig(victim_pid, Signal::SIGSTOP);
    if side == Side::Reader {
        // Make the writer block on the full ring behind the stopped reader.
        let rest = data[half..].to_vec();
        let mut stdin = w.child.stdin.take().expect("stdin");
        std::thread::spawn(move || {
            let _ = stdin.write_all(&rest);
        });
    }
    std::thread::sleep(pause);
    let other_running = match side {
        Side::Writer => r.running(),
        Side::Reader => w.running(),
    };
    // A stopped reader keeps a writer waiting only if the rest does not fit in the ring.
    let must_wait =
        side == Side::Writer || data.len() - half > slots as usize * (slot_size as usize - 32);
    assert!(
        other_running || !must_wait,
        "CODE: {ctx}: the peer of a stopped process gave up within {pause:?}"
    );
    send_sig(victim_pid, Signal::SIGCONT);
    if side == Side::Writer {
        w.send(&data[half..]);
        w.close_stdin();
    }
    let wf = wait_tagged(w, TIMEOUT, ctx);
    let rf = wait_tagged(r, TIMEOUT, ctx);
    assert_eq!(wf.code(), Some(0), "CODE: {ctx}: writer: {}", wf.stderr);
    assert_eq!(rf.code(), Some(0), "CODE: {ctx}: reader: {}", rf.stderr);
    assert!(
        rf.stdout == data,
        "TORN: {ctx}: delivered {} of {} bytes (prefix: {})",
        rf.stdout.len(),
        data.len(),
        is_prefix(&rf.stdout, &data)
    );
    assert_eq!(k.in_ipcs(), (false, false), "LEAK: {ctx}: objects left");
    match side {
        Side::Writer => rf.stderr,
        Side::Reader => wf.stderr,
    }
}
