//! Parent side: fresh keys, a guard that removes every object a run made, and
//! `run_group`, which starts child processes, lines them up with `ready`/`go`, and
//! collects their `result` lines.

use crate::child::Res;
use shm_cli::keys::{ClaimedKey, Range};
use shm_common::segment;
use shm_common::semaphore;
use shm_common::IpcKey;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

static NEXT_SCRATCH: AtomicU32 = AtomicU32::new(0);

/// Claims held by this run, released by the [`KeyGuard`] that owns the key.
static CLAIMS: Mutex<Vec<ClaimedKey>> = Mutex::new(Vec::new());

/// A key no other run (of ours, of another benchmark or of a test suite) uses: one
/// of the bench range (`0x7e4xxxxx`, `shm_cli::keys`), claimed until the guard that
/// holds it drops.
pub fn fresh_key() -> Res<IpcKey> {
    let claim = shm_cli::keys::claim(Range::BENCH)?;
    let key = claim.key();
    CLAIMS
        .lock()
        .map_err(|_| "key claims poisoned")?
        .push(claim);
    Ok(key)
}

/// Removes whatever segment and semaphore set are at its keys when dropped, after
/// the children are gone: on success the last ring peer has usually removed them
/// already, on error (or for the lock-step baseline, which has no session) this is
/// what cleans up. The keys are claimed for this run alone, so plain IPC_RMID is
/// safe; then the claims are released.
#[derive(Debug, Default)]
pub struct KeyGuard(pub Vec<IpcKey>);

impl Drop for KeyGuard {
    fn drop(&mut self) {
        for &k in &self.0 {
            if let Ok(Some(id)) = semaphore::find(k) {
                let _ = semaphore::remove_id(k, id);
            }
            if let Ok(Some(id)) = segment::find(k) {
                let _ = segment::remove_id(k, id);
            }
        }
        if let Ok(mut claims) = CLAIMS.lock() {
            claims.retain(|c| !self.0.contains(&c.key()));
        }
    }
}

/// A scratch directory for FIFOs and sockets, removed on drop.
#[derive(Debug)]
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A new directory under the system temp dir.
    pub fn new(tag: &str) -> Res<Scratch> {
        let n = NEXT_SCRATCH.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("shm-bench-{}-{tag}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }

    /// A FIFO named `name` inside the directory.
    pub fn fifo(&self, name: &str) -> Res<PathBuf> {
        let p = self.0.join(name);
        nix::unistd::mkfifo(
            &p,
            nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
        )?;
        Ok(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One child to start: its arguments, and whether the parent waits for its `ready`
/// before starting the next one (the ring's creator, so readers find the session).
#[derive(Debug, Clone)]
pub struct Spec {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Wait for `ready` before starting the next child.
    pub first: bool,
}

/// A parsed `result` line.
pub type Fields = HashMap<String, f64>;

struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

fn read_line(r: &mut Running, want: &str) -> Res<String> {
    let mut line = String::new();
    r.stdout.read_line(&mut line)?;
    if !line.starts_with(want) {
        return Err(format!("child {} said {line:?} instead of {want:?}", r.child.id()).into());
    }
    Ok(line)
}

fn parse_result(line: &str) -> Fields {
    line.split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

/// Starts `specs` in order, waits until all are `ready`, says `go` to all, and returns
/// their result lines in the same order. A watchdog kills the group (by pid, our own
/// children only) if it takes longer than `limit`; on any error every child is killed
/// and reaped before returning.
pub fn run_group(specs: &[Spec], limit: Duration) -> Res<Vec<Fields>> {
    let mut running: Vec<Running> = Vec::new();
    let result = drive(specs, &mut running, limit);
    if result.is_err() {
        for r in &mut running {
            let _ = r.child.kill();
        }
    }
    for r in &mut running {
        r.stdin = None;
        let status = r.child.wait();
        if result.is_ok() && !status.as_ref().is_ok_and(|s| s.success()) {
            return Err(format!("child {} failed: {status:?}", r.child.id()).into());
        }
    }
    result
}

fn drive(specs: &[Spec], running: &mut Vec<Running>, limit: Duration) -> Res<Vec<Fields>> {
    for s in specs {
        let mut child = Command::new(&s.argv[0])
            .args(&s.argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().ok_or("no child stdout")?);
        running.push(Running {
            child,
            stdin,
            stdout,
        });
        if s.first {
            let last = running.len() - 1;
            read_line(&mut running[last], "ready")?;
        }
    }
    // The watchdog: a thread that kills the children if the group overruns.
    let pids: Vec<i32> = running.iter().map(|r| r.child.id() as i32).collect();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(limit) == Err(mpsc::RecvTimeoutError::Timeout) {
            eprintln!("shm-bench: a run took longer than {limit:?}; killing it");
            for p in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    });
    let result = (|| {
        for (s, r) in specs.iter().zip(running.iter_mut()) {
            if !s.first {
                read_line(r, "ready")?;
            }
        }
        for r in running.iter_mut() {
            let stdin = r.stdin.as_mut().ok_or("no child stdin")?;
            stdin.write_all(b"go\n")?;
            stdin.flush()?;
        }
        let mut out = Vec::new();
        for r in running.iter_mut() {
            out.push(parse_result(&read_line(r, "result")?));
        }
        Ok(out)
    })();
    let _ = done_tx.send(());
    let _ = watchdog.join();
    result
}

/// The directory of this executable: `writer` and `reader` are built beside it.
pub fn exe_dir() -> Res<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.parent().map(Path::to_path_buf).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_parse() {
        let f = parse_result("result frames=10 bytes=640 t0=5 junk p50_ns=1.5\n");
        assert_eq!(f.get("frames"), Some(&10.0));
        assert_eq!(f.get("p50_ns"), Some(&1.5));
        assert_eq!(f.len(), 4);
    }
}
