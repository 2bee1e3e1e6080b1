//! One builder that runs the whole pipeline with sinabs' defaults.

use std::path::{Path, PathBuf};

use crate::chip::{self, ChipProfile};
use crate::convert::{self, DvsOptions};
use crate::error::{ModelError, Result};
use crate::network::{Network, Reset};
use crate::{Ann, AnnLayer, discretize, import, mapping};

/// How layers are assigned to cores.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Ordering {
    /// sinabs' "auto" matching.
    #[default]
    Auto,
    /// The core of layer 1, 2, ... as given.
    Manual(Vec<usize>),
}

/// Import, convert, discretize, validate and map a model.
#[derive(Clone, Debug)]
pub struct Pipeline {
    model: PathBuf,
    arch: Option<PathBuf>,
    input_shape: Option<[usize; 3]>,
    device: Option<String>,
    ordering: Ordering,
    discretize: bool,
    dvs: DvsOptions,
    reset: Option<Reset>,
    neurons: Neurons,
}

/// The options of sinabs' `from_model` besides `reset_fn`: each `None` keeps what the model says
/// (a ReLU's IAF: threshold 1, min_v_mem -1; an imported IAF: its own; the biases as they are).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Neurons {
    /// `spike_threshold`: every layer's.
    pub spike_threshold: Option<f32>,
    /// `min_v_mem`: every layer's lower bound of the potential.
    pub min_v_mem: Option<f32>,
    /// `bias_rescaling`: every conv's and linear layer's bias divided by it (in f32, as torch's
    /// `bias /= r`), before batch norm folds in, as sinabs divides them before its
    /// `DynapcnnNetwork` folds the norms.
    pub bias_rescaling: Option<f32>,
}

impl Neurons {
    /// Refuses values sinabs would take but no network can run with: a threshold that is not
    /// positive, a bound above 0, a rescaling of 0; and anything not finite.
    fn check(&self) -> Result<()> {
        let bad = |what: &str, v: f32, want: &str| Err(ModelError::Invalid(format!("{what} {v}: expected {want}")));
        match *self {
            Neurons { spike_threshold: Some(t), .. } if !(t.is_finite() && t > 0.0) => bad("spike threshold", t, "a positive number"),
            Neurons { min_v_mem: Some(m), .. } if !(m.is_finite() && m <= 0.0) => bad("min_v_mem", m, "a number of at most 0"),
            Neurons { bias_rescaling: Some(r), .. } if !(r.is_finite() && r != 0.0) => bad("bias rescaling", r, "a number other than 0"),
            _ => Ok(()),
        }
    }

    /// The ANN with its biases divided by `bias_rescaling`, when that is set.
    fn rescaled(&self, ann: &Ann) -> Option<Ann> {
        let r = self.bias_rescaling.filter(|&r| r != 1.0)?;
        let mut ann = ann.clone();
        for l in &mut ann.layers {
            if let AnnLayer::Conv { bias: Some(b), .. } | AnnLayer::Linear { bias: Some(b), .. } = &mut l.layer {
                b.iter_mut().for_each(|v| *v /= r);
            }
        }
        Some(ann)
    }
}

impl Pipeline {
    /// Starts from a model file (`.onnx`, or a state_dict with [`Pipeline::arch`]).
    pub fn new(model: &Path) -> Self {
        Self {
            model: model.to_path_buf(),
            arch: None,
            input_shape: None,
            device: None,
            ordering: Ordering::Auto,
            discretize: true,
            dvs: DvsOptions::default(),
            reset: None,
            neurons: Neurons::default(),
        }
    }

    /// The architecture file of a state_dict.
    pub fn arch(mut self, arch: Option<&Path>) -> Self {
        self.arch = arch.map(Path::to_path_buf);
        self
    }

    /// The input (C, H, W); required unless the architecture file gives it.
    pub fn input_shape(mut self, shape: [usize; 3]) -> Self {
        self.input_shape = Some(shape);
        self
    }

    /// The chip profile to validate and map for; without one the network stays unmapped.
    pub fn device(mut self, name: &str) -> Self {
        self.device = Some(name.to_string());
        self
    }

    /// Core assignment.
    pub fn ordering(mut self, ordering: Ordering) -> Self {
        self.ordering = ordering;
        self
    }

    /// Keep float parameters only (no integer ones).
    pub fn discretize(mut self, on: bool) -> Self {
        self.discretize = on;
        self
    }

    /// DVS layer options.
    pub fn dvs(mut self, dvs: DvsOptions) -> Self {
        self.dvs = dvs;
        self
    }

    /// The reset of every layer's neurons, as sinabs' `from_model(..., reset_fn=...)` sets it
    /// for the layers it makes (`MembraneSubtract` or `MembraneReset`). `None` keeps what the
    /// model says: subtract for a ReLU, an imported IAF's own.
    pub fn reset(mut self, reset: Option<Reset>) -> Self {
        self.reset = reset;
        self
    }

    /// The threshold, lower bound and bias rescaling sinabs' `from_model` was given (see
    /// [`Neurons`]).
    pub fn neurons(mut self, neurons: Neurons) -> Self {
        self.neurons = neurons;
        self
    }

    /// Runs every stage.
    pub fn build(self) -> Result<Network> {
        let (ann, arch_shape) = import::load(&self.model, self.arch.as_deref())?;
        self.build_from(&ann, arch_shape)
    }

    /// Runs every stage after import on an ANN already loaded (`shape`: the input shape the
    /// architecture names, used unless one was set).
    pub fn build_from(self, ann: &Ann, arch_shape: Option<[usize; 3]>) -> Result<Network> {
        // The device is an option, not part of the model: its error names no file.
        let profile = self.device.as_deref().map(ChipProfile::by_name).transpose()?;
        let named = |error| ModelError::Network { path: self.model.clone(), error: Box::new(error) };
        let shape = self
            .input_shape
            .or(arch_shape)
            .ok_or_else(|| named(ModelError::Invalid("the input shape is unknown: pass --input-shape C,H,W".into())))?;
        self.neurons.check()?;
        let rescaled = self.neurons.rescaled(ann);
        let mut net = convert::convert(rescaled.as_ref().unwrap_or(ann), shape, &self.dvs).map_err(named)?;
        for l in &mut net.layers {
            if let Some(reset) = self.reset {
                l.reset = reset;
            }
            if let Some(threshold) = self.neurons.spike_threshold {
                l.float.threshold = threshold;
            }
            if let Some(min_v_mem) = self.neurons.min_v_mem {
                l.float.min_v_mem = min_v_mem;
            }
        }
        if self.discretize {
            discretize::discretize(&mut net);
        }
        if let Some(profile) = &profile {
            chip::validate(&net, profile).map_err(named)?;
            match &self.ordering {
                Ordering::Auto => {
                    mapping::map_auto(&mut net, profile).map_err(named)?;
                }
                Ordering::Manual(cores) => mapping::map_manual(&mut net, profile, cores).map_err(named)?,
            }
        }
        Ok(net)
    }
}
