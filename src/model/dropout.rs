//! Dropout for training passes, its masks drawn from a source each training run owns
//! (not the device's shared generator): one seed then gives one run, whatever else the
//! process does at the same time.

use burn::tensor::{Bool, Tensor, TensorData};

/// Where a training run's dropout masks come from.
pub(crate) trait DropoutMasks: Sync {
    /// `len` flags, each true (dropped) with probability `p`.
    fn mask(&self, len: usize, p: f64) -> Vec<bool>;
}

/// One dropout site: probability `p`, masks from `masks`.
#[derive(Clone, Copy)]
pub(crate) struct Dropout<'a> {
    p: f64,
    masks: &'a dyn DropoutMasks,
}

impl<'a> Dropout<'a> {
    /// A site that zeroes each value with probability `p` and scales the rest by
    /// `1 / (1 - p)`, as `torch.nn.Dropout` in training.
    #[cfg_attr(not(feature = "train"), allow(dead_code))] // used by training only
    pub(crate) fn new(p: f64, masks: &'a dyn DropoutMasks) -> Self {
        Self { p, masks }
    }

    /// `x` with this site's dropout applied (unchanged where `p` is 0). The mask is
    /// kept as booleans, a byte a value, for the backward pass.
    pub(crate) fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if self.p == 0.0 {
            return x;
        }
        let dims = x.dims();
        let len = dims.iter().product();
        let dropped = Tensor::<D, Bool>::from_data(
            TensorData::new(self.masks.mask(len, self.p), dims),
            &x.device(),
        );
        x.mask_fill(dropped, 0.0) * (1.0 / (1.0 - self.p))
    }
}
