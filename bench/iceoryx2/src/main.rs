//! `shm-bench-iceoryx2`: iceoryx2 0.10 as one more transport in `make bench`.
//!
//! Each process is one side of one measurement, driven by `shm-bench` exactly like its
//! own children: it sets up (node, service, ports; the publisher also waits until the
//! subscriber is connected), prints `ready`, waits for `go` on stdin, does its work and
//! prints one `result frames=.. bytes=.. t0=.. t1=.. cpu_ns=.. maxrss_kib=..` line
//! (the ping adds `p50_ns p99_ns mean_ns samples`). Times are CLOCK_MONOTONIC, shared by
//! all processes, so the parent subtracts the publisher's t0 from the subscriber's t1.
//!
//! It lives in its own Cargo workspace (bench/iceoryx2) so that the main workspace,
//! `cargo test --workspace` and `make test` never build iceoryx2. Every iceoryx2 object
//! it makes lives under `--root` and `--prefix`, which the parent picks per run and
//! removes afterwards; the ports, services and node are dropped (and so removed) on
//! every way out of `main`, errors included.
#![forbid(unsafe_code)]

mod ice;
mod proto;

use clap::{Parser, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// One side of one iceoryx2 measurement for shm-bench (ready/go/result on stdio).
#[derive(Parser, Debug, Clone)]
#[command(version)]
pub struct Args {
    /// publisher | subscriber (streaming), ping | pong (latency).
    #[arg(value_enum)]
    pub role: Role,
    /// Service name; both sides of a run pass the same one, unique per run.
    #[arg(long)]
    pub service: String,
    /// iceoryx2 root directory (node and service files); default iceoryx2's own.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Prefix of the shared-memory files in /dev/shm; default iceoryx2's own (iox2_).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Payload bytes per sample.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Publisher: stop starting new samples after this many seconds.
    #[arg(long, default_value_t = 0.5)]
    pub secs: f64,
    /// Subscriber buffer size (samples the publisher may be ahead): shm-bench passes
    /// the ring's slot count for the frame size.
    #[arg(long, default_value_t = 64)]
    pub depth: usize,
    /// What the subscriber does per sample (both sides must agree).
    #[arg(long, value_enum, default_value_t = Work::Touch)]
    pub work: Work,
    /// How the receiving side waits: busy polling, or an iceoryx2 event listener.
    #[arg(long, value_enum, default_value_t = WaitMode::Poll)]
    pub wait: WaitMode,
    /// Streaming with `--wait event`: the publisher notifies once per this many samples
    /// (and after the last one). At most `--depth`, or a full buffer would wait forever.
    #[arg(long, default_value_t = 64)]
    pub notify_every: u64,
    /// Payload alignment in bytes (a power of two; both sides must agree). iceoryx2's
    /// default for `[u8]` is 1; 64 (a cache line) measured slower, 4 KiB samples
    /// 5.1 against 7.9 GB/s on one CPU.
    #[arg(long, default_value_t = 1)]
    pub align: usize,
    /// Polling: empty polls spent spinning before each further one yields the CPU.
    #[arg(long, default_value_t = 100)]
    pub spin: u32,
    /// Ping: measured round trips (after a warm-up of 1/10 as many, at least 100).
    #[arg(long, default_value_t = 10_000)]
    pub iters: u32,
    /// Pin this process to one CPU.
    #[arg(long)]
    pub cpu: Option<usize>,
}

/// The four sides.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Streams samples for `--secs`.
    Publisher,
    /// Receives until the publisher's end marker.
    Subscriber,
    /// Sends, waits for the echo, times the round trip.
    Ping,
    /// Echoes until the ping's end marker.
    Pong,
}

/// Per-sample work on the receiving side.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// CRC-32C over the sample in place (zero copy), then release it.
    Touch,
    /// What our writer and reader do: the publisher puts the payload's CRC-32C in the
    /// user header; the subscriber copies the sample into a private buffer, releases
    /// it, checksums the copy and compares.
    SameWork,
}

/// How the receiving side waits for the next sample.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitMode {
    /// Poll `Subscriber::receive`, spinning, then yielding the CPU between polls.
    Poll,
    /// Block on an iceoryx2 `Listener`; the sender notifies through a `Notifier`.
    Event,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shm-bench-iceoryx2 {:?}: error: {e}", args.role);
            ExitCode::FAILURE
        }
    }
}

fn run(a: &Args) -> proto::Res<()> {
    // iceoryx2 warns on stderr when no config file exists (we pass the config) and when
    // it tidies up after a peer that has just exited; our own errors are printed anyway.
    // IOX2_LOG_LEVEL=warn (or info, debug, trace) brings them back.
    iceoryx2::prelude::set_log_level_from_env_or(iceoryx2::prelude::LogLevel::Error);
    if let Some(cpu) = a.cpu {
        proto::pin(cpu)?;
    }
    if a.size == 0 {
        return Err("--size must be at least 1".into());
    }
    if a.depth == 0 {
        return Err("--depth must be at least 1".into());
    }
    if a.wait == WaitMode::Event
        && matches!(a.role, Role::Publisher | Role::Subscriber)
        && !(1..=a.depth as u64).contains(&a.notify_every)
    {
        return Err(format!("--notify-every must be between 1 and --depth ({})", a.depth).into());
    }
    match a.role {
        Role::Publisher => ice::publisher(a),
        Role::Subscriber => ice::subscriber(a),
        Role::Ping => ice::ping(a),
        Role::Pong => ice::pong(a),
    }
}
