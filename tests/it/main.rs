//! The integration tests, in one binary so that the crate is linked once: each module
//! is one area, as its own doc comment says. `tests/gpu_shapes.rs` stays a binary of
//! its own, as it installs the process's logger.

#[path = "../common/mod.rs"]
mod common;

mod bad_checkpoints;
mod c_api;
mod c_install;
mod ci_scan;
mod cli;
mod ctags_crosscheck;
mod explain;
mod fuzz_regressions;
mod header;
mod hostile_input;
mod parity;
mod scan_cache;
mod snapshots;
mod threads;
mod tokenizer_corpus;
