//! Chaos: a seeded random schedule of faults (kill -9, SIGINT, SIGTERM, SIGSTOP, or
//! none) hitting either side at a random point of streams of random sizes through
//! rings of random geometry. Every run checks: no hang, documented exit codes,
//! delivered output a byte-exact prefix (or the whole) of the input, nothing left at
//! its key (or a new pair recovers it).
//!
//! `CHAOS_SEED` (default: the clock) and `CHAOS_RUNS` (default 30) choose the
//! schedule; `CHAOS_ONLY=i` replays run `i` of a seed alone. The seed is printed first
//! and in the summary line, so any failure reproduces with
//! `CHAOS_SEED=<seed> CHAOS_ONLY=<run> cargo test -p e2e --test chaos -- --nocapture`.
mod support;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::scenario::*;
use support::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

#[derive(Debug, Clone, Copy)]
enum Run {
    /// A plain transfer: everything delivered, both exit 0.
    Clean {
        slots: u32,
        slot_size: u32,
        len: usize,
        seed: u64,
        reader_first: bool,
    },
    /// SIGSTOP one side for `pause_ms`, then SIGCONT: completes exactly.
    Stop {
        side: Side,
        slots: u32,
        slot_size: u32,
        len: usize,
        seed: u64,
        pause_ms: u64,
    },
    /// kill -9 / SIGINT / SIGTERM at a point.
    Fault(Plan),
}

impl Run {
    fn label(&self) -> &'static str {
        match self {
            Run::Clean { .. } => "none",
            Run::Stop { .. } => "sigstop",
            Run::Fault(p) => match p.sig {
                Signal::SIGKILL => "kill9",
                Signal::SIGINT => "sigint",
                _ => "sigterm",
            },
        }
    }
}

fn random_len(rng: &mut Rng, max: usize) -> usize {
    // Log-uniform: as many tiny streams as large ones.
    let bits = rng.below(22) as u32;
    (rng.next() as usize % (1usize << bits).max(1)).min(max)
}

fn draw(rng: &mut Rng) -> Run {
    let slots = rng.pick(&[1u32, 2, 3, 4, 8, 16, 64]);
    let slot_size = rng.pick(&[128u32, 192, 256, 1024, 4096, 16384]);
    let seed = rng.next();
    let kind = rng.below(10);
    if kind == 0 {
        return Run::Clean {
            slots,
            slot_size,
            len: random_len(rng, 2 << 20),
            seed,
            reader_first: rng.below(2) == 0,
        };
    }
    if kind == 1 {
        let side = rng.pick(&[Side::Writer, Side::Reader]);
        return Run::Stop {
            side,
            slots,
            slot_size,
            len: random_len(rng, 1 << 20).max(2),
            seed,
            pause_ms: 100 + rng.below(1400),
        };
    }
    let sig = rng.pick(&[
        Signal::SIGKILL,
        Signal::SIGKILL,
        Signal::SIGINT,
        Signal::SIGTERM,
    ]);
    let side = rng.pick(&[Side::Writer, Side::Reader]);
    let point = rng.pick(&[
        Point::BeforeAttach,
        Point::MidStream,
        Point::FullRing,
        Point::EmptyRing,
        Point::EndOfStream,
    ]);
    let mut p = Plan {
        side,
        point,
        sig,
        slots,
        slot_size,
        len: random_len(rng, 2 << 20),
        seed,
        delay_us: 0,
        variant: false,
    };
    let payload = (p.slot_size - 32) as usize;
    match point {
        Point::BeforeAttach => {
            p.delay_us = if side == Side::Writer {
                rng.below(20_000)
            } else {
                20_000 + rng.below(200_000)
            };
        }
        Point::MidStream => {
            // Enough frames that a quarter of them is a moment, not the end.
            p.len = p.len.max(64 * payload).clamp(64 << 10, 4 << 20);
        }
        Point::FullRing => {
            p.slots = p.slots.min(4);
            p.slot_size = p.slot_size.min(1024);
            let ring = p.slots as usize * (p.slot_size as usize - 32);
            p.len = p.len.max(4 * ring + 1).min(1 << 20);
            p.variant = side == Side::Writer && rng.below(2) == 0;
        }
        Point::EmptyRing => p.len = p.len.max(2),
        Point::EndOfStream => {
            p.delay_us = rng.below(3_000);
            if side == Side::Writer {
                // The whole stream and its FINAL frame must fit in the ring: the
                // scenario feeds it from a regular file, read in whole slots.
                p.slots = p.slots.max(2);
                p.len = p.len.clamp(1, (p.slots as usize - 1) * payload);
            } else {
                p.len = p.len.clamp(1, 256 << 10);
            }
        }
    }
    Run::Fault(p)
}

fn execute(run: &Run, recovered: &mut u64) {
    let k = TestKey::new();
    match *run {
        Run::Clean {
            slots,
            slot_size,
            len,
            seed,
            reader_first,
        } => {
            let data = pseudo_random(len, seed);
            let mut wc = k.writer();
            wc.args([
                "--slots",
                &slots.to_string(),
                "--slot-size",
                &slot_size.to_string(),
            ]);
            let r = if reader_first {
                Some(Proc::spawn(k.reader(), std::process::Stdio::null()))
            } else {
                None
            };
            let w = Proc::spawn_fed(wc, data.clone());
            let r = r.unwrap_or_else(|| Proc::spawn(k.reader(), std::process::Stdio::null()));
            let wf = w.wait_ctx(TIMEOUT, "clean writer");
            let rf = r.wait_ctx(TIMEOUT, "clean reader");
            assert_eq!(wf.code(), Some(0), "CODE: clean writer: {}", wf.stderr);
            assert_eq!(rf.code(), Some(0), "CODE: clean reader: {}", rf.stderr);
            assert!(
                rf.stdout == data,
                "TORN: clean run delivered {} of {} bytes",
                rf.stdout.len(),
                data.len()
            );
        }
        Run::Stop {
            side,
            slots,
            slot_size,
            len,
            seed,
            pause_ms,
        } => {
            run_stop(
                &k,
                side,
                slots,
                slot_size,
                len,
                seed,
                Duration::from_millis(pause_ms),
            );
        }
        Run::Fault(p) => {
            let rep = run_fault(&k, &p);
            if rep.recovered {
                *recovered += 1;
            }
        }
    }
    assert!(
        k.in_ipcs() == (false, false),
        "LEAK: objects left at {}: {:?}",
        k.arg(),
        k.in_ipcs()
    );
}

#[test]
fn chaos_schedule() {
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    let runs: usize = std::env::var("CHAOS_RUNS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(30);
    let only: Option<usize> = std::env::var("CHAOS_ONLY")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    println!(
        "chaos: seed={seed} runs={runs} (replay one run with CHAOS_SEED={seed} CHAOS_ONLY=<i>)"
    );
    let mut rng = Rng(seed | 1);
    let plans: Vec<Run> = (0..runs).map(|_| draw(&mut rng)).collect();
    let start = Instant::now();
    let mut faults: BTreeMap<&str, u64> = BTreeMap::new();
    let (mut hangs, mut leaks, mut torn, mut errors, mut recovered, mut done) =
        (0, 0, 0, 0, 0u64, 0);
    let mut failures = Vec::new();
    // Keep the default panic hook's backtraces out of the log: failures are listed below.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for (i, run) in plans.iter().enumerate() {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        *faults.entry(run.label()).or_default() += 1;
        let t = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            execute(run, &mut recovered)
        }));
        done += 1;
        match result {
            Ok(()) => println!("run {i}: ok in {:.2?}: {run:?}", t.elapsed()),
            Err(e) => {
                let msg = panic_text(&*e);
                if msg.starts_with("HANG")
                    || msg.starts_with("SLOW")
                    || msg.contains("did not exit within")
                    || msg.contains("timed out")
                {
                    hangs += 1;
                } else if msg.starts_with("LEAK") || msg.contains("objects left") {
                    leaks += 1;
                } else if msg.starts_with("TORN") || msg.contains("not a prefix") {
                    torn += 1;
                } else {
                    errors += 1;
                }
                println!(
                    "run {i}: FAILED in {:.2?}: {run:?}\n    {}",
                    t.elapsed(),
                    msg.replace('\n', "\n    ")
                );
                failures.push(format!(
                    "run {i} ({run:?}): {}",
                    msg.lines().next().unwrap_or("")
                ));
            }
        }
    }
    std::panic::set_hook(hook);
    let faults_text = faults
        .iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(",");
    println!(
        "chaos: runs={done} seed={seed} faults={faults_text} hangs={hangs} leaks={leaks} torn_or_duplicated={torn} other_errors={errors} recovered_keys={recovered} time={:.1}s",
        start.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {done} chaos runs failed (seed {seed}):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
