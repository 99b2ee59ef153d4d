//! The checkpoint's `config.json`, read leniently and checked strictly.
//!
//! Configs in the wild are old: `pad_token_id` may be `null` or absent, `architectures`
//! may be missing and unknown keys abound. Unknown keys are ignored; every field this
//! library uses is type-checked and range-checked here, so that an absurd config is
//! refused before anything is allocated for it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Largest sizes accepted from a config. Far above any RoBERTa ever published, far
/// below what would make a bogus config allocate gigabytes before failing.
const MAX_LAYERS: usize = 128;
const MAX_HIDDEN: usize = 16_384;
/// The widest feed-forward block accepted: the longest sum any matrix product of a
/// valid config has (`execution` proves the int8 kernel's sums hold it).
pub(crate) const MAX_INTERMEDIATE: usize = 8 * MAX_HIDDEN;
const MAX_HEADS: usize = 256;
const MAX_VOCAB: usize = 4_000_000;
const MAX_POSITIONS: usize = 1_048_576;
const MAX_LABELS: usize = 100_000;
/// Two billion parameters: eight gigabytes in f32.
const MAX_PARAMETERS: usize = 2_000_000_000;

/// RoBERTa's padding id when a config leaves `pad_token_id` out or sets it to null.
pub const ROBERTA_PAD_TOKEN_ID: usize = 1;

/// The parts of a RoBERTa sequence-classification `config.json` this library uses,
/// under the hub's field names. Made only by [`RobertaConfig::from_file`] and
/// [`RobertaConfig::from_json_str`], which check every bound the model and the kernels
/// rely on.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RobertaConfig {
    /// Rows of the word-embedding matrix.
    pub vocab_size: usize,
    /// Width of every hidden state.
    pub hidden_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer; divides `hidden_size`.
    pub num_attention_heads: usize,
    /// Width of the feed-forward block.
    pub intermediate_size: usize,
    /// Feed-forward activation; only exact (erf) `"gelu"` is implemented.
    pub hidden_act: String,
    /// Rows of the position-embedding matrix (514 for RoBERTa-base: 512 tokens after
    /// the two offset rows that RoBERTa's position ids skip).
    pub max_position_embeddings: usize,
    /// Rows of the token-type embedding matrix (1 for RoBERTa).
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Id of `<pad>`; RoBERTa position ids start right after it.
    pub pad_token_id: usize,
    /// Number of classifier outputs.
    pub num_labels: usize,
    /// Label names by index, from `id2label` (`LABEL_i` where absent).
    pub id2label: Vec<String>,
    /// `problem_type` as stored, when it is.
    pub problem_type: Option<String>,
    /// Dropout after the embeddings and after each layer's two output projections
    /// (`hidden_dropout_prob`, 0.1 where absent); in training only, which checks it.
    pub hidden_dropout_prob: f64,
    /// Dropout of the attention probabilities (`attention_probs_dropout_prob`, 0.1
    /// where absent); in training only.
    pub attention_probs_dropout_prob: f64,
    /// Dropout in the classification head (`classifier_dropout`; where absent or
    /// null, transformers uses `hidden_dropout_prob`); in training only.
    pub classifier_dropout: Option<f64>,
}

/// The `problem_type` values transformers knows.
pub(crate) const PROBLEM_TYPES: [&str; 3] = [
    "regression",
    "single_label_classification",
    "multi_label_classification",
];

impl RobertaConfig {
    /// Reads and checks `config.json`.
    ///
    /// Refuses, with the field named, anything this library cannot run: another
    /// architecture, an activation other than exact GELU, sizes that do not fit
    /// together or that no real checkpoint has.
    /// The file is read as untrusted input: a regular file of at most
    /// [`crate::files::CONFIG_LIMIT`] bytes.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text =
            crate::files::read_untrusted_text(path, crate::files::CONFIG_LIMIT, "config.json")?;
        Self::from_json_str(&text, path)
    }

    /// Parses config text; `path` only names the source in errors.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let value: Value = serde_json::from_str(text).map_err(|e| Error::ConfigParse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let Value::Object(obj) = value else {
            return Err(Error::ConfigParse {
                path: path.to_path_buf(),
                message: "the top level is not a JSON object".into(),
            });
        };
        let fields = Fields {
            obj: &obj,
            path: path.to_path_buf(),
        };
        fields.check_architecture()?;

        let hidden_act = fields
            .string("hidden_act")?
            .unwrap_or_else(|| "gelu".into());
        if hidden_act != "gelu" {
            return Err(fields.unsupported(format!(
                "hidden_act is {hidden_act:?}; only exact (erf) \"gelu\" is implemented"
            )));
        }
        if let Some(kind) = fields.string("position_embedding_type")? {
            if kind != "absolute" {
                return Err(fields.unsupported(format!(
                    "position_embedding_type is {kind:?}; only \"absolute\" is implemented"
                )));
            }
        }

        let vocab_size = fields.size("vocab_size", 1, MAX_VOCAB)?.unwrap_or(50_265);
        let hidden_size = fields.size("hidden_size", 1, MAX_HIDDEN)?.unwrap_or(768);
        let num_hidden_layers = fields
            .size("num_hidden_layers", 1, MAX_LAYERS)?
            .unwrap_or(12);
        let num_attention_heads = fields
            .size("num_attention_heads", 1, MAX_HEADS)?
            .unwrap_or(12);
        let intermediate_size = fields
            .size("intermediate_size", 1, MAX_INTERMEDIATE)?
            .unwrap_or(3072);
        let max_position_embeddings = fields
            .size("max_position_embeddings", 1, MAX_POSITIONS)?
            .unwrap_or(514);
        let type_vocab_size = fields.size("type_vocab_size", 1, 1024)?.unwrap_or(1);
        let pad_token_id = fields
            .size("pad_token_id", 0, MAX_VOCAB)?
            .unwrap_or(ROBERTA_PAD_TOKEN_ID);
        let layer_norm_eps = fields.float("layer_norm_eps")?.unwrap_or(1e-5);

        if hidden_size % num_attention_heads != 0 {
            return Err(fields.value(
                "num_attention_heads",
                format!(
                    "is {num_attention_heads}, which does not divide hidden_size {hidden_size}"
                ),
            ));
        }
        if pad_token_id >= vocab_size {
            return Err(fields.value(
                "pad_token_id",
                format!("is {pad_token_id}, outside the vocabulary of {vocab_size}"),
            ));
        }
        if max_position_embeddings < pad_token_id + 3 {
            return Err(fields.value(
                "max_position_embeddings",
                format!(
                    "is {max_position_embeddings}: RoBERTa positions start at pad_token_id + 1 = {}, \
                     leaving no room for <s> and </s>",
                    pad_token_id + 1
                ),
            ));
        }
        if !(layer_norm_eps > 0.0 && layer_norm_eps < 1.0) {
            return Err(fields.value(
                "layer_norm_eps",
                format!("is {layer_norm_eps}, expected 0 < eps < 1"),
            ));
        }

        let hidden_dropout_prob = fields.float("hidden_dropout_prob")?.unwrap_or(0.1);
        let attention_probs_dropout_prob =
            fields.float("attention_probs_dropout_prob")?.unwrap_or(0.1);
        let classifier_dropout = match fields.get("classifier_dropout") {
            Some(Value::Null) | None => None,
            Some(_) => fields.float("classifier_dropout")?,
        };

        let (num_labels, id2label) = fields.labels()?;
        let problem_type = fields.string("problem_type")?;
        if let Some(kind) = &problem_type {
            if !PROBLEM_TYPES.contains(&kind.as_str()) {
                return Err(fields.value(
                    "problem_type",
                    format!("is {kind:?}, expected one of {}", PROBLEM_TYPES.join(", ")),
                ));
            }
        }

        let config = Self {
            vocab_size,
            hidden_size,
            num_hidden_layers,
            num_attention_heads,
            intermediate_size,
            hidden_act,
            max_position_embeddings,
            type_vocab_size,
            layer_norm_eps,
            pad_token_id,
            num_labels,
            id2label,
            problem_type,
            hidden_dropout_prob,
            attention_probs_dropout_prob,
            classifier_dropout,
        };
        let parameters = config.parameter_count();
        if parameters > MAX_PARAMETERS {
            return Err(fields.unsupported(format!(
                "the sizes imply {parameters} parameters, more than the {MAX_PARAMETERS} this library accepts"
            )));
        }
        Ok(config)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// The most tokens one input may have, `<s>` and `</s>` included: positions run
    /// from `pad_token_id + 1` to `max_position_embeddings - 1`.
    pub fn max_tokens(&self) -> usize {
        self.max_position_embeddings - self.pad_token_id - 1
    }

    /// Number of weights the configuration implies (checked before allocating).
    pub fn parameter_count(&self) -> usize {
        let h = self.hidden_size;
        let embeddings =
            (self.vocab_size + self.max_position_embeddings + self.type_vocab_size) * h + 2 * h;
        let layer =
            4 * (h * h + h) + 2 * h * self.intermediate_size + self.intermediate_size + h + 4 * h;
        let head = h * h + h + h * self.num_labels + self.num_labels;
        embeddings + self.num_hidden_layers * layer + head
    }
}

/// Typed, named access to the fields of a config object.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    path: PathBuf,
}

impl Fields<'_> {
    fn value(&self, field: &'static str, message: String) -> Error {
        Error::ConfigValue {
            path: self.path.clone(),
            field,
            message,
        }
    }

    fn unsupported(&self, message: String) -> Error {
        Error::UnsupportedModel {
            path: self.path.clone(),
            message,
        }
    }

    /// Present and not null.
    fn get(&self, field: &str) -> Option<&Value> {
        self.obj.get(field).filter(|v| !v.is_null())
    }

    fn size(&self, field: &'static str, min: usize, max: usize) -> Result<Option<usize>> {
        let Some(value) = self.get(field) else {
            return Ok(None);
        };
        let n = value.as_u64().ok_or_else(|| {
            self.value(
                field,
                format!("is {value}, expected a non-negative integer"),
            )
        })?;
        if n < min as u64 || n > max as u64 {
            return Err(self.value(field, format!("is {n}, expected {min}..={max}")));
        }
        Ok(Some(n as usize))
    }

    fn float(&self, field: &'static str) -> Result<Option<f64>> {
        let Some(value) = self.get(field) else {
            return Ok(None);
        };
        value
            .as_f64()
            .map(Some)
            .ok_or_else(|| self.value(field, format!("is {value}, expected a number")))
    }

    fn string(&self, field: &'static str) -> Result<Option<String>> {
        let Some(value) = self.get(field) else {
            return Ok(None);
        };
        value
            .as_str()
            .map(|s| Some(s.to_owned()))
            .ok_or_else(|| self.value(field, format!("is {value}, expected a string")))
    }

    fn check_architecture(&self) -> Result<()> {
        if let Some(model_type) = self.string("model_type")? {
            if model_type != "roberta" {
                return Err(self.unsupported(format!(
                    "model_type is {model_type:?}; only \"roberta\" is implemented"
                )));
            }
        }
        if let Some(archs) = self.get("architectures") {
            let names: Vec<&str> = archs
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !names.contains(&"RobertaForSequenceClassification") {
                return Err(self.unsupported(format!(
                    "architectures is {archs}; expected RobertaForSequenceClassification"
                )));
            }
        }
        Ok(())
    }

    /// `id2label` decides the label count when present, as in transformers; otherwise
    /// `num_labels` (or the older `_num_labels`), otherwise 2.
    fn labels(&self) -> Result<(usize, Vec<String>)> {
        if let Some(value) = self.get("id2label") {
            let map = value
                .as_object()
                .ok_or_else(|| self.value("id2label", format!("is {value}, expected an object")))?;
            if map.is_empty() || map.len() > MAX_LABELS {
                return Err(self.value(
                    "id2label",
                    format!("has {} entries, expected 1..={MAX_LABELS}", map.len()),
                ));
            }
            let mut by_index = BTreeMap::new();
            for (key, name) in map {
                let index: usize = key.parse().map_err(|_| {
                    self.value(
                        "id2label",
                        format!("has key {key:?}, expected a label index"),
                    )
                })?;
                let name = name.as_str().ok_or_else(|| {
                    self.value(
                        "id2label",
                        format!("maps {key} to {name}, expected a string"),
                    )
                })?;
                by_index.insert(index, name.to_owned());
            }
            let n = by_index.len();
            if by_index.keys().copied().ne(0..n) {
                return Err(self.value("id2label", format!("keys are not 0..{n}")));
            }
            let names: Vec<String> = by_index.into_values().collect();
            if let Some(declared) = self.size("num_labels", 1, MAX_LABELS)? {
                if declared != n {
                    return Err(self.value(
                        "num_labels",
                        format!("is {declared} but id2label has {n} entries"),
                    ));
                }
            }
            return Ok((n, names));
        }
        let n = match self.size("num_labels", 1, MAX_LABELS)? {
            Some(n) => n,
            None => self.size("_num_labels", 1, MAX_LABELS)?.unwrap_or(2),
        };
        Ok((n, (0..n).map(|i| format!("LABEL_{i}")).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RobertaConfig> {
        RobertaConfig::from_json_str(text, Path::new("config.json"))
    }

    #[test]
    fn empty_object_means_roberta_base_with_two_labels() {
        let config = parse("{}").unwrap();
        assert_eq!(config.hidden_size, 768);
        assert_eq!(config.num_labels, 2);
        assert_eq!(config.pad_token_id, 1);
        assert_eq!(config.max_tokens(), 512);
        assert_eq!(config.id2label, vec!["LABEL_0", "LABEL_1"]);
    }

    #[test]
    fn null_pad_token_means_one() {
        let config = parse(r#"{"pad_token_id": null, "unknown": [1, 2]}"#).unwrap();
        assert_eq!(config.pad_token_id, 1);
    }

    #[test]
    fn absurd_sizes_are_refused_with_the_field_named() {
        let err = parse(r#"{"num_hidden_layers": 1000000000}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("num_hidden_layers") && err.contains("1000000000"),
            "{err}"
        );
        let err = parse(r#"{"num_attention_heads": 0}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("num_attention_heads"), "{err}");
        let err = parse(r#"{"hidden_size": 100, "num_attention_heads": 12}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not divide hidden_size 100"), "{err}");
        let err = parse(r#"{"hidden_size": "big"}"#).unwrap_err().to_string();
        assert!(
            err.contains("hidden_size") && err.contains("\"big\""),
            "{err}"
        );
    }

    #[test]
    fn parameter_budget_is_enforced() {
        let err =
            parse(r#"{"vocab_size": 4000000, "hidden_size": 16384, "num_attention_heads": 16}"#)
                .unwrap_err()
                .to_string();
        assert!(err.contains("parameters"), "{err}");
    }

    #[test]
    fn other_architectures_and_activations_are_refused() {
        let err = parse(r#"{"model_type": "bert"}"#).unwrap_err().to_string();
        assert!(err.contains("model_type") && err.contains("bert"), "{err}");
        let err = parse(r#"{"architectures": ["RobertaForMaskedLM"]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("RobertaForMaskedLM"), "{err}");
        let err = parse(r#"{"hidden_act": "gelu_new"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("gelu_new"), "{err}");
    }

    #[test]
    fn not_json_is_a_parse_error_naming_the_file() {
        let err = parse("not json").unwrap_err().to_string();
        assert!(err.starts_with("invalid config.json"), "{err}");
    }

    #[test]
    fn id2label_sets_the_label_count() {
        let config = parse(r#"{"id2label": {"1": "b", "0": "a", "2": "c"}}"#).unwrap();
        assert_eq!(config.num_labels, 3);
        assert_eq!(config.id2label, vec!["a", "b", "c"]);
        let err = parse(r#"{"id2label": {"0": "a", "2": "c"}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("id2label"), "{err}");
    }
}
