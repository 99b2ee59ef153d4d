//! Hostile input: huge functions, binary garbage, huge batches. Each returns a result
//! in bounded time and memory, and the detector stays usable.

mod common;

use std::time::Instant;

use common::*;
use insecure_code_detector::Detector;

#[test]
fn ten_megabyte_function_is_truncated() {
    let detector = Detector::from_pretrained(fixture("roberta-2-labels")).unwrap();
    let line = "    if (buf[i] != ctx->data[i]) { memcpy(dst + i, src, len - i); }\n";
    let huge: String = line.repeat(10_000_000 / line.len() + 1);
    assert!(huge.len() >= 10_000_000);
    let started = Instant::now();
    let p = detector.predict(&huge).unwrap();
    eprintln!("10 MB function: {:?}", started.elapsed());
    assert!(p.truncated);
    assert_eq!(p.tokens, detector.max_tokens());
    // Same tokens, so the same verdict, as the first part of it alone.
    let head: String = line.repeat(200);
    let q = detector.predict(&head).unwrap();
    assert_eq!(p.logits, q.logits);
}

#[test]
fn binary_garbage_and_control_characters_classify() {
    let detector = Detector::from_pretrained(fixture("roberta-2-labels")).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..100_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let text = String::from_utf8_lossy(&bytes);
    let p = detector.predict(&text).unwrap();
    assert!(p.insecure_probability.is_finite());
    let p = detector.predict("\0\u{1}\u{7f}\u{feff}\u{10ffff}").unwrap();
    assert!(p.insecure_probability.is_finite());
    assert!(detector.predict("int x;").is_ok());
}

#[test]
fn hundred_thousand_tiny_functions_in_one_batch_call() {
    let detector = Detector::builder(fixture("roberta-2-labels"))
        .batch_size(64)
        .build()
        .unwrap();
    let codes: Vec<String> = (0..100_000)
        .map(|i| format!("int f{i}(void) {{ return {i}; }}"))
        .collect();
    let refs: Vec<&str> = codes.iter().map(String::as_str).collect();
    let started = Instant::now();
    let predictions = detector.predict_batch(&refs).unwrap();
    eprintln!("100000 tiny functions: {:?}", started.elapsed());
    assert_eq!(predictions.len(), codes.len());
    for i in [0, 4_999, 99_999] {
        assert_eq!(
            predictions[i],
            detector.predict(&codes[i]).unwrap(),
            "input {i}"
        );
    }
}
