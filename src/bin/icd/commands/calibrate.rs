//! `icd calibrate`: fits a calibration of the insecure probability on labelled data,
//! chooses the threshold for a precision or recall target under it, and writes both,
//! with what they were fitted on and for, to a calibration file.

use insecure_code_detector::calibration::{
    Calibration, CalibrationFile, CheckpointId, FittedOn, CALIBRATION_FORMAT,
    CALIBRATION_VERSION,
};
use insecure_code_detector::evaluation::{threshold_for, Target};
use serde_json::json;

use crate::detector::{build_detector, detector_builder};
use crate::evaluation_report::EvaluationReport;
use crate::flags::{CalibrateArgs, ModelArgs};
use crate::labelled::run_labelled;
use crate::output::write_output;
use crate::settings::Settings;
use crate::Failure;

pub fn run(model: &ModelArgs, args: &CalibrateArgs) -> Result<(), Failure> {
    if let Some(existing) = &model.calibration {
        return Err(Failure(format!(
            "--calibration {}: calibrate fits on the model's own scores; leave it out",
            existing.display()
        )));
    }
    let (builder, _) = detector_builder(model, &Settings::default())?;
    let sha256 = builder.checkpoint_sha256()?;
    let detector = build_detector(builder, model)?;
    let before = run_labelled(&detector, &args.data)?.evaluation;
    let at = args.data.display();
    let fit = before
        .fit_calibration()
        .map_err(|e| Failure(format!("{at}: {e}")))?;
    let after = before.recalibrated(Some(&fit.calibration))?;
    let scored = after.scored()?;
    let target = match (args.target_precision, args.target_recall) {
        (Some(p), _) => Some(Target::Precision(p)),
        (_, Some(r)) => Some(Target::Recall(r)),
        _ => None,
    };
    let (threshold, target_json) = match target {
        None => (None, None),
        Some(t) => {
            let (name, wanted) = match t {
                Target::Precision(p) => ("precision", p),
                Target::Recall(r) => ("recall", r),
            };
            let point = threshold_for(&scored, t)?.ok_or_else(|| {
                Failure(format!(
                    "{at}: no threshold gives a calibrated {name} of {wanted} or more on these \
                     {} rows ({} insecure); nothing written",
                    scored.len(),
                    scored.positive_count()
                ))
            })?;
            (Some(point.threshold), Some(json!({ name: wanted })))
        }
    };
    // Before: the model's own loss; after: the fit's negative log-likelihood.
    let report = |evaluation: &insecure_code_detector::evaluation::Evaluation, t: f64, loss| {
        evaluation
            .metrics(t)
            .map(|m| serde_json::to_value(EvaluationReport::new(&m, loss, None, None)))
    };
    let file = CalibrationFile {
        format: CALIBRATION_FORMAT.to_owned(),
        version: CALIBRATION_VERSION,
        written_by: format!("insecure-code-detector {}", env!("CARGO_PKG_VERSION")),
        calibration: fit.calibration,
        threshold,
        target: target_json,
        checkpoint: CheckpointId {
            sha256,
            labels: detector.labels().to_vec(),
        },
        fitted_on: FittedOn {
            data: args.data.display().to_string(),
            rows: scored.len(),
            positives: scored.positive_count(),
        },
        metrics: json!({
            "negative_log_likelihood": {"before": fit.loss_before, "after": fit.loss},
            "before": report(&before, 0.5, before.mean_loss())??,
            "after": report(&after, threshold.unwrap_or(0.5), fit.loss)??,
        }),
    };
    write_output(&args.output, &[&args.data], file.to_json()?.as_bytes())?;
    let metrics_after = after.metrics(threshold.unwrap_or(0.5))?;
    let metrics_before = before.metrics(0.5)?;
    // Four decimals: the file holds the fit in full.
    let fitted = match fit.calibration {
        Calibration::Platt { a, b } => format!("Platt scaling a={a:.4} b={b:.4}"),
        Calibration::Temperature { temperature } => {
            format!("temperature scaling T={temperature:.4}")
        }
    };
    println!(
        "{}: {fitted} fitted on {} rows ({} insecure) of {at}",
        args.output.display(),
        scored.len(),
        scored.positive_count()
    );
    println!(
        "negative log-likelihood {:.4} -> {:.4}; brier {:.4} -> {:.4}; ece {:.4} -> {:.4}",
        fit.loss_before,
        fit.loss,
        metrics_before.brier,
        metrics_after.brier,
        metrics_before.ece,
        metrics_after.ece
    );
    if let (Some(t), Some(target)) = (threshold, target) {
        let c = &metrics_after.confusion;
        let target = match target {
            Target::Precision(p) => format!("precision >= {p}"),
            Target::Recall(r) => format!("recall >= {r}"),
        };
        println!(
            "threshold {t} for {target}: precision {:.4}, recall {:.4}, {} of {} flagged",
            c.precision(),
            c.recall(),
            c.true_positive + c.false_positive,
            scored.len()
        );
    }
    Ok(())
}
