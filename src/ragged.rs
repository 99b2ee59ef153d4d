//! A batch as every encoder path holds it: inputs laid end to end in one run of rows,
//! with no padding, `lengths[i]` rows for input `i`.

use std::ops::Range;

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
pub(crate) fn first_rows(lengths: &[usize]) -> Vec<usize> {
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
        assert_eq!(first_rows(&[3, 1, 2]), [0, 3, 4]);
        assert!(std::panic::catch_unwind(|| first_rows(&[1, 0])).is_err());
    }
}
