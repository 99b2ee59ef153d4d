//! The encoder's projections packed for this crate's CPU kernels: bf16 weights for
//! the bf16 dot-product instruction ([`super::bf16_gemm`]) or int8 weights for integer
//! multiply-adds ([`super::int8_gemm`]).

#[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
use super::{bf16_gemm, f32_gemm, int8_gemm};

/// Which kernel the projections are packed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Packing {
    /// f32 weights, AVX2 or AVX-512 FMAs.
    F32,
    /// bf16 weights, `vdpbf16ps` (AVX512-BF16).
    Bf16,
    /// int8 weights per column, activations quantized per row, `vpdpbusd`
    /// (AVX512-VNNI) or `vpmaddwd` (AVX2).
    Int8,
}

impl Packing {
    /// Whether this CPU runs the kernel (checked at run time).
    pub(crate) fn available(self) -> bool {
        #[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
        return match self {
            Packing::F32 => f32_gemm::supported(),
            Packing::Bf16 => bf16_gemm::available(),
            Packing::Int8 => int8_gemm::available(),
        };
        #[cfg(not(all(target_arch = "x86_64", feature = "cpu-kernels")))]
        false
    }
}

/// One `[k, n]` projection (weight and bias) packed for a kernel.
#[derive(Debug)]
pub(crate) enum PackedMatrix {
    #[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
    F32(f32_gemm::PackedMatrix),
    #[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
    Bf16(bf16_gemm::PackedMatrix),
    #[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
    Int8(int8_gemm::PackedMatrix),
}

impl PackedMatrix {
    /// Packs `weight` (`[n, k]` row-major: the checkpoint's `[out, in]` layout) and
    /// `bias` for `packing`, whose [`Packing::available`] must hold.
    #[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
    pub(crate) fn new(
        packing: Packing,
        weight: Vec<f32>,
        bias: Option<&[f32]>,
        k: usize,
        n: usize,
    ) -> Self {
        match packing {
            Packing::F32 => Self::F32(f32_gemm::PackedMatrix::from_vec(weight, bias, k, n)),
            Packing::Bf16 => Self::Bf16(bf16_gemm::PackedMatrix::new(&weight, bias, k, n)),
            Packing::Int8 => Self::Int8(int8_gemm::PackedMatrix::new(&weight, bias, k, n)),
        }
    }

    /// `input · weight + bias` for `input` `[m, k]` row-major into `output`, which
    /// becomes `[m, n]` row-major. The f32 kernel writes into `output`'s memory; the
    /// others replace it.
    pub(crate) fn matmul_into(&self, input: &[f32], m: usize, output: &mut Vec<f32>) {
        let _ = (input, m, &output);
        match *self {
            #[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
            Self::F32(ref matrix) => matrix.matmul_into(input, m, output),
            #[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
            Self::Bf16(ref matrix) => *output = matrix.matmul(input, m),
            #[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
            Self::Int8(ref matrix) => *output = matrix.matmul(input, m),
        }
    }
}

impl PackedMatrix {
    /// The matrix packed for the f32 kernel, if it is.
    #[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
    pub(crate) fn as_f32(&self) -> Option<&f32_gemm::PackedMatrix> {
        match self {
            Self::F32(matrix) => Some(matrix),
            _ => None,
        }
    }
}

/// A packed matrix's bias: `bias` (which must hold `n` values) or `n` zeros.
#[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
pub(crate) fn bias_or_zeros(bias: Option<&[f32]>, n: usize) -> Vec<f32> {
    match bias {
        Some(b) => {
            assert_eq!(b.len(), n, "bias is not [{n}]");
            b.to_vec()
        }
        None => vec![0.0; n],
    }
}
