//! Fine-tuning the classifier on a team's labelled functions, with the recipe
//! transformers users know: `RobertaForSequenceClassification`'s cross-entropy,
//! `torch.optim.AdamW` with the Trainer's two parameter groups, the linear schedule of
//! `get_linear_schedule_with_warmup` and clipping by the global gradient norm. It runs
//! on burn's automatic differentiation over the chosen backend; [`TrainedModel::save`]
//! writes a checkpoint in the hub's layout, which this library and transformers load.
//!
//! ```no_run
//! use insecure_code_detector::training::{LabelledFunction, Trainer, TrainingRecipe};
//! use insecure_code_detector::Backend;
//!
//! let data = vec![
//!     LabelledFunction { code: "void f(char *s) { char b[8]; strcpy(b, s); }".into(), label: 1 },
//!     LabelledFunction { code: "int g(int a) { return a + 1; }".into(), label: 0 },
//! ];
//! let mut trainer = Trainer::new("path/to/checkpoint".as_ref(), TrainingRecipe::default(), Backend::Auto)?;
//! let trained = trainer.train(&data, None, &mut |_event| {})?;
//! trained.save("fine-tuned".as_ref())?;
//! # Ok::<(), insecure_code_detector::Error>(())
//! ```

mod checkpoint;
mod optimizer;
mod recipe;
mod state;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

pub use checkpoint::check_output;
pub use recipe::{ClassWeight, TrainingRecipe, Warmup};
pub use state::remove as remove_state;

use crate::config::RobertaConfig;
use crate::detector::batching::padded;
use crate::detector::first_maximum;
use crate::error::{Error, Result};
use crate::evaluation::ProblemType;
use crate::model::{
    Dropout, DropoutMasks, InputLayout, ProjectionLayout, RobertaClassifier, TrainingPass,
};
use crate::weights::{self, WeightFile};
use crate::{Backend, CodeTokenizer, Detector, TokenizedInput};
use optimizer::{clip_by_global_norm, AdamW, AdamWSettings, StepGradients};
use recipe::linear_schedule;

/// One labelled function of the training or validation data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledFunction {
    /// The function's source text.
    pub code: String,
    /// Its label: an index of the checkpoint's `id2label` (CodeXGLUE's `target`).
    pub label: usize,
}

/// One optimizer step, as `--log` writes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRecord {
    /// The step's number, from 1.
    pub step: usize,
    /// Its epoch, from 1.
    pub epoch: usize,
    /// The mean loss over the step's examples, before its update.
    pub loss: f64,
    /// The learning rate its update used.
    pub lr: f64,
    /// The global L2 norm of its gradients, before clipping.
    pub grad_norm: f64,
    /// Examples in the step.
    pub examples: usize,
}

/// One epoch's figures.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct EpochRecord {
    /// The epoch's number, from 1.
    pub epoch: usize,
    /// The mean training loss over its examples (each step's before its update).
    pub train_loss: f64,
    /// The mean cross-entropy on the validation data after the epoch.
    pub validation_loss: Option<f64>,
    /// The share of validation functions whose most likely label is theirs.
    pub validation_accuracy: Option<f64>,
    /// Seconds the epoch took, validation included.
    pub seconds: f64,
}

/// What a training run reports as it goes.
#[derive(Debug)]
#[non_exhaustive]
pub enum TrainingEvent<'a> {
    /// Before the first step.
    Started {
        /// Optimizer steps in the whole run.
        total_steps: usize,
        /// Steps an earlier run of it took (continued from its state), else 0.
        steps_done: usize,
        /// Training examples.
        examples: usize,
    },
    /// After each optimizer step.
    Step(&'a StepRecord),
    /// After each epoch (and its validation).
    Epoch(&'a EpochRecord),
}

/// Stops a [`Trainer`]'s run from its observer or from another thread: the run ends
/// after the optimizer step under way with [`Error::Stopped`], no checkpoint
/// returned; asked on the run's last step it comes too late, and the run ends
/// normally. A resumable run asked on an epoch's last step stops after that epoch,
/// once its state is kept, so that it continues after it.
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// Asks the run to stop after its current step. Later runs of the same trainer
    /// stop as if asked at their first step.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`StopHandle::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A checkpoint loaded for training, with its recipe.
pub struct Trainer {
    model: RobertaClassifier,
    config: RobertaConfig,
    tokenizer: CodeTokenizer,
    model_dir: PathBuf,
    device: Device,
    backend: Backend,
    recipe: TrainingRecipe,
    max_tokens: usize,
    pass: TrainingPass,
    /// With the head alone training: the checkpoint loaded for inference, whose
    /// encoder computes every example's `<s>` features once.
    frozen_encoder: Option<Detector>,
    /// Set to stop the run (see [`Trainer::stop_handle`]).
    stop: StopHandle,
}

/// The examples as the model takes them.
enum Inputs {
    /// Token ids, for a pass through the encoder.
    Tokens(Vec<TokenizedInput>),
    /// The frozen encoder's `<s>` features, for the head alone.
    Features(Vec<Vec<f32>>),
}

impl Trainer {
    /// Loads the checkpoint in `model_dir` onto `backend` for training with `recipe`.
    ///
    /// Refuses a recipe that cannot run (naming the setting), a checkpoint with one
    /// output (transformers trains it by regression, which this does not), and
    /// `train_layers` beyond the checkpoint's layers.
    pub fn new(model_dir: &Path, recipe: TrainingRecipe, backend: Backend) -> Result<Self> {
        recipe.check()?;
        let config = RobertaConfig::from_file(&model_dir.join("config.json"))?;
        if config.num_labels < 2 {
            return Err(Error::InvalidArgument {
                argument: "model",
                message: format!(
                    "{} has {} label: training needs a classifier of two or more labels",
                    model_dir.display(),
                    config.num_labels
                ),
            });
        }
        let layers = config.num_hidden_layers;
        let first_trained_layer = match recipe.train_layers {
            None => 0,
            Some(k) if k <= layers => layers - k,
            Some(k) => {
                return Err(Error::InvalidArgument {
                    argument: "train_layers",
                    message: format!("is {k}, but the checkpoint has {layers} encoder layers"),
                })
            }
        };
        let max_tokens = match recipe.max_tokens {
            None => config
                .max_tokens()
                .min(crate::tokenizer_max_length(model_dir)?.unwrap_or(usize::MAX)),
            Some(n) if (2..=config.max_tokens()).contains(&n) => n,
            Some(n) => {
                return Err(Error::InvalidArgument {
                    argument: "max_tokens",
                    message: format!(
                        "is {n}, expected 2..={} for this checkpoint",
                        config.max_tokens()
                    ),
                })
            }
        };
        let tokenizer = CodeTokenizer::from_dir(model_dir)?;
        let backend = match backend {
            Backend::Auto => Backend::default_cpu()?,
            other => other,
        };
        let (backend, device) = backend.open()?;
        let device = device.autodiff();
        let embeddings_train = recipe.train_layers.is_none();
        let model = load_trainable(
            &config,
            &device,
            &WeightFile::find(model_dir)?,
            embeddings_train,
            first_trained_layer,
        )?;
        let frozen_encoder = (first_trained_layer == layers)
            .then(|| {
                Detector::builder(model_dir)
                    .backend(backend)
                    .max_tokens(max_tokens)
                    .build()
            })
            .transpose()?;
        for (field, p) in [
            ("hidden_dropout_prob", Some(config.hidden_dropout_prob)),
            (
                "attention_probs_dropout_prob",
                Some(config.attention_probs_dropout_prob),
            ),
            ("classifier_dropout", config.classifier_dropout),
        ] {
            if recipe.dropout.is_none() && p.is_some_and(|p| !(0.0..1.0).contains(&p)) {
                return Err(Error::ConfigValue {
                    path: model_dir.join("config.json"),
                    field,
                    message: format!(
                        "is {}: training needs a probability in [0, 1) (or a dropout of its own)",
                        p.unwrap_or_default()
                    ),
                });
            }
        }
        let hidden = recipe.dropout.unwrap_or(config.hidden_dropout_prob);
        let pass = TrainingPass {
            hidden,
            attention: recipe
                .dropout
                .unwrap_or(config.attention_probs_dropout_prob),
            classifier: recipe
                .dropout
                .unwrap_or(config.classifier_dropout.unwrap_or(hidden)),
            embeddings_train,
            first_trained_layer,
        };
        Ok(Self {
            model,
            config,
            tokenizer,
            model_dir: model_dir.to_path_buf(),
            device,
            backend,
            recipe,
            max_tokens,
            pass,
            frozen_encoder,
            stop: StopHandle::default(),
        })
    }

    /// The checkpoint's label names, by index.
    pub fn labels(&self) -> &[String] {
        &self.config.id2label
    }

    /// The backend the model trains on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A handle that stops this trainer's runs (see [`StopHandle`]).
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Trains on `train`, checking after each epoch on `validation` where given, and
    /// returns the model of the last epoch, or with validation data the one of the
    /// epoch with the best validation accuracy (the earliest among equals).
    ///
    /// Refuses, before any step, an empty training set, one with a single label, and
    /// a label outside the checkpoint's (naming the row, from 1). A loss that is not
    /// finite stops the run with the step named; [`Trainer::stop_handle`] stops it
    /// with [`Error::Stopped`].
    pub fn train(
        &mut self,
        train: &[LabelledFunction],
        validation: Option<&[LabelledFunction]>,
        observe: &mut dyn FnMut(TrainingEvent<'_>),
    ) -> Result<TrainedModel> {
        self.run(train, validation, None, observe)
    }

    /// [`Trainer::train`], keeping the run's state in `state` after each epoch: where
    /// `state` holds one from an earlier run of this recipe on this data (one that
    /// stopped), the run continues after its last finished epoch, to the same result
    /// as a run that did not stop. Refuses a state of another recipe or other data.
    /// The caller removes `state` once the checkpoint is saved.
    pub fn train_resumable(
        &mut self,
        train: &[LabelledFunction],
        validation: Option<&[LabelledFunction]>,
        state: &Path,
        observe: &mut dyn FnMut(TrainingEvent<'_>),
    ) -> Result<TrainedModel> {
        self.run(train, validation, Some(state), observe)
    }

    fn run(
        &mut self,
        train: &[LabelledFunction],
        validation: Option<&[LabelledFunction]>,
        state_dir: Option<&Path>,
        observe: &mut dyn FnMut(TrainingEvent<'_>),
    ) -> Result<TrainedModel> {
        let labels = self.config.num_labels;
        check_labels(train, labels, "train")?;
        if let Some(validation) = validation {
            check_labels(validation, labels, "validation")?;
        }
        let mut counts = vec![0usize; labels];
        for example in train {
            counts[example.label] += 1;
        }
        if counts.iter().filter(|&&c| c > 0).count() < 2 {
            return Err(Error::InvalidArgument {
                argument: "train",
                message:
                    "every example has one label: training needs examples of at least two labels"
                        .into(),
            });
        }
        let class_weights = class_weights(&counts, self.recipe.class_weight);
        let recipe = self.recipe.clone();
        let micro_batches = train.len().div_ceil(recipe.batch_size);
        let steps_per_epoch = micro_batches.div_ceil(recipe.gradient_accumulation);
        let total_steps = steps_per_epoch * recipe.epochs;
        let warmup = recipe.warmup_steps(total_steps);
        // A state of another run is refused before the data is tokenized.
        let train_digest = data_digest(train);
        let validation_digest = validation.map(data_digest);
        let state_dir = match state_dir {
            Some(dir) => {
                let run = format!(
                    "checkpoint sha256 {} on {}",
                    Detector::builder(&self.model_dir).checkpoint_sha256()?,
                    self.backend.name()
                );
                Some(state::StateDir::new(
                    dir,
                    &recipe,
                    run,
                    &train_digest,
                    validation_digest.as_deref(),
                ))
            }
            None => None,
        };
        let saved = match &state_dir {
            Some(dir) => {
                let saved = dir.read()?;
                if let Some(saved) = &saved {
                    dir.check(saved, recipe.epochs, steps_per_epoch)?;
                }
                saved
            }
            None => None,
        };

        let encoded = self.inputs(train)?;
        let validation_inputs = validation.map(|v| self.inputs(v)).transpose()?;

        let mut optimizer = AdamW::new(AdamWSettings {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: recipe.weight_decay,
        });
        let mut model = self.model.clone();
        let mut epochs = Vec::with_capacity(recipe.epochs);
        let mut best: Option<(f64, usize, RobertaClassifier)> = None;
        let mut step = 0;
        let mut first_epoch = 1;
        if let (Some(dir), Some(saved)) = (&state_dir, saved) {
            let weights = |epoch| WeightFile::Safetensors(dir.weights(epoch));
            let (embeddings, first_layer) =
                (self.pass.embeddings_train, self.pass.first_trained_layer);
            model = load_trainable(
                &self.config,
                &self.device,
                &weights(saved.epoch),
                embeddings,
                first_layer,
            )?;
            let moments = dir.read_moments(saved.epoch, &model, &self.device.clone().inner())?;
            optimizer.restore(saved.adam_steps, moments);
            let best_model = if saved.best_epoch == saved.epoch {
                model.valid()
            } else {
                load_trainable(
                    &self.config,
                    &self.device,
                    &weights(saved.best_epoch),
                    embeddings,
                    first_layer,
                )?
                .valid()
            };
            best = Some((
                saved.best_accuracy().unwrap_or(f64::NAN),
                saved.best_epoch,
                best_model,
            ));
            step = saved.step;
            first_epoch = saved.epoch + 1;
            epochs = saved.epochs;
        }
        // Parameter ids are the model's own: fixed for the run once it is loaded.
        let decaying = optimizer::decaying(&model.parameter_paths());
        observe(TrainingEvent::Started {
            total_steps,
            steps_done: step,
            examples: train.len(),
        });

        for epoch in first_epoch..=recipe.epochs {
            let started = Instant::now();
            // Each epoch's order and dropout from generators of its own, so that a run
            // continued after an epoch draws what it would have drawn.
            let masks = SeededMasks::new(recipe.seed, 2 * epoch as u64 + 1);
            let mut order: Vec<usize> = (0..train.len()).collect();
            if recipe.shuffle {
                let mut order_rng = rand_chacha::ChaCha8Rng::seed_from_u64(recipe.seed);
                order_rng.set_stream(2 * epoch as u64);
                order.shuffle(&mut order_rng);
            }
            let mut loss_sum = 0.0;
            let per_step = recipe.batch_size * recipe.gradient_accumulation;
            for step_examples in order.chunks(per_step) {
                let weight_total: f64 = step_examples
                    .iter()
                    .map(|&i| class_weights[train[i].label])
                    .sum();
                let mut grads = StepGradients::default();
                let mut loss = 0.0;
                for batch in step_examples.chunks(recipe.batch_size) {
                    let logits = self.logits(&model, &encoded, batch, Some(&masks));
                    let labels: Vec<usize> = batch.iter().map(|&i| train[i].label).collect();
                    let weights: Vec<f64> = labels.iter().map(|&l| class_weights[l]).collect();
                    let summed = weighted_nll_sum(logits, &labels, &weights, &self.device);
                    let micro_loss = summed / weight_total;
                    let value = micro_loss.clone().into_scalar::<f64>();
                    if !value.is_finite() {
                        return Err(Error::Training(format!(
                            "the loss is {value} at step {} (epoch {epoch}); nothing was written",
                            step + 1
                        )));
                    }
                    loss += value;
                    grads.add(&model, &micro_loss.backward());
                }
                let lr = linear_schedule(recipe.learning_rate, step, warmup, total_steps);
                let grad_norm = clip_by_global_norm(&mut grads, recipe.max_grad_norm);
                if !grad_norm.is_finite() {
                    return Err(Error::Training(format!(
                        "the gradient norm is {grad_norm} at step {} (epoch {epoch}); nothing was written",
                        step + 1
                    )));
                }
                if !grads.is_empty() {
                    model = optimizer.step(model, lr, &mut grads, &decaying);
                }
                step += 1;
                loss_sum += loss * weight_total;
                observe(TrainingEvent::Step(&StepRecord {
                    step,
                    epoch,
                    loss,
                    lr,
                    grad_norm,
                    examples: step_examples.len(),
                }));
                // On the run's last step a stop comes too late; a run that keeps its
                // state stops after an epoch's last step only once the state is kept.
                let epoch_end = state_dir.is_some() && step % steps_per_epoch == 0;
                if self.stop.is_stopped() && step < total_steps && !epoch_end {
                    return Err(Error::Stopped {
                        step,
                        epochs: epoch - 1,
                    });
                }
            }
            let class_weight_total: f64 = train.iter().map(|e| class_weights[e.label]).sum();
            let mut record = EpochRecord {
                epoch,
                train_loss: loss_sum / class_weight_total,
                validation_loss: None,
                validation_accuracy: None,
                seconds: 0.0,
            };
            let snapshot = model.valid();
            if let (Some(data), Some(inputs)) = (validation, &validation_inputs) {
                let (loss, accuracy) = self.evaluate(&snapshot, data, inputs)?;
                record.validation_loss = Some(loss);
                record.validation_accuracy = Some(accuracy);
                if best.as_ref().is_none_or(|(a, _, _)| accuracy > *a) {
                    best = Some((accuracy, epoch, snapshot));
                }
            } else {
                best = Some((f64::NAN, epoch, snapshot));
            }
            record.seconds = started.elapsed().as_secs_f64();
            epochs.push(record);
            if let Some(dir) = &state_dir {
                let (adam_steps, moments) = optimizer.state();
                let (best_accuracy, best_epoch, _) = best.as_ref().expect("set above");
                let saved = state::SavedState::after(
                    epoch,
                    step,
                    adam_steps,
                    epochs.clone(),
                    *best_epoch,
                    Some(*best_accuracy).filter(|a| a.is_finite()),
                );
                dir.write(&model, &self.config, moments, saved)?;
            }
            observe(TrainingEvent::Epoch(epochs.last().expect("pushed above")));
            if self.stop.is_stopped() && epoch < recipe.epochs {
                return Err(Error::Stopped {
                    step,
                    epochs: epoch,
                });
            }
        }
        let (_, best_epoch, model) = best.expect("at least one epoch");
        Ok(TrainedModel {
            model,
            config: self.config.clone(),
            base_dir: self.model_dir.clone(),
            recipe,
            epochs,
            best_epoch,
            total_steps,
            max_tokens: self.max_tokens,
            train_digest,
            validation_digest,
        })
    }

    /// The examples as the model takes them: token ids as the detector gives them
    /// (truncated to `max_tokens`), or with the head alone training, the frozen
    /// encoder's features of those.
    fn inputs(&self, data: &[LabelledFunction]) -> Result<Inputs> {
        let tokens = data
            .iter()
            .map(|example| {
                let text = self.recipe.preprocessing.apply(&example.code);
                self.tokenizer.encode(&text, self.max_tokens)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(match &self.frozen_encoder {
            Some(encoder) => Inputs::Features(encoder.first_token_features(&tokens)?),
            None => Inputs::Tokens(tokens),
        })
    }

    /// The logits of the examples `batch` of `inputs`: with dropout `masks` in
    /// training mode (on the training device), without in evaluation mode (`model` a
    /// snapshot without autodiff).
    fn logits(
        &self,
        model: &RobertaClassifier,
        inputs: &Inputs,
        batch: &[usize],
        masks: Option<&dyn DropoutMasks>,
    ) -> Tensor<2> {
        let device = if masks.is_some() {
            self.device.clone()
        } else {
            self.device.clone().inner()
        };
        match inputs {
            Inputs::Features(features) => {
                let width = self.config.hidden_size;
                let rows: Vec<f32> = batch
                    .iter()
                    .flat_map(|&i| features[i].iter().copied())
                    .collect();
                let rows =
                    Tensor::<3>::from_data(TensorData::new(rows, [1, batch.len(), width]), &device);
                match masks {
                    Some(masks) => model
                        .classifier
                        .forward_training(rows, &Dropout::new(self.pass.classifier, masks)),
                    None => model.classifier.forward(rows),
                }
            }
            Inputs::Tokens(tokens) => {
                let members: Vec<&TokenizedInput> = batch.iter().map(|&i| &tokens[i]).collect();
                let width = members.iter().map(|t| t.input_ids.len()).max().unwrap_or(1);
                let pad = self.config.pad_token_id;
                let (ids, positions, lengths) = padded(&members, width, members.len(), pad);
                let shape = [members.len(), width];
                let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, shape), &device);
                let positions =
                    Tensor::<2, Int>::from_data(TensorData::new(positions, shape), &device);
                match masks {
                    Some(masks) => {
                        model.forward_training(ids, positions, &lengths, &self.pass, masks)
                    }
                    None => model.forward(ids, positions, &lengths, InputLayout::Padded, 1),
                }
            }
        }
    }

    /// The mean cross-entropy and the accuracy of `model` (a snapshot in evaluation
    /// mode) on `data`.
    fn evaluate(
        &self,
        model: &RobertaClassifier,
        data: &[LabelledFunction],
        inputs: &Inputs,
    ) -> Result<(f64, f64)> {
        let (mut loss, mut correct) = (0.0, 0usize);
        let all: Vec<usize> = (0..data.len()).collect();
        for batch in all.chunks(self.recipe.batch_size) {
            let logits = logits_rows(self.logits(model, inputs, batch, None));
            for (row, &i) in logits.iter().zip(batch) {
                let label = data[i].label;
                // The loss `icd evaluate` reports, and the prediction's label.
                loss +=
                    crate::evaluation::loss(ProblemType::SingleLabelClassification, row, label)?;
                correct += usize::from(first_maximum(row) == label);
            }
        }
        let n = data.len().max(1) as f64;
        Ok((loss / n, correct as f64 / n))
    }
}

/// A training run's dropout masks, drawn in order from a generator seeded by the
/// recipe's seed.
struct SeededMasks(std::sync::Mutex<rand_chacha::ChaCha8Rng>);

impl SeededMasks {
    /// Masks from `seed`'s stream `stream` (apart from the examples' orders).
    fn new(seed: u64, stream: u64) -> Self {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Self(std::sync::Mutex::new(rng))
    }
}

impl DropoutMasks for SeededMasks {
    fn mask(&self, len: usize, p: f64) -> Vec<bool> {
        use rand::RngCore;
        // A value is dropped when its 32 random bits fall below p · 2³².
        let cut = (p * 4_294_967_296.0) as u64;
        let mut rng = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (0..len).map(|_| u64::from(rng.next_u32()) < cut).collect()
    }
}

/// The model in `file` on the training `device`, its parameters tracked but those of
/// the layers below `first_trained` (and the embeddings unless they train).
fn load_trainable(
    config: &RobertaConfig,
    device: &Device,
    file: &WeightFile,
    embeddings_train: bool,
    first_trained: usize,
) -> Result<RobertaClassifier> {
    let mut model = RobertaClassifier::with_layout(config, ProjectionLayout::InOut, device);
    weights::load(&mut model, config, file, DType::F32)?;
    Ok(freeze(
        model.set_require_grad(true),
        embeddings_train,
        first_trained,
    ))
}

/// `model` with the layers below `first_trained` frozen, and the embeddings unless
/// they train.
fn freeze(
    mut model: RobertaClassifier,
    embeddings_train: bool,
    first_trained: usize,
) -> RobertaClassifier {
    if !embeddings_train {
        model.embeddings = model.embeddings.freeze();
    }
    model.layers = std::mem::take(&mut model.layers)
        .into_iter()
        .enumerate()
        .map(|(i, layer)| {
            if i < first_trained {
                layer.freeze()
            } else {
                layer
            }
        })
        .collect();
    model
}

/// Refuses data that is empty or has a label outside `0..labels`, naming the row.
fn check_labels(data: &[LabelledFunction], labels: usize, argument: &'static str) -> Result<()> {
    if data.is_empty() {
        return Err(Error::InvalidArgument {
            argument,
            message: "has no examples".into(),
        });
    }
    if let Some((row, example)) = data.iter().enumerate().find(|(_, e)| e.label >= labels) {
        return Err(Error::InvalidArgument {
            argument,
            message: format!(
                "row {}: label {} is outside the checkpoint's labels 0..={}",
                row + 1,
                example.label,
                labels - 1
            ),
        });
    }
    Ok(())
}

/// Each label's weight in the loss.
fn class_weights(counts: &[usize], weighting: ClassWeight) -> Vec<f64> {
    match weighting {
        ClassWeight::Uniform => vec![1.0; counts.len()],
        ClassWeight::Balanced => {
            let n: usize = counts.iter().sum();
            let present = counts.iter().filter(|&&c| c > 0).count();
            counts
                .iter()
                .map(|&c| {
                    if c == 0 {
                        0.0
                    } else {
                        n as f64 / (present * c) as f64
                    }
                })
                .collect()
        }
    }
}

/// Σ weightᵢ · −log softmax(logitsᵢ)[labelᵢ], as one scalar tensor.
fn weighted_nll_sum(
    logits: Tensor<2>,
    labels: &[usize],
    weights: &[f64],
    device: &Device,
) -> Tensor<1> {
    let n = labels.len();
    let labels: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    let labels = Tensor::<2, Int>::from_data(TensorData::new(labels, [n, 1]), device);
    let weights: Vec<f32> = weights.iter().map(|&w| w as f32).collect();
    let weights = Tensor::<2>::from_data(TensorData::new(weights, [n, 1]), device);
    let picked = log_softmax(logits, 1).gather(1, labels);
    (picked * weights).sum().neg()
}

/// Logits as rows of f32.
fn logits_rows(logits: Tensor<2>) -> Vec<Vec<f32>> {
    let [_, width] = logits.dims();
    let values = logits
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 logits");
    values.chunks(width.max(1)).map(<[f32]>::to_vec).collect()
}

/// SHA-256 over the examples' texts and labels, in order.
fn data_digest(data: &[LabelledFunction]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for example in data {
        hasher.update((example.code.len() as u64).to_le_bytes());
        hasher.update(example.code.as_bytes());
        hasher.update((example.label as u64).to_le_bytes());
    }
    format!("{:x}", hasher.finalize())
}

/// A fine-tuned model, ready to be written as a checkpoint.
pub struct TrainedModel {
    model: RobertaClassifier,
    config: RobertaConfig,
    base_dir: PathBuf,
    recipe: TrainingRecipe,
    epochs: Vec<EpochRecord>,
    best_epoch: usize,
    total_steps: usize,
    max_tokens: usize,
    train_digest: String,
    validation_digest: Option<String>,
}

impl TrainedModel {
    /// Every epoch's figures.
    pub fn epochs(&self) -> &[EpochRecord] {
        &self.epochs
    }

    /// The epoch whose model this is.
    pub fn best_epoch(&self) -> usize {
        self.best_epoch
    }

    /// Writes the checkpoint to `output`, a directory that must not exist or be
    /// empty: `config.json` (the base checkpoint's, labels kept), `model.safetensors`
    /// under the hub's tensor names, the tokenizer's files and `training.json` (the
    /// recipe, digests of the data, every epoch's figures). It is written beside
    /// `output` and renamed into place: a run that fails leaves nothing there.
    pub fn save(&self, output: &Path) -> Result<()> {
        checkpoint::write(self, output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records each dropout site's mask length, dropping nothing.
    #[derive(Default)]
    struct Recorded(std::sync::Mutex<Vec<usize>>);

    impl DropoutMasks for Recorded {
        fn mask(&self, len: usize, _p: f64) -> Vec<bool> {
            self.0.lock().unwrap().push(len);
            vec![false; len]
        }
    }

    /// transformers' sites, in the order of the pass: the embeddings, then in each
    /// layer that trains the attention probabilities, the attention output and the
    /// feed-forward output (the last layer on `<s>` alone after attention), then the
    /// head's input and its tanh.
    #[test]
    fn dropout_falls_where_transformers_drops_out() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/roberta-2-labels");
        let sites = |train_layers: Option<usize>| {
            let recipe = TrainingRecipe {
                train_layers,
                dropout: Some(0.1),
                ..TrainingRecipe::default()
            };
            let trainer = Trainer::new(&dir, recipe, Backend::Auto).unwrap();
            let inputs = Inputs::Tokens(vec![
                trainer
                    .tokenizer
                    .encode("int f(void) { return 0; }", 64)
                    .unwrap(),
                trainer.tokenizer.encode("x", 64).unwrap(),
            ]);
            let Inputs::Tokens(tokens) = &inputs else {
                unreachable!()
            };
            let width = tokens[0].input_ids.len();
            let recorded = Recorded::default();
            trainer.logits(&trainer.model, &inputs, &[0, 1], Some(&recorded));
            (recorded.0.into_inner().unwrap(), width)
        };
        let (hidden, heads) = (32, 4);
        let (all, w) = sites(None);
        let rows = 2 * w * hidden;
        let attention = 2 * heads * w * w;
        let first = 2 * hidden;
        assert_eq!(
            all,
            [rows, attention, rows, rows, attention, first, first, first, first],
            "embeddings; layer 0; layer 1 (on <s> after attention); the head twice"
        );
        // The last layer: its sites and the head's; the embeddings stay frozen even
        // where every layer trains.
        assert_eq!(sites(Some(1)).0, [attention, first, first, first, first]);
        assert_eq!(sites(Some(2)).0, all[1..]);
    }
}
