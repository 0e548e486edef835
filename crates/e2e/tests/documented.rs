//! The output pasted in the documentation is the output the programs print: each
//! console block marked `<!-- output: NAME -->` in README.md or docs/*.md is run
//! again here, exactly as it is written (its `$ ` line is the command, on a fresh
//! test key), and compared line for line after the key, ids, pids, addresses,
//! times, durations and rates are replaced on both sides (`support::redact`). A
//! change of output fails here until the documentation follows: run
//! `DOCS=overwrite cargo test -p e2e --test documented` and read the diff (the
//! blocks are rewritten from the new run, with the documented key put back).
mod support;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use support::redact::Redact;
use support::*;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One marked block: where it is, its command lines and its output lines.
struct Block {
    file: PathBuf,
    name: String,
    /// Byte range of the block's body (between the fences) in the file.
    body: std::ops::Range<usize>,
    commands: Vec<String>,
    output: String,
}

/// Every `<!-- output: NAME -->` block of the documentation.
fn blocks() -> Vec<Block> {
    let root = repo_root();
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a doc");
        let marker = "<!-- output: ";
        let mut from = 0;
        while let Some(i) = text[from..].find(marker) {
            let at = from + i;
            let name_end = text[at..].find(" -->").expect("a closed marker") + at;
            let name = text[at + marker.len()..name_end].to_string();
            let fence = text[name_end..]
                .find("```console\n")
                .expect("a console block")
                + name_end;
            let start = fence + "```console\n".len();
            let end = text[start..].find("```\n").expect("a closed block") + start;
            let body = &text[start..end];
            let commands = body
                .lines()
                .filter_map(|l| l.strip_prefix("$ "))
                .map(str::to_string)
                .collect();
            let output = body
                .lines()
                .filter(|l| !l.starts_with("$ "))
                .map(|l| format!("{l}\n"))
                .collect();
            found.push(Block {
                file: file.clone(),
                name,
                body: start..end,
                commands,
                output,
            });
            from = end;
        }
    }
    found
}

/// The value of `--key` in a documented command.
fn documented_key(command: &str) -> String {
    let mut words = command.split_whitespace();
    while let Some(w) = words.next() {
        if w == "--key" {
            return words.next().expect("a key after --key").to_string();
        }
    }
    panic!("the documented command has no --key: {command}");
}

/// Runs a documented command line (`[printf '...' |] PROGRAM ARGS [> /dev/null]`) on
/// key `k` instead of the documented one: (stdout, stderr).
fn run_documented(command: &str, doc_key: &str, k: &TestKey) -> Proc {
    let (input, program) = match command.split_once(" | ") {
        Some((printf, rest)) => {
            let quoted = printf
                .strip_prefix("printf '")
                .and_then(|p| p.strip_suffix('\''))
                .expect("printf '...' | command");
            (Some(quoted.replace("\\n", "\n")), rest)
        }
        None => (None, command),
    };
    let program = program.trim_end_matches(" > /dev/null");
    let mut words = program.split_whitespace();
    let name = words.next().expect("a program");
    let mut cmd = std::process::Command::new(bin(name));
    for w in words {
        cmd.arg(if w == doc_key { k.arg() } else { w.to_string() });
    }
    let mut p = Proc::spawn(
        cmd,
        if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        },
    );
    if let Some(text) = input {
        p.feed(text.as_bytes());
        p.close_stdin();
    }
    p
}

/// What a person sees for each documented run, by block name.
fn actual_outputs(blocks: &[Block], k: &TestKey) -> Vec<(String, String)> {
    let by_name = |name: &str| {
        blocks
            .iter()
            .find(|b| b.name == name)
            .unwrap_or_else(|| panic!("no block {name}"))
    };
    let mut out = Vec::new();
    // The two terminals: the reader first (it waits), then the writer.
    let (r, w) = (
        by_name("two-terminals-reader"),
        by_name("two-terminals-writer"),
    );
    let doc_key = documented_key(&r.commands[0]);
    let mut reader = run_documented(&r.commands[0], &doc_key, k);
    reader.wait_stderr(SOON, "waiting for a writer");
    let writer = run_documented(&w.commands[0], &doc_key, k);
    let rf = reader.wait(TIMEOUT);
    let wf = writer.wait(TIMEOUT);
    assert_ok(&rf, "reader");
    assert_ok(&wf, "writer");
    // On the reader's terminal the data comes between its "joined" note and its
    // summary line.
    let joined = rf.stderr.find("reader: joined").expect("joined");
    let after_joined = rf.stderr[joined..].find('\n').expect("a line") + joined + 1;
    let seen = format!(
        "{}{}{}",
        &rf.stderr[..after_joined],
        String::from_utf8_lossy(&rf.stdout),
        &rf.stderr[after_joined..]
    );
    out.push((r.name.clone(), seen));
    out.push((w.name.clone(), wf.stderr.clone()));
    k.assert_clean();
    // --explain: a persisted one-line stream, then its reader.
    let (w, r) = (by_name("explain-writer"), by_name("explain-reader"));
    let doc_key = documented_key(&w.commands[0]);
    let wf = run_documented(&w.commands[0], &doc_key, k).wait(TIMEOUT);
    assert_ok(&wf, "writer --explain");
    let rf = run_documented(&r.commands[0], &doc_key, k).wait(TIMEOUT);
    assert_ok(&rf, "reader --explain");
    out.push((w.name.clone(), wf.stderr.clone()));
    out.push((r.name.clone(), rf.stderr.clone()));
    k.assert_clean();
    out
}

#[test]
fn pasted_outputs_are_what_the_programs_print() {
    let blocks = blocks();
    let k = TestKey::new();
    let actual = actual_outputs(&blocks, &k);
    let overwrite = std::env::var("DOCS").is_ok_and(|v| v == "overwrite");
    let mut rewrites: Vec<(PathBuf, std::ops::Range<usize>, String)> = Vec::new();
    let mut failures = Vec::new();
    for (name, seen) in &actual {
        let b = blocks.iter().find(|b| &b.name == name).expect("a block");
        let doc_key = documented_key(&b.commands[0]);
        let want = Redact::found_in(&b.output, &doc_key).apply(&b.output);
        let got = Redact::found_in(seen, &k.arg()).apply(seen);
        if want != got {
            failures.push(format!(
                "{} ({}):\n--- documented\n{want}--- printed now\n{got}",
                name,
                b.file.display()
            ));
            let commands: String = b.commands.iter().map(|c| format!("$ {c}\n")).collect();
            rewrites.push((
                b.file.clone(),
                b.body.clone(),
                commands + &seen.replace(&k.arg(), &doc_key),
            ));
        }
    }
    if overwrite && !rewrites.is_empty() {
        rewrite(&rewrites);
        return;
    }
    assert!(
        failures.is_empty(),
        "the documentation shows other output than the programs print (DOCS=overwrite rewrites it):\n{}",
        failures.join("\n")
    );
}

/// Replaces block bodies, last first so that earlier ranges stay valid.
fn rewrite(rewrites: &[(PathBuf, std::ops::Range<usize>, String)]) {
    let mut files: Vec<&Path> = rewrites.iter().map(|r| r.0.as_path()).collect();
    files.dedup();
    for file in files {
        let mut text = std::fs::read_to_string(file).expect("a doc");
        let mut mine: Vec<_> = rewrites.iter().filter(|r| r.0 == file).collect();
        mine.sort_by_key(|r| std::cmp::Reverse(r.1.start));
        for (_, range, body) in mine {
            text.replace_range(range.clone(), body);
        }
        std::fs::write(file, text).expect("rewrite the doc");
    }
}
