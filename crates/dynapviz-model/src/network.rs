//! The converted network: a DVS input layer and numbered chip layers (conv -> IAF -> sum pool),
//! in the form the chip (and the simulator) runs. Float parameters are kept beside the integer
//! ones so the float model can be evaluated too.

use serde::Serialize;

/// How a neuron's membrane is reset after a spike: the chip's `return_to_zero`, sinabs'
/// `reset_fn` (`MembraneSubtract`, its default, or `MembraneReset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Reset {
    /// v -= threshold (sinabs' default, and the chip's).
    Subtract,
    /// v = 0.
    Zero,
}

impl Reset {
    /// The mode named `subtract` or `zero` (as the command line and architecture files name
    /// them), or `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "subtract" => Some(Self::Subtract),
            "zero" => Some(Self::Zero),
            _ => None,
        }
    }
}

/// A rectangle kept by the DVS layer's crop, in pooled coordinates: rows `y0..y1`, columns `x0..x1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Crop {
    /// First row kept.
    pub y0: usize,
    /// One past the last row kept.
    pub y1: usize,
    /// First column kept.
    pub x0: usize,
    /// One past the last column kept.
    pub x1: usize,
}

/// The chip's DVS layer: polarity merge, sum pooling, crop and mirroring of sensor events.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DvsLayer {
    /// The network's input (C, H, W): C = 2 polarities, or 1 for merged polarities.
    pub input_shape: [usize; 3],
    /// Both polarities feed channel 0.
    pub merge_polarities: bool,
    /// Sum-pooling kernel (y, x), stride = kernel.
    pub pool: [usize; 2],
    /// Region kept after pooling (None: everything).
    pub crop: Option<Crop>,
    /// Mirror left-right.
    pub flip_x: bool,
    /// Mirror top-bottom.
    pub flip_y: bool,
    /// Swap x and y (mirror at the diagonal).
    pub swap_xy: bool,
    /// What the chip layers it sends to receive (C, H, W).
    pub output_shape: [usize; 3],
    /// Layers receiving the sensor events (1-based): layer 1, and one more where the network
    /// sends its input to two layers (the chip's DVS layer has two destinations, as a core).
    pub destinations: Vec<usize>,
}

/// Float parameters of one layer, after pooling rescale (what sinabs holds before discretizing).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FloatParams {
    /// Weights `[out][in][kh][kw]`.
    pub weights: Vec<f32>,
    /// Bias per output channel.
    pub bias: Option<Vec<f32>>,
    /// Spike threshold.
    pub threshold: f32,
    /// Lower bound of the membrane potential.
    pub min_v_mem: f32,
    /// The layer as the ANN computes it, where that is not these parameters on sum-pooled
    /// input: for the potentials it starts with (see [`crate::zero_step`]).
    #[serde(skip)]
    pub ann_form: Option<AnnForm>,
}

/// A weight layer as the ANN computes it: sinabs' `from_model` runs its step of zeros through
/// the ANN's modules, and only `DynapcnnNetwork` then folds a batch norm into the weights (the
/// norm ran with its `eps`, the fold leaves it out) and moves an average pooling's division into
/// them (by `rescale_method_1`'s factor, not the pooling's own, where paths of different poolings
/// merge). The potentials that step leaves are therefore not the chip layer's on the same input.
#[derive(Clone, Debug, PartialEq)]
pub struct AnnForm {
    /// The weights before any fold and before pooling's rescale.
    pub weights: Vec<f32>,
    /// The bias before any fold.
    pub bias: Option<Vec<f32>>,
    /// Each batch norm's eval map per channel, `y = x * alpha + beta`, in the order they
    /// follow the layer (see [`crate::BatchNorm::eval_affine`]).
    pub norms: Vec<(Vec<f32>, Vec<f32>)>,
    /// Per source of input (0: the DVS layer, else a layer's number), the area of the average
    /// poolings its spikes pass on the way here: the ANN divides them by it.
    pub input_areas: Vec<(usize, usize)>,
}

impl AnnForm {
    /// The area of the average poolings between `source` and this layer (1: none).
    pub fn area_from(&self, source: usize) -> usize {
        self.input_areas.iter().find(|&&(s, _)| s == source).map_or(1, |&(_, a)| a)
    }
}

/// Integer parameters of one layer, as loaded into a core.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QuantParams {
    /// 8-bit weights `[out][in][kh][kw]`.
    pub weights: Vec<i8>,
    /// Bias per output channel.
    pub bias: Option<Vec<i16>>,
    /// Spike threshold (16-bit state).
    pub threshold: i32,
    /// Lower bound of the membrane potential.
    pub min_v_mem: i32,
    /// The factor the float parameters were multiplied by.
    pub scale: f32,
    /// The potentials the neurons start with, `[c][y][x]` over the conv output: where sinabs'
    /// conversion leaves a biased layer (see [`crate::zero_step`]), and what it writes to the
    /// chip as the neurons' initial values. `None`: all zero.
    pub initial_v_mem: Option<Vec<i16>>,
}

/// One chip layer: conv -> IAF -> sum pool.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChipLayer {
    /// Layer number, 1-based (0 is the DVS layer).
    pub index: usize,
    /// The core it runs on, once mapped.
    pub core: Option<usize>,
    /// Input (C, H, W).
    pub in_shape: [usize; 3],
    /// Output channels.
    pub out_channels: usize,
    /// Kernel (ky, kx).
    pub kernel: [usize; 2],
    /// Stride (y, x).
    pub stride: [usize; 2],
    /// Zero padding (y, x).
    pub padding: [usize; 2],
    /// Sum-pooling kernel (y, x) applied to the spikes: the finest of its destinations'.
    pub pool: [usize; 2],
    /// Conv output (H, W) before pooling: the neuron array.
    pub conv_out: [usize; 2],
    /// Output after pooling (C, H, W).
    pub out_shape: [usize; 3],
    /// Reset mode.
    pub reset: Reset,
    /// Float parameters.
    pub float: FloatParams,
    /// Integer parameters, when discretized.
    pub quant: Option<QuantParams>,
    /// Layers receiving this layer's spikes (empty for the output layer).
    pub destinations: Vec<usize>,
    /// The pooling on the way to each destination (as `destinations`): the chip pools per
    /// destination; each is a multiple of `pool`, and most are `pool`.
    pub destination_pools: Vec<[usize; 2]>,
    /// Names of the ANN layers this chip layer was made from.
    pub source: Vec<String>,
}

impl ChipLayer {
    /// Number of neurons (output channels x conv output size).
    pub fn neurons(&self) -> usize {
        self.out_channels * self.conv_out[0] * self.conv_out[1]
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.in_shape[0]
    }

    /// The pooling on the way to destination `i` (of `destinations`).
    pub fn pool_to(&self, i: usize) -> [usize; 2] {
        self.destination_pools.get(i).copied().unwrap_or(self.pool)
    }

    /// What reaches destination `i` (of `destinations`), (C, H, W): the conv output pooled by
    /// its pooling.
    pub fn shape_to(&self, i: usize) -> [usize; 3] {
        let [py, px] = self.pool_to(i);
        [self.out_channels, self.conv_out[0] / py.max(1), self.conv_out[1] / px.max(1)]
    }
}

/// A converted network, ready for the simulator (and, mapped, for a chip).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Network {
    /// The input layer.
    pub dvs: DvsLayer,
    /// Chip layers in order, `layers[i].index == i + 1`.
    pub layers: Vec<ChipLayer>,
    /// The layers whose spikes leave the network (1-based, ascending): the last layer, whose
    /// channels are the classes, and any other the ANN's graph reads an output from (such a
    /// layer may send to layers too).
    pub outputs: Vec<usize>,
    /// The chip profile it was mapped to, if any.
    pub device: Option<String>,
}

impl Network {
    /// Number of output classes (channels of the last layer).
    pub fn classes(&self) -> usize {
        self.layers.last().map_or(0, |l| l.out_channels)
    }

    /// The last layer's output after its pooling, (C, H, W): sinabs' network output, whose
    /// neurons (not only its channels) its class counts count when H x W is more than 1.
    pub fn output_shape(&self) -> [usize; 3] {
        self.layers.last().map_or([0, 1, 1], |l| l.out_shape)
    }

    /// Where output neuron `(c, y, x)` is in sinabs' output flattened: `(c * H + y) * W + x`
    /// (the channel itself for an output of C x 1 x 1).
    pub fn output_index(&self, c: usize, y: usize, x: usize) -> usize {
        let [_, h, w] = self.output_shape();
        (c * h + y) * w + x
    }

    /// Whether every layer carries integer parameters.
    pub fn is_discretized(&self) -> bool {
        self.layers.iter().all(|l| l.quant.is_some())
    }
}
