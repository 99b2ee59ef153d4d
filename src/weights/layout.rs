//! The hub's tensor layout to this crate's modules: linear weights from PyTorch's
//! `[out, in]` to burn's `[in, out]`, LayerNorm `weight`/`bias` to `gamma`/`beta`.

use burn::store::{bridge, ModuleAdapter, ModuleContext, PyTorchToBurnAdapter};
use burn::tensor::DType;

use super::{ElementBytes, PackTensor};

/// [`PyTorchToBurnAdapter`] with a cache-blocked transpose of the linear weights.
///
/// burn-store's own transpose copies element by element down the columns of the
/// result, one cache miss per element; over codebert-base's 85 M projection weights
/// that was most of the load time. Everything else is left to `PyTorchToBurnAdapter`.
#[derive(Debug, Clone, Default)]
pub(super) struct HubToBurnAdapter {
    /// The encoder layers' projections are held `[out, in]`
    /// ([`crate::model::ProjectionLayout::OutIn`]): their weights are not transposed.
    pub(super) projections_out_in: bool,
}

impl ModuleAdapter for HubToBurnAdapter {
    fn adapt(&self, tensor: PackTensor, ctx: ModuleContext<'_>) -> PackTensor {
        let linear_weight = ctx.module_type() == Some("Struct:Linear")
            && tensor.name.rsplit('.').next() == Some("weight")
            && tensor.shape.len() == 2;
        // Every linear layer under the layers is one of their four projections.
        if linear_weight && self.projections_out_in && tensor.name.starts_with(super::names::LAYERS) {
            return tensor;
        }
        let element_size = match tensor.dtype {
            DType::F64 => 8,
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
            // Anything else is refused by the dtype check before loading.
            _ => 0,
        };
        if !linear_weight || element_size == 0 {
            return PyTorchToBurnAdapter.adapt(tensor, ctx);
        }
        let (name, dtype) = (tensor.name.clone(), tensor.dtype);
        let (rows, cols) = (tensor.shape[0], tensor.shape[1]);
        bridge::map_data(tensor, name, dtype, [cols, rows].into(), move |data| {
            let bytes = data.as_bytes();
            let mut transposed = ElementBytes::zeroed(element_size, bytes.len());
            match element_size {
                8 => transpose::<8>(bytes, transposed.as_mut(), rows, cols),
                4 => transpose::<4>(bytes, transposed.as_mut(), rows, cols),
                _ => transpose::<2>(bytes, transposed.as_mut(), rows, cols),
            }
            transposed
                .into_data([cols, rows], dtype)
                .expect("a transpose keeps the byte length")
        })
    }

    fn get_alternative_param_name(&self, param_name: &str, module_type: &str) -> Option<String> {
        PyTorchToBurnAdapter.get_alternative_param_name(param_name, module_type)
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}

/// Writes into `out` the `[cols, rows]` transpose of the row-major `[rows, cols]`
/// matrix `bytes` of `N`-byte elements.
///
/// It goes through TILE x TILE blocks in a local buffer so that every write to `out`
/// is a run of TILE contiguous elements: writing element by element down a column
/// would touch one cache line per element at a stride of a power-of-two row length,
/// which maps every line to the same few cache sets.
fn transpose<const N: usize>(bytes: &[u8], out: &mut [u8], rows: usize, cols: usize) {
    const TILE: usize = 16;
    let (source, rest) = bytes.as_chunks::<N>();
    let (out, out_rest) = out.as_chunks_mut::<N>();
    assert!(
        rest.is_empty()
            && out_rest.is_empty()
            && source.len() == rows * cols
            && out.len() == source.len(),
        "transpose of {rows}x{cols} over {} bytes",
        bytes.len()
    );
    // Each band of TILE source columns fills its own TILE output rows, so bands run in
    // parallel: the copy and the first touch of the output's fresh pages are shared
    // between cores.
    let band = |(band_index, out_band): (usize, &mut [[u8; N]])| {
        let col_start = band_index * TILE;
        let band_cols = TILE.min(cols - col_start);
        let mut block = [[[0u8; N]; TILE]; TILE];
        for row_start in (0..rows).step_by(TILE) {
            let block_rows = TILE.min(rows - row_start);
            let lines = source[row_start * cols..].chunks(cols).take(block_rows);
            for (row, line) in lines.enumerate() {
                for (col, value) in line[col_start..col_start + band_cols].iter().enumerate() {
                    block[col][row] = *value;
                }
            }
            for (col, column) in block[..band_cols].iter().enumerate() {
                let at = col * rows + row_start;
                let target = &mut out_band[at..at + block_rows];
                if block_rows == TILE {
                    // A whole block column: a fixed-size copy, inlined.
                    let whole: &mut [[u8; N]; TILE] = target.try_into().expect("TILE elements");
                    *whole = *column;
                } else {
                    target.copy_from_slice(&column[..block_rows]);
                }
            }
        }
    };
    #[cfg(feature = "cpu-kernels")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(TILE * rows).enumerate().for_each(band);
    }
    #[cfg(not(feature = "cpu-kernels"))]
    out.chunks_mut(TILE * rows).enumerate().for_each(band);
}

#[cfg(test)]
mod tests {
    use super::transpose;

    #[test]
    fn transposes_partial_tiles_of_every_element_size() {
        // 37 x 70: neither side a multiple of the tile.
        let (rows, cols) = (37, 70);
        let values: Vec<u32> = (0..(rows * cols) as u32).collect();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = vec![0u8; bytes.len()];
        transpose::<4>(&bytes, &mut out, rows, cols);
        for r in 0..rows {
            for c in 0..cols {
                let at = (c * rows + r) * 4;
                let v = u32::from_le_bytes(out[at..at + 4].try_into().unwrap());
                assert_eq!(v, values[r * cols + c], "element ({r}, {c})");
            }
        }
        let halves: Vec<u8> = (0..(rows * cols) as u16)
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut out = vec![0u8; halves.len()];
        transpose::<2>(&halves, &mut out, rows, cols);
        assert_eq!(
            &out[2..4],
            &(cols as u16).to_le_bytes(),
            "(1, 0) lands after (0, 0)"
        );
        let doubles: Vec<u8> = (0..(rows * cols) as u64)
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut out = vec![0u8; doubles.len()];
        transpose::<8>(&doubles, &mut out, rows, cols);
        assert_eq!(
            &out[(rows * cols - 1) * 8..],
            &((rows * cols - 1) as u64).to_le_bytes()
        );
    }
}
