//! `shm-race`: the ring without semaphores, next to the ring with them. The runs are
//! in `shm_inspect::race`, what is printed in `shm_inspect::race::report`.
#![forbid(unsafe_code)]

use clap::{Parser, ValueEnum};
use shm_cli::{exit, parse, report, signals};
use shm_common::{Geometry, IpcKey};
use shm_inspect::race::{self, report as text, RaceConfig, Window};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// The bounded buffer WITHOUT its semaphores, then WITH them.
///
/// Runs the classic handout's shared counter (`count++`/`count--`, two busy
/// loops) and counts what the checksums and sequence numbers catch: torn,
/// lost, duplicated and read-before-write frames; then the same frames
/// through the real protocol. The window between the load and the store of
/// `count` is widened (--window), so that the lost update happens within a
/// few frames, on one CPU or many; the run ends with an example of it.
///
/// The unsynchronized run is broken on purpose: it refuses to start without
/// --i-understand-this-is-broken. It works on its own segment at a fresh key
/// (0x5ace....) and removes it at the end, on errors and on Ctrl-C.
//
// (Help texts are verbatim and short: this clap is built without `wrap_help`,
// and everything shm-race prints fits 80 columns.)
#[derive(Parser, Debug)]
#[command(version, after_help = AFTER_HELP, verbatim_doc_comment, next_line_help = true)]
struct Args {
    /// Required: acknowledges that the first run corrupts its data on purpose.
    #[arg(long)]
    i_understand_this_is_broken: bool,
    /// Which runs: both, unsynchronized or synchronized.
    #[arg(long, value_enum, default_value_t = Which::Both, hide_possible_values = true)]
    run: Which,
    /// Key to use (must be free). Default: a fresh 0x5ace.... key.
    #[arg(long, value_parser = IpcKey::parse)]
    key: Option<IpcKey>,
    /// Frames to send in each run.
    #[arg(long, default_value_t = 20_000)]
    frames: u64,
    /// Slots in the ring (small: the two sides meet often).
    #[arg(long, default_value_t = 8, value_parser = parse::parse_count)]
    slots: u32,
    /// Bytes per slot incl. its header: 128, 192, 256, ...
    #[arg(long, default_value = "256", value_parser = parse::parse_size)]
    slot_size: u32,
    /// What a preempted count++/count-- does mid-update.
    ///
    /// `yield`: sched_yield(), for at least 5 us; a sleep such as `20us`
    /// or `1ms`; or `none`: the handout as compiled (may catch nothing).
    /// One update in two, at random, is preempted.
    #[arg(
        long,
        default_value_t = Window::DEFAULT,
        value_parser = Window::parse,
        verbatim_doc_comment
    )]
    window: Window,
    /// Also print run 1's first N events (both threads, merged).
    #[arg(long, value_name = "N", default_value_t = 0)]
    events: usize,
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
Each run ends with `result MODE key=value ...` lines for scripts (as many as
fit in 80 columns; join them): frames_written reads delivered torn lost
duplicates read_before_write out_of_order anomalies elapsed_ms cut_short, and
for the unsynchronized run also lost_updates lost_increments lost_decrements
window caught=yes|no.

Exit codes:
  0    the runs completed: the unsynchronized run (if done) caught the race,
       the synchronized run (if done) found no anomaly
  2    bad command line, or the unsynchronized run was asked for without
       --i-understand-this-is-broken
  3    the key is in use
  8    the synchronized run found an anomaly (a bug in the real protocol)
  9    the unsynchronized run caught no race this time (a lucky run: the code
       is just as wrong)
  130  interrupted (everything created was removed)";

const BANNER: &str = "\
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!!  RACE DEMONSTRATION: this run uses the ring WITHOUT semaphores.           !!
!!  Its data is corrupted ON PURPOSE. Never use this as a way to move data.  !!
!!  It works on its own segment at a fresh key and removes it at the end.    !!
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
";

/// The synchronized run found an anomaly.
const SYNC_ANOMALY: u8 = 8;
/// The unsynchronized run caught nothing.
const NO_RACE_CAUGHT: u8 = 9;

/// Writes one message to stdout with one `write(2)` (the message ends with a
/// newline, so the line-buffered stdout passes it straight through), ignoring
/// errors: a closed stdout or a broken pipe (`| head -1`) must neither panic nor
/// stop the run, which still has its segment to remove.
fn say(message: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(message.as_bytes());
    let _ = out.flush();
}

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
        window: args.window,
    };
    let (unsync, sync) = (
        args.run != Which::Synchronized,
        args.run != Which::Unsynchronized,
    );
    if unsync {
        report::stderr(BANNER);
    }
    say(&text::intro(&cfg, unsync, sync));
    let first = unsync.then(|| race::run_unsynchronized(&cfg)).transpose()?;
    let second = sync.then(|| race::run_synchronized(&cfg)).transpose()?;
    say(&text::table(first.as_ref(), second.as_ref()));
    let mut code = exit::OK;
    let mut verdicts = String::new();
    let mut results = String::new();
    if let Some(u) = first.as_ref().filter(|_| args.events > 0) {
        say(&format!(
            "The first {} events of run 1 (LOST: missing from `count` as of the last\n\
             event shown; a later store computed from it can bring it back):\n{}",
            args.events,
            u.timeline(args.events)
        ));
    }
    if let Some(u) = &first {
        if let Some(story) = u.story() {
            say(&story);
        }
        verdicts.push_str(&text::unsynchronized_verdict(u));
        results.push_str(&text::result_lines("unsynchronized", &u.tally, Some(u)));
        if !u.caught() {
            code = NO_RACE_CAUGHT;
        }
    }
    if let Some(t) = &second {
        verdicts.push_str(&text::synchronized_verdict(t));
        results.push_str(&text::result_lines("synchronized", t, None));
        if t.anomalies() > 0 || t.delivered != t.frames_written {
            code = SYNC_ANOMALY;
        }
    }
    say(&verdicts);
    say(&results);
    Ok(code)
}
