//! Redaction of what changes from run to run (the key, ids, pids, addresses,
//! times, durations and rates), so that output can be compared with a snapshot or
//! with the output pasted in the documentation.
use std::collections::BTreeSet;

/// Replaces every standalone occurrence of the number `n` (not part of a longer
/// run of digits) by `with`.
pub fn replace_number(text: &str, n: i64, with: &str) -> String {
    let needle = n.to_string();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let before_ok = i == 0 || !bytes[i - 1].is_ascii_digit();
        if before_ok && rest.starts_with(&needle) {
            let end = i + needle.len();
            if end == text.len() || !bytes[end].is_ascii_digit() {
                out.push_str(with);
                i = end;
                continue;
            }
        }
        let ch = rest.chars().next().expect("a char");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Replaces what changes from run to run.
pub struct Redact {
    /// The key, as printed (`0x7e1...`).
    pub key: String,
    /// Numbers to replace, each by its name (`[SHMID]`).
    pub numbers: Vec<(i64, &'static str)>,
}

impl Redact {
    /// `text` with everything that changes from run to run replaced.
    pub fn apply(&self, text: &str) -> String {
        let mut t = text.replace(&self.key, "[KEY]");
        for &(n, name) in &self.numbers {
            t = replace_number(&t, n, name);
        }
        // Addresses (`shmat(...) = 0x7f...`) and times (seconds since the epoch,
        // ten digits) and the duration of the summary lines.
        let mut out = String::new();
        for word in split_keep(&t) {
            out.push_str(&redact_word(word));
        }
        out
    }
}

/// Splits into maximal runs of `[0-9a-zA-Z.]` and single other characters, so that
/// numbers and hex addresses can be recognised as whole words.
fn split_keep(t: &str) -> Vec<&str> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '.';
    let mut v = Vec::new();
    let mut start = 0;
    for (i, c) in t.char_indices() {
        let run_continues = i > start && word(c) && t[start..i].chars().all(word);
        if i > start && !run_continues {
            v.push(&t[start..i]);
            start = i;
        }
    }
    v.push(&t[start..]);
    v
}

pub fn redact_word(w: &str) -> String {
    // An address (`shmat(...) = 0x7f0f2d919000`, sometimes 0x7e...: where the
    // kernel maps depends on the run) has more hex digits than a key's eight.
    if w.starts_with("0x") && w.len() > 10 && w[2..].chars().all(|c| c.is_ascii_hexdigit()) {
        return "[ADDR]".into();
    }
    if w.len() == 10 && w.starts_with('1') && w.chars().all(|c| c.is_ascii_digit()) {
        return "[TIME]".into();
    }
    // "... in 0.000 s (0.1 MB/s)", "in the last 0.0 s": durations and rates.
    if w.contains('.')
        && w.chars().any(|c| c.is_ascii_digit())
        && w.chars().all(|c| c.is_ascii_digit() || c == '.')
    {
        return "[N.N]".into();
    }
    w.to_string()
}

/// The numbers that follow `word` (`"shmid "` matches `shmid 7077937` and `shmid=7077937`
/// is matched by `"shmid="`) anywhere in `text`.
fn numbers_after(text: &str, word: &str) -> BTreeSet<i64> {
    text.match_indices(word)
        .filter_map(|(i, _)| {
            let rest = &text[i + word.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

impl Redact {
    /// A redaction that finds the ids and pids in `text` itself (`shmid N`,
    /// `semid N`, `= shmid N`, `pid N`, `pid=N`...): for text recorded elsewhere,
    /// such as a console block pasted in the README, whose ids nobody knows.
    pub fn found_in(text: &str, key: &str) -> Redact {
        let mut numbers = Vec::new();
        for (words, name) in [
            (&["shmid ", "shmid="][..], "[SHMID]"),
            (&["semid ", "semid="][..], "[SEMID]"),
            (&["pid ", "pid=", "pid [", "cpid=", "lpid="][..], "[PID]"),
        ] {
            for w in words {
                for n in numbers_after(text, w) {
                    numbers.push((n, name));
                }
            }
        }
        // The ids in `semop(6914072, ...)` are the semid found above; a longer
        // number first, so that no id is replaced inside another.
        numbers.sort_by_key(|&(n, _)| std::cmp::Reverse(n.to_string().len()));
        Redact {
            key: key.to_string(),
            numbers,
        }
    }
}
