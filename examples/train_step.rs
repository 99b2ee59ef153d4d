//! Timings of fine-tuning for `benches/train_side_by_side.py`, as one JSON object on
//! stdout.
//!
//! ```text
//! cargo run --example train_step -- MODEL_DIR [--tokens 256] [--batch-size 8] [--steps 6]
//!     [--train-layers K] [--backend flex] [--corpus nginx.jsonl --functions N]
//! ```
//!
//! Without `--corpus`: `--steps` optimizer steps of `--batch-size` inputs of exactly
//! `--tokens` tokens each (`" x"` repeated: one token each in RoBERTa's vocabulary), the
//! recipe's defaults otherwise (dropout from the config, AdamW, clipping at 1.0); reports
//! each step's seconds. With `--corpus`: one epoch over its first `--functions` functions
//! (cycled where it has fewer), in batches of `--batch-size`; reports the epoch's
//! seconds, the frozen encoder's pass included where `--train-layers 0`. Both report the
//! load time and the process's peak resident memory.

use std::time::Instant;

use insecure_code_detector::training::{LabelledFunction, Trainer, TrainingEvent, TrainingRecipe};
use insecure_code_detector::Backend;
use serde_json::json;

fn main() {
    let mut args = std::env::args().skip(1);
    let model = args.next().expect("usage: train_step MODEL_DIR [options]");
    let (mut tokens, mut batch_size, mut steps) = (256usize, 8usize, 6usize);
    let (mut train_layers, mut backend, mut corpus, mut functions) = (None, Backend::Auto, None, 1000usize);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--tokens" => tokens = value().parse().unwrap(),
            "--batch-size" => batch_size = value().parse().unwrap(),
            "--steps" => steps = value().parse().unwrap(),
            "--train-layers" => train_layers = Some(value().parse().unwrap()),
            "--backend" => backend = value().parse().unwrap(),
            "--corpus" => corpus = Some(value()),
            "--functions" => functions = value().parse().unwrap(),
            other => panic!("unknown option {other}"),
        }
    }
    let data: Vec<LabelledFunction> = match &corpus {
        None => (0..batch_size * steps)
            .map(|i| LabelledFunction {
                code: " x".repeat(tokens - 2),
                label: i % 2,
            })
            .collect(),
        Some(path) => {
            let rows: Vec<String> = std::fs::read_to_string(path)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["func"].as_str().unwrap().to_owned())
                .collect();
            (0..functions)
                .map(|i| LabelledFunction {
                    code: rows[i % rows.len()].clone(),
                    label: i % 2,
                })
                .collect()
        }
    };
    let recipe = TrainingRecipe {
        epochs: 1,
        batch_size,
        shuffle: false,
        train_layers,
        ..TrainingRecipe::default()
    };
    let started = Instant::now();
    let mut trainer = Trainer::new(model.as_ref(), recipe, backend).unwrap();
    let load_seconds = started.elapsed().as_secs_f64();
    let mut step_seconds = Vec::new();
    let mut last = Instant::now();
    let epoch_started = Instant::now();
    let trained = trainer
        .train(&data, None, &mut |event| match event {
            TrainingEvent::Started { .. } => last = Instant::now(),
            TrainingEvent::Step(_) => {
                step_seconds.push(last.elapsed().as_secs_f64());
                last = Instant::now();
            }
            _ => {}
        })
        .unwrap();
    let seconds = epoch_started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "backend": trainer.backend().name(),
            "load_seconds": load_seconds,
            "step_seconds": step_seconds,
            "seconds": seconds,
            "examples": data.len(),
            "train_loss": trained.epochs()[0].train_loss,
            "peak_rss_bytes": peak_rss_bytes(),
        })
    );
}

/// VmHWM from /proc/self/status (Linux), in bytes.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
