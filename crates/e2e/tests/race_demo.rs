//! `shm-race`: broken without semaphores, clean with them, and always tidy.
mod support;
use shm_cli::keys::Range;
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;
use support::*;

/// A key in the race tests' range.
fn race_key() -> TestKey {
    TestKey::in_range(Range::RACE_TESTS)
}

/// `shm-race ARGS...` to completion.
fn race(args: &[&str], limit: Duration) -> (Finished, String) {
    let mut c = Command::new(bin("shm-race"));
    c.args(args);
    let f = run(c, limit);
    let out = String::from_utf8_lossy(&f.stdout).into_owned();
    (f, out)
}

fn result_line(stdout: &str, mode: &str) -> HashMap<String, String> {
    let l = line(stdout, &format!("result {mode} "))
        .unwrap_or_else(|| panic!("no result line for {mode} in:\n{stdout}"));
    pairs(l)
}

fn num(m: &HashMap<String, String>, k: &str) -> u64 {
    m[k].parse().expect("a number")
}

#[test]
fn refuses_without_the_flag_and_creates_nothing() {
    let guard = race_key();
    let (o, out) = race(&["--key", &guard.arg()], Duration::from_secs(20));
    assert_eq!(o.code(), Some(2));
    assert!(
        o.stderr.contains("--i-understand-this-is-broken"),
        "{}",
        o.stderr
    );
    assert!(out.is_empty());
    assert_eq!(segment_at(guard.key), None);
    assert_eq!(sem_values(guard.key), None);
}

#[test]
fn unsynchronized_shows_anomalies_synchronized_none() {
    let guard = race_key();
    let key = guard.arg();
    // The race needs both threads on a core at once; on a busy machine (the test
    // suite runs in parallel) a run may be unlucky, so try a bounded number of
    // times: the first runs both halves, the others only the unsynchronized one.
    let mut unsync_anomalies = 0;
    for attempt in 0..20 {
        let which = if attempt == 0 {
            "both"
        } else {
            "unsynchronized"
        };
        let (o, out) = race(
            &[
                "--i-understand-this-is-broken",
                "--run",
                which,
                "--key",
                &key,
                "--frames",
                "100000",
                "--seconds",
                "30",
            ],
            Duration::from_secs(120),
        );
        assert_eq!(o.code(), Some(0), "attempt {attempt}: {}", o.stderr);
        assert!(o.stderr.contains("RACE DEMONSTRATION"), "no banner");
        if attempt == 0 {
            let s = result_line(&out, "synchronized");
            assert_eq!(num(&s, "anomalies"), 0, "{}", out);
            assert_eq!(num(&s, "frames_written"), 100_000);
            assert_eq!(num(&s, "delivered"), 100_000);
            for k in [
                "torn",
                "lost",
                "duplicates",
                "read_before_write",
                "out_of_order",
            ] {
                assert_eq!(num(&s, k), 0, "synchronized {k}");
            }
        }
        let u = result_line(&out, "unsynchronized");
        let parts: u64 = [
            "torn",
            "lost",
            "duplicates",
            "read_before_write",
            "out_of_order",
        ]
        .iter()
        .map(|k| num(&u, k))
        .sum();
        assert_eq!(parts, num(&u, "anomalies"));
        assert_eq!(segment_at(guard.key), None, "segment left behind");
        assert_eq!(sem_values(guard.key), None, "set left behind");
        unsync_anomalies = num(&u, "anomalies");
        if unsync_anomalies > 0 {
            break;
        }
    }
    assert!(
        unsync_anomalies > 0,
        "twenty unsynchronized runs without one anomaly"
    );
}

#[test]
fn ctrl_c_removes_the_segment() {
    let guard = race_key();
    let mut c = Command::new(bin("shm-race"));
    c.args([
        "--i-understand-this-is-broken",
        "--run",
        "unsynchronized",
        "--key",
        &guard.arg(),
        "--frames",
        "100000000",
        "--seconds",
        "60",
    ]);
    let p = Proc::spawn(c, std::process::Stdio::null());
    let seen = eventually(Duration::from_secs(20), || segment_at(guard.key));
    p.signal(Signal::SIGINT);
    let o = p.wait(Duration::from_secs(30));
    assert!(seen.is_some(), "the run never created its segment");
    assert_eq!(o.code(), Some(130), "{}", o.stderr);
    assert_eq!(segment_at(guard.key), None, "segment left behind");
}
