//! [`DetectorBuilder`]: the options of a detector, checked and resolved before its
//! checkpoint loads, and the load itself.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use super::prediction::Labels;
use super::{CallShapes, Detector, Precision, Preprocessing};
use crate::backend::Backend;
use crate::calibration::{Calibration, CalibrationFile};
use crate::config::RobertaConfig;
use crate::cpu::Kernel;
use crate::error::{Error, Result};
use crate::execution::ExecutionPlan;
use crate::model::{ProjectionLayout, RobertaClassifier};
use crate::tokenizer::CodeTokenizer;
use crate::weights::{self, WeightFile};

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
    kernel: Option<Kernel>,
    calibration: Option<Calibration>,
}

impl DetectorBuilder {
    /// The defaults for the checkpoint in `model_dir` ([`Detector::builder`]).
    pub(super) fn new(model_dir: &Path) -> Self {
        DetectorBuilder {
            model_dir: model_dir.to_path_buf(),
            backend: None,
            max_tokens: None,
            batch_size: 8,
            preprocessing: Preprocessing::Raw,
            weights: None,
            precision: Precision::F32,
            kernel: None,
            calibration: None,
        }
    }

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

    /// Run the precision's products on `kernel` instead of the one
    /// [`Kernel::select`] picks for this CPU (default: that one): to measure kernels
    /// against each other, or to keep bf16's halved weight memory with `bf16-avx512`
    /// where it is slower than f32. The build fails, naming `kernel`, on a backend
    /// other than flex or ndarray, for a kernel that does not run the precision, and
    /// on a CPU without its instructions ([`ExecutionPlan::with_kernel`]).
    pub fn kernel(mut self, kernel: Kernel) -> Self {
        self.kernel = Some(kernel);
        self
    }

    /// The plan this builder's detector runs on `backend`.
    fn plan(&self, backend: Backend) -> Result<ExecutionPlan> {
        match self.kernel {
            Some(kernel) => ExecutionPlan::with_kernel(self.precision, backend, kernel),
            None => ExecutionPlan::choose(self.precision, backend),
        }
    }

    /// Report insecure probabilities calibrated by `calibration` (default: none, the
    /// model's softmax). The logits are unchanged; a calibration whose method does not
    /// fit the checkpoint's label count fails the build.
    pub fn calibration(mut self, calibration: Option<Calibration>) -> Self {
        self.calibration = calibration;
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
            labels: Labels::new(&config.id2label).calibrated(self.calibration)?,
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

    /// Reads the calibration file at `path` and checks that it was fitted for this
    /// builder's checkpoint (its [`checkpoint_sha256`](Self::checkpoint_sha256) and
    /// labels), naming both where it was not. Apply it with
    /// [`calibration`](Self::calibration).
    pub fn read_calibration(&self, path: &Path) -> Result<CalibrationFile> {
        let file = CalibrationFile::read(path)?;
        let config = RobertaConfig::from_file(&self.model_dir.join("config.json"))?;
        file.check_checkpoint(path, &self.checkpoint_sha256()?, &config.id2label)?;
        Ok(file)
    }

    /// SHA-256 over the [`checkpoint_files`](Self::checkpoint_files), each as its
    /// file name, a newline and its contents' digest, in lower-case hex: what a
    /// calibration file names its checkpoint by. Reads every file whole.
    pub fn checkpoint_sha256(&self) -> Result<String> {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        for path in self.checkpoint_files()? {
            // Untrusted, as at load: a FIFO is refused, not waited on.
            let (mut file, _) =
                crate::files::open_untrusted(&path, crate::files::WEIGHTS_LIMIT, "checkpoint file")?;
            let mut contents = Sha256::new();
            std::io::copy(&mut file, &mut contents).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            hash.update(format!("{name}\n"));
            hash.update(contents.finalize());
        }
        Ok(hash
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }

    /// Everything besides the checkpoint's files that decides the detector's results,
    /// as one line: the backend, the execution plan it will choose on this machine, the
    /// precision, the preprocessing, the token limit and the calibration where there is
    /// one (`backend=flex plan=kernel f32-avx2 (AVX2+FMA) precision=f32
    /// preprocessing=raw max_tokens=512`). The batch size is not in it: results do not
    /// depend on it.
    pub fn settings(&self) -> Result<String> {
        let backend = match self.backend {
            // `auto` is what it resolves to here, which opening the device tells.
            Some(Backend::Auto) => Backend::Auto.open()?.0,
            Some(b) => b,
            None => Backend::default_cpu()?,
        };
        let plan = self.plan(backend)?;
        let mut settings = format!(
            "backend={} plan={plan} precision={} preprocessing={} max_tokens={}",
            backend.name(),
            self.precision.name(),
            self.preprocessing.name(),
            self.resolved_max_tokens()?
        );
        // The best window of a long function is picked by calibrated probability.
        if let Some(calibration) = &self.calibration {
            settings += &format!(" calibration={calibration}");
        }
        Ok(settings)
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
        let plan = self.plan(backend)?;
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
