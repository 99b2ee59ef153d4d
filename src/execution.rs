//! How a detector runs the model: chosen once at load from the precision, the backend
//! and the CPU, and stored, so that nothing is decided again at run time; and the
//! seam through which the model's one forward pass runs each operation of an encoder
//! layer on what the plan chose ([`LayerOps`]).

use burn::tensor::DType;

use crate::call_rows::CallRows;
use crate::cpu::{CpuFeatures, Kernel};
use crate::error::{Error, Result};
use crate::{Backend, Precision};

// The int8 kernel's 32-bit sums hold every product of the widest matrix a valid config
// allows.
#[cfg(cpu_kernels)]
const _: () = assert!(crate::config::MAX_INTERMEDIATE <= crate::cpu::int8_gemm::MAX_K);

/// What a [`crate::Detector`] runs its encoder on ([`crate::Detector::execution`]).
/// The embeddings and the classification head always run on the backend's tensors.
///
/// ```no_run
/// # let detector = insecure_code_detector::Detector::from_pretrained("m")?;
/// // "kernel f32-avx512 (AVX-512F)" on a CPU backend of an AVX-512 CPU,
/// // "tensors bf16" on a GPU backend at bf16.
/// println!("{} on {}", detector.execution(), detector.backend());
/// # Ok::<(), insecure_code_detector::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionPlan {
    /// burn's tensor operations on the backend, weights and activations in `dtype`.
    Tensors {
        /// The weights' and activations' dtype.
        dtype: DType,
    },
    /// This crate's CPU `kernel` on projections packed for it at load, with the rest
    /// of each layer (attention, LayerNorm, GELU) on plain f32 rows
    /// ([`crate::cpu`]).
    PackedCpu {
        /// The kernel of the encoder's matrix products.
        kernel: Kernel,
    },
}

impl ExecutionPlan {
    /// The plan for `precision` on `backend` on this CPU: the packed kernel where one
    /// runs the precision on a CPU backend, else the backend's tensors; an error for a
    /// combination that cannot run (int8 without a kernel). A detector chooses its plan
    /// this way at load.
    ///
    /// ```
    /// use insecure_code_detector::{Backend, ExecutionPlan, Precision};
    /// let plan = ExecutionPlan::choose(Precision::F16, Backend::Wgpu)?;
    /// assert_eq!(plan.to_string(), "tensors f16");
    /// assert!(ExecutionPlan::choose(Precision::Int8, Backend::Wgpu).is_err());
    /// # Ok::<(), insecure_code_detector::Error>(())
    /// ```
    pub fn choose(precision: Precision, backend: Backend) -> Result<Self> {
        let kernel = if backend.is_cpu() {
            CpuFeatures::check_cap()?;
            Kernel::select(precision, CpuFeatures::get())
        } else {
            None
        };
        match (kernel, precision) {
            (Some(kernel), _) => Ok(ExecutionPlan::PackedCpu { kernel }),
            (None, Precision::Int8) => Err(Error::InvalidArgument {
                argument: "precision",
                message: format!(
                    "int8 runs on the CPU backends (flex, ndarray) of a CPU with AVX2; \
                     the {} backend here has no int8 products",
                    backend.name()
                ),
            }),
            (None, _) => Ok(ExecutionPlan::Tensors {
                dtype: tensor_dtype(precision, backend),
            }),
        }
    }

    /// The plan that runs `kernel` for `precision` on `backend` instead of the one
    /// [`Kernel::select`] picks ([`crate::DetectorBuilder::kernel`]): to measure the
    /// kernels against each other, or to keep bf16's halved weight memory on a CPU
    /// where `bf16-avx512` is the slower. An error naming `kernel` where `backend` is
    /// not a CPU backend, the kernel does not run the precision ([`Kernel::runs`]) or
    /// this CPU lacks its instructions ([`Kernel::runs_on`]).
    ///
    /// ```
    /// use insecure_code_detector::{Backend, ExecutionPlan, Kernel, Precision};
    /// assert!(ExecutionPlan::with_kernel(Precision::F32, Backend::Flex, Kernel::Int8Avx2).is_err());
    /// ```
    pub fn with_kernel(precision: Precision, backend: Backend, kernel: Kernel) -> Result<Self> {
        CpuFeatures::check_cap()?;
        Self::with_kernel_on(precision, backend, kernel, CpuFeatures::get())
    }

    /// [`ExecutionPlan::with_kernel`] on a CPU with `cpu`'s features.
    fn with_kernel_on(
        precision: Precision,
        backend: Backend,
        kernel: Kernel,
        cpu: CpuFeatures,
    ) -> Result<Self> {
        let refused = |message: String| Error::InvalidArgument {
            argument: "kernel",
            message,
        };
        if !backend.is_cpu() {
            return Err(refused(format!(
                "{kernel} is a CPU kernel; the {} backend runs its own tensors",
                backend.name()
            )));
        }
        if !kernel.runs(precision) {
            return Err(refused(format!(
                "{kernel} does not run {precision} products"
            )));
        }
        if !cfg!(cpu_kernels) || !kernel.runs_on(cpu) {
            return Err(refused(format!(
                "{kernel} needs {}, which this CPU ({cpu}, as `ICD_MAX_CPU_ISA` caps it) lacks",
                kernel.isa()
            )));
        }
        Ok(ExecutionPlan::PackedCpu { kernel })
    }

    /// The dtype the weights load in: f32 for the packed kernels, which pack f32
    /// weights for themselves.
    pub fn dtype(self) -> DType {
        match self {
            ExecutionPlan::Tensors { dtype } => dtype,
            ExecutionPlan::PackedCpu { .. } => DType::F32,
        }
    }

    /// The packed CPU kernel, if the plan runs one.
    pub fn kernel(self) -> Option<Kernel> {
        match self {
            ExecutionPlan::Tensors { .. } => None,
            ExecutionPlan::PackedCpu { kernel } => Some(kernel),
        }
    }
}

impl std::fmt::Display for ExecutionPlan {
    /// `tensors f32` (`f64`, `bf16`, `f16`), or `kernel f32-avx2 (AVX2+FMA)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExecutionPlan::Tensors { dtype } => {
                let name = match dtype {
                    DType::F64 => "f64",
                    DType::F32 => "f32",
                    DType::BF16 => "bf16",
                    DType::F16 => "f16",
                    _ => "other",
                };
                write!(f, "tensors {name}")
            }
            ExecutionPlan::PackedCpu { kernel } => write!(f, "kernel {kernel} ({})", kernel.isa()),
        }
    }
}

/// The operations of one post-LayerNorm encoder layer (transformers' `RobertaLayer`),
/// as an execution plan runs them: the seam between the model and the plan. The
/// model's forward pass (`model::encode`) calls each once per layer, in order; burn's
/// tensors fill it (`model::encoder::TensorLayer`), and so do the packed CPU kernels
/// (`cpu::encoder::PackedLayer`, below).
///
/// Every operation works on a model call's rows (laid out as `call` says, see
/// `call_rows`: the packed CPU kernels take them end to end only) and writes into a
/// buffer the caller keeps from layer to layer, so that a plan on plain memory
/// allocates, and first touches, each buffer once per pass.
pub(crate) trait LayerOps {
    /// A batch's rows between the operations.
    type Rows: Default;

    /// Self-attention (`RobertaSelfAttention`): the query, key and value projections
    /// of `hidden` into `qkv`, and the attention context of every row into `context`,
    /// each input attending only to its own rows (never to padding). With
    /// `first_only`, only each input's first row's context, from every row's keys and
    /// values (and a plan may skip `qkv` where it folds the keys and values into that
    /// row's query). Then `probabilities`, where asked for, receives each input's
    /// attention probabilities from its first row, head by head: `heads × len` values
    /// per input, inputs laid end to end (a plan computes them only when asked).
    fn self_attention(
        &self,
        hidden: &Self::Rows,
        call: CallRows<'_>,
        first_only: bool,
        buffers: (&mut Self::Rows, &mut Self::Rows),
        probabilities: Option<&mut Vec<f32>>,
    );

    /// Each input's first row of `rows`, in place of all of them: one row per input,
    /// end to end.
    fn keep_first_rows(rows: &mut Self::Rows, call: CallRows<'_>);

    /// `attention.output.dense` of the context.
    fn attention_output(&self, context: &Self::Rows, out: &mut Self::Rows);

    /// `attention.output.LayerNorm(rows + residual)`, in place.
    fn attention_norm(&self, rows: &mut Self::Rows, residual: &Self::Rows);

    /// `intermediate`: its dense projection and exact GELU.
    fn intermediate(&self, rows: &Self::Rows, out: &mut Self::Rows);

    /// `output.dense`.
    fn output(&self, rows: &Self::Rows, out: &mut Self::Rows);

    /// `output.LayerNorm(rows + residual)`, in place.
    fn output_norm(&self, rows: &mut Self::Rows, residual: &Self::Rows);
}

/// The packed CPU kernels' layer: each operation one pass over plain f32 rows.
#[cfg(cpu_kernels)]
impl LayerOps for crate::cpu::encoder::PackedLayer {
    type Rows = Vec<f32>;

    fn self_attention(
        &self,
        hidden: &Vec<f32>,
        call: CallRows<'_>,
        first_only: bool,
        buffers: (&mut Vec<f32>, &mut Vec<f32>),
        probabilities: Option<&mut Vec<f32>>,
    ) {
        assert_eq!(
            call.padded_to, None,
            "the packed kernels take rows end to end"
        );
        self.attend(hidden, call.lengths, first_only, buffers, probabilities);
    }

    fn keep_first_rows(rows: &mut Vec<f32>, call: CallRows<'_>) {
        assert_eq!(
            call.padded_to, None,
            "the packed kernels take rows end to end"
        );
        let lengths = call.lengths;
        let width = rows.len() / lengths.iter().sum::<usize>().max(1);
        *rows = crate::cpu::encoder::gather_first_rows(rows, lengths, width);
    }

    fn attention_output(&self, context: &Vec<f32>, out: &mut Vec<f32>) {
        self.project_attention_output(context, out);
    }

    fn attention_norm(&self, rows: &mut Vec<f32>, residual: &Vec<f32>) {
        self.attention_norm.add_and_normalize(rows, residual);
    }

    fn intermediate(&self, rows: &Vec<f32>, out: &mut Vec<f32>) {
        self.expand(rows, out);
    }

    fn output(&self, rows: &Vec<f32>, out: &mut Vec<f32>) {
        self.project_output(rows, out);
    }

    fn output_norm(&self, rows: &mut Vec<f32>, residual: &Vec<f32>) {
        self.output_norm.add_and_normalize(rows, residual);
    }
}

/// The dtype of a plan on the backend's tensors: the precision's own (f32 for int8,
/// whose products quantize on the fly), except that f32 runs as f64 on CUDA
/// ([`Precision::Tf32`] stays f32). burn's CUDA matrix product runs f32 inputs on the
/// tensor cores as TF32 (10 mantissa bits) on every GPU that has them (Ampere and
/// later), with no switch to keep f32 off them, and that moves a full-size model's
/// logits past 1e-4 from transformers' (`BENCHMARKS-cuda.md`); its f64 products do not
/// touch TF32.
fn tensor_dtype(precision: Precision, backend: Backend) -> DType {
    match precision {
        Precision::F32 if backend == Backend::Cuda => DType::F64,
        Precision::F32 | Precision::Tf32 | Precision::Int8 => DType::F32,
        Precision::Bf16 => DType::BF16,
        Precision::F16 => DType::F16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_computes_in_f64_on_cuda_alone() {
        use Backend::{Cuda, Flex, NdArray, Wgpu};
        use Precision::{Bf16, Tf32, F16, F32};
        let cases = [
            (F32, Cuda, DType::F64),
            (F32, Flex, DType::F32),
            (F32, NdArray, DType::F32),
            (F32, Wgpu, DType::F32),
            (Tf32, Cuda, DType::F32),
            (Tf32, Wgpu, DType::F32),
            (Bf16, Cuda, DType::BF16),
            (F16, Cuda, DType::F16),
            (F16, NdArray, DType::F16),
        ];
        for (precision, backend, dtype) in cases {
            assert_eq!(
                tensor_dtype(precision, backend),
                dtype,
                "{precision:?} on {backend}"
            );
        }
    }

    #[test]
    fn the_packed_kernels_load_f32_weights() {
        for kernel in Kernel::ALL {
            assert_eq!(ExecutionPlan::PackedCpu { kernel }.dtype(), DType::F32);
        }
    }

    /// A named kernel is refused, naming itself, on a CPU without its instructions,
    /// on a backend that is not a CPU backend and for another precision; it runs
    /// where the CPU has it.
    #[test]
    fn a_named_kernel_runs_only_where_it_can() {
        let avx2 = CpuFeatures {
            avx2_fma: true,
            ..CpuFeatures::NONE
        };
        let refusal = |plan: Result<ExecutionPlan>| plan.unwrap_err().to_string();
        let lacking = refusal(ExecutionPlan::with_kernel_on(
            Precision::Bf16,
            Backend::Flex,
            Kernel::Bf16Avx512,
            avx2,
        ));
        assert!(
            lacking.contains("kernel") && lacking.contains("bf16-avx512 needs AVX512-BF16"),
            "{lacking}"
        );
        for cpu in [CpuFeatures::NONE, avx2] {
            let message = refusal(ExecutionPlan::with_kernel_on(
                Precision::F32,
                Backend::NdArray,
                Kernel::F32Avx512,
                cpu,
            ));
            assert!(message.contains("f32-avx512 needs AVX-512F"), "{message}");
        }
        let gpu = refusal(ExecutionPlan::with_kernel_on(
            Precision::F32,
            Backend::Wgpu,
            Kernel::F32Avx2,
            avx2,
        ));
        assert!(
            gpu.contains("f32-avx2 is a CPU kernel; the wgpu backend"),
            "{gpu}"
        );
        let other = refusal(ExecutionPlan::with_kernel_on(
            Precision::F32,
            Backend::Flex,
            Kernel::Int8Avx2,
            avx2,
        ));
        assert!(
            other.contains("int8-avx2 does not run f32 products"),
            "{other}"
        );
        if cfg!(cpu_kernels) && Backend::Flex.is_cpu() {
            assert_eq!(
                ExecutionPlan::with_kernel_on(
                    Precision::Bf16,
                    Backend::Flex,
                    Kernel::F32Avx2,
                    avx2
                )
                .unwrap(),
                ExecutionPlan::PackedCpu {
                    kernel: Kernel::F32Avx2
                }
            );
        }
    }
}
