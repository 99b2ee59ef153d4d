//! The detector that the model flags (`--model`, `--backend`, `--precision`...) and the
//! settings file describe.

use std::io::IsTerminal;

use insecure_code_detector::calibration::CalibrationFile;
use insecure_code_detector::{
    hub, Backend, Detector, DetectorBuilder, Precision, Preprocessing, HUB_MODEL_ID,
};

use crate::flags::ModelArgs;
use crate::settings::Settings;
use crate::Failure;

pub fn load_detector(args: &ModelArgs, settings: &Settings) -> Result<Detector, Failure> {
    let (builder, _) = detector_builder(args, settings)?;
    build_detector(builder, args)
}

/// Loads the detector, and with --warm-up compiles its kernels for every call shape.
pub fn build_detector(builder: DetectorBuilder, args: &ModelArgs) -> Result<Detector, Failure> {
    let detector = builder.build()?;
    if args.warm_up {
        let start = std::time::Instant::now();
        let calls = detector.warm_up()?;
        eprintln!(
            "icd: warm-up: {calls} model call shapes on {} in {:.1} s",
            detector.backend(),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(detector)
}

/// The detector the model flags (and settings) describe, not yet loaded, with the
/// calibration file it applies (`--calibration`, else the settings').
pub fn detector_builder(
    args: &ModelArgs,
    settings: &Settings,
) -> Result<(DetectorBuilder, Option<CalibrationFile>), Failure> {
    let (dir, weights) = match &args.model {
        Some(dir) => (dir.clone(), None),
        None => {
            let snapshot = hub::resolve(HUB_MODEL_ID, std::io::stderr().is_terminal())?;
            let root = insecure_code_detector::files::cache_dir().ok_or_else(|| {
                Failure(
                    "no cache directory for the converted weights: set ICD_CACHE_DIR".to_owned(),
                )
            })?;
            let (weights, converted) = hub::safetensors_weights(&snapshot, &root)?;
            if converted {
                eprintln!(
                    "icd: converted the cached pytorch_model.bin once to {}",
                    weights.display()
                );
            }
            (snapshot, Some(weights))
        }
    };
    let backend = match &args.backend {
        Some(name) => name.parse::<Backend>()?,
        // BURN_DEVICE is honoured only when it names a backend this tool knows, and
        // through the same checked path as --backend: never Device::default().
        None => match std::env::var("BURN_DEVICE")
            .ok()
            .and_then(|v| v.parse::<Backend>().ok())
        {
            Some(backend) => backend,
            None => Backend::default_cpu()?,
        },
    };
    let preprocessing = if args.collapse_whitespace {
        Preprocessing::CollapseWhitespace
    } else {
        Preprocessing::Raw
    };
    let mut builder = Detector::builder(dir);
    if let Some(weights) = weights {
        builder = builder.weights(weights);
    }
    let builder = builder
        .backend(backend)
        .batch_size(args.batch_size.unwrap_or(8))
        .preprocessing(preprocessing)
        .precision(
            args.precision
                .or(settings.precision)
                .unwrap_or(Precision::F32),
        );
    let (path, from_settings) = match (&args.calibration, &settings.calibration) {
        (Some(path), _) => (path, false),
        (None, Some(path)) => (path, true),
        (None, None) => return Ok((builder, None)),
    };
    let in_settings = |e: String| match (from_settings, &settings.path) {
        (true, Some(toml)) => Failure(format!("{}: calibration: {e}", toml.display())),
        _ => Failure(e),
    };
    if let (true, Some(toml)) = (from_settings && settings.from_tree, &settings.path) {
        let dir = std::path::absolute(toml)
            .unwrap_or_else(|_| toml.clone())
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        crate::tree_files::confine(path, &dir, "calibration file", "--calibration FILE")
            .map_err(|e| in_settings(e.0))?;
    }
    let file = builder
        .read_calibration(path)
        .map_err(|e| in_settings(e.to_string()))?;
    Ok((builder.calibration(Some(file.calibration)), Some(file)))
}
