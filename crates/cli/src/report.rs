//! How the binaries speak: every message one line (or an error line and its hint)
//! written with one `write(2)`, so that two processes sharing a terminal never
//! interleave inside a line; and nothing that can go wrong with stderr itself (full,
//! closed, a pipe nobody reads) ever stops or crashes the program: a diagnostic
//! channel must never decide the fate of the data.

use crate::exit;
use shm_common::{Error, IpcKey};
use std::io::Write;

/// Writes `text` to stderr in one `write(2)` (as far as the kernel takes it at
/// once), ignoring any error.
pub fn stderr(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// `NAME: MESSAGE` on stderr, one line, one write.
pub fn note(name: &str, message: &str) {
    stderr(&format!("{name}: {message}\n"));
}

/// One line telling the user what to do next, if there is something useful to say.
pub fn hint(e: &Error) -> Option<String> {
    match e {
        Error::InvalidArgument { what, .. } => Some(format!(
            "nothing was created; see --help for the accepted {what}"
        )),
        Error::Permission { key, .. } => Some(format!(
            "the objects at key {key} belong to another user or have a narrower mode \
             (`ipcs -m -s` lists owners and modes); use your own key (leave out --key), \
             or ask the owner to start the writer with --mode 666"
        )),
        Error::Conflict {
            remove_hint: Some(cmd),
            ..
        } => Some(format!("if it is safe to discard, remove it with: {cmd}")),
        Error::Conflict { key, .. } => Some(format!(
            "pick another key with --key, or wait for the session at {key} to end"
        )),
        Error::Limit { .. } => Some(
            "see `ipcs -l` for the limits and `ipcs` for what uses them; `make clean` \
             removes leftovers of ours"
                .into(),
        ),
        // Whoever finds a session corrupt removes it when it proves ours; say which
        // way it went rather than suggest a cleanup that is already done.
        Error::Corrupt { key, .. } if nothing_at(*key) => Some(format!(
            "something other than our pair changed the session; its objects are removed \
             and nothing is left at {key}"
        )),
        Error::Corrupt { key, .. } => Some(format!(
            "something other than our pair wrote to the segment; once nobody uses it, \
             `writer --remove --force --key {key}` (or `make clean KEY={key} FORCE=1`) \
             removes it"
        )),
        Error::PeerGone { key, .. } => Some(format!(
            "everything delivered before the failure is intact; `ipcs` should show \
             nothing left at {key} (otherwise `make clean KEY={key}`)"
        )),
        Error::Sys { key, .. } => Some(format!(
            "inspect with `ipcs -m -s` (key {key}); `make clean KEY={key}` removes our \
             objects"
        )),
        Error::Internal { .. } => Some(
            "this is a bug in the program, not a problem of the machine; please report it".into(),
        ),
        Error::Interrupted { .. } | Error::Io { .. } => None,
    }
}

/// Prints `NAME: error: ...` and, if there is one, `NAME: hint: ...` (one write);
/// returns the error's exit code.
pub fn error(name: &str, e: &Error) -> u8 {
    let mut text = format!("{name}: error: {e}\n");
    if let Some(h) = hint(e) {
        text.push_str(&format!("{name}: hint: {h}\n"));
    }
    stderr(&text);
    exit::code(e)
}

/// The outcome of a run: the summary line (unless `quiet`) and exit 0, or the error
/// report and its code.
pub fn finish<T: std::fmt::Display>(name: &str, result: shm_common::Result<T>, quiet: bool) -> u8 {
    match result {
        Ok(summary) => {
            if !quiet {
                stderr(&format!("{summary}\n"));
            }
            exit::OK
        }
        Err(e) => error(name, &e),
    }
}

/// `writer --remove`: removes our unused objects at `key` (the default key if
/// `None`), reporting on stderr; a finished stream waiting for its reader only with
/// `force`. Returns the exit code.
pub fn remove(name: &str, key: Option<IpcKey>, force: bool, quiet: bool) -> u8 {
    use shm_common::session::{remove_session, Cleanup};
    let result = key
        .map_or_else(IpcKey::default_for_user, Ok)
        .and_then(|k| Ok((k, remove_session(k, force)?)));
    match result {
        Ok((k, Cleanup::Nothing)) => {
            if !quiet {
                note(name, &format!("nothing of ours at key {k}"));
            }
            exit::OK
        }
        Ok((k, Cleanup::Removed(what))) => {
            if !quiet {
                note(name, &format!("removed our objects at key {k}: {what}"));
            }
            exit::OK
        }
        Err(e) => error(name, &e),
    }
}

/// Whether neither a segment nor a semaphore set exists at `key` (a lookup only).
fn nothing_at(key: shm_common::IpcKey) -> bool {
    matches!(shm_common::segment::find(key), Ok(None))
        && matches!(shm_common::semaphore::find(key), Ok(None))
}
