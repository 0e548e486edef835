//! What the reader saw, and how it is counted: [`Tally`] and its bookkeeping.

use shm_common::frame::{FrameHeader, Kind, FRAME_HEADER_SIZE};
use std::time::Duration;

/// What the reader saw. In a correct ring every count but `delivered` is zero and
/// `delivered == frames_written`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Frames the writer wrote.
    pub frames_written: u64,
    /// Slot reads the reader made.
    pub reads: u64,
    /// Distinct frames delivered intact.
    pub delivered: u64,
    /// Torn frames: the checksum (or the payload pattern) failed, because the slot
    /// was being overwritten while the reader copied it.
    pub torn: u64,
    /// Lost frames: written but never delivered (overwritten before anyone read
    /// them): the gaps in the sequence numbers.
    pub lost: u64,
    /// Duplicates: a frame delivered a second time (same sequence number twice).
    pub duplicates: u64,
    /// Read-before-write: reads that found no new frame, an empty slot or the old
    /// frame the writer had not yet replaced, taken as new. (When that old frame
    /// was valid it was delivered again, so it is counted in `duplicates` too.)
    pub read_before_write: u64,
    /// Frames delivered after a later one (out of order).
    pub out_of_order: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Whether the time limit (or Ctrl-C) stopped the run before all frames went.
    pub cut_short: bool,
}

impl Tally {
    /// Torn + lost + duplicates + read-before-write + out-of-order.
    pub fn anomalies(&self) -> u64 {
        self.torn + self.lost + self.duplicates + self.read_before_write + self.out_of_order
    }

    /// Reads that found something wrong: torn, empty or old slots (a lost frame is
    /// not a read; an out-of-order frame is delivered intact).
    pub fn wrong_reads(&self) -> u64 {
        self.torn + self.read_before_write
    }
}

/// What one read of a slot found, as the reader's checks classify it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The next frame, as it should be.
    Next(u64),
    /// A new frame, but not the next one: frame `expected` (and maybe more) was
    /// skipped: overwritten before it was read, or still to come, out of order.
    Ahead { seq: u64, expected: u64 },
    /// A new frame older than one delivered already (out of order).
    Late(u64),
    /// A frame delivered already: the slot still held it.
    Again(u64),
    /// An all-zero slot: nothing was ever written there.
    Empty,
    /// The checksum or the payload pattern failed.
    Torn,
}

impl Outcome {
    /// Whether this read is a symptom of the race (anything but the next frame).
    pub(super) fn is_anomaly(self) -> bool {
        !matches!(self, Outcome::Next(_))
    }
}

/// Most frames one run may send: the reader keeps one bit per frame.
pub const MAX_FRAMES: u64 = 100_000_000;

/// The reader's bookkeeping: which sequence numbers it has delivered.
pub(super) struct Checker {
    pub(super) tally: Tally,
    /// One bit per sequence number: delivered already?
    seen: Vec<u64>,
    highest: Option<u64>,
}

impl Checker {
    pub(super) fn new(frames: u64) -> Checker {
        let words = usize::try_from(frames.min(MAX_FRAMES).div_ceil(64)).unwrap_or(0);
        Checker {
            tally: Tally::default(),
            seen: vec![0; words],
            highest: None,
        }
    }

    /// Classifies one slot's contents (header then payload, as read).
    pub(super) fn slot(&mut self, bytes: &[u8], capacity: usize) -> Outcome {
        self.tally.reads += 1;
        if bytes.iter().all(|&b| b == 0) {
            self.tally.read_before_write += 1;
            return Outcome::Empty;
        }
        let Some((hb, rest)) = bytes.split_first_chunk::<FRAME_HEADER_SIZE>() else {
            return self.torn();
        };
        let h = match FrameHeader::decode(hb, capacity) {
            Ok(h) if h.kind == Kind::Data => h,
            _ => return self.torn(),
        };
        let payload = &rest[..h.len as usize];
        if FrameHeader::verify(hb, payload).is_err() {
            return self.torn();
        }
        self.frame(h.seq, payload)
    }

    fn torn(&mut self) -> Outcome {
        self.tally.torn += 1;
        Outcome::Torn
    }

    /// Classifies one checksum-valid frame.
    pub(super) fn frame(&mut self, seq: u64, payload: &[u8]) -> Outcome {
        if !pattern_matches(seq, payload) {
            return self.torn();
        }
        let bit = 1u64 << (seq % 64);
        let Some(word) = usize::try_from(seq / 64)
            .ok()
            .and_then(|i| self.seen.get_mut(i))
        else {
            return self.torn();
        };
        if *word & bit != 0 {
            // Nothing new was in the slot: the writer had not replaced this frame yet.
            self.tally.duplicates += 1;
            self.tally.read_before_write += 1;
            return Outcome::Again(seq);
        }
        *word |= bit;
        self.tally.delivered += 1;
        let expected = self.highest.map_or(0, |h| h + 1);
        if self.highest.is_some_and(|h| seq < h) {
            self.tally.out_of_order += 1;
            return Outcome::Late(seq);
        }
        self.highest = Some(seq);
        if seq == expected {
            Outcome::Next(seq)
        } else {
            Outcome::Ahead { seq, expected }
        }
    }

    pub(super) fn finish(mut self, written: u64, elapsed: Duration, cut_short: bool) -> Tally {
        self.tally.frames_written = written;
        self.tally.lost = written.saturating_sub(self.tally.delivered);
        self.tally.elapsed = elapsed;
        self.tally.cut_short = cut_short;
        self.tally
    }
}

/// Fills `out` (a multiple of 8 bytes) with the payload of frame `seq`: word `i` is
/// a mix of `seq` and `i`, so a payload stitched from two frames shows.
pub(super) fn fill_pattern(seq: u64, out: &mut [u8]) {
    for (i, w) in out.chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&pattern_word(seq, i).to_le_bytes());
    }
}

fn pattern_word(seq: u64, i: usize) -> u64 {
    seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

fn pattern_matches(seq: u64, payload: &[u8]) -> bool {
    payload.len() % 8 == 0
        && payload
            .chunks_exact(8)
            .enumerate()
            .all(|(i, w)| w == pattern_word(seq, i).to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checker_classifies() {
        let cap = 64;
        let frame = |seq: u64| {
            let mut p = vec![0u8; cap];
            fill_pattern(seq, &mut p);
            let h = FrameHeader {
                len: cap as u32,
                kind: Kind::Data,
                seq,
                writer: 1,
                offset: 0,
            };
            let mut b = h.encode(&p).to_vec();
            b.extend_from_slice(&p);
            b
        };
        let mut c = Checker::new(5);
        assert_eq!(c.slot(&frame(0), cap), Outcome::Next(0));
        assert_eq!(c.slot(&frame(0), cap), Outcome::Again(0)); // old slot read again
        let empty = vec![0u8; FRAME_HEADER_SIZE + cap];
        assert_eq!(c.slot(&empty, cap), Outcome::Empty);
        // 1 overwritten before it was read (or still to come)
        let ahead = Outcome::Ahead {
            seq: 2,
            expected: 1,
        };
        assert_eq!(c.slot(&frame(2), cap), ahead);
        let mut torn = frame(3);
        torn[FRAME_HEADER_SIZE..].copy_from_slice(&frame(4)[FRAME_HEADER_SIZE..]);
        assert_eq!(c.slot(&torn, cap), Outcome::Torn);
        assert_eq!(c.slot(&frame(1), cap), Outcome::Late(1));
        let t = c.finish(5, Duration::ZERO, false);
        assert_eq!(t.reads, 6);
        assert_eq!(t.delivered, 3);
        assert_eq!((t.torn, t.duplicates, t.read_before_write), (1, 1, 2));
        assert_eq!((t.lost, t.out_of_order), (2, 1));
    }
}
