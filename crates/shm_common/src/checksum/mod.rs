//! CRC-32C (Castagnoli), the checksum of every frame (PROTOCOL.md §5), at memory
//! speed on any x86-64 CPU, and a fused copy + checksum for the reader.
//!
//! # Kernels
//! Five implementations compute the same function; one is chosen at the first call by
//! the CPU's features and kept ([`kernel`] names it, [`kernels`] lists those this CPU
//! can run, preferred first):
//!
//! | name             | needs                                        | how               | for |
//! |------------------|----------------------------------------------|-------------------|-----|
//! | `avx512-vpclmul` | AVX-512 F+VL, VPCLMULQDQ, PCLMULQDQ, SSE 4.2 | 4 x 512-bit folds | Intel Ice Lake+, AMD Zen 4+ |
//! | `avx2-vpclmul`   | AVX2, VPCLMULQDQ, PCLMULQDQ, SSE 4.2         | 8 x 256-bit folds | AMD Zen 3, Intel client/E-core parts without AVX-512 |
//! | `sse-pclmul`     | PCLMULQDQ, SSE 4.2                           | 8 x 128-bit folds | x86-64 from 2010 on |
//! | `sse42`          | SSE 4.2                                      | `crc32`, 3 chains | SSE 4.2 without PCLMULQDQ |
//! | `portable`       | nothing                                      | slicing-by-8      | everything else, all non-x86 |
//!
//! The order is by width of the carry-less multiplication, which bounds every
//! folding kernel: each 16 bytes cost two 64 x 64-bit products whatever the vector
//! width, so twice the width is twice the bytes per multiplier slot. The folding
//! kernels hand inputs under 64 bytes (128 for the 128-bit one: the 28-byte frame
//! header, small payloads) and their last few bytes to a single chain of `crc32`
//! instructions, which has no set-up cost. `SHM_CRC_KERNEL=<name>` in the environment forces a kernel (for
//! benchmarks, and to run another CPU's path here); a name that is unknown or that
//! this CPU cannot run is ignored. Every kernel gives the same result.
//!
//! Measured on this project's 2-vCPU Sapphire Rapids VM (GB/s, median of 7 rounds
//! interleaving all candidates, `shm-bench`'s checksum section; memcpy 36 / 140 / 46
//! / 30 GB/s in the same rounds; a shared, noisy machine: the ratios are what hold):
//!
//! | kernel           | 64 B | 4 KiB | 64 KiB | 1 MiB | copy+CRC 64 KiB | copy+CRC 1 MiB |
//! |------------------|-----:|------:|-------:|------:|----------------:|---------------:|
//! | `avx512-vpclmul` | 11   | 113   | 110    | 114   | 46 (0.99x memcpy) | 29 (0.92x)   |
//! | `avx2-vpclmul`   | 11   | 62    | 62     | 64    | 49 (1.07x)        | 28 (0.91x)   |
//! | `sse-pclmul`     | 9    | 31    | 32     | 32    | 31 (0.68x)        | 25 (0.81x)   |
//! | `sse42`          | 10   | 24    | 29     | 32    | 22 (0.48x)        | 17 (0.55x)   |
//! | `portable`       | 2    | 2     | 2      | 2     | 2                 | 2            |
//!
//! The `crc-fast` crate this replaces ran 2.2 / 9 / 64 / 106 / 111 GB/s at 28 B /
//! 256 B / 4 KiB / 64 KiB / 1 MiB beside `avx512-vpclmul`'s 8.2 / 31 / 111 / 106 /
//! 113 (the `crc32c` crate, which took inputs under 256 bytes before, 3.8 GB/s at
//! 28 B); and it has no 256-bit path, so on AVX2-only CPUs it fell back to 128 bits.
//!
//! # Shared memory
//! The crate-private raw entry points, `crc32c_append_raw` and `copy_crc32c`,
//! read their source through raw loads only, never through a slice, so that they may
//! be pointed at a slot another process can write; `copy_crc32c` copies and
//! checksums in one sweep and returns the checksum of exactly the bytes it stored.
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
mod pclmul;
mod poly;
mod portable;
#[cfg(target_arch = "x86_64")]
mod sse42;
#[cfg(test)]
mod tests;
// The VPCLMULQDQ and AVX-512 intrinsics are stable from Rust 1.89 (so was the
// `crc-fast` crate these replace); the rest of the crate keeps the declared 1.85.
#[cfg(target_arch = "x86_64")]
#[clippy::msrv = "1.89"]
mod vpclmul256;
#[cfg(target_arch = "x86_64")]
#[clippy::msrv = "1.89"]
mod vpclmul512;

use std::sync::OnceLock;

/// A kernel's body, on the raw register (not inverted): `(reg, src, dst, len)`.
/// The `crc` variant never uses `dst`.
type Body = unsafe fn(u32, *const u8, *mut u8, usize) -> u32;

/// One implementation: its name, whether this CPU can run it, and its two bodies.
struct Imp {
    name: &'static str,
    available: fn() -> bool,
    crc: Body,
    copy: Body,
}

/// The portable kernel: always available, the last resort.
static PORTABLE: Imp = Imp {
    name: "portable",
    available: || true,
    crc: portable::run::<false>,
    copy: portable::run::<true>,
};

/// Every kernel of this architecture, preferred first; the portable one is last.
#[cfg(target_arch = "x86_64")]
static ALL: [&Imp; 5] = [
    &Imp {
        name: "avx512-vpclmul",
        available: || {
            std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512vl")
                && std::is_x86_feature_detected!("vpclmulqdq")
                && std::is_x86_feature_detected!("pclmulqdq")
                && std::is_x86_feature_detected!("sse4.2")
        },
        crc: vpclmul512::run::<false>,
        copy: vpclmul512::run::<true>,
    },
    &Imp {
        name: "avx2-vpclmul",
        available: || {
            std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("vpclmulqdq")
                && std::is_x86_feature_detected!("pclmulqdq")
                && std::is_x86_feature_detected!("sse4.2")
        },
        crc: vpclmul256::run::<false>,
        copy: vpclmul256::run::<true>,
    },
    &Imp {
        name: "sse-pclmul",
        available: || {
            std::is_x86_feature_detected!("pclmulqdq") && std::is_x86_feature_detected!("sse4.2")
        },
        crc: pclmul::run::<false>,
        copy: pclmul::run::<true>,
    },
    &Imp {
        name: "sse42",
        available: || std::is_x86_feature_detected!("sse4.2"),
        crc: sse42::run::<false>,
        copy: sse42::run::<true>,
    },
    &PORTABLE,
];

/// Every kernel of this architecture: only the portable one off x86-64.
#[cfg(not(target_arch = "x86_64"))]
static ALL: [&Imp; 1] = [&PORTABLE];

/// The environment variable that forces a kernel by name.
pub const OVERRIDE_VAR: &str = "SHM_CRC_KERNEL";

/// The kernel `wanted` names if this CPU can run it, else the first one it can run.
fn choose(wanted: Option<&str>) -> &'static Imp {
    let mut usable = ALL.iter().copied().filter(|k| (k.available)());
    let first = usable.clone().next().unwrap_or(&PORTABLE);
    wanted
        .and_then(|w| usable.find(|k| k.name == w))
        .unwrap_or(first)
}

/// The kernel in use, chosen at the first call.
#[inline]
fn selected() -> &'static Imp {
    static SELECTED: OnceLock<&'static Imp> = OnceLock::new();
    SELECTED.get_or_init(|| choose(std::env::var(OVERRIDE_VAR).ok().as_deref()))
}

/// The name of the kernel in use (`avx512-vpclmul`, `avx2-vpclmul`, `sse-pclmul`,
/// `sse42` or `portable`): the best this CPU can run, or the one `SHM_CRC_KERNEL`
/// names if it can run that.
pub fn kernel() -> &'static str {
    selected().name
}

/// The kernels this CPU can run, preferred first (the first is the one [`kernel`]
/// picks without an override). For benchmarks and tests.
pub fn kernels() -> Vec<Kernel> {
    ALL.iter()
        .copied()
        .filter(|k| (k.available)())
        .map(Kernel)
        .collect()
}

/// One kernel this CPU can run, from [`kernels`]: compute with it directly, whatever
/// the selection.
#[derive(Clone, Copy)]
pub struct Kernel(&'static Imp);

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Kernel").field(&self.0.name).finish()
    }
}

impl Kernel {
    /// The kernel's name, as [`kernel`] and `SHM_CRC_KERNEL` spell it.
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// [`crc32c_append`] with this kernel.
    pub fn crc32c_append(self, crc: u32, data: &[u8]) -> u32 {
        // SAFETY: a `Kernel` only comes from `kernels()`, which checked that this CPU
        // has the kernel's features; the slice is valid for reads of its length.
        !unsafe { (self.0.crc)(!crc, data.as_ptr(), std::ptr::null_mut(), data.len()) }
    }

    /// Copies `src` into `dst` and continues the CRC-32C `crc` over the bytes copied,
    /// in one sweep, with this kernel.
    ///
    /// # Panics
    /// If the two slices differ in length (as `copy_from_slice` does).
    pub fn copy_crc32c(self, crc: u32, src: &[u8], dst: &mut [u8]) -> u32 {
        assert_eq!(src.len(), dst.len(), "copy_crc32c: lengths differ");
        // SAFETY: the CPU has the kernel's features (see above); `src` is readable and
        // `dst` writable for the common length, and a shared and a mutable borrow
        // cannot overlap.
        !unsafe { (self.0.copy)(!crc, src.as_ptr(), dst.as_mut_ptr(), src.len()) }
    }
}

/// The CRC-32C of `data`.
///
/// ```
/// use shm_common::checksum::{crc32c, crc32c_append};
/// assert_eq!(crc32c(b"123456789"), 0xe306_9283); // the CRC catalogue's check value
/// assert_eq!(crc32c_append(crc32c(b"1234"), b"56789"), crc32c(b"123456789"));
/// ```
#[inline]
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c_append(0, data)
}

/// Continues the CRC-32C `crc` (of the bytes before `data`) over `data`:
/// `crc32c_append(crc32c(a), b) == crc32c(a ++ b)`.
#[inline]
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    // SAFETY: a slice is valid for reads of its length, and nobody writes it while
    // it is borrowed.
    unsafe { crc32c_append_raw(crc, data.as_ptr(), data.len()) }
}

/// [`crc32c_append`] over `len` bytes at `src`, read through raw loads only: for
/// bytes in shared memory (the writer's slot, just filled by `read(2)`), which must
/// never be borrowed as a slice.
///
/// # Safety
/// - `src` is valid for reads of `len` bytes for the whole call (when `len` is 0 it
///   is not used).
/// - The bytes may be written concurrently by another process: each is loaded once
///   with a plain load and no reference to them is formed. The result is then the
///   CRC of whatever values were loaded (every bit pattern is a valid `u8`); it
///   describes no particular state of the memory.
#[inline]
pub(crate) unsafe fn crc32c_append_raw(crc: u32, src: *const u8, len: usize) -> u32 {
    let k = selected();
    // SAFETY: the selected kernel is one this CPU can run (`choose` checked); the
    // caller guarantees `src..src+len` is readable; the `crc` body never uses `dst`.
    !unsafe { (k.crc)(!crc, src, std::ptr::null_mut(), len) }
}

/// Copies `len` bytes from `src` to `dst` and continues the CRC-32C `crc` over them,
/// in one sweep: each source byte is loaded once into a register, stored to `dst`
/// from that register and folded into the CRC from that same register. So the result
/// is the CRC of exactly the bytes now in `dst`, whatever another process does to
/// `src` meanwhile: the reader can check what it delivers, not what the slot held at
/// some other moment. (Copy-then-checksum reads the data twice; this reads it once.)
///
/// # Safety
/// - `src` is valid for reads and `dst` for writes of `len` bytes for the whole call
///   (when `len` is 0 neither is used), and the two ranges do not overlap.
/// - `dst` is private to the caller: nobody else reads or writes it during the call.
///   It need not be initialised (it is only written, never read), so it may be a
///   `Vec`'s spare capacity.
/// - The bytes at `src` may be written concurrently by another process: they are only
///   loaded (each once, plainly, never through a reference), so any values may be
///   read; those values are what is stored and what the CRC covers.
#[inline]
pub(crate) unsafe fn copy_crc32c(crc: u32, src: *const u8, dst: *mut u8, len: usize) -> u32 {
    let k = selected();
    // SAFETY: the selected kernel is one this CPU can run (`choose` checked); the
    // caller guarantees both ranges are valid and disjoint.
    !unsafe { (k.copy)(!crc, src, dst, len) }
}
