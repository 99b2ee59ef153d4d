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

/// Where each window starts, in content tokens, for `tokens` content tokens cut into
/// windows of `width` tokens `stride` apart, the last one ending at the last token.
pub(crate) fn window_starts(tokens: usize, width: usize, stride: usize) -> Vec<usize> {
    let mut starts: Vec<usize> = (0..tokens.saturating_sub(width)).step_by(stride).collect();
    starts.push(tokens.saturating_sub(width));
    starts
}

/// `order` cut into consecutive model calls of at most `batch_size` inputs and
/// `token_budget` tokens (an input longer than that runs alone); `tokens(i)` is input
/// `i`'s token count.
pub(crate) fn model_calls(
    order: &[usize],
    tokens: impl Fn(usize) -> usize,
    batch_size: usize,
    token_budget: usize,
) -> Vec<&[usize]> {
    let mut calls = Vec::new();
    let (mut start, mut call_tokens) = (0, 0);
    for (position, &input) in order.iter().enumerate() {
        let n = tokens(input);
        let members = position - start;
        if members > 0 && (members == batch_size || call_tokens + n > token_budget) {
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
        let calls = |batch_size, budget| model_calls(&order, |i| tokens[i], batch_size, budget);
        // 512 tokens: 100 + 200 fit, 300 starts a call, 600 runs alone, then the rest.
        assert_eq!(calls(8, 512), [&[0, 1][..], &[2], &[3], &[4, 5, 6, 7]]);
        // The batch size cuts too.
        assert_eq!(calls(3, 512), [&[0, 1][..], &[2], &[3], &[4, 5, 6], &[7]]);
        // No budget (the GPU backends): the batch size alone.
        assert_eq!(calls(8, usize::MAX), [&order[..]]);
        assert_eq!(calls(3, usize::MAX), [&[0, 1, 2][..], &[3, 4, 5], &[6, 7]]);
        assert!(model_calls(&[], |_| 1, 8, 512).is_empty());
    }
}
