//! Every kernel this CPU can run, not only the selected one, against the `crc32c`
//! crate: at every length to 4 KiB and at large ones, at every source and
//! destination misalignment within a cache line, split anywhere, and copying
//! exactly the bytes it checksums, even while another process scribbles on them.

use super::*;

/// Pseudo-random bytes (xorshift), so that no structure in the data hides a bug.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// Bytes the copy must not touch around its destination.
const GUARD: u8 = 0xa5;

/// Copies `src` with `k` into a buffer at misalignment `dst_off` (within a 64-byte
/// aligned allocation), checks the copy and the guard bytes around it, and returns
/// the CRC.
fn copy_checked(k: Kernel, crc: u32, src: &[u8], dst_off: usize) -> u32 {
    let mut buf = vec![GUARD; src.len() + 256];
    // Align the start to 64 by hand: Vec<u8> only promises 1.
    let base = buf.as_ptr().align_offset(64);
    let (at, end) = (base + dst_off, base + dst_off + src.len());
    let got = k.copy_crc32c(crc, src, &mut buf[at..end]);
    assert!(
        buf[at..end] == *src,
        "{k:?}: copy of {} bytes differs",
        src.len()
    );
    assert!(
        buf[..at].iter().chain(&buf[end..]).all(|&b| b == GUARD),
        "{k:?}: wrote outside the {} bytes at offset {dst_off}",
        src.len()
    );
    got
}

#[test]
fn known_vectors_with_every_kernel() {
    // RFC 3720 (iSCSI) B.4 and the CRC catalogue's check value.
    let cases: [(&[u8], u32); 4] = [
        (b"123456789", 0xe306_9283),
        (&[0u8; 32], 0x8a91_36aa),
        (&[0xffu8; 32], 0x62a8_ab43),
        (&[], 0),
    ];
    for k in kernels() {
        for (data, want) in cases {
            assert_eq!(k.crc32c_append(0, data), want, "{k:?} on {data:x?}");
            assert_eq!(copy_checked(k, 0, data, 0), want, "{k:?} copying {data:x?}");
        }
    }
    assert_eq!(crc32c(b"123456789"), 0xe306_9283);
}

#[test]
fn every_kernel_agrees_at_every_length_to_4096() {
    let data = bytes(4096, 1);
    for n in 0..=4096 {
        let init = if n % 2 == 0 { 0 } else { 0x1234_5678 };
        let want = crc32c::crc32c_append(init, &data[..n]);
        for k in kernels() {
            assert_eq!(k.crc32c_append(init, &data[..n]), want, "{k:?} at {n}");
            let dst_off = n % 64;
            assert_eq!(
                copy_checked(k, init, &data[..n], dst_off),
                want,
                "{k:?} copy at {n}"
            );
        }
    }
}

#[test]
fn every_kernel_agrees_at_large_lengths() {
    let data = bytes((1 << 20) + 7, 2);
    for n in [24_575, 24_576, 24_577, 65_536, 65_536 + 13, (1 << 20) + 7] {
        let want = crc32c::crc32c(&data[..n]);
        for k in kernels() {
            assert_eq!(k.crc32c_append(0, &data[..n]), want, "{k:?} at {n}");
            assert_eq!(copy_checked(k, 0, &data[..n], 3), want, "{k:?} copy at {n}");
        }
    }
}

#[test]
fn every_kernel_agrees_at_every_misalignment() {
    // Lengths around each kernel's steps: 8, 16, 32, 64, one round of 128/256 bytes;
    // every pair of source and destination offsets.
    const LENGTHS: [usize; 10] = [0, 7, 31, 64, 100, 255, 256, 513, 777, 1100];
    // Long enough for the wide kernels to align their accesses first (from 2 KiB):
    // every source offset, with a spread of destination offsets.
    const LONG: [usize; 3] = [2048, 4096 + 5, 8192 + 77];
    let space = bytes(8192 + 77 + 64, 3);
    for k in kernels() {
        for src_off in 0..64 {
            for n in LENGTHS.into_iter().chain(LONG) {
                let src = &space[src_off..src_off + n];
                let want = crc32c::crc32c(src);
                assert_eq!(k.crc32c_append(0, src), want, "{k:?} {n} at +{src_off}");
                let dst_offs: Vec<usize> = if n <= 1100 {
                    (0..64).collect()
                } else {
                    vec![0, 1, 4, 31, 32, 63, (src_off * 7 + 3) % 64]
                };
                for dst_off in dst_offs {
                    assert_eq!(
                        copy_checked(k, 0, src, dst_off),
                        want,
                        "{k:?} {n} from +{src_off} to +{dst_off}"
                    );
                }
            }
        }
    }
}

#[test]
fn appending_composes_at_every_split_and_across_kernels() {
    let data = bytes(5000, 4);
    let ks = kernels();
    for n in [1, 28, 92, 300, 1000, 5000] {
        let want = crc32c::crc32c(&data[..n]);
        for cut in [0, 1, 3, 16, 28, 63, 64, 255, 256, n / 2, n - 1, n] {
            let cut = cut.min(n);
            let (a, b) = data[..n].split_at(cut);
            for (i, k) in ks.iter().enumerate() {
                // The second half with another kernel: registers are interchangeable.
                let other = ks[(i + 1) % ks.len()];
                assert_eq!(other.crc32c_append(k.crc32c_append(0, a), b), want);
                let head = copy_checked(*k, 0, a, 0);
                assert_eq!(
                    copy_checked(other, head, b, 5),
                    want,
                    "{k:?} cut {cut} of {n}"
                );
            }
            assert_eq!(crc32c_append(crc32c(a), b), want);
        }
    }
}

#[test]
fn the_raw_entry_points_match_the_slice_ones() {
    let data = bytes(3000, 5);
    let mut out = vec![0u8; data.len()];
    for n in [0, 28, 64, 3000] {
        let want = crc32c::crc32c_append(7, &data[..n]);
        // SAFETY: both buffers hold n bytes and are distinct allocations.
        let (a, b) = unsafe {
            (
                crc32c_append_raw(7, data.as_ptr(), n),
                copy_crc32c(7, data.as_ptr(), out.as_mut_ptr(), n),
            )
        };
        assert_eq!((a, b), (want, want), "at {n}");
        assert_eq!(out[..n], data[..n]);
    }
}

#[test]
fn selection_falls_back_on_unknown_or_unavailable_names() {
    let best = kernels()[0].name();
    assert_eq!(choose(None).name, best);
    assert_eq!(choose(Some("no-such-kernel")).name, best);
    assert_eq!(choose(Some("")).name, best);
    assert_eq!(choose(Some("portable")).name, "portable");
    for k in kernels() {
        assert_eq!(choose(Some(k.name())).name, k.name());
    }
    // A kernel of another CPU (all listed, whether or not available here) falls back.
    for imp in ALL {
        let got = choose(Some(imp.name)).name;
        assert!(got == imp.name || (!(imp.available)() && got == best));
    }
    assert!(kernels().iter().any(|k| k.name() == kernel()));
    assert_eq!(kernels().last().map(|k| k.name()), Some("portable"));
}

/// Copying from memory another process is writing (Linux: `prctl` keeps the child
/// from outliving the test).
#[cfg(target_os = "linux")]
mod scribbled {
    use super::*;

    /// A forked child that overwrites a shared anonymous mapping until it is dropped:
    /// killed, reaped and unmapped in `Drop`, so that a failing assertion cannot leave
    /// it running (it would hold the test's output pipes open, and cargo would wait).
    struct Scribbler {
        pid: libc::pid_t,
        map: *mut u8,
        len: usize,
    }

    impl Scribbler {
        fn start(len: usize) -> Scribbler {
            // SAFETY: a fresh anonymous shared mapping; the result is checked below.
            let map = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(map, libc::MAP_FAILED);
            let map = map.cast::<u8>();
            // SAFETY: getpid has no preconditions.
            let parent = unsafe { libc::getpid() };
            // SAFETY: fork in a threaded test process: the child only makes system calls
            // that take no lock (prctl, getppid, _exit) and stores to the mapping.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                // SAFETY: as above; the child dies with the parent, and in any case
                // stops after about ten seconds or when the parent is gone.
                unsafe {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
                    for i in 0..(10usize << 30) / 8 {
                        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        // An 8-aligned word wholly inside the (page-aligned) mapping.
                        map.add(i % (len / 8) * 8).cast::<u64>().write_volatile(x);
                        if i % (1 << 20) == 0 && libc::getppid() != parent {
                            break;
                        }
                    }
                    libc::_exit(0);
                }
            }
            Scribbler { pid, map, len }
        }
    }

    impl Drop for Scribbler {
        fn drop(&mut self) {
            // SAFETY: our own child and our own mapping, used no more.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
                libc::munmap(self.map.cast(), self.len);
            }
        }
    }

    /// The property the reader relies on: with another process overwriting the source
    /// throughout, the returned CRC is still that of the bytes delivered. The scribbler is
    /// another process, as in production, rather than a racing thread of this one.
    #[test]
    fn a_copy_checksums_what_it_delivered_while_the_source_is_scribbled_on() {
        // Not a multiple of any kernel's round, so that every step runs under fire.
        const LEN: usize = (64 << 10) + 8 * 31 + 7;
        let scribbler = Scribbler::start(LEN);
        let mut out = vec![0u8; LEN];
        let mut later = vec![0u8; LEN];
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(300);
        let (mut differed, mut rounds) = (0, 0);
        while std::time::Instant::now() < deadline {
            for k in kernels() {
                let got = k.copy_crc32c_raw_for_test(scribbler.map, &mut out);
                assert_eq!(
                    got,
                    crc32c::crc32c(&out),
                    "{k:?}: CRC is not of the bytes copied"
                );
                // SAFETY: the mapping is valid for LEN bytes; the child may write it.
                unsafe { std::ptr::copy_nonoverlapping(scribbler.map, later.as_mut_ptr(), LEN) };
                differed += usize::from(later != out);
                rounds += 1;
            }
        }
        // The scribbler ran concurrently (a later snapshot differs from the copies), or
        // the test proved nothing.
        assert!(
            differed > 0,
            "the source never changed during {rounds} copies"
        );
    }
}

impl Kernel {
    /// `copy_crc32c` with this kernel from memory another process writes.
    fn copy_crc32c_raw_for_test(self, src: *const u8, out: &mut [u8]) -> u32 {
        // SAFETY: the CPU runs this kernel (it came from `kernels()`); the test's
        // mapping is valid for `out.len()` bytes and is not `out`.
        !unsafe { (self.0.copy)(!0, src, out.as_mut_ptr(), out.len()) }
    }
}
