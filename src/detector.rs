//! The typed API: load a checkpoint once, classify functions many times.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use burn::tensor::{DType, Device, Int, Tensor, TensorData};

use crate::backend::{panic_message, Backend};
use crate::config::RobertaConfig;
use crate::error::{Error, Result};
use crate::execution::ExecutionPlan;
use crate::model::{position_ids, ProjectionLayout, RobertaClassifier};
use crate::tokenizer::{CodeTokenizer, TokenizedInput};
use crate::weights::{self, WeightFile};

/// How source text is prepared before tokenizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preprocessing {
    /// The text as given, as the model card feeds it to the tokenizer.
    #[default]
    Raw,
    /// Whitespace runs collapsed to one space and the ends trimmed, as CodeXGLUE's
    /// defect-detection scripts do (`' '.join(code.split())`).
    CollapseWhitespace,
}

impl Preprocessing {
    /// The text the tokenizer sees.
    pub fn apply<'a>(self, code: &'a str) -> std::borrow::Cow<'a, str> {
        match self {
            Preprocessing::Raw => code.into(),
            Preprocessing::CollapseWhitespace => words(code).collect::<Vec<_>>().join(" ").into(),
        }
    }

    /// The bytes of `code` that `range` of the preprocessed text [`apply`](Self::apply)
    /// gives came from. With collapsed whitespace, each word of the preprocessed text
    /// is a word of `code` copied as it is; a range that starts on a joining space
    /// starts at the next word, and one that ends on it ends after the previous word.
    pub fn source_range(self, code: &str, range: std::ops::Range<usize>) -> std::ops::Range<usize> {
        if self == Preprocessing::Raw {
            return range;
        }
        // Each word of `code`: its offset in `code`, and its text.
        let words: Vec<(usize, &str)> = words(code)
            .map(|w| (w.as_ptr() as usize - code.as_ptr() as usize, w))
            .collect();
        // Where each word starts in the preprocessed text (words joined by one space).
        let mut starts = Vec::with_capacity(words.len());
        let mut at = 0;
        for (_, w) in &words {
            starts.push(at);
            at += w.len() + 1;
        }
        // Preprocessed byte `o`: `Ok(source offset)` inside a word, `Err(i)` on the
        // space after word `i`.
        let locate = |o: usize| -> std::result::Result<usize, usize> {
            let i = starts.partition_point(|&s| s <= o).max(1) - 1;
            let (raw, w) = words[i];
            match o - starts[i] < w.len() {
                true => Ok(raw + o - starts[i]),
                false => Err(i),
            }
        };
        if words.is_empty() {
            return 0..0;
        }
        let start = locate(range.start)
            .unwrap_or_else(|i| words.get(i + 1).map_or(code.len(), |(raw, _)| *raw));
        if range.end <= range.start {
            return start..start;
        }
        let end = match locate(range.end - 1) {
            Ok(raw) => raw + 1,
            Err(i) => words[i].0 + words[i].1.len(),
        };
        start..end.max(start)
    }
}

/// The words of `code` as Python's `str.split()` gives them: what collapsing
/// whitespace keeps, each a slice of `code`.
fn words(code: &str) -> impl Iterator<Item = &str> {
    code.split(is_python_whitespace).filter(|w| !w.is_empty())
}

/// Python's `str.isspace`: Unicode White_Space plus the four ASCII separators
/// U+001C..U+001F, which `str.split()` also splits on.
fn is_python_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Precision of the weights and of the computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// f32 throughout: the logits equal transformers' within 1e-4.
    ///
    /// On the CPU backends of a CPU with AVX2 and FMA, the encoder's projections run
    /// on this crate's f32 kernel (AVX2 or AVX-512) over weights laid out for it at
    /// load (`cpu::f32_gemm`); elsewhere on the backend's matrix product. On the
    /// `cuda` backend the weights and activations are f64: burn's CUDA matrix product
    /// runs f32 inputs as TF32 on GPUs since Ampere, too coarse for 1e-4 on a
    /// full-size model. That costs speed: on an H100 the f64 products take 2 to 16
    /// times as long, and more on GPUs with few f64 units (most consumer GPUs).
    /// [`Precision::Tf32`] is the fast mode there.
    #[default]
    F32,
    /// f32 weights and activations, whose matrix products the backend may run as
    /// TF32 (10-bit mantissas, f32 sums) on tensor cores. Opt-in: on `cuda`, burn's
    /// tensor-core products at their own speed, with logits about 2e-4 from
    /// transformers' on a full-size model (1.9e-4 on an H100); on every other backend,
    /// which has no TF32 products, exactly [`Precision::F32`].
    Tf32,
    /// bf16 matrix products. Opt-in: faster where the hardware multiplies bf16, with
    /// probabilities within about 1e-2 of f32 (tested on the fixtures).
    ///
    /// On the CPU backends on a CPU with AVX512-BF16
    /// ([`Backend::has_bf16_products`]), the encoder's projections hold bf16 weights
    /// and multiply with the CPU's bf16 dot-product instruction, summing in f32;
    /// everything else (embeddings, attention, LayerNorm, GELU, the head) stays f32.
    /// Elsewhere weights and activations are burn's bf16 tensors throughout
    /// (LayerNorm statistics accumulated in f32).
    Bf16,
    /// f16 weights and activations, as [`Precision::Bf16`] with more mantissa and
    /// less range.
    F16,
    /// int8 matrix products (dynamic quantization). Opt-in, on the CPU backends of a
    /// CPU with AVX2 ([`Backend::has_int8_products`]); refused elsewhere. The fastest
    /// mode there, with probabilities within a few 1e-2 of f32 (tested on the
    /// fixtures).
    ///
    /// Each column of the encoder's projection weights is rounded to int8 with its
    /// own scale at load, each token's activations likewise at every product, and
    /// the products summed exactly in 32-bit integers (AVX512-VNNI's byte products
    /// where the CPU has them, else AVX2's 16-bit ones, with the same results): ONNX
    /// Runtime's `quantize_dynamic` scheme. Everything else (embeddings, attention,
    /// LayerNorm, GELU, the head) stays f32, and a token's result still does not
    /// depend on the other inputs in a batch.
    Int8,
}

impl std::str::FromStr for Precision {
    type Err = Error;

    /// Parses `f32`, `tf32`, `bf16`, `f16` or `int8` (any case), the names the `icd`
    /// tool takes.
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(Precision::F32),
            "tf32" => Ok(Precision::Tf32),
            "bf16" => Ok(Precision::Bf16),
            "f16" => Ok(Precision::F16),
            "int8" => Ok(Precision::Int8),
            _ => Err(Error::InvalidArgument {
                argument: "precision",
                message: format!(
                    "unknown precision {s:?}; expected one of f32, tf32, bf16, f16, int8"
                ),
            }),
        }
    }
}

impl Precision {
    /// The burn dtype of the weights as loaded and of the activations between the
    /// matrix products (f32 for int8, whose products quantize on the fly). On the
    /// `cuda` backend, `F32` loads and computes in f64 instead (see [`Precision::F32`]).
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 | Precision::Tf32 | Precision::Int8 => DType::F32,
            Precision::Bf16 => DType::BF16,
            Precision::F16 => DType::F16,
        }
    }
}

/// The classifier's verdict on one function.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Index of the highest logit, as transformers' argmax (always 0 for a
    /// single-logit model: read `insecure_probability` there).
    pub label: usize,
    /// That label's name from `id2label` (`LABEL_1` and the like when unnamed).
    pub label_name: String,
    /// Probability that the function is insecure: softmax of the insecure label for a
    /// two-label model (label 1, CodeXGLUE's "defective"), sigmoid of the logit for a
    /// one-label model, and for more labels one minus the probability of the safe label
    /// (the one named `safe`, `secure`, `benign`, `clean` or `LABEL_0`; else label 0).
    pub insecure_probability: f32,
    /// The raw logits, one per label.
    pub logits: Vec<f32>,
    /// Tokens fed to the model, `<s>` and `</s>` included.
    pub tokens: usize,
    /// Whether the input had more tokens than `max_tokens` and was cut.
    pub truncated: bool,
}

/// The verdict on a long function classified as overlapping windows: the window with
/// the highest insecure probability.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowedPrediction {
    /// The prediction for that window (`truncated` is false: each window fits).
    pub prediction: Prediction,
    /// Byte range of the code as given that the window covers (with
    /// [`Preprocessing::CollapseWhitespace`], mapped back from the collapsed text by
    /// [`Preprocessing::source_range`]).
    pub byte_range: std::ops::Range<usize>,
    /// Windows classified.
    pub windows: usize,
}

/// How `insecure_probability` is read off the logits.
#[derive(Debug, Clone, Copy)]
enum InsecureScore {
    Sigmoid,
    SoftmaxOf(usize),
    OneMinusSoftmaxOf(usize),
}

impl InsecureScore {
    fn for_labels(names: &[String]) -> Self {
        let find = |wanted: &[&str]| {
            names
                .iter()
                .position(|n| wanted.iter().any(|w| n.eq_ignore_ascii_case(w)))
        };
        if names.len() == 1 {
            return InsecureScore::Sigmoid;
        }
        if let Some(i) = find(&["insecure", "vulnerable", "defective"]) {
            return InsecureScore::SoftmaxOf(i);
        }
        if names.len() == 2 {
            return InsecureScore::SoftmaxOf(1);
        }
        InsecureScore::OneMinusSoftmaxOf(
            find(&["safe", "secure", "benign", "clean", "LABEL_0"]).unwrap_or(0),
        )
    }

    fn probability(self, logits: &[f32]) -> f32 {
        let softmax = |i: usize| {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = logits.iter().map(|l| (l - max).exp()).sum();
            (logits[i] - max).exp() / sum
        };
        match self {
            InsecureScore::Sigmoid => 1.0 / (1.0 + (-logits[0]).exp()),
            InsecureScore::SoftmaxOf(i) => softmax(i),
            InsecureScore::OneMinusSoftmaxOf(i) => 1.0 - softmax(i),
        }
    }
}

/// Options for [`Detector`]; start from [`Detector::builder`].
#[derive(Debug, Clone)]
pub struct DetectorBuilder {
    model_dir: PathBuf,
    backend: Option<Backend>,
    max_tokens: Option<usize>,
    batch_size: usize,
    preprocessing: Preprocessing,
    weights: Option<PathBuf>,
    precision: Precision,
}

/// Inputs tokenized ahead of the model at once, at most, in a batch call: bounds
/// memory for huge batches while leaving enough to sort by length.
const TOKENIZE_WINDOW_BATCHES: usize = 16;

impl DetectorBuilder {
    /// The backend to run on (default: the CPU backend, flex where compiled in).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Tokens per input, `<s>` and `</s>` included; longer inputs are truncated
    /// (default and maximum: the checkpoint's limit, 512 for CodeBERT).
    pub fn max_tokens(mut self, max_tokens: usize) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Inputs run through the model together (default 8).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Input preprocessing (default [`Preprocessing::Raw`]).
    pub fn preprocessing(mut self, preprocessing: Preprocessing) -> Self {
        self.preprocessing = preprocessing;
        self
    }

    /// Precision of weights and computation (default [`Precision::F32`], the one that
    /// matches transformers).
    pub fn precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// The weight file to read, instead of the directory's `model.safetensors` (or,
    /// without one, `pytorch_model.bin`). A `.safetensors` extension selects that
    /// format; anything else is read as a PyTorch checkpoint.
    pub fn weights(mut self, path: impl AsRef<Path>) -> Self {
        self.weights = Some(path.as_ref().to_path_buf());
        self
    }

    /// Loads the checkpoint.
    pub fn build(self) -> Result<Detector> {
        if self.batch_size == 0 || self.batch_size > 4096 {
            return Err(Error::InvalidArgument {
                argument: "batch_size",
                message: format!("is {}, expected 1..=4096", self.batch_size),
            });
        }
        let dir = &self.model_dir;
        if !dir.is_dir() {
            return Err(Error::Io {
                path: dir.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "checkpoint directory not found",
                ),
            });
        }
        let config = RobertaConfig::from_file(&dir.join("config.json"))?;
        let limit = config.max_tokens();
        let max_tokens = self
            .max_tokens
            .unwrap_or(limit.min(crate::tokenizer_max_length(dir)?.unwrap_or(limit)));
        if max_tokens < 2 || max_tokens > limit {
            return Err(Error::InvalidArgument {
                argument: "max_tokens",
                message: format!("is {max_tokens}, expected 2..={limit} for this checkpoint"),
            });
        }
        // The tokenizer's vocabulary and merges are parsed on a thread of their own
        // while the weights load: neither needs the other, and the parse (about 0.1 s
        // for RoBERTa's 50,265 tokens) need not wait for the read. A tokenizer error is
        // reported before any error of the weights.
        let (tokenizer, loaded) = std::thread::scope(|scope| {
            let parse = || CodeTokenizer::from_dir(dir);
            let spawned = std::thread::Builder::new()
                .name("icd-tokenizer".into())
                .spawn_scoped(scope, parse);
            let loaded = self.load_model(&config);
            let tokenizer = match spawned {
                Ok(thread) => thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                // Where no thread can be started, the parse runs here after the read.
                Err(_) => parse(),
            };
            (tokenizer, loaded)
        });
        let tokenizer = tokenizer?;
        // An id past the embedding table would fail inside the model at inference.
        if let Some((id, token)) = tokenizer
            .max_id()
            .filter(|(id, _)| *id as usize >= config.vocab_size)
        {
            return Err(Error::Tokenizer {
                path: dir.clone(),
                message: format!(
                    "token {token:?} has id {id}, past config.json's vocab_size {} (ids must be below it)",
                    config.vocab_size
                ),
            });
        }
        if tokenizer.vocab_size() > config.vocab_size {
            return Err(Error::Tokenizer {
                path: dir.clone(),
                message: format!(
                    "the tokenizer has {} tokens but config.json's vocab_size is {}",
                    tokenizer.vocab_size(),
                    config.vocab_size
                ),
            });
        }
        let (model, backend, device, plan) = loaded?;
        Ok(Detector {
            model,
            tokenizer,
            insecure: InsecureScore::for_labels(&config.id2label),
            config,
            device,
            backend,
            plan,
            max_tokens,
            batch_size: self.batch_size,
            preprocessing: self.preprocessing,
            precision: self.precision,
            model_dir: self.model_dir,
        })
    }

    /// The backend opened and the model loaded on it, packed for this crate's CPU
    /// kernels where they run.
    fn load_model(
        &self,
        config: &RobertaConfig,
    ) -> Result<(RobertaClassifier, Backend, Device, ExecutionPlan)> {
        let dir = &self.model_dir;
        let weight_file = match &self.weights {
            Some(path) => WeightFile::from_path(path),
            None => WeightFile::find(dir)?,
        };
        let backend = match self.backend {
            Some(b) => b,
            None => Backend::default_cpu()?,
        };
        let (backend, device) = backend.open()?;
        let plan = ExecutionPlan::choose(self.precision, backend)?;
        let dtype = plan.dtype();
        if !device.supports_dtype(dtype) {
            return Err(Error::InvalidArgument {
                argument: "precision",
                message: format!("the {} backend has no {dtype:?} support", backend.name()),
            });
        }
        // Packed projections are laid out from the checkpoint's [out, in] weights as
        // they are stored, with no transpose in between.
        let layout = match plan {
            ExecutionPlan::PackedCpu { .. } => ProjectionLayout::OutIn,
            ExecutionPlan::Tensors { .. } => ProjectionLayout::InOut,
        };
        let mut model = RobertaClassifier::with_layout(config, layout, &device);
        weights::load(&mut model, config, &weight_file, dtype)?;
        if let ExecutionPlan::PackedCpu { kernel } = plan {
            #[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
            model.pack(kernel);
            #[cfg(not(all(target_arch = "x86_64", feature = "cpu-kernels")))]
            unreachable!("{kernel} is selected only where the CPU kernels are built");
        }
        Ok((model, backend, device, plan))
    }
}

/// A loaded CodeBERT insecure-code classifier.
///
/// `Detector` is `Send + Sync`: share one across threads (in an `Arc`) and call
/// [`predict`](Self::predict) from each; results equal serial ones.
///
/// ```no_run
/// use insecure_code_detector::Detector;
///
/// let detector = Detector::from_pretrained("models/codebert-insecure")?;
/// let prediction = detector.predict("void f(char *s) { char b[8]; strcpy(b, s); }")?;
/// println!("{} ({:.3})", prediction.label_name, prediction.insecure_probability);
/// # Ok::<(), insecure_code_detector::Error>(())
/// ```
#[derive(Debug)]
pub struct Detector {
    model: RobertaClassifier,
    tokenizer: CodeTokenizer,
    config: RobertaConfig,
    insecure: InsecureScore,
    device: Device,
    backend: Backend,
    plan: ExecutionPlan,
    max_tokens: usize,
    batch_size: usize,
    preprocessing: Preprocessing,
    precision: Precision,
    model_dir: PathBuf,
}

impl Detector {
    /// Loads a checkpoint directory (`config.json`, `model.safetensors` or
    /// `pytorch_model.bin`, and `tokenizer.json` or `vocab.json` + `merges.txt`) on the
    /// default CPU backend with default options.
    pub fn from_pretrained(model_dir: impl AsRef<Path>) -> Result<Self> {
        Self::builder(model_dir).build()
    }

    /// Options for loading a checkpoint directory.
    ///
    /// ```no_run
    /// use insecure_code_detector::{Backend, Detector, Preprocessing};
    ///
    /// let detector = Detector::builder("models/codebert-insecure")
    ///     .backend(Backend::Flex)
    ///     .batch_size(16)
    ///     .preprocessing(Preprocessing::CollapseWhitespace)
    ///     .build()?;
    /// # Ok::<(), insecure_code_detector::Error>(())
    /// ```
    pub fn builder(model_dir: impl AsRef<Path>) -> DetectorBuilder {
        DetectorBuilder {
            model_dir: model_dir.as_ref().to_path_buf(),
            backend: None,
            max_tokens: None,
            batch_size: 8,
            preprocessing: Preprocessing::Raw,
            weights: None,
            precision: Precision::F32,
        }
    }

    /// Classifies one function.
    pub fn predict(&self, code: &str) -> Result<Prediction> {
        let input = self.tokenize(code)?;
        let mut out = self.run_batch(&[&input])?;
        Ok(out.remove(0))
    }

    /// Classifies many functions. Inputs sorted by length run up to
    /// [`batch_size`](Self::batch_size) at a time, laid end to end without padding
    /// (each attends only to itself), so results are in input order and equal
    /// [`predict`](Self::predict)'s. On the CPU backends the model calls run side by
    /// side on the current rayon pool.
    pub fn predict_batch(&self, codes: &[&str]) -> Result<Vec<Prediction>> {
        let mut results = Vec::with_capacity(codes.len());
        for window in codes.chunks(self.batch_size * TOKENIZE_WINDOW_BATCHES) {
            let inputs = window
                .iter()
                .map(|c| self.tokenize(c))
                .collect::<Result<Vec<_>>>()?;
            let mut order: Vec<usize> = (0..inputs.len()).collect();
            order.sort_by_key(|&i| inputs[i].input_ids.len());
            let mut window_results: Vec<Option<Prediction>> = vec![None; inputs.len()];
            let calls = self.model_calls(&order, |i| inputs[i].input_ids.len());
            let window_start = results.len();
            let run = |batch: &&[usize]| {
                let members: Vec<&TokenizedInput> = batch.iter().map(|&i| &inputs[i]).collect();
                // The position in the call, as the caller's index.
                self.run_batch(&members)
                    .map_err(|e| e.renumbered(|input| window_start + batch[input]))
            };
            // On the CPU backends the calls run side by side on the rayon pool. Each
            // call's work still splits across the threads, but a thread done with its
            // share of a step takes up another call's work instead of waiting for the
            // others to finish theirs.
            #[cfg(feature = "cpu-kernels")]
            let outputs: Vec<Result<Vec<Prediction>>> = if self.backend.is_cpu() {
                use rayon::prelude::*;
                calls.par_iter().map(run).collect()
            } else {
                calls.iter().map(run).collect()
            };
            #[cfg(not(feature = "cpu-kernels"))]
            let outputs: Vec<Result<Vec<Prediction>>> = calls.iter().map(run).collect();
            for (batch, output) in calls.iter().zip(outputs) {
                for (&i, prediction) in batch.iter().zip(output?) {
                    window_results[i] = Some(prediction);
                }
            }
            results.extend(
                window_results
                    .into_iter()
                    .map(|p| p.expect("every input was run")),
            );
        }
        Ok(results)
    }

    /// Classifies a function of any length as overlapping windows of `max_tokens`
    /// tokens, each `stride` content tokens after the previous one (the last window
    /// ends at the last token), and returns the window most likely insecure. A
    /// function that fits in one window gives the same result as [`predict`](Self::predict).
    ///
    /// ```no_run
    /// # let detector = insecure_code_detector::Detector::from_pretrained("m")?;
    /// let long_function = std::fs::read_to_string("big.c").unwrap();
    /// let w = detector.predict_windows(&long_function, 255)?;
    /// println!("{:.3} in bytes {:?} of {} windows", w.prediction.insecure_probability, w.byte_range, w.windows);
    /// # Ok::<(), insecure_code_detector::Error>(())
    /// ```
    pub fn predict_windows(&self, code: &str, stride: usize) -> Result<WindowedPrediction> {
        let width = self.max_tokens - 2;
        if stride == 0 || stride > width {
            return Err(Error::InvalidArgument {
                argument: "stride",
                message: format!("is {stride}, expected 1..={width} (max_tokens - 2)"),
            });
        }
        let text = self.preprocessing.apply(code);
        let (ids, offsets) = self.tokenizer.encode_with_offsets(&text)?;
        let bos = self.tokenizer.bos_id();
        let mut starts: Vec<usize> = (0..ids.len().saturating_sub(width))
            .step_by(stride)
            .collect();
        starts.push(ids.len().saturating_sub(width));
        let windows: Vec<TokenizedInput> = starts
            .iter()
            .map(|&start| {
                let end = (start + width).min(ids.len());
                let mut input_ids = Vec::with_capacity(end - start + 2);
                input_ids.push(bos);
                input_ids.extend_from_slice(&ids[start..end]);
                input_ids.push(self.tokenizer.eos_id());
                let length = input_ids.len();
                TokenizedInput {
                    input_ids,
                    untruncated_length: Some(length),
                }
            })
            .collect();
        let mut best: Option<(usize, Prediction)> = None;
        let order: Vec<usize> = (0..windows.len()).collect();
        for chunk in self.model_calls(&order, |i| windows[i].input_ids.len()) {
            let members: Vec<&TokenizedInput> = chunk.iter().map(|&i| &windows[i]).collect();
            // One input: every window's error is the input's.
            let predictions = self.run_batch(&members).map_err(|e| e.renumbered(|_| 0))?;
            for (&index, prediction) in chunk.iter().zip(predictions) {
                if best
                    .as_ref()
                    .is_none_or(|(_, b)| prediction.insecure_probability > b.insecure_probability)
                {
                    best = Some((index, prediction));
                }
            }
        }
        let (index, prediction) = best.expect("at least one window");
        let start = starts[index];
        let end = (start + width).min(ids.len());
        let byte_range = if start < end {
            self.preprocessing
                .source_range(code, offsets[start].0..offsets[end - 1].1)
        } else {
            0..code.len()
        };
        Ok(WindowedPrediction {
            prediction,
            byte_range,
            windows: windows.len(),
        })
    }

    /// Token ids of `code` as the model sees them (after preprocessing and truncation).
    pub fn tokenize(&self, code: &str) -> Result<TokenizedInput> {
        self.tokenizer
            .encode(&self.preprocessing.apply(code), self.max_tokens)
    }

    /// The checkpoint's configuration.
    pub fn config(&self) -> &RobertaConfig {
        &self.config
    }

    /// Label names by index.
    pub fn labels(&self) -> &[String] {
        &self.config.id2label
    }

    /// The backend the model runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// What the model runs on, chosen at load: the backend's tensors at a dtype, or
    /// one of this crate's packed CPU kernels (and its instruction set).
    pub fn execution(&self) -> ExecutionPlan {
        self.plan
    }

    /// Tokens per input after truncation, `<s>` and `</s>` included.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Inputs per model call in [`predict_batch`](Self::predict_batch).
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The preprocessing applied before tokenizing.
    pub fn preprocessing(&self) -> Preprocessing {
        self.preprocessing
    }

    /// Precision of weights and computation.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The checkpoint directory this detector was loaded from.
    pub fn model_dir(&self) -> &Path {
        &self.model_dir
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &CodeTokenizer {
        &self.tokenizer
    }

    /// `order` cut into this detector's model calls (see [`model_calls`]).
    fn model_calls<'a>(
        &self,
        order: &'a [usize],
        tokens: impl Fn(usize) -> usize,
    ) -> Vec<&'a [usize]> {
        model_calls(
            order,
            tokens,
            self.batch_size,
            self.backend.call_token_budget(),
        )
    }

    /// Runs the model on inputs laid end to end in one call. A panic inside the
    /// backend becomes an error; the model holds no state between calls, so the
    /// detector stays usable.
    fn run_batch(&self, inputs: &[&TokenizedInput]) -> Result<Vec<Prediction>> {
        let lengths: Vec<usize> = inputs.iter().map(|i| i.input_ids.len()).collect();
        let total: usize = lengths.iter().sum();
        let ids: Vec<i64> = inputs
            .iter()
            .flat_map(|i| i.input_ids.iter().map(|&id| i64::from(id)))
            .collect();
        let positions: Vec<i64> = inputs
            .iter()
            .flat_map(|i| position_ids(&i.input_ids, self.config.pad_token_id))
            .collect();
        let logits = catch_unwind(AssertUnwindSafe(|| -> Result<Vec<f32>> {
            let input_ids =
                Tensor::<2, Int>::from_data(TensorData::new(ids, [1, total]), &self.device);
            let position_ids =
                Tensor::<2, Int>::from_data(TensorData::new(positions, [1, total]), &self.device);
            let logits =
                self.model
                    .forward(input_ids, position_ids, &lengths, self.backend.row_parts());
            let data = logits
                .try_into_data()
                .map_err(|e| Error::Inference(format!("reading logits: {e:?}")))?;
            data.convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| Error::Inference(format!("reading logits: {e:?}")))
        }))
        .map_err(|panic| Error::Inference(panic_message(&*panic)))??;

        let labels = self.config.num_labels;
        inputs
            .iter()
            .zip(logits.chunks(labels))
            .enumerate()
            .map(|(position, (input, logits))| {
                // Fail closed: NaN compares false with every threshold, so a NaN
                // probability would read as "not insecure".
                if logits.iter().any(|l| !l.is_finite()) {
                    return Err(Error::NonFiniteLogits {
                        input: position,
                        logits: logits.to_vec(),
                    });
                }
                Ok(self.prediction(input, logits.to_vec()))
            })
            .collect()
    }

    fn prediction(&self, input: &TokenizedInput, logits: Vec<f32>) -> Prediction {
        // First maximum, as torch.argmax (always 0 for a single-logit model, whose
        // verdict is `insecure_probability`).
        let label = logits
            .iter()
            .enumerate()
            .fold(0, |best, (i, &l)| if l > logits[best] { i } else { best });
        let label_name = self.config.id2label[label].clone();
        Prediction {
            label,
            label_name,
            insecure_probability: self.insecure.probability(&logits),
            tokens: input.input_ids.len(),
            truncated: input.truncated(),
            logits,
        }
    }
}

/// `order` cut into consecutive model calls of at most `batch_size` inputs and
/// `token_budget` tokens (an input longer than that runs alone); `tokens(i)` is input
/// `i`'s token count.
fn model_calls(
    order: &[usize],
    tokens: impl Fn(usize) -> usize,
    batch_size: usize,
    token_budget: usize,
) -> Vec<&[usize]> {
    let mut calls = Vec::new();
    let (mut start, mut call_tokens) = (0, 0);
    for (position, &input) in order.iter().enumerate() {
        let n = tokens(input);
        let members = position - start;
        if members > 0 && (members == batch_size || call_tokens + n > token_budget) {
            calls.push(&order[start..position]);
            (start, call_tokens) = (position, 0);
        }
        call_tokens += n;
    }
    if start < order.len() {
        calls.push(&order[start..]);
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapsed_ranges_map_back_to_the_source() {
        let code = "int  f(void)\n{\n\treturn \u{e9};\r\n}\n";
        let p = Preprocessing::CollapseWhitespace;
        let text = p.apply(code);
        assert_eq!(text, "int f(void) { return \u{e9}; }");
        // Every word, and every part of one, maps to the same bytes of the source.
        for word in text.split(' ') {
            let at = word.as_ptr() as usize - text.as_ptr() as usize;
            assert_eq!(&code[p.source_range(code, at..at + word.len())], word);
            let first = word.chars().next().unwrap().len_utf8();
            assert_eq!(&code[p.source_range(code, at..at + first)], &word[..first]);
        }
        // A range across words covers the source's whitespace between them.
        assert_eq!(&code[p.source_range(code, 0..text.len())], code.trim_end());
        // A range starting on a joining space starts at the next word; one ending on
        // it ends after the previous word.
        let space = text.find(' ').unwrap();
        assert_eq!(&code[p.source_range(code, space..space + 2)], "f");
        assert_eq!(&code[p.source_range(code, 0..space + 1)], "int");
        assert_eq!(p.source_range(code, 4..4), 5..5);
        assert_eq!(p.source_range("   ", 0..0), 0..0);
        assert_eq!(Preprocessing::Raw.source_range(code, 3..7), 3..7);
    }

    #[test]
    fn model_calls_hold_batch_size_inputs_and_token_budget_tokens() {
        let tokens = [100, 200, 300, 600, 10, 10, 10, 10];
        let order: Vec<usize> = (0..tokens.len()).collect();
        let calls = |batch_size, budget| model_calls(&order, |i| tokens[i], batch_size, budget);
        // 512 tokens: 100 + 200 fit, 300 starts a call, 600 runs alone, then the rest.
        assert_eq!(calls(8, 512), [&[0, 1][..], &[2], &[3], &[4, 5, 6, 7]]);
        // The batch size cuts too.
        assert_eq!(calls(3, 512), [&[0, 1][..], &[2], &[3], &[4, 5, 6], &[7]]);
        // No budget (the GPU backends): the batch size alone.
        assert_eq!(calls(8, usize::MAX), [&order[..]]);
        assert_eq!(calls(3, usize::MAX), [&[0, 1, 2][..], &[3, 4, 5], &[6, 7]]);
        assert!(model_calls(&[], |_| 1, 8, 512).is_empty());
    }

    #[test]
    fn collapse_whitespace_matches_python_split_join() {
        let p = Preprocessing::CollapseWhitespace;
        assert_eq!(p.apply("  a\t\tb\r\n c \u{a0}d\u{1f}e  "), "a b c d e");
        assert_eq!(p.apply(""), "");
        assert_eq!(p.apply(" \n\t "), "");
        assert_eq!(Preprocessing::Raw.apply(" a  b "), " a  b ");
    }

    #[test]
    fn insecure_score_follows_the_label_names() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let two = InsecureScore::for_labels(&names(&["LABEL_0", "LABEL_1"]));
        assert!((two.probability(&[0.0, 0.0]) - 0.5).abs() < 1e-6);
        assert!(two.probability(&[0.0, 3.0]) > 0.9);
        let one = InsecureScore::for_labels(&names(&["LABEL_0"]));
        assert!((one.probability(&[0.0]) - 0.5).abs() < 1e-6);
        let five = InsecureScore::for_labels(&names(&["overflow", "safe", "a", "b", "c"]));
        assert!(five.probability(&[0.0, 10.0, 0.0, 0.0, 0.0]) < 0.01);
    }

    /// The f64 model that `Precision::F32` runs as on CUDA, run here on the default
    /// CPU backend: the logits of the f32 detector, which the parity tests hold to
    /// transformers'.
    #[test]
    fn the_f64_model_gives_the_f32_logits() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/roberta-2-labels");
        let detector = Detector::builder(&dir).build().unwrap();
        let texts = [
            "int main(void) { return 0; }",
            "void f(char *s) { char b[8]; strcpy(b, s); }",
            "",
        ];
        let f32_logits: Vec<Vec<f32>> = texts
            .iter()
            .map(|t| detector.predict(t).unwrap().logits)
            .collect();
        let mut model = RobertaClassifier::with_layout(
            &detector.config,
            ProjectionLayout::InOut,
            &detector.device,
        );
        let weight_file = WeightFile::find(&dir).unwrap();
        weights::load(&mut model, &detector.config, &weight_file, DType::F64).unwrap();
        assert_eq!(model.classifier.dense.weight.val().dtype(), DType::F64);
        let f64_detector = Detector { model, ..detector };
        for (text, expected) in texts.iter().zip(&f32_logits) {
            let logits = f64_detector.predict(text).unwrap().logits;
            assert_eq!(logits.len(), expected.len());
            for (a, b) in logits.iter().zip(expected) {
                assert!(
                    (a - b).abs() < 1e-5,
                    "{text:?}: f64 {logits:?}, f32 {expected:?}"
                );
            }
        }
    }

    #[test]
    fn detector_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Detector>();
    }
}
