//! `pytorch_model.bin` to `model.safetensors`, keeping the hub's tensor names.

use std::collections::HashMap;
use std::path::Path;

use burn::tensor::DType;
use safetensors::tensor::{Dtype as StDtype, TensorView};

use crate::error::{Error, Result};

/// Storage precision of converted float tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageDtype {
    /// Float tensors as f32 (f16 and bf16 ones widened).
    F32,
    /// Float tensors as f16 (half the size; logits then differ from f32 by rounding).
    F16,
}

/// Converts a PyTorch state dict to safetensors with the same tensor names, as
/// `safetensors.torch.save_file` would write it (so transformers loads it too).
/// The pickle is checked first: anything beyond plain tensors is refused. `dst` is
/// written whole or not at all ([`crate::files::write_atomically`]): a link there is
/// replaced rather than followed, and `dst` naming `src` is refused.
pub fn convert_pytorch_to_safetensors(src: &Path, dst: &Path, dtype: StorageDtype) -> Result<()> {
    let tensors = super::read_tensors(&super::WeightFile::PytorchBin(src.to_path_buf()))?;
    let format_error = |message: String| Error::WeightsFormat {
        path: src.to_path_buf(),
        message,
    };
    let mut owned: Vec<(String, StDtype, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        let shape = tensor.shape.to_vec();
        let bytes = tensor
            .to_bytes()
            .map_err(|e| format_error(format!("tensor `{name}`: {e}")))?;
        let (st_dtype, data) =
            convert_bytes(&name, tensor.dtype, &bytes, dtype).map_err(format_error)?;
        owned.push((name, st_dtype, shape, data));
    }
    let views = owned
        .iter()
        .map(|(name, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data)
                .map(|view| (name.clone(), view))
                .map_err(|e| format_error(format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    crate::files::write_atomically(dst, &[src], |tmp| {
        safetensors::serialize_to_file(views, Some(metadata), tmp).map_err(|e| {
            Error::WeightsFormat {
                path: dst.to_path_buf(),
                message: e.to_string(),
            }
        })
    })
}

fn convert_bytes(
    name: &str,
    from: DType,
    bytes: &[u8],
    to: StorageDtype,
) -> std::result::Result<(StDtype, Vec<u8>), String> {
    let floats: Option<Vec<f32>> = match from {
        DType::F32 => Some(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
        DType::F16 => Some(
            bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        ),
        DType::BF16 => Some(
            bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        ),
        DType::F64 => Some(
            bytes
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                .collect(),
        ),
        _ => None,
    };
    if let Some(values) = floats {
        let limit = match to {
            StorageDtype::F32 => f32::MAX,
            StorageDtype::F16 => f32::from(half::f16::MAX),
        };
        let non_finite = values
            .iter()
            .filter(|v| !v.is_finite() || v.abs() > limit)
            .count();
        if non_finite > 0 {
            return Err(format!(
                "tensor `{name}` holds {non_finite} value(s) that are NaN, infinite or past the range of {}; refusing to write weights that cannot give a verdict",
                match to {
                    StorageDtype::F32 => "f32",
                    StorageDtype::F16 => "f16",
                }
            ));
        }
        return Ok(match to {
            StorageDtype::F32 => (
                StDtype::F32,
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            StorageDtype::F16 => (
                StDtype::F16,
                values
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect(),
            ),
        });
    }
    let st = match from {
        DType::I64 => StDtype::I64,
        DType::I32 => StDtype::I32,
        DType::I16 => StDtype::I16,
        DType::I8 => StDtype::I8,
        DType::U8 => StDtype::U8,
        DType::Bool(_) => StDtype::BOOL,
        other => {
            return Err(format!(
                "tensor `{name}` has dtype {other:?}, which safetensors output does not support"
            ))
        }
    };
    Ok((st, bytes.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_and_overflowing_values_are_refused_by_tensor() {
        let bytes =
            |values: &[f32]| -> Vec<u8> { values.iter().flat_map(|v| v.to_le_bytes()).collect() };
        let finite = bytes(&[1.0, -2.5, 70_000.0]);
        assert!(convert_bytes("w", DType::F32, &finite, StorageDtype::F32).is_ok());
        // 70,000 is past f16's largest value (65504): it would be stored as infinity.
        let error = convert_bytes("w", DType::F32, &finite, StorageDtype::F16).unwrap_err();
        assert!(
            error.contains("tensor `w` holds 1 value(s)") && error.contains("f16"),
            "{error}"
        );
        let nan = bytes(&[f32::NAN, 0.0, f32::INFINITY]);
        let error = convert_bytes("b", DType::F32, &nan, StorageDtype::F32).unwrap_err();
        assert!(error.contains("tensor `b` holds 2 value(s)"), "{error}");
        // An f64 past f32's range overflows on the way.
        let big = 1.0e300f64.to_le_bytes();
        assert!(convert_bytes("d", DType::F64, &big, StorageDtype::F32).is_err());
    }
}
