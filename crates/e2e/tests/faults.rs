//! Faults: kill -9, SIGINT and SIGTERM at every point of a stream's life, SIGSTOP,
//! start-up races, corrupt and hostile memory, signal storms. Every test spawns the
//! real binaries on its own key, bounds every wait, and checks that the survivor
//! exits in time with the documented code, that what was delivered is a byte-exact
//! prefix of what was sent, and that nothing is left at the key (or that a new pair
//! recovers it).
mod support;
use shm_common::layout::off;
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::scenario::*;
use support::*;

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
        let rc = k.reader();
        // Both spawned back to back from two threads released by one barrier.
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let b2 = barrier.clone();
        let rt = std::thread::spawn(move || {
            b2.wait();
            Proc::spawn(rc, Stdio::null())
        });
        barrier.wait();
        let w = Proc::spawn(wc, Stdio::null());
        let r = rt.join().expect("reader thread");
        let limit = Duration::from_secs(20);
        let wf = w.wait_ctx(limit, &format!("run {i} at key {}: writer", k.arg()));
        let rf = r.wait_ctx(limit, &format!("run {i} at key {}: reader", k.arg()));
        assert_eq!(
            wf.code(),
            Some(0),
            "run {i}: writer: {}\nreader: {}",
            wf.stderr,
            rf.stderr
        );
        assert_eq!(rf.code(), Some(0), "run {i}: reader: {}", rf.stderr);
        assert_all(&rf.stdout, &data, &format!("run {i}"));
        k.assert_clean();
    }
    eprintln!("100 simultaneous starts in {:?}", start.elapsed());
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
        let seg = shm_common::segment::Segment::attach(k.key, id).expect("attach");
        seg.write_bytes(*offset, &value.to_le_bytes())
            .expect("scribble");
        let t = Instant::now();
        let f = run(k.reader(), DETECT + Duration::from_secs(5));
        let took = t.elapsed();
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
    let seg = shm_common::segment::Segment::attach(k.key, id).expect("attach");
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
        let w = Proc::spawn_fed(wc, data.clone());
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
        let rf = r.wait_ctx(Duration::from_secs(60), "reader under scribbling");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let wf = w.wait_ctx(Duration::from_secs(30), "writer under scribbling");
        let n = scribbler.join().expect("scribbler");
        eprintln!(
            "round {round}: {n} scribbles; reader {} ({} bytes): {}; writer {}: {}",
            rf.describe(),
            rf.stdout.len(),
            rf.stderr
                .lines()
                .filter(|l| l.contains("error"))
                .collect::<Vec<_>>()
                .join(" | "),
            wf.describe(),
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
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let k = TestKey::new();
    let data = pseudo_random(12 << 20, 70);
    let mut wc = k.writer();
    wc.args(["--slots", "4", "--slot-size", "4096"]);
    let mut w = Proc::spawn(wc, Stdio::piped());
    let r = Proc::spawn(k.reader(), Stdio::null());
    let (wp, rp) = (w.pid(), r.pid());
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let (stop2, rounds2) = (stop.clone(), rounds.clone());
    let storm = std::thread::spawn(move || {
        let mut n = 0u64;
        while !stop2.load(Ordering::Relaxed) {
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
            rounds2.store(n, Ordering::Relaxed);
            std::thread::sleep(Duration::from_micros(500));
        }
        for pid in [wp, rp] {
            send_sig(pid, Signal::SIGCONT);
        }
        n
    });
    // The input goes in 96 pieces, each only after the storm has gone round once
    // more: however fast the pair is, the transfer spans at least 96 rounds.
    let pieces = 96;
    for piece in data.chunks(data.len().div_ceil(pieces)) {
        let seen = rounds.load(Ordering::Relaxed);
        wait_until(TIMEOUT, "another round of signals", || {
            rounds.load(Ordering::Relaxed) > seen
        });
        w.feed(piece);
    }
    w.close_stdin();
    let wf = w.wait(Duration::from_secs(90));
    let rf = r.wait(TIMEOUT);
    stop.store(true, Ordering::Relaxed);
    let n = storm.join().expect("storm");
    eprintln!("{n} rounds of signals during the transfer");
    assert!(
        n >= pieces as u64,
        "too few signals were sent ({n}) to mean anything"
    );
    assert_eq!(wf.code(), Some(0), "writer: {}", wf.stderr);
    assert_eq!(rf.code(), Some(0), "reader: {}", rf.stderr);
    assert_all(&rf.stdout, &data, "the stream under the storm");
    k.assert_clean();
}
