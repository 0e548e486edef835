//! `shm-race`: broken without semaphores, clean with them, and always tidy.

mod common;

use common::*;
use std::collections::HashMap;
use std::time::Duration;

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
    let guard = KeyGuard::new();
    let o = run(RACE, &["--key", &guard.arg()], Duration::from_secs(20));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        o.stderr.contains("--i-understand-this-is-broken"),
        "{}",
        o.stderr
    );
    assert!(o.stdout.is_empty());
    assert_eq!(ipcs_id("-m", guard.key()), None);
    assert_eq!(ipcs_id("-s", guard.key()), None);
}

#[test]
fn unsynchronized_shows_anomalies_synchronized_none() {
    let guard = KeyGuard::new();
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
        let o = run(
            RACE,
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
        assert!(o.status.success(), "attempt {attempt}: {}", o.stderr);
        assert!(o.stderr.contains("RACE DEMONSTRATION"), "no banner");
        if attempt == 0 {
            let s = result_line(&o.stdout, "synchronized");
            assert_eq!(num(&s, "anomalies"), 0, "{}", o.stdout);
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
        let u = result_line(&o.stdout, "unsynchronized");
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
        assert_eq!(ipcs_id("-m", guard.key()), None, "segment left behind");
        assert_eq!(ipcs_id("-s", guard.key()), None, "set left behind");
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
    let guard = KeyGuard::new();
    let child = std::process::Command::new(RACE)
        .args([
            "--i-understand-this-is-broken",
            "--run",
            "unsynchronized",
            "--key",
            &guard.arg(),
            "--frames",
            "100000000",
            "--seconds",
            "60",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let seen = eventually(Duration::from_secs(20), || ipcs_id("-m", guard.key()));
    let pid = child.id().to_string();
    let _ = run("kill", &["-INT", &pid], Duration::from_secs(5));
    let o = wait_with_timeout(child, Duration::from_secs(30));
    assert!(seen.is_some(), "the run never created its segment");
    assert_eq!(o.status.code(), Some(130), "{}", o.stderr);
    assert_eq!(ipcs_id("-m", guard.key()), None, "segment left behind");
}
