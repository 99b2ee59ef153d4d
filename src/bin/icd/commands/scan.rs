//! `icd scan`: find the functions under the given paths, classify each (through the
//! prediction cache), and report them in the chosen format. Exit status: 0 no
//! findings, 1 findings, 2 error.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use insecure_code_detector::files::path_from_text;
use insecure_code_detector::report::{printable, printable_path};
use insecure_code_detector::scan::FunctionSpan;
use insecure_code_detector::{Detector, RobertaConfig};

use crate::baseline::Baseline;
use crate::changed_lines::ChangedLines;
use crate::classification::{classify_functions, Classified, ClassifyMode};
use crate::detector::{build_detector, detector_builder};
use crate::flags::{ModelArgs, ScanArgs, ScanFormat};
use crate::output::write_output;
use crate::report::{Finding, ScanReport, TriageUse};
use crate::scan_cache::ScanCache;
use crate::sources::{self, find_and_warn};
use crate::triage::{self, Triage};
use crate::{emit, settings, Failure};

pub fn run(model: &ModelArgs, args: &ScanArgs) -> Result<ExitCode, Failure> {
    let settings = settings::Settings::find(
        &args.sources.paths,
        args.sources.config.as_deref(),
        args.sources.no_config,
    )?;
    if let Some(path) = &settings.path {
        eprintln!(
            "icd: settings from {}",
            printable_path(path)
        );
    }
    let (builder, calibration) = detector_builder(model, &settings)?;
    // Flags win over the calibration file, and it over the settings file.
    let threshold = args
        .threshold
        .or(calibration.as_ref().and_then(|c| c.threshold).map(|t| t as f32))
        .or(settings.threshold)
        .unwrap_or(0.5);
    let window = args.window || settings.window == Some(true);
    let top_lines = args.top_lines.or(settings.top_lines).unwrap_or(3);
    if let Some(base) = &args.link_base {
        if args.format != ScanFormat::Markdown {
            return Err(Failure("--link-base applies to --format markdown only".into()));
        }
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(Failure(format!(
                "--link-base is {:?}: expected an http:// or https:// URL",
                printable(base)
            )));
        }
    }
    if !(0.0..=1.0).contains(&threshold) {
        return Err(Failure(format!(
            "--threshold is {threshold}, expected 0..=1"
        )));
    }
    // Read before any model work, so that a bad baseline fails fast.
    let baseline = args
        .baseline
        .as_deref()
        .map(Baseline::read)
        .transpose()?;
    let triage = Triage::find(
        &args.sources.paths,
        args.triage.as_deref(),
        args.no_triage,
    )?;
    // What building would refuse is refused whether or not the model loads.
    builder.check()?;
    let max_tokens = builder.resolved_max_tokens()?;
    let width = max_tokens - 2;
    let stride = args
        .stride
        .or(settings.stride)
        .unwrap_or(Detector::default_stride(max_tokens));
    // A settings file is the tree's: it may not make a token cost more than four
    // windows (the default stride, half a window, costs two); --stride may.
    if let (None, Some(from_settings), true) = (args.stride, settings.stride, window) {
        let least = width.div_ceil(4);
        if from_settings < least {
            let at = settings.path.as_deref().unwrap_or(Path::new(settings::FILE_NAME));
            return Err(Failure(format!(
                "{}: stride is {from_settings}: a settings file may set no stride below a quarter window ({least} tokens), which would classify each token in more than four windows; --stride sets any",
                printable_path(at)
            )));
        }
    }
    if !(1..=width).contains(&stride) {
        return Err(Failure(format!(
            "--stride is {stride}, expected 1..={width} (the model's window of {max_tokens} tokens less <s> and </s>)"
        )));
    }
    // Find every function first, so that the progress bar knows the total.
    let sources::Found {
        mut functions,
        inputs,
        gaps,
    } = find_and_warn(&args.sources, settings.exclude.as_ref())?;
    if let Some(rev) = &args.changed_since {
        let files: std::collections::BTreeSet<PathBuf> =
            functions.iter().map(|(file, _)| path_from_text(file)).collect();
        let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        let changed = ChangedLines::since(rev, &files)?;
        let all = functions.len();
        functions.retain(|(file, f)| changed.touches(&path_from_text(file), f));
        eprintln!(
            "icd: {} of {all} functions are on lines changed since {}",
            functions.len(),
            printable(rev)
        );
    }

    let mode = ClassifyMode {
        window: window.then_some(stride),
        explain: args.explain,
    };
    let use_cache = !args.no_cache && settings.cache != Some(false);
    let mut cache = if use_cache {
        let config = RobertaConfig::from_file(&builder.model_dir().join("config.json"))?;
        ScanCache::open(
            &builder,
            &mode,
            config.id2label,
            calibration.as_ref().map(|c| c.calibration),
            max_tokens,
        )?
    } else {
        None
    };
    let mut results: Vec<Option<Classified>> = match &mut cache {
        Some(cache) => cache.get(&functions),
        None => vec![None; functions.len()],
    };
    let misses: Vec<usize> = (0..functions.len())
        .filter(|&i| results[i].is_none())
        .collect();
    if let Some(cache) = &cache {
        let hits = functions.len() - misses.len();
        eprintln!(
            "icd: {hits} of {} functions from the prediction cache {}{}",
            functions.len(),
            printable_path(cache.path()),
            if misses.is_empty() {
                "; the model was not loaded"
            } else {
                ""
            }
        );
    }
    // Without the cache the model always loads, so that a checkpoint it cannot load is
    // an error even where there is nothing to classify.
    if !misses.is_empty() || cache.is_none() {
        let detector = build_detector(builder.clone(), model)?;
        if let Some(cache) = &mut cache {
            cache.confirm(&builder);
        }
        let progress = (std::io::stderr().is_terminal() && misses.len() >= 64).then(|| {
            let bar = indicatif::ProgressBar::new(misses.len() as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} functions ({eta} left)",
                )
                .expect("valid template"),
            );
            bar
        });
        for chunk in misses.chunks(detector.batch_size() * 8) {
            let spans: Vec<&(String, FunctionSpan)> =
                chunk.iter().map(|&i| &functions[i]).collect();
            let classified = classify_functions(&detector, &spans, &mode)?;
            if let Some(cache) = &mut cache {
                cache.put(&spans, &classified);
            }
            for (&i, c) in chunk.iter().zip(classified) {
                results[i] = Some(c);
            }
            if let Some(bar) = &progress {
                bar.inc(chunk.len() as u64);
            }
        }
        if let Some(bar) = progress {
            bar.finish_and_clear();
        }
    }
    let findings: Vec<Finding> = functions
        .into_iter()
        .zip(results)
        .map(|((file, f), c)| {
            let c = c.expect("every function classified");
            Finding::new(&file, f, c, top_lines, args.no_ignore)
        })
        .collect();
    let mut report = ScanReport::new(
        findings,
        threshold,
        &gaps,
        builder.model_dir(),
        baseline,
        triage.as_ref(),
        triage::today(),
    );
    report.calibration = model.calibration.as_deref().or(settings.calibration.as_deref());
    if let Some(used) = &report.triage {
        note_triage(used);
    }
    let text = emit::render(args.format, &report, args.link_base.as_deref())?;
    match &args.output {
        Some(path) => {
            // Every file the scan read: the sources, and the files that steered it.
            let mut inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
            inputs.extend(triage.as_ref().map(|t| t.path.as_path()));
            inputs.extend(settings.path.as_deref());
            inputs.extend(model.calibration.as_deref().or(settings.calibration.as_deref()));
            inputs.extend(args.baseline.as_deref());
            write_output(path, &inputs, text.as_bytes())?
        }
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(if report.findings_count() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// What the triage file did, on stderr: a pull request that adds entries shows in the
/// count of what they suppress.
fn note_triage(used: &TriageUse) {
    let path = used.path.display().to_string();
    let file = printable(&path);
    eprintln!(
        "icd: note: {} functions suppressed by {file} ({} false-positive, {} accepted-risk), {} confirmed",
        used.suppressed(),
        used.false_positive,
        used.accepted_risk,
        used.confirmed
    );
    if used.elsewhere > 0 {
        eprintln!(
            "icd: warning: {} functions suppressed by {file} are not in the file their entry names (copies or moves of a triaged function: check that the verdict holds where they are)",
            used.elsewhere
        );
    }
    if used.expired > 0 {
        eprintln!(
            "icd: warning: {} functions have an expired entry in {file}, which no longer applies (icd triage check lists them)",
            used.expired
        );
    }
}
