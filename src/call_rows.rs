//! How a model call's inputs lie in its rows, in one of two layouts:
//!
//! ```text
//! end to end   [1, Σ lengths, hidden]   no padding, `lengths[i]` rows for input i
//!              (the CPU backends: their products cost by the row, and any shape runs)
//! padded       [inputs, width, hidden]  input i in rows 0..lengths[i] of its slice,
//!              the rest padding that attention masks out (the GPU backends: a kernel
//!              is compiled for each shape, so calls keep to a bounded set of shapes,
//!              see `crate::detector::CallShapes`)
//! ```

use std::ops::Range;

/// A model call's inputs: their token counts, and the layout their rows take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallRows<'a> {
    /// Each input's token count.
    pub lengths: &'a [usize],
    /// `None`: end to end. `Some(width)`: padded, each input in `width` rows.
    pub padded_to: Option<usize>,
}

impl<'a> CallRows<'a> {
    /// Inputs laid end to end.
    pub fn end_to_end(lengths: &'a [usize]) -> Self {
        Self {
            lengths,
            padded_to: None,
        }
    }

    /// Inputs padded to `width` rows each.
    ///
    /// # Panics
    /// When an input has no tokens (a row with every key masked has no attention) or
    /// more than `width`.
    pub fn padded(lengths: &'a [usize], width: usize) -> Self {
        assert!(
            lengths.iter().all(|&len| (1..=width).contains(&len)),
            "inputs of {lengths:?} tokens padded to {width}: each needs 1 to {width}"
        );
        Self {
            lengths,
            padded_to: Some(width),
        }
    }
}

/// Each input's rows, in order: `0..lengths[0]`, then the next `lengths[1]`, ...
///
/// ```text
/// lengths [3, 1, 2]  ->  0..3, 3..4, 4..6
/// ```
pub(crate) fn spans(lengths: &[usize]) -> impl ExactSizeIterator<Item = Range<usize>> + '_ {
    let mut start = 0;
    lengths.iter().map(move |&len| {
        start += len;
        start - len..start
    })
}

/// Each input's first row (its `<s>` token): the rows the classification head reads.
///
/// # Panics
/// When an input has no rows, and so no first one.
pub(crate) fn first_row_indices(lengths: &[usize]) -> Vec<usize> {
    assert!(
        !lengths.contains(&0),
        "an input without tokens has no first token"
    );
    spans(lengths).map(|span| span.start).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_follow_one_another() {
        assert_eq!(spans(&[3, 1, 2]).collect::<Vec<_>>(), [0..3, 3..4, 4..6]);
        assert_eq!(spans(&[0, 2]).collect::<Vec<_>>(), [0..0, 0..2]);
        assert_eq!(first_row_indices(&[3, 1, 2]), [0, 3, 4]);
        assert!(std::panic::catch_unwind(|| first_row_indices(&[1, 0])).is_err());
    }
}
