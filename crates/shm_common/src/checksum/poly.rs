//! Arithmetic on polynomials over GF(2) modulo the CRC-32C polynomial, done by the
//! compiler: the folding constants of the carry-less-multiplication kernels and the
//! tables of the portable and SSE 4.2 kernels are derived here from the polynomial
//! alone, so no magic number in the kernels needs to be trusted.
//!
//! # Representation
//! CRC-32C is a *reflected* CRC: the first bit of the message is bit 0 of its first
//! byte, and it is the highest-degree coefficient. A polynomial of degree < 32 is held
//! in a `u32` the same way, bit `i` being the coefficient of `x^(31-i)`; so `1` is
//! `0x8000_0000` and multiplying by `x` is a right shift. This is the form the CRC
//! register, the `crc32` instruction and `PCLMULQDQ` on little-endian loads all use.
//!
//! # The CRC as a polynomial
//! For a message `M` (the first byte's bit 0 the highest coefficient) and a register
//! `r` before it, the register after it is `(r·x^(8n) + M·x^32) mod P`. Everything in
//! the kernels follows from that linearity: the register can be XORed into the first
//! four message bytes, a 128-bit block `A` followed by `D` more bits contributes
//! `A·x^D`, which is congruent to a product of 96 bits (see [`fold_pair`]), and two
//! registers of adjacent runs combine as `r1·x^(8·len2) + r2` (see [`mul`]).

/// The Castagnoli polynomial `0x1EDC6F41` bit-reflected, without its `x^32` term.
pub(super) const POLY: u32 = 0x82F6_3B78;

/// `a·x mod P`.
const fn mul_x(a: u32) -> u32 {
    // The coefficient of x^31 (bit 0) moves to x^32, which is congruent to POLY.
    (a >> 1) ^ (POLY & 0u32.wrapping_sub(a & 1))
}

/// `a·b mod P`.
#[cfg(any(target_arch = "x86_64", test))]
pub(super) const fn mul(a: u32, b: u32) -> u32 {
    let mut r = 0;
    let mut bx = b; // b·x^i
    let mut i = 0;
    while i < 32 {
        // Bit 31-i of `a` is its coefficient of x^i.
        if (a << i) & 0x8000_0000 != 0 {
            r ^= bx;
        }
        bx = mul_x(bx);
        i += 1;
    }
    r
}

/// `x^n mod P`, by squaring.
#[cfg(any(target_arch = "x86_64", test))]
pub(super) const fn xpow(mut n: u64) -> u32 {
    let mut r = 0x8000_0000; // 1
    let mut sq = 0x4000_0000; // x^(2^k)
    while n != 0 {
        if n & 1 != 0 {
            r = mul(r, sq);
        }
        sq = mul(sq, sq);
        n >>= 1;
    }
    r
}

/// The two 64-bit multipliers that fold a 128-bit block forward by `bits` bits
/// (`bits` >= 1), as `(low, high)`: for the block's low qword (its first eight bytes,
/// the higher-degree half `H`) and its high qword (`L`).
///
/// The block stands for `H·x^64 + L`; moved `bits` further it is
/// `H·x^(64+bits) + L·x^bits`. `PCLMULQDQ` of two reflected 64-bit values yields the
/// reflected 128-bit product *times x* (the product has 127 bits and lands one place
/// up), so the multipliers are `x^(bits+63) mod P` and `x^(bits-1) mod P`; each as a
/// reflected 64-bit value, which for a polynomial of degree < 32 is its `u32` form in
/// the upper half. The two products have fewer than 97 bits and are XORed into the
/// 128-bit block `bits` further on.
#[cfg(target_arch = "x86_64")]
pub(super) const fn fold_pair(bits: u64) -> (u64, u64) {
    (
        (xpow(bits + 63) as u64) << 32,
        (xpow(bits - 1) as u64) << 32,
    )
}

/// The byte-at-a-time table: `TABLE[b]` is the register after byte `b` from a zero
/// register.
const fn byte_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut b = 0;
    while b < 256 {
        let mut c = b as u32;
        let mut k = 0;
        while k < 8 {
            c = mul_x(c);
            k += 1;
        }
        t[b] = c;
        b += 1;
    }
    t
}

/// Slicing-by-8 tables for the portable kernel: `SLICE8[k][b]` is the register after
/// byte `b` followed by `k` zero bytes.
pub(super) static SLICE8: [[u32; 256]; 8] = {
    let mut t = [[0u32; 256]; 8];
    t[0] = byte_table();
    let mut k = 1;
    while k < 8 {
        let mut b = 0;
        while b < 256 {
            let prev = t[k - 1][b];
            t[k][b] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            b += 1;
        }
        k += 1;
    }
    t
};

/// Tables that multiply a register by the constant `k` (mod P) a byte at a time:
/// `T[j][b] = (b << 8j)·k mod P`, so `r·k = T[0][r & 0xff] ^ ... ^ T[3][r >> 24]`.
/// The SSE 4.2 kernel shifts a register over `n` bytes with `k = x^(8n)`.
#[cfg(any(target_arch = "x86_64", test))]
pub(super) const fn mul_tables(k: u32) -> [[u32; 256]; 4] {
    let mut t = [[0u32; 256]; 4];
    let mut j = 0;
    while j < 4 {
        let mut b = 0;
        while b < 256 {
            t[j][b] = mul((b as u32) << (8 * j), k);
            b += 1;
        }
        j += 1;
    }
    t
}

/// `r·k`, with the tables of `k` from [`mul_tables`].
#[inline]
#[cfg(any(target_arch = "x86_64", test))]
pub(super) fn mul_by_table(t: &[[u32; 256]; 4], r: u32) -> u32 {
    t[0][(r & 0xff) as usize]
        ^ t[1][((r >> 8) & 0xff) as usize]
        ^ t[2][((r >> 16) & 0xff) as usize]
        ^ t[3][(r >> 24) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The register after `data` from register `r`, one bit at a time: the
    /// definition, against which the derived constants are checked.
    fn bitwise(mut r: u32, data: &[u8]) -> u32 {
        for &b in data {
            r ^= u32::from(b);
            for _ in 0..8 {
                r = mul_x(r);
            }
        }
        r
    }

    #[test]
    fn table_and_definition_agree() {
        let t = byte_table();
        for b in 0..=255u8 {
            assert_eq!(t[b as usize], bitwise(0, &[b]));
        }
        // The check value of CRC-32C.
        assert_eq!(!bitwise(!0, b"123456789"), 0xe306_9283);
    }

    #[test]
    fn shifting_a_register_is_multiplying_by_a_power_of_x() {
        // n zero bytes after register r: r·x^(8n).
        for (r, n) in [(0xdead_beef_u32, 1usize), (1, 5), (0x8000_0001, 300)] {
            let zeros = vec![0u8; n];
            assert_eq!(bitwise(r, &zeros), mul(r, xpow(8 * n as u64)));
            let t = mul_tables(xpow(8 * n as u64));
            assert_eq!(bitwise(r, &zeros), mul_by_table(&t, r));
        }
        assert_eq!(xpow(0), 0x8000_0000);
        assert_eq!(xpow(32), POLY);
    }
}
