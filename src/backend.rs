//! The one place that decides which burn backend, and so which [`Device`], runs the model.
//!
//! Backends are cargo features (`flex`, `ndarray`, `wgpu`, `cuda`) and are chosen at run
//! time by name. `Device::default()` is never called: it panics when `BURN_DEVICE`
//! names a backend that is not compiled in.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::str::FromStr;

use burn::tensor::{Device, Tensor};

use crate::cpu::{CpuFeatures, Kernel};
use crate::error::{Error, Result};

/// A burn backend this library can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The best compiled-in backend that works on this machine: CUDA, then flex, then
    /// ndarray, then wgpu (wgpu only when nothing else is compiled in, since on a
    /// machine without a GPU it runs on a software rasterizer).
    Auto,
    /// burn-flex, burn's fast pure-Rust CPU backend (feature `flex`, the default).
    Flex,
    /// burn-ndarray, the older CPU backend (feature `ndarray`; deprecated by burn).
    NdArray,
    /// wgpu: Vulkan, Metal, DX12 or WebGPU (feature `wgpu`).
    Wgpu,
    /// CUDA on the first NVIDIA GPU (feature `cuda`).
    Cuda,
}

impl Backend {
    /// Every concrete backend, in `Auto`'s order of preference.
    pub const ALL: [Backend; 4] = [
        Backend::Cuda,
        Backend::Flex,
        Backend::NdArray,
        Backend::Wgpu,
    ];

    /// The name used by the C API, the Python package and the `icd` tool.
    pub fn name(self) -> &'static str {
        self.c_name().to_str().expect("backend names are ASCII")
    }

    /// [`Backend::name`] as a static NUL-terminated string, for the C API.
    pub fn c_name(self) -> &'static std::ffi::CStr {
        match self {
            Backend::Auto => c"auto",
            Backend::Flex => c"flex",
            Backend::NdArray => c"ndarray",
            Backend::Wgpu => c"wgpu",
            Backend::Cuda => c"cuda",
        }
    }

    /// Whether this build has the backend (always true for `Auto`).
    pub fn is_compiled(self) -> bool {
        match self {
            Backend::Auto => true,
            Backend::Flex => cfg!(feature = "flex"),
            Backend::NdArray => cfg!(feature = "ndarray"),
            Backend::Wgpu => cfg!(feature = "wgpu"),
            Backend::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// Parts that the row-wise work of each encoder layer is split into, run side by
    /// side: the CPU backends' thread count, since their element-wise kernels
    /// (GELU, LayerNorm, additions) run on one thread each; 1 for GPUs, which
    /// parallelize every kernel themselves.
    pub fn row_parts(self) -> usize {
        match self {
            #[cfg(feature = "cpu-kernels")]
            Backend::Flex | Backend::NdArray => rayon::current_num_threads(),
            _ => 1,
        }
    }

    /// Tokens in one model call of a batch, at most, unless one input alone is longer.
    /// On the CPU backends 512: their matrix products run no faster with more rows,
    /// while larger activations cost memory and fresh pages from the allocator on
    /// every call. On GPUs 16,384 padded tokens (32 inputs of 512): each call
    /// costs the same kernel launches whatever its rows, and more rows fill more of
    /// the GPU, but attention's scores grow with inputs × width², 400 MB in f32 at
    /// that size (the batch size bounds calls first, at 8 by default).
    pub fn call_token_budget(self) -> usize {
        if self.is_cpu() {
            512
        } else {
            16_384
        }
    }

    /// Whether [`crate::Precision::Bf16`] runs the encoder's matrix products on this
    /// crate's packed kernels (checked at run time; [`crate::Kernel::select`] says
    /// which: AVX512-BF16 dot products, AVX2 FMAs on bf16 weights widened in
    /// registers, or the f32 kernel where neither is faster than f32): true for the
    /// CPU backends on CPUs with AVX2 and FMA. Elsewhere bf16 is the backend's own bf16
    /// tensor type.
    pub fn has_bf16_products(self) -> bool {
        self.is_cpu() && Kernel::select(crate::Precision::Bf16, CpuFeatures::get()).is_some()
    }

    /// Whether [`crate::Precision::Int8`] runs here: true for the CPU backends on
    /// CPUs with AVX2 (checked at run time), which multiply int8 weights with AVX2
    /// integer multiply-adds.
    pub fn has_int8_products(self) -> bool {
        self.is_cpu() && Kernel::select(crate::Precision::Int8, CpuFeatures::get()).is_some()
    }

    /// flex or ndarray, compiled in.
    pub(crate) fn is_cpu(self) -> bool {
        matches!(self, Backend::Flex | Backend::NdArray) && self.is_compiled()
    }

    /// The concrete backends compiled into this build.
    pub fn compiled() -> Vec<Backend> {
        Self::ALL.into_iter().filter(|b| b.is_compiled()).collect()
    }

    /// The default CPU backend: flex when compiled in, else ndarray.
    pub fn default_cpu() -> Result<Backend> {
        [Backend::Flex, Backend::NdArray]
            .into_iter()
            .find(|b| b.is_compiled())
            .ok_or_else(|| {
                unavailable(
                    "cpu",
                    "no CPU backend (feature `flex` or `ndarray`) is compiled in",
                )
            })
    }

    /// An error naming the backend where this build does not have it.
    pub(crate) fn check_compiled(self) -> Result<()> {
        if self.is_compiled() {
            Ok(())
        } else {
            Err(unavailable(
                self.name(),
                &format!("the `{}` cargo feature is not compiled in", self.name()),
            ))
        }
    }

    /// Opens the backend's device and runs a tiny computation on it, so that an absent
    /// GPU is reported here, as an error, rather than as a panic on first use.
    /// `Auto` resolves to the first concrete backend that works.
    pub fn open(self) -> Result<(Backend, Device)> {
        if self == Backend::Auto {
            let mut reasons = Vec::new();
            for backend in Self::compiled()
                .into_iter()
                .filter(|b| *b != Backend::Wgpu)
                .chain(Self::compiled().into_iter().filter(|b| *b == Backend::Wgpu))
            {
                match backend.open() {
                    Ok(found) => return Ok(found),
                    Err(e) => reasons.push(format!("{}: {e}", backend.name())),
                }
            }
            return Err(unavailable(
                "auto",
                &format!("no compiled-in backend works ({})", reasons.join("; ")),
            ));
        }
        let device = self.device()?;
        let probe = catch_unwind(AssertUnwindSafe(|| {
            Tensor::<1>::from_floats([1.0, 2.0], &device)
                .sum()
                .try_into_data()
        }));
        match probe {
            Ok(Ok(_)) => Ok((self, device)),
            Ok(Err(e)) => Err(unavailable(
                self.name(),
                &format!("its device failed: {e:?}"),
            )),
            Err(panic) => Err(unavailable(
                self.name(),
                &format!("its device failed: {}", panic_message(&*panic)),
            )),
        }
    }

    #[allow(unreachable_code, deprecated)]
    fn device(self) -> Result<Device> {
        match self {
            Backend::Flex => {
                #[cfg(feature = "flex")]
                return Ok(Device::flex());
            }
            Backend::NdArray => {
                #[cfg(feature = "ndarray")]
                return Ok(Device::ndarray());
            }
            Backend::Wgpu => {
                #[cfg(feature = "wgpu")]
                {
                    configure_gpu_runtime();
                    return Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice));
                }
            }
            Backend::Cuda => {
                #[cfg(feature = "cuda")]
                {
                    configure_gpu_runtime();
                    return Ok(Device::cuda(0));
                }
            }
            Backend::Auto => unreachable!("resolved by open()"),
        }
        self.check_compiled()?;
        unreachable!("a compiled-in backend returned above")
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = Error;

    /// Parses a [`Backend::name`] (any case): `auto`, `flex`, `ndarray`, `wgpu` or
    /// `cuda`.
    fn from_str(s: &str) -> Result<Self> {
        // The names' order in the message: `auto`, then as the variants are declared.
        let every = [
            Backend::Auto,
            Backend::Flex,
            Backend::NdArray,
            Backend::Wgpu,
            Backend::Cuda,
        ];
        every
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::InvalidArgument {
                argument: "backend",
                message: format!(
                    "unknown backend {s:?}; expected one of {} (compiled in: {})",
                    every.map(Backend::name).join(", "),
                    compiled_names()
                ),
            })
    }
}

/// Where the CUDA backend keeps the kernels it compiles, so that a later process
/// starts warm: `cubecl` in this library's cache directory (`$ICD_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/insecure-code-detector`, else `~/.cache/insecure-code-detector`).
/// `ICD_GPU_CACHE=0` keeps them in memory only.
///
/// burn's GPU runtime (CubeCL) keeps there, in its own database, the PTX of each
/// kernel it compiles on CUDA. wgpu keeps nothing there: its shaders are compiled in
/// each process (the driver may keep its own cache, as Mesa and NVIDIA do).
#[cfg(feature = "cuda")]
pub(crate) fn gpu_cache_dir() -> Option<std::path::PathBuf> {
    let off = std::env::var_os("ICD_GPU_CACHE").is_some_and(|v| v == "0");
    crate::files::cache_dir()
        .filter(|_| !off)
        .map(|dir| dir.join("cubecl"))
}

/// Configures CubeCL once, before the first GPU device opens: its defaults and its
/// `CUBECL_*` variables, and on CUDA its kernel cache in `gpu_cache_dir`.
///
/// Left to itself, CubeCL reads a `cubecl.toml` or `burn.toml` from the working
/// directory or any directory above it, which in CI is the checkout being scanned: a
/// pull request could point its logs at any file or its kernel cache at kernels of
/// its own. An application that wants its own settings sets CubeCL's configuration
/// before building its first GPU detector; this then leaves it as it is.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn configure_gpu_runtime() {
    use burn::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};

    static CONFIGURED: std::sync::Once = std::sync::Once::new();
    CONFIGURED.call_once(|| {
        let mut config = CubeClRuntimeConfig::default().override_from_env();
        // Measured device throughputs are not something this library reads.
        config.throughput.disable_cache = true;
        #[cfg(feature = "cuda")]
        {
            use burn::cubecl::config::cache::CacheConfig;
            match gpu_cache_dir() {
                Some(dir) => {
                    config.environment.path = CacheConfig::Directory(dir);
                    config.compilation.cache = true;
                }
                None => config.compilation.cache = false,
            }
        }
        // False where the application set or read the configuration first: theirs stays.
        CubeClRuntimeConfig::try_set(config);
    });
}

fn compiled_names() -> String {
    Backend::compiled()
        .iter()
        .map(|b| b.name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn unavailable(requested: &str, reason: &str) -> Error {
    Error::BackendUnavailable {
        requested: requested.to_owned(),
        reason: reason.to_owned(),
        available: compiled_names(),
    }
}

/// The text of a caught panic.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
