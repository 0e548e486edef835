//! Text that fits a width: notes wrapped at words (a `command in backquotes`
//! kept whole), and labelled lists of facts wrapped after a comma.

use super::{Line, Tone};

/// `label` and `words`, wrapped, continuation lines under the first word.
pub(super) fn facts_lines(
    label: &dyn Fn(&str) -> Line,
    name: &str,
    words: &[String],
    cols: usize,
) -> Vec<Line> {
    wrap_words(words, cols, 8)
        .into_iter()
        .enumerate()
        .map(|(i, t)| label(if i == 0 { name } else { "" }).push(t, Tone::Plain))
        .collect()
}

/// Words joined by spaces into lines of at most `cols - indent` columns.
pub(super) fn wrap_words(words: &[String], cols: usize, indent: usize) -> Vec<String> {
    let width = cols.saturating_sub(indent).max(8);
    let mut lines: Vec<String> = vec![String::new()];
    for w in words {
        let Some(cur) = lines.last_mut() else { break };
        if !cur.is_empty() && cur.len() + 1 + w.len() > width {
            lines.push(w.clone());
        } else {
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(w);
        }
    }
    lines
}

/// Word-wraps `text` to `cols`, continuation lines indented by two.
pub(super) fn wrap(text: &str, cols: usize, tone: Tone) -> Vec<Line> {
    let cols = cols.max(8);
    let mut lines = Vec::new();
    let mut cur = String::from("! ");
    for word in unbreakable(text) {
        let mut word = word;
        loop {
            let sep = usize::from(cur.len() > 2);
            if cur.len() + sep + word.len() <= cols {
                if sep == 1 {
                    cur.push(' ');
                }
                cur += &word;
                break;
            }
            if cur.trim().len() > 1 {
                lines.push(std::mem::replace(&mut cur, "  ".to_string()));
                continue;
            }
            // A word longer than a line: split it.
            let take = cols.saturating_sub(cur.len()).max(1);
            cur.extend(word.chars().take(take));
            word = word.chars().skip(take).collect();
            lines.push(std::mem::replace(&mut cur, "  ".to_string()));
        }
    }
    if cur.trim().len() > 1 || lines.is_empty() {
        lines.push(cur);
    }
    lines
        .into_iter()
        .map(|t| Line::default().push(t, tone))
        .collect()
}

/// The words of `text`, a `command in backquotes` counting as one word.
pub(super) fn unbreakable(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let mut open = false;
    for w in text.split_whitespace() {
        match words.last_mut() {
            Some(last) if open => {
                last.push(' ');
                last.push_str(w);
            }
            _ => words.push(w.to_string()),
        }
        if w.matches('`').count() % 2 == 1 {
            open = !open;
        }
    }
    words
}
