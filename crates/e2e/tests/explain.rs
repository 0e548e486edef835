//! `--explain` (issue 6, part 1): the narration must be *correct*, not merely present.
//!
//! Each test runs the real binaries with `--explain` and checks what they narrate
//! against what the kernel says happened:
//! - the ids in `semget(...) = semid M` / `shmget(...) = shmid N` are the ones `ipcs`
//!   lists for the key, and the `shmat` address is where `/proc/PID/maps` shows the
//!   segment mapped (its inode column is the shmid);
//! - flags are spelled as in C (`IPC_CREAT|IPC_EXCL|0600`);
//! - the process that removes the objects narrates `semctl(M, 0, IPC_RMID)` and then
//!   `shmctl(N, IPC_RMID, NULL)`, and says so in its summary;
//! - a long stream is summarised (a bounded number of lines) and the summaries count
//!   every call that was not narrated in full;
//! - narration goes to stderr only: stdout stays byte-identical to the input;
//! - where `strace` is installed, the narrated calls are compared call for call (ids,
//!   arguments, flags, results, order) with the system calls `strace` records.
mod support;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

/// Member names of the semaphore set, in index order (PROTOCOL.md §4): the names the
/// narration uses, to map them to strace's member numbers.
const MEMBERS: &[&str] = shm_common::layout::sem::NAMES;

/// The narrated calls of `who` ("writer"/"reader"): each `[who] CALL = RESULT // why`
/// line as `CALL = RESULT` (summary lines `[who] ... ` are left out).
fn narrated(stderr: &str, who: &str) -> Vec<String> {
    let prefix = format!("[{who}] ");
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .filter(|l| !l.starts_with("..."))
        .map(|l| l.split_once("    // ").map_or(l, |(c, _)| c).to_string())
        .collect()
}

/// The summary lines of `who` (`[who] ... `).
fn summaries(stderr: &str, who: &str) -> Vec<String> {
    let prefix = format!("[{who}] ... ");
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .map(str::to_string)
        .collect()
}

/// The result of the first narrated call that starts with `call_prefix`.
fn result_of(calls: &[String], call_prefix: &str) -> Option<String> {
    calls
        .iter()
        .find(|c| c.starts_with(call_prefix))
        .and_then(|c| c.split_once(") = "))
        .map(|(_, r)| r.to_string())
}

/// Position of the first narrated call equal to `line`.
fn position(calls: &[String], line: &str) -> Option<usize> {
    calls.iter().position(|c| c == line)
}

/// The id after `semid `/`shmid ` in a result such as `semid 65586`.
fn id_in(result: &str, word: &str) -> i64 {
    result
        .strip_prefix(word)
        .and_then(|r| r.trim().parse().ok())
        .unwrap_or_else(|| panic!("expected `{word} N`, got {result:?}"))
}

/// The `ipcs -m` (`flag = "-m"`) or `ipcs -s` row at the key, split into columns.
fn ipcs_row(k: &TestKey, flag: &str) -> Option<Vec<String>> {
    let out = Command::new("ipcs").arg(flag).output().expect("ipcs");
    let key = k.arg();
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let cols: Vec<String> = l.split_whitespace().map(str::to_string).collect();
        (cols.first() == Some(&key)).then_some(cols)
    })
}

/// The line of `/proc/PID/maps` that maps the System V segment of the key
/// (`/SYSV7e......`): (start address, inode = shmid).
fn mapping(pid: i32, k: &TestKey) -> Option<(String, i64)> {
    let name = format!("/SYSV{:08x}", k.key.raw() as u32);
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    maps.lines().find(|l| l.contains(&name)).map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        let start = cols[0].split('-').next().unwrap_or("");
        (
            format!("0x{}", start.trim_start_matches('0')),
            cols[4].parse().unwrap_or(-1),
        )
    })
}

/// Checks the creator's narration: `semget`/`shmget` with C flags, the ids they
/// returned, and that every later call names those ids. Returns (semid, shmid).
fn check_creation(calls: &[String], k: &TestKey, size: u64, mode: &str) -> (i64, i64) {
    let key = k.arg();
    let sem_call = format!("semget({key}, 9, IPC_CREAT|IPC_EXCL|{mode})");
    let shm_call = format!("shmget({key}, {size}, IPC_CREAT|IPC_EXCL|{mode})");
    let semid = id_in(
        &result_of(calls, &sem_call).unwrap_or_else(|| panic!("no `{sem_call}` in {calls:#?}")),
        "semid",
    );
    let shmid = id_in(
        &result_of(calls, &shm_call).unwrap_or_else(|| panic!("no `{shm_call}` in {calls:#?}")),
        "shmid",
    );
    check_ids(calls, semid, shmid);
    (semid, shmid)
}

/// Every narrated call on the set names `semid`, every call on the segment `shmid`,
/// and `shmdt` detaches the address `shmat` returned.
fn check_ids(calls: &[String], semid: i64, shmid: i64) {
    let mut attached = None;
    for c in calls {
        let (name, rest) = c.split_once('(').expect("call(...)");
        let first = rest.split([',', ')']).next().unwrap_or("");
        match name {
            "semop" | "semtimedop" | "semctl" => {
                assert_eq!(first, semid.to_string(), "wrong semid in `{c}`")
            }
            "shmat" | "shmctl" => assert_eq!(first, shmid.to_string(), "wrong shmid in `{c}`"),
            _ => {}
        }
        if name == "shmat" {
            attached = c.split_once(") = ").map(|(_, a)| a.to_string());
        }
        if name == "shmdt" {
            let a = attached.as_deref().expect("shmdt before shmat");
            assert_eq!(c, &format!("shmdt({a}) = 0"), "shmdt of another address");
        }
    }
}

/// The remover narrates `semctl(M, 0, IPC_RMID)` then `shmctl(N, IPC_RMID, NULL)`
/// (the set first: that wakes any sleeper with EIDRM), both succeeding.
fn check_removal(calls: &[String], semid: i64, shmid: i64) {
    let sem = position(calls, &format!("semctl({semid}, 0, IPC_RMID) = 0"))
        .unwrap_or_else(|| panic!("no semctl({semid}, 0, IPC_RMID) = 0 in {calls:#?}"));
    let shm = position(calls, &format!("shmctl({shmid}, IPC_RMID, NULL) = 0"))
        .unwrap_or_else(|| panic!("no shmctl({shmid}, IPC_RMID, NULL) = 0 in {calls:#?}"));
    assert!(sem < shm, "the set must be removed before the segment");
}

/// `writer --explain --persist`, then `ipcs` while the objects wait in the kernel,
/// then `reader --explain`, which must narrate their removal.
#[test]
fn persist_ids_and_flags_match_ipcs_and_the_reader_narrates_removal() {
    let k = TestKey::new();
    let input = b"first line\nsecond line\n";
    let mut w = k.writer();
    w.args([
        "--explain",
        "--persist",
        "--slots",
        "8",
        "--slot-size",
        "4K",
    ]);
    let wf = run_with_input(w, input, SOON);
    assert_eq!(wf.code(), Some(0), "writer: {}", wf.stderr);
    let wcalls = narrated(&wf.stderr, "writer");
    let (semid, shmid) = check_creation(&wcalls, &k, 4096 + 8 * 4096, "0600");

    // The objects are in the kernel now, with exactly the narrated ids.
    let shm = ipcs_row(&k, "-m").expect("ipcs -m lists the segment");
    assert_eq!(shm[1], shmid.to_string(), "ipcs -m shmid: {shm:?}");
    assert_eq!(shm[3], "600", "ipcs -m perms: {shm:?}");
    assert_eq!(
        shm[4],
        (4096 + 8 * 4096).to_string(),
        "ipcs -m bytes: {shm:?}"
    );
    assert_eq!(shm[5], "0", "nobody is attached: {shm:?}");
    let sem = ipcs_row(&k, "-s").expect("ipcs -s lists the set");
    assert_eq!(sem[1], semid.to_string(), "ipcs -s semid: {sem:?}");
    assert_eq!(sem[3], "600", "ipcs -s perms: {sem:?}");
    assert_eq!(sem[4], MEMBERS.len().to_string(), "ipcs -s nsems: {sem:?}");
    // The human note agrees with the narration.
    assert!(
        wf.stderr
            .contains(&format!("(shmid {shmid}, semid {semid})")),
        "{}",
        wf.stderr
    );
    // Initialisation as PROTOCOL.md §6 says: the signature right after semget, then
    // (segment and header) SETALL with the initial values, then the opening semop.
    let signature = position(
        &wcalls,
        &format!(
            "semctl({semid}, 0, SETALL, [FREE=21334, FILLED=21320, WRITE_MUTEX=19794, \
             READ_MUTEX=20039, HEAD={}, TAIL=0, WRITERS=0, READERS=0, ENDED=0]) = 0",
            shm_common::layout::VERSION
        ),
    )
    .expect("signature SETALL narrated");
    let setall = position(
        &wcalls,
        &format!(
            "semctl({semid}, 0, SETALL, [FREE=8, FILLED=0, WRITE_MUTEX=0, READ_MUTEX=0, \
             HEAD=0, TAIL=0, WRITERS=0, READERS=0, ENDED=0]) = 0"
        ),
    )
    .expect("SETALL narrated");
    let open = position(
        &wcalls,
        &format!(
            "semop({semid}, [{{2 /* WRITE_MUTEX */, +1, IPC_NOWAIT}}, \
             {{3 /* READ_MUTEX */, +1, IPC_NOWAIT}}, {{6 /* WRITERS */, +1, SEM_UNDO|IPC_NOWAIT}}]) = 0"
        ),
    )
    .expect("opening semop narrated");
    assert!(signature < setall && setall < open);
    // The writer left them for the reader: it narrates no removal.
    assert!(
        !wcalls.iter().any(|c| c.contains("IPC_RMID")),
        "{wcalls:#?}"
    );

    let mut r = k.reader();
    r.arg("--explain");
    let rf = run_with_input(r, b"", SOON);
    assert_eq!(rf.code(), Some(0), "reader: {}", rf.stderr);
    assert_eq!(rf.stdout, input, "reader stdout is exactly the input");
    let rcalls = narrated(&rf.stderr, "reader");
    let key = k.arg();
    assert_eq!(
        result_of(&rcalls, &format!("semget({key}, 0, 0)")),
        Some(format!("semid {semid}"))
    );
    assert_eq!(
        result_of(&rcalls, &format!("shmget({key}, 0, 0)")),
        Some(format!("shmid {shmid}"))
    );
    check_ids(&rcalls, semid, shmid);
    check_removal(&rcalls, semid, shmid);
    assert!(rf.stderr.contains("removed the segment and semaphore set"));
    k.assert_clean();
}

/// `--mode 640` is narrated as `0640` and is what `ipcs` shows.
#[test]
fn mode_is_narrated_in_octal_as_created() {
    let k = TestKey::new();
    let mut w = k.writer();
    w.args(["--explain", "--persist", "--mode", "640", "--slots", "4"]);
    w.args(["--slot-size", "4K"]);
    let wf = run_with_input(w, b"x\n", SOON);
    assert_eq!(wf.code(), Some(0), "writer: {}", wf.stderr);
    let calls = narrated(&wf.stderr, "writer");
    let (semid, shmid) = check_creation(&calls, &k, 4096 + 4 * 4096, "0640");
    assert_eq!(ipcs_row(&k, "-m").expect("segment")[3], "640");
    assert_eq!(ipcs_row(&k, "-s").expect("set")[3], "640");
    let mut r = k.reader();
    r.arg("--explain");
    let rf = run_with_input(r, b"", SOON);
    assert_eq!(rf.code(), Some(0), "reader: {}", rf.stderr);
    assert_eq!(rf.stdout, b"x\n");
    check_removal(&narrated(&rf.stderr, "reader"), semid, shmid);
    k.assert_clean();
}

/// A live session: while both run, the narrated ids are those of `ipcs` (attach count
/// 2) and each process's narrated `shmat` address is where its `/proc/PID/maps` has
/// the segment. At the end exactly one of them narrates the removal, and it is the
/// one whose summary says it removed the objects.
#[test]
fn live_session_ids_and_attach_addresses_match_the_kernel() {
    let k = TestKey::new();
    let mut w = k.writer();
    w.arg("--explain");
    let mut writer = Proc::spawn(w, Stdio::piped());
    writer.wait_stderr(SOON, "shmat(");
    let mut r = k.reader();
    r.arg("--explain");
    let mut reader = Proc::spawn(r, Stdio::null());
    reader.wait_stderr(SOON, "joined key");

    let wcalls = narrated(&writer.stderr_text(), "writer");
    let default_size = shm_common::layout::Geometry::new(
        shm_common::layout::DEFAULT_SLOTS,
        shm_common::layout::DEFAULT_SLOT_SIZE,
    )
    .map(|g| g.segment_size())
    .expect("the default geometry is valid");
    let (semid, shmid) = check_creation(&wcalls, &k, default_size, "0600");
    let rcalls = narrated(&reader.stderr_text(), "reader");
    assert_eq!(
        result_of(&rcalls, &format!("shmget({}, 0, 0)", k.arg())),
        Some(format!("shmid {shmid}"))
    );
    assert_eq!(
        result_of(&rcalls, &format!("semget({}, 0, 0)", k.arg())),
        Some(format!("semid {semid}"))
    );
    let shm = ipcs_row(&k, "-m").expect("segment listed");
    assert_eq!(
        (shm[1].as_str(), shm[5].as_str()),
        (&*shmid.to_string(), "2")
    );
    assert_eq!(
        ipcs_row(&k, "-s").expect("set listed")[1],
        semid.to_string()
    );
    for (who, pid, calls) in [
        ("writer", writer.pid(), &wcalls),
        ("reader", reader.pid(), &rcalls),
    ] {
        let addr = result_of(calls, &format!("shmat({shmid}, NULL, 0)"))
            .unwrap_or_else(|| panic!("{who}: no shmat narrated"));
        let (start, inode) = mapping(pid, &k).unwrap_or_else(|| panic!("{who}: not mapped"));
        assert_eq!(
            addr, start,
            "{who}: narrated shmat address vs /proc/{pid}/maps"
        );
        assert_eq!(inode, shmid, "{who}: mapped segment is shmid {inode}");
    }

    let data = pseudo_random(300_000, 6);
    writer.feed_in_background(data.clone());
    let rf = reader.wait(SOON);
    let wf = writer.wait(SOON);
    assert_eq!(wf.code(), Some(0), "writer: {}", wf.stderr);
    assert_eq!(rf.code(), Some(0), "reader: {}", rf.stderr);
    assert!(rf.stdout == data, "reader stdout differs from the input");
    let wcalls = narrated(&wf.stderr, "writer");
    let rcalls = narrated(&rf.stderr, "reader");
    check_ids(&wcalls, semid, shmid);
    check_ids(&rcalls, semid, shmid);
    let removers: Vec<(&str, &Finished, &Vec<String>)> =
        [("writer", &wf, &wcalls), ("reader", &rf, &rcalls)]
            .into_iter()
            .filter(|(_, _, c)| c.iter().any(|c| c.contains("IPC_RMID")))
            .collect();
    assert_eq!(removers.len(), 1, "exactly one process removes the objects");
    let (who, f, calls) = removers[0];
    check_removal(calls, semid, shmid);
    assert!(
        f.stderr.contains("removed the segment and semaphore set"),
        "{who} narrated the removal but its summary does not say so: {}",
        f.stderr
    );
    k.assert_clean();
}

/// The sum of the System V call counts in the narrator's own lines: `... not
/// shown: N more calls (...)` and `... waiting: ...: N more calls in T s` (copies,
/// `... and N more memcpy like these`, are no System V calls and not counted).
fn summarised_calls(lines: &[String]) -> u64 {
    lines
        .iter()
        .filter_map(|l| {
            let rest = l.split_once(" more calls")?.0;
            rest.rsplit(' ').next()?.parse::<u64>().ok()
        })
        .sum()
}

/// 20 MB through 4 KiB slots (thousands of frames, thousands of semops): each side
/// narrates a bounded number of lines, says it is summarising ("steady state"), and
/// the summaries account for calls it did not narrate in full. The data is intact.
#[test]
fn long_stream_is_summarised_not_one_line_per_message() {
    let k = TestKey::new();
    let len = 20 << 20;
    let input = big_temp_file(len, 20);
    let output = temp_path();
    let mut r = k.reader();
    r.arg("--explain");
    let reader = Proc::spawn_to_file(
        r,
        Stdio::null(),
        std::fs::File::create(&output.path).expect("create output"),
    );
    let mut w = k.writer();
    w.args(["--explain", "--slot-size", "4K"]);
    let writer = Proc::spawn(
        w,
        Stdio::from(std::fs::File::open(&input.path).expect("open input")),
    );
    let wf = writer.wait(LONG);
    let rf = reader.wait(LONG);
    assert_eq!(wf.code(), Some(0), "writer: {}", wf.stderr);
    assert_eq!(rf.code(), Some(0), "reader: {}", rf.stderr);
    assert_eq!(files_equal(&input.path, &output.path), Ok(len));
    let frames = len / (4096 - 32);
    for (who, f) in [("writer", &wf), ("reader", &rf)] {
        let lines = f.stderr.lines().count();
        let calls = narrated(&f.stderr, who);
        let sums = summaries(&f.stderr, who);
        assert!(
            lines < 200,
            "{who}: {lines} lines of narration for {frames} frames:\n{}",
            f.stderr
        );
        assert!(
            sums.iter().any(|s| s.starts_with("steady state")),
            "{who}: no steady-state line:\n{}",
            f.stderr
        );
        assert!(
            summarised_calls(&sums) > 0,
            "{who}: the calls after the first few are never counted:\n{}",
            f.stderr
        );
        // Creation/lookup and the end are still narrated in full.
        assert!(calls.iter().any(|c| c.starts_with("semget(")), "{who}");
        assert!(calls.iter().any(|c| c.starts_with("shmdt(")), "{who}");
    }
    k.assert_clean();
}

/// Narration is on stderr only: with `-q` the reader's stderr is nothing but
/// narration, and its stdout is byte for byte the input (binary data included).
#[test]
fn narration_goes_to_stderr_never_into_the_data() {
    let k = TestKey::new();
    let mut data =
        b"[reader] semop(1, [{FILLED, -1, 0}]) = 0    // looks like narration\n".to_vec();
    data.extend(pseudo_random(1 << 20, 7));
    let mut r = k.reader();
    r.args(["--explain", "-q"]);
    let reader = Proc::spawn(r, Stdio::null());
    let mut w = k.writer();
    w.args(["--explain", "-q", "--slot-size", "4K", "--slots", "16"]);
    let wf = run_with_input(w, &data, LONG);
    let rf = reader.wait(LONG);
    assert_eq!(wf.code(), Some(0), "writer: {}", wf.stderr);
    assert_eq!(rf.code(), Some(0), "reader: {}", rf.stderr);
    assert!(rf.stdout == data, "reader stdout is not the input");
    assert!(wf.stdout.is_empty(), "the writer prints nothing on stdout");
    for (who, f) in [("writer", &wf), ("reader", &rf)] {
        let prefix = format!("[{who}] ");
        assert!(f.stderr.lines().count() > 5, "{who}: no narration");
        for l in f.stderr.lines() {
            assert!(
                l.starts_with(&prefix),
                "{who}: not narration with -q: {l:?}"
            );
        }
    }
    k.assert_clean();
}

// ---------------------------------------------------------------------------
// Against strace: the narration, call for call.
// ---------------------------------------------------------------------------

/// `strace -f -e trace=ipc -o LOG BIN --key K ARGS...`.
fn traced(bin_name: &str, k: &TestKey, log: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new("strace");
    c.args(["-f", "-qq", "-e", "trace=ipc", "-o"])
        .arg(log)
        .arg(bin(bin_name))
        .arg("--key")
        .arg(k.arg())
        .args(args);
    c
}

/// `0600`, `000`, `0` → canonical octal text (`0600`, `0`).
fn canon_flags(f: &str) -> String {
    f.split('|')
        .map(|p| match u32::from_str_radix(p.trim(), 8) {
            Ok(0) => "0".to_string(),
            Ok(m) if p.trim().starts_with('0') => format!("0{m:o}"),
            _ => p.trim().to_string(),
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// A member as the narration gives it (`4 /* HEAD */`: its number, named in a
/// comment, which must be the number's name) or as strace does (`sem_num=4`) →
/// its number.
fn member(m: &str) -> String {
    let m = m.trim().trim_start_matches("sem_num=");
    if let Some((n, name)) = m.split_once(" /* ") {
        let name = name.trim_end_matches(" */");
        let i: usize = n
            .parse()
            .unwrap_or_else(|_| panic!("member number in {m:?}"));
        assert_eq!(MEMBERS.get(i), Some(&name), "member {i} named {name:?}");
        return n.to_string();
    }
    m.to_string()
}

/// The result reduced to what both sides print: an id, `0`, an address or `-1`.
fn canon_result(r: &str) -> String {
    let r = r.trim();
    let r = r
        .strip_prefix("semid ")
        .or(r.strip_prefix("shmid "))
        .unwrap_or(r);
    if r.starts_with("-1") || r.starts_with("(void*)-1") {
        return "-1".into();
    }
    r.split([',', ' ']).next().unwrap_or("").to_string()
}

/// One call, as narrated or as strace shows it, in a canonical form (`None` if the
/// line is not a call).
fn canon(line: &str) -> Option<String> {
    let (call, result) = line.split_once(") = ")?;
    let (name, args) = call.split_once('(')?;
    let result = canon_result(result);
    let a: Vec<&str> = args.split(", ").collect();
    Some(match name {
        "semget" | "shmget" => format!("{name} {} {} {} = {result}", a[0], a[1], canon_flags(a[2])),
        "shmat" => format!("shmat {} {} = {result}", a[0], a[2]),
        "shmdt" => format!("shmdt {} = {result}", a[0]),
        "shmctl" | "semctl" => {
            let cmd = if name == "shmctl" { a[1] } else { a[2] };
            let num = if name == "semctl" {
                member(a[1])
            } else {
                "-".into()
            };
            format!("{name} {} {num} {cmd} = {result}", a[0])
        }
        "semop" | "semtimedop" => {
            let (id, rest) = args.split_once(", [")?;
            let (ops, tail) = rest.split_once(']')?;
            let ops: Vec<String> = ops
                .trim_matches(['{', '}'])
                .split("}, {")
                .map(|op| {
                    let f: Vec<&str> = op.split(", ").collect();
                    let delta: i32 = f[1]
                        .trim_start_matches("sem_op=")
                        .parse()
                        .unwrap_or(i32::MIN);
                    let flg = f[2].trim_start_matches("sem_flg=");
                    format!("{}:{delta}:{flg}", member(f[0]))
                })
                .collect();
            // Narration: `semop(id, [...])` (no timeout) or `semtimedop(id, [...], 100ms)`;
            // strace: `semtimedop(id, [...], n, NULL)` or `..., n, {tv_sec=0, tv_nsec=...}`.
            let timeout = if tail.is_empty() || tail.ends_with("NULL") {
                "none".to_string()
            } else if let Some(ms) = tail.strip_prefix(", ").and_then(|t| t.strip_suffix("ms")) {
                format!("{ms}ms")
            } else {
                let sec: u64 = tail
                    .split("tv_sec=")
                    .nth(1)
                    .and_then(|s| s.split(',').next())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(999);
                let nsec: u64 = tail
                    .split("tv_nsec=")
                    .nth(1)
                    .and_then(|s| s.split('}').next())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(999);
                format!("{}ms", sec * 1000 + nsec / 1_000_000)
            };
            format!("semop {id} [{}] {timeout} = {result}", ops.join(" "))
        }
        _ => return None,
    })
}

/// The IPC calls of a strace log, canonical: every one of them, `IPC_STAT` and
/// failed lookups included.
fn strace_calls(log: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).expect("strace log");
    assert!(
        !text.contains("unfinished"),
        "interleaved strace log:\n{text}"
    );
    let mut calls = Vec::new();
    for l in text.lines() {
        // `PID  call(args)      = result`: drop the pid, collapse strace's padding.
        let l = l.split_once(' ').map_or(l, |(_, rest)| rest);
        let l = l.split_whitespace().collect::<Vec<_>>().join(" ");
        if let Some(c) = canon(&l) {
            calls.push(c);
        }
    }
    calls
}

/// Runs a short persist session under strace and returns, for the writer and the
/// reader, (narrated calls, strace calls).
fn traced_persist_session() -> Option<[(Vec<String>, Vec<String>); 2]> {
    if !require_strace("compare the narration with the calls strace records") {
        return None;
    }
    let k = TestKey::new();
    let wlog = temp_path();
    let rlog = temp_path();
    let input = b"one\ntwo\nthree\n";
    let wf = run_with_input(
        traced("writer", &k, &wlog.path, &["--explain", "--persist"]),
        input,
        SOON,
    );
    assert_eq!(wf.code(), Some(0), "writer: {}", wf.stderr);
    let rf = run_with_input(traced("reader", &k, &rlog.path, &["--explain"]), b"", SOON);
    assert_eq!(rf.code(), Some(0), "reader: {}", rf.stderr);
    assert_eq!(rf.stdout, input);
    k.assert_clean();
    let side = |f: &Finished, who: &str, log: &TempFile| {
        // (e) The copies into and out of the slots are narrated too: no System V
        // calls, so strace does not see them and the comparison skips them.
        let copies: Vec<String> = narrated(&f.stderr, who)
            .into_iter()
            .filter(|c| c.starts_with("memcpy(") || c.starts_with("read("))
            .collect();
        assert!(
            copies.len() >= 2,
            "{who}: the copies are not narrated:\n{}",
            f.stderr
        );
        for c in &copies {
            assert!(canon(c).is_none(), "{who}: a copy taken for a call: {c}");
        }
        let n: Vec<String> = narrated(&f.stderr, who)
            .iter()
            .filter_map(|c| canon(c))
            .collect();
        (n, strace_calls(&log.path))
    };
    Some([side(&wf, "writer", &wlog), side(&rf, "reader", &rlog)])
}

/// Every System V call strace saw is narrated, in order,
/// with the same ids, arguments, flags, timeout and result; and nothing else is.
#[test]
fn narration_matches_strace_call_for_call() {
    let Some(sides) = traced_persist_session() else {
        return;
    };
    for ((narr, real), who) in sides.iter().zip(["writer", "reader"]) {
        assert!(!real.is_empty(), "{who}: strace saw no IPC call");
        assert_eq!(narr, real, "{who}: narrated calls (left) vs strace (right)");
    }
}

/// Checks that the calls `who` narrated in full are, in order, calls strace saw, and
/// that those plus the ones counted by summary lines are all of them.
fn check_accounted(who: &str, f: &Finished, log: &std::path::Path) {
    let real = strace_calls(log);
    let full: Vec<String> = narrated(&f.stderr, who)
        .iter()
        .filter_map(|c| canon(c))
        .collect();
    let counted = summarised_calls(&summaries(&f.stderr, who));
    let mut it = real.iter();
    for c in &full {
        assert!(
            it.any(|r| r == c),
            "{who}: narrated `{c}` is not (in this order) among the calls strace saw"
        );
    }
    assert_eq!(
        full.len() as u64 + counted,
        real.len() as u64,
        "{who}: {} calls narrated in full + {counted} in summaries vs {} made:\n{}",
        full.len(),
        real.len(),
        f.stderr
    );
}

/// A long stream under strace; the writer starts first unless `reader_first`.
fn traced_stream(reader_first: bool) {
    if !require_strace("compare the narration with the calls strace records") {
        return;
    }
    let k = TestKey::new();
    let len = 4 << 20;
    let wlog = temp_path();
    let rlog = temp_path();
    let data = pseudo_random(len, 9);
    let rcmd = traced("reader", &k, &rlog.path, &["--explain"]);
    let wcmd = traced(
        "writer",
        &k,
        &wlog.path,
        &["--explain", "--slot-size", "4K"],
    );
    let (reader, writer);
    if reader_first {
        reader = Proc::spawn(rcmd, Stdio::null());
        // Let it look for its writer a few times (each failed lookup is narrated).
        std::thread::sleep(Duration::from_millis(300));
        writer = Proc::spawn_fed(wcmd, data.clone());
    } else {
        writer = Proc::spawn_fed(wcmd, data.clone());
        wait_until(SOON, "the writer's objects", || k.in_ipcs() == (true, true));
        reader = Proc::spawn(rcmd, Stdio::null());
    }
    let wf = writer.wait(LONG);
    let rf = reader.wait(LONG);
    assert_eq!(wf.code(), Some(0), "writer: {}", wf.stderr);
    assert_eq!(rf.code(), Some(0), "reader: {}", rf.stderr);
    assert!(rf.stdout == data, "reader stdout is not the input");
    k.assert_clean();
    check_accounted("writer", &wf, &wlog.path);
    check_accounted("reader", &rf, &rlog.path);
}

/// In a long stream: every call narrated in full is one strace saw, in order, and the
/// calls narrated in full plus those counted by the summaries are all of them.
#[test]
fn summaries_count_every_call_strace_saw() {
    traced_stream(false);
}

/// The same with the reader started first, so that its failed lookups (`semget` /
/// `shmget` = -1 ENOENT while it polls for its writer) are narrated or counted too.
#[test]
fn every_call_is_narrated_including_failed_lookups() {
    traced_stream(true);
}

// ---------------------------------------------------------------------------
// Reading like an annotated listing: waits, phases, members, copies, wraps, width.
// ---------------------------------------------------------------------------

/// Every line of `who`'s narration shown in full, comment included
/// (`[who] CALL = RESULT    // why`), without the narrator's own `...` lines.
fn full_lines<'a>(stderr: &'a str, who: &str) -> Vec<&'a str> {
    let prefix = format!("[{who}] ");
    stderr
        .lines()
        .filter(|l| l.starts_with(&prefix) && !l[prefix.len()..].starts_with("..."))
        .collect()
}

/// The narrator's own lines of `who` (`[who] ... text`), as `text`.
fn own_lines<'a>(stderr: &'a str, who: &str) -> Vec<&'a str> {
    let prefix = format!("[{who}] ... ");
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

/// The part of `stderr` after the first line containing `marker`.
fn after<'a>(stderr: &'a str, marker: &str) -> &'a str {
    let at = stderr
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in:\n{stderr}"));
    let rest = &stderr[at..];
    rest.split_once('\n').map_or("", |(_, r)| r)
}

/// The operations of a narrated `semop`/`semtimedop` line as (member number,
/// delta), or `None` for another line.
fn semops(line: &str) -> Option<Vec<(usize, i32)>> {
    let (_, rest) = line
        .split_once("semop(")
        .or(line.split_once("semtimedop("))?;
    let (_, ops) = rest.split_once(", [{")?;
    let (ops, _) = ops.split_once("}]")?;
    Some(
        ops.split("}, {")
            .map(|op| {
                let f: Vec<&str> = op.split(", ").collect();
                let n = member(f[0]).parse().expect("member number");
                (n, f[1].parse().expect("delta"))
            })
            .collect(),
    )
}

/// The comment of a full line.
fn why(line: &str) -> &str {
    line.split_once("    // ").map_or("", |(_, w)| w)
}

/// Index of member `name`.
fn m(name: &str) -> usize {
    MEMBERS.iter().position(|n| *n == name).expect("a member")
}

/// Asserts that, after `marker` (the note that `who` joined or created the
/// session), the first message's calls are shown in full before anything is
/// counted: the take (`counter`, negative, with the mutex) and the publish or free
/// that gives to `other`.
fn first_message_in_full(stderr: &str, who: &str, counter: &str, other: &str, marker: &str) {
    let rest = after(stderr, marker);
    let prefix = format!("[{who}] ");
    let mut take = false;
    for l in rest.lines().filter(|l| l.starts_with(&prefix)) {
        if l.contains("] ... not shown") || l.contains("] ... steady state") {
            break;
        }
        let Some(ops) = semops(l) else { continue };
        if !l.contains(") = 0") {
            continue;
        }
        if ops.iter().any(|&(n, d)| n == m(counter) && d < 0) {
            take = true;
        }
        if take && ops.iter().any(|&(n, d)| n == m(other) && d > 0) {
            return;
        }
    }
    panic!("{who}: the first message's take and {other} semops are not shown in full after {marker:?}:\n{stderr}");
}

/// (a) A reader started well before its writer prints its first round of lookups,
/// then nothing while it waits, then one line for all the repeats; and after
/// joining, the first message's semops in full (b).
#[test]
fn a_reader_waiting_for_its_writer_prints_one_line_for_the_wait() {
    let k = TestKey::new();
    let mut r = k.reader();
    r.arg("--explain");
    let mut reader = Proc::spawn(r, Stdio::null());
    reader.wait_stderr(SOON, "waiting for a writer");
    std::thread::sleep(Duration::from_millis(1500));
    reader.pump();
    let while_waiting = reader.stderr_text();
    // The first round (shmget and semget, both ENOENT) and the note; the repeats
    // of the last 1.5 s are not printed one by one.
    assert!(
        while_waiting.lines().count() <= 4,
        "a waiting reader keeps printing:\n{while_waiting}"
    );
    let data = pseudo_random(200_000, 11);
    let mut w = k.writer();
    w.args(["--explain", "--slot-size", "4K"]);
    let wf = run_with_input(w, &data, LONG);
    let rf = reader.wait(LONG);
    assert_ok(&wf, "writer");
    assert_ok(&rf, "reader");
    assert!(rf.stdout == data, "reader stdout is not the input");
    k.assert_clean();

    let joined = rf
        .stderr
        .find("= shmid ")
        .expect("the reader found the segment in the end");
    let waiting = &rf.stderr[..joined];
    let lines: Vec<&str> = waiting.lines().collect();
    assert!(lines.len() <= 5, "{waiting}");
    let collapsed: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("[reader] ... waiting: "))
        .collect();
    assert_eq!(collapsed.len(), 1, "one line for the wait:\n{waiting}");
    let c = collapsed[0];
    assert!(
        c.contains("shmget, semget repeated") && c.contains("(ENOENT)"),
        "{c}"
    );
    assert!(c.ends_with("until a writer created them"), "{c}");
    assert!(summarised_calls(&[c.to_string()]) > 0, "{c}");
    // The first try is shown in full, with its result.
    assert!(
        waiting.contains(&format!(
            "[reader] shmget({}, 0, 0) = -1 (ENOENT)    // ",
            k.arg()
        )),
        "{waiting}"
    );
    // (b) The first message after joining, in full, on both sides.
    first_message_in_full(&rf.stderr, "reader", "FILLED", "FREE", "joined key");
    first_message_in_full(&wf.stderr, "writer", "FREE", "FILLED", "created key");
}

/// (b) The writer first, then the reader: after its join the reader shows the
/// first message's take and free in full, though the writer has long been sending.
#[test]
fn after_joining_the_first_message_is_shown_in_full() {
    let k = TestKey::new();
    let data = pseudo_random(2 << 20, 12);
    let mut w = k.writer();
    w.args(["--explain", "--slot-size", "4K", "--slots", "16"]);
    let writer = Proc::spawn_fed(w, data.clone());
    wait_until(SOON, "the writer's objects", || k.in_ipcs() == (true, true));
    let mut r = k.reader();
    r.arg("--explain");
    let reader = Proc::spawn(r, Stdio::null());
    let wf = writer.wait(LONG);
    let rf = reader.wait(LONG);
    assert_ok(&wf, "writer");
    assert_ok(&rf, "reader");
    assert!(rf.stdout == data, "reader stdout is not the input");
    k.assert_clean();
    first_message_in_full(&rf.stderr, "reader", "FILLED", "FREE", "joined key");
    first_message_in_full(&wf.stderr, "writer", "FREE", "FILLED", "created key");
}

/// (c) An interactive pair: fifty lines, a pause, one more line. Nothing is
/// printed during the pause, and the line after it is narrated in full again on
/// both sides (the per-message budget begins anew after a pause), after one line
/// that counts what was not shown.
#[test]
fn after_a_pause_the_next_message_is_shown_in_full_and_nothing_is_printed_during_it() {
    let k = TestKey::new();
    let mut r = k.reader();
    r.args(["--explain", "--batch", "1"]);
    let mut reader = Proc::spawn(r, Stdio::null());
    let mut w = k.writer();
    w.args(["--explain", "--lines", "--batch", "1"]);
    let mut writer = Proc::spawn(w, Stdio::piped());
    let first: String = (1..=50).map(|i| format!("line {i}\n")).collect();
    writer.feed(first.as_bytes());
    reader.wait_stdout(SOON, "the first fifty lines", |o| o == first.as_bytes());
    // Both have narrated everything of the first part (the reader writes its
    // output after freeing the slots; the writer sleeps in poll(2), which is no
    // System V call). Give the pipes that carry their stderr a moment.
    std::thread::sleep(Duration::from_millis(300));
    writer.pump();
    reader.pump();
    let (w_before, r_before) = (writer.err.len(), reader.err.len());
    assert!(
        own_lines(&writer.stderr_text(), "writer")
            .iter()
            .any(|l| l.starts_with("steady state")),
        "the first part must use up the budget:\n{}",
        writer.stderr_text()
    );
    std::thread::sleep(Duration::from_millis(1500));
    writer.pump();
    reader.pump();
    assert_eq!(
        writer.err.len(),
        w_before,
        "the writer printed during the pause: {:?}",
        String::from_utf8_lossy(&writer.err[w_before..])
    );
    assert_eq!(
        reader.err.len(),
        r_before,
        "the reader printed during the pause: {:?}",
        String::from_utf8_lossy(&reader.err[r_before..])
    );
    writer.feed(b"the last line\n");
    let all = format!("{first}the last line\n");
    reader.wait_stdout(SOON, "the last line", |o| o == all.as_bytes());
    writer.close_stdin();
    let wf = writer.wait(SOON);
    let rf = reader.wait(SOON);
    assert_ok(&wf, "writer");
    assert_ok(&rf, "reader");
    k.assert_clean();

    // After the pause: what was counted, then the last line's calls in full.
    let w_after = &wf.stderr[w_before..];
    let r_after = &rf.stderr[r_before..];
    assert!(
        w_after.starts_with("[writer] ... not shown: "),
        "writer after the pause:\n{w_after}"
    );
    let wl = full_lines(w_after, "writer");
    assert!(
        wl.first()
            .is_some_and(|l| semops(l)
                .is_some_and(|ops| ops.contains(&(m("FREE"), -1)) && l.contains(") = 0"))),
        "the writer's take after the pause is not shown first:\n{w_after}"
    );
    assert!(
        wl.iter()
            .any(|l| l.contains("memcpy(") && l.contains(", data, 14)")),
        "the writer's copy of the last line is not shown:\n{w_after}"
    );
    assert!(
        wl.iter()
            .any(|l| semops(l).is_some_and(|ops| ops.contains(&(m("FILLED"), 1)))),
        "the writer's publish of the last line is not shown:\n{w_after}"
    );
    let rown = own_lines(r_after, "reader");
    assert!(
        rown.iter().any(|l| l.starts_with("waiting: semtimedop")
            && l.contains("(EAGAIN)")
            && l.ends_with("until a frame was published")),
        "the reader's wait is not one line:\n{r_after}"
    );
    let rl = full_lines(r_after, "reader");
    assert!(
        rl.iter().any(|l| l.contains("memcpy(out + 0, base + ")
            && l.ends_with("on the way (no system call: the segment is our memory)")
            && l.contains(", 14)")),
        "the reader's copy of the last line is not shown:\n{r_after}"
    );
    assert!(
        rl.iter()
            .any(|l| semops(l).is_some_and(|ops| ops.contains(&(m("FREE"), 1)))),
        "the reader's free of the last line is not shown:\n{r_after}"
    );
}

/// (d) Semaphore members are their numbers, named in a comment as C written with
/// an enum reads (`{1 /* FILLED */, -1, SEM_UNDO}`, `semctl(id, 4 /* HEAD */,
/// GETVAL)`), and every number has its own name.
#[test]
fn members_are_numbers_named_in_a_comment() {
    let k = TestKey::new();
    let mut w = k.writer();
    w.args([
        "--explain",
        "--persist",
        "--slots",
        "4",
        "--slot-size",
        "4K",
    ]);
    let wf = run_with_input(w, b"a line\n", SOON);
    assert_ok(&wf, "writer");
    let mut r = k.reader();
    r.arg("--explain");
    let rf = run_with_input(r, b"", SOON);
    assert_ok(&rf, "reader");
    k.assert_clean();
    let mut named = 0;
    for (who, f) in [("writer", &wf), ("reader", &rf)] {
        for l in full_lines(&f.stderr, who) {
            let call = l.split_once("    // ").map_or(l, |(c, _)| c);
            let mut rest = call;
            while let Some((before, after)) = rest.split_once(" /* ") {
                let n: usize = before
                    .rsplit(['{', ' '])
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("{who}: no number before /* in {l}"));
                let (name, tail) = after.split_once(" */").expect("closed comment");
                assert_eq!(MEMBERS.get(n), Some(&name), "{who}: {l}");
                named += 1;
                rest = tail;
            }
        }
    }
    assert!(named > 20, "members are not numbered and named");
    let w = wf.stderr.as_str();
    assert!(w.contains("{0 /* FREE */, -1, SEM_UNDO|IPC_NOWAIT}"), "{w}");
    assert!(w.contains(", 4 /* HEAD */, GETVAL) = 0"), "{w}");
    assert!(
        rf.stderr.contains(", 5 /* TAIL */, GETVAL) = 0"),
        "{}",
        rf.stderr
    );
}

/// (f) A ring of 4 slots fed so that one batch wraps round its end (3 frames from
/// slot 3: HEAD goes 3 -> 2, an operation of -1) and one is a whole lap (4 frames:
/// HEAD stays, and no HEAD operation is made): every publish and free says what
/// happens to HEAD or TAIL, true to the operations of that very call.
#[test]
fn a_batch_that_wraps_the_ring_says_truly_what_happens_to_head() {
    let k = TestKey::new();
    let mut r = k.reader();
    r.arg("--explain");
    let mut reader = Proc::spawn(r, Stdio::null());
    let mut w = k.writer();
    w.args(["--explain", "--lines", "--slots", "4", "--slot-size", "4K"]);
    let mut writer = Proc::spawn(w, Stdio::piped());
    let mut sent = String::new();
    for (i, part) in ["a\nb\nc\n", "d\ne\nf\n", "g\nh\ni\nj\n"]
        .iter()
        .enumerate()
    {
        if i > 0 {
            // A pause begins a new phase, so that every batch is narrated in full.
            std::thread::sleep(Duration::from_millis(1100));
        }
        writer.feed(part.as_bytes());
        sent.push_str(part);
        reader.wait_stdout(SOON, part, |o| o == sent.as_bytes());
    }
    writer.close_stdin();
    let wf = writer.wait(SOON);
    let rf = reader.wait(SOON);
    assert_ok(&wf, "writer");
    assert_ok(&rf, "reader");
    k.assert_clean();

    let (head, tail) = (m("HEAD"), m("TAIL"));
    let mut wrapped = false;
    let mut lap = false;
    for (who, f, index, name, gives) in [
        ("writer", &wf, head, "HEAD", m("FILLED")),
        ("reader", &rf, tail, "TAIL", m("FREE")),
    ] {
        for l in full_lines(&f.stderr, who) {
            let Some(ops) = semops(l) else { continue };
            let Some(&(_, given)) = ops.iter().find(|&&(n, d)| n == gives && d > 0) else {
                continue;
            };
            let moved = ops.iter().find(|&&(n, _)| n == index).map(|&(_, d)| d);
            let w = why(l);
            match moved {
                Some(d) if d > 0 => assert!(
                    !w.contains("wrapping")
                        && !w.contains("stays")
                        && w.contains(&format!("{name} ")),
                    "{who}: {l}"
                ),
                Some(d) => {
                    assert!(
                        w.contains(&format!(
                            "wrapping past the last slot ({d} = +{given} - 4 slots)"
                        )),
                        "{who}: {l}"
                    );
                    wrapped |= who == "writer" && d == -1 && w.contains("HEAD 3 -> 2");
                }
                None => {
                    assert!(
                        w.contains(&format!("{name} stays"))
                            && w.contains(&format!("no {name} operation")),
                        "{who}: {l}"
                    );
                    lap |= who == "writer" && given == 4 && w.contains("HEAD stays 2");
                }
            }
        }
    }
    assert!(
        wrapped,
        "no narrated publish of 3 frames from slot 3:\n{}",
        wf.stderr
    );
    assert!(lap, "no narrated publish of a whole lap:\n{}", wf.stderr);
}

/// (g) `--explain --compact`: the reason on its own line, and no line wider than 80
/// columns, through a wait, a stream with counted calls, and the end.
#[test]
fn compact_narration_fits_80_columns() {
    let k = TestKey::new();
    let mut r = k.reader();
    r.args(["--explain", "--compact", "-q"]);
    let mut reader = Proc::spawn(r, Stdio::null());
    reader.wait_stderr(SOON, "ENOENT");
    std::thread::sleep(Duration::from_millis(300));
    let data = pseudo_random(1 << 20, 13);
    let mut w = k.writer();
    w.args(["--explain", "--compact", "-q", "--slot-size", "4K"]);
    let wf = run_with_input(w, &data, LONG);
    let rf = reader.wait(LONG);
    assert_ok(&wf, "writer");
    assert_ok(&rf, "reader");
    assert!(rf.stdout == data, "reader stdout is not the input");
    k.assert_clean();
    for (who, f) in [("writer", &wf), ("reader", &rf)] {
        let prefix = format!("[{who}] ");
        let mut comments = 0;
        for l in f.stderr.lines() {
            assert!(
                l.chars().count() <= 80,
                "{who}: {} columns: {l:?}",
                l.chars().count()
            );
            assert!(
                l.starts_with(&prefix) || l.starts_with("        ") || l.starts_with("    // "),
                "{who}: not narration: {l:?}"
            );
            comments += usize::from(l.starts_with("    // "));
            assert!(
                !l.contains("    // ") || l.starts_with("    // "),
                "{who}: {l:?}"
            );
        }
        assert!(comments > 10, "{who}: no comment lines:\n{}", f.stderr);
        assert!(
            f.stderr.contains(&format!("{prefix}... not shown: ")),
            "{who}: nothing counted:\n{}",
            f.stderr
        );
    }
    assert!(
        rf.stderr
            .contains("[reader] ... waiting: shmget, semget repeated"),
        "{}",
        rf.stderr
    );
}

/// Slow motion (`--delay`) moves one frame per `semop` on both sides, whatever the
/// input: a regular file too (its batches were sized by `--batch` before), as the
/// narrated takes show: every `FREE` and `FILLED` take is `-1`.
#[test]
fn slow_motion_takes_one_slot_per_semop_from_a_file_too() {
    let k = TestKey::new();
    let data = pseudo_random(5 * 4064, 21);
    let file = TempFile::new(&data);
    let mut r = k.reader();
    r.args(["--explain", "--delay", "1", "-q"]);
    let reader = Proc::spawn(r, Stdio::null());
    let mut w = k.writer();
    w.args(["--explain", "--delay", "1", "-q", "--slot-size", "4K"])
        .arg(&file.path);
    let wf = Proc::spawn(w, Stdio::null()).wait(LONG);
    let rf = reader.wait(LONG);
    assert_ok(&wf, "writer");
    assert_ok(&rf, "reader");
    assert!(rf.stdout == data, "reader stdout is not the input");
    k.assert_clean();
    for (who, f, member) in [("writer", &wf, "FREE"), ("reader", &rf, "FILLED")] {
        // A take: the member going down together with a mutex being taken.
        let take = format!("/* {member} */, -");
        let takes: Vec<&str> = f
            .stderr
            .lines()
            .filter(|l| l.contains(&take) && l.contains("_MUTEX */, -1"))
            .collect();
        assert!(!takes.is_empty(), "{who}: no narrated take:\n{}", f.stderr);
        for t in &takes {
            assert!(
                t.contains(&format!("/* {member} */, -1,")),
                "{who}: more than one slot in one semop: {t}"
            );
        }
    }
}
