//! The System V IPC key: parsing, validation and the per-user default.
//!
//! A key is the name under which unrelated processes find the same segment and
//! semaphore set (they are separate namespaces, so one key names one of each). It is a
//! 32-bit `key_t`; `0` is `IPC_PRIVATE`, which always creates a fresh object that no
//! other process can look up, so it is refused.

use crate::error::{Error, Result};
use std::fmt;
use std::path::Path;

/// The `proj_id` byte we pass to `ftok`: `'S'` for "shared memory ring".
pub const FTOK_PROJECT: u8 = b'S';

/// A validated, non-private System V key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpcKey(libc::key_t);

impl IpcKey {
    /// Wraps a raw key, refusing `IPC_PRIVATE`.
    pub fn new(raw: libc::key_t) -> Result<IpcKey> {
        if raw == libc::IPC_PRIVATE {
            return Err(Error::InvalidArgument {
                what: "key",
                reason: "0 is IPC_PRIVATE, which other processes cannot find".into(),
            });
        }
        Ok(IpcKey(raw))
    }

    /// The raw `key_t` for the system calls.
    pub fn raw(self) -> libc::key_t {
        self.0
    }

    /// Derives a key from a path with `ftok(path, 'S')`. The path must exist.
    pub fn from_path(path: &Path) -> Result<IpcKey> {
        let raw = crate::sys::ftok(path, FTOK_PROJECT).map_err(|e| Error::InvalidArgument {
            what: "key",
            reason: format!("ftok({}) failed: {e}", path.display()),
        })?;
        IpcKey::new(raw)
    }

    /// The default key: `0x53` followed by the low 24 bits of the effective uid
    /// (`0x530003e8` for uid 1000), so two users of one machine never meet by
    /// accident (for uids below 16,777,216; larger uids are folded into 24 bits and
    /// can meet). `ftok($HOME, 'S')`, the classic choice, cannot promise that: it
    /// keeps only 16 bits of the inode and 8 of the device number.
    pub fn default_for_user() -> Result<IpcKey> {
        let uid = nix::unistd::geteuid().as_raw();
        IpcKey::new(default_key_for_uid(uid) as libc::key_t)
    }

    /// Parses the `--key` argument: `0x` hex, decimal, or `path:FILE` for ftok.
    ///
    /// ```
    /// use shm_common::IpcKey;
    /// assert_eq!(IpcKey::parse("0x1234")?.raw(), 0x1234);
    /// assert_eq!(IpcKey::parse("4660")?.to_string(), "0x00001234");
    /// assert!(IpcKey::parse("0").is_err(), "IPC_PRIVATE is refused");
    /// # Ok::<(), shm_common::Error>(())
    /// ```
    pub fn parse(text: &str) -> Result<IpcKey> {
        let bad = |reason: String| Error::InvalidArgument {
            what: "key",
            reason,
        };
        let text = text.trim();
        if let Some(path) = text.strip_prefix("path:") {
            return IpcKey::from_path(Path::new(path));
        }
        // Rust's integer parsers take a leading '+'; a key is digits only.
        if text.contains('+') {
            return Err(bad(format!(
                "{text:?} is not a key (no sign: 0x1234abcd, a decimal number, or path:FILE)"
            )));
        }
        let value = if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            u32::from_str_radix(hex, 16)
                .map_err(|_| bad(format!("{text:?} is not a 32-bit hexadecimal number")))?
        } else {
            text.parse::<u32>().map_err(|_| {
                bad(format!(
                    "{text:?} is not a key (use 0x1234abcd, a decimal number from 1 to \
                     4294967295, or path:FILE)"
                ))
            })?
        };
        // key_t is a signed 32-bit int; keys above 0x7fffffff are the same bits.
        IpcKey::new(value as libc::key_t)
    }
}

/// The raw default key of `uid` (PROTOCOL.md §1).
pub const fn default_key_for_uid(uid: u32) -> u32 {
    DEFAULT_KEY_PREFIX | ((uid ^ (uid >> 24)) & 0x00ff_ffff)
}

/// The top byte of every default key: `'S'`.
pub const DEFAULT_KEY_PREFIX: u32 = 0x5300_0000;

impl fmt::Display for IpcKey {
    /// Keys print as `ipcs` prints them: 0x and eight hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08x}", self.0 as u32)
    }
}

impl fmt::Debug for IpcKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IpcKey({self})")
    }
}

impl std::str::FromStr for IpcKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<IpcKey> {
        IpcKey::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hex_and_decimal() {
        assert_eq!(IpcKey::parse("0x10").map(IpcKey::raw).ok(), Some(16));
        assert_eq!(IpcKey::parse("16").map(IpcKey::raw).ok(), Some(16));
        assert_eq!(IpcKey::parse("0xffffffff").map(IpcKey::raw).ok(), Some(-1));
        assert_eq!(IpcKey::parse("4294967295").map(IpcKey::raw).ok(), Some(-1));
    }

    #[test]
    fn refuses_private_junk_negative_and_overflow() {
        for bad in [
            "0",
            "0x0",
            "",
            "junk",
            "-5",
            "0x1_0000_0000",
            "4294967296",
            "0x",
            "+16",
            "0x+10",
        ] {
            assert!(IpcKey::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn displays_like_ipcs() {
        let key = IpcKey::parse("0xdead").ok();
        assert_eq!(key.map(|k| k.to_string()), Some("0x0000dead".to_string()));
    }

    #[test]
    fn default_keys_differ_per_user() {
        assert_eq!(default_key_for_uid(0), 0x5300_0000);
        assert_eq!(default_key_for_uid(1000), 0x5300_03e8);
        assert_eq!(default_key_for_uid(65534), 0x5300_fffe);
        let keys: std::collections::HashSet<u32> = (0..5000).map(default_key_for_uid).collect();
        assert_eq!(keys.len(), 5000);
    }

    #[test]
    fn ftok_of_a_path_is_stable_and_missing_paths_fail() {
        let a = IpcKey::parse("path:/").ok();
        assert!(a.is_some());
        assert_eq!(a, IpcKey::parse("path:/").ok());
        assert!(IpcKey::parse("path:/no/such/file/here").is_err());
    }
}
