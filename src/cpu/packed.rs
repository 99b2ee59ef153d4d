//! One projection packed for the kernel a detector runs: f32 weights for the FMA
//! products ([`super::f32_gemm`]), bf16 weights for the bf16 dot-product instruction
//! ([`super::bf16_gemm`]) or widened to f32 for the FMAs
//! ([`super::f32_gemm::bf16_weights`]), or int8 weights for integer multiply-adds
//! ([`super::int8_gemm`]).

use super::driver::Epilogue;
use super::{bf16_gemm, f32_gemm, int8_gemm, Kernel};

/// One `[k, n]` projection (weight and bias) packed for a kernel.
#[derive(Debug)]
pub(crate) enum PackedProjection {
    F32(f32_gemm::PackedF32),
    Bf16(bf16_gemm::PackedBf16),
    Bf16Weights(f32_gemm::bf16_weights::PackedBf16Weights),
    Int8(int8_gemm::PackedInt8),
}

impl PackedProjection {
    /// Packs `weight` (`[n, k]` row-major: the checkpoint's `[out, in]` layout) and
    /// `bias` for `kernel`, the detector's plan's ([`Kernel::select`]'s choice for this
    /// CPU, or the one its builder named), which the CPU has.
    pub(crate) fn new(
        kernel: Kernel,
        weight: Vec<f32>,
        bias: Option<&[f32]>,
        k: usize,
        n: usize,
    ) -> Self {
        match kernel {
            Kernel::F32Avx2 => Self::F32(f32_gemm::PackedF32::from_vec(
                f32_gemm::Isa::Avx2,
                weight,
                bias,
                k,
                n,
            )),
            Kernel::F32Avx512 => Self::F32(f32_gemm::PackedF32::from_vec(
                f32_gemm::Isa::Avx512,
                weight,
                bias,
                k,
                n,
            )),
            Kernel::Bf16Avx512 => Self::Bf16(bf16_gemm::PackedBf16::new(&weight, bias, k, n)),
            Kernel::Bf16Avx2 => Self::Bf16Weights(f32_gemm::bf16_weights::PackedBf16Weights::new(
                &weight, bias, k, n,
            )),
            Kernel::Int8Avx2 | Kernel::Int8Vnni => Self::Int8(int8_gemm::PackedInt8::for_kernel(
                kernel, &weight, bias, k, n,
            )),
        }
    }

    /// `input · weight + bias` for `input` `[m, k]` row-major into `output`, resized
    /// to `[m, n]` row-major, then `epilogue` on each value.
    pub(crate) fn matmul_into(
        &self,
        input: &[f32],
        m: usize,
        output: &mut Vec<f32>,
        epilogue: Epilogue,
    ) {
        match self {
            Self::F32(matrix) => matrix.matmul_into(input, m, output, epilogue),
            Self::Bf16(matrix) => matrix.matmul_into(input, m, output, epilogue),
            Self::Bf16Weights(matrix) => matrix.matmul_into(input, m, output, epilogue),
            Self::Int8(matrix) => matrix.matmul_into(input, m, output, epilogue),
        }
    }

    /// The instruction set of attention's f32 products beside this projection: the f32
    /// kernel's own, else the widest this CPU runs.
    pub(crate) fn attention_isa(&self) -> f32_gemm::Isa {
        match self {
            Self::F32(matrix) => matrix.isa(),
            _ => f32_gemm::Isa::best(),
        }
    }

    /// The matrix packed for the f32 kernel, if it is.
    pub(crate) fn as_f32(&self) -> Option<&f32_gemm::PackedF32> {
        match self {
            Self::F32(matrix) => Some(matrix),
            _ => None,
        }
    }
}
