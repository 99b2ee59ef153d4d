//! `icd evaluate`: accuracy, precision, recall, F1 and the confusion matrix on labelled
//! CodeXGLUE data, and the predictions in the CodeXGLUE evaluator's format.

use serde_json::json;

use crate::codexglue::read_jsonl;
use crate::detector::load_detector;
use crate::flags::{EvaluateArgs, ModelArgs};
use crate::output::write_output;
use crate::report::is_finding;
use crate::settings::Settings;
use crate::Failure;

/// Binary metrics with label 1 (insecure) as the positive class.
#[derive(Debug, Default, PartialEq)]
struct Confusion {
    true_positive: usize,
    false_positive: usize,
    true_negative: usize,
    false_negative: usize,
}

pub fn run(model: &ModelArgs, args: &EvaluateArgs) -> Result<(), Failure> {
    let rows = read_jsonl(&args.data)?;
    // Every label and index is checked before the model runs, naming the line.
    let mut labelled = Vec::with_capacity(rows.len());
    for row in &rows {
        let at = format!("{}:{}", args.data.display(), row.line);
        let target = match row.target.as_u64() {
            Some(t @ (0 | 1)) => t,
            _ => {
                return Err(Failure(format!(
                    "{at}: `target` is {}, expected 0 or 1",
                    row.target
                )))
            }
        };
        let idx = row
            .idx
            .as_i64()
            .map(|i| i.to_string())
            .or_else(|| row.idx.as_u64().map(|i| i.to_string()))
            .ok_or_else(|| Failure(format!("{at}: `idx` is {}, expected an integer", row.idx)))?;
        labelled.push((idx, row.func.as_str(), target));
    }
    let detector = load_detector(model, &Settings::default())?;
    let mut confusion = Confusion::default();
    let mut predictions = String::new();
    for chunk in labelled.chunks(detector.batch_size() * 8) {
        let codes: Vec<&str> = chunk.iter().map(|(_, f, _)| *f).collect();
        for ((idx, _, target), p) in chunk.iter().zip(detector.predict_batch(&codes)?) {
            // The CodeXGLUE evaluator's convention: predicted label 1 when p >= 0.5.
            let predicted = u64::from(is_finding(&p, 0.5));
            predictions += &format!("{idx}\t{predicted}\n");
            match (predicted, *target) {
                (1, 1) => confusion.true_positive += 1,
                (1, _) => confusion.false_positive += 1,
                (_, 1) => confusion.false_negative += 1,
                _ => confusion.true_negative += 1,
            }
        }
    }
    write_output(&args.predictions, &[&args.data], predictions.as_bytes())?;
    let c = &confusion;
    let total = c.true_positive + c.false_positive + c.true_negative + c.false_negative;
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let accuracy = ratio(c.true_positive + c.true_negative, total);
    let precision = ratio(c.true_positive, c.true_positive + c.false_positive);
    let recall = ratio(c.true_positive, c.true_positive + c.false_negative);
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "examples": total,
            "accuracy": accuracy,
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "confusion_matrix": {
                "true_positive": c.true_positive,
                "false_positive": c.false_positive,
                "true_negative": c.true_negative,
                "false_negative": c.false_negative,
            },
            "predictions": args.predictions.display().to_string(),
        }))?
    );
    Ok(())
}
