//! The core pair: real binaries, real semaphores, one writer and one reader in
//! byte-stream mode: start orders, interactive use, content, a big transfer, the
//! persist flow, FILE versus stdin, geometry. Every test owns its key (`TestKey`),
//! bounds every blocking step with a timeout, and checks that nothing is left at its
//! key when the behaviour promises so.
mod support;
use std::process::Stdio;
use std::time::Duration;
use support::*;

// ----------------------------------------------------------------------------------
// Start orders
// ----------------------------------------------------------------------------------

#[test]
fn reader_first_then_writer_delivers_binary_data() {
    let k = TestKey::new();
    let data = pseudo_random(3 << 20, 1);
    let mut reader = Proc::spawn(k.reader(), Stdio::null());
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
    // A regular file on stdin, read in whole slots: 17 frames, sure to fit in the
    // default ring of 64 (through a pipe, one read may return any amount).
    let input = TempFile::new(&data);
    let mut writer = Proc::spawn(k.writer(), Stdio::from(input.open()));
    // All sent into the ring; the writer now waits for a reader, saying so.
    writer.wait_stderr(SOON, "all sent; waiting for a reader");
    assert!(
        writer.stderr_text().contains(&k.arg()),
        "names the key: {}",
        writer.stderr_text()
    );
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
    let mut writer = Proc::spawn(cmd, Stdio::piped());
    let mut reader = Proc::spawn(k.reader(), Stdio::null());
    let burst = pseudo_random(15_387, 7);
    writer.feed(&burst);
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
    let mut writer = Proc::spawn(k.writer(), Stdio::piped());
    let mut reader = Proc::spawn(k.reader(), Stdio::null());
    let lines: [&[u8]; 3] = [b"hello, reader\n", b"second line\n", b"\n"];
    let mut expected = Vec::new();
    for line in lines {
        writer.feed(line);
        expected.extend_from_slice(line);
        let want = expected.clone();
        reader.wait_stdout(SOON, "the line just typed", |out| out == want.as_slice());
        assert!(
            writer.running() && reader.running(),
            "both still running while input is open"
        );
    }
    // A partial line (no newline yet) is also passed on at once in byte-stream mode.
    writer.feed(b"no newline");
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
    let mut writer = Proc::spawn(k.writer(), Stdio::null());
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
    let mut reader = Proc::spawn(k.reader(), Stdio::null());
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
    let reader = Proc::spawn_to_file(k.reader(), Stdio::null(), out_file);
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
    let notes = TempFile::new(&text);
    // The handout exercise: `writer --persist notes.txt`.
    let mut w = k.writer();
    w.arg("--persist").arg(&notes.path);
    let w = run(w, SOON);
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
    let mut writer = Proc::spawn(w, Stdio::piped());
    writer.feed_in_background(data.clone());
    // No reader yet: the ring fills and the writer blocks, saying why.
    writer.wait_stderr(SOON, "the ring is full; waiting for a reader");
    assert!(writer.running());
    // The segment has exactly the requested geometry: 4096-byte header + 2 * 128.
    let (_, bytes) = segment_at(k.key).expect("segment at the key");
    assert_eq!(bytes, 4096 + 2 * 128, "segment size in ipcs");
    // The reader has no geometry options: it must take 2 x 128 from the header.
    let r = Proc::spawn(k.reader(), Stdio::null()).wait(TIMEOUT);
    let w = writer.wait(TIMEOUT);
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
