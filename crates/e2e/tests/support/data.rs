//! Reproducible test data, temporary files, and the prefix checks every fault test
//! ends with: what a reader delivered must be a byte-exact prefix of what was sent.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A temporary file, removed on drop.
pub struct TempFile {
    pub path: PathBuf,
}

impl TempFile {
    /// A new file holding `data`.
    pub fn new(data: &[u8]) -> TempFile {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("shm-e2e-{}-{n}", std::process::id()));
        std::fs::write(&path, data).expect("write temp file");
        TempFile { path }
    }

    /// Opens it for reading, e.g. as a child's stdin (`Stdio::from(f)`): a regular
    /// file, which the writer reads in whole slots.
    pub fn open(&self) -> std::fs::File {
        std::fs::File::open(&self.path).expect("open temp file")
    }

    /// Creates (truncates) it for writing, e.g. as a child's stdout.
    pub fn create(&self) -> std::fs::File {
        std::fs::File::create(&self.path).expect("create temp file")
    }

    /// Its contents.
    pub fn read(&self) -> Vec<u8> {
        std::fs::read(&self.path).expect("read temp file")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// An empty temporary file (removed on drop).
pub fn temp_path() -> TempFile {
    TempFile::new(&[])
}

/// A temporary file of `len` pseudo-random bytes (the same stream as
/// [`pseudo_random`] with `seed`), written in 1 MiB pieces so memory stays small.
pub fn big_temp_file(len: u64, seed: u64) -> TempFile {
    let t = TempFile::new(&[]);
    let mut w = std::io::BufWriter::with_capacity(1 << 20, t.create());
    let mut x = seed | 1;
    let mut left = len;
    let mut chunk = vec![0u8; 1 << 20];
    while left > 0 {
        let n = chunk.len().min(left as usize);
        let fill = n.next_multiple_of(8).min(chunk.len());
        for word in chunk[..fill].chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            word.copy_from_slice(&b[..word.len()]);
        }
        w.write_all(&chunk[..n]).expect("write temp file");
        left -= n as u64;
    }
    w.flush().expect("flush temp file");
    drop(w);
    t
}

/// Compares two files piece by piece; `Err` names the first differing offset or
/// the length mismatch.
pub fn files_equal(a: &Path, b: &Path) -> Result<u64, String> {
    let la = std::fs::metadata(a).map_err(|e| e.to_string())?.len();
    let lb = std::fs::metadata(b).map_err(|e| e.to_string())?.len();
    if la != lb {
        return Err(format!(
            "lengths differ: {} has {la} bytes, {} has {lb}",
            a.display(),
            b.display()
        ));
    }
    let mut fa = std::io::BufReader::new(std::fs::File::open(a).map_err(|e| e.to_string())?);
    let mut fb = std::io::BufReader::new(std::fs::File::open(b).map_err(|e| e.to_string())?);
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    let mut off = 0u64;
    loop {
        let n = fa.read(&mut ba).map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(off);
        }
        fb.read_exact(&mut bb[..n]).map_err(|e| e.to_string())?;
        if ba[..n] != bb[..n] {
            let i = ba[..n]
                .iter()
                .zip(&bb[..n])
                .position(|(x, y)| x != y)
                .unwrap_or(0);
            return Err(format!("first difference at byte {}", off + i as u64));
        }
        off += n as u64;
    }
}

/// Whether `got` is a byte-exact prefix of `sent`.
pub fn is_prefix(got: &[u8], sent: &[u8]) -> bool {
    got.len() <= sent.len() && got == &sent[..got.len()]
}

/// Index of the first byte where `got` departs from `sent` (None if a prefix).
pub fn first_mismatch(got: &[u8], sent: &[u8]) -> Option<usize> {
    if is_prefix(got, sent) {
        return None;
    }
    Some(
        got.iter()
            .zip(sent)
            .position(|(a, b)| a != b)
            .unwrap_or(sent.len()),
    )
}

/// Asserts `got` is a byte-exact prefix of `sent` (no torn, missing or repeated bytes).
pub fn assert_prefix(got: &[u8], sent: &[u8], ctx: &str) {
    if let Some(at) = first_mismatch(got, sent) {
        panic!(
            "TORN: {ctx}: delivered {} bytes that are not a prefix of the {} sent: first difference at byte {at}",
            got.len(),
            sent.len()
        );
    }
}

/// Asserts `got` is all of `sent`.
pub fn assert_all(got: &[u8], sent: &[u8], ctx: &str) {
    assert!(
        got == sent,
        "TORN: {ctx}: delivered {} of {} bytes (a prefix: {})",
        got.len(),
        sent.len(),
        is_prefix(got, sent)
    );
}

/// The `k=v` pairs of one line of `name: k=v k=v` output.
pub fn pairs(line: &str) -> std::collections::HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The first line of `text` that starts with `prefix`.
pub fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(prefix))
}
