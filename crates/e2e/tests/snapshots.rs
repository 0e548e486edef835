//! What people read, pinned by snapshots: the `--explain` narration of a short
//! persisted session, both sides, and the inspector's plain and JSON output of the
//! stream waiting in the kernel. Ids, pids, addresses, times and the key change
//! from run to run and are replaced by `[SHMID]`, `[PID]`, ...; everything else must
//! match `tests/snapshots/*` byte for byte. After an intended change, regenerate
//! with `SNAPSHOTS=overwrite cargo test -p e2e --test snapshots` and read the diff.
mod support;
use snapbox::{assert_data_eq, file};
use std::process::{Command, Stdio};
use support::*;

/// Replaces every standalone occurrence of the number `n` (not part of a longer
/// run of digits) by `with`.
fn replace_number(text: &str, n: i64, with: &str) -> String {
    let needle = n.to_string();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let before_ok = i == 0 || !bytes[i - 1].is_ascii_digit();
        if before_ok && rest.starts_with(&needle) {
            let end = i + needle.len();
            if end == text.len() || !bytes[end].is_ascii_digit() {
                out.push_str(with);
                i = end;
                continue;
            }
        }
        let ch = rest.chars().next().expect("a char");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Replaces what changes from run to run.
struct Redact {
    key: String,
    numbers: Vec<(i64, &'static str)>,
}

impl Redact {
    fn apply(&self, text: &str) -> String {
        let mut t = text.replace(&self.key, "[KEY]");
        for &(n, name) in &self.numbers {
            t = replace_number(&t, n, name);
        }
        // Addresses (`shmat(...) = 0x7f...`) and times (seconds since the epoch,
        // ten digits) and the duration of the summary lines.
        let mut out = String::new();
        for word in split_keep(&t) {
            out.push_str(&redact_word(word));
        }
        out
    }
}

/// Splits into maximal runs of `[0-9a-zA-Z.]` and single other characters, so that
/// numbers and hex addresses can be recognised as whole words.
fn split_keep(t: &str) -> Vec<&str> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '.';
    let mut v = Vec::new();
    let mut start = 0;
    for (i, c) in t.char_indices() {
        let run_continues = i > start && word(c) && t[start..i].chars().all(word);
        if i > start && !run_continues {
            v.push(&t[start..i]);
            start = i;
        }
    }
    v.push(&t[start..]);
    v
}

fn redact_word(w: &str) -> String {
    // An address (`shmat(...) = 0x7f0f2d919000`, sometimes 0x7e...: where the
    // kernel maps depends on the run) has more hex digits than a key's eight.
    if w.starts_with("0x") && w.len() > 10 && w[2..].chars().all(|c| c.is_ascii_hexdigit()) {
        return "[ADDR]".into();
    }
    if w.len() == 10 && w.starts_with('1') && w.chars().all(|c| c.is_ascii_digit()) {
        return "[TIME]".into();
    }
    // "... in 0.000 s (0.1 MB/s)", "in the last 0.0 s": durations and rates.
    if w.contains('.')
        && w.chars().any(|c| c.is_ascii_digit())
        && w.chars().all(|c| c.is_ascii_digit() || c == '.')
    {
        return "[N.N]".into();
    }
    w.to_string()
}

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
