//! A test that cannot run here says so; it never passes in silence.
//!
//! Some tests need a tool (`strace`, `setpriv`, `unshare --ipc`, `script`, `tmux`)
//! or a permission this machine may not give. Such a test calls [`require`] first:
//! - with `CI=true` a missing tool fails the test, naming the tool and the Debian
//!   package that provides it (`scripts/setup.sh` installs them all);
//! - otherwise the test prints `SKIPPED: <test>: <why>` and records the skip in
//!   `target/test-skips/`, and `make test` ends with the count of skipped tests.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Whether `probe` (a command line) runs and exits 0 here. If not, the calling test
/// must return at once: the skip (or, under `CI=true`, the failure) has been dealt
/// with. `tool` and `package` name what is missing, `why` what the test needs it for.
#[must_use]
pub fn require(tool: &str, package: &str, probe: &[&str], why: &str) -> bool {
    let works = Command::new(probe[0])
        .args(&probe[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if works {
        return true;
    }
    skip(&format!(
        "`{}` does not work here (install the Debian package `{package}`; scripts/setup.sh does): {why}",
        probe.join(" "),
    ), tool);
    false
}

/// Records that the current test cannot run, or fails it under `CI=true`.
pub fn skip(reason: &str, tool: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("unknown test")
        .to_string();
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{test} cannot run under CI=true: needs {tool}: {reason}");
    }
    eprintln!("SKIPPED: {test}: {reason}");
    let dir = skip_dir();
    if std::fs::create_dir_all(&dir).is_ok() {
        let file = dir.join(format!(
            "{}-{}",
            std::process::id(),
            test.replace(['/', ':'], "_")
        ));
        if let Ok(mut f) = std::fs::File::create(file) {
            let _ = writeln!(f, "{test}: {reason}");
        }
    }
}

/// Where skips are recorded: `$SHM_TEST_SKIPS`, or `target/test-skips`.
fn skip_dir() -> PathBuf {
    std::env::var_os("SHM_TEST_SKIPS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-skips"),
        PathBuf::from,
    )
}

/// `strace` can trace a child here.
pub fn require_strace(why: &str) -> bool {
    require(
        "strace",
        "strace",
        &["strace", "-f", "-o", "/dev/null", "true"],
        why,
    )
}

/// `setpriv` can run a command as user `nobody` (uid 65534): needs root.
pub fn require_setpriv(why: &str) -> bool {
    require(
        "setpriv",
        "util-linux",
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "true",
        ],
        why,
    )
}

/// `unshare --ipc` can make a private IPC namespace: needs root or user namespaces.
pub fn require_unshare_ipc(why: &str) -> bool {
    require("unshare", "util-linux", &["unshare", "--ipc", "true"], why)
}

/// `script` (util-linux) can run a command on a pseudo-terminal.
pub fn require_script(why: &str) -> bool {
    require(
        "script",
        "util-linux",
        &["script", "-qec", "true", "/dev/null"],
        why,
    )
}
