//! End to end: the real `writer` and `reader` binaries moving a page-cached file,
//! against `cat f | cat`, to /dev/null and to a tmpfs file, in the same run.
//!
//! Each run happens inside an intermediary (`shm-bench e2e-run`), a fresh process
//! whose RUSAGE_CHILDREN then covers exactly the two programs of that run: CPU time
//! and peak RSS per run, not accumulated over the whole benchmark.

use crate::bench::{median_of, Measure, Placement};
use crate::child::{pin, Res};
use crate::report::Row;
use crate::runner::{self, exe_dir, fresh_key, KeyGuard, Spec};
use crate::stats::{human_size, mono_ns, rusage};
use shm_common::{semaphore, IpcKey};
use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `shm-bench pin-exec`: hidden; pins itself to a CPU, then becomes the command.
#[derive(clap::Args, Debug)]
pub struct PinExecArgs {
    /// CPU to pin to.
    #[arg(long)]
    pub cpu: usize,
    /// The program and its arguments.
    #[arg(last = true, required = true)]
    pub cmd: Vec<String>,
}

/// Runs `pin-exec`: only returns on failure.
pub fn pin_exec(a: &PinExecArgs) -> Res<()> {
    pin(a.cpu)?;
    let err = Command::new(&a.cmd[0]).args(&a.cmd[1..]).exec();
    Err(format!("exec {}: {err}", a.cmd[0]).into())
}

/// `shm-bench e2e-run`: hidden; one end-to-end run, timed from inside.
#[derive(clap::Args, Debug)]
pub struct E2eRunArgs {
    /// `ring` (writer + reader) or `cat` (cat f | cat).
    #[arg(long)]
    pub variant: String,
    /// Source file.
    #[arg(long)]
    pub src: PathBuf,
    /// Output file (/dev/null or a tmpfs file).
    #[arg(long)]
    pub out: PathBuf,
    /// Key for the ring.
    #[arg(long, value_parser = IpcKey::parse)]
    pub key: Option<IpcKey>,
    /// CPU for the sending side.
    #[arg(long)]
    pub cpu_a: Option<usize>,
    /// CPU for the receiving side.
    #[arg(long)]
    pub cpu_b: Option<usize>,
}

/// `prog args...`, wrapped in `shm-bench pin-exec` when a CPU is given.
fn command(cpu: Option<usize>, argv: &[String]) -> Res<Command> {
    Ok(match cpu {
        Some(c) => {
            let mut cmd = Command::new(std::env::current_exe()?);
            cmd.args(["pin-exec", "--cpu", &c.to_string(), "--"]);
            cmd.args(argv);
            cmd
        }
        None => {
            let mut cmd = Command::new(&argv[0]);
            cmd.args(&argv[1..]);
            cmd
        }
    })
}

/// Waits until the writer's semaphore set exists *and* is initialised (sem_otime set),
/// so that the reader joins at once instead of sleeping through a 10-100 ms poll.
fn wait_for_session(key: IpcKey, writer: &mut std::process::Child) -> Res<()> {
    let start = Instant::now();
    loop {
        if let Some(id) = semaphore::find(key)? {
            if semaphore::stat(key, id).is_ok_and(|s| s.otime != 0) {
                return Ok(());
            }
        }
        if let Some(st) = writer.try_wait()? {
            return Err(format!("writer exited early: {st}").into());
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err("writer did not create its session within 10 s".into());
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// The intermediary's main.
pub fn e2e_run(a: &E2eRunArgs) -> Res<()> {
    let dir = exe_dir()?;
    let src = a.src.display().to_string();
    println!("ready");
    std::io::stdout().flush()?;
    let mut go = String::new();
    std::io::stdin().lock().read_line(&mut go)?;
    let (cpu0, _) = rusage(true);
    let sink = || std::fs::File::create(&a.out);
    let t0 = mono_ns();
    let statuses = if a.variant == "ring" {
        let key = a.key.ok_or("--key is required for the ring")?;
        let writer = [
            dir.join("writer").display().to_string(),
            "--key".into(),
            key.to_string(),
            "--quiet".into(),
            src,
        ];
        let reader = [
            dir.join("reader").display().to_string(),
            "--key".into(),
            key.to_string(),
            "--quiet".into(),
        ];
        let mut w = command(a.cpu_a, &writer)?.stdin(Stdio::null()).spawn()?;
        if let Err(e) = wait_for_session(key, &mut w) {
            let _ = w.kill();
            let _ = w.wait();
            return Err(e);
        }
        let mut r = command(a.cpu_b, &reader)?.stdout(sink()?).spawn()?;
        [w.wait()?, r.wait()?]
    } else {
        let mut c1 = command(a.cpu_a, &["cat".into(), src])?
            .stdout(Stdio::piped())
            .spawn()?;
        let pipe = c1.stdout.take().ok_or("no pipe")?;
        let mut c2 = command(a.cpu_b, &["cat".into()])?
            .stdin(pipe)
            .stdout(sink()?)
            .spawn()?;
        [c1.wait()?, c2.wait()?]
    };
    let t1 = mono_ns();
    let (cpu1, maxrss) = rusage(true);
    if let Some(bad) = statuses.iter().find(|s| !s.success()) {
        return Err(format!("{} run failed: {bad}", a.variant).into());
    }
    let want = std::fs::metadata(&a.src)?.len();
    if a.out != Path::new("/dev/null") {
        let got = std::fs::metadata(&a.out)?.len();
        if got != want {
            return Err(format!("output has {got} bytes, the source {want}").into());
        }
    }
    println!(
        "result frames=0 bytes={want} t0={t0} t1={t1} cpu_ns={} maxrss_kib={maxrss}",
        cpu1.saturating_sub(cpu0)
    );
    std::io::stdout().flush()?;
    Ok(())
}

/// A `bytes`-long file of pseudo-random data (xorshift; incompressible enough and
/// cheap), kept between runs, then read once so that it is in the page cache.
fn source_file(dir: &Path, bytes: u64) -> Res<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("e2e-{bytes}.bin"));
    if std::fs::metadata(&path).map(|m| m.len()).ok() != Some(bytes) {
        eprintln!(
            "shm-bench: writing the {} source file {}",
            human_size(bytes),
            path.display()
        );
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut chunk = vec![0u8; 8 << 20];
        let mut left = bytes;
        while left > 0 {
            for w in chunk.chunks_exact_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                w.copy_from_slice(&x.to_le_bytes());
            }
            let n = left.min(chunk.len() as u64) as usize;
            f.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        f.flush()?;
    }
    // Warm the page cache.
    std::io::copy(&mut std::fs::File::open(&path)?, &mut std::io::sink())?;
    Ok(path)
}

/// All end-to-end rows: for each placement, ring and cat to /dev/null and to tmpfs,
/// interleaved within each repetition, median of `reps`.
pub fn run(bytes: u64, reps: usize, placements: &[Placement], data_dir: &Path) -> Res<Vec<Row>> {
    let dir = exe_dir()?;
    for bin in ["writer", "reader"] {
        if !dir.join(bin).exists() {
            return Err(format!(
                "{} is missing: build it first (cargo build --release --workspace --bins)",
                dir.join(bin).display()
            )
            .into());
        }
    }
    let src = source_file(data_dir, bytes)?;
    let tmpfs = PathBuf::from(format!("/dev/shm/shm-bench-{}.out", std::process::id()));
    let sinks = [
        ("/dev/null", PathBuf::from("/dev/null")),
        ("tmpfs", tmpfs.clone()),
    ];
    let mut rows = Vec::new();
    for &place in placements {
        for (sink_name, sink) in &sinks {
            let mut pair = Vec::new();
            for variant in ["ring", "cat"] {
                let m = median_of(reps, false, || {
                    let r = once(variant, &src, sink, place);
                    let _ = std::fs::remove_file(&tmpfs);
                    r
                })?;
                pair.push((variant, m));
            }
            let cat_rate = pair[1].1.bytes / pair[1].1.secs;
            for (variant, m) in pair {
                let name = match variant {
                    "ring" => format!("writer+reader>{sink_name}"),
                    _ => format!("cat|cat>{sink_name}"),
                };
                let mut r = crate::bench::row("e2e", &name, bytes as usize, place, &m);
                r.msgs = 0.0;
                r.ratio = Some((m.bytes / m.secs) / cat_rate);
                rows.push(r);
            }
        }
    }
    Ok(rows)
}

fn once(variant: &str, src: &Path, out: &Path, place: Placement) -> Res<Measure> {
    let mut guard = KeyGuard::default();
    let mut argv = vec![
        std::env::current_exe()?.display().to_string(),
        "e2e-run".into(),
        "--variant".into(),
        variant.into(),
        "--src".into(),
        src.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ];
    if variant == "ring" {
        let key = fresh_key()?;
        guard.0.push(key);
        argv.extend(["--key".into(), key.to_string()]);
    }
    let cpus = match place {
        Placement::Unpinned => (None, None),
        Placement::Same => (Some(0), Some(0)),
        Placement::Split => (Some(0), Some(1)),
    };
    if let Some(c) = cpus.0 {
        argv.extend(["--cpu-a".into(), c.to_string()]);
    }
    if let Some(c) = cpus.1 {
        argv.extend(["--cpu-b".into(), c.to_string()]);
    }
    let results = runner::run_group(&[Spec { argv, first: false }], Duration::from_secs(120))?;
    let f = &results[0];
    let get = |k: &str| f.get(k).copied().unwrap_or(0.0);
    Ok(Measure {
        frames: 0.0,
        bytes: get("bytes"),
        secs: ((get("t1") - get("t0")) / 1e9).max(1e-9),
        cpu_secs: get("cpu_ns") / 1e9,
        reader_cpu_secs: None,
        rss_kib: get("maxrss_kib") as u64,
        p50_us: None,
        p99_us: None,
    })
}
