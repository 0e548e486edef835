//! The 512-bit folding kernel (AVX-512 F/VL + VPCLMULQDQ): Intel from Ice Lake on,
//! AMD from Zen 4 on.
//!
//! The algorithm of [`pclmul`] with four 128-bit blocks per register, all moved by
//! the same distance with one broadcast pair of multipliers; `vpternlogq` XORs the
//! two products and the new data in one instruction. [`LANES`] accumulators of 64
//! bytes per round; at the end they are folded onto the last one, single 64-byte
//! steps take what is left above 64 bytes, the four 128-bit blocks of the register
//! are folded onto the last in one step (each by its own distance, a different pair
//! of multipliers per block), and the 128-bit tail of [`pclmul`] finishes.

use super::pclmul;
use super::poly::fold_pair;
use super::sse42;
use core::arch::x86_64::{
    __m512i, _mm512_clmulepi64_epi128, _mm512_extracti32x4_epi32, _mm512_loadu_si512,
    _mm512_set_epi64, _mm512_setzero_si512, _mm512_storeu_si512, _mm512_ternarylogic_epi64,
    _mm512_xor_si512, _mm512_zextsi128_si512, _mm_ternarylogic_epi64, _mm_xor_si128,
};

/// Accumulators, of 64 bytes each: independent chains, so that the multiplier's
/// latency is hidden. Against 8, side by side on Sapphire Rapids: the same from
/// 4 KiB up, 10% slower at 1 KiB, 25% faster at 256 B (one round is 256 bytes).
const LANES: usize = 4;
/// Bytes per round.
const BLOCK: usize = LANES * 64;
/// Shorter inputs go to one chain of `crc32`, which wins below this (measured).
const MIN_FOLD: usize = 64;
/// Inputs from this long have their loads (CRC alone) or stores (copying) aligned to
/// 64 bytes first ([`pclmul::head`]): a 64-byte access that is not aligned spans two
/// cache lines. Measured on a Sapphire Rapids Xeon, source or destination misaligned
/// by 13, 16 or 32 bytes: aligning made 64 KiB 27% faster (CRC) and 38% faster (copy);
/// the head's `crc32` chain (up to 63 bytes, before the folds can start) made 1-2 KiB
/// slower; the two cross near 4 KiB (CRC) and 2 KiB (copy).
const ALIGN_FROM: usize = 4096;
/// See [`ALIGN_FROM`].
const ALIGN_COPY_FROM: usize = 2048;

/// Four pairs of multipliers, `k[i]` for the 128-bit block `i` (in memory order).
#[inline]
#[target_feature(enable = "avx512f")]
fn konst4(k: [(u64, u64); 4]) -> __m512i {
    _mm512_set_epi64(
        k[3].1 as i64,
        k[3].0 as i64,
        k[2].1 as i64,
        k[2].0 as i64,
        k[1].1 as i64,
        k[1].0 as i64,
        k[0].1 as i64,
        k[0].0 as i64,
    )
}

/// One pair of multipliers in all four 128-bit blocks.
#[inline]
#[target_feature(enable = "avx512f")]
fn konst(k: (u64, u64)) -> __m512i {
    konst4([k; 4])
}

/// The four 128-bit blocks of `x` each moved by its distance in `k`, XORed with `y`.
#[inline]
#[target_feature(enable = "avx512f,vpclmulqdq")]
fn fold(x: __m512i, k: __m512i, y: __m512i) -> __m512i {
    _mm512_ternarylogic_epi64(
        _mm512_clmulepi64_epi128(x, k, 0x00),
        _mm512_clmulepi64_epi128(x, k, 0x11),
        y,
        0x96, // a ^ b ^ c
    )
}

/// Loads the 64 bytes at `at` (and stores them to `dst` when `COPY`).
///
/// # Safety
/// AVX-512 F; `at + 64` bytes are readable at `src`, and when `COPY` writable at
/// `dst`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load<const COPY: bool>(src: *const u8, dst: *mut u8, at: usize) -> __m512i {
    // SAFETY: in bounds (caller); an unaligned raw load, no reference formed.
    let v = unsafe { _mm512_loadu_si512(src.add(at).cast()) };
    if COPY {
        // SAFETY: in bounds of the destination (caller); the value just loaded.
        unsafe { _mm512_storeu_si512(dst.add(at).cast(), v) };
    }
    v
}

/// Multipliers that move accumulator `j` onto the last one.
const ONTO_LAST: [(u64, u64); LANES - 1] = {
    let mut k = [(0, 0); LANES - 1];
    let mut j = 0;
    while j < LANES - 1 {
        k[j] = fold_pair(((LANES - 1 - j) * 512) as u64);
        j += 1;
    }
    k
};

/// Multipliers that move the 128-bit blocks 0, 1, 2 of a register onto block 3;
/// block 3's are zero (it stays as it is, added separately).
const ONTO_BLOCK3: [(u64, u64); 4] = [fold_pair(384), fold_pair(256), fold_pair(128), (0, 0)];

/// Continues register `reg` over `len` bytes at `src`; when `COPY`, also stores them
/// to `dst`, every vector stored from the register it is folded from.
///
/// # Safety
/// The CPU has AVX-512 F and VL, VPCLMULQDQ, PCLMULQDQ and SSE 4.2. `src` is valid
/// for reads of `len` bytes (they may change under us: each is loaded once, never
/// referenced); when `COPY`, `dst` is valid for writes of `len` bytes and does not
/// overlap the source; otherwise `dst` is unused.
#[target_feature(enable = "avx512f,avx512vl,vpclmulqdq,pclmulqdq,sse4.2")]
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
    let align_from = if COPY { ALIGN_COPY_FROM } else { ALIGN_FROM };
    let h = pclmul::head::<COPY>(src, dst, len, 64, align_from);
    // SAFETY: h <= len (h < 64 <= MIN_FOLD <= len when not 0); the caller's contract.
    let (reg, src, dst, len) = unsafe {
        (
            sse42::short::<COPY>(reg, src, dst, h),
            src.add(h),
            dst.wrapping_add(h),
            len - h,
        )
    };
    if len < MIN_FOLD {
        // SAFETY: the caller's contract, for the rest.
        return unsafe { sse42::short::<COPY>(reg, src, dst, len) };
    }
    let first = _mm512_zextsi128_si512(pclmul::register(reg));
    let mut x;
    let mut at;
    if len >= BLOCK {
        let mut acc = [first; LANES];
        for (j, a) in acc.iter_mut().enumerate() {
            // SAFETY: j * 64 + 64 <= BLOCK <= len.
            *a = unsafe { load::<COPY>(src, dst, j * 64) };
        }
        acc[0] = _mm512_xor_si512(acc[0], first);
        let k = konst(const { fold_pair(BLOCK as u64 * 8) });
        at = BLOCK;
        while len - at >= BLOCK {
            for (j, a) in acc.iter_mut().enumerate() {
                // SAFETY: at + j * 64 + 64 <= at + BLOCK <= len.
                *a = fold(*a, k, unsafe { load::<COPY>(src, dst, at + j * 64) });
            }
            at += BLOCK;
        }
        x = acc[LANES - 1];
        for (j, a) in acc[..LANES - 1].iter().enumerate() {
            x = fold(*a, konst(ONTO_LAST[j]), x);
        }
    } else {
        // SAFETY: 64 <= MIN_FOLD <= len.
        let v = unsafe { load::<COPY>(src, dst, 0) };
        x = _mm512_xor_si512(v, first);
        at = 64;
    }
    let k64 = konst(const { fold_pair(512) });
    while len - at >= 64 {
        // SAFETY: at + 64 <= len.
        x = fold(x, k64, unsafe { load::<COPY>(src, dst, at) });
        at += 64;
    }
    // Blocks 0..2 onto block 3, in parallel (block 3's multipliers are zero), then
    // the three products and block 3 itself XORed together.
    let t = fold(x, konst4(ONTO_BLOCK3), _mm512_setzero_si512());
    let x = _mm_xor_si128(
        _mm_ternarylogic_epi64(
            _mm512_extracti32x4_epi32(t, 0),
            _mm512_extracti32x4_epi32(t, 1),
            _mm512_extracti32x4_epi32(t, 2),
            0x96,
        ),
        _mm512_extracti32x4_epi32(x, 3),
    );
    // SAFETY: `x` covers the message up to `at` <= len; the caller's contract.
    unsafe { pclmul::tail::<COPY>(x, src, dst, at, len) }
}
