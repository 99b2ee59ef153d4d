//! The one table of a checkpoint's tensors: for every tensor of a
//! `RobertaForSequenceClassification`, its name in the hub checkpoint, the parameter
//! of this crate's model it fills, and its shape. Validation (which tensors must be
//! there, at which shape), renaming and the fusion of each layer's query, key and
//! value projections all read it.

use crate::config::RobertaConfig;

/// One tensor of a hub checkpoint and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HubTensor {
    /// Its name in the hub checkpoint, without the `roberta.` prefix that checkpoints
    /// saved from the classifier put before the encoder's tensors.
    pub(crate) hub: String,
    /// The model parameter it fills: this crate's module path. The three projections
    /// of a layer's self-attention share one, [`Self::fused_part`] saying where each
    /// goes.
    pub(crate) module: String,
    /// Its shape as PyTorch stores it (`[out, in]` for linear weights).
    pub(crate) shape: Vec<usize>,
    /// For a layer's query, key or value projection: its place (0, 1 or 2) along the
    /// outputs of the fused `attention.query_key_value` parameter.
    pub(crate) fused_part: Option<usize>,
}

/// Tensors a hub checkpoint may carry that the classifier does not use: the position
/// and token-type id buffers, and the pooler that `RobertaForSequenceClassification`
/// never calls. Names are without the `roberta.` prefix.
pub(crate) const KNOWN_UNUSED: &[&str] = &[
    "embeddings.position_ids",
    "embeddings.token_type_ids",
    "pooler.dense.weight",
    "pooler.dense.bias",
];

/// The prefix of the encoder layers' module paths; every linear layer under it is one
/// of a layer's four projections.
pub(crate) const LAYERS: &str = "layers.";

/// Every tensor of a `RobertaForSequenceClassification` with this configuration, in
/// the order the model holds them.
pub(crate) fn hub_tensors(config: &RobertaConfig) -> Vec<HubTensor> {
    let (h, i) = (config.hidden_size, config.intermediate_size);
    let mut out = Tensors(Vec::new());
    for (name, rows) in [
        ("word_embeddings", config.vocab_size),
        ("position_embeddings", config.max_position_embeddings),
        ("token_type_embeddings", config.type_vocab_size),
    ] {
        let name = format!("embeddings.{name}.weight");
        out.push(&name, &name, vec![rows, h], None);
    }
    out.norm("embeddings.LayerNorm", "embeddings.layer_norm", h);
    for layer in 0..config.num_hidden_layers {
        let hub = format!("encoder.layer.{layer}");
        let module = format!("{LAYERS}{layer}");
        let qkv = format!("{module}.attention.query_key_value");
        for (part, name) in ["query", "key", "value"].into_iter().enumerate() {
            out.linear(&format!("{hub}.attention.self.{name}"), &qkv, [h, h], Some(part));
        }
        out.linear(
            &format!("{hub}.attention.output.dense"),
            &format!("{module}.attention.output"),
            [h, h],
            None,
        );
        out.norm(
            &format!("{hub}.attention.output.LayerNorm"),
            &format!("{module}.attention_norm"),
            h,
        );
        out.linear(
            &format!("{hub}.intermediate.dense"),
            &format!("{module}.intermediate"),
            [i, h],
            None,
        );
        out.linear(
            &format!("{hub}.output.dense"),
            &format!("{module}.output"),
            [h, i],
            None,
        );
        out.norm(
            &format!("{hub}.output.LayerNorm"),
            &format!("{module}.output_norm"),
            h,
        );
    }
    out.linear("classifier.dense", "classifier.dense", [h, h], None);
    out.linear(
        "classifier.out_proj",
        "classifier.out_proj",
        [config.num_labels, h],
        None,
    );
    out.0
}

/// The table as it is made.
struct Tensors(Vec<HubTensor>);

impl Tensors {
    fn push(&mut self, hub: &str, module: &str, shape: Vec<usize>, fused_part: Option<usize>) {
        self.0.push(HubTensor {
            hub: hub.to_owned(),
            module: module.to_owned(),
            shape,
            fused_part,
        });
    }

    /// A linear layer's weight (`[out, in]`) and bias.
    fn linear(&mut self, hub: &str, module: &str, [d_out, d_in]: [usize; 2], part: Option<usize>) {
        self.push(&format!("{hub}.weight"), &format!("{module}.weight"), vec![d_out, d_in], part);
        self.push(&format!("{hub}.bias"), &format!("{module}.bias"), vec![d_out], part);
    }

    /// A LayerNorm's weight and bias (burn's `gamma` and `beta`, which the load's
    /// adapter maps them to).
    fn norm(&mut self, hub: &str, module: &str, width: usize) {
        self.push(&format!("{hub}.weight"), &format!("{module}.weight"), vec![width], None);
        self.push(&format!("{hub}.bias"), &format!("{module}.bias"), vec![width], None);
    }
}

/// A tensor's name as the checkpoint spells it, for messages: the encoder's with the
/// `roberta.` prefix that `RobertaForSequenceClassification` checkpoints carry.
pub(crate) fn hub_name(name: &str) -> String {
    if name.starts_with("classifier.") {
        name.to_owned()
    } else {
        format!("roberta.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RobertaConfig {
        let text = r#"{"vocab_size": 50, "hidden_size": 8, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 12,
            "max_position_embeddings": 20, "id2label": {"0": "a", "1": "b"}}"#;
        RobertaConfig::from_json_str(text, std::path::Path::new("config.json")).unwrap()
    }

    #[test]
    fn every_hub_tensor_fills_one_parameter_once() {
        let tensors = hub_tensors(&config());
        // Embeddings 5, per layer 16, the head 4.
        assert_eq!(tensors.len(), 5 + 2 * 16 + 4);
        let mut hub: Vec<&str> = tensors.iter().map(|t| t.hub.as_str()).collect();
        hub.sort_unstable();
        hub.dedup();
        assert_eq!(hub.len(), tensors.len(), "a hub name twice");
        // Each parameter once, except the fused projection's three parts.
        let mut by_module = std::collections::BTreeMap::<&str, Vec<Option<usize>>>::new();
        for t in &tensors {
            by_module.entry(&t.module).or_default().push(t.fused_part);
        }
        for (module, parts) in by_module {
            match parts.as_slice() {
                [None] => {}
                [Some(0), Some(1), Some(2)] => {
                    assert!(module.contains(".attention.query_key_value."), "{module}")
                }
                other => panic!("{module}: {other:?}"),
            }
        }
        let find = |hub: &str| tensors.iter().find(|t| t.hub == hub).unwrap();
        let value = find("encoder.layer.1.attention.self.value.weight");
        assert_eq!(value.module, "layers.1.attention.query_key_value.weight");
        assert_eq!((value.shape.as_slice(), value.fused_part), (&[8, 8][..], Some(2)));
        let output = find("encoder.layer.0.output.dense.weight");
        assert_eq!((output.module.as_str(), output.shape.as_slice()), ("layers.0.output.weight", &[8, 12][..]));
        assert_eq!(find("encoder.layer.0.output.LayerNorm.bias").module, "layers.0.output_norm.bias");
        assert_eq!(find("embeddings.LayerNorm.weight").module, "embeddings.layer_norm.weight");
        assert_eq!(find("classifier.out_proj.weight").shape, [2, 8]);
    }
}
