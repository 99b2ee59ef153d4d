//! Fine-tuning through the C ABI: `icd_train`, a skin over
//! [`crate::training::Trainer`] as `icd train` runs it, less the files: the data comes
//! as arrays, each step goes to a callback that can stop the run.

use std::ffi::{c_char, c_int, c_void};

use super::boundary::{guard, optional_str_arg, path_arg, slice_arg, str_arg};
use super::errors::{icd_error, icd_status, CallError};

/// One labelled function of `icd_train`'s data.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct icd_labelled_function {
    /// The function's source (UTF-8, no NUL needed).
    pub code: *const c_char,
    /// Its length in bytes.
    pub code_len: usize,
    /// Its label: an index of the checkpoint's labels (`id2label`; 1 is insecure in
    /// the hub's checkpoint).
    pub label: u32,
}

/// One optimizer step of an `icd_train` run, as its callback receives it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct icd_training_step {
    /// The step, from 1.
    pub step: usize,
    /// Steps in the whole run.
    pub total_steps: usize,
    /// The epoch it belongs to, from 1.
    pub epoch: usize,
    /// The mean cross-entropy of its examples, before its update.
    pub loss: f64,
    /// The learning rate its update used.
    pub lr: f64,
    /// The global gradient norm, before clipping.
    pub grad_norm: f64,
}

/// Called by `icd_train` after each optimizer step, on the calling thread, with the
/// step (valid during the call) and the caller's `user_data`. Returns 0 to go on;
/// any other value stops the run (as libcurl's progress callback does), and
/// `icd_train` then returns `ICD_ERR_STOPPED`. It must not unwind (no C++ exception or
/// longjmp out of it).
pub type icd_training_callback =
    Option<unsafe extern "C" fn(step: *const icd_training_step, user_data: *mut c_void) -> c_int>;

/// Fine-tunes the checkpoint in `model_dir` on `train` and writes the result to
/// `output`, as `icd train` does: a checkpoint directory in the hub's layout
/// (`config.json`, `model.safetensors`, the tokenizer files and `training.json`),
/// written whole or not at all. `output` must not exist or be an empty directory.
///
/// `recipe`/`recipe_len`: the training recipe as JSON, the `recipe` object of a
/// `training.json` (`{"epochs": 3, "learning_rate": 2e-5, "warmup": {"ratio": 0.1}}`;
/// each field left out keeps its default: CodeXGLUE's defect-detection recipe, as the
/// README's "Fine-tuning" lists it); NULL with length 0 for every default. An unknown
/// field, a wrong type or a setting no run can use fails with
/// `ICD_ERR_INVALID_ARGUMENT`, naming the field. `backend`/`backend_len`: "flex",
/// "ndarray", "wgpu" or "cuda"; NULL with length 0, or "auto", trains on the CPU (a
/// GPU only where one is named). `validation`/`validation_len`: length 0 for none;
/// with it, the model kept is the epoch's with the best validation accuracy. Empty
/// `train`, or `train` of one label, fails with `ICD_ERR_INVALID_ARGUMENT`, as does a
/// label outside the checkpoint's, naming its row (counted from 1: `train[0]` is row
/// 1).
///
/// `on_step` (NULL for none) is called after each step with `user_data`; a nonzero
/// return stops the run after that step with `ICD_ERR_STOPPED` and nothing written
/// (on the run's last step it comes too late, and the run ends normally). A loss that
/// is not finite fails with `ICD_ERR_INFERENCE`, naming the step. A build without the
/// cargo feature `train` fails with `ICD_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `model_dir`, `backend`, `recipe` and `output` must each be NULL or point to their
/// length's readable bytes; `train` NULL or `train_len` valid
/// `icd_labelled_function`s, each `code` NULL (with length 0) or `code_len` readable
/// bytes, and likewise `validation`; all of them unchanged during the call. `on_step`
/// NULL or a function that does not unwind; `error_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_train(
    model_dir: *const c_char,
    model_dir_len: usize,
    backend: *const c_char,
    backend_len: usize,
    recipe: *const c_char,
    recipe_len: usize,
    train: *const icd_labelled_function,
    train_len: usize,
    validation: *const icd_labelled_function,
    validation_len: usize,
    output: *const c_char,
    output_len: usize,
    on_step: icd_training_callback,
    user_data: *mut c_void,
    error_out: *mut *mut icd_error,
) -> icd_status {
    let body = || -> Result<(), CallError> {
        // Refused before the data is read.
        if !cfg!(feature = "train") {
            return Err(CallError {
                status: icd_status::ICD_ERR_INVALID_ARGUMENT,
                message: "this build has no training (cargo feature `train`)".into(),
            });
        }
        // SAFETY: each NULL or its length's readable bytes (the contract).
        let model_dir = unsafe { path_arg(model_dir, model_dir_len, "model_dir") }?;
        // SAFETY: as above.
        let output = unsafe { path_arg(output, output_len, "output") }?;
        // SAFETY: as above.
        let backend = match unsafe { optional_str_arg(backend, backend_len, "backend") }? {
            Some(name) => name.parse()?,
            None => crate::Backend::Auto,
        };
        // SAFETY: as above.
        let recipe = unsafe { optional_str_arg(recipe, recipe_len, "recipe") }?;
        // SAFETY: NULL or `train_len` valid values, their codes readable (the contract).
        let train = unsafe { labelled(train, train_len, "train") }?;
        let validation = match validation_len {
            0 => None,
            // SAFETY: as above.
            _ => Some(unsafe { labelled(validation, validation_len, "validation") }?),
        };
        run(
            &model_dir,
            backend,
            recipe,
            train,
            validation,
            &output,
            &mut |step| match on_step {
                Some(callback) => {
                    // SAFETY: the step outlives the call; the callback does not unwind
                    // and takes the caller's own `user_data` (the contract).
                    let answer = unsafe { callback(step, user_data) };
                    answer == 0
                }
                None => true,
            },
        )
    };
    // SAFETY: `error_out` is NULL or writable (the contract).
    unsafe { guard(error_out, body) }
}

/// A function's code and label, read from an `icd_labelled_function`.
type Labelled = (String, usize);

/// `len` labelled functions at `functions`, each code checked as UTF-8, naming
/// `argument[i].code`.
///
/// # Safety
/// `functions` NULL or `len` valid `icd_labelled_function`s, each code NULL (with
/// length 0) or its length's readable bytes.
unsafe fn labelled(
    functions: *const icd_labelled_function,
    len: usize,
    argument: &str,
) -> Result<Vec<Labelled>, CallError> {
    // SAFETY: the contract, passed on.
    let functions = unsafe { slice_arg(functions, len, argument) }?;
    functions
        .iter()
        .enumerate()
        .map(|(i, f)| {
            // SAFETY: the contract, passed on.
            let code = unsafe { str_arg(f.code, f.code_len, &format!("{argument}[{i}].code")) }?;
            Ok((code.to_owned(), f.label as usize))
        })
        .collect()
}

#[cfg(feature = "train")]
fn run(
    model_dir: &std::path::Path,
    backend: crate::Backend,
    recipe: Option<&str>,
    train: Vec<Labelled>,
    validation: Option<Vec<Labelled>>,
    output: &std::path::Path,
    on_step: &mut dyn FnMut(&icd_training_step) -> bool,
) -> Result<(), CallError> {
    use crate::training::{check_output, LabelledFunction, Trainer, TrainingEvent, TrainingRecipe};
    let recipe = match recipe {
        Some(json) => TrainingRecipe::from_json(json)?,
        None => TrainingRecipe::default(),
    };
    // Refused before the model loads or a step runs, not after the run.
    check_output(output)?;
    let data = |rows: Vec<Labelled>| -> Vec<LabelledFunction> {
        rows.into_iter()
            .map(|(code, label)| LabelledFunction { code, label })
            .collect()
    };
    let mut trainer = Trainer::new(model_dir, recipe, backend)?;
    let stop = trainer.stop_handle();
    let mut total_steps = 0;
    let validation = validation.map(data);
    let trained = trainer.train(
        &data(train),
        validation.as_deref(),
        &mut |event| match event {
            TrainingEvent::Started {
                total_steps: total, ..
            } => total_steps = total,
            TrainingEvent::Step(record) => {
                let step = icd_training_step {
                    step: record.step,
                    total_steps,
                    epoch: record.epoch,
                    loss: record.loss,
                    lr: record.lr,
                    grad_norm: record.grad_norm,
                };
                if !on_step(&step) {
                    stop.stop();
                }
            }
            _ => {}
        },
    )?;
    trained.save(output)?;
    Ok(())
}

#[cfg(not(feature = "train"))]
fn run(
    _: &std::path::Path,
    _: crate::Backend,
    _: Option<&str>,
    _: Vec<Labelled>,
    _: Option<Vec<Labelled>>,
    _: &std::path::Path,
    _: &mut dyn FnMut(&icd_training_step) -> bool,
) -> Result<(), CallError> {
    unreachable!("icd_train refuses a build without training first")
}
