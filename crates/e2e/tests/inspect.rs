//! `shm-inspect` against live sessions, nothing, and other programs' objects.
mod support;
use shm_cli::keys::Range;
use shm_common::ring::{Batch, Consumer, Producer, Received};
use shm_common::segment::{self, Segment};
use shm_common::semaphore;
use shm_common::session::{OpenOptions, Role, Session};
use shm_common::{Geometry, IpcKey};
use std::sync::mpsc;
use std::time::Duration;
use support::*;

fn quiet(_: String) {}

/// A key in the inspector tests' range.
fn inspector_key() -> TestKey {
    TestKey::in_range(Range::INSPECT)
}

/// `shm-inspect --key KEY ARGS...`, which must succeed.
fn inspect(key: &str, extra: &[&str]) -> String {
    let mut c = std::process::Command::new(bin("shm-inspect"));
    c.args(["--key", key]).args(extra);
    let o = run(c, Duration::from_secs(20));
    assert!(o.code() == Some(0), "shm-inspect failed: {}", o.stderr);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn open(key: IpcKey, role: Role, slots: u32) -> Session {
    let opts = OpenOptions {
        key,
        role,
        geometry: Geometry::new(slots, 128).expect("geometry"),
        mode: 0o600,
        persist: false,
        shared: false,
    };
    Session::open(&opts, &quiet).expect("open session")
}

/// Removes the key's objects if the test is still running after `limit`: every
/// process (thread) blocked in semop then wakes with EIDRM, so nothing hangs.
struct Watchdog {
    tx: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn new(key: IpcKey, limit: Duration) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if rx.recv_timeout(limit) == Err(mpsc::RecvTimeoutError::Timeout) {
                eprintln!("watchdog: {limit:?} passed; removing everything at {key}");
                sweep(key);
            }
        });
        Watchdog {
            tx: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Every line of the plain format is `name: ...` or `sem NAME k=v k=v k=v k=v`.
fn check_grammar(text: &str) {
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("sem ") {
            let mut words = rest.split_whitespace();
            let name = words.next().expect("sem name");
            assert!(!name.contains('='), "{l}");
            let keys: Vec<&str> = words
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("k=v");
                    assert!(v.parse::<i64>().is_ok(), "not a number in {l}");
                    k
                })
                .collect();
            assert_eq!(keys, ["value", "pid", "ncnt", "zcnt"], "{l}");
        } else {
            let (name, _) = l
                .split_once(": ")
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            assert!(
                [
                    "key", "verdict", "segment", "header", "counters", "mutex", "peer", "semset",
                    "ring", "cells", "note"
                ]
                .contains(&name),
                "unknown record {name:?}"
            );
        }
    }
}

#[test]
fn live_ring_ids_match_ipcs_and_a_blocked_writer_shows() {
    let guard = inspector_key();
    let key = guard.key;
    let _watchdog = Watchdog::new(key, Duration::from_secs(60));
    let ws = open(key, Role::Writer, 4);
    // The writer's session goes to its own thread (a Session is used by one thread
    // at a time) and comes back with the result.
    let (mut ws, text, ipcs_shm, ipcs_sem) = std::thread::scope(|sc| {
        let writer = sc.spawn(move || {
            let result = (|| {
                let mut p = Producer::new(&ws, 4, &quiet);
                // Six frames into four slots: the writer blocks on FREE after four.
                let payloads = vec![b"frame".as_slice(); 6];
                p.send(&payloads)?;
                p.finish()
            })();
            (ws, result)
        });
        let text = eventually(Duration::from_secs(20), || {
            let t = inspect(&guard.arg(), &["--plain"]);
            let free = pairs(line(&t, "sem FREE ")?);
            (free.get("value")? == "0" && free.get("ncnt")? != "0").then_some(t)
        })
        .expect("the inspector never saw the writer sleeping on FREE");
        // What ipcs says while the session is live.
        let ids = (ipcs_id("-m", key), ipcs_id("-s", key));

        // Drain, so the writer can finish.
        let mut rs = open(key, Role::Reader, 1);
        {
            let mut c = Consumer::new(&rs, 4, &quiet);
            let mut batch = Batch::default();
            let mut frames = 0;
            while c.recv(&mut batch).expect("recv") != Received::EndOfStream {
                frames += batch.frames.len();
            }
            frames += batch.frames.len();
            assert_eq!(frames, 6);
        }
        rs.leave(true).expect("reader leave");
        let (ws, result) = writer.join().expect("writer thread");
        result.expect("writer");
        (ws, text, ids.0, ids.1)
    });
    let shmid = ws.segment().id();
    let semid = ws.semaphores().id();
    ws.leave(true).expect("writer leave");

    check_grammar(&text);
    assert_eq!(line(&text, "key:"), Some(format!("key: {key}").as_str()));
    assert_eq!(line(&text, "verdict:"), Some("verdict: ours"));
    let seg = pairs(line(&text, "segment:").expect("segment line"));
    let set = pairs(line(&text, "semset:").expect("semset line"));
    assert_eq!(seg["shmid"], shmid.to_string());
    assert_eq!(set["semid"], semid.to_string());
    assert_eq!(Some(shmid), ipcs_shm);
    assert_eq!(Some(semid), ipcs_sem);
    assert_eq!(set["nsems"], shm_common::layout::sem::COUNT.to_string());
    assert_eq!(seg["size"], (4096 + 4 * 128).to_string());
    assert_eq!(seg["self_attached"], "no");
    assert_eq!(line(&text, "cells:"), Some("cells: ####"));
    let ring = pairs(line(&text, "ring:").expect("ring line"));
    assert_eq!((ring["free"].as_str(), ring["filled"].as_str()), ("0", "4"));
    assert!(
        text.lines().any(|l| l.starts_with("note: writer blocked")),
        "{text}"
    );
    let peer = pairs(line(&text, "peer:").expect("peer line"));
    assert_eq!(peer["pid"], std::process::id().to_string());
    assert_eq!(peer["role"], "writer");
    // The last one out removed everything.
    assert_eq!(ipcs_id("-m", key), None);
    assert_eq!(ipcs_id("-s", key), None);
}

#[test]
fn ids_match_ipcs_and_json_parses() {
    let guard = inspector_key();
    let key = guard.key;
    let mut ws = open(key, Role::Writer, 8);
    let text = inspect(&guard.arg(), &[]);
    let json = inspect(&guard.arg(), &["--json"]);
    let ipcs_shm = ipcs_id("-m", key);
    let ipcs_sem = ipcs_id("-s", key);
    ws.leave(false).expect("leave");

    check_grammar(&text);
    let seg = pairs(line(&text, "segment:").expect("segment"));
    let set = pairs(line(&text, "semset:").expect("semset"));
    assert_eq!(Some(seg["shmid"].parse::<i32>().expect("shmid")), ipcs_shm);
    assert_eq!(Some(set["semid"].parse::<i32>().expect("semid")), ipcs_sem);
    // Taken before our own attach: the writer's is the only one.
    assert_eq!(seg["nattch"], "1");

    let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(v["key"], key.to_string());
    assert_eq!(v["verdict"], "ours");
    assert_eq!(v["segment"]["shmid"].as_i64(), ipcs_shm.map(i64::from));
    assert_eq!(v["semset"]["semid"].as_i64(), ipcs_sem.map(i64::from));
    assert_eq!(v["header"]["magic"], "SVSHMRNG");
    assert_eq!(v["header"]["slots"], 8);
    assert_eq!(v["header"]["state"], "open");
    assert_eq!(v["ring"]["cells"], "........");
    let members = v["semset"]["members"].as_array().expect("members");
    let names: Vec<&str> = members.iter().filter_map(|m| m["name"].as_str()).collect();
    assert_eq!(names, shm_common::layout::sem::NAMES);
    assert_eq!(members[0]["value"], 8, "FREE starts at the slot count");
    assert_eq!(members[6]["value"], 1, "one live writer");
    // Plain and JSON say the same.
    for m in members {
        let name = m["name"].as_str().expect("name");
        let p = pairs(line(&text, &format!("sem {name} ")).expect("sem line"));
        assert_eq!(p["value"], m["value"].to_string());
        assert_eq!(p["pid"], m["pid"].to_string());
    }
}

#[test]
fn nothing_at_the_key() {
    let guard = inspector_key();
    let text = inspect(&guard.arg(), &[]);
    check_grammar(&text);
    assert_eq!(line(&text, "verdict:"), Some("verdict: nothing"));
    assert_eq!(line(&text, "segment:"), Some("segment: none"));
    assert_eq!(line(&text, "semset:"), Some("semset: none"));
    let v: serde_json::Value =
        serde_json::from_str(&inspect(&guard.arg(), &["--json"])).expect("json");
    assert_eq!(v["verdict"], "nothing");
    assert!(v["segment"].is_null() && v["semset"].is_null() && v["ring"].is_null());
    assert_eq!(ipcs_id("-m", guard.key), None, "looking created something");
}

#[test]
fn a_foreign_segment_and_set_are_reported_and_left_alone() {
    let guard = inspector_key();
    let key = guard.key;
    // Another program's segment: 8 KiB that starts with its own bytes.
    let content = b"NOT OURS, hands off!";
    let shmid = foreign_segment(key, 8192, content);
    // And a 3-member semaphore set that nobody has operated on (sem_otime = 0).
    let semid = semaphore::SemaphoreSet::create_exclusive(key, &["A", "B", "C"], 0o600)
        .expect("semget")
        .expect("the key is free")
        .id();
    let before = segment::stat(key, shmid).expect("stat");

    let text = inspect(&guard.arg(), &[]);
    let json = inspect(&guard.arg(), &["--json"]);

    check_grammar(&text);
    assert_eq!(line(&text, "verdict:"), Some("verdict: foreign"));
    let header = line(&text, "header:").expect("header line");
    let hex: String = content[..16].iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        header.starts_with(&format!("header: not-ours first_bytes={hex} ")),
        "{header}"
    );
    assert!(header.contains("magic"), "{header}");
    assert_eq!(
        pairs(line(&text, "segment:").expect("seg"))["shmid"],
        shmid.to_string()
    );
    assert_eq!(pairs(line(&text, "semset:").expect("set"))["nsems"], "3");
    assert!(line(&text, "sem #2 value=0 pid=0 ").is_some(), "{text}");
    assert!(line(&text, "ring:").is_none());
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["verdict"], "foreign");
    assert!(v["header"].is_null());
    assert!(v["header_problem"]
        .as_str()
        .is_some_and(|p| p.contains("not ours")));

    // Untouched: same object, same bytes, no attach left, the set never operated on.
    assert_eq!(segment::find(key).expect("find"), Some(shmid));
    let after = segment::stat(key, shmid).expect("stat");
    assert_eq!(
        (after.size, after.attached, after.change_time),
        (before.size, 0, before.change_time)
    );
    let seg = Segment::attach(key, shmid).expect("attach");
    let mut now = [0u8; 20];
    seg.read_bytes(0, &mut now).expect("read");
    assert_eq!(&now, content);
    drop(seg);
    let set = shm_common::semaphore::stat(key, semid).expect("sem stat");
    assert_eq!(set.otime, 0, "the inspector must never semop");
    assert_eq!(shm_common::semaphore::find(key).expect("find"), Some(semid));
}

#[test]
fn a_zeroed_segment_is_incomplete_not_foreign() {
    let guard = inspector_key();
    let key = guard.key;
    foreign_segment(key, 8192, &[]);
    let text = inspect(&guard.arg(), &[]);
    assert_eq!(
        line(&text, "verdict:"),
        Some("verdict: incomplete"),
        "{text}"
    );
    assert!(line(&text, "header: not-ours first_bytes=00000000").is_some());
}

#[test]
fn a_small_zeroed_segment_is_foreign() {
    let guard = inspector_key();
    let key = guard.key;
    foreign_segment(key, 100, &[]);
    let text = inspect(&guard.arg(), &[]);
    assert_eq!(line(&text, "verdict:"), Some("verdict: foreign"), "{text}");
    let header = line(&text, "header:").expect("header line");
    assert!(header.contains("smaller than our header"), "{header}");
}

/// Standard output is not a terminal (a pipe here): `--watch` prints the plain
/// format once per interval, an empty line after each, and no escape codes, until
/// Ctrl-C (SIGINT), and exits 0. (On a terminal: `inspect_tty.rs`.)
#[test]
fn watch_redraws_until_ctrl_c() {
    let guard = inspector_key();
    let mut c = std::process::Command::new(bin("shm-inspect"));
    c.args(["--key", &guard.arg(), "--watch", "0.1"]);
    let mut p = Proc::spawn(c, std::process::Stdio::null());
    let looks = |o: &[u8]| {
        String::from_utf8_lossy(o)
            .matches("verdict: nothing\n")
            .count()
    };
    p.wait_stdout(SOON, "two looks", |o| looks(o) >= 2);
    p.signal(Signal::SIGINT);
    let o = p.wait(Duration::from_secs(10));
    assert_eq!(o.code(), Some(0), "exit {:?}: {}", o.status, o.stderr);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(looks(&o.stdout) >= 2, "{out}");
    assert!(!out.contains('\x1b'), "escape codes on a pipe: {out:?}");
    // Each look is the plain format, then an empty line.
    for record in out.split_terminator("\n\n") {
        check_grammar(record);
        assert_eq!(
            line(record, "key:"),
            Some(format!("key: {}", guard.key).as_str())
        );
    }
    assert!(out.ends_with("\n\n"), "{out:?}");
}

/// A stopped peer is `state=stopped` in the plain format and `"state":"stopped"`
/// in JSON (added after `alive`, which stays `yes`), with a note saying how to
/// resume it.
#[test]
fn a_stopped_reader_is_shown_as_stopped() {
    let guard = inspector_key();
    let mut w = guard.writer();
    w.args(["--slots", "8", "--slot-size", "4K"]);
    let _writer = Proc::spawn(w, std::process::Stdio::piped());
    let reader = Proc::spawn(guard.reader(), std::process::Stdio::null());
    let key = guard.key;
    wait_until(SOON, "the reader to join", || {
        sem_value(key, shm_common::layout::sem::READERS) == Some(1)
    });
    reader.signal(Signal::SIGSTOP);
    wait_until(SOON, "the reader to stop", || {
        proc_state(reader.pid()) == Some('T')
    });
    let text = inspect(&guard.arg(), &["--plain"]);
    check_grammar(&text);
    let pid = reader.pid().to_string();
    let peer = text
        .lines()
        .filter_map(|l| l.strip_prefix("peer: ").map(|_| pairs(l)))
        .find(|p| p.get("pid") == Some(&pid))
        .unwrap_or_else(|| panic!("no peer line for the reader:\n{text}"));
    assert_eq!(peer["role"], "reader");
    assert_eq!(peer["alive"], "yes");
    assert_eq!(peer["state"], "stopped", "{text}");
    assert!(
        text.contains(&format!("note: reader pid {pid} is stopped")),
        "{text}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&inspect(&guard.arg(), &["--json"])).expect("json");
    let peers = v["header"]["peers"].as_array().expect("peers");
    let states: Vec<(&str, &str)> = peers
        .iter()
        .filter_map(|p| Some((p["role"].as_str()?, p["state"].as_str()?)))
        .collect();
    assert_eq!(states, [("writer", "running"), ("reader", "stopped")]);
    reader.signal(Signal::SIGCONT);
}

/// Writer and reader killed with -9: the objects stay, nobody can use them, and
/// the note names the command that removes them (which works).
#[test]
fn an_abandoned_session_names_its_removal_command() {
    let guard = inspector_key();
    let key = guard.key;
    let mut w = guard.writer();
    w.args(["--slots", "8", "--slot-size", "4K"]);
    let mut writer = Proc::spawn(w, std::process::Stdio::piped());
    let mut reader = Proc::spawn(guard.reader(), std::process::Stdio::null());
    wait_until(SOON, "writer and reader to join", || {
        sem_value(key, shm_common::layout::sem::READERS) == Some(1)
            && sem_value(key, shm_common::layout::sem::WRITERS) == Some(1)
    });
    writer.kill9(SOON);
    reader.kill9(SOON);
    let text = inspect(&guard.arg(), &["--plain"]);
    let shmid = pairs(line(&text, "segment:").expect("segment"))["shmid"].clone();
    let semid = pairs(line(&text, "semset:").expect("semset"))["semid"].clone();
    let cmd = format!("ipcrm -m {shmid} -s {semid}");
    let note = format!(
        "note: abandoned: nobody uses these objects (no writer or reader is left: WRITERS = READERS = 0); remove them with: {cmd} (or: writer --remove --key {key})"
    );
    assert!(text.lines().any(|l| l == note), "{text}");
    assert!(text.contains("state=gone"), "{text}");
    let (code, _, err) = bash(&cmd);
    assert_eq!(code, Some(0), "{cmd}: {err}");
    guard.assert_clean();
}

/// Removes everything at `key` (the test's own key): sleepers wake with EIDRM.
fn sweep(key: IpcKey) {
    let _ = shm_common::session::remove_session(key, true);
    if let Ok(Some(id)) = semaphore::find(key) {
        let _ = semaphore::remove_id(key, id);
    }
    if let Ok(Some(id)) = segment::find(key) {
        let _ = segment::remove_id(key, id);
    }
}

/// The id `ipcs -m` (`which = "-m"`) or `ipcs -s` lists for `key`.
fn ipcs_id(which: &str, key: IpcKey) -> Option<i32> {
    let mut c = std::process::Command::new("ipcs");
    c.arg(which);
    let o = run(c, Duration::from_secs(10));
    let want = key.to_string();
    String::from_utf8_lossy(&o.stdout).lines().find_map(|l| {
        let mut cols = l.split_whitespace();
        (cols.next()? == want).then(|| cols.next()?.parse().ok())?
    })
}

/// Creates a segment at `key` as another program would (zero-filled, then `content`
/// at its start), detached again; returns its shmid.
fn foreign_segment(key: IpcKey, size: usize, content: &[u8]) -> i32 {
    let seg = Segment::create_exclusive(key, size, 0o600)
        .expect("shmget")
        .expect("the key is free");
    if !content.is_empty() {
        seg.write_bytes(0, content).expect("write");
    }
    seg.id()
}
