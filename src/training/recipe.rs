//! The training recipe: its settings, their defaults (CodeXGLUE's defect-detection
//! recipe), and the learning-rate schedule.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::Preprocessing;

/// How many optimizer steps the learning rate warms up over.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Warmup {
    /// A number of optimizer steps.
    Steps(usize),
    /// A fraction of all the optimizer steps, rounded up (transformers' `warmup_ratio`).
    Ratio(f64),
}

/// How each class's examples weigh in the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassWeight {
    /// Every example alike (`RobertaForSequenceClassification`'s loss).
    Uniform,
    /// scikit-learn's `compute_class_weight("balanced")`: `n / (classes · count)` for
    /// each class, passed to the cross-entropy as PyTorch's `weight`.
    Balanced,
}

/// Everything that decides a training run besides the data and the checkpoint.
///
/// The defaults follow CodeXGLUE's defect-detection recipe: learning rate 2e-5,
/// batches of 32, 5 epochs, gradients clipped at norm 1.0, no weight decay, no warmup.
///
/// Its JSON form (the `recipe` object of a checkpoint's `training.json`, and what
/// [`TrainingRecipe::from_json`] reads) names each field as here; `warmup` is
/// `{"steps": N}` or `{"ratio": R}`, `class_weight` `"uniform"` or `"balanced"`,
/// `preprocessing` a [`Preprocessing`] name, and `null` is `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingRecipe {
    /// Passes over the training data.
    pub epochs: usize,
    /// Examples per micro-batch (one forward and backward pass).
    pub batch_size: usize,
    /// Micro-batches per optimizer step. A step's loss is the mean over all its
    /// examples, so that accumulation is exactly one larger batch.
    pub gradient_accumulation: usize,
    /// The peak learning rate.
    pub learning_rate: f64,
    /// AdamW's decoupled weight decay (not applied to biases and LayerNorm weights).
    pub weight_decay: f64,
    /// The linear warm-up, after which the rate decays linearly to 0 at the last step.
    pub warmup: Warmup,
    /// Gradients clipped to this global L2 norm; `None`: not clipped.
    pub max_grad_norm: Option<f64>,
    /// Dropout for the hidden states, the attention probabilities and the head;
    /// `None`: the checkpoint's `config.json`.
    pub dropout: Option<f64>,
    /// Seeds the shuffling and the dropout masks.
    pub seed: u64,
    /// Whether each epoch visits the examples in a new random order (else in order).
    pub shuffle: bool,
    /// How the classes weigh in the loss.
    pub class_weight: ClassWeight,
    /// Only the last this many encoder layers train, with the head (0: the head
    /// alone); `None`: the whole model, embeddings included.
    pub train_layers: Option<usize>,
    /// Tokens per example, `<s>` and `</s>` included (longer ones are cut); `None`:
    /// the checkpoint's limit.
    pub max_tokens: Option<usize>,
    /// What is done to each function's text before it is tokenized (as the detector
    /// that will run the model does it).
    #[serde(
        serialize_with = "preprocessing_name",
        deserialize_with = "preprocessing_by_name"
    )]
    pub preprocessing: Preprocessing,
}

/// A preprocessing by its name in the one table (`raw`, `collapse_whitespace`).
fn preprocessing_name<S: serde::Serializer>(p: &Preprocessing, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.name())
}

/// A preprocessing from its name in the one table.
fn preprocessing_by_name<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Preprocessing, D::Error> {
    let name = String::deserialize(d)?;
    name.parse().map_err(|e| match e {
        Error::InvalidArgument { message, .. } => serde::de::Error::custom(message),
        other => serde::de::Error::custom(other),
    })
}

impl Default for TrainingRecipe {
    fn default() -> Self {
        Self {
            epochs: 5,
            batch_size: 32,
            gradient_accumulation: 1,
            learning_rate: 2e-5,
            weight_decay: 0.0,
            warmup: Warmup::Steps(0),
            max_grad_norm: Some(1.0),
            dropout: None,
            seed: 42,
            shuffle: true,
            class_weight: ClassWeight::Uniform,
            train_layers: None,
            max_tokens: None,
            preprocessing: Preprocessing::Raw,
        }
    }
}

impl TrainingRecipe {
    /// The recipe in `json`, its JSON form (see [`TrainingRecipe`]): the fields it
    /// leaves out keep their defaults. Refuses an unknown field, a value of the wrong
    /// type and a setting no run can use, naming the field.
    pub fn from_json(json: &str) -> Result<Self> {
        let invalid = |message: String| Error::InvalidArgument {
            argument: "recipe",
            message,
        };
        // A sequence would fill the fields in order: only an object names them.
        if !json.trim_start().starts_with('{') {
            return Err(invalid(
                "is not a JSON object: expected one of the recipe's fields by name".into(),
            ));
        }
        let mut reader = serde_json::Deserializer::from_str(json);
        let recipe: Self = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
            invalid(match e.path().to_string().as_str() {
                "." => e.inner().to_string(),
                path => format!("{path}: {}", e.inner()),
            })
        })?;
        reader.end().map_err(|e| invalid(e.to_string()))?;
        recipe.check()?;
        Ok(recipe)
    }

    /// Refuses settings no run can use, naming the setting.
    pub fn check(&self) -> Result<()> {
        let invalid = |argument: &'static str, message: String| {
            Err(Error::InvalidArgument { argument, message })
        };
        if self.epochs == 0 || self.epochs > 10_000 {
            return invalid("epochs", format!("is {}, expected 1..=10000", self.epochs));
        }
        if self.batch_size == 0 || self.batch_size > 4096 {
            return invalid(
                "batch_size",
                format!("is {}, expected 1..=4096", self.batch_size),
            );
        }
        if self.gradient_accumulation == 0 || self.gradient_accumulation > 4096 {
            return invalid(
                "gradient_accumulation",
                format!("is {}, expected 1..=4096", self.gradient_accumulation),
            );
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0 && self.learning_rate < 1.0)
        {
            return invalid(
                "learning_rate",
                format!("is {}, expected 0 < lr < 1", self.learning_rate),
            );
        }
        if !(self.weight_decay.is_finite() && (0.0..1.0).contains(&self.weight_decay)) {
            return invalid(
                "weight_decay",
                format!("is {}, expected 0 <= wd < 1", self.weight_decay),
            );
        }
        if let Warmup::Ratio(ratio) = self.warmup {
            if !(0.0..=1.0).contains(&ratio) {
                return invalid("warmup_ratio", format!("is {ratio}, expected 0..=1"));
            }
        }
        if let Some(norm) = self.max_grad_norm {
            if !(norm.is_finite() && norm > 0.0) {
                return invalid(
                    "max_grad_norm",
                    format!("is {norm}, expected a positive number"),
                );
            }
        }
        if let Some(p) = self.dropout {
            if !(0.0..1.0).contains(&p) {
                return invalid(
                    "dropout",
                    format!("is {p}, expected a probability in [0, 1)"),
                );
            }
        }
        Ok(())
    }

    /// Warm-up steps of a run of `total_steps` optimizer steps.
    pub fn warmup_steps(&self, total_steps: usize) -> usize {
        match self.warmup {
            Warmup::Steps(steps) => steps,
            Warmup::Ratio(ratio) => (ratio * total_steps as f64).ceil() as usize,
        }
    }
}

/// The learning rate of optimizer step `step` (0-based) of `total` with `warmup`
/// warm-up steps: `get_linear_schedule_with_warmup`'s factor times `peak` (0 on the
/// first step when there is warm-up).
pub(crate) fn linear_schedule(peak: f64, step: usize, warmup: usize, total: usize) -> f64 {
    let factor = if step < warmup {
        step as f64 / warmup.max(1) as f64
    } else {
        ((total as f64 - step as f64) / (total.saturating_sub(warmup)).max(1) as f64).max(0.0)
    };
    peak * factor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_warms_up_from_zero_then_decays_to_zero() {
        let rates: Vec<f64> = (0..6).map(|s| linear_schedule(1.0, s, 2, 6)).collect();
        assert_eq!(rates, [0.0, 0.5, 1.0, 0.75, 0.5, 0.25]);
        assert_eq!(linear_schedule(2e-5, 0, 0, 4), 2e-5);
    }

    #[test]
    fn a_warmup_ratio_rounds_up() {
        let recipe = TrainingRecipe {
            warmup: Warmup::Ratio(0.1),
            ..TrainingRecipe::default()
        };
        assert_eq!(recipe.warmup_steps(25), 3);
    }

    #[test]
    fn the_json_form_is_the_one_training_json_records() {
        let recipe = TrainingRecipe {
            epochs: 2,
            warmup: Warmup::Ratio(0.25),
            max_grad_norm: None,
            class_weight: ClassWeight::Balanced,
            train_layers: Some(1),
            preprocessing: Preprocessing::CollapseWhitespace,
            ..TrainingRecipe::default()
        };
        let json = serde_json::to_string(&recipe).unwrap();
        assert_eq!(TrainingRecipe::from_json(&json).unwrap(), recipe);
        assert_eq!(
            TrainingRecipe::from_json("{}").unwrap(),
            TrainingRecipe::default()
        );
        let partial =
            TrainingRecipe::from_json(r#"{"learning_rate": 1e-4, "warmup": {"steps": 3}}"#);
        let partial = partial.unwrap();
        assert_eq!(
            (partial.learning_rate, partial.warmup),
            (1e-4, Warmup::Steps(3))
        );
        // Every f64 comes back as written (17 digits), not one step off.
        for rate in [9.476572718746067e-05, 2.0000000000000002e-05, 0.1 + 0.2] {
            let json = serde_json::json!({ "learning_rate": rate }).to_string();
            let parsed = TrainingRecipe::from_json(&json).unwrap().learning_rate;
            assert_eq!(parsed.to_bits(), f64::to_bits(rate), "{json}");
        }
    }

    #[test]
    fn json_it_cannot_run_is_refused_naming_the_field() {
        let refused = |json: &str| TrainingRecipe::from_json(json).unwrap_err().to_string();
        assert!(
            refused(r#"{"lr": 0.1}"#).contains("unknown field `lr`"),
            "{}",
            refused(r#"{"lr": 0.1}"#)
        );
        let wrong_type = refused(r#"{"epochs": "two"}"#);
        assert!(wrong_type.contains("epochs: invalid type"), "{wrong_type}");
        let warmup = refused(r#"{"warmup": {"ratio": 2.0}}"#);
        assert!(warmup.contains("warmup_ratio"), "{warmup}");
        let preprocessing = refused(r#"{"preprocessing": "squash"}"#);
        assert!(
            preprocessing.starts_with(
                "invalid argument `recipe`: preprocessing: unknown preprocessing \"squash\""
            ),
            "{preprocessing}"
        );
        let twice = refused(r#"{"epochs": 2, "epochs": 3}"#);
        assert!(twice.contains("duplicate field `epochs`"), "{twice}");
        let trailing = refused(r#"{} {}"#);
        assert!(trailing.contains("trailing characters"), "{trailing}");
        assert!(
            refused("[1]").contains("not a JSON object"),
            "{}",
            refused("[1]")
        );
    }

    #[test]
    fn settings_out_of_range_are_refused_by_name() {
        let bad = TrainingRecipe {
            learning_rate: 0.0,
            ..TrainingRecipe::default()
        };
        assert!(bad
            .check()
            .unwrap_err()
            .to_string()
            .contains("learning_rate"));
    }
}
