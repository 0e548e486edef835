//! End to end: the real `writer` and `reader` binaries moving a page-cached file,
//! side by side with `pv -q F | cat`, `cat F | cat` and `cat F` alone, to /dev/null
//! and to a tmpfs file, in the same run; and the reader's spin, streaming and idle.
//!
//! Each run happens inside an intermediary (`shm-bench e2e-run`), a fresh process that
//! starts the run's programs, then reaps them one at a time (`waitpid` on each pid)
//! and reads RUSAGE_CHILDREN after each: the difference is that one process's user +
//! system time, what `wait4` would have returned for it (this crate has no unsafe
//! code, and nix has no `wait4`). So the CPU time is per process and per run, never
//! accumulated over the whole benchmark.

use crate::bench::{median_range, Measure, Placement};
use crate::child::{pin, Res};
use crate::report::Row;
use crate::runner::{self, exe_dir, fresh_key, KeyGuard, Spec};
use crate::stats::{human_size, mono_ns, rusage};
use shm_common::ring::DEFAULT_SPIN_MICROS;
use shm_common::{semaphore, IpcKey};
use std::io::{BufRead, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// What `pv` rows say when there is no `pv` on the PATH.
pub const PV_MISSING: &str = "skipped: pv not installed (apt-get install pv)";

/// The spins (µs) of the streaming and idle spin rows besides the default:
/// blocking, and a long one.
pub const OTHER_SPINS: [u64; 2] = [0, 200];

/// Bytes the writer gets at the start of an "idle after a burst" run: one slot.
pub const BURST: usize = 64 << 10;

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

/// What one end-to-end run executes (F is the source file, S the sink).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Variant {
    /// `writer F` + `reader > S`.
    RingFile,
    /// `writer < F` + `reader > S`: standard input redirected from the file.
    RingStdin,
    /// `cat F | writer` + `reader > S`: the writer fed by a pipe.
    CatRing,
    /// `pv -q F | cat > S`.
    PvCat,
    /// `cat F | cat > S`.
    CatCat,
    /// `cat F > S`: one process.
    Cat,
    /// `writer` on a pipe nobody writes to (after an optional burst) + `reader`: an
    /// idle session, for the reader's CPU time while it waits.
    Idle,
}

impl Variant {
    /// The row name, with the sink's name.
    fn label(self, sink: &str, spin: Option<u64>) -> String {
        let reader = match spin {
            None => "reader".to_string(),
            Some(s) => format!("reader --spin {s}"),
        };
        match self {
            Variant::RingFile => format!("writer F + {reader} > {sink}"),
            Variant::RingStdin => format!("writer < F + {reader} > {sink}"),
            Variant::CatRing => format!("cat F | writer + {reader} > {sink}"),
            Variant::PvCat => format!("pv -q F | cat > {sink}"),
            Variant::CatCat => format!("cat F | cat > {sink}"),
            Variant::Cat => format!("cat F > {sink}"),
            Variant::Idle => format!("idle: {reader}"),
        }
    }

    fn ring(self) -> bool {
        matches!(
            self,
            Variant::RingFile | Variant::RingStdin | Variant::CatRing | Variant::Idle
        )
    }
}

/// `shm-bench e2e-run`: hidden; one end-to-end run, timed from inside.
#[derive(clap::Args, Debug)]
pub struct E2eRunArgs {
    /// What to run.
    #[arg(long, value_enum)]
    pub variant: Variant,
    /// Source file.
    #[arg(long)]
    pub src: PathBuf,
    /// Output file (/dev/null or a tmpfs file).
    #[arg(long)]
    pub out: PathBuf,
    /// Key for the ring.
    #[arg(long, value_parser = IpcKey::parse)]
    pub key: Option<IpcKey>,
    /// CPU for the sending side (cat, pv, writer).
    #[arg(long)]
    pub cpu_a: Option<usize>,
    /// CPU for the receiving side (reader, the second cat).
    #[arg(long)]
    pub cpu_b: Option<usize>,
    /// `reader --spin` (absent: the reader's default).
    #[arg(long)]
    pub spin: Option<u64>,
    /// The `pv` program (pv-cat).
    #[arg(long)]
    pub pv: Option<PathBuf>,
    /// Idle: how long the session stays idle, seconds.
    #[arg(long, default_value_t = 2.0)]
    pub idle_secs: f64,
    /// Idle: bytes the writer gets first, before the idle time.
    #[arg(long, default_value_t = 0)]
    pub burst: usize,
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
fn wait_for_session(key: IpcKey, writer: &mut Child) -> Res<()> {
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

/// The started programs of one run, in pipeline order, with their roles.
#[derive(Default)]
struct Procs(Vec<(&'static str, Child)>);

impl Procs {
    fn push(&mut self, role: &'static str, child: Child) {
        self.0.push((role, child));
    }

    /// Kills and reaps everything started so far (a run that went wrong).
    fn abort(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.0.clear();
    }

    /// Reaps each program in turn; returns its role, exit status and CPU time (ns,
    /// user + system: the RUSAGE_CHILDREN difference across its own `waitpid`).
    fn reap(&mut self) -> Res<Vec<(&'static str, ExitStatus, u64)>> {
        let mut out = Vec::new();
        let (mut before, _) = rusage(true);
        for (role, mut c) in std::mem::take(&mut self.0) {
            let status = c.wait()?;
            let (after, _) = rusage(true);
            out.push((role, status, after.saturating_sub(before)));
            before = after;
        }
        Ok(out)
    }
}

/// The intermediary's main.
pub fn e2e_run(a: &E2eRunArgs) -> Res<()> {
    println!("ready");
    std::io::stdout().flush()?;
    let mut go = String::new();
    std::io::stdin().lock().read_line(&mut go)?;
    let mut procs = Procs::default();
    let t0 = mono_ns();
    let started = start(a, &mut procs);
    let idle = match started {
        Ok(n) => n,
        Err(e) => {
            procs.abort();
            return Err(e);
        }
    };
    let reaped = procs.reap()?;
    let t1 = mono_ns();
    let (_, maxrss) = rusage(true);
    if let Some((role, bad, _)) = reaped.iter().find(|(_, s, _)| !s.success()) {
        return Err(format!("{:?} run: {role} failed: {bad}", a.variant).into());
    }
    let bytes = if a.variant == Variant::Idle {
        a.burst as u64
    } else {
        let want = std::fs::metadata(&a.src)?.len();
        if a.out != Path::new("/dev/null") {
            let got = std::fs::metadata(&a.out)?.len();
            if got != want {
                return Err(format!("output has {got} bytes, the source {want}").into());
            }
        }
        want
    };
    let total: u64 = reaped.iter().map(|(_, _, ns)| ns).sum();
    let mut line =
        format!("result frames=0 bytes={bytes} t0={t0} t1={t1} cpu_ns={total} maxrss_kib={maxrss}");
    if let Some((ns, cpu)) = idle {
        line.push_str(&format!(" idle_ns={ns}"));
        if let Some((before, after)) = cpu {
            line.push_str(&format!(
                " cpu_reader_idle_ns={}",
                after.saturating_sub(before)
            ));
        }
    }
    for (role, _, ns) in &reaped {
        line.push_str(&format!(" cpu_{role}_ns={ns}"));
    }
    println!("{line}");
    std::io::stdout().flush()?;
    Ok(())
}

/// What an idle run measured: the window's length (ns) and, if /proc/PID/schedstat
/// could be read, the reader's CPU time at its start and end (ns).
type IdleWindow = (u64, Option<(u64, u64)>);

/// Starts the programs of `a.variant` into `procs`; for an idle run also waits out
/// the idle window, then ends the writer's input.
fn start(a: &E2eRunArgs, procs: &mut Procs) -> Res<Option<IdleWindow>> {
    let dir = exe_dir()?;
    let src = a.src.display().to_string();
    let sink = || std::fs::File::create(&a.out);
    let key = a.key.map(|k| k.to_string());
    let writer = |file: bool| -> Res<Vec<String>> {
        let mut v = vec![
            dir.join("writer").display().to_string(),
            "--key".into(),
            key.clone().ok_or("--key is required for the ring")?,
            "--quiet".into(),
        ];
        if file {
            v.push(src.clone());
        }
        Ok(v)
    };
    let mut reader = vec![
        dir.join("reader").display().to_string(),
        "--key".into(),
        key.clone().unwrap_or_default(),
        "--quiet".into(),
    ];
    if let Some(s) = a.spin {
        reader.extend(["--spin".into(), s.to_string()]);
    }
    let cat = |args: &[&str]| -> Vec<String> {
        std::iter::once("cat")
            .chain(args.iter().copied())
            .map(String::from)
            .collect()
    };
    // Each Command is a temporary, dropped at the end of its statement: it holds the
    // other ends of the pipes it was given, which must be closed for EOF to arrive.
    let mut idle = None;
    match a.variant {
        Variant::RingFile | Variant::RingStdin | Variant::CatRing | Variant::Idle => {
            let w = match a.variant {
                Variant::RingFile => command(a.cpu_a, &writer(true)?)?
                    .stdin(Stdio::null())
                    .spawn()?,
                Variant::RingStdin => command(a.cpu_a, &writer(false)?)?
                    .stdin(std::fs::File::open(&a.src)?)
                    .spawn()?,
                Variant::CatRing => {
                    let mut c = command(a.cpu_a, &cat(&[&src]))?
                        .stdout(Stdio::piped())
                        .spawn()?;
                    let pipe = c.stdout.take().ok_or("no pipe")?;
                    procs.push("cat", c);
                    command(a.cpu_a, &writer(false)?)?.stdin(pipe).spawn()?
                }
                _ => command(a.cpu_a, &writer(false)?)?
                    .stdin(Stdio::piped())
                    .spawn()?,
            };
            procs.push("writer", w);
            let (_, w) = procs.0.last_mut().ok_or("no writer")?;
            wait_for_session(a.key.ok_or("--key is required for the ring")?, w)?;
            let input = w.stdin.take();
            let r = command(a.cpu_b, &reader)?.stdout(sink()?).spawn()?;
            let pid = r.id();
            procs.push("reader", r);
            if let Some(mut input) = input {
                if a.burst > 0 {
                    input.write_all(&vec![0x5a; a.burst])?;
                }
                // The reader joins (and takes the burst) within a few ms; the
                // window starts after that.
                std::thread::sleep(SETTLE);
                let (t, before) = (Instant::now(), schedstat_ns(pid));
                std::thread::sleep(Duration::from_secs_f64(a.idle_secs));
                let after = schedstat_ns(pid);
                idle = Some((t.elapsed().as_nanos() as u64, before.zip(after)));
                // Dropping the pipe ends the writer's input: it sends FINAL.
            }
        }
        Variant::PvCat | Variant::CatCat => {
            let first = match (a.variant, &a.pv) {
                (Variant::PvCat, Some(pv)) => {
                    vec![pv.display().to_string(), "-q".into(), src.clone()]
                }
                (Variant::PvCat, None) => return Err("--pv is required for pv-cat".into()),
                _ => cat(&[&src]),
            };
            let mut c1 = command(a.cpu_a, &first)?.stdout(Stdio::piped()).spawn()?;
            let pipe = c1.stdout.take().ok_or("no pipe")?;
            procs.push("send", c1);
            let c2 = command(a.cpu_b, &cat(&[]))?
                .stdin(pipe)
                .stdout(sink()?)
                .spawn()?;
            procs.push("recv", c2);
        }
        Variant::Cat => {
            let c = command(a.cpu_a, &cat(&[&src]))?
                .stdin(Stdio::null())
                .stdout(sink()?)
                .spawn()?;
            procs.push("send", c);
        }
    }
    Ok(idle)
}

/// How long an idle run waits after starting the reader before its window opens.
const SETTLE: Duration = Duration::from_millis(50);

/// The CPU time (user + system, ns) `pid` has run so far: the first field of
/// /proc/PID/schedstat (ns resolution; rusage is only available once it has exited).
fn schedstat_ns(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
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

/// `name` on the PATH, if it is there and executable.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A directory on a tmpfs with room for `bytes` (checked with statfs: f_type is
/// TMPFS_MAGIC), or why there is none.
pub fn tmpfs_dir(bytes: u64) -> Result<PathBuf, String> {
    use nix::sys::statfs::{statfs, TMPFS_MAGIC};
    let mut candidates = vec![PathBuf::from("/dev/shm")];
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        candidates.push(PathBuf::from(d));
    }
    candidates.push(PathBuf::from("/tmp"));
    let mut seen = Vec::new();
    for d in candidates {
        let Ok(st) = statfs(&d) else {
            seen.push(format!("{} (cannot statfs)", d.display()));
            continue;
        };
        if st.filesystem_type() != TMPFS_MAGIC {
            seen.push(format!("{} (not tmpfs)", d.display()));
            continue;
        }
        let free = st.blocks_available() * st.block_size() as u64;
        if free < bytes + (64 << 20) {
            seen.push(format!("{} ({} free)", d.display(), human_size(free)));
            continue;
        }
        return Ok(d);
    }
    Err(format!("skipped: no tmpfs with room: {}", seen.join(", ")))
}

/// A tmpfs output file, removed when dropped (after each run, also a failed one).
struct OutFile(PathBuf);

static NEXT_OUT: AtomicU32 = AtomicU32::new(0);

impl OutFile {
    fn new(dir: &Path) -> OutFile {
        let n = NEXT_OUT.fetch_add(1, Ordering::Relaxed);
        OutFile(dir.join(format!("shm-bench-{}-{n}.out", std::process::id())))
    }
}

impl Drop for OutFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Where a run's output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    Null,
    Tmpfs,
}

/// One row's recipe.
#[derive(Debug, Clone, Copy)]
struct Cell {
    variant: Variant,
    sink: Sink,
    /// `reader --spin`; `None`: the reader's default.
    spin: Option<u64>,
    /// Which table the row goes to.
    section: &'static str,
}

/// What the end-to-end part runs; see [`run`].
#[derive(Debug, Clone)]
pub struct Plan {
    /// Source file size.
    pub bytes: u64,
    /// Repetitions of every cell (median reported), interleaved.
    pub reps: usize,
    /// Placements.
    pub placements: Vec<Placement>,
    /// Where the source file is kept.
    pub data_dir: PathBuf,
    /// The end-to-end table.
    pub table: bool,
    /// The spin section's streaming rows.
    pub spin: bool,
}

/// The environment's answers the header reports: the tmpfs directory and `pv`.
#[derive(Debug, Clone)]
pub struct Tools {
    /// A tmpfs directory, or the skip note.
    pub tmpfs: Result<PathBuf, String>,
    /// `pv`, or the skip note.
    pub pv: Result<PathBuf, String>,
}

impl Tools {
    /// Looks for both.
    pub fn find(bytes: u64) -> Tools {
        Tools {
            tmpfs: tmpfs_dir(bytes),
            pv: find_program("pv").ok_or_else(|| PV_MISSING.to_string()),
        }
    }
}

/// The writer and reader beside us, or an error saying to build them.
fn check_binaries() -> Res<()> {
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
    Ok(())
}

fn cells(plan: &Plan) -> Vec<Cell> {
    let c = |variant, sink, spin, section| Cell {
        variant,
        sink,
        spin,
        section,
    };
    let mut v = Vec::new();
    if plan.table {
        for variant in [
            Variant::RingFile,
            Variant::RingStdin,
            Variant::CatRing,
            Variant::PvCat,
            Variant::CatCat,
            Variant::Cat,
        ] {
            v.push(c(variant, Sink::Null, None, "e2e"));
        }
        for variant in [Variant::RingFile, Variant::PvCat, Variant::CatCat] {
            v.push(c(variant, Sink::Tmpfs, None, "e2e"));
        }
    }
    if plan.spin {
        // The default's streaming row is the table's first row when there is a table.
        if !plan.table {
            v.push(c(Variant::RingFile, Sink::Null, None, "spin"));
        }
        for s in OTHER_SPINS {
            v.push(c(Variant::RingFile, Sink::Null, Some(s), "spin"));
        }
    }
    v
}

/// The spin rows' names: `stream: reader --spin 50 (default)`.
pub fn spin_label(kind: &str, spin: Option<u64>) -> String {
    match spin {
        None => format!("{kind}: reader --spin {DEFAULT_SPIN_MICROS} (default)"),
        Some(0) => format!("{kind}: reader --spin 0 (blocking)"),
        Some(s) => format!("{kind}: reader --spin {s}"),
    }
}

/// The end-to-end rows (section `e2e`) and the spin section's streaming rows
/// (section `spin`): every cell of a placement once per repetition, interleaved, so
/// that slow phases of a loaded machine fall on all of them; median of `reps`.
pub fn run(plan: &Plan, tools: &Tools) -> Res<Vec<Row>> {
    check_binaries()?;
    let src = source_file(&plan.data_dir, plan.bytes)?;
    let cells = cells(plan);
    let mut rows = Vec::new();
    for &place in &plan.placements {
        let mut runs: Vec<Vec<Measure>> = vec![Vec::new(); cells.len()];
        for rep in 0..plan.reps.max(1) {
            crate::progress(&format!(
                "end to end {} {} ({}/{})",
                human_size(plan.bytes),
                place.name(),
                rep + 1,
                plan.reps.max(1)
            ));
            for (i, cell) in cells.iter().enumerate() {
                if shm_common::cancel::requested() {
                    return Err("interrupted".into());
                }
                if skip(cell, tools).is_some() {
                    continue;
                }
                let out = match (cell.sink, &tools.tmpfs) {
                    (Sink::Tmpfs, Ok(dir)) => Some(OutFile::new(dir)),
                    _ => None,
                };
                let path = out.as_ref().map_or(Path::new("/dev/null"), |o| &o.0);
                runs[i].push(once(cell, &src, path, place, tools, 0.0, 0)?);
                // `out` drops here: the tmpfs file is gone before the next run.
            }
        }
        rows.extend(place_rows(plan, &cells, runs, place, tools));
    }
    Ok(rows)
}

/// Why `cell` cannot run here, if it cannot.
fn skip(cell: &Cell, tools: &Tools) -> Option<String> {
    if cell.variant == Variant::PvCat {
        if let Err(why) = &tools.pv {
            return Some(why.clone());
        }
    }
    if cell.sink == Sink::Tmpfs {
        if let Err(why) = &tools.tmpfs {
            return Some(why.clone());
        }
    }
    None
}

/// One placement's rows from its runs, with the ratios to that placement's
/// references: `pv -q F | cat` and `cat F | cat` to the same sink, `cat F > /dev/null`.
fn place_rows(
    plan: &Plan,
    cells: &[Cell],
    runs: Vec<Vec<Measure>>,
    place: Placement,
    tools: &Tools,
) -> Vec<Row> {
    let summary: Vec<Option<(Measure, f64, f64)>> = runs.into_iter().map(median_range).collect();
    let rate = |variant: Variant, sink: Sink| {
        cells
            .iter()
            .zip(&summary)
            .find(|(c, _)| c.variant == variant && c.sink == sink && c.section == "e2e")
            .and_then(|(_, s)| s.as_ref())
            .map(|(m, _, _)| m.bytes / m.secs)
    };
    let mut rows = Vec::new();
    for (cell, s) in cells.iter().zip(&summary) {
        let sink_name = match cell.sink {
            Sink::Null => "/dev/null",
            Sink::Tmpfs => "tmpfs",
        };
        let mech = cell.variant.label(sink_name, cell.spin);
        let mut r = match s {
            Some((m, lo, hi)) => {
                let mut r = crate::bench::row("e2e", &mech, plan.bytes as usize, place, m);
                r.msgs = 0.0;
                r.min_mbps = Some(lo / 1e6);
                r.max_mbps = Some(hi / 1e6);
                let own = m.bytes / m.secs;
                r.ratio = rate(Variant::CatCat, cell.sink).map(|x| own / x);
                r.ratio_pv = rate(Variant::PvCat, cell.sink).map(|x| own / x);
                r.ratio_cat_null = rate(Variant::Cat, Sink::Null).map(|x| own / x);
                r
            }
            None => Row {
                section: "e2e",
                mechanism: mech,
                size: plan.bytes,
                placement: place.name(),
                note: Some(skip(cell, tools).unwrap_or_else(|| "skipped".into())),
                ..Row::default()
            },
        };
        if cell.section == "e2e" {
            rows.push(r.clone());
        }
        // The spin rows: the default one is the table's first row, measured once.
        let spin_row = cell.section == "spin"
            || (plan.spin && cell.variant == Variant::RingFile && cell.sink == Sink::Null);
        if spin_row {
            r.section = "spin";
            r.mechanism = spin_label("stream", cell.spin);
            rows.push(r);
        }
    }
    rows
}

/// One run of `cell` with output to `out`.
fn once(
    cell: &Cell,
    src: &Path,
    out: &Path,
    place: Placement,
    tools: &Tools,
    idle_secs: f64,
    burst: usize,
) -> Res<Measure> {
    let mut guard = KeyGuard::default();
    let spec = spec(cell, src, out, place, tools, idle_secs, burst, &mut guard)?;
    let results = runner::run_group(&[spec], Duration::from_secs(120))?;
    Ok(measure(&results[0]))
}

/// The intermediary's command line for one run; a ring's key goes to `guard`.
#[allow(clippy::too_many_arguments)]
fn spec(
    cell: &Cell,
    src: &Path,
    out: &Path,
    place: Placement,
    tools: &Tools,
    idle_secs: f64,
    burst: usize,
    guard: &mut KeyGuard,
) -> Res<Spec> {
    let variant = clap::ValueEnum::to_possible_value(&cell.variant)
        .ok_or("variant has no name")?
        .get_name()
        .to_string();
    let mut argv = vec![
        std::env::current_exe()?.display().to_string(),
        "e2e-run".into(),
        "--variant".into(),
        variant,
        "--src".into(),
        src.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ];
    if cell.variant.ring() {
        let key = fresh_key()?;
        guard.0.push(key);
        argv.extend(["--key".into(), key.to_string()]);
    }
    if let Some(s) = cell.spin {
        argv.extend(["--spin".into(), s.to_string()]);
    }
    if let (Variant::PvCat, Ok(pv)) = (cell.variant, &tools.pv) {
        argv.extend(["--pv".into(), pv.display().to_string()]);
    }
    if cell.variant == Variant::Idle {
        argv.extend(["--idle-secs".into(), idle_secs.to_string()]);
        argv.extend(["--burst".into(), burst.to_string()]);
    }
    // Sending side (cat, pv, writer) on A, receiving side (reader, second cat) on B;
    // a single `cat F` runs on A.
    if let Some(c) = place.cpu(true) {
        argv.extend(["--cpu-a".into(), c.to_string()]);
    }
    if let Some(c) = place.cpu(false) {
        argv.extend(["--cpu-b".into(), c.to_string()]);
    }
    Ok(Spec { argv, first: false })
}

fn measure(f: &runner::Fields) -> Measure {
    let get = |k: &str| f.get(k).copied().unwrap_or(0.0);
    Measure {
        frames: 0.0,
        bytes: get("bytes"),
        secs: ((get("t1") - get("t0")) / 1e9).max(1e-9),
        cpu_secs: get("cpu_ns") / 1e9,
        reader_cpu_secs: f.get("cpu_reader_ns").map(|ns| ns / 1e9),
        rss_kib: get("maxrss_kib") as u64,
        p50_us: None,
        p99_us: None,
    }
}

/// The spin section's idle rows: a reader in a session whose writer has joined and
/// sends nothing (`idle`), or sent one slot's worth first (`idle after 64 KiB`), at
/// each spin. All of them at once, unpinned (they are idle: they do not compete), each
/// in its own session. Two CPU times of the reader: over the idle window (`idle_secs`
/// from 50 ms after it started, /proc/PID/schedstat), and over its whole life
/// (rusage: start-up, joining, the burst and exit included).
pub fn idle_rows(idle_secs: f64) -> Res<Vec<Row>> {
    check_binaries()?;
    let mut guard = KeyGuard::default();
    let tools = Tools {
        tmpfs: Err(String::new()),
        pv: Err(String::new()),
    };
    let spins: Vec<Option<u64>> = std::iter::once(None)
        .chain(OTHER_SPINS.iter().map(|&s| Some(s)))
        .collect();
    let mut specs = Vec::new();
    let mut names = Vec::new();
    for burst in [0, BURST] {
        for &spin in &spins {
            let cell = Cell {
                variant: Variant::Idle,
                sink: Sink::Null,
                spin,
                section: "spin",
            };
            let null = Path::new("/dev/null");
            specs.push(spec(
                &cell,
                null,
                null,
                Placement::Unpinned,
                &tools,
                idle_secs,
                burst,
                &mut guard,
            )?);
            let kind = if burst == 0 {
                "idle".to_string()
            } else {
                format!("idle after {}", human_size(burst as u64))
            };
            names.push((spin_label(&kind, spin), burst));
        }
    }
    crate::progress(&format!(
        "spin: {} idle sessions for {idle_secs} s",
        specs.len()
    ));
    let limit = Duration::from_secs_f64(idle_secs * 2.0 + 60.0);
    let results = runner::run_group(&specs, limit)?;
    Ok(results
        .iter()
        .zip(names)
        .map(|(f, (name, burst))| {
            let get = |k: &str| f.get(k).copied().unwrap_or(0.0);
            Row {
                section: "spin",
                mechanism: name,
                size: burst as u64,
                placement: Placement::Unpinned.name(),
                secs: get("idle_ns") / 1e9,
                bytes: burst as u64,
                cpu_s_per_gib: None,
                reader_cpu_ms: Some(get("cpu_reader_ns") / 1e6),
                reader_idle_cpu_ms: f.get("cpu_reader_idle_ns").map(|ns| ns / 1e6),
                rss_kib: Some(get("maxrss_kib") as u64),
                ..Row::default()
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_the_path_only() {
        assert!(find_program("sh").is_some());
        assert!(find_program("no-such-program-shm-bench").is_none());
    }

    #[test]
    fn the_tmpfs_sink_is_a_tmpfs_or_says_why_not() {
        match tmpfs_dir(1 << 20) {
            Ok(d) => {
                let st = nix::sys::statfs::statfs(&d).expect("statfs");
                assert_eq!(st.filesystem_type(), nix::sys::statfs::TMPFS_MAGIC);
            }
            Err(why) => assert!(why.starts_with("skipped: "), "{why}"),
        }
        let too_big = tmpfs_dir(u64::MAX / 2).expect_err("no tmpfs is that big");
        assert!(
            too_big.starts_with("skipped: no tmpfs with room"),
            "{too_big}"
        );
    }

    #[test]
    fn missing_pv_gives_skipped_rows_not_missing_ones() {
        let plan = Plan {
            bytes: 1 << 20,
            reps: 1,
            placements: vec![Placement::Unpinned],
            data_dir: PathBuf::new(),
            table: true,
            spin: true,
        };
        let tools = Tools {
            tmpfs: Err("skipped: no tmpfs with room: /x (not tmpfs)".into()),
            pv: Err(PV_MISSING.into()),
        };
        let cells = cells(&plan);
        let m = Measure {
            bytes: 1e6,
            secs: 1e-3,
            cpu_secs: 1e-4,
            reader_cpu_secs: Some(5e-5),
            ..Measure::default()
        };
        let runs: Vec<Vec<Measure>> = cells
            .iter()
            .map(|c| {
                if skip(c, &tools).is_some() {
                    Vec::new()
                } else {
                    vec![m.clone()]
                }
            })
            .collect();
        let rows = place_rows(&plan, &cells, runs, Placement::Unpinned, &tools);
        let pv: Vec<&Row> = rows
            .iter()
            .filter(|r| r.mechanism.starts_with("pv -q F"))
            .collect();
        assert_eq!(pv.len(), 2);
        assert!(pv.iter().all(|r| r.note.as_deref() == Some(PV_MISSING)));
        let ring = rows
            .iter()
            .find(|r| r.mechanism == "writer F + reader > /dev/null")
            .expect("the ring row");
        assert_eq!(ring.ratio_pv, None);
        assert!((ring.ratio_cat_null.expect("ratio") - 1.0).abs() < 1e-9);
        assert!(
            (ring.reader_cpu_s_per_gib.expect("reader CPU") - 5e-5 / (1e6 / 1073741824.0)).abs()
                < 1e-9
        );
        let tmpfs = rows.iter().filter(|r| r.mechanism.ends_with("> tmpfs"));
        assert!(tmpfs.clone().count() == 3 && tmpfs.clone().all(|r| r.note.is_some()));
        let spin: Vec<&str> = rows
            .iter()
            .filter(|r| r.section == "spin")
            .map(|r| r.mechanism.as_str())
            .collect();
        assert_eq!(spin.len(), 3, "{spin:?}");
        assert!(spin.iter().any(|n| n.ends_with("--spin 0 (blocking)")));
        assert!(spin.iter().any(|n| n.ends_with("(default)")));
    }
}
