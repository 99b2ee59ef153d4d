//! A classifier with codebert-base's shapes and deterministic random weights, in the
//! hub's layout, with the real RoBERTa vocabulary: what the benchmarks time when no
//! checkpoint is named (`benches/detector.rs`, `examples/random_checkpoint.rs`).

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

/// codebert-base's configuration with two labels, as the hub checkpoint has it.
const CONFIG: &str = r#"{
  "architectures": ["RobertaForSequenceClassification"],
  "model_type": "roberta",
  "vocab_size": 50265, "hidden_size": 768, "num_hidden_layers": 12,
  "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
  "max_position_embeddings": 514, "type_vocab_size": 1, "layer_norm_eps": 1e-05,
  "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2
}"#;

/// The hub's tensor names and shapes for `CONFIG`.
fn tensor_shapes() -> Vec<(String, Vec<usize>)> {
    let (h, i, v, p) = (768, 3072, 50265, 514);
    let mut shapes = vec![
        (
            "roberta.embeddings.word_embeddings.weight".to_owned(),
            vec![v, h],
        ),
        (
            "roberta.embeddings.position_embeddings.weight".to_owned(),
            vec![p, h],
        ),
        (
            "roberta.embeddings.token_type_embeddings.weight".to_owned(),
            vec![1, h],
        ),
        ("roberta.embeddings.LayerNorm.weight".to_owned(), vec![h]),
        ("roberta.embeddings.LayerNorm.bias".to_owned(), vec![h]),
        ("classifier.dense.weight".to_owned(), vec![h, h]),
        ("classifier.dense.bias".to_owned(), vec![h]),
        ("classifier.out_proj.weight".to_owned(), vec![2, h]),
        ("classifier.out_proj.bias".to_owned(), vec![2]),
    ];
    for layer in 0..12 {
        let prefix = format!("roberta.encoder.layer.{layer}");
        for (name, shape) in [
            ("attention.self.query", vec![h, h]),
            ("attention.self.key", vec![h, h]),
            ("attention.self.value", vec![h, h]),
            ("attention.output.dense", vec![h, h]),
            ("intermediate.dense", vec![i, h]),
            ("output.dense", vec![h, i]),
        ] {
            shapes.push((format!("{prefix}.{name}.bias"), vec![shape[0]]));
            shapes.push((format!("{prefix}.{name}.weight"), shape));
        }
        for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
            shapes.push((format!("{prefix}.{norm}.weight"), vec![h]));
            shapes.push((format!("{prefix}.{norm}.bias"), vec![h]));
        }
    }
    shapes
}

/// Writes the checkpoint into `dir` (config, `model.safetensors`, and `vocab.json` and
/// `merges.txt` from `tokenizer`), unless it is there already.
pub fn write(dir: &Path, tokenizer: &Path) {
    if dir.join("model.safetensors").is_file() {
        return;
    }
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), CONFIG).unwrap();
    for name in ["vocab.json", "merges.txt"] {
        std::fs::copy(tokenizer.join(name), dir.join(name)).unwrap();
    }
    // Deterministic values in [-0.05, 0.05) (as random initialization would give), LayerNorm
    // weights near 1 so that activations keep their scale through the layers.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 * 0.1 - 0.05
    };
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = tensor_shapes()
        .into_iter()
        .map(|(name, shape)| {
            let count: usize = shape.iter().product();
            let offset = if name.ends_with("LayerNorm.weight") {
                1.0
            } else {
                0.0
            };
            let bytes = (0..count)
                .flat_map(|_| (offset + next()).to_le_bytes())
                .collect();
            (name, shape, bytes)
        })
        .collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            (
                name.clone(),
                TensorView::new(Dtype::F32, shape.clone(), bytes).unwrap(),
            )
        })
        .collect();
    let partial = dir.join("model.safetensors.partial");
    safetensors::serialize_to_file(
        views,
        Some(HashMap::from([("format".into(), "pt".into())])),
        &partial,
    )
    .unwrap();
    std::fs::rename(&partial, dir.join("model.safetensors")).unwrap();
}
