//! Fine-tuning against what transformers and `torch.optim.AdamW` record for the same
//! recipes (`tests/fixtures/training/reference.json`, from make_fixtures.py): each
//! step's loss, learning rate and gradient norm, the trained model's held-out logits,
//! and transformers' logits on the checkpoint `icd train` writes.

use std::path::Path;

use insecure_code_detector::training::{
    LabelledFunction, StepRecord, Trainer, TrainingEvent, TrainingRecipe, Warmup,
};
use insecure_code_detector::{Backend, Detector};
use serde_json::Value;

use crate::common::{
    copy_fixture, fixture, floats, reference_recipe as recipe, rewrite_safetensors, test_backends,
    training_rows as rows,
};

fn reference() -> Value {
    let text = std::fs::read_to_string(fixture("training/reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Trains `recipe` on the fixture's data, returning every step and the held-out logits
/// of the written checkpoint as the detector loads it.
fn train(backend: Backend, recipe: TrainingRecipe, out: &Path) -> (Vec<StepRecord>, Vec<Vec<f32>>) {
    let mut trainer = Trainer::new(&fixture("roberta-2-labels"), recipe, backend).unwrap();
    let mut steps = Vec::new();
    let trained = trainer
        .train(&rows("train.jsonl"), None, &mut |event| {
            if let TrainingEvent::Step(step) = event {
                steps.push(step.clone());
            }
        })
        .unwrap();
    trained.save(out).unwrap();
    let detector = Detector::builder(out).backend(backend).build().unwrap();
    let heldout = rows("heldout.jsonl");
    let codes: Vec<&str> = heldout.iter().map(|r| r.code.as_str()).collect();
    let logits = detector
        .predict_batch(&codes)
        .unwrap()
        .into_iter()
        .map(|p| p.logits)
        .collect();
    (steps, logits)
}

/// Loss and logits within 1e-4 of PyTorch's on the CPU backends (1e-3 on wgpu's
/// software Vulkan), the gradient norm within 1e-4 relative, the rate exact.
#[test]
fn every_step_and_the_trained_logits_match_pytorch() {
    let reference = reference();
    for backend in test_backends() {
        let tolerance = if backend == Backend::Wgpu { 1e-3 } else { 1e-4 };
        for (name, expected) in reference["recipes"].as_object().unwrap() {
            let dir = tempfile::tempdir().unwrap();
            let (steps, logits) = train(
                backend,
                recipe(&expected["recipe"]),
                &dir.path().join("out"),
            );
            let want = expected["steps"].as_array().unwrap();
            assert_eq!(steps.len(), want.len(), "{backend} {name}: step count");
            for (ours, theirs) in steps.iter().zip(want) {
                let at = format!("{backend} {name} step {}", ours.step);
                let loss = theirs["loss"].as_f64().unwrap();
                assert!(
                    (ours.loss - loss).abs() <= tolerance,
                    "{at}: loss {} vs PyTorch {loss}",
                    ours.loss
                );
                let norm = theirs["grad_norm"].as_f64().unwrap();
                assert!(
                    (ours.grad_norm - norm).abs() <= tolerance * norm,
                    "{at}: grad_norm {} vs PyTorch {norm}",
                    ours.grad_norm
                );
                let lr = theirs["lr"].as_f64().unwrap();
                assert!(
                    (ours.lr - lr).abs() <= 1e-12,
                    "{at}: lr {} vs {lr}",
                    ours.lr
                );
                assert_eq!(ours.epoch as u64, theirs["epoch"].as_u64().unwrap(), "{at}");
            }
            for (i, (ours, theirs)) in logits
                .iter()
                .zip(expected["heldout_logits"].as_array().unwrap())
                .enumerate()
            {
                let theirs = floats(theirs);
                let gap = crate::common::max_abs_diff(ours, &theirs);
                assert!(
                    gap <= tolerance as f32,
                    "{backend} {name} held-out {i}: {ours:?} vs PyTorch {theirs:?}"
                );
            }
        }
    }
}

/// transformers loads what `icd train` writes and gives the logits `icd` gives on it.
#[test]
fn transformers_gives_the_same_logits_on_the_written_checkpoint() {
    let reference = reference();
    let roundtrip = &reference["roundtrip"];
    let recipe_name = roundtrip["recipe"]
        .as_str()
        .expect("the fixture records the round trip (make_fixtures.py --icd)");
    let dir = tempfile::tempdir().unwrap();
    let (_, logits) = train(
        Backend::NdArray
            .is_compiled()
            .then_some(Backend::NdArray)
            .unwrap_or(Backend::Auto),
        recipe(&reference["recipes"][recipe_name]["recipe"]),
        &dir.path().join("out"),
    );
    for (ours, theirs) in logits
        .iter()
        .zip(roundtrip["heldout_logits"].as_array().unwrap())
    {
        crate::common::assert_logits_close(
            ours,
            &floats(theirs),
            "transformers on icd's checkpoint",
        );
    }
}

/// With shuffling and dropout, one seed gives the same weights bit for bit.
#[test]
fn two_runs_with_one_seed_write_identical_weights() {
    let mut recipe = TrainingRecipe::default();
    recipe.epochs = 1;
    recipe.batch_size = 6;
    recipe.learning_rate = 1e-3;
    recipe.dropout = Some(0.1);
    recipe.seed = 7;
    let dir = tempfile::tempdir().unwrap();
    let weights = |out: &str| {
        let path = dir.path().join(out);
        train(Backend::Auto, recipe.clone(), &path);
        std::fs::read(path.join("model.safetensors")).unwrap()
    };
    let (a, b) = (weights("a"), weights("b"));
    assert!(a == b, "two runs with seed 7 wrote different weights");
    let base = std::fs::read(fixture("roberta-2-labels/model.safetensors")).unwrap();
    assert_ne!(a, base, "training changed nothing");
}

#[test]
fn data_it_cannot_train_on_is_refused_by_row() {
    let mut trainer = Trainer::new(
        &fixture("roberta-2-labels"),
        TrainingRecipe::default(),
        Backend::Auto,
    )
    .unwrap();
    let example = |label| LabelledFunction {
        code: "int f(void) { return 0; }".into(),
        label,
    };
    let mut error = |data: &[LabelledFunction]| {
        trainer
            .train(data, None, &mut |_| {})
            .err()
            .unwrap()
            .to_string()
    };
    let message = error(&[example(0), example(1), example(2)]);
    assert!(
        message.contains("row 3") && message.contains("label 2"),
        "{message}"
    );
    let message = error(&[example(1), example(1)]);
    assert!(message.contains("one label"), "{message}");
    let message = error(&[]);
    assert!(message.contains("no examples"), "{message}");
}

#[test]
fn recipes_and_checkpoints_it_cannot_train_are_refused_by_name() {
    let mut recipe = TrainingRecipe::default();
    recipe.train_layers = Some(3);
    let message = Trainer::new(&fixture("roberta-2-labels"), recipe, Backend::Auto)
        .err()
        .unwrap()
        .to_string();
    assert!(
        message.contains("train_layers") && message.contains("2 encoder layers"),
        "{message}"
    );
    let message = Trainer::new(
        &fixture("roberta-1-label-old-config"),
        TrainingRecipe::default(),
        Backend::Auto,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(message.contains("two or more labels"), "{message}");
}

/// `icd train`: one log line per step, a checkpoint in the hub's layout with its
/// record, and nothing written when the run fails or the output is taken.
#[test]
fn icd_train_writes_a_checkpoint_and_its_log_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("trained");
    let log = dir.path().join("steps.jsonl");
    let data = fixture("training/train.jsonl");
    let model = fixture("roberta-2-labels");
    // `icd train DATA --model MODEL --output OUT` and `extra`.
    let train = |data: &Path, out: &Path, extra: &[&str]| {
        let paths = [data, model.as_path(), out].map(|p| p.to_str().unwrap().to_owned());
        std::process::Command::new(env!("CARGO_BIN_EXE_icd"))
            .args([
                "train", &paths[0], "--model", &paths[1], "--output", &paths[2],
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let run = train(
        &data,
        &out,
        &[
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--lr",
            "1e-3",
            "--validation",
            fixture("training/heldout.jsonl").to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
        ],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6, "24 examples in batches of 8, 2 epochs");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["step"], i + 1);
        for field in ["loss", "lr", "grad_norm"] {
            assert!(line[field].as_f64().is_some_and(f64::is_finite), "{line}");
        }
    }
    for file in [
        "config.json",
        "model.safetensors",
        "vocab.json",
        "merges.txt",
        "tokenizer_config.json",
        "training.json",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    assert_eq!(
        std::fs::read(out.join("config.json")).unwrap(),
        std::fs::read(model.join("config.json")).unwrap(),
        "config.json (labels included) is the base checkpoint's"
    );
    let record: Value =
        serde_json::from_slice(&std::fs::read(out.join("training.json")).unwrap()).unwrap();
    assert_eq!(record["epochs"].as_array().unwrap().len(), 2);
    assert!(record["epochs"][0]["validation_accuracy"]
        .as_f64()
        .is_some());
    assert_eq!(record["recipe"]["learning_rate"], 1e-3);
    assert_eq!(record["data"]["train_sha256"].as_str().unwrap().len(), 64);

    // The output is now taken: refused before training, nothing changed.
    let weights = std::fs::read(out.join("model.safetensors")).unwrap();
    let again = train(&data, &out, &[]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("is not empty"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        std::fs::read(out.join("model.safetensors")).unwrap(),
        weights
    );
    // The run's state is gone once its checkpoint is written.
    assert!(!dir.path().join("trained.state").exists());
    // A state directory left by a run that stopped: refused unless continued with
    // --resume, or (without state.json, no epoch finished) to be removed.
    let stopped = dir.path().join("next");
    let not_state = dir.path().join("next.state");
    std::fs::create_dir(&not_state).unwrap();
    let refused = train(&data, &stopped, &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("holds no finished epoch"), "{stderr}");
    let refused = train(&data, &stopped, &["--resume", not_state.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("holds no run's state"), "{stderr}");
    std::fs::write(not_state.join("state.json"), "{}").unwrap();
    let refused = train(&data, &stopped, &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("continue it with --resume"), "{stderr}");
    // An output inside the state directory would be removed with it: refused.
    let inner = not_state.join("final");
    let refused = train(&data, &inner, &["--resume", not_state.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("inside the run's state directory"),
        "{stderr}"
    );

    // A label the checkpoint lacks: named by file and line, nothing written.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"func\": \"int f(void);\", \"target\": 0}\n{\"func\": \"int g(void);\", \"target\": 7}\n").unwrap();
    let fresh = dir.path().join("fresh");
    let failed = train(&bad, &fresh, &[]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.jsonl:2") && stderr.contains("`target` is 7"),
        "{stderr}"
    );
    assert!(!fresh.exists());
    // A log that is one of the run's inputs would overwrite it: refused, input intact.
    let copy = dir.path().join("copy.jsonl");
    std::fs::copy(&data, &copy).unwrap();
    let before = std::fs::read(&copy).unwrap();
    let refused = train(&copy, &fresh, &["--log", copy.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("it is the input"), "{stderr}");
    assert_eq!(std::fs::read(&copy).unwrap(), before);
    // An output whose parent is missing: refused before training, nothing made.
    let orphan = dir.path().join("missing/out");
    let refused = train(&data, &orphan, &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot make a directory here"), "{stderr}");
    assert!(
        !stderr.contains("epoch 1"),
        "refused only after training: {stderr}"
    );
    assert!(!dir.path().join("missing").exists());
    // A log inside the output would fill it before the checkpoint comes: refused.
    let inside = fresh.join("steps.jsonl");
    let refused = train(&data, &fresh, &["--log", inside.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("inside --output"), "{stderr}");
    assert!(!fresh.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A loss that is not finite stops the run at its step, which the error names, and
/// nothing is written: no checkpoint, no state, no staging directory. The checkpoint's
/// head has finite weights (the loader refuses others) that overflow its logits on any
/// input: its dense layer gives tanh(10) = 1 in every unit, which its output layer
/// multiplies by 3e38 and sums.
#[test]
fn a_loss_that_overflows_is_named_by_its_step_and_nothing_is_written() {
    let checkpoint = copy_fixture("roberta-2-labels");
    rewrite_safetensors(checkpoint.path(), |tensors| {
        for (name, dtype, _, data) in tensors.iter_mut() {
            let value: f32 = match name.as_str() {
                "classifier.dense.weight" => 0.0,
                "classifier.dense.bias" => 10.0,
                "classifier.out_proj.weight" => 3e38,
                _ => continue,
            };
            assert_eq!(*dtype, safetensors::Dtype::F32);
            *data = value.to_le_bytes().repeat(data.len() / 4);
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("trained");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_icd"))
        .args(["train", fixture("training/train.jsonl").to_str().unwrap()])
        .args([
            "--model",
            checkpoint.path().to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ])
        .args(["--epochs", "2", "--batch-size", "8"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    // The loss, or else the gradient norm, of the first step.
    assert!(
        stderr.contains("at step 1 (epoch 1); nothing was written")
            && ["the loss is ", "the gradient norm is "]
                .iter()
                .any(|what| stderr.contains(what)),
        "{stderr}"
    );
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.is_empty(),
        "nothing is left where the output was to go: {left:?}"
    );
}

/// It learns: on the nginx functions labelled by a token pattern (1 where the return
/// type is `ngx_int_t`, 42% of them), the fixture model fine-tuned on 400 functions
/// classifies the other 200 far above the base rate.
#[test]
fn fine_tuning_learns_a_token_pattern_of_real_code() {
    let Some(corpus) = crate::common::shared_file("c-corpus/nginx.jsonl") else {
        return;
    };
    let rows: Vec<LabelledFunction> = std::fs::read_to_string(corpus)
        .unwrap()
        .lines()
        .map(|line| {
            let row: Value = serde_json::from_str(line).unwrap();
            let code = row["func"].as_str().unwrap().to_owned();
            let signature = code.split('(').next().unwrap_or("");
            let label = usize::from(signature.contains("ngx_int_t"));
            LabelledFunction { code, label }
        })
        .collect();
    let (train, held_out) = rows.split_at(400);
    let majority = {
        let positives = held_out.iter().filter(|r| r.label == 1).count() as f64;
        positives.max(held_out.len() as f64 - positives) / held_out.len() as f64
    };
    let mut recipe = TrainingRecipe::default();
    recipe.epochs = 5;
    recipe.batch_size = 16;
    recipe.learning_rate = 3e-3;
    recipe.max_tokens = Some(64);
    let mut trainer = Trainer::new(&fixture("roberta-2-labels"), recipe, Backend::Auto).unwrap();
    let trained = trainer.train(train, Some(held_out), &mut |_| {}).unwrap();
    let accuracy: Vec<f64> = trained
        .epochs()
        .iter()
        .map(|e| e.validation_accuracy.unwrap())
        .collect();
    let best = accuracy.iter().copied().fold(0.0, f64::max);
    eprintln!("held-out accuracy by epoch {accuracy:?}; majority class {majority:.3}");
    assert!(
        best >= 0.9 && best >= majority + 0.25,
        "held-out accuracy {accuracy:?} against a majority class of {majority:.3}"
    );
    assert_eq!(
        trained.epochs()[trained.best_epoch() - 1].validation_accuracy,
        Some(best)
    );
}

/// A checkpoint is written whole or not at all: an output filled while training ran
/// is refused and left as it was, with nothing of the checkpoint beside it.
#[test]
fn an_output_filled_during_training_is_left_alone() {
    let mut recipe = TrainingRecipe::default();
    recipe.epochs = 1;
    recipe.batch_size = 12;
    let mut trainer = Trainer::new(&fixture("roberta-2-labels"), recipe, Backend::Auto).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // Empty when the run starts: accepted.
    insecure_code_detector::training::check_output(&out).unwrap();
    let trained = trainer
        .train(&rows("train.jsonl"), None, &mut |_| {})
        .unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let message = trained.save(&out).unwrap_err().to_string();
    assert!(message.contains("not empty"), "{message}");
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["out"]);
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
    // An empty directory is replaced by the checkpoint.
    std::fs::remove_file(out.join("notes.txt")).unwrap();
    trained.save(&out).unwrap();
    assert!(out.join("model.safetensors").is_file());
}

/// A run that stops after an epoch continues from the state it kept, to the weights
/// of a run that did not stop, bit for bit (shuffled, with dropout and validation).
#[test]
fn a_run_that_stopped_continues_to_the_same_weights() {
    let mut recipe = TrainingRecipe::default();
    recipe.epochs = 3;
    recipe.batch_size = 6;
    recipe.learning_rate = 1e-3;
    recipe.dropout = Some(0.1);
    recipe.warmup = Warmup::Steps(2);
    let (train, heldout) = (rows("train.jsonl"), rows("heldout.jsonl"));
    let dir = tempfile::tempdir().unwrap();
    let run = |state: &str, stop_after: Option<usize>| {
        let mut trainer =
            Trainer::new(&fixture("roberta-2-labels"), recipe.clone(), Backend::Auto).unwrap();
        let mut steps = Vec::new();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            trainer.train_resumable(
                &train,
                Some(&heldout),
                &dir.path().join(state),
                &mut |event| match event {
                    TrainingEvent::Step(step) => steps.push(step.clone()),
                    // The state after the epoch is already kept: the process dies here.
                    TrainingEvent::Epoch(epoch) if Some(epoch.epoch) == stop_after => {
                        panic!("stopped")
                    }
                    _ => {}
                },
            )
        }));
        (outcome.ok().map(Result::unwrap), steps)
    };
    let (whole, whole_steps) = run("whole", None);
    let whole = whole.unwrap();
    let (stopped, first_steps) = run("stopped", Some(1));
    assert!(stopped.is_none());
    assert!(dir.path().join("stopped/state.json").is_file());
    // A state whose files were tampered with is refused, naming the file.
    let tampered = |name: &str, change: &dyn Fn(&Path)| {
        let copy = dir.path().join(name);
        std::fs::create_dir(&copy).unwrap();
        for entry in std::fs::read_dir(dir.path().join("stopped")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
        }
        change(&copy);
        let mut trainer =
            Trainer::new(&fixture("roberta-2-labels"), recipe.clone(), Backend::Auto).unwrap();
        trainer
            .train_resumable(&train, Some(&heldout), &copy, &mut |_| {})
            .err()
            .unwrap()
            .to_string()
    };
    let message = tampered("late", &|dir| {
        let text = std::fs::read_to_string(dir.join("state.json")).unwrap();
        std::fs::write(
            dir.join("state.json"),
            text.replace("\"epoch\": 1,", "\"epoch\": 9,"),
        )
        .unwrap();
    });
    assert!(message.contains("state.json: epoch 9"), "{message}");
    let message = tampered("short", &|dir| {
        let path = dir.join("epoch-1.optimizer.safetensors");
        let bytes = std::fs::read(&path).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut tensors: Vec<(String, Vec<u8>, Vec<usize>)> = file
            .tensors()
            .into_iter()
            .map(|(name, view)| (name, view.data().to_vec(), view.shape().to_vec()))
            .collect();
        tensors.sort();
        let (_, data, shape) = &mut tensors[0];
        data.truncate(data.len() - 4);
        shape[0] -= 1;
        let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
            .iter()
            .map(|(name, data, shape)| {
                (
                    name.clone(),
                    safetensors::tensor::TensorView::new(
                        safetensors::Dtype::F32,
                        shape.clone(),
                        data,
                    )
                    .unwrap(),
                )
            })
            .collect();
        safetensors::serialize_to_file(views, None, &path).unwrap();
    });
    assert!(
        message.contains("epoch-1.optimizer.safetensors") && message.contains("expected F32"),
        "{message}"
    );

    let (continued, later_steps) = run("stopped", None);
    let continued = continued.unwrap();
    // The steps of both parts are the steps of the whole run.
    let parts: Vec<StepRecord> = first_steps.into_iter().chain(later_steps).collect();
    assert_eq!(parts, whole_steps);
    assert_eq!(continued.epochs().len(), 3);
    assert_eq!(continued.best_epoch(), whole.best_epoch());
    let weights = |trained: &insecure_code_detector::training::TrainedModel, name: &str| {
        let out = dir.path().join(name);
        trained.save(&out).unwrap();
        std::fs::read(out.join("model.safetensors")).unwrap()
    };
    assert!(
        weights(&whole, "a") == weights(&continued, "b"),
        "the continued run's weights differ"
    );

    // Another recipe is refused by the state, naming it.
    recipe.learning_rate = 2e-3;
    let mut other = Trainer::new(&fixture("roberta-2-labels"), recipe, Backend::Auto).unwrap();
    let message = other
        .train_resumable(&train, None, &dir.path().join("stopped"), &mut |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("another recipe"), "{message}");
}

/// A run its [`StopHandle`](insecure_code_detector::training::StopHandle) stops, with
/// its state kept: in an epoch, after that step; on an epoch's last step (a short one,
/// of the micro-batches left), after that epoch, whose state it keeps; a continued run
/// stopped again in its first epoch keeps the state it continued from; each names the
/// step and the epochs finished, and each state continues to the weights of a run that
/// did not stop. Asked on the run's last step, the stop comes too late and the run
/// ends normally; without a state a stop on an epoch's last step stops at once.
#[test]
fn a_run_stopped_by_its_handle_continues_to_the_same_weights() {
    let mut recipe = TrainingRecipe::default();
    recipe.epochs = 2;
    recipe.batch_size = 5;
    recipe.gradient_accumulation = 2;
    recipe.learning_rate = 1e-3;
    recipe.dropout = Some(0.1);
    let train = rows("train.jsonl");
    // 24 rows: 5 micro-batches, 3 steps an epoch, the last of one micro-batch.
    let per_epoch = train.len().div_ceil(5).div_ceil(2);
    assert_eq!(per_epoch, 3, "the fixture's rows changed");
    let dir = tempfile::tempdir().unwrap();
    // The run's weights, stopped at step `stop_at` or not at all, its state in `state`
    // (none: a run that keeps none).
    let run = |state: Option<&str>, stop_at: Option<usize>| {
        let mut trainer =
            Trainer::new(&fixture("roberta-2-labels"), recipe.clone(), Backend::Auto).unwrap();
        let handle = trainer.stop_handle();
        let mut observe = |event: TrainingEvent<'_>| {
            if let TrainingEvent::Step(step) = event {
                if Some(step.step) == stop_at {
                    handle.stop();
                }
            }
        };
        let outcome = match state {
            Some(state) => {
                trainer.train_resumable(&train, None, &dir.path().join(state), &mut observe)
            }
            None => trainer.train(&train, None, &mut observe),
        };
        outcome.map(|trained| {
            let out = dir.path().join(format!("out-{state:?}-{stop_at:?}"));
            trained.save(&out).unwrap();
            std::fs::read(out.join("model.safetensors")).unwrap()
        })
    };
    let stopped = |state: Option<&str>, stop_at: usize| match run(state, Some(stop_at)) {
        Err(insecure_code_detector::Error::Stopped { step, epochs }) => (step, epochs),
        other => panic!(
            "{state:?} stopped at {stop_at}: {:?}",
            other.map(|w| w.len())
        ),
    };
    let kept_epoch = |state: &str| {
        let path = dir.path().join(state).join("state.json");
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str::<Value>(&text).unwrap()["epoch"].as_u64()
    };
    let whole = run(Some("whole"), None).unwrap();

    assert_eq!(stopped(Some("in-epoch"), 1), (1, 0));
    assert_eq!(
        kept_epoch("in-epoch"),
        None,
        "no epoch finished, no state kept"
    );
    assert!(run(Some("in-epoch"), None).unwrap() == whole);

    assert_eq!(stopped(Some("epoch-end"), per_epoch), (per_epoch, 1));
    assert_eq!(kept_epoch("epoch-end"), Some(1));
    let again = per_epoch + 1;
    assert_eq!(stopped(Some("epoch-end"), again), (again, 1));
    assert_eq!(
        kept_epoch("epoch-end"),
        Some(1),
        "a continued run that stopped again"
    );
    assert!(run(Some("epoch-end"), None).unwrap() == whole);

    let last = run(Some("last"), Some(2 * per_epoch)).unwrap();
    assert!(last == whole, "a stop on the last step changed the weights");
    assert_eq!(stopped(None, per_epoch), (per_epoch, 0), "without a state");
}
