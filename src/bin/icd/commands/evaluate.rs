//! `icd evaluate`: the metrics of the model's verdicts on labelled CodeXGLUE data, and
//! its predictions in the CodeXGLUE evaluator's format.

use insecure_code_detector::evaluation::{threshold_for, Evaluation, Target};

use crate::codexglue::read_jsonl;
use crate::detector::load_detector;
use crate::evaluation_plot::evaluation_svg;
use crate::evaluation_report::{EvaluationReport, TargetPoint};
use crate::flags::{EvaluateArgs, EvaluateFormat, ModelArgs};
use crate::output::write_output;
use crate::settings::Settings;
use crate::Failure;

pub fn run(model: &ModelArgs, args: &EvaluateArgs) -> Result<(), Failure> {
    if let Some(plot) = &args.plot {
        if !plot
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("svg"))
        {
            return Err(Failure(format!(
                "--plot {}: the plot is drawn as SVG; name a .svg file",
                plot.display()
            )));
        }
    }
    let rows = read_jsonl(&args.data)?;
    if rows.is_empty() {
        return Err(Failure(format!(
            "{}: no rows: metrics need at least one labelled function",
            args.data.display()
        )));
    }
    // Every label and index is checked before the model runs, naming the line.
    let mut labelled = Vec::with_capacity(rows.len());
    for row in &rows {
        let at = format!("{}:{}", args.data.display(), row.line);
        let target = row.target.as_u64().ok_or_else(|| {
            Failure(format!(
                "{at}: `target` is {}, expected a label index (0 or 1 for two labels)",
                row.target
            ))
        })?;
        let idx = row
            .idx
            .as_i64()
            .map(|i| i.to_string())
            .or_else(|| row.idx.as_u64().map(|i| i.to_string()))
            .ok_or_else(|| Failure(format!("{at}: `idx` is {}, expected an integer", row.idx)))?;
        labelled.push((at, idx, row.func.as_str(), target));
    }
    let detector = load_detector(model, &Settings::default())?;
    let mut evaluation = Evaluation::new(detector.config())?;
    let labels_taken = match detector.config().num_labels {
        // One logit is regressed onto 0 or 1.
        1 | 2 => "0 or 1".to_owned(),
        n => format!("0 to {}", n - 1),
    };
    let mut labels = Vec::with_capacity(labelled.len());
    for (at, _, _, target) in &labelled {
        let label = usize::try_from(*target).unwrap_or(usize::MAX);
        if evaluation.is_insecure_label(label).is_err() {
            return Err(Failure(format!(
                "{at}: `target` is {target}, expected {labels_taken}, the checkpoint's labels"
            )));
        }
        labels.push(label);
    }
    let threshold = args.threshold;
    let mut predictions = String::new();
    for (chunk, chunk_labels) in labelled
        .chunks(detector.batch_size() * 8)
        .zip(labels.chunks(detector.batch_size() * 8))
    {
        let codes: Vec<&str> = chunk.iter().map(|(_, _, f, _)| *f).collect();
        for (((_, idx, _, _), &label), p) in chunk
            .iter()
            .zip(chunk_labels)
            .zip(detector.predict_batch(&codes)?)
        {
            let predicted = u8::from(f64::from(p.insecure_probability) >= threshold);
            predictions += &format!("{idx}\t{predicted}\n");
            evaluation.push(&p, label)?;
        }
    }
    write_output(&args.predictions, &[&args.data], predictions.as_bytes())?;
    let scored = evaluation.scored()?;
    if let Some(plot) = &args.plot {
        let svg = evaluation_svg(&scored, threshold)?;
        write_output(plot, &[&args.data, &args.predictions], svg.as_bytes())?;
    }
    let target = match (args.target_precision, args.target_recall) {
        (Some(p), _) => Some(Target::Precision(p)),
        (_, Some(r)) => Some(Target::Recall(r)),
        _ => None,
    };
    let target = match target {
        Some(t) => Some(TargetPoint::new(t, threshold_for(&scored, t)?)),
        None => None,
    };
    let report = EvaluationReport::new(
        &evaluation.metrics(threshold)?,
        evaluation.mean_loss(),
        target,
        args.predictions.display().to_string(),
    );
    match args.format {
        EvaluateFormat::Json => println!("{}", report.to_json()?),
        EvaluateFormat::Table => print!("{}", report.to_table()),
    }
    Ok(())
}
