//! The measurements: transport (streaming, two or four processes), latency
//! (ping-pong), and single-thread memcpy. Each run is one group of children started by
//! [`runner::run_group`]; each row is the median of `reps` runs.

use crate::child::{Mech, Res, LOCKSTEP_DATA, LOCKSTEP_NAMES};
use crate::report::Row;
use crate::runner::{self, fresh_key, KeyGuard, Scratch, Spec};
use crate::stats::median_index;
use shm_common::frame::FRAME_HEADER_SIZE;
use shm_common::layout::SLOT_ALIGN;
use shm_common::segment::Segment;
use shm_common::semaphore::SemaphoreSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where the two sides run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The scheduler decides.
    Unpinned,
    /// Both sides pinned to CPU 0: every hand-over is a context switch.
    Same,
    /// Producers on CPU 0, consumers on CPU 1: hand-overs are cross-CPU wake-ups.
    Split,
}

impl Placement {
    /// Name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Placement::Unpinned => "unpinned",
            Placement::Same => "same-cpu",
            Placement::Split => "split",
        }
    }
    /// Parses [`Placement::name`].
    pub fn parse(s: &str) -> Result<Placement, String> {
        [Placement::Unpinned, Placement::Same, Placement::Split]
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown placement {s:?} (unpinned, split, same-cpu)"))
    }
    /// The CPU for the producing (`true`) or consuming side.
    pub(crate) fn cpu(self, producer: bool) -> Option<usize> {
        match self {
            Placement::Unpinned => None,
            Placement::Same => Some(0),
            Placement::Split => Some(if producer { 0 } else { 1 }),
        }
    }
}

/// What the whole run does; the defaults come from `main`.
#[derive(Debug, Clone)]
pub struct Config {
    /// This executable (the children are more of it).
    pub exe: PathBuf,
    /// Seconds each producer streams for.
    pub secs: f64,
    /// Repetitions per cell (median taken).
    pub reps: usize,
    /// Ring: most frames per semop.
    pub batch: u32,
    /// Ring: slots, if not derived from the frame size.
    pub slots: Option<u32>,
    /// Frame sizes.
    pub sizes: Vec<usize>,
    /// Placements.
    pub placements: Vec<Placement>,
    /// Ping-pong round trips.
    pub ping_iters: u32,
}

/// The ring geometry for a frame size: the smallest slot that holds the frame, and
/// the library's default slot count for that slot size
/// ([`shm_common::layout::default_slots`]: as many as fit in 4 MiB, between 16 and
/// 4096; for 64 KiB frames a 4 MiB ring measured ~12% faster than 16 MiB, and 64 B
/// frames need 2048 slots or more: see "Tunables" in BENCHMARKS.md).
pub fn geometry_for(size: usize, slots: Option<u32>) -> (u32, u32) {
    let align = SLOT_ALIGN as usize;
    let slot_size = ((size + FRAME_HEADER_SIZE).div_ceil(align) * align) as u32;
    let slots = slots.unwrap_or(shm_common::layout::default_slots(slot_size));
    (slots, slot_size)
}

/// One run's numbers.
#[derive(Debug, Clone, Default)]
pub struct Measure {
    /// Frames delivered.
    pub frames: f64,
    /// Bytes delivered.
    pub bytes: f64,
    /// From the first producer's start to the last consumer's end.
    pub secs: f64,
    /// CPU seconds of all children during the measured part.
    pub cpu_secs: f64,
    /// End to end: CPU seconds of the reader process alone, if the run had one.
    pub reader_cpu_secs: Option<f64>,
    /// Largest peak RSS of any child, KiB.
    pub rss_kib: u64,
    /// Ping-pong: round-trip percentiles, µs.
    pub p50_us: Option<f64>,
    /// See `p50_us`.
    pub p99_us: Option<f64>,
}

fn child_argv(cfg: &Config, role: &str, mech: Mech, size: usize) -> Vec<String> {
    let (slots, slot_size) = geometry_for(size, cfg.slots);
    [
        cfg.exe.display().to_string(),
        "child".into(),
        "--role".into(),
        role.into(),
        "--mech".into(),
        mech.name().into(),
        "--size".into(),
        size.to_string(),
        "--secs".into(),
        cfg.secs.to_string(),
        "--slots".into(),
        slots.to_string(),
        "--slot-size".into(),
        slot_size.to_string(),
        "--batch".into(),
        cfg.batch.to_string(),
    ]
    .into()
}

fn add(argv: &mut Vec<String>, flag: &str, value: impl ToString) {
    argv.push(flag.into());
    argv.push(value.to_string());
}

pub(crate) fn combine(results: &[runner::Fields], producers: usize) -> Measure {
    let get = |f: &runner::Fields, k: &str| f.get(k).copied().unwrap_or(0.0);
    let (prod, cons) = results.split_at(producers);
    let t0 = prod.iter().map(|f| get(f, "t0")).fold(f64::MAX, f64::min);
    let t1 = cons.iter().map(|f| get(f, "t1")).fold(0.0, f64::max);
    let us = |k: &str| results.iter().find_map(|f| f.get(k)).map(|ns| ns / 1e3);
    Measure {
        frames: cons.iter().map(|f| get(f, "frames")).sum(),
        bytes: cons.iter().map(|f| get(f, "bytes")).sum(),
        secs: ((t1 - t0) / 1e9).max(1e-9),
        cpu_secs: results.iter().map(|f| get(f, "cpu_ns")).sum::<f64>() / 1e9,
        rss_kib: results
            .iter()
            .map(|f| get(f, "maxrss_kib") as u64)
            .max()
            .unwrap_or(0),
        p50_us: us("p50_ns"),
        p99_us: us("p99_ns"),
        reader_cpu_secs: None,
    }
}

/// Generous upper bound for one group: the streaming time plus start-up, teardown
/// and the library's 100 ms polls.
pub(crate) fn limit(cfg: &Config) -> Duration {
    Duration::from_secs_f64(cfg.secs * 4.0 + 60.0)
}

/// One streaming run: `writers` producers and `readers` consumers of `mech`.
pub fn transport_once(
    cfg: &Config,
    mech: Mech,
    size: usize,
    place: Placement,
    writers: usize,
    readers: usize,
) -> Res<Measure> {
    let mut guard = KeyGuard::default();
    let scratch = Scratch::new(mech.name())?;
    let mut _lockstep: Option<Segment> = None;
    let mut extra: Vec<(String, String)> = Vec::new();
    match mech {
        Mech::Ring => {
            let key = fresh_key()?;
            guard.0.push(key);
            extra.push(("--key".into(), key.to_string()));
            if writers > 1 || readers > 1 {
                extra.push(("--shared".into(), String::new()));
            }
        }
        Mech::LockStep => {
            // The baseline has no session: the parent makes the segment (length word
            // plus one frame-sized buffer) and the two semaphores, EMPTY = 1, FULL = 0.
            let key = fresh_key()?;
            guard.0.push(key);
            let seg = Segment::create_exclusive(key, LOCKSTEP_DATA + size, 0o600)?
                .ok_or("lock-step key already in use")?;
            let sems = SemaphoreSet::create_exclusive(key, LOCKSTEP_NAMES, 0o600)?
                .ok_or("lock-step key already in use")?;
            sems.set_values(&[1, 0])?;
            _lockstep = Some(seg);
            extra.push(("--key".into(), key.to_string()));
        }
        Mech::PipeWrite | Mech::PipeBuffered => {
            let p = scratch.fifo("data")?;
            extra.push(("--path".into(), p.display().to_string()));
        }
        Mech::Socket => {
            extra.push((
                "--path".into(),
                scratch.0.join("sock").display().to_string(),
            ));
        }
    }
    let mut specs = Vec::new();
    for (role, count) in [("producer", writers), ("consumer", readers)] {
        for i in 0..count {
            let mut argv = child_argv(cfg, role, mech, size);
            for (k, v) in &extra {
                argv.push(k.clone());
                if !v.is_empty() {
                    argv.push(v.clone());
                }
            }
            if let Some(cpu) = place.cpu(role == "producer") {
                add(&mut argv, "--cpu", cpu);
            }
            // The ring's first writer creates the session; readers then find it.
            let first = mech == Mech::Ring && role == "producer" && i == 0;
            specs.push(Spec { argv, first });
        }
    }
    let results = runner::run_group(&specs, limit(cfg))?;
    Ok(combine(&results, writers))
}

/// One ping-pong run of `mech` (ring or pipe-write), 64-byte messages.
/// `spin_us`: the ring's opt-in spin before sleeping (0: none).
pub fn latency_once(
    cfg: &Config,
    mech: Mech,
    size: usize,
    place: Placement,
    spin_us: u64,
) -> Res<Measure> {
    let mut guard = KeyGuard::default();
    let scratch = Scratch::new("ping")?;
    let mut specs = Vec::new();
    let (k1, k2) = (fresh_key()?, fresh_key()?);
    guard.0.extend([k1, k2]);
    let (p1, p2) = if mech == Mech::Ring {
        (None, None)
    } else {
        (Some(scratch.fifo("ping")?), Some(scratch.fifo("pong")?))
    };
    for (role, producer_side) in [("ping", true), ("pong", false)] {
        let mut argv = child_argv(cfg, role, mech, size);
        // A tiny ring: one message in flight each way.
        let pos = argv.iter().position(|a| a == "--slots").unwrap_or(0);
        argv[pos + 1] = "16".into();
        add(&mut argv, "--iters", cfg.ping_iters);
        if mech == Mech::Ring {
            add(&mut argv, "--spin-us", spin_us);
        }
        match (&p1, &p2) {
            (Some(a), Some(b)) => {
                add(&mut argv, "--path", a.display());
                add(&mut argv, "--path2", b.display());
            }
            _ => {
                add(&mut argv, "--key", k1);
                add(&mut argv, "--key2", k2);
            }
        }
        if let Some(cpu) = place.cpu(producer_side) {
            add(&mut argv, "--cpu", cpu);
        }
        specs.push(Spec { argv, first: false });
    }
    let results = runner::run_group(&specs, limit(cfg))?;
    Ok(combine(&results, 1))
}

/// The median run of `runs` by bytes/s, with the slowest and fastest rates (bytes/s).
pub fn median_range(mut runs: Vec<Measure>) -> Option<(Measure, f64, f64)> {
    let rates: Vec<f64> = runs.iter().map(|m| m.bytes / m.secs).collect();
    let i = median_index(&rates)?;
    let lo = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = rates.iter().copied().fold(0.0, f64::max);
    Some((runs.swap_remove(i), lo, hi))
}

/// Runs `once` `reps` times and keeps the median run (by bytes/s, or by p50 latency).
pub fn median_of(
    reps: usize,
    latency: bool,
    mut once: impl FnMut() -> Res<Measure>,
) -> Res<Measure> {
    let mut runs = Vec::new();
    for _ in 0..reps.max(1) {
        runs.push(once()?);
    }
    let keys: Vec<f64> = runs
        .iter()
        .map(|m| {
            if latency {
                m.p50_us.unwrap_or(0.0)
            } else {
                m.bytes / m.secs
            }
        })
        .collect();
    let i = median_index(&keys).unwrap_or(0);
    Ok(runs.swap_remove(i))
}

/// Single-thread memcpy bandwidth (bytes/s) for `size`-byte copies of a hot buffer,
/// over about `budget` of wall time.
pub fn memcpy_bw(size: usize, budget: Duration) -> f64 {
    let src = vec![0x5au8; size];
    let mut dst = vec![0u8; size];
    let per_check = ((64 << 20) / size).max(1);
    let start = Instant::now();
    let mut copies = 0u64;
    while start.elapsed() < budget {
        for _ in 0..per_check {
            dst.copy_from_slice(std::hint::black_box(&src));
            std::hint::black_box(&mut dst);
        }
        copies += per_check as u64;
    }
    copies as f64 * size as f64 / start.elapsed().as_secs_f64()
}

/// A table row from a measurement.
pub fn row(section: &'static str, mech: &str, size: usize, place: Placement, m: &Measure) -> Row {
    let gib = m.bytes / f64::from(1u32 << 30);
    Row {
        section,
        mechanism: mech.to_string(),
        size: size as u64,
        placement: place.name(),
        msgs: m.frames / m.secs,
        mbps: m.bytes / m.secs / 1e6,
        ratio: None,
        cpu_s_per_gib: (gib > 0.0).then(|| m.cpu_secs / gib),
        reader_cpu_s_per_gib: m.reader_cpu_secs.filter(|_| gib > 0.0).map(|c| c / gib),
        rss_kib: Some(m.rss_kib),
        p50_us: m.p50_us,
        p99_us: m.p99_us,
        secs: m.secs,
        bytes: m.bytes as u64,
        ..Row::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_range_keeps_the_median_run_and_the_extremes() {
        let m = |bytes: f64| Measure {
            bytes,
            secs: 1.0,
            ..Measure::default()
        };
        let (mid, lo, hi) = median_range(vec![m(3.0), m(1.0), m(2.0)]).expect("three runs");
        assert_eq!((mid.bytes, lo, hi), (2.0, 1.0, 3.0));
        assert!(median_range(Vec::new()).is_none());
    }

    #[test]
    fn geometry_holds_the_frame() {
        assert_eq!(geometry_for(64, None), (4096, 128));
        assert_eq!(geometry_for(4096, None), (1008, 4160));
        assert_eq!(geometry_for(1 << 20, None), (16, (1 << 20) + 64));
        assert_eq!(geometry_for(64, Some(4096)).0, 4096);
    }
}
