//! The harness for the tests that spawn `shm-inspect` and `shm-race`: a unique key
//! per test, a guard that removes whatever is at that key (even when the test
//! fails), and a timeout on every wait for a child process.
#![allow(dead_code)]

use shm_common::{segment, semaphore, IpcKey};
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Every test key starts with 0x7e (scripts/check-clean.sh looks for leftovers
/// there); the rest is this process's pid and a per-test counter.
pub fn unique_key() -> IpcKey {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) & 0xff;
    let raw = 0x7ec0_0000u32 | ((std::process::id() & 0xfff) << 8) | n;
    IpcKey::new(raw as i32).expect("a 0x7e key is never IPC_PRIVATE")
}

/// Removes everything at its key when dropped: first the polite way
/// (`remove_session`, which refuses foreign or busy objects), then by id, as
/// `ipcrm -S KEY -M KEY` would. Declare it first in a test so it drops last.
pub struct KeyGuard(pub IpcKey);

impl KeyGuard {
    pub fn new() -> KeyGuard {
        KeyGuard(unique_key())
    }
    pub fn key(&self) -> IpcKey {
        self.0
    }
    /// The key as `ipcs` prints it and as `--key` accepts it.
    pub fn arg(&self) -> String {
        self.0.to_string()
    }
    pub fn sweep(&self) {
        let _ = shm_common::session::remove_session(self.0);
        if let Ok(Some(id)) = semaphore::find(self.0) {
            let _ = semaphore::remove_id(self.0, id);
        }
        if let Ok(Some(id)) = segment::find(self.0) {
            let _ = segment::remove_id(self.0, id);
        }
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        self.sweep();
    }
}

/// What a finished child printed.
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Waits for `child` at most `limit`, killing it (and failing) on timeout.
pub fn wait_with_timeout(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("child timed out after {limit:?}");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for child: {e}"),
        }
    };
    Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}

/// Runs a binary to completion with a timeout.
pub fn run(bin: &str, args: &[&str], limit: Duration) -> Output {
    let child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {bin}: {e}"));
    wait_with_timeout(child, limit)
}

pub const INSPECT: &str = env!("CARGO_BIN_EXE_shm-inspect");
pub const RACE: &str = env!("CARGO_BIN_EXE_shm-race");

/// `shm-inspect --key KEY ARGS...`, which must succeed.
pub fn inspect(key: &str, extra: &[&str]) -> String {
    let mut args = vec!["--key", key];
    args.extend_from_slice(extra);
    let o = run(INSPECT, &args, Duration::from_secs(20));
    assert!(o.status.success(), "shm-inspect failed: {}", o.stderr);
    o.stdout
}

/// The id `ipcs -m` (`which = "-m"`) or `ipcs -s` lists for `key`.
pub fn ipcs_id(which: &str, key: IpcKey) -> Option<i32> {
    let o = run("ipcs", &[which], Duration::from_secs(10));
    let want = key.to_string();
    o.stdout.lines().find_map(|l| {
        let mut cols = l.split_whitespace();
        (cols.next()? == want).then(|| cols.next()?.parse().ok())?
    })
}

/// Parses `k=v` pairs of one plain-format line.
pub fn pairs(line: &str) -> std::collections::HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The first line starting with `prefix`.
pub fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(prefix))
}

/// Polls `f` until it returns Some, for at most `limit`.
pub fn eventually<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
