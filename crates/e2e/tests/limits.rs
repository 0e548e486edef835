//! Kernel limits: a segment above SHMMAX, a set above SEMMSL, no segment or set
//! left to create (SHMMNI, SEMMNI). Each is refused with a message naming the
//! limit and its sysctl, exit 2 (a size we can check) or 7 (the kernel said no),
//! and nothing half-created is left. The lowered limits are set inside a private
//! IPC namespace (`unshare --ipc`), so nothing else on the machine notices.
mod support;
use std::process::Command;
use support::*;

#[test]
fn segment_above_kernel_limits_is_refused_and_creates_nothing() {
    let k = TestKey::new();
    // 32767 slots of 1 GiB = 32 TiB: above SHMMAX on a default-configured machine is
    // not guaranteed (Linux's default SHMMAX is ~2^64), so the expected code depends on
    // the limit: 2 (usage) when the writer can see it exceeds SHMMAX, 7 (kernel limit)
    // when only shmget's ENOMEM/EINVAL can tell. Either way: clear message, nothing left.
    let total: u64 = 4096 + 32767 * (1u64 << 30);
    let shmmax: u64 = std::fs::read_to_string("/proc/sys/kernel/shmmax")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u64::MAX);
    let mut w = k.writer();
    w.args(["--slots", "32767", "--slot-size", "1G"]);
    let f = run_with_input(w, b"data\n", SOON);
    if total > shmmax {
        assert_eq!(
            f.code(),
            Some(i32::from(code::USAGE)),
            "stderr {}",
            f.stderr
        );
        assert!(f.stderr.contains("SHMMAX"), "names the limit: {}", f.stderr);
    } else {
        assert_eq!(
            f.code(),
            Some(i32::from(code::LIMIT)),
            "stderr {}",
            f.stderr
        );
        assert!(
            f.stderr.contains("limit") || f.stderr.contains("memory"),
            "says why: {}",
            f.stderr
        );
    }
    k.assert_clean();
}

/// Runs `script` in a private IPC namespace (so lowered limits touch nothing else).
/// `$W`/`$R` are the binaries, `$K` the key. Returns (stdout, stderr).
fn in_private_ipc_ns(k: &TestKey, script: &str) -> Option<(String, String)> {
    if !require_unshare_ipc("lower the kernel's IPC limits in a private namespace") {
        return None;
    }
    let full = format!(
        "set -u; W={}; R={}; K={}; {script}",
        bin("writer").display(),
        bin("reader").display(),
        k.arg()
    );
    let out = Command::new("timeout")
        .args(["60", "unshare", "--ipc", "bash", "-c", &full])
        .output()
        .expect("unshare");
    Some((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Sizes beyond SHMMAX, and a kernel whose SEMMSL is below our 9 members: a clear
/// error naming the limit, nothing created (checked inside the namespace).
#[test]
fn beyond_shmmax_and_semmsl_are_refused_cleanly() {
    let k = TestKey::new();
    let script = r#"
        sysctl -q -w kernel.shmmax=1048576
        $W --key $K --slots 64 --slot-size 64K </dev/null; echo "shmmax_rc=$?"
        echo "shmmax_objs=$( (ipcs -m; ipcs -s) | grep -c "^$K")"
        sysctl -q -w kernel.shmmax=18446744073692774399
        echo "4 32000 32 128" > /proc/sys/kernel/sem
        $W --key $K --slots 4 --slot-size 4K </dev/null; echo "semmsl_rc=$?"
        echo "semmsl_objs=$( (ipcs -m; ipcs -s) | grep -c "^$K")"
    "#;
    let Some((out, err)) = in_private_ipc_ns(&k, script) else {
        return;
    };
    eprintln!("{out}\n{err}");
    assert!(out.contains("shmmax_rc=2\n"), "beyond SHMMAX: {out}\n{err}");
    assert!(
        out.contains("shmmax_objs=0\n"),
        "beyond SHMMAX left objects: {out}"
    );
    assert!(
        err.to_lowercase().contains("shmmax"),
        "the error does not name SHMMAX: {err}"
    );
    // SEMMSL is a kernel limit: code 7 (or 2, a refused size); the message names it.
    assert!(
        out.contains("semmsl_rc=7\n") || out.contains("semmsl_rc=2\n"),
        "SEMMSL: {out}\n{err}"
    );
    assert!(
        out.contains("semmsl_objs=0\n"),
        "SEMMSL left objects: {out}"
    );
    assert!(
        err.contains("SEMMSL"),
        "the error does not name SEMMSL: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    k.assert_clean();
}

/// The system-wide number of segments (shmmni) or of sets (semmni) exhausted: exit 7,
/// a message naming the limit and its sysctl, and no half-created pair left.
#[test]
fn exhausted_shmmni_and_semmni_give_limit_error_and_leave_nothing() {
    let k = TestKey::new();
    let script = r#"
        sysctl -q -w kernel.shmmni=1
        ipcmk -M 4096 >/dev/null
        $W --key $K --slots 4 --slot-size 4K </dev/null; echo "shmmni_rc=$?"
        echo "shmmni_objs=$( (ipcs -m; ipcs -s) | grep -c "^$K")"
        ipcrm -a
        sysctl -q -w kernel.shmmni=4096
        echo "250 32000 32 1" > /proc/sys/kernel/sem
        ipcmk -S 1 >/dev/null
        $W --key $K --slots 4 --slot-size 4K </dev/null; echo "semmni_rc=$?"
        echo "semmni_objs=$( (ipcs -m; ipcs -s) | grep -c "^$K")"
    "#;
    let Some((out, err)) = in_private_ipc_ns(&k, script) else {
        return;
    };
    eprintln!("{out}\n{err}");
    assert!(
        out.contains("shmmni_rc=7\n"),
        "shmmni exhausted: {out}\n{err}"
    );
    assert!(
        out.contains("shmmni_objs=0\n"),
        "a half-created pair was left (shmmni): {out}"
    );
    assert!(
        err.contains("shmmni"),
        "the error does not name kernel.shmmni: {err}"
    );
    assert!(
        out.contains("semmni_rc=7\n"),
        "semmni exhausted: {out}\n{err}"
    );
    assert!(
        out.contains("semmni_objs=0\n"),
        "a half-created pair was left (semmni): {out}"
    );
    assert!(
        err.contains("SEMMNI") && err.contains("kernel.sem"),
        "the error does not name SEMMNI: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    k.assert_clean();
}
