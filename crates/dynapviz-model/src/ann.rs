//! The imported artificial network: PyTorch-like layers with float weights in the order they
//! run, each naming the layers it takes its input from (a chain, or a graph with residual
//! merges), the common form that every importer produces and the converter consumes.

use crate::Tensor;
use crate::network::Reset;

/// One layer of an ANN, as PyTorch's modules hold it.
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
    /// `nn.ReLU`: becomes an integrate-and-fire layer (threshold 1, min_v_mem -1, as sinabs'
    /// `from_model` makes it).
    Relu,
    /// An integrate-and-fire layer already (sinabs' `IAF`, a NIR `IF`): its own threshold,
    /// lower bound and reset. The chip has one threshold per layer.
    Iaf {
        /// Spike threshold.
        threshold: f32,
        /// Lower bound of the membrane potential.
        min_v_mem: f32,
        /// What a spike does to the potential.
        reset: Reset,
    },
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
    /// `nn.BatchNorm2d`/`1d` in eval mode, with its parameters as trained: the ANN's forward
    /// and sinabs' conversion fold them differently (see [`BatchNorm`]).
    BatchNorm(BatchNorm),
    /// `nn.Flatten`.
    Flatten,
    /// `nn.Dropout*` (no-op at inference).
    Dropout,
    /// `nn.Identity`.
    Identity,
    /// sinabs' `Merge`: the sum of two inputs, the smaller padded with zeros at the end of each
    /// dimension (on the chip: two layers sending to one).
    Merge,
    /// Zeros appended after the end of the channels, rows and columns (torch's export of the
    /// padding in sinabs' `Merge` of inputs of different shapes).
    PadEnd {
        /// Added (C, H, W).
        pads: [usize; 3],
    },
}

impl AnnLayer {
    /// PyTorch's name for the layer kind, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            AnnLayer::Conv { .. } => "Conv2d",
            AnnLayer::Linear { .. } => "Linear",
            AnnLayer::Relu => "ReLU",
            AnnLayer::Iaf { .. } => "IAF",
            AnnLayer::AvgPool { .. } => "AvgPool2d",
            AnnLayer::SumPool { .. } => "SumPool2d",
            AnnLayer::BatchNorm { .. } => "BatchNorm",
            AnnLayer::Flatten => "Flatten",
            AnnLayer::Dropout => "Dropout",
            AnnLayer::Identity => "Identity",
            AnnLayer::Merge => "Merge",
            AnnLayer::PadEnd { .. } => "Pad",
        }
    }
}

/// Where a layer's input comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The network's input (the DVS events).
    Input,
    /// The output of an earlier layer, by its index in [`Ann::layers`].
    Layer(usize),
}

/// A named layer: `name` is the module index (`"18"`) or the ONNX node name.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedLayer {
    /// Where the layer came from, for error messages.
    pub name: String,
    /// The layer.
    pub layer: AnnLayer,
    /// What it takes as input: one source, two for a [`AnnLayer::Merge`].
    pub inputs: Vec<Source>,
}

/// An ANN: layers in an order where each comes after its inputs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ann {
    /// Layers in order.
    pub layers: Vec<NamedLayer>,
}

impl Ann {
    /// Appends a layer that takes the previous one's output (the first takes the input), as
    /// in `nn.Sequential`.
    pub fn push(&mut self, name: impl Into<String>, layer: AnnLayer) {
        let from = self.layers.len().checked_sub(1).map_or(Source::Input, Source::Layer);
        self.push_from(name, layer, vec![from]);
    }

    /// Appends a layer with the inputs it names.
    pub fn push_from(&mut self, name: impl Into<String>, layer: AnnLayer, inputs: Vec<Source>) {
        self.layers.push(NamedLayer { name: name.into(), layer, inputs });
    }

    /// Whether every layer takes the previous one's output: a chain.
    pub fn is_chain(&self) -> bool {
        self.layers.iter().enumerate().all(|(i, l)| l.inputs == [i.checked_sub(1).map_or(Source::Input, Source::Layer)])
    }
}

/// A batch norm's parameters per channel.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub running_mean: Vec<f32>,
    pub running_var: Vec<f32>,
    pub eps: f32,
}

impl BatchNorm {
    /// PyTorch's eval map as `y = x * scale + shift`, per channel, in f32 as ATen's CPU
    /// kernel computes it on a CPU with FMA (where sinabs' references are made): `scale = (1 /
    /// sqrt(var + eps)) * gamma`, `shift = beta - mean * scale` rounded once (a fused
    /// multiply-add), and `y` too is one fused multiply-add (see [`Self::apply`]). Each of the
    /// other orders tried differs from torch in a tenth to a half of the values of a random
    /// norm; this one in none.
    pub fn eval_affine(&self) -> (Vec<f32>, Vec<f32>) {
        let scale: Vec<f32> = self.gamma.iter().zip(&self.running_var).map(|(g, v)| (1.0 / (v + self.eps).sqrt()) * g).collect();
        let shift = self.beta.iter().zip(&self.running_mean).zip(&scale).map(|((b, m), s)| (-m).mul_add(*s, *b)).collect();
        (scale, shift)
    }

    /// `x * scale + shift` rounded once, as torch applies [`Self::eval_affine`].
    pub fn apply(x: f32, scale: f32, shift: f32) -> f32 {
        x.mul_add(scale, shift)
    }

    /// sinabs' `merge_bn`, which folds the norm into the layer before it without `eps`: the
    /// weights of output channel `o` times `factor[o] = gamma / sqrt(var)`, and its bias
    /// `beta + (bias - mean) * factor`, in that order, in f32. Returns the factors and the new
    /// biases for `bias` (0 without one).
    pub fn sinabs_fold(&self, bias: Option<&[f32]>) -> (Vec<f32>, Vec<f32>) {
        let factor: Vec<f32> = self.gamma.iter().zip(&self.running_var).map(|(g, v)| g / v.sqrt()).collect();
        let bias = (0..factor.len()).map(|o| bias.and_then(|b| b.get(o)).copied().unwrap_or(0.0));
        let new_bias = bias.zip(&self.running_mean).zip(&factor).zip(&self.beta).map(|(((b, m), f), beta)| beta + (b - m) * f).collect();
        (factor, new_bias)
    }

    /// The four per-channel arrays.
    pub fn arrays(&self) -> [&[f32]; 4] {
        [&self.gamma, &self.beta, &self.running_mean, &self.running_var]
    }
}
