//! Everything about running the encoder on the CPU with this crate's own kernels,
//! apart from the model that calls them: the one probe of the CPU's features
//! ([`CpuFeatures`]), the kernel chosen from them ([`Kernel`]), matrix products per
//! precision with their per-ISA microkernels, the vector functions (softmax,
//! LayerNorm, GELU) and the packed encoder that strings them together.
//!
//! ```text
//! features      CpuFeatures: AVX2+FMA, AVX-512F, AVX512-BF16, AVX512-VNNI, probed once
//! vector_math   softmax, add-and-LayerNorm, GELU, eight lanes at a time
//! driver        every product's partition across threads, cache blocking and epilogue
//! f32_gemm      f32 FMA products; microkernels in avx2.rs, avx512.rs, chosen at packing;
//!               bf16_weights.rs: the same on bf16 weights widened in registers
//! attention     multi-head self-attention on the f32 products, for every kernel
//! bf16_gemm     bf16 dot products (AVX512-BF16)
//! int8_gemm     int8 products; microkernels in avx2.rs (vpmaddwd), vnni.rs (vpdpbusd)
//! packed        one projection packed for the chosen kernel
//! encoder       the encoder layers on packed projections, on plain f32 rows
//! reference     plain-Rust f64 versions of the above: the kernels' tests' oracle
//! ```
//!
//! Dependencies point one way: `encoder` -> `packed` and `attention` -> the `*_gemm`
//! kernels -> `driver` -> `vector_math` -> `features`. Nothing here knows burn; the model hands in plain
//! f32 weights and rows.

mod features;

pub use features::CpuFeatures;

#[cfg(cpu_kernels)]
pub(crate) mod attention;
#[cfg(cpu_kernels)]
pub(crate) mod bf16_gemm;
#[cfg(cpu_kernels)]
pub(crate) mod driver;
#[cfg(cpu_kernels)]
pub(crate) mod encoder;
#[cfg(cpu_kernels)]
pub(crate) mod f32_gemm;
#[cfg(cpu_kernels)]
pub(crate) mod int8_gemm;
#[cfg(cpu_kernels)]
mod packed;
#[cfg(test)]
pub(crate) mod reference;
#[cfg(cpu_kernels)]
pub(crate) mod vector_math;

use crate::precision::Precision;

/// One of this crate's packed CPU kernels: what the encoder's matrix products run on
/// when a detector on a CPU backend uses them ([`crate::ExecutionPlan::PackedCpu`]).
/// [`Kernel::select`] gives the one a precision runs on a CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// f32 FMAs on 8-lane registers (AVX2 and FMA).
    F32Avx2,
    /// f32 FMAs on 16-lane registers, four column blocks per call (AVX-512F).
    F32Avx512,
    /// bf16 weights, `vdpbf16ps` dot products summed in f32 (AVX512-BF16).
    Bf16Avx512,
    /// bf16 weights widened to f32 in registers, f32 activations and FMAs (AVX2 and
    /// FMA): [`Kernel::F32Avx2`]'s sums on the weights rounded to bf16, with half
    /// their memory.
    Bf16Avx2,
    /// int8 weights and activations, `vpmaddwd` 16-bit multiply-adds (AVX2).
    Int8Avx2,
    /// int8 weights and activations, `vpdpbusd` byte dot products (AVX512-VNNI),
    /// with results equal to [`Kernel::Int8Avx2`]'s bit for bit.
    Int8Vnni,
}

impl Kernel {
    /// Every kernel, in the order of [`Kernel::name`]'s table.
    pub const ALL: [Kernel; 6] = [
        Kernel::F32Avx2,
        Kernel::F32Avx512,
        Kernel::Bf16Avx512,
        Kernel::Bf16Avx2,
        Kernel::Int8Avx2,
        Kernel::Int8Vnni,
    ];

    /// The fastest kernel for `precision` on a CPU with `features`, or `None` where
    /// none runs it: f16 has no kernel, and every kernel needs AVX2 and FMA.
    ///
    /// bf16 never runs slower than f32: where the CPU has AVX-512F but no bf16 dot
    /// product faster than its f32 FMAs ([`CpuFeatures::fast_bf16_dot`]), it runs the
    /// f32 kernel on f32 weights ([`Kernel::precision`] says so), as the bf16 kernels
    /// there would be slower: `vdpbf16ps` at most at the FMAs' rate, or `bf16-avx2`'s
    /// 8-lane FMAs against `f32-avx512`'s 16.
    ///
    /// ```
    /// use insecure_code_detector::{CpuFeatures, Kernel};
    /// use insecure_code_detector::Precision;
    /// let avx2 = CpuFeatures { avx2_fma: true, ..CpuFeatures::NONE };
    /// assert_eq!(Kernel::select(Precision::F32, avx2), Some(Kernel::F32Avx2));
    /// assert_eq!(Kernel::select(Precision::Bf16, avx2), Some(Kernel::Bf16Avx2));
    /// assert_eq!(Kernel::select(Precision::Int8, CpuFeatures::NONE), None);
    /// // AVX512-BF16 whose dot product is no faster than the f32 FMAs (Intel's).
    /// let slow_bf16 = CpuFeatures { avx512f: true, avx512_bf16: true, ..avx2 };
    /// assert_eq!(Kernel::select(Precision::Bf16, slow_bf16), Some(Kernel::F32Avx512));
    /// let fast_bf16 = CpuFeatures { fast_bf16_dot: true, ..slow_bf16 };
    /// assert_eq!(Kernel::select(Precision::Bf16, fast_bf16), Some(Kernel::Bf16Avx512));
    /// ```
    pub fn select(precision: Precision, features: CpuFeatures) -> Option<Kernel> {
        if !cfg!(cpu_kernels) {
            return None;
        }
        // The bf16 dot product is the faster only on some of the CPUs that have it.
        let pays = |k: &Kernel| *k != Kernel::Bf16Avx512 || features.fast_bf16_dot;
        Self::of_precision(precision)
            .iter()
            .copied()
            .find(|k| k.runs_on(features) && pays(k))
    }

    /// The kernels that can run `precision`'s products, fastest first where each
    /// runs: none for f16; for bf16, the f32 kernels too, on f32 weights.
    fn of_precision(precision: Precision) -> &'static [Kernel] {
        match precision {
            Precision::F32 | Precision::Tf32 => &[Kernel::F32Avx512, Kernel::F32Avx2],
            Precision::Bf16 => &[
                Kernel::Bf16Avx512,
                Kernel::F32Avx512,
                Kernel::Bf16Avx2,
                Kernel::F32Avx2,
            ],
            Precision::F16 => &[],
            Precision::Int8 => &[Kernel::Int8Vnni, Kernel::Int8Avx2],
        }
    }

    /// Whether the kernel can run `precision`'s products (on a CPU with its
    /// instructions): an f32 kernel runs f32, tf32 and bf16, a bf16 kernel bf16, an
    /// int8 kernel int8.
    ///
    /// ```
    /// use insecure_code_detector::{Kernel, Precision};
    /// assert!(Kernel::F32Avx512.runs(Precision::Bf16));
    /// assert!(!Kernel::Bf16Avx2.runs(Precision::F32));
    /// assert!(!Kernel::Int8Avx2.runs(Precision::F16));
    /// ```
    pub fn runs(self, precision: Precision) -> bool {
        Self::of_precision(precision).contains(&self)
    }

    /// The precision whose products the kernel runs: [`Precision::F32`] for
    /// `f32-avx2` and `f32-avx512`, which also run [`Precision::Bf16`] where no bf16
    /// kernel is faster ([`Kernel::select`]).
    pub fn precision(self) -> Precision {
        match self {
            Kernel::F32Avx2 | Kernel::F32Avx512 => Precision::F32,
            Kernel::Bf16Avx512 | Kernel::Bf16Avx2 => Precision::Bf16,
            Kernel::Int8Avx2 | Kernel::Int8Vnni => Precision::Int8,
        }
    }

    /// Whether a CPU with `features` has this kernel's instructions.
    ///
    /// ```
    /// use insecure_code_detector::{CpuFeatures, Kernel};
    /// let avx2 = CpuFeatures { avx2_fma: true, ..CpuFeatures::NONE };
    /// assert!(Kernel::Int8Avx2.runs_on(avx2));
    /// assert!(!Kernel::F32Avx512.runs_on(avx2));
    /// ```
    pub fn runs_on(self, features: CpuFeatures) -> bool {
        // Every kernel's code around its products uses AVX2 and FMA.
        features.avx2_fma
            && match self {
                Kernel::F32Avx2 | Kernel::Bf16Avx2 | Kernel::Int8Avx2 => true,
                Kernel::F32Avx512 => features.avx512f,
                Kernel::Bf16Avx512 => features.avx512_bf16,
                Kernel::Int8Vnni => features.avx512_vnni,
            }
    }

    /// The kernel's name in reports: `f32-avx2`, `f32-avx512`, `bf16-avx512`,
    /// `bf16-avx2`, `int8-avx2` or `int8-vnni`.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::F32Avx2 => "f32-avx2",
            Kernel::F32Avx512 => "f32-avx512",
            Kernel::Bf16Avx512 => "bf16-avx512",
            Kernel::Bf16Avx2 => "bf16-avx2",
            Kernel::Int8Avx2 => "int8-avx2",
            Kernel::Int8Vnni => "int8-vnni",
        }
    }

    /// The instruction set it runs on: `AVX2+FMA`, `AVX-512F`, `AVX512-BF16` or
    /// `AVX512-VNNI` (as [`CpuFeatures`]'s display names them).
    pub fn isa(self) -> &'static str {
        match self {
            Kernel::F32Avx2 | Kernel::Bf16Avx2 | Kernel::Int8Avx2 => "AVX2+FMA",
            Kernel::F32Avx512 => "AVX-512F",
            Kernel::Bf16Avx512 => "AVX512-BF16",
            Kernel::Int8Vnni => "AVX512-VNNI",
        }
    }
}

impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Kernel {
    type Err = crate::error::Error;

    /// A kernel by its [`Kernel::name`]: `f32-avx2`, `bf16-avx512`, ...
    fn from_str(name: &str) -> crate::error::Result<Kernel> {
        Kernel::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| crate::error::Error::InvalidArgument {
                argument: "kernel",
                message: format!(
                    "is {name:?}, expected one of {}",
                    Kernel::ALL.map(Kernel::name).join(", ")
                ),
            })
    }
}

/// A packed matrix's `Debug`: its type and shape, not millions of packed values.
#[cfg(cpu_kernels)]
fn debug_shape(
    f: &mut std::fmt::Formatter<'_>,
    name: &str,
    k: usize,
    n: usize,
) -> std::fmt::Result {
    f.debug_struct(name)
        .field("k", &k)
        .field("n", &n)
        .finish_non_exhaustive()
}

/// Says that the running kernel test did not run for lack of `missing` on this CPU,
/// on the process's stderr itself: `cargo test` shows it whether or not it captures
/// the test's output (it captures `eprintln!`, not writes to `std::io::stderr()`).
#[cfg(test)]
pub(crate) fn skipped(missing: &str) {
    use std::io::Write;
    let test = std::thread::current()
        .name()
        .unwrap_or("a kernel test")
        .to_owned();
    let _ = writeln!(
        std::io::stderr(),
        "skipped {test}: this CPU has no {missing}"
    );
}

/// A reproducible value in [-1, 1) from `seed` (xorshift64), for the kernels' tests.
#[cfg(test)]
pub(crate) fn random(seed: &mut u64) -> f32 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    (*seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
}

/// A random product for the kernels' tests: input `[m, k]`, weight `[k, n]` and bias
/// `[n]`, row-major, from `random`.
#[cfg(test)]
pub(crate) fn random_product(
    seed: &mut u64,
    (m, k, n): (usize, usize, usize),
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut next = || random(seed);
    let a = (0..m * k).map(|_| next()).collect();
    let w = (0..k * n).map(|_| next()).collect();
    let bias = (0..n).map(|_| next()).collect();
    (a, w, bias)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every CPU the features can describe (each level implying the ones below it).
    fn every_cpu() -> Vec<CpuFeatures> {
        let mut cpus = Vec::new();
        for bits in 0u8..32 {
            let [avx2_fma, avx512f, avx512_bf16, avx512_vnni, fast_bf16_dot] =
                std::array::from_fn(|i| bits & (1 << i) != 0);
            let cpu = CpuFeatures {
                avx2_fma,
                avx512f,
                avx512_bf16,
                avx512_vnni,
                fast_bf16_dot,
            };
            let consistent = (!avx512f || avx2_fma)
                && (!(avx512_bf16 || avx512_vnni) || avx512f)
                && (!fast_bf16_dot || avx512_bf16);
            if consistent {
                cpus.push(cpu);
            }
        }
        cpus
    }

    #[test]
    fn bf16_runs_a_kernel_no_narrower_than_f32s_and_its_dot_product_only_where_faster() {
        for cpu in every_cpu() {
            let (f32, bf16) = (
                Kernel::select(Precision::F32, cpu),
                Kernel::select(Precision::Bf16, cpu),
            );
            if !cfg!(cpu_kernels) || !cpu.avx2_fma {
                assert_eq!((f32, bf16), (None, None), "{cpu}");
                continue;
            }
            let expected = if cpu.avx512_bf16 && cpu.fast_bf16_dot {
                Kernel::Bf16Avx512
            } else if cpu.avx512f {
                // 8-lane bf16-avx2 or a dot product no faster than the FMAs would
                // both be slower than the 16-lane f32 kernel.
                Kernel::F32Avx512
            } else {
                Kernel::Bf16Avx2
            };
            assert_eq!(bf16, Some(expected), "{cpu}");
            assert_eq!(
                expected.precision() == Precision::F32,
                bf16 == f32,
                "{cpu}: bf16 runs f32's kernel exactly when it runs in f32"
            );
        }
    }
}
