//! Plumbing shared by the tools built on `shm_common` (the `writer` and `reader`
//! binaries, `shm-inspect`, `shm-race`, `shm-bench`) and by their tests, kept out
//! of the protocol library, as ripgrep keeps its `grep-cli` apart from the searcher:
//! value parsers, exit codes and how errors are reported, the signal handler, the
//! progress bar, the `--explain` narrator, and fresh keys.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod args;
pub mod exit;
pub mod explain;
pub mod keys;
pub mod parse;
pub mod progress;
pub mod report;
pub mod signals;
pub mod stdio;
