//! The benchmark's child processes: one side of one mechanism each.
//!
//! The parent runs `shm-bench child ...` (never `fork` in a possibly multithreaded
//! process). A child sets itself up (joins the ring, opens the FIFO, connects the
//! socket, attaches the lock-step segment), pins itself if asked, prints `ready`,
//! waits for `go` on stdin so that every side starts together, does its work, and
//! prints one `result k=v ...` line: counts, CLOCK_MONOTONIC start and end (one clock
//! for all processes), and its own CPU time and peak RSS over the measured part.

use crate::stats::{mono_ns, percentile, rusage};
use shm_common::ring::{Batch, Consumer, Producer, Received};
use shm_common::segment::{self, Segment};
use shm_common::semaphore::{self, Applied, Patience, SemOp, SemaphoreSet, Why};
use shm_common::session::{OpenOptions, Role, Session};
use shm_common::{Geometry, IpcKey};
use std::io::{BufRead, BufWriter, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Errors of the harness: anything printable.
pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The lock-step baseline's two semaphores: the textbook pair.
pub const LOCKSTEP_NAMES: &[&str] = &["EMPTY", "FULL"];
const EMPTY: u16 = 0;
const FULL: u16 = 1;
/// The lock-step segment: a u64 length at 0, the one buffer from 64 on.
pub const LOCKSTEP_DATA: usize = 64;
/// Length value that tells the lock-step consumer the stream is over.
const LOCKSTEP_END: u64 = u64::MAX;

/// The ways of moving frames that the harness compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mech {
    /// shm_common's ring, Producer/Consumer with batching.
    Ring,
    /// A pipe (FIFO), one write() per frame.
    PipeWrite,
    /// A pipe through a 64 KiB BufWriter (one pipe buffer per write).
    PipeBuffered,
    /// A Unix stream socket, one write() per frame.
    Socket,
    /// One shared buffer, two semaphores strictly alternating.
    LockStep,
}

impl Mech {
    /// Every mechanism, in table order.
    pub const ALL: [Mech; 5] = [
        Mech::Ring,
        Mech::PipeWrite,
        Mech::PipeBuffered,
        Mech::Socket,
        Mech::LockStep,
    ];

    /// The name used on the command line, in the table and in the files.
    pub fn name(self) -> &'static str {
        match self {
            Mech::Ring => "ring",
            Mech::PipeWrite => "pipe-write",
            Mech::PipeBuffered => "pipe-buffered",
            Mech::Socket => "unix-socket",
            Mech::LockStep => "lockstep-shm",
        }
    }

    /// Parses [`Mech::name`].
    pub fn parse(s: &str) -> Result<Mech, String> {
        Mech::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown mechanism {s:?}"))
    }
}

/// `shm-bench child`: hidden; what one child process does.
#[derive(clap::Args, Debug, Clone)]
pub struct ChildArgs {
    /// producer | consumer | ping | pong
    #[arg(long)]
    pub role: String,
    /// ring | pipe-write | pipe-buffered | unix-socket | lockstep-shm
    #[arg(long, value_parser = Mech::parse)]
    pub mech: Mech,
    /// Frame (message) size in bytes.
    #[arg(long)]
    pub size: usize,
    /// Producer: stop starting new frames after this many seconds.
    #[arg(long, default_value_t = 0.5)]
    pub secs: f64,
    /// IPC key (ring, lock-step); for ping/pong the key of the ping direction.
    #[arg(long, value_parser = IpcKey::parse)]
    pub key: Option<IpcKey>,
    /// Ping/pong: the key of the pong direction.
    #[arg(long, value_parser = IpcKey::parse)]
    pub key2: Option<IpcKey>,
    /// FIFO or socket path; for ping/pong the ping direction's FIFO.
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// Ping/pong: the pong direction's FIFO.
    #[arg(long)]
    pub path2: Option<PathBuf>,
    /// Pin this process to one CPU.
    #[arg(long)]
    pub cpu: Option<usize>,
    /// Ring geometry: slots.
    #[arg(long, default_value_t = 1024)]
    pub slots: u32,
    /// Ring geometry: bytes per slot, frame header included.
    #[arg(long, default_value_t = 4160)]
    pub slot_size: u32,
    /// Ring: most frames per semop.
    #[arg(long, default_value_t = 64)]
    pub batch: u32,
    /// Ring: a shared (many writers, many readers) session.
    #[arg(long)]
    pub shared: bool,
    /// Ping: measured round trips (after a warm-up of 1/10 as many, at least 100).
    #[arg(long, default_value_t = 10_000)]
    pub iters: u32,
    /// Ring consumers: spin this many microseconds before sleeping (0: never); the
    /// default is the `reader` binary's, so the streaming rows measure the ring as
    /// it ships.
    #[arg(long, default_value_t = shm_common::ring::DEFAULT_SPIN_MICROS)]
    pub spin_us: u64,
}

/// Pins the calling process to `cpu` (sched_setaffinity on pid 0: ourselves).
pub fn pin(cpu: usize) -> Res<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)?;
    Ok(())
}

/// What a child measured; printed as the `result` line.
#[derive(Debug, Default)]
struct Outcome {
    frames: u64,
    bytes: u64,
    t0: u64,
    t1: u64,
    cpu_ns: u64,
    maxrss_kib: u64,
    extra: Vec<(&'static str, u64)>,
}

fn note(m: String) {
    // A reader started a moment before its writer says so once; that is expected here.
    if !m.starts_with("waiting for a writer") {
        eprintln!("shm-bench child: {m}");
    }
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

/// Runs a measured section between `ready_then_wait` and the result line.
fn measured(work: impl FnOnce(u64) -> Res<(u64, u64, Vec<(&'static str, u64)>)>) -> Res<()> {
    ready_then_wait()?;
    let (cpu0, _) = rusage(false);
    let t0 = mono_ns();
    let (frames, bytes, extra) = work(t0)?;
    let t1 = mono_ns();
    let (cpu1, maxrss_kib) = rusage(false);
    let o = Outcome {
        frames,
        bytes,
        t0,
        t1,
        cpu_ns: cpu1.saturating_sub(cpu0),
        maxrss_kib,
        extra,
    };
    let mut line = format!(
        "result frames={} bytes={} t0={} t1={} cpu_ns={} maxrss_kib={}",
        o.frames, o.bytes, o.t0, o.t1, o.cpu_ns, o.maxrss_kib
    );
    for (k, v) in &o.extra {
        line.push_str(&format!(" {k}={v}"));
    }
    println!("{line}");
    std::io::stdout().flush()?;
    Ok(())
}

fn need<T: Clone>(v: &Option<T>, what: &str) -> Res<T> {
    v.clone()
        .ok_or_else(|| format!("--{what} is required here").into())
}

/// A frame's worth of recognisable, non-zero bytes.
fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8 + 1).collect()
}

/// The child's main: dispatches on role and mechanism.
pub fn run(a: &ChildArgs) -> Res<()> {
    if let Some(cpu) = a.cpu {
        pin(cpu)?;
    }
    let secs_ns = (a.secs * 1e9) as u64;
    match (a.role.as_str(), a.mech) {
        ("producer", Mech::Ring) => ring_producer(a, secs_ns),
        ("consumer", Mech::Ring) => ring_consumer(a),
        ("producer", Mech::LockStep) => lockstep_producer(a, secs_ns),
        ("consumer", Mech::LockStep) => lockstep_consumer(a),
        ("producer", m) => stream_producer(a, m, secs_ns),
        ("consumer", _) => stream_consumer(a),
        ("ping", Mech::Ring) => ring_ping(a),
        ("pong", Mech::Ring) => ring_pong(a),
        ("ping", Mech::PipeWrite) => pipe_ping(a),
        ("pong", Mech::PipeWrite) => pipe_pong(a),
        (r, m) => Err(format!("no role {r:?} for {}", m.name()).into()),
    }
}

fn ring_options(a: &ChildArgs, key: IpcKey, role: Role) -> Res<OpenOptions> {
    Ok(OpenOptions {
        key,
        role,
        geometry: Geometry::new(a.slots, a.slot_size)?,
        mode: 0o600,
        persist: false,
        shared: a.shared,
    })
}

/// Leaves the session whatever `result` is, keeping the first error.
fn leave<T>(session: &mut Session, result: Res<T>) -> Res<T> {
    match result {
        Ok(v) => {
            session.leave(true)?;
            Ok(v)
        }
        Err(e) => {
            let _ = session.leave(false);
            Err(e)
        }
    }
}

fn ring_producer(a: &ChildArgs, secs_ns: u64) -> Res<()> {
    let opts = ring_options(a, need(&a.key, "key")?, Role::Writer)?;
    let mut session = Session::open(&opts, &note)?;
    let buf = payload(a.size);
    let result = measured(|t0| {
        let notes: &(dyn Fn(String) + Sync) = &note;
        let mut p = Producer::new(&session, a.batch, notes);
        let frames: Vec<&[u8]> = vec![&buf[..]; a.batch.max(1) as usize];
        let deadline = t0 + secs_ns;
        while mono_ns() < deadline {
            p.send(&frames)?;
        }
        p.finish()?;
        let (f, b) = p.totals();
        Ok((f, b, Vec::new()))
    });
    leave(&mut session, result)
}

fn ring_consumer(a: &ChildArgs) -> Res<()> {
    let mut opts = ring_options(a, need(&a.key, "key")?, Role::Reader)?;
    // A reader takes the geometry from the header; this one only has to be valid.
    opts.geometry = Geometry {
        slots: 1,
        slot_size: 64,
    };
    let mut session = Session::open(&opts, &note)?;
    let result = measured(|_| {
        let notes: &(dyn Fn(String) + Sync) = &note;
        let mut c = Consumer::new(&session, a.batch, notes);
        c.set_spin(Some(Duration::from_micros(a.spin_us)));
        let mut batch = Batch::default();
        loop {
            match c.recv(&mut batch) {
                Ok(Received::Frames) => {}
                Ok(Received::EndOfStream) => break,
                Err(e) => return Err(e.into()),
            }
        }
        let (f, b) = c.totals();
        Ok((f, b, Vec::new()))
    });
    leave(&mut session, result)
}

/// Opens the lock-step objects the parent created at `key`.
fn lockstep_attach(key: IpcKey) -> Res<(Segment, SemaphoreSet)> {
    let shmid = segment::find(key)?.ok_or("no lock-step segment at the key")?;
    let seg = Segment::attach(key, shmid)?;
    let semid = semaphore::find(key)?.ok_or("no lock-step semaphore set at the key")?;
    let sems = SemaphoreSet::open(key, semid, LOCKSTEP_NAMES)?;
    Ok((seg, sems))
}

/// One blocking semop with a 1 s timeout, retried; gives up after 30 s without
/// progress (the peer died: the textbook pair has no other way to notice).
fn lockstep_op(sems: &SemaphoreSet, member: u16, delta: i16) -> Res<()> {
    for _ in 0..30 {
        let op = [SemOp::new(member, delta)];
        let wait = Patience::UpTo(Duration::from_secs(1));
        if sems.apply(&op, wait, Why::per_message("lock-step"))? == Applied::Done {
            return Ok(());
        }
    }
    Err("lock-step peer made no progress for 30 s".into())
}

fn lockstep_producer(a: &ChildArgs, secs_ns: u64) -> Res<()> {
    let (seg, sems) = lockstep_attach(need(&a.key, "key")?)?;
    let buf = payload(a.size);
    measured(|t0| {
        let deadline = t0 + secs_ns;
        let mut frames = 0u64;
        loop {
            let done = mono_ns() >= deadline;
            lockstep_op(&sems, EMPTY, -1)?;
            if done {
                seg.write_bytes(0, &LOCKSTEP_END.to_le_bytes())?;
                lockstep_op(&sems, FULL, 1)?;
                break;
            }
            seg.write_bytes(LOCKSTEP_DATA, &buf)?;
            seg.write_bytes(0, &(buf.len() as u64).to_le_bytes())?;
            lockstep_op(&sems, FULL, 1)?;
            frames += 1;
        }
        Ok((frames, frames * a.size as u64, Vec::new()))
    })
}

fn lockstep_consumer(a: &ChildArgs) -> Res<()> {
    let (seg, sems) = lockstep_attach(need(&a.key, "key")?)?;
    let mut buf = vec![0u8; a.size];
    measured(|_| {
        let (mut frames, mut bytes) = (0u64, 0u64);
        loop {
            lockstep_op(&sems, FULL, -1)?;
            let len = seg.read_u64(0)?;
            if len == LOCKSTEP_END {
                break;
            }
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l <= buf.len())
                .ok_or("lock-step length out of range")?;
            seg.read_bytes(LOCKSTEP_DATA, &mut buf[..len])?;
            lockstep_op(&sems, EMPTY, 1)?;
            frames += 1;
            bytes += len as u64;
        }
        Ok((frames, bytes, Vec::new()))
    })
}

/// Connects to the consumer's listening socket, retrying while it starts.
fn connect(path: &PathBuf) -> Res<UnixStream> {
    let start = Instant::now();
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return Ok(s),
            Err(e) if start.elapsed() > Duration::from_secs(10) => return Err(e.into()),
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

fn stream_producer(a: &ChildArgs, mech: Mech, secs_ns: u64) -> Res<()> {
    let path = need(&a.path, "path")?;
    // Opening a FIFO for writing blocks until the reader opens it: both are then set.
    let mut out: Box<dyn Write> = match mech {
        Mech::Socket => Box::new(connect(&path)?),
        Mech::PipeBuffered => Box::new(BufWriter::with_capacity(
            64 << 10,
            std::fs::OpenOptions::new().write(true).open(&path)?,
        )),
        _ => Box::new(std::fs::OpenOptions::new().write(true).open(&path)?),
    };
    let buf = payload(a.size);
    // Check the clock every few frames: often enough for slow mechanisms, rarely
    // enough to cost nothing for fast ones.
    let per_check = ((256 << 10) / a.size.max(1)).clamp(1, 64);
    measured(|t0| {
        let deadline = t0 + secs_ns;
        let mut frames = 0u64;
        while mono_ns() < deadline {
            for _ in 0..per_check {
                out.write_all(&buf)?;
            }
            frames += per_check as u64;
        }
        out.flush()?;
        drop(out);
        Ok((frames, frames * a.size as u64, Vec::new()))
    })
}

fn stream_consumer(a: &ChildArgs) -> Res<()> {
    let path = need(&a.path, "path")?;
    let mut input: Box<dyn Read> = match a.mech {
        Mech::Socket => {
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(&path)?;
            let (s, _) = listener.accept()?;
            Box::new(s)
        }
        _ => Box::new(std::fs::File::open(&path)?),
    };
    // A byte-stream reader reads in large chunks whatever the writer's frame size:
    // generous to the pipe and the socket, so the ratios against them are conservative.
    let mut buf = vec![0u8; 1 << 20];
    measured(|_| {
        let mut bytes = 0u64;
        loop {
            match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => bytes += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok((bytes / a.size.max(1) as u64, bytes, Vec::new()))
    })
}

/// Round-trip times in ns -> the extra fields of the ping's result line.
fn latency_fields(mut rtt: Vec<u64>) -> Vec<(&'static str, u64)> {
    rtt.sort_unstable();
    let mean = rtt.iter().sum::<u64>() / rtt.len().max(1) as u64;
    vec![
        ("p50_ns", percentile(&rtt, 50.0).unwrap_or(0)),
        ("p99_ns", percentile(&rtt, 99.0).unwrap_or(0)),
        ("mean_ns", mean),
        ("samples", rtt.len() as u64),
    ]
}

fn warmup(iters: u32) -> u32 {
    (iters / 10).max(100)
}

/// Ping over two rings: writer at `key` (ping direction), reader at `key2`.
/// The two sessions of one ping-pong side: we write at `out_key`, read at `in_key`.
/// If the second cannot be opened, the first is left again before the error returns.
fn ring_pair(a: &ChildArgs, out_key: IpcKey, in_key: IpcKey) -> Res<(Session, Session)> {
    let mut out = Session::open(&ring_options(a, out_key, Role::Writer)?, &note)?;
    let mut in_opts = ring_options(a, in_key, Role::Reader)?;
    in_opts.geometry = Geometry {
        slots: 1,
        slot_size: 64,
    };
    match Session::open(&in_opts, &note) {
        Ok(inp) => Ok((out, inp)),
        Err(e) => leave(&mut out, Err(e.into())),
    }
}

fn ring_ping(a: &ChildArgs) -> Res<()> {
    let (mut out, mut inp) = ring_pair(a, need(&a.key, "key")?, need(&a.key2, "key2")?)?;
    let msg = payload(a.size);
    let result = measured(|_| {
        let notes: &(dyn Fn(String) + Sync) = &note;
        let mut p = Producer::new(&out, 1, notes);
        let mut c = Consumer::new(&inp, 1, notes);
        c.set_spin(Some(Duration::from_micros(a.spin_us)));
        let mut batch = Batch::default();
        let mut rtt = Vec::with_capacity(a.iters as usize);
        for i in 0..warmup(a.iters) + a.iters {
            let t = Instant::now();
            p.send(&[&msg])?;
            loop {
                if c.recv(&mut batch)? == Received::EndOfStream {
                    return Err("pong ended early".into());
                }
                if !batch.frames.is_empty() {
                    break;
                }
            }
            if i >= warmup(a.iters) {
                rtt.push(t.elapsed().as_nanos() as u64);
            }
        }
        p.finish()?;
        while c.recv(&mut batch)? == Received::Frames {}
        let n = u64::from(a.iters);
        Ok((n, n * a.size as u64, latency_fields(rtt)))
    });
    let result = leave(&mut inp, result);
    leave(&mut out, result)
}

/// Pong over two rings: writer at `key2`, reader at `key`; echoes until FINAL.
fn ring_pong(a: &ChildArgs) -> Res<()> {
    let (mut out, mut inp) = ring_pair(a, need(&a.key2, "key2")?, need(&a.key, "key")?)?;
    let result = measured(|_| {
        let notes: &(dyn Fn(String) + Sync) = &note;
        let mut p = Producer::new(&out, 1, notes);
        let mut c = Consumer::new(&inp, 1, notes);
        c.set_spin(Some(Duration::from_micros(a.spin_us)));
        let mut batch = Batch::default();
        let mut n = 0u64;
        while c.recv(&mut batch)? == Received::Frames {
            for d in &batch.frames {
                p.send(&[&batch.data[d.start..d.end]])?;
                n += 1;
            }
        }
        p.finish()?;
        Ok((n, n * a.size as u64, Vec::new()))
    });
    let result = leave(&mut inp, result);
    leave(&mut out, result)
}

/// Ping over two FIFOs. Both sides open `path` first, then `path2`, so the blocking
/// FIFO opens pair up without deadlock.
fn pipe_ping(a: &ChildArgs) -> Res<()> {
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .open(need(&a.path, "path")?)?;
    let mut inp = std::fs::File::open(need(&a.path2, "path2")?)?;
    let msg = payload(a.size);
    let mut back = vec![0u8; a.size];
    measured(|_| {
        let mut rtt = Vec::with_capacity(a.iters as usize);
        for i in 0..warmup(a.iters) + a.iters {
            let t = Instant::now();
            out.write_all(&msg)?;
            inp.read_exact(&mut back)?;
            if i >= warmup(a.iters) {
                rtt.push(t.elapsed().as_nanos() as u64);
            }
        }
        let n = u64::from(a.iters);
        Ok((n, n * a.size as u64, latency_fields(rtt)))
    })
}

fn pipe_pong(a: &ChildArgs) -> Res<()> {
    let mut inp = std::fs::File::open(need(&a.path, "path")?)?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .open(need(&a.path2, "path2")?)?;
    let mut buf = vec![0u8; a.size];
    measured(|_| {
        let mut n = 0u64;
        loop {
            match inp.read_exact(&mut buf) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e.into()),
            }
            out.write_all(&buf)?;
            n += 1;
        }
        Ok((n, n * a.size as u64, Vec::new()))
    })
}
