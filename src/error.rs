//! The library's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in this library.
///
/// Each message names what is at fault: the file, the tensor, the configuration field
/// or the argument, so that a user can act on it without reading the source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file of the checkpoint could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// The checkpoint directory has no weight file this library reads.
    #[error("no weights in {}: expected model.safetensors or pytorch_model.bin", dir.display())]
    NoWeights {
        /// The checkpoint directory.
        dir: PathBuf,
    },

    /// `config.json` is not valid JSON or a field has the wrong type.
    #[error("invalid {}: {message}", path.display())]
    ConfigParse {
        /// The config file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },

    /// A field of `config.json` holds a value this library cannot run.
    #[error("{}: field `{field}` {message}", path.display())]
    ConfigValue {
        /// The config file.
        path: PathBuf,
        /// The field at fault.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },

    /// The checkpoint is not a RoBERTa sequence classifier.
    #[error("{}: unsupported checkpoint: {message}", path.display())]
    UnsupportedModel {
        /// The config file.
        path: PathBuf,
        /// What was found instead.
        message: String,
    },

    /// The tokenizer files are missing or malformed.
    #[error("tokenizer {}: {message}", path.display())]
    Tokenizer {
        /// The tokenizer file or directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// The weight file could not be parsed.
    #[error("cannot load weights from {}: {message}", path.display())]
    WeightsFormat {
        /// The weight file.
        path: PathBuf,
        /// The reader's message.
        message: String,
    },

    /// A tensor the model needs is absent from the weight file.
    #[error("{}: missing tensor `{tensor}`", path.display())]
    MissingTensor {
        /// The weight file.
        path: PathBuf,
        /// The tensor's name as the hub checkpoint spells it.
        tensor: String,
    },

    /// A tensor has a shape other than the configuration implies.
    #[error("{}: tensor `{tensor}` has shape {found:?}, expected {expected:?} from config.json", path.display())]
    TensorShape {
        /// The weight file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// The shape config.json implies.
        expected: Vec<usize>,
        /// The shape stored in the file.
        found: Vec<usize>,
    },

    /// A tensor is stored with a dtype that is not floating point.
    #[error("{}: tensor `{tensor}` is stored as {found}, expected a float dtype (f32, f16, bf16)", path.display())]
    TensorDtype {
        /// The weight file.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// The stored dtype.
        found: String,
    },

    /// A tensor holds NaN or infinite values (or values that overflow f32): such
    /// weights give no verdict, only NaN probabilities, so they are refused at load.
    #[error("{}: tensor `{tensor}` holds {count} NaN or infinite value(s); refusing weights that cannot give a verdict", path.display())]
    NonFiniteTensor {
        /// The weight file.
        path: PathBuf,
        /// The tensor's name as the hub checkpoint spells it.
        tensor: String,
        /// How many of its values are not finite.
        count: usize,
    },

    /// The model gave NaN or infinite logits for an input: no verdict can be read off
    /// them, so the input is an error rather than "not insecure" (fail closed).
    #[error("the model gave non-finite logits {logits:?} for input {input}: no verdict (the weights or the precision overflow)")]
    NonFiniteLogits {
        /// The input's index in the call (0 for a single prediction).
        input: usize,
        /// The logits as computed.
        logits: Vec<f32>,
    },

    /// The weight file holds tensors that belong to no part of this model.
    #[error("{}: unexpected tensors {}: not part of a RoBERTa sequence classifier", path.display(), listed(tensors))]
    UnexpectedTensors {
        /// The weight file.
        path: PathBuf,
        /// Their names.
        tensors: Vec<String>,
    },

    /// An argument is out of its valid range.
    #[error("invalid argument `{argument}`: {message}")]
    InvalidArgument {
        /// The argument's name.
        argument: &'static str,
        /// What is wrong.
        message: String,
    },

    /// The requested backend is not compiled in, or its device is absent.
    #[error("backend `{requested}` is unavailable: {reason}; compiled in: {available}")]
    BackendUnavailable {
        /// The backend asked for.
        requested: String,
        /// Why it cannot be used.
        reason: String,
        /// The backends this build has, comma-separated.
        available: String,
    },

    /// An input file is not one this library reads: not a regular file, too large
    /// for its kind, or not text where text is needed.
    #[error("refusing {}: {reason}", path.display())]
    FileRefused {
        /// The file.
        path: PathBuf,
        /// Why, with the limit where one applies.
        reason: String,
    },

    /// An output path names one of the command's inputs: writing it would destroy the
    /// input.
    #[error("refusing to write {}: it is the input {}", output.display(), input.display())]
    OutputIsInput {
        /// The output path.
        output: PathBuf,
        /// The input it would overwrite.
        input: PathBuf,
    },

    /// The prediction cache could not be read or written.
    #[error("prediction cache {}: {message}", path.display())]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// What failed.
        message: String,
    },

    /// A calibration file is malformed, of another version, or fitted for another
    /// checkpoint.
    #[error("calibration {}: {message}", path.display())]
    Calibration {
        /// The calibration file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// A training run stopped: a loss or gradient that is not finite, named by step.
    #[error("training failed: {0}")]
    Training(String),

    /// A training run was stopped by its caller (a [`crate::training::StopHandle`]).
    #[error("training stopped by its caller after step {step} (epochs finished: {epochs}); no checkpoint was written")]
    Stopped {
        /// The optimizer steps taken (of the whole run, a continued one included).
        step: usize,
        /// The epochs finished (a resumable run's state holds the last of them).
        epochs: usize,
    },

    /// The model failed while running: a backend error or an internal invariant.
    #[error("inference failed: {0}")]
    Inference(String),
}

impl Error {
    /// The error with the input an [`Error::NonFiniteLogits`] names mapped through
    /// `index` (a model call's position to the caller's index); any other unchanged.
    pub(crate) fn renumbered(self, index: impl FnOnce(usize) -> usize) -> Error {
        match self {
            Error::NonFiniteLogits { input, logits } => Error::NonFiniteLogits {
                input: index(input),
                logits,
            },
            other => other,
        }
    }
}

/// Names for a message: the first 20 (quoted), then how many more, so that a file
/// with millions of them gives a message of a line.
fn listed(names: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut text = format!("{:?}", &names[..names.len().min(SHOWN)]);
    if names.len() > SHOWN {
        text += &format!(" and {} more", names.len() - SHOWN);
    }
    text
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
