//! [`SessionMemory`]: a segment of ours, known to be whole: a header page followed
//! by `slots` slots of `slot_size` bytes. The checks are made once, when it is
//! built; afterwards its header is a plain field access and a slot an index that is
//! checked against the geometry, never a fallible lookup per field.

use super::Segment;
use crate::error::{Error, Result};
use crate::frame::FRAME_HEADER_SIZE;
use crate::header::Header;
use crate::layout::Geometry;
use std::ptr::NonNull;

/// The memory of a session: one read-write attach of a segment at least as large as
/// its geometry says, with a header of ours.
#[derive(Debug)]
pub struct SessionMemory {
    seg: Segment,
    geo: Geometry,
    /// The header at the start of `seg`'s mapping, which lives as long as `seg`.
    header: NonNull<Header>,
}

// SAFETY: `header` points into `seg`'s mapping and moves with it; see Segment's Send.
// (Not Sync, like Segment.)
unsafe impl Send for SessionMemory {}

impl SessionMemory {
    /// Checks that `seg` (read-write) holds the header and all `geo.slots` slots.
    pub(crate) fn new(seg: Segment, geo: Geometry) -> Result<SessionMemory> {
        let needed = geo.segment_size();
        if (seg.len() as u64) < needed {
            return Err(Error::Corrupt {
                key: seg.key(),
                detail: format!(
                    "the ring needs {needed} bytes ({} slots of {}) but the segment has {}",
                    geo.slots,
                    geo.slot_size,
                    seg.len()
                ),
            });
        }
        let header = NonNull::from(seg.header()?);
        Ok(SessionMemory { seg, geo, header })
    }

    /// The header.
    pub fn header(&self) -> &Header {
        // SAFETY: `header` came from `Segment::header` on `self.seg` (which checked
        // size, alignment and writability); the mapping stays attached as long as
        // `self.seg` lives, and the returned reference borrows `self`.
        unsafe { self.header.as_ref() }
    }

    /// The segment (its id, its kernel record).
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The ring's geometry.
    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    /// Gives the segment back (for an explicit removal).
    pub(crate) fn into_segment(self) -> Segment {
        self.seg
    }

    /// Offset of slot `index`, which must be below the slot count.
    fn slot(&self, index: u32) -> Result<usize> {
        if index >= self.geo.slots {
            return Err(Error::Corrupt {
                key: self.seg.key(),
                detail: format!(
                    "slot index {index} but the ring has {} slots",
                    self.geo.slots
                ),
            });
        }
        Ok(self.geo.slot_offset(index))
    }

    /// Payload bytes `len` fit in a slot?
    fn payload(&self, len: usize) -> Result<()> {
        if len > self.geo.payload_capacity() {
            return Err(Error::Corrupt {
                key: self.seg.key(),
                detail: format!(
                    "{len} payload bytes exceed the slot's {}",
                    self.geo.payload_capacity()
                ),
            });
        }
        Ok(())
    }

    /// Copies the frame header of slot `index` out.
    pub(crate) fn read_frame_header(&self, index: u32) -> Result<[u8; FRAME_HEADER_SIZE]> {
        let mut hb = [0u8; FRAME_HEADER_SIZE];
        self.seg.read_bytes(self.slot(index)?, &mut hb)?;
        Ok(hb)
    }

    /// Appends the first `len` payload bytes of slot `index` to `out`, continuing the
    /// CRC-32C `crc` over them in the same sweep; returns the checksum.
    pub(crate) fn append_payload(
        &self,
        index: u32,
        len: usize,
        out: &mut Vec<u8>,
        crc: u32,
    ) -> Result<u32> {
        self.payload(len)?;
        self.seg
            .read_append_crc(self.slot(index)? + FRAME_HEADER_SIZE, len, out, crc)
    }

    /// Writes a frame header into slot `index`.
    pub(crate) fn write_frame_header(
        &self,
        index: u32,
        hb: &[u8; FRAME_HEADER_SIZE],
    ) -> Result<()> {
        self.seg.write_bytes(self.slot(index)?, hb)
    }

    /// Copies `payload` into slot `index`, continuing the CRC-32C `crc` over it in
    /// the same sweep; returns the checksum.
    pub(crate) fn write_payload_crc(&self, index: u32, payload: &[u8], crc: u32) -> Result<u32> {
        self.payload(payload.len())?;
        self.seg
            .write_bytes_crc(self.slot(index)? + FRAME_HEADER_SIZE, payload, crc)
    }

    /// Reads from `fd` into the payload of slot `index`, at payload offset `at`, at
    /// most the rest of the slot; returns the byte count (0: end of input).
    pub(crate) fn fill_payload(
        &self,
        index: u32,
        at: usize,
        fd: i32,
    ) -> Result<std::io::Result<usize>> {
        let cap = self.geo.payload_capacity();
        let room = cap
            .checked_sub(at)
            .ok_or_else(|| Error::internal("fill beyond the slot"))?;
        let start = self.slot(index)? + FRAME_HEADER_SIZE + at;
        Ok(self.seg.read_from_fd(start, room, fd))
    }

    /// Continues CRC-32C `crc` over the first `len` payload bytes of slot `index`.
    pub(crate) fn crc_payload(&self, index: u32, len: usize, crc: u32) -> Result<u32> {
        self.payload(len)?;
        self.seg
            .crc32c_append(self.slot(index)? + FRAME_HEADER_SIZE, len, crc)
    }
}
