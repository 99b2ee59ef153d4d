//! Loading the hub checkpoint's weights into [`RobertaClassifier`].
//!
//! Both hub formats are read through burn-store: `model.safetensors` and the legacy
//! `pytorch_model.bin` (a zip of pickled tensors, read without running pickle code).
//! Before anything is applied, every tensor in the file is checked against the shapes
//! `config.json` implies, so that a wrong checkpoint fails with the tensor named rather
//! than inside the backend. After applying, the load report is checked too: each of
//! the model's parameters must have been filled.

mod convert;
mod layout;
mod names;
mod pickle;
#[cfg(feature = "train")]
mod save;

pub use convert::{convert_pytorch_to_safetensors, StorageDtype};
#[cfg(feature = "train")]
pub(crate) use save::save_safetensors;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::store::{FloatCastAdapter, ModuleAdapter, ModuleSnapshot, ModuleStore, PytorchStore};
use burn::tensor::DType;

use crate::config::RobertaConfig;
use crate::error::{Error, Result};
use crate::model::{ProjectionLayout, RobertaClassifier};
use names::{hub_name, hub_tensors, KNOWN_UNUSED};

/// A tensor as burn-store reads it: name, dtype, shape, and its bytes (often read lazily).
type PackTensor = burn::store::burn_pack::Tensor;

/// Which weight file of a checkpoint directory to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightFile {
    /// `model.safetensors`.
    Safetensors(PathBuf),
    /// `pytorch_model.bin`.
    PytorchBin(PathBuf),
}

impl WeightFile {
    /// `model.safetensors` when the directory has one, else `pytorch_model.bin`.
    pub fn find(dir: &Path) -> Result<Self> {
        // Whatever is there is chosen (and then refused if it is no regular file),
        // rather than passed over for the other format.
        let safetensors = dir.join("model.safetensors");
        if safetensors.exists() {
            return Ok(Self::Safetensors(safetensors));
        }
        let bin = dir.join("pytorch_model.bin");
        if bin.exists() {
            return Ok(Self::PytorchBin(bin));
        }
        Err(Error::NoWeights {
            dir: dir.to_path_buf(),
        })
    }

    /// By extension: `.safetensors`, else a PyTorch file.
    pub fn from_path(path: &Path) -> Self {
        if path.extension().is_some_and(|e| e == "safetensors") {
            Self::Safetensors(path.to_path_buf())
        } else {
            Self::PytorchBin(path.to_path_buf())
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        match self {
            Self::Safetensors(p) | Self::PytorchBin(p) => p,
        }
    }
}

/// Reads `file` into `model`, checking names, shapes and dtypes first and the load
/// report after. Every float tensor is converted to `dtype` (f32 for exact results;
/// stored f16 and bf16 weights are widened losslessly).
pub fn load(
    model: &mut RobertaClassifier,
    config: &RobertaConfig,
    file: &WeightFile,
    dtype: DType,
) -> Result<()> {
    let path = file.path();
    let tensors = read_tensors(file)?.into_values().collect();
    let non_finite = NonFiniteValues::default();
    let tensors = check_tensors(tensors, config, path)?
        .into_iter()
        .map(|t| non_finite.watch(t, dtype))
        .collect();
    let tensors = to_modules(tensors, config);
    let expected = tensors.len();
    let adapter: Box<dyn ModuleAdapter> = Box::new(
        layout::HubToBurnAdapter {
            projections_out_in: model.projection_layout() == ProjectionLayout::OutIn,
        }
        .chain(FloatCastAdapter::to(dtype)),
    );
    let report = model.apply(tensors, None, Some(adapter), true);

    if let Some((tensor, count)) = non_finite.first() {
        return Err(Error::NonFiniteTensor {
            path: path.to_path_buf(),
            tensor,
            count,
        });
    }
    if let Some(error) = report.errors.first() {
        return Err(Error::WeightsFormat {
            path: path.to_path_buf(),
            message: error.to_string(),
        });
    }
    if let Some((missing, _)) = report.missing.first() {
        return Err(Error::MissingTensor {
            path: path.to_path_buf(),
            tensor: format!("{missing} (this crate's name; the tensor name table does not cover it)"),
        });
    }
    if !report.unused.is_empty() || report.applied.len() != expected {
        return Err(Error::UnexpectedTensors {
            path: path.to_path_buf(),
            tensors: report.unused.clone(),
        });
    }
    Ok(())
}

/// All tensors of the file, by their stored names. A `.bin` has its pickle checked
/// first: anything beyond plain tensors is refused before burn-store reads it.
pub(crate) fn read_tensors(file: &WeightFile) -> Result<BTreeMap<String, PackTensor>> {
    let path = file.path();
    let format_error = |message: String| Error::WeightsFormat {
        path: path.to_path_buf(),
        message,
    };
    // A regular file (a FIFO or a device is refused without blocking), of a size a
    // checkpoint this library accepts can have.
    crate::files::open_untrusted(path, crate::files::WEIGHTS_LIMIT, "weight file")?;
    let tensors: BTreeMap<String, _> = match file {
        WeightFile::Safetensors(p) => read_safetensors(p)?,
        WeightFile::PytorchBin(p) => {
            pickle::check_pytorch_file(p)?;
            // Layer indices must stay as stored: renumbering would hide a missing layer.
            let mut store = PytorchStore::from_file(p).map_indices_contiguous(false);
            store
                .get_all_tensors()
                .map_err(|e| format_error(e.to_string()))?
                .clone()
        }
    };
    Ok(tensors)
}

/// Most bytes of a safetensors header: room for some 10,000 tensors, where a RoBERTa
/// classifier has about 200 (roberta-large 400). A header of millions of empty
/// tensors would otherwise cost seconds and gigabytes before any check.
const MAX_SAFETENSORS_HEADER: u64 = 1 << 20;

/// The tensors of a safetensors file, each read when it is applied. Positioned reads
/// rather than a memory map: a tensor's bytes are freed once copied into the model, so
/// loading peaks at the model plus one tensor instead of the model plus the whole file
/// (a map's pages stay resident until it is dropped). The header is validated by the
/// safetensors crate (contiguous offsets, sizes that match dtype and shape) and here
/// against the file's length, before anything is read.
fn read_safetensors(path: &Path) -> Result<BTreeMap<String, PackTensor>> {
    use std::io::Read;
    use std::sync::Arc;

    let format_error = |message: String| Error::WeightsFormat {
        path: path.to_path_buf(),
        message,
    };
    let io_error = |source: std::io::Error| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io_error)?;
    let file_len = file.metadata().map_err(io_error)?.len();
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix).map_err(|_| {
        format_error(format!(
            "{file_len} bytes: too short for the 8-byte header length"
        ))
    })?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > MAX_SAFETENSORS_HEADER {
        return Err(format_error(format!(
            "header of {header_len} bytes, past the limit of {MAX_SAFETENSORS_HEADER} (a RoBERTa checkpoint's is about 20 KiB)"
        )));
    }
    if header_len > file_len - 8 {
        return Err(format_error(format!(
            "header length {header_len} does not fit a file of {file_len} bytes"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(io_error)?;
    let metadata: safetensors::tensor::Metadata = serde_json::from_slice(&header)
        .map_err(|e| format_error(format!("invalid header: {e}")))?;
    let data_start = 8 + header_len;
    let data_len = file_len - data_start;
    let infos = metadata.tensors();
    let data_end = infos
        .values()
        .map(|info| info.data_offsets.1 as u64)
        .max()
        .unwrap_or(0);
    if data_end != data_len {
        return Err(format_error(format!(
            "the header describes {data_end} bytes of tensor data, the file holds {data_len}"
        )));
    }

    let file = Arc::new(file);
    let mut tensors = BTreeMap::new();
    for (name, info) in infos {
        let dtype = match info.dtype {
            safetensors::Dtype::F64 => DType::F64,
            safetensors::Dtype::F32 => DType::F32,
            safetensors::Dtype::F16 => DType::F16,
            safetensors::Dtype::BF16 => DType::BF16,
            safetensors::Dtype::I64 => DType::I64,
            safetensors::Dtype::I32 => DType::I32,
            safetensors::Dtype::I16 => DType::I16,
            safetensors::Dtype::I8 => DType::I8,
            safetensors::Dtype::U8 => DType::U8,
            safetensors::Dtype::BOOL => DType::Bool(burn::tensor::BoolStore::Native),
            other => {
                return Err(format_error(format!(
                    "tensor `{name}` has dtype {other:?}, which this library does not read"
                )))
            }
        };
        let shape = burn::tensor::Shape::from(info.shape.clone());
        let (start, end) = info.data_offsets;
        let offset = data_start + start as u64;
        let byte_len = end - start;
        let (file, tensor_shape, tensor_name) = (file.clone(), shape.clone(), name.clone());
        let tensor = burn::store::bridge::deferred(name.clone(), dtype, shape, None, move || {
            let mut bytes = ElementBytes::zeroed(dtype.size(), byte_len);
            read_at(&file, bytes.as_mut(), offset).map_err(|e| {
                burn::store::burn_pack::Error::ValidationError(format!(
                    "reading tensor `{tensor_name}`: {e}"
                ))
            })?;
            bytes.into_data(tensor_shape.clone(), dtype).map_err(|e| {
                burn::store::burn_pack::Error::ValidationError(format!(
                    "tensor `{tensor_name}`: {e}"
                ))
            })
        });
        tensors.insert(name, tensor);
    }
    Ok(tensors)
}

/// Fills `buffer` from `file` at `offset`, in pieces read in parallel.
///
/// The buffer is fresh memory, so most of a read's time goes to the kernel faulting in
/// and zeroing its pages rather than to copying the file's (cached) bytes; reading
/// pieces on every thread of the pool spreads that work over the cores.
fn read_at(file: &std::fs::File, buffer: &mut [u8], offset: u64) -> std::io::Result<()> {
    // Large enough that a piece's system call dwarfs its scheduling, small enough that
    // a 768 x 768 projection (2.25 MiB) still splits across two cores.
    const PIECE: usize = 512 * 1024;
    let read =
        |(i, piece): (usize, &mut [u8])| read_exact_at(file, piece, offset + (i * PIECE) as u64);
    #[cfg(feature = "cpu-kernels")]
    {
        use rayon::prelude::*;
        buffer.par_chunks_mut(PIECE).enumerate().try_for_each(read)
    }
    // Builds without the CPU backends have no thread pool.
    #[cfg(not(feature = "cpu-kernels"))]
    buffer.chunks_mut(PIECE).enumerate().try_for_each(read)
}

/// `piece.len()` bytes of `file` from `offset`, without moving a shared file position.
#[cfg(unix)]
fn read_exact_at(file: &std::fs::File, piece: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, piece, offset)
}

/// `piece.len()` bytes of `file` from `offset` (`seek_read` may move the file position,
/// which no other read depends on here).
#[cfg(windows)]
fn read_exact_at(
    file: &std::fs::File,
    mut piece: &mut [u8],
    mut offset: u64,
) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !piece.is_empty() {
        match file.seek_read(piece, offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                piece = &mut std::mem::take(&mut piece)[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Checks the file's tensors against the configuration and returns the ones to load,
/// without the `roberta.` prefix and without the known unused ones.
fn check_tensors(
    tensors: Vec<PackTensor>,
    config: &RobertaConfig,
    path: &Path,
) -> Result<Vec<PackTensor>> {
    let mut by_name = BTreeMap::new();
    for mut tensor in tensors {
        let name = tensor
            .name
            .strip_prefix("roberta.")
            .unwrap_or(&tensor.name)
            .to_owned();
        tensor.name = name.clone();
        by_name.insert(name, tensor);
    }
    let mut selected = Vec::new();
    for expected in hub_tensors(config) {
        let Some(tensor) = by_name.remove(&expected.hub) else {
            return Err(Error::MissingTensor {
                path: path.to_path_buf(),
                tensor: hub_name(&expected.hub),
            });
        };
        if tensor.shape.as_slice() != expected.shape.as_slice() {
            return Err(Error::TensorShape {
                path: path.to_path_buf(),
                tensor: hub_name(&expected.hub),
                expected: expected.shape,
                found: tensor.shape.to_vec(),
            });
        }
        if !matches!(
            tensor.dtype,
            DType::F32 | DType::F16 | DType::BF16 | DType::F64
        ) {
            return Err(Error::TensorDtype {
                path: path.to_path_buf(),
                tensor: hub_name(&expected.hub),
                found: format!("{:?}", tensor.dtype),
            });
        }
        selected.push(tensor);
    }
    let unexpected: Vec<String> = by_name
        .into_keys()
        .filter(|name| !KNOWN_UNUSED.contains(&name.as_str()))
        .map(|name| hub_name(&name))
        .collect();
    if !unexpected.is_empty() {
        return Err(Error::UnexpectedTensors {
            path: path.to_path_buf(),
            tensors: unexpected,
        });
    }
    Ok(selected)
}

/// The checked tensors (in the name table's order) under the model's parameter names.
/// The hub stores each layer's query, key and value projections as three linear
/// layers; this crate runs them as one (`attention.query_key_value`): one matrix
/// product with three times the columns keeps both cores busier on short inputs than
/// three small ones. Each layer's weights (and biases) are joined lazily, read when
/// applied, along the output dimension: query, then key, then value.
fn to_modules(tensors: Vec<PackTensor>, config: &RobertaConfig) -> Vec<PackTensor> {
    let mut out = Vec::with_capacity(tensors.len());
    // The fused parameters' parts, in the table's order: query, key, value.
    let mut parts: BTreeMap<String, Vec<PackTensor>> = BTreeMap::new();
    let table = hub_tensors(config);
    assert_eq!(tensors.len(), table.len(), "tensors not checked against the table");
    for (entry, mut tensor) in table.into_iter().zip(tensors) {
        match entry.fused_part {
            None => {
                tensor.name = entry.module;
                out.push(tensor);
            }
            Some(_) => parts.entry(entry.module).or_default().push(tensor),
        }
    }
    out.extend(parts.into_iter().map(|(module, parts)| fuse(module, parts)));
    out
}

/// One tensor named `module` holding `parts` one after another along their first
/// dimension, read when applied.
fn fuse(module: String, parts: Vec<PackTensor>) -> PackTensor {
    let mut shape = parts[0].shape.to_vec();
    shape[0] *= parts.len();
    let same_dtype = parts.iter().all(|p| p.dtype == parts[0].dtype);
    let dtype = if same_dtype {
        parts[0].dtype
    } else {
        DType::F32
    };
    let parts = std::sync::Arc::new(parts);
    burn::store::bridge::deferred(
        module,
        dtype,
        shape.clone().into(),
        None,
        move || {
            let byte_len = shape.iter().product::<usize>() * dtype.size();
            let mut bytes = ElementBytes::zeroed(dtype.size(), byte_len);
            let mut filled = 0;
            for part in parts.iter() {
                let data = burn::store::bridge::to_data(part)?;
                let data = if data.dtype() == dtype {
                    data
                } else {
                    data.convert_dtype(dtype)
                };
                let part_bytes = data.as_bytes();
                bytes.as_mut()[filled..filled + part_bytes.len()]
                    .copy_from_slice(part_bytes);
                filled += part_bytes.len();
            }
            bytes
                .into_data(shape.clone(), dtype)
                .map_err(|e| burn::store::burn_pack::Error::ValidationError(e.to_string()))
        },
    )
}

/// A zeroed byte buffer allocated with its elements' alignment.
///
/// burn copies a plain `Vec<u8>` (alignment 1) into a fresh 16-byte-aligned
/// allocation when it becomes tensor data; a buffer allocated as `u16`, `u32` or `u64`
/// elements becomes tensor data as it is, which spares the load one copy of every
/// tensor.
enum ElementBytes {
    /// One-byte elements.
    U8(Vec<u8>),
    /// Two-byte elements (f16, bf16, i16).
    U16(Vec<u16>),
    /// Four-byte elements (f32, i32).
    U32(Vec<u32>),
    /// Eight-byte elements (f64, i64).
    U64(Vec<u64>),
}

impl ElementBytes {
    /// `byte_len` zero bytes for elements of `element_size` bytes: a byte buffer for
    /// one-byte elements, and for a length that is no whole number of elements (which
    /// `into_data` then refuses).
    fn zeroed(element_size: usize, byte_len: usize) -> Self {
        let whole = |size: usize| element_size == size && byte_len.is_multiple_of(size);
        if whole(8) {
            Self::U64(vec![0; byte_len / 8])
        } else if whole(4) {
            Self::U32(vec![0; byte_len / 4])
        } else if whole(2) {
            Self::U16(vec![0; byte_len / 2])
        } else {
            Self::U8(vec![0; byte_len])
        }
    }

    /// The buffer as bytes, to be filled.
    fn as_mut(&mut self) -> &mut [u8] {
        match self {
            Self::U8(v) => v,
            Self::U16(v) => bytemuck::cast_slice_mut(v),
            Self::U32(v) => bytemuck::cast_slice_mut(v),
            Self::U64(v) => bytemuck::cast_slice_mut(v),
        }
    }

    /// Tensor data of `shape` and `dtype` over these bytes, without copying them.
    fn into_data(
        self,
        shape: impl Into<burn::tensor::Shape>,
        dtype: DType,
    ) -> std::result::Result<burn::tensor::TensorData, burn::tensor::DataError> {
        use burn::tensor::Bytes;
        let bytes = match self {
            Self::U8(v) => Bytes::from_elems(v),
            Self::U16(v) => Bytes::from_elems(v),
            Self::U32(v) => Bytes::from_elems(v),
            Self::U64(v) => Bytes::from_elems(v),
        };
        burn::tensor::TensorData::try_from_bytes(bytes, shape, dtype)
    }
}

/// Tensors found to hold values that are not finite in the precision they load into,
/// by hub name, with how many such values each has. Filled as each tensor's bytes are
/// read (in the pass that loads them, while they are in cache), checked after.
#[derive(Default, Clone)]
struct NonFiniteValues(std::sync::Arc<std::sync::Mutex<Vec<(String, usize)>>>);

impl NonFiniteValues {
    /// `tensor`, counting its non-finite values when it is read: NaN and infinities
    /// in any float dtype, f64 values past f32's range, and values past f16's range
    /// when the model loads in f16.
    fn watch(&self, tensor: PackTensor, load_dtype: DType) -> PackTensor {
        let (name, dtype, shape) = (tensor.name.clone(), tensor.dtype, tensor.shape.clone());
        let hub = hub_name(&name);
        let found = self.clone();
        burn::store::bridge::map_data(tensor, name, dtype, shape, move |data| {
            let count = non_finite_count(data.as_bytes(), data.dtype(), load_dtype);
            if count > 0 {
                found
                    .0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((hub.clone(), count));
            }
            data
        })
    }

    /// The first tensor found, in hub-name order (the order of loading varies).
    fn first(&self) -> Option<(String, usize)> {
        let found = self.0.lock().unwrap_or_else(|p| p.into_inner());
        found.iter().min().cloned()
    }
}

/// Values of `bytes` (little-endian `dtype`) that are not finite once loaded as
/// `load_dtype`: NaN or infinite, an f64 past f32's range, or past f16's range (65504)
/// for an f16 model (bf16 has f32's range).
fn non_finite_count(bytes: &[u8], dtype: DType, load_dtype: DType) -> usize {
    let f16_max = f32::from(half::f16::MAX);
    let bad = |v: f32| !v.is_finite() || (load_dtype == DType::F16 && v.abs() > f16_max);
    match dtype {
        // The common case, in one pass the compiler vectorizes: an f32 is NaN or
        // infinite exactly when its exponent bits are all set.
        DType::F32 if load_dtype != DType::F16 => bytes
            .as_chunks::<4>()
            .0
            .iter()
            .map(|b| usize::from(u32::from_le_bytes(*b) & 0x7f80_0000 == 0x7f80_0000))
            .sum(),
        DType::F32 => bytes
            .chunks_exact(4)
            .filter(|b| bad(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .count(),
        DType::F16 => bytes
            .chunks_exact(2)
            .filter(|b| bad(half::f16::from_le_bytes([b[0], b[1]]).to_f32()))
            .count(),
        DType::BF16 => bytes
            .chunks_exact(2)
            .filter(|b| bad(half::bf16::from_le_bytes([b[0], b[1]]).to_f32()))
            .count(),
        DType::F64 => bytes
            .chunks_exact(8)
            .filter(|b| bad(f64::from_le_bytes((*b).try_into().expect("8 bytes")) as f32))
            .count(),
        _ => 0,
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_read_in_parallel_give_the_file_bytes_and_a_short_file_is_an_error() {
        use std::io::Write;
        // Several pieces and a partial last one, read from an odd offset.
        let bytes: Vec<u8> = (0..1_700_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        for (offset, len) in [(0, bytes.len()), (7, 1_300_003), (1_699_990, 10), (5, 0)] {
            let mut buffer = vec![0u8; len];
            read_at(&file, &mut buffer, offset as u64).unwrap();
            assert!(
                buffer == bytes[offset..offset + len],
                "offset {offset}, {len} bytes"
            );
        }
        let mut past_the_end = vec![0u8; 1_000_000];
        let error = read_at(&file, &mut past_the_end, 900_000).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn every_tensor_maps_to_a_distinct_module_path_and_projections_fuse_in_order() {
        let config = RobertaConfig::from_json_str(
            r#"{"num_hidden_layers": 2, "hidden_size": 4, "num_attention_heads": 2, "intermediate_size": 8,
                "vocab_size": 10, "max_position_embeddings": 8}"#,
            Path::new("c"),
        )
        .unwrap();
        let table = hub_tensors(&config);
        // Each tensor filled with a value that tells which one it is.
        let tensors: Vec<PackTensor> = table
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let count = t.shape.iter().product();
                let data = burn::tensor::TensorData::new(vec![i as f32; count], t.shape.clone());
                burn::store::bridge::from_data(data, t.hub.clone(), None)
            })
            .collect();
        let index_of = |name: &str| table.iter().position(|t| t.hub == name).unwrap() as f32;
        let modules = to_modules(tensors, &config);
        assert_eq!(modules.len(), table.len() - 2 * 4);

        let weight = modules
            .iter()
            .find(|t| t.name == "layers.1.attention.query_key_value.weight")
            .unwrap();
        assert_eq!(weight.shape.to_vec(), vec![12, 4]);
        let values = burn::store::bridge::to_data(weight)
            .unwrap()
            .try_to_vec::<f32>()
            .unwrap();
        for (row, part) in ["query", "key", "value"].iter().enumerate() {
            let expected = index_of(&format!("encoder.layer.1.attention.self.{part}.weight"));
            assert!(
                values[row * 16..(row + 1) * 16]
                    .iter()
                    .all(|v| *v == expected),
                "{part} rows out of place"
            );
        }
        let names: Vec<&str> = modules.iter().map(|t| t.name.as_str()).collect();
        for name in [
            "layers.0.attention.query_key_value.bias",
            "layers.0.attention.output.bias",
            "layers.0.attention_norm.weight",
            "layers.1.output.weight",
            "layers.1.output_norm.bias",
            "layers.0.intermediate.weight",
            "embeddings.layer_norm.weight",
        ] {
            assert!(names.contains(&name), "{name} not in {names:?}");
        }
        assert!(
            names
                .iter()
                .all(|name| !name.contains(".self.") && !name.contains("encoder.")),
            "{names:?}"
        );
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
    }
}
