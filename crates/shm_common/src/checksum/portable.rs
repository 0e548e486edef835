//! The portable kernel: slicing-by-8 tables, eight bytes per step, on any CPU. It is
//! the fallback where none of the x86 instructions exist (and on every other
//! architecture), at a few GB/s: correct everywhere, fast nowhere.
//!
//! Like every kernel it works on the raw CRC register (the caller inverts) and reads
//! its source only through raw loads, each byte once; the copying variant stores each
//! loaded word to the destination before folding that same value in.

use super::poly::SLICE8;

/// Continues register `reg` over `len` bytes at `src`; when `COPY`, also stores them
/// to `dst`.
///
/// # Safety
/// `src` is valid for reads of `len` bytes (its bytes may change under us: they are
/// only loaded, never referenced); when `COPY`, `dst` is valid for writes of `len`
/// bytes and does not overlap the source. When not `COPY`, `dst` is never used.
pub(super) unsafe fn run<const COPY: bool>(
    mut reg: u32,
    src: *const u8,
    dst: *mut u8,
    len: usize,
) -> u32 {
    let t = &SLICE8;
    let mut at = 0;
    while len - at >= 8 {
        // SAFETY: at + 8 <= len, inside the source (caller); an unaligned raw load.
        let v = unsafe { src.add(at).cast::<u64>().read_unaligned() };
        if COPY {
            // SAFETY: at + 8 <= len, inside the destination (caller).
            unsafe { dst.add(at).cast::<u64>().write_unaligned(v) };
        }
        // Little-endian: the first four bytes are the low half, and they meet the
        // register (the register is the first 32 bits of what follows it).
        let v = u64::from_le(v);
        let lo = (v as u32) ^ reg;
        let hi = (v >> 32) as u32;
        reg = t[7][(lo & 0xff) as usize]
            ^ t[6][((lo >> 8) & 0xff) as usize]
            ^ t[5][((lo >> 16) & 0xff) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xff) as usize]
            ^ t[2][((hi >> 8) & 0xff) as usize]
            ^ t[1][((hi >> 16) & 0xff) as usize]
            ^ t[0][(hi >> 24) as usize];
        at += 8;
    }
    while at < len {
        // SAFETY: at < len, inside the source (caller).
        let b = unsafe { src.add(at).read() };
        if COPY {
            // SAFETY: at < len, inside the destination (caller).
            unsafe { dst.add(at).write(b) };
        }
        reg = (reg >> 8) ^ t[0][((reg ^ u32::from(b)) & 0xff) as usize];
        at += 1;
    }
    reg
}
