//! The one probe of what this CPU offers the kernels.

use once_cell::sync::Lazy;

/// The instruction sets this crate's CPU kernels use, probed once per process (the
/// build targets any x86-64, so each is checked at run time). Each level implies the
/// ones it builds on: a CPU reported with AVX512-BF16 has AVX-512F, AVX2 and FMA.
///
/// ```
/// use insecure_code_detector::cpu::CpuFeatures;
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
}

static PROBED: Lazy<CpuFeatures> = Lazy::new(CpuFeatures::probe);

impl CpuFeatures {
    /// This CPU's features, probed on the first call and cached.
    pub fn get() -> CpuFeatures {
        *PROBED
    }

    /// Nothing: the features of a CPU none of the kernels runs on.
    pub const NONE: CpuFeatures = CpuFeatures {
        avx2_fma: false,
        avx512f: false,
        avx512_bf16: false,
        avx512_vnni: false,
    };

    #[cfg(target_arch = "x86_64")]
    fn probe() -> Self {
        let avx2_fma = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        let avx512f = avx2_fma && is_x86_feature_detected!("avx512f");
        CpuFeatures {
            avx2_fma,
            avx512f,
            avx512_bf16: avx512f && is_x86_feature_detected!("avx512bf16"),
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

impl std::fmt::Display for CpuFeatures {
    /// The features present, as `AVX2+FMA AVX-512F`, or `none`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = [
            (self.avx2_fma, "AVX2+FMA"),
            (self.avx512f, "AVX-512F"),
            (self.avx512_bf16, "AVX512-BF16"),
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
