//! The typed API: load a checkpoint once, classify functions many times.
//!
//! ```text
//! mod.rs         Detector: predict, predict_batch, explain, queries, warm-up
//! builder        DetectorBuilder: options, checks, loading
//! windows        predict_windows, explain_windows
//! options        Preprocessing, with its one table of names and C numbers
//! prediction     Prediction, WindowedPrediction, and how they are read off the logits
//! explanation    Explanation: token and line scores from the last layer's attention
//! batching       how a batch is cut into model calls, laid end to end (CPU) or padded
//!                to a bounded set of shapes (GPU, CallShapes)
//! ```

pub(crate) mod batching;
mod builder;
mod explanation;
mod options;
mod prediction;
mod windows;

pub use crate::precision::Precision;
pub use batching::CallShapes;
pub use builder::DetectorBuilder;
pub use explanation::{Explanation, LineScore, TokenScore, WindowedExplanation};
pub use options::Preprocessing;
pub(crate) use prediction::InsecureScore;
pub(crate) use prediction::{fill, missing};
#[cfg(feature = "train")]
pub(crate) use prediction::first_maximum;
pub use prediction::{Prediction, WindowedPrediction};

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::backend::{panic_message, Backend};
use crate::calibration::Calibration;
use crate::config::RobertaConfig;
use crate::error::{Error, Result};
use crate::execution::ExecutionPlan;
use crate::model::{InputLayout, RobertaClassifier};
use crate::tokenizer::{ByteSpan, CodeTokenizer, TokenizedInput};
use batching::{end_to_end, model_calls, padded, TOKENIZE_WINDOW_BATCHES};
use prediction::Labels;

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
        DetectorBuilder::new(model_dir.as_ref())
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

    /// The calibration applied to insecure probabilities, if any.
    pub fn calibration(&self) -> Option<Calibration> {
        self.labels.calibration()
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

    /// One model call's tensors for `inputs`: end to end on the CPU backends, padded to
    /// one of the call shapes on the GPU backends.
    fn model_call(&self, inputs: &[&TokenizedInput]) -> ModelCall {
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
        ModelCall {
            input_ids: Tensor::from_data(TensorData::new(ids, shape), &self.device),
            position_ids: Tensor::from_data(TensorData::new(positions, shape), &self.device),
            lengths,
            layout,
        }
    }

    /// Each input's `<s>` features (the encoder's last hidden state of its first
    /// token: what the classification head reads), the inputs run as they are given
    /// (no windows), in this detector's model calls. For training the head alone on a
    /// frozen encoder, which then runs once on the fastest path there is.
    #[cfg(feature = "train")]
    pub(crate) fn first_token_features(&self, inputs: &[TokenizedInput]) -> Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        order.sort_by_key(|&i| inputs[i].input_ids.len());
        let mut features = vec![Vec::new(); inputs.len()];
        for call in self.model_calls(&order, |i| inputs[i].input_ids.len()) {
            let members: Vec<&TokenizedInput> = call.iter().map(|&i| &inputs[i]).collect();
            let rows = catch_unwind(AssertUnwindSafe(|| {
                let ModelCall {
                    input_ids,
                    position_ids,
                    lengths,
                    layout,
                } = self.model_call(&members);
                let parts = self.backend.row_parts();
                let states = self.model.first_token_states(
                    input_ids,
                    position_ids,
                    &lengths,
                    layout,
                    parts,
                    None,
                );
                states
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .map_err(|e| Error::Inference(format!("reading features: {e:?}")))
            }))
            .map_err(|panic| Error::Inference(panic_message(&*panic)))??;
            let width = self.config.hidden_size;
            for (&i, row) in call.iter().zip(rows.chunks(width)) {
                features[i] = row.to_vec();
            }
        }
        Ok(features)
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
        let (logits, scores) = catch_unwind(AssertUnwindSafe(|| {
            let ModelCall {
                input_ids,
                position_ids,
                lengths,
                layout,
            } = self.model_call(inputs);
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

/// One model call's inputs as the model takes them.
struct ModelCall {
    input_ids: Tensor<2, Int>,
    position_ids: Tensor<2, Int>,
    lengths: Vec<usize>,
    layout: InputLayout,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ProjectionLayout;
    use crate::weights::{self, WeightFile};
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
