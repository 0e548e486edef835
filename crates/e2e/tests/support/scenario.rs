//! The fault engine shared by `faults.rs` (fixed plans) and `chaos.rs` (random
//! plans): a stream through the real binaries, a fault (kill -9, SIGINT, SIGTERM)
//! at one point of its life, and every promise checked afterwards. A broken promise
//! panics with a tag the chaos schedule counts: `HANG`, `SLOW` (the survivor took
//! longer than [`DETECT`] to notice), `LEAK`, `TORN`, `CODE`.
//!
//! What the scenarios never assume: how many bytes one `read(2)` of a pipe returns
//! (so how many frames a stream takes), how the scheduler interleaves the processes,
//! or how many CPUs there are. A stream that must fit in the ring is fed from a
//! regular file, which the writer reads in whole slots; a fault that must hit a
//! stream in flight is sent while the writer's input is still held open, so the
//! stream cannot have ended first; every state a scenario waits for is polled with
//! a deadline.

use super::*;
use shm_common::layout::{off, sem};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Bound on "the survivor notices the fault and exits": a hang check, not a benchmark.
pub const DETECT: Duration = Duration::from_secs(5);

/// Which process a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Writer,
    Reader,
}

/// Where in the stream's life a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// Before the victim has attached (reader waiting for a writer; writer just spawned).
    BeforeAttach,
    /// While data flows.
    MidStream,
    /// Writer blocked on a full ring (reader stopped, or not started: `variant`).
    FullRing,
    /// Reader blocked on an empty ring (writer waiting for input).
    EmptyRing,
    /// Around the FINAL frame.
    EndOfStream,
}

/// A fault and the stream it hits.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub side: Side,
    pub point: Point,
    pub sig: Signal,
    pub slots: u32,
    pub slot_size: u32,
    pub len: usize,
    pub seed: u64,
    /// Extra delay before the signal at racy points (microseconds).
    pub delay_us: u64,
    /// FullRing: the reader has not started (instead of being stopped).
    pub variant: bool,
}

/// What a scenario observed.
#[derive(Debug, Default)]
pub struct Report {
    /// How the victim ended ("signal 9", "exit 130", "exit 0").
    pub victim: String,
    /// The survivor's exit code, when one had to notice the fault.
    pub survivor: Option<i32>,
    /// Time from the fault to the survivor's exit.
    pub detect: Option<Duration>,
    /// Bytes the reader(s) delivered for the faulted stream.
    pub delivered: usize,
    /// Objects were left (nobody survived) and a new pair recovered the key.
    pub recovered: bool,
    /// The fault arrived too late (the stream had already completed).
    pub missed: bool,
}

/// `--slots N --slot-size B`.
pub fn geo_args(slots: u32, slot_size: u32) -> Vec<String> {
    vec![
        "--slots".into(),
        slots.to_string(),
        "--slot-size".into(),
        slot_size.to_string(),
    ]
}

/// Payload bytes per frame of a slot size.
pub fn payload(slot_size: u32) -> usize {
    slot_size as usize - shm_common::frame::FRAME_HEADER_SIZE
}

/// Checks the victim ended the way the signal says. Returns true when it had
/// finished normally instead (the fault missed), which only racy points allow.
fn check_victim(f: &Finished, sig: Signal, racy_start: bool, ctx: &str) -> bool {
    use std::os::unix::process::ExitStatusExt;
    assert!(
        !f.stderr.contains("panicked"),
        "CODE: {ctx}: victim panicked:\n{}",
        f.stderr
    );
    let by_signal = f.status.signal() == Some(sig as i32);
    let ok = match sig {
        Signal::SIGKILL => by_signal,
        // Before the handler is installed (the first milliseconds) the default
        // action still kills.
        _ => f.code() == Some(130) || (racy_start && by_signal),
    };
    if ok {
        return false;
    }
    assert_eq!(
        f.code(),
        Some(0),
        "CODE: {ctx}: victim ended with {}; stderr:\n{}",
        f.describe(),
        f.stderr
    );
    true
}

/// Checks a survivor: 0 with everything, or 4 (peer gone) with a prefix.
fn check_survivor(f: &Finished, data: &[u8], is_reader: bool, ctx: &str) {
    use std::os::unix::process::ExitStatusExt;
    assert!(
        f.status.signal().is_none(),
        "CODE: {ctx}: survivor died by signal {:?}",
        f.status.signal()
    );
    assert!(
        !f.stderr.contains("panicked"),
        "CODE: {ctx}: survivor panicked:\n{}",
        f.stderr
    );
    if is_reader {
        assert_prefix(&f.stdout, data, ctx);
    }
    match f.code() {
        Some(4) => assert!(
            f.stderr.contains("error:") && f.stderr.contains("hint:"),
            "CODE: {ctx}: exit 4 without an error line and a hint:\n{}",
            f.stderr
        ),
        Some(0) if is_reader => assert_all(&f.stdout, data, ctx),
        Some(0) => {}
        other => panic!(
            "CODE: {ctx}: survivor exit {other:?} (expected 4, or 0 after a complete stream); stderr:\n{}",
            f.stderr
        ),
    }
}

/// Waits for the survivor, which must exit within [`DETECT`] of `since`.
fn survivor_wait(p: Proc, since: Instant, ctx: &str) -> (Finished, Duration) {
    let f = p.wait_ctx(DETECT + Duration::from_secs(10), ctx);
    let took = since.elapsed();
    assert!(
        took <= DETECT,
        "SLOW: {ctx}: survivor took {took:?} to exit (bound {DETECT:?}); stderr:\n{}",
        f.stderr
    );
    (f, took)
}

/// A fresh writer+reader pair on the key: must deliver `len` bytes exactly, both exit
/// 0, and leave nothing. This is how a test proves a key left by a dead pair recovers.
pub fn assert_pair_recovers(k: &TestKey, len: usize, seed: u64) {
    let data = pseudo_random(len, seed);
    let reader = Proc::spawn(k.reader(), Stdio::null());
    let w = run_with_input(k.writer(), &data, TIMEOUT);
    let r = reader.wait(TIMEOUT);
    assert_ok(&w, "recovery writer");
    assert_ok(&r, "recovery reader");
    assert_all(&r.stdout, &data, "recovery pair");
    k.assert_clean();
}

/// After everyone exited: nothing may be left, except after a SIGKILL that left
/// nobody alive to clean up; then a new pair must recover the key and leave nothing.
fn check_leftovers(k: &TestKey, plan: &Plan, report: &mut Report, ctx: &str) {
    if k.in_ipcs() == (false, false) {
        return;
    }
    assert!(
        plan.sig == Signal::SIGKILL,
        "LEAK: {ctx}: objects left at {} after a clean {:?} exit: {:?}",
        k.arg(),
        plan.sig,
        k.in_ipcs()
    );
    let r = std::panic::catch_unwind(|| assert_pair_recovers(k, 50_000, plan.seed ^ 0x5eed));
    if let Err(e) = r {
        panic!(
            "LEAK: {ctx}: a new pair did not recover the key left by the dead pair: {}",
            panic_text(&*e)
        );
    }
    report.recovered = true;
}

/// The text of a caught panic.
pub fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// What every scenario needs: the key, the plan, its data and the writer's command.
struct Run<'a> {
    k: &'a TestKey,
    plan: &'a Plan,
    ctx: &'a str,
    data: Vec<u8>,
}

impl Run<'_> {
    fn writer(&self) -> std::process::Command {
        let mut c = self.k.writer();
        c.args(geo_args(self.plan.slots, self.plan.slot_size));
        c
    }
    fn consumed(&self) -> u64 {
        bytes_consumed(self.k.key)
    }
    fn sem(&self, member: u16) -> Option<u16> {
        sem_value(self.k.key, member)
    }
}

/// Runs one fault scenario with the real binaries and checks every promise.
pub fn run_fault(k: &TestKey, plan: &Plan) -> Report {
    let ctx = format!("{plan:?} key {}", k.arg());
    let run = Run {
        k,
        plan,
        ctx: &ctx,
        data: pseudo_random(plan.len.max(1), plan.seed),
    };
    let mut rep = match (plan.point, plan.side) {
        (Point::BeforeAttach, Side::Reader) => reader_before_attach(&run),
        (Point::BeforeAttach, Side::Writer) => writer_before_attach(&run),
        (Point::MidStream, victim) => mid_stream(&run, victim),
        (Point::FullRing, Side::Writer) if plan.variant => writer_on_full_ring_alone(&run),
        (Point::FullRing, victim) => full_ring(&run, victim),
        (Point::EmptyRing, victim) => empty_ring(&run, victim),
        (Point::EndOfStream, Side::Writer) => writer_at_end(&run),
        (Point::EndOfStream, Side::Reader) => reader_at_end(&run),
    };
    check_leftovers(k, plan, &mut rep, &ctx);
    rep
}

/// A reader waiting for its writer is signalled: it leaves nothing, prints nothing,
/// and the next pair on the key works.
fn reader_before_attach(run: &Run) -> Report {
    let (k, plan, ctx) = (run.k, run.plan, run.ctx);
    let mut rep = Report::default();
    let r = Proc::spawn(k.reader(), Stdio::null());
    std::thread::sleep(Duration::from_micros(plan.delay_us));
    send_sig(r.pid(), plan.sig);
    let f = r.wait_ctx(DETECT, ctx);
    rep.victim = f.describe();
    check_victim(&f, plan.sig, true, ctx);
    assert!(
        f.stdout.is_empty(),
        "TORN: {ctx}: a reader with no writer printed data"
    );
    assert_eq!(
        k.in_ipcs(),
        (false, false),
        "LEAK: {ctx}: a waiting reader left objects"
    );
    let r = Proc::spawn(k.reader(), Stdio::null());
    let w = run_with_input(run.writer(), &run.data, TIMEOUT);
    let rf = r.wait_ctx(TIMEOUT, ctx);
    assert_eq!(w.code(), Some(0), "CODE: {ctx}: next writer: {}", w.stderr);
    check_survivor(&rf, &run.data, true, ctx);
    assert_eq!(
        rf.code(),
        Some(0),
        "CODE: {ctx}: next reader: {}",
        rf.stderr
    );
    rep.delivered = rf.stdout.len();
    rep
}

/// Whether the session at the key has been opened (its set operated on: `sem_otime`
/// is set by the creator's first semop), so a waiting reader will join it.
fn joinable(k: &TestKey) -> bool {
    let Ok(Some(id)) = shm_common::semaphore::find(k.key) else {
        return false;
    };
    shm_common::semaphore::stat(k.key, id).is_ok_and(|st| st.otime != 0)
}

/// A writer signalled in its first milliseconds (before, while or just after it
/// creates the objects), with a reader already waiting: the reader, if it joined the
/// dead writer's session, reports it (exit 4); a new writer gets through either way,
/// recovering whatever the dead one left.
fn writer_before_attach(run: &Run) -> Report {
    let (k, plan, ctx) = (run.k, run.plan, run.ctx);
    let mut rep = Report::default();
    let mut r = Proc::spawn(k.reader(), Stdio::null());
    wait_until(TIMEOUT, "the reader to start waiting", || {
        r.pump();
        r.stderr_text().contains("waiting for a writer")
    });
    let mut w = Proc::spawn(run.writer(), Stdio::piped());
    // Its input stays open: an interrupted writer must not see an end of input.
    let hold = w.hold_stdin();
    std::thread::sleep(Duration::from_micros(plan.delay_us));
    send_sig(w.pid(), plan.sig);
    let t0 = Instant::now();
    let f = w.wait_ctx(DETECT, ctx);
    drop(hold);
    rep.victim = f.describe();
    check_victim(&f, plan.sig, true, ctx);
    // If the dead writer got as far as opening its session, the waiting reader joins
    // it (it looks every 100 ms) and must then report the writer gone. Wait for one
    // or the other instead of guessing how long that takes.
    let mut first = None;
    if joinable(k) {
        must(
            until(TIMEOUT, || {
                !r.running() || sem_value(k.key, sem::READERS).unwrap_or(0) > 0
            }),
            ctx,
            "the waiting reader to join the dead writer's session",
        );
        let (rf, took) = survivor_wait(r, t0, ctx);
        check_survivor(&rf, &run.data, true, ctx);
        assert_eq!(
            rf.code(),
            Some(4),
            "CODE: {ctx}: reader of a dead writer: {}",
            rf.stderr
        );
        rep.survivor = rf.code();
        rep.detect = Some(took);
        r = Proc::spawn(k.reader(), Stdio::null());
        first = Some(rf);
    }
    // A new writer must get through (recovering a half-made session if needed).
    let w2 = run_with_input(run.writer(), &run.data, TIMEOUT);
    let rf = r.wait_ctx(TIMEOUT, ctx);
    assert_eq!(
        w2.code(),
        Some(0),
        "CODE: {ctx}: next writer: {}",
        w2.stderr
    );
    assert_eq!(
        rf.code(),
        Some(0),
        "CODE: {ctx}: reader after recovery: {}",
        rf.stderr
    );
    assert_all(&rf.stdout, &run.data, ctx);
    rep.delivered = first.map_or(rf.stdout.len(), |f| f.stdout.len());
    rep
}

/// A fault while data flows. The writer's input is held open until the fault has
/// been sent, so the stream cannot have completed before it.
fn mid_stream(run: &Run, victim: Side) -> Report {
    let (k, plan, ctx) = (run.k, run.plan, run.ctx);
    let mut rep = Report::default();
    let half = run.data.len() / 2;
    let mut w = Proc::spawn(run.writer(), Stdio::piped());
    let r = Proc::spawn(k.reader(), Stdio::null());
    let first = run.data[..half].to_vec();
    // The first half in the background; the pipe stays open after it.
    let mut stdin = w.hold_stdin().expect("piped stdin");
    let (fed_tx, fed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::Write;
        let _ = fed_tx.send(stdin.write_all(&first).map(|()| stdin));
    });
    let target = (half as u64 / 2).max(1);
    let mut w = Some(w);
    let mut r = Some(r);
    let flowing = until(TIMEOUT, || {
        run.consumed() >= target
            || !w.as_mut().is_some_and(|p| p.running())
            || !r.as_mut().is_some_and(|p| p.running())
    });
    must(flowing, ctx, "the stream to start flowing");
    let (vp, sp) = match victim {
        Side::Writer => (w.take(), r.take()),
        Side::Reader => (r.take(), w.take()),
    };
    let (vp, mut sp) = (vp.expect("victim"), sp.expect("survivor"));
    send_sig(vp.pid(), plan.sig);
    let t0 = Instant::now();
    let vf = vp.wait_ctx(DETECT, ctx);
    rep.victim = vf.describe();
    rep.missed = check_victim(&vf, plan.sig, false, ctx);
    // Now the rest of the input, then its end: a surviving writer needs them to get
    // to the point where it must notice its reader is gone (a full ring, or the end).
    // (The feed ends with the writer: it was read, or its reader is gone.)
    let stdin = fed.recv_timeout(TIMEOUT).ok().and_then(Result::ok);
    if victim == Side::Reader {
        if let Some(mut stdin) = stdin {
            let rest = run.data[half..].to_vec();
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = stdin.write_all(&rest);
            });
        }
    } else {
        drop(stdin);
    }
    sp.close_stdin();
    let (sf, took) = survivor_wait(sp, t0, ctx);
    check_survivor(&sf, &run.data, victim == Side::Writer, ctx);
    let rf = match victim {
        Side::Writer => &sf,
        Side::Reader => &vf,
    };
    assert_prefix(&rf.stdout, &run.data, ctx);
    assert_eq!(
        sf.code(),
        Some(4),
        "CODE: {ctx}: the survivor of a fault mid-stream: {}",
        sf.stderr
    );
    rep.survivor = sf.code();
    rep.detect = Some(took);
    rep.delivered = rf.stdout.len();
    rep
}

/// A writer blocked on a full ring before any reader came.
fn writer_on_full_ring_alone(run: &Run) -> Report {
    let (k, plan, ctx) = (run.k, run.plan, run.ctx);
    let mut rep = Report::default();
    let mut w = Proc::spawn_fed(run.writer(), run.data.clone());
    must(
        until(TIMEOUT, || {
            run.sem(sem::FREE) == Some(0) && proc_state(w.pid()) == Some('S')
        }),
        ctx,
        "the writer to block on the full ring",
    );
    let _ = w.running();
    send_sig(w.pid(), plan.sig);
    let wf = w.wait_ctx(DETECT, ctx);
    rep.victim = wf.describe();
    check_victim(&wf, plan.sig, false, ctx);
    if plan.sig == Signal::SIGKILL {
        // The frames it published are still there: a reader takes them, then finds
        // the writer dead.
        let t0 = Instant::now();
        let r = Proc::spawn(k.reader(), Stdio::null());
        let (rf, took) = survivor_wait(r, t0, ctx);
        check_survivor(&rf, &run.data, true, ctx);
        assert_eq!(
            rf.code(),
            Some(4),
            "CODE: {ctx}: reader after a dead writer: {}",
            rf.stderr
        );
        rep.survivor = rf.code();
        rep.detect = Some(took);
        rep.delivered = rf.stdout.len();
    }
    rep
}

/// The writer waits for input; the reader joins and blocks on the empty ring; it is
/// stopped; only then does the input flow, and fill the ring. Then the fault.
fn full_ring(run: &Run, victim: Side) -> Report {
    let (k, plan, ctx) = (run.k, run.plan, run.ctx);
    let mut rep = Report::default();
    let mut w = Proc::spawn(run.writer(), Stdio::piped());
    let r = Proc::spawn(k.reader(), Stdio::null());
    let joined = until(TIMEOUT, || {
        run.sem(sem::READERS) == Some(1) && proc_state(r.pid()) == Some('S')
    });
    if !joined {
        let sems = sem_values(k.key);
        let (rs, ws) = (proc_state(r.pid()), proc_state(w.pid()));
        r.signal(Signal::SIGKILL);
        let rf = r.wait(TIMEOUT);
        panic!(
            "HANG: {ctx}: timed out waiting for the reader to join and block \
             (semaphores {sems:?}, reader state {rs:?}, writer state {ws:?}, \
             reader stderr: {:?})",
            rf.stderr
        );
    }
    r.signal(Signal::SIGSTOP);
    must(
        until(TIMEOUT, || proc_state(r.pid()) == Some('T')),
        ctx,
        "the reader to stop",
    );
    w.feed_in_background(run.data.clone());
    must(
        until(TIMEOUT, || {
            run.sem(sem::FREE) == Some(0) && proc_state(w.pid()) == Some('S')
        }),
        ctx,
        "the writer to block on the full ring",
    );
    let t0;
    let (vf, sf) = match victim {
        Side::Writer => {
            send_sig(w.pid(), plan.sig);
            t0 = Instant::now();
            let wf = w.wait_ctx(DETECT, ctx);
            r.signal(Signal::SIGCONT);
            (wf, survivor_wait(r, t0, ctx))
        }
        Side::Reader => {
            send_sig(r.pid(), plan.sig);
            r.signal(Signal::SIGCONT);
            t0 = Instant::now();
            let rf = r.wait_ctx(DETECT, ctx);
            (rf, survivor_wait(w, t0, ctx))
        }
    };
    rep.victim = vf.describe();
    check_victim(&vf, plan.sig, false, ctx);
    let (sf, took) = sf;
    check_survivor(&sf, &run.data, victim == Side::Writer, ctx);
    // A stopped reader sent SIGINT/SIGTERM acts on it only after SIGCONT, and may
    // legitimately drain the rest of the stream first.
    if plan.sig == Signal::SIGKILL || victim == Side::Writer {
        assert_eq!(
            sf.code(),
            Some(4),
            "CODE: {ctx}: survivor of a blocked pair: {}",
            sf.stderr
        );
    }
    if victim == Side::Reader {
        assert_prefix(&vf.stdout, &run.data, ctx);
    }
    rep.survivor = sf.code();
    rep.detect = Some(took);
    rep.delivered = if victim == Side::Writer {
        sf.stdout.len()
    } else {
        vf.stdout.len()
    };
    rep
}

/// The reader has drained the first half and sleeps on the empty ring; the writer
/// waits for more input. Then the fault.
fn empty_ring(run: &Run, victim: Side) -> Report {
    let (k, plan, ctx) = (run.k, run.plan, run.ctx);
    let mut rep = Report::default();
    let mut w = Proc::spawn(run.writer(), Stdio::piped());
    let mut r = Proc::spawn(k.reader(), Stdio::null());
    let chunk = (run.data.len() / 2).max(1);
    w.feed(&run.data[..chunk]);
    // Taken (the header's count), written out (what we received: a reader asleep in
    // write(2) on its stdout is in state S too), and asleep with the ring empty.
    must(
        until(TIMEOUT, || {
            r.pump();
            run.consumed() == chunk as u64
                && r.out.len() == chunk
                && run.sem(sem::FILLED) == Some(0)
                && proc_state(r.pid()) == Some('S')
        }),
        ctx,
        "the reader to drain the first chunk and block on the empty ring",
    );
    match victim {
        Side::Writer => {
            // Input stays open (not at its end) while the writer is signalled.
            let hold = w.hold_stdin();
            send_sig(w.pid(), plan.sig);
            let t0 = Instant::now();
            let wf = w.wait_ctx(DETECT, ctx);
            drop(hold);
            rep.victim = wf.describe();
            check_victim(&wf, plan.sig, false, ctx);
            let (rf, took) = survivor_wait(r, t0, ctx);
            check_survivor(&rf, &run.data, true, ctx);
            assert_eq!(
                rf.code(),
                Some(4),
                "CODE: {ctx}: reader of a dead writer: {}",
                rf.stderr
            );
            assert_eq!(
                rf.stdout.len(),
                chunk,
                "TORN: {ctx}: the reader had taken {chunk} bytes but delivered {}",
                rf.stdout.len()
            );
            rep.survivor = rf.code();
            rep.detect = Some(took);
            rep.delivered = rf.stdout.len();
        }
        Side::Reader => {
            send_sig(r.pid(), plan.sig);
            let rf = r.wait_ctx(DETECT, ctx);
            rep.victim = rf.describe();
            check_victim(&rf, plan.sig, false, ctx);
            assert_prefix(&rf.stdout, &run.data, ctx);
            assert_eq!(
                rf.stdout.len(),
                chunk,
                "TORN: {ctx}: the reader had taken {chunk} bytes but delivered {}",
                rf.stdout.len()
            );
            // The writer notices when it next needs the reader: at end of input.
            let t0 = Instant::now();
            w.feed_in_background(run.data[chunk..].to_vec());
            let (wf, took) = survivor_wait(w, t0, ctx);
            check_survivor(&wf, &run.data, false, ctx);
            assert_eq!(
                wf.code(),
                Some(4),
                "CODE: {ctx}: writer after its reader died: {}",
                wf.stderr
            );
            rep.survivor = wf.code();
            rep.detect = Some(took);
            rep.delivered = rf.stdout.len();
        }
    }
    rep
}

/// The whole stream and its FINAL frame are in the ring and the writer waits for a
/// reader. The stream comes from a regular file, which the writer reads in whole
/// slots, so "fits in the ring" is a fact and not a hope about pipe read sizes.
fn writer_at_end(run: &Run) -> Report {
    let (k, plan, ctx) = (run.k, run.plan, run.ctx);
    let mut rep = Report::default();
    let input = TempFile::new(&run.data);
    let w = Proc::spawn(run.writer(), Stdio::from(input.open()));
    let state = || header_u32(k.key, off::STATE);
    must(
        until(TIMEOUT, || state() == Some(2)),
        ctx,
        "the writer to publish FINAL",
    );
    std::thread::sleep(Duration::from_micros(plan.delay_us));
    send_sig(w.pid(), plan.sig);
    let wf = w.wait_ctx(DETECT, ctx);
    rep.victim = wf.describe();
    check_victim(&wf, plan.sig, false, ctx);
    if plan.sig == Signal::SIGKILL {
        // A complete stream is in the ring: a reader gets all of it.
        let t0 = Instant::now();
        let r = Proc::spawn(k.reader(), Stdio::null());
        let (rf, took) = survivor_wait(r, t0, ctx);
        check_survivor(&rf, &run.data, true, ctx);
        assert_all(&rf.stdout, &run.data, ctx);
        rep.survivor = rf.code();
        rep.detect = Some(took);
        rep.delivered = rf.stdout.len();
    } else {
        assert!(
            wf.stderr.contains("interrupted"),
            "CODE: {ctx}: {}",
            wf.stderr
        );
    }
    rep
}

/// The reader is signalled around the end of the stream (racy on purpose: it may
/// have finished already, then everything must have arrived).
fn reader_at_end(run: &Run) -> Report {
    let (k, plan, ctx) = (run.k, run.plan, run.ctx);
    let mut rep = Report::default();
    let w = Proc::spawn_fed(run.writer(), run.data.clone());
    let mut r = Proc::spawn(k.reader(), Stdio::null());
    must(
        until(TIMEOUT, || run.sem(sem::READERS) == Some(1) || !r.running()),
        ctx,
        "the reader to join",
    );
    std::thread::sleep(Duration::from_micros(plan.delay_us));
    send_sig(r.pid(), plan.sig);
    let t0 = Instant::now();
    let rf = r.wait_ctx(DETECT, ctx);
    rep.victim = rf.describe();
    rep.missed = check_victim(&rf, plan.sig, false, ctx);
    assert_prefix(&rf.stdout, &run.data, ctx);
    if rep.missed {
        assert_all(&rf.stdout, &run.data, ctx);
    }
    let (wf, took) = survivor_wait(w, t0, ctx);
    check_survivor(&wf, &run.data, false, ctx);
    rep.survivor = wf.code();
    rep.detect = Some(took);
    rep.delivered = rf.stdout.len();
    rep
}

/// SIGSTOP one side mid-stream for `pause`, then SIGCONT: the other side must wait
/// (saying so when it is the one blocked), never declare it dead, and the stream must
/// complete exactly. Returns the stderr of the side that waited.
pub fn run_stop(
    k: &TestKey,
    side: Side,
    slots: u32,
    slot_size: u32,
    len: usize,
    seed: u64,
    pause: Duration,
) -> String {
    let ctx = format!(
        "SIGSTOP {side:?} slots {slots} slot_size {slot_size} len {len} seed {seed} key {}",
        k.arg()
    );
    let ctx = ctx.as_str();
    let data = pseudo_random(len.max(1), seed);
    let mut w = {
        let mut c = k.writer();
        c.args(geo_args(slots, slot_size));
        Proc::spawn(c, Stdio::piped())
    };
    let mut r = Proc::spawn(k.reader(), Stdio::null());
    let half = data.len() / 2;
    w.feed(&data[..half]);
    must(
        until(TIMEOUT, || {
            bytes_consumed(k.key) == half as u64 || !w.running() || !r.running()
        }),
        ctx,
        "the first half to arrive",
    );
    let victim_pid = match side {
        Side::Writer => w.pid(),
        Side::Reader => r.pid(),
    };
    send_sig(victim_pid, Signal::SIGSTOP);
    if side == Side::Reader {
        // Make the writer block on the full ring behind the stopped reader.
        w.feed_in_background(data[half..].to_vec());
    }
    std::thread::sleep(pause);
    let other_running = match side {
        Side::Writer => r.running(),
        Side::Reader => w.running(),
    };
    // A stopped reader keeps a writer waiting whenever the rest does not fit in the
    // ring in whole frames (in shorter frames it fits even less).
    let must_wait = side == Side::Writer || data.len() - half > slots as usize * payload(slot_size);
    assert!(
        other_running || !must_wait,
        "CODE: {ctx}: the peer of a stopped process gave up within {pause:?}"
    );
    send_sig(victim_pid, Signal::SIGCONT);
    if side == Side::Writer {
        w.feed_in_background(data[half..].to_vec());
    }
    let wf = w.wait_ctx(TIMEOUT, ctx);
    let rf = r.wait_ctx(TIMEOUT, ctx);
    assert_eq!(wf.code(), Some(0), "CODE: {ctx}: writer: {}", wf.stderr);
    assert_eq!(rf.code(), Some(0), "CODE: {ctx}: reader: {}", rf.stderr);
    assert_all(&rf.stdout, &data, ctx);
    assert_eq!(k.in_ipcs(), (false, false), "LEAK: {ctx}: objects left");
    match side {
        Side::Writer => rf.stderr,
        Side::Reader => wf.stderr,
    }
}
