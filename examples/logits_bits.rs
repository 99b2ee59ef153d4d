//! The logits of every fixture checkpoint, on every compiled backend and at every
//! precision, as the bits of their f32 values: one JSON line per case on stdout.
//!
//! ```text
//! cargo run --features ndarray,wgpu --example logits_bits > logits.jsonl
//! ```
//!
//! Two builds that print the same lines compute the same logits bit for bit on this
//! machine (`scripts/logits_bits REV` compares the working tree with a revision). Each
//! case runs the fixture inputs one at a time, all together in one batch (laid end to
//! end) and, for the longest, in overlapping windows; a configuration the library
//! refuses (int8 off the CPU, say) prints its error instead, so that refusals are
//! compared too.

use std::path::Path;

use insecure_code_detector::{Backend, Detector, Precision, Preprocessing};
use serde_json::json;

const CHECKPOINTS: [&str; 3] = [
    "roberta-2-labels",
    "roberta-1-label-old-config",
    "roberta-5-labels",
];
const PRECISIONS: [Precision; 5] = [
    Precision::F32,
    Precision::Tf32,
    Precision::Bf16,
    Precision::F16,
    Precision::Int8,
];

fn bits(logits: &[f32]) -> Vec<String> {
    logits
        .iter()
        .map(|l| format!("{:08x}", l.to_bits()))
        .collect()
}

fn print(case: &str, result: insecure_code_detector::Result<Vec<Vec<f32>>>) {
    let line = match result {
        Ok(rows) => {
            json!({"case": case, "logits": rows.iter().map(|r| bits(r)).collect::<Vec<_>>()})
        }
        Err(e) => json!({"case": case, "error": e.to_string()}),
    };
    println!("{line}");
}

fn main() {
    let tree = Path::new(env!("CARGO_MANIFEST_DIR"));
    // scripts/logits_bits names the tree it means to run: a build of another is refused.
    if let Ok(wanted) = std::env::var("ICD_LOGITS_BITS_TREE") {
        let built = tree.canonicalize().unwrap();
        assert_eq!(built, Path::new(&wanted), "this build is of another tree");
    }
    let fixtures = tree.join("tests/fixtures");
    let inputs: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("inputs.json")).unwrap())
            .unwrap();
    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let longest = refs.iter().copied().max_by_key(|s| s.len()).unwrap();
    for backend in Backend::compiled() {
        for checkpoint in CHECKPOINTS {
            for precision in PRECISIONS {
                for mode in [Preprocessing::Raw, Preprocessing::CollapseWhitespace] {
                    let case = format!("{checkpoint} {backend} {precision:?} {mode:?}");
                    let built = Detector::builder(fixtures.join(checkpoint))
                        .backend(backend)
                        .precision(precision)
                        .preprocessing(mode)
                        .build();
                    let detector = match built {
                        Ok(d) => d,
                        Err(e) => {
                            print(&case, Err(e));
                            continue;
                        }
                    };
                    for (i, code) in refs.iter().enumerate() {
                        let one = detector.predict(code).map(|p| vec![p.logits]);
                        print(&format!("{case} input {i}"), one);
                    }
                    let batch = detector
                        .predict_batch(&refs)
                        .map(|ps| ps.into_iter().map(|p| p.logits).collect());
                    print(&format!("{case} batch"), batch);
                }
                let case = format!("{checkpoint} {backend} {precision:?} windows");
                let windows = Detector::builder(fixtures.join(checkpoint))
                    .backend(backend)
                    .precision(precision)
                    .max_tokens(12)
                    .build()
                    .and_then(|d| d.predict_windows(longest, 6))
                    .map(|w| vec![w.prediction.logits]);
                print(&case, windows);
            }
        }
    }
}
