//! `writer`: sends a file or standard input through a System V shared-memory ring.
//! All logic is in `shm_common`; this file parses arguments and reports.
#![forbid(unsafe_code)]

use clap::Parser;
use shm_cli::{args, exit, explain, parse, progress, report, signals, stdio};
use shm_common::{layout, stream, Geometry, IpcKey};
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::process::ExitCode;

/// Send FILE (or standard input) byte for byte through a System V shared-memory
/// segment to `reader`, synchronised by System V semaphores.
///
/// Either side may start first. Without --persist the writer, once done, waits until
/// a reader has joined; the last process to leave removes the segment and the
/// semaphore set. With --lines each line is a message and several writers may share
/// the key.
#[derive(Parser, Debug)]
#[command(version, after_help = exit::WRITER_HELP, max_term_width = 80)]
struct Args {
    /// File to send; standard input if absent.
    file: Option<std::path::PathBuf>,
    /// IPC key: 0x1234abcd, decimal, or path:FILE (ftok(FILE, 'S')). Default: 0x53 and
    /// the low 24 bits of your uid (0x530003e8 for uid 1000), one per user.
    #[arg(long, value_parser = IpcKey::parse)]
    key: Option<IpcKey>,
    /// Number of slots in the ring (1..=32767), if this writer creates it. Default: as
    /// many as fit in 4 MiB, between 16 and 4096 (64 with the default slot size).
    #[arg(long, value_parser = parse::parse_count)]
    slots: Option<u32>,
    /// Bytes per slot including the 32-byte frame header, if this writer creates the
    /// ring: a multiple of 64 (K/M suffixes). Default 64K, or 8K with --lines.
    #[arg(long, value_parser = parse::parse_size)]
    slot_size: Option<u32>,
    /// Most frames taken or published per semop.
    #[arg(long, default_value_t = shm_common::ring::DEFAULT_MAX_BATCH, value_parser = parse::parse_batch)]
    batch: u32,
    /// Permission bits (octal) for the segment and semaphore set it creates.
    #[arg(long, default_value = "600", value_parser = parse::parse_mode)]
    mode: u32,
    /// Finish without waiting for a reader: the objects keep the stream until one comes.
    #[arg(long)]
    persist: bool,
    /// Send each input line as its own message, and share the key with other --lines
    /// writers. A line longer than a slot's payload (slot size - 32) is split across
    /// messages.
    #[arg(long)]
    lines: bool,
    /// Slow motion for watching (with --explain or shm-inspect --watch): publish one
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
    /// Remove our segment and semaphore set at the key instead of sending: only objects
    /// that carry our magic, and only if unused (exit 3 otherwise).
    #[arg(long, conflicts_with_all = ["file", "persist", "lines"])]
    remove: bool,
    /// With --remove: also remove a finished stream that is still waiting for its
    /// reader (its bytes are lost).
    #[arg(long, requires = "remove")]
    force: bool,
    /// No notes, summary or progress bar on stderr (errors, and --explain, still print).
    #[arg(short, long)]
    quiet: bool,
}

/// Reader options a writer is given by mistake, and what to say instead of clap's
/// nearest-spelling guess.
const READER_OPTIONS: &[args::Misplaced] = &[
    args::Misplaced {
        flag: "--tag",
        hint: "--tag is a reader option (it prefixes each line with its writer)",
    },
    args::Misplaced {
        flag: "--spin",
        hint: "--spin is a reader option (how long a reader watches for data before sleeping)",
    },
];

fn main() -> ExitCode {
    let args: Args = args::parse("writer", READER_OPTIONS);
    if args.remove {
        return ExitCode::from(report::remove("writer", args.key, args.force, args.quiet));
    }
    ExitCode::from(report::finish("writer", run(&args), args.quiet))
}

fn run(args: &Args) -> shm_common::Result<stream::Summary> {
    let key = match args.key {
        Some(k) => k,
        None => IpcKey::default_for_user()?,
    };
    let slot_size = args.slot_size.unwrap_or(if args.lines {
        layout::DEFAULT_LINES_SLOT_SIZE
    } else {
        layout::DEFAULT_SLOT_SIZE
    });
    let slots = args.slots.unwrap_or(layout::default_slots(slot_size));
    let geometry = Geometry::new(slots, slot_size)?;
    let style = if args.compact {
        explain::Style::Compact
    } else {
        explain::Style::Full
    };
    let _narration = args.explain.then(|| explain::enable("writer", style));
    signals::install()?;
    let cfg = stream::WriterConfig {
        key,
        geometry,
        mode: args.mode,
        persist: args.persist,
        lines: args.lines,
        max_batch: args.batch,
        delay: std::time::Duration::from_millis(args.delay),
    };
    let mut input: Box<dyn stream::Input> = match &args.file {
        Some(path) => Box::new(stdio::open_input(path)?),
        // Standard input unbuffered, as a plain File on fd 0: the writer waits for input
        // with poll(2) on the descriptor, which cannot see bytes already sitting in
        // Stdin's internal buffer. A stdin closed at start is refused, not sent as an
        // empty stream.
        None => Box::new(std::fs::File::from({
            stdio::require_open(std::io::stdin().as_fd(), "standard input")?;
            std::io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| shm_common::Error::Io {
                    what: "duplicating standard input".into(),
                    source: e,
                })?
        })),
    };
    // Percent and ETA need a total: known for a regular file argument only.
    let total = args
        .file
        .as_ref()
        .and_then(|p| std::fs::metadata(p).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len());
    let progress = progress::Progress::new(
        total,
        progress::Quiet {
            asked: args.quiet,
            explaining: args.explain,
            terminal_busy: args.file.is_none() && std::io::stdin().is_terminal(),
        },
    );
    let quiet = args.quiet;
    let note = |m: String| {
        if !quiet {
            progress.note("writer", &m);
        }
    };
    let result = stream::run_writer(&cfg, &mut *input, &note, &|n| progress.update(n));
    progress.finish();
    result
}
