//! Timings of this library for `benches/side_by_side.py`, as one JSON object on stdout.
//!
//! ```text
//! cargo run --example bench -- MODEL_DIR [--corpus nginx.jsonl] [--functions N]
//!     [--lengths 64,128,256,512] [--repeats N] [--backend flex] [--batch-size N] [--probe TEXT]
//! ```
//!
//! Reports: load time, peak resident memory, median batch-1 latency per token length,
//! throughput over the corpus (truncated at 512 tokens, through `predict_batch`),
//! and the logits of the probe texts so that the caller can check agreement.

use std::io::BufRead;
use std::time::Instant;

use insecure_code_detector::{Backend, Detector, Precision};
use serde_json::json;

fn main() {
    let mut args = std::env::args().skip(1);
    let model = args.next().expect("usage: bench MODEL_DIR [options]");
    let mut corpus = None;
    let mut functions = 64usize;
    let mut lengths = vec![64usize, 128, 256, 512];
    let mut repeats = 5usize;
    let mut backend = Backend::default_cpu().unwrap();
    let mut precision = Precision::F32;
    let mut probes: Vec<String> = Vec::new();
    let mut batch_size = 8usize;
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--corpus" => corpus = Some(value()),
            "--functions" => functions = value().parse().unwrap(),
            "--lengths" => lengths = value().split(',').map(|x| x.parse().unwrap()).collect(),
            "--repeats" => repeats = value().parse().unwrap(),
            "--backend" => backend = value().parse().unwrap(),
            "--precision" => {
                precision = match value().as_str() {
                    "f32" => Precision::F32,
                    "bf16" => Precision::Bf16,
                    "f16" => Precision::F16,
                    other => panic!("unknown precision {other}"),
                }
            }
            "--probe" => probes.push(value()),
            "--batch-size" => batch_size = value().parse().unwrap(),
            other => panic!("unknown option {other}"),
        }
    }

    let started = Instant::now();
    let detector = Detector::builder(&model)
        .backend(backend)
        .precision(precision)
        .batch_size(batch_size)
        .build()
        .unwrap();
    let load_seconds = started.elapsed().as_secs_f64();

    // " x" is one token ("Ġx") in RoBERTa's vocabulary: n - 2 of them make n tokens.
    let mut latency = serde_json::Map::new();
    for &n in &lengths {
        let text = " x".repeat(n - 2);
        assert_eq!(
            detector.tokenize(&text).unwrap().input_ids.len(),
            n,
            "probe text is not {n} tokens"
        );
        detector.predict(&text).unwrap(); // warm-up
        let mut times: Vec<f64> = (0..repeats)
            .map(|_| {
                let t = Instant::now();
                detector.predict(&text).unwrap();
                t.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        latency.insert(n.to_string(), json!(times[times.len() / 2]));
    }

    let mut throughput = serde_json::Value::Null;
    if let Some(corpus) = corpus {
        let codes: Vec<String> = std::io::BufReader::new(std::fs::File::open(&corpus).unwrap())
            .lines()
            .take(functions)
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
                v["func"].as_str().unwrap().to_owned()
            })
            .collect();
        let refs: Vec<&str> = codes.iter().map(String::as_str).collect();
        let t = Instant::now();
        let predictions = detector.predict_batch(&refs).unwrap();
        let seconds = t.elapsed().as_secs_f64();
        throughput = json!({
            "functions": predictions.len(),
            "seconds": seconds,
            "functions_per_second": predictions.len() as f64 / seconds,
            "insecure_probabilities": predictions.iter().map(|p| p.insecure_probability).collect::<Vec<_>>(),
        });
    }

    let probe_logits: Vec<Vec<f32>> = probes
        .iter()
        .map(|p| detector.predict(p).unwrap().logits)
        .collect();
    println!(
        "{}",
        json!({
            "backend": detector.backend().name(),
            "precision": format!("{:?}", detector.precision()),
            "threads": std::env::var("RAYON_NUM_THREADS").ok(),
            "load_seconds": load_seconds,
            "peak_rss_bytes": peak_rss_bytes(),
            "latency_seconds": latency,
            "throughput": throughput,
            "probe_logits": probe_logits,
        })
    );
}

/// VmHWM from /proc/self/status (Linux), in bytes.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
