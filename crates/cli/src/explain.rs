//! `--explain`'s narrator: the sink for the library's reports of System V calls
//! ([`shm_common::trace`]), printing each as `[who] CALL = RESULT    // why` on
//! stderr. Calls on the per-message path are printed in full for the first
//! [`PER_MESSAGE_IN_FULL`], then counted: one summary line per second says how many
//! were made, so that a long stream does not flood the terminal. Each line is one
//! `write(2)`.

use crate::report;
use shm_common::trace::Call;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many per-message calls are narrated in full before summarising.
pub const PER_MESSAGE_IN_FULL: u64 = 12;

struct Narrator {
    prefix: String,
    state: Mutex<Counts>,
}

struct Counts {
    per_message_seen: u64,
    since_summary: u64,
    last_summary: Option<Instant>,
}

/// Turns narration on for this process; `prefix` starts each line (`writer`).
pub fn enable(prefix: &str) {
    let n = Narrator {
        prefix: prefix.to_string(),
        state: Mutex::new(Counts {
            per_message_seen: 0,
            since_summary: 0,
            last_summary: None,
        }),
    };
    // A second `enable` in one process changes nothing: the first narrator stays.
    let _ = shm_common::trace::set_sink(Box::new(move |c: &Call<'_>| n.narrate(c)));
}

impl Narrator {
    fn narrate(&self, c: &Call<'_>) {
        let Ok(mut s) = self.state.lock() else { return };
        let now = Instant::now();
        let mut out = String::new();
        if c.per_message {
            s.per_message_seen += 1;
            if s.per_message_seen > PER_MESSAGE_IN_FULL {
                // This call is counted in the next summary line.
                s.since_summary += 1;
                if s.per_message_seen == PER_MESSAGE_IN_FULL + 1 {
                    out = format!(
                        "[{}] ... steady state: further per-message calls are summarised once a second\n",
                        self.prefix
                    );
                    s.last_summary = Some(now);
                } else if s
                    .last_summary
                    .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
                {
                    out = self.summary(&mut s, now, c.call, c.result);
                }
                report::stderr(&out);
                return;
            }
        }
        // Before a call narrated in full, account for the per-message calls not yet
        // summarised, so the narration stays in order and every call is counted.
        if s.since_summary > 0 {
            out = self.summary(&mut s, now, "", "");
        }
        out.push_str(&format!(
            "[{}] {} = {}    // {}\n",
            self.prefix, c.call, c.result, c.why
        ));
        report::stderr(&out);
    }

    /// One summary line for the calls counted since the last one.
    fn summary(&self, s: &mut Counts, now: Instant, call: &str, result: &str) -> String {
        let secs = s
            .last_summary
            .map_or(0.0, |t| now.duration_since(t).as_secs_f64());
        let last = if call.is_empty() {
            String::new()
        } else {
            format!(" (last: {call} = {result})")
        };
        let line = format!(
            "[{}] ... {} more per-message calls in the last {secs:.1} s{last}\n",
            self.prefix, s.since_summary
        );
        s.since_summary = 0;
        s.last_summary = Some(now);
        line
    }
}
