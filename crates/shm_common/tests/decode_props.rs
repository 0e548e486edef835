//! Property tests for the code that reads untrusted shared memory: the frame header
//! decoder and checksum verifier. A hostile process can put any bytes in a slot, so
//! decoding must never panic, and a valid frame with any single bit flipped (in the
//! header or in the payload) must be rejected.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use shm_common::frame::{FrameError, FrameHeader, Kind, FRAME_HEADER_SIZE};

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Data), Just(Kind::End), Just(Kind::Final)]
}

/// A header with a payload that fits a slot of `capacity` payload bytes.
fn frame() -> impl Strategy<Value = (FrameHeader, Vec<u8>, usize)> {
    (
        prop::collection::vec(any::<u8>(), 0..512),
        0usize..4096,
        kind(),
        any::<u64>(),
        any::<u32>(),
        any::<u64>(),
    )
        .prop_map(|(payload, extra, kind, seq, writer, offset)| {
            let capacity = payload.len() + extra;
            let h = FrameHeader {
                len: payload.len() as u32,
                kind,
                seq,
                writer,
                offset,
            };
            (h, payload, capacity)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary bytes and capacities: decode and verify return, never panic, and an
    /// accepted header never claims more than the capacity.
    #[test]
    fn arbitrary_bytes_never_panic(
        raw in prop::array::uniform32(any::<u8>()),
        capacity in prop_oneof![0usize..256, Just(usize::MAX), any::<usize>()],
        payload in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        if let Ok(h) = FrameHeader::decode(&raw, capacity) {
            prop_assert!(h.len as usize <= capacity);
            prop_assert!(matches!(h.kind, Kind::Data | Kind::End | Kind::Final));
        }
        let _ = FrameHeader::verify(&raw, &payload);
    }

    /// Header fields chosen adversarially (length near the capacity, kind around the
    /// valid range) decode to exactly the documented verdict.
    #[test]
    fn decode_verdict_matches_the_fields(
        len in any::<u32>(),
        kind_raw in prop_oneof![0u32..6, any::<u32>()],
        rest in prop::array::uniform24(any::<u8>()),
        capacity in 0usize..(u32::MAX as usize + 10),
    ) {
        let mut b = [0u8; FRAME_HEADER_SIZE];
        b[0..4].copy_from_slice(&len.to_le_bytes());
        b[4..8].copy_from_slice(&kind_raw.to_le_bytes());
        b[8..].copy_from_slice(&rest);
        let got = FrameHeader::decode(&b, capacity);
        if len as usize > capacity {
            prop_assert_eq!(got, Err(FrameError::Length(len)));
        } else if !(1..=3).contains(&kind_raw) {
            prop_assert_eq!(got, Err(FrameError::Kind(kind_raw)));
        } else {
            prop_assert!(got.is_ok());
        }
    }

    /// encode -> decode gives back the same header, and the checksum verifies.
    #[test]
    fn encode_decode_round_trips((h, payload, capacity) in frame()) {
        let b = h.encode(&payload);
        prop_assert_eq!(FrameHeader::decode(&b, capacity), Ok(h));
        prop_assert_eq!(FrameHeader::verify(&b, &payload), Ok(()));
    }

    /// Any single bit flipped anywhere in the header or the payload is rejected by
    /// decode or verify (CRC-32C detects every single-bit error).
    #[test]
    fn any_single_bit_flip_is_rejected(
        (h, payload, capacity) in frame(),
        bit in any::<prop::sample::Index>(),
    ) {
        let b = h.encode(&payload);
        let total_bits = (FRAME_HEADER_SIZE + payload.len()) * 8;
        let i = bit.index(total_bits);
        let mut hb = b;
        let mut pb = payload.clone();
        if i < FRAME_HEADER_SIZE * 8 {
            hb[i / 8] ^= 1 << (i % 8);
        } else {
            let j = i - FRAME_HEADER_SIZE * 8;
            pb[j / 8] ^= 1 << (j % 8);
        }
        // A flipped length bit may change how many payload bytes a reader copies; model
        // that: the reader copies `len` bytes of the slot (the payload, then whatever
        // follows it, here zeros).
        let accepted = match FrameHeader::decode(&hb, capacity) {
            Ok(d) => {
                let mut copied = pb.clone();
                copied.resize(d.len as usize, 0);
                FrameHeader::verify(&hb, &copied).is_ok()
            }
            Err(_) => false,
        };
        prop_assert!(!accepted, "bit {} of {} flipped unnoticed", i, total_bits);
    }

    /// Every single-bit flip of the header, exhaustively, for a random frame.
    #[test]
    fn every_header_bit_flip_is_rejected((h, payload, capacity) in frame()) {
        let b = h.encode(&payload);
        for i in 0..FRAME_HEADER_SIZE * 8 {
            let mut c = b;
            c[i / 8] ^= 1 << (i % 8);
            let accepted = match FrameHeader::decode(&c, capacity) {
                Ok(d) => {
                    let mut copied = payload.clone();
                    copied.resize(d.len as usize, 0);
                    FrameHeader::verify(&c, &copied).is_ok()
                }
                Err(_) => false,
            };
            prop_assert!(!accepted, "header bit {} flipped unnoticed", i);
        }
    }
}
