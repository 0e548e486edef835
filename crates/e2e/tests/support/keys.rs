//! A key per test, claimed from the one allocator (`shm_cli::keys`), and a guard
//! that removes everything at it when the test ends, passed or failed.

use shm_cli::keys::{claim, ClaimedKey, Range};
use shm_common::{segment, semaphore, IpcKey};
use std::process::Command;

/// A key for this test only; whatever is at it when this drops is removed (the
/// claim proves the key is ours: nothing was there when it was handed out).
pub struct TestKey {
    pub key: IpcKey,
    claim: ClaimedKey,
}

impl TestKey {
    /// A key in the integration tests' range (`0x7e1xxxxx`).
    pub fn new() -> TestKey {
        TestKey::in_range(Range::E2E)
    }

    /// A key in another suite's range (the inspector's, the race demo's, ...).
    pub fn in_range(range: Range) -> TestKey {
        let claim = claim(range).unwrap_or_else(|e| panic!("no test key: {e}"));
        TestKey {
            key: claim.key(),
            claim,
        }
    }

    /// The key as the command line spells it (`0x7e1.....`).
    pub fn arg(&self) -> String {
        self.key.to_string()
    }

    /// Removes whatever is at the key, ours or not (the key belongs to this test).
    pub fn force_remove(&self) {
        if let Ok(Some(id)) = semaphore::find(self.key) {
            let _ = semaphore::remove_id(self.key, id);
        }
        if let Ok(Some(id)) = segment::find(self.key) {
            let _ = segment::remove_id(self.key, id);
        }
    }

    /// Whether a segment and a semaphore set are at the key (as `ipcs` lists them).
    pub fn in_ipcs(&self) -> (bool, bool) {
        (
            !matches!(segment::find(self.key), Ok(None)),
            !matches!(semaphore::find(self.key), Ok(None)),
        )
    }

    /// Asserts nothing is left at the key.
    pub fn assert_clean(&self) {
        assert_eq!(
            self.in_ipcs(),
            (false, false),
            "LEAK: objects left at key {}",
            self.arg()
        );
    }

    /// `writer --key KEY`.
    pub fn writer(&self) -> Command {
        self.binary("writer")
    }

    /// `reader --key KEY`.
    pub fn reader(&self) -> Command {
        self.binary("reader")
    }

    /// Any of the workspace's binaries with `--key KEY`.
    pub fn binary(&self, name: &str) -> Command {
        let mut c = Command::new(crate::support::bin(name));
        c.arg("--key").arg(self.arg());
        c
    }
}

impl Drop for TestKey {
    fn drop(&mut self) {
        self.force_remove();
    }
}
