//! The 256-bit folding kernel (AVX2 + VPCLMULQDQ, no AVX-512): for AMD Zen 3 and
//! other CPUs that multiply carry-lessly on 256-bit vectors but have no 512-bit
//! registers, where the 128-bit kernel would run at half the multiplier's width.
//!
//! The algorithm is the 128-bit one ([`pclmul`]) with two 128-bit blocks per
//! register: each 128-bit half of an accumulator moves forward by the same distance,
//! so one broadcast pair of multipliers serves both. [`LANES`] accumulators of 32
//! bytes are folded per round; at the end they are folded onto the last one, single
//! 32-byte steps take what is left above 32 bytes, the register's low half is folded
//! onto its high half, and the 128-bit tail of [`pclmul`] finishes.
//!
//! Without AVX-512 there is no three-way XOR (`vpternlogq`): a fold is two
//! multiplications and two XORs.

use super::pclmul;
use super::poly::fold_pair;
use super::sse42;
use core::arch::x86_64::{
    __m256i, _mm256_castsi256_si128, _mm256_clmulepi64_epi128, _mm256_extracti128_si256,
    _mm256_loadu_si256, _mm256_set_epi64x, _mm256_storeu_si256, _mm256_xor_si256,
    _mm256_zextsi128_si256, _mm_xor_si128,
};

/// Accumulators, of 32 bytes each: independent chains, so that the multiplier's
/// latency is hidden. Against 4, side by side on Sapphire Rapids: the same from
/// 4 KiB up, 20% faster at 512 B, 25% slower at 128 B (one 256-byte round is then
/// out of reach and single 32-byte steps take it all, one after the other).
const LANES: usize = 8;
/// Bytes per round.
const BLOCK: usize = LANES * 32;
/// Shorter inputs go to one chain of `crc32`, which wins below this (measured).
const MIN_FOLD: usize = 64;
/// Inputs from this long have their loads (CRC alone) or stores (copying) aligned to
/// 32 bytes first ([`pclmul::head`]), so that no access spans two cache lines. On a
/// Sapphire Rapids Xeon the 256-bit kernel is bound by the multiplier, and aligning
/// only paid for copies from L2 (64 KiB: 52 against 37 GB/s, destination misaligned
/// by 16); the thresholds are set where the head (up to 31 bytes of `crc32`) is noise.
const ALIGN_FROM: usize = 8192;
/// See [`ALIGN_FROM`].
const ALIGN_COPY_FROM: usize = 4096;

/// A pair of multipliers in both 128-bit halves.
#[inline]
#[target_feature(enable = "avx2")]
fn konst(k: (u64, u64)) -> __m256i {
    _mm256_set_epi64x(k.1 as i64, k.0 as i64, k.1 as i64, k.0 as i64)
}

/// Both 128-bit halves of `x` moved forward by the distance of `k`, XORed with `y`.
#[inline]
#[target_feature(enable = "avx2,vpclmulqdq")]
fn fold(x: __m256i, k: __m256i, y: __m256i) -> __m256i {
    _mm256_xor_si256(
        _mm256_xor_si256(
            _mm256_clmulepi64_epi128(x, k, 0x00),
            _mm256_clmulepi64_epi128(x, k, 0x11),
        ),
        y,
    )
}

/// Loads the 32 bytes at `at` (and stores them to `dst` when `COPY`).
///
/// # Safety
/// AVX; `at + 32` bytes are readable at `src`, and when `COPY` writable at `dst`.
#[inline]
#[target_feature(enable = "avx")]
unsafe fn load<const COPY: bool>(src: *const u8, dst: *mut u8, at: usize) -> __m256i {
    // SAFETY: in bounds (caller); an unaligned raw load, no reference formed.
    let v = unsafe { _mm256_loadu_si256(src.add(at).cast()) };
    if COPY {
        // SAFETY: in bounds of the destination (caller); the value just loaded.
        unsafe { _mm256_storeu_si256(dst.add(at).cast(), v) };
    }
    v
}

/// Multipliers that move accumulator `j` onto the last one.
const ONTO_LAST: [(u64, u64); LANES - 1] = {
    let mut k = [(0, 0); LANES - 1];
    let mut j = 0;
    while j < LANES - 1 {
        k[j] = fold_pair(((LANES - 1 - j) * 256) as u64);
        j += 1;
    }
    k
};

/// Continues register `reg` over `len` bytes at `src`; when `COPY`, also stores them
/// to `dst`, every vector stored from the register it is folded from.
///
/// # Safety
/// The CPU has AVX2, VPCLMULQDQ, PCLMULQDQ and SSE 4.2. `src` is valid for reads of
/// `len` bytes (they may change under us: each is loaded once, never referenced);
/// when `COPY`, `dst` is valid for writes of `len` bytes and does not overlap the
/// source; otherwise `dst` is unused.
#[target_feature(enable = "avx2,vpclmulqdq,pclmulqdq,sse4.2")]
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
    let h = pclmul::head::<COPY>(src, dst, len, 32, align_from);
    // SAFETY: h <= len (h < 32 <= MIN_FOLD <= len when not 0); the caller's contract.
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
    let first = _mm256_zextsi128_si256(pclmul::register(reg));
    let mut x;
    let mut at;
    if len >= BLOCK {
        let mut acc = [first; LANES];
        for (j, a) in acc.iter_mut().enumerate() {
            // SAFETY: j * 32 + 32 <= BLOCK <= len.
            *a = unsafe { load::<COPY>(src, dst, j * 32) };
        }
        acc[0] = _mm256_xor_si256(acc[0], first);
        let k = konst(const { fold_pair(BLOCK as u64 * 8) });
        at = BLOCK;
        while len - at >= BLOCK {
            for (j, a) in acc.iter_mut().enumerate() {
                // SAFETY: at + j * 32 + 32 <= at + BLOCK <= len.
                *a = fold(*a, k, unsafe { load::<COPY>(src, dst, at + j * 32) });
            }
            at += BLOCK;
        }
        x = acc[LANES - 1];
        for (j, a) in acc[..LANES - 1].iter().enumerate() {
            x = fold(*a, konst(ONTO_LAST[j]), x);
        }
    } else {
        // SAFETY: 32 <= MIN_FOLD <= len.
        x = _mm256_xor_si256(unsafe { load::<COPY>(src, dst, 0) }, first);
        at = 32;
    }
    let k32 = konst(const { fold_pair(256) });
    while len - at >= 32 {
        // SAFETY: at + 32 <= len.
        x = fold(x, k32, unsafe { load::<COPY>(src, dst, at) });
        at += 32;
    }
    // The low half is 128 bits before the high half.
    let lo = _mm256_castsi256_si128(x);
    let hi = _mm256_extracti128_si256(x, 1);
    let x = _mm_xor_si128(
        pclmul::fold(lo, pclmul::konst(const { fold_pair(128) })),
        hi,
    );
    // SAFETY: `x` covers the message up to `at` <= len; the caller's contract.
    unsafe { pclmul::tail::<COPY>(x, src, dst, at, len) }
}
