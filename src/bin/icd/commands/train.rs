//! `icd train`: fine-tunes the checkpoint on labelled CodeXGLUE jsonl and writes the
//! result as a checkpoint in the hub's layout, with a progress bar on a terminal and,
//! with `--log`, one JSON line per optimizer step.

use std::io::{IsTerminal, Write};
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use insecure_code_detector::evaluation::label_range;
use insecure_code_detector::files::same_file;
use insecure_code_detector::training::{
    check_output, remove_state, ClassWeight, LabelledFunction, Trainer, TrainingEvent,
    TrainingRecipe, Warmup,
};
use insecure_code_detector::{Backend, Precision, Preprocessing};

use crate::codexglue::read_jsonl;
use crate::detector::detector_builder;
use crate::flags::{ClassWeightArg, ModelArgs, TrainArgs};
use crate::settings::Settings;
use crate::Failure;

pub fn run(model: &ModelArgs, args: &TrainArgs) -> Result<(), Failure> {
    if model.precision.is_some_and(|p| p != Precision::F32) {
        return Err(Failure(
            "--precision: training runs in f32; leave it out".into(),
        ));
    }
    if model.calibration.is_some() {
        return Err(Failure(
            "--calibration: a fine-tuned model needs a calibration of its own; leave it out and run `icd calibrate` on the result".into(),
        ));
    }
    // Refused before the model loads or a step runs, not after the run.
    check_output(&args.output)?;
    if let Some(log) = &args.log {
        // A log inside the output would leave it not empty when the checkpoint comes.
        if absolute(log).starts_with(absolute(&args.output)) {
            return Err(Failure(format!(
                "--log {}: inside --output {}, which must be empty until the checkpoint is written",
                log.display(),
                args.output.display()
            )));
        }
    }
    let (builder, _) = detector_builder(model, &Settings::default())?;
    if let Some(log) = &args.log {
        // The log is written over: never one of the run's inputs.
        let mut inputs = vec![args.data.clone()];
        inputs.extend(args.validation.clone());
        inputs.extend(builder.checkpoint_files()?);
        if let Some(input) = inputs.iter().find(|input| same_file(log, input)) {
            return Err(Failure(format!(
                "--log {}: it is the input {}, which the log would overwrite",
                log.display(),
                input.display()
            )));
        }
    }
    let backend = match &model.backend {
        Some(name) => name.parse::<Backend>()?,
        None => Backend::Auto,
    };
    let recipe = TrainingRecipe {
        epochs: args.epochs,
        batch_size: model.batch_size.unwrap_or(32),
        gradient_accumulation: args.gradient_accumulation,
        learning_rate: args.lr,
        weight_decay: args.weight_decay,
        warmup: match (args.warmup_steps, args.warmup_ratio) {
            (_, Some(ratio)) => Warmup::Ratio(ratio),
            (steps, None) => Warmup::Steps(steps.unwrap_or(0)),
        },
        max_grad_norm: (args.max_grad_norm != 0.0).then_some(args.max_grad_norm),
        dropout: args.dropout,
        seed: args.seed,
        shuffle: !args.no_shuffle,
        class_weight: match args.class_weight {
            Some(ClassWeightArg::Balanced) => ClassWeight::Balanced,
            None => ClassWeight::Uniform,
        },
        train_layers: args.train_layers,
        max_tokens: args.max_tokens,
        preprocessing: if model.collapse_whitespace {
            Preprocessing::CollapseWhitespace
        } else {
            Preprocessing::Raw
        },
        ..TrainingRecipe::default()
    };
    let state = match &args.resume {
        Some(dir) => {
            if !dir.join("state.json").is_file() {
                return Err(Failure(format!(
                    "--resume {}: holds no run's state (state.json)",
                    dir.display()
                )));
            }
            dir.clone()
        }
        None => {
            let state = state_dir(&args.output);
            if state.join("state.json").exists() {
                return Err(Failure(format!(
                    "{} holds the state of a run that stopped: continue it with --resume {0}, or remove it",
                    state.display()
                )));
            }
            if state.exists() {
                return Err(Failure(format!(
                    "{} is there but holds no finished epoch (no state.json): remove it to start over",
                    state.display()
                )));
            }
            // Made and removed now, so that a name or place it cannot have fails before
            // training rather than after its first epoch.
            std::fs::create_dir(&state)
                .and_then(|()| std::fs::remove_dir(&state))
                .map_err(|e| {
                    Failure(format!(
                        "{}: {e} (the run's state goes there)",
                        state.display()
                    ))
                })?;
            state
        }
    };
    // The state directory is removed at the end: nothing of the run's may be in it.
    let inside = [
        ("--output", Some(&args.output)),
        ("--log", args.log.as_ref()),
        ("DATA", Some(&args.data)),
        ("--validation", args.validation.as_ref()),
    ];
    for (name, path) in inside {
        if let Some(path) = path.filter(|p| absolute(p).starts_with(absolute(&state))) {
            return Err(Failure(format!(
                "{name} {}: inside the run's state directory {}, which is removed when the run ends",
                path.display(),
                state.display()
            )));
        }
    }
    let mut trainer = Trainer::new(builder.model_dir(), recipe, backend)?;
    let labels = trainer.labels().len();
    let train = read_labelled(&args.data, labels)?;
    let validation = args
        .validation
        .as_deref()
        .map(|path| read_labelled(path, labels))
        .transpose()?;
    // A continued run's steps follow those its log already holds.
    let mut log = match &args.log {
        Some(path) => {
            let mut options = std::fs::OpenOptions::new();
            match args.resume {
                Some(_) => options.append(true).create(true),
                None => options.write(true).truncate(true).create(true),
            };
            let file = options
                .open(path)
                .map_err(|e| Failure(format!("--log {}: {e}", path.display())))?;
            Some(std::io::BufWriter::new(file))
        }
        None => None,
    };
    let mut progress = Progress::new();
    let mut log_error = None;
    let trained = trainer.train_resumable(&train, validation.as_deref(), &state, &mut |event| {
        if let (TrainingEvent::Step(step), Some(log)) = (&event, log.as_mut()) {
            let line = serde_json::json!({
                "step": step.step,
                "epoch": step.epoch,
                "loss": step.loss,
                "lr": step.lr,
                "grad_norm": step.grad_norm,
            });
            if let Err(e) = writeln!(log, "{line}").and_then(|()| log.flush()) {
                log_error.get_or_insert(e);
            }
        }
        progress.show(&event);
    })?;
    progress.finish();
    if let (Some(e), Some(path)) = (log_error, &args.log) {
        return Err(Failure(format!("--log {}: {e}", path.display())));
    }
    trained.save(&args.output)?;
    remove_state(&state).map_err(|e| {
        Failure(format!(
            "{}: {e} (the checkpoint is written)",
            state.display()
        ))
    })?;
    println!(
        "wrote {} (epoch {} of {})",
        args.output.display(),
        trained.best_epoch(),
        trained.epochs().len()
    );
    Ok(())
}

/// `path` made absolute (as it is, where it cannot be), to compare where paths lie.
fn absolute(path: &Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Where a run writing `output` keeps its state after each epoch: `OUTPUT.state`.
fn state_dir(output: &Path) -> std::path::PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    output.with_file_name(format!("{name}.state"))
}

/// The rows of a CodeXGLUE jsonl file as labelled functions, each `target` checked
/// against the checkpoint's labels, naming the line.
fn read_labelled(path: &Path, labels: usize) -> Result<Vec<LabelledFunction>, Failure> {
    let rows = read_jsonl(path)?;
    if rows.is_empty() {
        return Err(Failure(format!(
            "{}: no rows: training needs labelled functions",
            path.display()
        )));
    }
    rows.into_iter()
        .map(|row| {
            let label = row
                .target
                .as_u64()
                .and_then(|t| usize::try_from(t).ok())
                .filter(|&t| t < labels)
                .ok_or_else(|| {
                    Failure(format!(
                        "{}:{}: `target` is {}, expected {}, the checkpoint's labels",
                        path.display(),
                        row.line,
                        row.target,
                        label_range(labels)
                    ))
                })?;
            Ok(LabelledFunction {
                code: row.func,
                label,
            })
        })
        .collect()
}

/// The run's progress on stderr: a bar on a terminal, a line per epoch elsewhere.
struct Progress {
    bar: Option<ProgressBar>,
    started: std::time::Instant,
    examples: usize,
}

impl Progress {
    fn new() -> Self {
        Self {
            bar: None,
            started: std::time::Instant::now(),
            examples: 0,
        }
    }

    fn show(&mut self, event: &TrainingEvent<'_>) {
        match event {
            TrainingEvent::Started {
                total_steps,
                steps_done,
                ..
            } => {
                if std::io::stderr().is_terminal() {
                    let bar = ProgressBar::new(*total_steps as u64);
                    bar.set_position(*steps_done as u64);
                    bar.set_style(
                        ProgressStyle::with_template("{bar:30} {pos}/{len} steps {msg}")
                            .expect("a valid template"),
                    );
                    self.bar = Some(bar);
                }
                self.started = std::time::Instant::now();
            }
            TrainingEvent::Step(step) => {
                self.examples += step.examples;
                if let Some(bar) = &self.bar {
                    let rate =
                        self.examples as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
                    bar.set_message(format!(
                        "epoch {} loss {:.4} {rate:.1} functions/s",
                        step.epoch, step.loss
                    ));
                    bar.inc(1);
                }
            }
            TrainingEvent::Epoch(epoch) => {
                let validation = match (epoch.validation_loss, epoch.validation_accuracy) {
                    (Some(loss), Some(accuracy)) => {
                        format!(", validation loss {loss:.4} accuracy {accuracy:.4}")
                    }
                    _ => String::new(),
                };
                let line = format!(
                    "epoch {}: train loss {:.4}{validation} ({:.1} s)",
                    epoch.epoch, epoch.train_loss, epoch.seconds
                );
                match &self.bar {
                    Some(bar) => bar.println(line),
                    None => eprintln!("icd: {line}"),
                }
            }
            _ => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
