//! `shm-inspect`: shows what is at a System V key (segment, header, semaphore set,
//! ring) without changing anything. What it looks at comes from `shm_common::view`; how it is shown is in this crate.
#![forbid(unsafe_code)]

use clap::Parser;
use shm_cli::{report, signals};
use shm_common::IpcKey;
use shm_inspect::{json, look_once, page, plain, watch};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

/// Look at the segment, the semaphore set and the ring at a key, read-only.
///
/// Uses only shmctl(IPC_STAT), a read-only shmat (SHM_RDONLY) and the reading semctl
/// commands (IPC_STAT, GETALL, GETPID, GETNCNT, GETZCNT): it never changes a value,
/// never writes the segment and never removes anything. Run it in a third terminal
/// next to `writer` and `reader` with --watch to see the ring fill and drain.
#[derive(Parser, Debug)]
#[command(version, after_help = AFTER_HELP)]
struct Args {
    /// IPC key: 0x1234abcd, decimal, or path:FILE (ftok(FILE, 'S')). Default: 0x53 and
    /// the low 24 bits of your uid (0x530003e8 for uid 1000), one per user.
    #[arg(long, value_parser = IpcKey::parse)]
    key: Option<IpcKey>,
    /// Print JSON instead of text (same content as the plain format).
    #[arg(long, conflicts_with = "watch")]
    json: bool,
    /// Print the stable `name: k=v` text format even on a terminal.
    #[arg(long, conflicts_with_all = ["json", "watch"])]
    plain: bool,
    /// Look again every SECS seconds (default 0.5) until q or Ctrl-C: a live view
    /// fitted to the terminal (on the alternate screen), or, when standard output is
    /// not a terminal, the plain format once per interval.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "0.5")]
    watch: Option<f64>,
    /// The --watch view in one column, as on a half-width pane (chosen by itself
    /// below 60 columns).
    #[arg(long, requires = "watch")]
    compact: bool,
    /// Ring cells per row in the terminal picture (at most, in --watch: a narrow
    /// terminal gets fewer).
    #[arg(long, default_value_t = 64)]
    width: usize,
}

const AFTER_HELP: &str = "\
Output:
  on a terminal, a readable page with the ring drawn as one cell per slot
  (. free, # filled, w being written, r being read; H = HEAD, T = TAIL);
  with --watch, a live view that fits the terminal (a big ring is drawn one cell
  per 2, 4, 8... slots; : marks a cell with free and filled slots); q quits;
  otherwise (or with --plain) a stable text format, one `name: k=v ...` record per
  line and one `sem NAME value=.. pid=.. ncnt=.. zcnt=..` line per semaphore.
  The `verdict:` line says what is at the key: nothing, ours, foreign, incomplete
  (being created, or a crash's leftover) or unreadable (permission).

Exit codes:
  0  looked (whatever is at the key, even nothing)
  1  output error
  2  bad command line";

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => ExitCode::from(report::error("shm-inspect", &e)),
    }
}

fn run(args: &Args) -> shm_common::Result<()> {
    let key = match args.key {
        Some(k) => k,
        None => IpcKey::default_for_user()?,
    };
    let io = |e: std::io::Error| shm_common::Error::Io {
        what: "writing standard output".into(),
        source: e,
    };
    let mut out = std::io::stdout().lock();
    if let Some(secs) = args.watch {
        if !(secs.is_finite() && (0.05..=3600.0).contains(&secs)) {
            return Err(shm_common::Error::InvalidArgument {
                what: "--watch",
                reason: format!("{secs} is not between 0.05 and 3600 seconds"),
            });
        }
        signals::install()?;
        let opts = watch::Options {
            interval: Duration::from_secs_f64(secs),
            interval_secs: secs,
            compact: args.compact,
            max_cells: args.width,
        };
        let stop = &shm_common::cancel::requested;
        if std::io::stdout().is_terminal() {
            drop(out);
            watch::on_terminal(key, &opts, stop).map_err(|e| shm_common::Error::Io {
                what: "drawing on the terminal".into(),
                source: e,
            })?;
        } else {
            watch::plain_lines(key, &opts, &mut out, stop).map_err(io)?;
        }
        return Ok(());
    }
    let report = look_once(key);
    let text = if args.json {
        json::json(&report)
    } else if args.plain || !std::io::stdout().is_terminal() {
        plain::plain(&report)
    } else {
        page::page(&report, args.width)
    };
    out.write_all(text.as_bytes()).map_err(io)?;
    out.flush().map_err(io)
}
