//! The command line, parsed the way every other message of ours is printed:
//! clap's own errors become `NAME: error: ...` plus a `NAME: hint: ...` (one
//! `write(2)`, exit 2), and `--help`/`--version` go to stdout, failing with exit 1
//! when stdout cannot take them (a help text swallowed by `>/dev/full` must not look
//! like success).

use crate::{exit, report};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use std::io::Write;

/// An option of the *other* binary that users reach for here, and what to say.
#[derive(Debug, Clone, Copy)]
pub struct Misplaced {
    /// The flag as typed: `--persist`.
    pub flag: &'static str,
    /// The hint: why it belongs elsewhere, what to do instead.
    pub hint: &'static str,
}

/// Parses the command line of `name` into `T`, or exits with our report.
pub fn parse<T: clap::Parser>(name: &str, misplaced: &[Misplaced]) -> T {
    match T::try_parse() {
        Ok(args) => args,
        Err(e) => std::process::exit(i32::from(report_clap(name, &e, misplaced))),
    }
}

/// Prints clap's error (or help) our way and returns the exit code.
fn report_clap(name: &str, e: &clap::Error, misplaced: &[Misplaced]) -> u8 {
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let text = e.render().to_string();
        return match std::io::stdout().lock().write_all(text.as_bytes()) {
            Ok(()) => exit::OK,
            Err(err) => {
                report::note(
                    name,
                    &format!("error: writing the help to standard output: {err}"),
                );
                exit::OS_ERROR
            }
        };
    }
    report::stderr(&clap_message(name, e, misplaced));
    exit::USAGE
}

/// `NAME: error: ...` and `NAME: hint: ...` lines for one of clap's errors.
fn clap_message(name: &str, e: &clap::Error, misplaced: &[Misplaced]) -> String {
    let rendered = e.render().to_string();
    let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines
        .next()
        .unwrap_or("error: invalid command line")
        .trim_start_matches("error: ");
    let mut text = format!("{name}: error: {first}\n");
    let typed = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => Some(s.as_str()),
        _ => None,
    };
    let known = typed.and_then(|t| {
        let flag = t.split('=').next().unwrap_or(t);
        misplaced.iter().find(|m| m.flag == flag)
    });
    match known {
        Some(m) => text.push_str(&format!("{name}: hint: {}\n", m.hint)),
        None => {
            // clap's own tips ("a similar argument exists: ..."); the usage line and
            // "For more information" give way to the one hint below.
            for tip in lines.filter_map(|l| l.strip_prefix("tip: ")) {
                text.push_str(&format!("{name}: hint: {tip}\n"));
            }
        }
    }
    if !text.contains("--help") {
        text.push_str(&format!(
            "{name}: hint: `{name} --help` lists the options\n"
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    #[command(name = "reader")]
    struct Demo {
        #[arg(long)]
        tag: bool,
        #[arg(long)]
        spin: Option<u64>,
    }

    const MISPLACED: &[Misplaced] = &[Misplaced {
        flag: "--persist",
        hint: "--persist is a writer option",
    }];

    fn message(args: &[&str]) -> String {
        let e = Demo::try_parse_from(args).expect_err("must fail");
        clap_message("reader", &e, MISPLACED)
    }

    #[test]
    fn every_line_is_prefixed_with_the_program() {
        let m = message(&["reader", "--spin", "x"]);
        assert!(m.lines().all(|l| l.starts_with("reader: ")), "{m}");
        assert!(m.starts_with("reader: error: "), "{m}");
        assert!(m.contains("'x'"), "{m}");
    }

    #[test]
    fn an_option_of_the_other_binary_gets_its_own_hint_not_a_guess() {
        let m = message(&["reader", "--persist"]);
        assert!(m.contains("--persist is a writer option"), "{m}");
        assert!(!m.contains("--version"), "{m}");
    }

    #[test]
    fn help_is_not_an_error() {
        let e = Demo::try_parse_from(["reader", "--help"]).expect_err("help");
        assert_eq!(e.kind(), ErrorKind::DisplayHelp);
    }
}
