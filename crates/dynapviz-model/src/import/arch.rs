//! The architecture file that goes with a PyTorch state_dict: a TOML list of the layers of the
//! user's `nn.Sequential`, with their module indices, so weights can be matched to layers the
//! way `load_state_dict(strict=False)` does, but with every mismatch reported at once.
//!
//! A sinabs spiking network's state_dict works too: its `IAF` (or `IAFSqueeze`) layers take
//! their `spike_threshold` and `min_v_mem` from it. The state_dict does not hold the reset
//! (sinabs' `reset_fn`): an IAF layer of the file says `reset = "zero"` for sinabs'
//! `MembraneReset`; without it the layer subtracts (`MembraneSubtract`, sinabs' default).
//!
//! ```toml
//! input_shape = [2, 128, 128]          # optional, the --input-shape default
//! [[layers]]
//! index = 0
//! type = "Conv2d"
//! in_channels = 2
//! out_channels = 16
//! kernel_size = 2
//! stride = 2
//! bias = false
//! [[layers]]
//! index = 1
//! type = "ReLU"
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::Tensor;
use crate::ann::{Ann, AnnLayer};
use crate::error::{ModelError, Result, file_error};
use crate::network::Reset;

/// An integer or a pair, as PyTorch accepts for kernel sizes, strides and paddings.
#[derive(Deserialize, Clone, Copy, Debug)]
#[serde(untagged)]
enum Pair {
    One(usize),
    Two([usize; 2]),
}

impl Pair {
    fn get(self) -> [usize; 2] {
        match self {
            Pair::One(v) => [v, v],
            Pair::Two(v) => v,
        }
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct LayerSpec {
    index: toml::Value,
    #[serde(rename = "type")]
    kind: String,
    in_channels: Option<usize>,
    out_channels: Option<usize>,
    kernel_size: Option<Pair>,
    stride: Option<Pair>,
    padding: Option<Pair>,
    bias: Option<bool>,
    in_features: Option<usize>,
    out_features: Option<usize>,
    num_features: Option<usize>,
    eps: Option<f32>,
    /// An IAF layer's reset: `subtract` or `zero`.
    reset: Option<String>,
    /// Dropout probability: accepted for fidelity to the PyTorch module, unused at inference.
    #[serde(rename = "p")]
    _p: Option<f32>,
}

/// The parsed architecture file.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Arch {
    /// Default input shape (C, H, W).
    pub input_shape: Option<[usize; 3]>,
    /// A prefix of every state_dict key (e.g. `model.` or `module.`).
    #[serde(default)]
    prefix: String,
    layers: Vec<LayerSpec>,
}

impl Arch {
    /// Reads and parses an architecture file.
    pub fn load(path: &Path) -> Result<Arch> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), error: source })?;
        Self::parse(&text, path)
    }

    /// Parses architecture TOML already in memory; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Arch> {
        toml::from_str(text).map_err(|e| file_error(path, format!("not a valid architecture file: {e}")))
    }

    /// Builds the ANN from this architecture and a state_dict (key -> tensor), checking every
    /// key: missing and mis-shaped weights are errors, unexpected keys too (a typo in the
    /// architecture would otherwise silently drop a layer); all are listed in one message.
    pub fn build(&self, arch_path: &Path, weights_path: &Path, state: Vec<(String, Tensor)>) -> Result<Ann> {
        let mut w = Weights { state: state.into_iter().collect(), problems: Vec::new(), prefix: &self.prefix };
        let mut ann = Ann::default();
        for spec in &self.layers {
            let index = match &spec.index {
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::String(s) => s.clone(),
                other => {
                    w.problems.push(format!("layer index {other} must be an integer or a string"));
                    continue;
                }
            };
            if spec.reset.is_some() && !matches!(spec.kind.as_str(), "IAF" | "IAFSqueeze") {
                w.problems.push(format!(
                    "layer {index} ({}): only IAF layers take a `reset` (the pipeline's reset option sets the others')",
                    spec.kind
                ));
            }
            if let Some(layer) = w.layer(spec, &index) {
                ann.push(index, layer);
            }
        }
        let Weights { state, mut problems, .. } = w;
        for key in state.keys() {
            problems.push(format!("unexpected key `{key}`: no layer of the architecture uses it"));
        }
        if problems.is_empty() {
            Ok(ann)
        } else {
            Err(file_error(weights_path, format!("does not match the architecture {}:\n  {}", arch_path.display(), problems.join("\n  "))))
        }
    }
}

/// The state_dict being consumed, and every problem found so far.
struct Weights<'a> {
    state: BTreeMap<String, Tensor>,
    problems: Vec<String>,
    prefix: &'a str,
}

impl Weights<'_> {
    fn take(&mut self, index: &str, name: &str, shape: Vec<usize>) -> Option<Tensor> {
        let key = format!("{}{index}.{name}", self.prefix);
        match self.state.remove(&key) {
            None => {
                self.problems.push(format!("missing key `{key}` (expected shape {shape:?})"));
                None
            }
            Some(t) if t.shape != shape => {
                self.problems.push(format!("key `{key}` has shape {:?}, the architecture needs {shape:?}", t.shape));
                None
            }
            Some(t) => Some(t),
        }
    }

    fn need<T>(&mut self, v: Option<T>, index: &str, spec: &LayerSpec, what: &str) -> Option<T> {
        if v.is_none() {
            self.problems.push(format!("layer {index} ({}): `{what}` is required", spec.kind));
        }
        v
    }

    /// Bias of `n` values when the layer has one: `Some(None)` = no bias, `None` = problem.
    fn bias(&mut self, spec: &LayerSpec, index: &str, n: usize) -> Option<Option<Vec<f32>>> {
        if spec.bias.unwrap_or(true) { self.take(index, "bias", vec![n]).map(|t| Some(t.data)) } else { Some(None) }
    }

    fn layer(&mut self, spec: &LayerSpec, index: &str) -> Option<AnnLayer> {
        Some(match spec.kind.as_str() {
            "Conv2d" => {
                let cin = self.need(spec.in_channels, index, spec, "in_channels");
                let cout = self.need(spec.out_channels, index, spec, "out_channels");
                let k = self.need(spec.kernel_size.map(Pair::get), index, spec, "kernel_size");
                let (cin, cout, k) = (cin?, cout?, k?);
                let weight = self.take(index, "weight", vec![cout, cin, k[0], k[1]]);
                let bias = self.bias(spec, index, cout);
                AnnLayer::Conv {
                    weight: weight?,
                    bias: bias?,
                    stride: spec.stride.map_or([1, 1], Pair::get),
                    padding: spec.padding.map_or([0, 0], Pair::get),
                }
            }
            "Linear" => {
                let fin = self.need(spec.in_features, index, spec, "in_features");
                let fout = self.need(spec.out_features, index, spec, "out_features");
                let (fin, fout) = (fin?, fout?);
                let weight = self.take(index, "weight", vec![fout, fin]);
                let bias = self.bias(spec, index, fout);
                AnnLayer::Linear { weight: weight?, bias: bias? }
            }
            "BatchNorm2d" | "BatchNorm1d" => {
                let n = self.need(spec.num_features, index, spec, "num_features")?;
                let parts: Vec<Option<Tensor>> =
                    ["weight", "bias", "running_mean", "running_var"].iter().map(|k| self.take(index, k, vec![n])).collect();
                self.state.remove(&format!("{}{index}.num_batches_tracked", self.prefix));
                let [Some(g), Some(b), Some(m), Some(v)] = <[Option<Tensor>; 4]>::try_from(parts).ok()? else {
                    return None;
                };
                crate::import::batch_norm(&g.data, &b.data, &m.data, &v.data, spec.eps.unwrap_or(1e-5))
            }
            "ReLU" => AnnLayer::Relu,
            // A sinabs spiking network's layer: its threshold and lower bound are tensors of the
            // state_dict; `v_mem` is the state its last run left, not part of the network.
            "IAF" | "IAFSqueeze" => {
                self.state.remove(&format!("{}{index}.v_mem", self.prefix));
                let threshold = self.take(index, "spike_threshold", vec![]);
                let min_v_mem = self.take(index, "min_v_mem", vec![]);
                let reset = match spec.reset.as_deref() {
                    None => Some(Reset::Subtract),
                    Some(name) => Reset::from_name(name).or_else(|| {
                        self.problems.push(format!("layer {index} ({}): reset `{name}` (expected \"subtract\" or \"zero\")", spec.kind));
                        None
                    }),
                };
                let (Some(&threshold), Some(&min_v_mem)) = (threshold?.data.first(), min_v_mem?.data.first()) else {
                    self.problems.push(format!("layer {index} ({}): empty threshold or min_v_mem", spec.kind));
                    return None;
                };
                AnnLayer::Iaf { threshold, min_v_mem, reset: reset? }
            }
            "AvgPool2d" | "SumPool2d" => {
                let k = self.need(spec.kernel_size.map(Pair::get), index, spec, "kernel_size")?;
                let stride = spec.stride.map_or(k, Pair::get);
                if spec.kind == "AvgPool2d" { AnnLayer::AvgPool { kernel: k, stride } } else { AnnLayer::SumPool { kernel: k, stride } }
            }
            "Flatten" => AnnLayer::Flatten,
            "Dropout" | "Dropout2d" | "Dropout1d" => AnnLayer::Dropout,
            "Identity" => AnnLayer::Identity,
            other => {
                self.problems.push(format!("layer {index}: unknown type `{other}` (expected Conv2d, Linear, ReLU, IAF, AvgPool2d, SumPool2d, BatchNorm2d, Flatten, Dropout, Identity)"));
                return None;
            }
        })
    }
}
