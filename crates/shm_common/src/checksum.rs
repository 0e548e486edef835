//! CRC-32C (Castagnoli), the checksum of every frame (PROTOCOL.md §5).
//!
//! Two well-kept crates compute the same function, each fastest at one end:
//! `crc32c` feeds the SSE 4.2 `crc32` instruction and wins on the few dozen bytes of a
//! frame header or a small payload (no set-up cost); `crc-fast` folds with carry-less
//! multiplication (VPCLMULQDQ on AVX-512 CPUs) and is about four times faster from a
//! few hundred bytes up. On this project's 2-vCPU Xeon VM, measured side by side:
//!
//! | bytes | `crc32c` | `crc-fast` |
//! |------:|---------:|-----------:|
//! | 28    | 6.9 ns   | 9.0 ns     |
//! | 92    | 7.0 ns   | 8.6 ns     |
//! | 4096  | 160 ns (26 GB/s) | 44 ns (93 GB/s) |
//! | 64 KiB| 2.2 µs (29 GB/s) | 0.56 µs (116 GB/s) |
//!
//! For large frames the checksum was half of each side's work (the other half is the
//! copy), so the switch point matters: see BENCHMARKS.md. Both crates fall back to
//! portable code on CPUs without these instructions; the result is the same.

use crc_fast::{CrcAlgorithm, Digest};

/// Inputs shorter than this go to `crc32c`, longer ones to `crc-fast` (between 92
/// and 4096 bytes the two cross; 256 is on the safe side of both).
const FOLD_FROM: usize = 256;

/// The CRC-32C of `data`.
#[inline]
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c_append(0, data)
}

/// Continues the CRC-32C `crc` (of the bytes before `data`) over `data`:
/// `crc32c_append(crc32c(a), b) == crc32c(a ++ b)`.
#[inline]
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    if data.len() < FOLD_FROM {
        crc32c::crc32c_append(crc, data)
    } else {
        // A finished CRC-32C is the register inverted (xorout = 0xFFFFFFFF); the
        // digest continues from the register itself.
        let mut d = Digest::new_with_init_state(CrcAlgorithm::Crc32Iscsi, u64::from(!crc));
        d.update(data);
        d.finalize() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| (i.wrapping_mul(31) ^ (i >> 7)) as u8)
            .collect()
    }

    #[test]
    fn known_vectors() {
        // RFC 3720 (iSCSI) B.4 and the CRC catalogue's check value.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        assert_eq!(crc32c(&[]), 0);
    }

    #[test]
    fn both_implementations_agree_at_every_length_and_split() {
        let data = bytes(70_000);
        for n in [
            0, 1, 7, 28, 92, 255, 256, 257, 1000, 4096, 24_576, 65_536, 70_000,
        ] {
            let whole = crc32c::crc32c(&data[..n]);
            assert_eq!(crc32c(&data[..n]), whole, "length {n}");
            for cut in [0, 1, 28, 255, 256, n / 2, n] {
                let cut = cut.min(n);
                let two = crc32c_append(crc32c(&data[..cut]), &data[cut..n]);
                assert_eq!(two, whole, "length {n} cut at {cut}");
            }
        }
    }
}
