//! The integration tests, in one binary so that the crate is linked once: each module
//! is one area, as its own doc comment says. Two stay binaries of their own:
//! `tests/gpu_shapes.rs` installs the process's logger, and `tests/stdin_memory.rs`
//! measures a child's peak memory, which includes its parent's.

#[path = "../common/mod.rs"]
mod common;

mod action;
mod bad_checkpoints;
mod calibration;
mod c_api;
mod c_install;
mod ci_scan;
mod cli;
mod ctags_crosscheck;
mod explain;
mod fuzz_regressions;
mod header;
mod hostile_input;
mod hostile_trees;
mod lsp;
mod html_report;
mod metrics;
mod parity;
mod report_formats;
mod scan_cache;
mod snapshots;
mod threads;
mod tokenizer_corpus;
#[cfg(feature = "train")]
mod training;
mod triage;
