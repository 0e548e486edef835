//! Runs the real harness on a tiny budget, so that `make test` notices when
//! `make bench` stops working: every mechanism, the 2 x 2 row, the latency section,
//! the end-to-end table (a 2 MiB file) and the spin section run, the CSV/JSON/SVG are
//! written, and no System V object or tmpfs output file is left behind.
//! Nothing here looks at how fast anything was (numbers belong in `make bench`).
mod support;
use nix::sys::signal::killpg;
use nix::unistd::Pid;
use shm_cli::keys::Range;
use shm_common::{segment, semaphore, IpcKey};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// A generous ceiling for a run that takes a few seconds, so a hang fails the test
/// instead of hanging CI.
const LIMIT: Duration = Duration::from_secs(180);

/// Keys of the System V objects of one kind (`shm` or `sem`) that exist now.
fn keys(kind: &str) -> Vec<i64> {
    let text = std::fs::read_to_string(format!("/proc/sysvipc/{kind}")).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Removes whatever is left in the bench's key range (`0x7e4xxxxx`: shm-bench claims
/// its keys there, and nothing else uses it during `make test`), so a failing run
/// leaves nothing either; returns the keys it found.
fn remove_leftovers() -> Vec<i64> {
    let mut found = Vec::new();
    for kind in ["shm", "sem"] {
        for k in keys(kind) {
            let Ok(key) = IpcKey::new(k as libc::key_t) else {
                continue;
            };
            if !Range::BENCH.contains(key) {
                continue;
            }
            found.push(k);
            if kind == "shm" {
                if let Ok(Some(id)) = segment::find(key) {
                    let _ = segment::remove_id(key, id);
                }
            } else if let Ok(Some(id)) = semaphore::find(key) {
                let _ = semaphore::remove_id(key, id);
            }
        }
    }
    found
}

/// `name` in a directory of the PATH, as shm-bench looks for `pv`.
fn find_on_path(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[test]
fn quick_run_writes_every_section_and_leaves_nothing() {
    let dir = std::env::temp_dir().join(format!("shm-bench-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("make the output directory");
    // Output goes to files, not pipes: a pipe nobody reads while we poll for the exit
    // would stall the harness once its output outgrew the pipe buffer.
    let (out_path, err_path) = (dir.join("stdout.txt"), dir.join("stderr.txt"));
    let out_file = std::fs::File::create(&out_path).expect("stdout file");
    let err_file = std::fs::File::create(&err_path).expect("stderr file");
    let mut child = Command::new(bin("shm-bench"))
        .args(["--quick", "--secs", "0.05", "--sizes", "64,4096"])
        .args([
            "--placements",
            "unpinned",
            "--e2e-bytes",
            "2M",
            "--e2e-reps",
            "1",
        ])
        .args(["--idle-secs", "0.1", "--out-dir"])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(out_file)
        .stderr(err_file)
        // Its own process group, so a hung run can be stopped with its children.
        .process_group(0)
        .spawn()
        .expect("shm-bench starts");
    let pid = child.id();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for shm-bench") {
            break status;
        }
        if start.elapsed() > LIMIT {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            let _ = child.wait();
            let left = remove_leftovers();
            panic!("shm-bench did not finish within {LIMIT:?} (removed {left:x?})");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let leaked = remove_leftovers();
    // The tmpfs sink's files are named shm-bench-PID-N.out (e2e.rs).
    let outputs: Vec<String> = ["/dev/shm", "/tmp"]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path().display().to_string())
        .filter(|p| p.contains(&format!("/shm-bench-{pid}-")) && p.ends_with(".out"))
        .collect();
    for p in &outputs {
        let _ = std::fs::remove_file(p);
    }
    assert!(status.success(), "shm-bench failed: {stderr}");
    assert!(leaked.is_empty(), "objects left at keys {leaked:x?}");
    assert!(outputs.is_empty(), "tmpfs output files left: {outputs:?}");

    for mech in [
        "ring",
        "pipe-write",
        "pipe-buffered",
        "unix-socket",
        "lockstep-shm",
    ] {
        for size in ["64 B", "4 KiB"] {
            let row = stdout
                .lines()
                .find(|l| l.starts_with(&format!("{mech} ")) && l.contains(size));
            assert!(row.is_some(), "no {mech} {size} row in:\n{stdout}");
        }
    }
    assert!(stdout.contains("ring 2w x 2r"), "no 2 x 2 row:\n{stdout}");
    // --quick skips the iceoryx2 rows, and must say so.
    assert!(
        stdout.contains("#   iceoryx2: rows skipped: --quick"),
        "no iceoryx2 line:\n{stdout}"
    );
    for name in ["ring-spin0 ", "ring-spin50us", "ring-spin200us", "pipe "] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(name) && l.contains(" unpinned ")),
            "no latency {name:?} row:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("#   vector_extensions: sse4_2="),
        "no vector extensions in the header:\n{stdout}"
    );
    // Every end-to-end row, with numbers or saying why not (pv may be missing; a
    // machine may have no tmpfs with room).
    for name in [
        "writer F + reader > /dev/null",
        "writer < F + reader > /dev/null",
        "cat F | writer + reader > /dev/null",
        "pv -q F | cat > /dev/null",
        "cat F | cat > /dev/null",
        "cat F > /dev/null",
        "writer F + reader > tmpfs",
        "pv -q F | cat > tmpfs",
        "cat F | cat > tmpfs",
    ] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")) && l.contains(" unpinned "));
        assert!(row.is_some(), "no e2e row {name:?}:\n{stdout}");
        if name.starts_with("pv") && find_on_path("pv").is_none() {
            assert!(
                row.is_some_and(|r| r.contains("skipped: pv not installed (apt-get install pv)")),
                "pv is missing, and the row does not say so:\n{stdout}"
            );
        }
    }
    for kind in ["stream", "idle", "idle after 64 KiB"] {
        for spin in ["--spin 0 (blocking)", "--spin 50 (default)", "--spin 200"] {
            let name = format!("{kind}: reader {spin}");
            assert!(
                stdout.lines().any(|l| l.starts_with(&name)),
                "no spin row {name:?}:\n{stdout}"
            );
        }
    }
    assert!(
        stdout.contains("copy+crc portable"),
        "no checksum section:\n{stdout}"
    );

    let csv = std::fs::read_to_string(dir.join("latest.csv")).expect("CSV written");
    assert!(csv.lines().count() > 10, "CSV too short:\n{csv}");
    let json = std::fs::read_to_string(dir.join("latest.json")).expect("JSON written");
    assert!(json.trim_start().starts_with('{') && json.contains("\"rows\""));
    let svg = std::fs::read_to_string(dir.join("throughput.svg")).expect("SVG written");
    assert!(svg.contains("<svg"));
    let _ = std::fs::remove_dir_all(&dir);
}
