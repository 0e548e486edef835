//! Many writers, many readers on one key (issue 7): `writer --lines` writers share one
//! session, `reader --tag` readers share the work queue.
//!
//! Assumptions about joining, from `Session::join_locked` (session.rs):
//! - the first `--lines` writer creates the shared session (writer id 1); later
//!   `--lines` writers join it (ids 2, 3, ... in join order) while its state is Open;
//! - once the last live writer has published the FINAL frame the state is Ended and a
//!   writer that arrives then is refused (exit 3: "the stream there has ended"), or, if
//!   the readers have already removed the objects, it simply creates a *new* session.
//!   So every test starts all its writers, and waits for each one's "created"/"joined"
//!   note, before any writer can reach the end of its input (input is held back on a
//!   pipe, or the ring is too small to hold it while no reader runs);
//! - readers may join at any time; a late reader only gets what is still in the ring,
//!   so "exactly once" is checked across the union of all readers' outputs;
//! - a byte-stream writer never joins a `--lines` session and vice versa (exit 3).
//!
//! Every line is self-describing: `w<test id> <seq> <padding>\n`, with the padding a
//! deterministic function of (id, seq), so each delivered frame can be checked byte
//! for byte and placed in its writer's stream.
mod support;
use std::collections::HashSet;
use std::io::Write;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::*;

/// Deterministic length of line `seq` of writer `id`: mostly short, some medium,
/// a few long (`long_max` bounds the padding).
fn pad_len(id: u32, seq: u32, long_max: usize) -> usize {
    let mut x = (u64::from(id) << 32 | u64::from(seq)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 29;
    let r = (x % 1000) as usize;
    let v = (x >> 12) as usize;
    match r {
        0..=699 => v % 60,
        700..=949 => 60 + v % 240,
        _ => 300 + v % (long_max.saturating_sub(300).max(1)),
    }
}

fn line(id: u32, seq: u32, long_max: usize) -> Vec<u8> {
    let mut l = format!("w{id} {seq:06} ").into_bytes();
    let n = pad_len(id, seq, long_max);
    let mut x = u64::from(id) * 1_000_003 + u64::from(seq) * 7919 + 1;
    for _ in 0..n {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        l.push(b'a' + ((x >> 33) % 26) as u8);
    }
    l.push(b'\n');
    l
}

/// All lines of writer `id`, seq `from..to`, concatenated.
fn lines(id: u32, from: u32, to: u32, long_max: usize) -> Vec<u8> {
    (from..to).flat_map(|s| line(id, s, long_max)).collect()
}

/// One delivered frame: the writer id from the `[writer N] ` tag, and the payload.
#[derive(Debug)]
struct Frame<'a> {
    writer: u32,
    payload: &'a [u8],
}

/// Splits a `reader --tag` output into frames. Payloads never contain `[`, so each
/// `[` starts a tag.
fn parse_frames(out: &[u8]) -> Result<Vec<Frame<'_>>, String> {
    let mut frames = Vec::new();
    if out.is_empty() {
        return Ok(frames);
    }
    if out[0] != b'[' {
        return Err(format!(
            "output does not start with a tag: {:?}",
            String::from_utf8_lossy(&out[..out.len().min(80)])
        ));
    }
    for piece in out.split(|&b| b == b'[').skip(1) {
        let rest = piece
            .strip_prefix(b"writer ")
            .ok_or_else(|| format!("bad tag in {:?}", String::from_utf8_lossy(piece)))?;
        let close = rest
            .iter()
            .position(|&b| b == b']')
            .ok_or("unterminated tag")?;
        let id: u32 = std::str::from_utf8(&rest[..close])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("bad writer id in tag")?;
        let payload = rest[close + 1..]
            .strip_prefix(b" ")
            .ok_or("no space after tag")?;
        if payload.is_empty() {
            return Err(format!("empty frame from writer {id}"));
        }
        frames.push(Frame {
            writer: id,
            payload,
        });
    }
    Ok(frames)
}

/// Checks that the frames each reader got from one writer, in each reader's order,
/// interleave into a prefix of that writer's stream `expected`, using every frame
/// exactly once. Returns the length of that prefix. This proves: no frame lost in the
/// middle, none duplicated, none torn or altered, per-writer order kept in each reader.
fn merge(expected: &[u8], per_reader: &[Vec<&[u8]>]) -> Result<usize, String> {
    let n = per_reader.len();
    let total: usize = per_reader.iter().flatten().map(|f| f.len()).sum();
    if total > expected.len() {
        return Err(format!(
            "{total} bytes delivered, more than the {} sent: duplicates?",
            expected.len()
        ));
    }
    // Depth-first search over reader positions; ambiguity (two readers' next frames
    // both fit) is rare, so this is linear in practice. Failed states are memoised.
    let mut failed: HashSet<Vec<usize>> = HashSet::new();
    let mut stack: Vec<(Vec<usize>, usize, usize)> = vec![(vec![0; n], 0, 0)]; // (positions, offset, next reader to try)
    let mut best = 0usize;
    while let Some((pos, off, r0)) = stack.pop() {
        if pos.iter().zip(per_reader).all(|(p, l)| *p == l.len()) {
            return Ok(off);
        }
        best = best.max(off);
        let mut advanced = false;
        for r in r0..n {
            let Some(f) = per_reader[r].get(pos[r]) else {
                continue;
            };
            if expected[off..].starts_with(f) {
                let mut next = pos.clone();
                next[r] += 1;
                if failed.contains(&next) {
                    continue;
                }
                stack.push((pos.clone(), off, r + 1)); // alternatives, if this branch fails
                stack.push((next, off + f.len(), 0));
                advanced = true;
                break;
            }
        }
        if !advanced {
            failed.insert(pos);
        }
    }
    let around = &expected[best..expected.len().min(best + 60)];
    Err(format!(
        "frames do not fit the writer's stream after byte {best} (expected there: {:?}); next frames per reader: {:?}",
        String::from_utf8_lossy(around),
        per_reader.iter().map(|l| l.iter().take(1).map(|f| String::from_utf8_lossy(&f[..f.len().min(60)]).into_owned()).collect::<Vec<_>>()).collect::<Vec<_>>()
    ))
}

/// Verifies the outputs of all readers against each writer's stream. `streams[id]` is
/// the expected bytes of the writer whose tag id is `id` (a prefix of it may have been
/// delivered if `prefix_ok[id]`). Returns per-id delivered lengths and total frames.
fn verify(
    outputs: &[&[u8]],
    streams: &std::collections::BTreeMap<u32, Vec<u8>>,
    whole_lines: bool,
) -> (std::collections::BTreeMap<u32, usize>, usize) {
    let parsed: Vec<Vec<Frame<'_>>> = outputs
        .iter()
        .enumerate()
        .map(|(i, o)| parse_frames(o).unwrap_or_else(|e| panic!("reader {i}: {e}")))
        .collect();
    let mut frames = 0;
    for (i, p) in parsed.iter().enumerate() {
        for f in p {
            assert!(
                streams.contains_key(&f.writer),
                "reader {i}: frame tagged with unknown writer {}",
                f.writer
            );
            if whole_lines {
                let nl = f.payload.iter().filter(|&&b| b == b'\n').count();
                assert!(
                    nl == 1 && f.payload.ends_with(b"\n"),
                    "reader {i}: frame from writer {} is not exactly one whole line: {:?}",
                    f.writer,
                    String::from_utf8_lossy(f.payload)
                );
                assert!(
                    f.payload.starts_with(format!("w{} ", f.writer).as_bytes()),
                    "reader {i}: line tagged writer {} is from another writer: {:?}",
                    f.writer,
                    String::from_utf8_lossy(f.payload)
                );
            }
        }
        frames += p.len();
    }
    let mut delivered = std::collections::BTreeMap::new();
    for (&id, expected) in streams {
        let per_reader: Vec<Vec<&[u8]>> = parsed
            .iter()
            .map(|p| {
                p.iter()
                    .filter(|f| f.writer == id)
                    .map(|f| f.payload)
                    .collect()
            })
            .collect();
        let got = merge(expected, &per_reader).unwrap_or_else(|e| panic!("writer {id}: {e}"));
        delivered.insert(id, got);
    }
    (delivered, frames)
}

/// Frames a writer's stream becomes with payload capacity `cap` when each line is
/// split into `cap`-byte pieces from its start (the smallest possible count).
fn min_frames(stream: &[u8], cap: usize) -> usize {
    stream
        .split_inclusive(|&b| b == b'\n')
        .map(|l| l.len().div_ceil(cap))
        .sum()
}

/// The "messages" count from a summary line or error ("N messages" / "delivered N frames").
fn reported_messages(stderr: &str) -> Option<u64> {
    let words: Vec<&str> = stderr.split_whitespace().collect();
    words.windows(2).find_map(|w| {
        (w[1] == "messages" || w[1] == "frames,")
            .then(|| w[0].parse().ok())
            .flatten()
    })
}

/// Starts `n` `--lines` writers one after the other, each waiting for its
/// created/joined note, so that writer i (1-based) gets id i. Stdin is piped.
fn start_writers(k: &TestKey, n: u32, extra: &[&str], files: Option<&[TempFile]>) -> Vec<Proc> {
    let mut ws = Vec::new();
    for i in 1..=n {
        let mut c = k.writer();
        c.arg("--lines").args(extra);
        let stdin = match files {
            Some(f) => {
                c.arg(&f[(i - 1) as usize].path);
                Stdio::null()
            }
            None => Stdio::piped(),
        };
        let mut w = Proc::spawn(c, stdin);
        if i == 1 {
            w.wait_stderr(SOON, "created key");
        } else {
            w.wait_stderr(SOON, &format!("as writer {i} "));
        }
        ws.push(w);
    }
    ws
}

fn start_readers(k: &TestKey, n: usize) -> Vec<Proc> {
    (0..n)
        .map(|_| {
            let mut c = k.reader();
            c.arg("--tag");
            Proc::spawn(c, Stdio::null())
        })
        .collect()
}

// ----------------------------------------------------------------------------------

#[test]
fn three_writers_three_readers_102k_whole_lines() {
    let k = TestKey::new();
    const PER: u32 = 34_000;
    let long_max = 1500; // < 2016-byte payload of 2K slots: one frame per line
                         // Reader 1 before any writer (it waits), writers next, readers 2-3 once data flows.
    let mut readers = start_readers(&k, 1);
    readers[0].wait_stderr(SOON, "waiting for a writer");
    let mut writers = start_writers(&k, 3, &["--slots", "32", "--slot-size", "2K"], None);
    let streams: std::collections::BTreeMap<u32, Vec<u8>> = (1..=3)
        .map(|id| (id, lines(id, 0, PER, long_max)))
        .collect();
    for (w, id) in writers.iter_mut().zip(1..) {
        w.feed_in_background(streams[&id].clone());
    }
    readers[0].wait_stdout(SOON, "first lines", |o| !o.is_empty());
    readers.extend(start_readers(&k, 2));
    let t0 = Instant::now();
    let wf: Vec<Finished> = writers.into_iter().map(|w| w.wait(LONG)).collect();
    let rf: Vec<Finished> = readers.into_iter().map(|r| r.wait(LONG)).collect();
    for (i, f) in wf.iter().enumerate() {
        assert_eq!(f.code(), Some(0), "writer {}: {}", i + 1, f.stderr);
    }
    for (i, f) in rf.iter().enumerate() {
        assert_eq!(f.code(), Some(0), "reader {i}: {}", f.stderr);
    }
    let outs: Vec<&[u8]> = rf.iter().map(|f| f.stdout.as_slice()).collect();
    let (delivered, frames) = verify(&outs, &streams, true);
    for (id, s) in &streams {
        assert_eq!(
            delivered[id],
            s.len(),
            "writer {id}: only part of its stream was delivered"
        );
    }
    assert_eq!(frames, 3 * PER as usize, "every line exactly once");
    let reported: u64 = rf
        .iter()
        .map(|f| reported_messages(&f.stderr).expect("reader summary"))
        .sum();
    assert_eq!(
        reported, frames as u64,
        "the readers' summaries add up to the lines delivered"
    );
    eprintln!("3x3: {frames} frames in {:?}", t0.elapsed());
    k.assert_clean();
}

#[test]
fn four_writers_two_readers_split_long_lines() {
    let k = TestKey::new();
    const PER: u32 = 16_500;
    let long_max = 450; // with 128-byte slots (96-byte payload) many lines need 2-5 frames
    let streams: std::collections::BTreeMap<u32, Vec<u8>> = (1..=4)
        .map(|id| (id, lines(id, 0, PER, long_max)))
        .collect();
    let files: Vec<TempFile> = streams.values().map(|s| TempFile::new(s)).collect();
    // Writers read FILE arguments; with no reader yet the 16-slot ring fills at once,
    // so none of them can finish before all have joined.
    let writers = start_writers(
        &k,
        4,
        &["--slots", "16", "--slot-size", "128"],
        Some(&files),
    );
    let readers = start_readers(&k, 2);
    let t0 = Instant::now();
    let wf: Vec<Finished> = writers.into_iter().map(|w| w.wait(LONG)).collect();
    let rf: Vec<Finished> = readers.into_iter().map(|r| r.wait(LONG)).collect();
    for (i, f) in wf.iter().enumerate() {
        assert_eq!(f.code(), Some(0), "writer {}: {}", i + 1, f.stderr);
    }
    for (i, f) in rf.iter().enumerate() {
        assert_eq!(f.code(), Some(0), "reader {i}: {}", f.stderr);
    }
    let outs: Vec<&[u8]> = rf.iter().map(|f| f.stdout.as_slice()).collect();
    let (delivered, frames) = verify(&outs, &streams, false);
    for (id, s) in &streams {
        assert_eq!(
            delivered[id],
            s.len(),
            "writer {id}: only part of its stream was delivered"
        );
    }
    let least: usize = streams.values().map(|s| min_frames(s, 96)).sum();
    assert!(
        frames >= least,
        "{frames} frames, fewer than the {least} the split lines need"
    );
    assert!(
        frames >= 100_000,
        "the test should move at least 100k frames, moved {frames}"
    );
    // Lines longer than 96 bytes really were split: some frame does not end a line.
    assert!(
        outs.iter().any(|o| parse_frames(o)
            .unwrap_or_default()
            .iter()
            .any(|f| !f.payload.ends_with(b"\n"))),
        "no line was split"
    );
    eprintln!("4x2 split: {frames} frames in {:?}", t0.elapsed());
    k.assert_clean();
}

#[test]
fn two_writers_four_readers_joining_at_different_times() {
    let k = TestKey::new();
    const PER: u32 = 50_000;
    let long_max = 900;
    let mut writers = start_writers(&k, 2, &["--slots", "64", "--slot-size", "1K"], None);
    let streams: std::collections::BTreeMap<u32, Vec<u8>> = (1..=2)
        .map(|id| (id, lines(id, 0, PER, long_max)))
        .collect();
    let mut readers = start_readers(&k, 2);
    for (w, id) in writers.iter_mut().zip(1..) {
        w.feed_in_background(streams[&id].clone());
    }
    readers[0].wait_stdout(SOON, "first lines", |o| o.len() > 10_000);
    readers.extend(start_readers(&k, 1));
    std::thread::sleep(Duration::from_millis(100));
    readers.extend(start_readers(&k, 1));
    let wf: Vec<Finished> = writers.into_iter().map(|w| w.wait(LONG)).collect();
    let rf: Vec<Finished> = readers.into_iter().map(|r| r.wait(LONG)).collect();
    for (i, f) in wf.iter().enumerate() {
        assert_eq!(f.code(), Some(0), "writer {}: {}", i + 1, f.stderr);
    }
    for (i, f) in rf.iter().enumerate() {
        assert_eq!(f.code(), Some(0), "reader {i}: {}", f.stderr);
    }
    let outs: Vec<&[u8]> = rf.iter().map(|f| f.stdout.as_slice()).collect();
    let (delivered, frames) = verify(&outs, &streams, true);
    for (id, s) in &streams {
        assert_eq!(
            delivered[id],
            s.len(),
            "writer {id}: only part of its stream was delivered"
        );
    }
    assert_eq!(frames, 2 * PER as usize);
    k.assert_clean();
}

/// Two `--lines` writers whose input ends at the same moment must still end the
/// stream: exactly one of them has to publish the FINAL frame.
#[test]
fn writers_ending_together_still_end_the_stream() {
    for round in 0..20 {
        let k = TestKey::new();
        let mut writers = start_writers(&k, 2, &[], None);
        let mut readers = start_readers(&k, 1);
        writers[0].feed(b"w1 000000 a\n");
        writers[1].feed(b"w2 000000 b\n");
        readers[0].wait_stdout(SOON, "both lines", |o| {
            o.iter().filter(|&&b| b == b'\n').count() == 2
        });
        for w in &mut writers {
            w.close_stdin();
        }
        let wf: Vec<Finished> = writers.into_iter().map(|w| w.wait(SOON)).collect();
        let r = readers.pop().expect("reader").wait(SOON);
        for (i, f) in wf.iter().enumerate() {
            assert_eq!(
                f.code(),
                Some(0),
                "round {round}: writer {}: {}",
                i + 1,
                f.stderr
            );
        }
        assert_eq!(r.code(), Some(0), "round {round}: reader: {}", r.stderr);
        k.assert_clean();
    }
}

// ----------------------------------------------------------------------------------
// Joining rules
// ----------------------------------------------------------------------------------

#[test]
fn byte_stream_and_lines_writers_do_not_mix() {
    // A byte-stream session refuses a --lines writer ...
    let k = TestKey::new();
    let mut w1 = Proc::spawn(k.writer(), Stdio::piped());
    w1.wait_stderr(SOON, "created key");
    let mut c = k.writer();
    c.arg("--lines");
    let w2 = run_with_input(c, b"w2 intruder\n", SOON);
    assert_eq!(
        w2.code(),
        Some(i32::from(code::CONFLICT)),
        "--lines writer on a byte-stream session: {}",
        w2.stderr
    );
    assert!(w2.stderr.contains(&k.arg()), "names the key: {}", w2.stderr);
    w1.feed(b"byte stream\n");
    w1.close_stdin();
    let r = Proc::spawn(k.reader(), Stdio::null()).wait(TIMEOUT);
    let w = w1.wait(TIMEOUT);
    assert_eq!(w.code(), Some(0), "{}", w.stderr);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, b"byte stream\n");
    k.assert_clean();

    // ... and a --lines session refuses a byte-stream writer.
    let k = TestKey::new();
    let mut ws = start_writers(&k, 1, &[], None);
    let w2 = run_with_input(k.writer(), b"intruder bytes\n", SOON);
    assert_eq!(
        w2.code(),
        Some(i32::from(code::CONFLICT)),
        "byte-stream writer on a --lines session: {}",
        w2.stderr
    );
    assert!(w2.stderr.contains(&k.arg()), "names the key: {}", w2.stderr);
    assert!(
        w2.stderr.contains("--lines"),
        "tells how to share: {}",
        w2.stderr
    );
    let mut w1 = ws.pop().expect("writer");
    w1.feed(b"w1 000000 x\n");
    w1.close_stdin();
    let mut rc = k.reader();
    rc.arg("--tag");
    let r = Proc::spawn(rc, Stdio::null()).wait(TIMEOUT);
    let w = w1.wait(TIMEOUT);
    assert_eq!(w.code(), Some(0), "{}", w.stderr);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, b"[writer 1] w1 000000 x\n");
    k.assert_clean();
}

#[test]
fn lines_writer_arriving_after_the_end_is_refused() {
    // The documented assumption: once the stream has ended (here a --persist stream
    // waiting for its reader) a late --lines writer is refused with exit 3 and the
    // waiting stream is untouched.
    let k = TestKey::new();
    let mut c = k.writer();
    c.args(["--lines", "--persist"]);
    let w1 = run_with_input(c, b"w1 000000 kept\n", SOON);
    assert_eq!(w1.code(), Some(0), "{}", w1.stderr);
    let mut c = k.writer();
    c.arg("--lines");
    let late = run_with_input(c, b"w2 000000 late\n", SOON);
    assert_eq!(
        late.code(),
        Some(i32::from(code::CONFLICT)),
        "late writer: {}",
        late.stderr
    );
    assert!(
        late.stderr.contains("ended") || late.stderr.contains("finished"),
        "says the stream is over: {}",
        late.stderr
    );
    let mut rc = k.reader();
    rc.arg("--tag");
    let r = Proc::spawn(rc, Stdio::null()).wait(TIMEOUT);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, b"[writer 1] w1 000000 kept\n");
    k.assert_clean();
}

// ----------------------------------------------------------------------------------
// A writer killed while the others go on
// ----------------------------------------------------------------------------------

#[test]
fn kill_9_of_one_writer_others_finish_readers_report_it() {
    let k = TestKey::new();
    const PER: u32 = 20_000;
    const HALF: u32 = PER / 2;
    let long_max = 600;
    let mut readers = start_readers(&k, 2);
    readers[0].wait_stderr(SOON, "waiting for a writer");
    let mut writers = start_writers(&k, 3, &["--slots", "32", "--slot-size", "1K"], None);
    let victim = 2u32;
    // Every writer gets the first half of its lines; the survivors get the rest later.
    let mut gos = Vec::new();
    let mut feeders = Vec::new();
    for (w, id) in writers.iter_mut().zip(1u32..) {
        let mut stdin = w.hold_stdin().expect("piped stdin");
        let (go_tx, go_rx) = mpsc::channel::<bool>();
        let (done_tx, done_rx) = mpsc::channel::<std::io::Result<()>>();
        gos.push(go_tx);
        feeders.push(done_rx);
        std::thread::spawn(move || {
            let mut r = stdin.write_all(&lines(id, 0, HALF, long_max));
            if r.is_ok() && go_rx.recv().unwrap_or(false) {
                r = stdin.write_all(&lines(id, HALF, PER, long_max));
            }
            // Dropping stdin ends this writer's input (the victim is dead by then).
            drop(stdin);
            let _ = done_tx.send(r);
        });
    }
    // Wait until the victim's last line of the first half has been delivered: then
    // everything it published is out of the ring, and it sits idle waiting for input.
    let last = format!("] w{victim} {:06} ", HALF - 1);
    let start = Instant::now();
    loop {
        for r in &mut readers {
            r.pump();
        }
        if readers
            .iter()
            .any(|r| r.out.windows(last.len()).any(|w| w == last.as_bytes()))
        {
            break;
        }
        assert!(
            start.elapsed() < LONG,
            "the victim's first half was never delivered"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let st = writers[(victim - 1) as usize].kill9(SOON);
    assert!(st.code().is_none());
    for (go, id) in gos.iter().zip(1u32..) {
        let _ = go.send(id != victim);
    }
    for (f, id) in feeders.iter().zip(1u32..) {
        match f.recv_timeout(LONG) {
            Ok(r) => assert!(
                r.is_ok() || id == victim,
                "feeding writer {id} failed: {r:?}"
            ),
            Err(_) => panic!("HANG: writer {id} did not read its input within {LONG:?}"),
        }
    }
    let wf: Vec<(u32, Finished)> = writers
        .into_iter()
        .zip(1u32..)
        .filter(|(_, id)| *id != victim)
        .map(|(w, id)| (id, w.wait(LONG)))
        .collect();
    let rf: Vec<Finished> = readers.into_iter().map(|r| r.wait(LONG)).collect();
    for (id, f) in &wf {
        assert_eq!(f.code(), Some(0), "surviving writer {id}: {}", f.stderr);
    }
    let mut streams = std::collections::BTreeMap::new();
    for id in 1..=3u32 {
        streams.insert(
            id,
            lines(id, 0, if id == victim { HALF } else { PER }, long_max),
        );
    }
    let outs: Vec<&[u8]> = rf.iter().map(|f| f.stdout.as_slice()).collect();
    let (delivered, frames) = verify(&outs, &streams, true);
    for (id, s) in &streams {
        assert_eq!(
            delivered[id],
            s.len(),
            "writer {id}: delivered {} of {} bytes",
            delivered[id],
            s.len()
        );
    }
    assert_eq!(frames, (2 * PER + HALF) as usize);
    for (i, f) in rf.iter().enumerate() {
        assert_eq!(
            f.code(),
            Some(i32::from(code::PEER_GONE)),
            "reader {i} must report the dead writer: {}",
            f.stderr
        );
        assert!(
            f.stderr.contains("1 writer(s) died"),
            "reader {i}: says one writer died: {}",
            f.stderr
        );
        assert!(
            f.stderr.contains(&k.arg()),
            "reader {i}: names the key: {}",
            f.stderr
        );
        let parsed = parse_frames(&f.stdout).expect("parse");
        let bytes: usize = parsed.iter().map(|fr| fr.payload.len()).sum();
        assert!(
            f.stderr.contains(&format!(
                "delivered {} frames ({bytes} bytes)",
                parsed.len()
            )),
            "reader {i}: its report must match what it delivered ({} frames, {bytes} bytes): {}",
            parsed.len(),
            f.stderr
        );
    }
    k.assert_clean();
}

/// The checker itself must catch loss, duplication, reordering, tearing and a wrong
/// tag, or the tests above would prove nothing.
#[test]
fn verifier_catches_broken_deliveries() {
    let mut streams = std::collections::BTreeMap::new();
    streams.insert(1u32, lines(1, 0, 4, 50));
    streams.insert(2u32, lines(2, 0, 3, 50));
    let tagged = |id: u32, seqs: &[u32]| -> Vec<u8> {
        seqs.iter()
            .flat_map(|&s| [format!("[writer {id}] ").into_bytes(), line(id, s, 50)].concat())
            .collect()
    };
    let good_a = [tagged(1, &[0, 2]), tagged(2, &[0, 1, 2])].concat();
    let good_b = tagged(1, &[1, 3]);
    let (d, frames) = verify(&[&good_a, &good_b], &streams, true);
    assert_eq!(
        (d[&1], d[&2], frames),
        (streams[&1].len(), streams[&2].len(), 7)
    );
    let fails = |outs: Vec<Vec<u8>>| {
        let s = streams.clone();
        std::panic::catch_unwind(move || {
            let refs: Vec<&[u8]> = outs.iter().map(|o| o.as_slice()).collect();
            let (d, _) = verify(&refs, &s, true);
            assert!(d[&1] == s[&1].len() && d[&2] == s[&2].len());
        })
        .is_err()
    };
    assert!(
        fails(vec![tagged(1, &[0, 2]), tagged(1, &[1])]),
        "a lost line (1:3) and a lost writer"
    );
    assert!(
        fails(vec![
            [tagged(1, &[0, 1, 2, 3]), tagged(2, &[0, 1, 2])].concat(),
            tagged(1, &[2])
        ]),
        "a duplicate"
    );
    assert!(
        fails(vec![
            [tagged(1, &[0, 2, 1, 3]), tagged(2, &[0, 1, 2])].concat()
        ]),
        "reordered in one reader"
    );
    assert!(
        fails(vec![
            [tagged(1, &[0, 1, 2, 3]), tagged(1, &[0, 1, 2])].concat()
        ]),
        "wrong tag"
    );
    let mut torn = [tagged(1, &[0, 1, 2, 3]), tagged(2, &[0, 1, 2])].concat();
    let at = torn.len() - 5;
    torn[at] ^= 1;
    assert!(fails(vec![torn]), "a flipped byte");
    let half = [tagged(1, &[0, 1, 2, 3]), tagged(2, &[0, 1, 2])].concat();
    assert!(
        fails(vec![half[..half.len() - 3].to_vec()]),
        "a torn last line"
    );
}

/// Regression (found by the model check, model/README.md, "F2"): a writer killed
/// after it sent its END, but before it left, must not make the next finishing writer
/// think it is the last one still sending. Before the ENDED semaphore, writer B sent
/// FINAL here while writer A was still sending, and A's later lines were never read.
#[test]
fn a_writer_killed_after_its_end_does_not_end_the_stream_early() {
    let k = TestKey::new();
    let mut writers = start_writers(&k, 3, &[], None);
    for (w, id) in writers.iter_mut().zip(1u32..) {
        w.feed(format!("first line of writer {id}\n").as_bytes());
    }
    // C (writer 3) ends its input: it publishes END, then (no reader has joined yet,
    // no --persist) waits for one. Kill it there: ended, but never left.
    writers[2].close_stdin();
    writers[2].wait_stderr(SOON, "waiting for a reader");
    let st = writers[2].kill9(SOON);
    assert!(st.code().is_none(), "killed by a signal");
    // B ends while A is still sending: B must send END, not FINAL.
    writers[1].close_stdin();
    writers[1].wait_stderr(SOON, "waiting for a reader");
    writers[0].feed(b"last line of writer 1\n");
    writers[0].close_stdin();
    let r = Proc::spawn(
        {
            let mut c = k.reader();
            c.arg("--tag");
            c
        },
        Stdio::null(),
    )
    .wait(TIMEOUT);
    let out = String::from_utf8_lossy(&r.stdout).into_owned();
    for want in [
        "[writer 1] first line of writer 1\n",
        "[writer 2] first line of writer 2\n",
        "[writer 3] first line of writer 3\n",
        "[writer 1] last line of writer 1\n",
    ] {
        assert!(
            out.contains(want),
            "missing {want:?} in the reader's output:\n{out}\nstderr:\n{}",
            r.stderr
        );
    }
    // Writer 3 died only after its END: its stream was complete, nothing is lost.
    assert_eq!(r.code(), Some(0), "reader: {}", r.stderr);
    for w in writers.drain(..2) {
        let f = w.wait(TIMEOUT);
        assert_eq!(f.code(), Some(0), "writer: {}", f.stderr);
    }
    k.assert_clean();
}
