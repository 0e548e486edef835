//! iceoryx2 rows: the same measurements through iceoryx2 0.10 publish-subscribe.
//!
//! iceoryx2 is not a dependency of this crate: its children are a separate binary,
//! `shm-bench-iceoryx2` (bench/iceoryx2, its own Cargo workspace, built by `make bench`),
//! which speaks the same ready/go/result protocol as [`crate::child`], so
//! [`runner::run_group`] drives it like our own children. When the binary is not there
//! the rows are skipped, and the run says so in its header.
//!
//! Every run gets its own iceoryx2 root directory and shared-memory file prefix;
//! [`IceRun`] removes both after the children are reaped, on success and on error
//! (iceoryx2 removes a service with its last port, but a killed child leaves files, and
//! the per-prefix management segment in /dev/shm is never removed by iceoryx2 itself).

use crate::bench::{self, geometry_for, median_of, Config, Measure, Placement};
use crate::child::Res;
use crate::report::Row;
use crate::runner::{self, exe_dir, Scratch, Spec};
use crate::stats::human_size;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// The binary's name, beside `shm-bench` or in `target/iceoryx2/release`.
pub const BIN: &str = "shm-bench-iceoryx2";

/// One streaming row: what the subscriber does per sample, and how it waits.
#[derive(Debug, Clone, Copy)]
pub struct Stream {
    /// Row name.
    pub name: &'static str,
    /// `--work`: touch (CRC-32C in place) or same-work (copy out, CRC-32C the copy).
    work: &'static str,
    /// `--wait`: event (the publisher notifies every [`NOTIFY_EVERY`]), or poll.
    wait: &'static str,
}

/// The streaming rows, in table order. The first two block on an iceoryx2 listener
/// when there is nothing to take, as our reader blocks on a semaphore: measured on
/// two CPUs that was also faster than polling up to 64 KiB (split, median of 5:
/// 64 B 133 vs 114 MB/s, 4 KiB 7.0 vs 6.1 GB/s, 64 KiB 14.3 vs 10.6-10.8), and
/// costs less CPU. Polling was faster at 1 MiB (11-15 vs 11 GB/s), hence the third
/// row, the busy-polling subscriber iceoryx2's own benchmarks use.
pub const STREAMS: [Stream; 3] = [
    Stream {
        name: "iceoryx2-touch",
        work: "touch",
        wait: "event",
    },
    Stream {
        name: "iceoryx2-same-work",
        work: "same-work",
        wait: "event",
    },
    Stream {
        name: "iceoryx2-touch-poll",
        work: "touch",
        wait: "poll",
    },
];

/// The blocking rows' notification period in samples, capped at the buffer size (63
/// at 64 KiB, 16 at 1 MiB), or a full buffer would wait for a notification that
/// never comes.
const NOTIFY_EVERY: u32 = 64;

/// Empty polls spent spinning before each further one yields the CPU. Measured on the
/// project's VM, 64-byte ping-pong p50: split 1.59 / 1.45 / 1.41 µs and one CPU
/// 1.9 / 3.5 / 17 µs for 0 / 10 / 100; without yielding one CPU does not finish.
const SPIN: u32 = 10;

/// The latency rows: the receiving side blocks on an iceoryx2 listener, or polls.
pub const LATENCY: [(&str, &str); 2] = [("iceoryx2-event", "event"), ("iceoryx2-poll", "poll")];

/// Where the binary is, or why the rows are skipped (one line for the header).
pub fn locate(
    explicit: Option<&Path>,
    disabled: bool,
    quick: bool,
) -> Res<Result<PathBuf, String>> {
    if disabled {
        return Ok(Err("--no-iceoryx2".into()));
    }
    if let Some(p) = explicit {
        if p.is_file() {
            return Ok(Ok(std::fs::canonicalize(p)?));
        }
        return Err(format!("--iceoryx2 {}: no such file", p.display()).into());
    }
    if quick {
        return Ok(Err("--quick (pass --iceoryx2 PATH to include them)".into()));
    }
    let dir = exe_dir()?;
    let candidates = [dir.join(BIN), dir.join("../iceoryx2/release").join(BIN)];
    match candidates.iter().find(|p| p.is_file()) {
        Some(p) => Ok(Ok(p.clone())),
        None => Ok(Err(format!(
            "{BIN} not found at {} or {} (`make bench` builds it; or pass --iceoryx2 PATH)",
            candidates[0].display(),
            candidates[1].display()
        ))),
    }
}

static NEXT_RUN: AtomicU32 = AtomicU32::new(0);

/// One run's iceoryx2 namespace: service name, root directory, file prefix. Dropping it
/// removes the directory and every /dev/shm file with the prefix.
#[derive(Debug)]
struct IceRun {
    service: String,
    root: Scratch,
    prefix: String,
}

impl IceRun {
    fn new() -> Res<IceRun> {
        let n = NEXT_RUN.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        Ok(IceRun {
            service: format!("shm-bench/{pid}/{n}"),
            root: Scratch::new("iceoryx2")?,
            prefix: format!("iox2_shmbench_{pid}_{n}_"),
        })
    }

    /// The arguments every child of the run shares.
    fn argv(&self, exe: &Path, role: &str) -> Vec<String> {
        vec![
            exe.display().to_string(),
            role.into(),
            "--service".into(),
            self.service.clone(),
            "--root".into(),
            self.root.0.display().to_string(),
            "--prefix".into(),
            self.prefix.clone(),
            "--spin".into(),
            SPIN.to_string(),
        ]
    }
}

impl Drop for IceRun {
    fn drop(&mut self) {
        // The prefix holds our pid and a counter: these files are this run's alone.
        if let Ok(dir) = std::fs::read_dir("/dev/shm") {
            for e in dir.flatten() {
                if e.file_name().to_string_lossy().starts_with(&self.prefix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        // `root` (a Scratch) removes the directory itself.
    }
}

fn add(argv: &mut Vec<String>, flag: &str, value: impl ToString) {
    argv.push(flag.into());
    argv.push(value.to_string());
}

/// One streaming run: a publisher and a subscriber, the subscriber's buffer as deep as
/// the ring's slot count for `size`.
fn transport_once(
    cfg: &Config,
    exe: &Path,
    s: Stream,
    size: usize,
    place: Placement,
) -> Res<Measure> {
    let run = IceRun::new()?;
    let (slots, _) = geometry_for(size, cfg.slots);
    let mut specs = Vec::new();
    for (role, producer) in [("publisher", true), ("subscriber", false)] {
        let mut argv = run.argv(exe, role);
        add(&mut argv, "--size", size);
        add(&mut argv, "--secs", cfg.secs);
        add(&mut argv, "--depth", slots);
        add(&mut argv, "--work", s.work);
        add(&mut argv, "--wait", s.wait);
        add(&mut argv, "--notify-every", NOTIFY_EVERY.min(slots));
        if let Some(cpu) = place.cpu(producer) {
            add(&mut argv, "--cpu", cpu);
        }
        // Each side waits for the other's port before `ready`: start both at once.
        specs.push(Spec { argv, first: false });
    }
    let results = runner::run_group(&specs, bench::limit(cfg))?;
    Ok(bench::combine(&results, 1))
}

/// One 64-byte ping-pong run (16-sample buffers, as the ring's 16 slots).
fn latency_once(cfg: &Config, exe: &Path, wait: &str, place: Placement) -> Res<Measure> {
    let run = IceRun::new()?;
    let mut specs = Vec::new();
    for (role, producer) in [("ping", true), ("pong", false)] {
        let mut argv = run.argv(exe, role);
        add(&mut argv, "--size", 64);
        add(&mut argv, "--depth", 16);
        add(&mut argv, "--wait", wait);
        add(&mut argv, "--iters", cfg.ping_iters);
        if let Some(cpu) = place.cpu(producer) {
            add(&mut argv, "--cpu", cpu);
        }
        specs.push(Spec { argv, first: false });
    }
    let results = runner::run_group(&specs, bench::limit(cfg))?;
    Ok(bench::combine(&results, 1))
}

fn check() -> Res<()> {
    if shm_common::cancel::requested() {
        return Err("interrupted".into());
    }
    Ok(())
}

/// The streaming rows of one cell (size, placement); the caller computes the ratio
/// with the rest of the cell.
pub fn transport_rows(cfg: &Config, exe: &Path, size: usize, place: Placement) -> Res<Vec<Row>> {
    let mut rows = Vec::new();
    for s in STREAMS {
        check()?;
        eprintln!(
            "shm-bench: transport {} {} {}",
            s.name,
            human_size(size as u64),
            place.name()
        );
        let m = median_of(cfg.reps, false, || transport_once(cfg, exe, s, size, place))?;
        rows.push(bench::row("transport", s.name, size, place, &m));
    }
    Ok(rows)
}

/// The latency rows of one placement.
pub fn latency_rows(cfg: &Config, exe: &Path, place: Placement) -> Res<Vec<Row>> {
    let mut rows = Vec::new();
    for (name, wait) in LATENCY {
        check()?;
        eprintln!("shm-bench: latency {name} {}", place.name());
        let m = median_of(cfg.reps, true, || latency_once(cfg, exe, wait, place))?;
        rows.push(bench::row("latency", name, 64, place, &m));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_with_a_reason() {
        let why = locate(None, true, false).ok().and_then(|r| r.err());
        assert_eq!(why.as_deref(), Some("--no-iceoryx2"));
        let why = locate(None, false, true).ok().and_then(|r| r.err());
        assert!(why.is_some_and(|w| w.starts_with("--quick")));
        assert!(locate(Some(Path::new("/nonexistent/x")), false, false).is_err());
    }

    #[test]
    fn runs_have_their_own_names() {
        let (a, b) = (IceRun::new().ok(), IceRun::new().ok());
        let (a, b) = (a.expect("run a"), b.expect("run b"));
        assert_ne!(a.service, b.service);
        assert_ne!(a.prefix, b.prefix);
        assert!(a.root.0.is_dir());
        let root = a.root.0.clone();
        drop(a);
        assert!(!root.exists());
    }
}
