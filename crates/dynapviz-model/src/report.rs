//! A per-layer summary of a converted network, with the field names of the sinabs golden
//! fixtures (`expected.json`), for the CLI, reports and tests.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::chip::{ChipProfile, CoreMemory, MemoryUse};
use crate::network::{ChipLayer, Network, Reset};

/// One chip layer's figures.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LayerReport {
    /// Layer number (1-based).
    pub index: usize,
    /// Core, when mapped.
    pub core: Option<usize>,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel (y, x).
    pub kernel: [usize; 2],
    /// Stride (y, x).
    pub stride: [usize; 2],
    /// Padding (y, x).
    pub padding: [usize; 2],
    /// Sum pooling (y, x).
    pub pool: [usize; 2],
    /// Output after pooling (C, H, W).
    pub output_shape: [usize; 3],
    /// Layers that receive its spikes (none: the network's output).
    pub destinations: Vec<usize>,
    /// The pooling on the way to each of them.
    pub destination_pools: Vec<[usize; 2]>,
    /// Its spikes leave the network (see [`Network::outputs`]).
    pub output: bool,
    /// Integer threshold (float when not discretized).
    pub threshold: f64,
    /// Integer min_v_mem.
    pub min_v_mem: f64,
    /// Whether a spike resets the potential to zero (the chip's `return_to_zero`) rather than
    /// subtracting the threshold.
    pub return_to_zero: bool,
    /// Smallest weight.
    pub weight_min: f64,
    /// Largest weight.
    pub weight_max: f64,
    /// Sum of |weight|.
    pub weight_abs_sum: f64,
    /// sha256 of the int8 weights in `[out][in][kh][kw]` order (discretized networks).
    pub weight_sha256_i8_oihw: Option<String>,
    /// Memory the layer needs.
    pub memory: MemoryUse,
    /// Memory of its core.
    pub core_memory: Option<CoreMemory>,
    /// The ANN layers it came from.
    pub source: Vec<String>,
    /// The lowest and highest potential the neurons start with, when not all 0 (a biased
    /// network, see [`crate::zero_step`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_v_mem_range: Option<[i16; 2]>,
}

impl LayerReport {
    /// The figures of `layer` of `network`; `profile` gives the core capacities when mapped.
    pub fn of(network: &Network, layer: &ChipLayer, profile: Option<&ChipProfile>) -> Self {
        let (threshold, min_v_mem, wmin, wmax, wsum, sha) = match &layer.quant {
            Some(q) => {
                let bytes: Vec<u8> = q.weights.iter().map(|&w| w as u8).collect();
                let sha = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect::<String>();
                let w = q.weights.iter().map(|&w| f64::from(w));
                (
                    f64::from(q.threshold),
                    f64::from(q.min_v_mem),
                    w.clone().fold(f64::INFINITY, f64::min),
                    w.clone().fold(f64::NEG_INFINITY, f64::max),
                    w.map(f64::abs).sum(),
                    Some(sha),
                )
            }
            None => {
                let w = layer.float.weights.iter().map(|&w| f64::from(w));
                (
                    f64::from(layer.float.threshold),
                    f64::from(layer.float.min_v_mem),
                    w.clone().fold(f64::INFINITY, f64::min),
                    w.clone().fold(f64::NEG_INFINITY, f64::max),
                    w.map(f64::abs).sum(),
                    None,
                )
            }
        };
        Self {
            index: layer.index,
            core: layer.core,
            in_channels: layer.in_channels(),
            out_channels: layer.out_channels,
            kernel: layer.kernel,
            stride: layer.stride,
            padding: layer.padding,
            pool: layer.pool,
            output_shape: layer.out_shape,
            destinations: layer.destinations.clone(),
            destination_pools: layer.destination_pools.clone(),
            output: network.outputs.contains(&layer.index),
            threshold,
            min_v_mem,
            return_to_zero: layer.reset == Reset::Zero,
            weight_min: wmin,
            weight_max: wmax,
            weight_abs_sum: wsum,
            weight_sha256_i8_oihw: sha,
            memory: MemoryUse::of(layer),
            core_memory: layer.core.and_then(|c| profile.and_then(|p| p.cores.get(c).copied())),
            source: layer.source.clone(),
            initial_v_mem_range: layer.quant.as_ref().and_then(|q| {
                let v = q.initial_v_mem.as_ref()?;
                Some([*v.iter().min()?, *v.iter().max()?])
            }),
        }
    }
}

/// Every layer's figures.
pub fn layers(network: &Network) -> Vec<LayerReport> {
    let profile = network.device.as_deref().and_then(|d| ChipProfile::by_name(d).ok());
    network.layers.iter().map(|l| LayerReport::of(network, l, profile.as_ref())).collect()
}
