//! Labelled CodeXGLUE data run through the model: what `evaluate` and `calibrate`
//! share. Every row's index and label is checked, naming the line, before the model
//! runs.

use std::path::Path;

use insecure_code_detector::evaluation::{label_range, Evaluation};
use insecure_code_detector::Detector;

use crate::codexglue::read_jsonl;
use crate::Failure;

/// The model's verdicts on labelled data.
pub struct LabelledRun {
    /// Every prediction with its label.
    pub evaluation: Evaluation,
    /// Each row's `idx` and insecure probability, in file order.
    pub rows: Vec<(String, f32)>,
}

/// Reads `data` (CodeXGLUE jsonl with `target` labels), checks every row against the
/// checkpoint `detector` runs, and classifies each.
pub fn run_labelled(detector: &Detector, data: &Path) -> Result<LabelledRun, Failure> {
    let rows = read_jsonl(data)?;
    if rows.is_empty() {
        return Err(Failure(format!(
            "{}: no rows: metrics need at least one labelled function",
            data.display()
        )));
    }
    let mut evaluation = Evaluation::new(detector.config())
        .map_err(|e| Failure(format!("{}: {e}", detector.model_dir().display())))?;
    let expected = label_range(detector.config().num_labels);
    let mut labelled = Vec::with_capacity(rows.len());
    for row in &rows {
        let at = format!("{}:{}", data.display(), row.line);
        let label = row
            .target
            .as_u64()
            .and_then(|t| usize::try_from(t).ok())
            .filter(|&t| evaluation.is_insecure_label(t).is_ok())
            .ok_or_else(|| {
                Failure(format!(
                    "{at}: `target` is {}, expected {expected}, the checkpoint's labels",
                    row.target
                ))
            })?;
        let idx = row
            .idx
            .as_i64()
            .map(|i| i.to_string())
            .or_else(|| row.idx.as_u64().map(|i| i.to_string()))
            .ok_or_else(|| Failure(format!("{at}: `idx` is {}, expected an integer", row.idx)))?;
        labelled.push((idx, row.func.as_str(), label));
    }
    let mut out = Vec::with_capacity(labelled.len());
    for chunk in labelled.chunks(detector.batch_size() * 8) {
        let codes: Vec<&str> = chunk.iter().map(|(_, f, _)| *f).collect();
        for ((idx, _, label), p) in chunk.iter().zip(detector.predict_batch(&codes)?) {
            evaluation.push(&p, *label)?;
            out.push((idx.clone(), p.insecure_probability));
        }
    }
    Ok(LabelledRun {
        evaluation,
        rows: out,
    })
}
