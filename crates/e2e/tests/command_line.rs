//! The command line: bad keys, sizes, counts and modes are refused with exit 2
//! before anything is created; `--help` documents the options and the exit codes;
//! every run ends with one summary line, and `-q` silences it.
mod support;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

/// One invocation that must be refused: which binary, its arguments, and a word
/// the message must contain (what is wrong), if the case has one.
struct Bad {
    bin: &'static str,
    args: Vec<String>,
    mention: Option<&'static str>,
}

fn bad(bin: &'static str, args: &[&str], mention: Option<&'static str>) -> Bad {
    Bad {
        bin,
        args: args.iter().map(|s| s.to_string()).collect(),
        mention,
    }
}

/// Every refused invocation exits 2 with a message (naming what is wrong), creates
/// no segment, leaves nothing at the key, never panics, and no invalid key turns
/// into IPC_PRIVATE objects.
#[test]
fn bad_keys_sizes_counts_and_modes_exit_2_and_create_nothing() {
    let k = TestKey::new();
    let key = k.arg();
    let mut cases = Vec::new();
    // `-5` needs the `--key=-5` spelling (otherwise it is parsed as a flag; also exit 2).
    for (arg, mention) in [
        ("--key=0", "IPC_PRIVATE"),
        ("--key=0x0", "IPC_PRIVATE"),
        ("--key=junk", "junk"),
        ("--key=-5", "-5"),
        ("--key=0x100000000", "0x100000000"),
        ("--key=path:/nonexistent", "/nonexistent"),
        ("--key=", "key"),
    ] {
        for bin in ["writer", "reader"] {
            cases.push(bad(bin, &[arg], Some(mention)));
        }
    }
    for bk in [
        "0",
        "0x0",
        "-1",
        "-0x10",
        "junk",
        "0x",
        "",
        "0x100000000",
        "4294967296",
        "99999999999999999999",
        "path:/no/such/file",
    ] {
        for bin in ["writer", "reader"] {
            cases.push(bad(bin, &["--key", bk], None));
        }
    }
    for (args, mention) in [
        (&["--slots", "0"][..], "--slots"),
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
    ] {
        let mut a = vec!["--key", &key];
        a.extend_from_slice(args);
        cases.push(bad("writer", &a, Some(mention)));
    }
    for (slots, size) in [
        ("0", "4096"),
        ("-1", "4096"),
        ("junk", "4096"),
        ("32768", "4096"),      // SEMVMX: counts live in semaphores
        ("4294967296", "4096"), // overflows u32
        ("99999999999999999999", "4096"),
        ("4", "0"),
        ("4", "-64"),
        ("4", "100"), // not a multiple of 64
        ("4", "64"),  // no room for a payload
        ("4", "4G"),  // overflows u32
        ("4", "99999999999999999999K"),
        ("4", "junk"),
        ("4", "2G"), // beyond the 1 GiB slot limit
    ] {
        cases.push(bad(
            "writer",
            &["--key", &key, "--slots", slots, "--slot-size", size],
            None,
        ));
    }
    // (`--batch 0` is accepted and clamped to 1, so it is not in this list.)
    for b in ["-1", "junk", "4294967296"] {
        for bin in ["writer", "reader"] {
            cases.push(bad(bin, &["--key", &key, "--batch", b], None));
        }
    }
    for m in ["0", "400", "1777", "999", "junk"] {
        cases.push(bad("writer", &["--key", &key, "--mode", m], None));
    }
    let private_before = private_objects();
    let mut failures = Vec::new();
    for case in &cases {
        let (name, args) = (case.bin, &case.args);
        let mut c = Command::new(bin(name));
        c.args(args);
        let p = Proc::spawn_fed(c, b"data\n".to_vec());
        let pid = p.pid();
        let f = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            p.wait(Duration::from_secs(5))
        })) {
            Ok(f) => f,
            Err(_) => {
                failures.push(format!(
                    "{name} {args:?}: accepted (still running after 5 s)"
                ));
                k.force_remove();
                continue;
            }
        };
        let created = segments_created_by(pid).len();
        if f.code() != Some(2)
            || created != 0
            || f.stderr.contains("panicked")
            || f.stderr.trim().is_empty()
        {
            failures.push(format!(
                "{name} {args:?}: {} created {created}; stderr: {}",
                f.describe(),
                f.stderr.trim()
            ));
        }
        if let Some(m) = case.mention {
            if !f.stderr.contains(m) {
                failures.push(format!(
                    "{name} {args:?}: the message does not mention {m:?}: {}",
                    f.stderr.trim()
                ));
            }
        }
        if args.iter().any(|a| a.starts_with("--key=")) && !f.stderr.contains("key") {
            failures.push(format!(
                "{name} {args:?}: the message does not say the key is wrong: {}",
                f.stderr.trim()
            ));
        }
        if k.in_ipcs() != (false, false) {
            failures.push(format!("{name} {args:?}: created objects at {key}"));
            k.force_remove();
        }
    }
    assert_eq!(
        private_objects(),
        private_before,
        "an invalid key created IPC_PRIVATE objects"
    );
    // -5 as a key_t is 0xfffffffb: nothing may be there.
    let minus_five = shm_common::IpcKey::new(-5).expect("a key");
    assert_eq!(
        segment_at(minus_five),
        None,
        "something at key -5 (0xfffffffb)"
    );
    assert!(
        failures.is_empty(),
        "{} of {} bad invocations misbehaved:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
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
        let mut cmd = Command::new(bin(name));
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
    let mut cmd = Command::new(bin("writer"));
    cmd.arg("--help");
    let text =
        String::from_utf8_lossy(&Proc::spawn(cmd, Stdio::null()).wait(SOON).stdout).into_owned();
    for opt in ["--slots", "--slot-size", "--persist", "--quiet"] {
        assert!(text.contains(opt), "writer --help documents {opt}");
    }
}

/// A directory as FILE is refused (exit 1, one line naming it) before anything is
/// created at the key: open(2) of a directory succeeds, so the check is ours.
#[test]
fn a_directory_as_input_is_refused_before_creating_anything() {
    let k = TestKey::new();
    let dir = std::env::temp_dir();
    let mut cmd = k.writer();
    cmd.arg("--persist").arg(&dir);
    let f = run(cmd, SOON);
    assert_eq!(f.code(), Some(1), "writer DIR: {}", f.stderr);
    assert!(
        f.stderr.contains("Is a directory") && f.stderr.contains(&*dir.to_string_lossy()),
        "one line naming the directory: {}",
        f.stderr
    );
    assert!(
        !f.stderr.contains("created"),
        "nothing created: {}",
        f.stderr
    );
    k.assert_clean();
}
