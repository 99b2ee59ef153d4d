//! Token and line scores (the last layer's attention from `<s>`) against the ones
//! transformers itself produced with eager attention for the fixtures
//! (`tests/fixtures/make_fixtures.py`: `token_scores`, `token_lines`, `line_scores`,
//! and every window of the long input), on every backend and precision.

use crate::common::*;
use insecure_code_detector::{Backend, Detector, Explanation, Precision, Preprocessing};
use serde_json::Value;

/// Within this of transformers' in f32.
const F32_TOLERANCE: f32 = 1e-5;

fn load(checkpoint: &str, backend: Backend, mode: Preprocessing, precision: Precision) -> Detector {
    Detector::builder(fixture(checkpoint))
        .backend(backend)
        .preprocessing(mode)
        .precision(precision)
        .build()
        .unwrap_or_else(|e| panic!("loading {checkpoint} on {backend} at {precision}: {e}"))
}

/// `(line, score)` pairs of a reference's `line_scores`.
fn lines(v: &Value) -> Vec<(usize, f32)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            (
                pair[0].as_u64().unwrap() as usize,
                pair[1].as_f64().unwrap() as f32,
            )
        })
        .collect()
}

/// The largest difference of `e`'s token and line scores from `expected`'s (whose
/// token lines and set of lines must be the same).
fn score_error(e: &Explanation, expected: &Value, what: &str) -> f32 {
    let want_scores = floats(&expected["token_scores"]);
    assert_eq!(e.tokens.len(), want_scores.len(), "{what}: tokens");
    let want_lines: Vec<Option<usize>> = expected["token_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_u64().map(|l| l as usize))
        .collect();
    let got_lines: Vec<Option<usize>> = e.tokens.iter().map(|t| t.line).collect();
    assert_eq!(got_lines, want_lines, "{what}: each token's line");
    let want_line_scores = lines(&expected["line_scores"]);
    let got_line_numbers: Vec<usize> = e.lines.iter().map(|l| l.line).collect();
    let want_line_numbers: Vec<usize> = want_line_scores.iter().map(|l| l.0).collect();
    assert_eq!(got_line_numbers, want_line_numbers, "{what}: lines");
    let sum: f32 = e.tokens.iter().map(|t| t.score).sum();
    assert!(
        (sum - 1.0).abs() < 1e-4,
        "{what}: token scores sum to {sum}"
    );
    let tokens = e
        .tokens
        .iter()
        .zip(&want_scores)
        .map(|(t, w)| (t.score - w).abs());
    let lines = e
        .lines
        .iter()
        .zip(&want_line_scores)
        .map(|(l, w)| (l.score - w.1).abs());
    tokens.chain(lines).fold(0.0, f32::max)
}

/// Every fixture input on `backend` at `precision`, alone and in one batch: the
/// largest score error, after checking ids, lines, the prediction (equal to
/// `predict`'s) and, in f32, that a batch explains each input exactly as alone. `None`
/// where the backend has no such precision.
fn worst_error(backend: Backend, precision: Precision) -> Option<f32> {
    if let Err(e) = Detector::builder(fixture(CHECKPOINTS[0]))
        .backend(backend)
        .precision(precision)
        .build()
    {
        // As in the parity tests: a backend without the dtype says so at load.
        assert!(e.to_string().contains("precision"), "{e}");
        eprintln!("SKIPPED: {backend} {precision}: {e}");
        return None;
    }
    let mut worst = 0f32;
    for checkpoint in CHECKPOINTS {
        let reference = reference_json(checkpoint);
        let inputs = reference["inputs"].as_array().unwrap();
        for mode in [Preprocessing::Raw, Preprocessing::CollapseWhitespace] {
            let detector = load(checkpoint, backend, mode, precision);
            let texts: Vec<&str> = inputs.iter().map(|i| i["text"].as_str().unwrap()).collect();
            let batch = detector.explain_batch(&texts).unwrap();
            for (i, (input, text)) in inputs.iter().zip(&texts).enumerate() {
                let what =
                    format!("{checkpoint} on {backend} at {precision} ({mode:?}), input {i}");
                let expected = &input[mode.name()];
                let e = detector.explain(text).unwrap();
                let ids: Vec<u64> = e.tokens.iter().map(|t| u64::from(t.id)).collect();
                let want_ids: Vec<u64> = expected["input_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap())
                    .collect();
                assert_eq!(ids, want_ids, "{what}: ids");
                assert_eq!(
                    e.prediction,
                    detector.predict(text).unwrap(),
                    "{what}: prediction"
                );
                // In f32 a batch explains each input exactly as alone; burn's reduced
                // precision tensors round differently in a batch, within the bound.
                if precision == Precision::F32 {
                    assert_eq!(batch[i], e, "{what}: in a batch");
                }
                worst = worst.max(score_error(&e, expected, &what));
                worst = worst.max(score_error(&batch[i], expected, &what));
            }
        }
    }
    Some(worst)
}

#[test]
fn f32_token_and_line_scores_match_transformers_on_every_backend() {
    for backend in test_backends() {
        let worst = worst_error(backend, Precision::F32).expect("f32 runs everywhere");
        assert!(
            worst <= F32_TOLERANCE,
            "{backend}: scores {worst} from transformers'"
        );
    }
}

/// bf16 and int8 round the products' operands: their scores stay within a few
/// hundredths of transformers' f32 ones on the fixtures.
#[test]
fn reduced_precision_scores_stay_near_transformers() {
    for backend in test_backends() {
        for (precision, bound) in [
            (Precision::Bf16, 2e-2),
            (Precision::F16, 2e-2),
            (Precision::Int8, 2e-2),
        ] {
            if let Some(worst) = worst_error(backend, precision) {
                eprintln!("{backend} at {precision}: scores within {worst} of transformers'");
                assert!(
                    worst <= bound,
                    "{backend} at {precision}: scores {worst} off"
                );
            }
        }
    }
}

/// `explain_windows` explains the window `predict_windows` reports, with that window's
/// scores as transformers gives them and lines numbered in the whole function.
#[test]
fn windows_are_explained_by_the_window_that_gave_the_verdict() {
    let checkpoint = "roberta-2-labels";
    let reference = reference_json(checkpoint);
    for backend in test_backends() {
        for mode in [Preprocessing::Raw, Preprocessing::CollapseWhitespace] {
            let detector = load(checkpoint, backend, mode, Precision::F32);
            let mut checked = 0;
            for input in reference["inputs"].as_array().unwrap() {
                let Some(windows) = input[mode.name()].get("windows") else {
                    continue;
                };
                let text = input["text"].as_str().unwrap();
                let stride = windows["stride"].as_u64().unwrap() as usize;
                let what = format!("{checkpoint} on {backend} ({mode:?})");
                let explained = detector.explain_windows(text, stride).unwrap();
                let predicted = detector.predict_windows(text, stride).unwrap();
                assert_eq!(
                    explained.explanation.prediction, predicted.prediction,
                    "{what}"
                );
                assert_eq!(explained.byte_range, predicted.byte_range, "{what}");
                // The reference's window with the highest probability of label 1, the
                // first of equals, as predict_windows picks it.
                let windows = windows["windows"].as_array().unwrap();
                assert_eq!(explained.windows, windows.len(), "{what}: windows");
                let probability = |w: &Value| {
                    let l = floats(&w["eager_logits"]);
                    1.0 / (1.0 + (l[0] - l[1]).exp())
                };
                let best = (1..windows.len()).fold(0, |best, i| {
                    if probability(&windows[i]) > probability(&windows[best]) {
                        i
                    } else {
                        best
                    }
                });
                let error = score_error(&explained.explanation, &windows[best], &what);
                assert!(error <= F32_TOLERANCE, "{what}: window {best}: {error}");
                checked += 1;
            }
            assert!(
                checked > 0,
                "the fixtures have an input longer than a window"
            );
        }
    }
}
