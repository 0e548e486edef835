//! `make lab` (scripts/lab.sh) as a student meets it: three panes in an 80x24 tmux
//! window (writer, reader, inspector) on a fresh key, in slow motion, and the
//! exercises in a second window; what is typed arrives line by line while the
//! inspector shows the ring holding it; nothing is left when the lab closes.
mod support;
use std::path::PathBuf;
use std::process::Command;
use support::tmux::{require_tmux, Tmux};
use support::*;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn make_lab_opens_three_panes_in_slow_motion_and_leaves_nothing() {
    if !require_tmux() {
        return;
    }
    let k = TestKey::new();
    let key = k.arg();
    let socket = Tmux::fresh_socket();
    let t = Tmux::on_socket(&socket);
    let bin_dir = bin("writer").parent().expect("bin dir").to_path_buf();
    let mut lab = Command::new("bash");
    lab.arg(repo_root().join("scripts/lab.sh"))
        .arg(&bin_dir)
        .env("LAB_SOCKET", &socket)
        .env("LAB_ATTACH", "0")
        .env("LAB_KEY", &key);
    let started = run(lab, TIMEOUT);
    assert_eq!(started.code(), Some(0), "lab.sh: {}", started.stderr);
    let session = format!("shm-lab-{}", key.trim_start_matches("0x"));
    let window = format!("{session}:lab");
    // Three panes that share one 80x24 window.
    let listing = t.tmux(&[
        "list-panes",
        "-t",
        &window,
        "-F",
        "#{pane_id} #{pane_left} #{pane_top} #{pane_width} #{pane_height}",
    ]);
    let panes: Vec<Vec<String>> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    assert_eq!(panes.len(), 3, "three panes: {panes:?}");
    for p in &panes {
        let n: Vec<u32> = p[1..].iter().map(|v| v.parse().expect("number")).collect();
        assert!(
            n[0] + n[2] <= 80 && n[1] + n[3] <= 24,
            "inside 80x24: {p:?}"
        );
    }
    let id = |left: &str, top: &str| {
        panes
            .iter()
            .find(|p| p[1] == left && p[2] == top)
            .map(|p| p[0].clone())
            .unwrap_or_else(|| panic!("a pane at ({left}, {top}): {panes:?}"))
    };
    let writer = id("0", "0");
    let inspector = panes
        .iter()
        .find(|p| p[1] != "0")
        .map(|p| p[0].clone())
        .expect("the inspector's pane on the right");
    let reader = panes
        .iter()
        .find(|p| p[1] == "0" && p[2] != "0")
        .map(|p| p[0].clone())
        .expect("the reader's pane below the writer's");
    t.wait_screen_of(&writer, TIMEOUT, "the writer to create the key", |s| {
        s.contains("created key")
    });
    t.wait_screen_of(&inspector, TIMEOUT, "the inspector's view", |s| {
        s.contains(&format!("key {key}: ours"))
    });
    // A dozen lines at once, as if pasted: the writer publishes one every 0.3 s,
    // the reader takes one every 0.6 s.
    for i in 1..=12 {
        t.type_into(&writer, &format!("line {i}"), true);
        t.type_into(&writer, "Enter", false);
    }
    t.wait_screen_of(&inspector, TIMEOUT, "frames waiting in the ring", |s| {
        s.lines().any(|l| {
            l.starts_with("FILLED")
                && l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u32>().ok())
                    .is_some_and(|v| v > 0)
        })
    });
    let got = t.wait_screen_of(&reader, TIMEOUT, "every line in the reader's pane", |s| {
        s.contains("line 12")
    });
    let order: Vec<u32> = got
        .lines()
        .filter_map(|l| l.strip_prefix("line ")?.trim().parse().ok())
        .collect();
    assert!(
        order.windows(2).all(|w| w[1] == w[0] + 1) && order.last() == Some(&12),
        "in order:\n{got}"
    );
    t.type_into(&writer, "C-d", false);
    t.wait_screen_of(&writer, TIMEOUT, "the writer's summary", |s| {
        s.contains("writer: ") && s.contains("12 messages")
    });
    t.wait_screen_of(&reader, TIMEOUT, "the reader's summary", |s| {
        s.contains("reader: ") && s.contains("12 messages")
    });
    t.wait_screen_of(&inspector, TIMEOUT, "the inspector to see it gone", |s| {
        s.contains(&format!("key {key}: nothing"))
    });
    // The exercises are one window away.
    let sheet = t.screen_of(&format!("{session}:exercises"));
    assert!(
        sheet.contains("Lab exercises"),
        "the exercise sheet:\n{sheet}"
    );
    assert!(t.tmux(&["kill-session", "-t", &session]).status.success());
    drop(t);
    k.assert_clean();
}
