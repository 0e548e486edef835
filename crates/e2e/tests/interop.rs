//! Interop: the C reference peer (`peers/c`, built into `target/c/` by
//! `make -C peers/c`) against the Rust binaries, byte for byte, in every pairing:
//! Rust -> C, C -> Rust, C -> C.
//!
//! Keys: the interop range of the one allocator (`0x7e5xxxxx`, `shm_cli::keys`),
//! each claimed by one test, everything at it removed when the test ends (also when
//! it fails); the guard is declared first in every test, so it drops last, after the
//! processes (which `Proc` kills on drop).
//!
//! If the C binaries are missing a test does not pass silently: under `CI=true` it
//! fails naming `make -C peers/c`; otherwise it is a recorded skip.
mod support;
use shm_cli::keys::Range;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use support::*;

static SCRATCH: AtomicU32 = AtomicU32::new(0);

const WRITERS: usize = 6;
const READERS: usize = 7;

/// A test's key, with the looks this suite takes at it.
struct Key(TestKey);

impl Key {
    fn new() -> Key {
        Key(TestKey::in_range(Range::INTEROP))
    }

    fn arg(&self) -> String {
        self.0.arg()
    }

    /// (shmid, semid) at the key, if there.
    fn objects(&self) -> (Option<i32>, Option<i32>) {
        let k = self.0.key;
        (
            shm_common::segment::find(k).ok().flatten(),
            shm_common::semaphore::find(k).ok().flatten(),
        )
    }

    /// The nine semaphore values, if one of our sets is at the key.
    fn sems(&self) -> Option<Vec<u16>> {
        sem_values(self.0.key)
    }

    fn assert_clean(&self, ctx: &str) {
        assert_eq!(
            self.objects(),
            (None, None),
            "{ctx}: objects left at key {}",
            self.arg()
        );
    }
}

/// A scratch file path, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let n = SCRATCH.fetch_add(1, Ordering::Relaxed);
        Scratch(std::env::temp_dir().join(format!("shm-interop-{}-{n}-{tag}", std::process::id())))
    }
    fn file(&self) -> std::fs::File {
        std::fs::File::create(&self.0).expect("create scratch file")
    }
    fn len(&self) -> u64 {
        std::fs::metadata(&self.0).map_or(0, |m| m.len())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// ---------------------------------------------------------------------------------
// The two languages
// ---------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lang {
    Rust,
    C,
}

/// Where the C binaries are: `$C_PEER_DIR`, or `c/` beside the Rust binaries'
/// directory (`target/c`, where `make -C peers/c` puts them).
fn c_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("C_PEER_DIR") {
        return PathBuf::from(d);
    }
    let rust_writer = bin("writer");
    let profile = rust_writer.parent().expect("profile dir");
    profile.parent().expect("target dir").join("c")
}

/// The gate every test passes first: `false` (after saying so) if the C peer is not
/// built; a failure instead under `CI=true` (support::skip).
fn c_peer_built(_test: &str) -> bool {
    let dir = c_dir();
    let missing: Vec<String> = ["c-writer", "c-reader"]
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        return true;
    }
    skip(
        &format!(
            "the C peer is not built ({} missing): run `make -C peers/c` (make test does)",
            missing.join(", ")
        ),
        "the C peer",
    );
    false
}

fn program(lang: Lang, role: &str) -> PathBuf {
    match lang {
        Lang::Rust => bin(role),
        Lang::C => c_dir().join(format!("c-{role}")),
    }
}

fn writer(lang: Lang, key: &Key) -> Command {
    let mut c = Command::new(program(lang, "writer"));
    c.arg("--key").arg(key.arg());
    c
}

fn reader(lang: Lang, key: &Key) -> Command {
    let mut c = Command::new(program(lang, "reader"));
    c.arg("--key").arg(key.arg());
    c
}

fn ok(f: &Finished, who: &str) {
    assert_eq!(
        f.code(),
        Some(0),
        "{who}: exit status {:?}; stderr:\n{}",
        f.status,
        f.stderr
    );
}

fn killed_by_sigkill(f: &Finished, who: &str) {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        f.status.signal(),
        Some(libc::SIGKILL),
        "{who} was not killed by SIGKILL (the fault missed?): {:?}; stderr:\n{}",
        f.status,
        f.stderr
    );
}

// ---------------------------------------------------------------------------------
// Byte-exact transfers: every pairing, four sizes, both start orders
// ---------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Order {
    ReaderFirst,
    WriterFirst,
}

enum Input<'a> {
    /// Fed to the writer's stdin (a pipe) from a thread.
    Pipe(&'a [u8]),
    /// Given as the writer's FILE argument (the read-straight-into-slots path).
    File(&'a Path),
}

/// One writer, one reader; the reader's output goes to a file. Checks exit 0 for
/// both, byte-exact output and a clean key.
fn transfer(wl: Lang, rl: Lang, order: Order, input: &Input<'_>, geometry: &[&str]) {
    let key = Key::new();
    let ctx = format!(
        "{wl:?} writer -> {rl:?} reader, {order:?}, key {}",
        key.arg()
    );
    let out = Scratch::new("out");
    let mut wcmd = writer(wl, &key);
    wcmd.args(geometry);
    let start_writer = |mut cmd: Command| -> (Proc, Option<std::thread::JoinHandle<()>>) {
        match input {
            Input::File(p) => {
                cmd.arg(p);
                (Proc::spawn(cmd, Stdio::null()), None)
            }
            Input::Pipe(data) => {
                let mut p = Proc::spawn(cmd, Stdio::piped());
                let mut stdin = p.hold_stdin().expect("piped stdin");
                let data = data.to_vec();
                let feeder = std::thread::spawn(move || {
                    let _ = stdin.write_all(&data);
                });
                (p, Some(feeder))
            }
        }
    };
    let (w, feeder, r) = match order {
        Order::ReaderFirst => {
            let mut r = Proc::spawn_to_file(reader(rl, &key), Stdio::null(), out.file());
            // A waiting reader polls every 100 ms and creates nothing.
            std::thread::sleep(Duration::from_millis(150));
            assert!(
                matches!(r.child.try_wait(), Ok(None)),
                "{ctx}: the reader did not wait for its writer"
            );
            assert_eq!(
                key.objects(),
                (None, None),
                "{ctx}: a waiting reader created objects"
            );
            let (w, f) = start_writer(wcmd);
            (w, f, r)
        }
        Order::WriterFirst => {
            let (w, f) = start_writer(wcmd);
            // The creator's first semop counts it in WRITERS: the session is open.
            wait_until(TIMEOUT, "the writer to create the session", || {
                key.sems().is_some_and(|v| v[WRITERS] >= 1)
            });
            let r = Proc::spawn_to_file(reader(rl, &key), Stdio::null(), out.file());
            (w, f, r)
        }
    };
    let wf = w.wait(TIMEOUT);
    let rf = r.wait(TIMEOUT);
    if let Some(f) = feeder {
        f.join().expect("feeder");
    }
    ok(&wf, &format!("{ctx}: writer"));
    ok(&rf, &format!("{ctx}: reader"));
    match input {
        Input::Pipe(data) => {
            let got = std::fs::read(&out.0).expect("read output");
            assert!(
                got == *data,
                "{ctx}: delivered {} bytes, sent {} (equal prefix: {})",
                got.len(),
                data.len(),
                got.iter()
                    .zip(data.iter())
                    .take_while(|(a, b)| a == b)
                    .count()
            );
        }
        Input::File(p) => {
            if let Err(e) = files_equal(p, &out.0) {
                panic!("{ctx}: output differs from the input: {e}");
            }
        }
    }
    key.assert_clean(&ctx);
}

fn both_orders(wl: Lang, rl: Lang, input: &Input<'_>, geometry: &[&str]) {
    for order in [Order::ReaderFirst, Order::WriterFirst] {
        transfer(wl, rl, order, input, geometry);
    }
}

const SMALL: &[u8] = b"hello, C\n";

macro_rules! pairing_tests {
    ($wl:expr, $rl:expr, $empty:ident, $small:ident, $one:ident, $big:ident, $odd:ident) => {
        #[test]
        fn $empty() {
            if c_peer_built(stringify!($empty)) {
                both_orders($wl, $rl, &Input::Pipe(b""), &[]);
            }
        }

        #[test]
        fn $small() {
            if c_peer_built(stringify!($small)) {
                both_orders($wl, $rl, &Input::Pipe(SMALL), &[]);
            }
        }

        /// 1 MiB through a pipe (the writer's read-then-send path).
        #[test]
        fn $one() {
            if c_peer_built(stringify!($one)) {
                let data = pseudo_random(1 << 20, 0x1c0de);
                both_orders($wl, $rl, &Input::Pipe(&data), &[]);
            }
        }

        /// 64 MiB as a FILE argument (read straight into the slots), compared as files.
        #[test]
        fn $big() {
            if c_peer_built(stringify!($big)) {
                let file = big_temp_file(64 << 20, 0xb16c);
                both_orders($wl, $rl, &Input::File(&file.path), &[]);
            }
        }

        /// A ring of 3 slots of 192 bytes (160 of payload): the ring wraps thousands of
        /// times, the writer's half-ring wait takes 1 slot, batches are tiny; and a
        /// regular file through 5 slots of 128 bytes with a partial last batch.
        #[test]
        fn $odd() {
            if c_peer_built(stringify!($odd)) {
                let data = pseudo_random(300_001, 0x0dd);
                both_orders(
                    $wl,
                    $rl,
                    &Input::Pipe(&data),
                    &["--slots", "3", "--slot-size", "192"],
                );
                let file = big_temp_file(1_000_003, 0x0dd2);
                transfer(
                    $wl,
                    $rl,
                    Order::ReaderFirst,
                    &Input::File(&file.path),
                    &["--slots", "5", "--slot-size", "128"],
                );
            }
        }
    };
}

pairing_tests!(
    Lang::Rust,
    Lang::C,
    rust_to_c_empty,
    rust_to_c_small,
    rust_to_c_1mib_pipe,
    rust_to_c_64mib_file,
    rust_to_c_odd_geometry
);
pairing_tests!(
    Lang::C,
    Lang::Rust,
    c_to_rust_empty,
    c_to_rust_small,
    c_to_rust_1mib_pipe,
    c_to_rust_64mib_file,
    c_to_rust_odd_geometry
);
pairing_tests!(
    Lang::C,
    Lang::C,
    c_to_c_empty,
    c_to_c_small,
    c_to_c_1mib_pipe,
    c_to_c_64mib_file,
    c_to_c_odd_geometry
);

// ---------------------------------------------------------------------------------
// The persist flow (the handout exercise): writer --persist exits before any reader
// ---------------------------------------------------------------------------------

fn persist_flow(wl: Lang, rl: Lang) {
    let key = Key::new();
    let ctx = format!(
        "persist: {wl:?} writer, then {rl:?} reader, key {}",
        key.arg()
    );
    let file = big_temp_file(1 << 20, 0x9e51);
    let mut w = writer(wl, &key);
    w.arg("--persist").arg(&file.path);
    let wf = Proc::spawn(w, Stdio::null()).wait(TIMEOUT);
    ok(&wf, &format!("{ctx}: writer"));
    assert!(
        wf.stderr.contains("stays at key"),
        "{ctx}: the writer does not say the stream stays: {}",
        wf.stderr
    );
    let (shm, sem) = key.objects();
    assert!(
        shm.is_some() && sem.is_some(),
        "{ctx}: both objects must stay after the writer exits: {:?}",
        (shm, sem)
    );
    let v = key.sems().expect("our set");
    assert_eq!(
        (v[WRITERS], v[READERS]),
        (0, 0),
        "{ctx}: nobody is live now"
    );
    let out = Scratch::new("persist");
    let rf = Proc::spawn_to_file(reader(rl, &key), Stdio::null(), out.file()).wait(TIMEOUT);
    ok(&rf, &format!("{ctx}: reader"));
    assert!(
        rf.stderr.contains("removed the segment and semaphore set"),
        "{ctx}: the reader, the last user, must say it removed both: {}",
        rf.stderr
    );
    if let Err(e) = files_equal(&file.path, &out.0) {
        panic!("{ctx}: {e}");
    }
    key.assert_clean(&ctx);
}

#[test]
fn persist_rust_writer_then_c_reader() {
    if c_peer_built("persist_rust_writer_then_c_reader") {
        persist_flow(Lang::Rust, Lang::C);
    }
}

#[test]
fn persist_c_writer_then_rust_reader() {
    if c_peer_built("persist_c_writer_then_rust_reader") {
        persist_flow(Lang::C, Lang::Rust);
    }
}

#[test]
fn persist_c_writer_then_c_reader() {
    if c_peer_built("persist_c_writer_then_c_reader") {
        persist_flow(Lang::C, Lang::C);
    }
}

/// Feeds a child's stdin from a thread: `first` at once, then `rest` once the test
/// says go (the returned sender); if the sender is dropped first (a failing test),
/// the thread closes the pipe and ends.
fn staged_feeder(
    mut stdin: std::process::ChildStdin,
    first: Vec<u8>,
    rest: Vec<u8>,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        if stdin.write_all(&first).is_err() || wait.recv().is_err() {
            return;
        }
        let _ = stdin.write_all(&rest);
    });
    (go, t)
}

// ---------------------------------------------------------------------------------
// --lines: a Rust and a C writer share one session with one reader
// ---------------------------------------------------------------------------------

/// Lines of varied length (1..=300 bytes with the newline), all starting with `tag`.
fn lines(tag: &str, n: usize, seed: u64) -> Vec<u8> {
    let noise = pseudo_random(n, seed);
    let mut v = Vec::new();
    for (i, b) in noise.iter().enumerate() {
        let pad = usize::from(*b) % 280;
        v.extend_from_slice(format!("{tag} {i:06} ").as_bytes());
        v.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, pad));
        v.push(b'\n');
    }
    v
}

fn shared_lines(creator: Lang, joiner: Lang, rl: Lang) {
    let key = Key::new();
    let ctx = format!(
        "--lines: {creator:?} creates, {joiner:?} joins, {rl:?} reads, key {}",
        key.arg()
    );
    let tag = |l: Lang| if l == Lang::Rust { "RUST" } else { "C" };
    let a = lines(tag(creator), 30_000, 0xa1);
    let b = lines(&format!("{}2", tag(joiner)), 30_000, 0xb2);
    let out = Scratch::new("lines");
    let mut rcmd = reader(rl, &key);
    rcmd.arg("--tag");
    let r = Proc::spawn_to_file(rcmd, Stdio::null(), out.file());
    let spawn = |l: Lang, first: &[u8], rest: &[u8]| {
        let mut c = writer(l, &key);
        c.arg("--lines");
        let mut p = Proc::spawn(c, Stdio::piped());
        let stdin = p.hold_stdin().expect("stdin");
        let (go, feeder) = staged_feeder(stdin, first.to_vec(), rest.to_vec());
        (p, go, feeder)
    };
    // The first writer creates; its first lines are sent before the second joins,
    // and neither input ends before both have joined (so neither ends the stream
    // alone).
    let (w1, go1, f1) = spawn(creator, &a[..1000], &a[1000..]);
    wait_until(TIMEOUT, "the creator's session", || {
        key.sems()
            .is_some_and(|v| v[WRITERS] == 1 && v[READERS] == 1)
    });
    let (w2, go2, f2) = spawn(joiner, &[], &b);
    wait_until(TIMEOUT, "the second writer to join", || {
        key.sems().is_some_and(|v| v[WRITERS] == 2)
    });
    go1.send(()).expect("feeder 1 alive");
    go2.send(()).expect("feeder 2 alive");
    let wf1 = w1.wait(TIMEOUT);
    let wf2 = w2.wait(TIMEOUT);
    let rf = r.wait(TIMEOUT);
    f1.join().expect("feeder 1");
    f2.join().expect("feeder 2");
    ok(&wf1, &format!("{ctx}: creator"));
    ok(&wf2, &format!("{ctx}: joiner"));
    ok(&rf, &format!("{ctx}: reader"));
    assert!(
        wf2.stderr.contains("as writer 2"),
        "{ctx}: the joiner is writer 2: {}",
        wf2.stderr
    );
    // Every line once, whole, tagged with its writer, in that writer's order.
    let got = std::fs::read(&out.0).expect("output");
    let (mut from1, mut from2) = (Vec::new(), Vec::new());
    for line in got.split_inclusive(|&c| c == b'\n') {
        if let Some(rest) = line.strip_prefix(b"[writer 1] ") {
            from1.extend_from_slice(rest);
        } else if let Some(rest) = line.strip_prefix(b"[writer 2] ") {
            from2.extend_from_slice(rest);
        } else {
            panic!(
                "{ctx}: a line without a writer tag: {:?}",
                String::from_utf8_lossy(&line[..line.len().min(80)])
            );
        }
    }
    assert!(
        from1 == a,
        "{ctx}: writer 1's lines differ ({} of {} bytes)",
        from1.len(),
        a.len()
    );
    assert!(
        from2 == b,
        "{ctx}: writer 2's lines differ ({} of {} bytes)",
        from2.len(),
        b.len()
    );
    key.assert_clean(&ctx);
}

#[test]
fn lines_rust_and_c_writers_share_a_session_with_a_c_reader() {
    if c_peer_built("lines_rust_and_c_writers_share_a_session_with_a_c_reader") {
        shared_lines(Lang::Rust, Lang::C, Lang::C);
        shared_lines(Lang::C, Lang::Rust, Lang::C);
    }
}

#[test]
fn lines_rust_and_c_writers_share_a_session_with_a_rust_reader() {
    if c_peer_built("lines_rust_and_c_writers_share_a_session_with_a_rust_reader") {
        shared_lines(Lang::Rust, Lang::C, Lang::Rust);
        shared_lines(Lang::C, Lang::Rust, Lang::Rust);
    }
}

// ---------------------------------------------------------------------------------
// kill -9 mid-stream, and stale leftovers
// ---------------------------------------------------------------------------------

/// A writer fed `data` from a thread in 16 KiB pieces, 1 ms apart (~16 MB/s), so a
/// fault lands mid-stream; the feeder stops when the pipe breaks.
fn throttled_writer(cmd: Command, data: Vec<u8>) -> (Proc, std::thread::JoinHandle<()>) {
    let mut p = Proc::spawn(cmd, Stdio::piped());
    let mut stdin = p.hold_stdin().expect("stdin");
    let t = std::thread::spawn(move || {
        for piece in data.chunks(16 << 10) {
            if stdin.write_all(piece).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    (p, t)
}

const RING: [&str; 4] = ["--slots", "16", "--slot-size", "4K"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Victim {
    Writer,
    Reader,
}

fn kill9_mid_stream(wl: Lang, rl: Lang, victim: Victim) {
    let key = Key::new();
    let ctx = format!(
        "kill -9 of the {victim:?}: {wl:?} writer -> {rl:?} reader, key {}",
        key.arg()
    );
    let data = pseudo_random(16 << 20, 0x9 ^ wl as u64 ^ ((rl as u64) << 4));
    let out = Scratch::new("k9");
    let mut wcmd = writer(wl, &key);
    wcmd.args(RING);
    let mut r = Proc::spawn_to_file(reader(rl, &key), Stdio::null(), out.file());
    let (mut w, feeder) = throttled_writer(wcmd, data.clone());
    wait_until(TIMEOUT, "the stream to flow", || out.len() >= 256 << 10);
    let t0 = Instant::now();
    let (victim_f, survivor_f) = match victim {
        Victim::Writer => {
            let _ = w.child.kill();
            (w.wait(TIMEOUT), r.wait(TIMEOUT))
        }
        Victim::Reader => {
            let _ = r.child.kill();
            (r.wait(TIMEOUT), w.wait(TIMEOUT))
        }
    };
    let took = t0.elapsed();
    feeder.join().expect("feeder");
    killed_by_sigkill(&victim_f, &format!("{ctx}: victim"));
    assert_eq!(
        survivor_f.code(),
        Some(4),
        "{ctx}: the survivor must exit 4 (peer gone); stderr:\n{}",
        survivor_f.stderr
    );
    assert!(
        survivor_f.stderr.contains("error:") && survivor_f.stderr.contains("hint:"),
        "{ctx}: an error line and a hint: {}",
        survivor_f.stderr
    );
    assert!(
        took < Duration::from_secs(5),
        "{ctx}: the survivor took {took:?} to notice"
    );
    // Whichever reader it was, what it wrote is an exact prefix of the input.
    let got = std::fs::read(&out.0).expect("output");
    assert!(
        got.len() >= 256 << 10 && got.len() < data.len() && data.starts_with(&got),
        "{ctx}: delivered {} bytes that are not a proper prefix of the {} sent",
        got.len(),
        data.len()
    );
    // The survivor was the last one: it removed both objects.
    key.assert_clean(&ctx);
}

macro_rules! kill9_tests {
    ($wl:expr, $rl:expr, $w:ident, $r:ident) => {
        #[test]
        fn $w() {
            if c_peer_built(stringify!($w)) {
                kill9_mid_stream($wl, $rl, Victim::Writer);
            }
        }
        #[test]
        fn $r() {
            if c_peer_built(stringify!($r)) {
                kill9_mid_stream($wl, $rl, Victim::Reader);
            }
        }
    };
}

kill9_tests!(
    Lang::Rust,
    Lang::C,
    kill9_rust_writer_mid_stream_c_reader_exits_4,
    kill9_c_reader_mid_stream_rust_writer_exits_4
);
kill9_tests!(
    Lang::C,
    Lang::Rust,
    kill9_c_writer_mid_stream_rust_reader_exits_4,
    kill9_rust_reader_mid_stream_c_writer_exits_4
);
kill9_tests!(
    Lang::C,
    Lang::C,
    kill9_c_writer_mid_stream_c_reader_exits_4,
    kill9_c_reader_mid_stream_c_writer_exits_4
);

/// A pair of `old` killed with -9 mid-stream (both: the objects stay, nobody is
/// live); the next writer, of `new`, recovers the key (says so) and a fresh stream
/// goes through to a reader of `old`.
fn stale_recovery(old: Lang, new: Lang) {
    let key = Key::new();
    let ctx = format!(
        "{old:?} leftovers, {new:?} writer recovers, key {}",
        key.arg()
    );
    let out = Scratch::new("stale");
    let mut wcmd = writer(old, &key);
    wcmd.args(RING);
    let mut r = Proc::spawn_to_file(reader(old, &key), Stdio::null(), out.file());
    let (mut w, feeder) = throttled_writer(wcmd, pseudo_random(16 << 20, 0x57a1e));
    wait_until(TIMEOUT, "the stream to flow", || out.len() >= 128 << 10);
    // Both at once: the reader first (a writer does not look for dead readers while
    // it waits for input), the writer right after.
    let _ = r.child.kill();
    let _ = w.child.kill();
    killed_by_sigkill(&r.wait(TIMEOUT), &format!("{ctx}: old reader"));
    killed_by_sigkill(&w.wait(TIMEOUT), &format!("{ctx}: old writer"));
    feeder.join().expect("feeder");
    let (shm, sem) = key.objects();
    let old_sem = sem.expect("the dead pair's set stays");
    assert!(shm.is_some(), "{ctx}: the dead pair's segment stays");
    let v = key.sems().expect("our set");
    assert_eq!(
        (v[WRITERS], v[READERS]),
        (0, 0),
        "{ctx}: the kernel's undo un-counted both"
    );

    // Writer first, so that it (and not the reader) finds the leftovers.
    let data = pseudo_random(1 << 20, 0x2ec0);
    let out2 = Scratch::new("stale2");
    let mut p = Proc::spawn(writer(new, &key), Stdio::piped());
    let mut stdin = p.hold_stdin().expect("stdin");
    let feed = data.clone();
    let f = std::thread::spawn(move || {
        let _ = stdin.write_all(&feed);
    });
    wait_until(TIMEOUT, "the new writer's own session", || {
        key.objects().1.is_some_and(|id| id != old_sem)
            && key.sems().is_some_and(|v| v[WRITERS] == 1)
    });
    let rf = Proc::spawn_to_file(reader(old, &key), Stdio::null(), out2.file()).wait(TIMEOUT);
    let wf = p.wait(TIMEOUT);
    f.join().expect("feeder");
    ok(&wf, &format!("{ctx}: new writer"));
    ok(&rf, &format!("{ctx}: new reader"));
    assert!(
        wf.stderr.contains("recovered stale objects") || wf.stderr.contains("recovering stale"),
        "{ctx}: the new writer must say it recovered the leftovers: {}",
        wf.stderr
    );
    let got = std::fs::read(&out2.0).expect("output");
    assert!(
        got == data,
        "{ctx}: the new stream delivered {} of {} bytes",
        got.len(),
        data.len()
    );
    key.assert_clean(&ctx);
}

#[test]
fn stale_rust_leftovers_are_recovered_by_the_c_writer() {
    if c_peer_built("stale_rust_leftovers_are_recovered_by_the_c_writer") {
        stale_recovery(Lang::Rust, Lang::C);
    }
}

#[test]
fn stale_c_leftovers_are_recovered_by_the_rust_writer() {
    if c_peer_built("stale_c_leftovers_are_recovered_by_the_rust_writer") {
        stale_recovery(Lang::C, Lang::Rust);
    }
}

// ---------------------------------------------------------------------------------
// The same exit codes for the same situations
// ---------------------------------------------------------------------------------

/// Bad command lines: exit 2 from both languages (1 for a missing input file), and
/// nothing created.
#[test]
fn bad_command_lines_give_the_same_exit_codes() {
    if !c_peer_built("bad_command_lines_give_the_same_exit_codes") {
        return;
    }
    let key = Key::new();
    let k = key.arg();
    let writer_cases: Vec<Vec<&str>> = vec![
        vec!["--key", "0"],
        vec!["--key", "0x0"],
        vec!["--key", "junk"],
        vec!["--key", "-5"],
        vec!["--key", "4294967296"],
        vec!["--key", "0x"],
        vec!["--key", "path:/no/such/file/here"],
        vec!["--key"],
        vec!["--key", &k, "--slots", "0"],
        vec!["--key", &k, "--slots", "32768"],
        vec!["--key", &k, "--slot-size", "100"],
        vec!["--key", &k, "--slot-size", "64"],
        vec!["--key", &k, "--slot-size", "4G"],
        vec!["--key", &k, "--slot-size", "2G"],
        vec!["--key", &k, "--mode", "400"],
        vec!["--key", &k, "--mode", "1777"],
        vec!["--key", &k, "--mode", "9"],
        vec!["--key", &k, "--batch", "0"],
        vec!["--key", &k, "--batch", "40000"],
        vec!["--key", &k, "--bogus"],
        vec!["--key", &k, "/no/such/input/file"],
    ];
    let reader_cases: Vec<Vec<&str>> = vec![
        vec!["--key", "0"],
        vec!["--key", "junk"],
        vec!["--key"],
        vec!["--key", &k, "--batch", "0"],
        vec!["--key", &k, "--bogus"],
    ];
    for (role, cases) in [("writer", &writer_cases), ("reader", &reader_cases)] {
        for args in cases {
            let run = |lang: Lang| {
                let mut c = Command::new(program(lang, role));
                c.args(args);
                run_with_input(c, b"", TIMEOUT)
            };
            let (rf, cf) = (run(Lang::Rust), run(Lang::C));
            assert_eq!(
                cf.code(),
                rf.code(),
                "{role} {args:?}: C exit {:?} ({}), Rust exit {:?} ({})",
                cf.code(),
                cf.stderr.trim(),
                rf.code(),
                rf.stderr.trim()
            );
            assert!(
                matches!(cf.code(), Some(1 | 2)),
                "{role} {args:?}: exit {:?}",
                cf.code()
            );
            assert!(
                cf.stderr.starts_with(&format!("c-{role}: error: ")),
                "{role} {args:?}: one error line first: {}",
                cf.stderr
            );
            key.assert_clean(&format!("{role} {args:?}"));
        }
    }
}

/// A byte-stream session has one writer and one reader: a second of either, in the
/// other language, gets exit 3 and changes nothing; then the stream completes.
#[test]
fn second_writer_or_reader_of_a_byte_stream_gets_exit_3_across_languages() {
    if !c_peer_built("second_writer_or_reader_of_a_byte_stream_gets_exit_3_across_languages") {
        return;
    }
    for (first, other) in [(Lang::Rust, Lang::C), (Lang::C, Lang::Rust)] {
        let key = Key::new();
        let ctx = format!("{first:?} session, {other:?} intruders, key {}", key.arg());
        let data = pseudo_random(100_000, 3);
        let mut w = Proc::spawn(writer(first, &key), Stdio::piped());
        let stdin = w.hold_stdin().expect("stdin");
        let (go, feeder) = staged_feeder(stdin, data[..50_000].to_vec(), data[50_000..].to_vec());
        wait_until(TIMEOUT, "the session", || {
            key.sems().is_some_and(|v| v[WRITERS] == 1)
        });
        for extra in [&[][..], &["--lines"][..]] {
            let mut c = writer(other, &key);
            c.args(extra);
            let f = run_with_input(c, b"intruder\n", TIMEOUT);
            assert_eq!(
                f.code(),
                Some(3),
                "{ctx}: second writer {extra:?}: {}",
                f.stderr
            );
            assert!(f.stderr.contains("byte stream"), "{ctx}: {}", f.stderr);
        }
        let out = Scratch::new("conflict");
        let r = Proc::spawn_to_file(reader(first, &key), Stdio::null(), out.file());
        wait_until(TIMEOUT, "the reader to join", || {
            key.sems().is_some_and(|v| v[READERS] == 1)
        });
        let f = Proc::spawn(reader(other, &key), Stdio::null()).wait(TIMEOUT);
        assert_eq!(f.code(), Some(3), "{ctx}: second reader: {}", f.stderr);
        go.send(()).expect("feeder alive");
        let (wf, rf) = (w.wait(TIMEOUT), r.wait(TIMEOUT));
        feeder.join().expect("feeder");
        ok(&wf, &format!("{ctx}: writer"));
        ok(&rf, &format!("{ctx}: reader"));
        assert!(
            std::fs::read(&out.0).expect("output") == data,
            "{ctx}: output"
        );
        key.assert_clean(&ctx);
    }
}

/// Someone else's segment at the key (no magic, no set): both C binaries refuse with
/// exit 3, as the Rust ones do, name the ipcrm that would remove it, and leave it.
#[test]
fn foreign_segment_is_refused_with_exit_3_by_both_languages() {
    if !c_peer_built("foreign_segment_is_refused_with_exit_3_by_both_languages") {
        return;
    }
    let key = Key::new();
    // Someone else's: 10000 bytes that start with their own data.
    let seg = shm_common::segment::Segment::create_exclusive(key.0.key, 10_000, 0o600)
        .expect("shmget")
        .expect("the key is free");
    seg.write_bytes(0, b"not a ring").expect("write");
    let id = seg.id();
    drop(seg);
    for lang in [Lang::Rust, Lang::C] {
        for role in ["writer", "reader"] {
            let mut c = Command::new(program(lang, role));
            c.arg("--key").arg(key.arg());
            let f = Proc::spawn(c, Stdio::null()).wait(TIMEOUT);
            assert_eq!(f.code(), Some(3), "{lang:?} {role}: {}", f.stderr);
            assert!(
                f.stderr.contains(&format!("ipcrm -m {id}")),
                "{lang:?} {role}: {}",
                f.stderr
            );
            assert_eq!(
                key.objects(),
                (Some(id), None),
                "{lang:?} {role} changed it"
            );
        }
    }
}

/// SIGINT, SIGTERM, SIGHUP: a C writer or reader leaves the session cleanly and exits
/// 130, wherever it waits (for a writer, for input, for data); its Rust peer then
/// sees the departure as a lost peer (exit 4) and, as the last one, removes both.
#[test]
fn c_peer_signals_give_130_and_a_clean_departure() {
    if !c_peer_built("c_peer_signals_give_130_and_a_clean_departure") {
        return;
    }
    let signal = |p: &Proc, sig: i32| {
        if let Ok(sig) = Signal::try_from(sig) {
            p.signal(sig);
        }
    };
    // A C reader waiting for a writer that never comes: 130, nothing created.
    let key = Key::new();
    let r = Proc::spawn(reader(Lang::C, &key), Stdio::null());
    std::thread::sleep(Duration::from_millis(200));
    signal(&r, libc::SIGINT);
    let f = r.wait(TIMEOUT);
    assert_eq!(f.code(), Some(130), "waiting reader: {}", f.stderr);
    key.assert_clean("a waiting reader, interrupted");

    for (sig, victim) in [
        (libc::SIGTERM, Victim::Writer),
        (libc::SIGHUP, Victim::Reader),
        (libc::SIGINT, Victim::Writer),
    ] {
        let key = Key::new();
        let ctx = format!("signal {sig} to the C {victim:?}, key {}", key.arg());
        let (wl, rl) = match victim {
            Victim::Writer => (Lang::C, Lang::Rust),
            Victim::Reader => (Lang::Rust, Lang::C),
        };
        let out = Scratch::new("sig");
        let r = Proc::spawn_to_file(reader(rl, &key), Stdio::null(), out.file());
        let mut w = Proc::spawn(writer(wl, &key), Stdio::piped());
        let stdin = w.hold_stdin().expect("stdin");
        // The first part flows, then the writer waits for more input.
        let (go, feeder) = staged_feeder(stdin, b"first part\n".to_vec(), b"rest\n".to_vec());
        wait_until(TIMEOUT, "the first part to arrive", || out.len() >= 11);
        let (victim_p, survivor_p) = match victim {
            Victim::Writer => (w, r),
            Victim::Reader => (r, w),
        };
        signal(&victim_p, sig);
        let vf = victim_p.wait(TIMEOUT);
        assert_eq!(vf.code(), Some(130), "{ctx}: victim: {}", vf.stderr);
        assert!(
            vf.stderr.contains("error: interrupted"),
            "{ctx}: {}",
            vf.stderr
        );
        // The writer's input ends now (its reader is gone, or it is gone itself).
        let _ = go.send(());
        let sf = survivor_p.wait(TIMEOUT);
        feeder.join().expect("feeder");
        assert_eq!(sf.code(), Some(4), "{ctx}: survivor: {}", sf.stderr);
        assert!(
            std::fs::read(&out.0)
                .expect("output")
                .starts_with(b"first part\n"),
            "{ctx}: the first part was delivered"
        );
        key.assert_clean(&ctx);
    }
}
