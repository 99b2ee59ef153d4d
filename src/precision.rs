//! [`Precision`], the option that says how the model computes, with its one table: its
//! name (what `FromStr`, `Display`, `icd` and the Python package take) and its number
//! in the C API (`icd_precision` in the header, checked against it by `ffi`'s tests and
//! the Python package's header test). A leaf: the kernels choose by it.

use crate::error::{Error, Result};
use crate::names::{parse, row};

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
    /// full-size model. That costs speed, the more so on GPUs with few f64 units
    /// (`BENCHMARKS-cuda.md` measures it); [`Precision::Tf32`] is the fast mode there.
    #[default]
    F32 = 0,
    /// f32 weights and activations, whose matrix products the backend may run as
    /// TF32 (10-bit mantissas, f32 sums) on tensor cores. Opt-in: on `cuda`, burn's
    /// tensor-core products at their own speed, with logits about 2e-4 from
    /// transformers' on a full-size model (`BENCHMARKS-cuda.md`); on every other backend,
    /// which has no TF32 products, exactly [`Precision::F32`].
    Tf32 = 4,
    /// bf16 matrix products. Opt-in: half the projection weights' memory where a bf16
    /// kernel runs, about f32's speed or faster on the CPU kernels (the f32 kernel
    /// itself where no bf16 kernel is faster), faster where the hardware multiplies
    /// bf16 faster, with probabilities within about 1e-2 of f32 (tested on the
    /// fixtures).
    ///
    /// On the CPU backends on a CPU with AVX2 and FMA
    /// ([`Backend::has_bf16_products`](crate::Backend::has_bf16_products)), the encoder's
    /// projections hold bf16 weights: where the CPU's bf16 dot product outruns its f32
    /// FMAs ([`crate::CpuFeatures::fast_bf16_dot`]) they multiply with it on activations
    /// rounded to bf16 ([`crate::Kernel::Bf16Avx512`]); on an AVX2 CPU they are widened
    /// to f32 in registers and multiply f32 activations with f32 FMAs
    /// ([`crate::Kernel::Bf16Avx2`]); sums are f32, and everything else (embeddings,
    /// attention, LayerNorm, GELU, the head) stays f32. On an AVX-512 CPU with neither
    /// (Intel's, whose bf16 dot product is no faster than its FMAs) the bf16 kernels
    /// would be slower than f32, so it runs the f32 kernel on f32 weights, and
    /// [`crate::Detector::execution`] names that kernel
    /// ([`crate::DetectorBuilder::kernel`] names another). Elsewhere weights and
    /// activations are burn's bf16 tensors throughout (LayerNorm statistics accumulated
    /// in f32).
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
        "bf16 weights in the matrix products where a bf16 kernel runs, half their memory; on the CPU kernels about f32's speed or faster; probabilities within about 1e-2 of f32",
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


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_precision_has_one_row_and_round_trips() {
        assert_eq!(PRECISIONS.len(), Precision::ALL.len());
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>().unwrap(), p);
            assert_eq!(p.to_string(), p.name());
            assert_eq!(Precision::from_code(p.code()), Some(p));
            assert_eq!(PRECISIONS.iter().filter(|r| r.0 == p).count(), 1);
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
        assert_eq!(Precision::from_code(5), None);
        let error = "fp8".parse::<Precision>().unwrap_err().to_string();
        assert!(error.contains("f32, tf32, bf16, f16, int8"), "{error}");
    }
}
