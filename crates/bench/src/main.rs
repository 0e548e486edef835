//! `shm-bench`: the ring against pipes, a Unix socket and a lock-step shared-memory
//! baseline, end to end against `cat | cat`, with latency, cost and placement.
//! See BENCHMARKS.md for the method and the latest results.
#![forbid(unsafe_code)]

mod bench;
mod checksum;
mod child;
mod e2e;
mod iceoryx2;
mod report;
mod runner;
mod stats;

use bench::{median_of, Config, Placement};
use child::{Mech, Res};
use clap::{Parser, Subcommand};
use report::Row;
use stats::human_size;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Measure the System V ring against pipes, a Unix socket and a lock-step shm
/// baseline; write a table, CSV, JSON and an SVG chart.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    hidden: Option<Hidden>,
    /// CI-sized run: shorter runs, one repetition, fewer placements, 64 MiB end to end,
    /// 0.3 s idle spin runs.
    #[arg(long)]
    quick: bool,
    /// Seconds each transport run streams for (default 0.5; quick 0.15).
    #[arg(long)]
    secs: Option<f64>,
    /// Repetitions per cell; the median run is reported (default 3; quick 1).
    #[arg(long)]
    reps: Option<usize>,
    /// Ring: most frames per semop (1..=32767).
    #[arg(long, default_value_t = shm_common::ring::DEFAULT_MAX_BATCH,
          value_parser = shm_cli::parse::parse_batch)]
    batch: u32,
    /// Ring: slot count for every frame size, 1..=32767 (default: the library's
    /// default for the slot size, as many as fit in 4 MiB, between 16 and 4096).
    #[arg(long, value_parser = parse_slots)]
    slots: Option<u32>,
    /// Where the CSV, JSON and SVG go.
    #[arg(long, default_value = "bench-results")]
    out_dir: PathBuf,
    /// Skip the end-to-end table (writer/reader binaries against pv | cat, cat | cat
    /// and cat).
    #[arg(long)]
    no_e2e: bool,
    /// End to end and streaming spin rows: the source file's size (K/M/G suffixes;
    /// default 1G, quick 64M).
    #[arg(long, value_parser = parse_e2e_bytes)]
    e2e_bytes: Option<u32>,
    /// End to end: repetitions of every row, median reported (default 5; quick 3).
    #[arg(long)]
    e2e_reps: Option<usize>,
    /// Skip the spin section (the reader's CPU when idle and when streaming, at
    /// --spin 0, the default and 200).
    #[arg(long)]
    no_spin: bool,
    /// Spin section: how long each idle session waits, seconds (default 2; quick 0.3).
    #[arg(long)]
    idle_secs: Option<f64>,
    /// Skip the ping-pong latency runs.
    #[arg(long)]
    no_latency: bool,
    /// Skip the 2 writers x 2 readers runs.
    #[arg(long)]
    no_2x2: bool,
    /// Skip the CRC-32C kernels against memcpy.
    #[arg(long)]
    no_checksum: bool,
    /// Only these transport mechanisms (comma-separated; default all). The ratio
    /// column needs pipe-write. The iceoryx2 rows come on top (see --no-iceoryx2).
    #[arg(long, value_delimiter = ',', value_parser = Mech::parse)]
    mechs: Vec<Mech>,
    /// Only these placements (comma-separated: unpinned, split, same-cpu).
    #[arg(long, value_delimiter = ',', value_parser = Placement::parse)]
    placements: Vec<Placement>,
    /// Only these frame sizes in bytes (comma-separated; default 64,4096,65536,1048576).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<usize>,
    /// The iceoryx2 children (bench/iceoryx2; default: beside shm-bench, then
    /// target/iceoryx2/release). Without it the iceoryx2 rows are skipped, and --quick
    /// skips them unless this is given.
    #[arg(long, value_name = "PATH")]
    iceoryx2: Option<PathBuf>,
    /// Skip the iceoryx2 rows.
    #[arg(long)]
    no_iceoryx2: bool,
}

#[derive(Subcommand, Debug)]
enum Hidden {
    /// One side of one run (started by the benchmark itself).
    #[command(hide = true)]
    Child(child::ChildArgs),
    /// One end-to-end run, timed from inside.
    #[command(hide = true)]
    E2eRun(e2e::E2eRunArgs),
    /// Pin to a CPU, then exec a command.
    #[command(hide = true)]
    PinExec(e2e::PinExecArgs),
}

const SIZES: [usize; 4] = [64, 4096, 64 << 10, 1 << 20];

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match &args.hidden {
        Some(Hidden::Child(a)) => child::run(a),
        Some(Hidden::E2eRun(a)) => e2e::e2e_run(a),
        Some(Hidden::PinExec(a)) => e2e::pin_exec(a),
        None => run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shm-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The vector extensions the CRC-32C kernels and the copies can use, as the header
/// lists them.
const VECTOR_FLAGS: [&str; 5] = ["sse4_2", "pclmulqdq", "avx2", "avx512f", "vpclmulqdq"];

/// "sse4_2=yes pclmulqdq=yes avx2=no ...": each of [`VECTOR_FLAGS`] in the first
/// `flags` line of /proc/cpuinfo.
fn vector_extensions(cpuinfo: &str) -> String {
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .and_then(|l| l.split_once(':'))
        .map_or(Vec::new(), |(_, v)| v.split_whitespace().collect());
    VECTOR_FLAGS
        .iter()
        .map(|f| format!("{f}={}", if flags.contains(f) { "yes" } else { "no" }))
        .collect::<Vec<_>>()
        .join(" ")
}

/// CPU model, its vector extensions, CPU count and kernel, for the report.
fn machine() -> Vec<(&'static str, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".to_string(), |(_, v)| v.trim().to_string());
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let online = std::thread::available_parallelism().map_or(0, |n| n.get());
    let (kernel, arch) =
        nix::sys::utsname::uname().map_or(("unknown".into(), String::new()), |u| {
            (
                format!(
                    "{} {} {}",
                    u.sysname().to_string_lossy(),
                    u.release().to_string_lossy(),
                    u.version().to_string_lossy()
                ),
                u.machine().to_string_lossy().into_owned(),
            )
        });
    let hv = if cpuinfo.contains(" hypervisor") {
        "yes"
    } else {
        "no"
    };
    vec![
        ("cpu_model", model),
        ("vector_extensions", vector_extensions(&cpuinfo)),
        ("cpus", cpus.to_string()),
        ("cpus_usable", online.to_string()),
        ("arch", arch),
        ("kernel", kernel),
        ("virtualised", hv.into()),
    ]
}

fn progress(msg: &str) {
    eprintln!("shm-bench: {msg}");
}

/// `--e2e-bytes`: a size (K/M/G), at least 1 MiB.
fn parse_e2e_bytes(text: &str) -> Result<u32, String> {
    let n = shm_cli::parse::parse_size(text).map_err(|e| e.to_string())?;
    if n < 1 << 20 {
        return Err(format!("{text} is less than 1M"));
    }
    Ok(n)
}

/// `--slots`, checked here so that a bad value stops the run before any child starts.
fn parse_slots(text: &str) -> Result<u32, String> {
    let n = shm_cli::parse::parse_count(text).map_err(|e| e.to_string())?;
    shm_common::layout::Geometry::new(n, 64)
        .map(|_| n)
        .map_err(|e| e.to_string())
}

fn run(args: &Args) -> Res<()> {
    // Ctrl-C: the children die with it; we finish the current step's cleanup (the
    // key guards) and stop before the next one.
    shm_cli::signals::install()?;
    let quick = args.quick;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut placements = vec![Placement::Unpinned];
    if cpus >= 2 {
        placements.push(Placement::Split);
        if !quick {
            placements.push(Placement::Same);
        }
    }
    if !args.placements.is_empty() {
        placements.clone_from(&args.placements);
    }
    let cfg = Config {
        exe: std::env::current_exe()?,
        secs: args.secs.unwrap_or(if quick { 0.15 } else { 0.5 }),
        reps: args.reps.unwrap_or(if quick { 1 } else { 3 }),
        batch: args.batch,
        slots: args.slots,
        sizes: if args.sizes.is_empty() {
            SIZES.to_vec()
        } else {
            args.sizes.clone()
        },
        placements,
        ping_iters: if quick { 2_000 } else { 20_000 },
    };
    let machine = machine();
    println!("# shm-bench{}", if quick { " --quick" } else { "" });
    for (k, v) in &machine {
        println!("#   {k}: {v}");
    }
    let ice = iceoryx2::locate(args.iceoryx2.as_deref(), args.no_iceoryx2, quick)?;
    let ice_note = match &ice {
        Ok(p) => p.display().to_string(),
        Err(why) => format!("rows skipped: {why}"),
    };
    println!("#   iceoryx2: {ice_note}");
    let ice = ice.ok();
    println!(
        "#   settings: {} s per transport run, median of {}, ring batch {}, placements {}",
        cfg.secs,
        cfg.reps,
        cfg.batch,
        cfg.placements
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "#   placement: unpinned = the scheduler decides; split = sending side (producer, \
         writer, cat/pv) on CPU 0, receiving side (consumer, reader, second cat) on CPU 1; \
         same-cpu = all on CPU 0 (sched_setaffinity, as taskset -c does)"
    );
    let e2e_bytes = u64::from(
        args.e2e_bytes
            .unwrap_or(if quick { 64 << 20 } else { 1 << 30 }),
    );
    let e2e_reps = args.e2e_reps.unwrap_or(if quick { 3 } else { 5 });
    let idle_secs = args.idle_secs.unwrap_or(if quick { 0.3 } else { 2.0 });
    let tools = e2e::Tools::find(e2e_bytes);
    let shown = |r: &Result<PathBuf, String>| match r {
        Ok(p) => p.display().to_string(),
        Err(why) => why.clone(),
    };
    let (tmpfs_note, pv_note) = (shown(&tools.tmpfs), shown(&tools.pv));
    println!(
        "#   end to end: {} page-cached file, median of {e2e_reps}; tmpfs sink: {tmpfs_note} \
         (statfs f_type TMPFS_MAGIC); pv: {pv_note}",
        human_size(e2e_bytes)
    );
    println!(
        "#   reader spin: default {} us; spin rows at 0 (blocking), the default and {} us; \
         idle sessions {idle_secs} s",
        shm_common::ring::DEFAULT_SPIN_MICROS,
        e2e::OTHER_SPINS[1]
    );
    let check = || -> Res<()> {
        if shm_common::cancel::requested() {
            return Err("interrupted".into());
        }
        Ok(())
    };

    let mut rows: Vec<Row> = Vec::new();
    // 1. memcpy, the ceiling for a copy-in/copy-out design.
    for &size in &cfg.sizes {
        let bw = bench::memcpy_bw(size, Duration::from_millis(if quick { 100 } else { 300 }));
        rows.push(Row {
            section: "memcpy",
            mechanism: "memcpy".into(),
            size: size as u64,
            placement: "unpinned",
            msgs: bw / size as f64,
            mbps: bw / 1e6,
            ratio: None,
            cpu_s_per_gib: Some(f64::from(1u32 << 30) / bw),
            rss_kib: None,
            p50_us: None,
            p99_us: None,
            secs: 0.0,
            bytes: 0,
            ..Row::default()
        });
    }

    // 1b. CRC-32C: every kernel, alone and fused with the copy, against memcpy.
    let checksum_table = if args.no_checksum {
        None
    } else {
        progress("checksum kernels");
        let (table, cells) = checksum::run(&cfg.sizes, quick);
        rows.extend(cells);
        Some(table)
    };

    // 2. Transport, every mechanism side by side, repetitions interleaved.
    for &place in &cfg.placements {
        for &size in &cfg.sizes {
            let mut cell = Vec::new();
            for mech in Mech::ALL {
                if !args.mechs.is_empty() && !args.mechs.contains(&mech) {
                    continue;
                }
                check()?;
                progress(&format!(
                    "transport {} {} {}",
                    mech.name(),
                    human_size(size as u64),
                    place.name()
                ));
                let m = median_of(cfg.reps, false, || {
                    bench::transport_once(&cfg, mech, size, place, 1, 1)
                })?;
                cell.push(bench::row("transport", mech.name(), size, place, &m));
            }
            if let Some(exe) = &ice {
                cell.extend(iceoryx2::transport_rows(&cfg, exe, size, place)?);
            }
            let pipe = cell
                .iter()
                .find(|r| r.mechanism == Mech::PipeWrite.name())
                .map_or(0.0, |r| r.mbps);
            for r in &mut cell {
                r.ratio = (pipe > 0.0).then(|| r.mbps / pipe);
            }
            rows.extend(cell);
        }
    }

    // 3. Two writers and two readers sharing one ring (message mode).
    let pair_sizes: Vec<usize> = if args.no_2x2 {
        Vec::new()
    } else if quick {
        cfg.sizes
            .iter()
            .copied()
            .filter(|s| [64, 64 << 10].contains(s))
            .collect()
    } else {
        cfg.sizes.clone()
    };
    for &size in &pair_sizes {
        check()?;
        progress(&format!("2x2 ring {}", human_size(size as u64)));
        let m = median_of(cfg.reps, false, || {
            bench::transport_once(&cfg, Mech::Ring, size, Placement::Unpinned, 2, 2)
        })?;
        let mut r = bench::row("2x2", "ring 2w x 2r", size, Placement::Unpinned, &m);
        r.ratio = rows
            .iter()
            .find(|p| {
                p.section == "transport"
                    && p.mechanism == Mech::PipeWrite.name()
                    && p.size == size as u64
                    && p.placement == "unpinned"
            })
            .map(|p| r.mbps / p.mbps);
        rows.push(r);
    }

    // 4. Latency: ping-pong through two rings against two pipes.
    let latency_places = if args.no_latency {
        &[][..]
    } else {
        &cfg.placements[..]
    };
    for &place in latency_places {
        // The ring three times: sleeping at once (--spin 0), with the reader's
        // default spin before sleeping, and a long spin, to show what spinning buys
        // and what it costs; then the pipe.
        let mut lat: Vec<(Mech, u64, String)> = Vec::new();
        let mut spins = vec![0, shm_common::ring::DEFAULT_SPIN_MICROS];
        spins.extend(e2e::OTHER_SPINS);
        spins.sort_unstable();
        spins.dedup();
        for s in spins {
            lat.push((
                Mech::Ring,
                s,
                format!("ring-spin{s}{}", if s == 0 { "" } else { "us" }),
            ));
        }
        lat.push((Mech::PipeWrite, 0, "pipe".into()));
        for (mech, spin_us, name) in lat {
            check()?;
            progress(&format!("latency {name} {}", place.name()));
            let m = median_of(cfg.reps, true, || {
                bench::latency_once(&cfg, mech, 64, place, spin_us)
            })?;
            rows.push(bench::row("latency", &name, 64, place, &m));
        }
        if let Some(exe) = &ice {
            rows.extend(iceoryx2::latency_rows(&cfg, exe, place)?);
        }
    }

    // 5. End to end with the real binaries, and the spin section's streaming rows
    // (the same kind of run), all interleaved.
    let plan = e2e::Plan {
        bytes: e2e_bytes,
        reps: e2e_reps,
        placements: cfg.placements.clone(),
        data_dir: runner::exe_dir()?.join("../bench-data"),
        table: !args.no_e2e,
        spin: !args.no_spin,
    };
    if plan.table || plan.spin {
        check()?;
        rows.extend(e2e::run(&plan, &tools)?);
    }
    // 6. The reader's CPU while its session is idle.
    if !args.no_spin {
        check()?;
        rows.extend(e2e::idle_rows(idle_secs)?);
    }

    // Output.
    for (section, title) in [
        ("memcpy", "single-thread memcpy (hot buffers)"),
        ("transport", "transport: streaming, 1 producer + 1 consumer process; ratio = against pipe-write at the same size and placement"),
        ("2x2", "2 writers x 2 readers on one shared ring; ratio = against pipe-write (1x1, unpinned)"),
        ("latency", "latency: ping-pong round trips, 64-byte messages; ring-spinN = both sides' reader spin N us before sleeping (0: blocking)"),
        ("e2e", "end to end: page-cached file F, GB/s = 10^9 B/s median (min-max) of the repetitions; CPU s/GiB = user+sys of every process of the run, reader s = the reader alone; x pv|cat and x cat|cat = against that pipeline to the same sink, x cat>nul = against cat F > /dev/null; all at the same placement"),
        ("spin", "spin: the reader's CPU cost; idle = writer joined and sending nothing (after one burst: it sent one slot first), idle ms = the reader's CPU over the idle window (from 50 ms after it started), life ms = over its whole life; stream = writer F + reader > /dev/null as in the end-to-end table, reader s = the reader's CPU s/GiB"),
    ] {
        let t = report::table(&rows, section);
        if !t.is_empty() {
            println!("\n## {title}\n{t}");
        }
    }
    if let Some(t) = checksum_table {
        println!("\n## checksum: CRC-32C kernels, one thread, hot buffers\n{t}");
    }
    std::fs::create_dir_all(&args.out_dir)?;
    let settings = vec![
        ("mode", if quick { "quick" } else { "full" }.to_string()),
        ("secs_per_run", cfg.secs.to_string()),
        ("reps", cfg.reps.to_string()),
        ("ring_batch", cfg.batch.to_string()),
        (
            "ring_slots",
            cfg.slots.map_or(
                format!(
                    "{} MiB worth, 16..=4096",
                    shm_common::layout::DEFAULT_RING_BYTES >> 20
                ),
                |s| s.to_string(),
            ),
        ),
        ("iceoryx2", ice_note),
        ("e2e_bytes", e2e_bytes.to_string()),
        ("e2e_reps", e2e_reps.to_string()),
        ("e2e_tmpfs", tmpfs_note),
        ("e2e_pv", pv_note),
        (
            "reader_default_spin_us",
            shm_common::ring::DEFAULT_SPIN_MICROS.to_string(),
        ),
        ("spin_idle_secs", idle_secs.to_string()),
    ];
    std::fs::write(args.out_dir.join("latest.csv"), report::csv(&rows))?;
    std::fs::write(
        args.out_dir.join("latest.json"),
        report::json(&rows, &machine, &settings),
    )?;
    let model = machine.first().map_or(String::new(), |(_, v)| v.clone());
    let svg = args.out_dir.join("throughput.svg");
    report::chart(&rows, "unpinned", &format!("{model}, {cpus} CPUs"), &svg)?;
    println!(
        "\nwrote {}, {} and {}",
        args.out_dir.join("latest.csv").display(),
        args.out_dir.join("latest.json").display(),
        svg.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_extensions_name_each_flag() {
        let info = "processor\t: 0\nflags\t\t: fpu sse4_2 avx2 pclmulqdq\nflags : avx512f\n";
        assert_eq!(
            vector_extensions(info),
            "sse4_2=yes pclmulqdq=yes avx2=yes avx512f=no vpclmulqdq=no"
        );
        assert!(vector_extensions("").ends_with("vpclmulqdq=no"));
    }
}
