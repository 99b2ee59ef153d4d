//! Lookups in the tables of values that cross a boundary (a name for `FromStr` and
//! `Display`, a one-line summary): [`Precision`](crate::Precision)'s and
//! [`Preprocessing`](crate::Preprocessing)'s, each a list of `(value, name, summary)`.

use crate::error::{Error, Result};

/// `value`'s row of `table`.
pub(crate) fn row<T: PartialEq + Copy + 'static>(
    table: &'static [(T, &'static str, &'static str)],
    value: T,
) -> &'static (T, &'static str, &'static str) {
    table
        .iter()
        .find(|(v, _, _)| *v == value)
        .expect("every variant has a row")
}

/// `s` (any case) looked up by name in `table`; the error names `argument` and lists
/// the names.
pub(crate) fn parse<T: Copy + 'static>(
    table: &'static [(T, &'static str, &'static str)],
    s: &str,
    argument: &'static str,
) -> Result<T> {
    table
        .iter()
        .find(|(_, name, _)| name.eq_ignore_ascii_case(s))
        .map(|(v, _, _)| *v)
        .ok_or_else(|| Error::InvalidArgument {
            argument,
            message: format!(
                "unknown {argument} {s:?}; expected one of {}",
                table
                    .iter()
                    .map(|(_, n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}
