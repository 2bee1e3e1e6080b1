//! Chip profiles (cores and their memories) and the per-layer limits of the DYNAP-CNN family
//! (DESIGN.md §4). Validation reports every violation with the layer, the limit and the value.

use serde::Serialize;

use crate::error::{ModelError, Result};
use crate::network::{ChipLayer, Network};

/// Memory of one core, in entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CoreMemory {
    /// Kernel (weight) memory.
    pub kernel: usize,
    /// Neuron state memory.
    pub neuron: usize,
    /// Bias memory.
    pub bias: usize,
}

/// A member of the chip family.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChipProfile {
    /// Canonical name (`speck2e`, ...).
    pub name: &'static str,
    /// Cores by index.
    pub cores: Vec<CoreMemory>,
    /// Whether a DVS sensor is on the chip (5 power rails instead of 3).
    pub has_sensor: bool,
}

const KI: usize = 1024;

fn cores(kernel: &[usize], neuron: &[usize], bias: &[usize]) -> Vec<CoreMemory> {
    kernel.iter().zip(neuron).zip(bias).map(|((&k, &n), &b)| CoreMemory { kernel: k * KI, neuron: n * KI, bias: b }).collect()
}

impl ChipProfile {
    /// Names accepted by [`ChipProfile::by_name`].
    pub const NAMES: [&'static str; 6] = ["speck2e", "speck2f", "speck2b", "dynapcnndevkit", "speck2cmini", "speck2dmini"];

    /// Looks a profile up by name; devkit/module suffixes are accepted (`speck2edevkit`).
    pub fn by_name(name: &str) -> Result<ChipProfile> {
        let n = name.to_ascii_lowercase().replace(['-', '_', ' '], "");
        let nine = || cores(&[16, 16, 16, 32, 32, 64, 64, 16, 16], &[64, 64, 64, 32, 32, 16, 16, 16, 16], &[1024; 9]);
        let five = || cores(&[16, 32, 32, 64, 16], &[64, 32, 32, 16, 16], &[0, 0, 0, 1024, 1024]);
        let strip = |p: &str| n.starts_with(p);
        let (canonical, cores, has_sensor) = if strip("speck2e") {
            ("speck2e", nine(), true)
        } else if strip("speck2f") {
            ("speck2f", nine(), true)
        } else if strip("speck2b") {
            ("speck2b", nine(), true)
        } else if strip("dynapcnn") {
            ("dynapcnndevkit", nine(), false)
        } else if strip("speck2cmini") {
            ("speck2cmini", five(), true)
        } else if strip("speck2dmini") {
            ("speck2dmini", five(), true)
        } else {
            return Err(ModelError::Invalid(format!("unknown device `{name}`: expected one of {}", Self::NAMES.join(", "))));
        };
        Ok(ChipProfile { name: canonical, cores, has_sensor })
    }
}

fn ceil_log2(v: usize) -> u32 {
    v.max(1).next_power_of_two().trailing_zeros()
}

/// Memory a layer needs, in entries (DESIGN.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MemoryUse {
    /// Kernel memory.
    pub kernel: usize,
    /// Neuron memory.
    pub neuron: usize,
    /// Bias memory.
    pub bias: usize,
}

impl MemoryUse {
    /// The memory of `layer`.
    pub fn of(layer: &ChipLayer) -> MemoryUse {
        let [kh, kw] = layer.kernel;
        let [fh, fw] = layer.conv_out;
        MemoryUse {
            kernel: layer.in_channels() << (ceil_log2(kh * kw) + ceil_log2(layer.out_channels)),
            neuron: layer.out_channels << (ceil_log2(fh) + ceil_log2(fw)),
            bias: if layer.float.bias.is_some() { layer.out_channels } else { 0 },
        }
    }

    /// Why it does not fit `core`, or `None` when it does.
    pub fn misfit(&self, core: &CoreMemory) -> Option<String> {
        let mut why = Vec::new();
        if self.kernel > core.kernel {
            why.push(format!("kernel memory {} > {}", self.kernel, core.kernel));
        }
        if self.neuron > core.neuron {
            why.push(format!("neuron memory {} > {}", self.neuron, core.neuron));
        }
        if self.bias > core.bias {
            why.push(format!("bias memory {} > {}", self.bias, core.bias));
        }
        (!why.is_empty()).then(|| why.join(", "))
    }
}

/// Limits every layer of the family must respect.
pub mod limits {
    /// Largest kernel side.
    pub const MAX_KERNEL: usize = 16;
    /// Allowed strides.
    pub const STRIDES: [usize; 4] = [1, 2, 4, 8];
    /// Largest padding.
    pub const MAX_PADDING: usize = 7;
    /// Allowed sum-pooling sizes.
    pub const POOLS: [usize; 3] = [1, 2, 4];
    /// Most channels of a layer.
    pub const MAX_CHANNELS: usize = 1024;
    /// Largest input map side.
    pub const MAX_INPUT: usize = 128;
    /// Largest conv output map side.
    pub const MAX_OUTPUT: usize = 64;
    /// Destinations per layer.
    pub const MAX_DESTINATIONS: usize = 2;
}

/// Checks the network against the family's limits and the profile's layer count; lists every
/// violation at once.
pub fn validate(network: &Network, profile: &ChipProfile) -> Result<()> {
    use limits::*;
    let mut v = Vec::new();
    if network.layers.len() > profile.cores.len() {
        v.push(format!("the network has {} layers, the {} has {} cores", network.layers.len(), profile.name, profile.cores.len()));
    }
    let dvs = &network.dvs;
    // Each rule once per layer, with both axes: not twice for a square kernel or pool.
    if !dvs.pool.iter().all(|p| POOLS.contains(p)) {
        v.push(format!("layer 0 (DVS): pooling {}x{}: allowed {POOLS:?}", dvs.pool[0], dvs.pool[1]));
    }
    if dvs.input_shape[1] > MAX_INPUT || dvs.input_shape[2] > MAX_INPUT {
        v.push(format!("layer 0 (DVS): input {}x{}: at most {MAX_INPUT}x{MAX_INPUT}", dvs.input_shape[1], dvs.input_shape[2]));
    }
    if dvs.destinations.len() > MAX_DESTINATIONS {
        v.push(format!("layer 0 (DVS): {} destinations: at most {MAX_DESTINATIONS}", dvs.destinations.len()));
    }
    for l in &network.layers {
        let name = format!("layer {} ({})", l.index, l.source.join(", "));
        let [kh, kw] = l.kernel;
        if kh != kw {
            v.push(format!("{name}: kernel {kh}x{kw}: must be square"));
        }
        if kh.max(kw) > MAX_KERNEL {
            v.push(format!("{name}: kernel {kh}x{kw}: at most {MAX_KERNEL}x{MAX_KERNEL}"));
        }
        if !l.stride.iter().all(|s| STRIDES.contains(s)) {
            v.push(format!("{name}: stride {},{}: allowed {STRIDES:?}", l.stride[0], l.stride[1]));
        }
        if l.padding.iter().any(|&p| p > MAX_PADDING) {
            v.push(format!("{name}: padding {},{}: at most {MAX_PADDING}", l.padding[0], l.padding[1]));
        }
        for pool in std::iter::once(&l.pool).chain(&l.destination_pools) {
            if !pool.iter().all(|p| POOLS.contains(p)) {
                v.push(format!("{name}: pooling {}x{}: allowed {POOLS:?}", pool[0], pool[1]));
                break;
            }
        }
        for (what, c) in [("input", l.in_channels()), ("output", l.out_channels)] {
            if c > MAX_CHANNELS {
                v.push(format!("{name}: {c} {what} channels: at most {MAX_CHANNELS}"));
            }
        }
        if l.in_shape[1] > MAX_INPUT || l.in_shape[2] > MAX_INPUT {
            v.push(format!("{name}: input map {}x{}: at most {MAX_INPUT}x{MAX_INPUT}", l.in_shape[1], l.in_shape[2]));
        }
        if l.conv_out[0] > MAX_OUTPUT || l.conv_out[1] > MAX_OUTPUT {
            v.push(format!("{name}: output map {}x{}: at most {MAX_OUTPUT}x{MAX_OUTPUT}", l.conv_out[0], l.conv_out[1]));
        }
        if l.destinations.len() > MAX_DESTINATIONS {
            v.push(format!("{name}: {} destinations: at most {MAX_DESTINATIONS}", l.destinations.len()));
        }
        let mem = MemoryUse::of(l);
        let biggest = CoreMemory {
            kernel: profile.cores.iter().map(|c| c.kernel).max().unwrap_or(0),
            neuron: profile.cores.iter().map(|c| c.neuron).max().unwrap_or(0),
            bias: profile.cores.iter().map(|c| c.bias).max().unwrap_or(0),
        };
        if let Some(why) = mem.misfit(&biggest) {
            v.push(format!("{name}: fits no core of the {}: {why} (largest core memories)", profile.name));
        }
        if let Some(q) = &l.quant
            && !(i32::from(i16::MIN)..=i32::from(i16::MAX)).contains(&q.threshold)
        {
            v.push(format!("{name}: threshold {}: must fit 16 bits", q.threshold));
        }
    }
    if v.is_empty() { Ok(()) } else { Err(ModelError::Constraints { device: profile.name.to_string(), violations: v }) }
}
