//! Writes a classifier with codebert-base's shapes and random weights, for benchmarks
//! on machines without PyTorch:
//!
//! ```text
//! cargo run --example random_checkpoint -- DIR [ROBERTA_TOKENIZER_DIR]
//! ```
//!
//! The tokenizer directory (holding `vocab.json` and `merges.txt`) defaults to
//! `$ICD_SHARED_DIR/roberta-base-tokenizer`.

use std::path::PathBuf;

#[path = "../benches/support/random_checkpoint.rs"]
mod random_checkpoint;

fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: random_checkpoint DIR [ROBERTA_TOKENIZER_DIR]");
        std::process::exit(2);
    };
    let tokenizer = args.next().map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("ICD_SHARED_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("../shared"))
            .join("roberta-base-tokenizer")
    });
    if !tokenizer.join("vocab.json").is_file() {
        eprintln!("{} has no vocab.json", tokenizer.display());
        std::process::exit(2);
    }
    random_checkpoint::write(&dir, &tokenizer);
    println!("{}", dir.display());
}
