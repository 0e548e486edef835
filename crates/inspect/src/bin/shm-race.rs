//! `shm-race`: the ring without semaphores, next to the ring with them. The runs are
//! in `shm_inspect::race`.
#![forbid(unsafe_code)]

use clap::{Parser, ValueEnum};
use shm_cli::{exit, parse, report, signals};
use shm_common::{Geometry, IpcKey};
use shm_inspect::race::{self, RaceConfig};
use std::process::ExitCode;
use std::time::Duration;

/// Run the bounded buffer WITHOUT its semaphores (the classic handout's shared
/// counter), then WITH them, and count what the checksums and sequence numbers
/// catch: torn, lost, duplicated and read-before-write frames.
///
/// The unsynchronized run is broken on purpose. It refuses to start without
/// --i-understand-this-is-broken. It works on its own segment at a fresh key
/// (0x5ace....) and removes it at the end, on errors and on Ctrl-C.
#[derive(Parser, Debug)]
#[command(version, after_help = AFTER_HELP)]
struct Args {
    /// Required: acknowledges that the first run corrupts its data on purpose.
    #[arg(long)]
    i_understand_this_is_broken: bool,
    /// Which runs to do.
    #[arg(long, value_enum, default_value_t = Which::Both)]
    run: Which,
    /// Key to use (must be free). Default: a fresh key in 0x5ace0000..0x5aceffff.
    #[arg(long, value_parser = IpcKey::parse)]
    key: Option<IpcKey>,
    /// Frames to send in each run.
    #[arg(long, default_value_t = 200_000)]
    frames: u64,
    /// Slots in the ring (small: the two sides meet often).
    #[arg(long, default_value_t = 8, value_parser = parse::parse_count)]
    slots: u32,
    /// Bytes per slot, frame header included (multiple of 64).
    #[arg(long, default_value = "256", value_parser = parse::parse_size)]
    slot_size: u32,
    /// Time limit per run, in seconds.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    /// Without semaphores, then with them.
    Both,
    /// Only the broken run.
    Unsynchronized,
    /// Only the correct run (needs no acknowledgement).
    Synchronized,
}

const AFTER_HELP: &str = "\
Each run ends with one stable line for scripts:
  result unsynchronized frames_written=N reads=N delivered=N torn=N lost=N duplicates=N read_before_write=N out_of_order=N anomalies=N elapsed_ms=N cut_short=BOOL
  result synchronized ...

Exit codes:
  0  the runs completed (the synchronized run, if done, found no anomaly)
  2  bad command line, or the unsynchronized run was asked for without
     --i-understand-this-is-broken
  3  the key is in use
  8  the synchronized run found an anomaly (a bug in the real protocol)
  130 interrupted (everything created was removed)";

const BANNER: &str = "\
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!!  RACE DEMONSTRATION: this run uses the ring WITHOUT semaphores.           !!
!!  Its data is corrupted ON PURPOSE. Never use this as a way to move data.  !!
!!  It works on its own segment at a fresh key and removes it at the end.    !!
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!";

fn main() -> ExitCode {
    let args = Args::parse();
    if args.run != Which::Synchronized && !args.i_understand_this_is_broken {
        report::note(
            "shm-race",
            "refusing to run the ring without semaphores: pass \
             --i-understand-this-is-broken (or --run synchronized for the correct run alone)",
        );
        return ExitCode::from(exit::USAGE);
    }
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => ExitCode::from(report::error("shm-race", &e)),
    }
}

fn run(args: &Args) -> shm_common::Result<u8> {
    signals::install()?;
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= 3600.0) {
        return Err(shm_common::Error::InvalidArgument {
            what: "--seconds",
            reason: format!("{} is not between 0 and 3600", args.seconds),
        });
    }
    // A fresh key is claimed for the whole run (the claim drops at the end).
    let mut claim = None;
    let key = match args.key {
        Some(k) => k,
        None => claim.insert(race::fresh_key()?).key(),
    };
    let cfg = RaceConfig {
        key,
        geometry: Geometry::new(args.slots, args.slot_size)?,
        frames: args.frames,
        time_limit: Duration::from_secs_f64(args.seconds),
    };
    let g = cfg.geometry;
    let mut code = exit::OK;
    if args.run != Which::Synchronized {
        report::stderr(&format!("{BANNER}\n"));
        println!(
            "== 1. WITHOUT semaphores: shared `count`, `count++`/`count--` race (key {key}, {} slots of {} bytes, {} frames)",
            g.slots, g.slot_size, cfg.frames
        );
        let t = race::run_unsynchronized(&cfg)?;
        print!("{}", t.explained());
        println!("{}", t.line("unsynchronized"));
    }
    if args.run != Which::Unsynchronized {
        println!(
            "== 2. WITH semaphores: the real Producer/Consumer (key {key}, same geometry, {} frames)",
            cfg.frames
        );
        let t = race::run_synchronized(&cfg)?;
        print!("{}", t.explained());
        println!("{}", t.line("synchronized"));
        if t.anomalies() > 0 || t.delivered != t.frames_written {
            report::note(
                "shm-race",
                "the synchronized run found anomalies: that is a bug",
            );
            code = 8;
        }
    }
    Ok(code)
}
