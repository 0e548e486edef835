//! Faults, bad input and hostile neighbours (issue 4): every test spawns the real
//! binaries on its own key, bounds every wait, and checks that the survivor exits in
//! time with the documented code, that what was delivered is a byte-exact prefix of
//! what was sent, and that nothing is left at the key (or that a new pair recovers it).
mod common;
use common::*;
use shm_common::layout::off;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------
// kill -9, SIGINT and SIGTERM at every point of a stream's life, to either side.
// ---------------------------------------------------------------------------------

fn plan(side: Side, point: Point, sig: Signal) -> Plan {
    let (slots, slot_size, len, delay_us) = match point {
        Point::BeforeAttach => (
            16,
            4096,
            100_000,
            if side == Side::Reader { 150_000 } else { 3_000 },
        ),
        Point::MidStream => (8, 1024, 4 << 20, 0),
        Point::FullRing => (2, 128, 64 << 10, 0),
        Point::EmptyRing => (16, 4096, 20_000, 0),
        // 20000 bytes = 5 frames + FINAL: the whole stream fits in the ring.
        Point::EndOfStream => (16, 4096, 20_000, 500),
    };
    Plan {
        side,
        point,
        sig,
        slots,
        slot_size,
        len,
        seed: 0xfa17 ^ (point as u64) << 8 ^ (side as u64) << 4 ^ sig as u64,
        delay_us,
        variant: false,
    }
}

fn fault(side: Side, point: Point, sig: Signal) -> Report {
    let k = TestKey::new();
    let p = plan(side, point, sig);
    let rep = run_fault(&k, &p);
    eprintln!("{p:?}: {rep:?}");
    // Deterministic points must really have hit the victim.
    if matches!(point, Point::MidStream | Point::FullRing | Point::EmptyRing) {
        assert!(
            !rep.missed,
            "the fault missed: the stream completed before the signal"
        );
    }
    if let Some(d) = rep.detect {
        assert!(d <= DETECT, "detection took {d:?}");
    }
    k.assert_clean();
    rep
}

macro_rules! fault_tests {
    ($($name:ident: $side:ident $point:ident $sig:ident;)*) => {$(
        #[test]
        fn $name() {
            fault(Side::$side, Point::$point, Signal::$sig);
        }
    )*};
}

fault_tests! {
    kill9_writer_mid_stream: Writer MidStream SIGKILL;
    kill9_reader_mid_stream: Reader MidStream SIGKILL;
    kill9_writer_blocked_on_full_ring: Writer FullRing SIGKILL;
    kill9_reader_while_writer_blocked_on_full_ring: Reader FullRing SIGKILL;
    kill9_writer_while_reader_blocked_on_empty_ring: Writer EmptyRing SIGKILL;
    kill9_reader_blocked_on_empty_ring: Reader EmptyRing SIGKILL;
    kill9_writer_at_end_of_stream: Writer EndOfStream SIGKILL;
    kill9_reader_at_end_of_stream: Reader EndOfStream SIGKILL;
    kill9_reader_before_attach: Reader BeforeAttach SIGKILL;

    sigint_writer_before_attach: Writer BeforeAttach SIGINT;
    sigint_reader_before_attach: Reader BeforeAttach SIGINT;
    sigint_writer_mid_stream: Writer MidStream SIGINT;
    sigint_reader_mid_stream: Reader MidStream SIGINT;
    sigint_writer_blocked_on_full_ring: Writer FullRing SIGINT;
    sigint_reader_while_writer_blocked_on_full_ring: Reader FullRing SIGINT;
    sigint_writer_while_reader_blocked_on_empty_ring: Writer EmptyRing SIGINT;
    sigint_reader_blocked_on_empty_ring: Reader EmptyRing SIGINT;
    sigint_writer_at_end_of_stream: Writer EndOfStream SIGINT;
    sigint_reader_at_end_of_stream: Reader EndOfStream SIGINT;

    sigterm_writer_before_attach: Writer BeforeAttach SIGTERM;
    sigterm_reader_before_attach: Reader BeforeAttach SIGTERM;
    sigterm_writer_mid_stream: Writer MidStream SIGTERM;
    sigterm_reader_mid_stream: Reader MidStream SIGTERM;
    sigterm_writer_blocked_on_full_ring: Writer FullRing SIGTERM;
    sigterm_reader_while_writer_blocked_on_full_ring: Reader FullRing SIGTERM;
    sigterm_writer_while_reader_blocked_on_empty_ring: Writer EmptyRing SIGTERM;
    sigterm_reader_blocked_on_empty_ring: Reader EmptyRing SIGTERM;
    sigterm_writer_at_end_of_stream: Writer EndOfStream SIGTERM;
    sigterm_reader_at_end_of_stream: Reader EndOfStream SIGTERM;
}

/// kill -9 of a writer in its first milliseconds (before, during and just after it
/// creates the objects): a waiting reader and a new writer recover, whatever was left.
#[test]
fn kill9_writer_before_attach_at_several_instants() {
    for delay_us in [0, 1_000, 4_000, 15_000] {
        let k = TestKey::new();
        let p = Plan {
            delay_us,
            ..plan(Side::Writer, Point::BeforeAttach, Signal::SIGKILL)
        };
        let rep = run_fault(&k, &p);
        eprintln!("{p:?}: {rep:?}");
        k.assert_clean();
    }
}

/// kill -9 of a writer blocked on a full ring before any reader came: the frames it
/// published stay; a reader started later delivers them, then reports the dead writer.
#[test]
fn kill9_writer_blocked_on_full_ring_before_any_reader() {
    let k = TestKey::new();
    let p = Plan {
        variant: true,
        ..plan(Side::Writer, Point::FullRing, Signal::SIGKILL)
    };
    let rep = run_fault(&k, &p);
    assert_eq!(rep.survivor, Some(4));
    assert!(rep.delivered > 0, "the published frames were lost: {rep:?}");
    k.assert_clean();
}

/// SIGINT to a writer blocked on a full ring before any reader came: exit 130 and it
/// removes the session it created (nobody else is there).
#[test]
fn sigint_writer_blocked_on_full_ring_before_any_reader() {
    let k = TestKey::new();
    let p = Plan {
        variant: true,
        ..plan(Side::Writer, Point::FullRing, Signal::SIGINT)
    };
    run_fault(&k, &p);
    k.assert_clean();
}

// ---------------------------------------------------------------------------------
// SIGSTOP: a paused peer is not a dead peer.
// ---------------------------------------------------------------------------------

#[test]
fn sigstop_writer_reader_waits_and_says_so() {
    let k = TestKey::new();
    // Longer than INIT_GRACE and the leave patience: nothing may time out on a pause.
    let stderr = run_stop(
        &k,
        Side::Writer,
        16,
        4096,
        200_000,
        7,
        Duration::from_millis(2500),
    );
    assert!(
        stderr.contains("stopped"),
        "reader did not say the writer is stopped:\n{stderr}"
    );
    k.assert_clean();
}

#[test]
fn sigstop_reader_writer_waits_and_says_so() {
    let k = TestKey::new();
    let stderr = run_stop(
        &k,
        Side::Reader,
        2,
        128,
        100_000,
        8,
        Duration::from_millis(2500),
    );
    assert!(
        stderr.contains("stopped"),
        "writer did not say the reader is stopped:\n{stderr}"
    );
    k.assert_clean();
}

// ---------------------------------------------------------------------------------
// Start-up races and exclusivity.
// ---------------------------------------------------------------------------------

/// Writer and reader started at the same instant, 100 times, each on its own key: no
/// hang, no error, no leak (the semaphore initialisation race).
#[test]
fn startup_race_100_times() {
    let start = Instant::now();
    let data = pseudo_random(30_000, 100);
    let file = TempFile::new(&data);
    for i in 0..100 {
        let k = TestKey::new();
        let mut wc = k.writer();
        wc.args(["--slots", "4", "--slot-size", "4096"])
            .arg(&file.path);
        let mut rc = k.reader();
        rc.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        wc.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // Both spawned back to back from two threads released by one barrier.
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let b2 = barrier.clone();
        let rt = std::thread::spawn(move || {
            b2.wait();
            rc.spawn().expect("spawn reader")
        });
        barrier.wait();
        let mut w = wc.spawn().expect("spawn writer");
        let mut r = rt.join().expect("reader thread");
        let deadline = Instant::now() + Duration::from_secs(20);
        let (mut ws, mut rs) = (None, None);
        while ws.is_none() || rs.is_none() {
            if ws.is_none() {
                ws = w.try_wait().expect("try_wait");
            }
            if rs.is_none() {
                rs = r.try_wait().expect("try_wait");
            }
            if Instant::now() > deadline {
                let _ = w.kill();
                let _ = r.kill();
                let _ = w.wait();
                let _ = r.wait();
                panic!(
                    "run {i}: hang (writer {ws:?}, reader {rs:?}) at key {}",
                    k.arg()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let wo = w.wait_with_output().expect("writer output");
        let ro = r.wait_with_output().expect("reader output");
        assert_eq!(
            ws.and_then(|s| s.code()),
            Some(0),
            "run {i}: writer: {}\nreader: {}",
            String::from_utf8_lossy(&wo.stderr),
            String::from_utf8_lossy(&ro.stderr)
        );
        assert_eq!(
            rs.and_then(|s| s.code()),
            Some(0),
            "run {i}: reader: {}",
            String::from_utf8_lossy(&ro.stderr)
        );
        assert!(
            ro.stdout == data,
            "run {i}: reader got {} of {} bytes",
            ro.stdout.len(),
            data.len()
        );
        k.assert_clean();
    }
    eprintln!("100 simultaneous starts in {:?}", start.elapsed());
}

/// Two readers on a byte-stream key: the second gets exit 3 and changes nothing; the
/// first still receives the whole stream.
#[test]
fn second_reader_on_byte_stream_key_gets_conflict() {
    let k = TestKey::new();
    let data = pseudo_random(300_000, 31);
    let mut w = Proc::spawn(k.writer(), Stdio::piped());
    let r1 = Proc::spawn(k.reader(), Stdio::null());
    w.send(&data[..1000]);
    wait_until(TIMEOUT, "first reader to take data", || {
        header_u64(k.key, off::BYTES_CONSUMED) == Some(1000)
    });
    let before = sem_values(k.key);
    let r2 = Proc::spawn(k.reader(), Stdio::null());
    let (f2, took) = wait_timed(r2, DETECT);
    assert_eq!(f2.code(), Some(3), "second reader: {}", f2.stderr);
    assert!(took < DETECT);
    assert!(f2.stdout.is_empty(), "the refused reader printed data");
    assert!(
        f2.stderr.contains("already") && f2.stderr.contains(&k.arg()),
        "{}",
        f2.stderr
    );
    assert_no_crash(&f2, "second reader");
    assert_eq!(
        sem_values(k.key),
        before,
        "the refused reader changed the semaphores"
    );
    w.send(&data[1000..]);
    let wf = w.wait(TIMEOUT);
    let rf = r1.wait(TIMEOUT);
    assert_eq!(wf.code(), Some(0), "writer: {}", wf.stderr);
    assert_eq!(rf.code(), Some(0), "first reader: {}", rf.stderr);
    assert!(
        rf.stdout == data,
        "first reader got {} of {} bytes",
        rf.stdout.len(),
        data.len()
    );
    k.assert_clean();
}

// ---------------------------------------------------------------------------------
// Bad keys and sizes: exit 2, nothing created.
// ---------------------------------------------------------------------------------

/// Lines of /proc/sysvipc/{shm,sem} whose key is 0 (what a key that wrongly became
/// IPC_PRIVATE would create) and segments created by `pid`.
fn private_objects() -> (usize, usize) {
    let count = |path: &str| {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .filter(|l| l.split_whitespace().next() == Some("0"))
            .count()
    };
    (count("/proc/sysvipc/shm"), count("/proc/sysvipc/sem"))
}

fn segments_created_by(pid: u32) -> usize {
    // /proc/sysvipc/shm columns: key shmid perms size cpid lpid ...
    std::fs::read_to_string("/proc/sysvipc/shm")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|l| l.split_whitespace().nth(4) == Some(&pid.to_string()))
        .count()
}

#[test]
fn bad_keys_and_sizes_exit_2_and_create_nothing() {
    let k = TestKey::new();
    let key = k.arg();
    let bad_keys = [
        "0",
        "0x0",
        "-1",
        "-0x10",
        "junk",
        "0x",
        "",
        "0x100000000",
        "4294967296",
        "99999999999999999999",
        "path:/no/such/file",
    ];
    let mut cases: Vec<(&str, Vec<String>)> = Vec::new();
    for bk in bad_keys {
        for bin in ["writer", "reader"] {
            cases.push((bin, vec!["--key".into(), bk.into()]));
        }
    }
    let bad_geo: &[(&str, &str)] = &[
        ("0", "4096"),
        ("-1", "4096"),
        ("junk", "4096"),
        ("32768", "4096"),      // SEMVMX: counts live in semaphores
        ("4294967296", "4096"), // overflows u32
        ("99999999999999999999", "4096"),
        ("4", "0"),
        ("4", "-64"),
        ("4", "100"), // not a multiple of 64
        ("4", "64"),  // no room for a payload
        ("4", "4G"),  // overflows u32
        ("4", "99999999999999999999K"),
        ("4", "junk"),
        ("4", "2G"), // beyond the 1 GiB slot limit
    ];
    for (slots, size) in bad_geo {
        cases.push((
            "writer",
            vec![
                "--key".into(),
                key.clone(),
                "--slots".into(),
                slots.to_string(),
                "--slot-size".into(),
                size.to_string(),
            ],
        ));
    }
    // (`--batch 0` is accepted and clamped to 1, so it is not in this list.)
    for b in ["-1", "junk", "4294967296"] {
        cases.push((
            "writer",
            vec!["--key".into(), key.clone(), "--batch".into(), b.into()],
        ));
        cases.push((
            "reader",
            vec!["--key".into(), key.clone(), "--batch".into(), b.into()],
        ));
    }
    for m in ["0", "400", "1777", "999", "junk"] {
        cases.push((
            "writer",
            vec!["--key".into(), key.clone(), "--mode".into(), m.into()],
        ));
    }
    let private_before = private_objects();
    let mut failures = Vec::new();
    for (name, args) in &cases {
        let mut c = Command::new(bin(name));
        c.args(args);
        let p = Proc::spawn(c, Stdio::null());
        let pid = p.child.id();
        let f = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            p.wait(Duration::from_secs(5))
        })) {
            Ok(f) => f,
            Err(_) => {
                failures.push(format!(
                    "{name} {args:?}: accepted (still running after 5 s)"
                ));
                k.force_remove();
                continue;
            }
        };
        let created = segments_created_by(pid);
        if f.code() != Some(2)
            || created != 0
            || f.stderr.contains("panicked")
            || f.stderr.trim().is_empty()
        {
            failures.push(format!(
                "{name} {args:?}: {} created {created}; stderr: {}",
                describe_status(&f),
                f.stderr.trim()
            ));
        }
        if k.in_ipcs() != (false, false) {
            failures.push(format!("{name} {args:?}: created objects at {key}"));
            k.force_remove();
        }
    }
    assert_eq!(
        private_objects(),
        private_before,
        "an invalid key created IPC_PRIVATE objects"
    );
    assert!(
        failures.is_empty(),
        "{} of {} bad invocations misbehaved:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    k.assert_clean();
}

fn describe_status(f: &Finished) -> String {
    match (f.status.code(), f.status.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (_, Some(s)) => format!("signal {s}"),
        _ => "?".into(),
    }
}

/// Runs `script` in a private IPC namespace (so lowered limits touch nothing else).
/// `$W`/`$R` are the binaries, `$K` the key. Returns (stdout, stderr).
fn in_private_ipc_ns(k: &TestKey, script: &str) -> Option<(String, String)> {
    if !unshare_ipc_works() {
        eprintln!("SKIPPED: `unshare --ipc` is not available here (needs root or user namespaces)");
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

// ---------------------------------------------------------------------------------
// Foreign objects, other users, permissions.
// ---------------------------------------------------------------------------------

fn raw_segment(k: &TestKey, size: usize) -> i32 {
    shm_common::sys::shm::shmget(k.key.raw(), size, libc::IPC_CREAT | libc::IPC_EXCL | 0o600)
        .expect("shmget")
}

fn attach(k: &TestKey, id: i32) -> shm_common::segment::Segment {
    shm_common::segment::Segment::attach(k.key, id).expect("attach")
}

fn snapshot(seg: &shm_common::segment::Segment) -> Vec<u8> {
    let mut v = vec![0u8; seg.len()];
    seg.read_bytes(0, &mut v).expect("read");
    v
}

/// A foreign segment (no magic) at the key: both binaries refuse with exit 3, name
/// the key, the owner and the ipcrm that would remove it; the segment is untouched.
#[test]
fn foreign_segment_is_refused_untouched() {
    let k = TestKey::new();
    let id = raw_segment(&k, 10_000);
    let seg = attach(&k, id);
    seg.write_bytes(0, b"someone else's data, not a ring")
        .expect("write");
    let before = snapshot(&seg);
    for name in ["writer", "reader"] {
        let mut c = Command::new(bin(name));
        c.args(["--key", &k.arg()]);
        let (f, took) = wait_timed(
            Proc::spawn(c, Stdio::null()),
            DETECT + Duration::from_secs(5),
        );
        assert!(took < DETECT, "{name} took {took:?}");
        assert_eq!(f.code(), Some(3), "{name}: {}", f.stderr);
        assert_no_crash(&f, name);
        assert!(
            f.stderr.contains(&k.arg()),
            "{name}: the error does not name the key: {}",
            f.stderr
        );
        assert!(
            f.stderr.contains(&format!("ipcrm -m {id}")),
            "{name}: no ipcrm hint: {}",
            f.stderr
        );
        assert!(
            f.stderr.contains("uid"),
            "{name}: the error does not name the owner: {}",
            f.stderr
        );
        assert_eq!(
            shm_common::segment::find(k.key).ok().flatten(),
            Some(id),
            "{name}: the segment was removed"
        );
        assert!(
            snapshot(&seg) == before,
            "{name}: the foreign segment was modified"
        );
        assert!(!k.in_ipcs().1, "{name}: a semaphore set was left beside it");
    }
    drop(seg);
    k.force_remove();
    k.assert_clean();
}

/// A foreign, zero-filled segment smaller than our header (someone else's, still
/// empty): it cannot be ours, so it is refused and never removed, however long it waits.
#[test]
fn foreign_small_zeroed_segment_is_never_removed() {
    let k = TestKey::new();
    let id = raw_segment(&k, 100);
    // Older than INIT_GRACE, so it cannot pass for a creator at work.
    std::thread::sleep(Duration::from_millis(2500));
    // --persist: even if it (wrongly) takes the key, the writer exits at once.
    let mut c = k.writer();
    c.arg("--persist");
    let (f, _) = wait_timed(Proc::spawn(c, Stdio::null()), Duration::from_secs(15));
    let still = shm_common::segment::find(k.key).ok().flatten();
    assert_eq!(
        still,
        Some(id),
        "the foreign segment was removed; writer: {} {}",
        describe_status(&f),
        f.stderr
    );
    assert_eq!(f.code(), Some(3), "writer: {}", f.stderr);
    k.force_remove();
    k.assert_clean();
}

/// A foreign semaphore set (3 members) at the key: exit 3 naming the key, owner and
/// `ipcrm -s`; the set keeps its values and is not removed.
#[test]
fn foreign_semaphore_set_is_refused_untouched() {
    let k = TestKey::new();
    let id = shm_common::sys::sem::semget(k.key.raw(), 3, libc::IPC_CREAT | libc::IPC_EXCL | 0o600)
        .expect("semget");
    shm_common::sys::sem::set_all(id, &[7, 8, 9]).expect("setall");
    for name in ["writer", "reader"] {
        let mut c = Command::new(bin(name));
        c.args(["--key", &k.arg()]);
        let (f, took) = wait_timed(
            Proc::spawn(c, Stdio::null()),
            DETECT + Duration::from_secs(5),
        );
        assert!(took < DETECT, "{name} took {took:?}");
        assert_eq!(f.code(), Some(3), "{name}: {}", f.stderr);
        assert_no_crash(&f, name);
        assert!(f.stderr.contains(&k.arg()), "{name}: no key: {}", f.stderr);
        assert!(
            f.stderr.contains(&format!("ipcrm -s {id}")),
            "{name}: no ipcrm hint: {}",
            f.stderr
        );
        assert!(f.stderr.contains("uid"), "{name}: no owner: {}", f.stderr);
        let mut v = [0u16; 3];
        shm_common::sys::sem::get_all(id, &mut v).expect("the foreign set was removed");
        assert_eq!(v, [7, 8, 9], "{name} changed the foreign set");
        assert!(!k.in_ipcs().0, "{name} left a segment beside it");
    }
    k.force_remove();
    k.assert_clean();
}

fn as_nobody(cmd: &mut Command) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
    c.arg(cmd.get_program());
    c.args(cmd.get_args());
    c
}

fn setpriv_works() -> bool {
    matches!(
        bash("setpriv --reuid=65534 --regid=65534 --clear-groups -- true 2>/dev/null").0,
        Some(0)
    )
}

/// A session created by another user (nobody, mode 0600): root's writer and reader
/// refuse it with exit 3 (or 5) and change nothing; that user's own reader completes it.
#[test]
fn another_users_session_is_refused_and_unaffected() {
    if !setpriv_works() {
        eprintln!("SKIPPED: setpriv cannot switch to uid 65534 here");
        return;
    }
    let k = TestKey::new();
    let data = pseudo_random(200_000, 41);
    let mut w = Proc::spawn(as_nobody(&mut k.writer()), Stdio::piped());
    w.send(&data[..1000]);
    wait_until(TIMEOUT, "nobody's session", || {
        header_u32(k.key, off::STATE) == Some(1)
            && sem_value(k.key, shm_common::layout::sem::FILLED).unwrap_or(0) >= 1
    });
    let before = sem_values(k.key);
    for name in ["writer", "reader"] {
        let mut c = Command::new(bin(name));
        c.args(["--key", &k.arg()]);
        let (f, took) = wait_timed(
            Proc::spawn(c, Stdio::null()),
            DETECT + Duration::from_secs(5),
        );
        assert!(took < DETECT, "{name} took {took:?}");
        eprintln!(
            "root {name} on nobody's session: {} {}",
            describe_status(&f),
            f.stderr
        );
        assert!(
            matches!(f.code(), Some(3) | Some(5)),
            "root {name}: {}",
            f.stderr
        );
        assert_no_crash(&f, name);
        assert!(
            f.stderr.contains("65534"),
            "root {name}: the owner is not named: {}",
            f.stderr
        );
        assert!(f.stdout.is_empty());
        assert_eq!(sem_values(k.key), before, "root {name} changed the session");
    }
    let r = Proc::spawn(as_nobody(&mut k.reader()), Stdio::null());
    w.send(&data[1000..]);
    let wf = w.wait(TIMEOUT);
    let rf = r.wait(TIMEOUT);
    assert_eq!(wf.code(), Some(0), "nobody's writer: {}", wf.stderr);
    assert_eq!(rf.code(), Some(0), "nobody's reader: {}", rf.stderr);
    assert!(
        rf.stdout == data,
        "nobody's reader got {} of {}",
        rf.stdout.len(),
        data.len()
    );
    k.assert_clean();
}

/// Root's session (0600): a reader run as nobody gets exit 5 with a hint and changes
/// nothing; the legitimate pair completes.
#[test]
fn reader_as_another_user_gets_permission_denied() {
    if !setpriv_works() {
        eprintln!("SKIPPED: setpriv cannot switch to uid 65534 here");
        return;
    }
    let k = TestKey::new();
    let data = pseudo_random(200_000, 42);
    let mut w = Proc::spawn(k.writer(), Stdio::piped());
    w.send(&data[..1000]);
    wait_until(TIMEOUT, "root's session", || {
        header_u32(k.key, off::STATE) == Some(1)
            && sem_value(k.key, shm_common::layout::sem::FILLED).unwrap_or(0) >= 1
    });
    let before = sem_values(k.key);
    let (f, took) = wait_timed(
        Proc::spawn(as_nobody(&mut k.reader()), Stdio::null()),
        DETECT + Duration::from_secs(5),
    );
    assert!(took < DETECT, "took {took:?}");
    assert_eq!(f.code(), Some(5), "nobody's reader: {}", f.stderr);
    assert_no_crash(&f, "nobody's reader");
    assert!(f.stderr.contains("permission denied"), "{}", f.stderr);
    assert!(f.stderr.contains("hint:"), "no hint: {}", f.stderr);
    assert_eq!(
        sem_values(k.key),
        before,
        "the refused reader changed the session"
    );
    let r = Proc::spawn(k.reader(), Stdio::null());
    w.send(&data[1000..]);
    let wf = w.wait(TIMEOUT);
    let rf = r.wait(TIMEOUT);
    assert_eq!(wf.code(), Some(0), "writer: {}", wf.stderr);
    assert_eq!(rf.code(), Some(0), "reader: {}", rf.stderr);
    assert!(rf.stdout == data);
    k.assert_clean();
}

// ---------------------------------------------------------------------------------
// Corrupt and hostile memory.
// ---------------------------------------------------------------------------------

/// A persisted session whose header is then corrupted: the reader exits 3 or 6 with a
/// clear message and no panic, for each kind of damage.
#[test]
fn corrupt_header_is_refused_without_panic() {
    let data = pseudo_random(5000, 51);
    let cases: &[(&str, usize, u32, i32)] = &[
        (
            "newer layout version",
            off::VERSION,
            shm_common::layout::VERSION + 1,
            3,
        ),
        ("zero slot count", off::SLOT_COUNT, 0, 6),
        ("slot count beyond SEMVMX", off::SLOT_COUNT, 40_000, 6),
        (
            "truncated: more slots than the segment holds",
            off::SLOT_COUNT,
            1000,
            6,
        ),
        ("slot size not a multiple of 64", off::SLOT_SIZE, 1000, 6),
        ("slot size beyond the segment", off::SLOT_SIZE, 1 << 20, 6),
        ("header size", off::HEADER_SIZE, 17, 6),
    ];
    for (what, offset, value, want) in cases {
        let k = TestKey::new();
        let mut wc = k.writer();
        wc.args(["--persist", "--slots", "8", "--slot-size", "4096"]);
        let w = run_with_input(wc, &data, TIMEOUT);
        assert_eq!(w.code(), Some(0), "{what}: persist writer: {}", w.stderr);
        let id = shm_common::segment::find(k.key)
            .ok()
            .flatten()
            .expect("persisted segment");
        let seg = attach(&k, id);
        seg.write_bytes(*offset, &value.to_le_bytes())
            .expect("scribble");
        let (f, took) = wait_timed(
            Proc::spawn(k.reader(), Stdio::null()),
            DETECT + Duration::from_secs(5),
        );
        assert!(took < DETECT, "{what}: reader took {took:?}");
        assert_no_crash(&f, what);
        assert_eq!(f.code(), Some(*want), "{what}: {}", f.stderr);
        assert!(
            f.stdout.is_empty(),
            "{what}: data delivered from a corrupt session"
        );
        assert!(
            f.stderr.contains("error:") && f.stderr.contains(&k.arg()),
            "{what}: unclear message: {}",
            f.stderr
        );
        drop(seg);
        k.force_remove();
        k.assert_clean();
    }
}

/// A scribbled payload byte in a persisted stream: the reader delivers the frames
/// before it, then stops with exit 6 naming the checksum; never the bad frame.
#[test]
fn corrupt_frame_is_never_delivered() {
    let k = TestKey::new();
    let data = pseudo_random(5 * 4064, 52);
    let mut wc = k.writer();
    wc.args(["--persist", "--slots", "8", "--slot-size", "4096"]);
    let w = run_with_input(wc, &data, TIMEOUT);
    assert_eq!(w.code(), Some(0), "{}", w.stderr);
    let id = shm_common::segment::find(k.key)
        .ok()
        .flatten()
        .expect("segment");
    let seg = attach(&k, id);
    // Slot 2, payload byte 100.
    let at = shm_common::layout::HEADER_SIZE + 2 * 4096 + 32 + 100;
    let mut b = [0u8; 1];
    seg.read_bytes(at, &mut b).expect("read");
    seg.write_bytes(at, &[b[0] ^ 0x10]).expect("write");
    drop(seg);
    let f = Proc::spawn(k.reader(), Stdio::null()).wait(TIMEOUT);
    assert_no_crash(&f, "reader");
    assert_eq!(f.code(), Some(6), "{}", f.stderr);
    assert!(f.stderr.contains("checksum"), "{}", f.stderr);
    assert!(
        f.stdout == data[..2 * 4064],
        "delivered {} bytes, expected exactly the 2 good frames (8128)",
        f.stdout.len()
    );
    // The reader was the last one: it removed the session on its way out.
    k.assert_clean();
}

/// While a large transfer runs, a hostile thread attached to the segment writes random
/// bytes into random slots and header fields. The reader never panics or dies by a
/// signal, never emits bytes that are not a prefix of the input, and exits with a
/// documented code and a clear message; so does the writer.
#[test]
fn hostile_scribbler_never_gets_garbage_delivered() {
    for round in 0..3u64 {
        let k = TestKey::new();
        let data = pseudo_random(32 << 20, 60 + round);
        let mut wc = k.writer();
        wc.args(["--slots", "16", "--slot-size", "4096"]);
        let (w, _feed) = spawn_fed(wc, data.clone());
        let mut r = Proc::spawn(k.reader(), Stdio::null());
        wait_until(TIMEOUT, "transfer to start", || {
            header_u64(k.key, off::BYTES_CONSUMED).unwrap_or(0) > 100_000 || !r.running()
        });
        let id = shm_common::segment::find(k.key).ok().flatten();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let key = k.key;
        let scribbler = std::thread::spawn(move || {
            let Some(id) = id else { return 0 };
            let Ok(seg) = shm_common::segment::Segment::attach(key, id) else {
                return 0;
            };
            let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ round;
            let mut next = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let mut n = 0;
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) && n < 20_000 {
                let r = next();
                let junk = next().to_le_bytes();
                let len = 1 + (r % 8) as usize;
                // Three in four hits land in the ring, the rest in the header.
                let at = if r % 4 == 0 {
                    (next() % 4088) as usize
                } else {
                    shm_common::layout::HEADER_SIZE + (next() as usize % (16 * 4096 - 8))
                };
                let _ = seg.write_bytes(at, &junk[..len]);
                n += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
            n
        });
        let rf = wait_tagged(r, Duration::from_secs(60), "reader under scribbling");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let wf = wait_tagged(w, Duration::from_secs(30), "writer under scribbling");
        let n = scribbler.join().expect("scribbler");
        eprintln!(
            "round {round}: {n} scribbles; reader {} ({} bytes): {}; writer {}: {}",
            describe_status(&rf),
            rf.stdout.len(),
            rf.stderr
                .lines()
                .filter(|l| l.contains("error"))
                .collect::<Vec<_>>()
                .join(" | "),
            describe_status(&wf),
            wf.stderr
                .lines()
                .filter(|l| l.contains("error"))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        assert_no_crash(&rf, "reader");
        assert_no_crash(&wf, "writer");
        assert_prefix(&rf.stdout, &data, "reader under scribbling");
        let documented = [0, 1, 3, 4, 6];
        assert!(
            rf.code().is_some_and(|c| documented.contains(&c)),
            "reader exit {:?}: {}",
            rf.code(),
            rf.stderr
        );
        assert!(
            wf.code().is_some_and(|c| documented.contains(&c)),
            "writer exit {:?}: {}",
            wf.code(),
            wf.stderr
        );
        if rf.code() != Some(0) {
            assert!(
                rf.stderr.contains("error:") && rf.stderr.contains("hint:"),
                "reader: unclear message: {}",
                rf.stderr
            );
        }
        k.force_remove();
    }
}

// ---------------------------------------------------------------------------------
// EINTR: blocking calls interrupted by signals must not break a transfer.
// ---------------------------------------------------------------------------------

/// A storm of signals the binaries do not terminate on, sent to both processes while
/// a transfer runs: SIGSTOP/SIGCONT pairs (on Linux a stop and continue makes a
/// blocked semop/semtimedop fail with EINTR even without a handler, see signal(7)),
/// plus SIGWINCH, SIGURG and SIGCHLD. The stream must complete exactly.
#[test]
fn signal_storm_eintr_does_not_break_a_transfer() {
    let k = TestKey::new();
    let data = pseudo_random(12 << 20, 70);
    let mut wc = k.writer();
    wc.args(["--slots", "4", "--slot-size", "4096"]);
    let (mut w, _feed) = spawn_fed(wc, data.clone());
    let mut r = Proc::spawn(k.reader(), Stdio::null());
    let (wp, rp) = (w.pid(), r.pid());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let storm = std::thread::spawn(move || {
        let mut n = 0u64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            for pid in [wp, rp] {
                match n % 5 {
                    0 => {
                        send_sig(pid, Signal::SIGSTOP);
                        std::thread::sleep(Duration::from_micros(300));
                        send_sig(pid, Signal::SIGCONT);
                    }
                    1 => send_sig(pid, Signal::SIGWINCH),
                    2 => send_sig(pid, Signal::SIGURG),
                    3 => send_sig(pid, Signal::SIGCHLD),
                    _ => send_sig(pid, Signal::SIGCONT),
                }
            }
            n += 1;
            std::thread::sleep(Duration::from_micros(500));
        }
        for pid in [wp, rp] {
            send_sig(pid, Signal::SIGCONT);
        }
        n
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    while (w.running() || r.running()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let n = storm.join().expect("storm");
    let wf = w.wait(TIMEOUT);
    let rf = r.wait(TIMEOUT);
    eprintln!("{n} rounds of signals during the transfer");
    assert!(n > 50, "too few signals were sent ({n}) to mean anything");
    assert_eq!(wf.code(), Some(0), "writer: {}", wf.stderr);
    assert_eq!(rf.code(), Some(0), "reader: {}", rf.stderr);
    assert!(
        rf.stdout == data,
        "delivered {} of {} bytes (prefix: {})",
        rf.stdout.len(),
        data.len(),
        is_prefix(&rf.stdout, &data)
    );
    k.assert_clean();
}
