//! What each side of the unsynchronized run did, in the order it happened: one log
//! per thread, stamped by one shared counter, merged once both threads have ended.
//!
//! Recording is race-free by construction: each [`Log`] is a plain vector owned by
//! its thread, and the only shared thing is the [`Clock`], an atomic counter. The
//! logs are merged after `join`, when nothing runs any more.
//!
//! # How exact the order is
//! A stamp is taken *before* each load of `count` and *after* each store (and after
//! a slot is written or read), never between the load and the store: the window
//! the race lives in holds nothing but the [`super::Window`]. The order of two
//! events of different threads is therefore exact up to the instant between an
//! access and its stamp (nanoseconds); when the window is widened it is thousands of
//! times wider than that. The *number* of lost updates does not depend on the
//! stamps at all: it is read off the `count` word itself ([`Count`]).

use super::tally::Outcome;
use std::sync::atomic::{AtomicU64, Ordering};

/// Events each side keeps (the first ones of the run: an example needs the first
/// damage, and the forced window makes it come within a few frames).
pub(super) const LOG_EVENTS: usize = 1 << 16;

/// The writer or the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// Runs `count++`.
    Writer,
    /// Runs `count--`.
    Reader,
}

impl Side {
    /// The other one.
    pub(super) fn other(self) -> Side {
        match self {
            Side::Writer => Side::Reader,
            Side::Reader => Side::Writer,
        }
    }

    /// `writer` or `reader`.
    pub(super) fn name(self) -> &'static str {
        match self {
            Side::Writer => "writer",
            Side::Reader => "reader",
        }
    }

    /// The update this side makes: `count++` or `count--`.
    pub(super) fn update(self) -> &'static str {
        match self {
            Side::Writer => "count++",
            Side::Reader => "count--",
        }
    }
}

/// The handout's `count`, as one 64-bit word in the segment.
///
/// # Layout
/// Bits 0..32 are the handout's `int count`: the protocol reads and writes only
/// them. Bits 32..63 are *bookkeeping*: how many updates (`++` or `--`) the value
/// includes, i.e. one more than the value it was computed from. Bit 63 says who
/// stored it (0 for the writer and for the initial zero, 1 for the reader). The
/// protocol never looks at the upper half; it rides along in the same load and the
/// same store, so `count++` is still one load and one store, and it tells exactly
/// how many updates were lost: every update made, minus those the final value
/// includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Count {
    /// The handout's counter.
    pub(super) value: i32,
    /// Updates this value includes.
    pub(super) updates: u32,
    /// Who stored it (meaningless while `updates` is 0: the initial zero).
    pub(super) by: Side,
}

const UPDATES_MASK: u64 = (1 << 31) - 1;
const BY_READER: u64 = 1 << 63;

impl Count {
    /// Decodes a loaded word.
    pub(super) fn from_word(w: u64) -> Count {
        Count {
            value: w as u32 as i32,
            updates: ((w >> 32) & UPDATES_MASK) as u32,
            by: if w & BY_READER != 0 {
                Side::Reader
            } else {
                Side::Writer
            },
        }
    }

    /// The word to store.
    pub(super) fn word(self) -> u64 {
        let by = if self.by == Side::Reader {
            BY_READER
        } else {
            0
        };
        u64::from(self.value as u32) | (u64::from(self.updates) & UPDATES_MASK) << 32 | by
    }

    /// `count + 1` (writer) or `count - 1` (reader), computed from this value.
    pub(super) fn updated(self, by: Side) -> Count {
        let delta = if by == Side::Writer { 1 } else { -1 };
        Count {
            value: self.value.wrapping_add(delta),
            updates: self.updates.wrapping_add(1) & UPDATES_MASK as u32,
            by,
        }
    }
}

/// What one side did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum What {
    /// Its busy loop (`while (count == N)` / `while (count == 0)`) let it through,
    /// having seen this count.
    Pass { count: i32 },
    /// The writer wrote frame `seq` into `slot`.
    Wrote { seq: u64, slot: u32 },
    /// The reader copied `slot`; its checks found `outcome`.
    Read { slot: u32, outcome: Outcome },
    /// The load of `count++`/`count--`.
    Load(Count),
    /// The store of `count++`/`count--`.
    Store(Count),
}

/// One event: its stamp, who, what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Event {
    /// The [`Clock`] stamp: the merged order of both sides' events.
    pub(super) at: u64,
    /// Who did it.
    pub(super) side: Side,
    /// What it did.
    pub(super) what: What,
}

/// The shared event counter.
#[derive(Debug, Default)]
pub(super) struct Clock(AtomicU64);

impl Clock {
    /// The next stamp. SeqCst: all stamps of both threads fall in one total order
    /// that agrees with each thread's program order (and on x86-64 the locked
    /// increment also drains the store buffer, so a store stamped after it is
    /// visible to the other side by the time the stamp exists).
    fn tick(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// One side's events, owned by its thread.
#[derive(Debug)]
pub(super) struct Log {
    side: Side,
    events: Vec<Event>,
}

impl Log {
    pub(super) fn new(side: Side) -> Log {
        Log {
            side,
            events: Vec::new(),
        }
    }

    fn full(&self) -> bool {
        self.events.len() >= LOG_EVENTS
    }

    /// A stamp for an event recorded later with [`Log::push`] (so that nothing is
    /// done between a load and its store); `None` once the log is full, when the
    /// clock is not touched any more.
    pub(super) fn stamp(&self, clock: &Clock) -> Option<u64> {
        (!self.full()).then(|| clock.tick())
    }

    /// Records `what` under a stamp from [`Log::stamp`].
    pub(super) fn push(&mut self, at: Option<u64>, what: What) {
        if let Some(at) = at {
            if !self.full() {
                self.events.push(Event {
                    at,
                    side: self.side,
                    what,
                });
            }
        }
    }

    /// Stamps and records `what` now.
    pub(super) fn note(&mut self, clock: &Clock, what: What) {
        let at = self.stamp(clock);
        self.push(at, what);
    }
}

/// Both logs in one order. When a log filled up, the other's events after its last
/// one are dropped: past that point the timeline would only show one side.
pub(super) fn merge(a: Log, b: Log) -> Vec<Event> {
    let horizon = [&a, &b]
        .iter()
        .filter(|l| l.full())
        .filter_map(|l| l.events.iter().map(|e| e.at).max())
        .min()
        .unwrap_or(u64::MAX);
    let mut all: Vec<Event> = a.events.into_iter().chain(b.events).collect();
    all.retain(|e| e.at <= horizon);
    all.sort_by_key(|e| e.at);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_word_round_trips() {
        let zero = Count::from_word(0);
        assert_eq!((zero.value, zero.updates), (0, 0));
        let one = zero.updated(Side::Writer);
        assert_eq!((one.value, one.updates, one.by), (1, 1, Side::Writer));
        let back = one.updated(Side::Reader);
        assert_eq!((back.value, back.updates, back.by), (0, 2, Side::Reader));
        for c in [one, back, back.updated(Side::Reader)] {
            assert_eq!(Count::from_word(c.word()), c);
        }
        assert_eq!(back.updated(Side::Reader).value, -1);
    }

    #[test]
    fn merge_orders() {
        let clock = Clock::default();
        let mut w = Log::new(Side::Writer);
        let mut r = Log::new(Side::Reader);
        w.note(&clock, What::Pass { count: 0 });
        r.note(&clock, What::Pass { count: 1 });
        let at = w.stamp(&clock);
        w.note(&clock, What::Pass { count: 2 });
        w.push(at, What::Pass { count: 3 }); // recorded late, stamped early
        let order: Vec<(u64, Side)> = merge(w, r).iter().map(|e| (e.at, e.side)).collect();
        assert_eq!(
            order,
            [
                (1, Side::Writer),
                (2, Side::Reader),
                (3, Side::Writer),
                (4, Side::Writer)
            ]
        );
    }

    #[test]
    fn merge_cuts_where_a_full_log_ends() {
        let mut w = Log::new(Side::Writer);
        let mut r = Log::new(Side::Reader);
        let last = 2 * LOG_EVENTS as u64;
        for at in (2..=last).step_by(2) {
            w.push(Some(at), What::Pass { count: 0 });
        }
        w.push(Some(last + 2), What::Pass { count: 0 }); // full: not kept
        assert!(w.full() && w.stamp(&Clock::default()).is_none());
        for at in [1, 3, last + 1] {
            r.push(Some(at), What::Pass { count: 0 });
        }
        let all = merge(w, r);
        assert_eq!(
            all.len(),
            LOG_EVENTS + 2,
            "the reader's event after the horizon goes"
        );
        assert_eq!(all.last().map(|e| e.at), Some(last));
    }
}
