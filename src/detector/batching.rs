//! How a batch is cut into model calls, and how the inputs of one call are laid end to
//! end.

use crate::model::position_ids;
use crate::tokenizer::TokenizedInput;

/// Inputs tokenized ahead of the model at once, at most, in a batch call: bounds
/// memory for huge batches while leaving enough to sort by length.
pub(crate) const TOKENIZE_WINDOW_BATCHES: usize = 16;

/// One model call's inputs laid end to end, with no padding: their token ids, their
/// position ids (`pad_token_id` is the padding id the positions count from), and each
/// input's token count.
pub(crate) fn end_to_end(
    inputs: &[&TokenizedInput],
    pad_token_id: usize,
) -> (Vec<i64>, Vec<i64>, Vec<usize>) {
    let lengths = inputs.iter().map(|i| i.input_ids.len()).collect();
    let ids = inputs
        .iter()
        .flat_map(|i| i.input_ids.iter().map(|&id| i64::from(id)))
        .collect();
    let positions = inputs
        .iter()
        .flat_map(|i| position_ids(&i.input_ids, pad_token_id))
        .collect();
    (ids, positions, lengths)
}

/// One model call's inputs padded to `width` tokens each and joined by dummy inputs
/// up to `count` (see [`CallShapes`]): their token ids and position ids, `count ×
/// width` of each row by row, and each input's token count (a dummy's is 1, so that
/// attention has a token to attend to). Padding takes `<pad>`'s id and position
/// (`pad_token_id`), as transformers pads.
pub(crate) fn padded(
    inputs: &[&TokenizedInput],
    width: usize,
    count: usize,
    pad_token_id: usize,
) -> (Vec<i64>, Vec<i64>, Vec<usize>) {
    let pad = pad_token_id as i64;
    let (mut ids, mut positions) = (vec![pad; count * width], vec![pad; count * width]);
    let mut lengths = vec![1; count];
    for (i, input) in inputs.iter().enumerate() {
        let len = input.input_ids.len();
        let row = i * width;
        for (slot, &id) in ids[row..row + len].iter_mut().zip(&input.input_ids) {
            *slot = i64::from(id);
        }
        positions[row..row + len].copy_from_slice(&position_ids(&input.input_ids, pad_token_id));
        lengths[i] = len;
    }
    (ids, positions, lengths)
}

/// The shapes a detector's model calls take on a GPU backend, a bounded set: each
/// call's inputs are padded to one of [`widths`](Self::widths) tokens and their count
/// to one of [`input_counts`](Self::input_counts) for that width. A GPU backend
/// compiles its kernels for each new shape, so calls of unbounded shapes compile at
/// almost every call of a scan; these are all a detector ever compiles for.
///
/// Widths: 16, 32, 64, 128, then every 128 up to the token limit, which is one of
/// them (7 for CodeBERT's 512). A call is padded to at most twice its longest input
/// (or 16 tokens) up to 128 tokens, where calls are cheap, and by at most 127 tokens
/// beyond (a third of the call at 385 tokens). Counts, for each width: the powers of
/// two below the most inputs a call of that width holds (the batch size, and no more
/// than `call_tokens` padded tokens: [`crate::Backend::call_token_budget`]), and that
/// most (1, 2, 4, 8 for a batch size of 8). Sorted by length, only the last call of
/// each width in a batch is short, and dummy inputs fill at most half of it.
///
/// ```
/// use insecure_code_detector::CallShapes;
/// let shapes = CallShapes::new(512, 8, 16_384);
/// assert_eq!(shapes.widths(), [16, 32, 64, 128, 256, 384, 512]);
/// assert_eq!(shapes.input_counts(512), [1, 2, 4, 8]);
/// assert_eq!(shapes.len(), 28);
/// assert_eq!((shapes.width_for(100), shapes.count_for(3, 128)), (128, 4));
/// // A batch of 64 holds at most 32 inputs of 512 tokens in 16,384.
/// assert_eq!(CallShapes::new(512, 64, 16_384).input_counts(512), [1, 2, 4, 8, 16, 32]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallShapes {
    widths: Vec<usize>,
    batch_size: usize,
    call_tokens: usize,
}

impl CallShapes {
    /// Token limits above this are taken as this: beyond any checkpoint's positions.
    pub const MAX_TOKENS: usize = 1 << 16;

    /// The shapes for inputs of at most `max_tokens` tokens (at most
    /// [`MAX_TOKENS`](Self::MAX_TOKENS)), at most `batch_size` inputs and
    /// `call_tokens` padded tokens per call (a call holds at least one input).
    pub fn new(max_tokens: usize, batch_size: usize, call_tokens: usize) -> Self {
        let max_tokens = max_tokens.clamp(1, Self::MAX_TOKENS);
        let steps = [16, 32, 64].into_iter().chain((128..).step_by(128));
        let mut widths: Vec<usize> = steps.take_while(|&w| w < max_tokens).collect();
        widths.push(max_tokens);
        Self {
            widths,
            batch_size: batch_size.max(1),
            call_tokens,
        }
    }

    /// The token widths calls are padded to, ascending; the last is the token limit.
    pub fn widths(&self) -> &[usize] {
        &self.widths
    }

    /// The input counts calls of `width` tokens are padded to, ascending.
    pub fn input_counts(&self, width: usize) -> Vec<usize> {
        let most = self.batch_size.min(self.call_tokens / width.max(1)).max(1);
        let mut counts: Vec<usize> = std::iter::successors(Some(1usize), |c| c.checked_mul(2))
            .take_while(|&c| c < most)
            .collect();
        counts.push(most);
        counts
    }

    /// The width a call whose longest input has `tokens` tokens is padded to: the
    /// least width at least `tokens` (the last where none is).
    pub fn width_for(&self, tokens: usize) -> usize {
        least_at_least(&self.widths, tokens)
    }

    /// The count a call of `inputs` inputs of `width` tokens is padded to: the least
    /// of [`input_counts`](Self::input_counts) at least `inputs` (the last where none
    /// is).
    pub fn count_for(&self, inputs: usize, width: usize) -> usize {
        least_at_least(&self.input_counts(width), inputs)
    }

    /// The number of shapes.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there are no shapes (never: there is at least one of each).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every shape as `(inputs, tokens)`, narrowest first.
    pub fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.widths
            .iter()
            .flat_map(|&w| self.input_counts(w).into_iter().map(move |c| (c, w)))
    }
}

/// The least of `ascending` (never empty) at least `n`, else its last.
fn least_at_least(ascending: &[usize], n: usize) -> usize {
    let last = *ascending.last().expect("at least one value");
    ascending.iter().copied().find(|&v| v >= n).unwrap_or(last)
}

/// Where each window starts, in content tokens, for `tokens` content tokens cut into
/// windows of `width` tokens `stride` apart, the last one ending at the last token.
pub(crate) fn window_starts(tokens: usize, width: usize, stride: usize) -> Vec<usize> {
    let mut starts: Vec<usize> = (0..tokens.saturating_sub(width)).step_by(stride).collect();
    starts.push(tokens.saturating_sub(width));
    starts
}

/// `order` cut into consecutive model calls of at most `batch_size` inputs and
/// `token_budget` tokens (an input longer than that runs alone), each of inputs of one
/// `group`; `tokens(i)` is input `i`'s token count and `group(i)` its group (on GPU
/// backends the width it is padded to, so that no input is padded past its own).
pub(crate) fn model_calls(
    order: &[usize],
    tokens: impl Fn(usize) -> usize,
    group: impl Fn(usize) -> usize,
    batch_size: usize,
    token_budget: usize,
) -> Vec<&[usize]> {
    let mut calls = Vec::new();
    let (mut start, mut call_tokens) = (0, 0);
    for (position, &input) in order.iter().enumerate() {
        let n = tokens(input);
        let members = position - start;
        let new_group = members > 0 && group(input) != group(order[start]);
        if members > 0 && (members == batch_size || call_tokens + n > token_budget || new_group) {
            calls.push(&order[start..position]);
            (start, call_tokens) = (position, 0);
        }
        call_tokens += n;
    }
    if start < order.len() {
        calls.push(&order[start..]);
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_start_stride_apart_and_the_last_ends_at_the_last_token() {
        assert_eq!(window_starts(10, 4, 3), [0, 3, 6]);
        assert_eq!(window_starts(11, 4, 3), [0, 3, 6, 7]);
        assert_eq!(window_starts(3, 4, 3), [0]);
        assert_eq!(window_starts(0, 4, 1), [0]);
    }

    #[test]
    fn model_calls_hold_batch_size_inputs_and_token_budget_tokens() {
        let tokens = [100, 200, 300, 600, 10, 10, 10, 10];
        let order: Vec<usize> = (0..tokens.len()).collect();
        let calls =
            |batch_size, budget| model_calls(&order, |i| tokens[i], |_| 0, batch_size, budget);
        // 512 tokens: 100 + 200 fit, 300 starts a call, 600 runs alone, then the rest.
        assert_eq!(calls(8, 512), [&[0, 1][..], &[2], &[3], &[4, 5, 6, 7]]);
        // The batch size cuts too.
        assert_eq!(calls(3, 512), [&[0, 1][..], &[2], &[3], &[4, 5, 6], &[7]]);
        // No budget (the GPU backends): the batch size alone.
        assert_eq!(calls(8, usize::MAX), [&order[..]]);
        assert_eq!(calls(3, usize::MAX), [&[0, 1, 2][..], &[3, 4, 5], &[6, 7]]);
        assert!(model_calls(&[], |_| 1, |_| 0, 8, 512).is_empty());
        // Groups cut too: 100 and 200 apart, the 10s together.
        let width = |i: usize| CallShapes::new(512, 8, 16_384).width_for(tokens[i]);
        let grouped = model_calls(&order, |i| tokens[i], width, 8, usize::MAX);
        assert_eq!(grouped, [&[0][..], &[1], &[2], &[3], &[4, 5, 6, 7]]);
    }

    #[test]
    fn call_shapes_are_bounded_and_hold_every_call() {
        let shapes = CallShapes::new(512, 8, 16_384);
        assert_eq!(shapes.iter().count(), shapes.len());
        for tokens in 1..=512 {
            let width = shapes.width_for(tokens);
            assert!(width >= tokens && shapes.widths().contains(&width));
            // Never more than twice the tokens, never more than 127 past them beyond 128.
            assert!(width <= 2 * tokens.max(8) && (tokens <= 128 || width - tokens < 128));
        }
        for inputs in 1..=8 {
            let count = shapes.count_for(inputs, 512);
            assert!(count >= inputs && count < 2 * inputs);
        }
        // Odd limits and batch sizes are shapes of their own.
        let odd = CallShapes::new(100, 12, 16_384);
        assert_eq!(odd.widths(), [16, 32, 64, 100]);
        assert_eq!(odd.input_counts(100), [1, 2, 4, 8, 12]);
        assert_eq!(
            CallShapes::new(640, 1, 16_384).widths(),
            [16, 32, 64, 128, 256, 384, 512, 640]
        );
        assert_eq!(CallShapes::new(2, 1, 16_384).widths(), [2]);
        assert_eq!(CallShapes::new(2, 1, 16_384).len(), 1);
        // The token budget bounds the counts: at most 1,024 inputs of 16 tokens, 32 of
        // 512, whatever the batch size; and a call holds one input whatever its width.
        let big = CallShapes::new(512, 4096, 16_384);
        assert_eq!(big.input_counts(16).last(), Some(&1024));
        assert_eq!(big.input_counts(512).last(), Some(&32));
        assert!(big.iter().all(|(count, width)| count * width <= 16_384));
        assert_eq!(CallShapes::new(512, 8, 100).input_counts(512), [1]);
        // A huge limit is clamped rather than walked.
        assert_eq!(
            CallShapes::new(usize::MAX, 1, 16_384).widths().last(),
            Some(&CallShapes::MAX_TOKENS)
        );
    }

    #[test]
    fn padded_inputs_keep_their_ids_and_positions_and_dummies_have_one_token() {
        let input = |ids: &[u32]| TokenizedInput {
            input_ids: ids.to_vec(),
            untruncated_length: Some(ids.len()),
        };
        let (a, b) = (input(&[0, 7, 2]), input(&[0, 2]));
        let (ids, positions, lengths) = padded(&[&a, &b], 4, 4, 1);
        assert_eq!(ids, [0, 7, 2, 1, 0, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
        assert_eq!(positions, [2, 3, 4, 1, 2, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
        assert_eq!(lengths, [3, 2, 1, 1]);
    }
}
