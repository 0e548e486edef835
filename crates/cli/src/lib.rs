//! Plumbing shared by the tools built on `shm_common` (the `writer` and `reader`
//! binaries, `shm-inspect`, `shm-race`, `shm-bench`) and by their tests, kept out
//! of the protocol library, as ripgrep keeps its `grep-cli` apart from the searcher.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod keys;
