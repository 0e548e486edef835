//! The 128-bit folding kernel (PCLMULQDQ, SSE 4.2): for x86-64 CPUs from 2010 on
//! that lack VPCLMULQDQ. It also holds the 128-bit steps the wider kernels end with.
//!
//! # Folding
//! Eight 128-bit accumulators hold the message 128 bytes at a time. Each round moves
//! every accumulator forward over the 128 bytes that follow it (two carry-less
//! multiplications, [`poly::fold_pair`]) and XORs in those bytes, so the eight
//! chains are independent and the multiplier's latency is hidden. At the end the
//! eight are folded onto the last one, the remaining 16-byte blocks are folded in one
//! at a time, and two `crc32` instructions reduce the 128 bits to the 32-bit register
//! (`crc32` of a zero register over 16 bytes is exactly `A·x^32 mod P`): no Barrett
//! reduction needed. What is left (< 16 bytes) goes to [`sse42::short`].
//!
//! The register enters by XOR into the first four bytes: `r·x^(8n) + M·x^32` equals
//! `(r·x^(8n-32) + M)·x^32`.

use super::poly::fold_pair;
use super::sse42;
use core::arch::x86_64::{
    __m128i, _mm_clmulepi64_si128, _mm_crc32_u64, _mm_cvtsi128_si64, _mm_cvtsi32_si128,
    _mm_extract_epi64, _mm_loadu_si128, _mm_set_epi64x, _mm_storeu_si128, _mm_xor_si128,
};

/// Accumulators, of 16 bytes each.
const LANES: usize = 8;
/// Bytes per round.
const BLOCK: usize = LANES * 16;
/// Shorter inputs go to one chain of `crc32`: below one round, the folds would run
/// one 16-byte block after another, and measured 5% slower than `crc32` at 64-96
/// bytes (twice as fast at 128).
const MIN_FOLD: usize = BLOCK;

/// The multipliers that move a block `bits` forward, in one register (low qword's
/// multiplier in the low half, as [`fold`] expects).
#[inline]
#[target_feature(enable = "sse2")]
pub(super) fn konst(k: (u64, u64)) -> __m128i {
    _mm_set_epi64x(k.1 as i64, k.0 as i64)
}

/// `x` moved forward by the distance of `k` (not yet XORed with what is there).
#[inline]
#[target_feature(enable = "pclmulqdq")]
pub(super) fn fold(x: __m128i, k: __m128i) -> __m128i {
    _mm_xor_si128(
        _mm_clmulepi64_si128(x, k, 0x00),
        _mm_clmulepi64_si128(x, k, 0x11),
    )
}

/// The register after a final 16-byte block `x`, from a zero register.
#[inline]
#[target_feature(enable = "sse4.2")]
pub(super) fn finish(x: __m128i) -> u32 {
    let lo = _mm_cvtsi128_si64(x) as u64;
    let hi = _mm_extract_epi64(x, 1) as u64;
    _mm_crc32_u64(_mm_crc32_u64(0, lo), hi) as u32
}

/// The register as a 16-byte block to XOR into the first one.
#[inline]
#[target_feature(enable = "sse2")]
pub(super) fn register(reg: u32) -> __m128i {
    _mm_cvtsi32_si128(reg as i32)
}

/// Loads the 16 bytes at `at` (and stores them to `dst` when `COPY`).
///
/// # Safety
/// `at + 16` bytes are readable at `src`, and when `COPY` writable at `dst`.
#[inline(always)]
pub(super) unsafe fn load<const COPY: bool>(src: *const u8, dst: *mut u8, at: usize) -> __m128i {
    // SAFETY: in bounds (caller); an unaligned raw load, no reference formed.
    let v = unsafe { _mm_loadu_si128(src.add(at).cast()) };
    if COPY {
        // SAFETY: in bounds of the destination (caller); the value just loaded.
        unsafe { _mm_storeu_si128(dst.add(at).cast(), v) };
    }
    v
}

/// How many bytes to take one at a time before the vector loop of a kernel whose
/// vectors have `align` bytes, so that its vector accesses are aligned: the stores
/// when copying (a store across two cache lines costs twice), the loads otherwise.
/// None for inputs under `from` bytes, where the head costs more than it saves.
#[inline(always)]
pub(super) fn head<const COPY: bool>(
    src: *const u8,
    dst: *mut u8,
    len: usize,
    align: usize,
    from: usize,
) -> usize {
    if len < from {
        return 0;
    }
    let at = if COPY { dst as usize } else { src as usize };
    at.wrapping_neg() & (align - 1)
}

/// Folds the 16-byte blocks from `at` onto `x`, reduces it, and finishes the last
/// bytes with `crc32`: the common end of every folding kernel. Returns the register.
///
/// # Safety
/// PCLMULQDQ and SSE 4.2; `x` holds the message up to `at` (`at <= len`); the
/// pointers as for [`run`].
#[inline]
#[target_feature(enable = "pclmulqdq,sse4.2")]
pub(super) unsafe fn tail<const COPY: bool>(
    mut x: __m128i,
    src: *const u8,
    dst: *mut u8,
    mut at: usize,
    len: usize,
) -> u32 {
    let k16 = konst(const { fold_pair(128) });
    while len - at >= 16 {
        // SAFETY: at + 16 <= len.
        x = _mm_xor_si128(fold(x, k16), unsafe { load::<COPY>(src, dst, at) });
        at += 16;
    }
    // SAFETY: at <= len; `dst` is only offset here and used only when COPY.
    unsafe { sse42::short::<COPY>(finish(x), src.add(at), dst.wrapping_add(at), len - at) }
}

/// Multipliers that move accumulator `j` of [`LANES`] onto the last one.
const ONTO_LAST: [(u64, u64); LANES - 1] = {
    let mut k = [(0, 0); LANES - 1];
    let mut j = 0;
    while j < LANES - 1 {
        k[j] = fold_pair(((LANES - 1 - j) * 128) as u64);
        j += 1;
    }
    k
};

/// Continues register `reg` over `len` bytes at `src`; when `COPY`, also stores them
/// to `dst`, every vector stored from the register it is folded from.
///
/// # Safety
/// The CPU has PCLMULQDQ and SSE 4.2. `src` is valid for reads of `len` bytes (they
/// may change under us: each is loaded once, never referenced); when `COPY`, `dst`
/// is valid for writes of `len` bytes and does not overlap the source; otherwise
/// `dst` is unused.
#[target_feature(enable = "pclmulqdq,sse4.2")]
pub(super) unsafe fn run<const COPY: bool>(
    reg: u32,
    src: *const u8,
    dst: *mut u8,
    len: usize,
) -> u32 {
    if len < MIN_FOLD {
        // SAFETY: the caller's contract.
        return unsafe { sse42::short::<COPY>(reg, src, dst, len) };
    }
    let mut acc = [register(0); LANES];
    for (j, a) in acc.iter_mut().enumerate() {
        // SAFETY: j * 16 + 16 <= BLOCK = MIN_FOLD <= len.
        *a = unsafe { load::<COPY>(src, dst, j * 16) };
    }
    acc[0] = _mm_xor_si128(acc[0], register(reg));
    let k = konst(const { fold_pair(BLOCK as u64 * 8) });
    let mut at = BLOCK;
    while len - at >= BLOCK {
        for (j, a) in acc.iter_mut().enumerate() {
            // SAFETY: at + j * 16 + 16 <= at + BLOCK <= len.
            *a = _mm_xor_si128(fold(*a, k), unsafe { load::<COPY>(src, dst, at + j * 16) });
        }
        at += BLOCK;
    }
    let mut x = acc[LANES - 1];
    for (j, a) in acc[..LANES - 1].iter().enumerate() {
        x = _mm_xor_si128(x, fold(*a, konst(ONTO_LAST[j])));
    }
    // SAFETY: `x` covers the message up to `at` <= len; the caller's contract.
    unsafe { tail::<COPY>(x, src, dst, at, len) }
}
