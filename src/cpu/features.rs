//! The one probe of what this CPU offers the kernels, capped where `ICD_MAX_CPU_ISA`
//! asks (as oneDNN's `ONEDNN_MAX_CPU_ISA` does): to run and test the AVX2 kernels on
//! an AVX-512 CPU, or the backend's tensors alone.

use once_cell::sync::Lazy;

use crate::error::{Error, Result};

/// The environment variable that caps the features the kernels may use.
pub const MAX_CPU_ISA_VARIABLE: &str = "ICD_MAX_CPU_ISA";

/// `ICD_MAX_CPU_ISA`'s values, from the least the kernels may use to the most: `none`
/// (no packed kernel; the backend's tensors), `avx2` (AVX2 and FMA), `avx512`
/// (AVX-512F, BF16 and VNNI as the CPU has them: no cap).
const LEVELS: [&str; 3] = ["none", "avx2", "avx512"];

/// The instruction sets this crate's CPU kernels use, probed once per process (the
/// build targets any x86-64, so each is checked at run time) and capped by
/// `ICD_MAX_CPU_ISA` (`none`, `avx2` or `avx512`). Each level implies the ones it
/// builds on: a CPU reported with AVX512-BF16 has AVX-512F, AVX2 and FMA.
///
/// ```
/// use insecure_code_detector::CpuFeatures;
/// let cpu = CpuFeatures::get();
/// assert!(!cpu.avx512f || cpu.avx2_fma);
/// println!("{cpu}");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuFeatures {
    /// AVX2 and FMA: what every packed kernel needs.
    pub avx2_fma: bool,
    /// AVX-512F: the f32 kernel's 16-lane variant.
    pub avx512f: bool,
    /// AVX512-BF16: the bf16 kernel (`vdpbf16ps`).
    pub avx512_bf16: bool,
    /// AVX512-VNNI and AVX512-BW: the int8 kernel's byte variant (`vpdpbusd`).
    pub avx512_vnni: bool,
    /// AVX512-BF16 on a core whose bf16 dot product outruns its f32 FMAs, so that the
    /// bf16 kernel is the faster one, told by the vendor: AMD's (a Zen 4 measured
    /// `vdpbf16ps` at twice its f32 FMA rate). Intel's cores issue it at most at their
    /// FMA rate (an Intel Xeon measured half), and the bf16 kernel, which also rounds
    /// every activation, ran slower than f32 there (BENCHMARKS.md): on them
    /// `Precision::Bf16` runs the f32 kernel unless a builder names `bf16-avx512`
    /// (`DetectorBuilder::kernel`).
    pub fast_bf16_dot: bool,
}

static PROBED: Lazy<CpuFeatures> = Lazy::new(|| {
    // An unknown cap is refused where a detector is built (`check_cap`); here it
    // caps nothing.
    let cap = CpuFeatures::cap().ok().flatten().unwrap_or(LEVELS.len() - 1);
    CpuFeatures::probe().capped(cap)
});

impl CpuFeatures {
    /// This CPU's features, probed on the first call and cached, as capped by
    /// `ICD_MAX_CPU_ISA`.
    pub fn get() -> CpuFeatures {
        *PROBED
    }

    /// Whether `ICD_MAX_CPU_ISA` is unset or one of its values; an error naming the
    /// variable and its values otherwise.
    pub fn check_cap() -> Result<()> {
        Self::cap().map(|_| ())
    }

    /// `ICD_MAX_CPU_ISA`'s level (an index into [`LEVELS`]), if set.
    fn cap() -> Result<Option<usize>> {
        let Some(value) = std::env::var_os(MAX_CPU_ISA_VARIABLE) else {
            return Ok(None);
        };
        let value = value.to_string_lossy();
        LEVELS
            .iter()
            .position(|level| level.eq_ignore_ascii_case(value.trim()))
            .map(Some)
            .ok_or_else(|| Error::InvalidArgument {
                argument: MAX_CPU_ISA_VARIABLE,
                message: format!("is {value:?}, expected one of {}", LEVELS.join(", ")),
            })
    }

    /// These features with none above `level` of [`LEVELS`].
    fn capped(self, level: usize) -> Self {
        CpuFeatures {
            avx2_fma: self.avx2_fma && level >= 1,
            avx512f: self.avx512f && level >= 2,
            avx512_bf16: self.avx512_bf16 && level >= 2,
            avx512_vnni: self.avx512_vnni && level >= 2,
            fast_bf16_dot: self.fast_bf16_dot && level >= 2,
        }
    }

    /// Nothing: the features of a CPU none of the kernels runs on.
    pub const NONE: CpuFeatures = CpuFeatures {
        avx2_fma: false,
        avx512f: false,
        avx512_bf16: false,
        avx512_vnni: false,
        fast_bf16_dot: false,
    };

    #[cfg(target_arch = "x86_64")]
    fn probe() -> Self {
        let avx2_fma = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        let avx512f = avx2_fma && is_x86_feature_detected!("avx512f");
        let avx512_bf16 = avx512f && is_x86_feature_detected!("avx512bf16");
        CpuFeatures {
            avx2_fma,
            avx512f,
            avx512_bf16,
            fast_bf16_dot: avx512_bf16 && vendor() == *b"AuthenticAMD",
            avx512_vnni: avx512f
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vnni"),
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn probe() -> Self {
        Self::NONE
    }
}

/// The CPU's vendor string (CPUID leaf 0: `GenuineIntel`, `AuthenticAMD`, ...).
#[cfg(target_arch = "x86_64")]
fn vendor() -> [u8; 12] {
    let leaf = std::arch::x86_64::__cpuid(0);
    let mut vendor = [0u8; 12];
    for (chunk, register) in vendor.chunks_mut(4).zip([leaf.ebx, leaf.edx, leaf.ecx]) {
        chunk.copy_from_slice(&register.to_le_bytes());
    }
    vendor
}

impl std::fmt::Display for CpuFeatures {
    /// The features present, as `AVX2+FMA AVX-512F`, or `none`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = [
            (self.avx2_fma, "AVX2+FMA"),
            (self.avx512f, "AVX-512F"),
            (self.avx512_bf16 && self.fast_bf16_dot, "AVX512-BF16"),
            (
                self.avx512_bf16 && !self.fast_bf16_dot,
                "AVX512-BF16 (no faster than f32)",
            ),
            (self.avx512_vnni, "AVX512-VNNI"),
        ]
        .into_iter()
        .filter_map(|(present, name)| present.then_some(name))
        .collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_removes_the_levels_above_it() {
        let all = CpuFeatures {
            avx2_fma: true,
            avx512f: true,
            avx512_bf16: true,
            avx512_vnni: true,
            fast_bf16_dot: true,
        };
        assert_eq!(all.capped(0), CpuFeatures::NONE);
        assert_eq!(
            all.capped(1),
            CpuFeatures {
                avx2_fma: true,
                ..CpuFeatures::NONE
            }
        );
        assert_eq!(all.capped(2), all);
        let avx2 = all.capped(1);
        assert_eq!(avx2.capped(2), avx2, "a cap adds nothing the CPU lacks");
    }
}
