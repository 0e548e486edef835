//! Pieces both binaries share: argument parsers for clap and the way a result
//! becomes a summary line, an error line with a hint, and an exit code.

use crate::error::{exit, Error, Result};
use crate::stream::Summary;

/// Parses a byte count: plain, or with a K/M/G suffix (powers of 1024).
pub fn parse_size(text: &str) -> Result<u32> {
    let bad = || Error::InvalidArgument {
        what: "size",
        reason: format!("{text:?} is not a size (e.g. 4096, 64K, 1M)"),
    };
    let t = text.trim();
    let (digits, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&t[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let v = n.checked_mul(mult).ok_or_else(bad)?;
    u32::try_from(v).map_err(|_| Error::InvalidArgument {
        what: "size",
        reason: format!("{text} is larger than 4 GiB"),
    })
}

/// Parses a count such as `--slots`: a plain positive decimal number.
pub fn parse_count(text: &str) -> Result<u32> {
    text.trim()
        .parse::<u32>()
        .map_err(|_| Error::InvalidArgument {
            what: "count",
            reason: format!("{text:?} is not a whole number from 0 to 4294967295"),
        })
}

/// Parses `--batch`: how many frames one `semop` may move, 1..=32767 (a `sem_op`
/// is a signed 16-bit number).
pub fn parse_batch(text: &str) -> Result<u32> {
    match parse_count(text)? {
        n @ 1..=32767 => Ok(n),
        n => Err(Error::InvalidArgument {
            what: "--batch",
            reason: format!("{n} is outside 1..=32767"),
        }),
    }
}

/// Parses permission bits in octal (`600`, `0640`); only the 0o777 bits are allowed.
pub fn parse_mode(text: &str) -> Result<u32> {
    let t = text.trim().trim_start_matches("0o");
    match u32::from_str_radix(t, 8) {
        Ok(m) if m <= 0o777 && m & 0o600 == 0o600 => Ok(m),
        Ok(_) => Err(Error::InvalidArgument {
            what: "mode",
            reason: format!("{text} must be octal, at most 777, and keep the owner's rw (600)"),
        }),
        Err(_) => Err(Error::InvalidArgument {
            what: "mode",
            reason: format!("{text:?} is not an octal mode such as 600 or 660"),
        }),
    }
}

/// The exit-code table for `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    success: the whole stream was sent/received
  1    other operating-system or I/O error
  2    bad command line (invalid key, size, count, mode)
  3    conflict: something at the key we must not use (not ours, or busy)
  4    the peer died, the stream was cut short, or the objects were removed
  5    permission denied by the kernel
  6    corrupt data in the segment (bad header or checksum)
  7    a kernel limit was reached (shmmax, shmmni, semmni...)
  130  interrupted by SIGINT/SIGTERM/SIGHUP (after cleaning up)";

/// The exit-code table for the reader's `--help`.
pub const READER_EXIT_CODES_HELP: &str = "\
Exit codes:
  0    success: the whole stream was received
  1    other operating-system or I/O error (e.g. writing the output)
  2    bad command line (invalid key or count)
  3    conflict: something at the key we must not use (not ours, or a byte-stream
       session that already has its reader)
  4    the writer died, the stream was cut short, or the objects were removed
  5    permission denied by the kernel
  6    corrupt data in the segment (bad header or checksum)
  7    a kernel limit was reached
  130  interrupted by SIGINT/SIGTERM/SIGHUP (after cleaning up)";

/// Prints the outcome the way both binaries do and returns the exit code:
/// the summary line (unless `quiet`), or `NAME: error: ...` plus `hint: ...`.
pub fn finish(name: &str, result: Result<Summary>, quiet: bool) -> u8 {
    match result {
        Ok(summary) => {
            if !quiet {
                eprintln!("{summary}");
            }
            exit::OK
        }
        Err(e) => report(name, &e),
    }
}

/// Prints `NAME: error: ...` and, if the error has one, `NAME: hint: ...` on stderr;
/// returns the error's exit code.
fn report(name: &str, e: &Error) -> u8 {
    eprintln!("{name}: error: {e}");
    if let Some(h) = e.hint() {
        eprintln!("{name}: hint: {h}");
    }
    e.exit_code()
}

/// Routes SIGINT, SIGTERM and SIGHUP (ctrlc's `termination` feature) to
/// [`crate::cancel::request`], so every wait gives up within [`crate::cancel::POLL`]
/// and the process leaves the session cleanly instead of dying mid-step.
pub fn install_signal_handler() -> Result<()> {
    ctrlc::set_handler(crate::cancel::request).map_err(|e| Error::Io {
        what: "installing the signal handler".into(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// `writer --remove`: removes our unused objects at `key` (default key if `None`),
/// reporting on stderr; returns the exit code.
pub fn remove(name: &str, key: Option<crate::key::IpcKey>, quiet: bool) -> u8 {
    use crate::session::{remove_session, Cleanup};
    let result = key
        .map_or_else(crate::key::IpcKey::default_for_user, Ok)
        .and_then(|k| Ok((k, remove_session(k)?)));
    match result {
        Ok((k, Cleanup::Nothing)) => {
            if !quiet {
                eprintln!("{name}: nothing of ours at key {k}");
            }
            exit::OK
        }
        Ok((k, Cleanup::Removed(what))) => {
            if !quiet {
                eprintln!("{name}: removed our objects at key {k}: {what}");
            }
            exit::OK
        }
        Err(e) => report(name, &e),
    }
}

/// A progress bar on stderr for long transfers, only when stderr is a terminal (and
/// not `quiet`): bytes and rate, plus percent and ETA when the total is known (a file
/// argument). Returns `None` otherwise, so nothing of it reaches a pipe or a log.
pub fn progress_bar(total: Option<u64>, quiet: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let (bar, template) = match total {
        Some(n) => (
            indicatif::ProgressBar::new(n),
            "{bar:30} {percent:>3}% {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        ),
        None => (
            indicatif::ProgressBar::no_length(),
            "{spinner} {bytes} {bytes_per_sec}",
        ),
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    // Only start drawing after a second, so short interactive runs stay uncluttered.
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
    Some(bar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").ok(), Some(4096));
        assert_eq!(parse_size("64K").ok(), Some(65536));
        assert_eq!(parse_size("1m").ok(), Some(1 << 20));
        assert!(parse_size("4G").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("junk").is_err());
        assert!(parse_size("99999999999999999999K").is_err());
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("600").ok(), Some(0o600));
        assert_eq!(parse_mode("0666").ok(), Some(0o666));
        assert!(parse_mode("1777").is_err());
        assert!(parse_mode("400").is_err());
        assert!(parse_mode("9").is_err());
    }
}
