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

    /// One stable line: `result MODE k=v ...`, for scripts and tests.
    pub fn line(&self, mode: &str) -> String {
        format!(
            "result {mode} frames_written={} reads={} delivered={} torn={} lost={} duplicates={} read_before_write={} out_of_order={} anomalies={} elapsed_ms={} cut_short={}",
            self.frames_written,
            self.reads,
            self.delivered,
            self.torn,
            self.lost,
            self.duplicates,
            self.read_before_write,
            self.out_of_order,
            self.anomalies(),
            self.elapsed.as_millis(),
            self.cut_short
        )
    }

    /// A few lines that say what each number means.
    pub fn explained(&self) -> String {
        format!(
            "  frames written ......... {:>9}\n  \
               reads by the reader .... {:>9}\n  \
               delivered intact ....... {:>9}\n  \
               torn frames ............ {:>9}   checksum failed: copied while being overwritten\n  \
               lost frames ............ {:>9}   overwritten before anyone read them\n  \
               duplicates ............. {:>9}   the same sequence number delivered twice\n  \
               read-before-write ...... {:>9}   an empty or old slot read as if new\n  \
               out of order ........... {:>9}   a frame delivered after a later one\n",
            self.frames_written,
            self.reads,
            self.delivered,
            self.torn,
            self.lost,
            self.duplicates,
            self.read_before_write,
            self.out_of_order
        )
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
    pub(super) fn slot(&mut self, bytes: &[u8], capacity: usize) {
        self.tally.reads += 1;
        if bytes.iter().all(|&b| b == 0) {
            self.tally.read_before_write += 1;
            return;
        }
        let Some((hb, rest)) = bytes.split_first_chunk::<FRAME_HEADER_SIZE>() else {
            self.tally.torn += 1;
            return;
        };
        let h = match FrameHeader::decode(hb, capacity) {
            Ok(h) if h.kind == Kind::Data => h,
            _ => {
                self.tally.torn += 1;
                return;
            }
        };
        let payload = &rest[..h.len as usize];
        if FrameHeader::verify(hb, payload).is_err() {
            self.tally.torn += 1;
            return;
        }
        self.frame(h.seq, payload);
    }

    /// Classifies one checksum-valid frame.
    pub(super) fn frame(&mut self, seq: u64, payload: &[u8]) {
        if !pattern_matches(seq, payload) {
            self.tally.torn += 1;
            return;
        }
        let bit = 1u64 << (seq % 64);
        let Some(word) = usize::try_from(seq / 64)
            .ok()
            .and_then(|i| self.seen.get_mut(i))
        else {
            self.tally.torn += 1;
            return;
        };
        if *word & bit != 0 {
            // Nothing new was in the slot: the writer had not replaced this frame yet.
            self.tally.duplicates += 1;
            self.tally.read_before_write += 1;
            return;
        }
        *word |= bit;
        self.tally.delivered += 1;
        if self.highest.is_some_and(|h| seq < h) {
            self.tally.out_of_order += 1;
        } else {
            self.highest = Some(seq);
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
        c.slot(&frame(0), cap);
        c.slot(&frame(0), cap); // old slot read again
        c.slot(&vec![0u8; FRAME_HEADER_SIZE + cap], cap); // empty slot
        c.slot(&frame(2), cap); // 1 overwritten before it was read
        let mut torn = frame(3);
        torn[FRAME_HEADER_SIZE..].copy_from_slice(&frame(4)[FRAME_HEADER_SIZE..]);
        c.slot(&torn, cap);
        c.slot(&frame(1), cap); // late
        let t = c.finish(5, Duration::ZERO, false);
        assert_eq!(t.reads, 6);
        assert_eq!(t.delivered, 3);
        assert_eq!((t.torn, t.duplicates, t.read_before_write), (1, 1, 2));
        assert_eq!((t.lost, t.out_of_order), (2, 1));
    }
}
