//! Whatever else is at the key: a session that already has its writer or reader,
//! another program's segment or semaphore set, another user's session, the stale
//! leftovers of a crash. Nothing that is not provably ours is ever changed or
//! removed; every refusal is exit 3 (or 5: the kernel says no) with a message that
//! names the key and, where removal is the fix, the exact `ipcrm`.
mod support;
use shm_common::layout::{off, sem};
use shm_common::segment::Segment;
use shm_common::semaphore::SemaphoreSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::scenario::DETECT;
use support::*;

// ----------------------------------------------------------------------------------
// A byte-stream session has one writer and one reader
// ----------------------------------------------------------------------------------

#[test]
fn second_writer_is_refused_with_exit_3_and_first_is_unaffected() {
    let k = TestKey::new();
    let first = pseudo_random(2 << 20, 8);
    let mut w1 = Proc::spawn(k.writer(), Stdio::piped());
    w1.feed(&first[..1000]);
    wait_until(SOON, "the first writer's objects", || {
        k.in_ipcs() == (true, true)
    });
    w1.wait_stderr(SOON, "created key");
    // A second byte-stream writer on the same key: refused, exit 3, says why.
    let w2 = run_with_input(k.writer(), b"intruder bytes that must never arrive", SOON);
    assert_eq!(
        w2.code(),
        Some(i32::from(code::CONFLICT)),
        "second writer: {}",
        w2.stderr
    );
    assert!(w2.stderr.contains(&k.arg()), "names the key: {}", w2.stderr);
    assert!(
        w2.stderr.contains("writer"),
        "says a writer is there: {}",
        w2.stderr
    );
    assert!(
        w2.stderr.contains(&w1.pid().to_string()),
        "names the pid of the first writer: {}",
        w2.stderr
    );
    // The first writer goes on and delivers exactly its own bytes.
    let reader = Proc::spawn(k.reader(), Stdio::null());
    w1.feed_in_background(first[1000..].to_vec());
    let w = w1.wait(TIMEOUT);
    let r = reader.wait(TIMEOUT);
    assert_ok(&w, "first writer");
    assert_ok(&r, "reader");
    assert_all(&r.stdout, &first, "the first writer's stream");
    k.assert_clean();
}

/// A second reader on a byte-stream key gets exit 3 at once, takes nothing and
/// changes no semaphore; the first reader still receives the whole stream.
#[test]
fn second_reader_is_refused_with_exit_3_and_first_is_unaffected() {
    let k = TestKey::new();
    let data = pseudo_random(1 << 20, 9);
    let mut w1 = Proc::spawn(k.writer(), Stdio::piped());
    w1.feed(&data[..1000]);
    let mut r1 = Proc::spawn(k.reader(), Stdio::null());
    r1.wait_stdout(SOON, "the first bytes", |o| o.len() == 1000);
    wait_until(TIMEOUT, "the first reader to take them", || {
        bytes_consumed(k.key) == 1000
    });
    let before = sem_values(k.key);
    let t = Instant::now();
    let r2 = Proc::spawn(k.reader(), Stdio::null()).wait(DETECT + Duration::from_secs(5));
    assert!(t.elapsed() < DETECT, "the refusal took {:?}", t.elapsed());
    assert_eq!(
        r2.code(),
        Some(i32::from(code::CONFLICT)),
        "second reader: {}",
        r2.stderr
    );
    assert_no_crash(&r2, "second reader");
    assert!(r2.stdout.is_empty(), "the second reader received bytes");
    assert!(
        r2.stderr.contains("already") && r2.stderr.contains(&k.arg()),
        "says a reader is there and names the key: {}",
        r2.stderr
    );
    assert_eq!(
        sem_values(k.key),
        before,
        "the refused reader changed the semaphores"
    );
    w1.feed_in_background(data[1000..].to_vec());
    let w = w1.wait(TIMEOUT);
    let r = r1.wait(TIMEOUT);
    assert_ok(&w, "writer");
    assert_ok(&r, "first reader");
    assert_all(&r.stdout, &data, "the first reader's stream");
    k.assert_clean();
}

// ----------------------------------------------------------------------------------
// Another program's objects
// ----------------------------------------------------------------------------------

/// Creates a segment at the key the way `ipcmk -M` would (zero-filled), writes
/// `content` at its start, and returns its shmid.
fn foreign_segment(k: &TestKey, size: usize, content: &[u8]) -> i32 {
    let seg = Segment::create_exclusive(k.key, size, 0o600)
        .expect("create the foreign segment")
        .expect("the key is free");
    if !content.is_empty() {
        seg.write_bytes(0, content).expect("write");
    }
    seg.id()
}

/// The foreign segment is still there: same id, same size, same bytes, no set beside.
fn assert_foreign_unchanged(k: &TestKey, who: &str, id: i32, size: usize, content: &[u8]) {
    assert_eq!(
        segment_at(k.key),
        Some((i64::from(id), size as u64)),
        "{who}: the foreign segment must still be there, same id and size"
    );
    let seg = Segment::attach(k.key, id).expect("attach foreign");
    let mut now = vec![0u8; size];
    seg.read_bytes(0, &mut now).expect("read");
    let mut expected = vec![0u8; size];
    expected[..content.len()].copy_from_slice(content);
    assert!(
        now == expected,
        "{who}: the foreign segment's bytes changed"
    );
    assert!(!k.in_ipcs().1, "{who}: a semaphore set was left at the key");
}

/// Both binaries refuse the foreign segment at once with exit 3, naming the key, its
/// owner and the `ipcrm` that would remove it, and leave it exactly as it was.
fn check_foreign_refusal(k: &TestKey, id: i32, size: usize, content: &[u8]) {
    for name in ["writer", "reader"] {
        let t = Instant::now();
        let f = run_with_input(
            k.binary(name),
            b"must not be sent\n",
            DETECT + Duration::from_secs(10),
        );
        assert!(t.elapsed() < DETECT, "{name} took {:?}", t.elapsed());
        assert_eq!(
            f.code(),
            Some(i32::from(code::CONFLICT)),
            "{name} on a foreign segment: {}",
            f.stderr
        );
        assert_no_crash(&f, name);
        assert!(f.stdout.is_empty(), "{name} printed data");
        assert!(
            f.stderr.contains(&k.arg()),
            "{name} names the key: {}",
            f.stderr
        );
        assert!(
            f.stderr.contains(&format!("ipcrm -m {id}")),
            "{name} gives the ipcrm command: {}",
            f.stderr
        );
        assert!(
            f.stderr.contains("uid"),
            "{name}: the error does not name the owner: {}",
            f.stderr
        );
        assert_foreign_unchanged(k, name, id, size, content);
    }
}

#[test]
fn foreign_segment_with_data_is_refused_and_left_alone() {
    let k = TestKey::new();
    let content = b"somebody else's data, not our magic".repeat(10);
    let id = foreign_segment(&k, 8192, &content);
    check_foreign_refusal(&k, id, 8192, &content);
    // The guard (TestKey's drop) removes the foreign segment.
}

#[test]
fn foreign_zero_filled_segment_like_ipcmk_is_refused_and_left_alone() {
    let k = TestKey::new();
    // Exactly what `ipcmk -M 8192` leaves: a zero-filled segment and no semaphore set.
    // That cannot be a half-initialised session of ours (our creator makes the set
    // first), so it must be treated as foreign, never removed as "stale".
    let id = foreign_segment(&k, 8192, &[]);
    check_foreign_refusal(&k, id, 8192, &[]);
}

#[test]
fn foreign_small_segment_is_refused_and_left_alone() {
    let k = TestKey::new();
    // Smaller than our 4096-byte header.
    let content = b"tiny";
    let id = foreign_segment(&k, 100, content);
    check_foreign_refusal(&k, id, 100, content);
}

/// A foreign, zero-filled segment smaller than our header (someone else's, still
/// empty): it cannot be ours, so it is refused and never removed, however long it
/// has been there.
#[test]
fn foreign_small_zeroed_segment_is_never_removed() {
    let k = TestKey::new();
    let id = foreign_segment(&k, 100, &[]);
    // Older than INIT_GRACE (whole seconds of sem/shm ctime), so it cannot pass for
    // a creator at work.
    std::thread::sleep(Duration::from_millis(2500));
    // --persist: even if it (wrongly) takes the key, the writer exits at once.
    let mut c = k.writer();
    c.arg("--persist");
    let f = run(c, Duration::from_secs(15));
    let still = shm_common::segment::find(k.key).ok().flatten();
    assert_eq!(
        still,
        Some(id),
        "the foreign segment was removed; writer: {} {}",
        f.describe(),
        f.stderr
    );
    assert_eq!(f.code(), Some(3), "writer: {}", f.stderr);
}

/// A foreign semaphore set (3 members) at the key: exit 3 naming the key, owner and
/// `ipcrm -s`; the set keeps its values and is not removed.
#[test]
fn foreign_semaphore_set_is_refused_untouched() {
    let k = TestKey::new();
    const NAMES: &[&str] = &["A", "B", "C"];
    let set = SemaphoreSet::create_exclusive(k.key, NAMES, 0o600)
        .expect("semget")
        .expect("the key is free");
    set.set_values(&[7, 8, 9]).expect("setall");
    let id = set.id();
    for name in ["writer", "reader"] {
        let t = Instant::now();
        let f = run(k.binary(name), DETECT + Duration::from_secs(5));
        assert!(t.elapsed() < DETECT, "{name} took {:?}", t.elapsed());
        assert_eq!(f.code(), Some(3), "{name}: {}", f.stderr);
        assert_no_crash(&f, name);
        assert!(f.stderr.contains(&k.arg()), "{name}: no key: {}", f.stderr);
        assert!(
            f.stderr.contains(&format!("ipcrm -s {id}")),
            "{name}: no ipcrm hint: {}",
            f.stderr
        );
        assert!(f.stderr.contains("uid"), "{name}: no owner: {}", f.stderr);
        let v = SemaphoreSet::open(k.key, id, NAMES)
            .and_then(|s| s.values())
            .expect("the foreign set was removed");
        assert_eq!(v, [7, 8, 9], "{name} changed the foreign set");
        assert!(!k.in_ipcs().0, "{name} left a segment beside it");
    }
}

// ----------------------------------------------------------------------------------
// Another user's session, and ours seen by another user
// ----------------------------------------------------------------------------------

/// `cmd`, run as user nobody (uid 65534) by `setpriv`.
fn as_nobody(cmd: &Command) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
    c.arg(cmd.get_program());
    c.args(cmd.get_args());
    c
}

/// Waits until the session at the key is open and holds at least one frame.
fn wait_for_frames(k: &TestKey) {
    wait_until(TIMEOUT, "a session with a published frame", || {
        header_u32(k.key, off::STATE) == Some(1) && sem_value(k.key, sem::FILLED).unwrap_or(0) >= 1
    });
}

/// A session created by another user (nobody, mode 0600): root's writer and reader
/// refuse it with exit 3 (or 5) and change nothing; that user's own reader completes it.
#[test]
fn another_users_session_is_refused_and_unaffected() {
    if !require_setpriv("run a session as another user") {
        return;
    }
    let k = TestKey::new();
    let data = pseudo_random(200_000, 41);
    let mut w = Proc::spawn(as_nobody(&k.writer()), Stdio::piped());
    w.feed(&data[..1000]);
    wait_for_frames(&k);
    let before = sem_values(k.key);
    for name in ["writer", "reader"] {
        let t = Instant::now();
        let f = run(k.binary(name), DETECT + Duration::from_secs(5));
        assert!(t.elapsed() < DETECT, "{name} took {:?}", t.elapsed());
        eprintln!(
            "root {name} on nobody's session: {} {}",
            f.describe(),
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
    let r = Proc::spawn(as_nobody(&k.reader()), Stdio::null());
    w.feed_in_background(data[1000..].to_vec());
    let wf = w.wait(TIMEOUT);
    let rf = r.wait(TIMEOUT);
    assert_eq!(wf.code(), Some(0), "nobody's writer: {}", wf.stderr);
    assert_eq!(rf.code(), Some(0), "nobody's reader: {}", rf.stderr);
    assert_all(&rf.stdout, &data, "nobody's reader");
    k.assert_clean();
}

/// Root's session (0600): a reader run as nobody gets exit 5 with a hint and changes
/// nothing; the legitimate pair completes.
#[test]
fn reader_as_another_user_gets_permission_denied() {
    if !require_setpriv("run a reader as another user") {
        return;
    }
    let k = TestKey::new();
    let data = pseudo_random(200_000, 42);
    let mut w = Proc::spawn(k.writer(), Stdio::piped());
    w.feed(&data[..1000]);
    wait_for_frames(&k);
    let before = sem_values(k.key);
    let t = Instant::now();
    let f = run(as_nobody(&k.reader()), DETECT + Duration::from_secs(5));
    assert!(t.elapsed() < DETECT, "took {:?}", t.elapsed());
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
    w.feed_in_background(data[1000..].to_vec());
    let wf = w.wait(TIMEOUT);
    let rf = r.wait(TIMEOUT);
    assert_eq!(wf.code(), Some(0), "writer: {}", wf.stderr);
    assert_eq!(rf.code(), Some(0), "reader: {}", rf.stderr);
    assert_all(&rf.stdout, &data, "root's reader");
    k.assert_clean();
}

// ----------------------------------------------------------------------------------
// Stale objects of ours: recovered with a note
// ----------------------------------------------------------------------------------

#[test]
fn stale_objects_after_kill_9_are_recovered_with_a_note() {
    let k = TestKey::new();
    let mut w1 = Proc::spawn(k.writer(), Stdio::piped());
    w1.feed(b"half a stream that nobody will read\n");
    w1.wait_stderr(SOON, "created key");
    wait_until(SOON, "objects of the first writer", || {
        k.in_ipcs() == (true, true)
    });
    let st = w1.kill9(SOON);
    assert!(st.code().is_none(), "killed by a signal");
    // The objects stay (nobody removed them): stale.
    assert_eq!(k.in_ipcs(), (true, true), "the kill -9 left the objects");
    // A new writer recovers them with a one-line note and works.
    let data = b"a fresh stream after the crash\n".repeat(1000);
    let mut w2 = Proc::spawn(k.writer(), Stdio::piped());
    w2.feed_in_background(data.clone());
    // Start the reader only once the recovery is done: a reader that came first
    // would (correctly) drain the dead writer's stream and report it cut short.
    w2.wait_stderr(SOON, "created key");
    let r = Proc::spawn(k.reader(), Stdio::null()).wait(TIMEOUT);
    let w = w2.wait(TIMEOUT);
    assert_ok(&w, "recovering writer");
    assert_ok(&r, "reader");
    assert_all(&r.stdout, &data, "the stream after the recovery");
    let notes: Vec<&str> = w
        .stderr
        .lines()
        .filter(|l| l.to_lowercase().contains("stale") || l.contains("recover"))
        .collect();
    assert_eq!(
        notes.len(),
        1,
        "one-line recovery note expected in writer stderr:\n{}",
        w.stderr
    );
    assert!(
        notes[0].contains(&k.arg()),
        "the note names the key: {}",
        notes[0]
    );
    assert!(!r.stderr.contains("half a stream"));
    k.assert_clean();
}
