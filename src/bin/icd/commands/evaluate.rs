//! `icd evaluate`: the metrics of the model's verdicts on labelled CodeXGLUE data, and
//! its predictions in the CodeXGLUE evaluator's format.

use insecure_code_detector::evaluation::{threshold_for, Target};

use crate::detector::{build_detector, detector_builder};
use crate::evaluation_plot::evaluation_svg;
use crate::evaluation_report::{EvaluationReport, TargetPoint};
use crate::flags::{EvaluateArgs, EvaluateFormat, ModelArgs};
use crate::labelled::run_labelled;
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
        if plot == &args.predictions {
            return Err(Failure(format!(
                "--plot and --predictions are both {}",
                plot.display()
            )));
        }
    }
    let (builder, calibration) = detector_builder(model, &Settings::default())?;
    let detector = build_detector(builder, model)?;
    let run = run_labelled(&detector, &args.data)?;
    let threshold = args
        .threshold
        .or(calibration.and_then(|c| c.threshold))
        .unwrap_or(0.5);
    // Compared as scan compares, in f32, so that a score equal to the threshold is
    // flagged by both.
    let threshold = f64::from(threshold as f32);
    let predictions: String = run
        .rows
        .iter()
        .map(|(idx, p)| format!("{idx}\t{}\n", u8::from(f64::from(*p) >= threshold)))
        .collect();
    let scored = run.evaluation.scored()?;
    // Everything is computed before anything is written.
    let svg = match &args.plot {
        Some(_) => Some(evaluation_svg(&scored, threshold)?),
        None => None,
    };
    let target = match (args.target_precision, args.target_recall) {
        (Some(p), _) => Some(Target::Precision(p)),
        (_, Some(r)) => Some(Target::Recall(r)),
        _ => None,
    };
    let target = match target {
        Some(t) => Some(TargetPoint::new(t, threshold_for(&scored, t)?)),
        None => None,
    };
    let mut report = EvaluationReport::new(
        &run.evaluation.metrics(threshold)?,
        run.evaluation.mean_loss(),
        target,
        Some(args.predictions.display().to_string()),
    );
    report.calibration = detector.calibration().map(|c| c.to_string());
    write_output(&args.predictions, &[&args.data], predictions.as_bytes())?;
    if let (Some(plot), Some(svg)) = (&args.plot, svg) {
        write_output(plot, &[&args.data, &args.predictions], svg.as_bytes())
            .map_err(|e| Failure(format!("--plot: {}", e.0)))?;
    }
    match args.format {
        EvaluateFormat::Json => println!("{}", report.to_json()?),
        EvaluateFormat::Table => print!("{}", report.to_table()),
    }
    Ok(())
}
