//! The imported artificial network: a chain of PyTorch-like layers with float weights, the
//! common form that every importer produces and the converter consumes.

use crate::Tensor;

/// One layer of a sequential ANN, as PyTorch's `nn.Sequential` holds it.
#[derive(Clone, Debug, PartialEq)]
pub enum AnnLayer {
    /// `nn.Conv2d`; weight in `[out][in][kh][kw]` order.
    Conv {
        /// Weights.
        weight: Tensor,
        /// Optional bias per output channel.
        bias: Option<Vec<f32>>,
        /// (stride y, stride x).
        stride: [usize; 2],
        /// (padding y, padding x).
        padding: [usize; 2],
    },
    /// `nn.Linear`; weight `[out][in]`.
    Linear {
        /// Weights.
        weight: Tensor,
        /// Optional bias.
        bias: Option<Vec<f32>>,
    },
    /// `nn.ReLU`: becomes an integrate-and-fire layer.
    Relu,
    /// `nn.AvgPool2d` (stride must equal kernel).
    AvgPool {
        /// (ky, kx).
        kernel: [usize; 2],
        /// (sy, sx).
        stride: [usize; 2],
    },
    /// sinabs `SumPool2d`.
    SumPool {
        /// (ky, kx).
        kernel: [usize; 2],
        /// (sy, sx).
        stride: [usize; 2],
    },
    /// `nn.BatchNorm2d`/`1d` in eval mode, as a per-channel affine map.
    BatchNorm {
        /// gamma / sqrt(var + eps).
        scale: Vec<f32>,
        /// beta - mean * scale.
        shift: Vec<f32>,
    },
    /// `nn.Flatten`.
    Flatten,
    /// `nn.Dropout*` (no-op at inference).
    Dropout,
    /// `nn.Identity`.
    Identity,
}

impl AnnLayer {
    /// PyTorch's name for the layer kind, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            AnnLayer::Conv { .. } => "Conv2d",
            AnnLayer::Linear { .. } => "Linear",
            AnnLayer::Relu => "ReLU",
            AnnLayer::AvgPool { .. } => "AvgPool2d",
            AnnLayer::SumPool { .. } => "SumPool2d",
            AnnLayer::BatchNorm { .. } => "BatchNorm",
            AnnLayer::Flatten => "Flatten",
            AnnLayer::Dropout => "Dropout",
            AnnLayer::Identity => "Identity",
        }
    }
}

/// A named layer: `name` is the module index (`"18"`) or the ONNX node name.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedLayer {
    /// Where the layer came from, for error messages.
    pub name: String,
    /// The layer.
    pub layer: AnnLayer,
}

/// A sequential ANN.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ann {
    /// Layers in order.
    pub layers: Vec<NamedLayer>,
}

impl Ann {
    /// Appends a layer.
    pub fn push(&mut self, name: impl Into<String>, layer: AnnLayer) {
        self.layers.push(NamedLayer { name: name.into(), layer });
    }
}
