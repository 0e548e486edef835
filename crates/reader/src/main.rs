//! `reader`: writes everything a `writer` sends through the shared-memory ring to
//! standard output. All logic is in `shm_common`; this file parses and reports.
#![forbid(unsafe_code)]

use clap::Parser;
use shm_cli::{args, exit, explain, parse, progress, report, signals, stdio};
use shm_common::{stream, IpcKey};
use std::io::IsTerminal;
use std::process::ExitCode;

/// Receive the stream a `writer` sends through a System V shared-memory segment and
/// write it to standard output; waits for the writer if it has not started yet.
#[derive(Parser, Debug)]
#[command(version, after_help = exit::READER_HELP, max_term_width = 80)]
struct Args {
    /// IPC key: 0x1234abcd, decimal, or path:FILE (ftok(FILE, 'S')). Default: 0x53 and
    /// the low 24 bits of your uid (0x530003e8 for uid 1000), one per user.
    #[arg(long, value_parser = IpcKey::parse)]
    key: Option<IpcKey>,
    /// Prefix each message with "[writer N] " (for --lines writers).
    #[arg(long)]
    tag: bool,
    /// Most frames taken per semop.
    #[arg(long, default_value_t = shm_common::ring::DEFAULT_MAX_BATCH, value_parser = parse::parse_batch)]
    batch: u32,
    /// Spin up to MICROS microseconds (at most 1000000) watching for data before
    /// sleeping in semop, but only while the writer is active (an idle reader sleeps
    /// at once): a wake-up costs microseconds, a short spin none; 0 never spins.
    #[arg(long, value_name = "MICROS", default_value_t = shm_common::ring::DEFAULT_SPIN_MICROS,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    spin: u64,
    /// Slow motion for watching (with --explain or shm-inspect --watch): take one
    /// message per semop and pause MS milliseconds after each.
    #[arg(long, value_name = "MS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=60_000))]
    delay: u64,
    /// Narrate every System V call on stderr, as C: one line per call with its reason.
    #[arg(long)]
    explain: bool,
    /// With --explain: each call wrapped to 80 columns, its reason on a line of its own.
    #[arg(long, requires = "explain")]
    compact: bool,
    /// No notes, summary or progress bar on stderr (errors, and --explain, still print).
    #[arg(short, long)]
    quiet: bool,
}

/// Writer options a reader is given by mistake, and what to say instead of clap's
/// nearest-spelling guess.
const WRITER_OPTIONS: &[args::Misplaced] = &[
    args::Misplaced {
        flag: "--persist",
        hint: "--persist is a writer option (the writer finishes without waiting and the \
               stream waits in the kernel); a reader always waits for its writer",
    },
    args::Misplaced {
        flag: "--lines",
        hint: "--lines is a writer option; a reader takes a --lines session as it is \
               (add --tag to see which writer sent each line)",
    },
    args::Misplaced {
        flag: "--slots",
        hint: "the writer that creates the session picks its geometry (--slots, \
               --slot-size); a reader takes it from the header",
    },
    args::Misplaced {
        flag: "--slot-size",
        hint: "the writer that creates the session picks its geometry (--slots, \
               --slot-size); a reader takes it from the header",
    },
];

fn main() -> ExitCode {
    let args: Args = args::parse("reader", WRITER_OPTIONS);
    ExitCode::from(report::finish("reader", run(&args), args.quiet))
}

fn run(args: &Args) -> shm_common::Result<stream::Summary> {
    let key = match args.key {
        Some(k) => k,
        None => IpcKey::default_for_user()?,
    };
    // A stdout closed at start would swallow the stream: refuse before joining.
    let mut output = stdio::stdout_file()?;
    let style = if args.compact {
        explain::Style::Compact
    } else {
        explain::Style::Full
    };
    let _narration = args.explain.then(|| explain::enable("reader", style));
    signals::install()?;
    let cfg = stream::ReaderConfig {
        key,
        tag: args.tag,
        max_batch: args.batch,
        spin: Some(std::time::Duration::from_micros(args.spin)),
        delay: std::time::Duration::from_millis(args.delay),
    };
    let progress = progress::Progress::new(
        None,
        progress::Quiet {
            asked: args.quiet,
            explaining: args.explain,
            terminal_busy: std::io::stdout().is_terminal(),
        },
    );
    let quiet = args.quiet;
    let note = |m: String| {
        if !quiet {
            progress.note("reader", &m);
        }
    };
    let result = stream::run_reader(&cfg, &mut output, &note, &|n| progress.update(n));
    progress.finish();
    result
}
