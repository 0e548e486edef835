//! The core pair (issue 3): real binaries, real semaphores, one writer and one reader
//! in byte-stream mode. Every test owns its key (`TestKey`), bounds every blocking
//! step with a timeout, and checks that nothing is left at its key when the behaviour
//! promises so.
mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Short waits: things that should happen "at once".
const SOON: Duration = Duration::from_secs(10);

fn assert_ok(f: &Finished, who: &str) {
    assert_eq!(
        f.code(),
        Some(0),
        "{who} exit status {:?}; stderr:\n{}",
        f.status,
        f.stderr
    );
}

// ----------------------------------------------------------------------------------
// Start orders
// ----------------------------------------------------------------------------------

#[test]
fn reader_first_then_writer_delivers_binary_data() {
    let k = TestKey::new();
    let data = pseudo_random(3 << 20, 1);
    let mut reader = Live::spawn(k.reader(), Stdio::null());
    // The reader waits (and says so, naming the key) until the writer creates the session.
    reader.wait_stderr(SOON, "waiting for a writer");
    assert!(
        reader.stderr_text().contains(&k.arg()),
        "the waiting note names the key: {}",
        reader.stderr_text()
    );
    assert!(reader.running());
    assert_eq!(
        k.in_ipcs(),
        (false, false),
        "a waiting reader creates nothing"
    );
    let w = run_with_input(k.writer(), &data, TIMEOUT);
    assert_ok(&w, "writer");
    let r = reader.wait(TIMEOUT);
    assert_ok(&r, "reader");
    assert_eq!(
        r.stderr.matches("waiting for a writer").count(),
        1,
        "said once: {}",
        r.stderr
    );
    assert!(
        r.stdout == data,
        "received {} bytes, sent {}",
        r.stdout.len(),
        data.len()
    );
    k.assert_clean();
}

#[test]
fn writer_first_then_reader_delivers() {
    let k = TestKey::new();
    let data = pseudo_random(1 << 20, 2);
    let mut writer = Live::spawn(k.writer(), Stdio::piped());
    let mut stdin = writer.take_stdin();
    let feed = data.clone();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&feed).expect("feed writer");
    });
    // All sent into the (16 MiB) ring; the writer now waits for a reader, saying so.
    writer.wait_stderr(SOON, "waiting for a reader");
    assert!(
        writer.stderr_text().contains(&k.arg()),
        "names the key: {}",
        writer.stderr_text()
    );
    feeder.join().expect("feeder");
    assert_eq!(
        k.in_ipcs(),
        (true, true),
        "the writer's objects exist while it waits"
    );
    assert!(writer.running(), "the writer waits for its reader");
    let r = Proc::spawn(k.reader(), Stdio::null()).wait(TIMEOUT);
    let w = writer.wait(TIMEOUT);
    assert_ok(&w, "writer");
    assert_ok(&r, "reader");
    assert_eq!(
        w.stderr.matches("waiting for a reader").count(),
        1,
        "said once: {}",
        w.stderr
    );
    assert!(
        r.stdout == data,
        "received {} bytes, sent {}",
        r.stdout.len(),
        data.len()
    );
    k.assert_clean();
}

// ----------------------------------------------------------------------------------
// Interactive use: each line shows up at once, before the writer's input ends
// ----------------------------------------------------------------------------------

/// Regression: with small slots the writer reads in small chunks; a burst of input
/// larger than one read must all be sent while stdin stays open (it once sat in
/// Stdin's internal buffer, invisible to the writer's poll(2), until end of input).
#[test]
fn a_burst_of_input_is_sent_without_waiting_for_end_of_input() {
    let k = TestKey::new();
    let mut cmd = k.writer();
    cmd.args(["--slots", "64", "--slot-size", "128"]);
    let mut writer = Live::spawn(cmd, Stdio::piped());
    let mut reader = Live::spawn(k.reader(), Stdio::null());
    let burst = pseudo_random(15_387, 7);
    writer.send(&burst);
    let want = burst.clone();
    reader.wait_stdout(SOON, "the whole burst, stdin still open", |out| {
        out == want.as_slice()
    });
    assert!(
        writer.running(),
        "the writer is still running: its input is open"
    );
    writer.close_stdin();
    assert_ok(&writer.wait(TIMEOUT), "writer");
    assert_ok(&reader.wait(TIMEOUT), "reader");
    k.assert_clean();
}

#[test]
fn interactive_lines_arrive_before_end_of_input() {
    let k = TestKey::new();
    let mut writer = Live::spawn(k.writer(), Stdio::piped());
    let mut reader = Live::spawn(k.reader(), Stdio::null());
    let lines: [&[u8]; 3] = [b"hello, reader\n", b"second line\n", b"\n"];
    let mut expected = Vec::new();
    for line in lines {
        writer.send(line);
        expected.extend_from_slice(line);
        let want = expected.clone();
        reader.wait_stdout(SOON, "the line just typed", |out| out == want.as_slice());
        assert!(
            writer.running() && reader.running(),
            "both still running while input is open"
        );
    }
    // A partial line (no newline yet) is also passed on at once in byte-stream mode.
    writer.send(b"no newline");
    expected.extend_from_slice(b"no newline");
    let want = expected.clone();
    reader.wait_stdout(SOON, "a partial line", |out| out == want.as_slice());
    writer.close_stdin(); // Ctrl-D
    let w = writer.wait(TIMEOUT);
    let r = reader.wait(TIMEOUT);
    assert_ok(&w, "writer");
    assert_ok(&r, "reader");
    assert_eq!(r.stdout, expected);
    k.assert_clean();
}

// ----------------------------------------------------------------------------------
// Content: binary, NUL bytes, empty input
// ----------------------------------------------------------------------------------

#[test]
fn binary_data_with_nul_bytes_is_exact() {
    let k = TestKey::new();
    // Runs of NULs (leading, trailing, across slot boundaries), every byte value,
    // CR/LF and 0xff runs; small slots so runs straddle frames.
    let mut data = vec![0u8; 1000];
    for i in 0..20_000u32 {
        data.push((i % 256) as u8);
    }
    data.extend(std::iter::repeat_n(0u8, 70_000));
    data.extend_from_slice(b"\r\n\0\r\0\n\xff\xfe");
    data.extend(std::iter::repeat_n(0xffu8, 5_000));
    data.extend(pseudo_random(100_000, 3));
    data.extend(std::iter::repeat_n(0u8, 4097));
    let mut w = k.writer();
    w.args(["--slots", "8", "--slot-size", "4K"]);
    let reader = Proc::spawn(k.reader(), Stdio::null());
    let wf = run_with_input(w, &data, TIMEOUT);
    let r = reader.wait(TIMEOUT);
    assert_ok(&wf, "writer");
    assert_ok(&r, "reader");
    assert_eq!(r.stdout.len(), data.len());
    assert!(r.stdout == data, "content differs");
    k.assert_clean();
}

#[test]
fn empty_input_gives_empty_output_and_both_exit_0() {
    let k = TestKey::new();
    // Writer first with 0 bytes: it must still end the stream properly and wait for
    // its reader; the reader gets nothing and exits 0.
    let mut writer = Live::spawn(k.writer(), Stdio::null());
    writer.wait_stderr(SOON, "waiting for a reader");
    let r = Proc::spawn(k.reader(), Stdio::null()).wait(TIMEOUT);
    let w = writer.wait(TIMEOUT);
    assert_ok(&w, "writer");
    assert_ok(&r, "reader");
    assert!(
        r.stdout.is_empty(),
        "reader printed {} bytes",
        r.stdout.len()
    );
    assert!(
        w.stderr.contains("writer: 0 bytes"),
        "writer summary: {}",
        w.stderr
    );
    assert!(
        r.stderr.contains("reader: 0 bytes"),
        "reader summary: {}",
        r.stderr
    );
    k.assert_clean();

    // And reader first, with an empty FILE argument.
    let k = TestKey::new();
    let empty = TempFile::new(&[]);
    let mut reader = Live::spawn(k.reader(), Stdio::null());
    reader.wait_stderr(SOON, "waiting for a writer");
    let mut w = k.writer();
    w.arg(&empty.path);
    let w = Proc::spawn(w, Stdio::null()).wait(TIMEOUT);
    let r = reader.wait(TIMEOUT);
    assert_ok(&w, "writer");
    assert_ok(&r, "reader");
    assert!(r.stdout.is_empty());
    k.assert_clean();
}

// ----------------------------------------------------------------------------------
// A big transfer, checked byte for byte, without holding it in memory
// ----------------------------------------------------------------------------------

#[test]
fn transfer_of_256_mib_is_byte_identical() {
    let k = TestKey::new();
    // 256 MiB plus an odd tail, so the last frame is partial.
    let len: u64 = (256 << 20) + 12_345;
    let input = big_temp_file(len, 0xfeed_beef);
    let output = temp_path();
    let out_file = std::fs::File::create(&output.path).expect("create output");
    let reader = spawn_stdout_to(k.reader(), Stdio::null(), out_file);
    let mut w = k.writer();
    w.arg(&input.path);
    let writer = Proc::spawn(w, Stdio::null());
    let limit = Duration::from_secs(120);
    let w = writer.wait(limit);
    let r = reader.wait(limit);
    assert_ok(&w, "writer");
    assert_ok(&r, "reader");
    assert_eq!(files_equal(&input.path, &output.path), Ok(len));
    assert!(
        w.stderr.contains(&format!("writer: {len} bytes")),
        "writer summary: {}",
        w.stderr
    );
    assert!(
        r.stderr.contains(&format!("reader: {len} bytes")),
        "reader summary: {}",
        r.stderr
    );
    k.assert_clean();
}

// ----------------------------------------------------------------------------------
// The handout's exercise: the writer exits before any reader exists
// ----------------------------------------------------------------------------------

#[test]
fn persist_then_read_later() {
    let k = TestKey::new();
    let text = b"The segment outlives its writer.\nA later reader gets all of it.\n".repeat(50);
    let mut w = k.writer();
    w.arg("--persist");
    let w = run_with_input(w, &text, SOON);
    assert_ok(&w, "writer --persist");
    assert!(
        w.stderr.contains("until a reader"),
        "writer says the stream waits: {}",
        w.stderr
    );
    // Both objects outlive the writer, visible in ipcs.
    assert_eq!(
        k.in_ipcs(),
        (true, true),
        "segment and semaphore set stay after the writer"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(k.in_ipcs(), (true, true), "and keep staying");
    let r = Proc::spawn(k.reader(), Stdio::null()).wait(TIMEOUT);
    assert_ok(&r, "reader");
    assert!(
        r.stdout == text,
        "got {} of {} bytes",
        r.stdout.len(),
        text.len()
    );
    assert!(
        r.stderr.contains("removed"),
        "the reader, last user, removes: {}",
        r.stderr
    );
    k.assert_clean();
}

// ----------------------------------------------------------------------------------
// FILE argument versus stdin
// ----------------------------------------------------------------------------------

#[test]
fn file_argument_and_stdin_send_the_same_bytes() {
    let data = pseudo_random(700_001, 4);
    let file = TempFile::new(&data);
    // FILE argument (stdin closed: it must not be read).
    let k = TestKey::new();
    let reader = Proc::spawn(k.reader(), Stdio::null());
    let mut w = k.writer();
    w.arg(&file.path);
    let w = run_with_input(w, b"this is stdin and must be ignored", TIMEOUT);
    let r = reader.wait(TIMEOUT);
    assert_ok(&w, "writer FILE");
    assert_ok(&r, "reader");
    assert!(
        r.stdout == data,
        "FILE: got {} bytes of {}",
        r.stdout.len(),
        data.len()
    );
    k.assert_clean();
    // Stdin redirected from the same file.
    let k = TestKey::new();
    let reader = Proc::spawn(k.reader(), Stdio::null());
    let f = std::fs::File::open(&file.path).expect("open");
    let w = Proc::spawn(k.writer(), Stdio::from(f)).wait(TIMEOUT);
    let r = reader.wait(TIMEOUT);
    assert_ok(&w, "writer < FILE");
    assert_ok(&r, "reader");
    assert!(
        r.stdout == data,
        "stdin: got {} bytes of {}",
        r.stdout.len(),
        data.len()
    );
    k.assert_clean();
    // A FILE that does not exist: an I/O error (exit 1) naming it, nothing created.
    let k = TestKey::new();
    let mut w = k.writer();
    w.arg("/nonexistent/input.bin");
    let w = Proc::spawn(w, Stdio::null()).wait(SOON);
    assert_eq!(
        w.code(),
        Some(i32::from(code::OS_ERROR)),
        "stderr: {}",
        w.stderr
    );
    assert!(
        w.stderr.contains("/nonexistent/input.bin"),
        "names the file: {}",
        w.stderr
    );
    k.assert_clean();
}

// ----------------------------------------------------------------------------------
// Geometry: the writer fixes it, the reader reads it from the header
// ----------------------------------------------------------------------------------

#[test]
fn tiny_ring_wraps_many_times_and_blocks_when_full() {
    let k = TestKey::new();
    // 2 slots of 128 bytes: 96 payload bytes per frame, so 200 kB is ~2100 frames
    // and ~1000 trips around the ring.
    let data = pseudo_random(200_000, 5);
    let mut w = k.writer();
    w.args(["--slots", "2", "--slot-size", "128"]);
    let mut writer = Live::spawn(w, Stdio::piped());
    let mut stdin = writer.take_stdin();
    let feed = data.clone();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(&feed);
    });
    // No reader yet: the ring fills and the writer blocks, saying why.
    writer.wait_stderr(SOON, "the ring is full; waiting for a reader");
    assert!(writer.running());
    // The segment has exactly the requested geometry: 4096-byte header + 2 * 128.
    let (_, bytes) = segment_at(&k).expect("segment at the key");
    assert_eq!(bytes, 4096 + 2 * 128, "segment size in ipcs");
    // The reader has no geometry options: it must take 2 x 128 from the header.
    let r = Proc::spawn(k.reader(), Stdio::null()).wait(TIMEOUT);
    let w = writer.wait(TIMEOUT);
    feeder.join().expect("feeder");
    assert_ok(&w, "writer");
    assert_ok(&r, "reader");
    assert!(
        r.stdout == data,
        "got {} of {} bytes",
        r.stdout.len(),
        data.len()
    );
    assert!(
        w.stderr.contains("2 slots of 128 bytes"),
        "creation note: {}",
        w.stderr
    );
    k.assert_clean();
}

#[test]
fn odd_geometry_reader_follows_header() {
    let k = TestKey::new();
    // 3 slots of 1 MiB; data not a multiple of the payload.
    let data = pseudo_random(5 * (1 << 20) + 77, 6);
    let mut w = k.writer();
    w.args(["--slots", "3", "--slot-size", "1M"]);
    let reader = Proc::spawn(k.reader(), Stdio::null());
    let wf = run_with_input(w, &data, TIMEOUT);
    let r = reader.wait(TIMEOUT);
    assert_ok(&wf, "writer");
    assert_ok(&r, "reader");
    assert!(
        r.stdout == data,
        "got {} of {} bytes",
        r.stdout.len(),
        data.len()
    );
    k.assert_clean();
}

// ----------------------------------------------------------------------------------
// Bad command lines: exit 2, a clear message, nothing created
// ----------------------------------------------------------------------------------

#[test]
fn bad_keys_are_refused_with_exit_2_and_create_nothing() {
    // `-5` needs the `--key=-5` spelling (otherwise it is parsed as a flag; also exit 2).
    let cases: &[(&str, &str)] = &[
        ("--key=0", "IPC_PRIVATE"),
        ("--key=0x0", "IPC_PRIVATE"),
        ("--key=junk", "junk"),
        ("--key=-5", "-5"),
        ("--key=0x100000000", "0x100000000"),
        ("--key=path:/nonexistent", "/nonexistent"),
        ("--key=", "key"),
    ];
    for (arg, mention) in cases {
        for name in ["writer", "reader"] {
            let mut cmd = std::process::Command::new(bin(name));
            cmd.arg(arg);
            let p = Proc::spawn(cmd, Stdio::piped());
            let pid = p.pid();
            let f = run_and_close(p, b"data\n");
            assert_eq!(
                f.code(),
                Some(i32::from(code::USAGE)),
                "{name} {arg}: stderr {}",
                f.stderr
            );
            assert!(
                f.stderr.contains("key"),
                "{name} {arg}: message should say what is wrong: {}",
                f.stderr
            );
            assert!(
                f.stderr.contains(mention),
                "{name} {arg}: message should mention {mention:?}: {}",
                f.stderr
            );
            assert!(
                segments_created_by(pid).is_empty(),
                "{name} {arg} created a segment"
            );
        }
    }
    // -5 as a key_t is 0xfffffffb: nothing may be there.
    let out = std::process::Command::new("ipcs").output().expect("ipcs");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("0xfffffffb"),
        "something at key -5"
    );
}

fn run_and_close(mut p: Proc, input: &[u8]) -> Finished {
    use std::io::Write;
    if let Some(mut s) = p.child.stdin.take() {
        let _ = s.write_all(input);
    }
    p.wait(SOON)
}

#[test]
fn bad_sizes_are_refused_with_exit_2_and_create_nothing() {
    let k = TestKey::new();
    let cases: &[(&[&str], &str)] = &[
        (&["--slots", "0"], "--slots"),
        (&["--slots", "40000"], "--slots"),
        (&["--slots", "32768"], "--slots"),
        (&["--slots", "-1"], "-1"),
        (&["--slots", "many"], "many"),
        (&["--slot-size", "100"], "--slot-size"),
        (&["--slot-size", "64"], "--slot-size"),
        (&["--slot-size", "0"], "--slot-size"),
        (&["--slot-size", "2G"], "--slot-size"),
        (&["--slot-size", "4G"], "4G"),
        (&["--slot-size", "lots"], "lots"),
    ];
    for (args, mention) in cases {
        let mut w = k.writer();
        w.args(*args);
        let f = run_with_input(w, b"data\n", SOON);
        assert_eq!(
            f.code(),
            Some(i32::from(code::USAGE)),
            "writer {args:?}: stderr {}",
            f.stderr
        );
        assert!(
            f.stderr.contains(mention),
            "writer {args:?}: message should mention {mention:?}: {}",
            f.stderr
        );
        assert_eq!(
            k.in_ipcs(),
            (false, false),
            "writer {args:?} left something at the key"
        );
    }
    k.assert_clean();
}

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

// ----------------------------------------------------------------------------------
// Reporting: summary line, --quiet, --help
// ----------------------------------------------------------------------------------

/// Parses "ROLE: B bytes, M messages in S s (R MB/s)..." from stderr.
fn summary(stderr: &str, role: &str) -> Option<(u64, u64, f64, f64)> {
    let line = stderr
        .lines()
        .find(|l| l.starts_with(&format!("{role}: ")) && l.contains(" bytes, "))?;
    let rest = line.strip_prefix(&format!("{role}: "))?;
    let mut it = rest.split_whitespace();
    let bytes = it.next()?.parse().ok()?;
    (it.next()? == "bytes,").then_some(())?;
    let msgs = it.next()?.parse().ok()?;
    (it.next()? == "messages").then_some(())?;
    (it.next()? == "in").then_some(())?;
    let secs = it.next()?.parse().ok()?;
    (it.next()? == "s").then_some(())?;
    let rate = it.next()?.trim_start_matches('(').parse().ok()?;
    it.next()?.starts_with("MB/s").then_some(())?;
    Some((bytes, msgs, secs, rate))
}

#[test]
fn summary_line_reports_bytes_messages_rate_and_quiet_silences_it() {
    let k = TestKey::new();
    let data = pseudo_random(300_000, 7);
    let mut w = k.writer();
    w.args(["--slot-size", "4K"]); // 4064-byte payloads: at least 74 messages
    let reader = Proc::spawn(k.reader(), Stdio::null());
    let wf = run_with_input(w, &data, TIMEOUT);
    let r = reader.wait(TIMEOUT);
    assert_ok(&wf, "writer");
    assert_ok(&r, "reader");
    let (wb, wm, ws, wr) =
        summary(&wf.stderr, "writer").unwrap_or_else(|| panic!("writer summary: {}", wf.stderr));
    let (rb, rm, rs, rr) =
        summary(&r.stderr, "reader").unwrap_or_else(|| panic!("reader summary: {}", r.stderr));
    assert_eq!(wb, 300_000);
    assert_eq!(rb, 300_000);
    assert!(wm >= 74, "writer messages {wm}");
    assert_eq!(wm, rm, "both count the same messages");
    assert!(ws >= 0.0 && rs >= 0.0 && wr >= 0.0 && rr >= 0.0);
    assert_eq!(
        wf.stderr.lines().filter(|l| l.contains(" bytes, ")).count(),
        1,
        "one summary line"
    );
    k.assert_clean();

    // --quiet (and -q): nothing on stderr at all on success, output unchanged.
    let k = TestKey::new();
    let mut rc = k.reader();
    rc.arg("--quiet");
    let reader = Proc::spawn(rc, Stdio::null());
    let mut w = k.writer();
    w.arg("-q");
    let wf = run_with_input(w, &data, TIMEOUT);
    let r = reader.wait(TIMEOUT);
    assert_ok(&wf, "writer -q");
    assert_ok(&r, "reader --quiet");
    assert!(r.stdout == data);
    assert_eq!(wf.stderr, "", "writer -q printed");
    assert_eq!(r.stderr, "", "reader --quiet printed");
    k.assert_clean();
}

#[test]
fn help_lists_the_exit_codes() {
    for name in ["writer", "reader"] {
        let mut cmd = std::process::Command::new(bin(name));
        cmd.arg("--help");
        let f = Proc::spawn(cmd, Stdio::null()).wait(SOON);
        assert_eq!(f.code(), Some(0), "{name} --help");
        let text = String::from_utf8_lossy(&f.stdout).into_owned();
        assert!(text.contains("Exit codes"), "{name} --help: {text}");
        for (c, word) in [
            ("0", "success"),
            ("1", "error"),
            ("2", "command line"),
            ("3", "conflict"),
            ("4", "died"),
            ("5", "permission"),
            ("130", "interrupted"),
        ] {
            assert!(
                text.lines()
                    .any(|l| l.trim_start().starts_with(&format!("{c} "))
                        && l.to_lowercase().contains(word)),
                "{name} --help: no line for exit code {c} ({word}):\n{text}"
            );
        }
        assert!(text.contains("--key"), "{name} --help documents --key");
    }
    let mut cmd = std::process::Command::new(bin("writer"));
    cmd.arg("--help");
    let text =
        String::from_utf8_lossy(&Proc::spawn(cmd, Stdio::null()).wait(SOON).stdout).into_owned();
    for opt in ["--slots", "--slot-size", "--persist", "--quiet"] {
        assert!(text.contains(opt), "writer --help documents {opt}");
    }
}

// ----------------------------------------------------------------------------------
// Conflicts at the key
// ----------------------------------------------------------------------------------

#[test]
fn second_writer_is_refused_with_exit_3_and_first_is_unaffected() {
    let k = TestKey::new();
    let first = pseudo_random(2 << 20, 8);
    let mut w1 = Live::spawn(k.writer(), Stdio::piped());
    w1.send(&first[..1 << 20]);
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
    w1.send(&first[1 << 20..]);
    w1.close_stdin();
    let w = w1.wait(TIMEOUT);
    let r = reader.wait(TIMEOUT);
    assert_ok(&w, "first writer");
    assert_ok(&r, "reader");
    assert!(
        r.stdout == first,
        "got {} of {} bytes",
        r.stdout.len(),
        first.len()
    );
    k.assert_clean();
}

#[test]
fn second_reader_is_refused_with_exit_3_and_first_is_unaffected() {
    let k = TestKey::new();
    let data = pseudo_random(1 << 20, 9);
    let mut w1 = Live::spawn(k.writer(), Stdio::piped());
    w1.send(&data[..1000]);
    let mut r1 = Live::spawn(k.reader(), Stdio::null());
    r1.wait_stdout(SOON, "the first bytes", |o| o.len() == 1000);
    let r2 = Proc::spawn(k.reader(), Stdio::null()).wait(SOON);
    assert_eq!(
        r2.code(),
        Some(i32::from(code::CONFLICT)),
        "second reader: {}",
        r2.stderr
    );
    assert!(r2.stdout.is_empty(), "the second reader received bytes");
    assert!(r2.stderr.contains(&k.arg()), "names the key: {}", r2.stderr);
    w1.send(&data[1000..]);
    w1.close_stdin();
    let w = w1.wait(TIMEOUT);
    let r = r1.wait(TIMEOUT);
    assert_ok(&w, "writer");
    assert_ok(&r, "first reader");
    assert!(r.stdout == data);
    k.assert_clean();
}

/// Creates a segment at the key the way `ipcmk -M` would (zero-filled), optionally
/// writes `content` at its start, and returns its shmid.
fn foreign_segment(k: &TestKey, size: usize, content: &[u8]) -> i32 {
    let id =
        shm_common::sys::shm::shmget(k.key.raw(), size, libc::IPC_CREAT | libc::IPC_EXCL | 0o600)
            .expect("create the foreign segment");
    if !content.is_empty() {
        let seg = shm_common::segment::Segment::attach(k.key, id).expect("attach");
        seg.write_bytes(0, content).expect("write");
    }
    id
}

fn assert_foreign_unchanged(k: &TestKey, id: i32, size: usize, content: &[u8]) {
    assert_eq!(
        segment_at(k),
        Some((i64::from(id), size as u64)),
        "the foreign segment must still be there, same id and size"
    );
    let seg = shm_common::segment::Segment::attach(k.key, id).expect("attach foreign");
    let mut now = vec![0u8; size];
    seg.read_bytes(0, &mut now).expect("read");
    let mut expected = vec![0u8; size];
    expected[..content.len()].copy_from_slice(content);
    assert!(now == expected, "the foreign segment's bytes changed");
    let (_, sem) = k.in_ipcs();
    assert!(!sem, "a semaphore set was left at the key");
}

fn check_foreign_refusal(k: &TestKey, id: i32, size: usize, content: &[u8]) {
    let w = run_with_input(k.writer(), b"must not be sent\n", Duration::from_secs(15));
    assert_eq!(
        w.code(),
        Some(i32::from(code::CONFLICT)),
        "writer on a foreign segment: {}",
        w.stderr
    );
    assert!(
        w.stderr.contains(&k.arg()),
        "writer names the key: {}",
        w.stderr
    );
    assert!(
        w.stderr.contains(&format!("ipcrm -m {id}")),
        "writer gives the ipcrm command: {}",
        w.stderr
    );
    assert_foreign_unchanged(k, id, size, content);
    let r = Proc::spawn(k.reader(), Stdio::null()).wait(Duration::from_secs(15));
    assert_eq!(
        r.code(),
        Some(i32::from(code::CONFLICT)),
        "reader on a foreign segment: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&k.arg()),
        "reader names the key: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("ipcrm -m {id}")),
        "reader gives the ipcrm command: {}",
        r.stderr
    );
    assert!(r.stdout.is_empty());
    assert_foreign_unchanged(k, id, size, content);
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

// ----------------------------------------------------------------------------------
// Stale objects of ours: recovered with a note
// ----------------------------------------------------------------------------------

#[test]
fn stale_objects_after_kill_9_are_recovered_with_a_note() {
    let k = TestKey::new();
    let mut w1 = Live::spawn(k.writer(), Stdio::piped());
    w1.send(b"half a stream that nobody will read\n");
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
    let mut w2 = Live::spawn(k.writer(), Stdio::piped());
    w2.send(&data);
    w2.close_stdin();
    // Start the reader only once the recovery is done: a reader that came first
    // would (correctly) drain the dead writer's stream and report it cut short.
    w2.wait_stderr(SOON, "created key");
    let r = Proc::spawn(k.reader(), Stdio::null()).wait(TIMEOUT);
    let w = w2.wait(TIMEOUT);
    assert_ok(&w, "recovering writer");
    assert_ok(&r, "reader");
    assert!(
        r.stdout == data,
        "the reader got {} of {} bytes",
        r.stdout.len(),
        data.len()
    );
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

/// The progress bar: drawn (percent, bytes, rate, ETA) when stderr is a terminal, and
/// nothing of it when stderr is not. The terminal comes from util-linux `script`.
#[test]
fn progress_bar_only_on_a_terminal() {
    let data = pseudo_random(24 << 20, 11);
    let file = TempFile::new(&data);
    // On a terminal (a pty made by `script`); a tiny ring keeps the transfer long
    // enough for the bar to be drawn.
    let k = TestKey::new();
    let reader = Proc::spawn(k.reader(), Stdio::null());
    let cmd = format!(
        "{} --key {} --slots 4 --slot-size 4K {}",
        bin("writer").display(),
        k.arg(),
        file.path.display()
    );
    let mut script = Command::new("script");
    script.args(["-qefc", &cmd, "/dev/null"]);
    let tty = Proc::spawn(script, Stdio::null()).wait(TIMEOUT);
    let r = reader.wait(TIMEOUT);
    assert_eq!(tty.code(), Some(0), "writer under script: {}", tty.stderr);
    assert_eq!(r.code(), Some(0), "reader: {}", r.stderr);
    assert!(r.stdout == data, "the data arrived intact");
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(
        screen.contains("ETA") && screen.contains('%'),
        "no progress bar on the terminal:\n{screen}"
    );
    k.assert_clean();
    // Not a terminal: the same transfer prints no bar.
    let k = TestKey::new();
    let reader = Proc::spawn(k.reader(), Stdio::null());
    let mut w = k.writer();
    w.args(["--slots", "4", "--slot-size", "4K"])
        .arg(&file.path);
    let plain = Proc::spawn(w, Stdio::null()).wait(TIMEOUT);
    assert_eq!(plain.code(), Some(0), "writer: {}", plain.stderr);
    assert_eq!(reader.wait(TIMEOUT).code(), Some(0));
    assert!(
        !plain.stderr.contains("ETA"),
        "a bar on a pipe:\n{}",
        plain.stderr
    );
    k.assert_clean();
}
