//! RoBERTa encoder and sequence-classification head as burn modules, and the one
//! forward pass of the encoder ([`encode`]).
//!
//! The structure follows transformers' `RobertaForSequenceClassification` one to one;
//! `crate::weights` maps the hub's tensor names onto these fields. Each operation of an
//! encoder layer runs through the execution plan's [`LayerOps`]: on burn's tensors
//! ([`EncoderLayer`]) or on the packed CPU kernels, whichever the detector chose at
//! load.

mod classifier;
mod dropout;
mod embeddings;
mod encoder;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
pub use classifier::ClassificationHead;
pub(crate) use dropout::{Dropout, DropoutMasks};
pub use embeddings::{position_ids, RobertaEmbeddings};
pub use encoder::{EncoderLayer, ProjectionLayout};
use encoder::{LayerDropout, TensorLayer, TensorRows};

use crate::call_rows::CallRows;
use crate::config::RobertaConfig;
use crate::execution::LayerOps;

/// `RobertaForSequenceClassification`: embeddings, post-LayerNorm encoder layers and
/// the classification head on the first token.
#[derive(Module, Debug)]
pub struct RobertaClassifier {
    /// Word, position and token-type embeddings.
    pub embeddings: RobertaEmbeddings,
    /// The encoder stack.
    pub layers: Vec<EncoderLayer>,
    /// Dense, tanh, projection on `<s>`.
    pub classifier: ClassificationHead,
    /// The encoder stack packed for one of this crate's CPU kernels, once
    /// `RobertaClassifier::pack` has moved `layers`' projections into it.
    #[module(skip)]
    packed: Option<PackedEncoder>,
}

/// The packed CPU encoder, shared by the model's clones.
#[cfg(cpu_kernels)]
type PackedEncoder = std::sync::Arc<crate::cpu::encoder::PackedEncoder>;
/// Without the CPU kernels there is no packed encoder.
#[cfg(not(cpu_kernels))]
type PackedEncoder = std::convert::Infallible;

impl RobertaClassifier {
    /// A model with the configuration's shapes, its weights zero until loaded, the
    /// encoder's projections held in `layout`.
    pub fn with_layout(config: &RobertaConfig, layout: ProjectionLayout, device: &Device) -> Self {
        Self {
            embeddings: RobertaEmbeddings::new(config, device),
            layers: (0..config.num_hidden_layers)
                .map(|_| EncoderLayer::new(config, layout, device))
                .collect(),
            classifier: ClassificationHead::new(config, device),
            packed: None,
        }
    }

    /// Every float parameter's module path (`layers.0.output_norm.gamma`: the names
    /// the tensor name table's `module` column gives, LayerNorms' `gamma` and `beta`
    /// for `weight` and `bias`) and element count, by parameter id.
    #[cfg_attr(not(feature = "train"), allow(dead_code))] // used by training only
    pub(crate) fn parameter_paths(&self) -> std::collections::HashMap<ParamId, (String, usize)> {
        #[derive(Default)]
        struct Paths {
            path: Vec<String>,
            found: std::collections::HashMap<ParamId, (String, usize)>,
        }
        impl ModuleVisitor for Paths {
            fn enter_module(&mut self, name: &str, _container_type: &str) {
                self.path.push(name.to_owned());
            }

            fn exit_module(&mut self, _name: &str, _container_type: &str) {
                self.path.pop();
            }

            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let len = param.lazy_shape().num_elements();
                self.found.insert(param.id, (self.path.join("."), len));
            }
        }
        let mut paths = Paths::default();
        self.visit(&mut paths);
        paths.found
    }

    /// The attention heads of each layer (`num_attention_heads`; 1 without layers).
    fn heads(&self) -> usize {
        self.layers
            .first()
            .map_or(1, |layer| layer.attention.heads())
    }

    /// How the encoder's projections hold their weights (the same in every layer).
    pub fn projection_layout(&self) -> ProjectionLayout {
        self.layers
            .first()
            .map_or(ProjectionLayout::InOut, |layer| layer.layout())
    }

    /// Runs the encoder on this crate's CPU `kernel` from now on, the detector's
    /// plan's (see [`crate::ExecutionPlan`]), which the CPU has: the layers'
    /// projections are packed for it and their tensors released. The model must have
    /// been made with [`ProjectionLayout::OutIn`], on a CPU backend.
    #[cfg(cpu_kernels)]
    pub(crate) fn pack(&mut self, kernel: crate::cpu::Kernel) {
        let heads = self.heads();
        let layers = self.layers.iter_mut().map(EncoderLayer::take_weights);
        let encoder = crate::cpu::encoder::PackedEncoder::new(kernel, heads, layers);
        self.packed = Some(std::sync::Arc::new(encoder));
    }

    /// Logits `[inputs, num_labels]` for a model call's inputs, `lengths[i]` tokens
    /// for input `i`, in one of two layouts:
    ///
    /// - **end to end**: `input_ids` and `position_ids` are `[1, total]`, the inputs
    ///   one after another with no padding (`lengths` sum to `total`); no work is
    ///   spent on padding. The CPU backends run this way.
    /// - **padded**: they are `[inputs, width]`, input `i` in the first `lengths[i]`
    ///   columns of row `i` and padding after (ids and positions of `<pad>`, say),
    ///   which attention masks out. A call's shape is then its `[inputs, width]`
    ///   whatever its lengths, which the GPU backends need to keep the kernels they
    ///   compile to a bounded set.
    ///
    /// `layout` says which (a single input of `[1, len]` fits both: padded, it runs
    /// the padded call's kernels, which a GPU backend may then have compiled
    /// already). Attention runs within each input, so an input's result does not depend on the others beside it or on its
    /// padding. [`position_ids`] gives an input's position ids. `row_parts` splits
    /// each layer's row-wise work across threads ([`crate::Backend::row_parts`]); the
    /// result does not depend on it.
    ///
    /// # Panics
    /// When the ids' shape does not fit `layout`, an input has no tokens, or (packed
    /// CPU encoder) the call is padded.
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        position_ids: Tensor<2, Int>,
        lengths: &[usize],
        layout: InputLayout,
        row_parts: usize,
    ) -> Tensor<2> {
        let first_tokens =
            self.first_token_states(input_ids, position_ids, lengths, layout, row_parts, None);
        self.classifier.forward(first_tokens)
    }

    /// [`RobertaClassifier::forward`], and each input's token scores: the last
    /// layer's attention probabilities from the input's first token (`<s>`) to each of
    /// its tokens, averaged over heads (transformers'
    /// `attentions[-1][b, :, 0, :n].mean(0)`), one vector per input.
    pub fn forward_explained(
        &self,
        input_ids: Tensor<2, Int>,
        position_ids: Tensor<2, Int>,
        lengths: &[usize],
        layout: InputLayout,
        row_parts: usize,
    ) -> (Tensor<2>, Vec<Vec<f32>>) {
        let mut probabilities = Vec::new();
        let first_tokens = self.first_token_states(
            input_ids,
            position_ids,
            lengths,
            layout,
            row_parts,
            Some(&mut probabilities),
        );
        let logits = self.classifier.forward(first_tokens);
        let heads = self.heads();
        (logits, head_means(&probabilities, lengths, heads))
    }

    /// The encoder's last hidden state of each input's first token (`<s>`), `[1,
    /// inputs, hidden]`: what the classification head reads, with the last layer's
    /// first-row attention probabilities (head by head) into `probabilities` where
    /// asked for. Arguments as for [`RobertaClassifier::forward`].
    pub(crate) fn first_token_states(
        &self,
        input_ids: Tensor<2, Int>,
        position_ids: Tensor<2, Int>,
        lengths: &[usize],
        layout: InputLayout,
        row_parts: usize,
        probabilities: Option<&mut Vec<f32>>,
    ) -> Tensor<3> {
        let call = call_rows(input_ids.dims(), lengths, layout);
        let hidden = self.embeddings.forward(input_ids, position_ids);
        // The head reads only each input's first token, so the last layer computes
        // only those tokens' outputs (every token counting through attention).
        match &self.packed {
            #[cfg(cpu_kernels)]
            Some(encoder) => {
                assert_eq!(
                    call.padded_to, None,
                    "the packed CPU encoder takes rows end to end"
                );
                // Converted from the tensor and back once for all the layers.
                let [batch, _, width] = hidden.dims();
                let device = hidden.device();
                let rows = hidden
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .expect("f32 activations");
                let rows = encode(encoder.layers(), rows, call, true, probabilities);
                let shape = [batch, rows.len() / width, width];
                Tensor::from_data(TensorData::new(rows, shape), &device)
            }
            #[cfg(not(cpu_kernels))]
            Some(never) => match *never {},
            None => {
                let key_mask = padding_mask(call, self.heads(), &hidden.device());
                let layers: Vec<TensorLayer> = self
                    .layers
                    .iter()
                    .map(|layer| TensorLayer::new(layer, row_parts, key_mask.clone()))
                    .collect();
                encode(&layers, TensorRows::from(hidden), call, true, probabilities).into_tensor()
            }
        }
    }
}

/// Dropout probabilities of a training forward pass, and which parts train: a
/// frozen part runs as in evaluation, without dropout.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(not(feature = "train"), allow(dead_code))] // used by training only
pub(crate) struct TrainingPass {
    /// After the embeddings and each layer's output projections.
    pub(crate) hidden: f64,
    /// On the attention probabilities.
    pub(crate) attention: f64,
    /// In the classification head.
    pub(crate) classifier: f64,
    /// Whether the embeddings train (the whole model does).
    pub(crate) embeddings_train: bool,
    /// The first encoder layer that trains (the layer count: the head alone).
    pub(crate) first_trained_layer: usize,
}

impl RobertaClassifier {
    /// Logits `[inputs, num_labels]` as transformers' `model.train()` computes them,
    /// with dropout where `pass` says (its masks from `masks`), for inputs padded as
    /// in [`InputLayout::Padded`]. Dropout is drawn in the order of the pass, one
    /// site after another (the rows are not split across threads here, which would
    /// make that order vary).
    #[cfg_attr(not(feature = "train"), allow(dead_code))] // used by training only
    pub(crate) fn forward_training(
        &self,
        input_ids: Tensor<2, Int>,
        position_ids: Tensor<2, Int>,
        lengths: &[usize],
        pass: &TrainingPass,
        masks: &dyn DropoutMasks,
    ) -> Tensor<2> {
        let dropout = |p: f64| Dropout::new(p, masks);
        let call = call_rows(input_ids.dims(), lengths, InputLayout::Padded);
        let mut hidden = self.embeddings.forward(input_ids, position_ids);
        if pass.embeddings_train {
            hidden = dropout(pass.hidden).forward(hidden);
        }
        let key_mask = padding_mask(call, self.heads(), &hidden.device());
        let layers: Vec<TensorLayer> = self
            .layers
            .iter()
            .enumerate()
            .map(|(index, layer)| {
                let plain = TensorLayer::new(layer, 1, key_mask.clone());
                if index < pass.first_trained_layer {
                    return plain;
                }
                plain.with_dropout(LayerDropout {
                    hidden: dropout(pass.hidden),
                    attention: dropout(pass.attention),
                })
            })
            .collect();
        let first_tokens =
            encode(&layers, TensorRows::from(hidden), call, true, None).into_tensor();
        self.classifier
            .forward_training(first_tokens, &dropout(pass.classifier))
    }
}

/// The encoder's forward pass, transformers' `RobertaEncoder`: each post-LayerNorm
/// layer in turn on `hidden`, a model call's rows laid out as `call` says, every
/// operation through the plan's [`LayerOps`].
///
/// With `first_tokens_out`, the result is only each input's first row (one per input,
/// end to end), those rows of the full result: the last layer spends all of its work after attention on them
/// alone, as the classification head reads nothing else (every row still counts
/// through attention's keys and values).
///
/// With `first_tokens_out`, `probabilities` (where given) receives the last layer's
/// attention probabilities from each input's first row, head by head (see
/// [`LayerOps::self_attention`]); it is left empty without layers.
///
/// # Panics
/// With `first_tokens_out`, when an input has no rows.
pub(crate) fn encode<L: LayerOps>(
    layers: &[L],
    hidden: L::Rows,
    call: CallRows<'_>,
    first_tokens_out: bool,
    mut probabilities: Option<&mut Vec<f32>>,
) -> L::Rows {
    let mut a = Activations {
        hidden,
        ..Activations::default()
    };
    for (index, layer) in layers.iter().enumerate() {
        let first_only = first_tokens_out && index + 1 == layers.len();
        // RobertaAttention: self-attention, its output projection, residual, LayerNorm.
        let buffers = (&mut a.qkv, &mut a.context);
        let asked = probabilities.as_deref_mut().filter(|_| first_only);
        layer.self_attention(&a.hidden, call, first_only, buffers, asked);
        if first_only {
            // From here on every step works on each row alone: with `first_only`, on
            // the first rows, the residual's included.
            L::keep_first_rows(&mut a.hidden, call);
        }
        layer.attention_output(&a.context, &mut a.attended);
        layer.attention_norm(&mut a.attended, &a.hidden);
        // RobertaIntermediate and RobertaOutput: the GELU feed-forward block, residual,
        // LayerNorm. The layer's output goes where its input was, no longer needed.
        layer.intermediate(&a.attended, &mut a.expanded);
        layer.output(&a.expanded, &mut a.hidden);
        layer.output_norm(&mut a.hidden, &a.attended);
    }
    if first_tokens_out && layers.is_empty() {
        L::keep_first_rows(&mut a.hidden, call);
    }
    a.hidden
}

/// Each input's mean over heads of `probabilities` (`heads × len` values per input,
/// head by head, inputs laid end to end): one vector of `len` values per input. Empty
/// vectors where there are no probabilities (a model without layers).
fn head_means(probabilities: &[f32], lengths: &[usize], heads: usize) -> Vec<Vec<f32>> {
    if probabilities.is_empty() {
        return lengths.iter().map(|_| Vec::new()).collect();
    }
    crate::call_rows::spans(lengths)
        .map(|span| {
            let len = span.len();
            let mine = &probabilities[heads * span.start..][..heads * len];
            (0..len)
                .map(|j| (0..heads).map(|h| mine[h * len + j]).sum::<f32>() / heads as f32)
                .collect()
        })
        .collect()
}

/// The activations between layers and between a layer's operations, kept from layer
/// to layer: a plan on plain memory allocates each buffer, and first touches its
/// pages, once per pass rather than once per layer.
#[derive(Default)]
struct Activations<R> {
    /// A layer's input, replaced by its output.
    hidden: R,
    qkv: R,
    context: R,
    attended: R,
    expanded: R,
}

/// Each input's first token of `hidden`, laid out as `call` says: `[1, inputs,
/// hidden]`.
fn gather_first_rows(hidden: Tensor<3>, call: CallRows<'_>) -> Tensor<3> {
    let lengths = call.lengths;
    if call.padded_to.is_some() {
        let [inputs, _, width] = hidden.dims();
        return hidden.narrow(1, 0, 1).reshape([1, inputs, width]);
    }
    let starts: Vec<i64> = crate::call_rows::first_row_indices(lengths)
        .into_iter()
        .map(|row| row as i64)
        .collect();
    let device = hidden.device();
    let starts = Tensor::<1, Int>::from_data(TensorData::new(starts, [lengths.len()]), &device);
    hidden.select(1, starts)
}

/// How a model call's inputs lie in its ids (see [`RobertaClassifier::forward`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputLayout {
    /// `[1, total]`: one after another, no padding.
    EndToEnd,
    /// `[inputs, width]`: input `i` in row `i`, padding after it.
    Padded,
}

/// The rows of a call whose ids are `dims` laid out as `layout`.
///
/// # Panics
/// When the shape does not fit, or an input has no tokens.
fn call_rows(dims: [usize; 2], lengths: &[usize], layout: InputLayout) -> CallRows<'_> {
    let total: usize = lengths.iter().sum();
    match (layout, dims) {
        (InputLayout::EndToEnd, [1, seq]) if seq == total => CallRows::end_to_end(lengths),
        (InputLayout::Padded, [batch, width]) if batch == lengths.len() => {
            CallRows::padded(lengths, width)
        }
        _ => panic!(
            "input ids of shape {dims:?} for inputs of {lengths:?} tokens laid out {layout:?}: \
             expected [1, {total}] end to end or [{}, width] padded",
            lengths.len()
        ),
    }
}

/// For a padded call, which keys each query must not attend to, `[inputs, heads,
/// width, width]` (true: padding, masked); `None` end to end.
fn padding_mask(call: CallRows<'_>, heads: usize, device: &Device) -> Option<Tensor<4, Bool>> {
    let width = call.padded_to?;
    let inputs = call.lengths.len();
    let padding: Vec<bool> = call
        .lengths
        .iter()
        .flat_map(|&len| (0..width).map(move |key| key >= len))
        .collect();
    let padding = Tensor::<2, Bool>::from_data(TensorData::new(padding, [inputs, width]), device);
    // Every query row of an input masks the same keys: one row, broadcast.
    Some(
        padding
            .reshape([inputs, 1, 1, width])
            .expand([inputs, heads, width, width]),
    )
}
