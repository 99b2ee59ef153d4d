//! The options that cross every boundary (Rust, the C header, `icd`, the Python
//! package): [`Preprocessing`] and [`Precision`]. Each has one table here, with its
//! name (what `FromStr`, `Display`, `icd` and the Python package take) and its number
//! in the C API (`icd_preprocessing`, `icd_precision` in the header, checked against
//! these by `ffi`'s tests and the Python package's header test).

use burn::tensor::DType;

use crate::error::{Error, Result};

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

/// Precision of the weights and of the computation.
///
/// The discriminant is the number the C API gives it (`icd_precision`), which predates
/// `Tf32` and so does not follow the order below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u32)]
pub enum Precision {
    /// f32 throughout: the logits equal transformers' within 1e-4.
    ///
    /// On the CPU backends of a CPU with AVX2 and FMA, the encoder's projections run
    /// on this crate's f32 kernel (AVX2 or AVX-512) over weights laid out for it at
    /// load (`cpu::f32_gemm`); elsewhere on the backend's matrix product. On the
    /// `cuda` backend the weights and activations are f64: burn's CUDA matrix product
    /// runs f32 inputs as TF32 on GPUs since Ampere, too coarse for 1e-4 on a
    /// full-size model. That costs speed: on an H100 the f64 products take 2 to 16
    /// times as long, and more on GPUs with few f64 units (most consumer GPUs).
    /// [`Precision::Tf32`] is the fast mode there.
    #[default]
    F32 = 0,
    /// f32 weights and activations, whose matrix products the backend may run as
    /// TF32 (10-bit mantissas, f32 sums) on tensor cores. Opt-in: on `cuda`, burn's
    /// tensor-core products at their own speed, with logits about 2e-4 from
    /// transformers' on a full-size model (1.9e-4 on an H100); on every other backend,
    /// which has no TF32 products, exactly [`Precision::F32`].
    Tf32 = 4,
    /// bf16 matrix products. Opt-in: faster where the hardware multiplies bf16, with
    /// probabilities within about 1e-2 of f32 (tested on the fixtures).
    ///
    /// On the CPU backends on a CPU with AVX512-BF16
    /// ([`Backend::has_bf16_products`](crate::Backend::has_bf16_products)), the encoder's
    /// projections hold bf16 weights and multiply with the CPU's bf16 dot-product instruction,
    /// summing in f32; everything else (embeddings, attention, LayerNorm, GELU, the head) stays
    /// f32. Elsewhere weights and activations are burn's bf16 tensors throughout (LayerNorm
    /// statistics accumulated in f32).
    Bf16 = 1,
    /// f16 weights and activations, as [`Precision::Bf16`] with more mantissa and
    /// less range.
    F16 = 2,
    /// int8 matrix products (dynamic quantization). Opt-in, on the CPU backends of a
    /// CPU with AVX2 ([`Backend::has_int8_products`](crate::Backend::has_int8_products)); refused
    /// elsewhere. The fastest mode there, with probabilities within a few 1e-2 of f32 (tested on
    /// the fixtures).
    ///
    /// Each column of the encoder's projection weights is rounded to int8 with its
    /// own scale at load, each token's activations likewise at every product, and
    /// the products summed exactly in 32-bit integers (AVX512-VNNI's byte products
    /// where the CPU has them, else AVX2's 16-bit ones, with the same results): ONNX
    /// Runtime's `quantize_dynamic` scheme. Everything else (embeddings, attention,
    /// LayerNorm, GELU, the head) stays f32, and a token's result still does not
    /// depend on the other inputs in a batch.
    Int8 = 3,
}

/// Every precision with its name and its one-line description: the one table.
const PRECISIONS: [(Precision, &str, &str); 5] = [
    (
        Precision::F32,
        "f32",
        "f32 throughout; logits equal transformers' within 1e-4",
    ),
    (
        Precision::Tf32,
        "tf32",
        "TF32 tensor-core products on the cuda backend (logits about 2e-4 off); f32 elsewhere",
    ),
    (
        Precision::Bf16,
        "bf16",
        "bf16 matrix products, faster on CPUs with AVX512-BF16; probabilities within about 1e-2 of f32",
    ),
    (
        Precision::F16,
        "f16",
        "f16 weights and activations; probabilities within about 1e-2 of f32",
    ),
    (
        Precision::Int8,
        "int8",
        "int8 matrix products on CPU backends with AVX2, the fastest mode there; probabilities within a few 1e-2 of f32",
    ),
];

impl Precision {
    /// Every precision, in the order of [`Precision`]'s variants.
    pub const ALL: [Precision; 5] = [
        Precision::F32,
        Precision::Tf32,
        Precision::Bf16,
        Precision::F16,
        Precision::Int8,
    ];

    /// The name `FromStr`, `Display`, `icd --precision` and the Python package use:
    /// `f32`, `tf32`, `bf16`, `f16` or `int8`.
    ///
    /// ```
    /// use insecure_code_detector::Precision;
    /// assert_eq!(Precision::Int8.name(), "int8");
    /// assert_eq!("BF16".parse::<Precision>()?, Precision::Bf16);
    /// assert_eq!(Precision::from_code(Precision::Tf32.code()), Some(Precision::Tf32));
    /// # Ok::<(), insecure_code_detector::Error>(())
    /// ```
    pub fn name(self) -> &'static str {
        row(&PRECISIONS, self).1
    }

    /// What it does, in one line (for `--help` texts and the C header).
    pub fn summary(self) -> &'static str {
        row(&PRECISIONS, self).2
    }

    /// Its number in the C API (`icd_options.precision`, `icd_precision`).
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The precision with C number `code`, if any.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.code() == code)
    }

    /// The burn dtype of the weights as loaded and of the activations between the
    /// matrix products (f32 for int8, whose products quantize on the fly). On the
    /// `cuda` backend, `F32` loads and computes in f64 instead (see [`Precision::F32`]).
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 | Precision::Tf32 | Precision::Int8 => DType::F32,
            Precision::Bf16 => DType::BF16,
            Precision::F16 => DType::F16,
        }
    }
}

/// `value`'s row of `table`.
fn row<T: PartialEq + Copy + 'static>(
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
fn parse<T: Copy + 'static>(
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

impl std::str::FromStr for Precision {
    type Err = Error;

    /// Parses a [`Precision::name`] (any case).
    fn from_str(s: &str) -> Result<Self> {
        parse(&PRECISIONS, s, "precision")
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
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
    fn every_variant_has_one_row_and_round_trips() {
        assert_eq!(PRECISIONS.len(), Precision::ALL.len());
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>().unwrap(), p);
            assert_eq!(p.to_string(), p.name());
            assert_eq!(Precision::from_code(p.code()), Some(p));
            assert_eq!(PRECISIONS.iter().filter(|r| r.0 == p).count(), 1);
        }
        assert_eq!(PREPROCESSINGS.len(), Preprocessing::ALL.len());
        for p in Preprocessing::ALL {
            assert_eq!(p.name().parse::<Preprocessing>().unwrap(), p);
            assert_eq!(p.to_string(), p.name());
            assert_eq!(Preprocessing::from_code(p.code()), Some(p));
        }
        // The C API's numbers are stable: they are in the header and in callers' code.
        let codes: Vec<(&str, u32)> = Precision::ALL
            .iter()
            .map(|p| (p.name(), p.code()))
            .collect();
        assert_eq!(
            codes,
            [
                ("f32", 0),
                ("tf32", 4),
                ("bf16", 1),
                ("f16", 2),
                ("int8", 3)
            ]
        );
        assert_eq!(Preprocessing::CollapseWhitespace.code(), 1);
        assert_eq!(Precision::from_code(5), None);
        assert_eq!(Preprocessing::from_code(2), None);
        let error = "fp8".parse::<Precision>().unwrap_err().to_string();
        assert!(error.contains("f32, tf32, bf16, f16, int8"), "{error}");
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
