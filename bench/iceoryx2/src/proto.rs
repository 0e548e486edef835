//! shm-bench's child protocol and measuring helpers, the same as its own children's
//! (crates/bench/src/child.rs and stats.rs): `ready`, wait for `go`, the measured
//! part, one `result` line; CLOCK_MONOTONIC times, RUSAGE_SELF CPU and peak RSS.

use nix::sys::resource::{getrusage, UsageWho};
use nix::time::{clock_gettime, ClockId};
use std::io::{BufRead, Write};

/// Errors: anything printable.
pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Extra `key=value` fields of a result line.
pub type Extra = Vec<(&'static str, u64)>;

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process on the machine.
pub fn mono_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Own user + system CPU time in ns, and peak RSS in KiB.
fn rusage() -> (u64, u64) {
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let ns = |t: nix::sys::time::TimeVal| {
                t.tv_sec() as u64 * 1_000_000_000 + t.tv_usec() as u64 * 1000
            };
            (
                ns(u.user_time()) + ns(u.system_time()),
                u.max_rss().max(0) as u64,
            )
        }
        Err(_) => (0, 0),
    }
}

/// Pins the calling process to `cpu`.
pub fn pin(cpu: usize) -> Res<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)?;
    Ok(())
}

/// Prints `ready`, then blocks until the parent says `go`.
fn ready_then_wait() -> Res<()> {
    println!("ready");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != "go" {
        return Err(format!("expected `go` from the parent, got {line:?}").into());
    }
    Ok(())
}

/// Runs `work` (given its start time t0) between `ready`/`go` and the result line.
/// `work` returns frames, bytes and extra fields.
pub fn measured(work: impl FnOnce(u64) -> Res<(u64, u64, Extra)>) -> Res<()> {
    ready_then_wait()?;
    let (cpu0, _) = rusage();
    let t0 = mono_ns();
    let (frames, bytes, extra) = work(t0)?;
    let t1 = mono_ns();
    let (cpu1, maxrss_kib) = rusage();
    let mut line = format!(
        "result frames={frames} bytes={bytes} t0={t0} t1={t1} cpu_ns={} maxrss_kib={maxrss_kib}",
        cpu1.saturating_sub(cpu0)
    );
    for (k, v) in &extra {
        line.push_str(&format!(" {k}={v}"));
    }
    println!("{line}");
    std::io::stdout().flush()?;
    Ok(())
}

/// The `p`-th percentile of an ascending slice, nearest rank (as shm-bench's stats.rs).
fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Round-trip times in ns -> the ping's extra fields, named as the ring's ping names them.
pub fn latency_fields(mut rtt: Vec<u64>) -> Extra {
    rtt.sort_unstable();
    let mean = rtt.iter().sum::<u64>() / rtt.len().max(1) as u64;
    vec![
        ("p50_ns", percentile(&rtt, 50.0).unwrap_or(0)),
        ("p99_ns", percentile(&rtt, 99.0).unwrap_or(0)),
        ("mean_ns", mean),
        ("samples", rtt.len() as u64),
    ]
}

/// Warm-up round trips before the measured ones (as the ring's ping).
pub fn warmup(iters: u32) -> u32 {
    (iters / 10).max(100)
}

/// A frame's worth of recognisable, non-zero bytes (as shm-bench's payload).
pub fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8 + 1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_fields() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        let f = latency_fields(vec![3, 1, 2]);
        assert_eq!(f[0], ("p50_ns", 2));
        assert_eq!(f[3], ("samples", 3));
        assert_eq!(warmup(20_000), 2_000);
        assert_eq!(warmup(10), 100);
    }
}
