//! Criterion benchmarks of the detector on a codebert-base-shaped checkpoint, for each
//! CPU backend compiled in: batch-1 latency at 64, 128, 256 and 512 tokens, throughput
//! over the nginx corpus (truncated at 512 tokens, length-sorted batches of 8), and
//! load time from safetensors.
//!
//! ```text
//! cargo bench --bench detector                      # flex
//! cargo bench --bench detector --features ndarray   # flex and ndarray
//! ```
//!
//! The checkpoint is `ICD_BENCH_MODEL` when set (any RoBERTa classifier directory,
//! such as the one `benches/side_by_side.py` writes); otherwise one with random
//! weights and codebert-base's shapes is written once under `target/bench/`, with the
//! real RoBERTa vocabulary from `$ICD_SHARED_DIR/roberta-base-tokenizer` (default
//! `../shared`). The corpus is `$ICD_SHARED_DIR/c-corpus/nginx.jsonl`; its first
//! `ICD_BENCH_FUNCTIONS` (default 32) functions are used.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use insecure_code_detector::{Backend, Detector};

#[path = "support/random_checkpoint.rs"]
mod random_checkpoint;

fn shared_dir() -> PathBuf {
    std::env::var_os("ICD_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

/// Writes the random codebert-base-shaped checkpoint once; `None` when the RoBERTa
/// vocabulary is absent.
fn random_checkpoint() -> Option<PathBuf> {
    let tokenizer = shared_dir().join("roberta-base-tokenizer");
    if !tokenizer.join("vocab.json").is_file() {
        eprintln!(
            "SKIPPED: {} is absent; set ICD_SHARED_DIR or ICD_BENCH_MODEL",
            tokenizer.join("vocab.json").display()
        );
        return None;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench/codebert-base-random-rs");
    random_checkpoint::write(&dir, &tokenizer);
    Some(dir)
}

fn corpus(limit: usize) -> Option<Vec<String>> {
    let path = shared_dir().join("c-corpus/nginx.jsonl");
    let Ok(file) = std::fs::File::open(&path) else {
        eprintln!(
            "SKIPPED: throughput: {} is absent; set ICD_SHARED_DIR",
            path.display()
        );
        return None;
    };
    let functions = std::io::BufReader::new(file)
        .lines()
        .take(limit)
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
            record["func"].as_str().unwrap().to_owned()
        })
        .collect();
    Some(functions)
}

fn cpu_backends() -> Vec<Backend> {
    [Backend::Flex, Backend::NdArray]
        .into_iter()
        .filter(|b| b.is_compiled())
        .collect()
}

fn benches(c: &mut Criterion) {
    let Some(model) = std::env::var_os("ICD_BENCH_MODEL")
        .map(PathBuf::from)
        .or_else(random_checkpoint)
    else {
        return;
    };
    let functions: usize = std::env::var("ICD_BENCH_FUNCTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let corpus = corpus(functions);
    for backend in cpu_backends() {
        let name = backend.name();
        let detector = Detector::builder(&model)
            .backend(backend)
            .batch_size(8)
            .build()
            .unwrap();

        let mut latency = c.benchmark_group(format!("latency/{name}"));
        latency
            .sample_size(10)
            .measurement_time(Duration::from_secs(10));
        for tokens in [64usize, 128, 256, 512] {
            // " x" is one token ("Ġx"): tokens - 2 of them, with <s> and </s>.
            let text = " x".repeat(tokens - 2);
            assert_eq!(detector.tokenize(&text).unwrap().input_ids.len(), tokens);
            latency.throughput(Throughput::Elements(1));
            latency.bench_with_input(BenchmarkId::from_parameter(tokens), &text, |b, text| {
                b.iter(|| detector.predict(text).unwrap())
            });
        }
        latency.finish();

        if let Some(corpus) = &corpus {
            let refs: Vec<&str> = corpus.iter().map(String::as_str).collect();
            let mut throughput = c.benchmark_group(format!("throughput/{name}"));
            throughput
                .sample_size(10)
                .measurement_time(Duration::from_secs(30));
            throughput.throughput(Throughput::Elements(refs.len() as u64));
            throughput.bench_function(format!("nginx-{}", refs.len()), |b| {
                b.iter(|| detector.predict_batch(&refs).unwrap())
            });
            throughput.finish();
        }
        drop(detector);

        let mut load = c.benchmark_group(format!("load/{name}"));
        load.sample_size(10);
        load.bench_function("safetensors", |b| {
            b.iter(|| Detector::builder(&model).backend(backend).build().unwrap())
        });
        load.finish();
    }
}

criterion_group!(detector, benches);
criterion_main!(detector);
