//! The command line: every flag and subcommand, as clap reads them. The doc comments
//! are the help text `icd --help` prints.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use insecure_code_detector::{Backend, Precision};

use crate::sources::SourceArgs;

/// Flags insecure C/C++ functions with CodeBERT fine-tuned for defect detection.
#[derive(Parser)]
#[command(name = "icd", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone)]
pub struct ModelArgs {
    /// Checkpoint directory (config.json, weights, tokenizer files). Default: the hub
    /// model mrm8488/codebert-base-finetuned-detect-insecure-code from the local
    /// Hugging Face cache (HF_HUB_CACHE, HF_HOME), downloaded into it when missing
    /// and the machine is online (HF_HUB_OFFLINE=1 forbids that, HF_ENDPOINT picks the
    /// hub); a pytorch_model.bin is converted to safetensors once (ICD_CACHE_DIR).
    #[arg(long, global = true, value_name = "DIR", env = "ICD_MODEL")]
    pub model: Option<PathBuf>,
    /// Backend: auto, flex, ndarray, wgpu or cuda. Default: BURN_DEVICE when it names
    /// one of these, else the CPU backend.
    #[arg(long, global = true)]
    pub backend: Option<String>,
    /// Functions per model call [default: 8]; for train, examples per micro-batch
    /// [default: 32].
    #[arg(long, global = true)]
    pub batch_size: Option<usize>,
    /// CPU threads for the model (default: all cores; at most 1024).
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// Collapse whitespace before tokenizing, as CodeXGLUE's scripts do.
    #[arg(long, global = true)]
    pub collapse_whitespace: bool,
    /// Precision of the weights and the matrix products [default: f32, or .icd.toml's
    /// for scan].
    #[arg(long, global = true, value_parser = precision_parser())]
    pub precision: Option<Precision>,
    /// Compile the GPU backends' kernels for every model call shape before the first
    /// function, rather than as each shape first comes (nothing on the CPU backends).
    #[arg(long, global = true)]
    pub warm_up: bool,
    /// Report calibrated insecure probabilities, and for scan flag at the file's
    /// threshold unless --threshold is given: a file from `icd calibrate` for this
    /// checkpoint [default: .icd.toml's `calibration`, for scan].
    #[arg(long, global = true, value_name = "FILE")]
    pub calibration: Option<PathBuf>,
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
pub enum Command {
    /// Find C/C++ function definitions under PATHs (respecting .gitignore) and
    /// classify each. Exit status: 0 no findings, 1 findings, 2 error.
    Scan(ScanArgs),
    /// Classify one function from FILE (or stdin), or every function of a
    /// CodeXGLUE jsonl file.
    Classify(ClassifyArgs),
    /// Metrics on labelled CodeXGLUE defect-detection jsonl: accuracy, precision,
    /// recall, F1, the confusion matrix, the loss, ROC and PR AUC, Brier score,
    /// calibration error, VD-S; writes predictions.txt.
    Evaluate(EvaluateArgs),
    /// Fit a calibration of the insecure probability on labelled CodeXGLUE jsonl
    /// (Platt scaling, or temperature scaling for more than two labels), and choose the
    /// threshold for a precision or recall target.
    Calibrate(CalibrateArgs),
    /// Fine-tune the checkpoint on labelled CodeXGLUE jsonl (`func`, `target`), with
    /// transformers' recipe (cross-entropy, AdamW, linear warm-up and decay, gradient
    /// clipping), and write the result as a checkpoint in the hub's layout.
    Train(TrainArgs),
    /// Verdicts kept beside the code, in .icd-triage.toml: record one, list them, check
    /// that each still names a function and has not expired, or export them as labels.
    Triage(TriageArgs),
    /// Convert a hub checkpoint's pytorch_model.bin to model.safetensors.
    Convert(ConvertArgs),
    /// List the C/C++ function definitions under PATHs (respecting .gitignore), as
    /// `scan` finds them, without loading a model.
    Functions(FunctionsArgs),
    /// A Language Server on stdin and stdout: a diagnostic per finding on open and save
    /// of C/C++ files, with a code action that inserts an `icd: ignore` comment.
    Lsp(LspArgs),
    /// The prediction cache `scan` keeps (ICD_CACHE_DIR): what it holds, or empty it.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
}

#[derive(Args)]
pub struct LspArgs {
    /// Insecure probability at or above which a function is a finding [default: the
    /// calibration file's, else the workspace's .icd.toml's, else 0.5].
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Settings from this file instead of the workspace's .icd.toml.
    #[arg(long, value_name = "FILE", conflicts_with = "no_config")]
    pub config: Option<PathBuf>,
    /// Read no .icd.toml.
    #[arg(long)]
    pub no_config: bool,
    /// Classify every function again, neither reading nor writing the prediction cache.
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(Subcommand)]
pub enum CacheAction {
    /// Where the cache is, its entries, models and size.
    Stats,
    /// Remove every entry.
    Clear,
}

#[derive(Args)]
pub struct FunctionsArgs {
    #[command(flatten)]
    pub sources: SourceArgs,
    #[arg(long, value_enum, default_value_t = FunctionsFormat::Table)]
    pub format: FunctionsFormat,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum FunctionsFormat {
    Table,
    Jsonl,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum ScanFormat {
    /// A line per function, the top lines under each finding.
    Table,
    /// A JSON object per function.
    Jsonl,
    /// SARIF 2.1.0, as GitHub code scanning reads it.
    Sarif,
    /// A short summary for a pull request or $GITHUB_STEP_SUMMARY.
    Markdown,
    /// JUnit XML for CI test views: a failure per finding.
    Junit,
    /// One self-contained page: every function at or above the threshold (and each
    /// confirmed one), sortable and filterable, with its source.
    Html,
}

#[derive(Args)]
pub struct ScanArgs {
    #[command(flatten)]
    pub sources: SourceArgs,
    #[arg(long, value_enum, default_value_t = ScanFormat::Table)]
    pub format: ScanFormat,
    /// Insecure probability at or above which a function is a finding [default: 0.5,
    /// or .icd.toml's].
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Classify long functions as overlapping windows and report the worst window,
    /// instead of truncating at the model's limit.
    #[arg(long)]
    pub window: bool,
    /// Tokens between window starts with --window (default: half a window).
    #[arg(long)]
    pub stride: Option<usize>,
    /// Write the report here instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// With --format markdown: an http(s) URL that each file's path is appended to for
    /// its links (say, https://github.com/OWNER/REPO/blob/SHA/); without it, links are
    /// the paths alone.
    #[arg(long, value_name = "URL")]
    pub link_base: Option<String>,
    /// Also say which lines the model looked at: the lines of each function with the
    /// most of the last layer's attention from <s> (in the table under each finding,
    /// as "lines" in jsonl, as related locations in SARIF, as links in Markdown, as
    /// shading in HTML, in the text of JUnit failures).
    #[arg(long)]
    pub explain: bool,
    /// Lines reported per function with --explain [default: 3, or .icd.toml's].
    #[arg(long, requires = "explain")]
    pub top_lines: Option<usize>,
    /// Report functions that an `icd: ignore` comment suppresses as findings too.
    #[arg(long)]
    pub no_ignore: bool,
    /// An earlier `icd scan --format sarif` log: only findings it does not have are
    /// reported and set the exit status (matched by fingerprint, so moved code stays
    /// known); SARIF output marks each result new, unchanged or absent.
    #[arg(long, value_name = "OLD.sarif")]
    pub baseline: Option<PathBuf>,
    /// Verdicts from this triage file instead of the nearest .icd-triage.toml at or
    /// above the first PATH (say, the base branch's copy, for a gate).
    #[arg(long, value_name = "FILE", conflicts_with = "no_triage")]
    pub triage: Option<PathBuf>,
    /// Read no triage file.
    #[arg(long)]
    pub no_triage: bool,
    /// Classify only the functions on lines changed between the git revision REV and
    /// the work tree (files added or untracked since: whole), in the repository of the
    /// current directory; the others are not reported.
    #[arg(long, value_name = "REV")]
    pub changed_since: Option<String>,
    /// Classify every function again, neither reading nor writing the prediction
    /// cache (on by default: results are kept in ICD_CACHE_DIR by the model's files,
    /// settings and the function's text, so unchanged functions are not classified
    /// twice).
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum ClassifyFormat {
    Text,
    Json,
}

#[derive(Args)]
pub struct ClassifyArgs {
    /// A file holding one function, a .jsonl file (CodeXGLUE layout), or - for stdin.
    #[arg(default_value = "-")]
    pub input: PathBuf,
    /// Read INPUT as CodeXGLUE jsonl even without the .jsonl extension.
    #[arg(long)]
    pub jsonl: bool,
    #[arg(long, value_enum, default_value_t = ClassifyFormat::Text)]
    pub format: ClassifyFormat,
    /// With --format json, also each token's score (the last layer's attention from
    /// <s>, averaged over heads; every token in order, <s> and </s> included) and
    /// each line's sum of them (lines from 1 within the function, in line order).
    #[arg(long)]
    pub explain: bool,
}

#[derive(Args)]
pub struct EvaluateArgs {
    /// CodeXGLUE defect-detection jsonl: one {"idx", "func", "target"} object a line,
    /// `target` one of the checkpoint's labels (1 = insecure for two labels).
    pub data: PathBuf,
    /// Where to write the predictions in the CodeXGLUE evaluator's format.
    #[arg(long, default_value = "predictions.txt")]
    pub predictions: PathBuf,
    /// A JSON object, or a table saying what each metric means.
    #[arg(long, value_enum, default_value_t = EvaluateFormat::Json)]
    pub format: EvaluateFormat,
    /// Insecure probability at or above which a function is predicted insecure, for
    /// the confusion matrix and the predictions file [default: the --calibration
    /// file's, else 0.5].
    #[arg(long, value_parser = probability)]
    pub threshold: Option<f64>,
    /// Also report the threshold with the most recall whose precision on the data is
    /// at least this.
    #[arg(long, value_parser = share, conflicts_with = "target_recall")]
    pub target_precision: Option<f64>,
    /// Also report the threshold with the most precision whose recall on the data is
    /// at least this.
    #[arg(long, value_parser = share)]
    pub target_recall: Option<f64>,
    /// Also draw the precision-recall curve and the reliability diagram into this SVG
    /// file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}

#[derive(Args)]
pub struct CalibrateArgs {
    /// CodeXGLUE defect-detection jsonl with `target` labels, as for evaluate. Fit on
    /// one labelled set, evaluate the file on another.
    pub data: PathBuf,
    /// Where to write the calibration file.
    #[arg(long, short, default_value = "calibration.json")]
    pub output: PathBuf,
    /// Choose the threshold with the most recall whose calibrated precision on the data
    /// is at least this.
    #[arg(long, value_parser = share, conflicts_with = "target_recall")]
    pub target_precision: Option<f64>,
    /// Choose the threshold with the most precision whose recall on the data is at
    /// least this.
    #[arg(long, value_parser = share)]
    pub target_recall: Option<f64>,
}

#[derive(Args)]
pub struct TrainArgs {
    /// CodeXGLUE defect-detection jsonl with `target` labels (as `icd triage export`
    /// writes it) to train on.
    pub data: PathBuf,
    /// The directory to write the fine-tuned checkpoint to: new, or empty. Nothing is
    /// written there unless the run completes.
    #[arg(long, short, value_name = "DIR")]
    pub output: PathBuf,
    /// Labelled jsonl to check after each epoch (loss and accuracy); the epoch with the
    /// best validation accuracy is the one written.
    #[arg(long, value_name = "FILE")]
    pub validation: Option<PathBuf>,
    /// Passes over the training data.
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    pub gradient_accumulation: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-5)]
    pub lr: f64,
    /// AdamW's decoupled weight decay (not on biases and LayerNorm weights).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Optimizer steps of linear warm-up from 0 [default: 0].
    #[arg(long, conflicts_with = "warmup_ratio")]
    pub warmup_steps: Option<usize>,
    /// Warm-up over this share of all optimizer steps (rounded up).
    #[arg(long, value_parser = share)]
    pub warmup_ratio: Option<f64>,
    /// Clip gradients to this global L2 norm (0: no clipping).
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    /// Dropout of the hidden states, attention probabilities and head [default: the
    /// checkpoint config's].
    #[arg(long)]
    pub dropout: Option<f64>,
    /// Seeds the shuffling and the dropout masks.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Visit the examples in file order every epoch.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Weigh each class's examples in the loss: `balanced` (n / (classes x count)).
    #[arg(long, value_enum)]
    pub class_weight: Option<ClassWeightArg>,
    /// Train only the last K encoder layers and the head (0: the head alone)
    /// [default: the whole model].
    #[arg(long, value_name = "K")]
    pub train_layers: Option<usize>,
    /// Tokens per example, <s> and </s> included [default: the checkpoint's limit].
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Write one JSON object per optimizer step (step, loss, lr, grad_norm) to FILE.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Continue the run that stopped and left its state in DIR (OUTPUT.state, which
    /// every run keeps after each epoch until its checkpoint is written), with the
    /// same data and settings.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
}

/// `--class-weight`'s values.
#[derive(Clone, Copy, ValueEnum)]
pub enum ClassWeightArg {
    /// scikit-learn's "balanced": n / (classes x count of the class).
    Balanced,
}

#[derive(Args)]
pub struct TriageArgs {
    /// The triage file [default: the nearest .icd-triage.toml at or above the current
    /// directory; `add` starts one in the current directory where there is none].
    #[arg(long, global = true, value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[command(subcommand)]
    pub action: TriageAction,
}

#[derive(Subcommand)]
pub enum TriageAction {
    /// Record a verdict on a function, found by its fingerprint (from `icd scan
    /// --format jsonl` or sarif) under the triage file's directory, or by FILE:LINE, a
    /// line of the function.
    Add(TriageAddArgs),
    /// The entries, each with its verdict, expiry, function and reason.
    List {
        #[arg(long, value_enum, default_value_t = TriageListFormat::Table)]
        format: TriageListFormat,
    },
    /// Entries whose function is no longer under the triage file's directory (changed
    /// or removed since it was triaged) or that have expired. Exit status: 0 none, 1
    /// some, 2 error.
    Check,
    /// CodeXGLUE jsonl labels from the verdicts: a row for each triaged function
    /// found under PATHs, `target` 1 for true-positive and 0 for false-positive
    /// (accepted-risk left out), for `evaluate`, `calibrate` and fine-tuning.
    Export {
        /// Files and directories holding the triaged functions.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Where to write the labels.
        #[arg(long, short, default_value = "labels.jsonl")]
        output: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum TriageListFormat {
    Table,
    Json,
}

#[derive(Args)]
pub struct TriageAddArgs {
    /// The function: its fingerprint, or FILE:LINE.
    pub function: String,
    /// true-positive (stays a finding, marked confirmed), false-positive or
    /// accepted-risk (suppressed in scans).
    #[arg(long, value_parser = triage_verdict())]
    pub verdict: crate::triage::TriageVerdict,
    /// Why the verdict holds, for whoever reads it next.
    #[arg(long)]
    pub reason: String,
    /// The first day the entry no longer applies (YYYY-MM-DD).
    #[arg(long, value_parser = crate::triage::parse_date, value_name = "DATE")]
    pub expires: Option<time::Date>,
    /// With --replace: remove the entry's expiry (without --expires or this, a changed
    /// entry keeps the one it has).
    #[arg(long, requires = "replace", conflicts_with = "expires")]
    pub no_expires: bool,
    /// Change the function's entry if it has one.
    #[arg(long)]
    pub replace: bool,
}

/// `--verdict`'s values, each with its description.
fn triage_verdict() -> impl clap::builder::TypedValueParser<Value = crate::triage::TriageVerdict> {
    use crate::triage::TriageVerdict;
    use clap::builder::{PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new(TriageVerdict::ALL.map(TriageVerdict::name)).map(|name| {
        name.parse::<TriageVerdict>()
            .expect("a name from the table")
    })
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum EvaluateFormat {
    Table,
    Json,
}

/// A probability in [0, 1].
fn probability(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{text:?} is not a probability in [0, 1]")),
    }
}

/// A share in (0, 1]: a precision or recall target.
fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 1.0 => Ok(p),
        _ => Err(format!("{text:?} is not a share in (0, 1]")),
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum ConvertDtype {
    F32,
    F16,
}

#[derive(Args)]
pub struct ConvertArgs {
    /// pytorch_model.bin, or a checkpoint directory holding one.
    pub input: PathBuf,
    /// Output file (default: model.safetensors beside the input).
    pub output: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = ConvertDtype::F32)]
    pub dtype: ConvertDtype,
}

/// `icd --version`: the version, the backends compiled in, this CPU's features and
/// what each precision runs on the default CPU backend.
pub fn long_version() -> String {
    use insecure_code_detector::CpuFeatures;
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
            // bf16 where no bf16 kernel beats f32 runs the f32 kernel: said here.
            Ok(plan) => match plan.kernel().map(|kernel| kernel.precision()) {
                Some(runs) if runs != precision => {
                    format!("{precision} {plan} in {runs} (no faster {precision} kernel here)")
                }
                _ => format!("{precision} {plan}"),
            },
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
