//! `icd`: scan C/C++ source trees for insecure functions, classify functions, evaluate
//! on CodeXGLUE data and convert checkpoints. A thin front end over the library.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
mod sarif;
mod settings;
mod sources;

use insecure_code_detector::cache::{self, CacheKey, ModelKey, PredictionCache};
use insecure_code_detector::files::write_atomically;
use insecure_code_detector::report::printable;
use insecure_code_detector::scan::{FunctionSpan, Language};
use insecure_code_detector::weights::{convert_pytorch_to_safetensors, StorageDtype};
use insecure_code_detector::{
    hub, Backend, Detector, DetectorBuilder, Error, Explanation, LineScore, Precision, Prediction,
    Preprocessing, RobertaConfig, HUB_MODEL_ID,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sources::{find_functions_under, Gap, SourceArgs};

/// Flags insecure C/C++ functions with CodeBERT fine-tuned for defect detection.
#[derive(Parser)]
#[command(name = "icd", version, about)]
struct Cli {
    #[command(flatten)]
    model: ModelArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct ModelArgs {
    /// Checkpoint directory (config.json, weights, tokenizer files). Default: the hub
    /// model mrm8488/codebert-base-finetuned-detect-insecure-code from the local
    /// Hugging Face cache (HF_HUB_CACHE, HF_HOME), downloaded into it when missing
    /// and the machine is online (HF_HUB_OFFLINE=1 forbids that, HF_ENDPOINT picks the
    /// hub); a pytorch_model.bin is converted to safetensors once (ICD_CACHE_DIR).
    #[arg(long, global = true, value_name = "DIR", env = "ICD_MODEL")]
    model: Option<PathBuf>,
    /// Backend: auto, flex, ndarray, wgpu or cuda. Default: BURN_DEVICE when it names
    /// one of these, else the CPU backend.
    #[arg(long, global = true)]
    backend: Option<String>,
    /// Functions per model call.
    #[arg(long, global = true, default_value_t = 8)]
    batch_size: usize,
    /// CPU threads for the model (default: all cores; at most 1024).
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// Collapse whitespace before tokenizing, as CodeXGLUE's scripts do.
    #[arg(long, global = true)]
    collapse_whitespace: bool,
    /// Precision of the weights and the matrix products [default: f32, or .icd.toml's
    /// for scan].
    #[arg(long, global = true, value_parser = precision_parser())]
    precision: Option<Precision>,
    /// Compile the GPU backends' kernels for every model call shape before the first
    /// function, rather than as each shape first comes (nothing on the CPU backends).
    #[arg(long, global = true)]
    warm_up: bool,
}

/// `--precision`'s values, each with its description, from the library's table.
fn precision_parser() -> impl clap::builder::TypedValueParser<Value = Precision> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new(
        Precision::ALL.map(|p| PossibleValue::new(p.name()).help(p.summary())),
    )
    .map(|name| name.parse::<Precision>().expect("a name from the table"))
}

#[derive(Subcommand)]
enum Command {
    /// Find C/C++ function definitions under PATHs (respecting .gitignore) and
    /// classify each. Exit status: 0 no findings, 1 findings, 2 error.
    Scan(ScanArgs),
    /// Classify one function from FILE (or stdin), or every function of a
    /// CodeXGLUE jsonl file.
    Classify(ClassifyArgs),
    /// Accuracy, precision, recall, F1 and the confusion matrix on CodeXGLUE
    /// defect-detection jsonl (with `target` labels); writes predictions.txt.
    Evaluate(EvaluateArgs),
    /// Convert a hub checkpoint's pytorch_model.bin to model.safetensors.
    Convert(ConvertArgs),
    /// List the C/C++ function definitions under PATHs (respecting .gitignore), as
    /// `scan` finds them, without loading a model.
    Functions(FunctionsArgs),
    /// The prediction cache `scan` keeps (ICD_CACHE_DIR): what it holds, or empty it.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
}

#[derive(Subcommand)]
enum CacheAction {
    /// Where the cache is, its entries, models and size.
    Stats,
    /// Remove every entry.
    Clear,
}

#[derive(Args)]
struct FunctionsArgs {
    #[command(flatten)]
    sources: SourceArgs,
    #[arg(long, value_enum, default_value_t = FunctionsFormat::Table)]
    format: FunctionsFormat,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum FunctionsFormat {
    Table,
    Jsonl,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum ScanFormat {
    Table,
    Jsonl,
    Sarif,
}

#[derive(Args)]
struct ScanArgs {
    #[command(flatten)]
    sources: SourceArgs,
    #[arg(long, value_enum, default_value_t = ScanFormat::Table)]
    format: ScanFormat,
    /// Insecure probability at or above which a function is a finding [default: 0.5,
    /// or .icd.toml's].
    #[arg(long)]
    threshold: Option<f32>,
    /// Classify long functions as overlapping windows and report the worst window,
    /// instead of truncating at the model's limit.
    #[arg(long)]
    window: bool,
    /// Tokens between window starts with --window (default: half a window).
    #[arg(long)]
    stride: Option<usize>,
    /// Write the report here instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Also say which lines the model looked at: the lines of each function with the
    /// most of the last layer's attention from <s> (in the table under each finding,
    /// as "lines" in jsonl, as related locations in SARIF).
    #[arg(long)]
    explain: bool,
    /// Lines reported per function with --explain [default: 3, or .icd.toml's].
    #[arg(long, requires = "explain")]
    top_lines: Option<usize>,
    /// Report functions that an `icd: ignore` comment suppresses as findings too.
    #[arg(long)]
    no_ignore: bool,
    /// An earlier `icd scan --format sarif` log: only findings it does not have are
    /// reported and set the exit status (matched by fingerprint, so moved code stays
    /// known); SARIF output marks each result new, unchanged or absent.
    #[arg(long, value_name = "OLD.sarif")]
    baseline: Option<PathBuf>,
    /// Classify only the functions on lines changed between the git revision REV and
    /// the work tree (files added or untracked since: whole), in the repository of the
    /// current directory; the others are not reported.
    #[arg(long, value_name = "REV")]
    changed_since: Option<String>,
    /// Classify every function again, neither reading nor writing the prediction
    /// cache (on by default: results are kept in ICD_CACHE_DIR by the model's files,
    /// settings and the function's text, so unchanged functions are not classified
    /// twice).
    #[arg(long)]
    no_cache: bool,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum ClassifyFormat {
    Text,
    Json,
}

#[derive(Args)]
struct ClassifyArgs {
    /// A file holding one function, a .jsonl file (CodeXGLUE layout), or - for stdin.
    #[arg(default_value = "-")]
    input: PathBuf,
    /// Read INPUT as CodeXGLUE jsonl even without the .jsonl extension.
    #[arg(long)]
    jsonl: bool,
    #[arg(long, value_enum, default_value_t = ClassifyFormat::Text)]
    format: ClassifyFormat,
    /// With --format json, also each token's score (the last layer's attention from
    /// <s>, averaged over heads; every token in order, <s> and </s> included) and
    /// each line's sum of them (lines from 1 within the function, in line order).
    #[arg(long)]
    explain: bool,
}

#[derive(Args)]
struct EvaluateArgs {
    /// CodeXGLUE defect-detection jsonl: one {"idx", "func", "target"} object a line.
    data: PathBuf,
    /// Where to write the predictions in the CodeXGLUE evaluator's format.
    #[arg(long, default_value = "predictions.txt")]
    predictions: PathBuf,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum ConvertDtype {
    F32,
    F16,
}

#[derive(Args)]
struct ConvertArgs {
    /// pytorch_model.bin, or a checkpoint directory holding one.
    input: PathBuf,
    /// Output file (default: model.safetensors beside the input).
    output: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = ConvertDtype::F32)]
    dtype: ConvertDtype,
}

/// A failure, reported on stderr with exit status 2.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

/// `icd --version`: the version, the backends compiled in, this CPU's features and
/// what each precision runs on the default CPU backend.
fn long_version() -> String {
    use insecure_code_detector::cpu::CpuFeatures;
    use insecure_code_detector::ExecutionPlan;
    let backends: Vec<&str> = Backend::compiled().iter().map(|b| b.name()).collect();
    let cpu = CpuFeatures::get();
    // tf32 is f32 on a CPU.
    let plans: Vec<String> = [
        Precision::F32,
        Precision::Bf16,
        Precision::F16,
        Precision::Int8,
    ]
    .into_iter()
    .map(|precision| match Backend::default_cpu() {
        Ok(backend) => match ExecutionPlan::choose(precision, backend) {
            Ok(plan) => format!("{precision} {plan}"),
            Err(_) => format!("{precision} unavailable"),
        },
        Err(_) => format!("{precision} unavailable (no CPU backend)"),
    })
    .collect();
    format!(
        "{}\nbackends: {}\ncpu: {cpu}\ncpu backends run: {}",
        env!("CARGO_PKG_VERSION"),
        backends.join(", "),
        plans.join(", ")
    )
}

fn main() -> ExitCode {
    let cli = match Cli::command()
        // Made once per process, for clap, which takes a static string.
        .long_version(&*Box::leak(long_version().into_boxed_str()))
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches))
    {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Some(threads) = cli.model.threads {
        // Read by the thread pool of the CPU backends when it starts, which is later.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    let result = match &cli.command {
        Command::Scan(args) => scan(&cli.model, args),
        Command::Classify(args) => classify(&cli.model, args).map(|()| ExitCode::SUCCESS),
        Command::Evaluate(args) => evaluate(&cli.model, args).map(|()| ExitCode::SUCCESS),
        Command::Convert(args) => convert(args).map(|()| ExitCode::SUCCESS),
        Command::Functions(args) => functions(args).map(|()| ExitCode::SUCCESS),
        Command::Cache { action } => cache_command(action).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(Failure(message)) => {
            eprintln!("icd: error: {}", printable(&message));
            ExitCode::from(2)
        }
    }
}

fn load_detector(args: &ModelArgs, settings: &settings::Settings) -> Result<Detector, Failure> {
    build_detector(detector_builder(args, settings)?, args)
}

/// Loads the detector, and with --warm-up compiles its kernels for every call shape.
fn build_detector(builder: DetectorBuilder, args: &ModelArgs) -> Result<Detector, Failure> {
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

/// The detector the model flags (and settings) describe, not yet loaded.
fn detector_builder(
    args: &ModelArgs,
    settings: &settings::Settings,
) -> Result<DetectorBuilder, Failure> {
    let (dir, weights) = match &args.model {
        Some(dir) => (dir.clone(), None),
        None => {
            let snapshot = hub::resolve(HUB_MODEL_ID, std::io::stderr().is_terminal())?;
            let root = hub::converted_cache_dir().ok_or_else(|| {
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
    Ok(builder
        .backend(backend)
        .batch_size(args.batch_size)
        .preprocessing(preprocessing)
        .precision(
            args.precision
                .or(settings.precision)
                .unwrap_or(Precision::F32),
        ))
}

/// One classified function of a scanned file.
struct Finding {
    file: String,
    function: String,
    start_line: usize,
    end_line: usize,
    prediction: Prediction,
    /// With --window: the lines of the worst window and the number of windows.
    window: Option<(usize, usize, usize)>,
    /// With --explain: the top lines (file line numbers), highest score first.
    lines: Vec<LineScore>,
    /// [`FunctionSpan::fingerprint`].
    fingerprint: String,
    /// An `icd: ignore` comment suppresses the function, and `--no-ignore` is not given.
    suppressed: bool,
    /// With --baseline, for a function at or above the threshold: whether the
    /// baseline has it.
    baseline: Option<sarif::BaselineState>,
}

/// What a scan says of one function.
#[derive(Clone, Copy, PartialEq)]
enum Verdict {
    /// At or above the threshold: a finding.
    Insecure,
    /// At or above the threshold, but suppressed in the source: not a finding.
    Suppressed,
    /// At or above the threshold, and in the `--baseline` already: not a new finding.
    Baseline,
    /// Below the threshold.
    Ok,
}

impl Verdict {
    fn name(self) -> &'static str {
        match self {
            Verdict::Insecure => "insecure",
            Verdict::Suppressed => "suppressed",
            Verdict::Baseline => "baseline",
            Verdict::Ok => "ok",
        }
    }
}

impl Finding {
    fn verdict(&self, threshold: f32) -> Verdict {
        if !is_finding(&self.prediction, threshold) {
            Verdict::Ok
        } else if self.suppressed {
            Verdict::Suppressed
        } else if self.baseline == Some(sarif::BaselineState::Unchanged) {
            Verdict::Baseline
        } else {
            Verdict::Insecure
        }
    }
}

fn scan(model: &ModelArgs, args: &ScanArgs) -> Result<ExitCode, Failure> {
    let settings = settings::Settings::find(
        &args.sources.paths,
        args.sources.config.as_deref(),
        args.sources.no_config,
    )?;
    if let Some(path) = &settings.path {
        eprintln!(
            "icd: settings from {}",
            printable(&path.display().to_string())
        );
    }
    // Flags win over the settings file.
    let threshold = args.threshold.or(settings.threshold).unwrap_or(0.5);
    let window = args.window || settings.window == Some(true);
    let top_lines = args.top_lines.or(settings.top_lines).unwrap_or(3);
    if !(0.0..=1.0).contains(&threshold) {
        return Err(Failure(format!(
            "--threshold is {threshold}, expected 0..=1"
        )));
    }
    // Read before any model work, so that a bad baseline fails fast.
    let mut baseline = args
        .baseline
        .as_deref()
        .map(sarif::Baseline::read)
        .transpose()?;
    let builder = detector_builder(model, &settings)?;
    // What building would refuse is refused whether or not the model loads.
    builder.check()?;
    let max_tokens = builder.resolved_max_tokens()?;
    let width = max_tokens - 2;
    let stride = args
        .stride
        .or(settings.stride)
        .unwrap_or(Detector::default_stride(max_tokens));
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
    } = find_functions_under(&args.sources, settings.exclude.as_ref())?;
    if let Some(rev) = &args.changed_since {
        let changed = sources::ChangedLines::since(rev)?;
        let all = functions.len();
        functions.retain(|(file, f)| changed.touches(Path::new(file), f));
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
        ScanCache::open(&builder, &mode, config.id2label, max_tokens)?
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
            printable(&cache.store.path().display().to_string()),
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
    let mut findings: Vec<Finding> = functions
        .iter()
        .zip(results)
        .map(|((file, f), c)| {
            let c = c.expect("every function classified");
            finding(file, f, c, top_lines, args.no_ignore)
        })
        .collect();
    if let Some(baseline) = &mut baseline {
        // In report order, so that which of two equal functions is "new" is stable.
        let mut order: Vec<&mut Finding> = findings
            .iter_mut()
            .filter(|f| is_finding(&f.prediction, threshold))
            .collect();
        order.sort_by(|a, b| {
            (&a.file, a.start_line, &a.function).cmp(&(&b.file, b.start_line, &b.function))
        });
        for f in order {
            f.baseline = Some(baseline.classify(&f.fingerprint));
        }
    }

    let report = match args.format {
        ScanFormat::Table => table(&findings, threshold, &gaps),
        ScanFormat::Jsonl => findings
            .iter()
            .map(|f| finding_json(f, threshold).to_string() + "\n")
            .collect(),
        ScanFormat::Sarif => {
            serde_json::to_string_pretty(&sarif::log(
                &findings,
                threshold,
                &gaps,
                builder.model_dir(),
                baseline.as_ref(),
            )?)? + "\n"
        }
    };
    match &args.output {
        Some(path) => {
            let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
            write_output(path, &inputs, report.as_bytes())?
        }
        None => std::io::stdout().write_all(report.as_bytes())?,
    }
    let flagged = findings
        .iter()
        .any(|f| f.verdict(threshold) == Verdict::Insecure);
    Ok(if flagged {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// An error classifying one function, naming it.
fn function_failure(file: &str, f: &FunctionSpan, e: Error) -> Failure {
    Failure(format!(
        "{file}:{}-{}: function `{}`: {e}",
        f.start_line, f.end_line, f.name
    ))
}

/// How a scan classifies each function: the request its cached results are kept
/// under.
#[derive(Clone)]
struct ClassifyMode {
    /// `--window` with this stride.
    window: Option<usize>,
    explain: bool,
}

impl ClassifyMode {
    /// The prediction cache's name for results of this mode.
    fn request(&self) -> String {
        let what = if self.explain { "explain" } else { "predict" };
        match self.window {
            Some(stride) => format!("{what} windows stride={stride}"),
            None => what.to_owned(),
        }
    }
}

/// One function's classification.
#[derive(Clone)]
struct Classified {
    prediction: Prediction,
    /// With --window: the worst window's bytes in the function, and the number of
    /// windows.
    window: Option<(std::ops::Range<usize>, usize)>,
    /// With --explain: every scored line (from 1 within the function), highest first.
    lines: Vec<LineScore>,
}

/// What the prediction cache keeps of a [`Classified`]: the logits rather than the
/// verdict, which is read off them again (as the detector reads it) when the entry is
/// used, and every part checked against the function it is for, so that an entry that
/// does not fit is a miss, never a wrong or crashing report.
#[derive(Serialize, Deserialize)]
struct Stored {
    logits: Vec<f32>,
    tokens: usize,
    truncated: bool,
    window: Option<(std::ops::Range<usize>, usize)>,
    lines: Vec<LineScore>,
}

impl Stored {
    fn of(c: &Classified) -> Self {
        Stored {
            logits: c.prediction.logits.clone(),
            tokens: c.prediction.tokens,
            truncated: c.prediction.truncated,
            window: c.window.clone(),
            lines: c.lines.clone(),
        }
    }

    /// The classification of `code` this entry holds, where it fits `code`, the
    /// checkpoint's `labels` and `max_tokens`, and `mode`.
    fn restore(
        self,
        code: &str,
        labels: &[String],
        max_tokens: usize,
        mode: &ClassifyMode,
    ) -> Option<Classified> {
        let prediction =
            Prediction::from_logits(labels, &self.logits, self.tokens, self.truncated).ok()?;
        let fits_window = match (&self.window, mode.window) {
            (None, None) => true,
            (Some((bytes, windows)), Some(_)) => {
                bytes.start <= bytes.end
                    && code.is_char_boundary(bytes.start)
                    && code.is_char_boundary(bytes.end)
                    && *windows >= 1
            }
            _ => false,
        };
        let line_count = code.matches('\n').count() + 1;
        let fits_lines = if mode.explain {
            self.lines
                .iter()
                .all(|l| (1..=line_count).contains(&l.line) && l.score.is_finite())
        } else {
            self.lines.is_empty()
        };
        ((2..=max_tokens).contains(&self.tokens) && fits_window && fits_lines).then_some(
            Classified {
                prediction,
                window: self.window,
                lines: self.lines,
            },
        )
    }
}

/// Classifies `functions` (one model batch's worth) as `mode` says.
fn classify_functions(
    detector: &Detector,
    functions: &[&(String, FunctionSpan)],
    mode: &ClassifyMode,
) -> Result<Vec<Classified>, Failure> {
    let all_lines = |e: &Explanation| e.top_lines(usize::MAX);
    if let Some(stride) = mode.window {
        return functions
            .iter()
            .map(|(file, f)| {
                let failed = |e| function_failure(file, f, e);
                Ok(if mode.explain {
                    let e = detector.explain_windows(&f.code, stride).map_err(failed)?;
                    Classified {
                        lines: all_lines(&e.explanation),
                        prediction: e.explanation.prediction,
                        window: Some((e.byte_range, e.windows)),
                    }
                } else {
                    let w = detector.predict_windows(&f.code, stride).map_err(failed)?;
                    Classified {
                        prediction: w.prediction,
                        window: Some((w.byte_range, w.windows)),
                        lines: Vec::new(),
                    }
                })
            })
            .collect();
    }
    let codes: Vec<&str> = functions.iter().map(|(_, f)| f.code.as_str()).collect();
    let failure = |e: Error| match e {
        Error::NonFiniteLogits { input, .. } => {
            let (file, f) = functions[input];
            function_failure(file, f, e)
        }
        other => Failure::from(other),
    };
    Ok(if mode.explain {
        detector
            .explain_batch(&codes)
            .map_err(failure)?
            .into_iter()
            .map(|e| Classified {
                lines: all_lines(&e),
                prediction: e.prediction,
                window: None,
            })
            .collect()
    } else {
        detector
            .predict_batch(&codes)
            .map_err(failure)?
            .into_iter()
            .map(|prediction| Classified {
                prediction,
                window: None,
                lines: Vec::new(),
            })
            .collect()
    })
}

/// The prediction cache as a scan uses it: opened on the model's key, with every
/// failure a warning (results are then computed, never assumed).
struct ScanCache {
    store: PredictionCache,
    model: ModelKey,
    mode: ClassifyMode,
    /// `mode.request()`, part of every key.
    request: String,
    /// The checkpoint's labels and token limit, which entries are checked against.
    labels: Vec<String>,
    max_tokens: usize,
    /// Set after a write failed, or when the checkpoint changed: no more are tried.
    broken: bool,
}

impl ScanCache {
    /// The cache in ICD_CACHE_DIR (or the default directory), bounded by
    /// ICD_CACHE_MAX_ENTRIES; `None`, with a warning, where it cannot be used.
    fn open(
        builder: &DetectorBuilder,
        mode: &ClassifyMode,
        labels: Vec<String>,
        max_tokens: usize,
    ) -> Result<Option<Self>, Failure> {
        let max_entries = match std::env::var("ICD_CACHE_MAX_ENTRIES") {
            Ok(v) => v.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                Failure(format!(
                    "ICD_CACHE_MAX_ENTRIES is {v:?}, expected a positive number of entries"
                ))
            })?,
            Err(_) => cache::DEFAULT_MAX_ENTRIES,
        };
        let warn = |e: &dyn std::fmt::Display| {
            eprintln!(
                "icd: warning: {}; classifying without the prediction cache",
                printable(&e.to_string())
            )
        };
        let Some(dir) = PredictionCache::default_dir() else {
            warn(&"no cache directory (set ICD_CACHE_DIR)");
            return Ok(None);
        };
        let mut store = match PredictionCache::open(&dir, max_entries) {
            Ok((store, warning)) => {
                if let Some(warning) = warning {
                    eprintln!("icd: warning: {}", printable(&warning));
                }
                store
            }
            Err(e) => {
                warn(&e);
                return Ok(None);
            }
        };
        let model = match store.model_key(builder) {
            Ok(model) => model,
            Err(e) => {
                // A checkpoint that cannot be read is reported by its load; a cache
                // that cannot be written, here.
                if matches!(e, Error::Cache { .. }) {
                    warn(&e);
                }
                return Ok(None);
            }
        };
        Ok(Some(ScanCache {
            store,
            model,
            mode: mode.clone(),
            request: mode.request(),
            labels,
            max_tokens,
            broken: false,
        }))
    }

    /// After the model loaded: whether its files are still the ones the key was made
    /// from. A checkpoint that changed in between would have its results kept under
    /// the old key; then none are kept.
    fn confirm(&mut self, builder: &DetectorBuilder) {
        let why = match self.store.model_key(builder) {
            Ok(model) if model == self.model => return,
            Ok(_) => "the checkpoint changed while it loaded".to_owned(),
            Err(e) => e.to_string(),
        };
        eprintln!(
            "icd: warning: {}; results are not being kept",
            printable(&why)
        );
        self.broken = true;
    }

    fn key(&self, f: &FunctionSpan) -> CacheKey {
        CacheKey::new(&self.model, &self.request, &f.code)
    }

    /// Each function's cached result, where there is one that fits it.
    fn get(&mut self, functions: &[(String, FunctionSpan)]) -> Vec<Option<Classified>> {
        let keys: Vec<CacheKey> = functions.iter().map(|(_, f)| self.key(f)).collect();
        match self.store.get(&keys) {
            // An entry that cannot be read or does not fit is a miss, written anew.
            Ok(values) => values
                .into_iter()
                .zip(functions)
                .map(|(value, (_, f))| {
                    let stored: Stored = serde_json::from_slice(&value?).ok()?;
                    stored.restore(&f.code, &self.labels, self.max_tokens, &self.mode)
                })
                .collect(),
            Err(e) => {
                eprintln!(
                    "icd: warning: {}; classifying every function",
                    printable(&e.to_string())
                );
                vec![None; functions.len()]
            }
        }
    }

    fn put(&mut self, functions: &[&(String, FunctionSpan)], classified: &[Classified]) {
        if self.broken {
            return;
        }
        let entries: Vec<(CacheKey, Vec<u8>)> = functions
            .iter()
            .zip(classified)
            .map(|((_, f), c)| {
                let stored = serde_json::to_vec(&Stored::of(c)).expect("serializable");
                (self.key(f), stored)
            })
            .collect();
        if let Err(e) = self.store.put(&self.model, &entries) {
            eprintln!(
                "icd: warning: {}; results are not being kept",
                printable(&e.to_string())
            );
            self.broken = true;
        }
    }
}

/// `icd cache stats` and `icd cache clear`.
fn cache_command(action: &CacheAction) -> Result<(), Failure> {
    let dir = PredictionCache::default_dir()
        .ok_or_else(|| Failure("no cache directory: set ICD_CACHE_DIR".to_owned()))?;
    let (mut store, warning) = PredictionCache::open(&dir, cache::DEFAULT_MAX_ENTRIES)?;
    if let Some(warning) = warning {
        eprintln!("icd: warning: {}", printable(&warning));
    }
    let path = printable(&store.path().display().to_string()).into_owned();
    match action {
        CacheAction::Stats => {
            let stats = store.stats()?;
            println!("cache: {path}");
            println!("entries: {}", stats.entries);
            println!("models: {}", stats.models);
            println!("remembered file digests: {}", stats.files);
            println!(
                "size: {} bytes ({:.1} MiB)",
                stats.bytes,
                stats.bytes as f64 / (1 << 20) as f64
            );
        }
        CacheAction::Clear => {
            let removed = store.clear()?;
            println!("removed {removed} entries from {path}");
        }
    }
    Ok(())
}

fn finding(
    file: &str,
    f: &FunctionSpan,
    classified: Classified,
    top_lines: usize,
    no_ignore: bool,
) -> Finding {
    // The window's lines in the file: of its first byte and of its last (a window
    // that ends with a newline ends on that newline's line).
    let window = classified.window.map(|(bytes, windows)| {
        let line_of = |byte: usize| f.start_line + f.code[..byte].matches('\n').count();
        let ends_with_newline = bytes.end > bytes.start && f.code[..bytes.end].ends_with('\n');
        let last = line_of(bytes.end) - usize::from(ends_with_newline);
        (line_of(bytes.start), last, windows)
    });
    let lines = classified
        .lines
        .iter()
        .take(top_lines)
        .map(|l| LineScore {
            line: f.start_line + l.line - 1,
            score: l.score,
        })
        .collect();
    Finding {
        file: file.to_owned(),
        function: f.name.clone(),
        start_line: f.start_line,
        end_line: f.end_line,
        prediction: classified.prediction,
        window,
        lines,
        fingerprint: f.fingerprint.clone(),
        suppressed: f.suppressed && !no_ignore,
        baseline: None,
    }
}

fn functions(args: &FunctionsArgs) -> Result<(), Failure> {
    let sources::Found {
        functions,
        inputs,
        gaps,
    } = {
        let settings = settings::Settings::find(
            &args.sources.paths,
            args.sources.config.as_deref(),
            args.sources.no_config,
        )?;
        find_functions_under(&args.sources, settings.exclude.as_ref())?
    };
    let mut out = String::new();
    if args.format == FunctionsFormat::Table {
        out += &format!("{:<40} {}\n", "LOCATION", "FUNCTION");
    }
    for (file, f) in &functions {
        match args.format {
            FunctionsFormat::Table => {
                let location = format!("{}:{}-{}", printable(file), f.start_line, f.end_line);
                out += &format!("{location:<40} {}\n", printable(&f.name));
            }
            FunctionsFormat::Jsonl => {
                let language = Language::from_path(Path::new(file)).unwrap_or(Language::C);
                out += &json!({
                    "file": file,
                    "language": language.name(),
                    "function": f.name,
                    "start_line": f.start_line,
                    "end_line": f.end_line,
                })
                .to_string();
                out.push('\n');
            }
        }
    }
    if args.format == FunctionsFormat::Table {
        out += &format!("{} functions in {} files\n", functions.len(), inputs.len());
        out += &sources::footer(&gaps);
    }
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(())
}

/// The one rule for what is a finding: an insecure probability at or above the
/// threshold. The table, jsonl and SARIF reports and the exit status all ask it.
fn is_finding(p: &Prediction, threshold: f32) -> bool {
    p.insecure_probability >= threshold
}

/// A prediction as every JSON output writes it (`classify`, `scan --format jsonl`).
fn prediction_json(p: &Prediction) -> serde_json::Map<String, serde_json::Value> {
    let value = json!({
        "label": p.label,
        "label_name": p.label_name,
        "insecure_probability": p.insecure_probability,
        "logits": p.logits,
        "tokens": p.tokens,
        "truncated": p.truncated,
    });
    match value {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("an object literal"),
    }
}

fn table(findings: &[Finding], threshold: f32, gaps: &[Gap]) -> String {
    let mut out = format!(
        "{:<10} {:>6}  {:<40} {}\n",
        "VERDICT", "P", "LOCATION", "FUNCTION"
    );
    for f in findings {
        let location = format!("{}:{}-{}", printable(&f.file), f.start_line, f.end_line);
        let mut note = String::new();
        if let Some((first, last, windows)) = f.window {
            note = format!("  (worst of {windows} windows: lines {first}-{last})");
        } else if f.prediction.truncated {
            note = format!("  (truncated at {} tokens)", f.prediction.tokens);
        }
        out += &format!(
            "{:<10} {:>6.3}  {:<40} {}{}\n",
            f.verdict(threshold).name(),
            f.prediction.insecure_probability,
            location,
            printable(&f.function),
            note
        );
        if f.verdict(threshold) == Verdict::Insecure {
            for l in &f.lines {
                out += &format!("{:<18}line {} ({:.3})\n", "", l.line, l.score);
            }
        }
    }
    let count = |verdict| {
        findings
            .iter()
            .filter(|f| f.verdict(threshold) == verdict)
            .count()
    };
    let mut more = Vec::new();
    if let n @ 1.. = count(Verdict::Suppressed) {
        more.push(format!("{n} suppressed by `icd: ignore`"));
    }
    if let n @ 1.. = count(Verdict::Baseline) {
        more.push(format!("{n} in the baseline"));
    }
    let more = match more.is_empty() {
        true => String::new(),
        false => format!(" (and {})", more.join(", ")),
    };
    let new = if findings.iter().any(|f| f.baseline.is_some()) {
        "new "
    } else {
        ""
    };
    out += &format!(
        "{} {new}of {} functions at or above {threshold}{more}\n",
        count(Verdict::Insecure),
        findings.len()
    );
    out += &sources::footer(gaps);
    out
}

fn finding_json(f: &Finding, threshold: f32) -> serde_json::Value {
    let mut value = json!({
        "file": f.file,
        "function": f.function,
        "start_line": f.start_line,
        "end_line": f.end_line,
        "verdict": f.verdict(threshold).name(),
        "suppressed": f.suppressed,
        "fingerprint": f.fingerprint,
    });
    value
        .as_object_mut()
        .expect("an object")
        .extend(prediction_json(&f.prediction));
    if let Some((first, last, windows)) = f.window {
        value["window"] = json!({"start_line": first, "end_line": last, "windows": windows});
    }
    if !f.lines.is_empty() {
        value["lines"] = lines_json(&f.lines);
    }
    value
}

/// `[{"line": L, "score": S}, ...]` in the order given.
fn lines_json(lines: &[LineScore]) -> serde_json::Value {
    lines
        .iter()
        .map(|l| json!({"line": l.line, "score": l.score}))
        .collect()
}

/// Writes an output file whole or not at all, never through a link and never over
/// one of `inputs` ([`write_atomically`]).
fn write_output(path: &Path, inputs: &[&Path], bytes: &[u8]) -> Result<(), Failure> {
    write_atomically(path, inputs, |tmp| {
        std::fs::write(tmp, bytes).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    })?;
    Ok(())
}

/// One row of a CodeXGLUE jsonl file.
struct JsonlRow {
    /// 1-based line in the file.
    line: usize,
    idx: serde_json::Value,
    func: String,
    target: serde_json::Value,
}

/// Rows of a CodeXGLUE jsonl file; each must be an object with a string `func`.
fn read_jsonl(path: &Path) -> Result<Vec<JsonlRow>, Failure> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Failure(format!("{}: {e}", path.display())))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            let mut v: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| Failure(format!("{}:{}: {e}", path.display(), n + 1)))?;
            let func = v["func"]
                .as_str()
                .ok_or_else(|| {
                    Failure(format!(
                        "{}:{}: no string field `func`",
                        path.display(),
                        n + 1
                    ))
                })?
                .to_owned();
            Ok(JsonlRow {
                line: n + 1,
                idx: v["idx"].take(),
                func,
                target: v["target"].take(),
            })
        })
        .collect()
}

fn classify(model: &ModelArgs, args: &ClassifyArgs) -> Result<(), Failure> {
    if args.explain && args.format != ClassifyFormat::Json {
        return Err(Failure(
            "--explain needs --format json (the scores of every token and line)".into(),
        ));
    }
    let detector = load_detector(model, &settings::Settings::default())?;
    let is_jsonl = args.jsonl || args.input.extension().is_some_and(|e| e == "jsonl");
    let rows: Vec<(serde_json::Value, String)> = if is_jsonl {
        read_jsonl(&args.input)?
            .into_iter()
            .map(|row| (row.idx, row.func))
            .collect()
    } else {
        let mut bytes = Vec::new();
        if args.input.as_os_str() == "-" {
            std::io::stdin().read_to_end(&mut bytes)?;
        } else {
            bytes = std::fs::read(&args.input)
                .map_err(|e| Failure(format!("{}: {e}", args.input.display())))?;
        }
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
                    let mut row: serde_json::Map<String, serde_json::Value> =
                        [("idx".to_owned(), idx.clone())]
                            .into_iter()
                            .chain(prediction_json(&p))
                            .collect();
                    if let Some(e) = explanation {
                        let scores: Vec<f32> = e.tokens.iter().map(|t| t.score).collect();
                        row.insert("token_scores".into(), json!(scores));
                        row.insert("line_scores".into(), lines_json(&e.lines));
                    }
                    writeln!(out, "{}", serde_json::Value::Object(row))?
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

/// Binary metrics with label 1 (insecure) as the positive class.
#[derive(Debug, Default, PartialEq)]
struct Confusion {
    true_positive: usize,
    false_positive: usize,
    true_negative: usize,
    false_negative: usize,
}

fn evaluate(model: &ModelArgs, args: &EvaluateArgs) -> Result<(), Failure> {
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
    let detector = load_detector(model, &settings::Settings::default())?;
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

fn convert(args: &ConvertArgs) -> Result<(), Failure> {
    let input = if args.input.is_dir() {
        args.input.join("pytorch_model.bin")
    } else {
        args.input.clone()
    };
    let output = args.output.clone().unwrap_or_else(|| {
        input
            .parent()
            .unwrap_or(Path::new("."))
            .join("model.safetensors")
    });
    let dtype = match args.dtype {
        ConvertDtype::F32 => StorageDtype::F32,
        ConvertDtype::F16 => StorageDtype::F16,
    };
    convert_pytorch_to_safetensors(&input, &output, dtype)?;
    eprintln!("icd: wrote {}", output.display());
    Ok(())
}
