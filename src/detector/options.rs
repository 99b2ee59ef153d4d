//! [`Preprocessing`], an option that crosses every boundary (Rust, the C header, `icd`,
//! the Python package), with its one table: its name (what `FromStr`, `Display`, `icd`
//! and the Python package take) and its number in the C API (`icd_preprocessing` in
//! the header, checked against it by `ffi`'s tests and the Python package's header
//! test). [`Precision`](crate::Precision), the other, is in `precision`.

use crate::error::{Error, Result};
use crate::names::{parse, row};

/// How source text is prepared before tokenizing.
///
/// The discriminant is the number the C API gives it (`icd_preprocessing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u32)]
pub enum Preprocessing {
    /// The text as given, as the model card feeds it to the tokenizer.
    #[default]
    Raw = 0,
    /// Whitespace runs collapsed to one space and the ends trimmed, as CodeXGLUE's
    /// defect-detection scripts do (`' '.join(code.split())`).
    CollapseWhitespace = 1,
}

/// Every preprocessing with its name and its one-line description: the one table.
const PREPROCESSINGS: [(Preprocessing, &str, &str); 2] = [
    (
        Preprocessing::Raw,
        "raw",
        "The text as given (the model card's usage)",
    ),
    (
        Preprocessing::CollapseWhitespace,
        "collapse_whitespace",
        "Whitespace runs collapsed to one space, as CodeXGLUE does (' '.join(code.split()))",
    ),
];

impl Preprocessing {
    /// Every preprocessing, in the order of their C numbers.
    pub const ALL: [Preprocessing; 2] = [Preprocessing::Raw, Preprocessing::CollapseWhitespace];

    /// The name `FromStr` and `Display` use: `raw` or `collapse_whitespace`.
    ///
    /// ```
    /// use insecure_code_detector::Preprocessing;
    /// assert_eq!(Preprocessing::CollapseWhitespace.name(), "collapse_whitespace");
    /// assert_eq!("raw".parse::<Preprocessing>()?, Preprocessing::Raw);
    /// # Ok::<(), insecure_code_detector::Error>(())
    /// ```
    pub fn name(self) -> &'static str {
        row(&PREPROCESSINGS, self).1
    }

    /// What it does, in one line (for `--help` texts and the C header).
    pub fn summary(self) -> &'static str {
        row(&PREPROCESSINGS, self).2
    }

    /// Its number in the C API (`icd_options.preprocessing`, `icd_preprocessing`).
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The preprocessing with C number `code`, if any.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.code() == code)
    }

    /// The text the tokenizer sees.
    pub fn apply<'a>(self, code: &'a str) -> std::borrow::Cow<'a, str> {
        match self {
            Preprocessing::Raw => code.into(),
            Preprocessing::CollapseWhitespace => words(code).collect::<Vec<_>>().join(" ").into(),
        }
    }

    /// The bytes of `code` that `range` of the preprocessed text [`apply`](Self::apply)
    /// gives came from. With collapsed whitespace, each word of the preprocessed text
    /// is a word of `code` copied as it is; a range that starts on a joining space
    /// starts at the next word, and one that ends on it ends after the previous word.
    pub fn source_range(self, code: &str, range: std::ops::Range<usize>) -> std::ops::Range<usize> {
        if self == Preprocessing::Raw {
            return range;
        }
        // Each word of `code`: its offset in `code`, and its text.
        let words: Vec<(usize, &str)> = words(code)
            .map(|w| (w.as_ptr() as usize - code.as_ptr() as usize, w))
            .collect();
        // Where each word starts in the preprocessed text (words joined by one space).
        let mut starts = Vec::with_capacity(words.len());
        let mut at = 0;
        for (_, w) in &words {
            starts.push(at);
            at += w.len() + 1;
        }
        // Preprocessed byte `o`: `Ok(source offset)` inside a word, `Err(i)` on the
        // space after word `i`.
        let locate = |o: usize| -> std::result::Result<usize, usize> {
            let i = starts.partition_point(|&s| s <= o).max(1) - 1;
            let (raw, w) = words[i];
            match o - starts[i] < w.len() {
                true => Ok(raw + o - starts[i]),
                false => Err(i),
            }
        };
        if words.is_empty() {
            return 0..0;
        }
        let start = locate(range.start)
            .unwrap_or_else(|i| words.get(i + 1).map_or(code.len(), |(raw, _)| *raw));
        if range.end <= range.start {
            return start..start;
        }
        let end = match locate(range.end - 1) {
            Ok(raw) => raw + 1,
            Err(i) => words[i].0 + words[i].1.len(),
        };
        start..end.max(start)
    }
}

/// The words of `code` as Python's `str.split()` gives them: what collapsing
/// whitespace keeps, each a slice of `code`.
fn words(code: &str) -> impl Iterator<Item = &str> {
    code.split(is_python_whitespace).filter(|w| !w.is_empty())
}

/// Python's `str.isspace`: Unicode White_Space plus the four ASCII separators
/// U+001C..U+001F, which `str.split()` also splits on.
pub(crate) fn is_python_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

impl std::str::FromStr for Preprocessing {
    type Err = Error;

    /// Parses a [`Preprocessing::name`] (any case).
    fn from_str(s: &str) -> Result<Self> {
        parse(&PREPROCESSINGS, s, "preprocessing")
    }
}

impl std::fmt::Display for Preprocessing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preprocessing_has_one_row_and_round_trips() {
        assert_eq!(PREPROCESSINGS.len(), Preprocessing::ALL.len());
        for p in Preprocessing::ALL {
            assert_eq!(p.name().parse::<Preprocessing>().unwrap(), p);
            assert_eq!(p.to_string(), p.name());
            assert_eq!(Preprocessing::from_code(p.code()), Some(p));
        }
        // The C API's numbers are stable: they are in the header and in callers' code.
        assert_eq!(Preprocessing::CollapseWhitespace.code(), 1);
        assert_eq!(Preprocessing::from_code(2), None);
    }

    #[test]
    fn collapsed_ranges_map_back_to_the_source() {
        let code = "int  f(void)\n{\n\treturn \u{e9};\r\n}\n";
        let p = Preprocessing::CollapseWhitespace;
        let text = p.apply(code);
        assert_eq!(text, "int f(void) { return \u{e9}; }");
        // Every word, and every part of one, maps to the same bytes of the source.
        for word in text.split(' ') {
            let at = word.as_ptr() as usize - text.as_ptr() as usize;
            assert_eq!(&code[p.source_range(code, at..at + word.len())], word);
            let first = word.chars().next().unwrap().len_utf8();
            assert_eq!(&code[p.source_range(code, at..at + first)], &word[..first]);
        }
        // A range across words covers the source's whitespace between them.
        assert_eq!(&code[p.source_range(code, 0..text.len())], code.trim_end());
        // A range starting on a joining space starts at the next word; one ending on
        // it ends after the previous word.
        let space = text.find(' ').unwrap();
        assert_eq!(&code[p.source_range(code, space..space + 2)], "f");
        assert_eq!(&code[p.source_range(code, 0..space + 1)], "int");
        assert_eq!(p.source_range(code, 4..4), 5..5);
        assert_eq!(p.source_range("   ", 0..0), 0..0);
        assert_eq!(Preprocessing::Raw.source_range(code, 3..7), 3..7);
    }

    #[test]
    fn collapse_whitespace_matches_python_split_join() {
        let p = Preprocessing::CollapseWhitespace;
        assert_eq!(p.apply("  a\t\tb\r\n c \u{a0}d\u{1f}e  "), "a b c d e");
        assert_eq!(p.apply(""), "");
        assert_eq!(p.apply(" \n\t "), "");
        assert_eq!(Preprocessing::Raw.apply(" a  b "), " a  b ");
    }
}
