//! What [`segment`](crate::segment) and [`semaphore`](crate::semaphore) share: turning
//! the result of a lookup by key (`shmget`/`semget(key, 0, 0)`) or of an `IPC_RMID`
//! into the library's answer, and narrating the call under `--explain`. The calls
//! themselves stay in [`sys`](crate::sys).

use crate::error::{Error, Result};
use crate::key::IpcKey;
use crate::sys::SysError;
use crate::trace::{self, Kind};

/// A lookup's result becomes `Some(id)`, `None` when nothing is at the key (ENOENT),
/// or an error naming the key. `call` is the C text of the call, `object` what it
/// looks for ("segment"), `id_name` what the id is called ("shmid").
pub(crate) fn lookup(
    key: IpcKey,
    call: &str,
    object: &str,
    id_name: &str,
    result: std::result::Result<i32, SysError>,
) -> Result<Option<i32>> {
    match result {
        Ok(id) => {
            if trace::enabled() {
                let why = format!("look up the {object} at our key");
                trace::call(Kind::Once, call, &format!("{id_name} {id}"), &why);
            }
            Ok(Some(id))
        }
        Err(e) if e.errno() == libc::ENOENT => {
            if trace::enabled() {
                // A reader started first repeats this until its writer comes (and a
                // writer looks again when a session it saw went away meanwhile).
                let why = format!("no {object} at our key (yet): look again until there is one");
                trace::call(
                    Kind::Waiting("a writer created them"),
                    call,
                    "-1 (ENOENT)",
                    &why,
                );
            }
            Ok(None)
        }
        Err(e) => Err(Error::sys(key, e)),
    }
}

/// An `IPC_RMID`'s result becomes whether there was anything to remove: EINVAL or
/// EIDRM mean someone else removed it first. `call` is the C text, `why` the note.
pub(crate) fn removal(
    key: IpcKey,
    call: &str,
    why: &str,
    result: std::result::Result<(), SysError>,
) -> Result<bool> {
    if trace::enabled() {
        let r = match &result {
            Ok(()) => "0".to_string(),
            Err(e) => trace::failure(&e.source),
        };
        trace::call(Kind::Once, call, &r, why);
    }
    match result {
        Ok(()) => Ok(true),
        Err(e) if gone(&e) => Ok(false),
        Err(e) => Err(Error::sys(key, e)),
    }
}

/// Whether `errno` from a call on an id means "that id is gone" (removed meanwhile).
pub(crate) fn gone(e: &SysError) -> bool {
    matches!(e.errno(), libc::EINVAL | libc::EIDRM)
}
