//! A dense float tensor: all the model pipeline needs to carry weights between stages.

/// Row-major `f32` values with their shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first (PyTorch order).
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor; `data.len()` must equal the product of `shape` (a product that overflows, as
    /// a corrupt file's dimensions may, equals nothing).
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Option<Self> {
        (len_of(shape.iter().copied()) == Some(data.len())).then_some(Self { shape, data })
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor holds no values.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The transpose of a 2-D tensor.
    pub fn transposed(&self) -> Option<Tensor> {
        let [r, c] = self.shape[..] else { return None };
        let mut data = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                data[j * r + i] = self.data[i * c + j];
            }
        }
        Some(Tensor { shape: vec![c, r], data })
    }
}

/// The number of values of an array of `dims`; `None` where the product overflows, as a
/// corrupt file's dimensions may make it.
pub(crate) fn len_of(dims: impl IntoIterator<Item = usize>) -> Option<usize> {
    dims.into_iter().try_fold(1usize, |n, d| n.checked_mul(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_whose_product_overflows_fits_no_data() {
        assert!(Tensor::new(vec![1 << 32, 1 << 32], Vec::new()).is_none());
        assert!(Tensor::new(vec![usize::MAX, 2], vec![0.0; 2]).is_none());
        assert!(Tensor::new(vec![2, 0], Vec::new()).is_some());
    }
}
