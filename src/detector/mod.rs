//! The typed API: load a checkpoint once, classify functions many times.
//!
//! ```text
//! mod.rs         Detector and its builder: loading, predict, predict_batch, predict_windows
//! options        Preprocessing and Precision, each with its one table of names and C numbers
//! prediction     Prediction, WindowedPrediction, and how they are read off the logits
//! explanation    Explanation: token and line scores from the last layer's attention
//! batching       how a batch is cut into model calls, laid end to end (CPU) or padded
//!                to a bounded set of shapes (GPU, CallShapes)
//! ```

mod batching;
mod explanation;
mod options;
mod prediction;

pub use batching::CallShapes;
pub use explanation::{Explanation, LineScore, TokenScore, WindowedExplanation};
pub use crate::precision::Precision;
pub use options::Preprocessing;
pub use prediction::{Prediction, WindowedPrediction};

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::backend::{panic_message, Backend};
use crate::config::RobertaConfig;
use crate::error::{Error, Result};
use crate::execution::ExecutionPlan;
use crate::model::{InputLayout, ProjectionLayout, RobertaClassifier};
use crate::tokenizer::{ByteSpan, CodeTokenizer, TokenizedInput};
use crate::weights::{self, WeightFile};
use batching::{end_to_end, model_calls, padded, window_starts, TOKENIZE_WINDOW_BATCHES};
use prediction::Labels;

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

    /// Checks the options that need no checkpoint file beyond `config.json` (batch size,
    /// backend compiled in, token limit), as [`build`](Self::build) does first: for a
    /// caller that answers from stored results without building (`icd scan`'s cache),
    /// so that a bad option is the same error either way.
    pub fn check(&self) -> Result<()> {
        if self.batch_size == 0 || self.batch_size > 4096 {
            return Err(Error::InvalidArgument {
                argument: "batch_size",
                message: format!("is {}, expected 1..=4096", self.batch_size),
            });
        }
        if let Some(backend) = self.backend {
            backend.check_compiled()?;
        }
        Ok(())
    }

    /// Loads the checkpoint.
    pub fn build(self) -> Result<Detector> {
        self.check()?;
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
        let max_tokens = self.max_tokens_of(&config)?;
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
        let (model, backend, device, execution) = loaded?;
        // The GPU backends compile kernels for each shape; the CPU backends run any
        // shape as it comes, and padding would only cost them.
        let call_shapes = (!backend.is_cpu())
            .then(|| CallShapes::new(max_tokens, self.batch_size, backend.call_token_budget()));
        Ok(Detector {
            call_shapes,
            model,
            tokenizer,
            labels: Labels::new(&config.id2label),
            config,
            device,
            backend,
            execution,
            max_tokens,
            batch_size: self.batch_size,
            preprocessing: self.preprocessing,
            precision: self.precision,
            model_dir: self.model_dir,
        })
    }

    /// The checkpoint directory.
    pub fn model_dir(&self) -> &Path {
        &self.model_dir
    }

    /// Tokens per input, `<s>` and `</s>` included, that a detector built from this
    /// builder will take: [`max_tokens`](Self::max_tokens) where set, else the
    /// checkpoint's limit (from `config.json` and `tokenizer_config.json`). Reads those
    /// two small files, not the weights.
    pub fn resolved_max_tokens(&self) -> Result<usize> {
        self.max_tokens_of(&RobertaConfig::from_file(
            &self.model_dir.join("config.json"),
        )?)
    }

    fn max_tokens_of(&self, config: &RobertaConfig) -> Result<usize> {
        let limit = config.max_tokens();
        let max_tokens = self
            .max_tokens
            .unwrap_or(limit.min(crate::tokenizer_max_length(&self.model_dir)?.unwrap_or(limit)));
        if max_tokens < 2 || max_tokens > limit {
            return Err(Error::InvalidArgument {
                argument: "max_tokens",
                message: format!("is {max_tokens}, expected 2..={limit} for this checkpoint"),
            });
        }
        Ok(max_tokens)
    }

    /// The files [`build`](Self::build) reads, in a fixed order: `config.json`, the
    /// weight file, the tokenizer's files (`tokenizer.json`, else `vocab.json` and
    /// `merges.txt`), and `tokenizer_config.json` where there is one. Their contents
    /// and [`settings`](Self::settings) decide every result the detector gives.
    pub fn checkpoint_files(&self) -> Result<Vec<PathBuf>> {
        let dir = &self.model_dir;
        let weights = match &self.weights {
            Some(path) => path.clone(),
            None => WeightFile::find(dir)?.path().to_path_buf(),
        };
        let mut files = vec![dir.join("config.json"), weights];
        let tokenizer_json = dir.join("tokenizer.json");
        if tokenizer_json.is_file() {
            files.push(tokenizer_json);
        } else {
            files.extend([dir.join("vocab.json"), dir.join("merges.txt")]);
        }
        let tokenizer_config = dir.join("tokenizer_config.json");
        if tokenizer_config.is_file() {
            files.push(tokenizer_config);
        }
        Ok(files)
    }

    /// Everything besides the checkpoint's files that decides the detector's results,
    /// as one line: the backend, the execution plan it will choose on this machine, the
    /// precision, the preprocessing and the token limit (`backend=flex plan=kernel
    /// f32-avx2 (AVX2+FMA) precision=f32 preprocessing=raw max_tokens=512`). The batch
    /// size is not in it: results do not depend on it.
    pub fn settings(&self) -> Result<String> {
        let backend = match self.backend {
            // `auto` is what it resolves to here, which opening the device tells.
            Some(Backend::Auto) => Backend::Auto.open()?.0,
            Some(b) => b,
            None => Backend::default_cpu()?,
        };
        let plan = ExecutionPlan::choose(self.precision, backend)?;
        Ok(format!(
            "backend={} plan={plan} precision={} preprocessing={} max_tokens={}",
            backend.name(),
            self.precision.name(),
            self.preprocessing.name(),
            self.resolved_max_tokens()?
        ))
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
            #[cfg(cpu_kernels)]
            model.pack(kernel);
            #[cfg(not(cpu_kernels))]
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
    /// The bounded shapes of the model calls (GPU backends); `None`: end to end.
    call_shapes: Option<CallShapes>,
    tokenizer: CodeTokenizer,
    config: RobertaConfig,
    labels: Labels,
    device: Device,
    backend: Backend,
    execution: ExecutionPlan,
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
        Ok(self.run_batch(&[&input], false)?.remove(0).0)
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
            let scored = self.run_inputs(&inputs, results.len(), false)?;
            results.extend(scored.into_iter().map(|(prediction, _)| prediction));
        }
        Ok(results)
    }

    /// Classifies one function and says where the model looked: each token's share
    /// of the last layer's attention from `<s>` (averaged over heads, as transformers'
    /// `attentions[-1][0, :, 0, :].mean(0)` with eager attention) and their sums by
    /// source line (lines numbered from 1 within `code`). The prediction is
    /// [`predict`](Self::predict)'s; [`predict`](Self::predict) itself computes none
    /// of this.
    pub fn explain(&self, code: &str) -> Result<Explanation> {
        Ok(self.explain_batch(&[code])?.remove(0))
    }

    /// [`explain`](Self::explain) for many functions, batched as
    /// [`predict_batch`](Self::predict_batch) batches them: results in input order,
    /// equal to [`explain`](Self::explain)'s.
    pub fn explain_batch(&self, codes: &[&str]) -> Result<Vec<Explanation>> {
        let mut results = Vec::with_capacity(codes.len());
        for window in codes.chunks(self.batch_size * TOKENIZE_WINDOW_BATCHES) {
            let texts: Vec<_> = window.iter().map(|c| self.preprocessing.apply(c)).collect();
            let (inputs, spans): (Vec<TokenizedInput>, Vec<Vec<ByteSpan>>) = texts
                .iter()
                .map(|text| self.tokenizer.encode_with_spans(text, self.max_tokens))
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .unzip();
            let scored = self.run_inputs(&inputs, results.len(), true)?;
            for (i, (prediction, scores)) in scored.into_iter().enumerate() {
                results.push(explanation::explain(
                    prediction,
                    window[i],
                    (self.preprocessing, &texts[i]),
                    &inputs[i].input_ids,
                    &spans[i],
                    &scores,
                ));
            }
        }
        Ok(results)
    }

    /// The stride [`predict_windows`](Self::predict_windows) callers use by default
    /// (`icd scan --window`, the C API's 0, Python's `stride=0`): half of the tokens a
    /// window holds between `<s>` and `</s>` (255 for 512 tokens), at least 1.
    pub fn default_stride(max_tokens: usize) -> usize {
        (max_tokens.saturating_sub(2) / 2).max(1)
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
        let run = self.run_windows(code, stride, false)?;
        Ok(WindowedPrediction {
            prediction: run.prediction,
            byte_range: run.byte_range,
            windows: run.windows,
        })
    }

    /// [`predict_windows`](Self::predict_windows), explained as
    /// [`explain`](Self::explain) explains: the tokens and lines of the window that
    /// gave the verdict, lines numbered within the whole of `code`.
    pub fn explain_windows(&self, code: &str, stride: usize) -> Result<WindowedExplanation> {
        let run = self.run_windows(code, stride, true)?;
        let explanation = explanation::explain(
            run.prediction,
            code,
            (self.preprocessing, &run.text),
            &run.ids,
            &run.spans,
            &run.scores,
        );
        Ok(WindowedExplanation {
            explanation,
            byte_range: run.byte_range,
            windows: run.windows,
        })
    }

    /// The windows of `code` run through the model, and the one most likely insecure
    /// (with its token scores where `explain`).
    fn run_windows(&self, code: &str, stride: usize, explain: bool) -> Result<WindowRun> {
        let width = self.max_tokens - 2;
        if stride == 0 || stride > width {
            return Err(Error::InvalidArgument {
                argument: "stride",
                message: format!("is {stride}, expected 1..={width} (max_tokens - 2)"),
            });
        }
        let text = self.preprocessing.apply(code);
        let (ids, offsets) = self.tokenizer.encode_with_offsets(&text)?;
        let starts = window_starts(ids.len(), width, stride);
        let frame = |start: usize| {
            let end = (start + width).min(ids.len());
            let mut input_ids = Vec::with_capacity(end - start + 2);
            input_ids.push(self.tokenizer.bos_id());
            input_ids.extend_from_slice(&ids[start..end]);
            input_ids.push(self.tokenizer.eos_id());
            input_ids
        };
        let windows: Vec<TokenizedInput> = starts
            .iter()
            .map(|&start| {
                let input_ids = frame(start);
                let length = input_ids.len();
                TokenizedInput {
                    input_ids,
                    untruncated_length: Some(length),
                }
            })
            .collect();
        let mut best: Option<(usize, Prediction, Vec<f32>)> = None;
        let order: Vec<usize> = (0..windows.len()).collect();
        for chunk in self.model_calls(&order, |i| windows[i].input_ids.len()) {
            let members: Vec<&TokenizedInput> = chunk.iter().map(|&i| &windows[i]).collect();
            // One input: every window's error is the input's.
            let scored = self
                .run_batch(&members, explain)
                .map_err(|e| e.renumbered(|_| 0))?;
            for (&index, (prediction, scores)) in chunk.iter().zip(scored) {
                if best.as_ref().is_none_or(|(_, b, _)| {
                    prediction.insecure_probability > b.insecure_probability
                }) {
                    best = Some((index, prediction, scores));
                }
            }
        }
        let (index, prediction, scores) = best.expect("at least one window");
        let start = starts[index];
        let end = (start + width).min(ids.len());
        let byte_range = if start < end {
            self.preprocessing
                .source_range(code, offsets[start].0..offsets[end - 1].1)
        } else {
            0..code.len()
        };
        // What the winner's explanation reads, only where it is wanted.
        let (text, spans) = if explain {
            let mut spans = Vec::with_capacity(end - start + 2);
            spans.push((0, 0));
            spans.extend_from_slice(&offsets[start..end]);
            spans.push((0, 0));
            (text.into_owned(), spans)
        } else {
            (String::new(), Vec::new())
        };
        Ok(WindowRun {
            ids: frame(start),
            prediction,
            scores,
            byte_range,
            windows: windows.len(),
            text,
            spans,
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
        self.execution
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

    /// The shapes this detector's model calls take, where they are bounded: on the
    /// GPU backends, which compile kernels for each shape (see [`CallShapes`]). `None`
    /// on the CPU backends, whose calls lay their inputs end to end unpadded.
    pub fn call_shapes(&self) -> Option<&CallShapes> {
        self.call_shapes.as_ref()
    }

    /// Compiles the kernels of every model call shape now, rather than on
    /// the first call of each shape: one call of each of [`call_shapes`](Self::call_shapes),
    /// explained (which runs every kernel a prediction runs, and those of
    /// explanations). Afterwards [`predict`](Self::predict), the batch calls,
    /// windows and explanations compile nothing more. Returns the number of calls run:
    /// 0 on the CPU backends, which compile nothing.
    ///
    /// On CUDA the compiled kernels are kept on disk (`cubecl` in the cache directory,
    /// [`crate::files::cache_dir`]; `ICD_GPU_CACHE=0` keeps them in memory), and a later
    /// process loads them instead of
    /// compiling again; wgpu compiles in each process (beside its driver's own cache).
    ///
    /// ```no_run
    /// use insecure_code_detector::{Backend, Detector};
    /// let detector = Detector::builder("models/codebert-insecure")
    ///     .backend(Backend::Wgpu)
    ///     .build()?;
    /// let calls = detector.warm_up()?;
    /// println!("{calls} call shapes compiled");
    /// # Ok::<(), insecure_code_detector::Error>(())
    /// ```
    pub fn warm_up(&self) -> Result<usize> {
        let Some(shapes) = &self.call_shapes else {
            return Ok(0);
        };
        for (count, width) in shapes.iter() {
            // `<s>`, `</s>` over and over: any ids do, the kernels depend on the shape.
            let mut input_ids = vec![self.tokenizer.eos_id(); width];
            input_ids[0] = self.tokenizer.bos_id();
            let input = TokenizedInput {
                input_ids,
                untruncated_length: Some(width),
            };
            self.run_batch(&vec![&input; count], true)?;
        }
        Ok(shapes.len())
    }

    /// `order` cut into this detector's model calls (see [`model_calls`]): on the GPU
    /// backends, each call's inputs of one of [`CallShapes`]'s widths, the budget
    /// counting padded tokens.
    fn model_calls<'a>(
        &self,
        order: &'a [usize],
        tokens: impl Fn(usize) -> usize,
    ) -> Vec<&'a [usize]> {
        let (batch_size, budget) = (self.batch_size, self.backend.call_token_budget());
        match &self.call_shapes {
            None => model_calls(order, tokens, |_| 0, batch_size, budget),
            Some(shapes) => {
                let width = |i| shapes.width_for(tokens(i));
                model_calls(order, width, width, batch_size, budget)
            }
        }
    }

    /// Runs `inputs` (the caller's inputs from `first_index` on) sorted by length in
    /// this detector's model calls, side by side on the CPU backends: results in
    /// input order, with token scores where `explain`.
    fn run_inputs(
        &self,
        inputs: &[TokenizedInput],
        first_index: usize,
        explain: bool,
    ) -> Result<Vec<(Prediction, Vec<f32>)>> {
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        order.sort_by_key(|&i| inputs[i].input_ids.len());
        let calls = self.model_calls(&order, |i| inputs[i].input_ids.len());
        let run = |batch: &&[usize]| {
            let members: Vec<&TokenizedInput> = batch.iter().map(|&i| &inputs[i]).collect();
            // The position in the call, as the caller's index.
            self.run_batch(&members, explain)
                .map_err(|e| e.renumbered(|input| first_index + batch[input]))
        };
        // On the CPU backends the calls run side by side on the rayon pool. Each
        // call's work still splits across the threads, but a thread done with its
        // share of a step takes up another call's work instead of waiting for the
        // others to finish theirs.
        #[cfg(feature = "cpu-kernels")]
        let outputs: Vec<Result<Vec<_>>> = if self.backend.is_cpu() {
            use rayon::prelude::*;
            calls.par_iter().map(run).collect()
        } else {
            calls.iter().map(run).collect()
        };
        #[cfg(not(feature = "cpu-kernels"))]
        let outputs: Vec<Result<Vec<_>>> = calls.iter().map(run).collect();
        let mut results: Vec<Option<(Prediction, Vec<f32>)>> = vec![None; inputs.len()];
        for (batch, output) in calls.iter().zip(outputs) {
            for (&i, scored) in batch.iter().zip(output?) {
                results[i] = Some(scored);
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every input was run"))
            .collect())
    }

    /// Runs the model on inputs laid end to end in one call: each input's prediction
    /// and, where `explain`, its token scores (else none). A panic inside the backend
    /// becomes an error; the model holds no state between calls, so the detector
    /// stays usable.
    fn run_batch(
        &self,
        inputs: &[&TokenizedInput],
        explain: bool,
    ) -> Result<Vec<(Prediction, Vec<f32>)>> {
        let pad = self.config.pad_token_id;
        let (ids, positions, lengths, shape, layout) = match &self.call_shapes {
            None => {
                let (ids, positions, lengths) = end_to_end(inputs, pad);
                let total = ids.len();
                (ids, positions, lengths, [1, total], InputLayout::EndToEnd)
            }
            Some(shapes) => {
                let longest = inputs.iter().map(|i| i.input_ids.len()).max().unwrap_or(1);
                let width = shapes.width_for(longest).max(longest);
                let count = shapes.count_for(inputs.len(), width).max(inputs.len());
                let (ids, positions, lengths) = padded(inputs, width, count, pad);
                (ids, positions, lengths, [count, width], InputLayout::Padded)
            }
        };
        let (logits, scores) = catch_unwind(AssertUnwindSafe(|| {
            let input_ids = Tensor::<2, Int>::from_data(TensorData::new(ids, shape), &self.device);
            let position_ids =
                Tensor::<2, Int>::from_data(TensorData::new(positions, shape), &self.device);
            let parts = self.backend.row_parts();
            let (logits, scores) = if explain {
                self.model
                    .forward_explained(input_ids, position_ids, &lengths, layout, parts)
            } else {
                let logits = self
                    .model
                    .forward(input_ids, position_ids, &lengths, layout, parts);
                (logits, vec![Vec::new(); lengths.len()])
            };
            let data = logits
                .try_into_data()
                .map_err(|e| Error::Inference(format!("reading logits: {e:?}")))?;
            let logits = data
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| Error::Inference(format!("reading logits: {e:?}")))?;
            Ok::<_, Error>((logits, scores))
        }))
        .map_err(|panic| Error::Inference(panic_message(&*panic)))??;

        let labels = self.config.num_labels;
        inputs
            .iter()
            .zip(logits.chunks(labels))
            .zip(scores)
            .enumerate()
            .map(|(position, ((input, logits), scores))| {
                let prediction = self.labels.prediction(
                    position,
                    logits,
                    input.input_ids.len(),
                    input.truncated(),
                )?;
                Ok((prediction, scores))
            })
            .collect()
    }
}

/// The windows of one input run, and the winner's parts for its explanation.
struct WindowRun {
    prediction: Prediction,
    /// The winner's token scores (empty unless explaining).
    scores: Vec<f32>,
    byte_range: std::ops::Range<usize>,
    windows: usize,
    /// The preprocessed text and the winner's spans in it (empty unless explaining),
    /// and the winner's ids.
    text: String,
    ids: Vec<u32>,
    spans: Vec<ByteSpan>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::DType;

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
        let model = tensor_model(&detector, &dir, DType::F64);
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

    /// The checkpoint in `dir` loaded for the backend's tensors in `dtype`, on
    /// `detector`'s device.
    fn tensor_model(detector: &Detector, dir: &Path, dtype: DType) -> RobertaClassifier {
        let mut model = RobertaClassifier::with_layout(
            &detector.config,
            ProjectionLayout::InOut,
            &detector.device,
        );
        let weight_file = WeightFile::find(dir).unwrap();
        weights::load(&mut model, &detector.config, &weight_file, dtype).unwrap();
        model
    }

    /// A detector on the fixture whose model runs on the backend's f32 tensors (the
    /// plan of the GPU backends), with calls padded to `shapes` or end to end.
    fn tensor_detector(max_tokens: usize, shapes: bool) -> Detector {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/roberta-2-labels");
        let detector = Detector::builder(&dir)
            .max_tokens(max_tokens)
            .batch_size(4)
            .build()
            .unwrap();
        Detector {
            model: tensor_model(&detector, &dir, DType::F32),
            execution: ExecutionPlan::Tensors { dtype: DType::F32 },
            call_shapes: shapes.then(|| CallShapes::new(max_tokens, 4, 16_384)),
            ..detector
        }
    }

    fn assert_close(a: &[f32], b: &[f32], tolerance: f32, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tolerance, "{what}: {a:?} against {b:?}");
        }
    }

    /// Padded calls (the GPU backends' bounded shapes) give end to end's results:
    /// predictions, explanations and windows, over lengths in every width and calls
    /// with dummy inputs.
    #[test]
    fn padded_calls_give_the_results_of_calls_end_to_end() {
        let texts: Vec<String> = (0..23)
            .map(|i| {
                format!(
                    "int f{i}(int *a) {{ {} return a[{i}]; }}",
                    "a[0]++; ".repeat(i * i / 3)
                )
            })
            .collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let (padded, end_to_end) = (tensor_detector(512, true), tensor_detector(512, false));
        let widths: std::collections::BTreeSet<usize> = texts
            .iter()
            .map(|t| {
                padded
                    .call_shapes()
                    .unwrap()
                    .width_for(padded.tokenize(t).unwrap().input_ids.len())
            })
            .collect();
        assert!(widths.len() >= 5, "the texts fill {widths:?} only");
        let a = padded.predict_batch(&texts).unwrap();
        let b = end_to_end.predict_batch(&texts).unwrap();
        for (i, (a, b)) in a.iter().zip(&b).enumerate() {
            assert_close(&a.logits, &b.logits, 1e-5, &format!("input {i}"));
            assert_eq!((a.tokens, a.truncated), (b.tokens, b.truncated));
        }
        let a = padded.explain_batch(&texts[..9]).unwrap();
        let b = end_to_end.explain_batch(&texts[..9]).unwrap();
        assert_eq!((a.len(), b.len()), (9, 9));
        for (a, b) in a.iter().zip(&b) {
            let scores = |e: &Explanation| e.tokens.iter().map(|t| t.score).collect::<Vec<_>>();
            assert_close(&scores(a), &scores(b), 1e-5, "token scores");
        }
        let (padded, end_to_end) = (tensor_detector(40, true), tensor_detector(40, false));
        let long = texts.last().unwrap();
        let a = padded.predict_windows(long, 7).unwrap();
        let b = end_to_end.predict_windows(long, 7).unwrap();
        assert!(a.windows > 5);
        assert_eq!((a.windows, &a.byte_range), (b.windows, &b.byte_range));
        assert_close(&a.prediction.logits, &b.prediction.logits, 1e-5, "windows");
    }

    #[test]
    fn warm_up_runs_one_call_per_shape_and_none_on_calls_end_to_end() {
        let padded = tensor_detector(40, true);
        assert_eq!(padded.call_shapes().unwrap().len(), 3 * 3);
        assert_eq!(padded.warm_up().unwrap(), 9);
        assert_eq!(tensor_detector(40, false).warm_up().unwrap(), 0);
    }

    #[test]
    fn detector_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Detector>();
    }
}
