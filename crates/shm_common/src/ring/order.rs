//! What a reader expects of each writer's frames: they arrive in that writer's
//! order; with one reader (a byte-stream session) also without gaps, and with byte
//! offsets that add up (PROTOCOL.md §10.2).

use crate::frame::FrameHeader;
use std::collections::HashMap;

/// Per-writer "next expected (sequence, offset)". Frames usually come from the same
/// writer as the previous one, so that writer's entry is kept out of the map: one
/// comparison per frame instead of a hash lookup and insert.
#[derive(Debug, Default)]
pub(super) struct WriterOrder {
    current: Option<(u32, u64, u64)>,
    others: HashMap<u32, (u64, u64)>,
}

impl WriterOrder {
    pub(super) fn expected(&mut self, writer: u32) -> (u64, u64) {
        match self.current {
            Some((w, seq, off)) if w == writer => (seq, off),
            _ => self.others.get(&writer).copied().unwrap_or((0, 0)),
        }
    }

    pub(super) fn advance(&mut self, writer: u32, seq: u64, offset: u64) {
        if let Some((w, s, o)) = self.current {
            if w != writer {
                self.others.insert(w, (s, o));
                self.others.remove(&writer);
            }
        }
        self.current = Some((writer, seq, offset));
    }
}

impl WriterOrder {
    /// Checks that `h` comes where its writer's frames are due. `Err` says what was
    /// due: `(sequence, offset)`. With one reader (`exclusive`) a writer's frames come
    /// without gaps and their offsets add up; with several, each reader sees only some
    /// of a writer's frames, so the sequence only grows.
    pub(super) fn check(&mut self, h: &FrameHeader, exclusive: bool) -> Result<(), (u64, u64)> {
        let (next, offset) = self.expected(h.writer);
        let in_order = if exclusive {
            h.seq == next && h.offset == offset
        } else {
            h.seq >= next
        };
        if in_order {
            Ok(())
        } else {
            Err((next, offset))
        }
    }
}
