use burn::module::Module;
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::gelu;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Device, Tensor};

use super::dropout::Dropout;
use crate::call_rows::CallRows;
use crate::config::RobertaConfig;
#[cfg(cpu_kernels)]
use crate::cpu::encoder::{LayerWeights, NormParameters, Projection};
use crate::execution::LayerOps;

pub(crate) fn linear(d_input: usize, d_output: usize, device: &Device) -> Linear {
    LinearConfig::new(d_input, d_output)
        .with_initializer(Initializer::Zeros)
        .init(device)
}

/// How the encoder's projections hold their weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectionLayout {
    /// `[in, out]`, as burn's `Linear::forward` multiplies them.
    InOut,
    /// `[out, in]`, as the checkpoint stores them: loaded without a transpose, for
    /// `RobertaClassifier::pack` to lay out for a CPU kernel. `forward` cannot run
    /// until then.
    OutIn,
}

/// A projection from `d_input` to `d_output` whose weight is held in `layout`.
fn projection(
    d_input: usize,
    d_output: usize,
    layout: ProjectionLayout,
    device: &Device,
) -> Linear {
    match layout {
        ProjectionLayout::InOut => linear(d_input, d_output, device),
        ProjectionLayout::OutIn => {
            // The swapped config gives the weight its [out, in] shape and the bias the
            // wrong length, which is set right here.
            let mut swapped = linear(d_output, d_input, device);
            swapped.bias = Some(burn::module::Param::from_tensor(Tensor::zeros(
                [d_output],
                device,
            )));
            swapped
        }
    }
}

/// Multi-head self-attention and its output projection (applied by [`EncoderLayer`]
/// together with the rest of its row-wise work).
#[derive(Module, Debug)]
pub struct SelfAttention {
    /// `attention.self.query`, `.key` and `.value` side by side (`[hidden, 3 * hidden]`):
    /// one matrix product for all three, joined at load by `crate::weights`.
    pub query_key_value: Linear,
    /// `attention.output.dense`.
    pub output: Linear,
    heads: usize,
}

impl SelfAttention {
    fn new(config: &RobertaConfig, layout: ProjectionLayout, device: &Device) -> Self {
        let h = config.hidden_size;
        Self {
            query_key_value: projection(h, 3 * h, layout, device),
            output: projection(h, h, layout, device),
            heads: config.num_attention_heads,
        }
    }

    /// The number of attention heads (`num_attention_heads`).
    pub(crate) fn heads(&self) -> usize {
        self.heads
    }

    /// Attention context `[1, total, hidden]` (before the output projection) from the
    /// query, key and value projections `[1, total, 3 * hidden]` of inputs laid end to
    /// end, `lengths` tokens each: each input attends only to its own tokens.
    fn context(&self, qkv: Tensor<3>, lengths: &[usize]) -> Tensor<3> {
        let [_, _, width3] = qkv.dims();
        let width = width3 / 3;
        let heads = self.heads;
        let mut contexts = Vec::with_capacity(lengths.len());
        for span in crate::call_rows::spans(lengths) {
            let len = span.len();
            let part = self.split_heads(&qkv, span);
            let q = part.clone().narrow(1, 0, heads);
            let k = part.clone().narrow(1, heads, heads);
            let v = part.narrow(1, 2 * heads, heads);
            // softmax(q·kᵀ / sqrt(head_dim)) · v. burn's fused op keeps the scores in a
            // per-thread scratch block; spelled as matmul, softmax, matmul it allocates
            // [heads, len, len] twice per layer, and at 512 tokens those fresh pages
            // cost more than the faster softmax saves.
            let context = attention(q, k, v, None, None, AttentionModuleOptions::default());
            contexts.push(context.swap_dims(1, 2).reshape([1, len, width]));
        }
        if contexts.len() == 1 {
            contexts.pop().expect("one context")
        } else {
            Tensor::cat(contexts, 1)
        }
    }

    /// One input's rows `span` of the projections `qkv` (`[1, total, 3 * hidden]`) split
    /// into heads, `[1, 3 * heads, len, head_dim]`: query heads, then key heads, then
    /// value heads.
    fn split_heads(&self, qkv: &Tensor<3>, span: std::ops::Range<usize>) -> Tensor<4> {
        let [_, total, width3] = qkv.dims();
        let (heads, len) = (self.heads, span.len());
        let part = if len == total {
            qkv.clone()
        } else {
            qkv.clone().narrow(1, span.start, len)
        };
        part.reshape([1, len, 3 * heads, width3 / 3 / heads])
            .swap_dims(1, 2)
    }

    /// Attention context `[inputs, width, hidden]` (before the output projection)
    /// from the projections `[inputs, width, 3 * hidden]` of a padded call: all
    /// inputs in one batched attention, `padding` (`[inputs, heads, width, width]`,
    /// true at a padding key) keeping each query to its input's own tokens.
    fn padded_context(
        &self,
        qkv: Tensor<3>,
        padding: Tensor<4, Bool>,
        dropout: Option<&Dropout<'_>>,
    ) -> Tensor<3> {
        let [inputs, width, width3] = qkv.dims();
        let heads = self.heads;
        let parts = Self::padded_heads(qkv, heads);
        let q = parts.clone().narrow(1, 0, heads);
        let k = parts.clone().narrow(1, heads, heads);
        let v = parts.narrow(1, 2 * heads, heads);
        let context = match dropout {
            None => attention(
                q,
                k,
                v,
                Some(padding),
                None,
                AttentionModuleOptions::default(),
            ),
            // Training with attention dropout: the probabilities themselves are
            // dropped, which the fused op does not offer.
            Some(dropout) => {
                let head_dim = width3 / 3 / heads;
                let scores = q.matmul(k.swap_dims(2, 3)) / (head_dim as f64).sqrt();
                let scores = scores.mask_fill(padding, f64::NEG_INFINITY);
                let probabilities = burn::tensor::activation::softmax(scores, 3);
                dropout.forward(probabilities).matmul(v)
            }
        };
        context.swap_dims(1, 2).reshape([inputs, width, width3 / 3])
    }

    /// The projections of a padded call, `[inputs, width, 3 * hidden]`, split into
    /// heads, `[inputs, 3 * heads, width, head_dim]`: query heads, then key heads,
    /// then value heads.
    fn padded_heads(qkv: Tensor<3>, heads: usize) -> Tensor<4> {
        let [inputs, width, width3] = qkv.dims();
        qkv.reshape([inputs, width, 3 * heads, width3 / 3 / heads])
            .swap_dims(1, 2)
    }

    /// Each input's attention probabilities from its first token, head by head, from
    /// the projections `qkv` of a call laid out as `call` says: `heads × len` values
    /// per input, inputs laid end to end (padding left out). `padding` is a padded
    /// call's mask (see [`SelfAttention::padded_context`]). burn's fused attention
    /// does not give its probabilities, so the one query row per head is computed
    /// again here: softmax(q₀·kᵀ / √head_dim), in f32 for the narrower dtypes.
    fn first_row_probabilities(
        &self,
        qkv: Tensor<3>,
        call: CallRows<'_>,
        padding: Option<&Tensor<4, Bool>>,
    ) -> Vec<f32> {
        let [_, _, width3] = qkv.dims();
        let heads = self.heads;
        let head_dim = width3 / 3 / heads;
        // At least f32: bf16 and f16 widened, f64 (f32's plan on cuda) kept.
        let widen = |part: Tensor<4>| match part.dtype() {
            burn::tensor::DType::F64 => part,
            _ => part.cast(burn::tensor::FloatDType::F32),
        };
        // softmax(q₀·kᵀ / √head_dim) for heads split as `split_heads` splits them.
        let probabilities_of = |part: Tensor<4>, padding: Option<Tensor<4, Bool>>| {
            let part = widen(part);
            let query = part.clone().narrow(1, 0, heads).narrow(2, 0, 1);
            let keys = part.narrow(1, heads, heads);
            let mut scores = query.matmul(keys.swap_dims(2, 3)) / (head_dim as f64).sqrt();
            if let Some(padding) = padding {
                scores = scores.mask_fill(padding.narrow(2, 0, 1), f64::NEG_INFINITY);
            }
            burn::tensor::activation::softmax(scores, 3)
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("f32 probabilities")
        };
        let lengths = call.lengths;
        let mut probabilities = Vec::with_capacity(heads * lengths.iter().sum::<usize>());
        match call.padded_to {
            None => {
                for span in crate::call_rows::spans(lengths) {
                    probabilities.extend(probabilities_of(self.split_heads(&qkv, span), None));
                }
            }
            Some(width) => {
                // One pass for the call: `[inputs, heads, 1, width]`, padding dropped.
                let padding = padding.expect("a padded call has its padding mask").clone();
                let all = probabilities_of(Self::padded_heads(qkv, heads), Some(padding));
                for (input, &len) in lengths.iter().enumerate() {
                    for head in 0..heads {
                        let row = (input * heads + head) * width;
                        probabilities.extend_from_slice(&all[row..row + len]);
                    }
                }
            }
        }
        probabilities
    }
}

/// One post-LayerNorm transformer layer: attention, then the GELU feed-forward block,
/// each added to its input and normalized.
#[derive(Module, Debug)]
pub struct EncoderLayer {
    /// Self-attention and its output projection.
    pub attention: SelfAttention,
    /// `attention.output.LayerNorm`.
    pub attention_norm: LayerNorm,
    /// `intermediate.dense`.
    pub intermediate: Linear,
    /// `output.dense`.
    pub output: Linear,
    /// `output.LayerNorm`.
    pub output_norm: LayerNorm,
    /// How the four projections' f32 weights are held.
    #[module(skip)]
    layout: ProjectionLayout,
    /// Both LayerNorms' epsilon (`layer_norm_eps`).
    #[module(skip)]
    norm_epsilon: f64,
}

impl EncoderLayer {
    pub(crate) fn new(config: &RobertaConfig, layout: ProjectionLayout, device: &Device) -> Self {
        let norm = || {
            LayerNormConfig::new(config.hidden_size)
                .with_epsilon(config.layer_norm_eps)
                .init(device)
        };
        let (h, i) = (config.hidden_size, config.intermediate_size);
        Self {
            attention: SelfAttention::new(config, layout, device),
            attention_norm: norm(),
            intermediate: projection(h, i, layout, device),
            output: projection(i, h, layout, device),
            output_norm: norm(),
            layout,
            norm_epsilon: config.layer_norm_eps,
        }
    }

    /// Moves the four projections' weights, held `[out, in]`
    /// ([`ProjectionLayout::OutIn`]), and the LayerNorms' parameters out as plain f32
    /// values for the packed CPU encoder; the projections' tensors are released.
    #[cfg(cpu_kernels)]
    pub(crate) fn take_weights(&mut self) -> LayerWeights {
        assert_eq!(
            self.layout,
            ProjectionLayout::OutIn,
            "packing reads [out, in] weights"
        );
        let take = |linear: &mut Linear| -> Projection {
            let [n, k] = linear.weight.dims();
            let device = linear.weight.device();
            // Taken out of the module (an empty tensor keeps its structure) so that this
            // is the tensor's only owner and reading it out need not copy it.
            let weight = std::mem::replace(
                &mut linear.weight,
                burn::module::Param::from_tensor(Tensor::zeros([0, 0], &device)),
            );
            let weight = weight
                .into_value()
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("f32 weights");
            let bias = linear.bias.take().map(|b| {
                b.into_value()
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .expect("f32 bias")
            });
            Projection { weight, bias, k, n }
        };
        let epsilon = self.norm_epsilon as f32;
        let norm = |norm: &LayerNorm| {
            let values = |tensor: Tensor<1>| {
                tensor
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .expect("f32 LayerNorm parameters")
            };
            let gamma = values(norm.gamma.val());
            let beta = match &norm.beta {
                Some(beta) => values(beta.val()),
                None => vec![0.0; gamma.len()],
            };
            NormParameters {
                gamma,
                beta,
                epsilon,
            }
        };
        LayerWeights {
            query_key_value: take(&mut self.attention.query_key_value),
            attention_output: take(&mut self.attention.output),
            attention_norm: norm(&self.attention_norm),
            intermediate: take(&mut self.intermediate),
            output: take(&mut self.output),
            output_norm: norm(&self.output_norm),
        }
    }

    /// How the four projections' f32 weights are held.
    pub fn layout(&self) -> ProjectionLayout {
        self.layout
    }
}

/// A model call's rows as burn tensors, `[1, rows, hidden]` together end to end or
/// `[inputs, width, hidden]` padded (see `call_rows`): the tensor plan's
/// [`LayerOps::Rows`]. Between the row-wise operations they stay in the slices those
/// run on side by side (see [`TensorLayer`]), joined only where a step needs them all
/// (attention, the first rows, the result). Empty before an operation writes them.
#[derive(Debug, Default)]
pub(crate) struct TensorRows(Vec<Tensor<3>>);

impl From<Tensor<3>> for TensorRows {
    fn from(tensor: Tensor<3>) -> Self {
        Self(vec![tensor])
    }
}

impl TensorRows {
    /// All the rows in one tensor.
    fn whole(&self) -> Tensor<3> {
        match self.0.as_slice() {
            [one] => one.clone(),
            [] => panic!("rows read before an operation wrote them"),
            parts => Tensor::cat(parts.to_vec(), 1),
        }
    }

    /// All the rows in one tensor, moved out.
    pub(crate) fn into_tensor(self) -> Tensor<3> {
        match self.0.len() {
            1 => self.0.into_iter().next().expect("one part"),
            _ => self.whole(),
        }
    }

    /// The number of rows.
    fn rows(&self) -> usize {
        self.0.iter().map(|t| t.dims()[1]).sum()
    }

    /// The rows in slices of `counts` rows each: the parts as they are where they are
    /// already so sliced, else narrowed from the whole.
    fn sliced(&self, counts: &[usize]) -> Vec<Tensor<3>> {
        let have: Vec<usize> = self.0.iter().map(|t| t.dims()[1]).collect();
        if have == counts {
            return self.0.clone();
        }
        let whole = self.whole();
        crate::call_rows::spans(counts)
            .map(|span| whole.clone().narrow(1, span.start, span.len()))
            .collect()
    }
}

/// An encoder layer on burn's tensors: the tensor plan's side of the seam. Its
/// row-wise operations run on `row_parts` slices of the rows side by side.
pub(crate) struct TensorLayer<'a> {
    layer: &'a EncoderLayer,
    row_parts: usize,
    /// A padded call's attention mask (made once for all the layers).
    padding: Option<Tensor<4, Bool>>,
    /// In training, transformers' dropout sites: after each output projection
    /// (`hidden_dropout_prob`) and on the attention probabilities.
    dropout: Option<LayerDropout<'a>>,
}

/// The dropout of a layer that trains.
#[derive(Clone, Copy)]
pub(crate) struct LayerDropout<'a> {
    /// After the attention output and the feed-forward output projections.
    pub(crate) hidden: Dropout<'a>,
    /// On the attention probabilities (padded calls only).
    pub(crate) attention: Dropout<'a>,
}

impl<'a> TensorLayer<'a> {
    /// `layer` with its row-wise work split into `row_parts` (see
    /// [`crate::Backend::row_parts`]), for a call end to end (`padding` `None`) or
    /// padded with that attention mask.
    pub(crate) fn new(
        layer: &'a EncoderLayer,
        row_parts: usize,
        padding: Option<Tensor<4, Bool>>,
    ) -> Self {
        assert!(
            layer.layout == ProjectionLayout::InOut,
            "[out, in] projections run only on the packed CPU encoder"
        );
        Self {
            layer,
            row_parts,
            padding,
            dropout: None,
        }
    }

    /// The layer as it runs in training: with `dropout` at transformers' sites.
    #[cfg_attr(not(feature = "train"), allow(dead_code))] // used by training only
    pub(crate) fn with_dropout(mut self, dropout: LayerDropout<'a>) -> Self {
        self.dropout = Some(dropout);
        self
    }

    /// `rows` through the hidden dropout, where the layer trains with one.
    fn hidden_dropout(&self, rows: Tensor<3>) -> Tensor<3> {
        match &self.dropout {
            Some(dropout) => dropout.hidden.forward(rows),
            None => rows,
        }
    }

    /// `f` on each slice of `inputs`' rows (the same slices of each), side by side:
    /// the whole when there are few rows or one part, else `row_parts` slices. A row's
    /// result does not depend on the slicing, which is the same for every operation of
    /// a layer, so the slices pass from one operation to the next without a join.
    fn row_wise<const N: usize>(
        &self,
        inputs: [&TensorRows; N],
        f: impl Fn([Tensor<3>; N]) -> Tensor<3> + Send + Sync,
    ) -> TensorRows {
        let total = inputs[0].rows();
        // A slice of a handful of tokens is not worth a thread.
        let parts = self.row_parts.min(total / 16).max(1);
        let step = total.div_ceil(parts).max(1);
        let counts: Vec<usize> = (0..total)
            .step_by(step)
            .map(|s| step.min(total - s))
            .collect();
        if counts.len() <= 1 {
            return TensorRows(vec![f(inputs.map(TensorRows::whole))]);
        }
        let sliced = inputs.map(|rows| rows.sliced(&counts));
        let slices: Vec<[Tensor<3>; N]> = (0..counts.len())
            .map(|i| std::array::from_fn(|k| sliced[k][i].clone()))
            .collect();
        #[cfg(feature = "cpu-kernels")]
        let results = {
            use rayon::prelude::*;
            slices.into_par_iter().map(&f).collect()
        };
        #[cfg(not(feature = "cpu-kernels"))]
        let results = slices.into_iter().map(&f).collect();
        TensorRows(results)
    }
}

impl LayerOps for TensorLayer<'_> {
    type Rows = TensorRows;

    fn self_attention(
        &self,
        hidden: &TensorRows,
        call: CallRows<'_>,
        first_only: bool,
        (_qkv, context): (&mut TensorRows, &mut TensorRows),
        probabilities: Option<&mut Vec<f32>>,
    ) {
        // The projection's output goes straight into attention, not kept.
        let attention = &self.layer.attention;
        let qkv = attention.query_key_value.forward(hidden.whole());
        if let Some(probabilities) = probabilities.filter(|_| first_only) {
            *probabilities =
                attention.first_row_probabilities(qkv.clone(), call, self.padding.as_ref());
        }
        let mut all = match (call.padded_to, &self.padding) {
            (None, _) => attention.context(qkv, call.lengths),
            (Some(_), Some(padding)) => {
                let dropout = self.dropout.as_ref().map(|d| &d.attention);
                attention.padded_context(qkv, padding.clone(), dropout)
            }
            (Some(_), None) => panic!("a padded call without its padding mask"),
        };
        if first_only {
            all = super::gather_first_rows(all, call);
        }
        *context = TensorRows::from(all);
    }

    fn keep_first_rows(rows: &mut TensorRows, call: CallRows<'_>) {
        *rows = TensorRows::from(super::gather_first_rows(rows.whole(), call));
    }

    fn attention_output(&self, context: &TensorRows, out: &mut TensorRows) {
        let dense = &self.layer.attention.output;
        *out = self.row_wise([context], |[c]| self.hidden_dropout(dense.forward(c)));
    }

    fn attention_norm(&self, rows: &mut TensorRows, residual: &TensorRows) {
        let norm = &self.layer.attention_norm;
        *rows = self.row_wise([rows, residual], |[a, r]| norm.forward(a + r));
    }

    fn intermediate(&self, rows: &TensorRows, out: &mut TensorRows) {
        let dense = &self.layer.intermediate;
        // Exact GELU, x·Φ(x) through erf, as transformers' "gelu".
        *out = self.row_wise([rows], |[x]| gelu(dense.forward(x)));
    }

    fn output(&self, rows: &TensorRows, out: &mut TensorRows) {
        let dense = &self.layer.output;
        *out = self.row_wise([rows], |[x]| self.hidden_dropout(dense.forward(x)));
    }

    fn output_norm(&self, rows: &mut TensorRows, residual: &TensorRows) {
        let norm = &self.layer.output_norm;
        *rows = self.row_wise([rows, residual], |[y, r]| norm.forward(y + r));
    }
}
