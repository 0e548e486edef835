//! What people read, pinned by snapshots: the `--explain` narration of a short
//! persisted session, both sides, and the inspector's plain and JSON output of the
//! stream waiting in the kernel. Ids, pids, addresses, times and the key change
//! from run to run and are replaced by `[SHMID]`, `[PID]`, ...; everything else must
//! match `tests/snapshots/*` byte for byte. After an intended change, regenerate
//! with `SNAPSHOTS=overwrite cargo test -p e2e --test snapshots` and read the diff.
mod support;
use snapbox::{assert_data_eq, file};
use std::process::{Command, Stdio};
use support::redact::Redact;
use support::*;

/// The id the kernel gave the segment and the set at `key`.
fn ids(k: &TestKey) -> (i64, i64) {
    let shmid = segment_at(k.key).expect("a segment").0;
    let semid = shm_common::semaphore::find(k.key)
        .ok()
        .flatten()
        .expect("a set");
    (shmid, i64::from(semid))
}

/// `shm-inspect --key K FORMAT`, and its pid (it shows up as the last to attach).
fn inspect(k: &TestKey, format: &str) -> (Finished, i32) {
    let mut c = Command::new(bin("shm-inspect"));
    c.args(["--key", &k.arg(), format]);
    let p = Proc::spawn(c, Stdio::null());
    let pid = p.pid();
    let f = p.wait(SOON);
    assert_ok(&f, "shm-inspect");
    (f, pid)
}

/// `writer --explain --persist` of a two-line file, the inspector's plain and JSON
/// views of the persisted stream, then `reader --explain`.
#[test]
fn explain_narration_and_inspector_output_are_as_documented() {
    let k = TestKey::new();
    let input = TempFile::new(b"hello\nworld\n");
    let mut wc = k.writer();
    wc.args([
        "--explain",
        "--persist",
        "--slots",
        "4",
        "--slot-size",
        "4K",
    ])
    .arg(&input.path);
    let w = Proc::spawn(wc, Stdio::null());
    let writer_pid = w.pid();
    let wf = w.wait(SOON);
    assert_ok(&wf, "writer");
    let (shmid, semid) = ids(&k);
    let (plain, plain_pid) = inspect(&k, "--plain");
    let (json, json_pid) = inspect(&k, "--json");
    let mut rc = k.reader();
    rc.arg("--explain");
    let r = Proc::spawn(rc, Stdio::null());
    let reader_pid = r.pid();
    let rf = r.wait(SOON);
    assert_ok(&rf, "reader");
    assert_eq!(rf.stdout, b"hello\nworld\n");
    k.assert_clean();
    let redact = Redact {
        key: k.arg(),
        numbers: vec![
            (shmid, "[SHMID]"),
            (semid, "[SEMID]"),
            (i64::from(writer_pid), "[WRITER_PID]"),
            (i64::from(reader_pid), "[READER_PID]"),
            (i64::from(plain_pid), "[INSPECTOR_PID]"),
            (i64::from(json_pid), "[INSPECTOR_PID]"),
        ],
    };
    let inspected = |f: &Finished| redact.apply(&String::from_utf8_lossy(&f.stdout));
    assert_data_eq!(
        redact.apply(&wf.stderr),
        file!["snapshots/explain_writer.txt"]
    );
    assert_data_eq!(
        redact.apply(&rf.stderr),
        file!["snapshots/explain_reader.txt"]
    );
    assert_data_eq!(inspected(&plain), file!["snapshots/inspect_plain.txt"]);
    assert_data_eq!(inspected(&json), file!["snapshots/inspect_json.txt"]);
}
