//! `icd classify`: one function from a file or stdin, or every row of a CodeXGLUE
//! jsonl file.

use std::io::Write;

use insecure_code_detector::{Explanation, LineScore, Prediction};
use serde::Serialize;
use serde_json::json;

use crate::codexglue::read_jsonl;
use crate::input::{read_input, FUNCTION_LIMIT};
use crate::detector::load_detector;
use crate::flags::{ClassifyArgs, ClassifyFormat, ModelArgs};
use crate::settings::Settings;
use crate::Failure;

/// A `--format json` row: the input's `idx`, the prediction's fields and, with
/// `--explain`, the token and line scores.
#[derive(Serialize)]
struct Row<'a> {
    idx: &'a serde_json::Value,
    #[serde(flatten)]
    prediction: &'a Prediction,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_scores: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line_scores: Option<&'a [LineScore]>,
}

pub fn run(model: &ModelArgs, args: &ClassifyArgs) -> Result<(), Failure> {
    if args.explain && args.format != ClassifyFormat::Json {
        return Err(Failure(
            "--explain needs --format json (the scores of every token and line)".into(),
        ));
    }
    let detector = load_detector(model, &Settings::default())?;
    let is_jsonl = args.jsonl || args.input.extension().is_some_and(|e| e == "jsonl");
    let rows: Vec<(serde_json::Value, String)> = if is_jsonl {
        read_jsonl(&args.input)?
            .into_iter()
            .map(|row| (row.idx, row.func))
            .collect()
    } else {
        let bytes = read_input(&args.input, FUNCTION_LIMIT)?;
        vec![(json!(0), String::from_utf8_lossy(&bytes).into_owned())]
    };
    let mut out = std::io::stdout().lock();
    let explain = args.explain;
    for chunk in rows.chunks(detector.batch_size() * 8) {
        let codes: Vec<&str> = chunk.iter().map(|(_, f)| f.as_str()).collect();
        let results: Vec<(Prediction, Option<Explanation>)> = if explain {
            detector
                .explain_batch(&codes)?
                .into_iter()
                .map(|e| (e.prediction.clone(), Some(e)))
                .collect()
        } else {
            detector
                .predict_batch(&codes)?
                .into_iter()
                .map(|p| (p, None))
                .collect()
        };
        for ((idx, _), (p, explanation)) in chunk.iter().zip(results) {
            match args.format {
                ClassifyFormat::Json => {
                    let row = Row {
                        idx,
                        prediction: &p,
                        token_scores: explanation
                            .as_ref()
                            .map(|e| e.tokens.iter().map(|t| t.score).collect()),
                        line_scores: explanation.as_ref().map(|e| e.lines.as_slice()),
                    };
                    // Through a `Value`, whose objects keep their keys sorted.
                    writeln!(out, "{}", serde_json::to_value(&row)?)?
                }
                ClassifyFormat::Text => writeln!(
                    out,
                    "{idx}\t{}\t{:.4}\t{}{}",
                    p.label_name,
                    p.insecure_probability,
                    p.tokens,
                    if p.truncated { " (truncated)" } else { "" }
                )?,
            }
        }
    }
    Ok(())
}

