//! The checksum section: every CRC-32C kernel this CPU can run, the checksum alone
//! and the reader's fused copy + checksum, against memcpy, at each frame size. One
//! thread, buffers hot in the cache: the ceiling each kernel puts on a side of the
//! ring, whatever the transport does.
//!
//! The machine is shared and noisy, so the candidates are measured side by side: each
//! round measures every candidate at every size once, in turn, and each cell is the
//! median of its rounds. A neighbour's burst then lands on all candidates alike, and
//! the ratios against memcpy (measured in the same rounds) stay meaningful when the
//! absolute numbers move.

use crate::report::Row;
use crate::stats::human_size;
use shm_common::checksum::{self, Kernel};
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// What one row of the table measures.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// `copy_from_slice`: the ceiling for a copy-out design.
    Memcpy,
    /// The CRC alone, as the writer runs it over a slot it has just filled.
    Crc(Kernel),
    /// Copy and CRC in one sweep, as the reader copies a payload out of its slot.
    CopyCrc(Kernel),
}

impl Op {
    fn label(self) -> String {
        match self {
            Op::Memcpy => "memcpy".into(),
            Op::Crc(k) => format!("crc {}", k.name()),
            Op::CopyCrc(k) => format!("copy+crc {}", k.name()),
        }
    }
}

/// Runs `step` (one pass over `size` bytes) for about `budget`; returns bytes/s.
/// The clock is read once per batch of about 256 KiB, so even 64-byte steps are
/// not dominated by it.
fn rate(size: usize, budget: Duration, mut step: impl FnMut()) -> f64 {
    let batch = ((256 << 10) / size.max(1)).max(1);
    let start = Instant::now();
    let mut steps = 0u64;
    loop {
        for _ in 0..batch {
            step();
        }
        steps += batch as u64;
        let t = start.elapsed();
        if t >= budget {
            return steps as f64 * size as f64 / t.as_secs_f64();
        }
    }
}

/// One measurement of `op` on `src` (and `dst`, the same length).
fn measure(op: Op, src: &[u8], dst: &mut [u8], budget: Duration) -> f64 {
    let size = src.len();
    // Each CRC continues the previous one, so no call can be skipped or hoisted.
    let mut crc = 0u32;
    let bw = match op {
        Op::Memcpy => rate(size, budget, || {
            dst.copy_from_slice(black_box(src));
            black_box(&mut *dst);
        }),
        Op::Crc(k) => rate(size, budget, || crc = k.crc32c_append(crc, black_box(src))),
        Op::CopyCrc(k) => rate(size, budget, || {
            crc = k.copy_crc32c(crc, black_box(src), dst);
            black_box(&mut *dst);
        }),
    };
    black_box(crc);
    bw
}

/// The middle value (the upper one of the two for an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Measures every candidate at every size (`quick`: fewer, shorter rounds, well
/// under a second in all). Returns the printed table and one row per cell for the
/// CSV and JSON.
pub fn run(sizes: &[usize], quick: bool) -> (String, Vec<Row>) {
    let (rounds, budget) = if quick {
        (3, Duration::from_millis(3))
    } else {
        (7, Duration::from_millis(20))
    };
    let mut ops = vec![Op::Memcpy];
    for k in checksum::kernels() {
        ops.extend([Op::Crc(k), Op::CopyCrc(k)]);
    }
    let mut buffers: Vec<(Vec<u8>, Vec<u8>)> = sizes
        .iter()
        .map(|&n| ((0..n).map(|i| (i * 131 + 7) as u8).collect(), vec![0u8; n]))
        .collect();
    // samples[size][op]: one rate per round.
    let mut samples = vec![vec![Vec::new(); ops.len()]; sizes.len()];
    for round in 0..=rounds {
        for (s, (src, dst)) in buffers.iter_mut().enumerate() {
            for (o, &op) in ops.iter().enumerate() {
                let bw = measure(op, src, dst, budget);
                // Round 0 only warms up (page faults, caches, clock speed).
                if round > 0 {
                    samples[s][o].push(bw);
                }
            }
        }
    }
    let med: Vec<Vec<f64>> = samples
        .into_iter()
        .map(|per_op| per_op.into_iter().map(median).collect())
        .collect();
    (table(sizes, &ops, &med, rounds), rows(sizes, &ops, &med))
}

fn table(sizes: &[usize], ops: &[Op], med: &[Vec<f64>], rounds: usize) -> String {
    let mut s = String::new();
    let forced = std::env::var(checksum::OVERRIDE_VAR)
        .map(|v| format!(" ({}={v})", checksum::OVERRIDE_VAR))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "GB/s, median of {rounds} interleaved rounds; (x) = against memcpy in the same \
         rounds; in use: {}{forced}",
        checksum::kernel()
    );
    let _ = write!(s, "{:<26}", "kernel");
    for &n in sizes {
        let _ = write!(s, " {:>14}", human_size(n as u64));
    }
    let _ = writeln!(s);
    for (o, op) in ops.iter().enumerate() {
        let _ = write!(s, "{:<26}", op.label());
        for m in med {
            let gbs = m[o] / 1e9;
            let cell = if o == 0 {
                format!("{gbs:.1}")
            } else {
                format!("{gbs:.1} ({:.2}x)", m[o] / m[0])
            };
            let _ = write!(s, " {cell:>14}");
        }
        let _ = writeln!(s);
    }
    s
}

fn rows(sizes: &[usize], ops: &[Op], med: &[Vec<f64>]) -> Vec<Row> {
    let mut out = Vec::new();
    for (o, op) in ops.iter().enumerate() {
        for (&size, m) in sizes.iter().zip(med) {
            let bw = m[o];
            out.push(Row {
                section: "checksum",
                mechanism: op.label(),
                size: size as u64,
                placement: "unpinned",
                msgs: bw / size.max(1) as f64,
                mbps: bw / 1e6,
                ratio: (o > 0 && m[0] > 0.0).then(|| bw / m[0]),
                cpu_s_per_gib: (bw > 0.0).then(|| f64::from(1u32 << 30) / bw),
                rss_kib: None,
                p50_us: None,
                p99_us: None,
                secs: 0.0,
                bytes: 0,
                ..Row::default()
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_run_has_every_kernel_at_every_size() {
        let (t, rows) = run(&[64, 4096], true);
        let n = checksum::kernels().len();
        assert_eq!(rows.len(), (1 + 2 * n) * 2);
        assert!(rows.iter().all(|r| r.mbps > 0.0));
        for k in checksum::kernels() {
            assert!(t.contains(&format!("copy+crc {}", k.name())), "{t}");
        }
    }
}
