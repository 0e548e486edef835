//! The SSE 4.2 kernel: the `crc32` instruction, eight bytes per instruction.
//!
//! One `crc32` has a latency of three cycles and a throughput of one per cycle, so a
//! single chain of them runs at a third of the instruction's rate. [`short`] is that
//! single chain: no set-up at all, the best there is for the 28-byte frame header
//! and the tails of the folding kernels, which call it. [`run`] splits long inputs
//! into three runs of equal length checksummed side by side (three independent
//! chains fill the pipeline) and joins the three registers afterwards: the register
//! of the first run is shifted over the second (multiplied by `x^(8n)`, with a table
//! per byte, see [`poly::mul_tables`]), XORed with the second's, and the same again
//! for the third. This needs no carry-less multiplication, so it also serves CPUs
//! that have SSE 4.2 but not PCLMULQDQ.

use super::poly::{self, mul_by_table, xpow};
use core::arch::x86_64::{_mm_crc32_u16, _mm_crc32_u64, _mm_crc32_u8};

/// Bytes per run in a long three-way step: the joining costs two table shifts
/// (eight loads), noise against 3 x 8 KiB.
const LONG: usize = 8192;
/// Bytes per run in a short three-way step, for what is left after the long steps.
const SHORT: usize = 256;

/// Shifts a register over `LONG` bytes.
static SHIFT_LONG: [[u32; 256]; 4] = poly::mul_tables(xpow(8 * LONG as u64));
/// Shifts a register over `SHORT` bytes.
static SHIFT_SHORT: [[u32; 256]; 4] = poly::mul_tables(xpow(8 * SHORT as u64));

/// Loads the `u64` at `at` (and stores it to `dst` when `COPY`).
///
/// # Safety
/// `at + 8` bytes are readable at `src`, and when `COPY` writable at `dst`.
#[inline(always)]
unsafe fn load8<const COPY: bool>(src: *const u8, dst: *mut u8, at: usize) -> u64 {
    // SAFETY: in bounds (caller); an unaligned raw load, no reference formed.
    let v = unsafe { src.add(at).cast::<u64>().read_unaligned() };
    if COPY {
        // SAFETY: in bounds of the destination (caller).
        unsafe { dst.add(at).cast::<u64>().write_unaligned(v) };
    }
    v
}

/// Continues register `reg` over `len` bytes at `src` with one chain of `crc32`
/// instructions; when `COPY`, also stores the bytes to `dst`.
///
/// # Safety
/// The CPU has SSE 4.2. `src` is valid for reads of `len` bytes (they may change
/// under us: each is loaded once, never referenced); when `COPY`, `dst` is valid for
/// writes of `len` bytes and does not overlap the source; otherwise `dst` is unused.
#[inline]
#[target_feature(enable = "sse4.2")]
pub(super) unsafe fn short<const COPY: bool>(
    reg: u32,
    src: *const u8,
    dst: *mut u8,
    len: usize,
) -> u32 {
    let mut r = u64::from(reg);
    let mut at = 0;
    while len - at >= 8 {
        // SAFETY: at + 8 <= len (loop condition) and the caller's contract.
        r = _mm_crc32_u64(r, unsafe { load8::<COPY>(src, dst, at) });
        at += 8;
    }
    let mut reg = r as u32;
    if len - at >= 4 {
        // SAFETY: at + 4 <= len; an unaligned raw load.
        let v = unsafe { src.add(at).cast::<u32>().read_unaligned() };
        if COPY {
            // SAFETY: at + 4 <= len, inside the destination.
            unsafe { dst.add(at).cast::<u32>().write_unaligned(v) };
        }
        reg = core::arch::x86_64::_mm_crc32_u32(reg, v);
        at += 4;
    }
    if len - at >= 2 {
        // SAFETY: at + 2 <= len; an unaligned raw load.
        let v = unsafe { src.add(at).cast::<u16>().read_unaligned() };
        if COPY {
            // SAFETY: at + 2 <= len, inside the destination.
            unsafe { dst.add(at).cast::<u16>().write_unaligned(v) };
        }
        reg = _mm_crc32_u16(reg, v);
        at += 2;
    }
    if len - at >= 1 {
        // SAFETY: at < len.
        let v = unsafe { src.add(at).read() };
        if COPY {
            // SAFETY: at < len, inside the destination.
            unsafe { dst.add(at).write(v) };
        }
        reg = _mm_crc32_u8(reg, v);
    }
    reg
}

/// One three-way step over `3 * N` bytes at `at`: three chains over consecutive runs
/// of `N` bytes, joined with `shift` (the tables of `x^(8N)`).
///
/// # Safety
/// SSE 4.2; `at + 3 * N` bytes readable at `src` (and writable at `dst` if `COPY`).
#[inline]
#[target_feature(enable = "sse4.2")]
unsafe fn three_way<const COPY: bool, const N: usize>(
    reg: u32,
    src: *const u8,
    dst: *mut u8,
    at: usize,
    shift: &[[u32; 256]; 4],
) -> u32 {
    let (mut a, mut b, mut c) = (u64::from(reg), 0u64, 0u64);
    let mut i = at;
    while i < at + N {
        // SAFETY: i + 2N + 8 <= at + 3N, in bounds (caller).
        let (va, vb, vc) = unsafe {
            (
                load8::<COPY>(src, dst, i),
                load8::<COPY>(src, dst, i + N),
                load8::<COPY>(src, dst, i + 2 * N),
            )
        };
        a = _mm_crc32_u64(a, va);
        b = _mm_crc32_u64(b, vb);
        c = _mm_crc32_u64(c, vc);
        i += 8;
    }
    // The second and third chains started from zero: each is its run's own
    // contribution, and the registers before them move over them by multiplication.
    let ab = mul_by_table(shift, a as u32) ^ b as u32;
    mul_by_table(shift, ab) ^ c as u32
}

/// Continues register `reg` over `len` bytes at `src`: three chains side by side for
/// long inputs, one chain for the rest; when `COPY`, also stores them to `dst`.
///
/// # Safety
/// As for [`short`].
#[target_feature(enable = "sse4.2")]
pub(super) unsafe fn run<const COPY: bool>(
    mut reg: u32,
    src: *const u8,
    dst: *mut u8,
    len: usize,
) -> u32 {
    let mut at = 0;
    while len - at >= 3 * LONG {
        // SAFETY: 3 * LONG bytes remain at `at` (loop condition); the caller's contract.
        reg = unsafe { three_way::<COPY, LONG>(reg, src, dst, at, &SHIFT_LONG) };
        at += 3 * LONG;
    }
    while len - at >= 3 * SHORT {
        // SAFETY: as above, for SHORT.
        reg = unsafe { three_way::<COPY, SHORT>(reg, src, dst, at, &SHIFT_SHORT) };
        at += 3 * SHORT;
    }
    // SAFETY: at <= len, so the rest is in bounds; `dst` is only offset, and only
    // used when COPY (then it is in bounds too).
    unsafe { short::<COPY>(reg, src.add(at), dst.wrapping_add(at), len - at) }
}
