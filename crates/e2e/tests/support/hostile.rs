//! Helpers of the hostile-peer suite (`hostile.rs`): children whose stdio the test
//! sets itself (an unwritable stderr, a closed stdout), input fed at a pace so that an
//! attack lands mid-stream, several processes awaited at once against one bound, the
//! CPU time of a child, and the keys a writer says it created.

use super::*;
use std::io::Write;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child whose stdin, stdout and stderr the caller chose ([`Proc`] pipes stderr
/// back, and these tests need it unwritable). Killed on drop.
pub struct Bare {
    pub child: Child,
    what: String,
}

impl Bare {
    /// Spawns `cmd` as it is configured; `what` names it in failure messages.
    pub fn spawn(mut cmd: Command, what: &str) -> Bare {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {what} ({:?}): {e}", cmd.get_program()));
        Bare {
            child,
            what: what.to_string(),
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits up to `limit` for the exit; kills the child and fails the test (`HANG`)
    /// otherwise.
    pub fn wait(mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            if start.elapsed() > limit {
                let where_ = threads_of(self.pid());
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "HANG: {} (pid {}) did not exit within {limit:?} (threads: {where_})",
                    self.what,
                    self.child.id()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `exit N` or `signal N` for a bare status.
pub fn status_text(s: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(sig)) => format!("signal {sig}"),
        _ => "unknown".into(),
    }
}

/// `/dev/full` opened for writing: every write fails with ENOSPC.
pub fn dev_full() -> Stdio {
    Stdio::from(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("open /dev/full"),
    )
}

/// The write end of a pipe whose read end is already closed (what `2>&1 | head -1`
/// leaves once head has exited): every write fails with EPIPE (or raises SIGPIPE).
pub fn closed_pipe() -> Stdio {
    let (r, w) = nix::unistd::pipe().expect("pipe");
    drop(r);
    Stdio::from(w)
}

/// `text` quoted for bash.
pub fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `bash -c 'exec PROGRAM ARGS... REDIRECTIONS'`: the binary replaces bash (same pid),
/// with `redirections` applied to it (`>&-` closes its stdout, `>/dev/full` ...).
pub fn exec_with(cmd: &Command, redirections: &str) -> Command {
    let mut line = String::from("exec ");
    line.push_str(&sh_quote(&cmd.get_program().to_string_lossy()));
    for a in cmd.get_args() {
        line.push(' ');
        line.push_str(&sh_quote(&a.to_string_lossy()));
    }
    line.push(' ');
    line.push_str(redirections);
    let mut c = Command::new("bash");
    c.arg("-c").arg(line);
    c
}

/// Input written into a child's stdin by a thread, `chunk` bytes at a time with
/// `pause` between chunks, then closed (end of input). A write that fails (the child
/// exited) ends the feed early.
pub struct Feed {
    done: mpsc::Receiver<(Instant, usize)>,
    start: Instant,
    /// How long the pauses alone take.
    nominal: Duration,
}

/// Starts feeding `data` into `stdin` at a pace.
pub fn feed_paced(mut stdin: ChildStdin, data: Vec<u8>, chunk: usize, pause: Duration) -> Feed {
    let (tx, done) = mpsc::channel();
    let nominal = pause * u32::try_from(data.len().div_ceil(chunk.max(1))).unwrap_or(u32::MAX);
    std::thread::spawn(move || {
        let mut sent = 0;
        for c in data.chunks(chunk.max(1)) {
            if stdin.write_all(c).is_err() {
                break;
            }
            sent += c.len();
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        }
        drop(stdin);
        let _ = tx.send((Instant::now(), sent));
    });
    Feed {
        done,
        start: Instant::now(),
        nominal,
    }
}

impl Feed {
    /// When the input ended (closed after the last byte, or cut short because the
    /// child stopped reading) and how many bytes went in; `None` if that takes longer
    /// than `limit` (the child neither reads nor exits: the caller's wait on the
    /// process then reports the hang, with its threads).
    pub fn ended(self, limit: Duration, ctx: &str) -> Option<(Instant, usize)> {
        let r = self.done.recv_timeout(limit).ok();
        if r.is_none() {
            eprintln!("{ctx}: the input was not taken within {limit:?}");
        }
        r
    }

    /// When the input ended, if by `grace` after the later of `attack_end` and the
    /// feed's own pace; `None` otherwise (the writer stopped reading: hung).
    pub fn ended_after(self, attack_end: Instant, grace: Duration, ctx: &str) -> Option<Instant> {
        let deadline = (self.start + self.nominal).max(attack_end) + grace;
        let left = deadline.saturating_duration_since(Instant::now());
        self.ended(left, ctx).map(|(t, _)| t)
    }
}

/// Waits for all `procs` at once. Each must exit within `bound` of `since` (`SLOW`
/// otherwise); one still running `bound` + 5 s after `since` is killed and fails the
/// test (`HANG`, with its threads' kernel wait channels). Returns their outcomes in
/// order.
pub fn wait_all(
    procs: Vec<(&str, Proc)>,
    since: Instant,
    bound: Duration,
    ctx: &str,
) -> Vec<Finished> {
    let hard = bound + Duration::from_secs(5);
    let mut procs = procs;
    let mut exited: Vec<Option<Instant>> = vec![None; procs.len()];
    loop {
        for (i, (_, p)) in procs.iter_mut().enumerate() {
            if exited[i].is_none() && !p.running() {
                exited[i] = Some(Instant::now());
            }
            p.pump();
        }
        if exited.iter().all(Option::is_some) || since.elapsed() > hard {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut hung = Vec::new();
    let mut out = Vec::new();
    let mut names = Vec::new();
    for ((name, p), t) in procs.into_iter().zip(&exited) {
        if t.is_none() {
            hung.push(format!(
                "{name} (pid {}, threads {})",
                p.pid(),
                threads_of(p.pid())
            ));
            p.signal(Signal::SIGKILL);
        }
        out.push(p.wait_ctx(SOON, ctx));
        names.push(name);
    }
    let summary = || {
        names
            .iter()
            .zip(&out)
            .map(|(n, f)| {
                format!(
                    "{n}: {} [{}]",
                    f.describe(),
                    f.stderr.trim().replace('\n', " | ")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    assert!(
        hung.is_empty(),
        "HANG: {ctx}: still running {hard:?} after the attack/end of input: {}; all: {}",
        hung.join(", "),
        summary()
    );
    for (name, t) in names.iter().zip(&exited) {
        let took = t
            .map(|t| t.saturating_duration_since(since))
            .unwrap_or(hard);
        assert!(
            took <= bound,
            "SLOW: {ctx}: {name} exited {took:?} after the attack/end of input (bound {bound:?}); all: {}",
            summary()
        );
    }
    out
}

/// CPU time (user + system) a process has used so far, from /proc/PID/stat.
pub fn cpu_time(pid: i32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the command name: state is field 3, utime 14 and stime 15 (proc(5)).
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value; no memory is involved.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let tck = u64::try_from(tck).ok().filter(|t| *t > 0)?;
    Some(Duration::from_micros((utime + stime) * 1_000_000 / tck))
}

/// Time the threads of a process have spent on a CPU or waiting in a run queue for
/// one (/proc/PID/task/*/schedstat: run and run-delay nanoseconds): what it asked of
/// the CPUs, whether or not a loaded machine gave it. A process asleep in the kernel
/// asks for nothing; one that spins (even yielding) asks for all of its wall time.
pub fn cpu_demand(pid: i32) -> Option<Duration> {
    let mut total = 0u64;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let text = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
        let mut f = text.split_whitespace().map(|v| v.parse::<u64>().ok());
        total += f.next()?? + f.next()??;
    }
    Some(Duration::from_nanos(total))
}

/// The keys a writer's stderr says it created (`created key 0x........`).
pub fn created_keys(stderr: &str) -> Vec<shm_common::IpcKey> {
    stderr
        .match_indices("created key ")
        .filter_map(|(i, m)| {
            let rest = &stderr[i + m.len()..];
            let word: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            shm_common::IpcKey::parse(&word).ok()
        })
        .collect()
}

/// Removes whatever is at `key` (the test proved it is its own).
pub fn remove_at(key: shm_common::IpcKey) {
    if let Ok(Some(id)) = shm_common::semaphore::find(key) {
        let _ = shm_common::semaphore::remove_id(key, id);
    }
    if let Ok(Some(id)) = shm_common::segment::find(key) {
        let _ = shm_common::segment::remove_id(key, id);
    }
}

/// Whether anything is at `key`: (segment, semaphore set).
pub fn at_key(key: shm_common::IpcKey) -> (bool, bool) {
    (
        !matches!(shm_common::segment::find(key), Ok(None)),
        !matches!(shm_common::semaphore::find(key), Ok(None)),
    )
}

/// A small deterministic generator (xorshift64), so a failing round reproduces.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// Seeded (0 is replaced: xorshift would stay at 0).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform-ish in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Error lines (`NAME: error: ...`) of a stderr.
pub fn error_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(": error:")).collect()
}
